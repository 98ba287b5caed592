//! Prometheus metrics and the small HTTP listener that serves them.
//!
//! Counters and histograms are updated by the threads that see the events; per-backend
//! gauges (up, in flight) are read from the backend set at scrape time, so they can never
//! drift and a removed backend's series disappear with it. The listener (`-prometheus-port`)
//! answers `GET /metrics` (text format 0.0.4) and `GET /status` (a plain HTML table), each
//! scrape on a short-lived thread of its own with one deadline for the whole scrape, so a
//! stuck scraper cannot delay another; it reuses the front end's head parser and limits.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::cache::Cache;
use crate::fast_hash::FastMap;
use crate::http1::error_page::{self, Format};
use crate::http1::limits::MAX_HEAD_BYTES;
use crate::http1::{parse_request_head, Parse};
use crate::status::{self, Sources};
use crate::upstream::routes::SharedRoutes;

/// Label value for requests answered by goaround itself (bad request, no backend, ...).
pub const NO_BACKEND: &str = "none";

/// Label value for requests answered from the GET cache.
pub const CACHE: &str = "cache";

/// Every metric goaround exports.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    duration: HistogramVec,
    upstream_errors: IntCounterVec,
    retries: IntCounter,
    handle_wait: prometheus::Histogram,
    client_connections: IntGauge,
    tunnels: IntGauge,
    panics: IntCounter,
    /// Held while a scrape fills the gauges it reads.
    rendering: std::sync::Mutex<()>,
    access_log_dropped: IntCounter,
    /// The access log's own count of dropped lines, copied at each scrape.
    access_log_drops: std::sync::Mutex<Option<crate::access_log::DroppedLines>>,
    passive_transitions: IntCounterVec,
    health_checks: IntCounterVec,
    backends: IntGauge,
    backends_up: IntGauge,
    backend_up: IntGaugeVec,
    backend_in_flight: IntGaugeVec,
    cache_events: IntCounterVec,
    cache_bytes: IntGauge,
    cache_entries: IntGauge,
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let m = Metrics {
            requests: IntCounterVec::new(
                Opts::new(
                    "goaround_requests_total",
                    "Requests answered, by backend and status code.",
                ),
                &["backend", "code"],
            )
            .expect("valid metric"),
            duration: HistogramVec::new(
                HistogramOpts::new(
                    "goaround_request_duration_seconds",
                    "Time from complete request head to end of response, by backend.",
                )
                .buckets(vec![
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    10.0, 30.0,
                ]),
                &["backend"],
            )
            .expect("valid metric"),
            upstream_errors: IntCounterVec::new(
                Opts::new(
                    "goaround_upstream_errors_total",
                    "Failed attempts to get a response from a backend, by backend and kind.",
                ),
                &["backend", "kind"],
            )
            .expect("valid metric"),
            retries: IntCounter::new(
                "goaround_retries_total",
                "Attempts repeated after a failed one (on a fresh connection or another backend).",
            )
            .expect("valid metric"),
            handle_wait: prometheus::Histogram::with_opts(
                HistogramOpts::new(
                    "goaround_handle_wait_seconds",
                    "Time spent waiting for a free backend handle (-n).",
                )
                .buckets(vec![0.0001, 0.001, 0.01, 0.1, 0.5, 1.0, 5.0]),
            )
            .expect("valid metric"),
            client_connections: IntGauge::new(
                "goaround_client_connections",
                "Open client connections.",
            )
            .expect("valid metric"),
            tunnels: IntGauge::new(
                "goaround_tunnels",
                "Open WebSocket tunnels (client connections after 101 Switching Protocols).",
            )
            .expect("valid metric"),
            rendering: std::sync::Mutex::new(()),
            access_log_dropped: IntCounter::new(
                "goaround_access_log_dropped_total",
                "Access log lines dropped because the writer could not keep up or could not write.",
            )
            .expect("valid metric"),
            access_log_drops: std::sync::Mutex::new(None),
            passive_transitions: IntCounterVec::new(
                Opts::new(
                    "goaround_passive_transitions_total",
                    "A -config server taken out by max_fail (to=\"down\") or back after its fail_timeout (to=\"up\").",
                ),
                &["backend", "to"],
            )
            .expect("valid metric"),
            panics: IntCounter::new(
                "goaround_panics_total",
                "Panics caught while serving a connection (the connection was closed).",
            )
            .expect("valid metric"),
            health_checks: IntCounterVec::new(
                Opts::new(
                    "goaround_health_checks_total",
                    "Active health checks, by backend and result.",
                ),
                &["backend", "result"],
            )
            .expect("valid metric"),
            backends: IntGauge::new("goaround_backends", "Backends in the current set.")
                .expect("valid metric"),
            backends_up: IntGauge::new("goaround_backends_up", "Backends that are up.")
                .expect("valid metric"),
            backend_up: IntGaugeVec::new(
                Opts::new(
                    "goaround_backend_up",
                    "1 when the backend is up, 0 when down.",
                ),
                &["backend"],
            )
            .expect("valid metric"),
            backend_in_flight: IntGaugeVec::new(
                Opts::new(
                    "goaround_backend_in_flight",
                    "Requests in flight to the backend.",
                ),
                &["backend"],
            )
            .expect("valid metric"),
            cache_events: IntCounterVec::new(
                Opts::new(
                    "goaround_cache_events_total",
                    "GET cache lookups and changes: hit, miss, store, eviction, expired, collapsed.",
                ),
                &["event"],
            )
            .expect("valid metric"),
            cache_bytes: IntGauge::new("goaround_cache_bytes", "Bytes the GET cache holds.")
                .expect("valid metric"),
            cache_entries: IntGauge::new("goaround_cache_entries", "Responses the GET cache holds.")
                .expect("valid metric"),
            registry,
        };
        let collectors: [Box<dyn prometheus::core::Collector>; 18] = [
            Box::new(m.access_log_dropped.clone()),
            Box::new(m.passive_transitions.clone()),
            Box::new(m.tunnels.clone()),
            Box::new(m.panics.clone()),
            Box::new(m.cache_events.clone()),
            Box::new(m.cache_bytes.clone()),
            Box::new(m.cache_entries.clone()),
            Box::new(m.requests.clone()),
            Box::new(m.duration.clone()),
            Box::new(m.upstream_errors.clone()),
            Box::new(m.retries.clone()),
            Box::new(m.handle_wait.clone()),
            Box::new(m.client_connections.clone()),
            Box::new(m.health_checks.clone()),
            Box::new(m.backends.clone()),
            Box::new(m.backends_up.clone()),
            Box::new(m.backend_up.clone()),
            Box::new(m.backend_in_flight.clone()),
        ];
        for c in collectors {
            // Names are distinct constants: registering cannot collide.
            m.registry.register(c).expect("metric names are unique");
        }
        m
    }

    /// One answered request.
    pub fn request(&self, backend: &str, status: u16, seconds: f64) {
        let code = status.to_string();
        self.requests
            .with_label_values(&[backend, code.as_str()])
            .inc();
        self.duration.with_label_values(&[backend]).observe(seconds);
    }

    pub fn upstream_error(&self, backend: &str, kind: &str) {
        self.upstream_errors
            .with_label_values(&[backend, kind])
            .inc();
    }

    pub fn retry(&self) {
        self.retries.inc();
    }

    pub fn handle_wait(&self, seconds: f64) {
        self.handle_wait.observe(seconds);
    }

    pub fn client_connection_opened(&self) {
        self.client_connections.inc();
    }

    pub fn client_connection_closed(&self) {
        self.client_connections.dec();
    }

    pub fn tunnel_opened(&self) {
        self.tunnels.inc();
    }

    pub fn tunnel_closed(&self) {
        self.tunnels.dec();
    }

    /// A `-config` server's `max_fail` took it out (`up` false) or it came back.
    pub fn passive_transition(&self, backend: &str, up: bool) {
        let to = if up { "up" } else { "down" };
        self.passive_transitions
            .with_label_values(&[backend, to])
            .inc();
    }

    /// Where `goaround_access_log_dropped_total` comes from.
    pub(crate) fn count_access_log_drops(&self, drops: crate::access_log::DroppedLines) {
        *self
            .access_log_drops
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(drops);
    }

    /// A panic was caught while serving a connection.
    pub fn panic(&self) {
        self.panics.inc();
    }

    #[cfg(test)]
    pub(crate) fn panics(&self) -> u64 {
        self.panics.get()
    }

    pub fn health_check(&self, backend: &str, healthy: bool) {
        let result = if healthy { "healthy" } else { "unhealthy" };
        self.health_checks
            .with_label_values(&[backend, result])
            .inc();
    }

    /// Kept for the health thread's transitions; the scrape recomputes it anyway.
    pub fn set_backend_up(&self, backend: &str, up: bool) {
        self.backend_up
            .with_label_values(&[backend])
            .set(i64::from(up));
    }

    /// Drops the series of a backend that left the set.
    pub fn forget_backend(&self, backend: &str) {
        let _ = self.backend_up.remove_label_values(&[backend]);
        let _ = self.backend_in_flight.remove_label_values(&[backend]);
    }

    /// Copies the cache's own counters into the registry (counters only move forward, so
    /// adding the difference keeps them counters).
    fn sync_cache(&self, cache: &Cache) {
        let stats = cache.stats();
        let events = [
            ("hit", stats.hits),
            ("miss", stats.misses),
            ("store", stats.stores),
            ("eviction", stats.evictions),
            ("expired", stats.expired),
            ("collapsed", stats.collapsed),
        ];
        for (event, total) in events {
            let counter = self.cache_events.with_label_values(&[event]);
            counter.inc_by(total.saturating_sub(counter.get()));
        }
        self.cache_bytes.set(stats.bytes as i64);
        self.cache_entries.set(stats.entries as i64);
    }

    /// The text exposition, with backend gauges read from `routes` now.
    pub fn render(&self, routes: &SharedRoutes, cache: Option<&Cache>) -> Vec<u8> {
        // Scrapes run on threads of their own: one at a time resets and fills the gauges.
        let _rendering = self
            .rendering
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(cache) = cache {
            self.sync_cache(cache);
        }
        if let Some(drops) = self
            .access_log_drops
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
        {
            let total = drops.get();
            let counter = &self.access_log_dropped;
            counter.inc_by(total.saturating_sub(counter.get()));
        }
        let mut snapshot: Vec<Arc<crate::upstream::Backend>> =
            routes.backends().into_iter().map(|(_, b)| b).collect();
        // A server in two upstreams is one series.
        snapshot.sort_by(|a, b| a.url.base.cmp(&b.url.base));
        snapshot.dedup_by(|a, b| a.url == b.url);
        self.backend_up.reset();
        self.backend_in_flight.reset();
        let mut up = 0;
        for b in snapshot.iter() {
            // Usable, as `list` says: a `-config` server that `max_fail` took out is down
            // for its `fail_timeout` though its health check (if any) passes.
            let serving = i64::from(b.is_usable());
            up += serving;
            self.backend_up
                .with_label_values(&[&b.url.base])
                .set(serving);
            self.backend_in_flight
                .with_label_values(&[&b.url.base])
                .set(b.in_flight() as i64);
        }
        self.backends.set(snapshot.len() as i64);
        self.backends_up.set(up);
        let mut out = Vec::with_capacity(8 * 1024);
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            log::error!("metrics: encoding: {e}");
        }
        out
    }
}

/// One event loop's handles on the per-request series: after the first request of a
/// (backend, status) pair, recording one is one hash of the backend's label, a short scan of
/// its statuses and the atomic adds of the series, with no lock or allocation. Handles are
/// dropped when there are many (backends come and go), never the series themselves.
pub struct RequestRecorder {
    metrics: Arc<Metrics>,
    by_backend: FastMap<Box<str>, BackendSeries>,
}

struct BackendSeries {
    duration: prometheus::Histogram,
    /// Few per backend (200, 404, 502, ...): a scan beats hashing.
    by_status: Vec<(u16, IntCounter)>,
}

/// Handles kept per loop before they are dropped and looked up again.
const MAX_RECORDER_HANDLES: usize = 1024;

/// Statuses kept per backend before that backend's are dropped and looked up again.
const MAX_STATUS_HANDLES: usize = 64;

impl RequestRecorder {
    pub fn new(metrics: Arc<Metrics>) -> RequestRecorder {
        RequestRecorder {
            metrics,
            by_backend: FastMap::default(),
        }
    }

    /// One answered request, as [`Metrics::request`].
    pub fn record(&mut self, backend: &str, status: u16, seconds: f64) {
        if let Some(series) = self.by_backend.get_mut(backend) {
            return series.record(&self.metrics, backend, status, seconds);
        }
        if self.by_backend.len() >= MAX_RECORDER_HANDLES {
            self.by_backend.clear();
        }
        let mut series = BackendSeries {
            duration: self.metrics.duration.with_label_values(&[backend]),
            by_status: Vec::new(),
        };
        series.record(&self.metrics, backend, status, seconds);
        self.by_backend.insert(backend.into(), series);
    }
}

impl BackendSeries {
    fn record(&mut self, metrics: &Metrics, backend: &str, status: u16, seconds: f64) {
        self.duration.observe(seconds);
        if let Some((_, counter)) = self.by_status.iter().find(|(s, _)| *s == status) {
            return counter.inc();
        }
        if self.by_status.len() >= MAX_STATUS_HANDLES {
            self.by_status.clear();
        }
        let counter = metrics
            .requests
            .with_label_values(&[backend, &status.to_string()]);
        counter.inc();
        self.by_status.push((status, counter));
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// The whole of one scrape (reading the request, writing the answer) must fit in this; a
/// scraper that stalls is cut off then, whatever it does byte by byte.
const SCRAPE_DEADLINE: Duration = Duration::from_secs(5);

/// Scrapes served at once; more wait in the kernel's backlog. Each has its own short-lived
/// thread, so a stuck one cannot delay the others.
const MAX_SCRAPES: usize = 64;

/// Serves `/metrics`, `/status` and `/status.json` until `stop` is set.
pub fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    sources: Arc<Sources>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) {
    let busy = Arc::new(AtomicUsize::new(0));
    let mut acceptor = match crate::accept::Acceptor::new(listener, stop) {
        Ok(acceptor) => acceptor,
        Err(e) => return log::error!("metrics: cannot watch the listener: {e}"),
    };
    while let Some(stream) = acceptor.next() {
        let stream = match stream {
            Ok(stream) => stream,
            Err(e) => {
                log::warn!("metrics: accept: {e}");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        while busy.load(Ordering::Acquire) >= MAX_SCRAPES {
            std::thread::sleep(Duration::from_millis(5));
        }
        busy.fetch_add(1, Ordering::AcqRel);
        let (metrics, sources, done) = (
            Arc::clone(&metrics),
            Arc::clone(&sources),
            Arc::clone(&busy),
        );
        let spawned = std::thread::Builder::new()
            .name("scrape".into())
            .spawn(move || {
                if let Err(e) = answer(stream, &metrics, &sources) {
                    log::debug!("metrics: {e}");
                }
                done.fetch_sub(1, Ordering::AcqRel);
            });
        if let Err(e) = spawned {
            log::warn!("metrics: cannot start a thread: {e}");
            busy.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// Socket timeouts set to what is left of the scrape's deadline before each read or write.
struct Deadline {
    at: Instant,
}

impl Deadline {
    fn left(&self) -> std::io::Result<Duration> {
        let left = self.at.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        Ok(left)
    }
}

fn answer(mut stream: TcpStream, metrics: &Metrics, sources: &Sources) -> std::io::Result<()> {
    let deadline = Deadline {
        at: Instant::now() + SCRAPE_DEADLINE,
    };
    let mut buf = vec![0u8; MAX_HEAD_BYTES];
    let mut len = 0;
    let head = loop {
        stream.set_read_timeout(Some(deadline.left()?))?;
        let n = stream.read(&mut buf[len..])?;
        if n == 0 {
            return Ok(());
        }
        len += n;
        match parse_request_head(&buf[..len]) {
            Ok(Parse::Complete(head)) => break head,
            Ok(Parse::Partial) if len < buf.len() => continue,
            Ok(Parse::Partial) => return Ok(()),
            Err(e) => {
                let page =
                    error_page::render(e.status(), &e.to_string(), Format::Text, false, false);
                return write_before(&mut stream, &page, &deadline);
            }
        }
    };
    let path = head.target.split('?').next().unwrap_or_default();
    let head_only = head.method == http::Method::HEAD;
    let (content_type, body) = match (head.method.as_str(), path) {
        ("GET" | "HEAD", "/metrics") => (
            prometheus::TEXT_FORMAT,
            metrics.render(&sources.routes, sources.cache.as_deref()),
        ),
        ("GET" | "HEAD", "/status") => (
            "text/html; charset=utf-8",
            status::render_html(&status::snapshot(sources)),
        ),
        ("GET" | "HEAD", "/status.json") => (
            "application/json",
            status::render_json(&status::snapshot(sources)),
        ),
        _ => {
            let page = error_page::render(
                404,
                "try /metrics, /status or /status.json",
                Format::Text,
                false,
                head_only,
            );
            return write_before(&mut stream, &page, &deadline);
        }
    };
    let mut out = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(&body);
    }
    write_before(&mut stream, &out, &deadline)
}

/// Writes all of `bytes` before the scrape's deadline.
fn write_before(
    stream: &mut TcpStream,
    mut bytes: &[u8],
    deadline: &Deadline,
) -> std::io::Result<()> {
    while !bytes.is_empty() {
        stream.set_write_timeout(Some(deadline.left()?))?;
        let n = stream.write(bytes)?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        bytes = &bytes[n..];
    }
    Ok(())
}
