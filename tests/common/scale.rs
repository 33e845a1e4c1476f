//! Scenarios for measuring setup and teardown at scale (shared by
//! `tests/scale.rs` and `bench/scale.rs`): `n` containers, each publishing
//! one TCP port, on one bridge or spread over user-defined networks.

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
