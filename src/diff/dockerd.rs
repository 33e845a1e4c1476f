//! A real dockerd, with its own containerd and runc, inside a host
//! namespace that bridgelab built.
//!
//! The process layout (see `docs/diff.md` for why each piece is there):
//!
//! * containerd is started in the host namespace (`setns`) and a private
//!   mount namespace of its own (`unshare(CLONE_NEWNS)`, everything made
//!   private). Before it runs, that mount namespace gets a tmpfs on `/run`
//!   (containerd's shims hard-code `/run/containerd/s/…`, and dockerd
//!   would fall back to `/run/docker*`), a sysfs of the host namespace on
//!   `/sys` (libnetwork reads bridges there) and the machine's cgroup tree
//!   bound back under it (runc needs it).
//! * dockerd joins that same mount namespace and the host namespace, so it
//!   shares containerd's mounts (overlay rootfs, netns bind mounts), with a
//!   private `--data-root`, `--exec-root`, `--pidfile`, `-H unix://` socket
//!   and `--config-file` in a temporary directory, and `--cgroup-parent
//!   /bl-<run id>` for its containers. Its `daemon.json` sets
//!   `deprecated-key-path`, or dockerd 20.10 writes `/etc/docker/key.json`.
//! * Nothing runs in, or is written to, the namespaces bridgelab was started
//!   in, apart from the temporary directory (on disk, so that the docker
//!   CLI reaches the socket) and the containers' cgroups.
//!
//! Every process is recorded in the lab's run record
//! ([`DaemonRecord`](crate::registry::DaemonRecord)) as soon as it exists.
//! [`Daemon`] ends them on every path (its `Drop` included) with
//! [`reap`], which `bridgelab cleanup` also runs for a record whose owner
//! died: SIGTERM, SIGKILL after a bound, then whatever is left in the
//! private mount namespace or the containers' cgroup, then the cgroups and
//! the temporary directory.

use std::ffi::OsString;

use std::fs::{self, File};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::error::{Error, Result};
use crate::registry::{DaemonRecord, RecordedProcess, Registry};
use crate::scenario::Firewall;

/// Where `.ci/run` (`ci/install-docker20.sh`) unpacks Debian 12's
/// docker.io 20.10, containerd, runc, tini and busybox-static.
pub const PREFIX: &str = "/opt/bl-docker20";
/// Where `ci/install-docker28.sh` unpacks Debian sid's docker.io and
/// docker-cli 28.5.2 with bookworm's containerd, runc, tini and
/// busybox-static.
pub const PREFIX28: &str = "/opt/bl-docker28";

/// The prefix bridgelab looks in first for the dockerd of `firewall`.
pub fn prefix_of(firewall: Firewall) -> Option<&'static str> {
    match firewall {
        Firewall::Docker20 => Some(PREFIX),
        Firewall::Docker28 => Some(PREFIX28),
        _ => None,
    }
}

/// How long the daemon may take to answer on its socket.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long dockerd and containerd get after SIGTERM before SIGKILL. A
/// dockerd stops its running containers first, each with its stop timeout
/// (1 s: every container runs under `--init`, which ends at once).
const TERM_GRACE: Duration = Duration::from_secs(15);
/// How long a SIGKILLed process may take to be gone.
const KILL_GRACE: Duration = Duration::from_secs(5);
/// A docker CLI call that takes longer than this is stuck.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// How to install a usable daemon for `firewall` (both when `None`), for
/// the exit-3 message.
pub fn install_hint(firewall: Option<Firewall>) -> String {
    let docker20 = format!(
        "for firewall = \"docker20\", Debian 12's docker.io 20.10 with containerd, runc, tini and \
         busybox-static. Do not install docker.io as a package (its init scripts start a dockerd in this \
         namespace): unpack it into {PREFIX} with `sudo ./ci/install-docker20.sh` from bridgelab's sources, or by \
         hand on Debian 12:\n\
         \x20   apt-get install libdevmapper1.02.1 libseccomp2\n\
         \x20   cd \"$(mktemp -d)\" && chmod 777 . && apt-get download docker.io containerd runc tini busybox-static\n\
         \x20   for d in *.deb; do dpkg-deb -x \"$d\" {PREFIX}; done\n\
         bridgelab diff finds {PREFIX}/usr/sbin/dockerd by itself"
    );
    let docker28 = format!(
        "for firewall = \"docker28\", Debian sid's docker.io and docker-cli 28.5.2 with bookworm's containerd, \
         runc, tini and busybox-static, unpacked (never installed) into {PREFIX28} by \
         `sudo ./ci/install-docker28.sh` from bridgelab's sources. It fetches them from Debian's archive with an \
         apt configuration of its own (the system's sources stay as they are), or, once sid has moved on, takes \
         the sha256-checked copies in BL_DEBS. bridgelab diff finds {PREFIX28}/usr/sbin/dockerd by itself"
    );
    let which = match firewall {
        Some(Firewall::Docker20) => docker20,
        Some(Firewall::Docker28) => docker28,
        _ => format!("{docker20}.\nAnd {docker28}"),
    };
    format!(
        "bridgelab diff runs a real dockerd: {which}; or pass --docker PATH (a dockerd whose containerd, runc, \
         docker-init, docker-proxy and docker CLI sit beside it or on PATH)"
    )
}

/// The daemon's programs, found next to dockerd or on PATH.
#[derive(Debug, Clone)]
pub struct Tools {
    pub dockerd: PathBuf,
    pub containerd: PathBuf,
    pub docker: PathBuf,
    /// A statically linked busybox: the containers' only program.
    pub busybox: PathBuf,
    /// What `dockerd --version` says, e.g. `20.10.24+dfsg1`.
    pub version: String,
    /// The daemon's PATH: its own prefix first (runc, docker-init,
    /// docker-proxy, containerd-shim-runc-v2), then bridgelab's.
    pub path: OsString,
}

fn no_docker(why: impl std::fmt::Display) -> Error {
    Error::Environment(format!("no usable dockerd: {why}\n{}", install_hint(None)))
}

/// The usable dockerds of this machine.
#[derive(Debug, Clone)]
pub struct Dockers {
    pub found: Vec<Tools>,
}

impl Dockers {
    /// The dockerd whose version is the Docker `firewall` imitates: the
    /// one in that firewall's own prefix ([`prefix_of`]) if it is there,
    /// else the first found.
    pub fn for_firewall(&self, firewall: Firewall) -> Result<&Tools> {
        let usable = || self.found.iter().filter(|t| check_version(firewall, &t.version).is_ok());
        let own = prefix_of(firewall).map(Path::new);
        if let Some(t) = usable().find(|t| own.is_some_and(|p| t.dockerd.starts_with(p))).or_else(|| usable().next()) {
            return Ok(t);
        }
        let why = match self.found.as_slice() {
            [one] => check_version(firewall, &one.version).err().unwrap_or_default(),
            all => {
                let seen: Vec<String> =
                    all.iter().map(|t| format!("{} ({})", t.version, t.dockerd.display())).collect();
                let need = check_version(firewall, "").err().unwrap_or_default();
                format!(
                    "{}; the dockerds found are {}",
                    need.split(", and this").next().unwrap_or(&need),
                    seen.join(", ")
                )
            }
        };
        let hint = match prefix_of(firewall) {
            Some(_) => format!("\n{}", install_hint(Some(firewall))),
            None => String::new(),
        };
        Err(Error::Environment(format!("no usable dockerd: {why}{hint}")))
    }
}

/// Every usable dockerd: `explicit` alone, or else `dockerd` on PATH,
/// [`PREFIX`]`/usr/sbin/dockerd` and [`PREFIX28`]`/usr/sbin/dockerd`, in
/// that order. None usable is an error
/// that says why for each, and how to install one.
pub fn find_dockers(explicit: Option<&Path>) -> Result<Dockers> {
    let system_path = std::env::var_os("PATH")
        .unwrap_or_else(|| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    let candidates: Vec<PathBuf> = match explicit {
        Some(p) if p.is_file() => vec![p.to_path_buf()],
        Some(p) => return Err(no_docker(format!("{} is not a file", p.display()))),
        None => which("dockerd", &system_path)
            .into_iter()
            .chain(
                [PREFIX, PREFIX28].map(|p| Path::new(p).join("usr/sbin/dockerd")).into_iter().filter(|p| p.is_file()),
            )
            .collect(),
    };
    if candidates.is_empty() {
        return Err(no_docker(format!("no dockerd on PATH, in {PREFIX} or in {PREFIX28}")));
    }
    let mut found: Vec<Tools> = Vec::new();
    let mut reasons = Vec::new();
    for c in candidates {
        match tools_of(&c, &system_path) {
            Ok(t) if found.iter().any(|f| f.dockerd == t.dockerd) => {}
            Ok(t) => found.push(t),
            Err(why) => reasons.push(why),
        }
    }
    if found.is_empty() {
        return Err(no_docker(reasons.join("; ")));
    }
    Ok(Dockers { found })
}

/// A dockerd with the programs it needs (beside it, or on PATH) and its version.
fn tools_of(dockerd: &Path, system_path: &std::ffi::OsStr) -> std::result::Result<Tools, String> {
    let dockerd = fs::canonicalize(dockerd).unwrap_or_else(|_| dockerd.to_path_buf());
    // A prefix as dpkg-deb -x lays it out: PREFIX/usr/sbin/dockerd.
    let mut dirs: Vec<PathBuf> = dockerd.parent().into_iter().map(Path::to_path_buf).collect();
    let mut prefix = dockerd.parent().and_then(Path::parent);
    if prefix.is_some_and(|p| p.ends_with("usr")) {
        prefix = prefix.and_then(Path::parent);
    }
    if let Some(p) = prefix {
        for d in ["usr/sbin", "usr/bin", "sbin", "bin", "usr/libexec/docker"] {
            let d = p.join(d);
            if d.is_dir() && !dirs.contains(&d) {
                dirs.push(d);
            }
        }
    }
    let path = std::env::join_paths(dirs.iter().cloned().chain(std::env::split_paths(system_path)))
        .map_err(|e| format!("bad PATH: {e}"))?;
    let need = |name: &str| {
        which(name, &path).ok_or_else(|| format!("{name} not found beside {} or on PATH", dockerd.display()))
    };
    let containerd = need("containerd")?;
    let docker = need("docker")?;
    for helper in ["runc", "docker-init", "docker-proxy", "containerd-shim-runc-v2"] {
        need(helper)?;
    }
    let busybox = prefix
        .map(|p| p.join("bin/busybox"))
        .into_iter()
        .chain([PathBuf::from("/bin/busybox"), PathBuf::from("/usr/bin/busybox")])
        .find(|p| is_static_elf(p))
        .ok_or("no statically linked busybox (busybox-static) for the containers' image")?;
    let out = std::process::Command::new(&dockerd)
        .arg("--version")
        .env("PATH", &path)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", dockerd.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let version = parse_version(&text)
        .ok_or_else(|| format!("{} --version said {:?}", dockerd.display(), text.trim()))?
        .to_string();
    Ok(Tools { dockerd, containerd, docker, busybox, version, path })
}

fn which(name: &str, path: &std::ffi::OsStr) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(path)
        .map(|d| d.join(name))
        .find(|p| p.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

/// `Docker version 20.10.24+dfsg1, build 5d6db84` → `20.10.24+dfsg1`.
pub fn parse_version(text: &str) -> Option<&str> {
    let v = text.trim().strip_prefix("Docker version ")?;
    let v = v.split([',', ' ']).next()?;
    v.chars().next().filter(char::is_ascii_digit).map(|_| v)
}

/// Whether a dockerd of `version` is the Docker that `firewall` imitates;
/// `Err` says which one it needs.
pub fn check_version(firewall: Firewall, version: &str) -> std::result::Result<(), String> {
    let want = match firewall {
        Firewall::Docker20 => "20.10.",
        Firewall::Docker28 => "28.",
        Firewall::Docker29 => "29.",
        Firewall::Docker1 => {
            return Err(format!(
                "firewall = \"docker1\" imitates Docker 1.6.2, which needs a kernel and tools of 2015; \
                 bridgelab diff compares \"docker20\" (dockerd 20.10.x) and \"docker28\" (dockerd 28.x) scenarios, \
                 and this dockerd is {version}"
            ))
        }
    };
    if version.starts_with(want) {
        Ok(())
    } else {
        Err(format!("firewall = \"{firewall}\" needs dockerd {want}x, and this dockerd is {version}"))
    }
}

/// Whether `p` is an ELF executable without a program interpreter (a
/// static binary runs in an image that has no libc).
fn is_static_elf(p: &Path) -> bool {
    let Ok(b) = fs::read(p) else { return false };
    if b.len() < 64 || &b[..4] != b"\x7fELF" || b[4] != 2 || b[5] != 1 {
        return false; // 64-bit little-endian only: what Debian's amd64/arm64 ship
    }
    let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]) as usize;
    let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"));
    let phoff = u64::from_le_bytes(b[32..40].try_into().expect("8 bytes")) as usize;
    let (phentsize, phnum) = (u16_at(54), u16_at(56));
    (0..phnum).all(|i| {
        let at = phoff + i * phentsize;
        // PT_INTERP = 3
        at + 4 <= b.len() && u32_at(at) != 3
    })
}

/// What a docker CLI call printed.
#[derive(Debug, Clone)]
pub struct DockerOutput {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl DockerOutput {
    /// Docker's message for a failure: the CLI's stderr without the
    /// `Error response from daemon: ` it puts before the daemon's words,
    /// on one line.
    /// `docker run` puts `docker: ` first and `See 'docker run --help'.`
    /// (20.10) or `Run 'docker run --help' for more information` (28)
    /// after it; 28's `docker start` ends with `Error: failed to start
    /// containers: NAME`. All of that is the CLI's and goes.
    pub fn message(&self) -> String {
        let text = self.stderr.trim();
        let text = text.strip_prefix("docker: ").unwrap_or(text);
        let text = text.strip_prefix("Error response from daemon: ").unwrap_or(text);
        let cli_noise = |l: &str| {
            l.is_empty()
                || l.starts_with("See 'docker ") && l.ends_with("--help'.")
                || l.starts_with("Run 'docker ") && l.ends_with("--help' for more information")
                || l.starts_with("Error: failed to start containers: ")
        };
        text.lines().map(str::trim).filter(|l| !cli_noise(l)).collect::<Vec<_>>().join(" ")
    }
}

/// A running dockerd with its containerd. Dropping it ends both and
/// everything they started, and removes the cgroups and the temporary
/// directory.
pub struct Daemon {
    tools: Tools,
    run_id: String,
    dir: PathBuf,
    host_ns: File,
    flags: Vec<String>,
    containerd: Option<Child>,
    dockerd: Option<Child>,
    record: DaemonRecord,
    registry: Registry,
    ended: bool,
}

impl std::fmt::Debug for Daemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemon").field("run_id", &self.run_id).field("dir", &self.dir).finish()
    }
}

/// The `--cgroup-parent` of a run's containers.
pub fn cgroup_name(run_id: &str) -> String {
    format!("bl-{run_id}")
}

/// The temporary directory of a run's daemon: under `TMPDIR`, unless that
/// is so long that the sockets inside would not fit a unix socket address
/// (108 bytes), then under /tmp.
pub fn state_dir(run_id: &str) -> PathBuf {
    let name = format!("{STATE_PREFIX}{run_id}");
    let dir = std::env::temp_dir().join(&name);
    let longest = dir.join("containerd/containerd.sock.ttrpc");
    if longest.as_os_str().len() < 100 {
        dir
    } else {
        Path::new("/tmp").join(name)
    }
}

/// Name prefix of every daemon's temporary directory: `reap` removes no
/// other directory, whatever a record says.
pub const STATE_PREFIX: &str = "bridgelab-diff-";

fn env_err(what: impl std::fmt::Display, e: impl std::fmt::Display) -> Error {
    Error::Environment(format!("{what}: {e}"))
}

impl Daemon {
    /// Starts containerd and dockerd in the namespace `host_ns` (the host
    /// of lab `run_id`, whose run record gets the daemon's processes) and
    /// waits until dockerd answers. On error, whatever started is ended.
    pub async fn start(tools: &Tools, host_ns: &File, run_id: &str, flags: &[String]) -> Result<Daemon> {
        let dir = state_dir(run_id);
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| env_err(format!("cannot make {}", dir.display()), e))?;
        let mut d = Daemon {
            tools: tools.clone(),
            run_id: run_id.to_string(),
            dir: dir.clone(),
            host_ns: host_ns.try_clone().map_err(|e| env_err("dup the host namespace", e))?,
            flags: flags.to_vec(),
            containerd: None,
            dockerd: None,
            record: DaemonRecord {
                cgroup: Some(cgroup_name(run_id)),
                state_dir: Some(dir.clone()),
                host_netns: Some(crate::registry::namespace_path(run_id, "host")),
                ..Default::default()
            },
            registry: Registry::default(),
            ended: false,
        };
        // Recorded before anything starts: a crash from here on leaves
        // something `cleanup` knows about.
        d.save_record()?;
        d.write_configs()?;
        d.start_containerd().await?;
        d.start_dockerd().await?;
        Ok(d)
    }

    pub fn tools(&self) -> &Tools {
        &self.tools
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("docker.sock")
    }

    /// The temporary directory (data-root, exec-root, sockets, logs).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn write_configs(&mut self) -> Result<()> {
        let dir = &self.dir;
        let write = |name: &str, text: String| {
            fs::write(dir.join(name), text).map_err(|e| env_err(format!("cannot write {name}"), e))
        };
        write("daemon.json", serde_json::json!({ "deprecated-key-path": dir.join("key.json") }).to_string())?;
        let c = dir.join("containerd");
        // containerd: private root, state and sockets; no CRI plugin.
        write(
            "containerd.toml",
            format!(
                "version = 2\nroot = {root:?}\nstate = {state:?}\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
                 [grpc]\n  address = {sock:?}\n[ttrpc]\n  address = {ttrpc:?}\n[debug]\n  address = {debug:?}\n",
                root = c.join("root"),
                state = c.join("state"),
                sock = c.join("containerd.sock"),
                ttrpc = c.join("containerd.sock.ttrpc"),
                debug = c.join("debug.sock"),
            ),
        )?;
        for sub in ["containerd", "data", "exec", "cli"] {
            fs::create_dir_all(dir.join(sub)).map_err(|e| env_err(format!("cannot make {sub}"), e))?;
        }
        self.same_iptables()
    }

    /// With `BRIDGELAB_IPTABLES=legacy` (or `nft`) bridgelab reads rules
    /// with that variant, so dockerd must write them with it too: its
    /// PATH starts with a directory where `iptables` and its siblings are
    /// that variant.
    fn same_iptables(&mut self) -> Result<()> {
        let variant = match std::env::var("BRIDGELAB_IPTABLES").ok().as_deref() {
            Some(v @ ("legacy" | "nft")) => v.to_string(),
            _ => return Ok(()),
        };
        let bin = self.dir.join("bin");
        fs::create_dir_all(&bin).map_err(|e| env_err("cannot make bin", e))?;
        for (tool, suffix) in [
            ("iptables", ""),
            ("iptables", "-save"),
            ("iptables", "-restore"),
            ("ip6tables", ""),
            ("ip6tables", "-save"),
            ("ip6tables", "-restore"),
        ] {
            let Some(target) = which(&format!("{tool}-{variant}{suffix}"), &self.tools.path) else { continue };
            std::os::unix::fs::symlink(&target, bin.join(format!("{tool}{suffix}")))
                .map_err(|e| env_err(format!("cannot link {}", target.display()), e))?;
        }
        let path = std::env::join_paths(std::iter::once(bin).chain(std::env::split_paths(&self.tools.path)))
            .map_err(|e| env_err("PATH", e))?;
        self.tools.path = path;
        Ok(())
    }

    fn log(&self, name: &str) -> Result<Stdio> {
        let f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(name))
            .map_err(|e| env_err(format!("cannot open {name}"), e))?;
        Ok(Stdio::from(f))
    }

    /// The last lines of a log, for an error message.
    fn tail(&self, name: &str) -> String {
        let text = fs::read_to_string(self.dir.join(name)).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    fn save_record(&self) -> Result<()> {
        let mut rec = self
            .registry
            .get(&self.run_id)
            .ok_or_else(|| Error::Environment(format!("the run record of {} is gone", self.run_id)))?;
        rec.daemon = Some(self.record.clone());
        self.registry.write(&rec).map_err(|e| env_err("cannot update the run record", e))
    }

    fn remember(&mut self, name: &str, pid: u32) -> Result<()> {
        self.record.processes.retain(|p| p.name != name);
        if let Some(p) = RecordedProcess::of(name, pid) {
            self.record.processes.push(p);
        }
        self.save_record()
    }

    async fn start_containerd(&mut self) -> Result<()> {
        let mut cmd = std::process::Command::new(&self.tools.containerd);
        cmd.arg("--config").arg(self.dir.join("containerd.toml"));
        cmd.env_clear().env("PATH", &self.tools.path).current_dir("/");
        cmd.stdin(Stdio::null()).stdout(self.log("containerd.log")?).stderr(self.log("containerd.log")?);
        let net = self.host_ns.as_raw_fd();
        // Without a cgroup tree to bind (started under `ip netns exec`,
        // which remounts /sys), the private namespace mounts cgroup2.
        let rebind = fs::read_dir("/sys/fs/cgroup").is_ok_and(|mut d| d.next().is_some());
        // SAFETY: between fork and exec only syscalls run, on strings that
        // need no allocation (nix copies short paths to the stack).
        unsafe {
            cmd.pre_exec(move || private_mounts(net, rebind));
        }
        let child = cmd.spawn().map_err(|e| env_err(format!("cannot start {}", self.tools.containerd.display()), e))?;
        let pid = child.id();
        self.containerd = Some(child);
        self.remember("containerd", pid)?;
        self.record.mount_ns = fs::metadata(format!("/proc/{pid}/ns/mnt")).ok().map(|m| m.ino());
        self.save_record()?;
        let sock = self.dir.join("containerd/containerd.sock");
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if tokio::net::UnixStream::connect(&sock).await.is_ok() {
                return Ok(());
            }
            let exited = self.containerd.as_mut().and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() > deadline {
                let why = exited.map(|s| format!("exited ({s})")).unwrap_or_else(|| "did not answer".into());
                return Err(Error::Environment(format!(
                    "containerd {why}; the end of its log:\n{}",
                    self.tail("containerd.log")
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Starts dockerd in containerd's mount namespace and the host
    /// namespace, and waits until it answers `/_ping`.
    async fn start_dockerd(&mut self) -> Result<()> {
        let cpid = self
            .containerd
            .as_ref()
            .map(|c| c.id())
            .ok_or_else(|| Error::Environment("containerd is not running".into()))?;
        let mnt = File::open(format!("/proc/{cpid}/ns/mnt")).map_err(|e| env_err("containerd's mount namespace", e))?;
        let dir = &self.dir;
        let mut cmd = std::process::Command::new(&self.tools.dockerd);
        cmd.arg("--containerd")
            .arg(dir.join("containerd/containerd.sock"))
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("--pidfile")
            .arg(dir.join("docker.pid"))
            .arg("-H")
            .arg(format!("unix://{}", self.socket().display()))
            .arg("--config-file")
            .arg(dir.join("daemon.json"))
            .arg("--cgroup-parent")
            .arg(format!("/{}", cgroup_name(&self.run_id)))
            .args(&self.flags);
        cmd.env_clear().env("PATH", &self.tools.path).current_dir("/");
        cmd.stdin(Stdio::null()).stdout(self.log("dockerd.log")?).stderr(self.log("dockerd.log")?);
        let (mnt_fd, net_fd) = (mnt.as_raw_fd(), self.host_ns.as_raw_fd());
        // SAFETY: only syscalls between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                nix::unistd::setsid()?;
                setns(BorrowedFd::borrow_raw(mnt_fd), CloneFlags::CLONE_NEWNS)?;
                setns(BorrowedFd::borrow_raw(net_fd), CloneFlags::CLONE_NEWNET)?;
                nix::unistd::chdir("/")?;
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|e| env_err(format!("cannot start {}", self.tools.dockerd.display()), e))?;
        drop(mnt);
        let pid = child.id();
        self.dockerd = Some(child);
        self.remember("dockerd", pid)?;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if self.ping().await {
                return Ok(());
            }
            let exited = self.dockerd.as_mut().and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() > deadline {
                let why = exited.map(|s| format!("exited ({s})")).unwrap_or_else(|| "did not answer".into());
                return Err(Error::Environment(format!(
                    "dockerd {why}; the end of its log:\n{}",
                    self.tail("dockerd.log")
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Whether the Engine API answers `GET /_ping` with `OK`.
    async fn ping(&self) -> bool {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let talk = async {
            let mut s = tokio::net::UnixStream::connect(self.socket()).await.ok()?;
            s.write_all(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n").await.ok()?;
            let mut buf = Vec::new();
            s.read_to_end(&mut buf).await.ok()?;
            Some(buf)
        };
        match tokio::time::timeout(Duration::from_secs(2), talk).await {
            Ok(Some(buf)) => {
                let text = String::from_utf8_lossy(&buf);
                text.starts_with("HTTP/1.") && text.contains(" 200 ") && text.ends_with("OK")
            }
            _ => false,
        }
    }

    /// Runs the docker CLI against this daemon.
    pub async fn docker<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Result<DockerOutput> {
        let started = Instant::now();
        let mut cmd = tokio::process::Command::new(&self.tools.docker);
        cmd.arg("-H").arg(format!("unix://{}", self.socket().display())).args(args);
        // The CLI's own config stays in the temporary directory too.
        let cli = self.dir.join("cli");
        cmd.env_clear().env("PATH", &self.tools.path).env("DOCKER_CONFIG", &cli).env("HOME", &cli);
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
        let shown = args.iter().map(|a| a.as_ref().to_string_lossy()).collect::<Vec<_>>().join(" ");
        let out = tokio::time::timeout(COMMAND_TIMEOUT, cmd.output())
            .await
            .map_err(|_| Error::Environment(format!("docker {shown} did not end within {COMMAND_TIMEOUT:?}")))?
            .map_err(|e| env_err(format!("cannot run {}", self.tools.docker.display()), e))?;
        Ok(DockerOutput {
            success: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            elapsed: started.elapsed(),
        })
    }

    /// Imports busybox-static as [`IMAGE`](super::translate::IMAGE): no
    /// registry is ever asked.
    pub async fn import_image(&self) -> Result<()> {
        let root = self.dir.join("rootfs");
        let err = |e: io::Error| env_err("cannot build the busybox image", e);
        for d in ["bin", "etc", "proc", "sys", "dev", "tmp", "root"] {
            fs::create_dir_all(root.join(d)).map_err(err)?;
        }
        fs::copy(&self.tools.busybox, root.join("bin/busybox")).map_err(err)?;
        for applet in ["sh", "sleep", "cat", "ip", "nc"] {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).map_err(err)?;
        }
        fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").map_err(err)?;
        fs::write(root.join("etc/group"), "root:x:0:\n").map_err(err)?;
        let tar = self.dir.join("rootfs.tar");
        let out = tokio::process::Command::new("tar")
            .arg("-C")
            .arg(&root)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|e| env_err("cannot run tar", e))?;
        if !out.status.success() {
            return Err(env_err("tar", String::from_utf8_lossy(&out.stderr).trim()));
        }
        let out = self.docker(&[OsString::from("import"), tar.clone().into(), super::translate::IMAGE.into()]).await?;
        let _ = fs::remove_file(&tar);
        let _ = fs::remove_dir_all(&root);
        if !out.success {
            return Err(env_err("docker import", out.message()));
        }
        Ok(())
    }

    /// Restarts dockerd as a host would: SIGTERM (it stops its containers),
    /// wait, start it again with the same flags over the same state.
    pub async fn restart(&mut self) -> Result<()> {
        if let Some(mut child) = self.dockerd.take() {
            let p = RecordedProcess::of("dockerd", child.id());
            terminate(&p.into_iter().collect::<Vec<_>>(), TERM_GRACE);
            let _ = child.wait();
        }
        self.start_dockerd().await
    }

    /// `iptables -F`/`-X` of filter and nat in the host namespace, with the
    /// `iptables` dockerd itself uses (the first on its PATH).
    pub fn flush_iptables(&self) -> Result<()> {
        for op in ["-F", "-X"] {
            for table in ["filter", "nat"] {
                run_in_netns(&self.host_ns, "iptables", &["-w", "-t", table, op], &self.tools.path, None)?;
            }
        }
        Ok(())
    }

    /// A `host-rules` step with the `iptables-restore` dockerd's PATH finds.
    pub fn restore_rules(&self, rules: &str, noflush: bool) -> Result<()> {
        restore_rules(&self.host_ns, rules, noflush, &self.tools.path)
    }

    /// Ends the daemon and everything it started; every failure is
    /// returned, not just the first.
    pub fn stop(&mut self) -> Result<()> {
        if self.ended {
            return Ok(());
        }
        self.ended = true;
        let errors = reap(&self.record);
        // Our own children are gone now: collect their exit status.
        for c in [self.dockerd.take(), self.containerd.take()].into_iter().flatten() {
            let mut c = c;
            let _ = c.kill();
            let _ = c.wait();
        }
        if errors.is_empty() {
            // Nothing is left for cleanup to do.
            if let Some(mut rec) = self.registry.get(&self.run_id) {
                rec.daemon = None;
                let _ = self.registry.write(&rec);
            }
            Ok(())
        } else {
            Err(Error::Teardown(errors))
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            tracing::error!("{e}");
        }
    }
}

/// A `host-rules` step: `iptables-restore` (or `--noflush`) of the text in
/// the host namespace, as a user or a firewall manager runs it.
pub fn restore_rules(host_ns: &File, rules: &str, noflush: bool, path: &std::ffi::OsStr) -> Result<()> {
    let args: &[&str] = if noflush { &["-w", "--noflush"] } else { &["-w"] };
    run_in_netns(host_ns, "iptables-restore", args, path, Some(rules.as_bytes()))
}

/// Runs a tool inside the namespace `ns` (joined between fork and exec)
/// and waits for it; its stderr is the error.
fn run_in_netns(ns: &File, program: &str, args: &[&str], path: &std::ffi::OsStr, input: Option<&[u8]>) -> Result<()> {
    use std::io::Write;
    let mut cmd = std::process::Command::new(program);
    cmd.args(args).env("PATH", path).stdout(Stdio::null()).stderr(Stdio::piped());
    cmd.stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() });
    let fd = ns.as_raw_fd();
    // SAFETY: only setns between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            setns(BorrowedFd::borrow_raw(fd), CloneFlags::CLONE_NEWNET)?;
            Ok(())
        });
    }
    let shown = format!("{program} {}", args.join(" "));
    let mut child = cmd.spawn().map_err(|e| env_err(format!("cannot run {program}"), e))?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        // Small inputs: the tool reads all of it before it writes anything.
        stdin.write_all(text).map_err(|e| env_err(&shown, e))?;
    }
    let out = child.wait_with_output().map_err(|e| env_err(&shown, e))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(env_err(format!("host: {shown}"), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// Runs in the forked containerd before exec: joins the host namespace,
/// makes a private mount namespace, puts a tmpfs on /run, a sysfs of the
/// host namespace on /sys and the cgroup tree back under it.
fn private_mounts(net: std::os::fd::RawFd, rebind: bool) -> io::Result<()> {
    let none = None::<&str>;
    nix::unistd::setsid()?;
    // SAFETY: the fd is the lab's host namespace, open in the parent.
    setns(unsafe { BorrowedFd::borrow_raw(net) }, CloneFlags::CLONE_NEWNET)?;
    unshare(CloneFlags::CLONE_NEWNS)?;
    mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none)?;
    mount(Some("bl-run"), "/run", Some("tmpfs"), MsFlags::empty(), Some("mode=755"))?;
    if rebind {
        nix::unistd::mkdir("/run/bl-cg", nix::sys::stat::Mode::from_bits_truncate(0o755))?;
        mount(Some("/sys/fs/cgroup"), "/run/bl-cg", none, MsFlags::MS_BIND | MsFlags::MS_REC, none)?;
    }
    mount(Some("sysfs"), "/sys", Some("sysfs"), MsFlags::empty(), none)?;
    if rebind {
        mount(Some("/run/bl-cg"), "/sys/fs/cgroup", none, MsFlags::MS_BIND | MsFlags::MS_REC, none)?;
        umount2("/run/bl-cg", MntFlags::MNT_DETACH)?;
        // SAFETY: a C string literal; rmdir is a plain syscall.
        if unsafe { nix::libc::rmdir(c"/run/bl-cg".as_ptr()) } != 0 {
            return Err(io::Error::last_os_error());
        }
    } else {
        mount(Some("cgroup2"), "/sys/fs/cgroup", Some("cgroup2"), MsFlags::empty(), none)?;
    }
    Ok(())
}

/// SIGTERM to every live process of `procs`, SIGKILL to those still alive
/// after `grace`; waits (bounded) until they are gone.
fn terminate(procs: &[RecordedProcess], grace: Duration) {
    let live = |procs: &[RecordedProcess]| procs.iter().filter(|p| p.alive()).cloned().collect::<Vec<_>>();
    for p in live(procs) {
        let _ = kill(Pid::from_raw(p.pid as i32), Signal::SIGTERM);
    }
    if wait_gone(|| live(procs).is_empty(), grace) {
        return;
    }
    for p in live(procs) {
        tracing::warn!("{} (pid {}) did not end within {grace:?} of SIGTERM: SIGKILL", p.name, p.pid);
        let _ = kill(Pid::from_raw(p.pid as i32), Signal::SIGKILL);
    }
    wait_gone(|| live(procs).is_empty(), KILL_GRACE);
}

/// Polls `done` until it holds or `limit` passes.
fn wait_gone(mut done: impl FnMut() -> bool, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if done() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Pids whose mount namespace has inode `ino`; never this process's own
/// namespace or init's, whatever a record says.
fn pids_in_mount_ns(ino: u64) -> Vec<u32> {
    let own = |p: &str| fs::metadata(p).ok().map(|m| m.ino());
    if own("/proc/self/ns/mnt") == Some(ino) || own("/proc/1/ns/mnt") == Some(ino) {
        return vec![];
    }
    let Ok(dir) = fs::read_dir("/proc") else { return vec![] };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter(|pid| own(&format!("/proc/{pid}/ns/mnt")) == Some(ino))
        .collect()
}

/// The cgroup directories named `name` under every hierarchy (cgroup v1
/// controllers, v2, hybrid), deepest first.
fn cgroup_dirs(name: &str) -> Vec<PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    let mut tops = vec![root.join(name)];
    if let Ok(d) = fs::read_dir(root) {
        tops.extend(d.flatten().map(|e| e.path().join(name)));
    }
    let mut out = Vec::new();
    fn walk(d: &Path, out: &mut Vec<PathBuf>) {
        if let Ok(rd) = fs::read_dir(d) {
            for e in rd.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    walk(&e.path(), out);
                }
            }
        }
        out.push(d.to_path_buf());
    }
    for t in tops.into_iter().filter(|t| t.is_dir()) {
        walk(&t, &mut out);
    }
    out
}

fn pids_in_cgroups(dirs: &[PathBuf]) -> Vec<u32> {
    let mut pids: Vec<u32> = dirs
        .iter()
        .filter_map(|d| fs::read_to_string(d.join("cgroup.procs")).ok())
        .flat_map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect::<Vec<u32>>())
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids.retain(|p| *p > 1 && *p != std::process::id());
    pids
}

/// Ends a daemon from its record: dockerd and containerd by pid (SIGTERM,
/// SIGKILL after a bound), then SIGKILL to whatever is left in its mount
/// namespace (shims, docker-proxy) and in its containers' cgroups, then
/// removes those cgroups and its temporary directory. Returns every
/// failure. Shared by [`Daemon`]'s teardown and `bridgelab cleanup`.
pub fn reap(rec: &DaemonRecord) -> Vec<String> {
    let mut errors = Vec::new();
    let cgroup = rec.cgroup.as_deref().filter(|c| c.starts_with("bl-") && !c.contains('/') && c.len() > 3);
    let dirs = cgroup.map(cgroup_dirs).unwrap_or_default();
    // The containers first: dockerd then stops quickly, having nothing to stop.
    for pid in pids_in_cgroups(&dirs) {
        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
    }
    let order = ["dockerd", "containerd"];
    for name in order {
        let procs: Vec<RecordedProcess> = rec.processes.iter().filter(|p| p.name == name).cloned().collect();
        terminate(&procs, TERM_GRACE);
    }
    let others: Vec<RecordedProcess> =
        rec.processes.iter().filter(|p| !order.contains(&p.name.as_str())).cloned().collect();
    terminate(&others, TERM_GRACE);
    // Only while the run's host namespace is still mounted can a process
    // be told to be the daemon's by its namespaces (see `host_netns`).
    let netns = rec.host_netns.as_deref().and_then(|p| fs::metadata(p).ok()).map(|m| m.ino());
    let leftovers = || {
        let mut pids = match (rec.mount_ns, netns) {
            (Some(mnt), Some(net)) => pids_in_mount_ns(mnt)
                .into_iter()
                .filter(|pid| fs::metadata(format!("/proc/{pid}/ns/net")).is_ok_and(|m| m.ino() == net))
                .collect(),
            _ => Vec::new(),
        };
        pids.extend(pids_in_cgroups(&dirs));
        pids.retain(|p| !crate::registry::is_zombie(*p));
        pids
    };
    let gone = wait_gone(
        || {
            let left = leftovers();
            for pid in &left {
                let _ = kill(Pid::from_raw(*pid as i32), Signal::SIGKILL);
            }
            left.is_empty()
        },
        KILL_GRACE,
    );
    if !gone {
        errors.push(format!("processes of the daemon outlived SIGKILL: {:?}", leftovers()));
    }
    for p in rec.processes.iter().filter(|p| p.alive()) {
        errors.push(format!("{} (pid {}) is still running", p.name, p.pid));
    }
    // An emptied cgroup can be removed once the kernel has let go of its
    // last task: retried for a moment.
    let removed = wait_gone(
        || {
            for d in &dirs {
                let _ = fs::remove_dir(d);
            }
            dirs.iter().all(|d| !d.exists())
        },
        KILL_GRACE,
    );
    if !removed {
        let left: Vec<String> = dirs.iter().filter(|d| d.exists()).map(|d| d.display().to_string()).collect();
        errors.push(format!("cannot remove cgroups {}", left.join(", ")));
    }
    if let Some(dir) = &rec.state_dir {
        if let Err(e) = remove_state_dir(dir) {
            errors.push(e);
        }
    }
    errors
}

/// Removes a daemon's temporary directory, unless a mount under it is
/// visible here (its mounts belong in the daemon's own mount namespace:
/// `rm -rf` must never walk into a container's rootfs).
fn remove_state_dir(dir: &Path) -> std::result::Result<(), String> {
    let named = dir.file_name().is_some_and(|n| n.to_string_lossy().starts_with(STATE_PREFIX));
    if !named || !dir.is_absolute() {
        return Err(format!("not removing {}: not a daemon's temporary directory", dir.display()));
    }
    if !dir.exists() {
        return Ok(());
    }
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let prefix = format!("{}/", dir.display());
    if let Some(m) = mounts
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .find(|at| at.starts_with(&prefix) || *at == prefix.trim_end_matches('/'))
    {
        return Err(format!("not removing {}: {m} is mounted in it", dir.display()));
    }
    fs::remove_dir_all(dir).map_err(|e| format!("remove {}: {e}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_read_from_dockerd_and_checked_against_the_firewall() {
        assert_eq!(parse_version("Docker version 20.10.24+dfsg1, build 5d6db84\n"), Some("20.10.24+dfsg1"));
        assert_eq!(parse_version("Docker version 28.5.2, build ecc6942"), Some("28.5.2"));
        assert_eq!(parse_version("dockerd: command not found"), None);
        assert_eq!(parse_version("Docker version dev, build x"), None);
        assert!(check_version(Firewall::Docker20, "20.10.24+dfsg1").is_ok());
        assert!(check_version(Firewall::Docker28, "28.5.2").is_ok());
        let e = check_version(Firewall::Docker20, "28.5.2").unwrap_err();
        assert_eq!(e, "firewall = \"docker20\" needs dockerd 20.10.x, and this dockerd is 28.5.2");
        assert!(check_version(Firewall::Docker28, "20.10.24").is_err());
        assert!(check_version(Firewall::Docker1, "20.10.24").unwrap_err().contains("Docker 1.6.2"));
        // 2.10 is not 20.10.
        assert!(check_version(Firewall::Docker20, "2.10.1").is_err());
    }

    fn tools(version: &str, at: &str) -> Tools {
        Tools {
            dockerd: at.into(),
            containerd: "containerd".into(),
            docker: "docker".into(),
            busybox: "busybox".into(),
            version: version.into(),
            path: "/usr/bin".into(),
        }
    }

    #[test]
    fn each_scenario_gets_the_dockerd_of_its_firewall() {
        let both = Dockers {
            found: vec![
                tools("28.5.2", "/usr/bin/dockerd"),
                tools("20.10.24+dfsg1", "/opt/bl-docker20/usr/sbin/dockerd"),
            ],
        };
        assert_eq!(both.for_firewall(Firewall::Docker20).unwrap().version, "20.10.24+dfsg1");
        assert_eq!(both.for_firewall(Firewall::Docker28).unwrap().version, "28.5.2");
        let only20 = Dockers { found: vec![tools("20.10.24+dfsg1", "/opt/bl-docker20/usr/sbin/dockerd")] };
        let e = only20.for_firewall(Firewall::Docker28).unwrap_err().to_string();
        assert!(
            e.starts_with(
                "no usable dockerd: firewall = \"docker28\" needs dockerd 28.x, and this dockerd is 20.10.24+dfsg1\n"
            ),
            "{e}"
        );
        // A docker28 scenario takes the dockerd of ci/install-docker28.sh
        // before another 28 found first (on PATH).
        let three = Dockers {
            found: vec![
                tools("28.1.1", "/usr/bin/dockerd"),
                tools("20.10.24+dfsg1", "/opt/bl-docker20/usr/sbin/dockerd"),
                tools("28.5.2+dfsg4", "/opt/bl-docker28/usr/sbin/dockerd"),
            ],
        };
        assert_eq!(three.for_firewall(Firewall::Docker28).unwrap().version, "28.5.2+dfsg4");
        assert_eq!(three.for_firewall(Firewall::Docker20).unwrap().version, "20.10.24+dfsg1");
        let e = only20.for_firewall(Firewall::Docker28).unwrap_err().to_string();
        assert!(e.contains("sudo ./ci/install-docker28.sh") && e.contains(PREFIX28), "{e}");
        assert!(!e.contains("install-docker20"), "{e}");
        let two20 = Dockers { found: vec![tools("20.10.5", "/a/dockerd"), tools("20.10.24", "/b/dockerd")] };
        let e = two20.for_firewall(Firewall::Docker28).unwrap_err().to_string();
        assert!(
            e.starts_with(
                "no usable dockerd: firewall = \"docker28\" needs dockerd 28.x; the dockerds found are 20.10.5 (/a/dockerd), 20.10.24 (/b/dockerd)\n"
            ),
            "{e}"
        );
    }

    #[test]
    fn a_long_tmpdir_does_not_overflow_the_socket_address() {
        let dir = state_dir("0123456789abcdef");
        assert!(dir.join("containerd/containerd.sock.ttrpc").as_os_str().len() < 108, "{}", dir.display());
    }

    #[test]
    fn only_a_static_busybox_will_do() {
        let exe = std::env::current_exe().unwrap();
        // A Rust test binary is dynamically linked: it has PT_INTERP.
        assert!(!is_static_elf(&exe));
        assert!(!is_static_elf(Path::new("/nonexistent")));
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("x");
        fs::write(&text, "#!/bin/sh\n").unwrap();
        assert!(!is_static_elf(&text));
    }

    #[test]
    fn docker_messages_lose_the_cli_prefix() {
        let o = DockerOutput {
            success: false,
            stdout: String::new(),
            stderr: "Error response from daemon: network with name n1 already exists\n".into(),
            elapsed: Duration::ZERO,
        };
        assert_eq!(o.message(), "network with name n1 already exists");
        let o = DockerOutput { stderr: "no matching subnet for gateway 10.32.0.1\n".into(), ..o };
        assert_eq!(o.message(), "no matching subnet for gateway 10.32.0.1");
        let o = DockerOutput {
            stderr: "docker: Error response from daemon: driver failed programming external connectivity on endpoint late (48): Bind for 0.0.0.0:8080 failed: port is already allocated.\nSee 'docker run --help'.\n".into(),
            ..o
        };
        assert_eq!(
            o.message(),
            "driver failed programming external connectivity on endpoint late (48): Bind for 0.0.0.0:8080 failed: port is already allocated."
        );
        // Docker 28's CLI, as captured from 28.5.2's `docker start` and `docker run`.
        let o = DockerOutput {
            stderr: "Error response from daemon: failed to set up container networking: network n1 not found\nError: failed to start containers: c1\n".into(),
            ..o
        };
        assert_eq!(o.message(), "failed to set up container networking: network n1 not found");
        let o = DockerOutput {
            stderr: "docker: Error response from daemon: failed to set up container networking: driver failed programming external connectivity on endpoint d4 (27): failed to listen on TCP socket: address already in use\n\nRun 'docker run --help' for more information\n".into(),
            ..o
        };
        assert_eq!(
            o.message(),
            "failed to set up container networking: driver failed programming external connectivity on endpoint d4 (27): failed to listen on TCP socket: address already in use"
        );
    }

    #[test]
    fn reap_never_removes_a_directory_that_is_not_a_daemons() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::create_dir(&victim).unwrap();
        let rec = DaemonRecord { state_dir: Some(victim.clone()), cgroup: Some("/".into()), ..Default::default() };
        let errors = reap(&rec);
        assert!(victim.exists());
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("not a daemon's temporary directory"), "{errors:?}");
        // Its own kind of directory goes, with what is in it.
        let mine = dir.path().join(format!("{STATE_PREFIX}t1"));
        fs::create_dir_all(mine.join("data/x")).unwrap();
        assert!(reap(&DaemonRecord { state_dir: Some(mine.clone()), ..Default::default() }).is_empty());
        assert!(!mine.exists());
    }

    /// A dead run's mount namespace inode may since belong to another
    /// run's daemon: its processes are swept only when they are also in
    /// the dead run's host network namespace, which must still be mounted.
    #[test]
    fn a_reused_mount_namespace_inode_spares_processes_outside_the_runs_host() {
        assert!(
            nix::unistd::geteuid().is_root(),
            "unshare -m needs root: run `sudo -E cargo test` (CI runs it as root; it is never skipped)"
        );
        let mut other = std::process::Command::new("unshare")
            .args(["-m", "--propagation", "private", "sleep", "30"])
            .spawn()
            .unwrap();
        let pid = other.id();
        // unshare execs sleep once the namespace exists.
        let own = fs::metadata("/proc/self/ns/mnt").unwrap().ino();
        let mnt = (0..500)
            .find_map(|_| {
                let ino = fs::metadata(format!("/proc/{pid}/ns/mnt")).ok()?.ino();
                let exe = fs::read_link(format!("/proc/{pid}/exe")).ok()?;
                if ino != own && exe.ends_with("sleep") {
                    Some(ino)
                } else {
                    std::thread::sleep(Duration::from_millis(10));
                    None
                }
            })
            .expect("unshare made a mount namespace");
        for host_netns in [None, Some(PathBuf::from("/run/netns/bl-00000000-host-gone"))] {
            let rec = DaemonRecord { mount_ns: Some(mnt), host_netns, ..Default::default() };
            let _ = reap(&rec);
            assert!(other.try_wait().unwrap().is_none(), "reap killed a process of another run");
        }
        other.kill().unwrap();
        other.wait().unwrap();
    }

    #[test]
    fn a_mount_namespace_shared_with_this_process_is_never_swept() {
        let own = fs::metadata("/proc/self/ns/mnt").unwrap().ino();
        assert!(pids_in_mount_ns(own).is_empty());
    }
}
