#!/usr/bin/env bash
# The test command: sets up what the tests need, obtains the test guest,
# then runs every test of the workspace (unit, conformance, end-to-end).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
if [ -x scripts/guest/path.sh ]; then
    KINDLING_GUEST_DIR=$(scripts/guest/path.sh)
    export KINDLING_GUEST_DIR
fi

cargo build --release --workspace --all-targets
if command -v cargo-nextest >/dev/null 2>&1; then
    cargo nextest run --release --workspace --no-fail-fast
else
    cargo test --release --workspace --no-fail-fast
fi
cargo clippy --release --workspace --all-targets -- -D warnings
