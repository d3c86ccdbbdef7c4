#!/usr/bin/env bash
# Print the directory of a test guest whose kernel has AF_PACKET sockets, so
# busybox's udhcpc can run in it (the shared guest's kernel has none). Built
# once by build.sh (GUEST_PACKET=1) into a per-user cache; a few minutes.
# Progress goes to stderr; only the path goes to stdout.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# Bump when the recipe changes, so caches are rebuilt.
RECIPE=1
cache="${XDG_CACHE_HOME:-$HOME/.cache}/kindling/guest-packet-$RECIPE"
if [ -n "${KINDLING_DHCP_GUEST_DIR:-}" ] && [ -s "$KINDLING_DHCP_GUEST_DIR/bzImage" ]; then
    echo "$KINDLING_DHCP_GUEST_DIR"
    exit 0
fi
if [ -s "$cache/bzImage" ] && grep -qx "CONFIG_PACKET=y" "$cache/kernel.config"; then
    echo "$cache"
    exit 0
fi
mkdir -p "$(dirname "$cache")"
exec 9>"$cache.lock"
flock 9
if [ ! -s "$cache/bzImage" ]; then
    echo "dhcp-guest-path.sh: building a guest kernel with AF_PACKET into $cache (once)" >&2
    rm -rf "$cache.tmp"
    GUEST_PACKET=1 WORKDIR="$cache.work" "$here/build.sh" "$cache.tmp" >&2
    rm -rf "$cache" "$cache.work"
    mv "$cache.tmp" "$cache"
fi
echo "$cache"
