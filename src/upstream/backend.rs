//! One backend: its URL, its addresses, its health, and its `-n` slots.
//!
//! A [`Slot`] is the right to have one request in flight to the backend, GoAround's `-n`
//! (its buffered channel of connections) made a counter: at most `limit` slots are out at
//! once, across every event loop. A slot is taken with one compare-and-swap and returned by
//! dropping it; a returned slot goes straight to the first request queued for the backend's
//! set, if any (see `set.rs`), so waiting requests are served in arrival order.
//!
//! Connections are not slots: each event loop keeps its own idle keep-alive connections per
//! backend, and a slot only limits how many requests are in flight.
//!
//! Addresses: a backend named by IP literal has one address for good. A host name is
//! resolved by the backend's health thread before each check (and when a connect fails), so
//! an event loop never blocks on DNS; every address is used in turn, and a changed address
//! is picked up at the next check. A backend that is removed from the set is *retired*:
//! in-flight requests finish, nothing new is sent.
//!
//! Health, three ways: the active check (`up`, set by the health thread; a backend of an
//! upstream without checks is up from the start); GoAround's `-max-fails` (failures in a
//! row take a `-b` backend out until its check passes); and a `-config` server's
//! `max_fail`/`fail_timeout` (`passive`, nginx's rules, see `passive.rs`), whose pause is
//! mirrored in an atomic so that choosing a backend takes no lock.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use super::balancer::Candidate;
use super::passive::{PassiveHealth, Transition};
use super::set::WaitQueue;
use crate::config::BackendUrl;
use crate::stats::{BackendStats, HealthRecord};

/// Gives every backend a process-wide identity, for per-loop connection pools and for the
/// backends a queued request must not be given.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A backend in the current set (or retired from it, while its requests drain).
pub struct Backend {
    pub url: BackendUrl,
    /// Unique in the process, never reused.
    pub id: u64,
    /// `-n` (or the upstream's `handles`): requests in flight at once.
    limit: AtomicUsize,
    /// Share of requests relative to the other backends of its upstream (balancers).
    weight: AtomicU32,
    /// A `-config` server's `max_fail`/`fail_timeout`; `None` for `-b` backends.
    passive: Mutex<Option<PassiveHealth>>,
    /// While `passive` keeps the backend out: until this many nanoseconds after [`epoch`]
    /// (0: not out).
    passive_until: AtomicU64,
    /// `passive` is set (read on every response without taking its lock).
    has_passive: AtomicBool,
    /// `passive` has seen a failure since its last success: a success has something to do.
    passive_dirty: AtomicBool,
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
    addresses: Mutex<Arc<[SocketAddr]>>,
    next_address: AtomicUsize,
    /// The requests waiting for a slot of this backend's set.
    queue: Arc<WaitQueue>,
    /// Traffic, errors and latency for the status page.
    pub stats: BackendStats,
    /// Checks and changes of state for the status page.
    pub health: HealthRecord,
    /// Wakes the backend's health thread early (added, retired, or a passive failure).
    pub(crate) health_wake: Sender<()>,
    pub(crate) health_wake_rx: Receiver<()>,
}

impl Backend {
    /// A checked backend (down until its first health check passes) with `limit` slots.
    #[cfg(test)]
    pub(crate) fn new(url: BackendUrl, limit: usize, queue: Arc<WaitQueue>) -> Arc<Backend> {
        Backend::with_health(url, limit, queue, false)
    }

    /// A new backend with `limit` slots: down until its first health check passes, or up at
    /// once when its upstream has no checks (`unchecked`).
    pub(crate) fn with_health(
        url: BackendUrl,
        limit: usize,
        queue: Arc<WaitQueue>,
        unchecked: bool,
    ) -> Arc<Backend> {
        let (health_wake, health_wake_rx) = crossbeam_channel::bounded(1);
        let literal: Arc<[SocketAddr]> = match url.host().parse::<IpAddr>() {
            Ok(ip) => Arc::new([SocketAddr::new(ip, url.port())]),
            Err(_) => Arc::new([]),
        };
        Arc::new(Backend {
            url,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            limit: AtomicUsize::new(limit),
            weight: AtomicU32::new(1),
            passive: Mutex::new(None),
            passive_until: AtomicU64::new(0),
            has_passive: AtomicBool::new(false),
            passive_dirty: AtomicBool::new(false),
            up: AtomicBool::new(unchecked),
            checked: AtomicBool::new(unchecked),
            retired: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            served: AtomicU64::new(0),
            failures: AtomicU32::new(0),
            passive_downs: AtomicU64::new(0),
            addresses: Mutex::new(literal),
            next_address: AtomicUsize::new(0),
            queue,
            stats: BackendStats::new(),
            health: HealthRecord::new(crate::stats::clock().now_secs()),
            health_wake,
            health_wake_rx,
        })
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    /// Whether the backend may be given new requests.
    pub fn is_usable(&self) -> bool {
        self.is_up() && !self.is_retired() && !self.is_passively_out()
    }

    /// A `-config` server's `max_fail` took it out and its `fail_timeout` is not over.
    pub fn is_passively_out(&self) -> bool {
        let until = self.passive_until.load(Ordering::Acquire);
        until != 0 && nanos_since_epoch(Instant::now()) < until
    }

    /// Sets a `-config` server's `max_fail`/`fail_timeout` (`None`: `-max-fails` rules).
    /// Unchanged settings keep their state.
    pub(crate) fn set_passive(&self, settings: Option<(u32, Duration)>) {
        let mut passive = self.passive.lock().unwrap_or_else(PoisonError::into_inner);
        let wanted =
            settings.map(|(max_fail, fail_timeout)| PassiveHealth::new(max_fail, fail_timeout));
        if passive.map(|p| p.settings()) != wanted.map(|p| p.settings()) {
            *passive = wanted;
            self.passive_until.store(0, Ordering::Release);
            self.passive_dirty.store(false, Ordering::Release);
            self.has_passive.store(wanted.is_some(), Ordering::Release);
        }
    }

    /// Whether `max_fail`/`fail_timeout` rules apply (a `-config` server).
    pub fn has_window_passive(&self) -> bool {
        self.has_passive.load(Ordering::Acquire)
    }

    pub fn weight(&self) -> u32 {
        self.weight.load(Ordering::Relaxed)
    }

    pub(crate) fn set_weight(&self, weight: u32) {
        self.weight.store(weight.max(1), Ordering::Relaxed);
    }

    pub(crate) fn set_limit(&self, limit: usize) {
        self.limit.store(limit, Ordering::Relaxed);
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

    /// `-n`: the most requests in flight at once.
    pub fn limit(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }

    pub fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }

    /// Requests found the backend failing (`why`): take it out now. Returns true on a
    /// transition.
    pub fn mark_down_passively(&self, why: &str) -> bool {
        self.passive_downs.fetch_add(1, Ordering::AcqRel);
        let changed = self.set_up(false);
        if changed {
            let now = crate::stats::clock().now_secs();
            self.health
                .record_change(now, Some(&format!("requests failed: {why}")));
        }
        changed
    }

    /// How many times requests took the backend out (see [`mark_down_passively`]).
    ///
    /// [`mark_down_passively`]: Self::mark_down_passively
    pub fn passive_downs(&self) -> u64 {
        self.passive_downs.load(Ordering::Acquire)
    }

    /// Passive health: an exchange got a response head (a `-config` server: one that is
    /// not 502, 503 or 504). Returns a `max_fail` transition to log.
    pub fn record_success(&self, now: Instant) -> Option<Transition> {
        if self.failures.load(Ordering::Relaxed) != 0 {
            self.failures.store(0, Ordering::Relaxed);
        }
        // The common case (no -config rules, or nothing failed lately) takes no lock.
        if !self.passive_dirty.load(Ordering::Acquire) {
            return None;
        }
        let mut passive = self.passive.lock().unwrap_or_else(PoisonError::into_inner);
        let transition = passive.as_mut()?.record_success(now);
        if transition == Some(Transition::Up) {
            self.passive_until.store(0, Ordering::Release);
        }
        if passive.is_some_and(|p| p.is_healthy()) {
            self.passive_dirty.store(false, Ordering::Release);
        }
        transition
    }

    /// Passive health: an exchange failed. Returns the failures in a row so far (for
    /// `-max-fails`) and, for a `-config` server, a `max_fail` transition to log.
    pub fn record_failure(&self, now: Instant) -> (u32, Option<Transition>) {
        let in_a_row = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        let mut passive = self.passive.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(health) = passive.as_mut() else {
            return (in_a_row, None);
        };
        self.passive_dirty.store(true, Ordering::Release);
        let transition = health.record_failure(now);
        if let Some(Transition::Down { .. }) = transition {
            let until = now + health.settings().1;
            self.passive_until
                .store(nanos_since_epoch(until).max(1), Ordering::Release);
        }
        (in_a_row, transition)
    }

    /// Takes the backend out of service for good; in-flight requests finish.
    pub fn retire(&self) {
        self.retired.store(true, Ordering::Release);
        let now = crate::stats::clock().now_secs();
        self.health
            .record_change(now, Some("removed from its upstream"));
        self.wake_health();
    }

    /// Asks the health thread to check now (it may already be checking: then nothing to do).
    pub fn wake_health(&self) {
        let _ = self.health_wake.try_send(());
    }

    /// The addresses connections go to, in turn; empty until a host name was resolved.
    pub fn addresses(&self) -> Arc<[SocketAddr]> {
        Arc::clone(
            &self
                .addresses
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    /// The address the next new connection should use: every address in turn.
    pub fn next_address(&self) -> Option<SocketAddr> {
        let addresses = self.addresses();
        if addresses.is_empty() {
            return None;
        }
        let i = self.next_address.fetch_add(1, Ordering::Relaxed);
        Some(addresses[i % addresses.len()])
    }

    /// Resolves the host name again (blocking: health threads only). An IP literal needs
    /// nothing. On failure the previous addresses stay.
    pub fn resolve(&self) -> std::io::Result<()> {
        if self.url.host().parse::<IpAddr>().is_ok() {
            return Ok(());
        }
        let found: Vec<SocketAddr> = (self.url.host(), self.url.port())
            .to_socket_addrs()?
            .collect();
        if found.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{}: no address", self.url.host()),
            ));
        }
        let mut current = self
            .addresses
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if current[..] != found[..] {
            *current = found.into();
        }
        Ok(())
    }

    /// Takes a slot if one is free.
    pub(crate) fn try_take_slot(self: &Arc<Self>) -> Option<Slot> {
        let limit = self.limit();
        let mut current = self.in_flight.load(Ordering::SeqCst);
        loop {
            if current >= limit {
                return None;
            }
            match self.in_flight.compare_exchange_weak(
                current,
                current + 1,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => break,
                Err(now) => current = now,
            }
        }
        self.served.fetch_add(1, Ordering::Relaxed);
        Some(Slot {
            backend: Arc::clone(self),
        })
    }
}

/// A backend as a balancer sees it: its weight, its load, its URL as identity.
impl Candidate for Backend {
    fn weight(&self) -> u32 {
        Backend::weight(self)
    }
    fn in_flight(&self) -> usize {
        Backend::in_flight(self)
    }
    fn key(&self) -> &str {
        &self.url.base
    }
}

/// The instant passive pauses are measured from, so they fit an atomic.
fn nanos_since_epoch(at: Instant) -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    u64::try_from(at.saturating_duration_since(epoch).as_nanos()).unwrap_or(u64::MAX)
}

/// A request's place among the backend's `-n`; returned (to the first queued request, if
/// any) when dropped.
pub struct Slot {
    backend: Arc<Backend>,
}

impl Slot {
    pub fn backend(&self) -> &Arc<Backend> {
        &self.backend
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let backend = &self.backend;
        backend.in_flight.fetch_sub(1, Ordering::SeqCst);
        // SeqCst pairs with `WaitQueue::push`: a request that queued before this decrement
        // is seen here; one that queues after it finds the slot free itself.
        if backend.queue.has_waiters() && backend.is_usable() {
            backend.queue.offer(backend);
        }
    }
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Slot({})", self.backend.url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(n: usize) -> Arc<Backend> {
        let url = BackendUrl::parse("http://127.0.0.1:1").unwrap();
        Backend::new(url, n, Arc::default())
    }

    #[test]
    fn starts_down_with_free_slots() {
        let b = backend(3);
        assert!(!b.is_up());
        assert!(b.is_pending());
        assert!(b.set_up(true));
        assert!(!b.set_up(true), "no transition");
        assert!(b.is_usable());
        assert!(!b.is_pending());
    }

    #[test]
    fn slots_are_limited_and_returned_on_drop() {
        let b = backend(2);
        let one = b.try_take_slot().unwrap();
        let two = b.try_take_slot().unwrap();
        assert!(b.try_take_slot().is_none());
        assert_eq!(b.in_flight(), 2);
        drop(one);
        assert_eq!(b.in_flight(), 1);
        assert!(b.try_take_slot().is_some());
        drop(two);
        assert_eq!(b.served(), 3);
    }

    #[test]
    fn ip_literal_has_its_address_and_names_resolve() {
        let b = backend(1);
        assert_eq!(b.next_address(), Some("127.0.0.1:1".parse().unwrap()));
        let named = Backend::new(
            BackendUrl::parse("http://localhost:9").unwrap(),
            1,
            Arc::default(),
        );
        assert_eq!(named.next_address(), None, "nothing before resolving");
        named.resolve().unwrap();
        let addr = named.next_address().unwrap();
        assert!(addr.ip().is_loopback());
        assert_eq!(addr.port(), 9);
    }
}
