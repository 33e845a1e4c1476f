//! `bridgelab plan FILE`: the simulator's answer, without privileges.

use std::path::Path;

use super::{fail, print_json, Format};

pub fn run(file: &Path, format: Format) -> u8 {
    match bridgelab::Lab::load_all(file) {
        Ok(labs) => {
            // A file with `versions` has a plan per version: each under its
            // run's name in text, an array of them in JSON.
            let many = labs.len() > 1;
            match format {
                Format::Text => {
                    for (i, lab) in labs.iter().enumerate() {
                        if many {
                            println!("{}== {} ==", if i > 0 { "\n" } else { "" }, lab.scenario().name);
                        }
                        print!("{}", lab.plan());
                    }
                }
                Format::Json if many => print_json(&labs.iter().map(|l| l.plan()).collect::<Vec<_>>()),
                Format::Json => print_json(labs[0].plan()),
            }
            0
        }
        Err(e) => fail(&e),
    }
}
