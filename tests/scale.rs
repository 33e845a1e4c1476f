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
    let text = common::scale::five_thousand_on_five_networks();
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
