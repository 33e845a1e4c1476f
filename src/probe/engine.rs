//! Sends probes from inside namespaces and waits for their answers.
//!
//! Each source namespace gets one thread that joins it, opens raw sockets
//! there (pnet transport channels with `IP_HDRINCL`, one per protocol),
//! sends every probe of that source at once and listens until each is
//! answered or the timeout passes; a silent probe is sent again up to
//! `retries` times. All sources run at the same time, so a run of blocked
//! probes costs `timeout × (retries + 1)` in total, not per probe.
//!
//! A probe that expects an answer ([`ProbeJob::patient`]) is not given up
//! that soon: on a loaded machine an answer can take longer than the
//! timeout. It gets further attempts with growing timeouts, up to
//! [`PATIENCE`] of silence in all (see [`Schedule`]). Probes meant to be
//! blocked are not slowed down by this.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{recv, MsgFlags};
use pnet::packet::ip::IpNextHeaderProtocols;
use pnet::transport::{transport_channel, TransportChannelType, TransportReceiver, TransportSender};

use super::packets::{classify, craft, frame, handshake_ack, incoming_ipv4, Answer, Wire, WireKind};
use crate::apply::netns;

/// One probe to send from one namespace.
#[derive(Debug, Clone)]
pub struct ProbeJob {
    /// The namespace to send from.
    pub netns: String,
    pub dst: Ipv4Addr,
    pub kind: WireKind,
    /// An answer is expected (`reachable` or `refused`): silence earns
    /// further attempts before it counts (see [`Schedule`]).
    pub patient: bool,
    /// `via`: sent as an Ethernet frame to a neighbour, not routed.
    pub via: Option<LinkVia>,
}

/// A probe delivered at the link layer (`[[expect]] via`): an Ethernet
/// frame out of the sender's interface to the neighbour's MAC, whatever
/// the sender's routes say; its answers are read from the same interface
/// at the link layer, so an answer the sender's kernel drops as a martian
/// (a source of 127.0.0.1 from the wire) still counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkVia {
    /// The sender's interface on the link it shares with the neighbour.
    pub iface: String,
    /// The sender's address on that link: the probe's source.
    pub src: Ipv4Addr,
    /// The neighbour's MAC, as read from its namespace.
    pub mac: [u8; 6],
    /// The neighbour's address on the link (asked for by ARP first).
    pub neighbour: Ipv4Addr,
    /// After a SYN-ACK, complete the handshake carrying the token, so
    /// the responder records who connected (for `source`).
    pub follow_up: bool,
}

/// How much silence a patient probe sits through before it counts as
/// blocked (unless `timeout × (retries + 1)` is longer already).
pub const PATIENCE: Duration = Duration::from_secs(2);

/// How long a probe waits after each of its attempts: `retries + 1` times
/// `timeout`; then, for a patient probe, further attempts that each wait
/// twice as long as the one before, until [`PATIENCE`] has passed in all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    timeout: Duration,
    retries: u32,
    /// The patient probe's further waits (empty for the others).
    more: Vec<Duration>,
}

impl Schedule {
    pub fn new(timeout: Duration, retries: u32, patient: bool) -> Schedule {
        let mut more = Vec::new();
        if patient {
            let mut total = timeout.saturating_mul(retries.saturating_add(1));
            let mut next = timeout.max(Duration::from_millis(1));
            while total < PATIENCE {
                next = (next * 2).min(PATIENCE - total);
                more.push(next);
                total += next;
            }
        }
        Schedule { timeout, retries, more }
    }

    /// The wait after attempt `n` (from 0), or `None` when there is no such
    /// attempt.
    pub fn wait(&self, n: u32) -> Option<Duration> {
        if n <= self.retries {
            return Some(self.timeout);
        }
        self.more.get((n - self.retries - 1) as usize).copied()
    }

    /// How many attempts there are.
    pub fn attempts(&self) -> u64 {
        u64::from(self.retries) + 1 + self.more.len() as u64
    }

    /// The silence it sits through when nothing ever answers.
    pub fn total(&self) -> Duration {
        self.timeout.saturating_mul(self.retries.saturating_add(1)) + self.more.iter().sum::<Duration>()
    }
}

/// What happened to a probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeResult {
    pub outcome: Outcome,
    /// The address the probe was sent from.
    pub src: Option<Ipv4Addr>,
    /// The token its payload carried (for responders' logs).
    pub token: u32,
    pub attempts: u16,
    /// The silence sat through: the waits of every unanswered attempt.
    pub waited: Duration,
    pub elapsed: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Answered(Answer),
    /// Nothing came back before the timeout, on any attempt.
    Silence,
    /// The sender has no route to the target (the route lookup or the send
    /// failed with ENETUNREACH).
    NoRoute,
    /// The sender's own firewall refused to send it (EPERM from the send).
    LocalDrop,
    /// The probe could not be carried out (socket error, …).
    Error(String),
}

static NEXT: AtomicU32 = AtomicU32::new(1);

/// A process-wide unique (identifier, token) for a probe. Identifiers double
/// as TCP/UDP source ports, so they stay in 20000..=29999, below the
/// ephemeral range that kernel sockets and dynamic published ports use.
pub(crate) fn fresh_ids() -> (u16, u32) {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let ident = 20000 + (n % 10000) as u16;
    let token = (std::process::id() << 16) ^ n.wrapping_mul(0x9e37_79b9);
    (ident, token)
}

/// The source address the kernel would pick towards `dst`, or `None` when
/// there is no route. Must run inside the namespace.
fn source_for(dst: Ipv4Addr) -> io::Result<Option<Ipv4Addr>> {
    let s = UdpSocket::bind("0.0.0.0:0")?;
    // A broadcast target: without SO_BROADCAST the connect is refused (EACCES).
    s.set_broadcast(true)?;
    match s.connect((dst, 9)) {
        Ok(()) => match s.local_addr()?.ip() {
            IpAddr::V4(ip) => Ok(Some(ip)),
            IpAddr::V6(_) => Ok(None),
        },
        Err(e) if e.raw_os_error() == Some(nix::errno::Errno::ENETUNREACH as i32) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Runs every job; results come back in the jobs' order.
pub fn run(jobs: &[ProbeJob], files: &HashMap<String, &File>, timeout: Duration, retries: u32) -> Vec<ProbeResult> {
    // One group per namespace and way out: routed, or each interface that
    // frames leave by.
    let mut by_ns: HashMap<(&str, Option<&str>), Vec<usize>> = HashMap::new();
    for (i, j) in jobs.iter().enumerate() {
        by_ns.entry((j.netns.as_str(), j.via.as_ref().map(|v| v.iface.as_str()))).or_default().push(i);
    }
    let mut results: Vec<Option<ProbeResult>> = vec![None; jobs.len()];
    std::thread::scope(|s| {
        let handles: Vec<_> = by_ns
            .into_iter()
            .map(|((ns, iface), idx)| {
                let group: Vec<ProbeJob> = idx.iter().map(|&i| jobs[i].clone()).collect();
                let file = files.get(ns).copied();
                let iface = iface.map(str::to_string);
                let h = s.spawn(move || match file {
                    None => group.iter().map(|_| failed(format!("no namespace {ns}"))).collect(),
                    Some(f) => run_group(f, iface, &group, timeout, retries),
                });
                (idx, h)
            })
            .collect();
        for (idx, h) in handles {
            let out = h.join().unwrap_or_else(|_| idx.iter().map(|_| failed("probe thread panicked".into())).collect());
            for (i, r) in idx.into_iter().zip(out) {
                results[i] = Some(r);
            }
        }
    });
    results.into_iter().map(|r| r.expect("every job has a result")).collect()
}

pub(crate) fn failed(msg: String) -> ProbeResult {
    ProbeResult {
        outcome: Outcome::Error(msg),
        src: None,
        token: 0,
        attempts: 0,
        waited: Duration::ZERO,
        elapsed: Duration::ZERO,
    }
}

/// How a group's probes leave and their answers come back.
trait Transport {
    /// The probe's source address, or `None` when the sender has no route.
    fn source(&self, job: &ProbeJob) -> io::Result<Option<Ipv4Addr>>;
    fn send(&mut self, job: &ProbeJob, packet: &[u8]) -> io::Result<()>;
    /// The descriptors answers arrive on.
    fn fds(&self) -> Vec<i32>;
    /// The IPv4 packet in what one of [`Transport::fds`] delivered, if it
    /// may answer a probe.
    fn ipv4<'b>(&self, data: &'b [u8]) -> Option<&'b [u8]>;
    /// Whatever the sender does before its first probe.
    fn introduce(&mut self, _jobs: &[ProbeJob]) -> io::Result<()> {
        Ok(())
    }
}

/// Routed probes: raw IP sockets (pnet transport channels with
/// `IP_HDRINCL`), one per protocol; the kernel routes them.
struct Sockets {
    icmp: (TransportSender, TransportReceiver),
    tcp: (TransportSender, TransportReceiver),
    udp: (TransportSender, TransportReceiver),
}

impl Sockets {
    fn open() -> io::Result<Sockets> {
        let ch = |p| transport_channel(65536, TransportChannelType::Layer3(p));
        let udp = ch(IpNextHeaderProtocols::Udp)?;
        // A udp probe may go to a broadcast address (the limited one or a
        // subnet's): the kernel sends those only from a socket that asks.
        // SAFETY: the descriptor belongs to `udp`, alive for this call.
        let fd = unsafe { BorrowedFd::borrow_raw(udp.0.socket.fd) };
        nix::sys::socket::setsockopt(&fd, nix::sys::socket::sockopt::Broadcast, &true)?;
        Ok(Sockets { icmp: ch(IpNextHeaderProtocols::Icmp)?, tcp: ch(IpNextHeaderProtocols::Tcp)?, udp })
    }
}

impl Transport for Sockets {
    fn source(&self, job: &ProbeJob) -> io::Result<Option<Ipv4Addr>> {
        source_for(job.dst)
    }
    fn send(&mut self, job: &ProbeJob, packet: &[u8]) -> io::Result<()> {
        let tx = match job.kind {
            WireKind::Icmp => &mut self.icmp.0,
            WireKind::Tcp(_) => &mut self.tcp.0,
            WireKind::Udp(_) => &mut self.udp.0,
        };
        let ip = pnet::packet::ipv4::Ipv4Packet::new(packet).expect("crafted");
        tx.send_to(ip, IpAddr::V4(job.dst)).map(|_| ())
    }
    fn fds(&self) -> Vec<i32> {
        vec![self.icmp.1.socket.fd, self.tcp.1.socket.fd, self.udp.1.socket.fd]
    }
    fn ipv4<'b>(&self, data: &'b [u8]) -> Option<&'b [u8]> {
        Some(data)
    }
}

/// Probes with `via`: a packet socket (`AF_PACKET`, pnet datalink) on the
/// sender's interface. Frames go to the neighbour's MAC; every frame that
/// comes in for this interface is read, before the kernel's IP layer can
/// drop it.
struct LinkSocket {
    tx: Box<dyn pnet::datalink::DataLinkSender>,
    /// Owns the socket with `tx`; frames are read from `fd` directly.
    _rx: Box<dyn pnet::datalink::DataLinkReceiver>,
    fd: i32,
    mac: [u8; 6],
}

impl LinkSocket {
    fn open(iface: &str) -> io::Result<LinkSocket> {
        use nix::sys::socket::{socket, AddressFamily, SockFlag, SockProtocol, SockType};
        use std::os::fd::IntoRawFd;
        let ni = pnet::datalink::interfaces()
            .into_iter()
            .find(|i| i.name == iface)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no interface {iface}")))?;
        let mac = ni.mac.map(|m| m.octets()).ok_or_else(|| io::Error::other(format!("{iface} has no MAC")))?;
        // The socket is made here so its descriptor can be polled with the
        // others; pnet binds it to the interface and owns it from then on.
        let fd =
            socket(AddressFamily::Packet, SockType::Raw, SockFlag::SOCK_CLOEXEC, SockProtocol::EthAll)?.into_raw_fd();
        let config = pnet::datalink::Config { promiscuous: false, socket_fd: Some(fd), ..Default::default() };
        match pnet::datalink::channel(&ni, config)? {
            pnet::datalink::Channel::Ethernet(tx, rx) => Ok(LinkSocket { tx, _rx: rx, fd, mac }),
            _ => Err(io::Error::other("not an Ethernet channel")),
        }
    }
}

impl Transport for LinkSocket {
    fn source(&self, job: &ProbeJob) -> io::Result<Option<Ipv4Addr>> {
        Ok(job.via.as_ref().map(|v| v.src))
    }
    fn send(&mut self, job: &ProbeJob, packet: &[u8]) -> io::Result<()> {
        let to = job.via.as_ref().map(|v| v.mac).unwrap_or_default();
        let f = frame(to, self.mac, packet);
        self.tx.send_to(&f, None).unwrap_or_else(|| Err(io::Error::other("no frame sent")))
    }
    fn fds(&self) -> Vec<i32> {
        vec![self.fd]
    }
    fn ipv4<'b>(&self, data: &'b [u8]) -> Option<&'b [u8]> {
        incoming_ipv4(self.mac, data)
    }
    /// An ARP request to each neighbour, as a LAN neighbour makes before
    /// it talks: the neighbour learns the sender's MAC from it. Without
    /// it, the host would ask by ARP for the sender's MAC itself before
    /// answering, and an answer whose source NAT turned into 127.0.0.1
    /// would make that request one the sender ignores (a loopback sender
    /// address), so the answer would die in the host's neighbour queue.
    fn introduce(&mut self, jobs: &[ProbeJob]) -> io::Result<()> {
        let mut done: Vec<([u8; 6], Ipv4Addr, Ipv4Addr)> = Vec::new();
        for v in jobs.iter().filter_map(|j| j.via.as_ref()) {
            let key = (v.mac, v.src, v.neighbour);
            if !done.contains(&key) {
                let f = crate::apply::arp::request(v.mac, self.mac, v.src, v.neighbour);
                self.tx.send_to(&f, None).unwrap_or_else(|| Err(io::Error::other("no frame sent")))?;
                done.push(key);
            }
        }
        Ok(())
    }
}

struct Pending<'j> {
    job: &'j ProbeJob,
    wire: Option<Wire>,
    result: ProbeResult,
    schedule: Schedule,
    done: bool,
}

fn run_group(ns: &File, iface: Option<String>, jobs: &[ProbeJob], timeout: Duration, retries: u32) -> Vec<ProbeResult> {
    let owned = jobs.to_vec();
    let r = netns::run_in(ns, move || {
        let opened: io::Result<Box<dyn Transport>> = match &iface {
            None => Sockets::open().map(|s| Box::new(s) as Box<dyn Transport>),
            Some(i) => LinkSocket::open(i).map(|s| Box::new(s) as Box<dyn Transport>),
        };
        Ok(match opened {
            Ok(mut t) => send_and_wait(t.as_mut(), &owned, timeout, retries),
            Err(e) => {
                let what = iface.as_deref().map_or("raw socket".to_string(), |i| format!("packet socket on {i}"));
                owned.iter().map(|_| failed(format!("{what}: {e}"))).collect()
            }
        })
    });
    r.unwrap_or_else(|e| jobs.iter().map(|_| failed(e.to_string())).collect())
}

fn send_and_wait(socks: &mut dyn Transport, jobs: &[ProbeJob], timeout: Duration, retries: u32) -> Vec<ProbeResult> {
    let start = Instant::now();
    let mut pending: Vec<Pending> = jobs
        .iter()
        .map(|j| {
            let (ident, token) = fresh_ids();
            let mut result = ProbeResult {
                outcome: Outcome::Silence,
                src: None,
                token,
                attempts: 0,
                waited: Duration::ZERO,
                elapsed: Duration::ZERO,
            };
            let wire = match socks.source(j) {
                Ok(Some(src)) => {
                    result.src = Some(src);
                    Some(Wire { src, dst: j.dst, kind: j.kind, ident, token })
                }
                Ok(None) => {
                    result.outcome = Outcome::NoRoute;
                    None
                }
                Err(e) => {
                    result.outcome = Outcome::Error(format!("route lookup: {e}"));
                    None
                }
            };
            let done = wire.is_none();
            Pending { job: j, wire, result, schedule: Schedule::new(timeout, retries, j.patient), done }
        })
        .collect();
    if let Err(e) = socks.introduce(jobs) {
        for p in pending.iter_mut().filter(|p| !p.done) {
            p.result.outcome = Outcome::Error(format!("ARP request to the neighbour: {e}"));
            p.done = true;
        }
    }
    let mut buf = vec![0u8; 65536];
    // Every schedule is a prefix of a patient one, so the probes of a
    // source share their rounds: attempt n of each waits as long.
    for attempt in 0u32.. {
        let Some(wait) = pending.iter().filter(|p| !p.done).find_map(|p| p.schedule.wait(attempt)) else {
            break;
        };
        for p in pending.iter_mut().filter(|p| !p.done) {
            let w = p.wire.expect("undone probes have a wire");
            let packet = craft(&w, attempt as u16);
            let sent = socks.send(p.job, &packet);
            p.result.attempts = p.result.attempts.saturating_add(1);
            match sent {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(nix::errno::Errno::ENETUNREACH as i32) => {
                    p.result.outcome = Outcome::NoRoute;
                    p.done = true;
                }
                // A local firewall rejecting the send (EPERM) is a block, not a tool failure.
                Err(e) if e.raw_os_error() == Some(nix::errno::Errno::EPERM as i32) => {
                    p.result.outcome = Outcome::LocalDrop;
                    p.done = true;
                }
                Err(e) => {
                    p.result.outcome = Outcome::Error(format!("send: {e}"));
                    p.done = true;
                }
            }
        }
        let now = Instant::now();
        let deadline = now.checked_add(wait).unwrap_or(now + Duration::from_secs(86400 * 365));
        while pending.iter().any(|p| !p.done) {
            let left = deadline.saturating_duration_since(Instant::now());
            let fds = socks.fds();
            // SAFETY: the fds belong to `socks`, alive for this whole loop.
            let borrowed: Vec<BorrowedFd> = fds.iter().map(|&fd| unsafe { BorrowedFd::borrow_raw(fd) }).collect();
            let mut pfds: Vec<PollFd> = borrowed.iter().map(|fd| PollFd::new(*fd, PollFlags::POLLIN)).collect();
            // Past the deadline, still read what is queued: on a loaded
            // machine this thread may wake late, and an answer that is
            // already there is no silence.
            let ms = if left.is_zero() {
                PollTimeout::ZERO
            } else {
                PollTimeout::try_from(left.as_millis().clamp(1, i32::MAX as u128) as i32).unwrap_or(PollTimeout::MAX)
            };
            match poll(&mut pfds, ms) {
                Ok(0) => break,
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    for p in pending.iter_mut().filter(|p| !p.done) {
                        p.result.outcome = Outcome::Error(format!("poll: {e}"));
                        p.done = true;
                    }
                    break;
                }
            }
            for (pfd, &fd) in pfds.iter().zip(fds.iter()) {
                if !pfd.revents().is_some_and(|r| r.contains(PollFlags::POLLIN)) {
                    continue;
                }
                while let Ok(n) = recv(fd, &mut buf, MsgFlags::MSG_DONTWAIT) {
                    let Some(packet) = socks.ipv4(&buf[..n]) else { continue };
                    let mut follow_ups = Vec::new();
                    for p in pending.iter_mut().filter(|p| !p.done) {
                        let w = p.wire.as_ref().expect("wire");
                        if let Some(a) = classify(w, packet) {
                            p.result.outcome = Outcome::Answered(a);
                            p.result.elapsed = start.elapsed();
                            p.done = true;
                            if p.job.via.as_ref().is_some_and(|v| v.follow_up) {
                                follow_ups.extend(handshake_ack(w, packet).map(|ack| (p.job, ack)));
                            }
                        }
                    }
                    for (job, ack) in follow_ups {
                        // A lost follow-up shows as no `source` seen, reported by the caller.
                        if let Err(e) = socks.send(job, &ack) {
                            tracing::debug!("handshake follow-up to {}: {e}", job.dst);
                        }
                    }
                }
            }
            if left.is_zero() {
                break;
            }
        }
        for p in pending.iter_mut().filter(|p| !p.done) {
            p.result.waited += wait;
            // Its schedule is over: silence, whatever comes later.
            if p.schedule.wait(attempt + 1).is_none() {
                p.result.elapsed = start.elapsed();
                p.done = true;
            }
        }
        if pending.iter().all(|p| p.done) {
            break;
        }
    }
    pending
        .into_iter()
        .map(|mut p| {
            if p.result.elapsed.is_zero() {
                p.result.elapsed = start.elapsed();
            }
            p.result
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn waits(s: &Schedule) -> Vec<Duration> {
        (0..).map_while(|n| s.wait(n)).collect()
    }

    #[test]
    fn a_probe_meant_to_be_blocked_waits_timeout_times_retries_plus_one() {
        let s = Schedule::new(ms(200), 1, false);
        assert_eq!(waits(&s), [ms(200), ms(200)]);
        assert_eq!((s.attempts(), s.total()), (2, ms(400)));
    }

    #[test]
    fn a_patient_probe_waits_longer_and_longer_up_to_the_patience() {
        let s = Schedule::new(ms(200), 1, true);
        assert_eq!(waits(&s), [ms(200), ms(200), ms(400), ms(800), ms(400)]);
        assert_eq!((s.attempts(), s.total()), (5, PATIENCE));
        // Its first attempts are the impatient schedule: probes share rounds.
        assert_eq!(waits(&s)[..2], waits(&Schedule::new(ms(200), 1, false))[..]);
        let tiny = Schedule::new(ms(1), 0, true);
        assert_eq!(tiny.total(), PATIENCE);
        assert!(waits(&tiny).windows(2).all(|w| w[1] <= w[0] * 2));
    }

    #[test]
    fn patience_never_shortens_a_longer_schedule() {
        let s = Schedule::new(ms(1000), 3, true);
        assert_eq!(s, Schedule::new(ms(1000), 3, false));
        assert_eq!(s.total(), ms(4000));
    }

    #[test]
    fn a_huge_retry_count_allocates_nothing() {
        let s = Schedule::new(ms(1), u32::MAX, true);
        assert_eq!(s.attempts(), 1 << 32);
        assert_eq!(s.wait(u32::MAX), Some(ms(1)));
    }
}
