//! `bridgelab diff FILE…`: each scenario on a real dockerd and in
//! bridgelab's lab, compared.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use bridgelab::diff::dockerd::Dockers;
use bridgelab::scenario::Firewall;
use bridgelab::Scenario;

use super::render_error;

pub async fn run(files: &[PathBuf], docker: Option<&Path>, keep_going: bool) -> u8 {
    if let Err(e) = bridgelab::apply::check_environment() {
        eprintln!("{}", render_error(&e));
        return e.exit_code() as u8;
    }
    let dockers = match bridgelab::diff::dockerd::find_dockers(docker) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("{}", render_error(&e));
            return e.exit_code() as u8;
        }
    };
    let colour = std::io::stdout().is_terminal();
    let mut worst = 0u8;
    for (i, f) in files.iter().enumerate() {
        let code = diff_file(f, &dockers, colour).await;
        worst = worst.max(code);
        if code != 0 && !keep_going && i + 1 < files.len() {
            eprintln!(
                "bridgelab: stopping after {} (--keep-going diffs the other {} files)",
                f.display(),
                files.len() - i - 1
            );
            break;
        }
    }
    worst
}

/// Diffs one file: itself, or with top-level `versions` each version
/// against its own dockerd. A version with no real daemon here is skipped,
/// with a line that says so; the file fails only on what was diffed.
async fn diff_file(f: &Path, dockers: &Dockers, colour: bool) -> u8 {
    let scenario = match Scenario::load(f) {
        Ok(s) => s,
        Err(d) => {
            let e = bridgelab::Error::from(d);
            eprintln!("{}", render_error(&e));
            return e.exit_code() as u8;
        }
    };
    let versioned = scenario.spec.versions.is_some();
    let mut worst = 0u8;
    for run in scenario.variants() {
        let firewall = run.spec.daemon.firewall();
        if versioned {
            if let Some(why) = no_daemon(dockers, firewall) {
                crate::out!("skip  {} ({}): {why}", f.display(), run.name);
                continue;
            }
        }
        let name = run.name.clone();
        let code = match bridgelab::diff::diff_run(f, run, dockers, |s| bridgelab::Lab::from_scenario(s.clone())).await
        {
            Ok(report) => {
                crate::out!("{}", report.text(colour).trim_end());
                u8::from(!report.equal())
            }
            Err(e) => {
                eprintln!("{} ({name}): {}", f.display(), render_error(&e));
                e.exit_code() as u8
            }
        };
        worst = worst.max(code);
        // Signals end the whole diff.
        if code > 128 {
            break;
        }
    }
    worst
}

/// Why `firewall` cannot be diffed here, if it cannot.
fn no_daemon(dockers: &Dockers, firewall: Firewall) -> Option<String> {
    if bridgelab::diff::dockerd::prefix_of(firewall).is_none() {
        return Some(format!(
            "no real daemon for {firewall}: bridgelab has no dockerd of that version to compare with"
        ));
    }
    dockers.for_firewall(firewall).err().map(|e| format!("no real daemon for {firewall} here: {}", first_line(&e)))
}

fn first_line(e: &bridgelab::Error) -> String {
    e.to_string().lines().next().unwrap_or_default().to_string()
}
