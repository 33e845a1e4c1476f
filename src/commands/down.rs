//! `bridgelab down RUN`: remove a kept lab.

use super::fail;
use bridgelab::registry::{Registry, NETNS_DIR};

pub fn run(run_id: &str) -> u8 {
    let reg = Registry::default();
    let Some(rec) = reg.get(run_id) else {
        return fail(&bridgelab::Error::NoSuchRun(run_id.to_string()));
    };
    if !rec.kept && rec.owner_alive() {
        eprintln!(
            "bridgelab: run {run_id} belongs to live process {}: it removes its lab itself when it ends",
            rec.pid
        );
        return 2;
    }
    let paths: Vec<_> = rec.nodes.iter().map(|n| std::path::Path::new(NETNS_DIR).join(rec.namespace(n))).collect();
    match bridgelab::apply::remove_namespaces(&reg, run_id, &paths) {
        Ok(()) => {
            println!("lab {run_id} removed");
            0
        }
        Err(e) => fail(&e),
    }
}
