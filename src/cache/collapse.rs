//! Collapsed forwarding: one fetch per URL at a time, the other misses wait for it.
//!
//! ```text
//!   miss, no flight ──► leader: Flight installed, FillTicket (leader) returned
//!   miss, flight    ──► waiter: subscribes to the Flight and goes on with other work; when
//!                       it finishes (or the waiter's own timeout passes) it looks once more:
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
//! own small lock and a list of wake-up callbacks (an event loop's mailbox), so no thread
//! ever blocks on it and waiting never holds the cache lock. The
//! `FillTicket` guard that drives this is in `mod.rs`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// Called when a flight finishes (or at once, if it already has): the waiter's loop is told
/// to look the URL up again.
pub type OnFinish = Box<dyn FnOnce() + Send>;

/// One leader's fetch that other misses may wait for.
#[derive(Default)]
pub struct Flight {
    state: Mutex<FlightState>,
}

#[derive(Default)]
struct FlightState {
    finished: bool,
    waiters: Vec<OnFinish>,
}

impl std::fmt::Debug for Flight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flight")
            .field("finished", &self.is_finished())
            .finish()
    }
}

impl Flight {
    /// Wakes every waiter, now and later.
    pub(crate) fn finish(&self) {
        let waiters = {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            state.finished = true;
            std::mem::take(&mut state.waiters)
        };
        for wake in waiters {
            wake();
        }
    }

    /// Calls `wake` once the flight finishes (at once, if it has). The waiter keeps its own
    /// deadline: a wake-up after it stopped waiting must be harmless to it.
    pub fn subscribe(&self, wake: OnFinish) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.finished {
            drop(state);
            wake();
        } else {
            state.waiters.push(wake);
        }
    }

    pub(crate) fn is_finished(&self) -> bool {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .finished
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
    fn subscribers_are_called_once_at_finish_or_at_once_after() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let flight = Flight::default();
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = |calls: &Arc<AtomicUsize>| -> OnFinish {
            let calls = Arc::clone(calls);
            Box::new(move || {
                calls.fetch_add(1, Ordering::SeqCst);
            })
        };
        flight.subscribe(counter(&calls));
        flight.subscribe(counter(&calls));
        assert_eq!(calls.load(Ordering::SeqCst), 0);
        flight.finish();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert!(flight.is_finished());
        flight.subscribe(counter(&calls));
        assert_eq!(
            calls.load(Ordering::SeqCst),
            3,
            "a late subscriber is called at once"
        );
        flight.finish();
        assert_eq!(calls.load(Ordering::SeqCst), 3, "nobody twice");
    }
}
