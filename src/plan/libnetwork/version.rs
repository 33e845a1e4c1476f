//! What differs between the Docker versions that run libnetwork, as data.
//!
//! The model in this module (controller, network, endpoint, sandbox, IPAM,
//! port allocator) is one; a [`Version`] says where a release of Docker
//! departs from it: its default address pools, how it makes MACs, which
//! sysctls it writes and when, its firewall layout, and the words of its
//! messages. Docker 20.10.24 (Debian 12's `docker.io`) is the first; later
//! releases are further values of the same type.

use std::net::Ipv4Addr;

use ipnetwork::Ipv4Network;

use crate::scenario::Firewall;

/// How a container's interface gets its MAC when the scenario gives none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerMac {
    /// `netutils.GenerateMACFromIP`: `02:42` and the four IPv4 bytes.
    FromIp,
    /// `netutils.GenerateRandomMAC` (bridge driver `CreateEndpoint`, 28):
    /// random, stable in bridgelab per scenario, container and network.
    Random,
}

/// Which UDP conntrack entries `ProgramExternalConnectivity` deletes once
/// the ports are mapped (`clearConntrackEntries`, moby#44742, Docker 23+),
/// besides those of the endpoint's address: `DeleteConntrackEntriesByPort`,
/// one filter per published UDP binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClearUdpOnProgram {
    /// 28 (libnetwork/iptables/conntrack.go): original destination port =
    /// the binding's host port, any address.
    HostPort,
    /// 29 (daemon/libnetwork/iptables/conntrack.go): `port.Port`, the
    /// binding's container port, and the host address when the binding
    /// names one.
    ContainerPortAtHostIp,
}

/// How a release's bridge driver maps an endpoint's port bindings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortMapper {
    /// 20.10's `portmapper.MapRange`, one host address at a time: the
    /// allocator (one table per address), the rules, then the proxy (or a
    /// dummy listener) binds; its errors are Go's `listen tcp4 …` words.
    PerAddress,
    /// 28's `bindHostPorts` (bridge port_mapping_linux.go): bindings that
    /// differ only in host address (`needSamePort`, adjacent after
    /// `sortAndNormPBs`) get one port from one `RequestPortsInRange`; the
    /// daemon binds each socket (`SO_REUSEADDR`, so sockets not yet
    /// listening do not clash), adds the rules, then listens on the TCP
    /// ones (`failed to bind host port for …`, `failed to listen on TCP
    /// socket: …`). A failed dynamic attempt is retried up to 10 times.
    SamePortPerGroup,
}

/// Which firewaller a release's bridge driver makes (`newFirewaller`).
#[derive(Debug, Clone, Copy)]
pub enum FirewallerKind {
    /// 20.10's rules behind the trait (`firewall/docker20.rs`).
    Docker20,
    /// moby's `iptabler` of a release (`firewall/iptabler.rs`).
    Iptabler(&'static crate::plan::firewall::iptabler::Release),
}

/// One Docker release that runs libnetwork.
#[derive(Debug)]
pub struct Version {
    /// The `firewall` value that selects it.
    pub firewall: Firewall,
    /// For messages: "Docker 20.10.24".
    pub release: &'static str,
    /// `ipamutils.localScopeDefaultNetworks`: each base is split into
    /// networks of the given prefix length, in order. The default bridge
    /// takes the first that is free; user networks without a subnet take
    /// them round-robin.
    pub local_pools: &'static [(Ipv4Addr, u8, u8)],
    pub container_mac: ContainerMac,
    /// The first two bytes of a bridge's random MAC (20.10's
    /// `GenerateRandomMAC` keeps `02:42`; the other four are random, stable
    /// in bridgelab); `None`: all six random (28's `GenerateRandomMAC`).
    pub bridge_mac_prefix: Option<[u8; 2]>,
    pub firewaller: FirewallerKind,
    /// 20.10: DOCKER-USER is arranged after every network the controller
    /// makes (`arrangeUserFilterRule`); 28: once, at the end of
    /// `libnetwork.New` (`setupUserChains`), before the default bridge.
    pub user_chain_per_network: bool,
    pub port_mapper: PortMapper,
    /// `--ip6tables` (on by default since 27): the IPv6 chains are made.
    pub ip6tables: bool,
    /// 28: `bridge-nf-call-iptables` also for the userland proxy off
    /// (`enableBrNfCallIptables := !config.EnableICC || !d.config.EnableUserlandProxy`,
    /// bridge_linux.go); 20.10 only for icc off.
    pub brnf_without_proxy: bool,
    /// 28: `net.ipv4.ip_forward` (and the FORWARD policy) are set when a
    /// network is created (bridge_linux.go `setupIPv4Forwarding` step),
    /// not at driver configuration: no network, no write.
    pub forwarding_per_network: bool,
    /// 28.0+: `[daemon] ip_forward_no_drop`, `allow_direct_routing` (28.2+),
    /// `[[network]] gateway_mode`.
    pub docker28_keys: bool,
    /// 28: `net.ipv6.conf.<eth>.disable_ipv6 = 1` per container interface
    /// (osl `setIPv6`), instead of 20.10's `all`.
    pub ipv6_off_per_interface: bool,
    /// 28: an endpoint on an internal network has no gateway (bridge
    /// `Join` skips `SetGateway`), so no default route through it; 20.10
    /// gives every bridge endpoint one.
    pub internal_without_gateway: bool,
    /// 28: each IPv4 address of an interface brought up in a container is
    /// announced with an unsolicited ARP request (osl `advertiseAddrs`,
    /// `l2disco.NewUnsolARP`, moby#48808), so a neighbour holding another
    /// MAC for a reused address updates it; 20.10 announces nothing.
    pub advertise_addr: bool,
    /// 28: the bridge driver orders an endpoint's bindings itself
    /// (`sortAndNormPBs`, [`cmp_port_binding`](super::endpoint::cmp_port_binding))
    /// before it maps them; 20.10 maps them in the daemon's `SortPortMap` order.
    pub sort_port_bindings: bool,
    /// 23+: `ProgramExternalConnectivity` also calls `clearConntrackEntries`
    /// (its address, and UDP entries by port); `None`: only
    /// `RevokeExternalConnectivity` clears, by address (20.10's
    /// `clearEndpointConnections`; 28's revoke drops `portMapping` before
    /// it clears, so no port there either).
    pub clear_conntrack_on_program: Option<ClearUdpOnProgram>,
    /// Whether a port published on every address also gets a
    /// `docker-proxy` on `::` (20.10 does, with the userland proxy on).
    pub proxy_on_ipv6_any: bool,
    /// Sysctls written in every namespace the daemon creates for a
    /// container (network mode bridge, a user network or none): the OCI
    /// spec's defaults (`daemon/oci_linux.go` `WithSysctls`) and the
    /// sandbox's "IPv6 off on all interfaces" (`osl.NewSandbox`). Values as
    /// the kernel reads them back.
    pub container_sysctls: &'static [(&'static str, &'static str)],
    /// What a start's network errors begin with. 28 connects a starting
    /// container's networks after its task exists (`initializeCreatedTask`,
    /// start_linux.go), and wraps the error of `allocateNetwork` with
    /// `errSetupNetworking`; 20.10 returns it as it is.
    pub msg_start_networking: &'static str,
    /// 28: `setupLinkedContainers` runs in `createSpec`, before the
    /// networks are connected (`initializeCreatedTask`), so a link to a
    /// stopped container is found before a port that fails; 20.10
    /// connects the networks first.
    pub links_before_networking: bool,
}

impl Version {
    /// The default local pools, split, in libnetwork's order.
    pub fn predefined_pools(&self) -> Vec<Ipv4Network> {
        let mut out = Vec::new();
        for &(base, base_prefix, size) in self.local_pools {
            let base = Ipv4Network::new(base, base_prefix).expect("valid pool base");
            let step = 1u32 << (32 - u32::from(size));
            let count = 1u32 << (size - base_prefix);
            for i in 0..count {
                let ip = Ipv4Addr::from(u32::from(base.network()) + i * step);
                out.push(Ipv4Network::new(ip, size).expect("valid pool"));
            }
        }
        out
    }
}

/// Docker 20.10.24 (`vendor/github.com/docker/libnetwork` at moby v20.10.24).
pub static DOCKER20: Version = Version {
    firewall: Firewall::Docker20,
    release: "Docker 20.10.24",
    local_pools: DOCKER20_POOLS,
    container_mac: ContainerMac::FromIp,
    bridge_mac_prefix: Some([0x02, 0x42]),
    firewaller: FirewallerKind::Docker20,
    user_chain_per_network: true,
    port_mapper: PortMapper::PerAddress,
    ip6tables: false,
    brnf_without_proxy: false,
    forwarding_per_network: false,
    docker28_keys: false,
    ipv6_off_per_interface: false,
    internal_without_gateway: false,
    advertise_addr: false,
    sort_port_bindings: false,
    clear_conntrack_on_program: None,
    proxy_on_ipv6_any: true,
    container_sysctls: &[
        ("net.ipv4.ping_group_range", "0\t2147483647"),
        ("net.ipv4.ip_unprivileged_port_start", "0"),
        ("net.ipv6.conf.all.disable_ipv6", "1"),
    ],
    msg_start_networking: "",
    links_before_networking: false,
};

/// `ipamutils.localScopeDefaultNetworks`, the same in 20.10.24 and 28.5.2.
const DOCKER20_POOLS: &[(Ipv4Addr, u8, u8)] = &[
    (Ipv4Addr::new(172, 17, 0, 0), 16, 16),
    (Ipv4Addr::new(172, 18, 0, 0), 16, 16),
    (Ipv4Addr::new(172, 19, 0, 0), 16, 16),
    (Ipv4Addr::new(172, 20, 0, 0), 14, 16),
    (Ipv4Addr::new(172, 24, 0, 0), 14, 16),
    (Ipv4Addr::new(172, 28, 0, 0), 14, 16),
    (Ipv4Addr::new(192, 168, 0, 0), 16, 20),
];

/// Docker 28.5.2 (moby v28.5.2): the same pools (`ipamutils`
/// `localScopeDefaultNetworks`), random MACs, the `iptabler`.
pub static DOCKER28: Version = DOCKER28_BASE;

/// Docker 29.7.2 (moby docker-v29.7.2): 28's model with 29's `iptabler`
/// (no isolation chains, DOCKER-INTERNAL); with `backend = "nftables"` the
/// controller makes the nftabler instead (`newFirewaller`).
pub static DOCKER29: Version = Version {
    firewall: Firewall::Docker29,
    release: "Docker 29.7.2",
    firewaller: FirewallerKind::Iptabler(&crate::plan::firewall::iptabler::DOCKER29),
    clear_conntrack_on_program: Some(ClearUdpOnProgram::ContainerPortAtHostIp),
    ..DOCKER28_BASE
};

/// [`DOCKER28`] as a constant, the base of later releases (a static
/// cannot be the base of a `..`).
const DOCKER28_BASE: Version = Version {
    firewall: Firewall::Docker28,
    release: "Docker 28.5.2",
    local_pools: DOCKER20_POOLS,
    container_mac: ContainerMac::Random,
    bridge_mac_prefix: None,
    firewaller: FirewallerKind::Iptabler(&crate::plan::firewall::iptabler::DOCKER28),
    user_chain_per_network: false,
    port_mapper: PortMapper::SamePortPerGroup,
    ip6tables: true,
    brnf_without_proxy: true,
    forwarding_per_network: true,
    docker28_keys: true,
    ipv6_off_per_interface: true,
    internal_without_gateway: true,
    advertise_addr: true,
    sort_port_bindings: true,
    clear_conntrack_on_program: Some(ClearUdpOnProgram::HostPort),
    proxy_on_ipv6_any: true,
    container_sysctls: &[("net.ipv4.ping_group_range", "0\t2147483647"), ("net.ipv4.ip_unprivileged_port_start", "0")],
    // daemon/container_operations.go `errSetupNetworking` (28 and 29).
    msg_start_networking: "failed to set up container networking: ",
    links_before_networking: true,
};

/// The libnetwork release a `firewall` value imitates, if it is one.
pub fn of(f: Firewall) -> Option<&'static Version> {
    match f {
        Firewall::Docker20 => Some(&DOCKER20),
        Firewall::Docker28 => Some(&DOCKER28),
        Firewall::Docker29 => Some(&DOCKER29),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker20_pools_are_172_17_to_31_then_192_168_by_20() {
        let p = DOCKER20.predefined_pools();
        assert_eq!(p.len(), 15 + 16);
        assert_eq!(p[0].to_string(), "172.17.0.0/16");
        assert_eq!(p[14].to_string(), "172.31.0.0/16");
        assert_eq!(p[15].to_string(), "192.168.0.0/20");
        assert_eq!(p[16].to_string(), "192.168.16.0/20");
        assert_eq!(p[30].to_string(), "192.168.240.0/20");
    }
}
