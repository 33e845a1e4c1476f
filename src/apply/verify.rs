//! What the kernel reports, compared with the plan.
//!
//! [`observe`](super::RunningLab::observe) reads every namespace back through
//! netlink into an [`Observed`]; [`verify`] compares it with the plan, purely,
//! so the comparison itself is unit-tested without root.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::net::Ipv4Addr;

use rtnetlink::packet_route::link::InfoKind;
use serde::Serialize;

use super::netlink::{LinkState, RouteCarrier};
use crate::plan::{LinkKind, NodePlan, Plan};

/// One namespace as the kernel reports it.
#[derive(Debug, Clone)]
pub struct ObservedNode {
    pub name: String,
    pub links: Vec<LinkState>,
    pub addresses: HashMap<u32, Vec<(Ipv4Addr, u8)>>,
    /// `ip route` lines of the main table, sorted.
    pub routes: Vec<String>,
    pub sysctls: BTreeMap<String, String>,
    /// Normalized `iptables-save` (host node only).
    pub iptables: Option<String>,
    /// The host's nftables tables Docker's backend makes, as `nft list`
    /// prints them (host node, nftables backend only).
    pub nft: Option<String>,
}

impl ObservedNode {
    pub fn link(&self, name: &str) -> Option<&LinkState> {
        self.links.iter().find(|l| l.name == name)
    }
}

/// The whole lab as the kernel reports it.
#[derive(Debug, Clone)]
pub struct Observed {
    pub nodes: Vec<ObservedNode>,
}

impl Observed {
    pub fn node(&self, name: &str) -> Option<&ObservedNode> {
        self.nodes.iter().find(|n| n.name == name)
    }
}

/// A difference between plan and kernel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mismatch {
    pub node: String,
    pub what: String,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.node, self.what)
    }
}

fn kind_matches(plan: &LinkKind, seen: Option<&InfoKind>) -> bool {
    match plan {
        LinkKind::Loopback => seen.is_none(),
        LinkKind::Bridge => seen == Some(&InfoKind::Bridge),
        LinkKind::Veth { .. } => seen == Some(&InfoKind::Veth),
    }
}

/// Every difference between what the plan says and what was observed.
pub fn verify(plan: &Plan, seen: &Observed) -> Vec<Mismatch> {
    let mut out = Vec::new();
    // By name, so a lab of thousands of veths is compared in linear time.
    let nodes: HashMap<&str, &ObservedNode> = seen.nodes.iter().map(|n| (n.name.as_str(), n)).collect();
    let links: HashMap<&str, HashMap<&str, &LinkState>> =
        seen.nodes.iter().map(|n| (n.name.as_str(), n.links.iter().map(|l| (l.name.as_str(), l)).collect())).collect();
    for np in &plan.nodes {
        let mut miss = |what: String| out.push(Mismatch { node: np.name.clone(), what });
        let Some(node) = nodes.get(np.name.as_str()).copied() else {
            miss("namespace missing".into());
            continue;
        };
        let by_name = &links[np.name.as_str()];
        let names: HashMap<u32, &str> = node.links.iter().map(|l| (l.index, l.name.as_str())).collect();
        for lp in &np.links {
            let Some(l) = by_name.get(lp.name.as_str()).copied() else {
                miss(format!("link {} missing", lp.name));
                continue;
            };
            if !kind_matches(&lp.kind, l.kind.as_ref()) {
                miss(format!("link {} is {:?}, planned {:?}", lp.name, l.kind, lp.kind));
            }
            if let Some(mac) = lp.mac {
                if l.mac != Some(mac.0) {
                    miss(format!("link {} has mac {:?}, planned {mac}", lp.name, l.mac.map(crate::scenario::MacAddr)));
                }
            }
            if l.mtu != Some(lp.mtu_expected) {
                miss(format!("link {} has mtu {:?}, planned {}", lp.name, l.mtu, lp.mtu_expected));
            }
            let master = l.master.and_then(|i| names.get(&i).copied());
            if master != lp.master.as_deref() {
                miss(format!("link {} has master {master:?}, planned {:?}", lp.name, lp.master));
            }
            if l.up != lp.up {
                miss(format!("link {} is {}, planned {}", lp.name, updown(l.up), updown(lp.up)));
            }
            if l.hairpin != lp.hairpin {
                miss(format!("link {} has hairpin {}, planned {}", lp.name, onoff(l.hairpin), onoff(lp.hairpin)));
            }
            let want: BTreeSet<(Ipv4Addr, u8)> = lp.addresses.iter().map(|a| (a.ip(), a.prefix())).collect();
            let have: BTreeSet<(Ipv4Addr, u8)> = node.addresses.get(&l.index).into_iter().flatten().copied().collect();
            if want != have {
                miss(format!("link {} has addresses {}, planned {}", lp.name, addrs(&have), addrs(&want)));
            }
            if let LinkKind::Veth { peer_node, peer, .. } = &lp.kind {
                let peer_index = links.get(peer_node.as_str()).and_then(|n| n.get(peer.as_str())).map(|p| p.index);
                if peer_index.is_none() || l.peer_index != peer_index {
                    miss(format!("link {} is not paired with {peer_node}:{peer}", lp.name));
                }
            }
        }
        let planned: BTreeSet<&str> = np.links.iter().map(|l| l.name.as_str()).collect();
        for l in &node.links {
            if !planned.contains(l.name.as_str()) {
                miss(format!("unexpected link {}", l.name));
            }
        }
        let want: Vec<String> = np.routes.iter().map(|r| r.to_string()).collect();
        let (want_set, have_set): (HashSet<&String>, HashSet<&String>) =
            (want.iter().collect(), node.routes.iter().collect());
        for r in want.iter().filter(|r| !have_set.contains(r)) {
            miss(format!("route missing: {r}"));
        }
        for r in node.routes.iter().filter(|r| !want_set.contains(r)) {
            miss(format!("unexpected route: {r}"));
        }
        if let Some(have) = &node.iptables {
            let want = plan.iptables.render();
            let (want, have): (Vec<&str>, Vec<&str>) = (want.lines().collect(), have.lines().collect());
            if want != have {
                for l in want.iter().filter(|l| !have.contains(l)) {
                    miss(format!("iptables rule missing: {l}"));
                }
                for l in have.iter().filter(|l| !want.contains(l)) {
                    miss(format!("unexpected iptables rule: {l}"));
                }
                if want.iter().all(|l| have.contains(l)) && have.iter().all(|l| want.contains(l)) {
                    miss("iptables rules are in a different order than planned".into());
                }
            }
        }
        if let Some(have) = &node.nft {
            let want = plan.iptables.nft.listing();
            if *have != want {
                let (want, have): (Vec<&str>, Vec<&str>) = (want.lines().collect(), have.lines().collect());
                for l in want.iter().filter(|l| !have.contains(l)) {
                    miss(format!("nftables line missing: {}", l.trim()));
                }
                for l in have.iter().filter(|l| !want.contains(l)) {
                    miss(format!("unexpected nftables line: {}", l.trim()));
                }
                if want.iter().all(|l| have.contains(l)) && have.iter().all(|l| want.contains(l)) {
                    miss("nftables tables are in a different order than planned".into());
                }
            }
        }
        for s in &np.sysctls {
            let have = node.sysctls.get(&s.key);
            if have != Some(&s.value) {
                miss(format!("sysctl {} is {:?}, planned {}", s.key, have, s.value));
            }
        }
    }
    out
}

fn onoff(b: bool) -> &'static str {
    if b {
        "on"
    } else {
        "off"
    }
}

fn updown(up: bool) -> &'static str {
    if up {
        "up"
    } else {
        "down"
    }
}

fn addrs(set: &BTreeSet<(Ipv4Addr, u8)>) -> String {
    if set.is_empty() {
        return "none".into();
    }
    set.iter().map(|(a, p)| format!("{a}/{p}")).collect::<Vec<_>>().join(", ")
}

/// A planned route that exists but whose `linkdown` flag is not yet what the
/// plan says. The kernel reports carrier asynchronously (its linkwatch work
/// runs up to a second after a port comes or goes), so this is the one
/// difference worth waiting for after a change; any other is final.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CarrierPending {
    pub node: String,
    /// The route as planned, `linkdown` included (or `port NAME`, a
    /// bridge port: see [`ports_pending`]).
    pub route: String,
}

/// The bridge ports of `node` that the plan has up, with a peer it has up,
/// whose operational state (in `seen`, the node's links) is not up yet. A
/// bridge forwards through a port only once the kernel's linkwatch has
/// handled its carrier, the same work that sets the operational state; with
/// thousands of links come up at once that work runs seconds behind, and a
/// probe sent meanwhile is dropped by the bridge.
pub fn ports_pending(plan: &Plan, node: &NodePlan, seen: &[LinkState]) -> Vec<CarrierPending> {
    let peer_up = |l: &crate::plan::LinkPlan| match &l.kind {
        LinkKind::Veth { peer_node, peer, .. } => plan.node(peer_node).and_then(|n| n.link(peer)).is_some_and(|p| p.up),
        _ => false,
    };
    let seen: HashMap<&str, bool> = seen.iter().map(|s| (s.name.as_str(), s.oper_up)).collect();
    node.links
        .iter()
        .filter(|l| l.up && l.master.is_some() && peer_up(l) && seen.get(l.name.as_str()) == Some(&false))
        .map(|l| CarrierPending { node: node.name.clone(), route: format!("port {}", l.name) })
        .collect()
}

/// The routes of `plan` whose carrier flag the kernel has not caught up
/// with, given `indexes` (link name to index) and the routes `seen` in that
/// namespace. A planned route that is missing is not pending: `verify`
/// reports it.
pub fn carrier_pending(plan: &NodePlan, indexes: &HashMap<String, u32>, seen: &[RouteCarrier]) -> Vec<CarrierPending> {
    plan.routes
        .iter()
        .filter(|r| {
            let (dst, prefix) = r.dst.map(|d| (d.network(), d.prefix())).unwrap_or((Ipv4Addr::UNSPECIFIED, 0));
            let oif = indexes.get(&r.dev).copied();
            seen.iter().any(|s| {
                s.dst == dst && s.prefix == prefix && s.oif == oif && oif.is_some() && s.linkdown != r.linkdown
            })
        })
        .map(|r| CarrierPending { node: plan.name.clone(), route: r.to_string() })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::RoutePlan;

    fn node(routes: Vec<RoutePlan>) -> NodePlan {
        NodePlan { name: "host".into(), links: vec![], routes, sysctls: vec![] }
    }

    fn connected(linkdown: bool) -> RoutePlan {
        RoutePlan {
            dst: Some("172.17.0.0/16".parse().unwrap()),
            via: None,
            dev: "docker0".into(),
            connected: Some("172.17.42.1".parse().unwrap()),
            scope_link: false,
            linkdown,
        }
    }

    fn seen(linkdown: bool, oif: u32) -> RouteCarrier {
        RouteCarrier { dst: "172.17.0.0".parse().unwrap(), prefix: 16, oif: Some(oif), linkdown }
    }

    #[test]
    fn a_bridge_port_not_yet_up_is_pending_unless_its_peer_is_down() {
        let text = "[[container]]\nname = \"web\"\n[[container]]\nname = \"db\"\n";
        let scenario = crate::scenario::Scenario::parse("p.toml".into(), text.into()).unwrap();
        let mut plan = crate::plan::plan(&scenario).unwrap();
        let host = plan.node("host").unwrap().clone();
        let ports: Vec<String> = host.links.iter().filter(|l| l.master.is_some()).map(|l| l.name.clone()).collect();
        assert_eq!(ports.len(), 2, "{host:?}");
        let state = |name: &str, oper_up: bool| LinkState {
            index: 0,
            name: name.into(),
            kind: None,
            mac: None,
            mtu: None,
            master: Some(1),
            peer_index: None,
            up: true,
            oper_up,
            hairpin: false,
        };
        let seen = [state(&ports[0], true), state(&ports[1], false)];
        let left = ports_pending(&plan, &host, &seen);
        assert_eq!(left, [CarrierPending { node: "host".into(), route: format!("port {}", ports[1]) }]);
        // Up on both sides: nothing left. A port missing from the dump is
        // final, not pending.
        assert!(ports_pending(&plan, &host, &[state(&ports[0], true), state(&ports[1], true)]).is_empty());
        assert!(ports_pending(&plan, &host, &[state(&ports[0], true)]).is_empty());
        // A port whose container end is planned down never comes up: not
        // waited for.
        for n in plan.nodes.iter_mut() {
            for l in n.links.iter_mut().filter(|l| l.name == "eth0") {
                l.up = false;
            }
        }
        assert!(ports_pending(&plan, &host, &seen).is_empty());
    }

    #[test]
    fn only_a_carrier_flag_that_differs_is_pending() {
        let indexes: HashMap<String, u32> = [("docker0".to_string(), 3)].into();
        assert!(carrier_pending(&node(vec![connected(true)]), &indexes, &[seen(true, 3)]).is_empty());
        assert_eq!(
            carrier_pending(&node(vec![connected(true)]), &indexes, &[seen(false, 3)]),
            [CarrierPending {
                node: "host".into(),
                route: "172.17.0.0/16 dev docker0 proto kernel scope link src 172.17.42.1 linkdown".into()
            }]
        );
        assert_eq!(carrier_pending(&node(vec![connected(false)]), &indexes, &[seen(true, 3)]).len(), 1);
        // A route on another link, a missing route or a missing link is final,
        // not pending: waiting would not change it.
        assert!(carrier_pending(&node(vec![connected(false)]), &indexes, &[seen(true, 4)]).is_empty());
        assert!(carrier_pending(&node(vec![connected(false)]), &indexes, &[]).is_empty());
        assert!(carrier_pending(&node(vec![connected(false)]), &HashMap::new(), &[seen(true, 3)]).is_empty());
    }
}
