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

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use nix::sched::{setns, CloneFlags};

use crate::error::{Error, Result};
use crate::plan::firewall::{normalize_save, Ruleset};

/// The `iptables-restore` / `iptables-save` pair to use.
pub fn tools() -> (String, String) {
    match std::env::var("BRIDGELAB_IPTABLES").ok().as_deref() {
        Some("legacy") => ("iptables-legacy-restore".into(), "iptables-legacy-save".into()),
        Some("nft") => ("iptables-nft-restore".into(), "iptables-nft-save".into()),
        _ => ("iptables-restore".into(), "iptables-save".into()),
    }
}

fn in_netns(cmd: &mut Command, ns: &File) {
    let fd = ns.as_raw_fd();
    // SAFETY: only the async-signal-safe setns(2) runs between fork and exec.
    unsafe {
        cmd.pre_exec(move || setns(BorrowedFd::borrow_raw(fd), CloneFlags::CLONE_NEWNET).map_err(io::Error::from));
    }
}

fn missing(tool: &str, e: io::Error) -> Error {
    if e.kind() == io::ErrorKind::NotFound {
        Error::Environment(format!("{tool} not found: install iptables (apt-get install iptables)"))
    } else {
        Error::Environment(format!("cannot run {tool}: {e}"))
    }
}

/// Installs every table of `rules`, one `iptables-restore` per table:
/// added to what is there (`noflush`), or replacing each table whole.
pub fn restore(ns: &File, rules: &Ruleset, noflush: bool) -> Result<()> {
    let (restore, _) = tools();
    for t in &rules.tables {
        let text = rules.table_text(t);
        let mut cmd = Command::new(&restore);
        cmd.arg("-w");
        if noflush {
            cmd.arg("--noflush");
        }
        cmd.stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::piped());
        in_netns(&mut cmd, ns);
        let mut child = cmd.spawn().map_err(|e| missing(&restore, e))?;
        child.stdin.take().expect("piped").write_all(text.as_bytes()).map_err(|e| missing(&restore, e))?;
        let out = child.wait_with_output().map_err(|e| missing(&restore, e))?;
        if !out.status.success() {
            return Err(Error::apply(
                format!("host: {restore} (table {})", t.table.name()),
                io::Error::other(String::from_utf8_lossy(&out.stderr).trim().to_string()),
            ));
        }
    }
    Ok(())
}

/// `iptables-save` of the namespace, normalized like the plan's rendering:
/// no comments, no counters, and tables without any rule or user chain
/// left out (the legacy tools show tables merely touched by a lookup).
pub fn save(ns: &File) -> Result<String> {
    Ok(canonical_tables(&normalize_save(&raw_save(ns, &[])?)))
}

fn raw_save(ns: &File, args: &[&str]) -> Result<String> {
    let (_, save) = tools();
    let mut cmd = Command::new(&save);
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    in_netns(&mut cmd, ns);
    let out = cmd.output().map_err(|e| missing(&save, e))?;
    if !out.status.success() {
        return Err(Error::apply(
            format!("host: {save}"),
            io::Error::other(String::from_utf8_lossy(&out.stderr).trim().to_string()),
        ));
    }
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
/// order (filter, nat, then by name): the legacy tools list tables in the
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
    #[test]
    fn empty_tables_are_dropped_and_the_rest_ordered() {
        let t = "*nat\n:PREROUTING ACCEPT\n:DOCKER -\nCOMMIT\n*mangle\n:INPUT ACCEPT\nCOMMIT\n*filter\n:INPUT ACCEPT\n-A INPUT -j DROP\nCOMMIT\n";
        assert_eq!(
            super::canonical_tables(t),
            "*filter\n:INPUT ACCEPT\n-A INPUT -j DROP\nCOMMIT\n*nat\n:PREROUTING ACCEPT\n:DOCKER -\nCOMMIT\n"
        );
    }
}
