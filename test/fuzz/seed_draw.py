#!/usr/bin/env python3
"""Writes seeds for test/fuzz/fuzz_draw.c: a few inputs per mode (canvas operations, overlay,
figure, training curves), encoded the way the target reads them, so that the fuzzer starts
from inputs that reach every drawing function, with sizes of 1, odd aspect ratios, extreme
coordinates and non-finite values.

    seed_draw.py OUTDIR
"""
import os
import struct
import sys

# ---- encoders mirroring the target's pick_* readers ----
INT_MIN, INT_MAX = 0, 1  # indices into pick_int's special table
F_NAN, F_INF, F_NINF, F_NZERO, F_MAX, F_NMAX = 0, 1, 2, 3, 4, 5  # pick_float's
D_NAN, D_INF, D_NINF, D_NZERO, D_MAX, D_NMAX = 0, 1, 2, 3, 4, 5  # pick_double's


def i8(v):  # pick_int: a small signed value
    return bytes([0, v & 0xFF])


def i32(v):  # pick_int: any int
    return bytes([5]) + struct.pack("<i", v)


def ispecial(k):
    return bytes([6, k])


def funit(b):  # pick_float: b / 255
    return bytes([0, b])


def fraw(f):
    return bytes([4]) + struct.pack("<f", f)


def fspecial(k):
    return bytes([6, k])


def floats(mode, table, stride=1):  # pick_floats
    assert 1 <= len(table) <= 16
    return bytes([mode, len(table) - 1]) + b"".join(table) + bytes([stride - 1])


def dunit(b):
    return bytes([0, b])


def dany(d):  # pick_double: any double, raw
    return bytes([4]) + struct.pack("<d", d)


def dspecial(k):
    return bytes([5, k])


def series(mode, table):  # pick_series; mode 0 is NULL
    if mode == 0:
        return bytes([0])
    return bytes([mode, len(table) - 1]) + b"".join(table)


def text(s):  # pick_str
    assert len(s) < 200
    return bytes([len(s)]) + s


NULL_TEXT = bytes([0xFF])


def rgb(r, g, b):
    return bytes([r, g, b])


# ---- mode 0: canvas operations ----
def canvas(w, h, *ops):
    return bytes([0, w - 1, h - 1]) + b"".join(ops)


def fill(c):
    return bytes([0]) + c


def rect(x, y, w, h, c):
    return bytes([1]) + x + y + w + h + c


def line(x0, y0, x1, y1, t, c):
    return bytes([2]) + x0 + y0 + x1 + y1 + bytes([t & 0xFF]) + c


def draw_text(x, y, scale, c, s):
    return bytes([4]) + x + y + bytes([scale & 0xFF]) + c + s


def text_fit(x, y, max_w, align, scale, c, s):
    return bytes([5]) + x + y + max_w + bytes([align, scale & 0xFF]) + c + s


def colormap(v, u):
    return bytes([6]) + v + u


def empty(w, h):
    return bytes([7]) + w + h


SEEDS = {
    "canvas_ops": canvas(
        64, 48,
        fill(rgb(255, 255, 255)),
        rect(i8(5), i8(-3), i8(20), i8(100), rgb(10, 20, 30)),
        line(i8(0), i8(0), i8(63), i8(47), 1, rgb(200, 0, 0)),
        line(i8(3), i8(40), i8(60), i8(2), 5, rgb(0, 200, 0)),
        line(ispecial(INT_MIN), ispecial(INT_MIN), ispecial(INT_MAX), ispecial(INT_MAX), 3,
             rgb(0, 0, 200)),
        draw_text(i8(2), i8(2), 1, rgb(0, 0, 0), text(b"Hello, X-ray! \xc3\xa9\x01")),
        text_fit(i8(1), i8(20), i8(40), 1, 1, rgb(9, 9, 9),
                 text(b"a caption far too long for its forty pixels")),
        text_fit(i8(0), i8(30), i8(63), 2, 2, rgb(9, 9, 9), text(b"ok")),
        colormap(funit(128), fspecial(F_NAN)),
        empty(i8(0), i8(9)),
    ),
    "canvas_1x1": canvas(
        1, 1,
        line(i32(-1000000), i8(0), i32(1000000), i8(0), 64, rgb(1, 2, 3)),
        draw_text(i8(-2), i8(-3), 0, rgb(4, 5, 6), text(b"W")),
        text_fit(i8(0), i8(0), ispecial(INT_MAX), 0, -5, rgb(7, 8, 9), text(b"xyz")),
        rect(ispecial(INT_MIN), ispecial(INT_MIN), ispecial(INT_MAX), ispecial(INT_MAX),
             rgb(1, 1, 1)),
    ),
    "canvas_tall": canvas(
        1, 256,
        line(i8(0), i8(0), i8(0), i8(-1), 64, rgb(50, 60, 70)),
        draw_text(i8(0), i8(100), 64, rgb(1, 2, 3), text(b"~")),
        colormap(fspecial(F_INF), fraw(-1e-30)),
    ),
    # mode 1: a 100 x 80 X-ray, 13 x 13 grid, two captions
    "overlay": bytes([1, 0, 99, 79, 12, 2]) + text(b"left lower lobe") + NULL_TEXT
    + floats(1, [funit(0)]) + floats(0, [funit(0), funit(40), funit(255), fspecial(F_NAN)], 3),
    # wide (text scale 2), no lines array, sizes of any kind; grid with nothing positive
    "overlay_wide": bytes([1, 1 | 2 | 4, 0, 9, 6]) + struct.pack("<H", 799) + bytes([3])
    + text(b"a") + text(b"b" * 150) + NULL_TEXT
    + ispecial(INT_MAX) + i8(1) + ispecial(INT_MAX) + i8(0)
    + floats(0, [fspecial(F_NAN), fspecial(F_INF), fspecial(F_MAX), funit(3)])
    + floats(0, [fspecial(F_NAN), fspecial(F_INF), fspecial(F_NINF), fraw(-2.0)]),
    # mode 2: 2 x 3 panels of 60 with a title; panels with and without gray and map
    "figure": bytes([2, 2, 1, 2]) + struct.pack("<H", 59) + text(b"Figure 1: attention")
    + bytes([0]) + text(b"attn1") + bytes([99, 79]) + floats(1, [funit(0)])
    + bytes([12]) + floats(0, [funit(0), funit(255)], 2)
    + bytes([2]) + text(b"plain") + bytes([0, 255]) + floats(0, [fspecial(F_NAN), funit(7)])
    + bytes([1]) + text(b"empty")
    + bytes([0]) + NULL_TEXT + bytes([255, 0]) + floats(3, [fspecial(F_MAX)])
    + bytes([0]) + floats(0, [fspecial(F_NAN)])
    + bytes([2]) + text(b"tall") + bytes([0, 84]) + floats(1, [funit(0)]),
    # a panel with a side below 1: refused
    "figure_bad": bytes([2, 0, 0, 1]) + struct.pack("<H", 32) + bytes([1]) + text(b"empty")
    + bytes([0x1E]) + text(b"bad") + bytes([9, 9]) + floats(1, [funit(0)]) + bytes([1]),
    # one panel of 300 (text scale 2), no title
    "figure_big": bytes([2, 1, 0, 0]) + struct.pack("<H", 299)
    + bytes([0]) + text(b"\xff\xfe caption") + bytes([199, 255]) + floats(1, [funit(0)])
    + bytes([0]) + floats(2, [funit(255), fspecial(F_INF)]),
    # mode 3: 20 epochs (flags bit 1 clear: n in one byte), train and validation curves with
    # a hole, a title
    "plot": bytes([3, 0, 20, 0])
    + series(3, [dunit(200), dunit(30)]) + series(2, [dunit(220), dunit(60), dspecial(D_NAN)])
    + series(3, [dunit(0), dunit(128)]) + series(0, [])
    + text(b"alexnet_attn1 (dot, lr 1e-3)"),
    # epochs at the ends of int, values at the ends of double (flags bit 1 set: n in two bytes)
    "plot_extreme": bytes([3, 3]) + struct.pack("<H", 7) + bytes([2])
    + i8(0) + i8(0) + bytes([3]) + ispecial(INT_MIN) + ispecial(INT_MAX) + i8(5) + i8(5)
    + series(1, [dspecial(D_MAX), dspecial(D_NMAX), dspecial(D_NAN), dunit(3)])
    + series(1, [dspecial(D_INF), dunit(9)]) + series(1, [dunit(255), dunit(0)])
    + series(1, [dspecial(D_NAN)]),
    # losses whose range rounds out to ticks that are inexact in binary (3 * 0.2 is
    # 0.6000000000000001): the last point's marker must still be drawn
    "plot_ticks": bytes([3, 1, 3, 0])
    + series(1, [dany(1.6), dany(1.1), dany(0.6)]) + series(0, []) + series(0, [])
    + series(0, []),
    # losses a subnormal step apart, or all -DBL_MAX: ranges that frac() cannot divide by
    "plot_subnormal": bytes([3, 1, 5, 0])
    + series(1, [dany(5e-324), dany(0.0)]) + series(0, []) + series(0, []) + series(0, []),
    "plot_neg_max": bytes([3, 1, 4, 0])
    + series(1, [dspecial(D_NMAX)]) + series(0, []) + series(0, []) + series(0, []),
}

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
for name, data in SEEDS.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
print(f"{len(SEEDS)} drawing seeds")
