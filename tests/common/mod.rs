//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// Root tests must run, not skip: without root this fails loudly.
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test builds network namespaces and needs root: run `sudo -E cargo test` \
         (CI runs it as root; it is never skipped)"
    );
}

/// Namespaces under /run/netns that belong to one run.
pub fn namespaces_of(run_id: &str) -> Vec<String> {
    bridgelab::registry::lab_namespaces()
        .into_iter()
        .filter(|n| bridgelab::registry::run_id_of(n) == Some(run_id))
        .collect()
}

pub fn scenario_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios").join(name)
}

pub fn bridgelab_bin() -> &'static str {
    env!("CARGO_BIN_EXE_bridgelab")
}

/// Writes a scenario into a temporary directory.
pub fn temp_scenario(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let p = dir.path().join(format!("{name}.toml"));
    std::fs::write(&p, text).unwrap();
    p
}
