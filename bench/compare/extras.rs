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

/// A docker20 scenario of `n` containers over networks of at most 1,000
/// (a bridge holds 1,023 ports), each container publishing one TCP port.
pub fn big_scenario(n: usize) -> String {
    let nets = n.div_ceil(1000);
    let mut s = format!(
        "name = \"bench-{n}\"\nabout = \"{n} containers on {nets} networks\"\n[daemon]\nfirewall = \"docker20\"\n"
    );
    for k in 0..nets {
        s.push_str(&format!("[[network]]\nname = \"n{k}\"\nsubnet = \"10.{}.0.0/16\"\n", 100 + k));
    }
    for i in 0..n {
        s.push_str(&format!(
            "[[container]]\nname = \"c{i}\"\nnetwork = \"n{}\"\npublish = [\"{}:80\"]\n",
            i / 1000,
            10000 + i
        ));
    }
    s
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
