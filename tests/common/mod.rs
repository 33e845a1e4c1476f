//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod scale;

use std::path::{Path, PathBuf};

/// Root tests must run, not skip: without root this fails loudly.
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test builds network namespaces and needs root: run `sudo -E cargo test` \
         (CI runs it as root; it is never skipped)"
    );
}

/// The namespaces of one run (mounted in its lab's directory, or named
/// under /run/netns).
pub fn namespaces_of(run_id: &str) -> Vec<String> {
    bridgelab::registry::lab_namespaces()
        .into_iter()
        .filter(|n| bridgelab::registry::run_id_of(n) == Some(run_id))
        .collect()
}

pub fn scenario_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios").join(name)
}

/// Every shipped scenario file: `scenarios/*.toml` and the bug library in
/// `scenarios/bugs/*.toml`, sorted.
pub fn shipped_scenarios() -> Vec<PathBuf> {
    let root = scenario_path("");
    let mut files = Vec::new();
    for dir in [root.clone(), root.join("bugs")] {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for e in entries {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "toml") {
                files.push(p);
            }
        }
    }
    files.sort();
    files
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

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::Duration;

use bridgelab::apply::netns::run_in;
use bridgelab::RunningLab;

/// How long silence lasts before a connection attempt counts as blocked.
pub const BLOCKED_AFTER: Duration = Duration::from_millis(1000);

/// A TCP responder inside `node`'s namespace that reports each client's
/// address and echoes one line.
pub fn tcp_responder(lab: &RunningLab, node: &str, port: u16) -> std::sync::mpsc::Receiver<SocketAddr> {
    let l = run_in(lab.netns_file(node).unwrap(), move || TcpListener::bind(("0.0.0.0", port))).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let _ = tx.send(s.peer_addr().unwrap());
            let mut s = s;
            let mut buf = [0u8; 64];
            if let Ok(n) = s.read(&mut buf) {
                let _ = s.write_all(&buf[..n]);
            }
        }
    });
    rx
}

/// A UDP responder inside `node` that echoes datagrams.
pub fn udp_responder(lab: &RunningLab, node: &str, port: u16) {
    let s = run_in(lab.netns_file(node).unwrap(), move || UdpSocket::bind(("0.0.0.0", port))).unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while let Ok((n, peer)) = s.recv_from(&mut buf) {
            let _ = s.send_to(&buf[..n], peer);
        }
    });
}

/// Connects from inside `node` and echoes a line; `Err` when nothing answers.
pub fn tcp_echo(lab: &RunningLab, node: &str, to: SocketAddr) -> std::io::Result<()> {
    let mut s = run_in(lab.netns_file(node).unwrap(), move || TcpStream::connect_timeout(&to, BLOCKED_AFTER))?;
    s.set_read_timeout(Some(BLOCKED_AFTER))?;
    s.write_all(b"ping\n")?;
    let mut buf = [0u8; 5];
    s.read_exact(&mut buf)?;
    assert_eq!(&buf, b"ping\n");
    Ok(())
}

/// Sends a datagram from inside `node` and waits for the echo.
pub fn udp_echo(lab: &RunningLab, node: &str, to: SocketAddr) -> std::io::Result<()> {
    let s = run_in(lab.netns_file(node).unwrap(), || UdpSocket::bind("0.0.0.0:0"))?;
    s.set_read_timeout(Some(BLOCKED_AFTER))?;
    s.send_to(b"hello", to)?;
    let mut buf = [0u8; 16];
    let (n, _) = s.recv_from(&mut buf)?;
    assert_eq!(&buf[..n], b"hello");
    Ok(())
}

/// A blocked attempt: silence until the timeout, not a refusal or a local error.
#[track_caller]
pub fn assert_blocked(r: std::io::Result<()>) {
    match r {
        Err(e) if matches!(e.kind(), std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock) => {}
        other => panic!("expected silence (blocked), got {other:?}"),
    }
}

/// Stand-ins for system tools (`iptables-restore`...), put first on the
/// PATH of a bridgelab under test to make a tool fail, block or report.
pub struct FakeTools {
    pub dir: tempfile::TempDir,
}

impl FakeTools {
    pub fn new() -> FakeTools {
        FakeTools { dir: tempfile::tempdir().unwrap() }
    }

    /// Adds `name` as a shell script; in it, `$REAL` is the real tool.
    pub fn add(&self, name: &str, script: &str) -> &FakeTools {
        use std::os::unix::fs::PermissionsExt;
        let real = real_tool(name);
        let p = self.dir.path().join(name);
        std::fs::write(&p, format!("#!/bin/sh\nREAL='{}'\n{script}\n", real.display())).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        self
    }

    /// A bridgelab command that finds these tools first.
    pub fn bridgelab(&self) -> std::process::Command {
        let path = std::env::var("PATH").unwrap_or_default();
        let mut cmd = std::process::Command::new(bridgelab_bin());
        cmd.env("PATH", format!("{}:{path}", self.dir.path().display())).env_remove("BRIDGELAB_IPTABLES");
        cmd
    }
}

/// Where `name` is found on PATH.
pub fn real_tool(name: &str) -> PathBuf {
    let path = std::env::var("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name} is not on PATH"))
}

/// Waits for a child to end, at most `limit`: `None` if it is still running.
pub fn wait_at_most(child: std::process::Child, limit: Duration) -> Option<std::process::Output> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    rx.recv_timeout(limit).ok().map(|r| r.unwrap())
}

/// Runs `script` (`sh -c`, arguments in `$@`, `$BRIDGELAB` the binary) as
/// root in a private mount namespace with a fresh tmpfs on /run, so every
/// namespace file (`/run/netns`) and run record (`/run/bridgelab`) a run
/// makes stays there to be seen, whatever other tests do meanwhile. The
/// script calls `list_run` to record what /run holds; returns the output and
/// that list.
pub fn in_fresh_run_dir(script: &str, args: &[&str]) -> (std::process::Output, Vec<String>) {
    require_root();
    let listing = tempfile::NamedTempFile::new().unwrap();
    let script = format!(
        "set -e\nmount -t tmpfs bridgelab-test /run\nset +e\n\
         list_run() {{ find /run -mindepth 1 -not -type d > \"$LISTING\"; }}\n{script}"
    );
    let out = std::process::Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script, "sh"])
        .args(args)
        .env("LISTING", listing.path())
        .env("BRIDGELAB", bridgelab_bin())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let left = std::fs::read_to_string(listing.path()).unwrap();
    (out, left.lines().map(String::from).collect())
}

/// `bridgelab ARGS` in a fresh /run: its output and the files it left there.
pub fn run_in_fresh_run_dir(args: &[&str]) -> (std::process::Output, Vec<String>) {
    in_fresh_run_dir("\"$BRIDGELAB\" \"$@\"\nrc=$?\nlist_run\nexit $rc", args)
}
