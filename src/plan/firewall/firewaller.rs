//! The bridge driver's firewall calls, shaped like moby's own
//! `firewaller.Firewaller` / `firewaller.Network`
//! (`libnetwork/drivers/bridge/internal/firewaller/firewaller.go` @v28.5.2;
//! `daemon/libnetwork/drivers/bridge/internal/firewaller` @docker-v29.7.2).
//!
//! The libnetwork controller makes these calls, in Docker's order, on the
//! version's firewaller; each implementation replays its backend's
//! commands into a [`Ruleset`]. moby's `Network` object keeps the network's
//! config and clean-up functions; here the controller passes the same
//! [`NetworkConfig`] to every call instead, so an implementation needs no
//! state of its own beyond the rule set.
//!
//! Implementations: `super::iptabler` (Docker 28, Docker 29 with
//! iptables), the Docker 20.10 adapter in `super::docker20`; Docker 29's
//! nftables backend (`nftabler`) goes behind the same trait.

use std::net::Ipv4Addr;

use ipnetwork::Ipv4Network;

use super::{PortMapping, RuleRef, Ruleset};
use crate::scenario::Proto;

/// `firewaller.Config`: the daemon-wide settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// `--iptables`: IPv4 firewalling.
    pub ipv4: bool,
    /// `--ip6tables` (on by default since Docker 27): the IPv6 chains are
    /// made even though bridgelab's networks have no IPv6.
    pub ipv6: bool,
    /// `!--userland-proxy`: packets from a bridge are DNATed back into it.
    pub hairpin: bool,
    /// `--allow-direct-routing` (28.2+): no raw-table direct-access drops.
    pub allow_direct_routing: bool,
}

/// A network's gateway mode for IPv4 (`com.docker.network.bridge.gateway_mode_ipv4`):
/// the scenario's own value, one type for the file and the firewall.
pub use crate::scenario::GatewayMode;

/// `firewaller.NetworkConfig` with its IPv4 `NetworkConfigFam` folded in
/// (bridgelab's networks have no IPv6, so `Config6` is always invalid).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkConfig {
    /// `IfName`: the bridge device.
    pub if_name: String,
    pub internal: bool,
    pub icc: bool,
    /// `Masquerade` (`com.docker.network.bridge.enable_ip_masquerade`).
    pub masquerade: bool,
    /// `Config4.HostIP` (`host_ipv4`): SNAT to this address instead of MASQUERADE.
    pub host_ip: Option<Ipv4Addr>,
    /// `Config4.Prefix`: the network's subnet.
    pub prefix: Ipv4Network,
    /// `Config4.Routed` / `Config4.Unprotected` come from the gateway mode.
    pub gateway_mode: GatewayMode,
}

impl NetworkConfig {
    /// `Config4.Routed`.
    pub fn routed(&self) -> bool {
        self.gateway_mode == GatewayMode::Routed
    }
    /// `Config4.Unprotected`.
    pub fn unprotected(&self) -> bool {
        self.gateway_mode == GatewayMode::NatUnprotected
    }
}

/// `firewaller.Firewaller` and `firewaller.Network` in one trait: the
/// firewall side of the bridge driver and the controller.
///
/// Errors are Docker's words (what `docker network create` / `docker run`
/// would print after its own prefix).
pub trait Firewaller: std::fmt::Debug {
    /// The backend's name, for messages ("iptables", "nftables").
    fn backend(&self) -> &'static str;

    /// The daemon-wide settings it was made with.
    fn config(&self) -> &Config;

    /// `NewIptabler` / `NewNftabler`, made by the bridge driver's
    /// `configure` at every daemon start, before any network: old chains
    /// removed, the driver's own chains made.
    fn init(&self, rules: &mut Ruleset);

    /// The controller's `setupUserChains` (DOCKER-USER), at the end of
    /// `libnetwork.New`, after the networks found in the store were made
    /// again. Docker 20.10 calls it (`arrangeUserFilterRule`) after each
    /// network instead. nftables has no DOCKER-USER: a no-op.
    fn setup_user_chain(&self, _rules: &mut Ruleset) {}

    /// `FilterForwardDrop(IPv4)`: called by `setupIPv4Forwarding` when the
    /// daemon turned `ip_forward` on and `--ip-forward-no-drop` is off.
    fn filter_forward_drop(&self, rules: &mut Ruleset);

    /// Whether it implements moby's `filterForwardDropper` (bridge
    /// setup_ip_forwarding.go): the iptables layouts do; one that does not
    /// (29's nftabler) makes `setupIPv4Forwarding` only check that
    /// `ip_forward` is on (`checkIPv4Forwarding`).
    fn filter_forward_dropper(&self) -> bool {
        true
    }

    /// `NewNetwork` (= `ReapplyNetworkLevelRules`): the network's own
    /// rules, at the end of the bridge driver's `createNetwork`.
    fn new_network(&self, rules: &mut Ruleset, nc: &NetworkConfig) -> Result<(), String>;

    /// `DelNetworkLevelRules`, from the driver's `deleteNetwork`.
    fn del_network(&self, rules: &mut Ruleset, nc: &NetworkConfig);

    /// `AddEndpoint`, from the driver's `CreateEndpoint` once the veth is
    /// made (before the container joins).
    fn add_endpoint(&self, _rules: &mut Ruleset, _nc: &NetworkConfig, _ip: Ipv4Addr) -> Result<(), String> {
        Ok(())
    }

    /// `DelEndpoint`, from the driver's `DeleteEndpoint`.
    fn del_endpoint(&self, _rules: &mut Ruleset, _nc: &NetworkConfig, _ip: Ipv4Addr) {}

    /// `AddPorts`: the rules for published ports, once their host ports
    /// are bound. Returns the rules it added (for bridgelab's accounting;
    /// deletion goes through [`del_ports`](Self::del_ports)).
    fn add_ports(&self, rules: &mut Ruleset, nc: &NetworkConfig, pbs: &[PortMapping]) -> Result<Vec<RuleRef>, String>;

    /// `DelPorts`: the rules of these bindings go (those not there are
    /// skipped, as moby's `Rule.Delete` does).
    fn del_ports(&self, rules: &mut Ruleset, nc: &NetworkConfig, pbs: &[PortMapping]);

    /// `AddLink`: legacy-link rules from `parent` to `child`'s exposed ports.
    fn add_link(
        &self,
        rules: &mut Ruleset,
        nc: &NetworkConfig,
        parent: Ipv4Addr,
        child: Ipv4Addr,
        ports: &[(Proto, u16)],
    ) -> Result<(), String>;

    /// `DelLink`: never fails (moby only logs).
    fn del_link(
        &self,
        rules: &mut Ruleset,
        nc: &NetworkConfig,
        parent: Ipv4Addr,
        child: Ipv4Addr,
        ports: &[(Proto, u16)],
    );
}
