//! `bridgelab run FILE…`: build, check against the plan, probe every
//! expectation, report, tear down.
//!
//! Nothing found is ever dropped: a stage that fails adds an error to the
//! scenario's report (a failed testcase) and the stages that can still run
//! do, so every verdict gathered before the failure is reported.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use bridgelab::report::{self, millis, ScenarioReport};

use super::progress::{self, Progress};
use super::{print_json, render_error, Format};

pub struct RunArgs {
    pub format: Format,
    pub hold: bool,
    pub junit: Option<PathBuf>,
    pub matrix: Vec<bridgelab::scenario::ProbeSpec>,
    /// `--html`: the matrix as an HTML page.
    pub html: Option<PathBuf>,
    /// `--graph`: a picture per scenario, arrows as seen.
    pub graph: Option<PathBuf>,
    pub pcap: Option<PathBuf>,
    /// `--versions`: run every file under each of these layouts instead of
    /// its own, and print a verdict table per file.
    pub versions: Vec<bridgelab::scenario::Firewall>,
}

pub async fn run(files: &[PathBuf], args: RunArgs) -> u8 {
    let mut worst = 0u8;
    let mut reports = Vec::new();
    // Per file under --versions: its reports' range and their versions.
    let mut tables: Vec<(PathBuf, std::ops::Range<usize>, Vec<String>)> = Vec::new();
    let labs = files.len() * args.versions.len().max(1);
    let term = std::env::var("TERM").ok();
    let show = progress::wanted(std::io::stderr().is_terminal(), term.as_deref(), labs, args.hold);
    let mut progress = Progress::new(show, files.len());
    'files: for f in files {
        let started = Instant::now();
        progress.running(&f.display().to_string());
        // A file with `versions` is one lab, and one report, per version;
        // under --versions, one per version asked for.
        let labs = match load(f, &args.versions) {
            Ok(l) => l,
            Err(e) => {
                progress.suspend(|| eprintln!("{}", render_error(&e)));
                worst = worst.max(e.exit_code() as u8);
                progress.verdict(false);
                progress.file_done();
                reports.push(ScenarioReport::not_loaded(f, &e, started.elapsed()));
                continue;
            }
        };
        let first = reports.len();
        for lab in labs {
            let (code, r) = match lab {
                Ok(lab) => {
                    progress.running(&lab.scenario().name);
                    run_one(f, lab, &args, &progress).await
                }
                // A version the file cannot be expressed in: a column that says why.
                Err((name, e)) => {
                    progress.suspend(|| eprintln!("{}", render_error(&e)));
                    let mut r = ScenarioReport::not_loaded(f, &e, started.elapsed());
                    r.scenario = name;
                    (e.exit_code() as u8, r)
                }
            };
            worst = worst.max(code);
            progress.verdict(r.passed);
            reports.push(r);
            // An interrupted tool means bridgelab itself is being stopped:
            // report what was found, and run no further scenario.
            if code > 128 {
                break 'files;
            }
        }
        progress.file_done();
        if !args.versions.is_empty() {
            let names = args.versions.iter().map(|v| v.to_string()).collect();
            tables.push((f.clone(), first..reports.len(), names));
        }
    }
    progress.clear();
    match args.format {
        Format::Text => {
            crate::out!("{}", report::text(&reports, std::io::stdout().is_terminal()).trim_end());
            for (f, range, names) in &tables {
                let runs: Vec<(String, &ScenarioReport)> = names.iter().cloned().zip(&reports[range.clone()]).collect();
                crate::out!("\n{}", report::by_version(f, &runs).trim_end());
            }
        }
        Format::Json => print_json(&reports),
    }
    if let Some(path) = &args.html {
        if let Err(e) = std::fs::write(path, bridgelab::picture::matrix_html(&reports)) {
            eprintln!("bridgelab: cannot write {}: {e}", path.display());
            worst = worst.max(3);
        }
    }
    if let Some(path) = &args.junit {
        if let Err(e) = std::fs::write(path, report::junit(&reports)) {
            eprintln!("bridgelab: cannot write {}: {e}", path.display());
            worst = worst.max(3);
        }
    }
    worst
}

type Planned = Result<bridgelab::Lab, (String, bridgelab::Error)>;

/// The labs of one file: its runs, or with `versions` given (`--versions`)
/// one per version, a version it cannot be expressed in as the error
/// that says why (a column of its own, not the end of the file).
fn load(f: &Path, versions: &[bridgelab::scenario::Firewall]) -> bridgelab::Result<Vec<Planned>> {
    if versions.is_empty() {
        return Ok(bridgelab::Lab::load_all(f)?.into_iter().map(Ok).collect());
    }
    let scenario = bridgelab::Scenario::load(f)?;
    Ok(versions
        .iter()
        .map(|v| {
            let name = format!("{}@{v}", scenario.name);
            scenario
                .under(*v)
                .map_err(bridgelab::Error::from)
                .and_then(bridgelab::Lab::from_scenario)
                .map_err(|e| (name, e))
        })
        .collect())
}

/// The exit code and report of one scenario. Each error is said on stderr
/// as it happens and kept in the report; the exit code is the worst of
/// them (2 bad input, 3 environment, 128 + N a signal), or 1 for a verdict
/// that failed.
async fn run_one(f: &Path, lab: bridgelab::Lab, args: &RunArgs, progress: &Progress) -> (u8, ScenarioReport) {
    let started = Instant::now();
    let mut report = ScenarioReport::new(f.to_path_buf(), lab.scenario().name.clone());
    let scenario = lab.scenario();
    report.layout = Some(scenario.version.unwrap_or_else(|| scenario.spec.daemon.firewall()).to_string());
    let mut code = 0u8;
    // The pictures are drawn from the plan the lab started from.
    let drawing = args.graph.as_ref().map(|dir| (dir.clone(), lab.scenario().clone(), lab.plan().clone()));
    let building = Instant::now();
    let running = match lab.up().await {
        Ok(r) => r,
        Err(e) => {
            fail(progress, &mut report, &mut code, report::STAGE_BUILD, &e, building);
            return (conclude(&mut report, code, started), report);
        }
    };
    report.run_id = Some(running.run_id().to_string());
    match running.verify().await {
        Ok(m) => report.mismatches = m,
        Err(e) => fail(progress, &mut report, &mut code, report::STAGE_MATCHES_PLAN, &e, building),
    }
    report.build_ms = Some(millis(building.elapsed()));
    let mut running = running;
    let capturing = Instant::now();
    let capture = match &args.pcap {
        None => None,
        Some(dir) => match bridgelab::capture::Capture::start(&running, dir).await {
            Ok(c) => Some(c),
            Err(e) => {
                fail(progress, &mut report, &mut code, report::STAGE_CAPTURE, &e, capturing);
                None
            }
        },
    };
    let responding = Instant::now();
    match bridgelab::probe::start_responders(&running) {
        Ok(mut responders) => {
            if args.hold {
                // Named for `ip netns exec` (see `RunningLab::name_namespaces`);
                // `bridgelab shell` needs no name, so the lab is held either way.
                let naming = Instant::now();
                if let Err(e) = running.name_namespaces() {
                    fail(progress, &mut report, &mut code, report::STAGE_BUILD, &e, naming);
                }
                wait_for_enter(&running).await;
            }
            let checked = bridgelab::probe::check_scenario(&mut running, &mut responders).await;
            if let Some(f) = &checked.failure {
                progress.suspend(|| eprintln!("{}", render_error(&f.error)));
                code = code.max(f.error.exit_code() as u8);
            }
            report.add_checked(checked);
            if let Some((dir, scenario, plan)) = &drawing {
                if let Err(e) = draw(dir, scenario, plan, &report.expectations) {
                    eprintln!("bridgelab: {e}");
                    code = code.max(3);
                }
            }
            if !args.matrix.is_empty() {
                let probing = Instant::now();
                let cells = bridgelab::probe::matrix::run(&running, &args.matrix).await;
                if bridgelab::probe::matrix::any_differs(&cells) {
                    report.error(report::STAGE_MATRIX, "the matrix contradicts an [[expect]]", probing.elapsed());
                }
                if args.format == Format::Text {
                    let names = bridgelab::probe::matrix::nodes(&running);
                    progress
                        .suspend(|| crate::out!("{}", bridgelab::probe::matrix::render(&cells, &args.matrix, &names)));
                }
                report.matrix = cells;
            }
        }
        Err(e) => fail(progress, &mut report, &mut code, report::STAGE_RESPONDERS, &e, responding),
    }
    if let Some(c) = capture {
        match c.stop() {
            Ok(files) => {
                progress.suspend(|| {
                    for f in files {
                        eprintln!("capture: {}", f.display());
                    }
                });
            }
            Err(e) => {
                let e = bridgelab::Error::Environment(format!("capture: {e}"));
                fail(progress, &mut report, &mut code, report::STAGE_CAPTURE, &e, capturing);
            }
        }
    }
    let tearing = Instant::now();
    if let Err(e) = running.down() {
        fail(progress, &mut report, &mut code, report::STAGE_TEARDOWN, &e, tearing);
    }
    (conclude(&mut report, code, started), report)
}

/// Writes DIR/<scenario>.dot (and .step-N.dot for each step whose
/// expectations were checked) with the arrows as seen, and an .svg of each
/// when Graphviz's `dot` is there (said once when it is not).
fn draw(
    dir: &Path,
    scenario: &bridgelab::Scenario,
    plan: &bridgelab::Plan,
    seen: &[bridgelab::probe::ExpectOutcome],
) -> Result<(), String> {
    use bridgelab::picture::{self, Title};
    use std::sync::atomic::{AtomicBool, Ordering};
    static NO_DOT_SAID: AtomicBool = AtomicBool::new(false);
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let title = |detail: String| Title { heading: scenario.name.clone(), detail: Some(detail), macs: false };
    let mut pictures = vec![(
        scenario.name.clone(),
        picture::topology(scenario, plan, &picture::arrows_seen(seen, None), &title("as seen at the start".into())),
    )];
    for (i, step) in plan.steps.iter().enumerate() {
        let label = format!("step {}: {}", i + 1, step.action);
        let arrows = picture::arrows_seen(seen, Some(&label));
        if !arrows.is_empty() {
            let dot = picture::topology(scenario, &step.after, &arrows, &title(format!("as seen after {label}")));
            pictures.push((format!("{}.step-{}", scenario.name, i + 1), dot));
        }
    }
    for (stem, dot) in pictures {
        let path = dir.join(format!("{stem}.dot"));
        std::fs::write(&path, &dot).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        eprintln!("graph: {}", path.display());
        match picture::svg(&dot) {
            Ok(svg) => {
                let path = dir.join(format!("{stem}.svg"));
                std::fs::write(&path, svg).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                eprintln!("graph: {}", path.display());
            }
            Err(e) => {
                if !NO_DOT_SAID.swap(true, Ordering::Relaxed) {
                    eprintln!("graph: no SVG: {e}");
                }
            }
        }
    }
    Ok(())
}

/// Says an error on stderr (past the progress bar) and keeps it in the report.
fn fail(
    progress: &Progress,
    report: &mut ScenarioReport,
    code: &mut u8,
    stage: &str,
    e: &bridgelab::Error,
    since: Instant,
) {
    progress.suspend(|| eprintln!("{}", render_error(e)));
    *code = (*code).max(e.exit_code() as u8);
    report.error(stage, e, since.elapsed());
}

fn conclude(report: &mut ScenarioReport, code: u8, started: Instant) -> u8 {
    report.elapsed_ms = millis(started.elapsed());
    report.conclude();
    if report.passed {
        code
    } else {
        code.max(1)
    }
}

/// Keeps the lab until a line (or end of input) arrives on stdin.
///
/// stdin is read on a detached thread, not tokio's: tokio reads it on a
/// blocking-pool thread that the runtime waits for when it shuts down, so
/// a Ctrl-C here would hang until Enter.
async fn wait_for_enter(lab: &bridgelab::RunningLab) {
    crate::out!("ready {}", lab.run_id());
    for ns in lab.namespaces() {
        crate::out!("  ip netns exec {ns} ip addr");
    }
    crate::out!("press Enter to probe and tear the lab down");
    let (tx, rx) = tokio::sync::oneshot::channel();
    let reader = std::thread::Builder::new().name("hold-stdin".into()).spawn(move || {
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
        let _ = tx.send(());
    });
    if reader.is_ok() {
        let _ = rx.await;
    }
}
