//! The simulator: what Docker would build for a scenario, computed without
//! I/O or privileges.
//!
//! [`plan`] runs the daemon's start-up logic (bridge address, IP allocator)
//! and each container's start (address, MAC, veth) and describes the result
//! as plain data: one [`NodePlan`] per network namespace with its links,
//! addresses, routes and sysctls. `apply` builds exactly that, and
//! `apply::verify` compares what the kernel reports with it, so the plan is
//! both the recipe and the expected result.
//!
//! Why pure: Docker's decisions (which pool, which address, which rule in
//! which order, which error in which words) are the interesting part, and
//! here they are plain functions of the scenario. They are unit-tested
//! without root and in milliseconds, `bridgelab plan` answers "what would
//! Docker do" on any machine, and a Docker error (`port is already
//! allocated`) is found before anything is built, located in the file.
//! Each Docker version's logic lives in its own module ([`firewall`],
//! [`libnetwork`]), ported from its source, with the source's names.

mod byname;
mod docker1;
pub mod firewall;
mod host;
pub mod ipallocator;
pub mod libnetwork;
pub mod limits;
pub mod portallocator;
mod render;

use std::fmt;
use std::net::Ipv4Addr;

use ipnetwork::Ipv4Network;
use serde::Serialize;

use crate::scenario::{Diagnostics, Firewall, IfaceAddr, MacAddr, NetworkMode, Scenario};

// The lab's fixed uplink and `[host] routes` link are facts of the
// scenario format (validation keeps lab addresses clear of them).
pub use crate::scenario::{HOST_DUMMY, UPLINK_EXTERNAL, UPLINK_HOST};
/// The sysctl through which br_netfilter hands bridged frames to iptables.
pub const BR_NETFILTER_SYSCTL: &str = "net.bridge.bridge-nf-call-iptables";
pub use host::{SEGMENT_BRIDGE, UPLINK_SEGMENT};

pub(crate) use crate::scenario::ipnet;

/// Everything the lab will contain.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub scenario: String,
    pub firewall: Firewall,
    /// The daemon's bridge; `None` with `bridge = "none"`.
    pub bridge: Option<BridgePlan>,
    /// User-defined networks (`[[network]]`, libnetwork layouts), in
    /// creation order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<NetworkPlan>,
    /// Every container of the scenario, in file order.
    pub containers: Vec<ContainerPlan>,
    /// Every namespace: `host`, `external`, then containers with their own.
    pub nodes: Vec<NodePlan>,
    /// Docker's iptables rules in the host namespace, as `iptables-save`
    /// prints them; empty with `iptables = false`.
    pub iptables: firewall::Ruleset,
    /// Published ports: each has iptables rules (unless `iptables = false`)
    /// and a userland proxy listening in the host namespace.
    pub port_mappings: Vec<firewall::PortMapping>,
    /// Published ports nothing relays (`--userland-proxy=false`, and a
    /// routed network's IPv4 side, with host port 0): Docker holds them
    /// (`docker inspect` lists them) and only the rules carry them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub bindings: Vec<firewall::PortMapping>,
    /// The lab after each `[[step]]`, in order.
    pub steps: Vec<StepPlan>,
    /// In a step's plan: the container addresses whose conntrack entries
    /// the daemon deleted during the step (libnetwork's
    /// `RevokeExternalConnectivity` → `clearEndpointConnections`: every
    /// entry whose reply tuple has the address). Docker 1.6.2 deletes none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conntrack_cleared: Vec<Ipv4Addr>,
    /// In a step's plan: the UDP entries the daemon deleted by port during
    /// the step (Docker 23+'s `ProgramExternalConnectivity` →
    /// `clearConntrackEntries` → `DeleteConntrackEntriesByPort`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conntrack_cleared_udp: Vec<UdpConntrackFilter>,
    /// `[[machine]]`s: nodes Docker does not own.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub machines: Vec<MachinePlan>,
}

/// UDP conntrack entries by their original direction: destination port,
/// and destination address when given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct UdpConntrackFilter {
    pub dst_port: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dst_ip: Option<Ipv4Addr>,
}

/// A `[[machine]]`: its node has its name.
#[derive(Debug, Clone, Serialize)]
pub struct MachinePlan {
    pub name: String,
    /// `uplink` or the `[[host.bridge]]` it is on.
    pub attach: String,
    pub address: IfaceAddr,
}

/// What a `[[step]]` leaves behind.
#[derive(Debug, Clone, Serialize)]
pub struct StepPlan {
    /// What happened, e.g. `stop web`.
    pub action: String,
    /// The whole lab after it (its own `steps` is empty).
    pub after: Plan,
}

/// The daemon's bridge and where its address came from.
#[derive(Debug, Clone, Serialize)]
pub struct BridgePlan {
    pub name: String,
    /// The bridge's address: the containers' gateway, with the network's
    /// prefix; the network itself when it has no gateway (libnetwork's
    /// `AddressIPv4`).
    pub address: IfaceAddr,
    /// The bridge has no IPv4 address (gateway mode `isolated`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub unaddressed: bool,
    /// The range containers get addresses from (`--fixed-cidr`, or the network).
    pub pool: Ipv4Network,
    /// How the address was chosen, for people reading the plan.
    pub origin: String,
}

/// A user-defined network and its bridge.
#[derive(Debug, Clone, Serialize)]
pub struct NetworkPlan {
    pub name: String,
    pub internal: bool,
    pub bridge: BridgePlan,
}

/// One container's network as Docker sets it up.
#[derive(Debug, Clone)]
pub struct ContainerPlan {
    pub name: String,
    pub mode: NetworkMode,
    pub running: bool,
    /// The node whose namespace the container's processes live in:
    /// itself, `host`, or another container (`container:` mode).
    /// `None` for a container that is not running.
    pub netns: Option<String>,
    /// Its interfaces on bridges while it runs (`eth0`, `eth1`, … in the
    /// order they joined); Docker 1.6.2 has at most one.
    pub endpoints: Vec<Endpoint>,
}

/// JSON keeps `endpoint` (the first interface, as before networks came)
/// next to the list of all of them.
impl Serialize for ContainerPlan {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("ContainerPlan", 6)?;
        st.serialize_field("name", &self.name)?;
        st.serialize_field("mode", &self.mode)?;
        st.serialize_field("running", &self.running)?;
        st.serialize_field("netns", &self.netns)?;
        st.serialize_field("endpoint", &self.endpoint())?;
        st.serialize_field("endpoints", &self.endpoints)?;
        st.end()
    }
}

impl ContainerPlan {
    /// Its first interface, `eth0` while that exists.
    pub fn endpoint(&self) -> Option<&Endpoint> {
        self.endpoints.first()
    }
    /// Its interface on a network (`bridge` is the daemon's default one).
    pub fn endpoint_on(&self, network: &str) -> Option<&Endpoint> {
        self.endpoints.iter().find(|e| e.network == network)
    }
    /// The container's IPv4 address on its first network.
    pub fn ip(&self) -> Option<Ipv4Addr> {
        self.endpoint().map(|e| e.address.ip())
    }
}

/// A container's interface on a bridge (a sandbox's endpoint, in Docker's words).
#[derive(Debug, Clone, Serialize)]
pub struct Endpoint {
    /// The network's name: `bridge` for the daemon's default one.
    pub network: String,
    /// The interface in the container: `eth0`, `eth1`, …
    pub iface: String,
    pub bridge: String,
    /// Host end of the veth pair, attached to the bridge.
    pub host_veth: String,
    pub address: IfaceAddr,
    /// None on an isolated network.
    pub gateway: Option<Ipv4Addr>,
    pub mac: MacAddr,
    pub mtu: u32,
}

/// One network namespace.
#[derive(Debug, Clone, Serialize)]
pub struct NodePlan {
    pub name: String,
    pub links: Vec<LinkPlan>,
    /// Main-table IPv4 routes, kernel-made connected routes included.
    pub routes: Vec<RoutePlan>,
    pub sysctls: Vec<Sysctl>,
}

impl NodePlan {
    pub fn link(&self, name: &str) -> Option<&LinkPlan> {
        self.links.iter().find(|l| l.name == name)
    }
}

/// An interface in a namespace.
#[derive(Debug, Clone, Serialize)]
pub struct LinkPlan {
    pub name: String,
    pub kind: LinkKind,
    /// `None`: whatever the kernel picks.
    pub mac: Option<MacAddr>,
    /// `None`: not set; `mtu_expected` is what the kernel will show.
    pub mtu: Option<u32>,
    pub mtu_expected: u32,
    pub master: Option<String>,
    pub addresses: Vec<IfaceAddr>,
    pub up: bool,
    /// A bridge port in hairpin mode (Docker 20.10 with the userland proxy off).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub hairpin: bool,
}

/// What kind of interface, and for a veth, where its peer lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "type")]
pub enum LinkKind {
    Loopback,
    Bridge,
    /// One end of a veth pair. The end with `create = true` is created with
    /// its peer already inside the peer's namespace.
    Veth {
        peer_node: String,
        peer: String,
        create: bool,
    },
}

/// A route, shaped like a line of `ip route`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct RoutePlan {
    /// `None` for the default route.
    pub dst: Option<Ipv4Network>,
    pub via: Option<Ipv4Addr>,
    pub dev: String,
    /// Made by the kernel for an address (`proto kernel scope link src …`).
    pub connected: Option<Ipv4Addr>,
    /// `scope link` on a static route without a gateway.
    pub scope_link: bool,
    /// The device has no carrier (a bridge without active ports).
    pub linkdown: bool,
}

impl fmt::Display for RoutePlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.dst {
            None => f.write_str("default")?,
            Some(d) => write!(f, "{}/{}", d.network(), d.prefix())?,
        }
        if let Some(via) = self.via {
            write!(f, " via {via}")?;
        }
        write!(f, " dev {}", self.dev)?;
        if let Some(src) = self.connected {
            write!(f, " proto kernel scope link src {src}")?;
        } else if self.scope_link {
            f.write_str(" scope link")?;
        }
        if self.linkdown {
            f.write_str(" linkdown")?;
        }
        Ok(())
    }
}

impl RoutePlan {
    /// The order `bridgelab` prints routes in: default first, then by
    /// destination, so plan and kernel dumps compare line by line.
    pub fn sort_key(&self) -> (u32, u8, String) {
        match self.dst {
            None => (0, 0, self.dev.clone()),
            Some(d) => (u32::from(d.network()), d.prefix(), self.dev.clone()),
        }
    }
}

/// A sysctl the lab sets (or relies on) in a namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sysctl {
    /// Dotted name, e.g. `net.ipv4.ip_forward`.
    pub key: String,
    pub value: String,
    /// `false`: the namespace already has this value; apply only checks it.
    pub write: bool,
}

impl Plan {
    pub fn node(&self, name: &str) -> Option<&NodePlan> {
        self.nodes.iter().find(|n| n.name == name)
    }
    pub fn container(&self, name: &str) -> Option<&ContainerPlan> {
        self.containers.iter().find(|c| c.name == name)
    }
    pub fn machine(&self, name: &str) -> Option<&MachinePlan> {
        self.machines.iter().find(|m| m.name == name)
    }

    /// The address of a container namespace's `eth0`: where whoever lives
    /// in it is reached. A `container:` container shares it, and keeps it
    /// when the container that made the namespace stops.
    pub fn netns_address(&self, ns: &str) -> Option<Ipv4Addr> {
        if ns == "host" || ns == "external" {
            return None;
        }
        let node = self.node(ns)?;
        node.link("eth0")
            .or_else(|| node.links.iter().find(|l| l.name.starts_with("eth")))?
            .addresses
            .first()
            .map(|a| a.ip())
    }

    /// The networks a namespace's interfaces are on (a namespace's
    /// containers share them).
    pub fn netns_networks(&self, ns: &str) -> Vec<String> {
        self.containers
            .iter()
            .filter(|c| c.netns.as_deref() == Some(ns))
            .flat_map(|c| c.endpoints.iter().map(|e| e.network.clone()))
            .collect()
    }

    /// A network by name: `bridge` is the daemon's default one.
    pub fn network_bridge(&self, network: &str) -> Option<&BridgePlan> {
        if network == "bridge" {
            return self.bridge.as_ref();
        }
        self.networks.iter().find(|n| n.name == network).map(|n| &n.bridge)
    }

    /// The gateway of a container namespace's default route: the bridge's
    /// address, which is the host as the namespace sees it.
    pub fn netns_gateway(&self, ns: &str) -> Option<Ipv4Addr> {
        if ns == "host" || ns == "external" {
            return None;
        }
        self.node(ns)?.routes.iter().find(|r| r.dst.is_none()).and_then(|r| r.via)
    }
}

/// Computes the plan for a scenario: Docker's own errors (no free range, a
/// bad `--fixed-cidr`, no address left) come back pointing into the file.
pub fn plan(scenario: &Scenario) -> Result<Plan, Diagnostics> {
    let daemon = &scenario.spec.daemon;
    let libnetwork = libnetwork::version::of(daemon.firewall());
    match daemon.firewall() {
        Firewall::Docker1 => {}
        _ if libnetwork.is_some() => {}
        other => {
            let span = daemon.firewall.as_ref().map(|f| f.span()).unwrap_or(0..0);
            return Err(scenario.error(
                span,
                format!(
                    "firewall = \"{other}\" is not implemented yet; \"docker1\" (Docker 1.6.2), \"docker20\" (Docker 20.10.24), \"docker28\" (28.5.2) and \"docker29\" (29.7.2) are"
                ),
            ));
        }
    }
    // `[host] rules` are the ground both models build on (and take
    // without a second look): text that does not load stops here.
    if let Err((at, msg)) = host::rules_before(scenario) {
        return Err(scenario.error(at, msg));
    }
    match libnetwork {
        Some(v) => libnetwork::plan(scenario, v),
        None => docker1::plan(scenario),
    }
}

#[cfg(test)]
mod host_tests;
#[cfg(test)]
mod tests;
