//! Probe-side features on the wire: `source` on a `blocked` verdict,
//! broadcasts, and `flow` steps (their conntrack entries, and their end
//! with the lab).

mod common;

use std::time::{Duration, Instant};

use bridgelab::apply::netns::run_in;
use bridgelab::probe::{self, ExpectOutcome};
use bridgelab::Lab;

async fn up_text(dir: &tempfile::TempDir, name: &str, toml: &str) -> bridgelab::RunningLab {
    common::require_root();
    Lab::load(common::temp_scenario(dir, name, toml)).unwrap().up().await.unwrap()
}

fn summary(out: &[ExpectOutcome]) -> Vec<(bool, Option<&str>, &str)> {
    out.iter().map(|o| (o.passed, o.actual.as_deref(), o.detail.as_str())).collect()
}

/// The conntrack table of a node's namespace, as the kernel lists it.
fn conntrack(lab: &bridgelab::RunningLab, node: &str) -> String {
    run_in(lab.netns_file(node).unwrap(), || std::fs::read_to_string("/proc/thread-self/net/nf_conntrack")).unwrap()
}

/// `source` with `blocked`: passes only when the responder saw the probe
/// arrive from that address; a wrong address, or a probe that never
/// arrived, fails and says which.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_on_blocked_means_it_arrived_and_the_answer_was_lost() {
    let dir = tempfile::tempdir().unwrap();
    let expect = |port: u16, source: &str| {
        format!(
            "[[expect]]\nfrom = \"aa\"\nto = \"external\"\nprobe = \"udp:{port}\"\nresult = \"blocked\"\nsource = \"{source}\"\n"
        )
    };
    let toml = format!(
        "[daemon]\nip_masq = false\n[external]\nlisten = [\"udp:5353\"]\n[[container]]\nname = \"aa\"\n{}{}{}",
        expect(5353, "aa"),
        expect(5353, "external"),
        // Nothing listens there: external's own port unreachable has no way back either.
        expect(5354, "aa"),
    );
    let lab = up_text(&dir, "lost", &toml).await;
    let responders = probe::start_responders(&lab).unwrap();
    let out = probe::check(&lab, &responders, &lab.scenario().spec.expects).await;
    let aa = lab.plan().container("aa").unwrap().ip().unwrap();
    assert_eq!(out[0].source_seen, Some(aa), "{out:#?}");
    assert!(out[0].passed, "{:#?}", out[0]);
    assert!(out[0]
        .detail
        .ends_with(&format!("the responder saw it arrive from {aa}: the answer was lost on the way back")));
    assert!(!out[1].passed);
    assert!(out[1].detail.ends_with(&format!("the responder saw the probe come from {aa}, not from external")));
    assert_eq!((out[2].passed, out[2].source_seen), (false, None));
    assert!(out[2].detail.ends_with("no responder saw the probe: it was lost on the way there, not on the way back"));
    drop(responders);
    lab.down().unwrap();
}

/// A broadcast reaches every responder on the link but the sender's own,
/// whose answer (its kernel loops the broadcast back) does not count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broadcast_says_who_received_it_and_the_sender_is_not_one() {
    let dir = tempfile::tempdir().unwrap();
    let toml = "[[container]]\nname = \"aa\"\nlisten = [\"udp:9999\"]\n\
                [[container]]\nname = \"bb\"\nlisten = [\"udp:9999\"]\n\
                [[container]]\nname = \"cc\"\nlisten = [\"udp:9999\"]\n\
                [[container]]\nname = \"dd\"\nlisten = [\"udp:9998\"]\n\
                [[expect]]\nfrom = \"aa\"\nto = \"255.255.255.255\"\nprobe = \"udp:9999\"\nresult = \"reachable\"\n\
                [[expect]]\nfrom = \"dd\"\nto = \"255.255.255.255\"\nprobe = \"udp:9998\"\nresult = \"reachable\"\n";
    let lab = up_text(&dir, "bcast", toml).await;
    let responders = probe::start_responders(&lab).unwrap();
    let out = probe::check(&lab, &responders, &lab.scenario().spec.expects).await;
    let mut got = out[0].received_by.clone();
    got.sort();
    assert_eq!((out[0].passed, got), (true, vec!["bb".to_string(), "cc".to_string()]), "{out:#?}");
    // dd alone listens on 9998: only its own looped-back copy answered.
    assert_eq!(summary(&out[1..]), [(
        false,
        Some("blocked"),
        "only the sender's own responder answered (its kernel loops a broadcast back); broadcast to 255.255.255.255: no other responder received it"
    )]);
    drop(responders);
    lab.down().unwrap();
}

const STALE: &str = r#"
[daemon]
firewall = "docker20"

[[container]]
name = "aa"
listen = ["udp:7000"]

[[step]]
do    = "flow"
name  = "early"
from  = "external"
to    = "host"
probe = "udp:5060"
interval_ms = 20

[[step]]
do        = "run"
container = { name = "sip", publish = ["5060:5060/udp"], listen = ["udp:5060"] }

[[step.expect]]
flow   = "early"
to     = "sip"
result = "reachable"
source = "host"

[[step]]
do    = "flow"
name  = "out"
from  = "aa"
to    = "external"
probe = "udp:7001"

[[step]]
do        = "stop"
container = "aa"

[[step.expect]]
flow   = "out"
to     = "external"
result = "blocked"
"#;

/// A flow's entry is real kernel state: begun before the port was
/// published, it stays un-NAT'd in the host's conntrack table while a
/// fresh flow to the same port is DNAT'd. A flow whose sender goes away
/// stops, and its expectations say so; the flows end with the lab.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flow_keeps_its_conntrack_entry_until_its_sender_or_the_lab_goes() {
    let dir = tempfile::tempdir().unwrap();
    let mut lab = up_text(&dir, "stale", STALE).await;
    let mut responders = probe::start_responders(&lab).unwrap();
    let checked = probe::check_scenario(&mut lab, &mut responders).await;
    assert!(checked.failure.is_none(), "{:?}", checked.failure);
    let out = &checked.expectations;
    assert!(out[0].passed, "{:#?}", out[0]);
    assert_eq!(out[0].received_by, ["sip"]);

    // The host's table: the early flow's entry, from its fixed port, still
    // answered by the host itself (no DNAT), while a fresh probe to the
    // same port is DNAT'd to sip.
    let flow = responders.flow("early").unwrap();
    let text = "[[expect]]\nfrom = \"external\"\nto = \"host\"\nprobe = \"udp:5060\"\nresult = \"reachable\"\nsource = \"external\"\n";
    let fresh_expects = bridgelab::Scenario::parse("t.toml".into(), text.into()).unwrap().spec.expects;
    let fresh = probe::check(&lab, &responders, &fresh_expects).await;
    assert!(fresh[0].passed, "{fresh:#?}");
    let table = conntrack(&lab, "host");
    let sip = lab.plan().container("sip").unwrap().ip().unwrap();
    let entries: Vec<&str> = table.lines().filter(|l| l.contains("udp") && l.contains("dport=5060")).collect();
    let early = format!("src=198.51.100.2 dst=198.51.100.1 sport={} dport=5060 ", flow.src_port);
    let stale =
        entries.iter().find(|l| l.contains(&early)).unwrap_or_else(|| panic!("no entry for {early}: {entries:#?}"));
    assert!(
        stale.contains(&format!("src=198.51.100.1 dst=198.51.100.2 sport=5060 dport={}", flow.src_port)),
        "answered by the host, not sip: {stale}"
    );
    assert!(entries.iter().any(|l| l.contains(&format!("src={sip} dst=198.51.100.2 sport=5060"))), "{entries:#?}");

    // aa stopped: its flow went with its namespace.
    let out_flow = responders.flow("out").unwrap();
    assert!(out_flow.stopped.as_deref().is_some_and(|w| w.starts_with("its sender aa's namespace went away")));
    assert!(!out[1].passed && out[1].actual.is_none(), "{:#?}", out[1]);
    assert!(out[1].detail.starts_with("flow out stopped: its sender aa's namespace went away"), "{}", out[1].detail);

    // Dropping the responders ends the flows: the early flow's source port
    // is free again in external's namespace, and its datagrams stop.
    let port = flow.src_port;
    let sent = flow.state.clone();
    drop(responders);
    let deadline = Instant::now() + Duration::from_secs(5);
    let ext = lab.netns_file("external").unwrap();
    loop {
        let free = run_in(ext, move || std::net::UdpSocket::bind(("0.0.0.0", port))).is_ok();
        if free {
            break;
        }
        assert!(Instant::now() < deadline, "the flow's socket outlived its responders");
        tokio::task::yield_now().await;
    }
    // Its task is gone with the socket: nothing holds its state but us.
    assert_eq!(std::sync::Arc::strong_count(&sent), 1);
    lab.down().unwrap();
}

const CLEARED: &str = r#"
versions = ["docker1", "docker20"]

[[container]]
name    = "sip"
publish = ["5060:5060/udp"]
listen  = ["udp:5060"]

[[step]]
do    = "flow"
name  = "f"
from  = "external"
to    = "host"
probe = "udp:5060"

[[step.expect]]
flow   = "f"
to     = "sip"
result = "reachable"
source = "external"

[[step]]
do        = "stop"
container = "sip"
"#;

/// A stopping container's conntrack entries: Docker 20.10 deletes those
/// whose reply tuple has its address (libnetwork's
/// clearEndpointConnections), Docker 1.6.2 keeps them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_deletes_the_containers_conntrack_entries_from_docker20_on() {
    common::require_root();
    let dir = tempfile::tempdir().unwrap();
    let path = common::temp_scenario(&dir, "cleared", CLEARED);
    for lab in Lab::load_all(&path).unwrap() {
        let version = lab.scenario().version.unwrap().to_string();
        let cleared = lab.plan().steps[1].after.conntrack_cleared.clone();
        let sip = lab.plan().container("sip").unwrap().ip().unwrap();
        assert_eq!(cleared, if version == "docker20" { vec![sip] } else { vec![] }, "{version}");
        let mut running = lab.up().await.unwrap();
        let mut responders = probe::start_responders(&running).unwrap();
        let checked = probe::check_scenario(&mut running, &mut responders).await;
        assert!(checked.failure.is_none() && checked.expectations[0].passed, "{version}: {checked:#?}");
        let port = responders.flow("f").unwrap().src_port;
        let dnat = format!("sport={port} dport=5060 src={sip} dst=198.51.100.2 sport=5060 dport={port}");
        let kept = conntrack(&running, "host").lines().any(|l| l.contains(&dnat));
        // The flow's next datagram after the deletion is not DNAT'd: no
        // entry to sip's address can come back.
        assert_eq!(kept, version == "docker1", "{version}: {}", conntrack(&running, "host"));
        drop(responders);
        running.down().unwrap();
    }
}
