//! Named network namespaces without `ip netns`: `unshare` in a worker thread,
//! bind-mount `/proc/thread-self/ns/net` under `/run/netns`, keep an fd.
//!
//! Only threads ever change namespace, never the calling one, so the rest of
//! the process (and the tokio runtime) stays in the namespace it started in.

use std::fs::{self, File};
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};

use crate::registry::NETNS_DIR;

/// A namespace this lab created, bind-mounted at `path`.
#[derive(Debug)]
pub struct NetNs {
    pub node: String,
    pub path: PathBuf,
    pub file: File,
}

/// Creates one namespace per `(node, name)` in a single worker thread.
/// Stops at the first failure and returns what was created so far with the
/// error, so the caller can remove it.
pub fn create_all(names: &[(String, String)]) -> (Vec<NetNs>, Option<io::Error>) {
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut made = Vec::new();
            if let Err(e) = fs::create_dir_all(NETNS_DIR) {
                return (made, Some(e));
            }
            for (node, name) in names {
                match create_one(node, &Path::new(NETNS_DIR).join(name)) {
                    Ok(ns) => made.push(ns),
                    Err(e) => return (made, Some(e)),
                }
            }
            (made, None)
        })
        .join()
        .unwrap_or_else(|_| (Vec::new(), Some(io::Error::other("namespace worker panicked"))))
    })
}

fn create_one(node: &str, path: &Path) -> io::Result<NetNs> {
    // Each unshare gives this worker thread a brand-new network namespace.
    unshare(CloneFlags::CLONE_NEWNET)
        .map_err(|e| io::Error::new(io::Error::from(e).kind(), format!("unshare(CLONE_NEWNET): {e}")))?;
    // This thread is inside the new namespace, so /proc/sys/net is its own.
    lift_icmp_limits()?;
    fs::OpenOptions::new().write(true).create_new(true).mode(0o000).open(path)?;
    if let Err(e) = mount(Some("/proc/thread-self/ns/net"), path, None::<&str>, MsFlags::MS_BIND, None::<&str>) {
        let _ = fs::remove_file(path);
        return Err(io::Error::other(format!("bind-mount {}: {e}", path.display())));
    }
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) => {
            let _ = remove(path);
            return Err(e);
        }
    };
    Ok(NetNs { node: node.to_string(), path: path.to_path_buf(), file })
}

/// Sysctls bridgelab sets in every namespace it creates, before anything
/// else happens there: the kernel's ICMP rate limits (per destination and
/// global) would otherwise eat port-unreachable and other ICMP errors when
/// many probes run at once, and turn `refused` into `blocked` by chance.
/// `icmp_ratemask = 0` exempts every ICMP type from both limits; the others
/// lift the limits themselves. This is bridgelab's change, not Docker's.
pub const LAB_SYSCTLS: &[(&str, &str)] = &[
    ("net.ipv4.icmp_ratemask", "0"),
    ("net.ipv4.icmp_ratelimit", "0"),
    // Far above any lab's rate, and small enough that the kernel's
    // `per_sec * jiffies` cannot overflow.
    ("net.ipv4.icmp_msgs_per_sec", "1000000"),
    ("net.ipv4.icmp_msgs_burst", "1000000"),
];

/// Which of [`LAB_SYSCTLS`] a kernel may lack in a namespace: older kernels
/// keep the global ICMP limit in the initial namespace only (there
/// `icmp_ratemask = 0` alone exempts ICMP errors from it).
fn optional(key: &str) -> bool {
    key.starts_with("net.ipv4.icmp_msgs_")
}

/// Writes [`LAB_SYSCTLS`] in the namespace of the calling thread, which must
/// be one the lab has just created (never the one bridgelab started in).
fn lift_icmp_limits() -> io::Result<()> {
    for (key, value) in LAB_SYSCTLS {
        let path = sysctl_path(key);
        match fs::write(&path, value) {
            Err(e) if e.kind() == io::ErrorKind::NotFound && optional(key) => {}
            Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
            Ok(()) => {}
        }
    }
    Ok(())
}

/// Unmounts and unlinks a named namespace. A namespace that is already gone
/// is not an error: teardown may run twice (explicit `down`, then `Drop`).
pub fn remove(path: &Path) -> io::Result<()> {
    match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => return Err(io::Error::other(format!("umount {}: {e}", path.display()))),
    }
    match fs::remove_file(path) {
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

/// Reads a sysctl inside a namespace (`net.ipv4.ip_forward`).
pub fn read_sysctl(ns: &File, key: &str) -> io::Result<String> {
    let path = sysctl_path(key);
    run_in(ns, move || fs::read_to_string(&path).map(|s| s.trim().to_string()))
}

/// Writes a sysctl inside a namespace. `/proc/sys/net` follows the namespace
/// of the thread that opens it, so this never touches the caller's.
pub fn write_sysctl(ns: &File, key: &str, value: &str) -> io::Result<()> {
    let path = sysctl_path(key);
    run_in(ns, move || {
        fs::write(&path, value).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
    })
}

fn sysctl_path(key: &str) -> PathBuf {
    Path::new("/proc/sys").join(key.replace('.', "/"))
}

/// A non-blocking TCP listener bound inside `ns`, for tokio.
pub fn tcp_listener(ns: &File, addr: std::net::SocketAddr) -> io::Result<tokio::net::TcpListener> {
    let l = run_in(ns, move || {
        let l = std::net::TcpListener::bind(addr)?;
        l.set_nonblocking(true)?;
        Ok(l)
    })?;
    tokio::net::TcpListener::from_std(l)
}

/// A non-blocking UDP socket bound inside `ns` (and connected to `peer`
/// when given), for tokio.
pub fn udp_socket(
    ns: &File,
    addr: std::net::SocketAddr,
    peer: Option<std::net::SocketAddr>,
) -> io::Result<tokio::net::UdpSocket> {
    let s = run_in(ns, move || {
        let s = std::net::UdpSocket::bind(addr)?;
        if let Some(p) = peer {
            s.connect(p)?;
        }
        s.set_nonblocking(true)?;
        Ok(s)
    })?;
    tokio::net::UdpSocket::from_std(s)
}
