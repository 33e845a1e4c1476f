//! Endpoints: a container's interface on one network, and what the daemon
//! hands libnetwork for it (`buildSandboxOptions`: the port bindings and
//! exposed ports, in the order `nat.SortPortMap` leaves them).

use std::net::{IpAddr, Ipv4Addr};

use crate::plan::firewall::RuleRef;
use crate::scenario::{Container, IfaceAddr, MacAddr, Proto};

/// One `types.PortBinding` as the daemon passes it: a host port of 0 is
/// dynamic; `host_port_end` differs from `host_port` for a host range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortBinding {
    pub proto: Proto,
    pub port: u16,
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
    pub host_port_end: u16,
}

/// An operational binding (`bridgeEndpoint.portMapping`): the address the
/// port mapper used and the port it got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapped {
    pub proto: Proto,
    pub host_ip: IpAddr,
    pub host_port: u16,
    pub container_ip: Ipv4Addr,
    pub container_port: u16,
    /// Rules `DeleteForwardingTableEntry` deletes when the port is unmapped.
    pub rules: Vec<RuleRef>,
}

/// A container's exposed ports and port bindings, as `buildSandboxOptions`
/// computes them: `Config.ExposedPorts` (bridgelab walks them in port
/// order, where Docker walks a Go map) sorted with `nat.SortPortMap`, whose
/// `Less` (`hpi > hpj || pi > pj || (pi == pj && tcp)`) is no strict weak
/// order: the result is what Go's insertion sort (every sort of at most 12
/// elements) makes of that input. It puts explicit host ports first, the
/// highest first, as Docker does in practice.
/// A container port (`nat.Port`).
type Port = (Proto, u16);
/// A `nat.PortBinding`: host address and host port range (0: dynamic).
type HostSide = (Option<Ipv4Addr>, u16, u16);
/// An entry of `SortPortMap`'s list: a port, with a binding if it has one.
type Entry = (Port, Option<HostSide>);

pub fn sandbox_ports(c: &Container) -> (Vec<PortBinding>, Vec<Port>) {
    // nat.PortMap: each container port with its bindings in file order.
    let mut bindings: Vec<(Port, Vec<HostSide>)> = Vec::new();
    let mut exposed: Vec<Port> = Vec::new();
    for p in &c.publish {
        let p = p.get_ref();
        for i in 0..p.container_ports.len() as u16 {
            let key = (p.proto, p.container_ports.start + i);
            let host = p.host_ports.map(|h| h.start + i).unwrap_or(0);
            match bindings.iter_mut().find(|(k, _)| *k == key) {
                Some((_, list)) => list.push((p.host_ip, host, host)),
                None => bindings.push((key, vec![(p.host_ip, host, host)])),
            }
            exposed.push(key);
        }
    }
    for e in &c.expose {
        let e = e.get_ref();
        exposed.extend((e.ports.start..=e.ports.end).map(|port| (e.proto, port)));
    }
    exposed.sort_by_key(|(proto, port)| (*port, *proto));
    exposed.dedup();

    // SortPortMap: one entry per binding, or per port without one.
    let mut s: Vec<Entry> = Vec::new();
    for key in &exposed {
        match bindings.iter().find(|(k, _)| k == key) {
            Some((_, list)) => s.extend(list.iter().map(|b| (*key, Some(*b)))),
            None => s.push((*key, None)),
        }
    }
    let less = |i: &Entry, j: &Entry| {
        let (hpi, hpj) = (i.1.map(|b| b.1).unwrap_or(0), j.1.map(|b| b.1).unwrap_or(0));
        let (pi, pj) = (i.0 .1, j.0 .1);
        hpi > hpj || pi > pj || (pi == pj && i.0 .0 == Proto::Tcp)
    };
    // Go's insertionSort.
    for i in 1..s.len() {
        let mut j = i;
        while j > 0 && less(&s[j], &s[j - 1]) {
            s.swap(j, j - 1);
            j -= 1;
        }
    }
    let mut ports: Vec<(Proto, u16)> = Vec::new();
    for (key, _) in &s {
        if !ports.contains(key) {
            ports.push(*key);
        }
    }
    let mut out = Vec::new();
    for key in &ports {
        let mut bound = false;
        for (_, b) in s.iter().filter(|(k, b)| k == key && b.is_some()) {
            let (host_ip, host_port, host_port_end) = b.expect("filtered");
            out.push(PortBinding { proto: key.0, port: key.1, host_ip, host_port, host_port_end });
            bound = true;
        }
        // `-P`: a dynamic port on every address for an exposed port without binding.
        if c.publish_all && !bound {
            out.push(PortBinding { proto: key.0, port: key.1, host_ip: None, host_port: 0, host_port_end: 0 });
        }
    }
    (out, ports)
}

/// `netutils.GenerateMACFromIP`.
pub fn mac_from_ip(ip: Ipv4Addr) -> MacAddr {
    MacAddr::from_ipv4(ip)
}

/// A container's endpoint on one network while it exists.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// libnetwork's random endpoint ID; bridgelab's is stable.
    pub id: String,
    pub network: String,
    pub container: String,
    /// The container side's name in the sandbox: `eth0`, `eth1`, … in
    /// join order, never reused while the sandbox lives.
    pub iface: String,
    pub host_veth: String,
    pub address: IfaceAddr,
    pub mac: MacAddr,
    pub gateway: Ipv4Addr,
    pub mtu: u32,
    /// `extConnConfig`: the sandbox's bindings and exposed ports, set when
    /// external connectivity was first programmed here (and kept after a revoke).
    pub exposed: Option<Vec<(Proto, u16)>>,
    /// `portMapping`: what is mapped now.
    pub mapped: Vec<Mapped>,
    /// `containerConfig`: endpoint IDs of linked children (and, through
    /// Docker's own slip, parents) on the default bridge.
    pub link_children: Vec<String>,
    pub link_parents: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Scenario;

    fn bindings(publish: &str, expose: &str) -> (Vec<String>, Vec<String>) {
        let text = format!(
            "[daemon]\nfirewall = \"docker20\"\n[[container]]\nname = \"p1\"\npublish = [{publish}]\nexpose = [{expose}]\n"
        );
        let s = Scenario::parse("p.toml".into(), text).unwrap_or_else(|e| panic!("{e}"));
        let (b, e) = sandbox_ports(&s.spec.containers[0]);
        let b = b
            .iter()
            .map(|b| {
                let ip = b.host_ip.map(|i| format!("{i}:")).unwrap_or_default();
                format!("{ip}{}->{}/{}", b.host_port, b.port, b.proto)
            })
            .collect();
        (b, e.iter().map(|(p, n)| format!("{n}/{p}")).collect())
    }

    #[test]
    fn explicit_host_ports_come_first_highest_first() {
        // Capture 2b, p1: DNAT order 8083/tcp, 127.0.0.1:8081, 8080, then 8083/udp, 8082/udp.
        let (b, _) = bindings(r#""8080:80", "127.0.0.1:8081:80", "8082:80/udp", "8083:80/tcp", "8083:80/udp""#, "");
        assert_eq!(b, ["8083->80/tcp", "127.0.0.1:8081->80/tcp", "8080->80/tcp", "8083->80/udp", "8082->80/udp"]);
        // p2: 91, 90, then port 80 with 127.0.0.1 before the dynamic one on every address.
        let (b, _) = bindings(r#""80", "9000-9001:90-91", "127.0.0.1::80""#, "");
        assert_eq!(b, ["9001->91/tcp", "9000->90/tcp", "127.0.0.1:0->80/tcp", "0->80/tcp"]);
        // p4: 8085 before 8084.
        let (b, _) = bindings(r#""203.0.113.1:8084:80", "0.0.0.0:8085:80""#, "");
        assert_eq!(b, ["0.0.0.0:8085->80/tcp", "203.0.113.1:8084->80/tcp"]);
    }

    #[test]
    fn exposed_ports_follow_the_same_order() {
        // Capture 3/p3: 7001 before 7000; an exposed port without binding is listed too.
        let (b, e) = bindings("", r#""7000-7001""#);
        assert!(b.is_empty());
        assert_eq!(e, ["7001/tcp", "7000/tcp"]);
        let (_, e) = bindings(r#""53:53/udp""#, r#""53/tcp", "80""#);
        // The dynamic-looking 80 outranks 53 by port: Less is no strict weak order.
        assert_eq!(e, ["80/tcp", "53/udp", "53/tcp"]);
    }
}
