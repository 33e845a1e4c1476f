//! ARP requests as Ethernet frames, built with pnet. Two users: the lab
//! announces a container's address the way Docker 28+ does (an unsolicited
//! request for its own address, to broadcast), and a probe sent at the link
//! layer (`via`) resolves the host first, as a LAN neighbour would, so the
//! host learns where to send its answers.

use std::net::Ipv4Addr;

use pnet::packet::arp::{ArpHardwareTypes, ArpOperations, MutableArpPacket};
use pnet::packet::ethernet::{EtherTypes, MutableEthernetPacket};
use pnet::packet::MutablePacket;
use pnet::util::MacAddr;

/// An ARP request from `mac`/`ip` for `target`, sent to `to` (a MAC, or
/// `ff:ff:ff:ff:ff:ff`). With `target == ip` it is an unsolicited
/// announcement (moby's osl `advertiseAddrs`).
pub fn request(to: [u8; 6], mac: [u8; 6], ip: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    let mut f = vec![0u8; MutableEthernetPacket::minimum_packet_size() + MutableArpPacket::minimum_packet_size()];
    let mut eth = MutableEthernetPacket::new(&mut f).expect("sized for Ethernet and ARP");
    eth.set_destination(MacAddr::from(to));
    eth.set_source(MacAddr::from(mac));
    eth.set_ethertype(EtherTypes::Arp);
    let mut arp = MutableArpPacket::new(eth.payload_mut()).expect("sized for ARP");
    arp.set_hardware_type(ArpHardwareTypes::Ethernet);
    arp.set_protocol_type(EtherTypes::Ipv4);
    arp.set_hw_addr_len(6);
    arp.set_proto_addr_len(4);
    arp.set_operation(ArpOperations::Request);
    arp.set_sender_hw_addr(MacAddr::from(mac));
    arp.set_sender_proto_addr(ip);
    arp.set_target_hw_addr(MacAddr::zero());
    arp.set_target_proto_addr(target);
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_arp_request_is_byte_exact() {
        let f = request(
            [2, 0, 0, 0, 0, 1],
            [2, 0, 0, 0, 0, 2],
            "198.51.100.2".parse().unwrap(),
            "198.51.100.1".parse().unwrap(),
        );
        assert_eq!(
            f,
            [
                2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x06, // Ethernet
                0, 1, 0x08, 0, 6, 4, 0, 1, // request
                2, 0, 0, 0, 0, 2, 198, 51, 100, 2, // sender
                0, 0, 0, 0, 0, 0, 198, 51, 100, 1, // target
            ]
        );
    }
}
