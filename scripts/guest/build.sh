#!/usr/bin/env bash
# Build Kindling's test guest from Debian bookworm packages, for machines
# without the project's shared folder. scripts/guest/path.sh calls it once
# and caches the result; it can also be run by hand:
#
#     scripts/guest/build.sh OUTDIR
#
# OUTDIR receives: bzImage, vmlinux (stripped, PVH note kept), System.map,
# kernel.config, initramfs.cpio, disk.img, tiny-pvh.elf (+ tiny-pvh.S).
# Scratch space: $WORKDIR (default OUTDIR.work, about 1.5 GiB). Parallelism:
# $JOBS (default: all CPUs). Missing Debian packages are installed with
# apt-get when running as root (set NO_APT=1 to forbid that). GUEST_PACKET=1
# adds AF_PACKET to the kernel (for DHCP in the guest).
#
# The guest's /init understands one `bench=` word on the kernel command
# line: `disk` (prints `DISK-MD5 <md5 of /dev/vda>`), `hold` (prints HOLD,
# then sleeps an hour), `poweroff` (powers off instead of rebooting). It
# always prints `BOOT-OK` first and ends with `reboot -f`.
set -euo pipefail

out=${1:?usage: build.sh OUTDIR}
work=${WORKDIR:-$out.work}
jobs=${JOBS:-$(nproc)}
here=$(cd "$(dirname "$0")" && pwd)

say() { echo "guest/build.sh: $*" >&2; }
fail() { say "error: $*"; exit 1; }

# --- host packages --------------------------------------------------------
packages=(linux-source-6.1 build-essential bc bison flex libelf-dev libssl-dev
          cpio busybox-static xz-utils fakeroot openssl binutils)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "${NO_APT:-0}" != 1 ] && [ "$(id -u)" = 0 ]; then
        say "installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        fail "install these Debian packages first: ${missing[*]}"
    fi
fi

mkdir -p "$out" "$work"
out=$(cd "$out" && pwd)
work=$(cd "$work" && pwd)

# --- kernel ---------------------------------------------------------------
src=$work/linux-source-6.1
if [ ! -f "$src/Makefile" ]; then
    say "unpacking the kernel source"
    tar -C "$work" -xf /usr/src/linux-source-6.1.tar.xz
fi

# allnoconfig plus exactly what a microvm guest needs (the way tinyconfig
# is made). Lines starting with "-" must end up disabled.
options=$work/kindling-guest.config
cat > "$options" <<'OPTIONS'
# size: tinyconfig's choices, LZ4-compressed bzImage
CONFIG_CC_OPTIMIZE_FOR_SIZE=y
CONFIG_SLOB=y
CONFIG_UNWINDER_GUESS=y
CONFIG_KERNEL_LZ4=y
# platform: 64-bit SMP guest with the MP table, PVH entry, kvm-clock
CONFIG_64BIT=y
CONFIG_SMP=y
CONFIG_NR_CPUS=4
CONFIG_X86_MPPARSE=y
CONFIG_HYPERVISOR_GUEST=y
CONFIG_PARAVIRT=y
CONFIG_KVM_GUEST=y
CONFIG_PVH=y
CONFIG_HZ_100=y
CONFIG_NO_HZ_IDLE=y
CONFIG_EARLY_PRINTK=y
# ACPI for acpi=on (hardware-reduced); ACPICA refuses to load a DSDT
# without the PCI core (its PCI_Config region handler), so PCI is on
CONFIG_EXPERT=y
CONFIG_ACPI=y
CONFIG_ACPI_REDUCED_HARDWARE_ONLY=y
CONFIG_PCI=y
# what EXPERT would otherwise let allnoconfig drop
CONFIG_PRINTK=y
CONFIG_MULTIUSER=y
CONFIG_FUTEX=y
CONFIG_EPOLL=y
CONFIG_SIGNALFD=y
CONFIG_TIMERFD=y
CONFIG_EVENTFD=y
CONFIG_SHMEM=y
CONFIG_POSIX_TIMERS=y
CONFIG_FILE_LOCKING=y
# userspace from a gzip or plain initramfs
CONFIG_BLK_DEV_INITRD=y
CONFIG_RD_GZIP=y
CONFIG_BINFMT_ELF=y
CONFIG_BINFMT_SCRIPT=y
CONFIG_PROC_FS=y
CONFIG_SYSFS=y
CONFIG_TMPFS=y
CONFIG_DEVTMPFS=y
CONFIG_DEVTMPFS_MOUNT=y
# COM1 console; with ACPI on, IRQ 4 is only mapped once 8250_pnp claims
# the DSDT's PNP0501 device
CONFIG_TTY=y
CONFIG_SERIAL_8250=y
CONFIG_SERIAL_8250_CONSOLE=y
CONFIG_SERIAL_8250_PNP=y
# virtio-mmio devices: block, network, console, entropy
CONFIG_VIRTIO_MENU=y
CONFIG_VIRTIO_MMIO=y
CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES=y
CONFIG_BLOCK=y
CONFIG_BLK_DEV=y
CONFIG_VIRTIO_BLK=y
CONFIG_EXT4_FS=y
CONFIG_NET=y
CONFIG_INET=y
CONFIG_UNIX=y
CONFIG_NETDEVICES=y
CONFIG_NET_CORE=y
CONFIG_VIRTIO_NET=y
CONFIG_VIRTIO_CONSOLE=y
CONFIG_HW_RANDOM=y
CONFIG_HW_RANDOM_VIRTIO=y
OPTIONS
# GUEST_PACKET=1: also AF_PACKET sockets, which busybox's udhcpc needs (the
# shared guest has none); used for the DHCP test's kernel.
if [ "${GUEST_PACKET:-0}" = 1 ]; then
    echo "CONFIG_PACKET=y" >> "$options"
fi
disabled=(MODULES PCI_MMCONFIG PCI_MSI PCI_QUIRKS VIRTIO_PCI RELOCATABLE RANDOMIZE_BASE
          RD_BZIP2 RD_LZMA RD_XZ RD_LZO RD_LZ4 RD_ZSTD)
for o in "${disabled[@]}"; do echo "# CONFIG_$o is not set" >> "$options"; done

export KBUILD_BUILD_TIMESTAMP='Mon Jan  1 00:00:00 UTC 2024'
export KBUILD_BUILD_USER=guest KBUILD_BUILD_HOST=microvm KBUILD_BUILD_VERSION=1
kmake() { make -C "$src" ARCH=x86_64 "$@"; }

say "configuring the kernel"
kmake KCONFIG_ALLCONFIG="$options" allnoconfig >/dev/null
kmake olddefconfig >/dev/null
while IFS= read -r line; do
    case "$line" in
        CONFIG_*) grep -qxF "$line" "$src/.config" || fail "kernel config lacks $line" ;;
    esac
done < "$options"
for o in "${disabled[@]}"; do
    if grep -q "^CONFIG_$o=" "$src/.config"; then fail "kernel config has CONFIG_$o on"; fi
done

say "compiling the kernel with $jobs jobs (several minutes)"
kmake -j"$jobs" bzImage vmlinux >/dev/null
cp "$src/.config" "$out/kernel.config"
cp "$src/arch/x86/boot/bzImage" "$out/bzImage"
cp "$src/System.map" "$out/System.map"
# Stripping keeps allocated sections, so the PVH entry note stays.
strip -o "$out/vmlinux" "$src/vmlinux"
case $(readelf -n "$out/vmlinux") in *Xen*) ;; *) fail "vmlinux lost its PVH note" ;; esac

# --- initramfs ------------------------------------------------------------
root=$work/initramfs
rm -rf "$root"
mkdir -p "$root"/{bin,dev,proc,sys,tmp}
cp /bin/busybox "$root/bin/busybox"
for tool in sh mount umount echo cat dd md5sum sha256sum reboot poweroff sleep \
            ls dmesg uname head tr; do
    ln -s busybox "$root/bin/$tool"
done
cat > "$root/init" <<'INIT'
#!/bin/sh
# Kindling test guest. Prints BOOT-OK, runs the `bench=` word of the
# kernel command line (disk | hold | poweroff), then reboots.
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
echo BOOT-OK
mode=
for word in $(cat /proc/cmdline); do
    case "$word" in bench=*) mode=${word#bench=} ;; esac
done
if [ "$mode" = disk ]; then
    md5=$(dd if=/dev/vda bs=1M 2>/dev/null | md5sum)
    echo "DISK-MD5 ${md5%% *}"
elif [ "$mode" = hold ]; then
    echo HOLD
    sleep 3600
elif [ "$mode" = poweroff ]; then
    poweroff -f
fi
reboot -f
INIT
chmod 755 "$root/init"
find "$root" -exec touch -h -d @0 {} +
# The kernel opens /dev/console before devtmpfs exists: it must be in the
# archive (fakeroot lets a normal user make the node).
(cd "$root" && fakeroot sh -c '
    mknod -m 600 dev/console c 5 1 && touch -h -d @0 dev/console dev &&
    find . | LC_ALL=C sort | cpio --quiet --reproducible -o -H newc -R 0:0') \
    > "$out/initramfs.cpio"

# --- disk image: 8 MiB of reproducible pseudo-random bytes ----------------
head -c $((8 << 20)) /dev/zero \
    | openssl enc -aes-128-ctr -nosalt -K 000102030405060708090a0b0c0d0e0f \
        -iv 00000000000000000000000000000000 > "$out/disk.img"

# --- tiny PVH kernel ------------------------------------------------------
cp "$here/tiny-pvh.S" "$out/tiny-pvh.S"
as --32 -o "$work/tiny-pvh.o" "$here/tiny-pvh.S"
ld -m elf_i386 -N -T "$here/tiny-pvh.ld" --build-id=none \
    -o "$work/tiny-pvh.elf" "$work/tiny-pvh.o" 2>/dev/null
strip -o "$out/tiny-pvh.elf" "$work/tiny-pvh.elf"

say "done: $out"
(cd "$out" && md5sum bzImage vmlinux initramfs.cpio disk.img tiny-pvh.elf) >&2
