#!/usr/bin/env bash
# Build Kindling and boot the default guest (Linux 6.1 + busybox initramfs)
# on the serial console. KVM where it is hardware-backed, the software CPU
# elsewhere. Extra arguments are appended to Kindling's command line.
# Ctrl-A X quits.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
cargo build --release --quiet
guest=$(scripts/guest/path.sh)

accel=tcg
if [ -e /sys/module/kvm_intel ] || [ -e /sys/module/kvm_amd ]; then
    accel=kvm
fi

exec target/release/kindling -M microvm,acpi=off -accel "$accel" -cpu max \
    -m 256m -smp 1 -nodefaults -no-user-config -nographic -no-reboot \
    -serial stdio -kernel "$guest/bzImage" -initrd "$guest/initramfs.cpio" \
    -append "console=ttyS0 reboot=t panic=-1 rdinit=/bin/sh" "$@"
