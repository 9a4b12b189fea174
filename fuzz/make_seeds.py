#!/usr/bin/env python3
"""Writes the seed corpora in fuzz/corpus/<target>/ from the repository's own files: a few valid
inputs and a few broken ones per target, each a few KB. Run from the repository root with a built
p2l (for the measurements): python3 fuzz/make_seeds.py build/p2l. The corpora are committed; this
script says where they came from and makes them again."""
import json, os, shutil, struct, subprocess, sys, tempfile, zipfile

SPLIT = b"\n@@p2l-fuzz-split@@\n"  # fuzz/fuzz_input.h kSplit
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "fuzz", "corpus")


def read(path):
    with open(os.path.join(ROOT, path), "rb") as f:
        return f.read()


def put(target, name, data):
    os.makedirs(os.path.join(OUT, target), exist_ok=True)
    with open(os.path.join(OUT, target, name), "wb") as f:
        f.write(data)


def safetensors(tensors, metadata=None, pad=True):
    header, blob = {}, b""
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(blob), len(blob) + len(raw)]}
        blob += raw
    if metadata is not None:
        header["__metadata__"] = metadata
    text = json.dumps(header).encode()
    if pad:
        text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + blob


def seeds_safetensors():
    f32 = struct.pack("<4f", 1, 2, 3, 4)
    put("safetensors", "f32_2x2", safetensors({"w": ("F32", [2, 2], f32)}, {"format": "pt"}))
    put("safetensors", "dtypes", safetensors({
        "a": ("F16", [2], b"\x00\x3c\x00\x40"), "b": ("BF16", [1], b"\x80\x3f"),
        "c": ("I64", [1], struct.pack("<q", -7)), "d": ("U8", [3], b"\x01\x02\x03"),
        "e": ("BOOL", [2], b"\x00\x01"), "f": ("F64", [], struct.pack("<d", 0.5)),
        "g": ("I8", [0], b"")}))
    good = safetensors({"w": ("F32", [2, 2], f32), "v": ("I32", [2], struct.pack("<2i", 1, 2))})
    put("safetensors", "two", good)
    put("safetensors", "truncated", good[:-5])
    put("safetensors", "huge_header_length", struct.pack("<Q", 1 << 62) + good[8:])
    put("safetensors", "overlap", safetensors({"w": ("F32", [2, 2], f32)}).replace(b"[0, 16]", b"[4, 20]"))
    put("safetensors", "golden_header_start", read("tests/goldens/sd_v1_tiny_compvis.safetensors.rest")[:4096])


def seeds_checkpoints():
    cases = "tests/goldens/ckpt_cases"
    for name in sorted(os.listdir(os.path.join(ROOT, cases))):
        if not name.endswith(".ckpt"):
            continue
        data = read(os.path.join(cases, name))
        put("torch_checkpoint", name, data)
        if data.startswith(b"PK") and zipfile.is_zipfile(os.path.join(ROOT, cases, name)):
            with zipfile.ZipFile(os.path.join(ROOT, cases, name)) as z:
                for entry in z.namelist():
                    if entry.endswith("data.pkl"):
                        put("pickle", name.replace(".ckpt", ".pkl"), z.read(entry))
        elif not data.startswith(b"PK"):  # legacy: the pickles back to back; the fourth one (the object) starts after 3 STOPs
            put("pickle", name.replace(".ckpt", "_all.pkl"), data)
            at = 0
            for _ in range(3):
                at = data.index(b".", data.index(b"\x80\x02", at) + 2) + 1
            put("pickle", name.replace(".ckpt", "_object.pkl"), data[at:])
    put("pickle", "proto4_dict", b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00}\x94\x8c\x01a\x94K\x01s.")


def seeds_images():
    images = "tests/data/images"
    for name in ["rgb8_trns.png", "grey16_trns.png", "palette2_trns.png", "rgba8_interlaced.png",
                 "gradient_420.jpg", "gradient_444_progressive.jpg", "gradient_cmyk.jpg", "gradient_grey.jpg"]:
        put("image", name, read(os.path.join(images, name)))
    put("image", "truncated.png", read(os.path.join(images, "rgba16.png"))[:150])
    put("image", "truncated.jpg", read(os.path.join(images, "gradient_rgb.jpg"))[:900])
    put("image", "stb_jpeg_huffman_oob.jpg", read("tests/data/regressions/stb_jpeg_huffman_oob.jpg"))


def seeds_measurements(p2l):
    with tempfile.TemporaryDirectory() as tmp:
        rgb = os.path.join(ROOT, "tests/data/images/gradient_rgb.jpg")
        runs = [("sr", ["--task", "sr", "--factor", "4"]),
                ("gauss", ["--task", "gauss-blur", "--kernel-size", "3", "--sigma", "1"]),
                ("motion", ["--task", "motion-blur", "--kernel-size", "3"]),
                ("box", ["--task", "box-inpaint", "--box-size", "2", "--margin", "1"]),
                ("random", ["--task", "random-inpaint", "--poisson", "0.5"]),
                ("denoise", ["--task", "denoise"])]
        for name, args in runs:
            image = rgb if name == "sr" else os.path.join(ROOT, "tests/data/images/rgb8_trns.png")
            subprocess.run([p2l, "degrade", "--preset", "64", image, "-o", os.path.join(tmp, name)] + args,
                           check=True, capture_output=True)
            info = json.load(open(os.path.join(tmp, name + ".json")))
            info["files"] = {"tensors": "measurement.safetensors", "preview": "measurement.png"}
            info["source_image"] = "/absent/source.png"
            text = json.dumps(info, indent=1).encode()
            with open(os.path.join(tmp, name + ".safetensors"), "rb") as f:
                tensors = f.read()
            put("measurement", name, text + SPLIT + tensors)
            if name == "gauss":
                put("measurement", "gauss_truncated_tensors", text + SPLIT + tensors[:-40])
                put("measurement", "gauss_no_tensors", text)


def seeds_configs():
    diffusers = "tests/goldens/diffusers"
    for part in ["unet", "vae", "text_encoder"]:
        put("model_json", part + "_config.json", read(os.path.join(diffusers, part, "config.json")))
    put("model_json", "model_index.json", read(os.path.join(diffusers, "model_index.json")))
    put("model_json", "scheduler_config.json", read(os.path.join(diffusers, "scheduler/scheduler_config.json")))
    put("model_json", "broken_nesting.json", b"[" * 70 + b"]" * 70)
    put("model_json", "broken_values.json",
        b'{"_class_name": 3, "block_out_channels": [-1, 1e40], "sample_size": "64"}')
    yaml = read("tests/goldens/sd_v1_tiny_compvis.yaml")
    put("yaml_config", "sd_v1_tiny_compvis.yaml", yaml)
    put("yaml_config", "truncated.yaml", yaml[: len(yaml) // 2])
    put("yaml_config", "anchors.yaml", b"a: &x [1, 2]\nb: *x\nmodel: {params: {unet_config: {params: {channel_mult: *x}}}}\n")


def seeds_tokenizer():
    vocab = json.load(open(os.path.join(ROOT, "data/clip-tokenizer/vocab.json"), encoding="utf-8"))
    merges = read("data/clip-tokenizer/merges.txt").decode("utf-8").split("\n")
    # The 512 byte tokens and the two specials are required; the first merges give some BPE work.
    tiny = {t: i for t, i in vocab.items() if i < 512 or t in ("<|startoftext|>", "<|endoftext|>")}
    kept = merges[:1] + merges[1:41]
    for line in kept[1:]:
        left, right = line.split(" ")
        tiny.setdefault(left + right, len(tiny) + 10000)
    tiny_text = json.dumps(tiny, ensure_ascii=False).encode()
    merges_text = "\n".join(kept).encode()
    put("tokenizer_files", "tiny", tiny_text + SPLIT + merges_text)
    put("tokenizer_files", "tiny_no_merges", tiny_text + SPLIT)
    put("tokenizer_files", "missing_bytes", json.dumps({"a": 0, "<|endoftext|>": 1}).encode() + SPLIT + b"a b\n")
    put("tokenizer_files", "bad_merge", tiny_text + SPLIT + b"#version: 0.2\nth\nzz qq\n")
    for i, prompt in enumerate(["a photo of an astronaut riding a horse on mars, 4k",
                                "A CAT &amp; a dog&#39;s  toy\t\n<|startoftext|>héllo wörld 日本語 😀",
                                "don't stop!!! 1234567 ...,,, ---", "\xff\xfe invalid \xc3",
                                "supercalifragilisticexpialidocious" * 3]):
        put("tokenizer_encode", "prompt%d" % i, prompt.encode("utf-8", "surrogateescape")
            if "\xff" not in prompt else prompt.encode("latin-1"))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: fuzz/make_seeds.py PATH/TO/p2l")
    shutil.rmtree(OUT, ignore_errors=True)
    seeds_safetensors()
    seeds_checkpoints()
    seeds_images()
    seeds_measurements(os.path.abspath(sys.argv[1]))
    seeds_configs()
    seeds_tokenizer()
