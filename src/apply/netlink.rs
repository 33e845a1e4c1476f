//! rtnetlink requests on a socket opened inside one namespace.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::RawFd;

use netlink_packet_core::{
    NetlinkDeserializable, NetlinkHeader, NetlinkMessage, NetlinkPayload, NlasIterator, NLMSG_DONE, NLMSG_ERROR,
    NLM_F_DUMP, NLM_F_REQUEST,
};

use futures::TryStreamExt;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::address::AddressMessage;
use rtnetlink::packet_route::link::{
    InfoBridgePort, InfoData, InfoKind, InfoPortData, InfoVeth, LinkAttribute, LinkExtentMask, LinkFlags, LinkInfo,
    LinkMessage, State,
};
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};
use rtnetlink::sys::{protocols::NETLINK_ROUTE, Socket};
use rtnetlink::{
    Handle, LinkBridge, LinkBridgePort, LinkGetRequest, LinkMessageBuilder, LinkUnspec, RouteMessageBuilder,
};

use super::netns;
use crate::plan::{LinkPlan, RoutePlan};

/// A netlink handle bound to one namespace.
#[derive(Clone)]
pub struct Netlink {
    pub handle: Handle,
}

pub type NlResult<T> = Result<T, rtnetlink::Error>;

impl Netlink {
    /// Opens a route-netlink socket inside `ns` and drives it on the current
    /// tokio runtime. The socket keeps its namespace for its whole life.
    pub fn open(ns: &File) -> io::Result<(Netlink, tokio::task::JoinHandle<()>)> {
        let rt = tokio::runtime::Handle::current();
        netns::run_in(ns, move || Netlink::open_here(&rt))
    }

    /// Opens the socket in the calling thread's namespace, driven on `rt`.
    pub fn open_here(rt: &tokio::runtime::Handle) -> io::Result<(Netlink, tokio::task::JoinHandle<()>)> {
        let _enter = rt.enter();
        let (conn, handle, _) = rtnetlink::new_connection()?;
        let task = rt.spawn(conn);
        Ok((Netlink { handle }, task))
    }

    pub async fn index(&self, name: &str) -> NlResult<u32> {
        let mut links = lean(self.handle.link().get()).match_name(name.to_string()).execute();
        match links.try_next().await? {
            Some(l) => Ok(l.header.index),
            None => Err(rtnetlink::Error::RequestFailed),
        }
    }

    /// Creates a bridge (down, no address yet).
    pub async fn create_bridge(&self, l: &LinkPlan) -> NlResult<()> {
        let mut msg = LinkBridge::new(&l.name).build();
        if let Some(mac) = l.mac {
            msg.attributes.push(LinkAttribute::Address(mac.0.to_vec()));
        }
        if let Some(mtu) = l.mtu {
            msg.attributes.push(LinkAttribute::Mtu(mtu));
        }
        self.handle.link().add(msg).execute().await
    }

    /// Creates a veth pair with its peer already in the peer's namespace,
    /// named, addressed and sized there, so it never appears anywhere else.
    pub async fn create_veth(
        &self,
        l: &LinkPlan,
        peer: &LinkPlan,
        peer_ns: RawFd,
        master: Option<u32>,
    ) -> NlResult<()> {
        let mut pb = LinkMessageBuilder::<LinkUnspec>::new().name(peer.name.clone()).setns_by_fd(peer_ns);
        if let Some(mac) = peer.mac {
            pb = pb.address(mac.0.to_vec());
        }
        if let Some(mtu) = peer.mtu {
            pb = pb.mtu(mtu);
        }
        let mut b = LinkMessageBuilder::<LinkUnspec>::new_with_info_kind(InfoKind::Veth)
            .name(l.name.clone())
            .set_info_data(InfoData::Veth(InfoVeth::Peer(pb.build())));
        if let Some(mac) = l.mac {
            b = b.address(mac.0.to_vec());
        }
        if let Some(mtu) = l.mtu {
            b = b.mtu(mtu);
        }
        if let Some(m) = master {
            b = b.controller(m);
        }
        // Up from the start, as planned: no request of its own later.
        // (Not the peer: the kernel opens it before the pair is joined,
        // and a veth without a peer refuses to go up, ENOTCONN.)
        if l.up {
            b = b.up();
        }
        self.handle.link().add(b.build()).execute().await
    }

    pub async fn del(&self, index: u32) -> NlResult<()> {
        self.handle.link().del(index).execute().await
    }

    /// Hairpin mode on a bridge port (`ip link set … type bridge_slave
    /// hairpin on`): frames may leave by the port they came in on, which
    /// NAT back to the sender needs (Docker sets it with the userland
    /// proxy off). Port settings need RTM_NEWLINK, not RTM_SETLINK.
    pub async fn set_hairpin(&self, index: u32) -> NlResult<()> {
        let msg = LinkBridgePort::new(index).hairpin(true).build();
        self.handle.link().set_port(msg).execute().await
    }

    pub async fn set_up(&self, index: u32) -> NlResult<()> {
        let msg = LinkUnspec::new_with_index(index).up().build();
        self.handle.link().set(msg).execute().await
    }

    pub async fn add_address(&self, index: u32, ip: Ipv4Addr, prefix: u8) -> NlResult<()> {
        self.handle.address().add(index, IpAddr::V4(ip), prefix).execute().await
    }

    /// Adds a static route as `ip route add` does (protocol boot).
    pub async fn add_route(&self, r: &RoutePlan, index: u32) -> NlResult<()> {
        let mut b = RouteMessageBuilder::<Ipv4Addr>::new().output_interface(index).protocol(RouteProtocol::Boot);
        if let Some(d) = r.dst {
            b = b.destination_prefix(d.network(), d.prefix());
        }
        if let Some(gw) = r.via {
            b = b.gateway(gw);
        } else {
            b = b.scope(RouteScope::Link);
        }
        self.handle.route().add(b.build()).execute().await
    }

    pub async fn links(&self) -> NlResult<Vec<LinkMessage>> {
        lean(self.handle.link().get()).execute().try_collect().await
    }

    /// IPv4 addresses by link index, as `address/prefix`.
    pub async fn addresses(&self) -> NlResult<HashMap<u32, Vec<(Ipv4Addr, u8)>>> {
        let mut out: HashMap<u32, Vec<(Ipv4Addr, u8)>> = HashMap::new();
        // IPv4 only: the kernel then leaves out the IPv6 addresses too.
        let mut req = self.handle.address().get();
        req.message_mut().header.family = AddressFamily::Inet;
        let mut s = req.execute();
        while let Some(a) = s.try_next().await? {
            add_ipv4(&mut out, &a);
        }
        Ok(out)
    }

    /// Link indexes by name: one link dump.
    pub async fn link_indexes(&self) -> NlResult<HashMap<String, u32>> {
        Ok(self.links().await?.iter().map(LinkState::from_message).map(|l| (l.name, l.index)).collect())
    }
}

/// The links, IPv4 addresses and main-table routes of the calling
/// thread's namespace: three dumps, one after another (a socket runs one
/// dump at a time, and refuses a second with `EBUSY`), on a blocking
/// socket opened for them. On the async socket, each answer cost a task
/// switch between the runtime and the socket's task, a quarter of a
/// read-back's time; here it costs a `recv`. (The socket is not kept: a
/// second descriptor per namespace would not fit 5,000 containers under
/// the usual limit of open files.) Links are read from the bytes (see
/// [`LinkState::from_bytes`]); a dump the kernel marks inconsistent (the
/// namespace changed under it) is taken again.
pub fn dump_here() -> io::Result<NodeDump> {
    let sock = Socket::new(NETLINK_ROUTE)?;
    let mut buf = Vec::with_capacity(DUMP_BUFFER);
    let mut tries = 0;
    loop {
        match dump_with(&sock, &mut buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted && tries < 10 => tries += 1,
            r => return r,
        }
    }
}

/// Adds an address message's IPv4 address (`Local`, as `address/prefix`)
/// under its link's index; one of another family adds nothing.
fn add_ipv4(out: &mut HashMap<u32, Vec<(Ipv4Addr, u8)>>, a: &AddressMessage) {
    if a.header.family != AddressFamily::Inet {
        return;
    }
    for attr in &a.attributes {
        if let AddressAttribute::Local(IpAddr::V4(ip)) = attr {
            out.entry(a.header.index).or_default().push((*ip, a.header.prefix_len));
        }
    }
}

fn dump_with(sock: &Socket, buf: &mut Vec<u8>) -> io::Result<NodeDump> {
    let mut links = Vec::new();
    let mut link = LinkMessage::default();
    link.attributes.push(LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats]));
    dump_each(sock, buf, RouteNetlinkMessage::GetLink(link), |kind, frame| {
        if kind == RTM_NEWLINK {
            links.push(LinkState::from_bytes(&frame[NETLINK_HEADER_LEN..])?);
        }
        Ok(())
    })?;
    let mut addresses: HashMap<u32, Vec<(Ipv4Addr, u8)>> = HashMap::new();
    // IPv4 only: the kernel then leaves out the IPv6 addresses too.
    let mut address = AddressMessage::default();
    address.header.family = AddressFamily::Inet;
    for m in dump_parsed(sock, buf, RouteNetlinkMessage::GetAddress(address))? {
        if let RouteNetlinkMessage::NewAddress(a) = m {
            add_ipv4(&mut addresses, &a);
        }
    }
    let mut routes = Vec::new();
    for m in dump_parsed(sock, buf, RouteNetlinkMessage::GetRoute(RouteMessageBuilder::<Ipv4Addr>::new().build()))? {
        let RouteNetlinkMessage::NewRoute(r) = m else { continue };
        if r.header.address_family == AddressFamily::Inet
            && r.header.table == 254
            && r.header.kind == RouteType::Unicast
        {
            routes.push(r);
        }
    }
    Ok(NodeDump { links, addresses, routes })
}

/// Room for the largest datagram a dump sends: the kernel fills at most
/// 32 KiB at once, and no less than the reader's buffer.
const DUMP_BUFFER: usize = 64 * 1024;

/// `RTM_NEWLINK`, the type of every message of a link dump.
const RTM_NEWLINK: u16 = 16;
/// `NLM_F_DUMP_INTR`: the dump met a change of what it listed.
const NLM_F_DUMP_INTR: u16 = 0x10;

/// Sends `request` as a dump and calls `each` with the type and bytes
/// (header included) of every message of the answer, up to `NLMSG_DONE`.
fn dump_each(
    sock: &Socket,
    buf: &mut Vec<u8>,
    request: RouteNetlinkMessage,
    mut each: impl FnMut(u16, &[u8]) -> io::Result<()>,
) -> io::Result<()> {
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    let mut m = NetlinkMessage::new(header, NetlinkPayload::from(request));
    m.finalize();
    let mut bytes = vec![0; m.buffer_len()];
    m.serialize(&mut bytes);
    // Unconnected and unbound: sent to the kernel, bound on first send.
    sock.send(&bytes, 0)?;
    let mut interrupted = false;
    loop {
        buf.clear();
        sock.recv(buf, 0)?;
        for frame in frames(buf) {
            let frame = frame?;
            let kind = u16::from_ne_bytes([frame[4], frame[5]]);
            interrupted |= u16::from_ne_bytes([frame[6], frame[7]]) & NLM_F_DUMP_INTR != 0;
            let payload = &frame[NETLINK_HEADER_LEN..];
            let code = || payload.get(..4).map_or(0, |c| i32::from_ne_bytes([c[0], c[1], c[2], c[3]]));
            match kind {
                NLMSG_DONE if code() != 0 => return Err(io::Error::from_raw_os_error(-code())),
                NLMSG_DONE if interrupted => {
                    return Err(io::Error::new(io::ErrorKind::Interrupted, "netlink: the dump met a change"));
                }
                NLMSG_DONE => return Ok(()),
                // A dump refused at its start ends with its error.
                NLMSG_ERROR => {
                    return Err(match code() {
                        0 => io::Error::other("netlink: an ACK in a dump"),
                        c => io::Error::from_raw_os_error(-c),
                    });
                }
                _ => each(kind, frame)?,
            }
        }
    }
}

/// [`dump_each`], each message parsed whole.
fn dump_parsed(sock: &Socket, buf: &mut Vec<u8>, request: RouteNetlinkMessage) -> io::Result<Vec<RouteNetlinkMessage>> {
    let mut out = Vec::new();
    dump_each(sock, buf, request, |_, frame| {
        match NetlinkMessage::<RouteNetlinkMessage>::deserialize(frame) {
            Ok(NetlinkMessage { payload: NetlinkPayload::InnerMessage(m), .. }) => out.push(m),
            Ok(_) => {}
            Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, format!("netlink: {e}"))),
        }
        Ok(())
    })?;
    Ok(out)
}

/// The size of `struct nlmsghdr`.
const NETLINK_HEADER_LEN: usize = 16;

/// The netlink messages in one datagram, as bytes, header included.
fn frames(mut buf: &[u8]) -> impl Iterator<Item = io::Result<&[u8]>> {
    std::iter::from_fn(move || {
        if buf.len() < NETLINK_HEADER_LEN {
            return None;
        }
        let len = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        if len < NETLINK_HEADER_LEN || len > buf.len() {
            buf = &[];
            return Some(Err(io::Error::new(io::ErrorKind::InvalidData, format!("netlink: a message of {len} bytes"))));
        }
        let frame = &buf[..len];
        buf = &buf[len.next_multiple_of(4).min(buf.len())..];
        Some(Ok(frame))
    })
}

/// The netlink messages in one datagram, each parsed on its own: one that
/// does not parse does not hide the next.
pub(super) fn messages<T: NetlinkDeserializable>(buf: &[u8]) -> Vec<io::Result<NetlinkMessage<T>>> {
    frames(buf)
        .map(|f| {
            f.and_then(|f| {
                NetlinkMessage::<T>::deserialize(f)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("netlink: {e}")))
            })
        })
        .collect()
}

/// One namespace as the kernel reported it in one [`dump_here`].
#[derive(Debug, Clone)]
pub struct NodeDump {
    pub links: Vec<LinkState>,
    /// IPv4 addresses by link index.
    pub addresses: HashMap<u32, Vec<(Ipv4Addr, u8)>>,
    routes: Vec<RouteMessage>,
}

impl NodeDump {
    /// Link indexes by name.
    pub fn indexes(&self) -> HashMap<String, u32> {
        self.links.iter().map(|l| (l.name.clone(), l.index)).collect()
    }

    /// Each main-table route's destination, output link and carrier flag.
    pub fn carriers(&self) -> Vec<RouteCarrier> {
        self.routes.iter().map(RouteCarrier::from_message).collect()
    }

    /// The main table's IPv4 routes, rendered like `ip -4 route`, sorted.
    pub fn routes(&self) -> Vec<String> {
        let names: HashMap<u32, String> = self.links.iter().map(|l| (l.index, l.name.clone())).collect();
        let mut routes: Vec<(u32, u8, String)> = self.routes.iter().map(|m| render_route(m, &names)).collect();
        routes.sort();
        routes.into_iter().map(|(_, _, s)| s).collect()
    }
}

/// A link request whose answer leaves out the counters (the link's and
/// IPv6's): nothing here reads them, and they are most of what the kernel
/// writes and this side parses for each link.
fn lean(req: LinkGetRequest) -> LinkGetRequest {
    req.set_filter_mask(AddressFamily::Unspec, vec![LinkExtentMask::SkipStats])
}

/// A route's destination, output link and `linkdown` flag: what settling
/// after a change compares with the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteCarrier {
    /// `0.0.0.0/0` for the default route.
    pub dst: Ipv4Addr,
    pub prefix: u8,
    pub oif: Option<u32>,
    /// The kernel's `RTNH_F_LINKDOWN`: the output link has no carrier.
    pub linkdown: bool,
}

impl RouteCarrier {
    fn from_message(m: &RouteMessage) -> RouteCarrier {
        let mut r = RouteCarrier {
            dst: Ipv4Addr::UNSPECIFIED,
            prefix: m.header.destination_prefix_length,
            oif: None,
            linkdown: m.header.flags.contains(RouteFlags::Linkdown),
        };
        for a in &m.attributes {
            match a {
                RouteAttribute::Destination(RouteAddress::Inet(d)) => r.dst = *d,
                RouteAttribute::Oif(i) => r.oif = Some(*i),
                _ => {}
            }
        }
        r
    }
}

/// One route as `ip route` prints it, with the key bridgelab sorts by
/// (default first, then destination, then prefix length).
fn render_route(m: &RouteMessage, names: &HashMap<u32, String>) -> (u32, u8, String) {
    let mut dst = None;
    let (mut via, mut dev, mut src) = (None, String::from("?"), None);
    let mut metric = None;
    for a in &m.attributes {
        match a {
            RouteAttribute::Destination(RouteAddress::Inet(d)) => dst = Some(*d),
            RouteAttribute::Gateway(RouteAddress::Inet(g)) => via = Some(*g),
            RouteAttribute::PrefSource(RouteAddress::Inet(s)) => src = Some(*s),
            RouteAttribute::Oif(i) => dev = names.get(i).cloned().unwrap_or_else(|| format!("if{i}")),
            RouteAttribute::Priority(p) => metric = Some(*p),
            _ => {}
        }
    }
    let plen = m.header.destination_prefix_length;
    let mut s = match dst {
        Some(d) if plen > 0 || d != Ipv4Addr::UNSPECIFIED => format!("{d}/{plen}"),
        _ => "default".to_string(),
    };
    if let Some(g) = via {
        s += &format!(" via {g}");
    }
    s += &format!(" dev {dev}");
    match m.header.protocol {
        RouteProtocol::Boot | RouteProtocol::Unspec => {}
        RouteProtocol::Kernel => s += " proto kernel",
        RouteProtocol::Static => s += " proto static",
        other => s += &format!(" proto {}", u8::from(other)),
    }
    if m.header.scope == RouteScope::Link {
        s += " scope link";
    }
    if let Some(src) = src {
        s += &format!(" src {src}");
    }
    if let Some(p) = metric {
        s += &format!(" metric {p}");
    }
    if m.header.flags.contains(RouteFlags::Linkdown) {
        s += " linkdown";
    }
    let key = dst.map(u32::from).unwrap_or(0);
    (if plen == 0 { 0 } else { key }, plen, s)
}

/// What the kernel says about one link.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkState {
    pub index: u32,
    pub name: String,
    pub kind: Option<InfoKind>,
    pub mac: Option<[u8; 6]>,
    pub mtu: Option<u32>,
    pub master: Option<u32>,
    /// Peer ifindex (for a veth: in the peer's namespace).
    pub peer_index: Option<u32>,
    pub up: bool,
    pub oper_up: bool,
    /// A bridge port's hairpin mode.
    pub hairpin: bool,
}

/// The `ifinfomsg` header before a link's attributes.
const LINK_HEADER_LEN: usize = 16;
/// The link attributes [`LinkState::from_bytes`] reads (`if_link.h`).
const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_MTU: u16 = 4;
const IFLA_LINK: u16 = 5;
const IFLA_MASTER: u16 = 10;
const IFLA_OPERSTATE: u16 = 16;
const IFLA_LINKINFO: u16 = 18;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_SLAVE_KIND: u16 = 4;
const IFLA_INFO_SLAVE_DATA: u16 = 5;
const IFLA_BRPORT_MODE: u16 = 4;
const IF_OPER_UNKNOWN: u8 = 0;
const IF_OPER_UP: u8 = 6;

impl LinkState {
    /// What [`from_message`](Self::from_message) makes of the same link,
    /// read straight from an `RTM_NEWLINK` payload: only the attributes it
    /// keeps are decoded. Parsing whole messages took 2 ms of the host's
    /// 2.4 ms dump at N = 100 (a hundred ports, 1.5 KB of attributes each,
    /// most of them per-protocol settings nothing here reads).
    pub fn from_bytes(payload: &[u8]) -> io::Result<LinkState> {
        let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("netlink: link message: {what}"));
        let header = payload.get(..LINK_HEADER_LEN).ok_or_else(|| bad("too short"))?;
        let word = |at: usize| u32::from_ne_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]]);
        let u32_of = |v: &[u8]| v.get(..4).map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
        let up = word(8) & LinkFlags::Up.bits() != 0;
        let mut s = LinkState::bare(word(4), up);
        for nla in NlasIterator::new(&payload[LINK_HEADER_LEN..]) {
            let nla = nla.map_err(|e| bad(&e.to_string()))?;
            let v = nla.value();
            match nla.kind() {
                IFLA_ADDRESS if v.len() == 6 => s.mac = v.try_into().ok(),
                IFLA_IFNAME => s.name = String::from_utf8_lossy(v.split(|b| *b == 0).next().unwrap_or_default()).into(),
                IFLA_MTU => s.mtu = u32_of(v),
                IFLA_LINK => s.peer_index = u32_of(v),
                IFLA_MASTER => s.master = u32_of(v),
                IFLA_OPERSTATE => s.oper_up = matches!(v.first(), Some(&(IF_OPER_UP | IF_OPER_UNKNOWN))) && up,
                IFLA_LINKINFO => {
                    let mut bridge_port = false;
                    for info in NlasIterator::new(v) {
                        let info = info.map_err(|e| bad(&e.to_string()))?;
                        let text =
                            || String::from_utf8_lossy(info.value().split(|b| *b == 0).next().unwrap_or_default());
                        match info.kind() {
                            IFLA_INFO_KIND => s.kind = Some(InfoKind::from(&*text())),
                            IFLA_INFO_SLAVE_KIND => bridge_port = text() == "bridge",
                            IFLA_INFO_SLAVE_DATA if bridge_port => {
                                for port in NlasIterator::new(info.value()) {
                                    let port = port.map_err(|e| bad(&e.to_string()))?;
                                    if port.kind() == IFLA_BRPORT_MODE {
                                        s.hairpin = port.value().first().is_some_and(|m| *m != 0);
                                    }
                                }
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(s)
    }

    /// A link known by its index and up flag only, before its attributes.
    fn bare(index: u32, up: bool) -> LinkState {
        LinkState {
            index,
            name: String::new(),
            kind: None,
            mac: None,
            mtu: None,
            master: None,
            peer_index: None,
            up,
            oper_up: false,
            hairpin: false,
        }
    }

    pub fn from_message(m: &LinkMessage) -> LinkState {
        let mut s = LinkState::bare(m.header.index, m.header.flags.contains(LinkFlags::Up));
        for a in &m.attributes {
            match a {
                LinkAttribute::IfName(n) => s.name = n.clone(),
                LinkAttribute::Address(a) if a.len() == 6 => s.mac = a.as_slice().try_into().ok(),
                LinkAttribute::Mtu(v) => s.mtu = Some(*v),
                LinkAttribute::Controller(i) => s.master = Some(*i),
                LinkAttribute::Link(i) => s.peer_index = Some(*i),
                LinkAttribute::OperState(st) => s.oper_up = matches!(st, State::Up | State::Unknown) && s.up,
                LinkAttribute::LinkInfo(infos) => {
                    for i in infos {
                        match i {
                            LinkInfo::Kind(k) => s.kind = Some(k.clone()),
                            LinkInfo::PortData(InfoPortData::BridgePort(port)) => {
                                s.hairpin = port.contains(&InfoBridgePort::HairpinMode(true));
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only an IPv4 message's `Local` address is kept, by link index; the
    /// peer address of a point-to-point link and IPv6 messages are not.
    #[test]
    fn ipv4_addresses_are_kept_by_link() {
        let message = |family, index, attrs| {
            let mut a = AddressMessage::default();
            a.header.family = family;
            a.header.index = index;
            a.header.prefix_len = 16;
            a.attributes = attrs;
            a
        };
        let v4 = |s: &str| IpAddr::V4(s.parse().unwrap());
        let mut out = HashMap::new();
        add_ipv4(
            &mut out,
            &message(
                AddressFamily::Inet,
                2,
                vec![AddressAttribute::Address(v4("10.0.0.9")), AddressAttribute::Local(v4("172.17.0.2"))],
            ),
        );
        add_ipv4(&mut out, &message(AddressFamily::Inet, 2, vec![AddressAttribute::Local(v4("172.18.0.2"))]));
        add_ipv4(
            &mut out,
            &message(AddressFamily::Inet6, 3, vec![AddressAttribute::Local("fe80::1".parse().unwrap())]),
        );
        let want: HashMap<u32, Vec<(Ipv4Addr, u8)>> =
            [(2, vec![("172.17.0.2".parse().unwrap(), 16), ("172.18.0.2".parse().unwrap(), 16)])].into();
        assert_eq!(out, want);
    }

    fn bytes(payload: RouteNetlinkMessage) -> Vec<u8> {
        let mut m = NetlinkMessage::new(NetlinkHeader::default(), NetlinkPayload::from(payload));
        m.finalize();
        let mut b = vec![0; m.buffer_len()];
        m.serialize(&mut b);
        b
    }

    fn link(index: u32, name: &str) -> RouteNetlinkMessage {
        let mut l = LinkMessage::default();
        l.header.index = index;
        l.attributes.push(LinkAttribute::IfName(name.into()));
        RouteNetlinkMessage::NewLink(l)
    }

    /// A link as the kernel sends it, and its `RTM_NEWLINK` payload.
    fn sent(l: LinkMessage) -> (LinkMessage, Vec<u8>) {
        let b = bytes(RouteNetlinkMessage::NewLink(l.clone()));
        (l, b[16..].to_vec())
    }

    #[test]
    fn a_link_read_from_its_bytes_is_the_link_parsed_whole() {
        use rtnetlink::packet_route::link::InfoPortKind;
        let mut port = LinkMessage::default();
        port.header.index = 7;
        port.header.flags = LinkFlags::Up | LinkFlags::Running;
        port.attributes = vec![
            LinkAttribute::IfName("vethd76138e".into()),
            LinkAttribute::Address(vec![2, 0x42, 0xac, 0x11, 0, 2]),
            LinkAttribute::Mtu(1500),
            LinkAttribute::Link(2),
            LinkAttribute::Controller(3),
            LinkAttribute::OperState(State::Up),
            LinkAttribute::LinkInfo(vec![
                LinkInfo::Kind(InfoKind::Veth),
                LinkInfo::PortKind(InfoPortKind::Bridge),
                LinkInfo::PortData(InfoPortData::BridgePort(vec![InfoBridgePort::HairpinMode(true)])),
            ]),
        ];
        let mut bridge = LinkMessage::default();
        bridge.header.index = 3;
        bridge.header.flags = LinkFlags::Up;
        bridge.attributes = vec![
            LinkAttribute::IfName("docker0".into()),
            LinkAttribute::OperState(State::Down),
            LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Bridge)]),
        ];
        let mut down = LinkMessage::default();
        down.header.index = 1;
        down.attributes = vec![LinkAttribute::IfName("lo".into()), LinkAttribute::OperState(State::Unknown)];
        for (m, payload) in [sent(port), sent(bridge), sent(down)] {
            assert_eq!(LinkState::from_bytes(&payload).unwrap(), LinkState::from_message(&m));
        }
        let (_, payload) = sent(LinkMessage::default());
        assert!(LinkState::from_bytes(&payload[..8]).is_err(), "a payload shorter than its header");
    }

    #[test]
    fn every_message_of_a_datagram_is_parsed_on_its_own() {
        let mut buf = bytes(link(1, "lo"));
        buf.extend(bytes(link(7, "eth0")));
        let got: Vec<u32> = messages::<RouteNetlinkMessage>(&buf)
            .into_iter()
            .map(|m| match m.unwrap().payload {
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(l)) => l.header.index,
                other => panic!("not a link: {other:?}"),
            })
            .collect();
        assert_eq!(got, vec![1, 7]);
    }

    #[test]
    fn a_length_past_the_datagram_ends_the_reading_with_an_error() {
        let mut buf = bytes(link(1, "lo"));
        let second = buf.len();
        buf.extend(bytes(link(7, "eth0")));
        // The second message claims more than the datagram holds.
        buf[second..second + 4].copy_from_slice(&4096u32.to_ne_bytes());
        let got = messages::<RouteNetlinkMessage>(&buf);
        assert_eq!(got.len(), 2);
        assert!(got[0].is_ok());
        assert_eq!(got[1].as_ref().unwrap_err().kind(), io::ErrorKind::InvalidData);
    }
}
