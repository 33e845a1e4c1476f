//! One model of libnetwork, the networking of Docker 17.06 and later:
//! the controller and the daemon's calls into it ([`controller`]),
//! networks ([`network`]), endpoints ([`endpoint`]), sandboxes
//! ([`sandbox`]), the default IPAM driver ([`ipam`]) and the port
//! allocator ([`portallocator`]). What differs between Docker releases is
//! data in [`version`]; the rules come from the release's firewall layout
//! (`plan/firewall/docker20.rs`) through `FirewallLayout`.
//!
//! The model replays what the daemon does, in its order: start (driver
//! configuration, the default bridge), `docker network create` for each
//! `[[network]]`, `docker run` for each container, then each `[[step]]`;
//! after the start and after every step the state is written out as a
//! [`Plan`].

pub mod controller;
pub mod endpoint;
pub mod gosort;
pub mod ipam;
pub mod network;
pub mod portallocator;
pub mod sandbox;
pub mod version;

use std::collections::HashMap;

use controller::Controller;
use version::Version;

use super::host;
use super::*;
use crate::scenario::{Diagnostic, Scenario, Step, StepAction, StepContainer};

/// Docker's 64-hex container ID, stable per container name; its first 12
/// digits are the short ID the scenario checks quote.
pub fn long_container_id(name: &str) -> String {
    let short = crate::scenario::container_id(name);
    let rest = network::hex_id(&["container-id-long", name]);
    format!("{short}{}", &rest[..52])
}

/// Plans a scenario for a libnetwork release.
pub fn plan(s: &Scenario, v: &'static Version) -> Result<Plan, Diagnostics> {
    let mut c = Controller::new(s, v);
    c.start_daemon(false);
    if c.errors.is_empty() {
        for n in &s.spec.networks {
            if let Err((span, e)) = c.create_network(n) {
                c.err(span, e);
            }
        }
    }
    if c.errors.is_empty() {
        for spec in &s.spec.containers {
            c.create(spec);
            if spec.running {
                // Past a bridgelab limit its own error says so.
                if let Err((span, e)) = c.run(spec.name()) {
                    if !c.too_big {
                        c.err(span, e);
                    }
                }
            }
        }
    }
    let mut plan = snapshot(&mut c)?;
    // What the setup revoked met no traffic yet.
    plan.conntrack_cleared.clear();
    plan.conntrack_cleared_udp.clear();
    let mut size = super::limits::PlanSize::default();
    size.add(s, &plan, "the start", || super::limits::heaviest(s, &plan))?;
    for (i, step) in s.spec.steps.iter().enumerate() {
        let action = run_step(&mut c, step);
        let after = snapshot(&mut c)?;
        size.add(s, &after, &format!("step {}", i + 1), || step.action.span())?;
        plan.steps.push(StepPlan { action, after });
    }
    Ok(plan)
}

/// One `[[step]]`; returns what it did, for reports. A failure is an
/// error unless the step says it `fails` with Docker's message.
fn run_step(c: &mut Controller, step: &Step) -> String {
    let action = *step.action.get_ref();
    let span = step.action.span();
    let name = step
        .container
        .as_ref()
        .map(|x| x.get_ref().name().to_string())
        // A flow's label is its name.
        .or_else(|| step.name.as_ref().map(|n| n.get_ref().clone()))
        .unwrap_or_default();
    let network = step.network.as_ref().map(|n| n.get_ref().clone()).unwrap_or_default();
    let unknown = |c: &Controller| c.ctr(&name).is_none();
    let result: Result<(), controller::Failure> = match action {
        StepAction::Stop if unknown(c) => Err((span, format!("No such container: {name}"))),
        StepAction::Stop => {
            c.stop(&name);
            Ok(())
        }
        StepAction::Start if unknown(c) => Err((span, format!("No such container: {name}"))),
        StepAction::Start => c.start(&name),
        StepAction::Restart if unknown(c) => Err((span, format!("No such container: {name}"))),
        StepAction::Restart => {
            c.stop(&name);
            // daemon/restart.go `ContainerRestart`, in 20.10.24 and 28.5.2 alike.
            c.start(&name).map_err(|(at, e)| (at, format!("Cannot restart container {name}: {e}")))
        }
        StepAction::Remove => {
            c.stop(&name);
            c.forget(&name);
            Ok(())
        }
        StepAction::Run => match step.container.as_ref().map(|x| x.get_ref()) {
            Some(StepContainer::Inline(spec)) => {
                c.create(spec);
                if spec.running {
                    c.run(spec.name())
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        },
        StepAction::FlushIptables => {
            c.rules.flush_all();
            Ok(())
        }
        // Traffic, not the daemon: the host stays as it is.
        StepAction::Flow => Ok(()),
        // Docker 20.10 does not watch the rules (no firewalld here): they
        // stay as the text leaves them.
        StepAction::HostRules => host::host_rules_step(c.s, step, &mut c.rules),
        StepAction::Sysctl => {
            c.sysctl_writes.push(host::sysctl_step(step));
            Ok(())
        }
        StepAction::RestartDaemon => {
            // Shutting down stops every container (none has a restart policy
            // here, so none comes back by itself).
            let running: Vec<String> =
                c.containers.iter().filter(|x| x.running).map(|x| x.name().to_string()).collect();
            for n in running.iter().rev() {
                c.stop(n);
            }
            c.start_daemon(true);
            Ok(())
        }
        StepAction::Connect => {
            let at = step.network.as_ref().map(|n| n.span()).unwrap_or(span);
            c.connect(&name, &network, step.ip.as_ref().map(|i| i.get_ref().0), at)
        }
        StepAction::Disconnect => {
            let at = step.network.as_ref().map(|n| n.span()).unwrap_or(span);
            c.disconnect(&name, &network, at)
        }
    };
    let mut label = match (name.is_empty(), network.is_empty()) {
        (true, _) => action.to_string(),
        (false, true) => format!("{action} {name}"),
        (false, false) => format!("{action} {name} {network}"),
    };
    if let Some(l) = host::step_label(step) {
        label = l;
    }
    if c.too_big {
        return label;
    }
    match (result, &step.fails) {
        (Ok(()), None) => {}
        (Err((span, e)), None) => c.errors.push(Diagnostic::new(span, e)),
        (Err((_, e)), Some(want)) if e == *want.get_ref() => label = format!("{label} (fails: {e})"),
        (Err((_, e)), Some(want)) => {
            c.err(want.span(), format!("Docker fails this step with \"{e}\", not as `fails` says"))
        }
        (Ok(()), Some(want)) => c.err(want.span(), "Docker does not fail this step, as `fails` says it does"),
    }
    label
}

/// The model's state as a plan.
fn snapshot(c: &mut Controller) -> Result<Plan, Diagnostics> {
    let s = c.s;
    debug_assert_eq!(c.index_mismatch(), None);
    if !c.errors.is_empty() {
        let mut errors = std::mem::take(&mut c.errors);
        errors.sort_by_key(|d| d.span.start);
        return Err(Diagnostics::new(s.source.clone(), errors));
    }
    let (mut hostnode, mut external) = host::base_nodes(s);
    for b in &c.bridges {
        hostnode.links.push(host::bridge_link(&b.name, b.mac, b.addresses.clone()));
        for a in &b.addresses {
            hostnode.routes.push(host::connected(*a, &b.name));
        }
    }
    let mut machines = host::machine_nodes(s, &mut hostnode, &mut external);
    for n in std::iter::once(&mut external).chain(machines.iter_mut()) {
        n.sysctls = host::node_sysctls(Default::default(), vec![], &c.sysctl_writes, &n.name.clone());
    }
    // Host ends of the veths, then the container namespaces. Endpoints by
    // id and by container, in their order: no scan of all per container.
    let by_id: HashMap<&str, &endpoint::Endpoint> = c.endpoints.iter().map(|e| (e.id.as_str(), e)).collect();
    let mut by_container: HashMap<&str, Vec<&endpoint::Endpoint>> = HashMap::new();
    for e in &c.endpoints {
        by_container.entry(e.container.as_str()).or_default().push(e);
    }
    let mut nodes = Vec::new();
    for ns in &c.namespaces {
        let sysctls =
            c.v.container_sysctls
                .iter()
                .map(|(k, v)| Sysctl { key: (*k).into(), value: (*v).into(), write: true })
                .collect();
        let mut node = NodePlan { name: ns.name.clone(), links: vec![host::loopback()], routes: vec![], sysctls };
        if let Some(sb) = &ns.sandbox {
            let mut eps: Vec<&endpoint::Endpoint> =
                sb.endpoints.iter().filter_map(|(id, _)| by_id.get(id.as_str()).copied()).collect();
            eps.sort_by_key(|e| e.iface.trim_start_matches("eth").parse::<u32>().unwrap_or(0));
            for ep in eps {
                let net = c.network(&ep.network).expect("an endpoint's network");
                let mtu = (net.mtu != 0).then_some(ep.mtu);
                hostnode.links.push(LinkPlan {
                    name: ep.host_veth.clone(),
                    kind: LinkKind::Veth { peer_node: ns.name.clone(), peer: ep.iface.clone(), create: true },
                    mac: None,
                    mtu,
                    mtu_expected: ep.mtu,
                    master: Some(net.bridge.clone()),
                    addresses: vec![],
                    up: true,
                    hairpin: !c.proxy,
                });
                node.links.push(LinkPlan {
                    name: ep.iface.clone(),
                    kind: LinkKind::Veth { peer_node: "host".into(), peer: ep.host_veth.clone(), create: false },
                    mac: Some(ep.mac),
                    mtu,
                    mtu_expected: ep.mtu,
                    master: None,
                    addresses: vec![ep.address],
                    up: true,
                    hairpin: false,
                });
                node.routes.push(host::connected(ep.address, &ep.iface));
                if c.v.ipv6_off_per_interface {
                    // osl `setIPv6`: an interface without an IPv6 address
                    // gets IPv6 off (28; 20.10 turned off `all`).
                    node.sysctls.push(Sysctl {
                        key: format!("net.ipv6.conf.{}.disable_ipv6", ep.iface),
                        value: "1".into(),
                        write: true,
                    });
                }
            }
            let gw = sb.gateway_endpoint().and_then(|id| by_id.get(id).copied());
            if let Some((via, ep)) = gw.and_then(|e| Some((e.gateway?, e))) {
                node.routes.push(host::via(None, via, &ep.iface));
            }
        }
        nodes.push(node);
    }
    // Sysctls: what the daemon writes, and what it relies on.
    let d = &s.spec.daemon;
    // 28 writes it with a network (none with `bridge = "none"` and no [[network]]).
    let set = if c.v.forwarding_per_network { c.forwarding_set } else { d.ip_forward() };
    let forward = set || host::forwarding_before(s);
    let mut docker = Vec::new();
    docker.push(Sysctl {
        key: "net.ipv4.ip_forward".into(),
        value: if forward { "1" } else { "0" }.into(),
        write: forward,
    });
    docker.push(Sysctl {
        key: "net.ipv4.ip_local_port_range".into(),
        value: format!("{}\t{}", portallocator_range().0, portallocator_range().1),
        write: false,
    });
    // setupBridgeNetFiltering: a network without icc (and with iptables)
    // makes the daemon turn bridge-nf-call-iptables on, if forwarding is on;
    // otherwise bridgelab only relies on it (a new namespace has it on).
    // 28 also for the userland proxy off (bridge_linux.go enableBrNfCallIptables).
    let brnf = c.iptables && forward && c.networks.iter().any(|n| !n.icc || (c.v.brnf_without_proxy && !c.proxy));
    docker.push(Sysctl { key: BR_NETFILTER_SYSCTL.into(), value: "1".into(), write: brnf });
    for n in &c.networks {
        if n.created_bridge || n.default {
            // setupDefaultSysctl: no IPv6 router advertisements on the bridge.
            docker.push(Sysctl {
                key: format!("net.ipv6.conf.{}.accept_ra", n.bridge),
                value: "0".into(),
                write: true,
            });
        }
        if !c.proxy {
            // setupLoopbackAddressesRouting, for hairpin NAT to 127.0.0.1.
            docker.push(Sysctl {
                key: format!("net.ipv4.conf.{}.route_localnet", n.bridge),
                value: "1".into(),
                write: true,
            });
        }
    }
    hostnode.sysctls = host::host_sysctls(s, docker, &c.sysctl_writes);
    host::settle_kernel(&mut hostnode);
    let mut all = vec![hostnode, external];
    all.extend(machines);
    all.extend(nodes);
    for n in &mut all {
        n.routes.sort_by_key(|r| r.sort_key());
    }
    let bridge_plan = |n: &network::Network| BridgePlan {
        name: n.bridge.clone(),
        address: n.address(),
        unaddressed: n.bridge_addresses().is_empty(),
        pool: n.pool.range.unwrap_or(n.pool.subnet),
        origin: n.origin.clone(),
    };
    let containers = c
        .containers
        .iter()
        .map(|x| {
            let mut eps: Vec<Endpoint> = by_container
                .get(x.name())
                .into_iter()
                .flatten()
                .filter(|e| !e.iface.is_empty())
                .map(|e| Endpoint {
                    network: e.network.clone(),
                    iface: e.iface.clone(),
                    bridge: c.network(&e.network).map(|n| n.bridge.clone()).unwrap_or_default(),
                    host_veth: e.host_veth.clone(),
                    address: e.address,
                    gateway: e.gateway,
                    mac: e.mac,
                    mtu: e.mtu,
                })
                .collect();
            eps.sort_by_key(|e| e.iface.trim_start_matches("eth").parse::<u32>().unwrap_or(0));
            ContainerPlan {
                name: x.name().to_string(),
                mode: x.mode(),
                running: x.running,
                netns: x.netns.clone(),
                endpoints: eps,
            }
        })
        .collect();
    Ok(Plan {
        scenario: s.name.clone(),
        firewall: d.firewall(),
        bridge: c.networks.iter().find(|n| n.default).map(bridge_plan),
        networks: c
            .networks
            .iter()
            .filter(|n| !n.default)
            .map(|n| NetworkPlan { name: n.name.clone(), internal: n.internal, bridge: bridge_plan(n) })
            .collect(),
        containers,
        nodes: all,
        iptables: c.rules.clone(),
        port_mappings: c.relays(),
        bindings: c.unrelayed(),
        steps: vec![],
        conntrack_cleared: std::mem::take(&mut c.conntrack_cleared),
        conntrack_cleared_udp: std::mem::take(&mut c.conntrack_cleared_udp),
        machines: host::machine_plans(s),
    })
}

fn portallocator_range() -> (u16, u16) {
    super::portallocator::NETNS_EPHEMERAL_RANGE
}

#[cfg(test)]
mod tests;
