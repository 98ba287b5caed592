//! Fixed, fast hash functions for the request path's small maps and for placement.
//!
//! The maps on the request path are keyed by ids goaround hands out (backend ids, wait
//! tokens) and by backend URLs the operator wrote: no key comes from a client, so the
//! flooding resistance of std's SipHash buys nothing there, while it costs several times as
//! much per lookup. The functions are fixed (no random seed), which the hash balancer also
//! needs: a placement must not change between builds or restarts.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A `HashMap` with [`FastHasher`]: only for keys clients cannot choose.
pub(crate) type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

/// SplitMix64's output function (Steele, Lea, Flood 2014): a bijection of u64 whose every
/// output bit depends on every input bit. Fixed constants: the same on every build.
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a, 64-bit (Fowler, Noll, Vo).
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    fnv1a_from(FNV_OFFSET_BASIS, bytes)
}

fn fnv1a_from(state: u64, bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(state, |h, b| (h ^ u64::from(*b)).wrapping_mul(FNV_PRIME))
}

/// FNV-1a over byte strings, SplitMix64's mix over integers (so that sequential ids spread
/// over a table's buckets).
pub(crate) struct FastHasher(u64);

impl Default for FastHasher {
    fn default() -> FastHasher {
        FastHasher(FNV_OFFSET_BASIS)
    }
}

impl Hasher for FastHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0 = fnv1a_from(self.0, bytes);
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = mix64(self.0 ^ n);
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::{BuildHasher, BuildHasherDefault};

    #[test]
    fn mix64_is_splitmix64() {
        // SplitMix64 seeded with 0: its first output.
        assert_eq!(mix64(0x9e37_79b9_7f4a_7c15), 0xe220_a839_7b1d_cdaf);
        assert_eq!(mix64(0), 0);
    }

    #[test]
    fn fnv1a_vectors() {
        // From the FNV reference test suite.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn sequential_ids_spread() {
        let build = BuildHasherDefault::<FastHasher>::default();
        let low_bits: std::collections::HashSet<u64> =
            (1..=64u64).map(|id| build.hash_one(id) & 63).collect();
        assert!(low_bits.len() > 32, "{}", low_bits.len());
    }

    #[test]
    fn maps_work() {
        let mut map: FastMap<&str, u32> = FastMap::default();
        map.insert("http://a:1", 1);
        map.insert("http://b:2", 2);
        assert_eq!(map.get("http://a:1"), Some(&1));
        assert_eq!(map.get("http://c:3"), None);
    }
}
