//! A ring of one-second slots that any thread records into without a lock, and that a reader
//! sums over a range of recent seconds.
//!
//! Slot `s % 60` holds second `s`; each slot is stamped with the second it holds. The first
//! recorder of a new second finds the stamp of a second a minute (or more) old, swaps it for
//! [`CLEARING`] with a compare-and-swap, zeroes the slot and stamps it with the new second;
//! everyone else records straight away.
//!
//! ```text
//!   stamp == now ──────────────────────────────► record
//!   stamp <  now ──CAS(stamp→CLEARING) won──► clear, stamp = now, record
//!                └─CAS lost──► look again at the stamp
//!   stamp == CLEARING, or > now ──────────────► skip the window (totals still count)
//! ```
//!
//! The races, and why they are acceptable for a status page:
//! - a sample recorded by another thread while the winner clears (nanoseconds, once per
//!   second per slot) is left out of the window; the all-time totals kept beside the ring
//!   still count it;
//! - a reader skips a slot whose stamp changed while it was being read, so a window can
//!   briefly cover one second less;
//! - a recorder that loaded the stamp and then stalled for a whole minute before its
//!   `fetch_add` would count into the newer second: not worth a lock.
//!
//! Readers check the stamp before and after reading (a seqlock without retry), so they never
//! mix a minute-old second into the window.

use std::ops::RangeInclusive;
use std::sync::atomic::{fence, AtomicU64, Ordering};

/// Seconds the ring remembers.
pub(crate) const SECONDS: u64 = 60;

/// Stamp of a slot that one thread is zeroing.
const CLEARING: u64 = u64::MAX;

/// What one second holds: atomics that can be zeroed in place.
pub(crate) trait Slot: Default + Send + Sync {
    fn clear(&self);
}

impl Slot for AtomicU64 {
    fn clear(&self) {
        self.store(0, Ordering::Relaxed);
    }
}

struct Stamped<S> {
    /// The second this slot holds. A fresh ring is stamped 0 with zero counts, which is true
    /// of second 0 and never read for any other second.
    second: AtomicU64,
    slot: S,
}

pub(crate) struct Ring<S> {
    slots: Box<[Stamped<S>]>,
}

impl<S: Slot> Default for Ring<S> {
    fn default() -> Ring<S> {
        let slots = (0..SECONDS)
            .map(|_| Stamped {
                second: AtomicU64::new(0),
                slot: S::default(),
            })
            .collect();
        Ring { slots }
    }
}

impl<S: Slot> Ring<S> {
    fn stamped(&self, second: u64) -> &Stamped<S> {
        &self.slots[(second % SECONDS) as usize]
    }

    /// The slot to record second `now` into, zeroed first if it still held an older second;
    /// None while another thread zeroes it, or if it already holds a later second.
    pub(crate) fn slot(&self, now: u64) -> Option<&S> {
        let stamped = self.stamped(now);
        let mut seen = stamped.second.load(Ordering::Acquire);
        loop {
            if seen == now {
                return Some(&stamped.slot);
            }
            if seen == CLEARING || seen > now {
                return None;
            }
            match stamped.second.compare_exchange_weak(
                seen,
                CLEARING,
                Ordering::Acquire,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    // A reader that sees any of the zeroes below then sees CLEARING (or later)
                    // when it checks the stamp again.
                    fence(Ordering::Release);
                    stamped.slot.clear();
                    stamped.second.store(now, Ordering::Release);
                    return Some(&stamped.slot);
                }
                Err(actual) => seen = actual,
            }
        }
    }

    /// Calls `read` on the slot of each second in `seconds` that was recorded (seconds in the
    /// future or more than a minute old are not there), and hands its result to `keep` if the
    /// slot still held that second afterwards.
    pub(crate) fn read<T>(
        &self,
        seconds: RangeInclusive<u64>,
        mut read: impl FnMut(&S) -> T,
        mut keep: impl FnMut(T),
    ) {
        for second in seconds {
            let stamped = self.stamped(second);
            if stamped.second.load(Ordering::Acquire) != second {
                continue;
            }
            let value = read(&stamped.slot);
            // Orders the reads above before the second look at the stamp.
            fence(Ordering::Acquire);
            if stamped.second.load(Ordering::Relaxed) == second {
                keep(value);
            }
        }
    }
}

/// The last `last_n` seconds up to `now`, `now` itself excluded when `complete_only` (a
/// second still running would pull a rate down); never more than the ring holds, never below
/// second 0.
pub(crate) fn window(now: u64, last_n: u64, complete_only: bool) -> RangeInclusive<u64> {
    let last_n = last_n.clamp(1, SECONDS);
    if complete_only {
        match now.checked_sub(1) {
            Some(last) => now.saturating_sub(last_n)..=last,
            // Deliberately empty: during second 0 no second is complete yet.
            #[allow(clippy::reversed_empty_ranges)]
            None => 1..=0,
        }
    } else {
        now.saturating_sub(last_n - 1)..=now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(ring: &Ring<AtomicU64>, seconds: RangeInclusive<u64>) -> u64 {
        let mut total = 0;
        ring.read(seconds, |c| c.load(Ordering::Relaxed), |v| total += v);
        total
    }

    fn add(ring: &Ring<AtomicU64>, now: u64, n: u64) {
        ring.slot(now)
            .expect("slot available")
            .fetch_add(n, Ordering::Relaxed);
    }

    #[test]
    fn a_reused_slot_starts_from_zero() {
        let ring = Ring::<AtomicU64>::default();
        add(&ring, 5, 3);
        add(&ring, 5, 4);
        assert_eq!(sum(&ring, 5..=5), 7);
        add(&ring, 65, 1);
        assert_eq!(sum(&ring, 65..=65), 1, "second 5's counts are gone");
        assert_eq!(sum(&ring, 5..=5), 0, "second 5 is no longer held");
    }

    #[test]
    fn a_late_recorder_is_turned_away() {
        let ring = Ring::<AtomicU64>::default();
        add(&ring, 70, 1);
        assert!(ring.slot(10).is_none(), "slot 10 now holds second 70");
        assert_eq!(sum(&ring, 70..=70), 1);
    }

    #[test]
    fn unrecorded_seconds_read_as_nothing() {
        let ring = Ring::<AtomicU64>::default();
        add(&ring, 100, 2);
        assert_eq!(sum(&ring, 40..=130), 2);
    }

    #[test]
    fn windows() {
        assert_eq!(window(100, 10, true), 90..=99);
        assert_eq!(window(100, 60, false), 41..=100);
        assert_eq!(window(3, 10, true), 0..=2);
        assert!(window(0, 10, true).is_empty());
        assert_eq!(window(0, 60, false), 0..=0);
        assert_eq!(
            window(500, 600, false),
            441..=500,
            "never more than the ring holds"
        );
    }
}
