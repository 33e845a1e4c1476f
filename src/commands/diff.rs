//! `bridgelab diff FILE…`: each scenario on a real dockerd and in
//! bridgelab's lab, compared.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

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
        let code = match bridgelab::diff::diff_file(f, &dockers).await {
            Ok(report) => {
                crate::out!("{}", report.text(colour).trim_end());
                u8::from(!report.equal())
            }
            Err(e) => {
                eprintln!("{}", render_error(&e));
                e.exit_code() as u8
            }
        };
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
