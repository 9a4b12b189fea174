#!/usr/bin/env bash
# Renders OpenMoji versions of an evaluation set's emoji, for the cross-style run (docs/results.md):
# a style the shipped model never saw. Fetches the pinned npm package openmoji into
# data/openmoji/cache/ (not committed) and renders, for every NNN_<style>_<code>.png in SRC_DIR
# (made by `p2l train test-images`), the OpenMoji colour SVG of the same code to
# DST_DIR/NNN_openmoji_<code>.png: 64×64 on white, with rsvg-convert (Debian librsvg2-bin).
# Codes OpenMoji does not have are listed and skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $# -ne 2 ]]; then echo "usage: $0 SRC_DIR DST_DIR" >&2; exit 2; fi
src=$1 dst=$2
cache=data/openmoji/cache
pkg=openmoji@17.0.0
if [[ ! -f "$cache/package/data/openmoji.json" ]]; then
  command -v npm >/dev/null || { echo "npm is needed (apt-get install npm)" >&2; exit 1; }
  mkdir -p "$cache"
  tgz=$(cd "$cache" && npm pack --silent "$pkg")
  tar xzf "$cache/$tgz" -C "$cache"
  rm -f "$cache/$tgz"
fi
command -v rsvg-convert >/dev/null || { echo "rsvg-convert is needed (apt-get install librsvg2-bin)" >&2; exit 1; }
mkdir -p "$dst"
rendered=0 missing=()
for png in "$src"/[0-9]*_*_*.png; do
  name=$(basename "$png" .png)
  index=${name%%_*}
  code=${name##*_}
  svg=""
  # OpenMoji names most emoji without the variation selector FE0F that emoji-datasource keeps.
  for candidate in "$code" "${code//-FE0F/}"; do
    if [[ -f "$cache/package/color/svg/$candidate.svg" ]]; then svg="$cache/package/color/svg/$candidate.svg"; break; fi
  done
  if [[ -z $svg ]]; then missing+=("$code"); continue; fi
  rsvg-convert -w 64 -h 64 -b white -o "$dst/${index}_openmoji_${code}.png" "$svg"
  rendered=$((rendered + 1))
done
echo "openmoji: rendered $rendered images to $dst${missing:+; not in OpenMoji: ${missing[*]}}"
