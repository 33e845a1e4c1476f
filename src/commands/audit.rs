//! `bridgelab audit`: a Docker host's rules against the plan of its
//! imported scenario.

use std::path::Path;

use super::host::{fail, inferred, HostArgs, RuleArgs};

pub fn run(host: &HostArgs, r: &RuleArgs) -> u8 {
    let found = match inferred(host, r, Path::new("imported.toml")) {
        Ok(f) => f,
        Err(e) => return fail(&e),
    };
    let imported = &found.imported;
    println!(
        "audit: the host's rules against the plan of its imported scenario ({}, {} containers, {} networks)",
        imported.scenario.spec.daemon.firewall(),
        imported.plan.containers.len(),
        imported.plan.networks.len()
    );
    for n in &imported.notes {
        println!("note: {n}");
    }
    for f in &found.findings {
        println!("{f}");
    }
    if found.findings.is_empty() {
        println!("no drift: every rule is where Docker puts it");
        0
    } else {
        println!("DRIFT: {} finding(s)", found.findings.len());
        1
    }
}
