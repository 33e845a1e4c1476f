//! Responders: the `listen = ["tcp:80", "udp:53"]` services of a node.
//!
//! Each one is a tokio listener whose socket was opened inside the node's
//! namespace. It records the peer address of every connection or datagram,
//! keyed by the probe token the client sends, so an expectation's `source`
//! can say who the packet seemed to come from after NAT or the proxy.

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

/// Running responders; they stop when this is dropped.
#[derive(Debug, Default)]
pub struct Responders {
    pub log: PeerLog,
    /// Each running responder: its node, what it listens on, its task.
    running: Vec<(String, ListenSpec, JoinHandle<()>)>,
}

impl Drop for Responders {
    fn drop(&mut self) {
        for (_, _, t) in &self.running {
            t.abort();
        }
    }
}

impl Responders {
    /// Starts a responder; `node` names the namespace owner for reports.
    pub fn start(&mut self, node: &str, ns: &File, spec: ListenSpec) -> std::io::Result<()> {
        let addr = SocketAddr::from((Ipv4Addr::UNSPECIFIED, spec.port));
        let log = self.log.clone();
        let node_name = node.to_string();
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
        self.running.push((node.to_string(), spec, task));
        Ok(())
    }

    pub fn is_listening(&self, node: &str, spec: ListenSpec) -> bool {
        self.running.iter().any(|(n, s, _)| n == node && *s == spec)
    }

    /// Stops the responders of nodes whose namespace went away: their
    /// sockets would keep the namespace alive.
    pub fn stop_nodes(&mut self, nodes: &[String]) {
        self.running.retain(|(n, _, t)| {
            let keep = !nodes.contains(n);
            if !keep {
                t.abort();
            }
            keep
        });
    }
}
