//! One event loop: a thread with its own `mio::Poll`, listening socket, client sessions,
//! backend connections and their idle pool, timers and mailbox. Nothing in it is shared;
//! what is shared (the backend set, the cache, metrics, config) is behind `Shared`.
//!
//! One turn of the loop: wait for events (or the next deadline); for each event set the
//! connection's readiness and move its session as far as it goes; handle mailbox messages;
//! fire the timers that are due; accept new connections while the listener has any and
//! `-max-conns` allows. Sockets are edge-triggered and registered once for reading and
//! writing, so a request costs no `epoll_ctl`.
//!
//! A panic while serving one connection is caught here: that connection is closed (and any
//! backend connection it held), the panic is logged and counted, and the loop goes on.

use std::io;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

use super::buffer::BufferPool;
use super::mailbox::{Mailbox, Msg};
use super::session::{Ctx, Session, Status, TURN_BUDGET};
use super::slab::{Id, Slab};
use super::timers::Timers;
use super::transport::Transport;
use super::upstream_conn::{self, IdlePool, UpConn};
use super::Shared;
use crate::fast_hash::FastMap;
use crate::metrics::RequestRecorder;
use crate::upstream::routes::RoutesView;

pub(crate) const WAKER: Token = Token(usize::MAX);

/// Token of the loop's listener `i` (a loop may have several after an upgrade to fewer
/// loops than the sockets it inherited).
fn listener_token(i: usize) -> Token {
    Token(usize::MAX - 1 - i)
}

/// Tokens at or above this are listeners (or the waker).
const LISTENER_TOKENS: usize = usize::MAX - 1024;

/// Connections accepted per turn, so a burst of new clients cannot starve the others.
const ACCEPT_BATCH: usize = 64;

/// How often idle backend connections, memory and paused accepting are looked at.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// How long accepting pauses after running out of descriptors.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

fn client_token(index: usize) -> Token {
    Token(index * 2)
}

pub(crate) struct EventLoop {
    index: usize,
    poll: Poll,
    /// The loop's listening sockets, and whether an edge said connections wait on each
    /// (cleared when `accept` says `WouldBlock`).
    listeners: Vec<(TcpListener, bool)>,
    /// Accepting waits until then (descriptors ran out).
    accept_after: Option<Instant>,
    /// At `-max-conns`: logged once, until a connection closes.
    at_limit: bool,
    sessions: Slab<Session>,
    ups: Slab<UpConn>,
    pool: IdlePool,
    buffers: BufferPool,
    timers: Timers,
    scratch: Vec<u8>,
    mailbox: Arc<Mailbox>,
    inbox: Receiver<Msg>,
    waits: FastMap<u64, Id>,
    /// Sessions that used up their turn with work left: driven again next turn.
    again: Vec<Id>,
    recorder: RequestRecorder,
    routes: RoutesView,
    shared: Arc<Shared>,
    draining: bool,
    now: Instant,
}

/// The context a session works with: the loop's shared parts, borrowed field by field so
/// that the session itself (in `sessions`) can be borrowed beside it.
macro_rules! loop_ctx {
    ($lp:ident) => {
        Ctx {
            shared: &$lp.shared,
            routes: $lp.routes.get(&$lp.shared.routes),
            registry: $lp.poll.registry(),
            ups: &mut $lp.ups,
            pool: &mut $lp.pool,
            buffers: &mut $lp.buffers,
            scratch: &mut $lp.scratch,
            mailbox: &$lp.mailbox,
            recorder: &mut $lp.recorder,
            waits: &mut $lp.waits,
            now: $lp.now,
            draining: $lp.draining,
            budget: TURN_BUDGET,
            yielded: false,
        }
    };
}

impl EventLoop {
    pub(crate) fn new(
        index: usize,
        poll: Poll,
        std_listeners: Vec<std::net::TcpListener>,
        mailbox: Arc<Mailbox>,
        inbox: Receiver<Msg>,
        shared: Arc<Shared>,
    ) -> io::Result<EventLoop> {
        let mut listeners = Vec::with_capacity(std_listeners.len());
        for (i, std_listener) in std_listeners.into_iter().enumerate() {
            std_listener.set_nonblocking(true)?;
            let mut listener = TcpListener::from_std(std_listener);
            poll.registry()
                .register(&mut listener, listener_token(i), Interest::READABLE)?;
            listeners.push((listener, true));
        }
        Ok(EventLoop {
            index,
            poll,
            listeners,
            accept_after: None,
            at_limit: false,
            sessions: Slab::default(),
            ups: Slab::default(),
            pool: IdlePool::default(),
            buffers: BufferPool::default(),
            timers: Timers::default(),
            scratch: Vec::with_capacity(4096),
            mailbox,
            inbox,
            waits: FastMap::default(),
            again: Vec::new(),
            recorder: RequestRecorder::new(Arc::clone(&shared.metrics)),
            routes: RoutesView::new(&shared.routes),
            shared,
            draining: false,
            now: Instant::now(),
        })
    }

    /// Runs until a drain has finished every session.
    pub(crate) fn run(mut self) {
        self.mailbox.set_owner();
        let mut events = Events::with_capacity(1024);
        let mut next_sweep = Instant::now() + SWEEP_EVERY;
        loop {
            let timeout = self.poll_timeout(next_sweep);
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    log::error!("event loop {}: poll: {e}", self.index);
                    std::thread::sleep(Duration::from_millis(10));
                }
                continue;
            }
            self.now = Instant::now();
            for event in events.iter() {
                match event.token() {
                    WAKER => {}
                    Token(t) if t >= LISTENER_TOKENS => {
                        if let Some(l) = self.listeners.get_mut(usize::MAX - 1 - t) {
                            l.1 = true;
                        }
                    }
                    Token(t) if t % 2 == 0 => self.client_event(t / 2, event),
                    Token(t) => self.upstream_event(t / 2, event),
                }
            }
            self.read_mailbox();
            self.drive_again();
            self.fire_timers();
            if self.now >= next_sweep {
                self.sweep();
                next_sweep = self.now + SWEEP_EVERY;
            }
            self.accept();
            if self.draining && self.sessions.is_empty() {
                break;
            }
        }
        for index in self.ups.indices() {
            upstream_conn::close(&mut self.ups, self.poll.registry(), index);
        }
        log::debug!("event loop {} stopped", self.index);
    }

    fn poll_timeout(&self, next_sweep: Instant) -> Duration {
        let now = Instant::now();
        let pending = self.listeners.iter().any(|(_, ready)| *ready);
        if self.can_accept(now) && pending || !self.inbox.is_empty() || !self.again.is_empty() {
            return Duration::ZERO;
        }
        let next = match self.timers.next() {
            Some(at) => at.min(next_sweep),
            None => next_sweep,
        };
        let next = match self.accept_after {
            Some(at) => next.min(at),
            None => next,
        };
        // Deadlines are kept to the millisecond; round up so a timer never spins early.
        next.saturating_duration_since(now) + Duration::from_micros(500)
    }

    fn can_accept(&self, now: Instant) -> bool {
        !self.listeners.is_empty()
            && !self.draining
            && self.accept_after.is_none_or(|at| now >= at)
            && self.shared.open.load(Ordering::Acquire) < self.shared.config.max_client_conns
    }

    fn accept(&mut self) {
        if self.draining || self.accept_after.is_some_and(|at| self.now < at) {
            return;
        }
        self.accept_after = None;
        let mut budget = ACCEPT_BATCH;
        for i in 0..self.listeners.len() {
            while self.listeners[i].1 && budget > 0 {
                let open = self.shared.open.load(Ordering::Acquire);
                let max = self.shared.config.max_client_conns;
                if open >= max {
                    if !self.at_limit {
                        self.at_limit = true;
                        log::warn!(
                            "not accepting: {open} client connections open (-max-conns {max})"
                        );
                    }
                    return;
                }
                if self.at_limit {
                    self.at_limit = false;
                    log::info!("accepting again");
                }
                budget -= 1;
                match self.listeners[i].0.accept() {
                    Ok((stream, peer)) => self.add_session(stream, peer, false),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.listeners[i].1 = false,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if upstream_conn::is_local_exhaustion(&e) => {
                        log::warn!("accept: {e}; pausing for {ACCEPT_BACKOFF:?}");
                        self.accept_after = Some(self.now + ACCEPT_BACKOFF);
                        return;
                    }
                    // A client that reset before we accepted it, and the like.
                    Err(e) => log::debug!("accept: {e}"),
                }
            }
        }
    }

    /// Starts serving a new client connection. `drive`: its request may already be waiting
    /// (a connection taken from the backlog at shutdown).
    fn add_session(&mut self, stream: TcpStream, peer: SocketAddr, drive: bool) {
        let _ = stream.set_nodelay(true);
        let transport = match &self.shared.tls {
            None => Transport::plain(stream),
            Some(tls) => match rustls::ServerConnection::new(tls.current()) {
                Ok(conn) => Transport::tls(stream, rustls::Connection::Server(conn)),
                Err(e) => {
                    log::warn!("{peer}: cannot start TLS: {e}");
                    return;
                }
            },
        };
        let placeholder = Id {
            index: 0,
            generation: 0,
        };
        let id = self
            .sessions
            .insert(Session::new(placeholder, transport, peer, self.now));
        let Some(session) = self.sessions.get_mut(id.index) else {
            return;
        };
        session.id = id;
        if let Err(e) = self.poll.registry().register(
            session.io.transport.tcp_mut(),
            client_token(id.index),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            log::warn!("{peer}: cannot watch connection: {e}");
            self.sessions.remove(id.index);
            return;
        }
        self.shared.open.fetch_add(1, Ordering::AcqRel);
        self.shared.metrics.client_connection_opened();
        self.shared.process.connection_opened();
        if drive {
            session.io.readable = true;
            self.drive(id.index, |s, ctx| s.drive(ctx));
        } else {
            self.update_timer(id.index);
        }
    }

    fn client_event(&mut self, index: usize, event: &mio::event::Event) {
        let Some(session) = self.sessions.get_mut(index) else {
            return;
        };
        let io = &mut session.io;
        if event.is_readable() || event.is_read_closed() || event.is_error() {
            io.readable = true;
        }
        if event.is_read_closed() {
            io.read_closed = true;
        }
        if event.is_writable() || event.is_write_closed() || event.is_error() {
            io.writable = true;
        }
        self.drive(index, |s, ctx| s.drive(ctx));
    }

    fn upstream_event(&mut self, index: usize, event: &mio::event::Event) {
        let Some(up) = self.ups.get_mut(index) else {
            return;
        };
        if event.is_readable() || event.is_read_closed() || event.is_error() {
            up.readable = true;
        }
        if event.is_read_closed() {
            up.read_closed = true;
        }
        if event.is_writable() || event.is_write_closed() || event.is_error() {
            up.writable = true;
        }
        match up.owner {
            // Anything from an idle connection (a close, or bytes nobody asked for) ends it.
            None if up.readable => {
                let backend = up.backend.id;
                self.pool.forget(index, backend);
                upstream_conn::close(&mut self.ups, self.poll.registry(), index);
            }
            None => {}
            Some(owner) => {
                if self.sessions.get_by_id(owner).is_some() {
                    self.drive(owner.index, |s, ctx| s.drive(ctx));
                } else {
                    upstream_conn::close(&mut self.ups, self.poll.registry(), index);
                }
            }
        }
    }

    fn read_mailbox(&mut self) {
        while let Ok(msg) = self.inbox.try_recv() {
            match msg {
                Msg::Slot { token, outcome } => {
                    // A wait that ended meanwhile finds nobody: the slot is dropped here and
                    // goes to the next request in the queue.
                    let Some(id) = self.waits.remove(&token) else {
                        continue;
                    };
                    if self.sessions.get_by_id(id).is_none() {
                        continue;
                    }
                    let mut outcome = Some(outcome);
                    self.drive(id.index, move |s, ctx| match outcome.take() {
                        Some(outcome) => s.on_slot(ctx, outcome),
                        None => Status::Open,
                    });
                }
                Msg::CacheReady(id) => {
                    if self.sessions.get_by_id(id).is_some() {
                        self.drive(id.index, |s, ctx| s.on_cache_ready(ctx));
                    }
                }
                Msg::Drain { take_backlog } => self.begin_drain(take_backlog),
            }
        }
    }

    /// Sessions that yielded last turn go on where they stopped (their sockets are still
    /// ready, and edge-triggered events will not say so again).
    fn drive_again(&mut self) {
        for id in std::mem::take(&mut self.again) {
            if self.sessions.get_by_id(id).is_some() {
                self.drive(id.index, |s, ctx| s.drive(ctx));
            }
        }
    }

    fn fire_timers(&mut self) {
        while let Some((at, id)) = self.timers.pop_due(self.now) {
            let Some(session) = self.sessions.get_by_id(id) else {
                continue;
            };
            if !self.timers.expired(id, &mut session.deadline, at, self.now) {
                continue;
            }
            self.drive(id.index, |s, ctx| s.on_timeout(ctx));
        }
    }

    /// Runs `f` on session `index` with the loop's context; closes the session when it
    /// says so or when it panics; then sets its timer.
    fn drive(&mut self, index: usize, f: impl FnOnce(&mut Session, &mut Ctx<'_>) -> Status) {
        let Some(session) = self.sessions.get_mut(index) else {
            return;
        };
        let mut ctx = loop_ctx!(self);
        let result = catch_unwind(AssertUnwindSafe(|| f(session, &mut ctx)));
        if ctx.yielded {
            self.again.push(session.id);
        }
        let status = match result {
            Ok(status) => status,
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                log::error!(
                    "event loop {}: panic while serving {}: {what}; connection closed",
                    self.index,
                    session.io.peer
                );
                self.shared.metrics.panic();
                Status::Closed
            }
        };
        match status {
            Status::Open => self.update_timer(index),
            Status::Closed => self.close_session(index),
        }
    }

    fn update_timer(&mut self, index: usize) {
        let Some(session) = self.sessions.get_mut(index) else {
            return;
        };
        let at = session.next_deadline(&self.shared.config);
        self.timers.set(session.id, &mut session.deadline, at);
    }

    fn close_session(&mut self, index: usize) {
        let Some(mut session) = self.sessions.remove(index) else {
            return;
        };
        let id = session.id;
        let mut ctx = loop_ctx!(self);
        if catch_unwind(AssertUnwindSafe(|| session.close(&mut ctx))).is_err() {
            log::error!(
                "event loop {}: panic while closing a connection",
                self.index
            );
            self.shared.metrics.panic();
            let _ = self
                .poll
                .registry()
                .deregister(session.io.transport.tcp_mut());
        }
        drop(session);
        // Backend connections still owned by it (after a panic) go too.
        for u in self.ups.indices() {
            if self.ups.get(u).is_some_and(|c| c.owner == Some(id)) {
                upstream_conn::close(&mut self.ups, self.poll.registry(), u);
            }
        }
        self.shared.open.fetch_sub(1, Ordering::AcqRel);
        self.shared.metrics.client_connection_closed();
        self.shared.process.connection_closed();
    }

    /// Stops accepting; answers what already waits in the kernel when asked; closes idle
    /// connections. The loop ends when its last session does.
    fn begin_drain(&mut self, take_backlog: bool) {
        if self.draining {
            return;
        }
        let mut taken = Vec::new();
        if take_backlog {
            // Connections the kernel already accepted would be reset when the listener
            // closes: they get their first request answered instead.
            for (listener, _) in &self.listeners {
                loop {
                    match listener.accept() {
                        Ok((stream, peer)) => taken.push((stream, peer)),
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(_) => break,
                    }
                }
            }
        }
        self.draining = true;
        // Our descriptors only: after an upgrade the sockets live on in the new process.
        for (mut listener, _) in self.listeners.drain(..) {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        if !taken.is_empty() {
            log::info!(
                "answering {} connections accepted just before shutdown",
                taken.len()
            );
        }
        for (stream, peer) in taken {
            self.add_session(stream, peer, true);
        }
        for index in self.sessions.indices() {
            if self.sessions.get(index).is_some_and(Session::is_idle) {
                self.close_session(index);
            }
        }
    }

    fn sweep(&mut self) {
        self.pool
            .sweep(&mut self.ups, self.poll.registry(), self.now);
        // Memory back after a burst of connections.
        self.sessions.shrink();
        self.ups.shrink();
        self.timers.shrink();
        self.buffers.sweep(self.now);
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::sync::atomic::{AtomicBool, AtomicUsize};

    use super::*;
    use crate::cli::{self, Parsed};
    use crate::config::Config;
    use crate::metrics::Metrics;
    use crate::stats::ProcessStats;
    use crate::upstream::routes::{self, SharedRoutes};

    /// A loop that is not running, with one backend nobody listens on.
    fn idle_loop() -> EventLoop {
        let raw = match cli::parse_args(["-b", "http://127.0.0.1:9"]) {
            Ok(Parsed::Run(raw)) => raw,
            other => panic!("{other:?}"),
        };
        let config = Config::from_raw(&raw).expect("config");
        let (initial, _) = routes::build(&config.file, &super::super::flag_backends(&config), None);
        let shared = Arc::new(Shared {
            config,
            routes: Arc::new(SharedRoutes::new(initial)),
            metrics: Arc::new(Metrics::new()),
            proto: "http",
            tls: None,
            backend_tls: None,
            cache: None,
            open: AtomicUsize::new(0),
            access_log: None,
            process: Arc::new(ProcessStats::new()),
            shutting_down: AtomicBool::new(false),
        });
        super::super::new_loop(0, Vec::new(), shared)
            .expect("loop")
            .0
    }

    /// Connects a client and hands the accepted side to the loop; returns the client and
    /// the session's index.
    fn connect(
        lp: &mut EventLoop,
        listener: &std::net::TcpListener,
    ) -> (std::net::TcpStream, usize) {
        let client =
            std::net::TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (accepted, peer) = listener.accept().expect("accept");
        accepted.set_nonblocking(true).expect("nonblocking");
        let before = lp.sessions.indices();
        lp.add_session(TcpStream::from_std(accepted), peer, false);
        let index = lp
            .sessions
            .indices()
            .into_iter()
            .find(|i| !before.contains(i))
            .expect("a new session");
        (client, index)
    }

    #[test]
    fn a_panic_serving_one_connection_closes_it_counts_it_and_spares_the_others() {
        let mut lp = idle_loop();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let (mut hit, hit_index) = connect(&mut lp, &listener);
        let (_spared, spared_index) = connect(&mut lp, &listener);

        lp.drive(hit_index, |_, _| panic!("a bug in one exchange"));

        assert!(lp.sessions.get(hit_index).is_none(), "the session is gone");
        assert!(
            lp.sessions.get(spared_index).is_some(),
            "the other one is not"
        );
        assert_eq!(lp.shared.metrics.panics(), 1);
        hit.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut byte = [0u8; 1];
        assert_eq!(
            hit.read(&mut byte).expect("read"),
            0,
            "its client sees the close"
        );

        // The loop goes on serving the other connection.
        lp.drive(spared_index, |_, _| Status::Open);
        assert!(lp.sessions.get(spared_index).is_some());
    }
}
