//! `least_conn`: the fewest requests in flight relative to weight first, as nginx's
//! `least_conn` and GoLancer's active-connection tracking suggest.
//!
//! Load is `in_flight / weight`, compared without floats: `a` is less loaded than `b` when
//! `a.in_flight * b.weight < b.in_flight * a.weight`. Candidates are sorted by load (the
//! sort is stable, so equal loads keep list order) and the ones tied for least take turns
//! in front, round-robin, so an idle upstream is not all sent to its first server.

use std::cmp::Ordering as CmpOrdering;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::{weight_of, Candidate};

/// Least requests in flight per weight; see the module docs.
#[derive(Debug, Default)]
pub struct LeastConn {
    /// Turns among candidates tied for least load.
    next: AtomicUsize,
}

impl LeastConn {
    pub fn order<C: Candidate>(&self, candidates: &mut [C]) {
        if candidates.len() < 2 {
            return;
        }
        candidates.sort_by(load);
        let tied = candidates
            .iter()
            .take_while(|c| load(*c, &candidates[0]) == CmpOrdering::Equal)
            .count();
        if tied > 1 {
            let turn = self.next.fetch_add(1, Ordering::Relaxed) % tied;
            candidates[..tied].rotate_left(turn);
        }
    }
}

/// `a`'s load against `b`'s: in_flight / weight, cross-multiplied (u128: no overflow).
fn load<C: Candidate>(a: &C, b: &C) -> CmpOrdering {
    let left = a.in_flight() as u128 * u128::from(weight_of(b));
    let right = b.in_flight() as u128 * u128::from(weight_of(a));
    left.cmp(&right)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    fn servers(spec: &[(u32, usize)]) -> Vec<Server> {
        let mut s = weighted(&spec.iter().map(|(w, _)| *w).collect::<Vec<_>>());
        for (server, (_, in_flight)) in s.iter_mut().zip(spec) {
            server.in_flight = *in_flight;
        }
        s
    }

    fn order(lc: &LeastConn, spec: &[(u32, usize)]) -> String {
        let mut c = servers(spec);
        lc.order(&mut c);
        c.iter().map(|s| s.name.as_str()).collect()
    }

    #[test]
    fn least_loaded_first() {
        // (weight, in flight) per server a, b, c...; the whole order.
        let cases: &[(&[(u32, usize)], &str)] = &[
            (&[(1, 3), (1, 1), (1, 2)], "bca"),
            (&[(1, 0), (1, 5)], "ab"),
            (&[(1, 5), (1, 0)], "ba"),
            // Relative to weight: 4/4 = 1 beats 2/1 = 2; 0/1 beats both.
            (&[(1, 2), (4, 4)], "ba"),
            (&[(1, 2), (4, 4), (1, 0)], "cba"),
            // 3/3 = 1/1: a tie, list order.
            (&[(3, 3), (1, 1), (2, 5)], "abc"),
            // Weight 0 counts as 1.
            (&[(0, 2), (1, 1)], "ba"),
            // No overflow.
            (&[(u32::MAX, usize::MAX), (1, usize::MAX / 2)], "ab"),
        ];
        for (spec, want) in cases {
            // A fresh balancer: ties start at the first.
            assert_eq!(order(&LeastConn::default(), spec), *want, "{spec:?}");
        }
    }

    #[test]
    fn ties_take_turns() {
        let lc = LeastConn::default();
        let spec = &[(1, 0), (1, 2), (1, 0), (1, 0)];
        let got: Vec<String> = (0..4).map(|_| order(&lc, spec)).collect();
        // a, c, d are tied at 0 and rotate; b, the busiest, stays last.
        assert_eq!(got, ["acdb", "cdab", "dacb", "acdb"]);
        // All idle: plain round-robin.
        let lc = LeastConn::default();
        let servers = weighted(&[1, 1, 1]);
        assert_eq!(firsts(&servers, 6, |c| lc.order(c)), "abcabc");
    }

    /// Requests that stay in flight spread by weight.
    #[test]
    fn long_requests_spread_by_weight() {
        let lc = LeastConn::default();
        let mut servers = weighted(&[3, 1]);
        for _ in 0..40 {
            let mut c = servers.clone();
            lc.order(&mut c);
            let first = servers.iter_mut().find(|s| s.name == c[0].name).unwrap();
            first.in_flight += 1;
        }
        let in_flight: Vec<usize> = servers.iter().map(|s| s.in_flight).collect();
        assert_eq!(in_flight, [30, 10]);
    }
}
