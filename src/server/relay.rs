//! Streaming a backend's response to the client with bounded memory.
//!
//! The head is rewritten (hop-by-hop fields dropped, framing chosen for this client) and the
//! body copied through one reused buffer, so a response of any size costs the same memory.
//! The head and the first body bytes leave in one `write`. A body of unknown length goes out
//! chunked to an HTTP/1.1 client (with fixed-width size lines, so the chunk is framed in place
//! without a second copy) and close-delimited to an HTTP/1.0 one.
//!
//! If the backend fails mid-body the error is returned before any terminating chunk is
//! written: the caller closes the connection and the client sees a truncated response, never
//! a complete-looking one.

use std::io::{self, Read, Write};

use http::header::{CONNECTION, CONTENT_LENGTH};

use super::stream::ClientStream;
use crate::http1::request::is_hop_by_hop;
use crate::http1::response::{write_head, ResponseFraming, LAST_CHUNK};
use crate::http1::{RequestHead, Version};

/// Room left before the data of a chunk for its size line: 8 hex digits and CRLF.
const CHUNK_PREFIX: usize = 10;

/// Which side broke a relay.
#[derive(Debug)]
pub(crate) enum RelayError {
    /// Reading the backend's body failed (reset, timeout, short body).
    Upstream(io::Error),
    /// Writing to the client failed (gone, or too slow for the write timeout).
    Downstream(io::Error),
}

/// A copy of the body as it is relayed (for the cache), given up past `limit` bytes.
pub(crate) struct Capture {
    pub body: Vec<u8>,
    limit: usize,
    pub overflowed: bool,
}

impl Capture {
    pub(crate) fn new(limit: usize) -> Capture {
        Capture {
            body: Vec::new(),
            limit,
            overflowed: false,
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        if self.overflowed {
            return;
        }
        if self.body.len() + bytes.len() > self.limit {
            self.overflowed = true;
            self.body = Vec::new();
            return;
        }
        self.body.extend_from_slice(bytes);
    }
}

/// What goes with a response besides the backend's own head and body.
pub(crate) struct Extras<'a> {
    /// Fields this proxy adds (`X-Cache`).
    pub fields: &'a [(&'a str, &'a [u8])],
    pub capture: Option<&'a mut Capture>,
}

/// Sends `response` to the client. Returns whether the connection may carry another request.
///
/// `head_buf` is scratch space for the response head; `buf` is the copy buffer, allocated
/// once per worker (never re-zeroed per response).
pub(crate) fn relay(
    stream: &ClientStream,
    head_buf: &mut Vec<u8>,
    buf: &mut [u8],
    request: &RequestHead,
    response: http::Response<ureq::Body>,
    keep_alive: bool,
    extras: Extras<'_>,
) -> Result<bool, RelayError> {
    let (parts, body) = response.into_parts();
    let status = parts.status.as_u16();
    let framing = framing(request, status, &parts.headers);
    let tokens = connection_tokens(&parts.headers);
    let fields = parts
        .headers
        .iter()
        .filter(|(name, _)| *name != CONTENT_LENGTH && !is_hop_by_hop(name.as_str(), &tokens))
        .map(|(name, value)| (name.as_str(), value.as_bytes()))
        .chain(extras.fields.iter().copied());
    head_buf.clear();
    write_head(
        head_buf,
        status,
        fields,
        framing,
        keep_alive,
        request.version,
    );

    // The head goes out together with the first body bytes when it leaves room for them.
    let mut out = Out {
        stream,
        buf,
        len: 0,
        capture: extras.capture,
    };
    if head_buf.len() <= out.buf.len() / 2 {
        out.buf[..head_buf.len()].copy_from_slice(head_buf);
        out.len = head_buf.len();
    } else {
        write_all(stream, head_buf)?;
    }
    let mut reader = body.into_reader();
    match framing {
        ResponseFraming::NoBody { .. } => out.flush()?,
        ResponseFraming::Length(n) => copy_exact(&mut reader, &mut out, n)?,
        ResponseFraming::UntilClose => copy_to_end(&mut reader, &mut out)?,
        ResponseFraming::Chunked => copy_chunked(&mut reader, &mut out)?,
    }
    Ok(keep_alive && framing != ResponseFraming::UntilClose)
}

/// RFC 9112 §6.3: HEAD, 1xx, 204 and 304 have no body; otherwise Content-Length, else the
/// backend used chunked or close-delimited framing and the length is unknown.
fn framing(request: &RequestHead, status: u16, headers: &http::HeaderMap) -> ResponseFraming {
    let length = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if request.method == http::Method::HEAD || status == 304 {
        return ResponseFraming::NoBody {
            content_length: length,
        };
    }
    if (100..200).contains(&status) || status == 204 {
        return ResponseFraming::NoBody {
            content_length: None,
        };
    }
    match (length, request.version) {
        (Some(n), _) => ResponseFraming::Length(n),
        (None, Version::Http11) => ResponseFraming::Chunked,
        (None, Version::Http10) => ResponseFraming::UntilClose,
    }
}

pub(crate) fn connection_tokens(headers: &http::HeaderMap) -> Vec<String> {
    headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

fn write_all(mut stream: &ClientStream, bytes: &[u8]) -> Result<(), RelayError> {
    stream.write_all(bytes).map_err(RelayError::Downstream)
}

/// The copy buffer with `len` bytes waiting to be written to the client.
struct Out<'a> {
    stream: &'a ClientStream,
    buf: &'a mut [u8],
    len: usize,
    capture: Option<&'a mut Capture>,
}

impl Out<'_> {
    /// Reads at most `limit` bytes from the backend after the waiting ones.
    fn fill(&mut self, reader: &mut impl Read, limit: usize) -> Result<usize, RelayError> {
        let start = self.len;
        let end = (start + limit).min(self.buf.len());
        let n = reader
            .read(&mut self.buf[start..end])
            .map_err(RelayError::Upstream)?;
        self.len += n;
        if let Some(capture) = self.capture.as_deref_mut() {
            capture.push(&self.buf[start..start + n]);
        }
        Ok(n)
    }

    fn room(&self) -> usize {
        self.buf.len() - self.len
    }

    fn flush(&mut self) -> Result<(), RelayError> {
        if self.len > 0 {
            write_all(self.stream, &self.buf[..self.len])?;
            self.len = 0;
        }
        Ok(())
    }
}

fn copy_exact(reader: &mut impl Read, out: &mut Out<'_>, length: u64) -> Result<(), RelayError> {
    let mut left = length;
    while left > 0 {
        let want = usize::try_from(left).unwrap_or(usize::MAX).min(out.room());
        let n = out.fill(reader, want)?;
        if n == 0 {
            return Err(RelayError::Upstream(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "backend body shorter than its Content-Length",
            )));
        }
        left -= n as u64;
        out.flush()?;
    }
    out.flush()?;
    // ureq hands the connection back to its pool only once it has seen the end of the body;
    // this read returns 0 at once and keeps the backend connection alive for the next request.
    let mut end = [0u8; 1];
    match reader.read(&mut end) {
        Ok(0) => Ok(()),
        Ok(_) => Err(RelayError::Upstream(io::Error::new(
            io::ErrorKind::InvalidData,
            "backend body longer than its Content-Length",
        ))),
        Err(e) => Err(RelayError::Upstream(e)),
    }
}

fn copy_to_end(reader: &mut impl Read, out: &mut Out<'_>) -> Result<(), RelayError> {
    loop {
        let room = out.room();
        let n = out.fill(reader, room)?;
        out.flush()?;
        if n == 0 {
            return Ok(());
        }
    }
}

fn copy_chunked(reader: &mut impl Read, out: &mut Out<'_>) -> Result<(), RelayError> {
    loop {
        let prefix_at = out.len;
        out.len += CHUNK_PREFIX;
        let room = out.room().saturating_sub(LAST_CHUNK.len() + 2);
        let n = out.fill(reader, room)?;
        if n == 0 {
            out.len = prefix_at;
            out.buf[prefix_at..prefix_at + LAST_CHUNK.len()].copy_from_slice(LAST_CHUNK);
            out.len += LAST_CHUNK.len();
            return out.flush();
        }
        // Leading zeros are allowed in chunk-size (RFC 9112 §7.1: 1*HEXDIG).
        let size_line = format!("{n:08x}\r\n");
        out.buf[prefix_at..prefix_at + CHUNK_PREFIX].copy_from_slice(size_line.as_bytes());
        out.buf[out.len..out.len + 2].copy_from_slice(b"\r\n");
        out.len += 2;
        out.flush()?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http1::{parse_request_head, Parse};

    fn head(raw: &str) -> RequestHead {
        match parse_request_head(raw.as_bytes()).unwrap() {
            Parse::Complete(h) => h,
            Parse::Partial => panic!(),
        }
    }

    use crate::test_util::headers;

    #[test]
    fn framing_rules() {
        let get11 = head("GET / HTTP/1.1\r\nHost: h\r\n\r\n");
        let get10 = head("GET / HTTP/1.0\r\n\r\n");
        let head11 = head("HEAD / HTTP/1.1\r\nHost: h\r\n\r\n");
        let cl = headers(&[("content-length", "12")]);
        let none = headers(&[]);
        assert_eq!(framing(&get11, 200, &cl), ResponseFraming::Length(12));
        assert_eq!(framing(&get11, 200, &none), ResponseFraming::Chunked);
        assert_eq!(framing(&get10, 200, &none), ResponseFraming::UntilClose);
        assert_eq!(
            framing(&head11, 200, &cl),
            ResponseFraming::NoBody {
                content_length: Some(12)
            }
        );
        assert_eq!(
            framing(&get11, 204, &cl),
            ResponseFraming::NoBody {
                content_length: None
            }
        );
        assert_eq!(
            framing(&get11, 304, &cl),
            ResponseFraming::NoBody {
                content_length: Some(12)
            }
        );
    }

    #[test]
    fn response_connection_tokens() {
        let h = headers(&[("connection", "close, X-Hop"), ("connection", "keep-alive")]);
        assert_eq!(connection_tokens(&h), vec!["close", "x-hop", "keep-alive"]);
    }
}
