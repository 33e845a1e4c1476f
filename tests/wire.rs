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
