//! Speed of building labs and probing them, as ratios against peers in the
//! same run (never as timed assertions in tests). Run as root:
//!
//!   sudo cargo bench --bench lab
//!
//! Both layouts with a simulator of their own are measured: `docker1` and
//! `docker20` (libnetwork's model), so the speed reached for the first
//! holds for the second.
//!
//! * build: 30 containers through bridgelab (one thread for all namespaces,
//!   rtnetlink in each) against the same topology made with `ip` commands,
//!   one process per object, as shell scripts do it.
//! * matrix: the all-pairs ICMP matrix of 30 containers with icc=false (most
//!   pairs blocked) against the same probes sent one after another.

use std::process::Command;
use std::time::{Duration, Instant};

use bridgelab::probe::engine::ProbeJob;
use bridgelab::scenario::{ProbeSpec, Scenario};
use bridgelab::Lab;

const CONTAINERS: usize = 30;

fn scenario(firewall: &str) -> Scenario {
    let mut text = format!(
        "name = \"bench\"\nabout = \"30 containers\"\n[daemon]\nfirewall = \"{firewall}\"\nicc = false\n[probe]\ntimeout_ms = 200\nretries = 0\n",
    );
    for i in 0..CONTAINERS {
        text.push_str(&format!("[[container]]\nname = \"c{i:02}\"\n"));
    }
    Scenario::parse("bench.toml".into(), text).expect("valid")
}

/// The peer: the same namespaces and veth pairs with one `ip` process per step.
fn ip_peer() -> Duration {
    let ip = |args: &[&str]| {
        let ok = Command::new("ip").args(args).status().map(|s| s.success()).unwrap_or(false);
        assert!(ok, "ip {}", args.join(" "));
    };
    let start = Instant::now();
    ip(&["netns", "add", "bl-peer-host"]);
    ip(&["-n", "bl-peer-host", "link", "add", "docker0", "type", "bridge"]);
    ip(&["-n", "bl-peer-host", "addr", "add", "172.17.42.1/16", "dev", "docker0"]);
    ip(&["-n", "bl-peer-host", "link", "set", "docker0", "up"]);
    for i in 0..CONTAINERS {
        let ns = format!("bl-peer-c{i:02}");
        let veth = format!("vethpeer{i:02}");
        let addr = format!("172.17.0.{}/16", i + 1);
        ip(&["netns", "add", &ns]);
        ip(&["-n", "bl-peer-host", "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns]);
        ip(&["-n", "bl-peer-host", "link", "set", &veth, "master", "docker0", "up"]);
        ip(&["-n", &ns, "addr", "add", &addr, "dev", "eth0"]);
        ip(&["-n", &ns, "link", "set", "eth0", "up"]);
        ip(&["-n", &ns, "link", "set", "lo", "up"]);
        ip(&["-n", &ns, "route", "add", "default", "via", "172.17.42.1"]);
    }
    let took = start.elapsed();
    for i in 0..CONTAINERS {
        ip(&["netns", "del", &format!("bl-peer-c{i:02}")]);
    }
    ip(&["netns", "del", "bl-peer-host"]);
    took
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    assert!(nix::unistd::geteuid().is_root(), "the benchmark builds namespaces: run it as root");
    for firewall in ["docker1", "docker20"] {
        println!("-- firewall = {firewall:?}");
        one_layout(firewall).await;
    }
}

async fn one_layout(firewall: &str) {
    let lab = Lab::from_scenario(scenario(firewall)).unwrap();
    let start = Instant::now();
    let running = lab.up().await.unwrap();
    let ours = start.elapsed();
    let peer = ip_peer();
    println!("build {CONTAINERS} containers: bridgelab {ours:?} ({:.2} ms/container), ip commands {peer:?} ({:.2} ms/container), ratio {:.1}x",
        ours.as_secs_f64() * 1000.0 / CONTAINERS as f64,
        peer.as_secs_f64() * 1000.0 / CONTAINERS as f64,
        peer.as_secs_f64() / ours.as_secs_f64());

    let start = Instant::now();
    let cells = bridgelab::probe::matrix::run(&running, &[ProbeSpec::Icmp]).await;
    let matrix = start.elapsed();
    let blocked = cells.iter().filter(|c| c.actual.as_deref() == Some("blocked")).count();
    println!("matrix icmp: {} pairs ({blocked} blocked) in {matrix:?}", cells.len());

    // The peer: the same probes one after another, on an even sample of pairs.
    let sample: Vec<ProbeJob> = cells
        .iter()
        .step_by(cells.len() / 40)
        .filter_map(|c| {
            let plan = running.plan();
            let ns = plan.container(&c.from).and_then(|p| p.netns.clone()).unwrap_or_else(|| c.from.clone());
            bridgelab::probe::resolve_target(plan, &ns, &c.to).ok().map(|dst| ProbeJob {
                netns: ns,
                dst,
                kind: bridgelab::probe::packets::WireKind::Icmp,
                patient: false,
                via: None,
            })
        })
        .collect();
    let start = Instant::now();
    for job in &sample {
        let _ = bridgelab::probe::run_jobs(&running, vec![job.clone()], Duration::from_millis(200), 0).await;
    }
    let per_probe = start.elapsed() / sample.len() as u32;
    let sequential = per_probe * cells.len() as u32;
    println!(
        "sequential probing: {per_probe:?} per probe, {sequential:?} for the matrix; concurrent ratio {:.1}x",
        sequential.as_secs_f64() / matrix.as_secs_f64()
    );
    running.down().unwrap();
}
