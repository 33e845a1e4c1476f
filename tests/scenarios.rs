//! Every shipped scenario: planned, built for real, read back through netlink
//! and compared with its plan, snapshotted, its expectations probed, and
//! removed without a trace.

mod common;

use std::path::PathBuf;

use bridgelab::Lab;
use rstest::rstest;

/// The file's stem; for one run of a file with `versions`, `@VERSION`
/// after it, so each version has its own snapshots.
fn snapshot_name(path: &std::path::Path, lab: &Lab) -> String {
    let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
    match lab.scenario().version {
        Some(v) => format!("{stem}@{v}"),
        None => stem,
    }
}

/// The plan is the simulator's answer; it needs no root and must not drift.
#[rstest]
fn plan_snapshot(#[files("scenarios/**/*.toml")] path: PathBuf) {
    let labs = Lab::load_all(&path).unwrap_or_else(|e| panic!("{e}"));
    for lab in &labs {
        let about = lab.scenario().spec.about.as_deref().unwrap_or("");
        assert!(!about.trim().is_empty(), "{} needs an `about`", path.display());
        insta::assert_snapshot!(format!("plan-{}", snapshot_name(&path, lab)), lab.plan().to_string());
    }
}

/// Built for real: what netlink and iptables-save report equals the plan
/// (the simulator is right), and what its `[snapshot]` selects (by default
/// the host's rules and every namespace's routes) matches the committed
/// snapshot.
#[rstest]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn built_lab_matches_plan(#[files("scenarios/**/*.toml")] path: PathBuf) {
    common::require_root();
    // A file with `versions`: each run is its own lab, one after another.
    for lab in Lab::load_all(&path).unwrap_or_else(|e| panic!("{e}")) {
        built_lab(&path, lab).await;
    }
}

async fn built_lab(path: &std::path::Path, lab: Lab) {
    let name = snapshot_name(path, &lab);
    let running = lab.up().await.unwrap_or_else(|e| panic!("{}: {e}", name));
    let run_id = running.run_id().to_string();
    assert_eq!(common::namespaces_of(&run_id).len(), running.plan().nodes.len());

    let observed = running.observe().await.unwrap();
    let mismatches = bridgelab::apply::verify::verify(running.plan(), &observed);
    assert!(mismatches.is_empty(), "{}: {mismatches:#?}", name);

    let host = observed.node("host").unwrap();
    let rules = host.iptables.as_deref().unwrap();
    assert_eq!(rules, running.plan().iptables.render(), "iptables-save differs from the plan");
    // What the scenario's [snapshot] selects, normalized so it is the same on every run.
    let snap = bridgelab::apply::snapshot::render(running.plan(), &running.scenario().spec.snapshot, &observed);
    insta::assert_snapshot!(format!("lab-{name}"), snap);

    // Every expectation of the file holds on the wire, steps included, and
    // after each step the lab still matches that step's plan.
    let mut running = running;
    let mut responders = bridgelab::probe::start_responders(&running).unwrap();
    let checked = bridgelab::probe::check_scenario(&mut running, &mut responders).await;
    assert!(checked.failure.is_none(), "{}: {:?}", name, checked.failure);
    for step in &checked.steps {
        assert!(step.mismatches.is_empty(), "{} after {}: {:#?}", name, step.label, step.mismatches);
    }
    let outcomes = checked.expectations;
    assert!(!outcomes.is_empty(), "{} has no expectations", name);
    let failed: Vec<_> = outcomes.iter().filter(|o| !o.passed).collect();
    assert!(failed.is_empty(), "{}: {failed:#?}", name);
    drop(responders);

    running.down().unwrap();
    assert!(common::namespaces_of(&run_id).is_empty(), "namespaces left behind");
    assert!(bridgelab::registry::Registry::default().get(&run_id).is_none(), "run record left behind");
}
