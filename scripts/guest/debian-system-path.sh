#!/usr/bin/env bash
# Print the path of a directory holding a Debian 12 system built from Debian
# packages for the boot benchmark and tests (debian-system/build.sh: raw ext4
# disk.img with systemd and linux-image-amd64, its vmlinuz and initramfs-tools
# initrd.img, and cmdline, the kernel arguments to boot it with). In order:
#   1. $KINDLING_DEBIAN_SYSTEM, if that directory holds a disk.img;
#   2. a per-user cache, built once (a few minutes, needs root) and reused.
# The cache is named after RECIPE and a hash of the recipe's files, so an
# edited recipe gets a fresh build; a failed build leaves nothing behind.
# Progress goes to stderr; only the path goes to stdout.
set -euo pipefail

# Bump when the recipe changes in a way the hash cannot see (the archive).
RECIPE=1

here=$(cd "$(dirname "$0")" && pwd)

if [ -n "${KINDLING_DEBIAN_SYSTEM:-}" ]; then
    if [ -s "$KINDLING_DEBIAN_SYSTEM/disk.img" ]; then
        (cd "$KINDLING_DEBIAN_SYSTEM" && pwd)
        exit 0
    fi
    echo "debian-system-path.sh: KINDLING_DEBIAN_SYSTEM=$KINDLING_DEBIAN_SYSTEM has no disk.img; building one" >&2
fi

hash=$(cat "$here"/debian-system/* | sha256sum | cut -c1-12)
dir="${XDG_CACHE_HOME:-$HOME/.cache}/kindling"
cache="$dir/debian-system-$RECIPE-$hash"
if [ -s "$cache/disk.img" ]; then
    echo "$cache"
    exit 0
fi
mkdir -p "$dir"
exec 9>"$dir/debian-system.lock"
flock 9
if [ ! -s "$cache/disk.img" ]; then
    echo "debian-system-path.sh: building $cache (once)" >&2
    rm -rf "$cache.tmp"
    # build.sh fills a fresh directory and renames it into place last.
    "$here/debian-system/build.sh" "$cache.tmp"
    mv "$cache.tmp" "$cache"
fi
echo "$cache"
