//! Reading a built lab back through netlink, from inside each namespace,
//! independently of `verify`, and proving `verify` notices differences.

mod common;

use bridgelab::apply::verify::verify;
use bridgelab::Lab;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_addresses_macs_and_bridge_ports_are_what_docker_would_make() {
    common::require_root();
    let lab = Lab::load(common::scenario_path("bip-fixed-cidr.toml")).unwrap().up().await.unwrap();

    // Container side, read inside the container's namespace.
    let nl = lab.netlink("first").unwrap();
    let links = nl.links().await.unwrap();
    let eth0 = links.iter().map(bridgelab::apply::LinkState::from_message).find(|l| l.name == "eth0").unwrap();
    assert_eq!(eth0.mac, Some([0x02, 0x42, 10, 20, 8, 1]));
    assert_eq!(eth0.mtu, Some(1400));
    assert!(eth0.up);
    let addrs = nl.addresses().await.unwrap();
    assert_eq!(addrs[&eth0.index], vec![("10.20.8.1".parse().unwrap(), 16)]);

    // Host side: the peer is a port of docker0, and docker0 took the ports' MTU.
    let host = lab.netlink("host").unwrap();
    let host_links: Vec<_> =
        host.links().await.unwrap().iter().map(bridgelab::apply::LinkState::from_message).collect();
    let docker0 = host_links.iter().find(|l| l.name == "docker0").unwrap();
    let veth = lab.plan().container("first").unwrap().endpoint().unwrap().host_veth.clone();
    let port = host_links.iter().find(|l| l.name == veth).unwrap();
    assert_eq!(port.master, Some(docker0.index));
    assert_eq!(eth0.peer_index, Some(port.index));
    assert_eq!(docker0.mtu, Some(1400));
    assert_eq!(host.addresses().await.unwrap()[&docker0.index], vec![("10.20.0.1".parse().unwrap(), 16)]);

    // The root namespace has none of this.
    let root = std::fs::read_to_string("/proc/net/dev").unwrap();
    assert!(!root.contains(&veth), "a lab link leaked into the root namespace");
    lab.down().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_reports_every_kind_of_difference() {
    common::require_root();
    let lab = Lab::load(common::scenario_path("default.toml")).unwrap().up().await.unwrap();
    let observed = lab.observe().await.unwrap();
    assert!(verify(lab.plan(), &observed).is_empty());

    let tamper = |f: &dyn Fn(&mut bridgelab::apply::Observed)| {
        let mut o = observed.clone();
        f(&mut o);
        verify(lab.plan(), &o).into_iter().map(|m| m.to_string()).collect::<Vec<_>>()
    };
    let web = |o: &mut bridgelab::apply::Observed| o.nodes.iter_mut().position(|n| n.name == "web").unwrap();
    let got = tamper(&|o| {
        let i = web(o);
        o.nodes[i].links.iter_mut().find(|l| l.name == "eth0").unwrap().mac = Some([2, 0, 0, 0, 0, 9]);
    });
    assert!(got.iter().any(|m| m.starts_with("web: link eth0 has mac")), "{got:?}");
    let got = tamper(&|o| {
        let i = web(o);
        o.nodes[i].routes.clear();
    });
    assert!(got.contains(&"web: route missing: default via 172.17.42.1 dev eth0".to_string()), "{got:?}");
    let got = tamper(&|o| {
        let i = web(o);
        o.nodes[i].addresses.clear();
    });
    assert!(got.iter().any(|m| m.contains("web: link eth0 has addresses none")), "{got:?}");
    let got = tamper(&|o| {
        o.nodes[0].sysctls.insert("net.ipv4.ip_forward".into(), "0".into());
    });
    assert!(got.iter().any(|m| m.starts_with("host: sysctl net.ipv4.ip_forward")), "{got:?}");
    let got = tamper(&|o| o.nodes.retain(|n| n.name != "client"));
    assert!(got.contains(&"client: namespace missing".to_string()), "{got:?}");
    lab.down().unwrap();
}

/// `up` reads the lab back as it settles, and the first read-back after it
/// is that one; every later one reads the kernel again, so a change made
/// meanwhile shows (and the read-back `up` kept is the lab as built).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_first_read_back_after_up_is_the_one_up_took() {
    common::require_root();
    let lab = Lab::load(common::scenario_path("default.toml")).unwrap().up().await.unwrap();
    let host = lab.netns_file("host").unwrap();
    bridgelab::apply::netns::write_sysctl(host, "net.ipv4.ip_forward", "0").unwrap();
    let first = lab.observe().await.unwrap();
    assert_eq!(first.node("host").unwrap().sysctls["net.ipv4.ip_forward"], "1", "read as `up` finished");
    assert!(verify(lab.plan(), &first).is_empty());
    let again: Vec<String> = lab.verify().await.unwrap().iter().map(|m| m.to_string()).collect();
    assert_eq!(again, ["host: sysctl net.ipv4.ip_forward is Some(\"0\"), planned 1"]);
    lab.down().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ip_forward_is_set_in_the_lab_and_never_in_the_root_namespace() {
    common::require_root();
    let root_before = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let on = Lab::load(common::scenario_path("default.toml")).unwrap().up().await.unwrap();
    let off = Lab::load(common::scenario_path("ip-forward-off.toml")).unwrap().up().await.unwrap();
    let read = |lab: &bridgelab::RunningLab| {
        bridgelab::apply::netns::read_sysctl(lab.netns_file("host").unwrap(), "net.ipv4.ip_forward").unwrap()
    };
    assert_eq!(read(&on), "1");
    assert_eq!(read(&off), "0");
    assert_eq!(std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(), root_before);
    on.down().unwrap();
    off.down().unwrap();
}

/// After `up` and after every `[[step]]`, the lab equals that step's plan,
/// routes' `linkdown` flags included: the bridge loses its last port (no
/// carrier), gets ports again, and containers come and go. Repeated, since
/// carrier is reported asynchronously and a race shows only sometimes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_step_leaves_the_lab_equal_to_its_plan() {
    common::require_root();
    let dir = tempfile::tempdir().unwrap();
    let carrier = common::temp_scenario(
        &dir,
        "carrier",
        r#"
name = "carrier"
about = "docker0 loses its only port, gets it back, gets more and loses them"
[[container]]
name = "solo"
[[expect]]
from = "host"
to = "solo"
probe = "icmp"
result = "reachable"
[[step]]
do = "stop"
container = "solo"
[[step]]
do = "start"
container = "solo"
[[step]]
do = "run"
[step.container]
name = "late"
[[step]]
do = "stop"
container = "solo"
[[step]]
do = "remove"
container = "late"
[[step]]
do = "restart"
container = "solo"
"#,
    );
    for round in 0..4 {
        for path in [common::scenario_path("steps.toml"), carrier.clone()] {
            let mut lab = Lab::load(&path).unwrap().up().await.unwrap();
            let m = lab.verify().await.unwrap();
            assert!(m.is_empty(), "round {round}, {}: after up: {m:#?}", path.display());
            for (i, step) in lab.plan().steps.clone().iter().enumerate() {
                lab.apply_step(&step.after).await.unwrap();
                let m = lab.verify().await.unwrap();
                assert!(
                    m.is_empty(),
                    "round {round}, {}: after step {} ({}): {m:#?}",
                    path.display(),
                    i + 1,
                    step.action
                );
            }
            lab.down().unwrap();
        }
    }
}

/// Carrier is waited for whatever else differs: a lab whose host someone
/// changed (a sysctl) still shows the `linkdown` that a step's plan says,
/// and the only difference reported is the one that is really there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_waits_for_carrier_even_when_something_else_differs() {
    common::require_root();
    let dir = tempfile::tempdir().unwrap();
    let path = common::temp_scenario(
        &dir,
        "lose-carrier",
        r#"
name = "lose-carrier"
about = "docker0 loses its only port: its route says linkdown"
[[container]]
name = "solo"
[[expect]]
from = "host"
to = "solo"
probe = "icmp"
result = "reachable"
[[step]]
do = "stop"
container = "solo"
"#,
    );
    for round in 0..3 {
        let mut lab = Lab::load(&path).unwrap().up().await.unwrap();
        bridgelab::apply::netns::write_sysctl(lab.netns_file("host").unwrap(), "net.ipv4.ip_forward", "0").unwrap();
        let step = lab.plan().steps[0].after.clone();
        assert!(step.node("host").unwrap().routes.iter().any(|r| r.linkdown), "the plan says linkdown");
        lab.apply_step(&step).await.unwrap();
        let m: Vec<String> = lab.verify().await.unwrap().iter().map(|m| m.to_string()).collect();
        assert_eq!(m, ["host: sysctl net.ipv4.ip_forward is Some(\"0\"), planned 1"], "round {round}");
        lab.down().unwrap();
    }
}
