//! Docker 1.6.2's daemon, as far as addresses and links go:
//! `bridge.InitDriver` (bridge address, `--fixed-cidr`, gateway reservation)
//! and, per started container, `Allocate` (IP, MAC) and the native exec
//! driver's veth setup (`veth` + 7 hex characters, `--mtu` on both ends).

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::ops::Range;

use ipnetwork::Ipv4Network;

use super::byname::{ByName, Mappings};
use super::firewall::docker1::Docker1;
use super::firewall::{BridgeFacts, FirewallLayout, PortMapping, RuleRef, Ruleset};
use super::ipallocator::IpAllocator;
use super::limits::{self, PlanSize, BRIDGE_MAX_PORTS, MAX_PLAN_SIZE, MAX_PUBLISHED_PORTS};
use super::portallocator::{PortAllocator, NETNS_EPHEMERAL_RANGE};
use super::*;
use crate::scenario::{Container, Diagnostic, HostBridge, Proto, Scenario, DEFAULT_BRIDGE};

/// `InitDriver`'s candidate bridge addresses, in Docker's order.
pub const BRIDGE_CANDIDATES: [&str; 12] = [
    "172.17.42.1/16",
    "10.0.42.1/16",
    "10.1.42.1/16",
    "10.42.42.1/16",
    "172.16.42.1/24",
    "172.16.43.1/24",
    "172.16.44.1/24",
    "10.0.42.1/24",
    "10.0.43.1/24",
    "192.168.42.1/24",
    "192.168.43.1/24",
    "192.168.44.1/24",
];

/// Docker's `NetworkOverlaps`: one contains the other's first address.
fn overlaps(a: Ipv4Network, b: Ipv4Network) -> bool {
    b.contains(a.network()) || a.contains(b.network())
}

// Docker 1.6.2 gives its bridge a random locally administered MAC
// (`randMacAddr`: bytes below 0xff, multicast bit cleared, local bit set),
// made as `host::admin_bridge_mac` makes one: stable per name.
use super::host::{admin_bridge_mac as bridge_mac, connected, loopback, uplink_end, via};

struct Builder<'a> {
    s: &'a Scenario,
    rules: Ruleset,
    ports: PortAllocator,
    mappings: Mappings,
    host: NodePlan,
    /// Addresses of the host namespace's links, known once the daemon has
    /// started (veths added later have none): where a proxy can bind.
    host_ips: std::collections::HashSet<Ipv4Addr>,
    external: NodePlan,
    containers: ByName<ContainerPlan>,
    nodes: ByName<NodePlan>,
    veth_names: BTreeSet<String>,
    errors: Vec<Diagnostic>,
    bridge: Option<BridgePlan>,
    ipam: Option<IpAllocator>,
    /// Running containers per namespace (node name): a namespace goes with
    /// the last of them, found by a lookup rather than a scan per stop.
    netns_users: HashMap<String, usize>,
    /// Every container the daemon knows, as the scenario gave it.
    specs: ByName<Container>,
    /// Rules each container's start installed (ports, links), removed again
    /// when it stops, as Docker's `Unmap` and link `Disable` do.
    installed: HashMap<String, Vec<RuleRef>>,
    /// Shortcuts along `container:` chains, for links (see `link_child`).
    link_shortcuts: HashMap<String, LinkShortcut>,
    /// Port mappings and rules that failed starts made and gave back: work
    /// the plan does not keep, so [`PlanSize`] does not see it.
    given_back: usize,
    /// Past [`MAX_GIVEN_BACK`]: no more containers are started.
    too_big: bool,
    /// The uplink's segment and the `[[machine]]`s' namespaces.
    machines: Vec<NodePlan>,
}

/// Where a link's walk along `container:` modes ends.
enum LinkEnd {
    /// The container linked to.
    Child(String),
    /// A name no container has (any more).
    Missing(String),
    /// A host-mode container: links to it are refused.
    Host,
}

/// What an earlier walk found from a name on a `container:` chain.
#[derive(Clone)]
enum LinkShortcut {
    /// The walk goes on from there.
    To(String),
    /// It ends there, the name where a cycle closes.
    Cycle(String),
}

/// A failed start: where it points, and Docker's message without the
/// "Cannot start container NAME: " that `ContainerStart` puts before it.
type Failure = (Range<usize>, String);

pub fn plan(s: &Scenario) -> Result<Plan, Diagnostics> {
    let mut b = Builder::new(s);
    b.start_daemon();
    for c in &s.spec.containers {
        if b.too_big {
            break;
        }
        b.specs.push(c.clone());
        if let Err(d) = b.start(c, "start") {
            b.errors.push(d);
        }
    }
    let mut plan = b.snapshot()?;
    let mut size = PlanSize::default();
    size.add(s, &plan, "the start", || super::limits::heaviest(s, &plan))?;
    for (i, step) in s.spec.steps.iter().enumerate() {
        let action = b.step(step);
        let after = b.snapshot()?;
        size.add(s, &after, &format!("step {}", i + 1), || step.action.span())?;
        plan.steps.push(StepPlan { action, after });
    }
    Ok(plan)
}

impl<'a> Builder<'a> {
    fn new(s: &'a Scenario) -> Builder<'a> {
        let spec = &s.spec;
        let mut host = NodePlan { name: "host".into(), links: vec![loopback()], routes: vec![], sysctls: vec![] };
        host.links.push(uplink_end(UPLINK_HOST, "external", true));
        host.routes.push(via(None, UPLINK_EXTERNAL.ip(), "eth0"));
        host.routes.push(connected(UPLINK_HOST, "eth0"));
        if !spec.host.routes.is_empty() {
            // A port-less bridge swallows what is routed to it, as a dummy
            // device would; unlike `dummy` it is built into every kernel
            // bridgelab needs anyway. Without carrier its routes say `linkdown`.
            let mut l = Self::bridge_link(&s.name, HOST_DUMMY, None);
            l.mac = None;
            host.links.push(l);
            for r in &spec.host.routes {
                host.routes.push(RoutePlan {
                    dst: Some(r.get_ref().0),
                    via: None,
                    dev: HOST_DUMMY.into(),
                    connected: None,
                    scope_link: true,
                    linkdown: false,
                });
            }
        }
        for hb in &spec.host.bridges {
            host.links.push(Self::bridge_link(&s.name, hb.name.get_ref(), hb.address.as_ref().map(|a| *a.get_ref())));
            if let Some(a) = &hb.address {
                host.routes.push(connected(*a.get_ref(), hb.name.get_ref()));
            }
        }
        let daemon = &spec.daemon;
        let mut sysctls = vec![Sysctl {
            key: "net.ipv4.ip_forward".into(),
            // A new namespace starts with forwarding off; Docker only ever writes "1".
            value: if daemon.ip_forward() { "1" } else { "0" }.into(),
            write: daemon.ip_forward(),
        }];

        // What the daemon and the firewall rely on without writing it: the
        // ephemeral range Docker reads for dynamic ports, and br_netfilter
        // handing bridged traffic to iptables (else icc = false blocks nothing).
        sysctls.push(Sysctl {
            key: "net.ipv4.ip_local_port_range".into(),
            value: format!("{}\t{}", NETNS_EPHEMERAL_RANGE.0, NETNS_EPHEMERAL_RANGE.1),
            write: false,
        });
        sysctls.push(Sysctl { key: BR_NETFILTER_SYSCTL.into(), value: "1".into(), write: false });
        // `[host] sysctls` were there before; Docker 1.6.2 writes ip_forward over them.
        host.sysctls = super::host::host_sysctls(s, sysctls, &[]);

        let mut external =
            NodePlan { name: "external".into(), links: vec![loopback()], routes: vec![], sysctls: vec![] };
        external.links.push(uplink_end(UPLINK_EXTERNAL, "host", false));
        external.routes.push(connected(UPLINK_EXTERNAL, "eth0"));
        for r in &spec.external.routes {
            external.routes.push(via(Some(r.get_ref().network()), UPLINK_HOST.ip(), "eth0"));
        }
        let machines = super::host::machine_nodes(s, &mut host, &mut external);
        Builder {
            s,
            machines,
            // The host's own rules come first; Docker's calls go over them.
            rules: super::host::rules_before(s).unwrap_or_default(),
            ports: PortAllocator::new(NETNS_EPHEMERAL_RANGE),
            mappings: Mappings::default(),
            host,
            host_ips: Default::default(),
            external,
            containers: ByName::default(),
            nodes: ByName::default(),
            veth_names: BTreeSet::new(),
            errors: vec![],
            bridge: None,
            ipam: None,
            specs: ByName::default(),
            netns_users: HashMap::new(),
            installed: HashMap::new(),
            link_shortcuts: HashMap::new(),
            given_back: 0,
            too_big: false,
        }
    }

    fn bridge_link(scenario: &str, name: &str, address: Option<IfaceAddr>) -> LinkPlan {
        LinkPlan {
            name: name.into(),
            kind: LinkKind::Bridge,
            mac: Some(bridge_mac(scenario, name)),
            mtu: None,
            mtu_expected: 1500,
            master: None,
            addresses: address.into_iter().collect(),
            up: true,
            hairpin: false,
        }
    }

    fn err(&mut self, span: Range<usize>, msg: impl Into<String>) {
        self.errors.push(Diagnostic::new(span, msg));
    }

    /// `bridge.InitDriver`: find or create the bridge and its address.
    fn init_driver(&mut self) -> Option<BridgePlan> {
        let spec = &self.s.spec;
        let d = &spec.daemon;
        if d.networking_disabled() {
            return None;
        }
        let name = d.bridge_name().to_string();
        let bridge_span = d.bridge.as_ref().map(|b| b.span()).unwrap_or(0..0);
        let existing: Option<&HostBridge> = spec.host.bridges.iter().find(|hb| *hb.name.get_ref() == name);
        if let Some(addr) = existing.and_then(|hb| hb.address.as_ref()) {
            let addr = *addr.get_ref();
            if let Some(bip) = &d.bip {
                // Only the address is compared, not the prefix; the existing one stays.
                if bip.get_ref().ip() != addr.ip() {
                    self.err(
                        bip.span(),
                        format!(
                            "Bridge ip ({}) does not match existing bridge configuration {}",
                            addr.ip(),
                            bip.get_ref().ip()
                        ),
                    );
                    return None;
                }
            }
            return Some(BridgePlan {
                name,
                address: addr,
                unaddressed: false,
                pool: d.fixed_cidr.as_ref().map(|f| f.get_ref().0).unwrap_or(addr.network()),
                origin: "existing bridge".into(),
            });
        }
        if existing.is_some() && name != DEFAULT_BRIDGE {
            self.err(bridge_span, format!("Interface {name} has no IPv4 addresses"));
            return None;
        }
        // configureBridge: --bip as given, else the first free candidate.
        let (address, origin) = match &d.bip {
            Some(bip) => (*bip.get_ref(), "--bip".to_string()),
            None => match self.free_candidate() {
                Some(found) => found,
                None => {
                    let span = spec
                        .host
                        .routes
                        .first()
                        .map(|r| r.span())
                        .or_else(|| spec.host.nameservers.first().map(|n| n.span()))
                        .unwrap_or(0..0);
                    self.err(span, format!("Could not find a free IP address range for interface '{name}'. Please configure its address manually and run 'docker -b {name}'"));
                    return None;
                }
            },
        };
        match self.host.links.iter_mut().find(|l| l.name == name) {
            // docker0 existed without an IPv4 address: Docker adds one.
            Some(l) => l.addresses.push(address),
            None => self.host.links.push(Self::bridge_link(&self.s.name, &name, Some(address))),
        }
        self.host.routes.push(connected(address, &name));
        let pool = d.fixed_cidr.as_ref().map(|f| f.get_ref().0).unwrap_or(address.network());
        Some(BridgePlan { name, address, unaddressed: false, pool, origin })
    }

    /// `InitDriver`: the bridge, the daemon's rules, a fresh IP allocator
    /// with the gateway reserved. On a daemon restart the bridge exists and
    /// rules already there are kept (Docker checks before inserting).
    fn start_daemon(&mut self) {
        if self.bridge.is_none() {
            self.bridge = self.init_driver();
        }
        self.host_ips = self.host.links.iter().flat_map(|l| l.addresses.iter().map(|a| a.ip())).collect();
        let Some(br) = self.bridge.clone() else { return };
        let d = &self.s.spec.daemon;
        if d.iptables() {
            // Docker turns --ip-masq off by itself when --iptables=false.
            let facts = BridgeFacts {
                name: br.name.clone(),
                address: br.address,
                icc: d.icc(),
                ip_masq: d.ip_masq(),
                internal: false,
            };
            Docker1.daemon_start(&mut self.rules, &facts);
        }
        self.ipam = match &d.fixed_cidr {
            Some(fixed) => match IpAllocator::with_subnet(br.address.0, fixed.get_ref().0) {
                Ok(a) => Some(a),
                Err(e) => {
                    self.errors.push(Diagnostic::new(fixed.span(), e.to_string()));
                    None
                }
            },
            None => Some(IpAllocator::new(br.address.0)),
        };
        if let Some(a) = self.ipam.as_mut() {
            // InitDriver reserves the gateway and ignores the result: a gateway
            // outside --fixed-cidr is simply not in the pool.
            let _ = a.request(Some(br.address.ip()));
        }
        self.ports = PortAllocator::new(NETNS_EPHEMERAL_RANGE);
    }

    /// One `[[step]]`; returns what it did, for reports. A start that fails
    /// is an error unless the step says it `fails` with Docker's message:
    /// either way the daemon has rolled the container back and goes on.
    fn step(&mut self, step: &crate::scenario::Step) -> String {
        use crate::scenario::{StepAction, StepContainer};
        let action = *step.action.get_ref();
        let span = step.action.span();
        let name = step
            .container
            .as_ref()
            .map(|c| c.get_ref().name().to_string())
            // A flow's label is its name.
            .or_else(|| step.name.as_ref().map(|n| n.get_ref().clone()))
            .unwrap_or_default();
        let mut failed = None;
        match action {
            StepAction::Stop => self.stop(&name, span),
            StepAction::Start => failed = self.start_named(&name, span, "start").err(),
            StepAction::Restart => {
                // Container.Restart: Stop, then Start; ContainerRestart words the error.
                self.stop(&name, span.clone());
                failed = self.start_named(&name, span, "restart").err();
            }
            StepAction::Remove => {
                self.stop(&name, span);
                self.containers.remove(&name);
                self.specs.remove(&name);
                // A chain through it ends there now.
                self.link_shortcuts.clear();
            }
            StepAction::Run => {
                if let Some(StepContainer::Inline(c)) = step.container.as_ref().map(|c| c.get_ref()) {
                    self.specs.push((**c).clone());
                    failed = self.start(c, "start").err();
                }
            }
            StepAction::FlushIptables => self.rules.flush_all(),
            // Traffic, not the daemon: the host stays as it is.
            StepAction::Flow => {}
            StepAction::HostRules => {
                if let Err((at, e)) = super::host::host_rules_step(self.s, step, &mut self.rules) {
                    self.err(at, e);
                }
            }
            StepAction::Sysctl => {
                let (node, key, value) = super::host::sysctl_step(step);
                let target = match node.as_str() {
                    "host" => Some(&mut self.host),
                    "external" => Some(&mut self.external),
                    m => self.machines.iter_mut().find(|n| n.name == m),
                };
                if let Some(n) = target {
                    let mut st = super::host::SysctlState { entries: std::mem::take(&mut n.sysctls) };
                    st.write(&key, &value);
                    n.sysctls = st.entries;
                }
            }
            StepAction::RestartDaemon => {
                // Shutting down stops every container (1.6.2 restarts none by
                // itself); the allocators live in memory and start afresh.
                let running: Vec<String> =
                    self.containers.iter().filter(|c| c.running).map(|c| c.name.clone()).collect();
                for n in running.iter().rev() {
                    self.stop(n, span.clone());
                }
                // The daemon writes ip_forward = 1 at every start (--ip-forward),
                // over a `sysctl` step that turned it off; never the FORWARD policy.
                if self.s.spec.daemon.ip_forward() {
                    let mut st = super::host::SysctlState { entries: std::mem::take(&mut self.host.sysctls) };
                    st.write("net.ipv4.ip_forward", "1");
                    self.host.sysctls = st.entries;
                }
                self.start_daemon();
            }
            StepAction::Connect | StepAction::Disconnect => {
                self.err(span, format!("`{action}` came with libnetwork: it needs firewall = \"docker20\""));
            }
        }
        let mut label = if name.is_empty() { action.to_string() } else { format!("{action} {name}") };
        if let Some(l) = super::host::step_label(step) {
            label = l;
        }
        match (failed, &step.fails) {
            (None, None) => {}
            (Some(d), None) => self.errors.push(d),
            (Some(d), Some(want)) if d.message == *want.get_ref() => label = format!("{label} (fails: {})", d.message),
            (Some(d), Some(want)) => {
                self.err(want.span(), format!("Docker fails this step with \"{}\", not as `fails` says", d.message))
            }
            (None, Some(want)) => self.err(want.span(), "Docker does not fail this step, as `fails` says it does"),
        }
        label
    }

    /// `docker start NAME` (and the start of `docker restart`).
    fn start_named(&mut self, name: &str, span: Range<usize>, verb: &str) -> Result<(), Diagnostic> {
        match self.specs.get(name).cloned() {
            Some(mut c) => {
                if self.containers.get(name).is_some_and(|x| x.running) {
                    return Ok(()); // `docker start` on a running container changes nothing
                }
                c.running = true;
                self.start(&c, verb)
            }
            None => Err(Diagnostic::new(span, format!("No such container: {name}"))),
        }
    }

    /// `docker stop`: the container's `cleanup` gives back what it holds.
    fn stop(&mut self, name: &str, span: Range<usize>) {
        match self.containers.get(name) {
            None => self.err(span, format!("No such container: {name}")),
            Some(c) if c.running => {
                self.release(name);
            }
            Some(_) => {}
        }
    }

    /// `Container.cleanup`, after a stop or a failed start: `ReleaseNetwork`
    /// (the bridge driver's `Release`: the port mapper's `Unmap` of each
    /// port, with its rules, and the address) and each link's `Disable`.
    /// The namespace goes with its last process: a `container:` container
    /// may keep it, with `eth0` and its address, after its maker stopped.
    /// Returns how many port mappings and rules it removed.
    fn release(&mut self, name: &str) -> usize {
        let Some(cp) = self.containers.get_mut(name) else { return 0 };
        let was_running = std::mem::replace(&mut cp.running, false);
        let netns = cp.netns.take();
        if let Some(ep) = std::mem::take(&mut cp.endpoints).into_iter().next() {
            if let Some(a) = self.ipam.as_mut() {
                a.release(ep.address.ip());
            }
        }
        let mappings = self.mappings.take_container(name);
        for m in &mappings {
            if let Some(ip) = m.host_v4() {
                self.ports.release(ip, m.proto, m.host_port);
            }
        }
        let rules = self.installed.remove(name).unwrap_or_default();
        self.rules.delete_all(&rules);
        let removed = mappings.len() + rules.len();
        let Some(ns) = netns.filter(|ns| ns != "host") else { return removed };
        if was_running {
            self.leave_netns(&ns);
        }
        if !self.netns_users.contains_key(&ns) {
            self.remove_node(&ns);
        }
        removed
    }

    /// The first candidate that overlaps neither a nameserver nor a route
    /// with a destination in the host's main table (the default route has none).
    fn free_candidate(&self) -> Option<(IfaceAddr, String)> {
        let spec = &self.s.spec;
        let nameservers: Vec<Ipv4Network> =
            spec.host.nameservers.iter().map(|n| Ipv4Network::new(n.get_ref().0, 32).expect("/32")).collect();
        let routes: Vec<Ipv4Network> = self.host.routes.iter().filter_map(|r| r.dst).collect();
        BRIDGE_CANDIDATES.iter().enumerate().find_map(|(i, c)| {
            let addr: IfaceAddr = c.parse().expect("valid candidate");
            let net = addr.network();
            let free = !nameservers.iter().any(|n| overlaps(net, *n)) && !routes.iter().any(|r| overlaps(net, *r));
            free.then(|| (addr, format!("candidate {} of {}", i + 1, BRIDGE_CANDIDATES.len())))
        })
    }

    fn veth_name(&mut self, container: &str) -> String {
        // Docker picks "veth" + 7 random hex digits, retrying on a clash.
        (0u32..)
            .map(|i| {
                format!("veth{:07x}", crate::stable_hash::fnv1a(&["veth", container, &i.to_string()]) & 0xfff_ffff)
            })
            .find(|n| self.veth_names.insert(n.clone()))
            .expect("a free name")
    }

    /// A new namespace for a container, named after it; while its previous
    /// namespace lives on (kept by a `container:` container), `NAME+2`,
    /// `NAME+3`, … (`+` is never part of a container name).
    fn new_node(&self, name: &str) -> NodePlan {
        let free = |n: &str| self.nodes.get(n).is_none();
        let node_name = if free(name) {
            name.to_string()
        } else {
            (2u32..).map(|i| format!("{name}+{i}")).find(|n| free(n)).expect("a free name")
        };
        NodePlan { name: node_name, links: vec![loopback()], routes: vec![], sysctls: vec![] }
    }

    /// `docker start` (or `run`), in `Container.Start`'s order: the network
    /// (`initializeNetworking`: `AllocateNetwork` takes the address, then
    /// each published port), the links (`setupLinkedContainers`), then the
    /// exec driver, which sets the MAC on `eth0`. Start's deferred `cleanup`
    /// undoes all of it on the first error: the container is not running,
    /// and the containers after it find it so. Docker's error names `verb`
    /// (`ContainerStart`: "Cannot start container %s: %s").
    fn start(&mut self, c: &Container, verb: &str) -> Result<(), Diagnostic> {
        let name = c.name().to_string();
        let mode = c.networks().into_iter().next().unwrap_or(NetworkMode::Bridge);
        self.put(ContainerPlan { name: name.clone(), mode, running: false, netns: None, endpoints: vec![] });
        if !c.running {
            return Ok(());
        }
        let links = self.register_links(c)?;
        match self.bring_up(c, &links) {
            Ok(()) => {
                if let Some(cp) = self.containers.get_mut(&name) {
                    cp.running = true;
                    if let Some(ns) = cp.netns.clone().filter(|ns| ns != "host") {
                        *self.netns_users.entry(ns).or_default() += 1;
                    }
                }
                Ok(())
            }
            Err((span, e)) => {
                // Docker does that work again for each start that fails
                // late; so does the simulator, within a bound.
                self.given_back += self.release(&name);
                if let Some(msg) = limits::over_given_back(self.given_back, &mut self.too_big) {
                    self.err(span.clone(), msg);
                }
                Err(Diagnostic::new(span, format!("Cannot {verb} container {name}: {e}")))
            }
        }
    }

    /// `Daemon.RegisterLinks`, at create. A link is stored under its alias
    /// (`RegisterLink` keeps a path that exists), so of two links with one
    /// alias only the first counts. A link to a `container:` container is a
    /// link to the container whose namespace it joins, and one that ends in
    /// host mode is refused. Returns (alias, child, span) in file order.
    fn register_links(&mut self, c: &Container) -> Result<Vec<(String, String, Range<usize>)>, Diagnostic> {
        let mut out: Vec<(String, String, Range<usize>)> = Vec::new();
        let mut aliases: std::collections::HashSet<&str> = std::collections::HashSet::new();
        for l in &c.links {
            let spec = l.get_ref();
            let child = match self.link_child(&spec.container) {
                LinkEnd::Child(child) => child,
                // Removed since: `docker rm` purged the link.
                LinkEnd::Missing(child) if child == spec.container => child,
                LinkEnd::Missing(child) => {
                    return Err(Diagnostic::new(l.span(), format!("Could not get container for {child}")))
                }
                LinkEnd::Host => {
                    return Err(Diagnostic::new(
                        l.span(),
                        "Conflicting options: --net=host can't be used with links. This would result in undefined behavior.",
                    ))
                }
            };
            if aliases.insert(&spec.alias) {
                out.push((spec.alias.clone(), child, l.span()));
            }
        }
        Ok(out)
    }

    /// Where `RegisterLinks`' walk along `container:` modes from `name`
    /// ends. Each walk leaves a shortcut at every name it passed, to where
    /// it ended, so that many links along one long chain stay linear. A
    /// shortcut holds while no container is removed (names are unique and
    /// a container's mode does not change): the end it points to is looked
    /// at again, as it may have been created since. Docker loops forever on
    /// a cycle of `container:` modes; the walk stops where it closes.
    fn link_child(&mut self, name: &str) -> LinkEnd {
        let mut passed: Vec<String> = Vec::new();
        let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
        let mut child = name.to_string();
        let end = loop {
            if let Some(LinkShortcut::Cycle(at)) = self.link_shortcuts.get(&child) {
                child = at.clone();
                break LinkEnd::Child(child.clone());
            }
            let Some(k) = self.specs.get(&child) else { break LinkEnd::Missing(child.clone()) };
            let next = match k.networks().into_iter().next() {
                Some(NetworkMode::Container(next)) => next,
                Some(NetworkMode::Host) => break LinkEnd::Host,
                _ => break LinkEnd::Child(child.clone()),
            };
            let next = match self.link_shortcuts.get(&child) {
                Some(LinkShortcut::To(to)) => to.clone(),
                _ => next,
            };
            seen.insert(child.clone());
            passed.push(std::mem::replace(&mut child, next));
            if seen.contains(&child) {
                break LinkEnd::Child(child.clone());
            }
        };
        // `child` is where the walk ended: every name it passed leads there.
        let shortcut = if seen.contains(&child) { LinkShortcut::Cycle(child) } else { LinkShortcut::To(child) };
        for p in passed {
            self.link_shortcuts.insert(p, shortcut.clone());
        }
        end
    }

    /// What `start` does, up to the first error: where it points and
    /// Docker's message.
    fn bring_up(&mut self, c: &Container, links: &[(String, String, Range<usize>)]) -> Result<(), Failure> {
        let name = c.name();
        let mode = c.networks().into_iter().next().unwrap_or(NetworkMode::Bridge);
        let netns = match &mode {
            NetworkMode::Host => "host".to_string(),
            NetworkMode::Container(other) => {
                // getNetworkedContainer; Daemon.Get's "no such id" for an unknown name.
                match self.containers.get(other) {
                    None => return Err((c.network_span(), format!("no such id: {other}"))),
                    Some(o) => match (&o.netns, o.running) {
                        (Some(ns), true) => ns.clone(),
                        _ => {
                            let e = format!("cannot join network of a non running container: {other}");
                            return Err((c.network_span(), e));
                        }
                    },
                }
            }
            // With `bridge = "none"` (NetworkDisabled), or none mode, only lo.
            NetworkMode::Bridge | NetworkMode::None | NetworkMode::Named(_) => {
                let mut node = self.new_node(name);
                let ns = node.name.clone();
                self.set(name, |cp| cp.netns = Some(ns.clone()));
                if let (NetworkMode::Bridge, Some(br), Some(ipam)) = (&mode, self.bridge.clone(), self.ipam.as_mut()) {
                    // `ip` is bridgelab's extension (1.6.2 had no --ip): it is
                    // requested as RestoreNetwork's RequestedIP is, through RequestIP.
                    let requested = c.ip.as_ref().map(|i| i.get_ref().0);
                    let span = c.ip.as_ref().map(|i| i.span()).unwrap_or_else(|| c.name.span());
                    let ip = ipam.request(requested).map_err(|e| (span, e.to_string()))?;
                    let ep = self.endpoint(c, &br, ip);
                    self.wire(&mut node, &ep);
                    self.set(name, |cp| cp.endpoints = vec![ep]);
                    self.nodes.push(node);
                    self.map_ports(c, ip, &br.name)?;
                } else {
                    self.nodes.push(node);
                }
                ns
            }
        };
        self.set(name, |cp| cp.netns = Some(netns));
        let parent_ip = self.containers.get(name).and_then(|cp| cp.ip());
        self.link_all(c, links, parent_ip)?;
        // The exec driver: libcontainer's NetworkSetMacAddress refuses a
        // multicast MAC inside the new namespace; the error comes back as a
        // libcontainer SystemError (code 8).
        if let (Some(mac), Some(_)) = (&c.mac, parent_ip) {
            if mac.get_ref().is_multicast() {
                let shown = mac.get_ref().allocated().unwrap_or_default();
                let e = format!("[8] System error: Multicast MAC Address is not supported: {shown}");
                return Err((mac.span(), e));
            }
        }
        Ok(())
    }

    /// A running container in `ns` has stopped.
    fn leave_netns(&mut self, ns: &str) {
        if let Some(n) = self.netns_users.get_mut(ns) {
            *n -= 1;
            if *n == 0 {
                self.netns_users.remove(ns);
            }
        }
    }

    /// A namespace goes: its node, and the host end of its `eth0`, looked
    /// for from the end (a daemon stops its newest containers first).
    fn remove_node(&mut self, ns: &str) {
        let Some(node) = self.nodes.remove(ns) else { return };
        for l in &node.links {
            if let LinkKind::Veth { peer_node, peer, .. } = &l.kind {
                if peer_node == "host" {
                    if let Some(i) = self.host.links.iter().rposition(|h| h.name == *peer) {
                        self.host.links.remove(i);
                    }
                }
            }
        }
    }

    /// Changes a known container's record.
    fn set(&mut self, name: &str, f: impl FnOnce(&mut ContainerPlan)) {
        if let Some(cp) = self.containers.get_mut(name) {
            f(cp);
        }
    }

    /// Records a container's state, in place if the daemon knew it.
    fn put(&mut self, cp: ContainerPlan) {
        match self.containers.get_mut(&cp.name) {
            Some(slot) => *slot = cp,
            None => self.containers.push(cp),
        }
    }

    /// Addresses a userland proxy can bind in the host namespace.
    fn host_address(&self, ip: Ipv4Addr) -> bool {
        ip.is_unspecified() || ip.is_loopback() || self.host_ips.contains(&ip)
    }

    /// `allocatePort` for each published port, in container-port order, then
    /// the port mapper: allocator, iptables `forward`, userland proxy.
    /// `AllocateNetwork` returns at the first port that fails.
    fn map_ports(&mut self, c: &Container, container_ip: Ipv4Addr, bridge: &str) -> Result<(), Failure> {
        let name = c.name();
        // The name once per container, not per port: a long name published
        // on 65,535 ports is neither copied nor hashed 65,535 times. What was
        // installed before a failure is recorded too, for the rollback.
        let mut installed = self.installed.remove(name).unwrap_or_default();
        let done = self.map_each_port(c, container_ip, bridge, &mut installed);
        if !installed.is_empty() {
            self.installed.insert(name.to_string(), installed);
        }
        done
    }

    /// The ports of [`map_ports`](Self::map_ports), their rules added to
    /// `installed`; the first failure ends it.
    fn map_each_port(
        &mut self,
        c: &Container,
        container_ip: Ipv4Addr,
        bridge: &str,
        installed: &mut Vec<RuleRef>,
    ) -> Result<(), Failure> {
        let name = c.name();
        let shared: std::sync::Arc<str> = name.into();
        for (cport, proto, hport, hip, span) in published_in_port_order(c, self.s.spec.daemon.default_ip()) {
            if self.mappings.len() >= MAX_PUBLISHED_PORTS {
                let why =
                    format!("bridgelab publishes at most {MAX_PUBLISHED_PORTS} ports in one lab, each with a proxy");
                // bridgelab's limit, not Docker's failure: an error that no
                // `fails` can expect, and the plan stops here.
                self.err(span, format!("Cannot start container {name}: {why}"));
                return Ok(());
            }
            // AllocatePort: a dynamic port is tried up to 10 times when
            // Map fails (proxy bind, iptables); an explicit one once.
            let hport = hport.filter(|p| *p != 0);
            let attempts = if hport.is_none() { 10 } else { 1 };
            let mut last_err = String::new();
            let mut mapped = false;
            for _ in 0..attempts {
                let port = match self.ports.request(hip, proto, hport) {
                    Ok(p) => p,
                    Err(e) => {
                        last_err = e.to_string();
                        break;
                    }
                };
                if let Some(e) = self.proxy_bind_error(hip, proto, port) {
                    self.ports.release(hip, proto, port);
                    last_err = e;
                    continue;
                }
                let m = PortMapping {
                    container: shared.clone(),
                    proto,
                    host_ip: hip.into(),
                    host_port: port,
                    container_ip,
                    container_port: cport,
                };
                if self.s.spec.daemon.iptables() {
                    match Docker1.map_port(&mut self.rules, bridge, &m) {
                        Ok(refs) => installed.extend(refs),
                        Err(e) => {
                            // Map's deferred release; AllocatePort tries a
                            // dynamic port again whatever the error.
                            self.ports.release(hip, proto, port);
                            last_err = e;
                            continue;
                        }
                    }
                }
                self.mappings.push(m);
                mapped = true;
                break;
            }
            if !mapped {
                return Err((span, last_err));
            }
        }
        Ok(())
    }

    /// Why `docker-proxy` could not listen on `ip:port`, as Go says it.
    fn proxy_bind_error(&self, ip: Ipv4Addr, proto: Proto, port: u16) -> Option<String> {
        if !self.host_address(ip) {
            return Some(format!(
                "Error starting userland proxy: listen {proto} {ip}:{port}: bind: cannot assign requested address"
            ));
        }
        self.mappings
            .clashes(ip, proto, port)
            .then(|| format!("Error starting userland proxy: listen {proto} {ip}:{port}: bind: address already in use"))
    }

    /// `setupLinkedContainers`: for each child (Docker walks a map; bridgelab
    /// goes in file order), the running check, then `Link.Enable`, i.e. the
    /// bridge driver's `link` job (`LinkContainers`): both addresses must
    /// parse, then `Chain.Link` opens each exposed port of the child, both ways.
    fn link_all(
        &mut self,
        c: &Container,
        links: &[(String, String, Range<usize>)],
        parent_ip: Option<Ipv4Addr>,
    ) -> Result<(), Failure> {
        // Recorded once per container, not per port (see `map_ports`),
        // failure or not: the rollback removes them.
        let mut added = Vec::new();
        let done = self.link_each(c, links, parent_ip, &mut added);
        if !added.is_empty() {
            self.installed.entry(c.name().to_string()).or_default().extend(added);
        }
        done
    }

    /// The links of [`link_all`](Self::link_all), their rules added to
    /// `added`; the first failure ends it.
    fn link_each(
        &mut self,
        c: &Container,
        links: &[(String, String, Range<usize>)],
        parent_ip: Option<Ipv4Addr>,
        added: &mut Vec<RuleRef>,
    ) -> Result<(), Failure> {
        let parent = c.name();
        for (alias, target, span) in links {
            let Some(child) = self.containers.get(target) else { continue };
            if !child.running {
                let e = format!("Cannot link to a non running container: /{target} AS /{parent}/{alias}");
                return Err((span.clone(), e));
            }
            let child_ip = child.ip();
            // Without a bridge (`-b none`) InitDriver never registered the `link` job.
            let Some(bridge) = self.bridge.as_ref().map(|b| b.name.clone()) else {
                return Err((span.clone(), "link: command not found".into()));
            };
            let Some(parent_ip) = parent_ip else { return Err((span.clone(), "Parent IP '' is invalid".into())) };
            let Some(child_ip) = child_ip else { return Err((span.clone(), "Child IP '' is invalid".into())) };
            let spec = self.specs.get(target).expect("a known child").clone();
            // Two rules per exposed port: a link to a container exposing
            // 65,535 ports from a thousand others would be 131 million.
            let at_most: usize = spec.expose.iter().map(|e| e.get_ref().ports.len() as usize).sum::<usize>()
                + spec.publish.iter().map(|p| p.get_ref().container_ports.len() as usize).sum::<usize>();
            if self.rules.rule_count() + 2 * at_most > MAX_PLAN_SIZE {
                // bridgelab's limit, not Docker's failure (see `map_ports`).
                let why = format!("too big to plan: its link to {target} would make more than {MAX_PLAN_SIZE} rules");
                self.err(span.clone(), format!("Cannot start container {parent}: {why}"));
                return Ok(());
            }
            for (proto, port) in exposed_ports(&spec) {
                let refs = Docker1
                    .link(&mut self.rules, &bridge, parent_ip, child_ip, proto, port)
                    .map_err(|e| (span.clone(), e))?;
                added.extend(refs);
            }
        }
        Ok(())
    }

    fn endpoint(&mut self, c: &Container, br: &BridgePlan, ip: Ipv4Addr) -> Endpoint {
        let address = IfaceAddr(Ipv4Network::new(ip, br.address.prefix()).expect("bridge prefix"));
        Endpoint {
            network: "bridge".into(),
            iface: "eth0".into(),
            bridge: br.name.clone(),
            host_veth: self.veth_name(c.name()),
            address,
            gateway: Some(br.address.ip()),
            mac: c.mac.as_ref().and_then(|m| m.get_ref().interface_mac()).unwrap_or(MacAddr::from_ipv4(ip)),
            mtu: self.s.spec.daemon.mtu(),
        }
    }

    /// The veth pair: host end on the bridge, container end as `eth0`.
    fn wire(&mut self, node: &mut NodePlan, ep: &Endpoint) {
        self.host.links.push(LinkPlan {
            name: ep.host_veth.clone(),
            kind: LinkKind::Veth { peer_node: node.name.clone(), peer: "eth0".into(), create: true },
            mac: None,
            mtu: Some(ep.mtu),
            mtu_expected: ep.mtu,
            master: Some(ep.bridge.clone()),
            addresses: vec![],
            up: true,
            hairpin: false,
        });
        node.links.push(LinkPlan {
            name: "eth0".into(),
            kind: LinkKind::Veth { peer_node: "host".into(), peer: ep.host_veth.clone(), create: false },
            mac: Some(ep.mac),
            mtu: Some(ep.mtu),
            mtu_expected: ep.mtu,
            master: None,
            addresses: vec![ep.address],
            up: true,
            hairpin: false,
        });
        if let Some(gw) = ep.gateway {
            node.routes.push(via(None, gw, "eth0"));
        }
        node.routes.push(connected(ep.address, "eth0"));
    }

    /// The state so far as a plan, with what the kernel does on its own
    /// (bridge MTU, carrier) worked out.
    fn snapshot(&mut self) -> Result<Plan, Diagnostics> {
        self.check_bridge_ports();
        if !self.errors.is_empty() {
            let mut errors = std::mem::take(&mut self.errors);
            errors.sort_by_key(|d| d.span.start);
            return Err(Diagnostics::new(self.s.source.clone(), errors));
        }
        let mut host = self.host.clone();
        super::host::settle_kernel(&mut host);
        let mut nodes = vec![host, self.external.clone()];
        nodes.extend(self.machines.iter().cloned());
        nodes.extend(self.nodes.iter().cloned());
        for n in &mut nodes {
            n.routes.sort_by_key(|r| r.sort_key());
        }
        Ok(Plan {
            iptables: self.rules.clone(),
            port_mappings: self.mappings.to_vec(),
            bindings: vec![],
            scenario: self.s.name.clone(),
            firewall: self.s.spec.daemon.firewall(),
            bridge: self.bridge.clone(),
            networks: vec![],
            containers: self.containers.to_vec(),
            nodes,
            steps: vec![],
            // Docker 1.6.2 never touches the conntrack table.
            conntrack_cleared: vec![],
            conntrack_cleared_udp: vec![],
            machines: super::host::machine_plans(self.s),
        })
    }
}

impl Builder<'_> {
    /// A lab the kernel cannot build is refused here, pointing at the
    /// container whose veth would be a bridge's 1024th port, rather than
    /// failing in `run`.
    fn check_bridge_ports(&mut self) {
        let mut ports: HashMap<&str, usize> = HashMap::new();
        let mut full = Vec::new();
        for l in &self.host.links {
            let (Some(br), LinkKind::Veth { peer_node, .. }) = (&l.master, &l.kind) else { continue };
            let n = ports.entry(br).or_default();
            *n += 1;
            if *n == BRIDGE_MAX_PORTS + 1 {
                full.push((br.clone(), peer_node.clone()));
            }
        }
        for (br, node) in full {
            // A namespace is named after its container (`NAME+2` while an
            // older one of that name lives on).
            let name = node.split('+').next().unwrap_or_default();
            let span = self.specs.get(name).map(|c| c.name.span()).unwrap_or(0..0);
            self.err(
                span,
                format!(
                    "Cannot start container {name}: bridge {br} is full: a Linux bridge takes at most \
                     {BRIDGE_MAX_PORTS} ports (BR_MAX_PORTS), this would be port {}",
                    BRIDGE_MAX_PORTS + 1
                ),
            );
        }
    }
}

/// Each port `-p` publishes, as (container port, protocol, host port, host
/// address, span of its spec). Docker walks a map here (random order);
/// bridgelab goes by container port and protocol, ties in file order. The
/// specs' ranges are merged lazily: a start that fails at its first port
/// does not expand all 65,535 of a range first.
fn published_in_port_order(
    c: &Container,
    default_ip: Ipv4Addr,
) -> impl Iterator<Item = (u16, Proto, Option<u16>, Ipv4Addr, Range<usize>)> + '_ {
    use std::cmp::Reverse;
    let mut next: std::collections::BinaryHeap<Reverse<(u16, Proto, usize, u16)>> = c
        .publish
        .iter()
        .enumerate()
        .map(|(k, spec)| Reverse((spec.get_ref().container_ports.start, spec.get_ref().proto, k, 0)))
        .collect();
    std::iter::from_fn(move || {
        let Reverse((cport, proto, k, i)) = next.pop()?;
        let spec = &c.publish[k];
        let p = spec.get_ref();
        if cport < p.container_ports.end {
            next.push(Reverse((cport + 1, proto, k, i + 1)));
        }
        let hport = p.host_ports.map(|h| h.start + i);
        Some((cport, proto, hport, p.host_ip.unwrap_or(default_ip), spec.span()))
    })
}

/// A container's exposed ports (`expose` plus the container side of
/// `publish`), each once, sorted.
pub fn exposed_ports(c: &Container) -> Vec<(Proto, u16)> {
    let mut v: Vec<(Proto, u16)> = Vec::new();
    for e in &c.expose {
        let e = e.get_ref();
        v.extend((e.ports.start..=e.ports.end).map(|p| (e.proto, p)));
    }
    for p in &c.publish {
        let p = p.get_ref();
        v.extend((p.container_ports.start..=p.container_ports.end).map(|port| (p.proto, port)));
    }
    v.sort_by_key(|(proto, port)| (*port, *proto));
    v.dedup();
    v
}
