//! One request, from its head to the last byte of its answer: a value whose [`Step`] says
//! what it waits for, moved on by events, messages and timers.
//!
//! ```text
//!  Begin ─413/cache hit──────────────────────────────────────────────► Local ─flushed─► done
//!    │ miss/bypass            ┌─(another request fetches the URL)─► CacheWait ─┐
//!    ▼                        ▼                                                 │
//!  ReadBody (first 64 KiB, before a slot) ◄─────────────────────────────────────┘
//!    ▼
//!  Acquire ─all busy─► Queued ─slot granted─┐     no backend / queue timeout ─► Local (503)
//!    │ slot                                 │
//!    ▼                                      ▼
//!  Connect (pooled connection, or a new one: Connecting) ─► Transfer ─response done,
//!    ▲                                                         │      output flushed─► done
//!    └──────── retry (fresh connection, or Acquire another) ◄──┤ failure before the head
//!                                                              └─ 101 ─► the session tunnels
//! ```
//!
//! A small body (up to 64 KiB) is read whole before a slot is taken, so a client that stalls
//! mid-body holds no backend slot; it is kept as the backend will get it, so a failed attempt
//! can be repeated (the rules are `upstream::retry`'s). A larger body is streamed after that
//! prefix. A client that sent `Expect: 100-continue` is told to go on once a slot is held.
//! The response is relayed by `relay`; once its last byte is in the output buffer the backend
//! connection goes back to the loop's pool and the slot to the next request, whatever the
//! client's speed.

use std::io::IoSlice;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use super::super::caching::{self, Fill};
use super::super::slab::Id;
use super::super::upstream_conn::{self, ConnectError};
use super::body::{BodyError as ClientBodyError, ClientBody, Pump};
use super::io::ClientIo;
use super::relay::{self, BodyRelay, HeadRead};
use super::Ctx;
use crate::http1::error_page::{self, Format};
use crate::http1::forward::{write_upstream_head, Forwarding};
use crate::http1::limits::MAX_BUFFERED_BODY;
use crate::http1::response::{
    write_client_head, write_informational, write_switching_protocols, ResponseFraming,
};
use crate::http1::response_head::ResponseHead;
use crate::http1::{BodyFraming, RequestHead, Version};
use crate::metrics::{CACHE, NO_BACKEND};
use crate::upstream::balancer::{hash_input, HashInput};
use crate::upstream::retry::{self, Attempt, Failure, Next};
use crate::upstream::routes::Upstream;
use crate::upstream::{AcquireError, Acquired, Backend, Slot};

/// Tokens for queued requests: unique in the process, so a late answer finds nobody.
static NEXT_WAIT_TOKEN: AtomicU64 = AtomicU64::new(1);

/// Most body bytes buffered at a time while streaming a large body.
const STREAM_BYTES: usize = 64 * 1024;

/// What an exchange waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    Begin,
    CacheWait,
    ReadBody,
    Acquire,
    Queued,
    Connect,
    Connecting,
    Transfer,
    /// goaround's own answer is in the output buffer.
    Local,
}

/// What the session should do after an exchange moved.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Progress {
    Again,
    Wait,
    Finished {
        keep_alive: bool,
    },
    /// A `101` went out: the session becomes a tunnel over the exchange's connection.
    Tunnel,
    Close,
}

/// How much of the request went to the current connection.
#[derive(Default)]
struct Sent {
    head: usize,
    prefix: usize,
    stream: usize,
}

/// The response being relayed.
struct Response {
    head: ResponseHead,
    body: BodyRelay,
}

/// What the access log and metrics need to know about how it ended.
pub(crate) struct Outcome {
    pub status: u16,
    /// Where the answer came from: a backend URL, the cache, or goaround itself.
    pub backend: Option<Arc<Backend>>,
    /// The backend that answered or, after failed attempts, the last one tried.
    pub upstream: Option<Arc<Backend>>,
    /// The status that backend answered.
    pub upstream_status: Option<u16>,
    pub from_cache: bool,
    pub body_bytes: u64,
}

pub(crate) struct Exchange {
    pub head: RequestHead,
    pub started: Instant,
    /// Where the request goes; `None`: no location matched (404).
    upstream: Option<Arc<Upstream>>,
    /// The client may send another request afterwards.
    keep_alive: bool,
    websocket: bool,
    step: Step,
    /// When the current wait began (cache wait, queue, connect).
    since: Instant,
    up_head: Vec<u8>,
    body: ClientBody,
    /// The body as the backend gets it, kept for another attempt while it fits.
    prefix: Vec<u8>,
    /// Body bytes beyond the prefix, on their way; once any is taken, no retry.
    stream: Vec<u8>,
    streamed: bool,
    sent: Sent,
    continue_pending: bool,
    slot: Option<Slot>,
    pub up: Option<usize>,
    /// A retry must not take a pooled connection.
    fresh_only: bool,
    tried: Vec<u64>,
    fresh_retry_used: bool,
    wait_token: Option<u64>,
    up_progress: Instant,
    response: Option<Response>,
    /// With `-cache` only; boxed, like `fill`, so that an exchange without them stays small.
    cache: Option<Box<caching::Step>>,
    fill: Option<Box<Fill>>,
    /// The answer's connection fate, once known.
    answer_keep_alive: bool,
    pub outcome: Outcome,
}

impl Exchange {
    /// A new exchange for `head`.
    pub(crate) fn new(head: RequestHead, io: &ClientIo, ctx: &mut Ctx<'_>) -> Self {
        let now = ctx.now;
        let websocket = crate::http1::forward::is_websocket_upgrade(&head);
        let mut up_head = Vec::new();
        // The location decides the upstream and the path it gets; none: 404 at `begin`.
        let upstream = match ctx.routes.route(head.host.as_deref(), &head.target) {
            Some(routed) => {
                up_head.reserve(head.head_len + 128);
                write_upstream_head(
                    &mut up_head,
                    &head,
                    &Forwarding {
                        client_ip: &io.peer_ip,
                        proto: ctx.shared.proto,
                        target: &routed.target,
                        body: head.framing,
                        websocket,
                    },
                );
                Some(Arc::clone(routed.upstream))
            }
            None => None,
        };
        // The input buffer still holds the head itself: anything beyond it is body already.
        let continue_pending = head.expect_continue
            && head.framing != BodyFraming::None
            && io.input_len() <= head.head_len;
        let keep_alive = head.keep_alive;
        Exchange {
            upstream,
            body: ClientBody::new(head.framing, ctx.shared.config.max_body, now),
            head,
            started: now,
            keep_alive,
            websocket,
            step: Step::Begin,
            since: now,
            up_head,
            prefix: Vec::new(),
            stream: Vec::new(),
            streamed: false,
            sent: Sent::default(),
            continue_pending,
            slot: None,
            up: None,
            fresh_only: false,
            tried: Vec::new(),
            fresh_retry_used: false,
            wait_token: None,
            up_progress: now,
            response: None,
            cache: None,
            fill: None,
            answer_keep_alive: false,
            outcome: Outcome {
                status: 0,
                backend: None,
                upstream: None,
                upstream_status: None,
                from_cache: false,
                body_bytes: 0,
            },
        }
    }

    /// Moves the exchange as far as it can go now.
    pub(crate) fn advance(&mut self, io: &mut ClientIo, ctx: &mut Ctx<'_>, id: Id) -> Progress {
        match self.step {
            Step::Begin => self.begin(io, ctx, id),
            Step::CacheWait | Step::Queued => Progress::Wait,
            Step::ReadBody => self.read_body(io, ctx),
            Step::Acquire => self.acquire(io, ctx, id),
            Step::Connect => self.connect(io, ctx, id),
            Step::Connecting => self.connecting(io, ctx),
            Step::Transfer => self.transfer(io, ctx),
            Step::Local => {
                if io.out_pending() {
                    Progress::Wait
                } else {
                    Progress::Finished {
                        keep_alive: self.answer_keep_alive,
                    }
                }
            }
        }
    }

    fn begin(&mut self, io: &mut ClientIo, ctx: &mut Ctx<'_>, id: Id) -> Progress {
        if self.upstream.is_none() {
            let reusable = self.keep_alive && self.head.framing == BodyFraming::None;
            return self.answer(io, ctx, 404, "no location matches this request", reusable);
        }
        if let (BodyFraming::Length(n), Some(max)) = (self.head.framing, ctx.shared.config.max_body)
        {
            if n > max {
                return self.answer(io, ctx, 413, "request body larger than the limit", false);
            }
        }
        self.look_up(io, ctx, id, true)
    }

    /// Asks the cache; a hit is answered here.
    fn look_up(
        &mut self,
        io: &mut ClientIo,
        ctx: &mut Ctx<'_>,
        id: Id,
        may_wait: bool,
    ) -> Progress {
        match caching::lookup(ctx.shared, &self.head, may_wait) {
            caching::Step::Hit(hit) => {
                // A GET with a body is odd but legal; its body is unread, so close after.
                let keep_alive =
                    self.keep_alive && self.head.framing == BodyFraming::None && !ctx.draining;
                let bytes =
                    caching::queue_hit(io, ctx.buffers, ctx.scratch, &self.head, &hit, keep_alive);
                self.outcome.status = hit.status.as_u16();
                self.outcome.from_cache = true;
                self.outcome.body_bytes = bytes;
                self.answer_keep_alive = keep_alive;
                self.step = Step::Local;
                return Progress::Again;
            }
            caching::Step::Wait(flight) => {
                let mailbox = Arc::clone(ctx.mailbox);
                flight.subscribe(Box::new(move || {
                    mailbox.send(super::super::mailbox::Msg::CacheReady(id));
                }));
                self.step = Step::CacheWait;
                self.since = ctx.now;
                return Progress::Wait;
            }
            caching::Step::Bypass => {}
            miss @ caching::Step::Miss(_) => self.cache = Some(Box::new(miss)),
        }
        self.step = if self.continue_pending {
            Step::Acquire
        } else {
            Step::ReadBody
        };
        Progress::Again
    }

    /// The cache fill this request waited for ended (or its patience did): look again,
    /// without waiting twice.
    pub(crate) fn on_cache_ready(
        &mut self,
        io: &mut ClientIo,
        ctx: &mut Ctx<'_>,
        id: Id,
    ) -> Progress {
        if self.step != Step::CacheWait {
            return Progress::Wait;
        }
        self.look_up(io, ctx, id, false)
    }

    /// Reads the body's first bytes before a slot is taken (or, after `100 Continue`, while
    /// one is held).
    fn read_body(&mut self, io: &mut ClientIo, ctx: &mut Ctx<'_>) -> Progress {
        let pumped = self.body.pump(
            io,
            ctx.buffers,
            &mut self.prefix,
            MAX_BUFFERED_BODY,
            ctx.now,
        );
        match pumped {
            Ok(Pump::Done) => {}
            Ok(_) if self.prefix.len() + 64 >= MAX_BUFFERED_BODY => {}
            Ok(Pump::Some) => return Progress::Again,
            Ok(Pump::Nothing) => return Progress::Wait,
            Err(e) => return self.client_body_failed(io, ctx, e),
        }
        self.step = if self.slot.is_some() {
            Step::Connect
        } else {
            Step::Acquire
        };
        Progress::Again
    }

    fn acquire(&mut self, io: &mut ClientIo, ctx: &mut Ctx<'_>, id: Id) -> Progress {
        let Some(upstream) = self.upstream.clone() else {
            return self.no_slot(io, ctx, AcquireError::NoBackend);
        };
        let token = NEXT_WAIT_TOKEN.fetch_add(1, Ordering::Relaxed);
        let notify: Arc<dyn crate::upstream::Notify> = ctx.mailbox.clone();
        let hash = upstream
            .hash_key
            .as_ref()
            .and_then(|key| hash_input(key, io.peer.ip(), &self.head));
        let acquired = upstream.set.acquire(
            &self.tried,
            Some((token, &notify)),
            hash.as_ref().map(HashInput::as_bytes),
        );
        match acquired {
            Acquired::Slot(slot) => {
                ctx.shared.metrics.handle_wait(0.0);
                self.got_slot(io, ctx, slot)
            }
            Acquired::Queued => {
                self.wait_token = Some(token);
                ctx.waits.insert(token, id);
                self.step = Step::Queued;
                self.since = ctx.now;
                Progress::Wait
            }
            Acquired::Failed(e) => self.no_slot(io, ctx, e),
        }
    }

    /// The wait for a slot ended (a message from whoever returned one).
    pub(crate) fn on_slot(
        &mut self,
        io: &mut ClientIo,
        ctx: &mut Ctx<'_>,
        outcome: Result<Slot, AcquireError>,
    ) -> Progress {
        if self.step != Step::Queued {
            // Not waiting any more: the slot (if any) goes back as it is dropped.
            return Progress::Wait;
        }
        self.wait_token = None;
        let waited = ctx.now.saturating_duration_since(self.since);
        ctx.shared.metrics.handle_wait(waited.as_secs_f64());
        match outcome {
            Ok(slot) => self.got_slot(io, ctx, slot),
            Err(e) => self.no_slot(io, ctx, e),
        }
    }

    fn got_slot(&mut self, io: &mut ClientIo, ctx: &mut Ctx<'_>, slot: Slot) -> Progress {
        if !self.tried.is_empty() {
            ctx.shared.metrics.retry();
        }
        self.outcome.backend = Some(Arc::clone(slot.backend()));
        self.outcome.upstream = Some(Arc::clone(slot.backend()));
        self.slot = Some(slot);
        if self.continue_pending {
            self.continue_pending = false;
            io.queue(ctx.buffers, b"HTTP/1.1 100 Continue\r\n\r\n");
            self.body.start_clock(ctx.now);
            self.step = Step::ReadBody;
        } else {
            self.step = Step::Connect;
        }
        Progress::Again
    }

    fn no_slot(&mut self, io: &mut ClientIo, ctx: &mut Ctx<'_>, e: AcquireError) -> Progress {
        // A request with a body closes the connection, even when its body was read whole
        // (keeping it would be safe then; closing is the simpler rule for clients to know).
        let reusable = self.keep_alive && self.head.framing == BodyFraming::None;
        if self.tried.is_empty() {
            return self.answer(io, ctx, 503, &e.to_string(), reusable);
        }
        log::warn!(
            "{} {}: gave up after {} backends failed",
            self.head.method,
            self.head.target,
            self.tried.len()
        );
        self.answer(io, ctx, 502, retry::NO_BACKEND_ANSWERED, reusable)
    }

    fn connect(&mut self, io: &mut ClientIo, ctx: &mut Ctx<'_>, id: Id) -> Progress {
        let Some(slot) = &self.slot else {
            self.step = Step::Acquire;
            return Progress::Again;
        };
        let backend = Arc::clone(slot.backend());
        self.sent = Sent::default();
        self.up_progress = ctx.now;
        if !self.fresh_only {
            if let Some(u) = ctx.pool.take(backend.id, ctx.ups) {
                if let Some(up) = ctx.ups.get_mut(u) {
                    up.owner = Some(id);
                }
                self.up = Some(u);
                self.step = Step::Transfer;
                return Progress::Again;
            }
        }
        self.fresh_only = false;
        let tls = ctx.shared.backend_tls.as_ref();
        match upstream_conn::connect(&backend, id, tls, ctx.ups, ctx.registry, ctx.now) {
            Ok(u) => {
                self.up = Some(u);
                self.step = Step::Connecting;
                self.since = ctx.now;
                Progress::Wait
            }
            Err(ConnectError::Local(e)) => {
                log::warn!("connecting to {}: {e}", backend.url);
                self.fail(io, ctx, Failure::LocalResources, &e.to_string())
            }
            Err(ConnectError::Refused(why)) => self.fail(io, ctx, Failure::ConnectRefused, &why),
        }
    }

    fn connecting(&mut self, io: &mut ClientIo, ctx: &mut Ctx<'_>) -> Progress {
        let Some(up) = self.up.and_then(|u| ctx.ups.get_mut(u)) else {
            return self.fail(io, ctx, Failure::ConnectRefused, "connection vanished");
        };
        match up.finish_connect() {
            Ok(true) => {
                self.step = Step::Transfer;
                self.up_progress = ctx.now;
                Progress::Again
            }
            Ok(false) => Progress::Wait,
            Err(e) => {
                let failure = if upstream_conn::is_local_exhaustion(&e) {
                    Failure::LocalResources
                } else {
                    Failure::ConnectRefused
                };
                self.fail(io, ctx, failure, &format!("connect: {e}"))
            }
        }
    }

    /// Request out, response in, output to the client, until nothing moves.
    fn transfer(&mut self, io: &mut ClientIo, ctx: &mut Ctx<'_>) -> Progress {
        loop {
            let mut moved = match self.send(io, ctx) {
                Ok(moved) => moved,
                Err(SendError::Upstream(failure, why)) => return self.fail(io, ctx, failure, &why),
                Err(SendError::Client(e)) => return self.client_body_failed(io, ctx, e),
            };
            match self.receive(io, ctx) {
                Ok(true) => moved = true,
                Ok(false) => {}
                Err(progress) => return progress,
            }
            let before = io.ready_len();
            if before > 0 || io.transport.has_pending_output() {
                if io.flush(ctx.now).is_err() {
                    log::debug!("{}: client went away", io.peer);
                    return Progress::Close;
                }
                moved |= io.ready_len() < before;
            }
            if self.up.is_none() && self.response.as_ref().is_some_and(|r| r.body.is_complete()) {
                // The backend's part is over; the client's may still be flushing.
                if io.out_pending() {
                    return Progress::Wait;
                }
                return Progress::Finished {
                    keep_alive: self.answer_keep_alive && self.body.is_done(),
                };
            }
            if !moved || !ctx.spend() {
                return Progress::Wait;
            }
        }
    }

    /// Writes what is left of the request to the backend; streams more of a large body.
    fn send(&mut self, io: &mut ClientIo, ctx: &mut Ctx<'_>) -> Result<bool, SendError> {
        // Once the final response head is in, the rest of the request is not sent: the
        // backend has decided (the connection is then not reused).
        if self.response.is_some() {
            return Ok(false);
        }
        let Some(u) = self.up else { return Ok(false) };
        let mut moved = false;
        loop {
            let Some(up) = ctx.ups.get_mut(u) else {
                return Err(SendError::Upstream(
                    Failure::Lost { reused: false },
                    "connection vanished".into(),
                ));
            };
            let head = &self.up_head[self.sent.head..];
            let prefix = &self.prefix[self.sent.prefix..];
            let stream = &self.stream[self.sent.stream..];
            if head.is_empty() && prefix.is_empty() && stream.is_empty() {
                if self.body.is_done() {
                    return Ok(moved);
                }
                self.stream.clear();
                self.sent.stream = 0;
                match self
                    .body
                    .pump(io, ctx.buffers, &mut self.stream, STREAM_BYTES, ctx.now)
                {
                    Ok(Pump::Nothing) => return Ok(moved),
                    Ok(Pump::Some | Pump::Done) => {
                        self.streamed = true;
                        continue;
                    }
                    Err(e) => return Err(SendError::Client(e)),
                }
            }
            if !up.writable {
                return Ok(moved);
            }
            let total = head.len() + prefix.len() + stream.len();
            let bufs = [
                IoSlice::new(head),
                IoSlice::new(prefix),
                IoSlice::new(stream),
            ];
            let single = match (head.is_empty(), prefix.is_empty(), stream.is_empty()) {
                (false, true, true) => Some(head),
                (true, false, true) => Some(prefix),
                (true, true, false) => Some(stream),
                _ => None,
            };
            let result = match single {
                // Most requests are a head alone: a plain send costs the kernel less than
                // a writev.
                Some(bytes) => up.transport.write(bytes),
                None => up.transport.write_vectored(&bufs),
            };
            let written = match result {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    up.writable = false;
                    return Ok(moved);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let reused = up.reused;
                    return Err(SendError::Upstream(
                        Failure::Lost { reused },
                        format!("sending the request: {e}"),
                    ));
                }
            };
            if written < total && !up.transport.is_tls() {
                up.writable = false;
            }
            let mut left = written;
            for (sent, len) in [
                (&mut self.sent.head, head.len()),
                (&mut self.sent.prefix, prefix.len()),
                (&mut self.sent.stream, stream.len()),
            ] {
                let n = left.min(len);
                *sent += n;
                left -= n;
            }
            self.up_progress = ctx.now;
            moved = true;
        }
    }

    /// Bytes of the request written to the current connection.
    fn bytes_sent(&self) -> u64 {
        (self.sent.head + self.sent.prefix + self.sent.stream) as u64
    }

    /// Everything of the request reached the backend's socket.
    fn request_sent(&self) -> bool {
        self.body.is_done()
            && self.sent.head == self.up_head.len()
            && self.sent.prefix == self.prefix.len()
            && self.sent.stream == self.stream.len()
    }

    /// Reads the response: its head (1xx ones included), then its body. A final head and
    /// the body bytes that came with it are made ready together, so they leave in one write.
    fn receive(&mut self, io: &mut ClientIo, ctx: &mut Ctx<'_>) -> Result<bool, Progress> {
        if self.response.is_none() {
            if !self.receive_head(io, ctx)? {
                return Ok(false);
            }
            if self.response.is_none() {
                // An informational head: the next one may follow at once.
                return Ok(true);
            }
            self.receive_body(io, ctx)?;
            return Ok(true);
        }
        self.receive_body(io, ctx)
    }

    fn receive_head(&mut self, io: &mut ClientIo, ctx: &mut Ctx<'_>) -> Result<bool, Progress> {
        let Some(u) = self.up else { return Ok(false) };
        let Some(up) = ctx.ups.get_mut(u) else {
            return Err(self.fail(
                io,
                ctx,
                Failure::Lost { reused: false },
                "connection vanished",
            ));
        };
        let reused = up.reused;
        let was_head = self.head.method == http::Method::HEAD;
        match relay::read_head(io, up, ctx.buffers, was_head) {
            HeadRead::Blocked => Ok(false),
            HeadRead::Head(head) => {
                self.up_progress = ctx.now;
                self.on_head(head, io, ctx).map(|()| true)
            }
            HeadRead::Lost {
                got_bytes: false,
                error,
            } => {
                let why = error.map_or("connection closed".to_owned(), |e| e.to_string());
                Err(self.fail(io, ctx, Failure::Lost { reused }, &why))
            }
            HeadRead::Lost {
                got_bytes: true, ..
            } => Err(self.fail(
                io,
                ctx,
                Failure::BadResponse,
                "connection closed in the middle of the response head",
            )),
            HeadRead::Invalid(why) => Err(self.fail(io, ctx, Failure::BadResponse, &why)),
        }
    }

    fn receive_body(&mut self, io: &mut ClientIo, ctx: &mut Ctx<'_>) -> Result<bool, Progress> {
        let (Some(u), Some(response)) = (self.up, self.response.as_mut()) else {
            return Ok(false);
        };
        let Some(up) = ctx.ups.get_mut(u) else {
            return Err(Progress::Close);
        };
        let fill = &mut self.fill;
        let mut capture = |bytes: &[u8]| {
            if let Some(fill) = fill.as_mut() {
                fill.push(bytes);
            }
        };
        match response.body.step(io, up, ctx.buffers, &mut capture) {
            Ok(relay::Step::Progress) => {
                self.up_progress = ctx.now;
                Ok(true)
            }
            Ok(relay::Step::Blocked | relay::Step::Full) => Ok(false),
            Ok(relay::Step::Complete) => {
                self.up_progress = ctx.now;
                self.upstream_done(ctx);
                Ok(true)
            }
            Err(e) => {
                let backend = self.backend_label();
                log::warn!(
                    "{} {} -> {backend}: response body: {e}",
                    self.head.method,
                    self.head.target
                );
                ctx.shared.metrics.upstream_error(backend, "body");
                Err(Progress::Close)
            }
        }
    }

    /// A response head arrived: informational ones are passed on (or dropped) and reading
    /// goes on; the final one is rewritten for the client and its body relay set up.
    fn on_head(
        &mut self,
        head: ResponseHead,
        io: &mut ClientIo,
        ctx: &mut Ctx<'_>,
    ) -> Result<(), Progress> {
        let version = self.head.version;
        match head.status {
            101 if self.websocket && self.switches_to_websocket(&head, io) => {
                return Err(self.switch_protocols(head, io, ctx))
            }
            101 => {
                return Err(self.fail(
                    io,
                    ctx,
                    Failure::BadResponse,
                    "101 Switching Protocols to a request that asked for no upgrade",
                ))
            }
            // We answer `Expect: 100-continue` ourselves and do not forward it.
            100 => {
                relay::drop_unprocessed(io, head.head_len);
                return Ok(());
            }
            // RFC 9110 §15.2: a proxy forwards 1xx responses, except to HTTP/1.0 clients.
            102..=199 if version == Version::Http11 => {
                let render = |out: &mut Vec<u8>, raw: &[u8]| write_informational(out, raw, &head);
                if !replace_head(io, ctx.scratch, head.head_len, render) {
                    relay::drop_unprocessed(io, head.head_len);
                }
                return Ok(());
            }
            102..=199 => {
                relay::drop_unprocessed(io, head.head_len);
                return Ok(());
            }
            _ => {}
        }
        if let Some(slot) = &self.slot {
            response_seen(slot.backend(), head.status, ctx);
        }
        caching::invalidate(ctx.shared, &self.head);
        let to_client = head.client_framing(version);
        let keep_alive = self.keep_alive
            && !ctx.draining
            && !ctx.shared.is_shutting_down()
            && to_client != ResponseFraming::UntilClose;
        let cached = matches!(self.cache.as_deref(), Some(caching::Step::Miss(_)));
        let (cache, fill) = (&mut self.cache, &mut self.fill);
        let render = |out: &mut Vec<u8>, raw: &[u8]| {
            if let Some(caching::Step::Miss(ticket)) = cache.as_deref_mut() {
                if let Some(ticket) = ticket.take() {
                    *fill = Fill::start(ticket, head.status, raw).map(Box::new);
                }
            }
            let miss: &[(&str, &[u8])] = &[("x-cache", b"MISS")];
            let extra = if cached { miss } else { &[] };
            write_client_head(out, raw, &head, to_client, keep_alive, version, extra);
        };
        if !replace_head(io, ctx.scratch, head.head_len, render) {
            return Err(self.fail(io, ctx, Failure::BadResponse, "response head too large"));
        }
        self.outcome.status = head.status;
        self.outcome.upstream_status = Some(head.status);
        self.answer_keep_alive = keep_alive;
        let body = BodyRelay::new(io, ctx.buffers, head.framing, to_client);
        let complete = body.is_complete();
        self.response = Some(Response { head, body });
        if complete {
            self.upstream_done(ctx);
        }
        Ok(())
    }

    /// `101 Switching Protocols` to a WebSocket request: the head goes to the client and the
    /// connection becomes a tunnel, which holds no slot.
    fn switch_protocols(
        &mut self,
        head: ResponseHead,
        io: &mut ClientIo,
        ctx: &mut Ctx<'_>,
    ) -> Progress {
        let render = |out: &mut Vec<u8>, raw: &[u8]| write_switching_protocols(out, raw, &head);
        if !replace_head(io, ctx.scratch, head.head_len, render) {
            return self.fail(io, ctx, Failure::BadResponse, "response head too large");
        }
        if let Some(slot) = self.slot.take() {
            response_seen(slot.backend(), head.status, ctx);
        }
        self.outcome.status = 101;
        self.outcome.upstream_status = Some(101);
        Progress::Tunnel
    }

    /// The head is a `101` to WebSocket, as the request asked.
    fn switches_to_websocket(&self, head: &ResponseHead, io: &ClientIo) -> bool {
        let at = io.ready;
        io.out
            .as_ref()
            .and_then(|o| o.data().get(at..at + head.head_len))
            .is_some_and(|raw| head.switches_to_websocket(raw))
    }

    /// The whole body is in the output buffer: the backend connection goes back to the pool
    /// (when it can carry another request) and the slot to whoever waits.
    fn upstream_done(&mut self, ctx: &mut Ctx<'_>) {
        let reusable = self.request_sent()
            && self
                .response
                .as_ref()
                .is_some_and(|r| r.head.keep_alive && !r.body.overrun && !r.body.ended_by_close);
        if let Some(response) = self.response.as_mut() {
            self.outcome.body_bytes = response.body.sent;
            response.body.release(ctx.buffers);
            if let Some(slot) = &self.slot {
                let stats = &slot.backend().stats;
                stats.record_bytes_in(response.head.head_len as u64 + response.body.sent);
            }
        }
        if let Some(slot) = &self.slot {
            slot.backend().stats.record_bytes_out(self.bytes_sent());
        }
        if let Some(u) = self.up.take() {
            release_connection(ctx, u, reusable);
        }
        self.slot = None;
        if let Some(fill) = self.fill.take() {
            fill.finish();
        }
    }

    /// An attempt failed before a response head: retry, or answer.
    fn fail(
        &mut self,
        io: &mut ClientIo,
        ctx: &mut Ctx<'_>,
        failure: Failure,
        why: &str,
    ) -> Progress {
        if let Some(u) = self.up.take() {
            upstream_conn::close(ctx.ups, ctx.registry, u);
        }
        relay::truncate_unprocessed(io);
        self.response = None;
        let Some(slot) = self.slot.take() else {
            return self.answer(io, ctx, 502, "the backend failed to answer", false);
        };
        let backend = Arc::clone(slot.backend());
        ctx.shared
            .metrics
            .upstream_error(&backend.url.base, failure.kind());
        let second = crate::stats::clock().secs_at(ctx.now);
        if let Some(kind) = stats_failure(failure) {
            backend.stats.record_failure(second, kind);
        }
        backend.stats.record_bytes_out(self.bytes_sent());
        let attempt = Attempt {
            idempotent: retry::is_idempotent(&self.head.method),
            replayable: !self.streamed,
            fresh_retry_used: self.fresh_retry_used,
        };
        let verdict = retry::decide(failure, attempt);
        count_failure(&backend, verdict, why, ctx);
        let (method, target) = (&self.head.method, &self.head.target);
        match verdict.next {
            Next::SameBackendFresh => {
                log::debug!(
                    "{method} {target} -> {}: {why}; retrying on a new connection",
                    backend.url
                );
                ctx.shared.metrics.retry();
                self.fresh_retry_used = true;
                self.fresh_only = true;
                self.slot = Some(slot);
                self.step = Step::Connect;
                Progress::Again
            }
            Next::OtherBackend => {
                log::debug!(
                    "{method} {target} -> {}: {why}; trying another backend",
                    backend.url
                );
                // Counted as a retry once another backend's slot is had (`got_slot`): with
                // none left, this failure was the last attempt.
                self.tried.push(backend.id);
                drop(slot);
                self.step = Step::Acquire;
                Progress::Again
            }
            Next::GiveUp { status, message } => {
                log::warn!("{method} {target} -> {}: {why}", backend.url);
                drop(slot);
                let reusable = self.keep_alive && self.body.is_done();
                self.answer(io, ctx, status, message, reusable)
            }
        }
    }

    /// The client failed while sending its body: 408/400/413 if it can still hear us.
    fn client_body_failed(
        &mut self,
        io: &mut ClientIo,
        ctx: &mut Ctx<'_>,
        e: ClientBodyError,
    ) -> Progress {
        if let Some(u) = self.up.take() {
            upstream_conn::close(ctx.ups, ctx.registry, u);
        }
        self.slot = None;
        match e {
            ClientBodyError::Framing(e) => self.answer(io, ctx, 400, &e.to_string(), false),
            ClientBodyError::TooLarge => {
                self.answer(io, ctx, 413, "request body larger than the limit", false)
            }
            ClientBodyError::Closed => {
                log::debug!("{}: client closed mid-body", io.peer);
                Progress::Close
            }
        }
    }

    /// goaround answers the request itself.
    fn answer(
        &mut self,
        io: &mut ClientIo,
        ctx: &mut Ctx<'_>,
        status: u16,
        message: &str,
        keep_alive: bool,
    ) -> Progress {
        relay::truncate_unprocessed(io);
        let keep_alive = keep_alive && !ctx.draining && !ctx.shared.is_shutting_down();
        let format = Format::from_accept(self.head.accept());
        let head_only = self.head.method == http::Method::HEAD;
        let page = error_page::render_for(
            self.head.version,
            status,
            message,
            format,
            keep_alive,
            head_only,
        );
        io.queue(ctx.buffers, &page);
        self.outcome.status = status;
        self.outcome.body_bytes = match head_only {
            true => 0,
            false => error_page::body_len(status, message, format) as u64,
        };
        self.outcome.backend = None;
        self.answer_keep_alive = keep_alive;
        self.step = Step::Local;
        Progress::Again
    }

    /// When the current wait must end, if it can.
    pub(crate) fn deadline(
        &self,
        io: &ClientIo,
        config: &crate::config::Config,
    ) -> Option<Instant> {
        match self.step {
            Step::Begin | Step::Acquire | Step::Connect => None,
            Step::CacheWait => Some(self.since + config.response_timeout),
            Step::ReadBody => Some(self.body.deadline(config.body_timeout)),
            Step::Queued => Some(self.since + config.queue_timeout),
            Step::Connecting => Some(self.since + config.connect_timeout),
            Step::Local => io
                .out_pending()
                .then(|| io.out_progress + config.write_timeout),
            Step::Transfer => {
                if io.out_pending() && !io.writable {
                    return Some(io.out_progress + config.write_timeout);
                }
                let mut deadline = None;
                if self.up.is_some() {
                    deadline = Some(self.up_progress + config.response_timeout);
                }
                if self.waiting_for_client_body() {
                    let body = self.body.deadline(config.body_timeout);
                    deadline = Some(deadline.map_or(body, |d: Instant| d.min(body)));
                }
                deadline
            }
        }
    }

    fn waiting_for_client_body(&self) -> bool {
        self.response.is_none()
            && !self.body.is_done()
            && self.sent.head == self.up_head.len()
            && self.sent.prefix == self.prefix.len()
            && self.sent.stream == self.stream.len()
    }

    /// The deadline passed: what it was for decides what happens.
    pub(crate) fn on_timeout(&mut self, io: &mut ClientIo, ctx: &mut Ctx<'_>, id: Id) -> Progress {
        let config = &ctx.shared.config;
        let now = ctx.now;
        match self.step {
            Step::CacheWait => self.look_up(io, ctx, id, false),
            Step::ReadBody => {
                self.slot = None;
                self.answer(io, ctx, 408, "request body not received in time", false)
            }
            Step::Queued => {
                let Some(token) = self.wait_token else {
                    return Progress::Wait;
                };
                if !self.upstream.as_ref().is_some_and(|u| u.set.cancel(token)) {
                    // Granted just now: the slot is in the mailbox.
                    return Progress::Wait;
                }
                ctx.waits.remove(&token);
                self.wait_token = None;
                ctx.shared
                    .metrics
                    .handle_wait(config.queue_timeout.as_secs_f64());
                self.no_slot(io, ctx, AcquireError::Busy)
            }
            Step::Connecting => self.fail(io, ctx, Failure::ConnectTimeout, "connect: timed out"),
            Step::Local => {
                log::debug!("{}: client not reading; closed", io.peer);
                Progress::Close
            }
            Step::Transfer => {
                if io.out_pending() && !io.writable && now >= io.out_progress + config.write_timeout
                {
                    log::debug!(
                        "{}: client not reading for {:?}; closed",
                        io.peer,
                        config.write_timeout
                    );
                    return Progress::Close;
                }
                if self.waiting_for_client_body() && now >= self.body.deadline(config.body_timeout)
                {
                    return self.client_body_failed_timeout(io, ctx);
                }
                if self.up.is_some() && now >= self.up_progress + config.response_timeout {
                    if self.response.is_none() {
                        return self.fail(
                            io,
                            ctx,
                            Failure::ResponseTimeout,
                            "no response head within the response timeout",
                        );
                    }
                    let backend = self.backend_label();
                    log::warn!(
                        "{} {} -> {backend}: response body: no data for {:?}",
                        self.head.method,
                        self.head.target,
                        config.response_timeout
                    );
                    ctx.shared.metrics.upstream_error(backend, "body");
                    return Progress::Close;
                }
                Progress::Wait
            }
            Step::Begin | Step::Acquire | Step::Connect => Progress::Again,
        }
    }

    fn client_body_failed_timeout(&mut self, io: &mut ClientIo, ctx: &mut Ctx<'_>) -> Progress {
        if let Some(u) = self.up.take() {
            upstream_conn::close(ctx.ups, ctx.registry, u);
        }
        self.slot = None;
        self.answer(io, ctx, 408, "request body not received in time", false)
    }

    /// The session is closing: the backend connection (mid-exchange, so not reusable) is
    /// closed and a queued wait withdrawn.
    pub(crate) fn abort(&mut self, ctx: &mut Ctx<'_>) {
        if let Some(u) = self.up.take() {
            // A response already complete in the buffer released its connection; what is
            // left here is mid-exchange.
            upstream_conn::close(ctx.ups, ctx.registry, u);
        }
        if let Some(token) = self.wait_token.take() {
            if let Some(upstream) = &self.upstream {
                upstream.set.cancel(token);
            }
            ctx.waits.remove(&token);
        }
        if let Some(response) = self.response.as_mut() {
            response.body.release(ctx.buffers);
        }
    }

    /// The connection a tunnel takes over.
    pub(crate) fn take_upstream(&mut self) -> Option<usize> {
        self.up.take()
    }

    /// The label of the answer in metrics: the backend's URL, `cache`, or `none`.
    pub(crate) fn backend_label(&self) -> &str {
        match (&self.outcome.backend, self.outcome.from_cache) {
            (_, true) => CACHE,
            (Some(b), _) => &b.url.base,
            (None, _) => NO_BACKEND,
        }
    }
}

/// Renders, into `scratch`, the client's version of the backend head that is the first
/// `head_len` unprocessed bytes of the output buffer, and puts it in their place. False when
/// there is no output buffer or the new head does not fit.
fn replace_head(
    io: &mut ClientIo,
    scratch: &mut Vec<u8>,
    head_len: usize,
    render: impl FnOnce(&mut Vec<u8>, &[u8]),
) -> bool {
    let raw_at = io.ready;
    let Some(raw) = io
        .out
        .as_ref()
        .and_then(|o| o.data().get(raw_at..raw_at + head_len))
    else {
        return false;
    };
    scratch.clear();
    render(scratch, raw);
    relay::place_head(io, head_len, scratch)
}

/// Why sending a request stopped.
enum SendError {
    Upstream(Failure, String),
    Client(ClientBodyError),
}

/// Returns a backend connection to the pool, or closes it.
fn release_connection(ctx: &mut Ctx<'_>, u: usize, reusable: bool) {
    let clean = reusable && ctx.ups.get_mut(u).is_some_and(idle_is_clean);
    if clean {
        ctx.pool.put(u, ctx.ups, ctx.now);
    } else {
        upstream_conn::close(ctx.ups, ctx.registry, u);
    }
}

/// A connection about to go idle must have nothing more to say; if the last read did not
/// drain the socket, look once (a response longer than its Content-Length, or a close).
fn idle_is_clean(up: &mut upstream_conn::UpConn) -> bool {
    if up.read_closed {
        return false;
    }
    if !up.readable {
        return true;
    }
    let mut probe = [0u8; 1];
    match up.transport.read(&mut probe) {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
            up.readable = false;
            true
        }
        _ => false,
    }
}

/// How a failure shows on the status page; running out of local resources is goaround's
/// own trouble and not the backend's.
fn stats_failure(failure: Failure) -> Option<crate::stats::Failure> {
    use crate::stats::Failure as S;
    match failure {
        Failure::ConnectRefused | Failure::ConnectTimeout | Failure::TlsHandshake => {
            Some(S::Connect)
        }
        Failure::ResponseTimeout => Some(S::Timeout),
        Failure::Lost { .. } => Some(S::Reset),
        Failure::BadResponse => Some(S::Protocol),
        Failure::LocalResources => None,
    }
}

/// A response head from the backend: a success for passive health, except that a
/// `-config` server's 502, 503 or 504 is a failure (nginx's `max_fails` counts them when
/// `proxy_next_upstream` names them; Gourmet's README says so).
fn response_seen(backend: &Backend, status: u16, ctx: &mut Ctx<'_>) {
    let transition = if matches!(status, 502..=504) && backend.has_window_passive() {
        backend.record_failure(ctx.now).1
    } else {
        backend.record_success(ctx.now)
    };
    log_transition(backend, transition, ctx, "502/503/504 answers");
}

/// A failed attempt, as the retry verdict says it counts: a `-config` server's
/// `max_fail`/`fail_timeout`; a `-b` backend's `-max-fails` in a row, and a refused
/// connection taking it out at once.
fn count_failure(backend: &Backend, verdict: retry::Verdict, why: &str, ctx: &mut Ctx<'_>) {
    if !verdict.counts_against_backend && !verdict.marks_down {
        return;
    }
    let (in_a_row, transition) = backend.record_failure(ctx.now);
    if backend.has_window_passive() {
        log_transition(backend, transition, ctx, why);
        return;
    }
    let max = ctx.shared.config.max_fails;
    if verdict.counts_against_backend && max > 0 && in_a_row >= max {
        mark_down(
            backend,
            &format!("{in_a_row} failed requests in a row, last: {why}"),
        );
    }
    if verdict.marks_down {
        mark_down(backend, why);
    }
}

/// Logs and counts a `max_fail` transition.
fn log_transition(
    backend: &Backend,
    transition: Option<crate::upstream::passive::Transition>,
    ctx: &mut Ctx<'_>,
    why: &str,
) {
    use crate::upstream::passive::Transition;
    match transition {
        Some(Transition::Down { failures }) => {
            log::warn!(
                "backend {} is down for its fail_timeout: {failures} failures (max_fail), last: {why}",
                backend.url.base
            );
            ctx.shared
                .metrics
                .passive_transition(&backend.url.base, false);
        }
        Some(Transition::Up) => {
            log::info!(
                "backend {} is up again after its fail_timeout",
                backend.url.base
            );
            ctx.shared
                .metrics
                .passive_transition(&backend.url.base, true);
        }
        None => {}
    }
}

/// A refused connection (or `-max-fails` failures) takes the backend out at once (GoAround's
/// degraded connection); its health thread checks it again a second later and brings it
/// back when `/health` passes.
fn mark_down(backend: &Backend, why: &str) {
    if backend.mark_down_passively(why) {
        log::warn!("backend {} is down: {why}", backend.url.base);
    }
    backend.wake_health();
}
