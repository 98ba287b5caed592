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
//! extensions must follow the grammar of §7.1.1 and are then skipped:
//!
//! ```text
//! chunk-ext = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] )
//! ext-val   = token / quoted-string
//!
//!  ';' ─► NameStart ─tchar─► Name ──'='──► ValueStart ─tchar─► Token
//!                             │ BWS           ▲     │ '"'         │ BWS
//!                             ▼               │     ▼             ▼
//!                          AfterName ──'='────┘   Quoted ──'"'──► AfterValue
//!
//!  From Name, AfterName, Token and AfterValue, ';' starts the next extension and CR ends
//!  the line; whitespace is skipped in NameStart, ValueStart, AfterName and AfterValue.
//! ```
//!
//! A bare `;`, a name missing before `=`, a control byte or an unterminated quoted string is
//! refused: a backend that parses extensions differently could find a different line end.
//! Trailer fields are read and dropped (they are not forwarded).

use super::fields::is_tchar;
use super::limits::{MAX_CHUNK_LINE_BYTES, MAX_TRAILER_BYTES};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading hex digits of the chunk size; `digits` so far.
    Size {
        digits: u8,
    },
    /// Whitespace after the size: only more whitespace, `;` or CR may follow.
    SizeWs,
    /// Inside the chunk extensions, until CR.
    Ext(Ext),
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

/// Where the decoder is inside a chunk extension (RFC 9112 §7.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ext {
    /// After `;`: whitespace, then the first byte of a name.
    NameStart,
    /// Inside a name (a token).
    Name,
    /// Whitespace after a name: `=`, `;` or CR may follow.
    AfterName,
    /// After `=`: whitespace, then a token or a quoted string.
    ValueStart,
    /// Inside a token value.
    Token,
    /// Inside a quoted-string value; `escaped`: the byte before was a backslash.
    Quoted { escaped: bool },
    /// Whitespace after a value: `;` or CR may follow.
    AfterValue,
}

/// Why a chunked body is refused (400; the connection is closed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkedError {
    /// A chunk-size line that is not hex digits followed by optional extensions and CRLF.
    BadSize,
    /// A chunk extension that does not follow `;name`, `;name=token` or `;name="quoted"`.
    BadExtension,
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
            Self::BadExtension => "chunked body: malformed chunk extension",
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
                    (None, b';') => State::Ext(Ext::NameStart),
                    (None, b' ' | b'\t') => State::SizeWs,
                    (None, b'\r') => State::SizeLf,
                    (None, _) => return Err(ChunkedError::BadSize),
                }
            }
            State::SizeWs => {
                self.count_line_byte()?;
                match b {
                    b' ' | b'\t' => State::SizeWs,
                    b';' => State::Ext(Ext::NameStart),
                    b'\r' => State::SizeLf,
                    _ => return Err(ChunkedError::BadSize),
                }
            }
            State::Ext(ext) => {
                self.count_line_byte()?;
                if b == b'\n' {
                    // A bare LF: the size line does not end in CRLF.
                    return Err(ChunkedError::BadSize);
                }
                extension_step(ext, b)?
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

/// One byte of a chunk extension: the next state, or `SizeLf` at the CR that ends the line.
fn extension_step(ext: Ext, b: u8) -> Result<State, ChunkedError> {
    use Ext::*;
    let next = match (ext, b) {
        (Quoted { escaped: false }, b'"') => AfterValue,
        (Quoted { escaped: false }, b'\\') => Quoted { escaped: true },
        (Quoted { escaped: false }, _) if is_qdtext(b) => ext,
        // quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text ), RFC 9110 §5.6.4
        (Quoted { escaped: true }, b'\t' | b' ' | 0x21..=0x7e | 0x80..) => {
            Quoted { escaped: false }
        }
        (Quoted { .. }, _) => return Err(ChunkedError::BadExtension),
        (NameStart | AfterName | ValueStart | AfterValue, b' ' | b'\t') => ext,
        (Name, b' ' | b'\t') => AfterName,
        (Token, b' ' | b'\t') => AfterValue,
        (NameStart | Name, _) if is_tchar(b) => Name,
        (ValueStart | Token, _) if is_tchar(b) => Token,
        (ValueStart, b'"') => Quoted { escaped: false },
        (Name | AfterName, b'=') => ValueStart,
        (Name | AfterName | Token | AfterValue, b';') => NameStart,
        (Name | AfterName | Token | AfterValue, b'\r') => return Ok(State::SizeLf),
        _ => return Err(ChunkedError::BadExtension),
    };
    Ok(State::Ext(next))
}

/// `qdtext` of RFC 9110 §5.6.4: HTAB, SP, visible ASCII but `"` and `\`, and obs-text.
fn is_qdtext(b: u8) -> bool {
    matches!(b, b'\t' | b' ' | 0x21 | 0x23..=0x5b | 0x5d..=0x7e | 0x80..)
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

    /// Each case: a chunk-size line for a 5-byte chunk that must be accepted.
    macro_rules! accepts_extension {
        ($($name:ident: $line:expr,)*) => {$(
            #[test]
            fn $name() {
                let mut raw = $line.to_vec();
                raw.extend_from_slice(b"hello\r\n0;end\r\n\r\n");
                for step in [1, 2, raw.len()] {
                    let (body, consumed, done) = decode_in_steps(&raw, step, 3)
                        .unwrap_or_else(|e| panic!("{:?} step {step}: {e}", $line));
                    assert_eq!((body.as_slice(), consumed, done), (&b"hello"[..], raw.len(), true));
                }
            }
        )*};
    }

    accepts_extension! {
        ext_name_only: b"5;a\r\n",
        ext_token_value: b"5;name=value\r\n",
        ext_several: b"5;a;b=c;d=\"e\"\r\n",
        ext_bws_everywhere: b"5 \t; a = b\t;\tc ; d =\"e\" \r\n",
        ext_trailing_ws_after_name: b"5;a \r\n",
        ext_quoted_empty: b"5;a=\"\"\r\n",
        ext_quoted_specials: b"5;a=\"x; y=z, \t\"\r\n",
        ext_quoted_pair: b"5;a=\"q\\\"s\\\\\"\r\n",
        ext_quoted_obs_text: b"5;a=\"\xc3\xa9\"\r\n",
        ext_token_chars: b"5;!#$%&'*+-.^_`|~09azAZ=!#$%&'*+-.^_`|~\r\n",
    }

    rejects! {
        ext_bare_semicolon: b"5;\r\nhello\r\n0\r\n\r\n" => ChunkedError::BadExtension,
        ext_semicolon_ws: b"5; \r\nhello\r\n0\r\n\r\n" => ChunkedError::BadExtension,
        ext_double_semicolon: b"5;;a\r\nhello\r\n0\r\n\r\n" => ChunkedError::BadExtension,
        ext_no_name: b"5;=x\r\nhello\r\n0\r\n\r\n" => ChunkedError::BadExtension,
        ext_no_value: b"5;a=\r\nhello\r\n0\r\n\r\n" => ChunkedError::BadExtension,
        ext_double_equals: b"5;a==b\r\nhello\r\n0\r\n\r\n" => ChunkedError::BadExtension,
        ext_two_names: b"5;a b\r\nhello\r\n0\r\n\r\n" => ChunkedError::BadExtension,
        ext_two_values: b"5;a=b c\r\nhello\r\n0\r\n\r\n" => ChunkedError::BadExtension,
        ext_comma: b"5;a,b\r\nhello\r\n0\r\n\r\n" => ChunkedError::BadExtension,
        ext_nul_in_name: b"5;a\0\r\nhello\r\n0\r\n\r\n" => ChunkedError::BadExtension,
        ext_control_in_value: b"5;a=\x01\r\nhello\r\n0\r\n\r\n" => ChunkedError::BadExtension,
        ext_obs_text_in_token: b"5;a=\xc3\xa9\r\nhello\r\n0\r\n\r\n" => ChunkedError::BadExtension,
        ext_quote_in_token: b"5;a=b\"c\"\r\nhello\r\n0\r\n\r\n" => ChunkedError::BadExtension,
        ext_unterminated_quote: b"5;a=\"b\r\nhello\r\n0\r\n\r\n" => ChunkedError::BadExtension,
        ext_del_in_quote: b"5;a=\"b\x7f\"\r\nhello\r\n0\r\n\r\n" => ChunkedError::BadExtension,
        ext_nul_in_quote: b"5;a=\"b\0\"\r\nhello\r\n0\r\n\r\n" => ChunkedError::BadExtension,
        ext_escaped_cr: b"5;a=\"b\\\r\nhello\r\n0\r\n\r\n" => ChunkedError::BadExtension,
        ext_after_quote: b"5;a=\"b\"c\r\nhello\r\n0\r\n\r\n" => ChunkedError::BadExtension,
        ext_on_last_chunk: b"0;\r\n\r\n" => ChunkedError::BadExtension,
        ext_bare_lf_in_quote: b"5;a=\"b\nhello\r\n0\r\n\r\n" => ChunkedError::BadSize,
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
