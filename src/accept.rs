//! Accepting connections on a listener a plain thread owns (metrics, control socket), until
//! the process tells it to stop.
//!
//! A thread blocked in `accept()` cannot be told to stop without shutting the socket down,
//! and after a binary upgrade the same socket is the new process's too: shutting it down
//! would stop both, and a thread left blocked would keep taking connections meant for the
//! new process. So the listener is non-blocking (its flags are shared with the new process,
//! which keeps it so as well) and the thread waits for it with a poll that wakes at least
//! every [`STOP_CHECK`] to look at the stop flag.

use std::io;
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

/// Longest a stopped acceptor goes on waiting.
const STOP_CHECK: Duration = Duration::from_millis(100);

/// A listener that hands out connections.
pub(crate) trait Listen: AsRawFd {
    type Stream;
    fn accept_one(&self) -> io::Result<Self::Stream>;
    fn nonblocking(&self) -> io::Result<()>;
}

impl Listen for TcpListener {
    type Stream = TcpStream;
    fn accept_one(&self) -> io::Result<TcpStream> {
        // Accepted sockets do not inherit the listener's non-blocking flag on Linux.
        self.accept().map(|(stream, _)| stream)
    }
    fn nonblocking(&self) -> io::Result<()> {
        self.set_nonblocking(true)
    }
}

impl Listen for UnixListener {
    type Stream = UnixStream;
    fn accept_one(&self) -> io::Result<UnixStream> {
        self.accept().map(|(stream, _)| stream)
    }
    fn nonblocking(&self) -> io::Result<()> {
        self.set_nonblocking(true)
    }
}

pub(crate) struct Acceptor<L: Listen> {
    listener: L,
    poll: Poll,
    events: Events,
    stop: Arc<AtomicBool>,
}

impl<L: Listen> Acceptor<L> {
    pub(crate) fn new(listener: L, stop: Arc<AtomicBool>) -> io::Result<Acceptor<L>> {
        listener.nonblocking()?;
        let poll = Poll::new()?;
        poll.registry().register(
            &mut SourceFd(&listener.as_raw_fd()),
            Token(0),
            Interest::READABLE,
        )?;
        Ok(Acceptor {
            listener,
            poll,
            events: Events::with_capacity(4),
            stop,
        })
    }

    /// The next connection; `None` once told to stop (the listener's descriptor is closed
    /// when the acceptor is dropped).
    pub(crate) fn next(&mut self) -> Option<io::Result<L::Stream>> {
        loop {
            if self.stop.load(Ordering::Acquire) {
                return None;
            }
            match self.listener.accept_one() {
                Ok(stream) => return Some(Ok(stream)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Some(Err(e)),
            }
            if let Err(e) = self.poll.poll(&mut self.events, Some(STOP_CHECK)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    return Some(Err(e));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hands_out_connections_then_stops() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let mut acceptor = Acceptor::new(listener, Arc::clone(&stop)).unwrap();
        let _client = TcpStream::connect(addr).unwrap();
        assert!(acceptor.next().unwrap().is_ok());
        stop.store(true, Ordering::Release);
        let started = std::time::Instant::now();
        assert!(acceptor.next().is_none());
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}
