//! The userland proxy: what `docker-proxy` did for every published port.
//!
//! Docker 1.6.2 started one proxy process per published port. It is what
//! answers where no DNAT rule applies: from the host itself, from a container
//! to the gateway address, on 127.0.0.1. bridgelab runs the same relay
//! in-process on tokio: listening sockets are opened inside the host
//! namespace, and so is every upstream socket, so the container sees the
//! host's bridge address as the client, as it did with `docker-proxy`.

use std::collections::HashMap;
use std::fs::File;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket, UdpSocket};
use tokio::task::{JoinHandle, JoinSet};

use super::netns;
use crate::error::{Error, Result};
use crate::plan::firewall::PortMapping;
use crate::scenario::Proto;

/// How long a UDP "connection" lives without traffic (Docker's
/// `UDPConnTrackTimeout`).
const UDP_TIMEOUT: Duration = Duration::from_secs(90);

/// Starts a proxy per mapping; they run until their handles are aborted.
/// All or nothing: if one port cannot be bound, none is kept.
pub async fn start(host_ns: &File, mappings: &[PortMapping]) -> Result<Vec<JoinHandle<()>>> {
    let sockets = bind(host_ns, mappings)?;
    serve(host_ns, mappings, sockets).await
}

/// The listening sockets of [`start`], bound in the host namespace, which
/// need nothing else of the lab: a build binds them while it wires.
pub struct Bound(Vec<Listening>);

/// Binds every mapping's listening socket, on one thread that joins the
/// host namespace once (a thread each made a thousand ports cost a
/// thousand threads). All or nothing, with Docker's words for a port that
/// cannot be bound.
pub fn bind(host_ns: &File, mappings: &[PortMapping]) -> Result<Bound> {
    let bound = netns::run_in(host_ns, || {
        let mut sockets = Vec::with_capacity(mappings.len());
        for m in mappings {
            let listen = SocketAddr::from((m.host_ip, m.host_port));
            let socket = match m.proto {
                Proto::Tcp => netns::tcp_listener_here(listen).map(Listening::Tcp),
                Proto::Udp => netns::udp_socket_here(listen, None).map(Listening::Udp),
            };
            match socket {
                Ok(s) => sockets.push(s),
                Err(e) => return Ok(Err((m, e))),
            }
        }
        Ok(Ok(sockets))
    })
    .map_err(|e| Error::apply("host: userland proxies", e))?;
    let sockets = bound.map_err(|(m, e)| {
        let listen = SocketAddr::from((m.host_ip, m.host_port));
        Error::apply(format!("host: Error starting userland proxy: listen {} {listen}", m.proto), e)
    })?;
    Ok(Bound(sockets))
}

/// Starts a proxy on each socket of `bound`, which [`bind`] made for
/// `mappings`.
pub async fn serve(host_ns: &File, mappings: &[PortMapping], bound: Bound) -> Result<Vec<JoinHandle<()>>> {
    let sockets = bound.0;
    // One namespace file for all of them (for their upstream sockets): a
    // file per proxy would double what 65,535 published ports need.
    let host_ns = Arc::new(host_ns.try_clone().map_err(|e| Error::apply("host: dup namespace fd", e))?);
    let mut tasks = Vec::with_capacity(sockets.len());
    for (m, socket) in mappings.iter().zip(sockets) {
        let target = SocketAddr::from((m.container_ip, m.container_port));
        let ns = host_ns.clone();
        let task = match socket {
            Listening::Tcp(l) => TcpListener::from_std(l).map(|l| tokio::spawn(tcp(l, target, ns))),
            Listening::Udp(s) => UdpSocket::from_std(s).map(|s| tokio::spawn(udp(Arc::new(s), target, ns))),
        };
        match task {
            Ok(t) => tasks.push(t),
            Err(e) => {
                for t in tasks {
                    t.abort();
                    let _ = t.await;
                }
                return Err(Error::apply("host: userland proxy", e));
            }
        }
    }
    Ok(tasks)
}

/// A proxy's listening socket, bound in the host namespace.
enum Listening {
    Tcp(std::net::TcpListener),
    Udp(std::net::UdpSocket),
}

/// Open files a lab needs: per node its namespace and netlink socket, per
/// published port a proxy's socket, and room for responders, probes (at
/// most a few hundred at once) and the runtime. (Four per node refused
/// 5,000 containers under a hard limit of 20,000 that they fit in.)
pub fn files_needed(nodes: usize, proxies: usize) -> u64 {
    2 * nodes as u64 + nodes as u64 / 4 + proxies as u64 + 512
}

/// Raises this process's soft limit on open files to its hard limit when a
/// lab needs more (systemd's default soft limit is 1,024, which a lab of a
/// few hundred containers or published ports passes); when even the hard
/// limit is too low, says so before anything is built.
pub fn ensure_open_files(plan: &crate::plan::Plan) -> Result<()> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    // The most at any time: at the start or after some step.
    let all = std::iter::once(plan).chain(plan.steps.iter().map(|s| &s.after));
    let (nodes, proxies) = all.fold((0, 0), |(n, p), x| (n.max(x.nodes.len()), p.max(x.port_mappings.len())));
    let need = files_needed(nodes, proxies);
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(|e| Error::apply("getrlimit(RLIMIT_NOFILE)", e))?;
    if need <= soft {
        return Ok(());
    }
    if need > hard {
        return Err(Error::Environment(format!(
            "this lab has {nodes} namespaces and {proxies} published ports (a userland proxy each): it needs about \
             {need} open files, and this process may open {hard} (`ulimit -Hn`): raise the limit to build it"
        )));
    }
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).map_err(|e| Error::apply("setrlimit(RLIMIT_NOFILE)", e))
}

/// Each proxy owns the tasks it spawns (a `JoinSet`), so aborting the proxy
/// ends its connections and flows too, and frees its sockets at once.
async fn tcp(listener: TcpListener, target: SocketAddr, ns: Arc<File>) {
    let mut conns = JoinSet::new();
    while let Ok((mut inbound, peer)) = listener.accept().await {
        while conns.try_join_next().is_some() {}
        let ns = ns.clone();
        conns.spawn(async move {
            // The upstream socket is made inside the host namespace.
            let sock = match netns::run_in(&ns, TcpSocket::new_v4) {
                Ok(s) => s,
                Err(e) => return tracing::warn!("proxy {peer} -> {target}: {e}"),
            };
            match sock.connect(target).await {
                Ok(mut outbound) => {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
                // Like docker-proxy: the client's connection is closed.
                Err(e) => tracing::debug!("proxy {peer} -> {target}: {e}"),
            }
        });
    }
}

async fn udp(listener: Arc<UdpSocket>, target: SocketAddr, ns: Arc<File>) {
    let flows: Arc<Mutex<HashMap<SocketAddr, Arc<UdpSocket>>>> = Arc::default();
    let mut relays = JoinSet::new();
    let mut buf = vec![0u8; 65535];
    while let Ok((n, client)) = listener.recv_from(&mut buf).await {
        while relays.try_join_next().is_some() {}
        let existing = flows.lock().expect("flows lock").get(&client).cloned();
        let upstream = match existing {
            Some(u) => u,
            None => {
                let made = netns::udp_socket(&ns, SocketAddr::from(([0, 0, 0, 0], 0)), Some(target));
                let Ok(u) = made else { continue };
                let u = Arc::new(u);
                flows.lock().expect("flows lock").insert(client, u.clone());
                relays.spawn(replies(u.clone(), listener.clone(), client, flows.clone()));
                u
            }
        };
        let _ = upstream.send(&buf[..n]).await;
    }
}

/// Relays a flow's answers back to its client until it goes quiet.
async fn replies(
    upstream: Arc<UdpSocket>,
    listener: Arc<UdpSocket>,
    client: SocketAddr,
    flows: Arc<Mutex<HashMap<SocketAddr, Arc<UdpSocket>>>>,
) {
    let mut buf = vec![0u8; 65535];
    while let Ok(Ok(n)) = tokio::time::timeout(UDP_TIMEOUT, upstream.recv(&mut buf)).await {
        if listener.send_to(&buf[..n], client).await.is_err() {
            break;
        }
    }
    flows.lock().expect("flows lock").remove(&client);
}
