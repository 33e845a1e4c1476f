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

/// A mistake, found by validation or by the planner.
fn bad(text: &str) -> String {
    match Scenario::parse("p.toml".into(), text.to_string()) {
        Err(e) => e.to_string(),
        Ok(s) => plan(&s).expect_err("plan should fail").to_string(),
    }
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
    let aa = p.container("aa").unwrap().endpoint().unwrap();
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
    let names: Vec<_> = a.containers.iter().map(|c| c.endpoint().unwrap().host_veth.clone()).collect();
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
    assert_eq!(p.container("aa").unwrap().endpoint().unwrap().mac.to_string(), "02:00:00:00:00:aa");
}

#[test]
fn docker29s_backend_picks_its_firewaller() {
    // newFirewaller: the nftabler with nftables, the iptabler otherwise;
    // the same Docker 29 model (pools, random MACs) either way.
    let fwd = "[host]\nforwarding = true\n";
    let nft = ok(&format!("[daemon]\nfirewall = \"docker29\"\nbackend = \"nftables\"\n{fwd}"));
    assert!(nft.iptables.tables.iter().all(|t| t.chains.is_empty()), "{}", nft.iptables.render());
    assert!(nft.iptables.nft.listing().contains("table ip docker-bridges"), "{}", nft.iptables.nft.listing());
    let ipt = ok(&format!("[daemon]\nfirewall = \"docker29\"\n{fwd}"));
    assert!(ipt.iptables.nft.is_empty());
    assert!(ipt.iptables.render().contains("-A FORWARD -j DOCKER-FORWARD"), "{}", ipt.iptables.render());
    // Only the nftabler makes the daemon refuse to start without forwarding.
    let e = err("[daemon]\nfirewall = \"docker29\"\nbackend = \"nftables\"\n");
    assert!(e.contains("IPv4 forwarding is disabled"), "{e}");
    ok("[daemon]\nfirewall = \"docker29\"\n");
}

#[test]
fn docker28_keys_name_the_release_that_lacks_them() {
    let e = bad("[daemon]\nfirewall = \"docker20\"\nallow_direct_routing = true\n");
    assert!(e.contains("p.toml:3:24: allow_direct_routing: Docker 20.10.24 has no --allow-direct-routing flag"), "{e}");
    let e = bad("[daemon]\nip_forward_no_drop = false\n");
    assert!(e.contains("ip_forward_no_drop: Docker 1.6.2 has no --ip-forward-no-drop flag"), "{e}");
    let e = bad("[daemon]\nfirewall = \"docker20\"\n[[network]]\nname = \"n\"\ngateway_mode = \"routed\"\n");
    assert!(e.contains("gateway_mode: Docker 20.10.24 has no gateway modes"), "{e}");
    for fw in ["docker28", "docker29"] {
        ok(&format!("[daemon]\nfirewall = \"{fw}\"\nallow_direct_routing = true\nip_forward_no_drop = true\n"));
    }
}

#[test]
fn isolated_needs_internal_in_dockers_words() {
    let net = "[daemon]\nfirewall = \"docker28\"\n[[network]]\nname = \"n\"\ngateway_mode = \"isolated\"\n";
    assert!(bad(net).contains("gateway mode 'isolated' can only be used for an internal network"));
    assert!(bad(&format!("{net}internal = true\n")).contains("not implemented yet"));
    let e = bad("[daemon]\nfirewall = \"docker28\"\n[[network]]\nname = \"n\"\ngateway_mode = \"bridged\"\n");
    assert!(e.contains("unknown gateway_mode \"bridged\""), "{e}");
}

#[test]
fn docker28_forward_drop_only_when_the_daemon_turned_forwarding_on() {
    let policy = |extra: &str| {
        let p = ok(&format!("[daemon]\nfirewall = \"docker28\"\n{extra}"));
        p.iptables.render().lines().find(|l| l.starts_with(":FORWARD")).unwrap().to_string()
    };
    assert_eq!(policy(""), ":FORWARD DROP");
    assert_eq!(policy("ip_forward_no_drop = true\n"), ":FORWARD ACCEPT");
    assert_eq!(policy("[host]\nforwarding = true\n"), ":FORWARD ACCEPT");
    // No network, nothing written: `bridge = "none"` and no [[network]].
    let p = ok("[daemon]\nfirewall = \"docker28\"\nbridge = \"none\"\n");
    assert!(p.iptables.render().contains(":FORWARD ACCEPT"));
    let host = p.nodes.iter().find(|n| n.name == "host").unwrap();
    assert!(host.sysctls.iter().any(|s| s.key == "net.ipv4.ip_forward" && s.value == "0" && !s.write));
}

#[test]
fn docker28_direct_routing_and_macs() {
    let text = |extra: &str| {
        format!(
            "[daemon]\nfirewall = \"docker28\"\n{extra}[[container]]\nname = \"aa\"\n[[container]]\nname = \"bb\"\n"
        )
    };
    let p = ok(&text(""));
    let r = p.iptables.render();
    assert!(r.contains("-A PREROUTING -d 172.17.0.2/32 ! -i docker0 -j DROP\n"), "{r}");
    assert!(r.contains("# ip6tables-save\n"), "{r}");
    assert!(!ok(&text("allow_direct_routing = true\n")).iptables.render().contains("*raw"));
    // Random MACs (GenerateRandomMAC): unicast, locally administered, not 02:42:IP.
    let (a, b) =
        (p.container("aa").unwrap().endpoint().unwrap().mac, p.container("bb").unwrap().endpoint().unwrap().mac);
    assert_ne!(a, b);
    for m in [a, b] {
        assert_eq!(m.0[0] & 0x03, 0x02, "{m}");
        assert_ne!(m.to_string(), "02:42:ac:11:00:02");
    }
    // Stable per scenario.
    assert_eq!(ok(&text("")).container("aa").unwrap().endpoint().unwrap().mac, a);
    // docker20 keeps its output: no raw, no IPv6.
    let r20 = ok("[daemon]\nfirewall = \"docker20\"\n[[container]]\nname = \"aa\"\n").iptables.render();
    assert!(!r20.contains("*raw") && !r20.contains("ip6tables"), "{r20}");
}

#[test]
fn json_has_the_same_facts() {
    let p = ok(TWO);
    let v: serde_json::Value = serde_json::to_value(&p).unwrap();
    assert_eq!(v["bridge"]["address"], "172.17.42.1/16");
    assert_eq!(v["containers"][1]["endpoint"]["address"], "172.17.0.2/16");
    assert_eq!(v["containers"][1]["endpoints"][0]["address"], "172.17.0.2/16");
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

/// A scenario that does not even load: its validation errors.
fn invalid(text: &str) -> String {
    Scenario::parse("p.toml".into(), text.to_string()).expect_err("validation should fail").to_string()
}

fn step_after(p: &Plan, i: usize) -> &Plan {
    &p.steps[i].after
}

/// A /30 `--fixed-cidr` holds two addresses: aa takes .5, bb .6.
const TWO_ADDRESSES: &str = "[daemon]\nbip = \"10.0.0.1/24\"\nfixed_cidr = \"10.0.0.4/30\"\n";

#[test]
fn a_failed_start_gives_its_address_back_so_exhaustion_comes_when_docker_says() {
    // bb fails on its port, so cc gets the address bb had taken: Docker
    // reports bb alone, not an exhausted pool for cc as well.
    let text = format!(
        "{TWO_ADDRESSES}[[container]]\nname = \"aa\"\npublish = [\"8080:80\"]\n[[container]]\nname = \"bb\"\npublish = [\"8080:80\"]\n[[container]]\nname = \"cc\"\n"
    );
    assert_eq!(
        err(&text),
        "p.toml:9:12: Cannot start container bb: Bind for 0.0.0.0:8080 failed: port is already allocated"
    );
    // The same with the failure expected: cc really has bb's address.
    let text = format!(
        "{TWO_ADDRESSES}[[container]]\nname = \"aa\"\npublish = [\"8080:80\"]\n\
         [[step]]\ndo = \"run\"\nfails = \"Cannot start container bb: Bind for 0.0.0.0:8080 failed: port is already allocated\"\n\
         [step.container]\nname = \"bb\"\npublish = [\"8080:80\"]\n\
         [[step]]\ndo = \"run\"\n[step.container]\nname = \"cc\"\n"
    );
    let p = ok(&text);
    let after = step_after(&p, 0);
    let bb = after.container("bb").unwrap();
    assert!(!bb.running && bb.netns.is_none() && bb.endpoint().is_none());
    assert!(after.node("bb").is_none(), "no namespace is left for bb");
    let host = after.node("host").unwrap();
    assert_eq!(host.links.iter().filter(|l| l.master.as_deref() == Some("docker0")).count(), 1, "only aa's veth");
    assert!(p.steps[0].action.contains("(fails: Cannot start container bb"), "{}", p.steps[0].action);
    assert_eq!(ips(step_after(&p, 1)), ["10.0.0.5", "-", "10.0.0.6"]);
}

#[test]
fn a_failed_start_unmaps_the_ports_it_had_mapped() {
    // bb maps 9090 (port 70 comes first), then fails on 8080: 9090 and its
    // rules go, so cc can take 9090.
    let text = "[[container]]\nname = \"aa\"\npublish = [\"8080:80\"]\n\
        [[step]]\ndo = \"run\"\nfails = \"Cannot start container bb: Bind for 0.0.0.0:8080 failed: port is already allocated\"\n\
        [step.container]\nname = \"bb\"\npublish = [\"9090:70\", \"8080:80\"]\n\
        [[step]]\ndo = \"run\"\n[step.container]\nname = \"cc\"\npublish = [\"9090:90\"]\n";
    let p = ok(text);
    let after = step_after(&p, 0);
    assert_eq!(mappings(after), ["0.0.0.0:8080/tcp -> 172.17.0.1:80 (aa)"]);
    assert_eq!(after.iptables.render(), p.iptables.render(), "bb's rules are gone again");
    assert_eq!(mappings(step_after(&p, 1))[1], "0.0.0.0:9090/tcp -> 172.17.0.3:90 (cc)");
}

#[test]
fn one_error_per_container_at_its_first_failing_port() {
    let text = "[[container]]\nname = \"aa\"\npublish = [\"8080:80\", \"8081:81\"]\n[[container]]\nname = \"bb\"\npublish = [\"8080:80\", \"8081:81\"]\n";
    assert_eq!(
        err(text),
        "p.toml:6:12: Cannot start container bb: Bind for 0.0.0.0:8080 failed: port is already allocated"
    );
}

#[test]
fn containers_after_a_failed_start_meet_dockers_errors() {
    // bb fails (its link target is stopped) and counts as not running: cc
    // cannot join it, dd cannot link to it, and ee gets the address bb had.
    let text = "[[container]]\nname = \"db\"\nrunning = false\n\
        [[container]]\nname = \"bb\"\nlinks = [\"db:d\"]\npublish = [\"8080:80\"]\n\
        [[container]]\nname = \"cc\"\nnetwork = \"container:bb\"\n\
        [[container]]\nname = \"dd\"\nlinks = [\"bb:x\"]\npublish = [\"8080:80\"]\n";
    assert_eq!(
        err(text),
        "p.toml:6:10: Cannot start container bb: Cannot link to a non running container: /db AS /bb/d\n\
         p.toml:10:11: Cannot start container cc: cannot join network of a non running container: bb\n\
         p.toml:13:10: Cannot start container dd: Cannot link to a non running container: /bb AS /dd/x"
    );
    // bb's address and port 8080 were given back: dd took both before its link failed.
    let text = "[[container]]\nname = \"db\"\nrunning = false\n\
        [[step]]\ndo = \"run\"\nfails = \"Cannot start container bb: Cannot link to a non running container: /db AS /bb/d\"\n\
        [step.container]\nname = \"bb\"\nlinks = [\"db:d\"]\npublish = [\"8080:80\"]\n\
        [[step]]\ndo = \"run\"\n[step.container]\nname = \"ee\"\npublish = [\"8080:80\"]\n";
    let p = ok(text);
    assert!(step_after(&p, 0).port_mappings.is_empty());
    assert_eq!(mappings(step_after(&p, 1)), ["0.0.0.0:8080/tcp -> 172.17.0.2:80 (ee)"]);
}

#[test]
fn a_step_that_fails_must_say_so_and_say_it_as_docker_does() {
    let run = |fails: &str| {
        format!(
            "[[container]]\nname = \"aa\"\npublish = [\"8080:80\"]\n[[step]]\ndo = \"run\"\n{fails}[step.container]\nname = \"bb\"\npublish = [\"8080:80\"]\n"
        )
    };
    assert_eq!(
        err(&run("")),
        "p.toml:8:12: Cannot start container bb: Bind for 0.0.0.0:8080 failed: port is already allocated"
    );
    let e = err(&run("fails = \"Cannot start container bb: no\"\n"));
    assert!(e.starts_with("p.toml:6:9: Docker fails this step with \"Cannot start container bb: Bind for"), "{e}");
    let e = err("[[container]]\nname = \"aa\"\n[[step]]\ndo = \"stop\"\ncontainer = \"aa\"\nfails = \"x\"\n");
    assert_eq!(e, "p.toml:6:9: Docker does not fail this step, as `fails` says it does");
    // docker restart words it its own way.
    let text = "[[container]]\nname = \"db\"\n[[container]]\nname = \"aa\"\nlinks = [\"db:d\"]\n\
        [[step]]\ndo = \"stop\"\ncontainer = \"db\"\n\
        [[step]]\ndo = \"restart\"\ncontainer = \"aa\"\nfails = \"Cannot restart container aa: Cannot link to a non running container: /db AS /aa/d\"\n";
    let p = ok(text);
    assert!(!step_after(&p, 1).container("aa").unwrap().running);
}

#[test]
fn of_two_links_with_one_alias_only_the_first_counts() {
    // RegisterLink keeps /aa/db once it exists: c1 (stopped) is neither
    // checked nor linked, and only c3's port is opened.
    let text = "[daemon]\nicc = false\n\
        [[container]]\nname = \"c1\"\nexpose = [\"1111\"]\nrunning = false\n\
        [[container]]\nname = \"c3\"\nexpose = [\"3333\"]\n\
        [[container]]\nname = \"aa\"\nlinks = [\"c3:db\", \"c1:db\"]\n";
    let rules = ok(text).iptables.render();
    assert!(
        rules.contains(
            "-A DOCKER -s 172.17.0.2/32 -d 172.17.0.1/32 -i docker0 -o docker0 -p tcp -m tcp --dport 3333 -j ACCEPT\n"
        ),
        "{rules}"
    );
    assert!(!rules.contains("1111"), "{rules}");
    assert_eq!(rules.matches("-i docker0 -o docker0 -p tcp").count(), 2, "{rules}");
}

#[test]
fn a_link_to_a_sidecar_is_a_link_to_its_namespace_owner() {
    // RegisterLinks follows --net=container: to the container that owns the namespace.
    let text = "[daemon]\nicc = false\n[[container]]\nname = \"db\"\nexpose = [\"5432\"]\n\
        [[container]]\nname = \"side\"\nnetwork = \"container:db\"\n\
        [[container]]\nname = \"aa\"\nlinks = [\"side:d\"]\n";
    let rules = ok(text).iptables.render();
    assert!(
        rules
            .contains("-s 172.17.0.2/32 -d 172.17.0.1/32 -i docker0 -o docker0 -p tcp -m tcp --dport 5432 -j ACCEPT\n"),
        "{rules}"
    );
    let host = "[[container]]\nname = \"hn\"\nnetwork = \"host\"\n[[container]]\nname = \"aa\"\nlinks = [\"hn:h\"]\n";
    assert_eq!(
        err(host),
        "p.toml:6:10: Conflicting options: --net=host can't be used with links. This would result in undefined behavior."
    );
}

#[test]
fn links_without_addresses_fail_in_dockers_link_job() {
    let none = "[[container]]\nname = \"db\"\n[[container]]\nname = \"aa\"\nnetwork = \"none\"\nlinks = [\"db:d\"]\n";
    assert_eq!(err(none), "p.toml:6:10: Cannot start container aa: Parent IP '' is invalid");
    let child = "[[container]]\nname = \"db\"\nnetwork = \"none\"\n[[container]]\nname = \"aa\"\nlinks = [\"db:d\"]\n";
    assert_eq!(err(child), "p.toml:6:10: Cannot start container aa: Child IP '' is invalid");
    // -b none: InitDriver never ran, so there is no `link` job at all.
    let disabled = format!("[daemon]\nbridge = \"none\"\n{}", &child[..child.find("network").unwrap()]);
    let disabled = format!("{disabled}[[container]]\nname = \"aa\"\nlinks = [\"db:d\"]\n");
    assert_eq!(err(&disabled), "p.toml:7:10: Cannot start container aa: link: command not found");
}

#[rstest]
#[case::dashes("02-42-0a-00-00-d2", "02:42:0a:00:00:d2")]
#[case::dots("0242.0a00.00d2", "02:42:0a:00:00:d2")]
#[case::upper_case("02:42:0A:00:00:D2", "02:42:0a:00:00:d2")]
#[case::eui64("02:42:0a:00:00:d2:ff:01", "02:42:0a:00:00:d2")]
#[case::eui64_dots("0242.0a00.00d2.ff01", "02:42:0a:00:00:d2")]
#[case::infiniband("02-42-0a-00-00-d2-00-00-fe-80-00-00-00-00-00-00-02-00-5e-10", "02:42:0a:00:00:d2")]
fn a_mac_in_any_form_go_reads_is_taken_and_normalised(#[case] given: &str, #[case] on_eth0: &str) {
    let p = ok(&format!("[[container]]\nname = \"aa\"\nmac = \"{given}\"\n"));
    assert_eq!(p.container("aa").unwrap().endpoint().unwrap().mac.to_string(), on_eth0);
    assert_eq!(p.node("aa").unwrap().link("eth0").unwrap().mac.unwrap().to_string(), on_eth0);
}

#[test]
fn macs_docker_refuses_or_ignores() {
    let e = invalid("[[container]]\nname = \"aa\"\nmac = \"02:42-0a:00:00:d2\"\n");
    assert_eq!(e, "p.toml:3:7: 02:42-0a:00:00:d2 is not a valid mac address");
    // Allowed by `docker run`, refused by libcontainer in the new namespace: a failed start.
    let e = err("[[container]]\nname = \"aa\"\nmac = \"01-00-5E-00-00-01\"\npublish = [\"80\"]\n");
    assert_eq!(
        e,
        "p.toml:3:7: Cannot start container aa: [8] System error: Multicast MAC Address is not supported: 01:00:5e:00:00:01"
    );
    // `docker run` trims spaces before it checks; Allocate does not, and
    // falls back to the generated MAC.
    let p = ok("[[container]]\nname = \"aa\"\nmac = \" 02:42:0a:00:00:d2\"\n");
    assert_eq!(p.container("aa").unwrap().endpoint().unwrap().mac.to_string(), "02:42:ac:11:00:01");
}

/// web owns a namespace that side shares.
const SHARED: &str = "[[container]]\nname = \"web\"\npublish = [\"8080:80\"]\n[[container]]\nname = \"side\"\nnetwork = \"container:web\"\n";

#[test]
fn stopping_a_shared_namespace_leaves_it_to_whoever_shares_it() {
    let text = format!(
        "{SHARED}[[step]]\ndo = \"stop\"\ncontainer = \"web\"\n[[step]]\ndo = \"start\"\ncontainer = \"web\"\n\
         [[step]]\ndo = \"stop\"\ncontainer = \"side\"\n"
    );
    let p = ok(&text);
    let veth = p.container("web").unwrap().endpoint().unwrap().host_veth.clone();
    // Stopped: web's address and port are released, but side still runs in
    // the namespace, whose eth0 keeps the address on the bridge.
    let stopped = step_after(&p, 0);
    assert!(!stopped.container("web").unwrap().running);
    assert_eq!(stopped.container("side").unwrap().netns.as_deref(), Some("web"));
    assert!(stopped.port_mappings.is_empty() && !stopped.iptables.render().contains("DNAT"));
    let json = |n: &NodePlan| serde_json::to_string(n).unwrap();
    assert_eq!(json(stopped.node("web").unwrap()), json(p.node("web").unwrap()), "the namespace is untouched");
    assert!(stopped.node("host").unwrap().link(&veth).is_some());
    assert_eq!(stopped.netns_address("web").unwrap().to_string(), "172.17.0.1");
    // Started again: a new namespace and the next address; side stays behind.
    let started = step_after(&p, 1);
    let web = started.container("web").unwrap();
    assert_eq!(web.netns.as_deref(), Some("web+2"));
    assert_eq!(web.ip().unwrap().to_string(), "172.17.0.2");
    assert_eq!(started.netns_address("web").unwrap().to_string(), "172.17.0.1");
    assert_eq!(mappings(started), ["0.0.0.0:8080/tcp -> 172.17.0.2:80 (web)"]);
    // side's stop ends the old namespace: its veth goes with it.
    let last = step_after(&p, 2);
    assert!(last.node("web").is_none() && last.node("web+2").is_some());
    assert!(last.node("host").unwrap().link(&veth).is_none());
}

#[test]
fn a_released_address_is_free_while_a_sidecar_still_holds_it() {
    // Docker's allocator forgot 172.17.0.1 when web stopped.
    let text = format!(
        "{SHARED}[[step]]\ndo = \"stop\"\ncontainer = \"web\"\n[[step]]\ndo = \"run\"\n[step.container]\nname = \"late\"\nip = \"172.17.0.1\"\n"
    );
    let p = ok(&text);
    assert_eq!(step_after(&p, 1).container("late").unwrap().ip().unwrap().to_string(), "172.17.0.1");
    assert_eq!(step_after(&p, 1).netns_address("web").unwrap().to_string(), "172.17.0.1");
}

#[rstest]
#[case::docker0("docker0")]
#[case::none("none")]
fn b_and_bip_are_refused_for_every_bridge_name(#[case] bridge: &str) {
    let e = invalid(&format!("[daemon]\nbridge = \"{bridge}\"\nbip = \"10.1.0.1/24\"\n"));
    assert_eq!(e, "p.toml:3:7: You specified -b & --bip, mutually exclusive options. Please specify only one.");
}

#[test]
fn messages_of_later_dockers_are_not_docker1s() {
    // Docker 1.6.2 ignores -p and --mac-address without a network of its own.
    let p = ok("[[container]]\nname = \"web\"\n[[container]]\nname = \"side\"\nnetwork = \"container:web\"\npublish = [\"8080:80\"]\nmac = \"02:00:00:00:00:01\"\n[[container]]\nname = \"hn\"\nnetwork = \"host\"\nmac = \"02:00:00:00:00:02\"\n");
    assert!(p.port_mappings.is_empty());
    assert_eq!(ips(&p), ["172.17.0.1", "-", "-"]);
    // No "cannot join own network", no "Cannot link to itself", no "No such
    // container" before the start: the start fails as 1.6.2's did.
    assert_eq!(
        err("[[container]]\nname = \"aa\"\nnetwork = \"container:aa\"\n"),
        "p.toml:3:11: Cannot start container aa: cannot join network of a non running container: aa"
    );
    assert_eq!(
        err("[[container]]\nname = \"aa\"\nlinks = [\"aa:me\"]\n"),
        "p.toml:3:10: Cannot start container aa: Cannot link to a non running container: /aa AS /aa/me"
    );
    assert_eq!(
        err("[[container]]\nname = \"aa\"\nnetwork = \"container:later\"\n[[container]]\nname = \"later\"\n"),
        "p.toml:3:11: Cannot start container aa: no such id: later"
    );
    // Later layouts keep them.
    let later = "[daemon]\nfirewall = \"docker20\"\n";
    let e = invalid(&format!("{later}[[container]]\nname = \"web\"\n[[container]]\nname = \"side\"\nnetwork = \"container:web\"\npublish = [\"8080:80\"]\nmac = \"02:00:00:00:00:01\"\n"));
    assert!(e.contains("Conflicting options: --mac-address and the network mode"), "{e}");
    assert!(e.contains("Conflicting options: -p, -P, --publish-all, --publish and the network mode"), "{e}");
    let e = invalid(&format!("{later}[[container]]\nname = \"aa\"\nnetwork = \"container:aa\"\nlinks = []\n"));
    assert!(e.contains("cannot join own network namespace"), "{e}");
}

#[test]
fn a_container_whose_start_failed_can_be_started_later() {
    // bb counts as created and stopped: once aa lets 8080 go, `docker start bb` works.
    let text = "[[container]]\nname = \"aa\"\npublish = [\"8080:80\"]\n\
        [[step]]\ndo = \"run\"\nfails = \"Cannot start container bb: Bind for 0.0.0.0:8080 failed: port is already allocated\"\n\
        [step.container]\nname = \"bb\"\npublish = [\"8080:80\"]\n\
        [[step]]\ndo = \"stop\"\ncontainer = \"aa\"\n\
        [[step]]\ndo = \"start\"\ncontainer = \"bb\"\n";
    let p = ok(text);
    let last = step_after(&p, 2);
    assert!(last.container("bb").unwrap().running);
    assert_eq!(mappings(last), ["0.0.0.0:8080/tcp -> 172.17.0.3:80 (bb)"]);
}

#[test]
fn a_daemon_restart_ends_shared_namespaces_too() {
    let p = ok(&format!("{SHARED}[[step]]\ndo = \"restart-daemon\"\n"));
    let after = step_after(&p, 0);
    assert!(after.containers.iter().all(|c| !c.running && c.netns.is_none()));
    let names: Vec<&str> = after.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["host", "external"]);
    assert!(!after.node("host").unwrap().links.iter().any(|l| l.master.is_some()));
}

#[test]
fn a_dynamic_port_is_tried_ten_times_whatever_fails() {
    // After a firewall reload each attempt's iptables call fails: AllocatePort
    // retries with the next port, so Docker's error names the tenth.
    let text = "[[step]]\ndo = \"flush-iptables\"\n[[step]]\ndo = \"run\"\n[step.container]\nname = \"aa\"\npublish = [\"80\"]\n";
    let e = err(text);
    assert!(e.contains("--dport 32777 ! -i docker0 -j DNAT --to-destination 172.17.0.1:80"), "{e}");
}

#[test]
fn a_links_walk_along_container_modes_sees_containers_made_and_removed_since() {
    // x1's namespace owner does not exist yet: a link to x1 ends at a
    // missing name. Once `later` exists, the same walk ends there.
    let made = "[[container]]\nname = \"x1\"\nnetwork = \"container:later\"\nrunning = false\n\
        [[step]]\ndo = \"run\"\nfails = \"Could not get container for later\"\n\
        [step.container]\nname = \"l1\"\nlinks = [\"x1:d\"]\n\
        [[step]]\ndo = \"run\"\n[step.container]\nname = \"later\"\nexpose = [\"6000\"]\n\
        [[step]]\ndo = \"start\"\ncontainer = \"x1\"\n\
        [[step]]\ndo = \"run\"\n[step.container]\nname = \"l2\"\nlinks = [\"x1:d\"]\n";
    let p = ok(made);
    let last = step_after(&p, 3);
    assert!(last.container("l2").unwrap().running);
    assert!(last.iptables.render().contains("--dport 6000 -j ACCEPT"), "{}", last.iptables.render());
    // x1 -> mid -> base; once mid is removed and made again with a network
    // of its own, a link to x1 ends at the new mid.
    let removed = "[[container]]\nname = \"base\"\n\
        [[container]]\nname = \"mid\"\nnetwork = \"container:base\"\n\
        [[container]]\nname = \"x1\"\nnetwork = \"container:mid\"\n\
        [[container]]\nname = \"l1\"\nlinks = [\"x1:d\"]\n\
        [[step]]\ndo = \"remove\"\ncontainer = \"mid\"\n\
        [[step]]\ndo = \"run\"\n[step.container]\nname = \"mid\"\nexpose = [\"6000\"]\n\
        [[step]]\ndo = \"run\"\n[step.container]\nname = \"l2\"\nlinks = [\"x1:d\"]\n";
    let p = ok(removed);
    assert!(!p.iptables.render().contains("6000"));
    let rules = step_after(&p, 2).iptables.render();
    assert!(rules.contains("-d 172.17.0.3/32 -i docker0 -o docker0 -p tcp -m tcp --dport 6000 -j ACCEPT"), "{rules}");
    // A cycle of `container:` modes (Docker would loop) ends where it closes.
    let cycle = "[[container]]\nname = \"aa\"\nnetwork = \"container:bb\"\nrunning = false\n\
        [[container]]\nname = \"bb\"\nnetwork = \"container:aa\"\nrunning = false\n\
        [[container]]\nname = \"cc\"\nlinks = [\"aa:x\", \"bb:y\"]\n";
    assert_eq!(
        err(cycle),
        "p.toml:11:10: Cannot start container cc: Cannot link to a non running container: /aa AS /cc/x"
    );
}

/// Docker 29 with `--firewall-backend=nftables`, as moby's doc test runs it.
const NFT29: &str = "[daemon]\nfirewall = \"docker29\"\nbackend = \"nftables\"\n[host]\nforwarding = true\n";

fn nft_doc(name: &str) -> String {
    let path = format!("{}/tests/fixtures/docker29-nftables/{name}.nft", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn nft_ip(p: &Plan) -> String {
    assert!(p.iptables.tables.is_empty(), "no iptables rules with the nftables backend");
    p.iptables.nft.table(crate::plan::firewall::nftables::Family::Ip, "docker-bridges").unwrap().listing()
}

const BRIDGE1: &str =
    "[[network]]\nname = \"bridge1\"\nbridge = \"bridge1\"\nsubnet = \"192.0.2.0/24\"\ngateway = \"192.0.2.1\"\n";

#[rstest::rstest]
#[case::new_daemon("new-daemon", "", "")]
#[case::usernet_portmap("usernet-portmap", BRIDGE1, "publish = [\"8080:80\"]\n")]
#[case::usernet_portmap_lo("usernet-portmap-lo", BRIDGE1, "publish = [\"127.0.0.1:8080:80\"]\n")]
#[case::usernet_portmap_noicc("usernet-portmap-noicc", &format!("{BRIDGE1}icc = false\n"), "publish = [\"8080:80\"]\n")]
fn docker29_nftables_plans_moby_s_docs(#[case] doc: &str, #[case] network: &str, #[case] container: &str) {
    let ctr = if network.is_empty() {
        String::new()
    } else {
        format!("[[container]]\nname = \"c1\"\nnetwork = \"bridge1\"\n{container}")
    };
    let p = ok(&format!("{NFT29}{network}{ctr}"));
    assert_eq!(nft_ip(&p), nft_doc(doc));
}

#[test]
fn docker29_nftables_without_the_proxy_plans_moby_s_doc() {
    let text = NFT29.replace("[host]", "userland_proxy = false\n[host]");
    let p =
        ok(&format!("{text}{BRIDGE1}[[container]]\nname = \"c1\"\nnetwork = \"bridge1\"\npublish = [\"8080:80\"]\n"));
    assert_eq!(nft_ip(&p), nft_doc("usernet-portmap-noproxy"));
}

#[test]
fn docker29_nftables_internal_networks_plan_moby_s_doc() {
    let nets = "[[network]]\nname = \"bridgeICC\"\nbridge = \"bridgeICC\"\ninternal = true\nsubnet = \"192.0.2.0/24\"\n\
                [[network]]\nname = \"bridgeNoICC\"\nbridge = \"bridgeNoICC\"\ninternal = true\nicc = false\nsubnet = \"198.51.100.0/24\"\n\
                [[container]]\nname = \"c1\"\nnetwork = \"bridgeICC\"\n[[container]]\nname = \"c2\"\nnetwork = \"bridgeNoICC\"\n";
    let p = ok(&format!("{NFT29}{nets}"));
    assert_eq!(nft_ip(&p), nft_doc("usernet-internal"));
}

#[test]
fn docker29_nftables_rules_go_with_the_container() {
    let text = format!(
        "{NFT29}{BRIDGE1}[[container]]\nname = \"c1\"\nnetwork = \"bridge1\"\npublish = [\"127.0.0.1:8080:80\"]\n\
                        [[step]]\ndo = \"stop\"\ncontainer = \"c1\"\n"
    );
    let p = ok(&text);
    let after = nft_ip(step_after(&p, 0));
    assert!(!after.contains("192.0.2.2"), "{after}");
    assert!(after.contains("chain filter-forward-in__bridge1"), "{after}");
}

#[test]
fn docker29_nftables_refuses_a_network_while_forwarding_is_off() {
    // checkIPv4Forwarding: dockerd does not turn ip_forward on with nftables.
    let e = err("[daemon]\nfirewall = \"docker29\"\nbackend = \"nftables\"\n");
    assert!(
        e.ends_with(":3:11: error creating default \"bridge\" network: IPv4 forwarding is disabled: check your host's firewalling and set sysctl net.ipv4.ip_forward=1, or disable this check using daemon option --ip-forward=false"),
        "{e}"
    );
    let e = err("[daemon]\nfirewall = \"docker29\"\nbackend = \"nftables\"\n[host]\nforwarding = false\n");
    assert!(e.contains(":5:14: error creating default \"bridge\" network: IPv4 forwarding is disabled"), "{e}");
    // --ip-forward=false skips the check: the daemon starts, nothing forwards.
    let p = ok("[daemon]\nfirewall = \"docker29\"\nbackend = \"nftables\"\nip_forward = false\n");
    let s = &p.node("host").unwrap().sysctls[0];
    assert_eq!((s.key.as_str(), s.value.as_str()), ("net.ipv4.ip_forward", "0"));
    assert!(nft_ip(&p).contains("chain filter-forward-in__docker0"));
}

#[test]
fn nftables_needs_docker29_and_says_so() {
    for (fw, release) in [("docker20", "Docker 20.10.24"), ("docker1", "Docker 1.6.2")] {
        let text = format!("[daemon]\nfirewall = \"{fw}\"\nbackend = \"nftables\"\n");
        let e = Scenario::parse("p.toml".into(), text).expect_err("refused").to_string();
        assert!(
            e.contains(&format!(":3:11: backend = \"nftables\" needs firewall = \"docker29\": {release} (firewall = \"{fw}\") has no --firewall-backend")),
            "{e}"
        );
    }
}

#[test]
fn docker29_nftables_restart_keeps_the_networks_rules() {
    let text = format!(
        "{NFT29}{BRIDGE1}[[container]]\nname = \"c1\"\nnetwork = \"bridge1\"\npublish = [\"8080:80\"]\n\
                        [[step]]\ndo = \"restart-daemon\"\n[[step]]\ndo = \"start\"\ncontainer = \"c1\"\n"
    );
    let p = ok(&text);
    let restarted = nft_ip(step_after(&p, 0));
    assert!(restarted.contains("chain filter-forward-in__bridge1"), "{restarted}");
    assert!(!restarted.contains("192.0.2.2"), "{restarted}");
    // The same rules once c1 runs again, but the stored network's chains
    // now come first: the table is made anew, bridge1 is restored from the
    // store, then the default bridge is made again.
    let again = nft_ip(step_after(&p, 1));
    let first = nft_ip(&p);
    let (mut a, mut b): (Vec<&str>, Vec<&str>) = (again.lines().collect(), first.lines().collect());
    assert_ne!(a, b);
    assert!(again.find("chain filter-forward-in__bridge1") < again.find("chain filter-forward-in__docker0"));
    a.sort_unstable();
    b.sort_unstable();
    assert_eq!(a, b);
}

#[test]
fn a_routed_networks_ports_are_listed_without_a_host_port_and_proxied_on_ipv6() {
    // tests/fixtures/docker28 m7 (routed): `docker inspect` lists the IPv4
    // binding with an empty host port and `[::]:8080`, the proxy's.
    let net = "[daemon]\nfirewall = \"docker28\"\n[[network]]\nname = \"r\"\nsubnet = \"10.90.0.0/24\"\ngateway_mode = \"routed\"\n";
    let ctr = |n: &str, p: &str| format!("[[container]]\nname = \"{n}\"\nnetwork = \"r\"\npublish = [\"{p}\"]\n");
    let stop = "[[step]]\ndo = \"stop\"\ncontainer = \"aa\"\n";
    let p = ok(&format!("{net}{}{}{stop}", ctr("aa", "8080:80"), ctr("bb", "127.0.0.1:8081:80")));
    let show = |v: &[crate::plan::firewall::PortMapping]| v.iter().map(|m| m.to_string()).collect::<Vec<_>>();
    assert_eq!(show(&p.port_mappings), [":::8080/tcp -> 10.90.0.2:80 (aa)"]);
    // A host address asked for is ignored: NAT is off (configurePortBindingIPv4).
    assert_eq!(show(&p.bindings), ["0.0.0.0:0/tcp -> 10.90.0.2:80 (aa)", "0.0.0.0:0/tcp -> 10.90.0.3:80 (bb)"]);
    // aa's stop gives back its two bindings; bb's, on the same host port 0, stays.
    let after = &p.steps[0].after;
    assert!(after.port_mappings.is_empty(), "{:?}", show(&after.port_mappings));
    assert_eq!(show(&after.bindings), ["0.0.0.0:0/tcp -> 10.90.0.3:80 (bb)"]);
}

#[test]
fn docker28_maps_a_containers_bindings_in_cmp_port_binding_order() {
    // dockerd 28.5.2 (tests/diff.rs SCENARIO28): `-p 8080:80 -p
    // 127.0.0.1:8081:80` DNATs 8080 first, the default host address sorting
    // before 127.0.0.1 (sortAndNormPBs); then a dynamic port, after every
    // exact one though its container port is lower.
    let p = ok("[daemon]\nfirewall = \"docker28\"\n[[container]]\nname = \"web\"\npublish = [\"127.0.0.1:8081:80\", \"8080:80\", \"79\", \"9000:90\"]\n");
    let nat = p.iptables.render();
    let dnat: Vec<&str> = nat.lines().filter(|l| l.contains("-j DNAT")).collect();
    let at = |s: &str| dnat.iter().position(|l| l.contains(s)).unwrap_or_else(|| panic!("{s}: {dnat:?}"));
    assert!(at("--dport 8080 ") < at("--dport 8081 "), "{dnat:?}");
    assert!(at("--dport 8081 ") < at("--dport 9000 "), "{dnat:?}");
    assert!(at("--dport 9000 ") < at(":79"), "{dnat:?}");
}
