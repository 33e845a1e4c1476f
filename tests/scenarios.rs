//! Every shipped scenario: planned, built for real, read back through netlink
//! and compared with its plan, snapshotted, its expectations probed, and
//! removed without a trace.

mod common;

use std::path::PathBuf;

use bridgelab::Lab;
use rstest::rstest;

fn snapshot_name(path: &std::path::Path) -> String {
    path.file_stem().unwrap().to_string_lossy().into_owned()
}

/// The plan is the simulator's answer; it needs no root and must not drift.
#[rstest]
fn plan_snapshot(#[files("scenarios/*.toml")] path: PathBuf) {
    let lab = Lab::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let about = lab.scenario().spec.about.as_deref().unwrap_or("");
    assert!(!about.trim().is_empty(), "{} needs an `about`", path.display());
    insta::assert_snapshot!(format!("plan-{}", snapshot_name(&path)), lab.plan().to_string());
}

/// Built for real: what netlink and iptables-save report equals the plan
/// (the simulator is right), and what its `[snapshot]` selects (by default
/// the host's rules and every namespace's routes) matches the committed
/// snapshot.
#[rstest]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn built_lab_matches_plan(#[files("scenarios/*.toml")] path: PathBuf) {
    common::require_root();
    let lab = Lab::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let running = lab.up().await.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let run_id = running.run_id().to_string();
    assert_eq!(common::namespaces_of(&run_id).len(), running.plan().nodes.len());

    let observed = running.observe().await.unwrap();
    let mismatches = bridgelab::apply::verify::verify(running.plan(), &observed);
    assert!(mismatches.is_empty(), "{}: {mismatches:#?}", path.display());

    let host = observed.node("host").unwrap();
    let rules = host.iptables.as_deref().unwrap();
    assert_eq!(rules, running.plan().iptables.render(), "iptables-save differs from the plan");
    // What the scenario's [snapshot] selects, normalized so it is the same on every run.
    let snap = bridgelab::apply::snapshot::render(running.plan(), &running.scenario().spec.snapshot, &observed);
    insta::assert_snapshot!(format!("lab-{}", snapshot_name(&path)), snap);

    // Every expectation of the file holds on the wire, steps included, and
    // after each step the lab still matches that step's plan.
    let mut running = running;
    let mut responders = bridgelab::probe::start_responders(&running).unwrap();
    let checked = bridgelab::probe::check_scenario(&mut running, &mut responders).await;
    assert!(checked.failure.is_none(), "{}: {:?}", path.display(), checked.failure);
    for step in &checked.steps {
        assert!(step.mismatches.is_empty(), "{} after {}: {:#?}", path.display(), step.label, step.mismatches);
    }
    let outcomes = checked.expectations;
    assert!(!outcomes.is_empty(), "{} has no expectations", path.display());
    let failed: Vec<_> = outcomes.iter().filter(|o| !o.passed).collect();
    assert!(failed.is_empty(), "{}: {failed:#?}", path.display());
    drop(responders);

    running.down().unwrap();
    assert!(common::namespaces_of(&run_id).is_empty(), "namespaces left behind");
    assert!(bridgelab::registry::Registry::default().get(&run_id).is_none(), "run record left behind");
}
