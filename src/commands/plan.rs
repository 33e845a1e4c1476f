//! `bridgelab plan FILE`: the simulator's answer, without privileges.

use std::path::Path;

use super::{fail, print_json, Format};

pub fn run(file: &Path, format: Format) -> u8 {
    match bridgelab::Lab::load(file) {
        Ok(lab) => {
            match format {
                Format::Text => print!("{}", lab.plan()),
                Format::Json => print_json(lab.plan()),
            }
            0
        }
        Err(e) => fail(&e),
    }
}
