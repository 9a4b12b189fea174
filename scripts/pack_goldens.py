#!/usr/bin/env python3
"""Copies a golden set (../shared/goldens) into tests/goldens/ for the repository.

The two single-file forms of the tiny SD model (sd_v1_tiny_compvis.safetensors and .ckpt, 50 MB)
hold the same weights as the diffusers folder, byte for byte. They are stored as a recipe instead:
<name>.parts.json lists the file's byte ranges in order, each copied from a diffusers weight file or
taken from <name>.rest (the headers, the pickle, the zip records); the build assembles them
(tests/goldens/assemble.cmake) and checks the SHA-256 recorded here.

    scripts/pack_goldens.py [SOURCE [DEST]]     (default ../shared/goldens tests/goldens)
"""
import hashlib
import json
import os
import shutil
import struct
import sys
import zipfile

ASSEMBLED = ["sd_v1_tiny_compvis.safetensors", "sd_v1_tiny_compvis.ckpt"]


def safetensors_ranges(path):
    """(offset, length) of every tensor's bytes in a safetensors file."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    return [(8 + n + v["data_offsets"][0], v["data_offsets"][1] - v["data_offsets"][0])
            for k, v in header.items() if k != "__metadata__"]


def zip_ranges(path):
    """(offset, length) of every stored (uncompressed) member's bytes in a zip archive."""
    ranges = []
    with open(path, "rb") as f, zipfile.ZipFile(path) as z:
        for info in z.infolist():
            if info.compress_type != zipfile.ZIP_STORED:
                continue
            f.seek(info.header_offset)
            local = f.read(30)
            name_len, extra_len = struct.unpack("<HH", local[26:30])
            ranges.append((info.header_offset + 30 + name_len + extra_len, info.file_size))
    return ranges


def main():
    source = sys.argv[1] if len(sys.argv) > 1 else "../shared/goldens"
    dest = sys.argv[2] if len(sys.argv) > 2 else "tests/goldens"
    for root, _, files in os.walk(source):
        for name in files:
            rel = os.path.relpath(os.path.join(root, name), source)
            if rel in ASSEMBLED:
                continue
            os.makedirs(os.path.join(dest, os.path.dirname(rel)), exist_ok=True)
            shutil.copyfile(os.path.join(root, name), os.path.join(dest, rel))

    # Every tensor of the diffusers weight files, by content.
    by_content = {}
    for root, _, files in os.walk(os.path.join(source, "diffusers")):
        for name in sorted(files):
            if name.endswith(".safetensors"):
                path = os.path.join(root, name)
                data = open(path, "rb").read()
                rel = os.path.relpath(path, source)
                for offset, length in safetensors_ranges(path):
                    if length >= 64:
                        by_content.setdefault(hashlib.sha256(data[offset:offset + length]).digest(),
                                              (rel, offset))

    for name in ASSEMBLED:
        path = os.path.join(source, name)
        data = open(path, "rb").read()
        ranges = safetensors_ranges(path) if name.endswith(".safetensors") else zip_ranges(path)
        parts, rest, at = [], bytearray(), 0
        for offset, length in sorted(ranges):
            found = by_content.get(hashlib.sha256(data[offset:offset + length]).digest())
            if found is None or offset < at:
                continue
            if offset > at:
                parts.append({"rest": offset - at})
                rest += data[at:offset]
            parts.append({"from": found[0], "offset": found[1], "length": length})
            at = offset + length
        if at < len(data):
            parts.append({"rest": len(data) - at})
            rest += data[at:]
        with open(os.path.join(dest, name + ".rest"), "wb") as f:
            f.write(rest)
        recipe = {"file": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                  "parts": parts}
        with open(os.path.join(dest, name + ".parts.json"), "w") as f:
            json.dump(recipe, f, indent=0)
            f.write("\n")
        copied = sum(p.get("length", 0) for p in parts)
        print(f"{name}: {len(data)} bytes, {copied} copied from the diffusers files, {len(rest)} stored")


if __name__ == "__main__":
    main()
