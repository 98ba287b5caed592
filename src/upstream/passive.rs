//! Passive health of a `-config` server: Gourmet's `max_fail` and `fail_timeout`, with
//! nginx's meaning (`max_fails`, `fail_timeout` of its `server` directive).
//!
//! ```text
//!                          failure, fewer than max_fail
//!                               in the window
//!                                 ┌─────┐
//!             failure             ▼     │       max_fail-th failure
//!  Healthy ─────────────────► Counting ─┴────────────────────────────► Down ◄─────┐
//!   ▲  ▲                          │               Transition::Down       │        │
//!   │  └──────── success ─────────┘                                      │        │
//!   │                                                fail_timeout passes │        │ failure:
//!   │                                                                    ▼        │ Transition::
//!   └─────────────────── success: Transition::Up ─────────────────── Probation ───┘ Down
//! ```
//!
//! Failures are counted in a window that opens at the first one; a failure more than
//! `fail_timeout` after it opens a new window instead of adding up. `max_fail` failures in
//! one window take the server out for `fail_timeout`. After that it is available again, on
//! probation, as nginx lets live traffic probe it: the next success brings it back for good
//! (`Up`), the next failure takes it out again at once. Probation is `Down` with its pause
//! over: no event leads there, [`PassiveHealth::is_available`] reads the clock. A success
//! while available clears the count. Results that arrive while the server is out belong to
//! requests that started before, and change nothing. `max_fail = 0` turns all of this off.
//!
//! Pure: the clock is passed in, nothing is shared. Deciding what counts as a failure
//! (connect error, timeout, reset, a 502/503/504) and locking are the caller's; each
//! [`Transition`] is returned once, for the caller to log and count.
//!
//! The `-b` backends keep `-max-fails`: failures in a row, then out until the active health
//! check passes (`backend.rs`).

use std::time::{Duration, Instant};

/// One server's passive health; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PassiveHealth {
    max_fail: u32,
    fail_timeout: Duration,
    state: State,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// No failure since the last success.
    Healthy,
    /// `failures` (fewer than `max_fail`) in the window that opened at `since`.
    Counting { failures: u32, since: Instant },
    /// Taken out at `since` after `failures`; once `fail_timeout` has passed, on probation.
    Down { failures: u32, since: Instant },
}

/// A change the caller should log and count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Taken out for `fail_timeout`. `failures` since the server last succeeded: `max_fail`
    /// the first time, one more for each failed probation after.
    Down { failures: u32 },
    /// A success after a pause: back for good.
    Up,
}

impl PassiveHealth {
    /// `max_fail` failures within `fail_timeout` take the server out for `fail_timeout`;
    /// `max_fail = 0`: never.
    pub fn new(max_fail: u32, fail_timeout: Duration) -> PassiveHealth {
        PassiveHealth {
            max_fail,
            fail_timeout,
            state: State::Healthy,
        }
    }

    /// No failure since the last success.
    pub fn is_healthy(&self) -> bool {
        self.state == State::Healthy
    }

    /// `max_fail` and `fail_timeout`.
    pub fn settings(&self) -> (u32, Duration) {
        (self.max_fail, self.fail_timeout)
    }

    /// Whether the server may be given a request at `now`.
    pub fn is_available(&self, now: Instant) -> bool {
        match self.state {
            State::Down { since, .. } => self.elapsed(since, now),
            State::Healthy | State::Counting { .. } => true,
        }
    }

    /// An exchange with the server failed at `now`.
    pub fn record_failure(&mut self, now: Instant) -> Option<Transition> {
        if self.max_fail == 0 {
            return None;
        }
        let (failures, since) = match self.state {
            State::Healthy => (1, now),
            State::Counting { failures, since } if !self.elapsed_past(since, now) => {
                (failures + 1, since)
            }
            // The window closed: this failure opens a new one.
            State::Counting { .. } => (1, now),
            // A request from before the server was taken out.
            State::Down { since, .. } if !self.elapsed(since, now) => return None,
            // On probation: already at max_fail or more, so out again at once.
            State::Down { failures, .. } => (failures.saturating_add(1), now),
        };
        if failures >= self.max_fail {
            self.state = State::Down {
                failures,
                since: now,
            };
            return Some(Transition::Down { failures });
        }
        self.state = State::Counting { failures, since };
        None
    }

    /// An exchange with the server succeeded at `now`.
    pub fn record_success(&mut self, now: Instant) -> Option<Transition> {
        match self.state {
            State::Healthy => None,
            State::Counting { .. } => {
                self.state = State::Healthy;
                None
            }
            // A request from before the server was taken out.
            State::Down { since, .. } if !self.elapsed(since, now) => None,
            State::Down { .. } => {
                self.state = State::Healthy;
                Some(Transition::Up)
            }
        }
    }

    /// `fail_timeout` has passed since `since`: a pause is over.
    fn elapsed(&self, since: Instant, now: Instant) -> bool {
        now.saturating_duration_since(since) >= self.fail_timeout
    }

    /// More than `fail_timeout` has passed since `since`: a window is closed (a failure at
    /// exactly `fail_timeout` is still within it).
    fn elapsed_past(&self, since: Instant, now: Instant) -> bool {
        now.saturating_duration_since(since) > self.fail_timeout
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    /// A fake clock: `at(ms)` is `ms` milliseconds after a fixed start.
    struct Clock(Instant);

    impl Clock {
        fn new() -> Clock {
            Clock(Instant::now())
        }
        fn at(&self, ms: u64) -> Instant {
            self.0 + Duration::from_millis(ms)
        }
    }

    #[derive(Debug, Clone, Copy)]
    enum Event {
        Fail(u64),
        Ok(u64),
        /// Available at this time?
        Check(u64, bool),
    }
    use Event::*;

    /// Runs `events` on a server with `max_fail` and a fail_timeout of 1s; returns the
    /// transitions, each with the time (ms) it happened.
    fn run(max_fail: u32, events: &[Event]) -> Vec<(u64, Transition)> {
        let clock = Clock::new();
        let mut h = PassiveHealth::new(max_fail, SECOND);
        let mut out = Vec::new();
        for event in events {
            match *event {
                Fail(ms) => out.extend(h.record_failure(clock.at(ms)).map(|t| (ms, t))),
                Ok(ms) => out.extend(h.record_success(clock.at(ms)).map(|t| (ms, t))),
                Check(ms, want) => {
                    assert_eq!(h.is_available(clock.at(ms)), want, "at {ms}ms: {h:?}")
                }
            }
        }
        out
    }

    fn down(failures: u32) -> Transition {
        Transition::Down { failures }
    }

    #[test]
    fn down_at_exactly_max_fail_within_the_window() {
        let got = run(
            3,
            &[
                Fail(0),
                Check(0, true),
                Fail(400),
                Check(400, true),
                Fail(1000),
                Check(1000, false),
                Check(1999, false),
            ],
        );
        assert_eq!(got, [(1000, down(3))]);
        assert_eq!(run(1, &[Fail(5), Check(5, false)]), [(5, down(1))]);
    }

    #[test]
    fn failures_wider_apart_than_the_window_do_not_add_up() {
        let got = run(
            3,
            &[
                Fail(0),
                Fail(900),
                // 1001ms after the window opened: a new window with one failure.
                Fail(1001),
                Check(1001, true),
                Fail(1500),
                Check(1500, true),
                Fail(2001),
                Check(2001, false),
            ],
        );
        assert_eq!(got, [(2001, down(3))]);
        let every_second: Vec<Event> = (0..10).map(|s| Fail(s * 1001)).collect();
        assert_eq!(run(2, &every_second), []);
    }

    #[test]
    fn back_after_fail_timeout() {
        let got = run(
            2,
            &[
                Fail(0),
                Fail(10),
                Check(10, false),
                Check(1009, false),
                Check(1010, true),
                Ok(1200),
                Check(1200, true),
                // Healthy again: it takes max_fail failures again.
                Fail(1300),
                Check(1300, true),
            ],
        );
        assert_eq!(got, [(10, down(2)), (1200, Transition::Up)]);
    }

    #[test]
    fn one_failure_on_probation_takes_it_out_again() {
        let got = run(
            3,
            &[
                Fail(0),
                Fail(1),
                Fail(2),
                Check(1002, true),
                Fail(1500),
                Check(1500, false),
                Check(2499, false),
                Check(2500, true),
                Fail(2600),
                Check(2600, false),
                Ok(3600),
                Check(3600, true),
            ],
        );
        assert_eq!(
            got,
            [
                (2, down(3)),
                (1500, down(4)),
                (2600, down(5)),
                (3600, Transition::Up)
            ]
        );
    }

    #[test]
    fn success_resets_the_count() {
        let got = run(
            3,
            &[
                Fail(0),
                Fail(1),
                Ok(2),
                Fail(3),
                Fail(4),
                Check(4, true),
                Fail(5),
            ],
        );
        assert_eq!(got, [(5, down(3))]);
        // A success while healthy changes nothing.
        assert_eq!(run(3, &[Ok(0), Ok(1), Check(1, true)]), []);
    }

    #[test]
    fn results_while_down_change_nothing() {
        let got = run(
            2,
            &[
                Fail(0),
                Fail(1),
                // In flight when it was taken out.
                Ok(500),
                Fail(600),
                Check(600, false),
                Check(1001, true),
                Ok(1001),
            ],
        );
        assert_eq!(got, [(1, down(2)), (1001, Transition::Up)]);
    }

    #[test]
    fn max_fail_zero_never_takes_it_out() {
        let events: Vec<Event> = (0..100).map(Fail).chain([Check(100, true)]).collect();
        assert_eq!(run(0, &events), []);
    }

    #[test]
    fn a_clock_that_goes_back_is_harmless() {
        let clock = Clock::new();
        let mut h = PassiveHealth::new(2, SECOND);
        h.record_failure(clock.at(1000));
        assert_eq!(h.record_failure(clock.at(0)), Some(down(2)));
        assert!(!h.is_available(clock.at(500)));
        assert!(h.is_available(clock.at(1000)));
    }

    #[test]
    fn small_and_copy() {
        fn copy<T: Copy>() {}
        copy::<PassiveHealth>();
        assert!(std::mem::size_of::<PassiveHealth>() <= 56);
    }
}
