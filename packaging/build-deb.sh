#!/usr/bin/env bash
# Builds the Debian package: packaging/build-deb.sh [BUILD_DIR] → BUILD_DIR/packages/devicemap-studio_VERSION_amd64.deb
# (the path is the last line printed). Uses the quick start's build folder and options, so after
# `packaging/quickstart.sh test` only the package itself is made.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# CPack's dependency list: dpkg-shlibdeps (dpkg-dev) on the files that `file` says are ELF.
"$here/packaging/apt-install.sh" dpkg-dev file >&2
build="${1:-${DEVICEMAP_BUILD_DIR:-$here/build}}"
cmake -S "$here" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo > /dev/null
cmake --build "$build" -j "$(nproc)"
out="$build/packages"
rm -rf "$out" && mkdir -p "$out"
(cd "$build" && cpack -G DEB -B "$out" > "$out/cpack.log") || { cat "$out/cpack.log" >&2; exit 1; }
deb=$(find "$out" -maxdepth 1 -name 'devicemap-studio_*.deb' -print -quit)
[[ -n "$deb" ]] || { echo "build-deb.sh: cpack made no .deb (see $out/cpack.log)" >&2; exit 1; }
echo "$deb"
