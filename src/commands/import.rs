//! `bridgelab import`: a running Docker host as a scenario file.

use std::path::{Path, PathBuf};

use super::host::{fail, inferred, HostArgs, RuleArgs};

pub fn run(args: &HostArgs, rules: Option<&RuleArgs>, output: Option<&Path>) -> u8 {
    let path = output.map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("imported.toml"));
    let imported = match rules {
        None => args.import(&path),
        Some(r) => inferred(args, r, &path).map(|i| i.imported),
    };
    let imported = match imported {
        Ok(i) => i,
        Err(e) => return fail(&e),
    };
    match output {
        None => print!("{}", imported.text),
        Some(f) => {
            if let Err(e) = std::fs::write(f, &imported.text) {
                eprintln!("bridgelab: cannot write {}: {e}", f.display());
                return 3;
            }
            eprintln!(
                "bridgelab: wrote {} ({} containers, {} networks, {} approximations noted in it)",
                f.display(),
                imported.plan.containers.len(),
                imported.plan.networks.len(),
                imported.notes.len()
            );
        }
    }
    0
}
