//! The response cache behind `-cache`: a shared, byte-bounded store of GET 200 responses
//! with RFC 9111 freshness, `Vary`, invalidation by unsafe methods and collapsed forwarding.
//!
//! GoAround keys by path only, never expires and ignores `Cache-Control`; this cache behaves
//! the way nginx and HAProxy operators expect instead. It does no I/O and never blocks: an
//! event loop asks [`Cache::lookup`] before taking a backend slot and gets a stored
//! response, a [`FillTicket`], or a [`Flight`] to wait on (another request is fetching the
//! URL); with a ticket it forwards, asks the ticket whether the response head is storable,
//! streams the body to the client while keeping a copy up to [`FillTicket::max_body`], and
//! hands the copy to [`FillTicket::store`]. Dropping a ticket without storing (error,
//! unstorable response, too large, panic) releases the requests waiting on it.
//!
//! | file | owns |
//! |---|---|
//! | `policy.rs` | storability and freshness: pure functions of header fields and the time |
//! | `key.rs` | the base key and `Vary` matching |
//! | `store.rs` | the byte-bounded LRU of variants |
//! | `collapse.rs` | flights that waiters block on, outstanding tickets, invalidation |
//! | here | the lock, the clock, counters, and the ticket guard tying them together |
//!
//! One `Mutex` guards the store, the ticket table and the counters; it is held for map
//! operations and `Arc` clones only. Bodies are `Arc<[u8]>`, so a hit never copies one.
//! Not implemented: revalidation (`no-cache`, stale responses are dropped, not revalidated),
//! request `Cache-Control` other than `no-store` (ignored, as nginx does by default), the
//! apparent age from `Date`, and conditional requests answered with 304 from the store.

mod collapse;
mod key;
mod policy;
mod store;
#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use http::header::{AGE, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};

use collapse::{FillTable, Registration};
pub use collapse::{Flight, OnFinish};
use store::{Entry, Store};

pub use policy::{request_is_cacheable, NotStorable, Storable};

/// Default bound on the bytes the store holds (bodies, header fields, keys, overhead).
pub const DEFAULT_MAX_BYTES: usize = 64 * 1024 * 1024;
/// Default largest body stored.
pub const DEFAULT_MAX_OBJECT: usize = 1024 * 1024;
/// Default freshness lifetime of a response without `s-maxage`, `max-age` or `Expires`.
pub const DEFAULT_TTL: Duration = Duration::from_secs(60);

/// Limits of a [`Cache`]; [`Default`] gives the documented defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheConfig {
    /// Bound on the bytes held, every entry charged body + header fields + key + overhead.
    pub max_bytes: usize,
    /// Largest body stored; larger responses pass through uncached.
    pub max_object: usize,
    /// Lifetime when the response states none. Zero: such responses are not stored.
    pub default_ttl: Duration,
}

impl Default for CacheConfig {
    fn default() -> CacheConfig {
        CacheConfig {
            max_bytes: DEFAULT_MAX_BYTES,
            max_object: DEFAULT_MAX_OBJECT,
            default_ttl: DEFAULT_TTL,
        }
    }
}

/// Counters since start, and the current size.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    /// Lookups answered from the store (waiters served after a leader's store included).
    pub hits: u64,
    /// Lookups not answered from the store (requests bypassing the cache not counted).
    pub misses: u64,
    /// Responses stored.
    pub stores: u64,
    /// Entries dropped to stay within the byte bound or the variants-per-URL cap.
    pub evictions: u64,
    /// Entries dropped because they were no longer fresh.
    pub expired: u64,
    /// Lookups that waited for another request's fetch of the same URL.
    pub collapsed: u64,
    /// Bytes charged by the entries held now.
    pub bytes: usize,
    /// Entries (variants) held now.
    pub entries: usize,
}

/// A stored response for one request.
#[derive(Clone)]
pub struct CachedResponse {
    /// Always 200 today.
    pub status: StatusCode,
    /// As given to [`FillTicket::store`], without `Age`, `Content-Length` and
    /// `Transfer-Encoding`: frame the answer with `body.len()`, add `Age` from [`age`](Self::age).
    pub headers: Arc<[(HeaderName, HeaderValue)]>,
    pub body: Arc<[u8]>,
    /// Seconds since stored plus the `Age` it arrived with (RFC 9111 §4.2.3); send
    /// `age.as_secs()` as `Age`.
    pub age: Duration,
}

impl fmt::Debug for CachedResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedResponse")
            .field("status", &self.status)
            .field("headers", &self.headers.len())
            .field("body", &self.body.len())
            .field("age", &self.age)
            .finish()
    }
}

/// The answer of [`Cache::lookup`].
#[derive(Debug)]
pub enum Lookup {
    /// Serve this; do not contact a backend.
    Hit(CachedResponse),
    /// Forward the request. With a ticket the response may be stored through it; without
    /// one (HEAD, or a request bypassing the cache) it must not be.
    Miss(Option<FillTicket>),
    /// Another request is fetching this URL: wait for its [`Flight`] to finish, then look
    /// up again without waiting.
    Wait(Arc<Flight>),
}

/// The time, injectable so tests can move it.
trait Clock: Send + Sync {
    fn now(&self) -> Instant;
    fn wall(&self) -> SystemTime;
}

struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
    fn wall(&self) -> SystemTime {
        SystemTime::now()
    }
}

struct Inner {
    store: Store,
    fills: FillTable,
    hits: u64,
    misses: u64,
    collapsed: u64,
}

struct Shared {
    config: CacheConfig,
    clock: Arc<dyn Clock>,
    inner: Mutex<Inner>,
}

impl Shared {
    /// The critical sections do not panic short of a bug; if one did, the store is still
    /// consistent enough to serve, which beats failing every worker from then on.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The shared response cache; one per process, used by every worker through `&self`.
pub struct Cache {
    shared: Arc<Shared>,
}

impl Cache {
    pub fn new(config: CacheConfig) -> Cache {
        Cache::with_clock(config, Arc::new(SystemClock))
    }

    fn with_clock(config: CacheConfig, clock: Arc<dyn Clock>) -> Cache {
        let inner = Inner {
            store: Store::new(config.max_bytes),
            fills: FillTable::default(),
            hits: 0,
            misses: 0,
            collapsed: 0,
        };
        Cache {
            shared: Arc::new(Shared {
                config,
                clock,
                inner: Mutex::new(inner),
            }),
        }
    }

    /// Looks up the response for `method` (GET or HEAD) on `scheme://host` + `target` (the
    /// request-target as sent, query included) with the request's header fields. Never
    /// blocks.
    ///
    /// On a miss while another request fetches the same URL, and `may_wait`, the answer is
    /// [`Lookup::Wait`]: subscribe to the flight, and when it finishes (or your own patience
    /// ends) look up again with `may_wait` false (collapsed forwarding). A GET miss gets a
    /// ticket; a GET miss that finds no fetch running (and has no `Range` or conditional
    /// fields) leads: it becomes the one others wait for. HEAD is answered from a stored GET
    /// but never gets a ticket. A request [`request_is_cacheable`] refuses gets `Miss(None)`
    /// at once and is not counted.
    pub fn lookup(
        &self,
        method: &Method,
        scheme: &str,
        host: &str,
        target: &str,
        req_headers: &HeaderMap,
        may_wait: bool,
    ) -> Lookup {
        if !request_is_cacheable(method, req_headers) {
            return Lookup::Miss(None);
        }
        let may_fill = method == Method::GET;
        let key = key::base_key(scheme, host, target);
        let shared = &self.shared;
        let mut inner = shared.lock();
        if let Some(found) = inner.store.get(&key, req_headers, shared.clock.now()) {
            inner.hits += 1;
            return Lookup::Hit(hit(found));
        }
        let running = inner.fills.leader(&key);
        if let (Some(flight), true) = (&running, may_wait) {
            inner.collapsed += 1;
            return Lookup::Wait(Arc::clone(flight));
        }
        inner.misses += 1;
        // A waiter that looks again does not wait twice: it fetches, and leads when no fetch
        // runs by now. A response is stored only after its last byte went to the client, who
        // may ask again at once: that request must find a flight to wait on, not fetch a
        // third time.
        let lead = running.is_none() && policy::may_lead(req_headers);
        let ticket = may_fill.then(|| self.ticket(&mut inner, key, req_headers, lead));
        Lookup::Miss(ticket)
    }

    fn ticket(&self, inner: &mut Inner, key: String, req: &HeaderMap, lead: bool) -> FillTicket {
        let (registration, flight) = inner.fills.open(&key, lead);
        FillTicket {
            shared: Arc::clone(&self.shared),
            key,
            request: req.clone(),
            registration,
            flight,
            closed: false,
        }
    }

    /// Drops every stored variant of the URL, and keeps responses being fetched for it out
    /// of the store. Call for any method other than GET and HEAD (RFC 9111 §4.4) once the
    /// backend has answered.
    pub fn invalidate(&self, scheme: &str, host: &str, target: &str) {
        let key = key::base_key(scheme, host, target);
        let mut inner = self.shared.lock();
        inner.store.remove(&key);
        inner.fills.invalidate(&key);
    }

    pub fn stats(&self) -> CacheStats {
        let inner = self.shared.lock();
        CacheStats {
            hits: inner.hits,
            misses: inner.misses,
            stores: inner.store.stores,
            evictions: inner.store.evictions,
            expired: inner.store.expired,
            collapsed: inner.collapsed,
            bytes: inner.store.bytes(),
            entries: inner.store.entries(),
        }
    }
}

fn hit(found: store::Found) -> CachedResponse {
    CachedResponse {
        status: found.status,
        headers: found.headers,
        body: found.body,
        age: found.age,
    }
}

/// The right, and for a leader the duty, to fill the cache for one request's URL.
///
/// Dropping it without [`store`](Self::store) is always correct: whoever waits on it wakes
/// up and fetches on its own. Hold it across the forward; it holds no lock.
pub struct FillTicket {
    shared: Arc<Shared>,
    key: String,
    /// The request's header fields, for the `Vary` values the response will ask for.
    request: HeaderMap,
    registration: Registration,
    /// Some for the leader: the flight its waiters block on.
    flight: Option<Arc<Flight>>,
    closed: bool,
}

impl FillTicket {
    /// Whether other requests are waiting for (or may join) this fetch.
    pub fn is_leader(&self) -> bool {
        self.flight.is_some()
    }

    /// Largest body [`store`](Self::store) takes: stop keeping a copy past this and drop the
    /// ticket.
    pub fn max_body(&self) -> usize {
        self.shared.config.max_object
    }

    /// Decides from the response head, before the body is read, whether the response may be
    /// stored and how long it stays fresh. `Err` (with the reason, for logs): drop the
    /// ticket. A `Content-Length` above [`max_body`](Self::max_body) is refused here.
    pub fn storable(
        &self,
        status: StatusCode,
        resp_headers: &HeaderMap,
    ) -> Result<Storable, NotStorable> {
        let limits = policy::Limits {
            default_ttl: self.shared.config.default_ttl,
            max_object: self.shared.config.max_object,
        };
        policy::storability(
            status,
            policy::is_authorized(&self.request),
            resp_headers,
            limits,
            self.shared.clock.wall(),
            self.shared.clock.now(),
        )
    }

    /// Stores the response and releases the waiters, who are then served from it.
    /// `headers` are the response's end-to-end fields as they should be replayed (hop-by-hop
    /// ones removed); `Age`, `Content-Length` and `Transfer-Encoding` are dropped here.
    /// `body` is the whole body. `Err` when it cannot be kept after all: too large, stale
    /// by now, or invalidated meanwhile.
    pub fn store(
        mut self,
        storable: Storable,
        headers: Vec<(HeaderName, HeaderValue)>,
        body: Vec<u8>,
    ) -> Result<(), NotStorable> {
        if body.len() > self.shared.config.max_object {
            return Err(NotStorable::TooLarge);
        }
        // Everything is built before taking the lock; the body is copied once, here.
        let headers: Arc<[(HeaderName, HeaderValue)]> = headers
            .into_iter()
            .filter(|(name, _)| name != AGE && name != CONTENT_LENGTH && name != TRANSFER_ENCODING)
            .collect();
        let vary = key::vary_values(&storable.vary, &self.request);
        let size = Entry::charge(self.key.len(), &vary, &headers, body.len());
        let entry = Entry {
            vary,
            status: StatusCode::OK,
            headers,
            body: Arc::from(body),
            received: storable.received,
            initial_age: storable.initial_age,
            lifetime: storable.lifetime,
            size,
        };
        self.close(Some(entry))
    }

    /// Unregisters the ticket, stores `entry` if the URL was not invalidated meanwhile, and
    /// then (outside the lock) wakes the waiters.
    fn close(&mut self, entry: Option<Entry>) -> Result<(), NotStorable> {
        if self.closed {
            return Ok(());
        }
        self.closed = true;
        let mut inner = self.shared.lock();
        let valid = inner
            .fills
            .close(&self.key, self.registration, self.flight.as_ref());
        let result = match entry {
            Some(entry) if valid => {
                let key = std::mem::take(&mut self.key);
                let now = self.shared.clock.now();
                inner.store.insert(key, entry, &self.request, now)
            }
            Some(_) => Err(NotStorable::Invalidated),
            None => Ok(()),
        };
        drop(inner);
        if let Some(flight) = self.flight.take() {
            flight.finish();
        }
        result
    }
}

impl Drop for FillTicket {
    fn drop(&mut self) {
        let _ = self.close(None);
    }
}

impl fmt::Debug for FillTicket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FillTicket")
            .field("key", &self.key)
            .field("leader", &self.is_leader())
            .finish()
    }
}
