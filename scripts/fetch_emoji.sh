#!/usr/bin/env bash
# Fetches the emoji image packages p2l's small model is trained on, from the npm registry, into
# data/emoji/cache/ (not committed). Pinned versions, so the data set is reproducible.
set -euo pipefail
cd "$(dirname "$0")/.."
cache=data/emoji/cache
mkdir -p "$cache"
for pkg in emoji-datasource-google@16.0.0 emoji-datasource-twitter@16.0.0; do
  name=${pkg%@*}
  if [[ -f "$cache/$name/package/emoji.json" ]]; then continue; fi
  command -v npm >/dev/null || { echo "npm is needed (apt-get install npm)" >&2; exit 1; }
  tgz=$(cd "$cache" && npm pack --silent "$pkg")
  mkdir -p "$cache/$name"
  tar xzf "$cache/$tgz" -C "$cache/$name"
  rm -f "$cache/$tgz"
done
echo "emoji packages in $cache"
