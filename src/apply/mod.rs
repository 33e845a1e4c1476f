//! Builds a plan for real, and takes it down again on every path.
//!
//! One namespace per plan node (`bl-<run id>-<node>`), created by one worker
//! thread; one rtnetlink socket opened inside each; then links, addresses,
//! routes and sysctls exactly as planned. Nothing is ever done in the
//! namespace bridgelab was started from.
//!
//! `apply` decides nothing: every address, name, rule and sysctl comes from
//! the [`Plan`], so what goes wrong here is the machine, never Docker's
//! logic. The host's rules are loaded with one `iptables-restore` per table
//! ([`iptables`]), or one `nft -f` ([`nftables`]), so the rule set is
//! whole or absent, never half-loaded. Then [`verify`] reads everything
//! back (netlink, `iptables-save`, `nft`) and compares it with the plan:
//! a mismatch is a result of its own, not a wrong verdict later.
//!
//! A [`RunningLab`] owns its namespaces: dropping it (an error half-way, a
//! panic, a cancelled future after a signal) removes them, and
//! [`RunningLab::down`] does the same and reports every failure, not just the
//! first. Kept labs (`bridgelab up`) are detached and removed by
//! `bridgelab down` or `cleanup`, through the [`registry`](crate::registry).

pub mod arp;
pub mod conntrack;
pub mod iptables;
mod netlink;
pub mod netns;
pub mod nftables;
pub mod proxy;
pub mod snapshot;
pub mod verify;
mod wiring;

use std::collections::HashMap;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

pub(crate) use netlink::dump_here;
use netlink::NodeDump;
pub use netlink::{LinkState, Netlink, RouteCarrier};
use netns::NetNs;
pub use verify::{CarrierPending, Mismatch, Observed, ObservedNode};
use wiring::Wiring;

use crate::error::{Error, Result};
use crate::plan::{LinkKind, NodePlan, Plan};
use crate::registry::{self, namespace_name, Registry, RunRecord};
use crate::scenario::Scenario;

/// How to bring a lab up.
#[derive(Debug, Clone, Default)]
pub struct UpOptions {
    /// Stop after creating this many links, to exercise the error path.
    pub fail_after_links: Option<usize>,
    /// Use this run id instead of a random one (letters and digits, at most
    /// 16); it must not belong to another lab.
    pub run_id: Option<String>,
}

/// How long the kernel may take to report carrier. Its linkwatch work runs
/// at most once a second and needs the RTNL lock, which many labs built and
/// removed at once hold for long: generous, since it only costs time when
/// something is really wrong.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often settling looks again.
const SETTLE_POLL: Duration = Duration::from_millis(5);

/// A lab that exists: its namespaces, netlink sockets and run record.
pub struct RunningLab {
    run_id: String,
    scenario: Scenario,
    plan: Plan,
    namespaces: Vec<NetNs>,
    netlinks: HashMap<String, Netlink>,
    tasks: HashMap<String, JoinHandle<()>>,
    proxies: Vec<JoinHandle<()>>,
    registry: Registry,
    torn_down: bool,
    detached: bool,
    /// Opened by [`attach`]: another process owns the lab, so this handle
    /// never removes it.
    attached: bool,
    /// Whether its namespaces have names under `/run/netns`
    /// ([`RunningLab::name_namespaces`]).
    named: bool,
    /// What [`up`] read back as it finished, for the first [`observe`]
    /// (`RunningLab::observe`) to take.
    readback: std::sync::Mutex<Option<Observed>>,
}

/// The host's rules as read back: `iptables-save` (with `ip6tables-save`'s
/// tables) and the nftables listing, if the lab has a host.
type RulesReader = std::thread::JoinHandle<Result<Option<(String, Option<String>)>>>;
/// A node's planned sysctls as read back, by key.
type Sysctls = std::collections::BTreeMap<String, String>;
/// Each node's planned sysctls as read back, by node.
type SysctlsReader = std::thread::JoinHandle<Result<HashMap<String, Sysctls>>>;

impl std::fmt::Debug for RunningLab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningLab").field("run_id", &self.run_id).field("scenario", &self.plan.scenario).finish()
    }
}

/// Checks that this process may build labs at all: root, and a `/proc`
/// that shows thread namespaces. Tests that build labs call it first, so
/// that without root they fail with this reason rather than skip.
pub fn check_environment() -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        return Err(Error::Environment(
            "building a lab needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN): run bridgelab with sudo, \
             or use `bridgelab plan`, which needs no privileges"
                .into(),
        ));
    }
    if !std::path::Path::new("/proc/thread-self/ns/net").exists() {
        return Err(Error::Environment(
            "/proc/thread-self/ns/net is missing: mount /proc (Linux 3.17 or later is needed)".into(),
        ));
    }
    Ok(())
}

fn env_error(what: &str, e: io::Error) -> Error {
    let hint = match (e.raw_os_error().map(nix::errno::Errno::from_raw), e.kind()) {
        (Some(nix::errno::Errno::EPERM), _) => {
            " (not permitted: a privileged container needs --privileged or CAP_SYS_ADMIN)"
        }
        // Docker mounts /proc/sys read-only in every container not run
        // with --privileged (--cap-add does not change that), and the
        // lab's namespaces need their own sysctls. (The kind: the error
        // may carry its path instead of the errno.)
        (Some(nix::errno::Errno::EROFS), _) | (_, io::ErrorKind::ReadOnlyFilesystem) => {
            " (/proc/sys is read-only, as in a container without --privileged: run it with --privileged)"
        }
        _ => "",
    };
    Error::Environment(format!("{what}: {e}{hint}"))
}

/// Builds `plan` for real. On failure everything built is removed before
/// the error is returned.
pub async fn up(scenario: Scenario, plan: Plan, opts: UpOptions) -> Result<RunningLab> {
    check_environment()?;
    proxy::ensure_open_files(&plan)?;
    let registry = Registry::default();
    let run_id = match opts.run_id.clone() {
        Some(id) => {
            registry::check_run_id(&id)?;
            // A record that does not parse still holds its id.
            if registry.contains(&id)
                || registry::lab_netns_dir(&id).exists()
                || registry::lab_namespaces().iter().any(|n| registry::run_id_of(n) == Some(&id))
            {
                return Err(Error::Environment(format!("run id {id} is already in use (see `bridgelab ls`)")));
            }
            id
        }
        None => registry::new_run_id(),
    };
    let pid = std::process::id();
    let record = RunRecord {
        run_id: run_id.clone(),
        scenario: plan.scenario.clone(),
        scenario_path: scenario.source.path().to_path_buf(),
        pid,
        pid_start: registry::process_start_time(pid).unwrap_or(0),
        // Kept only once `detach` says so: a half-built lab is never "kept".
        kept: false,
        nodes: plan.nodes.iter().map(|n| n.name.clone()).collect(),
        daemon: None,
        // So that another process can make the same plan (`bridgelab probe`,
        // `shell`, `snapshot`): see `attach`.
        built_from: Some(registry::BuiltFrom {
            text: scenario.source.text().to_string(),
            plan_hash: registry::plan_hash(&plan),
            version: scenario.version.map(|v| v.to_string()),
        }),
        served: false,
    };
    // The record exists before any namespace does: see `registry`.
    registry.write(&record).map_err(|e| env_error("cannot write the run record", e))?;
    let mut lab = RunningLab::empty(run_id, scenario, plan, registry, false);
    match lab.build(&opts).await {
        Ok(()) => Ok(lab),
        Err(e) => {
            if let Err(t) = lab.teardown() {
                tracing::error!("{t}");
            }
            Err(e)
        }
    }
}

impl RunningLab {
    /// A lab with nothing in it yet: [`up`] builds it, [`attach`] fills it
    /// with the namespaces another process keeps (and never removes them).
    fn empty(run_id: String, scenario: Scenario, plan: Plan, registry: Registry, attached: bool) -> Self {
        RunningLab {
            run_id,
            scenario,
            plan,
            namespaces: Vec::new(),
            netlinks: HashMap::new(),
            tasks: HashMap::new(),
            proxies: Vec::new(),
            registry,
            torn_down: false,
            detached: attached,
            attached,
            named: attached,
            readback: std::sync::Mutex::new(None),
        }
    }

    pub fn run_id(&self) -> &str {
        &self.run_id
    }
    pub fn plan(&self) -> &Plan {
        &self.plan
    }
    pub fn scenario(&self) -> &Scenario {
        &self.scenario
    }
    /// The name of a node's namespace (under `/run/netns` once the lab is
    /// named: [`Self::name_namespaces`]).
    pub fn namespace(&self, node: &str) -> String {
        namespace_name(&self.run_id, node)
    }
    /// Namespace names of every node, in plan order.
    pub fn namespaces(&self) -> Vec<String> {
        self.namespaces.iter().map(|n| n.path.file_name().unwrap_or_default().to_string_lossy().into_owned()).collect()
    }
    /// Names every namespace of the lab under `/run/netns`, for `ip netns
    /// exec` and `ip netns list`, now and as steps add namespaces. A lab is
    /// not named unless asked (see `apply::netns` for why): `detach` names
    /// it, and `bridgelab run --hold` and `up --serve` do before they say
    /// it is ready. [`Self::netns_file`] and `bridgelab shell` need no name.
    pub fn name_namespaces(&mut self) -> Result<()> {
        self.named = true;
        netns::name_all(&self.namespaces).map_err(|e| env_error("cannot name the lab's namespaces", e))
    }
    /// A netlink handle inside a node's namespace.
    pub fn netlink(&self, node: &str) -> Option<&Netlink> {
        self.netlinks.get(node)
    }
    /// The namespace file of a node, for joining it (`setns`).
    pub fn netns_file(&self, node: &str) -> Option<&std::fs::File> {
        self.namespaces.iter().find(|n| n.node == node).map(|n| &*n.file)
    }

    async fn build(&mut self, opts: &UpOptions) -> Result<()> {
        // Where a build's time goes, for `RUST_LOG=bridgelab=debug`.
        let started = Instant::now();
        let phase = |what: &str| tracing::debug!("build: {what} done at {:?}", started.elapsed());
        let plan = self.plan.clone();
        let all: Vec<String> = plan.nodes.iter().map(|n| n.name.clone()).collect();
        let wanted: Vec<(String, String)> =
            plan.nodes.iter().flat_map(|n| n.links.iter().map(|l| (n.name.clone(), l.name.clone()))).collect();
        let mut wiring = Wiring::new(&plan, &wanted, &all, opts.fail_after_links);
        // The namespaces are made on a thread of their own while this task
        // wires each one as it comes, and the host's rules load meanwhile.
        let mut makers = self.make_namespaces(&plan)?;
        let mut firewall = None;
        let mut ports = None;
        // Whether the host's rules are in, and their reader, once the
        // wiring starts.
        let mut loaded = false;
        let mut rules = None;
        // The sysctls that name no interface, as each namespace's maker
        // read them back (see `Inside`).
        let mut sysctls: HashMap<String, Sysctls> = HashMap::new();
        // Whether links are made while namespaces still are (see
        // `overlap_pays`); decided once the rules are in.
        let mut stream = true;
        let mut failed = None;
        while let Some(first) = makers.made.recv().await {
            let mut batch = vec![first];
            while let Ok(m) = makers.made.try_recv() {
                batch.push(m);
            }
            for m in batch {
                match m {
                    Made::Namespace(ns, nl, task, read) => {
                        sysctls.insert(ns.node.clone(), read);
                        wiring.arrived(&ns.node, nl.clone(), ns.file.as_raw_fd());
                        if ns.node == "host" {
                            firewall = Some(load_firewall(&ns.file, &plan));
                            ports = Some(bind_ports(&ns.file, &plan));
                        }
                        self.tasks.insert(ns.node.clone(), task);
                        self.netlinks.insert(ns.node.clone(), nl);
                        self.namespaces.push(ns);
                    }
                    Made::Failed(e) => failed = Some(e),
                }
            }
            if failed.is_some() {
                break;
            }
            // No link is made before the host's rules are in place, as no
            // container joins a network before the daemon has programmed
            // its chains. It is also the faster order: veth pairs made
            // while `iptables-restore` ran took more than twice as long
            // (55 ms against 22 for a hundred), while the namespaces
            // made meanwhile lose nothing.
            if !loaded {
                let Some(f) = firewall.take() else { continue };
                if let Err(e) = rules_loaded(f).await {
                    failed = Some(e);
                    break;
                }
                phase("firewall");
                loaded = true;
                // What the maker sent meanwhile counts as made.
                stream = overlap_pays(self.namespaces.len() + makers.made.len(), plan.nodes.len());
            }
            let all_made = self.namespaces.len() == plan.nodes.len();
            if !stream && !all_made {
                continue;
            }
            // Final since they were loaded: read back while the lab is
            // wired, not while namespaces are still made (both cores are
            // busy then; the wiring leaves one free).
            if rules.is_none() {
                match self.read_rules() {
                    Ok(r) => rules = Some(r),
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            if let Err(e) = wiring.advance().await {
                failed = Some(e);
                break;
            }
        }
        // Whatever happened, nothing is made after this: what the maker
        // sent that the loop did not take is the lab's to remove.
        let (left, joined) = makers.stop();
        self.namespaces.extend(left);
        if joined.is_err() {
            failed.get_or_insert(Error::Environment("the namespace worker panicked".into()));
        }
        phase("namespaces, links, addresses and routes");
        // Still loading only if the build failed first.
        if let Some(f) = firewall {
            let _ = rules_loaded(f).await;
        }
        if let Some(e) = failed {
            return Err(e);
        }
        debug_assert!(wiring.done(), "every namespace arrived, so everything is wired");
        drop(wiring);
        self.write_interface_sysctls(&plan)?;
        let late = self.read_sysctls(per_interface)?;
        phase("sysctls");
        let host_ns = &self.ns("host").file;
        let bound = match ports {
            Some(p) => p.await.unwrap_or_else(|e| Err(Error::apply("host: userland proxies", io::Error::other(e))))?,
            None => proxy::bind(host_ns, &plan.port_mappings)?,
        };
        self.proxies = proxy::serve(host_ns, &plan.port_mappings, bound).await?;
        phase("proxies");
        let dumps = self.settle(&all).await?;
        phase("settle");
        let rules = match rules {
            Some(r) => r,
            None => self.read_rules()?,
        };
        let observed = self.assemble(dumps, sysctls, vec![late], rules)?;
        *self.readback.get_mut().unwrap_or_else(|p| p.into_inner()) = Some(observed);
        self.advertise(&plan, &all)
    }

    /// Starts the thread that makes a namespace per node of `plan`, in
    /// order, and sends each with a netlink socket opened inside it (see
    /// [`Inside`] for what else it does there).
    fn make_namespaces(&self, plan: &Plan) -> Result<Makers> {
        let nodes: Vec<&NodePlan> = plan.nodes.iter().collect();
        let names: Vec<(String, String)> =
            nodes.iter().map(|n| (n.name.clone(), namespace_name(&self.run_id, &n.name))).collect();
        let inside = Inside::new(&nodes);
        let lab = registry::lab_netns_dir(&self.run_id);
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let started = Instant::now();
        let spawned = std::thread::Builder::new().name("bl-netns".into()).spawn(move || {
            // Set by the sysctl thread when nothing more may be made.
            let stop = AtomicBool::new(false);
            std::thread::scope(|s| {
                let (queue, queued) = std::sync::mpsc::channel::<Queued>();
                let sysctls = std::thread::Builder::new()
                    .name("bl-sysctls".into())
                    .spawn_scoped(s, || inside.write_each(queued, &tx, &stop));
                if let Err(e) = sysctls {
                    let _ = tx.send(Made::Failed(env_error("cannot start the sysctl worker", e)));
                    return;
                }
                let open = |i: usize, _: &mut netns::SysctlsHere| Netlink::open_here(&inside.rt).map(|o| (i, o));
                let sent = netns::create_each(&names, &lab, open, |ns, (i, (nl, task))| {
                    if stop.load(Ordering::Relaxed) {
                        task.abort();
                        return Err(ns);
                    }
                    queue.send((i, ns, nl, task)).map_err(|e| {
                        let (_, ns, _, task) = e.0;
                        task.abort();
                        ns
                    })
                });
                tracing::debug!("build: {} namespaces made at {:?}", names.len(), started.elapsed());
                if let Err(e) = sent {
                    let _ =
                        tx.send(Made::Failed(env_error("cannot create a network namespace or its netlink socket", e)));
                }
            });
        });
        let thread = spawned.map_err(|e| env_error("cannot start the namespace worker", e))?;
        Ok(Makers { thread: Some(thread), made: rx })
    }

    /// The sysctls that name an interface, once the interfaces exist: every
    /// namespace's on one thread that joins each in turn.
    fn write_interface_sysctls(&self, plan: &Plan) -> Result<()> {
        let files: HashMap<&str, &std::fs::File> =
            self.namespaces.iter().map(|n| (n.node.as_str(), &*n.file)).collect();
        let mut names = Vec::new();
        let mut jobs = Vec::new();
        for node in &plan.nodes {
            let pairs: Vec<(&str, &str)> = node
                .sysctls
                .iter()
                .filter(|s| s.write && per_interface(&s.key))
                .map(|s| (s.key.as_str(), s.value.as_str()))
                .collect();
            if !pairs.is_empty() {
                names.push(node.name.as_str());
                jobs.push((files[node.name.as_str()], pairs));
            }
        }
        netns::write_sysctls_all(&jobs).map_err(|(i, e)| env_error(&format!("{}: sysctls", names[i]), e))
    }

    /// Docker 28+ announces the address of each interface it brings up in
    /// a container with an unsolicited ARP request (osl `advertiseAddrs`,
    /// moby#48808): a neighbour that holds another MAC for the address (a
    /// container that had it before) updates its entry. Docker sends
    /// three, a second apart; the lab sends the first once the bridge
    /// ports carry frames (after `settle`), for the containers in `nodes`.
    fn advertise(&self, plan: &Plan, nodes: &[String]) -> Result<()> {
        if !crate::plan::libnetwork::version::of(plan.firewall).is_some_and(|v| v.advertise_addr) {
            return Ok(());
        }
        for c in &plan.containers {
            let Some(node) = c.netns.as_deref().filter(|n| *n == c.name && nodes.iter().any(|m| m == n)) else {
                continue;
            };
            for e in &c.endpoints {
                let ip = e.address.ip();
                let frame = arp::request([0xff; 6], e.mac.0, ip, ip);
                netns::send_frame(&self.ns(node).file, &e.iface, &frame)
                    .map_err(|err| Error::apply(format!("{node}: unsolicited ARP for {ip} on {}", e.iface), err))?;
            }
        }
        Ok(())
    }

    fn ns(&self, node: &str) -> &NetNs {
        self.namespaces.iter().find(|n| n.node == node).expect("a namespace per planned node")
    }

    /// Creates namespaces for `nodes` and opens a netlink socket in each.
    fn add_namespaces(&mut self, plan: &Plan, nodes: &[String]) -> Result<()> {
        let nodes: Vec<&NodePlan> = nodes.iter().filter_map(|n| plan.node(n)).collect();
        let names: Vec<(String, String)> =
            nodes.iter().map(|n| (n.name.clone(), namespace_name(&self.run_id, &n.name))).collect();
        // As the lab's build makes them (see `Inside`).
        let inside = Inside::new(&nodes);
        let (made, err) =
            netns::create_all(&names, &registry::lab_netns_dir(&self.run_id), |i, here| inside.run(i, here));
        // A step's read-back reads every sysctl again (`observe`).
        let first = self.namespaces.len();
        for (ns, (nl, task, _)) in made {
            self.tasks.insert(ns.node.clone(), task);
            self.netlinks.insert(ns.node.clone(), nl);
            self.namespaces.push(ns);
        }
        if let Some(e) = err {
            return Err(env_error("cannot create a network namespace or its netlink socket", e));
        }
        if self.named {
            netns::name_all(&self.namespaces[first..]).map_err(|e| env_error("cannot name the lab's namespaces", e))?;
        }
        Ok(())
    }

    /// Creates and configures the `(node, link)` pairs in `wanted` (see
    /// [`wiring`]), every namespace being there already; static routes
    /// only for the `fresh` nodes, whose namespaces were just made.
    async fn wire(&self, plan: &Plan, wanted: &[(String, String)], fresh: &[String]) -> Result<()> {
        let mut wiring = Wiring::new(plan, wanted, fresh, None);
        for ns in &self.namespaces {
            wiring.arrived(&ns.node, self.netlinks[&ns.node].clone(), ns.file.as_raw_fd());
        }
        wiring.advance().await?;
        debug_assert!(wiring.done(), "every namespace is there, so everything is wired");
        Ok(())
    }

    /// Brings the lab from its current plan to `next` (the state after a
    /// `[[step]]`): containers whose namespace changed are taken down and
    /// built again, the rule tables are replaced atomically, and the
    /// proxies follow the published ports. Returns the nodes removed or
    /// rebuilt, whose responders the caller must restart.
    pub async fn apply_step(&mut self, next: &Plan) -> Result<Vec<String>> {
        // What `up` read back is about to be out of date.
        self.readback.get_mut().unwrap_or_else(|p| p.into_inner()).take();
        let old = self.plan.clone();
        let same = |a: &NodePlan, b: &NodePlan| serde_json::to_string(a).ok() == serde_json::to_string(b).ok();
        // The host, external, the uplink's segment and the machines live
        // through every step; containers' namespaces come and go.
        let lasting = |name: &str| {
            matches!(name, "host" | "external" | crate::plan::UPLINK_SEGMENT) || old.machine(name).is_some()
        };
        let gone: Vec<String> = old
            .nodes
            .iter()
            .filter(|n| !lasting(&n.name))
            .filter(|n| next.node(&n.name).is_none_or(|m| !same(n, m)))
            .map(|n| n.name.clone())
            .collect();
        let fresh: Vec<String> = next
            .nodes
            .iter()
            .filter(|n| old.node(&n.name).is_none() || gone.contains(&n.name))
            .map(|n| n.name.clone())
            .collect();
        // Host ends of veths that go away are deleted first, synchronously,
        // so a rebuilt container can take the same name at once.
        let host_nl = self.netlinks["host"].clone();
        let old_host = old.node("host").expect("host node");
        let next_host = next.node("host").expect("host node");
        for l in &old_host.links {
            let peer_gone = matches!(&l.kind, LinkKind::Veth { peer_node, .. } if gone.contains(peer_node));
            if peer_gone || next_host.link(&l.name).is_none() {
                if let Ok(index) = host_nl.index(&l.name).await {
                    host_nl.del(index).await.map_err(|e| Error::apply(format!("host: delete {}", l.name), e))?;
                }
            }
        }
        let mut errors = Vec::new();
        for node in &gone {
            self.netlinks.remove(node);
            if let Some(t) = self.tasks.remove(node) {
                t.abort();
            }
            if let Some(i) = self.namespaces.iter().position(|n| n.node == *node) {
                // Only forgotten once it is gone: teardown retries it otherwise.
                if let Err(e) = self.namespaces[i].remove() {
                    errors.push(e.to_string());
                } else {
                    self.namespaces.remove(i);
                }
            }
        }
        if !errors.is_empty() {
            return Err(Error::Teardown(errors));
        }
        self.record_nodes(next)?;
        self.add_namespaces(next, &fresh)?;
        let mut wanted: Vec<(String, String)> = next
            .nodes
            .iter()
            .filter(|n| fresh.contains(&n.name))
            .flat_map(|n| n.links.iter().map(|l| (n.name.clone(), l.name.clone())))
            .collect();
        for l in &next_host.links {
            let peer_fresh = matches!(&l.kind, LinkKind::Veth { peer_node, .. } if fresh.contains(peer_node));
            if peer_fresh || old_host.link(&l.name).is_none() {
                wanted.push(("host".into(), l.name.clone()));
            }
        }
        self.wire(next, &wanted, &fresh).await?;
        // A namespace made by this step has its interfaces' sysctls written
        // now (the rest as it was made, as when the lab is built); a
        // namespace that was there gets those it did not have (Docker 28's
        // per-interface ones, for an interface this step added).
        for node in &next.nodes {
            let before = old.nodes.iter().find(|n| n.name == node.name && !fresh.contains(&n.name));
            let new = |s: &&crate::plan::Sysctl| match before {
                None => per_interface(&s.key),
                Some(b) => !b.sysctls.iter().any(|o| o.key == s.key && o.value == s.value),
            };
            let ns = &self.ns(&node.name).file;
            let pairs: Vec<(&str, &str)> = node
                .sysctls
                .iter()
                .filter(|s| s.write)
                .filter(new)
                .map(|s| (s.key.as_str(), s.value.as_str()))
                .collect();
            if !pairs.is_empty() {
                netns::write_sysctls(ns, &pairs).map_err(|e| env_error(&format!("{}: sysctls", node.name), e))?;
            }
        }
        // A `sysctl` step: what changed in a namespace that lives on is
        // written there, in the plan's order.
        for node in next.nodes.iter().filter(|n| lasting(&n.name)) {
            let before = old.node(&node.name).map(|n| n.sysctls.as_slice()).unwrap_or_default();
            let pairs: Vec<(&str, &str)> = node
                .sysctls
                .iter()
                .filter(|s| s.write && !before.iter().any(|b| b.key == s.key && b.value == s.value))
                .map(|s| (s.key.as_str(), s.value.as_str()))
                .collect();
            if !pairs.is_empty() {
                let ns = &self.ns(&node.name).file;
                netns::write_sysctls(ns, &pairs).map_err(|e| env_error(&format!("{}: sysctls", node.name), e))?;
            }
        }
        let host_ns = self.ns("host").file.try_clone().map_err(|e| Error::apply("host: dup namespace fd", e))?;
        if old.iptables.render() != next.iptables.render() || old.iptables.tables.len() != next.iptables.tables.len() {
            iptables::restore(&host_ns, &next.iptables, false)?;
        }
        if old.iptables.nft != next.iptables.nft {
            nftables::install(&host_ns, &next.iptables.nft)?;
        }
        if old.port_mappings != next.port_mappings {
            // Wait for each aborted proxy to drop its listening socket
            // before binding the ports again.
            for p in self.proxies.drain(..) {
                p.abort();
                let _ = p.await;
            }
            // The ports are free only once no child started meanwhile
            // holds the old sockets.
            iptables::no_child_starting();
            self.proxies = proxy::start(&host_ns, &next.port_mappings).await?;
        }
        // After the rules and proxies, as the daemon revokes the ports first.
        if !next.conntrack_cleared.is_empty() || !next.conntrack_cleared_udp.is_empty() {
            let n = conntrack::delete(&host_ns, &next.conntrack_cleared, &next.conntrack_cleared_udp)
                .map_err(|e| Error::apply("host: delete conntrack entries", e))?;
            tracing::debug!(
                "conntrack: {n} entries of {:?} and UDP {:?} deleted",
                next.conntrack_cleared,
                next.conntrack_cleared_udp
            );
        }
        self.plan = next.clone();
        // Carrier changes only on the host's bridges and in rebuilt nodes.
        let mut changed = fresh;
        changed.push("host".into());
        self.settle(&changed).await?;
        self.advertise(next, &changed)?;
        Ok(gone)
    }

    /// Keeps the run record's node list in step with the namespaces, before
    /// new ones are made, so `cleanup` always knows all of them.
    fn record_nodes(&self, next: &Plan) -> Result<()> {
        if let Some(mut rec) = self.registry.get(&self.run_id) {
            for n in &next.nodes {
                if !rec.nodes.contains(&n.name) {
                    rec.nodes.push(n.name.clone());
                }
            }
            self.registry.write(&rec).map_err(|e| env_error("cannot update the run record", e))?;
        }
        Ok(())
    }

    /// Waits (bounded) until the `linkdown` flag of every planned route in
    /// `nodes` is what the plan says, and every bridge port there that
    /// should forward is operationally up. The kernel reports carrier
    /// changes asynchronously: a bridge that gains its first port or loses
    /// its last one, and a veth whose peer comes up, flag their routes up to
    /// a second later, and a bridge forwards through a port only after
    /// that (see [`verify::ports_pending`]). Each poll dumps the namespaces
    /// not settled yet; any other difference is final, and left to the
    /// caller's verify. Returns each node's last dump, taken once it had
    /// settled: the lab as the kernel reports it (see [`Self::observe`]).
    async fn settle(&self, nodes: &[String]) -> Result<HashMap<String, NodeDump>> {
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        let nodes: std::collections::HashSet<&str> = nodes.iter().map(String::as_str).collect();
        let mut watched: Vec<&NodePlan> = self.plan.nodes.iter().filter(|n| nodes.contains(n.name.as_str())).collect();
        let mut settled = HashMap::new();
        loop {
            let seen = self.dump(watched.iter().map(|np| np.name.as_str())).await?;
            // A node whose routes have settled is not read again: carrier
            // only ever catches up with the plan.
            let mut pending = Vec::new();
            let mut still = Vec::new();
            for (np, dump) in watched.into_iter().zip(seen) {
                let mut left = verify::carrier_pending(np, &dump.indexes(), &dump.carriers());
                left.extend(verify::ports_pending(&self.plan, np, &dump.links));
                if !left.is_empty() && Instant::now() <= deadline {
                    pending.extend(left);
                    still.push(np);
                } else if !left.is_empty() {
                    tracing::warn!("carrier did not settle within {SETTLE_TIMEOUT:?}: {left:?}");
                }
                settled.insert(np.name.clone(), dump);
            }
            watched = still;
            if pending.is_empty() {
                return Ok(settled);
            }
            tracing::trace!("settle: waiting for {pending:?}");
            tokio::time::sleep(SETTLE_POLL).await;
        }
    }

    /// Every namespace's links, addresses and routes of `nodes`, in order:
    /// blocking dumps on two threads that each join half the namespaces in
    /// turn (the machines this runs on have two cores or more, and the
    /// runtime's are idle meanwhile).
    async fn dump<'a>(&self, nodes: impl Iterator<Item = &'a str>) -> Result<Vec<NodeDump>> {
        let files: HashMap<&str, &Arc<std::fs::File>> =
            self.namespaces.iter().map(|n| (n.node.as_str(), &n.file)).collect();
        let mut first: Vec<(String, Arc<std::fs::File>)> =
            nodes.map(|n| (n.to_string(), Arc::clone(files[n]))).collect();
        if first.is_empty() {
            return Ok(Vec::new());
        }
        let second = first.split_off(first.len().div_ceil(2));
        let read = |part: Vec<(String, Arc<std::fs::File>)>| {
            tokio::task::spawn_blocking(move || {
                netns::each_joined(part.iter().map(|(_, f)| (&**f, ())), |()| netlink::dump_here())
                    .map_err(|(i, e)| Error::apply(format!("{}: read back", part[i].0), e))
            })
        };
        let (a, b) = tokio::join!(read(first), read(second));
        let joined = |r: std::result::Result<Result<Vec<NodeDump>>, tokio::task::JoinError>| {
            r.unwrap_or_else(|e| Err(Error::Environment(format!("a read-back thread failed: {e}"))))
        };
        let mut dumps = joined(a)?;
        dumps.extend(joined(b)?);
        Ok(dumps)
    }

    /// Reads every namespace back through netlink, its sysctls, and the
    /// host's rules through `iptables-save`. The first call after [`up`]
    /// takes what `up` read back as it settled (the lab's final state, once
    /// the kernel had reported carrier), rather than reading it all again.
    pub async fn observe(&self) -> Result<Observed> {
        if let Some(o) = self.readback.lock().unwrap_or_else(|p| p.into_inner()).take() {
            return Ok(o);
        }
        let rules = self.read_rules()?;
        let sysctls = self.read_sysctls(|_| true)?;
        let dumps = self.dump(self.namespaces.iter().map(|n| n.node.as_str())).await;
        tracing::debug!("observe: namespaces dumped");
        let dumps: HashMap<String, NodeDump> = self.namespaces.iter().map(|n| n.node.clone()).zip(dumps?).collect();
        self.assemble(dumps, HashMap::new(), vec![sysctls], rules)
    }

    /// Reads the host's rules on a thread of its own: `iptables-save` (and
    /// `ip6tables-save` at once where the plan has IPv6 tables), and the
    /// nftables listing where the plan has one. Started as soon as the
    /// rules are final.
    fn read_rules(&self) -> Result<RulesReader> {
        let host = self.namespaces.iter().find(|n| n.node == "host").map(|n| n.file.clone());
        let nft = !self.plan.iptables.nft.is_empty();
        // Only the lab loads rules in its host's namespace: where the plan
        // has no IPv6 table, `ip6tables-save` (a process start, a second
        // full read) would have nothing to show.
        let v6 = self.plan.iptables.has_v6();
        std::thread::Builder::new()
            .name("bl-rules".into())
            .spawn(move || {
                let Some(host) = host else { return Ok(None) };
                let saved = iptables::save(&host, v6)?;
                let listed = if nft {
                    Some(nftables::read(&host, crate::plan::firewall::nftabler::TABLE)?.listing())
                } else {
                    None
                };
                Ok(Some((saved, listed)))
            })
            .map_err(|e| env_error("cannot start the rule reader", e))
    }

    /// Reads every namespace's planned sysctls whose key `which` accepts, on
    /// a thread of its own that joins each namespace in turn: in a build,
    /// the per-interface ones once written (the namespace maker reads the
    /// others, see [`Inside`]); for [`observe`](Self::observe), all.
    fn read_sysctls(&self, which: fn(&str) -> bool) -> Result<SysctlsReader> {
        let planned: HashMap<&str, &NodePlan> = self.plan.nodes.iter().map(|n| (n.name.as_str(), n)).collect();
        let jobs: Vec<(String, std::sync::Arc<std::fs::File>, Vec<String>)> = self
            .namespaces
            .iter()
            .filter_map(|ns| {
                let planned = planned.get(ns.node.as_str())?;
                let keys: Vec<String> =
                    planned.sysctls.iter().filter(|s| which(&s.key)).map(|s| s.key.clone()).collect();
                (!keys.is_empty()).then(|| (ns.node.clone(), ns.file.clone(), keys))
            })
            .collect();
        std::thread::Builder::new()
            .name("bl-sysctls".into())
            .spawn(move || {
                let each: Vec<(&std::fs::File, Vec<&str>)> =
                    jobs.iter().map(|(_, f, keys)| (&**f, keys.iter().map(String::as_str).collect())).collect();
                let values = netns::read_sysctls_all(&each)
                    .map_err(|(j, e)| env_error(&format!("{}: read sysctls", jobs[j].0), e))?;
                Ok(jobs
                    .into_iter()
                    .zip(values)
                    .map(|((node, _, keys), vals)| (node, keys.into_iter().zip(vals).collect()))
                    .collect())
            })
            .map_err(|e| env_error("cannot start the sysctl reader", e))
    }

    /// The lab as read back: every namespace's dump, with the sysctls
    /// (those read already, and those of `readers`) and the host's rules
    /// once their readers are done.
    fn assemble(
        &self,
        mut dumps: HashMap<String, NodeDump>,
        mut sysctls: HashMap<String, Sysctls>,
        readers: Vec<SysctlsReader>,
        rules: RulesReader,
    ) -> Result<Observed> {
        let panicked = |what: &str| Error::Environment(format!("the {what} reader panicked"));
        for r in readers {
            for (node, values) in r.join().map_err(|_| panicked("sysctl"))?? {
                sysctls.entry(node).or_default().extend(values);
            }
        }
        let (saved, listed) = rules.join().map_err(|_| panicked("rule"))??.unzip();
        tracing::debug!("observe: sysctls and rules read");
        let (mut saved, mut listed) = (saved, listed.flatten());
        let nodes = self
            .namespaces
            .iter()
            .map(|ns| {
                let dump =
                    dumps.remove(&ns.node).ok_or_else(|| Error::Environment(format!("{}: not read back", ns.node)))?;
                let host = ns.node == "host";
                Ok(ObservedNode {
                    name: ns.node.clone(),
                    routes: dump.routes(),
                    links: dump.links,
                    addresses: dump.addresses,
                    sysctls: sysctls.remove(&ns.node).unwrap_or_default(),
                    iptables: if host { saved.take() } else { None },
                    nft: if host { listed.take() } else { None },
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Observed { nodes })
    }

    /// The lab as normalized text, holding what the scenario's `[snapshot]`
    /// selects (by default the host's `iptables-save` and every node's
    /// routes), read back from the kernel: see [`snapshot::render`]. It is
    /// the same on every run and machine, for snapshot tests.
    ///
    /// ```no_run
    /// # async fn demo() -> bridgelab::Result<()> {
    /// let running = bridgelab::Lab::load("scenarios/default.toml")?.up().await?;
    /// insta::assert_snapshot!("default-tables", running.snapshot().await?);
    /// running.down()
    /// # }
    /// ```
    pub async fn snapshot(&self) -> Result<String> {
        Ok(snapshot::render(&self.plan, &self.scenario.spec.snapshot, &self.observe().await?))
    }

    /// Differences between the plan and what the kernel reports.
    pub async fn verify(&self) -> Result<Vec<Mismatch>> {
        Ok(verify::verify(&self.plan, &self.observe().await?))
    }

    /// Leaves the lab in place when this handle goes away (`bridgelab up`):
    /// its record says it is kept, so `cleanup` spares it until `down`.
    /// If the record cannot say so, the lab is removed and that is the error.
    pub fn detach(mut self) -> Result<String> {
        if self.attached {
            return Ok(self.run_id.clone());
        }
        self.name_namespaces()?;
        let kept = match self.registry.get(&self.run_id) {
            Some(mut rec) => {
                rec.kept = true;
                self.registry.write(&rec)
            }
            None => Err(io::Error::other("the run record is gone")),
        };
        kept.map_err(|e| env_error("cannot mark the lab as kept", e))?;
        self.detached = true;
        self.close_sockets();
        Ok(self.run_id.clone())
    }

    /// Removes the lab: every namespace, then the run record.
    pub fn down(mut self) -> Result<()> {
        self.teardown()
    }

    fn close_sockets(&mut self) {
        for p in self.proxies.drain(..) {
            p.abort();
        }
        self.netlinks.clear();
        for (_, t) in self.tasks.drain() {
            t.abort();
        }
    }

    fn teardown(&mut self) -> Result<()> {
        if self.attached {
            return Err(Error::Environment(format!(
                "lab {} belongs to another process: remove it with `bridgelab down {}`",
                self.run_id, self.run_id
            )));
        }
        if self.torn_down {
            return Ok(());
        }
        self.torn_down = true;
        let started = Instant::now();
        // The namespace files and sockets stay open until every namespace
        // is unmounted: the kernel frees a namespace (in a work queue that
        // takes the RTNL lock and CPU time) once its last reference goes,
        // and freeing hundreds while unmounting the rest made the unmounts
        // several times slower. Freed after this, they cost the caller
        // nothing.
        let namespaces: Vec<NetNs> = self.namespaces.drain(..).collect();
        let names: Vec<_> = namespaces.iter().map(NetNs::name).collect();
        let done = remove_namespaces(&self.registry, &self.run_id, &names, self.named);
        tracing::debug!("teardown: namespaces removed at {:?}", started.elapsed());
        self.close_sockets();
        drop(namespaces);
        done
    }
}

/// Opens a lab that another process built and keeps (`bridgelab up`,
/// `up --serve`, `run --hold`), to read and probe it: its plan made again
/// from the scenario its record keeps, its namespaces, and a netlink
/// socket in each. The plan must be the one the lab was built from (same
/// hash, same nodes) and every namespace must still exist. Dropping the
/// handle leaves the lab as it is.
pub async fn attach(registry: &Registry, run_id: &str) -> Result<RunningLab> {
    check_environment()?;
    registry::check_run_id(run_id)?;
    let Some(rec) = registry.get(run_id) else {
        if registry.contains(run_id) {
            return Err(Error::Environment(format!(
                "the record of run {run_id} in {} does not parse",
                registry.dir().display()
            )));
        }
        return Err(Error::NoSuchRun(run_id.to_string()));
    };
    let (scenario, plan) = replan(&rec)?;
    let nodes: Vec<String> = plan.nodes.iter().map(|n| n.name.clone()).collect();
    if nodes != rec.nodes {
        return Err(Error::Environment(format!(
            "lab {run_id}: its record lists the nodes {}, the scenario plans {}: the record is not this lab's",
            rec.nodes.join(", "),
            nodes.join(", ")
        )));
    }
    let mut namespaces = Vec::new();
    for node in &nodes {
        let path = registry::namespace_path(run_id, node);
        let file = std::fs::File::open(&path).map_err(|e| {
            Error::Environment(format!(
                "lab {run_id} is gone or half gone: {} ({e}); `bridgelab down {run_id}` or `bridgelab cleanup` removes what is left",
                path.display()
            ))
        })?;
        namespaces.push(NetNs { node: node.clone(), path, file: file.into() });
    }
    let mut lab = RunningLab::empty(run_id.to_string(), scenario, plan, registry.clone(), true);
    for ns in namespaces {
        let (nl, task) =
            Netlink::open(&ns.file).map_err(|e| env_error(&format!("netlink socket in {}", ns.node), e))?;
        lab.tasks.insert(ns.node.clone(), task);
        lab.netlinks.insert(ns.node.clone(), nl);
        lab.namespaces.push(ns);
    }
    Ok(lab)
}

/// The scenario and plan a lab was built from, from its record: the
/// scenario text it keeps (or, for a record without it, the file at its
/// path), planned again and checked against the recorded plan hash.
pub fn replan(rec: &RunRecord) -> Result<(Scenario, Plan)> {
    let id = &rec.run_id;
    let (text, hash, version) = match &rec.built_from {
        Some(b) => (b.text.clone(), Some(b.plan_hash.as_str()), b.version.as_deref()),
        None => {
            let text = std::fs::read_to_string(&rec.scenario_path).map_err(|e| {
                Error::Environment(format!(
                    "lab {id}: its record does not keep its scenario, and {} cannot be read: {e}",
                    rec.scenario_path.display()
                ))
            })?;
            (text, None, None)
        }
    };
    let mut scenario = Scenario::parse(rec.scenario_path.clone(), text)?;
    if let Some(v) = version {
        scenario = scenario
            .variants()
            .into_iter()
            .find(|s| s.version.is_some_and(|x| x.to_string() == v))
            .ok_or_else(|| Error::Environment(format!("lab {id}: its scenario has no run under version {v}")))?;
    }
    let plan = crate::plan::plan(&scenario)?;
    if let Some(h) = hash {
        if registry::plan_hash(&plan) != h {
            return Err(Error::Environment(format!(
                "lab {id} was built from another plan than this bridgelab makes of its scenario \
                 (built by another version of bridgelab?): it cannot be probed or read back safely"
            )));
        }
    }
    Ok((scenario, plan))
}

/// Removes namespaces (all of them, whatever fails) and then, if that
/// worked, the run record. `names` are their names under `/run/netns`;
/// `linked` says whether the lab may have been named there (`down` and
/// `cleanup` cannot know: they say yes). Shared by teardown, `down` and
/// `cleanup`.
pub fn remove_namespaces(registry: &Registry, run_id: &str, names: &[std::path::PathBuf], linked: bool) -> Result<()> {
    let names: Vec<std::path::PathBuf> = names.iter().rev().cloned().collect();
    let mut errors: Vec<String> =
        netns::remove_all(&registry::lab_netns_dir(run_id), &names, linked).iter().map(|e| e.to_string()).collect();
    if errors.is_empty() {
        if let Err(e) = registry.remove(run_id) {
            errors.push(format!("remove run record {run_id}: {e}"));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::Teardown(errors))
    }
}

impl Drop for RunningLab {
    fn drop(&mut self) {
        if self.detached {
            return;
        }
        if let Err(e) = self.teardown() {
            tracing::error!("{e}");
        }
    }
}

/// What is done inside each namespace before the lab may use it: write
/// bridgelab's own sysctls ([`netns::LAB_SYSCTLS`]) and the node's that
/// name no interface, as Docker's runtime writes a container's before
/// libnetwork adds any interface (and as the daemon sets its own before it
/// makes its bridge), so that a container's IPv6 is off before its links
/// come up; and open the node's netlink socket there.
///
/// A build splits this over two threads: the maker opens the socket in
/// each namespace it makes, and hands the namespace to a second thread
/// that joins it, writes its sysctls and only then passes it on to be
/// wired ([`Inside::write_each`]). Namespaces are made one after another
/// under the kernel's RTNL lock, which the sysctls need little of, so they
/// cost the build little there (at N = 100, 1.19–1.22x the floor against
/// 1.23–1.30x: `bench/README.md`, eighth step). A step's few new nodes get
/// both on the maker ([`Inside::run`]).
///
/// The sysctls are read back (the planned ones not written too) right
/// after all are written: nothing changes them after, and reading them
/// there costs a read per key where a reader of its own would join every
/// namespace again (3–5 ms of CPU at N = 100 while the lab was wired).
struct Inside {
    /// Per node: its planned sysctls that name no interface.
    nodes: Vec<(String, Vec<EarlySysctl>)>,
    rt: tokio::runtime::Handle,
}

/// A sysctl that names no interface: its key, and the value to write, or
/// none to only read it.
type EarlySysctl = (String, Option<String>);

/// What [`Inside`] leaves in a namespace: its netlink socket, the task that
/// drives it, and the sysctls read back.
type Opened = (Netlink, JoinHandle<()>, Sysctls);

impl Inside {
    fn new(nodes: &[&NodePlan]) -> Self {
        let early = |n: &NodePlan| {
            n.sysctls
                .iter()
                .filter(|s| !per_interface(&s.key))
                .map(|s| (s.key.clone(), s.write.then(|| s.value.clone())))
                .collect()
        };
        Inside {
            nodes: nodes.iter().map(|n| (n.name.clone(), early(n))).collect(),
            rt: tokio::runtime::Handle::current(),
        }
    }

    /// Both halves, on the thread that has just made node `i`'s namespace.
    fn run(&self, i: usize, here: &mut netns::SysctlsHere) -> io::Result<Opened> {
        let read = self.sysctls(i, here)?;
        let (netlink, task) = Netlink::open_here(&self.rt)?;
        Ok((netlink, task, read))
    }

    /// Writes node `i`'s sysctls in the calling thread's namespace (its
    /// own), and reads them back.
    fn sysctls(&self, i: usize, here: &mut netns::SysctlsHere) -> io::Result<Sysctls> {
        let (node, early) = &self.nodes[i];
        let named = |e: io::Error| io::Error::new(e.kind(), format!("{node}: sysctls: {e}"));
        netns::write_lab_sysctls(here).map_err(named)?;
        let keys: Vec<(&str, Option<&str>)> = early.iter().map(|(k, v)| (k.as_str(), v.as_deref())).collect();
        let values = netns::write_then_read_here(here, &keys).map_err(named)?;
        Ok(early.iter().map(|(k, _)| k.clone()).zip(values).collect())
    }

    /// The build's second thread (see [`Inside`]): takes each namespace
    /// the maker queues, in order, joins it, writes its sysctls, and sends
    /// it on to the build. After a failure, or once the build takes no
    /// more, it sets `stop` (the maker makes no more) and removes whatever
    /// is still queued.
    fn write_each(&self, queued: std::sync::mpsc::Receiver<Queued>, made: &MadeTx, stop: &AtomicBool) {
        let discard = |ns: NetNs, task: JoinHandle<()>| {
            task.abort();
            let _ = ns.remove();
        };
        let mut procs = netns::ProcSys::new();
        for (i, ns, nl, task) in queued {
            let written = (!stop.load(Ordering::Relaxed)).then(|| {
                netns::join(&ns.file).and_then(|()| {
                    procs.enter();
                    self.sysctls(i, &mut procs.here())
                })
            });
            match written {
                Some(Ok(read)) => match made.send(Made::Namespace(ns, nl, task, read)) {
                    Ok(()) => continue,
                    // The build takes no more.
                    Err(e) => {
                        if let Made::Namespace(ns, _, task, _) = e.0 {
                            discard(ns, task);
                        }
                    }
                },
                Some(Err(e)) => {
                    let _ = made.send(Made::Failed(env_error("cannot write a new namespace's sysctls", e)));
                    discard(ns, task);
                }
                None => discard(ns, task),
            }
            stop.store(true, Ordering::Relaxed);
        }
    }
}

/// A namespace the maker has made, for [`Inside::write_each`]: its node's
/// index, and its netlink socket with the task driving it.
type Queued = (usize, NetNs, Netlink, JoinHandle<()>);

/// Where the build's namespaces go once ready.
type MadeTx = tokio::sync::mpsc::UnboundedSender<Made>;

/// What the namespace maker sends: a namespace with the netlink socket
/// opened inside it (and the task driving that socket) and its sysctls
/// read back, or why it stopped.
enum Made {
    Namespace(NetNs, Netlink, JoinHandle<()>, Sysctls),
    Failed(Error),
}

/// The thread making a lab's namespaces, and what it made. If the build
/// is dropped half-way (Ctrl-C, a cancelled future), dropping this stops
/// the thread and removes what it made that the lab never took: nothing is
/// made after, nor left behind.
struct Makers {
    thread: Option<std::thread::JoinHandle<()>>,
    made: tokio::sync::mpsc::UnboundedReceiver<Made>,
}

impl Makers {
    /// Stops the thread at its next namespace (which it removes itself)
    /// and waits for it. Returns what it sent that nobody took, with the
    /// tasks of their sockets aborted, and how the thread ended.
    fn stop(&mut self) -> (Vec<NetNs>, std::thread::Result<()>) {
        self.made.close();
        let joined = self.thread.take().map_or(Ok(()), |t| t.join());
        let mut left = Vec::new();
        while let Ok(m) = self.made.try_recv() {
            if let Made::Namespace(ns, _, task, _) = m {
                task.abort();
                left.push(ns);
            }
        }
        (left, joined)
    }
}

impl Drop for Makers {
    fn drop(&mut self) {
        for ns in self.stop().0 {
            if let Err(e) = ns.remove() {
                tracing::error!("{}: {e}", ns.node);
            }
        }
    }
}

/// Loads the host's rules (`iptables-restore`, or `nft -f`) on a blocking
/// thread as soon as the host exists, while the namespaces are still being
/// made: the rules name interfaces, and need none of them to exist yet.
fn load_firewall(host: &std::fs::File, plan: &Plan) -> JoinHandle<Result<()>> {
    let host = host.try_clone();
    let rules = plan.iptables.clone();
    tokio::task::spawn_blocking(move || {
        let host = host.map_err(|e| Error::apply("host: dup namespace fd", e))?;
        check_br_netfilter(&host)?;
        iptables::restore(&host, &rules, true)?;
        nftables::install(&host, &rules.nft)
    })
}

/// Binds the userland proxies' ports on a blocking thread as soon as the
/// host exists, while the lab is wired: they need nothing else of it. (A
/// build that fails first drops the sockets with the task's result.)
fn bind_ports(host: &std::fs::File, plan: &Plan) -> JoinHandle<Result<proxy::Bound>> {
    let host = host.try_clone();
    let mappings = plan.port_mappings.clone();
    tokio::task::spawn_blocking(move || {
        let host = host.map_err(|e| Error::apply("host: dup namespace fd", e))?;
        proxy::bind(&host, &mappings)
    })
}

/// Whether the wiring should go on while the namespace thread is still
/// making namespaces, once `made` of `all` exist and the host's rules are
/// in. The two fight over the kernel's RTNL lock (a container's
/// `disable_ipv6` write restarts until the wiring lets go of it), which
/// costs more than the overlap saves when few namespaces are left: a
/// hundred containers whose rules came in with 60 made were built in
/// 109 ms (median of 9) when the wiring waited for the other 40, 125 ms
/// when it did not. With most still to come (a thousand, of which 60 were
/// made) the overlap wins: 1.71 s against 1.85–1.91 s wired in batches.
fn overlap_pays(made: usize, all: usize) -> bool {
    made * 2 < all
}

/// The outcome of [`load_firewall`].
async fn rules_loaded(f: JoinHandle<Result<()>>) -> Result<()> {
    f.await.unwrap_or_else(|e| Err(Error::apply("host: load the rules", io::Error::other(e))))
}

/// Whether a sysctl belongs to one interface (`net.ipv6.conf.docker0.…`),
/// so that it can only be written once the interface exists. Those of
/// `all` apply to the namespace as a whole and, like the others, are
/// written as it is made; `default` ones would change what interfaces made
/// later inherit, so they wait with the per-interface ones.
fn per_interface(key: &str) -> bool {
    let mut parts = key.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("net"), Some("ipv4" | "ipv6"), Some("conf" | "neigh"), Some(dev)) => dev != "all",
        _ => false,
    }
}

/// icc = false and links rely on br_netfilter showing bridged traffic to
/// iptables; without it the rules would silently block nothing.
fn check_br_netfilter(host_ns: &std::fs::File) -> Result<()> {
    match netns::read_sysctl(host_ns, crate::plan::BR_NETFILTER_SYSCTL) {
        Ok(_) => Ok(()),
        Err(e) => Err(Error::Environment(format!(
            "this kernel lacks br_netfilter ({}: {e}): without it iptables never sees traffic between \
             containers on one bridge, so icc = false and links would block nothing. \
             Load it (modprobe br_netfilter) or use a kernel with it built in",
            crate::plan::BR_NETFILTER_SYSCTL
        ))),
    }
}

fn spend(budget: &mut Option<usize>) -> Result<()> {
    match budget {
        Some(0) => Err(Error::apply("stopped on purpose (fail_after_links)", io::Error::other("injected failure"))),
        Some(n) => {
            *n -= 1;
            Ok(())
        }
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_wait_for_the_last_namespaces_only_when_most_are_made() {
        assert!(overlap_pays(60, 1002), "most still to come: wire meanwhile");
        assert!(!overlap_pays(60, 102), "most made: let the rest come first");
        assert!(!overlap_pays(102, 102));
    }
}
