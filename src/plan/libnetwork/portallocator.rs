//! libnetwork's port allocator (`portallocator/portallocator.go`): the
//! daemon-wide singleton behind every network's port mappers.
//!
//! One table per host address *string* and protocol, so `0.0.0.0`,
//! `127.0.0.1` and `::` each have their own (the kernel finds the clashes
//! between them when `docker-proxy` binds). A dynamic port is next-fit over
//! the host's `ip_local_port_range`: each range (the dynamic one, or a
//! `-p 8000-8010:80` host range) remembers the last port it gave and goes on
//! after it, wrapping once.
//!
//! 28's `RequestPortsInRange` asks for one port for several addresses at
//! once ([`PortAllocator::request_ports`]) and checks more tables than it
//! takes the port in: a request with `0.0.0.0` must find the port free in
//! every IPv4 table, one with `127.0.0.1` in `0.0.0.0`'s too.

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

    /// 28's `RequestPortsInRange`: one port, free in the table of each of
    /// `ips` (where it is then taken) and in the tables it must not clash
    /// with: every table of the family of an unspecified address among
    /// `ips`, else that family's unspecified table. A dynamic or range
    /// request starts after the last port of `ips[0]`'s range. For a taken
    /// exact port Docker names the table a Go map's iteration meets first;
    /// bridgelab names the first of `ips` that has it, then the others in
    /// address order.
    pub fn request_ports(&mut self, ips: &[IpAddr], proto: Proto, range: Option<(u16, u16)>) -> Result<u16, PortError> {
        let Some(&first) = ips.first() else { return Err(PortError::AllAllocated) };
        let mut checked: Vec<IpAddr> = Vec::new();
        for ip in ips {
            self.maps.entry((*ip, proto)).or_default();
        }
        let any = |v4: bool| if v4 { IpAddr::from([0u8; 4]) } else { IpAddr::from([0u16; 8]) };
        for v4 in [true, false] {
            if !ips.iter().any(|ip| ip.is_ipv4() == v4) {
                continue;
            }
            if ips.contains(&any(v4)) {
                let mut others: Vec<IpAddr> = self
                    .maps
                    .keys()
                    .filter(|(a, p)| *p == proto && a.is_ipv4() == v4 && !ips.contains(a))
                    .map(|(a, _)| *a)
                    .collect();
                others.sort();
                checked.extend(others);
            } else {
                checked.push(any(v4));
            }
        }
        let taken = |maps: &HashMap<(IpAddr, Proto), PortMap>, ip: &IpAddr, port: u16| {
            maps.get(&(*ip, proto)).is_some_and(|m| m.taken.contains(&port))
        };
        let (dyn_begin, dyn_end) = (self.begin, self.end);
        let (begin, end) = match range {
            Some((a, b)) if a > 0 && a == b => {
                if let Some(ip) = ips.iter().chain(&checked).find(|ip| taken(&self.maps, ip, a)) {
                    return Err(PortError::AlreadyAllocated(*ip, a));
                }
                for ip in ips {
                    self.take(*ip, proto, a);
                }
                return Ok(a);
            }
            Some((a, b)) => (a, b),
            None => {
                // A table whose dynamic range is full has no port for all.
                if ips.iter().chain(&checked).any(|ip| {
                    self.maps.get(&(*ip, proto)).is_some_and(|m| m.dynamic_taken > u32::from(dyn_end - dyn_begin))
                }) {
                    return Err(PortError::AllAllocated);
                }
                (dyn_begin, dyn_end)
            }
        };
        let last = *self.maps[&(first, proto)].last.get(&(begin, end)).unwrap_or(&end);
        let after = if last >= end { begin } else { last + 1 };
        let all: Vec<IpAddr> = ips.iter().chain(&checked).copied().collect();
        let free_in_all = |maps: &HashMap<(IpAddr, Proto), PortMap>, from: u16| -> Option<u16> {
            // Leapfrog: the lowest port from `from` that every table lacks.
            let mut want = from;
            loop {
                let mut moved = false;
                for ip in &all {
                    if let Some(m) = maps.get(&(*ip, proto)) {
                        let p = first_free(&m.taken, want, end)?;
                        if p != want {
                            want = p;
                            moved = true;
                        }
                    }
                }
                if !moved {
                    return Some(want);
                }
            }
        };
        let port =
            free_in_all(&self.maps, after).or_else(|| free_in_all(&self.maps, begin)).ok_or(PortError::AllAllocated)?;
        for ip in ips {
            self.take(*ip, proto, port);
            self.maps.get_mut(&(*ip, proto)).expect("made above").last.insert((begin, end), port);
        }
        Ok(port)
    }

    /// Marks a port taken in one table.
    fn take(&mut self, ip: IpAddr, proto: Proto, port: u16) {
        let (b, e) = (self.begin, self.end);
        let m = self.maps.entry((ip, proto)).or_default();
        if m.taken.insert(port) && (b..=e).contains(&port) {
            m.dynamic_taken += 1;
        }
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

    #[test]
    fn docker28_one_port_for_a_run_checked_against_the_tables_it_meets() {
        // Capture c9 (dockerd 28.5.2): d1 `-p 80` → 32768 on 0.0.0.0 and ::;
        // d2 `-p 80 -p 81/udp` → tcp 32769, udp 32768; d3 `-p 127.0.0.1::80`
        // → 32770: 127.0.0.1's own range starts afresh, but 0.0.0.0's ports
        // count.
        let mut a = PortAllocator::new((32768, 60999));
        let any = [ip("0.0.0.0"), ip("::")];
        assert_eq!(a.request_ports(&any, Proto::Tcp, None), Ok(32768));
        assert_eq!(a.request_ports(&any, Proto::Tcp, None), Ok(32769));
        assert_eq!(a.request_ports(&any, Proto::Udp, None), Ok(32768));
        assert_eq!(a.request_ports(&[ip("127.0.0.1")], Proto::Tcp, None), Ok(32770));
        // `-p 80 -p 127.0.0.1::80`: one port for all three tables.
        assert_eq!(a.request_ports(&[ip("0.0.0.0"), ip("::"), ip("127.0.0.1")], Proto::Tcp, None), Ok(32771));
        assert!(a.is_taken(ip("127.0.0.1"), Proto::Tcp, 32771) && a.is_taken(ip("::"), Proto::Tcp, 32771));
    }

    #[test]
    fn docker28_an_exact_port_names_the_table_that_holds_it() {
        let mut a = PortAllocator::new((32768, 60999));
        let any = [ip("0.0.0.0"), ip("::")];
        assert_eq!(a.request_ports(&[ip("127.0.0.1")], Proto::Tcp, Some((8080, 8080))), Ok(8080));
        // 8080 on every address meets 127.0.0.1's table (a scenario, EQUAL to 28.5.2).
        assert_eq!(
            a.request_ports(&any, Proto::Tcp, Some((8080, 8080))).unwrap_err().to_string(),
            "Bind for 127.0.0.1:8080 failed: port is already allocated"
        );
        // Another specific address does not; nor does the other protocol.
        assert_eq!(a.request_ports(&[ip("127.0.0.2")], Proto::Tcp, Some((8080, 8080))), Ok(8080));
        assert_eq!(a.request_ports(&any, Proto::Udp, Some((8080, 8080))), Ok(8080));
        // A specific address meets 0.0.0.0's table; a failed request takes nothing.
        assert_eq!(a.request_ports(&any, Proto::Tcp, Some((9090, 9090))), Ok(9090));
        assert_eq!(
            a.request_ports(&[ip("127.0.0.3")], Proto::Tcp, Some((9090, 9090))),
            Err(PortError::AlreadyAllocated(ip("0.0.0.0"), 9090))
        );
        assert!(!a.is_taken(ip("127.0.0.3"), Proto::Tcp, 9090));
        // An IPv6-only request meets only `::`'s table.
        a.release(ip("0.0.0.0"), Proto::Tcp, 9090);
        assert_eq!(
            a.request_ports(&[ip("::")], Proto::Tcp, Some((9090, 9090))),
            Err(PortError::AlreadyAllocated(ip("::"), 9090))
        );
        assert_eq!(a.request_ports(&[ip("0.0.0.0")], Proto::Tcp, Some((9090, 9090))), Ok(9090));
    }

    #[test]
    fn docker28_a_range_skips_ports_any_table_holds_and_wraps() {
        let mut a = PortAllocator::new((100, 199));
        assert_eq!(a.request_ports(&[ip("127.0.0.1")], Proto::Tcp, Some((8000, 8002))), Ok(8000));
        assert_eq!(a.request_ports(&[ip("0.0.0.0")], Proto::Tcp, Some((8001, 8001))), Ok(8001));
        // 0.0.0.0's range pointer starts at 8000, which 127.0.0.1 holds; 8001 is its own.
        assert_eq!(a.request_ports(&[ip("0.0.0.0")], Proto::Tcp, Some((8000, 8002))), Ok(8002));
        a.release(ip("127.0.0.1"), Proto::Tcp, 8000);
        assert_eq!(a.request_ports(&[ip("0.0.0.0")], Proto::Tcp, Some((8000, 8002))), Ok(8000));
        assert_eq!(a.request_ports(&[ip("0.0.0.0")], Proto::Tcp, Some((8000, 8002))), Err(PortError::AllAllocated));
    }
}
