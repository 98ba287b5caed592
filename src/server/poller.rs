//! The acceptor and idle poller: one thread that owns every connection no worker is serving.
//!
//! ```text
//!  listener ──accept──► parked ──readable──► ready queue ──► worker
//!                         ▲                                   │
//!                         └────────── Parker::park ◄──────────┘ (nothing left to serve)
//!  parked too long: idle → closed; partial head past the header timeout → 408, closed
//! ```
//!
//! New connections are parked too, so a client that connects and sends nothing never holds a
//! worker (Apache's event MPM). Readiness comes from epoll through mio (edge-triggered) on
//! blocking std sockets: a connection is registered while parked and deregistered when handed
//! to a worker. Registering a socket that already has data reports it at once, so no wake-up
//! is lost between a worker parking a connection and the poller registering it.
//!
//! At `-max-conns` open connections the listener is deregistered: new clients wait in the
//! kernel's backlog until a connection closes.

use std::io::{self, ErrorKind, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};

use super::conn::{Conn, OpenCount};
use super::stream::ClientStream;
use super::Shared;
use crate::http1::error_page::{self, Format};
use crate::http1::RequestError;
use crate::metrics::NO_BACKEND;

const LISTENER: Token = Token(usize::MAX - 1);
const WAKER: Token = Token(usize::MAX - 2);

/// How often parked connections are checked for expired timeouts (and how long a paused
/// acceptor waits before looking at the open count again).
const SWEEP_EVERY: Duration = Duration::from_millis(250);

/// Gives connections back to the poller; cloned into every worker.
#[derive(Clone)]
pub(crate) struct Parker {
    tx: Sender<Conn>,
    waker: Arc<Waker>,
}

impl Parker {
    pub(crate) fn park(&self, conn: Conn) {
        if self.tx.send(conn).is_ok() {
            if let Err(e) = self.waker.wake() {
                log::error!("poller: wake: {e}");
            }
        }
    }
}

struct Parked {
    conn: Conn,
    deadline: Instant,
}

pub(crate) struct Poller {
    poll: Poll,
    listener: Option<TcpListener>,
    accepting: bool,
    slots: Vec<Option<Parked>>,
    free: Vec<usize>,
    parked_rx: Receiver<Conn>,
    ready_tx: Sender<Conn>,
    open: Arc<OpenCount>,
    shared: Arc<Shared>,
}

impl Poller {
    /// Sets up the poller around `listener`; returns it with the handle workers park through.
    pub(crate) fn new(
        listener: TcpListener,
        ready_tx: Sender<Conn>,
        shared: Arc<Shared>,
    ) -> io::Result<(Poller, Parker)> {
        listener.set_nonblocking(true)?;
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        poll.registry().register(
            &mut SourceFd(&listener.as_raw_fd()),
            LISTENER,
            Interest::READABLE,
        )?;
        let (tx, parked_rx) = crossbeam_channel::unbounded();
        let open = OpenCount::new(Arc::clone(&shared.metrics));
        let poller = Poller {
            poll,
            listener: Some(listener),
            accepting: true,
            slots: Vec::new(),
            free: Vec::new(),
            parked_rx,
            ready_tx,
            open,
            shared,
        };
        Ok((poller, Parker { tx, waker }))
    }

    /// Runs until shutdown; then answers what is already queued in the kernel, closes the
    /// listener and every idle parked connection, and drops the ready queue's sender so that
    /// workers exit once their queue is empty.
    pub(crate) fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        let mut next_sweep = Instant::now() + SWEEP_EVERY;
        loop {
            let timeout = next_sweep.saturating_duration_since(Instant::now());
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != ErrorKind::Interrupted {
                    log::error!("poller: {e}");
                }
                continue;
            }
            let stopping = self.shared.is_shutting_down();
            for event in events.iter() {
                match event.token() {
                    LISTENER if !stopping => self.accept(),
                    LISTENER | WAKER => {}
                    // A request that arrived before the drain began is still answered.
                    Token(slot) => self.hand_over(slot),
                }
            }
            self.take_parked();
            if stopping {
                break;
            }
            let now = Instant::now();
            if now >= next_sweep {
                self.sweep(now);
                self.pace_accepting();
                next_sweep = now + SWEEP_EVERY;
            }
        }
        // Connections parked in the last round may already hold their next request.
        if self.poll.poll(&mut events, Some(Duration::ZERO)).is_ok() {
            for event in events.iter() {
                let Token(slot) = event.token();
                if event.token() != LISTENER && event.token() != WAKER {
                    self.hand_over(slot);
                }
            }
        }
        self.take_accept_queue();
        self.listener = None;
        self.slots.clear();
        // Connections parked from now on are closed as they arrive: the channel is dropped
        // with `self`.
    }

    fn accept(&mut self) {
        loop {
            if self.open.get() >= self.shared.config.max_client_conns {
                self.pause_accepting();
                return;
            }
            let Some(listener) = &self.listener else {
                return;
            };
            match listener.accept() {
                Ok((stream, peer)) => {
                    if let Err(e) = self.shared.prepare_client_socket(&stream) {
                        log::debug!("{peer}: socket setup: {e}");
                        continue;
                    }
                    let conn = match self.client_stream(stream) {
                        Ok((stream, deadline)) => Conn::new(stream, peer, deadline, &self.open),
                        Err(e) => {
                            log::warn!("{peer}: cannot start TLS: {e}");
                            continue;
                        }
                    };
                    self.park(conn);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    // EMFILE and friends: stop for a moment instead of spinning on the error.
                    log::warn!("accept: {e}");
                    self.pause_accepting();
                    return;
                }
            }
        }
    }

    /// Wraps an accepted socket: TLS when configured, with the handshake deadline running
    /// from now (the handshake runs on a worker, one readable step at a time).
    fn client_stream(&self, tcp: TcpStream) -> io::Result<(ClientStream, Option<Instant>)> {
        match &self.shared.tls {
            None => Ok((ClientStream::plain(tcp), None)),
            Some(tls) => {
                let deadline = Instant::now() + self.shared.config.handshake_timeout;
                Ok((ClientStream::tls(tcp, tls.current())?, Some(deadline)))
            }
        }
    }

    /// At shutdown: connections the kernel already accepted would be reset when the listener
    /// closes. They get their first request answered instead (with `Connection: close`, as
    /// every response during the drain); one that has sent nothing yet is closed.
    fn take_accept_queue(&mut self) {
        let Some(listener) = &self.listener else {
            return;
        };
        let mut taken = 0;
        while let Ok((stream, peer)) = listener.accept() {
            if self.shared.prepare_client_socket(&stream).is_err() {
                continue;
            }
            let Ok((stream, deadline)) = self.client_stream(stream) else {
                continue;
            };
            let _ = self
                .ready_tx
                .send(Conn::new(stream, peer, deadline, &self.open));
            taken += 1;
        }
        if taken > 0 {
            log::info!("answering {taken} connections accepted just before shutdown");
        }
    }

    fn pause_accepting(&mut self) {
        if let (true, Some(listener)) = (self.accepting, &self.listener) {
            let _ = self
                .poll
                .registry()
                .deregister(&mut SourceFd(&listener.as_raw_fd()));
            self.accepting = false;
            log::warn!(
                "not accepting: {} client connections open (-max-conns {})",
                self.open.get(),
                self.shared.config.max_client_conns
            );
        }
    }

    fn pace_accepting(&mut self) {
        if self.accepting || self.open.get() >= self.shared.config.max_client_conns {
            return;
        }
        if let Some(listener) = &self.listener {
            let fd = listener.as_raw_fd();
            if self
                .poll
                .registry()
                .register(&mut SourceFd(&fd), LISTENER, Interest::READABLE)
                .is_ok()
            {
                self.accepting = true;
                log::info!("accepting again");
            }
        }
    }

    fn take_parked(&mut self) {
        while let Ok(conn) = self.parked_rx.try_recv() {
            self.park(conn);
        }
    }

    fn park(&mut self, conn: Conn) {
        let config = &self.shared.config;
        let deadline = conn
            .deadline
            .unwrap_or_else(|| Instant::now() + config.idle_timeout);
        let slot = self.free.pop().unwrap_or_else(|| {
            self.slots.push(None);
            self.slots.len() - 1
        });
        let fd = conn.stream.tcp().as_raw_fd();
        match self
            .poll
            .registry()
            .register(&mut SourceFd(&fd), Token(slot), Interest::READABLE)
        {
            Ok(()) => self.slots[slot] = Some(Parked { conn, deadline }),
            Err(e) => {
                log::warn!("{}: cannot watch connection: {e}", conn.peer);
                self.free.push(slot);
            }
        }
    }

    fn unpark(&mut self, slot: usize) -> Option<Conn> {
        let parked = self.slots.get_mut(slot)?.take()?;
        self.free.push(slot);
        let fd = parked.conn.stream.tcp().as_raw_fd();
        let _ = self.poll.registry().deregister(&mut SourceFd(&fd));
        Some(parked.conn)
    }

    fn hand_over(&mut self, slot: usize) {
        if let Some(conn) = self.unpark(slot) {
            // Cannot fail while workers run: they hold the receiver until the channel closes.
            let _ = self.ready_tx.send(conn);
        }
    }

    fn sweep(&mut self, now: Instant) {
        let expired: Vec<usize> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.as_ref().filter(|p| p.deadline <= now).map(|_| i))
            .collect();
        for slot in expired {
            let Some(conn) = self.unpark(slot) else {
                continue;
            };
            if conn.stream.is_handshaking() {
                log::debug!("{}: TLS handshake not completed in time", conn.peer);
            } else if conn.deadline.is_some() {
                let e = RequestError::HeadTimeout;
                log::debug!("{}: {e}", conn.peer);
                let page =
                    error_page::render(e.status(), &e.to_string(), Format::Text, false, false);
                let _ = (&conn.stream).write_all(&page);
                self.shared.metrics.request(NO_BACKEND, e.status(), 0.0);
            }
        }
        // Give memory back after a burst of connections.
        if self.free.len() > 1024 && self.free.len() * 2 > self.slots.len() {
            while matches!(self.slots.last(), Some(None)) {
                self.slots.pop();
            }
            let len = self.slots.len();
            self.free.retain(|&s| s < len);
        }
    }
}
