//! Lists the simulator looks things up in by name or by port, with an index
//! beside them, so planning stays linear in the size of the scenario (a scan
//! per container made 20,000 containers take seconds).
//!
//! Each keeps its items in order as a plain slice (`Deref`), so iterating,
//! indexing and `iter().any(..)` work as on a `Vec`; changes go through
//! methods that keep the index right.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::net::Ipv4Addr;
use std::ops::{Deref, DerefMut};

use super::firewall::PortMapping;
use super::{ContainerPlan, NodePlan};
use crate::scenario::{Container, Proto};

/// Something with a name that is unique in its list.
pub trait Named {
    fn key(&self) -> &str;
}

impl Named for ContainerPlan {
    fn key(&self) -> &str {
        &self.name
    }
}

impl Named for NodePlan {
    fn key(&self) -> &str {
        &self.name
    }
}

impl Named for Container {
    fn key(&self) -> &str {
        self.name()
    }
}

/// Items in order, found by name in O(1). With two items of one name, the
/// first is the one found, as `iter().find(..)` would.
#[derive(Debug, Clone)]
pub struct ByName<T> {
    items: Vec<T>,
    index: HashMap<String, usize>,
    /// Items hidden behind an earlier one of the same name.
    shadowed: usize,
}

impl<T> Default for ByName<T> {
    fn default() -> Self {
        ByName { items: Vec::new(), index: HashMap::new(), shadowed: 0 }
    }
}

impl<T: Named> ByName<T> {
    pub fn push(&mut self, item: T) {
        match self.index.entry(item.key().to_string()) {
            Entry::Occupied(_) => self.shadowed += 1,
            Entry::Vacant(v) => {
                v.insert(self.items.len());
            }
        }
        self.items.push(item);
    }

    fn reindex(&mut self) {
        self.index.clear();
        self.shadowed = 0;
        for (i, item) in self.items.iter().enumerate() {
            match self.index.entry(item.key().to_string()) {
                Entry::Occupied(_) => self.shadowed += 1,
                Entry::Vacant(v) => {
                    v.insert(i);
                }
            }
        }
    }

    /// Removes the item of that name; O(1) for the last one (a daemon
    /// stopping containers newest first), O(n) at worst.
    pub fn remove(&mut self, name: &str) -> Option<T> {
        let i = self.index.remove(name)?;
        let item = self.items.remove(i);
        for (j, later) in self.items.iter().enumerate().skip(i) {
            if let Some(at) = self.index.get_mut(later.key()) {
                if *at == j + 1 {
                    *at = j;
                }
            }
        }
        if self.shadowed > 0 {
            // A second item of that name may now be the one to find.
            self.reindex();
        }
        Some(item)
    }

    pub fn position(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    pub fn get(&self, name: &str) -> Option<&T> {
        self.position(name).map(|i| &self.items[i])
    }

    pub fn get_mut(&mut self, name: &str) -> Option<&mut T> {
        self.position(name).map(|i| &mut self.items[i])
    }

    pub fn to_vec(&self) -> Vec<T>
    where
        T: Clone,
    {
        self.items.clone()
    }
}

impl<T> Deref for ByName<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.items
    }
}

/// Names are not changed through this: the index would not know.
impl<T> DerefMut for ByName<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        &mut self.items
    }
}

/// Hashes keys by their length and at most 64 of their bytes, so that a
/// key of any length hashes in constant time.
#[derive(Debug, Clone, Default)]
pub struct Sampled(std::collections::hash_map::RandomState);

impl BuildHasher for Sampled {
    type Hasher = SampledHasher;
    fn build_hasher(&self) -> SampledHasher {
        SampledHasher(self.0.build_hasher())
    }
}

pub struct SampledHasher(std::collections::hash_map::DefaultHasher);

impl Hasher for SampledHasher {
    fn write(&mut self, bytes: &[u8]) {
        if bytes.len() <= 64 {
            self.0.write(bytes);
        } else {
            self.0.write_usize(bytes.len());
            self.0.write(&bytes[..32]);
            self.0.write(&bytes[bytes.len() - 32..]);
        }
    }
    fn finish(&self) -> u64 {
        self.0.finish()
    }
}

/// Published ports, with the host addresses bound per protocol and port so
/// that the userland proxy's bind check is a lookup, not a scan.
#[derive(Debug, Clone, Default)]
pub struct Mappings {
    items: Vec<PortMapping>,
    bound: HashMap<(Proto, u16), Vec<Ipv4Addr>>,
    /// How many mappings each container has; a push looks its name up with
    /// a hash of a sample of it (and an `Arc` compares by pointer first).
    per_container: HashMap<std::sync::Arc<str>, usize, Sampled>,
}

impl Mappings {
    pub fn push(&mut self, m: PortMapping) {
        self.bound.entry((m.proto, m.host_port)).or_default().push(m.host_ip);
        *self.per_container.entry(m.container.clone()).or_default() += 1;
        self.items.push(m);
    }

    /// Removes and returns a container's mappings, in order. They are
    /// looked for from the end, where the newest container's are, and the
    /// search stops once all are found: nothing to walk for a container
    /// without any, little for containers stopped newest first.
    pub fn take_container(&mut self, name: &str) -> Vec<PortMapping> {
        let Some(count) = self.per_container.remove(name) else {
            return Vec::new();
        };
        let mut at: Vec<usize> = Vec::with_capacity(count);
        for (i, m) in self.items.iter().enumerate().rev() {
            if at.len() == count {
                break;
            }
            if &*m.container == name {
                at.push(i);
            }
        }
        let Some(&from) = at.last() else { return Vec::new() };
        let mut taken = Vec::with_capacity(count);
        let tail: Vec<PortMapping> = self.items.drain(from..).collect();
        for m in tail {
            if &*m.container == name {
                if let Some(ips) = self.bound.get_mut(&(m.proto, m.host_port)) {
                    if let Some(k) = ips.iter().position(|ip| *ip == m.host_ip) {
                        ips.swap_remove(k);
                    }
                    if ips.is_empty() {
                        self.bound.remove(&(m.proto, m.host_port));
                    }
                }
                taken.push(m);
            } else {
                self.items.push(m);
            }
        }
        taken
    }

    /// Whether a listener on `ip:port` would meet one already bound: the
    /// same address, or either of them the wildcard `0.0.0.0`.
    pub fn clashes(&self, ip: Ipv4Addr, proto: Proto, port: u16) -> bool {
        self.bound
            .get(&(proto, port))
            .is_some_and(|ips| ips.iter().any(|b| b.is_unspecified() || ip.is_unspecified() || *b == ip))
    }

    pub fn to_vec(&self) -> Vec<PortMapping> {
        self.items.clone()
    }
}

impl Deref for Mappings {
    type Target = [PortMapping];
    fn deref(&self) -> &[PortMapping] {
        &self.items
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str) -> NodePlan {
        NodePlan { name: name.into(), links: vec![], routes: vec![], sysctls: vec![] }
    }

    #[test]
    fn lookups_follow_push_and_retain() {
        let mut l: ByName<NodePlan> = ByName::default();
        for n in ["a", "b", "c"] {
            l.push(node(n));
        }
        assert_eq!(l.position("c"), Some(2));
        l.remove("a");
        assert_eq!(l.position("c"), Some(1));
        assert!(l.get("a").is_none());
        l.push(node("a"));
        assert_eq!(l.iter().map(|n| n.name.as_str()).collect::<Vec<_>>(), ["b", "c", "a"]);
        assert_eq!(l.get("a").unwrap().name, "a");
        assert_eq!(l.remove("b").unwrap().name, "b");
        assert_eq!((l.position("c"), l.position("a"), l.len()), (Some(0), Some(1), 2));
        assert!(l.remove("b").is_none());
        // A shadowed second item of a name is found once the first goes.
        let mut n = node("c");
        n.sysctls.push(crate::plan::Sysctl { key: "k".into(), value: "2".into(), write: false });
        l.push(n);
        assert!(l.get("c").unwrap().sysctls.is_empty());
        l.remove("c");
        assert_eq!(l.get("c").unwrap().sysctls.len(), 1);
        assert_eq!(l.position("a"), Some(0));
    }

    #[test]
    fn the_wildcard_clashes_with_every_address_of_its_port() {
        let m = |ip: &str, port| PortMapping {
            container: "c".into(),
            proto: Proto::Tcp,
            host_ip: ip.parse().unwrap(),
            host_port: port,
            container_ip: Ipv4Addr::LOCALHOST,
            container_port: 80,
        };
        let mut ms = Mappings::default();
        ms.push(m("127.0.0.1", 80));
        let any = Ipv4Addr::UNSPECIFIED;
        assert!(ms.clashes(any, Proto::Tcp, 80));
        assert!(ms.clashes(Ipv4Addr::LOCALHOST, Proto::Tcp, 80));
        assert!(!ms.clashes("10.0.0.1".parse().unwrap(), Proto::Tcp, 80));
        assert!(!ms.clashes(any, Proto::Udp, 80));
        ms.push(m("0.0.0.0", 81));
        assert!(ms.clashes("10.0.0.1".parse().unwrap(), Proto::Tcp, 81));
        assert_eq!(ms.take_container("d").len(), 0);
        ms.push(PortMapping { container: "d".into(), ..m("0.0.0.0", 82) });
        assert_eq!(ms.take_container("d").len(), 1);
        assert!(ms.clashes("10.0.0.1".parse().unwrap(), Proto::Tcp, 81));
        assert_eq!(ms.len(), 2);
        assert!(ms.take_container("other").is_empty());
        assert_eq!(ms.take_container("c").len(), 2);
        assert!(ms.is_empty() && !ms.clashes(any, Proto::Tcp, 80) && !ms.clashes(any, Proto::Tcp, 81));
        // Interleaved containers: each takes exactly its own, in order.
        let of = |c: &str, port| PortMapping { container: c.into(), ..m("0.0.0.0", port) };
        for (c, port) in [("a", 1), ("b", 2), ("a", 3), ("c", 4), ("b", 5)] {
            ms.push(of(c, port));
        }
        let ports = |v: &[PortMapping]| v.iter().map(|m| m.host_port).collect::<Vec<_>>();
        assert_eq!(ports(&ms.take_container("a")), [1, 3]);
        assert_eq!(ports(&ms), [2, 4, 5]);
        assert!(!ms.clashes(any, Proto::Tcp, 3) && ms.clashes(any, Proto::Tcp, 4));
        assert_eq!(ports(&ms.take_container("b")), [2, 5]);
        assert_eq!(ports(&ms), [4]);
    }
}
