//! `bridgelab run FILE…`: build, check against the plan, probe every
//! expectation, report, tear down.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use bridgelab::report::{self, ScenarioReport};

use super::{fail, print_json, Format};

pub struct RunArgs {
    pub format: Format,
    pub hold: bool,
    pub junit: Option<PathBuf>,
    pub matrix: Vec<bridgelab::scenario::ProbeSpec>,
    pub pcap: Option<PathBuf>,
}

pub async fn run(files: &[PathBuf], args: RunArgs) -> u8 {
    let mut worst = 0u8;
    let mut reports = Vec::new();
    for f in files {
        let (code, r) = run_one(f, &args).await;
        worst = worst.max(code);
        if let Some(r) = r {
            reports.push(r);
        }
    }
    match args.format {
        // Bad input has said so on stderr already; there is no lab to report on.
        Format::Text if reports.is_empty() => {}
        Format::Text => crate::out!("{}", report::text(&reports, std::io::stdout().is_terminal()).trim_end()),
        Format::Json => print_json(&reports),
    }
    if let Some(path) = &args.junit {
        if let Err(e) = std::fs::write(path, report::junit(&reports)) {
            eprintln!("bridgelab: cannot write {}: {e}", path.display());
            worst = worst.max(3);
        }
    }
    worst
}

async fn run_one(f: &Path, args: &RunArgs) -> (u8, Option<ScenarioReport>) {
    let lab = match bridgelab::Lab::load(f) {
        Ok(l) => l,
        Err(e) => return (fail(&e), None),
    };
    let mut report = ScenarioReport::new(f.to_path_buf(), lab.plan().scenario.clone());
    let running = match lab.up().await {
        Ok(r) => r,
        Err(e) => {
            let code = fail(&e);
            report.error = Some(e.to_string());
            report.conclude();
            return (code, Some(report));
        }
    };
    report.run_id = Some(running.run_id().to_string());
    match running.verify().await {
        Ok(m) => report.mismatches = m,
        Err(e) => report.error = Some(e.to_string()),
    }
    let mut running = running;
    let capture = match &args.pcap {
        None => None,
        Some(dir) => match bridgelab::capture::Capture::start(&running, dir).await {
            Ok(c) => Some(c),
            Err(e) => {
                report.error = Some(e.to_string());
                None
            }
        },
    };
    match bridgelab::probe::start_responders(&running) {
        Ok(mut responders) => {
            if args.hold {
                wait_for_enter(&running).await;
            }
            match bridgelab::probe::check_scenario(&mut running, &mut responders).await {
                Ok(checked) => {
                    report.mismatches.extend(checked.mismatches);
                    report.expectations = checked.expectations;
                }
                Err(e) => report.error = Some(e.to_string()),
            }
            if !args.matrix.is_empty() {
                let cells = bridgelab::probe::matrix::run(&running, &args.matrix).await;
                if bridgelab::probe::matrix::any_differs(&cells) {
                    report.error.get_or_insert_with(|| "the matrix contradicts an [[expect]]".into());
                }
                if args.format == Format::Text {
                    let names = bridgelab::probe::matrix::nodes(&running);
                    crate::out!("{}", bridgelab::probe::matrix::render(&cells, &args.matrix, &names));
                }
                report.matrix = cells;
            }
        }
        Err(e) => report.error = Some(e.to_string()),
    }
    if let Some(c) = capture {
        match c.stop() {
            Ok(files) => {
                for f in files {
                    eprintln!("capture: {}", f.display());
                }
            }
            Err(e) => report.error = Some(format!("capture: {e}")),
        }
    }
    let mut code = 0;
    if let Err(e) = running.down() {
        code = fail(&e);
        report.error.get_or_insert(e.to_string());
    }
    report.conclude();
    if !report.passed {
        code = code.max(1);
    }
    (code, Some(report))
}

/// Keeps the lab until a line (or end of input) arrives on stdin.
async fn wait_for_enter(lab: &bridgelab::RunningLab) {
    use tokio::io::AsyncBufReadExt;
    crate::out!("ready {}", lab.run_id());
    for ns in lab.namespaces() {
        crate::out!("  ip netns exec {ns} ip addr");
    }
    crate::out!("press Enter to tear the lab down");
    let mut line = String::new();
    let _ = tokio::io::BufReader::new(tokio::io::stdin()).read_line(&mut line).await;
}
