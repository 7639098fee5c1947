#!/usr/bin/env python3
"""Decode time per image for PNG, JPEG and each DICOM transfer syntax at chest X-ray size, for
cxr_attn's decoders against pydicom's (numpy, RLE and gdcm handlers) and DCMTK's command-line
decoders, in the same run; and what share of scoring one 16-bit DICOM its decoding is.

    /usr/bin/python3 bench/decode_bench.py CXR_CLI MODEL WORKDIR [SIDE] [REPEATS]

The image: a shared X-ray (or test/data/xray0.png) enlarged to SIDE x SIDE (2500) with PIL,
stored as 12 bits in 16 (values 0..4095, plus a little noise so that lossless codecs work as on
real detectors). cxr_attn's times are the best of REPEATS in one process (`cxr_cli time`);
pydicom's the best of REPEATS of dcmread + pixel_array (stored values: no rescale or VOI); DCMTK's the best of REPEATS of a whole
dcmdjpeg/dcmdrle/dcmconv process that decodes to an uncompressed file (process start and the
write included: said in the table).
"""
import io
import os
import subprocess
import sys
import time

import gdcm
import numpy as np
import pydicom
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian,
                         ExplicitVRLittleEndian, ImplicitVRLittleEndian, RLELossless)

cli, model, work = sys.argv[1], sys.argv[2], sys.argv[3]
side = int(sys.argv[4]) if len(sys.argv) > 4 else 2500
repeats = int(sys.argv[5]) if len(sys.argv) > 5 else 3
os.makedirs(work, exist_ok=True)
root = os.path.join(os.path.dirname(__file__), "..")
shared = os.path.join(root, "..", "shared", "data", "cxr", "images", "covid", "COVID-10.png")
src = shared if os.path.exists(shared) else os.path.join(root, "test", "data", "xray0.png")
base = np.asarray(Image.open(src).convert("L").resize((side, side), Image.BICUBIC), np.float64)
rng = np.random.default_rng(0)
v12 = np.clip(base * 16 + rng.normal(0, 6, base.shape), 0, 4095).astype(np.uint16)
v8 = (v12 >> 4).astype(np.uint8)


def dataset(pixels, bits_stored, ts):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    meta.MediaStorageSOPInstanceUID = "1.2.826.0.1.3680043.10.1234.9.1"
    meta.TransferSyntaxUID = ts
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality = "DX"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated = 8 if pixels.dtype == np.uint8 else 16
    ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits_stored, bits_stored - 1, 0
    ds.WindowCenter, ds.WindowWidth = 2048, 4096
    ds.is_little_endian = ts != ExplicitVRBigEndian
    ds.is_implicit_VR = ts == ImplicitVRLittleEndian
    arr = pixels if ds.is_little_endian else pixels.byteswap()
    ds.PixelData = arr.tobytes()
    ds.preamble = b"\0" * 128
    return ds


def write(name, ds):
    path = os.path.join(work, name)
    ds.save_as(path, write_like_original=False)
    return path


def gdcm_transcode(inp, out, ts):
    r = gdcm.ImageReader()
    r.SetFileName(inp)
    assert r.Read()
    c = gdcm.ImageChangeTransferSyntax()
    c.SetTransferSyntax(gdcm.TransferSyntax(ts))
    c.SetInput(r.GetImage())
    assert c.Change()
    w = gdcm.ImageWriter()
    w.SetFileName(out)
    w.SetFile(r.GetFile())
    w.SetImage(c.GetOutput())
    assert w.Write()
    return out


files = []  # (label, path, dcmtk command or None)
p = os.path.join(work, "xray16.png")
Image.fromarray((v12.astype(np.uint32) * 16).astype(np.uint16)).save(p)  # 16-bit gray PNG
files.append(("PNG 16-bit", p, None))
p = os.path.join(work, "xray8.jpg")
Image.fromarray(v8).save(p, quality=90)
files.append(("JPEG file (8-bit baseline)", p, None))
files.append(("DICOM explicit VR LE", write("exp_le.dcm", dataset(v12, 12, ExplicitVRLittleEndian)), "dcmconv"))
files.append(("DICOM implicit VR LE", write("imp_le.dcm", dataset(v12, 12, ImplicitVRLittleEndian)), "dcmconv"))
files.append(("DICOM explicit VR BE", write("exp_be.dcm", dataset(v12, 12, ExplicitVRBigEndian)), "dcmconv"))
files.append(("DICOM deflated", write("deflated.dcm", dataset(v12, 12, DeflatedExplicitVRLittleEndian)), "dcmconv"))
ds = dataset(v12, 12, ExplicitVRLittleEndian)
ds.compress(RLELossless, v12)
files.append(("DICOM RLE Lossless", write("rle.dcm", ds), "dcmdrle"))
lossless = os.path.join(work, "jpeg_ls_sv1.dcm")
subprocess.run(["dcmcjpeg", "+e1", files[2][1], lossless], check=True)
files.append(("DICOM JPEG Lossless SV1", lossless, "dcmdjpeg"))
base8 = write("exp_le_8.dcm", dataset(v8, 8, ExplicitVRLittleEndian))
baseline = os.path.join(work, "jpeg_baseline.dcm")
subprocess.run(["dcmcjpeg", "+eb", base8, baseline], check=True)
files.append(("DICOM JPEG baseline (8-bit)", baseline, "dcmdjpeg"))
files.append(("DICOM JPEG 2000 lossless", gdcm_transcode(files[2][1], os.path.join(work, "j2k.dcm"),
                                                        gdcm.TransferSyntax.JPEG2000Lossless), None))


def best(fn):
    t = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        t.append((time.perf_counter() - t0) * 1e3)
    return min(t)


def pydicom_decode(path):
    if path.endswith(".png") or path.endswith(".jpg"):
        return lambda: np.asarray(Image.open(path))
    return lambda: pydicom.dcmread(path).pixel_array


print(f"image: {side}x{side}, 12 bits stored in 16 (8-bit for the JPEG baseline files); best of {repeats}")
print("| file | bytes | cxr_attn decode ms | cxr_attn decode + resize + forward ms | decode share | pydicom (PIL for PNG/JPEG) ms | DCMTK ms (whole process) |")
print("|---|---|---|---|---|---|---|")
for label, path, tool in files:
    out = subprocess.run([cli, "time", model, path, str(repeats)], capture_output=True, text=True)
    if out.returncode != 0:
        print(f"| {label} | {os.path.getsize(path)} | error: {out.stderr.strip()} | | | | |")
        continue
    f = out.stdout.split()
    dec, score = float(f[1]), float(f[3])
    try:
        ref = "%.1f" % best(pydicom_decode(path))
    except Exception as e:  # a handler pydicom lacks
        ref = "n/a (%s)" % type(e).__name__
    if tool:
        tmp = os.path.join(work, "dcmtk_out.dcm")
        args = {"dcmconv": ["dcmconv", "+te", path, tmp], "dcmdrle": ["dcmdrle", path, tmp],
                "dcmdjpeg": ["dcmdjpeg", path, tmp]}[tool]
        dcmtk = "%.1f (%s)" % (best(lambda: subprocess.run(args, check=True)), tool)
    else:
        dcmtk = "-"
    print(f"| {label} | {os.path.getsize(path)} | {dec:.1f} | {score:.1f} | {100 * dec / score:.0f}% | {ref} | {dcmtk} |")
