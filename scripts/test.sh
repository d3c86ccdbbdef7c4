#!/usr/bin/env bash
# The test command: sets up what the tests need, obtains the test guest,
# then runs every test of the workspace (unit, conformance, end-to-end).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
# provide VAR WHAT CMD...: export VAR as CMD's output (a path, built or
# fetched once and cached), or say which tests will report the skip.
provide() {
    local var=$1 what=$2 out
    shift 2
    if out=$("$@"); then
        export "$var=$out"
    else
        echo "test.sh: no $what; the tests that need it will say why they skip" >&2
    fi
}

provide KINDLING_GUEST_DIR "test guest" scripts/guest/path.sh
# The device-test initramfs (may install its Debian packages).
provide KINDLING_TEST_INITRAMFS "device-test initramfs" scripts/guest/test-initramfs-path.sh
# A guest kernel with AF_PACKET, for the in-guest DHCP test.
provide KINDLING_DHCP_GUEST_DIR "DHCP-capable guest kernel" env GUEST_PACKET=1 scripts/guest/path.sh
# The kernel's own x86 selftests, built static into an initramfs.
provide KINDLING_X86_SELFTESTS "x86 selftests initramfs" scripts/guest/x86-selftests-path.sh
# An x86-64-v3 userland (gcc -march=x86-64-v3 + the host's glibc) over the
# test guest's initramfs.
provide KINDLING_V3_USERLAND "x86-64-v3 userland" scripts/guest/v3-userland-path.sh
# Debian's own kernel image (linux-image-amd64's).
provide KINDLING_STOCK_KERNEL "stock Debian kernel" scripts/guest/stock-kernel-path.sh
# A Debian initramfs-tools initrd for Debian's kernel (as root).
provide KINDLING_DEBIAN_INITRD "Debian initrd" scripts/guest/debian-initrd-path.sh
# A Debian 12 system (debootstrap, systemd, linux-image-amd64 and its
# initramfs-tools initrd on a raw disk; a few minutes, as root).
provide KINDLING_DEBIAN_SYSTEM "Debian system image" scripts/guest/debian-system-path.sh

# Formatting and the API docs are checked first: both are quick (rustdoc
# warnings are printed; broken docs fail).
cargo fmt --all --check
cargo doc --no-deps --workspace --quiet

cargo build --release --workspace --all-targets
if command -v cargo-nextest >/dev/null 2>&1; then
    cargo nextest run --release --workspace --no-fail-fast
else
    cargo test --release --workspace --no-fail-fast
fi
cargo clippy --release --workspace --all-targets -- -D warnings
