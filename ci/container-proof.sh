#!/usr/bin/env bash
# Proves the privileged-container route without Docker: runs the scenario
# suite inside fresh namespaces set up as `docker run --privileged` sets up a
# container, and checks that it passes and leaves nothing behind.
#
#   ./ci/container-proof.sh [OUT_DIR]     # as root; default target/container-proof
#
# The "container" is `unshare --net --mount --pid --uts --ipc --cgroup --fork
# --mount-proc` with private mount propagation, and inside it, as Docker
# gives a container: an empty /run and /tmp (tmpfs), a fresh sysfs (so
# /sys/class/net shows the container's links, not the machine's), a fresh
# /proc for the new pid namespace, and a network namespace with nothing but
# `lo`, brought up. It has no /run/netns and no way to reach the machine's own
# links. Inside it runs bridgelab over every shipped scenario and bug file
# (with --junit and --pcap), then `cargo test --test scenarios` (every file
# built and compared with its plan), and checks that with /proc/sys read-only
# (a container without --privileged) bridgelab says to use --privileged and
# exits 3. Reports land in OUT_DIR: run.xml, run.json,
# pcap/. Build first (`cargo build --locked` and `cargo test --locked --no-run
# --test scenarios`): nothing is compiled or downloaded inside.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/container-proof}
bin=$PWD/target/debug/bridgelab

if [ "$(id -u)" -ne 0 ]; then
    echo "container-proof.sh builds namespaces: run it as root" >&2
    exit 3
fi

if [ "${BL_IN_CONTAINER:-}" != 1 ]; then
    [ -x "$bin" ] || { echo "build bridgelab first: cargo build --locked" >&2; exit 3; }
    rm -rf "$out"
    mkdir -p "$out"
    started=$(date +%s)
    BL_IN_CONTAINER=1 unshare --net --mount --pid --uts --ipc --cgroup --fork --mount-proc \
        --propagation private "$0" "$out"
    # None of the container's labs may show here. (By run id: other runs on
    # this machine may own bl-* namespaces of their own meanwhile.)
    # (Named or not: a lab not kept has no name under /run/netns.)
    leaked=$({ ip netns list | awk '{print $1}'; ls /run/bridgelab/netns/* 2>/dev/null; } |
        grep -F -f <(sed 's/.*/bl-&-/' "$out/run-ids") || true)
    if [ -n "$leaked" ]; then
        echo "container-proof: namespaces leaked out of the container: $leaked" >&2
        exit 1
    fi
    echo "container-proof: passed in $(($(date +%s) - started)) s"
    exit 0
fi

# --- Inside the container -------------------------------------------------
fail() {
    echo "container-proof: $*" >&2
    exit 1
}
# What Docker gives every container: its own /run, /tmp and sysfs.
repo=$PWD
exec {volume}<"$repo"
mount -t tmpfs -o mode=755 bl-run /run
mount -t tmpfs -o mode=1777 bl-tmp /tmp
mount -t sysfs sysfs /sys
# The checkout is the container's volume (`docker run -v "$PWD:$PWD"`): a
# checkout under /tmp or /run, which the container gets fresh, is put back.
if [ ! -d "$repo" ] || [ ! -x "$bin" ]; then
    mkdir -p "$repo"
    # -c: the fd itself, not the path it names (hidden now).
    mount -c --bind "/proc/self/fd/$volume" "$repo"
fi
exec {volume}<&-
cd "$repo"
ip link set lo up
hostname bl-container

[ "$(ip -o link show | awk -F': ' '{print $2}')" = lo ] || fail "the container sees links other than lo: $(ip -o link show)"
[ ! -e /run/netns ] || fail "/run/netns exists in a fresh container"
[ "$(ls /sys/class/net)" = lo ] || fail "sysfs shows the machine's links: $(ls /sys/class/net)"
[ "$$" -lt 10 ] || fail "not in a fresh pid namespace (pid $$)"

mapfile -t files < <(ls scenarios/*.toml scenarios/bugs/*.toml)
mkdir -p "$out/pcap"
"$bin" run --format json --junit "$out/run.xml" --pcap "$out/pcap" "${files[@]}" >"$out/run.json" ||
    fail "bridgelab run failed in the container: see $out/run.xml"
grep -o '"run_id": "[0-9a-f]*"' "$out/run.json" | cut -d'"' -f4 >"$out/run-ids"
[ "$(wc -l <"$out/run-ids")" -eq "$(grep -c '^    "file": ' "$out/run.json")" ] || fail "a scenario ran without a run id"
grep -q 'failures="0"' "$out/run.xml" || fail "$out/run.xml records failures"
tests=$(grep -o '<testsuites[^>]* tests="[0-9]*"' "$out/run.xml" | grep -o '[0-9]*"$' | tr -d '"')
[ "${tests:-0}" -gt 0 ] || fail "$out/run.xml has no test case"
ls "$out"/pcap/*.pcap >/dev/null 2>&1 || fail "no pcap was written"

if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi
cargo test --offline --locked --test scenarios

# Without --privileged Docker mounts /proc/sys read-only: bridgelab must
# say so, as an environment problem (exit 3), and leave nothing.
set +e
# shellcheck disable=SC2016 # $0 and $1 are the inner shell's arguments
unprivileged=$(unshare --mount --propagation private sh -c \
    'mount --bind /proc/sys /proc/sys && mount -o remount,bind,ro /proc/sys && exec "$0" run "$1"' \
    "$bin" scenarios/default.toml 2>&1)
code=$?
set -e
[ "$code" = 3 ] || fail "read-only /proc/sys: exit $code, not 3: $unprivileged"
grep -q 'run it with --privileged' <<<"$unprivileged" || fail "read-only /proc/sys: no hint: $unprivileged"

# Nothing left: no namespace, no run record, no lab's directory, no link but lo.
left=$(ip netns list)
[ -z "$left" ] || fail "namespaces left in the container: $left"
[ -z "$(ls -A /run/bridgelab/runs 2>/dev/null)" ] || fail "run records left: $(ls /run/bridgelab/runs)"
[ -z "$(ls -A /run/bridgelab/netns 2>/dev/null)" ] || fail "labs' directories left: $(ls /run/bridgelab/netns)"
[ "$(ip -o link show | awk -F': ' '{print $2}')" = lo ] || fail "links left in the container: $(ip -o link show)"
echo "container-proof: $tests test cases passed in the container; nothing left"
