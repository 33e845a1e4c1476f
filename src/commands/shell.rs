//! `bridgelab shell RUN NODE [-- CMD...]`: a shell or command inside a
//! node's network namespace, as `ip netns exec` runs it.

use std::ffi::CString;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};
use nix::sys::signal::{signal, SigHandler, Signal};

use super::fail;
use bridgelab::registry::{namespace_name, namespace_path, Registry};

pub fn run(run_id: &str, node: &str, command: &[String]) -> u8 {
    if let Err(e) = bridgelab::apply::check_environment() {
        return fail(&e);
    }
    let reg = Registry::default();
    let ns_node = match node_namespace(&reg, run_id, node) {
        Ok(n) => n,
        Err(e) => return fail(&e),
    };
    let name = namespace_name(run_id, &ns_node);
    // Where it is mounted: a lab is named under /run/netns only when kept or held.
    let path = namespace_path(run_id, &ns_node);
    let ns = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) => {
            eprintln!(
                "bridgelab: lab {run_id} is gone or half gone: {} ({e}); `bridgelab down {run_id}` or `bridgelab cleanup` removes what is left",
                path.display()
            );
            return 3;
        }
    };
    let (program, args) = match command.split_first() {
        Some((p, rest)) => (p.clone(), rest.to_vec()),
        None => (std::env::var("SHELL").ok().filter(|s| !s.is_empty()).unwrap_or_else(|| "/bin/sh".into()), vec![]),
    };
    // Prepared before the fork: the child may not allocate.
    let sys_source = CString::new(name.clone()).unwrap_or_default();
    let etc = etc_binds(&name);
    let mut cmd = std::process::Command::new(&program);
    cmd.args(&args).env("BRIDGELAB_RUN", run_id).env("BRIDGELAB_NODE", node);
    // SAFETY: between fork and exec the child only makes system calls
    // (setns, unshare, mount, signal) on data prepared above.
    unsafe {
        cmd.pre_exec(move || enter(&ns, &sys_source, &etc));
    }
    if command.is_empty() {
        eprintln!("bridgelab: {program} in node {node} of lab {run_id} (namespace {name}); exit to leave");
    }
    // Like system(3): Ctrl-C and Ctrl-\ are the command's, not ours.
    // SAFETY: no handlers of ours are replaced (this verb installs none).
    let old = unsafe { (signal(Signal::SIGINT, SigHandler::SigIgn), signal(Signal::SIGQUIT, SigHandler::SigIgn)) };
    let status = cmd.status();
    unsafe {
        if let Ok(h) = old.0 {
            let _ = signal(Signal::SIGINT, h);
        }
        if let Ok(h) = old.1 {
            let _ = signal(Signal::SIGQUIT, h);
        }
    }
    match status {
        Ok(s) => match (s.code(), s.signal()) {
            (Some(c), _) => c as u8,
            (None, Some(sig)) => 128u8.wrapping_add(sig as u8),
            (None, None) => 3,
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("bridgelab: {program}: command not found");
            127
        }
        Err(e) => {
            eprintln!("bridgelab: cannot enter namespace {name} (setns, mount namespace, /sys) or run {program}: {e}");
            126
        }
    }
}

/// The node whose namespace NODE names: a node of the lab, or a container
/// that lives in another's namespace (`host` or `container:` mode).
fn node_namespace(reg: &Registry, run_id: &str, node: &str) -> bridgelab::Result<String> {
    bridgelab::registry::check_run_id(run_id)?;
    let Some(rec) = reg.get(run_id) else {
        return Err(bridgelab::Error::NoSuchRun(run_id.to_string()));
    };
    if rec.nodes.iter().any(|n| n == node) {
        return Ok(node.to_string());
    }
    let unknown = |why: &str| bridgelab::Error::UnknownNode {
        run_id: run_id.to_string(),
        node: node.to_string(),
        known: format!("{}{why}", rec.nodes.join(", ")),
    };
    let (_, plan) = bridgelab::apply::replan(&rec).map_err(|_| unknown(""))?;
    match plan.container(node).map(|c| c.netns.clone()) {
        Some(Some(ns)) => Ok(ns),
        Some(None) => Err(unknown(" (that container is not running)")),
        None => Err(unknown("")),
    }
}

/// `/etc/netns/NAME/FILE` bind-mounted over `/etc/FILE`, as `ip netns exec`
/// does: (source, target) pairs.
fn etc_binds(name: &str) -> Vec<(CString, CString)> {
    let dir = PathBuf::from("/etc/netns").join(name);
    let Ok(entries) = std::fs::read_dir(&dir) else { return vec![] };
    entries
        .flatten()
        .filter_map(|e| {
            let file = e.file_name().into_string().ok()?;
            let src = CString::new(dir.join(&file).into_os_string().into_encoded_bytes()).ok()?;
            let dst = CString::new(format!("/etc/{file}")).ok()?;
            Some((src, dst))
        })
        .collect()
}

/// In the child: iproute2's `netns_switch` (lib/namespace.c). Join the
/// network namespace; unshare a mount namespace, and make it a slave so
/// nothing mounted here leaks back; remount /sys, so that it lists this
/// namespace's interfaces (sysfs shows the network namespace of whoever
/// mounts it), read-only if it could not be unmounted and is read-only;
/// then the /etc/netns bind mounts. Signals back to their defaults.
fn enter(ns: &std::fs::File, sys_source: &CString, etc: &[(CString, CString)]) -> std::io::Result<()> {
    use std::os::fd::AsFd;
    // No allocation after fork: the bare errno, which the parent reports.
    let err = |_what: &'static str| |e: nix::errno::Errno| std::io::Error::from_raw_os_error(e as i32);
    setns(ns.as_fd(), CloneFlags::CLONE_NEWNET).map_err(err("setns"))?;
    unshare(CloneFlags::CLONE_NEWNS).map_err(err("unshare(CLONE_NEWNS)"))?;
    mount(None::<&str>, "/", Some("none"), MsFlags::MS_SLAVE | MsFlags::MS_REC, None::<&str>)
        .map_err(err("mount --make-rslave /"))?;
    let mut flags = MsFlags::empty();
    if umount2("/sys", MntFlags::MNT_DETACH).is_err() {
        if let Ok(st) = nix::sys::statvfs::statvfs("/sys") {
            if st.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY) {
                flags = MsFlags::MS_RDONLY;
            }
        }
    }
    mount(Some(sys_source.as_c_str()), "/sys", Some("sysfs"), flags, None::<&str>).map_err(err("mount /sys"))?;
    for (src, dst) in etc {
        // As iproute2: a file that cannot be bound is skipped.
        let _ = mount(Some(src.as_c_str()), dst.as_c_str(), Some("none"), MsFlags::MS_BIND, None::<&str>);
    }
    for sig in [Signal::SIGINT, Signal::SIGQUIT] {
        // SAFETY: resetting to the default handler is async-signal-safe.
        let _ = unsafe { signal(sig, SigHandler::SigDfl) };
    }
    Ok(())
}
