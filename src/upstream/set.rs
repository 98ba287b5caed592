//! The current set of backends, replaced as a whole, and taking a handle from it.
//!
//! Workers read an `Arc` snapshot of the set (a mutex held for one clone); the control socket
//! swaps in a new one. Backends that stay keep their state and handles; new ones start down
//! and are checked at once; removed ones are retired and drain.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::Select;

use super::backend::{AgentSettings, Backend, Lease};
use super::policy::Policy;
use crate::config::BackendUrl;

/// Why no handle could be had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcquireError {
    /// No backend (outside those already tried) is up.
    NoBackend,
    /// Every usable backend stayed busy for the whole queue timeout.
    Busy,
}

impl std::fmt::Display for AcquireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::NoBackend => "no backend is available",
            Self::Busy => "all backends are busy",
        })
    }
}

/// What [`BackendSet::replace`] changed.
pub struct Change {
    pub added: Vec<Arc<Backend>>,
    pub removed: Vec<Arc<Backend>>,
}

/// The live backend set with its balancing policy.
pub struct BackendSet {
    current: Mutex<Arc<Vec<Arc<Backend>>>>,
    policy: Box<dyn Policy>,
    handles_per_backend: usize,
    settings: AgentSettings,
}

/// Longest single wait inside [`BackendSet::acquire`] before the set is looked at again, so a
/// backend that comes up (or a new set) is noticed while waiting.
const RECHECK: Duration = Duration::from_millis(100);

/// How often `acquire` looks again while the only candidates await their first check.
const PENDING_POLL: Duration = Duration::from_millis(5);

impl BackendSet {
    pub fn new(
        policy: Box<dyn Policy>,
        handles_per_backend: usize,
        settings: AgentSettings,
    ) -> BackendSet {
        BackendSet {
            current: Mutex::new(Arc::new(Vec::new())),
            policy,
            handles_per_backend,
            settings,
        }
    }

    /// The backends in their configured order.
    pub fn snapshot(&self) -> Arc<Vec<Arc<Backend>>> {
        Arc::clone(&self.current.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Replaces the whole set with `urls` (GoAround's socket protocol).
    pub fn replace(&self, urls: &[BackendUrl]) -> Change {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let mut added = Vec::new();
        let next: Vec<Arc<Backend>> = urls
            .iter()
            .map(|url| match current.iter().find(|b| &b.url == url) {
                Some(kept) => Arc::clone(kept),
                None => {
                    let b = Backend::new(url.clone(), self.handles_per_backend, &self.settings);
                    added.push(Arc::clone(&b));
                    b
                }
            })
            .collect();
        let removed: Vec<Arc<Backend>> = current
            .iter()
            .filter(|b| !urls.contains(&b.url))
            .cloned()
            .collect();
        *current = Arc::new(next);
        drop(current);
        for b in &removed {
            b.retire();
        }
        Change { added, removed }
    }

    /// Takes a handle of a usable backend not in `exclude`, in the policy's order; waits up
    /// to `timeout` when every one is busy.
    pub fn acquire(
        &self,
        exclude: &[Arc<Backend>],
        timeout: Duration,
    ) -> Result<Lease, AcquireError> {
        let deadline = Instant::now() + timeout;
        loop {
            let set = self.snapshot();
            let mut candidates: Vec<Arc<Backend>> = set
                .iter()
                .filter(|b| b.is_usable() && !exclude.iter().any(|e| Arc::ptr_eq(e, b)))
                .cloned()
                .collect();
            if candidates.is_empty() {
                // A backend just added (at start, or by the control socket) gets its first
                // health check within milliseconds: wait for it rather than fail.
                if set.iter().any(|b| b.is_pending()) && Instant::now() < deadline {
                    std::thread::sleep(PENDING_POLL);
                    continue;
                }
                return Err(AcquireError::NoBackend);
            }
            self.policy.order(&mut candidates);
            for b in &candidates {
                if let Ok(handle) = b.handles().try_recv() {
                    return Ok(b.lease(handle));
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(AcquireError::Busy);
            }
            let mut select = Select::new();
            for b in &candidates {
                select.recv(b.handles());
            }
            let selected = select.select_timeout((deadline - now).min(RECHECK));
            if let Ok(op) = selected {
                let b = &candidates[op.index()];
                if let Ok(handle) = op.recv(b.handles()) {
                    let lease = b.lease(handle);
                    if b.is_usable() {
                        return Ok(lease);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::backend::test_settings;
    use crate::upstream::policy::RoundRobin;

    fn set(n: usize, urls: &[&str]) -> BackendSet {
        let s = BackendSet::new(Box::new(RoundRobin::default()), n, test_settings());
        s.replace(&parse(urls));
        s
    }

    fn parse(urls: &[&str]) -> Vec<BackendUrl> {
        urls.iter().map(|u| BackendUrl::parse(u).unwrap()).collect()
    }

    #[test]
    fn no_backend_up_is_an_error_at_once() {
        let s = set(1, &["http://a:1"]);
        s.snapshot()[0].set_up(false);
        assert_eq!(
            s.acquire(&[], Duration::from_secs(5)).err(),
            Some(AcquireError::NoBackend)
        );
    }

    #[test]
    fn pending_backend_is_waited_for() {
        let s = Arc::new(set(1, &["http://a:1"]));
        assert_eq!(
            s.acquire(&[], Duration::ZERO).err(),
            Some(AcquireError::NoBackend)
        );
        let b = Arc::clone(&s.snapshot()[0]);
        let checker = std::thread::spawn(move || {
            b.set_up(true);
        });
        assert!(s.acquire(&[], Duration::from_secs(10)).is_ok());
        checker.join().unwrap();
    }

    #[test]
    fn busy_backends_time_out() {
        let s = set(1, &["http://a:1"]);
        s.snapshot()[0].set_up(true);
        let _held = s.acquire(&[], Duration::ZERO).unwrap();
        assert_eq!(
            s.acquire(&[], Duration::from_millis(20)).err(),
            Some(AcquireError::Busy)
        );
    }

    #[test]
    fn waiter_gets_the_handle_when_it_comes_back() {
        let s = Arc::new(set(1, &["http://a:1"]));
        s.snapshot()[0].set_up(true);
        let held = s.acquire(&[], Duration::ZERO).unwrap();
        let s2 = Arc::clone(&s);
        let waiter = std::thread::spawn(move || s2.acquire(&[], Duration::from_secs(10)).is_ok());
        drop(held);
        assert!(waiter.join().unwrap());
    }

    #[test]
    fn excluded_backends_are_skipped() {
        let s = set(1, &["http://a:1", "http://b:2"]);
        let all = s.snapshot();
        all.iter().for_each(|b| {
            b.set_up(true);
        });
        let lease = s.acquire(&[Arc::clone(&all[0])], Duration::ZERO).unwrap();
        assert_eq!(lease.backend().url.base, "http://b:2");
        drop(lease);
        let both = [Arc::clone(&all[0]), Arc::clone(&all[1])];
        assert_eq!(
            s.acquire(&both, Duration::ZERO).err(),
            Some(AcquireError::NoBackend)
        );
    }

    #[test]
    fn replace_keeps_existing_and_retires_removed() {
        let s = set(2, &["http://a:1", "http://b:2"]);
        let a = Arc::clone(&s.snapshot()[0]);
        a.set_up(true);
        let change = s.replace(&parse(&["http://a:1", "http://c:3"]));
        assert_eq!(change.added.len(), 1);
        assert_eq!(change.added[0].url.base, "http://c:3");
        assert_eq!(change.removed.len(), 1);
        assert!(change.removed[0].is_retired());
        let now = s.snapshot();
        assert!(Arc::ptr_eq(&now[0], &a), "kept backend keeps its state");
        assert!(now[0].is_up());
        assert!(!now[1].is_up(), "new backend starts down");
    }
}
