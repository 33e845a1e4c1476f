//! Responders: the `listen = ["tcp:80", "udp:53"]` services of a node.
//!
//! Each one is a tokio listener whose socket was opened inside the node's
//! namespace. It records the peer address of every connection or datagram,
//! keyed by the probe token the client sends, so an expectation's `source`
//! can say who the packet seemed to come from after NAT or the proxy.
//!
//! A responder belongs to the container that `listen`s (or to `external`),
//! not to the namespace it runs in: a `host`- or `container:`-mode
//! container's responder stops when that container stops, though the
//! namespace lives on.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::task::JoinHandle;

use super::packets::{flow_payload, parse_flow, parse_token};
use crate::apply::netns;
use crate::scenario::{ListenSpec, Proto};

/// Who reached which responder: by probe token (every responder that got
/// it: a broadcast reaches several), and by flow token the latest
/// datagrams of each flow.
#[derive(Debug, Clone, Default)]
pub struct PeerLog {
    probes: Arc<Mutex<HashMap<u32, Vec<SeenPeer>>>>,
    flows: Arc<Mutex<HashMap<u32, FlowLog>>>,
    /// Where each new probe record is also sent, for other processes
    /// (`up --serve`: see [`super::share`]).
    tap: Arc<std::sync::OnceLock<tokio::sync::broadcast::Sender<(u32, SeenPeer)>>>,
}

/// A flow's latest datagrams that a responder got: (number, who got it).
type FlowLog = VecDeque<(u64, SeenPeer)>;

/// How many of a flow's latest datagrams the log keeps.
const FLOW_LOG: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenPeer {
    /// The node whose namespace the responder listens in.
    pub node: String,
    pub listen: ListenSpec,
    pub peer: SocketAddr,
}

impl PeerLog {
    /// Notes that a responder got probe `token` (from another process's
    /// responder too: [`super::share::mirror`]).
    pub fn record(&self, token: u32, seen: SeenPeer) {
        let mut log = self.probes.lock().expect("peer log");
        let all = log.entry(token).or_default();
        // A retry reaches the same responder again.
        if !all.contains(&seen) {
            if let Some(tap) = self.tap.get() {
                // Nobody listening is no error.
                let _ = tap.send((token, seen.clone()));
            }
            all.push(seen);
        }
    }
    /// A receiver of every probe record from now on.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<(u32, SeenPeer)> {
        self.tap.get_or_init(|| tokio::sync::broadcast::channel(1024).0).subscribe()
    }
    /// The first responder that recorded `token`.
    pub fn get(&self, token: u32) -> Option<SeenPeer> {
        self.probes.lock().expect("peer log").get(&token).and_then(|v| v.first().cloned())
    }
    /// Every responder that recorded `token`, in the order they did.
    pub fn all(&self, token: u32) -> Vec<SeenPeer> {
        self.probes.lock().expect("peer log").get(&token).cloned().unwrap_or_default()
    }
    fn record_flow(&self, token: u32, seq: u64, seen: SeenPeer) {
        let mut log = self.flows.lock().expect("peer log");
        let q = log.entry(token).or_default();
        if q.len() == FLOW_LOG {
            q.pop_front();
        }
        q.push_back((seq, seen));
    }
    /// The datagrams of flow `token` after its datagram `seq` that a
    /// responder got, oldest first.
    pub fn flow_since(&self, token: u32, seq: u64) -> Vec<(u64, SeenPeer)> {
        let log = self.flows.lock().expect("peer log");
        log.get(&token).map(|q| q.iter().filter(|(s, _)| *s > seq).cloned().collect()).unwrap_or_default()
    }
}

/// What a flow's sender has seen so far, by datagram number (from 1).
#[derive(Debug, Default)]
pub struct FlowState {
    /// The last datagram sent.
    pub sent: AtomicU64,
    /// The highest datagram whose echo came back.
    pub echoed: AtomicU64,
    /// How many datagrams had been sent when an ICMP port unreachable
    /// last came back (ECONNREFUSED on the connected socket).
    pub refused: AtomicU64,
    /// The same for any other error (a route gone: ENETUNREACH, ...).
    pub failed: AtomicU64,
}

/// A `flow` step's sender: one connected UDP socket with a fixed source
/// port in the sender's namespace, sending a datagram every interval, so
/// the kernel's conntrack entry for it lives on across steps.
#[derive(Debug)]
pub struct Flow {
    pub name: String,
    /// The node it sends from, and that node's namespace.
    pub from: String,
    pub netns: String,
    ns_id: Option<u64>,
    pub src_port: u16,
    pub dst: SocketAddr,
    pub interval: Duration,
    pub token: u32,
    pub state: Arc<FlowState>,
    /// Why it stopped, when it did (its sender's namespace went away).
    pub stopped: Option<String>,
    task: JoinHandle<()>,
}

/// A responder that should run: who wants it, where, on what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    /// The container (or `external`) whose `listen` it is.
    pub owner: String,
    /// The node whose namespace it listens in.
    pub netns: String,
    pub spec: ListenSpec,
}

#[derive(Debug)]
struct Running {
    owner: String,
    netns: String,
    /// The namespace's inode: a rebuilt container has a new namespace under
    /// the same node name, and its responder must follow.
    ns_id: Option<u64>,
    spec: ListenSpec,
    task: JoinHandle<()>,
}

/// Running responders and flows; they stop when this is dropped (every
/// way a lab ends drops it, a signal included).
#[derive(Debug, Default)]
pub struct Responders {
    pub log: PeerLog,
    running: Vec<Running>,
    flows: Vec<Flow>,
}

impl Drop for Responders {
    fn drop(&mut self) {
        for r in &self.running {
            r.task.abort();
        }
        for f in &self.flows {
            f.task.abort();
        }
    }
}

/// The source ports of flows: below the probes' 20000..=29999, above the
/// well-known ports, apart from the ephemeral ranges.
const FLOW_PORTS: std::ops::RangeInclusive<u16> = 19000..=19999;

/// A namespace's identity (its inode).
pub fn ns_id(ns: &File) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    ns.metadata().ok().map(|m| m.ino())
}

impl Responders {
    /// Starts `owner`'s responder inside the namespace of node `netns`.
    pub fn start(&mut self, owner: &str, netns: &str, ns: &File, spec: ListenSpec) -> std::io::Result<()> {
        let addr = SocketAddr::from((Ipv4Addr::UNSPECIFIED, spec.port));
        let log = self.log.clone();
        let node_name = netns.to_string();
        let task = match spec.proto {
            Proto::Tcp => {
                let l = netns::tcp_listener(ns, addr)?;
                tokio::spawn(async move {
                    while let Ok((mut s, peer)) = l.accept().await {
                        let log = log.clone();
                        let node = node_name.clone();
                        tokio::spawn(async move {
                            let mut buf = [0u8; 64];
                            let read = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await;
                            if let Ok(Ok(n)) = read {
                                if let Some(token) = parse_token(&buf[..n]) {
                                    log.record(token, SeenPeer { node, listen: spec, peer });
                                }
                            }
                        });
                    }
                })
            }
            Proto::Udp => {
                let s = netns::udp_socket(ns, addr, None)?;
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 65535];
                    while let Ok((n, peer)) = s.recv_from(&mut buf).await {
                        let seen = SeenPeer { node: node_name.clone(), listen: spec, peer };
                        if let Some(token) = parse_token(&buf[..n]) {
                            log.record(token, seen);
                        } else if let Some((token, seq)) = parse_flow(&buf[..n]) {
                            log.record_flow(token, seq, seen);
                        }
                        let _ = s.send_to(&buf[..n], peer).await;
                    }
                })
            }
        };
        self.running.push(Running { owner: owner.to_string(), netns: netns.to_string(), ns_id: ns_id(ns), spec, task });
        Ok(())
    }

    /// Starts flow `name` from node `from` (namespace `netns`) to `dst`:
    /// a datagram every `interval` from one source port.
    pub fn start_flow(
        &mut self,
        name: &str,
        from: &str,
        netns: &str,
        ns: &File,
        dst: SocketAddr,
        interval: Duration,
    ) -> std::io::Result<()> {
        let (_, token) = super::engine::fresh_ids();
        let span = u32::from(FLOW_PORTS.end() - FLOW_PORTS.start()) + 1;
        let src_port = FLOW_PORTS.start() + (token % span) as u16;
        let sock = netns::udp_socket(ns, SocketAddr::from((Ipv4Addr::UNSPECIFIED, src_port)), Some(dst))?;
        let state = Arc::new(FlowState::default());
        let st = state.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut buf = [0u8; 128];
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        let seq = st.sent.fetch_add(1, Ordering::SeqCst) + 1;
                        if let Err(e) = sock.send(flow_payload(token, seq).as_bytes()).await {
                            note_error(&st, &e);
                        }
                    }
                    got = sock.recv(&mut buf) => match got {
                        Ok(n) => {
                            if let Some((t, seq)) = parse_flow(&buf[..n]) {
                                if t == token {
                                    st.echoed.fetch_max(seq, Ordering::SeqCst);
                                }
                            }
                        }
                        Err(e) => note_error(&st, &e),
                    },
                }
            }
        });
        tracing::debug!("flow {name}: {from}:{src_port} -> {dst} every {interval:?}");
        self.flows.push(Flow {
            name: name.to_string(),
            from: from.to_string(),
            netns: netns.to_string(),
            ns_id: ns_id(ns),
            src_port,
            dst,
            interval,
            token,
            state,
            stopped: None,
            task,
        });
        Ok(())
    }

    /// The flow named `name`.
    pub fn flow(&self, name: &str) -> Option<&Flow> {
        self.flows.iter().find(|f| f.name == name)
    }

    /// Stops the flows whose sender's namespace is gone or was replaced
    /// (`current` gives a node's namespace now): their socket would keep
    /// a dead namespace alive. `why` says what happened, for their
    /// expectations.
    pub fn stop_orphan_flows(&mut self, current: impl Fn(&str) -> Option<u64>, why: &str) {
        for f in self.flows.iter_mut().filter(|f| f.stopped.is_none()) {
            if f.ns_id.is_none() || current(&f.netns) != f.ns_id {
                f.task.abort();
                f.stopped = Some(format!("its sender {}'s namespace went away ({why})", f.from));
            }
        }
    }

    /// Whether a responder for `spec` runs in node `netns`'s namespace
    /// (whoever owns it).
    pub fn is_listening(&self, netns: &str, spec: ListenSpec) -> bool {
        self.running.iter().any(|r| r.netns == netns && r.spec == spec)
    }

    /// Stops the responders of nodes whose namespace went away: their
    /// sockets would keep the namespace alive (flows: see
    /// [`Responders::stop_orphan_flows`]).
    pub fn stop_nodes(&mut self, nodes: &[String]) {
        self.running.retain(|r| {
            let keep = !nodes.contains(&r.netns);
            if !keep {
                r.task.abort();
            }
            keep
        });
    }

    /// Brings the running responders to `wanted` (at most one per namespace
    /// and listen spec): stops those nobody wants any more, or whose
    /// namespace was replaced (`current` gives a node's namespace now), and
    /// waits until their sockets are closed, so the next probe meets a
    /// closed port. What is still wanted keeps running, handed to its
    /// current owner. Returns what must be started.
    pub async fn retain_wanted(&mut self, wanted: &[Wanted], current: impl Fn(&str) -> Option<u64>) -> Vec<Wanted> {
        let mut stopped = Vec::new();
        let mut kept = Vec::new();
        for mut r in self.running.drain(..) {
            let want = wanted.iter().find(|w| w.netns == r.netns && w.spec == r.spec);
            match want {
                Some(w) if r.ns_id.is_some() && current(&r.netns) == r.ns_id => {
                    if r.owner != w.owner {
                        tracing::debug!("responder {} in {}: handed from {} to {}", r.spec, r.netns, r.owner, w.owner);
                        r.owner = w.owner.clone();
                    }
                    kept.push(r);
                }
                _ => {
                    tracing::debug!("responder {} of {} in {}: stopped", r.spec, r.owner, r.netns);
                    r.task.abort();
                    stopped.push(r.task);
                }
            }
        }
        self.running = kept;
        // An aborted task has dropped its socket once its handle resolves.
        for t in stopped {
            let _ = t.await;
        }
        wanted.iter().filter(|w| !self.is_listening(&w.netns, w.spec)).cloned().collect()
    }
}

/// Counts an error the flow's socket reported against the datagrams sent.
fn note_error(st: &FlowState, e: &std::io::Error) {
    let sent = st.sent.load(Ordering::SeqCst);
    if e.kind() == std::io::ErrorKind::ConnectionRefused {
        st.refused.fetch_max(sent, Ordering::SeqCst);
    } else {
        st.failed.fetch_max(sent, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(node: &str) -> SeenPeer {
        SeenPeer { node: node.into(), listen: "udp:9".parse().unwrap(), peer: "10.0.0.1:5".parse().unwrap() }
    }

    #[test]
    fn every_responder_a_probe_reached_is_kept_once() {
        let log = PeerLog::default();
        log.record(7, seen("a"));
        log.record(7, seen("b"));
        log.record(7, seen("a"));
        assert_eq!(log.all(7), vec![seen("a"), seen("b")]);
        assert_eq!(log.get(7), Some(seen("a")));
        assert_eq!(log.all(8), vec![]);
    }

    #[test]
    fn a_flows_log_says_what_came_after_a_datagram_and_stays_bounded() {
        let log = PeerLog::default();
        for seq in 1..=(FLOW_LOG as u64 + 10) {
            log.record_flow(3, seq, seen(if seq % 2 == 0 { "even" } else { "odd" }));
        }
        let late = log.flow_since(3, FLOW_LOG as u64 + 8);
        assert_eq!(
            late.iter().map(|(s, p)| (*s, p.node.as_str())).collect::<Vec<_>>(),
            vec![(FLOW_LOG as u64 + 9, "odd"), (FLOW_LOG as u64 + 10, "even")]
        );
        assert_eq!(log.flow_since(3, 0).len(), FLOW_LOG);
        assert!(log.flow_since(4, 0).is_empty());
    }
}
