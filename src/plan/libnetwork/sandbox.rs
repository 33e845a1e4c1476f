//! Sandboxes: a container's network namespace and its endpoints, kept in
//! libnetwork's order (`sandbox.addEndpoint` with `endpoint.Less`).
//!
//! The order decides which endpoint is the sandbox's gateway endpoint
//! (`getGatewayEndpoint`: the first one with a gateway): it carries the
//! default route and every published port. Internal networks sort last, so
//! it is the first non-internal network, by name; 20.10's bridge endpoints
//! all have a gateway, 28's on an internal network none (bridge `Join`
//! skips `SetGateway`), so a container only on internal networks has no
//! gateway endpoint there.

use std::cmp::Ordering;

/// Where an endpoint sorts: what `endpoint.Less` looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortKey {
    pub internal: bool,
    pub network: String,
    /// The endpoint has a gateway (`hasGatewayOrDefaultRoute`).
    pub gateway: bool,
}

/// `endpoint.Less` for bridge endpoints (equal priorities, none in the
/// gateway network, all with a gateway): non-internal first, then by
/// network name.
pub fn less(i: &SortKey, j: &SortKey) -> bool {
    if i.internal != j.internal {
        return j.internal;
    }
    i.network.cmp(&j.network) == Ordering::Less
}

/// A container's sandbox.
#[derive(Debug, Clone)]
pub struct Sandbox {
    pub container: String,
    /// Endpoint IDs with their sort keys, in libnetwork's order.
    pub endpoints: Vec<(String, SortKey)>,
    /// `eth` + this is the next interface's name (`nextIfIndex`).
    pub next_if: u32,
    /// Legacy links (`ChildEndpoints`, `ParentEndpoints`) as the daemon
    /// computed them when it made the sandbox.
    pub link_children: Vec<String>,
    pub link_parents: Vec<String>,
}

impl Sandbox {
    pub fn new(container: &str) -> Sandbox {
        Sandbox {
            container: container.into(),
            endpoints: vec![],
            next_if: 0,
            link_children: vec![],
            link_parents: vec![],
        }
    }

    /// The next interface name in the sandbox.
    pub fn next_iface(&mut self) -> String {
        let name = format!("eth{}", self.next_if);
        self.next_if += 1;
        name
    }

    /// `addEndpoint`: inserted before the first endpoint it sorts before.
    pub fn add(&mut self, id: &str, key: SortKey) {
        let at = self.endpoints.iter().position(|(_, k)| less(&key, k)).unwrap_or(self.endpoints.len());
        self.endpoints.insert(at, (id.to_string(), key));
    }

    pub fn remove(&mut self, id: &str) {
        self.endpoints.retain(|(e, _)| e != id);
    }

    /// `getGatewayEndpoint` (28 `selectGatewayEndpoint`): the first
    /// endpoint with a gateway.
    pub fn gateway_endpoint(&self) -> Option<&str> {
        self.endpoints.iter().find(|(_, k)| k.gateway).map(|(id, _)| id.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(net: &str, internal: bool) -> SortKey {
        SortKey { internal, network: net.into(), gateway: true }
    }

    #[test]
    fn the_gateway_is_the_first_non_internal_network_by_name() {
        // Capture 15: web on bridge, connect abc: the ports and route move to abc; zzz changes nothing.
        let mut sb = Sandbox::new("web");
        sb.add("e1", key("bridge", false));
        assert_eq!(sb.gateway_endpoint(), Some("e1"));
        sb.add("e2", key("abc", false));
        assert_eq!(sb.gateway_endpoint(), Some("e2"));
        sb.add("e3", key("zzz", false));
        assert_eq!(sb.gateway_endpoint(), Some("e2"));
        sb.add("e0", key("aaa", true));
        assert_eq!(sb.gateway_endpoint(), Some("e2"), "internal networks sort last");
        sb.remove("e2");
        assert_eq!(sb.gateway_endpoint(), Some("e1"));
        assert_eq!((sb.next_iface(), sb.next_iface()), ("eth0".to_string(), "eth1".to_string()));
    }

    #[test]
    fn an_endpoint_without_a_gateway_is_never_the_gateway_endpoint() {
        // 28: internal networks give no gateway.
        let mut sb = Sandbox::new("s1");
        sb.add("e1", SortKey { gateway: false, ..key("vault", true) });
        assert_eq!(sb.gateway_endpoint(), None);
        sb.add("e2", key("zzz", false));
        assert_eq!(sb.gateway_endpoint(), Some("e2"));
    }
}
