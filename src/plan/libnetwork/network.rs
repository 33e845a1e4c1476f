//! Networks: libnetwork's `network` with the bridge driver's
//! `networkConfiguration`, and the address choices made when one is
//! created (`ElectInterfaceAddresses`, `FindAvailableNetwork`,
//! `requestPoolHelper`, `ipamAllocateVersion`).

use std::net::Ipv4Addr;

use ipnetwork::Ipv4Network;

use super::ipam::{Ipam, IpamError, PoolId};
use crate::plan::firewall::firewaller::{GatewayMode, NetworkConfig};
use crate::plan::firewall::BridgeFacts;
use crate::scenario::IfaceAddr;

/// A network the daemon has.
#[derive(Debug, Clone)]
pub struct Network {
    pub name: String,
    /// libnetwork's random 64-hex ID; bridgelab's is stable per scenario
    /// and network name.
    pub id: String,
    /// The daemon's `bridge` network.
    pub default: bool,
    /// The bridge device.
    pub bridge: String,
    /// The bridge's address: the gateway, with the pool's prefix.
    pub gateway: IfaceAddr,
    pub pool: PoolId,
    pub internal: bool,
    pub icc: bool,
    pub ip_masq: bool,
    /// `com.docker.network.driver.mtu`; 0: not set (veths keep 1500).
    pub mtu: u32,
    /// `com.docker.network.bridge.host_binding_ipv4` (daemon `--ip` on the
    /// default bridge): the default host address of published ports.
    pub host_binding: Option<Ipv4Addr>,
    /// The driver made the bridge (`ifaceCreatedByLibnetwork`).
    pub created_bridge: bool,
    /// How its subnet was chosen, for people reading the plan.
    pub origin: String,
    /// `gateway_mode_ipv4` (28+; always `nat` before).
    pub gateway_mode: GatewayMode,
}

impl Network {
    pub fn facts(&self) -> BridgeFacts {
        BridgeFacts {
            name: self.bridge.clone(),
            address: self.gateway,
            icc: self.icc,
            ip_masq: self.ip_masq,
            internal: self.internal,
        }
    }
    /// `newFirewallerNetwork`'s `NetworkConfig`: the prefix is the
    /// bridge's (`Config4.Prefix`, masked: the subnet).
    pub fn fw_config(&self) -> NetworkConfig {
        NetworkConfig {
            if_name: self.bridge.clone(),
            internal: self.internal,
            icc: self.icc,
            masquerade: self.ip_masq,
            host_ip: None,
            prefix: self.pool.subnet,
            gateway_mode: self.gateway_mode,
        }
    }
    pub fn subnet(&self) -> Ipv4Network {
        self.pool.subnet
    }
}

/// 64 hex digits derived from `parts`, as Docker's random IDs look.
pub fn hex_id(parts: &[&str]) -> String {
    (0..4)
        .map(|i| {
            let mut p: Vec<&str> = parts.to_vec();
            let salt = i.to_string();
            p.push(&salt);
            format!("{:016x}", crate::stable_hash::fnv1a(&p))
        })
        .collect()
}

/// `NetworkOverlaps`: one contains the other's first address.
pub fn overlaps(a: Ipv4Network, b: Ipv4Network) -> bool {
    a.contains(b.network()) || b.contains(a.network())
}

/// What the host had that makes a default pool unusable: resolv.conf
/// nameservers and routes in the main table with link scope
/// (`CheckRouteOverlaps` ignores routes through a gateway).
#[derive(Debug, Clone, Default)]
pub struct HostRoutes {
    pub nameservers: Vec<Ipv4Addr>,
    pub link_routes: Vec<Ipv4Network>,
}

impl HostRoutes {
    /// `FindAvailableNetwork` for one network: whether it clashes.
    pub fn clash(&self, nw: Ipv4Network) -> bool {
        self.nameservers.iter().any(|n| nw.contains(*n)) || self.link_routes.iter().any(|r| overlaps(nw, *r))
    }

    /// `FindAvailableNetwork`: the first of `list` that clashes with nothing.
    pub fn find_available(&self, list: &[Ipv4Network]) -> Option<Ipv4Network> {
        list.iter().copied().find(|nw| !self.clash(*nw))
    }
}

/// `requestPoolHelper` and the gateway request of `ipamAllocateVersion`:
/// a pool (the preferred one as given; otherwise default pools, skipping
/// those that clash with the host, which are held until one fits so that
/// the round-robin moves past them) and the gateway (as given, or the
/// pool's lowest free address, in its range if it has one).
pub fn allocate(
    ipam: &mut Ipam,
    host: &HostRoutes,
    preferred: Option<Ipv4Network>,
    sub: Option<Ipv4Network>,
    gateway: Option<Ipv4Addr>,
) -> Result<(PoolId, Ipv4Addr), AllocError> {
    let mut held = Vec::new();
    let pool = loop {
        let id = match ipam.request_pool(preferred, sub) {
            Ok(id) => id,
            Err(e) => {
                for h in held {
                    ipam.release_pool(h);
                }
                return Err(AllocError::Pool(e));
            }
        };
        if preferred.is_some() || !host.clash(id.subnet) {
            break id;
        }
        held.push(id);
    };
    for h in held {
        ipam.release_pool(h);
    }
    match ipam.request_address(pool, gateway) {
        Ok(gw) => Ok((pool, gw)),
        Err(e) => {
            ipam.release_pool(pool);
            Err(AllocError::Gateway(gateway, e))
        }
    }
}

/// Why a network got no addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllocError {
    Pool(IpamError),
    Gateway(Option<Ipv4Addr>, IpamError),
}

impl std::fmt::Display for AllocError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AllocError::Pool(e) => e.fmt(f),
            // ipamAllocateVersion: "failed to allocate gateway (%v): %v", with
            // an empty gateway when none was asked for.
            AllocError::Gateway(gw, e) => {
                write!(f, "failed to allocate gateway ({}): {e}", gw.map(|g| g.to_string()).unwrap_or_default())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::libnetwork::version::DOCKER20;

    fn net(s: &str) -> Ipv4Network {
        s.parse().unwrap()
    }

    #[test]
    fn default_pools_skip_link_routes_and_move_the_round_robin_past_them() {
        // Capture 11b: link routes over 172.17 and 172.19; docker0 takes
        // 172.18, then `usr` 172.20 and `usr2` 172.21.
        let host = HostRoutes { nameservers: vec![], link_routes: vec![net("172.17.0.0/16"), net("172.19.0.0/16")] };
        let pools = DOCKER20.predefined_pools();
        let docker0 = host.find_available(&pools).unwrap();
        assert_eq!(docker0.to_string(), "172.18.0.0/16");
        let mut ipam = Ipam::new(pools);
        let (p, gw) = allocate(&mut ipam, &host, Some(docker0), None, None).unwrap();
        assert_eq!((p.subnet.to_string(), gw.to_string()), ("172.18.0.0/16".into(), "172.18.0.1".into()));
        let (usr, _) = allocate(&mut ipam, &host, None, None, None).unwrap();
        assert_eq!(usr.subnet.to_string(), "172.20.0.0/16");
        let (usr2, _) = allocate(&mut ipam, &host, None, None, None).unwrap();
        assert_eq!(usr2.subnet.to_string(), "172.21.0.0/16");
        // The held pools were given back.
        assert_eq!(ipam.subnets().count(), 3);
    }

    #[test]
    fn a_route_through_a_gateway_is_no_clash() {
        // Capture 11: `172.17.0.0/16 via 203.0.113.2` is not a link-scope
        // route, so it is not in `link_routes` and docker0 keeps 172.17.
        let host = HostRoutes::default();
        assert_eq!(host.find_available(&DOCKER20.predefined_pools()).unwrap().to_string(), "172.17.0.0/16");
        let ns = HostRoutes { nameservers: vec!["172.17.0.53".parse().unwrap()], link_routes: vec![] };
        assert_eq!(ns.find_available(&DOCKER20.predefined_pools()).unwrap().to_string(), "172.18.0.0/16");
    }

    #[test]
    fn gateway_errors_say_which_gateway() {
        let mut ipam = Ipam::new(DOCKER20.predefined_pools());
        let host = HostRoutes::default();
        let e = allocate(&mut ipam, &host, Some(net("10.9.0.0/24")), None, Some("10.9.0.255".parse().unwrap()));
        assert_eq!(e.unwrap_err().to_string(), "failed to allocate gateway (10.9.0.255): Address already in use");
        assert_eq!(ipam.subnets().count(), 0, "the pool went back");
    }
}
