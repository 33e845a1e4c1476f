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

use std::fs::File;
use std::io;
use std::net::Ipv4Addr;

use rtnetlink::sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};

use super::netns;
use crate::plan::UdpConntrackFilter;

const NFNL_SUBSYS_CTNETLINK: u16 = 1;
const IPCTNL_MSG_CT_NEW: u16 = 0;
const IPCTNL_MSG_CT_GET: u16 = 1;
const IPCTNL_MSG_CT_DELETE: u16 = 2;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP: u16 = 0x300;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const CTA_TUPLE_ORIG: u16 = 1;
const CTA_TUPLE_REPLY: u16 = 2;
const CTA_TUPLE_IP: u16 = 1;
const CTA_TUPLE_PROTO: u16 = 2;
const CTA_PROTO_NUM: u16 = 1;
const CTA_PROTO_DST_PORT: u16 = 3;
const IPPROTO_UDP: u8 = 17;
const CTA_IP_V4_SRC: u16 = 1;
const CTA_IP_V4_DST: u16 = 2;
/// `NLA_F_NESTED | NLA_F_NET_BYTEORDER`: flags, not part of the type.
const NLA_TYPE_MASK: u16 = 0x3fff;
const AF_INET: u8 = 2;

/// A netlink message: header, the netfilter header, then `attrs`.
fn message(kind: u16, flags: u16, seq: u32, attrs: &[u8]) -> Vec<u8> {
    let len = 16 + 4 + attrs.len();
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&(len as u32).to_ne_bytes());
    m.extend_from_slice(&((NFNL_SUBSYS_CTNETLINK << 8) | kind).to_ne_bytes());
    m.extend_from_slice(&flags.to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    // nfgenmsg: family, version 0, resource id 0 (big endian).
    m.extend_from_slice(&[AF_INET, 0, 0, 0]);
    m.extend_from_slice(attrs);
    m
}

/// The attributes in `buf`: (type without flags, payload).
fn attributes(mut buf: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while buf.len() >= 4 {
        let len = u16::from_ne_bytes([buf[0], buf[1]]) as usize;
        let kind = u16::from_ne_bytes([buf[2], buf[3]]) & NLA_TYPE_MASK;
        if len < 4 || len > buf.len() {
            break;
        }
        out.push((kind, &buf[4..len]));
        let padded = (len + 3) & !3;
        buf = &buf[padded.min(buf.len())..];
    }
    out
}

/// The nested attribute `kind` of `attrs`.
fn nested(attrs: &[u8], kind: u16) -> Option<&[u8]> {
    attributes(attrs).into_iter().find(|(k, _)| *k == kind).map(|(_, v)| v)
}

/// The source and destination of a tuple (`CTA_TUPLE_ORIG` or `_REPLY`),
/// from the attributes of a `IPCTNL_MSG_CT_NEW` message.
fn tuple_addresses(attrs: &[u8], which: u16) -> Option<(Ipv4Addr, Ipv4Addr)> {
    let ip = nested(nested(attrs, which)?, CTA_TUPLE_IP)?;
    let addr = |want: u16| {
        attributes(ip)
            .into_iter()
            .find(|(k, v)| *k == want && v.len() == 4)
            .map(|(_, v)| Ipv4Addr::new(v[0], v[1], v[2], v[3]))
    };
    Some((addr(CTA_IP_V4_SRC)?, addr(CTA_IP_V4_DST)?))
}

fn reply_addresses(attrs: &[u8]) -> Option<(Ipv4Addr, Ipv4Addr)> {
    tuple_addresses(attrs, CTA_TUPLE_REPLY)
}

/// The protocol and destination port of the original tuple.
fn orig_proto_dst_port(attrs: &[u8]) -> Option<(u8, u16)> {
    let proto = nested(nested(attrs, CTA_TUPLE_ORIG)?, CTA_TUPLE_PROTO)?;
    let num = nested(proto, CTA_PROTO_NUM).and_then(|v| v.first().copied())?;
    let port = nested(proto, CTA_PROTO_DST_PORT).filter(|v| v.len() == 2).map(|v| u16::from_be_bytes([v[0], v[1]]))?;
    Some((num, port))
}

/// What the daemon deletes: entries whose reply tuple has one of `ips`
/// (`ConntrackReplyAnyIP`), and UDP entries whose original tuple matches
/// one of `udp` (`ConntrackOrigDstPort`, `ConntrackOrigDstIP`).
fn deleted_by(attrs: &[u8], ips: &[Ipv4Addr], udp: &[UdpConntrackFilter]) -> bool {
    if reply_addresses(attrs).is_some_and(|(s, d)| ips.contains(&s) || ips.contains(&d)) {
        return true;
    }
    if udp.is_empty() {
        return false;
    }
    let Some((IPPROTO_UDP, port)) = orig_proto_dst_port(attrs) else { return false };
    let dst = tuple_addresses(attrs, CTA_TUPLE_ORIG).map(|(_, d)| d);
    udp.iter().any(|f| f.dst_port == port && f.dst_ip.is_none_or(|ip| Some(ip) == dst))
}

/// The netlink messages in one datagram: (type, flags-free body after the
/// 16-byte header).
fn messages(mut buf: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while buf.len() >= 16 {
        let len = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        let kind = u16::from_ne_bytes([buf[4], buf[5]]);
        if len < 16 || len > buf.len() {
            break;
        }
        out.push((kind, &buf[16..len]));
        buf = &buf[((len + 3) & !3).min(buf.len())..];
    }
    out
}

/// The errno of an `NLMSG_ERROR` body (0 for an ACK).
fn error_code(body: &[u8]) -> i32 {
    body.get(0..4).map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]])).unwrap_or(0)
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
        sock.send_to(&message(IPCTNL_MSG_CT_GET, NLM_F_REQUEST | NLM_F_DUMP, 1, &[]), &kernel, 0)?;
        let mut doomed: Vec<Vec<u8>> = Vec::new();
        'dump: loop {
            let (buf, _) = sock.recv_from_full()?;
            for (kind, body) in messages(&buf) {
                match kind {
                    NLMSG_DONE => break 'dump,
                    NLMSG_ERROR if error_code(body) != 0 => {
                        return Err(io::Error::from_raw_os_error(-error_code(body)));
                    }
                    k if k == (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_NEW => {
                        let attrs = body.get(4..).unwrap_or_default();
                        if deleted_by(attrs, &ips, &udp) {
                            doomed.push(attrs.to_vec());
                        }
                    }
                    _ => {}
                }
            }
        }
        let mut deleted = 0;
        for (i, attrs) in doomed.iter().enumerate() {
            let seq = 2 + i as u32;
            sock.send_to(&message(IPCTNL_MSG_CT_DELETE, NLM_F_REQUEST | NLM_F_ACK, seq, attrs), &kernel, 0)?;
            let (buf, _) = sock.recv_from_full()?;
            match messages(&buf).first().map(|(k, b)| (*k, error_code(b))) {
                Some((NLMSG_ERROR, 0)) => deleted += 1,
                // Gone by itself meanwhile (a timeout): as good as deleted.
                Some((NLMSG_ERROR, e)) if -e == nix::errno::Errno::ENOENT as i32 => {}
                Some((NLMSG_ERROR, e)) => return Err(io::Error::from_raw_os_error(-e)),
                _ => return Err(io::Error::other("ctnetlink: no answer to a delete")),
            }
        }
        Ok(deleted)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn tuple(kind: u16, src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
        let ip = [attr(CTA_IP_V4_SRC, &src), attr(CTA_IP_V4_DST, &dst)].concat();
        // As the kernel sends them: nested attributes flagged NLA_F_NESTED.
        attr(kind | 0x8000, &attr(CTA_TUPLE_IP | 0x8000, &ip))
    }

    #[test]
    fn the_reply_tuple_is_read_past_the_original_and_the_flags() {
        let attrs = [
            tuple(1, [198, 51, 100, 2], [198, 51, 100, 1]),
            tuple(CTA_TUPLE_REPLY, [172, 17, 0, 2], [198, 51, 100, 2]),
            attr(18, &[0, 0]),
        ]
        .concat();
        assert_eq!(reply_addresses(&attrs), Some((Ipv4Addr::new(172, 17, 0, 2), Ipv4Addr::new(198, 51, 100, 2))));
        assert_eq!(reply_addresses(&attrs[..attrs.len() / 2]), None);
    }

    fn udp_tuple(kind: u16, src: [u8; 4], dst: [u8; 4], dport: u16) -> Vec<u8> {
        let ip = [attr(CTA_IP_V4_SRC, &src), attr(CTA_IP_V4_DST, &dst)].concat();
        let proto = [
            attr(CTA_PROTO_NUM, &[IPPROTO_UDP]),
            attr(2, &[0x13, 0xc4]),
            attr(CTA_PROTO_DST_PORT, &dport.to_be_bytes()),
        ]
        .concat();
        attr(kind | 0x8000, &[attr(CTA_TUPLE_IP | 0x8000, &ip), attr(CTA_TUPLE_PROTO | 0x8000, &proto)].concat())
    }

    #[test]
    fn udp_entries_are_matched_by_their_original_destination_port_and_address() {
        // A LAN peer's un-NAT'd flow to the host's port 5060.
        let attrs = [
            udp_tuple(CTA_TUPLE_ORIG, [198, 51, 100, 2], [198, 51, 100, 1], 5060),
            udp_tuple(CTA_TUPLE_REPLY, [198, 51, 100, 1], [198, 51, 100, 2], 5060),
        ]
        .concat();
        assert_eq!(orig_proto_dst_port(&attrs), Some((IPPROTO_UDP, 5060)));
        let port = |p| UdpConntrackFilter { dst_port: p, dst_ip: None };
        assert!(deleted_by(&attrs, &[], &[port(5060)]));
        assert!(!deleted_by(&attrs, &[], &[port(5061)]));
        assert!(!deleted_by(&attrs, &[Ipv4Addr::new(172, 17, 0, 2)], &[]));
        let at = |ip| UdpConntrackFilter { dst_port: 5060, dst_ip: Some(ip) };
        assert!(deleted_by(&attrs, &[], &[at(Ipv4Addr::new(198, 51, 100, 1))]));
        assert!(!deleted_by(&attrs, &[], &[at(Ipv4Addr::new(127, 0, 0, 1))]));
    }

    #[test]
    fn messages_carry_the_netfilter_header_and_split_back() {
        let m = message(IPCTNL_MSG_CT_DELETE, NLM_F_REQUEST | NLM_F_ACK, 7, &attr(1, &[1, 2, 3, 4]));
        assert_eq!(m.len(), 16 + 4 + 8);
        assert_eq!(u16::from_ne_bytes([m[4], m[5]]), 0x102);
        let two = [m.clone(), m].concat();
        let parsed = messages(&two);
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0].1[..4], [AF_INET, 0, 0, 0]);
        assert_eq!(error_code(&(-2i32).to_ne_bytes()), -2);
    }
}
