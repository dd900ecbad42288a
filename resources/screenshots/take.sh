#!/bin/sh
# Starts devicemap-studio under a virtual X server for each scene below and saves a PNG of the window.
# Usage: resources/screenshots/take.sh BUILD_DIR [OUT_DIR]   (needs Xvfb, xwd and ImageMagick's convert)
set -eu
build=${1:?usage: take.sh BUILD_DIR [OUT_DIR]}
here=$(cd "$(dirname "$0")" && pwd)
out=${2:-$here}
studio="$build/app/devicemap-studio"
width=1400
height=860

display=:97
Xvfb "$display" -screen 0 "${width}x${height}x24" -nolisten tcp >/dev/null 2>&1 &
xvfb=$!
trap 'kill "$xvfb" 2>/dev/null' EXIT INT TERM
sleep 1

# name  argument (a model or a plan file)  [theme]  [more arguments for the program]
shoot() {
  name=$1
  arg=$2
  theme=${3:-light}
  shift 2
  [ $# -gt 0 ] && shift
  config=$(mktemp -d)
  # A fresh settings folder: default window size, no recent models.
  mkdir -p "$config/DeviceMap"
  printf '[window]\ngeometry=@ByteArray()\n[General]\ntheme=%s\n' "$theme" >"$config/DeviceMap/DeviceMap Studio.conf"
  DISPLAY=$display XDG_CONFIG_HOME=$config QT_QPA_PLATFORM=xcb "$studio" "$arg" "$@" >/dev/null 2>&1 &
  pid=$!
  sleep "${SHOT_WAIT:-11}"  # past the status bar's timed messages
  DISPLAY=$display xwd -root -silent | convert xwd:- -crop "${width}x${height}+0+0" +repage "$out/$name.png"
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -rf "$config"
  echo "$out/$name.png"
}

shoot demo "$(cd "$here/../demo" && pwd)"
# The run panel after loading the demo on this machine and generating from a prompt.
shoot demo-run "$(cd "$here/../demo" && pwd)" light --run "Once upon a time"
shoot llama-405b-8x80gb "$here/llama-405b-8x80gb.plan.json"
shoot llama-70b-2x24gb "$here/llama-70b-2x24gb.plan.json" dark
# The What if plot: Llama 3.1 8B with 12 GiB of a 24 GB card, against the budget.
shoot what-if "$here/llama-8b-1x24gb.plan.json" light --what-if budget
