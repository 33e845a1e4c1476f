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
            for u in &report.unreadable {
                println!(
                    "left lab {} alone: its record {} does not parse ({}); fix or remove that file, then run cleanup again",
                    u.run_id,
                    u.path.display(),
                    u.reason
                );
            }
            for p in &report.stale_tmp {
                println!("removed half-written record {}", p.display());
            }
            if report.removed.is_empty() && report.stale_tmp.is_empty() {
                println!("nothing to clean up");
            }
            0
        }
        Err(e) => fail(&e),
    }
}
