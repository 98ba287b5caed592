//! Balancing policies: in which order the usable backends are offered a request.
//!
//! A policy only orders candidates; taking a handle (and waiting when all are busy) is the
//! backend set's job. The `-config` file's balancers live in [`balancer`](super::balancer),
//! apart from [`Backend`]; the two impls at the end of this file let any of them be the
//! policy of the `-b` backends (weight 1 each, no hash input).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::backend::Backend;
use super::balancer::{Balancer, Candidate};

/// Orders candidate backends; the first is tried first, the rest are fallbacks.
pub trait Policy: Send + Sync {
    fn order(&self, candidates: &mut [Arc<Backend>]);
}

/// Round-robin over the usable backends, as GoAround and GoLancer do: each request starts one
/// further along the list.
#[derive(Debug, Default)]
pub struct RoundRobin {
    next: AtomicUsize,
}

impl Policy for RoundRobin {
    fn order(&self, candidates: &mut [Arc<Backend>]) {
        if candidates.len() > 1 {
            let start = self.next.fetch_add(1, Ordering::Relaxed) % candidates.len();
            candidates.rotate_left(start);
        }
    }
}

/// A `-b` backend as a balancer sees it: the flags give no weight, its URL is its key.
impl Candidate for Backend {
    fn weight(&self) -> u32 {
        1
    }
    fn in_flight(&self) -> usize {
        Backend::in_flight(self)
    }
    fn key(&self) -> &str {
        &self.url.base
    }
}

/// A balancer as the policy of the `-b` backends; `hash` has no input here: round-robin.
impl Policy for Balancer {
    fn order(&self, candidates: &mut [Arc<Backend>]) {
        Balancer::order(self, candidates, None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::file::{BalancerKind, HashKey};
    use crate::config::BackendUrl;
    use crate::upstream::backend::test_settings;

    fn backends() -> Vec<Arc<Backend>> {
        let settings = test_settings();
        (1..=3)
            .map(|p| {
                Backend::new(
                    BackendUrl::parse(&format!("http://h:{p}")).unwrap(),
                    1,
                    &settings,
                )
            })
            .collect()
    }

    fn firsts(policy: &dyn Policy, set: &[Arc<Backend>]) -> Vec<String> {
        (0..6)
            .map(|_| {
                let mut c = set.to_vec();
                policy.order(&mut c);
                c[0].url.base.clone()
            })
            .collect()
    }

    #[test]
    fn round_robin_starts_one_further_each_time() {
        assert_eq!(
            firsts(&RoundRobin::default(), &backends()),
            [
                "http://h:1",
                "http://h:2",
                "http://h:3",
                "http://h:1",
                "http://h:2",
                "http://h:3"
            ]
        );
    }

    /// The `-b` backends may switch to a balancer without changing a thing: every `-b`
    /// backend weighs 1, so smooth weighted round-robin is the same round-robin.
    #[test]
    fn balancer_as_policy() {
        let set = backends();
        let want = firsts(&RoundRobin::default(), &set);
        assert_eq!(firsts(&Balancer::default(), &set), want);
        let hash = Balancer::new(&BalancerKind::Hash { key: HashKey::Uri });
        assert_eq!(firsts(&hash, &set), want);
        assert_eq!(firsts(&Balancer::new(&BalancerKind::LeastConn), &set), want);
    }
}
