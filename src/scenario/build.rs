//! Scenarios built in code.
//!
//! A [`ScenarioBuilder`] writes the TOML a person would write and loads it
//! with [`Scenario::parse`], so a scenario built in code is checked by
//! exactly the rules, and described by exactly the messages, of a file: a
//! mistake is located in the generated text, and [`BuildError`] shows that
//! text with the line marked. [`ScenarioBuilder::to_toml`] gives the text, to
//! save as a file once a test settles.
//!
//! Values that have a type here take it ([`Firewall`], [`Proto`],
//! [`ProbeSpec`], [`Verdict`], [`SnapshotSettings`]); addresses, port
//! mappings and node names are strings as in a file, checked on
//! [`build`](ScenarioBuilder::build).
//!
//! ```
//! use bridgelab::scenario::build::{container, expect, ScenarioBuilder};
//! use bridgelab::scenario::{Firewall, ProbeSpec, Proto, Verdict};
//!
//! let scenario = ScenarioBuilder::new("icc-off")
//!     .about("--icc=false: containers on docker0 cannot reach each other")
//!     .firewall(Firewall::Docker20)
//!     .icc(false)
//!     .container(container("web").listen(Proto::Tcp, 80))
//!     .container(container("client"))
//!     .expect(expect("client", "web", ProbeSpec::Tcp(80), Verdict::Blocked))
//!     .build()?;
//! assert_eq!(scenario.containers().len(), 2);
//! # Ok::<(), bridgelab::scenario::build::BuildError>(())
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use super::Diagnostics;
use super::{Firewall, ProbeSpec, Proto, Scenario, SnapshotSettings, StepAction, Verdict};
use super::{GatewayMode, ListenSpec};

/// A scenario file, built key by key. See the [module docs](self).
///
/// A mistake reads as it would in a file, and shows the text it is in:
///
/// ```
/// use bridgelab::scenario::build::{container, ScenarioBuilder};
///
/// let err = ScenarioBuilder::new("typo").container(container("web").network("backend")).build().unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     "<built>/typo.toml:5:11: network backend not found
/// the scenario as built:
///     1 | name = \"typo\"
///     2 |
///     3 | [[container]]
///     4 | name = \"web\"
/// >   5 | network = \"backend\""
/// );
/// ```
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioBuilder {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    about: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    versions: Vec<Firewall>,
    #[serde(skip_serializing_if = "Option::is_none")]
    daemon: Option<Daemon>,
    #[serde(skip_serializing_if = "Option::is_none")]
    host: Option<Host>,
    #[serde(rename = "network", skip_serializing_if = "Vec::is_empty")]
    networks: Vec<NetworkBuilder>,
    #[serde(rename = "container", skip_serializing_if = "Vec::is_empty")]
    containers: Vec<ContainerBuilder>,
    #[serde(skip_serializing_if = "Option::is_none")]
    external: Option<External>,
    #[serde(skip_serializing_if = "Option::is_none")]
    probe: Option<Probe>,
    #[serde(skip_serializing_if = "Option::is_none")]
    snapshot: Option<SnapshotSettings>,
    #[serde(rename = "expect", skip_serializing_if = "Vec::is_empty")]
    expects: Vec<ExpectBuilder>,
    #[serde(rename = "step", skip_serializing_if = "Vec::is_empty")]
    steps: Vec<StepBuilder>,
}

#[derive(Debug, Clone, Default, Serialize)]
struct Daemon {
    #[serde(skip_serializing_if = "Option::is_none")]
    firewall: Option<Firewall>,
    #[serde(skip_serializing_if = "Option::is_none")]
    backend: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bridge: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fixed_cidr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iptables: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ip_forward: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    icc: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ip_masq: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mtu: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    userland_proxy: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    allow_direct_routing: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ip_forward_no_drop: Option<bool>,
}

#[derive(Debug, Clone, Default, Serialize)]
struct Host {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    nameservers: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    routes: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    forwarding: Option<bool>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    sysctls: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rules: Option<String>,
    #[serde(rename = "bridge", skip_serializing_if = "Vec::is_empty")]
    bridges: Vec<HostBridge>,
}

#[derive(Debug, Clone, Serialize)]
struct HostBridge {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    address: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
struct External {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    listen: Vec<ListenSpec>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    routes: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
struct Probe {
    #[serde(skip_serializing_if = "Option::is_none")]
    timeout_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    retries: Option<u32>,
}

/// Sets an optional key of a sub-table, creating the table.
macro_rules! setter {
    ($(#[$doc:meta])* $fn:ident, $table:ident, $key:ident: $t:ty) => {
        $(#[$doc])*
        pub fn $fn(mut self, value: $t) -> Self {
            self.$table.get_or_insert_with(Default::default).$key = Some(value.into());
            self
        }
    };
}

impl ScenarioBuilder {
    /// A scenario called `name` (letters, digits, `.`, `_`, `-`): Docker 1.6.2
    /// (`docker1`) with its default flags, no containers, no expectations.
    pub fn new(name: impl Into<String>) -> ScenarioBuilder {
        ScenarioBuilder {
            name: name.into(),
            about: None,
            versions: vec![],
            daemon: None,
            host: None,
            networks: vec![],
            containers: vec![],
            external: None,
            probe: None,
            snapshot: None,
            expects: vec![],
            steps: vec![],
        }
    }

    /// `about`: what the scenario shows.
    pub fn about(mut self, about: impl Into<String>) -> Self {
        self.about = Some(about.into());
        self
    }

    /// Top-level `versions`: the scenario runs once per version, each its own
    /// lab ([`Scenario::variants`]); expectations then say their result per
    /// version with [`ExpectBuilder::by_version`].
    pub fn versions(mut self, versions: impl IntoIterator<Item = Firewall>) -> Self {
        self.versions = versions.into_iter().collect();
        self
    }

    setter!(
        /// `[daemon] firewall`: which Docker to imitate.
        firewall, daemon, firewall: Firewall
    );
    setter!(
        /// `[daemon] backend`: `"iptables"` or `"nftables"` (`docker29`).
        backend, daemon, backend: &str
    );
    setter!(
        /// `[daemon] bridge` (`-b`).
        bridge, daemon, bridge: &str
    );
    setter!(
        /// `[daemon] bip`, the bridge's address with prefix.
        bip, daemon, bip: &str
    );
    setter!(
        /// `[daemon] fixed_cidr`.
        fixed_cidr, daemon, fixed_cidr: &str
    );
    setter!(
        /// `[daemon] iptables`.
        iptables, daemon, iptables: bool
    );
    setter!(
        /// `[daemon] ip_forward`.
        ip_forward, daemon, ip_forward: bool
    );
    setter!(
        /// `[daemon] icc`: whether containers on the bridge may talk to each other.
        icc, daemon, icc: bool
    );
    setter!(
        /// `[daemon] ip`: the default host address of published ports.
        default_ip, daemon, ip: &str
    );
    setter!(
        /// `[daemon] ip_masq`.
        ip_masq, daemon, ip_masq: bool
    );
    setter!(
        /// `[daemon] mtu`.
        mtu, daemon, mtu: u32
    );
    setter!(
        /// `[daemon] userland_proxy`.
        userland_proxy, daemon, userland_proxy: bool
    );
    setter!(
        /// `[daemon] allow_direct_routing` (`docker28`, `docker29`).
        allow_direct_routing, daemon, allow_direct_routing: bool
    );
    setter!(
        /// `[daemon] ip_forward_no_drop` (`docker28`, `docker29`).
        ip_forward_no_drop, daemon, ip_forward_no_drop: bool
    );
    setter!(
        /// `[host] forwarding`: `net.ipv4.ip_forward` was 1 before the daemon started.
        host_forwarding, host, forwarding: bool
    );
    setter!(
        /// `[host] rules`: `iptables-restore` text in force before the daemon started.
        host_rules, host, rules: &str
    );

    fn host_mut(&mut self) -> &mut Host {
        self.host.get_or_insert_with(Default::default)
    }

    /// Adds to `[host] nameservers`.
    pub fn host_nameserver(mut self, ip: &str) -> Self {
        self.host_mut().nameservers.push(ip.into());
        self
    }

    /// Adds to `[host] routes`.
    pub fn host_route(mut self, cidr: &str) -> Self {
        self.host_mut().routes.push(cidr.into());
        self
    }

    /// Sets one of `[host] sysctls` (keys are written in name order).
    pub fn host_sysctl(mut self, key: &str, value: impl ToString) -> Self {
        self.host_mut().sysctls.insert(key.into(), value.to_string());
        self
    }

    /// Adds a `[[host.bridge]]`, with an address (with prefix) or none.
    pub fn host_bridge(mut self, name: &str, address: Option<&str>) -> Self {
        self.host_mut().bridges.push(HostBridge { name: name.into(), address: address.map(Into::into) });
        self
    }

    /// Adds a responder to `[external] listen`.
    pub fn external_listen(mut self, proto: Proto, port: u16) -> Self {
        self.external.get_or_insert_with(Default::default).listen.push(ListenSpec { proto, port });
        self
    }

    /// Adds to `[external] routes`: a subnet `external` routes via the host.
    pub fn external_route(mut self, cidr: &str) -> Self {
        self.external.get_or_insert_with(Default::default).routes.push(cidr.into());
        self
    }

    setter!(
        /// `[probe] timeout_ms`: how long silence lasts before a probe counts as blocked.
        probe_timeout_ms, probe, timeout_ms: u64
    );
    setter!(
        /// `[probe] retries`.
        probe_retries, probe, retries: u32
    );

    /// `[snapshot]`: which tables [`RunningLab::snapshot`](crate::apply::RunningLab::snapshot) holds.
    pub fn snapshot(mut self, settings: SnapshotSettings) -> Self {
        self.snapshot = Some(settings);
        self
    }

    /// Adds a `[[network]]` (`docker20` and later).
    pub fn network(mut self, network: NetworkBuilder) -> Self {
        self.networks.push(network);
        self
    }

    /// Adds a `[[container]]`; containers start in the order they are added.
    pub fn container(mut self, container: ContainerBuilder) -> Self {
        self.containers.push(container);
        self
    }

    /// Adds a top-level `[[expect]]`.
    pub fn expect(mut self, expect: ExpectBuilder) -> Self {
        self.expects.push(expect);
        self
    }

    /// Adds a `[[step]]`; steps run in the order they are added.
    pub fn step(mut self, step: StepBuilder) -> Self {
        self.steps.push(step);
        self
    }

    /// The scenario as a TOML file: what [`build`](Self::build) checks.
    pub fn to_toml(&self) -> String {
        // Every field is a string, number, bool, list or table of them:
        // serializing cannot fail.
        toml::to_string(self).expect("a scenario builder serializes to TOML")
    }

    /// The path messages name: `<built>/NAME.toml`.
    fn path(&self) -> PathBuf {
        PathBuf::from(format!("<built>/{}.toml", self.name))
    }

    /// Loads the scenario as [`Scenario::load`] loads a file. A mistake is
    /// [`BuildError`]: located in the generated
    /// text, which the message shows.
    pub fn build(&self) -> Result<Scenario, BuildError> {
        Scenario::parse(self.path(), self.to_toml()).map_err(BuildError)
    }
}

/// A scenario built in code that is wrong: the file's messages, located in
/// the TOML the builder wrote, then that text with numbered lines, `>` at
/// each line a mistake is on.
#[derive(thiserror::Error)]
#[error("{}", shown(.0))]
pub struct BuildError(pub Diagnostics);

/// As `Display`: a test that unwraps a build reads the mistake, not a dump.
impl std::fmt::Debug for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

fn shown(d: &Diagnostics) -> String {
    let lines: Vec<usize> = d.located().iter().map(|(l, _, _)| *l).collect();
    let mut out = format!("{d}\nthe scenario as built:\n");
    for (i, text) in d.source().text().lines().enumerate() {
        let mark = if lines.contains(&(i + 1)) { '>' } else { ' ' };
        let line = format!("{mark}{:4} | {text}", i + 1);
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out.trim_end().to_string()
}

/// `network = ...` of a container: one name, or a list.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
enum Networks {
    One(String),
    Many(Vec<String>),
}

/// A `[[container]]`, or the container of a `run` step. Start with [`container`].
#[derive(Debug, Clone, Serialize)]
pub struct ContainerBuilder {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    network: Option<Networks>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mac: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    publish: Vec<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    publish_all: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    expose: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    links: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    listen: Vec<ListenSpec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    running: Option<bool>,
    // Last: an inline table after the plain values.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    ips: BTreeMap<String, String>,
}

/// A container called `name` on the default network (`bridge`).
pub fn container(name: impl Into<String>) -> ContainerBuilder {
    ContainerBuilder {
        name: name.into(),
        network: None,
        ip: None,
        mac: None,
        publish: vec![],
        publish_all: false,
        expose: vec![],
        links: vec![],
        listen: vec![],
        running: None,
        ips: BTreeMap::new(),
    }
}

impl ContainerBuilder {
    /// `network`: `"bridge"`, `"host"`, `"none"`, `"container:NAME"` or a
    /// `[[network]]` name.
    pub fn network(mut self, network: &str) -> Self {
        self.network = Some(Networks::One(network.into()));
        self
    }
    /// `network = [...]`: run on the first, then connected to the others.
    pub fn networks<S: Into<String>>(mut self, networks: impl IntoIterator<Item = S>) -> Self {
        self.network = Some(Networks::Many(networks.into_iter().map(Into::into).collect()));
        self
    }
    /// `ip`: a requested address on the first network.
    pub fn ip(mut self, ip: &str) -> Self {
        self.ip = Some(ip.into());
        self
    }
    /// `ips`: a requested address on a further network.
    pub fn ip_on(mut self, network: &str, ip: &str) -> Self {
        self.ips.insert(network.into(), ip.into());
        self
    }
    /// `mac`: a requested MAC address.
    pub fn mac(mut self, mac: &str) -> Self {
        self.mac = Some(mac.into());
        self
    }
    /// Adds a `publish` entry in Docker's `-p` form, e.g. `"8080:80"`.
    pub fn publish(mut self, mapping: &str) -> Self {
        self.publish.push(mapping.into());
        self
    }
    /// `publish_all = true` (`-P`).
    pub fn publish_all(mut self) -> Self {
        self.publish_all = true;
        self
    }
    /// Adds an exposed port, e.g. `"5432/tcp"`.
    pub fn expose(mut self, port: &str) -> Self {
        self.expose.push(port.into());
        self
    }
    /// Adds a legacy link, `"db:alias"`.
    pub fn link(mut self, link: &str) -> Self {
        self.links.push(link.into());
        self
    }
    /// Adds a responder inside the container.
    pub fn listen(mut self, proto: Proto, port: u16) -> Self {
        self.listen.push(ListenSpec { proto, port });
        self
    }
    /// `running = false`: created, not started (until a `start` step).
    pub fn stopped(mut self) -> Self {
        self.running = Some(false);
        self
    }
}

/// A `[[network]]`. Start with [`network`].
#[derive(Debug, Clone, Serialize)]
pub struct NetworkBuilder {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    subnet: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    gateway: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ip_range: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    internal: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    icc: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ip_masq: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mtu: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bridge: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    host_ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    gateway_mode: Option<GatewayMode>,
}

/// A user-defined bridge network called `name` (`docker network create`).
pub fn network(name: impl Into<String>) -> NetworkBuilder {
    NetworkBuilder {
        name: name.into(),
        subnet: None,
        gateway: None,
        ip_range: None,
        internal: false,
        icc: None,
        ip_masq: None,
        mtu: None,
        bridge: None,
        host_ip: None,
        gateway_mode: None,
    }
}

impl NetworkBuilder {
    /// `subnet` (`--subnet`).
    pub fn subnet(mut self, cidr: &str) -> Self {
        self.subnet = Some(cidr.into());
        self
    }
    /// `gateway` (`--gateway`).
    pub fn gateway(mut self, ip: &str) -> Self {
        self.gateway = Some(ip.into());
        self
    }
    /// `ip_range` (`--ip-range`).
    pub fn ip_range(mut self, cidr: &str) -> Self {
        self.ip_range = Some(cidr.into());
        self
    }
    /// `internal = true` (`--internal`).
    pub fn internal(mut self) -> Self {
        self.internal = true;
        self
    }
    /// `icc` of this network.
    pub fn icc(mut self, icc: bool) -> Self {
        self.icc = Some(icc);
        self
    }
    /// `ip_masq` of this network.
    pub fn ip_masq(mut self, masq: bool) -> Self {
        self.ip_masq = Some(masq);
        self
    }
    /// `mtu` of this network's veths.
    pub fn mtu(mut self, mtu: u32) -> Self {
        self.mtu = Some(mtu);
        self
    }
    /// `bridge`: the bridge's name.
    pub fn bridge(mut self, name: &str) -> Self {
        self.bridge = Some(name.into());
        self
    }
    /// `host_ip`: the default host address of ports published on it.
    pub fn host_ip(mut self, ip: &str) -> Self {
        self.host_ip = Some(ip.into());
        self
    }
    /// `gateway_mode` (`docker28`, `docker29`).
    pub fn gateway_mode(mut self, mode: GatewayMode) -> Self {
        self.gateway_mode = Some(mode);
        self
    }
}

/// An `[[expect]]` (or `[[step.expect]]`). Start with [`expect`].
#[derive(Debug, Clone, Serialize)]
pub struct ExpectBuilder {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    from: Option<String>,
    to: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    probe: Option<ProbeSpec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<Verdict>,
    #[serde(skip_serializing_if = "Option::is_none")]
    flow: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    via: Option<String>,
    // Inline tables last.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    result_by_version: BTreeMap<String, Verdict>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    source_by_version: BTreeMap<String, String>,
}

/// `from` sends `probe` to `to` and `result` must be the verdict. `from`
/// and `to` are node names (a container, a machine, `"host"`,
/// `"external"`), `to` also `"NAME@NETWORK"` or an IPv4 address.
pub fn expect(from: &str, to: &str, probe: ProbeSpec, result: Verdict) -> ExpectBuilder {
    ExpectBuilder {
        name: None,
        from: Some(from.into()),
        to: to.into(),
        probe: Some(probe),
        result: Some(result),
        flow: None,
        source: None,
        via: None,
        result_by_version: BTreeMap::new(),
        source_by_version: BTreeMap::new(),
    }
}

/// Where the datagrams of the `flow` step called `flow` arrive now: at
/// `to`'s responder, with `result`.
pub fn expect_flow(flow: &str, to: &str, result: Verdict) -> ExpectBuilder {
    ExpectBuilder { from: None, probe: None, flow: Some(flow.into()), ..expect("", to, ProbeSpec::Icmp, result) }
}

impl ExpectBuilder {
    /// `name`: a label for reports.
    pub fn name(mut self, name: &str) -> Self {
        self.name = Some(name.into());
        self
    }
    /// `source`: the address the responder must see (a node name or an IPv4 address).
    pub fn source(mut self, source: &str) -> Self {
        self.source = Some(source.into());
        self
    }
    /// `via`: `"host"` or `"host@NETWORK"`, sent as a frame to the host's MAC.
    pub fn via(mut self, via: &str) -> Self {
        self.via = Some(via.into());
        self
    }
    /// `result_by_version`: the verdict under `version`, in a scenario with
    /// [`versions`](ScenarioBuilder::versions). The first call replaces the
    /// plain `result`.
    pub fn by_version(mut self, version: Firewall, result: Verdict) -> Self {
        self.result = None;
        self.result_by_version.insert(version.to_string(), result);
        self
    }
    /// `source_by_version`: the source under `version`. The first call
    /// replaces the plain `source`.
    pub fn source_by_version(mut self, version: Firewall, source: &str) -> Self {
        self.source = None;
        self.source_by_version.insert(version.to_string(), source.into());
        self
    }
}

/// A step's `container`: a name, or the table of a `run` step.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
enum StepContainer {
    Name(String),
    Inline(Box<ContainerBuilder>),
}

/// A `[[step]]`: what happens after start. Start with one of its
/// constructors ([`StepBuilder::stop`], [`StepBuilder::run`], ...).
#[derive(Debug, Clone, Serialize)]
pub struct StepBuilder {
    #[serde(rename = "do")]
    action: StepAction,
    #[serde(skip_serializing_if = "Option::is_none")]
    network: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fails: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    to: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    probe: Option<ProbeSpec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    interval_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    node: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rules: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    noflush: Option<bool>,
    // Tables last: `[step.container]`, then `[[step.expect]]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    container: Option<StepContainer>,
    #[serde(rename = "expect", skip_serializing_if = "Vec::is_empty")]
    expects: Vec<ExpectBuilder>,
}

impl StepBuilder {
    fn new(action: StepAction) -> StepBuilder {
        StepBuilder {
            action,
            network: None,
            ip: None,
            fails: None,
            name: None,
            from: None,
            to: None,
            probe: None,
            interval_ms: None,
            key: None,
            value: None,
            node: None,
            rules: None,
            noflush: None,
            container: None,
            expects: vec![],
        }
    }
    fn on(action: StepAction, container: &str) -> StepBuilder {
        StepBuilder { container: Some(StepContainer::Name(container.into())), ..StepBuilder::new(action) }
    }
    /// `do = "stop"`.
    pub fn stop(container: &str) -> StepBuilder {
        StepBuilder::on(StepAction::Stop, container)
    }
    /// `do = "start"`.
    pub fn start(container: &str) -> StepBuilder {
        StepBuilder::on(StepAction::Start, container)
    }
    /// `do = "restart"`.
    pub fn restart(container: &str) -> StepBuilder {
        StepBuilder::on(StepAction::Restart, container)
    }
    /// `do = "remove"`.
    pub fn remove(container: &str) -> StepBuilder {
        StepBuilder::on(StepAction::Remove, container)
    }
    /// `do = "run"`: creates and starts a new container.
    pub fn run(container: ContainerBuilder) -> StepBuilder {
        StepBuilder { container: Some(StepContainer::Inline(Box::new(container))), ..StepBuilder::new(StepAction::Run) }
    }
    /// `do = "connect"` (`docker network connect`).
    pub fn connect(container: &str, network: &str) -> StepBuilder {
        StepBuilder { network: Some(network.into()), ..StepBuilder::on(StepAction::Connect, container) }
    }
    /// `do = "disconnect"`.
    pub fn disconnect(container: &str, network: &str) -> StepBuilder {
        StepBuilder { network: Some(network.into()), ..StepBuilder::on(StepAction::Disconnect, container) }
    }
    /// `do = "flush-iptables"`: what a firewall reload does.
    pub fn flush_iptables() -> StepBuilder {
        StepBuilder::new(StepAction::FlushIptables)
    }
    /// `do = "restart-daemon"`.
    pub fn restart_daemon() -> StepBuilder {
        StepBuilder::new(StepAction::RestartDaemon)
    }
    /// `do = "sysctl"`: a user writes `key = value` (on the host unless [`node`](Self::node) says otherwise).
    pub fn sysctl(key: &str, value: impl ToString) -> StepBuilder {
        StepBuilder { key: Some(key.into()), value: Some(value.to_string()), ..StepBuilder::new(StepAction::Sysctl) }
    }
    /// `do = "host-rules"`: `iptables-restore` of `rules` by a user.
    pub fn host_rules(rules: &str) -> StepBuilder {
        StepBuilder { rules: Some(rules.into()), ..StepBuilder::new(StepAction::HostRules) }
    }
    /// `do = "flow"`: a UDP flow called `name` from `from` to `to` on `port`,
    /// running until the lab ends.
    pub fn flow(name: &str, from: &str, to: &str, port: u16) -> StepBuilder {
        StepBuilder {
            name: Some(name.into()),
            from: Some(from.into()),
            to: Some(to.into()),
            probe: Some(ProbeSpec::Udp(port)),
            ..StepBuilder::new(StepAction::Flow)
        }
    }
    /// `ip` of a `connect` step.
    pub fn ip(mut self, ip: &str) -> Self {
        self.ip = Some(ip.into());
        self
    }
    /// `fails`: Docker's error, word for word, for a step meant to fail.
    pub fn fails(mut self, message: &str) -> Self {
        self.fails = Some(message.into());
        self
    }
    /// `node` of a `sysctl` step.
    pub fn node(mut self, node: &str) -> Self {
        self.node = Some(node.into());
        self
    }
    /// `noflush = true` of a `host-rules` step.
    pub fn noflush(mut self) -> Self {
        self.noflush = Some(true);
        self
    }
    /// `interval_ms` of a `flow` step.
    pub fn interval_ms(mut self, ms: u64) -> Self {
        self.interval_ms = Some(ms);
        self
    }
    /// Adds a `[[step.expect]]`, checked after this step.
    pub fn expect(mut self, expect: ExpectBuilder) -> Self {
        self.expects.push(expect);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// scenarios/icc-off.toml, in code.
    fn icc_off() -> ScenarioBuilder {
        ScenarioBuilder::new("icc-off")
            .about(
                "--icc=false: containers on docker0 must not reach each other, while the\n\
                 way out through the host stays open.",
            )
            .icc(false)
            .container(container("web").listen(Proto::Tcp, 80))
            .container(container("client"))
            .expect(expect("client", "web", ProbeSpec::Tcp(80), Verdict::Blocked))
            .expect(expect("client", "external", ProbeSpec::Icmp, Verdict::Reachable))
    }

    /// The builder writes what a person would: the shipped file, key for key.
    #[test]
    fn writes_the_file_a_person_would() {
        let built = icc_off().build().unwrap();
        let file = Scenario::load(concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/icc-off.toml")).unwrap();
        assert_eq!(built.name, file.name);
        assert_eq!(serde_json::to_value(&built.spec).unwrap(), serde_json::to_value(&file.spec).unwrap());
        assert!(icc_off().to_toml().contains("[daemon]\nicc = false\n"), "{}", icc_off().to_toml());
    }

    /// A mistake is the file's message, located in the generated text,
    /// and the error shows that text with the line marked.
    #[test]
    fn mistakes_point_into_the_generated_text() {
        let b = icc_off().container(container("db").publish("80:99999"));
        let err = b.build().unwrap_err();
        let d = &err.0;
        let (line, _, msg) = d.located()[0];
        let text = b.to_toml();
        let bad = text.lines().nth(line - 1).unwrap();
        assert!(bad.contains("80:99999"), "line {line} is {bad:?}; {msg}");
        let shown = err.to_string();
        assert!(shown.starts_with(&format!("<built>/icc-off.toml:{line}:")), "{shown}");
        assert!(shown.contains(&format!(">{line:4} | {bad}")), "{shown}");
        // The same mistake in a file has the same words.
        let file = Scenario::parse("f.toml".into(), text).unwrap_err();
        assert_eq!(file.located()[0].2, msg);
    }

    /// Steps, inline containers, networks and per-version results all
    /// come out as the format's tables.
    #[test]
    fn steps_networks_and_versions_load() {
        let s = ScenarioBuilder::new("steps")
            .versions([Firewall::Docker20, Firewall::Docker28])
            .network(network("back").subnet("10.20.0.0/24").internal())
            .container(container("web").networks(["bridge", "back"]).ip_on("back", "10.20.0.9").listen(Proto::Udp, 53))
            .step(StepBuilder::run(container("late").network("back")).expect(expect(
                "late",
                "web@back",
                ProbeSpec::Udp(53),
                Verdict::Reachable,
            )))
            .step(
                StepBuilder::stop("web").expect(
                    expect("late", "10.20.0.9", ProbeSpec::Icmp, Verdict::Blocked)
                        .by_version(Firewall::Docker20, Verdict::Blocked)
                        .by_version(Firewall::Docker28, Verdict::Blocked),
                ),
            )
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.variants().len(), 2);
        assert_eq!(s.spec.steps.len(), 2);
        assert_eq!(s.spec.steps[0].container.as_ref().unwrap().get_ref().name(), "late");
        assert_eq!(s.spec.steps[1].expects[0].result_by_version.as_ref().unwrap().get_ref().len(), 2);
    }
}
