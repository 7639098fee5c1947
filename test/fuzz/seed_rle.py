#!/usr/bin/env python3
"""Writes the RLE frames of the RLE DICOM files in a SQL script (test/sql/dicom.sql, written by
pydicom) as seeds for test/fuzz/fuzz_rle.c: 4 bytes of geometry, then the frame. Fails when it
finds none.

    seed_rle.py SCRIPT.sql OUTDIR
"""
import io
import os
import re
import sys

import pydicom
from pydicom.encaps import generate_pixel_data_frame

script, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
n = 0
for h in re.findall(r"'\\x([0-9a-f]*)'", open(script).read()):
    try:
        ds = pydicom.dcmread(io.BytesIO(bytes.fromhex(h)))
        if ds.file_meta.TransferSyntaxUID != "1.2.840.10008.1.2.5":
            continue
    except Exception:
        continue
    frame = next(generate_pixel_data_frame(ds.PixelData, int(ds.get("NumberOfFrames", 1) or 1)))
    spp, bits = int(ds.SamplesPerPixel), int(ds.BitsAllocated)
    geometry = bytes([(int(ds.Columns) - 1) % 64, (int(ds.Rows) - 1) % 64, 1 if spp == 3 else 0,
                      {8: 0, 16: 1, 32: 2}[bits]])
    with open(os.path.join(out, f"rle_{n:03d}.bin"), "wb") as f:
        f.write(geometry + frame)
    n += 1
if not n:
    sys.exit(f"{script}: no RLE DICOM files found")
print(f"{n} RLE seeds from {script}")
