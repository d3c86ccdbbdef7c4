#!/usr/bin/env bash
# Build a Debian 12 (bookworm) system for benchmarks into OUT (which must not
# exist): OUT/disk.img (raw ext4, 2 GiB sparse, the whole root filesystem),
# OUT/vmlinuz and OUT/initrd.img copied out of its /boot, and OUT/cmdline.
# The system is debootstrap's minbase with systemd as init, udev, dbus,
# linux-image-amd64 and an initramfs-tools initrd that carries virtio_mmio,
# virtio_blk and ext4 (MODULES=list). It is set up for headless runs: root
# logs in on ttyS0 without a password, nothing waits for the network, and
# boot-ok.service prints KINDLING-MULTI-USER-OK on the console once
# multi-user.target is reached (see boot-ok). Needs root (debootstrap,
# chroot, mount); progress goes to stderr. Called by ../debian-system-path.sh,
# which owns caching and locking.
set -euo pipefail

out=$1
here=$(cd "$(dirname "$0")" && pwd)
suite=bookworm
packages=systemd,systemd-sysv,udev,dbus,linux-image-amd64,initramfs-tools,zstd,e2fsprogs,kmod
image_size=2G

# apt's configured Debian mirror (a deb822 .sources stanza or a one-line
# entry naming a .../debian URI), unless KINDLING_DEBIAN_MIRROR is set.
mirror() {
    if [ -n "${KINDLING_DEBIAN_MIRROR:-}" ]; then
        echo "$KINDLING_DEBIAN_MIRROR"
        return
    fi
    local uri
    uri=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null \
        | awk '/^URIs:/ {for (i = 2; i <= NF; i++) if ($i ~ /\/debian\/?$/) {print $i; exit}}')
    if [ -z "$uri" ]; then
        uri=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
            | awk '$1 == "deb" {for (i = 2; i <= NF; i++) if ($i ~ /^https?:.*\/debian\/?$/) {print $i; exit}}')
    fi
    echo "${uri:-http://deb.debian.org/debian}"
}

if [ "$(id -u)" != 0 ]; then
    echo "debian-system: building the system needs root (debootstrap)" >&2
    exit 1
fi
if [ -e "$out" ]; then
    echo "debian-system: $out exists" >&2
    exit 1
fi
if ! command -v debootstrap >/dev/null; then
    echo "debian-system: installing debootstrap" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi

work=$(mktemp -d "${TMPDIR:-/var/tmp}/kindling-debian-system.XXXXXX")
root=$work/root
cleanup() {
    for m in "$root/proc" "$root/sys" "$root/dev"; do
        if mountpoint -q "$m" 2>/dev/null; then umount -l "$m" || true; fi
    done
    rm -rf "$work"
}
trap cleanup EXIT

src=$(mirror)
echo "debian-system: debootstrap $suite from $src (a few minutes)" >&2
if ! debootstrap --variant=minbase --include="$packages" "$suite" "$root" "$src" \
    >"$work/debootstrap.log" 2>&1; then
    tail -n 30 "$work/debootstrap.log" >&2
    tail -n 30 "$root/debootstrap/debootstrap.log" >&2 2>/dev/null || true
    echo "debian-system: debootstrap failed" >&2
    exit 1
fi

echo "debian-system: configuring the system" >&2
mount -t proc proc "$root/proc"
mount --bind /dev "$root/dev"
in_root() { chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"; }

echo kindling >"$root/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tkindling\n' >"$root/etc/hosts"
printf '/dev/vda\t/\text4\terrors=remount-ro\t0\t1\n' >"$root/etc/fstab"
in_root passwd -d root >/dev/null
# Log in on the serial console without a prompt; the getty generator starts
# serial-getty@ttyS0 for console=ttyS0.
install -D -m 644 "$here/autologin.conf" \
    "$root/etc/systemd/system/serial-getty@ttyS0.service.d/autologin.conf"
# Nothing waits for a network (minbase configures none).
ln -sf /dev/null "$root/etc/systemd/system/systemd-networkd-wait-online.service"
ln -sf /lib/systemd/system/multi-user.target "$root/etc/systemd/system/default.target"
install -m 755 "$here/boot-ok" "$root/usr/local/sbin/kindling-boot-ok"
install -m 644 "$here/boot-ok.service" "$root/etc/systemd/system/boot-ok.service"
in_root systemctl enable boot-ok.service >/dev/null 2>&1

# A small initrd: only the listed modules (and what they depend on).
sed -i 's/^MODULES=.*/MODULES=list/' "$root/etc/initramfs-tools/initramfs.conf"
install -m 644 "$here/modules" "$root/etc/initramfs-tools/modules"
in_root update-initramfs -u -k all >"$work/initramfs.log" 2>&1 \
    || { cat "$work/initramfs.log" >&2; exit 1; }
in_root sh -c 'lsinitramfs /boot/initrd.img-*' >"$work/initrd.list"
for module in virtio_mmio virtio_blk ext4; do
    if ! grep -q "/$module\.ko" "$work/initrd.list"; then
        echo "debian-system: $module.ko is not in the initrd" >&2
        exit 1
    fi
done
in_root apt-get clean
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/log/*.log "$root/debootstrap"
umount "$root/dev" "$root/proc"

mkdir -p "$work/out"
cp "$root"/boot/vmlinuz-* "$work/out/vmlinuz"
cp "$root"/boot/initrd.img-* "$work/out/initrd.img"
echo "console=ttyS0 root=/dev/vda ro panic=-1" >"$work/out/cmdline"
echo "debian-system: writing the ext4 image" >&2
mkfs.ext4 -q -F -L kindling-root -d "$root" "$work/out/disk.img" "$image_size"
mv "$work/out" "$out"
