#!/usr/bin/env bash
# Installs what bridgelab and its tests need on Debian 12 (bookworm) or
# later (or Ubuntu, as on GitHub's runners): the tools labs use (iptables,
# iproute2, nftables, tcpdump, ...), a C toolchain, Debian's archive keyring
# (ci/install-docker*.sh read Debian's archive with it), and, only when no
# cargo is on PATH, a Rust toolchain through rustup (into $HOME/.cargo).
# Then it loads br_netfilter where it can. The one provisioning script every
# route uses:
# .ci/run, ci/setup.sh, the GitHub and GitLab workflows, the Dockerfile and
# the Vagrantfile.
#
#   ./ci/install-deps.sh [EXTRA_PACKAGE...]       # as root
#   sudo ./ci/install-deps.sh [EXTRA_PACKAGE...]  # as a user with sudo
#
# EXTRA_PACKAGE: more Debian packages to install in the same apt-get run (CI
# adds its linters' python3-venv, shellcheck and ruby). Depends on nothing
# beside it, so a VM provisioner may upload and run it on its own.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps.sh installs packages: run it as root (sudo $0 $*)" >&2
    exit 3
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends \
    iptables iproute2 nftables util-linux kmod procps tcpdump graphviz \
    build-essential pkg-config ca-certificates curl git debian-archive-keyring "$@"

if ! command -v cargo >/dev/null 2>&1; then
    [ -x "$HOME/.cargo/bin/cargo" ] || curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
    "$HOME/.cargo/bin/cargo" --version
fi

# icc = false and links need br_netfilter, which nothing loads on demand. A
# container cannot load it without the host's /lib/modules mounted: there
# the host must have it loaded already (bridgelab says so if not).
if [ ! -d /proc/sys/net/bridge ] && ! modprobe br_netfilter 2>/dev/null; then
    echo "install-deps.sh: cannot load br_netfilter here: load it on the host (modprobe br_netfilter)" >&2
fi
