//! Numbers for the whole process: open client connections and tunnels, every request
//! answered (by a backend, from the cache, or by goaround itself) and its rate, and the
//! cache's hit ratio. [`ProcessStats`] records what no other module counts; [`ProcessTotals`]
//! is the snapshot the status page shows, which the server completes with the cache's own
//! counters ([`CacheTotals`]).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use super::backend::RATE_WINDOW_SECS;
use super::ring::{window, Ring};

/// The recorder of process-wide counts, shared by every event loop.
#[derive(Default)]
pub struct ProcessStats {
    /// Gauges, signed so that a close seen before its open cannot wrap; read clamped at 0.
    client_connections: AtomicI64,
    tunnels: AtomicI64,
    requests: AtomicU64,
    seconds: Ring<AtomicU64>,
}

impl ProcessStats {
    pub fn new() -> ProcessStats {
        ProcessStats::default()
    }

    pub fn connection_opened(&self) {
        self.client_connections.fetch_add(1, Ordering::Relaxed);
    }

    pub fn connection_closed(&self) {
        self.client_connections.fetch_sub(1, Ordering::Relaxed);
    }

    /// A connection became a tunnel (101 Switching Protocols or CONNECT).
    pub fn tunnel_opened(&self) {
        self.tunnels.fetch_add(1, Ordering::Relaxed);
    }

    pub fn tunnel_closed(&self) {
        self.tunnels.fetch_sub(1, Ordering::Relaxed);
    }

    /// A response went to a client at second `now_secs`, whoever produced it.
    pub fn record_request(&self, now_secs: u64) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if let Some(second) = self.seconds.slot(now_secs) {
            second.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The totals as of second `now_secs`, without cache numbers (the server adds them).
    pub fn read(&self, now_secs: u64) -> ProcessTotals {
        let mut recent = 0;
        self.seconds.read(
            window(now_secs, RATE_WINDOW_SECS, true),
            |s| s.load(Ordering::Relaxed),
            |n| recent += n,
        );
        let gauge = |g: &AtomicI64| u64::try_from(g.load(Ordering::Relaxed)).unwrap_or(0);
        ProcessTotals {
            client_connections: gauge(&self.client_connections),
            tunnels: gauge(&self.tunnels),
            requests: self.requests.load(Ordering::Relaxed),
            rps_10s: recent as f64 / RATE_WINDOW_SECS as f64,
            cache: None,
        }
    }
}

/// The process-wide line at the top of the status page.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ProcessTotals {
    /// Client connections open now (tunnels included).
    pub client_connections: u64,
    /// Connections relaying bytes both ways after a 101 or a CONNECT.
    pub tunnels: u64,
    /// Responses sent to clients since start.
    pub requests: u64,
    /// Responses per second over the last [`RATE_WINDOW_SECS`] complete seconds.
    pub rps_10s: f64,
    /// None when the cache is off (`-cache` not given).
    pub cache: Option<CacheTotals>,
}

/// The GET cache's counters, copied from `cache::CacheStats`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CacheTotals {
    pub hits: u64,
    pub misses: u64,
    /// Bytes held now.
    pub bytes: u64,
    /// Responses (variants) held now.
    pub entries: u64,
}

impl CacheTotals {
    /// Hits among lookups, 0 to 1; None before the first lookup.
    pub fn hit_ratio(&self) -> Option<f64> {
        let lookups = self.hits + self.misses;
        (lookups > 0).then(|| self.hits as f64 / lookups as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauges_and_rate() {
        let p = ProcessStats::new();
        p.connection_opened();
        p.connection_opened();
        p.connection_closed();
        p.tunnel_opened();
        for second in 20..30 {
            for _ in 0..3 {
                p.record_request(second);
            }
        }
        let t = p.read(30);
        assert_eq!((t.client_connections, t.tunnels), (1, 1));
        assert_eq!(t.requests, 30);
        assert_eq!(t.rps_10s, 3.0);
        assert_eq!(p.read(45).rps_10s, 0.0);
    }

    #[test]
    fn a_gauge_never_reads_below_zero() {
        let p = ProcessStats::new();
        p.tunnel_closed();
        assert_eq!(p.read(0).tunnels, 0);
        p.tunnel_opened();
        assert_eq!(
            p.read(0).tunnels,
            0,
            "the early close and the open cancel out"
        );
    }

    #[test]
    fn hit_ratio() {
        let none = CacheTotals::default();
        assert_eq!(none.hit_ratio(), None);
        let c = CacheTotals {
            hits: 3,
            misses: 1,
            ..CacheTotals::default()
        };
        assert_eq!(c.hit_ratio(), Some(0.75));
    }
}
