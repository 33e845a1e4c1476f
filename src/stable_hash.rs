//! A stable hash for derived names, IDs and MACs, so runs repeat exactly.

/// 64-bit FNV-1a over the parts, each followed by a separator byte.
/// Stable across runs, versions and machines; not for security.
pub(crate) fn fnv1a(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes().chain([0xff]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}
