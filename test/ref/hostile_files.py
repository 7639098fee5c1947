#!/usr/bin/env python3
"""Writes hostile inputs for the SQL tests, with Python's own struct/json/zlib (none of the
extension's code):

  hostile_files.py negative_var MODEL TENSOR   MODEL with TENSOR[0] set to -1.0 (base64)
  hostile_files.py png_interlace2              an 8x8 gray PNG whose IHDR says interlace 2 (hex)
"""
import base64
import json
import struct
import sys
import zlib


def negative_var(path, tensor):
    data = bytearray(open(path, "rb").read())
    n = struct.unpack_from("<Q", data, 0)[0]
    header = json.loads(data[8:8 + n])
    start = 8 + n + header[tensor]["data_offsets"][0]
    struct.pack_into("<f", data, start, -1.0)
    sys.stdout.write(base64.b64encode(bytes(data)).decode())


def png_interlace2():
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    rows = b"".join(b"\0" + bytes(range(8)) for _ in range(8))
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 8, 8, 8, 0, 0, 0, 2))
           + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
    sys.stdout.write(png.hex())


if __name__ == "__main__":
    if sys.argv[1] == "negative_var":
        negative_var(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "png_interlace2":
        png_interlace2()
    else:
        sys.exit("unknown case " + sys.argv[1])
