#!/usr/bin/env bash
# Print the directory that holds Kindling's test guest (bzImage, vmlinux,
# initramfs.cpio, disk.img, tiny-pvh.elf). In order:
#   1. $KINDLING_GUEST_DIR, if it holds every file;
#   2. the shared folder beside the repository (../shared/guest);
#   3. a per-user cache, built once from Debian packages by build.sh.
# With GUEST_PACKET=1 it prints a guest whose kernel has AF_PACKET sockets
# (busybox's udhcpc needs them; the shared kernel has none): only
# $KINDLING_DHCP_GUEST_DIR or its own cache, built with GUEST_PACKET=1.
# Progress goes to stderr; only the path goes to stdout.
set -euo pipefail

FILES="bzImage vmlinux initramfs.cpio disk.img tiny-pvh.elf"
# Bump when build.sh's recipe changes, so caches are rebuilt.
RECIPE=1

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

complete() {
    local d=$1 f
    [ -d "$d" ] || return 1
    for f in $FILES; do [ -s "$d/$f" ] || return 1; done
}

if [ "${GUEST_PACKET:-0}" = 1 ]; then
    given=${KINDLING_DHCP_GUEST_DIR:-}
    variant=guest-packet
    shared=
else
    given=${KINDLING_GUEST_DIR:-}
    variant=guest
    shared=$repo/../shared/guest
fi
for d in "$given" "$shared"; do
    if [ -n "$d" ] && complete "$d"; then
        (cd "$d" && pwd)
        exit 0
    fi
done

cache="${XDG_CACHE_HOME:-$HOME/.cache}/kindling/$variant-$RECIPE"
if complete "$cache"; then
    echo "$cache"
    exit 0
fi
if [ ! -x "$here/build.sh" ]; then
    echo "path.sh: no test guest found and no build.sh to build one" >&2
    exit 1
fi
mkdir -p "$(dirname "$cache")"
exec 9>"$cache.lock"
flock 9
if ! complete "$cache"; then
    echo "path.sh: building the test guest into $cache (once; a few minutes)" >&2
    rm -rf "$cache.tmp"
    WORKDIR="$cache.work" "$here/build.sh" "$cache.tmp" >&2
    rm -rf "$cache" "$cache.work"
    mv "$cache.tmp" "$cache"
fi
echo "$cache"
