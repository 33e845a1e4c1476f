//! Scenarios for measuring setup and teardown at scale (shared by
//! `tests/scale.rs`, `bench/scale.rs` and `bench/compare`): `n` containers, each publishing
//! one TCP port, on one bridge or spread over user-defined networks.
// Each of the three includers uses part of it.
#![allow(dead_code)]

/// `n` containers `c0`, `c1`, ... each publishing host port `10000 + i` to
/// its port 80. With `networks == 0` they all sit on the default bridge
/// (docker0), as in issue 12's measurements; otherwise (`docker20` and
/// later) on `networks` user-defined networks `n0`, `n1`, ... of a /16 each
/// (10.k.0.0/16), round robin, so none passes the kernel's 1,023 ports per
/// bridge while `n / networks` stays under it.
/// Only every `publish_every`th container publishes (1: all).
pub fn bridge_lab(firewall: &str, n: usize, networks: usize, publish_every: usize) -> String {
    let mut s = format!(
        "name = \"scale-{n}\"\nabout = \"{n} containers, one published TCP port each\"\n\
         [daemon]\nfirewall = \"{firewall}\"\n[probe]\ntimeout_ms = 500\nretries = 1\n"
    );
    for k in 0..networks {
        s.push_str(&format!(
            "[[network]]\nname = \"n{k}\"\nsubnet = \"10.{}.0.0/16\"\ngateway = \"10.{}.0.1\"\n",
            100 + k,
            100 + k
        ));
    }
    for i in 0..n {
        s.push_str(&format!("[[container]]\nname = \"c{i}\"\n"));
        if i % publish_every == 0 {
            s.push_str(&format!("publish = [\"{}:80\"]\n", 10_000 + i));
        }
        if networks > 0 {
            s.push_str(&format!("network = \"n{}\"\n", i % networks));
        }
    }
    s
}

/// Issue 12's scale target: 5,000 containers on 5 networks of Docker 20.10
/// (1,000 ports per bridge), every fifth publishing a port, and a sample of
/// six expectations with Docker's verdicts: same network reachable, another
/// network isolated, a port between containers, a published port from
/// outside. Every fifth only: 5,000 namespaces with a netlink socket each
/// and a proxy socket per published port on 0.0.0.0 and [::] must stay
/// under the usual hard limit of 20,000 open files.
pub fn five_thousand_on_five_networks() -> String {
    let mut text = bridge_lab("docker20", 5_000, 5, 5);
    // c0, c5, c10... are on n0; c1 on n1. c4995 listens on its port 80,
    // published as 14995.
    text = text.replace("name = \"c4995\"\n", "name = \"c4995\"\nlisten = [\"tcp:80\"]\n");
    for (from, to, probe, result) in [
        ("c0", "c5", "icmp", "reachable"),
        ("c4990", "c0", "icmp", "reachable"),
        ("c0", "c1", "icmp", "blocked"),
        ("c4999", "c3", "icmp", "blocked"),
        ("c4990", "c4995", "tcp:80", "reachable"),
        ("external", "host", "tcp:14995", "reachable"),
    ] {
        text.push_str(&format!(
            "[[expect]]\nfrom = \"{from}\"\nto = \"{to}\"\nprobe = \"{probe}\"\nresult = \"{result}\"\n"
        ));
    }
    text
}
