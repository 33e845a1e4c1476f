//! The host before the daemon (`[host] rules` and `sysctls`), `[[machine]]`
//! nodes and the `sysctl` and `host-rules` steps, in the plan: no root.

use super::*;
use crate::scenario::Scenario;

fn plan_of(text: &str) -> Result<Plan, Diagnostics> {
    let s = Scenario::parse("h.toml".into(), text.to_string()).unwrap_or_else(|e| panic!("{e}"));
    plan(&s)
}

fn ok(text: &str) -> Plan {
    plan_of(text).unwrap_or_else(|e| panic!("{e}"))
}

fn sysctl<'a>(p: &'a Plan, node: &str, key: &str) -> Option<&'a str> {
    p.node(node)?.sysctls.iter().find(|s| s.key == key).map(|s| s.value.as_str())
}

/// The rules of one chain, in order.
fn chain(p: &Plan, chain: &str) -> Vec<String> {
    let prefix = format!("-A {chain} ");
    p.iptables.render().lines().filter_map(|l| l.strip_prefix(&prefix)).map(String::from).collect()
}

const USER_RULES: &str = r#"
[host]
rules = """
*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:DOCKER-USER - [0:0]
-A INPUT -i lo -j ACCEPT
-A FORWARD -o eth0 -d 10.0.0.0/8 -j DROP
-A DOCKER-USER -i docker0 -d 10.9.0.0/16 -j REJECT
COMMIT
"""
[[container]]
name = "web"
publish = ["8080:80"]
"#;

#[test]
fn docker20_replays_its_calls_over_the_users_rules() {
    let p = ok(&format!("[daemon]\nfirewall = \"docker20\"\n[host]\nforwarding = true\n{}", &USER_RULES[8..]));
    let text = p.iptables.render();
    // Policies the user set stay: Docker sets none when forwarding was on.
    assert!(text.contains(":INPUT DROP\n:FORWARD DROP\n"), "{text}");
    assert_eq!(chain(&p, "INPUT"), ["-i lo -j ACCEPT"]);
    let forward = chain(&p, "FORWARD");
    // The DOCKER-USER jump and Docker's rules are inserted above the user's rule.
    assert_eq!(forward.first().map(String::as_str), Some("-j DOCKER-USER"));
    assert_eq!(forward.last().map(String::as_str), Some("-d 10.0.0.0/8 -o eth0 -j DROP"), "{forward:?}");
    assert!(forward.iter().any(|r| r == "-i docker0 ! -o docker0 -j ACCEPT"));
    // The user's DOCKER-USER rule stays, before the RETURN Docker appends.
    assert_eq!(
        chain(&p, "DOCKER-USER"),
        ["-d 10.9.0.0/16 -i docker0 -j REJECT --reject-with icmp-port-unreachable", "-j RETURN"]
    );
}

#[test]
fn docker1_inserts_above_the_users_forward_rule() {
    let p = ok(USER_RULES);
    let forward = chain(&p, "FORWARD");
    assert_eq!(forward.last().map(String::as_str), Some("-d 10.0.0.0/8 -o eth0 -j DROP"), "{forward:?}");
    assert_eq!(forward.first().map(String::as_str), Some("-o docker0 -j DOCKER"));
    // Docker 1.6.2 sets no policy: the user's DROP is the FORWARD policy.
    assert!(p.iptables.render().contains(":FORWARD DROP\n"));
    // Its DOCKER-USER chain is just a chain nobody jumps to.
    assert!(!forward.iter().any(|r| r.ends_with("DOCKER-USER")));
}

#[test]
fn rules_stay_when_docker_does_not_touch_iptables() {
    let p = ok(&format!("[daemon]\niptables = false\n{USER_RULES}"));
    assert_eq!(chain(&p, "FORWARD"), ["-d 10.0.0.0/8 -o eth0 -j DROP"]);
    assert!(!p.iptables.render().contains("-j DOCKER"));
}

#[test]
fn docker20_reads_ip_forward_from_the_hosts_sysctls() {
    let base = "[daemon]\nfirewall = \"docker20\"\n[[container]]\nname = \"web\"\n";
    let off = ok(base);
    assert!(off.iptables.render().contains(":FORWARD DROP"));
    let on = ok(&format!("{base}[host]\nsysctls = {{ \"net.ipv4.ip_forward\" = 1 }}\n"));
    assert!(on.iptables.render().contains(":FORWARD ACCEPT"), "{}", on.iptables.render());
    let all = ok(&format!("{base}[host]\nsysctls = {{ \"net.ipv4.conf.all.forwarding\" = 1 }}\n"));
    assert!(all.iptables.render().contains(":FORWARD ACCEPT"));
}

#[test]
fn bridge_nf_call_iptables_is_turned_on_only_for_icc_off() {
    let pre = "[host]\nsysctls = { \"net.bridge.bridge-nf-call-iptables\" = 0 }\n";
    let icc = ok(&format!("[daemon]\nfirewall = \"docker20\"\n{pre}"));
    assert_eq!(sysctl(&icc, "host", BR_NETFILTER_SYSCTL), Some("0"));
    let no_icc = ok(&format!("[daemon]\nfirewall = \"docker20\"\nicc = false\n{pre}"));
    assert_eq!(sysctl(&no_icc, "host", BR_NETFILTER_SYSCTL), Some("1"));
    // Docker 1.6.2 never writes it (DB-10): icc = false then blocks nothing.
    let d1 = ok(&format!("[daemon]\nicc = false\n{pre}"));
    assert_eq!(sysctl(&d1, "host", BR_NETFILTER_SYSCTL), Some("0"));
    // Written before Docker's own, in the file's order.
    let keys: Vec<&str> = no_icc.node("host").unwrap().sysctls.iter().map(|s| s.key.as_str()).collect();
    assert_eq!(keys[0], BR_NETFILTER_SYSCTL);
}

#[test]
fn turning_ip_forward_on_sets_every_interfaces_forwarding() {
    let eth0 = "net.ipv4.conf.eth0.forwarding";
    // Docker turns forwarding on: the kernel sets eth0's too.
    let p = ok(&format!("[host]\nsysctls = {{ \"{eth0}\" = 0 }}\n"));
    assert_eq!(sysctl(&p, "host", eth0), Some("1"));
    // Forwarding was on already: Docker's write changes nothing, eth0 stays off (DB-33).
    let p = ok(&format!("[host]\nsysctls = {{ \"net.ipv4.ip_forward\" = 1, \"{eth0}\" = 0 }}\n"));
    assert_eq!(sysctl(&p, "host", eth0), Some("0"));
    assert_eq!(sysctl(&p, "host", "net.ipv4.ip_forward"), Some("1"));
}

#[test]
fn steps_write_sysctls_and_load_rules_over_dockers() {
    let p = ok(r#"
[daemon]
firewall = "docker20"
[[container]]
name = "web"
[[step]]
do    = "sysctl"
key   = "net.ipv4.conf.eth0.forwarding"
value = 0
[[step]]
do      = "host-rules"
noflush = true
rules   = """
*filter
-I DOCKER-USER -s 172.17.0.0/16 -j DROP
COMMIT
"""
[[step]]
do    = "host-rules"
rules = "*filter\n:FORWARD ACCEPT [0:0]\nCOMMIT\n"
"#);
    assert_eq!(p.steps[0].action, "sysctl net.ipv4.conf.eth0.forwarding=0");
    assert_eq!(sysctl(&p.steps[0].after, "host", "net.ipv4.conf.eth0.forwarding"), Some("0"));
    assert_eq!(sysctl(&p.steps[0].after, "host", "net.ipv4.ip_forward"), Some("1"));
    assert_eq!(chain(&p.steps[1].after, "DOCKER-USER"), ["-s 172.17.0.0/16 -j DROP", "-j RETURN"]);
    // A plain restore replaces the filter table: Docker's chains are gone, nat stays.
    let last = p.steps[2].after.iptables.render();
    // (A table left with nothing in it is not rendered.)
    assert!(!last.contains("*filter"), "{last}");
    assert!(last.contains("-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE"), "{last}");
}

#[test]
fn a_host_rules_step_that_iptables_refuses_points_into_its_text() {
    let text = "[daemon]\nfirewall = \"docker20\"\n[[step]]\ndo = \"host-rules\"\nnoflush = true\nrules = \"\"\"\n*filter\n-A NOPE -j DROP\nCOMMIT\n\"\"\"\n";
    let e = plan_of(text).unwrap_err().to_string();
    assert!(e.starts_with("h.toml:8:1: iptables-restore: chain NOPE does not exist in table filter"), "{e}");
}

const MACHINES: &str = r#"
[daemon]
firewall = "docker20"
[[host.bridge]]
name = "virbr0"
address = "192.168.122.1/24"
[[machine]]
name = "laptop"
attach = "uplink"
address = "198.51.100.7/24"
routes = ["172.17.0.0/16"]
[[machine]]
name = "vm1"
attach = "virbr0"
address = "192.168.122.10/24"
gateway = "192.168.122.1"
"#;

#[test]
fn a_machine_on_the_uplink_makes_it_a_segment_without_moving_an_address() {
    let p = ok(MACHINES);
    let host = p.node("host").unwrap();
    let eth0 = host.link("eth0").unwrap();
    assert_eq!(eth0.addresses, [UPLINK_HOST]);
    assert_eq!(eth0.kind, LinkKind::Veth { peer_node: UPLINK_SEGMENT.into(), peer: "p-host".into(), create: false });
    assert_eq!(p.node("external").unwrap().link("eth0").unwrap().addresses, [UPLINK_EXTERNAL]);
    let seg = p.node(UPLINK_SEGMENT).unwrap();
    let ports: Vec<&str> =
        seg.links.iter().filter(|l| l.master.as_deref() == Some(SEGMENT_BRIDGE)).map(|l| l.name.as_str()).collect();
    assert_eq!(ports, ["p-host", "p-external", "p-m1"]);
    let laptop = p.node("laptop").unwrap();
    let routes: Vec<String> = laptop.routes.iter().map(|r| r.to_string()).collect();
    assert_eq!(
        routes,
        [
            "172.17.0.0/16 via 198.51.100.1 dev eth0",
            "198.51.100.0/24 dev eth0 proto kernel scope link src 198.51.100.7"
        ]
    );
    assert_eq!(p.machine("laptop").unwrap().address.to_string(), "198.51.100.7/24");
}

#[test]
fn a_guest_hangs_on_its_foreign_bridge_by_a_vnet_port() {
    let p = ok(MACHINES);
    let host = p.node("host").unwrap();
    let vnet = host.link("vnet0").unwrap();
    assert_eq!(vnet.master.as_deref(), Some("virbr0"));
    assert_eq!(vnet.kind, LinkKind::Veth { peer_node: "vm1".into(), peer: "eth0".into(), create: true });
    // With a port the bridge has carrier: its route is not linkdown.
    let r = host.routes.iter().find(|r| r.dev == "virbr0").unwrap();
    assert!(!r.linkdown);
    let vm1 = p.node("vm1").unwrap();
    assert!(vm1.routes.iter().any(|r| r.dst.is_none() && r.via == Some("192.168.122.1".parse().unwrap())));
    // Without machines on the uplink there is no segment.
    let alone = ok("[[host.bridge]]\nname = \"br0\"\naddress = \"10.5.0.1/24\"\n[[machine]]\nname = \"vm\"\nattach = \"br0\"\naddress = \"10.5.0.2/24\"\n");
    assert!(alone.node(UPLINK_SEGMENT).is_none());
    assert_eq!(
        alone.node("host").unwrap().link("eth0").unwrap().kind,
        LinkKind::Veth { peer_node: "external".into(), peer: "eth0".into(), create: true }
    );
}
