//! Typed values of a scenario file.
//!
//! Every string-shaped value is parsed into its own type at load time, so an
//! invalid address, port spec or probe is a `path:line:col` error pointing at
//! the value itself, and later stages never see an unparsed string.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use ipnetwork::Ipv4Network;
use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

/// Implements `Deserialize` through `FromStr` and `Serialize` through `Display`.
macro_rules! string_value {
    ($($t:ty),* $(,)?) => {$(
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(de::Error::custom)
            }
        }
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
    )*};
}

string_value!(
    Cidr,
    IfaceAddr,
    Ip,
    MacAddr,
    RequestedMac,
    NetworkMode,
    PortSpec,
    ListenSpec,
    ProbeSpec,
    Verdict,
    StepAction,
    Firewall,
    Backend,
    GatewayMode,
    LinkSpec,
    ExposeSpec,
);

/// An IPv4 network in CIDR notation; host bits are cleared as Go's
/// `net.ParseCIDR` does (`"172.17.42.1/16"` means `172.17.0.0/16`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr(pub Ipv4Network);

impl FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let n = IfaceAddr::from_str(s).map_err(|_| format!("invalid CIDR address: {s}"))?;
        Ok(Cidr(n.network()))
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.0.network(), self.0.prefix())
    }
}

/// An interface address with its prefix, as `--bip` takes it
/// (`"172.17.42.1/16"`: address 172.17.42.1 on network 172.17.0.0/16).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IfaceAddr(pub Ipv4Network);

impl IfaceAddr {
    pub fn ip(self) -> Ipv4Addr {
        self.0.ip()
    }
    pub fn prefix(self) -> u8 {
        self.0.prefix()
    }
    /// The network this address belongs to, host bits cleared.
    pub fn network(self) -> Ipv4Network {
        Ipv4Network::new(self.0.network(), self.0.prefix()).expect("prefix already valid")
    }
}

impl FromStr for IfaceAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("invalid CIDR address: {s}");
        let (ip, prefix) = s.split_once('/').ok_or_else(bad)?;
        let ip: Ipv4Addr = ip.parse().map_err(|_| bad())?;
        // Go's ParseCIDR wants a plain decimal prefix: no sign, no spaces.
        if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) || prefix.len() > 2 {
            return Err(bad());
        }
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        Ipv4Network::new(ip, prefix).map(IfaceAddr).map_err(|_| bad())
    }
}

impl fmt::Display for IfaceAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.0.ip(), self.0.prefix())
    }
}

/// A plain IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ip(pub Ipv4Addr);

impl FromStr for Ip {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        s.parse().map(Ip).map_err(|_| format!("invalid IP address: {s}"))
    }
}

impl fmt::Display for Ip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// An Ethernet address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// Docker 1.x's container MAC: `02:42:` followed by the four IPv4 bytes
    /// (`generateMacAddr` in the bridge driver).
    pub fn from_ipv4(ip: Ipv4Addr) -> MacAddr {
        let o = ip.octets();
        MacAddr([0x02, 0x42, o[0], o[1], o[2], o[3]])
    }
}

impl FromStr for MacAddr {
    type Err = String;
    /// Six bytes in any form Go's `net.ParseMAC` reads, unicast only.
    fn from_str(s: &str) -> Result<Self, String> {
        match go_parse_mac(s) {
            Some(hw) if hw.len() == 6 && hw[0] & 1 == 0 => Ok(MacAddr(hw.try_into().expect("six bytes"))),
            Some(hw) if hw.len() == 6 => Err(format!("{s} is a multicast mac address, not usable on an interface")),
            _ => Err(format!("{s} is not a valid mac address")),
        }
    }
}

/// Go 1.4's `net.ParseMAC` (Docker 1.6.2 was built with Go 1.4.2):
/// `xx:xx:…`, `xx-xx-…` or `xxxx.xxxx.…`, for 6, 8 or 20 bytes, one
/// separator throughout, hex digits in either case.
pub fn go_parse_mac(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    // xtoi2: two hex digits, then (when there is more) the separator.
    let xtoi2 = |at: usize, sep: Option<u8>| -> Option<u8> {
        let digits = b.get(at..at + 2)?;
        if let (Some(sep), Some(&next)) = (sep, b.get(at + 2)) {
            if next != sep {
                return None;
            }
        }
        let hex = std::str::from_utf8(digits).ok().filter(|d| d.bytes().all(|c| c.is_ascii_hexdigit()))?;
        u8::from_str_radix(hex, 16).ok()
    };
    if b.len() < 14 {
        return None;
    }
    let n_ok = |n: usize| matches!(n, 6 | 8 | 20);
    if b[2] == b':' || b[2] == b'-' {
        if !(b.len() + 1).is_multiple_of(3) || !n_ok((b.len() + 1) / 3) {
            return None;
        }
        (0..(b.len() + 1) / 3).map(|i| xtoi2(i * 3, Some(b[2]))).collect()
    } else if b[4] == b'.' {
        if !(b.len() + 1).is_multiple_of(5) || !n_ok(2 * (b.len() + 1) / 5) {
            return None;
        }
        let mut hw = Vec::new();
        for x in (0..b.len()).step_by(5) {
            hw.push(xtoi2(x, None)?);
            hw.push(xtoi2(x + 2, Some(b[4]))?);
        }
        Some(hw)
    } else {
        None
    }
}

/// Go's `HardwareAddr.String()`: lower-case hex bytes joined by `:`.
fn hardware_addr_string(hw: &[u8]) -> String {
    hw.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// A container's `mac` (Docker's `--mac-address`), as Docker 1.6.2 takes
/// it: `docker run` accepts what `net.ParseMAC` reads once spaces are
/// trimmed (`opts.ValidateMACAddress`), while the bridge driver's
/// `Allocate` parses the value as given and, when that fails, quietly
/// falls back to the generated `02:42` MAC.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RequestedMac {
    raw: String,
    /// What `Allocate` got from `net.ParseMAC`: 6, 8 or 20 bytes.
    hw: Option<Vec<u8>>,
}

impl RequestedMac {
    /// The address `Allocate` takes, normalised as Go prints it
    /// (`02-42-0A-00-00-D2` becomes `02:42:0a:00:00:d2`); `None` when it
    /// falls back to the generated MAC.
    pub fn allocated(&self) -> Option<String> {
        self.hw.as_deref().map(hardware_addr_string)
    }

    /// What lands on the interface: libcontainer's `NetworkSetMacAddress`
    /// copies the first six bytes of a longer (EUI-64, InfiniBand) address.
    pub fn interface_mac(&self) -> Option<MacAddr> {
        let hw = self.hw.as_deref()?;
        Some(MacAddr(hw[..6].try_into().expect("at least six bytes")))
    }

    /// `NetworkSetMacAddress` refuses a multicast address when the
    /// container's interface is set up.
    pub fn is_multicast(&self) -> bool {
        self.hw.as_ref().is_some_and(|hw| hw[0] & 1 == 1)
    }
}

impl FromStr for RequestedMac {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        // runconfig.Parse: "%s is not a valid mac address", with the value as given.
        go_parse_mac(s.trim()).ok_or_else(|| format!("{s} is not a valid mac address"))?;
        Ok(RequestedMac { raw: s.to_string(), hw: go_parse_mac(s) })
    }
}

impl fmt::Display for RequestedMac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5])
    }
}

/// A container's `network` entry (Docker's `--net`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum NetworkMode {
    /// The daemon's default bridge (`--net=bridge`).
    Bridge,
    /// The host's network namespace (`--net=host`).
    Host,
    /// Only a loopback interface (`--net=none`).
    None,
    /// Share another container's namespace (`--net=container:<name>`).
    Container(String),
    /// A user-defined network from `[[network]]`.
    Named(String),
}

impl FromStr for NetworkMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "bridge" | "default" => NetworkMode::Bridge,
            "host" => NetworkMode::Host,
            "none" => NetworkMode::None,
            _ => match s.strip_prefix("container:") {
                Some("") => return Err("--net: invalid net mode: invalid container format container:<name|id>".into()),
                Some(name) => NetworkMode::Container(name.to_string()),
                None if s.is_empty() => return Err("network name must not be empty".into()),
                None => NetworkMode::Named(s.to_string()),
            },
        })
    }
}

impl fmt::Display for NetworkMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetworkMode::Bridge => f.write_str("bridge"),
            NetworkMode::Host => f.write_str("host"),
            NetworkMode::None => f.write_str("none"),
            NetworkMode::Container(c) => write!(f, "container:{c}"),
            NetworkMode::Named(n) => f.write_str(n),
        }
    }
}

/// `network = "host"` or `network = ["a", "b"]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct NetworkList(pub Vec<NetworkMode>);

impl<'de> Deserialize<'de> for NetworkList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = NetworkList;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a network name or a list of network names")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<NetworkList, E> {
                s.parse().map(|m| NetworkList(vec![m])).map_err(E::custom)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<NetworkList, A::Error> {
                let mut v = Vec::new();
                while let Some(m) = seq.next_element::<NetworkMode>()? {
                    v.push(m);
                }
                if v.is_empty() {
                    return Err(de::Error::custom("network list must not be empty"));
                }
                Ok(NetworkList(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// Transport protocol of a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        })
    }
}

impl FromStr for Proto {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Ok(Proto::Tcp),
            "udp" => Ok(Proto::Udp),
            _ => Err(format!("Invalid proto: {s}")),
        }
    }
}

/// An inclusive port range; a single port is a range of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct PortRange {
    pub start: u16,
    pub end: u16,
}

impl PortRange {
    pub fn len(self) -> u32 {
        u32::from(self.end) - u32::from(self.start) + 1
    }
    pub fn is_empty(self) -> bool {
        false
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.start == self.end {
            write!(f, "{}", self.start)
        } else {
            write!(f, "{}-{}", self.start, self.end)
        }
    }
}

/// Docker's `parsers.ParsePortRange`: `"80"` or `"8000-8010"`.
fn parse_port_range(s: &str) -> Option<PortRange> {
    let port = |p: &str| -> Option<u16> {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        p.parse().ok()
    };
    match s.split_once('-') {
        None => port(s).map(|p| PortRange { start: p, end: p }),
        Some((a, b)) => {
            let (start, end) = (port(a)?, port(b)?);
            (end >= start).then_some(PortRange { start, end })
        }
    }
}

/// One `-p` argument in Docker's syntax (`nat.ParsePortSpecs`):
/// `[ip:][hostPort:]containerPort[/proto]`, ports may be ranges.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PortSpec {
    pub host_ip: Option<Ipv4Addr>,
    /// `None`: a port from the dynamic range.
    pub host_ports: Option<PortRange>,
    pub container_ports: PortRange,
    pub proto: Proto,
}

impl FromStr for PortSpec {
    type Err = String;
    fn from_str(raw: &str) -> Result<Self, String> {
        let (rest, proto) = match raw.rfind('/') {
            Some(i) => (&raw[..i], &raw[i + 1..]),
            None => (raw, "tcp"),
        };
        // Docker pads the spec to "ip:hostPort:containerPort".
        let parts: Vec<&str> = rest.split(':').collect();
        let (ip, host, container) = match parts.as_slice() {
            [c] => ("", "", *c),
            [h, c] => ("", *h, *c),
            [ip, h, c] => (*ip, *h, *c),
            _ => return Err(format!("Invalid format {rest}")),
        };
        let host_ip = if ip.is_empty() {
            None
        } else {
            Some(ip.parse::<Ipv4Addr>().map_err(|_| format!("Invalid ip address: {ip}"))?)
        };
        if container.is_empty() {
            return Err(format!("No port specified: {rest}<empty>"));
        }
        let container_ports = parse_port_range(container)
            .filter(|r| r.start > 0)
            .ok_or_else(|| format!("Invalid containerPort: {container}"))?;
        let host_ports = if host.is_empty() {
            None
        } else {
            Some(parse_port_range(host).ok_or_else(|| format!("Invalid hostPort: {host}"))?)
        };
        if let Some(h) = host_ports {
            if h.len() != container_ports.len() {
                return Err(format!("Invalid ranges specified for container and host Ports: {container} and {host}"));
            }
        }
        let proto = proto.parse()?;
        Ok(PortSpec { host_ip, host_ports, container_ports, proto })
    }
}

impl fmt::Display for PortSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(ip) = self.host_ip {
            write!(f, "{ip}:")?;
            if self.host_ports.is_none() {
                f.write_str(":")?;
            }
        }
        if let Some(h) = self.host_ports {
            write!(f, "{h}:")?;
        }
        write!(f, "{}/{}", self.container_ports, self.proto)
    }
}

/// An exposed port: `"5432"` or `"5432/tcp"`, ranges allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExposeSpec {
    pub ports: PortRange,
    pub proto: Proto,
}

impl FromStr for ExposeSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (p, proto) = s.split_once('/').unwrap_or((s, "tcp"));
        let ports = parse_port_range(p).ok_or_else(|| format!("Invalid range format for --expose: {s}"))?;
        Ok(ExposeSpec { ports, proto: proto.parse()? })
    }
}

impl fmt::Display for ExposeSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.ports, self.proto)
    }
}

/// A legacy link, `"db:alias"` or `"db"` (alias = name).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LinkSpec {
    pub container: String,
    pub alias: String,
}

impl FromStr for LinkSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (name, alias) = s.split_once(':').unwrap_or((s, s));
        if name.is_empty() || alias.is_empty() || alias.contains(':') {
            return Err(format!("Invalid link format: {s}, expected <name>:<alias>"));
        }
        Ok(LinkSpec { container: name.to_string(), alias: alias.to_string() })
    }
}

impl fmt::Display for LinkSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.container, self.alias)
    }
}

/// A responder: `"tcp:80"`, `"udp:53"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListenSpec {
    pub proto: Proto,
    pub port: u16,
}

impl FromStr for ListenSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("invalid listener {s:?}: expected \"tcp:PORT\" or \"udp:PORT\"");
        let (proto, port) = s.split_once(':').ok_or_else(bad)?;
        let proto = proto.parse().map_err(|_| bad())?;
        let port: u16 = port.parse().map_err(|_| bad())?;
        if port == 0 {
            return Err(bad());
        }
        Ok(ListenSpec { proto, port })
    }
}

impl fmt::Display for ListenSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.proto, self.port)
    }
}

/// What an expectation sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProbeSpec {
    Icmp,
    Tcp(u16),
    Udp(u16),
}

impl FromStr for ProbeSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "icmp" {
            return Ok(ProbeSpec::Icmp);
        }
        let l: ListenSpec =
            s.parse().map_err(|_| format!("invalid probe {s:?}: expected \"icmp\", \"tcp:PORT\" or \"udp:PORT\""))?;
        Ok(match l.proto {
            Proto::Tcp => ProbeSpec::Tcp(l.port),
            Proto::Udp => ProbeSpec::Udp(l.port),
        })
    }
}

impl fmt::Display for ProbeSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProbeSpec::Icmp => f.write_str("icmp"),
            ProbeSpec::Tcp(p) => write!(f, "tcp:{p}"),
            ProbeSpec::Udp(p) => write!(f, "udp:{p}"),
        }
    }
}

/// The outcome an expectation wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    Reachable,
    Refused,
    Blocked,
}

impl FromStr for Verdict {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "reachable" => Ok(Verdict::Reachable),
            "refused" => Ok(Verdict::Refused),
            "blocked" => Ok(Verdict::Blocked),
            _ => Err(format!("invalid result {s:?}: expected \"reachable\", \"refused\" or \"blocked\"")),
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Reachable => "reachable",
            Verdict::Refused => "refused",
            Verdict::Blocked => "blocked",
        })
    }
}

/// What a `[[step]]` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StepAction {
    Connect,
    Disconnect,
    Stop,
    Start,
    Restart,
    Remove,
    Run,
    FlushIptables,
    RestartDaemon,
    Sysctl,
    HostRules,
    /// A UDP flow that keeps running over the following steps.
    Flow,
}

const STEP_ACTIONS: [(&str, StepAction); 12] = [
    ("connect", StepAction::Connect),
    ("disconnect", StepAction::Disconnect),
    ("stop", StepAction::Stop),
    ("start", StepAction::Start),
    ("restart", StepAction::Restart),
    ("remove", StepAction::Remove),
    ("run", StepAction::Run),
    ("flush-iptables", StepAction::FlushIptables),
    ("restart-daemon", StepAction::RestartDaemon),
    ("sysctl", StepAction::Sysctl),
    ("host-rules", StepAction::HostRules),
    ("flow", StepAction::Flow),
];

impl StepAction {
    /// Whether the step names an existing container in `container`.
    pub fn needs_container(self) -> bool {
        !matches!(
            self,
            StepAction::FlushIptables
                | StepAction::RestartDaemon
                | StepAction::Sysctl
                | StepAction::HostRules
                | StepAction::Flow
        )
    }
    pub fn needs_network(self) -> bool {
        matches!(self, StepAction::Connect | StepAction::Disconnect)
    }
}

impl FromStr for StepAction {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        STEP_ACTIONS.iter().find(|(n, _)| *n == s).map(|(_, a)| *a).ok_or_else(|| {
            let names: Vec<&str> = STEP_ACTIONS.iter().map(|(n, _)| *n).collect();
            format!("unknown step {s:?}: expected one of {}", names.join(", "))
        })
    }
}

impl fmt::Display for StepAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = STEP_ACTIONS.iter().find(|(_, a)| a == self).map(|(n, _)| *n).unwrap_or("?");
        f.write_str(name)
    }
}

/// Which Docker's iptables layout to imitate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Firewall {
    /// Docker 1.6.2's `daemon/networkdriver`.
    #[default]
    Docker1,
    /// libnetwork's bridge driver, Docker 17.06–26.
    Docker20,
    /// Docker 28.5.2's layout (libnetwork's `iptabler`).
    Docker28,
    /// Docker 29.7.2's layout (`backend = "iptables"`: its `iptabler`; `"nftables"`: its `nftabler`).
    Docker29,
}

impl FromStr for Firewall {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "docker1" => Ok(Firewall::Docker1),
            "docker20" => Ok(Firewall::Docker20),
            "docker28" => Ok(Firewall::Docker28),
            "docker29" => Ok(Firewall::Docker29),
            _ => {
                Err(format!("unknown firewall {s:?}: expected \"docker1\", \"docker20\", \"docker28\" or \"docker29\""))
            }
        }
    }
}

impl fmt::Display for Firewall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Firewall::Docker1 => "docker1",
            Firewall::Docker20 => "docker20",
            Firewall::Docker28 => "docker28",
            Firewall::Docker29 => "docker29",
        })
    }
}

/// `[[network]] gateway_mode`: `com.docker.network.bridge.gateway_mode_ipv4`
/// (Docker 28: bridge_linux.go `newGwMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum GatewayMode {
    #[default]
    Nat,
    NatUnprotected,
    Routed,
    Isolated,
}

impl FromStr for GatewayMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "nat" => Ok(GatewayMode::Nat),
            "nat-unprotected" => Ok(GatewayMode::NatUnprotected),
            "routed" => Ok(GatewayMode::Routed),
            "isolated" => Ok(GatewayMode::Isolated),
            _ => Err(format!(
                "unknown gateway_mode {s:?}: expected \"nat\", \"nat-unprotected\", \"routed\" or \"isolated\""
            )),
        }
    }
}

impl fmt::Display for GatewayMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GatewayMode::Nat => "nat",
            GatewayMode::NatUnprotected => "nat-unprotected",
            GatewayMode::Routed => "routed",
            GatewayMode::Isolated => "isolated",
        })
    }
}

/// Which rule tool installs the firewall.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Backend {
    #[default]
    Iptables,
    Nftables,
}

impl FromStr for Backend {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "iptables" => Ok(Backend::Iptables),
            "nftables" => Ok(Backend::Nftables),
            _ => Err(format!("unknown backend {s:?}: expected \"iptables\" or \"nftables\"")),
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Iptables => "iptables",
            Backend::Nftables => "nftables",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("80", None, None, (80, 80), Proto::Tcp)]
    #[case("8080:80", None, Some((8080, 8080)), (80, 80), Proto::Tcp)]
    #[case("8080:80/udp", None, Some((8080, 8080)), (80, 80), Proto::Udp)]
    #[case("127.0.0.1:8080:80", Some("127.0.0.1"), Some((8080, 8080)), (80, 80), Proto::Tcp)]
    #[case("127.0.0.1::80", Some("127.0.0.1"), None, (80, 80), Proto::Tcp)]
    #[case("8000-8001:80-81", None, Some((8000, 8001)), (80, 81), Proto::Tcp)]
    fn port_specs_parse_like_docker(
        #[case] raw: &str,
        #[case] ip: Option<&str>,
        #[case] host: Option<(u16, u16)>,
        #[case] container: (u16, u16),
        #[case] proto: Proto,
    ) {
        let p: PortSpec = raw.parse().unwrap();
        assert_eq!(p.host_ip, ip.map(|i| i.parse().unwrap()));
        assert_eq!(p.host_ports, host.map(|(start, end)| PortRange { start, end }));
        assert_eq!(p.container_ports, PortRange { start: container.0, end: container.1 });
        assert_eq!(p.proto, proto);
        // Display round-trips through the parser.
        assert_eq!(p.to_string().parse::<PortSpec>().unwrap(), p);
    }

    #[rstest]
    #[case("8000-8002:80-81", "Invalid ranges specified for container and host Ports: 80-81 and 8000-8002")]
    #[case("70000", "Invalid containerPort: 70000")]
    #[case("8080:0", "Invalid containerPort: 0")]
    #[case("x:80", "Invalid hostPort: x")]
    #[case("80/sctp", "Invalid proto: sctp")]
    #[case("1.2.3:80:80", "Invalid ip address: 1.2.3")]
    #[case("90-80", "Invalid containerPort: 90-80")]
    fn port_spec_errors_use_dockers_words(#[case] raw: &str, #[case] msg: &str) {
        assert_eq!(raw.parse::<PortSpec>().unwrap_err(), msg);
    }

    #[test]
    fn cidr_clears_host_bits_and_bip_keeps_them() {
        let c: Cidr = "172.17.42.1/16".parse().unwrap();
        assert_eq!(c.to_string(), "172.17.0.0/16");
        let b: IfaceAddr = "172.17.42.1/16".parse().unwrap();
        assert_eq!(b.to_string(), "172.17.42.1/16");
        assert_eq!(b.network().to_string(), "172.17.0.0/16");
        assert!("172.17.0.0".parse::<Cidr>().is_err());
        assert!("172.17.0.0/33".parse::<Cidr>().is_err());
        assert!("172.17.0.0/+8".parse::<Cidr>().is_err());
    }

    #[rstest]
    #[case("02:42:ac:11:00:02", Some(&[2, 0x42, 0xac, 0x11, 0, 2][..]))]
    #[case("02-42-AC-11-00-02", Some(&[2, 0x42, 0xac, 0x11, 0, 2][..]))]
    #[case("0242.ac11.0002", Some(&[2, 0x42, 0xac, 0x11, 0, 2][..]))]
    #[case("02:42:ac:11:00:02:03:04", Some(&[2, 0x42, 0xac, 0x11, 0, 2, 3, 4][..]))]
    #[case("02:42:ac:11:00", None)] // 5 bytes
    #[case("02:42:ac:11:00:02:03", None)] // 7 bytes
    #[case("02:42-ac:11:00:02", None)] // one separator throughout
    #[case("0242.ac11-0002", None)]
    #[case("02:42:ac:11:00:0g", None)]
    #[case("024:2a:c1:10:00:2x", None)]
    #[case("0242ac110002", None)] // no bare form in Go 1.4
    #[case("02:42:ac:11:00:é", None)]
    fn macs_parse_as_go_1_4_does(#[case] s: &str, #[case] want: Option<&[u8]>) {
        assert_eq!(go_parse_mac(s).as_deref(), want);
    }

    #[test]
    fn a_requested_mac_keeps_what_docker_keeps() {
        let m: RequestedMac = "02:42:AC:11:00:02:ff:fe".parse().unwrap();
        assert_eq!(m.allocated().unwrap(), "02:42:ac:11:00:02:ff:fe");
        assert_eq!(m.interface_mac().unwrap().to_string(), "02:42:ac:11:00:02");
        assert_eq!(m.to_string(), "02:42:AC:11:00:02:ff:fe");
        assert!("01:00:5e:00:00:01".parse::<RequestedMac>().unwrap().is_multicast());
        let spaced: RequestedMac = "02:42:ac:11:00:02 ".parse().unwrap();
        assert_eq!(spaced.interface_mac(), None);
        assert_eq!("nope".parse::<RequestedMac>().unwrap_err(), "nope is not a valid mac address");
    }

    #[test]
    fn mac_from_ip_is_dockers() {
        assert_eq!(MacAddr::from_ipv4("172.17.0.2".parse().unwrap()).to_string(), "02:42:ac:11:00:02");
        assert!("01:00:00:00:00:00".parse::<MacAddr>().is_err());
        assert!("02:42:ac:11:00".parse::<MacAddr>().is_err());
    }
}

/// A sysctl's value as a file writes it: `0`, `1` or a string such as
/// `"40000 40100"`; kept as the text that goes into `/proc/sys`, with
/// runs of blanks as one tab, as the kernel prints a vector.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SysctlValue(pub String);

impl SysctlValue {
    pub fn new(s: &str) -> SysctlValue {
        SysctlValue(s.split_whitespace().collect::<Vec<_>>().join("\t"))
    }
}

impl fmt::Display for SysctlValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SysctlValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = SysctlValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a sysctl value: a number or a string")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<SysctlValue, E> {
                Ok(SysctlValue(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<SysctlValue, E> {
                Ok(SysctlValue(v.to_string()))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<SysctlValue, E> {
                if v.trim().is_empty() {
                    return Err(E::custom("an empty sysctl value"));
                }
                Ok(SysctlValue::new(v))
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for SysctlValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// `[host] sysctls`: keys and values in the file's order (the order they
/// are written in).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Sysctls(pub Vec<(Sp<String>, Sp<SysctlValue>)>);

impl<'de> Deserialize<'de> for Sysctls {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = Sysctls;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table of sysctls: { \"net.ipv4.ip_forward\" = 1 }")
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Sysctls, A::Error> {
                let mut v = Vec::new();
                while let Some((k, val)) = map.next_entry::<Sp<String>, Sp<SysctlValue>>()? {
                    v.push((k, val));
                }
                Ok(Sysctls(v))
            }
        }
        d.deserialize_map(V)
    }
}

use super::Sp;

/// A network constant (checked when compiled).
pub(crate) const fn ipnet(ip: Ipv4Addr, prefix: u8) -> Ipv4Network {
    match Ipv4Network::new_checked(ip, prefix) {
        Some(n) => n,
        None => panic!("bad constant"),
    }
}

/// The host's uplink address in every lab; the external node is its
/// default gateway.
pub const UPLINK_HOST: IfaceAddr = IfaceAddr(ipnet(Ipv4Addr::new(198, 51, 100, 1), 24));
/// The external node's address on the uplink.
pub const UPLINK_EXTERNAL: IfaceAddr = IfaceAddr(ipnet(Ipv4Addr::new(198, 51, 100, 2), 24));
/// Link that carries `[host] routes` in the host namespace (a port-less bridge).
pub const HOST_DUMMY: &str = "dummy0";
