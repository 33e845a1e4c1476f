//! `bridgelab down RUN`: remove a kept lab.

use super::fail;
use bridgelab::registry::{Registry, NETNS_DIR};

pub fn run(run_id: &str) -> u8 {
    // The id names files and namespaces: check it before it is used as one.
    if let Err(e) = bridgelab::registry::check_run_id(run_id) {
        return fail(&e);
    }
    let reg = Registry::default();
    let Some(rec) = reg.get(run_id) else {
        if reg.contains(run_id) {
            eprintln!(
                "bridgelab: the record of run {run_id} in {} does not parse, so its namespaces are not known for sure: \
                 fix or remove that file, then run `bridgelab cleanup`",
                reg.dir().display()
            );
            return 3;
        }
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
