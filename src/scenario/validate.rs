//! Cross-checks of a parsed scenario: names, references, Docker's flag
//! conflicts. Address allocation mistakes (a requested IP out of range, no
//! free bridge range) need the simulator and are found in `plan`.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::Ipv4Addr;
use std::ops::Range;

use super::diag::short;
use super::{
    Backend, Container, Diagnostic, Expect, Firewall, GatewayMode, NetworkMode, ProbeSpec, Sp, Spec, Step, StepAction,
    StepContainer, Verdict, DEFAULT_BRIDGE,
};

/// Node names that containers may not take: they name the lab's own nodes.
pub const RESERVED_NODES: [&str; 2] = ["host", "external"];

/// Interface names the lab's host namespace uses itself.
const RESERVED_HOST_LINKS: [&str; 3] = ["lo", "eth0", "dummy0"];

/// Names predefined by Docker for networks.
const PREDEFINED_NETWORKS: [&str; 3] = ["bridge", "host", "none"];

pub fn node_names(spec: &Spec) -> BTreeSet<&str> {
    let mut names: BTreeSet<&str> = RESERVED_NODES.into_iter().collect();
    names.extend(spec.containers.iter().map(|c| c.name()));
    names.extend(spec.machines.iter().map(|m| m.name()));
    for step in &spec.steps {
        if let Some(StepContainer::Inline(c)) = step.container.as_ref().map(|c| c.get_ref()) {
            names.insert(c.name());
        }
    }
    names
}

/// A stand-in for the 12-digit container ID Docker's messages quote.
pub fn container_id(name: &str) -> String {
    format!("{:012x}", crate::stable_hash::fnv1a(&["container-id", name]) >> 16)
}

/// Docker's container name rule: `^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$`.
pub fn valid_container_name(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() >= 2
        && b[0].is_ascii_alphanumeric()
        && b[1..].iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// A scenario name usable in file names.
pub fn valid_scenario_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

/// What the kernel accepts as an interface name (`dev_valid_name`).
pub fn valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() < 16
        && name != "."
        && name != ".."
        && !name.bytes().any(|c| c == b'/' || c == b':' || c.is_ascii_whitespace())
}

struct Checker<'a> {
    spec: &'a Spec,
    /// Names of `[[network]]`s, for references (a lookup, not a scan: a
    /// check must stay linear in the size of the file).
    network_names: HashSet<&'a str>,
    /// The `flow` steps met so far, by name: an expectation's `flow` must
    /// name one started before it.
    flows: HashMap<&'a str, &'a Step>,
    errors: Vec<Diagnostic>,
}

/// The containers that exist at some point of the scenario, by name: a
/// reference must name one created (and not removed) before it, as with
/// Docker. With each, its network modes as `connect` and `disconnect`
/// steps leave them (for `via`).
#[derive(Default)]
struct Known<'a> {
    names: HashMap<&'a str, Vec<NetworkMode>>,
}

/// The bridge network a mode joins: `bridge` or a `[[network]]`.
fn bridge_network(m: &NetworkMode) -> Option<&str> {
    match m {
        NetworkMode::Bridge => Some("bridge"),
        NetworkMode::Named(n) => Some(n),
        _ => None,
    }
}

impl<'a> Known<'a> {
    fn contains(&self, name: &str) -> bool {
        self.names.contains_key(name)
    }
    fn push(&mut self, c: &'a Container) {
        self.names.insert(c.name(), c.networks());
    }
    fn remove(&mut self, name: &str) {
        self.names.remove(name);
    }
    fn connect(&mut self, name: &str, network: &str) {
        if let Some(modes) = self.names.get_mut(name) {
            modes.push(if network == "bridge" { NetworkMode::Bridge } else { NetworkMode::Named(network.to_string()) });
        }
    }
    fn disconnect(&mut self, name: &str, network: &str) {
        if let Some(modes) = self.names.get_mut(name) {
            modes.retain(|m| bridge_network(m) != Some(network));
        }
    }
    /// The bridge networks of the namespace `name` sends from, following
    /// `container:` modes; `Err` names a mode with no link to a bridge.
    fn bridge_networks(&self, name: &str) -> Result<Vec<&str>, String> {
        let mut at = name;
        for _ in 0..=self.names.len() {
            let modes = self.names.get(at).ok_or_else(|| format!("container {at} is not known here"))?;
            match modes.first() {
                Some(NetworkMode::Container(other)) => at = other,
                Some(m @ (NetworkMode::Host | NetworkMode::None)) => return Err(format!("network {m}")),
                _ => return Ok(modes.iter().filter_map(bridge_network).collect()),
            }
        }
        Err("a loop of container: modes".into())
    }
}

impl Checker<'_> {
    fn err(&mut self, span: Range<usize>, msg: impl Into<String>) {
        self.errors.push(Diagnostic::new(span, msg));
    }
}

/// Checks a file as written: top-level `versions` and each expectation's
/// result keys, then each run of it (one per version) as [`validate`]
/// does. A mistake found in some runs only says under which.
pub fn validate_file(spec: &Spec) -> Vec<Diagnostic> {
    let mut errors = versions(spec);
    if !errors.is_empty() {
        errors.sort_by_key(|d| d.span.start);
        return errors;
    }
    let Some(vs) = &spec.versions else { return validate(spec) };
    let runs: Vec<(Firewall, Vec<Diagnostic>)> =
        vs.get_ref().iter().map(|v| (*v.get_ref(), validate(&under_version(spec, v)))).collect();
    let same = |a: &Diagnostic, b: &Diagnostic| a.span == b.span && a.message == b.message;
    let mut out: Vec<Diagnostic> = Vec::new();
    for (v, errs) in &runs {
        for d in errs {
            let everywhere = runs.iter().all(|(_, e)| e.iter().any(|x| same(x, d)));
            let d = if everywhere {
                d.clone()
            } else {
                Diagnostic::new(d.span.clone(), format!("{} (under {v})", d.message))
            };
            if !out.iter().any(|x| same(x, &d)) {
                out.push(d);
            }
        }
    }
    out.sort_by_key(|d| d.span.start);
    out
}

/// Every expectation of the file, steps included.
fn all_expects(spec: &Spec) -> impl Iterator<Item = &Expect> {
    spec.expects.iter().chain(spec.steps.iter().flat_map(|s| s.expects.iter()))
}

/// `versions`, `[daemon] firewall`, `result` and `result_by_version`.
fn versions(spec: &Spec) -> Vec<Diagnostic> {
    let mut errors = Vec::new();
    let listed: Vec<Firewall> = spec.versions.iter().flat_map(|v| v.get_ref().iter().map(|f| *f.get_ref())).collect();
    if let Some(vs) = &spec.versions {
        if vs.get_ref().is_empty() {
            errors.push(Diagnostic::new(
                vs.span(),
                "versions is empty: list the Docker layouts to run under, e.g. [\"docker1\", \"docker20\"]",
            ));
        }
        for (i, v) in vs.get_ref().iter().enumerate() {
            if listed[..i].contains(v.get_ref()) {
                errors.push(Diagnostic::new(v.span(), format!("version {} is listed twice", v.get_ref())));
            }
        }
        if let Some(f) = &spec.daemon.firewall {
            errors.push(Diagnostic::new(
                f.span(),
                "firewall: this scenario runs under each of its top-level `versions`; give either versions or [daemon] firewall",
            ));
        }
    }
    for e in all_expects(spec) {
        if e.result.is_none() && e.result_by_version.is_none() {
            errors.push(Diagnostic::new(
                e.to.span(),
                if spec.versions.is_some() {
                    "this expectation has no result: add result, or result_by_version with a result per version"
                } else {
                    "this expectation has no result: add result = \"reachable\", \"refused\" or \"blocked\""
                },
            ));
        }
        if let Some(by) = &e.result_by_version {
            let fine = by_version(spec, &listed, "result", e.result.is_some(), by, &mut errors);
            // Every version needs a result (a `source` or `fails` it does not name is none).
            let missing: Vec<String> = listed
                .iter()
                .filter(|f| !by.get_ref().keys().any(|k| k.parse::<Firewall>().ok() == Some(**f)))
                .map(|f| f.to_string())
                .collect();
            if fine && !missing.is_empty() {
                errors.push(Diagnostic::new(
                    by.span(),
                    format!("result_by_version has no result for {}", missing.join(", ")),
                ));
            }
        }
        if let Some(by) = &e.source_by_version {
            by_version(spec, &listed, "source", e.source.is_some(), by, &mut errors);
        }
    }
    for st in &spec.steps {
        if let Some(by) = &st.fails_by_version {
            by_version(spec, &listed, "fails", st.fails.is_some(), by, &mut errors);
        }
    }
    errors
}

/// A `KEY_by_version` table (`result`, `source`, `fails`): the plain KEY
/// beside it, no top-level `versions`, or a version they do not list is an
/// error. Whether it was fine.
fn by_version<T>(
    spec: &Spec,
    listed: &[Firewall],
    key: &str,
    plain: bool,
    by: &Sp<std::collections::BTreeMap<String, Sp<T>>>,
    errors: &mut Vec<Diagnostic>,
) -> bool {
    let before = errors.len();
    if plain {
        errors.push(Diagnostic::new(
            by.span(),
            format!("give either {key} (the same under every version) or {key}_by_version, not both"),
        ));
    } else if spec.versions.is_none() {
        errors.push(Diagnostic::new(
            by.span(),
            format!("{key}_by_version needs top-level versions = [...] (the layouts the scenario runs under); without them use {key}"),
        ));
    } else {
        for (k, v) in by.get_ref() {
            match k.parse::<Firewall>() {
                Err(msg) => errors.push(Diagnostic::new(v.span(), msg)),
                Ok(f) if !listed.contains(&f) => errors.push(Diagnostic::new(
                    v.span(),
                    format!("{key}_by_version: {f} is not one of the top-level versions"),
                )),
                Ok(_) => {}
            }
        }
    }
    errors.len() == before
}

/// The file's spec as it runs under `version`: that `[daemon] firewall`,
/// no `versions`, and each `result_by_version` (`source_by_version`,
/// `fails_by_version`) turned into `result` (`source`, `fails`).
pub fn under_version(spec: &Spec, version: &Sp<Firewall>) -> Spec {
    let mut s = spec.clone();
    s.versions = None;
    s.daemon.firewall = Some(version.clone());
    let name = version.get_ref().to_string();
    let pick = |e: &mut Expect| {
        if let Some(by) = e.result_by_version.take() {
            e.result = by.get_ref().get(&name).cloned();
        }
        if let Some(by) = e.source_by_version.take() {
            e.source = by.get_ref().get(&name).cloned();
        }
    };
    s.expects.iter_mut().for_each(pick);
    s.steps.iter_mut().flat_map(|st| st.expects.iter_mut()).for_each(pick);
    for st in &mut s.steps {
        if let Some(by) = st.fails_by_version.take() {
            st.fails = by.get_ref().get(&name).cloned();
        }
    }
    s
}

/// Gives each `flow` expectation the sender and probe of its flow step
/// (after validation: every `flow` names a known flow step).
pub fn fill_flow_expects(spec: &mut Spec) {
    let mut flows: HashMap<String, (Sp<String>, Sp<ProbeSpec>)> = HashMap::new();
    for step in &mut spec.steps {
        if *step.action.get_ref() == StepAction::Flow {
            if let (Some(n), Some(f), Some(p)) = (&step.name, &step.from, &step.probe) {
                flows.insert(n.get_ref().clone(), (f.clone(), p.clone()));
            }
        }
        for e in &mut step.expects {
            let Some(flow) = &e.flow else { continue };
            if let Some((from, probe)) = flows.get(flow.get_ref()) {
                e.from = Some(Sp::new(flow.span(), from.get_ref().clone()));
                e.probe = Some(Sp::new(flow.span(), *probe.get_ref()));
            }
        }
    }
}

pub fn validate(spec: &Spec) -> Vec<Diagnostic> {
    let network_names = spec.networks.iter().map(|n| n.name.get_ref().as_str()).collect();
    let mut c = Checker { spec, network_names, flows: HashMap::new(), errors: Vec::new() };
    c.name();
    c.lab_addresses();
    c.daemon();
    c.host();
    c.host_before();
    c.machines();
    c.networks();
    c.containers_and_steps();
    c.probe();
    c.errors.sort_by_key(|d| d.span.start);
    c.errors
}

/// An earlier subnet that overlaps `sub`, in lookups rather than a scan:
/// of those that contain it (at most 33 exact lookups) and the lowest one
/// inside it (a range lookup), the one defined first.
fn overlapping<'a>(earlier: &BTreeMap<(u32, u8), (usize, &'a str)>, sub: ipnetwork::Ipv4Network) -> Option<&'a str> {
    let first = u32::from(sub.network());
    let containing = (0..=sub.prefix()).filter_map(|p| {
        let mask = if p == 0 { 0 } else { u32::MAX << (32 - p) };
        earlier.get(&(first & mask, p)).copied()
    });
    let last = u32::from(sub.broadcast());
    let inside = earlier.range((first, sub.prefix())..=(last, 32)).next().map(|(_, n)| *n);
    containing.chain(inside).min().map(|(_, name)| name)
}

impl<'a> Checker<'a> {
    /// The name ends up in file names (captures, reports): keep it plain.
    fn name(&mut self) {
        if let Some(n) = &self.spec.name {
            if !valid_scenario_name(n.get_ref()) {
                self.err(
                    n.span(),
                    format!(
                        "invalid scenario name {:?}: use letters, digits, '.', '_' and '-' (at most 64)",
                        short(n.get_ref())
                    ),
                );
            }
        }
    }

    /// The lab's own uplink (198.51.100.0/24) and loopback belong to the
    /// lab: scenario addresses and routes must stay clear of them.
    fn lab_addresses(&mut self) {
        let reserved: [(ipnetwork::Ipv4Network, &str); 2] = [
            ("198.51.100.0/24".parse().expect("const"), "the lab's uplink 198.51.100.0/24"),
            ("127.0.0.0/8".parse().expect("const"), "loopback 127.0.0.0/8"),
        ];
        let spec = self.spec;
        let mut nets: Vec<(Range<usize>, ipnetwork::Ipv4Network, &str)> = Vec::new();
        for r in &spec.host.routes {
            nets.push((r.span(), r.get_ref().0, "route"));
        }
        for r in &spec.external.routes {
            let (addr, net) = (r.get_ref().ip(), r.get_ref().network());
            // A route names a subnet; host bits would be a typo the kernel refuses
            // (`ip route add 172.17.0.1/16` says "Invalid prefix for given prefix length").
            if addr != net.network() {
                self.err(r.span(), format!("route {}: not a subnet, its subnet is {net}", r.get_ref()));
                continue;
            }
            nets.push((r.span(), net, "route"));
        }
        if let Some(b) = &spec.daemon.bip {
            nets.push((b.span(), b.get_ref().network(), "--bip"));
        }
        for b in &spec.host.bridges {
            if let Some(a) = &b.address {
                nets.push((a.span(), a.get_ref().network(), "bridge address"));
            }
        }
        for (span, net, what) in nets {
            if net.prefix() == 0 {
                self.err(span, format!("{what} {net} would replace the lab's default route"));
                continue;
            }
            if let Some((_, name)) = reserved.iter().find(|(r, _)| r.overlaps(net)) {
                self.err(span, format!("{what} {net} collides with {name}"));
            }
        }
    }

    fn daemon(&mut self) {
        let d = &self.spec.daemon;
        let libnetwork = d.firewall() != Firewall::Docker1;
        if let Some(b) = &d.bridge {
            let name = b.get_ref();
            if name != "none" && !valid_ifname(name) {
                self.err(
                    b.span(),
                    format!(
                        "invalid bridge name {name:?}: an interface name has 1 to 15 characters, no '/', ':' or spaces"
                    ),
                );
            } else if name != DEFAULT_BRIDGE
                && name != "none"
                && !self.spec.host.bridges.iter().any(|hb| hb.name.get_ref() == name)
            {
                self.err(b.span(), format!("bridge not found: {name} (-b names a bridge that must already exist: add it as [[host.bridge]])"));
            }
            // NewDaemonFromDirectory (verifyDaemonSettings from 17.06 on):
            // any -b at all, docker0 and none included.
            if let Some(bip) = &d.bip {
                // 1.6.2's words end with a full stop, libnetwork's do not.
                let msg = match libnetwork {
                    true => "You specified -b & --bip, mutually exclusive options. Please specify only one",
                    false => "You specified -b & --bip, mutually exclusive options. Please specify only one.",
                };
                self.err(bip.span(), msg);
            }
        }
        if let (Some(ipt), Some(icc)) = (&d.iptables, &d.icc) {
            if !ipt.get_ref() && !icc.get_ref() {
                let msg = match libnetwork {
                    true => "You specified --iptables=false with --icc=false. ICC=false uses iptables to function. Please set --icc or --iptables to true",
                    false => "You specified --iptables=false with --icc=false. ICC uses iptables to function. Please set --icc or --iptables to true.",
                };
                self.err(icc.span(), msg);
            }
        }
        if let Some(m) = &d.mtu {
            if !(68..=65535).contains(m.get_ref()) {
                self.err(m.span(), format!("invalid mtu {}: must be between 68 and 65535", m.get_ref()));
            }
        }
        // Keys that came with Docker 28 (cmd/dockerd/config_unix.go @v28.5.2).
        if !matches!(d.firewall(), Firewall::Docker28 | Firewall::Docker29) {
            let release = match d.firewall() {
                Firewall::Docker1 => "Docker 1.6.2",
                _ => "Docker 20.10.24",
            };
            let keys = [
                (d.allow_direct_routing.as_ref().map(|x| x.span()), "allow_direct_routing", "--allow-direct-routing"),
                (d.ip_forward_no_drop.as_ref().map(|x| x.span()), "ip_forward_no_drop", "--ip-forward-no-drop"),
            ];
            for (span, key, flag) in keys {
                if let Some(span) = span {
                    self.err(
                        span,
                        format!(
                            "{key}: {release} has no {flag} flag; it needs firewall = \"docker28\" or \"docker29\""
                        ),
                    );
                }
            }
            for n in &self.spec.networks {
                if let Some(g) = &n.gateway_mode {
                    self.err(
                        g.span(),
                        format!("gateway_mode: {release} has no gateway modes; it needs firewall = \"docker28\" or \"docker29\""),
                    );
                }
            }
        }
        for n in &self.spec.networks {
            // parseNetworkOptions (bridge_linux.go @v28.5.2).
            if let (Some(g), false) = (&n.gateway_mode, n.internal) {
                if *g.get_ref() == GatewayMode::Isolated {
                    self.err(g.span(), "gateway mode 'isolated' can only be used for an internal network");
                }
            }
        }
        // `--firewall-backend` came with Docker 29 (daemon/config: FirewallBackend).
        if let Some(b) = &d.backend {
            if *b.get_ref() == Backend::Nftables && d.firewall() != Firewall::Docker29 {
                let release = match d.firewall() {
                    Firewall::Docker1 => "Docker 1.6.2",
                    Firewall::Docker20 => "Docker 20.10.24",
                    Firewall::Docker28 => "Docker 28.5.2",
                    Firewall::Docker29 => "Docker 29",
                };
                self.err(
                    b.span(),
                    format!(
                        "backend = \"nftables\" needs firewall = \"docker29\": {release} (firewall = \"{}\") has no --firewall-backend, only iptables",
                        d.firewall()
                    ),
                );
            }
        }
        if d.firewall() == Firewall::Docker1 {
            if let Some(u) = &d.userland_proxy {
                self.err(
                    u.span(),
                    "userland_proxy: Docker 1.6.2 has no --userland-proxy flag; it needs firewall = \"docker20\"",
                );
            }
            if let Some(n) = self.spec.networks.first() {
                self.err(
                    n.name.span(),
                    "user-defined networks ([[network]]) came with libnetwork: they need firewall = \"docker20\"",
                );
            }
            if let Some(f) = &self.spec.host.forwarding {
                self.err(
                    f.span(),
                    "forwarding: the FORWARD policy Docker 20.10 sets depends on it; Docker 1.6.2 never sets one (firewall = \"docker20\")",
                );
            }
        }
    }

    fn host(&mut self) {
        let mut seen: HashMap<&str, ()> = HashMap::new();
        for b in &self.spec.host.bridges {
            let name = b.name.get_ref().as_str();
            if !valid_ifname(name) {
                self.err(
                    b.name.span(),
                    format!(
                        "invalid bridge name {name:?}: an interface name has 1 to 15 characters, no '/', ':' or spaces"
                    ),
                );
            } else if RESERVED_HOST_LINKS.contains(&name) {
                self.err(b.name.span(), format!("bridge name {name:?} is taken by the lab's host namespace"));
            } else if seen.insert(name, ()).is_some() {
                self.err(b.name.span(), format!("bridge {name} is defined twice"));
            }
        }
    }

    fn networks(&mut self) {
        let mut seen: HashSet<&str> = HashSet::new();
        // Earlier subnets by (first address, prefix), for overlap lookups.
        let mut subnets: BTreeMap<(u32, u8), (usize, &str)> = BTreeMap::new();
        for (i, n) in self.spec.networks.iter().enumerate() {
            let name = n.name.get_ref().as_str();
            if PREDEFINED_NETWORKS.contains(&name) {
                self.err(n.name.span(), format!("operation is not permitted on predefined {name} network"));
                continue;
            }
            if !seen.insert(name) {
                self.err(n.name.span(), format!("network with name {name} already exists"));
                continue;
            }
            let subnet = n.subnet.as_ref().map(|s| s.get_ref().0);
            // The docker CLI's consolidateIpam, in its words.
            if let (Some(sub), Some(gw)) = (subnet, &n.gateway) {
                if !sub.contains(gw.get_ref().0) {
                    self.err(gw.span(), format!("no matching subnet for gateway {}", gw.get_ref()));
                }
            }
            if let Some(r) = &n.ip_range {
                match subnet {
                    None => self.err(r.span(), "every ip-range or gateway must have a corresponding subnet"),
                    Some(sub) if !r.get_ref().0.is_subnet_of(sub) => {
                        self.err(r.span(), format!("no matching subnet for range {}", r.get_ref()))
                    }
                    _ => {}
                }
            }
            if let (Some(gw), None) = (&n.gateway, subnet) {
                self.err(gw.span(), "every ip-range or gateway must have a corresponding subnet");
            }
            if let Some(b) = &n.bridge {
                if !valid_ifname(b.get_ref()) {
                    self.err(b.span(), format!("invalid bridge name {:?}", b.get_ref()));
                }
            }
            if let Some(sub) = subnet {
                // Docker fails the create on the first overlap it meets.
                if let Some(other) = overlapping(&subnets, sub) {
                    self.err(
                        n.subnet.as_ref().unwrap().span(),
                        format!("Pool overlaps with other one on this address space: {sub} overlaps network {other}"),
                    );
                }
                subnets.entry((u32::from(sub.network()), sub.prefix())).or_insert((i, name));
            }
        }
    }

    fn containers_and_steps(&mut self) {
        let spec = self.spec;
        // Containers known so far, in creation order: a reference must name
        // one created before it, as with Docker.
        let mut known = Known::default();
        for c in &spec.containers {
            self.container(c, &known);
            known.push(c);
        }
        for e in &spec.expects {
            self.expect(e, &known);
        }
        for step in &spec.steps {
            let action = *step.action.get_ref();
            match (&step.container, action) {
                (None, a) if a.needs_container() => {
                    self.err(step.action.span(), format!("step {a:?} needs a container", a = a.to_string()));
                }
                (Some(sc), StepAction::Run) => match sc.get_ref() {
                    StepContainer::Inline(c) => {
                        self.container(c, &known);
                        known.push(c);
                    }
                    StepContainer::Name(_) => self.err(
                        sc.span(),
                        "step \"run\" needs the container as a table: [step.container] with name = ...",
                    ),
                },
                (Some(sc), a) if a.needs_container() => match sc.get_ref() {
                    StepContainer::Name(n) => {
                        if !known.contains(n) {
                            self.err(sc.span(), format!("No such container: {}", short(n)));
                        } else if a == StepAction::Remove {
                            // Gone for every later reference, and its name is free again.
                            known.remove(n);
                        } else if let Some(net) = &step.network {
                            match a {
                                StepAction::Connect => known.connect(n, net.get_ref()),
                                StepAction::Disconnect => known.disconnect(n, net.get_ref()),
                                _ => {}
                            }
                        }
                    }
                    StepContainer::Inline(_) => self.err(
                        sc.span(),
                        format!("step {:?} names an existing container: container = \"NAME\"", a.to_string()),
                    ),
                },
                (Some(sc), a) => self.err(sc.span(), format!("step {:?} takes no container", a.to_string())),
                (None, _) => {}
            }
            match (&step.network, action.needs_network()) {
                (None, true) => self.err(step.action.span(), format!("step {:?} needs a network", action.to_string())),
                (Some(n), true) => self.network_ref(n.span(), n.get_ref()),
                (Some(n), false) => self.err(n.span(), format!("step {:?} takes no network", action.to_string())),
                (None, false) => {}
            }
            self.step_fields(step);
            if let (Some(ip), false) = (&step.ip, action == StepAction::Connect) {
                self.err(ip.span(), format!("step {:?} takes no ip (only \"connect\" does)", action.to_string()));
            }
            self.flow_step(step, &known);
            for e in &step.expects {
                self.expect(e, &known);
            }
        }
    }

    /// A `flow` step's keys (`name`, `from`, `to`, `probe`, `interval_ms`),
    /// which no other step takes.
    fn flow_step(&mut self, step: &'a Step, known: &Known) {
        let action = *step.action.get_ref();
        if action != StepAction::Flow {
            let keys = [
                ("name", step.name.as_ref().map(|x| x.span())),
                ("from", step.from.as_ref().map(|x| x.span())),
                ("to", step.to.as_ref().map(|x| x.span())),
                ("probe", step.probe.as_ref().map(|x| x.span())),
                ("interval_ms", step.interval_ms.as_ref().map(|x| x.span())),
            ];
            for (key, span) in keys {
                if let Some(span) = span {
                    self.err(span, format!("step {:?} takes no {key} (only \"flow\" does)", action.to_string()));
                }
            }
            return;
        }
        let at = step.action.span();
        match &step.name {
            None => self.err(at.clone(), "step \"flow\" needs a name, for [[expect]] flow = \"NAME\""),
            Some(n) => {
                if self.flows.insert(n.get_ref().as_str(), step).is_some() {
                    self.err(n.span(), format!("flow {} is defined twice", short(n.get_ref())));
                }
            }
        }
        match &step.from {
            None => self.err(at.clone(), "step \"flow\" needs from (the sender)"),
            Some(f) if !self.is_node(f.get_ref(), known) => self.err(
                f.span(),
                format!(
                    "unknown node {:?}: from must be a container, a machine, \"host\" or \"external\"",
                    short(f.get_ref())
                ),
            ),
            Some(_) => {}
        }
        match &step.to {
            None => self.err(at.clone(), "step \"flow\" needs to (the target)"),
            Some(t) => self.target(t, known),
        }
        match &step.probe {
            None => self.err(at, "step \"flow\" needs probe = \"udp:PORT\""),
            Some(p) if !matches!(p.get_ref(), ProbeSpec::Udp(_)) => {
                self.err(p.span(), "a flow is UDP datagrams from one source port: probe = \"udp:PORT\"")
            }
            Some(_) => {}
        }
        if let Some(i) = &step.interval_ms {
            if !(1..=60_000).contains(i.get_ref()) {
                self.err(i.span(), "interval_ms must be between 1 and 60000");
            }
        }
    }

    /// An expectation's or a flow's `to`: a node (`name@network` picks a
    /// network) or an IP address.
    fn target(&mut self, to: &Sp<String>, known: &Known) {
        let t = to.get_ref().as_str();
        if t.parse::<Ipv4Addr>().is_ok() {
            return;
        }
        let (node, net) = match t.split_once('@') {
            Some((n, net)) => (n, Some(net)),
            None => (t, None),
        };
        if !self.is_node(node, known) {
            self.err(
                to.span(),
                format!(
                    "unknown node {:?}: to must be a container, a machine, \"host\", \"external\" or an IP address",
                    short(node)
                ),
            );
        } else if let Some(net) = net {
            self.network_ref(to.span(), net);
        }
    }

    fn network_ref(&mut self, span: Range<usize>, name: &str) {
        if name != "bridge" && !self.network_names.contains(name) {
            self.err(span, format!("network {} not found", short(name)));
        }
    }

    fn container(&mut self, c: &Container, known: &Known) {
        let name = c.name();
        let docker1 = self.spec.daemon.firewall() == Firewall::Docker1;
        if !valid_container_name(name) {
            self.err(
                c.name.span(),
                format!("Invalid container name ({}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", short(name)),
            );
        } else if RESERVED_NODES.contains(&name) {
            self.err(c.name.span(), format!("container name {name:?} is reserved for the lab's {name} node"));
        } else if self.spec.machines.iter().any(|m| m.name() == name) {
            self.err(c.name.span(), format!("container name {name:?} is taken by a [[machine]]"));
        } else if known.contains(name) {
            self.err(c.name.span(), format!(
                "Conflict. The name \"{name}\" is already in use by container {}. You have to delete (or rename) that container to be able to reuse that name.",
                container_id(name)
            ));
        }
        let modes = c.networks();
        for m in &modes {
            match m {
                // Docker 1.6.2 looks the container up only at start
                // (getNetworkedContainer): the plan reports it there.
                NetworkMode::Container(_) if docker1 => {}
                NetworkMode::Container(other) => {
                    if other == name {
                        self.err(c.network_span(), "cannot join own network namespace (--net=container:<self>)");
                    } else if !known.contains(other) {
                        self.err(c.network_span(), format!("No such container: {}", short(other)));
                    }
                }
                NetworkMode::Named(n) => self.network_ref(c.network_span(), n),
                _ => {}
            }
        }
        let exclusive =
            modes.iter().find(|m| matches!(m, NetworkMode::Host | NetworkMode::None | NetworkMode::Container(_)));
        if let (Some(m), true) = (exclusive, modes.len() > 1) {
            self.err(c.network_span(), format!("network mode {m} cannot be combined with other networks"));
        }
        let first = modes.first().cloned().unwrap_or(NetworkMode::Bridge);
        if docker1 {
            if c.publish_all {
                self.err(c.name.span(), "publish_all: -P is modelled for firewall = \"docker20\" only");
            }
            if let Some((_, ip)) = c.ips.iter().next() {
                self.err(ip.span(), "ips: addresses on further networks need firewall = \"docker20\"");
            }
        }
        for (net, ip) in &c.ips {
            let further = modes.iter().skip(1).any(|m| match m {
                NetworkMode::Bridge => net == "bridge",
                NetworkMode::Named(n) => n == net,
                _ => false,
            });
            if !further {
                self.err(ip.span(), format!("ips: {net} is not one of the networks after the first in `network`"));
            }
        }
        if !c.links.is_empty() {
            match first {
                NetworkMode::Host => self.err(c.links[0].span(), "Conflicting options: --net=host can't be used with links. This would result in undefined behavior."),
                NetworkMode::Container(_) => self.err(c.links[0].span(), "Conflicting options: --net=container can't be used with links. This would result in undefined behavior."),
                _ => {}
            }
        }
        for l in &c.links {
            let target = &l.get_ref().container;
            if target == name {
                // Docker 1.6.2 registers it; the start then finds the child not running.
                if !docker1 {
                    self.err(l.span(), "Cannot link to itself");
                }
            } else if !known.contains(target) {
                self.err(l.span(), format!("Could not get container for {}", short(target)));
            }
        }
        if let Some(ip) = &c.ip {
            if !matches!(first, NetworkMode::Bridge | NetworkMode::Named(_)) {
                self.err(ip.span(), format!("ip: a container on network {first} gets no address of its own"));
            }
        }
        // These conflicts came with Docker 1.7 and 1.8 (runconfig.Parse);
        // Docker 1.6.2 ignores the MAC and the ports of a container that
        // has no network of its own.
        if let (Some(mac), false) = (&c.mac, docker1) {
            if matches!(first, NetworkMode::Host | NetworkMode::Container(_)) {
                self.err(mac.span(), "Conflicting options: --mac-address and the network mode (--net).");
            }
        }
        if let (Some(p), NetworkMode::Container(_), false) = (c.publish.first(), &first, docker1) {
            self.err(p.span(), "Conflicting options: -p, -P, --publish-all, --publish and the network mode (--net).");
        }
    }

    /// A node name: the lab's own, a container created by now, or a machine.
    fn is_node(&self, n: &str, known: &Known) -> bool {
        RESERVED_NODES.contains(&n) || known.contains(n) || self.spec.machines.iter().any(|m| m.name() == n)
    }

    fn expect(&mut self, e: &Expect, known: &Known) {
        let spec = self.spec;
        let is_node =
            |n: &str| RESERVED_NODES.contains(&n) || known.contains(n) || spec.machines.iter().any(|m| m.name() == n);
        // The probe: its own, or its flow's.
        let probe = match (&e.flow, &e.from, &e.probe) {
            (Some(flow), from, probe) => {
                for (key, span) in
                    [("from", from.as_ref().map(|f| f.span())), ("probe", probe.as_ref().map(|p| p.span()))]
                {
                    if let Some(span) = span {
                        self.err(span, format!("an expectation on a flow takes no {key}: the flow step gives it"));
                    }
                }
                if let Some(v) = &e.via {
                    self.err(v.span(), "an expectation on a flow takes no via: the flow's datagrams are routed");
                }
                let name = flow.get_ref().as_str();
                match self.flows.get(name) {
                    None => {
                        self.err(
                            flow.span(),
                            format!(
                                "no flow {:?} runs here: name a `flow` step before this expectation (a step's own expectations come after it)",
                                short(name)
                            ),
                        );
                        None
                    }
                    Some(step) => step.probe.as_ref().map(|p| *p.get_ref()),
                }
            }
            (None, from, probe) => {
                match from {
                    None => self.err(e.to.span(), "this expectation has no from (the sender), nor a flow"),
                    Some(f) if !is_node(f.get_ref()) => self.err(
                        f.span(),
                        format!(
                            "unknown node {:?}: from must be a container, a machine, \"host\" or \"external\"",
                            short(f.get_ref())
                        ),
                    ),
                    Some(_) => {}
                }
                if probe.is_none() {
                    self.err(
                        e.to.span(),
                        "this expectation has no probe: add probe = \"icmp\", \"tcp:PORT\" or \"udp:PORT\"",
                    );
                }
                probe.as_ref().map(|p| *p.get_ref())
            }
        };
        self.target(&e.to, known);
        // A flow's datagrams arrive at a node's responder.
        if e.flow.is_some() && (e.to.get_ref().parse::<Ipv4Addr>().is_ok() || e.to.get_ref().contains('@')) {
            self.err(e.to.span(), "to of a flow expectation names the node whose responder the datagrams reach");
        }
        if e.to.get_ref().parse::<Ipv4Addr>() == Ok(Ipv4Addr::BROADCAST)
            && !matches!(probe, Some(ProbeSpec::Udp(_)) | None)
        {
            self.err(e.to.span(), "a broadcast (255.255.255.255) needs a udp probe: TCP has no broadcasts and Linux ignores broadcast pings");
        }
        if let Some(src) = &e.source {
            let s = src.get_ref().as_str();
            if s.parse::<Ipv4Addr>().is_err() && !is_node(s) {
                self.err(
                    src.span(),
                    format!("unknown node {:?}: source must be a node name or an IP address", short(s)),
                );
            }
            if matches!(probe, Some(ProbeSpec::Icmp)) {
                self.err(src.span(), "source is checked by a responder: it needs a tcp or udp probe");
            }
            // A TCP responder records a peer only after a whole handshake,
            // and a handshake needs the answer that was lost.
            let blocked = e.result.as_ref().map(|r| *r.get_ref()) == Some(Verdict::Blocked);
            if blocked && matches!(probe, Some(ProbeSpec::Tcp(_))) {
                self.err(
                    src.span(),
                    "source with result = \"blocked\" needs a udp probe: a TCP responder sees nobody before the handshake, which needs the lost answer",
                );
            }
        }
        self.via(e, known);
    }

    /// `via`: a neighbour on a link the sender shares with it. Only the
    /// host is one: the uplink from `external`, a bridge from a container.
    fn via(&mut self, e: &Expect, known: &Known) {
        let (Some(v), Some((node, net)), Some(from)) = (&e.via, e.via(), &e.from) else { return };
        let from = from.get_ref().as_str();
        if node != "host" {
            self.err(
                v.span(),
                format!(
                    "via {:?}: the neighbour must be \"host\" (or \"host@NETWORK\" from a container)",
                    short(v.get_ref())
                ),
            );
            return;
        }
        match from {
            "host" => self.err(
                v.span(),
                "via: the probe already starts on the host; via is for its neighbours (a container or \"external\")",
            ),
            "external" => {
                if let Some(net) = net {
                    self.err(
                        v.span(),
                        format!(
                            "via = \"host@{}\": external shares only the uplink with the host; use via = \"host\"",
                            short(net)
                        ),
                    );
                }
            }
            c if known.contains(c) => {
                if let Some(net) = net {
                    if net != "bridge" && !self.network_names.contains(net) {
                        self.err(v.span(), format!("via: network {} not found", short(net)));
                        return;
                    }
                }
                match known.bridge_networks(c) {
                    Err(why) => self.err(v.span(), format!("via: container {c} shares no link with the host ({why})")),
                    Ok(nets) => match net {
                        None if nets.is_empty() => {
                            self.err(v.span(), format!("via: container {c} is on no network here"))
                        }
                        Some(net) if !nets.contains(&net) => self.err(
                            v.span(),
                            format!("via: container {c} is not connected to network {} here", short(net)),
                        ),
                        _ => {}
                    },
                }
            }
            m if self.spec.machines.iter().any(|x| x.name() == m) => {
                self.err(v.span(), "via: a machine sends by its own routes; via is for a container or \"external\"")
            }
            // An unknown sender is reported for `from`.
            _ => {}
        }
    }

    /// `[host] sysctls` and `rules`: what the host had before the daemon.
    fn host_before(&mut self) {
        let spec = self.spec;
        let mut devices: Vec<&str> = vec!["all", "default", "lo", "eth0"];
        if !spec.host.routes.is_empty() {
            devices.push(super::HOST_DUMMY);
        }
        devices.extend(spec.host.bridges.iter().map(|b| b.name.get_ref().as_str()));
        for (k, v) in &spec.host.sysctls.0 {
            let key = k.get_ref().as_str();
            if let Err(e) = sysctl_key(key) {
                self.err(k.span(), e);
                continue;
            }
            if key == "net.ipv4.ip_local_port_range" {
                self.err(
                    k.span(),
                    "net.ipv4.ip_local_port_range: bridgelab's port allocator does not read it yet (Docker's dynamic ports would differ)",
                );
                continue;
            }
            if let Some(dev) = sysctl_device(key) {
                if !devices.contains(&dev) {
                    self.err(
                        k.span(),
                        format!(
                            "sysctl {key}: the host has no interface {dev} before the daemon starts (it has {})",
                            devices.join(", ")
                        ),
                    );
                }
            }
            let _ = v;
        }
    }

    /// `[[machine]]`: names, where they are attached, their addresses.
    fn machines(&mut self) {
        let spec = self.spec;
        let mut names: HashSet<&str> = HashSet::new();
        let mut taken: HashMap<Ipv4Addr, &str> = HashMap::new();
        taken.insert(super::UPLINK_HOST.ip(), "the host's uplink");
        taken.insert(super::UPLINK_EXTERNAL.ip(), "the external node");
        for b in &spec.host.bridges {
            if let Some(a) = &b.address {
                taken.insert(a.get_ref().ip(), "the bridge's own address");
            }
        }
        for m in &spec.machines {
            let name = m.name();
            if !valid_container_name(name) {
                self.err(
                    m.name.span(),
                    format!(
                        "invalid machine name {:?}: use [a-zA-Z0-9][a-zA-Z0-9_.-]+, as for containers",
                        short(name)
                    ),
                );
            } else if RESERVED_NODES.contains(&name) {
                self.err(m.name.span(), format!("machine name {name:?} is reserved for the lab's {name} node"));
            } else if !names.insert(name) {
                self.err(m.name.span(), format!("machine {name} is defined twice"));
            }
            let attach = m.attach.get_ref().as_str();
            let subnet = if m.on_uplink() {
                Some(super::UPLINK_HOST.network())
            } else {
                match spec.host.bridges.iter().find(|b| b.name.get_ref() == attach) {
                    Some(b) => b.address.as_ref().map(|a| a.get_ref().network()),
                    None => {
                        self.err(
                            m.attach.span(),
                            format!("unknown attach {:?}: \"uplink\" or the name of a [[host.bridge]]", short(attach)),
                        );
                        continue;
                    }
                }
            };
            let addr = *m.address.get_ref();
            if let Some(sub) = subnet {
                if !sub.contains(addr.ip()) {
                    self.err(m.address.span(), format!("address {addr} is outside {attach}'s subnet {sub}"));
                    continue;
                }
                if addr.ip() == sub.network() || addr.ip() == sub.broadcast() {
                    self.err(m.address.span(), format!("address {addr} is the network or broadcast address of {sub}"));
                    continue;
                }
                if addr.network() != sub {
                    self.err(
                        m.address.span(),
                        format!("address {addr}: its prefix must be {attach}'s, /{}", sub.prefix()),
                    );
                    continue;
                }
            } else if !m.routes.is_empty() {
                self.err(m.routes[0].span(), format!("routes: bridge {attach} has no address for them to go via"));
            }
            if let Some(other) = taken.insert(addr.ip(), name) {
                let other =
                    if names.contains(other) && other != name { format!("machine {other}") } else { other.to_string() };
                self.err(m.address.span(), format!("address {} is taken by {other}", addr.ip()));
            }
            if let Some(gw) = &m.gateway {
                if !addr.network().contains(gw.get_ref().0) || gw.get_ref().0 == addr.ip() {
                    self.err(gw.span(), format!("gateway {} is not a neighbour on {}", gw.get_ref(), addr.network()));
                }
            }
            for r in &m.routes {
                let (ip, net) = (r.get_ref().ip(), r.get_ref().network());
                if ip != net.network() {
                    self.err(r.span(), format!("route {}: not a subnet, its subnet is {net}", r.get_ref()));
                }
            }
        }
    }

    /// The keys of `sysctl` and `host-rules` steps, and only theirs.
    fn step_fields(&mut self, step: &super::Step) {
        let action = *step.action.get_ref();
        let name = action.to_string();
        let only = |c: &mut Self, span: Option<Range<usize>>, key: &str, owner: &str| {
            if let Some(sp) = span {
                c.err(sp, format!("step {name:?} takes no {key} (only \"{owner}\" does)"));
            }
        };
        if action != StepAction::Sysctl {
            only(self, step.key.as_ref().map(|k| k.span()), "key", "sysctl");
            only(self, step.value.as_ref().map(|k| k.span()), "value", "sysctl");
            only(self, step.node.as_ref().map(|k| k.span()), "node", "sysctl");
        }
        if action != StepAction::HostRules {
            only(self, step.rules.as_ref().map(|k| k.span()), "rules", "host-rules");
            only(self, step.noflush.as_ref().map(|k| k.span()), "noflush", "host-rules");
        }
        match action {
            StepAction::Sysctl => {
                match &step.key {
                    None => self.err(step.action.span(), "step \"sysctl\" needs a key"),
                    Some(k) => {
                        if let Err(e) = sysctl_key(k.get_ref()) {
                            self.err(k.span(), e);
                        }
                    }
                }
                if step.value.is_none() {
                    self.err(step.action.span(), "step \"sysctl\" needs a value");
                }
                if let Some(n) = &step.node {
                    let n_ = n.get_ref().as_str();
                    if !RESERVED_NODES.contains(&n_) && !self.spec.machines.iter().any(|m| m.name() == n_) {
                        self.err(
                            n.span(),
                            format!(
                                "node {:?}: a sysctl step writes on \"host\", \"external\" or a machine",
                                short(n_)
                            ),
                        );
                    }
                }
            }
            // The text itself is loaded by the plan, which points into it.
            StepAction::HostRules if step.rules.is_none() => {
                self.err(step.action.span(), "step \"host-rules\" needs rules (iptables-restore text)")
            }
            _ => {}
        }
    }

    fn probe(&mut self) {
        let t: &Sp<u64> = &self.spec.probe.timeout_ms;
        if *t.get_ref() == 0 {
            self.err(t.span(), "timeout_ms must be at least 1");
        }
    }
}

/// A sysctl of a network namespace that this kernel has: `net.*`, and
/// with an interface's name in it, the same key for `all` (or `default`)
/// exists. (Reads the names under `/proc/sys/net`, never a value.)
pub fn sysctl_key(key: &str) -> Result<(), String> {
    if !key.starts_with("net.") || key.contains("..") || key.contains('/') || key.ends_with('.') {
        return Err(format!("sysctl {:?}: only net.* sysctls belong to a network namespace", short(key)));
    }
    let mut parts: Vec<&str> = key.split('.').collect();
    if sysctl_device(key).is_some() {
        parts[3] = if parts[2] == "neigh" { "default" } else { "all" };
    }
    let path = std::path::Path::new("/proc/sys").join(parts.join("/"));
    if !path.is_file() {
        return Err(format!("sysctl {key}: no such sysctl in a network namespace of this kernel"));
    }
    Ok(())
}

/// The interface a per-interface sysctl names (`net.ipv4.conf.eth0.forwarding`).
pub fn sysctl_device(key: &str) -> Option<&str> {
    let parts: Vec<&str> = key.split('.').collect();
    match parts.as_slice() {
        ["net", "ipv4" | "ipv6", "conf" | "neigh", dev, _, ..] => Some(dev),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_names_follow_dockers_rule() {
        for ok in ["web", "a1", "db_1.x-y", "9lives"] {
            assert!(valid_container_name(ok), "{ok}");
        }
        for bad in ["a", "", "-web", "_x", "we b", "wé"] {
            assert!(!valid_container_name(bad), "{bad}");
        }
    }

    #[test]
    fn interface_names_follow_the_kernels_rule() {
        assert!(valid_ifname("docker0"));
        assert!(valid_ifname("br-0123456789ab"));
        assert!(!valid_ifname("a-very-long-name0"));
        assert!(!valid_ifname("a/b"));
        assert!(!valid_ifname(""));
    }
}
