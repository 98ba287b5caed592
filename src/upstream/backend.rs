//! One backend: its URL, its health, its handles and its in-flight count.
//!
//! A [`Handle`] is the right to send one request to the backend at a time, the Rust form of
//! GoAround's buffered channel of connections: `-n` handles per backend live in a bounded
//! crossbeam channel, a worker takes one for the duration of an exchange and gives it back.
//! Each handle owns a ureq `Agent` that keeps at most one idle connection, so the handle *is*
//! the upstream connection and no pool is shared (or searched under a lock) between workers.
//!
//! A backend that is removed from the set is *retired*: handles that come back afterwards are
//! dropped with their connections, so its in-flight requests finish and nothing new starts.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};

use crate::config::BackendUrl;

/// Timeouts and sizes every upstream agent is built with.
#[derive(Debug, Clone)]
pub struct AgentSettings {
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
    /// Trust for https backends (bundled web roots, or `-backend-ca`).
    pub tls: ureq::tls::TlsConfig,
}

/// The right to one concurrent request to a backend, with the connection that carries it.
pub struct Handle {
    pub(crate) agent: ureq::Agent,
}

impl Handle {
    fn new(settings: &AgentSettings) -> Handle {
        use ureq::config::AutoHeaderValue;
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .allow_non_standard_methods(true)
            .user_agent(AutoHeaderValue::None)
            .accept(AutoHeaderValue::None)
            .accept_encoding(AutoHeaderValue::None)
            .timeout_connect(Some(settings.connect_timeout))
            .timeout_recv_response(Some(settings.response_timeout))
            // A backend that stops sending in the middle of a body is as dead as one that
            // never answers: the same limit applies between reads.
            .timeout_per_read(Some(settings.response_timeout))
            // And a backend that stops reading an upload.
            .timeout_per_write(Some(settings.response_timeout))
            .max_idle_connections(1)
            .max_idle_connections_per_host(1)
            .input_buffer_size(64 * 1024)
            .output_buffer_size(64 * 1024)
            .tls_config(settings.tls.clone())
            .build();
        Handle {
            agent: ureq::Agent::new_with_config(config),
        }
    }
}

/// Why a backend is down, for the log line of the transition.
pub type DownReason = String;

/// A backend in the current set (or retired from it, while its requests drain).
pub struct Backend {
    pub url: BackendUrl,
    up: AtomicBool,
    /// The first health check has given a verdict (until then the backend is *pending*).
    checked: AtomicBool,
    retired: AtomicBool,
    in_flight: AtomicUsize,
    /// Requests sent to this backend since it was added (for `list` and `/status`).
    served: AtomicU64,
    /// Failed exchanges in a row (passive health); any success resets it.
    failures: AtomicU32,
    /// Times requests took the backend out; a health check that began before the latest one
    /// must not bring it back.
    passive_downs: AtomicU64,
    handles_tx: Sender<Handle>,
    handles_rx: Receiver<Handle>,
    /// Wakes the backend's health thread early (added, retired, or a passive failure).
    pub(crate) health_wake: Sender<()>,
    pub(crate) health_wake_rx: Receiver<()>,
}

impl Backend {
    /// A new backend, down until its first health check passes, with `handles` handles.
    pub fn new(url: BackendUrl, handles: usize, settings: &AgentSettings) -> Arc<Backend> {
        let (handles_tx, handles_rx) = crossbeam_channel::bounded(handles);
        for _ in 0..handles {
            // Cannot fail: the channel was made with room for exactly `handles`.
            let _ = handles_tx.try_send(Handle::new(settings));
        }
        let (health_wake, health_wake_rx) = crossbeam_channel::bounded(1);
        Arc::new(Backend {
            url,
            up: AtomicBool::new(false),
            checked: AtomicBool::new(false),
            retired: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            served: AtomicU64::new(0),
            failures: AtomicU32::new(0),
            passive_downs: AtomicU64::new(0),
            handles_tx,
            handles_rx,
            health_wake,
            health_wake_rx,
        })
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    /// Whether the backend may be given new requests.
    pub fn is_usable(&self) -> bool {
        self.is_up() && !self.is_retired()
    }

    pub fn is_retired(&self) -> bool {
        self.retired.load(Ordering::Acquire)
    }

    /// Sets the health state; returns true when it changed (the caller logs the transition).
    pub fn set_up(&self, up: bool) -> bool {
        let changed = self.up.swap(up, Ordering::AcqRel) != up;
        self.checked.store(true, Ordering::Release);
        changed
    }

    /// Added, but not checked yet: worth waiting a moment for rather than answering 503.
    pub fn is_pending(&self) -> bool {
        !self.checked.load(Ordering::Acquire) && !self.is_retired()
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    pub fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }

    /// Requests found the backend failing: take it out now. Returns true on a transition.
    pub fn mark_down_passively(&self) -> bool {
        self.passive_downs.fetch_add(1, Ordering::AcqRel);
        self.set_up(false)
    }

    /// How many times requests took the backend out (see [`mark_down_passively`]).
    ///
    /// [`mark_down_passively`]: Self::mark_down_passively
    pub fn passive_downs(&self) -> u64 {
        self.passive_downs.load(Ordering::Acquire)
    }

    /// Passive health: an exchange got a response head.
    pub fn record_success(&self) {
        if self.failures.load(Ordering::Relaxed) != 0 {
            self.failures.store(0, Ordering::Relaxed);
        }
    }

    /// Passive health: an exchange failed; returns the failures in a row so far.
    pub fn record_failure(&self) -> u32 {
        self.failures.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Takes the backend out of service for good; in-flight requests finish.
    pub fn retire(&self) {
        self.retired.store(true, Ordering::Release);
        // Drop the idle handles now; busy ones are dropped as they come back.
        while self.handles_rx.try_recv().is_ok() {}
        self.wake_health();
    }

    /// Asks the health thread to check now (it may already be checking: then nothing to do).
    pub fn wake_health(&self) {
        let _ = self.health_wake.try_send(());
    }

    pub(crate) fn handles(&self) -> &Receiver<Handle> {
        &self.handles_rx
    }

    /// Wraps a handle taken from [`handles`](Self::handles) into a lease on this backend.
    pub(crate) fn lease(self: &Arc<Self>, handle: Handle) -> Lease {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.served.fetch_add(1, Ordering::Relaxed);
        Lease {
            backend: Arc::clone(self),
            handle: Some(handle),
        }
    }

    fn give_back(&self, handle: Handle) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        if self.is_retired() {
            return;
        }
        // Never full: there are never more handles than the channel holds.
        let _ = self.handles_tx.try_send(handle);
        if self.is_retired() {
            // Retired between the check and the send: do not leave it in the channel.
            while self.handles_rx.try_recv().is_ok() {}
        }
    }
}

/// A handle taken from a backend; given back when dropped.
pub struct Lease {
    backend: Arc<Backend>,
    handle: Option<Handle>,
}

impl Lease {
    pub fn backend(&self) -> &Arc<Backend> {
        &self.backend
    }

    pub(crate) fn agent(&self) -> &ureq::Agent {
        // Always Some until drop.
        &self
            .handle
            .as_ref()
            .expect("lease holds its handle until dropped")
            .agent
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            self.backend.give_back(handle);
        }
    }
}

/// Agent settings for unit tests: short timeouts, default trust.
#[cfg(test)]
pub(crate) fn test_settings() -> AgentSettings {
    AgentSettings {
        connect_timeout: Duration::from_secs(1),
        response_timeout: Duration::from_secs(1),
        tls: ureq::tls::TlsConfig::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> AgentSettings {
        test_settings()
    }

    fn backend(n: usize) -> Arc<Backend> {
        let url = BackendUrl::parse("http://127.0.0.1:1").unwrap();
        Backend::new(url, n, &settings())
    }

    #[test]
    fn starts_down_with_n_handles() {
        let b = backend(3);
        assert!(!b.is_up());
        assert_eq!(b.handles().len(), 3);
        assert!(b.set_up(true));
        assert!(!b.set_up(true), "no transition");
        assert!(b.is_usable());
    }

    #[test]
    fn lease_counts_in_flight_and_returns_the_handle() {
        let b = backend(2);
        let lease = b.lease(b.handles().try_recv().unwrap());
        assert_eq!(b.in_flight(), 1);
        assert_eq!(b.handles().len(), 1);
        drop(lease);
        assert_eq!(b.in_flight(), 0);
        assert_eq!(b.handles().len(), 2);
    }

    #[test]
    fn retired_backend_drops_handles_as_they_come_back() {
        let b = backend(2);
        let lease = b.lease(b.handles().try_recv().unwrap());
        b.retire();
        assert_eq!(b.handles().len(), 0, "idle handles dropped at once");
        drop(lease);
        assert_eq!(b.handles().len(), 0, "busy handle dropped on return");
        assert_eq!(b.in_flight(), 0);
        assert!(!b.is_usable());
    }
}
