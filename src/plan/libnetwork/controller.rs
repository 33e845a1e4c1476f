//! The daemon with libnetwork's controller: daemon start
//! (`initNetworkController`, `initBridgeDriver`, the bridge driver's
//! `configure`), `docker network create`, and per container
//! `allocateNetwork`/`connectToNetwork` (endpoint create, sandbox, join,
//! external connectivity) and `releaseNetwork` (leave, delete), with the
//! rules of the version's firewall layout.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::Range;
use std::sync::Arc;

use ipnetwork::Ipv4Network;

use super::endpoint::{mac_from_ip, Endpoint, Mapped, PortBinding, PortsCache};
use super::ipam::Ipam;
use super::network::{allocate, hex_id, HostRoutes, Network};
use super::portallocator::PortAllocator;
use super::sandbox::{Sandbox, SortKey};
use super::version::{ClearUdpOnProgram, ContainerMac, FirewallerKind, PortMapper, Version};
use crate::plan::firewall::docker20::Docker20;
use crate::plan::firewall::firewaller::{Config, Firewaller, GatewayMode};
use crate::plan::firewall::iptabler::Iptabler;
use crate::plan::firewall::nftabler::Nftabler;
use crate::plan::firewall::{PortMapping, Ruleset, Table};
use crate::plan::limits::{self, BRIDGE_MAX_PORTS, MAX_PUBLISHED_PORTS};
use crate::plan::portallocator::NETNS_EPHEMERAL_RANGE;
use crate::plan::{host, MacAddr, UdpConntrackFilter};
use crate::scenario::{Container, Diagnostic, IfaceAddr, NetworkMode, Proto, Scenario, DEFAULT_BRIDGE};

/// A failed operation: where it points and Docker's message.
pub type Failure = (Range<usize>, String);

/// `container.NetworkSettings.Networks`: a network the container is
/// attached to, kept while it is stopped.
#[derive(Debug, Clone)]
pub struct Attachment {
    pub network: String,
    /// `--ip` (`IPAMConfig.IPv4Address`).
    pub ip: Option<Ipv4Addr>,
    pub span: Range<usize>,
}

/// A container the daemon knows.
#[derive(Debug, Clone)]
pub struct Ctr {
    pub spec: Container,
    pub running: bool,
    /// The namespace its processes live in while it runs: its own node,
    /// `host`, or another container's node.
    pub netns: Option<String>,
    pub attachments: Vec<Attachment>,
}

impl Ctr {
    pub fn name(&self) -> &str {
        self.spec.name()
    }
    pub fn mode(&self) -> NetworkMode {
        self.spec.networks().into_iter().next().unwrap_or(NetworkMode::Bridge)
    }
}

/// A network namespace of a container, with the sandbox libnetwork made
/// for it (gone once its maker stops; the namespace lives on while a
/// `container:` container runs in it).
#[derive(Debug, Clone)]
pub struct Netns {
    pub name: String,
    pub sandbox: Option<Sandbox>,
}

/// A bridge device on the host.
#[derive(Debug, Clone)]
pub struct BridgeDev {
    pub name: String,
    pub addresses: Vec<IfaceAddr>,
    pub mac: MacAddr,
    /// Made by the bridge driver (`setupDevice`), not by the administrator.
    pub by_docker: bool,
}

pub struct Controller<'a> {
    pub s: &'a Scenario,
    pub v: &'static Version,
    /// The driver's firewaller (`d.firewaller`): the version's, or with
    /// `--firewall-backend=nftables` (Docker 29) the nftabler.
    pub layout: Box<dyn Firewaller>,
    /// The daemon turned `net.ipv4.ip_forward` on (28: with its first network).
    pub forwarding_set: bool,
    pub iptables: bool,
    pub proxy: bool,
    pub rules: Ruleset,
    pub ipam: Ipam,
    pub ports: PortAllocator,
    /// Bridge devices of the host, administrator's first.
    pub bridges: Vec<BridgeDev>,
    /// Networks in creation order.
    pub networks: Vec<Network>,
    pub endpoints: Vec<Endpoint>,
    pub containers: Vec<Ctr>,
    pub namespaces: Vec<Netns>,
    /// The relays (`docker-proxy`) running, in the order they started.
    pub proxies: Vec<PortMapping>,
    /// With the userland proxy off: the bindings, which nothing relays.
    pub unrelayed: Vec<PortMapping>,
    /// The port mapper's listening sockets (`docker-proxy`, or with the
    /// userland proxy off the dummy listener that holds the port), by
    /// protocol and port: a lookup, so that many ports plan in linear time.
    binds: HashMap<(Proto, u16), Vec<IpAddr>>,
    /// How many listeners `binds` holds.
    bound: usize,
    veth_names: BTreeSet<String>,
    serial: u64,
    /// Lookups that would otherwise scan every container, endpoint or
    /// namespace for each one started: planning stays linear in N.
    index: Index,
    /// Addresses whose conntrack entries were deleted since the last plan
    /// was taken (see [`Controller::revoke`]).
    pub conntrack_cleared: Vec<Ipv4Addr>,
    /// UDP entries deleted by port since the last plan (Docker 23+, see
    /// [`Controller::program`]).
    pub conntrack_cleared_udp: Vec<crate::plan::UdpConntrackFilter>,
    ports_cache: PortsCache,
    /// Port mappings and rules that failed starts made and gave back: work
    /// the plan does not keep (see `limits::MAX_GIVEN_BACK`).
    given_back: usize,
    /// A bridgelab limit was passed: the errors say so, and no more
    /// containers are started.
    pub too_big: bool,
    pub errors: Vec<Diagnostic>,
    /// What `sysctl` steps wrote so far: (node, key, value), in order.
    pub sysctl_writes: Vec<(String, String, String)>,
}

/// `ErrConflictSharedNetwork`.
const SHARED_NETWORK: &str =
    "container sharing network namespace with another container or host cannot be connected to any other network";
/// `ErrConflictNoNetwork`.
const NO_NETWORK: &str =
    "container cannot be connected to multiple networks with one of the networks in private (none) mode";

/// The bridge driver's `newFirewaller` (bridge_linux.go @docker-v29.7.2):
/// the nftabler when the daemon's backend is nftables, else the release's
/// iptables layout; one `firewaller.Config` for either.
fn firewaller(v: &'static Version, d: &crate::scenario::Daemon, proxy: bool) -> Box<dyn Firewaller> {
    let config = Config {
        ipv4: d.iptables(),
        ipv6: v.ip6tables,
        hairpin: !proxy,
        allow_direct_routing: d.allow_direct_routing(),
    };
    let nftables = d.backend.as_ref().is_some_and(|b| *b.get_ref() == crate::scenario::Backend::Nftables);
    match v.firewaller {
        _ if nftables => Box::new(Nftabler { config }),
        FirewallerKind::Docker20 => Box::new(Docker20 { userland_proxy: proxy }),
        FirewallerKind::Iptabler(release) => Box::new(Iptabler { config, release }),
    }
}

impl<'a> Controller<'a> {
    pub fn new(s: &'a Scenario, v: &'static Version) -> Controller<'a> {
        let d = &s.spec.daemon;
        let proxy = d.userland_proxy.as_ref().map(|u| *u.get_ref()).unwrap_or(true);
        let bridges = s
            .spec
            .host
            .bridges
            .iter()
            .map(|hb| BridgeDev {
                name: hb.name.get_ref().clone(),
                addresses: hb.address.iter().map(|a| *a.get_ref()).collect(),
                mac: host::admin_bridge_mac(&s.name, hb.name.get_ref()),
                by_docker: false,
            })
            .collect();
        Controller {
            s,
            v,
            layout: firewaller(v, d, proxy),
            forwarding_set: false,
            iptables: d.iptables(),
            proxy,
            // The host's own rules come first; Docker's calls go over them.
            rules: host::rules_before(s).unwrap_or_default(),
            ipam: Ipam::new(v.predefined_pools()),
            ports: PortAllocator::new(NETNS_EPHEMERAL_RANGE),
            bridges,
            networks: vec![],
            endpoints: vec![],
            containers: vec![],
            namespaces: vec![],
            proxies: vec![],
            unrelayed: vec![],
            binds: HashMap::new(),
            bound: 0,
            veth_names: BTreeSet::new(),
            serial: 0,
            index: Index::default(),
            conntrack_cleared: Vec::new(),
            conntrack_cleared_udp: Vec::new(),
            ports_cache: PortsCache::default(),
            given_back: 0,
            too_big: false,
            errors: vec![],
            sysctl_writes: vec![],
        }
    }

    pub fn err(&mut self, span: Range<usize>, msg: impl Into<String>) {
        self.errors.push(Diagnostic::new(span, msg));
    }

    pub fn network(&self, name: &str) -> Option<&Network> {
        self.networks.iter().find(|n| n.name == name)
    }

    fn endpoint(&self, id: &str) -> Option<&Endpoint> {
        self.index.endpoints.get(id).map(|&i| &self.endpoints[i])
    }

    fn endpoint_mut(&mut self, id: &str) -> Option<&mut Endpoint> {
        self.index.endpoints.get(id).map(|&i| &mut self.endpoints[i])
    }

    /// The endpoint of `container` on `network` (at most one: a second
    /// connect is refused).
    fn endpoint_on(&self, container: &str, network: &str) -> Option<&Endpoint> {
        let id = self.index.attached.get(&(container.to_string(), network.to_string()))?;
        self.endpoint(id)
    }

    pub fn ctr(&self, name: &str) -> Option<&Ctr> {
        self.index.containers.get(name).map(|&i| &self.containers[i])
    }

    fn ctr_mut(&mut self, name: &str) -> Option<&mut Ctr> {
        self.index.containers.get(name).map(|&i| &mut self.containers[i])
    }

    fn sandbox_mut(&mut self, container: &str) -> Option<&mut Sandbox> {
        let &i = self.index.sandboxes.get(container)?;
        self.namespaces[i].sandbox.as_mut()
    }

    pub fn sandbox(&self, container: &str) -> Option<&Sandbox> {
        let &i = self.index.sandboxes.get(container)?;
        self.namespaces[i].sandbox.as_ref()
    }

    /// Where the lookup index and the lists disagree, if they do: every
    /// plan is checked against this in debug builds (all tests), since a
    /// stale index would give a wrong plan.
    pub fn index_mismatch(&self) -> Option<String> {
        let Index { containers, endpoints, attached, sandboxes, netns_names, joined, cleared } = &self.index;
        let mut want = Index::default();
        for (i, c) in self.containers.iter().enumerate() {
            want.containers.entry(c.name().to_string()).or_insert(i);
        }
        for (i, e) in self.endpoints.iter().enumerate() {
            want.endpoints.entry(e.id.clone()).or_insert(i);
            want.attached.entry((e.container.clone(), e.network.clone())).or_insert_with(|| e.id.clone());
            if !e.iface.is_empty() {
                *want.joined.entry(e.network.clone()).or_default() += 1;
            }
        }
        for (i, n) in self.namespaces.iter().enumerate() {
            want.netns_names.insert(n.name.clone());
            if let Some(sb) = &n.sandbox {
                want.sandboxes.entry(sb.container.clone()).or_insert(i);
            }
        }
        let joined: HashMap<&String, &usize> = joined.iter().filter(|(_, n)| **n > 0).collect();
        let cleared_ok = self.conntrack_cleared.is_empty()
            || (self.conntrack_cleared.len() == cleared.len()
                && self.conntrack_cleared.iter().all(|ip| cleared.contains(ip)));
        let checks = [
            ("containers", *containers == want.containers),
            ("endpoints", *endpoints == want.endpoints),
            ("attached", *attached == want.attached),
            ("sandboxes", *sandboxes == want.sandboxes),
            ("namespace names", *netns_names == want.netns_names),
            ("joined", joined == want.joined.iter().collect()),
            ("conntrack_cleared", cleared_ok),
        ];
        checks.iter().find(|(_, ok)| !ok).map(|(what, _)| format!("the controller's index of {what} is stale"))
    }

    // ----- the host as the daemon sees it -------------------------------

    /// Nameservers and link-scope routes of the host namespace now (the
    /// kernel's connected routes of every addressed bridge included).
    fn host_routes(&self) -> HostRoutes {
        let spec = &self.s.spec;
        let mut link_routes: Vec<Ipv4Network> = spec.host.routes.iter().map(|r| r.get_ref().0).collect();
        link_routes.push(crate::plan::UPLINK_HOST.network());
        for b in &self.bridges {
            link_routes.extend(b.addresses.iter().map(|a| a.network()));
        }
        HostRoutes { nameservers: spec.host.nameservers.iter().map(|n| n.get_ref().0).collect(), link_routes }
    }

    /// Addresses a socket can be bound to in the host namespace.
    fn host_address(&self, ip: Ipv4Addr) -> bool {
        ip.is_unspecified()
            || ip.is_loopback()
            || ip == crate::plan::UPLINK_HOST.ip()
            || self.bridges.iter().any(|b| b.addresses.iter().any(|a| a.ip() == ip))
    }

    // ----- daemon ---------------------------------------------------------

    /// The daemon starts: `libnetwork.New` (the bridge driver's
    /// `configure`; on a restart the networks it finds in its store come
    /// back), then `initNetworkController`. On a restart the default bridge
    /// network is deleted and made again, so its rules go back to the top
    /// of every chain.
    pub fn start_daemon(&mut self, restart: bool) {
        let d = &self.s.spec.daemon;
        // 28's IPv6 chains are made with --iptables=false too (--ip6tables is on).
        if self.iptables || self.v.ip6tables {
            self.layout.init(&mut self.rules);
        }
        // 20.10's setupIPForwarding at driver configuration: only a daemon
        // that turns forwarding on sets the FORWARD policy to DROP (a
        // restarted one finds it on, unless a `sysctl` step turned it off).
        // 28 does it with its first network.
        if !self.v.forwarding_per_network {
            // Only the nftabler (29) cannot drop: this never fails here.
            let _ = self.forward_on();
        }
        if restart {
            self.ipam.restart();
            self.ports = PortAllocator::new(NETNS_EPHEMERAL_RANGE);
            // populateNetworks: Docker walks a Go map, bridgelab goes in creation order.
            if self.iptables {
                for n in self.networks.iter().filter(|n| !n.default) {
                    let _ = self.layout.new_network(&mut self.rules, &n.fw_config());
                }
            }
            // "Clear stale bridge network": its rules and pool go, the device stays.
            if !self.v.user_chain_per_network {
                // setupUserChains, at the end of libnetwork.New.
                self.layout.setup_user_chain(&mut self.rules);
            }
            if let Some(i) = self.networks.iter().position(|n| n.default) {
                let n = self.networks.remove(i);
                if self.iptables {
                    self.layout.del_network(&mut self.rules, &n.fw_config());
                }
                if let Some(gw) = n.gateway {
                    self.ipam.release_address(n.pool, gw.ip());
                }
                self.ipam.release_pool(n.pool);
            }
        } else if !self.v.user_chain_per_network {
            // setupUserChains, at the end of libnetwork.New.
            if self.iptables || self.v.ip6tables {
                self.layout.setup_user_chain(&mut self.rules);
            }
        } else if self.iptables {
            // The `none` and `host` networks come first, each followed by
            // arrangeUserFilterRule.
            self.layout.setup_user_chain(&mut self.rules);
            self.layout.setup_user_chain(&mut self.rules);
        }
        if !d.networking_disabled() {
            if let Err((span, e)) = self.init_bridge_driver() {
                self.err(span, e);
            }
        }
    }

    /// `initBridgeDriver`: the default bridge's pool and gateway, then the
    /// network. Without `--bip` an existing bridge keeps its address;
    /// otherwise the first default pool that clashes with no nameserver and
    /// no link-scope route.
    fn init_bridge_driver(&mut self) -> Result<(), Failure> {
        let d = &self.s.spec.daemon;
        let name = d.bridge_name().to_string();
        let bridge_span = d.bridge.as_ref().map(|b| b.span()).unwrap_or(0..0);
        let existing = self.bridges.iter().find(|b| b.name == name).and_then(|b| b.addresses.first().copied());
        let fixed = d.fixed_cidr.as_ref().map(|f| f.get_ref().0);
        // ElectInterfaceAddresses.
        let (nw, origin) = match existing {
            Some(a) => (a.0, "the bridge's address".to_string()),
            None => {
                let pools = self.v.predefined_pools();
                match self.host_routes().find_available(&pools) {
                    Some(p) => (p, "first default pool free of host routes and nameservers".to_string()),
                    None => {
                        let list: Vec<String> = pools.iter().map(|p| p.to_string()).collect();
                        let span = self
                            .s
                            .spec
                            .host
                            .routes
                            .first()
                            .map(|r| r.span())
                            .or_else(|| self.s.spec.host.nameservers.first().map(|n| n.span()))
                            .unwrap_or(0..0);
                        return Err((
                            span,
                            format!(
                                "list bridge addresses failed: PredefinedLocalScopeDefaultNetworks List: [{}]: no available network",
                                list.join(" ")
                            ),
                        ));
                    }
                }
            }
        };
        let mut preferred = Ipv4Network::new(nw.network(), nw.prefix()).expect("valid");
        // The host part of the address must be a unicast address to be the gateway.
        let mut gateway = (nw.ip() != nw.network() && nw.ip() != nw.broadcast()).then_some(nw.ip());
        let mut origin = origin;
        if let Some(bip) = &d.bip {
            preferred = bip.get_ref().network();
            gateway = Some(bip.get_ref().ip());
            origin = "--bip".into();
        }
        let bip_span = d.bip.as_ref().map(|b| b.span()).unwrap_or(bridge_span.clone());
        let host = self.host_routes();
        let (pool, gw) = allocate(&mut self.ipam, &host, Some(preferred), fixed, gateway, false)
            .map_err(|e| (bip_span.clone(), format!("Error creating default \"bridge\" network: {e}")))?;
        let gw = gw.expect("the default bridge always gets a gateway");
        let net = Network {
            name: "bridge".into(),
            id: hex_id(&["network", &self.s.name, "bridge", &self.networks.len().to_string()]),
            default: true,
            bridge: name.clone(),
            gateway: Some(IfaceAddr(Ipv4Network::new(gw, pool.subnet.prefix()).expect("valid"))),
            pool,
            internal: false,
            icc: d.icc(),
            // verifyDaemonSettings turns --ip-masq off with --iptables=false.
            ip_masq: d.ip_masq() && self.iptables,
            mtu: d.mtu(),
            host_binding: d.ip.as_ref().map(|i| i.get_ref().0),
            created_bridge: false,
            origin,
            gateway_mode: GatewayMode::Nat,
        };
        if name != DEFAULT_BRIDGE && !self.bridges.iter().any(|b| b.name == name) {
            self.ipam.release_address(pool, gw);
            self.ipam.release_pool(pool);
            return Err((bridge_span, format!("bridge device with non default name {name} must be created manually")));
        }
        // Docker 29: `error creating default "bridge" network: …` (daemon_unix.go initBridgeDriver).
        let at = self.forwarding_span();
        self.create_driver_network(net, true)
            .map_err(|e| (at, format!("error creating default \"bridge\" network: {e}")))
    }

    /// Where a forwarding error points: `[host] forwarding`, else `[daemon] backend`.
    fn forwarding_span(&self) -> Range<usize> {
        let spec = &self.s.spec;
        spec.host
            .forwarding
            .as_ref()
            .map(|f| f.span())
            .or_else(|| spec.daemon.backend.as_ref().map(|b| b.span()))
            .unwrap_or(0..0)
    }

    /// The bridge driver's `createNetwork` (the device, its address, the
    /// rules) and the controller's `arrangeUserFilterRule` after it.
    fn create_driver_network(&mut self, mut net: Network, default: bool) -> Result<(), String> {
        if self.v.forwarding_per_network {
            // The setupIPv4Forwarding step of createNetwork: before the
            // bridge is made, so a failed check leaves nothing behind.
            self.forward_on()?;
        }
        match self.bridges.iter_mut().find(|b| b.name == net.bridge) {
            // setupBridgeIPv4: the address is replaced when it differs; an
            // isolated network leaves an existing bridge's addresses alone.
            Some(b) => {
                if net.gateway_mode != GatewayMode::Isolated {
                    b.addresses = net.bridge_addresses();
                }
            }
            None => {
                net.created_bridge = true;
                let mac = host::docker_bridge_mac(self.v.bridge_mac_prefix, &self.s.name, &net.bridge);
                self.bridges.push(BridgeDev {
                    name: net.bridge.clone(),
                    addresses: net.bridge_addresses(),
                    mac,
                    by_docker: true,
                });
            }
        }
        if default {
            net.created_bridge = self.bridges.iter().any(|b| b.name == net.bridge && b.by_docker);
        }
        if self.iptables {
            // The addfirewallerNetwork step (NewNetwork).
            let _ = self.layout.new_network(&mut self.rules, &net.fw_config());
        }
        self.networks.push(net);
        if self.iptables && self.v.user_chain_per_network {
            self.layout.setup_user_chain(&mut self.rules);
        }
        Ok(())
    }

    /// `net.ipv4.ip_forward` in the host now: on before the daemon, or
    /// turned on by it, and then what `sysctl` steps wrote.
    fn forwarding_now(&self) -> bool {
        let mut on = host::forwarding_before(self.s) || self.forwarding_set;
        for (node, key, value) in &self.sysctl_writes {
            if node == "host" && host::is_forwarding_switch(key) {
                on = value == "1";
            }
        }
        on
    }

    /// `setupIPv4Forwarding`: `ip_forward` on; when that changed it (at the
    /// first start, or on a restart after a `sysctl` step turned it off)
    /// and the daemon has iptables and no `--ip-forward-no-drop`,
    /// `FilterForwardDrop` (setup_ip_forwarding.go reads the sysctl at every
    /// start). A firewaller that cannot drop (29's nftabler) makes the
    /// daemon check forwarding instead of setting it (`checkIPv4Forwarding`,
    /// setup_ip_forwarding.go @docker-v29.7.2), for every network.
    fn forward_on(&mut self) -> Result<(), String> {
        let d = &self.s.spec.daemon;
        if !d.ip_forward() {
            return Ok(());
        }
        let on = self.forwarding_now();
        if !self.layout.filter_forward_dropper() {
            if on {
                return Ok(());
            }
            return Err("IPv4 forwarding is disabled: check your host's firewalling and set sysctl \
                 net.ipv4.ip_forward=1, or disable this check using daemon option --ip-forward=false"
                .into());
        }
        if on && self.forwarding_set {
            return Ok(());
        }
        if !on && self.forwarding_set {
            // Turned off by a `sysctl` step since the daemon set it: the
            // restarted daemon writes it again, after that step.
            self.sysctl_writes.push(("host".into(), "net.ipv4.ip_forward".into(), "1".into()));
        }
        self.forwarding_set = true;
        if !on && self.iptables && !d.ip_forward_no_drop() {
            self.layout.filter_forward_drop(&mut self.rules);
        }
        Ok(())
    }

    /// `docker network create` for a `[[network]]`, after the daemon started.
    pub fn create_network(&mut self, spec: &crate::scenario::Network) -> Result<(), Failure> {
        let name = spec.name.get_ref().clone();
        let span = spec.name.span();
        let subnet = spec.subnet.as_ref().map(|s| s.get_ref().0);
        let range = spec.ip_range.as_ref().map(|r| r.get_ref().0);
        let gateway = spec.gateway.as_ref().map(|g| g.get_ref().0);
        let where_ = spec.subnet.as_ref().map(|s| s.span()).unwrap_or(span.clone());
        let host = self.host_routes();
        let gateway_mode = spec.gateway_mode();
        // GetSkipGwAlloc (bridge_linux.go): an isolated network has no gateway.
        let skip_gw = gateway_mode == GatewayMode::Isolated;
        let (pool, gw) = allocate(&mut self.ipam, &host, subnet, range, gateway, skip_gw).map_err(|e| {
            let at = match (&e, &spec.gateway) {
                (super::network::AllocError::Gateway(..), Some(g)) => g.span(),
                _ => where_.clone(),
            };
            (at, e.to_string())
        })?;
        let id = hex_id(&["network", &self.s.name, &name]);
        let bridge = spec.bridge.as_ref().map(|b| b.get_ref().clone()).unwrap_or_else(|| format!("br-{}", &id[..12]));
        let net = Network {
            name: name.clone(),
            id: id.clone(),
            default: false,
            bridge: bridge.clone(),
            gateway: gw.map(|gw| IfaceAddr(Ipv4Network::new(gw, pool.subnet.prefix()).expect("valid"))),
            pool,
            internal: spec.internal,
            icc: spec.icc,
            ip_masq: spec.ip_masq,
            mtu: spec.mtu.as_ref().map(|m| *m.get_ref()).unwrap_or(0),
            host_binding: spec.host_ip.as_ref().map(|h| h.get_ref().0),
            created_bridge: false,
            origin: if subnet.is_some() { "--subnet".into() } else { "next default pool".into() },
            gateway_mode,
        };
        // checkConflict against the networks the driver has.
        for other in &self.networks {
            let why = if other.bridge == bridge {
                Some("networks have same bridge name")
            } else if super::network::overlaps(other.subnet(), pool.subnet) {
                Some("networks have overlapping IPv4")
            } else {
                None
            };
            if let Some(why) = why {
                let msg = format!(
                    "cannot create network {id} ({bridge}): conflicts with network {} ({}): {why}",
                    other.id, other.bridge
                );
                if let Some(gw) = gw {
                    self.ipam.release_address(pool, gw);
                }
                self.ipam.release_pool(pool);
                return Err((spec.bridge.as_ref().map(|b| b.span()).unwrap_or(span), msg));
            }
        }
        let at = self.forwarding_span();
        self.create_driver_network(net, false).map_err(|e| (at, e))
    }

    // ----- containers -----------------------------------------------------

    /// `docker create`: the daemon's record, with the networks the
    /// container is attached to (`--network` first, then the others, which
    /// `docker network connect` adds after the start).
    pub fn create(&mut self, c: &Container) {
        let mut attachments = Vec::new();
        for (i, m) in c.networks().into_iter().enumerate() {
            let network = match m {
                NetworkMode::Bridge => "bridge".to_string(),
                NetworkMode::Named(n) => n,
                _ => continue,
            };
            // `--ip` goes to the network given with `--network`; without
            // one the CLI files it under "default", which the daemon never
            // looks up: the address is ignored.
            // The others get theirs from `ips` (`docker network connect --ip`).
            let (ip, span) = if i == 0 {
                let ip = if c.network.is_some() { c.ip.as_ref().map(|ip| ip.get_ref().0) } else { None };
                (ip, c.ip.as_ref().map(|ip| ip.span()).unwrap_or(c.network_span()))
            } else {
                match c.ips.get(&network) {
                    Some(ip) => (Some(ip.get_ref().0), ip.span()),
                    None => (None, c.network_span()),
                }
            };
            attachments.push(Attachment { network, ip, span });
        }
        let ctr = Ctr { spec: c.clone(), running: false, netns: None, attachments };
        match self.ctr_mut(c.name()) {
            Some(slot) => *slot = ctr,
            None => {
                self.index.containers.insert(c.name().to_string(), self.containers.len());
                self.containers.push(ctr);
            }
        }
    }

    /// `docker run --network FIRST` and then `docker network connect` for
    /// each further network, in order.
    pub fn run(&mut self, name: &str) -> Result<(), Failure> {
        let Some(ctr) = self.ctr_mut(name) else { return Ok(()) };
        let rest: Vec<Attachment> = ctr.attachments.drain(1.min(ctr.attachments.len())..).collect();
        self.start(name)?;
        for a in rest {
            self.connect(name, &a.network, a.ip, a.span)?;
        }
        Ok(())
    }

    /// `docker start`: `containerStart`; on failure its deferred `Cleanup`
    /// gives back what the start took.
    pub fn start(&mut self, name: &str) -> Result<(), Failure> {
        let Some(ctr) = self.ctr(name).cloned() else { return Ok(()) };
        if ctr.running || self.too_big {
            return Ok(());
        }
        match self.bring_up(&ctr) {
            Ok(()) => {
                if let Some(c) = self.ctr_mut(name) {
                    c.running = true;
                }
                Ok(())
            }
            Err((span, e)) => {
                // Docker does that work again for each start that fails
                // late; so does the simulator, within a bound.
                let before = self.work();
                self.release_network(name);
                self.given_back += before.saturating_sub(self.work());
                if let Some(msg) = limits::over_given_back(self.given_back, &mut self.too_big) {
                    self.err(span.clone(), msg);
                }
                Err((span, e))
            }
        }
    }

    /// Port mappings and rules there are now, by `MAX_GIVEN_BACK`'s measure.
    fn work(&self) -> usize {
        self.bound + self.rules.rule_count()
    }

    /// A new namespace for a container, named after it; while its earlier
    /// one lives on (kept by a `container:` container), `NAME+2`, `NAME+3`, …
    fn new_netns(&mut self, name: &str, sandbox: Option<Sandbox>) -> String {
        let taken = &self.index.netns_names;
        let node = if !taken.contains(name) {
            name.to_string()
        } else {
            (2u32..).map(|i| format!("{name}+{i}")).find(|n| !taken.contains(n)).expect("a free name")
        };
        self.index.netns_names.insert(node.clone());
        if let Some(sb) = &sandbox {
            self.index.sandboxes.insert(sb.container.clone(), self.namespaces.len());
        }
        self.namespaces.push(Netns { name: node.clone(), sandbox });
        node
    }

    fn bring_up(&mut self, ctr: &Ctr) -> Result<(), Failure> {
        let name = ctr.name().to_string();
        let c = &ctr.spec;
        match ctr.mode() {
            NetworkMode::Host => {
                self.ctr_mut(&name).expect("known").netns = Some("host".into());
            }
            NetworkMode::Container(other) => {
                let ns = match self.ctr(&other) {
                    Some(o) if o.running => o.netns.clone().expect("a running container has a namespace"),
                    Some(_) => {
                        let e = format!("cannot join network of a non running container: {other}");
                        return Err((c.network_span(), e));
                    }
                    None => return Err((c.network_span(), format!("No such container: {other}"))),
                };
                self.ctr_mut(&name).expect("known").netns = Some(ns);
            }
            NetworkMode::None => {
                let ns = self.new_netns(&name, Some(Sandbox::new(&name)));
                self.ctr_mut(&name).expect("known").netns = Some(ns);
            }
            NetworkMode::Bridge | NetworkMode::Named(_) => {
                // 28: createSpec's links come before the networks; the
                // container is on the default bridge by its configuration.
                if self.v.links_before_networking && ctr.attachments.iter().any(|a| a.network == "bridge") {
                    self.check_links(&name, c)?;
                }
                // allocateNetwork: the default network first, then the others.
                let mut order: Vec<Attachment> =
                    ctr.attachments.iter().filter(|a| a.network == "bridge").cloned().collect();
                order.extend(ctr.attachments.iter().filter(|a| a.network != "bridge").cloned());
                let disabled = self.s.spec.daemon.networking_disabled();
                for a in &order {
                    if a.network == "bridge" && disabled {
                        continue; // NetworkDisabled: no endpoint at all
                    }
                    self.connect_to_network(&name, a)
                        .map_err(|(span, e)| (span, format!("{}{e}", self.v.msg_start_networking)))?;
                }
                if self.sandbox(&name).is_none() {
                    let ns = self.new_netns(&name, Some(Sandbox::new(&name)));
                    self.ctr_mut(&name).expect("known").netns = Some(ns);
                }
            }
        }
        // 20.10: createSpec → setupLinkedContainers, after the network.
        if !self.v.links_before_networking && self.on_bridge(&name) {
            self.check_links(&name, c)?;
        }
        Ok(())
    }

    /// `setupLinkedContainers`: every linked container runs on the default bridge.
    fn check_links(&self, name: &str, c: &Container) -> Result<(), Failure> {
        for l in &c.links {
            let spec = l.get_ref();
            let Some(child) = self.ctr(&spec.container) else { continue };
            if !child.running {
                let e =
                    format!("Cannot link to a non running container: /{} AS /{name}/{}", spec.container, spec.alias);
                return Err((l.span(), e));
            }
            if !self.on_bridge(&spec.container) {
                let id = crate::scenario::container_id(&spec.container);
                return Err((l.span(), format!("container {id} not attached to default bridge network")));
            }
        }
        Ok(())
    }

    /// Whether a container has an endpoint on the default bridge now.
    fn on_bridge(&self, name: &str) -> bool {
        self.endpoint_on(name, "bridge").is_some()
    }

    /// `connectToNetwork` for a running container (or one being started):
    /// `validateNetworkingConfig`, `CreateEndpoint`, the sandbox when it is
    /// the first endpoint, then `Join`.
    fn connect_to_network(&mut self, name: &str, a: &Attachment) -> Result<(), Failure> {
        let span = a.span.clone();
        let Some(net) = self.network(&a.network).cloned() else {
            return Err((span, format!("network {} not found", a.network)));
        };
        if let Some(_ip) = a.ip {
            if net.default {
                return Err((span, "user specified IP address is supported on user defined networks only".into()));
            }
            if !self.user_subnet(&net) {
                return Err((
                    span,
                    "user specified IP address is supported only when connecting to networks with user configured subnets"
                        .into(),
                ));
            }
        }
        // Borrowed, not cloned: a container's spec is big, and this runs for
        // every endpoint.
        let ctr = self.ctr(name).expect("known container");
        // The MAC given at `docker run` is for the network given with `--network`.
        let first = ctr.attachments.first().map(|x| x.network.as_str());
        let mac = if first == Some(net.name.as_str()) {
            ctr.spec.mac.as_ref().and_then(|m| m.get_ref().interface_mac())
        } else {
            None
        };
        if let Some(m) = &ctr.spec.mac {
            if first == Some(net.name.as_str()) && m.get_ref().is_multicast() {
                return Err((
                    m.span(),
                    format!(
                    "failed to set the MAC address of the container's interface to {}: cannot assign requested address",
                    m.get_ref().allocated().unwrap_or_default()
                ),
                ));
            }
        }
        if self.endpoint_on(name, &net.name).is_some() {
            return Err((span, format!("endpoint with name {name} already exists in network {}", net.name)));
        }
        // CreateEndpoint: the address first.
        let ip = match self.ipam.request_address(net.pool, a.ip) {
            Ok(ip) => ip,
            Err(e) => {
                let msg = match (a.ip, &e) {
                    (_, super::ipam::IpamError::NoAvailableIps) if a.ip.is_none() => format!(
                        "no available IPv4 addresses on this network's address pools: {} ({})",
                        net.name, net.id
                    ),
                    (Some(ip), super::ipam::IpamError::OutOfRange) => {
                        format!("Invalid address {ip}: It does not belong to any of this network's subnets")
                    }
                    _ => e.to_string(),
                };
                return Err((span, msg));
            }
        };
        self.serial += 1;
        let id = hex_id(&["endpoint", &self.s.name, name, &net.name, &self.serial.to_string()]);
        let host_veth = self.veth_name(name, &net.name);
        let mtu = if net.mtu == 0 { crate::scenario::DEFAULT_MTU } else { net.mtu };
        let ep = Endpoint {
            id: id.clone(),
            network: net.name.clone(),
            container: name.to_string(),
            iface: String::new(),
            host_veth,
            address: IfaceAddr(Ipv4Network::new(ip, net.pool.subnet.prefix()).expect("valid")),
            mac: mac.unwrap_or_else(|| match self.v.container_mac {
                ContainerMac::FromIp => mac_from_ip(ip),
                ContainerMac::Random => {
                    host::random_mac(&["container-mac", &self.s.name, name, &net.name, &self.serial.to_string()])
                }
            }),
            gateway: net.gateway.map(|g| g.ip()),
            mtu,
            exposed: None,
            mapped: vec![],
            link_children: vec![],
            link_parents: vec![],
        };
        // The bridge driver's CreateEndpoint: AddEndpoint once the veth is made.
        if self.iptables {
            if let Err(e) = self.layout.add_endpoint(&mut self.rules, &net.fw_config(), ip) {
                self.ipam.release_address(net.pool, ip);
                return Err((span, e));
            }
        }
        self.index.endpoints.insert(ep.id.clone(), self.endpoints.len());
        self.index.attached.insert((ep.container.clone(), ep.network.clone()), ep.id.clone());
        self.endpoints.push(ep);
        if self.sandbox(name).is_none() {
            let mut sb = Sandbox::new(name);
            let (children, parents) = self.link_endpoints(name);
            sb.link_children = children;
            sb.link_parents = parents;
            let ns = self.new_netns(name, Some(sb));
            self.ctr_mut(name).expect("known").netns = Some(ns);
        }
        if let Err(e) = self.join(&id) {
            self.delete_endpoint(&id);
            return Err((span, e));
        }
        Ok(())
    }

    /// Whether a network's pool was given by the user (`PreferredPool`).
    fn user_subnet(&self, net: &Network) -> bool {
        self.s.spec.networks.iter().any(|n| *n.name.get_ref() == net.name && n.subnet.is_some())
    }

    /// `buildSandboxOptions`' legacy links: the endpoints of the children
    /// on the default bridge; and, through Docker's own slip, for each
    /// parent the last child's endpoint again (`parentEndpoints` takes
    /// `cEndpointID`).
    fn link_endpoints(&self, name: &str) -> (Vec<String>, Vec<String>) {
        if !self.on_bridge(name) {
            return (vec![], vec![]);
        }
        let ctr = self.ctr(name).expect("known");
        let mut children = Vec::new();
        let mut last = None;
        let mut seen = Vec::new();
        for l in &ctr.spec.links {
            let spec = l.get_ref();
            // A link is stored under its alias: the first of one alias counts.
            if seen.contains(&spec.alias) {
                continue;
            }
            seen.push(spec.alias.clone());
            if let Some(ep) = self.endpoint_on(&spec.container, "bridge") {
                children.push(ep.id.clone());
                last = Some(ep.id.clone());
            }
        }
        let parents = match last {
            Some(last) => {
                let n = self
                    .containers
                    .iter()
                    .filter(|p| p.spec.links.iter().any(|l| l.get_ref().container == name))
                    .count();
                vec![last; n]
            }
            None => vec![],
        };
        (children, parents)
    }

    /// `endpoint.sbJoin`: the interface goes into the sandbox; when this
    /// endpoint becomes the gateway endpoint, external connectivity moves
    /// to it (revoked on the old one, programmed here unless internal).
    fn join(&mut self, id: &str) -> Result<(), String> {
        let ep = self.endpoint(id).cloned().expect("known endpoint");
        let net = self.network(&ep.network).cloned().expect("known network");
        let sb = self.sandbox(&ep.container).expect("a sandbox").clone();
        let before = sb.gateway_endpoint().map(str::to_string);
        // The kernel refuses a bridge's 1024th port: refused here rather than in `run`.
        let ports = self.index.joined.get(&net.name).copied().unwrap_or(0);
        if ports >= BRIDGE_MAX_PORTS {
            return Err(format!(
                "bridge {} is full: a Linux bridge takes at most {BRIDGE_MAX_PORTS} ports (BR_MAX_PORTS), \
                 this would be port {}",
                net.bridge,
                ports + 1
            ));
        }
        let gateway = !(net.internal && self.v.internal_without_gateway);
        let key = SortKey { internal: net.internal, network: net.name.clone(), gateway };
        let (children, parents) = (sb.link_children.clone(), sb.link_parents.clone());
        {
            let sb = self.sandbox_mut(&ep.container).expect("a sandbox");
            let iface = sb.next_iface();
            sb.add(id, key);
            let e = self.endpoint_mut(id).expect("known");
            let first_join = e.iface.is_empty();
            e.iface = iface;
            if first_join {
                *self.index.joined.entry(net.name.clone()).or_default() += 1;
            }
            let e = self.endpoint_mut(id).expect("known");
            e.link_children = children;
            e.link_parents = parents;
        }
        let after = self.sandbox(&ep.container).and_then(|s| s.gateway_endpoint()).map(str::to_string);
        if after.as_deref() == Some(id) && before.as_deref() != Some(id) {
            if let Some(old) = &before {
                self.revoke(old);
            }
            if !net.internal {
                if let Err(e) = self.program(id) {
                    // The join rolls back: out of the sandbox, and the old
                    // endpoint gets its connectivity back.
                    self.driver_leave(id);
                    if let Some(sb) = self.sandbox_mut(&ep.container) {
                        sb.remove(id);
                    }
                    if let Some(old) = &before {
                        let _ = self.program(old);
                    }
                    return Err(format!(
                        "driver failed programming external connectivity on endpoint {} ({id}): {e}",
                        ep.container
                    ));
                }
            }
        }
        Ok(())
    }

    /// `ProgramExternalConnectivity`: the sandbox's ports mapped on this
    /// endpoint, then (icc off) its legacy links.
    fn program(&mut self, id: &str) -> Result<(), String> {
        let ep = self.endpoint(id).cloned().expect("known endpoint");
        let net = self.network(&ep.network).cloned().expect("known network");
        let spec = &self.containers[self.index.containers[ep.container.as_str()]].spec;
        let ports = self.ports_cache.get(spec);
        self.endpoint_mut(id).expect("known").exposed = Some(ports.clone());
        let mapped = self.allocate_ports(&ep, &net, &ports.0)?;
        if let Some(by) = self.v.clear_conntrack_on_program {
            // 23+ (moby#44742): flows that met the host before the DNAT
            // rules (the proxy, or nothing) are made to meet them again.
            self.clear_conntrack(ep.address.ip());
            for m in mapped.iter().filter(|m| m.proto == Proto::Udp) {
                let f = match by {
                    ClearUdpOnProgram::HostPort => UdpConntrackFilter { dst_port: m.host_port, dst_ip: None },
                    ClearUdpOnProgram::ContainerPortAtHostIp => UdpConntrackFilter {
                        dst_port: m.container_port,
                        dst_ip: match m.host_ip {
                            IpAddr::V4(ip) if !ip.is_unspecified() => Some(ip),
                            _ => None,
                        },
                    },
                };
                // An IPv6 host address filters the IPv6 table only.
                if matches!(m.host_ip, IpAddr::V6(ip) if !ip.is_unspecified()) {
                    continue;
                }
                if !self.conntrack_cleared_udp.contains(&f) {
                    self.conntrack_cleared_udp.push(f);
                }
            }
        }
        self.endpoint_mut(id).expect("known").mapped = mapped;
        if !net.icc {
            if let Err(e) = self.link(id, true) {
                self.release_ports(id);
                return Err(e);
            }
        }
        Ok(())
    }

    /// `RevokeExternalConnectivity`: the ports go (the exposed ports stay
    /// known), then `clearEndpointConnections` deletes every conntrack
    /// entry whose reply tuple has the endpoint's address (moby#8795: a
    /// new endpoint with the same address would inherit them).
    fn revoke(&mut self, id: &str) {
        self.release_ports(id);
        if let Some(ip) = self.endpoint(id).map(|ep| ep.address.ip()) {
            self.clear_conntrack(ip);
        }
    }

    /// `DeleteConntrackEntries`: every entry whose reply tuple has `ip`.
    fn clear_conntrack(&mut self, ip: Ipv4Addr) {
        // The set resets with the list, which the plan takes.
        if self.conntrack_cleared.is_empty() {
            self.index.cleared.clear();
        }
        if self.index.cleared.insert(ip) {
            self.conntrack_cleared.push(ip);
        }
    }

    /// The bridge driver's `Leave`: with icc off, the links go.
    fn driver_leave(&mut self, id: &str) {
        let Some(ep) = self.endpoint(id) else { return };
        let icc = self.network(&ep.network).is_none_or(|n| n.icc);
        if !icc {
            let _ = self.link(id, false);
        }
    }

    /// The bridge driver's `link`: rules for each parent (its address to
    /// this endpoint's exposed ports) and each child (this address to the
    /// child's exposed ports), added or removed. A link whose endpoint is
    /// gone is an error that ends the walk, as in libnetwork.
    fn link(&mut self, id: &str, enable: bool) -> Result<(), String> {
        let ep = self.endpoint(id).cloned().expect("known endpoint");
        let Some(exposed) = ep.exposed.clone() else { return Ok(()) };
        let Some(nc) = self.network(&ep.network).map(|n| n.fw_config()) else { return Ok(()) };
        // (parent address, child address, the child's exposed ports)
        type Pair = (Ipv4Addr, Ipv4Addr, Vec<(Proto, u16)>);
        let mut pairs: Vec<Pair> = Vec::new();
        if !exposed.1.is_empty() {
            for p in &ep.link_parents {
                let parent = self.endpoint(p).ok_or_else(|| format!("invalid endpoint id: {p}"))?;
                pairs.push((parent.address.ip(), ep.address.ip(), exposed.1.clone()));
            }
        }
        for c in &ep.link_children {
            let child = self.endpoint(c).ok_or_else(|| format!("invalid endpoint id: {c}"))?;
            match &child.exposed {
                Some(x) if !x.1.is_empty() => pairs.push((ep.address.ip(), child.address.ip(), x.1.clone())),
                _ => {}
            }
        }
        for (parent, child, ports) in pairs {
            if enable {
                self.layout.add_link(&mut self.rules, &nc, parent, child, &ports)?;
            } else {
                self.layout.del_link(&mut self.rules, &nc, parent, child, &ports);
            }
        }
        Ok(())
    }

    /// `allocatePorts`: each binding on IPv4 (the host address given, or
    /// the network's default binding address), then, with the userland
    /// proxy on and a default binding address of 0.0.0.0, on `::`. On a
    /// routed network the IPv4 side is routed (no host port); the `::` side
    /// stays NATed by the proxy (28 `addPortMappings`: NAT is disabled per
    /// family, and the network has no IPv6).
    fn allocate_ports(
        &mut self,
        ep: &Endpoint,
        net: &Network,
        bindings: &[PortBinding],
    ) -> Result<Vec<Mapped>, String> {
        let sorted;
        let bindings = if self.v.sort_port_bindings {
            sorted = {
                let mut b = bindings.to_vec();
                b.sort_by(super::endpoint::cmp_port_binding);
                b
            };
            &sorted[..]
        } else {
            bindings
        };
        let routed = net.gateway_mode == GatewayMode::Routed;
        if self.v.port_mapper == PortMapper::SamePortPerGroup {
            return self.bind_groups(ep, net, bindings);
        }
        if !routed {
            if let Some((work, e)) = self.fails_without_trace(net, bindings) {
                // What the failed start would have made and given back.
                self.given_back += work;
                return Err(e);
            }
        }
        // One name for every mapping of the container: a name may be long.
        let container: Arc<str> = ep.container.as_str().into();
        let mut done: Vec<Mapped> = Vec::new();
        for b in bindings {
            for host_ip in self.host_addresses(net, b) {
                let mapped = if routed && host_ip.is_ipv4() {
                    self.open_routed_port(ep, &container, net, b)
                } else {
                    self.allocate_port(ep, &container, net, b, host_ip)
                };
                match mapped {
                    Ok(m) => done.push(m),
                    Err(e) => {
                        self.give_back(net, &done);
                        return Err(e);
                    }
                }
            }
        }
        Ok(done)
    }

    /// 28's `addPortMappings`: the sorted bindings in runs that differ
    /// only in host address (`needSamePort`), each run given one host port
    /// by [`bind_host_ports`](Self::bind_host_ports). A failure unmaps
    /// what the runs before it mapped.
    fn bind_groups(&mut self, ep: &Endpoint, net: &Network, bindings: &[PortBinding]) -> Result<Vec<Mapped>, String> {
        let container: Arc<str> = ep.container.as_str().into();
        let mut done: Vec<Mapped> = Vec::new();
        for group in same_port_groups(bindings) {
            match self.bind_host_ports(ep, &container, net, group) {
                Ok(m) => done.extend(m),
                Err(e) => {
                    self.give_back(net, &done);
                    return Err(e);
                }
            }
        }
        Ok(done)
    }

    /// Unmaps what a failed start mapped, counting it against
    /// `MAX_GIVEN_BACK` (checked by `start`).
    fn give_back(&mut self, net: &Network, done: &[Mapped]) {
        self.given_back += done.len() + done.iter().map(|m| m.rules.len()).sum::<usize>();
        self.unmap(net, done);
    }

    /// bridgelab's limit on published ports, not Docker's failure: no
    /// `fails` can expect it, and no more containers start. Said once, at
    /// the container that crossed it.
    fn too_many_ports(&mut self, ep: &Endpoint) -> String {
        if !self.too_big {
            self.too_big = true;
            let span = self.ctr(&ep.container).map(|c| c.spec.name.span()).unwrap_or(0..0);
            self.err(
                span,
                format!("bridgelab publishes at most {MAX_PUBLISHED_PORTS} ports in one lab, each with a listener"),
            );
        }
        format!("bridgelab publishes at most {MAX_PUBLISHED_PORTS} ports in one lab")
    }

    /// `bindHostPorts`: one run's attempts, up to 10 for a dynamic port or
    /// a range (each failure moves the allocator on), one for an exact port.
    fn bind_host_ports(
        &mut self,
        ep: &Endpoint,
        container: &Arc<str>,
        net: &Network,
        group: &[PortBinding],
    ) -> Result<Vec<Mapped>, String> {
        let b = group[0];
        let exact = b.host_port != 0 && b.host_port_end.max(b.host_port) == b.host_port;
        let mut last = String::new();
        for _ in 0..if exact { 1 } else { 10 } {
            match self.attempt_bind_host_ports(ep, container, net, group) {
                Ok(m) => return Ok(m),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// `attemptBindHostPorts`: one port for every NATed address of the run
    /// (`RequestPortsInRange`), each socket bound (`bindTCPOrUDP`, with
    /// `SO_REUSEADDR`: only a listening socket, or an address the host
    /// lacks, stops a bind), the rules added, then the TCP sockets listen
    /// (`tcpListenBoundPorts`), where two of the run that overlap (0.0.0.0
    /// and 127.0.0.1) clash. On a routed network the IPv4 side takes no
    /// port (`disableNAT`). Any failure undoes the attempt.
    fn attempt_bind_host_ports(
        &mut self,
        ep: &Endpoint,
        container: &Arc<str>,
        net: &Network,
        group: &[PortBinding],
    ) -> Result<Vec<Mapped>, String> {
        let b = group[0];
        let routed = net.gateway_mode == GatewayMode::Routed;
        // (binding, host address, NATed) in `cfg` order: each binding's IPv4, then `::`.
        let reqs: Vec<(PortBinding, IpAddr, bool)> = group
            .iter()
            .flat_map(|g| self.host_addresses(net, g).into_iter().map(move |ip| (*g, ip, !(routed && ip.is_ipv4()))))
            .collect();
        let nat: Vec<IpAddr> = reqs.iter().filter(|r| r.2).map(|r| r.1).collect();
        if self.bound + nat.len() > MAX_PUBLISHED_PORTS {
            return Err(self.too_many_ports(ep));
        }
        let (proto, end) = (b.proto, b.host_port_end.max(b.host_port));
        let range = (b.host_port != 0).then_some((b.host_port, end));
        let port =
            if nat.is_empty() { 0 } else { self.ports.request_ports(&nat, proto, range).map_err(|e| e.to_string())? };
        let release = |c: &mut Self| {
            for ip in &nat {
                c.ports.release(*ip, proto, port);
            }
        };
        for (g, ip, natted) in &reqs {
            if !natted {
                continue;
            }
            if let Some(errno) = self.bind_errno(*ip, proto, port) {
                release(self);
                let cfg = go_port_binding(*ip, g.host_port, end, ep.address.ip(), g.port, proto);
                return Err(if g.host_port == end {
                    format!("failed to bind host port for {cfg}: {errno}")
                } else {
                    format!("failed to bind host port {port} for {cfg}: {errno}")
                });
            }
        }
        let maps: Vec<PortMapping> = reqs
            .iter()
            .map(|(g, ip, natted)| PortMapping {
                container: container.clone(),
                proto,
                host_ip: if *natted { *ip } else { IpAddr::V4(Ipv4Addr::UNSPECIFIED) },
                host_port: if *natted { port } else { 0 },
                container_ip: ep.address.ip(),
                container_port: g.port,
            })
            .collect();
        let nc = net.fw_config();
        let mut rules: Vec<Vec<crate::plan::firewall::RuleRef>> = Vec::new();
        if self.iptables {
            for (i, m) in maps.iter().enumerate() {
                match self.layout.add_ports(&mut self.rules, &nc, std::slice::from_ref(m)) {
                    Ok(r) => rules.push(r),
                    Err(e) => {
                        self.layout.del_ports(&mut self.rules, &nc, &maps[..i]);
                        release(self);
                        return Err(e);
                    }
                }
            }
        }
        if proto == Proto::Tcp {
            let mut listening: Vec<IpAddr> = Vec::new();
            for (_, ip, natted) in &reqs {
                if !natted {
                    continue;
                }
                if self.bind_error_with(*ip, proto, port, &listening).is_some() {
                    if self.iptables {
                        self.layout.del_ports(&mut self.rules, &nc, &maps);
                    }
                    release(self);
                    return Err("failed to listen on TCP socket: address already in use".into());
                }
                listening.push(*ip);
            }
        }
        let mut out = Vec::with_capacity(maps.len());
        for (i, (m, (_, _, natted))) in maps.into_iter().zip(&reqs).enumerate() {
            if *natted {
                self.binds.entry((proto, port)).or_default().push(m.host_ip);
                self.bound += 1;
            }
            out.push(Mapped {
                proto,
                host_ip: m.host_ip,
                host_port: m.host_port,
                container_ip: m.container_ip,
                container_port: m.container_port,
                rules: rules.get(i).cloned().unwrap_or_default(),
            });
            if *natted && self.proxy {
                self.proxies.push(m);
            } else {
                self.unrelayed.push(m);
            }
        }
        Ok(out)
    }

    /// Why 28's `bindTCPOrUDP` cannot bind `ip:port` (an errno's words):
    /// an IPv4 address the host lacks, or, for TCP, a listening socket on
    /// an overlapping address (Docker's UDP sockets all have
    /// `SO_REUSEADDR`, so they let another bind).
    fn bind_errno(&self, ip: IpAddr, proto: Proto, port: u16) -> Option<&'static str> {
        if let IpAddr::V4(v4) = ip {
            if !self.host_address(v4) {
                return Some("cannot assign requested address");
            }
        }
        (proto == Proto::Tcp && self.bind_error(ip, proto, port).is_some()).then_some("address already in use")
    }

    /// A routed network's IPv4 binding (28 `configPortBindingIPv4` with
    /// NAT disabled): on 0.0.0.0 whatever host address was asked for, no
    /// host port, no listener, no proxy; the firewall opens the container's
    /// port (`setPerPortForwarding`). Docker still lists it (`docker
    /// inspect`: `0.0.0.0:` with an empty host port).
    fn open_routed_port(
        &mut self,
        ep: &Endpoint,
        container: &Arc<str>,
        net: &Network,
        b: &PortBinding,
    ) -> Result<Mapped, String> {
        let m = PortMapping {
            container: container.clone(),
            proto: b.proto,
            host_ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            host_port: 0,
            container_ip: ep.address.ip(),
            container_port: b.port,
        };
        let rules = if self.iptables {
            self.layout.add_ports(&mut self.rules, &net.fw_config(), std::slice::from_ref(&m))?
        } else {
            vec![]
        };
        self.unrelayed.push(m.clone());
        Ok(Mapped {
            proto: b.proto,
            host_ip: m.host_ip,
            host_port: 0,
            container_ip: m.container_ip,
            container_port: b.port,
            rules,
        })
    }

    /// The host addresses a binding is mapped on, in order: the one given
    /// or the network's default; then, with the userland proxy on and a
    /// default of 0.0.0.0, `::`.
    fn host_addresses(&self, net: &Network, b: &PortBinding) -> Vec<IpAddr> {
        let default_ip = net.host_binding.unwrap_or(Ipv4Addr::UNSPECIFIED);
        let mut wanted = vec![IpAddr::V4(b.host_ip.unwrap_or(default_ip))];
        if self.v.proxy_on_ipv6_any && self.proxy && b.host_ip.is_none() && default_ip.is_unspecified() {
            wanted.push(IpAddr::V6(Ipv6Addr::UNSPECIFIED));
        }
        wanted
    }

    /// When every binding has an explicit host port, a start whose ports
    /// fail leaves nothing behind: no dynamic pointer moves, and what it
    /// mapped it unmaps. So the model finds the failing binding without
    /// mapping the ones before it (highest first, they may be 57,000), and
    /// returns what that work would have been and Docker's error. `None`:
    /// no failure this way, or a case left to the real path.
    fn fails_without_trace(&self, net: &Network, bindings: &[PortBinding]) -> Option<(usize, String)> {
        if bindings.iter().any(|b| b.host_port == 0 || b.host_port_end > b.host_port) {
            return None;
        }
        if self.iptables
            && (!self.rules.has_chain(Table::Nat, "DOCKER") || !self.rules.has_chain(Table::Filter, "DOCKER"))
        {
            return None;
        }
        let mut taken: HashSet<(IpAddr, Proto, u16)> = HashSet::new();
        let mut binds: HashMap<(Proto, u16), Vec<IpAddr>> = HashMap::new();
        let (mut work, mut mapped) = (0, 0);
        for b in bindings {
            for ip in self.host_addresses(net, b) {
                if self.bound + mapped >= MAX_PUBLISHED_PORTS {
                    return None;
                }
                let port = b.host_port;
                if self.ports.is_taken(ip, b.proto, port) || !taken.insert((ip, b.proto, port)) {
                    return Some((work, super::portallocator::PortError::AlreadyAllocated(ip, port).to_string()));
                }
                let rules = if self.iptables && ip.is_ipv4() { 3 } else { 0 };
                let extra = binds.get(&(b.proto, port)).map(Vec::as_slice).unwrap_or(&[]);
                if let Some(e) = self.bind_error_with(ip, b.proto, port, extra) {
                    let e = if self.proxy { format!("Error starting userland proxy: {e}") } else { e };
                    return Some((work, e));
                }
                binds.entry((b.proto, port)).or_default().push(ip);
                work += 1 + rules;
                mapped += 1;
            }
        }
        None
    }

    /// `allocatePort` → `MapRange`: the allocator, the forwarding rules,
    /// then the proxy (or the dummy listener). A dynamic port is tried up
    /// to 10 times; an explicit one once.
    fn allocate_port(
        &mut self,
        ep: &Endpoint,
        container: &Arc<str>,
        net: &Network,
        b: &PortBinding,
        host_ip: IpAddr,
    ) -> Result<Mapped, String> {
        if self.bound >= MAX_PUBLISHED_PORTS {
            return Err(self.too_many_ports(ep));
        }
        let dynamic = b.host_port == 0;
        let range = (!dynamic).then_some((b.host_port, b.host_port_end.max(b.host_port)));
        let mut last = String::new();
        for _ in 0..if dynamic { 10 } else { 1 } {
            let port = match self.ports.request(host_ip, b.proto, range) {
                Ok(p) => p,
                Err(e) => {
                    last = e.to_string();
                    continue;
                }
            };
            let m = PortMapping {
                container: container.clone(),
                proto: b.proto,
                host_ip,
                host_port: port,
                container_ip: ep.address.ip(),
                container_port: b.port,
            };
            let nc = net.fw_config();
            // 20.10 adds the rules, then binds.
            let rules = if self.iptables {
                match self.layout.add_ports(&mut self.rules, &nc, std::slice::from_ref(&m)) {
                    Ok(r) => r,
                    Err(e) => {
                        self.ports.release(host_ip, b.proto, port);
                        last = e;
                        continue;
                    }
                }
            } else {
                vec![]
            };
            if let Some(e) = self.bind_error(host_ip, b.proto, port) {
                if !rules.is_empty() {
                    self.layout.del_ports(&mut self.rules, &nc, std::slice::from_ref(&m));
                }
                self.ports.release(host_ip, b.proto, port);
                last = if self.proxy { format!("Error starting userland proxy: {e}") } else { e };
                continue;
            }
            self.binds.entry((b.proto, port)).or_default().push(host_ip);
            self.bound += 1;
            if self.proxy {
                self.proxies.push(m.clone());
            } else {
                self.unrelayed.push(m.clone());
            }
            return Ok(Mapped {
                proto: b.proto,
                host_ip,
                host_port: port,
                container_ip: m.container_ip,
                container_port: b.port,
                rules,
            });
        }
        Err(last)
    }

    /// Why a listener on `ip:port` cannot bind, in Go's words. IPv6
    /// listeners are v6-only (Go's `tcp6`), so they meet only each other.
    fn bind_error(&self, ip: IpAddr, proto: Proto, port: u16) -> Option<String> {
        self.bind_error_with(ip, proto, port, &[])
    }

    /// [`bind_error`](Self::bind_error) with `extra` listeners on that port too.
    fn bind_error_with(&self, ip: IpAddr, proto: Proto, port: u16, extra: &[IpAddr]) -> Option<String> {
        let (net, shown) = match ip {
            IpAddr::V4(v4) => (format!("{proto}4"), format!("{v4}:{port}")),
            IpAddr::V6(v6) => (format!("{proto}6"), format!("[{v6}]:{port}")),
        };
        if let IpAddr::V4(v4) = ip {
            if !self.host_address(v4) {
                return Some(format!("listen {net} {shown}: bind: cannot assign requested address"));
            }
        }
        let meets = |b: &IpAddr| b.is_ipv4() == ip.is_ipv4() && (b.is_unspecified() || ip.is_unspecified() || *b == ip);
        let clash = self.binds.get(&(proto, port)).is_some_and(|ips| ips.iter().any(meets)) || extra.iter().any(meets);
        clash.then(|| format!("listen {net} {shown}: bind: address already in use"))
    }

    /// The port mapper's `Unmap` of each binding: proxy stopped, rules
    /// deleted if there, port released. In one pass over the proxies and
    /// the rules, however many ports there are.
    fn unmap(&mut self, net: &Network, mapped: &[Mapped]) {
        // Routed bindings all have host port 0: the container side tells them apart.
        let mut gone: HashSet<(IpAddr, Proto, u16, Ipv4Addr, u16)> = HashSet::new();
        let mut bindings = Vec::new();
        let nobody: Arc<str> = "".into();
        for m in mapped {
            if let Some(ips) = self.binds.get_mut(&(m.proto, m.host_port)) {
                if let Some(i) = ips.iter().position(|ip| *ip == m.host_ip) {
                    ips.remove(i);
                    self.bound -= 1;
                }
            }
            gone.insert((m.host_ip, m.proto, m.host_port, m.container_ip, m.container_port));
            bindings.push(PortMapping {
                container: nobody.clone(),
                proto: m.proto,
                host_ip: m.host_ip,
                host_port: m.host_port,
                container_ip: m.container_ip,
                container_port: m.container_port,
            });
            if m.host_port != 0 {
                self.ports.release(m.host_ip, m.proto, m.host_port);
            }
        }
        let kept =
            |p: &PortMapping| !gone.contains(&(p.host_ip, p.proto, p.host_port, p.container_ip, p.container_port));
        self.proxies.retain(kept);
        self.unrelayed.retain(kept);
        if self.iptables {
            self.layout.del_ports(&mut self.rules, &net.fw_config(), &bindings);
        }
    }

    /// `releasePorts` of an endpoint.
    fn release_ports(&mut self, id: &str) {
        let Some(ep) = self.endpoint_mut(id) else { return };
        let mapped = std::mem::take(&mut ep.mapped);
        let network = ep.network.clone();
        let Some(net) = self.network(&network).cloned() else { return };
        self.unmap(&net, &mapped);
    }

    /// `endpoint.sbLeave`: connectivity revoked when it was the gateway
    /// endpoint, the driver's `Leave`, out of the sandbox, and
    /// connectivity programmed on the next gateway endpoint.
    fn leave(&mut self, id: &str) {
        let Some(ep) = self.endpoint(id).cloned() else { return };
        let was_gateway = self.sandbox(&ep.container).and_then(|s| s.gateway_endpoint()) == Some(id);
        if was_gateway {
            self.revoke(id);
        }
        self.driver_leave(id);
        if let Some(sb) = self.sandbox_mut(&ep.container) {
            sb.remove(id);
        }
        if was_gateway {
            // Programmed whatever the network (libnetwork checks `internal`
            // only when joining); a failure is only logged.
            if let Some(next) = self.sandbox(&ep.container).and_then(|s| s.gateway_endpoint()).map(str::to_string) {
                let _ = self.program(&next);
            }
        }
    }

    /// `endpoint.Delete`: the veth goes, the address is released.
    fn delete_endpoint(&mut self, id: &str) {
        let Some(&i) = self.index.endpoints.get(id) else { return };
        let ep = self.endpoints.remove(i);
        self.index.endpoints.remove(id);
        shift_after(&mut self.index.endpoints, i);
        self.index.attached.remove(&(ep.container.clone(), ep.network.clone()));
        if !ep.iface.is_empty() {
            if let Some(n) = self.index.joined.get_mut(&ep.network) {
                *n -= 1;
            }
        }
        if let Some(n) = self.network(&ep.network) {
            let (pool, nc) = (n.pool, n.fw_config());
            // DeleteEndpoint: DelEndpoint first.
            if self.iptables {
                self.layout.del_endpoint(&mut self.rules, &nc, ep.address.ip());
            }
            self.ipam.release_address(pool, ep.address.ip());
        }
    }

    /// `releaseNetwork`: `sandbox.Delete` leaves and deletes every endpoint,
    /// in the sandbox's order. The namespace goes with its last process.
    pub fn release_network(&mut self, name: &str) {
        let ids: Vec<String> =
            self.sandbox(name).map(|sb| sb.endpoints.iter().map(|(id, _)| id.clone()).collect()).unwrap_or_default();
        for id in &ids {
            self.leave(id);
            self.delete_endpoint(id);
        }
        // An endpoint made but never joined (a failed join) goes too.
        let strays: Vec<String> =
            self.endpoints.iter().filter(|e| e.container == name && e.iface.is_empty()).map(|e| e.id.clone()).collect();
        for id in strays {
            self.delete_endpoint(&id);
        }
        let netns = match self.ctr_mut(name) {
            Some(c) => {
                c.running = false;
                c.netns.take()
            }
            None => None,
        };
        if let Some(i) = self.index.sandboxes.remove(name) {
            self.namespaces[i].sandbox = None;
        }
        let Some(ns) = netns.filter(|ns| ns != "host") else { return };
        let used = self.containers.iter().any(|o| o.running && o.netns.as_deref() == Some(ns.as_str()));
        if !used {
            if let Some(i) = self.namespaces.iter().position(|n| n.name == ns) {
                self.namespaces.remove(i);
                self.index.netns_names.remove(&ns);
                shift_after(&mut self.index.sandboxes, i);
            }
        }
    }

    /// `docker stop` (and the stop of `restart` and `rm -f`).
    pub fn stop(&mut self, name: &str) {
        if self.ctr(name).is_some_and(|c| c.running) {
            self.release_network(name);
        }
    }

    /// `docker network connect`: a running container joins at once; a
    /// stopped one only records the network.
    pub fn connect(
        &mut self,
        name: &str,
        network: &str,
        ip: Option<Ipv4Addr>,
        span: Range<usize>,
    ) -> Result<(), Failure> {
        let ctr = self.ctr(name).cloned().ok_or_else(|| (span.clone(), format!("No such container: {name}")))?;
        let Some(net) = self.network(network).cloned() else {
            return Err((span, format!("network {network} not found")));
        };
        match ctr.mode() {
            NetworkMode::Host | NetworkMode::Container(_) => return Err((span, SHARED_NETWORK.into())),
            NetworkMode::None => return Err((span, NO_NETWORK.into())),
            _ => {}
        }
        let a = Attachment { network: net.name.clone(), ip, span: span.clone() };
        if !ctr.running {
            if ip.is_some() && (net.default || !self.user_subnet(&net)) {
                let e = if net.default {
                    "user specified IP address is supported on user defined networks only"
                } else {
                    "user specified IP address is supported only when connecting to networks with user configured subnets"
                };
                return Err((span, e.into()));
            }
            let c = self.ctr_mut(name).expect("known");
            if !c.attachments.iter().any(|x| x.network == a.network) {
                c.attachments.push(a);
            }
            return Ok(());
        }
        self.connect_to_network(name, &a)?;
        self.ctr_mut(name).expect("known").attachments.push(a);
        Ok(())
    }

    /// `docker network disconnect`.
    pub fn disconnect(&mut self, name: &str, network: &str, span: Range<usize>) -> Result<(), Failure> {
        let ctr = self.ctr(name).cloned().ok_or_else(|| (span.clone(), format!("No such container: {name}")))?;
        let id = crate::plan::libnetwork::long_container_id(name);
        if !ctr.running {
            if !ctr.attachments.iter().any(|a| a.network == network) {
                return Err((span, format!("container {id} is not connected to the network {network}")));
            }
            self.ctr_mut(name).expect("known").attachments.retain(|a| a.network != network);
            return Ok(());
        }
        let ep = self.endpoints.iter().find(|e| e.container == name && e.network == network).map(|e| e.id.clone());
        let Some(ep) = ep else {
            return Err((span, format!("container {id} is not connected to network {network}")));
        };
        self.leave(&ep);
        self.delete_endpoint(&ep);
        self.ctr_mut(name).expect("known").attachments.retain(|a| a.network != network);
        Ok(())
    }

    /// Forgets a removed container.
    pub fn forget(&mut self, name: &str) {
        if let Some(i) = self.index.containers.remove(name) {
            self.containers.remove(i);
            shift_after(&mut self.index.containers, i);
        }
    }

    fn veth_name(&mut self, container: &str, network: &str) -> String {
        // Docker picks "veth" + 7 random hex digits; bridgelab's are stable.
        (0u32..)
            .map(|i| {
                let h = crate::stable_hash::fnv1a(&["veth", container, network, &i.to_string()]);
                format!("veth{:07x}", h & 0xfff_ffff)
            })
            .find(|n| self.veth_names.insert(n.clone()))
            .expect("a free name")
    }

    /// Every published port's `docker-proxy`, for the plan.
    pub fn relays(&self) -> Vec<PortMapping> {
        self.proxies.clone()
    }

    /// The bindings without a proxy (userland proxy off).
    pub fn unrelayed(&self) -> Vec<PortMapping> {
        self.unrelayed.clone()
    }
}

/// Positions in the controller's lists by key, and what would otherwise
/// be counted by scanning them. Kept by the controller's own methods, the
/// only ones that change those lists.
#[derive(Debug, Default)]
struct Index {
    /// Container name to its place in `containers` (names are unique).
    containers: HashMap<String, usize>,
    /// Endpoint id to its place in `endpoints`.
    endpoints: HashMap<String, usize>,
    /// (container, network) to the endpoint's id.
    attached: HashMap<(String, String), String>,
    /// Container to the place in `namespaces` of the namespace holding its
    /// sandbox (one sandbox per container).
    sandboxes: HashMap<String, usize>,
    /// Names of the namespaces.
    netns_names: HashSet<String>,
    /// Per network, its endpoints joined to a sandbox: the bridge's ports.
    joined: HashMap<String, usize>,
    /// `conntrack_cleared` as a set.
    cleared: HashSet<Ipv4Addr>,
}

/// After the removal of place `i` from a list, the places behind it move
/// down by one.
fn shift_after<K>(index: &mut HashMap<K, usize>, i: usize) {
    for at in index.values_mut() {
        if *at > i {
            *at -= 1;
        }
    }
}

/// 28's `sortAndNormPBs` order in runs of `needSamePort`: bindings that
/// differ only in host address (the container address is the endpoint's).
pub(crate) fn same_port_groups(bindings: &[PortBinding]) -> impl Iterator<Item = &[PortBinding]> {
    let end = |b: &PortBinding| b.host_port_end.max(b.host_port);
    bindings
        .chunk_by(move |a, b| a.port == b.port && a.proto == b.proto && a.host_port == b.host_port && end(a) == end(b))
}

/// A `types.PortBinding` as Go's `String` writes it (libnetwork/types):
/// `HOSTIP:` (`[::]:` for IPv6), the host port (`-END` for a range) and
/// `:` when there is one, the container address, `PORT/PROTO`.
pub(crate) fn go_port_binding(
    host_ip: IpAddr,
    host_port: u16,
    end: u16,
    ip: Ipv4Addr,
    port: u16,
    proto: Proto,
) -> String {
    let host = match host_ip {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => format!("[{a}]"),
    };
    let ports = match host_port {
        0 => String::new(),
        p if end != p => format!("{p}-{end}"),
        p => p.to_string(),
    };
    format!("{host}:{ports}:{ip}:{port}/{proto}")
}
