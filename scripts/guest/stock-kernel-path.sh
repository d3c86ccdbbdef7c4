#!/usr/bin/env bash
# Print the path of a stock Debian kernel (the vmlinuz of the package that
# linux-image-amd64 depends on), fetched once with `apt-get download` and
# cached under ~/.cache/kindling/stock-kernel/. $KINDLING_STOCK_KERNEL, if
# set and a file, wins. Progress goes to stderr; only the path to stdout.
set -euo pipefail

if [ -n "${KINDLING_STOCK_KERNEL:-}" ] && [ -s "$KINDLING_STOCK_KERNEL" ]; then
    echo "$KINDLING_STOCK_KERNEL"
    exit 0
fi
cache="${XDG_CACHE_HOME:-$HOME/.cache}/kindling/stock-kernel"
mkdir -p "$cache"
exec 9>"$cache.lock"
flock 9
found=$(ls "$cache"/vmlinuz-* 2>/dev/null | head -n1 || true)
if [ -n "$found" ]; then
    echo "$found"
    exit 0
fi
# linux-image-amd64 is a metapackage: its dependency names the real image.
image_package() {
    apt-cache depends linux-image-amd64 2>/dev/null \
        | awk '/Depends: linux-image-[0-9]/ {print $2; exit}'
}
pkg=$(image_package)
if [ -z "$pkg" ] && [ "$(id -u)" = 0 ]; then
    apt-get update -qq >/dev/null 2>&1 || true
    pkg=$(image_package)
fi
if [ -z "$pkg" ]; then
    echo "stock-kernel-path.sh: apt knows no linux-image-amd64 (run apt-get update)" >&2
    exit 1
fi
echo "stock-kernel-path.sh: fetching $pkg (once)" >&2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
(cd "$work" && apt-get download -q "$pkg" >&2)
dpkg-deb -x "$work"/*.deb "$work/x"
cp "$work"/x/boot/vmlinuz-* "$cache/"
ls "$cache"/vmlinuz-* | head -n1
