#!/bin/sh
# The shell-script peer of `cargo bench --bench compare`: N containers on one
# bridge, each publishing one TCP port, made and removed with one `ip` or
# `iptables` process per object, as hand-written scripts do it.
#
#   peer.sh setup|teardown PREFIX N
#
# It acts on the network namespace it runs in (the bench runs it inside a
# throwaway one); container namespaces are `ip netns add PREFIX<i>`.
set -eu
action=$1 prefix=$2 n=$3

ipof() { echo "10.90.$(($1 / 250)).$(($1 % 250 + 2))"; }

case $action in
setup)
    ip link set lo up
    ip link add br0 type bridge
    ip addr add 10.90.0.1/16 dev br0
    ip link set br0 up
    iptables -w -t nat -N BENCH
    iptables -w -t nat -A PREROUTING -m addrtype --dst-type LOCAL -j BENCH
    iptables -w -t nat -A POSTROUTING -s 10.90.0.0/16 ! -o br0 -j MASQUERADE
    i=0
    while [ $i -lt "$n" ]; do
        ns=$prefix$i ip=$(ipof $i)
        ip netns add "$ns"
        ip link add "vb$i" type veth peer name eth0 netns "$ns"
        ip link set "vb$i" master br0 up
        ip -n "$ns" addr add "$ip/16" dev eth0
        ip -n "$ns" link set eth0 up
        ip -n "$ns" link set lo up
        ip -n "$ns" route add default via 10.90.0.1
        iptables -w -t nat -A BENCH -p tcp --dport $((10000 + i)) -j DNAT --to-destination "$ip:80"
        iptables -w -A FORWARD -d "$ip" -o br0 -p tcp --dport 80 -j ACCEPT
        i=$((i + 1))
    done
    ;;
teardown)
    i=0
    while [ $i -lt "$n" ]; do
        ns=$prefix$i ip=$(ipof $i)
        iptables -w -t nat -D BENCH -p tcp --dport $((10000 + i)) -j DNAT --to-destination "$ip:80"
        iptables -w -D FORWARD -d "$ip" -o br0 -p tcp --dport 80 -j ACCEPT
        ip netns del "$ns"
        i=$((i + 1))
    done
    iptables -w -t nat -D POSTROUTING -s 10.90.0.0/16 ! -o br0 -j MASQUERADE
    iptables -w -t nat -D PREROUTING -m addrtype --dst-type LOCAL -j BENCH
    iptables -w -t nat -X BENCH
    ip link del br0
    ;;
*)
    echo "usage: peer.sh setup|teardown PREFIX N" >&2
    exit 2
    ;;
esac
