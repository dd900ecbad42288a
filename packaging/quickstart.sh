#!/usr/bin/env bash
# The README's two commands, on a fresh Debian 12 machine (root, or a user with sudo):
#   packaging/quickstart.sh demo   install, build, start the program on the bundled demo model
#   packaging/quickstart.sh test   install, build, run the whole test suite
# Both are idempotent: packages already present are kept, the build is incremental.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${DEVICEMAP_BUILD_DIR:-$here/build}"
what="${1:-}"

packages=(cmake ninja-build g++ pkg-config qt6-base-dev qt6-charts-dev libtorch-dev libgloo-dev nlohmann-json3-dev libhwy-dev libopenblas0-pthread
          xvfb x11-apps imagemagick)

install_packages() {
  local missing=()
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  local sudo=()
  [[ $(id -u) -eq 0 ]] || sudo=(sudo)
  echo "installing: ${missing[*]}"
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

configure_and_build() {
  cmake -S "$here" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@"
  # LibTorch translation units need ~1.2 GB of RAM each: keep parallelism to the cores.
  cmake --build "$build" -j "$(nproc)"
}

case "$what" in
  demo)
    install_packages
    configure_and_build
    if [[ -x "$build/app/devicemap-studio" && ( -n "${DISPLAY:-}" || -n "${WAYLAND_DISPLAY:-}" ) ]]; then
      exec "$build/app/devicemap-studio" "$here/resources/demo"
    fi
    # No display (or no GUI built): show the same plans on the command line.
    "$build/app/devicemap" plan "$here/resources/demo" --profile 1x24gb
    echo
    "$build/app/devicemap" plan catalog:llama-3.1-70b --profile 2x24gb
    echo
    # And the demo model itself, run on this machine.
    "$build/app/devicemap" run "$here/resources/demo" --prompt "Once upon a time" --max-new-tokens 60 --stats
    ;;
  test)
    install_packages
    configure_and_build
    cd "$build"
    QT_QPA_PLATFORM=offscreen ctest --output-on-failure -j "$(nproc)" --timeout 900
    ;;
  *)
    echo "usage: $0 demo|test" >&2
    exit 2
    ;;
esac
