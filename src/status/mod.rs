//! The operator's status page: `/status` (one self-contained HTML page) and `/status.json`
//! (the same data for scripts and for the page's own refresh).
//!
//! The server fills a [`StatusSnapshot`], plain data, from the backend set, the recorders of
//! `stats` and the cache; this module only renders it. The page is rendered server-side so
//! it reads without JavaScript; its inline script then fetches `/status.json` every two
//! seconds and rebuilds the same markup in place, keeping the last data (and saying so) when
//! a fetch fails. Nothing is loaded from anywhere else: styles and script are inline, and the
//! page's Content-Security-Policy forbids any other origin.
//!
//! | file | owns |
//! |---|---|
//! | here | the snapshot types |
//! | `build.rs` | [`snapshot`]: the snapshot of the live process |
//! | `json.rs` | [`render_json`]: hand-written JSON with stable snake_case keys |
//! | `html.rs` | [`render_html`]: the page, with `page.css` and `page.js` inlined |
//! | `format.rs` | how numbers, sizes and durations are written; `page.js` mirrors it |

mod build;
mod format;
mod html;
mod json;

pub use build::{snapshot, Sources};
pub use html::render_html;
pub use json::render_json;

use crate::stats::{BackendCounters, ErrorCounts, HealthView, ProcessTotals};

/// Everything the page shows, taken at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusSnapshot {
    /// `CARGO_PKG_VERSION` of the running binary.
    pub version: String,
    /// Linked statically (the shipped musl build); see [`build_is_static`].
    pub build_static: bool,
    pub uptime_secs: u64,
    /// The command line it runs with, program name excluded.
    pub flags: Vec<String>,
    pub totals: ProcessTotals,
    pub upstreams: Vec<UpstreamStatus>,
}

/// A group of backends balanced together.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamStatus {
    pub name: String,
    /// The balancing policy, e.g. `round-robin`.
    pub balancer: String,
    /// Path of the active health check; `None`: no active checks, only passive health
    /// (a `-config` upstream without `health_check`).
    pub health_check: Option<String>,
    pub backends: Vec<BackendStatus>,
}

/// Whether a backend is given requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendState {
    /// Passing its checks: given requests.
    Up,
    /// Failing its checks, or taken out by failed requests.
    Down,
    /// Removed from the set; its in-flight requests are finishing.
    Draining,
    /// Added, first check not finished yet.
    Pending,
}

impl BackendState {
    /// The word shown on the page and used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendState::Up => "up",
            BackendState::Down => "down",
            BackendState::Draining => "draining",
            BackendState::Pending => "pending",
        }
    }
}

/// The latest active health check of a backend.
#[derive(Debug, Clone, PartialEq)]
pub struct LastCheck {
    pub ago_secs: u64,
    pub ok: bool,
    pub duration_ms: f64,
    pub message: String,
}

/// One backend's line on the page.
#[derive(Debug, Clone, PartialEq)]
pub struct BackendStatus {
    pub url: String,
    pub state: BackendState,
    /// Why it is not up: the failed check with its message, failed requests, removal.
    pub reason: Option<String>,
    /// Seconds in the current state (since added when it never changed); None if unknown.
    pub since_change_secs: Option<u64>,
    pub last_check: Option<LastCheck>,
    pub in_flight: u64,
    /// Concurrent requests allowed (`-n`).
    pub limit: u64,
    pub requests: u64,
    pub rps_10s: f64,
    pub errors: ErrorCounts,
    pub latency_p50_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
    /// Bytes received from the backend.
    pub bytes_in: u64,
    /// Bytes sent to the backend.
    pub bytes_out: u64,
    /// For weighted balancers; None where weights do not apply.
    pub weight: Option<u32>,
}

impl BackendStatus {
    /// A backend with no traffic and no health history yet.
    pub fn new(url: impl Into<String>, state: BackendState) -> BackendStatus {
        BackendStatus {
            url: url.into(),
            state,
            reason: None,
            since_change_secs: None,
            last_check: None,
            in_flight: 0,
            limit: 0,
            requests: 0,
            rps_10s: 0.0,
            errors: ErrorCounts::default(),
            latency_p50_ms: None,
            latency_p99_ms: None,
            bytes_in: 0,
            bytes_out: 0,
            weight: None,
        }
    }

    /// Copies the traffic numbers read from the backend's `stats::BackendStats`.
    pub fn with_counters(mut self, c: &BackendCounters) -> BackendStatus {
        self.requests = c.requests;
        self.rps_10s = c.rps_10s;
        self.errors = c.errors;
        self.latency_p50_ms = c.latency_p50_ms;
        self.latency_p99_ms = c.latency_p99_ms;
        self.bytes_in = c.bytes_in;
        self.bytes_out = c.bytes_out;
        self
    }

    /// Copies the backend's `stats::HealthRecord` as seen at second `now_secs`.
    pub fn with_health(mut self, h: &HealthView, now_secs: u64) -> BackendStatus {
        self.reason.clone_from(&h.reason);
        self.since_change_secs = h.changed_at_secs.map(|at| now_secs.saturating_sub(at));
        self.last_check = h.last_check.as_ref().map(|c| LastCheck {
            ago_secs: now_secs.saturating_sub(c.at_secs),
            ok: c.ok,
            duration_ms: c.duration.as_secs_f64() * 1000.0,
            message: c.message.clone(),
        });
        self
    }
}

/// Whether this binary was linked statically (the C runtime included), as `make static`
/// builds it.
pub fn build_is_static() -> bool {
    cfg!(target_feature = "crt-static")
}

/// Snapshots for the tests of this module's files.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;
    use crate::stats::CacheTotals;

    pub(crate) fn backend(url: &str, state: BackendState) -> BackendStatus {
        BackendStatus {
            since_change_secs: Some(192),
            last_check: Some(LastCheck {
                ago_secs: 1,
                ok: state == BackendState::Up,
                duration_ms: 2.125,
                message: "200 OK".into(),
            }),
            in_flight: 3,
            limit: 16,
            requests: 123_456,
            rps_10s: 41.7,
            errors: ErrorCounts {
                http_5xx: 2,
                connect: 1,
                ..ErrorCounts::default()
            },
            latency_p50_ms: Some(1.234),
            latency_p99_ms: Some(48.5),
            bytes_in: 5_000_000,
            bytes_out: 120_000,
            ..BackendStatus::new(url, state)
        }
    }

    pub(crate) fn snapshot() -> StatusSnapshot {
        let mut down = backend("http://10.0.0.2:8080", BackendState::Down);
        down.reason = Some("check failed: status 503".into());
        StatusSnapshot {
            version: "0.1.0".into(),
            build_static: true,
            uptime_secs: 93_784,
            flags: vec![
                "-b".into(),
                "http://10.0.0.1:8080".into(),
                "-n".into(),
                "16".into(),
            ],
            totals: ProcessTotals {
                client_connections: 12,
                tunnels: 1,
                requests: 999_999,
                rps_10s: 83.4,
                cache: Some(CacheTotals {
                    hits: 7,
                    misses: 1,
                    bytes: 2048,
                    entries: 3,
                }),
            },
            upstreams: vec![UpstreamStatus {
                name: "default".into(),
                balancer: "round-robin".into(),
                health_check: Some("/health".into()),
                backends: vec![backend("http://10.0.0.1:8080", BackendState::Up), down],
            }],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{CheckResult, ErrorCounts};
    use std::time::Duration;

    #[test]
    fn a_backend_line_from_the_recorders() {
        let counters = BackendCounters {
            requests: 10,
            rps_10s: 1.0,
            errors: ErrorCounts {
                timeout: 2,
                ..ErrorCounts::default()
            },
            latency_p50_ms: Some(3.0),
            latency_p99_ms: Some(9.0),
            bytes_in: 100,
            bytes_out: 50,
        };
        let health = HealthView {
            changed_at_secs: Some(40),
            reason: Some("check failed: status 500".into()),
            last_check: Some(CheckResult {
                at_secs: 98,
                ok: false,
                duration: Duration::from_micros(1500),
                message: "status 500".into(),
            }),
        };
        let b = BackendStatus::new("http://a:1", BackendState::Down)
            .with_counters(&counters)
            .with_health(&health, 100);
        assert_eq!(b.requests, 10);
        assert_eq!(b.errors.timeout, 2);
        assert_eq!(b.since_change_secs, Some(60));
        assert_eq!(b.reason.as_deref(), Some("check failed: status 500"));
        let check = b.last_check.unwrap();
        assert_eq!((check.ago_secs, check.ok), (2, false));
        assert_eq!(check.duration_ms, 1.5);
    }
}
