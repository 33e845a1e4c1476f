//! Probes and expectations: what the built lab does on the wire.
//!
//! An `[[expect]]` names a sender, a target and a probe. [`check`] resolves
//! them against the plan (a container's namespace and address, the host's
//! address as the sender sees it), sends pnet-crafted packets from inside the
//! sender's namespace ([`engine`]), turns the answers into a verdict, and for
//! `source` asks the target's responder who the traffic seemed to come from.

pub mod engine;
pub mod matrix;
pub mod packets;
pub mod responder;

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use serde::Serialize;

use engine::{Outcome, ProbeJob, ProbeResult};
use packets::{token_payload, Answer, WireKind};
use responder::Responders;

use crate::apply::RunningLab;
use crate::plan::{Plan, UPLINK_EXTERNAL, UPLINK_HOST};
use crate::scenario::{Expect, ProbeSpec, Verdict};

/// The verdict of one expectation.
#[derive(Debug, Clone, Serialize)]
pub struct ExpectOutcome {
    /// `name`, or `from -> to probe`.
    pub name: String,
    /// `path:line:col` of the `[[expect]]`.
    pub location: String,
    pub from: String,
    pub to: String,
    pub target: Option<Ipv4Addr>,
    pub probe: String,
    pub expected: String,
    /// `None` when the probe could not be carried out.
    pub actual: Option<String>,
    pub source_expected: Option<String>,
    pub source_seen: Option<Ipv4Addr>,
    pub passed: bool,
    /// What was seen, and for a failure, why.
    pub detail: String,
    pub elapsed_ms: u64,
    /// The `[[step]]` after which it was checked; `None` for the top level.
    pub step: Option<String>,
}

/// Where a node's traffic starts: its namespace and its addresses.
fn sender_netns(plan: &Plan, node: &str) -> Result<String, String> {
    match node {
        "host" | "external" => Ok(node.to_string()),
        c => match plan.container(c) {
            None => Err(format!("unknown node {c}")),
            Some(cp) => cp.netns.clone().ok_or_else(|| format!("container {c} is not running")),
        },
    }
}

/// The host's address as a sender in `from_ns` sees it: the bridge gateway
/// from a bridged container, the uplink address from anywhere else.
fn host_address(plan: &Plan, from_ns: &str) -> Ipv4Addr {
    plan.containers
        .iter()
        .find(|c| c.name == from_ns)
        .and_then(|c| c.endpoint.as_ref())
        .map(|e| e.gateway)
        .unwrap_or(UPLINK_HOST.ip())
}

/// The address a probe from `from_ns` to `to` goes to.
pub fn resolve_target(plan: &Plan, from_ns: &str, to: &str) -> Result<Ipv4Addr, String> {
    if let Ok(ip) = to.parse::<Ipv4Addr>() {
        return Ok(ip);
    }
    let name = to.split_once('@').map(|(n, _)| n).unwrap_or(to);
    match name {
        "host" => Ok(host_address(plan, from_ns)),
        "external" => Ok(UPLINK_EXTERNAL.ip()),
        c => {
            let cp = plan.container(c).ok_or_else(|| format!("unknown node {c}"))?;
            let ns = cp.netns.as_deref().ok_or_else(|| format!("container {c} is not running"))?;
            if ns == "host" {
                return Ok(host_address(plan, from_ns));
            }
            plan.container(ns)
                .and_then(|owner| owner.ip())
                .ok_or_else(|| format!("container {c} has no address (network {})", cp.mode))
        }
    }
}

/// Every address a node owns, for matching `source`.
pub fn node_addresses(plan: &Plan, node: &str) -> BTreeSet<Ipv4Addr> {
    let ns = sender_netns(plan, node).unwrap_or_else(|_| node.to_string());
    let mut set = BTreeSet::new();
    if let Some(n) = plan.node(&ns) {
        for l in &n.links {
            set.extend(l.addresses.iter().map(|a| a.ip()));
        }
    }
    set
}

fn wire_kind(p: ProbeSpec) -> WireKind {
    match p {
        ProbeSpec::Icmp => WireKind::Icmp,
        ProbeSpec::Tcp(port) => WireKind::Tcp(port),
        ProbeSpec::Udp(port) => WireKind::Udp(port),
    }
}

/// The verdict an outcome means, with words for the report.
pub fn verdict_of(o: &Outcome, probe: ProbeSpec, timeout: Duration, attempts: u16) -> (Option<Verdict>, String) {
    match o {
        Outcome::Answered(Answer::Reachable) => (
            Some(Verdict::Reachable),
            match probe {
                ProbeSpec::Icmp => "echo reply".into(),
                ProbeSpec::Tcp(_) => "SYN-ACK".into(),
                ProbeSpec::Udp(_) => "UDP answer".into(),
            },
        ),
        Outcome::Answered(Answer::Refused) => (
            Some(Verdict::Refused),
            match probe {
                ProbeSpec::Tcp(_) => "RST: reached, nothing listening".into(),
                _ => "ICMP port unreachable: reached, nothing listening".into(),
            },
        ),
        Outcome::Answered(Answer::Unreachable(code)) => {
            let what = match code {
                0 => "network unreachable",
                1 => "host unreachable",
                9 | 10 | 13 => "administratively prohibited",
                _ => "destination unreachable",
            };
            (Some(Verdict::Blocked), format!("ICMP {what} (code {code})"))
        }
        Outcome::Silence => {
            (Some(Verdict::Blocked), format!("no answer within {} ms ({attempts} attempts)", timeout.as_millis()))
        }
        Outcome::NoRoute => (Some(Verdict::Blocked), "no route to the target".into()),
        Outcome::Error(e) => (None, format!("probe failed: {e}")),
    }
}

/// Checks expectations against a running lab.
pub async fn check(lab: &RunningLab, responders: &Responders, expects: &[Expect]) -> Vec<ExpectOutcome> {
    let plan = lab.plan();
    let settings = &lab.scenario().spec.probe;
    let timeout = Duration::from_millis(*settings.timeout_ms.get_ref());
    let retries = settings.retries;
    let source = &lab.scenario().source;

    // Resolve first; what cannot be resolved is an error outcome.
    let mut jobs = Vec::new();
    let mut slots: Vec<Result<usize, String>> = Vec::new();
    for e in expects {
        let resolved = sender_netns(plan, e.from.get_ref())
            .and_then(|ns| resolve_target(plan, &ns, e.to.get_ref()).map(|dst| (ns, dst)));
        match resolved {
            Ok((netns, dst)) => {
                slots.push(Ok(jobs.len()));
                jobs.push(ProbeJob { netns, dst, kind: wire_kind(*e.probe.get_ref()) });
            }
            Err(msg) => slots.push(Err(msg)),
        }
    }
    let started = Instant::now();
    let results = run_jobs(lab, jobs.clone(), timeout, retries).await;

    let mut out = Vec::new();
    for (e, slot) in expects.iter().zip(slots) {
        let (line, col) = source.line_col(e.from.span().start);
        let probe = *e.probe.get_ref();
        let mut o = ExpectOutcome {
            name: e.name.clone().unwrap_or_else(|| format!("{} -> {} {}", e.from.get_ref(), e.to.get_ref(), probe)),
            location: format!("{}:{line}:{col}", source.path().display()),
            from: e.from.get_ref().clone(),
            to: e.to.get_ref().clone(),
            target: None,
            probe: probe.to_string(),
            expected: e.result.get_ref().to_string(),
            actual: None,
            source_expected: e.source.as_ref().map(|s| s.get_ref().clone()),
            source_seen: None,
            passed: false,
            detail: String::new(),
            elapsed_ms: 0,
            step: None,
        };
        let i = match slot {
            Ok(i) => i,
            Err(msg) => {
                o.detail = msg;
                out.push(o);
                continue;
            }
        };
        let (job, r): (&ProbeJob, &ProbeResult) = (&jobs[i], &results[i]);
        o.target = Some(job.dst);
        o.elapsed_ms = r.elapsed.as_millis() as u64;
        let (verdict, detail) = verdict_of(&r.outcome, probe, timeout, r.attempts);
        o.actual = verdict.map(|v| v.to_string());
        o.detail = detail;
        o.passed = verdict == Some(*e.result.get_ref());
        if !o.passed {
            match (verdict, *e.result.get_ref()) {
                (Some(Verdict::Blocked), _) if r.outcome == Outcome::Silence => {
                    o.detail = format!("{}; {}", o.detail, explain_block(lab, job, timeout).await);
                }
                (Some(Verdict::Refused), Verdict::Reachable) => {
                    o.detail = format!(
                        "{}; nothing listens on {} {}: give the target a `listen`",
                        o.detail,
                        e.to.get_ref(),
                        probe
                    );
                }
                _ => {}
            }
        }
        if let (Some(want), Some(Verdict::Reachable)) = (&e.source, verdict) {
            let seen = match probe {
                ProbeSpec::Tcp(port) => {
                    follow_up_tcp(lab, responders, &job.netns, SocketAddr::from((job.dst, port))).await
                }
                _ => wait_for_peer(responders, r.token, Duration::from_millis(500)).await,
            };
            match seen {
                Some(peer) => {
                    o.source_seen = Some(peer);
                    let want = want.get_ref();
                    let ok = match want.parse::<Ipv4Addr>() {
                        Ok(ip) => ip == peer,
                        Err(_) => node_addresses(plan, want).contains(&peer),
                    };
                    if !ok {
                        o.passed = false;
                        o.detail =
                            format!("{}; the responder saw the probe come from {peer}, not from {want}", o.detail);
                    }
                }
                None => {
                    o.passed = false;
                    o.detail =
                        format!("{}; no responder recorded where it came from (is a responder listening?)", o.detail);
                }
            }
        }
        out.push(o);
    }
    tracing::debug!("{} probes in {:?}", out.len(), started.elapsed());
    out
}

/// Runs probe jobs on a blocking thread (each source namespace gets its own).
pub async fn run_jobs(lab: &RunningLab, jobs: Vec<ProbeJob>, timeout: Duration, retries: u32) -> Vec<ProbeResult> {
    let files: HashMap<String, File> = lab
        .plan()
        .nodes
        .iter()
        .filter_map(|n| lab.netns_file(&n.name).and_then(|f| f.try_clone().ok()).map(|f| (n.name.clone(), f)))
        .collect();
    let n = jobs.len();
    let done = tokio::task::spawn_blocking(move || {
        let refs: HashMap<String, &File> = files.iter().map(|(k, v)| (k.clone(), v)).collect();
        engine::run(&jobs, &refs, timeout, retries)
    })
    .await;
    // One result per job, whatever happened to the worker.
    done.unwrap_or_else(|e| (0..n).map(|_| engine::failed(format!("probe worker: {e}"))).collect())
}

/// After a SYN got its SYN-ACK, a real connection carrying the token tells
/// the responder (directly, or behind the proxy) to record who connected.
async fn follow_up_tcp(lab: &RunningLab, responders: &Responders, netns: &str, to: SocketAddr) -> Option<Ipv4Addr> {
    use tokio::io::AsyncWriteExt;
    let file = lab.netns_file(netns)?;
    let sock = crate::apply::netns::run_in(file, tokio::net::TcpSocket::new_v4).ok()?;
    let mut stream = tokio::time::timeout(Duration::from_secs(2), sock.connect(to)).await.ok()?.ok()?;
    let (_, token) = engine::fresh_ids();
    stream.write_all(token_payload(token).as_bytes()).await.ok()?;
    let seen = wait_for_peer(responders, token, Duration::from_secs(2)).await;
    drop(stream);
    seen
}

/// Waits (bounded) for a responder to record `token`.
async fn wait_for_peer(responders: &Responders, token: u32, limit: Duration) -> Option<Ipv4Addr> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(seen) = responders.log.get(token) {
            return match seen.peer.ip() {
                std::net::IpAddr::V4(ip) => Some(ip),
                std::net::IpAddr::V6(_) => None,
            };
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Starts every `listen` of the scenario: containers (in the namespace they
/// live in) and the external node.
pub fn start_responders(lab: &RunningLab) -> crate::Result<Responders> {
    let mut r = Responders::default();
    sync_responders(lab, &mut r)?;
    Ok(r)
}

/// Starts the responders the lab's current state wants and lacks (after a
/// step, for containers that were started or rebuilt).
pub fn sync_responders(lab: &RunningLab, r: &mut Responders) -> crate::Result<()> {
    let spec = &lab.scenario().spec;
    let mut wanted: Vec<(String, crate::scenario::ListenSpec)> = Vec::new();
    let inline = spec.steps.iter().filter_map(|s| match s.container.as_ref().map(|c| c.get_ref()) {
        Some(crate::scenario::StepContainer::Inline(c)) => Some(&**c),
        _ => None,
    });
    for c in spec.containers.iter().chain(inline) {
        let Some(ns) = lab.plan().container(c.name()).and_then(|cp| cp.netns.clone()) else { continue };
        wanted.extend(c.listen.iter().map(|l| (ns.clone(), *l.get_ref())));
    }
    wanted.extend(spec.external.listen.iter().map(|l| ("external".to_string(), *l.get_ref())));
    for (ns, l) in wanted {
        if r.is_listening(&ns, l) {
            continue;
        }
        let file = lab.netns_file(&ns).ok_or_else(|| crate::Error::Environment(format!("no namespace for {ns}")))?;
        r.start(&ns, file, l).map_err(|e| crate::Error::apply(format!("{ns}: responder {l}"), e))?;
    }
    Ok(())
}

/// What checking a whole scenario found: every expectation's verdict,
/// steps included, and what each step did.
#[derive(Debug, Default)]
pub struct Checked {
    pub expectations: Vec<ExpectOutcome>,
    /// The steps carried out, in order; a step that failed is the last.
    pub steps: Vec<StepOutcome>,
    /// The step that could not be carried out or read back. The verdicts
    /// gathered before it are kept; later steps did not run.
    pub failure: Option<StepFailure>,
}

/// One `[[step]]` performed: where the lab then differs from the step's
/// plan, and how long performing and reading it back took.
#[derive(Debug, Clone)]
pub struct StepOutcome {
    /// `step N: action`.
    pub label: String,
    pub mismatches: Vec<crate::apply::Mismatch>,
    pub elapsed: Duration,
}

/// The error that stopped a step.
#[derive(Debug)]
pub struct StepFailure {
    /// `step N: action`, as in [`StepOutcome::label`].
    pub step: String,
    pub error: crate::Error,
}

/// Probes the top-level `[[expect]]`s, then performs each `[[step]]` on the
/// lab, checks the lab against the step's plan and probes its expectations.
/// A step that fails ends the walk, and everything found before it stays.
pub async fn check_scenario(lab: &mut RunningLab, responders: &mut Responders) -> Checked {
    let spec = lab.scenario().spec.clone();
    let mut out = Checked { expectations: check(lab, responders, &spec.expects).await, ..Default::default() };
    let steps = lab.plan().steps.clone();
    for (i, (step, plan)) in spec.steps.iter().zip(steps).enumerate() {
        let label = format!("step {}: {}", i + 1, plan.action);
        let started = Instant::now();
        let performed = perform_step(lab, responders, &plan.after).await;
        let (mismatches, failed) = match performed {
            Ok(m) => (m, None),
            Err(e) => (vec![], Some(e)),
        };
        out.steps.push(StepOutcome { label: label.clone(), mismatches, elapsed: started.elapsed() });
        if let Some(error) = failed {
            out.failure = Some(StepFailure { step: label, error });
            break;
        }
        for mut o in check(lab, responders, &step.expects).await {
            o.step = Some(label.clone());
            out.expectations.push(o);
        }
    }
    out
}

/// Brings the lab to a step's plan, restarts the responders it needs, and
/// reads it back.
async fn perform_step(
    lab: &mut RunningLab,
    responders: &mut Responders,
    next: &Plan,
) -> crate::Result<Vec<crate::apply::Mismatch>> {
    let gone = lab.apply_step(next).await?;
    responders.stop_nodes(&gone);
    sync_responders(lab, responders)?;
    lab.verify().await
}

/// Says why a probe that should have got through did not: the host rule
/// that dropped it (by replaying it alone and watching the rule counters),
/// forwarding switched off, or no way back.
pub async fn explain_block(lab: &RunningLab, job: &ProbeJob, timeout: Duration) -> String {
    let Some(host) = lab.netns_file("host") else { return String::new() };
    let unreadable = |e: crate::Error| format!("cannot tell which host rule dropped it: {e}");
    let before = match crate::apply::iptables::counters(host) {
        Ok(c) => c,
        Err(e) => return unreadable(e),
    };
    let _ = run_jobs(lab, vec![job.clone()], timeout, 0).await;
    let after = match crate::apply::iptables::counters(host) {
        Ok(c) => c,
        Err(e) => return unreadable(e),
    };
    let mut droppers: Vec<&String> = after
        .iter()
        .filter(|(rule, n)| {
            (rule.ends_with("-j DROP") || rule.contains("-j REJECT")) && **n > before.get(*rule).copied().unwrap_or(0)
        })
        .map(|(rule, _)| rule)
        .collect();
    droppers.sort();
    if !droppers.is_empty() {
        let list: Vec<&str> = droppers.iter().map(|s| s.as_str()).collect();
        return format!("dropped by the host's rule {}", list.join(" and "));
    }
    let crosses_host = job.netns != "host" && !node_addresses(lab.plan(), "host").contains(&job.dst);
    if crosses_host {
        let fwd = crate::apply::netns::read_sysctl(host, "net.ipv4.ip_forward").unwrap_or_default();
        if fwd == "0" {
            return "the host does not forward (net.ipv4.ip_forward = 0)".into();
        }
    }
    "no host rule dropped it: the packet or its answer found no route (no NAT, or no route back?)".into()
}
