//! The libnetwork model against a real dockerd 20.10.24.
//!
//! `captures/` holds `iptables-save` of Debian 12's dockerd 20.10.24 run in
//! a network namespace, one file per configuration (counters dropped; each
//! `br-<id>` written as `{network name}`, since Docker's IDs are random and
//! bridgelab's are stable; the capture host's 203.0.113.0/24 uplink written
//! as the lab's 198.51.100.0/24). Each test plans the same configuration
//! as a scenario and compares the rules byte for byte.

use super::*;
use crate::scenario::{Proto, Scenario};

fn plan_of(text: &str) -> Result<Plan, Diagnostics> {
    let text = format!("[daemon]\nfirewall = \"docker20\"\n{text}");
    let s = Scenario::parse("p.toml".into(), text).unwrap_or_else(|e| panic!("{e}"));
    crate::plan::plan(&s)
}

fn ok(text: &str) -> Plan {
    plan_of(text).unwrap_or_else(|e| panic!("{e}"))
}

fn err(text: &str) -> String {
    plan_of(text).expect_err("plan should fail").to_string()
}

/// A capture with `{network}` replaced by the plan's bridge of that network.
fn capture(plan: &Plan, text: &str) -> String {
    let mut t = text.to_string();
    if let Some(b) = &plan.bridge {
        t = t.replace("{bridge}", &b.name);
    }
    for n in &plan.networks {
        t = t.replace(&format!("{{{}}}", n.name), &n.bridge.name);
    }
    assert!(!t.contains('{'), "a network of the capture is not in the plan:\n{t}");
    t
}

fn same_rules(plan: &Plan, text: &str) {
    let want = capture(plan, text);
    let got = plan.iptables.render();
    assert_eq!(got, want, "\n--- plan ---\n{got}\n--- dockerd 20.10.24 ---\n{want}");
}

fn ips(p: &Plan) -> Vec<String> {
    p.containers.iter().map(|c| c.ip().map(|i| i.to_string()).unwrap_or_else(|| "-".into())).collect()
}

const WEB_AND_DNS: &str = r#"
[[container]]
name = "web"
publish = ["8080:80"]
[[container]]
name = "dns"
publish = ["5353:53/udp"]
"#;

#[test]
fn a_fresh_daemon_has_dockers_chains_in_dockers_order() {
    let p = ok("");
    same_rules(&p, include_str!("captures/1-default-empty.txt"));
    let b = p.bridge.as_ref().unwrap();
    assert_eq!((b.name.as_str(), b.address.to_string()), ("docker0", "172.17.0.1/16".to_string()));
}

#[test]
fn published_ports_get_dnat_accept_and_hairpin_masquerade() {
    let p = ok(WEB_AND_DNS);
    same_rules(&p, include_str!("captures/2-default-two-containers.txt"));
    assert_eq!(ips(&p), ["172.17.0.2", "172.17.0.3"]);
    let web = &p.container("web").unwrap().endpoints[0];
    assert_eq!(web.mac.to_string(), "02:42:ac:11:00:02");
    assert_eq!(web.gateway.unwrap().to_string(), "172.17.0.1");
    // docker-proxy listens on 0.0.0.0 and on :: for each port.
    let proxies: Vec<String> = p.port_mappings.iter().map(|m| m.to_string()).collect();
    assert_eq!(
        proxies,
        [
            "0.0.0.0:8080/tcp -> 172.17.0.2:80 (web)",
            ":::8080/tcp -> 172.17.0.2:80 (web)",
            "0.0.0.0:5353/udp -> 172.17.0.3:53 (dns)",
            ":::5353/udp -> 172.17.0.3:53 (dns)",
        ]
    );
}

#[test]
fn publish_forms_in_dockers_binding_order() {
    // Capture 2b without its `-P` and `[::]:` containers (p3, and p4's `::` port).
    let p = ok(r#"
[[container]]
name = "p1"
publish = ["8080:80", "127.0.0.1:8081:80", "8082:80/udp", "8083:80/tcp", "8083:80/udp"]
[[container]]
name = "p2"
publish = ["80", "9000-9001:90-91", "127.0.0.1::80"]
"#);
    let nat = p.iptables.render();
    let dnat: Vec<&str> = nat.lines().filter(|l| l.contains("DNAT")).collect();
    let want: Vec<&str> =
        include_str!("captures/2b-default-publish-forms.txt").lines().filter(|l| l.contains("DNAT")).take(9).collect();
    assert_eq!(dnat, want);
    // 127.0.0.1:32768 first; 0.0.0.0:32768 then fails to bind and the
    // mapper retries on 32769; :: has a table of its own.
    let p2: Vec<String> = p
        .port_mappings
        .iter()
        .filter(|m| &*m.container == "p2" && m.container_port == 80)
        .map(|m| m.to_string())
        .collect();
    assert_eq!(
        p2,
        [
            "127.0.0.1:32768/tcp -> 172.17.0.3:80 (p2)",
            "0.0.0.0:32769/tcp -> 172.17.0.3:80 (p2)",
            ":::32768/tcp -> 172.17.0.3:80 (p2)"
        ]
    );
}

#[test]
fn icc_off_drops_and_a_link_opens_the_exposed_ports() {
    let p = ok(r#"icc = false
[[container]]
name = "web"
expose = ["80"]
[[container]]
name = "client"
links = ["web:db"]
[[container]]
name = "other"
[[step]]
do = "remove"
container = "client"
"#);
    same_rules(&p, include_str!("captures/3-icc-false-link.txt"));
    same_rules(&p.steps[0].after, include_str!("captures/3-icc-false-link--after-rm-client.txt"));
}

#[test]
fn userland_proxy_off_uses_hairpin_nat_and_route_localnet() {
    let p = ok("userland_proxy = false\n[[container]]\nname = \"web\"\npublish = [\"8080:80\"]\n[[container]]\nname = \"client\"\n");
    same_rules(&p, include_str!("captures/4-userland-proxy-false.txt"));
    assert!(p.port_mappings.is_empty(), "no docker-proxy relays");
    // docker inspect still lists the binding: IPv4 only (capture 4's
    // Ports: 0.0.0.0:8080, no [::]:8080 without the proxy).
    let bound: Vec<String> = p.bindings.iter().map(|m| m.to_string()).collect();
    assert_eq!(bound, ["0.0.0.0:8080/tcp -> 172.17.0.2:80 (web)"]);
    let host = p.node("host").unwrap();
    assert!(host.sysctls.iter().any(|s| s.key == "net.ipv4.conf.docker0.route_localnet" && s.value == "1"));
    let veth = &p.container("web").unwrap().endpoints[0].host_veth;
    assert!(host.link(veth).unwrap().hairpin, "hairpin mode on the bridge port");
}

#[test]
fn iptables_off_leaves_no_rules_but_the_proxies_run() {
    let p = ok("iptables = false\n[[container]]\nname = \"web\"\npublish = [\"8080:80\"]\n");
    same_rules(&p, include_str!("captures/6-iptables-false.txt"));
    assert_eq!(p.port_mappings.len(), 2);
    let fwd = p.node("host").unwrap().sysctls.iter().find(|s| s.key == "net.ipv4.ip_forward").cloned().unwrap();
    assert_eq!((fwd.value.as_str(), fwd.write), ("1", true));
}

#[test]
fn the_forward_policy_drops_only_when_the_daemon_turned_forwarding_on() {
    same_rules(&ok(""), include_str!("captures/7-forward-0-before.txt"));
    same_rules(&ok("[host]\nforwarding = true\n"), include_str!("captures/7-forward-1-before.txt"));
}

/// setupIPForwarding runs at every daemon start (DB-02): forwarding on
/// before the daemon leaves the policy ACCEPT; a `sysctl` step that turns
/// it off before a restart makes the restarted daemon write it again and
/// set the policy to DROP, as dockerd 20.10.24 and 28.5.2 do.
#[test]
fn a_restart_after_forwarding_was_turned_off_sets_it_again_and_drops() {
    let p = ok(r#"[host]
sysctls = { "net.ipv4.ip_forward" = 1 }
[[step]]
do = "restart-daemon"
[[step]]
do = "sysctl"
key = "net.ipv4.ip_forward"
value = 0
[[step]]
do = "restart-daemon"
"#);
    let policy = |p: &Plan| p.iptables.render().lines().find(|l| l.starts_with(":FORWARD")).unwrap().to_string();
    let fwd = |p: &Plan| {
        p.node("host").unwrap().sysctls.iter().find(|s| s.key == "net.ipv4.ip_forward").unwrap().value.clone()
    };
    assert_eq!((policy(&p), fwd(&p)), (":FORWARD ACCEPT".into(), "1".into()));
    assert_eq!(policy(&p.steps[0].after), ":FORWARD ACCEPT", "still on at the restart");
    assert_eq!((policy(&p.steps[1].after), fwd(&p.steps[1].after)), (":FORWARD ACCEPT".into(), "0".into()));
    assert_eq!((policy(&p.steps[2].after), fwd(&p.steps[2].after)), (":FORWARD DROP".into(), "1".into()));
}

#[test]
fn bip_fixed_cidr_and_mtu() {
    let p = ok(r#"bip = "10.66.0.1/24"
fixed_cidr = "10.66.0.128/25"
mtu = 1400
[[network]]
name = "usr"
[[container]]
name = "ca"
[[container]]
name = "cb"
publish = ["8080:80"]
[[container]]
name = "cc"
network = "usr"
"#);
    same_rules(&p, include_str!("captures/8-bip-fixed-cidr-mtu.txt"));
    assert_eq!(ips(&p), ["10.66.0.128", "10.66.0.129", "172.17.0.2"]);
    let ca = &p.container("ca").unwrap().endpoints[0];
    assert_eq!((ca.mtu, ca.mac.to_string()), (1400, "02:42:0a:42:00:80".to_string()));
    // --mtu is the default bridge's only.
    assert_eq!(p.container("cc").unwrap().endpoints[0].mtu, 1500);
    let host = p.node("host").unwrap();
    assert_eq!(host.link("docker0").unwrap().mtu_expected, 1400);
}

#[test]
fn ip_masq_off_with_ip_and_per_network_options() {
    let p = ok(r#"ip_masq = false
ip = "198.51.100.1"
[[network]]
name = "masq"
ip_masq = true
[[network]]
name = "noicc"
icc = false
bridge = "noicc0"
host_ip = "127.0.0.1"
[[container]]
name = "web"
publish = ["8080:80", "127.0.0.1:8081:80"]
[[container]]
name = "n1"
network = "noicc"
publish = ["8090:80"]
[[container]]
name = "n2"
network = "noicc"
"#);
    same_rules(&p, include_str!("captures/9-ip-masq-false-ip.txt"));
    // --ip (and host_binding_ipv4) make one proxy, none on ::.
    assert_eq!(p.port_mappings.len(), 3);
}

#[test]
fn a_container_restart_moves_its_port_rules_behind_the_others() {
    let text = r#"
[[network]]
name = "usr"
[[container]]
name = "web"
publish = ["8080:80"]
[[container]]
name = "always"
publish = ["8081:80"]
[[container]]
name = "u1"
network = "usr"
[[step]]
do = "restart"
container = "web"
[[step]]
do = "flush-iptables"
[[step]]
do = "restart-daemon"
[[step]]
do = "start"
container = "always"
"#;
    let p = ok(text);
    same_rules(&p, include_str!("captures/10-restart-and-flush--0-before.txt"));
    same_rules(&p.steps[0].after, include_str!("captures/10-restart-and-flush--1-after-container-restart.txt"));
    // After a flush Docker notices nothing; the FORWARD policy stays.
    assert_eq!(p.steps[1].after.iptables.render(), "*filter\n:INPUT ACCEPT\n:FORWARD DROP\n:OUTPUT ACCEPT\nCOMMIT\n");
    // The restarted daemon rebuilds its chains, docker0 first; `always`
    // (restarted by its policy in the capture, by a step here) gets .2.
    same_rules(&p.steps[3].after, include_str!("captures/10-restart-and-flush--4-after-daemon-restart.txt"));
    assert_eq!(p.steps[3].after.container("always").unwrap().ip().unwrap().to_string(), "172.17.0.2");
}

#[test]
fn a_daemon_restart_keeps_user_network_rules_in_place_and_puts_docker0_on_top() {
    let text = r#"
[[network]]
name = "usr"
[[network]]
name = "usr2"
[[container]]
name = "web"
publish = ["8080:80"]
[[container]]
name = "always"
publish = ["8081:80"]
[[container]]
name = "unless"
[[container]]
name = "u1"
network = "usr"
[[step]]
do = "restart-daemon"
[[step]]
do = "start"
container = "unless"
[[step]]
do = "start"
container = "always"
[[step]]
do = "start"
container = "u1"
"#;
    let p = ok(text);
    // In the capture the networks were made after web, always and unless;
    // the order of rules does not depend on it.
    same_rules(&p, include_str!("captures/10b-daemon-restart--0-before.txt"));
    same_rules(&p.steps[3].after, include_str!("captures/10b-daemon-restart--2-after-daemon-restart.txt"));
}

#[test]
fn the_default_pool_skips_link_routes() {
    let p = ok(r#"
[host]
routes = ["172.17.0.0/16", "172.19.0.0/16"]
[[network]]
name = "usr"
[[network]]
name = "usr2"
[[container]]
name = "ca"
"#);
    same_rules(&p, include_str!("captures/11b-default-pool-route-scope-link.txt"));
    assert_eq!(ips(&p), ["172.18.0.2"]);
}

#[test]
fn addresses_are_the_lowest_free_again_after_a_stop() {
    let p = ok(r#"
[[container]]
name = "s1"
[[container]]
name = "s2"
[[container]]
name = "s3"
[[step]]
do = "remove"
container = "s2"
[[step]]
do = "run"
[step.container]
name = "s4"
[[step]]
do = "run"
[step.container]
name = "s5"
[[step]]
do = "stop"
container = "s1"
[[step]]
do = "start"
container = "s1"
"#);
    assert_eq!(ips(&p), ["172.17.0.2", "172.17.0.3", "172.17.0.4"]);
    assert_eq!(ips(&p.steps[1].after), ["172.17.0.2", "172.17.0.4", "172.17.0.3"]);
    assert_eq!(ips(&p.steps[2].after), ["172.17.0.2", "172.17.0.4", "172.17.0.3", "172.17.0.5"]);
    assert_eq!(ips(&p.steps[4].after), ["172.17.0.2", "172.17.0.4", "172.17.0.3", "172.17.0.5"]);
}

#[test]
fn ip_without_network_is_ignored_and_mac_is_kept() {
    // Capture 13: `docker run --ip 172.17.0.9` without --network gets .2.
    let p = ok("[[container]]\nname = \"ipd\"\nip = \"172.17.0.9\"\n[[container]]\nname = \"macd\"\nmac = \"02:00:00:00:00:09\"\n");
    assert_eq!(ips(&p), ["172.17.0.2", "172.17.0.3"]);
    assert_eq!(p.container("macd").unwrap().endpoints[0].mac.to_string(), "02:00:00:00:00:09");
    let e = err("[[container]]\nname = \"ipb\"\nnetwork = \"bridge\"\nip = \"172.17.0.9\"\n");
    assert!(e.contains("user specified IP address is supported on user defined networks only"), "{e}");
}

#[test]
fn a_taken_port_fails_the_start_with_dockers_words() {
    let e = err("[[container]]\nname = \"aa\"\npublish = [\"8080:80\"]\n[[container]]\nname = \"bb\"\npublish = [\"8080:81\"]\n");
    assert!(e.contains("driver failed programming external connectivity on endpoint bb ("), "{e}");
    assert!(e.ends_with("): Bind for 0.0.0.0:8080 failed: port is already allocated"), "{e}");
    // 127.0.0.1:8081 and then 0.0.0.0:8081: the allocator allows it, the bind does not.
    let e = err("[[container]]\nname = \"aa\"\npublish = [\"127.0.0.1:8081:80\"]\n[[container]]\nname = \"bb\"\npublish = [\"8081:80\"]\n");
    assert!(
        e.ends_with("Error starting userland proxy: listen tcp4 0.0.0.0:8081: bind: address already in use"),
        "{e}"
    );
}

#[test]
fn veth_and_bridge_names_have_dockers_shape_and_are_stable() {
    let text = "[[network]]\nname = \"usr\"\n[[container]]\nname = \"aa\"\nnetwork = \"usr\"\n";
    let (a, b) = (ok(text), ok(text));
    assert_eq!(a.to_string(), b.to_string());
    let br = &a.networks[0].bridge.name;
    assert!(br.starts_with("br-") && br.len() == 15 && br[3..].bytes().all(|c| c.is_ascii_hexdigit()), "{br}");
    let veth = &a.container("aa").unwrap().endpoints[0].host_veth;
    assert!(veth.starts_with("veth") && veth.len() == 11, "{veth}");
    // Bridges the daemon makes have 02:42 MACs.
    let mac = a.node("host").unwrap().link(br).unwrap().mac.unwrap().to_string();
    assert!(mac.starts_with("02:42:"), "{mac}");
}

/// The containers' addresses per network, as `docker inspect` lists them.
fn addresses(p: &Plan, name: &str) -> Vec<String> {
    let mut v: Vec<String> =
        p.container(name).unwrap().endpoints.iter().map(|e| format!("{} {}", e.network, e.address)).collect();
    v.sort();
    v
}

#[test]
fn user_networks_connect_disconnect_stop_start_and_remove() {
    // Capture 5, step by step.
    let p = ok(r#"
[[network]]
name = "neta"
subnet = "10.20.0.0/24"
gateway = "10.20.0.1"
[[network]]
name = "netb"
[[network]]
name = "netc"
internal = true
[[container]]
name = "multi"
network = ["neta", "netb"]
[[container]]
name = "onb"
network = "netb"
[[container]]
name = "onc"
network = "netc"
[[container]]
name = "onc2"
network = "netc"
[[container]]
name = "ondef"
publish = ["8080:80"]
[[step]]
do = "disconnect"
container = "multi"
network = "netb"
[[step]]
do = "stop"
container = "multi"
[[step]]
do = "run"
[step.container]
name = "taker"
network = "neta"
[[step]]
do = "start"
container = "multi"
[[step]]
do = "connect"
container = "onb"
network = "neta"
ip = "10.20.0.50"
[[step]]
do = "connect"
container = "multi"
network = "netb"
[[step]]
do = "remove"
container = "multi"
"#);
    same_rules(&p, include_str!("captures/5-user-networks--1-multi-on-a-and-b.txt"));
    assert_eq!(addresses(&p, "multi"), ["neta 10.20.0.2/24", "netb 172.18.0.2/16"]);
    assert_eq!(addresses(&p, "onc2"), ["netc 172.19.0.3/16"]);
    // An internal network's containers still have a default route (capture 5, container-onc).
    assert_eq!(p.node("onc").unwrap().routes[0].to_string(), "default via 172.19.0.1 dev eth0");
    same_rules(&p.steps[0].after, include_str!("captures/5-user-networks--2-after-disconnect-b.txt"));
    same_rules(&p.steps[1].after, include_str!("captures/5-user-networks--3-after-stop.txt"));
    // taker takes multi's old address; multi comes back with the next one.
    let started = &p.steps[3].after;
    same_rules(started, include_str!("captures/5-user-networks--4-after-start.txt"));
    assert_eq!(addresses(started, "taker"), ["neta 10.20.0.2/24"]);
    assert_eq!(addresses(started, "multi"), ["neta 10.20.0.3/24"]);
    let connected = &p.steps[5].after;
    same_rules(connected, include_str!("captures/5-user-networks--5-after-connect-ip-and-reconnect.txt"));
    assert_eq!(addresses(connected, "onb"), ["neta 10.20.0.50/24", "netb 172.18.0.3/16"]);
    assert_eq!(addresses(connected, "multi"), ["neta 10.20.0.3/24", "netb 172.18.0.2/16"]);
    // onb joined neta second: it is eth1, with 02:42 + its address.
    let onb = connected.container("onb").unwrap().endpoint_on("neta").unwrap();
    assert_eq!((onb.iface.as_str(), onb.mac.to_string()), ("eth1", "02:42:0a:14:00:32".to_string()));
    same_rules(&p.steps[6].after, include_str!("captures/5-user-networks--6-after-rm.txt"));
}

#[test]
fn ports_and_the_default_route_follow_the_gateway_endpoint() {
    // Capture 15: the network whose name sorts first carries both.
    let p = ok(r#"
[[network]]
name = "abc"
[[network]]
name = "zzz"
[[container]]
name = "web"
publish = ["8080:80"]
[[step]]
do = "connect"
container = "web"
network = "abc"
[[step]]
do = "connect"
container = "web"
network = "zzz"
[[step]]
do = "disconnect"
container = "web"
network = "abc"
[[step]]
do = "run"
[step.container]
name = "onz"
network = ["zzz", "abc"]
publish = ["8081:80"]
[[step]]
do = "disconnect"
container = "web"
network = "bridge"
"#);
    same_rules(&p, include_str!("captures/15-gateway-endpoint-order--0-web-on-bridge.txt"));
    let gw = |p: &Plan, n: &str| p.node(n).unwrap().routes[0].to_string();
    assert_eq!(gw(&p, "web"), "default via 172.17.0.1 dev eth0");
    let abc = &p.steps[0].after;
    same_rules(abc, include_str!("captures/15-gateway-endpoint-order--1-connect-abc.txt"));
    assert_eq!(gw(abc, "web"), "default via 172.18.0.1 dev eth1");
    same_rules(&p.steps[1].after, include_str!("captures/15-gateway-endpoint-order--2-connect-zzz.txt"));
    same_rules(&p.steps[2].after, include_str!("captures/15-gateway-endpoint-order--3-disconnect-abc.txt"));
    same_rules(&p.steps[3].after, include_str!("captures/15-gateway-endpoint-order--4-onz-connect-abc.txt"));
    let last = &p.steps[4].after;
    same_rules(last, include_str!("captures/15-gateway-endpoint-order--5-web-disconnect-bridge.txt"));
    assert_eq!(gw(last, "web"), "default via 172.19.0.1 dev eth2");
}

#[test]
fn interface_names_are_never_reused_while_the_sandbox_lives() {
    // Capture 16: eth1 disconnected and connected again comes back as eth3.
    let p = ok(r#"userland_proxy = false
[[network]]
name = "usr"
[[network]]
name = "usr2"
[[container]]
name = "web"
network = ["usr", "usr2", "bridge"]
publish = ["8080:80"]
[[step]]
do = "disconnect"
container = "web"
network = "usr2"
[[step]]
do = "connect"
container = "web"
network = "usr2"
"#);
    let last = &p.steps[1].after;
    same_rules(last, include_str!("captures/16-proxy-false-usernet-ifnames.txt"));
    let ifaces: Vec<&str> = last.container("web").unwrap().endpoints.iter().map(|e| e.iface.as_str()).collect();
    assert_eq!(ifaces, ["eth0", "eth2", "eth3"]);
    let host = last.node("host").unwrap();
    for n in ["docker0", &last.networks[0].bridge.name, &last.networks[1].bridge.name] {
        let key = format!("net.ipv4.conf.{n}.route_localnet");
        assert!(host.sysctls.iter().any(|s| s.key == key && s.value == "1"), "{key}");
    }
}

#[test]
fn network_mistakes_get_dockers_words() {
    let many: String = (0..32).map(|i| format!("[[network]]\nname = \"n{i}\"\n")).collect();
    let e = err(&many);
    assert!(
        e.contains("could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network"),
        "{e}"
    );
    // The /30 fits one container (capture 5b).
    let e = err("[[network]]\nname = \"tiny\"\nsubnet = \"10.40.0.0/30\"\n[[container]]\nname = \"t1\"\nnetwork = \"tiny\"\n[[container]]\nname = \"t2\"\nnetwork = \"tiny\"\n");
    assert!(e.contains("no available IPv4 addresses on this network's address pools: tiny ("), "{e}");
    let e = err("[[network]]\nname = \"x1\"\nsubnet = \"10.30.0.0/24\"\n[[container]]\nname = \"r5\"\nnetwork = \"x1\"\nip = \"10.99.0.9\"\n");
    assert!(e.contains("Invalid address 10.99.0.9: It does not belong to any of this network's subnets"), "{e}");
    let e = err("[[network]]\nname = \"x1\"\nsubnet = \"10.30.0.0/24\"\n[[container]]\nname = \"r2\"\nnetwork = \"x1\"\nip = \"10.30.0.9\"\n[[container]]\nname = \"r3\"\nnetwork = \"x1\"\nip = \"10.30.0.9\"\n");
    assert!(e.ends_with("Address already in use"), "{e}");
    let e = err("[[network]]\nname = \"usr\"\n[[container]]\nname = \"aa\"\n[[step]]\ndo = \"connect\"\ncontainer = \"aa\"\nnetwork = \"usr\"\nip = \"172.18.0.77\"\n");
    assert!(
        e.contains(
            "user specified IP address is supported only when connecting to networks with user configured subnets"
        ),
        "{e}"
    );
    let e = err("[[network]]\nname = \"usr\"\n[[container]]\nname = \"aa\"\nnetwork = \"none\"\n[[step]]\ndo = \"connect\"\ncontainer = \"aa\"\nnetwork = \"usr\"\n");
    assert!(
        e.contains(
            "container cannot be connected to multiple networks with one of the networks in private (none) mode"
        ),
        "{e}"
    );
    let e = err("[[network]]\nname = \"usr\"\n[[container]]\nname = \"aa\"\nnetwork = \"host\"\n[[step]]\ndo = \"connect\"\ncontainer = \"aa\"\nnetwork = \"usr\"\n");
    assert!(e.contains("container sharing network namespace with another container or host cannot be connected to any other network"), "{e}");
}

#[test]
fn network_modes_and_connects_on_the_default_bridge() {
    // Capture 13 (without the runs and connects that fail there).
    let p = ok(r#"
[[network]]
name = "usr"
[[network]]
name = "usrsub"
subnet = "10.50.0.0/24"
[[container]]
name = "ip-default"
ip = "172.17.0.9"
[[container]]
name = "mac-default"
mac = "02:00:00:00:00:09"
[[container]]
name = "web"
publish = ["8080:80"]
[[container]]
name = "hostmode"
network = "host"
[[container]]
name = "nonemode"
network = "none"
[[container]]
name = "joined"
network = "container:web"
[[container]]
name = "hostpub"
network = "host"
publish = ["9999:80"]
[[step]]
do = "connect"
container = "web"
network = "usr"
[[step]]
do = "connect"
container = "ip-default"
network = "usrsub"
ip = "10.50.0.77"
[[step]]
do = "run"
[step.container]
name = "link-user"
network = "usr"
links = ["web:db"]
[[step]]
do = "run"
[step.container]
name = "link-default"
links = ["web:db", "mac-default:mac-default"]
"#);
    let last = &p.steps[3].after;
    same_rules(last, include_str!("captures/13-ip-and-netmodes.txt"));
    assert_eq!(addresses(last, "ip-default"), ["bridge 172.17.0.2/16", "usrsub 10.50.0.77/24"]);
    assert_eq!(addresses(last, "web"), ["bridge 172.17.0.4/16", "usr 172.18.0.2/16"]);
    assert_eq!(addresses(last, "link-user"), ["usr 172.18.0.3/16"]);
    assert_eq!(addresses(last, "link-default"), ["bridge 172.17.0.5/16"]);
    assert_eq!(last.container("joined").unwrap().netns.as_deref(), Some("web"));
    assert!(last.port_mappings.iter().all(|m| &*m.container == "web"), "host mode discards -p");
}

#[test]
fn bridge_nf_call_iptables_is_written_only_for_a_network_without_icc() {
    // Captures 12, 12b, 12c: icc off (daemon or one network) sets it; the proxy off does not.
    let written =
        |p: &Plan| p.node("host").unwrap().sysctls.iter().find(|s| s.key == BR_NETFILTER_SYSCTL).unwrap().write;
    assert!(written(&ok("icc = false\n")));
    assert!(written(&ok("[[network]]\nname = \"noicc\"\nicc = false\n")));
    assert!(!written(&ok("userland_proxy = false\n")));
    assert!(!written(&ok("")));
}

#[test]
fn a_joined_namespace_outlives_its_maker_without_interfaces() {
    let p = ok(r#"
[[container]]
name = "web"
[[container]]
name = "side"
network = "container:web"
[[step]]
do = "stop"
container = "web"
[[step]]
do = "start"
container = "web"
"#);
    let stopped = &p.steps[0].after;
    assert_eq!(stopped.container("side").unwrap().netns.as_deref(), Some("web"));
    let links: Vec<&str> = stopped.node("web").unwrap().links.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(links, ["lo"], "libnetwork removed the interface with the sandbox");
    let again = &p.steps[1].after;
    assert_eq!(again.container("web").unwrap().netns.as_deref(), Some("web+2"));
    assert_eq!(addresses(again, "web"), ["bridge 172.17.0.2/16"]);
}

#[test]
fn docker28_says_a_start_failed_to_set_up_networking() {
    // dockerd 28.5.2 (start_linux.go `initializeCreatedTask` wraps
    // `allocateNetwork`): "failed to set up container networking: " before
    // the port error and before IPAM's; a link to a stopped container is
    // found in `createSpec`, before the task: no prefix.
    let plan28 = |text: &str| {
        let s = Scenario::parse("p.toml".into(), format!("[daemon]\nfirewall = \"docker28\"\n{text}")).unwrap();
        crate::plan::plan(&s).expect_err("plan should fail").to_string()
    };
    let e = plan28("[[container]]\nname = \"aa\"\npublish = [\"8080:80\"]\n[[container]]\nname = \"bb\"\npublish = [\"8080:81\"]\n");
    assert!(
        e.contains(
            ": failed to set up container networking: driver failed programming external connectivity on endpoint bb ("
        ),
        "{e}"
    );
    assert!(e.ends_with("): Bind for 0.0.0.0:8080 failed: port is already allocated"), "{e}");
    let e = plan28(
        "[[network]]\nname = \"n2\"\nsubnet = \"10.9.0.0/30\"\n[[container]]\nname = \"c2\"\nnetwork = \"n2\"\n\
         [[container]]\nname = \"c3\"\nnetwork = \"n2\"\n",
    );
    assert!(
        e.contains(": failed to set up container networking: no available IPv4 addresses on this network's address pools: n2 ("),
        "{e}"
    );
    let e = plan28("[[container]]\nname = \"db\"\nrunning = false\n[[container]]\nname = \"aa\"\nlinks = [\"db:d\"]\n");
    assert!(e.ends_with(": Cannot link to a non running container: /db AS /aa/d"), "{e}");
    // 20.10 returns the driver's words as they are.
    let e = err("[[container]]\nname = \"aa\"\npublish = [\"8080:80\"]\n[[container]]\nname = \"bb\"\npublish = [\"8080:81\"]\n");
    assert!(e.contains(": driver failed programming external connectivity on endpoint bb ("), "{e}");
}

#[test]
fn a_failed_start_gives_back_every_port_and_rule() {
    // bb's bindings go highest first: 9010 … 9000 are mapped, then 8080
    // fails; all of it is given back (the model finds this without mapping).
    let p = ok(&r#"
[[container]]
name = "aa"
publish = ["8080:80"]
[[step]]
do = "run"
fails = "driver failed programming external connectivity on endpoint bb (BBID): Bind for 0.0.0.0:8080 failed: port is already allocated"
[step.container]
name = "bb"
publish = ["9000-9010:9000-9010", "8080:81"]
[[step]]
do = "run"
[step.container]
name = "cc"
publish = ["9005:1", "80"]
"#
    .replace("BBID", &network::hex_id(&["endpoint", "p", "bb", "bridge", "2"])));
    let failed = &p.steps[0].after;
    assert_eq!(failed.iptables.render(), p.iptables.render(), "nothing of bb's is left");
    assert!(!failed.container("bb").unwrap().running);
    let cc = &p.steps[1].after;
    let ports: Vec<String> = cc.port_mappings.iter().filter(|m| &*m.container == "cc").map(|m| m.to_string()).collect();
    assert_eq!(
        ports,
        // The dynamic pointer did not move; 80 sorts first (`pi > pj` wins).
        [
            "0.0.0.0:32768/tcp -> 172.17.0.3:80 (cc)",
            ":::32768/tcp -> 172.17.0.3:80 (cc)",
            "0.0.0.0:9005/tcp -> 172.17.0.3:1 (cc)",
            ":::9005/tcp -> 172.17.0.3:1 (cc)",
        ]
    );
}

#[test]
fn every_container_namespace_gets_the_daemons_sysctls() {
    // daemon/oci_linux.go (ping sockets, low ports) and osl.NewSandbox
    // (IPv6 off on all interfaces), as read back from a real 20.10.
    let p = ok("[[container]]\nname = \"web\"\n[[container]]\nname = \"quiet\"\nnetwork = \"none\"\n");
    for name in ["web", "quiet"] {
        let node = p.node(name).unwrap();
        let got: Vec<(&str, &str, bool)> =
            node.sysctls.iter().map(|s| (s.key.as_str(), s.value.as_str(), s.write)).collect();
        assert_eq!(
            got,
            [
                ("net.ipv4.ping_group_range", "0\t2147483647", true),
                ("net.ipv4.ip_unprivileged_port_start", "0", true),
                ("net.ipv6.conf.all.disable_ipv6", "1", true),
            ],
            "{name}"
        );
    }
}

/// What each release deletes from the conntrack table when a container
/// with a published UDP port starts and stops: 20.10 only on the stop, by
/// address (`clearEndpointConnections`); 23+ also on the start, by address
/// and by UDP port (`clearConntrackEntries` in `ProgramExternalConnectivity`):
/// 28 the host port on any address, 29 the container port at the host
/// address it names.
#[test]
fn a_start_deletes_udp_entries_by_port_from_docker28_on() {
    let text = r#"
[[step]]
do        = "run"
container = { name = "sip", publish = ["127.0.0.1:5061:5060/udp", "8080:80"] }
[[step]]
do        = "stop"
container = "sip"
"#;
    let udp =
        |port, ip: Option<[u8; 4]>| crate::plan::UdpConntrackFilter { dst_port: port, dst_ip: ip.map(Ipv4Addr::from) };
    for (firewall, on_start) in
        [("docker20", vec![]), ("docker28", vec![udp(5061, None)]), ("docker29", vec![udp(5060, Some([127, 0, 0, 1]))])]
    {
        let s = Scenario::parse("p.toml".into(), format!("[daemon]\nfirewall = \"{firewall}\"\n{text}")).unwrap();
        let plan = crate::plan::plan(&s).unwrap_or_else(|e| panic!("{e}"));
        let (run, stop) = (&plan.steps[0].after, &plan.steps[1].after);
        let sip = run.container("sip").unwrap().ip().unwrap();
        assert_eq!(run.conntrack_cleared_udp, on_start, "{firewall}");
        let by_address = if firewall == "docker20" { vec![] } else { vec![sip] };
        assert_eq!(run.conntrack_cleared, by_address, "{firewall}");
        // The revoke drops the mappings before it clears: by address only.
        assert_eq!(stop.conntrack_cleared, vec![sip], "{firewall}");
        assert!(stop.conntrack_cleared_udp.is_empty(), "{firewall}");
    }
}

fn plan28(text: &str) -> Result<Plan, Diagnostics> {
    let s = Scenario::parse("p.toml".into(), format!("[daemon]\nfirewall = \"docker28\"\n{text}")).unwrap();
    crate::plan::plan(&s)
}

#[test]
fn docker28_groups_bindings_that_differ_only_in_host_address() {
    use super::endpoint::{cmp_port_binding, PortBinding};
    let pb = |port, host_ip: Option<&str>, host_port, host_port_end| PortBinding {
        proto: Proto::Tcp,
        port,
        host_ip: host_ip.map(|i| i.parse().unwrap()),
        host_port,
        host_port_end,
    };
    let mut b = vec![
        pb(80, Some("127.0.0.1"), 0, 0),
        pb(81, None, 8081, 8081),
        pb(80, None, 0, 0),
        pb(80, Some("127.0.0.1"), 8080, 8080),
        pb(80, None, 8080, 0),
    ];
    b.sort_by(cmp_port_binding);
    let groups: Vec<Vec<String>> = super::controller::same_port_groups(&b)
        .map(|g| g.iter().map(|x| format!("{:?}:{}:{}", x.host_ip, x.host_port, x.port)).collect())
        .collect();
    // Exact ports first; 8080 on every address and on 127.0.0.1 share a
    // port (a host port end of 0 is the port itself); dynamic 80 likewise.
    assert_eq!(
        groups,
        [
            vec!["None:8080:80", "Some(127.0.0.1):8080:80"],
            vec!["None:8081:81"],
            vec!["None:0:80", "Some(127.0.0.1):0:80"],
        ]
    );
    assert_eq!(
        super::controller::go_port_binding("::".parse().unwrap(), 8000, 8010, [172, 17, 0, 2].into(), 80, Proto::Udp),
        "[::]:8000-8010:172.17.0.2:80/udp"
    );
}

#[test]
fn docker28_maps_one_port_for_every_address_of_a_run() {
    // `-p 80 -p 127.0.0.1::80/udp`-like runs: one port on 0.0.0.0, :: and
    // 127.0.0.1. UDP sockets with SO_REUSEADDR bind over each other, so
    // the run maps; TCP ones clash when the second listens.
    let p = plan28("[[container]]\nname = \"dns\"\npublish = [\"53/udp\", \"127.0.0.1::53/udp\"]\n").unwrap();
    let proxies: Vec<String> = p.port_mappings.iter().map(|m| m.to_string()).collect();
    assert_eq!(
        proxies,
        [
            "0.0.0.0:32768/udp -> 172.17.0.2:53 (dns)",
            ":::32768/udp -> 172.17.0.2:53 (dns)",
            "127.0.0.1:32768/udp -> 172.17.0.2:53 (dns)",
        ]
    );
    let e = plan28("[[container]]\nname = \"both\"\npublish = [\"80\", \"127.0.0.1::80\"]\n").unwrap_err().to_string();
    assert!(e.ends_with("): failed to listen on TCP socket: address already in use"), "{e}");
    // Two runs with one host port: the allocator finds the clash (20.10's
    // tables did not, and the proxy's bind did).
    let e = plan28("[[container]]\nname = \"cc\"\npublish = [\"8080:80\", \"127.0.0.1:8080:81\"]\n")
        .unwrap_err()
        .to_string();
    assert!(e.ends_with("): Bind for 0.0.0.0:8080 failed: port is already allocated"), "{e}");
    let e = err("[[container]]\nname = \"cc\"\npublish = [\"8080:80\", \"127.0.0.1:8080:81\"]\n");
    assert!(
        e.ends_with("Error starting userland proxy: listen tcp4 0.0.0.0:8080: bind: address already in use"),
        "{e}"
    );
    // A host address the host lacks: the daemon's own bind fails.
    let e = plan28("[[container]]\nname = \"far\"\npublish = [\"192.0.2.99::80\"]\n").unwrap_err().to_string();
    assert!(
        e.ends_with("): failed to bind host port for 192.0.2.99::172.17.0.2:80/tcp: cannot assign requested address"),
        "{e}"
    );
}

#[test]
fn docker28_a_failed_dynamic_run_moves_the_allocator_ten_ports_on() {
    // bindHostPorts tries a dynamic run 10 times (maxAllocatePortAttempts);
    // each attempt's port is given back, but the range goes on after it.
    let p = plan28(
        "[[container]]\nname = \"both\"\nrunning = false\npublish = [\"80\", \"127.0.0.1::80\"]\n\
         [[step]]\ndo = \"start\"\ncontainer = \"both\"\nfails = \"failed to set up container networking: \
         driver failed programming external connectivity on endpoint both (1780ab9210ef4d7b1784ab9210f33652177aab9210eae1cd177eab9210eecaa4): \
         failed to listen on TCP socket: address already in use\"\n\
         [[step]]\ndo = \"run\"\n[step.container]\nname = \"later\"\npublish = [\"80\"]\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let ports: Vec<String> = p.steps[1].after.port_mappings.iter().map(|m| m.to_string()).collect();
    assert_eq!(ports, ["0.0.0.0:32778/tcp -> 172.17.0.2:80 (later)", ":::32778/tcp -> 172.17.0.2:80 (later)"]);
}

#[test]
fn docker28_checks_links_before_networking_and_words_a_restart() {
    // createSpec (setupLinkedContainers) runs before initializeCreatedTask
    // connects the networks: the stopped link wins over the taken port.
    let text =
        "[[container]]\nname = \"web\"\npublish = [\"8080:80\"]\n[[container]]\nname = \"db\"\nrunning = false\n\
                [[container]]\nname = \"aa\"\nrunning = false\nlinks = [\"db:d\"]\npublish = [\"8080:80\"]\n\
                [[step]]\ndo = \"start\"\ncontainer = \"aa\"\nfails = \"F\"\n";
    let e = plan28(text).unwrap_err().to_string();
    assert!(e.contains("Docker fails this step with \"Cannot link to a non running container: /db AS /aa/d\""), "{e}");
    // 20.10 connects first, and fails on the port.
    let e = err(text);
    assert!(e.contains("Bind for 0.0.0.0:8080 failed: port is already allocated"), "{e}");
    let restart = text.replace("do = \"start\"", "do = \"restart\"");
    let e = plan28(&restart).unwrap_err().to_string();
    assert!(
        e.contains("with \"Cannot restart container aa: Cannot link to a non running container: /db AS /aa/d\""),
        "{e}"
    );
}

/// The bridge's ports are counted as endpoints join and go (not by a scan
/// of all endpoints): 1,023 on a user network, the 1,024th refused; a
/// disconnect, a stop or a remove frees one for the next; another network
/// has ports of its own.
#[test]
fn a_user_network_takes_1023_ports_counted_as_endpoints_come_and_go() {
    let mut full = String::from("[[network]]\nname = \"a\"\n[[network]]\nname = \"b\"\n");
    for i in 0..1023 {
        full.push_str(&format!("[[container]]\nname = \"c{i}\"\nnetwork = \"a\"\n"));
    }
    full.push_str("[[container]]\nname = \"other\"\nnetwork = \"b\"\n");
    let p = ok(&full);
    let bridge = &p.networks.iter().find(|n| n.name == "a").unwrap().bridge.name;
    let ports = p.node("host").unwrap().links.iter().filter(|l| l.master.as_ref() == Some(bridge)).count();
    assert_eq!(ports, 1023);
    let one_more = "[[step]]\ndo = \"run\"\n[step.container]\nname = \"xx\"\nnetwork = \"a\"\n";
    let e = err(&format!("{full}{one_more}"));
    assert!(e.contains(&format!("bridge {bridge} is full")) && e.contains("this would be port 1024"), "{e}");
    let connect = "[[step]]\ndo = \"connect\"\ncontainer = \"other\"\nnetwork = \"a\"\n";
    assert!(err(&format!("{full}{connect}")).contains("is full"));
    for free in [
        "[[step]]\ndo = \"disconnect\"\ncontainer = \"c7\"\nnetwork = \"a\"\n",
        "[[step]]\ndo = \"stop\"\ncontainer = \"c0\"\n",
        "[[step]]\ndo = \"remove\"\ncontainer = \"c1022\"\n",
    ] {
        let p = ok(&format!("{full}{free}{one_more}"));
        let last = &p.steps[1].after;
        assert!(last.container("xx").unwrap().running, "{free}");
    }
    // A stop and start of the same container takes its port back.
    ok(&format!("{full}[[step]]\ndo = \"restart\"\ncontainer = \"c3\"\n"));
}
