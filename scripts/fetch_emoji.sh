#!/usr/bin/env bash
# Fetches the emoji image packages p2l's small model is trained on, from the npm registry, into
# data/emoji/cache/ (not committed), and renders the Iconify sets' SVGs to 64×64 PNG on white
# (scripts/render_iconify.py, with rsvg-convert from Debian's librsvg2-bin). Pinned versions, so
# the data set is reproducible (data/emoji/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
cache=data/emoji/cache
mkdir -p "$cache"
fetch() {  # npm package@version → $cache/<name without scope>/package
  local pkg=$1 name
  name=${pkg%@*}
  name=${name##*/}
  if [[ -f "$cache/$name/package/package.json" ]]; then return; fi
  command -v npm >/dev/null || { echo "npm is needed (apt-get install npm)" >&2; exit 1; }
  local tgz
  tgz=$(cd "$cache" && npm pack --silent "$pkg")
  mkdir -p "$cache/$name"
  tar xzf "$cache/$tgz" -C "$cache/$name"
  rm -f "$cache/$tgz"
}
for pkg in emoji-datasource-google@16.0.0 emoji-datasource-twitter@16.0.0; do fetch "$pkg"; done
# The Iconify sets (SVG in JSON) and the CLDR names that map their icons to code points.
iconify=(@iconify-json/noto-v1@1.2.5 @iconify-json/fxemoji@1.2.2 @iconify-json/emojione@1.2.3
         @iconify-json/streamline-emojis@1.2.4)
for pkg in "${iconify[@]}" emojibase-data@17.0.0; do fetch "$pkg"; done
if [[ ! -f "$cache/iconify/streamline/index.json" ]]; then
  command -v rsvg-convert >/dev/null ||
    { echo "rsvg-convert is needed (apt-get install librsvg2-bin)" >&2; exit 1; }
  icons=()
  for pkg in "${iconify[@]}"; do name=${pkg%@*}; icons+=("$cache/${name##*/}/package/icons.json"); done
  python3 scripts/render_iconify.py "$cache/emoji-datasource-google/package/emoji.json" \
    "$cache/emojibase-data/package/en/data.json" "$cache/iconify" "${icons[@]}"
fi
echo "emoji packages in $cache"
