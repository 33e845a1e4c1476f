//! A built lab as normalized text, for snapshot tests: the tables a
//! scenario's `[snapshot]` asks for, read back from the kernel.
//!
//! The text is the same on every run and machine: no counters, no interface
//! indexes, no run ids (namespaces are called by their node names), and MAC
//! addresses only where the plan fixes them (the kernel picks the others at
//! random). Nodes come in plan order.

use std::fmt::Write as _;

use rtnetlink::packet_route::link::InfoKind;

use super::verify::{Observed, ObservedNode};
use crate::plan::{LinkKind, NodePlan, Plan};
use crate::scenario::{MacAddr, SnapshotSettings};

/// The snapshot of `seen` (a lab built from `plan`) holding the tables that
/// `settings` selects. With the defaults (`iptables` and `routes`) it is:
///
/// ```text
/// ## iptables-save (host)
/// *filter
/// ...
///
/// ## routes (host)
/// default via 198.51.100.2 dev eth0
/// ...
/// ```
///
/// `links` and `addresses` add a `## links (node)` and an
/// `## addresses (node)` section before each node's routes.
pub fn render(plan: &Plan, settings: &SnapshotSettings, seen: &Observed) -> String {
    let mut sections: Vec<String> = Vec::new();
    if settings.iptables {
        let rules = seen.node("host").and_then(|h| h.iptables.as_deref()).unwrap_or("");
        let body = if rules.is_empty() { "(no rules)\n" } else { rules };
        sections.push(format!("## iptables-save (host)\n{body}"));
        // Docker 29's nftables backend: its tables, as `nft list` prints them.
        if let Some(nft) = seen.node("host").and_then(|h| h.nft.as_deref()) {
            sections.push(format!("## nftables (host)\n{nft}"));
        }
    }
    for np in &plan.nodes {
        let Some(node) = seen.node(&np.name) else { continue };
        if settings.links {
            sections.push(format!("## links ({})\n{}", np.name, links(np, node, seen)));
        }
        if settings.addresses {
            sections.push(format!("## addresses ({})\n{}", np.name, addresses(node)));
        }
        if settings.routes {
            let body: String = node.routes.iter().map(|r| format!("{r}\n")).collect();
            sections.push(format!("## routes ({})\n{body}", np.name));
        }
    }
    sections.join("\n")
}

/// One line per link, by name: kind, veth peer, master, MAC (where the plan
/// fixes it), MTU, up or down.
fn links(np: &NodePlan, node: &ObservedNode, seen: &Observed) -> String {
    let mut links: Vec<_> = node.links.iter().collect();
    links.sort_by(|a, b| a.name.cmp(&b.name));
    let mut out = String::new();
    for l in links {
        let planned = np.link(&l.name);
        let kind = match &l.kind {
            None if l.name == "lo" => "loopback".to_string(),
            None => "device".to_string(),
            Some(InfoKind::Bridge) => "bridge".to_string(),
            Some(InfoKind::Veth) => "veth".to_string(),
            Some(other) => format!("{other:?}").to_lowercase(),
        };
        let _ = write!(out, "{:<12} {kind}", l.name);
        if let Some(LinkKind::Veth { peer_node, .. }) = planned.map(|p| &p.kind) {
            // The peer's index is only meaningful in its own namespace.
            let peer = seen.node(peer_node).and_then(|n| n.links.iter().find(|p| Some(p.index) == l.peer_index));
            match peer {
                Some(p) => write!(out, " peer {peer_node}:{}", p.name),
                None => write!(out, " peer ?"),
            }
            .ok();
        }
        if let Some(m) = l.master.and_then(|i| node.links.iter().find(|x| x.index == i)) {
            let _ = write!(out, " master {}", m.name);
        }
        if let (Some(mac), Some(_)) = (l.mac, planned.and_then(|p| p.mac)) {
            let _ = write!(out, " mac {}", MacAddr(mac));
        }
        if let Some(mtu) = l.mtu {
            let _ = write!(out, " mtu {mtu}");
        }
        out.push_str(if l.up { " up\n" } else { " down\n" });
    }
    out
}

/// One line per IPv4 address, `link address/prefix`, sorted.
fn addresses(node: &ObservedNode) -> String {
    let mut lines: Vec<String> = node
        .links
        .iter()
        .flat_map(|l| {
            node.addresses.get(&l.index).into_iter().flatten().map(move |(ip, p)| format!("{} {ip}/{p}\n", l.name))
        })
        .collect();
    lines.sort();
    lines.concat()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::LinkState;
    use std::collections::{BTreeMap, HashMap};

    fn link(index: u32, name: &str, kind: Option<InfoKind>, mac: [u8; 6], peer: Option<u32>) -> LinkState {
        LinkState {
            index,
            name: name.into(),
            kind,
            mac: Some(mac),
            mtu: Some(1500),
            master: None,
            peer_index: peer,
            up: true,
            oper_up: true,
            hairpin: false,
        }
    }

    fn observed(web_index: u32, host_veth_index: u32, random_mac: [u8; 6]) -> Observed {
        let mut veth = link(host_veth_index, "veth1", Some(InfoKind::Veth), random_mac, Some(web_index));
        veth.master = Some(3);
        let host = ObservedNode {
            name: "host".into(),
            links: vec![
                link(1, "lo", None, [0; 6], None),
                link(3, "docker0", Some(InfoKind::Bridge), [2, 0x42, 0, 0, 0, 1], None),
                veth,
            ],
            addresses: HashMap::from([(3, vec![("172.17.42.1".parse().unwrap(), 16)])]),
            routes: vec!["172.17.0.0/16 dev docker0 proto kernel scope link src 172.17.42.1".into()],
            sysctls: BTreeMap::new(),
            iptables: Some("*filter\n:INPUT ACCEPT\nCOMMIT\n".into()),
            nft: None,
        };
        let web = ObservedNode {
            name: "web".into(),
            links: vec![link(web_index, "eth0", Some(InfoKind::Veth), [2, 0x42, 172, 17, 0, 1], Some(host_veth_index))],
            addresses: HashMap::from([(web_index, vec![("172.17.0.1".parse().unwrap(), 16)])]),
            routes: vec!["default via 172.17.42.1 dev eth0".into()],
            sysctls: BTreeMap::new(),
            iptables: None,
            nft: None,
        };
        // Namespaces in another order than the plan's.
        Observed { nodes: vec![web, host] }
    }

    fn plan() -> Plan {
        let scenario = crate::scenario::Scenario::parse(
            "s.toml".into(),
            "name = \"s\"\nabout = \"a\"\n[[container]]\nname = \"web\"\n".into(),
        )
        .unwrap();
        let mut plan = crate::plan::plan(&scenario).unwrap();
        // Stand-ins for the observed names above.
        let host = plan.nodes.iter_mut().find(|n| n.name == "host").unwrap();
        let veth = host
            .links
            .iter_mut()
            .find(|l| matches!(l.kind, LinkKind::Veth { ref peer_node, .. } if peer_node == "web"))
            .unwrap();
        veth.name = "veth1".into();
        plan
    }

    #[test]
    fn defaults_give_rules_and_routes_in_plan_order() {
        let text = render(&plan(), &SnapshotSettings::default(), &observed(2, 9, [0xaa; 6]));
        assert_eq!(
            text,
            "## iptables-save (host)\n*filter\n:INPUT ACCEPT\nCOMMIT\n\
             \n## routes (host)\n172.17.0.0/16 dev docker0 proto kernel scope link src 172.17.42.1\n\
             \n## routes (web)\ndefault via 172.17.42.1 dev eth0\n"
        );
    }

    #[test]
    fn links_and_addresses_have_no_indexes_and_no_random_macs() {
        let all = SnapshotSettings { iptables: false, routes: false, addresses: true, links: true };
        let a = render(&plan(), &all, &observed(2, 9, [0xaa; 6]));
        // Other indexes and another random MAC: the same text.
        let b = render(&plan(), &all, &observed(7, 40, [0xbb; 6]));
        assert_eq!(a, b);
        assert_eq!(
            a,
            "## links (host)\n\
             docker0      bridge mac 02:42:00:00:00:01 mtu 1500 up\n\
             lo           loopback mtu 1500 up\n\
             veth1        veth peer web:eth0 master docker0 mtu 1500 up\n\
             \n## addresses (host)\ndocker0 172.17.42.1/16\n\
             \n## links (web)\n\
             eth0         veth peer host:veth1 mac 02:42:ac:11:00:01 mtu 1500 up\n\
             \n## addresses (web)\neth0 172.17.0.1/16\n"
        );
        let none = SnapshotSettings { iptables: false, routes: false, addresses: false, links: false };
        assert_eq!(render(&plan(), &none, &observed(2, 9, [0xaa; 6])), "");
        let no_rules = Observed {
            nodes: vec![ObservedNode { iptables: Some(String::new()), ..observed(2, 9, [0; 6]).nodes[1].clone() }],
        };
        let rules_only = SnapshotSettings { iptables: true, routes: false, addresses: false, links: false };
        assert_eq!(render(&plan(), &rules_only, &no_rules), "## iptables-save (host)\n(no rules)\n");
    }
}
