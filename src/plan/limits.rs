//! Sizes bridgelab refuses in `check`, so that `run` never meets them: what
//! the kernel cannot build, and plans too big to hold.

use std::ops::Range;

use super::Plan;
use crate::scenario::{Diagnostics, Scenario};

/// The kernel's limit on ports per bridge: `BR_MAX_PORTS` is 1024 and port
/// number 0 is reserved, so adding a 1024th port fails with `EXFULL`.
pub const BRIDGE_MAX_PORTS: usize = 1023;

/// Published ports in one lab: every port of both protocols on one address.
/// Each is a listening socket of the userland proxy in `run`, so each needs
/// an open file there.
pub const MAX_PUBLISHED_PORTS: usize = 2 * 65_535;

/// Containers, links, routes, port mappings and iptables rules held by a
/// plan and the copies after each step. The plan keeps the whole lab after
/// every step, so a few thousand steps of a few thousand containers would
/// take gigabytes, and so would its text or JSON.
pub const MAX_PLAN_SIZE: usize = 1_000_000;

/// Port mappings and rules made by starts that then failed and gave them
/// back (Docker maps a container's ports one by one and unmaps them all
/// when a later one fails): a thousand containers publishing
/// `1-65535:1-65535` that each fail at port 8080 would map and unmap eight
/// million ports, and the plan keeps none of it. This is about one start of
/// every port (a mapping and three rules each) that fails at its last one.
pub const MAX_GIVEN_BACK: usize = 2 * MAX_PUBLISHED_PORTS;

/// How many things a plan holds, by [`MAX_PLAN_SIZE`]'s measure. A long
/// name counts one more per 32 bytes wherever the plan repeats it: with
/// its container and with each of its port mappings, relayed or not
/// (`bindings`), as the text and JSON
/// show them, so that 28,000 ports under a 70,000-character name are not
/// 2 GB of output.
/// Docker does the work of a start that fails late again for every such
/// start; so does the simulator, up to [`MAX_GIVEN_BACK`]. The message, the
/// first time `total` passes it (`reported` remembers that).
pub fn over_given_back(total: usize, reported: &mut bool) -> Option<String> {
    if total <= MAX_GIVEN_BACK || *reported {
        return None;
    }
    *reported = true;
    Some(format!(
        "too big to plan: failed starts up to this one made and gave back more than {MAX_GIVEN_BACK} port mappings and rules"
    ))
}

pub fn plan_size(p: &Plan) -> usize {
    let nodes: usize = p.nodes.iter().map(|n| n.links.len() + n.routes.len()).sum();
    let rules = p.iptables.rule_count();
    let mappings = || p.port_mappings.iter().chain(&p.bindings);
    let names: usize = p.containers.iter().map(|c| c.name.len() / 32).sum::<usize>()
        + mappings().map(|m| m.container.len() / 32).sum::<usize>();
    p.containers.len() + names + nodes + mappings().count() + rules
}

/// The size of the plans made so far, refused past [`MAX_PLAN_SIZE`].
#[derive(Debug, Default)]
pub struct PlanSize(usize);

impl PlanSize {
    /// Counts `plan`, made by `what` (`the start`, `step 3`); a plan too big
    /// is refused pointing at `span`.
    pub fn add(
        &mut self,
        s: &Scenario,
        plan: &Plan,
        what: &str,
        span: impl FnOnce() -> Range<usize>,
    ) -> Result<(), Diagnostics> {
        self.0 += plan_size(plan);
        if self.0 <= MAX_PLAN_SIZE {
            return Ok(());
        }
        Err(s.error(
            span(),
            format!(
                "too big to plan: after {what} the plan holds {} containers, links, routes, port mappings and \
                 rules (a long name counting once per 32 characters wherever it appears), more than bridgelab's \
                 {MAX_PLAN_SIZE} (it keeps the whole lab after every step): use fewer steps, a smaller lab or \
                 shorter names",
                self.0
            ),
        ))
    }
}

/// The name of the container that weighs most in `plan` (by its name, once
/// and again with each of its port mappings), where a lab too big at the
/// start is pointed at.
pub fn heaviest(s: &Scenario, plan: &Plan) -> Range<usize> {
    let weight = |name: &str, mappings: usize| (1 + mappings) * (1 + name.len() / 32);
    let mut best: Option<(usize, &str)> = plan.containers.iter().map(|c| (weight(&c.name, 0), c.name.as_str())).max();
    // A container's mappings are made together, one name shared by all.
    let same = |a: &crate::plan::firewall::PortMapping, b: &crate::plan::firewall::PortMapping| {
        std::sync::Arc::ptr_eq(&a.container, &b.container)
    };
    for run in plan.port_mappings.chunk_by(same).chain(plan.bindings.chunk_by(same)) {
        let w = weight(&run[0].container, run.len());
        if best.is_none_or(|(b, _)| w > b) {
            best = Some((w, &run[0].container));
        }
    }
    best.and_then(|(_, name)| s.all_containers().find(|c| c.name() == name)).map(|c| c.name.span()).unwrap_or(0..0)
}
