//! The lab's world around the daemon, shared by the libnetwork layouts:
//! the host's loopback, uplink and `[host]` routes and bridges, the
//! external node, and what the kernel does on its own (a bridge's MTU, a
//! carrier-less bridge's `linkdown` routes).

use std::collections::HashMap;
use std::net::Ipv4Addr;

use ipnetwork::Ipv4Network;

use super::*;
use crate::scenario::Scenario;

pub(crate) fn loopback() -> LinkPlan {
    LinkPlan {
        name: "lo".into(),
        kind: LinkKind::Loopback,
        mac: None,
        mtu: None,
        mtu_expected: 65536,
        master: None,
        // The kernel adds 127.0.0.1/8 when lo comes up.
        addresses: vec![IfaceAddr(ipnet(Ipv4Addr::LOCALHOST, 8))],
        up: true,
        hairpin: false,
    }
}

/// One end of the host–external uplink, `eth0` on both sides, with a
/// locally administered MAC (not Docker's 02:42 prefix).
pub(crate) fn uplink_end(address: IfaceAddr, peer_node: &str, create: bool) -> LinkPlan {
    let o = address.ip().octets();
    LinkPlan {
        name: "eth0".into(),
        kind: LinkKind::Veth { peer_node: peer_node.into(), peer: "eth0".into(), create },
        mac: Some(MacAddr([0x02, 0x00, o[0], o[1], o[2], o[3]])),
        mtu: None,
        mtu_expected: 1500,
        master: None,
        addresses: vec![address],
        up: true,
        hairpin: false,
    }
}

pub(crate) fn connected(addr: IfaceAddr, dev: &str) -> RoutePlan {
    RoutePlan {
        dst: Some(addr.network()),
        via: None,
        dev: dev.into(),
        connected: Some(addr.ip()),
        scope_link: false,
        linkdown: false,
    }
}

pub(crate) fn via(dst: Option<Ipv4Network>, gw: Ipv4Addr, dev: &str) -> RoutePlan {
    RoutePlan { dst, via: Some(gw), dev: dev.into(), connected: None, scope_link: false, linkdown: false }
}

/// The MAC of a bridge an administrator made: random and locally
/// administered; bridgelab derives the "random" bytes from the names.
pub(crate) fn admin_bridge_mac(scenario: &str, name: &str) -> MacAddr {
    let h = crate::stable_hash::fnv1a(&["bridge-mac", scenario, name]).to_be_bytes();
    let mut m = [0u8; 6];
    for (b, x) in m.iter_mut().zip(h) {
        *b = x % 255;
    }
    m[0] = (m[0] & !1) | 2;
    MacAddr(m)
}

/// The MAC libnetwork gives a bridge it makes (`GenerateRandomMAC`: a
/// fixed prefix, then random bytes; stable in bridgelab).
pub(crate) fn docker_bridge_mac(prefix: Option<[u8; 2]>, scenario: &str, name: &str) -> MacAddr {
    let h = crate::stable_hash::fnv1a(&["docker-bridge-mac", scenario, name]).to_be_bytes();
    match prefix {
        Some(prefix) => MacAddr([prefix[0], prefix[1], h[0], h[1], h[2], h[3]]),
        None => random_mac(&["docker-bridge-mac", scenario, name]),
    }
}

/// `netutils.GenerateRandomMAC` (Docker 28): six random bytes, unicast and
/// locally administered; bridgelab's are stable per `parts`.
pub(crate) fn random_mac(parts: &[&str]) -> MacAddr {
    let h = crate::stable_hash::fnv1a(parts).to_be_bytes();
    MacAddr([(h[0] & 0xfe) | 0x02, h[1], h[2], h[3], h[4], h[5]])
}

/// `[host] forwarding` (or `sysctls`): whether `net.ipv4.ip_forward` was
/// 1 before the daemon started.
pub(crate) fn forwarding_before(s: &Scenario) -> bool {
    s.spec.host.forwarding.as_ref().is_some_and(|f| *f.get_ref()) || sysctls_before(s).forwarding()
}

/// A bridge in the host namespace.
pub(crate) fn bridge_link(name: &str, mac: MacAddr, addresses: Vec<IfaceAddr>) -> LinkPlan {
    LinkPlan {
        name: name.into(),
        kind: LinkKind::Bridge,
        mac: Some(mac),
        mtu: None,
        mtu_expected: 1500,
        master: None,
        addresses,
        up: true,
        hairpin: false,
    }
}

/// The host and external nodes before the daemon touches anything: loopback,
/// the uplink, `[host] routes` on `dummy0`, `[external] routes`.
pub(crate) fn base_nodes(s: &Scenario) -> (NodePlan, NodePlan) {
    let spec = &s.spec;
    let mut host = NodePlan { name: "host".into(), links: vec![loopback()], routes: vec![], sysctls: vec![] };
    host.links.push(uplink_end(UPLINK_HOST, "external", true));
    host.routes.push(via(None, UPLINK_EXTERNAL.ip(), "eth0"));
    host.routes.push(connected(UPLINK_HOST, "eth0"));
    if !spec.host.routes.is_empty() {
        // A port-less bridge swallows what is routed to it, as a dummy
        // device would; unlike `dummy` it is built into every kernel.
        host.links.push(bridge_link(HOST_DUMMY, MacAddr([0; 6]), vec![]));
        host.links.last_mut().expect("just pushed").mac = None;
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
    let mut external = NodePlan { name: "external".into(), links: vec![loopback()], routes: vec![], sysctls: vec![] };
    external.links.push(uplink_end(UPLINK_EXTERNAL, "host", false));
    external.routes.push(connected(UPLINK_EXTERNAL, "eth0"));
    for r in &spec.external.routes {
        external.routes.push(via(Some(r.get_ref().network()), UPLINK_HOST.ip(), "eth0"));
    }
    (host, external)
}

/// What the kernel does on its own: a bridge takes the smallest MTU of its
/// ports, and while it has none its connected routes say `linkdown`.
pub(crate) fn settle_kernel(host: &mut NodePlan) {
    let mut port_mtus: HashMap<String, Vec<u32>> = HashMap::new();
    for l in &host.links {
        if let Some(m) = &l.master {
            port_mtus.entry(m.clone()).or_default().push(l.mtu_expected);
        }
    }
    for l in host.links.iter_mut().filter(|l| l.kind == LinkKind::Bridge) {
        l.mtu_expected = port_mtus.get(&l.name).and_then(|v| v.iter().min().copied()).unwrap_or(1500);
    }
    let bridges: std::collections::BTreeSet<String> =
        host.links.iter().filter(|l| l.kind == LinkKind::Bridge).map(|l| l.name.clone()).collect();
    for r in &mut host.routes {
        // The kernel flags connected routes only; a static route added to
        // a carrier-less device does not say `linkdown`.
        r.linkdown = bridges.contains(&r.dev) && r.connected.is_some() && !port_mtus.contains_key(&r.dev);
    }
}

/// The rules in force before the daemon started (`[host] rules`), as
/// `iptables-restore` left them, or where their text goes wrong.
pub(crate) fn rules_before(s: &Scenario) -> Result<firewall::Ruleset, (std::ops::Range<usize>, String)> {
    let Some(text) = &s.spec.host.rules else { return Ok(firewall::Ruleset::default()) };
    firewall::restore::Restore::parse(text.get_ref()).and_then(|r| firewall::Ruleset::from_restore(&r)).map_err(|e| {
        (
            crate::scenario::span_in_string(s.source.text(), text.span(), e.at),
            format!("iptables-restore: {}", e.message),
        )
    })
}

pub(crate) fn is_forwarding_switch(key: &str) -> bool {
    key == "net.ipv4.ip_forward" || key == "net.ipv4.conf.all.forwarding"
}

/// A namespace's sysctls as a sequence of writes leaves them, in the
/// order they were first written. Writing `net.ipv4.ip_forward` (the same
/// value as `conf.all.forwarding`) with a new value also sets every
/// interface's `forwarding` (the kernel's `devinet_sysctl_forward` ->
/// `inet_forward_change`); writing the value it has changes nothing.
#[derive(Debug, Clone, Default)]
pub(crate) struct SysctlState {
    pub entries: Vec<Sysctl>,
}

impl SysctlState {
    fn value(&self, key: &str) -> Option<&str> {
        self.entries.iter().find(|s| s.key == key).map(|s| s.value.as_str())
    }

    /// `net.ipv4.ip_forward` now (0 in a new namespace).
    pub fn forwarding(&self) -> bool {
        let v = self.value("net.ipv4.ip_forward").or_else(|| self.value("net.ipv4.conf.all.forwarding"));
        v == Some("1")
    }

    pub fn write(&mut self, key: &str, value: &str) {
        if is_forwarding_switch(key) && self.forwarding() != (value == "1") {
            for e in &mut self.entries {
                let iface = e.key.strip_prefix("net.ipv4.conf.").and_then(|r| r.strip_suffix(".forwarding"));
                if iface.is_some_and(|i| i != "default") || e.key == "net.ipv4.ip_forward" {
                    e.value = value.to_string();
                }
            }
        }
        match self.entries.iter_mut().find(|s| s.key == key) {
            Some(e) => {
                e.value = value.to_string();
                e.write = true;
            }
            None => self.entries.push(Sysctl { key: key.into(), value: value.into(), write: true }),
        }
    }

    /// Docker's sysctls over these: what it writes is written; what it
    /// only relies on keeps the value a write before gave it.
    pub fn docker(&mut self, docker: Vec<Sysctl>) {
        for d in docker {
            if d.write {
                self.write(&d.key, &d.value);
            } else if self.value(&d.key).is_none() {
                self.entries.push(d);
            }
        }
    }
}

/// `[host] sysctls`, written in the host namespace in the file's order.
pub(crate) fn sysctls_before(s: &Scenario) -> SysctlState {
    let mut st = SysctlState::default();
    for (k, v) in &s.spec.host.sysctls.0 {
        st.write(k.get_ref(), &v.get_ref().0);
    }
    st
}

/// The host's sysctls: `[host] sysctls`, then Docker's, then what
/// `sysctl` steps so far wrote there.
pub(crate) fn host_sysctls(s: &Scenario, docker: Vec<Sysctl>, later: &[(String, String, String)]) -> Vec<Sysctl> {
    node_sysctls(sysctls_before(s), docker, later, "host")
}

/// A node's sysctls: `before`, then what its software writes, then what
/// `sysctl` steps wrote on `node`.
pub(crate) fn node_sysctls(
    mut st: SysctlState,
    docker: Vec<Sysctl>,
    later: &[(String, String, String)],
    node: &str,
) -> Vec<Sysctl> {
    st.docker(docker);
    for (n, k, v) in later {
        if n == node {
            st.write(k, v);
        }
    }
    st.entries
}

/// The namespace that holds the uplink's segment once a `[[machine]]` is
/// on it: a bridge (`lan`) with the host's, the external node's and each
/// machine's `eth0` as ports. A name no container or machine can take.
pub const UPLINK_SEGMENT: &str = "+uplink";
/// The segment's bridge.
pub const SEGMENT_BRIDGE: &str = "lan";

/// The `[[machine]]`s: a namespace each, wired to the uplink's segment or
/// to their `[[host.bridge]]` (a `vnetN` port, as libvirt names a guest's
/// tap). With a machine on the uplink, the host's and external's `eth0`
/// become ports of the segment (same names, addresses and MACs as on the
/// plain uplink). Returns the segment node (if any) and the machines'
/// nodes, and adds the guests' ports to `host`.
pub(crate) fn machine_nodes(s: &Scenario, host: &mut NodePlan, external: &mut NodePlan) -> Vec<NodePlan> {
    let spec = &s.spec;
    let mut out = Vec::new();
    if spec.machines.iter().any(|m| m.on_uplink()) {
        let mut seg =
            NodePlan { name: UPLINK_SEGMENT.into(), links: vec![loopback()], routes: vec![], sysctls: vec![] };
        let mut br = bridge_link(SEGMENT_BRIDGE, admin_bridge_mac(&s.name, SEGMENT_BRIDGE), vec![]);
        br.mac = Some(admin_bridge_mac(&s.name, SEGMENT_BRIDGE));
        seg.links.push(br);
        for (end, node) in [(&mut *host, "host"), (&mut *external, "external")] {
            let port = format!("p-{node}");
            if let Some(l) = end.links.iter_mut().find(|l| l.name == "eth0") {
                l.kind = LinkKind::Veth { peer_node: UPLINK_SEGMENT.into(), peer: port.clone(), create: false };
            }
            seg.links.push(segment_port(&port, node));
        }
        out.push(seg);
    }
    let mut guests = 0;
    for (i, m) in spec.machines.iter().enumerate() {
        let addr = *m.address.get_ref();
        let mut node = NodePlan { name: m.name().into(), links: vec![loopback()], routes: vec![], sysctls: vec![] };
        let o = addr.ip().octets();
        let (peer_node, peer, mac, next_hop) = if m.on_uplink() {
            let port = format!("p-m{}", i + 1);
            out[0].links.push(segment_port(&port, m.name()));
            (UPLINK_SEGMENT.to_string(), port, MacAddr([0x02, 0x00, o[0], o[1], o[2], o[3]]), Some(UPLINK_HOST.ip()))
        } else {
            let br = m.attach.get_ref().clone();
            let port = format!("vnet{guests}");
            guests += 1;
            host.links.push(LinkPlan {
                name: port.clone(),
                kind: LinkKind::Veth { peer_node: m.name().into(), peer: "eth0".into(), create: true },
                mac: None,
                mtu: None,
                mtu_expected: 1500,
                master: Some(br.clone()),
                addresses: vec![],
                up: true,
                hairpin: false,
            });
            let gw = spec
                .host
                .bridges
                .iter()
                .find(|b| *b.name.get_ref() == br)
                .and_then(|b| b.address.as_ref())
                .map(|a| a.get_ref().ip());
            ("host".to_string(), port, MacAddr([0x52, 0x54, 0x00, o[1], o[2], o[3]]), gw)
        };
        node.links.push(LinkPlan {
            name: "eth0".into(),
            kind: LinkKind::Veth { peer_node, peer, create: false },
            mac: Some(mac),
            mtu: None,
            mtu_expected: 1500,
            master: None,
            addresses: vec![addr],
            up: true,
            hairpin: false,
        });
        node.routes.push(connected(addr, "eth0"));
        if let Some(gw) = &m.gateway {
            node.routes.push(via(None, gw.get_ref().0, "eth0"));
        }
        for r in &m.routes {
            if let Some(hop) = next_hop {
                node.routes.push(via(Some(r.get_ref().network()), hop, "eth0"));
            }
        }
        out.push(node);
    }
    out
}

/// A port of the uplink's segment, made there with its peer `eth0` in `node`.
fn segment_port(name: &str, node: &str) -> LinkPlan {
    LinkPlan {
        name: name.into(),
        kind: LinkKind::Veth { peer_node: node.into(), peer: "eth0".into(), create: true },
        mac: None,
        mtu: None,
        mtu_expected: 1500,
        master: Some(SEGMENT_BRIDGE.into()),
        addresses: vec![],
        up: true,
        hairpin: false,
    }
}

/// What the plan says about the machines, for probes and reports.
pub(crate) fn machine_plans(s: &Scenario) -> Vec<MachinePlan> {
    s.spec
        .machines
        .iter()
        .map(|m| MachinePlan {
            name: m.name().into(),
            attach: m.attach.get_ref().clone(),
            address: *m.address.get_ref(),
        })
        .collect()
}

/// A `host-rules` step: its text restored over the host's rules (plain
/// `iptables-restore`, or `--noflush`). A mistake points into the text.
pub(crate) fn host_rules_step(
    s: &Scenario,
    step: &crate::scenario::Step,
    rules: &mut firewall::Ruleset,
) -> Result<(), (std::ops::Range<usize>, String)> {
    let Some(text) = &step.rules else { return Ok(()) };
    let noflush = step.noflush.as_ref().is_some_and(|n| *n.get_ref());
    firewall::restore::Restore::parse(text.get_ref()).and_then(|r| rules.restore(&r, noflush)).map_err(|e| {
        (
            crate::scenario::span_in_string(s.source.text(), text.span(), e.at),
            format!("iptables-restore: {}", e.message),
        )
    })
}

/// A `sysctl` step as (node, key, value).
pub(crate) fn sysctl_step(step: &crate::scenario::Step) -> (String, String, String) {
    let node = step.node.as_ref().map(|n| n.get_ref().clone()).unwrap_or_else(|| "host".into());
    let key = step.key.as_ref().map(|k| k.get_ref().clone()).unwrap_or_default();
    let value = step.value.as_ref().map(|v| v.get_ref().0.clone()).unwrap_or_default();
    (node, key, value)
}

/// How reports name a step that has no container: `sysctl KEY=VALUE`
/// (`on NODE` unless the host), `host-rules` (`--noflush`).
pub(crate) fn step_label(step: &crate::scenario::Step) -> Option<String> {
    use crate::scenario::StepAction;
    match step.action.get_ref() {
        StepAction::Sysctl => {
            let (node, key, value) = sysctl_step(step);
            let on = if node == "host" { String::new() } else { format!(" on {node}") };
            Some(format!("sysctl {key}={value}{on}"))
        }
        StepAction::HostRules if step.noflush.as_ref().is_some_and(|n| *n.get_ref()) => {
            Some("host-rules --noflush".into())
        }
        _ => None,
    }
}
