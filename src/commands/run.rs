//! `bridgelab run FILE…`: build, check against the plan, tear down.

use std::path::PathBuf;

use serde::Serialize;

use super::{fail, print_json, Format};

#[derive(Serialize)]
struct Outcome {
    file: PathBuf,
    scenario: String,
    run_id: String,
    namespaces: usize,
    mismatches: Vec<bridgelab::apply::Mismatch>,
    expectations_not_checked: usize,
    passed: bool,
}

pub async fn run(files: &[PathBuf], format: Format, hold: bool) -> u8 {
    let mut worst = 0u8;
    let mut outcomes = Vec::new();
    for f in files {
        let lab = match bridgelab::Lab::load(f) {
            Ok(l) => l,
            Err(e) => {
                worst = worst.max(fail(&e));
                continue;
            }
        };
        let expectations = lab.scenario().spec.expects.len() + lab.scenario().spec.steps.len();
        let running = match lab.up().await {
            Ok(r) => r,
            Err(e) => {
                worst = worst.max(fail(&e));
                continue;
            }
        };
        if hold {
            wait_for_enter(&running).await;
        }
        let mismatches = match running.verify().await {
            Ok(m) => m,
            Err(e) => {
                worst = worst.max(fail(&e));
                continue;
            }
        };
        let outcome = Outcome {
            file: f.clone(),
            scenario: running.plan().scenario.clone(),
            run_id: running.run_id().to_string(),
            namespaces: running.namespaces().len(),
            passed: mismatches.is_empty(),
            mismatches,
            expectations_not_checked: expectations,
        };
        if let Err(e) = running.down() {
            worst = worst.max(fail(&e));
        }
        if !outcome.passed {
            worst = worst.max(1);
        }
        if format == Format::Text {
            report(&outcome);
        }
        outcomes.push(outcome);
    }
    if format == Format::Json {
        print_json(&outcomes);
    }
    worst
}

fn report(o: &Outcome) {
    let verdict = if o.passed { "PASS" } else { "FAIL" };
    println!("{verdict}  {} ({}): {} namespaces built and read back", o.scenario, o.file.display(), o.namespaces);
    for m in &o.mismatches {
        println!("      differs from plan: {m}");
    }
    if o.expectations_not_checked > 0 {
        println!(
            "      note: {} [[expect]]/[[step]] entries are parsed but not probed yet",
            o.expectations_not_checked
        );
    }
}

/// Keeps the lab until a line (or end of input) arrives on stdin.
async fn wait_for_enter(lab: &bridgelab::RunningLab) {
    use tokio::io::AsyncBufReadExt;
    println!("ready {}", lab.run_id());
    for ns in lab.namespaces() {
        println!("  ip netns exec {ns} ip addr");
    }
    println!("press Enter to tear the lab down");
    let mut line = String::new();
    let _ = tokio::io::BufReader::new(tokio::io::stdin()).read_line(&mut line).await;
}
