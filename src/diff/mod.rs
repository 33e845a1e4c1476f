//! `bridgelab diff`: the same scenario on a real Docker daemon and in
//! bridgelab's lab, compared.
//!
//! A second target for a scenario, beside the lab:
//!
//! ```text
//! scenario ──► translate ──► dockerd (real, in a host namespace bridgelab built)
//!     │                          │ read back (compare), probed (probe)
//!     └──► plan ──► apply ───────┤
//!                                ▼
//!                     unified diff, phase by phase
//! ```
//!
//! * [`dockerd`] runs a real dockerd (and its containerd) inside a host
//!   namespace built by bridgelab's own apply code from the scenario's
//!   `[host]` and `[external]`, so both worlds start from the same host.
//! * [`translate`] turns the scenario into dockerd flags and docker
//!   commands.
//! * [`compare`] reads both worlds back into one normalized shape and diffs
//!   them.
//! * The expectations run on both sides with bridgelab's probe engine and
//!   responders ([`crate::probe`]), through [`Testbed`]: the real side's
//!   plan is read back from the daemon, and its containers' namespaces are
//!   reached through their pids.
//!
//! The comparison is made after the setup and after every step ("phases").

pub mod compare;
pub mod dockerd;
pub mod translate;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::File;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use compare::{Inspect, NetworkInspect, Readback, Whereabouts, World};
use dockerd::{Daemon, Dockers};
use translate::{Action, DockerCommand};

use crate::apply::{self, RunningLab};
use crate::error::{Error, Result};
use crate::plan::{ContainerPlan, LinkKind, LinkPlan, NodePlan, Plan, RoutePlan};
use crate::probe::responder::Responders;
use crate::probe::{ExpectOutcome, Testbed};
use crate::scenario::{Expect, IfaceAddr, MacAddr, NetworkMode, Scenario, Sp, Step};
use crate::Lab;

/// The real Docker host as the probe engine sees it: the scenario, a plan
/// read back from the daemon (who lives in which namespace, with which
/// addresses), and the namespace files (the host's from bridgelab, each
/// container's from `/proc/<pid>/ns/net`).
pub struct RealView<'a> {
    scenario: &'a Scenario,
    plan: Plan,
    host: &'a RunningLab,
    files: HashMap<String, File>,
}

impl Testbed for RealView<'_> {
    fn scenario(&self) -> &Scenario {
        self.scenario
    }
    fn plan(&self) -> &Plan {
        &self.plan
    }
    fn netns_file(&self, node: &str) -> Option<&File> {
        match node {
            "host" | "external" => self.host.netns_file(node),
            m if self.plan.machine(m).is_some() => self.host.netns_file(m),
            c => self.files.get(c),
        }
    }
}

/// The `via` of a namespace's default route.
fn default_gateway(routes: &[String]) -> Option<(Ipv4Addr, String)> {
    routes.iter().find_map(|r| {
        let w: Vec<&str> = r.split_whitespace().collect();
        match w.as_slice() {
            ["default", "via", gw, "dev", dev, ..] => Some((gw.parse().ok()?, dev.to_string())),
            _ => None,
        }
    })
}

fn link_plan(name: &str, mac: Option<[u8; 6]>, mtu: Option<u32>, addresses: Vec<(Ipv4Addr, u8)>) -> LinkPlan {
    LinkPlan {
        name: name.to_string(),
        kind: if name == "lo" { LinkKind::Loopback } else { LinkKind::Bridge },
        mac: mac.map(MacAddr),
        mtu,
        mtu_expected: mtu.unwrap_or(0),
        master: None,
        addresses: addresses
            .into_iter()
            .filter_map(|(a, p)| ipnetwork::Ipv4Network::new(a, p).ok().map(IfaceAddr))
            .collect(),
        up: true,
        hairpin: false,
    }
}

fn node_plan(name: &str, s: &compare::NsState) -> NodePlan {
    let links = s.links.iter().map(|l| link_plan(&l.name, l.mac, l.mtu, s.addresses_of(l))).collect();
    let routes = default_gateway(&s.routes)
        .map(|(gw, dev)| RoutePlan {
            dst: None,
            via: Some(gw),
            dev,
            connected: None,
            scope_link: false,
            linkdown: false,
        })
        .into_iter()
        .collect();
    NodePlan { name: name.to_string(), links, routes, sysctls: vec![] }
}

/// The plan of the real host, as read back: enough for the probe engine
/// to resolve names (`netns`, addresses, gateways) as it does in a lab.
fn real_plan(scenario: &Scenario, pre: &Plan, r: &Readback) -> Plan {
    let mode_of = |name: &str| {
        let inline = scenario.spec.steps.iter().filter_map(|s| match s.container.as_ref().map(|c| c.get_ref()) {
            Some(crate::scenario::StepContainer::Inline(c)) => Some(&**c),
            _ => None,
        });
        scenario
            .spec
            .containers
            .iter()
            .chain(inline)
            .find(|c| c.name() == name)
            .map(|c| c.networks()[0].clone())
            .unwrap_or(NetworkMode::Bridge)
    };
    // External, the uplink's segment and the machines are bridgelab's on both sides.
    let mut nodes = vec![node_plan("host", &r.host)];
    nodes.extend(pre.nodes.iter().filter(|n| n.name != "host").cloned());
    let mut containers = Vec::new();
    for (name, w) in &r.inventory.containers {
        let netns = match w {
            Whereabouts::NotRunning => None,
            Whereabouts::Host => Some("host".to_string()),
            Whereabouts::Shares(other) => Some(other.clone()),
            Whereabouts::Own => Some(name.clone()),
        };
        let mut endpoints = Vec::new();
        if let Some((s, _)) = r.namespaces.get(name) {
            nodes.push(node_plan(name, s));
            // Docker's networks of the container, in the order of the
            // interfaces that hold their addresses (the order it joined).
            for (network, ip) in r.inventory.networks.get(name).into_iter().flatten() {
                let Some((l, prefix)) = s
                    .links
                    .iter()
                    .find_map(|l| s.addresses_of(l).into_iter().find(|(a, _)| a == ip).map(|(_, p)| (l, p)))
                else {
                    continue;
                };
                let Ok(address) = ipnetwork::Ipv4Network::new(*ip, prefix) else { continue };
                endpoints.push(crate::plan::Endpoint {
                    network: network.clone(),
                    iface: l.name.clone(),
                    bridge: String::new(),
                    host_veth: String::new(),
                    address: IfaceAddr(address),
                    gateway: None,
                    mac: MacAddr(l.mac.unwrap_or_default()),
                    mtu: l.mtu.unwrap_or_default(),
                });
            }
            endpoints.sort_by_key(|e| e.iface.trim_start_matches("eth").parse::<u32>().unwrap_or(u32::MAX));
        }
        containers.push(ContainerPlan {
            name: name.clone(),
            mode: mode_of(name),
            running: *w != Whereabouts::NotRunning,
            netns,
            endpoints,
        });
    }
    Plan {
        scenario: scenario.name.clone(),
        firewall: scenario.spec.daemon.firewall(),
        bridge: None,
        networks: vec![],
        containers,
        nodes,
        iptables: Default::default(),
        port_mappings: vec![],
        bindings: vec![],
        steps: vec![],
        conntrack_cleared: vec![],
        conntrack_cleared_udp: vec![],
        machines: pre.machines.clone(),
    }
}

/// The host and external nodes as they are before any daemon starts: the
/// scenario with no daemon (`-b none`), no networks and no containers,
/// planned by bridgelab's own planner (uplink, `[host]` routes and
/// bridges, `[external]` routes).
pub fn pre_daemon(scenario: &Scenario) -> Result<(Scenario, Plan)> {
    let mut s = scenario.clone();
    s.spec.daemon = crate::scenario::Daemon {
        bridge: Some(Sp::new(0..0, "none".to_string())),
        ip_forward: Some(Sp::new(0..0, false)),
        ..Default::default()
    };
    s.spec.networks.clear();
    s.spec.containers.clear();
    s.spec.steps.clear();
    s.spec.expects.clear();
    let plan = crate::plan::plan(&s)?;
    Ok((s, plan))
}

/// `[host]` keys that say what the host was like before the daemon
/// started (`forwarding`, `sysctls`, `rules`). They are read from the
/// file's own text, so that they apply whichever way [`Scenario`] holds
/// them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostBefore {
    pub forwarding: bool,
    pub sysctls: Vec<(String, String)>,
    pub rules: Option<String>,
}

pub fn host_before(text: &str) -> HostBefore {
    let mut h = HostBefore::default();
    let Ok(doc) = text.parse::<toml::Table>() else { return h };
    let Some(host) = doc.get("host").and_then(|v| v.as_table()) else { return h };
    h.forwarding = host.get("forwarding").and_then(|v| v.as_bool()).unwrap_or(false);
    if let Some(t) = host.get("sysctls").and_then(|v| v.as_table()) {
        for (k, v) in t {
            let v = match v {
                toml::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            h.sysctls.push((k.clone(), v));
        }
    }
    h.rules = host.get("rules").and_then(|v| v.as_str()).map(String::from);
    h
}

/// How long each part of a file's diff took.
#[derive(Debug, Clone, Default)]
pub struct Timing {
    pub host: Duration,
    pub daemon_start: Duration,
    pub image: Duration,
    pub commands: Duration,
    pub command_count: usize,
    pub readback: Duration,
    pub probes: Duration,
    pub lab: Duration,
    pub lab_probes: Duration,
    pub teardown: Duration,
    pub total: Duration,
}

impl Timing {
    pub fn line(&self) -> String {
        let s = |d: Duration| format!("{:.2} s", d.as_secs_f64());
        format!(
            "time: docker: host namespaces {}, daemon start {}, image import {}, {} docker commands {}, read-back {}, probes {}; \
             bridgelab: lab {}, probes {}; teardown {}; total {}",
            s(self.host),
            s(self.daemon_start),
            s(self.image),
            self.command_count,
            s(self.commands),
            s(self.readback),
            s(self.probes),
            s(self.lab),
            s(self.lab_probes),
            s(self.teardown),
            s(self.total)
        )
    }
}

/// One phase: the setup, or one step.
#[derive(Debug, Clone)]
pub struct Phase {
    /// `setup` or `step N: action`.
    pub label: String,
    /// Unified-diff lines (`@@ section @@`, ` `, `-` bridgelab, `+` Docker).
    pub hunks: Vec<String>,
    /// Expectations whose verdicts differ: (bridgelab's detail, Docker's).
    pub details: Vec<(String, String, String)>,
    /// Docker's verdicts.
    pub real: Vec<ExpectOutcome>,
}

/// What `diff` found for one file.
#[derive(Debug, Clone)]
pub struct FileReport {
    pub file: PathBuf,
    pub scenario: String,
    pub docker_version: String,
    /// The run id of Docker's host (namespaces `bl-<id>-host`, `-external`).
    pub docker_run: String,
    /// The run id of bridgelab's lab, when there is one.
    pub lab_run: Option<String>,
    /// Why bridgelab's side is missing (it could not plan or build the
    /// scenario), or where it stopped.
    pub lab_error: Option<String>,
    pub phases: Vec<Phase>,
    pub notes: Vec<String>,
    pub timing: Timing,
}

impl FileReport {
    pub fn equal(&self) -> bool {
        self.lab_error.is_none() && self.phases.iter().all(|p| p.hunks.is_empty())
    }

    /// The report for a person; `colour` paints `-` red and `+` green.
    pub fn text(&self, colour: bool) -> String {
        let paint = |code: &str, s: &str| if colour { format!("\x1b[{code}m{s}\x1b[0m") } else { s.to_string() };
        let mut s = String::new();
        let runs = match &self.lab_run {
            Some(l) => format!("runs: docker {}, bridgelab {l}", self.docker_run),
            None => format!("runs: docker {}", self.docker_run),
        };
        let _ = writeln!(
            s,
            "== {} ({}): bridgelab against dockerd {} ({runs})",
            self.scenario,
            self.file.display(),
            self.docker_version
        );
        if let Some(e) = &self.lab_error {
            let _ = writeln!(s, "bridgelab's side: {}", e.lines().collect::<Vec<_>>().join("\n  "));
        }
        for p in &self.phases {
            if p.hunks.is_empty() {
                let _ = writeln!(s, "-- {}: equal", p.label);
                continue;
            }
            let _ = writeln!(s, "-- {}", p.label);
            let _ = writeln!(s, "--- bridgelab");
            let _ = writeln!(s, "+++ docker {}", self.docker_version);
            for l in &p.hunks {
                let line = match l.chars().next() {
                    Some('-') => paint("31", l),
                    Some('+') => paint("32", l),
                    Some('@') => paint("36", l),
                    _ => l.clone(),
                };
                let _ = writeln!(s, "{line}");
            }
            for (name, lab, real) in &p.details {
                let _ = writeln!(s, "   {name}\n     bridgelab: {lab}\n     docker:    {real}");
            }
        }
        let all: Vec<&ExpectOutcome> = self.phases.iter().flat_map(|p| &p.real).collect();
        let failed: Vec<&&ExpectOutcome> = all.iter().filter(|e| !e.passed).collect();
        let _ = writeln!(s, "docker met {}/{} of the scenario's expectations", all.len() - failed.len(), all.len());
        for e in failed {
            let step = e.step.as_deref().map(|st| format!("{st}: ")).unwrap_or_default();
            let got = e.actual.as_deref().unwrap_or("error");
            let _ = writeln!(s, "  {step}{}: expected {}, docker {got} ({})", e.name, e.expected, e.detail);
        }
        for n in &self.notes {
            let _ = writeln!(s, "note: {n}");
        }
        let _ = writeln!(s, "{}", self.timing.line());
        let verdict = if self.equal() {
            paint("32", "EQUAL")
        } else if self.lab_error.is_some() && self.phases.iter().all(|p| p.hunks.iter().all(|h| !h.starts_with('-'))) {
            paint("31;1", "DIFFERENT (bridgelab has no lab to compare)")
        } else {
            let differ = self.phases.iter().filter(|p| !p.hunks.is_empty()).count();
            paint("31;1", &format!("DIFFERENT ({differ} of {} phases differ)", self.phases.len()))
        };
        // One run of a file with `versions` says which.
        match self.scenario.split_once('@') {
            Some((_, version)) => {
                let _ = writeln!(s, "{verdict}  {} (@{version})", self.file.display());
            }
            None => {
                let _ = writeln!(s, "{verdict}  {}", self.file.display());
            }
        }
        s
    }
}

/// A command's outcome as a line of the `commands` section.
fn command_line(c: &DockerCommand, outcome: &std::result::Result<(), String>) -> String {
    let said = match (outcome, &c.fails) {
        (Ok(()), _) => "ok".to_string(),
        // Docker's message, its random parts put as the lab has them, is the
        // scenario's word for word (20.10's `docker run` adds a full stop).
        (Err(m), Some(want)) if as_the_lab_says(m, want).trim_end_matches('.') == want.trim_end_matches('.') => {
            format!("fails: {want}")
        }
        (Err(m), _) => format!("fails: {m}"),
    };
    format!("{}: {said}", c.display())
}

/// Docker's message with what it draws at random put as the scenario's
/// `fails` (the lab's words) has it:
///
/// * the random 64-hex-digit ids (endpoints, networks) become the lab's,
///   the first in Docker's message the first in `want`, and so on;
/// * in 28's `Bind for ADDR:PORT failed: port is already allocated`, an
///   unspecified ADDR (`0.0.0.0` or `::`) becomes `want`'s when that is
///   unspecified too, for the same port. 28's allocator checks a binding
///   on every address against `0.0.0.0`'s and `::`'s tables at once and
///   reports the first taken one of a Go map's random iteration
///   (portallocator.go `RequestPortsInRange`): either, on the same host.
fn as_the_lab_says(docker: &str, want: &str) -> String {
    let lab_ids = hex_ids(want);
    let mut out = String::with_capacity(docker.len());
    let mut rest = docker;
    for (i, (at, _)) in hex_ids(docker).into_iter().enumerate() {
        let Some((_, id)) = lab_ids.get(i) else { break };
        let at = at - (docker.len() - rest.len());
        out.push_str(&rest[..at]);
        out.push_str(id);
        rest = &rest[at + 64..];
    }
    out.push_str(rest);
    const BIND: &str = "Bind for ";
    const TAKEN: &str = " failed: port is already allocated";
    let bound = |m: &str| -> Option<(usize, usize, bool, String)> {
        let start = m.find(BIND)? + BIND.len();
        let end = start + m[start..].find(TAKEN)?;
        let (addr, port) = m[start..end].rsplit_once(':')?;
        let any = addr.parse::<IpAddr>().is_ok_and(|a| a.is_unspecified());
        Some((start, end, any, port.to_string()))
    };
    if let (Some((s, e, true, port)), Some((ws, we, true, wport))) = (bound(&out), bound(want)) {
        if port == wport {
            out.replace_range(s..e, &want[ws..we]);
        }
    }
    out
}

/// Where each run of exactly 64 hex digits (a Docker id) starts, and the run.
fn hex_ids(m: &str) -> Vec<(usize, &str)> {
    let b = m.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let n = b[i..].iter().take_while(|c| c.is_ascii_hexdigit()).count();
        if n == 64 {
            out.push((i, &m[i..i + 64]));
        }
        i += n.max(1);
    }
    out
}

/// The node of `plan` that owns `ip`: the host, external, or a container.
fn owner_of(plan: &Plan, ip: Ipv4Addr) -> Option<String> {
    ["host", "external"]
        .into_iter()
        .map(String::from)
        .chain(plan.containers.iter().map(|c| c.name.clone()))
        .find(|n| crate::probe::node_addresses(plan, n).contains(&ip))
}

fn expectation_line(plan: &Plan, e: &ExpectOutcome) -> String {
    let verdict = e.actual.clone().unwrap_or_else(|| "error".into());
    let source = match e.source_seen {
        Some(ip) => match owner_of(plan, ip) {
            Some(n) => format!(", seen from {ip} ({n})"),
            None => format!(", seen from {ip}"),
        },
        None => String::new(),
    };
    format!("{}: {verdict}{source}", e.name)
}

/// bridgelab's side: the lab and its responders.
struct LabSide {
    responders: Responders,
    lab: RunningLab,
    /// Where the lab could not follow the scenario (a step that failed).
    broken: Option<String>,
}

/// Docker's side. Fields drop in order: responders, daemon, host.
struct RealSide {
    responders: Option<Responders>,
    daemon: Daemon,
    host: RunningLab,
    /// The host before the daemon, as bridgelab planned and built it.
    pre: Plan,
}

/// Reads a bridgelab lab back, with the reader Docker's side goes through.
pub async fn read_lab(lab: &RunningLab) -> Result<Readback> {
    let inventory = compare::lab_inventory(lab.plan());
    let own: Vec<(String, &File)> = inventory
        .containers
        .iter()
        .filter(|(_, w)| *w == Whereabouts::Own)
        .filter_map(|(n, _)| lab.netns_file(n).map(|f| (n.clone(), f)))
        .collect();
    let host = lab.netns_file("host").ok_or_else(|| Error::Environment("the lab has no host namespace".into()))?;
    compare::read_side(host, inventory, &own).await
}

/// Runs `docker ARGS` and parses its JSON output.
async fn docker_json<T: serde::de::DeserializeOwned>(d: &Daemon, args: &[String]) -> Result<T> {
    let out = d.docker(args).await?;
    if !out.success {
        return Err(Error::Environment(format!("docker {}: {}", args.join(" "), out.message())));
    }
    serde_json::from_str(&out.stdout).map_err(|e| Error::Environment(format!("docker {}: {e}", args.join(" "))))
}

async fn docker_ids(d: &Daemon, args: &[&str]) -> Result<Vec<String>> {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let out = d.docker(&args).await?;
    if !out.success {
        return Err(Error::Environment(format!("docker {}: {}", args.join(" "), out.message())));
    }
    Ok(out.stdout.split_whitespace().map(String::from).collect())
}

/// Reads Docker's side back: the daemon's containers and networks, the
/// host namespace, and each container's own namespace by its pid.
async fn read_real(r: &RealSide) -> Result<(Readback, Vec<NetworkInspect>, HashMap<String, File>)> {
    let d = &r.daemon;
    let ids = docker_ids(d, &["ps", "-aq", "--no-trunc"]).await?;
    let containers: Vec<Inspect> =
        if ids.is_empty() { vec![] } else { docker_json(d, &[vec!["inspect".to_string()], ids].concat()).await? };
    let net_ids = docker_ids(d, &["network", "ls", "-q", "--no-trunc"]).await?;
    let networks: Vec<NetworkInspect> =
        docker_json(d, &[vec!["network".into(), "inspect".into()], net_ids].concat()).await?;
    let (inventory, pids) = compare::real_inventory(&containers);
    let mut files = HashMap::new();
    for (name, pid) in pids {
        let f = File::open(format!("/proc/{pid}/ns/net"))
            .map_err(|e| Error::Environment(format!("{name}: the namespace of pid {pid}: {e}")))?;
        // The same ICMP limits bridgelab lifts in every namespace it makes,
        // so that `refused` never turns into `blocked` by a rate limit.
        for (k, v) in apply::netns::LAB_SYSCTLS {
            let _ = apply::netns::write_sysctl(&f, k, v);
        }
        files.insert(name, f);
    }
    let host = r.host.netns_file("host").ok_or_else(|| Error::Environment("no host namespace".into()))?;
    let own: Vec<(String, &File)> = files.iter().map(|(n, f)| (n.clone(), f)).collect();
    compare::wait_for_orphan_veths(host, &own).await?;
    let readback = compare::read_side(host, inventory, &own).await?;
    Ok((readback, networks, files))
}

/// Runs one phase's commands on the real daemon; returns each outcome.
async fn perform(r: &mut RealSide, commands: &[DockerCommand], t: &mut Timing) -> Result<Vec<String>> {
    let mut lines = Vec::new();
    for c in commands {
        let started = Instant::now();
        let outcome = match &c.action {
            Action::Docker(args) => {
                let mut out = r.daemon.docker(args).await?;
                // runc, on a busy machine, now and then fails to start a
                // container's first process ("error waiting for our first
                // child to exit"). That is the runtime, not Docker's
                // networking: the container is removed (it gave its
                // address and ports back) and run again, at most twice.
                let mut tries = 0;
                while !out.success && c.fails.is_none() && tries < 2 && runtime_glitch(&out.message()) {
                    let Some(name) = run_name(args) else { break };
                    tries += 1;
                    tracing::warn!("docker {}: {}; removed and run again", args.join(" "), out.message());
                    r.daemon.docker(&["rm".to_string(), "-f".to_string(), name.to_string()]).await?;
                    out = r.daemon.docker(args).await?;
                }
                if out.success {
                    Ok(())
                } else {
                    Err(out.message())
                }
            }
            Action::RestartDaemon => {
                r.daemon.restart().await?;
                Ok(())
            }
            Action::FlushIptables => {
                r.daemon.flush_iptables()?;
                Ok(())
            }
            Action::HostRules { rules, noflush } => r.daemon.restore_rules(rules, *noflush).map_err(|e| e.to_string()),
            Action::Sysctl { node, key, value } => {
                // The host, external and machines are bridgelab's namespaces on this side too.
                let ns =
                    r.host.netns_file(node).ok_or_else(|| Error::Environment(format!("no namespace for {node}")))?;
                apply::netns::write_sysctl(ns, key, value).map_err(|e| format!("sysctl {key}={value}: {e}"))
            }
        };
        t.commands += started.elapsed();
        t.command_count += 1;
        lines.push(command_line(c, &outcome));
    }
    Ok(lines)
}

/// A failure of the container runtime itself, which says nothing about
/// the network (runc's `nsexec` losing its first child).
fn runtime_glitch(message: &str) -> bool {
    message.contains("OCI runtime create failed") && message.contains("error waiting for our first child to exit")
}

/// The `--name` of a `docker run`, the only command worth running again.
fn run_name(args: &[String]) -> Option<&str> {
    if args.first().map(String::as_str) != Some("run") {
        return None;
    }
    args.iter().position(|a| a == "--name").and_then(|i| args.get(i + 1)).map(String::as_str)
}

/// Lines of the `commands` section on bridgelab's side: what the plan
/// says each command does (it fails only where the scenario says so).
fn planned_lines(commands: &[DockerCommand]) -> Vec<String> {
    commands
        .iter()
        .map(|c| match &c.fails {
            None => command_line(c, &Ok(())),
            Some(f) => command_line(c, &Err(f.clone())),
        })
        .collect()
}

/// How the scenario's container MACs compare: at random where its Docker
/// makes them so (every libnetwork release but those whose
/// [`ContainerMac`](crate::plan::libnetwork::version::ContainerMac) is
/// `FromIp`), except those the scenario asks for.
pub fn container_macs(scenario: &Scenario) -> compare::Macs {
    use crate::plan::libnetwork::version::{self, ContainerMac};
    use crate::scenario::{Firewall, StepContainer};
    let firewall = scenario.spec.daemon.firewall();
    let from_ip = matches!(version::of(firewall).map(|v| v.container_mac), Some(ContainerMac::FromIp));
    let inline = scenario.spec.steps.iter().filter_map(|s| match s.container.as_ref().map(|c| c.get_ref()) {
        Some(StepContainer::Inline(c)) => Some(&**c),
        _ => None,
    });
    let given = scenario
        .spec
        .containers
        .iter()
        .chain(inline)
        .filter_map(|c| c.mac.as_ref().and_then(|m| m.get_ref().allocated()))
        .collect();
    compare::Macs { random: firewall != Firewall::Docker1 && !from_ip, given }
}

/// Diffs one file: builds Docker's host and starts its daemon, builds
/// bridgelab's lab (when it can plan the scenario), then for the setup and
/// every step runs the commands, reads both back, probes both, and diffs.
/// Everything is removed on every path, an interruption included (each
/// side's `Drop`).
pub async fn diff_file(path: &Path, dockers: &Dockers) -> Result<FileReport> {
    diff_with(path, dockers, |s| Lab::from_scenario(s.clone())).await
}

/// [`diff_file`] with bridgelab's side planned by `plan_lab` instead of
/// [`Lab::from_scenario`] (for tests of the comparison itself).
pub async fn diff_with(
    path: &Path,
    dockers: &Dockers,
    plan_lab: impl FnOnce(&Scenario) -> Result<Lab>,
) -> Result<FileReport> {
    diff_run(path, Scenario::load(path)?, dockers, plan_lab).await
}

/// One run of a scenario file on a real daemon and in the lab: the file
/// itself, or one of its [`Scenario::variants`] (a file with `versions`).
pub async fn diff_run(
    path: &Path,
    scenario: Scenario,
    dockers: &Dockers,
    plan_lab: impl FnOnce(&Scenario) -> Result<Lab>,
) -> Result<FileReport> {
    let started = Instant::now();
    if let Some(vs) = &scenario.spec.versions {
        return Err(scenario
            .error(vs.span(), "this scenario runs once per version: diff each of its variants (bridgelab diff does)")
            .into());
    }
    let tools = dockers.for_firewall(scenario.spec.daemon.firewall()).map_err(|e| match e {
        Error::Environment(m) => Error::Environment(format!("{}: {m}", path.display())),
        other => other,
    })?;
    apply::check_environment()?;
    let script = translate::translate(&scenario);
    let mut t = Timing::default();
    let mut report = FileReport {
        file: path.to_path_buf(),
        scenario: scenario.name.clone(),
        docker_version: tools.version.clone(),
        docker_run: String::new(),
        lab_run: None,
        lab_error: None,
        phases: vec![],
        notes: vec![],
        timing: Timing::default(),
    };

    // Docker's host: built by bridgelab from the scenario's [host] and
    // [external], then the daemon inside it.
    let building = Instant::now();
    let (pre_scenario, pre_plan) = pre_daemon(&scenario)?;
    let pre = pre_plan.clone();
    let host = apply::up(pre_scenario, pre_plan, apply::UpOptions::default()).await?;
    report.docker_run = host.run_id().to_string();
    let host_ns = host.netns_file("host").ok_or_else(|| Error::Environment("no host namespace".into()))?;
    let before = host_before(scenario.source.text());
    if before.forwarding {
        apply::netns::write_sysctl(host_ns, "net.ipv4.ip_forward", "1")
            .map_err(|e| Error::Environment(format!("host: net.ipv4.ip_forward: {e}")))?;
    }
    // `[host] sysctls` and `rules` are in the pre-daemon plan: built above.
    t.host = building.elapsed();
    let starting = Instant::now();
    let daemon = Daemon::start(tools, host_ns, host.run_id(), &script.daemon_flags).await?;
    let mut real = RealSide { responders: None, daemon, host, pre };
    t.daemon_start = starting.elapsed();
    let importing = Instant::now();
    real.daemon.import_image().await?;
    t.image = importing.elapsed();

    // bridgelab's side.
    let building = Instant::now();
    let mut lab_side = match plan_lab(&scenario) {
        Err(e) => {
            report.lab_error = Some(e.to_string());
            None
        }
        Ok(lab) => match lab.up().await {
            Err(e) => {
                report.lab_error = Some(format!("cannot build the lab: {e}"));
                None
            }
            Ok(running) => match crate::probe::start_responders(&running) {
                Err(e) => {
                    report.lab_error = Some(format!("cannot start the lab's responders: {e}"));
                    None
                }
                Ok(responders) => {
                    report.lab_run = Some(running.run_id().to_string());
                    Some(LabSide { responders, lab: running, broken: None })
                }
            },
        },
    };
    t.lab = building.elapsed();

    // The lab after each step, from the plan the lab was built from (a
    // step's own plan, which the lab holds after it, has no steps).
    let step_plans: Vec<crate::plan::Plan> =
        lab_side.as_ref().map(|l| l.lab.plan().steps.iter().map(|s| s.after.clone()).collect()).unwrap_or_default();
    let mut restored = false;
    type PhaseOf<'s> = (String, Vec<DockerCommand>, Vec<Expect>, Option<&'s Step>);
    let phases: Vec<PhaseOf> =
        std::iter::once(("setup".to_string(), script.setup.clone(), scenario.spec.expects.clone(), None))
            .chain(
                script
                    .steps
                    .iter()
                    .zip(&scenario.spec.steps)
                    .map(|(s, st)| (s.label.clone(), s.commands.clone(), st.expects.clone(), Some(st))),
            )
            .collect();
    for (i, (label, commands, expects, step)) in phases.into_iter().enumerate() {
        // A `flow` step starts its sender on each side (no docker command).
        let flow = step.filter(|st| *st.action.get_ref() == crate::scenario::StepAction::Flow);
        restored |= commands.iter().any(|c| c.action == Action::RestartDaemon);
        // bridgelab: the step's plan (the setup is built already).
        if i > 0 {
            if let Some(l) = lab_side.as_mut().filter(|l| l.broken.is_none()) {
                let stepping = Instant::now();
                let next = step_plans.get(i - 1).cloned();
                let done = match next {
                    None => Err(Error::Environment(format!("the plan has no {label}"))),
                    Some(next) => match l.lab.apply_step(&next).await {
                        Ok(gone) => {
                            l.responders.stop_nodes(&gone);
                            match crate::probe::sync_responders(&l.lab, &mut l.responders).await {
                                Ok(()) => match flow {
                                    Some(st) => crate::probe::start_flow(&l.lab, &mut l.responders, st),
                                    None => Ok(()),
                                },
                                Err(e) => Err(e),
                            }
                        }
                        Err(e) => Err(e),
                    },
                };
                if let Err(e) = done {
                    l.broken = Some(format!("{label}: {e}"));
                }
                t.lab += stepping.elapsed();
            }
        }
        // Docker.
        let real_commands = perform(&mut real, &commands, &mut t).await?;
        let reading = Instant::now();
        let lab_read = match lab_side.as_ref().filter(|l| l.broken.is_none()) {
            Some(l) => {
                // A lab that differs from its own plan would make the diff
                // say the wrong thing about the plan: said separately.
                match l.lab.verify().await {
                    Ok(mismatches) => {
                        for m in mismatches {
                            report.notes.push(format!("{label}: bridgelab's lab differs from its plan: {m}"));
                        }
                    }
                    Err(e) => report.notes.push(format!("{label}: cannot compare bridgelab's lab with its plan: {e}")),
                }
                Some(read_lab(&l.lab).await?)
            }
            None => None,
        };
        let (real_read, networks, files) = read_real(&real).await?;
        t.readback += reading.elapsed();
        let lab_networks: Vec<(String, String)> = lab_side
            .as_ref()
            .map(|l| l.lab.plan().networks.iter().map(|n| (n.name.clone(), n.bridge.name.clone())).collect())
            .unwrap_or_default();
        let names = compare::Names::new(&networks, &real_read.host, lab_read.as_ref().map(|r| &r.host), &lab_networks);
        let macs = container_macs(&scenario);

        // Probes, on both sides.
        let probing = Instant::now();
        let view = RealView {
            scenario: &scenario,
            plan: real_plan(&scenario, &real.pre, &real_read),
            host: &real.host,
            files,
        };
        match real.responders.as_mut() {
            None => real.responders = Some(crate::probe::start_responders(&view)?),
            Some(r) => crate::probe::sync_responders(&view, r).await?,
        }
        if let (Some(st), Some(r)) = (flow, real.responders.as_mut()) {
            crate::probe::start_flow(&view, r, st)?;
        }
        let responders = real.responders.as_ref().expect("started above");
        let mut real_outcomes = crate::probe::check(&view, responders, &expects).await;
        t.probes += probing.elapsed();
        let probing = Instant::now();
        let lab_outcomes = match lab_side.as_ref().filter(|l| l.broken.is_none()) {
            Some(l) => Some(crate::probe::check(&l.lab, &l.responders, &expects).await),
            None => None,
        };
        t.lab_probes += probing.elapsed();

        let mut real_world = compare::render(&real_read, &names, &macs, restored);
        real_world.sections.insert(0, compare::Section { title: "commands".into(), lines: real_commands });
        real_world.push("expectations", real_outcomes.iter().map(|e| expectation_line(&view.plan, e)).collect());
        let mut lab_world = World::default();
        let mut details = Vec::new();
        if let (Some(l), Some(r), Some(outcomes)) = (&lab_side, &lab_read, &lab_outcomes) {
            lab_world = compare::render(r, &names, &macs, restored);
            lab_world
                .sections
                .insert(0, compare::Section { title: "commands".into(), lines: planned_lines(&commands) });
            let lab_lines: Vec<String> = outcomes.iter().map(|e| expectation_line(l.lab.plan(), e)).collect();
            for ((a, b), (la, lb)) in outcomes
                .iter()
                .zip(&real_outcomes)
                .zip(lab_lines.iter().zip(&real_world.section("expectations").expect("pushed").lines))
            {
                if la != lb {
                    details.push((a.name.clone(), a.detail.clone(), b.detail.clone()));
                }
            }
            lab_world.push("expectations", lab_lines);
        }
        // Without bridgelab's side, Docker's world is all there is to show.
        let hunks = compare::diff(&lab_world, &real_world);
        if lab_world.sections.is_empty() && report.lab_error.is_none() {
            if let Some(b) = lab_side.as_ref().and_then(|l| l.broken.clone()) {
                report.lab_error = Some(b);
            }
        }
        for o in real_outcomes.iter_mut() {
            o.step = (i > 0).then(|| label.clone());
        }
        report.phases.push(Phase { label, hunks, details, real: real_outcomes });
    }
    if restored {
        report.notes.push(
            "after the daemon restart, DOCKER-ISOLATION-STAGE-1/2 and nat DOCKER's RETURN rules are compared as \
             sets: dockerd 20.10 restores networks in a random order"
                .into(),
        );
    }

    let tearing = Instant::now();
    let mut errors = Vec::new();
    if let Some(l) = lab_side {
        drop(l.responders);
        if let Err(e) = l.lab.down() {
            errors.push(e.to_string());
        }
    }
    drop(real.responders.take());
    if let Err(e) = real.daemon.stop() {
        errors.push(e.to_string());
    }
    if let Err(e) = real.host.down() {
        errors.push(e.to_string());
    }
    t.teardown = tearing.elapsed();
    t.total = started.elapsed();
    report.timing = t;
    if errors.is_empty() {
        Ok(report)
    } else {
        Err(Error::Teardown(errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_run_that_met_runcs_glitch_is_run_again() {
        let run: Vec<String> = ["run", "-d", "--name", "web", "busybox:latest"].iter().map(|s| s.to_string()).collect();
        assert_eq!(run_name(&run), Some("web"));
        let start: Vec<String> = ["start", "web"].iter().map(|s| s.to_string()).collect();
        assert_eq!(run_name(&start), None);
        assert!(runtime_glitch(
            "failed to create shim task: OCI runtime create failed: runc create failed: unable to start \
             container process: error waiting for our first child to exit: exit status 1: unknown."
        ));
        assert!(!runtime_glitch("Bind for 0.0.0.0:8080 failed: port is already allocated"));
    }

    #[test]
    fn the_host_before_the_daemon_is_read_from_the_file() {
        let text = r#"
            [host]
            forwarding = true
            sysctls = { "net.bridge.bridge-nf-call-iptables" = 0, "net.ipv4.ip_local_port_range" = "40000 40100" }
            rules = """*filter
            -A INPUT -j DROP
            COMMIT
            """
        "#;
        let h = host_before(text);
        assert!(h.forwarding);
        assert_eq!(
            h.sysctls,
            [
                ("net.bridge.bridge-nf-call-iptables".to_string(), "0".to_string()),
                ("net.ipv4.ip_local_port_range".to_string(), "40000 40100".to_string())
            ]
        );
        assert!(h.rules.unwrap().contains("-A INPUT -j DROP"));
        assert_eq!(host_before("[daemon]\nicc = false\n"), HostBefore::default());
    }

    #[test]
    fn the_pre_daemon_host_has_no_docker_in_it() {
        let s = Scenario::parse(
            "t.toml".into(),
            r#"
            [daemon]
            firewall = "docker20"
            bip = "10.66.0.1/24"
            [host]
            routes = ["10.9.0.0/16"]
            [[host.bridge]]
            name = "br0"
            address = "10.10.0.1/24"
            [external]
            routes = ["10.66.0.0/24"]
            [[network]]
            name = "usr"
            [[container]]
            name = "web"
            network = "usr"
            "#
            .into(),
        )
        .unwrap();
        let (_, plan) = pre_daemon(&s).unwrap();
        let names: Vec<&str> = plan.nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["host", "external"]);
        let host = plan.node("host").unwrap();
        let links: Vec<&str> = host.links.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(links, ["lo", "eth0", "dummy0", "br0"]);
        assert!(plan.iptables.is_empty());
        let fwd = host.sysctls.iter().find(|s| s.key == "net.ipv4.ip_forward").unwrap();
        assert_eq!((fwd.value.as_str(), fwd.write), ("0", false), "forwarding is dockerd's to turn on");
        let ext = plan.node("external").unwrap();
        assert!(ext.routes.iter().any(|r| r.to_string().starts_with("10.66.0.0/24 via 198.51.100.1")));
    }

    #[test]
    fn command_lines_say_what_failed_in_dockers_words() {
        let c = translate::step(
            &Scenario::parse(
                "t.toml".into(),
                "[daemon]\nfirewall = \"docker20\"\n[[container]]\nname = \"web\"\n[[step]]\ndo = \"start\"\ncontainer = \"web\"\nfails = \"driver failed programming external connectivity on endpoint web (3f2a): Bind for 0.0.0.0:8080 failed: port is already allocated\"\n".into(),
            )
            .unwrap()
            .spec
            .steps[0],
        )
        .remove(0);
        let long = "driver failed programming external connectivity on endpoint web (3f2a): Bind for 0.0.0.0:8080 failed: port is already allocated";
        assert_eq!(command_line(&c, &Err(long.into())), format!("docker start web: fails: {long}"));
        // 20.10's `docker run` ends the message with a full stop.
        assert_eq!(command_line(&c, &Err(format!("{long}."))), format!("docker start web: fails: {long}"));
        assert_eq!(planned_lines(std::slice::from_ref(&c)), [format!("docker start web: fails: {long}")]);
        // Words around the scenario's are a difference, not a match.
        let more = format!("Cannot restart container web: {long}");
        assert_eq!(command_line(&c, &Err(more.clone())), format!("docker start web: fails: {more}"));
        assert_eq!(command_line(&c, &Ok(())), "docker start web: ok");
        assert_eq!(
            command_line(&c, &Err("No such container: web".into())),
            "docker start web: fails: No such container: web"
        );
    }

    #[test]
    fn dockers_random_ids_and_bind_address_meet_the_labs() {
        let c = |fails: &str| DockerCommand {
            action: Action::Docker(vec!["start".into(), "late".into()]),
            fails: Some(fails.into()),
        };
        let (lab, docker) = ("9da8".repeat(16), "c3b7".repeat(16));
        let want = format!("failed to set up container networking: driver failed programming external connectivity on endpoint late ({lab}): Bind for 0.0.0.0:8080 failed: port is already allocated");
        // Captured from dockerd 28.5.2: ids at random, and `::` or `0.0.0.0` at random.
        for addr in ["0.0.0.0", "::"] {
            let real = format!("failed to set up container networking: driver failed programming external connectivity on endpoint late ({docker}): Bind for {addr}:8080 failed: port is already allocated");
            assert_eq!(command_line(&c(&want), &Err(real)), format!("docker start late: fails: {want}"), "{addr}");
        }
        // A specific address, another port or an id too short is not Docker's randomness.
        for real in [
            format!("failed to set up container networking: driver failed programming external connectivity on endpoint late ({docker}): Bind for 127.0.0.1:8080 failed: port is already allocated"),
            format!("failed to set up container networking: driver failed programming external connectivity on endpoint late ({docker}): Bind for :::8081 failed: port is already allocated"),
            format!("failed to set up container networking: driver failed programming external connectivity on endpoint late ({}): Bind for 0.0.0.0:8080 failed: port is already allocated", &docker[1..]),
        ] {
            assert_eq!(command_line(&c(&want), &Err(real.clone())), format!("docker start late: fails: {real}"));
        }
        // Networks' ids too, in order.
        let (n1, n2) = ("a0c7".repeat(16), "0123".repeat(16));
        let want = format!("failed to set up container networking: no available IPv4 addresses on this network's address pools: n2 ({n1})");
        let real = format!("failed to set up container networking: no available IPv4 addresses on this network's address pools: n2 ({n2})");
        assert_eq!(command_line(&c(&want), &Err(real)), format!("docker start late: fails: {want}"));
    }

    #[test]
    fn docker28s_container_macs_are_random_unless_asked_for() {
        let parse = |t: &str| Scenario::parse("t.toml".into(), t.into()).unwrap();
        let text = "[[container]]\nname = \"web\"\nmac = \"02-00-00-00-00-0A\"\n[[container]]\nname = \"db\"\n";
        let m28 = container_macs(&parse(&format!("[daemon]\nfirewall = \"docker28\"\n{text}")));
        assert_eq!(m28, compare::Macs { random: true, given: vec!["02:00:00:00:00:0a".into()] });
        let m20 = container_macs(&parse(&format!("[daemon]\nfirewall = \"docker20\"\n{text}")));
        assert!(!m20.random, "20.10 makes MACs from addresses: compared as they are");
    }

    #[test]
    fn the_default_gateway_comes_from_the_route_dump() {
        let routes = vec![
            "default via 172.17.0.1 dev eth0".to_string(),
            "172.17.0.0/16 dev eth0 proto kernel scope link src 172.17.0.2".to_string(),
        ];
        assert_eq!(default_gateway(&routes), Some(("172.17.0.1".parse().unwrap(), "eth0".to_string())));
        assert_eq!(default_gateway(&routes[1..]), None);
    }
}
