//! The other measurements of the run: the 30x30 ICMP matrix, `plan` and
//! `check` of big scenarios, the scenarios/ suite, and `bridgelab diff`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bridgelab::scenario::{ProbeSpec, Scenario};
use bridgelab::Lab;

use crate::peers::Res;

/// The all-pairs ICMP matrix of 30 containers with icc = false (most pairs
/// blocked), on a lab built once; the fastest of `rounds`.
pub fn matrix(rt: &tokio::runtime::Runtime, firewall: &str, rounds: usize) -> Res<(Duration, usize, usize)> {
    let mut text = format!(
        "name = \"bench-matrix\"\nabout = \"30 containers, icc off\"\n[daemon]\nfirewall = \"{firewall}\"\nicc = false\n[probe]\ntimeout_ms = 200\nretries = 0\n",
    );
    for i in 0..30 {
        text.push_str(&format!("[[container]]\nname = \"c{i:02}\"\n"));
    }
    let scenario = Scenario::parse("bench-matrix.toml".into(), text).map_err(|e| e.to_string())?;
    let lab = Lab::from_scenario(scenario).map_err(|e| e.to_string())?;
    rt.block_on(async {
        let running = lab.up().await.map_err(|e| e.to_string())?;
        let mut best = Duration::MAX;
        let mut cells = Vec::new();
        for _ in 0..rounds.max(1) {
            let start = Instant::now();
            cells = bridgelab::probe::matrix::run(&running, &[ProbeSpec::Icmp]).await;
            best = best.min(start.elapsed());
        }
        running.down().map_err(|e| e.to_string())?;
        let blocked = cells.iter().filter(|c| c.actual.as_deref() == Some("blocked")).count();
        // Every ordered pair of the 30 containers, the host and external.
        if cells.len() != 32 * 31 {
            return Err(format!("the matrix has {} cells, not 992", cells.len()));
        }
        Ok((best, cells.len(), blocked))
    })
}

/// A docker20 scenario of `n` containers over networks of 1,000 (a bridge
/// holds 1,023 ports), each container publishing one TCP port.
pub fn big_scenario(n: usize) -> String {
    crate::scale::bridge_lab("docker20", n, n.div_ceil(1000), 1)
}

/// When each stage of the 5,000-container lab ended, from the start.
pub struct Scale {
    pub built: Duration,
    pub verified: Duration,
    pub probed: Duration,
    pub down: Duration,
    pub expectations: usize,
}

/// Issue 12's scale target through the library, in this process: 5,000
/// containers on 5 networks built, read back (it must equal the plan), a
/// sample of six expectations checked (all must pass), and torn down.
pub fn scale(rt: &tokio::runtime::Runtime) -> Res<Scale> {
    let scenario = Scenario::parse("scale-5000.toml".into(), crate::scale::five_thousand_on_five_networks())
        .map_err(|e| e.to_string())?;
    let lab = Lab::from_scenario(scenario).map_err(|e| e.to_string())?;
    rt.block_on(async {
        let start = Instant::now();
        let mut running = lab.up().await.map_err(|e| e.to_string())?;
        let built = start.elapsed();
        let mismatches = running.verify().await.map_err(|e| e.to_string())?;
        if let Some(m) = mismatches.first() {
            return Err(format!("the lab differs from its plan ({} differences), first: {m}", mismatches.len()));
        }
        let verified = start.elapsed();
        let mut responders = bridgelab::probe::start_responders(&running).map_err(|e| e.to_string())?;
        let checked = bridgelab::probe::check_scenario(&mut running, &mut responders).await;
        drop(responders);
        let probed = start.elapsed();
        let failed: Vec<String> = checked.failed().map(|o| format!("{o:?}")).collect();
        running.down().map_err(|e| e.to_string())?;
        let down = start.elapsed();
        if !checked.passed() {
            return Err(format!("expectations failed: {failed:?}"));
        }
        Ok(Scale { built, verified, probed, down, expectations: checked.expectations.len() })
    })
}

/// Wall time of `bridgelab VERB FILE`, output discarded; the fastest of
/// `rounds`.
pub fn cli_time(bridgelab: &Path, verb: &str, file: &Path, rounds: usize) -> Res<Duration> {
    let mut best = Duration::MAX;
    for _ in 0..rounds.max(1) {
        let start = Instant::now();
        let out = Command::new(bridgelab)
            .arg(verb)
            .arg(file)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| e.to_string())?;
        best = best.min(start.elapsed());
        if !out.status.success() {
            return Err(format!("bridgelab {verb}: {}: {}", out.status, String::from_utf8_lossy(&out.stderr)));
        }
    }
    Ok(best)
}

/// `bridgelab run scenarios/*.toml scenarios/bugs/*.toml`: wall time, files,
/// and the exit code (1 if an expectation failed).
pub fn suite(bridgelab: &Path) -> Res<(Duration, usize, i32)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["scenarios", "scenarios/bugs"] {
        let mut v: Vec<_> = std::fs::read_dir(root.join(dir))
            .map_err(|e| format!("{dir}: {e}"))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        v.sort();
        files.extend(v);
    }
    let start = Instant::now();
    let out = Command::new(bridgelab)
        .arg("run")
        .args(&files)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| e.to_string())?;
    Ok((start.elapsed(), files.len(), out.code().unwrap_or(-1)))
}

/// `bridgelab diff FILE`, with its `time:` line split into the real
/// daemon's share (host namespaces, daemon start, image import, docker
/// commands, read-back, probes) and bridgelab's (lab, probes).
pub struct DiffTime {
    pub wall: Duration,
    pub docker: f64,
    pub ours: f64,
    pub teardown: f64,
    pub line: String,
}

pub fn diff(bridgelab: &Path, file: &Path) -> Res<DiffTime> {
    let start = Instant::now();
    let out = Command::new(bridgelab).arg("diff").arg(file).output().map_err(|e| e.to_string())?;
    let wall = start.elapsed();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let Some(line) = text.lines().find(|l| l.trim_start().starts_with("time:")) else {
        return Err(format!(
            "bridgelab diff {} printed no time: line ({}): {}",
            file.display(),
            out.status,
            text.trim()
        ));
    };
    let line = line.trim().to_string();
    let (docker, rest) = line.split_once("bridgelab:").ok_or("time: line without `bridgelab:`")?;
    let (ours, rest) = rest.split_once("teardown").ok_or("time: line without `teardown`")?;
    let teardown = seconds(rest.split(';').next().unwrap_or(""));
    Ok(DiffTime { wall, docker: seconds(docker), ours: seconds(ours), teardown, line })
}

/// The sum of every `X.YY s` in a piece of the `time:` line.
fn seconds(part: &str) -> f64 {
    let words: Vec<&str> = part.split_whitespace().collect();
    words.windows(2).filter(|w| w[1].trim_end_matches([',', ';']) == "s").filter_map(|w| w[0].parse::<f64>().ok()).sum()
}
