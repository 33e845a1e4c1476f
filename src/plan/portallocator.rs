//! Docker 1.6.2's port allocator (`daemon/networkdriver/portallocator`).
//!
//! One pool per host IP and protocol (so `0.0.0.0:80` and `127.0.0.1:80` do
//! not conflict here; the userland proxy's bind finds that out). Dynamic
//! ports are next-fit over the host's `ip_local_port_range`, starting at its
//! beginning; a released port is only reused once the pointer comes round.
//!
//! Every request costs O(log n) plus the run of taken ports the pointer
//! skips, which it then leaves behind: a full pool answers at once from its
//! count, so publishing all 65,535 ports plans in linear time.

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;

use crate::scenario::Proto;

/// The kernel's `net.ipv4.ip_local_port_range` in a new network namespace,
/// which is what Docker reads on the simulated host.
pub const NETNS_EPHEMERAL_RANGE: (u16, u16) = (32768, 60999);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortError {
    #[error("Bind for {0}:{1} failed: port is already allocated")]
    AlreadyAllocated(Ipv4Addr, u16),
    #[error("all ports are allocated")]
    AllAllocated,
}

#[derive(Debug, Clone)]
struct Pool {
    taken: BTreeSet<u16>,
    /// How many of `taken` lie in the dynamic range.
    dynamic_taken: u32,
    last: u16,
}

#[derive(Debug, Clone)]
pub struct PortAllocator {
    begin: u16,
    end: u16,
    pools: HashMap<(Ipv4Addr, Proto), Pool>,
    /// Taken ports the next-fit search has stepped over, in all: the work
    /// beyond O(log n) per request, which tests check stays linear.
    stepped: u64,
}

impl PortAllocator {
    pub fn new((begin, end): (u16, u16)) -> PortAllocator {
        PortAllocator { begin, end, pools: HashMap::new(), stepped: 0 }
    }

    /// `RequestPort`: a given port, or (`None`) the next free dynamic one.
    pub fn request(&mut self, ip: Ipv4Addr, proto: Proto, port: Option<u16>) -> Result<u16, PortError> {
        let (begin, end) = (self.begin, self.end);
        // `last` starts at the end, so the first dynamic port is `begin`.
        let pool = self.pools.entry((ip, proto)).or_insert_with(|| Pool {
            taken: BTreeSet::new(),
            dynamic_taken: 0,
            last: end,
        });
        let port = match port {
            Some(p) if p > 0 => {
                if pool.taken.contains(&p) {
                    return Err(PortError::AlreadyAllocated(ip, p));
                }
                p
            }
            _ => {
                if pool.dynamic_taken > u32::from(end - begin) {
                    return Err(PortError::AllAllocated);
                }
                // Next fit: the first free port after `last`, wrapping once.
                let after = if pool.last >= end { begin } else { pool.last + 1 };
                let stepped = &mut self.stepped;
                let p = first_free(&pool.taken, after, end, stepped)
                    .or_else(|| first_free(&pool.taken, begin, end, stepped))
                    .expect("a free port, by the count");
                pool.last = p;
                p
            }
        };
        pool.taken.insert(port);
        if (begin..=end).contains(&port) {
            pool.dynamic_taken += 1;
        }
        Ok(port)
    }

    /// See `stepped`.
    pub fn stepped(&self) -> u64 {
        self.stepped
    }

    pub fn release(&mut self, ip: Ipv4Addr, proto: Proto, port: u16) {
        if let Some(pool) = self.pools.get_mut(&(ip, proto)) {
            if pool.taken.remove(&port) && (self.begin..=self.end).contains(&port) {
                pool.dynamic_taken -= 1;
            }
        }
    }
}

/// The lowest port in `from..=end` that is not taken; `stepped` counts
/// the taken ports walked over.
pub(crate) fn first_free(taken: &BTreeSet<u16>, from: u16, end: u16, stepped: &mut u64) -> Option<u16> {
    let mut want = from;
    for &t in taken.range(from..=end) {
        if t != want {
            break;
        }
        *stepped += 1;
        if want == end {
            return None;
        }
        want += 1;
    }
    Some(want)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANY: Ipv4Addr = Ipv4Addr::UNSPECIFIED;

    #[test]
    fn dynamic_ports_start_at_the_range_and_go_next_fit() {
        let mut a = PortAllocator::new((40000, 40002));
        assert_eq!(a.request(ANY, Proto::Tcp, None), Ok(40000));
        assert_eq!(a.request(ANY, Proto::Tcp, None), Ok(40001));
        a.release(ANY, Proto::Tcp, 40000);
        assert_eq!(a.request(ANY, Proto::Tcp, None), Ok(40002));
        assert_eq!(a.request(ANY, Proto::Tcp, None), Ok(40000));
        assert_eq!(a.request(ANY, Proto::Tcp, None), Err(PortError::AllAllocated));
        // Another protocol or address is another pool.
        assert_eq!(a.request(ANY, Proto::Udp, None), Ok(40000));
        assert_eq!(a.request(Ipv4Addr::LOCALHOST, Proto::Tcp, None), Ok(40000));
    }

    #[test]
    fn a_full_range_answers_at_once_and_a_search_steps_over_each_port_about_once() {
        let mut a = PortAllocator::new(NETNS_EPHEMERAL_RANGE);
        let size = u32::from(NETNS_EPHEMERAL_RANGE.1 - NETNS_EPHEMERAL_RANGE.0) + 1;
        for i in 0..size {
            assert_eq!(a.request(ANY, Proto::Tcp, None), Ok(NETNS_EPHEMERAL_RANGE.0 + i as u16));
        }
        // Publishing 1-65535 asks 37,303 more: each is answered from the
        // count (before, each walked all 28,232 taken ports).
        for _ in 0..37_303 {
            assert_eq!(a.request(ANY, Proto::Tcp, None), Err(PortError::AllAllocated));
        }
        assert_eq!(a.stepped(), 0);
        // Ports freed all over the range are found again by one sweep of
        // the pointer: each taken port is stepped over about once.
        let freed: Vec<u16> = (NETNS_EPHEMERAL_RANGE.0..=NETNS_EPHEMERAL_RANGE.1).step_by(7).collect();
        for p in &freed {
            a.release(ANY, Proto::Tcp, *p);
        }
        for p in &freed {
            assert_eq!(a.request(ANY, Proto::Tcp, None), Ok(*p));
        }
        assert!(a.stepped() <= u64::from(size), "{} steps for {} requests", a.stepped(), freed.len());
    }

    #[test]
    fn a_port_taken_twice_is_dockers_error() {
        let mut a = PortAllocator::new(NETNS_EPHEMERAL_RANGE);
        assert_eq!(a.request(ANY, Proto::Tcp, Some(8080)), Ok(8080));
        let e = a.request(ANY, Proto::Tcp, Some(8080)).unwrap_err();
        assert_eq!(e.to_string(), "Bind for 0.0.0.0:8080 failed: port is already allocated");
        assert_eq!(a.request(Ipv4Addr::LOCALHOST, Proto::Tcp, Some(8080)), Ok(8080));
    }
}
