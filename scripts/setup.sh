#!/usr/bin/env bash
# Install what Kindling's build, tests and benchmarks need on a fresh Debian
# machine (idempotent; quick when everything is already there).
#   - Rust: the machine's toolchain (cargo) must already be installed.
#   - Python: qemu.qmp (QEMU's own QMP client library) for the monitor tests.
#   - Debian: libslirp-dev, libglib2.0-dev and pkg-config (user-mode
#     networking links libslirp, as QEMU does), qemu-system-x86 (the
#     reference emulator for side-by-side tests and benchmarks), qemu-utils
#     (qemu-img makes the qcow2 test images), strace (the O_DIRECT check),
#     iasl (ACPI table checks), iproute2 (network-namespace tests),
#     initramfs-tools (a Debian initrd for the stock-kernel root test) and
#     e2fsprogs.
set -euo pipefail

need_apt=()
pkg-config --exists slirp 2>/dev/null || need_apt+=(libslirp-dev libglib2.0-dev pkg-config)
command -v ip >/dev/null || need_apt+=(iproute2)
command -v qemu-system-x86_64 >/dev/null || need_apt+=(qemu-system-x86)
command -v qemu-img >/dev/null || need_apt+=(qemu-utils)
command -v strace >/dev/null || need_apt+=(strace)
command -v iasl >/dev/null || need_apt+=(acpica-tools)
command -v mkinitramfs >/dev/null || need_apt+=(initramfs-tools)
command -v mkfs.ext4 >/dev/null || need_apt+=(e2fsprogs)
if [ ${#need_apt[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
        echo "setup: installing ${need_apt[*]}" >&2
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
    else
        echo "setup: not root; tests that need ${need_apt[*]} will say why they skip" >&2
    fi
fi

if ! python3 -c 'import qemu.qmp' 2>/dev/null; then
    echo "setup: installing qemu.qmp" >&2
    python3 -m pip install -q qemu.qmp >/dev/null 2>&1 \
        || python3 -m pip install -q --break-system-packages qemu.qmp >/dev/null
fi
