#!/usr/bin/python3
"""Fixtures for test/unit/test_codecs.c: compressed streams made by independent encoders, with
the samples an independent decoder (or, for lossless coding, the original pixels) says they
hold.

Writes into --out:
  NAME.bin   the stream (a JPEG file, or a JPEG 2000 codestream taken out of a DICOM file)
  NAME.i32   expected samples, little-endian int32, interleaved (s0 s1 s2 s0 ...)
  codecs.txt one line per fixture:
             name codec status width height components precision signed process ct maxdiff
             (codec: jpeg or j2k; status: ok or unsupported; '-' means not checked; ct: the
             expected color_transformed; maxdiff: the largest |decoded - expected| allowed)

Encoders: PIL (baseline, progressive), DCMTK's dcmcjpeg (JPEG Lossless, 12-bit extended),
GDCM (JPEG 2000 lossless), pydicom's test files (lossy JPEG 2000, decoded by GDCM), and a small
JPEG Lossless encoder below for what dcmcjpeg cannot write (restart intervals, one scan per
component, 16-bit differences of 32768), whose every stream GDCM decodes back to the original
before it is written. Needs /usr/bin/python3 with numpy, PIL, pydicom and python3-gdcm, and
dcmcjpeg on PATH. Takes a few seconds.

Usage: codec_fixtures.py --out DIR
"""
import argparse
import io
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np
import pydicom
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate, generate_pixel_data_frame
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

CXR = os.path.join(os.environ.get("CXR_DATA") or
                   os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..",
                                "shared", "data", "cxr"), "images", "normal", "Normal-10000.png")
TEST_FILES = os.path.join(os.path.dirname(pydicom.__file__), "data", "test_files")
JPEG_LOSSLESS = "1.2.840.10008.1.2.4.57"
JPEG_LOSSLESS_SV1 = "1.2.840.10008.1.2.4.70"


def gray_source(h, w, seed):
    """A crop of a real radiograph when there is one, else a gradient with noise."""
    rng = np.random.default_rng(seed)
    if os.path.exists(CXR):
        img = np.asarray(Image.open(CXR).convert("L"), dtype=np.float64)
        y0, x0 = (img.shape[0] - h) // 2, (img.shape[1] - w) // 2
        img = img[y0:y0 + h, x0:x0 + w]
    else:
        yy, xx = np.mgrid[0:h, 0:w]
        img = 255.0 * (xx + yy) / (h + w)
    return np.clip(img + rng.normal(0, 3, img.shape), 0, 255)


def rgb_source(h, w, seed):
    g = gray_source(h, w, seed)
    yy, xx = np.mgrid[0:h, 0:w]
    r = np.clip(g * 0.8 + 40 * np.sin(xx / 7.0), 0, 255)
    b = np.clip(255 - g * 0.5 + 30 * np.cos(yy / 5.0), 0, 255)
    return np.stack([r, g, b], axis=-1).round().astype(np.uint8)


class Writer:
    def __init__(self, out):
        self.out = out
        self.lines = []

    def add(self, name, codec, stream, expected, status="ok", precision="-", signed="-",
            process="-", ct="-", maxdiff=0, shape=None):
        with open(os.path.join(self.out, name + ".bin"), "wb") as f:
            f.write(stream)
        if expected is not None:
            e = np.asarray(expected)
            h, w = e.shape[:2]
            c = 1 if e.ndim == 2 else e.shape[2]
            e.astype("<i4").tofile(os.path.join(self.out, name + ".i32"))
        else:
            h, w, c = shape
        self.lines.append(" ".join(str(v) for v in (name, codec, status, w, h, c, precision,
                                                     signed, process, ct, maxdiff)))

    def finish(self):
        with open(os.path.join(self.out, "codecs.txt"), "w") as f:
            f.write("\n".join(self.lines) + "\n")


def pil_jpeg(img, **kw):
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", **kw)
    data = buf.getvalue()
    return data, np.asarray(Image.open(io.BytesIO(data)))


def dicom_of(arr, bits, signed=False, tsuid=ExplicitVRLittleEndian, frames=None):
    ds = Dataset()
    fm = FileMetaDataset()
    fm.TransferSyntaxUID = tsuid
    fm.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    fm.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta = fm
    ds.is_little_endian, ds.is_implicit_VR = True, False
    ds.SOPClassUID = fm.MediaStorageSOPClassUID
    ds.SOPInstanceUID = fm.MediaStorageSOPInstanceUID
    ds.Rows, ds.Columns = arr.shape[:2]
    ds.SamplesPerPixel = 1 if arr.ndim == 2 else 3
    ds.PhotometricInterpretation = "MONOCHROME2" if arr.ndim == 2 else "RGB"
    if arr.ndim == 3:
        ds.PlanarConfiguration = 0
    ds.BitsAllocated = 8 if bits <= 8 else 16
    ds.BitsStored, ds.HighBit = bits, bits - 1
    ds.PixelRepresentation = 1 if signed else 0
    if frames is None:
        dt = ("<i" if signed else "<u") + ("1" if bits <= 8 else "2")
        ds.PixelData = arr.astype(dt).tobytes()
    else:
        ds.PixelData = encapsulate(frames)
        ds["PixelData"].VR = "OB"
        ds["PixelData"].is_undefined_length = True
    return ds


def coded_precision(stream):
    """Bits per sample as the encoder wrote them (DCMTK and GDCM code 12-bit data stored in
    16 bits as 16-bit): the SOF's P, or the SIZ's first Ssiz."""
    soc = stream.find(b"\xff\x4f\xff\x51")  # at 0, or inside a JP2 file's jp2c box
    if soc >= 0 and stream[:2] != b"\xff\xd8":
        return (stream[soc + 4 + 38] & 0x7F) + 1
    p = 2
    while p + 4 <= len(stream) and stream[p] == 0xFF:
        if 0xC0 <= stream[p + 1] <= 0xCF and stream[p + 1] not in (0xC4, 0xC8, 0xCC):
            return stream[p + 4]
        p += 2 + struct.unpack(">H", stream[p + 2:p + 4])[0]
    raise ValueError("no frame header")


def first_frame(path):
    ds = pydicom.dcmread(path)
    return next(generate_pixel_data_frame(ds.PixelData)), ds


def dcmcjpeg(arr, bits, opts, tmp):
    src, dst = os.path.join(tmp, "in.dcm"), os.path.join(tmp, "out.dcm")
    dicom_of(arr, bits).save_as(src, write_like_original=False)
    subprocess.run(["dcmcjpeg", *opts, src, dst], check=True, capture_output=True)
    return first_frame(dst)[0]


def gdcm_decode(stream, shape, bits, tsuid, tmp):
    """Pixels GDCM decodes from a JPEG stream wrapped in a DICOM file."""
    path = os.path.join(tmp, "wrap.dcm")
    arr = np.zeros(shape, np.uint16)
    dicom_of(arr, bits, tsuid=tsuid, frames=[stream]).save_as(path, write_like_original=False)
    ds = pydicom.dcmread(path)
    ds.decompress(handler_name="gdcm")
    return ds.pixel_array


# ---- a JPEG Lossless encoder (T.81 Annex H) for what dcmcjpeg cannot write ----
class BitWriter:
    def __init__(self):
        self.out = bytearray()
        self.acc = 0
        self.n = 0

    def put(self, value, n):
        for i in range(n - 1, -1, -1):
            self.acc = (self.acc << 1) | ((value >> i) & 1)
            self.n += 1
            if self.n == 8:
                self.out.append(self.acc)
                if self.acc == 0xFF:
                    self.out.append(0)
                self.acc = self.n = 0

    def flush(self):
        if self.n:
            self.put((1 << (8 - self.n)) - 1, 8 - self.n)


def predict(sv, ra, rb, rc):
    return [None, ra, rb, rc, ra + rb - rc, ra + ((rb - rc) >> 1), rb + ((ra - rc) >> 1),
            (ra + rb) >> 1][sv]


def encode_lossless(img, precision, sv, pt=0, restart=0, interleaved=True):
    """img: (h, w) or (h, w, c) integers below 2^precision. Every Huffman code has 5 bits."""
    img = np.asarray(img, dtype=np.int64)
    if img.ndim == 2:
        img = img[:, :, None]
    h, w, nc = img.shape
    x = img >> pt
    seg = lambda m, body: struct.pack(">BBH", 0xFF, m, len(body) + 2) + body
    out = bytearray(b"\xff\xd8")
    sof = struct.pack(">BHHB", precision, h, w, nc)
    for c in range(nc):
        sof += struct.pack(">BBB", c + 1, 0x11, 0)
    out += seg(0xC3, sof)
    counts = [0] * 16
    counts[4] = 17  # 17 codes of length 5: categories 0..16
    out += seg(0xC4, bytes([0x00]) + bytes(counts) + bytes(range(17)))
    if restart:
        out += seg(0xDD, struct.pack(">H", restart))
    codes = {s: (s, 5) for s in range(17)}
    scans = [list(range(nc))] if interleaved else [[c] for c in range(nc)]
    for comps in scans:
        body = bytes([len(comps)])
        for c in comps:
            body += bytes([c + 1, 0x00])
        body += bytes([sv, 0, pt])
        out += seg(0xDA, body)
        bw = BitWriter()
        mcu, rst, ry, rx = 0, 0, 0, 0
        for yy in range(h):
            for xx in range(w):
                if restart and mcu and mcu % restart == 0:
                    bw.flush()
                    out += bw.out + bytes([0xFF, 0xD0 + rst])
                    bw = BitWriter()
                    rst = (rst + 1) & 7
                    ry, rx = yy, xx
                mcu += 1
                for c in comps:
                    if (yy, xx) == (ry, rx):
                        p = 1 << (precision - pt - 1)
                    elif yy == ry:
                        p = x[yy, xx - 1, c]
                    elif xx == 0:
                        p = x[yy - 1, xx, c]
                    else:
                        p = predict(sv, x[yy, xx - 1, c], x[yy - 1, xx, c], x[yy - 1, xx - 1, c])
                    d = (int(x[yy, xx, c]) - int(p)) & 0xFFFF
                    if d == 32768:
                        bw.put(*codes[16])
                        continue
                    if d > 32768:
                        d -= 65536
                    s = abs(d).bit_length()
                    bw.put(*codes[s])
                    if s:
                        bw.put(d if d > 0 else d + (1 << s) - 1, s)
        bw.flush()
        out += bw.out
    out += b"\xff\xd9"
    return bytes(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    wr = Writer(args.out)
    tmp = tempfile.mkdtemp(prefix="cxr_codec_fixtures")

    # ---- lossy JPEG, written and decoded by PIL (libjpeg) ----
    gray = gray_source(77, 100, 1).round().astype(np.uint8)
    rgb = rgb_source(67, 101, 2)
    for name, img, kw, ct, proc in [
        ("jpeg_gray_baseline", gray, dict(quality=90), 0, 0),
        ("jpeg_gray_optimized", gray, dict(quality=75, optimize=True), 0, 0),
        ("jpeg_rgb_420", rgb, dict(quality=90), 1, 0),
        ("jpeg_rgb_444", rgb, dict(quality=95, subsampling=0), 1, 0),
        ("jpeg_gray_progressive", gray, dict(quality=85, progressive=True), 0, 2),
        ("jpeg_rgb_progressive", rgb, dict(quality=85, progressive=True), 1, 2),
    ]:
        data, dec = pil_jpeg(img, **kw)
        wr.add(name, "jpeg", data, dec, precision=8, signed=0, process=proc, ct=ct)

    # ---- JPEG Lossless and 12-bit extended, written by DCMTK ----
    g8 = gray_source(48, 64, 3).round().astype(np.uint16)
    g12 = (gray_source(48, 64, 4) * 16).round().astype(np.uint16)
    rng = np.random.default_rng(5)
    g16 = np.clip(gray_source(40, 56, 6) * 256 + rng.integers(0, 256, (40, 56)), 0, 65535)
    g16 = g16.astype(np.uint16)
    s = dcmcjpeg(g8, 8, ["+e1"], tmp)
    wr.add("ljpeg_sv1_8bit", "jpeg", s, g8, precision=coded_precision(s),
           signed=0, process=3, ct=0)
    s = dcmcjpeg(g12, 12, ["+e1"], tmp)
    wr.add("ljpeg_sv1_12bit", "jpeg", s, g12, precision=coded_precision(s),
           signed=0, process=3, ct=0)
    for sv in range(1, 8):
        s = dcmcjpeg(g16, 16, ["+el", "+sv", str(sv)], tmp)
        wr.add("ljpeg_sv%d_16bit" % sv, "jpeg", s, g16, precision=coded_precision(s),
               signed=0, process=3, ct=0)
    s = dcmcjpeg(g12, 12, ["+el", "+sv", "1", "+pt", "3"], tmp)
    wr.add("ljpeg_pt3_12bit", "jpeg", s, (g12 >> 3) << 3, precision=coded_precision(s),
           signed=0, process=3, ct=0)
    rgb8 = rgb_source(30, 41, 7)
    s = dcmcjpeg(rgb8, 8, ["+e1"], tmp)
    wr.add("ljpeg_sv1_rgb", "jpeg", s, rgb8, precision=coded_precision(s),
           signed=0, process=3, ct=0)
    s = dcmcjpeg(g12, 12, ["+ee"], tmp)
    wr.add("jpeg_extended_12bit", "jpeg", s, None, status="unsupported", precision=12,
           process=1, shape=(48, 64, 1))

    # ---- JPEG Lossless by the encoder above, checked against GDCM ----
    alt = np.zeros((24, 30), np.uint16)
    alt[:, 1::2] = 32768  # left neighbour 32768 away: the SSSS=16 case
    alt[::3] += 7
    cases = [
        ("ljpeg_restart_16bit", g16[:20, :30], 16, dict(sv=1, restart=30)),
        ("ljpeg_restart_sv7", g16[:20, :30], 16, dict(sv=7, restart=60)),
        ("ljpeg_diff32768", alt, 16, dict(sv=1)),
        ("ljpeg_12bit_sv6", g12, 12, dict(sv=6)),
        ("ljpeg_12bit_pt2", g12, 12, dict(sv=3, pt=2)),
        ("ljpeg_rgb_planar_scans", rgb8.astype(np.uint16), 8, dict(sv=4, interleaved=False)),
        ("ljpeg_rgb_restart", rgb8.astype(np.uint16), 8, dict(sv=6, restart=41)),
        # GDCM asserts on 2-bit samples: this one goes unchecked (the others check the encoder)
        ("ljpeg_2bit", (g8[:16, :16] >> 6), 2, dict(sv=5)),
    ]
    for name, img, prec, kw in cases:
        s = encode_lossless(img, prec, **kw)
        ts = JPEG_LOSSLESS_SV1 if kw["sv"] == 1 else JPEG_LOSSLESS
        pt = kw.get("pt", 0)
        img = (np.asarray(img, np.int64) >> pt) << pt
        if prec >= 8:
            back = gdcm_decode(s, img.shape, prec, ts, tmp)
            if not np.array_equal(back.astype(np.int64), img):
                sys.exit("GDCM does not decode %s to its original pixels" % name)
        wr.add(name, "jpeg", s, img, precision=prec, signed=0, process=3, ct=0)

    # ---- JPEG 2000: lossless by GDCM (expected: the original), lossy from pydicom's files
    # (expected: GDCM's decoding) ----
    import gdcm

    for name, img, bits in [("j2k_lossless_12bit", g12, 12), ("j2k_lossless_rgb", rgb8, 8),
                            ("j2k_lossless_16bit", g16, 16)]:
        src, dst = os.path.join(tmp, "j_in.dcm"), os.path.join(tmp, "j_out.dcm")
        dicom_of(img, bits).save_as(src, write_like_original=False)
        r = gdcm.ImageReader()
        r.SetFileName(src)
        if not r.Read():
            sys.exit("GDCM cannot read " + src)
        ch = gdcm.ImageChangeTransferSyntax()
        ch.SetTransferSyntax(gdcm.TransferSyntax(gdcm.TransferSyntax.JPEG2000Lossless))
        ch.SetInput(r.GetImage())
        if not ch.Change():
            sys.exit("GDCM cannot encode JPEG 2000")
        w = gdcm.ImageWriter()
        w.SetFileName(dst)
        w.SetFile(r.GetFile())
        w.SetImage(ch.GetOutput())
        if not w.Write():
            sys.exit("GDCM cannot write " + dst)
        frame, _ = first_frame(dst)
        wr.add(name, "j2k", frame, img, precision=coded_precision(frame), signed=0, process=-1,
               ct=0)
    for name, f in [("j2k_mr_small_lossless", "MR_small_jp2klossless.dcm"),
                    ("j2k_lossy_693", "693_J2KI.dcm"), ("j2k_lossy_jpeg2000", "JPEG2000.dcm"),
                    ("j2k_rgb_rct", "GDCMJ2K_TextGBR.dcm")]:
        path = os.path.join(TEST_FILES, f)
        if not os.path.exists(path):
            print("note: %s missing, fixture %s left out" % (path, name))
            continue
        frame, ds = first_frame(path)
        ds.decompress(handler_name="gdcm")
        arr = ds.pixel_array
        # the codestream's own signedness may differ from the DICOM's (pydicom's
        # J2K_pixelrep_mismatch.dcm): not checked here
        wr.add(name, "j2k", frame, arr, precision=coded_precision(frame), process=-1,
               ct=0)
    wr.finish()
    print("wrote %d codec fixtures into %s" % (len(wr.lines), args.out))


if __name__ == "__main__":
    main()
