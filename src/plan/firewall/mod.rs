//! Firewall rule sets as Docker leaves them, and the layouts that make them.
//!
//! A [`Ruleset`] replays Docker's iptables calls (`-N`, `-I`, `-A`) in
//! Docker's order, so the final order of rules is Docker's, and renders the
//! result the way `iptables-save` prints it. That text is both what `apply`
//! feeds to `iptables-restore` (one table at a time) and what the snapshot
//! test compares with `iptables-save` after the lab is built.
//!
//! Each Docker version's rule layout is one module behind [`FirewallLayout`].

pub mod docker1;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::Ipv4Addr;

use serde::Serialize;

use crate::scenario::Proto;

/// The iptables tables bridgelab writes to, in `iptables-save` order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Table {
    Filter,
    Nat,
}

impl Table {
    pub fn name(self) -> &'static str {
        match self {
            Table::Filter => "filter",
            Table::Nat => "nat",
        }
    }
    fn builtin_chains(self) -> &'static [&'static str] {
        match self {
            Table::Filter => &["INPUT", "FORWARD", "OUTPUT"],
            Table::Nat => &["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"],
        }
    }
}

/// One chain's rules, each in `iptables-save` argument order without `-A CHAIN`.
#[derive(Debug, Clone, Serialize)]
pub struct Chain {
    pub name: String,
    pub rules: Vec<String>,
}

/// One rule where it was put: enough to delete it again (`iptables -D`).
pub type RuleRef = (Table, String, String);

/// One table as Docker left it.
#[derive(Debug, Clone, Serialize)]
pub struct TableRules {
    pub table: Table,
    /// Built-in chains first (policy ACCEPT), then user chains.
    pub chains: Vec<Chain>,
}

/// Every table Docker touched, in `iptables-save` order.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Ruleset {
    pub tables: Vec<TableRules>,
}

impl Ruleset {
    fn table(&mut self, t: Table) -> &mut TableRules {
        if let Some(i) = self.tables.iter().position(|x| x.table == t) {
            return &mut self.tables[i];
        }
        let chains = t.builtin_chains().iter().map(|c| Chain { name: c.to_string(), rules: vec![] }).collect();
        self.tables.push(TableRules { table: t, chains });
        self.tables.sort_by_key(|x| x.table);
        let i = self.tables.iter().position(|x| x.table == t).expect("just added");
        &mut self.tables[i]
    }

    /// A chain of the table; layouts check for their own chains first (as
    /// iptables would fail), so a missing one is made rather than a panic.
    fn chain(&mut self, t: Table, chain: &str) -> &mut Chain {
        self.new_chain(t, chain);
        let table = self.table(t);
        let i = table.chains.iter().position(|c| c.name == chain).expect("just made");
        &mut table.chains[i]
    }

    /// `iptables -t T -N CHAIN` (a no-op when it exists, as Docker checks first).
    pub fn new_chain(&mut self, t: Table, chain: &str) {
        let table = self.table(t);
        if !table.chains.iter().any(|c| c.name == chain) {
            table.chains.push(Chain { name: chain.to_string(), rules: vec![] });
        }
    }

    pub fn has_chain(&self, t: Table, chain: &str) -> bool {
        self.tables.iter().any(|x| x.table == t && x.chains.iter().any(|c| c.name == chain))
    }

    /// `iptables -t T -I CHAIN rule`: insert at the top.
    pub fn insert(&mut self, t: Table, chain: &str, rule: String) -> RuleRef {
        self.chain(t, chain).rules.insert(0, rule.clone());
        (t, chain.to_string(), rule)
    }

    /// Docker's `if !Exists(rule) { -I rule }`.
    pub fn insert_unless_present(&mut self, t: Table, chain: &str, rule: String) {
        if !self.chain(t, chain).rules.contains(&rule) {
            self.insert(t, chain, rule);
        }
    }

    /// `iptables -t T -A CHAIN rule`: append.
    pub fn append(&mut self, t: Table, chain: &str, rule: String) -> RuleRef {
        self.chain(t, chain).rules.push(rule.clone());
        (t, chain.to_string(), rule)
    }

    /// `iptables -t T -D CHAIN rule`: the first match goes; a missing rule
    /// or chain is not an error (Docker ignores it on cleanup).
    pub fn delete(&mut self, (t, chain, rule): &RuleRef) {
        if let Some(c) =
            self.tables.iter_mut().find(|x| x.table == *t).and_then(|x| x.chains.iter_mut().find(|c| c.name == *chain))
        {
            if let Some(i) = c.rules.iter().position(|r| r == rule) {
                c.rules.remove(i);
            }
        }
    }

    /// [`delete`](Self::delete) of each rule in turn (a rule listed twice
    /// removes its first two copies), in one pass per chain: a container
    /// with 65,535 published ports stops in linear time.
    pub fn delete_all(&mut self, refs: &[RuleRef]) {
        let mut wanted: HashMap<(Table, &str), HashMap<&str, usize>> = HashMap::new();
        for (t, chain, rule) in refs {
            *wanted.entry((*t, chain.as_str())).or_default().entry(rule.as_str()).or_default() += 1;
        }
        for ((t, chain), mut left) in wanted {
            let Some(c) = self
                .tables
                .iter_mut()
                .find(|x| x.table == t)
                .and_then(|x| x.chains.iter_mut().find(|c| c.name == chain))
            else {
                continue;
            };
            c.rules.retain(|r| match left.get_mut(r.as_str()) {
                Some(n) if *n > 0 => {
                    *n -= 1;
                    false
                }
                _ => true,
            });
        }
    }

    /// `iptables -t T -F CHAIN; -X CHAIN` and every rule that jumps to it.
    pub fn remove_chain(&mut self, t: Table, chain: &str) {
        if let Some(table) = self.tables.iter_mut().find(|x| x.table == t) {
            let jump = format!("-j {chain}");
            table.chains.retain(|c| c.name != chain);
            for c in &mut table.chains {
                c.rules.retain(|r| !r.ends_with(&jump));
            }
        }
    }

    /// What a firewall reload does: every rule and user chain gone.
    pub fn flush_all(&mut self) {
        for t in &mut self.tables {
            let builtin = t.table.builtin_chains();
            t.chains.retain(|c| builtin.contains(&c.name.as_str()));
            for c in &mut t.chains {
                c.rules.clear();
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.tables.is_empty()
    }

    /// One table as `iptables-restore` input (and, without the counters,
    /// as `iptables-save` prints it).
    pub fn table_text(&self, t: &TableRules) -> String {
        let mut s = format!("*{}\n", t.table.name());
        let builtin = t.table.builtin_chains();
        let mut user: Vec<&Chain> = t.chains.iter().filter(|c| !builtin.contains(&c.name.as_str())).collect();
        user.sort_by(|a, b| a.name.cmp(&b.name));
        let ordered: Vec<&Chain> = t.chains.iter().filter(|c| builtin.contains(&c.name.as_str())).chain(user).collect();
        for c in &ordered {
            let policy = if builtin.contains(&c.name.as_str()) { "ACCEPT" } else { "-" };
            let _ = writeln!(s, ":{} {policy} [0:0]", c.name);
        }
        for c in &ordered {
            for r in &c.rules {
                let _ = writeln!(s, "-A {} {r}", c.name);
            }
        }
        s.push_str("COMMIT\n");
        s
    }

    /// All tables, normalized as snapshots are (see [`normalize_save`]);
    /// a table without rules or user chains is left out, as bridgelab
    /// leaves it out of what it reads back.
    pub fn render(&self) -> String {
        let used = |t: &&TableRules| {
            let builtin = t.table.builtin_chains();
            t.chains.iter().any(|c| !c.rules.is_empty() || !builtin.contains(&c.name.as_str()))
        };
        normalize_save(&self.tables.iter().filter(used).map(|t| self.table_text(t)).collect::<String>())
    }
}

/// `iptables-save` output without what changes from run to run: comment
/// lines (dates, versions) and packet/byte counters.
pub fn normalize_save(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let line = match (line.starts_with(':'), line.rfind(" [")) {
            (true, Some(i)) if line.ends_with(']') => &line[..i],
            _ => line,
        };
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// A published port as the port mapper set it up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PortMapping {
    pub container: String,
    pub proto: Proto,
    /// `0.0.0.0` for every address.
    pub host_ip: Ipv4Addr,
    pub host_port: u16,
    pub container_ip: Ipv4Addr,
    pub container_port: u16,
}

impl std::fmt::Display for PortMapping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}/{} -> {}:{} ({})",
            self.host_ip, self.host_port, self.proto, self.container_ip, self.container_port, self.container
        )
    }
}

/// What a Docker version does to the firewall at each moment of its life.
pub trait FirewallLayout {
    /// The `firewall` value that selects this layout.
    fn name(&self) -> &'static str;

    /// Rules the daemon installs when it starts (with `--iptables=true`);
    /// on a restart, over what is already there.
    fn daemon_start(&self, rules: &mut Ruleset, bridge: &BridgeFacts);

    /// Rules for one published port (the port mapper's `forward`), returned
    /// so they can be deleted when the container stops.
    fn map_port(&self, rules: &mut Ruleset, bridge: &str, m: &PortMapping) -> Result<Vec<RuleRef>, String>;

    /// Rules that let `parent` reach `child`'s exposed `port` (legacy links).
    fn link(
        &self,
        rules: &mut Ruleset,
        bridge: &str,
        parent: Ipv4Addr,
        child: Ipv4Addr,
        proto: Proto,
        port: u16,
    ) -> Result<Vec<RuleRef>, String>;
}

/// What a layout needs to know about the daemon's bridge.
#[derive(Debug, Clone)]
pub struct BridgeFacts {
    pub name: String,
    /// The bridge's address with the network's prefix, e.g. 172.17.42.1/16.
    pub address: crate::scenario::IfaceAddr,
    pub icc: bool,
    pub ip_masq: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_goes_on_top_and_append_at_the_end() {
        let mut r = Ruleset::default();
        r.insert(Table::Filter, "FORWARD", "-j B".into());
        r.insert(Table::Filter, "FORWARD", "-j A".into());
        r.append(Table::Filter, "FORWARD", "-j C".into());
        r.new_chain(Table::Filter, "DOCKER");
        r.new_chain(Table::Filter, "DOCKER");
        assert_eq!(
            r.render(),
            "*filter\n:INPUT ACCEPT\n:FORWARD ACCEPT\n:OUTPUT ACCEPT\n:DOCKER -\n-A FORWARD -j A\n-A FORWARD -j B\n-A FORWARD -j C\nCOMMIT\n"
        );
    }

    #[test]
    fn delete_all_is_delete_in_turn() {
        let mut one = Ruleset::default();
        for r in ["-j A", "-j B", "-j A", "-j C", "-j A"] {
            one.append(Table::Filter, "FORWARD", r.into());
        }
        one.append(Table::Nat, "POSTROUTING", "-j A".into());
        let mut all = one.clone();
        let refs: Vec<RuleRef> =
            [(Table::Filter, "-j A"), (Table::Filter, "-j C"), (Table::Filter, "-j A"), (Table::Nat, "-j Z")]
                .into_iter()
                .map(|(t, r)| (t, if t == Table::Nat { "POSTROUTING" } else { "FORWARD" }.to_string(), r.to_string()))
                .collect();
        for r in &refs {
            one.delete(r);
        }
        all.delete_all(&refs);
        assert_eq!(all.render(), one.render());
        assert!(all.render().contains("-A FORWARD -j B\n-A FORWARD -j A\n"), "{}", all.render());
    }

    #[test]
    fn normalize_drops_comments_and_counters() {
        let save = "# Generated by iptables-save v1.8.9 on Wed\n*nat\n:PREROUTING ACCEPT [12:345]\n:DOCKER - [0:0]\n-A DOCKER -j RETURN\nCOMMIT\n# Completed on Wed\n";
        assert_eq!(normalize_save(save), "*nat\n:PREROUTING ACCEPT\n:DOCKER -\n-A DOCKER -j RETURN\nCOMMIT\n");
    }
}
