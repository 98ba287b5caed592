//! What requests to one backend did: all-time counters and the last minute, second by second.
//!
//! Event-loop threads record into a [`BackendStats`] with a few relaxed `fetch_add`s (no
//! lock, no allocation); the status page reads a [`BackendCounters`] from it every couple of
//! seconds. A *request* here is one attempt sent to the backend that ended, with a response
//! head or with a [`Failure`]; a retry on another backend is a request to that one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::latency::{Counts, Histogram};
use super::ring::{window, Ring, Slot};

/// Seconds the request rate is averaged over.
pub const RATE_WINDOW_SECS: u64 = 10;
/// Seconds the latency percentiles cover (the whole ring).
pub const LATENCY_WINDOW_SECS: u64 = super::ring::SECONDS;

/// An attempt that got no usable response head; the names are those of the
/// `goaround_upstream_errors_total{kind}` metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No connection could be made: nothing was sent.
    Connect,
    /// No response head within the response timeout.
    Timeout,
    /// The connection was reset or closed before a response head.
    Reset,
    /// The backend sent something that is not an HTTP/1.1 response.
    Protocol,
}

/// Errors since the backend was added, by kind.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ErrorCounts {
    /// Responses with a 5xx status: the backend answered, with an error.
    pub http_5xx: u64,
    pub connect: u64,
    pub timeout: u64,
    pub reset: u64,
    pub protocol: u64,
}

impl ErrorCounts {
    pub fn total(&self) -> u64 {
        self.http_5xx + self.connect + self.timeout + self.reset + self.protocol
    }
}

/// One backend's numbers at one moment, for the status page.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct BackendCounters {
    pub requests: u64,
    /// Requests per second over the [`RATE_WINDOW_SECS`] complete seconds before now.
    pub rps_10s: f64,
    pub errors: ErrorCounts,
    /// Latency quantiles of the responses of the last minute, in milliseconds; None without
    /// responses. Within one histogram bucket (< 25 %) of the true value.
    pub latency_p50_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
    /// Bytes received from the backend.
    pub bytes_in: u64,
    /// Bytes sent to the backend.
    pub bytes_out: u64,
}

/// One second of one backend.
#[derive(Default)]
struct Second {
    requests: AtomicU64,
    latency: Histogram,
}

impl Slot for Second {
    fn clear(&self) {
        self.requests.store(0, Ordering::Relaxed);
        self.latency.clear();
    }
}

/// The recorder of one backend; shared by every thread that sends it requests. About 40 KiB
/// (a minute of latency histograms), allocated once when the backend is added.
#[derive(Default)]
pub struct BackendStats {
    requests: AtomicU64,
    http_5xx: AtomicU64,
    connect: AtomicU64,
    timeout: AtomicU64,
    reset: AtomicU64,
    protocol: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    seconds: Ring<Second>,
}

impl BackendStats {
    pub fn new() -> BackendStats {
        BackendStats::default()
    }

    /// A response head came back at second `now_secs`, `latency` after the request was sent
    /// (the same duration as `goaround_request_duration_seconds`). Tunnels (101, CONNECT)
    /// should be recorded once with their time to the response head, not their lifetime.
    pub fn record_response(&self, now_secs: u64, status: u16, latency: Duration) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if (500..600).contains(&status) {
            self.http_5xx.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(second) = self.seconds.slot(now_secs) {
            second.requests.fetch_add(1, Ordering::Relaxed);
            let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
            second.latency.record(micros);
        }
    }

    /// An attempt ended at second `now_secs` without a response head.
    pub fn record_failure(&self, now_secs: u64, failure: Failure) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let counter = match failure {
            Failure::Connect => &self.connect,
            Failure::Timeout => &self.timeout,
            Failure::Reset => &self.reset,
            Failure::Protocol => &self.protocol,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if let Some(second) = self.seconds.slot(now_secs) {
            second.requests.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// `n` bytes read from the backend (response head and body), as they arrive.
    pub fn record_bytes_in(&self, n: u64) {
        self.bytes_in.fetch_add(n, Ordering::Relaxed);
    }

    /// `n` bytes written to the backend (request head and body), as they leave.
    pub fn record_bytes_out(&self, n: u64) {
        self.bytes_out.fetch_add(n, Ordering::Relaxed);
    }

    /// The numbers as of second `now_secs`.
    pub fn read(&self, now_secs: u64) -> BackendCounters {
        let mut recent = 0;
        self.seconds.read(
            window(now_secs, RATE_WINDOW_SECS, true),
            |s| s.requests.load(Ordering::Relaxed),
            |n| recent += n,
        );
        let mut latency = Counts::default();
        self.seconds.read(
            window(now_secs, LATENCY_WINDOW_SECS, false),
            |s| {
                let mut c = Counts::default();
                s.latency.add_to(&mut c);
                c
            },
            |c| latency.add(&c),
        );
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        BackendCounters {
            requests: load(&self.requests),
            rps_10s: recent as f64 / RATE_WINDOW_SECS as f64,
            errors: ErrorCounts {
                http_5xx: load(&self.http_5xx),
                connect: load(&self.connect),
                timeout: load(&self.timeout),
                reset: load(&self.reset),
                protocol: load(&self.protocol),
            },
            latency_p50_ms: latency.quantile_ms(0.50),
            latency_p99_ms: latency.quantile_ms(0.99),
            bytes_in: load(&self.bytes_in),
            bytes_out: load(&self.bytes_out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn rate_over_the_last_ten_complete_seconds() {
        let stats = BackendStats::new();
        // 5 requests in each of seconds 100..=109, 99 in the running second 110.
        for second in 100..110 {
            for _ in 0..5 {
                stats.record_response(second, 200, MS);
            }
        }
        for _ in 0..99 {
            stats.record_response(110, 200, MS);
        }
        let c = stats.read(110);
        assert_eq!(c.rps_10s, 5.0);
        assert_eq!(c.requests, 50 + 99);
        // A second later, second 100 has left the window and 110 has joined it.
        assert_eq!(stats.read(111).rps_10s, (45.0 + 99.0) / 10.0);
    }

    #[test]
    fn failures_count_as_requests_and_by_kind() {
        let stats = BackendStats::new();
        stats.record_response(1, 503, MS);
        stats.record_response(1, 502, MS);
        stats.record_response(1, 404, MS);
        stats.record_failure(1, Failure::Connect);
        stats.record_failure(1, Failure::Timeout);
        stats.record_failure(1, Failure::Timeout);
        stats.record_failure(1, Failure::Reset);
        stats.record_failure(1, Failure::Protocol);
        let c = stats.read(2);
        assert_eq!(c.requests, 8);
        assert_eq!(c.rps_10s, 0.8);
        let want = ErrorCounts {
            http_5xx: 2,
            connect: 1,
            timeout: 2,
            reset: 1,
            protocol: 1,
        };
        assert_eq!(c.errors, want);
        assert_eq!(want.total(), 7);
    }

    #[test]
    fn old_seconds_leave_the_windows() {
        let stats = BackendStats::new();
        for _ in 0..100 {
            stats.record_response(10, 200, 500 * MS);
        }
        let c = stats.read(11);
        assert_eq!(c.rps_10s, 10.0);
        assert!(c.latency_p50_ms.is_some());
        // Out of the rate window, still in the latency minute.
        let c = stats.read(25);
        assert_eq!(c.rps_10s, 0.0);
        assert!(c.latency_p99_ms.is_some());
        // A minute later: no latency left, totals kept.
        let c = stats.read(70);
        assert_eq!((c.latency_p50_ms, c.latency_p99_ms), (None, None));
        assert_eq!(c.requests, 100);
        // A slot reused by a later second holds only that second.
        stats.record_response(70, 200, 2 * MS);
        let p99 = stats.read(70).latency_p99_ms.unwrap();
        assert!(p99 < 3.0, "the 500 ms samples of second 10 are gone: {p99}");
    }

    #[test]
    fn percentiles_over_the_minute() {
        let stats = BackendStats::new();
        // 1..=1000 ms spread over 50 seconds: p50 is 500 ms, p99 990 ms.
        for ms in 1..=1000u64 {
            stats.record_response(1000 + ms % 50, 200, Duration::from_millis(ms));
        }
        let c = stats.read(1049);
        let p50 = c.latency_p50_ms.unwrap();
        let p99 = c.latency_p99_ms.unwrap();
        // One bucket at 500 ms is 65.5 ms wide, at 990 ms 131 ms.
        assert!((p50 - 500.0).abs() <= 65.6, "p50 {p50}");
        assert!((p99 - 990.0).abs() <= 131.1, "p99 {p99}");
        assert!(p50 < p99);
    }

    #[test]
    fn bytes_both_ways() {
        let stats = BackendStats::new();
        stats.record_bytes_out(100);
        stats.record_bytes_in(1000);
        stats.record_bytes_in(24);
        let c = stats.read(0);
        assert_eq!((c.bytes_in, c.bytes_out), (1024, 100));
    }

    #[test]
    fn concurrent_recording_sums() {
        const THREADS: u64 = 4;
        const PER_THREAD: u64 = 20_000;
        let stats = Arc::new(BackendStats::new());
        let threads: Vec<_> = (0..THREADS)
            .map(|t| {
                let stats = Arc::clone(&stats);
                std::thread::Builder::new()
                    .name(format!("stats-test-{t}"))
                    .spawn(move || {
                        for i in 0..PER_THREAD {
                            // Every thread crosses the same second boundaries, so the slots
                            // are claimed and cleared under contention. Seconds 500..=504.
                            let second = 500 + i * 5 / PER_THREAD;
                            stats.record_response(second, 200, MS);
                            stats.record_bytes_in(2);
                        }
                    })
                    .expect("spawn")
            })
            .collect();
        for t in threads {
            t.join().expect("recorder thread");
        }
        let c = stats.read(505);
        assert_eq!(
            c.requests,
            THREADS * PER_THREAD,
            "totals never lose a sample"
        );
        assert_eq!(c.bytes_in, 2 * THREADS * PER_THREAD);
        // The window may miss the few samples recorded while a slot was being cleared (a
        // handful per second boundary), and never counts one twice or keeps a stale one.
        let in_window = (c.rps_10s * RATE_WINDOW_SECS as f64).round() as u64;
        assert!(in_window <= THREADS * PER_THREAD);
        let lost = THREADS * PER_THREAD - in_window;
        assert!(
            lost * 100 <= THREADS * PER_THREAD,
            "{lost} samples left out of the window"
        );
    }
}
