//! The client side of a session: its socket (TCP or TLS), readiness flags, the bytes read
//! and not yet used, and the bytes waiting to go out.
//!
//! Readiness is edge-triggered: `readable`/`writable` are set by events and cleared when the
//! socket says `WouldBlock` (or, on plain TCP, when a read or write moved fewer bytes than
//! asked, which means the socket was drained or filled: a new edge will come). Buffers are
//! taken from the loop's pool when needed and given back when the connection goes idle.
//!
//! The output buffer has two parts: its first `ready` bytes are ready for the client; the
//! rest is what an upstream read brought and the relay has not processed yet (a response
//! head about to be rewritten, a chunked body about to be decoded). Only the first part is
//! ever sent.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use super::super::buffer::{Buf, BufferPool};
use super::super::transport::Transport;

/// What a read from the client brought.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Read {
    Data(usize),
    /// Nothing now; an event will say when.
    Blocked,
    /// The client closed its side.
    Eof,
    /// The input buffer is full; the caller must use what is in it first.
    Full,
}

/// Whether all output reached the socket.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Flush {
    Done,
    Blocked,
}

pub(crate) struct ClientIo {
    pub transport: Transport,
    pub peer: SocketAddr,
    /// The peer's address as forwarded (`X-Forwarded-For`, `X-Real-IP`).
    pub peer_ip: Box<str>,
    pub readable: bool,
    pub writable: bool,
    /// The peer half-closed (an event said so): a short read is not the end of the data.
    pub read_closed: bool,
    pub input: Option<Buf>,
    pub out: Option<Buf>,
    /// How many bytes at the front of `out` are ready to send.
    pub ready: usize,
    /// A stored body sent after `out` (a cache hit): the bytes and how many went out.
    pub tail: Option<(Arc<[u8]>, usize)>,
    /// When bytes last left for the client (for `-write-timeout`).
    pub out_progress: Instant,
}

impl ClientIo {
    pub(crate) fn new(transport: Transport, peer: SocketAddr, now: Instant) -> ClientIo {
        ClientIo {
            transport,
            peer,
            peer_ip: crate::http1::forward::client_ip_text(peer.ip()).into_boxed_str(),
            readable: false,
            writable: false,
            read_closed: false,
            input: None,
            out: None,
            ready: 0,
            tail: None,
            out_progress: now,
        }
    }

    fn is_tls(&self) -> bool {
        self.transport.is_tls()
    }

    /// Bytes read and not used yet.
    pub(crate) fn input_len(&self) -> usize {
        self.input.as_ref().map_or(0, Buf::len)
    }

    /// Reads what the client sent into the input buffer.
    pub(crate) fn read_input(&mut self, buffers: &mut BufferPool) -> io::Result<Read> {
        if !self.readable {
            return Ok(Read::Blocked);
        }
        let input = self.input.get_or_insert_with(|| buffers.take());
        if input.spare_len() == 0 {
            input.compact();
            if input.spare_len() == 0 {
                return Ok(Read::Full);
            }
        }
        let space = input.spare_len();
        loop {
            return match self.transport.read(input.spare()) {
                Ok(0) => Ok(Read::Eof),
                Ok(n) => {
                    input.filled(n);
                    if n < space && !self.read_closed && !self.transport.is_tls() {
                        self.readable = false;
                    }
                    Ok(Read::Data(n))
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.readable = false;
                    Ok(Read::Blocked)
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => Err(e),
            };
        }
    }

    /// The output buffer, taken from the pool when there is none.
    pub(crate) fn out(&mut self, buffers: &mut BufferPool) -> &mut Buf {
        self.out.get_or_insert_with(|| buffers.take())
    }

    /// The output buffer and its ready count, borrowed together.
    pub(crate) fn out_and_ready(&mut self, buffers: &mut BufferPool) -> (&mut Buf, &mut usize) {
        (
            self.out.get_or_insert_with(|| buffers.take()),
            &mut self.ready,
        )
    }

    /// Queues bytes for the client behind what is ready (nothing unprocessed may be in the
    /// buffer). Returns how many fit: all of them for heads and small bodies.
    pub(crate) fn queue(&mut self, buffers: &mut BufferPool, bytes: &[u8]) -> usize {
        let out = self.out.get_or_insert_with(|| buffers.take());
        debug_assert_eq!(out.len(), self.ready, "queueing behind unprocessed bytes");
        let n = out.push(bytes);
        self.ready = out.len();
        n
    }

    /// Anything left to send, or still inside TLS.
    pub(crate) fn out_pending(&self) -> bool {
        self.ready_len() > 0 || self.tail.is_some() || self.transport.has_pending_output()
    }

    /// Bytes of `out` ready to send.
    pub(crate) fn ready_len(&self) -> usize {
        self.ready
    }

    /// Sends what is ready, then the tail, then TLS records still queued.
    pub(crate) fn flush(&mut self, now: Instant) -> io::Result<Flush> {
        loop {
            let ready = self.ready_len();
            if ready > 0 {
                if !self.writable {
                    return Ok(Flush::Blocked);
                }
                let Some(out) = self.out.as_mut() else {
                    unreachable!("ready bytes live in out");
                };
                let sent = match self.transport.write(&out.data()[..ready]) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        self.writable = false;
                        return Ok(Flush::Blocked);
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                };
                out.consume(sent);
                self.ready -= sent;
                self.out_progress = now;
                if sent < ready && !self.is_tls() {
                    self.writable = false;
                    return Ok(Flush::Blocked);
                }
                continue;
            }
            if let Some((body, pos)) = self.tail.as_mut() {
                if !self.writable {
                    return Ok(Flush::Blocked);
                }
                let left = body.len() - *pos;
                let sent = match self.transport.write(&body[*pos..]) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        self.writable = false;
                        return Ok(Flush::Blocked);
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                };
                *pos += sent;
                self.out_progress = now;
                if *pos == body.len() {
                    self.tail = None;
                } else if sent < left && !self.is_tls() {
                    self.writable = false;
                    return Ok(Flush::Blocked);
                }
                continue;
            }
            if self.transport.has_pending_output() {
                if !self.writable {
                    return Ok(Flush::Blocked);
                }
                if !self.transport.flush()? {
                    self.writable = false;
                    return Ok(Flush::Blocked);
                }
                self.out_progress = now;
            }
            return Ok(Flush::Done);
        }
    }

    /// Gives buffers with nothing in them back to the pool (the connection goes idle).
    pub(crate) fn release_buffers(&mut self, buffers: &mut BufferPool) {
        if self.input.as_ref().is_some_and(Buf::is_empty) {
            if let Some(buf) = self.input.take() {
                buffers.give(buf);
            }
        }
        if self.out.as_ref().is_some_and(Buf::is_empty) {
            if let Some(buf) = self.out.take() {
                buffers.give(buf);
            }
            self.ready = 0;
        }
    }

    /// Gives every buffer back (the connection is closing).
    pub(crate) fn return_all(&mut self, buffers: &mut BufferPool) {
        if let Some(buf) = self.input.take() {
            buffers.give(buf);
        }
        if let Some(buf) = self.out.take() {
            buffers.give(buf);
        }
        self.tail = None;
    }
}
