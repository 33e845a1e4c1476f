#!/usr/bin/env bash
# Sets up a fresh Debian (12 or later) machine for bridgelab, builds it, and,
# given scenario files, runs them:
#
#   ./ci/setup.sh scenarios/default.toml        # as root (a bare Debian image has no sudo)
#   sudo ./ci/setup.sh scenarios/default.toml   # as a user with sudo
#
# Installs through ci/install-deps.sh: the iptables/nftables/iproute2 tools
# labs use, a C toolchain, and (only when no cargo is on PATH) a Rust
# toolchain through rustup.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "setup.sh installs packages and builds labs: run it as root (sudo $0 $*)" >&2
    exit 3
fi

./ci/install-deps.sh
if ! command -v cargo >/dev/null 2>&1; then
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi

cargo build --release --locked

if [ "$#" -gt 0 ]; then
    exec ./target/release/bridgelab run "$@"
fi
echo "bridgelab is built: ./target/release/bridgelab --help"
