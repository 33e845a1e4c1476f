//! `nft -f` / `nft -j list ruleset` inside the host namespace, for Docker
//! 29's nftables backend: the plan's tables go in with one atomic `nft -f`
//! (spawned as the iptables tools are: the lab's namespace joined between
//! fork and exec, its own process group, killed with bridgelab), and come
//! back through nft's JSON, printed by the plan's own printer.

use std::fs::File;
use std::process::{Command, Stdio};

use super::iptables::{child_of_lab, feed, missing, outcome, spawn};
use crate::error::{Error, Result};
use crate::plan::firewall::nftables::NftRuleset;

/// Replaces every planned table with one `nft -f -` (a table is deleted
/// and made again inside the same transaction).
pub fn install(ns: &File, rules: &NftRuleset) -> Result<()> {
    if rules.is_empty() {
        return Ok(());
    }
    let mut cmd = Command::new("nft");
    cmd.args(["-f", "-"]);
    child_of_lab(&mut cmd, ns);
    feed(cmd, "nft", "host: nft -f".into(), rules.script().as_bytes())
}

/// The namespace's tables called `name`, read back with `nft -j list ruleset`.
pub fn read(ns: &File, name: &str) -> Result<NftRuleset> {
    let mut cmd = Command::new("nft");
    cmd.args(["-j", "list", "ruleset"]).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    child_of_lab(&mut cmd, ns);
    let out = spawn(&mut cmd).and_then(std::process::Child::wait_with_output).map_err(|e| missing("nft", e))?;
    outcome("host: nft -j list ruleset".into(), out.status, &out.stderr, None)?;
    NftRuleset::from_json(&String::from_utf8_lossy(&out.stdout), name)
        .map_err(|e| Error::apply("host: nft -j list ruleset", std::io::Error::other(e)))
}
