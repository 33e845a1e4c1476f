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
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Where records live: tmpfs, so a reboot (which also drops every namespace)
/// clears them too.
pub const RUNS_DIR: &str = "/run/bridgelab/runs";
/// Where named network namespaces are found, as `ip netns` expects: for
/// the labs bridgelab names (those kept or held for a person), a symbolic
/// link each into its lab's directory under [`LABS_NETNS_DIR`].
pub const NETNS_DIR: &str = "/run/netns";
/// Where each lab mounts a tmpfs of its own (`<run id>/`) and bind-mounts
/// its namespaces in it (see `apply::netns`).
pub const LABS_NETNS_DIR: &str = "/run/bridgelab/netns";

/// The directory holding the namespaces of run `run_id`.
pub fn lab_netns_dir(run_id: &str) -> PathBuf {
    Path::new(LABS_NETNS_DIR).join(run_id)
}

/// Where the namespace of `node` in run `run_id` is mounted, named under
/// `/run/netns` or not.
pub fn namespace_path(run_id: &str, node: &str) -> PathBuf {
    lab_netns_dir(run_id).join(namespace_name(run_id, node))
}
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
    /// A real Docker daemon that `bridgelab diff` runs in this lab's `host`
    /// namespace: what `cleanup` must stop before the namespaces go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daemon: Option<DaemonRecord>,
    /// What `probe`, `shell` and `snapshot` need to work on a kept or
    /// served lab from another process: the scenario as it was built.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub built_from: Option<BuiltFrom>,
    /// Served by `bridgelab up --serve`: its owner runs the lab's proxies
    /// and responders until it is stopped (`down` signals it), and answers
    /// on [`Registry::socket_path`] with what its responders see.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub served: bool,
}

/// The scenario a lab was built from, kept in its record so the lab's plan
/// can be made again in another process even if the file has changed or
/// gone since; and the plan's hash, so a plan made by another bridgelab
/// (whose simulator may differ) is noticed instead of trusted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuiltFrom {
    /// The scenario file's text, as it was read.
    pub text: String,
    /// [`plan_hash`] of the plan the lab was built from.
    pub plan_hash: String,
    /// For one run of a file with `versions`: the version it ran under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// A short fingerprint of a plan (its text form), stable across runs.
pub fn plan_hash(plan: &crate::plan::Plan) -> String {
    format!("{:016x}", crate::stable_hash::fnv1a(&["plan", &plan.to_string()]))
}

/// What a real dockerd started by `bridgelab diff` left on the machine,
/// so that `cleanup` can end it when its owner died: its processes, the
/// private mount namespace its helpers (containerd's shims, docker-proxy)
/// live in, the cgroup holding its containers, and its temporary directory.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonRecord {
    /// dockerd and containerd, as they were started.
    pub processes: Vec<RecordedProcess>,
    /// The inode of the daemon's private mount namespace: every process in
    /// it was started by the daemon.
    pub mount_ns: Option<u64>,
    /// The `--cgroup-parent` directory name (`bl-<run id>`) under each
    /// cgroup hierarchy: the containers' processes.
    pub cgroup: Option<String>,
    /// data-root, exec-root, sockets and logs.
    pub state_dir: Option<PathBuf>,
    /// The named network namespace the daemon runs in. A process of
    /// `mount_ns` counts as the daemon's only if it is in this one too: a
    /// freed mount namespace's inode number is handed out again, maybe to
    /// another run's daemon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_netns: Option<PathBuf>,
}

/// A process with its start time, so a recycled pid is never killed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedProcess {
    pub name: String,
    pub pid: u32,
    /// `/proc/PID/stat` field 22, as in [`RunRecord::pid_start`].
    pub start: u64,
}

impl RecordedProcess {
    /// Records a running process; `None` once it is gone.
    pub fn of(name: &str, pid: u32) -> Option<RecordedProcess> {
        Some(RecordedProcess { name: name.to_string(), pid, start: process_start_time(pid)? })
    }

    /// Whether this very process still runs (a zombie does not).
    pub fn alive(&self) -> bool {
        process_start_time(self.pid) == Some(self.start) && !is_zombie(self.pid)
    }
}

/// Whether `pid` has exited and waits to be reaped (state `Z` or `X`).
pub fn is_zombie(pid: u32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    stat.rfind(')').and_then(|i| stat.get(i + 2..i + 3)).is_some_and(|s| s == "Z" || s == "X")
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

/// Longest run id: it is part of every namespace name of the lab.
pub const MAX_RUN_ID: usize = 16;

/// Whether `id` can be a run id: 1 to 16 ASCII letters and digits. Run ids
/// become file and namespace names, so nothing else (no `/`, no `.`, no
/// `-`, which ends the run id in `bl-<run id>-<node>`) is accepted.
pub fn valid_run_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_RUN_ID && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// [`valid_run_id`] as an error for the user (exit code 2).
pub fn check_run_id(id: &str) -> Result<()> {
    if valid_run_id(id) {
        return Ok(());
    }
    // The id comes from the command line: quote only its start.
    let shown: String = id.chars().take(24).collect();
    let more = if shown.len() < id.len() { "…" } else { "" };
    Err(Error::InvalidRunId(format!("{shown:?}{more}")))
}

/// A record file that does not parse: `cleanup` leaves its lab alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    /// From the file name, `<run id>.json`.
    pub run_id: String,
    pub path: PathBuf,
    pub reason: String,
}

/// How old a `*.json.tmp` without a live owner must be before it counts as
/// left behind: a writer renames its temporary file at once.
pub const STALE_TMP_AGE: Duration = Duration::from_secs(10);

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

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes a record atomically (write then rename).
    pub fn write(&self, rec: &RunRecord) -> io::Result<()> {
        if !valid_run_id(&rec.run_id) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("invalid run id {:?}", rec.run_id)));
        }
        fs::create_dir_all(&self.dir)?;
        let path = record_path(&self.dir, &rec.run_id);
        let tmp = path.with_extension("json.tmp");
        fs::write(&tmp, serde_json::to_vec_pretty(rec).map_err(io::Error::other)?)?;
        fs::rename(tmp, path)
    }

    /// Removes a run's record, and the socket of its server (`up --serve`)
    /// if one was left (a killed server cannot remove its own).
    pub fn remove(&self, run_id: &str) -> io::Result<()> {
        if !valid_run_id(run_id) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("invalid run id {run_id:?}")));
        }
        for path in [self.socket_path(run_id), record_path(&self.dir, run_id)] {
            match fs::remove_file(path) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                r => r?,
            }
        }
        Ok(())
    }

    /// The Unix socket on which a served lab's owner answers with what its
    /// responders see: `<run id>.sock` beside the record.
    pub fn socket_path(&self, run_id: &str) -> PathBuf {
        self.dir.join(format!("{run_id}.sock"))
    }

    /// The record of `run_id`, if there is one and it parses.
    pub fn get(&self, run_id: &str) -> Option<RunRecord> {
        if !valid_run_id(run_id) {
            return None;
        }
        let text = fs::read(record_path(&self.dir, run_id)).ok()?;
        serde_json::from_slice(&text).ok()
    }

    /// Whether a record file exists for `run_id`, parsing or not.
    pub fn contains(&self, run_id: &str) -> bool {
        valid_run_id(run_id) && record_path(&self.dir, run_id).exists()
    }

    /// All records that parse, sorted by run id.
    pub fn list(&self) -> Vec<RunRecord> {
        self.scan().0
    }

    /// All records, sorted by run id: those that parse, and those that do
    /// not (or that name another run than their file does).
    pub fn scan(&self) -> (Vec<RunRecord>, Vec<Unreadable>) {
        let (mut good, mut bad) = (Vec::new(), Vec::new());
        let Ok(dir) = fs::read_dir(&self.dir) else {
            return (good, bad);
        };
        for e in dir.flatten() {
            let path = e.path();
            if path.extension().is_none_or(|x| x != "json") {
                continue;
            }
            let run_id = path.file_stem().unwrap_or_default().to_string_lossy().into_owned();
            let text = match fs::read(&path) {
                Ok(t) => t,
                // Removed since the listing: its run is gone.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => {
                    bad.push(Unreadable { run_id, path, reason: e.to_string() });
                    continue;
                }
            };
            match serde_json::from_slice::<RunRecord>(&text) {
                Ok(rec) if rec.run_id == run_id => good.push(rec),
                Ok(rec) => {
                    let reason = format!("it names run {:?}", rec.run_id);
                    bad.push(Unreadable { run_id, path, reason });
                }
                Err(e) => bad.push(Unreadable { run_id, path, reason: e.to_string() }),
            }
        }
        good.sort_by(|a, b| a.run_id.cmp(&b.run_id));
        bad.sort_by(|a, b| a.run_id.cmp(&b.run_id));
        (good, bad)
    }

    /// Removes `*.json.tmp` files that no writer will rename any more: those
    /// whose owner is dead, and those that do not parse and are older than
    /// `max_age`. A live owner's file is never touched. Returns what was removed.
    pub fn sweep_tmp(&self, max_age: Duration) -> Vec<PathBuf> {
        let Ok(dir) = fs::read_dir(&self.dir) else {
            return vec![];
        };
        let mut removed = Vec::new();
        for e in dir.flatten() {
            let path = e.path();
            if !path.file_name().is_some_and(|n| n.to_string_lossy().ends_with(".json.tmp")) {
                continue;
            }
            let stale = match fs::read(&path).ok().and_then(|t| serde_json::from_slice::<RunRecord>(&t).ok()) {
                Some(rec) => !rec.owner_alive(),
                // Half written: only its writer could finish it, and a
                // writer finishes at once.
                None => {
                    e.metadata().and_then(|m| m.modified()).is_ok_and(|t| t.elapsed().is_ok_and(|age| age > max_age))
                }
            };
            if stale && fs::remove_file(&path).is_ok() {
                removed.push(path);
            }
        }
        removed.sort();
        removed
    }
}

/// Names of bridgelab namespaces, sorted: those mounted in a lab's
/// directory and those named under `/run/netns` (the same, for a named lab
/// that is whole), each once.
pub fn lab_namespaces() -> Vec<String> {
    let names = |dir: &Path| -> Vec<String> {
        let Ok(dir) = fs::read_dir(dir) else { return vec![] };
        dir.flatten().filter_map(|e| e.file_name().into_string().ok()).filter(|n| n.starts_with(NS_PREFIX)).collect()
    };
    let mut v = names(Path::new(NETNS_DIR));
    if let Ok(labs) = fs::read_dir(LABS_NETNS_DIR) {
        for lab in labs.flatten() {
            v.extend(names(&lab.path()));
        }
    }
    v.sort();
    v.dedup();
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
            daemon: None,
            built_from: None,
            served: false,
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

    fn record(run_id: &str, pid: u32, pid_start: u64) -> RunRecord {
        RunRecord {
            run_id: run_id.into(),
            scenario: "s".into(),
            scenario_path: "s.toml".into(),
            pid,
            pid_start,
            kept: false,
            nodes: vec!["host".into()],
            daemon: None,
            built_from: None,
            served: false,
        }
    }

    /// A pid and start time that belonged to a process that has exited.
    fn dead_owner() -> (u32, u64) {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let start = process_start_time(pid).unwrap_or(1);
        child.wait().unwrap();
        (pid, start)
    }

    #[test]
    fn run_ids_are_letters_and_digits_only() {
        for ok in ["a", "0a1b2c3d", "ABCdef0123456789"] {
            assert!(valid_run_id(ok), "{ok}");
            assert!(check_run_id(ok).is_ok());
        }
        for bad in ["", "../x", "a/b", "a-b", "a.b", "a b", "0123456789abcdefg", "é"] {
            assert!(!valid_run_id(bad), "{bad}");
            let e = check_run_id(bad).unwrap_err();
            assert_eq!(e.exit_code(), 2);
            assert!(e.to_string().starts_with("invalid run id"), "{e}");
        }
        // A long id is quoted only in part.
        assert!(check_run_id(&"x".repeat(100_000)).unwrap_err().to_string().len() < 200);
        let dir = tempfile::tempdir().unwrap();
        let reg = Registry::at(dir.path().join("runs"));
        assert!(reg.get("../x").is_none());
        assert_eq!(reg.remove("../x").unwrap_err().kind(), io::ErrorKind::InvalidInput);
        assert_eq!(reg.write(&record("../x", 1, 1)).unwrap_err().kind(), io::ErrorKind::InvalidInput);
        assert!(!dir.path().join("x.json").exists());
    }

    #[test]
    fn records_that_do_not_parse_are_reported_not_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let reg = Registry::at(dir.path());
        reg.write(&record("good", 1, 1)).unwrap();
        fs::write(dir.path().join("torn.json"), b"{\"run_id\": \"torn\", \"pi").unwrap();
        fs::write(dir.path().join("other.json"), serde_json::to_vec(&record("good", 1, 1)).unwrap()).unwrap();
        let (good, bad) = reg.scan();
        assert_eq!(good.iter().map(|r| r.run_id.as_str()).collect::<Vec<_>>(), ["good"]);
        assert_eq!(bad.iter().map(|u| u.run_id.as_str()).collect::<Vec<_>>(), ["other", "torn"]);
        assert!(bad[0].reason.contains("names run \"good\""), "{:?}", bad[0]);
        assert!(reg.contains("torn") && reg.get("torn").is_none());
    }

    #[test]
    fn only_stale_temporary_records_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let reg = Registry::at(dir.path());
        let tmp = |id: &str| dir.path().join(format!("{id}.json.tmp"));
        let me = std::process::id();
        let (dead_pid, dead_start) = dead_owner();
        fs::write(tmp("mine"), serde_json::to_vec(&record("mine", me, process_start_time(me).unwrap())).unwrap())
            .unwrap();
        fs::write(tmp("dead"), serde_json::to_vec(&record("dead", dead_pid, dead_start)).unwrap()).unwrap();
        fs::write(tmp("young"), b"{\"run_id").unwrap();
        fs::write(tmp("old"), b"{\"run_id").unwrap();
        let an_hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
        fs::File::options().write(true).open(tmp("old")).unwrap().set_modified(an_hour_ago).unwrap();
        // A record proper is never swept, whatever its age.
        reg.write(&record("kept", dead_pid, dead_start)).unwrap();

        assert_eq!(reg.sweep_tmp(STALE_TMP_AGE), [tmp("dead"), tmp("old")]);
        assert!(tmp("mine").exists() && tmp("young").exists());
        assert!(reg.get("kept").is_some());
        assert!(reg.sweep_tmp(STALE_TMP_AGE).is_empty());
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
