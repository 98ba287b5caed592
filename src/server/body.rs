//! Reading a request body from the client, de-framed, as an `io::Read` for ureq.
//!
//! The body starts in the worker's input buffer (bytes that arrived with the head) and
//! continues on the socket. A Content-Length body is read straight into the caller's buffer
//! and never past its end; a chunked body is read through the input buffer and decoded, and
//! whatever follows its last chunk stays there as the next pipelined request.
//!
//! Failures are remembered, because ureq reports a failing body as an upstream error: the
//! worker asks [`ClientBody::failure`] to know that the client, not the backend, was at fault.

use std::io::{self, Read};
use std::time::{Duration, Instant};

use super::stream::ClientStream;
use crate::http1::{BodyFraming, ChunkedDecoder, ChunkedError};

/// The slowest a request body may arrive on average, after a first `-body-timeout` of grace
/// (Apache's `mod_reqtimeout` `MinRate`): each 500 bytes received buy one more second. A
/// client trickling a body a byte at a time holds its worker for about `-body-timeout`, not
/// for as long as it likes.
pub(crate) const MIN_BODY_RATE: u64 = 500;

/// Bytes read from the socket per read while decoding a chunked body.
const CHUNKED_READ: usize = 16 * 1024;

/// Why the client's body could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyFailure {
    /// The client stopped sending for longer than the body timeout (408).
    Timeout,
    /// The client closed or reset the connection mid-body.
    Closed,
    /// Bad chunked framing (400).
    Framing(ChunkedError),
    /// More than `-max-body` bytes (413).
    TooLarge,
}

enum Kind {
    Length { remaining: u64 },
    Chunked(ChunkedDecoder),
    Empty,
}

pub(crate) struct ClientBody<'a> {
    stream: &'a ClientStream,
    /// The worker's input buffer: unconsumed bytes start at `pos`.
    buf: &'a mut Vec<u8>,
    pos: usize,
    kind: Kind,
    failure: Option<BodyFailure>,
    delivered: u64,
    /// Longest wait for the next bytes (`-body-timeout`).
    timeout: Duration,
    /// When reading the body began (for [`MIN_BODY_RATE`]).
    started: Instant,
    /// `-max-body`: more de-chunked bytes than this fail the body.
    limit: Option<u64>,
}

impl<'a> ClientBody<'a> {
    pub(crate) fn new(
        stream: &'a ClientStream,
        buf: &'a mut Vec<u8>,
        framing: BodyFraming,
        timeout: Duration,
        limit: Option<u64>,
    ) -> Self {
        let kind = match framing {
            BodyFraming::None => Kind::Empty,
            BodyFraming::Length(n) => Kind::Length { remaining: n },
            BodyFraming::Chunked => Kind::Chunked(ChunkedDecoder::new()),
        };
        ClientBody {
            stream,
            buf,
            pos: 0,
            kind,
            failure: None,
            delivered: 0,
            timeout,
            started: Instant::now(),
            limit,
        }
    }

    pub(crate) fn failure(&self) -> Option<BodyFailure> {
        self.failure
    }

    /// The latest moment the next read may end: `-body-timeout` from now, but never past
    /// the start plus `-body-timeout` plus one second per [`MIN_BODY_RATE`] bytes received.
    fn read_deadline(&self) -> Instant {
        let allowance = Duration::from_secs_f64(self.delivered as f64 / MIN_BODY_RATE as f64);
        (Instant::now() + self.timeout).min(self.started + self.timeout + allowance)
    }

    /// The whole body has been read.
    pub(crate) fn is_complete(&self) -> bool {
        match &self.kind {
            Kind::Empty => true,
            Kind::Length { remaining } => *remaining == 0,
            Kind::Chunked(d) => d.is_done(),
        }
    }

    /// Reads into `out` until the body ends or `out` holds `limit` bytes; returns whether
    /// the whole body has been read.
    pub(crate) fn read_up_to(&mut self, out: &mut Vec<u8>, limit: usize) -> io::Result<bool> {
        let mut chunk = [0u8; 8192];
        while !self.is_complete() && out.len() < limit {
            let want = (limit - out.len()).min(chunk.len());
            let n = self.read(&mut chunk[..want])?;
            if n == 0 {
                break;
            }
            out.extend_from_slice(&chunk[..n]);
        }
        Ok(self.is_complete())
    }

    /// Drops the consumed bytes from the input buffer; what remains is the next request.
    pub(crate) fn finish(self) {
        self.buf.drain(..self.pos);
    }

    fn fail(&mut self, failure: BodyFailure, e: io::Error) -> io::Error {
        self.failure = Some(failure);
        e
    }

    fn read_length(&mut self, out: &mut [u8], remaining: u64) -> io::Result<usize> {
        let want = out
            .len()
            .min(usize::try_from(remaining).unwrap_or(usize::MAX));
        let buffered = self.buf.len() - self.pos;
        let n = if buffered > 0 {
            let n = want.min(buffered);
            out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
            self.pos += n;
            n
        } else {
            self.read_socket(&mut out[..want])?
        };
        self.kind = Kind::Length {
            remaining: remaining - n as u64,
        };
        Ok(n)
    }

    fn read_chunked(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            let Kind::Chunked(decoder) = &mut self.kind else {
                return Ok(0);
            };
            if decoder.is_done() {
                return Ok(0);
            }
            if self.pos < self.buf.len() {
                match decoder.decode(&self.buf[self.pos..], out) {
                    Ok((consumed, produced)) => {
                        self.pos += consumed;
                        if produced > 0 || decoder.is_done() {
                            return Ok(produced);
                        }
                    }
                    Err(e) => {
                        let err = io::Error::new(io::ErrorKind::InvalidData, e);
                        return Err(self.fail(BodyFailure::Framing(e), err));
                    }
                }
                continue;
            }
            self.buf.clear();
            self.pos = 0;
            self.buf.resize(CHUNKED_READ, 0);
            let deadline = self.read_deadline();
            let result = read_into(self.stream, &mut self.buf[..], deadline);
            let n = match result {
                Ok(n) => n,
                Err(e) => {
                    self.buf.clear();
                    return Err(self.socket_error(e));
                }
            };
            self.buf.truncate(n);
        }
    }

    fn read_socket(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let deadline = self.read_deadline();
        read_into(self.stream, out, deadline).map_err(|e| self.socket_error(e))
    }

    fn socket_error(&mut self, e: io::Error) -> io::Error {
        let failure = match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => BodyFailure::Timeout,
            _ => BodyFailure::Closed,
        };
        self.fail(failure, e)
    }
}

/// One read, waiting until `deadline` for bytes (the socket's own receive timeout is the
/// worker's short linger, so this loops over it); end of stream before the body is complete
/// is an error.
fn read_into(mut stream: &ClientStream, out: &mut [u8], deadline: Instant) -> io::Result<usize> {
    if out.is_empty() {
        return Ok(0);
    }
    loop {
        match stream.read(out) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "client closed mid-body",
                ))
            }
            Ok(n) => return Ok(n),
            Err(e) if super::worker::is_timeout(&e) && Instant::now() < deadline => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

impl Read for ClientBody<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        let n = match self.kind {
            Kind::Empty => 0,
            Kind::Length { remaining: 0 } => 0,
            Kind::Length { remaining } => self.read_length(out, remaining)?,
            Kind::Chunked(_) => self.read_chunked(out)?,
        };
        self.delivered += n as u64;
        if self.limit.is_some_and(|limit| self.delivered > limit) {
            let e = io::Error::new(
                io::ErrorKind::InvalidData,
                "request body larger than -max-body",
            );
            return Err(self.fail(BodyFailure::TooLarge, e));
        }
        Ok(n)
    }
}
