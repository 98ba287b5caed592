//! Connections to backends, owned by one event loop: opening them without blocking, and the
//! loop's pool of idle keep-alive connections per backend.
//!
//! ```text
//!   connect (non-blocking) ──writable, no error──► attached to a request ──response done,
//!        │ refused / timeout                          ▲         │ reusable──► idle in the pool
//!        ▼                                            └─────────┼──────────── taken again
//!      closed                 anything else (error, close, data while idle) ──► closed
//! ```
//!
//! A connection keeps its slab index (and so its epoll token) from connect to close, so it is
//! registered once and never re-registered when it moves between a request and the pool.
//! An idle connection stays registered: if the backend closes it (or sends anything) the
//! loop hears of it at once and closes it, instead of finding out with the next request.
//! The pool is per loop, so taking a connection needs no lock; connections idle longer than
//! [`IDLE_TIMEOUT`] are closed by the loop's sweep.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::{Interest, Registry, Token};

use super::slab::{Id, Slab};
use super::transport::Transport;
use crate::fast_hash::FastMap;
use crate::upstream::Backend;

/// How long an idle keep-alive connection to a backend is kept (nginx's upstream
/// `keepalive_timeout` default).
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Token of upstream connection `index` (client connections use the even tokens).
pub(crate) fn token(index: usize) -> Token {
    Token(index * 2 + 1)
}

pub(crate) struct UpConn {
    pub transport: Transport,
    pub backend: Arc<Backend>,
    /// The client connection whose request this connection carries; `None` while idle.
    pub owner: Option<Id>,
    pub readable: bool,
    pub writable: bool,
    /// The backend half-closed (an event said so): a short read is not the end of the data.
    pub read_closed: bool,
    /// The TCP connection is established (a non-blocking connect finished).
    pub connected: bool,
    /// It carried a request before (taken from the pool).
    pub reused: bool,
    /// When it went idle (for [`IDLE_TIMEOUT`]).
    pub idle_since: Instant,
}

/// Why a connection could not be opened.
#[derive(Debug)]
pub(crate) enum ConnectError {
    /// goaround is out of descriptors or local ports: not the backend's fault.
    Local(io::Error),
    /// The backend (or the way to it) refused.
    Refused(String),
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Local(e) => write!(f, "no local resources: {e}"),
            Self::Refused(why) => f.write_str(why),
        }
    }
}

/// Errors that say this host, not the backend, ran out of something.
pub(crate) fn is_local_exhaustion(e: &io::Error) -> bool {
    const EMFILE: i32 = 24;
    const ENFILE: i32 = 23;
    const ENOBUFS: i32 = 105;
    const ENOMEM: i32 = 12;
    e.kind() == io::ErrorKind::AddrNotAvailable
        || matches!(e.raw_os_error(), Some(EMFILE | ENFILE | ENOBUFS | ENOMEM))
}

/// Starts connecting to the next address of `backend`; the connection is registered and
/// belongs to `owner`. Completion (or refusal) arrives as an event.
pub(crate) fn connect(
    backend: &Arc<Backend>,
    owner: Id,
    tls: Option<&Arc<rustls::ClientConfig>>,
    ups: &mut Slab<UpConn>,
    registry: &Registry,
    now: Instant,
) -> Result<usize, ConnectError> {
    let addr: SocketAddr = backend.next_address().ok_or_else(|| {
        ConnectError::Refused(format!("{}: no address known yet", backend.url.host()))
    })?;
    let tcp = mio::net::TcpStream::connect(addr).map_err(|e| classify(e, addr))?;
    // Requests and small bodies are written whole; Nagle would only delay them.
    let _ = tcp.set_nodelay(true);
    let transport = match (backend.url.is_https(), tls) {
        (true, Some(config)) => {
            let name = rustls_pki_types::ServerName::try_from(backend.url.host().to_owned())
                .map_err(|e| ConnectError::Refused(format!("TLS server name: {e}")))?;
            let conn = rustls::ClientConnection::new(Arc::clone(config), name)
                .map_err(|e| ConnectError::Refused(format!("TLS: {e}")))?;
            Transport::tls(tcp, rustls::Connection::Client(conn))
        }
        _ => Transport::plain(tcp),
    };
    let id = ups.insert(UpConn {
        transport,
        backend: Arc::clone(backend),
        owner: Some(owner),
        readable: false,
        writable: false,
        read_closed: false,
        connected: false,
        reused: false,
        idle_since: now,
    });
    let Some(conn) = ups.get_mut(id.index) else {
        unreachable!("just inserted");
    };
    if let Err(e) = registry.register(
        conn.transport.tcp_mut(),
        token(id.index),
        Interest::READABLE | Interest::WRITABLE,
    ) {
        ups.remove(id.index);
        return Err(classify(e, addr));
    }
    Ok(id.index)
}

fn classify(e: io::Error, addr: SocketAddr) -> ConnectError {
    if is_local_exhaustion(&e) {
        ConnectError::Local(e)
    } else {
        ConnectError::Refused(format!("connect {addr}: {e}"))
    }
}

impl UpConn {
    /// After a writable (or error) event on a connection still connecting: `Ok(true)` once
    /// established, `Ok(false)` while still in progress, `Err` when it failed.
    pub(crate) fn finish_connect(&mut self) -> io::Result<bool> {
        if self.connected {
            return Ok(true);
        }
        let tcp = self.transport.tcp();
        if let Some(e) = tcp.take_error()? {
            return Err(e);
        }
        match tcp.peer_addr() {
            Ok(_) => {
                self.connected = true;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// Closes connection `index`: deregistered and dropped.
pub(crate) fn close(ups: &mut Slab<UpConn>, registry: &Registry, index: usize) {
    if let Some(mut conn) = ups.remove(index) {
        let _ = registry.deregister(conn.transport.tcp_mut());
    }
}

/// One loop's idle connections, by backend id; the most recently used first out.
#[derive(Default)]
pub(crate) struct IdlePool {
    by_backend: FastMap<u64, Vec<usize>>,
}

impl IdlePool {
    /// An idle connection to `backend`, if one is left that is still good.
    pub(crate) fn take(&mut self, backend: u64, ups: &mut Slab<UpConn>) -> Option<usize> {
        let idle = self.by_backend.get_mut(&backend)?;
        while let Some(index) = idle.pop() {
            match ups.get_mut(index) {
                // Readable while idle means the backend closed it or sent something: the
                // event handler closes those, so this one is good.
                Some(conn) if conn.owner.is_none() && !conn.readable => return Some(index),
                _ => continue,
            }
        }
        None
    }

    /// Puts connection `index` back, idle from `now`.
    pub(crate) fn put(&mut self, index: usize, ups: &mut Slab<UpConn>, now: Instant) {
        let Some(conn) = ups.get_mut(index) else {
            return;
        };
        conn.owner = None;
        conn.reused = true;
        conn.idle_since = now;
        self.by_backend
            .entry(conn.backend.id)
            .or_default()
            .push(index);
    }

    /// Forgets connection `index` (it is being closed while idle).
    pub(crate) fn forget(&mut self, index: usize, backend: u64) {
        if let Some(idle) = self.by_backend.get_mut(&backend) {
            idle.retain(|&i| i != index);
        }
    }

    /// Closes connections idle for longer than [`IDLE_TIMEOUT`] and those of retired
    /// backends.
    pub(crate) fn sweep(&mut self, ups: &mut Slab<UpConn>, registry: &Registry, now: Instant) {
        for idle in self.by_backend.values_mut() {
            idle.retain(|&index| {
                let keep = ups.get(index).is_some_and(|c| {
                    c.owner.is_none()
                        && !c.backend.is_retired()
                        && now.saturating_duration_since(c.idle_since) < IDLE_TIMEOUT
                });
                if !keep && ups.get(index).is_some_and(|c| c.owner.is_none()) {
                    close(ups, registry, index);
                }
                keep
            });
        }
        self.by_backend.retain(|_, idle| !idle.is_empty());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_exhaustion_is_told_apart() {
        assert!(is_local_exhaustion(&io::Error::from_raw_os_error(24)));
        assert!(is_local_exhaustion(&io::Error::from(
            io::ErrorKind::AddrNotAvailable
        )));
        assert!(!is_local_exhaustion(&io::Error::from(
            io::ErrorKind::ConnectionRefused
        )));
    }

    #[test]
    fn tokens_are_odd() {
        assert_eq!(token(0), Token(1));
        assert_eq!(token(5), Token(11));
    }
}
