//! libnetwork's default IPAM driver (`ipam/allocator.go`), local address
//! space only.
//!
//! Pools are keyed as libnetwork keys them: a subnet, and for a sub-range
//! (`--fixed-cidr`, `ip_range`) the subnet with its child range, which holds
//! a reference on its parent. Each subnet has a bitmap of host ordinals with
//! the network and broadcast addresses taken from the start; an address
//! request takes the **lowest** free ordinal (in the range, for a child
//! pool), not the next one after the last: `bitseq.SetAny` without serial
//! allocation. Default pools are handed out round-robin: every pool handed
//! out moves the start of the next search past it (`predefinedStartIndices`),
//! in memory only, so a daemon restart starts from the first pool again.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;

use ipnetwork::Ipv4Network;

/// `ipamapi`'s errors, in libnetwork's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpamError {
    #[error("Pool overlaps with other one on this address space")]
    PoolOverlap,
    #[error(
        "could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network"
    )]
    NoPredefinedPool,
    #[error("No available addresses on this pool")]
    NoAvailableIps,
    #[error("Address already in use")]
    AlreadyAllocated,
    #[error("Requested address is out of range")]
    OutOfRange,
    #[error("Invalid Address SubPool")]
    InvalidSubPool,
}

/// What `RequestPool` hands back: the pool's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PoolId {
    pub subnet: Ipv4Network,
    /// The child range addresses are taken from, if any.
    pub range: Option<Ipv4Network>,
}

/// A subnet's bitmap: the host ordinals in use.
#[derive(Debug, Clone)]
struct Bitmap {
    size: u64,
    taken: BTreeSet<u64>,
    /// Per `start` of [`set_any`](Bitmap::set_any), an ordinal below which
    /// everything from `start` on is taken: the next search resumes there,
    /// so handing out N addresses costs N steps, not N²/2. A release
    /// forgets them all.
    full_to: HashMap<u64, u64>,
    /// Taken ordinals `set_any` stepped over, in all: the work of handing
    /// out addresses, which a test holds linear.
    steps: u64,
}

impl Bitmap {
    fn new(subnet: Ipv4Network) -> Bitmap {
        let size = 1u64 << (32 - u32::from(subnet.prefix()));
        // The network identifier and the broadcast address are never handed out.
        let taken = [0, size - 1].into_iter().collect();
        Bitmap { size, taken, full_to: HashMap::new(), steps: 0 }
    }

    /// `SetAnyInRange(start, end, serial=false)`: the lowest free ordinal.
    fn set_any(&mut self, start: u64, end: u64) -> Option<u64> {
        let mut want = self.full_to.get(&start).copied().unwrap_or(start).max(start);
        if want > end {
            return None;
        }
        for &t in self.taken.range(want..=end) {
            if t != want {
                break;
            }
            want += 1;
            self.steps += 1;
        }
        self.full_to.insert(start, want);
        (want <= end).then(|| {
            self.taken.insert(want);
            self.full_to.insert(start, want + 1);
            want
        })
    }
}

/// One entry of the address space (`PoolData`).
#[derive(Debug, Clone)]
struct PoolData {
    refs: usize,
    /// Only subnets (keys without a child range) have one.
    bitmap: Option<Bitmap>,
}

/// The default IPAM's local address space.
#[derive(Debug, Clone)]
pub struct Ipam {
    predefined: Vec<Ipv4Network>,
    start: usize,
    pools: BTreeMap<PoolId, PoolData>,
}

fn overlaps(a: Ipv4Network, b: Ipv4Network) -> bool {
    a.contains(b.network()) || b.contains(a.network())
}

/// The ordinal of `ip` in `subnet` (`GetHostPartIP`).
fn ordinal(subnet: Ipv4Network, ip: Ipv4Addr) -> u64 {
    u64::from(u32::from(ip) & !u32::from(subnet.mask()))
}

impl Ipam {
    pub fn new(predefined: Vec<Ipv4Network>) -> Ipam {
        Ipam { predefined, start: 0, pools: BTreeMap::new() }
    }

    /// A daemon restart: the round-robin start is forgotten, the pools
    /// (kept in the datastore) are not.
    pub fn restart(&mut self) {
        self.start = 0;
    }

    /// `aSpace.contains`: a subnet in use that overlaps `nw`.
    fn contains(&self, nw: Ipv4Network) -> bool {
        self.pools.keys().any(|k| k.range.is_none() && overlaps(k.subnet, nw))
    }

    /// `getPredefinedPool`: the first default pool from the start index on
    /// that is neither taken nor overlapping, moving the start past it.
    fn predefined_pool(&mut self) -> Result<Ipv4Network, IpamError> {
        let n = self.predefined.len();
        let start = if self.start >= n { 0 } else { self.start };
        for i in 0..n {
            let nw = self.predefined[(start + i) % n];
            if self.pools.contains_key(&PoolId { subnet: nw, range: None }) {
                continue;
            }
            if !self.contains(nw) {
                let next = start + i + 1;
                self.start = if next >= n { 0 } else { next };
                return Ok(nw);
            }
        }
        Err(IpamError::NoPredefinedPool)
    }

    /// `RequestPool`: `preferred` as given (checked against the pools in
    /// use), else the next default pool. `sub` is a range within it.
    pub fn request_pool(
        &mut self,
        preferred: Option<Ipv4Network>,
        sub: Option<Ipv4Network>,
    ) -> Result<PoolId, IpamError> {
        let subnet = match preferred {
            Some(p) => Ipv4Network::new(p.network(), p.prefix()).expect("valid"),
            None => self.predefined_pool()?,
        };
        if let Some(r) = sub {
            if !subnet.contains(r.network()) || r.prefix() < subnet.prefix() {
                return Err(IpamError::InvalidSubPool);
            }
        }
        let id = PoolId { subnet, range: sub };
        if self.pools.contains_key(&id) {
            return Err(IpamError::PoolOverlap);
        }
        let parent = PoolId { subnet, range: None };
        match sub {
            None => {
                if self.contains(subnet) {
                    return Err(IpamError::PoolOverlap);
                }
                self.pools.insert(id, PoolData { refs: 1, bitmap: Some(Bitmap::new(subnet)) });
            }
            // A child range holds a reference on its subnet, which it makes
            // when missing, without an overlap check (as libnetwork does).
            Some(_) => {
                self.pools.insert(id, PoolData { refs: 1, bitmap: None });
                match self.pools.get_mut(&parent) {
                    Some(p) => p.refs += 1,
                    None => {
                        self.pools.insert(parent, PoolData { refs: 1, bitmap: Some(Bitmap::new(subnet)) });
                    }
                }
            }
        }
        Ok(id)
    }

    /// `ReleasePool`: references go, and a subnet nobody refers to goes
    /// with its bitmap.
    pub fn release_pool(&mut self, id: PoolId) {
        let mut keys = vec![id];
        if id.range.is_some() {
            keys.push(PoolId { subnet: id.subnet, range: None });
        }
        for k in keys {
            if let Some(p) = self.pools.get_mut(&k) {
                p.refs -= 1;
                if p.refs == 0 {
                    self.pools.remove(&k);
                }
            }
        }
    }

    fn bitmap(&mut self, id: PoolId) -> Option<&mut Bitmap> {
        self.pools.get_mut(&PoolId { subnet: id.subnet, range: None }).and_then(|p| p.bitmap.as_mut())
    }

    /// `RequestAddress`: `preferred` if it is free, else the lowest free
    /// address of the pool (of its range, for a child pool).
    pub fn request_address(&mut self, id: PoolId, preferred: Option<Ipv4Addr>) -> Result<Ipv4Addr, IpamError> {
        let subnet = id.subnet;
        if let Some(p) = preferred {
            if !subnet.contains(p) {
                return Err(IpamError::OutOfRange);
            }
        }
        let bm = self.bitmap(id).ok_or(IpamError::NoAvailableIps)?;
        if bm.taken.len() as u64 >= bm.size {
            return Err(IpamError::NoAvailableIps);
        }
        let ord = match (preferred, id.range) {
            (Some(p), _) => {
                let o = ordinal(subnet, p);
                if !bm.taken.insert(o) {
                    return Err(IpamError::AlreadyAllocated);
                }
                o
            }
            (None, None) => bm.set_any(0, bm.size - 1).ok_or(IpamError::NoAvailableIps)?,
            (None, Some(r)) => {
                let start = ordinal(subnet, r.network());
                let end = ordinal(subnet, r.broadcast());
                bm.set_any(start, end).ok_or(IpamError::NoAvailableIps)?
            }
        };
        Ok(Ipv4Addr::from(u32::from(subnet.network()) | ord as u32))
    }

    /// `ReleaseAddress`.
    pub fn release_address(&mut self, id: PoolId, ip: Ipv4Addr) {
        let subnet = id.subnet;
        if let Some(bm) = self.bitmap(id) {
            bm.taken.remove(&ordinal(subnet, ip));
            bm.full_to.clear();
        }
    }

    /// Subnets in use, for messages and checks.
    pub fn subnets(&self) -> impl Iterator<Item = Ipv4Network> + '_ {
        self.pools.keys().filter(|k| k.range.is_none()).map(|k| k.subnet)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::libnetwork::version::DOCKER20;

    fn net(s: &str) -> Ipv4Network {
        s.parse().unwrap()
    }

    fn ipam() -> Ipam {
        Ipam::new(DOCKER20.predefined_pools())
    }

    #[test]
    fn addresses_are_the_lowest_free_and_come_back() {
        let mut a = ipam();
        let id = a.request_pool(Some(net("172.17.0.0/16")), None).unwrap();
        let got: Vec<String> = (0..4).map(|_| a.request_address(id, None).unwrap().to_string()).collect();
        assert_eq!(got, ["172.17.0.1", "172.17.0.2", "172.17.0.3", "172.17.0.4"]);
        a.release_address(id, "172.17.0.3".parse().unwrap());
        // Lowest free, not next after the last (capture 5b: s2 removed, s4 gets its address).
        assert_eq!(a.request_address(id, None).unwrap().to_string(), "172.17.0.3");
        assert_eq!(a.request_address(id, None).unwrap().to_string(), "172.17.0.5");
    }

    /// Taken ordinals stepped over while handing out `n` addresses of a
    /// pool, then the last address after one is released.
    fn steps_for(n: u32, subnet: &str, range: Option<&str>) -> (u64, Ipv4Addr) {
        let mut a = ipam();
        let id = a.request_pool(Some(net(subnet)), range.map(net)).unwrap();
        let got: Vec<Ipv4Addr> = (0..n).map(|_| a.request_address(id, None).unwrap()).collect();
        a.release_address(id, got[got.len() / 2]);
        assert_eq!(a.request_address(id, None), Ok(got[got.len() / 2]), "the lowest free again");
        let next = a.request_address(id, None).unwrap();
        (a.bitmap(id).unwrap().steps, next)
    }

    #[test]
    fn handing_out_addresses_is_linear() {
        // Without resuming where the last search ended, 10,000 addresses
        // would step over 50 million taken ones.
        for range in [None, Some("10.0.128.0/17")] {
            let (small, _) = steps_for(1_000, "10.0.0.0/16", range);
            let (big, next) = steps_for(10_000, "10.0.0.0/16", range);
            assert!(big <= 3 * 10_000 + 2 * 10_000 / 2, "{big} steps for 10,000 addresses");
            assert!(big <= 15 * small, "{small} steps for 1,000, {big} for 10,000");
            let first = if range.is_some() { 0x0a00_8000u32 } else { 0x0a00_0001 };
            assert_eq!(next, Ipv4Addr::from(first + 10_000), "after the release, the lowest free: the next one");
        }
    }

    #[test]
    fn a_child_range_starts_at_its_own_network_address() {
        // Capture 8: --fixed-cidr 10.66.0.128/25 hands out 10.66.0.128 first;
        // 5b: an ip_range without gateway makes the range's first address the gateway.
        let mut a = ipam();
        let id = a.request_pool(Some(net("10.66.0.0/24")), Some(net("10.66.0.128/25"))).unwrap();
        assert_eq!(a.request_address(id, Some("10.66.0.1".parse().unwrap())).unwrap().to_string(), "10.66.0.1");
        assert_eq!(a.request_address(id, None).unwrap().to_string(), "10.66.0.128");
        assert_eq!(a.request_address(id, None).unwrap().to_string(), "10.66.0.129");
        // .130 to .254: the subnet's broadcast address is never handed out.
        for _ in 0..125 {
            a.request_address(id, None).unwrap();
        }
        assert_eq!(a.request_address(id, None), Err(IpamError::NoAvailableIps));
    }

    #[test]
    fn requested_addresses_are_checked() {
        let mut a = ipam();
        let id = a.request_pool(Some(net("10.40.0.0/30")), None).unwrap();
        assert_eq!(a.request_address(id, Some("10.41.0.1".parse().unwrap())), Err(IpamError::OutOfRange));
        assert_eq!(a.request_address(id, Some("10.40.0.3".parse().unwrap())), Err(IpamError::AlreadyAllocated));
        a.request_address(id, None).unwrap(); // .1, the gateway
        a.request_address(id, None).unwrap(); // .2
        assert_eq!(a.request_address(id, None), Err(IpamError::NoAvailableIps));
        assert_eq!(a.request_address(id, Some("10.40.0.2".parse().unwrap())), Err(IpamError::NoAvailableIps));
    }

    #[test]
    fn default_pools_go_round_robin() {
        // Capture 5b: with 172.17 taken, n1..n17 get 172.18 … 172.31 and
        // 192.168.0/16/32 by 20; n2 removed, the next network gets 192.168.48.0/20.
        let mut a = ipam();
        a.request_pool(Some(net("172.17.0.0/16")), None).unwrap();
        let ids: Vec<PoolId> = (0..17).map(|_| a.request_pool(None, None).unwrap()).collect();
        assert_eq!(ids[0].subnet.to_string(), "172.18.0.0/16");
        assert_eq!(ids[16].subnet.to_string(), "192.168.32.0/20");
        a.release_pool(ids[1]);
        assert_eq!(a.request_pool(None, None).unwrap().subnet.to_string(), "192.168.48.0/20");
        assert_eq!(a.request_pool(None, None).unwrap().subnet.to_string(), "192.168.64.0/20");
        // After a daemon restart the search starts from the first pool again.
        a.restart();
        assert_eq!(a.request_pool(None, None).unwrap().subnet.to_string(), "172.19.0.0/16");
    }

    #[test]
    fn overlapping_pools_are_refused() {
        let mut a = ipam();
        a.request_pool(Some(net("10.30.0.0/24")), None).unwrap();
        assert_eq!(a.request_pool(Some(net("10.30.0.0/25")), None), Err(IpamError::PoolOverlap));
        assert_eq!(a.request_pool(Some(net("10.30.0.0/24")), None), Err(IpamError::PoolOverlap));
        assert_eq!(a.request_pool(Some(net("10.0.0.0/8")), None), Err(IpamError::PoolOverlap));
    }

    #[test]
    fn the_defaults_run_out() {
        let mut a = ipam();
        for _ in 0..31 {
            a.request_pool(None, None).unwrap();
        }
        assert_eq!(a.request_pool(None, None), Err(IpamError::NoPredefinedPool));
    }
}
