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
    /// The first two bytes of a bridge's random MAC (`GenerateRandomMAC`
    /// keeps `02:42`; the other four are random, stable in bridgelab).
    pub bridge_mac_prefix: [u8; 2],
    /// Whether a port published on every address also gets a
    /// `docker-proxy` on `::` (20.10 does, with the userland proxy on).
    pub proxy_on_ipv6_any: bool,
    /// Sysctls written in every namespace the daemon creates for a
    /// container (network mode bridge, a user network or none): the OCI
    /// spec's defaults (`daemon/oci_linux.go` `WithSysctls`) and the
    /// sandbox's "IPv6 off on all interfaces" (`osl.NewSandbox`). Values as
    /// the kernel reads them back.
    pub container_sysctls: &'static [(&'static str, &'static str)],
    /// `verifyDaemonSettings`' words for `-b` with `--bip`.
    pub msg_bridge_and_bip: &'static str,
    /// `verifyDaemonSettings`' words for `--iptables=false` with `--icc=false`.
    pub msg_iptables_and_icc: &'static str,
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
    local_pools: &[
        (Ipv4Addr::new(172, 17, 0, 0), 16, 16),
        (Ipv4Addr::new(172, 18, 0, 0), 16, 16),
        (Ipv4Addr::new(172, 19, 0, 0), 16, 16),
        (Ipv4Addr::new(172, 20, 0, 0), 14, 16),
        (Ipv4Addr::new(172, 24, 0, 0), 14, 16),
        (Ipv4Addr::new(172, 28, 0, 0), 14, 16),
        (Ipv4Addr::new(192, 168, 0, 0), 16, 20),
    ],
    container_mac: ContainerMac::FromIp,
    bridge_mac_prefix: [0x02, 0x42],
    proxy_on_ipv6_any: true,
    container_sysctls: &[
        ("net.ipv4.ping_group_range", "0\t2147483647"),
        ("net.ipv4.ip_unprivileged_port_start", "0"),
        ("net.ipv6.conf.all.disable_ipv6", "1"),
    ],
    msg_bridge_and_bip: "You specified -b & --bip, mutually exclusive options. Please specify only one",
    msg_iptables_and_icc: "You specified --iptables=false with --icc=false. ICC=false uses iptables to function. Please set --icc or --iptables to true",
};

/// Docker 29 as far as the nftables backend needs (bridgelab issue 9,
/// nft29): 20.10's pools, MACs and messages until the docker28/29 version
/// data replaces this.
pub static DOCKER29: Version = Version { firewall: Firewall::Docker29, release: "Docker 29.7.2", ..DOCKER20_DATA };

/// DOCKER20 as a constant, for struct update syntax.
const DOCKER20_DATA: Version = Version {
    firewall: Firewall::Docker20,
    release: "Docker 20.10.24",
    local_pools: &[
        (Ipv4Addr::new(172, 17, 0, 0), 16, 16),
        (Ipv4Addr::new(172, 18, 0, 0), 16, 16),
        (Ipv4Addr::new(172, 19, 0, 0), 16, 16),
        (Ipv4Addr::new(172, 20, 0, 0), 14, 16),
        (Ipv4Addr::new(172, 24, 0, 0), 14, 16),
        (Ipv4Addr::new(172, 28, 0, 0), 14, 16),
        (Ipv4Addr::new(192, 168, 0, 0), 16, 20),
    ],
    container_mac: ContainerMac::FromIp,
    bridge_mac_prefix: [0x02, 0x42],
    proxy_on_ipv6_any: true,
    container_sysctls: &[
        ("net.ipv4.ping_group_range", "0\t2147483647"),
        ("net.ipv4.ip_unprivileged_port_start", "0"),
        ("net.ipv6.conf.all.disable_ipv6", "1"),
    ],
    msg_bridge_and_bip: "You specified -b & --bip, mutually exclusive options. Please specify only one",
    msg_iptables_and_icc: "You specified --iptables=false with --icc=false. ICC=false uses iptables to function. Please set --icc or --iptables to true",
};

/// The libnetwork release a `firewall` value imitates, if it is one.
pub fn of(f: Firewall) -> Option<&'static Version> {
    match f {
        Firewall::Docker20 => Some(&DOCKER20),
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
