//! The simulator against Docker 1.6.2's behaviour, without root.

use super::*;
use crate::scenario::Scenario;
use rstest::rstest;

fn plan_of(text: &str) -> Result<Plan, Diagnostics> {
    let s = Scenario::parse("p.toml".into(), text.to_string()).unwrap_or_else(|e| panic!("{e}"));
    plan(&s)
}

fn ok(text: &str) -> Plan {
    plan_of(text).unwrap_or_else(|e| panic!("{e}"))
}

fn err(text: &str) -> String {
    plan_of(text).expect_err("plan should fail").to_string()
}

fn ips(p: &Plan) -> Vec<String> {
    p.containers.iter().map(|c| c.ip().map(|i| i.to_string()).unwrap_or_else(|| "-".into())).collect()
}

const TWO: &str = "[[container]]\nname = \"aa\"\n[[container]]\nname = \"bb\"\n";

#[test]
fn default_host_is_docker0_on_the_first_candidate() {
    let p = ok(TWO);
    let b = p.bridge.as_ref().unwrap();
    assert_eq!(b.name, "docker0");
    assert_eq!(b.address.to_string(), "172.17.42.1/16");
    assert_eq!(ips(&p), ["172.17.0.1", "172.17.0.2"]);
    let aa = p.container("aa").unwrap().endpoint.as_ref().unwrap();
    assert_eq!(aa.mac.to_string(), "02:42:ac:11:00:01");
    assert_eq!(aa.gateway.to_string(), "172.17.42.1");
    assert_eq!(aa.mtu, 1500);
    assert!(aa.host_veth.starts_with("veth") && aa.host_veth.len() == 11);
    // The host end hangs on the bridge; the container end is eth0 with a default route.
    let host = p.node("host").unwrap();
    assert_eq!(host.link(&aa.host_veth).unwrap().master.as_deref(), Some("docker0"));
    let node = p.node("aa").unwrap();
    assert_eq!(node.link("eth0").unwrap().addresses[0].to_string(), "172.17.0.1/16");
    assert_eq!(node.routes[0].to_string(), "default via 172.17.42.1 dev eth0");
}

#[test]
fn plans_are_deterministic() {
    assert_eq!(ok(TWO).to_string(), ok(TWO).to_string());
    let a = ok(TWO);
    let names: Vec<_> = a.containers.iter().map(|c| c.endpoint.as_ref().unwrap().host_veth.clone()).collect();
    assert_ne!(names[0], names[1]);
}

#[rstest]
#[case::route_on_first("[host]\nroutes = [\"172.17.0.0/16\"]\n", "10.0.42.1/16")]
#[case::route_inside_first("[host]\nroutes = [\"172.17.5.0/24\"]\n", "10.0.42.1/16")]
#[case::route_around_first("[host]\nroutes = [\"172.0.0.0/8\"]\n", "10.0.42.1/16")]
#[case::nameserver("[host]\nnameservers = [\"172.17.0.53\"]\n", "10.0.42.1/16")]
#[case::both("[host]\nroutes = [\"172.17.0.0/16\"]\nnameservers = [\"10.0.0.2\"]\n", "10.1.42.1/16")]
#[case::all_10("[host]\nroutes = [\"172.17.0.0/16\", \"10.0.0.0/8\"]\n", "172.16.42.1/24")]
#[case::existing_bridge_route("[[host.bridge]]\nname = \"br9\"\naddress = \"172.17.0.1/16\"\n", "10.0.42.1/16")]
fn candidates_skip_what_overlaps_routes_and_nameservers(#[case] host: &str, #[case] want: &str) {
    assert_eq!(ok(host).bridge.unwrap().address.to_string(), want);
}

#[test]
fn no_free_candidate_is_dockers_error() {
    let e = err("[host]\nroutes = [\"10.0.0.0/8\", \"172.16.0.0/12\", \"192.168.0.0/16\"]\n");
    assert!(
        e.contains("Could not find a free IP address range for interface 'docker0'. Please configure its address manually and run 'docker -b docker0'"),
        "{e}"
    );
    assert!(e.starts_with("p.toml:2:"), "{e}");
}

#[test]
fn bip_is_used_as_given_without_overlap_checks() {
    let p = ok("[daemon]\nbip = \"10.0.0.1/24\"\n[host]\nroutes = [\"10.0.0.0/24\"]\n[[container]]\nname = \"aa\"\n");
    assert_eq!(p.bridge.as_ref().unwrap().address.to_string(), "10.0.0.1/24");
    // The gateway is the range's first address, so the first container gets .2.
    assert_eq!(ips(&p), ["10.0.0.2"]);
}

#[test]
fn fixed_cidr_narrows_the_pool_but_keeps_the_prefix() {
    let p = ok("[daemon]\nbip = \"10.20.0.1/16\"\nfixed_cidr = \"10.20.8.0/24\"\n[[container]]\nname = \"aa\"\n");
    assert_eq!(ips(&p), ["10.20.8.1"]);
    assert_eq!(p.node("aa").unwrap().link("eth0").unwrap().addresses[0].to_string(), "10.20.8.1/16");
}

#[test]
fn fixed_cidr_outside_the_bridge_is_dockers_error() {
    let e = err("[daemon]\nfixed_cidr = \"10.9.0.0/24\"\n");
    assert_eq!(e, "p.toml:2:14: network does not contain specified subnet");
}

#[test]
fn requested_ip_checks_use_dockers_words() {
    let out = err("[daemon]\nfixed_cidr = \"172.17.1.0/24\"\n[[container]]\nname = \"aa\"\nip = \"172.17.2.9\"\n");
    assert_eq!(out, "p.toml:5:6: Cannot start container aa: requested ip is out of range");
    let taken =
        err("[[container]]\nname = \"aa\"\nip = \"172.17.0.9\"\n[[container]]\nname = \"bb\"\nip = \"172.17.0.9\"\n");
    assert_eq!(taken, "p.toml:6:6: Cannot start container bb: ip already allocated");
    // The gateway itself is taken.
    let gw = err("[[container]]\nname = \"aa\"\nip = \"172.17.42.1\"\n");
    assert!(gw.ends_with("ip already allocated"), "{gw}");
    // A requested address does not move the next-fit pointer.
    let p = ok("[[container]]\nname = \"aa\"\nip = \"172.17.0.9\"\n[[container]]\nname = \"bb\"\n");
    assert_eq!(ips(&p), ["172.17.0.9", "172.17.0.1"]);
}

#[test]
fn an_exhausted_pool_is_dockers_error() {
    // A /30 fixed-cidr holds two addresses.
    let text = "[daemon]\nbip = \"10.0.0.1/24\"\nfixed_cidr = \"10.0.0.4/30\"\n[[container]]\nname = \"aa\"\n[[container]]\nname = \"bb\"\n[[container]]\nname = \"cc\"\n";
    assert_eq!(err(text), "p.toml:9:8: Cannot start container cc: no available ip addresses on network");
}

#[test]
fn existing_bridge_and_bip() {
    let br = "[[host.bridge]]\nname = \"docker0\"\naddress = \"172.18.0.1/16\"\n";
    let p = ok(&format!("{br}[[container]]\nname = \"aa\"\n"));
    assert_eq!(p.bridge.as_ref().unwrap().origin, "existing bridge");
    assert_eq!(ips(&p), ["172.18.0.2"]);
    // Only the address is compared; the existing prefix stays.
    let same = ok(&format!("[daemon]\nbip = \"172.18.0.1/24\"\n{br}"));
    assert_eq!(same.bridge.unwrap().address.to_string(), "172.18.0.1/16");
    let e = err(&format!("[daemon]\nbip = \"172.18.9.1/16\"\n{br}"));
    assert_eq!(e, "p.toml:2:7: Bridge ip (172.18.0.1) does not match existing bridge configuration 172.18.9.1");
}

#[test]
fn docker0_without_an_address_gets_one_and_b_bridge_without_one_fails() {
    let p = ok("[[host.bridge]]\nname = \"docker0\"\n");
    let host = p.node("host").unwrap();
    assert_eq!(host.link("docker0").unwrap().addresses[0].to_string(), "172.17.42.1/16");
    let e = err("[daemon]\nbridge = \"br0\"\n[[host.bridge]]\nname = \"br0\"\n");
    assert_eq!(e, "p.toml:2:10: Interface br0 has no IPv4 addresses");
}

#[test]
fn mtu_goes_on_both_veth_ends_and_the_bridge_follows() {
    let p = ok("[daemon]\nmtu = 1400\n[[container]]\nname = \"aa\"\n");
    let host = p.node("host").unwrap();
    assert_eq!(host.link("docker0").unwrap().mtu, None, "Docker never sets the bridge MTU");
    assert_eq!(host.link("docker0").unwrap().mtu_expected, 1400);
    assert_eq!(p.node("aa").unwrap().link("eth0").unwrap().mtu, Some(1400));
}

#[test]
fn a_bridge_without_ports_has_linkdown_routes() {
    let p = ok("");
    let r: Vec<String> = p.node("host").unwrap().routes.iter().map(|r| r.to_string()).collect();
    assert!(
        r.contains(&"172.17.0.0/16 dev docker0 proto kernel scope link src 172.17.42.1 linkdown".to_string()),
        "{r:?}"
    );
}

#[test]
fn network_modes() {
    let p = ok("[[container]]\nname = \"web\"\n[[container]]\nname = \"side\"\nnetwork = \"container:web\"\n[[container]]\nname = \"hn\"\nnetwork = \"host\"\n[[container]]\nname = \"nn\"\nnetwork = \"none\"\n");
    assert_eq!(p.container("side").unwrap().netns.as_deref(), Some("web"));
    assert_eq!(p.container("hn").unwrap().netns.as_deref(), Some("host"));
    assert!(p.node("side").is_none() && p.node("hn").is_none());
    let nn = p.node("nn").unwrap();
    assert_eq!(nn.links.len(), 1);
    assert!(nn.routes.is_empty());
    // Only the bridged container took an address.
    assert_eq!(ips(&p), ["172.17.0.1", "-", "-", "-"]);
}

#[test]
fn stopped_containers_take_no_address_and_cannot_be_joined_or_linked() {
    let p = ok("[[container]]\nname = \"zz\"\nrunning = false\n[[container]]\nname = \"aa\"\n");
    assert_eq!(ips(&p), ["-", "172.17.0.1"]);
    assert!(p.node("zz").is_none());
    let e = err(
        "[[container]]\nname = \"zz\"\nrunning = false\n[[container]]\nname = \"aa\"\nnetwork = \"container:zz\"\n",
    );
    assert!(e.contains("cannot join network of a non running container: zz"), "{e}");
    let e = err("[[container]]\nname = \"db\"\nrunning = false\n[[container]]\nname = \"aa\"\nlinks = [\"db:d\"]\n");
    assert!(e.contains("Cannot link to a non running container: /db AS /aa/d"), "{e}");
}

#[test]
fn networking_disabled_gives_lo_only() {
    let p = ok("[daemon]\nbridge = \"none\"\n[[container]]\nname = \"aa\"\n");
    assert!(p.bridge.is_none());
    assert!(p.node("host").unwrap().link("docker0").is_none());
    assert_eq!(p.node("aa").unwrap().links.len(), 1);
}

#[test]
fn ip_forward_is_written_only_when_enabled() {
    let on = ok("");
    let s = &on.node("host").unwrap().sysctls[0];
    assert_eq!((s.key.as_str(), s.value.as_str(), s.write), ("net.ipv4.ip_forward", "1", true));
    let off = ok("[daemon]\nip_forward = false\n");
    let s = &off.node("host").unwrap().sysctls[0];
    assert_eq!((s.value.as_str(), s.write), ("0", false));
}

#[test]
fn requested_mac_wins() {
    let p = ok("[[container]]\nname = \"aa\"\nmac = \"02:00:00:00:00:aa\"\n");
    assert_eq!(p.container("aa").unwrap().endpoint.as_ref().unwrap().mac.to_string(), "02:00:00:00:00:aa");
}

#[test]
fn unimplemented_layouts_say_so() {
    let e = err("[daemon]\nfirewall = \"docker20\"\n");
    assert!(e.contains("not implemented yet"), "{e}");
    let e = err("[daemon]\nbackend = \"nftables\"\n");
    assert!(e.contains("not implemented yet"), "{e}");
}

#[test]
fn json_has_the_same_facts() {
    let p = ok(TWO);
    let v: serde_json::Value = serde_json::to_value(&p).unwrap();
    assert_eq!(v["bridge"]["address"], "172.17.42.1/16");
    assert_eq!(v["containers"][1]["endpoint"]["address"], "172.17.0.2/16");
    assert_eq!(v["nodes"][0]["name"], "host");
}

fn mappings(p: &Plan) -> Vec<String> {
    p.port_mappings.iter().map(|m| m.to_string()).collect()
}

#[test]
fn published_ports_come_from_the_namespace_ephemeral_range_in_port_order() {
    let p = ok("[[container]]\nname = \"aa\"\npublish = [\"90\", \"8080:80\", \"53/udp\", \"127.0.0.1::81\"]\n[[container]]\nname = \"bb\"\npublish = [\"90\"]\n");
    assert_eq!(
        mappings(&p),
        [
            "0.0.0.0:32768/udp -> 172.17.0.1:53 (aa)",
            "0.0.0.0:8080/tcp -> 172.17.0.1:80 (aa)",
            "127.0.0.1:32768/tcp -> 172.17.0.1:81 (aa)",
            // 0.0.0.0's pool hands out 32768, but the proxy cannot bind it
            // next to 127.0.0.1:32768: Docker retries with the next port.
            "0.0.0.0:32769/tcp -> 172.17.0.1:90 (aa)",
            "0.0.0.0:32770/tcp -> 172.17.0.2:90 (bb)",
        ]
    );
    let host = p.node("host").unwrap();
    assert!(host.sysctls.iter().any(|s| s.key == "net.ipv4.ip_local_port_range" && s.value == "32768\t60999"));
}

#[test]
fn ranges_map_port_by_port_and_default_ip_applies() {
    let p = ok("[daemon]\nip = \"198.51.100.1\"\n[[container]]\nname = \"aa\"\npublish = [\"8000-8001:80-81\"]\n");
    assert_eq!(
        mappings(&p),
        ["198.51.100.1:8000/tcp -> 172.17.0.1:80 (aa)", "198.51.100.1:8001/tcp -> 172.17.0.1:81 (aa)"]
    );
    assert!(p.iptables.render().contains(
        "-A DOCKER -d 198.51.100.1/32 ! -i docker0 -p tcp -m tcp --dport 8000 -j DNAT --to-destination 172.17.0.1:80\n"
    ));
}

#[test]
fn port_conflicts_are_dockers_errors() {
    let twice = err("[[container]]\nname = \"aa\"\npublish = [\"8080:80\"]\n[[container]]\nname = \"bb\"\npublish = [\"8080:80\"]\n");
    assert_eq!(
        twice,
        "p.toml:6:12: Cannot start container bb: Bind for 0.0.0.0:8080 failed: port is already allocated"
    );
    // The allocator keeps one pool per address: the clash surfaces in the proxy's bind.
    let proxy = err("[[container]]\nname = \"aa\"\npublish = [\"8080:80\"]\n[[container]]\nname = \"bb\"\npublish = [\"127.0.0.1:8080:80\"]\n");
    assert_eq!(
        proxy,
        "p.toml:6:12: Cannot start container bb: Error starting userland proxy: listen tcp 127.0.0.1:8080: bind: address already in use"
    );
    let foreign = err("[[container]]\nname = \"aa\"\npublish = [\"10.9.9.9:8080:80\"]\n");
    assert!(foreign.ends_with("listen tcp 10.9.9.9:8080: bind: cannot assign requested address"), "{foreign}");
    // Different protocols do not clash.
    ok("[[container]]\nname = \"aa\"\npublish = [\"53:53/udp\", \"53:53/tcp\"]\n");
}

#[test]
fn host_and_none_modes_map_nothing() {
    let p = ok("[[container]]\nname = \"aa\"\nnetwork = \"host\"\npublish = [\"8080:80\"]\n[[container]]\nname = \"bb\"\nnetwork = \"none\"\npublish = [\"9090:90\"]\n");
    assert!(p.port_mappings.is_empty());
    assert!(!p.iptables.render().contains("DNAT"));
}

#[test]
fn iptables_off_installs_nothing_but_links_then_fail_like_docker() {
    let p = ok("[daemon]\niptables = false\n[[container]]\nname = \"aa\"\npublish = [\"8080:80\"]\n");
    assert!(p.iptables.is_empty());
    assert_eq!(p.port_mappings.len(), 1, "the proxy still serves the port");
    let e = err("[daemon]\niptables = false\n[[container]]\nname = \"db\"\nexpose = [\"5432\"]\n[[container]]\nname = \"aa\"\nlinks = [\"db:db\"]\n");
    assert!(e.contains("Cannot start container aa: iptables failed: iptables --wait -t filter -A DOCKER"), "{e}");
    assert!(e.contains("No chain/target/match by that name."), "{e}");
}

#[test]
fn links_open_each_exposed_port_both_ways() {
    let p = ok("[daemon]\nicc = false\n[[container]]\nname = \"db\"\nexpose = [\"5432\", \"53/udp\"]\npublish = [\"6379\"]\n[[container]]\nname = \"aa\"\nlinks = [\"db:db\"]\n");
    let rules = p.iptables.render();
    for port in ["udp -m udp --dport 53", "tcp -m tcp --dport 5432", "tcp -m tcp --dport 6379"] {
        assert!(
            rules.contains(&format!(
                "-A DOCKER -s 172.17.0.2/32 -d 172.17.0.1/32 -i docker0 -o docker0 -p {port} -j ACCEPT\n"
            )),
            "{port}\n{rules}"
        );
    }
    assert!(rules
        .contains("-s 172.17.0.1/32 -d 172.17.0.2/32 -i docker0 -o docker0 -p tcp -m tcp --sport 5432 -j ACCEPT\n"));
    assert!(rules.contains("-A FORWARD -i docker0 -o docker0 -j DROP\n"));
}

#[test]
fn ip_masq_follows_iptables_and_the_bridge_name() {
    let p = ok("[daemon]\nbridge = \"br0\"\n[[host.bridge]]\nname = \"br0\"\naddress = \"192.168.5.1/24\"\n");
    let rules = p.iptables.render();
    assert!(rules.contains("-A POSTROUTING -s 192.168.5.0/24 ! -o br0 -j MASQUERADE\n"), "{rules}");
    assert!(rules.contains("-A FORWARD -o br0 -j DOCKER\n"));
    let none = ok("[daemon]\nbridge = \"none\"\n");
    assert!(none.iptables.is_empty());
}
