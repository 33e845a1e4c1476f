//! The all-pairs truth table (`bridgelab run --matrix icmp,tcp:80`), as
//! cyclonus prints one for Kubernetes policies: every node probes every
//! other node, and cells that contradict an `[[expect]]` are marked.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use super::engine::ProbeJob;
use super::{resolve_target, run_jobs, sender_netns, verdict_of, wire_kind};
use crate::apply::RunningLab;
use crate::scenario::{ProbeSpec, Verdict};

#[derive(Debug, Clone, Serialize)]
pub struct Cell {
    pub from: String,
    pub to: String,
    pub probe: String,
    pub expected: Option<String>,
    pub actual: Option<String>,
    pub detail: String,
    /// An expectation exists and the wire disagrees.
    pub differs: bool,
}

/// Senders and targets: the host, the external node, running containers.
pub fn nodes(lab: &RunningLab) -> Vec<String> {
    let mut v = vec!["host".to_string(), "external".to_string()];
    v.extend(lab.plan().machines.iter().map(|m| m.name.clone()));
    v.extend(lab.plan().containers.iter().filter(|c| c.netns.is_some()).map(|c| c.name.clone()));
    v
}

/// Probes every ordered pair of distinct nodes with every probe, at once.
pub async fn run(lab: &RunningLab, probes: &[ProbeSpec]) -> Vec<Cell> {
    let plan = lab.plan();
    let settings = &lab.scenario().spec.probe;
    let timeout = Duration::from_millis(*settings.timeout_ms.get_ref());
    let names = nodes(lab);
    // The first expectation of each (from, to, probe), looked up per pair
    // rather than scanned: pairs times expectations adds up in a big lab.
    let mut wanted: HashMap<(&str, &str, ProbeSpec), Option<Verdict>> = HashMap::new();
    for e in lab.scenario().spec.expects.iter().filter(|e| e.flow.is_none()) {
        wanted.entry((e.from().get_ref().as_str(), e.to.get_ref().as_str(), e.probe())).or_insert_with(|| e.wanted());
    }
    let mut cells = Vec::new();
    let mut jobs = Vec::new();
    let mut slot = Vec::new();
    for probe in probes {
        for from in &names {
            for to in names.iter().filter(|t| *t != from) {
                let expected = wanted.get(&(from.as_str(), to.as_str(), *probe)).copied().flatten();
                let resolved =
                    sender_netns(plan, from).and_then(|ns| resolve_target(plan, &ns, to).map(|dst| (ns, dst)));
                let differs_if_missing = expected.is_some();
                let index = cells.len();
                cells.push(Cell {
                    from: from.clone(),
                    to: to.clone(),
                    probe: probe.to_string(),
                    expected: expected.map(|v| v.to_string()),
                    actual: None,
                    detail: String::new(),
                    differs: false,
                });
                match resolved {
                    Ok((netns, dst)) => {
                        slot.push((index, *probe, expected));
                        let patient = expected.is_some_and(|v| v != Verdict::Blocked);
                        jobs.push(ProbeJob { netns, dst, kind: wire_kind(*probe), patient, via: None });
                    }
                    Err(e) => {
                        cells[index].detail = e;
                        cells[index].differs = differs_if_missing;
                    }
                }
            }
        }
    }
    let results = run_jobs(lab, jobs, timeout, settings.retries).await;
    for ((i, probe, expected), r) in slot.into_iter().zip(results) {
        let (verdict, detail) = verdict_of(&r, probe);
        let c = &mut cells[i];
        c.actual = verdict.map(|v| v.to_string());
        c.detail = detail;
        c.differs = expected.is_some() && expected != verdict;
    }
    cells
}

fn letter(v: Option<&str>) -> &'static str {
    match v {
        Some("reachable") => "R",
        Some("refused") => "r",
        Some("blocked") => "x",
        _ => "!",
    }
}

/// One table per probe; a `*` marks a cell that contradicts an expectation.
pub fn render(cells: &[Cell], probes: &[ProbeSpec], names: &[String]) -> String {
    let w = names.iter().map(|n| n.len()).max().unwrap_or(4).max(9);
    // Each cell by probe, sender and target (the first of each): one
    // lookup per cell of the table instead of a scan of all cells.
    let mut at: HashMap<(&str, &str, &str), &Cell> = HashMap::new();
    for c in cells {
        at.entry((c.probe.as_str(), c.from.as_str(), c.to.as_str())).or_insert(c);
    }
    let mut s = String::new();
    for probe in probes {
        let p = probe.to_string();
        let _ = writeln!(s, "matrix {p}: R reachable, r refused, x blocked, ! error, * contradicts an [[expect]]");
        let _ = write!(s, "{:<w$}", "from\\to");
        for n in names {
            let _ = write!(s, " {n:>w$}");
        }
        s.push('\n');
        for from in names {
            let _ = write!(s, "{from:<w$}");
            for to in names {
                let text = match at.get(&(p.as_str(), from.as_str(), to.as_str())) {
                    None => "-".to_string(),
                    Some(c) => format!("{}{}", if c.differs { "*" } else { "" }, letter(c.actual.as_deref())),
                };
                let _ = write!(s, " {text:>w$}");
            }
            s.push('\n');
        }
        for c in cells.iter().filter(|c| c.probe == p && c.differs) {
            let _ = writeln!(
                s,
                "  * {} -> {}: expected {}, got {} ({})",
                c.from,
                c.to,
                c.expected.as_deref().unwrap_or("?"),
                c.actual.as_deref().unwrap_or("error"),
                c.detail
            );
        }
        s.push('\n');
    }
    s
}

/// Whether any cell contradicts an expectation.
pub fn any_differs(cells: &[Cell]) -> bool {
    cells.iter().any(|c| c.differs)
}
