//! Docker 29's nftables firewaller (`--firewall-backend=nftables`): moby
//! `daemon/libnetwork/drivers/bridge/internal/nftabler/` at docker-v29.7.2
//! (`nftabler.go` `init`, `network.go` `configure`, `endpoint.go`
//! `filterDirectAccess`, `port.go`, `link.go`).
//!
//! Every call is replayed as the batch moby applies, with moby's rule
//! groups, so the order of chains and rules is the daemon's. Rules are
//! written as `nft list` prints them; the comments give moby's own text
//! where nft rewrites it.

use std::net::{IpAddr, Ipv4Addr};

use super::firewaller::{Config, Firewaller, GatewayMode, NetworkConfig};
use super::nftables::{Cmd, Family, Hook, Table};
use super::{PortMapping, RuleRef, Ruleset};
use crate::scenario::Proto;

/// The table, in both families.
pub const TABLE: &str = "docker-bridges";
const FORWARD: &str = "filter-FORWARD";
const POSTROUTING: &str = "nat-POSTROUTING";
const PREROUTING: &str = "nat-PREROUTING";
const OUTPUT: &str = "nat-OUTPUT";
const NAT: &str = "nat-prerouting-and-output";
const RAW_PREROUTING: &str = "raw-PREROUTING";
const FWD_IN_VMAP: &str = "filter-forward-in-jumps";
const FWD_OUT_VMAP: &str = "filter-forward-out-jumps";
const POST_OUT_VMAP: &str = "nat-postrouting-out-jumps";
const POST_IN_VMAP: &str = "nat-postrouting-in-jumps";

/// Rule groups (nftabler.go): a chain's rules sort by group.
const INITIAL: u32 = 0;
const FWD_IN_LEGACY_LINKS: u32 = 2;
const FWD_IN_ICC: u32 = 3;
const FWD_IN_PORTS: u32 = 4;
const FWD_IN_FINAL: u32 = 5;
const RAW_PREROUTING_PORTS: u32 = 1;

/// Docker 29's nftables firewaller, with the daemon-wide settings.
#[derive(Debug, Clone, Copy)]
pub struct Nftabler {
    pub config: Config,
}

fn chain(name: &str) -> Cmd {
    Cmd::Chain { name: name.into(), base: None }
}

fn base(name: &str, kind: &str, hook: &str, priority: i32) -> Cmd {
    let base = Some(Hook { kind: kind.into(), hook: hook.into(), priority, policy: "accept".into() });
    Cmd::Chain { name: name.into(), base }
}

fn vmap(name: &str) -> Cmd {
    Cmd::Map { name: name.into(), kind: "ifname : verdict".into() }
}

fn rule(chain: &str, group: u32, rule: impl Into<String>) -> Cmd {
    Cmd::Rule { chain: chain.into(), group, rule: rule.into(), ignore_exist: false }
}

fn element(map: &str, key: &str, chain: &str) -> Cmd {
    Cmd::Element { map: map.into(), key: key.into(), value: format!("jump {chain}") }
}

pub fn fwd_in(br: &str) -> String {
    format!("filter-forward-in__{br}")
}
pub fn fwd_out(br: &str) -> String {
    format!("filter-forward-out__{br}")
}
fn post_in(br: &str) -> String {
    format!("nat-postrouting-in__{br}")
}
fn post_out(br: &str) -> String {
    format!("nat-postrouting-out__{br}")
}

impl Nftabler {
    fn tables(&self) -> impl Iterator<Item = Family> {
        self.config.ipv4.then_some(Family::Ip).into_iter().chain(self.config.ipv6.then_some(Family::Ip6))
    }

    /// `network.configure` for IPv4: the network's chains, their verdict
    /// map elements and rules, in one batch.
    fn network_cmds(&self, n: &NetworkConfig) -> Vec<Cmd> {
        let subnet = n.prefix;
        let br = n.if_name.as_str();
        let (fin, fout, pin, pout) = (fwd_in(br), fwd_out(br), post_in(br), post_out(br));
        let mut c = vec![
            chain(&fin),
            chain(&fout),
            element(FWD_IN_VMAP, br, &fin),
            element(FWD_OUT_VMAP, br, &fout),
            chain(&pin),
            element(POST_IN_VMAP, br, &pin),
            chain(&pout),
            element(POST_OUT_VMAP, br, &pout),
            rule(&fin, INITIAL, "ct state established,related counter accept"),
            rule(&fout, INITIAL, "ct state established,related counter accept"),
        ];
        let icc = if n.icc { "accept" } else { "drop" };
        if n.internal {
            c.push(rule(
                &fin,
                INITIAL,
                format!("iifname != \"{br}\" counter drop comment \"INTERNAL NETWORK INGRESS\""),
            ));
            c.push(rule(
                &fout,
                INITIAL,
                format!("oifname != \"{br}\" counter drop comment \"INTERNAL NETWORK EGRESS\""),
            ));
            c.push(rule(&fin, FWD_IN_ICC, format!("counter {icc} comment \"ICC\"")));
            return c;
        }
        // moby: "iifname ==", br, "counter", verdict, "comment ICC".
        c.push(rule(&fin, FWD_IN_ICC, format!("iifname \"{br}\" counter {icc} comment \"ICC\"")));
        c.push(rule(&fout, INITIAL, "counter accept comment \"OUTGOING\""));
        let last = match n.gateway_mode {
            GatewayMode::NatUnprotected => "counter accept comment \"UNPROTECTED\"",
            _ => "counter drop comment \"UNPUBLISHED PORT DROP\"",
        };
        c.push(rule(&fin, FWD_IN_FINAL, last));
        let routed = n.routed();
        if routed {
            c.push(rule(&fin, INITIAL, "ip protocol icmp counter accept comment \"ICMP\""));
        }
        let (verdict, comment) = match n.host_ip {
            Some(ip) => (format!("snat to {ip}"), "SNAT"),
            None => ("masquerade".to_string(), "MASQUERADE"),
        };
        if n.masquerade && !routed {
            let prefix = format!("{}/{}", subnet.network(), subnet.prefix());
            c.push(rule(
                &pout,
                INITIAL,
                format!("oifname != \"{br}\" ip saddr {prefix} counter {verdict} comment \"{comment}\""),
            ));
        }
        if self.config.hairpin {
            c.push(rule(
                &pin,
                INITIAL,
                format!("fib saddr type local counter {verdict} comment \"{comment} FROM HOST\""),
            ));
        }
        c
    }

    /// One batch on the `ip` table (bridgelab's networks are IPv4 only).
    fn apply(&self, rules: &mut Ruleset, cmds: &[Cmd]) -> Result<(), String> {
        if cmds.is_empty() {
            return Ok(());
        }
        match rules.nft.table_mut(Family::Ip, TABLE) {
            Some(t) => t.apply(cmds),
            None => Err("nftables table is closed".into()),
        }
    }

    /// `filterDirectAccess`, on `AddEndpoint` (`CreateEndpoint`) or `DelEndpoint`.
    fn endpoint_cmds(&self, n: &NetworkConfig, ip: Ipv4Addr) -> Vec<Cmd> {
        if n.internal || n.unprotected() || n.routed() || self.config.allow_direct_routing {
            return vec![];
        }
        // moby: "iifname != {", br, ",", trusted..., "} ...": a set of one prints as its element.
        let br = &n.if_name;
        vec![rule(
            RAW_PREROUTING,
            RAW_PREROUTING_PORTS,
            format!("ip daddr {ip} iifname != \"{br}\" counter drop comment \"DROP DIRECT ACCESS\""),
        )]
    }

    /// `setPerPortRules` for the IPv4 bindings (a container address is
    /// always IPv4 here): forwarding accepts, DNAT, hairpin masquerade,
    /// loopback drops, in that order.
    fn port_cmds(&self, n: &NetworkConfig, pbs: &[PortMapping]) -> Vec<Cmd> {
        if n.internal {
            return vec![];
        }
        let br = &n.if_name;
        let mut c = Vec::new();
        // Bindings whose host address is of the container's family: NAT
        // is possible (IPv6 host addresses are docker-proxy's).
        let natted = || pbs.iter().filter(|pb| pb.host_port != 0 && pb.host_ip.is_ipv4());
        if !n.unprotected() {
            for pb in pbs {
                // The same rule for each host port of a container port: duplicates are ignored.
                c.push(Cmd::Rule {
                    chain: fwd_in(br),
                    group: FWD_IN_PORTS,
                    rule: format!(
                        "ip daddr {} {} dport {} counter accept",
                        pb.container_ip, pb.proto, pb.container_port
                    ),
                    ignore_exist: true,
                });
            }
        }
        let skip = if self.config.hairpin { String::new() } else { format!("iifname != \"{br}\" ") };
        for pb in natted() {
            let daddr = match pb.host_ip {
                IpAddr::V4(ip) if !ip.is_unspecified() => format!("ip daddr {ip} "),
                _ => String::new(),
            };
            c.push(rule(
                NAT,
                INITIAL,
                format!(
                    "{skip}{daddr}{} dport {} counter dnat to {}:{} comment \"DNAT\"",
                    pb.proto, pb.host_port, pb.container_ip, pb.container_port
                ),
            ));
        }
        if self.config.hairpin {
            for pb in natted() {
                c.push(rule(
                    &post_in(br),
                    INITIAL,
                    format!(
                        "ip saddr {ip} ip daddr {ip} {} dport {} counter masquerade comment \"MASQ TO OWN PORT\"",
                        pb.proto,
                        pb.container_port,
                        ip = pb.container_ip
                    ),
                ));
            }
        }
        for pb in natted().filter(|pb| pb.host_ip.is_loopback()) {
            c.push(rule(
                RAW_PREROUTING,
                RAW_PREROUTING_PORTS,
                format!(
                    "iifname != \"lo\" ip daddr {} {} dport {} counter drop comment \"DROP REMOTE LOOPBACK\"",
                    pb.host_ip, pb.proto, pb.host_port
                ),
            ));
        }
        c
    }

    /// `updateLegacyLinkRules` for one exposed port.
    fn link_cmds(br: &str, parent: Ipv4Addr, child: Ipv4Addr, proto: Proto, port: u16) -> Vec<Cmd> {
        vec![
            rule(
                &fwd_in(br),
                FWD_IN_LEGACY_LINKS,
                format!("ip saddr {parent} ip daddr {child} {proto} dport {port} counter accept"),
            ),
            rule(
                &fwd_in(br),
                FWD_IN_LEGACY_LINKS,
                format!("ip saddr {child} {proto} sport {port} ip daddr {parent} counter accept"),
            ),
        ]
    }
}

impl Firewaller for Nftabler {
    fn backend(&self) -> &'static str {
        "nftables"
    }

    fn config(&self) -> &Config {
        &self.config
    }

    /// Never called: see [`Firewaller::filter_forward_dropper`].
    fn filter_forward_drop(&self, _rules: &mut Ruleset) {}

    /// nftables cannot drop what is not Docker's: dockerd checks that
    /// forwarding is on instead (`checkIPv4Forwarding`), and never sets a policy.
    fn filter_forward_dropper(&self) -> bool {
        false
    }

    /// `NewNftabler` → `init` for each family: base chains, empty verdict
    /// maps and the jumps through them.
    fn init(&self, rules: &mut Ruleset) {
        let r = &mut rules.nft;
        for family in self.tables() {
            // For output, only the proxy (no hairpin) skips loopback
            // addresses; moby writes "ip daddr != 127.0.0.1/8", nft lists the network.
            let skip = match (self.config.hairpin, family) {
                (true, _) => "",
                (false, Family::Ip) => "ip daddr != 127.0.0.0/8 ",
                (false, Family::Ip6) => "ip6 daddr != ::1 ",
            };
            let cmds = [
                base(FORWARD, "filter", "forward", 0),
                vmap(FWD_IN_VMAP),
                rule(FORWARD, INITIAL, format!("oifname vmap @{FWD_IN_VMAP}")),
                vmap(FWD_OUT_VMAP),
                rule(FORWARD, INITIAL, format!("iifname vmap @{FWD_OUT_VMAP}")),
                base(POSTROUTING, "nat", "postrouting", 100),
                vmap(POST_OUT_VMAP),
                rule(POSTROUTING, INITIAL, format!("iifname vmap @{POST_OUT_VMAP}")),
                vmap(POST_IN_VMAP),
                rule(POSTROUTING, INITIAL, format!("oifname vmap @{POST_IN_VMAP}")),
                chain(NAT),
                base(PREROUTING, "nat", "prerouting", -100),
                rule(PREROUTING, INITIAL, format!("fib daddr type local counter jump {NAT}")),
                base(OUTPUT, "nat", "output", -100),
                rule(OUTPUT, INITIAL, format!("{skip}fib daddr type local counter jump {NAT}")),
                base(RAW_PREROUTING, "filter", "prerouting", -300),
            ];
            // A daemon start makes the table anew (the update template
            // flushes what an earlier daemon left).
            r.tables.retain(|t| !(t.family == family && t.name == TABLE));
            let mut t = Table::new(family, TABLE);
            t.apply(&cmds).expect("a fresh table takes the base chains");
            r.tables.push(t);
        }
    }

    /// `NewNetwork`: the network's rules (IPv4; bridgelab's networks have
    /// no IPv6, so the `ip6` table gets none, as in moby).
    fn new_network(&self, r: &mut Ruleset, n: &NetworkConfig) -> Result<(), String> {
        let cmds = self.network_cmds(n);
        self.apply(r, &cmds).map_err(|e| format!("adding rules for bridge {}: {e}", n.if_name))
    }

    /// `DelNetworkLevelRules`: the network's batch reversed. A failure is
    /// only logged by moby.
    fn del_network(&self, r: &mut Ruleset, n: &NetworkConfig) {
        let undo: Vec<Cmd> = self.network_cmds(n).iter().rev().map(Cmd::reverse).collect();
        let _ = self.apply(r, &undo);
    }

    fn add_endpoint(&self, r: &mut Ruleset, n: &NetworkConfig, ip: Ipv4Addr) -> Result<(), String> {
        let cmds = self.endpoint_cmds(n, ip);
        self.apply(r, &cmds).map_err(|e| format!("adding rules for bridge {}: {e}", n.if_name))
    }

    fn del_endpoint(&self, r: &mut Ruleset, n: &NetworkConfig, ip: Ipv4Addr) {
        let cmds: Vec<Cmd> = self.endpoint_cmds(n, ip).iter().map(Cmd::reverse).collect();
        let _ = self.apply(r, &cmds);
    }

    /// `AddPorts`: one batch for all of an endpoint's bindings.
    fn add_ports(&self, r: &mut Ruleset, n: &NetworkConfig, pbs: &[PortMapping]) -> Result<Vec<RuleRef>, String> {
        let cmds = self.port_cmds(n, pbs);
        self.apply(r, &cmds).map_err(|e| format!("adding rules for bridge {}: {e}", n.if_name))?;
        // No iptables rules: the controller deletes these through `del_ports`.
        Ok(vec![])
    }

    /// `DelPorts`.
    fn del_ports(&self, r: &mut Ruleset, n: &NetworkConfig, pbs: &[PortMapping]) {
        // A missing rule fails the batch; moby's DelPorts caller only logs that.
        let cmds: Vec<Cmd> = self.port_cmds(n, pbs).iter().map(Cmd::reverse).collect();
        let _ = self.apply(r, &cmds);
    }

    /// `AddLink` for a child's exposed ports.
    fn add_link(
        &self,
        r: &mut Ruleset,
        n: &NetworkConfig,
        parent: Ipv4Addr,
        child: Ipv4Addr,
        ports: &[(Proto, u16)],
    ) -> Result<(), String> {
        let br = n.if_name.as_str();
        let cmds: Vec<Cmd> = ports.iter().flat_map(|(p, port)| Self::link_cmds(br, parent, child, *p, *port)).collect();
        self.apply(r, &cmds).map_err(|e| format!("adding rules for bridge {br}: {e}"))
    }

    /// `DelLink` (a failure is only logged).
    fn del_link(&self, r: &mut Ruleset, n: &NetworkConfig, parent: Ipv4Addr, child: Ipv4Addr, ports: &[(Proto, u16)]) {
        let br = n.if_name.as_str();
        let cmds: Vec<Cmd> = ports
            .iter()
            .flat_map(|(p, port)| Self::link_cmds(br, parent, child, *p, *port))
            .map(|c| c.reverse())
            .collect();
        let _ = self.apply(r, &cmds);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(name: &str) -> String {
        let path = format!("{}/tests/fixtures/docker29-nftables/{name}.nft", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn net(bridge: &str, subnet: &str) -> NetworkConfig {
        NetworkConfig {
            if_name: bridge.into(),
            prefix: subnet.parse().unwrap(),
            icc: true,
            internal: false,
            masquerade: true,
            gateway_mode: GatewayMode::Nat,
            host_ip: None,
        }
    }

    fn nftabler(proxy: bool, ipv6: bool) -> Nftabler {
        Nftabler { config: Config { ipv4: true, ipv6, hairpin: !proxy, allow_direct_routing: false } }
    }

    fn port(host: &str, host_port: u16, container: &str, container_port: u16) -> PortMapping {
        PortMapping {
            container: "c1".into(),
            proto: Proto::Tcp,
            host_ip: host.parse().unwrap(),
            host_port,
            container_ip: container.parse().unwrap(),
            container_port,
        }
    }

    /// The daemon of moby's doc test: docker0, then the doc's networks,
    /// then per container its endpoint and its ports.
    fn daemon(proxy: bool, nets: &[&NetworkConfig], ctrs: &[(&NetworkConfig, &str, Vec<PortMapping>)]) -> Ruleset {
        let nft = nftabler(proxy, true);
        let mut r = Ruleset::default();
        nft.init(&mut r);
        nft.new_network(&mut r, &net("docker0", "172.17.0.0/16")).unwrap();
        for n in nets {
            nft.new_network(&mut r, n).unwrap();
        }
        for (n, ip, ports) in ctrs {
            nft.add_endpoint(&mut r, n, ip.parse().unwrap()).unwrap();
            nft.add_ports(&mut r, n, ports).unwrap();
        }
        r
    }

    fn ip_table(r: &Ruleset) -> String {
        assert!(r.tables.is_empty(), "no iptables tables");
        r.nft.table(Family::Ip, TABLE).unwrap().listing()
    }

    /// `-p 8080:80` with the proxy on: 0.0.0.0 and the proxy's `::`.
    fn published() -> Vec<PortMapping> {
        vec![port("0.0.0.0", 8080, "192.0.2.2", 80), port("::", 8080, "192.0.2.2", 80)]
    }

    #[test]
    fn new_daemon() {
        assert_eq!(ip_table(&daemon(true, &[], &[])), doc("new-daemon"));
    }

    #[test]
    fn usernet_portmap() {
        let b = net("bridge1", "192.0.2.0/24");
        assert_eq!(ip_table(&daemon(true, &[&b], &[(&b, "192.0.2.2", published())])), doc("usernet-portmap"));
    }

    #[test]
    fn usernet_portmap_lo() {
        let b = net("bridge1", "192.0.2.0/24");
        let ports = vec![port("127.0.0.1", 8080, "192.0.2.2", 80)];
        assert_eq!(ip_table(&daemon(true, &[&b], &[(&b, "192.0.2.2", ports)])), doc("usernet-portmap-lo"));
    }

    #[test]
    fn usernet_portmap_noproxy() {
        let b = net("bridge1", "192.0.2.0/24");
        let ports = vec![port("0.0.0.0", 8080, "192.0.2.2", 80)];
        assert_eq!(ip_table(&daemon(false, &[&b], &[(&b, "192.0.2.2", ports)])), doc("usernet-portmap-noproxy"));
    }

    #[test]
    fn usernet_portmap_noicc() {
        let b = NetworkConfig { icc: false, ..net("bridge1", "192.0.2.0/24") };
        assert_eq!(ip_table(&daemon(true, &[&b], &[(&b, "192.0.2.2", published())])), doc("usernet-portmap-noicc"));
    }

    #[test]
    fn usernet_internal() {
        let icc = NetworkConfig { internal: true, ..net("bridgeICC", "192.0.2.0/24") };
        let noicc = NetworkConfig { internal: true, icc: false, ..net("bridgeNoICC", "198.51.100.0/24") };
        let r = daemon(true, &[&icc, &noicc], &[(&icc, "192.0.2.2", vec![]), (&noicc, "198.51.100.2", vec![])]);
        assert_eq!(ip_table(&r), doc("usernet-internal"));
    }

    #[test]
    fn usernet_portmap_routed() {
        let b = NetworkConfig { gateway_mode: GatewayMode::Routed, ..net("bridge1", "192.0.2.0/24") };
        // Routed: the port mapper maps no host port (HostPort 0), so no DNAT.
        let ports = vec![port("0.0.0.0", 0, "192.0.2.2", 80)];
        assert_eq!(ip_table(&daemon(true, &[&b], &[(&b, "192.0.2.2", ports)])), doc("usernet-portmap-routed"));
    }

    #[test]
    fn usernet_portmap_natunprot() {
        let b = NetworkConfig { gateway_mode: GatewayMode::NatUnprotected, ..net("bridge1", "192.0.2.0/24") };
        let r = daemon(true, &[&b], &[(&b, "192.0.2.2", published())]);
        assert_eq!(ip_table(&r), doc("usernet-portmap-natunprot"));
    }

    #[test]
    fn the_ip6_table_has_base_chains_and_empty_maps() {
        let r = daemon(true, &[], &[]);
        let t = r.nft.table(Family::Ip6, TABLE).unwrap();
        assert!(t.maps.iter().all(|m| m.elements.is_empty()));
        assert!(t
            .listing()
            .contains("\t\tip6 daddr != ::1 fib daddr type local counter jump nat-prerouting-and-output\n"));
        assert_eq!(t.chains.len(), 6);
    }

    #[test]
    fn a_network_and_its_ports_go_without_a_trace() {
        let nft = nftabler(false, false);
        let mut r = Ruleset::default();
        nft.init(&mut r);
        let fresh = r.clone();
        let b = net("bridge1", "192.0.2.0/24");
        nft.new_network(&mut r, &b).unwrap();
        let ports = vec![port("127.0.0.1", 8080, "192.0.2.2", 80), port("0.0.0.0", 8081, "192.0.2.2", 81)];
        nft.add_endpoint(&mut r, &b, "192.0.2.2".parse().unwrap()).unwrap();
        nft.add_ports(&mut r, &b, &ports).unwrap();
        nft.add_link(&mut r, &b, "192.0.2.3".parse().unwrap(), "192.0.2.2".parse().unwrap(), &[(Proto::Udp, 53)])
            .unwrap();
        let listing = ip_table(&r);
        assert!(listing.contains("ip saddr 192.0.2.2 udp sport 53 ip daddr 192.0.2.3 counter accept"), "{listing}");
        assert!(listing.contains("ip saddr 192.0.2.2 ip daddr 192.0.2.2 tcp dport 81 counter masquerade"), "{listing}");
        nft.del_link(&mut r, &b, "192.0.2.3".parse().unwrap(), "192.0.2.2".parse().unwrap(), &[(Proto::Udp, 53)]);
        nft.del_ports(&mut r, &b, &ports);
        nft.del_endpoint(&mut r, &b, "192.0.2.2".parse().unwrap());
        nft.del_network(&mut r, &b);
        assert_eq!(r.nft, fresh.nft);
    }

    #[test]
    fn a_second_binding_of_one_container_port_fails_with_the_proxy_off() {
        // setPerPortHairpinMasq does not set IgnoreExist: `-p 8080:80 -p 8081:80`
        // makes the same "MASQ TO OWN PORT" rule twice, and the batch fails.
        let nft = nftabler(false, false);
        let mut r = Ruleset::default();
        nft.init(&mut r);
        let b = net("bridge1", "192.0.2.0/24");
        nft.new_network(&mut r, &b).unwrap();
        let before = r.clone();
        let ports = vec![port("0.0.0.0", 8080, "192.0.2.2", 80), port("0.0.0.0", 8081, "192.0.2.2", 80)];
        let e = nft.add_ports(&mut r, &b, &ports).unwrap_err();
        assert!(e.starts_with("adding rules for bridge bridge1: adding rule:'ip saddr 192.0.2.2"), "{e}");
        assert_eq!(r.nft, before.nft);
    }
}
