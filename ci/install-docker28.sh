#!/usr/bin/env bash
# Unpacks Docker 28.5.2 (Debian sid's docker.io and docker-cli 28.5.2+dfsg4-5)
# with Debian 12's containerd, runc, tini and busybox-static into a private
# prefix, for `bridgelab diff` of `firewall = "docker28"` scenarios:
#
#   sudo ./ci/install-docker28.sh [PREFIX]     # default /opt/bl-docker28
#
# Nothing is installed as a package (installing docker.io would start a dockerd
# in this namespace through its init scripts): every .deb is unpacked with
# `dpkg-deb -x`. Only libsystemd0, which dockerd links against, is installed
# from the system's own sources when it is missing.
#
# Where the packages come from:
# * docker.io and docker-cli 28.5.2+dfsg4-5: Debian's archive, suite sid, read
#   with a throw-away apt configuration (its own sources.list, lists, cache and
#   state in a temporary directory; the system's apt sources are never read or
#   changed). sid moves on: when the archive no longer has exactly this
#   version, the copies in $BL_DEBS are used instead, after checking them
#   against $BL_DEBS/SHA256SUMS. BL_DEBS defaults to /work/shared/debs, or
#   ../shared/debs beside this checkout; neither needs to exist while the
#   archive has the version. BL_ARCHIVE=0 skips the archive for docker.io
#   (to check the fallback) when bookworm's part can be copied.
# * containerd, runc, tini (docker-init is its tini-static) and
#   busybox-static (the containers' image): copied from $BL_DOCKER20
#   (default /opt/bl-docker20, what ci/install-docker20.sh unpacks) when it
#   has them all, else downloaded from bookworm with the same throw-away
#   configuration. sid's dockerd 28 runs with bookworm's containerd 1.6 and
#   runc 1.1 (docker-rules/debian-packages.md).
#
# Idempotent: when PREFIX already holds a dockerd 28.5.2 and the rest, it
# prints the version and stops (well under a second).
set -euo pipefail
prefix=${1:-/opt/bl-docker28}
version=28.5.2+dfsg4-5
here=$(cd "$(dirname "$0")" && pwd)
docker20=${BL_DOCKER20:-/opt/bl-docker20}
if [ -n "${BL_DEBS:-}" ]; then
    debs=$BL_DEBS
elif [ -d /work/shared/debs ]; then
    debs=/work/shared/debs
else
    debs=$here/../../shared/debs
fi
docker_debs=(docker.io docker-cli)
bookworm_debs=(containerd runc tini busybox-static)
# The files of bookworm's packages that the daemon uses, relative to a prefix.
bookworm_files=(usr/bin/containerd usr/bin/containerd-shim-runc-v2 usr/sbin/runc usr/bin/runc
    usr/bin/tini-static bin/busybox)

if [ "$(id -u)" -ne 0 ]; then
    echo "install-docker28.sh writes $prefix: run it as root" >&2
    exit 3
fi

installed() {
    local f
    for f in usr/sbin/dockerd usr/sbin/docker-proxy usr/bin/docker usr/bin/docker-init "${bookworm_files[@]}"; do
        [ -x "$1/$f" ] || return 1
    done
    "$1/usr/sbin/dockerd" --version 2>/dev/null | grep -q '^Docker version 28\.5\.2'
}
if installed "$prefix"; then
    "$prefix/usr/sbin/dockerd" --version
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
if ! dpkg-query -W -f='${Status}' libsystemd0 2>/dev/null | grep -q 'ok installed'; then
    apt-get install -y -q --no-install-recommends libsystemd0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/lists/partial" "$tmp/cache/archives/partial" "$tmp/debs" "$tmp/empty"
# _apt downloads into this directory.
chmod 755 "$tmp"
chmod 777 "$tmp/debs"
# sources.list (one-line format) of the throw-away configuration.
suites() {
    local s
    for s in "$@"; do
        echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $s main"
    done >"$tmp/sources.list"
}
apt_private=(
    -o Dir::Etc::SourceList="$tmp/sources.list"
    -o Dir::Etc::SourceParts="$tmp/empty"
    -o Dir::Etc::Preferences="$tmp/empty/preferences"
    -o Dir::Etc::PreferencesParts="$tmp/empty"
    -o Dir::State::Lists="$tmp/lists"
    -o Dir::State::Status=/dev/null
    -o Dir::Cache="$tmp/cache"
    -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache=
)

have_bookworm=1
for f in "${bookworm_files[@]}"; do [ -x "$docker20/$f" ] || have_bookworm=0; done
if [ $have_bookworm = 1 ]; then suites sid; else suites sid bookworm; fi
archive=1
if [ "${BL_ARCHIVE:-1}" = 0 ] && [ $have_bookworm = 1 ]; then
    archive=0
else
    apt-get "${apt_private[@]}" update -q || archive=0
fi

got_docker=0
if [ $archive = 1 ]; then
    specs=()
    for p in "${docker_debs[@]}"; do specs+=("$p=$version"); done
    if (cd "$tmp/debs" && apt-get "${apt_private[@]}" download "${specs[@]}"); then
        got_docker=1
    else
        echo "Debian's archive no longer has docker.io $version: using $debs" >&2
    fi
fi
if [ $got_docker = 0 ]; then
    if [ ! -f "$debs/SHA256SUMS" ]; then
        echo "no docker.io $version: not in Debian's archive, and $debs/SHA256SUMS does not exist" >&2
        echo "(set BL_DEBS to a directory with docker.io_${version}_amd64.deb, docker-cli_${version}_amd64.deb and SHA256SUMS)" >&2
        exit 3
    fi
    for p in "${docker_debs[@]}"; do
        f=${p}_${version}_amd64.deb
        line=$(awk -v f="$f" '$2 == f || $2 == "*" f' "$debs/SHA256SUMS")
        if [ -z "$line" ] || [ ! -f "$debs/$f" ]; then
            echo "$debs has no checked copy of $f" >&2
            exit 3
        fi
        (cd "$debs" && printf '%s\n' "$line" | sha256sum --check --quiet --strict) || {
            echo "$debs/$f does not match its sha256 in SHA256SUMS" >&2
            exit 3
        }
        cp "$debs/$f" "$tmp/debs/"
    done
fi
if [ $have_bookworm = 0 ]; then
    [ $archive = 1 ] || { echo "cannot reach Debian's archive for bookworm's containerd, runc, tini, busybox-static" >&2; exit 3; }
    specs=()
    for p in "${bookworm_debs[@]}"; do specs+=("$p/bookworm"); done
    (cd "$tmp/debs" && apt-get "${apt_private[@]}" download "${specs[@]}")
fi

# Unpack into a fresh directory, then swap it in: a failure leaves no half prefix.
new=$prefix.new.$$
rm -rf "$new"
mkdir -p "$new"
for p in "${docker_debs[@]}"; do
    dpkg-deb -x "$tmp/debs/${p}_${version}_amd64.deb" "$new"
done
if [ $have_bookworm = 1 ]; then
    for f in "${bookworm_files[@]}"; do
        mkdir -p "$new/$(dirname "$f")"
        cp -a "$docker20/$f" "$new/$f"
    done
else
    for p in "${bookworm_debs[@]}"; do
        debs_of_p=("$tmp"/debs/"${p}"_*.deb)
        dpkg-deb -x "${debs_of_p[0]}" "$new"
    done
fi
if ! installed "$new"; then
    echo "the unpacked $new lacks a program (or dockerd is not 28.5.2); left for inspection" >&2
    exit 1
fi
rm -rf "$prefix"
mv "$new" "$prefix"
"$prefix/usr/sbin/dockerd" --version
