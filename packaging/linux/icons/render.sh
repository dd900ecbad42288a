#!/usr/bin/env bash
# Renders the hicolor PNG sizes from the SVG (rsvg-convert, Debian's librsvg2-bin). The PNGs are kept in
# the repository so that building the package needs no SVG renderer; run this after changing the SVG.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
id=io.github.devicemap_studio.Studio
for size in 16 24 32 48 64 128 256; do
  mkdir -p "${size}x${size}"
  rsvg-convert -w "$size" -h "$size" "$id.svg" -o "${size}x${size}/$id.png"
done
