//! Docker 1.6.2's IPv4 allocator (`daemon/networkdriver/ipallocator`).
//!
//! Next-fit over `network+1 ..= broadcast-1` (or the `--fixed-cidr` subnet's
//! own inner range): each dynamic request continues after the last address it
//! handed out and wraps around, so a released address is only reused once the
//! pointer comes round again. Requested addresses do not move the pointer.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use ipnetwork::Ipv4Network;

/// The allocator's errors, with Docker's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IpamError {
    #[error("no available ip addresses on network")]
    NoAvailableIps,
    #[error("ip already allocated")]
    AlreadyAllocated,
    #[error("requested ip is out of range")]
    OutOfRange,
    #[error("network does not contain specified subnet")]
    BadSubnet,
}

/// One network's allocation state (Docker's `allocatedMap`).
#[derive(Debug, Clone)]
pub struct IpAllocator {
    allocated: BTreeSet<u32>,
    last: u32,
    begin: u32,
    end: u32,
}

fn range(n: Ipv4Network) -> (u32, u32) {
    (u32::from(n.network()), u32::from(n.broadcast()))
}

impl IpAllocator {
    /// `newAllocatedMap`: the whole network but its network and broadcast addresses.
    pub fn new(network: Ipv4Network) -> IpAllocator {
        let (first, last) = range(network);
        // Docker computes with big.Int; `begin - 1` is `first` and never underflows.
        let begin = first.wrapping_add(1);
        let end = last.wrapping_sub(1);
        IpAllocator { allocated: BTreeSet::new(), last: first, begin, end }
    }

    /// `RegisterSubnet`: restrict allocation to `subnet` (`--fixed-cidr`),
    /// again without its network and broadcast addresses.
    pub fn with_subnet(network: Ipv4Network, subnet: Ipv4Network) -> Result<IpAllocator, IpamError> {
        let mut a = IpAllocator::new(network);
        let (first, last) = range(subnet);
        let (sb, se) = (u64::from(first) + 1, u64::from(last) as i64 - 1);
        if !(sb >= u64::from(a.begin) && se <= i64::from(a.end) && (sb as i64) < se) {
            return Err(IpamError::BadSubnet);
        }
        a.begin = sb as u32;
        a.end = se as u32;
        a.last = first;
        Ok(a)
    }

    /// `RequestIP`: a given address, or the next free one.
    pub fn request(&mut self, ip: Option<Ipv4Addr>) -> Result<Ipv4Addr, IpamError> {
        match ip {
            Some(ip) => self.check(ip),
            None => self.next(),
        }
    }

    fn check(&mut self, ip: Ipv4Addr) -> Result<Ipv4Addr, IpamError> {
        let pos = u32::from(ip);
        // Docker checks "already allocated" before the range.
        if self.allocated.contains(&pos) {
            return Err(IpamError::AlreadyAllocated);
        }
        if pos < self.begin || pos > self.end {
            return Err(IpamError::OutOfRange);
        }
        self.allocated.insert(pos);
        Ok(ip)
    }

    fn next(&mut self) -> Result<Ipv4Addr, IpamError> {
        if self.end < self.begin {
            return Err(IpamError::NoAvailableIps);
        }
        let mut pos = self.last;
        for _ in 0..=(u64::from(self.end - self.begin)) {
            pos = pos.wrapping_add(1);
            if pos > self.end || pos < self.begin {
                pos = self.begin;
            }
            if self.allocated.insert(pos) {
                self.last = pos;
                return Ok(Ipv4Addr::from(pos));
            }
        }
        Err(IpamError::NoAvailableIps)
    }

    /// `ReleaseIP`: frees the address; the next-fit pointer stays where it is.
    pub fn release(&mut self, ip: Ipv4Addr) {
        self.allocated.remove(&u32::from(ip));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Network {
        s.parse().unwrap()
    }
    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn default_bridge_hands_out_from_dot_one_skipping_the_gateway() {
        let mut a = IpAllocator::new(net("172.17.42.1/16"));
        a.request(Some(ip("172.17.42.1"))).unwrap();
        assert_eq!(a.request(None).unwrap(), ip("172.17.0.1"));
        assert_eq!(a.request(None).unwrap(), ip("172.17.0.2"));
    }

    #[test]
    fn gateway_at_the_start_of_the_range_is_skipped() {
        let mut a = IpAllocator::new(net("10.0.0.1/24"));
        a.request(Some(ip("10.0.0.1"))).unwrap();
        assert_eq!(a.request(None).unwrap(), ip("10.0.0.2"));
    }

    #[test]
    fn a_released_address_waits_until_the_pointer_wraps() {
        let mut a = IpAllocator::new(net("10.0.0.0/29")); // .1 ..= .6
        let got: Vec<_> = (0..3).map(|_| a.request(None).unwrap()).collect();
        assert_eq!(got, [ip("10.0.0.1"), ip("10.0.0.2"), ip("10.0.0.3")]);
        a.release(ip("10.0.0.2"));
        assert_eq!(a.request(None).unwrap(), ip("10.0.0.4"));
        assert_eq!(a.request(None).unwrap(), ip("10.0.0.5"));
        assert_eq!(a.request(None).unwrap(), ip("10.0.0.6"));
        // Wraps round to .1 (taken), then .2 (released).
        assert_eq!(a.request(None).unwrap(), ip("10.0.0.2"));
        assert_eq!(a.request(None), Err(IpamError::NoAvailableIps));
    }

    #[test]
    fn requested_addresses_are_checked_taken_first_then_range() {
        let mut a = IpAllocator::with_subnet(net("172.17.42.1/16"), net("172.17.1.0/24")).unwrap();
        assert_eq!(a.request(Some(ip("172.17.42.1"))), Err(IpamError::OutOfRange));
        assert_eq!(a.request(Some(ip("172.17.1.0"))), Err(IpamError::OutOfRange));
        assert_eq!(a.request(Some(ip("172.17.1.255"))), Err(IpamError::OutOfRange));
        assert_eq!(a.request(Some(ip("172.17.1.9"))), Ok(ip("172.17.1.9")));
        assert_eq!(a.request(Some(ip("172.17.1.9"))), Err(IpamError::AlreadyAllocated));
        // A requested address does not move the pointer.
        assert_eq!(a.request(None).unwrap(), ip("172.17.1.1"));
    }

    #[test]
    fn fixed_cidr_must_lie_inside_and_hold_two_addresses() {
        let n = net("172.17.42.1/16");
        assert_eq!(IpAllocator::with_subnet(n, net("10.0.0.0/24")).unwrap_err(), IpamError::BadSubnet);
        assert_eq!(IpAllocator::with_subnet(n, net("172.17.0.0/31")).unwrap_err(), IpamError::BadSubnet);
        assert_eq!(IpAllocator::with_subnet(n, net("172.0.0.0/8")).unwrap_err(), IpamError::BadSubnet);
        let mut a = IpAllocator::with_subnet(n, net("172.17.0.0/30")).unwrap();
        assert_eq!(a.request(None).unwrap(), ip("172.17.0.1"));
        assert_eq!(a.request(None).unwrap(), ip("172.17.0.2"));
        assert_eq!(a.request(None), Err(IpamError::NoAvailableIps));
    }

    #[test]
    fn tiny_networks_have_no_addresses() {
        assert_eq!(IpAllocator::new(net("10.0.0.0/31")).request(None), Err(IpamError::NoAvailableIps));
        assert_eq!(IpAllocator::new(net("10.0.0.1/32")).request(None), Err(IpamError::NoAvailableIps));
    }
}
