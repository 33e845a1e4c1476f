//! `iptables-restore` / `iptables-save` inside the host namespace.
//!
//! One atomic `iptables-restore -w --noflush` per table, never a process per
//! rule. The tools run with the lab's namespace joined (`setns` between
//! fork and exec); `-w` waits for the xtables lock other runs share.
//!
//! Which iptables: `BRIDGELAB_IPTABLES=legacy` or `=nft` picks
//! `iptables-legacy-*` or `iptables-nft-*`; unset, the system's
//! `iptables-restore` (Debian's default is the nft variant). Both print the
//! same `iptables-save` text for Docker's rules.
//!
//! The tools run in a process group of their own and die with bridgelab
//! (see [`child_of_lab`]), so neither a Ctrl-C nor a SIGKILL of bridgelab
//! can leave one half-way or behind.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};

use nix::sched::{setns, CloneFlags};
use nix::sys::prctl::set_pdeathsig;
use nix::sys::signal::Signal;

use crate::error::{Error, Result};
use crate::plan::firewall::{join_families, normalize_save, Ruleset};

/// The `iptables-restore` / `iptables-save` pair to use.
pub fn tools() -> (String, String) {
    match std::env::var("BRIDGELAB_IPTABLES").ok().as_deref() {
        Some("legacy") => ("iptables-legacy-restore".into(), "iptables-legacy-save".into()),
        Some("nft") => ("iptables-nft-restore".into(), "iptables-nft-save".into()),
        _ => ("iptables-restore".into(), "iptables-save".into()),
    }
}

/// The `ip6tables-restore` / `ip6tables-save` pair, picked as [`tools`] picks.
pub fn tools6() -> (String, String) {
    let (restore, save) = tools();
    (restore.replacen("iptables", "ip6tables", 1), save.replacen("iptables", "ip6tables", 1))
}

/// Prepares a child: joins the lab's namespace between fork and exec, in
/// a process group of its own (a terminal's Ctrl-C goes to the whole
/// foreground group, and must reach only bridgelab, which then tears down
/// in order), and dies with bridgelab (a SIGKILLed run must leave no tool
/// behind holding a lab's namespace).
pub(crate) fn child_of_lab(cmd: &mut Command, ns: &File) {
    let fd = ns.as_raw_fd();
    let parent = nix::unistd::getpid();
    cmd.process_group(0);
    // SAFETY: only async-signal-safe syscalls (prctl, getppid, setns) run
    // between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            // Fires when the thread that forked exits; that thread waits
            // for the child, so it outlives it unless the process dies.
            set_pdeathsig(Signal::SIGKILL)?;
            // The parent may have died before the line above took effect.
            if nix::unistd::getppid() != parent {
                return Err(io::Error::other("bridgelab exited"));
            }
            setns(BorrowedFd::borrow_raw(fd), CloneFlags::CLONE_NEWNET).map_err(io::Error::from)
        });
    }
}

/// Children are started under the read side of this lock, and a lab that
/// gives up a listening port to bind it again passes through the write
/// side in between (see [`no_child_starting`]). A child holds a copy of
/// every descriptor of this process from `fork` until its `exec` closes
/// them (they are close-on-exec): a proxy's socket closed meanwhile stays
/// bound, and binding its port again fails with `EADDRINUSE`. Seen with
/// labs built side by side in one process (the tests), one stepping while
/// another started `iptables-save`.
static SPAWNING: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// Starts `cmd`; returns once the child has run `exec` (or failed to).
pub(crate) fn spawn(cmd: &mut Command) -> io::Result<Child> {
    let _starting = SPAWNING.read().unwrap_or_else(|p| p.into_inner());
    cmd.spawn()
}

/// Returns once no child that this process started before the call still
/// holds copies of its descriptors: what was closed before is closed.
pub(crate) fn no_child_starting() {
    drop(SPAWNING.write().unwrap_or_else(|p| p.into_inner()));
}

pub(crate) fn missing(tool: &str, e: io::Error) -> Error {
    if e.kind() == io::ErrorKind::NotFound {
        let package = if tool == "nft" { "nftables" } else { "iptables" };
        Error::Environment(format!("{tool} not found: install {package} (apt-get install {package})"))
    } else {
        Error::Environment(format!("cannot run {tool}: {e}"))
    }
}

/// What a finished child means: `what` is the tool with its context. A
/// child ended by a signal that ends jobs is an interruption, not a fault
/// of the host; a failure keeps the tool's own words (or its status).
pub(crate) fn outcome(what: String, status: ExitStatus, stderr: &[u8], write: Option<io::Error>) -> Result<()> {
    let interrupting = [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP, Signal::SIGQUIT, Signal::SIGKILL];
    if let Some(signal) = status.signal().and_then(|s| Signal::try_from(s).ok()) {
        if interrupting.contains(&signal) {
            return Err(Error::Interrupted { what, signal });
        }
    }
    let written = write.map(|e| format!("writing its input failed: {e}"));
    if status.success() {
        return match written {
            None => Ok(()),
            Some(w) => Err(Error::apply(what, io::Error::other(w))),
        };
    }
    let mut msg = String::from_utf8_lossy(stderr).trim().to_string();
    if msg.is_empty() {
        msg = status.to_string();
    }
    if let Some(w) = written {
        msg = format!("{msg} ({w})");
    }
    Err(Error::apply(what, io::Error::other(msg)))
}

/// Runs `cmd` with `input` on its stdin. The input is written on its own
/// thread while this one collects stderr and waits, so neither pipe can
/// stall the other, and the child is reaped with its stderr kept whatever
/// happens to the write.
pub(crate) fn feed(mut cmd: Command, tool: &str, what: String, input: &[u8]) -> Result<()> {
    cmd.stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = spawn(&mut cmd).map_err(|e| missing(tool, e))?;
    let mut stdin = child.stdin.take().expect("piped");
    let (written, out) = std::thread::scope(|s| {
        // Dropping `stdin` at the end of the write closes it: end of input.
        let writer = s.spawn(move || stdin.write_all(input));
        let out = child.wait_with_output();
        (writer.join().unwrap_or_else(|_| Err(io::Error::other("writer panicked"))), out)
    });
    let out = out.map_err(|e| Error::apply(what.clone(), e))?;
    outcome(what, out.status, &out.stderr, written.err())
}

/// Installs every table of `rules`: added to what is there (`noflush`), or
/// replacing each table whole. One `iptables-restore` takes all the IPv4
/// tables and one `ip6tables-restore` the IPv6 ones, the two at once; each
/// table still ends in its own `COMMIT`, and so is its own atomic
/// transaction, as with one process per table. Fewer processes matter
/// more than they seem: with the nf_tables backend, a restore that
/// committed waits on exit for an RCU grace period (the kernel flushes its
/// rule destruction work when the socket closes), some 20 ms each.
pub fn restore(ns: &File, rules: &Ruleset, noflush: bool) -> Result<()> {
    let family = |v6: bool| {
        let tables: Vec<_> = rules.tables.iter().filter(|t| t.table.is_v6() == v6).collect();
        (!tables.is_empty()).then(|| {
            let names: Vec<&str> = tables.iter().map(|t| t.table.name()).collect();
            let text: String = tables.iter().map(|t| rules.table_text(t)).collect();
            (if v6 { tools6() } else { tools() }.0, names, text)
        })
    };
    let run = |(restore, names, text): (String, Vec<&str>, String)| {
        let mut cmd = Command::new(&restore);
        cmd.arg("-w");
        if noflush {
            cmd.arg("--noflush");
        }
        child_of_lab(&mut cmd, ns);
        let s = if names.len() == 1 { "" } else { "s" };
        feed(cmd, &restore, format!("host: {restore} (table{s} {})", names.join(", ")), text.as_bytes())
    };
    let (v4, v6) = std::thread::scope(|s| {
        let v6 = s.spawn(|| family(true).map_or(Ok(()), run));
        (family(false).map_or(Ok(()), run), v6.join())
    });
    v4?;
    v6.unwrap_or_else(|_| Err(Error::Environment("ip6tables-restore runner panicked".into())))
}

/// `iptables-save` of the namespace, normalized like the plan's rendering:
/// no comments, no counters, and tables without any rule or user chain
/// left out (the legacy tools show tables merely touched by a lookup);
/// then, with `v6` and when there is any, the same of `ip6tables-save`
/// (see [`join_families`]). Without `v6` (a lab whose rules have no IPv6
/// table: [`restore`] ran no `ip6tables-restore`, and the namespace is
/// the lab's own) the IPv6 tables are not read at all.
pub fn save(ns: &File, v6: bool) -> Result<String> {
    if !v6 {
        return save4(ns);
    }
    // The two tools at once: each is a process start and a full read.
    let (v4, v6) = std::thread::scope(|s| {
        let v6 = s.spawn(|| save6(ns));
        (save4(ns), v6.join().unwrap_or_else(|_| Err(Error::Environment("ip6tables-save reader panicked".into()))))
    });
    Ok(join_families(&v4?, &v6?))
}

/// `iptables-save` of the namespace alone, normalized as [`save`] is.
pub fn save4(ns: &File) -> Result<String> {
    Ok(canonical_tables(&normalize_save(&raw_save(ns, &[])?)))
}

/// `ip6tables-save` of the namespace (the variant [`tools6`] picks),
/// normalized as [`save`] is.
pub fn save6(ns: &File) -> Result<String> {
    Ok(canonical_tables(&normalize_save(&save_with(&tools6().1, ns, &[])?)))
}

fn raw_save(ns: &File, args: &[&str]) -> Result<String> {
    save_with(&tools().1, ns, args)
}

fn save_with(save: &str, ns: &File, args: &[&str]) -> Result<String> {
    let mut cmd = Command::new(save);
    cmd.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    child_of_lab(&mut cmd, ns);
    let out = spawn(&mut cmd).and_then(Child::wait_with_output).map_err(|e| missing(save, e))?;
    let what = std::iter::once(save).chain(args.iter().copied()).collect::<Vec<_>>().join(" ");
    outcome(format!("host: {what}"), out.status, &out.stderr, None)?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Packet counters of every rule, keyed by `table: -A CHAIN rule` (for
/// finding which rule dropped a probe).
pub fn counters(ns: &File) -> Result<std::collections::HashMap<String, u64>> {
    let text = raw_save(ns, &["-c"])?;
    let mut table = "";
    let mut out = std::collections::HashMap::new();
    for line in text.lines() {
        if let Some(t) = line.strip_prefix('*') {
            table = t;
        } else if let Some(rest) = line.strip_prefix('[') {
            // `[packets:bytes] -A CHAIN rule`
            if let Some((counts, rule)) = rest.split_once("] ") {
                let packets = counts.split(':').next().and_then(|p| p.parse().ok()).unwrap_or(0);
                out.insert(format!("{table}: {rule}"), packets);
            }
        }
    }
    Ok(out)
}

/// Drops tables without rules or user chains and puts the rest in one
/// order (filter, nat, then by name: raw): the legacy tools list tables in the
/// order the kernel instantiated them, which differs from nft's.
fn canonical_tables(text: &str) -> String {
    let mut blocks: Vec<Vec<&str>> = Vec::new();
    let mut block: Vec<&str> = Vec::new();
    for line in text.lines() {
        block.push(line);
        if line == "COMMIT" {
            let empty = block
                .iter()
                .all(|l| l.starts_with('*') || (l.starts_with(':') && l.ends_with(" ACCEPT")) || *l == "COMMIT");
            if !empty {
                blocks.push(std::mem::take(&mut block));
            }
            block.clear();
        }
    }
    fn rank<'a>(b: &[&'a str]) -> (u8, &'a str) {
        match b[0] {
            "*filter" => (0, ""),
            "*nat" => (1, ""),
            other => (2, other),
        }
    }
    blocks.sort_by(|a, b| rank(a).cmp(&rank(b)));
    blocks.iter().flatten().map(|l| format!("{l}\n")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_write_keeps_the_tools_words_and_reaps_it() {
        // The tool closes its input at once and fails: more input than a
        // pipe holds makes the write fail too.
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "exec 0<&-; echo 'line 1: bad rule' >&2; exit 4"]);
        let err = feed(cmd, "sh", "host: tool".into(), &vec![b'#'; 1 << 20]).unwrap_err().to_string();
        assert!(err.starts_with("host: tool: line 1: bad rule"), "{err}");
        assert!(err.contains("writing its input failed"), "{err}");
    }

    #[test]
    fn a_silent_failure_says_its_status() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "cat >/dev/null; exit 3"]);
        let err = feed(cmd, "sh", "host: tool".into(), b"*filter\nCOMMIT\n").unwrap_err().to_string();
        assert_eq!(err, "host: tool: exit status: 3");
    }

    #[test]
    fn a_tool_killed_by_a_job_signal_is_an_interruption() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "kill -INT $$"]);
        // A shell's background job inherits SIGINT ignored, and so would
        // this tool: the signal must be able to kill it here.
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(|| {
                nix::sys::signal::signal(Signal::SIGINT, nix::sys::signal::SigHandler::SigDfl)
                    .map(drop)
                    .map_err(std::io::Error::from)
            });
        }
        let err = feed(cmd, "sh", "host: tool".into(), b"").unwrap_err();
        assert!(matches!(err, Error::Interrupted { signal: Signal::SIGINT, .. }), "{err}");
        assert_eq!(err.exit_code(), 130);
        assert_eq!(err.to_string(), "interrupted: host: tool was killed by SIGINT");
        // A crash is the tool's fault, not an interruption.
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "kill -SEGV $$"]);
        let err = feed(cmd, "sh", "host: tool".into(), b"").unwrap_err();
        assert_eq!(err.exit_code(), 3, "{err}");
    }

    #[test]
    fn empty_tables_are_dropped_and_the_rest_ordered() {
        let t = "*nat\n:PREROUTING ACCEPT\n:DOCKER -\nCOMMIT\n*mangle\n:INPUT ACCEPT\nCOMMIT\n*filter\n:INPUT ACCEPT\n-A INPUT -j DROP\nCOMMIT\n";
        assert_eq!(
            super::canonical_tables(t),
            "*filter\n:INPUT ACCEPT\n-A INPUT -j DROP\nCOMMIT\n*nat\n:PREROUTING ACCEPT\n:DOCKER -\nCOMMIT\n"
        );
    }
}
