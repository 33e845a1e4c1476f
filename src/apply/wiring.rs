//! Links, addresses and routes, made while the namespaces are still being
//! made.
//!
//! Creating a network namespace is the single most expensive thing a lab
//! asks of the kernel (about a millisecond each), and it is done on one
//! thread. [`Wiring`] lets the other core do everything else meanwhile:
//! it is told of each namespace as it [arrives](Wiring::arrived), and each
//! [`advance`](Wiring::advance) makes whatever has become possible:
//!
//! * a node's bridges when it arrives;
//! * veth pairs in the plan's order, each once both its namespaces exist,
//!   from its creating end, with its master and up flag in the one request
//!   (a run of pairs from one namespace is sent at once: the kernel answers
//!   one socket's requests in order);
//! * the addresses and link state of every link that now exists, and a
//!   node's static routes once all its links are there.
//!
//! The order in which links are created in any one namespace is the order
//! the plan gives, whatever the timing: interface indexes, which the kernel
//! hands out per namespace in creation order, are the same on every run.

use std::collections::{HashMap, HashSet};
use std::os::fd::RawFd;

use futures::future::try_join_all;

use super::netlink::Netlink;
use super::spend;
use crate::error::{Error, Result};
use crate::plan::{LinkKind, LinkPlan, NodePlan, Plan, RoutePlan};

/// A namespace known to the wiring: its socket, and its namespace file's
/// descriptor, which the lab keeps open for longer than the wiring lives.
struct Present {
    netlink: Netlink,
    fd: RawFd,
}

/// Where the wiring of a set of links stands.
pub(super) struct Wiring<'p> {
    /// `(node, link)` pairs to make and configure.
    wanted: HashSet<(&'p str, &'p str)>,
    /// Nodes whose static routes are added once their links are there.
    fresh: HashSet<&'p str>,
    budget: Option<usize>,
    nodes: HashMap<&'p str, &'p NodePlan>,
    present: HashMap<&'p str, Present>,
    /// Nodes that arrived, or gained links, since the last `advance`: the
    /// only ones it looks at (looking at all made a big lab quadratic).
    dirty: Vec<&'p NodePlan>,
    /// Creating ends of wanted veth pairs, in creation order.
    veths: Vec<(&'p NodePlan, &'p LinkPlan)>,
    next_veth: usize,
    /// Wanted links created by this wiring (their creating end, up from
    /// the start when planned so).
    created: HashSet<(&'p str, &'p str)>,
    configured: HashSet<(&'p str, &'p str)>,
    /// Wanted links per node not configured yet.
    left: HashMap<&'p str, usize>,
    routed: HashSet<&'p str>,
    masters: HashMap<(&'p str, &'p str), u32>,
}

/// Every namespace's loopback: the kernel registers it first, with this
/// index (`LOOPBACK_IFINDEX`), before anything else can be made there.
const LOOPBACK_INDEX: u32 = 1;

impl<'p> Wiring<'p> {
    pub fn new(plan: &'p Plan, wanted: &'p [(String, String)], fresh: &'p [String], budget: Option<usize>) -> Self {
        let wanted: HashSet<(&str, &str)> = wanted.iter().map(|(n, l)| (n.as_str(), l.as_str())).collect();
        let veths = plan
            .nodes
            .iter()
            .flat_map(|n| n.links.iter().map(move |l| (n, l)))
            .filter(|(n, l)| {
                matches!(l.kind, LinkKind::Veth { create: true, .. })
                    && wanted.contains(&(n.name.as_str(), l.name.as_str()))
            })
            .collect();
        let mut left: HashMap<&str, usize> = HashMap::new();
        for (n, _) in &wanted {
            *left.entry(n).or_default() += 1;
        }
        Wiring {
            wanted,
            fresh: fresh.iter().map(String::as_str).collect(),
            budget,
            nodes: plan.nodes.iter().map(|n| (n.name.as_str(), n)).collect(),
            present: HashMap::new(),
            dirty: Vec::new(),
            veths,
            next_veth: 0,
            created: HashSet::new(),
            configured: HashSet::new(),
            left,
            routed: HashSet::new(),
            masters: HashMap::new(),
        }
    }

    /// A node's namespace exists, with `netlink` open inside it and `fd`
    /// its namespace file (which must stay open while the wiring lives).
    pub fn arrived(&mut self, node: &str, netlink: Netlink, fd: RawFd) {
        if let Some(&np) = self.nodes.get(node) {
            self.present.insert(np.name.as_str(), Present { netlink, fd });
            self.dirty.push(np);
        }
    }

    /// Whether every wanted link is configured and every fresh node routed.
    pub fn done(&self) -> bool {
        self.configured.len() == self.wanted.len() && self.fresh.iter().all(|n| self.routed.contains(n))
    }

    /// Makes and configures all that the namespaces present so far allow.
    pub async fn advance(&mut self) -> Result<()> {
        let arrived = self.dirty.clone();
        self.bridges(&arrived).await?;
        self.veth_pairs().await?;
        self.configure().await
    }

    async fn bridges(&mut self, arrived: &[&'p NodePlan]) -> Result<()> {
        for node in arrived {
            let nl = &self.present[node.name.as_str()].netlink;
            for l in node.links.iter().filter(|l| l.kind == LinkKind::Bridge) {
                if !self.wanted.contains(&(node.name.as_str(), l.name.as_str())) {
                    continue;
                }
                spend(&mut self.budget)?;
                nl.create_bridge(l).await.map_err(|e| Error::apply(format!("{}: create {}", node.name, l.name), e))?;
                self.created.insert((node.name.as_str(), l.name.as_str()));
            }
        }
        Ok(())
    }

    /// The veth pairs whose two namespaces exist, in order, stopping at
    /// the first that must wait (so that each namespace sees its links
    /// made in the plan's order). A run from one namespace goes at once.
    async fn veth_pairs(&mut self) -> Result<()> {
        while self.next_veth < self.veths.len() {
            let (creator, _) = self.veths[self.next_veth];
            let mut run = Vec::new();
            // An injected failure (`fail_after_links`) comes after the
            // links before it are made, as it would one at a time.
            let mut stop = Ok(());
            while let Some(&(node, l)) = self.veths.get(self.next_veth) {
                let LinkKind::Veth { peer_node, .. } = &l.kind else { unreachable!("only veths are queued") };
                if node.name != creator.name
                    || !self.present.contains_key(node.name.as_str())
                    || !self.present.contains_key(peer_node.as_str())
                {
                    break;
                }
                stop = spend(&mut self.budget);
                if stop.is_err() {
                    break;
                }
                run.push(l);
                self.next_veth += 1;
            }
            if run.is_empty() {
                return stop;
            }
            let name = creator.name.as_str();
            // Each bridge's index once, not per port.
            for m in run.iter().filter_map(|l| l.master.as_deref()) {
                if !self.masters.contains_key(&(name, m)) {
                    let i = self.present[name]
                        .netlink
                        .index(m)
                        .await
                        .map_err(|e| Error::apply(format!("{name}: find {m}"), e))?;
                    self.masters.insert((name, m), i);
                }
            }
            let nl = &self.present[name].netlink;
            try_join_all(run.iter().map(|l| {
                let LinkKind::Veth { peer_node, peer, .. } = &l.kind else { unreachable!("only veths are queued") };
                let peer_plan = self.nodes[peer_node.as_str()].link(peer).expect("plan pairs every veth");
                let master = l.master.as_deref().map(|m| self.masters[&(name, m)]);
                let peer_fd = self.present[peer_node.as_str()].fd;
                async move {
                    nl.create_veth(l, peer_plan, peer_fd, master).await.map_err(|e| {
                        Error::apply(format!("{name}: create veth {} (peer {peer_node}:{peer})", l.name), e)
                    })
                }
            }))
            .await?;
            for l in run {
                self.created.insert((name, l.name.as_str()));
                if let LinkKind::Veth { peer_node, .. } = &l.kind {
                    self.dirty.push(self.nodes[peer_node.as_str()]);
                }
            }
            self.dirty.push(creator);
            stop?;
        }
        Ok(())
    }

    /// Whether a wanted link exists: a loopback always, a bridge or the
    /// creating end of a veth once made here, the other end once its
    /// creating end is (or at once if that end is not being made).
    fn link_exists(&self, node: &'p str, l: &'p LinkPlan) -> bool {
        match &l.kind {
            LinkKind::Loopback => true,
            LinkKind::Bridge | LinkKind::Veth { create: true, .. } => self.created.contains(&(node, l.name.as_str())),
            LinkKind::Veth { peer_node, peer, create: false } => {
                let end = (peer_node.as_str(), peer.as_str());
                !self.wanted.contains(&end) || self.created.contains(&end)
            }
        }
    }

    /// Addresses and link state of the wanted links that now exist, and
    /// the static routes of fresh nodes whose links are all configured:
    /// every node at once, each on its own socket.
    async fn configure(&mut self) -> Result<()> {
        let mut jobs = Vec::new();
        let mut dirty = std::mem::take(&mut self.dirty);
        dirty.sort_unstable_by_key(|n| n.name.as_str());
        dirty.dedup_by_key(|n| n.name.as_str());
        for node in dirty {
            let name = node.name.as_str();
            if self.left.get(name).copied().unwrap_or(0) == 0
                && (self.routed.contains(name) || !self.fresh.contains(name))
            {
                continue;
            }
            let links: Vec<(&LinkPlan, bool)> = node
                .links
                .iter()
                .filter(|l| {
                    let key = (name, l.name.as_str());
                    self.wanted.contains(&key) && !self.configured.contains(&key) && self.link_exists(name, l)
                })
                .map(|l| (l, self.created.contains(&(name, l.name.as_str()))))
                .collect();
            let left = self.left.get(name).copied().unwrap_or(0) - links.len();
            let finishing = left == 0 && self.fresh.contains(name) && !self.routed.contains(name);
            let routes: Vec<&RoutePlan> = if finishing { node.routes.iter().collect() } else { Vec::new() };
            if links.is_empty() && !finishing {
                continue;
            }
            jobs.push((node, links, routes, left));
        }
        try_join_all(jobs.iter().map(|(node, links, routes, _)| {
            configure(&self.present[node.name.as_str()].netlink, &node.name, links, routes)
        }))
        .await?;
        for (node, links, _, left) in jobs {
            let name = node.name.as_str();
            for (l, _) in links {
                self.configured.insert((name, l.name.as_str()));
            }
            self.left.insert(name, left);
            if left == 0 && self.fresh.contains(name) {
                self.routed.insert(name);
            }
        }
        Ok(())
    }
}

/// Addresses, link state and static routes of one node, on its own socket.
/// A link `created` up by the wiring is not set up again. The requests are
/// sent without waiting for each answer, in order; link indexes come from
/// one dump, or for a link or two from a lookup each, and not at all when
/// nothing needs one (a bridge port made up and on its bridge).
async fn configure(nl: &Netlink, node: &str, links: &[(&LinkPlan, bool)], routes: &[&RoutePlan]) -> Result<()> {
    let err = |what: String| move |e| Error::apply(format!("{node}: {what}"), e);
    let routes: Vec<&RoutePlan> = routes.iter().copied().filter(|r| r.connected.is_none()).collect();
    let needs = |l: &LinkPlan, created: bool| {
        (l.kind != LinkKind::Loopback && !l.addresses.is_empty()) || (l.up && !created) || l.hairpin
    };
    // The kernel numbers every namespace's loopback 1 (LOOPBACK_IFINDEX):
    // no lookup for it.
    let loopback = links.iter().find(|(l, _)| l.kind == LinkKind::Loopback).map(|(l, _)| l.name.as_str());
    let mut names: Vec<&str> = links.iter().filter(|(l, c)| needs(l, *c)).map(|(l, _)| l.name.as_str()).collect();
    names.extend(routes.iter().map(|r| r.dev.as_str()));
    names.sort_unstable();
    names.dedup();
    let needs_lo = names.iter().any(|n| Some(*n) == loopback);
    names.retain(|n| Some(*n) != loopback);
    let mut indexes: HashMap<String, u32> =
        match names.len() {
            0 => HashMap::new(),
            1 | 2 => try_join_all(names.iter().map(|n| async move {
                nl.index(n).await.map(|i| (n.to_string(), i)).map_err(err(format!("find {n}")))
            }))
            .await?
            .into_iter()
            .collect(),
            _ => nl.link_indexes().await.map_err(err("read links".into()))?,
        };
    if let Some(lo) = loopback.filter(|_| needs_lo) {
        indexes.insert(lo.to_string(), LOOPBACK_INDEX);
    }
    let index = |name: &str| {
        indexes.get(name).copied().ok_or_else(|| err(format!("find {name}"))(rtnetlink::Error::RequestFailed))
    };
    let mut requests: Vec<futures::future::BoxFuture<'_, Result<()>>> = Vec::new();
    for &(l, created) in links.iter().filter(|(l, c)| needs(l, *c)) {
        let i = index(&l.name)?;
        // lo gets its address from the kernel.
        for a in l.addresses.iter().filter(|_| l.kind != LinkKind::Loopback) {
            let what = format!("add {a} to {}", l.name);
            requests.push(Box::pin(async move { nl.add_address(i, a.ip(), a.prefix()).await.map_err(err(what)) }));
        }
        if l.up && !created {
            let what = format!("set {} up", l.name);
            requests.push(Box::pin(async move { nl.set_up(i).await.map_err(err(what)) }));
        }
        if l.hairpin {
            let what = format!("hairpin on {}", l.name);
            requests.push(Box::pin(async move { nl.set_hairpin(i).await.map_err(err(what)) }));
        }
    }
    for r in routes {
        let i = index(&r.dev)?;
        let what = format!("add route {r}");
        requests.push(Box::pin(async move { nl.add_route(r, i).await.map_err(err(what)) }));
    }
    // Polled in order, so sent in order.
    try_join_all(requests).await?;
    Ok(())
}
