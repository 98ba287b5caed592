//! Deadlines of one event loop: every wait of every connection is a timer here, never a
//! blocked thread.
//!
//! A connection has at most one deadline at a time (which wait it belongs to is the
//! connection's business: it re-reads its own state when the timer fires). Deadlines move
//! often (every request pushes the idle deadline back), so the heap is lazy: an entry is
//! pushed only when the new deadline is *earlier* than the one already armed, and an entry
//! that pops early re-arms itself at the connection's current deadline. A keep-alive
//! connection under load therefore costs about one heap push per timeout period, not one per
//! request.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

use super::slab::Id;

/// What a connection keeps for the timer wheel: its deadline and the earliest armed entry.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Deadline {
    /// When the connection's current wait ends; `None` while it waits for nothing.
    pub at: Option<Instant>,
    /// The earliest entry in the heap for this connection.
    armed: Option<Instant>,
}

#[derive(Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<(Instant, usize, u32)>>,
}

impl Timers {
    /// Sets the deadline of connection `id` (whose timer state is `deadline`).
    pub(crate) fn set(&mut self, id: Id, deadline: &mut Deadline, at: Option<Instant>) {
        deadline.at = at;
        let Some(at) = at else { return };
        if deadline.armed.is_none_or(|armed| armed > at) {
            self.heap.push(Reverse((at, id.index, id.generation)));
            deadline.armed = Some(at);
        }
    }

    /// When the next entry pops, if any.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _, _))| *at)
    }

    /// Pops the next entry due at `now`: the id of a connection whose timer entry expired.
    /// The caller looks the connection up (it may be gone) and passes its `Deadline` to
    /// [`Timers::expired`].
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(Instant, Id)> {
        let Reverse((at, index, generation)) = *self.heap.peek()?;
        if at > now {
            return None;
        }
        self.heap.pop();
        Some((at, Id { index, generation }))
    }

    /// An entry armed at `armed_at` for connection `id` popped at `now`: returns whether the
    /// connection's deadline has really passed. If the deadline moved later, the entry is
    /// re-armed there; a stale entry (another one is armed) changes nothing.
    pub(crate) fn expired(
        &mut self,
        id: Id,
        deadline: &mut Deadline,
        armed_at: Instant,
        now: Instant,
    ) -> bool {
        if deadline.armed != Some(armed_at) {
            return false;
        }
        deadline.armed = None;
        match deadline.at {
            Some(at) if at <= now => true,
            Some(at) => {
                self.heap.push(Reverse((at, id.index, id.generation)));
                deadline.armed = Some(at);
                false
            }
            None => false,
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.heap.len()
    }

    /// Gives memory back after a burst.
    pub(crate) fn shrink(&mut self) {
        if self.heap.capacity() > 4 * self.heap.len() + 1024 {
            self.heap.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn id(index: usize) -> Id {
        Id {
            index,
            generation: 0,
        }
    }

    #[test]
    fn later_deadlines_do_not_push() {
        let mut timers = Timers::default();
        let mut d = Deadline::default();
        let t0 = Instant::now();
        timers.set(id(1), &mut d, Some(t0 + Duration::from_secs(10)));
        for i in 0..100 {
            timers.set(id(1), &mut d, Some(t0 + Duration::from_secs(11 + i)));
        }
        assert_eq!(timers.len(), 1);
        timers.set(id(1), &mut d, Some(t0 + Duration::from_secs(5)));
        assert_eq!(timers.len(), 2, "an earlier deadline is armed at once");
    }

    #[test]
    fn an_early_entry_re_arms_at_the_moved_deadline() {
        let mut timers = Timers::default();
        let mut d = Deadline::default();
        let t0 = Instant::now();
        timers.set(id(3), &mut d, Some(t0 + Duration::from_secs(1)));
        timers.set(id(3), &mut d, Some(t0 + Duration::from_secs(5)));
        let now = t0 + Duration::from_secs(2);
        let (at, who) = timers.pop_due(now).unwrap();
        assert_eq!(who, id(3));
        assert!(!timers.expired(who, &mut d, at, now), "moved to 5 s");
        assert_eq!(timers.next(), Some(t0 + Duration::from_secs(5)));
        assert!(timers.pop_due(now).is_none());
        let later = t0 + Duration::from_secs(6);
        let (at, who) = timers.pop_due(later).unwrap();
        assert!(timers.expired(who, &mut d, at, later));
    }

    #[test]
    fn cleared_and_stale_entries_do_not_fire() {
        let mut timers = Timers::default();
        let mut d = Deadline::default();
        let t0 = Instant::now();
        timers.set(id(0), &mut d, Some(t0 + Duration::from_secs(3)));
        timers.set(id(0), &mut d, Some(t0 + Duration::from_secs(1)));
        timers.set(id(0), &mut d, None);
        let now = t0 + Duration::from_secs(4);
        let mut fired = 0;
        while let Some((at, who)) = timers.pop_due(now) {
            fired += usize::from(timers.expired(who, &mut d, at, now));
        }
        assert_eq!(fired, 0);
        assert_eq!(timers.len(), 0);
    }
}
