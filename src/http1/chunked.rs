//! Decoder for the chunked transfer coding (RFC 9112 §7.1), fed bytes in any fragments.
//!
//! ```text
//!        hex digits          ';' ext...         CRLF
//!  Size ───────────► Size ──────────► Ext ──────────► (size > 0) Data ──n bytes──► DataCr ─CRLF─┐
//!   ▲                                                 (size = 0) Trailer ─CRLF CRLF─► Done      │
//!   └──────────────────────────────────────────────────────────────────────────────────────────┘
//! ```
//!
//! Strict on framing, because a proxy that reads chunk boundaries differently from its
//! backend is a smuggling vector: the size must be hex digits only (no sign, no `0x`, no
//! spaces before the digits), at most 16 of them, and every line ends in CRLF. Chunk
//! extensions are skipped; trailer fields are read and dropped (they are not forwarded).

use super::limits::{MAX_CHUNK_LINE_BYTES, MAX_TRAILER_BYTES};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading hex digits of the chunk size; `digits` so far.
    Size {
        digits: u8,
    },
    /// Whitespace after the size: only more whitespace, `;` or CR may follow.
    SizeWs,
    /// Inside `;` extensions, until CR.
    Ext,
    /// Expecting the LF of the size line.
    SizeLf,
    /// Copying chunk data; bytes left in this chunk.
    Data,
    /// Expecting the CR after chunk data.
    DataCr,
    /// Expecting the LF after chunk data.
    DataLf,
    /// In the trailer section; `line` bytes read on the current line.
    Trailer {
        line: usize,
    },
    /// Expecting the LF that ends a trailer line (`empty`: the line was empty: body ends).
    TrailerLf {
        empty: bool,
    },
    Done,
}

/// Why a chunked body is refused (400; the connection is closed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkedError {
    /// A chunk-size line that is not hex digits followed by optional extensions and CRLF.
    BadSize,
    /// A chunk size above 16 hex digits (would overflow).
    SizeOverflow,
    /// A chunk-size line longer than [`MAX_CHUNK_LINE_BYTES`].
    LineTooLong,
    /// Chunk data not followed by CRLF.
    MissingCrlf,
    /// A trailer section larger than [`MAX_TRAILER_BYTES`], or a line not ending in CRLF.
    BadTrailer,
}

impl std::fmt::Display for ChunkedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::BadSize => "chunked body: malformed chunk-size line",
            Self::SizeOverflow => "chunked body: chunk size overflows",
            Self::LineTooLong => "chunked body: chunk-size line too long",
            Self::MissingCrlf => "chunked body: chunk data not followed by CRLF",
            Self::BadTrailer => "chunked body: malformed or oversized trailer section",
        })
    }
}

impl std::error::Error for ChunkedError {}

/// Incremental chunked decoder: no I/O, no allocation.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
    /// Size of the current chunk while reading it; bytes left while in `Data`.
    remaining: u64,
    /// Bytes of the current size line (digits + extensions), for the line limit.
    line_len: usize,
    trailer_len: usize,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkedDecoder {
    pub fn new() -> Self {
        Self {
            state: State::Size { digits: 0 },
            remaining: 0,
            line_len: 0,
            trailer_len: 0,
        }
    }

    /// The last chunk and the trailer section have been read: the body is complete.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes from `input` into `output`. Returns `(consumed, produced)`; stops when the
    /// body is done, the input is used up, or the output is full. Bytes after the end of the
    /// body are left unconsumed (they belong to the next request).
    pub fn decode(
        &mut self,
        input: &[u8],
        output: &mut [u8],
    ) -> Result<(usize, usize), ChunkedError> {
        let mut i = 0;
        let mut produced = 0;
        while i < input.len() && self.state != State::Done {
            if self.state == State::Data {
                let room = output.len() - produced;
                if room == 0 {
                    break;
                }
                let n = (input.len() - i).min(room).min(clamp(self.remaining));
                output[produced..produced + n].copy_from_slice(&input[i..i + n]);
                produced += n;
                i += n;
                self.remaining -= n as u64;
                if self.remaining == 0 {
                    self.state = State::DataCr;
                }
                continue;
            }
            self.step(input[i])?;
            i += 1;
        }
        Ok((i, produced))
    }

    /// One byte of framing (everything but chunk data).
    fn step(&mut self, b: u8) -> Result<(), ChunkedError> {
        self.state = match self.state {
            State::Size { digits } => {
                self.count_line_byte()?;
                match (hex_value(b), b) {
                    (Some(v), _) => {
                        if digits == 16 {
                            return Err(ChunkedError::SizeOverflow);
                        }
                        self.remaining = self.remaining << 4 | u64::from(v);
                        State::Size { digits: digits + 1 }
                    }
                    (None, _) if digits == 0 => return Err(ChunkedError::BadSize),
                    (None, b';') => State::Ext,
                    (None, b' ' | b'\t') => State::SizeWs,
                    (None, b'\r') => State::SizeLf,
                    (None, _) => return Err(ChunkedError::BadSize),
                }
            }
            State::SizeWs => {
                self.count_line_byte()?;
                match b {
                    b' ' | b'\t' => State::SizeWs,
                    b';' => State::Ext,
                    b'\r' => State::SizeLf,
                    _ => return Err(ChunkedError::BadSize),
                }
            }
            State::Ext => {
                self.count_line_byte()?;
                match b {
                    b'\r' => State::SizeLf,
                    b'\n' => return Err(ChunkedError::BadSize),
                    _ => State::Ext,
                }
            }
            State::SizeLf => {
                if b != b'\n' {
                    return Err(ChunkedError::BadSize);
                }
                self.line_len = 0;
                if self.remaining == 0 {
                    State::Trailer { line: 0 }
                } else {
                    State::Data
                }
            }
            State::DataCr if b == b'\r' => State::DataLf,
            State::DataLf if b == b'\n' => State::Size { digits: 0 },
            State::DataCr | State::DataLf => return Err(ChunkedError::MissingCrlf),
            State::Trailer { line } => {
                self.trailer_len += 1;
                if self.trailer_len > MAX_TRAILER_BYTES {
                    return Err(ChunkedError::BadTrailer);
                }
                match b {
                    b'\r' => State::TrailerLf { empty: line == 0 },
                    b'\n' => return Err(ChunkedError::BadTrailer),
                    _ => State::Trailer { line: line + 1 },
                }
            }
            State::TrailerLf { empty } => match (b, empty) {
                (b'\n', true) => State::Done,
                (b'\n', false) => State::Trailer { line: 0 },
                _ => return Err(ChunkedError::BadTrailer),
            },
            State::Data | State::Done => unreachable!("handled by decode"),
        };
        Ok(())
    }

    fn count_line_byte(&mut self) -> Result<(), ChunkedError> {
        self.line_len += 1;
        if self.line_len > MAX_CHUNK_LINE_BYTES {
            return Err(ChunkedError::LineTooLong);
        }
        Ok(())
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// `u64` bytes left, as a `usize` bound for slicing.
fn clamp(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` fed in pieces of `step` bytes with an output buffer of `out_size`.
    fn decode_in_steps(
        input: &[u8],
        step: usize,
        out_size: usize,
    ) -> Result<(Vec<u8>, usize, bool), ChunkedError> {
        let mut d = ChunkedDecoder::new();
        let mut body = Vec::new();
        let mut out = vec![0; out_size];
        let mut pos = 0;
        while pos < input.len() && !d.is_done() {
            let end = (pos + step).min(input.len());
            let mut piece = &input[pos..end];
            while !piece.is_empty() && !d.is_done() {
                let (c, p) = d.decode(piece, &mut out)?;
                body.extend_from_slice(&out[..p]);
                piece = &piece[c..];
                pos += c;
                if c == 0 && p == 0 {
                    break;
                }
            }
        }
        Ok((body, pos, d.is_done()))
    }

    #[test]
    fn decodes_in_every_fragmentation() {
        let input = b"5\r\nhello\r\n1 ;ext=1\r\n \r\nA\r\n0123456789\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        for step in 1..input.len() {
            for out_size in [1, 3, 64] {
                let (body, consumed, done) = decode_in_steps(input, step, out_size).unwrap();
                assert_eq!(body, b"hello 0123456789", "step {step} out {out_size}");
                assert!(done);
                assert_eq!(&input[consumed..], b"NEXT");
            }
        }
    }

    #[test]
    fn uppercase_hex_and_leading_zeros() {
        let (body, _, done) = decode_in_steps(b"00B\r\nhello world\r\n0\r\n\r\n", 64, 64).unwrap();
        assert_eq!(body, b"hello world");
        assert!(done);
    }

    #[test]
    fn incomplete_body_is_not_done() {
        let (body, _, done) = decode_in_steps(b"5\r\nhel", 64, 64).unwrap();
        assert_eq!(body, b"hel");
        assert!(!done);
    }

    macro_rules! rejects {
        ($($name:ident: $raw:expr => $err:expr,)*) => {$(
            #[test]
            fn $name() {
                assert_eq!(decode_in_steps($raw, 1, 16).unwrap_err(), $err);
                assert_eq!(decode_in_steps($raw, 4096, 4096).unwrap_err(), $err);
            }
        )*};
    }

    rejects! {
        empty_size: b"\r\n" => ChunkedError::BadSize,
        signed_size: b"+5\r\nhello\r\n0\r\n\r\n" => ChunkedError::BadSize,
        hex_prefix: b"0x5\r\nhello\r\n0\r\n\r\n" => ChunkedError::BadSize,
        leading_space: b" 5\r\nhello\r\n0\r\n\r\n" => ChunkedError::BadSize,
        bare_lf_size: b"5\nhello\r\n0\r\n\r\n" => ChunkedError::BadSize,
        bare_lf_in_ext: b"5;a\nhello\r\n0\r\n\r\n" => ChunkedError::BadSize,
        cr_without_lf: b"5\rhello\r\n0\r\n\r\n" => ChunkedError::BadSize,
        junk_after_size: b"5 x\r\nhello\r\n0\r\n\r\n" => ChunkedError::BadSize,
        overflow: b"10000000000000000\r\n" => ChunkedError::SizeOverflow,
        data_too_long: b"3\r\nhello\r\n0\r\n\r\n" => ChunkedError::MissingCrlf,
        data_bare_lf: b"5\r\nhello\n0\r\n\r\n" => ChunkedError::MissingCrlf,
        trailer_bare_lf: b"0\r\nX: 1\n\r\n" => ChunkedError::BadTrailer,
        end_bare_lf: b"0\r\n\n" => ChunkedError::BadTrailer,
    }

    #[test]
    fn sixteen_hex_digits_is_the_limit() {
        let mut d = ChunkedDecoder::new();
        let mut out = [0u8; 8];
        assert!(d.decode(b"ffffffffffffffff\r\nabc", &mut out).is_ok());
    }

    #[test]
    fn long_extension_is_refused() {
        let mut raw = b"5;".to_vec();
        raw.resize(MAX_CHUNK_LINE_BYTES + 10, b'a');
        assert_eq!(
            decode_in_steps(&raw, 100, 16).unwrap_err(),
            ChunkedError::LineTooLong
        );
    }

    #[test]
    fn endless_trailer_is_refused() {
        let mut raw = b"0\r\n".to_vec();
        raw.resize(MAX_TRAILER_BYTES + 10, b'a');
        assert_eq!(
            decode_in_steps(&raw, 100, 16).unwrap_err(),
            ChunkedError::BadTrailer
        );
    }
}
