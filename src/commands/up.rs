//! `bridgelab up FILE`: build a lab and keep it; with `--serve`, keep it
//! with its proxies and responders until `down` or a signal.

use std::path::Path;

use super::fail;
use bridgelab::registry::Registry;

pub async fn run(file: &Path, serve: bool) -> u8 {
    let lab = match bridgelab::Lab::load(file) {
        Ok(l) => l,
        Err(e) => return fail(&e),
    };
    let running = match lab.up().await {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    let mismatches = match running.verify().await {
        Ok(m) => m,
        Err(e) => return fail(&e),
    };
    if serve {
        return serve_lab(file, running, &mismatches).await;
    }
    let namespaces = running.namespaces();
    let spec = &running.scenario().spec;
    let in_process = !running.plan().port_mappings.is_empty()
        || !spec.external.listen.is_empty()
        || spec.containers.iter().any(|c| !c.listen.is_empty());
    let run_id = match running.detach() {
        Ok(id) => id,
        Err(e) => return fail(&e),
    };
    crate::out!("lab {run_id} is up ({})", file.display());
    for ns in &namespaces {
        crate::out!("  ip netns exec {ns} ip addr");
    }
    for m in &mismatches {
        crate::out!("  differs from plan: {m}");
    }
    if in_process {
        crate::out!("note: published ports have no userland proxy and `listen` no responder in a kept lab: both live in bridgelab's own process (`bridgelab up --serve` keeps them)");
    }
    crate::out!("remove it with: bridgelab down {run_id}");
    if mismatches.is_empty() {
        0
    } else {
        1
    }
}

/// Aborts the socket task and removes its file, whichever way serving ends.
struct SocketGuard {
    task: tokio::task::JoinHandle<()>,
    path: std::path::PathBuf,
}

impl Drop for SocketGuard {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Runs the lab's responders (its proxies run since it was built) and
/// waits for a signal: `down` from another shell sends SIGTERM, Ctrl-C
/// SIGINT. `interruptible` then drops this future, and with it, in this
/// order, the socket, the responders and the lab, which removes itself.
async fn serve_lab(file: &Path, mut running: bridgelab::RunningLab, mismatches: &[bridgelab::apply::Mismatch]) -> u8 {
    let run_id = running.run_id().to_string();
    if let Err(e) = running.name_namespaces() {
        return fail(&e);
    }
    let reg = Registry::default();
    // The record says who serves: `down` stops this process instead of
    // refusing a live owner's lab.
    let marked = match reg.get(&run_id) {
        Some(mut rec) => {
            rec.served = true;
            reg.write(&rec)
        }
        None => Err(std::io::Error::other("the run record is gone")),
    };
    if let Err(e) = marked {
        eprintln!("bridgelab: cannot mark lab {run_id} as served: {e}");
        return 3;
    }
    let responders = match bridgelab::probe::start_responders(&running) {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    let path = reg.socket_path(&run_id);
    let _socket = match bridgelab::probe::share::serve(responders.log.clone(), &path) {
        Ok(task) => SocketGuard { task, path },
        Err(e) => {
            eprintln!("bridgelab: cannot serve {}: {e}", path.display());
            return 3;
        }
    };
    crate::out!("lab {run_id} is up and served ({})", file.display());
    for ns in running.namespaces() {
        crate::out!("  ip netns exec {ns} ip addr");
    }
    for m in mismatches {
        crate::out!("  differs from plan: {m}");
    }
    let proxies = running.plan().port_mappings.len();
    let listens = bridgelab::probe::wanted_responders(&running).len();
    crate::out!("  {proxies} userland proxies, {listens} responders");
    crate::out!("probe it with: bridgelab probe {run_id} FROM TO PROBE");
    crate::out!("serving until `bridgelab down {run_id}` or Ctrl-C");
    std::future::pending::<u8>().await
}
