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

use std::collections::HashMap;
use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::task::JoinHandle;

use super::packets::parse_token;
use crate::apply::netns;
use crate::scenario::{ListenSpec, Proto};

/// Who reached which responder, by probe token.
#[derive(Debug, Clone, Default)]
pub struct PeerLog(Arc<Mutex<HashMap<u32, SeenPeer>>>);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenPeer {
    /// The node whose namespace the responder listens in.
    pub node: String,
    pub listen: ListenSpec,
    pub peer: SocketAddr,
}

impl PeerLog {
    fn record(&self, token: u32, seen: SeenPeer) {
        self.0.lock().expect("peer log").insert(token, seen);
    }
    pub fn get(&self, token: u32) -> Option<SeenPeer> {
        self.0.lock().expect("peer log").get(&token).cloned()
    }
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

/// Running responders; they stop when this is dropped.
#[derive(Debug, Default)]
pub struct Responders {
    pub log: PeerLog,
    running: Vec<Running>,
}

impl Drop for Responders {
    fn drop(&mut self) {
        for r in &self.running {
            r.task.abort();
        }
    }
}

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
                        if let Some(token) = parse_token(&buf[..n]) {
                            log.record(token, SeenPeer { node: node_name.clone(), listen: spec, peer });
                        }
                        let _ = s.send_to(&buf[..n], peer).await;
                    }
                })
            }
        };
        self.running.push(Running { owner: owner.to_string(), netns: netns.to_string(), ns_id: ns_id(ns), spec, task });
        Ok(())
    }

    /// Whether a responder for `spec` runs in node `netns`'s namespace
    /// (whoever owns it).
    pub fn is_listening(&self, netns: &str, spec: ListenSpec) -> bool {
        self.running.iter().any(|r| r.netns == netns && r.spec == spec)
    }

    /// Stops the responders of nodes whose namespace went away: their
    /// sockets would keep the namespace alive.
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
