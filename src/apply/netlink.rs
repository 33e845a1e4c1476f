//! rtnetlink requests on a socket opened inside one namespace.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::RawFd;

use futures::TryStreamExt;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::{
    InfoBridgePort, InfoData, InfoKind, InfoPortData, InfoVeth, LinkAttribute, LinkExtentMask, LinkFlags, LinkInfo,
    LinkMessage, State,
};
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use rtnetlink::packet_route::AddressFamily;
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
            if a.header.family != AddressFamily::Inet {
                continue;
            }
            for attr in &a.attributes {
                if let AddressAttribute::Local(IpAddr::V4(ip)) = attr {
                    out.entry(a.header.index).or_default().push((*ip, a.header.prefix_len));
                }
            }
        }
        Ok(out)
    }

    /// The main table's IPv4 unicast routes, as the kernel sends them.
    async fn main_routes(&self) -> NlResult<Vec<RouteMessage>> {
        let req = RouteMessageBuilder::<Ipv4Addr>::new().build();
        let msgs: Vec<RouteMessage> = self.handle.route().get(req).execute().try_collect().await?;
        Ok(msgs
            .into_iter()
            .filter(|m| {
                m.header.address_family == AddressFamily::Inet
                    && m.header.table == 254
                    && m.header.kind == RouteType::Unicast
            })
            .collect())
    }

    /// The namespace's links, IPv4 addresses and main-table routes: three
    /// dumps, one after another (a socket runs one dump at a time, and
    /// refuses a second with `EBUSY`).
    pub async fn dump(&self) -> NlResult<NodeDump> {
        let links = self.links().await?.iter().map(LinkState::from_message).collect();
        let addresses = self.addresses().await?;
        let routes = self.main_routes().await?;
        Ok(NodeDump { links, addresses, routes })
    }

    /// Link indexes by name: one link dump.
    pub async fn link_indexes(&self) -> NlResult<HashMap<String, u32>> {
        Ok(self.links().await?.iter().map(LinkState::from_message).map(|l| (l.name, l.index)).collect())
    }
}

/// One namespace as the kernel reported it in one [`Netlink::dump`].
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

impl LinkState {
    pub fn from_message(m: &LinkMessage) -> LinkState {
        let mut s = LinkState {
            index: m.header.index,
            name: String::new(),
            kind: None,
            mac: None,
            mtu: None,
            master: None,
            peer_index: None,
            up: m.header.flags.contains(LinkFlags::Up),
            oper_up: false,
            hairpin: false,
        };
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
