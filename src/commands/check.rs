//! `bridgelab check FILE…`: load, validate and plan, without privileges.

use std::path::PathBuf;

use super::fail;

pub fn run(files: &[PathBuf]) -> u8 {
    let mut worst = 0;
    for f in files {
        match bridgelab::Lab::load(f) {
            Ok(lab) => println!("ok    {} ({})", f.display(), lab.scenario().name),
            Err(e) => worst = worst.max(fail(&e)),
        }
    }
    worst
}
