//! The `iptabler` against moby's own generated docs: `docs/v28/*.md`
//! (moby v28.5.2) and `docs/v29/*.md` (docker-v29.7.2, iptables backend),
//! copied from `integration/network/bridge/iptablesdoc/generated/`, which
//! moby's CI checks against a real dockerd (`TestBridgeIptablesDoc`). Each
//! test plans the doc's configuration as a scenario and compares every
//! table the doc shows, as `iptables -S` prints it (policies, chains, rules
//! in order), with the plan's rules. The swarm doc has no scenario.

use crate::plan::firewall::{Ruleset, Table};
use crate::scenario::Scenario;

/// The scenario of each doc: the test harness's daemon (forwarding already
/// on, so FORWARD stays ACCEPT) with docker0, and the doc's networks
/// (bridge1: 192.0.2.0/24, c1 on it with `-p 8080:80`).
fn toml_of(firewall: &str, doc: &str) -> String {
    let bridge1 = |extra: &str| {
        format!(
            "[[network]]\nname = \"bridge1\"\nbridge = \"bridge1\"\nsubnet = \"192.0.2.0/24\"\ngateway = \"192.0.2.1\"\n{extra}\
             [[container]]\nname = \"c1\"\nnetwork = \"bridge1\"\npublish = [\"8080:80\"]\n"
        )
    };
    let mut daemon = format!("[daemon]\nfirewall = \"{firewall}\"\n");
    let body = match doc {
        "new-daemon" => String::new(),
        "usernet-portmap" => bridge1(""),
        "usernet-portmap-lo" => bridge1("").replace("\"8080:80\"", "\"127.0.0.1:8080:80\""),
        "usernet-portmap-noproxy" => {
            daemon.push_str("userland_proxy = false\n");
            bridge1("")
        }
        "usernet-portmap-noicc" => bridge1("icc = false\n"),
        "usernet-portmap-routed" => bridge1("gateway_mode = \"routed\"\n"),
        "usernet-portmap-natunprot" => bridge1("gateway_mode = \"nat-unprotected\"\n"),
        "usernet-internal" => "[[network]]\nname = \"bridgeICC\"\nbridge = \"bridgeICC\"\nsubnet = \"192.0.2.0/24\"\ninternal = true\n\
             [[network]]\nname = \"bridgeNoICC\"\nbridge = \"bridgeNoICC\"\nsubnet = \"198.51.100.0/24\"\ninternal = true\nicc = false\n\
             [[container]]\nname = \"c1\"\nnetwork = \"bridgeICC\"\n\
             [[container]]\nname = \"c2\"\nnetwork = \"bridgeNoICC\"\n"
            .to_string(),
        other => panic!("no scenario for {other}"),
    };
    format!("{daemon}[host]\nforwarding = true\n{body}")
}

/// The doc's tables: `(table, iptables -S lines)`, in the doc's order.
fn doc_tables(md: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut lines = md.lines();
    while let Some(l) = lines.next() {
        let Some(t) = l.strip_prefix("### table ") else { continue };
        if t.contains(',') {
            continue; // "chain DOCKER only": the whole table is there too
        }
        assert_eq!(lines.next(), Some(""));
        assert_eq!(lines.next(), Some("```"));
        let body: Vec<&str> = lines.by_ref().take_while(|l| *l != "```").collect();
        out.push((t.to_string(), body.iter().map(|l| format!("{l}\n")).collect()));
    }
    out
}

/// One IPv4 table of the plan as `iptables -S -t TABLE` prints it.
fn dash_s(rules: &Ruleset, table: &str) -> String {
    let t = match table {
        "filter" => Table::Filter,
        "nat" => Table::Nat,
        "raw" => Table::Raw,
        other => panic!("table {other}"),
    };
    let Some(tr) = rules.tables.iter().find(|x| x.table == t) else {
        let builtin = t.builtin_chains();
        return builtin.iter().map(|c| format!("-P {c} ACCEPT\n")).collect();
    };
    let mut out = String::new();
    for line in rules.table_text(tr).lines() {
        if let Some(chain) = line.strip_prefix(':') {
            let (name, policy) = chain.split_once(' ').expect("chain line");
            let policy = policy.split(' ').next().unwrap_or("-");
            if policy == "-" {
                out.push_str(&format!("-N {name}\n"));
            } else {
                out.push_str(&format!("-P {name} {policy}\n"));
            }
        } else if line.starts_with("-A ") {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

fn check(firewall: &str, dir: &str, doc: &str, md: &str) {
    let text = toml_of(firewall, doc);
    let s = Scenario::parse(format!("{doc}.toml").into(), text.clone()).unwrap_or_else(|e| panic!("{e}"));
    let plan = crate::plan::plan(&s).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let tables = doc_tables(md);
    assert!(!tables.is_empty(), "{dir}/{doc}: no tables");
    for (table, want) in tables {
        let have = dash_s(&plan.iptables, &table);
        // -P/-N lines first (iptables -S prints them before the rules), then
        // the rules chain by chain; both print chains in the same order.
        assert_eq!(have, want, "{dir}/{doc}.md, table {table}\nscenario:\n{text}");
    }
}

macro_rules! docs {
    ($($name:ident: $firewall:literal, $dir:literal, $doc:literal;)*) => {$(
        #[test]
        fn $name() {
            check($firewall, $dir, $doc, include_str!(concat!("docs/", $dir, "/", $doc, ".md")));
        }
    )*};
}

docs! {
    v28_new_daemon: "docker28", "v28", "new-daemon";
    v28_usernet_portmap: "docker28", "v28", "usernet-portmap";
    v28_usernet_portmap_lo: "docker28", "v28", "usernet-portmap-lo";
    v28_usernet_portmap_noproxy: "docker28", "v28", "usernet-portmap-noproxy";
    v28_usernet_portmap_noicc: "docker28", "v28", "usernet-portmap-noicc";
    v28_usernet_portmap_routed: "docker28", "v28", "usernet-portmap-routed";
    v28_usernet_portmap_natunprot: "docker28", "v28", "usernet-portmap-natunprot";
    v28_usernet_internal: "docker28", "v28", "usernet-internal";
    v29_new_daemon: "docker29", "v29", "new-daemon";
    v29_usernet_portmap: "docker29", "v29", "usernet-portmap";
    v29_usernet_portmap_lo: "docker29", "v29", "usernet-portmap-lo";
    v29_usernet_portmap_noproxy: "docker29", "v29", "usernet-portmap-noproxy";
    v29_usernet_portmap_noicc: "docker29", "v29", "usernet-portmap-noicc";
    v29_usernet_portmap_routed: "docker29", "v29", "usernet-portmap-routed";
    v29_usernet_portmap_natunprot: "docker29", "v29", "usernet-portmap-natunprot";
    v29_usernet_internal: "docker29", "v29", "usernet-internal";
}
