//! The host's conntrack table, through ctnetlink: what libnetwork's
//! `clearEndpointConnections` does when a container's endpoint loses its
//! external connectivity (vishvananda/netlink's `ConntrackDeleteFilter`
//! with `ConntrackReplyAnyIP`: list every IPv4 entry, delete each whose
//! reply tuple has the address, by resending its attributes); and what
//! Docker 23+'s `clearConntrackEntries` adds when it programs an endpoint:
//! UDP entries by original destination port (`ConntrackOrigDstPort`).
//!
//! Only the kernel's real table makes a `flow` step's entry stale or not:
//! so the lab deletes exactly what the daemon it imitates deletes.
//!
//! The messages are netlink-packet-netfilter's (the rust-netlink family
//! rtnetlink belongs to): it frames them and parses the tuples, nested
//! attributes and their flags included.

use std::fs::File;
use std::io;
use std::net::{IpAddr, Ipv4Addr};

use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST};
use netlink_packet_netfilter::conntrack::{ConntrackAttribute, ConntrackMessage, IPTuple, ProtoTuple, Protocol, Tuple};
use netlink_packet_netfilter::{NetfilterHeader, NetfilterMessage, NetfilterMessageInner, NetfilterProtoFamily};
use rtnetlink::sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};

use super::netns;
use crate::plan::UdpConntrackFilter;

/// An IPv4 ctnetlink request.
fn request(flags: u16, seq: u32, message: ConntrackMessage) -> Vec<u8> {
    let mut header = NetlinkHeader::default();
    header.flags = flags;
    header.sequence_number = seq;
    let mut m = NetlinkMessage::new(
        header,
        NetlinkPayload::from(NetfilterMessage::new(NetfilterHeader::new(NetfilterProtoFamily::IPv4, 0, 0), message)),
    );
    m.finalize();
    let mut buf = vec![0; m.buffer_len()];
    m.serialize(&mut buf);
    buf
}

/// The netlink messages in one datagram.
fn messages(buf: &[u8]) -> io::Result<Vec<NetlinkMessage<NetfilterMessage>>> {
    super::netlink::messages(buf).into_iter().collect()
}

/// The tuple `CTA_TUPLE_ORIG` (`orig`) or `CTA_TUPLE_REPLY` of an entry.
fn tuple(attrs: &[ConntrackAttribute], orig: bool) -> &[Tuple] {
    attrs
        .iter()
        .find_map(|a| match a {
            ConntrackAttribute::CtaTupleOrig(t) if orig => Some(t.as_slice()),
            ConntrackAttribute::CtaTupleReply(t) if !orig => Some(t.as_slice()),
            _ => None,
        })
        .unwrap_or_default()
}

/// The IPv4 source and destination of a tuple.
fn addresses(tuple: &[Tuple]) -> Option<(Ipv4Addr, Ipv4Addr)> {
    let ip = tuple.iter().find_map(|t| match t {
        Tuple::Ip(ip) => Some(ip),
        _ => None,
    })?;
    let v4 = |want_src: bool| {
        ip.iter().find_map(|a| match a {
            IPTuple::SourceAddress(IpAddr::V4(v)) if want_src => Some(*v),
            IPTuple::DestinationAddress(IpAddr::V4(v)) if !want_src => Some(*v),
            _ => None,
        })
    };
    Some((v4(true)?, v4(false)?))
}

/// Whether the tuple is UDP, and its destination port.
fn udp_dst_port(tuple: &[Tuple]) -> Option<u16> {
    let proto = tuple.iter().find_map(|t| match t {
        Tuple::Proto(p) => Some(p),
        _ => None,
    })?;
    proto.iter().any(|p| matches!(p, ProtoTuple::Protocol(Protocol::Udp))).then_some(())?;
    proto.iter().find_map(|p| match p {
        ProtoTuple::DestinationPort(port) => Some(*port),
        _ => None,
    })
}

/// What the daemon deletes: entries whose reply tuple has one of `ips`
/// (`ConntrackReplyAnyIP`), and UDP entries whose original tuple matches
/// one of `udp` (`ConntrackOrigDstPort`, `ConntrackOrigDstIP`).
fn deleted_by(attrs: &[ConntrackAttribute], ips: &[Ipv4Addr], udp: &[UdpConntrackFilter]) -> bool {
    if addresses(tuple(attrs, false)).is_some_and(|(s, d)| ips.contains(&s) || ips.contains(&d)) {
        return true;
    }
    let orig = tuple(attrs, true);
    let Some(port) = udp_dst_port(orig) else { return false };
    let dst = addresses(orig).map(|(_, d)| d);
    udp.iter().any(|f| f.dst_port == port && f.dst_ip.is_none_or(|ip| Some(ip) == dst))
}

/// The errno of an `NLMSG_ERROR` answer: 0 for an ACK.
fn answer_code(m: &NetlinkMessage<NetfilterMessage>) -> Option<i32> {
    match &m.payload {
        NetlinkPayload::Error(e) => Some(e.code.map(|c| c.get()).unwrap_or(0)),
        _ => None,
    }
}

/// Deletes, in namespace `ns`, every IPv4 conntrack entry whose reply
/// tuple has one of `ips` as source or destination, and every UDP entry
/// that one of `udp` matches. Returns how many.
pub fn delete(ns: &File, ips: &[Ipv4Addr], udp: &[UdpConntrackFilter]) -> io::Result<usize> {
    if ips.is_empty() && udp.is_empty() {
        return Ok(0);
    }
    let (ips, udp) = (ips.to_vec(), udp.to_vec());
    netns::run_in(ns, move || {
        let sock = Socket::new(NETLINK_NETFILTER)?;
        let kernel = SocketAddr::new(0, 0);
        // List everything first, as the dump cannot be changed under it.
        sock.send_to(&request(NLM_F_REQUEST | NLM_F_DUMP, 1, ConntrackMessage::Get(vec![])), &kernel, 0)?;
        let mut doomed: Vec<Vec<ConntrackAttribute>> = Vec::new();
        'dump: loop {
            let (buf, _) = sock.recv_from_full()?;
            for m in messages(&buf)? {
                match m.payload {
                    NetlinkPayload::Done(_) => break 'dump,
                    NetlinkPayload::Error(e) => {
                        if let Some(code) = e.code {
                            return Err(io::Error::from_raw_os_error(-code.get()));
                        }
                    }
                    NetlinkPayload::InnerMessage(NetfilterMessage {
                        inner: NetfilterMessageInner::Conntrack(ConntrackMessage::New(attrs)),
                        ..
                    }) if deleted_by(&attrs, &ips, &udp) => doomed.push(attrs),
                    _ => {}
                }
            }
        }
        let mut deleted = 0;
        for (i, attrs) in doomed.into_iter().enumerate() {
            let seq = 2 + i as u32;
            // Resent as listed, as vishvananda/netlink's delete does.
            sock.send_to(&request(NLM_F_REQUEST | NLM_F_ACK, seq, ConntrackMessage::Delete(attrs)), &kernel, 0)?;
            let (buf, _) = sock.recv_from_full()?;
            match messages(&buf)?.first().and_then(answer_code) {
                Some(0) => deleted += 1,
                // Gone by itself meanwhile (a timeout): as good as deleted.
                Some(e) if -e == nix::errno::Errno::ENOENT as i32 => {}
                Some(e) => return Err(io::Error::from_raw_os_error(-e)),
                None => return Err(io::Error::other("ctnetlink: no answer to a delete")),
            }
        }
        Ok(deleted)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CTA_TUPLE_ORIG: u16 = 1;
    const CTA_TUPLE_REPLY: u16 = 2;
    const CTA_TUPLE_IP: u16 = 1;
    const CTA_TUPLE_PROTO: u16 = 2;
    const CTA_IP_V4_SRC: u16 = 1;
    const CTA_IP_V4_DST: u16 = 2;
    const CTA_PROTO_NUM: u16 = 1;
    const CTA_PROTO_DST_PORT: u16 = 3;
    const NESTED: u16 = 0x8000;

    fn attr(kind: u16, payload: &[u8]) -> Vec<u8> {
        let mut a = Vec::new();
        a.extend_from_slice(&((4 + payload.len()) as u16).to_ne_bytes());
        a.extend_from_slice(&kind.to_ne_bytes());
        a.extend_from_slice(payload);
        while a.len() % 4 != 0 {
            a.push(0);
        }
        a
    }

    fn udp_tuple(kind: u16, src: [u8; 4], dst: [u8; 4], dport: u16) -> Vec<u8> {
        let ip = [attr(CTA_IP_V4_SRC, &src), attr(CTA_IP_V4_DST, &dst)].concat();
        let proto =
            [attr(CTA_PROTO_NUM, &[17]), attr(2, &[0x13, 0xc4]), attr(CTA_PROTO_DST_PORT, &dport.to_be_bytes())]
                .concat();
        // As the kernel sends them: nested attributes flagged NLA_F_NESTED.
        attr(kind | NESTED, &[attr(CTA_TUPLE_IP | NESTED, &ip), attr(CTA_TUPLE_PROTO | NESTED, &proto)].concat())
    }

    /// An `IPCTNL_MSG_CT_NEW` as a dump sends it, whole, with an attribute
    /// the crate does not know (CTA_ZONE, 18), parsed back to its attributes.
    fn entry(body: &[u8]) -> Vec<ConntrackAttribute> {
        let len = 16 + 4 + body.len();
        let mut m = Vec::new();
        m.extend_from_slice(&(len as u32).to_ne_bytes());
        // NFNL_SUBSYS_CTNETLINK << 8 | IPCTNL_MSG_CT_NEW (0).
        m.extend_from_slice(&(1u16 << 8).to_ne_bytes());
        m.extend_from_slice(&[2, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        m.extend_from_slice(&[2, 0, 0, 0]);
        m.extend_from_slice(body);
        let mut parsed = messages(&m).unwrap();
        assert_eq!(parsed.len(), 1);
        match parsed.remove(0).payload {
            NetlinkPayload::InnerMessage(NetfilterMessage {
                inner: NetfilterMessageInner::Conntrack(ConntrackMessage::New(attrs)),
                ..
            }) => attrs,
            other => panic!("not a conntrack entry: {other:?}"),
        }
    }

    #[test]
    fn the_reply_tuple_is_read_past_the_original_and_the_flags() {
        let attrs = entry(
            &[
                udp_tuple(CTA_TUPLE_ORIG, [198, 51, 100, 2], [198, 51, 100, 1], 53),
                udp_tuple(CTA_TUPLE_REPLY, [172, 17, 0, 2], [198, 51, 100, 2], 40000),
                attr(18, &[0, 0]),
            ]
            .concat(),
        );
        let reply = addresses(tuple(&attrs, false));
        assert_eq!(reply, Some((Ipv4Addr::new(172, 17, 0, 2), Ipv4Addr::new(198, 51, 100, 2))));
        assert!(deleted_by(&attrs, &[Ipv4Addr::new(172, 17, 0, 2)], &[]));
        assert!(!deleted_by(&attrs, &[Ipv4Addr::new(198, 51, 100, 1)], &[]), "only the reply tuple counts");
    }

    #[test]
    fn udp_entries_are_matched_by_their_original_destination_port_and_address() {
        // A LAN peer's un-NAT'd flow to the host's port 5060.
        let attrs = entry(
            &[
                udp_tuple(CTA_TUPLE_ORIG, [198, 51, 100, 2], [198, 51, 100, 1], 5060),
                udp_tuple(CTA_TUPLE_REPLY, [198, 51, 100, 1], [198, 51, 100, 2], 5060),
            ]
            .concat(),
        );
        assert_eq!(udp_dst_port(tuple(&attrs, true)), Some(5060));
        let port = |p| UdpConntrackFilter { dst_port: p, dst_ip: None };
        assert!(deleted_by(&attrs, &[], &[port(5060)]));
        assert!(!deleted_by(&attrs, &[], &[port(5061)]));
        assert!(!deleted_by(&attrs, &[Ipv4Addr::new(172, 17, 0, 2)], &[]));
        let at = |ip| UdpConntrackFilter { dst_port: 5060, dst_ip: Some(ip) };
        assert!(deleted_by(&attrs, &[], &[at(Ipv4Addr::new(198, 51, 100, 1))]));
        assert!(!deleted_by(&attrs, &[], &[at(Ipv4Addr::new(127, 0, 0, 1))]));
    }

    #[test]
    fn a_delete_is_a_ctnetlink_request_with_the_entry_resent() {
        let attrs = entry(&udp_tuple(CTA_TUPLE_ORIG, [10, 0, 0, 1], [10, 0, 0, 2], 53));
        let m = request(NLM_F_REQUEST | NLM_F_ACK, 7, ConntrackMessage::Delete(attrs.clone()));
        assert_eq!(u32::from_ne_bytes(m[0..4].try_into().unwrap()) as usize, m.len());
        assert_eq!(u16::from_ne_bytes([m[4], m[5]]), 0x102, "ctnetlink, IPCTNL_MSG_CT_DELETE");
        assert_eq!(u16::from_ne_bytes([m[6], m[7]]), NLM_F_REQUEST | NLM_F_ACK);
        assert_eq!(u32::from_ne_bytes(m[8..12].try_into().unwrap()), 7);
        assert_eq!(m[16], 2, "AF_INET");
        match messages(&m).unwrap().remove(0).payload {
            NetlinkPayload::InnerMessage(NetfilterMessage {
                inner: NetfilterMessageInner::Conntrack(ConntrackMessage::Delete(back)),
                ..
            }) => assert_eq!(back, attrs),
            other => panic!("{other:?}"),
        }
    }
}
