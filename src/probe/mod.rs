//! Probes and expectations: what the built lab does on the wire.
//!
//! An `[[expect]]` names a sender, a target and a probe. [`check`] resolves
//! them against the plan (a container's namespace and address, the host's
//! address as the sender sees it), sends pnet-crafted packets from inside the
//! sender's namespace ([`engine`]), turns the answers into a verdict, and for
//! `source` asks the target's responder who the traffic seemed to come from.
//!
//! Why crafted packets: a socket API would fold a RST, an ICMP unreachable
//! and silence into "connection failed". A raw probe sees which came back,
//! so `refused` (the packet arrived, nothing listens) and `blocked` (a rule
//! or a missing route stopped it) are different verdicts, and a blocked
//! probe can be explained ([`explain_block`]: which rule's counter moved).
//! Responders ([`responder`]) are ordinary sockets in the target's
//! namespace that record the peer, so NAT is checked as the target sees it.
//! Everything here works on a [`Testbed`], so the same probes run against a
//! lab and against a real dockerd (`bridgelab diff`).
//!
//! [`RunningLab::check`] is the entry point for tests: responders up, every
//! expectation and step checked, a [`Checked`] back.

pub mod engine;
pub mod matrix;
pub mod packets;
pub mod responder;
pub mod share;

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use serde::Serialize;

use engine::{LinkVia, Outcome, ProbeJob, ProbeResult};
use packets::{token_payload, Answer, WireKind};
use responder::{Responders, Wanted};

use crate::apply::RunningLab;
use crate::plan::{Plan, UPLINK_EXTERNAL, UPLINK_HOST};
use crate::scenario::{Expect, IfaceAddr, ProbeSpec, Scenario, Verdict};

/// What probes and responders need of a built world: the scenario, a plan
/// that says which namespace each node lives in and which addresses it
/// has, and the namespace file of each node. A bridgelab lab is one; the
/// real Docker host of `bridgelab diff` is another, with a plan read back
/// from the daemon.
pub trait Testbed {
    fn scenario(&self) -> &Scenario;
    fn plan(&self) -> &Plan;
    /// The namespace file of a node, for joining it (`setns`).
    fn netns_file(&self, node: &str) -> Option<&File>;
}

impl Testbed for RunningLab {
    fn scenario(&self) -> &Scenario {
        RunningLab::scenario(self)
    }
    fn plan(&self) -> &Plan {
        RunningLab::plan(self)
    }
    fn netns_file(&self, node: &str) -> Option<&File> {
        RunningLab::netns_file(self, node)
    }
}

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
    /// `via`, as written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    /// The `flow` the expectation watches.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flow: Option<String>,
    pub expected: String,
    /// `None` when the probe could not be carried out.
    pub actual: Option<String>,
    pub source_expected: Option<String>,
    pub source_seen: Option<Ipv4Addr>,
    /// The nodes whose responders got it: for a broadcast, every one
    /// (the sender's own aside); for a flow, where its datagrams arrive.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub received_by: Vec<String>,
    pub passed: bool,
    /// What was seen, and for a failure, why.
    pub detail: String,
    pub elapsed_ms: u64,
    /// The `[[step]]` after which it was checked; `None` for the top level.
    pub step: Option<String>,
}

/// Where a node's traffic starts: its namespace and its addresses.
pub fn sender_netns(plan: &Plan, node: &str) -> Result<String, String> {
    match node {
        "host" | "external" => Ok(node.to_string()),
        m if plan.machine(m).is_some() => Ok(m.to_string()),
        c => match plan.container(c) {
            None => Err(format!("unknown node {c}")),
            Some(cp) => cp.netns.clone().ok_or_else(|| format!("container {c} is not running")),
        },
    }
}

/// The host's address as a sender in `from_ns` sees it: the bridge gateway
/// from a bridged container, the uplink address from anywhere else.
fn host_address(plan: &Plan, from_ns: &str) -> Ipv4Addr {
    if let Some(m) = plan.machine(from_ns) {
        // A guest on a host bridge sees the host at the bridge's address.
        let bridge = plan.node("host").and_then(|h| h.link(&m.attach));
        let on_bridge = bridge.and_then(|l| l.addresses.iter().find(|a| a.network().contains(m.address.ip())));
        return on_bridge.map(|a| a.ip()).unwrap_or(UPLINK_HOST.ip());
    }
    plan.netns_gateway(from_ns).unwrap_or(UPLINK_HOST.ip())
}

/// The address a probe from `from_ns` to `to` goes to. A container is
/// reached on the first of its networks (in the order it joined them)
/// that the sender is on too, or on its first network; `name@network`
/// picks the network.
pub fn resolve_target(plan: &Plan, from_ns: &str, to: &str) -> Result<Ipv4Addr, String> {
    if let Ok(ip) = to.parse::<Ipv4Addr>() {
        return Ok(ip);
    }
    let (name, network) = match to.split_once('@') {
        Some((n, net)) => (n, Some(net)),
        None => (to, None),
    };
    match name {
        "host" => Ok(host_address(plan, from_ns)),
        "external" => Ok(UPLINK_EXTERNAL.ip()),
        m if plan.machine(m).is_some() => Ok(plan.machine(m).expect("just found").address.ip()),
        c => {
            let cp = plan.container(c).ok_or_else(|| format!("unknown node {c}"))?;
            let ns = cp.netns.as_deref().ok_or_else(|| format!("container {c} is not running"))?;
            if ns == "host" {
                return Ok(host_address(plan, from_ns));
            }
            if let Some(net) = network {
                return cp
                    .endpoint_on(net)
                    .map(|e| e.address.ip())
                    .ok_or_else(|| format!("container {c} is not connected to network {net}"));
            }
            let shared = plan.netns_networks(from_ns);
            if let Some(e) = cp.endpoints.iter().find(|e| shared.contains(&e.network)).or(cp.endpoints.first()) {
                return Ok(e.address.ip());
            }
            plan.netns_address(ns).ok_or_else(|| format!("container {c} has no address (network {})", cp.mode))
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

/// The verdict a probe's result means, with words for the report that say
/// what was seen.
pub fn verdict_of(r: &ProbeResult, probe: ProbeSpec) -> (Option<Verdict>, String) {
    match &r.outcome {
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
            (Some(Verdict::Blocked), format!("ICMP {} (code {code})", packets::unreachable_name(*code)))
        }
        Outcome::Silence => {
            (Some(Verdict::Blocked), format!("no answer to {} attempts in {} ms", r.attempts, r.waited.as_millis()))
        }
        Outcome::NoRoute => (Some(Verdict::Blocked), "no route to the target".into()),
        Outcome::LocalDrop => (Some(Verdict::Blocked), "the sender's own firewall refused to send it (EPERM)".into()),
        Outcome::Error(e) => (None, format!("probe failed: {e}")),
    }
}

/// Whether `ip` is a broadcast address: the limited broadcast, or the
/// directed broadcast of a subnet one of the plan's nodes has an address on.
pub fn is_broadcast(plan: &Plan, ip: Ipv4Addr) -> bool {
    ip == Ipv4Addr::BROADCAST
        || plan.nodes.iter().flat_map(|n| n.links.iter()).flat_map(|l| l.addresses.iter()).any(|a| {
            let net = a.network();
            net.prefix() < 31 && net.broadcast() == ip
        })
}

/// How an expectation is checked: a probe job, a flow, or not at all.
enum Slot {
    Job(usize),
    Flow,
    Unresolved(String),
}

/// Checks expectations against a running lab.
pub async fn check<T: Testbed + ?Sized>(lab: &T, responders: &Responders, expects: &[Expect]) -> Vec<ExpectOutcome> {
    let plan = lab.plan();
    let settings = &lab.scenario().spec.probe;
    let timeout = Duration::from_millis(*settings.timeout_ms.get_ref());
    let retries = settings.retries;
    let source = &lab.scenario().source;

    // The host's links, read from its namespace, for `via`: the lab's
    // or the real daemon's, never the plan's word for them.
    let neighbours = if expects.iter().any(|e| e.via.is_some()) { Some(host_links(lab).await) } else { None };
    // Resolve first; what cannot be resolved is an error outcome.
    let mut jobs = Vec::new();
    let mut slots: Vec<Slot> = Vec::new();
    for e in expects {
        if e.flow.is_some() {
            slots.push(Slot::Flow);
            continue;
        }
        let resolved = sender_netns(plan, e.from().get_ref()).and_then(|ns| {
            let dst = resolve_target(plan, &ns, e.to.get_ref())?;
            let via = match (e.via(), &neighbours) {
                (Some((_, net)), Some(links)) => {
                    let wants_source = e.source.is_some() && matches!(e.probe(), ProbeSpec::Tcp(_));
                    Some(link_via(plan, links, e.from().get_ref(), &ns, net, wants_source)?)
                }
                _ => None,
            };
            Ok((ns, dst, via))
        });
        match resolved {
            Ok((netns, dst, via)) => {
                slots.push(Slot::Job(jobs.len()));
                let patient = e.wanted() != Some(Verdict::Blocked);
                jobs.push(ProbeJob { netns, dst, kind: wire_kind(e.probe()), patient, via });
            }
            Err(msg) => slots.push(Slot::Unresolved(msg)),
        }
    }
    let started = Instant::now();
    let fulls_before = neighbour_table_fulls();
    let results = run_jobs(lab, jobs.clone(), timeout, retries).await;
    let overflowed = match (fulls_before, neighbour_table_fulls()) {
        (Some(b), Some(a)) if a > b => Some(a - b),
        _ => None,
    };

    let mut out = Vec::new();
    for (e, slot) in expects.iter().zip(slots) {
        let (line, col) = source.line_col(e.from().span().start);
        let probe = e.probe();
        let via = e.via.as_ref().map(|v| format!(" via {}", v.get_ref())).unwrap_or_default();
        let default_name = match &e.flow {
            Some(f) => format!("flow {} -> {}", f.get_ref(), e.to.get_ref()),
            None => format!("{} -> {} {}{via}", e.from().get_ref(), e.to.get_ref(), probe),
        };
        let mut o = ExpectOutcome {
            name: e.name.clone().unwrap_or(default_name),
            location: format!("{}:{line}:{col}", source.path().display()),
            from: e.from().get_ref().clone(),
            to: e.to.get_ref().clone(),
            target: None,
            probe: probe.to_string(),
            via: e.via.as_ref().map(|v| v.get_ref().clone()),
            flow: e.flow.as_ref().map(|f| f.get_ref().clone()),
            expected: e.wanted().map_or_else(|| "unchecked".to_string(), |v| v.to_string()),
            actual: None,
            source_expected: e.source.as_ref().map(|s| s.get_ref().clone()),
            source_seen: None,
            received_by: vec![],
            passed: false,
            detail: String::new(),
            elapsed_ms: 0,
            step: None,
        };
        let i = match slot {
            Slot::Job(i) => i,
            Slot::Flow => {
                check_flow(lab, responders, e, timeout, retries, &mut o).await;
                out.push(o);
                continue;
            }
            Slot::Unresolved(msg) => {
                o.detail = msg;
                out.push(o);
                continue;
            }
        };
        let (job, r): (&ProbeJob, &ProbeResult) = (&jobs[i], &results[i]);
        o.target = Some(job.dst);
        o.elapsed_ms = r.elapsed.as_millis() as u64;
        let (mut verdict, detail) = verdict_of(r, probe);
        o.actual = verdict.map(|v| v.to_string());
        o.detail = detail;
        o.passed = e.met_by(verdict);
        if !o.passed {
            match (verdict, e.wanted()) {
                (Some(Verdict::Blocked), _) if r.outcome == Outcome::Silence => {
                    let why = explain_block(lab, job, timeout).await;
                    o.detail = match overflowed {
                        Some(n) => format!("{}; {}; {why}", o.detail, neighbour_overflow(n)),
                        None => format!("{}; {why}", o.detail),
                    };
                }
                (Some(Verdict::Refused), Some(Verdict::Reachable)) => {
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
        // A broadcast: which responders (other than the sender's own) got it.
        if matches!(probe, ProbeSpec::Udp(_)) && is_broadcast(plan, job.dst) {
            // Answers may come from several; give the last ones a moment to log.
            tokio::time::sleep(Duration::from_millis(20)).await;
            let got: Vec<responder::SeenPeer> =
                responders.log.all(r.token).into_iter().filter(|p| p.node != job.netns).collect();
            o.received_by = got.iter().map(|p| node_of_netns(plan, &p.node)).collect();
            o.detail = if got.is_empty() {
                // The sender's kernel loops a broadcast back to its own
                // sockets: an answer from its own responder reached nobody.
                if verdict == Some(Verdict::Reachable) {
                    verdict = Some(Verdict::Blocked);
                    o.actual = Some(Verdict::Blocked.to_string());
                    o.passed = e.met_by(Some(Verdict::Blocked));
                    format!(
                        "only the sender's own responder answered (its kernel loops a broadcast back); broadcast to {}: no other responder received it",
                        job.dst
                    )
                } else {
                    format!("{}; broadcast to {}: no responder received it", o.detail, job.dst)
                }
            } else {
                format!("{}; broadcast to {}: received by {}", o.detail, job.dst, o.received_by.join(", "))
            };
        }
        // `source`: who the responder saw; with `blocked`, that the probe
        // arrived and only its answer was lost.
        let arrived_check = matches!(verdict, Some(Verdict::Reachable))
            || (verdict == Some(Verdict::Blocked)
                && e.wanted() == Some(Verdict::Blocked)
                && matches!(probe, ProbeSpec::Udp(_)));
        if let (Some(want), true) = (&e.source, arrived_check) {
            let seen = match probe {
                // The engine completed the handshake at the link layer.
                ProbeSpec::Tcp(_) if job.via.is_some() => {
                    wait_for_peer(responders, r.token, Duration::from_secs(2)).await
                }
                ProbeSpec::Tcp(port) => {
                    follow_up_tcp(lab, responders, &job.netns, SocketAddr::from((job.dst, port))).await
                }
                _ => wait_for_peer(responders, r.token, Duration::from_millis(500)).await,
            };
            match seen {
                Some(peer) => {
                    o.source_seen = Some(peer);
                    let want = want.get_ref();
                    if !source_matches(plan, want, peer) {
                        o.passed = false;
                        o.detail =
                            format!("{}; the responder saw the probe come from {peer}, not from {want}", o.detail);
                    } else if verdict == Some(Verdict::Blocked) {
                        o.detail = format!(
                            "{}; the responder saw it arrive from {peer}: the answer was lost on the way back",
                            o.detail
                        );
                    }
                }
                None if verdict == Some(Verdict::Blocked) => {
                    o.passed = false;
                    o.detail = format!(
                        "{}; no responder saw the probe: it was lost on the way there, not on the way back",
                        o.detail
                    );
                }
                None => {
                    o.passed = false;
                    o.detail =
                        format!("{}; no responder recorded where it came from (is a responder listening?)", o.detail);
                    if job.via.is_some() && matches!(probe, ProbeSpec::Tcp(_)) {
                        // The sender's kernel sees the SYN-ACK too; with a route back it
                        // answers with a RST (no socket of its own), and the handshake dies.
                        o.detail = format!(
                            "{}; with via, the sender's own kernel resets a handshake whose answers it can route: check source with a udp probe",
                            o.detail
                        );
                    }
                }
            }
        }
        out.push(o);
    }
    tracing::debug!("{} probes in {:?}", out.len(), started.elapsed());
    out
}

/// Whether `peer` is what an expectation's `source` names: an address,
/// or any address of a node.
fn source_matches(plan: &Plan, want: &str, peer: Ipv4Addr) -> bool {
    match want.parse::<Ipv4Addr>() {
        Ok(ip) => ip == peer,
        Err(_) => node_addresses(plan, want).contains(&peer),
    }
}

/// The node a responder's namespace belongs to, for reports: the
/// container that made the namespace (a `container:` one shares it).
fn node_of_netns(plan: &Plan, netns: &str) -> String {
    match netns {
        "host" | "external" => netns.to_string(),
        ns => plan
            .containers
            .iter()
            .find(|c| c.netns.as_deref() == Some(ns) && c.name == ns)
            .or_else(|| plan.containers.iter().find(|c| c.netns.as_deref() == Some(ns)))
            .map(|c| c.name.clone())
            .unwrap_or_else(|| ns.to_string()),
    }
}

/// The namespace a flow expectation's `to` names (where its datagrams
/// should arrive).
fn arrival_netns(plan: &Plan, to: &str) -> Option<String> {
    sender_netns(plan, to).ok()
}

/// Checks an expectation on a running flow: watches the datagrams the
/// flow sends from now on, for as long as a probe would wait, and says
/// whether their echoes come back (`reachable`), an ICMP port unreachable
/// does (`refused`) or nothing (`blocked`); where they arrive, and from
/// which address the responder sees them.
async fn check_flow<T: Testbed + ?Sized>(
    lab: &T,
    responders: &Responders,
    e: &Expect,
    timeout: Duration,
    retries: u32,
    o: &mut ExpectOutcome,
) {
    use std::sync::atomic::Ordering;
    let name = e.flow.as_ref().map(|f| f.get_ref().as_str()).unwrap_or_default();
    let Some(flow) = responders.flow(name) else {
        o.detail = format!("flow {name} is not running");
        return;
    };
    if let Some(why) = &flow.stopped {
        o.detail = format!("flow {name} stopped: {why}");
        return;
    }
    o.target = match flow.dst.ip() {
        std::net::IpAddr::V4(ip) => Some(ip),
        std::net::IpAddr::V6(_) => None,
    };
    let want = e.wanted();
    // As long as a probe of this expectation would wait, and for at least
    // three of the flow's datagrams.
    let window = engine::Schedule::new(timeout, retries, want != Some(Verdict::Blocked)).total().max(flow.interval * 3);
    let started = Instant::now();
    let s0 = flow.state.sent.load(Ordering::SeqCst);
    let (echoed, refused) = loop {
        let echoed = flow.state.echoed.load(Ordering::SeqCst) > s0;
        let refused = flow.state.refused.load(Ordering::SeqCst) > s0;
        let early = match want {
            Some(Verdict::Reachable) => echoed,
            Some(Verdict::Refused) => refused,
            Some(Verdict::Blocked) => false,
            None => echoed || refused,
        };
        if early || started.elapsed() >= window {
            break (echoed, refused);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    o.elapsed_ms = started.elapsed().as_millis() as u64;
    let sent = flow.state.sent.load(Ordering::SeqCst) - s0;
    let (verdict, what) = if echoed {
        (Verdict::Reachable, "their echoes came back")
    } else if refused {
        (Verdict::Refused, "ICMP port unreachable came back: reached, nothing listening")
    } else {
        (Verdict::Blocked, "no answer came back")
    };
    o.actual = Some(verdict.to_string());
    o.passed = e.met_by(Some(verdict));
    o.detail = format!(
        "flow {name} ({}:{} -> {}): {sent} datagrams in {} ms, {what}",
        o.from, flow.src_port, flow.dst, o.elapsed_ms
    );
    // Where the datagrams sent since then arrived.
    let arrived = responders.log.flow_since(flow.token, s0);
    let plan = lab.plan();
    let Some((_, last)) = arrived.last() else {
        o.detail = format!("{}; no responder got any of them", o.detail);
        if e.source.is_some() || verdict == Verdict::Reachable {
            o.passed = false;
        }
        return;
    };
    let at = node_of_netns(plan, &last.node);
    o.received_by = vec![at.clone()];
    let peer = match last.peer.ip() {
        std::net::IpAddr::V4(ip) => ip,
        std::net::IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
    };
    o.source_seen = Some(peer);
    o.detail = format!("{}; they arrive at {at}'s responder from {peer}", o.detail);
    if arrival_netns(plan, e.to.get_ref()).as_deref() != Some(last.node.as_str()) {
        o.passed = false;
        o.detail = format!("{}, not at {}", o.detail, e.to.get_ref());
    }
    if let Some(want) = &e.source {
        if !source_matches(plan, want.get_ref(), peer) {
            o.passed = false;
            o.detail = format!("{}, not from {}", o.detail, want.get_ref());
        }
    }
}

/// Starts the sender of a `flow` step, from the node and to the target it
/// names as the lab is now.
pub fn start_flow<T: Testbed + ?Sized>(
    lab: &T,
    r: &mut Responders,
    step: &crate::scenario::Step,
) -> crate::error::Result<()> {
    let (Some(name), Some(from), Some(to), Some(probe)) = (&step.name, &step.from, &step.to, &step.probe) else {
        return Ok(());
    };
    let (name, from) = (name.get_ref(), from.get_ref());
    let ProbeSpec::Udp(port) = *probe.get_ref() else { return Ok(()) };
    let plan = lab.plan();
    let netns = sender_netns(plan, from).map_err(|e| crate::error::Error::Environment(format!("flow {name}: {e}")))?;
    let dst = resolve_target(plan, &netns, to.get_ref())
        .map_err(|e| crate::error::Error::Environment(format!("flow {name}: {e}")))?;
    let file = lab
        .netns_file(&netns)
        .ok_or_else(|| crate::error::Error::Environment(format!("flow {name}: no namespace for {netns}")))?;
    let interval = Duration::from_millis(
        step.interval_ms.as_ref().map(|i| *i.get_ref()).unwrap_or(crate::scenario::DEFAULT_FLOW_INTERVAL_MS),
    );
    r.start_flow(name, from, &netns, file, SocketAddr::from((dst, port)), interval)
        .map_err(|e| crate::error::Error::apply(format!("flow {name}: socket in {netns}"), e))
}

/// A link of the host: its name, MAC and IPv4 addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostLink {
    pub name: String,
    pub mac: [u8; 6],
    pub addresses: Vec<IfaceAddr>,
}

/// The host's links, read through rtnetlink inside its namespace.
pub async fn host_links<T: Testbed + ?Sized>(lab: &T) -> Result<Vec<HostLink>, String> {
    let file = lab.netns_file("host").ok_or("no host namespace")?;
    let (nl, task) = crate::apply::Netlink::open(file).map_err(|e| format!("netlink in host: {e}"))?;
    let read = async {
        let links = nl.links().await?;
        let addrs = nl.addresses().await?;
        Ok::<_, rtnetlink::Error>((links, addrs))
    }
    .await;
    task.abort();
    let (links, addrs) = read.map_err(|e| format!("reading the host's links: {e}"))?;
    Ok(links
        .iter()
        .map(crate::apply::LinkState::from_message)
        .filter_map(|l| {
            let addresses = addrs
                .get(&l.index)
                .into_iter()
                .flatten()
                .filter_map(|(ip, p)| ipnetwork::Ipv4Network::new(*ip, *p).ok().map(IfaceAddr))
                .collect();
            Some(HostLink { name: l.name, mac: l.mac?, addresses })
        })
        .collect())
}

/// Where a `via` probe leaves and whom it is for: the sender's interface
/// and address on the link it shares with the host (the uplink from
/// `external`, the bridge of the container's first network or of `net`),
/// and the MAC of the host's link on that subnet.
pub fn link_via(
    plan: &Plan,
    host: &Result<Vec<HostLink>, String>,
    from: &str,
    ns: &str,
    net: Option<&str>,
    follow_up: bool,
) -> Result<LinkVia, String> {
    let (iface, addr) = if from == "external" {
        let node = plan.node("external").ok_or("no external node")?;
        let l = node
            .links
            .iter()
            .find(|l| l.kind != crate::plan::LinkKind::Loopback && !l.addresses.is_empty())
            .ok_or("external has no link to the host")?;
        (l.name.clone(), l.addresses[0])
    } else {
        // A `container:` container sends from the namespace, and over the
        // endpoints, of the container that made it.
        let owner = plan
            .container(ns)
            .filter(|c| !c.endpoints.is_empty())
            .or_else(|| plan.container(from))
            .ok_or_else(|| format!("unknown node {from}"))?;
        let e = match net {
            None => owner.endpoints.first(),
            Some(n) => owner.endpoint_on(n),
        }
        .ok_or_else(|| match net {
            None => format!("via: container {from} shares no bridge with the host now"),
            Some(n) => format!("via: container {from} is not connected to network {n} now"),
        })?;
        (e.iface.clone(), e.address)
    };
    let links = host.as_ref().map_err(|e| format!("via: {e}"))?;
    let subnet = addr.network();
    let (link, neighbour) = links
        .iter()
        .find_map(|l| l.addresses.iter().find(|a| subnet.contains(a.ip())).map(|a| (l, a.ip())))
        .ok_or_else(|| format!("via: no link of the host has an address on {subnet}"))?;
    Ok(LinkVia { iface, src: addr.ip(), mac: link.mac, neighbour, follow_up })
}

/// Runs probe jobs on a blocking thread (each source namespace gets its own).
pub async fn run_jobs<T: Testbed + ?Sized>(
    lab: &T,
    jobs: Vec<ProbeJob>,
    timeout: Duration,
    retries: u32,
) -> Vec<ProbeResult> {
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
async fn follow_up_tcp<T: Testbed + ?Sized>(
    lab: &T,
    responders: &Responders,
    netns: &str,
    to: SocketAddr,
) -> Option<Ipv4Addr> {
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

/// Starts every `listen` of the scenario: running containers (in the
/// namespace they live in) and the external node.
pub fn start_responders<T: Testbed + ?Sized>(lab: &T) -> crate::error::Result<Responders> {
    let mut r = Responders::default();
    start_all(lab, &mut r, wanted_responders(lab))?;
    Ok(r)
}

/// The responders the lab's current state wants: one per `listen` of each
/// running container and of `external`. Where containers share a
/// namespace and a listen spec, the first one in the scenario owns it.
pub fn wanted_responders<T: Testbed + ?Sized>(lab: &T) -> Vec<Wanted> {
    let spec = &lab.scenario().spec;
    let mut wanted: Vec<Wanted> = Vec::new();
    let inline = spec.steps.iter().filter_map(|s| match s.container.as_ref().map(|c| c.get_ref()) {
        Some(crate::scenario::StepContainer::Inline(c)) => Some(&**c),
        _ => None,
    });
    let listens =
        spec.containers
            .iter()
            .chain(inline)
            .filter_map(|c| {
                // A stopped or removed container has no namespace in the plan.
                let ns = lab.plan().container(c.name()).and_then(|cp| cp.netns.clone())?;
                Some(c.listen.iter().map(move |l| (c.name().to_string(), ns.clone(), *l.get_ref())))
            })
            .flatten()
            .chain(spec.external.listen.iter().map(|l| ("external".to_string(), "external".to_string(), *l.get_ref())))
            .chain(spec.machines.iter().flat_map(|m| {
                m.listen.iter().map(move |l| (m.name().to_string(), m.name().to_string(), *l.get_ref()))
            }));
    for (owner, netns, spec) in listens {
        if !wanted.iter().any(|w| w.netns == netns && w.spec == spec) {
            wanted.push(Wanted { owner, netns, spec });
        }
    }
    wanted
}

fn start_all<T: Testbed + ?Sized>(lab: &T, r: &mut Responders, todo: Vec<Wanted>) -> crate::error::Result<()> {
    for w in todo {
        let ns = &w.netns;
        let file =
            lab.netns_file(ns).ok_or_else(|| crate::error::Error::Environment(format!("no namespace for {ns}")))?;
        r.start(&w.owner, ns, file, w.spec)
            .map_err(|e| crate::error::Error::apply(format!("{}: responder {}", w.owner, w.spec), e))?;
    }
    Ok(())
}

/// Brings the responders to the lab's current state (after a step): those
/// of containers that stopped or were removed stop, those of containers
/// that were started, run or rebuilt start.
pub async fn sync_responders<T: Testbed + ?Sized>(lab: &T, r: &mut Responders) -> crate::error::Result<()> {
    let wanted = wanted_responders(lab);
    let current = |node: &str| lab.netns_file(node).and_then(responder::ns_id);
    r.stop_orphan_flows(current, "its container stopped, restarted or was removed");
    let todo = r.retain_wanted(&wanted, current).await;
    start_all(lab, r, todo)
}

impl RunningLab {
    /// Checks the scenario on this lab: starts its responders, probes the
    /// top-level `[[expect]]`s, then performs each `[[step]]`, reads the
    /// lab back against that step's plan and probes its expectations (see
    /// [`check_scenario`]). The responders stop when this returns; the lab
    /// stays as the last step left it.
    ///
    /// The error is one of starting the responders; a step that could not
    /// be carried out is [`Checked::failure`], with the verdicts before it.
    ///
    /// ```no_run
    /// # async fn demo() -> bridgelab::Result<()> {
    /// let mut running = bridgelab::Lab::load("scenarios/icc-off.toml")?.up().await?;
    /// let checked = running.check().await?;
    /// // `{checked}` lists every verdict, and why a failed one failed.
    /// assert!(checked.passed(), "{checked}");
    /// running.down()?;
    /// # Ok(()) }
    /// ```
    pub async fn check(&mut self) -> crate::error::Result<Checked> {
        let mut responders = start_responders(self)?;
        Ok(check_scenario(self, &mut responders).await)
    }
}

/// What checking a whole scenario found: every expectation's verdict,
/// steps included, and what each step did. Its `Display` is the report
/// `bridgelab run` prints for it (without colour).
#[derive(Debug, Default)]
pub struct Checked {
    pub expectations: Vec<ExpectOutcome>,
    /// The steps carried out, in order; a step that failed is the last.
    pub steps: Vec<StepOutcome>,
    /// The step that could not be carried out or read back. The verdicts
    /// gathered before it are kept; later steps did not run.
    pub failure: Option<StepFailure>,
}

impl Checked {
    /// Whether everything held: every expectation met, every step carried
    /// out and read back as planned.
    pub fn passed(&self) -> bool {
        self.failure.is_none()
            && self.steps.iter().all(|s| s.mismatches.is_empty())
            && self.expectations.iter().all(|e| e.passed)
    }

    /// The expectations that were not met.
    pub fn failed(&self) -> impl Iterator<Item = &ExpectOutcome> {
        self.expectations.iter().filter(|e| !e.passed)
    }
}

impl ExpectOutcome {
    /// The verdict seen; `None` when the probe could not be carried out.
    pub fn verdict(&self) -> Option<Verdict> {
        self.actual.as_deref().and_then(|a| a.parse().ok())
    }
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
    pub error: crate::error::Error,
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
        if *step.action.get_ref() == crate::scenario::StepAction::Flow {
            if let Err(error) = start_flow(lab, responders, step) {
                out.failure = Some(StepFailure { step: label, error });
                break;
            }
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
) -> crate::error::Result<Vec<crate::apply::Mismatch>> {
    let gone = lab.apply_step(next).await?;
    responders.stop_nodes(&gone);
    sync_responders(lab, responders).await?;
    lab.verify().await
}

/// How often the kernel's IPv4 neighbour (ARP) table has been full since
/// boot (`table_fulls` of `/proc/net/stat/arp_cache`, one line per CPU).
/// The table is one for the whole machine: every namespace's entries count
/// against the limits, which only the root namespace can set.
fn neighbour_table_fulls() -> Option<u64> {
    parse_table_fulls(&std::fs::read_to_string("/proc/net/stat/arp_cache").ok()?)
}

fn parse_table_fulls(stat: &str) -> Option<u64> {
    let mut lines = stat.lines();
    let col = lines.next()?.split_whitespace().position(|h| h == "table_fulls")?;
    lines.map(|l| u64::from_str_radix(l.split_whitespace().nth(col)?, 16).ok()).sum()
}

/// Why probes met silence when the neighbour table overflowed meanwhile:
/// a namespace that cannot make an ARP entry drops what it would send
/// there. Each pair of containers that talk needs two entries (one in
/// each), so a lab with a few hundred pairs at once reaches the default
/// limit of 1,024, as a Docker host with as many busy containers does.
fn neighbour_overflow(times: u64) -> String {
    let limit = std::fs::read_to_string("/proc/sys/net/ipv4/neigh/default/gc_thresh3")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into());
    format!(
        "the kernel's neighbour (ARP) table was full {times} times while the probes ran: it is one for \
         every namespace of the machine and holds at most net.ipv4.neigh.default.gc_thresh3 = {limit} \
         entries, two per pair of containers that talk (a root-namespace sysctl, which bridgelab leaves \
         alone: fewer probes at once, or a larger limit set by the machine's owner, avoid it)"
    )
}

/// Says why a probe that should have got through met silence, from what a
/// replay of it alone shows: the host rule whose drop counter moved,
/// forwarding switched off, an answer this time, or nothing at all. Only
/// what was seen is said: silence is never called "no route".
pub async fn explain_block<T: Testbed + ?Sized>(lab: &T, job: &ProbeJob, timeout: Duration) -> String {
    let Some(host) = lab.netns_file("host") else { return String::new() };
    let probe = match job.kind {
        WireKind::Icmp => ProbeSpec::Icmp,
        WireKind::Tcp(p) => ProbeSpec::Tcp(p),
        WireKind::Udp(p) => ProbeSpec::Udp(p),
    };
    let unreadable = |e: crate::error::Error| format!("cannot tell which host rule dropped it: {e}");
    let before = match crate::apply::iptables::counters(host) {
        Ok(c) => c,
        Err(e) => return unreadable(e),
    };
    let replay = ProbeJob { patient: false, ..job.clone() };
    let replayed = run_jobs(lab, vec![replay], timeout, 0).await.pop();
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
    match replayed.as_ref().map(|r| (r, verdict_of(r, probe))) {
        Some((r, (Some(v), what))) if r.outcome != Outcome::Silence => {
            format!("sent again alone, it got {v} ({what}): the silence did not repeat")
        }
        _ => "sent again alone, it met silence again and no host rule counted a drop".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[test]
    fn table_fulls_are_summed_over_the_cpus() {
        let stat = "entries  allocs   destroys hash_grows lookups  hits     res_failed rcv_probes_mcast \
                    rcv_probes_ucast periodic_gc_runs forced_gc_runs unresolved_discards table_fulls\n\
                    0000000b 00026bc1 000267b7 00000003   0038f5a4 00025330 00000109   00000000         \
                    00000000         00000c11         00001879       00000000            0000181d\n\
                    0000000b 00024a90 00024e8f 00000005   00338033 000270f7 00000087   00000000         \
                    00000000         00000000         000016ea       00000000            00000010\n";
        assert_eq!(parse_table_fulls(stat), Some(0x181d + 0x10));
        assert_eq!(parse_table_fulls("entries allocs\n1 2\n"), None, "no such column");
        assert_eq!(parse_table_fulls("table_fulls\nzz\n"), None, "not hex");
    }

    fn outcome(passed: bool, actual: Option<Verdict>, step: Option<&str>) -> ExpectOutcome {
        ExpectOutcome {
            name: "client -> web tcp:80".into(),
            location: "s.toml:9:1".into(),
            from: "client".into(),
            to: "web".into(),
            target: Some(Ipv4Addr::new(172, 17, 0, 3)),
            probe: "tcp:80".into(),
            via: None,
            flow: None,
            expected: "blocked".into(),
            actual: actual.map(|v| v.to_string()),
            source_expected: None,
            source_seen: None,
            received_by: vec![],
            passed,
            detail: "SYN-ACK".into(),
            elapsed_ms: 1,
            step: step.map(Into::into),
        }
    }

    /// What a test asserts on: `passed` fails for a verdict, a step that
    /// differs from its plan or a step that failed; `Display` says which.
    #[test]
    fn checked_passes_only_when_everything_held() {
        let ok = Checked { expectations: vec![outcome(true, Some(Verdict::Blocked), None)], ..Default::default() };
        assert!(ok.passed());
        assert_eq!(ok.expectations[0].verdict(), Some(Verdict::Blocked));
        assert_eq!(ok.failed().count(), 0);

        let label = "step 1: stop web";
        let bad = Checked {
            expectations: vec![
                outcome(false, Some(Verdict::Reachable), None),
                outcome(true, Some(Verdict::Blocked), Some(label)),
            ],
            steps: vec![StepOutcome { label: label.into(), mismatches: vec![], elapsed: Duration::ZERO }],
            failure: None,
        };
        assert!(!bad.passed());
        assert_eq!(bad.failed().count(), 1);
        assert_eq!(
            bad.to_string(),
            "FAIL: 1/2 expectations met\n\
             \x20 FAIL client -> web (172.17.0.3) tcp:80: expected blocked, got reachable\n\
             \x20        s.toml:9:1 SYN-ACK\n\
             \x20 after step 1: stop web:\n\
             \x20 ok   client -> web (172.17.0.3) tcp:80: expected blocked, got blocked\n"
        );

        let failed_step = Checked {
            failure: Some(StepFailure { step: label.into(), error: crate::error::Error::Environment("no".into()) }),
            steps: bad.steps.clone(),
            ..Default::default()
        };
        assert!(!failed_step.passed());
        assert!(failed_step.to_string().contains("after step 1: stop web:\n      failed: no\n"), "{failed_step}");
        let none = outcome(false, None, None);
        assert_eq!(none.verdict(), None);
    }

    fn result(outcome: Outcome, attempts: u16, waited: u64) -> ProbeResult {
        ProbeResult {
            outcome,
            src: None,
            token: 1,
            attempts,
            waited: Duration::from_millis(waited),
            elapsed: Duration::ZERO,
        }
    }

    #[rstest]
    #[case::rst(ProbeSpec::Tcp(80), Answer::Refused, Verdict::Refused, "RST: reached, nothing listening")]
    #[case::reject_to_a_syn(
        ProbeSpec::Tcp(80),
        Answer::Unreachable(3),
        Verdict::Blocked,
        "ICMP port unreachable (code 3)"
    )]
    #[case::admin(
        ProbeSpec::Tcp(80),
        Answer::Unreachable(13),
        Verdict::Blocked,
        "ICMP communication administratively prohibited (code 13)"
    )]
    #[case::udp_port(
        ProbeSpec::Udp(53),
        Answer::Refused,
        Verdict::Refused,
        "ICMP port unreachable: reached, nothing listening"
    )]
    #[case::host_prohibited(
        ProbeSpec::Icmp,
        Answer::Unreachable(10),
        Verdict::Blocked,
        "ICMP host administratively prohibited (code 10)"
    )]
    fn answers_are_named_for_what_came_back(
        #[case] probe: ProbeSpec,
        #[case] answer: Answer,
        #[case] verdict: Verdict,
        #[case] detail: &str,
    ) {
        assert_eq!(verdict_of(&result(Outcome::Answered(answer), 1, 0), probe), (Some(verdict), detail.to_string()));
    }

    #[test]
    fn only_a_failed_route_lookup_is_called_no_route() {
        let silence = verdict_of(&result(Outcome::Silence, 5, 2000), ProbeSpec::Tcp(80));
        assert_eq!(silence, (Some(Verdict::Blocked), "no answer to 5 attempts in 2000 ms".to_string()));
        let local = verdict_of(&result(Outcome::LocalDrop, 1, 0), ProbeSpec::Icmp);
        assert_eq!(local.0, Some(Verdict::Blocked));
        for (_, detail) in [silence, local] {
            assert!(!detail.contains("route"), "{detail}");
        }
        let none = verdict_of(&result(Outcome::NoRoute, 0, 0), ProbeSpec::Icmp);
        assert_eq!(none, (Some(Verdict::Blocked), "no route to the target".to_string()));
    }

    #[test]
    fn broadcasts_are_the_limited_one_and_the_directed_ones_of_the_labs_subnets() {
        let text = "[daemon]\nfirewall = \"docker20\"\n[[network]]\nname = \"n\"\nsubnet = \"172.19.0.0/16\"\n[[container]]\nname = \"c1\"\nnetwork = \"n\"\n";
        let s = crate::scenario::Scenario::parse("t.toml".into(), text.into()).unwrap();
        let plan = &crate::plan::plan(&s).unwrap();
        for (ip, want) in [
            ("255.255.255.255", true),
            ("172.19.255.255", true),
            ("198.51.100.255", true),
            ("172.19.0.2", false),
            ("172.18.255.255", false),
            ("127.255.255.255", true),
        ] {
            assert_eq!(is_broadcast(plan, ip.parse().unwrap()), want, "{ip}");
        }
    }
}
