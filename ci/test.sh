#!/usr/bin/env bash
# Runs bridgelab's whole test suite. Most tests build real network
# namespaces and need root; they fail (never skip) without it.
#
#   ./ci/test.sh          # as root
#   sudo -E ./ci/test.sh  # as a user with sudo
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
    echo "the test suite builds network namespaces: run it as root (sudo -E $0)" >&2
    exit 3
fi
if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi
cargo test --locked "$@"
