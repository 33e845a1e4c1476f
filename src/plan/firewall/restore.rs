//! `iptables-restore` text as a [`Ruleset`]: the host's firewall before the
//! daemon starts (`[host] rules`) and what a `host-rules` step loads.
//!
//! Rules are brought into the form `iptables-save` prints them in (base
//! options `-s -d -i -o -p` first, addresses with a prefix, the implicit
//! `-m tcp` of `--dport`, conntrack states in the kernel's order), so that
//! the plan's rules compare with what the kernel reports, and Docker's
//! `-C` checks find a user's rule as iptables would. What bridgelab cannot
//! bring into that form is refused with its position in the text.

use std::ops::Range;

use super::{Ruleset, Table};

/// A mistake in restore text: where (a byte range of the text) and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RestoreError {
    pub at: Range<usize>,
    pub message: String,
}

fn err<T>(at: Range<usize>, message: impl Into<String>) -> Result<T, RestoreError> {
    Err(RestoreError { at, message: message.into() })
}

/// One command of the text, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    /// `*table`: a block starts (without `--noflush` the table is emptied).
    Table(Table),
    /// `:CHAIN POLICY [packets:bytes]`.
    Declare {
        chain: String,
        policy: Option<String>,
    },
    Append {
        chain: String,
        rule: String,
    },
    /// `-I CHAIN [N]`: 1-based position.
    Insert {
        chain: String,
        pos: usize,
        rule: String,
    },
    Delete {
        chain: String,
        rule: String,
    },
    NewChain(String),
    Flush(Option<String>),
    DeleteChain(String),
    Policy {
        chain: String,
        policy: String,
    },
    Commit,
}

/// A parsed text: its commands with where each came from.
#[derive(Debug, Clone)]
pub struct Restore {
    ops: Vec<(Range<usize>, Op)>,
}

/// Targets iptables knows besides chains.
const TARGETS: [&str; 8] = ["ACCEPT", "DROP", "RETURN", "REJECT", "DNAT", "SNAT", "MASQUERADE", "LOG"];

fn table_of(name: &str) -> Option<Table> {
    match name {
        "filter" => Some(Table::Filter),
        "nat" => Some(Table::Nat),
        _ => None,
    }
}

/// Words of a line with their byte ranges in the text; `"…"` quotes.
fn words(line: &str, base: usize) -> Result<Vec<(Range<usize>, String)>, RestoreError> {
    let mut out = Vec::new();
    let b = line.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        let mut w = String::new();
        if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += 1;
            }
            if i == b.len() {
                return err(base + start..base + line.len(), "unterminated quote");
            }
            w.push_str(&line[start + 1..i]);
            i += 1;
        } else {
            while i < b.len() && !b[i].is_ascii_whitespace() {
                i += 1;
            }
            w.push_str(&line[start..i]);
        }
        out.push((base + start..base + i, w));
    }
    Ok(out)
}

impl Restore {
    /// Parses restore text: its syntax and every rule's options. Chains
    /// and targets are checked when it is loaded ([`Ruleset::restore`]).
    pub fn parse(text: &str) -> Result<Restore, RestoreError> {
        let mut ops = Vec::new();
        let mut open: Option<(Range<usize>, Table)> = None;
        let mut pos = 0;
        for raw in text.split_inclusive('\n') {
            let base = pos;
            pos += raw.len();
            let line = raw.trim_end_matches(['\n', '\r']);
            let trimmed = line.trim_start();
            let lead = line.len() - trimmed.len();
            let at = base + lead..base + line.len();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            if let Some(name) = trimmed.strip_prefix('*') {
                if let Some((t_at, t)) = &open {
                    return err(t_at.clone(), format!("table {} has no COMMIT before the next table", t.name()));
                }
                let name = name.trim();
                let Some(t) = table_of(name) else {
                    return err(
                        at,
                        format!("table {name:?}: bridgelab models the filter and nat tables (Docker's) only"),
                    );
                };
                open = Some((at.clone(), t));
                ops.push((at, Op::Table(t)));
                continue;
            }
            let Some((_, table)) = open.clone() else {
                return err(at, "a line before the first table: start with *filter or *nat");
            };
            if trimmed == "COMMIT" {
                open = None;
                ops.push((at, Op::Commit));
                continue;
            }
            let ws = words(trimmed, base + lead)?;
            if let Some(decl) = trimmed.strip_prefix(':') {
                let mut parts = decl.split_whitespace();
                let chain = parts.next().unwrap_or_default().to_string();
                let policy = parts.next().unwrap_or("");
                if chain.is_empty() || policy.is_empty() {
                    return err(at, "a chain line is `:CHAIN POLICY [packets:bytes]`");
                }
                check_chain_name(&ws[0].0, &chain)?;
                let builtin = table.builtin_chains().contains(&chain.as_str());
                let policy = match (builtin, policy) {
                    (false, "-") => None,
                    (false, p) => {
                        return err(at, format!("chain {chain}: a user-defined chain has no policy ({p}), write -"))
                    }
                    (true, p) => Some(check_policy(&at, table, &chain, p)?.to_string()),
                };
                ops.push((at, Op::Declare { chain, policy }));
                continue;
            }
            ops.push((at.clone(), command(table, &ws, &at)?));
        }
        if let Some((at, t)) = open {
            return err(at, format!("table {} has no COMMIT (iptables-restore applies nothing without it)", t.name()));
        }
        Ok(Restore { ops })
    }
}

fn check_chain_name(at: &Range<usize>, chain: &str) -> Result<(), RestoreError> {
    if chain.len() > 28 || chain.starts_with('-') || chain.starts_with('!') || chain.contains(char::is_whitespace) {
        return err(at.clone(), format!("invalid chain name {chain:?}"));
    }
    Ok(())
}

fn check_policy<'a>(at: &Range<usize>, table: Table, chain: &str, p: &'a str) -> Result<&'a str, RestoreError> {
    match (table, p) {
        (_, "ACCEPT") | (Table::Filter, "DROP") => Ok(p),
        (Table::Nat, "DROP") => err(at.clone(), format!("chain {chain}: the nat table takes no DROP policy")),
        _ => err(at.clone(), format!("chain {chain}: bad policy {p:?}: ACCEPT or DROP")),
    }
}

/// One `-A`/`-I`/`-D`/`-N`/`-F`/`-X`/`-P` line.
fn command(table: Table, ws: &[(Range<usize>, String)], at: &Range<usize>) -> Result<Op, RestoreError> {
    let (cmd_at, cmd) = &ws[0];
    let chain = |i: usize| -> Result<String, RestoreError> {
        match ws.get(i) {
            Some((a, c)) => {
                check_chain_name(a, c)?;
                Ok(c.clone())
            }
            None => err(cmd_at.clone(), format!("{cmd} needs a chain")),
        }
    };
    let long = match cmd.as_str() {
        "--append" => "-A",
        "--insert" => "-I",
        "--delete" => "-D",
        "--new-chain" | "--new" => "-N",
        "--flush" => "-F",
        "--delete-chain" => "-X",
        "--policy" => "-P",
        c => c,
    };
    match long {
        "-A" => Ok(Op::Append { chain: chain(1)?, rule: canonical(table, &ws[2..], at)? }),
        "-D" => Ok(Op::Delete { chain: chain(1)?, rule: canonical(table, &ws[2..], at)? }),
        "-I" => {
            let c = chain(1)?;
            let (pos, rest) = match ws.get(2).map(|(_, w)| w.parse::<usize>()) {
                Some(Ok(0)) => return err(ws[2].0.clone(), "-I: rule positions start at 1"),
                Some(Ok(n)) => (n, &ws[3..]),
                _ => (1, &ws[2..]),
            };
            Ok(Op::Insert { chain: c, pos, rule: canonical(table, rest, at)? })
        }
        "-N" | "-X" | "-F" | "-P" => {
            let c = if long == "-F" && ws.len() == 1 { None } else { Some(chain(1)?) };
            let extra = if long == "-P" { 3 } else { 2 };
            if let Some((a, w)) = ws.get(extra) {
                return err(a.clone(), format!("{cmd}: unexpected {w:?}"));
            }
            match long {
                "-N" => Ok(Op::NewChain(c.expect("given"))),
                "-X" => Ok(Op::DeleteChain(c.expect("given"))),
                "-F" => Ok(Op::Flush(c)),
                _ => {
                    let c = c.expect("given");
                    let Some((pa, p)) = ws.get(2) else { return err(cmd_at.clone(), "-P needs a chain and a policy") };
                    if !table.builtin_chains().contains(&c.as_str()) {
                        return err(pa.clone(), format!("-P {c}: only built-in chains have a policy"));
                    }
                    Ok(Op::Policy { policy: check_policy(pa, table, &c, p)?.to_string(), chain: c })
                }
            }
        }
        _ => err(cmd_at.clone(), format!("unknown command {cmd:?}: bridgelab reads -A, -I, -D, -N, -F, -X and -P")),
    }
}

/// `iptables-save`'s address form: `a.b.c.d/n`, host bits cleared.
fn address(at: &Range<usize>, s: &str) -> Result<String, RestoreError> {
    let bad = || err(at.clone(), format!("bad address {s:?}: bridgelab reads a.b.c.d or a.b.c.d/n"));
    let (ip, prefix) = s.split_once('/').unwrap_or((s, "32"));
    let Ok(ip) = ip.parse::<std::net::Ipv4Addr>() else { return bad() };
    let Ok(prefix) = prefix.parse::<u8>() else { return bad() };
    let Ok(net) = ipnetwork::Ipv4Network::new(ip, prefix) else { return bad() };
    Ok(format!("{}/{}", net.network(), prefix))
}

fn port(at: &Range<usize>, s: &str) -> Result<String, RestoreError> {
    let ok = |p: &str| p.parse::<u16>().is_ok();
    match s.split_once(':') {
        Some((a, b)) if ok(a) && ok(b) => Ok(s.to_string()),
        None if ok(s) => Ok(s.to_string()),
        _ => err(at.clone(), format!("bad port {s:?}: a number or a range N:M")),
    }
}

/// Conntrack states in the order iptables prints them.
fn states(at: &Range<usize>, s: &str) -> Result<String, RestoreError> {
    const ORDER: [&str; 5] = ["INVALID", "NEW", "RELATED", "ESTABLISHED", "UNTRACKED"];
    let given: Vec<&str> = s.split(',').collect();
    if let Some(bad) = given.iter().find(|g| !ORDER.contains(g)) {
        return err(at.clone(), format!("bad state {bad:?}: one of {}", ORDER.join(", ")));
    }
    Ok(ORDER.iter().filter(|o| given.contains(o)).copied().collect::<Vec<_>>().join(","))
}

fn icmp_type(at: &Range<usize>, s: &str) -> Result<String, RestoreError> {
    let n = match s {
        "any" => return Ok("any".into()),
        "echo-reply" | "pong" => "0",
        "destination-unreachable" => "3",
        "echo-request" | "ping" => "8",
        "time-exceeded" => "11",
        n if n.split('/').all(|x| x.parse::<u8>().is_ok()) => n,
        _ => return err(at.clone(), format!("bad icmp type {s:?}: a number or echo-request, echo-reply, …")),
    };
    Ok(n.to_string())
}

/// A rule's options in `iptables-save`'s form.
fn canonical(table: Table, ws: &[(Range<usize>, String)], line: &Range<usize>) -> Result<String, RestoreError> {
    let mut base: [Option<String>; 5] = Default::default(); // -s -d -i -o -p
    let mut proto: Option<String> = None;
    let mut matches: Vec<(String, Vec<String>)> = Vec::new();
    let mut target: Option<Vec<String>> = None;
    let mut i = 0;
    let mut neg = false;
    let value = |i: usize| -> Result<&(Range<usize>, String), RestoreError> {
        ws.get(i)
            .ok_or_else(|| RestoreError { at: ws[i - 1].0.clone(), message: format!("{} needs a value", ws[i - 1].1) })
    };
    // Which match an option belongs to: the last `-m` that takes it, else
    // the protocol's own match, loaded implicitly where it is first used.
    while i < ws.len() {
        let (at, w) = &ws[i];
        if let Some(t) = &mut target {
            // Target options.
            match (t[0].as_str(), w.as_str()) {
                ("REJECT", "--reject-with")
                | ("DNAT", "--to-destination")
                | ("SNAT", "--to-source")
                | ("MASQUERADE", "--to-ports") => {
                    let (_, v) = value(i + 1)?;
                    t.push(format!("{w} {v}"));
                    i += 2;
                    continue;
                }
                _ => return err(at.clone(), format!("option {w:?} after the target: bridgelab cannot read it")),
            }
        }
        let bang = if neg { "! " } else { "" };
        match w.as_str() {
            "!" => {
                if neg {
                    return err(at.clone(), "a double !");
                }
                neg = true;
                i += 1;
                continue;
            }
            "-s" | "--source" | "--src" | "-d" | "--destination" | "--dst" => {
                let (vat, v) = value(i + 1)?;
                let slot = if w.starts_with("-s") || w == "--source" || w == "--src" { 0 } else { 1 };
                let flag = if slot == 0 { "-s" } else { "-d" };
                base[slot] = Some(format!("{bang}{flag} {}", address(vat, v)?));
                i += 2;
            }
            "-i" | "--in-interface" | "-o" | "--out-interface" => {
                let (_, v) = value(i + 1)?;
                let slot = if w == "-i" || w == "--in-interface" { 2 } else { 3 };
                let flag = if slot == 2 { "-i" } else { "-o" };
                base[slot] = Some(format!("{bang}{flag} {v}"));
                i += 2;
            }
            "-p" | "--protocol" => {
                let (vat, v) = value(i + 1)?;
                let p = match v.to_ascii_lowercase().as_str() {
                    "tcp" | "6" => "tcp",
                    "udp" | "17" => "udp",
                    "icmp" | "1" => "icmp",
                    "all" | "0" if !neg => {
                        i += 2;
                        continue;
                    }
                    _ => return err(vat.clone(), format!("protocol {v:?}: bridgelab reads tcp, udp, icmp and all")),
                };
                base[4] = Some(format!("{bang}-p {p}"));
                if !neg {
                    proto = Some(p.to_string());
                }
                i += 2;
            }
            "-m" | "--match" => {
                let (vat, v) = value(i + 1)?;
                if neg {
                    return err(at.clone(), "! before -m: put it before the match's option");
                }
                match v.as_str() {
                    "tcp" | "udp" | "icmp" if proto.as_deref() != Some(v.as_str()) => {
                        return err(vat.clone(), format!("-m {v} needs -p {v} before it"))
                    }
                    "tcp" | "udp" | "icmp" | "conntrack" | "state" | "addrtype" | "multiport" => {}
                    _ => {
                        return err(
                            vat.clone(),
                            format!(
                                "match {v:?}: bridgelab reads tcp, udp, icmp, conntrack, state, addrtype and multiport"
                            ),
                        )
                    }
                }
                matches.push((v.clone(), vec![]));
                i += 2;
            }
            "-j" | "--jump" | "-g" | "--goto" => {
                let (vat, v) = value(i + 1)?;
                if neg {
                    return err(at.clone(), "! before a target");
                }
                if table == Table::Nat && matches!(v.as_str(), "REJECT" | "DROP") {
                    return err(vat.clone(), format!("-j {v} is not allowed in the nat table"));
                }
                let flag = if w == "-g" || w == "--goto" { "-g" } else { "-j" };
                target = Some(vec![v.clone(), flag.to_string()]);
                i += 2;
            }
            opt if opt.starts_with("--") => {
                let (vat, v) = value(i + 1)?;
                let owner = |m: &str| {
                    matches!(
                        (m, opt),
                        ("tcp" | "udp", "--dport" | "--destination-port" | "--sport" | "--source-port")
                            | ("conntrack", "--ctstate")
                            | ("state", "--state")
                            | ("addrtype", "--src-type" | "--dst-type")
                            | ("multiport", "--dports" | "--sports" | "--ports")
                            | ("icmp", "--icmp-type")
                    )
                };
                let found = matches.iter().rposition(|(m, _)| owner(m));
                let idx = match (found, &proto) {
                    (Some(k), _) => k,
                    (None, Some(p)) if owner(p) => {
                        matches.push((p.clone(), vec![]));
                        matches.len() - 1
                    }
                    _ => {
                        return err(
                            at.clone(),
                            format!("option {opt:?}: no match before it takes it (bridgelab reads -p tcp/udp --dport/--sport, -p icmp --icmp-type, -m conntrack --ctstate, -m state --state, -m addrtype, -m multiport)"),
                        )
                    }
                };
                let name = match opt {
                    "--destination-port" => "--dport",
                    "--source-port" => "--sport",
                    o => o,
                };
                let val = match name {
                    "--dport" | "--sport" => port(vat, v)?,
                    "--ctstate" | "--state" => states(vat, v)?,
                    "--icmp-type" => icmp_type(vat, v)?,
                    "--dports" | "--sports" | "--ports" => {
                        for p in v.split(',') {
                            port(vat, p)?;
                        }
                        v.clone()
                    }
                    _ => v.clone(),
                };
                matches[idx].1.push(format!("{bang}{name} {val}"));
                i += 2;
            }
            _ => {
                return err(
                    at.clone(),
                    format!("cannot read {w:?}: bridgelab reads -s -d -i -o -p -m -j -g and match options"),
                )
            }
        }
        neg = false;
    }
    if neg {
        return err(line.clone(), "a ! with nothing after it");
    }
    let mut out: Vec<String> = base.into_iter().flatten().collect();
    for (m, opts) in matches {
        out.push(format!("-m {m}"));
        out.extend(opts);
    }
    if let Some(t) = target {
        let mut opts: Vec<String> = t[2..].to_vec();
        if t[0] == "REJECT" && opts.is_empty() {
            opts.push("--reject-with icmp-port-unreachable".into());
        }
        out.push(format!("{} {}", t[1], t[0]));
        out.extend(opts);
    }
    if out.is_empty() {
        return err(line.clone(), "an empty rule");
    }
    Ok(out.join(" "))
}

impl Ruleset {
    /// The rules `text` leaves in an empty host, as `iptables-restore` would.
    pub fn from_restore(text: &Restore) -> Result<Ruleset, RestoreError> {
        let mut r = Ruleset::default();
        r.restore(text, false)?;
        Ok(r)
    }

    /// `iptables-restore` (with `noflush`, `iptables-restore --noflush`) of
    /// `text` over these rules. Without `--noflush` each table the text
    /// names is emptied first: its rules and user chains go, built-in
    /// policies stay until a chain line sets them. A `:CHAIN` line makes
    /// a user chain, or with `--noflush` empties one that exists. A jump
    /// to a chain that is not there fails, as iptables fails it
    /// ("Couldn't load target").
    pub fn restore(&mut self, text: &Restore, noflush: bool) -> Result<(), RestoreError> {
        // iptables-restore commits a table at COMMIT, all or nothing: work on a copy.
        let mut work = self.clone();
        let mut table = Table::Filter;
        for (at, op) in &text.ops {
            let missing = |w: &Ruleset, t: Table, c: &str| -> Result<(), RestoreError> {
                if w.has_chain(t, c) {
                    Ok(())
                } else {
                    err(
                        at.clone(),
                        format!(
                            "chain {c} does not exist in table {} (iptables: No chain/target/match by that name)",
                            t.name()
                        ),
                    )
                }
            };
            match op {
                Op::Table(t) => {
                    table = *t;
                    let tr = work.table(table);
                    if !noflush {
                        let builtin = table.builtin_chains();
                        tr.chains.retain(|c| builtin.contains(&c.name.as_str()));
                        for c in &mut tr.chains {
                            c.rules.clear();
                        }
                    }
                }
                Op::Declare { chain, policy } => {
                    let exists = work.has_chain(table, chain);
                    let c = work.chain(table, chain);
                    match policy {
                        Some(p) => c.policy = (p != "ACCEPT").then(|| p.clone()),
                        None if exists => c.rules.clear(),
                        None => {}
                    }
                }
                Op::Append { chain, rule } | Op::Insert { chain, rule, .. } => {
                    missing(&work, table, chain)?;
                    check_target(&work, table, at, rule)?;
                    let c = work.chain(table, chain);
                    match op {
                        Op::Insert { pos, .. } => {
                            if *pos > c.rules.len() + 1 {
                                return err(at.clone(), format!("-I {chain} {pos}: the chain has {} rules (iptables: Index of insertion too big)", c.rules.len()));
                            }
                            c.rules.insert(pos - 1, rule.clone());
                        }
                        _ => c.rules.push_back(rule.clone()),
                    }
                }
                Op::Delete { chain, rule } => {
                    missing(&work, table, chain)?;
                    let c = work.chain(table, chain);
                    match c.rules.iter().position(|r| r == rule) {
                        Some(i) => {
                            c.rules.remove(i);
                        }
                        None => return err(at.clone(), format!("-D {chain}: no such rule (iptables: Bad rule (does a matching rule exist in that chain?))")),
                    }
                }
                Op::NewChain(chain) => {
                    if work.has_chain(table, chain) {
                        return err(at.clone(), format!("-N {chain}: Chain already exists"));
                    }
                    work.new_chain(table, chain);
                }
                Op::Flush(Some(chain)) => {
                    missing(&work, table, chain)?;
                    work.chain(table, chain).rules.clear();
                }
                Op::Flush(None) => {
                    for c in &mut work.table(table).chains {
                        c.rules.clear();
                    }
                }
                Op::DeleteChain(chain) => {
                    missing(&work, table, chain)?;
                    if !work.delete_chain(table, chain) {
                        return err(
                            at.clone(),
                            format!("-X {chain}: a built-in chain, or one that is not empty or still referenced"),
                        );
                    }
                }
                Op::Policy { chain, policy } => work.set_policy(table, chain, policy),
                Op::Commit => {}
            }
        }
        work.recount();
        *self = work;
        Ok(())
    }
}

/// `-j X` must name a target iptables knows or a chain of the table.
fn check_target(r: &Ruleset, table: Table, at: &Range<usize>, rule: &str) -> Result<(), RestoreError> {
    let words: Vec<&str> = rule.split(' ').collect();
    let Some(i) = words.iter().position(|w| *w == "-j" || *w == "-g") else { return Ok(()) };
    let t = words[i + 1];
    if (words[i] == "-j" && TARGETS.contains(&t)) || r.has_chain(table, t) {
        return Ok(());
    }
    err(
        at.clone(),
        format!("Couldn't load target `{t}':No such file or directory (no chain {t} in table {})", table.name()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Ruleset {
        Ruleset::from_restore(&Restore::parse(text).unwrap()).unwrap()
    }

    fn parse_err(text: &str) -> (String, String) {
        let e = Restore::parse(text).and_then(|r| Ruleset::from_restore(&r)).unwrap_err();
        (text[e.at.clone()].to_string(), e.message)
    }

    #[test]
    fn rules_come_out_as_iptables_save_prints_them() {
        let r = load(
            "*filter\n:INPUT DROP [3:120]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:DOCKER-USER - [0:0]\n\
             -A INPUT -i lo -j ACCEPT\n\
             -A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT\n\
             -A INPUT -p tcp --dport 22 -j ACCEPT\n\
             -A INPUT -p icmp --icmp-type echo-request -j ACCEPT\n\
             -A DOCKER-USER -i docker0 -d 10.0.0.5 -j REJECT\n\
             -A FORWARD -o eth0 ! -s 10.1.2.3/8 -p udp -m multiport --dports 53,123 -j DROP\n\
             COMMIT\n",
        );
        assert_eq!(
            r.render(),
            "*filter\n:INPUT DROP\n:FORWARD ACCEPT\n:OUTPUT ACCEPT\n:DOCKER-USER -\n\
             -A INPUT -i lo -j ACCEPT\n\
             -A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n\
             -A INPUT -p tcp -m tcp --dport 22 -j ACCEPT\n\
             -A INPUT -p icmp -m icmp --icmp-type 8 -j ACCEPT\n\
             -A FORWARD ! -s 10.0.0.0/8 -o eth0 -p udp -m multiport --dports 53,123 -j DROP\n\
             -A DOCKER-USER -d 10.0.0.5/32 -i docker0 -j REJECT --reject-with icmp-port-unreachable\n\
             COMMIT\n"
        );
        // Docker's `-C` finds a rule the user wrote in another order.
        assert!(r.contains(Table::Filter, "INPUT", "-i lo -j ACCEPT"));
        assert_eq!(r.tables[0].chains[0].rules[2], "-p tcp -m tcp --dport 22 -j ACCEPT");
    }

    #[test]
    fn a_plain_restore_empties_the_tables_it_names_and_noflush_adds() {
        let mut r = load("*filter\n:FORWARD DROP [0:0]\n:DOCKER - [0:0]\n-A FORWARD -o docker0 -j DOCKER\nCOMMIT\n*nat\n-A POSTROUTING -o eth0 -j MASQUERADE\nCOMMIT\n");
        let add = Restore::parse("*filter\n-I FORWARD -o eth0 -j DROP\nCOMMIT\n").unwrap();
        let mut kept = r.clone();
        kept.restore(&add, true).unwrap();
        assert!(kept.render().contains("-A FORWARD -o eth0 -j DROP\n-A FORWARD -o docker0 -j DOCKER\n"));
        r.restore(&Restore::parse("*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n").unwrap(), false).unwrap();
        let text = r.render();
        // filter emptied (policy kept, DOCKER gone), nat untouched.
        assert!(text.contains(":FORWARD DROP\n"), "{text}");
        assert!(!text.contains("DOCKER"), "{text}");
        assert!(text.contains("-A POSTROUTING -o eth0 -j MASQUERADE"), "{text}");
        // A failed restore changes nothing.
        let before = kept.render();
        let bad = Restore::parse("*filter\n-A FORWARD -j ACCEPT\n-A NOPE -j ACCEPT\nCOMMIT\n").unwrap();
        assert!(kept.restore(&bad, true).is_err());
        assert_eq!(kept.render(), before);
    }

    #[test]
    fn mistakes_point_at_their_word() {
        assert_eq!(parse_err("*filter\n-A INPUT -p tcp --dport ssh -j ACCEPT\nCOMMIT\n").0, "ssh");
        assert_eq!(parse_err("*raw\nCOMMIT\n").0, "*raw");
        assert_eq!(parse_err("*filter\n-A INPUT -j ACCEPT\n").0, "*filter");
        assert_eq!(parse_err("*filter\n-A INPUT -m comment --comment x -j ACCEPT\nCOMMIT\n").0, "comment");
        let (at, msg) = parse_err("*filter\n-A FORWARD -j DOCKER-USER\nCOMMIT\n");
        assert_eq!(at, "-A FORWARD -j DOCKER-USER");
        assert!(msg.starts_with("Couldn't load target `DOCKER-USER'"), "{msg}");
        assert_eq!(parse_err("-A INPUT -j DROP\n").0, "-A INPUT -j DROP");
        assert_eq!(
            parse_err("*nat\n:PREROUTING DROP [0:0]\nCOMMIT\n").1,
            "chain PREROUTING: the nat table takes no DROP policy"
        );
        assert_eq!(parse_err("*filter\n-A INPUT --dport 22 -j ACCEPT\nCOMMIT\n").0, "--dport");
    }
}
