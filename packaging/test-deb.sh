#!/usr/bin/env bash
# The Debian package as a user meets it (CI runs this after the suite): build it, check it with lintian,
# unpack it into a scratch root and run the installed programs from elsewhere, with a scratch home, and
# check that they find their resources by their own prefix and write nothing beside themselves; validate
# the desktop entry and the AppStream metadata.
#   packaging/test-deb.sh [BUILD_DIR]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-${DEVICEMAP_BUILD_DIR:-$here/build}}"
id=io.github.devicemap_studio.Studio

"$here/packaging/apt-install.sh" lintian desktop-file-utils appstream man-db

deb=$("$here/packaging/build-deb.sh" "$build" | tail -n 1)
version=$(dpkg-deb -f "$deb" Version)
echo "== $(basename "$deb"): $(du -h "$deb" | cut -f1), Depends: $(dpkg-deb -f "$deb" Depends)"
[[ "$(basename "$deb")" == "devicemap-studio_${version}_amd64.deb" ]] || { echo "unexpected package name $deb" >&2; exit 1; }

echo "== lintian"
lintian --fail-on error --tag-display-limit 0 "$deb"

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
root="$scratch/root"
dpkg -x "$deb" "$root"
for f in usr/bin/devicemap usr/bin/devicemap-studio usr/share/devicemap-studio/demo/model.safetensors \
         usr/share/devicemap-studio/demo/LICENSE usr/share/devicemap-studio/catalog/llama-3.1-70b.json \
         usr/share/devicemap-studio/profiles/2x24gb.json usr/share/doc/devicemap-studio/copyright \
         usr/share/doc/devicemap-studio/changelog.gz usr/share/man/man1/devicemap.1.gz \
         usr/share/man/man1/devicemap-studio.1.gz usr/share/applications/$id.desktop \
         usr/share/metainfo/$id.metainfo.xml usr/share/mime/packages/$id.xml \
         usr/share/icons/hicolor/scalable/apps/$id.svg usr/share/icons/hicolor/48x48/apps/$id.png; do
  [[ -s "$root/$f" ]] || { echo "the package lacks /$f" >&2; exit 1; }
done

echo "== desktop-file-validate, appstreamcli"
desktop-file-validate "$root/usr/share/applications/$id.desktop"
appstreamcli validate --no-net --explain "$root/usr/share/metainfo/$id.metainfo.xml"
latest=$(sed -n 's/.*<release version="\([^"]*\)".*/\1/p' "$root/usr/share/metainfo/$id.metainfo.xml" | head -n 1)
[[ "$latest" == "$version" ]] || { echo "the metainfo's latest release is $latest, the package $version: add release notes" >&2; exit 1; }

echo "== man pages"
for page in devicemap devicemap-studio; do
  warnings=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -E UTF-8 -l -Tutf8 -Z "$root/usr/share/man/man1/$page.1.gz" 2>&1 > /dev/null)
  [[ -z "$warnings" ]] || { echo "$page.1: $warnings" >&2; exit 1; }
done
for command in plan check devices inspect tokenize run make-model bench; do
  zgrep -q "^\.SS $command\$" "$root/usr/share/man/man1/devicemap.1.gz" || { echo "devicemap.1 lacks '$command'" >&2; exit 1; }
done

echo "== the installed programs, run from elsewhere"
work="$scratch/work" && mkdir -p "$work" "$scratch/home"
missing_libs=$(ldd "$root/usr/bin/devicemap" "$root/usr/bin/devicemap-studio" | grep "not found" || true)
[[ -z "$missing_libs" ]] || { echo "unresolved libraries: $missing_libs" >&2; exit 1; }
touch "$scratch/before"
sleep 1
cd "$work"
mkdir -m 700 "$scratch/runtime"
export HOME="$scratch/home" XDG_CONFIG_HOME="$scratch/home/.config" XDG_CACHE_HOME="$scratch/home/.cache" \
       XDG_RUNTIME_DIR="$scratch/runtime"
unset DEVICEMAP_RESOURCES
bin="$root/usr/bin"
"$bin/devicemap" --version | tee "$scratch/version.txt"
grep -q "^devicemap $version\$" "$scratch/version.txt"
grep -q "^CPU kernels: " "$scratch/version.txt"
"$bin/devicemap" plan "$root/usr/share/devicemap-studio/demo" --max-memory cpu=1GiB
"$bin/devicemap" plan catalog:llama-3.1-70b --profile 2x24gb --format json > "$scratch/map.json"
grep -q '"lm_head"' "$scratch/map.json"
"$bin/devicemap" run "$root/usr/share/devicemap-studio/demo" --prompt "Once upon a time" --max-new-tokens 8 --greedy
echo
QT_QPA_PLATFORM=offscreen "$bin/devicemap-studio" --help | tee "$scratch/studio-help.txt"
grep -q -- "--run" "$scratch/studio-help.txt"
QT_QPA_PLATFORM=offscreen "$bin/devicemap-studio" --version | grep -q "$version"

# Nothing written into the installed tree or the working folder.
written=$(find "$root" "$work" -newer "$scratch/before" -print)
[[ -z "$written" ]] || { echo "the installed programs wrote: $written" >&2; exit 1; }
echo "== $(basename "$deb"): lintian, desktop entry, AppStream, man pages and the installed programs pass"
