//! Probe packets, crafted and parsed with pnet. Pure functions: the engine
//! sends what [`craft`] returns and feeds what it receives to [`classify`].

use std::net::Ipv4Addr;

use pnet::packet::icmp::{self, IcmpPacket, IcmpTypes, MutableIcmpPacket};
use pnet::packet::ip::{IpNextHeaderProtocol, IpNextHeaderProtocols};
use pnet::packet::ipv4::{self, Ipv4Packet, MutableIpv4Packet};
use pnet::packet::tcp::{self, MutableTcpPacket, TcpFlags, TcpPacket};
use pnet::packet::udp::{self, MutableUdpPacket, UdpPacket};
use pnet::packet::Packet;

/// What one probe sends, with everything needed to recognise its answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wire {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub kind: WireKind,
    /// ICMP echo identifier, or the TCP/UDP source port.
    pub ident: u16,
    /// Carried in the payload (UDP, ICMP) or as the TCP sequence number.
    pub token: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireKind {
    Icmp,
    Tcp(u16),
    Udp(u16),
}

impl Wire {
    pub fn protocol(&self) -> IpNextHeaderProtocol {
        match self.kind {
            WireKind::Icmp => IpNextHeaderProtocols::Icmp,
            WireKind::Tcp(_) => IpNextHeaderProtocols::Tcp,
            WireKind::Udp(_) => IpNextHeaderProtocols::Udp,
        }
    }
}

/// The payload a UDP probe or a TCP follow-up carries, so a responder can
/// tell which probe reached it and from where.
pub fn token_payload(token: u32) -> String {
    format!("bridgelab-probe {token:08x}\n")
}

/// Parses [`token_payload`].
pub fn parse_token(payload: &[u8]) -> Option<u32> {
    let s = std::str::from_utf8(payload).ok()?;
    let hex = s.strip_prefix("bridgelab-probe ")?.trim_end();
    u32::from_str_radix(hex, 16).ok()
}

/// The payload of datagram `seq` (from 1) of the flow `token`: a
/// responder records who sent it and echoes it, so the flow's sender
/// learns which of its datagrams were answered.
pub fn flow_payload(token: u32, seq: u64) -> String {
    format!("bridgelab-flow {token:08x} {seq}\n")
}

/// Parses [`flow_payload`]: `(token, seq)`.
pub fn parse_flow(payload: &[u8]) -> Option<(u32, u64)> {
    let s = std::str::from_utf8(payload).ok()?;
    let (token, seq) = s.strip_prefix("bridgelab-flow ")?.trim_end().split_once(' ')?;
    Some((u32::from_str_radix(token, 16).ok()?, seq.parse().ok()?))
}

/// The full IPv4 packet for one attempt (`attempt` goes into the IP ID and
/// the ICMP sequence number, so retries are distinguishable on a capture).
pub fn craft(w: &Wire, attempt: u16) -> Vec<u8> {
    let l4: Vec<u8> = match w.kind {
        WireKind::Icmp => {
            let payload = token_payload(w.token);
            let mut buf = vec![0u8; 8 + payload.len()];
            {
                let mut p = MutableIcmpPacket::new(&mut buf).expect("sized");
                p.set_icmp_type(IcmpTypes::EchoRequest);
                p.set_icmp_code(icmp::IcmpCode(0));
            }
            buf[4..6].copy_from_slice(&w.ident.to_be_bytes());
            buf[6..8].copy_from_slice(&attempt.to_be_bytes());
            buf[8..].copy_from_slice(payload.as_bytes());
            let sum = icmp::checksum(&IcmpPacket::new(&buf).expect("sized"));
            MutableIcmpPacket::new(&mut buf).expect("sized").set_checksum(sum);
            buf
        }
        WireKind::Tcp(port) => {
            let mut buf = vec![0u8; 20];
            let mut p = MutableTcpPacket::new(&mut buf).expect("sized");
            p.set_source(w.ident);
            p.set_destination(port);
            p.set_sequence(w.token);
            p.set_data_offset(5);
            p.set_flags(TcpFlags::SYN);
            p.set_window(64240);
            let sum = tcp::ipv4_checksum(&p.to_immutable(), &w.src, &w.dst);
            p.set_checksum(sum);
            buf
        }
        WireKind::Udp(port) => {
            let payload = token_payload(w.token);
            let mut buf = vec![0u8; 8 + payload.len()];
            let mut p = MutableUdpPacket::new(&mut buf).expect("sized");
            p.set_source(w.ident);
            p.set_destination(port);
            p.set_length((8 + payload.len()) as u16);
            p.set_payload(payload.as_bytes());
            let sum = udp::ipv4_checksum(&p.to_immutable(), &w.src, &w.dst);
            p.set_checksum(sum);
            buf
        }
    };
    ipv4_packet(w, attempt, &l4)
}

/// `l4` in an IPv4 header from `w.src` to `w.dst`.
fn ipv4_packet(w: &Wire, attempt: u16, l4: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; 20 + l4.len()];
    let mut ip = MutableIpv4Packet::new(&mut buf).expect("sized");
    ip.set_version(4);
    ip.set_header_length(5);
    ip.set_total_length((20 + l4.len()) as u16);
    ip.set_identification(w.ident ^ attempt);
    ip.set_flags(ipv4::Ipv4Flags::DontFragment);
    ip.set_ttl(64);
    ip.set_next_level_protocol(w.protocol());
    ip.set_source(w.src);
    ip.set_destination(w.dst);
    ip.set_payload(l4);
    let sum = ipv4::checksum(&ip.to_immutable());
    ip.set_checksum(sum);
    buf
}

/// The Ethernet type of IPv4.
const ETHERTYPE_IPV4: [u8; 2] = [0x08, 0x00];

/// An Ethernet frame carrying `packet` from `src` to `dst` (MACs).
pub fn frame(dst: [u8; 6], src: [u8; 6], packet: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + packet.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ETHERTYPE_IPV4);
    f.extend_from_slice(packet);
    f
}

/// The IPv4 packet of a frame addressed to `mac`: what came in for this
/// node, not what it sent (a packet socket sees both).
pub fn incoming_ipv4(mac: [u8; 6], frame: &[u8]) -> Option<&[u8]> {
    (frame.len() > 14 && frame[..6] == mac && frame[12..14] == ETHERTYPE_IPV4).then(|| &frame[14..])
}

/// For a TCP probe answered by `answer` with a SYN-ACK: the packet that
/// completes the handshake and carries the probe's token
/// ([`token_payload`]), so the responder records who it came from. The
/// kernel does this for a connected socket; a probe sent at the link layer
/// has no socket, so the prober does it.
pub fn handshake_ack(w: &Wire, answer: &[u8]) -> Option<Vec<u8>> {
    let WireKind::Tcp(port) = w.kind else { return None };
    let ip = Ipv4Packet::new(answer)?;
    if ip.get_next_level_protocol() != IpNextHeaderProtocols::Tcp {
        return None;
    }
    let t = TcpPacket::new(ip.payload())?;
    let synack = TcpFlags::SYN | TcpFlags::ACK;
    if t.get_source() != port || t.get_destination() != w.ident || t.get_flags() & synack != synack {
        return None;
    }
    let payload = token_payload(w.token);
    let mut l4 = vec![0u8; 20 + payload.len()];
    {
        let mut p = MutableTcpPacket::new(&mut l4).expect("sized");
        p.set_source(w.ident);
        p.set_destination(port);
        p.set_sequence(w.token.wrapping_add(1));
        p.set_acknowledgement(t.get_sequence().wrapping_add(1));
        p.set_data_offset(5);
        p.set_flags(TcpFlags::ACK | TcpFlags::PSH);
        p.set_window(64240);
        p.set_payload(payload.as_bytes());
        let sum = tcp::ipv4_checksum(&p.to_immutable(), &w.src, &w.dst);
        p.set_checksum(sum);
    }
    Some(ipv4_packet(w, 0, &l4))
}

/// What an answer says about a probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Echo reply, SYN-ACK, or a UDP datagram back.
    Reachable,
    /// RST to a SYN, or ICMP port unreachable to a UDP datagram: reached,
    /// nothing listening.
    Refused,
    /// Any other ICMP destination unreachable, with its code (13: admin
    /// prohibited; 3 to a SYN or an echo: a `-j REJECT`).
    Unreachable(u8),
}

/// The name of an ICMP destination unreachable code (RFC 792, 1122, 1812),
/// as `iptables -j REJECT --reject-with` knows most of them.
pub fn unreachable_name(code: u8) -> &'static str {
    match code {
        0 => "network unreachable",
        1 => "host unreachable",
        2 => "protocol unreachable",
        3 => "port unreachable",
        4 => "fragmentation needed",
        5 => "source route failed",
        6 => "destination network unknown",
        7 => "destination host unknown",
        9 => "network administratively prohibited",
        10 => "host administratively prohibited",
        11 => "network unreachable for TOS",
        12 => "host unreachable for TOS",
        13 => "communication administratively prohibited",
        _ => "destination unreachable",
    }
}

/// Whether `packet` (a whole IPv4 packet received in the sender's
/// namespace) answers `w`, and how.
pub fn classify(w: &Wire, packet: &[u8]) -> Option<Answer> {
    let ip = Ipv4Packet::new(packet)?;
    let payload = ip.payload();
    match ip.get_next_level_protocol() {
        IpNextHeaderProtocols::Icmp => {
            let p = IcmpPacket::new(payload)?;
            let body = payload.get(4..)?;
            match p.get_icmp_type() {
                IcmpTypes::EchoReply if w.kind == WireKind::Icmp => {
                    (body.get(0..2)? == w.ident.to_be_bytes()).then_some(Answer::Reachable)
                }
                IcmpTypes::DestinationUnreachable => {
                    // 4 unused bytes, then the offending IP header and 8 bytes of it.
                    let inner = Ipv4Packet::new(body.get(4..)?)?;
                    if !quotes(w, &inner) {
                        return None;
                    }
                    let code = p.get_icmp_code().0;
                    // Only for UDP does port unreachable mean "reached, nothing
                    // listening"; a TCP stack says that with a RST, so an ICMP
                    // error to a SYN (`-j REJECT`'s default) is a block.
                    let refused = code == 3 && matches!(w.kind, WireKind::Udp(_));
                    Some(if refused { Answer::Refused } else { Answer::Unreachable(code) })
                }
                _ => None,
            }
        }
        IpNextHeaderProtocols::Tcp => {
            let WireKind::Tcp(port) = w.kind else { return None };
            let t = TcpPacket::new(payload)?;
            if t.get_source() != port || t.get_destination() != w.ident {
                return None;
            }
            let f = t.get_flags();
            if f & TcpFlags::RST != 0 {
                Some(Answer::Refused)
            } else if f & (TcpFlags::SYN | TcpFlags::ACK) == TcpFlags::SYN | TcpFlags::ACK {
                Some(Answer::Reachable)
            } else {
                None
            }
        }
        IpNextHeaderProtocols::Udp => {
            let WireKind::Udp(port) = w.kind else { return None };
            let u = UdpPacket::new(payload)?;
            (u.get_source() == port && u.get_destination() == w.ident).then_some(Answer::Reachable)
        }
        _ => None,
    }
}

/// Whether an ICMP error quotes this probe's packet.
fn quotes(w: &Wire, inner: &Ipv4Packet) -> bool {
    if inner.get_next_level_protocol() != w.protocol() {
        return false;
    }
    // The quoted destination may be translated back already; ports decide.
    let head = inner.payload();
    match w.kind {
        WireKind::Icmp => head.get(4..6) == Some(&w.ident.to_be_bytes()[..]),
        WireKind::Tcp(port) | WireKind::Udp(port) => {
            head.get(0..2) == Some(&w.ident.to_be_bytes()[..]) && head.get(2..4) == Some(&port.to_be_bytes()[..])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn wire(kind: WireKind) -> Wire {
        Wire {
            src: "172.17.0.2".parse().unwrap(),
            dst: "172.17.0.1".parse().unwrap(),
            kind,
            ident: 0x4242,
            token: 0xdeadbeef,
        }
    }

    #[rstest]
    #[case::icmp(WireKind::Icmp, 1, 8 + 25)]
    #[case::tcp(WireKind::Tcp(80), 6, 20)]
    #[case::udp(WireKind::Udp(53), 17, 8 + 25)]
    fn crafted_packets_have_valid_headers_and_checksums(
        #[case] kind: WireKind,
        #[case] proto: u8,
        #[case] l4_len: usize,
    ) {
        let w = wire(kind);
        let bytes = craft(&w, 1);
        let ip = Ipv4Packet::new(&bytes).unwrap();
        assert_eq!(bytes.len(), 20 + l4_len);
        assert_eq!(ip.get_version(), 4);
        assert_eq!(ip.get_ttl(), 64);
        assert_eq!(ip.get_next_level_protocol().0, proto);
        assert_eq!(ip.get_source(), w.src);
        assert_eq!(ip.get_destination(), w.dst);
        assert_eq!(ip.get_checksum(), ipv4::checksum(&ip));
        match kind {
            WireKind::Icmp => {
                let p = IcmpPacket::new(ip.payload()).unwrap();
                assert_eq!(p.get_icmp_type(), IcmpTypes::EchoRequest);
                assert_eq!(p.get_checksum(), icmp::checksum(&p));
                assert_eq!(&ip.payload()[4..8], &[0x42, 0x42, 0, 1]);
                assert_eq!(parse_token(&ip.payload()[8..]), Some(0xdeadbeef));
            }
            WireKind::Tcp(_) => {
                let t = TcpPacket::new(ip.payload()).unwrap();
                assert_eq!((t.get_source(), t.get_destination(), t.get_flags()), (0x4242, 80, TcpFlags::SYN));
                assert_eq!(t.get_sequence(), 0xdeadbeef);
                assert_eq!(t.get_checksum(), tcp::ipv4_checksum(&t, &w.src, &w.dst));
            }
            WireKind::Udp(_) => {
                let u = UdpPacket::new(ip.payload()).unwrap();
                assert_eq!((u.get_source(), u.get_destination()), (0x4242, 53));
                assert_eq!(u.get_checksum(), udp::ipv4_checksum(&u, &w.src, &w.dst));
                assert_eq!(parse_token(u.payload()), Some(0xdeadbeef));
            }
        }
    }

    /// Checksums worked out independently of pnet (RFC 1071 by hand).
    #[test]
    fn the_tcp_syn_is_byte_exact() {
        let bytes = craft(&wire(WireKind::Tcp(80)), 0);
        assert_eq!(
            bytes,
            [
                0x45, 0x00, 0x00, 0x28, 0x42, 0x42, 0x40, 0x00, 0x40, 0x06, 0xa0, 0x68, 172, 17, 0, 2, 172, 17, 0,
                1, // IPv4
                0x42, 0x42, 0x00, 0x50, 0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 0, 0x50, 0x02, 0xfa, 0xf0, 0x7c, 0x9c, 0,
                0, // TCP SYN
            ]
        );
    }

    /// An answer from `from:sport` to the prober's `to:dport`.
    fn reply(proto: IpNextHeaderProtocol, l4: &[u8]) -> Vec<u8> {
        let mut buf = vec![0u8; 20 + l4.len()];
        let mut ip = MutableIpv4Packet::new(&mut buf).unwrap();
        ip.set_version(4);
        ip.set_header_length(5);
        ip.set_total_length((20 + l4.len()) as u16);
        ip.set_next_level_protocol(proto);
        ip.set_source("172.17.0.1".parse().unwrap());
        ip.set_destination("172.17.0.2".parse().unwrap());
        ip.set_payload(l4);
        buf
    }

    fn tcp_reply(sport: u16, dport: u16, flags: u8) -> Vec<u8> {
        let mut l4 = vec![0u8; 20];
        let mut t = MutableTcpPacket::new(&mut l4).unwrap();
        t.set_source(sport);
        t.set_destination(dport);
        t.set_data_offset(5);
        t.set_flags(flags);
        reply(IpNextHeaderProtocols::Tcp, &l4)
    }

    #[rstest]
    #[case::syn_ack(TcpFlags::SYN | TcpFlags::ACK, Some(Answer::Reachable))]
    #[case::rst(TcpFlags::RST | TcpFlags::ACK, Some(Answer::Refused))]
    #[case::bare_ack(TcpFlags::ACK, None)]
    fn tcp_answers(#[case] flags: u8, #[case] want: Option<Answer>) {
        let w = wire(WireKind::Tcp(80));
        assert_eq!(classify(&w, &tcp_reply(80, 0x4242, flags)), want);
        // Another probe's answer is not ours.
        assert_eq!(classify(&w, &tcp_reply(80, 0x4243, flags)), None);
        assert_eq!(classify(&w, &tcp_reply(81, 0x4242, flags)), None);
    }

    /// ICMP destination unreachable (type 3) with `code`, quoting `sent`.
    fn unreachable(code: u8, sent: &[u8]) -> Vec<u8> {
        let mut l4 = vec![3, code, 0, 0, 0, 0, 0, 0];
        l4.extend_from_slice(&sent[..28]);
        reply(IpNextHeaderProtocols::Icmp, &l4)
    }

    #[rstest]
    #[case::udp_port_unreachable(WireKind::Udp(53), 3, Answer::Refused)]
    #[case::udp_host_unreachable(WireKind::Udp(53), 1, Answer::Unreachable(1))]
    #[case::udp_admin_prohibited(WireKind::Udp(53), 13, Answer::Unreachable(13))]
    // `-j REJECT` answers a SYN with port unreachable: a block, not a RST.
    #[case::tcp_port_unreachable(WireKind::Tcp(80), 3, Answer::Unreachable(3))]
    #[case::tcp_net_unreachable(WireKind::Tcp(80), 0, Answer::Unreachable(0))]
    #[case::tcp_admin_prohibited(WireKind::Tcp(80), 13, Answer::Unreachable(13))]
    #[case::icmp_port_unreachable(WireKind::Icmp, 3, Answer::Unreachable(3))]
    #[case::icmp_host_prohibited(WireKind::Icmp, 10, Answer::Unreachable(10))]
    fn icmp_errors_quote_the_probe(#[case] kind: WireKind, #[case] code: u8, #[case] want: Answer) {
        let w = wire(kind);
        let answer = unreachable(code, &craft(&w, 0));
        assert_eq!(classify(&w, &answer), Some(want));
        let other = Wire { ident: 1, ..w };
        assert_eq!(classify(&other, &answer), None);
    }

    #[test]
    fn a_syn_ack_is_acknowledged_with_the_token() {
        let w = wire(WireKind::Tcp(80));
        let mut synack = tcp_reply(80, 0x4242, TcpFlags::SYN | TcpFlags::ACK);
        MutableTcpPacket::new(&mut synack[20..]).unwrap().set_sequence(0x1000);
        let ack = handshake_ack(&w, &synack).unwrap();
        let ip = Ipv4Packet::new(&ack).unwrap();
        assert_eq!((ip.get_source(), ip.get_destination()), (w.src, w.dst));
        assert_eq!(ip.get_checksum(), ipv4::checksum(&ip));
        let t = TcpPacket::new(ip.payload()).unwrap();
        assert_eq!((t.get_source(), t.get_destination()), (0x4242, 80));
        assert_eq!((t.get_sequence(), t.get_acknowledgement()), (0xdeadbeef_u32.wrapping_add(1), 0x1001));
        assert_eq!(t.get_flags(), TcpFlags::ACK | TcpFlags::PSH);
        assert_eq!(t.get_checksum(), tcp::ipv4_checksum(&t, &w.src, &w.dst));
        assert_eq!(parse_token(t.payload()), Some(0xdeadbeef));
        // Only a SYN-ACK to this probe gets one.
        assert_eq!(handshake_ack(&w, &tcp_reply(80, 0x4242, TcpFlags::RST | TcpFlags::ACK)), None);
        assert_eq!(handshake_ack(&w, &tcp_reply(80, 0x4243, TcpFlags::SYN | TcpFlags::ACK)), None);
        assert_eq!(handshake_ack(&wire(WireKind::Udp(80)), &synack), None);
    }

    #[test]
    fn frames_carry_ipv4_and_only_incoming_ones_are_read() {
        let (me, them) = ([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
        let packet = craft(&wire(WireKind::Icmp), 0);
        let out = frame(them, me, &packet);
        assert_eq!((&out[..6], &out[6..12], &out[12..14]), (&them[..], &me[..], &[0x08, 0x00][..]));
        // What this node sent is not an answer to it; what came for it is.
        assert_eq!(incoming_ipv4(me, &out), None);
        assert_eq!(incoming_ipv4(them, &out), Some(&packet[..]));
        let mut arp = frame(me, them, &packet);
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(incoming_ipv4(me, &arp), None);
    }

    #[test]
    fn echo_replies_and_udp_answers_match_by_identifier() {
        let w = wire(WireKind::Icmp);
        let l4 = [0, 0, 0, 0, 0x42, 0x42, 0, 1];
        assert_eq!(classify(&w, &reply(IpNextHeaderProtocols::Icmp, &l4)), Some(Answer::Reachable));
        let u = wire(WireKind::Udp(53));
        let l4 = [0, 53, 0x42, 0x42, 0, 8, 0, 0];
        assert_eq!(classify(&u, &reply(IpNextHeaderProtocols::Udp, &l4)), Some(Answer::Reachable));
        assert_eq!(classify(&w, &reply(IpNextHeaderProtocols::Udp, &l4)), None);
    }

    #[test]
    fn flow_datagrams_carry_their_flow_and_number() {
        let p = flow_payload(0xdeadbeef, 42);
        assert_eq!(parse_flow(p.as_bytes()), Some((0xdeadbeef, 42)));
        // Neither parser takes the other's payload.
        assert_eq!(parse_token(p.as_bytes()), None);
        assert_eq!(parse_flow(token_payload(7).as_bytes()), None);
        assert_eq!(parse_flow(b"bridgelab-flow zz 1\n"), None);
        assert_eq!(parse_flow(b"bridgelab-flow 0000000a\n"), None);
    }
}
