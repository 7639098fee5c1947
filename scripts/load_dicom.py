#!/usr/bin/env python3
"""Streams DICOM copies of some shared test X-rays as CSV for psql's \\copy, the way a PACS
export holds them: file, sop_instance_uid, label, image (hex bytea). Made with pydicom, in memory
(nothing is written to disk): Digital X-Ray objects, Modality DX, BodyPartExamined CHEST,
ViewPosition PA (AP for every fourth, LL — a lateral — for the last), alternately 8-bit explicit
VR little endian and 16-bit (values x 257) RLE Lossless. UIDs are fixed, so every load is the same.

    python3 scripts/load_dicom.py DATA_DIR [PER_CLASS] | psql -c "\\copy ... FROM STDIN CSV"
"""
import csv
import io
import os
import sys

import numpy as np
import pydicom
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, RLELossless

UID_ROOT = "1.2.826.0.1.3680043.10.1235."


def dicom(pixels, n, view, rle):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray, for presentation
    meta.MediaStorageSOPInstanceUID = UID_ROOT + "3." + str(n)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.preamble = b"\0" * 128
    ds.is_little_endian, ds.is_implicit_VR = True, False
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = UID_ROOT + "1." + str(n), UID_ROOT + "2." + str(n)
    ds.Modality, ds.BodyPartExamined, ds.ViewPosition = "DX", "CHEST", view
    ds.PatientID = "ANON-%04d" % n
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PixelRepresentation = 1, "MONOCHROME2", 0
    if rle:
        v = pixels.astype(np.uint16) * 257
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
        ds.PixelData = v.tobytes()
        ds.compress(RLELossless, v)
    else:
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
        ds.PixelData = pixels.astype(np.uint8).tobytes()
    out = io.BytesIO()
    ds.save_as(out, write_like_original=False)
    return out.getvalue()


def main():
    folder = sys.argv[1]
    per_class = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    rows, taken = [], {}
    with open(os.path.join(folder, "manifest.csv"), newline="") as f:
        for row in csv.DictReader(f):
            if row["split"] != "test" or taken.get(row["label"], 0) >= per_class:
                continue
            taken[row["label"]] = taken.get(row["label"], 0) + 1
            rows.append(row)
    out = csv.writer(sys.stdout)
    for n, row in enumerate(rows):
        view = "LL" if n == len(rows) - 1 else "AP" if n % 4 == 3 else "PA"
        pixels = np.asarray(Image.open(os.path.join(folder, row["file"])).convert("L"))
        data = dicom(pixels, n, view, rle=n % 2 == 1)
        out.writerow([row["file"], UID_ROOT + "3." + str(n),
                      "true" if row["label"] == "covid" else "false", "\\x" + data.hex()])


if __name__ == "__main__":
    main()
