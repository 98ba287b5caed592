//! `round_robin`: nginx's smooth weighted round-robin (`ngx_http_upstream_get_peer`).
//!
//! Each server has a current weight, kept between requests. For a request, every candidate's
//! current weight grows by its weight; the largest (the first listed, on a tie) is picked and
//! loses the total of the candidates' weights. Weights 5, 1, 1 give `a a b a c a a`, spread
//! out rather than `a a a a a b c`; weights all 1 give plain round-robin. The other
//! candidates follow the pick in list order, wrapping around.
//!
//! Current weights are keyed by [`Candidate::key`], so the list may change between requests:
//! a server missing from a call (down, or busy elsewhere) is simply not counted in it and
//! keeps its current weight for when it is back, as in nginx; a new server starts at 0.
//! Keys not seen for a while are dropped once there are many more of them than candidates.
//!
//! Equal weights (every `-b` backend, and most upstreams) make this plain round-robin, which
//! needs no current weights at all: that case is one atomic increment, no lock.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use super::{weight_of, Candidate};

/// Smooth weighted round-robin; see the module docs.
#[derive(Debug, Default)]
pub struct SmoothWeighted {
    /// Current weight by candidate key.
    current: Mutex<HashMap<String, i64>>,
    /// Where plain round-robin (equal weights) starts next.
    next: AtomicUsize,
}

/// Keys beyond `SLACK` + twice the candidates are pruned to the candidates' own.
const SLACK: usize = 16;

impl SmoothWeighted {
    pub fn order<C: Candidate>(&self, candidates: &mut [C]) {
        if candidates.is_empty() {
            return;
        }
        let first = weight_of(&candidates[0]);
        if candidates.iter().all(|c| weight_of(c) == first) {
            let start = self.next.fetch_add(1, Ordering::Relaxed) % candidates.len();
            candidates.rotate_left(start);
            return;
        }
        // A panic cannot leave the map half-updated in a way that matters: at worst one
        // server is owed a request or two.
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if current.len() > SLACK + 2 * candidates.len() {
            current.retain(|key, _| candidates.iter().any(|c| c.key() == key));
        }
        let mut total: i64 = 0;
        let mut best = 0;
        let mut best_weight = i64::MIN;
        for (i, c) in candidates.iter().enumerate() {
            // A u32 weight, summed over fewer than 2^31 candidates: no i64 overflow.
            let weight = weight_of(c) as i64;
            total += weight;
            let cw = match current.get_mut(c.key()) {
                Some(cw) => cw,
                None => current.entry(c.key().to_string()).or_insert(0),
            };
            *cw += weight;
            if *cw > best_weight {
                best = i;
                best_weight = *cw;
            }
        }
        if let Some(cw) = current.get_mut(candidates[best].key()) {
            *cw -= total;
        }
        drop(current);
        candidates.rotate_left(best);
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn nginx_sequences() {
        // Worked by hand from nginx's algorithm; one full cycle is the sum of the weights.
        let cases: &[(&[u32], &str)] = &[
            (&[5, 1, 1], "aabacaa"),
            (&[1, 1, 1], "abcabc"),
            (&[1], "aaa"),
            (&[2, 1], "abaaba"),
            (&[3, 2], "ababaababa"),
            (&[0, 1], "abab"),
            (&[4, 2, 1], "abacabaabacaba"),
        ];
        for (weights, want) in cases {
            let rr = SmoothWeighted::default();
            let servers = weighted(weights);
            let got = firsts(&servers, want.len(), |c| rr.order(c));
            assert_eq!(got, *want, "{weights:?}");
        }
    }

    #[test]
    fn fallbacks_follow_the_pick() {
        let rr = SmoothWeighted::default();
        let servers = weighted(&[1, 1, 1]);
        let orders: Vec<String> = (0..3)
            .map(|_| {
                let mut c = servers.clone();
                rr.order(&mut c);
                c.iter().map(|s| s.name.as_str()).collect()
            })
            .collect();
        assert_eq!(orders, ["abc", "bca", "cab"]);
    }

    #[test]
    fn proportions_over_many_requests() {
        let rr = SmoothWeighted::default();
        let servers = weighted(&[5, 3, 1, 1]);
        let picks = firsts(&servers, 1000, |c| rr.order(c));
        assert_eq!(counts(&servers, &picks), [500, 300, 100, 100]);
    }

    /// A server that goes down is skipped; the others keep their proportions, and when it is
    /// back it gets its share again.
    #[test]
    fn a_server_going_down_is_skipped() {
        let rr = SmoothWeighted::default();
        let all = weighted(&[5, 1, 1]);
        let picks = firsts(&all, 5, |c| rr.order(c));
        assert_eq!(picks, "aabac");
        let without_a = vec![all[1].clone(), all[2].clone()];
        let picks = firsts(&without_a, 100, |c| rr.order(c));
        assert!(!picks.contains('a'));
        assert_eq!(counts(&without_a, &picks), [50, 50]);
        let picks = firsts(&all, 700, |c| rr.order(c));
        let shares = counts(&all, &picks);
        // a's current weight was kept while it was away: at most one cycle of difference.
        for (got, want) in shares.iter().zip([500, 100, 100]) {
            assert!(got.abs_diff(want) <= 7, "{shares:?}");
        }
        // A server removed for good and a new one: the new one starts from zero.
        let mut changed = weighted(&[5, 1]);
        changed[1].name = "z".into();
        let picks = firsts(&changed, 600, |c| rr.order(c));
        let shares = counts(&changed, &picks);
        assert!(
            shares[0].abs_diff(500) <= 7 && shares[1].abs_diff(100) <= 7,
            "{shares:?}"
        );
    }

    #[test]
    fn candidates_in_another_order() {
        // The state follows the key, not the position.
        let rr = SmoothWeighted::default();
        let servers = weighted(&[2, 1]);
        let reversed: Vec<_> = servers.iter().rev().cloned().collect();
        let mut picks = String::new();
        for i in 0..6 {
            let mut c = if i % 2 == 0 {
                servers.clone()
            } else {
                reversed.clone()
            };
            rr.order(&mut c);
            picks.push_str(&c[0].name);
        }
        assert_eq!(counts(&servers, &picks), [4, 2]);
    }

    #[test]
    fn forgotten_keys_are_pruned() {
        let rr = SmoothWeighted::default();
        for i in 0..100 {
            let mut c = weighted(&[1]);
            c[0].name = format!("s{i}");
            rr.order(&mut c);
        }
        let len = rr.current.lock().unwrap().len();
        assert!(len <= SLACK + 3, "{len}");
    }
}
