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

/// `[host] forwarding`: whether `net.ipv4.ip_forward` was 1 before the daemon started.
pub(crate) fn forwarding_before(s: &Scenario) -> bool {
    s.spec.host.forwarding.as_ref().is_some_and(|f| *f.get_ref())
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
