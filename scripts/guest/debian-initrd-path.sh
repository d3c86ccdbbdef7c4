#!/usr/bin/env bash
# Print the path of a Debian initramfs-tools initrd for the stock Debian
# kernel (stock-kernel-path.sh's vmlinuz), built once with Debian's own
# mkinitramfs from that kernel's package and cached under
# ~/.cache/kindling/, named after a hash of this script and the kernel
# version. $KINDLING_DEBIAN_INITRD, if set and a file, wins. Progress goes
# to stderr; only the path to stdout.
#
# The initrd loads virtio_mmio, virtio_blk and ext4 as modules (as Debian
# builds them), so a virtio-blk root is found only if the firmware's DSDT
# announces the virtio-mmio transports. mkinitramfs reads modules from
# /lib/modules/VERSION only: it runs in a private mount namespace with the
# package's modules bound there (and its /boot, for the kernel config
# mkinitramfs checks), leaving the host's alone (empty /lib/modules and
# /boot mount points are created if the host has none).
# Needs root, initramfs-tools (scripts/setup.sh installs it) and apt.
set -euo pipefail

if [ -n "${KINDLING_DEBIAN_INITRD:-}" ] && [ -s "$KINDLING_DEBIAN_INITRD" ]; then
    echo "$KINDLING_DEBIAN_INITRD"
    exit 0
fi
here=$(cd "$(dirname "$0")" && pwd)
kernel=$("$here/stock-kernel-path.sh")
version=$(basename "$kernel" | sed 's/^vmlinuz-//')
hash=$( (cat "$0"; echo "$version") | sha256sum | cut -c1-12)
dir="${XDG_CACHE_HOME:-$HOME/.cache}/kindling"
cache="$dir/debian-initrd-$version-$hash.img"
if [ -s "$cache" ]; then
    echo "$cache"
    exit 0
fi
mkdir -p "$dir"
exec 9>"$dir/debian-initrd.lock"
flock 9
if [ -s "$cache" ]; then
    echo "$cache"
    exit 0
fi
for tool in mkinitramfs depmod unshare; do
    if ! command -v "$tool" >/dev/null; then
        echo "debian-initrd-path.sh: $tool is missing (scripts/setup.sh installs initramfs-tools)" >&2
        exit 1
    fi
done
if [ "$(id -u)" != 0 ]; then
    echo "debian-initrd-path.sh: building the initrd needs root (a private mount namespace)" >&2
    exit 1
fi
echo "debian-initrd-path.sh: building $cache (once)" >&2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
(cd "$work" && apt-get download -q "linux-image-$version" >&2)
dpkg-deb -x "$work"/*.deb "$work/root"
depmod -b "$work/root" "$version"

# A configuration that lists the modules the root needs (MODULES=list
# keeps the initrd small; initramfs-tools modprobes each at boot).
conf="$work/conf"
mkdir -p "$conf/conf.d" "$conf/hooks" "$conf/scripts"
cat >"$conf/initramfs.conf" <<'EOF'
MODULES=list
BUSYBOX=auto
COMPRESS=gzip
DEVICE=
NFSROOT=auto
RUNSIZE=10%
FSTYPE=ext4
EOF
printf '%s\n' virtio_mmio virtio_blk ext4 >"$conf/modules"

mkdir -p /lib/modules /boot
unshare -m --propagation private sh -c '
    mount --bind "$1/root/lib/modules" /lib/modules
    mount --bind "$1/root/boot" /boot
    mkinitramfs -d "$2" -o "$3" "$4"
' sh "$work" "$conf" "$work/initrd.img" "$version" >&2
mv "$work/initrd.img" "$cache"
echo "$cache"
