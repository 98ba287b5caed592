//! A request body on its way from the client to a backend, read without blocking.
//!
//! The body starts in the input buffer (bytes that arrived with the head) and continues on
//! the socket. [`ClientBody::pump`] moves what is available into the caller's buffer,
//! de-framed and framed again for the backend: a Content-Length body is copied as it is; a
//! chunked body is decoded (strictly, see `http1::chunked`) and written out as chunks again,
//! so its trailers and extensions never reach the backend and its framing is ours. Whatever
//! follows the body in the input buffer stays there: it is the next pipelined request.
//!
//! Limits: `-max-body` (de-framed bytes; 413), `-body-timeout` between reads and the minimum
//! rate of [`MIN_BODY_RATE`] after a first `-body-timeout` of grace (Apache's `MinRate`),
//! both as deadlines that the exchange asks [`ClientBody::deadline`] about.

use std::time::{Duration, Instant};

use super::super::buffer::BufferPool;
use super::io::{ClientIo, Read};
use crate::http1::response::{write_chunk_start, CHUNK_END, LAST_CHUNK};
use crate::http1::{BodyFraming, ChunkedDecoder, ChunkedError};

/// The slowest a request body may arrive on average, after a first `-body-timeout` of grace:
/// each 500 bytes received buy one more second. A client trickling a body a byte at a time is
/// cut after about `-body-timeout`, not when it likes.
pub(crate) const MIN_BODY_RATE: u64 = 500;

/// Bytes decoded at a time from a chunked body.
const DECODE_STEP: usize = 8 * 1024;

/// Why the client's body could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyError {
    /// Bad chunked framing (400).
    Framing(ChunkedError),
    /// More than `-max-body` bytes (413).
    TooLarge,
    /// The client closed or reset the connection mid-body.
    Closed,
}

/// How a [`ClientBody::pump`] went.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Pump {
    /// The whole body is out of the client and in the caller's buffer.
    Done,
    /// Bytes moved; the caller's buffer is full or the client has nothing more now.
    Some,
    /// Nothing moved: the client sent nothing new, or the buffer has no room.
    Nothing,
}

enum Kind {
    Length { remaining: u64 },
    Chunked(ChunkedDecoder),
    Empty,
}

pub(crate) struct ClientBody {
    kind: Kind,
    /// De-framed bytes so far.
    received: u64,
    limit: Option<u64>,
    done: bool,
    started: Instant,
    progress: Instant,
}

impl ClientBody {
    pub(crate) fn new(framing: BodyFraming, limit: Option<u64>, now: Instant) -> ClientBody {
        let (kind, done) = match framing {
            BodyFraming::None => (Kind::Empty, true),
            BodyFraming::Length(n) => (Kind::Length { remaining: n }, false),
            BodyFraming::Chunked => (Kind::Chunked(ChunkedDecoder::new()), false),
        };
        ClientBody {
            kind,
            received: 0,
            limit,
            done,
            started: now,
            progress: now,
        }
    }

    pub(crate) fn is_done(&self) -> bool {
        self.done
    }

    /// Restarts the clocks (reading begins now, e.g. after `100 Continue`).
    pub(crate) fn start_clock(&mut self, now: Instant) {
        self.started = now;
        self.progress = now;
    }

    /// When waiting for the client's body must end: `-body-timeout` after the last bytes,
    /// and no later than the minimum rate allows.
    pub(crate) fn deadline(&self, body_timeout: Duration) -> Instant {
        let pause = self.progress + body_timeout;
        let rate = self.started + body_timeout + Duration::from_secs(self.received / MIN_BODY_RATE);
        pause.min(rate)
    }

    /// Moves body bytes from the client into `dest`, framed for the backend, until `dest`
    /// holds `max` bytes, the client has nothing more for now, or the body ends.
    pub(crate) fn pump(
        &mut self,
        io: &mut ClientIo,
        buffers: &mut BufferPool,
        dest: &mut Vec<u8>,
        max: usize,
        now: Instant,
    ) -> Result<Pump, BodyError> {
        let mut moved = false;
        loop {
            if self.done {
                return Ok(Pump::Done);
            }
            if dest.len() + CHUNK_OVERHEAD >= max {
                return Ok(if moved { Pump::Some } else { Pump::Nothing });
            }
            if io.input_len() == 0 {
                match io.read_input(buffers) {
                    Ok(Read::Data(_)) => {}
                    Ok(Read::Blocked | Read::Full) => {
                        return Ok(if moved { Pump::Some } else { Pump::Nothing })
                    }
                    Ok(Read::Eof) | Err(_) => return Err(BodyError::Closed),
                }
                continue;
            }
            let room = max - dest.len() - CHUNK_OVERHEAD;
            // With input at hand and room in `dest`, every call uses at least one byte.
            self.take_from_input(io, dest, room)?;
            moved = true;
            self.progress = now;
        }
    }

    /// De-frames what is in the input buffer into `dest` (at most `room` body bytes).
    fn take_from_input(
        &mut self,
        io: &mut ClientIo,
        dest: &mut Vec<u8>,
        room: usize,
    ) -> Result<(), BodyError> {
        let Some(input) = io.input.as_mut() else {
            return Ok(());
        };
        let produced = match &mut self.kind {
            Kind::Empty => 0,
            Kind::Length { remaining } => {
                let n = input
                    .len()
                    .min(room)
                    .min(usize::try_from(*remaining).unwrap_or(usize::MAX));
                dest.extend_from_slice(&input.data()[..n]);
                input.consume(n);
                *remaining -= n as u64;
                if *remaining == 0 {
                    self.done = true;
                }
                n
            }
            Kind::Chunked(decoder) => {
                let mut step = [0u8; DECODE_STEP];
                let want = room.min(step.len());
                let (used, n) = decoder
                    .decode(input.data(), &mut step[..want])
                    .map_err(BodyError::Framing)?;
                input.consume(used);
                if n > 0 {
                    write_chunk_start(dest, n);
                    dest.extend_from_slice(&step[..n]);
                    dest.extend_from_slice(CHUNK_END);
                }
                if decoder.is_done() {
                    dest.extend_from_slice(LAST_CHUNK);
                    self.done = true;
                }
                n
            }
        };
        self.count(produced)
    }

    fn count(&mut self, n: usize) -> Result<(), BodyError> {
        self.received += n as u64;
        match self.limit {
            Some(limit) if self.received > limit => Err(BodyError::TooLarge),
            _ => Ok(()),
        }
    }
}

/// Room kept for one chunk's framing (size line, CRLF) and the last chunk.
const CHUNK_OVERHEAD: usize = 32;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_rate_deadline_grows_with_bytes() {
        let t0 = Instant::now();
        let mut body = ClientBody::new(BodyFraming::Length(10_000), None, t0);
        let timeout = Duration::from_secs(30);
        assert_eq!(body.deadline(timeout), t0 + timeout);
        body.received = 5_000;
        body.progress = t0 + Duration::from_secs(40);
        assert_eq!(
            body.deadline(timeout),
            t0 + timeout + Duration::from_secs(10),
            "10 s bought by 5000 bytes, earlier than the pause limit"
        );
    }

    #[test]
    fn limit_counts_de_framed_bytes() {
        let t0 = Instant::now();
        let mut body = ClientBody::new(BodyFraming::Chunked, Some(4), t0);
        assert!(body.count(4).is_ok());
        assert_eq!(body.count(1), Err(BodyError::TooLarge));
    }
}
