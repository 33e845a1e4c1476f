#!/usr/bin/env bash
# Unpacks Debian 12's docker.io 20.10 with containerd, runc, tini and
# busybox-static into a private prefix, for `bridgelab diff`:
#
#   sudo ./ci/install-docker20.sh [PREFIX]     # default /opt/bl-docker20
#
# Nothing is installed as a package: installing docker.io starts a dockerd in
# this namespace through its init scripts. Only the shared libraries dockerd
# and runc link against are installed. apt fetches from Debian 12 (bookworm)
# with a source list and state of its own, in a temporary directory, so this
# gives the same dockerd 20.10 on any Debian release and leaves apt's own
# configuration alone.
set -euo pipefail
prefix=${1:-/opt/bl-docker20}
packages=(docker.io containerd runc tini busybox-static)

if [ "$(id -u)" -ne 0 ]; then
    echo "install-docker20.sh installs libraries and writes $prefix: run it as root" >&2
    exit 3
fi
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q --no-install-recommends libdevmapper1.02.1 libseccomp2 libsystemd0 tar ca-certificates

if [ -x "$prefix/usr/sbin/dockerd" ] && [ -x "$prefix/usr/bin/containerd" ] && [ -x "$prefix/usr/sbin/runc" ] \
    && [ -x "$prefix/usr/bin/docker-init" ] && [ -x "$prefix/bin/busybox" ]; then
    "$prefix/usr/sbin/dockerd" --version
    exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/parts" "$tmp/lists/partial" "$tmp/cache/archives/partial" "$tmp/debs"
cat >"$tmp/parts/bookworm.sources" <<SOURCES
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
apt_private=(
    -o Dir::Etc::SourceList=/dev/null
    -o Dir::Etc::SourceParts="$tmp/parts"
    -o Dir::State::Lists="$tmp/lists"
    -o Dir::State::Status=/dev/null
    -o Dir::Cache="$tmp/cache"
    -o APT::Sandbox::User=root
)
apt-get "${apt_private[@]}" update -q
(cd "$tmp/debs" && apt-get "${apt_private[@]}" download "${packages[@]}")
mkdir -p "$prefix"
for p in "${packages[@]}"; do
    dpkg-deb -x "$tmp"/debs/"${p}"_*.deb "$prefix"
done
"$prefix/usr/sbin/dockerd" --version
