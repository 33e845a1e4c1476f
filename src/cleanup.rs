//! Removing what dead runs left behind, never a live run's namespaces.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::apply::remove_namespaces;
use crate::error::{Error, Result};
use crate::registry::{lab_namespaces, run_id_of, Registry, Unreadable, LABS_NETNS_DIR, NETNS_DIR, STALE_TMP_AGE};

/// What `cleanup` did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CleanupReport {
    /// Run ids whose namespaces and record were removed.
    pub removed: Vec<String>,
    /// Run ids left alone because their owner is alive (or they are kept).
    pub live: Vec<String>,
    /// Records that do not parse: their labs are left alone, since whether
    /// their owner lives cannot be told.
    pub unreadable: Vec<Unreadable>,
    /// Half-written records (`*.json.tmp`) that no writer will finish.
    pub stale_tmp: Vec<PathBuf>,
}

/// Removes every dead run: a record whose owner is gone, and namespaces
/// whose run has no record. `include_kept` also removes labs kept by `up`.
///
/// Namespaces are listed *before* records. A run writes its record before
/// its first namespace and removes it after its last, so any namespace seen
/// here belongs to a record that existed when it was seen: one that is
/// missing afterwards belongs to a run that is already gone.
pub fn cleanup(registry: &Registry, include_kept: bool) -> Result<CleanupReport> {
    let mut by_run: BTreeMap<String, Vec<String>> = BTreeMap::new();
    // A lab's directory may outlive its names (a run killed between its
    // first mount and its first link): it counts as the run's too.
    for id in lab_dirs() {
        by_run.entry(id).or_default();
    }
    for ns in lab_namespaces() {
        if let Some(id) = run_id_of(&ns) {
            by_run.entry(id.to_string()).or_default().push(ns);
        }
    }
    let mut report = CleanupReport::default();
    let mut errors = Vec::new();
    let (records, unreadable) = registry.scan();
    for u in &unreadable {
        // Its namespaces are not orphans: their record exists, unread.
        by_run.remove(&u.run_id);
    }
    report.unreadable = unreadable;
    for rec in records {
        let live = if include_kept { rec.owner_alive() } else { rec.is_live() };
        let mut names = by_run.remove(&rec.run_id).unwrap_or_default();
        if live {
            report.live.push(rec.run_id);
            continue;
        }
        names.extend(rec.nodes.iter().map(|n| rec.namespace(n)));
        names.sort();
        names.dedup();
        // A real dockerd of `bridgelab diff` goes first, by its recorded
        // pids; the record stays until it is gone, so a later cleanup can
        // try again.
        if let Some(daemon) = &rec.daemon {
            let left = crate::diff::dockerd::reap(daemon);
            if !left.is_empty() {
                errors.extend(left.into_iter().map(|e| format!("run {}: {e}", rec.run_id)));
                continue;
            }
        }
        remove(registry, &rec.run_id, &names, &mut report, &mut errors);
    }
    for (id, names) in by_run {
        remove(registry, &id, &names, &mut report, &mut errors);
    }
    report.stale_tmp = registry.sweep_tmp(STALE_TMP_AGE);
    if errors.is_empty() {
        Ok(report)
    } else {
        Err(Error::Teardown(errors))
    }
}

/// Run ids of the labs' directories under [`LABS_NETNS_DIR`].
fn lab_dirs() -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(LABS_NETNS_DIR) else {
        return vec![];
    };
    dir.flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|id| crate::registry::check_run_id(id).is_ok())
        .collect()
}

fn remove(registry: &Registry, id: &str, names: &[String], report: &mut CleanupReport, errors: &mut Vec<String>) {
    let paths: Vec<_> = names.iter().map(|n| Path::new(NETNS_DIR).join(n)).collect();
    match remove_namespaces(registry, id, &paths, true) {
        Ok(()) => report.removed.push(id.to_string()),
        Err(Error::Teardown(e)) => errors.extend(e),
        Err(e) => errors.push(e.to_string()),
    }
}
