#!/usr/bin/env bash
# Kills `bridgelab run` / `run --hold` / `up` with SIGKILL at random moments,
# runs `bridgelab cleanup` after each kill, and checks that nothing is left:
# namespaces, their bind mounts, run records (*.tmp too), processes started
# by the killed run, rules in the root namespace. Needs root; see
# bench/README.md.
#
#   sudo bench/stress-kill.sh [KILLS]      (default 200)
#
# BRIDGELAB=path picks the binary (default target/release/bridgelab, else
# target/debug/bridgelab). STRESS_SEED=N repeats a sequence of choices.
# Exit 0 only when every iteration left nothing behind.
set -u

cd "$(dirname "$0")/.."
KILLS=${1:-200}
BIN=${BRIDGELAB:-}
if [ -z "$BIN" ]; then
    if [ -x target/release/bridgelab ]; then BIN=target/release/bridgelab; else BIN=target/debug/bridgelab; fi
fi
[ -x "$BIN" ] || { echo "no bridgelab binary at $BIN: cargo build first" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "needs root" >&2; exit 2; }
RANDOM=${STRESS_SEED:-$$}
SCENARIOS=(scenarios/*.toml)
# Every process a stressed run starts inherits this variable: a leftover
# process of any kind is found by it, whoever its parent is now.
TAG="BL_STRESS_TAG=stress$$"
work=$(mktemp -d)
mkfifo "$work/hold"
trap 'rm -rf "$work"' EXIT

lab_namespaces() { ls /run/netns 2>/dev/null | grep '^bl-' | sort; }
# Run ids whose records (finished or half-written) name pid $1 as owner.
run_ids_of() {
    grep -l "\"pid\": $1," /run/bridgelab/runs/*.json /run/bridgelab/runs/*.json.tmp 2>/dev/null |
        sed 's|.*/||; s|\.json.*||' | sort -u
}
# What is left of run $1: namespaces (their names, even dangling), the
# lab's directory and its mounts, records.
left_of_run() {
    ls /run/netns 2>/dev/null | grep "^bl-$1-" | sed 's/^/namespace /'
    ls /run/bridgelab/netns 2>/dev/null | grep -x "$1" | sed 's/^/directory /'
    grep -o " /run/bridgelab/netns/$1[ /][^ ]*" /proc/self/mountinfo | sed 's/^ /mount /'
    ls -A /run/bridgelab/runs 2>/dev/null | grep "^$1\.json" | sed 's/^/record /'
}
# Namespaces of no run at all (no record), whoever made them: checked
# twice, as a run may end between the two listings.
orphans() {
    local ns id
    # Run-shaped names only (bl-<8 hex digits>-node): other tools on this
    # machine make bl- namespaces of their own.
    for ns in $(lab_namespaces | grep -E '^bl-[0-9a-f]{8}-'); do
        id=${ns#bl-}
        id=${id%%-*}
        [ -e "/run/bridgelab/runs/$id.json" ] || { [ ! -e "/run/netns/$ns" ] && [ ! -L "/run/netns/$ns" ]; } || echo "$ns"
    done
}
# Read-only dumps of the root namespace's firewall, without counters.
root_rules() {
    for t in iptables-save iptables-legacy-save; do
        command -v $t >/dev/null && $t 2>&1 | grep -v '^#' | sed 's/\[[0-9]*:[0-9]*\]//g'
    done
    command -v nft >/dev/null && nft list ruleset 2>&1
}
tagged_processes() {
    local p
    for p in /proc/[0-9]*; do
        if tr '\0' '\n' 2>/dev/null <"$p/environ" | grep -qx "$TAG"; then
            echo "${p#/proc/} $(cat "$p/comm" 2>/dev/null) $(awk '{print $3}' "$p/stat" 2>/dev/null)"
        fi
    done
}

base_orphans=$(orphans | sort)
base_rules=$(root_rules)
# Diagnostics go to fd 3: bash's own "Killed" job notices on stderr do not.
exec 3>&2

ms() { date +%s%3N; }
start=$(ms)
failures=0 finished=0 ready_kills=0 child_kills=0 kept=0
declare -A modes=()

killed=0
# Until KILLS runs were really killed: a run that ended before its kill is
# checked all the same, but does not count.
for ((i = 1; killed < KILLS; i++)); do
    scenario=${SCENARIOS[RANDOM % ${#SCENARIOS[@]}]}
    case $((RANDOM % 3)) in
        0) mode=run; args=(run) ;;
        1) mode=hold; args=(run --hold) ;;
        2) mode=up; args=(up) ;;
    esac
    # Most kills land while the lab is built (labs take ~0.1 s), the rest
    # while it is probed, stepped, held or torn down.
    if ((RANDOM % 10 < 8)); then delay=$((RANDOM % 120)); else delay=$((RANDOM % 900)); fi
    # stdin is a FIFO opened read-write: never at end, so --hold holds.
    env "$TAG" "$BIN" "${args[@]}" "$scenario" 0<>"$work/hold" >"$work/out" 2>"$work/err" &
    pid=$!
    sleep "$(printf '0.%03d' "$delay")"
    children=$(cat /proc/$pid/task/*/children 2>/dev/null | tr ' ' '\n' | grep -v '^$' | tr '\n' ' ')
    kill -KILL $pid 2>/dev/null
    wait $pid
    status=$?
    if [ $status -eq 137 ]; then
        killed=$((killed + 1))
        modes[$mode]=$((${modes[$mode]:-0} + 1))
        [ -n "$children" ] && child_kills=$((child_kills + 1))
        grep -q '^ready ' "$work/out" && ready_kills=$((ready_kills + 1))
    else
        finished=$((finished + 1))
    fi
    ids=$(run_ids_of $pid)
    # A lab that `up` got to keep (its record says so, even if the kill came
    # before `up` could say it) is kept on purpose: that is `down`'s job.
    if [ "$mode" = up ]; then
        for id in $ids; do
            if grep -q '"kept": true' "/run/bridgelab/runs/$id.json" 2>/dev/null; then
                kept=$((kept + 1))
                "$BIN" down "$id" >/dev/null || echo "iteration $i: down $id failed" >&3
            fi
        done
    fi
    if ! "$BIN" cleanup >"$work/cleanup" 2>&1; then
        echo "iteration $i: cleanup failed: $(cat "$work/cleanup")" >&3
    fi
    left=""
    for id in $ids; do
        x=$(left_of_run "$id") && [ -n "$x" ] && left+="run $id: $x; "
    done
    # New ones only: an orphan that was there before may go meanwhile.
    x=$(comm -13 <(echo "$base_orphans") <(orphans | sort) | grep . | tr '\n' ' ')
    [ -n "$x" ] && left+="namespaces without a record: $x; "
    x=$(tagged_processes) && [ -n "$x" ] && left+="processes: $x; "
    for c in $children; do
        # A child seen at kill time that still runs with the run's tag.
        if tr '\0' '\n' 2>/dev/null <"/proc/$c/environ" | grep -qx "$TAG"; then left+="child $c; "; fi
    done
    [ "$(root_rules)" != "$base_rules" ] && left+="root namespace rules changed; "
    if [ -n "$left" ]; then
        failures=$((failures + 1))
        echo "iteration $i ($mode $scenario, killed after ${delay} ms, exit $status): LEFT ${left//$'\n'/, }" >&3
        # Go on from what is there now.
        base_orphans=$(orphans | sort) base_rules=$(root_rules)
    fi
done 2>/dev/null

secs=$((($(ms) - start) / 1000))
echo "kills: $killed (run ${modes[run]:-0}, run --hold ${modes[hold]:-0}, up ${modes[up]:-0}) in ${secs} s"
echo "  killed while an iptables tool ran: $child_kills; held after ready: $ready_kills"
echo "  runs that ended before their kill (checked too): $finished; labs kept by up, removed with down: $kept"
echo "  iterations: $((i - 1)); with leftovers: $failures"
[ $failures -eq 0 ]
