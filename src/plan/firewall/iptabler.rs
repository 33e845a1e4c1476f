//! Docker 28.5.2's and Docker 29's iptables backend: moby's `iptabler`
//! (`libnetwork/drivers/bridge/internal/iptabler/{iptabler,network,port,
//! endpoint,link}.go` @v28.5.2; `daemon/libnetwork/drivers/bridge/internal/
//! iptabler/` @docker-v29.7.2) and the controller's `setupUserChain`
//! (`libnetwork/firewall_linux.go`). One implementation; what 29 changed is
//! the data in [`Release`].
//!
//! Each moby call is replayed with its own check, as `iptables.Rule`'s
//! `Insert`/`Append`/`Delete` and `ProgramRule` do it: add only when absent,
//! delete only when present. Rules are written in `iptables-save`'s
//! argument order; comments give moby's own.

use std::net::{IpAddr, Ipv4Addr};

use super::firewaller::{Config, Firewaller, NetworkConfig};
use super::{PortMapping, RuleRef, Ruleset, Table};
use crate::scenario::Proto;

const DOCKER: &str = "DOCKER";
const FORWARD_CHAIN: &str = "DOCKER-FORWARD";
const BRIDGE_CHAIN: &str = "DOCKER-BRIDGE";
const CT_CHAIN: &str = "DOCKER-CT";
const INTERNAL_CHAIN: &str = "DOCKER-INTERNAL";
const ISOLATION1: &str = "DOCKER-ISOLATION-STAGE-1";
const ISOLATION2: &str = "DOCKER-ISOLATION-STAGE-2";
const OLD_ISOLATION: &str = "DOCKER-ISOLATION";
const USER: &str = "DOCKER-USER";

/// Where Docker 28 and 29 differ, as data.
#[derive(Debug)]
pub struct Release {
    /// 28: inter-network isolation in `DOCKER-ISOLATION-STAGE-1/2`
    /// (`setINC`), and internal networks' drops in STAGE-1. 29 (commit
    /// 1ad9599da7) has no INC chains: internal drops go to `DOCKER-INTERNAL`.
    pub isolation_chains: bool,
    /// 28: with the userland proxy on, `nat DOCKER -i br -j RETURN` per
    /// network ("SKIP DNAT"); 29 dropped it.
    pub skip_dnat: bool,
    /// `removeIPChains`' order (it matters: `-X` fails while a rule jumps there).
    pub removed_chains: &'static [(bool, &'static str)],
}

/// `(nat?, chain)` pairs for [`Release::removed_chains`].
pub static DOCKER28: Release = Release {
    isolation_chains: true,
    skip_dnat: true,
    removed_chains: &[
        (true, DOCKER),
        (false, DOCKER),
        (false, FORWARD_CHAIN),
        (false, BRIDGE_CHAIN),
        (false, CT_CHAIN),
        (false, ISOLATION1),
        (false, ISOLATION2),
        (false, OLD_ISOLATION),
    ],
};

pub static DOCKER29: Release = Release {
    isolation_chains: false,
    skip_dnat: false,
    removed_chains: &[
        (true, DOCKER),
        (false, FORWARD_CHAIN),
        (false, BRIDGE_CHAIN),
        (false, DOCKER),
        (false, CT_CHAIN),
        (false, INTERNAL_CHAIN),
        (false, ISOLATION1),
        (false, ISOLATION2),
        (false, OLD_ISOLATION),
    ],
};

/// An address family's tables.
#[derive(Debug, Clone, Copy)]
struct Fam {
    filter: Table,
    nat: Table,
    /// `loopbackAddress`.
    loopback: &'static str,
}

const V4: Fam = Fam { filter: Table::Filter, nat: Table::Nat, loopback: "127.0.0.0/8" };
const V6: Fam = Fam { filter: Table::Filter6, nat: Table::Nat6, loopback: "::1/128" };

/// The iptables firewaller of one release.
#[derive(Debug)]
pub struct Iptabler {
    pub config: Config,
    pub release: &'static Release,
}

fn r(t: Table, chain: &str, rule: String) -> RuleRef {
    (t, chain.to_string(), rule)
}

/// `Rule.Insert`: at the head, unless the rule is anywhere in the chain.
fn insert(rs: &mut Ruleset, (t, c, rule): RuleRef) {
    rs.insert_unless_present(t, &c, rule);
}
/// `Rule.Append`: at the end, unless it is there.
fn append(rs: &mut Ruleset, (t, c, rule): RuleRef) {
    rs.append_unless_present(t, &c, rule);
}
/// `Rule.Delete`: the first copy, if there.
fn delete(rs: &mut Ruleset, x: RuleRef) {
    rs.delete(&x);
}
/// `programChainRule`: insert or delete.
fn program(rs: &mut Ruleset, x: RuleRef, enable: bool) {
    if enable {
        insert(rs, x)
    } else {
        delete(rs, x)
    }
}
/// `appendOrDelChainRule`: append or delete.
fn append_or_del(rs: &mut Ruleset, x: RuleRef, enable: bool) {
    if enable {
        append(rs, x)
    } else {
        delete(rs, x)
    }
}
/// `EnsureJumpRule`: the jump moves to the head of `from`.
fn ensure_jump(rs: &mut Ruleset, t: Table, from: &str, to: &str) {
    let rule = format!("-j {to}");
    rs.delete(&r(t, from, rule.clone()));
    rs.insert(t, from, rule);
}

/// `addNATJumpRules`' two rules.
fn nat_jumps(f: Fam, hairpin: bool) -> [RuleRef; 2] {
    let pre = r(f.nat, "PREROUTING", format!("-m addrtype --dst-type LOCAL -j {DOCKER}"));
    let out = if hairpin {
        format!("-m addrtype --dst-type LOCAL -j {DOCKER}")
    } else {
        format!("! -d {} -m addrtype --dst-type LOCAL -j {DOCKER}", f.loopback)
    };
    [pre, r(f.nat, "OUTPUT", out)]
}

impl Iptabler {
    /// `removeIPChains`: what an earlier daemon left goes, as far as `-X` lets it.
    fn remove_ip_chains(&self, rs: &mut Ruleset, f: Fam) {
        delete(rs, r(f.filter, "FORWARD", format!("-j {OLD_ISOLATION}")));
        for &(nat, chain) in self.release.removed_chains {
            let t = if nat { f.nat } else { f.filter };
            if nat {
                // ChainInfo.Remove: the jumps into the nat chain first.
                for x in nat_jumps(f, false).into_iter().chain(nat_jumps(f, true)) {
                    delete(rs, x);
                }
            }
            rs.flush_chain(t, chain);
            rs.delete_chain(t, chain);
        }
    }

    /// `setupIPChains`.
    fn setup_ip_chains(&self, rs: &mut Ruleset, f: Fam) {
        rs.new_chain(f.nat, DOCKER);
        for chain in [DOCKER, FORWARD_CHAIN, BRIDGE_CHAIN, CT_CHAIN] {
            rs.new_chain(f.filter, chain);
        }
        if self.release.isolation_chains {
            rs.new_chain(f.filter, ISOLATION1);
            rs.new_chain(f.filter, ISOLATION2);
        } else {
            rs.new_chain(f.filter, INTERNAL_CHAIN);
        }
        for x in nat_jumps(f, self.config.hairpin) {
            append(rs, x);
        }
        // (Re-)inserted at the top, in reverse order.
        ensure_jump(rs, f.filter, "FORWARD", FORWARD_CHAIN);
        ensure_jump(rs, f.filter, FORWARD_CHAIN, BRIDGE_CHAIN);
        let second = if self.release.isolation_chains { ISOLATION1 } else { INTERNAL_CHAIN };
        ensure_jump(rs, f.filter, FORWARD_CHAIN, second);
        ensure_jump(rs, f.filter, FORWARD_CHAIN, CT_CHAIN);
        // Rules a 28.0.0 daemon put in FORWARD go (its ipset rules never
        // exist here; the jump to STAGE-1 may).
        delete(rs, r(f.filter, "FORWARD", format!("-j {ISOLATION1}")));
    }

    /// `setIcc` (in DOCKER-FORWARD; the FORWARD copies older daemons made go).
    fn set_icc(rs: &mut Ruleset, br: &str, icc: bool, internal: bool, insert_: bool) {
        let accept = format!("-i {br} -o {br} -j ACCEPT");
        let drop = format!("-i {br} -o {br} -j DROP");
        if insert_ && icc && internal {
            append(rs, r(Table::Filter, FORWARD_CHAIN, accept.clone()));
        } else {
            delete(rs, r(Table::Filter, FORWARD_CHAIN, accept.clone()));
        }
        if insert_ && !icc {
            append(rs, r(Table::Filter, FORWARD_CHAIN, drop.clone()));
        } else {
            delete(rs, r(Table::Filter, FORWARD_CHAIN, drop.clone()));
        }
        if insert_ {
            delete(rs, r(Table::Filter, "FORWARD", accept));
            delete(rs, r(Table::Filter, "FORWARD", drop));
        }
    }

    /// `setupNonInternalNetworkRules`.
    fn non_internal_rules(&self, rs: &mut Ruleset, nc: &NetworkConfig, enable: bool) {
        let br = &nc.if_name;
        let subnet = format!("{}/{}", nc.prefix.network(), nc.prefix.prefix());
        let to = match nc.host_ip {
            Some(ip) => format!("SNAT --to-source {ip}"),
            None => "MASQUERADE".to_string(),
        };
        // -s SUBNET ! -o br -j MASQUERADE|SNAT
        let nat_rule = r(Table::Nat, "POSTROUTING", format!("-s {subnet} ! -o {br} -j {to}"));
        // -m addrtype --src-type LOCAL -o br -j MASQUERADE|SNAT
        let hp_rule = r(Table::Nat, "POSTROUTING", format!("-o {br} -m addrtype --src-type LOCAL -j {to}"));
        if nc.masquerade {
            if !nc.routed() {
                program(rs, nat_rule, enable);
            }
            if !self.config.hairpin && self.release.skip_dnat {
                // -t nat DOCKER -i br -j RETURN ("SKIP DNAT")
                program(rs, r(Table::Nat, DOCKER, format!("-i {br} -j RETURN")), enable);
            }
        }
        program(rs, hp_rule, enable && self.config.hairpin);
        Self::set_icc(rs, br, nc.icc, false, enable);
        if nc.routed() {
            // setICMP: -o br -p icmp -j ACCEPT
            append_or_del(rs, r(Table::Filter, DOCKER, format!("-o {br} -p icmp -j ACCEPT")), enable);
        }
        let out_no_icc = format!("-i {br} ! -o {br} -j ACCEPT");
        if enable {
            delete(rs, r(Table::Filter, "FORWARD", out_no_icc.clone()));
        }
        if nc.icc {
            let out_icc = format!("-i {br} -j ACCEPT");
            append_or_del(rs, r(Table::Filter, FORWARD_CHAIN, out_icc.clone()), enable);
            if enable {
                delete(rs, r(Table::Filter, "FORWARD", out_icc));
            }
        } else {
            append_or_del(rs, r(Table::Filter, FORWARD_CHAIN, out_no_icc), enable);
        }
    }

    /// `setDefaultForwardRule`: `! -i br -o br -j DROP|ACCEPT`, appended to DOCKER.
    fn default_forward(rs: &mut Ruleset, nc: &NetworkConfig, enable: bool) {
        let action = if nc.unprotected() { "ACCEPT" } else { "DROP" };
        let br = &nc.if_name;
        append_or_del(rs, r(Table::Filter, DOCKER, format!("! -i {br} -o {br} -j {action}")), enable);
    }

    fn ct_rule(br: &str) -> RuleRef {
        r(Table::Filter, CT_CHAIN, format!("-o {br} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"))
    }

    fn bridge_jump(br: &str) -> RuleRef {
        r(Table::Filter, BRIDGE_CHAIN, format!("-o {br} -j {DOCKER}"))
    }

    /// 28's `setINC`: ProgramRule (`-I`/`-A` when absent, `-D` when present).
    fn set_inc(rs: &mut Ruleset, br: &str, routed: bool, enable: bool) {
        let i = |rs: &mut Ruleset, x: RuleRef| program(rs, x, enable);
        if routed {
            i(rs, r(Table::Filter, ISOLATION1, format!("-o {br} -j RETURN")));
            i(
                rs,
                r(Table::Filter, ISOLATION1, format!("-i {br} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT")),
            );
        }
        append_or_del(rs, r(Table::Filter, ISOLATION1, format!("-i {br} ! -o {br} -j {ISOLATION2}")), enable);
        i(rs, r(Table::Filter, ISOLATION2, format!("-o {br} -j DROP")));
    }

    /// `setupInternalNetworkRules`.
    fn internal_rules(&self, rs: &mut Ruleset, nc: &NetworkConfig, insert_: bool) {
        let br = &nc.if_name;
        let subnet = format!("{}/{}", nc.prefix.network(), nc.prefix.prefix());
        let chain = if self.release.isolation_chains { ISOLATION1 } else { INTERNAL_CHAIN };
        // -i br ! -d SUBNET -j DROP, then -o br ! -s SUBNET -j DROP
        program(rs, r(Table::Filter, chain, format!("! -d {subnet} -i {br} -j DROP")), insert_);
        program(rs, r(Table::Filter, chain, format!("! -s {subnet} -o {br} -j DROP")), insert_);
        Self::set_icc(rs, br, nc.icc, true, insert_);
    }

    /// `setupIPTables`: the rules in order, or (`enable` false) the clean
    /// functions in the order they were registered.
    fn network_rules(&self, rs: &mut Ruleset, nc: &NetworkConfig, enable: bool) {
        if nc.internal {
            self.internal_rules(rs, nc, enable);
            return;
        }
        let br = &nc.if_name;
        self.non_internal_rules(rs, nc, enable);
        if enable {
            // deleteLegacyFilterRules: 20.10's per-bridge FORWARD rules.
            delete(rs, r(Table::Filter, "FORWARD", format!("-o {br} -j {DOCKER}")));
            let est = format!("-o {br} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT");
            delete(rs, r(Table::Filter, "FORWARD", est));
        }
        Self::default_forward(rs, nc, enable);
        append_or_del(rs, Self::ct_rule(br), enable);
        append_or_del(rs, Self::bridge_jump(br), enable);
        if self.release.isolation_chains {
            Self::set_inc(rs, br, nc.routed(), enable);
        }
    }

    /// The rules `setPerPortIptables` makes for one binding, in order, with
    /// how each is added: `(rule, append?)`.
    fn port_rules(&self, nc: &NetworkConfig, b: &PortMapping) -> Vec<(RuleRef, bool)> {
        let mut out = Vec::new();
        if !self.config.ipv4 || nc.internal {
            return out;
        }
        let p = b.proto;
        // filterPortMappedOnLoopback: remote packets to a port published
        // on 127.x are dropped (IPv4 only; not with a NAT-less binding).
        if let IpAddr::V4(h) = b.host_ip {
            if b.host_port != 0 && h.is_loopback() {
                let drop = format!("-d {h}/32 ! -i lo -p {p} -m {p} --dport {} -j DROP", b.host_port);
                out.push((r(Table::Raw, "PREROUTING", drop), true));
            }
        }
        // A v4 container published on a v6 host address: docker-proxy only.
        let IpAddr::V4(host) = b.host_ip else { return out };
        let br = &nc.if_name;
        let c = b.container_ip;
        // setPerPortNAT, only with a host port (routed mode has none).
        if b.host_port != 0 {
            let daddr = if host.is_unspecified() { String::new() } else { format!("-d {host}/32 ") };
            let not_br = if self.config.hairpin { String::new() } else { format!("! -i {br} ") };
            let dnat = format!(
                "{daddr}{not_br}-p {p} -m {p} --dport {} -j DNAT --to-destination {c}:{}",
                b.host_port, b.container_port
            );
            out.push((r(Table::Nat, DOCKER, dnat), true));
            if self.config.hairpin {
                let masq = format!("-s {c}/32 -d {c}/32 -p {p} -m {p} --dport {} -j MASQUERADE", b.container_port);
                out.push((r(Table::Nat, "POSTROUTING", masq), true));
            }
        }
        if !nc.unprotected() {
            // setPerPortForwarding: inserted at the head of DOCKER.
            let accept = format!("-d {c}/32 ! -i {br} -o {br} -p {p} -m {p} --dport {} -j ACCEPT", b.container_port);
            out.push((r(Table::Filter, DOCKER, accept), false));
        }
        out
    }

    /// `filterDirectAccess`'s rule, when it applies to the network.
    fn direct_access(nc: &NetworkConfig, ip: Ipv4Addr) -> Option<RuleRef> {
        if nc.internal || nc.unprotected() || nc.routed() {
            return None;
        }
        Some(r(Table::Raw, "PREROUTING", format!("-d {ip}/32 ! -i {} -j DROP", nc.if_name)))
    }

    /// `ChainInfo.Link`'s two rules.
    fn link_rules(br: &str, parent: Ipv4Addr, child: Ipv4Addr, p: Proto, port: u16) -> [RuleRef; 2] {
        [
            r(
                Table::Filter,
                DOCKER,
                format!("-s {parent}/32 -d {child}/32 -i {br} -o {br} -p {p} -m {p} --dport {port} -j ACCEPT"),
            ),
            r(
                Table::Filter,
                DOCKER,
                format!("-s {child}/32 -d {parent}/32 -i {br} -o {br} -p {p} -m {p} --sport {port} -j ACCEPT"),
            ),
        ]
    }
}

impl Firewaller for Iptabler {
    fn backend(&self) -> &'static str {
        "iptables"
    }

    fn config(&self) -> &Config {
        &self.config
    }

    /// `NewIptabler`: for each enabled family, `removeIPChains` then `setupIPChains`.
    fn init(&self, rs: &mut Ruleset) {
        for (on, f) in [(self.config.ipv4, V4), (self.config.ipv6, V6)] {
            if on {
                self.remove_ip_chains(rs, f);
                self.setup_ip_chains(rs, f);
            }
        }
    }

    /// `setupUserChain` for each family: DOCKER-USER (no `-j RETURN` since
    /// 28.2.2), its jump moved to the head of FORWARD.
    fn setup_user_chain(&self, rs: &mut Ruleset) {
        for (on, f) in [(self.config.ipv4, V4), (self.config.ipv6, V6)] {
            if on {
                rs.new_chain(f.filter, USER);
                ensure_jump(rs, f.filter, "FORWARD", USER);
            }
        }
    }

    fn filter_forward_drop(&self, rs: &mut Ruleset) {
        rs.set_policy(Table::Filter, "FORWARD", "DROP");
    }

    /// `NewNetwork` → `ReapplyNetworkLevelRules` → `configure` (IPv4; the
    /// IPv6 side has no prefix: 28's `setINC(false)` finds nothing to delete).
    fn new_network(&self, rs: &mut Ruleset, nc: &NetworkConfig) -> Result<(), String> {
        if self.config.ipv4 {
            self.network_rules(rs, nc, true);
        }
        Ok(())
    }

    fn del_network(&self, rs: &mut Ruleset, nc: &NetworkConfig) {
        if self.config.ipv4 {
            self.network_rules(rs, nc, false);
        }
    }

    fn add_endpoint(&self, rs: &mut Ruleset, nc: &NetworkConfig, ip: Ipv4Addr) -> Result<(), String> {
        if let (true, Some(x)) = (self.config.ipv4, Self::direct_access(nc, ip)) {
            // With --allow-direct-routing the rule is deleted instead.
            append_or_del(rs, x, !self.config.allow_direct_routing);
        }
        Ok(())
    }

    fn del_endpoint(&self, rs: &mut Ruleset, nc: &NetworkConfig, ip: Ipv4Addr) {
        if let (true, Some(x)) = (self.config.ipv4, Self::direct_access(nc, ip)) {
            delete(rs, x);
        }
    }

    fn add_ports(&self, rs: &mut Ruleset, nc: &NetworkConfig, pbs: &[PortMapping]) -> Result<Vec<RuleRef>, String> {
        let mut added = Vec::new();
        for b in pbs {
            for (x, app) in self.port_rules(nc, b) {
                let before = rs.rule_count();
                if app {
                    append(rs, x.clone());
                } else {
                    insert(rs, x.clone());
                }
                if rs.rule_count() > before {
                    added.push(x);
                }
            }
        }
        Ok(added)
    }

    fn del_ports(&self, rs: &mut Ruleset, nc: &NetworkConfig, pbs: &[PortMapping]) {
        // Each `Rule.Delete` in turn: one pass however many ports.
        // (A rule two bindings share, such as the container port's ACCEPT
        // for two host ports, was inserted once and goes with the first.)
        let refs: Vec<RuleRef> = pbs.iter().flat_map(|b| self.port_rules(nc, b)).map(|(x, _)| x).collect();
        rs.delete_all(&refs);
    }

    fn add_link(
        &self,
        rs: &mut Ruleset,
        nc: &NetworkConfig,
        parent: Ipv4Addr,
        child: Ipv4Addr,
        ports: &[(Proto, u16)],
    ) -> Result<(), String> {
        if parent.is_unspecified() {
            return Err("cannot link to a container with an empty parent IP address".into());
        }
        if child.is_unspecified() {
            return Err("cannot link to a container with an empty child IP address".into());
        }
        for &(p, port) in ports {
            for x in Self::link_rules(&nc.if_name, parent, child, p, port) {
                append(rs, x);
            }
        }
        Ok(())
    }

    fn del_link(
        &self,
        rs: &mut Ruleset,
        nc: &NetworkConfig,
        parent: Ipv4Addr,
        child: Ipv4Addr,
        ports: &[(Proto, u16)],
    ) {
        for &(p, port) in ports {
            for x in Self::link_rules(&nc.if_name, parent, child, p, port) {
                delete(rs, x);
            }
        }
    }
}

#[cfg(test)]
mod tests;
