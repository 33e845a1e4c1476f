//! Scenario files: parse, validate, keep spans.
//!
//! This is the first stage of the pipeline (`scenario` → `plan` → `apply` →
//! `probe` → `report`). Loading a file parses every key of format 1
//! (`docs/scenario-format.md`), rejects unknown keys, and checks every
//! cross-reference, so the stages after it work on a [`Scenario`] that makes
//! sense. Values keep their byte span in the file ([`Sp`]), so later stages
//! (the IP allocator in `plan`, say) can still point at the line that caused a
//! Docker error.
//!
//! Why a file, and why so strict: a scenario is what a bug report becomes,
//! and what a CI job keeps. A typo that was silently ignored would test
//! something else than what its author meant, so every mistake is an error
//! at its `path:line:col`, all of them at once, before anything is built.
//! Scenarios built in code ([`build`]) are written as that same text and
//! go through the same checks.

pub mod build;
mod diag;
mod schema;
mod validate;
pub mod values;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
pub use serde_spanned::Spanned as Sp;

pub use diag::{Diagnostic, Diagnostics, Source};
pub use schema::scenario_schema;
pub use validate::container_id;
pub use values::*;

/// A loaded and validated scenario.
#[derive(Debug, Clone, Serialize)]
pub struct Scenario {
    #[serde(skip)]
    pub source: Source,
    /// `name`, or the file stem when the file has none; a run of a file
    /// with `versions` adds `@VERSION` (see [`Scenario::variants`]).
    pub name: String,
    /// The version this scenario runs under, for one run of a file with
    /// top-level `versions`; `None` for a file without them.
    pub version: Option<Firewall>,
    pub spec: Spec,
}

impl Scenario {
    /// Reads, parses and validates a scenario file.
    pub fn load(path: impl AsRef<Path>) -> Result<Scenario, Diagnostics> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| {
            Diagnostics::single(
                Source::new(path.to_path_buf(), String::new()),
                0..0,
                format!("cannot read scenario: {e}"),
            )
        })?;
        Scenario::parse(path.to_path_buf(), text)
    }

    /// Parses and validates scenario text; `path` is only used in messages.
    pub fn parse(path: PathBuf, text: String) -> Result<Scenario, Diagnostics> {
        let source = Source::new(path, text);
        let spec: Spec = toml::from_str(source.text()).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            Diagnostics::single(source.clone(), span, e.message().to_string())
        })?;
        let mut spec = spec;
        let errors = validate::validate_file(&spec);
        if !errors.is_empty() {
            return Err(Diagnostics::new(source, errors));
        }
        validate::fill_flow_expects(&mut spec);
        let name = match &spec.name {
            Some(n) => n.get_ref().clone(),
            // Without a name, the file's stem, made safe for file names.
            None => source
                .path()
                .file_stem()
                .map(|s| {
                    s.to_string_lossy()
                        .chars()
                        .map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '_' })
                        .collect()
                })
                .unwrap_or_else(|| "scenario".into()),
        };
        Ok(Scenario { source, name, version: None, spec })
    }

    /// The runs of this scenario: itself, or for a file with top-level
    /// `versions` one scenario per version, named `NAME@VERSION`, with
    /// `[daemon] firewall` set to that version and each expectation's
    /// `result_by_version` turned into its `result`.
    pub fn variants(&self) -> Vec<Scenario> {
        match &self.spec.versions {
            None => vec![self.clone()],
            Some(vs) => vs
                .get_ref()
                .iter()
                .map(|v| Scenario {
                    source: self.source.clone(),
                    name: format!("{}@{}", self.name, v.get_ref()),
                    version: Some(*v.get_ref()),
                    spec: validate::under_version(&self.spec, v),
                })
                .collect(),
        }
    }

    /// This scenario as it runs under `version`, whatever its own
    /// `[daemon] firewall` or `versions` say (`bridgelab run --versions`),
    /// named `NAME@VERSION`. The file is read again and checked under that
    /// version, so a key `version` lacks is an error here (`... (under
    /// docker1)`). An expectation whose `result_by_version` does not name
    /// `version` has no result under it: its verdict is shown, not checked.
    pub fn under(&self, version: Firewall) -> Result<Scenario, Diagnostics> {
        let source = self.source.clone();
        let mut spec: Spec = toml::from_str(source.text())
            .map_err(|e| Diagnostics::single(source.clone(), e.span().unwrap_or(0..0), e.message().to_string()))?;
        let at = match (&spec.versions, &spec.daemon.firewall) {
            (Some(v), _) => v.span(),
            (None, Some(f)) => f.span(),
            (None, None) => 0..0,
        };
        spec.daemon.firewall = None;
        let mut spec = validate::under_version(&spec, &Sp::new(at, version));
        let errors: Vec<Diagnostic> = validate::validate(&spec)
            .into_iter()
            .map(|d| Diagnostic::new(d.span.clone(), format!("{} (under {version})", d.message)))
            .collect();
        if !errors.is_empty() {
            return Err(Diagnostics::new(source, errors));
        }
        validate::fill_flow_expects(&mut spec);
        let base = self.name.split('@').next().unwrap_or(&self.name);
        Ok(Scenario { source, name: format!("{base}@{version}"), version: Some(version), spec })
    }

    /// A diagnostic about this scenario, pointing at `span`.
    pub fn error(&self, span: std::ops::Range<usize>, message: impl Into<String>) -> Diagnostics {
        Diagnostics::single(self.source.clone(), span, message.into())
    }

    /// Containers that exist at start (the `[[container]]` tables), in file order.
    pub fn containers(&self) -> &[Container] {
        &self.spec.containers
    }

    /// The `[[container]]` tables, then the containers `run` steps create.
    pub fn all_containers(&self) -> impl Iterator<Item = &Container> {
        let runs = self.spec.steps.iter().filter_map(|s| match s.container.as_ref().map(|c| c.get_ref()) {
            Some(StepContainer::Inline(c)) => Some(&**c),
            _ => None,
        });
        self.spec.containers.iter().chain(runs)
    }

    /// Every node name an expectation may use: containers, `host`, `external`.
    pub fn node_names(&self) -> BTreeSet<&str> {
        validate::node_names(&self.spec)
    }
}

/// Where a byte range of a string value's contents lies in the file, for
/// a mistake found inside the string (a rule of `[host] rules`). `value`
/// is the span of the string as written, quotes included. Exact for a
/// string without escapes; otherwise the whole string.
pub fn span_in_string(
    text: &str,
    value: std::ops::Range<usize>,
    inner: std::ops::Range<usize>,
) -> std::ops::Range<usize> {
    let raw = text.get(value.clone()).unwrap_or_default();
    let delim = ["\"\"\"", "'''", "\"", "'"].into_iter().find(|d| raw.starts_with(d)).unwrap_or("");
    let mut start = value.start + delim.len();
    if delim.len() == 3 {
        // A newline right after the opening quotes is not part of the string.
        if text[start..].starts_with("\r\n") {
            start += 2;
        } else if text[start..].starts_with('\n') {
            start += 1;
        }
    }
    let end = value.end.saturating_sub(delim.len()).max(start);
    if delim.starts_with('\'') || !text[start..end].contains('\\') {
        return (start + inner.start).min(end)..(start + inner.end).min(end);
    }
    value
}

/// The file's contents, key for key.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    #[schemars(with = "Option<String>")]
    pub name: Option<Sp<String>>,
    pub about: Option<String>,
    /// Top-level `versions`: the scenario runs once per listed Docker
    /// layout (see [`Scenario::variants`]).
    #[schemars(with = "Option<Vec<Firewall>>")]
    pub versions: Option<Sp<Vec<Sp<Firewall>>>>,
    #[serde(default)]
    pub daemon: Daemon,
    #[serde(default)]
    pub host: Host,
    #[serde(default, rename = "network")]
    pub networks: Vec<Network>,
    #[serde(default, rename = "container")]
    pub containers: Vec<Container>,
    /// `[[machine]]`: nodes that are not Docker's.
    #[serde(default, rename = "machine")]
    pub machines: Vec<Machine>,
    #[serde(default)]
    pub external: External,
    #[serde(default)]
    pub probe: ProbeSettings,
    #[serde(default)]
    pub snapshot: SnapshotSettings,
    #[serde(default, rename = "expect")]
    pub expects: Vec<Expect>,
    #[serde(default, rename = "step")]
    pub steps: Vec<Step>,
}

fn yes() -> bool {
    true
}

/// `[daemon]`: the Docker daemon's flags. `None` means the flag was not given.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Daemon {
    #[schemars(with = "Option<String>")]
    pub bridge: Option<Sp<String>>,
    #[schemars(with = "Option<IfaceAddr>")]
    pub bip: Option<Sp<IfaceAddr>>,
    #[schemars(with = "Option<Cidr>")]
    pub fixed_cidr: Option<Sp<Cidr>>,
    #[schemars(with = "Option<bool>")]
    pub iptables: Option<Sp<bool>>,
    #[schemars(with = "Option<bool>")]
    pub ip_forward: Option<Sp<bool>>,
    #[schemars(with = "Option<bool>")]
    pub icc: Option<Sp<bool>>,
    #[schemars(with = "Option<Ip>")]
    pub ip: Option<Sp<Ip>>,
    #[schemars(with = "Option<bool>")]
    pub ip_masq: Option<Sp<bool>>,
    #[schemars(with = "Option<u32>")]
    pub mtu: Option<Sp<u32>>,
    #[schemars(with = "Option<bool>")]
    pub userland_proxy: Option<Sp<bool>>,
    #[schemars(with = "Option<Firewall>")]
    pub firewall: Option<Sp<Firewall>>,
    #[schemars(with = "Option<Backend>")]
    pub backend: Option<Sp<Backend>>,
    /// `--allow-direct-routing` (Docker 28.2+): no raw-table drops of
    /// packets routed straight to a container's address.
    #[schemars(with = "Option<bool>")]
    pub allow_direct_routing: Option<Sp<bool>>,
    /// `--ip-forward-no-drop` (Docker 28+): the FORWARD policy stays ACCEPT
    /// when the daemon turns forwarding on.
    #[schemars(with = "Option<bool>")]
    pub ip_forward_no_drop: Option<Sp<bool>>,
}

/// Docker's default bridge name.
pub const DEFAULT_BRIDGE: &str = "docker0";
/// Docker's default MTU.
pub const DEFAULT_MTU: u32 = 1500;

fn flag(v: &Option<Sp<bool>>, default: bool) -> bool {
    v.as_ref().map(|s| *s.get_ref()).unwrap_or(default)
}

impl Daemon {
    pub fn bridge_name(&self) -> &str {
        self.bridge.as_ref().map(|b| b.get_ref().as_str()).unwrap_or(DEFAULT_BRIDGE)
    }
    /// `bridge = "none"`: networking disabled.
    pub fn networking_disabled(&self) -> bool {
        self.bridge_name() == "none"
    }
    pub fn iptables(&self) -> bool {
        flag(&self.iptables, true)
    }
    pub fn ip_forward(&self) -> bool {
        flag(&self.ip_forward, true)
    }
    pub fn icc(&self) -> bool {
        flag(&self.icc, true)
    }
    pub fn ip_masq(&self) -> bool {
        flag(&self.ip_masq, true)
    }
    pub fn default_ip(&self) -> std::net::Ipv4Addr {
        self.ip.as_ref().map(|i| i.get_ref().0).unwrap_or(std::net::Ipv4Addr::UNSPECIFIED)
    }
    pub fn mtu(&self) -> u32 {
        self.mtu.as_ref().map(|m| *m.get_ref()).unwrap_or(DEFAULT_MTU)
    }
    pub fn allow_direct_routing(&self) -> bool {
        flag(&self.allow_direct_routing, false)
    }
    pub fn ip_forward_no_drop(&self) -> bool {
        flag(&self.ip_forward_no_drop, false)
    }
    pub fn firewall(&self) -> Firewall {
        self.firewall.as_ref().map(|f| *f.get_ref()).unwrap_or_default()
    }
}

/// `[host]`: what the host had before the daemon started.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Host {
    #[serde(default)]
    #[schemars(with = "Vec<Ip>")]
    pub nameservers: Vec<Sp<Ip>>,
    #[serde(default)]
    #[schemars(with = "Vec<Cidr>")]
    pub routes: Vec<Sp<Cidr>>,
    #[serde(default, rename = "bridge")]
    pub bridges: Vec<HostBridge>,
    /// Whether `net.ipv4.ip_forward` was already 1 before the daemon
    /// started (Docker 20.10 sets the FORWARD policy to DROP only when it
    /// turns forwarding on itself).
    #[schemars(with = "Option<bool>")]
    pub forwarding: Option<Sp<bool>>,
    /// Host sysctls as they were before the daemon started, written in
    /// the host namespace before Docker writes its own.
    #[serde(default)]
    pub sysctls: Sysctls,
    /// `iptables-restore` text in force before the daemon started.
    #[schemars(with = "Option<String>")]
    pub rules: Option<Sp<String>>,
}

/// `[[machine]]`: a node Docker does not own, on the host's uplink (a LAN
/// neighbour) or on a `[[host.bridge]]` (a VM or LXD guest).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Machine {
    #[schemars(with = "String")]
    pub name: Sp<String>,
    /// `"uplink"` or the name of a `[[host.bridge]]`.
    #[schemars(with = "String")]
    pub attach: Sp<String>,
    /// Its address with the prefix of its subnet.
    #[schemars(with = "IfaceAddr")]
    pub address: Sp<IfaceAddr>,
    /// Its default route's next hop.
    #[schemars(with = "Option<Ip>")]
    pub gateway: Option<Sp<Ip>>,
    /// Subnets it routes via the host's address on its segment.
    #[serde(default)]
    #[schemars(with = "Vec<IfaceAddr>")]
    pub routes: Vec<Sp<IfaceAddr>>,
    #[serde(default)]
    #[schemars(with = "Vec<ListenSpec>")]
    pub listen: Vec<Sp<ListenSpec>>,
}

/// Where `attach = "uplink"` puts a machine.
pub const UPLINK: &str = "uplink";

impl Machine {
    pub fn name(&self) -> &str {
        self.name.get_ref()
    }
    pub fn on_uplink(&self) -> bool {
        self.attach.get_ref() == UPLINK
    }
}

/// `[[host.bridge]]`: a bridge that exists before the daemon starts.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HostBridge {
    #[schemars(with = "String")]
    pub name: Sp<String>,
    #[schemars(with = "Option<IfaceAddr>")]
    pub address: Option<Sp<IfaceAddr>>,
}

/// `[[network]]`: a user-defined bridge network.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Network {
    #[schemars(with = "String")]
    pub name: Sp<String>,
    #[schemars(with = "Option<Cidr>")]
    pub subnet: Option<Sp<Cidr>>,
    #[schemars(with = "Option<Ip>")]
    pub gateway: Option<Sp<Ip>>,
    #[schemars(with = "Option<Cidr>")]
    pub ip_range: Option<Sp<Cidr>>,
    #[serde(default)]
    pub internal: bool,
    #[serde(default = "yes")]
    pub icc: bool,
    #[serde(default = "yes")]
    pub ip_masq: bool,
    #[schemars(with = "Option<u32>")]
    pub mtu: Option<Sp<u32>>,
    #[schemars(with = "Option<String>")]
    pub bridge: Option<Sp<String>>,
    /// `com.docker.network.bridge.host_binding_ipv4`: the default host
    /// address of ports published on this network.
    #[schemars(with = "Option<Ip>")]
    pub host_ip: Option<Sp<Ip>>,
    /// `com.docker.network.bridge.gateway_mode_ipv4` (Docker 28+).
    #[schemars(with = "Option<GatewayMode>")]
    pub gateway_mode: Option<Sp<GatewayMode>>,
}

impl Network {
    pub fn gateway_mode(&self) -> GatewayMode {
        self.gateway_mode.as_ref().map(|g| *g.get_ref()).unwrap_or_default()
    }
}

/// `[[container]]`, and the inline container of a `run` step.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Container {
    #[schemars(with = "String")]
    pub name: Sp<String>,
    #[schemars(with = "Option<NetworkList>")]
    pub network: Option<Sp<NetworkList>>,
    #[schemars(with = "Option<Ip>")]
    pub ip: Option<Sp<Ip>>,
    /// Requested addresses on the networks after the first
    /// (`docker network connect --ip`), by network name.
    #[serde(default)]
    #[schemars(with = "std::collections::BTreeMap<String, Ip>")]
    pub ips: std::collections::BTreeMap<String, Sp<Ip>>,
    #[schemars(with = "Option<RequestedMac>")]
    pub mac: Option<Sp<RequestedMac>>,
    #[serde(default)]
    #[schemars(with = "Vec<PortSpec>")]
    pub publish: Vec<Sp<PortSpec>>,
    /// `-P`: every exposed port without a `publish` goes on a dynamic host port.
    #[serde(default)]
    pub publish_all: bool,
    #[serde(default)]
    #[schemars(with = "Vec<ExposeSpec>")]
    pub expose: Vec<Sp<ExposeSpec>>,
    #[serde(default)]
    #[schemars(with = "Vec<LinkSpec>")]
    pub links: Vec<Sp<LinkSpec>>,
    #[serde(default)]
    #[schemars(with = "Vec<ListenSpec>")]
    pub listen: Vec<Sp<ListenSpec>>,
    #[serde(default = "yes")]
    pub running: bool,
}

impl Container {
    pub fn name(&self) -> &str {
        self.name.get_ref()
    }
    /// The networks this container joins, in order; `bridge` when unset.
    pub fn networks(&self) -> Vec<NetworkMode> {
        match &self.network {
            Some(n) => n.get_ref().0.clone(),
            None => vec![NetworkMode::Bridge],
        }
    }
    /// Span of the `network` value, or of the name when it is unset.
    pub fn network_span(&self) -> std::ops::Range<usize> {
        self.network.as_ref().map(|n| n.span()).unwrap_or_else(|| self.name.span())
    }
}

/// `[external]`: the node behind the host's uplink.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct External {
    #[serde(default)]
    #[schemars(with = "Vec<ListenSpec>")]
    pub listen: Vec<Sp<ListenSpec>>,
    /// Subnets the external node routes via the host's uplink address, as
    /// a LAN neighbour with a static route does. Written as subnets:
    /// validation refuses host bits.
    #[serde(default)]
    #[schemars(with = "Vec<IfaceAddr>")]
    pub routes: Vec<Sp<IfaceAddr>>,
}

/// `[probe]`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProbeSettings {
    #[serde(default = "default_timeout")]
    #[schemars(with = "u64")]
    pub timeout_ms: Sp<u64>,
    #[serde(default = "default_retries")]
    pub retries: u32,
}

fn default_timeout() -> Sp<u64> {
    Sp::new(0..0, 200)
}
fn default_retries() -> u32 {
    1
}

impl Default for ProbeSettings {
    fn default() -> Self {
        ProbeSettings { timeout_ms: default_timeout(), retries: default_retries() }
    }
}

/// `[snapshot]`: which tables a snapshot holds.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SnapshotSettings {
    #[serde(default = "yes")]
    pub iptables: bool,
    #[serde(default = "yes")]
    pub routes: bool,
    #[serde(default)]
    pub addresses: bool,
    #[serde(default)]
    pub links: bool,
}

impl Default for SnapshotSettings {
    fn default() -> Self {
        SnapshotSettings { iptables: true, routes: true, addresses: false, links: false }
    }
}

/// `[[expect]]`: what must happen on the wire.
///
/// In a loaded [`Scenario`], `from` and `probe` are always there (an
/// expectation on a `flow` gets those of its flow step), and so is `result`
/// in each of [`Scenario::variants`]: use [`Expect::from`], [`Expect::probe`]
/// and [`Expect::result`].
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    #[schemars(with = "Option<String>")]
    pub from: Option<Sp<String>>,
    #[schemars(with = "String")]
    pub to: Sp<String>,
    #[schemars(with = "Option<ProbeSpec>")]
    pub probe: Option<Sp<ProbeSpec>>,
    #[schemars(with = "Option<Verdict>")]
    pub result: Option<Sp<Verdict>>,
    /// The result under each of the top-level `versions`.
    #[schemars(with = "Option<std::collections::BTreeMap<String, Verdict>>")]
    pub result_by_version: Option<Sp<std::collections::BTreeMap<String, Sp<Verdict>>>>,
    /// The name of a running `flow` step, instead of `from` and `probe`:
    /// where that flow's datagrams arrive now.
    #[schemars(with = "Option<String>")]
    pub flow: Option<Sp<String>>,
    #[schemars(with = "Option<String>")]
    pub source: Option<Sp<String>>,
    /// The `source` under some of the top-level `versions` (a version it
    /// does not name checks no source).
    #[schemars(with = "Option<std::collections::BTreeMap<String, String>>")]
    pub source_by_version: Option<Sp<std::collections::BTreeMap<String, Sp<String>>>>,
    /// `"host"` or `"host@NETWORK"`: send the probe as an Ethernet frame to
    /// that neighbour's MAC on the shared link, whatever the sender's
    /// routes say.
    #[schemars(with = "Option<String>")]
    pub via: Option<Sp<String>>,
    pub name: Option<String>,
}

impl Expect {
    /// The sender (a flow expectation's is its flow's).
    pub fn from(&self) -> &Sp<String> {
        self.from.as_ref().expect("a loaded scenario's expectations have a sender")
    }
    /// The probe (a flow expectation's is its flow's).
    pub fn probe(&self) -> ProbeSpec {
        *self.probe.as_ref().expect("a loaded scenario's expectations have a probe").get_ref()
    }
    /// The result wanted; a file with `versions` has one only in its
    /// [`Scenario::variants`].
    pub fn result(&self) -> Verdict {
        self.wanted().expect("each run of a scenario has a result per expectation")
    }
    /// The result wanted, if any: a run under a version the file's
    /// `result_by_version` does not name ([`Scenario::under`]) has none,
    /// and only shows what happens.
    pub fn wanted(&self) -> Option<Verdict> {
        self.result.as_ref().map(|r| *r.get_ref())
    }
    /// Whether `got` (`None`: the probe could not be carried out) meets
    /// this expectation; with no result wanted, any verdict does.
    pub fn met_by(&self, got: Option<Verdict>) -> bool {
        match self.wanted() {
            Some(want) => got == Some(want),
            None => got.is_some(),
        }
    }
    /// The neighbour `via` names and the network it picks, as written
    /// (`"host@back"` is `("host", Some("back"))`).
    pub fn via(&self) -> Option<(&str, Option<&str>)> {
        self.via.as_ref().map(|v| {
            let v = v.get_ref().as_str();
            match v.split_once('@') {
                Some((node, net)) => (node, Some(net)),
                None => (v, None),
            }
        })
    }
}

/// `[[step]]`: an action after start, with its own expectations.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Step {
    #[serde(rename = "do")]
    #[schemars(with = "StepAction")]
    pub action: Sp<StepAction>,
    #[schemars(with = "Option<StepContainer>")]
    pub container: Option<Sp<StepContainer>>,
    #[schemars(with = "Option<String>")]
    pub network: Option<Sp<String>>,
    /// For `connect`: the address to ask for (`docker network connect --ip`).
    #[schemars(with = "Option<Ip>")]
    pub ip: Option<Sp<Ip>>,
    /// Docker's error for a `start`, `restart` or `run` that is meant to
    /// fail; the daemon rolls the container back and the lab goes on.
    #[schemars(with = "Option<String>")]
    pub fails: Option<Sp<String>>,
    /// Instead of `fails`, in a file with top-level `versions`: Docker's
    /// error under each version that fails the step; under a version it
    /// does not name, the step succeeds.
    #[schemars(with = "Option<std::collections::BTreeMap<String, String>>")]
    pub fails_by_version: Option<Sp<std::collections::BTreeMap<String, Sp<String>>>>,
    /// For `flow`: its name, for `[[expect]] flow = "NAME"`.
    #[schemars(with = "Option<String>")]
    pub name: Option<Sp<String>>,
    /// For `flow`: the sender.
    #[schemars(with = "Option<String>")]
    pub from: Option<Sp<String>>,
    /// For `flow`: the target, as an expectation's `to`.
    #[schemars(with = "Option<String>")]
    pub to: Option<Sp<String>>,
    /// For `flow`: `"udp:PORT"`.
    #[schemars(with = "Option<ProbeSpec>")]
    pub probe: Option<Sp<ProbeSpec>>,
    /// For `flow`: milliseconds between datagrams (default 100).
    #[schemars(with = "Option<u64>")]
    pub interval_ms: Option<Sp<u64>>,
    /// For `sysctl`: the key, its value, and the node (default `host`).
    #[schemars(with = "Option<String>")]
    pub key: Option<Sp<String>>,
    #[schemars(with = "Option<SysctlValue>")]
    pub value: Option<Sp<SysctlValue>>,
    #[schemars(with = "Option<String>")]
    pub node: Option<Sp<String>>,
    /// For `host-rules`: `iptables-restore` text, loaded over the host's
    /// rules; `noflush = true` is `iptables-restore --noflush`.
    #[schemars(with = "Option<String>")]
    pub rules: Option<Sp<String>>,
    #[schemars(with = "Option<bool>")]
    pub noflush: Option<Sp<bool>>,
    #[serde(default, rename = "expect")]
    pub expects: Vec<Expect>,
}

/// A `flow` step's datagram interval when it gives none.
pub const DEFAULT_FLOW_INTERVAL_MS: u64 = 100;

/// A step's `container`: a name, or (for `run`) a whole container table.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum StepContainer {
    Name(String),
    Inline(Box<Container>),
}

impl<'de> Deserialize<'de> for StepContainer {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de;
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = StepContainer;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a container name or a container table")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<StepContainer, E> {
                Ok(StepContainer::Name(s.to_string()))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<StepContainer, A::Error> {
                let c = Container::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(StepContainer::Inline(Box::new(c)))
            }
        }
        d.deserialize_any(V)
    }
}

impl StepContainer {
    pub fn name(&self) -> &str {
        match self {
            StepContainer::Name(n) => n,
            StepContainer::Inline(c) => c.name(),
        }
    }
}

#[cfg(test)]
mod tests;
