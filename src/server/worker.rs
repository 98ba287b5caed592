//! A worker: serves the requests a connection has ready, then gives the connection back.
//!
//! ```text
//!  ready queue ──► read once ──► head complete? ──yes──► exchange ──keep-alive──┐
//!                     ▲               │ no                    │ close           │
//!                     │               ▼                       ▼                 │
//!                     │         park (poller) ◄── nothing buffered ◄────────────┘
//!                     └─ (readable again)
//! ```
//!
//! A worker is handed a connection the poller saw readable, so its first read does not wait.
//! After that it *lingers*: when no other connection is waiting in the ready queue it waits
//! up to [`LINGER`] for the client's next bytes before parking the connection. A busy
//! keep-alive client is then served like thread-per-connection (no hand-off to the poller and
//! back per request), while a slow or idle one costs a worker at most `LINGER` between its
//! bytes. Pipelined requests already buffered are answered in order before anything else.
//!
//! One exchange: take a backend handle (503 when none), answer `100 Continue` if asked, read a
//! small body whole (so it can be retried), send, and relay the response. A backend that
//! refuses the connection is marked down and the next one is tried, each at most once.

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

use super::body::{BodyFailure, ClientBody};
use super::caching::{self, Fill, Step};
use super::conn::Conn;
use super::poller::Parker;
use super::relay::{relay, Extras, RelayError};
use super::stream::Handshake;
use super::Shared;
use crate::http1::error_page::{self, Format};
use crate::http1::limits::{IO_BUFFER_BYTES, MAX_BUFFERED_BODY, MAX_HEAD_BYTES};
use crate::http1::{parse_request_head, BodyFraming, Parse, RequestError, RequestHead};
use crate::metrics::NO_BACKEND;
use crate::upstream::forward::{self, ForwardError, OutgoingBody};
use crate::upstream::{Backend, Lease};

/// How long a worker waits for a client's next bytes before parking the connection, when
/// no other connection is waiting for a worker. Keep-alive clients under load send their next
/// request within tens of microseconds; an idle one is parked after this.
pub(crate) const LINGER: Duration = Duration::from_millis(2);

/// Whether the connection can carry another request.
enum Next {
    KeepAlive,
    Close,
}

pub(crate) struct Worker {
    shared: Arc<Shared>,
    ready: Receiver<Conn>,
    parker: Parker,
    /// Bytes read from the current connection and not consumed yet.
    input: Vec<u8>,
    /// A small request body kept whole for retries.
    body: Vec<u8>,
    out: OutBuffers,
}

/// Buffers for the way back to the client.
struct OutBuffers {
    /// Response head being rendered.
    head: Vec<u8>,
    /// Copy buffer for response bodies (and the read buffer for heads).
    copy: Box<[u8]>,
}

impl Worker {
    pub(crate) fn new(shared: Arc<Shared>, ready: Receiver<Conn>, parker: Parker) -> Worker {
        Worker {
            shared,
            ready,
            parker,
            input: Vec::with_capacity(MAX_HEAD_BYTES),
            body: Vec::new(),
            out: OutBuffers {
                head: Vec::with_capacity(4096),
                copy: vec![0; IO_BUFFER_BYTES].into_boxed_slice(),
            },
        }
    }

    /// Serves connections until the ready queue closes (shutdown).
    pub(crate) fn run(mut self) {
        while let Ok(conn) = self.ready.recv() {
            self.serve(conn);
        }
    }

    fn serve(&mut self, mut conn: Conn) {
        self.input.clear();
        self.input
            .extend_from_slice(&std::mem::take(&mut conn.pending));
        // The poller hands over a readable connection: the first read does not wait.
        let mut readable = true;
        if conn.stream.is_handshaking() {
            match conn.stream.advance_handshake() {
                Ok(Handshake::Done) => {
                    conn.deadline = None;
                    readable = false;
                }
                Ok(Handshake::NeedsInput) => return self.park(conn),
                Err(e) => return log::debug!("{}: TLS handshake: {e}", conn.peer),
            }
        }
        loop {
            match parse_request_head(&self.input) {
                Ok(Parse::Complete(head)) => {
                    self.input.drain(..head.head_len);
                    conn.deadline = None;
                    readable = false;
                    match self.exchange(&conn, head) {
                        Next::KeepAlive => continue,
                        Next::Close => return,
                    }
                }
                Ok(Parse::Partial) if self.head_too_slow(&conn) => {
                    return self.refuse(&conn, &RequestError::HeadTimeout);
                }
                Ok(Parse::Partial)
                    if readable || self.may_linger() || conn.stream.has_buffered_input() =>
                {
                    readable = false;
                    let was_empty = self.input.is_empty();
                    match read_some(&conn, &mut self.input, &mut self.out.copy) {
                        Ok(0) => return,
                        Ok(_) if was_empty => {
                            conn.deadline = Some(Instant::now() + self.shared.config.header_timeout)
                        }
                        Ok(_) => {}
                        Err(e) if is_timeout(&e) => return self.park(conn),
                        Err(_) => return,
                    }
                }
                Ok(Parse::Partial) => return self.park(conn),
                Err(e) => return self.refuse(&conn, &e),
            }
        }
    }

    /// A head that started arriving more than `-header-timeout` ago (the poller enforces the
    /// same deadline while the connection is parked).
    fn head_too_slow(&self, conn: &Conn) -> bool {
        conn.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// Lingering is only worth it when no other connection is waiting for a worker.
    fn may_linger(&self) -> bool {
        self.ready.is_empty() && !self.shared.is_shutting_down()
    }

    /// Gives the connection back to the poller with whatever it sent so far.
    fn park(&mut self, mut conn: Conn) {
        if self.input.is_empty() && !conn.stream.is_handshaking() {
            if self.shared.is_shutting_down() {
                return;
            }
            conn.deadline = None;
        } else if !self.input.is_empty() {
            conn.pending = self.input.clone();
        }
        self.parker.park(conn);
    }

    /// Answers a head that broke a rule, and closes.
    fn refuse(&mut self, conn: &Conn, e: &RequestError) {
        log::debug!("{}: refused: {e}", conn.peer);
        let page = error_page::render(e.status(), &e.to_string(), Format::Text, false, false);
        let _ = (&conn.stream).write_all(&page);
        self.shared.metrics.request(NO_BACKEND, e.status(), 0.0);
    }

    fn exchange(&mut self, conn: &Conn, head: RequestHead) -> Next {
        let started = Instant::now();
        let shared = Arc::clone(&self.shared);
        let keep_alive = head.keep_alive && !shared.is_shutting_down();
        let answer = Answer {
            conn,
            head: &head,
            started,
            shared: &shared,
        };

        if let (BodyFraming::Length(n), Some(max)) = (head.framing, shared.config.max_body) {
            if n > max {
                return answer.local(413, "request body larger than the limit", false);
            }
        }
        let ticket = match caching::lookup(&shared, &head) {
            Step::Hit(hit) => {
                // A GET with a body is odd but legal; its body is unread, so close after.
                let reusable = keep_alive && head.framing == BodyFraming::None;
                let seconds = started.elapsed().as_secs_f64();
                shared
                    .metrics
                    .request(crate::metrics::CACHE, hit.status.as_u16(), seconds);
                return match caching::write_hit(&conn.stream, &head, &hit, reusable) {
                    true if reusable => Next::KeepAlive,
                    _ => Next::Close,
                };
            }
            Step::Miss(ticket) => Some(ticket),
            Step::Bypass => None,
        };
        let wants_continue =
            head.expect_continue && head.framing != BodyFraming::None && self.input.is_empty();
        let config = &shared.config;
        let mut body = ClientBody::new(
            &conn.stream,
            &mut self.input,
            head.framing,
            config.body_timeout,
            config.max_body,
        );
        self.body.clear();
        // Up to MAX_BUFFERED_BODY of the body is read before a backend handle is taken: a
        // client that stalls mid-body would otherwise hold one of the backend's `-n` handles,
        // and `-n` such clients would starve everyone else. A body that fits is complete
        // here and can be sent again after a failed attempt; a longer one is streamed after
        // this prefix. A client waiting for `100 Continue` gets it only once a handle is
        // held, so its body is read after that.
        let mut complete = head.framing == BodyFraming::None;
        if !wants_continue && !complete {
            match body.read_up_to(&mut self.body, MAX_BUFFERED_BODY) {
                Ok(done) => complete = done,
                Err(_) => return answer.client_failed(body.failure()),
            }
        }
        let mut lease = match shared.acquire(&[]) {
            Ok(lease) => lease,
            Err(e) => {
                // A request with a body closes the connection, even when its body was read
                // whole (keeping it would be safe then; closing is the simpler rule).
                let reusable = keep_alive && head.framing == BodyFraming::None;
                return answer.local(503, &e.to_string(), reusable);
            }
        };
        if wants_continue {
            if (&conn.stream)
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                .is_err()
            {
                return Next::Close;
            }
            match body.read_up_to(&mut self.body, MAX_BUFFERED_BODY) {
                Ok(done) => complete = done,
                Err(_) => return answer.client_failed(body.failure()),
            }
        }

        let idempotent = forward::is_idempotent(&head.method);
        let mut tried: Vec<Arc<Backend>> = Vec::new();
        let mut fresh_retry_used = false;
        loop {
            // The outgoing body borrows the client body only for the attempt; `sent` says
            // whether any of it left (if not, another attempt loses nothing).
            let (result, sent) = {
                let mut streamed = PrefixedBody::new(&self.body, &mut body);
                let outgoing = match head.framing {
                    BodyFraming::None => OutgoingBody::None,
                    _ if complete => OutgoingBody::Buffered(&self.body),
                    framing => OutgoingBody::Streamed(&mut streamed, framing),
                };
                let result = forward::send(&lease, &head, conn.peer.ip(), shared.proto, outgoing);
                (result, streamed.sent)
            };
            let replayable = complete || sent == 0;
            let error = match result {
                Ok(response) => {
                    lease.backend().record_success();
                    caching::invalidate(&shared, &head);
                    let out = &mut self.out;
                    let reply = Reply {
                        lease,
                        response,
                        body,
                        keep_alive,
                        cache: ticket,
                    };
                    break respond(out, conn, &head, &answer, reply);
                }
                Err(e) => e,
            };
            if let Some(failure) = body.failure() {
                return answer.client_failed(Some(failure));
            }
            let backend = Arc::clone(lease.backend());
            // A request that cannot be expressed upstream is the client's, not the backend's.
            if !matches!(error, ForwardError::Invalid(_)) {
                shared
                    .metrics
                    .upstream_error(&backend.url.base, error.kind());
            }
            let retry = match &error {
                ForwardError::Connect(why) => {
                    mark_down(&backend, why);
                    replayable
                }
                ForwardError::Reset(_) => idempotent && replayable,
                _ => false,
            };
            if !matches!(error, ForwardError::Connect(_) | ForwardError::Invalid(_)) {
                passive_failure(&backend, &error, shared.config.max_fails);
            }
            if !retry {
                log::warn!(
                    "{} {} -> {}: {error}",
                    head.method,
                    head.target,
                    backend.url
                );
                let status = match error {
                    ForwardError::Timeout => 504,
                    ForwardError::Invalid(_) => 400,
                    _ => 502,
                };
                let reusable = keep_alive && body.is_complete();
                body.finish();
                return answer.local(status, status_message(status), reusable);
            }
            log::debug!(
                "{} {} -> {}: {error}; retrying",
                head.method,
                head.target,
                backend.url
            );
            shared.metrics.retry();
            // A reset on a reused keep-alive connection is the stale-connection race: the
            // same handle tries once more, on a fresh connection (ureq dropped the failed one).
            if matches!(error, ForwardError::Reset(_)) && !fresh_retry_used {
                fresh_retry_used = true;
                continue;
            }
            tried.push(Arc::clone(&backend));
            drop(lease);
            lease = match shared.acquire(&tried) {
                Ok(next) => next,
                Err(_) => {
                    log::warn!(
                        "{} {}: gave up after {} backends failed, last {}: {error}",
                        head.method,
                        head.target,
                        tried.len(),
                        backend.url
                    );
                    let reusable = keep_alive && body.is_complete();
                    body.finish();
                    return answer.local(502, "no backend answered", reusable);
                }
            };
        }
    }
}

/// A successful attempt: the response and what it is relayed with.
struct Reply<'a> {
    lease: Lease,
    response: http::Response<ureq::Body>,
    /// The request body (consumed); decides whether the connection can be reused.
    body: ClientBody<'a>,
    keep_alive: bool,
    /// `Some` when the cache looked the request up: the response says `X-Cache: MISS`, and
    /// with a ticket it may be stored.
    cache: Option<Option<crate::cache::FillTicket>>,
}

/// Relays the response of a successful attempt and decides the connection's fate.
fn respond(
    out: &mut OutBuffers,
    conn: &Conn,
    head: &RequestHead,
    answer: &Answer<'_>,
    reply: Reply<'_>,
) -> Next {
    let Reply {
        lease,
        response,
        body,
        keep_alive,
        cache,
    } = reply;
    let shared = answer.shared;
    let status = response.status().as_u16();
    let cached = cache.is_some();
    let mut fill = cache.and_then(|ticket| Fill::start(ticket, &response));
    let miss: &[(&str, &[u8])] = &[("x-cache", b"MISS")];
    let extras = Extras {
        fields: if cached { miss } else { &[] },
        capture: fill.as_mut().map(|f| &mut f.capture),
    };
    // Decided again now: a drain that began while the backend was answering must reach the
    // client as `Connection: close`, or its next request meets a closed connection.
    let keep_alive = keep_alive && !shared.is_shutting_down();
    let relayed = relay(
        &conn.stream,
        &mut out.head,
        &mut out.copy,
        head,
        response,
        keep_alive,
        extras,
    );
    if let (Ok(_), Some(fill)) = (&relayed, fill) {
        fill.finish();
    }
    let backend = &lease.backend().url.base;
    let seconds = answer.started.elapsed().as_secs_f64();
    shared.metrics.request(backend, status, seconds);
    match relayed {
        Ok(reusable) if reusable && body.is_complete() => {
            body.finish();
            Next::KeepAlive
        }
        Ok(_) => Next::Close,
        Err(RelayError::Upstream(e)) => {
            log::warn!(
                "{} {} -> {backend}: response body: {e}",
                head.method,
                head.target
            );
            shared.metrics.upstream_error(backend, "body");
            Next::Close
        }
        Err(RelayError::Downstream(e)) => {
            log::debug!("{}: client went away: {e}", conn.peer);
            Next::Close
        }
    }
}

/// The body as sent upstream: the prefix already read, then the rest from the client.
struct PrefixedBody<'a, 'b> {
    prefix: &'a [u8],
    rest: &'a mut ClientBody<'b>,
    /// Bytes handed to ureq so far.
    sent: u64,
}

impl<'a, 'b> PrefixedBody<'a, 'b> {
    fn new(prefix: &'a [u8], rest: &'a mut ClientBody<'b>) -> Self {
        PrefixedBody {
            prefix,
            rest,
            sent: 0,
        }
    }
}

impl Read for PrefixedBody<'_, '_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let at = usize::try_from(self.sent).unwrap_or(usize::MAX);
        let n = if at < self.prefix.len() {
            let n = out.len().min(self.prefix.len() - at);
            out[..n].copy_from_slice(&self.prefix[at..at + n]);
            n
        } else {
            self.rest.read(out)?
        };
        self.sent += n as u64;
        Ok(n)
    }
}

/// Answers produced by goaround itself for one request.
struct Answer<'a> {
    conn: &'a Conn,
    head: &'a RequestHead,
    started: Instant,
    shared: &'a Shared,
}

impl Answer<'_> {
    fn local(&self, status: u16, message: &str, keep_alive: bool) -> Next {
        let format = Format::from_accept(self.head.accept().map(|v| v.as_bytes()));
        let head_only = self.head.method == http::Method::HEAD;
        let version = self.head.version;
        let page = error_page::render_for(version, status, message, format, keep_alive, head_only);
        let seconds = self.started.elapsed().as_secs_f64();
        self.shared.metrics.request(NO_BACKEND, status, seconds);
        match (&self.conn.stream).write_all(&page) {
            Ok(()) if keep_alive => Next::KeepAlive,
            _ => Next::Close,
        }
    }

    /// The client failed while sending its body: 408 or 400 if it can still hear us.
    fn client_failed(&self, failure: Option<BodyFailure>) -> Next {
        match failure {
            Some(BodyFailure::Timeout) => {
                self.local(408, "request body not received in time", false)
            }
            Some(BodyFailure::Framing(e)) => self.local(400, &e.to_string(), false),
            Some(BodyFailure::TooLarge) => {
                self.local(413, "request body larger than the limit", false)
            }
            Some(BodyFailure::Closed) | None => {
                log::debug!("{}: client closed mid-body", self.conn.peer);
                Next::Close
            }
        }
    }
}

fn status_message(status: u16) -> &'static str {
    match status {
        504 => "the backend did not answer in time",
        400 => "the request cannot be forwarded",
        _ => "the backend failed to answer",
    }
}

/// Passive health: `max_fails` failed exchanges in a row take the backend out until its
/// health check passes again (0: never).
fn passive_failure(backend: &Backend, error: &ForwardError, max_fails: u32) {
    let failures = backend.record_failure();
    if max_fails > 0 && failures >= max_fails {
        mark_down(
            backend,
            &format!("{failures} failed requests in a row, last: {error}"),
        );
    }
}

/// A refused connection (or `-max-fails` failures) takes the backend out at once (GoAround's
/// degraded connection); its health thread checks it again a second later and brings it back
/// when `/health` passes.
fn mark_down(backend: &Backend, why: &str) {
    if backend.mark_down_passively() {
        log::warn!("backend {} is down: {why}", backend.url.base);
    }
    backend.wake_health();
}

/// A read that gave up after the socket's receive timeout.
pub(crate) fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// One read, appended to `input` (never past the head limit, so an endless head is caught
/// by the parser at [`MAX_HEAD_BYTES`]). `scratch` is a reused, initialised buffer.
fn read_some(conn: &Conn, input: &mut Vec<u8>, scratch: &mut [u8]) -> io::Result<usize> {
    let room = (MAX_HEAD_BYTES + 1)
        .saturating_sub(input.len())
        .clamp(1, scratch.len());
    let n = (&conn.stream).read(&mut scratch[..room])?;
    input.extend_from_slice(&scratch[..n]);
    Ok(n)
}

impl Shared {
    /// Takes a backend handle not in `tried`, timing the wait.
    fn acquire(&self, tried: &[Arc<Backend>]) -> Result<Lease, crate::upstream::AcquireError> {
        let waited = Instant::now();
        let result = self.set.acquire(tried, self.config.queue_timeout);
        self.metrics.handle_wait(waited.elapsed().as_secs_f64());
        result
    }
}
