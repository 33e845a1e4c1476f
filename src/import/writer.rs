//! A [`HostState`] as a scenario file: `[daemon]`, `[[network]]`s and
//! `[[container]]`s in the order Docker made them, with a `#` comment for
//! everything that had to be approximated. The text is checked and planned
//! before it is handed out; where the plan gives a container another
//! address than the host has, that is said too.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use super::inspect::{time_key, Container, HostState, Network, PortBinding};
use super::ImportError;
use crate::plan::Plan;
use crate::scenario::Scenario;

/// How the file is written.
#[derive(Debug, Clone)]
pub struct Options {
    /// The scenario's `name`.
    pub name: String,
    /// The path the scenario is said to come from in diagnostics.
    pub path: PathBuf,
}

impl Default for Options {
    fn default() -> Options {
        Options { name: "imported".into(), path: PathBuf::from("imported.toml") }
    }
}

/// A written scenario, checked and planned.
#[derive(Debug, Clone)]
pub struct Imported {
    pub text: String,
    pub scenario: Scenario,
    pub plan: Plan,
    /// The approximations, as the file's header comments say them.
    pub notes: Vec<String>,
    /// Docker's bridge name of each imported network → bridgelab's.
    pub bridges: BTreeMap<String, String>,
}

fn q(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn list(items: &[String]) -> String {
    format!("[{}]", items.iter().map(|s| q(s)).collect::<Vec<_>>().join(", "))
}

/// The layout nearest to a Docker version, and a note when it is not the
/// version the layout imitates (see [`crate::scenario::Firewall`]: docker20
/// is libnetwork's bridge driver of 17.06–26).
pub fn layout(version: &str) -> Result<(&'static str, Option<String>), ImportError> {
    let mut parts = version.split(|c: char| !c.is_ascii_digit());
    let major: Option<u32> = parts.next().and_then(|m| m.parse().ok());
    let minor: Option<u32> = parts.next().and_then(|m| m.parse().ok());
    let near = |layout: &'static str, exact: bool, imitates: &str| {
        let note = (!exact).then(|| {
            format!("Docker {version} is between layouts: written as {layout} (Docker {imitates}), the nearest")
        });
        (layout, note)
    };
    Ok(match (major, minor) {
        (Some(1), m) => near("docker1", m == Some(6), "1.6.2"),
        (Some(17..=26), m) => near("docker20", major == Some(20) && m == Some(10), "20.10.24"),
        (Some(27 | 28), _) => near("docker28", major == Some(28), "28.5.2"),
        (Some(29..), _) => near("docker29", major == Some(29), "29.7.2"),
        _ => {
            return Err(ImportError::BadInput {
                what: "docker info".into(),
                why: format!("ServerVersion {version:?} is no Docker bridgelab knows (1.x, 17 and later)"),
            })
        }
    })
}

/// daemon.json names of the flags bridgelab models → `[daemon]` keys.
const BOOL_FLAGS: [(&str, &str); 7] = [
    ("iptables", "iptables"),
    ("ip-forward", "ip_forward"),
    ("ip-masq", "ip_masq"),
    ("icc", "icc"),
    ("userland-proxy", "userland_proxy"),
    ("allow-direct-routing", "allow_direct_routing"),
    ("ip-forward-no-drop", "ip_forward_no_drop"),
];

/// Flags that change the rules but are not modelled.
const UNMODELLED_FLAGS: [&str; 5] = ["ipv6", "ip6tables", "fixed-cidr-v6", "default-gateway", "bridge-accept-fwmark"];

struct Writer<'a> {
    h: &'a HostState,
    firewall: &'static str,
    notes: Vec<String>,
    daemon: Vec<String>,
    host: Vec<String>,
    body: String,
    /// Networks written, by Docker's name.
    networks: BTreeSet<String>,
}

/// The scenario of `h`, checked and planned.
pub fn write(h: &HostState, o: &Options) -> Result<Imported, ImportError> {
    let (firewall, note) = layout(&h.info.server_version)?;
    let mut w = Writer {
        h,
        firewall,
        notes: note.into_iter().chain(h.inferred.iter().cloned()).collect(),
        daemon: vec![format!("firewall = {}", q(firewall))],
        host: vec![],
        body: String::new(),
        networks: BTreeSet::new(),
    };
    w.daemon_flags();
    if h.forwarding == Some(true) {
        w.host.push("[host]\nforwarding = true".into());
    }
    w.default_bridge();
    w.user_networks();
    let written = w.containers();
    let body = std::mem::take(&mut w.body);
    let mut text = w.assemble(o, &body);
    let parse = |text: &str| Scenario::parse(o.path.clone(), text.to_string());
    let invalid = |d: crate::scenario::Diagnostics, text: &str| ImportError::NotValid {
        diagnostics: d.to_string(),
        text: text.to_string(),
    };
    let scenario = parse(&text).map_err(|d| invalid(d, &text))?;
    let plan = crate::Lab::from_scenario(scenario)
        .map_err(|e| ImportError::NotValid { diagnostics: e.to_string(), text: text.clone() })?;
    // Addresses Docker handed out that the plan does not give again (a
    // container removed before them left a hole, a restart reordered).
    let before = w.notes.len();
    for c in &written {
        let Some(cp) = plan.plan().container(c.short_name()) else { continue };
        for (net, ep) in c.network_settings.networks.iter().flatten() {
            let Ok(real) = ep.ip_address.parse::<Ipv4Addr>() else { continue };
            let planned = cp.endpoints.iter().find(|e| e.network == *net).map(|e| e.address.0.ip());
            if planned.is_some_and(|p| p != real) {
                w.notes.push(format!(
                    "{} has {real} on {net} on the host, the plan gives it {}: audit will show its rules as drift",
                    c.short_name(),
                    planned.expect("checked")
                ));
            }
        }
    }
    if w.notes.len() != before {
        text = w.assemble(o, &body);
    }
    let scenario = parse(&text).map_err(|d| invalid(d, &text))?;
    let lab = crate::Lab::from_scenario(scenario)
        .map_err(|e| ImportError::NotValid { diagnostics: e.to_string(), text: text.clone() })?;
    let bridges = h
        .networks
        .iter()
        .filter_map(|n| {
            let real = n.bridge()?;
            let ours = if n.is_default_bridge() {
                lab.plan().bridge.as_ref()?.name.clone()
            } else {
                lab.plan().networks.iter().find(|p| p.name == n.name)?.bridge.name.clone()
            };
            (real != ours).then_some((real, ours))
        })
        .collect();
    Ok(Imported { text, scenario: lab.scenario().clone(), plan: lab.plan().clone(), notes: w.notes, bridges })
}

impl<'a> Writer<'a> {
    fn assemble(&self, o: &Options, body: &str) -> String {
        let mut s = String::new();
        let version = &self.h.info.server_version;
        let _ = writeln!(s, "# Written by `bridgelab import` from a Docker {version} host ({}).", self.h.source);
        let _ = writeln!(s, "# Check it with `bridgelab check`, compare the host with `bridgelab audit`.");
        if !self.notes.is_empty() {
            let _ = writeln!(s, "#\n# Approximations:");
            for n in &self.notes {
                let _ = writeln!(s, "# - {n}");
            }
        }
        let _ = writeln!(s, "\nname = {}", q(&o.name));
        let about = format!(
            "The topology of a Docker {version} host, imported by bridgelab import: its networks, containers, \
             published ports and links, under the nearest layout ({})",
            self.firewall
        );
        let _ = writeln!(s, "about = {}\n\n[daemon]", q(&about));
        for l in &self.daemon {
            let _ = writeln!(s, "{l}");
        }
        if !self.host.is_empty() {
            s.push('\n');
            for l in &self.host {
                let _ = writeln!(s, "{l}");
            }
        }
        s.push_str(body);
        s
    }

    fn libnetwork(&self) -> bool {
        self.firewall != "docker1"
    }
    fn since28(&self) -> bool {
        matches!(self.firewall, "docker28" | "docker29")
    }

    fn daemon_flags(&mut self) {
        let flags = &self.h.flags;
        // The default bridge's inspect shows what --icc and --ip-masq made
        // of it: that is the truth where it was read.
        let inspected = self.h.networks.iter().any(|n| n.is_default_bridge());
        for (flag, key) in BOOL_FLAGS {
            let Some(v) = flags.get(flag) else { continue };
            if inspected && matches!(flag, "icc" | "ip-masq") {
                continue;
            }
            if matches!(flag, "allow-direct-routing" | "ip-forward-no-drop") && !self.since28() {
                self.notes.push(format!("--{flag}={v} left out: {} has no such flag", self.firewall));
                continue;
            }
            match v.as_str() {
                "true" | "false" => self.daemon.push(format!("{key} = {v}")),
                _ => self.notes.push(format!("--{flag}={v} left out: not a boolean")),
            }
        }
        if self.firewall == "docker29" {
            let backend = self.h.info.firewall_backend.as_ref().map(|b| b.driver.as_str()).unwrap_or_default();
            let backend = flags.get("firewall-backend").map(String::as_str).unwrap_or(backend);
            if backend.starts_with("nftables") {
                self.daemon.push("backend = \"nftables\"".into());
            }
        }
        for f in UNMODELLED_FLAGS {
            if let Some(v) = flags.get(f) {
                self.notes.push(format!("--{f}={v} left out: bridgelab does not model it"));
            }
        }
        if !["iptables", "ip-forward", "userland-proxy"].iter().any(|f| flags.contains_key(*f)) {
            self.notes.push(
                "dockerd's defaults assumed for --iptables, --ip-forward and --userland-proxy: docker info does \
                 not show them (give --daemon-json or --daemon-args)"
                    .into(),
            );
        }
    }

    /// `[daemon]` keys from the default bridge's inspect: the daemon made
    /// it from its flags (`-b`, `--bip`, `--fixed-cidr`, `--icc`, ...).
    fn default_bridge(&mut self) {
        if self.h.networks.is_empty() {
            self.notes.push("no networks were read: the default bridge is dockerd's default".into());
            return;
        }
        let Some(n) = self.h.networks.iter().find(|n| n.is_default_bridge()) else {
            self.daemon.push("bridge = \"none\"".into());
            return;
        };
        let pool = n.pool4();
        // Docker 20.10 shows the default bridge's gateway only when --bip
        // gave it; otherwise it is the subnet's first address (bridge
        // driver: the bridge's address is the network's gateway).
        let bip = pool.and_then(|p| {
            let net: ipnetwork::Ipv4Network = p.subnet.parse().ok()?;
            let gw = match p.gateway.parse::<Ipv4Addr>() {
                Ok(g) => g,
                Err(_) => net.nth(1)?,
            };
            Some(format!("{gw}/{}", net.prefix()))
        });
        let name = n.option("bridge.name").unwrap_or("docker0");
        if name != "docker0" {
            // `-b NAME`: a bridge the host made, with its address.
            self.daemon.push(format!("bridge = {}", q(name)));
            self.host.push(format!("[[host.bridge]]\nname = {}", q(name)));
            if let Some(b) = &bip {
                self.host.push(format!("address = {}", q(b)));
            }
            self.notes.push(format!("the default bridge is the host's {name} (-b): written as a [[host.bridge]]"));
        } else if let Some(b) = bip.filter(|b| b != "172.17.0.1/16") {
            self.daemon.push(format!("bip = {}", q(&b)));
        }
        if let Some(r) = pool.map(|p| &p.ip_range).filter(|r| !r.is_empty()) {
            self.daemon.push(format!("fixed_cidr = {}", q(r)));
        }
        if n.option("bridge.enable_icc") == Some("false") {
            self.daemon.push("icc = false".into());
        }
        if n.option("bridge.enable_ip_masquerade") == Some("false") {
            self.daemon.push("ip_masq = false".into());
        }
        if let Some(ip) = n.option("bridge.host_binding_ipv4").filter(|ip| *ip != "0.0.0.0") {
            self.daemon.push(format!("ip = {}", q(ip)));
        }
        if let Some(m) = n.option("driver.mtu").filter(|m| *m != "1500" && *m != "0") {
            self.daemon.push(format!("mtu = {m}"));
        }
        if n.enable_ipv6 {
            self.notes.push("IPv6 on the default bridge left out: bridgelab models IPv4".into());
        }
    }

    fn user_networks(&mut self) {
        let mut nets: Vec<&Network> = self
            .h
            .networks
            .iter()
            .filter(|n| !n.is_default_bridge() && !matches!(n.driver.as_str(), "host" | "null"))
            .collect();
        nets.sort_by_key(|n| time_key(&n.created));
        for n in nets {
            if n.driver != "bridge" {
                self.notes.push(format!(
                    "network {} left out: driver {} (bridgelab models bridge networks)",
                    n.name, n.driver
                ));
                continue;
            }
            if !self.libnetwork() {
                self.notes.push(format!("network {} left out: docker1 has no user networks", n.name));
                continue;
            }
            let mut s = format!("\n[[network]]\nname = {}\n", q(&n.name));
            if let Some(p) = n.pool4() {
                let _ = writeln!(s, "subnet = {}", q(&p.subnet));
                if !p.gateway.is_empty() {
                    let _ = writeln!(s, "gateway = {}", q(&p.gateway));
                }
                if !p.ip_range.is_empty() {
                    let _ = writeln!(s, "ip_range = {}", q(&p.ip_range));
                }
            }
            if n.internal {
                s.push_str("internal = true\n");
            }
            if n.option("bridge.enable_icc") == Some("false") {
                s.push_str("icc = false\n");
            }
            if n.option("bridge.enable_ip_masquerade") == Some("false") {
                s.push_str("ip_masq = false\n");
            }
            if let Some(m) = n.option("driver.mtu").filter(|m| !m.is_empty() && *m != "0") {
                let _ = writeln!(s, "mtu = {m}");
            }
            if let Some(b) = n.option("bridge.name").filter(|b| !b.is_empty()) {
                let _ = writeln!(s, "bridge = {}", q(b));
            }
            if let Some(ip) = n.option("bridge.host_binding_ipv4").filter(|ip| !ip.is_empty()) {
                let _ = writeln!(s, "host_ip = {}", q(ip));
            }
            if let Some(m) = n.option("bridge.gateway_mode_ipv4").filter(|m| !m.is_empty()) {
                if self.since28() {
                    let _ = writeln!(s, "gateway_mode = {}", q(m));
                } else {
                    self.notes.push(format!("network {}: gateway mode {m} left out ({})", n.name, self.firewall));
                }
            }
            if n.enable_ipv6 {
                self.notes.push(format!("network {}: IPv6 left out (bridgelab models IPv4)", n.name));
            }
            self.body.push_str(&s);
            self.networks.insert(n.name.clone());
        }
    }

    /// The containers in the order they were started (their rules and
    /// addresses follow it); returns those written.
    fn containers(&mut self) -> Vec<&'a Container> {
        let h: &'a HostState = self.h;
        let mut all: Vec<&'a Container> = h.containers.iter().collect();
        let key = |c: &Container| time_key(if c.state.running { &c.state.started_at } else { &c.created });
        all.sort_by_key(|c| key(c));
        let by_id: BTreeMap<&str, &str> = h.containers.iter().map(|c| (c.id.as_str(), c.short_name())).collect();
        let mut written: Vec<&'a Container> = Vec::new();
        let mut names: BTreeSet<&str> = BTreeSet::new();
        for c in all {
            let name = c.short_name();
            if matches!(name, "host" | "external") {
                self.notes.push(format!("container {name} left out: bridgelab's name for a node of its own"));
                continue;
            }
            match self.container(c, &by_id, &names) {
                Some(s) => {
                    self.body.push_str(&s);
                    names.insert(name);
                    written.push(c);
                }
                None => continue,
            }
        }
        written
    }

    fn container(&mut self, c: &Container, by_id: &BTreeMap<&str, &str>, seen: &BTreeSet<&str>) -> Option<String> {
        let name = c.short_name();
        let mut s = format!("\n[[container]]\nname = {}\n", q(name));
        let mode = c.host_config.network_mode.as_str();
        let endpoints = c.network_settings.networks.clone().unwrap_or_default();
        let mut first_net = None;
        match mode {
            "host" | "none" => {
                let _ = writeln!(s, "network = {}", q(mode));
            }
            m if m.starts_with("container:") => {
                let other = &m["container:".len()..];
                let other = by_id.get(other).copied().unwrap_or(other);
                if !seen.contains(other) {
                    self.notes.push(format!("container {name} left out: it shares {other}'s namespace, not imported"));
                    return None;
                }
                let _ = writeln!(s, "network = {}", q(&format!("container:{other}")));
            }
            m => {
                let first = if matches!(m, "default" | "bridge" | "") { "bridge".to_string() } else { m.to_string() };
                if first != "bridge" && !self.networks.contains(&first) {
                    self.notes.push(format!("container {name} left out: its network {first} is not imported"));
                    return None;
                }
                let mut rest: Vec<String> = endpoints
                    .keys()
                    .filter(|n| **n != first)
                    .filter(|n| {
                        let known = *n == "bridge" || self.networks.contains(*n);
                        if !known {
                            self.notes.push(format!("container {name}: network {n} left out (not imported)"));
                        }
                        known
                    })
                    .cloned()
                    .collect();
                rest.sort();
                if rest.len() > 1 {
                    self.notes.push(format!(
                        "container {name}: connected to {} in that order (docker inspect does not keep the order)",
                        rest.join(", ")
                    ));
                }
                if !rest.is_empty() {
                    let all: Vec<String> = std::iter::once(first.clone()).chain(rest.iter().cloned()).collect();
                    let _ = writeln!(s, "network = {}", list(&all));
                } else if first != "bridge" {
                    let _ = writeln!(s, "network = {}", q(&first));
                }
                let asked = |n: &str| {
                    endpoints
                        .get(n)
                        .and_then(|e| e.ipam_config.as_ref())
                        .map(|i| i.ipv4_address.clone())
                        .filter(|a| !a.is_empty())
                };
                if let Some(ip) = asked(&first) {
                    let _ = writeln!(s, "ip = {}", q(&ip));
                }
                let ips: Vec<String> =
                    rest.iter().filter_map(|n| asked(n).map(|ip| format!("{} = {}", q(n), q(&ip)))).collect();
                if !ips.is_empty() {
                    let _ = writeln!(s, "ips = {{ {} }}", ips.join(", "));
                }
                first_net = Some(first);
            }
        }
        if let Some(m) = c.config.mac_address.as_deref().filter(|m| !m.is_empty()) {
            let _ = writeln!(s, "mac = {}", q(m));
        }
        let on_bridge = first_net.is_some();
        if on_bridge {
            let (publish, expose, publish_all) = self.ports(c);
            if !publish.is_empty() {
                let _ = writeln!(s, "publish = {}", list(&publish));
            }
            if publish_all {
                s.push_str("publish_all = true\n");
            }
            if !expose.is_empty() {
                let _ = writeln!(s, "expose = {}", list(&expose));
            }
        }
        let links: Vec<String> = c
            .host_config
            .links
            .iter()
            .flatten()
            .filter_map(|l| {
                // `/db:/web/alias`: the target, then this container's path to it.
                let (target, alias) = l.split_once(':')?;
                let target = target.trim_start_matches('/');
                let alias = alias.rsplit('/').next()?;
                if !seen.contains(target) {
                    self.notes.push(format!("container {name}: link to {target} left out (not imported)"));
                    return None;
                }
                Some(if alias == target { target.to_string() } else { format!("{target}:{alias}") })
            })
            .collect();
        if !links.is_empty() {
            let _ = writeln!(s, "links = {}", list(&links));
        }
        if !c.state.running {
            s.push_str("running = false\n");
        }
        Some(s)
    }

    /// `publish`, `expose` and `publish_all` of a container. A host port
    /// Docker chose (none asked, or a range) is pinned to the one it got.
    fn ports(&mut self, c: &Container) -> (Vec<String>, Vec<String>, bool) {
        let name = c.short_name();
        let asked = c.host_config.port_bindings.clone().unwrap_or_default();
        let actual = c.network_settings.ports.clone().unwrap_or_default();
        let got = |key: &str, ip: &str| -> Option<String> {
            let list = actual.get(key)?.as_ref()?;
            let want = if ip.is_empty() { "0.0.0.0" } else { ip };
            list.iter().find(|b| b.host_ip == want).map(|b| b.host_port.clone())
        };
        let mut publish = Vec::new();
        let form = |ip: &str, host: &str, key: &str| {
            let (port, proto) = key.split_once('/').unwrap_or((key, "tcp"));
            let suffix = if proto == "tcp" { String::new() } else { format!("/{proto}") };
            match (ip.is_empty(), host.is_empty()) {
                (true, true) => format!("{port}{suffix}"),
                (true, false) => format!("{host}:{port}{suffix}"),
                (false, _) => format!("{ip}:{host}:{port}{suffix}"),
            }
        };
        for (key, bindings) in &asked {
            if key.ends_with("/sctp") {
                self.notes.push(format!("container {name}: {key} left out (bridgelab models tcp and udp)"));
                continue;
            }
            for PortBinding { host_ip, host_port } in bindings.iter().flatten() {
                if host_ip.contains(':') {
                    self.notes.push(format!("container {name}: IPv6 binding [{host_ip}]:{host_port} left out"));
                    continue;
                }
                let mut host = host_port.clone();
                if host.is_empty() || host.contains('-') {
                    if let Some(p) = got(key, host_ip).filter(|p| !p.is_empty()) {
                        let asked = if host.is_empty() { "a dynamic host port".to_string() } else { host.clone() };
                        self.notes.push(format!("container {name}: {key} asked for {asked}, pinned to the {p} it got"));
                        host = p;
                    }
                }
                publish.push(form(host_ip, &host, key));
            }
        }
        let mut publish_all = false;
        if c.host_config.publish_all_ports {
            if c.state.running {
                for (key, bindings) in &actual {
                    if asked.contains_key(key) {
                        continue;
                    }
                    if let Some(p) = bindings.iter().flatten().find(|b| !b.host_ip.contains(':')) {
                        publish.push(form("", &p.host_port, key));
                    }
                }
                self.notes.push(format!("container {name}: -P written as the host ports it got"));
            } else {
                publish_all = true;
            }
        }
        // With -P written as its ports, every exposed port is published.
        let expose = if c.host_config.publish_all_ports && c.state.running {
            vec![]
        } else {
            c.config
                .exposed_ports
                .iter()
                .flatten()
                .map(|(k, _)| k)
                .filter(|k| !asked.contains_key(*k))
                .cloned()
                .collect()
        };
        (publish, expose, publish_all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_map_to_the_nearest_layout() {
        assert_eq!(layout("20.10.24+dfsg1").unwrap(), ("docker20", None));
        assert_eq!(layout("28.5.2").unwrap(), ("docker28", None));
        assert_eq!(layout("1.6.2").unwrap(), ("docker1", None));
        let (l, n) = layout("24.0.7").unwrap();
        assert_eq!(l, "docker20");
        assert!(n.unwrap().contains("between layouts"));
        assert_eq!(layout("27.3.1").unwrap().0, "docker28");
        assert_eq!(layout("29.7.2").unwrap(), ("docker29", None));
        assert!(layout("").is_err());
        assert!(layout("5.0").is_err());
    }
}
