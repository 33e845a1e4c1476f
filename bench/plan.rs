//! Time of `check` (parse, validate, plan) for big scenarios; no root needed.
//!
//!   cargo bench --bench plan -- [N…] [--write DIR] [--reps R] [--only docker1|docker20]
//!
//! For each N (default 1000 and 10000) it generates two scenarios, times
//! `Scenario::parse` and `Lab::from_scenario` on each (best of R runs,
//! default 3) and prints the times with the time per container:
//!
//! * `docker1`: N containers on docker0, each publishing one TCP port, with
//!   one expectation per container (to the next one, on its port). Past
//!   1,023 containers the plan refuses the bridge as full (the kernel's
//!   limit), so the time is that of finding out.
//! * `docker20`: the same spread over `ceil(N / 1000)` user networks of a
//!   /22 each, as a lab bigger than one bridge must be.
//!
//! `--write DIR` also writes each scenario to `DIR/plan-<layout>-<N>.toml`,
//! for `bridgelab check` or `bridgelab plan` from the command line.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bridgelab::{Lab, Scenario};

/// Containers per network in the docker20 scenario: under the bridge's
/// 1,023 ports, and a /22 holds them.
const PER_NETWORK: usize = 1000;

/// The text of a scenario of `n` containers under `layout`.
pub fn scenario(layout: &str, n: usize) -> String {
    let mut s = String::with_capacity(n * 160);
    writeln!(s, "name = \"plan-{layout}-{n}\"\n\n[daemon]\nfirewall = \"{layout}\"\n").unwrap();
    let networks = if layout == "docker1" { 0 } else { n.div_ceil(PER_NETWORK) };
    for k in 0..networks {
        // 10.<k/64>.<(k%64)*4>.0/22: 64 networks per second octet.
        let (a, b) = (10 + k / 64, (k % 64) * 4);
        writeln!(s, "[[network]]\nname = \"net{k}\"\nsubnet = \"{a}.{b}.0.0/22\"\n").unwrap();
    }
    let network =
        |i: usize| if networks == 0 { String::new() } else { format!("network = \"net{}\"\n", i / PER_NETWORK) };
    for i in 0..n {
        // Host ports from 10000 up: one TCP port each, all distinct.
        writeln!(
            s,
            "[[container]]\nname = \"c{i}\"\n{}listen = [\"tcp:80\"]\npublish = [\"{}:80\"]\n",
            network(i),
            10_000 + i
        )
        .unwrap();
    }
    for i in 0..n {
        // To the next container on the same network (or the same bridge).
        let j = if networks == 0 || (i + 1) % PER_NETWORK != 0 { (i + 1) % n } else { i + 1 - PER_NETWORK };
        writeln!(s, "[[expect]]\nfrom = \"c{i}\"\nto = \"c{j}\"\nprobe = \"tcp:80\"\nresult = \"reachable\"\n")
            .unwrap();
    }
    s
}

fn best(reps: usize, mut f: impl FnMut() -> Duration) -> Duration {
    (0..reps).map(|_| f()).min().unwrap_or_default()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let mut sizes = Vec::new();
    let mut write: Option<PathBuf> = None;
    let mut reps = 3;
    let mut layouts = vec!["docker1", "docker20"];
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--write" => write = it.next().map(PathBuf::from),
            "--reps" => reps = it.next().and_then(|r| r.parse().ok()).expect("--reps R"),
            "--only" => {
                layouts = vec![if it.next().map(String::as_str) == Some("docker1") { "docker1" } else { "docker20" }]
            }
            n => sizes.push(n.parse::<usize>().expect("N is a number")),
        }
    }
    if sizes.is_empty() {
        sizes = vec![1000, 10_000];
    }
    println!("{:>8} {:>9} {:>10} {:>10} {:>10} {:>9}  result", "layout", "N", "parse", "plan", "check", "us/cont");
    for &n in &sizes {
        for &layout in &layouts {
            let text = scenario(layout, n);
            let path = PathBuf::from(format!("plan-{layout}-{n}.toml"));
            if let Some(dir) = &write {
                std::fs::write(dir.join(&path), &text).expect("write scenario");
            }
            let mut outcome = String::new();
            let parse = best(reps, || {
                let t = Instant::now();
                let s = Scenario::parse(path.clone(), text.clone());
                let d = t.elapsed();
                drop(s);
                d
            });
            let plan = best(reps, || {
                let s = Scenario::parse(path.clone(), text.clone()).expect("the generated scenario parses");
                let t = Instant::now();
                let lab = Lab::from_scenario(s);
                let d = t.elapsed();
                outcome = match &lab {
                    Ok(l) => format!("ok, {} containers planned", l.plan().containers.len()),
                    Err(e) => e.to_string().lines().next().unwrap_or_default().to_string(),
                };
                drop(lab);
                d
            });
            let check = parse + plan;
            println!(
                "{layout:>8} {n:>9} {:>8.1}ms {:>8.1}ms {:>8.1}ms {:>9.1}  {outcome}",
                parse.as_secs_f64() * 1e3,
                plan.as_secs_f64() * 1e3,
                check.as_secs_f64() * 1e3,
                check.as_secs_f64() * 1e6 / n as f64
            );
        }
    }
}
