//! The client's byte stream: plain TCP, or TLS (rustls) over it.
//!
//! Workers read and write a connection through `&ClientStream`, as they would a `&TcpStream`:
//! the request body is read while the response is written, by the same thread, so the TLS
//! state sits in a `RefCell` (a connection is only ever used by one thread at a time; it is
//! moved, never shared, between the poller and the workers).
//!
//! The socket stays blocking with the worker's short receive timeout, exactly as for plain
//! TCP: a read that would wait longer returns `WouldBlock`/`TimedOut` and rustls keeps the
//! partial record for the next try. The handshake is driven one readable step at a time
//! ([`ClientStream::advance_handshake`]) so a stalled client is parked, not waited for.

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;

use rustls::{ServerConfig, ServerConnection};

pub(crate) struct ClientStream {
    tcp: TcpStream,
    tls: Option<RefCell<ServerConnection>>,
}

/// Where a TLS handshake stands after one step.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Handshake {
    Done,
    /// The client has not sent enough yet: park the connection until it does.
    NeedsInput,
}

impl ClientStream {
    pub(crate) fn plain(tcp: TcpStream) -> ClientStream {
        ClientStream { tcp, tls: None }
    }

    pub(crate) fn tls(tcp: TcpStream, config: Arc<ServerConfig>) -> io::Result<ClientStream> {
        let conn = ServerConnection::new(config).map_err(io::Error::other)?;
        Ok(ClientStream {
            tcp,
            tls: Some(RefCell::new(conn)),
        })
    }

    pub(crate) fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    pub(crate) fn is_handshaking(&self) -> bool {
        self.tls
            .as_ref()
            .is_some_and(|t| t.borrow().is_handshaking())
    }

    /// Decrypted bytes are waiting inside rustls: the socket may show nothing to read, so
    /// the connection must be served now rather than parked on epoll.
    pub(crate) fn has_buffered_input(&self) -> bool {
        let Some(tls) = &self.tls else { return false };
        tls.borrow_mut()
            .process_new_packets()
            .is_ok_and(|state| state.plaintext_bytes_to_read() > 0)
    }

    /// Runs the handshake as far as the bytes already sent allow.
    pub(crate) fn advance_handshake(&self) -> io::Result<Handshake> {
        let Some(tls) = &self.tls else {
            return Ok(Handshake::Done);
        };
        let mut tls = tls.borrow_mut();
        while tls.is_handshaking() {
            if tls.wants_write() {
                tls.write_tls(&mut &self.tcp)?;
                continue;
            }
            match tls.read_tls(&mut &self.tcp) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(_) => process(&mut tls, &self.tcp)?,
                Err(e) if is_timeout(&e) => return Ok(Handshake::NeedsInput),
                Err(e) => return Err(e),
            }
        }
        // Session tickets and the last flight.
        while tls.wants_write() {
            tls.write_tls(&mut &self.tcp)?;
        }
        Ok(Handshake::Done)
    }
}

/// Decrypts what was read; on a protocol error sends the alert rustls prepared, then fails.
fn process(tls: &mut ServerConnection, tcp: &TcpStream) -> io::Result<()> {
    if let Err(e) = tls.process_new_packets() {
        let _ = tls.write_tls(&mut &*tcp);
        return Err(io::Error::new(io::ErrorKind::InvalidData, e));
    }
    Ok(())
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

impl Read for &ClientStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(tls) = &self.tls else {
            return (&self.tcp).read(buf);
        };
        let mut tls = tls.borrow_mut();
        loop {
            match tls.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            if tls.read_tls(&mut &self.tcp)? == 0 {
                // Closed without close_notify: rustls reports it on the next read.
                tls.process_new_packets()
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                return match tls.reader().read(buf) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
                    other => other,
                };
            }
            process(&mut tls, &self.tcp)?;
            while tls.wants_write() {
                tls.write_tls(&mut &self.tcp)?;
            }
        }
    }
}

impl Write for &ClientStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let Some(tls) = &self.tls else {
            return (&self.tcp).write(buf);
        };
        let mut tls = tls.borrow_mut();
        let n = tls.writer().write(buf)?;
        while tls.wants_write() {
            tls.write_tls(&mut &self.tcp)?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        let Some(tls) = &self.tls else { return Ok(()) };
        let mut tls = tls.borrow_mut();
        while tls.wants_write() {
            tls.write_tls(&mut &self.tcp)?;
        }
        Ok(())
    }
}
