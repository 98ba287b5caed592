//! `hash`: weighted rendezvous (highest random weight) hashing of the request's hash input.
//!
//! Every candidate gets a score from a hash of its key and the input; candidates are ordered
//! by score, highest first. The same input therefore always goes to the same server while
//! it is a candidate; when a server goes away only the inputs it had move (each to its own
//! next-highest, which is also its fallback), and a new server takes about 1/(n+1) of them.
//!
//! Weights follow Schindelhauer and Schomaker's "Weighted Distributed Hash Tables" (2005), as
//! used by Ceph and others: with `u` the hash mapped uniformly into (0, 1), the score is
//! `weight / -ln(u)`, and a server wins with probability weight / total weight.
//!
//! The hash is FNV-1a (64-bit) of the key and of the input, mixed by SplitMix64's finalizer:
//! fixed constants and no seed, so every goaround process and every build puts an input on
//! the same server. (Rust's `DefaultHasher` promises no such thing across versions.) A
//! request without an input (no such header) goes round-robin instead.

use std::cmp::Reverse;

use super::smooth::SmoothWeighted;
use super::{weight_of, Candidate};
use crate::fast_hash::{fnv1a, mix64};

/// Weighted rendezvous hashing; see the module docs.
#[derive(Debug, Default)]
pub struct Rendezvous {
    /// For requests without a hash input.
    round_robin: SmoothWeighted,
}

impl Rendezvous {
    pub fn order<C: Candidate>(&self, candidates: &mut [C], input: Option<&[u8]>) {
        let Some(input) = input else {
            self.round_robin.order(candidates);
            return;
        };
        if candidates.len() < 2 {
            return;
        }
        let input = mix64(fnv1a(input));
        // Scores are positive and finite, and for those the IEEE 754 bit patterns sort as the
        // numbers do: an integer key for a cached sort.
        candidates.sort_by_cached_key(|c| Reverse(score(c, input).to_bits()));
    }
}

/// `weight / -ln(u)`, `u` in (0, 1) from the key's and the input's hashes.
fn score<C: Candidate>(c: &C, input: u64) -> f64 {
    let h = mix64(fnv1a(c.key().as_bytes()) ^ input);
    // The top 53 bits, offset by half a step: never 0 or 1, so -ln(u) is finite and > 0.
    let u = ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    weight_of(c) as f64 / -u.ln()
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    const KEYS: usize = 10_000;

    fn pick(h: &Rendezvous, servers: &[Server], input: &str) -> String {
        let mut c = servers.to_vec();
        h.order(&mut c, Some(input.as_bytes()));
        c[0].name.clone()
    }

    fn named(names: &[&str]) -> Vec<Server> {
        names
            .iter()
            .map(|n| Server {
                name: n.to_string(),
                weight: 1,
                in_flight: 0,
            })
            .collect()
    }

    fn picks(h: &Rendezvous, servers: &[Server]) -> Vec<String> {
        (0..KEYS)
            .map(|i| pick(h, servers, &format!("10.0.{}.{}", i / 256, i % 256)))
            .collect()
    }

    /// The placement is part of goaround's behaviour: it must not change between builds.
    #[test]
    fn placement_is_fixed() {
        let h = Rendezvous::default();
        let servers = named(&[
            "http://10.0.0.1:80",
            "http://10.0.0.2:80",
            "http://10.0.0.3:80",
        ]);
        let inputs = (1..=16).map(|i| format!("192.0.2.{i}"));
        let inputs = inputs.chain(["/index.html", "alice", ""].map(String::from));
        // The server each input goes to, by the last digit of its address.
        let got: String = inputs
            .map(|input| {
                let server = pick(&h, &servers, &input);
                server.trim_end_matches(":80").chars().last().unwrap_or('?')
            })
            .collect();
        assert_eq!(got, "3222331312223111322");
    }

    #[test]
    fn same_input_same_server() {
        let h = Rendezvous::default();
        let servers = weighted(&[1, 1, 1, 1]);
        let first = picks(&h, &servers);
        assert_eq!(picks(&h, &servers), first);
        // Whatever order the candidates come in.
        let reversed: Vec<_> = servers.iter().rev().cloned().collect();
        assert_eq!(picks(&h, &reversed), first);
        // And by another balancer (no state).
        assert_eq!(picks(&Rendezvous::default(), &servers), first);
    }

    #[test]
    fn removing_a_server_moves_only_its_inputs() {
        let h = Rendezvous::default();
        let servers = weighted(&[1, 1, 1, 1, 1]);
        let before = picks(&h, &servers);
        let without_c: Vec<_> = servers.iter().filter(|s| s.name != "c").cloned().collect();
        let after = picks(&h, &without_c);
        let mut moved: usize = 0;
        for (b, a) in before.iter().zip(&after) {
            if b == "c" {
                moved += 1;
            } else {
                assert_eq!(a, b);
            }
        }
        // About a fifth were on c.
        assert!(moved.abs_diff(KEYS / 5) < KEYS / 50, "{moved}");
    }

    #[test]
    fn fallback_is_the_next_choice() {
        // The second candidate is where the input goes if the first is removed.
        let h = Rendezvous::default();
        let servers = weighted(&[1, 2, 1, 3]);
        for i in 0..500 {
            let input = format!("k{i}");
            let mut c = servers.clone();
            h.order(&mut c, Some(input.as_bytes()));
            let without_first: Vec<_> = servers
                .iter()
                .filter(|s| s.name != c[0].name)
                .cloned()
                .collect();
            assert_eq!(pick(&h, &without_first, &input), c[1].name);
        }
    }

    #[test]
    fn adding_a_server_moves_about_one_in_n_plus_one() {
        let h = Rendezvous::default();
        let servers = weighted(&[1, 1, 1, 1]);
        let before = picks(&h, &servers);
        let more = weighted(&[1, 1, 1, 1, 1]);
        let after = picks(&h, &more);
        let mut moved: usize = 0;
        for (b, a) in before.iter().zip(&after) {
            if a != b {
                assert_eq!(a, "e", "an input moved, but not to the new server");
                moved += 1;
            }
        }
        assert!(moved.abs_diff(KEYS / 5) < KEYS / 50, "{moved}");
    }

    #[test]
    fn weights_skew_the_share() {
        let h = Rendezvous::default();
        let cases: &[&[u32]] = &[&[1, 1], &[3, 1], &[1, 2, 5], &[0, 1]];
        for weights in cases {
            let servers = weighted(weights);
            let all = picks(&h, &servers).concat();
            let total: u32 = weights.iter().map(|w| (*w).max(1)).sum();
            for (count, w) in counts(&servers, &all).iter().zip(weights.iter()) {
                let want = f64::from((*w).max(1)) / f64::from(total);
                let got = *count as f64 / KEYS as f64;
                assert!((got - want).abs() < 0.02, "{weights:?}: {got} vs {want}");
            }
        }
    }

    #[test]
    fn without_input_round_robin() {
        let h = Rendezvous::default();
        let servers = weighted(&[1, 1, 1]);
        let mut got = String::new();
        for _ in 0..6 {
            let mut c = servers.clone();
            h.order(&mut c, None);
            got.push_str(&c[0].name);
        }
        assert_eq!(got, "abcabc");
    }
}
