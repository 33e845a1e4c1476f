//! One run that compares bridgelab with netavark, the CNI plugins, a shell
//! script and the kernel's floor, and takes the other measurements of
//! issue 12. Run as root:
//!
//!   sudo cargo bench --bench compare                 # everything (N = 10, 100, 1000)
//!   sudo cargo bench --bench compare -- --quick      # N = 10 and 100 only
//!   sudo cargo bench --bench compare -- --only lib,netavark --sizes 100
//!
//! See bench/README.md for what is measured and how to read it.

mod extras;
mod ns;
mod peers;
#[path = "../../tests/common/scale.rs"]
mod scale;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use peers::{Ctx, Times, Tool, TOOLS};

const HELP: &str = "\
bench compare: bridgelab against netavark, CNI, a shell script and the floor

usage: sudo cargo bench --bench compare -- [OPTIONS]

  --quick           N = 10 and 100 only (skips N = 1000 and the 10,000-container plan/check)
  --sizes A,B,..    the container counts (default 10,100,1000)
  --rounds A,B,..   rounds per size (default 5,3,1, and at least 3 for
                    bridgelab and the floor: the median is shown)
  --only X,Y        run only these parts: lib cli netavark cni shell floor
                    matrix plan scale suite diff (default: all; --quick
                    leaves out scale)
  --skip X,Y        run all parts but these
  --firewall F      bridgelab's layout (default docker20)

Each round runs every tool once, in an order rotated per round, so all
tools see the same machine. Exits 1 if a tool failed (a peer that is not
installed is a failure, with the apt-get line that installs it) or if the
root namespace's links, /run/netns or firewall changed; target FAILs are
reported, not an error.";

struct Args {
    sizes: Vec<usize>,
    rounds: Vec<usize>,
    parts: Vec<String>,
    firewall: String,
    quick: bool,
}

const PARTS: [&str; 11] =
    ["lib", "cli", "netavark", "cni", "shell", "floor", "matrix", "plan", "scale", "suite", "diff"];

fn list(v: Option<String>) -> Vec<String> {
    v.map(|s| s.split(',').map(|x| x.trim().to_string()).filter(|x| !x.is_empty()).collect()).unwrap_or_default()
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1).filter(|a| a != "--bench");
    let mut a = Args {
        sizes: vec![10, 100, 1000],
        rounds: Vec::new(),
        parts: PARTS.iter().map(|s| s.to_string()).collect(),
        firewall: "docker20".into(),
        quick: false,
    };
    let nums = |v: Vec<String>| -> Result<Vec<usize>, String> {
        v.iter().map(|x| x.parse().map_err(|_| format!("not a number: {x}"))).collect()
    };
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--quick" => {
                a.quick = true;
                a.sizes = vec![10, 100];
            }
            "--sizes" => a.sizes = nums(list(it.next()))?,
            "--rounds" => a.rounds = nums(list(it.next()))?,
            "--only" => a.parts = list(it.next()),
            "--skip" => {
                let skip = list(it.next());
                a.parts.retain(|p| !skip.contains(p));
            }
            "--firewall" => a.firewall = it.next().ok_or("--firewall needs a value")?,
            "-h" | "--help" => return Err(HELP.into()),
            other => return Err(format!("unknown argument {other}\n\n{HELP}")),
        }
    }
    if let Some(bad) = a.parts.iter().find(|p| !PARTS.contains(&p.as_str())) {
        return Err(format!("unknown part {bad}: one of {}", PARTS.join(" ")));
    }
    if a.sizes.is_empty() || a.sizes.iter().any(|&n| n == 0 || n > 1000) {
        return Err("--sizes: 1 to 1000 containers (one bridge holds 1,023)".into());
    }
    Ok(a)
}

/// Rounds of `tool` at the `i`th size `n`: as `--rounds` says, else 5, 3
/// and 1 as N grows, but at least 3 for bridgelab and the floor, which
/// take seconds where the peers take minutes: one sample of a build of
/// 1,000 is at the mercy of what the kernel still does after the last.
fn rounds_for(a: &Args, i: usize, n: usize, tool: Tool) -> usize {
    a.rounds.get(i).copied().unwrap_or(match (n, tool) {
        // A tenth of a second each: a median of nine, since a round that
        // meets the kernel still freeing the last one's namespaces can
        // take half as long again.
        (0..=100, Tool::Lib | Tool::Cli | Tool::Floor) => 9,
        (0..=10, _) => 5,
        (_, Tool::Lib | Tool::Cli | Tool::Floor) => 3,
        (11..=100, _) => 3,
        _ => 1,
    })
}

fn ms(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 10.0 {
        format!("{s:.1} s")
    } else if s >= 1.0 {
        format!("{s:.2} s")
    } else {
        format!("{:.1} ms", s * 1000.0)
    }
}

/// Per tool and N: setups, teardowns, peak RSS readings (kB).
type Samples = (Vec<Duration>, Vec<Duration>, Vec<u64>);

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// A target line; `None` when its inputs were not measured this run.
struct Targets {
    lines: Vec<String>,
    failed: usize,
}

impl Targets {
    fn add(&mut self, what: &str, got: Option<(bool, String)>) {
        match got {
            Some((true, detail)) => self.lines.push(format!("PASS  {what}: {detail}")),
            Some((false, detail)) => {
                self.failed += 1;
                self.lines.push(format!("FAIL  {what}: {detail}"))
            }
            None => self.lines.push(format!("----  {what}: not measured in this run")),
        }
    }
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some(peers::RUSAGE_ARG) {
        return peers::rusage_main(&argv[2..]);
    }
    let args = match parse_args() {
        Ok(a) => a,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = bridgelab::check_environment() {
        eprintln!("bench compare: {e}");
        return ExitCode::from(3);
    }
    let has = |p: &str| args.parts.iter().any(|x| x == p);
    // `RUST_LOG=bridgelab=debug` shows where a build's time goes.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let before = ns::RootState::read();
    let started = Instant::now();
    let mut errors: Vec<String> = Vec::new();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let record = match ns::BenchRecord::write() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("bench compare: cannot write its run record: {e}");
            return ExitCode::from(3);
        }
    };
    if let Err(e) = bridgelab::apply::netns::share_dir(std::path::Path::new(bridgelab::registry::NETNS_DIR)) {
        eprintln!("bench compare: /run/netns: {e}");
        return ExitCode::from(3);
    }
    let tmp = tempfile::tempdir().expect("temp dir");
    let bridgelab = PathBuf::from(env!("CARGO_BIN_EXE_bridgelab"));
    let ctx = Ctx { rt: &rt, record: &record, tmp: tmp.path(), bridgelab: &bridgelab, firewall: &args.firewall };

    println!(
        "bench compare: {} on {}, {} cores, kernel {}; bridgelab layout {}; N = {:?}",
        chrono_now(),
        hostname(),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
        args.firewall,
        args.sizes
    );
    let tools: Vec<Tool> = TOOLS.iter().copied().filter(|t| has(t.key())).collect();
    let mut usable = Vec::new();
    for t in &tools {
        match peers::missing(*t) {
            Some(why) => errors.push(format!("{}: {why}", t.label())),
            None => usable.push(*t),
        }
    }
    for e in &errors {
        println!("ERROR {e}");
    }

    // Measured before anything runs; every run then starts as quiet.
    let quiet = quiet_share();
    eprintln!("  each run starts once the CPUs are {:.0}% idle over 100 ms", quiet * 100.0);
    let mut results: BTreeMap<(Tool, usize), Samples> = BTreeMap::new();
    let mut broken: BTreeMap<Tool, String> = BTreeMap::new();
    for (si, &n) in args.sizes.iter().enumerate() {
        let most = usable.iter().map(|&t| rounds_for(&args, si, n, t)).max().unwrap_or(1);
        for round in 0..most {
            // Rotate the order each round: no tool always follows another.
            let k = usable.len().max(1);
            for j in 0..usable.len() {
                let tool = usable[(j + round + si) % k];
                let rounds = rounds_for(&args, si, n, tool);
                if round >= rounds || broken.contains_key(&tool) {
                    continue;
                }
                // The kernel frees the last run's namespaces after its
                // teardown returned, on a worker thread (a millisecond or
                // more each): whoever ran next would pay for them.
                let waited = quiesce(quiet);
                if waited > Duration::from_secs(1) {
                    eprintln!("  (waited {} for the machine to go quiet)", ms(waited));
                }
                let t0 = Instant::now();
                match peers::run(tool, &ctx, n, round) {
                    Ok(Times { setup, teardown, max_rss_kb }) => {
                        eprintln!(
                            "  N={n} round {}/{rounds} {:<30} setup {:>9} teardown {:>9} ({:.0} s in all)",
                            round + 1,
                            tool.label(),
                            ms(setup),
                            ms(teardown),
                            started.elapsed().as_secs_f64()
                        );
                        let e = results.entry((tool, n)).or_default();
                        e.0.push(setup);
                        e.1.push(teardown);
                        e.2.extend(max_rss_kb);
                    }
                    Err(e) => {
                        let msg = format!("{} at N={n}: {e}", tool.label());
                        println!("ERROR {msg} (after {:?}; not run again)", t0.elapsed());
                        errors.push(msg);
                        broken.insert(tool, e);
                    }
                }
            }
        }
    }

    // The table.
    println!();
    let mut head = format!("{:<31}", "setup / teardown (median)");
    for n in &args.sizes {
        head.push_str(&format!("| {:>21} ", format!("N={n}")));
    }
    println!("{head}");
    let med = |tool: Tool, n: usize| -> Option<(Duration, Duration)> {
        results.get(&(tool, n)).map(|(s, t, _)| (median(&mut s.clone()), median(&mut t.clone())))
    };
    for t in &tools {
        let mut row = format!("{:<31}", t.label());
        for &n in &args.sizes {
            let cell = match med(*t, n) {
                Some((s, d)) => format!("{:>10} {:>10}", ms(s), ms(d)),
                None => format!("{:>21}", "failed"),
            };
            row.push_str(&format!("| {cell} "));
        }
        println!("{row}");
    }

    // Ratios: how many times faster bridgelab (library) is than each peer;
    // for the floor, how many times slower.
    println!();
    println!("bridgelab (Lab::up/down) against each (peer time / bridgelab time; floor: bridgelab / floor):");
    for t in tools.iter().filter(|t| **t != Tool::Lib) {
        let mut row = format!("  {:<31}", t.label());
        for &n in &args.sizes {
            let cell = match (med(Tool::Lib, n), med(*t, n)) {
                (Some((ls, lt)), Some((ps, pt))) => {
                    let r = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64().max(1e-9);
                    if *t == Tool::Floor {
                        format!("N={n}: setup {:.2}x, teardown {:.2}x", r(ls, ps), r(lt, pt))
                    } else {
                        format!("N={n}: setup {:.1}x, teardown {:.1}x", r(ps, ls), r(pt, lt))
                    }
                }
                _ => format!("N={n}: -"),
            };
            row.push_str(&format!("  {cell:<38}"));
        }
        println!("{}", row.trim_end());
    }
    let rss = |n: usize| results.get(&(Tool::Cli, n)).and_then(|r| r.2.iter().max().copied());
    for n in [100, 1000] {
        if let Some(kb) = rss(n) {
            println!("peak RSS of `bridgelab up` at N={n}: {:.1} MiB", kb as f64 / 1024.0);
        }
    }

    // The other measurements.
    println!();
    let mut matrix = None;
    if has("matrix") {
        match extras::matrix(&rt, &args.firewall, 3) {
            Ok((d, cells, blocked)) => {
                println!(
                    "matrix: 30x30 ICMP (30 containers, host and external), icc = false: {cells} pairs ({blocked} blocked) in {} (fastest of 3)",
                    ms(d)
                );
                matrix = Some(d);
            }
            Err(e) => errors.push(format!("matrix: {e}")),
        }
    }
    let mut plan_check: BTreeMap<(&str, usize), Duration> = BTreeMap::new();
    if has("plan") {
        let counts: &[usize] = if args.quick { &[1000] } else { &[1000, 10_000] };
        for &n in counts {
            let file = tmp.path().join(format!("big-{n}.toml"));
            if let Err(e) = std::fs::write(&file, extras::big_scenario(n)) {
                errors.push(format!("plan: {e}"));
                continue;
            }
            for verb in ["plan", "check"] {
                match extras::cli_time(&bridgelab, verb, &file, 3) {
                    Ok(d) => {
                        println!(
                            "bridgelab {verb} of {n} containers ({} networks): {} (fastest of 3)",
                            n.div_ceil(1000),
                            ms(d)
                        );
                        plan_check.insert((verb, n), d);
                    }
                    Err(e) => errors.push(format!("{verb} of {n}: {e}")),
                }
            }
        }
    }
    if has("scale") && !args.quick {
        match extras::scale(&rt) {
            Ok(s) => println!(
                "5,000 containers on 5 networks (library): built {}, read back at {}, {} expectations checked at {}, down at {}",
                ms(s.built),
                ms(s.verified),
                s.expectations,
                ms(s.probed),
                ms(s.down)
            ),
            Err(e) => errors.push(format!("scale: {e}")),
        }
    }
    if has("suite") {
        match extras::suite(&bridgelab) {
            Ok((d, files, code)) => println!(
                "scenarios/ suite: `bridgelab run` of {files} files in {} (exit {code}{})",
                ms(d),
                if code == 0 { ", all passed" } else { ", see `bridgelab run` for the failures" }
            ),
            Err(e) => errors.push(format!("suite: {e}")),
        }
    }
    if has("diff") {
        let file = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/docker20-publish.toml"));
        match extras::diff(&bridgelab, &file) {
            Ok(d) => {
                println!(
                    "bridgelab diff scenarios/docker20-publish.toml: {} wall; real dockerd's side {:.2} s, bridgelab's {:.2} s ({:.1}x), teardown {:.2} s",
                    ms(d.wall),
                    d.docker,
                    d.ours,
                    d.docker / d.ours.max(1e-9),
                    d.teardown
                );
                println!("  {}", d.line);
            }
            Err(e) => errors.push(format!("diff: {e}")),
        }
    }

    // Targets of issue 12, item 2.
    let mut t = Targets { lines: Vec::new(), failed: 0 };
    let ratio = |peer: Tool, n: usize, teardown: bool| -> Option<f64> {
        let (ls, lt) = med(Tool::Lib, n)?;
        let (ps, pt) = med(peer, n)?;
        Some(if teardown { pt.as_secs_f64() / lt.as_secs_f64() } else { ps.as_secs_f64() / ls.as_secs_f64() })
    };
    let at_least = |r: Option<f64>, want: f64| r.map(|r| (r >= want, format!("{r:.1}x (want >= {want}x)")));
    t.add("setup N=100 >= 30x faster than netavark", at_least(ratio(Tool::Netavark, 100, false), 30.0));
    t.add("setup N=100 >= 12x faster than the shell script", at_least(ratio(Tool::Shell, 100, false), 12.0));
    let within = |n: usize, want: f64| {
        ratio(Tool::Floor, n, false).map(|r| (1.0 / r <= want, format!("{:.2}x the floor (want <= {want}x)", 1.0 / r)))
    };
    t.add("setup N=100 within 1.25x of the floor", within(100, 1.25));
    t.add("setup N=1000 within 1.5x of the floor", within(1000, 1.5));
    let linear = match (med(Tool::Lib, 100), med(Tool::Lib, 1000)) {
        (Some((_, a)), Some((_, b))) => {
            let r = b.as_secs_f64() / a.as_secs_f64();
            Some((r <= 12.0, format!("N=1000 takes {r:.1}x N=100 (want <= 12x)")))
        }
        _ => None,
    };
    t.add("teardown linear in N", linear);
    t.add("teardown N=100 >= 500x faster than netavark", at_least(ratio(Tool::Netavark, 100, true), 500.0));
    for verb in ["plan", "check"] {
        let got =
            plan_check.get(&(verb, 10_000)).map(|d| (d.as_secs_f64() < 0.5, format!("{} (want < 0.5 s)", ms(*d))));
        t.add(&format!("{verb} of 10,000 containers < 0.5 s"), got);
    }
    t.add("30x30 matrix < 0.3 s", matrix.map(|d| (d.as_secs_f64() < 0.3, format!("{} (want < 0.3 s)", ms(d)))));
    t.add(
        "peak RSS at N=1000 < 64 MiB",
        rss(1000).map(|kb| (kb < 64 * 1024, format!("{:.1} MiB (want < 64 MiB)", kb as f64 / 1024.0))),
    );
    println!();
    println!("targets (issue 12):");
    for l in &t.lines {
        println!("  {l}");
    }

    // Nothing may be left, nor made, outside the bench's own namespaces.
    drop(record);
    drop(tmp);
    let after = ns::RootState::read();
    let changes = before.changes(&after);
    for c in &changes {
        errors.push(format!("the root namespace changed: {c}"));
    }
    let left: Vec<String> = bridgelab::registry::lab_namespaces()
        .into_iter()
        .filter(|n| n.starts_with(&format!("bl-bench{:x}-", std::process::id())))
        .collect();
    if !left.is_empty() {
        errors.push(format!("namespaces left behind: {left:?}"));
    }
    println!();
    if changes.is_empty() && left.is_empty() {
        println!(
            "root namespace: links, /run/netns and iptables/ip6tables/nft rules unchanged; no bench namespace left"
        );
    }
    println!(
        "{} of {} targets pass; whole run {:.0} s",
        t.lines.iter().filter(|l| l.starts_with("PASS")).count(),
        t.lines.len(),
        started.elapsed().as_secs_f64()
    );
    if errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        println!("{} errors:", errors.len());
        for e in &errors {
            println!("  {e}");
        }
        ExitCode::FAILURE
    }
}

fn chrono_now() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default().trim().to_string()
}

/// The share of CPU time that was idle over 100 ms, from `/proc/stat`.
fn idle_share() -> Option<f64> {
    fn idle_and_total() -> Option<(u64, u64)> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let cpu: Vec<u64> = stat.lines().next()?.split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
        // user nice system idle iowait irq softirq steal
        Some((cpu.get(3)? + cpu.get(4)?, cpu.iter().take(8).sum()))
    }
    let (i0, t0) = idle_and_total()?;
    std::thread::sleep(Duration::from_millis(100));
    let (i1, t1) = idle_and_total()?;
    (t1 > t0).then(|| (i1 - i0) as f64 / (t1 - t0) as f64)
}

/// How idle the machine is when nothing of the bench runs: the most idle
/// of three windows at the start, less a little for the bench's own
/// noise. Between 50% and 95%.
fn quiet_share() -> f64 {
    let best = (0..3).filter_map(|_| idle_share()).fold(0.0, f64::max);
    (best - 0.03).clamp(0.5, 0.95)
}

/// Waits (at most 20 s) until the CPUs are as idle over 100 ms as they
/// were at the start (`quiet`, from [`quiet_share`]): the kernel's cleanup
/// of namespaces removed by the previous run has finished. That cleanup
/// goes on for a few hundred milliseconds after a teardown returns, at
/// times on a fifth of the CPU only: waiting for 80% idle let it run into
/// the next run's setup (a tenth of bridgelab's time at N = 100).
/// Returns how long it waited.
fn quiesce(quiet: f64) -> Duration {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        match idle_share() {
            Some(idle) if idle < quiet => {}
            _ => break,
        }
    }
    start.elapsed()
}
