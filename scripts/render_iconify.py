#!/usr/bin/env python3
"""Renders the emoji of Iconify JSON icon sets (npm @iconify-json/*) to 64x64 PNG on white, for
p2l's emoji training data (data/emoji/README.md). Called by scripts/fetch_emoji.sh.

Iconify names its icons by CLDR short name ("baby-angel-dark-skin-tone"; Firefox OS Emoji by its
squashed Unicode name, "alarmclock"), not by code point. An icon's code point comes from the CLDR
labels of emojibase-data (npm, MIT), or from the Unicode names and short names of
emoji-datasource's emoji.json; the code must be one emoji.json lists (as an emoji or one of its
skin tones), so that captions and the test split by base emoji come from the same table as the
Google and Twitter images. Of numbered variants ("bird-1", "bird-2") and repeats the first icon
of a code wins; icons that are not emoji are left out. Aliases with a rotation or a flip are left out.

Writes DST/<style>/64/<code>.png and DST/<style>/index.json: [{"unified", "image", "icon"}],
and prints how many icons were rendered and left out.
Usage: render_iconify.py EMOJI_JSON EMOJIBASE_DATA_JSON DST ICONS_JSON...
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import unicodedata

SIZE = 64
# The style each set's captions name (p2l/train/emoji_dataset.h: emoji_styles()).
STYLES = {"noto-v1": "noto-v1", "fxemoji": "fxemoji", "emojione": "emojione",
          "streamline-emojis": "streamline"}


def slug(text):
    """CLDR label → Iconify name: "eight o’clock" → "eight-oclock", "flag: Åland" → "flag-aland"."""
    text = unicodedata.normalize("NFKD", text.lower().replace("’", "").replace("'", ""))
    return re.sub(r"[^a-z0-9]+", "-", text.encode("ascii", "ignore").decode()).strip("-")


def squash(text):
    return re.sub(r"[^a-z0-9]", "", text.lower())


def strip_fe0f(code):
    return "-".join(p for p in code.upper().split("-") if p != "FE0F")


def emoji_codes(emoji_json):
    """emoji.json's codes (emojis and their skin tones), keyed without FE0F."""
    codes = {}
    names = {}
    for e in emoji_json:
        all_codes = [e["unified"]] + [v["unified"] for v in (e.get("skin_variations") or {}).values()]
        for code in all_codes:
            codes[strip_fe0f(code)] = code
        for name in [e.get("name") or ""] + (e.get("short_names") or []):
            names.setdefault(squash(name), e["unified"])
    return codes, names


def main():
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    emoji_json = json.load(open(sys.argv[1]))
    emojibase = json.load(open(sys.argv[2]))
    dst = sys.argv[3]
    codes, squashed_names = emoji_codes(emoji_json)
    by_label = {}
    for e in emojibase:
        for x in [e] + e.get("skins", []):
            by_label.setdefault(slug(x["label"]), x["hexcode"])
    def lookup(name):
        # Older sets name flags "flag-for-egypt" (Emoji One) or "flag-for-flag-egypt" (Noto v1).
        name = re.sub(r"^flag-for-(flag-)?", "flag-", name)
        return by_label.get(name) or squashed_names.get(squash(name))

    for icons_path in sys.argv[4:]:
        icon_set = json.load(open(icons_path))
        prefix = icon_set["prefix"]
        style = STYLES[prefix]
        out = os.path.join(dst, style, "64")
        os.makedirs(out, exist_ok=True)
        index, taken, left_out = [], set(), []
        entries = [(name, icon, name) for name, icon in icon_set["icons"].items()]
        for name, alias in (icon_set.get("aliases") or {}).items():
            if any(k in alias for k in ("rotate", "hFlip", "vFlip")):
                left_out.append(name)
                continue
            parent = icon_set["icons"].get(alias.get("parent"))
            if parent is not None:
                entries.append((name, parent, alias["parent"]))
        for name, icon, source in entries:
            code = lookup(name)
            if code is None and re.search(r"-[0-9]$", name):  # a numbered variant
                code = lookup(name[:-2])
            unified = codes.get(strip_fe0f(code)) if code else None
            if unified is None or unified in taken:
                left_out.append(name if unified is None else name + " (repeat)")
                continue
            taken.add(unified)
            width = icon.get("width", icon_set.get("width", 16))
            height = icon.get("height", icon_set.get("height", 16))
            left, top = icon.get("left", 0), icon.get("top", 0)
            svg = ('<svg xmlns="http://www.w3.org/2000/svg" '
                   'xmlns:xlink="http://www.w3.org/1999/xlink" '
                   f'viewBox="{left} {top} {width} {height}" width="{SIZE}" height="{SIZE}">'
                   f'{icon["body"]}</svg>')
            png = os.path.join(out, unified.lower() + ".png")
            with tempfile.NamedTemporaryFile("w", suffix=".svg", delete=False) as f:
                f.write(svg)
            try:
                subprocess.run(["rsvg-convert", "-w", str(SIZE), "-h", str(SIZE), "-b", "white",
                                "-o", png, f.name], check=True)
            finally:
                os.unlink(f.name)
            index.append({"unified": unified, "image": unified.lower() + ".png", "icon": source})
        with open(os.path.join(dst, style, "index.json"), "w") as f:
            json.dump(index, f, indent=0)
        if os.environ.get("RENDER_ICONIFY_VERBOSE"):
            print(" ".join(left_out))
        print(f"{style}: rendered {len(index)} emoji, left out {len(left_out)} icons "
              f"(not an emoji emoji.json lists, a repeat of one, or a transformed alias)")


if __name__ == "__main__":
    main()
