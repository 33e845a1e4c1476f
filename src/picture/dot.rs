//! The topology as Graphviz dot: the host (its bridges and uplink), the
//! networks, the containers with their addresses, published ports, the
//! external node and `[[machine]]`s, and the expectations as coloured
//! arrows.
//!
//! The wires (bridge ports, the uplink) lay the picture out from left to
//! right; published ports and expectations are drawn over it with
//! `constraint=false`, so adding an expectation never moves a node, and
//! an expectation's words are an `xlabel`, placed after the layout where
//! it overlaps nothing (two arrows between the same nodes would otherwise
//! print over each other). The
//! text depends only on the plan and the arrows, in their order: the same
//! scenario gives the same bytes.

use std::fmt::Write as _;

use crate::plan::{ContainerPlan, Plan};
use crate::probe::ExpectOutcome;
use crate::scenario::{Expect, NetworkMode, Scenario, UPLINK_EXTERNAL, UPLINK_HOST};

/// Colours of the three verdicts, as the matrix table uses them too.
pub(crate) const REACHABLE: &str = "#2e8b57";
pub(crate) const REFUSED: &str = "#e67e00";
pub(crate) const BLOCKED: &str = "#d62728";
/// An expectation with no result to check, or a probe that had no verdict.
const UNDECIDED: &str = "#7f7f7f";
const PORTS: &str = "#1f77b4";
const WIRE: &str = "#555555";

/// One expectation, drawn as an arrow from its sender to its target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arrow {
    pub from: String,
    /// As written: a node, `NODE@NETWORK`, or an address.
    pub to: String,
    pub probe: String,
    /// `via`, as written.
    pub via: Option<String>,
    /// `name`, or `from -> to probe`: the arrow's tooltip.
    pub name: String,
    /// The result wanted; `None` where the file names none for this run
    /// (shown, not checked).
    pub want: Option<String>,
    /// What a real run saw; `None` for a picture of the plan.
    pub seen: Option<Seen>,
}

/// What a run saw for one expectation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// `None`: the probe could not be carried out.
    pub verdict: Option<String>,
    pub passed: bool,
    /// For a failed one: why, in a few words (`wanted reachable, saw
    /// blocked`; `source: wanted host, saw 172.17.0.2`).
    pub why: Option<String>,
}

/// The arrows of a list of expectations, as the file wants them.
pub fn arrows_expected(expects: &[Expect]) -> Vec<Arrow> {
    expects
        .iter()
        .map(|e| {
            let from = e.from.as_ref().map(|f| f.get_ref().clone()).unwrap_or_default();
            let probe = e.probe.as_ref().map(|p| p.get_ref().to_string()).unwrap_or_default();
            let to = e.to.get_ref().clone();
            Arrow {
                name: e.name.clone().unwrap_or_else(|| format!("{from} -> {to} {probe}")),
                from,
                to,
                probe,
                via: e.via.as_ref().map(|v| v.get_ref().clone()),
                want: e.wanted().map(|v| v.to_string()),
                seen: None,
            }
        })
        .collect()
}

/// The arrows of a run's verdicts checked at one point: the top level
/// (`step` `None`) or after the step with that label (`step N: …`).
pub fn arrows_seen(outcomes: &[ExpectOutcome], step: Option<&str>) -> Vec<Arrow> {
    outcomes
        .iter()
        .filter(|o| o.step.as_deref() == step)
        .map(|o| Arrow {
            from: o.from.clone(),
            to: o.to.clone(),
            probe: o.probe.clone(),
            via: o.via.clone(),
            name: o.name.clone(),
            // An expectation with nothing to check says so in `expected`.
            want: ["reachable", "refused", "blocked"].contains(&o.expected.as_str()).then(|| o.expected.clone()),
            seen: Some(Seen { verdict: o.actual.clone(), passed: o.passed, why: (!o.passed).then(|| why(o)) }),
        })
        .collect()
}

/// Why an expectation failed: its verdict, or else (the verdict was right)
/// its `source`.
fn why(o: &ExpectOutcome) -> String {
    let saw = o.actual.as_deref().unwrap_or("no verdict");
    match (&o.source_expected, o.actual.as_deref() == Some(o.expected.as_str())) {
        (Some(src), true) => {
            format!("source: wanted {src}, saw {}", o.source_seen.map_or_else(|| "none".to_string(), |a| a.to_string()))
        }
        _ if o.expected == "unchecked" => format!("saw {saw}"),
        _ => format!("wanted {}, saw {saw}", o.expected),
    }
}

/// What the picture says besides the lab.
#[derive(Debug, Clone, Default)]
pub struct Title {
    /// The first line: the scenario's run name, say.
    pub heading: String,
    /// A line under it: which phase (`after step 1: stop web`), which run.
    pub detail: Option<String>,
    /// Show each container interface's MAC address.
    pub macs: bool,
}

/// The topology of `plan` (a plan of `scenario`, or of one of its steps)
/// with `arrows`, as a dot digraph.
pub fn topology(scenario: &Scenario, plan: &Plan, arrows: &[Arrow], title: &Title) -> String {
    let mut d = String::new();
    let mut heading = vec![format!("{} ({})", title.heading, plan.firewall)];
    heading.extend(title.detail.clone());
    if !arrows.is_empty() {
        heading.push(legend(arrows));
    }
    let _ = writeln!(d, "digraph {} {{", q(&plan.scenario));
    let _ = writeln!(
        d,
        "  graph [rankdir=LR, fontname=\"Helvetica\", fontsize=12, labelloc=t, forcelabels=true, nodesep=0.35, ranksep=0.7, label={}];",
        label(&heading)
    );
    d.push_str("  node [fontname=\"Helvetica\", fontsize=10, shape=box, style=rounded];\n");
    d.push_str("  edge [fontname=\"Helvetica\", fontsize=9];\n");

    // The host namespace and the bridges in it.
    d.push_str("  subgraph \"cluster_host\" {\n");
    let _ = writeln!(d, "    graph [label=\"host\", style=rounded, color={}];", q(WIRE));
    let _ = writeln!(
        d,
        "    \"host\" [label={}, style=\"rounded,filled\", fillcolor=\"#eeeeee\"];",
        label(&["host namespace".into(), format!("eth0 {}", fmt_addr(UPLINK_HOST))])
    );
    let mut bridges: Vec<String> = Vec::new();
    let docker = plan
        .bridge
        .iter()
        .map(|b| ("bridge", b, false))
        .chain(plan.networks.iter().map(|n| (n.name.as_str(), &n.bridge, n.internal)));
    for (network, b, internal) in docker {
        let mut lines = vec![b.name.clone(), format!("network {network}")];
        if b.unaddressed {
            lines.push(format!("subnet {} (no address)", b.pool));
        } else {
            lines.push(fmt_addr(b.address));
        }
        if internal {
            lines.push("internal".into());
        }
        let _ = writeln!(d, "    {} [label={}];", q(&format!("br:{}", b.name)), label(&lines));
        bridges.push(b.name.clone());
    }
    for hb in &scenario.spec.host.bridges {
        let name = hb.name.get_ref();
        if bridges.contains(name) {
            continue;
        }
        let mut lines = vec![name.clone(), "not Docker's".into()];
        lines.extend(hb.address.as_ref().map(|a| fmt_addr(*a.get_ref())));
        let _ = writeln!(d, "    {} [label={}, style=\"rounded,dashed\"];", q(&format!("br:{name}")), label(&lines));
        bridges.push(name.clone());
    }
    d.push_str("  }\n");

    // Outside the host: the uplink segment, the external node, machines
    // and containers.
    let _ = writeln!(
        d,
        "  \"uplink\" [label={}, shape=box, style=\"rounded,dashed\"];",
        label(&["uplink".into(), UPLINK_HOST.network().to_string()])
    );
    let mut ext = vec!["external".into(), fmt_addr(UPLINK_EXTERNAL)];
    ext.extend(listens(scenario.spec.external.listen.iter().map(|l| l.get_ref().to_string())));
    let _ = writeln!(d, "  \"external\" [label={}, style=\"rounded,filled\", fillcolor=\"#fff5e0\"];", label(&ext));
    for m in &plan.machines {
        let mut lines = vec![m.name.clone(), fmt_addr(m.address)];
        if let Some(sm) = scenario.spec.machines.iter().find(|sm| sm.name() == m.name) {
            lines.extend(listens(sm.listen.iter().map(|l| l.get_ref().to_string())));
        }
        let _ = writeln!(
            d,
            "  {} [label={}, style=\"rounded,filled\", fillcolor=\"#fff5e0\"];",
            q(&format!("m:{}", m.name)),
            label(&lines)
        );
    }
    for c in &plan.containers {
        let _ = writeln!(d, "  {} [{}];", q(&format!("c:{}", c.name)), container_attrs(scenario, c, title.macs));
    }
    // Targets that are no node: an address, a broadcast.
    let mut loose: Vec<String> = Vec::new();
    for a in arrows {
        for end in [&a.from, &a.to] {
            let id = node_id(plan, end);
            if id.starts_with("addr:") && !loose.contains(&id) {
                let _ = writeln!(d, "  {} [label={}, shape=plaintext];", q(&id), q(end));
                loose.push(id);
            }
        }
    }

    // Wires.
    let wire = |d: &mut String, a: &str, b: &str, text: Option<&str>| {
        let _ = write!(d, "  {} -> {} [dir=none, color={}", q(a), q(b), q(WIRE));
        if let Some(t) = text {
            let _ = write!(d, ", label={}", q(t));
        }
        d.push_str("];\n");
    };
    wire(&mut d, "external", "uplink", Some("eth0"));
    wire(&mut d, "uplink", "host", Some("eth0"));
    for b in &bridges {
        wire(&mut d, "host", &format!("br:{b}"), None);
    }
    for m in &plan.machines {
        let at = if m.attach == crate::scenario::UPLINK { "uplink".to_string() } else { format!("br:{}", m.attach) };
        wire(&mut d, &at, &format!("m:{}", m.name), Some("eth0"));
    }
    for c in &plan.containers {
        let id = format!("c:{}", c.name);
        for e in &c.endpoints {
            wire(&mut d, &format!("br:{}", e.bridge), &id, (c.endpoints.len() > 1).then_some(e.iface.as_str()));
        }
        match &c.mode {
            NetworkMode::Host => {
                let _ = writeln!(
                    d,
                    "  \"host\" -> {} [dir=none, style=dashed, color={}, label=\"shares host netns\"];",
                    q(&id),
                    q(WIRE)
                );
            }
            NetworkMode::Container(other) => {
                let _ = writeln!(
                    d,
                    "  {} -> {} [dir=none, style=dashed, color={}, label={}];",
                    q(&format!("c:{other}")),
                    q(&id),
                    q(WIRE),
                    q(&format!("shares {other}'s netns"))
                );
            }
            _ => {}
        }
    }

    // Published ports: one arrow per container, from the host.
    let mut by_container: Vec<(&str, Vec<String>)> = Vec::new();
    for p in plan.port_mappings.iter().chain(&plan.bindings) {
        let host = match p.host_ip {
            std::net::IpAddr::V6(a) => format!("[{a}]"),
            a => a.to_string(),
        };
        let line = format!("{host}:{} → {}/{}", p.host_port, p.container_port, p.proto);
        match by_container.iter_mut().find(|(c, _)| *c == &*p.container) {
            Some((_, lines)) if !lines.contains(&line) => lines.push(line),
            Some(_) => {}
            None => by_container.push((&p.container, vec![line])),
        }
    }
    for (c, mut lines) in by_container {
        // A published range is thousands of lines: the first few say enough.
        const SHOWN: usize = 4;
        if lines.len() > SHOWN {
            let more = lines.len() - SHOWN;
            lines.truncate(SHOWN);
            lines.push(format!("… {more} more"));
        }
        let _ = writeln!(
            d,
            "  \"host\" -> {} [constraint=false, style=dotted, arrowhead=empty, color={c}, fontcolor={c}, label={}];",
            q(&format!("c:{c}")),
            label(&lines),
            c = q(PORTS)
        );
    }

    // Expectations.
    for a in arrows {
        let _ = writeln!(d, "  {} -> {} [{}];", q(&node_id(plan, &a.from)), q(&node_id(plan, &a.to)), arrow_attrs(a));
    }
    d.push_str("}\n");
    d
}

/// A node's id in the graph: `host`, `external`, `c:NAME`, `m:NAME`, or
/// `addr:TEXT` for a target that is no node (an address).
fn node_id(plan: &Plan, written: &str) -> String {
    let base = written.split('@').next().unwrap_or(written);
    match base {
        "host" | "external" => base.to_string(),
        m if plan.machine(m).is_some() => format!("m:{m}"),
        c if plan.container(c).is_some() => format!("c:{c}"),
        _ => format!("addr:{written}"),
    }
}

fn container_attrs(scenario: &Scenario, c: &ContainerPlan, macs: bool) -> String {
    let mut lines = vec![c.name.clone()];
    match &c.mode {
        NetworkMode::Host => lines.push("network host".into()),
        NetworkMode::None => lines.push("network none".into()),
        _ => {}
    }
    for e in &c.endpoints {
        let mut line = format!("{} {}", e.iface, fmt_addr(e.address));
        if c.endpoints.len() > 1 {
            let _ = write!(line, " ({})", e.network);
        }
        lines.push(line);
        if macs {
            lines.push(format!("mac {}", e.mac));
        }
    }
    if let Some(sc) = scenario.all_containers().find(|sc| sc.name() == c.name) {
        lines.extend(listens(sc.listen.iter().map(|l| l.get_ref().to_string())));
    }
    if c.running {
        format!("label={}, style=\"rounded,filled\", fillcolor=\"#e8f1fb\"", label(&lines))
    } else {
        lines.push("not running".into());
        format!("label={}, style=\"rounded,dashed\", fontcolor={}", label(&lines), q(UNDECIDED))
    }
}

fn listens(specs: impl Iterator<Item = String>) -> Option<String> {
    let all: Vec<String> = specs.collect();
    (!all.is_empty()).then(|| format!("listens {}", all.join(", ")))
}

fn verdict_colour(v: Option<&str>) -> &'static str {
    match v {
        Some("reachable") => REACHABLE,
        Some("refused") => REFUSED,
        Some("blocked") => BLOCKED,
        _ => UNDECIDED,
    }
}

/// Colour by the verdict (what was seen, in a run; what is wanted, in a
/// plan), dashed for blocked, bold with ✗ where a run contradicts the file.
fn arrow_attrs(a: &Arrow) -> String {
    let shown = match &a.seen {
        Some(s) => s.verdict.as_deref(),
        None => a.want.as_deref(),
    };
    let failed = a.seen.as_ref().is_some_and(|s| !s.passed);
    let mut lines = vec![a.probe.clone()];
    if a.to.contains('@') {
        lines[0] = format!("{} to {}", a.probe, a.to);
    }
    if let Some(v) = &a.via {
        lines.push(format!("via {v}"));
    }
    lines.push(match &a.seen {
        None => a.want.clone().unwrap_or_else(|| "not checked".into()),
        Some(s) => {
            let saw = s.verdict.as_deref().unwrap_or("no verdict");
            if !s.passed {
                let why = s.why.clone();
                format!(
                    "✗ {}",
                    why.unwrap_or_else(|| format!("wanted {}, saw {saw}", a.want.as_deref().unwrap_or("a verdict")))
                )
            } else if a.want.is_none() {
                format!("{saw} (not checked)")
            } else {
                saw.to_string()
            }
        }
    });
    let mut style = Vec::new();
    if shown == Some("blocked") {
        style.push("dashed");
    }
    if failed {
        style.push("bold");
    }
    let colour = verdict_colour(shown);
    let mut attrs = format!(
        "constraint=false, color={c}, fontcolor={c}, xlabel={}, tooltip={}",
        label(&lines),
        q(&a.name),
        c = q(colour)
    );
    if !style.is_empty() {
        let _ = write!(attrs, ", style={}, penwidth={}", q(&style.join(",")), if failed { "2.5" } else { "1" });
    }
    attrs
}

/// The key, with only the kinds of arrow the picture has.
fn legend(arrows: &[Arrow]) -> String {
    let mut parts = Vec::new();
    let shown = |a: &Arrow| match &a.seen {
        Some(s) => s.verdict.clone(),
        None => a.want.clone(),
    };
    for (v, text) in
        [("reachable", "green: reachable"), ("refused", "orange: refused"), ("blocked", "red dashed: blocked")]
    {
        if arrows.iter().any(|a| shown(a).as_deref() == Some(v)) {
            parts.push(text.to_string());
        }
    }
    if arrows.iter().any(|a| shown(a).is_none()) {
        parts.push("grey: not checked, or no verdict".into());
    }
    if arrows.iter().any(|a| a.seen.as_ref().is_some_and(|s| !s.passed)) {
        parts.push("bold ✗: failed".into());
    }
    let seen = arrows.iter().any(|a| a.seen.is_some());
    format!("{}: {}", if seen { "arrows as seen" } else { "arrows as expected" }, parts.join(" · "))
}

/// `172.17.0.1/16`.
fn fmt_addr(a: crate::scenario::IfaceAddr) -> String {
    format!("{}/{}", a.ip(), a.prefix())
}

/// A dot quoted string: `"` and `\` escaped (so no `\N`-style escape of
/// Graphviz's sneaks in from a name), line breaks as `\n`.
fn q(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    push_escaped(&mut out, s);
    out.push('"');
    out
}

fn push_escaped(out: &mut String, s: &str) {
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c => out.push(c),
        }
    }
}

/// A multi-line label: each line escaped, joined by dot's `\n`.
fn label(lines: &[String]) -> String {
    let mut out = String::from("\"");
    for (i, l) in lines.iter().enumerate() {
        if i > 0 {
            out.push_str("\\n");
        }
        push_escaped(&mut out, l);
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_escapes_what_dot_would_read_as_syntax() {
        assert_eq!(q(r#"a "b" \N c"#), r#""a \"b\" \\N c""#);
        assert_eq!(q("two\nlines"), r#""two\nlines""#);
        assert_eq!(label(&["x\"".into(), "y".into()]), r#""x\"\ny""#);
    }

    fn outcome(expected: &str, actual: Option<&str>, source: Option<&str>, passed: bool) -> ExpectOutcome {
        ExpectOutcome {
            name: "n".into(),
            location: "f:1:1".into(),
            from: "web".into(),
            to: "db@back".into(),
            target: None,
            probe: "tcp:80".into(),
            via: Some("host".into()),
            flow: None,
            expected: expected.into(),
            actual: actual.map(Into::into),
            source_expected: source.map(Into::into),
            source_seen: Some("172.17.0.2".parse().unwrap()),
            received_by: vec![],
            passed,
            detail: String::new(),
            elapsed_ms: 0,
            step: None,
        }
    }

    /// A run's arrow is coloured by what was seen; a failure is bold and
    /// says why: the verdict, or the source when the verdict was right.
    #[test]
    fn seen_arrows_say_why_they_failed() {
        let outcomes = [
            outcome("reachable", Some("blocked"), None, false),
            outcome("reachable", Some("reachable"), Some("host"), false),
            outcome("refused", Some("refused"), None, true),
            outcome("unchecked", None, None, false),
        ];
        let attrs: Vec<String> = arrows_seen(&outcomes, None).iter().map(arrow_attrs).collect();
        assert!(attrs[0].contains("✗ wanted reachable, saw blocked") && attrs[0].contains(BLOCKED), "{}", attrs[0]);
        assert!(attrs[0].contains("style=\"dashed,bold\", penwidth=2.5"), "{}", attrs[0]);
        assert!(attrs[0].contains("tcp:80 to db@back\\nvia host"), "{}", attrs[0]);
        assert!(attrs[1].contains("✗ source: wanted host, saw 172.17.0.2") && attrs[1].contains(REACHABLE));
        assert!(attrs[2].contains(REFUSED) && !attrs[2].contains('✗') && !attrs[2].contains("style="), "{}", attrs[2]);
        assert!(attrs[3].contains("✗ saw no verdict") && attrs[3].contains(UNDECIDED), "{}", attrs[3]);
        // Steps' verdicts are their own pictures.
        assert!(arrows_seen(&outcomes, Some("step 1: stop web")).is_empty());
    }
}
