//! Network namespaces without `ip netns`: `unshare` in a worker thread,
//! bind-mount `/proc/thread-self/ns/net` in the lab's own directory, keep
//! an fd; a name under `/run/netns` only for a lab someone may look into.
//!
//! Only threads ever change namespace, never the calling one, so the rest of
//! the process (and the tokio runtime) stays in the namespace it started in.
//!
//! Each lab mounts a tmpfs of its own at `/run/bridgelab/netns/<run id>`
//! ([`mount_lab_dir`]) and its namespaces there, as `bl-<run id>-<node>`.
//! Why not the bind mounts in `/run/netns` themselves, as `ip netns add`
//! makes them: every unmount waits for an RCU grace period of its own (in
//! `namespace_unlock`), so removing a thousand namespaces one by one took
//! 20 to 70 ms, the more the busier the kernel still was with the lab;
//! unmounting the lab's one tmpfs takes them all in one grace period.
//!
//! A lab that outlives its build for a person to look into (`bridgelab
//! up`, `run --hold`, `up --serve`) is also named: `/run/netns/bl-…` is a
//! link to each namespace ([`name_all`]), which `ip netns exec`, `ip netns
//! list` and `setns` by path follow. The others are not: a name is a file
//! of `/run`'s file system, and where that is ext4 without a journal (as
//! on the machine this was measured on) every new inode skips each one
//! freed in the last half minute (`recently_deleted`), which labs built
//! back to back free by the hundred: in a build of 100 after others, a
//! fifth of the CPU time went to naming, and more at 1,000
//! (`bench/README.md`, eighth step). `bridgelab shell` and everything else
//! reach a lab through its directory, named or not.
//!
//! `/run/bridgelab/netns` is made a shared mount point first, as `ip netns
//! add` makes `/run/netns`, so that the namespaces show in other mount
//! namespaces (a container, an `unshare -m` shell) and their removal does
//! too.

use std::fs::{self, File};
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};

use crate::registry::{LABS_NETNS_DIR, NETNS_DIR};

/// A namespace this lab created, bind-mounted at `path` in its lab's
/// directory.
#[derive(Debug)]
pub struct NetNs {
    pub node: String,
    pub path: PathBuf,
    /// Shared with threads that outlive a borrow (the read-back's reader).
    pub file: std::sync::Arc<File>,
}

/// Creates one namespace per `(node, name)` in a single worker thread, and
/// calls `inside(i, sysctls)` there while the thread is in the `i`th new
/// namespace (to set its sysctls and open the sockets the lab keeps in it).
/// Stops at the first failure and
/// returns what was created so far with the error, so the caller can
/// remove it.
pub fn create_all<T: Send>(
    names: &[(String, String)],
    lab: &Path,
    inside: impl Fn(usize, &mut SysctlsHere) -> io::Result<T> + Sync,
) -> (Vec<(NetNs, T)>, Option<io::Error>) {
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut made = Vec::new();
            let err = create_each(names, lab, &inside, |ns, t| {
                made.push((ns, t));
                Ok(())
            })
            .err();
            (made, err)
        })
        .join()
        .unwrap_or_else(|_| (Vec::new(), Some(io::Error::other("namespace worker panicked"))))
    })
}

/// Creates the namespaces `names` in order on the calling thread, which
/// must be one of bridgelab's own workers: it is left inside the last one.
/// They are mounted in `lab`, the lab's directory ([`mount_lab_dir`]).
/// `inside(i, sysctls)` runs while the thread is in the `i`th new namespace
/// (whose sysctls it may write through `sysctls`); `made`
/// then takes the namespace, or gives it back (the receiver is gone) to be
/// removed here, which ends the loop. Stops at the first failure, after
/// removing the namespace it was making.
pub fn create_each<T>(
    names: &[(String, String)],
    lab: &Path,
    inside: impl Fn(usize, &mut SysctlsHere) -> io::Result<T>,
    mut made: impl FnMut(NetNs, T) -> Result<(), NetNs>,
) -> io::Result<()> {
    mount_lab_dir(lab)?;
    let mut procs = ProcSys::new();
    for (i, (node, name)) in names.iter().enumerate() {
        let ns = create_one(node, name, lab, &mut procs)?;
        let t = match inside(i, &mut procs.here()) {
            Ok(t) => t,
            Err(e) => {
                let _ = ns.remove();
                return Err(e);
            }
        };
        if let Err(ns) = made(ns, t) {
            let _ = ns.remove();
            return Ok(());
        }
    }
    Ok(())
}

/// Names each of `namespaces` `/run/netns/<its name>` with a symbolic link
/// to where it is mounted, for `ip netns exec` and `ip netns list`. Only
/// labs that someone may look into are named (see the module doc); a name
/// that is already this link is no error.
pub fn name_all(namespaces: &[NetNs]) -> io::Result<()> {
    fs::DirBuilder::new().recursive(true).mode(0o755).create(NETNS_DIR)?;
    for ns in namespaces {
        let name = ns.name();
        match std::os::unix::fs::symlink(&ns.path, &name) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && fs::read_link(&name).is_ok_and(|t| t == ns.path) => {}
            Err(e) => {
                return Err(io::Error::new(e.kind(), format!("link {} to {}: {e}", name.display(), ns.path.display())))
            }
            Ok(()) => {}
        }
    }
    Ok(())
}

impl NetNs {
    /// Its name under `/run/netns`, whether made ([`name_all`]) or not.
    pub fn name(&self) -> PathBuf {
        Path::new(NETNS_DIR).join(self.path.file_name().unwrap_or_default())
    }

    /// Removes this one namespace: its mount in the lab's directory, then
    /// its name if it has one.
    pub fn remove(&self) -> io::Result<()> {
        unmount_and_unlink(&self.path)?;
        remove(&self.name())
    }
}

/// Writes sysctls in the namespace of the calling thread (one the lab has
/// just made, from inside [`create_each`]), in order.
pub fn write_sysctls_here(here: &mut SysctlsHere, pairs: &[(&str, &str)]) -> io::Result<()> {
    pairs.iter().try_for_each(|(key, value)| here.write(key, value))
}

/// Writes `(key, Some(value))` sysctls in the namespace of the calling
/// thread, in order, then reads every key back (those given `None` are
/// only read): what the kernel holds once all are written, as a later
/// reader would see it, without joining the namespace again. A written
/// file is read back through the descriptor it was written through.
pub fn write_then_read_here(here: &mut SysctlsHere, keys: &[(&str, Option<&str>)]) -> io::Result<Vec<String>> {
    let mut kept = Vec::with_capacity(keys.len());
    for (key, value) in keys {
        kept.push(match value {
            Some(value) => here.write_kept(key, value)?,
            None => None,
        });
    }
    keys.iter()
        .zip(kept)
        .map(|((key, _), file)| match file {
            Some(file) => named(key, read_from_start(&file)),
            None => here.read(key),
        })
        .collect()
}

/// A sysctl file's whole value, from its first byte, trimmed: what
/// [`SysctlsHere::read`] returns, and what a file written through is read
/// back as.
fn read_from_start(file: &File) -> io::Result<String> {
    use std::os::unix::fs::FileExt;
    let mut value = Vec::new();
    let mut buf = [0u8; 256];
    loop {
        let n = file.read_at(&mut buf, value.len() as u64)?;
        if n == 0 {
            break;
        }
        value.extend_from_slice(&buf[..n]);
    }
    Ok(String::from_utf8_lossy(&value).trim().to_string())
}

/// Makes `dir` a shared mount point, as iproute2's `ip netns add` does:
/// `mount --make-shared`, and if `dir` is no mount point yet (`EINVAL`),
/// bind-mount it onto itself first. Under an exclusive `flock` of `dir`, as
/// iproute2 takes it, so that concurrent callers never stack bind mounts.
pub fn share_dir(dir: &Path) -> io::Result<()> {
    fs::DirBuilder::new().recursive(true).mode(0o755).create(dir)?;
    let what = |op: &str, e: Errno| io::Error::other(format!("{op} {}: {e}", dir.display()));
    // Opened before any bind: this handle keeps seeing what lies underneath.
    let lock = Flock::lock(File::open(dir)?, FlockArg::LockExclusive).map_err(|(_, e)| what("flock", e))?;
    let make_shared = || mount(None::<&str>, dir, None::<&str>, MsFlags::MS_SHARED | MsFlags::MS_REC, None::<&str>);
    match make_shared() {
        Ok(()) => return Ok(()),
        Err(Errno::EINVAL) => {}
        Err(e) => return Err(what("mount --make-shared", e)),
    }
    mount(Some(dir), dir, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)
        .map_err(|e| what("mount --rbind", e))?;
    unmount_covered(dir, &lock)?;
    make_shared().map_err(|e| what("mount --make-shared", e))
}

/// After `dir` was bound onto itself, every namespace that was mounted in it
/// before is mounted twice: a copy in the new mount, and the original
/// underneath, now out of reach by path. The original would keep its
/// namespace alive after `ip netns delete` and make unlinking its file fail
/// (`EBUSY`), so it is unmounted through `below`, a handle on `dir` opened
/// before the bind. The copy stays: nothing is lost.
fn unmount_covered(dir: &Path, below: &Flock<File>) -> io::Result<()> {
    let mounts = fs::read_to_string("/proc/thread-self/mountinfo")?;
    let mounts: Vec<(&str, &str, String)> = mounts
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            Some((*f.first()?, *f.get(1)?, unescape_mountinfo(f.get(4)?)))
        })
        .collect();
    let dir_str = dir.to_string_lossy();
    // The bind just made; `dir` was no mount point before it.
    let Some((top, _, _)) = mounts.iter().rev().find(|(_, _, at)| *at == dir_str) else {
        return Ok(());
    };
    for (_, parent, at) in &mounts {
        let Some(name) = at.strip_prefix(&*dir_str).and_then(|n| n.strip_prefix('/')) else {
            continue;
        };
        if name.contains('/') || parent == top {
            continue;
        }
        let hidden = format!("/proc/thread-self/fd/{}/{name}", below.as_raw_fd());
        match umount2(hidden.as_str(), MntFlags::MNT_DETACH) {
            Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => {}
            Err(e) => return Err(io::Error::other(format!("umount {}/{name} below the bind: {e}", dir.display()))),
        }
    }
    Ok(())
}

/// Mount points in mountinfo escape space, tab, newline and `\` as `\ooo`.
fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b.get(i + 1..i + 4).filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (b[i], octal) {
            (b'\\', Some(d)) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn create_one(node: &str, name: &str, lab: &Path, procs: &mut ProcSys) -> io::Result<NetNs> {
    // Each unshare gives this worker thread a brand-new network namespace.
    unshare(CloneFlags::CLONE_NEWNET)
        .map_err(|e| io::Error::new(io::Error::from(e).kind(), format!("unshare(CLONE_NEWNET): {e}")))?;
    // This thread is inside the new namespace, so /proc/sys/net is its own.
    procs.enter();
    let target = lab.join(name);
    fs::OpenOptions::new().write(true).create_new(true).mode(0o000).open(&target)?;
    if let Err(e) = mount(Some("/proc/thread-self/ns/net"), &target, None::<&str>, MsFlags::MS_BIND, None::<&str>) {
        let _ = fs::remove_file(&target);
        return Err(io::Error::other(format!("bind-mount {}: {e}", target.display())));
    }
    match File::open(&target) {
        Ok(file) => Ok(NetNs { node: node.to_string(), path: target, file: file.into() }),
        Err(e) => {
            let _ = unmount_and_unlink(&target);
            Err(e)
        }
    }
}

/// Makes `lab` a directory with a tmpfs of its own, shared (see the module
/// doc), unless it is one already (a step adds namespaces to a lab).
pub fn mount_lab_dir(lab: &Path) -> io::Result<()> {
    share_dir(Path::new(LABS_NETNS_DIR))?;
    fs::DirBuilder::new().recursive(true).mode(0o755).create(lab)?;
    let base = fs::metadata(LABS_NETNS_DIR)?;
    if fs::metadata(lab)?.dev() != base.dev() {
        return Ok(());
    }
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(Some("tmpfs"), lab, Some("tmpfs"), flags, Some("mode=0755,size=1m"))
        .map_err(|e| io::Error::other(format!("mount a tmpfs on {}: {e}", lab.display())))
}

/// Unmounts a lab's directory, and with it every namespace mounted there,
/// and removes it; one gone already is no error. The links under
/// `/run/netns` are left dangling, for [`remove`] to unlink.
pub fn unmount_lab_dir(lab: &Path) -> io::Result<()> {
    unmount_then(lab, MntFlags::MNT_DETACH, |p| fs::remove_dir(p))
}

/// Sysctls bridgelab sets in every namespace it creates, before anything
/// else happens there: the kernel's ICMP rate limits (per destination and
/// global) would otherwise eat port-unreachable and other ICMP errors when
/// many probes run at once, and turn `refused` into `blocked` by chance.
/// `icmp_ratemask = 0` alone exempts every ICMP type from both: the kernel
/// asks the mask before either limit (`icmpv4_mask_allow`, and before it
/// the same test in `icmpv4_xrlim_allow`), so lifting the limits as well
/// would only cost three more writes per namespace. This is bridgelab's
/// change, not Docker's.
pub const LAB_SYSCTLS: &[(&str, &str)] = &[("net.ipv4.icmp_ratemask", "0")];

/// Writes [`LAB_SYSCTLS`] in the namespace of the calling thread, which must
/// be one the lab has just created (never the one bridgelab started in),
/// before anything else happens there.
pub fn write_lab_sysctls(here: &mut SysctlsHere) -> io::Result<()> {
    LAB_SYSCTLS.iter().try_for_each(|(key, value)| here.write(key, value))
}

/// Unmounts and unlinks a named namespace: for a link into a lab's
/// directory, the mount it names and then the link. A namespace that is
/// already gone is not an error: teardown may run twice (explicit `down`,
/// then `Drop`), and once the lab's directory is unmounted its links lead
/// nowhere.
pub fn remove(path: &Path) -> io::Result<()> {
    // Only a link into the labs' directory is followed: a `bl-` name that
    // another tool made leads nowhere bridgelab unmounts or deletes.
    if let Ok(target) = fs::read_link(path) {
        let ours = target.starts_with(LABS_NETNS_DIR)
            && target.components().all(|c| !matches!(c, std::path::Component::ParentDir));
        if ours {
            unmount_and_unlink(&target)?;
        }
    }
    unmount_and_unlink(path)
}

/// Removes a lab's namespaces, `lab` its directory and `names` their names
/// (as [`NetNs::name`] gives them): the directory in one unmount, then,
/// with `linked` (the lab may have been named: [`name_all`]), each link
/// under `/run/netns`. Goes on after a failure (then one namespace at a
/// time), and returns every one.
pub fn remove_all(lab: &Path, names: &[PathBuf], linked: bool) -> Vec<io::Error> {
    let mut errors = Vec::new();
    let lab_gone = match unmount_lab_dir(lab) {
        Ok(()) => true,
        Err(e) => {
            errors.push(e);
            false
        }
    };
    for name in names {
        if !lab_gone {
            errors.extend(unmount_and_unlink(&lab.join(name.file_name().unwrap_or_default())).err());
        }
        if linked {
            errors.extend(remove(name).err());
        }
    }
    errors
}

fn unmount_and_unlink(path: &Path) -> io::Result<()> {
    unmount_then(path, MntFlags::UMOUNT_NOFOLLOW | MntFlags::MNT_DETACH, |p| fs::remove_file(p))
}

/// Unmounts `path` (no mount there is no error) and then removes it with
/// `remove` (nothing there is no error either).
fn unmount_then(path: &Path, flags: MntFlags, remove: fn(&Path) -> io::Result<()>) -> io::Result<()> {
    match umount2(path, flags) {
        Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => {}
        Err(e) => return Err(io::Error::other(format!("umount {}: {e}", path.display()))),
    }
    match remove(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            Err(io::Error::new(e.kind(), format!("remove {}: {e}", path.display())))
        }
        _ => Ok(()),
    }
}

/// Runs `f` on a short-lived thread that has joined the namespace `ns`.
/// Sockets opened inside `f` stay bound to that namespace for their lifetime.
pub fn run_in<T: Send>(ns: &File, f: impl FnOnce() -> io::Result<T> + Send) -> io::Result<T> {
    std::thread::scope(|s| {
        s.spawn(|| {
            setns(ns.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| io::Error::other(format!("setns: {e}")))?;
            f()
        })
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("namespace worker panicked")))
    })
}

/// Sends one Ethernet frame on `iface` of the namespace, through a packet
/// socket (pnet datalink), as a daemon writes to an `AF_PACKET` socket.
pub fn send_frame(ns: &File, iface: &str, frame: &[u8]) -> io::Result<()> {
    run_in(ns, || {
        let ni = pnet::datalink::interfaces()
            .into_iter()
            .find(|i| i.name == iface)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no interface {iface}")))?;
        match pnet::datalink::channel(&ni, pnet::datalink::Config::default())? {
            pnet::datalink::Channel::Ethernet(mut tx, _rx) => {
                tx.send_to(frame, None).unwrap_or_else(|| Err(io::Error::other("no frame sent")))
            }
            _ => Err(io::Error::other("not an Ethernet channel")),
        }
    })
}

/// Reads a sysctl inside a namespace (`net.ipv4.ip_forward`).
pub fn read_sysctl(ns: &File, key: &str) -> io::Result<String> {
    Ok(read_sysctls(ns, &[key])?.remove(0))
}

/// Reads sysctls inside a namespace, in order, on one thread: a namespace
/// is joined once for all of them (a thread and a `setns` per key made a
/// container's three sysctls cost more than its links).
pub fn read_sysctls(ns: &File, keys: &[&str]) -> io::Result<Vec<String>> {
    run_in(ns, move || {
        let mut here = SysctlsHere::new();
        keys.iter().map(|k| here.read(k)).collect()
    })
}

/// Writes a sysctl inside a namespace. `/proc/sys/net` follows the namespace
/// of the thread that opens it, so this never touches the caller's.
pub fn write_sysctl(ns: &File, key: &str, value: &str) -> io::Result<()> {
    write_sysctls(ns, &[(key, value)])
}

/// Writes sysctls inside a namespace, in order, on one thread that joined
/// it once.
pub fn write_sysctls(ns: &File, pairs: &[(&str, &str)]) -> io::Result<()> {
    run_in(ns, move || write_sysctls_here(&mut SysctlsHere::new(), pairs))
}

/// Writes the sysctls of many namespaces on one thread that joins each in
/// turn (a thread per namespace made a lab of a thousand containers start
/// a thousand threads). Stops at the first failure, naming its index.
pub fn write_sysctls_all(jobs: &[(&File, Vec<(&str, &str)>)]) -> Result<(), (usize, io::Error)> {
    in_each(jobs.iter().map(|(ns, pairs)| (*ns, pairs)), |pairs, here| write_sysctls_here(here, pairs)).map(drop)
}

/// Reads the sysctls of many namespaces on one thread that joins each in
/// turn: for each `(namespace, keys)`, the values in order.
pub fn read_sysctls_all(jobs: &[(&File, Vec<&str>)]) -> Result<Vec<Vec<String>>, (usize, io::Error)> {
    in_each(jobs.iter().map(|(ns, keys)| (*ns, keys)), |keys, here| keys.iter().map(|k| here.read(k)).collect())
}

/// Runs `f` for each `(namespace, job)` on one thread that joins each
/// namespace in turn, with that namespace's sysctls at hand. Stops at the
/// first failure, naming its index.
fn in_each<'a, J: Send + 'a, T: Send>(
    jobs: impl Iterator<Item = (&'a File, J)>,
    f: impl Fn(J, &mut SysctlsHere) -> io::Result<T> + Sync,
) -> Result<Vec<T>, (usize, io::Error)> {
    let mut procs = ProcSys::new();
    each_joined(jobs, |job| {
        procs.enter();
        f(job, &mut procs.here())
    })
}

/// Moves the calling thread, which must be one of bridgelab's own workers,
/// into the namespace `ns`.
pub fn join(ns: &File) -> io::Result<()> {
    setns(ns.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| io::Error::other(format!("setns: {e}")))
}

/// Runs `f` for each `(namespace, job)` on a thread of its own that joins
/// each namespace in turn (so this thread's namespace never changes).
/// Stops at the first failure, naming its index.
pub fn each_joined<'a, J: Send + 'a, T: Send>(
    jobs: impl Iterator<Item = (&'a File, J)>,
    mut f: impl FnMut(J) -> io::Result<T> + Send,
) -> Result<Vec<T>, (usize, io::Error)> {
    let jobs: Vec<(&File, J)> = jobs.collect();
    std::thread::scope(|s| {
        s.spawn(move || {
            let mut out = Vec::with_capacity(jobs.len());
            for (i, (ns, job)) in jobs.into_iter().enumerate() {
                let fail = |e: io::Error| (i, e);
                join(ns).map_err(fail)?;
                out.push(f(job).map_err(fail)?);
            }
            Ok(out)
        })
        .join()
        .unwrap_or_else(|_| Err((0, io::Error::other("namespace worker panicked"))))
    })
}

fn sysctl_path(key: &str) -> PathBuf {
    Path::new("/proc/sys").join(key.replace('.', "/"))
}

/// How many namespaces one private procfs instance serves (see
/// [`ProcSys`]): enough to pay for the instance (about 80 µs), few enough
/// to keep its lookups short.
const NAMESPACES_PER_PROC: usize = 32;

/// Where the sysctls of namespace after namespace are reached, on one
/// thread that joins each in turn.
///
/// Every namespace has its own `net` directory under `/proc/sys`, and the
/// kernel keeps them all in one dcache hash chain: looking up `net`
/// compares it with every namespace's (`proc_sys_compare`), so a lab that
/// makes a thousand namespaces and sets each one's sysctls does a million
/// compares (170 ms of CPU at 1,000 containers, as much again to read them
/// back). The chain belongs to one procfs instance, so this reaches
/// sysctls through instances of its own: made by `fsopen("proc")` and
/// `fsmount`, mounted nowhere (nothing to see or to clean up: closing the
/// last handle removes one), each serving [`NAMESPACES_PER_PROC`]
/// namespaces before the next is made. What a key names does not change:
/// `/proc/sys/net` shows the namespace of the thread that looks it up,
/// whichever instance it goes through. Where the kernel refuses a private
/// instance (before 5.2, or without `CAP_SYS_ADMIN`), `/proc` serves; so it
/// does where `/proc/sys` is mounted read-only (Docker's containers without
/// `--privileged`): that is the environment's choice, and a procfs of
/// bridgelab's own must not get around it.
pub struct ProcSys {
    /// The root of the current private instance, once one is made.
    instance: Option<std::os::fd::OwnedFd>,
    /// Namespaces entered since that instance was made.
    served: usize,
    /// Whether `/proc` serves: the kernel refused an instance,
    /// `/proc/sys` is read-only, or this serves a one-off.
    refused: bool,
    /// `sys/net` of the namespace entered last, once looked up.
    net: Option<File>,
}

impl ProcSys {
    pub fn new() -> Self {
        let read_only =
            rustix::fs::statvfs("/proc/sys").is_ok_and(|v| v.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY));
        ProcSys { instance: None, served: 0, refused: read_only, net: None }
    }

    /// The calling thread has just entered (or made) another namespace.
    pub fn enter(&mut self) {
        self.net = None;
        if self.refused {
            return;
        }
        if self.instance.is_none() || self.served >= NAMESPACES_PER_PROC {
            self.instance = private_proc().ok();
            self.refused = self.instance.is_none();
            self.served = 0;
        }
        self.served += 1;
    }

    /// `/proc` itself, for a one-off: no instance of its own to pay for.
    fn through_proc() -> Self {
        ProcSys { instance: None, served: 0, refused: true, net: None }
    }

    /// The sysctls of the namespace entered last.
    pub fn here(&mut self) -> SysctlsHere<'_> {
        SysctlsHere { procs: Procs::Lent(self) }
    }

    fn net(&mut self) -> io::Result<&File> {
        let net = match (self.net.take(), &self.instance) {
            (Some(net), _) => net,
            (None, Some(root)) => File::from(rustix::fs::openat(
                root,
                "sys/net",
                rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )?),
            (None, None) => File::open("/proc/sys/net")?,
        };
        Ok(self.net.insert(net))
    }
}

impl Default for ProcSys {
    fn default() -> Self {
        Self::new()
    }
}

/// A procfs instance of bridgelab's own, attached to no mount tree.
fn private_proc() -> io::Result<std::os::fd::OwnedFd> {
    use rustix::mount::{fsconfig_create, fsmount, fsopen, FsMountFlags, FsOpenFlags, MountAttrFlags};
    let fs = fsopen("proc", FsOpenFlags::FSOPEN_CLOEXEC)?;
    fsconfig_create(&fs)?;
    let attrs =
        MountAttrFlags::MOUNT_ATTR_NOSUID | MountAttrFlags::MOUNT_ATTR_NODEV | MountAttrFlags::MOUNT_ATTR_NOEXEC;
    Ok(fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, attrs)?)
}

/// The sysctls of the calling thread's namespace, reached through one
/// handle on its `/proc/sys/net` (see [`ProcSys`] for why not by path).
/// Only for use while the thread stays in that namespace.
pub struct SysctlsHere<'a> {
    procs: Procs<'a>,
}

/// The [`ProcSys`] a [`SysctlsHere`] goes through: a one-off's own, or
/// one that serves namespace after namespace.
enum Procs<'a> {
    Own(ProcSys),
    Lent(&'a mut ProcSys),
}

impl Default for SysctlsHere<'_> {
    fn default() -> Self {
        Self::new()
    }
}

impl SysctlsHere<'_> {
    /// Through `/proc`, for a one-off.
    pub fn new() -> Self {
        SysctlsHere { procs: Procs::Own(ProcSys::through_proc()) }
    }

    fn open(&mut self, key: &str, read: bool, write: bool) -> io::Result<File> {
        let flags = match (read, write) {
            (true, true) => rustix::fs::OFlags::RDWR,
            (false, true) => rustix::fs::OFlags::WRONLY,
            _ => rustix::fs::OFlags::RDONLY,
        };
        let Some(rest) = key.strip_prefix("net.") else {
            return File::options().read(read).write(write).open(sysctl_path(key));
        };
        let procs = match &mut self.procs {
            Procs::Own(p) => p,
            Procs::Lent(p) => &mut **p,
        };
        let dir = procs.net()?;
        let fd = rustix::fs::openat(
            dir,
            rest.replace('.', "/"),
            flags | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )?;
        Ok(File::from(fd))
    }

    pub fn write(&mut self, key: &str, value: &str) -> io::Result<()> {
        use std::io::Write;
        named(key, self.open(key, false, true).and_then(|mut f| f.write_all(value.as_bytes())))
    }

    /// Writes a sysctl through a descriptor that can also read it, and
    /// keeps that (`None` for a file only its owner may read, written the
    /// plain way).
    fn write_kept(&mut self, key: &str, value: &str) -> io::Result<Option<File>> {
        use std::io::Write;
        match self.open(key, true, true) {
            Ok(mut f) => named(key, f.write_all(value.as_bytes())).map(|()| Some(f)),
            Err(_) => self.write(key, value).map(|()| None),
        }
    }

    pub fn read(&mut self, key: &str) -> io::Result<String> {
        named(key, self.open(key, true, false).and_then(|f| read_from_start(&f)))
    }
}

/// An error of a sysctl's file, naming the file.
fn named<T>(key: &str, r: io::Result<T>) -> io::Result<T> {
    r.map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", sysctl_path(key).display())))
}

/// A socket of `kind` bound to an IPv6 address with `IPV6_V6ONLY`, as Go
/// binds `tcp6`/`udp6` (`docker-proxy` on `::`): it shares no port with
/// the IPv4 sockets, so `0.0.0.0:P` and `[::]:P` can both be bound.
fn v6only(kind: nix::sys::socket::SockType, addr: std::net::SocketAddrV6) -> io::Result<std::os::fd::OwnedFd> {
    use nix::sys::socket::{bind, setsockopt, socket, sockopt, AddressFamily, SockFlag, SockaddrIn6};
    let fd = socket(AddressFamily::Inet6, kind, SockFlag::SOCK_CLOEXEC, None)?;
    // std binds its listeners with SO_REUSEADDR; so does Go.
    setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    setsockopt(&fd, sockopt::Ipv6V6Only, &true)?;
    bind(fd.as_raw_fd(), &SockaddrIn6::from(addr))?;
    Ok(fd)
}

/// A non-blocking TCP listener bound inside `ns`, for tokio (v6-only on
/// an IPv6 address).
pub fn tcp_listener(ns: &File, addr: std::net::SocketAddr) -> io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::from_std(run_in(ns, move || tcp_listener_here(addr))?)
}

/// A non-blocking TCP listener bound in the calling thread's namespace.
pub fn tcp_listener_here(addr: std::net::SocketAddr) -> io::Result<std::net::TcpListener> {
    let l = match addr {
        std::net::SocketAddr::V4(_) => std::net::TcpListener::bind(addr)?,
        std::net::SocketAddr::V6(a) => {
            let fd = v6only(nix::sys::socket::SockType::Stream, a)?;
            nix::sys::socket::listen(&fd, nix::sys::socket::Backlog::new(128)?)?;
            std::net::TcpListener::from(fd)
        }
    };
    l.set_nonblocking(true)?;
    Ok(l)
}

/// A non-blocking UDP socket bound inside `ns` (and connected to `peer`
/// when given), for tokio (v6-only on an IPv6 address).
pub fn udp_socket(
    ns: &File,
    addr: std::net::SocketAddr,
    peer: Option<std::net::SocketAddr>,
) -> io::Result<tokio::net::UdpSocket> {
    tokio::net::UdpSocket::from_std(run_in(ns, move || udp_socket_here(addr, peer))?)
}

/// A non-blocking UDP socket bound in the calling thread's namespace.
pub fn udp_socket_here(
    addr: std::net::SocketAddr,
    peer: Option<std::net::SocketAddr>,
) -> io::Result<std::net::UdpSocket> {
    let s = match addr {
        std::net::SocketAddr::V4(a) => {
            // With SO_REUSEADDR, as Docker 28 binds a published UDP
            // port: 0.0.0.0:P and 127.0.0.1:P of one run both bind
            // (the plan says which binds Docker refuses).
            use nix::sys::socket::{bind, setsockopt, socket, sockopt, AddressFamily, SockFlag, SockType, SockaddrIn};
            let fd = socket(AddressFamily::Inet, SockType::Datagram, SockFlag::SOCK_CLOEXEC, None)?;
            setsockopt(&fd, sockopt::ReuseAddr, &true)?;
            bind(fd.as_raw_fd(), &SockaddrIn::from(a))?;
            std::net::UdpSocket::from(fd)
        }
        std::net::SocketAddr::V6(a) => std::net::UdpSocket::from(v6only(nix::sys::socket::SockType::Datagram, a)?),
    };
    if let Some(p) = peer {
        s.connect(p)?;
    }
    s.set_nonblocking(true)?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::unescape_mountinfo;

    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(unescape_mountinfo("/run/netns/bl-1-web"), "/run/netns/bl-1-web");
        assert_eq!(unescape_mountinfo("/run/my\\040ns\\134x"), "/run/my ns\\x");
        assert_eq!(unescape_mountinfo("/a\\04"), "/a\\04");
    }

    /// Sysctls written through private procfs instances land in the
    /// namespace the thread is in, as read by path through `/proc`, for
    /// more namespaces than one instance serves; the caller's stay as
    /// they were.
    #[test]
    fn private_proc_instances_reach_the_threads_own_namespace() {
        use super::{run_in, ProcSys, NAMESPACES_PER_PROC};
        use nix::sched::{unshare, CloneFlags};
        assert!(
            nix::unistd::geteuid().is_root(),
            "unshare needs root: run `sudo -E cargo test` (CI runs it as root; it is never skipped)"
        );
        let key = "net.ipv4.ip_unprivileged_port_start";
        let before = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start").unwrap();
        let n = NAMESPACES_PER_PROC * 2 + 3;
        let (made, private) = std::thread::spawn(move || {
            let mut procs = ProcSys::new();
            let mut made = Vec::new();
            for i in 0..n {
                unshare(CloneFlags::CLONE_NEWNET).unwrap();
                made.push(std::fs::File::open("/proc/thread-self/ns/net").unwrap());
                procs.enter();
                procs.here().write(key, &(100 + i).to_string()).unwrap();
            }
            (made, !procs.refused)
        })
        .join()
        .unwrap();
        assert!(private, "this kernel (5.2 or later, as root) must give private procfs instances");
        for (i, ns) in made.iter().enumerate() {
            let v = run_in(ns, || std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")).unwrap();
            assert_eq!(v.trim(), (100 + i).to_string(), "namespace {i}");
        }
        let after = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start").unwrap();
        assert_eq!(before, after);
    }

    /// Sysctls written and read back by the namespace's maker: every key
    /// is read once all are written (a key listed before the write that
    /// changes it shows the change), a written one through its own
    /// descriptor, as a reader by path would see it.
    #[test]
    fn sysctls_are_read_back_once_all_are_written() {
        use super::{write_then_read_here, ProcSys};
        use nix::sched::{unshare, CloneFlags};
        assert!(nix::unistd::geteuid().is_root(), "unshare needs root (CI runs this as root; never skipped)");
        let keys = [
            ("net.ipv4.conf.all.forwarding", None),
            ("net.ipv4.ping_group_range", Some("0 2147483647")),
            ("net.ipv4.ip_unprivileged_port_start", None),
            ("net.ipv4.ip_forward", Some("1")),
        ];
        let (values, by_path) = std::thread::spawn(move || {
            unshare(CloneFlags::CLONE_NEWNET).unwrap();
            let mut procs = ProcSys::new();
            procs.enter();
            let values = write_then_read_here(&mut procs.here(), &keys).unwrap();
            let by_path: Vec<String> = keys
                .iter()
                .map(|(k, _)| std::fs::read_to_string(super::sysctl_path(k)).unwrap().trim().to_string())
                .collect();
            (values, by_path)
        })
        .join()
        .unwrap();
        assert_eq!(values, ["1", "0\t2147483647", "1024", "1"]);
        assert_eq!(values, by_path);
    }

    /// A lab's namespaces are mounted in its own tmpfs, named by links under
    /// `/run/netns` only once asked; one can go alone (with its name), the
    /// rest go with the lab's directory in one unmount, and nothing is
    /// left. A `bl-` link that leads out of the labs' directory is
    /// unlinked, never followed.
    #[test]
    fn a_labs_namespaces_live_in_its_directory_and_go_with_it() {
        use super::{create_all, name_all, remove, remove_all};
        use crate::registry::{lab_netns_dir, namespace_name, NETNS_DIR};
        use std::path::{Path, PathBuf};
        assert!(nix::unistd::geteuid().is_root(), "namespaces need root (CI runs this as root; never skipped)");
        let run = format!("7e57{:04x}", std::process::id() & 0xffff);
        let lab = lab_netns_dir(&run);
        let names: Vec<(String, String)> =
            ["a", "b", "c"].iter().map(|n| (n.to_string(), namespace_name(&run, n))).collect();
        let (made, err) = create_all(&names, &lab, |_, _| Ok(()));
        assert!(err.is_none(), "{err:?}");
        let links: Vec<PathBuf> = names.iter().map(|(_, name)| Path::new(NETNS_DIR).join(name)).collect();
        let mounted =
            |p: &Path| std::fs::read_to_string("/proc/self/mountinfo").unwrap().contains(&format!(" {} ", p.display()));
        assert!(mounted(&lab), "{} is no mount point", lab.display());
        for ((ns, ()), ((_, name), link)) in made.iter().zip(names.iter().zip(&links)) {
            assert_eq!(ns.path, lab.join(name));
            assert_eq!(&ns.name(), link);
            assert!(mounted(&ns.path));
            assert!(std::fs::symlink_metadata(link).is_err(), "{} is named unasked", link.display());
        }
        let namespaces: Vec<_> = made.into_iter().map(|(ns, ())| ns).collect();
        // Named twice: the second time finds its own links.
        for _ in 0..2 {
            name_all(&namespaces).unwrap();
            for ns in &namespaces {
                assert_eq!(std::fs::read_link(ns.name()).unwrap(), ns.path);
            }
        }
        // One alone: its mount and its name, not the others'.
        namespaces[0].remove().unwrap();
        assert!(std::fs::symlink_metadata(&links[0]).is_err());
        assert!(!mounted(&namespaces[0].path));
        assert!(mounted(&namespaces[1].path));
        // The rest with the directory, whatever was removed already.
        assert!(remove_all(&lab, &links, true).is_empty());
        assert!(!mounted(&lab) && !lab.exists(), "{} is left", lab.display());
        for p in &links {
            assert!(std::fs::symlink_metadata(p).is_err(), "{} is left", p.display());
        }
        drop(namespaces);
        // Someone else's file behind a bl- name survives its removal.
        let outside = tempfile::NamedTempFile::new().unwrap();
        let link = Path::new(NETNS_DIR).join(namespace_name(&run, "elsewhere"));
        std::os::unix::fs::symlink(outside.path(), &link).unwrap();
        remove(&link).unwrap();
        assert!(std::fs::symlink_metadata(&link).is_err());
        assert!(outside.path().exists());
    }
}
