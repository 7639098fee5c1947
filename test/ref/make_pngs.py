#!/usr/bin/env python3
"""Generates the project's own test PNGs with an independent encoder (Python's zlib, no libpng):
every colour type and bit depth, Adam7 interlacing, and broken files. Writes

  test/sql/png_kinds.sql    the pg_regress script: images as hex, with the gray values this
                            script expects a decoder to produce (from the raw samples)
  test/data/*.png           small X-ray-like images for scoring tests

    python3 test/ref/make_pngs.py
"""
import math
import os
import random
import struct
import zlib

ROOT = os.path.join(os.path.dirname(__file__), "..")
ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def pack_row(samples, depth):
    if depth == 16:
        return b"".join(struct.pack(">H", s) for s in samples)
    if depth == 8:
        return bytes(samples)
    out, acc, nbits = bytearray(), 0, 0
    for s in samples:
        acc = (acc << depth) | s
        nbits += depth
        if nbits == 8:
            out.append(acc)
            acc, nbits = 0, 0
    if nbits:
        out.append(acc << (8 - nbits))
    return bytes(out)


def encode(pixels, w, h, depth, ctype, palette=None, trns=None, interlace=False):
    """pixels[y][x] is a tuple of samples (or a palette index tuple)."""
    raw = bytearray()
    passes = ADAM7 if interlace else [(0, 0, 1, 1)]
    for x0, y0, dx, dy in passes:
        xs = list(range(x0, w, dx))
        if not xs:
            continue
        for y in range(y0, h, dy):
            samples = [s for x in xs for s in pixels[y][x]]
            raw += b"\x00" + pack_row(samples, depth)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, int(interlace)))
    if palette:
        png += chunk(b"PLTE", b"".join(bytes(c) for c in palette))
    if trns:
        png += chunk(b"tRNS", trns)
    return png + chunk(b"IDAT", zlib.compress(bytes(raw), 9)) + chunk(b"IEND", b"")


def luma(r, g, b):
    return 0.299 * r + 0.587 * g + 0.114 * b


def cases():
    rnd = random.Random(5)
    w = h = 13
    out = []
    for depth in (1, 2, 4, 8, 16):
        mx = (1 << depth) - 1
        px = [[(rnd.randint(0, mx),) for _ in range(w)] for _ in range(h)]
        exp = [[p[0] / mx for p in row] for row in px]
        out.append((f"gray{depth}", encode(px, w, h, depth, 0), exp))
        if depth == 8:
            out.append(("gray8_interlaced", encode(px, w, h, depth, 0, interlace=True), exp))
    for ow, oh in ((1, 1), (40, 1), (1, 40)):   # degenerate shapes: one pixel, one row, one column
        px = [[(rnd.randint(0, 255),) for _ in range(ow)] for _ in range(oh)]
        out.append((f"gray8_{ow}x{oh}", encode(px, ow, oh, 8, 0), [[p[0] / 255 for p in r] for r in px]))
    for depth in (8, 16):
        mx = (1 << depth) - 1
        px = [[(rnd.randint(0, mx), mx) for _ in range(w)] for _ in range(h)]
        out.append((f"gray_alpha{depth}", encode(px, w, h, depth, 4), [[p[0] / mx for p in r] for r in px]))
        px = [[tuple(rnd.randint(0, mx) for _ in range(3)) for _ in range(w)] for _ in range(h)]
        exp = [[luma(*p) / mx for p in r] for r in px]
        out.append((f"rgb{depth}", encode(px, w, h, depth, 2), exp))
        if depth == 8:
            out.append(("rgb8_interlaced", encode(px, w, h, depth, 2, interlace=True), exp))
        # alpha is ignored: 8-bit samples are read as stored; 16-bit ones come back
        # premultiplied and are divided again, so only opaque-ish alpha keeps full precision
        px = [[tuple(rnd.randint(0, mx) for _ in range(3)) + (mx if depth == 16 else rnd.randint(1, mx),)
               for _ in range(w)] for _ in range(h)]
        out.append((f"rgba{depth}", encode(px, w, h, depth, 6), [[luma(*p[:3]) / mx for p in r] for r in px]))
    for depth in (1, 2, 4, 8):
        n = 1 << depth
        palette = [tuple(rnd.randint(0, 255) for _ in range(3)) for _ in range(n)]
        px = [[(rnd.randint(0, n - 1),) for _ in range(w)] for _ in range(h)]
        exp = [[luma(*palette[p[0]]) / 255 for p in r] for r in px]
        out.append((f"palette{depth}", encode(px, w, h, depth, 3, palette=palette), exp))
        if depth == 8:
            out.append(("palette8_interlaced_trns",
                        encode(px, w, h, depth, 3, palette=palette, trns=bytes([128] * n), interlace=True), exp))
    return out


def broken():
    px = [[(x * 16 + y,) for x in range(16)] for y in range(16)]
    good = encode(px, 16, 16, 8, 0)
    crc_bad = bytearray(good)
    crc_bad[-20] ^= 0xFF  # inside IDAT: its CRC no longer matches
    def ihdr(w, h):
        return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(b"\x00" * 17)) + chunk(b"IEND", b""))
    return [
        ("empty", b""),
        ("not_png", b"GIF89a\x01\x00\x01\x00\x00\x00\x00;"),
        ("signature_only", good[:8]),
        ("truncated_header", good[:20]),
        ("truncated_data", good[: len(good) // 2]),
        ("bad_crc", bytes(crc_bad)),
        ("zero_width", ihdr(0, 16)),
        ("huge", ihdr(100000, 100000)),
    ]


def training_set():
    """X-ray-like images with a learnable difference: a bright blob in a lung field (label 1)."""
    rows = []
    rnd = random.Random(11)
    for split, n in (("train", 48), ("val", 24)):
        for i in range(n):
            label = i % 2 == 1
            blob = (rnd.choice((-0.38, 0.38)) + rnd.uniform(-0.1, 0.1), rnd.uniform(-0.35, 0.35)) if label else None
            rows.append((split, label, xray_like(1000 + len(rows), side=32, blob=blob)))
    return rows


def xray_like(seed, side=64, blob=None):
    """A chest-X-ray-like gray image: bright body, two darker lung fields, optional blob."""
    rnd = random.Random(seed)
    px = []
    for y in range(side):
        row = []
        for x in range(side):
            u, v = (x - side / 2) / (side / 2), (y - side / 2) / (side / 2)
            body = 0.75 if u * u + 0.6 * v * v < 0.9 else 0.1
            for cx in (-0.38, 0.38):
                if ((u - cx) / 0.28) ** 2 + (v / 0.55) ** 2 < 1:
                    body = 0.3
            if blob and ((u - blob[0]) ** 2 + (v - blob[1]) ** 2) < 0.02:
                body = 0.95
            row.append((max(0, min(255, int(255 * body + rnd.gauss(0, 8)))),))
        px.append(row)
    return encode(px, side, side, 8, 0)


def main():
    lines = ["-- Generated by test/ref/make_pngs.py (an independent PNG encoder in Python): do not edit.",
             "-- Every PNG kind decodes to the gray values computed from its raw samples.",
             "CREATE TABLE png_cases (kind text PRIMARY KEY, img bytea, w int, h int, expected real[]);"]
    for kind, data, exp in cases():
        flat = ",".join(f"{v:.7f}" for row in exp for v in row)
        lines.append(f"INSERT INTO png_cases VALUES ('{kind}', '\\x{data.hex()}', {len(exp[0])}, {len(exp)}, '{{{flat}}}');")
    lines.append("CREATE TABLE png_broken (kind text PRIMARY KEY, img bytea);")
    for kind, data in broken():
        lines.append(f"INSERT INTO png_broken VALUES ('{kind}', '\\x{data.hex()}');")
    lines.append(open(os.path.join(os.path.dirname(__file__), "png_kinds_checks.sql")).read())
    with open(os.path.join(ROOT, "sql", "png_kinds.sql"), "w") as f:
        f.write("\n".join(lines) + "\n")
    # train.sql and train_resume.sql: each stands alone (valgrind runs them on two servers at
    # once); in one database, the second replaces the first's table
    for name, first in (("train", True), ("train_resume", False)):
        lines = ["-- Generated by test/ref/make_pngs.py: do not edit. Images with a bright blob in a lung",
                 "-- field are labelled 1; a network must learn to see it."]
        if not first:
            lines += ["SET client_min_messages = warning;",
                      "DROP TABLE IF EXISTS blobs;  -- train.sql's, when it ran first in this database"]
        lines.append("CREATE TABLE blobs (id serial PRIMARY KEY, split text, label boolean, image cxr.cxr_image);")
        for split, label, data in training_set():
            lines.append(f"INSERT INTO blobs (split, label, image) VALUES ('{split}', {str(label).lower()}, '\\x{data.hex()}');")
        lines.append(open(os.path.join(os.path.dirname(__file__), f"{name}_checks.sql")).read())
        with open(os.path.join(ROOT, "sql", f"{name}.sql"), "w") as f:
            f.write("\n".join(lines) + "\n")
    os.makedirs(os.path.join(ROOT, "data"), exist_ok=True)
    for i in range(4):
        with open(os.path.join(ROOT, "data", f"xray{i}.png"), "wb") as f:
            f.write(xray_like(i, blob=(0.35, 0.1) if i % 2 else None))
    print("wrote test/sql/png_kinds.sql, test/sql/train.sql, test/sql/train_resume.sql and test/data/xray*.png")


if __name__ == "__main__":
    main()
