//! A backend's response on its way to the client: the head parsed and rewritten in place,
//! the body moved through one bounded buffer with backpressure.
//!
//! Upstream bytes are read straight into the client's output buffer, behind what is ready to
//! send. A response head is parsed there and replaced, in place, by the head the client gets
//! (the buffer starts [`HEAD_ROOM`] bytes in, so a longer head fits in front of the body
//! without moving it). A Content-Length body then needs no copy at all: bytes are marked
//! ready as they arrive, and when the buffer is full the relay stops reading the backend
//! until the client has taken some (backpressure; `-write-timeout` bounds the wait).
//!
//! Bodies whose framing changes on the way (chunked from the backend; close-delimited from
//! the backend to an HTTP/1.1 client, which gets chunks) go through a second buffer: the
//! backend's raw bytes land there and are decoded or framed into the output buffer. Chunk
//! size lines are written with a fixed width, so a chunk is framed in place.
//!
//! A response whose head and body fit in the buffer is complete after one read: the
//! exchange then returns the backend connection and slot at once, whatever the client's
//! speed.

use std::io;

use super::super::buffer::{Buf, BufferPool};
use super::super::upstream_conn::UpConn;
use super::io::ClientIo;
use crate::http1::response::LAST_CHUNK;
use crate::http1::response_head::{parse_response_head, ResponseError, ResponseHead};
use crate::http1::{ChunkedDecoder, ChunkedError};

/// Room left in front of a response head read into an empty buffer, for the rewritten head
/// (ours may be longer: `X-Cache`, `Connection`, a chunked framing field).
pub(crate) const HEAD_ROOM: usize = 512;

/// Fixed-width chunk-size line: 8 hex digits and CRLF (RFC 9112 §7.1 allows leading zeros).
const SIZE_LINE: usize = 10;

/// Least room worth reading into; below it the buffer is compacted or the relay waits.
const MIN_ROOM: usize = 1024;

/// What a read from the backend brought.
pub(crate) enum UpRead {
    Data,
    Blocked,
    Eof,
    Failed(io::Error),
}

/// Reads from the backend into `dest`.
pub(crate) fn read_up(up: &mut UpConn, dest: &mut [u8]) -> (UpRead, usize) {
    if !up.readable {
        return (UpRead::Blocked, 0);
    }
    loop {
        return match up.transport.read(dest) {
            Ok(0) => (UpRead::Eof, 0),
            Ok(n) => {
                if n < dest.len() && !up.read_closed && !up.transport.is_tls() {
                    up.readable = false;
                }
                (UpRead::Data, n)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                up.readable = false;
                (UpRead::Blocked, 0)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => (UpRead::Failed(e), 0),
        };
    }
}

/// How reading a response head went.
pub(crate) enum HeadRead {
    Head(ResponseHead),
    /// Nothing more to read now.
    Blocked,
    /// The backend closed (or failed) the connection; `got_bytes`: part of a head arrived.
    Lost {
        got_bytes: bool,
        error: Option<io::Error>,
    },
    /// Not a response head, or one larger than the buffer.
    Invalid(String),
}

/// Reads and parses until a response head is complete. The head is the first unprocessed
/// bytes of the client's output buffer; nothing is consumed.
pub(crate) fn read_head(
    io: &mut ClientIo,
    up: &mut UpConn,
    buffers: &mut BufferPool,
    request_was_head: bool,
) -> HeadRead {
    loop {
        let ready = io.ready;
        let out = io.out(buffers);
        if out.is_empty() {
            out.reset_at(HEAD_ROOM);
        }
        let unprocessed = &out.data()[ready..];
        if !unprocessed.is_empty() {
            match parse_response_head(unprocessed, request_was_head) {
                Ok(Some(head)) => return HeadRead::Head(head),
                Ok(None) => {}
                Err(e) => return HeadRead::Invalid(e.to_string()),
            }
        }
        let got_bytes = !unprocessed.is_empty();
        if out.spare_len() < MIN_ROOM {
            out.compact();
            if out.spare_len() == 0 {
                return HeadRead::Invalid(ResponseError::HeadTooLarge.to_string());
            }
        }
        let (read, n) = read_up(up, out.spare());
        match read {
            UpRead::Data => out.filled(n),
            UpRead::Blocked => return HeadRead::Blocked,
            UpRead::Eof => {
                return HeadRead::Lost {
                    got_bytes,
                    error: None,
                }
            }
            UpRead::Failed(e) => {
                return HeadRead::Lost {
                    got_bytes,
                    error: Some(e),
                }
            }
        }
    }
}

/// Removes the first `len` unprocessed bytes (a `100 Continue` nobody asked for).
pub(crate) fn drop_unprocessed(io: &mut ClientIo, len: usize) {
    let ready = io.ready;
    let Some(out) = io.out.as_mut() else { return };
    let (data, start, end) = out.raw_mut();
    let at = *start + ready;
    data.copy_within(at + len..*end, at);
    *end -= len;
}

/// Drops every unprocessed byte (the rest of a failed response).
pub(crate) fn truncate_unprocessed(io: &mut ClientIo) {
    let ready = io.ready;
    if let Some(out) = io.out.as_mut() {
        let (_, start, end) = out.raw_mut();
        *end = *start + ready;
        if ready == 0 {
            out.clear();
        }
    }
}

/// Replaces the raw head (the first `raw_len` unprocessed bytes) by `new`, which becomes
/// ready to send. False when it cannot fit in the buffer.
pub(crate) fn place_head(io: &mut ClientIo, raw_len: usize, new: &[u8]) -> bool {
    let ready = io.ready;
    let Some(out) = io.out.as_mut() else {
        return false;
    };
    for attempt in 0..2 {
        let (data, start, end) = out.raw_mut();
        let at = *start + ready;
        let body_at = at + raw_len;
        if ready == 0 && new.len() <= body_at {
            // Nothing waits in front: the new head grows into the room before the old one.
            let new_start = body_at - new.len();
            data[new_start..body_at].copy_from_slice(new);
            *start = new_start;
            io.ready = new.len();
            return true;
        }
        let tail = *end - body_at;
        let new_body_at = at + new.len();
        if new_body_at + tail <= data.len() {
            data.copy_within(body_at..*end, new_body_at);
            data[at..new_body_at].copy_from_slice(new);
            *end = new_body_at + tail;
            io.ready = ready + new.len();
            return true;
        }
        if attempt == 0 {
            out.compact();
        }
    }
    false
}

/// How the body is moved, from the backend's framing to the client's.
#[derive(Debug)]
enum Mode {
    /// Bytes pass as they are; `left` is `None` for a body that ends at close (to an
    /// HTTP/1.0 client).
    Pass {
        left: Option<u64>,
    },
    /// Chunked from the backend: decoded, then framed as chunks again (`encode`, an HTTP/1.1
    /// client) or sent as they are until close (an HTTP/1.0 client).
    Dechunk {
        decoder: ChunkedDecoder,
        encode: bool,
    },
    /// Close-delimited from the backend, chunked to an HTTP/1.1 client.
    Enchunk,
    Done,
}

/// Why a body relay stopped early.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// The backend closed before the end of the body, or failed.
    Upstream(String),
    Framing(ChunkedError),
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Upstream(why) => f.write_str(why),
            Self::Framing(e) => write!(f, "{e}"),
        }
    }
}

/// Where a body relay stands after a step.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Bytes moved.
    Progress,
    /// The backend has nothing more now.
    Blocked,
    /// The output buffer is full: the client must take some first.
    Full,
    /// The whole body is in the output buffer.
    Complete,
}

/// The body of one response being relayed.
pub(crate) struct BodyRelay {
    mode: Mode,
    /// The backend's raw bytes when the framing changes on the way.
    raw: Option<Buf>,
    /// Body bytes made ready for the client (before any framing of ours).
    pub sent: u64,
    /// The backend sent bytes past the end of the body: its connection cannot be reused.
    pub overrun: bool,
    /// The body ended at the backend's close: its connection cannot be reused.
    pub ended_by_close: bool,
}

impl BodyRelay {
    /// Sets up the relay for a head just placed; bytes that arrived behind the head are the
    /// first body bytes.
    pub(crate) fn new(
        io: &mut ClientIo,
        buffers: &mut BufferPool,
        upstream: crate::http1::response_head::UpstreamFraming,
        to_client: crate::http1::response::ResponseFraming,
    ) -> BodyRelay {
        use crate::http1::response::ResponseFraming as C;
        use crate::http1::response_head::UpstreamFraming as U;
        let mode = match (upstream, to_client) {
            (_, C::NoBody { .. }) | (U::NoBody, _) | (U::Length(0), _) => Mode::Done,
            (U::Length(n), _) => Mode::Pass { left: Some(n) },
            (U::Chunked, C::Chunked) => Mode::Dechunk {
                decoder: ChunkedDecoder::new(),
                encode: true,
            },
            (U::Chunked, _) => Mode::Dechunk {
                decoder: ChunkedDecoder::new(),
                encode: false,
            },
            (U::UntilClose, C::Chunked) => Mode::Enchunk,
            (U::UntilClose, _) => Mode::Pass { left: None },
        };
        let mut relay = BodyRelay {
            raw: None,
            mode,
            sent: 0,
            overrun: false,
            ended_by_close: false,
        };
        if matches!(relay.mode, Mode::Dechunk { .. } | Mode::Enchunk) {
            // Move what arrived behind the head to the raw buffer.
            let mut raw = buffers.take();
            if let Some(out) = io.out.as_mut() {
                raw.push(&out.data()[io.ready..]);
            }
            truncate_unprocessed(io);
            relay.raw = Some(raw);
        }
        relay
    }

    /// Whether nothing is left to relay.
    pub(crate) fn is_complete(&self) -> bool {
        matches!(self.mode, Mode::Done)
    }

    /// Moves body bytes from the backend into the output buffer until the body is complete,
    /// the backend has nothing more, or the buffer is full. `capture` sees every body byte
    /// (de-framed) on its way, for the cache.
    pub(crate) fn step(
        &mut self,
        io: &mut ClientIo,
        up: &mut UpConn,
        buffers: &mut BufferPool,
        capture: &mut dyn FnMut(&[u8]),
    ) -> Result<Step, BodyError> {
        let mut moved = false;
        loop {
            match &mut self.mode {
                Mode::Done => return Ok(Step::Complete),
                Mode::Pass { left } => {
                    let (out, ready) = io.out_and_ready(buffers);
                    let unprocessed = out.len() - *ready;
                    if unprocessed > 0 {
                        let take = match left {
                            Some(left) => unprocessed.min(clamp(*left)),
                            None => unprocessed,
                        };
                        capture(&out.data()[*ready..*ready + take]);
                        if take < unprocessed {
                            self.overrun = true;
                            let (_, start, end) = out.raw_mut();
                            *end = *start + *ready + take;
                        }
                        *ready += take;
                        self.sent += take as u64;
                        moved = true;
                        if let Some(left) = left {
                            *left -= take as u64;
                            if *left == 0 {
                                self.mode = Mode::Done;
                                continue;
                            }
                        }
                    }
                    if out.spare_len() < MIN_ROOM {
                        out.compact();
                        if out.spare_len() < MIN_ROOM {
                            return Ok(if moved { Step::Progress } else { Step::Full });
                        }
                    }
                    let limit = match left {
                        Some(left) => out.spare_len().min(clamp(*left)),
                        None => out.spare_len(),
                    };
                    let (read, n) = read_up(up, &mut out.spare()[..limit]);
                    match read {
                        UpRead::Data => out.filled(n),
                        UpRead::Blocked => {
                            return Ok(if moved { Step::Progress } else { Step::Blocked })
                        }
                        UpRead::Eof if left.is_none() => {
                            self.ended_by_close = true;
                            self.mode = Mode::Done;
                        }
                        UpRead::Eof => {
                            return Err(BodyError::Upstream(
                                "backend closed the connection before the end of the body".into(),
                            ))
                        }
                        UpRead::Failed(e) => return Err(BodyError::Upstream(e.to_string())),
                    }
                }
                Mode::Dechunk { .. } | Mode::Enchunk => {
                    let Some(raw) = self.raw.as_mut() else {
                        unreachable!("framing changes always have a raw buffer");
                    };
                    if !raw.is_empty() {
                        match transform(&mut self.mode, raw, io, buffers, capture)? {
                            Some(n) => {
                                self.sent += n as u64;
                                moved = true;
                                if let (Mode::Done, false) = (&self.mode, raw.is_empty()) {
                                    self.overrun = true;
                                }
                                continue;
                            }
                            None => return Ok(if moved { Step::Progress } else { Step::Full }),
                        }
                    }
                    if raw.spare_len() < MIN_ROOM {
                        raw.compact();
                    }
                    let (read, n) = read_up(up, raw.spare());
                    match read {
                        UpRead::Data => raw.filled(n),
                        UpRead::Blocked => {
                            return Ok(if moved { Step::Progress } else { Step::Blocked })
                        }
                        UpRead::Eof if matches!(self.mode, Mode::Enchunk) => {
                            if io.queue(buffers, LAST_CHUNK) < LAST_CHUNK.len() {
                                return Ok(Step::Full);
                            }
                            self.ended_by_close = true;
                            self.mode = Mode::Done;
                        }
                        UpRead::Eof => {
                            return Err(BodyError::Upstream(
                                "backend closed the connection before the last chunk".into(),
                            ))
                        }
                        UpRead::Failed(e) => return Err(BodyError::Upstream(e.to_string())),
                    }
                }
            }
        }
    }

    /// Gives the raw buffer back.
    pub(crate) fn release(&mut self, buffers: &mut BufferPool) {
        if let Some(raw) = self.raw.take() {
            buffers.give(raw);
        }
    }
}

/// Decodes or frames raw bytes into the output buffer. `Some(body bytes)` when something
/// moved (possibly zero body bytes: framing only); `None` when the output buffer is full.
fn transform(
    mode: &mut Mode,
    raw: &mut Buf,
    io: &mut ClientIo,
    buffers: &mut BufferPool,
    capture: &mut dyn FnMut(&[u8]),
) -> Result<Option<usize>, BodyError> {
    let ready = io.ready;
    let out = io.out(buffers);
    debug_assert_eq!(out.len(), ready, "nothing unprocessed while framing");
    if out.spare_len() < MIN_ROOM {
        out.compact();
        if out.spare_len() < MIN_ROOM {
            return Ok(None);
        }
    }
    let encode = matches!(mode, Mode::Enchunk | Mode::Dechunk { encode: true, .. });
    // Room for the size line in front, and after the data its CRLF and the last chunk.
    let (front, back) = if encode {
        (SIZE_LINE, 2 + LAST_CHUNK.len())
    } else {
        (0, 0)
    };
    let spare = out.spare();
    let room = spare.len() - front - back;
    let (used, produced) = match mode {
        Mode::Dechunk { decoder, .. } => decoder
            .decode(raw.data(), &mut spare[front..front + room])
            .map_err(BodyError::Framing)?,
        _ => {
            let n = raw.len().min(room);
            spare[front..front + n].copy_from_slice(&raw.data()[..n]);
            (n, n)
        }
    };
    raw.consume(used);
    capture(&spare[front..front + produced]);
    let mut len = 0;
    if produced > 0 {
        if encode {
            // Writing a fixed-width line into a 10-byte slice cannot fail.
            let line = format!("{produced:08x}\r\n");
            spare[..SIZE_LINE].copy_from_slice(line.as_bytes());
            spare[SIZE_LINE + produced..SIZE_LINE + produced + 2].copy_from_slice(b"\r\n");
            len = SIZE_LINE + produced + 2;
        } else {
            len = produced;
        }
    }
    let finished = matches!(mode, Mode::Dechunk { decoder, .. } if decoder.is_done());
    if finished {
        if encode {
            spare[len..len + LAST_CHUNK.len()].copy_from_slice(LAST_CHUNK);
            len += LAST_CHUNK.len();
        }
        *mode = Mode::Done;
    }
    out.filled(len);
    io.ready += len;
    Ok(Some(produced))
}

fn clamp(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}
