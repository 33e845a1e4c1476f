//! The benchmark's own namespaces, and the proof that it left the root
//! namespace as it found it.
//!
//! Every namespace the peers use is made here, as `ip netns add` makes one
//! (`unshare` in a worker thread, bind-mount of `/proc/thread-self/ns/net`
//! under `/run/netns`), and named `bl-<bench id>-...`. The bench writes a run
//! record for `<bench id>` owned by its own process, so a concurrent
//! `bridgelab cleanup` leaves them alone while it runs, and removes them if
//! the bench is killed.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;

use bridgelab::registry::{self, Registry, RunRecord, NETNS_DIR};
use nix::libc;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};

/// A named namespace the bench made.
pub struct Ns {
    pub path: PathBuf,
    pub file: File,
}

pub fn path(name: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(name)
}

/// Creates the namespaces `names` one after another on one worker thread;
/// `inside` runs in each just after it is made (the floor opens its netlink
/// socket there). On error, what was made is removed.
pub fn create_with<T: Send>(
    dir: &Path,
    names: &[String],
    inside: impl Fn() -> io::Result<T> + Sync,
) -> io::Result<Vec<(Ns, T)>> {
    let made = std::thread::scope(|s| {
        s.spawn(|| {
            let mut made = Vec::new();
            for name in names {
                match create_one(&dir.join(name)).and_then(|ns| Ok((ns, inside()?))) {
                    Ok(x) => made.push(x),
                    Err(e) => return Err((made, e)),
                }
            }
            Ok(made)
        })
        .join()
        .unwrap_or_else(|_| Err((Vec::new(), io::Error::other("namespace worker panicked"))))
    });
    made.map_err(|(made, e)| {
        for (ns, _) in made {
            let _ = remove(&ns.path);
        }
        e
    })
}

pub fn create(names: &[String]) -> io::Result<Vec<Ns>> {
    Ok(create_with(Path::new(NETNS_DIR), names, || Ok(()))?.into_iter().map(|(ns, ())| ns).collect())
}

fn create_one(path: &Path) -> io::Result<Ns> {
    unshare(CloneFlags::CLONE_NEWNET).map_err(|e| io::Error::other(format!("unshare: {e}")))?;
    File::options().write(true).create_new(true).open(path)?;
    if let Err(e) = mount(Some("/proc/thread-self/ns/net"), path, None::<&str>, MsFlags::MS_BIND, None::<&str>) {
        let _ = std::fs::remove_file(path);
        return Err(io::Error::other(format!("bind mount {}: {e}", path.display())));
    }
    Ok(Ns { path: path.to_path_buf(), file: File::open(path)? })
}

/// Unmounts and unlinks a named namespace; one already gone is no error.
pub fn remove(path: &Path) -> io::Result<()> {
    match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => return Err(io::Error::other(format!("umount {}: {e}", path.display()))),
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Removes every namespace under `/run/netns` whose name starts with `prefix`.
pub fn remove_prefixed(prefix: &str) -> io::Result<usize> {
    let names = registry::lab_namespaces();
    let mut n = 0;
    for name in names.iter().filter(|n| n.starts_with(prefix)) {
        remove(&path(name))?;
        n += 1;
    }
    Ok(n)
}

/// A command that runs inside the namespace `ns`: the child joins it
/// before exec, so a peer acts on that namespace and nothing else.
pub fn command_in(ns: &File, program: impl AsRef<std::ffi::OsStr>) -> Command {
    use std::os::unix::process::CommandExt;
    let fd = ns.as_raw_fd();
    let mut cmd = Command::new(program);
    // SAFETY: setns is async-signal-safe; only the forked child runs it.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd
}

/// Interface names in a namespace, from `/proc/thread-self/net/dev` read by
/// a thread that joined it.
pub fn interfaces(ns: &File) -> io::Result<Vec<String>> {
    std::thread::scope(|s| {
        s.spawn(|| {
            setns(ns, CloneFlags::CLONE_NEWNET).map_err(|e| io::Error::other(format!("setns: {e}")))?;
            read_interfaces()
        })
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("worker panicked")))
    })
}

/// Interface names of the calling thread's namespace.
pub fn read_interfaces() -> io::Result<Vec<String>> {
    let text = std::fs::read_to_string("/proc/thread-self/net/dev")?;
    let mut v: Vec<String> =
        text.lines().skip(2).filter_map(|l| l.split(':').next()).map(|n| n.trim().to_string()).collect();
    v.sort();
    Ok(v)
}

/// The bench's run record: namespaces `bl-<id>-*` belong to this live
/// process, so `bridgelab cleanup` spares them until it ends.
pub struct BenchRecord {
    pub id: String,
    registry: Registry,
}

impl BenchRecord {
    pub fn write() -> io::Result<BenchRecord> {
        let pid = std::process::id();
        let id = format!("bench{pid:x}");
        let registry = Registry::default();
        registry.write(&RunRecord {
            run_id: id.clone(),
            scenario: "bench compare".into(),
            scenario_path: PathBuf::from("bench/compare"),
            pid,
            pid_start: registry::process_start_time(pid).unwrap_or(0),
            kept: false,
            nodes: Vec::new(),
            daemon: None,
            built_from: None,
            served: false,
        })?;
        Ok(BenchRecord { id, registry })
    }

    /// `bl-<id>-<what>-`: the prefix of one peer's namespaces.
    pub fn prefix(&self, what: &str) -> String {
        format!("{}{}-{what}-", registry::NS_PREFIX, self.id)
    }
}

impl Drop for BenchRecord {
    fn drop(&mut self) {
        let _ = remove_prefixed(&format!("{}{}-", registry::NS_PREFIX, self.id));
        let _ = self.registry.remove(&self.id);
    }
}

/// What the root namespace looks like to the rules: its links, the named
/// namespaces that are not bridgelab's (labs of other runs come and go),
/// and its firewall, without counters.
#[derive(Debug, PartialEq, Eq)]
pub struct RootState {
    links: Vec<String>,
    foreign_netns: Vec<String>,
    firewall: Vec<(String, String)>,
}

impl RootState {
    /// Read from the main thread, which never leaves the root namespace.
    pub fn read() -> RootState {
        let links = read_interfaces().unwrap_or_else(|e| vec![format!("unreadable: {e}")]);
        let mut foreign_netns: Vec<String> = std::fs::read_dir(NETNS_DIR)
            .map(|d| d.flatten().filter_map(|e| e.file_name().into_string().ok()).collect())
            .unwrap_or_default();
        foreign_netns.retain(|n| !n.starts_with(registry::NS_PREFIX));
        foreign_netns.sort();
        let mut firewall = Vec::new();
        for (prog, args) in [
            ("iptables-save", &[][..]),
            ("ip6tables-save", &[][..]),
            ("iptables-legacy-save", &[][..]),
            ("nft", &["-s", "list", "ruleset"][..]),
        ] {
            let out = match Command::new(prog).args(args).output() {
                Ok(o) => String::from_utf8_lossy(&o.stdout).into_owned(),
                Err(e) => format!("cannot run: {e}"),
            };
            let kept: Vec<String> = out.lines().filter(|l| !l.starts_with('#')).map(strip_counters).collect();
            firewall.push((prog.to_string(), kept.join("\n")));
        }
        RootState { links, foreign_netns, firewall }
    }

    /// What changed, for the error message.
    pub fn changes(&self, after: &RootState) -> Vec<String> {
        let mut v = Vec::new();
        if self.links != after.links {
            v.push(format!("root links {:?} -> {:?}", self.links, after.links));
        }
        if self.foreign_netns != after.foreign_netns {
            v.push(format!("/run/netns {:?} -> {:?}", self.foreign_netns, after.foreign_netns));
        }
        for ((prog, a), (_, b)) in self.firewall.iter().zip(&after.firewall) {
            if a != b {
                v.push(format!("{prog} of the root namespace changed"));
            }
        }
        v
    }
}

/// `:INPUT ACCEPT [12:345]` -> `:INPUT ACCEPT`.
fn strip_counters(line: &str) -> String {
    match (line.starts_with(':'), line.rfind(" [")) {
        (true, Some(i)) => line[..i].to_string(),
        _ => line.to_string(),
    }
}
