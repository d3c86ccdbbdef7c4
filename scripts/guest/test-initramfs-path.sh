#!/usr/bin/env bash
# Print the path of the device-test initramfs (build-test-initramfs.sh's
# output; boot it with the kernel from path.sh). In order:
#   1. $KINDLING_TEST_INITRAMFS, if that file exists;
#   2. a per-user cache, built once (about a second) and reused.
# The cache file is named after RECIPE and a hash of build-test-initramfs.sh
# and the sources it compiles (privcheck.c, smpcheck.c), so an edited recipe gets a fresh
# build. Progress goes to stderr; only the
# path goes to stdout.
set -euo pipefail

# Bump when the recipe changes in a way the hash cannot see (host packages).
RECIPE=1

here=$(cd "$(dirname "$0")" && pwd)

if [ -n "${KINDLING_TEST_INITRAMFS:-}" ]; then
    if [ -s "$KINDLING_TEST_INITRAMFS" ]; then
        echo "$(cd "$(dirname "$KINDLING_TEST_INITRAMFS")" && pwd)/$(basename "$KINDLING_TEST_INITRAMFS")"
        exit 0
    fi
    echo "test-initramfs-path.sh: KINDLING_TEST_INITRAMFS=$KINDLING_TEST_INITRAMFS is not a file; building one" >&2
fi

builder=$here/build-test-initramfs.sh
hash=$(cat "$builder" "$here/privcheck.c" "$here/smpcheck.c" | sha256sum | cut -c1-12)
dir="${XDG_CACHE_HOME:-$HOME/.cache}/kindling"
cache="$dir/test-initramfs-$RECIPE-$hash.cpio"
if [ -s "$cache" ]; then
    echo "$cache"
    exit 0
fi
mkdir -p "$dir"
exec 9>"$dir/test-initramfs.lock"
flock 9
if [ ! -s "$cache" ]; then
    echo "test-initramfs-path.sh: building $cache" >&2
    "$builder" "$cache" >&2
fi
echo "$cache"
