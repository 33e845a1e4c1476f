//! Scale: more containers than one bridge takes (1,023 ports), spread over
//! user-defined networks, build, verify, answer probes and go.

mod common;

use std::time::Instant;

use bridgelab::probe::{check_scenario, start_responders};
use bridgelab::scenario::Scenario;

/// 5,000 containers on 5 networks of Docker 20.10 (1,000 ports per bridge),
/// every fifth publishing a port: the lab is built, read back equal to its plan,
/// a sample of probes gives Docker's verdicts (same network reachable,
/// another network isolated, a published port from outside), and every
/// namespace is gone afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_thousand_containers_on_five_networks_build_probe_and_go() {
    common::require_root();
    // Every fifth publishes: 5,000 namespaces with a netlink socket each
    // and a proxy socket per published port on 0.0.0.0 and [::] must stay
    // under the usual hard limit of 20,000 open files.
    let mut text = common::scale::bridge_lab("docker20", 5_000, 5, 5);
    // c0, c5, c10... are on n0; c1 on n1. c4995 listens on its port 80,
    // published as 14995.
    text = text.replace("name = \"c4995\"\n", "name = \"c4995\"\nlisten = [\"tcp:80\"]\n");
    for (from, to, probe, result) in [
        ("c0", "c5", "icmp", "reachable"),
        ("c4990", "c0", "icmp", "reachable"),
        ("c0", "c1", "icmp", "blocked"),
        ("c4999", "c3", "icmp", "blocked"),
        ("c4990", "c4995", "tcp:80", "reachable"),
        ("external", "host", "tcp:14995", "reachable"),
    ] {
        text.push_str(&format!(
            "[[expect]]\nfrom = \"{from}\"\nto = \"{to}\"\nprobe = \"{probe}\"\nresult = \"{result}\"\n"
        ));
    }
    let scenario = Scenario::parse("scale-5000.toml".into(), text).unwrap();
    let started = Instant::now();
    let mut running = bridgelab::Lab::from_scenario(scenario).unwrap().up().await.unwrap();
    let built = started.elapsed();
    let run_id = running.run_id().to_string();
    let nodes = running.plan().nodes.len();
    assert!(nodes > 5_000, "a namespace per container, and the host's: {nodes}");
    assert_eq!(common::namespaces_of(&run_id).len(), nodes);
    let mismatches = running.verify().await.unwrap();
    assert!(mismatches.is_empty(), "{:?}", &mismatches[..mismatches.len().min(10)]);
    let verified = started.elapsed();
    let mut responders = start_responders(&running).unwrap();
    let checked = check_scenario(&mut running, &mut responders).await;
    assert_eq!(checked.expectations.len(), 6);
    let failed: Vec<_> = checked.failed().collect();
    assert!(checked.passed(), "{failed:?}");
    drop(responders);
    let probed = started.elapsed();
    running.down().unwrap();
    assert!(common::namespaces_of(&run_id).is_empty());
    eprintln!(
        "5,000 containers on 5 networks: built {built:?}, verified at {verified:?}, probed at {probed:?}, down at {:?}",
        started.elapsed()
    );
}
