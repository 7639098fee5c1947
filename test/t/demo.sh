#!/usr/bin/env bash
# The README's first command, scripts/demo.sh, on its own throwaway server: it scores test
# X-rays of both classes and writes its pictures (a figure and one captioned overlay per X-ray).
set -uo pipefail
cd "$(dirname "$0")/../.."
source test/t/tap.inc
echo "1..3"
out=$(mktemp)
rm -rf demo_out
CXR_PG_PORT=${CXR_DEMO_PORT:-54339} scripts/demo.sh > "$out" 2>&1
ok $? "scripts/demo.sh exits with 0"
scores=$(sed -n '/== ten test X-rays/,/rows)/p' "$out")
echo "$scores" | sed 's/^/# /'
if has_shared_xrays; then
    [ "$(grep -c '| t  ' <<< "$scores")" = 5 ] && [ "$(grep -c '| f  ' <<< "$scores")" = 5 ]
    ok $? "its printed scores show five X-rays of each class"
else
    grep -q "(10 rows)\|(4 rows)" <<< "$scores"
    ok $? "its printed scores show the synthetic X-rays (no shared data)"
fi
n=$(ls demo_out/*_overlay.png 2>/dev/null | wc -l)
python3 - demo_out/attention_figure.png demo_out/*_overlay.png <<'PY'
import struct, sys
for p in sys.argv[1:]:
    b = open(p, "rb").read()
    assert b[:8] == b"\x89PNG\r\n\x1a\n" and b[12:16] == b"IHDR", p
    w, h = struct.unpack(">II", b[16:24])
    assert w > 0 and h > 0, p
PY
[ $? = 0 ] && [ "$n" -ge 4 ]
ok $? "it writes a PNG figure and $n captioned overlays to demo_out/"
rm -f "$out"
exit $tap_failed
