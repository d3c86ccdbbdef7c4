#!/usr/bin/env bash
# Print the directory of an x86-64-v3 userland for the test guest: the C
# programs of scripts/guest/v3-userland/ built on this host with
# `gcc -O3 -march=x86-64-v3` (plus -maes -mpclmul -msha for the
# intrinsics), dynamically linked against the host's glibc, in bin/ (so a
# test can run them on the host too), and initramfs.cpio: the shared test
# guest's initramfs with those programs in /v3, glibc's loader, libc and
# libm, and /v3-init appended. Boot it with rdinit=/v3-init: for each
# program it prints "V3-PROG <name>", the program's output and
# "V3-RC <name> <status>"; then "V3-LDSO", the output of
# `/lib64/ld-linux-x86-64.so.2 --help` and "V3-LDSO-END"; then the flags
# line of /proc/cpuinfo prefixed "V3-"; then "V3-END", and reboots
# (-no-reboot exits).
# Built once into ~/.cache/kindling/v3-userland-<key>/, the key a hash of
# the sources, this script and the host's glibc (a few seconds).
# Progress goes to stderr; only the path goes to stdout.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
src="$here/v3-userland"
ldso=/lib64/ld-linux-x86-64.so.2
libdir=/lib/x86_64-linux-gnu
if ! command -v gcc >/dev/null 2>&1; then
    echo "v3-userland-path.sh: gcc is not installed" >&2
    exit 1
fi
for f in "$ldso" "$libdir/libc.so.6" "$libdir/libm.so.6"; do
    if [ ! -e "$f" ]; then
        echo "v3-userland-path.sh: $f is missing" >&2
        exit 1
    fi
done
key=$(cat "$0" "$src"/*.c "$src"/*.h "$(readlink -f "$ldso")" "$libdir/libc.so.6" \
    "$libdir/libm.so.6" | sha256sum | cut -c1-16)
cache="${XDG_CACHE_HOME:-$HOME/.cache}/kindling/v3-userland-$key"
if [ -s "$cache/initramfs.cpio" ]; then
    echo "$cache"
    exit 0
fi

guest=$("$here/path.sh")
mkdir -p "$(dirname "$cache")"
exec 9>"$cache.lock"
flock 9
if [ -s "$cache/initramfs.cpio" ]; then
    echo "$cache"
    exit 0
fi
echo "v3-userland-path.sh: building the x86-64-v3 userland into $cache (once)" >&2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/bin" "$work/root/v3" "$work/root/lib64" "$work/root$libdir"
for c in "$src"/*.c; do
    n=$(basename "$c" .c)
    gcc -O3 -march=x86-64-v3 -maes -mpclmul -msha -Wall -Werror -o "$work/bin/$n" "$c" -lm
    cp "$work/bin/$n" "$work/root/v3/$n"
done
cp -L "$ldso" "$work/root/lib64/ld-linux-x86-64.so.2"
cp -L "$libdir/libc.so.6" "$libdir/libm.so.6" "$work/root$libdir/"
cat >"$work/root/v3-init" <<'INIT'
#!/bin/sh
PATH=/bin; export PATH
mount -t proc proc /proc
echo V3-BEGIN
for p in /v3/*; do
    n=${p##*/}
    echo "V3-PROG $n"
    "$p"
    echo "V3-RC $n $?"
done
echo V3-LDSO
/lib64/ld-linux-x86-64.so.2 --help
echo V3-LDSO-END
while read -r l; do
    case "$l" in flags*) echo "V3-$l"; break ;; esac
done </proc/cpuinfo
echo V3-END
reboot -f
INIT
chmod 755 "$work/root/v3-init" "$work/root/v3"/*
rm -rf "$cache.tmp"
mkdir -p "$cache.tmp"
# The kernel unpacks concatenated newc archives in order.
cp "$guest/initramfs.cpio" "$cache.tmp/initramfs.cpio"
chmod u+w "$cache.tmp/initramfs.cpio"
(cd "$work/root" && find v3 v3-init lib64 lib | sort | cpio -o -H newc --quiet) \
    >>"$cache.tmp/initramfs.cpio"
cp -r "$work/bin" "$cache.tmp/bin"
rm -rf "$cache"
mv "$cache.tmp" "$cache"
echo "$cache"
