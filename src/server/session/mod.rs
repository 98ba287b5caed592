//! A client connection, owned end to end by one event loop: its state is a value, moved on
//! by readiness events, mailbox messages and its one timer.
//!
//! ```text
//!            ┌──────────────── TLS only ─────────────────┐
//!  accept ─► Handshake ─done─► Idle ◄──────────────────────────────────────┐ keep-alive,
//!                               │ first byte: header timeout from now      │ output flushed
//!                               │ head complete                            │
//!                               ▼                                          │
//!                            Exchange (see `exchange`) ──finished──────────┘
//!                               │ 101 to a WebSocket request      │ error page / close
//!                               ▼                                 ▼
//!                            Tunnel ──either side closes──►    Closing ─flushed─► closed
//! ```
//!
//! One request is served at a time: pipelined requests wait in the input buffer until the
//! answer before them is out, so answers keep their order and a client cannot make the
//! proxy buffer more than one response. A panic while serving a connection is caught by the
//! loop, which closes that connection only.

pub(crate) mod body;
pub(crate) mod exchange;
pub(crate) mod io;
pub(crate) mod relay;
pub(crate) mod tunnel;

use std::sync::Arc;
use std::time::Instant;

use mio::Registry;

use super::buffer::BufferPool;
use super::mailbox::Mailbox;
use super::slab::{Id, Slab};
use super::timers::Deadline;
use super::transport::{Handshake, Transport};
use super::upstream_conn::{self, IdlePool, UpConn};
use super::Shared;
use crate::fast_hash::FastMap;
use crate::http1::error_page::{self, Format};
use crate::http1::{parse_request_head, Parse, RequestError};
use crate::metrics::NO_BACKEND;
use crate::upstream::{AcquireError, Slot};
use exchange::{Exchange, Progress};
use io::{ClientIo, Flush, Read};
use tunnel::{Pumped, Tunnel};

/// Everything of its loop a session may use while it moves.
pub(crate) struct Ctx<'a> {
    pub shared: &'a Shared,
    /// The upstreams and locations in force (the loop's copy).
    pub routes: &'a crate::upstream::routes::Routes,
    pub registry: &'a Registry,
    pub ups: &'a mut Slab<UpConn>,
    pub pool: &'a mut IdlePool,
    pub buffers: &'a mut BufferPool,
    pub scratch: &'a mut Vec<u8>,
    pub mailbox: &'a Arc<Mailbox>,
    /// The loop's handles on the per-request metrics.
    pub recorder: &'a mut crate::metrics::RequestRecorder,
    /// Queued requests of this loop, by wait token.
    pub waits: &'a mut FastMap<u64, Id>,
    pub now: Instant,
    /// The loop is draining: no new request on a kept-alive connection.
    pub draining: bool,
    /// Rounds of relaying a session may do in this turn of the loop; when they run out it
    /// stops with [`Ctx::yielded`] set and the loop comes back to it after the others.
    pub budget: usize,
    pub yielded: bool,
}

/// Rounds of relaying (each up to a buffer, 64 KiB) one connection gets per turn of its
/// loop, so a fast download cannot keep the loop from its other connections.
pub(crate) const TURN_BUDGET: usize = 16;

impl Ctx<'_> {
    /// Spends one round; false (and the session yields) when none is left.
    pub(crate) fn spend(&mut self) -> bool {
        if self.budget == 0 {
            self.yielded = true;
            return false;
        }
        self.budget -= 1;
        true
    }
}

enum Phase {
    Handshake,
    /// Between requests; bytes in the input buffer are the start of the next head.
    Idle,
    Exchange(Box<Exchange>),
    Tunnel(Tunnel),
    /// Flushing a last answer, then closing.
    Closing,
}

/// Whether the session lives on.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Status {
    Open,
    Closed,
}

pub(crate) struct Session {
    pub id: Id,
    pub io: ClientIo,
    phase: Phase,
    pub deadline: Deadline,
    /// Start of the current wait: accept (handshake), the end of the last answer (idle), or
    /// the first byte of a head.
    since: Instant,
    /// The head now being read started arriving at `since`.
    head_started: bool,
}

impl Session {
    pub(crate) fn new(
        id: Id,
        transport: Transport,
        peer: std::net::SocketAddr,
        now: Instant,
    ) -> Session {
        let phase = if transport.is_handshaking() {
            Phase::Handshake
        } else {
            Phase::Idle
        };
        Session {
            id,
            io: ClientIo::new(transport, peer, now),
            phase,
            deadline: Deadline::default(),
            since: now,
            head_started: false,
        }
    }

    /// Whether the session has a request in progress (for the drain).
    pub(crate) fn is_idle(&self) -> bool {
        matches!(self.phase, Phase::Idle) && self.io.input_len() == 0 && !self.io.out_pending()
    }

    /// Moves the session as far as it can go now.
    pub(crate) fn drive(&mut self, ctx: &mut Ctx<'_>) -> Status {
        loop {
            let step = match &mut self.phase {
                Phase::Handshake => self.handshake(ctx),
                Phase::Idle => self.idle(ctx),
                Phase::Exchange(ex) => {
                    // Whatever is ready goes first (`100 Continue`, an answer, relayed bytes).
                    if self.io.out_pending() && self.io.flush(ctx.now).is_err() {
                        log::debug!("{}: client went away", self.io.peer);
                        Step::Close
                    } else {
                        let progress = ex.advance(&mut self.io, ctx, self.id);
                        self.after_exchange(progress, ctx)
                    }
                }
                Phase::Tunnel(tunnel) => match tunnel.pump(&mut self.io, ctx) {
                    Pumped::Open => Step::Wait,
                    Pumped::Closed => Step::Close,
                },
                Phase::Closing => match self.io.flush(ctx.now) {
                    Ok(Flush::Done) => {
                        self.io.transport.send_close_notify();
                        Step::Close
                    }
                    Ok(Flush::Blocked) => Step::Wait,
                    Err(_) => Step::Close,
                },
            };
            match step {
                Step::Again => continue,
                Step::Wait => return Status::Open,
                Step::Close => return Status::Closed,
            }
        }
    }

    fn handshake(&mut self, ctx: &mut Ctx<'_>) -> Step {
        match self.io.transport.advance_handshake() {
            Ok(Handshake::Done) => {
                self.phase = Phase::Idle;
                self.since = ctx.now;
                // The client's first request may have come with its last handshake flight,
                // already decrypted inside rustls.
                self.io.readable = true;
                Step::Again
            }
            Ok(Handshake::Pending) => Step::Wait,
            Err(e) => {
                log::debug!("{}: TLS handshake: {e}", self.io.peer);
                Step::Close
            }
        }
    }

    /// Between requests: finish sending the last answer, then read and parse the next head.
    fn idle(&mut self, ctx: &mut Ctx<'_>) -> Step {
        if self.io.out_pending() {
            return match self.io.flush(ctx.now) {
                Ok(Flush::Done) => Step::Again,
                Ok(Flush::Blocked) => Step::Wait,
                Err(_) => Step::Close,
            };
        }
        if self.io.input_len() > 0 {
            let Some(input) = self.io.input.as_ref() else {
                unreachable!("input_len > 0");
            };
            match parse_request_head(input.data()) {
                Ok(Parse::Complete(head)) => {
                    let len = head.head_len;
                    let exchange = Exchange::new(head, &self.io, ctx);
                    if let Some(input) = self.io.input.as_mut() {
                        input.consume(len);
                    }
                    self.head_started = false;
                    self.phase = Phase::Exchange(Box::new(exchange));
                    return Step::Again;
                }
                Ok(Parse::Partial) => {}
                Err(e) => return self.refuse(ctx, &e),
            }
        } else if ctx.draining {
            return Step::Close;
        }
        match self.io.read_input(ctx.buffers) {
            Ok(Read::Data(_)) => {
                if !self.head_started {
                    self.head_started = true;
                    self.since = ctx.now;
                }
                Step::Again
            }
            Ok(Read::Blocked) => {
                self.io.release_buffers(ctx.buffers);
                Step::Wait
            }
            // The parser refuses a head at its size limit, long before the buffer is full.
            Ok(Read::Full) => self.refuse(ctx, &RequestError::HeadersTooLarge),
            Ok(Read::Eof) | Err(_) => Step::Close,
        }
    }

    /// Answers a head that broke a rule, and closes.
    fn refuse(&mut self, ctx: &mut Ctx<'_>, e: &RequestError) -> Step {
        log::debug!("{}: refused: {e}", self.io.peer);
        let message = e.to_string();
        let page = error_page::render(e.status(), &message, Format::Text, false, false);
        if let Some(input) = self.io.input.as_mut() {
            input.clear();
        }
        self.io.queue(ctx.buffers, &page);
        ctx.recorder.record(NO_BACKEND, e.status(), 0.0);
        if let Some(log) = &ctx.shared.access_log {
            // From the head's first byte; a pipelined head that was all there took no time.
            let took = if self.head_started {
                ctx.now.saturating_duration_since(self.since)
            } else {
                std::time::Duration::ZERO
            };
            let body_bytes = error_page::body_len(e.status(), &message, Format::Text) as u64;
            log.send(crate::access_log::AccessRecord::refused(
                self.io.peer.ip(),
                e.status(),
                body_bytes,
                took,
            ));
        }
        self.phase = Phase::Closing;
        Step::Again
    }

    fn after_exchange(&mut self, progress: Progress, ctx: &mut Ctx<'_>) -> Step {
        match progress {
            Progress::Again => Step::Again,
            Progress::Wait => Step::Wait,
            Progress::Close => Step::Close,
            Progress::Finished { keep_alive } => {
                self.record(ctx);
                self.phase = if keep_alive && !ctx.draining {
                    // Read now, not at the start of the loop's turn: the idle timeout runs
                    // from the answer's last byte, as the client sees it.
                    self.since = Instant::now();
                    Phase::Idle
                } else {
                    Phase::Closing
                };
                Step::Again
            }
            Progress::Tunnel => {
                self.record(ctx);
                let Phase::Exchange(ex) = &mut self.phase else {
                    unreachable!("only an exchange switches protocols");
                };
                let Some(up) = ex.take_upstream() else {
                    return Step::Close;
                };
                if let Some(conn) = ctx.ups.get_mut(up) {
                    conn.owner = Some(self.id);
                }
                ctx.shared.metrics.tunnel_opened();
                ctx.shared.process.tunnel_opened();
                self.phase = Phase::Tunnel(Tunnel::new(up, &mut self.io, ctx.now));
                Step::Again
            }
        }
    }

    /// Metrics and the access log line of the exchange that just ended.
    fn record(&mut self, ctx: &mut Ctx<'_>) {
        let Phase::Exchange(ex) = &self.phase else {
            return;
        };
        let took = ctx.now.saturating_duration_since(ex.started);
        ctx.recorder
            .record(ex.backend_label(), ex.outcome.status, took.as_secs_f64());
        let second = crate::stats::clock().secs_at(ctx.now);
        ctx.shared.process.record_request(second);
        if let (Some(backend), Some(status)) = (&ex.outcome.upstream, ex.outcome.upstream_status) {
            backend.stats.record_response(second, status, took);
        }
        if let Some(log) = &ctx.shared.access_log {
            log.send(access_record(ex, self.io.peer.ip(), took));
        }
    }

    /// When the session's current wait must end.
    pub(crate) fn next_deadline(&self, config: &crate::config::Config) -> Option<Instant> {
        match &self.phase {
            Phase::Handshake => Some(self.since + config.handshake_timeout),
            Phase::Idle if self.io.out_pending() => {
                Some(self.io.out_progress + config.write_timeout)
            }
            Phase::Idle if self.head_started => Some(self.since + config.header_timeout),
            Phase::Idle => Some(self.since + config.idle_timeout),
            Phase::Exchange(ex) => ex.deadline(&self.io, config),
            Phase::Tunnel(t) => {
                let idle = t.last_activity + config.tunnel_idle_timeout;
                // A client that stops reading what the backend sends is cut at
                // -write-timeout, as in any exchange.
                if self.io.out_pending() && !self.io.writable {
                    Some(idle.min(self.io.out_progress + config.write_timeout))
                } else {
                    Some(idle)
                }
            }
            Phase::Closing => Some(self.io.out_progress + config.write_timeout),
        }
    }

    /// The session's deadline passed.
    pub(crate) fn on_timeout(&mut self, ctx: &mut Ctx<'_>) -> Status {
        match &mut self.phase {
            Phase::Handshake => {
                log::debug!("{}: TLS handshake not completed in time", self.io.peer);
                Status::Closed
            }
            Phase::Idle if self.head_started => {
                let e = RequestError::HeadTimeout;
                match self.refuse(ctx, &e) {
                    Step::Close => Status::Closed,
                    _ => self.drive(ctx),
                }
            }
            Phase::Idle | Phase::Closing => Status::Closed,
            Phase::Tunnel(_) => {
                if self.io.out_pending() && !self.io.writable {
                    log::debug!("{}: tunnel client not reading; closed", self.io.peer);
                } else {
                    log::debug!("{}: tunnel idle; closed", self.io.peer);
                }
                Status::Closed
            }
            Phase::Exchange(ex) => {
                let progress = ex.on_timeout(&mut self.io, ctx, self.id);
                match self.after_exchange(progress, ctx) {
                    Step::Close => Status::Closed,
                    _ => self.drive(ctx),
                }
            }
        }
    }

    /// A slot came (or the wait for one ended) for the queued request.
    pub(crate) fn on_slot(
        &mut self,
        ctx: &mut Ctx<'_>,
        outcome: Result<Slot, AcquireError>,
    ) -> Status {
        let Phase::Exchange(ex) = &mut self.phase else {
            return Status::Open;
        };
        let progress = ex.on_slot(&mut self.io, ctx, outcome);
        match self.after_exchange(progress, ctx) {
            Step::Close => Status::Closed,
            _ => self.drive(ctx),
        }
    }

    /// The cache fill this request waited for ended.
    pub(crate) fn on_cache_ready(&mut self, ctx: &mut Ctx<'_>) -> Status {
        let Phase::Exchange(ex) = &mut self.phase else {
            return Status::Open;
        };
        let progress = ex.on_cache_ready(&mut self.io, ctx, self.id);
        match self.after_exchange(progress, ctx) {
            Step::Close => Status::Closed,
            _ => self.drive(ctx),
        }
    }

    /// The session is being closed: whatever it holds goes back or is closed.
    pub(crate) fn close(&mut self, ctx: &mut Ctx<'_>) {
        // An exchange cut short (the client went away, a backend failed mid-body) is still
        // an answered request once it had a status.
        if matches!(&self.phase, Phase::Exchange(ex) if ex.outcome.status != 0) {
            self.record(ctx);
        }
        match &mut self.phase {
            Phase::Exchange(ex) => ex.abort(ctx),
            Phase::Tunnel(t) => {
                upstream_conn::close(ctx.ups, ctx.registry, t.up);
                ctx.shared.metrics.tunnel_closed();
                ctx.shared.process.tunnel_closed();
            }
            _ => {}
        }
        self.phase = Phase::Closing;
        self.io.return_all(ctx.buffers);
        let _ = ctx.registry.deregister(self.io.transport.tcp_mut());
    }
}

/// The access log's view of an exchange that took `took`.
fn access_record(
    ex: &Exchange,
    client_ip: std::net::IpAddr,
    took: std::time::Duration,
) -> crate::access_log::AccessRecord {
    let head = &ex.head;
    let field = |name| {
        head.header(name)
            .and_then(|v| http::HeaderValue::from_bytes(v).ok())
    };
    crate::access_log::AccessRecord {
        start: std::time::SystemTime::now() - took,
        client_ip,
        request: Some(crate::access_log::RequestLine {
            method: head.method.clone(),
            target: head.target.clone(),
            version: head.version,
        }),
        status: ex.outcome.status,
        body_bytes: ex.outcome.body_bytes,
        referer: field("referer"),
        user_agent: field("user-agent"),
        host: head.host.clone(),
        upstream: ex.outcome.upstream.as_ref().map(|b| b.url.base.clone()),
        upstream_status: ex.outcome.upstream_status,
        duration: took,
    }
}

/// What the drive loop does next.
enum Step {
    Again,
    Wait,
    Close,
}
