//! Docker 20.10.24's rules: libnetwork's bridge driver (`setup_ip_tables.go`:
//! `setupIPChains`, `setupIPTablesInternal`, `setupInternalNetworkRules`,
//! `setIcc`, `setINC`, `removeIPChains`), `iptables.go` (`ProgramChain`,
//! `Forward`, `Link`, `EnsureJumpRule`, `AddReturnRule`) and the
//! controller's `arrangeUserFilterRule`. Every call is replayed with its
//! own check: `-I`/`-A` only when the rule is absent, `-D` only when it is
//! there, so a restarted daemon finds what it left and moves only what it
//! moves. Rules are written in `iptables-save`'s argument order; the
//! comments give libnetwork's own argument order.

use std::net::Ipv4Addr;

use super::firewaller::{Config, Firewaller, NetworkConfig};
use super::{BridgeFacts, FirewallLayout, PortMapping, RuleRef, Ruleset, Table};
use crate::scenario::Proto;

/// libnetwork's chains.
pub const DOCKER: &str = "DOCKER";
pub const ISOLATION1: &str = "DOCKER-ISOLATION-STAGE-1";
pub const ISOLATION2: &str = "DOCKER-ISOLATION-STAGE-2";
pub const USER: &str = "DOCKER-USER";
/// The chain Docker before 17.06 used, removed at every start.
const OLD_ISOLATION: &str = "DOCKER-ISOLATION";

/// The `docker20` layout; the userland proxy's setting changes the rules
/// (`hairpinMode = !EnableUserlandProxy`).
#[derive(Debug, Clone, Copy)]
pub struct Docker20 {
    pub userland_proxy: bool,
}

impl Docker20 {
    fn hairpin(&self) -> bool {
        !self.userland_proxy
    }
}

/// `iptables -t nat -A PREROUTING`/`OUTPUT` jumps into nat DOCKER.
const PREROUTING_JUMP: &str = "-m addrtype --dst-type LOCAL -j DOCKER";
const OUTPUT_JUMP: &str = "! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER";
const OUTPUT_JUMP_HAIRPIN: &str = "-m addrtype --dst-type LOCAL -j DOCKER";

/// `programChainRule`: insert when absent, or delete when present.
fn program(r: &mut Ruleset, t: Table, chain: &str, rule: String, enable: bool) {
    if enable {
        r.insert_unless_present(t, chain, rule);
    } else {
        r.delete(&(t, chain.to_string(), rule));
    }
}

/// `EnsureJumpRule`: the jump goes to the top of `from`, moved if it was there.
fn ensure_jump(r: &mut Ruleset, from: &str, to: &str) {
    let rule = format!("-j {to}");
    r.delete(&(Table::Filter, from.to_string(), rule.clone()));
    r.insert(Table::Filter, from, rule);
}

/// `AddReturnRule`: `-A CHAIN -j RETURN` unless it is there.
fn add_return(r: &mut Ruleset, chain: &str) {
    r.append_unless_present(Table::Filter, chain, "-j RETURN".into());
}

impl Docker20 {
    /// `setupIPTablesInternal` (non-internal networks), enabling or
    /// disabling, in libnetwork's order.
    fn network_rules(&self, r: &mut Ruleset, b: &BridgeFacts, enable: bool) {
        let br = &b.name;
        let net = b.address.network();
        let subnet = format!("{}/{}", net.network(), net.prefix());
        if b.ip_masq {
            // -t nat -I POSTROUTING -s SUBNET ! -o br -j MASQUERADE
            program(r, Table::Nat, "POSTROUTING", format!("-s {subnet} ! -o {br} -j MASQUERADE"), enable);
            if !self.hairpin() {
                // -t nat -I DOCKER -i br -j RETURN ("SKIP DNAT")
                program(r, Table::Nat, DOCKER, format!("-i {br} -j RETURN"), enable);
            }
        }
        if self.hairpin() {
            // -t nat -I POSTROUTING -m addrtype --src-type LOCAL -o br -j MASQUERADE
            let rule = format!("-o {br} -m addrtype --src-type LOCAL -j MASQUERADE");
            program(r, Table::Nat, "POSTROUTING", rule, enable);
        }
        set_icc(r, br, b.icc, enable);
        // -I FORWARD -i br ! -o br -j ACCEPT
        program(r, Table::Filter, "FORWARD", format!("-i {br} ! -o {br} -j ACCEPT"), enable);
    }

    /// `setupInternalNetworkRules`.
    fn internal_rules(r: &mut Ruleset, b: &BridgeFacts, enable: bool) {
        let br = &b.name;
        let net = b.address.network();
        let subnet = format!("{}/{}", net.network(), net.prefix());
        // -I DOCKER-ISOLATION-STAGE-1 -i br ! -d SUBNET -j DROP
        program(r, Table::Filter, ISOLATION1, format!("! -d {subnet} -i {br} -j DROP"), enable);
        // -I DOCKER-ISOLATION-STAGE-1 -o br ! -s SUBNET -j DROP
        program(r, Table::Filter, ISOLATION1, format!("! -s {subnet} -o {br} -j DROP"), enable);
        set_icc(r, br, b.icc, enable);
    }

    /// `ProgramChain` for the filter DOCKER chain.
    fn filter_jumps(r: &mut Ruleset, br: &str, enable: bool) {
        // -I FORWARD -o br -j DOCKER
        program(r, Table::Filter, "FORWARD", format!("-o {br} -j {DOCKER}"), enable);
        // -I FORWARD -o br -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
        let established = format!("-o {br} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT");
        program(r, Table::Filter, "FORWARD", established, enable);
    }

    /// `ProgramChain` for the nat DOCKER chain: append the jumps when absent.
    fn nat_jumps(&self, r: &mut Ruleset) {
        r.append_unless_present(Table::Nat, "PREROUTING", PREROUTING_JUMP.into());
        let output = if self.hairpin() { OUTPUT_JUMP_HAIRPIN } else { OUTPUT_JUMP };
        r.append_unless_present(Table::Nat, "OUTPUT", output.into());
    }

    /// `setINC`: isolation of a non-internal network from the others.
    fn isolation(r: &mut Ruleset, br: &str, enable: bool) {
        let to_stage2 = format!("-i {br} ! -o {br} -j {ISOLATION2}");
        program(r, Table::Filter, ISOLATION1, to_stage2, enable);
        program(r, Table::Filter, ISOLATION2, format!("-o {br} -j DROP"), enable);
    }
}

/// `setIcc`: ACCEPT inserted at the top, or DROP appended at the very end.
fn set_icc(r: &mut Ruleset, br: &str, icc: bool, enable: bool) {
    let accept = format!("-i {br} -o {br} -j ACCEPT");
    let drop = format!("-i {br} -o {br} -j DROP");
    let forward = |rule: &String| (Table::Filter, "FORWARD".to_string(), rule.clone());
    match (enable, icc) {
        (true, false) => {
            r.delete(&forward(&accept));
            r.append_unless_present(Table::Filter, "FORWARD", drop);
        }
        (true, true) => {
            r.delete(&forward(&drop));
            r.insert_unless_present(Table::Filter, "FORWARD", accept);
        }
        (false, false) => r.delete(&forward(&drop)),
        (false, true) => r.delete(&forward(&accept)),
    }
}

/// The error `iptables` gives for a rule into a chain a firewall reload removed.
fn no_chain(table: Table, args: &str) -> String {
    format!(
        " (iptables failed: iptables --wait -t {} -A {args}: iptables: No chain/target/match by that name.\n (exit status 1))",
        table.name()
    )
}

impl FirewallLayout for Docker20 {
    fn name(&self) -> &'static str {
        "docker20"
    }

    /// The bridge driver's `configure`, at every daemon start:
    /// `removeIPChains` (what an earlier daemon left goes, as far as
    /// `iptables -X` lets it) then `setupIPChains`.
    fn driver_start(&self, r: &mut Ruleset) {
        r.delete(&(Table::Filter, "FORWARD".into(), format!("-j {OLD_ISOLATION}")));
        // ChainInfo.Remove of nat DOCKER: the jumps into it first.
        for (chain, rule) in [("PREROUTING", PREROUTING_JUMP), ("OUTPUT", OUTPUT_JUMP), ("OUTPUT", OUTPUT_JUMP_HAIRPIN)]
        {
            r.delete(&(Table::Nat, chain.into(), rule.into()));
        }
        for (t, chain) in [
            (Table::Nat, DOCKER),
            (Table::Filter, DOCKER),
            (Table::Filter, ISOLATION1),
            (Table::Filter, ISOLATION2),
            (Table::Filter, OLD_ISOLATION),
        ] {
            r.flush_chain(t, chain);
            // `-X` fails (and is ignored) while a rule still jumps there.
            r.delete_chain(t, chain);
        }
        r.new_chain(Table::Nat, DOCKER);
        r.new_chain(Table::Filter, DOCKER);
        r.new_chain(Table::Filter, ISOLATION1);
        r.new_chain(Table::Filter, ISOLATION2);
        add_return(r, ISOLATION1);
        add_return(r, ISOLATION2);
    }

    /// `arrangeUserFilterRule`, after each network the controller makes.
    fn arrange_user_chain(&self, r: &mut Ruleset) {
        r.new_chain(Table::Filter, USER);
        add_return(r, USER);
        ensure_jump(r, "FORWARD", USER);
    }

    /// The iptables steps of the bridge driver's `createNetwork` for one
    /// network: `setupIP4Tables`, then `setupNetworkIsolationRules`.
    fn daemon_start(&self, r: &mut Ruleset, b: &BridgeFacts) {
        if b.internal {
            Self::internal_rules(r, b, true);
        } else {
            self.network_rules(r, b, true);
            self.nat_jumps(r);
            Self::filter_jumps(r, &b.name, true);
        }
        ensure_jump(r, "FORWARD", ISOLATION1);
        if !b.internal {
            Self::isolation(r, &b.name, true);
        }
    }

    /// The network's `iptCleanFuncs`, in the order they were registered.
    fn network_remove(&self, r: &mut Ruleset, b: &BridgeFacts) {
        if b.internal {
            Self::internal_rules(r, b, false);
        } else {
            self.network_rules(r, b, false);
            Self::filter_jumps(r, &b.name, false);
            Self::isolation(r, &b.name, false);
        }
    }

    /// The port mapper's `AppendForwardingTableEntry` (`ChainInfo.Forward`):
    /// each rule appended unless it is there. The references returned are
    /// what `DeleteForwardingTableEntry` deletes, if present.
    fn map_port(&self, r: &mut Ruleset, br: &str, m: &PortMapping) -> Result<Vec<RuleRef>, String> {
        let p = m.proto;
        let host = match m.host_ip {
            std::net::IpAddr::V4(ip) => ip,
            // The v6 port mapper has no chain without --ip6tables: no rules.
            std::net::IpAddr::V6(_) => return Ok(vec![]),
        };
        let refs = self.port_refs(br, m);
        if !r.has_chain(Table::Nat, DOCKER) {
            let d = if host.is_unspecified() { "0/0".to_string() } else { host.to_string() };
            let mut args = format!(
                "{DOCKER} -p {p} -d {d} --dport {} -j DNAT --to-destination {}:{}",
                m.host_port, m.container_ip, m.container_port
            );
            if !self.hairpin() {
                args.push_str(&format!(" ! -i {br}"));
            }
            return Err(no_chain(Table::Nat, &args));
        }
        r.append_unless_present(Table::Nat, DOCKER, refs[0].2.clone());
        if !r.has_chain(Table::Filter, DOCKER) {
            let args = format!(
                "{DOCKER} ! -i {br} -o {br} -p {p} -d {} --dport {} -j ACCEPT",
                m.container_ip, m.container_port
            );
            return Err(no_chain(Table::Filter, &args));
        }
        r.append_unless_present(Table::Filter, DOCKER, refs[1].2.clone());
        r.append_unless_present(Table::Nat, "POSTROUTING", refs[2].2.clone());
        Ok(refs)
    }

    /// `linkContainers("-A", …)`: `ChainInfo.Link` for one port, both ways.
    fn link(
        &self,
        r: &mut Ruleset,
        br: &str,
        parent: Ipv4Addr,
        child: Ipv4Addr,
        p: Proto,
        port: u16,
    ) -> Result<Vec<RuleRef>, String> {
        if !r.has_chain(Table::Filter, DOCKER) {
            let args = format!("{DOCKER} -i {br} -o {br} -p {p} -s {parent} -d {child} --dport {port} -j ACCEPT");
            return Err(no_chain(Table::Filter, &args));
        }
        let there = format!("-s {parent}/32 -d {child}/32 -i {br} -o {br} -p {p} -m {p} --dport {port} -j ACCEPT");
        let back = format!("-s {child}/32 -d {parent}/32 -i {br} -o {br} -p {p} -m {p} --sport {port} -j ACCEPT");
        r.append_unless_present(Table::Filter, DOCKER, there.clone());
        r.append_unless_present(Table::Filter, DOCKER, back.clone());
        Ok(vec![(Table::Filter, DOCKER.into(), there), (Table::Filter, DOCKER.into(), back)])
    }
}

/// What 20.10's daemon-wide settings are, as a [`Config`].
static PROXY_ON: Config = Config { ipv4: true, ipv6: false, hairpin: false, allow_direct_routing: false };
static PROXY_OFF: Config = Config { ipv4: true, ipv6: false, hairpin: true, allow_direct_routing: false };

fn facts(nc: &NetworkConfig) -> BridgeFacts {
    BridgeFacts {
        name: nc.if_name.clone(),
        address: crate::scenario::IfaceAddr(nc.prefix),
        icc: nc.icc,
        ip_masq: nc.masquerade,
        internal: nc.internal,
    }
}

impl Docker20 {
    /// The rules `map_port` appends for one binding (none for `::`).
    fn port_refs(&self, br: &str, m: &PortMapping) -> Vec<RuleRef> {
        let std::net::IpAddr::V4(host) = m.host_ip else { return vec![] };
        let p = m.proto;
        let daddr = if host.is_unspecified() { String::new() } else { format!("-d {host}/32 ") };
        let not_from_bridge = if self.hairpin() { String::new() } else { format!("! -i {br} ") };
        let dnat = format!(
            "{daddr}{not_from_bridge}-p {p} -m {p} --dport {} -j DNAT --to-destination {}:{}",
            m.host_port, m.container_ip, m.container_port
        );
        let accept =
            format!("-d {}/32 ! -i {br} -o {br} -p {p} -m {p} --dport {} -j ACCEPT", m.container_ip, m.container_port);
        let hairpin = format!(
            "-s {ip}/32 -d {ip}/32 -p {p} -m {p} --dport {} -j MASQUERADE",
            m.container_port,
            ip = m.container_ip
        );
        vec![
            (Table::Nat, DOCKER.into(), dnat),
            (Table::Filter, DOCKER.into(), accept),
            (Table::Nat, "POSTROUTING".into(), hairpin),
        ]
    }
}

/// Docker 20.10 behind the [`Firewaller`] calls: libnetwork 20.10 had no
/// firewaller, so each call maps onto what its bridge driver did at that
/// moment (no endpoint rules; DOCKER-USER after every network).
impl Firewaller for Docker20 {
    fn backend(&self) -> &'static str {
        "iptables"
    }
    fn config(&self) -> &Config {
        if self.hairpin() {
            &PROXY_OFF
        } else {
            &PROXY_ON
        }
    }
    fn init(&self, rules: &mut Ruleset) {
        self.driver_start(rules);
    }
    fn setup_user_chain(&self, rules: &mut Ruleset) {
        self.arrange_user_chain(rules);
    }
    fn filter_forward_drop(&self, rules: &mut Ruleset) {
        rules.set_policy(Table::Filter, "FORWARD", "DROP");
    }
    fn new_network(&self, rules: &mut Ruleset, nc: &NetworkConfig) -> Result<(), String> {
        self.daemon_start(rules, &facts(nc));
        Ok(())
    }
    fn del_network(&self, rules: &mut Ruleset, nc: &NetworkConfig) {
        self.network_remove(rules, &facts(nc));
    }
    fn add_ports(&self, rules: &mut Ruleset, nc: &NetworkConfig, pbs: &[PortMapping]) -> Result<Vec<RuleRef>, String> {
        let mut out = Vec::new();
        for m in pbs {
            out.extend(self.map_port(rules, &nc.if_name, m)?);
        }
        Ok(out)
    }
    /// `DeleteForwardingTableEntry` of each binding.
    fn del_ports(&self, rules: &mut Ruleset, nc: &NetworkConfig, pbs: &[PortMapping]) {
        let refs: Vec<RuleRef> = pbs.iter().flat_map(|m| self.port_refs(&nc.if_name, m)).collect();
        rules.delete_all(&refs);
    }
    fn add_link(
        &self,
        rules: &mut Ruleset,
        nc: &NetworkConfig,
        parent: Ipv4Addr,
        child: Ipv4Addr,
        ports: &[(Proto, u16)],
    ) -> Result<(), String> {
        for &(p, port) in ports {
            self.link(rules, &nc.if_name, parent, child, p, port)?;
        }
        Ok(())
    }
    fn del_link(
        &self,
        rules: &mut Ruleset,
        nc: &NetworkConfig,
        parent: Ipv4Addr,
        child: Ipv4Addr,
        ports: &[(Proto, u16)],
    ) {
        let br = &nc.if_name;
        for &(p, port) in ports {
            let there = format!("-s {parent}/32 -d {child}/32 -i {br} -o {br} -p {p} -m {p} --dport {port} -j ACCEPT");
            let back = format!("-s {child}/32 -d {parent}/32 -i {br} -o {br} -p {p} -m {p} --sport {port} -j ACCEPT");
            rules.delete(&(Table::Filter, DOCKER.into(), there));
            rules.delete(&(Table::Filter, DOCKER.into(), back));
        }
    }
}
