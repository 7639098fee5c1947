#!/usr/bin/env python3
"""The independent oracle for the DICOM reader (issue 13): DICOM and JPEG files, and the gray
image in [0, 1] that docs/decisions.md, "DICOM pixels (0.8.0)", says each must give.

    /usr/bin/python3 test/ref/dicom_reference.py --out DIR

Expected values never come from our C code: pixels are decoded by pydicom (its numpy and RLE
handlers for native and RLE data), GDCM through pydicom (JPEG Lossless, JPEG 2000) and DCMTK's
dcmdjpeg (lossy JPEG, decoded without any colour conversion; the YCbCr -> RGB step that libjpeg
takes when the stream's markers ask for it is done here in numpy), then the rules of the
decisions (stored samples, colour -> luma, modality rescale, VOI, MONOCHROME1) are applied in
numpy below (`rules`). Plain JPEG files are decoded by PIL.

DIR receives the test files, for each file NAME that decodes NAME.f32 (rows*columns float32,
little-endian, row by row) and one line in DIR/manifest.txt:

    file kind expected rows columns frames tolerance status group description...

kind: dicom, jpeg or png; expected: the .f32 file or '-'; status: ok, or the error class the
reader must return (unsupported, corrupt, or error = any class but OK), or 'lenient' (a
non-conformant or damaged file: OK with these pixels (only the size when expected is '-'), or
any error with a message); group: '-' or a name
whose members must all decode to the same image (same_xray).

Needs Debian's python3-numpy, python3-pydicom (2.3), python3-gdcm, python3-pil and DCMTK.
Deterministic: fixed UIDs, no dates, no random state other than a seeded generator.
"""
import argparse
import glob
import io
import os
import shutil
import subprocess
import sys
import tempfile
import warnings

import numpy as np
import pydicom
from PIL import Image
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.encaps import encapsulate, generate_pixel_data_frame
from pydicom.pixel_data_handlers import gdcm_handler, numpy_handler, rle_handler
from pydicom.sequence import Sequence
from pydicom.dataset import Dataset

warnings.simplefilter("ignore")

PYDICOM_FILES = "/usr/lib/python3/dist-packages/pydicom/data/test_files"
# the shared X-rays beside the checkout (CXR_DATA as the TAP tests take it), else the repository's
# own X-ray-like test images stand in
_DATA = os.environ.get("CXR_DATA") or os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                    "..", "..", "..", "shared", "data", "cxr")
XRAYS = os.path.join(_DATA, "images")
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")

IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
DEFLATED = "1.2.840.10008.1.2.1.99"
EXPLICIT_BE = "1.2.840.10008.1.2.2"
RLE = "1.2.840.10008.1.2.5"
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
JPEG_EXTENDED = "1.2.840.10008.1.2.4.51"
JPEG_LOSSLESS = "1.2.840.10008.1.2.4.57"
JPEG_LOSSLESS_SV1 = "1.2.840.10008.1.2.4.70"
JPEG_LS = ("1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81")
J2K_LOSSLESS = "1.2.840.10008.1.2.4.90"
J2K = "1.2.840.10008.1.2.4.91"
NATIVE = (IMPLICIT_LE, EXPLICIT_LE, DEFLATED, EXPLICIT_BE)
LOSSY = (JPEG_BASELINE, JPEG_EXTENDED, J2K)
SUPPORTED = NATIVE + (RLE, JPEG_BASELINE, JPEG_EXTENDED, JPEG_LOSSLESS, JPEG_LOSSLESS_SV1,
                      J2K_LOSSLESS, J2K)

EXACT = 1e-6               # lossless and uncompressed
LEVEL = 1.0 / 255 + 1e-6   # one grey level: lossy codecs, and YCbCr -> RGB rounding


class Refused(Exception):
    """The rules say the reader must fail; .status is the class."""

    def __init__(self, status, why):
        super().__init__(why)
        self.status = status


def run(*args):
    r = subprocess.run(list(args), capture_output=True)
    if r.returncode != 0:
        raise RuntimeError("%s failed: %s" % (" ".join(args), r.stderr.decode(errors="replace")))


# ---------------------------------------------------------------- the rules, in numpy

def ybr_full_to_rgb(ybr, maxv):
    """PS3.3 C.7.6.3.1.2, full-range ITU-R BT.601 (real-valued, clipped, not rounded)."""
    y, cb, cr = (ybr[..., k].astype(np.float64) for k in range(3))
    half = (maxv + 1) / 2
    r = y + 1.402 * (cr - half)
    g = y - 0.344136 * (cb - half) - 0.714136 * (cr - half)
    b = y + 1.772 * (cb - half)
    return np.clip(np.stack([r, g, b], -1), 0, maxv)


def libjpeg_ycc_to_rgb(ycc):
    """What libjpeg's colour converter does with 8-bit YCbCr (rounded, clamped)."""
    rgb = ybr_full_to_rgb(ycc, 255)
    return np.clip(np.floor(rgb + 0.5), 0, 255)


def first(v):
    if isinstance(v, (list, tuple)) or type(v).__name__ == "MultiValue":
        return float(v[0])
    return float(v)


def rules(ds, samples, color_transformed=False):
    """docs/decisions.md "DICOM pixels (0.8.0)", steps 1-5, on frame 1's samples as a decoder
    gave them (rows x columns, or rows x columns x 3 interleaved). Returns float64 in [0, 1]."""
    ba, bs = int(ds.BitsAllocated), int(ds.BitsStored)
    hb, pr = int(ds.HighBit), int(ds.get("PixelRepresentation", 0))
    spp = int(ds.get("SamplesPerPixel", 1))
    pi = str(ds.PhotometricInterpretation).strip()
    if ba not in (8, 16, 32):
        raise Refused("error", "BitsAllocated %d" % ba)
    if bs == 0 or bs > ba or hb != bs - 1:
        raise Refused("error", "BitsStored %d HighBit %d BitsAllocated %d" % (bs, hb, ba))
    # 1. stored samples: shifted right by HighBit + 1 - BitsStored (0 once HighBit = BitsStored
    # - 1), masked to BitsStored bits, sign-extended when PixelRepresentation is 1
    s = samples.astype(np.int64) >> (hb + 1 - bs)
    s &= (1 << bs) - 1
    if pr == 1:
        s = np.where(s >= (1 << (bs - 1)), s - (1 << bs), s)
    if spp == 3:
        # 2. colour: luma over 2^BitsStored - 1, no modality or VOI
        maxv = (1 << bs) - 1
        if color_transformed or pi in ("RGB", "YBR_RCT", "YBR_ICT"):
            rgb = s.astype(np.float64)
        elif pi in ("YBR_FULL", "YBR_FULL_422"):
            rgb = ybr_full_to_rgb(s, maxv)
        else:
            raise Refused("error", "photometric %s" % pi)
        return (0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]) / maxv
    if spp != 1:
        raise Refused("error", "SamplesPerPixel %d" % spp)
    if pi not in ("MONOCHROME1", "MONOCHROME2"):
        raise Refused("error", "photometric %s" % pi)
    # 3. modality rescale
    m = float(ds.RescaleSlope) if "RescaleSlope" in ds else 1.0
    b = float(ds.RescaleIntercept) if "RescaleIntercept" in ds else 0.0
    x = s.astype(np.float64) * m + b
    # 4. VOI: LUT sequence, else window, else the BitsStored range through the rescale
    if "VOILUTSequence" in ds and len(ds.VOILUTSequence) > 0:
        item = ds.VOILUTSequence[0]
        desc = [int(v) for v in item.LUTDescriptor]
        entries = desc[0] or 65536
        first_mapped, lut_bits = desc[1], desc[2]
        raw = item.LUTData
        if isinstance(raw, (bytes, bytearray)):
            lut = np.frombuffer(raw, "<u2" if lut_bits > 8 else "u1").astype(np.int64)
        else:
            lut = np.array(list(raw) if not isinstance(raw, int) else [raw], dtype=np.int64)
        lut = lut[:entries]
        idx = np.clip(np.floor(x), first_mapped, first_mapped + entries - 1).astype(np.int64)
        y = lut[idx - first_mapped] / float((1 << lut_bits) - 1)
    elif "WindowCenter" in ds and "WindowWidth" in ds:
        c, w = first(ds.WindowCenter), first(ds.WindowWidth)
        fn = str(ds.get("VOILUTFunction", "LINEAR")).strip().upper() or "LINEAR"
        if fn == "LINEAR":
            if w < 1:
                raise Refused("error", "LINEAR window width %g" % w)
            lo, hi = c - 0.5 - (w - 1) / 2, c - 0.5 + (w - 1) / 2
            with np.errstate(divide="ignore", invalid="ignore"):
                mid = (x - (c - 0.5)) / (w - 1) + 0.5 if w > 1 else np.zeros_like(x)
            y = np.where(x <= lo, 0.0, np.where(x > hi, 1.0, mid))
        elif fn == "LINEAR_EXACT":
            if w <= 0:
                raise Refused("error", "LINEAR_EXACT window width %g" % w)
            y = np.where(x <= c - w / 2, 0.0, np.where(x > c + w / 2, 1.0, (x - c) / w + 0.5))
        elif fn == "SIGMOID":
            if w <= 0:
                raise Refused("error", "SIGMOID window width %g" % w)
            y = 1.0 / (1.0 + np.exp(-4.0 * (x - c) / w))
        else:
            raise Refused("error", "VOILUTFunction %s" % fn)
    else:
        lo, hi = ((-(1 << (bs - 1)), (1 << (bs - 1)) - 1) if pr == 1 else (0, (1 << bs) - 1))
        xa, xb = lo * m + b, hi * m + b
        xmin, xmax = min(xa, xb), max(xa, xb)
        y = (x - xmin) / (xmax - xmin)
    # 5. MONOCHROME1 inverted last
    if pi == "MONOCHROME1":
        y = 1.0 - y
    return y


# ---------------------------------------------------------------- independent decoders

def jpeg_markers(stream):
    """The markers libjpeg looks at to choose a colour space: (JFIF, Adobe transform or None,
    component ids, precision, SOF process)."""
    i, jfif, adobe, ids, prec, proc = 2, False, None, [], None, None
    while i + 4 <= len(stream):
        if stream[i] != 0xFF:
            break
        m = stream[i + 1]
        if m == 0xFF:
            i += 1
            continue
        n = stream[i + 2] << 8 | stream[i + 3]
        seg = stream[i + 4:i + 2 + n]
        if m == 0xE0 and seg[:5] == b"JFIF\0":
            jfif = True
        elif m == 0xEE and seg[:5] == b"Adobe" and len(seg) >= 12:
            adobe = seg[11]
        elif 0xC0 <= m <= 0xCF and m not in (0xC4, 0xC8, 0xCC):
            prec, proc = seg[0], m & 0x0F
            ids = [seg[6 + 3 * k] for k in range(seg[5])]
        elif m == 0xDA:
            break
        i += 2 + n
    return jfif, adobe, ids, prec, proc


def libjpeg_converts(stream):
    """libjpeg(-turbo)'s default_decompress_parms for 3 components: does it decode YCbCr?"""
    jfif, adobe, ids, _, _ = jpeg_markers(stream)
    if len(ids) != 3:
        return False
    if jfif:
        return True
    if adobe is not None:
        return adobe != 0
    if ids == [82, 71, 66]:
        return False
    return True   # ids 1,2,3 or anything else: "assume it's YCbCr"


def frame1_bytes(ds):
    nf = int(ds.get("NumberOfFrames", 1) or 1)
    return next(generate_pixel_data_frame(ds.PixelData, nf))


def pixel_array_with(ds, handler):
    saved = pydicom.config.pixel_data_handlers
    pydicom.config.pixel_data_handlers = [handler]
    try:
        ds._pixel_array = None
        ds._pixel_id = {}
        arr = ds.pixel_array
    finally:
        pydicom.config.pixel_data_handlers = saved
    nf = int(ds.get("NumberOfFrames", 1) or 1)
    return arr[0] if nf > 1 else arr


def conformant_copy(path, tmp):
    """A minimal conformant file with the same Image Pixel module and Pixel Data, for a file
    DCMTK cannot parse (SC_rgb_jpeg.dcm: an implicit VR dataset under an explicit syntax)."""
    src = pydicom.dcmread(path, force=True)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    meta.MediaStorageSOPInstanceUID = UID + "999"
    meta.TransferSyntaxUID = src.file_meta.TransferSyntaxUID
    meta.ImplementationClassUID = UID + "0"
    out = os.path.join(tmp, "conformant.dcm")
    ds = FileDataset(out, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, UID + "999"
    for k in ("SamplesPerPixel", "PhotometricInterpretation", "PlanarConfiguration",
              "NumberOfFrames", "Rows", "Columns", "BitsAllocated", "BitsStored", "HighBit",
              "PixelRepresentation"):
        if k in src:
            setattr(ds, k, src.get(k))
    ds.PixelData = src.PixelData
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    ds.is_little_endian, ds.is_implicit_VR = True, False
    ds.save_as(out, write_like_original=False)
    return out


def dcmdjpeg_raw(path, tmp):
    out = os.path.join(tmp, "dcmdjpeg.dcm")
    try:
        run("dcmdjpeg", "+cn", path, out)
    except RuntimeError:
        run("dcmdjpeg", "+cn", conformant_copy(path, tmp), out)
    d = pydicom.dcmread(out)
    return pixel_array_with(d, numpy_handler)


def read_dataset(path):
    ds = pydicom.dcmread(path, force=True)
    if not hasattr(ds, "file_meta") or ds.file_meta is None:
        ds.file_meta = FileMetaDataset()
    if "TransferSyntaxUID" not in ds.file_meta:
        ds.file_meta.TransferSyntaxUID = (
            IMPLICIT_LE if ds.is_implicit_VR else (EXPLICIT_LE if ds.is_little_endian else EXPLICIT_BE))
    return ds


def decode_frame1(path, notes):
    """(dataset, frame-1 samples, colour transformed by libjpeg) from independent decoders. The
    dataset is read afresh: pydicom's J2K corrections may rewrite PixelRepresentation on the
    dataset it decoded (J2K_pixelrep_mismatch.dcm), and the rules read the file's own value."""
    _, samples, converted = decode_samples(path, notes)
    return read_dataset(path), samples, converted


def decode_samples(path, notes):
    ds = read_dataset(path)
    ts = str(ds.file_meta.TransferSyntaxUID)
    if ts in JPEG_LS:
        raise Refused("unsupported", "JPEG-LS")
    if ts not in SUPPORTED:
        raise Refused("unsupported", "transfer syntax " + ts)
    if int(ds.BitsAllocated) == 1:
        raise Refused("error", "1-bit pixels")
    if ts in NATIVE:
        return ds, pixel_array_with(ds, numpy_handler), False
    if ts == RLE:
        a = pixel_array_with(ds, rle_handler)
        try:   # cross-check: GDCM
            g = pixel_array_with(ds, gdcm_handler)
            if g.shape == a.shape and not np.array_equal(g.astype(np.int64), a.astype(np.int64)):
                notes.append("RLE: pydicom and GDCM differ")
        except Exception:
            pass
        return ds, a, False
    if ts in (JPEG_BASELINE, JPEG_EXTENDED):
        stream = frame1_bytes(ds)
        _, _, ids, prec, proc = jpeg_markers(stream)
        if prec != 8:
            raise Refused("unsupported", "%d-bit lossy JPEG" % prec)
        with tempfile.TemporaryDirectory() as tmp:
            a = dcmdjpeg_raw(path, tmp).astype(np.int64)
        converted = False
        # DICOM says the colour space (PS3.5 8.2.1): YBR_* streams are YCbCr, RGB ones are not,
        # whatever markers the stream carries (DCMTK and GDCM decode so)
        if a.ndim == 3 and str(ds.PhotometricInterpretation).startswith("YBR"):
            a = libjpeg_ycc_to_rgb(a).astype(np.int64)
            converted = True
        # cross-check: PIL (libjpeg-turbo) on the same stream
        try:
            im = Image.open(io.BytesIO(stream))
            p = np.asarray(im.convert("RGB") if a.ndim == 3 else im).astype(np.float64)
            la = a @ [0.299, 0.587, 0.114] if a.ndim == 3 else a
            lp = p @ [0.299, 0.587, 0.114] if a.ndim == 3 else p
            d = float(np.abs(la - lp).max())
            if d > 1.0:
                notes.append("dcmdjpeg+rules vs PIL: %.2f levels" % d)
        except Exception as e:
            notes.append("PIL could not decode: %s" % e)
        return ds, a, converted
    if ts in (JPEG_LOSSLESS, JPEG_LOSSLESS_SV1):
        a = pixel_array_with(ds, gdcm_handler)
        with tempfile.TemporaryDirectory() as tmp:   # cross-check: DCMTK
            try:
                d = dcmdjpeg_raw(path, tmp)
                if not np.array_equal(d.astype(np.int64) & 0xFFFF, a.astype(np.int64) & 0xFFFF):
                    notes.append("JPEG lossless: GDCM and dcmdjpeg differ")
            except Exception as e:
                notes.append("dcmdjpeg: %s" % str(e)[:60])
        return ds, a, False
    # JPEG 2000 (GDCM, which uses OpenJPEG; cross-checked with PIL's OpenJPEG)
    a = pixel_array_with(ds, gdcm_handler)
    try:
        p = np.asarray(Image.open(io.BytesIO(frame1_bytes(ds))))
        # PIL scales other precisions to 16 bits and offsets signed data: compare 8/16-bit
        # unsigned images only
        if p.shape == a.shape and int(ds.BitsStored) in (8, 16) and not int(
                ds.get("PixelRepresentation", 0)):
            mask = (1 << int(ds.BitsStored)) - 1
            if not np.array_equal(p.astype(np.int64) & mask, a.astype(np.int64) & mask):
                notes.append("J2K: GDCM and PIL differ by %d" % np.abs(
                    (p.astype(np.int64) & mask) - (a.astype(np.int64) & mask)).max())
    except Exception:
        pass
    return ds, a, False


# ---------------------------------------------------------------- writing fixtures

class Out:
    def __init__(self, d):
        self.dir = d
        self.lines = []
        self.names = set()

    def add(self, name, kind, gray, frames, tol, status, desc, group="-", shape=(0, 0)):
        assert name not in self.names, name
        self.names.add(name)
        desc = " ".join(desc.split())
        if gray is None:
            self.lines.append("%s %s - %d %d %d %.9g %s %s %s" % (
                name, kind, shape[0], shape[1], frames, tol, status, group, desc))
            return
        g = np.asarray(gray, dtype=np.float64)
        assert g.ndim == 2 and np.isfinite(g).all(), name
        assert g.min() >= -1e-9 and g.max() <= 1 + 1e-9, (name, g.min(), g.max())
        exp = name + ".f32"
        g.astype("<f4").tofile(os.path.join(self.dir, exp))
        self.lines.append("%s %s %s %d %d %d %.9g %s %s %s" % (
            name, kind, exp, g.shape[0], g.shape[1], frames, tol, status, group, desc))

    def path(self, name):
        return os.path.join(self.dir, name)

    def dicom(self, name, desc, group="-", lenient=False, want=None, want_tol=None):
        """Decodes DIR/name independently and records what the rules give."""
        notes = []
        try:
            ds, samples, ct = decode_frame1(self.path(name), notes)
            gray = rules(ds, samples, ct)
        except Refused as e:
            self.add(name, "dicom", None, 0, 0, e.status, desc + " (expected: %s)" % e)
            return None
        ts = str(ds.file_meta.TransferSyntaxUID)
        colour = int(ds.get("SamplesPerPixel", 1)) == 3
        ybr = str(ds.PhotometricInterpretation).startswith("YBR_FULL") or ct
        tol = LEVEL if ts in LOSSY or (colour and ybr) else EXACT
        if want is not None:   # what the fixture was made to give
            d = float(np.abs(gray - want).max())
            assert d <= (want_tol if want_tol is not None else 1e-9), (name, d)
        for n in notes:
            print("note %s: %s" % (name, n), file=sys.stderr)
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        self.add(name, "dicom", gray, frames, tol, "lenient" if lenient else "ok",
                 desc + (" [%s]" % "; ".join(notes) if notes else ""), group)
        return gray


# ---------------------------------------------------------------- (a) pydicom's test files

def pydicom_files(out):
    for path in sorted(glob.glob(os.path.join(PYDICOM_FILES, "*.dcm"))):
        base = os.path.basename(path)
        try:
            ds = pydicom.dcmread(path, force=True)
        except Exception:
            continue
        if "PixelData" not in ds or "BitsAllocated" not in ds:
            continue
        ts = str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", ""))
        spp = int(ds.get("SamplesPerPixel", 1))
        pi = str(ds.get("PhotometricInterpretation", ""))
        if spp not in (1, 3) or pi.startswith("PALETTE"):
            continue
        if ts not in SUPPORTED and ts not in JPEG_LS:
            continue
        name = "pyd_" + base
        # pydicom (+GDCM) must decode it, unless the rules refuse it beforehand
        decodable = True
        try:
            if ts in JPEG_LS:
                pixel_array_with(read_dataset(path), gdcm_handler)
            else:
                decode_frame1(path, [])
        except Refused:
            pass
        except Exception:
            decodable = False
        shutil.copyfile(path, out.path(name))
        desc = "pydicom test file %s, %s, %s, %s %d/%d bits%s" % (
            base, ts, pi, "signed" if int(ds.get("PixelRepresentation", 0)) else "unsigned",
            int(ds.BitsStored), int(ds.BitsAllocated),
            ", %s frames" % ds.NumberOfFrames if "NumberOfFrames" in ds else "")
        if base == "badVR.dcm":
            continue
        if not decodable:
            # pydicom cannot decode it either (e.g. truncated Pixel Data): the reader must fail
            out.add(name, "dicom", None, 0, 0, "error", desc + " (undecodable: pydicom fails)")
            continue
        # SC_rgb_jpeg.dcm has an implicit VR dataset under an explicit VR syntax; the other
        # one's codestream has 4 bytes replaced by a Sequence Delimiter (valid DICOM, likely
        # not a valid J2K any more: what OpenJPEG makes of it, or an error)
        if base == "JPEG2000-embedded-sequence-delimiter.dcm":
            # 4 bytes of the codestream replaced by a Sequence Delimiter: valid DICOM, but GDCM
            # decodes the damaged J2K differently from run to run, so there is no pixel
            # reference: OK with the right size, or an error with a message
            out.add(name, "dicom", None, int(ds.get("NumberOfFrames", 1) or 1), 0, "lenient",
                    desc + " (a Sequence Delimiter inside a fragment; damaged codestream: no "
                    "pixel reference)", shape=(int(ds.Rows), int(ds.Columns)))
            continue
        lenient = base == "SC_rgb_jpeg.dcm"
        out.dicom(name, desc + (" (non-conformant: implicit VR under explicit syntax)"
                                if lenient else ""), lenient=lenient)

    # badVR.dcm: NumberOfFrames '1A' (not an IS) over 15 frames of data: OK with frame 1's
    # pixels, or an error
    base = "badVR.dcm"
    shutil.copyfile(os.path.join(PYDICOM_FILES, base), out.path("pyd_" + base))
    ds = pydicom.dcmread(os.path.join(PYDICOM_FILES, base))
    ds.NumberOfFrames = 15
    gray = rules(ds, pixel_array_with(ds, numpy_handler), False)
    out.add("pyd_" + base, "dicom", gray, 15, EXACT, "lenient",
            "pydicom test file badVR.dcm, 32-bit, NumberOfFrames '1A' (not an IS) over 15 "
            "frames of data: frame 1, or an error")


# ---------------------------------------------------------------- (b) files made from X-rays

UID = "1.2.826.0.1.3680043.10.1099."   # a fixed root: no random UIDs


def xray(rel, size=None):
    im = Image.open(os.path.join(XRAYS, rel)).convert("L")
    if size:
        im = im.resize(size, Image.BILINEAR)
    return np.asarray(im).astype(np.int64)


def write_dicom(path, frames, bits_alloc, bits_stored, pr=0, photometric="MONOCHROME2",
                planar=0, extra=None, ts=EXPLICIT_LE, no_meta=False, serial=[0]):
    """frames: list of stored-value arrays (rows x cols or rows x cols x 3), written as is
    (bits above BitsStored included), in native little-endian encoding."""
    serial[0] += 1
    a0 = frames[0]
    rows, cols = a0.shape[:2]
    spp = 3 if a0.ndim == 3 else 1
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    meta.MediaStorageSOPInstanceUID = UID + str(serial[0])
    meta.TransferSyntaxUID = ts
    meta.ImplementationClassUID = UID + "0"
    ds = FileDataset(path, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "OT"
    ds.PatientName = "Fixture^Dicom"
    ds.PatientID = "cxr_attn"
    ds.StudyInstanceUID = UID + "1000"
    ds.SeriesInstanceUID = UID + "1001"
    ds.SamplesPerPixel = spp
    ds.PhotometricInterpretation = photometric
    if spp == 3:
        ds.PlanarConfiguration = planar
    if len(frames) > 1:
        ds.NumberOfFrames = len(frames)
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = bits_alloc, bits_stored, bits_stored - 1
    ds.PixelRepresentation = pr
    for k, v in (extra or {}).items():
        if k == "HighBit":
            ds.HighBit = v
        elif isinstance(v, tuple) and len(v) == 2 and isinstance(v[0], str) and len(v[0]) == 2:
            ds.add_new(k, v[0], v[1])
        else:
            setattr(ds, k, v)
    dt = {8: "<u1", 16: "<u2", 32: "<u4"}[bits_alloc]
    mask = (1 << bits_alloc) - 1
    raw = b""
    for f in frames:
        if spp == 3 and planar == 1:
            f = np.moveaxis(f, -1, 0)
        raw += (np.asarray(f, dtype=np.int64) & mask).astype(dt).tobytes()
    if len(raw) % 2:
        raw += b"\0"
    ds.PixelData = raw
    ds["PixelData"].VR = "OB" if bits_alloc == 8 else "OW"
    ds.is_little_endian = True
    ds.is_implicit_VR = ts == IMPLICIT_LE
    if no_meta:
        del ds.file_meta
        ds.preamble = None
        pydicom.dcmwrite(path, ds, write_like_original=True)
    else:
        ds.save_as(path, write_like_original=False)


def lut_item(entries, first_mapped, bits, data, first_vr="US"):
    it = Dataset()
    it.add_new(0x00283002, first_vr, [entries, first_mapped, bits])   # LUTDescriptor
    it.add_new(0x00283003, "LO", "fixture LUT")                     # LUTExplanation
    it.add_new(0x00283006, "OW", np.asarray(data, "<u2").tobytes())  # LUTData
    return it


def xray_files(out):
    xa = xray("covid/COVID-1.png", (128, 160))       # 128 columns, 160 rows
    xb = xray("normal/Normal-10000.png", (127, 161))  # odd sides
    xc = xray("covid/COVID-10.png", (96, 96))
    xd = xray("normal/Normal-10001.png")              # 256 x 256, as shipped
    rng = np.random.default_rng(13)
    p = out.path
    A8 = xa / 255.0

    def made(name, desc, want=None, want_tol=None, **kw):
        return out.dicom(name, desc, want=want, want_tol=want_tol, **kw)

    # --- 8-bit basics and transfer syntaxes
    write_dicom(p("x_8bit_le.dcm"), [xa], 8, 8)
    made("x_8bit_le.dcm", "8-bit MONOCHROME2, explicit LE, no VOI: v/255", A8)
    write_dicom(p("x_8bit_implicit.dcm"), [xa], 8, 8, ts=IMPLICIT_LE)
    made("x_8bit_implicit.dcm", "8-bit, implicit VR LE", A8)
    write_dicom(p("x_8bit_odd.dcm"), [xb], 8, 8)
    made("x_8bit_odd.dcm", "8-bit, 127x161 (odd pixel count, padded Pixel Data)", xb / 255.0)
    run("dcmconv", "+td", p("x_8bit_le.dcm"), p("x_8bit_deflated.dcm"))
    made("x_8bit_deflated.dcm", "8-bit, deflated explicit LE (dcmconv +td)", A8)
    write_dicom(p("x_8bit_nopreamble_implicit.dcm"), [xa], 8, 8, ts=IMPLICIT_LE, no_meta=True)
    made("x_8bit_nopreamble_implicit.dcm",
         "8-bit dataset only (no preamble, no file meta), implicit VR LE", A8)
    write_dicom(p("x_8bit_nopreamble_explicit.dcm"), [xa], 8, 8, ts=EXPLICIT_LE, no_meta=True)
    made("x_8bit_nopreamble_explicit.dcm",
         "8-bit dataset only (no preamble, no file meta), explicit VR LE", A8)
    write_dicom(p("x_mono1.dcm"), [255 - xa], 8, 8, photometric="MONOCHROME1")
    made("x_mono1.dcm", "MONOCHROME1, stored 255 - v: gray equals the original v/255", A8)

    # --- 12 and 16 bits
    a12 = np.rint(xa * 4095 / 255).astype(np.int64)
    junk = rng.integers(0, 16, a12.shape) << 12
    write_dicom(p("x_12bit.dcm"), [a12], 16, 12)
    made("x_12bit.dcm", "12 stored of 16 allocated, no VOI: stored/4095", a12 / 4095.0)
    write_dicom(p("x_12bit_junk.dcm"), [a12 | junk], 16, 12)
    made("x_12bit_junk.dcm", "12 of 16 bits with junk in bits 12-15 (must be masked)",
         a12 / 4095.0)
    run("dcmconv", "+tb", p("x_12bit.dcm"), p("x_12bit_be.dcm"))
    made("x_12bit_be.dcm", "12-bit, explicit VR big endian (dcmconv +tb)", a12 / 4095.0)
    write_dicom(p("x_16bit.dcm"), [xa * 257], 16, 16)
    made("x_16bit.dcm", "16-bit stored v*257, no VOI: v/255", A8, 1e-7)
    run("dcmconv", "+tb", p("x_16bit.dcm"), p("x_16bit_be.dcm"))
    made("x_16bit_be.dcm", "16-bit v*257, explicit VR big endian", A8, 1e-7)
    write_dicom(p("x_32bit.dcm"), [xa * 16843009], 32, 32)
    made("x_32bit.dcm", "32-bit stored v*0x01010101, no VOI: v/255", A8, 1e-7)

    # --- modality rescale and VOI
    resc = {"RescaleSlope": "0.25", "RescaleIntercept": "-250", "RescaleType": "US"}
    write_dicom(p("x_rescale.dcm"), [xa * 4 + 1000], 16, 16, extra=resc)
    made("x_rescale.dcm", "stored v*4+1000, slope 0.25 intercept -250 (x = v), no VOI: "
         "(x + 250)/16383.75", (xa + 250) / 16383.75)
    for fn, c, w in (("LINEAR", "127.5", "256"), ("LINEAR", "100", "120"),
                     ("LINEAR_EXACT", "100", "120"), ("SIGMOID", "100", "60")):
        ex = dict(resc, WindowCenter=c, WindowWidth=w)
        if fn != "LINEAR":
            ex["VOILUTFunction"] = fn
        nm = "x_rescale_window_%s_%s_%s.dcm" % (fn.lower(), c, w)
        write_dicom(p(nm), [xa * 4 + 1000], 16, 16, extra=ex)
        made(nm, "rescale (x = v) then window c=%s w=%s %s" % (
            c, w, fn if fn != "LINEAR" else "(VOILUTFunction absent: LINEAR)"))
    write_dicom(p("x_window_linear_explicit.dcm"), [a12], 16, 12,
                extra={"WindowCenter": "2000", "WindowWidth": "3000", "VOILUTFunction": "LINEAR"})
    made("x_window_linear_explicit.dcm", "12-bit, window 2000/3000, VOILUTFunction LINEAR given")
    write_dicom(p("x_window_multi.dcm"), [a12], 16, 12,
                extra={"WindowCenter": ["1500", "3000"], "WindowWidth": ["1000", "500"],
                       "WindowCenterWidthExplanation": ["FIRST", "SECOND"]})
    made("x_window_multi.dcm", "12-bit, two windows 1500/1000 and 3000/500: the first is used")
    write_dicom(p("x_window_mono1.dcm"), [4095 - a12], 16, 12, photometric="MONOCHROME1",
                extra={"WindowCenter": "2047.5", "WindowWidth": "4096"})
    made("x_window_mono1.dcm", "MONOCHROME1 12-bit with window 2047.5/4096 (inverted after VOI)")
    lut = np.rint(65535 * (np.arange(200) / 199.0) ** 0.5).astype(np.int64)
    write_dicom(p("x_voi_lut.dcm"), [xa], 8, 8,
                extra={"VOILUTSequence": Sequence([lut_item(200, 30, 16, lut)]),
                       "WindowCenter": "10", "WindowWidth": "5"})
    made("x_voi_lut.dcm", "VOI LUT sequence (200 entries from 30, 16 bits, sqrt curve) wins "
         "over a window also present; x clamped to [30, 229]")
    lut2 = np.rint(4095 * (np.arange(4096) / 4095.0) ** 2).astype(np.int64)
    write_dicom(p("x_voi_lut_rescale.dcm"), [a12 + 100], 16, 12,
                extra={"RescaleSlope": "1", "RescaleIntercept": "-100",
                       "VOILUTSequence": Sequence([lut_item(4096, 0, 12, lut2),
                                                   lut_item(2, 0, 16, [0, 65535])])})
    made("x_voi_lut_rescale.dcm", "rescale intercept -100, then the first of two VOI LUT items "
         "(4096 entries, 12-bit data, square curve)")

    # --- signed
    s16 = xa * 100 - 12800
    write_dicom(p("x_signed16.dcm"), [s16], 16, 16, pr=1)
    made("x_signed16.dcm", "signed 16-bit v*100-12800, no VOI: (x + 32768)/65535",
         (s16 + 32768) / 65535.0)
    s12 = a12 - 2048
    write_dicom(p("x_signed12.dcm"), [s12 & 0x0FFF], 16, 12, pr=1,
                extra={"WindowCenter": "0", "WindowWidth": "4000"})
    made("x_signed12.dcm", "signed 12 of 16 bits stored without sign bits above bit 11 "
         "(sign extension from bit 11), window 0/4000")
    write_dicom(p("x_signed12_nowin.dcm"), [s12], 16, 12, pr=1,
                extra={"RescaleSlope": "2", "RescaleIntercept": "10"})
    made("x_signed12_nowin.dcm", "signed 12-bit (sign bits present), slope 2 intercept 10, no "
         "VOI: [-2048, 2047] through the rescale onto [0, 1]", (s12 + 2048) / 4095.0, 1e-9)
    write_dicom(p("x_signed_voi_lut.dcm"), [s12], 16, 12, pr=1,
                extra={"VOILUTSequence": Sequence([lut_item(
                    3000, -1500, 16, np.rint(np.linspace(0, 65535, 3000)).astype(np.int64),
                    first_vr="SS")])})
    made("x_signed_voi_lut.dcm", "signed 12-bit with a VOI LUT whose first mapped value is "
         "-1500 (SS), 3000 entries")

    # --- colour
    rgb = np.stack([xa, np.rint(xa * 0.8).astype(np.int64), 255 - xa], -1)
    luma = (0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]) / 255.0
    write_dicom(p("x_rgb.dcm"), [rgb], 8, 8, photometric="RGB")
    made("x_rgb.dcm", "RGB colour-by-pixel: luma/255", luma)
    write_dicom(p("x_rgb_planar.dcm"), [rgb], 8, 8, photometric="RGB", planar=1)
    made("x_rgb_planar.dcm", "RGB colour-by-plane (PlanarConfiguration 1)", luma)
    ycc = rgb @ np.array([[0.299, -0.168736, 0.5], [0.587, -0.331264, -0.418688],
                          [0.114, 0.5, -0.081312]]) + [0, 128, 128]
    ycc = np.clip(np.rint(ycc), 0, 255).astype(np.int64)
    write_dicom(p("x_ybr_full.dcm"), [ycc], 8, 8, photometric="YBR_FULL")
    made("x_ybr_full.dcm", "YBR_FULL native: to RGB by the full-range 601 equations, then luma "
         "(1 level: conversion rounding is the reader's)", luma, 1.5 / 255)
    rgb16 = rgb * 257
    write_dicom(p("x_rgb16.dcm"), [rgb16], 16, 16, photometric="RGB")
    made("x_rgb16.dcm", "RGB 16-bit: luma/65535", luma, 1e-9)
    run("dcmcrle", p("x_rgb16.dcm"), p("x_rgb16_rle.dcm"))
    made("x_rgb16_rle.dcm", "RGB 16-bit, RLE", luma, 1e-9)
    run("dcmcrle", p("x_rgb.dcm"), p("x_rgb_rle.dcm"))
    made("x_rgb_rle.dcm", "RGB 8-bit, RLE", luma)
    run("dcmcjpeg", "+eb", "+un", p("x_rgb.dcm"), p("x_rgb_jpeg_422.dcm"))
    made("x_rgb_jpeg_422.dcm", "RGB through dcmcjpeg +eb (YBR_FULL_422, JFIF)")
    run("dcmcjpeg", "+eb", "+un", "+cr", p("x_rgb.dcm"), p("x_rgb_jpeg_rgb.dcm"))
    made("x_rgb_jpeg_rgb.dcm", "RGB through dcmcjpeg +eb +cr (RGB components, Adobe transform 0)")
    run("dcmcjpeg", "+eb", "+un", "+s4", p("x_ybr_full.dcm"), p("x_ybr_jpeg_444.dcm"))
    made("x_ybr_jpeg_444.dcm", "YBR_FULL source through dcmcjpeg +eb +s4 (4:4:4)")

    # --- RLE
    run("dcmcrle", p("x_8bit_odd.dcm"), p("x_8bit_odd_rle.dcm"))
    made("x_8bit_odd_rle.dcm", "8-bit 127x161, RLE (odd segments)", xb / 255.0)
    run("dcmcrle", p("x_16bit.dcm"), p("x_16bit_rle.dcm"))
    made("x_16bit_rle.dcm", "16-bit v*257, RLE", A8, 1e-7)
    run("dcmcrle", p("x_signed16.dcm"), p("x_signed16_rle.dcm"))
    made("x_signed16_rle.dcm", "signed 16-bit, RLE", (s16 + 32768) / 65535.0)

    # --- lossy JPEG (8-bit: decoded by libjpeg-turbo on our side, dcmdjpeg here: 1 level)
    run("dcmcjpeg", "+eb", "+un", p("x_8bit_le.dcm"), p("x_jpeg_baseline.dcm"))
    made("x_jpeg_baseline.dcm", "8-bit gray, JPEG baseline (dcmcjpeg +eb)")
    run("dcmcjpeg", "+eb", "+un", "+fs", "1", p("x_8bit_le.dcm"), p("x_jpeg_baseline_frags.dcm"))
    made("x_jpeg_baseline_frags.dcm", "JPEG baseline in 1 KiB fragments (+fs 1)")
    run("dcmcjpeg", "+eb", "+un", p("x_8bit_odd.dcm"), p("x_jpeg_baseline_odd.dcm"))
    made("x_jpeg_baseline_odd.dcm", "JPEG baseline, 127x161")
    run("dcmcjpeg", "+ee", "+un", p("x_8bit_le.dcm"), p("x_jpeg_extended8.dcm"))
    made("x_jpeg_extended8.dcm", "8-bit gray, JPEG extended process 2/4 (SOF1, 8-bit)")
    run("dcmcjpeg", "+ee", "+un", p("x_12bit.dcm"), p("x_jpeg_extended12.dcm"))
    made("x_jpeg_extended12.dcm", "12-bit JPEG extended: a 12-bit lossy JPEG")
    run("dcmcjpeg", "+eb", "+un", p("x_mono1.dcm"), p("x_jpeg_mono1.dcm"))
    made("x_jpeg_mono1.dcm", "MONOCHROME1 8-bit, JPEG baseline")

    # --- JPEG lossless (process 14): every predictor, 8/12/16 bits, point transform
    for sv in range(1, 8):
        nm = "x_jpeg_ll_sv%d.dcm" % sv
        run("dcmcjpeg", "+el", "+sv", str(sv), p("x_8bit_odd.dcm"), p(nm))
        made(nm, "8-bit 127x161, JPEG lossless predictor %d" % sv, xb / 255.0)
    run("dcmcjpeg", "+e1", p("x_8bit_le.dcm"), p("x_jpeg_ll_e1.dcm"))
    made("x_jpeg_ll_e1.dcm", "8-bit, JPEG lossless SV1 syntax .70 (dcmcjpeg +e1)", A8)
    run("dcmcjpeg", "+e1", p("x_12bit.dcm"), p("x_jpeg_ll_12bit.dcm"))
    made("x_jpeg_ll_12bit.dcm", "12-bit, JPEG lossless SV1", a12 / 4095.0)
    run("dcmcjpeg", "+el", "+sv", "7", p("x_16bit.dcm"), p("x_jpeg_ll_16bit_sv7.dcm"))
    made("x_jpeg_ll_16bit_sv7.dcm", "16-bit v*257, JPEG lossless predictor 7", A8, 1e-7)
    run("dcmcjpeg", "+e1", p("x_16bit.dcm"), p("x_jpeg_ll_16bit.dcm"))
    made("x_jpeg_ll_16bit.dcm", "16-bit v*257, JPEG lossless SV1", A8, 1e-7)
    run("dcmcjpeg", "+el", "+sv", "1", "+pt", "2", p("x_8bit_le.dcm"), p("x_jpeg_ll_pt2.dcm"))
    made("x_jpeg_ll_pt2.dcm", "8-bit, JPEG lossless predictor 1 with point transform 2 "
         "(samples come out shifted back: multiples of 4)")
    run("dcmcjpeg", "+e1", p("x_rgb.dcm"), p("x_rgb_jpeg_ll.dcm"))
    made("x_rgb_jpeg_ll.dcm", "RGB 8-bit, JPEG lossless SV1 (3 components)", luma)

    # --- JPEG 2000 (OpenJPEG through PIL, encapsulated with pydicom)
    def j2k_file(name, arr, bits, lossy, desc, want=None):
        buf = io.BytesIO()
        im = Image.fromarray(arr.astype(np.uint8 if bits == 8 else np.uint16),
                             mode="L" if bits == 8 else "I;16")
        if lossy:
            im.save(buf, "JPEG2000", codec="j2k", irreversible=True,
                    quality_mode="rates", quality_layers=[8])
        else:
            im.save(buf, "JPEG2000", codec="j2k", irreversible=False)
        write_dicom(p(name), [arr], bits if bits == 8 else 16, bits)
        ds = pydicom.dcmread(p(name))
        ds.file_meta.TransferSyntaxUID = J2K if lossy else J2K_LOSSLESS
        ds.PixelData = encapsulate([buf.getvalue()])
        ds["PixelData"].VR = "OB"
        ds["PixelData"].is_undefined_length = True
        ds.is_implicit_VR, ds.is_little_endian = False, True
        ds.save_as(p(name), write_like_original=False)
        made(name, desc, want)
    j2k_file("x_j2k_lossless8.dcm", xa, 8, False, "8-bit, JPEG 2000 lossless (5/3)", A8)
    j2k_file("x_j2k_lossless16.dcm", xa * 257, 16, False, "16-bit v*257, JPEG 2000 lossless",
             A8)
    j2k_file("x_j2k_lossy8.dcm", xb, 8, True, "8-bit 127x161, JPEG 2000 irreversible (9/7)")

    # --- multi-frame: frame 1 only
    write_dicom(p("x_2frames.dcm"), [xc, 255 - xc], 8, 8)
    made("x_2frames.dcm", "2 frames, native: frame 1", xc / 255.0)
    run("dcmcrle", p("x_2frames.dcm"), p("x_2frames_rle.dcm"))
    made("x_2frames_rle.dcm", "2 frames, RLE: frame 1", xc / 255.0)
    run("dcmcjpeg", "+e1", p("x_2frames.dcm"), p("x_2frames_jpeg_ll.dcm"))
    made("x_2frames_jpeg_ll.dcm", "2 frames, JPEG lossless: frame 1", xc / 255.0)
    run("dcmcjpeg", "+eb", "+un", p("x_2frames.dcm"), p("x_2frames_jpeg.dcm"))
    made("x_2frames_jpeg.dcm", "2 frames, JPEG baseline: frame 1")

    # --- what the rules refuse
    write_dicom(p("x_err_highbit.dcm"), [a12], 16, 12, extra={"HighBit": 15})
    made("x_err_highbit.dcm", "HighBit 15 with BitsStored 12")
    write_dicom(p("x_err_bits_stored_0.dcm"), [xa], 8, 8, extra={"BitsStored": 0, "HighBit": 7})
    made("x_err_bits_stored_0.dcm", "BitsStored 0")
    write_dicom(p("x_err_bits_stored_over.dcm"), [xa], 8, 8,
                extra={"BitsStored": 12, "HighBit": 11})
    made("x_err_bits_stored_over.dcm", "BitsStored 12 above BitsAllocated 8")
    write_dicom(p("x_err_palette.dcm"), [xa], 8, 8, photometric="PALETTE COLOR")
    made("x_err_palette.dcm", "PALETTE COLOR: an error naming it")
    run("dcmcjpls", p("x_8bit_le.dcm"), p("x_jpeg_ls.dcm"))
    made("x_jpeg_ls.dcm", "JPEG-LS lossless (dcmcjpls)")

    # --- the same X-ray scores the same: PNG, 8-bit DICOM, JPEG lossless SV1, 16-bit v*257
    D = xd / 255.0
    shutil.copyfile(os.path.join(XRAYS, "normal/Normal-10001.png"), p("same_xray.png"))
    out.add("same_xray.png", "png", D, 1, EXACT, "ok", "the PNG itself: v/255", "same_xray")
    write_dicom(p("same_xray_8bit.dcm"), [xd], 8, 8)
    made("same_xray_8bit.dcm", "the PNG's pixels as 8-bit explicit LE", D, group="same_xray")
    run("dcmcjpeg", "+e1", p("same_xray_8bit.dcm"), p("same_xray_jpeg_ll.dcm"))
    made("same_xray_jpeg_ll.dcm", "the PNG's pixels, JPEG lossless SV1", D, group="same_xray")
    write_dicom(p("same_xray_16bit.dcm"), [xd * 257], 16, 16)
    made("same_xray_16bit.dcm", "the PNG's pixels as 16-bit v*257, no VOI", D, 1e-7,
         group="same_xray")

    # --- plain JPEG files (PIL, libjpeg-turbo): PIL's decoded samples, luma for colour
    def jpeg_file(name, arr, desc, **save):
        im = Image.fromarray(arr.astype(np.uint8), "L" if arr.ndim == 2 else "RGB")
        im.save(p(name), "JPEG", **save)
        d = np.asarray(Image.open(p(name))).astype(np.float64)
        g = d @ [0.299, 0.587, 0.114] if d.ndim == 3 else d
        out.add(name, "jpeg", g / 255.0, 1, LEVEL, "ok", desc)
    jpeg_file("j_gray_baseline.jpg", xa, "PIL JPEG, gray baseline q90", quality=90)
    jpeg_file("j_rgb_baseline.jpg", rgb, "PIL JPEG, colour baseline 4:2:0 q90", quality=90)
    jpeg_file("j_rgb_444.jpg", rgb, "PIL JPEG, colour baseline 4:4:4 q95", quality=95,
              subsampling=0)
    jpeg_file("j_gray_progressive.jpg", xb, "PIL JPEG, gray progressive, 127x161",
              quality=85, progressive=True)
    rgbb = np.stack([xb, xb // 2, 255 - xb], -1)
    jpeg_file("j_rgb_progressive.jpg", rgbb, "PIL JPEG, colour progressive 4:2:0, 127x161",
              quality=85, progressive=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for f in glob.glob(os.path.join(args.out, "*")):
        if os.path.isfile(f):
            os.remove(f)
    out = Out(args.out)
    pydicom_files(out)
    xray_files(out)
    with open(os.path.join(args.out, "manifest.txt"), "w") as f:
        f.write("# test/ref/dicom_reference.py: file kind expected rows columns frames "
                "tolerance status group description\n")
        f.write("".join(l + "\n" for l in out.lines))
    total = sum(os.path.getsize(os.path.join(args.out, n)) for n in os.listdir(args.out))
    print("%d entries, %.1f MB in %s" % (len(out.lines), total / 1e6, args.out))


if __name__ == "__main__":
    main()
