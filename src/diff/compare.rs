//! Both worlds read back into one normalized shape, and their differences.
//!
//! The same reader runs on both sides: netlink and `iptables-save` in the
//! host namespace and in every container namespace (bridgelab's own, or the
//! real containers' reached through `/proc/<State.Pid>/ns/net`). Only what
//! no kernel can say comes from elsewhere: which container lives in which
//! namespace and which ports it publishes, from the plan on bridgelab's
//! side and from `docker inspect` on Docker's.
//!
//! Normalization, so that equal worlds render equal text:
//!
//! * Docker's bridge names (`br-` + 12 hex digits of a random network id)
//!   become bridgelab's name for the same bridge: the lab bridge that has
//!   the same address, or `br-<network name>` when the lab has none. Veth
//!   names are random on both sides and appear in no compared section.
//! * Counters and comments leave `iptables-save`.
//! * **The order of one container's port rules is compared as a set.**
//!   Docker 20.10 sorts a container's bindings with go-connections'
//!   `nat.SortPortMap`, whose `Less` is not a strict weak order, over a Go
//!   map's random iteration: the same `docker run` gives different orders
//!   (captures/14-port-order). Each run of consecutive rules in one chain
//!   that belong to one container address (`-d ADDR/32`, `--to-destination
//!   ADDR:`) is sorted, on both sides. The order across containers, and of
//!   everything else, is compared as it is.
//! * After a daemon restart, Docker restores user networks in a random order
//!   (a Go map) and re-inserts their `DOCKER-ISOLATION-STAGE-1/2` and nat
//!   `DOCKER ... -j RETURN` rules in that order: from then on those rules
//!   are compared as sets too.
//! * Only routes' `linkdown` flags are timing: both hosts are read once
//!   every bridge's routes agree with its ports' carrier (bounded).

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use rtnetlink::packet_route::link::InfoKind;
use serde::Deserialize;

use crate::apply::{dump_here, netns, LinkState};
use crate::error::{Error, Result};

/// One namespace as netlink reports it.
#[derive(Debug, Clone, Default)]
pub struct NsState {
    pub links: Vec<LinkState>,
    pub addresses: HashMap<u32, Vec<(Ipv4Addr, u8)>>,
    /// `ip route` lines of the main table.
    pub routes: Vec<String>,
}

impl NsState {
    pub fn link(&self, name: &str) -> Option<&LinkState> {
        self.links.iter().find(|l| l.name == name)
    }
    pub fn addresses_of(&self, l: &LinkState) -> Vec<(Ipv4Addr, u8)> {
        let mut a = self.addresses.get(&l.index).cloned().unwrap_or_default();
        a.sort();
        a
    }
    fn bridges(&self) -> impl Iterator<Item = &LinkState> {
        self.links.iter().filter(|l| l.kind == Some(InfoKind::Bridge))
    }
}

fn read_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Environment(format!("read back {what}: {e}"))
}

/// Reads a namespace through a netlink socket opened inside it.
pub async fn read_ns(ns: &File, what: &str) -> Result<NsState> {
    let d = netns::run_in(ns, dump_here).map_err(|e| read_err(what, e))?;
    Ok(NsState { routes: d.routes(), links: d.links, addresses: d.addresses })
}

/// Reads the host namespace once the kernel's carrier reports have caught
/// up: every route over a bridge says `linkdown` exactly when none of the
/// bridge's ports is up. Bounded: past it, what is there is taken.
pub async fn read_settled_host(ns: &File) -> Result<NsState> {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let s = read_ns(ns, "host").await?;
        if carrier_settled(&s) || Instant::now() > deadline {
            return Ok(s);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits (bounded, like [`read_settled_host`]) until no Docker veth on a
/// host bridge is an orphan: one whose peer is in none of `namespaces`,
/// the running containers' own. A start that fails after its endpoint
/// joined (Docker 28 connects networks once the task exists) leaves the
/// veth's peer in the dead task's namespace: libnetwork's rollback finds
/// no link by the moved peer's name to delete (bridge `DeleteEndpoint`),
/// and the kernel destroys that namespace, and the pair with it, only
/// when its cleanup work runs (~0.8 s after the CLI returned, with
/// dockerd 28.5.2 here). Docker's state is the one after that.
pub async fn wait_for_orphan_veths(host: &File, namespaces: &[(String, &File)]) -> Result<()> {
    let mut live = std::collections::HashSet::new();
    for (name, file) in namespaces {
        let s = read_ns(file, name).await?;
        live.extend(s.links.iter().filter(|l| l.kind == Some(InfoKind::Veth)).filter_map(|l| l.peer_index));
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let s = read_ns(host, "host").await?;
        if orphan_veths(&s, &live).is_empty() || Instant::now() > deadline {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Docker's veths (`veth` + 7 hex digits) on a bridge whose index no live
/// peer names. Machines' ports (`vnetN`) are bridgelab's own.
fn orphan_veths<'a>(s: &'a NsState, live: &std::collections::HashSet<u32>) -> Vec<&'a str> {
    s.links
        .iter()
        .filter(|l| l.kind == Some(InfoKind::Veth) && l.master.is_some() && l.name.starts_with("veth"))
        .filter(|l| !live.contains(&l.index))
        .map(|l| l.name.as_str())
        .collect()
}

fn carrier_settled(s: &NsState) -> bool {
    s.bridges().all(|b| {
        let carrier = s.links.iter().any(|l| l.master == Some(b.index) && l.oper_up);
        let dev = format!(" dev {} ", b.name);
        s.routes.iter().filter(|r| format!("{r} ").contains(&dev)).all(|r| r.ends_with(" linkdown") != carrier)
    })
}

/// Sysctls compared in the host namespace, besides the per-bridge ones.
pub const HOST_SYSCTLS: [&str; 3] =
    ["net.ipv4.ip_forward", "net.bridge.bridge-nf-call-iptables", "net.bridge.bridge-nf-call-ip6tables"];
/// Per-bridge sysctls (`{}` is the bridge).
pub const BRIDGE_SYSCTLS: [&str; 2] = ["net.ipv4.conf.{}.route_localnet", "net.ipv6.conf.{}.accept_ra"];
/// Sysctls compared in each container's own namespace (Docker sets them
/// in the container's OCI spec).
pub const CONTAINER_SYSCTLS: [&str; 3] =
    ["net.ipv4.ip_unprivileged_port_start", "net.ipv4.ping_group_range", "net.ipv6.conf.all.disable_ipv6"];

fn sysctl(ns: &File, key: &str) -> String {
    match netns::read_sysctl(ns, key) {
        Ok(v) => v.split_whitespace().collect::<Vec<_>>().join(" "),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "(none)".into(),
        Err(e) => format!("(unreadable: {e})"),
    }
}

/// Where a container's processes live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Whereabouts {
    NotRunning,
    /// `--network host`.
    Host,
    /// `--network container:NAME`: that container's namespace.
    Shares(String),
    /// A namespace of its own.
    Own,
}

/// One side's containers and ports, as the plan or `docker inspect` says.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    /// Every container that exists, by name, with where it lives.
    pub containers: Vec<(String, Whereabouts)>,
    /// One line per published binding: `web 80/tcp <- 0.0.0.0:8080`.
    pub ports: Vec<String>,
    /// Each running container's networks and its address on each, for
    /// resolving probe targets (`name`, `name@network`); not compared.
    pub networks: BTreeMap<String, Vec<(String, Ipv4Addr)>>,
}

/// One side read back: the raw material of a [`World`].
#[derive(Debug, Clone, Default)]
pub struct Readback {
    pub iptables: String,
    /// `ip6tables-save`: Docker 28 makes its IPv6 chains too (`--ip6tables`
    /// is on by default since 27).
    pub ip6tables: String,
    pub host: NsState,
    pub host_sysctls: Vec<(String, String)>,
    pub inventory: Inventory,
    /// Containers with a namespace of their own: its state and sysctls.
    pub namespaces: BTreeMap<String, (NsState, Vec<(String, String)>)>,
}

/// Reads one side: the host namespace and each container namespace given.
pub async fn read_side(host: &File, inventory: Inventory, namespaces: &[(String, &File)]) -> Result<Readback> {
    let iptables = crate::apply::iptables::save4(host)?;
    let ip6tables = crate::apply::iptables::save6(host)?;
    let host_state = read_settled_host(host).await?;
    let mut host_sysctls: Vec<(String, String)> =
        HOST_SYSCTLS.iter().map(|k| (k.to_string(), sysctl(host, k))).collect();
    for b in host_state.bridges() {
        for k in BRIDGE_SYSCTLS {
            let key = k.replace("{}", &b.name);
            host_sysctls.push((key.clone(), sysctl(host, &key)));
        }
    }
    let mut out = BTreeMap::new();
    for (name, file) in namespaces {
        let state = read_ns(file, name).await?;
        let sysctls = CONTAINER_SYSCTLS.iter().map(|k| (k.to_string(), sysctl(file, k))).collect();
        out.insert(name.clone(), (state, sysctls));
    }
    Ok(Readback { iptables, ip6tables, host: host_state, host_sysctls, inventory, namespaces: out })
}

/// `docker inspect` of a container, as far as `diff` reads it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Inspect {
    pub id: String,
    pub name: String,
    pub state: InspectState,
    pub host_config: InspectHostConfig,
    pub network_settings: InspectNetworkSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InspectState {
    pub running: bool,
    pub pid: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InspectHostConfig {
    pub network_mode: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InspectNetworkSettings {
    #[serde(default)]
    pub ports: Option<BTreeMap<String, Option<Vec<Binding>>>>,
    #[serde(default)]
    pub networks: Option<BTreeMap<String, InspectEndpoint>>,
}

/// A container's endpoint on one network, as `docker inspect` shows it.
#[derive(Debug, Clone, Deserialize)]
pub struct InspectEndpoint {
    #[serde(rename = "IPAddress", default)]
    pub ip_address: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Binding {
    pub host_ip: String,
    pub host_port: String,
}

/// `docker network inspect` of a network, as far as `diff` reads it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkInspect {
    pub name: String,
    pub id: String,
    pub driver: String,
    #[serde(default)]
    pub options: Option<BTreeMap<String, String>>,
}

impl NetworkInspect {
    /// The Linux bridge of a bridge network: its `bridge.name` option, or
    /// `br-` and the first 12 digits of its id.
    pub fn bridge(&self) -> Option<String> {
        if self.driver != "bridge" {
            return None;
        }
        let named =
            self.options.as_ref().and_then(|o| o.get("com.docker.network.bridge.name")).filter(|n| !n.is_empty());
        Some(named.cloned().unwrap_or_else(|| format!("br-{}", &self.id[..self.id.len().min(12)])))
    }
}

/// Docker's containers as an [`Inventory`], and the pid of each that has
/// a namespace of its own.
pub fn real_inventory(containers: &[Inspect]) -> (Inventory, Vec<(String, u32)>) {
    let by_id: HashMap<&str, &str> =
        containers.iter().map(|c| (c.id.as_str(), c.name.trim_start_matches('/'))).collect();
    let mut inv = Inventory::default();
    let mut pids = Vec::new();
    for c in containers {
        let name = c.name.trim_start_matches('/').to_string();
        let mode = &c.host_config.network_mode;
        let w = if !c.state.running {
            Whereabouts::NotRunning
        } else if mode == "host" {
            Whereabouts::Host
        } else if let Some(other) = mode.strip_prefix("container:") {
            // The CLI stores the id (or the name, through the API).
            Whereabouts::Shares(by_id.get(other).map(|s| s.to_string()).unwrap_or_else(|| other.to_string()))
        } else {
            pids.push((name.clone(), c.state.pid));
            Whereabouts::Own
        };
        if c.state.running {
            let nets = c.network_settings.networks.iter().flatten();
            let on: Vec<(String, Ipv4Addr)> =
                nets.filter_map(|(n, e)| e.ip_address.parse().ok().map(|ip| (n.clone(), ip))).collect();
            if !on.is_empty() {
                inv.networks.insert(name.clone(), on);
            }
            for (port, bindings) in c.network_settings.ports.iter().flatten() {
                for b in bindings.iter().flatten() {
                    let ip = if b.host_ip.contains(':') { format!("[{}]", b.host_ip) } else { b.host_ip.clone() };
                    inv.ports.push(format!("{name} {port} <- {ip}:{}", b.host_port));
                }
            }
        }
        inv.containers.push((name, w));
    }
    (inv, pids)
}

/// bridgelab's containers as an [`Inventory`], from its plan.
pub fn lab_inventory(plan: &crate::plan::Plan) -> Inventory {
    let mut inv = Inventory::default();
    for c in &plan.containers {
        let w = match c.netns.as_deref() {
            None => Whereabouts::NotRunning,
            Some("host") => Whereabouts::Host,
            Some(ns) if ns == c.name => Whereabouts::Own,
            Some(ns) => Whereabouts::Shares(ns.to_string()),
        };
        inv.containers.push((c.name.clone(), w));
    }
    for m in plan.port_mappings.iter().chain(&plan.bindings) {
        let addr = std::net::SocketAddr::new(m.host_ip, m.host_port).to_string();
        // No host port (Docker 28's routed mode): `docker inspect` says
        // `"HostPort": ""` (captures m7-usernet-portmap-routed).
        let addr = match m.host_port {
            0 => addr.strip_suffix('0').unwrap_or(&addr).to_string(),
            _ => addr,
        };
        inv.ports.push(format!("{} {}/{} <- {addr}", m.container, m.container_port, m.proto));
    }
    inv
}

/// Docker's bridge names → the names bridgelab has for the same bridges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Names(pub BTreeMap<String, String>);

impl Names {
    /// Maps each of Docker's bridges (from its networks) to the lab bridge
    /// that has one of its addresses, else to the lab's bridge of the
    /// network of that name (`lab_networks`: network, bridge; an isolated
    /// network's bridge has no address), or to `br-<network>` without one.
    /// Bridges whose name the lab has too (docker0, named ones) keep it.
    pub fn new(
        networks: &[NetworkInspect],
        real_host: &NsState,
        lab_host: Option<&NsState>,
        lab_networks: &[(String, String)],
    ) -> Names {
        let mut map = BTreeMap::new();
        let lab_bridges: Vec<(String, Vec<(Ipv4Addr, u8)>)> =
            lab_host.map(|h| h.bridges().map(|b| (b.name.clone(), h.addresses_of(b))).collect()).unwrap_or_default();
        for n in networks {
            let Some(real) = n.bridge() else { continue };
            if lab_bridges.iter().any(|(name, _)| *name == real) || !real.starts_with("br-") {
                continue;
            }
            let addrs = real_host.link(&real).map(|l| real_host.addresses_of(l)).unwrap_or_default();
            let stable = lab_bridges
                .iter()
                .find(|(_, a)| a.iter().any(|x| addrs.contains(x)))
                .map(|(name, _)| name.clone())
                .or_else(|| {
                    let lab = lab_networks.iter().find(|(net, _)| *net == n.name).map(|(_, b)| b)?;
                    lab_bridges.iter().any(|(name, _)| name == lab).then(|| lab.clone())
                })
                .unwrap_or_else(|| format!("br-{}", n.name));
            map.insert(real, stable);
        }
        Names(map)
    }

    /// `text` with every mapped name replaced where it stands as a whole
    /// word (interface names are made of `[A-Za-z0-9_.-]`).
    pub fn apply(&self, text: &str) -> String {
        if self.0.is_empty() {
            return text.to_string();
        }
        let is_name = |c: char| c.is_ascii_alphanumeric() || "_.-".contains(c);
        let mut out = String::with_capacity(text.len());
        let mut word = String::new();
        let flush = |word: &mut String, out: &mut String| {
            out.push_str(self.0.get(word.as_str()).map(String::as_str).unwrap_or(word));
            word.clear();
        };
        for c in text.chars() {
            if is_name(c) {
                word.push(c);
            } else {
                flush(&mut word, &mut out);
                out.push(c);
            }
        }
        flush(&mut word, &mut out);
        out
    }

    /// A sysctl key with its interface part mapped
    /// (`net.ipv4.conf.br-696b63195f57.route_localnet`): there the name
    /// stands between dots, which may also be part of a name.
    pub fn apply_to_sysctl(&self, key: &str) -> String {
        let mut key = key.to_string();
        for (real, stable) in &self.0 {
            key = key.replace(&format!(".{real}."), &format!(".{stable}."));
        }
        key
    }
}

/// The container address a rule belongs to: `--to-destination ADDR:`,
/// else `-d ADDR/32` (a DNAT of a binding to a host address has both, and
/// belongs to its container, not to the host address).
fn rule_owner(rule: &str) -> Option<&str> {
    let words: Vec<&str> = rule.split_whitespace().collect();
    let after = |flag: &str| words.windows(2).find(|w| w[0] == flag).map(|w| w[1]);
    after("--to-destination")
        .and_then(|d| d.split(':').next())
        .or_else(|| after("-d").and_then(|d| d.strip_suffix("/32")))
}

/// Chains whose network rules a restarted daemon re-inserts in a random order.
const RESTORED_CHAINS: [&str; 2] = ["DOCKER-ISOLATION-STAGE-1", "DOCKER-ISOLATION-STAGE-2"];

/// Puts what Docker orders at random into one order (see the module
/// documentation): each run of one container's rules, and, when
/// `networks_restored`, the isolation chains and nat `DOCKER`'s RETURNs.
pub fn canonical_rule_order(save: &str, networks_restored: bool) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut table = "";
    // The run being gathered: (chain, key, lines).
    let mut run: Option<(String, String, Vec<String>)> = None;
    let flush = |run: &mut Option<(String, String, Vec<String>)>, out: &mut Vec<String>| {
        if let Some((_, _, mut lines)) = run.take() {
            lines.sort();
            out.extend(lines);
        }
    };
    for line in save.lines() {
        if let Some(t) = line.strip_prefix('*') {
            table = if t == "nat" {
                "nat"
            } else if t == "filter" {
                "filter"
            } else {
                "other"
            };
        }
        let Some(rest) = line.strip_prefix("-A ") else {
            flush(&mut run, &mut out);
            out.push(line.to_string());
            continue;
        };
        let (chain, rule) = rest.split_once(' ').unwrap_or((rest, ""));
        let key = if networks_restored
            && ((table == "filter" && RESTORED_CHAINS.contains(&chain) && rule != "-j RETURN")
                || (table == "nat" && chain == "DOCKER" && rule.starts_with("-i ") && rule.ends_with("-j RETURN")))
        {
            Some("networks".to_string())
        } else {
            rule_owner(rule).map(|o| format!("container {o}"))
        };
        match (&mut run, key) {
            (Some((c, k, lines)), Some(key)) if c == chain && *k == key => lines.push(line.to_string()),
            (_, Some(key)) => {
                flush(&mut run, &mut out);
                run = Some((chain.to_string(), key, vec![line.to_string()]));
            }
            (_, None) => {
                flush(&mut run, &mut out);
                out.push(line.to_string());
            }
        }
    }
    flush(&mut run, &mut out);
    out.into_iter().map(|l| l + "\n").collect()
}

/// One titled list of lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub title: String,
    pub lines: Vec<String>,
}

/// One side, normalized: sections of text that compare line by line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct World {
    pub sections: Vec<Section>,
}

impl World {
    pub fn section(&self, title: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.title == title)
    }
    pub fn push(&mut self, title: impl Into<String>, lines: Vec<String>) {
        self.sections.push(Section { title: title.into(), lines });
    }
}

/// How container MACs are shown.
///
/// Docker 28 gives an endpoint a random MAC unless one is asked for
/// (`CreateEndpoint` in libnetwork/drivers/bridge/bridge_linux.go calls
/// `netutils.GenerateRandomMAC`: random bytes, unicast, locally
/// administered). Two worlds cannot agree on random bytes, so with
/// `random` such a MAC is shown as `random` on both sides, as random bridge
/// names are mapped to stable ones. Only a MAC of that form is: 20.10's
/// `02:42` + IPv4 address, a multicast or a universally administered MAC
/// is shown as it is, and so is every MAC the scenario asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Macs {
    /// The firewall's Docker makes container MACs at random.
    pub random: bool,
    /// MACs the scenario gives (`mac`), as [`MacAddr`](crate::scenario::MacAddr) prints them.
    pub given: Vec<String>,
}

impl Macs {
    /// `mac` of an interface with addresses `addrs`, as a world shows it.
    pub fn show(&self, mac: [u8; 6], addrs: &[(Ipv4Addr, u8)]) -> String {
        let text = crate::scenario::MacAddr(mac).to_string();
        let from_ip = addrs.iter().any(|(a, _)| mac[..2] == [0x02, 0x42] && mac[2..] == a.octets());
        let generated = mac[0] & 0x01 == 0 && mac[0] & 0x02 != 0;
        if self.random && generated && !from_ip && !self.given.contains(&text) {
            "random".into()
        } else {
            text
        }
    }
}

fn ns_lines(owner: &str, s: &NsState, macs: &Macs) -> Vec<String> {
    let mut links: Vec<&LinkState> = s.links.iter().filter(|l| l.name != "lo").collect();
    links.sort_by(|a, b| a.name.cmp(&b.name));
    if links.is_empty() {
        return vec![format!("{owner}: lo only")];
    }
    links
        .iter()
        .map(|l| {
            let own = s.addresses_of(l);
            let addrs: Vec<String> = own.iter().map(|(a, p)| format!("{a}/{p}")).collect();
            let mac = l.mac.map(|m| macs.show(m, &own)).unwrap_or_else(|| "-".into());
            let state = if l.up { "up" } else { "down" };
            format!(
                "{owner} {} {} mac {mac} mtu {} {state}",
                l.name,
                if addrs.is_empty() { "-".into() } else { addrs.join(",") },
                l.mtu.unwrap_or(0)
            )
        })
        .collect()
}

/// Renders a side read back, its bridge names and random MACs mapped.
pub fn render(r: &Readback, names: &Names, macs: &Macs, networks_restored: bool) -> World {
    let mut w = World::default();
    for (title, save) in [("iptables-save (host)", &r.iptables), ("ip6tables-save (host)", &r.ip6tables)] {
        let rules = canonical_rule_order(&names.apply(save), networks_restored);
        w.push(
            title,
            if rules.trim().is_empty() { vec!["(no rules)".into()] } else { rules.lines().map(String::from).collect() },
        );
    }
    let mut containers: Vec<String> = Vec::new();
    let mut sorted = r.inventory.containers.clone();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, whereabouts) in &sorted {
        match whereabouts {
            Whereabouts::NotRunning => containers.push(format!("{name}: not running")),
            Whereabouts::Host => containers.push(format!("{name}: in the host's namespace")),
            Whereabouts::Shares(other) => containers.push(format!("{name}: in {other}'s namespace")),
            Whereabouts::Own => match r.namespaces.get(name) {
                Some((s, _)) => containers.extend(ns_lines(name, s, macs)),
                None => containers.push(format!("{name}: namespace not read")),
            },
        }
    }
    w.push("containers", containers);
    let mut ports = r.inventory.ports.clone();
    ports.sort();
    w.push("published ports", ports);
    let bridges: Vec<String> = r
        .host
        .bridges()
        .map(|b| {
            let ports = r.host.links.iter().filter(|l| l.master == Some(b.index)).count();
            let addrs: Vec<String> = r.host.addresses_of(b).iter().map(|(a, p)| format!("{a}/{p}")).collect();
            names.apply(&format!(
                "{} {} mtu {} {} ports {ports}",
                b.name,
                if addrs.is_empty() { "-".into() } else { addrs.join(",") },
                b.mtu.unwrap_or(0),
                if b.up { "up" } else { "down" }
            ))
        })
        .collect();
    let mut bridges = bridges;
    bridges.sort();
    w.push("bridges (host)", bridges);
    w.push("routes (host)", r.host.routes.iter().map(|l| names.apply(l)).collect());
    for (name, (s, _)) in &r.namespaces {
        w.push(format!("routes ({name})"), s.routes.clone());
    }
    let mut sysctls: Vec<String> =
        r.host_sysctls.iter().map(|(k, v)| format!("host {} = {v}", names.apply_to_sysctl(k))).collect();
    sysctls.sort();
    for (name, (_, list)) in &r.namespaces {
        sysctls.extend(list.iter().map(|(k, v)| format!("{name} {k} = {v}")));
    }
    w.push("sysctls", sysctls);
    w
}

/// One line of a unified diff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    Same(String),
    Lab(String),
    Real(String),
}

/// The lines of `a` (bridgelab) and `b` (Docker) aligned on a longest
/// common subsequence.
pub fn align(a: &[String], b: &[String]) -> Vec<Line> {
    let (n, m) = (a.len(), b.len());
    // lcs[i][j]: length of the LCS of a[i..] and b[j..].
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] { lcs[i + 1][j + 1] + 1 } else { lcs[i + 1][j].max(lcs[i][j + 1]) };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::with_capacity(n.max(m));
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            out.push(Line::Same(a[i].clone()));
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            // Removals before additions, as diff -u prints them.
            out.push(Line::Lab(a[i].clone()));
            i += 1;
        } else {
            out.push(Line::Real(b[j].clone()));
            j += 1;
        }
    }
    out
}

/// Unified-diff hunks of one section (`@@ title @@` before each), with
/// `context` unchanged lines around each change; empty when equal.
pub fn hunks(title: &str, a: &[String], b: &[String], context: usize) -> Vec<String> {
    let lines = align(a, b);
    let changed: Vec<usize> =
        lines.iter().enumerate().filter(|(_, l)| !matches!(l, Line::Same(_))).map(|(i, _)| i).collect();
    if changed.is_empty() {
        return vec![];
    }
    let mut out = Vec::new();
    let mut shown_until = 0usize;
    let mut k = 0;
    while k < changed.len() {
        let start = changed[k].saturating_sub(context);
        let mut end = changed[k] + context;
        while k + 1 < changed.len() && changed[k + 1] <= end + context {
            k += 1;
            end = changed[k] + context;
        }
        let end = end.min(lines.len() - 1);
        if out.is_empty() || start > shown_until {
            out.push(format!("@@ {title} @@"));
        }
        for l in &lines[start.max(shown_until)..=end] {
            out.push(match l {
                Line::Same(s) => format!(" {s}"),
                Line::Lab(s) => format!("-{s}"),
                Line::Real(s) => format!("+{s}"),
            });
        }
        shown_until = end + 1;
        k += 1;
    }
    out
}

/// Every section's hunks: bridgelab's world as `-`, Docker's as `+`. A
/// section only one side has is compared with an empty one.
pub fn diff(lab: &World, real: &World) -> Vec<String> {
    let mut titles: Vec<&str> = lab.sections.iter().map(|s| s.title.as_str()).collect();
    for s in &real.sections {
        if !titles.contains(&s.title.as_str()) {
            titles.push(&s.title);
        }
    }
    let empty = Vec::new();
    let mut out = Vec::new();
    for t in titles {
        let a = lab.section(t).map(|s| &s.lines).unwrap_or(&empty);
        let b = real.section(t).map(|s| &s.lines).unwrap_or(&empty);
        out.extend(hunks(t, a, b, 3));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(s: &str) -> Vec<String> {
        s.lines().map(String::from).collect()
    }

    /// captures/14-port-order: two identical `docker run -p` gave their
    /// DNATs in different orders.
    #[test]
    fn one_containers_port_rules_compare_as_a_set() {
        let a = "*nat\n:DOCKER -\n-A DOCKER -i docker0 -j RETURN\n\
                 -A DOCKER ! -i docker0 -p tcp -m tcp --dport 1102 -j DNAT --to-destination 172.17.0.2:81\n\
                 -A DOCKER ! -i docker0 -p tcp -m tcp --dport 1101 -j DNAT --to-destination 172.17.0.2:80\n\
                 -A DOCKER ! -i docker0 -p tcp -m tcp --dport 1202 -j DNAT --to-destination 172.17.0.3:81\n\
                 -A DOCKER ! -i docker0 -p tcp -m tcp --dport 1201 -j DNAT --to-destination 172.17.0.3:80\nCOMMIT\n";
        let b = "*nat\n:DOCKER -\n-A DOCKER -i docker0 -j RETURN\n\
                 -A DOCKER ! -i docker0 -p tcp -m tcp --dport 1101 -j DNAT --to-destination 172.17.0.2:80\n\
                 -A DOCKER ! -i docker0 -p tcp -m tcp --dport 1102 -j DNAT --to-destination 172.17.0.2:81\n\
                 -A DOCKER ! -i docker0 -p tcp -m tcp --dport 1202 -j DNAT --to-destination 172.17.0.3:81\n\
                 -A DOCKER ! -i docker0 -p tcp -m tcp --dport 1201 -j DNAT --to-destination 172.17.0.3:80\nCOMMIT\n";
        assert_ne!(a, b);
        assert_eq!(canonical_rule_order(a, false), canonical_rule_order(b, false));
        // The order across containers still counts.
        let swapped = b
            .replace("172.17.0.2", "172.17.0.9")
            .replace("172.17.0.3", "172.17.0.2")
            .replace("172.17.0.9", "172.17.0.3");
        assert_ne!(canonical_rule_order(a, false), canonical_rule_order(&swapped, false));
        // So does the order of rules that belong to no container.
        let c = "*filter\n-A FORWARD -j B\n-A FORWARD -j A\nCOMMIT\n";
        assert_eq!(canonical_rule_order(c, false), c);
    }

    #[test]
    fn filter_and_masquerade_rules_are_owned_by_their_container() {
        assert_eq!(
            rule_owner("-d 172.17.0.2/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT"),
            Some("172.17.0.2")
        );
        assert_eq!(
            rule_owner("-s 172.17.0.2/32 -d 172.17.0.2/32 -p tcp -m tcp --dport 80 -j MASQUERADE"),
            Some("172.17.0.2")
        );
        assert_eq!(rule_owner("-s 172.17.0.0/16 ! -o docker0 -j MASQUERADE"), None);
        assert_eq!(
            rule_owner(
                "-d 127.0.0.1/32 ! -i docker0 -p tcp -m tcp --dport 8081 -j DNAT --to-destination 172.17.0.2:80"
            ),
            Some("172.17.0.2")
        );
        // So it sorts with its container's other DNATs (docker20-publish:
        // dockerd 20.10 put the 8082/udp DNAT before it on one run, after
        // it on others).
        let a = "*nat\n-A DOCKER ! -i docker0 -p tcp -m tcp --dport 9001 -j DNAT --to-destination 172.17.0.2:91\n\
                 -A DOCKER ! -i docker0 -p udp -m udp --dport 8082 -j DNAT --to-destination 172.17.0.2:53\n\
                 -A DOCKER -d 127.0.0.1/32 ! -i docker0 -p tcp -m tcp --dport 8081 -j DNAT --to-destination 172.17.0.2:80\nCOMMIT\n";
        let b = "*nat\n-A DOCKER ! -i docker0 -p tcp -m tcp --dport 9001 -j DNAT --to-destination 172.17.0.2:91\n\
                 -A DOCKER -d 127.0.0.1/32 ! -i docker0 -p tcp -m tcp --dport 8081 -j DNAT --to-destination 172.17.0.2:80\n\
                 -A DOCKER ! -i docker0 -p udp -m udp --dport 8082 -j DNAT --to-destination 172.17.0.2:53\nCOMMIT\n";
        assert_eq!(canonical_rule_order(a, false), canonical_rule_order(b, false));
    }

    /// captures/17-restore-order: a restarted daemon re-inserts network
    /// rules in a random order.
    #[test]
    fn after_a_daemon_restart_network_rules_compare_as_sets() {
        let a = "*filter\n:DOCKER-ISOLATION-STAGE-2 -\n-A DOCKER-ISOLATION-STAGE-2 -o br-b -j DROP\n\
                 -A DOCKER-ISOLATION-STAGE-2 -o br-a -j DROP\n-A DOCKER-ISOLATION-STAGE-2 -j RETURN\nCOMMIT\n";
        let b = "*filter\n:DOCKER-ISOLATION-STAGE-2 -\n-A DOCKER-ISOLATION-STAGE-2 -o br-a -j DROP\n\
                 -A DOCKER-ISOLATION-STAGE-2 -o br-b -j DROP\n-A DOCKER-ISOLATION-STAGE-2 -j RETURN\nCOMMIT\n";
        assert_ne!(canonical_rule_order(a, false), canonical_rule_order(b, false));
        assert_eq!(canonical_rule_order(a, true), canonical_rule_order(b, true));
        assert!(canonical_rule_order(a, true).ends_with("-A DOCKER-ISOLATION-STAGE-2 -j RETURN\nCOMMIT\n"));
        let n1 = "*nat\n-A DOCKER -i br-b -j RETURN\n-A DOCKER -i br-a -j RETURN\n-A DOCKER ! -i br-a -p tcp -j DNAT --to-destination 10.0.0.2:80\nCOMMIT\n";
        let n2 = "*nat\n-A DOCKER -i br-a -j RETURN\n-A DOCKER -i br-b -j RETURN\n-A DOCKER ! -i br-a -p tcp -j DNAT --to-destination 10.0.0.2:80\nCOMMIT\n";
        assert_eq!(canonical_rule_order(n1, true), canonical_rule_order(n2, true));
    }

    fn link(index: u32, name: &str, kind: Option<InfoKind>) -> LinkState {
        LinkState {
            index,
            name: name.into(),
            kind,
            mac: None,
            mtu: Some(1500),
            master: None,
            peer_index: None,
            up: true,
            oper_up: true,
            hairpin: false,
        }
    }

    fn network(name: &str, id: &str, bridge_name: Option<&str>) -> NetworkInspect {
        NetworkInspect {
            name: name.into(),
            id: id.into(),
            driver: "bridge".into(),
            options: bridge_name.map(|b| [("com.docker.network.bridge.name".to_string(), b.to_string())].into()),
        }
    }

    #[test]
    fn dockers_bridge_names_become_the_labs() {
        let host = |bridges: &[(u32, &str, &str)]| {
            let mut s = NsState::default();
            for (i, name, addr) in bridges {
                s.links.push(link(*i, name, Some(InfoKind::Bridge)));
                let (ip, p) = addr.split_once('/').unwrap();
                s.addresses.insert(*i, vec![(ip.parse().unwrap(), p.parse().unwrap())]);
            }
            s
        };
        let real = host(&[
            (3, "docker0", "172.17.0.1/16"),
            (4, "br-696b63195f57", "172.18.0.1/16"),
            (5, "br-0123456789ab", "10.9.0.1/24"),
            (6, "quiet0", "10.8.0.1/24"),
        ]);
        let lab = host(&[
            (7, "docker0", "172.17.0.1/16"),
            (8, "br-5e2f0d1c9a77", "172.18.0.1/16"),
            (9, "quiet0", "10.8.0.1/24"),
        ]);
        let nets = [
            network("bridge", "e188d074a63e0000", Some("docker0")),
            network("usr", "696b63195f57aaaa", None),
            network("other", "0123456789abcdef", None),
            network("quiet", "99", Some("quiet0")),
            NetworkInspect { name: "host".into(), id: "775d43abe89e".into(), driver: "host".into(), options: None },
        ];
        let names = Names::new(&nets, &real, Some(&lab), &[]);
        assert_eq!(
            names.0,
            [
                ("br-0123456789ab".to_string(), "br-other".to_string()),
                ("br-696b63195f57".to_string(), "br-5e2f0d1c9a77".to_string())
            ]
            .into()
        );
        assert_eq!(
            names.apply("-A FORWARD -i br-696b63195f57 ! -o br-696b63195f57 -j ACCEPT\ndev br-0123456789ab proto"),
            "-A FORWARD -i br-5e2f0d1c9a77 ! -o br-5e2f0d1c9a77 -j ACCEPT\ndev br-other proto"
        );
        // A longer word that merely starts with a bridge name is left alone.
        assert_eq!(names.apply("br-696b63195f57x"), "br-696b63195f57x");
        assert_eq!(
            names.apply_to_sysctl("net.ipv4.conf.br-0123456789ab.route_localnet"),
            "net.ipv4.conf.br-other.route_localnet"
        );
        // Without a lab, names still come out the same on every run.
        assert_eq!(Names::new(&nets, &real, None, &[]).0["br-696b63195f57"], "br-usr");
        // A bridge without an address (gateway mode isolated) goes by its network.
        let mut real = real;
        real.addresses.remove(&5);
        let mut lab = lab;
        lab.links.push(link(10, "br-d58813cbcd90", Some(InfoKind::Bridge)));
        let by_net = [("other".to_string(), "br-d58813cbcd90".to_string())];
        assert_eq!(Names::new(&nets, &real, Some(&lab), &by_net).0["br-0123456789ab"], "br-d58813cbcd90");
        assert_eq!(Names::new(&nets, &real, Some(&lab), &[]).0["br-0123456789ab"], "br-other");
    }

    #[test]
    fn inspect_output_becomes_an_inventory() {
        let json = r#"[
          {"Id": "aaa", "Name": "/web", "State": {"Running": true, "Pid": 42},
           "HostConfig": {"NetworkMode": "default"},
           "NetworkSettings": {"Ports": {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}, {"HostIp": "::", "HostPort": "8080"}], "81/tcp": null},
             "Networks": {"back": {"IPAddress": "10.30.0.50"}, "bridge": {"IPAddress": "172.17.0.2"}}}},
          {"Id": "bbb", "Name": "/joined", "State": {"Running": true, "Pid": 43},
           "HostConfig": {"NetworkMode": "container:aaa"}, "NetworkSettings": {"Ports": {}}},
          {"Id": "ccc", "Name": "/h1", "State": {"Running": true, "Pid": 44},
           "HostConfig": {"NetworkMode": "host"}, "NetworkSettings": {"Ports": {}}},
          {"Id": "ddd", "Name": "/off", "State": {"Running": false, "Pid": 0},
           "HostConfig": {"NetworkMode": "default"}, "NetworkSettings": {"Ports": null}}
        ]"#;
        let parsed: Vec<Inspect> = serde_json::from_str(json).unwrap();
        let (inv, pids) = real_inventory(&parsed);
        assert_eq!(pids, [("web".to_string(), 42)]);
        assert_eq!(
            inv.containers,
            [
                ("web".to_string(), Whereabouts::Own),
                ("joined".to_string(), Whereabouts::Shares("web".into())),
                ("h1".to_string(), Whereabouts::Host),
                ("off".to_string(), Whereabouts::NotRunning),
            ]
        );
        assert_eq!(inv.ports, ["web 80/tcp <- 0.0.0.0:8080", "web 80/tcp <- [::]:8080"]);
        let web: Vec<(String, Ipv4Addr)> = inv.networks["web"].clone();
        assert_eq!(
            web,
            [("back".to_string(), Ipv4Addr::new(10, 30, 0, 50)), ("bridge".into(), Ipv4Addr::new(172, 17, 0, 2))]
        );
        assert_eq!(inv.networks.len(), 1, "only web has networks");
    }

    #[test]
    fn a_unified_diff_shows_changes_with_context() {
        let a = lines("a\nb\nc\nd\ne\nf\ng\nh\ni\nj\nk");
        let b = lines("a\nb\nc\nD\ne\nf\ng\nh\ni\nj\nk\nl");
        assert_eq!(hunks("t", &a, &b, 2), ["@@ t @@", " b", " c", "-d", "+D", " e", " f", "@@ t @@", " j", " k", "+l"]);
        assert!(hunks("t", &a, &a, 3).is_empty());
        // Changes close together share one hunk.
        let c = lines("a\nB\nc\nD\ne");
        assert_eq!(hunks("t", &lines("a\nb\nc\nd\ne"), &c, 1), ["@@ t @@", " a", "-b", "+B", " c", "-d", "+D", " e"]);
        // One side empty: all of the other.
        assert_eq!(hunks("t", &[], &lines("x\ny"), 3), ["@@ t @@", "+x", "+y"]);
    }

    #[test]
    fn worlds_diff_section_by_section() {
        let mut lab = World::default();
        lab.push("iptables-save (host)", lines("*filter\n:FORWARD ACCEPT\nCOMMIT"));
        lab.push("containers", lines("web eth0 172.17.0.2/16"));
        let mut real = World::default();
        real.push("iptables-save (host)", lines("*filter\n:FORWARD DROP\nCOMMIT"));
        real.push("containers", lines("web eth0 172.17.0.2/16"));
        real.push("sysctls", lines("host net.ipv4.ip_forward = 1"));
        assert_eq!(
            diff(&lab, &real),
            [
                "@@ iptables-save (host) @@",
                " *filter",
                "-:FORWARD ACCEPT",
                "+:FORWARD DROP",
                " COMMIT",
                "@@ sysctls @@",
                "+host net.ipv4.ip_forward = 1"
            ]
        );
        assert!(diff(&real, &real).is_empty());
    }

    /// captures c1-default-publish (docker28): `plain` got d2:63:b3:33:cb:c4
    /// on 172.17.0.2, another run another MAC; `mac` asked for 02:00:00:00:00:09.
    #[test]
    fn dockers_random_macs_are_shown_as_random_and_asked_for_ones_as_they_are() {
        let on = [(Ipv4Addr::new(172, 17, 0, 2), 16)];
        let macs = Macs { random: true, given: vec!["02:00:00:00:00:09".into()] };
        assert_eq!(macs.show([0xd2, 0x63, 0xb3, 0x33, 0xcb, 0xc4], &on), "random");
        assert_eq!(macs.show([0x7e, 0x01, 0x02, 0x03, 0x04, 0x05], &on), "random");
        // Asked for by the scenario: compared as it is.
        assert_eq!(macs.show([0x02, 0, 0, 0, 0, 0x09], &on), "02:00:00:00:00:09");
        // Not what GenerateRandomMAC makes: 20.10's rule, multicast, universal.
        assert_eq!(macs.show([0x02, 0x42, 172, 17, 0, 2], &on), "02:42:ac:11:00:02");
        assert_eq!(macs.show([0x03, 0x42, 172, 17, 0, 2], &on), "03:42:ac:11:00:02");
        assert_eq!(macs.show([0x00, 0x16, 0x3e, 0, 0, 1], &on), "00:16:3e:00:00:01");
        // 20.10 derives MACs from addresses: never mapped.
        let docker20 = Macs::default();
        assert_eq!(docker20.show([0xd2, 0x63, 0xb3, 0x33, 0xcb, 0xc4], &on), "d2:63:b3:33:cb:c4");
    }

    /// Routed mode publishes no IPv4 host port: Docker's inspect says
    /// `0.0.0.0:` (captures m7), and so does the lab's inventory.
    #[test]
    fn a_binding_without_a_host_port_reads_as_dockers_does() {
        let mut plan = crate::plan::plan(
            &crate::Scenario::parse("t.toml".into(), "[daemon]\nfirewall = \"docker20\"\n".into()).unwrap(),
        )
        .unwrap();
        let mapping = |ip: &str, port| crate::plan::firewall::PortMapping {
            container: "rt".into(),
            proto: crate::scenario::Proto::Tcp,
            host_ip: ip.parse().unwrap(),
            host_port: port,
            container_ip: Ipv4Addr::new(10, 20, 0, 2),
            container_port: 80,
        };
        plan.port_mappings = vec![mapping("0.0.0.0", 0), mapping("::", 8090)];
        assert_eq!(lab_inventory(&plan).ports, ["rt 80/tcp <- 0.0.0.0:", "rt 80/tcp <- [::]:8090"]);
    }

    #[test]
    fn a_veth_whose_peer_no_container_holds_is_an_orphan() {
        let port = |index, name: &str, master| LinkState { master, ..link(index, name, Some(InfoKind::Veth)) };
        let s = NsState {
            links: vec![
                link(3, "docker0", Some(InfoKind::Bridge)),
                port(4, "veth3564c03", Some(3)),
                port(5, "vethe375a57", Some(3)),
                port(6, "vnet0", Some(3)),
                port(2, "eth0", None),
            ],
            ..NsState::default()
        };
        assert_eq!(orphan_veths(&s, &[4].into()), ["vethe375a57"]);
        assert!(orphan_veths(&s, &[4, 5].into()).is_empty());
    }

    #[test]
    fn carrier_is_settled_when_routes_agree_with_ports() {
        let mut s = NsState::default();
        s.links.push(link(3, "docker0", Some(InfoKind::Bridge)));
        s.routes = vec!["172.17.0.0/16 dev docker0 proto kernel scope link src 172.17.0.1 linkdown".into()];
        assert!(carrier_settled(&s), "no port: linkdown is right");
        let mut port = link(4, "veth1", Some(InfoKind::Veth));
        port.master = Some(3);
        s.links.push(port);
        assert!(!carrier_settled(&s), "a port that is up: linkdown is stale");
        s.routes = vec!["172.17.0.0/16 dev docker0 proto kernel scope link src 172.17.0.1".into()];
        assert!(carrier_settled(&s));
    }
}
