//! `bridgelab down RUN`: remove a kept lab, or stop a served one.

use std::time::{Duration, Instant};

use super::fail;
use bridgelab::registry::{Registry, RunRecord, NETNS_DIR};

/// How long a served lab's owner may take to tear its lab down after
/// SIGTERM before `down` gives up waiting (a lab of thousands of nodes
/// takes seconds; RTNL contention more).
const SERVER_EXIT: Duration = Duration::from_secs(120);

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
    if rec.served && rec.owner_alive() {
        return stop_server(&reg, &rec);
    }
    if !rec.kept && rec.owner_alive() {
        eprintln!(
            "bridgelab: run {run_id} belongs to live process {}: it removes its lab itself when it ends",
            rec.pid
        );
        return 2;
    }
    remove(&reg, &rec)
}

fn remove(reg: &Registry, rec: &RunRecord) -> u8 {
    let paths: Vec<_> = rec.nodes.iter().map(|n| std::path::Path::new(NETNS_DIR).join(rec.namespace(n))).collect();
    match bridgelab::apply::remove_namespaces(reg, &rec.run_id, &paths, true) {
        Ok(()) => {
            println!("lab {} removed", rec.run_id);
            0
        }
        Err(e) => fail(&e),
    }
}

/// Asks the process serving the lab (`up --serve`) to end, as Ctrl-C
/// would: it removes its lab itself. Waits until it has exited; what a
/// server that died half-way left, this removes.
fn stop_server(reg: &Registry, rec: &RunRecord) -> u8 {
    use nix::sys::signal::{kill, Signal};
    let (id, pid) = (&rec.run_id, rec.pid);
    // owner_alive checked the start time just now: the pid is the server's.
    if let Err(e) = kill(nix::unistd::Pid::from_raw(pid as i32), Signal::SIGTERM) {
        eprintln!("bridgelab: cannot signal process {pid}, which serves lab {id}: {e}");
        return 3;
    }
    let deadline = Instant::now() + SERVER_EXIT;
    // The server is not our child: nothing to wait(2) on, so look again
    // until it is gone (or a zombie its parent has yet to reap).
    while rec.owner_alive() && !bridgelab::registry::is_zombie(pid) {
        if Instant::now() > deadline {
            eprintln!(
                "bridgelab: process {pid}, which serves lab {id}, did not end within {}s of SIGTERM",
                SERVER_EXIT.as_secs()
            );
            return 3;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    match reg.get(id) {
        None => {
            println!("lab {id} removed (its server, process {pid}, stopped)");
            0
        }
        // It ended without removing its lab (killed meanwhile): finish.
        Some(left) => remove(reg, &left),
    }
}
