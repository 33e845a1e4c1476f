//! libnetwork's port allocator (`portallocator/portallocator.go`): the
//! daemon-wide singleton behind every network's port mappers.
//!
//! One table per host address *string* and protocol, so `0.0.0.0`,
//! `127.0.0.1` and `::` each have their own (the kernel finds the clashes
//! between them when `docker-proxy` binds). A dynamic port is next-fit over
//! the host's `ip_local_port_range`: each range (the dynamic one, or a
//! `-p 8000-8010:80` host range) remembers the last port it gave and goes on
//! after it, wrapping once.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

use crate::scenario::Proto;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortError {
    #[error("Bind for {0}:{1} failed: port is already allocated")]
    AlreadyAllocated(IpAddr, u16),
    #[error("all ports are allocated")]
    AllAllocated,
}

#[derive(Debug, Clone, Default)]
struct PortMap {
    taken: BTreeSet<u16>,
    /// How many of `taken` are in the dynamic range: a full range answers
    /// at once instead of walking every port.
    dynamic_taken: u32,
    /// `portRanges`: the last port each range handed out.
    last: HashMap<(u16, u16), u16>,
}

/// The allocator of one daemon run (in memory: a restarted daemon starts afresh).
#[derive(Debug, Clone)]
pub struct PortAllocator {
    begin: u16,
    end: u16,
    maps: HashMap<(IpAddr, Proto), PortMap>,
}

/// The lowest port in `from..=end` that `taken` lacks (docker1's walk).
fn first_free(taken: &BTreeSet<u16>, from: u16, end: u16) -> Option<u16> {
    crate::plan::portallocator::first_free(taken, from, end, &mut 0)
}

impl PortAllocator {
    /// `newInstance`: the dynamic range is the host's `ip_local_port_range`.
    pub fn new((begin, end): (u16, u16)) -> PortAllocator {
        PortAllocator { begin, end, maps: HashMap::new() }
    }

    /// `RequestPortInRange`: `Some((p, p))` is that port or an error;
    /// `Some((a, b))` the next free port of that range; `None` the next
    /// free dynamic port.
    pub fn request(&mut self, ip: IpAddr, proto: Proto, range: Option<(u16, u16)>) -> Result<u16, PortError> {
        let (dyn_begin, dyn_end) = (self.begin, self.end);
        let map = self.maps.entry((ip, proto)).or_default();
        let (begin, end) = match range {
            Some((a, b)) if a > 0 && a == b => {
                if !map.taken.insert(a) {
                    return Err(PortError::AlreadyAllocated(ip, a));
                }
                if (dyn_begin..=dyn_end).contains(&a) {
                    map.dynamic_taken += 1;
                }
                return Ok(a);
            }
            Some((a, b)) => (a, b),
            None => {
                if map.dynamic_taken > u32::from(dyn_end - dyn_begin) {
                    return Err(PortError::AllAllocated);
                }
                (dyn_begin, dyn_end)
            }
        };
        // `last` starts at the range's end, so the first port is its beginning.
        let last = *map.last.get(&(begin, end)).unwrap_or(&end);
        let after = if last >= end { begin } else { last + 1 };
        let port = first_free(&map.taken, after, end)
            .or_else(|| first_free(&map.taken, begin, end))
            .ok_or(PortError::AllAllocated)?;
        map.taken.insert(port);
        if (dyn_begin..=dyn_end).contains(&port) {
            map.dynamic_taken += 1;
        }
        map.last.insert((begin, end), port);
        Ok(port)
    }

    /// Whether a port is taken (for a dry run).
    pub fn is_taken(&self, ip: IpAddr, proto: Proto, port: u16) -> bool {
        self.maps.get(&(ip, proto)).is_some_and(|m| m.taken.contains(&port))
    }

    /// `ReleasePort`.
    pub fn release(&mut self, ip: IpAddr, proto: Proto, port: u16) {
        if let Some(m) = self.maps.get_mut(&(ip, proto)) {
            if m.taken.remove(&port) && (self.begin..=self.end).contains(&port) {
                m.dynamic_taken -= 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn each_address_has_its_own_table() {
        // Capture 2b: `-p 80 -p 127.0.0.1::80` then `::`: each address starts at the range's beginning.
        let mut a = PortAllocator::new((32768, 60999));
        assert_eq!(a.request(ip("127.0.0.1"), Proto::Tcp, None), Ok(32768));
        assert_eq!(a.request(ip("0.0.0.0"), Proto::Tcp, None), Ok(32768));
        assert_eq!(a.request(ip("::"), Proto::Tcp, None), Ok(32768));
        assert_eq!(a.request(ip("0.0.0.0"), Proto::Tcp, None), Ok(32769));
        assert_eq!(
            a.request(ip("0.0.0.0"), Proto::Tcp, Some((32768, 32768))).unwrap_err().to_string(),
            "Bind for 0.0.0.0:32768 failed: port is already allocated"
        );
    }

    #[test]
    fn dynamic_ports_are_next_fit_and_wrap() {
        let mut a = PortAllocator::new((100, 102));
        let any = ip("0.0.0.0");
        assert_eq!(a.request(any, Proto::Udp, None), Ok(100));
        assert_eq!(a.request(any, Proto::Udp, None), Ok(101));
        a.release(any, Proto::Udp, 100);
        assert_eq!(a.request(any, Proto::Udp, None), Ok(102));
        assert_eq!(a.request(any, Proto::Udp, None), Ok(100));
        assert_eq!(a.request(any, Proto::Udp, None), Err(PortError::AllAllocated));
        // A host range of its own keeps its own pointer.
        assert_eq!(a.request(any, Proto::Udp, Some((8000, 8002))), Ok(8000));
        assert_eq!(a.request(any, Proto::Udp, Some((8000, 8002))), Ok(8001));
    }
}
