#!/usr/bin/env python3
"""Stacks PNG images of one width top to bottom into one PNG (the comparison grids of
docs/emoji-models: one model's samples.png above another's).

  scripts/stack_png.py OUT.png TOP.png [MORE.png ...]

Standard library only; reads 8-bit, non-interlaced greyscale, RGB or RGBA PNGs (what p2l writes)
and writes RGB. A gap of 4 white rows separates the images.
"""
import struct
import sys
import zlib

CHANNELS = {0: 1, 2: 3, 6: 4}  # PNG colour type -> samples per pixel


def read_png(path):
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        sys.exit(f"{path}: not a PNG file")
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = header
    if depth != 8 or colour not in CHANNELS or interlace:
        sys.exit(f"{path}: only 8-bit non-interlaced grey, RGB or RGBA PNGs are read")
    n = CHANNELS[colour]
    raw, stride, rows, prev = zlib.decompress(idat), width * n, [], bytearray(width * n)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        for i in range(stride):
            a = line[i - n] if i >= n else 0
            b, c = prev[i], prev[i - n] if i >= n else 0
            if kind == 1:
                line[i] = (line[i] + a) & 255
            elif kind == 2:
                line[i] = (line[i] + b) & 255
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        prev = line
        rgb = bytearray()
        for x in range(width):
            px = line[x * n:(x + 1) * n]
            if n == 1:
                rgb += bytes([px[0]] * 3)
            elif n == 3:
                rgb += px
            else:  # composite on white, as p2l shows emoji
                alpha = px[3]
                rgb += bytes((v * alpha + 255 * (255 - alpha)) // 255 for v in px[:3])
        rows.append(bytes(rgb))
    return width, rows


def write_png(path, width, rows):
    raw = b"".join(b"\x00" + row for row in rows)

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(
            ">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    with open(path, "wb") as out:
        out.write(b"\x89PNG\r\n\x1a\n")
        out.write(chunk(b"IHDR", struct.pack(">IIBBBBB", width, len(rows), 8, 2, 0, 0, 0)))
        out.write(chunk(b"IDAT", zlib.compress(raw, 9)))
        out.write(chunk(b"IEND", b""))


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__.strip())
    images = [(path, *read_png(path)) for path in sys.argv[2:]]
    width = images[0][1]
    rows = []
    for path, w, image_rows in images:
        if w != width:
            sys.exit(f"{path}: {w} pixels wide, the first image {width}")
        if rows:
            rows += [b"\xff" * (3 * width)] * 4
        rows += image_rows
    write_png(sys.argv[1], width, rows)


if __name__ == "__main__":
    main()
