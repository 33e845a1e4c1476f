//! Docker 1.6.2's rules: `setupIPTables` and `NewChain` in the bridge
//! driver's `InitDriver`, the port mapper's `Chain.Forward` and the links'
//! `Chain.Link` (`pkg/iptables`). Rules are written in the argument order
//! `iptables-save` prints them in; the comments give Docker's own call.

use std::net::Ipv4Addr;

use super::{BridgeFacts, FirewallLayout, PortMapping, RuleRef, Ruleset, Table};
use crate::scenario::Proto;

/// The `docker1` layout.
#[derive(Debug, Clone, Copy, Default)]
pub struct Docker1;

impl FirewallLayout for Docker1 {
    fn name(&self) -> &'static str {
        "docker1"
    }

    fn daemon_start(&self, r: &mut Ruleset, b: &BridgeFacts) {
        let br = &b.name;
        let net = b.address.network();
        // setupIPTables, in its order; every call is "-I unless it exists",
        // so a restarted daemon leaves rules that are there alone.
        if b.ip_masq {
            // iptables -t nat -I POSTROUTING -s 172.17.42.1/16 ! -o docker0 -j MASQUERADE
            let masq = format!("-s {}/{} ! -o {br} -j MASQUERADE", net.network(), net.prefix());
            r.insert_unless_present(Table::Nat, "POSTROUTING", masq);
        }
        // iptables -D FORWARD -i docker0 -o docker0 -j DROP|ACCEPT (the other one)
        // iptables -I FORWARD -i docker0 -o docker0 -j ACCEPT|DROP
        let (icc, other) = if b.icc { ("ACCEPT", "DROP") } else { ("DROP", "ACCEPT") };
        r.delete(&(Table::Filter, "FORWARD".into(), format!("-i {br} -o {br} -j {other}")));
        r.insert_unless_present(Table::Filter, "FORWARD", format!("-i {br} -o {br} -j {icc}"));
        // iptables -I FORWARD -i docker0 ! -o docker0 -j ACCEPT
        r.insert_unless_present(Table::Filter, "FORWARD", format!("-i {br} ! -o {br} -j ACCEPT"));
        // iptables -I FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
        let established = format!("-o {br} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT");
        r.insert_unless_present(Table::Filter, "FORWARD", established);
        // RemoveExistingChain("DOCKER", Nat): the jumps and the chain go (on a
        // restart, with every DNAT rule in it); NewChain makes them again.
        r.remove_chain(Table::Nat, "DOCKER");
        r.new_chain(Table::Nat, "DOCKER");
        // iptables -t nat -A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
        r.append(Table::Nat, "PREROUTING", "-m addrtype --dst-type LOCAL -j DOCKER".into());
        // iptables -t nat -A OUTPUT -m addrtype --dst-type LOCAL ! --dst 127.0.0.0/8 -j DOCKER
        r.append(Table::Nat, "OUTPUT", "! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER".into());
        // NewChain("DOCKER", bridge, Filter): iptables -I FORWARD -o docker0 -j DOCKER
        // (an existing filter DOCKER chain is kept as it is, not flushed)
        r.new_chain(Table::Filter, "DOCKER");
        r.insert_unless_present(Table::Filter, "FORWARD", format!("-o {br} -j DOCKER"));
    }

    fn map_port(&self, r: &mut Ruleset, br: &str, m: &PortMapping) -> Result<Vec<RuleRef>, String> {
        let p = m.proto;
        if !r.has_chain(Table::Nat, "DOCKER") || !r.has_chain(Table::Filter, "DOCKER") {
            // After a firewall reload the port mapper's iptables call fails.
            let daddr = if m.host_ip.is_unspecified() { "0/0".to_string() } else { m.host_ip.to_string() };
            return Err(format!(
                "iptables failed: iptables --wait -t nat -A DOCKER -p {p} -d {daddr} --dport {} ! -i {br} -j DNAT \
                 --to-destination {}:{}: iptables: No chain/target/match by that name. (exit status 1)",
                m.host_port, m.container_ip, m.container_port
            ));
        }
        // iptables -t nat -A DOCKER -p tcp -d 0/0 --dport 8080 ! -i docker0 -j DNAT --to-destination 172.17.0.1:80
        let daddr = if m.host_ip.is_unspecified() { String::new() } else { format!("-d {}/32 ", m.host_ip) };
        let dnat = r.append(
            Table::Nat,
            "DOCKER",
            format!(
                "{daddr}! -i {br} -p {p} -m {p} --dport {} -j DNAT --to-destination {}:{}",
                m.host_port, m.container_ip, m.container_port
            ),
        );
        // iptables -t filter -A DOCKER ! -i docker0 -o docker0 -p tcp -d 172.17.0.1 --dport 80 -j ACCEPT
        let accept = r.append(
            Table::Filter,
            "DOCKER",
            format!("-d {}/32 ! -i {br} -o {br} -p {p} -m {p} --dport {} -j ACCEPT", m.container_ip, m.container_port),
        );
        // iptables -t nat -A POSTROUTING -p tcp -s 172.17.0.1 -d 172.17.0.1 --dport 80 -j MASQUERADE
        let hairpin = r.append(
            Table::Nat,
            "POSTROUTING",
            format!(
                "-s {ip}/32 -d {ip}/32 -p {p} -m {p} --dport {} -j MASQUERADE",
                m.container_port,
                ip = m.container_ip
            ),
        );
        Ok(vec![dnat, accept, hairpin])
    }

    fn link(
        &self,
        r: &mut Ruleset,
        br: &str,
        parent: Ipv4Addr,
        child: Ipv4Addr,
        p: Proto,
        port: u16,
    ) -> Result<Vec<RuleRef>, String> {
        if !r.has_chain(Table::Filter, "DOCKER") {
            // With --iptables=false the link job still runs and iptables
            // fails: there is no DOCKER chain.
            return Err(format!(
                "iptables failed: iptables --wait -t filter -A DOCKER -i {br} -o {br} -p {p} -s {parent} -d {child} --dport {port} -j ACCEPT: \
                 iptables: No chain/target/match by that name. (exit status 1)"
            ));
        }
        // iptables -t filter -A DOCKER -i docker0 -o docker0 -p tcp -s PARENT -d CHILD --dport 5432 -j ACCEPT
        let there = r.append(
            Table::Filter,
            "DOCKER",
            format!("-s {parent}/32 -d {child}/32 -i {br} -o {br} -p {p} -m {p} --dport {port} -j ACCEPT"),
        );
        // iptables -t filter -A DOCKER -i docker0 -o docker0 -p tcp -s CHILD -d PARENT --sport 5432 -j ACCEPT
        let back = r.append(
            Table::Filter,
            "DOCKER",
            format!("-s {child}/32 -d {parent}/32 -i {br} -o {br} -p {p} -m {p} --sport {port} -j ACCEPT"),
        );
        Ok(vec![there, back])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `-p 8080:80` of a container at 172.17.0.1.
    fn web_8080() -> PortMapping {
        PortMapping {
            container: "web".into(),
            proto: Proto::Tcp,
            host_ip: "0.0.0.0".parse().unwrap(),
            host_port: 8080,
            container_ip: "172.17.0.1".parse().unwrap(),
            container_port: 80,
        }
    }

    fn facts(icc: bool, ip_masq: bool) -> BridgeFacts {
        BridgeFacts {
            name: "docker0".into(),
            address: "172.17.42.1/16".parse().unwrap(),
            icc,
            ip_masq,
            internal: false,
        }
    }

    #[test]
    fn a_clean_host_gets_dockers_order() {
        let mut r = Ruleset::default();
        Docker1.daemon_start(&mut r, &facts(true, true));
        assert_eq!(
            r.render(),
            "*filter\n:INPUT ACCEPT\n:FORWARD ACCEPT\n:OUTPUT ACCEPT\n:DOCKER -\n\
             -A FORWARD -o docker0 -j DOCKER\n\
             -A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n\
             -A FORWARD -i docker0 ! -o docker0 -j ACCEPT\n\
             -A FORWARD -i docker0 -o docker0 -j ACCEPT\n\
             COMMIT\n\
             *nat\n:PREROUTING ACCEPT\n:INPUT ACCEPT\n:OUTPUT ACCEPT\n:POSTROUTING ACCEPT\n:DOCKER -\n\
             -A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER\n\
             -A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER\n\
             -A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE\n\
             COMMIT\n"
        );
    }

    #[test]
    fn icc_off_drops_and_ip_masq_off_has_no_masquerade() {
        let mut r = Ruleset::default();
        Docker1.daemon_start(&mut r, &facts(false, false));
        let text = r.render();
        assert!(text.contains("-A FORWARD -i docker0 -o docker0 -j DROP\n"));
        assert!(!text.contains("MASQUERADE"));
    }

    #[test]
    fn a_published_port_gets_dnat_accept_and_hairpin_masquerade() {
        let mut r = Ruleset::default();
        Docker1.daemon_start(&mut r, &facts(true, true));
        let m = PortMapping {
            container: "web".into(),
            proto: Proto::Udp,
            host_ip: "127.0.0.1".parse().unwrap(),
            host_port: 5353,
            container_ip: "172.17.0.1".parse().unwrap(),
            container_port: 53,
        };
        Docker1.map_port(&mut r, "docker0", &m).unwrap();
        let text = r.render();
        assert!(text.contains("-A DOCKER -d 127.0.0.1/32 ! -i docker0 -p udp -m udp --dport 5353 -j DNAT --to-destination 172.17.0.1:53\n"), "{text}");
        assert!(
            text.contains("-A DOCKER -d 172.17.0.1/32 ! -i docker0 -o docker0 -p udp -m udp --dport 53 -j ACCEPT\n"),
            "{text}"
        );
        assert!(
            text.contains("-A POSTROUTING -s 172.17.0.1/32 -d 172.17.0.1/32 -p udp -m udp --dport 53 -j MASQUERADE\n"),
            "{text}"
        );
    }

    #[test]
    fn a_restarted_daemon_keeps_its_rules_once_and_rebuilds_nat_docker() {
        let mut r = Ruleset::default();
        Docker1.daemon_start(&mut r, &facts(true, true));
        let m = web_8080();
        let first = r.render();
        Docker1.map_port(&mut r, "docker0", &m).unwrap();
        Docker1.daemon_start(&mut r, &facts(true, true));
        let text = r.render();
        assert!(!text.contains("DNAT"), "the nat DOCKER chain starts empty again: {text}");
        assert!(text.contains("-A DOCKER -d 172.17.0.1/32"), "the filter DOCKER chain is kept: {text}");
        for line in first.lines().filter(|l| l.starts_with("-A")) {
            assert_eq!(text.lines().filter(|l| l == &line).count(), 1, "{line} twice in {text}");
        }
        // icc flips the one rule, not both.
        Docker1.daemon_start(&mut r, &facts(false, true));
        let text = r.render();
        assert!(text.contains("-i docker0 -o docker0 -j DROP") && !text.contains("-i docker0 -o docker0 -j ACCEPT"));
    }

    #[test]
    fn mapping_a_port_after_a_flush_fails_like_docker() {
        let mut r = Ruleset::default();
        Docker1.daemon_start(&mut r, &facts(true, true));
        r.flush_all();
        let m = web_8080();
        let e = Docker1.map_port(&mut r, "docker0", &m).unwrap_err();
        assert!(e.contains("No chain/target/match by that name"), "{e}");
    }

    #[test]
    fn links_need_the_docker_chain() {
        let mut r = Ruleset::default();
        let (a, b) = ("172.17.0.2".parse().unwrap(), "172.17.0.1".parse().unwrap());
        let e = Docker1.link(&mut r, "docker0", a, b, Proto::Tcp, 5432).unwrap_err();
        assert!(e.contains("No chain/target/match by that name"), "{e}");
        Docker1.daemon_start(&mut r, &facts(false, true));
        Docker1.link(&mut r, "docker0", a, b, Proto::Tcp, 5432).unwrap();
        let text = r.render();
        assert!(text.contains(
            "-A DOCKER -s 172.17.0.2/32 -d 172.17.0.1/32 -i docker0 -o docker0 -p tcp -m tcp --dport 5432 -j ACCEPT\n"
        ));
        assert!(text.contains(
            "-A DOCKER -s 172.17.0.1/32 -d 172.17.0.2/32 -i docker0 -o docker0 -p tcp -m tcp --sport 5432 -j ACCEPT\n"
        ));
    }
}
