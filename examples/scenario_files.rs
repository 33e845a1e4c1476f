//! Your own scenario files as Rust tests.
//!
//! In your crate: `bridgelab`, `rstest`, `insta` and `tokio` as
//! dev-dependencies, your scenarios in `scenarios/*.toml`, and one test per
//! file that builds its lab, checks every expectation on the wire, and
//! compares the lab's normalized rule and route tables with a committed
//! snapshot (`cargo insta review` accepts a new one). Here the files are in
//! `examples/scenarios/`; the snapshots land in `examples/snapshots/`.
//!
//! The tests build network namespaces, so they run as root (`sudo -E cargo
//! test`). Without root `check_environment` fails them with the reason:
//! they never skip.
//!
//! `cargo run --example scenario_files -- FILE...` does the same for any
//! files and prints the verdicts.

use std::path::{Path, PathBuf};

use bridgelab::Lab;

/// One lab from one file: build it, snapshot it, check it, take it down.
/// A failed assertion or a `?` drops the lab, which removes it.
async fn check_file(path: &Path) -> bridgelab::Result<(String, bridgelab::Checked)> {
    let mut running = Lab::load(path)?.up().await?;
    // Before the checks: `[[step]]`s would change the lab.
    let tables = running.snapshot().await?;
    let checked = running.check().await?;
    running.down()?;
    Ok((tables, checked))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let mut files: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    if files.is_empty() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/scenarios");
        files = std::fs::read_dir(dir).into_iter().flatten().flatten().map(|e| e.path()).collect();
        files.sort();
    }
    let mut ok = true;
    for f in &files {
        match check_file(f).await {
            Ok((_, checked)) => {
                ok &= checked.passed();
                println!("{}\n{checked}", f.display());
            }
            Err(e) => {
                ok = false;
                eprintln!("{}: {e}", f.display());
            }
        }
    }
    if ok {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    /// Every scenario file: its expectations hold, and its tables are the
    /// committed ones.
    #[rstest]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn scenario_holds(#[files("examples/scenarios/*.toml")] path: PathBuf) -> bridgelab::Result<()> {
        bridgelab::check_environment()?;
        let (tables, checked) = check_file(&path).await?;
        assert!(checked.passed(), "{}:\n{checked}", path.display());
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        insta::assert_snapshot!(name, tables);
        Ok(())
    }

    /// A file with a mistake fails with its location, before anything is built.
    #[test]
    fn a_mistake_is_located() {
        let dir = std::env::temp_dir().join(format!("bl-example-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("typo.toml");
        std::fs::write(&file, "[[container]]\nname = \"web\"\npublish = [\"80:99999\"]\n").unwrap();
        let err = Lab::load(&file).unwrap_err();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(err.to_string().starts_with(&format!("{}:3:", file.display())), "{err}");
    }
}
