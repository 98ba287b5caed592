//! A non-blocking byte stream: plain TCP, or TLS (rustls) over it, client or server side.
//!
//! rustls does no I/O, so the loop drives it: [`Transport::read`] first hands out plaintext
//! rustls already decrypted, then reads records from the socket; [`Transport::write`] gives
//! plaintext to rustls and sends the records it made. Both report `WouldBlock` exactly when
//! the socket would, so the edge-triggered readiness flags of the caller stay right: a read
//! that returns `WouldBlock` has drained both the socket and rustls.
//!
//! TLS records rustls could not send yet stay queued inside it; [`Transport::flush`] sends
//! them when the socket is writable again and [`Transport::has_pending_output`] says whether
//! any remain, so a response is not called delivered while its last record waits. A write
//! is refused (`WouldBlock`) while records are queued, which bounds what rustls buffers.

use std::io::{self, IoSlice, Read, Write};

use mio::net::TcpStream;

pub(crate) struct Transport {
    tcp: TcpStream,
    tls: Option<Box<rustls::Connection>>,
}

/// Where a TLS handshake stands after one step.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Handshake {
    Done,
    /// Waiting for the peer's next flight, or for the socket to take ours.
    Pending,
}

impl Transport {
    pub(crate) fn plain(tcp: TcpStream) -> Transport {
        Transport { tcp, tls: None }
    }

    pub(crate) fn tls(tcp: TcpStream, conn: rustls::Connection) -> Transport {
        Transport {
            tcp,
            tls: Some(Box::new(conn)),
        }
    }

    pub(crate) fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    pub(crate) fn tcp_mut(&mut self) -> &mut TcpStream {
        &mut self.tcp
    }

    pub(crate) fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    pub(crate) fn is_handshaking(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| t.is_handshaking())
    }

    /// TLS records are queued that the socket has not taken yet.
    pub(crate) fn has_pending_output(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| t.wants_write())
    }

    /// Runs the handshake as far as the bytes at hand allow.
    pub(crate) fn advance_handshake(&mut self) -> io::Result<Handshake> {
        let Some(tls) = self.tls.as_deref_mut() else {
            return Ok(Handshake::Done);
        };
        loop {
            if tls.wants_write() && !flush_tls(tls, &mut self.tcp)? {
                return Ok(Handshake::Pending);
            }
            if !tls.is_handshaking() {
                return Ok(Handshake::Done);
            }
            match tls.read_tls(&mut self.tcp) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(_) => process(tls, &mut self.tcp)?,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Handshake::Pending),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads plaintext: `Ok(0)` at the end of the stream, `WouldBlock` when nothing more is
    /// available now.
    pub(crate) fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(tls) = self.tls.as_deref_mut() else {
            return self.tcp.read(buf);
        };
        loop {
            match tls.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // The peer closed without close_notify: for HTTP/1, framing already tells
                // whether the message was complete, so this is an ordinary end of stream.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(e),
            }
            match tls.read_tls(&mut self.tcp) {
                Ok(0) => {
                    process(tls, &mut self.tcp)?;
                    return match tls.reader().read(buf) {
                        Ok(n) => Ok(n),
                        Err(e)
                            if matches!(
                                e.kind(),
                                io::ErrorKind::WouldBlock | io::ErrorKind::UnexpectedEof
                            ) =>
                        {
                            Ok(0)
                        }
                        Err(e) => Err(e),
                    };
                }
                Ok(_) => {
                    process(tls, &mut self.tcp)?;
                    // Handshake messages, key updates, tickets, or plaintext written before
                    // the handshake ended: best effort, the rest goes on the next write.
                    if tls.wants_write() {
                        flush_tls(tls, &mut self.tcp)?;
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Writes plaintext; `WouldBlock` when the socket (or records queued before) is full.
    pub(crate) fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let Some(tls) = self.tls.as_deref_mut() else {
            return self.tcp.write(buf);
        };
        if tls.wants_write() && !flush_tls(tls, &mut self.tcp)? {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = tls.writer().write(buf)?;
        flush_tls(tls, &mut self.tcp)?;
        Ok(n)
    }

    /// Writes several slices with one system call where the socket allows it.
    pub(crate) fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let Some(tls) = self.tls.as_deref_mut() else {
            return self.tcp.write_vectored(bufs);
        };
        if tls.wants_write() && !flush_tls(tls, &mut self.tcp)? {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = tls.writer().write_vectored(bufs)?;
        flush_tls(tls, &mut self.tcp)?;
        Ok(n)
    }

    /// Sends queued TLS records; `Ok(true)` when none are left.
    pub(crate) fn flush(&mut self) -> io::Result<bool> {
        match self.tls.as_deref_mut() {
            Some(tls) => flush_tls(tls, &mut self.tcp),
            None => Ok(true),
        }
    }

    /// Starts a clean TLS close (`close_notify`); plain TCP has nothing to say.
    pub(crate) fn send_close_notify(&mut self) {
        if let Some(tls) = self.tls.as_deref_mut() {
            tls.send_close_notify();
            let _ = flush_tls(tls, &mut self.tcp);
        }
    }
}

/// Sends queued records until none are left (`true`) or the socket is full (`false`).
fn flush_tls(tls: &mut rustls::Connection, tcp: &mut TcpStream) -> io::Result<bool> {
    while tls.wants_write() {
        match tls.write_tls(tcp) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Decrypts what was read; on a protocol error sends the alert rustls prepared, then fails.
fn process(tls: &mut rustls::Connection, tcp: &mut TcpStream) -> io::Result<()> {
    if let Err(e) = tls.process_new_packets() {
        let _ = flush_tls(tls, tcp);
        return Err(io::Error::new(io::ErrorKind::InvalidData, e));
    }
    Ok(())
}
