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
pub mod docker20;
pub mod firewaller;
pub mod iptabler;
pub mod nftabler;
pub mod nftables;
pub mod restore;

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};

use serde::Serialize;

use crate::scenario::Proto;

/// The iptables tables bridgelab writes to, in the order bridgelab prints
/// them (filter, nat, raw: see `apply::iptables::canonical_tables`), then
/// the same tables of `ip6tables`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Table {
    Filter,
    Nat,
    Raw,
    Filter6,
    Nat6,
    Raw6,
}

impl Table {
    /// The table's name, as both `iptables` and `ip6tables` call it.
    pub fn name(self) -> &'static str {
        match self {
            Table::Filter | Table::Filter6 => "filter",
            Table::Nat | Table::Nat6 => "nat",
            Table::Raw | Table::Raw6 => "raw",
        }
    }
    /// An `ip6tables` table.
    pub fn is_v6(self) -> bool {
        matches!(self, Table::Filter6 | Table::Nat6 | Table::Raw6)
    }
    fn builtin_chains(self) -> &'static [&'static str] {
        match self {
            Table::Filter | Table::Filter6 => &["INPUT", "FORWARD", "OUTPUT"],
            Table::Nat | Table::Nat6 => &["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"],
            Table::Raw | Table::Raw6 => &["PREROUTING", "OUTPUT"],
        }
    }
}

/// The line between the `iptables-save` and the `ip6tables-save` text in
/// [`Ruleset::render`] and in what bridgelab reads back (only when there
/// are IPv6 rules: Docker 20.10 and 1.6.2 have none).
pub const IP6TABLES_MARK: &str = "# ip6tables-save\n";

/// One chain's rules, each in `iptables-save` argument order without `-A CHAIN`.
#[derive(Debug, Clone, Serialize)]
pub struct Chain {
    pub name: String,
    /// A deque: Docker 28 inserts each published port's rule at the head.
    pub rules: VecDeque<String>,
    /// A built-in chain's policy when it is not ACCEPT (`iptables -P`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
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
#[derive(Debug, Default, Serialize)]
pub struct Ruleset {
    pub tables: Vec<TableRules>,
    /// How many copies of each rule its chain holds, by a hash of table,
    /// chain and rule (a collision only overstates a count). Lets
    /// `delete_all` see when every copy of a rule goes, so it can take them
    /// from the end of the chain, where the newest container's rules are,
    /// instead of walking the whole chain for each container.
    #[serde(skip)]
    copies: HashMap<u64, usize>,
    /// The nftables tables (Docker 29 with `--firewall-backend=nftables`);
    /// the iptables tables above stay empty then.
    #[serde(skip_serializing_if = "nftables::NftRuleset::is_empty")]
    pub nft: nftables::NftRuleset,
}

/// A plan keeps a copy of the rules after every step: a copy's index is as
/// big as its rules, not as the table it was cut from (a derived `clone`
/// keeps a hash table's capacity, 2 MB for each copy of an emptied lab that
/// once had 28,000 ports).
impl Clone for Ruleset {
    fn clone(&self) -> Ruleset {
        let mut copies = HashMap::with_capacity(self.copies.len());
        copies.extend(self.copies.iter().map(|(k, v)| (*k, *v)));
        Ruleset { tables: self.tables.clone(), copies, nft: self.nft.clone() }
    }
}

fn rule_key(t: Table, chain: &str, rule: &str) -> u64 {
    crate::stable_hash::fnv1a(&[t.name(), chain, rule])
}

impl Ruleset {
    /// Whether any table is an IPv6 one (`ip6tables`).
    pub fn has_v6(&self) -> bool {
        self.tables.iter().any(|t| t.table.is_v6())
    }

    fn table(&mut self, t: Table) -> &mut TableRules {
        if let Some(i) = self.tables.iter().position(|x| x.table == t) {
            return &mut self.tables[i];
        }
        let chains = t
            .builtin_chains()
            .iter()
            .map(|c| Chain { name: c.to_string(), rules: VecDeque::new(), policy: None })
            .collect();
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
            table.chains.push(Chain { name: chain.to_string(), rules: VecDeque::new(), policy: None });
        }
    }

    pub fn has_chain(&self, t: Table, chain: &str) -> bool {
        self.tables.iter().any(|x| x.table == t && x.chains.iter().any(|c| c.name == chain))
    }

    fn counted(&mut self, t: Table, chain: &str, rule: &str, added: bool) {
        let key = rule_key(t, chain, rule);
        if added {
            *self.copies.entry(key).or_default() += 1;
        } else if let Some(n) = self.copies.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                self.copies.remove(&key);
            }
        }
    }

    fn copies(&self, t: Table, chain: &str, rule: &str) -> usize {
        self.copies.get(&rule_key(t, chain, rule)).copied().unwrap_or(0)
    }

    /// Counts every rule again, after a change to whole chains.
    fn recount(&mut self) {
        self.copies.clear();
        for t in &self.tables {
            for c in &t.chains {
                for r in &c.rules {
                    *self.copies.entry(rule_key(t.table, &c.name, r)).or_default() += 1;
                }
            }
        }
    }

    /// `iptables -t T -I CHAIN rule`: insert at the top.
    pub fn insert(&mut self, t: Table, chain: &str, rule: String) -> RuleRef {
        self.chain(t, chain).rules.push_front(rule.clone());
        self.counted(t, chain, &rule, true);
        (t, chain.to_string(), rule)
    }

    /// Docker's `if !Exists(rule) { -I rule }`.
    pub fn insert_unless_present(&mut self, t: Table, chain: &str, rule: String) {
        // No count: surely absent; a count may be another rule's (a hash collision).
        if self.copies(t, chain, &rule) == 0 || !self.chain(t, chain).rules.contains(&rule) {
            self.insert(t, chain, rule);
        }
    }

    /// `-A` unless the rule is there (libnetwork's `ProgramRule`, `AddReturnRule`).
    pub fn append_unless_present(&mut self, t: Table, chain: &str, rule: String) {
        if !self.contains(t, chain, &rule) {
            self.append(t, chain, rule);
        }
    }

    /// Whether `-C` finds the rule (a lookup; a count is checked, since it
    /// may be another rule's).
    pub fn contains(&self, t: Table, chain: &str, rule: &str) -> bool {
        self.copies(t, chain, rule) > 0
            && self.tables.iter().any(|x| {
                x.table == t && x.chains.iter().any(|c| c.name == chain && c.rules.iter().rev().any(|r| r == rule))
            })
    }

    /// `iptables -t T -P CHAIN POLICY` on a built-in chain.
    pub fn set_policy(&mut self, t: Table, chain: &str, policy: &str) {
        let c = self.chain(t, chain);
        c.policy = (policy != "ACCEPT").then(|| policy.to_string());
    }

    /// `iptables -t T -F CHAIN`: a missing chain is not an error here (Docker ignores it).
    pub fn flush_chain(&mut self, t: Table, chain: &str) {
        if let Some(c) =
            self.tables.iter_mut().find(|x| x.table == t).and_then(|x| x.chains.iter_mut().find(|c| c.name == chain))
        {
            c.rules.clear();
            self.recount();
        }
    }

    /// `iptables -t T -X CHAIN`: only an empty user chain no rule jumps to
    /// goes; otherwise iptables refuses, and Docker ignores that.
    pub fn delete_chain(&mut self, t: Table, chain: &str) -> bool {
        let Some(table) = self.tables.iter_mut().find(|x| x.table == t) else { return false };
        let jump = format!("-j {chain}");
        let referenced = table.chains.iter().any(|c| c.rules.iter().any(|r| r.ends_with(&jump)));
        match table.chains.iter().position(|c| c.name == chain) {
            Some(i) if !referenced && table.chains[i].rules.is_empty() && !t.builtin_chains().contains(&chain) => {
                table.chains.remove(i);
                true
            }
            _ => false,
        }
    }

    /// `iptables -t T -A CHAIN rule`: append.
    pub fn append(&mut self, t: Table, chain: &str, rule: String) -> RuleRef {
        self.chain(t, chain).rules.push_back(rule.clone());
        self.counted(t, chain, &rule, true);
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
                self.counted(*t, chain, rule, false);
            }
        }
    }

    /// [`delete`](Self::delete) of each rule in turn (a rule listed twice
    /// removes its first two copies), in one pass per chain: a container
    /// with 65,535 published ports stops in linear time. When every copy
    /// of each rule goes, which copies are first does not matter, and the
    /// pass starts from the end of the chain and stops once all are found:
    /// a daemon stopping its containers newest first does not walk every
    /// chain once per container.
    pub fn delete_all(&mut self, refs: &[RuleRef]) {
        let mut wanted: HashMap<(Table, &str), HashMap<&str, usize>> = HashMap::new();
        for (t, chain, rule) in refs {
            *wanted.entry((*t, chain.as_str())).or_default().entry(rule.as_str()).or_default() += 1;
        }
        for ((t, chain), mut left) in wanted {
            let mut present = 0;
            let mut every_copy = true;
            for (rule, n) in &left {
                let copies = self.copies(t, chain, rule);
                present += copies.min(*n);
                every_copy &= copies <= *n;
            }
            let Some(c) = self
                .tables
                .iter_mut()
                .find(|x| x.table == t)
                .and_then(|x| x.chains.iter_mut().find(|c| c.name == chain))
            else {
                continue;
            };
            let mut take = |r: &String| match left.get_mut(r.as_str()) {
                Some(n) if *n > 0 => {
                    *n -= 1;
                    true
                }
                _ => false,
            };
            let mut gone: Vec<String> = Vec::new();
            if every_copy {
                // From the end: which rules go, and from where on.
                let mut marked = Vec::new();
                for (i, r) in c.rules.iter().enumerate().rev() {
                    if marked.len() == present {
                        break;
                    }
                    if take(r) {
                        marked.push(i);
                    }
                }
                if let Some(&from) = marked.last() {
                    let tail: Vec<String> = c.rules.drain(from..).collect();
                    for (j, r) in tail.into_iter().enumerate() {
                        if marked.binary_search_by(|m| (from + j).cmp(m)).is_ok() {
                            gone.push(r);
                        } else {
                            c.rules.push_back(r);
                        }
                    }
                }
            } else {
                let mut kept = Vec::with_capacity(c.rules.len());
                for r in c.rules.drain(..) {
                    if take(&r) {
                        gone.push(r);
                    } else {
                        kept.push(r);
                    }
                }
                c.rules = kept.into();
            }
            for r in gone {
                self.counted(t, chain, &r, false);
            }
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
        self.recount();
    }

    /// What a firewall reload does, `iptables -F; iptables -X; iptables
    /// -t nat -F; iptables -t nat -X` (what `bridgelab diff` runs): every
    /// rule and user chain of the IPv4 filter and nat tables gone (the
    /// built-in chains keep their policies). Docker 28's raw table and the
    /// ip6tables rules are not touched, as on a real host.
    pub fn flush_all(&mut self) {
        for t in self.tables.iter_mut().filter(|t| matches!(t.table, Table::Filter | Table::Nat)) {
            let builtin = t.table.builtin_chains();
            t.chains.retain(|c| builtin.contains(&c.name.as_str()));
            for c in &mut t.chains {
                c.rules.clear();
            }
        }
        self.recount();
    }

    pub fn is_empty(&self) -> bool {
        self.tables.is_empty()
    }

    /// How many rules all chains hold.
    pub fn rule_count(&self) -> usize {
        self.tables.iter().flat_map(|t| &t.chains).map(|c| c.rules.len()).sum()
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
            let policy = match &c.policy {
                Some(p) => p.as_str(),
                None if builtin.contains(&c.name.as_str()) => "ACCEPT",
                None => "-",
            };
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
            t.chains.iter().any(|c| !c.rules.is_empty() || !builtin.contains(&c.name.as_str()) || c.policy.is_some())
        };
        let text = |v6: bool| {
            normalize_save(
                &self
                    .tables
                    .iter()
                    .filter(|t| t.table.is_v6() == v6)
                    .filter(used)
                    .map(|t| self.table_text(t))
                    .collect::<String>(),
            )
        };
        join_families(&text(false), &text(true))
    }
}

/// The IPv4 and IPv6 texts as one: the second, when there is one, after
/// [`IP6TABLES_MARK`].
pub fn join_families(v4: &str, v6: &str) -> String {
    if v6.is_empty() {
        v4.to_string()
    } else {
        format!("{v4}{IP6TABLES_MARK}{v6}")
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
    /// Shared by all of a container's mappings: a long name published on
    /// 65,535 ports is held once, not 65,535 times.
    pub container: std::sync::Arc<str>,
    pub proto: Proto,
    /// `0.0.0.0` for every IPv4 address (`::`, for IPv6, is the other
    /// `docker-proxy` Docker 20.10 starts for the same port).
    pub host_ip: IpAddr,
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

impl PortMapping {
    /// The host address when it is IPv4.
    pub fn host_v4(&self) -> Option<Ipv4Addr> {
        match self.host_ip {
            IpAddr::V4(ip) => Some(ip),
            IpAddr::V6(_) => None,
        }
    }
}

/// What a Docker version does to the firewall at each moment of its life.
pub trait FirewallLayout {
    /// The `firewall` value that selects this layout.
    fn name(&self) -> &'static str;

    /// Rules the daemon installs when it starts (with `--iptables=true`);
    /// on a restart, over what is already there. libnetwork layouts make
    /// these for each bridge network they create.
    fn daemon_start(&self, rules: &mut Ruleset, bridge: &BridgeFacts);

    /// libnetwork: the bridge driver's `configure` at each daemon start,
    /// before any network (its own chains, made fresh).
    fn driver_start(&self, _rules: &mut Ruleset) {}

    /// libnetwork: the controller's `arrangeUserFilterRule` after it made
    /// a network.
    fn arrange_user_chain(&self, _rules: &mut Ruleset) {}

    /// libnetwork: the rules of one bridge network go (network delete).
    fn network_remove(&self, _rules: &mut Ruleset, _bridge: &BridgeFacts) {}

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
    /// `--internal` (libnetwork): no way out, no NAT.
    pub internal: bool,
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
        // Small chains of a few rules, some repeated, against random lists
        // of rules to delete: some with every copy, some not, some absent.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        for _ in 0..2000 {
            let mut one = Ruleset::default();
            for _ in 0..next(8) {
                let t = if next(4) == 0 { Table::Nat } else { Table::Filter };
                let chain = if t == Table::Nat { "POSTROUTING" } else { "FORWARD" };
                let rule = format!("-j R{}", next(4));
                if next(3) == 0 {
                    one.insert(t, chain, rule);
                } else {
                    one.append(t, chain, rule);
                }
            }
            let refs: Vec<RuleRef> = (0..next(6))
                .map(|_| {
                    let t = if next(4) == 0 { Table::Nat } else { Table::Filter };
                    let chain = if t == Table::Nat { "POSTROUTING" } else { "FORWARD" };
                    (t, chain.to_string(), format!("-j R{}", next(5)))
                })
                .collect();
            let mut all = one.clone();
            for r in &refs {
                one.delete(r);
            }
            all.delete_all(&refs);
            assert_eq!(all.render(), one.render(), "{refs:?}");
            // The counts stay right for the next round of deletes.
            let mut recounted = all.clone();
            recounted.recount();
            assert_eq!(all.copies, recounted.copies);
        }
    }

    #[test]
    fn insert_unless_present_sees_rules_once_deleted() {
        let mut r = Ruleset::default();
        r.insert_unless_present(Table::Filter, "FORWARD", "-j A".into());
        r.insert_unless_present(Table::Filter, "FORWARD", "-j A".into());
        let a = (Table::Filter, "FORWARD".to_string(), "-j A".to_string());
        r.delete_all(std::slice::from_ref(&a));
        r.insert_unless_present(Table::Filter, "FORWARD", "-j A".into());
        assert_eq!(r.render().matches("-j A").count(), 1);
    }

    #[test]
    fn flush_all_is_iptables_f_and_x_of_filter_and_nat() {
        // `iptables -F; -X; -t nat -F; -X`: Docker 28's raw drops and its
        // ip6tables chains are left where they are.
        let mut r = Ruleset::default();
        r.new_chain(Table::Filter, "DOCKER");
        r.append(Table::Filter, "FORWARD", "-j DOCKER".into());
        r.append(Table::Nat, "POSTROUTING", "-j MASQUERADE".into());
        r.append(Table::Raw, "PREROUTING", "-d 172.17.0.2/32 ! -i docker0 -j DROP".into());
        r.new_chain(Table::Filter6, "DOCKER-USER");
        r.flush_all();
        let text = r.render();
        let (v4, v6) = text.split_once(IP6TABLES_MARK).expect("the IPv6 chain is still there");
        assert!(!v4.contains("-j DOCKER\n") && !v4.contains(":DOCKER -") && !v4.contains("MASQUERADE"), "{v4}");
        assert!(v4.contains("-A PREROUTING -d 172.17.0.2/32 ! -i docker0 -j DROP"), "{v4}");
        assert!(v6.contains(":DOCKER-USER -"), "{v6}");
    }

    #[test]
    fn normalize_drops_comments_and_counters() {
        let save = "# Generated by iptables-save v1.8.9 on Wed\n*nat\n:PREROUTING ACCEPT [12:345]\n:DOCKER - [0:0]\n-A DOCKER -j RETURN\nCOMMIT\n# Completed on Wed\n";
        assert_eq!(normalize_save(save), "*nat\n:PREROUTING ACCEPT\n:DOCKER -\n-A DOCKER -j RETURN\nCOMMIT\n");
    }
}
