//! Rolling statistics for the status page: per backend (requests, rate, errors by kind,
//! latency percentiles, bytes), for the whole process (connections, tunnels, request rate),
//! and each backend's last health check and state change.
//!
//! The request path records with relaxed atomics only: no lock, no allocation. Recent
//! numbers live in a ring of sixty one-second slots (`ring.rs`), each holding a request
//! count and, per backend, a log-linear latency histogram (`latency.rs`); the page reads them
//! every two seconds and sums what it needs: the last ten complete seconds for a rate, the
//! last minute for p50 and p99. Time is whole seconds from a [`Clock`], passed in by the
//! caller so that tests choose it. This module neither decides health nor renders anything:
//! `upstream` decides, `status` renders.
//!
//! | file | owns |
//! |---|---|
//! | `backend.rs` | [`BackendStats`]: one backend's counters and its minute of seconds |
//! | `process.rs` | [`ProcessStats`] and the [`ProcessTotals`] snapshot |
//! | `health.rs` | [`HealthRecord`]: last check and last change, behind a small mutex |
//! | `ring.rs` | the lock-free ring of seconds and its lazy reset |
//! | `latency.rs` | the histogram's bucket layout and percentiles |

mod backend;
mod health;
mod latency;
mod process;
mod ring;

use std::time::{Duration, Instant};

pub use backend::{
    BackendCounters, BackendStats, ErrorCounts, Failure, LATENCY_WINDOW_SECS, RATE_WINDOW_SECS,
};
pub use health::{CheckResult, HealthRecord, HealthView, MAX_MESSAGE_CHARS};
pub use process::{CacheTotals, ProcessStats, ProcessTotals};

/// Whole seconds since the process started: the time base of every recorder here. Monotonic,
/// so a wall-clock step cannot send samples into the wrong slot.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: Instant,
}

impl Clock {
    /// A clock whose second 0 starts now.
    pub fn new() -> Clock {
        Clock::starting_at(Instant::now())
    }

    pub fn starting_at(start: Instant) -> Clock {
        Clock { start }
    }

    pub fn now_secs(&self) -> u64 {
        self.secs_at(Instant::now())
    }

    /// The second `at` falls in; 0 for an instant before the start. The request path passes
    /// the `Instant` it already took to measure latency, so recording reads no clock.
    pub fn secs_at(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.start).as_secs()
    }

    pub fn uptime(&self) -> Duration {
        self.start.elapsed()
    }
}

/// The process's clock: started with the process (at its first use, early in `main`).
pub fn clock() -> &'static Clock {
    static CLOCK: std::sync::OnceLock<Clock> = std::sync::OnceLock::new();
    CLOCK.get_or_init(Clock::new)
}

impl Default for Clock {
    fn default() -> Clock {
        Clock::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_counts_whole_seconds_from_its_start() {
        let start = Instant::now();
        let clock = Clock::starting_at(start);
        assert_eq!(clock.secs_at(start), 0);
        assert_eq!(clock.secs_at(start + Duration::from_millis(999)), 0);
        assert_eq!(clock.secs_at(start + Duration::from_millis(61_000)), 61);
        let before = start.checked_sub(Duration::from_secs(1));
        if let Some(before) = before {
            assert_eq!(clock.secs_at(before), 0);
        }
    }
}
