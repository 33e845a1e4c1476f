//! `bridgelab audit`: a host's rules against the plan of its imported
//! scenario.
//!
//! Both sides go through the normalization `bridgelab diff` uses
//! ([`crate::diff::compare`]): `iptables-save` without comments and
//! counters ([`normalize_save`]), Docker's random `br-<id>` bridge names
//! mapped to bridgelab's by network ([`Names`]), and one container's port
//! rules compared as a set ([`canonical_rule_order`]), since dockerd 20.10
//! orders them at random. Then each chain's rules are aligned on a longest
//! common subsequence ([`align`]): a rule only the host has was added, one
//! only the plan has was removed, one on both sides but out of place was
//! moved. Each finding says in one line what probably did it.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;

use super::{HostState, ImportError, Imported, Options};
use crate::diff::compare::{align, canonical_rule_order, Line, Names};
use crate::plan::firewall::nftables::NftRuleset;
use crate::plan::firewall::{normalize_save, IP6TABLES_MARK};

/// The rules of a host: `iptables-save`, `ip6tables-save` when read, or
/// Docker 29's nftables table as `nft -j list ruleset` prints it.
#[derive(Debug, Clone, Default)]
pub struct HostRules {
    pub v4: String,
    pub v6: Option<String>,
    pub nft_json: Option<String>,
}

impl HostRules {
    /// Reads the namespace `ns` (read-only: `iptables-save`,
    /// `ip6tables-save`, and `nft -j list ruleset` when `nft` is asked for).
    pub fn read(ns: &File, nft: bool) -> Result<HostRules, ImportError> {
        let r = |e: crate::Error| ImportError::Rules(e.to_string());
        let v4 = crate::apply::iptables::save4(ns).map_err(r)?;
        let v6 = crate::apply::iptables::save6(ns).ok();
        let nft_json = if nft { Some(nft_json(ns)?) } else { None };
        Ok(HostRules { v4, v6, nft_json })
    }
}

fn nft_json(ns: &File) -> Result<String, ImportError> {
    use std::os::fd::{AsRawFd, BorrowedFd};
    use std::os::unix::process::CommandExt;
    let mut cmd = std::process::Command::new("nft");
    cmd.args(["-j", "list", "ruleset"]).stdin(std::process::Stdio::null());
    let fd = ns.as_raw_fd();
    // SAFETY: only setns between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            nix::sched::setns(BorrowedFd::borrow_raw(fd), nix::sched::CloneFlags::CLONE_NEWNET)?;
            Ok(())
        });
    }
    let out = cmd.output().map_err(|e| ImportError::Rules(format!("cannot run nft: {e}")))?;
    if !out.status.success() {
        return Err(ImportError::Rules(format!(
            "nft -j list ruleset: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// What a finding says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Added,
    Removed,
    Moved,
    Policy,
    ChainAdded,
    ChainRemoved,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Added => "added",
            Kind::Removed => "removed",
            Kind::Moved => "moved",
            Kind::Policy => "policy",
            Kind::ChainAdded => "chain+",
            Kind::ChainRemoved => "chain-",
        })
    }
}

/// One difference between the host and the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub kind: Kind,
    /// `iptables`, `ip6tables` or `nft`.
    pub family: &'static str,
    pub table: String,
    pub chain: String,
    /// The rule (`-A CHAIN ...`), the chain line, or the nft line.
    pub line: String,
    /// A one-line explanation.
    pub why: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let family = if self.family == "iptables" { String::new() } else { format!("{} ", self.family) };
        write!(f, "{:<8} {family}{}: {}  ({})", self.kind.to_string(), self.table, self.line, self.why)
    }
}

/// One table's chains: policy (`None` for a user chain) and rules, in order.
#[derive(Debug, Default)]
struct Chains {
    order: Vec<(String, String)>,
    chains: BTreeMap<(String, String), (Option<String>, Vec<String>)>,
}

const BUILTIN: [&str; 5] = ["INPUT", "FORWARD", "OUTPUT", "PREROUTING", "POSTROUTING"];

fn parse(save: &str) -> Chains {
    let mut c = Chains::default();
    let mut table = String::new();
    for line in save.lines() {
        if let Some(t) = line.strip_prefix('*') {
            table = t.to_string();
        } else if let Some(rest) = line.strip_prefix(':') {
            let mut w = rest.split_whitespace();
            let (Some(name), policy) = (w.next(), w.next()) else { continue };
            let key = (table.clone(), name.to_string());
            let policy = policy.filter(|p| *p != "-").map(String::from);
            c.order.push(key.clone());
            c.chains.insert(key, (policy, vec![]));
        } else if let Some(rest) = line.strip_prefix("-A ") {
            let name = rest.split_whitespace().next().unwrap_or_default();
            let key = (table.clone(), name.to_string());
            if !c.chains.contains_key(&key) {
                c.order.push(key.clone());
            }
            c.chains.entry(key).or_default().1.push(line.to_string());
        }
    }
    c
}

/// Why a rule the plan does not have is there.
fn why_added(chain: &str, rule: &str) -> String {
    let firewalld = ["IN_", "FWD_", "FWDI_", "FWDO_", "PRE_", "POST_", "OUT_"];
    if chain == "DOCKER-USER" {
        "a user's rule in DOCKER-USER, the chain Docker leaves to the user: it runs before Docker's own forwarding rules"
            .into()
    } else if chain.starts_with("ufw") || rule.contains(" ufw") {
        "ufw's rule (ufw keeps its rules in ufw-* chains)".into()
    } else if chain.ends_with("_direct")
        || chain.ends_with("_ZONES")
        || chain.ends_with("_ZONES_SOURCE")
        || firewalld.iter().any(|p| chain.starts_with(p))
        || rule.contains("_ZONES")
    {
        "firewalld's rule (its zone and direct chains)".into()
    } else if chain.starts_with("DOCKER") {
        "in one of Docker's chains, but not a rule Docker makes for this topology: added by hand or by another tool"
            .into()
    } else {
        "not Docker's: added by hand (iptables -I/-A) or by another firewall tool".into()
    }
}

fn why_removed(chain_emptied: bool) -> String {
    if chain_emptied {
        "Docker's rule is missing and the chain is empty: flushed (iptables -F, a firewall reload)".into()
    } else {
        "Docker's rule is missing: deleted by hand (iptables -D) or by a tool that rewrote the chain".into()
    }
}

fn compare(family: &'static str, planned: &str, actual: &str, names: &Names) -> Vec<Finding> {
    let canon = |t: &str| canonical_rule_order(&normalize_save(t), false);
    let (plan, host) = (parse(&canon(planned)), parse(&canon(&names.apply(actual))));
    let mut keys = plan.order.clone();
    keys.extend(host.order.iter().filter(|k| !plan.chains.contains_key(k)).cloned());
    let mut out = Vec::new();
    // Findings speak the host's names (`br-<id>` as `iptables -S` shows them).
    let back = Names(names.0.iter().map(|(real, ours)| (ours.clone(), real.clone())).collect());
    let finding = |kind, table: &str, chain: &str, line: String, why: String| Finding {
        kind,
        family,
        table: table.to_string(),
        chain: back.apply(chain),
        line: back.apply(&line),
        why,
    };
    let accept = (Some("ACCEPT".to_string()), vec![]);
    for key in keys {
        let (table, chain) = (&key.0, &key.1);
        let builtin = BUILTIN.contains(&chain.as_str());
        let (p, h) = match (plan.chains.get(&key), host.chains.get(&key)) {
            (Some(p), Some(h)) => (p, h),
            (Some(p), None) if builtin => (p, &accept),
            (None, Some(h)) if builtin => (&accept, h),
            (Some(p), None) => {
                out.push(finding(
                    Kind::ChainRemoved,
                    table,
                    chain,
                    format!(":{chain} ({} rules)", p.1.len()),
                    "Docker's chain is gone, with its rules: deleted (iptables -F and -X, a firewall reload)".into(),
                ));
                continue;
            }
            (None, Some(h)) => {
                out.push(finding(
                    Kind::ChainAdded,
                    table,
                    chain,
                    format!(":{chain}"),
                    why_added(chain, "").replace("rule", "chain"),
                ));
                (&(None, vec![]), h)
            }
            (None, None) => continue,
        };
        if builtin && p.0 != h.0 {
            let (pp, hp) = (p.0.as_deref().unwrap_or("ACCEPT"), h.0.as_deref().unwrap_or("ACCEPT"));
            out.push(finding(
                Kind::Policy,
                table,
                chain,
                format!(":{chain} {hp} (the plan: {pp})"),
                format!("the policy is {hp} where Docker leaves {pp}: set by hand (iptables -P) or by a firewall tool"),
            ));
        }
        let (mut removed, mut added) = (Vec::new(), Vec::new());
        for l in align(&p.1, &h.1) {
            match l {
                Line::Lab(r) => removed.push(r),
                Line::Real(r) => added.push(r),
                Line::Same(_) => {}
            }
        }
        // One rule gone from a one-rule chain is a deletion, not a flush.
        let emptied = h.1.is_empty() && p.1.len() > 1;
        for r in removed {
            if let Some(i) = added.iter().position(|a| *a == r) {
                added.remove(i);
                out.push(finding(
                    Kind::Moved,
                    table,
                    chain,
                    r,
                    "Docker's rule is there but out of its place: rules were inserted or re-added around it \
                     (the first match decides)"
                        .into(),
                ));
            } else {
                out.push(finding(Kind::Removed, table, chain, r, why_removed(emptied)));
            }
        }
        for a in added {
            let why = why_added(chain, &a);
            out.push(finding(Kind::Added, table, chain, a, why));
        }
    }
    out
}

/// What `infer` settled on: the scenario audited, its findings, and what
/// it took from the rules.
#[derive(Debug, Clone)]
pub struct Inferred {
    pub imported: Imported,
    pub findings: Vec<Finding>,
    /// `[daemon]`/`[host]` keys read off the rules, e.g. `userland_proxy = false`.
    pub inferred: Vec<String>,
}

/// Imports `h` with what Docker does not show filled in from the host's
/// rules: `--iptables`, `--userland-proxy` (unless given) and whether
/// forwarding was on before the daemon started (Docker 20.10 and 28 leave
/// the FORWARD policy ACCEPT then). Each combination is planned (plans are
/// pure and cheap) and the one whose rules differ least from the host's is
/// taken; on a tie, dockerd's defaults.
pub fn infer(h: &HostState, o: &Options, rules: &HostRules) -> Result<Inferred, ImportError> {
    let (firewall, _) = super::writer::layout(&h.info.server_version)?;
    // Each unknown: its daemon.json flag (or `None` for `[host]
    // forwarding`), dockerd's default first.
    let mut unknown: Vec<(Option<&str>, [bool; 2])> = Vec::new();
    let mut flags = vec!["iptables", "userland-proxy"];
    if matches!(firewall, "docker28" | "docker29") {
        flags.push("allow-direct-routing");
    }
    for f in flags {
        if !h.flags.contains_key(f) {
            let default = f != "allow-direct-routing";
            unknown.push((Some(f), [default, !default]));
        }
    }
    if h.forwarding.is_none() && firewall != "docker1" {
        unknown.push((None, [false, true]));
    }
    let mut best: Option<Inferred> = None;
    for mask in 0..(1u32 << unknown.len()) {
        let mut v = h.clone();
        let mut said = Vec::new();
        for (i, (flag, values)) in unknown.iter().enumerate() {
            let value = values[usize::from(mask & (1 << i) != 0)];
            match flag {
                Some(f) => {
                    v.flags.insert(f.to_string(), value.to_string());
                    said.push(format!("{} = {value}", f.replace('-', "_")));
                }
                None => {
                    v.forwarding = Some(value);
                    said.push(format!("[host] forwarding = {value}"));
                }
            }
        }
        if !said.is_empty() {
            v.inferred
                .push(format!("inferred from the host's rules (docker info does not show them): {}", said.join(", ")));
        }
        // A combination Docker refuses (iptables off with icc off) is no candidate.
        let Ok(imported) = super::write(&v, o) else { continue };
        let findings = audit(&imported, rules)?;
        if best.as_ref().is_none_or(|b| findings.len() < b.findings.len()) {
            best = Some(Inferred { imported, findings, inferred: said });
        }
    }
    // The combination with nothing changed is written when every other fails.
    match best {
        Some(b) => Ok(b),
        None => {
            let imported = super::write(h, o)?;
            let findings = audit(&imported, rules)?;
            Ok(Inferred { imported, findings, inferred: vec![] })
        }
    }
}

/// The drift between `rules` and the plan of `imported`; empty when none.
pub fn audit(imported: &Imported, rules: &HostRules) -> Result<Vec<Finding>, ImportError> {
    let names = Names(imported.bridges.clone());
    let ruleset = &imported.plan.iptables;
    let mut out = Vec::new();
    if !ruleset.nft.is_empty() {
        let json = rules.nft_json.as_deref().ok_or_else(|| {
            ImportError::Rules("the plan is Docker 29's nftables: give nft -j list ruleset (--nft FILE)".into())
        })?;
        let host = NftRuleset::from_json(&names.apply(json), crate::plan::firewall::nftabler::TABLE)
            .map_err(|e| ImportError::BadInput { what: "nft ruleset".into(), why: e })?;
        out.extend(compare_nft(&ruleset.nft.listing(), &host.listing()));
    }
    let rendered = ruleset.render();
    let (v4, v6) = rendered.split_once(IP6TABLES_MARK).unwrap_or((&rendered, ""));
    out.extend(compare("iptables", v4, &rules.v4, &names));
    if let Some(h6) = &rules.v6 {
        out.extend(compare("ip6tables", v6, h6, &names));
    }
    Ok(out)
}

/// nft listings, line by line, each line under its `table`/`chain` header.
fn compare_nft(planned: &str, actual: &str) -> Vec<Finding> {
    let a: Vec<String> = planned.lines().map(|l| l.trim().to_string()).collect();
    let b: Vec<String> = actual.lines().map(|l| l.trim().to_string()).collect();
    let mut out = Vec::new();
    let mut chain = String::new();
    for l in align(&a, &b) {
        let (kind, text) = match &l {
            Line::Same(t) | Line::Lab(t) | Line::Real(t) if t.starts_with("chain ") => {
                chain = t.trim_start_matches("chain ").trim_end_matches(" {").to_string();
                continue;
            }
            Line::Same(_) => continue,
            Line::Lab(t) => (Kind::Removed, t),
            Line::Real(t) => (Kind::Added, t),
        };
        let why = if kind == Kind::Added {
            why_added(&chain, text)
        } else {
            "Docker's rule is missing: deleted by hand (nft delete rule) or by a tool that rewrote the table".into()
        };
        out.push(Finding {
            kind,
            family: "nft",
            table: "docker-bridges".into(),
            chain: chain.clone(),
            line: text.clone(),
            why,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAN: &str = "*filter\n:INPUT ACCEPT\n:FORWARD DROP\n:OUTPUT ACCEPT\n:DOCKER -\n:DOCKER-USER -\n\
        -A FORWARD -j DOCKER-USER\n-A FORWARD -o docker0 -j DOCKER\n-A FORWARD -i docker0 -j ACCEPT\n\
        -A DOCKER -d 172.17.0.2/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT\n\
        -A DOCKER-USER -j RETURN\nCOMMIT\n";

    fn kinds(f: &[Finding]) -> Vec<(Kind, &str)> {
        f.iter().map(|f| (f.kind, f.line.as_str())).collect()
    }

    #[test]
    fn equal_rules_are_no_drift_whatever_the_counters_and_comments() {
        let host = format!("# Generated by iptables-save\n{}", PLAN.replace(":DOCKER -", ":DOCKER - [0:0]"));
        assert_eq!(compare("iptables", PLAN, &host, &Names::default()), vec![]);
    }

    #[test]
    fn a_docker_user_rule_a_deleted_rule_a_policy_and_a_move_are_each_one_finding() {
        let host = PLAN
            .replace("-A DOCKER-USER -j RETURN", "-A DOCKER-USER -s 10.9.0.0/16 -j DROP\n-A DOCKER-USER -j RETURN")
            .replace("-A DOCKER -d 172.17.0.2/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT\n", "")
            .replace(":FORWARD DROP", ":FORWARD ACCEPT")
            .replace(
                "-A FORWARD -o docker0 -j DOCKER\n-A FORWARD -i docker0 -j ACCEPT",
                "-A FORWARD -i docker0 -j ACCEPT\n-A FORWARD -o docker0 -j DOCKER",
            );
        let f = compare("iptables", PLAN, &host, &Names::default());
        assert_eq!(
            kinds(&f),
            [
                (Kind::Policy, ":FORWARD ACCEPT (the plan: DROP)"),
                (Kind::Moved, "-A FORWARD -o docker0 -j DOCKER"),
                (
                    Kind::Removed,
                    "-A DOCKER -d 172.17.0.2/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT"
                ),
                (Kind::Added, "-A DOCKER-USER -s 10.9.0.0/16 -j DROP"),
            ]
        );
        assert!(f[3].why.contains("DOCKER-USER"));
        assert!(f[2].why.contains("deleted"));
    }

    #[test]
    fn a_flush_and_another_tools_chains_are_named() {
        let host = "*filter\n:INPUT ACCEPT\n:FORWARD DROP\n:OUTPUT ACCEPT\n:ufw-user-forward -\n\
            -A FORWARD -j ufw-user-forward\nCOMMIT\n";
        let f = compare("iptables", PLAN, host, &Names::default());
        let k = kinds(&f);
        assert!(k.contains(&(Kind::ChainRemoved, ":DOCKER (1 rules)")), "{k:?}");
        assert!(k.contains(&(Kind::ChainAdded, ":ufw-user-forward")), "{k:?}");
        let forward: Vec<&Finding> = f.iter().filter(|x| x.chain == "FORWARD").collect();
        assert_eq!(forward.iter().filter(|x| x.kind == Kind::Removed).count(), 3);
        assert!(forward.iter().any(|x| x.kind == Kind::Added && x.why.starts_with("ufw")));
    }

    #[test]
    fn dockers_random_bridge_names_are_mapped_before_comparing() {
        let mut names = Names::default();
        names.0.insert("br-3f2a9c0d1e4b".into(), "docker0".into());
        let host = PLAN.replace("docker0", "br-3f2a9c0d1e4b");
        assert_eq!(compare("iptables", PLAN, &host, &names), vec![]);
    }

    #[test]
    fn docker29_nftables_listings_compare_line_by_line_under_their_chain() {
        let s = crate::Scenario::parse(
            "t.toml".into(),
            "[daemon]\nfirewall = \"docker29\"\nbackend = \"nftables\"\n[host]\nforwarding = true\n\
             [[container]]\nname = \"web\"\npublish = [\"8080:80\"]\n"
                .into(),
        )
        .unwrap();
        let plan = crate::plan::plan(&s).unwrap();
        let listing = plan.iptables.nft.listing();
        assert_eq!(compare_nft(&listing, &listing), vec![]);
        let (at, chain) = listing
            .lines()
            .enumerate()
            .find_map(|(i, l)| l.trim().strip_prefix("chain ").map(|c| (i, c.trim_end_matches(" {").to_string())))
            .unwrap();
        let mut lines: Vec<&str> = listing.lines().collect();
        lines.insert(at + 1, "\t\tip saddr 10.9.9.0/24 drop");
        let f = compare_nft(&listing, &lines.join("\n"));
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(
            (f[0].kind, f[0].chain.as_str(), f[0].line.as_str()),
            (Kind::Added, chain.as_str(), "ip saddr 10.9.9.0/24 drop")
        );
    }
}
