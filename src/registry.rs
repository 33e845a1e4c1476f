//! Which labs exist on this machine, who owns them, and whether that owner
//! is still alive.
//!
//! Every lab writes a record to `/run/bridgelab/runs/<run id>.json` *before*
//! it creates its first namespace and removes it *after* its last namespace is
//! gone. So a `bl-<run id>-*` namespace always has a record while its run is
//! in progress, and `cleanup` can tell a live run (record, owner alive) from a
//! dead one (owner gone, or no record at all) without guessing.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Where records live: tmpfs, so a reboot (which also drops every namespace)
/// clears them too.
pub const RUNS_DIR: &str = "/run/bridgelab/runs";
/// Where named network namespaces are bind-mounted, as `ip netns` expects.
pub const NETNS_DIR: &str = "/run/netns";
/// Prefix of every namespace bridgelab creates.
pub const NS_PREFIX: &str = "bl-";

/// One lab's record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    pub run_id: String,
    pub scenario: String,
    pub scenario_path: PathBuf,
    /// The process that builds (and, unless kept, owns) the lab.
    pub pid: u32,
    /// The owner's start time in clock ticks since boot (`/proc/PID/stat`
    /// field 22), so a recycled pid is not mistaken for the owner.
    pub pid_start: u64,
    /// Kept by `bridgelab up`: it outlives its owner until `bridgelab down`.
    pub kept: bool,
    /// Node names, in creation order; namespace `bl-<run id>-<node>`.
    pub nodes: Vec<String>,
}

impl RunRecord {
    pub fn namespace(&self, node: &str) -> String {
        namespace_name(&self.run_id, node)
    }

    /// Whether the owning process still runs.
    pub fn owner_alive(&self) -> bool {
        process_start_time(self.pid).is_some_and(|t| t == self.pid_start)
    }

    /// Live labs are left alone by `cleanup`: owner alive, or kept on purpose.
    pub fn is_live(&self) -> bool {
        self.kept || self.owner_alive()
    }
}

/// The longest node name used as it is in a namespace name. Longer ones
/// (Docker takes container names of any length) would pass NAME_MAX (255)
/// for the file under `/run/netns`, so they are shortened.
pub const NODE_IN_NAMESPACE: usize = 200;

/// `bl-<run id>-<node>`; for a node name longer than [`NODE_IN_NAMESPACE`],
/// `bl-<run id>-<first 64 characters>~<hash of the name>`. `~` cannot occur
/// in a container name, so a shortened name never meets a plain one. Going
/// back from a namespace to its node takes the run record's node list.
pub fn namespace_name(run_id: &str, node: &str) -> String {
    if node.len() <= NODE_IN_NAMESPACE {
        return format!("{NS_PREFIX}{run_id}-{node}");
    }
    let cut = node.char_indices().nth(64).map(|(i, _)| i).unwrap_or(node.len());
    let hash = crate::stable_hash::fnv1a(&["namespace", node]);
    format!("{NS_PREFIX}{run_id}-{}~{hash:016x}", &node[..cut])
}

fn record_path(dir: &Path, run_id: &str) -> PathBuf {
    dir.join(format!("{run_id}.json"))
}

/// Field 22 of `/proc/PID/stat`: when the process started.
pub fn process_start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces: count from its closing paren.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(19)?.parse().ok()
}

/// The records directory, so tests can use a private one.
#[derive(Debug, Clone)]
pub struct Registry {
    dir: PathBuf,
}

impl Default for Registry {
    fn default() -> Self {
        Registry { dir: PathBuf::from(RUNS_DIR) }
    }
}

impl Registry {
    pub fn at(dir: impl Into<PathBuf>) -> Registry {
        Registry { dir: dir.into() }
    }

    /// Writes a record atomically (write then rename).
    pub fn write(&self, rec: &RunRecord) -> io::Result<()> {
        fs::create_dir_all(&self.dir)?;
        let path = record_path(&self.dir, &rec.run_id);
        let tmp = path.with_extension("json.tmp");
        fs::write(&tmp, serde_json::to_vec_pretty(rec).map_err(io::Error::other)?)?;
        fs::rename(tmp, path)
    }

    pub fn remove(&self, run_id: &str) -> io::Result<()> {
        match fs::remove_file(record_path(&self.dir, run_id)) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            r => r,
        }
    }

    pub fn get(&self, run_id: &str) -> Option<RunRecord> {
        let text = fs::read(record_path(&self.dir, run_id)).ok()?;
        serde_json::from_slice(&text).ok()
    }

    /// All records, sorted by run id; unreadable files are skipped.
    pub fn list(&self) -> Vec<RunRecord> {
        let Ok(dir) = fs::read_dir(&self.dir) else {
            return vec![];
        };
        let mut v: Vec<RunRecord> = dir
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .filter_map(|e| serde_json::from_slice(&fs::read(e.path()).ok()?).ok())
            .collect();
        v.sort_by(|a, b| a.run_id.cmp(&b.run_id));
        v
    }
}

/// Names of bridgelab namespaces under `/run/netns`, sorted.
pub fn lab_namespaces() -> Vec<String> {
    let Ok(dir) = fs::read_dir(NETNS_DIR) else {
        return vec![];
    };
    let mut v: Vec<String> =
        dir.flatten().filter_map(|e| e.file_name().into_string().ok()).filter(|n| n.starts_with(NS_PREFIX)).collect();
    v.sort();
    v
}

/// The run id part of `bl-<run id>-<node>`.
pub fn run_id_of(ns: &str) -> Option<&str> {
    ns.strip_prefix(NS_PREFIX)?.split_once('-').map(|(id, _)| id)
}

/// A fresh run id: 8 hex digits from the kernel's random pool.
pub fn new_run_id() -> String {
    let mut b = [0u8; 4];
    if fs::File::open("/dev/urandom").and_then(|mut f| io::Read::read_exact(&mut f, &mut b)).is_err() {
        // Not secret, only unique: fall back to pid and time.
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        b = (std::process::id() ^ t.subsec_nanos()).to_be_bytes();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_liveness_uses_pid_and_start_time() {
        let dir = tempfile::tempdir().unwrap();
        let reg = Registry::at(dir.path());
        let me = std::process::id();
        let mut rec = RunRecord {
            run_id: "0a1b2c3d".into(),
            scenario: "s".into(),
            scenario_path: "s.toml".into(),
            pid: me,
            pid_start: process_start_time(me).unwrap(),
            kept: false,
            nodes: vec!["host".into()],
        };
        reg.write(&rec).unwrap();
        assert_eq!(reg.list().len(), 1);
        assert!(reg.get("0a1b2c3d").unwrap().is_live());
        // Same pid, different start time: a recycled pid, so the run is dead.
        rec.pid_start += 1;
        assert!(!rec.is_live());
        rec.kept = true;
        assert!(rec.is_live());
        reg.remove("0a1b2c3d").unwrap();
        reg.remove("0a1b2c3d").unwrap();
        assert!(reg.list().is_empty());
    }

    #[test]
    fn long_node_names_make_short_distinct_namespace_names() {
        assert_eq!(namespace_name("0a1b2c3d", "web"), "bl-0a1b2c3d-web");
        let at_limit = "a".repeat(NODE_IN_NAMESPACE);
        assert_eq!(namespace_name("0a1b2c3d", &at_limit), format!("bl-0a1b2c3d-{at_limit}"));
        let long = "a".repeat(65_536);
        let other = format!("{}b", "a".repeat(65_535));
        let (n1, n2) = (namespace_name("0123456789abcdef", &long), namespace_name("0123456789abcdef", &other));
        assert_ne!(n1, n2);
        // NAME_MAX, with the longest run id `up` accepts.
        assert!(n1.len() <= 255 && n2.len() <= 255, "{n1}");
        assert!(n1.starts_with(&format!("bl-0123456789abcdef-{}~", "a".repeat(64))), "{n1}");
        assert_eq!(run_id_of(&n1), Some("0123456789abcdef"));
        assert_eq!(namespace_name("0123456789abcdef", &long), n1, "stable");
    }

    #[test]
    fn run_ids_are_parsed_from_namespace_names() {
        assert_eq!(run_id_of("bl-0a1b2c3d-web-1"), Some("0a1b2c3d"));
        assert_eq!(run_id_of("other"), None);
        assert_eq!(new_run_id().len(), 8);
    }
}
