//! `bridgelab cleanup`: remove what dead runs left.

use super::fail;
use bridgelab::registry::Registry;

pub fn run(all: bool) -> u8 {
    match bridgelab::cleanup::cleanup(&Registry::default(), all) {
        Ok(report) => {
            for id in &report.removed {
                println!("removed lab {id}");
            }
            for id in &report.live {
                println!("left live lab {id} alone");
            }
            if report.removed.is_empty() {
                println!("nothing to clean up");
            }
            0
        }
        Err(e) => fail(&e),
    }
}
