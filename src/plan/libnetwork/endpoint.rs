//! Endpoints: a container's interface on one network, and what the daemon
//! hands libnetwork for it (`buildSandboxOptions`: the port bindings and
//! exposed ports, in the order `nat.SortPortMap` leaves them).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use crate::plan::firewall::RuleRef;
use crate::scenario::{Container, ExposeSpec, IfaceAddr, MacAddr, PortSpec, Proto};

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

/// 28's `cmpPortBinding` (bridge port_mapping_linux.go @v28.5.2, by which
/// `sortAndNormPBs` orders an endpoint's bindings before they are mapped):
/// exact host ports before ranges and dynamic ports, then by container
/// port, protocol (tcp before udp), host port, host port end, host address
/// (none, the default, first). The container address is the endpoint's.
pub fn cmp_port_binding(a: &PortBinding, b: &PortBinding) -> std::cmp::Ordering {
    let range = |p: &PortBinding| p.host_port == 0 || p.host_port != p.host_port_end.max(p.host_port);
    let end = |p: &PortBinding| p.host_port_end.max(p.host_port);
    (range(a), a.port, a.proto == Proto::Udp, a.host_port, end(a), a.host_ip).cmp(&(
        range(b),
        b.port,
        b.proto == Proto::Udp,
        b.host_port,
        end(b),
        b.host_ip,
    ))
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

/// A container port (`nat.Port`).
pub type Port = (Proto, u16);

/// What `buildSandboxOptions` hands libnetwork: the bindings in order, and
/// the exposed ports in order.
pub type SandboxPorts = Arc<(Vec<PortBinding>, Vec<Port>)>;

/// [`sandbox_ports`] of containers with the same ports, computed once: a
/// scenario may start a thousand containers publishing thousands of ports.
#[derive(Debug, Default)]
pub struct PortsCache(HashMap<(Vec<PortSpec>, Vec<ExposeSpec>, bool), SandboxPorts>);

impl PortsCache {
    pub fn get(&mut self, c: &Container) -> SandboxPorts {
        let key = (
            c.publish.iter().map(|p| p.get_ref().clone()).collect(),
            c.expose.iter().map(|e| *e.get_ref()).collect(),
            c.publish_all,
        );
        self.0.entry(key).or_insert_with(|| Arc::new(sandbox_ports(c))).clone()
    }
}
/// A `nat.PortBinding`: host address and host port range (0: dynamic).
type HostSide = (Option<Ipv4Addr>, u16, u16);
/// An entry of `SortPortMap`'s list: a port, with a binding if it has one.
type Entry = (Port, Option<HostSide>);

/// A container's exposed ports and port bindings, as `buildSandboxOptions`
/// computes them: `Config.ExposedPorts` (bridgelab walks them in port
/// order, where Docker walks a Go map) sorted with `nat.SortPortMap`, whose
/// `Less` (`hpi > hpj || pi > pj || (pi == pj && tcp)`) is no strict weak
/// order: the result is what Go 1.19's `sort.Sort` makes of that input
/// ([`gosort`](super::gosort)). It puts explicit host ports first, the
/// highest first, as Docker does in practice.
pub fn sandbox_ports(c: &Container) -> (Vec<PortBinding>, Vec<Port>) {
    // nat.PortMap: each container port with its bindings in file order.
    let mut bindings: HashMap<Port, Vec<HostSide>> = HashMap::new();
    let mut exposed: Vec<Port> = Vec::new();
    for p in &c.publish {
        let p = p.get_ref();
        for i in 0..p.container_ports.len() as u16 {
            let key = (p.proto, p.container_ports.start + i);
            let host = p.host_ports.map(|h| h.start + i).unwrap_or(0);
            bindings.entry(key).or_default().push((p.host_ip, host, host));
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
    let mut s: Vec<Entry> = Vec::with_capacity(exposed.len());
    for key in &exposed {
        match bindings.get(key) {
            Some(list) => s.extend(list.iter().map(|b| (*key, Some(*b)))),
            None => s.push((*key, None)),
        }
    }
    let host_port = |e: &Entry| e.1.map(|b| b.1).unwrap_or(0);
    // With one host port for all and one entry per port, Less is a strict
    // order (higher port first, tcp before udp): every sort gives the same,
    // and it is the ports in reverse, made without comparing.
    let one_host_port = s.iter().all(|e| host_port(e) == host_port(&s[0]));
    let one_each = bindings.values().all(|l| l.len() == 1);
    if one_host_port && one_each {
        let mut by_port: Vec<Entry> = Vec::with_capacity(s.len());
        let mut i = s.len();
        while i > 0 {
            // `s` is in (port, proto) order: take each port's run, tcp first.
            let mut start = i - 1;
            while start > 0 && s[start - 1].0 .1 == s[i - 1].0 .1 {
                start -= 1;
            }
            by_port.extend_from_slice(&s[start..i]);
            i = start;
        }
        s = by_port;
    } else {
        super::gosort::sort(&mut s, |i: &Entry, j: &Entry| {
            let (hpi, hpj) = (host_port(i), host_port(j));
            let (pi, pj) = (i.0 .1, j.0 .1);
            hpi > hpj || pi > pj || (pi == pj && i.0 .0 == Proto::Tcp)
        });
    }
    // Each port where it first appears, with its bindings in sorted order.
    let mut ports: Vec<Port> = Vec::new();
    let mut sorted: HashMap<Port, Vec<HostSide>> = HashMap::new();
    for (key, b) in &s {
        let list = sorted.entry(*key).or_insert_with(|| {
            ports.push(*key);
            Vec::new()
        });
        list.extend(b);
    }
    let mut out = Vec::new();
    for key in &ports {
        let list = &sorted[key];
        for &(host_ip, host_port, host_port_end) in list {
            out.push(PortBinding { proto: key.0, port: key.1, host_ip, host_port, host_port_end });
        }
        // `-P`: a dynamic port on every address for an exposed port without binding.
        if c.publish_all && list.is_empty() {
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
    pub exposed: Option<SandboxPorts>,
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
