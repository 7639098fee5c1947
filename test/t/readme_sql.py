#!/usr/bin/env python3
"""Runs the ```sql blocks of README.md as written and compares each statement's output with the
output the README shows under it. Prints TAP, its plan last.

A statement ends at a line whose code (before a trailing -- comment) ends with ';' or is a psql
backslash command. The output a README shows is the run of '-- ' lines right after a
statement whose second line is psql's header rule ('-----+----'): psql's aligned format,
without the row-count footer. Each block runs in one psql session (session settings carry over
within a block), with ON_ERROR_STOP, in the database of the PG* environment, from the directory
given as the second argument (files the README writes land there).

usage: readme_sql.py README.md WORKDIR
"""
import re
import subprocess
import sys
import time

RULE = re.compile(r"-+(\+-+)*")


def code_part(line):
    """The line without a trailing -- comment (quotes respected)."""
    quote = False
    for i, ch in enumerate(line):
        if ch == "'":
            quote = not quote
        elif not quote and line.startswith("--", i):
            return line[:i]
    return line


def statements(block):
    """(statement text, expected output lines or None) for each statement of a block."""
    lines = block.split("\n")
    out, cur, i = [], [], 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not cur and (not line.strip() or line.lstrip().startswith("--")):
            continue
        cur.append(line)
        code = code_part(line).rstrip()
        if not (code.endswith(";") or code.lstrip().startswith("\\")):
            continue
        shown = []
        j = i
        while j < len(lines) and lines[j].startswith("--"):
            shown.append(lines[j][3:] if lines[j].startswith("-- ") else lines[j][2:])
            j += 1
        expected = None
        if len(shown) >= 2 and RULE.fullmatch(shown[1].strip()):
            expected = [s.rstrip() for s in shown]
            i = j
        out.append(("\n".join(cur), expected))
        cur = []
    if cur:
        out.append(("\n".join(cur), None))
    return out


def main():
    readme, workdir = sys.argv[1], sys.argv[2]
    text = open(readme, encoding="utf-8").read()
    blocks = re.findall(r"```sql\n(.*?)```", text, re.S)
    n = 0
    failed = 0
    for b, block in enumerate(blocks, 1):
        stmts = statements(block)
        script = []
        for k, (sql, _) in enumerate(stmts):
            script.append("\\echo @@stmt %d@@" % k)
            script.append(sql)
        start = time.monotonic()
        run = subprocess.run(
            ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-P", "footer=off"],
            input="\n".join(script) + "\n", capture_output=True, text=True, cwd=workdir)
        print("# block %d: %.1f s" % (b, time.monotonic() - start))
        parts = re.split(r"^@@stmt (\d+)@@\n", run.stdout, flags=re.M)
        outputs = {int(parts[p]): parts[p + 1] for p in range(1, len(parts) - 1, 2)}
        first = stmts[0][0].split("\n")[0][:60] if stmts else ""
        n += 1
        ok = run.returncode == 0
        if not ok:
            failed += 1
            print("not ok %d - README block %d (%s) runs as written" % (n, b, first))
            for line in run.stderr.strip().split("\n")[-8:]:
                print("# " + line)
        else:
            print("ok %d - README block %d (%s) runs as written" % (n, b, first))
        for k, (sql, expected) in enumerate(stmts):
            if expected is None:
                continue
            got = [l.rstrip() for l in outputs.get(k, "").rstrip("\n").split("\n")]
            n += 1
            label = sql.split("\n")[0][:70]
            if got == expected:
                print("ok %d - README output of: %s" % (n, label))
            else:
                failed += 1
                print("not ok %d - README output of: %s" % (n, label))
                print("# README shows:")
                for line in expected:
                    print("#   " + line)
                print("# psql gives:")
                for line in got:
                    print("#   " + line)
    print("1..%d" % n)  # TAP allows the plan last
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
