//! The iptables tools bridgelab runs: a Ctrl-C meant for bridgelab does not
//! reach them, one killed by a signal is an interruption, none outlives a
//! SIGKILLed bridgelab, and their failures are reported with their words.
//!
//! Stand-ins on PATH (common::FakeTools) hold a tool at a known point: they
//! say their pid through a FIFO, then wait for the test's go.

mod common;

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// An `iptables-restore` whose first run stops before the real tool: it
/// writes its pid to `started`, then waits for a line on `go`.
struct HeldRestore {
    tools: common::FakeTools,
    started: PathBuf,
    go: PathBuf,
}

impl HeldRestore {
    fn new() -> HeldRestore {
        let tools = common::FakeTools::new();
        let started = tools.dir.path().join("started");
        let go = tools.dir.path().join("go");
        for f in [&started, &go] {
            nix::unistd::mkfifo(f, nix::sys::stat::Mode::S_IRWXU).unwrap();
        }
        // Only the first run is held (`mkdir` is atomic); `go` is opened
        // read-write so that the test's write never waits for a reader.
        tools.add(
            "iptables-restore",
            &format!(
                r#"if mkdir '{dir}/once' 2>/dev/null; then
  exec 3<>'{go}'
  echo $$ > '{started}'
  read x <&3
  exec 3<&-
fi
exec "$REAL" "$@""#,
                dir = tools.dir.path().display(),
                go = go.display(),
                started = started.display()
            ),
        );
        HeldRestore { tools, started, go }
    }

    /// Blocks until the held tool has started; its pid.
    fn wait_started(&self) -> i32 {
        std::fs::read_to_string(&self.started).unwrap().trim().parse().unwrap()
    }

    /// Lets the held tool go on, if it still runs.
    fn release(&self) {
        use std::os::unix::fs::OpenOptionsExt;
        let f = std::fs::OpenOptions::new().write(true).custom_flags(nix::libc::O_NONBLOCK).open(&self.go);
        if let Ok(mut f) = f {
            let _ = f.write_all(b"go\n");
        }
    }
}

/// Field `n` (1-based) of /proc/PID/stat.
fn stat_field(pid: i32, n: usize) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(n - 3).map(str::to_string)
}

fn run_id_of_pid(pid: u32) -> String {
    bridgelab::registry::Registry::default()
        .list()
        .into_iter()
        .find(|r| r.pid == pid)
        .expect("the run has a record before it runs iptables")
        .run_id
}

/// A terminal's Ctrl-C goes to the whole foreground process group. Sent
/// while `iptables-restore` runs, it reaches bridgelab only: the tool
/// finishes its table, and bridgelab tears down with 130, "interrupted".
#[test]
fn ctrl_c_during_iptables_restore_reaches_only_bridgelab() {
    common::require_root();
    let held = HeldRestore::new();
    let child = held
        .tools
        .bridgelab()
        .arg("run")
        .arg(common::scenario_path("default.toml"))
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let tool = held.wait_started();
    let run_id = run_id_of_pid(child.id());
    let group = stat_field(tool, 5).unwrap();
    killpg(Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
    held.release();
    let bridgelab_group = child.id().to_string();
    let out = common::wait_at_most(child, Duration::from_secs(60)).expect("bridgelab ended");
    // Spawned with process_group(0), bridgelab leads its own group.
    assert_ne!(group, bridgelab_group, "iptables-restore ran in bridgelab's process group: Ctrl-C reaches it");
    assert_eq!(out.status.code(), Some(130), "{}{}", text(&out.stdout), text(&out.stderr));
    assert!(text(&out.stderr).contains("interrupted (SIGINT); lab removed"), "{}", text(&out.stderr));
    assert!(common::namespaces_of(&run_id).is_empty());
    assert!(bridgelab::registry::Registry::default().get(&run_id).is_none());
}

/// A tool ended by a job signal meant for bridgelab (here it kills itself)
/// is an interruption: exit 130 and "interrupted", not exit 3 with an empty
/// message.
#[test]
fn an_iptables_tool_killed_by_sigint_is_an_interruption() {
    common::require_root();
    let tools = common::FakeTools::new();
    tools.add("iptables-restore", "cat >/dev/null; kill -INT $$");
    let out = tools.bridgelab().arg("run").arg(common::scenario_path("default.toml")).output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}{}", text(&out.stdout), text(&out.stderr));
    let err = text(&out.stderr);
    // One restore takes every IPv4 table: it names them all.
    assert!(err.contains("interrupted: host: iptables-restore (tables filter, nat) was killed by SIGINT"), "{err}");
}

/// SIGKILL bridgelab while its `iptables-restore` runs: the tool dies with
/// it (it would otherwise hold the lab's host namespace alive), and
/// `cleanup` leaves nothing of the run.
#[test]
fn a_sigkilled_run_leaves_no_iptables_tool_behind() {
    common::require_root();
    let held = HeldRestore::new();
    let mut child = held
        .tools
        .bridgelab()
        .arg("run")
        .arg(common::scenario_path("default.toml"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let tool = held.wait_started();
    let run_id = run_id_of_pid(child.id());
    // A pidfd becomes readable when the process ends.
    let pidfd = unsafe { nix::libc::syscall(nix::libc::SYS_pidfd_open, tool, 0) } as i32;
    assert!(pidfd >= 0, "pidfd_open: {}", std::io::Error::last_os_error());
    child.kill().unwrap();
    child.wait().unwrap();
    let mut pfd = nix::libc::pollfd { fd: pidfd, events: nix::libc::POLLIN, revents: 0 };
    let ready = unsafe { nix::libc::poll(&mut pfd, 1, 10_000) };
    unsafe { nix::libc::close(pidfd) };
    if ready != 1 {
        held.release();
        panic!("iptables-restore (pid {tool}) outlived its SIGKILLed bridgelab");
    }
    let out = std::process::Command::new(common::bridgelab_bin()).arg("cleanup").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(&format!("removed lab {run_id}")), "{}", text(&out.stdout));
    assert!(common::namespaces_of(&run_id).is_empty());
    assert!(bridgelab::registry::Registry::default().get(&run_id).is_none());
}

/// `iptables-save -c` fails while a surprise is explained: the reason says
/// so, with the tool's words, instead of blaming routing.
#[test]
fn a_failed_iptables_save_c_is_reported() {
    common::require_root();
    let dir = tempfile::tempdir().unwrap();
    let path = common::temp_scenario(
        &dir,
        "blocked",
        "[daemon]\nicc = false\n[[container]]\nname = \"aa\"\nlisten = [\"tcp:80\"]\n[[container]]\nname = \"bb\"\n\
         [[expect]]\nfrom = \"bb\"\nto = \"aa\"\nprobe = \"tcp:80\"\nresult = \"reachable\"\n",
    );
    let tools = common::FakeTools::new();
    tools.add(
        "iptables-save",
        r#"case " $* " in *" -c "*) echo "fake: counters are unavailable" >&2; exit 1;; esac
exec "$REAL" "$@""#,
    );
    let out = tools.bridgelab().arg("run").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let t = text(&out.stdout);
    assert!(
        t.contains("cannot tell which host rule dropped it: host: iptables-save -c: fake: counters are unavailable"),
        "{t}"
    );
}

/// `iptables-restore` stops reading and fails: its own words are kept,
/// with the failed write, and it is waited for (its status is known).
#[test]
fn iptables_restore_failing_mid_write_keeps_its_words() {
    common::require_root();
    let dir = tempfile::tempdir().unwrap();
    // A thousand published ports: more rules than a pipe holds.
    let path =
        common::temp_scenario(&dir, "many", "[[container]]\nname = \"aa\"\npublish = [\"20000-20999:20000-20999\"]\n");
    let tools = common::FakeTools::new();
    tools.add("iptables-restore", "exec 0<&-; echo 'fake: cannot take these rules' >&2; exit 1");
    let out = tools.bridgelab().arg("run").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("iptables-restore (tables "), "{err}");
    assert!(err.contains("): fake: cannot take these rules"), "{err}");
    assert!(err.contains("writing its input failed: Broken pipe"), "{err}");
}
