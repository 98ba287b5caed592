//! Collapsed forwarding: one fetch per URL at a time, the other misses wait for it.
//!
//! ```text
//!   miss, no flight ──► leader: Flight installed, FillTicket (leader) returned
//!   miss, flight    ──► waiter: waits on the Flight (no cache lock held) until it finishes
//!                       or the caller's timeout passes, then looks up the store once more:
//!                         stored and matching ─► hit
//!                         otherwise            ─► fetches itself without waiting again:
//!                                                 a leader if no flight runs by then
//!   leader's ticket stored or dropped (error, panic, unstorable)
//!                   ──► Flight removed from the table, finished, all waiters woken
//! ```
//!
//! The table also counts every outstanding ticket of a URL, leader or not, so that an
//! invalidation (RFC 9111 §4.4) arriving while a response is being fetched keeps that
//! response out of the store. The table lives under the cache's one lock; a `Flight` has its
//! own small lock and condition variable, so waiting never holds the cache lock. The
//! `FillTicket` guard that drives this is in `mod.rs`.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Longest wait honoured, so that a deadline can always be computed.
const LONGEST_WAIT: Duration = Duration::from_secs(24 * 60 * 60);

/// One leader's fetch that other misses may wait for.
#[derive(Default)]
pub(crate) struct Flight {
    finished: Mutex<bool>,
    cond: Condvar,
}

impl Flight {
    /// Wakes every waiter, now and later.
    pub(crate) fn finish(&self) {
        *self.finished.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.cond.notify_all();
    }

    /// Waits until the flight finishes (true) or `timeout` passes (false).
    pub(crate) fn wait(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout.min(LONGEST_WAIT);
        let mut finished = self.finished.lock().unwrap_or_else(PoisonError::into_inner);
        while !*finished {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            finished = self
                .cond
                .wait_timeout(finished, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }
}

/// The outstanding tickets of one base key.
struct Fills {
    leader: Option<Arc<Flight>>,
    tickets: usize,
    /// Bumped by each invalidation while tickets are out.
    invalidations: u64,
}

/// What a ticket remembers of its registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Registration {
    invalidations: u64,
}

/// Outstanding tickets by base key; entries exist only while tickets are out.
#[derive(Default)]
pub(crate) struct FillTable {
    by_key: HashMap<String, Fills>,
}

impl FillTable {
    /// The flight a miss on `key` should wait for, if one is running.
    pub(crate) fn leader(&self, key: &str) -> Option<Arc<Flight>> {
        self.by_key.get(key)?.leader.clone()
    }

    /// Registers a ticket for `key`; a leader also installs a new flight, which it returns.
    /// Call `lead` only when [`leader`](Self::leader) found none.
    pub(crate) fn open(&mut self, key: &str, lead: bool) -> (Registration, Option<Arc<Flight>>) {
        let fills = self.by_key.entry(key.to_string()).or_insert(Fills {
            leader: None,
            tickets: 0,
            invalidations: 0,
        });
        fills.tickets += 1;
        let flight = if lead {
            debug_assert!(fills.leader.is_none(), "two leaders for one key");
            let flight = Arc::new(Flight::default());
            fills.leader = Some(Arc::clone(&flight));
            Some(flight)
        } else {
            None
        };
        let registration = Registration {
            invalidations: fills.invalidations,
        };
        (registration, flight)
    }

    /// Unregisters a ticket (and its flight, for a leader). Returns whether the URL stayed
    /// valid since the ticket was opened, i.e. whether its response may be stored.
    /// The caller finishes the flight after storing, outside the lock.
    pub(crate) fn close(
        &mut self,
        key: &str,
        registration: Registration,
        flight: Option<&Arc<Flight>>,
    ) -> bool {
        let Some(fills) = self.by_key.get_mut(key) else {
            debug_assert!(false, "closing a ticket that was never opened");
            return false;
        };
        let valid = fills.invalidations == registration.invalidations;
        if let (Some(mine), Some(current)) = (flight, &fills.leader) {
            if Arc::ptr_eq(mine, current) {
                fills.leader = None;
            }
        }
        fills.tickets -= 1;
        if fills.tickets == 0 {
            self.by_key.remove(key);
        }
        valid
    }

    /// Marks the responses being fetched for `key` as out of date.
    pub(crate) fn invalidate(&mut self, key: &str) {
        if let Some(fills) = self.by_key.get_mut(key) {
            fills.invalidations += 1;
        }
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread;

    #[test]
    fn one_leader_per_key_until_it_closes() {
        let mut t = FillTable::default();
        assert!(t.leader("k").is_none());
        let (reg, flight) = t.open("k", true);
        let flight = flight.unwrap();
        assert!(Arc::ptr_eq(&t.leader("k").unwrap(), &flight));
        assert!(t.leader("other").is_none());
        let (follower, none) = t.open("k", false);
        assert!(none.is_none());
        assert!(t.close("k", reg, Some(&flight)));
        assert!(t.leader("k").is_none(), "the flight left with its leader");
        assert!(!t.is_empty(), "the follower's ticket is still out");
        assert!(t.close("k", follower, None));
        assert!(t.is_empty());
    }

    #[test]
    fn invalidation_spoils_tickets_already_out() {
        let mut t = FillTable::default();
        let (before, _) = t.open("k", false);
        t.invalidate("k");
        let (after, _) = t.open("k", false);
        assert!(!t.close("k", before, None));
        assert!(t.close("k", after, None));
        t.invalidate("k"); // nothing out: nothing to remember
        assert!(t.is_empty());
    }

    #[test]
    fn wait_returns_on_finish_or_timeout() {
        let flight = Arc::new(Flight::default());
        let start = Instant::now();
        assert!(!flight.wait(Duration::from_millis(30)));
        assert!(start.elapsed() >= Duration::from_millis(30));
        let f = Arc::clone(&flight);
        let waiter = thread::spawn(move || f.wait(Duration::from_secs(30)));
        flight.finish();
        assert!(waiter.join().unwrap());
        assert!(flight.wait(Duration::ZERO), "finished stays finished");
    }
}
