//! Balancing policies: in which order the usable backends are offered a request.
//!
//! A policy only orders candidates; taking a handle (and waiting when all are busy) is the
//! backend set's job, so a new policy (weights, least connections) is one small type here.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::backend::Backend;

/// Orders candidate backends; the first is tried first, the rest are fallbacks.
pub trait Policy: Send + Sync {
    fn order(&self, candidates: &mut [&Arc<Backend>]);
}

/// Round-robin over the usable backends, as GoAround and GoLancer do: each request starts one
/// further along the list.
#[derive(Debug, Default)]
pub struct RoundRobin {
    next: AtomicUsize,
}

impl Policy for RoundRobin {
    fn order(&self, candidates: &mut [&Arc<Backend>]) {
        if candidates.len() > 1 {
            let start = self.next.fetch_add(1, Ordering::Relaxed) % candidates.len();
            candidates.rotate_left(start);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BackendUrl;

    #[test]
    fn round_robin_starts_one_further_each_time() {
        let set: Vec<_> = (1..=3)
            .map(|p| {
                Backend::new(
                    BackendUrl::parse(&format!("http://h:{p}")).unwrap(),
                    1,
                    Arc::default(),
                )
            })
            .collect();
        let rr = RoundRobin::default();
        let firsts: Vec<String> = (0..6)
            .map(|_| {
                let mut c: Vec<&Arc<Backend>> = set.iter().collect();
                rr.order(&mut c);
                c[0].url.base.clone()
            })
            .collect();
        assert_eq!(
            firsts,
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
}
