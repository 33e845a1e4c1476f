//! `bridgelab plan` as text a person reads top to bottom.

use std::fmt::{self, Write as _};

use super::*;

/// The widest the name column of `containers:` grows.
const NAME_COLUMN: usize = 32;

impl fmt::Display for LinkPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = format!("{:<12}", self.name);
        match &self.kind {
            LinkKind::Loopback => s.push_str(" loopback"),
            LinkKind::Bridge => s.push_str(" bridge"),
            LinkKind::Veth { peer_node, peer, .. } => write!(s, " veth peer {peer_node}:{peer}")?,
        }
        if let Some(m) = &self.master {
            write!(s, " master {m}")?;
        }
        if let Some(mac) = self.mac {
            write!(s, " mac {mac}")?;
        }
        write!(s, " mtu {}", self.mtu_expected)?;
        for a in &self.addresses {
            write!(s, " inet {a}")?;
        }
        s.push_str(if self.up { " up" } else { " down" });
        f.write_str(&s)
    }
}

/// Where a container without an address of its own lives.
fn whereabouts(plan: &Plan, c: &ContainerPlan) -> String {
    match &c.netns {
        None => "not running".to_string(),
        Some(ns) if ns == "host" || matches!(c.mode, NetworkMode::Container(_)) => match plan.netns_address(ns) {
            Some(a) => format!("in {ns}'s namespace ({a})"),
            None => format!("in {ns}'s namespace"),
        },
        Some(_) => "lo only".to_string(),
    }
}

/// A bridge's address, or what it would have been on a bridge without one.
fn bridge_address(b: &BridgePlan) -> String {
    match b.unaddressed {
        true => "without IPv4 address".into(),
        false => b.address.to_string(),
    }
}

/// An endpoint's gateway, if its network has one.
fn gateway(e: &Endpoint) -> String {
    e.gateway.map(|g| g.to_string()).unwrap_or_else(|| "none".into())
}

/// A container's namespace when it is not named after the container (its
/// first one lives on, kept by a `container:` container).
fn own_namespace(c: &ContainerPlan) -> String {
    match &c.netns {
        Some(ns) if *ns != c.name => format!(" in namespace {ns}"),
        _ => String::new(),
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "scenario {} (firewall {})", self.scenario, self.firewall)?;
        match &self.bridge {
            None => writeln!(f, "bridge: none (networking disabled: containers get only lo)")?,
            Some(b) => writeln!(
                f,
                "bridge: {} {} ({}), containers from {}/{}",
                b.name,
                bridge_address(b),
                b.origin,
                b.pool.network(),
                b.pool.prefix()
            )?,
        }
        for n in &self.networks {
            let b = &n.bridge;
            writeln!(
                f,
                "network {}: {} {} ({}), containers from {}/{}{}",
                n.name,
                b.name,
                bridge_address(b),
                b.origin,
                b.pool.network(),
                b.pool.prefix(),
                match (n.internal, b.unaddressed) {
                    (true, true) => ", internal, isolated",
                    (true, false) => ", internal",
                    _ => "",
                }
            )?;
        }
        writeln!(f, "\ncontainers:")?;
        if self.containers.is_empty() {
            writeln!(f, "  (none)")?;
        }
        // Names align up to a point: a longer one only pushes its own line
        // out, rather than padding every line (and padding past 65,535 is
        // more than `format!` can do).
        let w = self.containers.iter().map(|c| c.name.len()).filter(|l| *l <= NAME_COLUMN).max().unwrap_or(0).max(4);
        for c in &self.containers {
            let state = match c.endpoint() {
                Some(e) => format!(
                    "{} mac {} veth {} gateway {}{}",
                    e.address,
                    e.mac,
                    e.host_veth,
                    gateway(e),
                    own_namespace(c)
                ),
                None => whereabouts(self, c),
            };
            writeln!(f, "  {:<w$}  {:<14} {state}", c.name, c.mode.to_string())?;
            // Further networks (libnetwork), each on a line of its own.
            for e in c.endpoints.iter().skip(1) {
                let net = format!("+{}", e.network);
                writeln!(
                    f,
                    "  {:<w$}  {net:<14} {} {} mac {} veth {} gateway {}",
                    "",
                    e.iface,
                    e.address,
                    e.mac,
                    e.host_veth,
                    gateway(e)
                )?;
            }
        }
        if !self.port_mappings.is_empty() {
            writeln!(f, "\npublished ports (each with a userland proxy in the host namespace):")?;
            for m in &self.port_mappings {
                writeln!(f, "  {m}")?;
            }
        }
        if !self.bindings.is_empty() {
            writeln!(f, "\npublished ports (no userland proxy: the rules alone carry them):")?;
            for m in &self.bindings {
                writeln!(f, "  {m}")?;
            }
        }
        for n in &self.nodes {
            writeln!(f, "\nnode {}:", n.name)?;
            for l in &n.links {
                writeln!(f, "  link   {l}")?;
            }
            for r in &n.routes {
                writeln!(f, "  route  {r}")?;
            }
            for s in &n.sysctls {
                writeln!(f, "  sysctl {} = {}", s.key, s.value.replace('\t', " "))?;
            }
        }
        // Rendered once: each step compares its rules with these.
        let rules = self.iptables.render();
        for (i, step) in self.steps.iter().enumerate() {
            let after = &step.after;
            writeln!(f, "\nafter step {}: {}", i + 1, step.action)?;
            for c in &after.containers {
                let state = match (c.endpoint(), c.running) {
                    (Some(e), _) => {
                        let more: String =
                            c.endpoints.iter().skip(1).map(|e| format!(", {} {}", e.network, e.address)).collect();
                        format!("{} mac {}{}{more}", e.address, e.mac, own_namespace(c))
                    }
                    (None, true) => format!("running, {}", whereabouts(after, c)),
                    (None, false) => "stopped".to_string(),
                };
                writeln!(f, "  {:<12} {state}", c.name)?;
            }
            for m in after.port_mappings.iter().chain(&after.bindings) {
                writeln!(f, "  port {m}")?;
            }
            let after_rules = after.iptables.render();
            if after_rules != rules {
                writeln!(f, "  iptables:")?;
                for line in after_rules.lines() {
                    writeln!(f, "    {line}")?;
                }
            }
            if after.iptables.nft != self.iptables.nft {
                writeln!(f, "  nftables:")?;
                for line in after.iptables.nft.listing().lines() {
                    writeln!(f, "    {line}")?;
                }
            }
        }
        if !self.iptables.nft.is_empty() {
            writeln!(f, "\nnftables (host), as nft list prints it (no iptables rules):")?;
            for line in self.iptables.nft.listing().lines() {
                writeln!(f, "  {line}")?;
            }
        } else if self.iptables.is_empty() {
            writeln!(f, "\niptables (host): no rules (--iptables=false or no bridge)")?;
        } else {
            writeln!(f, "\niptables (host), as iptables-save prints it:")?;
            for line in rules.lines() {
                writeln!(f, "  {line}")?;
            }
        }
        Ok(())
    }
}
