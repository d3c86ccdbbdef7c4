#!/usr/bin/env bash
# Print the path of an initramfs that runs the Linux kernel's own x86
# selftests (tools/testing/selftests/x86 of Debian's linux-source-6.1),
# built static for 64-bit, on top of the shared test guest's initramfs.
# Boot it with rdinit=/selftests-init: it runs every test under a timeout,
# prints its output indented by "  | " and a line "SELFTEST <name> rc=<N>"
# per test, "SELFTESTS-END" at the end, then reboots (-no-reboot exits).
# The kernel argument selftests=NAME,NAME... runs only those (e.g. iopl_64).
# Built once into ~/.cache/kindling/x86-selftests-$RECIPE/ (about a
# minute); installs linux-source-6.1 when run as root and it is missing.
# Progress goes to stderr; only the path goes to stdout.
set -euo pipefail

# Bump when the recipe below changes, so caches are rebuilt.
RECIPE=2
here=$(cd "$(dirname "$0")" && pwd)
cache="${XDG_CACHE_HOME:-$HOME/.cache}/kindling/x86-selftests-$RECIPE"
out="$cache/initramfs.cpio"
if [ -s "$out" ]; then
    echo "$out"
    exit 0
fi

guest=$("$here/path.sh")
tarball=$(ls /usr/src/linux-source-6.1.tar.* 2>/dev/null | head -n1 || true)
if [ -z "$tarball" ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "x86-selftests-path.sh: linux-source-6.1 is not installed (needs root)" >&2
        exit 1
    fi
    echo "x86-selftests-path.sh: installing linux-source-6.1" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-source-6.1 >/dev/null
    tarball=$(ls /usr/src/linux-source-6.1.tar.* | head -n1)
fi

mkdir -p "$(dirname "$cache")"
exec 9>"$cache.lock"
flock 9
if [ -s "$out" ]; then
    echo "$out"
    exit 0
fi
echo "x86-selftests-path.sh: building the x86 selftests into $cache (once)" >&2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
top=linux-source-6.1
tar -xf "$tarball" -C "$work" \
    "$top/tools/testing/selftests/x86" "$top/tools/testing/selftests/lib.mk" \
    "$top/tools/testing/selftests/kselftest.h" "$top/tools/include" \
    "$top/arch/x86/include/asm/desc_defs.h" "$top/arch/x86/include/uapi"
# 64-bit only: the test guest's kernel has no IA32 emulation. Static, so the
# busybox initramfs needs no libc; the system's kernel headers stand in for
# `make headers`.
mkdir -p "$work/root/selftests"
make -s -k -C "$work/$top/tools/testing/selftests/x86" OUTPUT="$work/root/selftests" \
    CC="gcc -static" KHDR_INCLUDES= all_64 >&2 2>"$work/build.log" || true
built=$(ls "$work/root/selftests" | wc -l)
if [ "$built" -lt 15 ]; then
    cat "$work/build.log" >&2
    echo "x86-selftests-path.sh: only $built tests built" >&2
    exit 1
fi
cat >"$work/root/selftests-init" <<'INIT'
#!/bin/sh
PATH=/bin; export PATH
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
only=
for w in $(cat /proc/cmdline); do
    case "$w" in selftests=*) only=",${w#selftests=}," ;; esac
done
echo SELFTESTS-BEGIN
for t in /selftests/*; do
    n=${t##*/}
    case "$only" in ""|*",$n,"*) ;; *) continue ;; esac
    timeout 300 "$t" >/tmp/out 2>&1
    rc=$?
    sed 's/^/  | /' /tmp/out
    echo "SELFTEST $n rc=$rc"
done
echo SELFTESTS-END
reboot -f
INIT
chmod 755 "$work/root/selftests-init"
rm -rf "$cache.tmp"
mkdir -p "$cache.tmp"
# The kernel unpacks concatenated newc archives in order.
cp "$guest/initramfs.cpio" "$cache.tmp/initramfs.cpio"
(cd "$work/root" && find selftests selftests-init | sort | cpio -o -H newc --quiet) \
    >>"$cache.tmp/initramfs.cpio"
rm -rf "$cache"
mv "$cache.tmp" "$cache"
echo "$out"
