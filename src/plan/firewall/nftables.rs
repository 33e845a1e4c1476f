//! nftables tables as a pure model: maps with their elements, chains (base
//! chains with their hook) and rules in rule groups, replayed the way moby's
//! `daemon/libnetwork/internal/nftables` package keeps them.
//!
//! Each rule is held as `nft list` prints it (`iifname "br" counter accept
//! comment "ICC"`), which is also valid `nft -f` input, so one text serves
//! as what `apply` installs ([`NftRuleset::script`]) and as what the
//! snapshot compares with the kernel's ([`NftRuleset::listing`]).
//! [`NftRuleset::from_json`] reads `nft -j list ruleset` back into the same
//! model, so the plan and the kernel are printed by one printer.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;

use serde::Serialize;
use serde_json::Value;

/// An nftables address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Ip,
    Ip6,
}

impl Family {
    pub fn name(self) -> &'static str {
        match self {
            Family::Ip => "ip",
            Family::Ip6 => "ip6",
        }
    }
}

/// A base chain's hook (`type filter hook forward priority filter; policy accept;`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hook {
    /// `filter`, `nat`, `route`.
    pub kind: String,
    pub hook: String,
    pub priority: i32,
    pub policy: String,
}

/// A chain: its rules in rule groups, lower groups first, each group in
/// the order its rules were added (moby's `chain.ruleGroups`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Chain {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base: Option<Hook>,
    pub groups: BTreeMap<u32, Vec<String>>,
}

impl Chain {
    /// Every rule, in the order the kernel holds them.
    pub fn rules(&self) -> impl Iterator<Item = &String> {
        self.groups.values().flatten()
    }
}

/// A named map (`type ifname : verdict`), its elements as key and value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Map {
    pub name: String,
    /// `ifname : verdict`.
    pub kind: String,
    pub elements: Vec<(String, String)>,
}

/// One table.
#[derive(Debug, Clone, Serialize)]
pub struct Table {
    pub family: Family,
    pub name: String,
    /// Maps and chains in the kernel's order: the order they were made.
    pub maps: Vec<Map>,
    pub chains: Vec<Chain>,
    /// Every (chain, group, rule) the table holds, so "rule exists" is one
    /// lookup and not a walk of a group that may hold a rule per published
    /// port (a group's rules are unique: a second copy is refused).
    #[serde(skip)]
    rules: HashSet<(String, u32, String)>,
}

/// Tables are equal when what the kernel would hold is: the index follows.
impl PartialEq for Table {
    fn eq(&self, o: &Table) -> bool {
        self.family == o.family && self.name == o.name && self.maps == o.maps && self.chains == o.chains
    }
}
impl Eq for Table {}

/// How to take back one command of a batch that fails later.
enum Undo {
    PopChain,
    InsertChain(usize, Chain),
    PopMap,
    InsertMap(usize, Map),
    PopElement(usize),
    InsertElement(usize, usize, (String, String)),
    PopRule { chain: usize, group: u32 },
    InsertRule { chain: usize, group: u32, at: usize, rule: String },
    Nothing,
}

/// An error of an nftables update, in moby's words (`internal/nftables`).
pub type NftError = String;

impl Table {
    pub fn new(family: Family, name: &str) -> Table {
        Table { family, name: name.into(), maps: vec![], chains: vec![], rules: HashSet::new() }
    }

    pub fn chain(&self, name: &str) -> Option<&Chain> {
        self.chains.iter().find(|c| c.name == name)
    }

    fn chain_mut(&mut self, name: &str) -> Option<&mut Chain> {
        self.chains.iter_mut().find(|c| c.name == name)
    }

    pub fn map(&self, name: &str) -> Option<&Map> {
        self.maps.iter().find(|m| m.name == name)
    }

    /// Applies one batch (moby's `Table.Apply` of a `Modifier`): all or
    /// nothing. The chains and maps a batch makes reach the kernel in name
    /// order (moby's update template ranges over Go maps, which
    /// `text/template` visits sorted), after the ones already there.
    pub fn apply(&mut self, cmds: &[Cmd]) -> Result<(), NftError> {
        // All or nothing without copying the table: each command leaves
        // how to take it back, and a failure takes the batch back in turn.
        let mut undo = Vec::with_capacity(cmds.len());
        for c in cmds {
            match self.one(c) {
                Ok(u) => undo.push(u),
                Err(e) => {
                    for u in undo.into_iter().rev() {
                        self.take_back(u);
                    }
                    return Err(e);
                }
            }
        }
        let made = |name: &str| cmds.iter().any(|c| matches!(c, Cmd::Chain { name: n, .. } if n == name));
        if cmds.iter().any(|c| matches!(c, Cmd::Chain { .. })) {
            let (mut kept, mut new): (Vec<Chain>, Vec<Chain>) = self.chains.drain(..).partition(|c| !made(&c.name));
            new.sort_by(|a, b| a.name.cmp(&b.name));
            kept.extend(new);
            self.chains = kept;
        }
        let made = |name: &str| cmds.iter().any(|c| matches!(c, Cmd::Map { name: n, .. } if n == name));
        if cmds.iter().any(|c| matches!(c, Cmd::Map { .. })) {
            let (mut kept, mut new): (Vec<Map>, Vec<Map>) = self.maps.drain(..).partition(|m| !made(&m.name));
            new.sort_by(|a, b| a.name.cmp(&b.name));
            kept.extend(new);
            self.maps = kept;
        }
        Ok(())
    }

    fn take_back(&mut self, u: Undo) {
        match u {
            Undo::PopChain => {
                if let Some(c) = self.chains.pop() {
                    self.forget_rules(&c);
                }
            }
            Undo::InsertChain(i, c) => {
                for (g, rules) in &c.groups {
                    self.rules.extend(rules.iter().map(|r| (c.name.clone(), *g, r.clone())));
                }
                self.chains.insert(i, c);
            }
            Undo::PopMap => {
                self.maps.pop();
            }
            Undo::InsertMap(i, m) => self.maps.insert(i, m),
            Undo::PopElement(m) => {
                self.maps[m].elements.pop();
            }
            Undo::InsertElement(m, i, e) => self.maps[m].elements.insert(i, e),
            Undo::PopRule { chain, group } => {
                let c = &mut self.chains[chain];
                if let Some(g) = c.groups.get_mut(&group) {
                    if let Some(r) = g.pop() {
                        self.rules.remove(&(c.name.clone(), group, r));
                    }
                    if g.is_empty() {
                        c.groups.remove(&group);
                    }
                }
            }
            Undo::InsertRule { chain, group, at, rule } => {
                let c = &mut self.chains[chain];
                self.rules.insert((c.name.clone(), group, rule.clone()));
                c.groups.entry(group).or_default().insert(at, rule);
            }
            Undo::Nothing => {}
        }
    }

    fn forget_rules(&mut self, c: &Chain) {
        for (g, rules) in &c.groups {
            for r in rules {
                self.rules.remove(&(c.name.clone(), *g, r.clone()));
            }
        }
    }

    fn one(&mut self, cmd: &Cmd) -> Result<Undo, NftError> {
        match cmd {
            Cmd::Chain { name, base } => {
                if self.chain(name).is_some() {
                    return Err(format!("chain '{name}' already exists"));
                }
                self.chains.push(Chain { name: name.clone(), base: base.clone(), groups: BTreeMap::new() });
                Ok(Undo::PopChain)
            }
            Cmd::DelChain(name) => {
                // A chain goes with its rules; moby refuses only a missing one.
                let i = self
                    .chains
                    .iter()
                    .position(|c| &c.name == name)
                    .ok_or_else(|| format!("cannot delete chain '{name}', it does not exist"))?;
                let c = self.chains.remove(i);
                self.forget_rules(&c);
                Ok(Undo::InsertChain(i, c))
            }
            Cmd::Map { name, kind } => {
                if self.map(name).is_some() {
                    return Err(format!("map '{name}' already exists"));
                }
                self.maps.push(Map { name: name.clone(), kind: kind.clone(), elements: vec![] });
                Ok(Undo::PopMap)
            }
            Cmd::DelMap(name) => {
                let i = self
                    .maps
                    .iter()
                    .position(|m| &m.name == name)
                    .ok_or_else(|| format!("cannot delete map '{name}', it does not exist"))?;
                if !self.maps[i].elements.is_empty() {
                    return Err(format!(
                        "cannot delete map '{name}', it contains {} elements",
                        self.maps[i].elements.len()
                    ));
                }
                Ok(Undo::InsertMap(i, self.maps.remove(i)))
            }
            Cmd::Element { map, key, value } => {
                let i = self
                    .maps
                    .iter()
                    .position(|m| &m.name == map)
                    .ok_or_else(|| format!("cannot add to map '{map}', it does not exist"))?;
                let m = &mut self.maps[i];
                if m.elements.iter().any(|(k, _)| k == key) {
                    return Err(format!("map '{map}' already contains element '{key}'"));
                }
                m.elements.push((key.clone(), value.clone()));
                Ok(Undo::PopElement(i))
            }
            Cmd::DelElement { map, key } => {
                let mi = self
                    .maps
                    .iter()
                    .position(|m| &m.name == map)
                    .ok_or_else(|| format!("cannot delete from map '{map}', it does not exist"))?;
                let m = &mut self.maps[mi];
                let i = m
                    .elements
                    .iter()
                    .position(|(k, _)| k == key)
                    .ok_or_else(|| format!("map '{map}' does not contain element '{key}'"))?;
                Ok(Undo::InsertElement(mi, i, m.elements.remove(i)))
            }
            Cmd::Rule { chain, group, rule, ignore_exist } => {
                let ci = self
                    .chains
                    .iter()
                    .position(|c| &c.name == chain)
                    .ok_or_else(|| format!("chain '{chain}' does not exist"))?;
                let key = (chain.clone(), *group, rule.clone());
                if self.rules.contains(&key) {
                    if *ignore_exist {
                        return Ok(Undo::Nothing);
                    }
                    return Err(format!("adding rule:'{rule}' chain:'{chain}' group:{group}: rule exists"));
                }
                self.chains[ci].groups.entry(*group).or_default().push(rule.clone());
                self.rules.insert(key);
                Ok(Undo::PopRule { chain: ci, group: *group })
            }
            Cmd::DelRule { chain, group, rule, ignore_exist } => {
                let ci = self
                    .chains
                    .iter()
                    .position(|c| &c.name == chain)
                    .ok_or_else(|| format!("deleting rule:'{rule}' - chain '{chain}' does not exist"))?;
                // moby's `slices.DeleteFunc`: every copy goes (a group holds one).
                if !self.rules.remove(&(chain.clone(), *group, rule.clone())) {
                    if !ignore_exist {
                        return Err(format!(
                            "deleting rule:'{rule}' chain:'{chain}' group:{group}: rule does not exist"
                        ));
                    }
                    return Ok(Undo::Nothing);
                }
                let c = &mut self.chains[ci];
                let g = c.groups.get_mut(group).expect("the index knows the rule");
                let i = g.iter().position(|r| r == rule).expect("the index knows the rule");
                let gone = g.remove(i);
                if g.is_empty() {
                    c.groups.remove(group);
                }
                Ok(Undo::InsertRule { chain: ci, group: *group, at: i, rule: gone })
            }
        }
    }

    /// The table as `nft -s list table FAMILY NAME` prints it.
    pub fn listing(&self) -> String {
        let mut blocks: Vec<String> = Vec::new();
        for m in &self.maps {
            let mut b = format!("\tmap {} {{\n\t\ttype {}\n", m.name, m.kind);
            let mut elements: Vec<&(String, String)> = m.elements.iter().collect();
            elements.sort_by(|a, b| ifname_order(&a.0, &b.0));
            if !elements.is_empty() {
                let items: Vec<String> = elements.iter().map(|(k, v)| format!("\"{k}\" : {v}")).collect();
                let _ = writeln!(b, "\t\telements = {{ {} }}", items.join(",\n\t\t\t     "));
            }
            b.push_str("\t}\n");
            blocks.push(b);
        }
        for c in &self.chains {
            let mut b = format!("\tchain {} {{\n", c.name);
            if let Some(h) = &c.base {
                let _ = writeln!(
                    b,
                    "\t\ttype {} hook {} priority {}; policy {};",
                    h.kind,
                    h.hook,
                    priority_name(h.priority),
                    h.policy
                );
            }
            for r in c.rules() {
                let _ = writeln!(b, "\t\t{r}");
            }
            b.push_str("\t}\n");
            blocks.push(b);
        }
        format!("table {} {} {{\n{}}}\n", self.family.name(), self.name, blocks.join("\n"))
    }

    /// `nft -f` input that makes the table anew, whole and atomically:
    /// what was there goes (declared first, so deleting it cannot fail),
    /// then maps and chains in the model's order (the kernel keeps that
    /// order), then the rules, then the map elements (a verdict names a
    /// chain that must exist).
    pub fn script(&self) -> String {
        let (f, t) = (self.family.name(), &self.name);
        let mut s = format!("table {f} {t} {{}}\ndelete table {f} {t}\ntable {f} {t} {{\n");
        for m in &self.maps {
            let _ = writeln!(s, "\tmap {} {{ type {}; }}", m.name, m.kind);
        }
        for c in &self.chains {
            match &c.base {
                Some(h) => {
                    let _ = writeln!(
                        s,
                        "\tchain {} {{ type {} hook {} priority {}; policy {}; }}",
                        c.name, h.kind, h.hook, h.priority, h.policy
                    );
                }
                None => {
                    let _ = writeln!(s, "\tchain {} {{ }}", c.name);
                }
            }
        }
        s.push_str("}\n");
        for c in &self.chains {
            for r in c.rules() {
                let _ = writeln!(s, "add rule {f} {t} {} {r}", c.name);
            }
        }
        for m in self.maps.iter().filter(|m| !m.elements.is_empty()) {
            let items: Vec<String> = m.elements.iter().map(|(k, v)| format!("\"{k}\" : {v}")).collect();
            let _ = writeln!(s, "add element {f} {t} {} {{ {} }}", m.name, items.join(", "));
        }
        s
    }
}

/// The order `nft list` prints `ifname` keys in: as the little-endian
/// numbers of their 16 zero-padded bytes (nft sorts a set's elements by
/// value), so a longer name comes later, and names of one length compare
/// from their last character.
fn ifname_order(a: &str, b: &str) -> std::cmp::Ordering {
    let pad = |s: &str| {
        let mut k = [0u8; 16];
        for (i, c) in s.bytes().take(16).enumerate() {
            k[i] = c;
        }
        k.reverse();
        k
    };
    pad(a).cmp(&pad(b)).then_with(|| a.cmp(b))
}

/// nft's names for the standard priorities (ip and ip6 families).
fn priority_name(p: i32) -> String {
    match p {
        -300 => "raw".into(),
        -150 => "mangle".into(),
        -100 => "dstnat".into(),
        0 => "filter".into(),
        50 => "security".into(),
        100 => "srcnat".into(),
        other => other.to_string(),
    }
}

/// One change to a table (moby's `nftables.Obj`s, created or deleted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cmd {
    Chain { name: String, base: Option<Hook> },
    DelChain(String),
    Map { name: String, kind: String },
    DelMap(String),
    Element { map: String, key: String, value: String },
    DelElement { map: String, key: String },
    Rule { chain: String, group: u32, rule: String, ignore_exist: bool },
    DelRule { chain: String, group: u32, rule: String, ignore_exist: bool },
}

impl Cmd {
    /// The command that undoes this one (moby's `Modifier.Reverse`, per
    /// command; what a deletion deleted is not kept, as moby does not keep it).
    pub fn reverse(&self) -> Cmd {
        match self.clone() {
            Cmd::Chain { name, .. } => Cmd::DelChain(name),
            Cmd::DelChain(name) => Cmd::Chain { name, base: None },
            Cmd::Map { name, .. } => Cmd::DelMap(name),
            Cmd::DelMap(name) => Cmd::Map { name, kind: String::new() },
            Cmd::Element { map, key, .. } => Cmd::DelElement { map, key },
            Cmd::DelElement { map, key } => Cmd::Element { map, key, value: String::new() },
            Cmd::Rule { chain, group, rule, ignore_exist } => Cmd::DelRule { chain, group, rule, ignore_exist },
            Cmd::DelRule { chain, group, rule, ignore_exist } => Cmd::Rule { chain, group, rule, ignore_exist },
        }
    }
}

/// Every table of a namespace that bridgelab models.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NftRuleset {
    pub tables: Vec<Table>,
}

impl NftRuleset {
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty()
    }

    pub fn table(&self, family: Family, name: &str) -> Option<&Table> {
        self.tables.iter().find(|t| t.family == family && t.name == name)
    }

    pub fn table_mut(&mut self, family: Family, name: &str) -> Option<&mut Table> {
        self.tables.iter_mut().find(|t| t.family == family && t.name == name)
    }

    /// Every table as `nft -s list table` prints it, in the model's order.
    pub fn listing(&self) -> String {
        self.tables.iter().map(Table::listing).collect()
    }

    /// One `nft -f` input that replaces every table.
    pub fn script(&self) -> String {
        self.tables.iter().map(Table::script).collect()
    }

    /// The tables called `name` in `nft -j list ruleset` output, in its
    /// order (the kernel's), with rules printed as `nft list` prints them.
    pub fn from_json(json: &str, name: &str) -> Result<NftRuleset, String> {
        let v: Value = serde_json::from_str(json).map_err(|e| format!("nft -j: not JSON: {e}"))?;
        let items = v["nftables"].as_array().ok_or("nft -j: no \"nftables\" array")?;
        let mut out = NftRuleset::default();
        let family = |o: &Value| match o["family"].as_str() {
            Some("ip") => Some(Family::Ip),
            Some("ip6") => Some(Family::Ip6),
            _ => None,
        };
        for item in items {
            let Some((kind, o)) = item.as_object().and_then(|m| m.iter().next()) else { continue };
            match kind.as_str() {
                "table" if o["name"] == name => {
                    if let Some(f) = family(o) {
                        out.tables.push(Table::new(f, name));
                    }
                }
                "map" | "chain" | "rule" if o.get("table").and_then(Value::as_str) == Some(name) => {
                    let Some(t) = family(o).and_then(|f| out.table_mut(f, name)) else { continue };
                    match kind.as_str() {
                        "map" => {
                            let mut elements = Vec::new();
                            for e in o["elem"].as_array().into_iter().flatten() {
                                let key = e[0].as_str().map(str::to_string).unwrap_or_else(|| e[0].to_string());
                                elements.push((key, verdict(&e[1])));
                            }
                            let kind = format!("{} : {}", text(&o["type"]), text(&o["map"]));
                            t.maps.push(Map { name: text(&o["name"]), kind, elements });
                        }
                        "chain" => {
                            let base = o.get("hook").map(|h| Hook {
                                kind: text(&o["type"]),
                                hook: text(h),
                                priority: o["prio"].as_i64().unwrap_or(0) as i32,
                                policy: text(&o["policy"]),
                            });
                            t.chains.push(Chain { name: text(&o["name"]), base, groups: BTreeMap::new() });
                        }
                        _ => {
                            let chain = text(&o["chain"]);
                            let mut parts: Vec<String> = o["expr"].as_array().into_iter().flatten().map(expr).collect();
                            if let Some(c) = o.get("comment").and_then(Value::as_str) {
                                parts.push(format!("comment \"{c}\""));
                            }
                            let Some(c) = t.chain_mut(&chain) else { continue };
                            c.groups.entry(0).or_default().push(parts.join(" "));
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(out)
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A verdict (`{"jump": {"target": "c"}}`, `{"accept": null}`).
fn verdict(v: &Value) -> String {
    let Some((k, body)) = v.as_object().and_then(|m| m.iter().next()) else { return text(v) };
    match body.get("target") {
        Some(t) => format!("{k} {}", text(t)),
        None => k.clone(),
    }
}

/// A value on the right of a match.
fn value(v: &Value, quote: bool) -> String {
    match v {
        Value::String(s) if quote => format!("\"{s}\""),
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(|i| value(i, quote)).collect::<Vec<_>>().join(","),
        Value::Object(m) => match m.iter().next() {
            Some((k, p)) if k == "prefix" => format!("{}/{}", text(&p["addr"]), text(&p["len"])),
            Some((k, s)) if k == "set" => {
                let items: Vec<String> = s.as_array().into_iter().flatten().map(|i| value(i, quote)).collect();
                format!("{{ {} }}", items.join(", "))
            }
            _ => v.to_string(),
        },
        other => other.to_string(),
    }
}

/// The left side of a match, and whether its values print quoted.
fn lhs(v: &Value) -> (String, bool) {
    let Some((k, o)) = v.as_object().and_then(|m| m.iter().next()) else { return (v.to_string(), false) };
    match k.as_str() {
        "meta" => {
            let key = text(&o["key"]);
            let quoted = key.ends_with("ifname");
            (key, quoted)
        }
        "payload" => (format!("{} {}", text(&o["protocol"]), text(&o["field"])), false),
        "ct" => (format!("ct {}", text(&o["key"])), false),
        "fib" => {
            let flags: Vec<String> = o["flags"].as_array().into_iter().flatten().map(text).collect();
            (format!("fib {} {}", flags.join(" . "), text(&o["result"])), false)
        }
        _ => (v.to_string(), false),
    }
}

/// One statement of a rule as `nft list` prints it; an expression bridgelab
/// does not know prints as its JSON (so it cannot pass for a known one).
fn expr(e: &Value) -> String {
    let Some((k, o)) = e.as_object().and_then(|m| m.iter().next()) else { return e.to_string() };
    match k.as_str() {
        "match" => {
            let (left, quoted) = lhs(&o["left"]);
            let right = value(&o["right"], quoted);
            match o["op"].as_str() {
                Some("==") | Some("in") => format!("{left} {right}"),
                Some(op) => format!("{left} {op} {right}"),
                None => e.to_string(),
            }
        }
        "counter" => "counter".into(),
        "accept" | "drop" | "return" | "masquerade" => k.clone(),
        "jump" | "goto" => format!("{k} {}", text(&o["target"])),
        "vmap" => format!("{} vmap {}", lhs(&o["key"]).0, text(&o["data"])),
        "dnat" | "snat" => {
            let addr = text(&o["addr"]);
            match o.get("port") {
                Some(p) => format!("{k} to {addr}:{}", text(p)),
                None => format!("{k} to {addr}"),
            }
        }
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(chain: &str, group: u32, rule: &str) -> Cmd {
        Cmd::Rule { chain: chain.into(), group, rule: rule.into(), ignore_exist: false }
    }

    #[test]
    fn rule_groups_order_rules_and_a_batch_is_all_or_nothing() {
        let mut t = Table::new(Family::Ip, "t");
        t.apply(&[
            Cmd::Chain { name: "z".into(), base: None },
            Cmd::Chain { name: "a".into(), base: None },
            rule("a", 3, "counter accept comment \"ICC\""),
            rule("a", 0, "ct state established,related counter accept"),
            rule("a", 5, "counter drop"),
            rule("a", 4, "ip daddr 192.0.2.2 tcp dport 80 counter accept"),
        ])
        .unwrap();
        let a = t.chain("a").unwrap().rules().cloned().collect::<Vec<_>>();
        assert_eq!(a[0], "ct state established,related counter accept");
        assert_eq!(a[3], "counter drop");
        // Chains of one batch are made in name order.
        assert_eq!(t.chains.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["a", "z"]);
        let before = t.clone();
        let e = t.apply(&[rule("z", 0, "counter"), rule("a", 5, "counter drop")]).unwrap_err();
        assert!(e.contains("rule exists"), "{e}");
        assert_eq!(t, before);
    }

    #[test]
    fn ifnames_list_as_nft_sorts_them() {
        // Seen from nft 1.0.6: "a", "ab", "zz", "docker0", "bridge1", "bridgeICC", "br-abcdef123456".
        let mut names = vec!["br-abcdef123456", "bridge1", "zz", "docker0", "a", "bridgeICC", "ab"];
        names.sort_by(|a, b| ifname_order(a, b));
        assert_eq!(names, ["a", "ab", "zz", "docker0", "bridge1", "bridgeICC", "br-abcdef123456"]);
    }

    #[test]
    fn json_reads_back_as_the_listing() {
        let json = r#"{"nftables": [{"metainfo": {"version": "1.0.6"}},
 {"table": {"family": "ip", "name": "docker-bridges", "handle": 1}},
 {"table": {"family": "ip", "name": "filter", "handle": 2}},
 {"map": {"family": "ip", "name": "m", "table": "docker-bridges", "type": "ifname", "handle": 4, "map": "verdict",
   "elem": [["docker0", {"jump": {"target": "in__docker0"}}]]}},
 {"chain": {"family": "ip", "table": "docker-bridges", "name": "nat-OUTPUT", "handle": 1, "type": "nat", "hook": "output", "prio": -100, "policy": "accept"}},
 {"chain": {"family": "ip", "table": "docker-bridges", "name": "in__docker0", "handle": 2}},
 {"rule": {"family": "ip", "table": "docker-bridges", "chain": "nat-OUTPUT", "handle": 5, "expr": [
   {"match": {"op": "!=", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": {"prefix": {"addr": "127.0.0.0", "len": 8}}}},
   {"match": {"op": "==", "left": {"fib": {"result": "type", "flags": ["daddr"]}}, "right": "local"}},
   {"counter": {"packets": 0, "bytes": 0}}, {"jump": {"target": "in__docker0"}}]}},
 {"rule": {"family": "ip", "table": "docker-bridges", "chain": "in__docker0", "handle": 6, "comment": "ICC", "expr": [
   {"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "docker0"}},
   {"counter": {"packets": 3, "bytes": 9}}, {"accept": null}]}},
 {"rule": {"family": "ip", "table": "docker-bridges", "chain": "in__docker0", "handle": 7, "expr": [
   {"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["established", "related"]}},
   {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 8080}},
   {"dnat": {"addr": "192.0.2.2", "port": 80}}, {"mangle": {"key": 1}}]}}]}"#;
        let r = NftRuleset::from_json(json, "docker-bridges").unwrap();
        assert_eq!(r.tables.len(), 1, "only docker-bridges");
        assert_eq!(
            r.listing(),
            "table ip docker-bridges {\n\tmap m {\n\t\ttype ifname : verdict\n\t\telements = { \"docker0\" : jump in__docker0 }\n\t}\n\n\
             \tchain nat-OUTPUT {\n\t\ttype nat hook output priority dstnat; policy accept;\n\
             \t\tip daddr != 127.0.0.0/8 fib daddr type local counter jump in__docker0\n\t}\n\n\
             \tchain in__docker0 {\n\t\tiifname \"docker0\" counter accept comment \"ICC\"\n\
             \t\tct state established,related tcp dport 8080 dnat to 192.0.2.2:80 {\"mangle\":{\"key\":1}}\n\t}\n}\n"
        );
    }
}
