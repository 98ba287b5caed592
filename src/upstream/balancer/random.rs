//! `random`: the first candidate drawn with probability weight / total weight.
//!
//! The generator is SplitMix64 over one atomic counter: lock-free, and good enough to spread
//! requests (this is not cryptography). Each balancer is seeded from the clock and a process
//! counter, so two upstreams, or two runs, do not draw in step. The other candidates follow
//! the pick in list order, wrapping around.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use super::{weight_of, Candidate, GOLDEN_GAMMA};
use crate::fast_hash::mix64;

/// Weighted random choice; see the module docs.
#[derive(Debug)]
pub struct WeightedRandom {
    state: AtomicU64,
}

impl Default for WeightedRandom {
    fn default() -> WeightedRandom {
        WeightedRandom::new()
    }
}

impl WeightedRandom {
    /// Seeded from the clock and a process-wide counter.
    pub fn new() -> WeightedRandom {
        static INSTANCES: AtomicU64 = AtomicU64::new(0);
        // Before 1970 the clock is wrong, not the seed: any value will do.
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let instance = INSTANCES.fetch_add(1, Ordering::Relaxed);
        WeightedRandom::with_seed(nanos ^ mix64(instance.wrapping_add(GOLDEN_GAMMA)))
    }

    /// A generator that draws the same sequence for the same seed (for tests).
    pub fn with_seed(seed: u64) -> WeightedRandom {
        WeightedRandom {
            state: AtomicU64::new(seed),
        }
    }

    /// The next number of SplitMix64.
    fn next(&self) -> u64 {
        let state = self.state.fetch_add(GOLDEN_GAMMA, Ordering::Relaxed);
        mix64(state.wrapping_add(GOLDEN_GAMMA))
    }

    pub fn order<C: Candidate>(&self, candidates: &mut [C]) {
        if candidates.len() < 2 {
            return;
        }
        let total: u64 = candidates.iter().map(weight_of).sum();
        // Lemire's multiply-shift: a number in 0..total without a division.
        let mut ticket = ((u128::from(self.next()) * u128::from(total)) >> 64) as u64;
        let mut pick = candidates.len() - 1;
        for (i, c) in candidates.iter().enumerate() {
            let weight = weight_of(c);
            if ticket < weight {
                pick = i;
                break;
            }
            ticket -= weight;
        }
        candidates.rotate_left(pick);
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn splitmix64_sequence() {
        // The reference SplitMix64 seeded with 1234567: its first outputs.
        let g = WeightedRandom::with_seed(1234567);
        let got: Vec<u64> = (0..3).map(|_| g.next()).collect();
        assert_eq!(
            got,
            [
                6457827717110365317,
                3203168211198807973,
                9817491932198370423
            ]
        );
    }

    #[test]
    fn proportions_follow_weights() {
        const DRAWS: usize = 100_000;
        let cases: &[&[u32]] = &[&[1, 1], &[5, 1, 1], &[1, 2, 3, 4], &[0, 1, 8]];
        for weights in cases {
            let g = WeightedRandom::with_seed(42);
            let servers = weighted(weights);
            let picks = firsts(&servers, DRAWS, |c| g.order(c));
            let total: u32 = weights.iter().map(|w| (*w).max(1)).sum();
            for (count, w) in counts(&servers, &picks).iter().zip(weights.iter()) {
                let want = f64::from((*w).max(1)) / f64::from(total);
                let got = *count as f64 / DRAWS as f64;
                assert!((got - want).abs() < 0.01, "{weights:?}: {got} vs {want}");
            }
        }
    }

    #[test]
    fn fallbacks_follow_the_pick() {
        let g = WeightedRandom::with_seed(7);
        for _ in 0..50 {
            let mut c = weighted(&[1, 1, 1, 1]);
            g.order(&mut c);
            let names: String = c.iter().map(|s| s.name.as_str()).collect();
            assert!("abcdabcd".contains(&names), "{names}");
        }
    }

    #[test]
    fn unseeded_generators_differ() {
        let a = WeightedRandom::new();
        let b = WeightedRandom::new();
        let draws = |g: &WeightedRandom| (0..4).map(|_| g.next()).collect::<Vec<_>>();
        assert_ne!(draws(&a), draws(&b));
    }
}
