#!/usr/bin/env bash
# The test command: sets up what the tests need, obtains the test guest,
# then runs every test of the workspace (unit, conformance, end-to-end).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
if guest=$(scripts/guest/path.sh); then
    export KINDLING_GUEST_DIR=$guest
else
    echo "test.sh: no test guest could be found or built; guest tests will say why they skip" >&2
fi

# The device-test initramfs (built once; may install its Debian packages).
if initramfs=$(scripts/guest/test-initramfs-path.sh); then
    export KINDLING_TEST_INITRAMFS=$initramfs
else
    echo "test.sh: no device-test initramfs; the tests that boot it will say why they skip" >&2
fi

# A guest kernel with AF_PACKET, for the in-guest DHCP test (built once).
if dhcp_guest=$(GUEST_PACKET=1 scripts/guest/path.sh); then
    export KINDLING_DHCP_GUEST_DIR=$dhcp_guest
else
    echo "test.sh: no DHCP-capable guest kernel; the DHCP test will say it skips" >&2
fi

# The kernel's own x86 selftests, built static into an initramfs (once).
if selftests=$(scripts/guest/x86-selftests-path.sh); then
    export KINDLING_X86_SELFTESTS=$selftests
else
    echo "test.sh: no x86 selftests initramfs; that test will say it skips" >&2
fi

# An x86-64-v3 userland (gcc -march=x86-64-v3 + the host's glibc) over
# the test guest's initramfs (built once).
if v3=$(scripts/guest/v3-userland-path.sh); then
    export KINDLING_V3_USERLAND=$v3
else
    echo "test.sh: no x86-64-v3 userland; that test will say it skips" >&2
fi

# Debian's own kernel image (linux-image-amd64's), fetched once.
if stock=$(scripts/guest/stock-kernel-path.sh); then
    export KINDLING_STOCK_KERNEL=$stock
else
    echo "test.sh: no stock Debian kernel; the tests that boot it will say they skip" >&2
fi

# A Debian initramfs-tools initrd for Debian's kernel (built once, as root).
if debian_initrd=$(scripts/guest/debian-initrd-path.sh); then
    export KINDLING_DEBIAN_INITRD=$debian_initrd
else
    echo "test.sh: no Debian initrd; tests/debian_initrd_root.rs will say it skips" >&2
fi

# A Debian 12 system (debootstrap, systemd, linux-image-amd64 and its
# initramfs-tools initrd on a raw disk), built once (a few minutes, as root).
if debian=$(scripts/guest/debian-system-path.sh); then
    export KINDLING_DEBIAN_SYSTEM=$debian
else
    echo "test.sh: no Debian system image; the test that boots it will say it skips" >&2
fi

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
