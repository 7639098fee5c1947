#!/usr/bin/env python3
"""Generates test/sql/dicom.sql: small DICOM and JPEG files written by pydicom and PIL (not by
cxr_attn), each with the gray values docs/decisions.md ("DICOM pixels") says a reader must
produce, computed here in numpy from the samples the file was written with; broken files that
must give an ERROR; and DICOM copies of test/data/xray*.png that must score as the PNG does.

    /usr/bin/python3 test/ref/make_dicom_sql.py
"""
import io
import os

import numpy as np
import pydicom
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian,
                         ExplicitVRLittleEndian, ImplicitVRLittleEndian, RLELossless)

ROOT = os.path.join(os.path.dirname(__file__), "..")
ROWS, COLS = 13, 13  # square, so cxr_image_gray(img, 13) is the decoded image itself
UID_ROOT = "1.2.826.0.1.3680043.10.1234."


def samples(bits, signed=False, seed=0, shape=(ROWS, COLS)):
    rng = np.random.default_rng(seed)
    if signed:
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    else:
        lo, hi = 0, (1 << bits) - 1
    a = rng.integers(lo, hi + 1, size=shape, dtype=np.int64)
    a.flat[0], a.flat[1] = lo, hi  # both ends of the range
    return a


def dataset(pixels, bits_alloc, bits_stored, signed=False, photometric="MONOCHROME2", spp=1,
            ts=ExplicitVRLittleEndian, n=0, frames=1, **attrs):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray for presentation
    meta.MediaStorageSOPInstanceUID = UID_ROOT + "1." + str(n)
    meta.TransferSyntaxUID = ts
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = UID_ROOT + "2." + str(n)
    ds.SeriesInstanceUID = UID_ROOT + "3." + str(n)
    ds.Modality = "DX"
    ds.Rows, ds.Columns = pixels.shape[-3 if spp == 3 else -2], pixels.shape[-2 if spp == 3 else -1]
    ds.SamplesPerPixel = spp
    ds.PhotometricInterpretation = photometric
    if spp == 3:
        ds.PlanarConfiguration = 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = bits_alloc, bits_stored, bits_stored - 1
    ds.PixelRepresentation = 1 if signed else 0
    if frames > 1:
        ds.NumberOfFrames = frames
    for k, v in attrs.items():
        setattr(ds, k, v)
    dtype = {8: np.uint8, 16: np.uint16}[bits_alloc]
    if signed:
        dtype = {8: np.int8, 16: np.int16}[bits_alloc]
    ds.is_little_endian = ts != ExplicitVRBigEndian
    ds.is_implicit_VR = ts == ImplicitVRLittleEndian
    arr = pixels.astype(dtype)
    if not ds.is_little_endian:
        arr = arr.byteswap()
    ds.PixelData = arr.tobytes()
    return ds


def to_bytes(ds, preamble=True):
    buf = io.BytesIO()
    if preamble:
        ds.preamble = b"\0" * 128
        pydicom.dcmwrite(buf, ds, write_like_original=False)
    else:
        pydicom.dcmwrite(buf, ds, write_like_original=True)
    return buf.getvalue()


# ---- the rules of docs/decisions.md, "DICOM pixels", in numpy ----
def stored_range(bits, signed):
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)


def voi(x, bits, signed, slope=1.0, intercept=0.0, window=None, function="LINEAR", lut=None):
    x = x.astype(np.float64)
    if lut is not None:
        first, data, lut_bits = lut
        idx = np.clip(np.rint(x).astype(np.int64), first, first + len(data) - 1) - first
        return np.asarray(data, np.float64)[idx] / ((1 << lut_bits) - 1)
    if window is not None:
        c, w = window
        if function == "LINEAR":
            y = (x - (c - 0.5)) / (w - 1) + 0.5
            y[x <= c - 0.5 - (w - 1) / 2] = 0
            y[x > c - 0.5 + (w - 1) / 2] = 1
            return y
        if function == "LINEAR_EXACT":
            y = (x - c) / w + 0.5
            y[x <= c - w / 2] = 0
            y[x > c + w / 2] = 1
            return y
        return 1 / (1 + np.exp(-4 * (x - c) / w))
    lo, hi = stored_range(bits, signed)
    lo, hi = sorted((lo * slope + intercept, hi * slope + intercept))
    return (x - lo) / (hi - lo)


def hexed(b):
    return "'\\x" + b.hex() + "'"


def array_literal(values):
    return "'{" + ",".join("%.7f" % v for v in np.asarray(values, np.float64).ravel()) + "}'"


def cases():
    out = []  # (kind, bytes, expected gray rows*cols)
    a = samples(8, seed=1)
    out.append(("mono2_u8_explicit_le", to_bytes(dataset(a, 8, 8, n=1)), a / 255.0))
    a = samples(12, seed=2)
    ds = dataset(a, 16, 12, n=2, WindowCenter=2048, WindowWidth=1000)
    out.append(("mono2_u12_window_linear", to_bytes(ds), voi(a, 12, False, window=(2048, 1000))))
    a = samples(16, signed=True, seed=3)
    ds = dataset(a, 16, 16, signed=True, n=3, RescaleSlope=2, RescaleIntercept=-1024,
                 WindowCenter=40, WindowWidth=4000, VOILUTFunction="LINEAR_EXACT")
    x = a * 2.0 - 1024
    out.append(("mono2_s16_rescale_linear_exact", to_bytes(ds),
                voi(x, 16, True, window=(40, 4000), function="LINEAR_EXACT")))
    a = samples(12, seed=4)
    ds = dataset(a, 16, 12, n=4, WindowCenter=1500, WindowWidth=800, VOILUTFunction="SIGMOID")
    out.append(("mono2_u12_sigmoid", to_bytes(ds),
                voi(a, 12, False, window=(1500, 800), function="SIGMOID")))
    a = samples(10, seed=5)
    ds = dataset(a, 16, 10, n=5, RescaleSlope=0.5, RescaleIntercept=100)
    out.append(("mono2_u10_rescale_no_voi", to_bytes(ds), voi(a * 0.5 + 100, 10, False, 0.5, 100)))
    a = samples(8, seed=6)
    out.append(("mono1_u8", to_bytes(dataset(a, 8, 8, photometric="MONOCHROME1", n=6)), 1 - a / 255.0))
    a = samples(16, seed=7)
    out.append(("implicit_le_u16", to_bytes(dataset(a, 16, 16, ts=ImplicitVRLittleEndian, n=7)),
                a / 65535.0))
    a = samples(16, seed=8)
    out.append(("explicit_be_u16", to_bytes(dataset(a, 16, 16, ts=ExplicitVRBigEndian, n=8)),
                a / 65535.0))
    a = samples(8, seed=9)
    out.append(("deflated_u8", to_bytes(dataset(a, 8, 8, ts=DeflatedExplicitVRLittleEndian, n=9)),
                a / 255.0))
    a = samples(16, seed=10)
    ds = dataset(a, 16, 16, n=10)
    ds.compress(RLELossless, a.astype(np.uint16))
    out.append(("rle_u16", to_bytes(ds), a / 65535.0))
    a = samples(8, seed=11)
    lut_data = [int(round(4095 * (i / 255.0) ** 0.5)) for i in range(256)]
    item = Dataset()
    item.LUTDescriptor = [256, 0, 12]
    item.add_new(0x00283006, "US", lut_data)  # LUTData as US words (OW is the other choice)
    ds = dataset(a, 8, 8, n=11, WindowCenter=10, WindowWidth=20)  # the LUT wins over the window
    ds.VOILUTSequence = Sequence([item])
    out.append(("voi_lut_sequence", to_bytes(ds), voi(a, 8, False, lut=(0, lut_data, 12))))
    rgb = samples(8, seed=12, shape=(ROWS, COLS, 3))
    ds = dataset(rgb, 8, 8, photometric="RGB", spp=3, n=12)
    out.append(("rgb_u8", to_bytes(ds),
                (0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]) / 255.0))
    a = samples(8, seed=13, shape=(2, ROWS, COLS))
    ds = dataset(a, 8, 8, n=13, frames=2)
    out.append(("two_frames", to_bytes(ds), a[0] / 255.0))
    a = samples(8, seed=14)
    ds = dataset(a, 8, 8, ts=ImplicitVRLittleEndian, n=14)
    del ds.file_meta
    out.append(("no_preamble_implicit", to_bytes(ds, preamble=False), a / 255.0))
    # a JPEG file: PIL (libjpeg) decodes it for the expected values, quality 95 baseline
    g = Image.fromarray(samples(8, seed=15).astype(np.uint8) // 4 * 4 + 32, "L")
    b = io.BytesIO()
    g.save(b, "JPEG", quality=95)
    jpeg = b.getvalue()
    out.append(("jpeg_gray", jpeg, np.asarray(Image.open(io.BytesIO(jpeg))) / 255.0))
    # not square, against the same pixels as a PNG written by PIL: rows and columns not swapped
    a = samples(8, seed=16, shape=(11, 17))
    b = io.BytesIO()
    Image.fromarray(a.astype(np.uint8), "L").save(b, "PNG")
    nonsquare = [("nonsquare_11x17", to_bytes(dataset(a, 8, 8, n=16)), b.getvalue())]
    return out, nonsquare


def broken():
    good = to_bytes(dataset(samples(8, seed=20), 8, 8, n=20))
    out = [("truncated", good[:len(good) - 40]),
           ("header_only", good[:200])]
    ds = dataset(samples(16, seed=21), 16, 20, n=21)
    ds.BitsStored, ds.HighBit = 20, 19
    out.append(("bits_stored_above_allocated", to_bytes(ds)))
    ds = dataset(samples(8, seed=22), 8, 8, n=22)
    ds.Rows = ds.Columns = 65535
    out.append(("declared_65535_square", to_bytes(ds)))
    ds = dataset(samples(8, seed=23), 8, 8, n=23, ts="1.2.840.10008.1.2.4.80")
    ds.PixelData = pydicom.encaps.encapsulate([b"\xff\xd8\xff\xf7" + b"\0" * 30])
    out.append(("jpeg_ls_unsupported", to_bytes(ds)))
    ds = dataset(samples(8, seed=24), 8, 8, n=24, ts="1.2.840.10008.1.2.5")
    ds.PixelData = b"\xfe\xff\x00\xe0\x00\x00\x00\x00"  # an empty offset table, then nothing
    ds["PixelData"].is_undefined_length = True      # pydicom writes the sequence delimiter
    out.append(("encapsulated_no_fragments", to_bytes(ds)))
    # 10,000 sequences nested in items, none closed: bounded depth, never a deep recursion
    head = to_bytes(dataset(samples(8, seed=25), 8, 8, n=25))
    head = head[:132 + 12 + int.from_bytes(head[140:144], "little")]  # preamble and file meta
    nest = (b"\x08\x00\x15\x11SQ\x00\x00\xff\xff\xff\xff" + b"\xfe\xff\x00\xe0\xff\xff\xff\xff") * 10000
    out.append(("sequences_nested_10000_deep", head + nest))
    # a deflated dataset that inflates to much more than its file (a bomb, cut short)
    import zlib
    bomb_ds = dataset(samples(8, seed=26), 8, 8, n=26, ts=DeflatedExplicitVRLittleEndian)
    raw = to_bytes(bomb_ds)
    meta_end = 132 + 12 + int.from_bytes(raw[140:144], "little")  # after (0002,0000)'s group
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    body = b"\x08\x00\x00\x01UN\x00\x00\xf0\xff\xff\x0f" + b"\0" * (64 << 20)
    out.append(("deflate_bomb", raw[:meta_end] + c.compress(body) + c.flush()))
    return out


def tagged():
    ds = dataset(samples(8, seed=30), 8, 8, n=30, BodyPartExamined="CHEST", ViewPosition="PA",
                 PixelSpacing=[0.139, 0.143], PatientID="P-123", PatientName="Doe^Jane",
                 AccessionNumber="A42")
    return to_bytes(ds)


def same_xray():
    out = []
    for i in range(4):
        v = np.asarray(Image.open(os.path.join(ROOT, "data", f"xray{i}.png")).convert("L"), np.int64)
        out.append((i, "dicom_u8", to_bytes(dataset(v, 8, 8, n=40 + i))))
        ds = dataset(v * 257, 16, 16, n=50 + i)
        out.append((i, "dicom_u16", to_bytes(ds)))
        ds = dataset(v, 8, 8, n=60 + i)
        ds.compress(RLELossless, v.astype(np.uint8))
        out.append((i, "dicom_rle", to_bytes(ds)))
        b = io.BytesIO()  # lossy: its score is reported, not compared
        Image.fromarray(v.astype(np.uint8), "L").save(b, "JPEG", quality=90)
        out.append((i, "jpeg_q90", b.getvalue()))
    return out


def main():
    lines = ["-- Generated by test/ref/make_dicom_sql.py (pydicom and PIL write the files; the expected",
             "-- gray values follow docs/decisions.md, \"DICOM pixels\", in numpy): do not edit.",
             "CREATE TABLE dicom_cases (kind text PRIMARY KEY, img bytea, w int, h int, expected real[]);"]
    square, nonsquare = cases()
    for kind, data, expected in square:
        h, w = expected.shape
        lines.append(f"INSERT INTO dicom_cases VALUES ('{kind}', {hexed(data)}, {w}, {h}, "
                     f"{array_literal(expected)});")
    lines.append("CREATE TABLE dicom_nonsquare (kind text PRIMARY KEY, img bytea, png bytea);")
    for kind, data, png in nonsquare:
        lines.append(f"INSERT INTO dicom_nonsquare VALUES ('{kind}', {hexed(data)}, {hexed(png)});")
    lines.append("CREATE TABLE dicom_broken (kind text PRIMARY KEY, img bytea);")
    for kind, data in broken():
        lines.append(f"INSERT INTO dicom_broken VALUES ('{kind}', {hexed(data)});")
    lines.append(f"CREATE TABLE dicom_tagged (img bytea);")
    lines.append(f"INSERT INTO dicom_tagged VALUES ({hexed(tagged())});")
    lines.append("CREATE TABLE same_xray (id int, kind text, img bytea);")
    for i, kind, data in same_xray():
        lines.append(f"INSERT INTO same_xray VALUES ({i}, '{kind}', {hexed(data)});")
    lines.append(open(os.path.join(os.path.dirname(__file__), "dicom_checks.sql")).read())
    with open(os.path.join(ROOT, "sql", "dicom.sql"), "w") as f:
        f.write("\n".join(lines))
    print("wrote test/sql/dicom.sql")


if __name__ == "__main__":
    main()
