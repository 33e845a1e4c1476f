//! `bridgelab up FILE`: build a lab and keep it.

use std::path::Path;

use super::fail;

pub async fn run(file: &Path) -> u8 {
    let lab = match bridgelab::Lab::load(file) {
        Ok(l) => l,
        Err(e) => return fail(&e),
    };
    let opts = bridgelab::apply::UpOptions { keep: true, ..Default::default() };
    let running = match lab.up_with(opts).await {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    let mismatches = match running.verify().await {
        Ok(m) => m,
        Err(e) => return fail(&e),
    };
    let namespaces = running.namespaces();
    let run_id = running.detach();
    println!("lab {run_id} is up ({})", file.display());
    for ns in &namespaces {
        println!("  ip netns exec {ns} ip addr");
    }
    for m in &mismatches {
        println!("  differs from plan: {m}");
    }
    println!("remove it with: bridgelab down {run_id}");
    if mismatches.is_empty() {
        0
    } else {
        1
    }
}
