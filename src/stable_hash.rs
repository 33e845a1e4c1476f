//! A stable hash for derived names, IDs and MACs, so runs repeat exactly.

const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// 64-bit FNV-1a over the parts, each followed by a separator byte.
/// Stable across runs, versions and machines; not for security.
/// A plain loop, not iterator adapters: rule indexes hash every rule a
/// start adds or a rollback removes, and a debug build pays for each adapter.
pub(crate) fn fnv1a(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for &b in p.as_bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(FNV_PRIME);
        }
        h ^= 0xff;
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

#[cfg(test)]
mod tests {
    #[test]
    fn values_do_not_change() {
        // Derived MACs, veth names and namespace names repeat across
        // versions: FNV-1a over "veth\xffweb\xff0\xff" and so on.
        assert_eq!(super::fnv1a(&[]), 0xcbf2_9ce4_8422_2325);
        assert_eq!(super::fnv1a(&["veth", "web", "0"]), 0xe64b_f1a3_9a17_56f3);
        assert_eq!(super::fnv1a(&["bridge-mac", "default", "docker0"]), 0x549e_962f_7e51_b848);
    }
}
