//! `bridgelab check FILE…`: load, validate and plan, without privileges.

use std::path::PathBuf;

use super::fail;

pub fn run(files: &[PathBuf]) -> u8 {
    let mut worst = 0;
    for f in files {
        // A file with `versions` is planned under each of them.
        match bridgelab::Lab::load_all(f) {
            Ok(labs) => {
                for lab in labs {
                    println!("ok    {} ({})", f.display(), lab.scenario().name)
                }
            }
            Err(e) => worst = worst.max(fail(&e)),
        }
    }
    worst
}
