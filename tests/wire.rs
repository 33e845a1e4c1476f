//! Docker 1.x's firewall on the wire: DNAT keeps the client's address, the
//! userland proxy answers where DNAT does not apply, MASQUERADE hides
//! containers, and br_netfilter makes icc = false and links bite.
//! (Plain sockets here; crafted probes and verdicts come with `[[expect]]`.)

mod common;

use std::net::SocketAddr;

use bridgelab::Lab;
use common::*;

async fn up(name: &str) -> bridgelab::RunningLab {
    require_root();
    Lab::load(scenario_path(name)).unwrap().up().await.unwrap()
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_ports_dnat_from_outside_and_proxy_from_inside() {
    let lab = up("publish.toml").await;
    let seen = tcp_responder(&lab, "web", 80);
    let seen90 = tcp_responder(&lab, "web", 90);
    udp_responder(&lab, "web", 53);

    // From outside through the uplink: DNAT, the client's address is kept.
    tcp_echo(&lab, "external", addr("198.51.100.1:8080")).unwrap();
    assert_eq!(seen.recv().unwrap().ip().to_string(), "198.51.100.2");
    udp_echo(&lab, "external", addr("198.51.100.1:5353")).unwrap();

    // From another container to the gateway address: the DNAT rule skips
    // traffic from docker0, so the userland proxy answers, from the bridge address.
    tcp_echo(&lab, "api", addr("172.17.42.1:8080")).unwrap();
    assert_eq!(seen.recv().unwrap().ip().to_string(), "172.17.42.1");

    // From the host itself: OUTPUT's jump skips 127.0.0.0/8, so 127.0.0.1
    // is served by the proxy only.
    tcp_echo(&lab, "host", addr("127.0.0.1:9090")).unwrap();
    assert_eq!(seen90.recv().unwrap().ip().to_string(), "172.17.42.1");
    // And a port bound to 127.0.0.1 is not reachable from outside: the
    // DNAT rule wants destination 127.0.0.1, so the host itself refuses.
    let e = tcp_echo(&lab, "external", addr("198.51.100.1:9090")).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{e}");
    lab.down().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_iptables_only_the_proxy_answers() {
    let lab = up("iptables-off.toml").await;
    let seen = tcp_responder(&lab, "web", 80);
    tcp_echo(&lab, "external", addr("198.51.100.1:8080")).unwrap();
    // No DNAT: the proxy connected from the host.
    assert_eq!(seen.recv().unwrap().ip().to_string(), "172.17.42.1");
    lab.down().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_leave_masqueraded_unless_ip_masq_is_off() {
    let lab = up("default.toml").await;
    let seen = tcp_responder(&lab, "external", 443);
    tcp_echo(&lab, "web", addr("198.51.100.2:443")).unwrap();
    assert_eq!(seen.recv().unwrap().ip().to_string(), "198.51.100.1");
    lab.down().unwrap();

    let lab = up("ip-masq-off.toml").await;
    let _seen = tcp_responder(&lab, "external", 443);
    // The SYN leaves unmasqueraded; external has no route back to 172.17/16.
    assert_blocked(tcp_echo(&lab, "app", addr("198.51.100.2:443")));
    lab.down().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn icc_decides_container_to_container_traffic() {
    let on = up("default.toml").await;
    let _r = tcp_responder(&on, "web", 80);
    tcp_echo(&on, "client", addr("172.17.0.1:80")).unwrap();
    on.down().unwrap();

    let off = up("icc-off.toml").await;
    let _r = tcp_responder(&off, "web", 80);
    let _x = tcp_responder(&off, "external", 443);
    assert_blocked(tcp_echo(&off, "client", addr("172.17.0.1:80")));
    // The way out stays open.
    tcp_echo(&off, "client", addr("198.51.100.2:443")).unwrap();
    off.down().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_open_exactly_the_exposed_port() {
    let lab = up("links.toml").await;
    let _db = tcp_responder(&lab, "db", 5432);
    let _ssh = tcp_responder(&lab, "db", 22);
    let db = lab.plan().container("db").unwrap().ip().unwrap();
    tcp_echo(&lab, "web", SocketAddr::from((db, 5432))).unwrap();
    assert_blocked(tcp_echo(&lab, "web", SocketAddr::from((db, 22))));
    assert_blocked(tcp_echo(&lab, "other", SocketAddr::from((db, 5432))));
    lab.down().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ip_forward_off_keeps_containers_in() {
    let lab = up("ip-forward-off.toml").await;
    let _x = tcp_responder(&lab, "external", 443);
    assert_blocked(tcp_echo(&lab, "app", addr("198.51.100.2:443")));
    lab.down().unwrap();
}

/// `via` reads the neighbour's MAC from its namespace: after the host's
/// uplink changed its MAC under the plan, a frame to the MAC the plan
/// knows is not for the host, and `via` still reaches the port (a
/// 127.0.0.1-published one, which only a frame put on the host's MAC can
/// reach from the LAN).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn via_finds_the_neighbours_mac_in_its_namespace_not_in_the_plan() {
    use bridgelab::probe::engine::{LinkVia, Outcome, ProbeJob};
    use bridgelab::probe::packets::{Answer, WireKind};
    use std::time::Duration;

    let lab = up("docker20-loopback-published-lan.toml").await;
    let planned = lab.plan().node("host").unwrap().link("eth0").unwrap().mac.unwrap().0;
    let fresh = [0x02, 0x00, 0xde, 0xad, 0xbe, 0xef];
    assert_ne!(planned, fresh);
    let nl = lab.netlink("host").unwrap();
    let index = nl.index("eth0").await.unwrap();
    let set = rtnetlink::LinkUnspec::new_with_index(index).address(fresh.to_vec()).build();
    nl.handle.link().set(set).execute().await.unwrap();

    let links = bridgelab::probe::host_links(&lab).await;
    let via = bridgelab::probe::link_via(lab.plan(), &links, "external", "external", None, false).unwrap();
    assert_eq!((via.iface.as_str(), via.mac, via.neighbour.to_string()), ("eth0", fresh, "198.51.100.1".to_string()));

    let job = |via: LinkVia| ProbeJob {
        netns: "external".into(),
        dst: "127.0.0.1".parse().unwrap(),
        kind: WireKind::Tcp(8080),
        patient: false,
        via: Some(via),
    };
    let stale = LinkVia { mac: planned, ..via.clone() };
    let results = bridgelab::probe::run_jobs(&lab, vec![job(via), job(stale)], Duration::from_millis(300), 1).await;
    // Nothing listens in web without responders: its RST, read at the link
    // layer though its source is 127.0.0.1, says the frame got there.
    assert_eq!(results[0].outcome, Outcome::Answered(Answer::Refused), "{:?}", results[0]);
    assert_eq!(results[1].outcome, Outcome::Silence, "{:?}", results[1]);
    lab.down().unwrap();
}
