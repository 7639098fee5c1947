#!/usr/bin/env python3
"""Streams the shared X-rays as CSV for psql's \\copy: file, label, split, source, image (hex bytea).
Reads ../shared/data/cxr (or the folder given); the images are never copied into the project.

    python3 scripts/load_cxr.py DATA_DIR [--limit-per-split N] | psql -c "\\copy ... FROM STDIN CSV"
"""
import csv
import os
import sys


def main():
    folder = sys.argv[1]
    limit = int(sys.argv[3]) if len(sys.argv) > 3 and sys.argv[2] == "--limit-per-split" else None
    taken = {}
    out = csv.writer(sys.stdout)
    with open(os.path.join(folder, "manifest.csv"), newline="") as f:
        for row in csv.DictReader(f):
            key = (row["split"], row["label"])
            if limit is not None and taken.get(key, 0) >= limit:
                continue
            taken[key] = taken.get(key, 0) + 1
            with open(os.path.join(folder, row["file"]), "rb") as img:
                data = img.read()
            out.writerow([row["file"], "true" if row["label"] == "covid" else "false",
                          row["split"], row["source"], "\\x" + data.hex()])


if __name__ == "__main__":
    main()
