//! `bridgelab up FILE`: build a lab and keep it.

use std::path::Path;

use super::fail;

pub async fn run(file: &Path) -> u8 {
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
        crate::out!("note: published ports have no userland proxy and `listen` no responder in a kept lab: both live in bridgelab's own process");
    }
    crate::out!("remove it with: bridgelab down {run_id}");
    if mismatches.is_empty() {
        0
    } else {
        1
    }
}
