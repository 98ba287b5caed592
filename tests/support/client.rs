//! A raw HTTP/1.1 client for integration tests: sends exactly the bytes a test gives it and
//! parses exactly one response at a time, strictly, so that framing bugs in the proxy fail
//! the test instead of being smoothed over.
//!
//! It owns connection handling and response parsing (status line, fields, body by
//! Content-Length, chunked or close-delimited). Line and chunked decoding are shared with the
//! fixture backend (`super::backend`). Every read and write has a 10 s timeout so a bug never
//! hangs the suite. The plain functions panic with context on any error (what a test wants);
//! the `try_` variants return it (for tests that expect one).

// Each test binary uses a different part of the client.
#![allow(dead_code)]

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

use super::backend::{read_chunked_body, read_fields, read_line};

/// Longest any single read, write or connect may block.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// One parsed response. A 1xx interim response is returned on its own, with no body.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Response {
    /// `HTTP/1.1` or `HTTP/1.0`.
    pub version: String,
    pub status: u16,
    pub reason: String,
    /// In order, names spelled as sent.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked when `chunked`.
    pub body: Vec<u8>,
    /// Whether the body came with `Transfer-Encoding: chunked`.
    pub chunked: bool,
}

impl Response {
    /// First value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_all(name).into_iter().next()
    }

    /// Every value of header `name` (case-insensitive), in order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        let named = |(n, _): &&(String, String)| n.eq_ignore_ascii_case(name);
        self.headers
            .iter()
            .filter(named)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The body as text (lossy UTF-8).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// `GET path` with a `Host` header on a fresh connection; panics on any error.
pub fn get(addr: SocketAddr, path: &str) -> Response {
    try_get(addr, path).unwrap_or_else(|e| panic!("GET {path} from {addr}: {e}"))
}

pub fn try_get(addr: SocketAddr, path: &str) -> io::Result<Response> {
    let raw = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    try_request(addr, raw.as_bytes())
}

/// Sends `raw` on a fresh connection and reads one response; panics on any error. A request
/// starting with `HEAD ` is read as a HEAD response (no body).
pub fn request(addr: SocketAddr, raw: &[u8]) -> Response {
    try_request(addr, raw).unwrap_or_else(|e| {
        let first_line = String::from_utf8_lossy(raw.split(|b| *b == b'\n').next().unwrap_or(raw));
        panic!("request {:?} to {addr}: {e}", first_line.trim_end())
    })
}

pub fn try_request(addr: SocketAddr, raw: &[u8]) -> io::Result<Response> {
    let method = if raw.starts_with(b"HEAD ") {
        "HEAD"
    } else {
        "GET"
    };
    let mut conn = Conn::try_open(addr)?;
    conn.try_send(raw)?;
    conn.try_read_response_to(method)
}

/// One client connection, kept open across requests (keep-alive, pipelining).
pub struct Conn {
    reader: BufReader<TcpStream>,
}

impl Conn {
    /// Connects to `addr`; panics if it cannot.
    pub fn open(addr: SocketAddr) -> Conn {
        Conn::try_open(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"))
    }

    pub fn try_open(addr: SocketAddr) -> io::Result<Conn> {
        Conn::from_stream(TcpStream::connect_timeout(&addr, TIMEOUT)?)
    }

    /// A connection made elsewhere (from a chosen source address, say), with the same
    /// timeouts as [`Conn::open`]'s.
    pub fn from_stream(stream: TcpStream) -> io::Result<Conn> {
        stream.set_read_timeout(Some(TIMEOUT))?;
        stream.set_write_timeout(Some(TIMEOUT))?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            reader: BufReader::new(stream),
        })
    }

    /// The socket, e.g. for `local_addr` or a half-close.
    pub fn stream(&self) -> &TcpStream {
        self.reader.get_ref()
    }

    /// Writes all of `bytes`; panics on error.
    pub fn send(&mut self, bytes: &[u8]) {
        self.try_send(bytes)
            .unwrap_or_else(|e| panic!("send {} bytes: {e}", bytes.len()));
    }

    pub fn try_send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.reader.get_mut().write_all(bytes)
    }

    /// Closes our sending side (the peer sees EOF); reading still works.
    pub fn shutdown_write(&self) {
        let _ = self.stream().shutdown(Shutdown::Write);
    }

    /// Reads one response to a request that was not HEAD; panics on error.
    pub fn read_response(&mut self) -> Response {
        self.read_response_to("GET")
    }

    /// Reads one response to a `method` request (HEAD responses have no body); panics on error.
    pub fn read_response_to(&mut self, method: &str) -> Response {
        self.try_read_response_to(method)
            .unwrap_or_else(|e| panic!("read response to {method}: {e}"))
    }

    pub fn try_read_response(&mut self) -> io::Result<Response> {
        self.try_read_response_to("GET")
    }

    pub fn try_read_response_to(&mut self, method: &str) -> io::Result<Response> {
        read_response(&mut self.reader, method)
    }

    /// Everything the peer sends until it closes (a reset ends it too); panics if the peer
    /// keeps the connection open for [`TIMEOUT`].
    pub fn read_to_close(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        match self.reader.read_to_end(&mut out) {
            Ok(_) => out,
            Err(e) if is_reset(&e) => out,
            Err(e) => panic!("read to close: {e} (after {} bytes)", out.len()),
        }
    }

    /// Whether the peer closes (or resets) the connection within `timeout`. Bytes that arrive
    /// instead are kept for the next read, and mean "not closed".
    pub fn is_closed_by_peer(&mut self, timeout: Duration) -> bool {
        // A zero read timeout is an error in std; the shortest real wait will do.
        let wait = timeout.max(Duration::from_millis(1));
        let _ = self.stream().set_read_timeout(Some(wait));
        let closed = match self.reader.fill_buf() {
            Ok(buffered) => buffered.is_empty(),
            Err(e) => is_reset(&e),
        };
        let _ = self.stream().set_read_timeout(Some(TIMEOUT));
        closed
    }
}

fn is_reset(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
    )
}

/// Parses one response from `r`; `method` decides whether a body may follow (RFC 9112 §6.3).
pub fn read_response(r: &mut impl BufRead, method: &str) -> io::Result<Response> {
    let line = read_line(r)?.ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed before a response",
        )
    })?;
    let mut response = parse_status_line(&line)?;
    response.headers = read_fields(r)?;
    let no_body = method == "HEAD" || response.status < 200 || matches!(response.status, 204 | 304);
    if no_body {
        return Ok(response);
    }
    let lengths = response.header_all("content-length");
    let chunked = response.header("transfer-encoding").is_some();
    if chunked && !lengths.is_empty() {
        return Err(invalid(
            "both Content-Length and Transfer-Encoding (RFC 9112 §6.1)",
        ));
    }
    if chunked {
        let coding = response.header("transfer-encoding").unwrap_or_default();
        if !coding.eq_ignore_ascii_case("chunked") {
            return Err(invalid(&format!("unexpected transfer-encoding {coding:?}")));
        }
        response.body = read_chunked_body(r)?;
        response.chunked = true;
        return Ok(response);
    }
    response.body = match lengths.as_slice() {
        [] => read_until_close(r)?,
        [length] => read_exactly(r, length)?,
        _ => {
            return Err(invalid(&format!(
                "several Content-Length fields {lengths:?}"
            )))
        }
    };
    Ok(response)
}

fn parse_status_line(line: &str) -> io::Result<Response> {
    let bad = || invalid(&format!("bad status line {line:?}"));
    let mut parts = line.splitn(3, ' ');
    let version = parts
        .next()
        .filter(|v| v.starts_with("HTTP/1."))
        .ok_or_else(bad)?;
    let status = parts.next().filter(|s| s.len() == 3).ok_or_else(bad)?;
    let status = status.parse().map_err(|_| bad())?;
    Ok(Response {
        version: version.to_owned(),
        status,
        reason: parts.next().unwrap_or_default().to_owned(),
        ..Response::default()
    })
}

fn read_exactly(r: &mut impl BufRead, length: &str) -> io::Result<Vec<u8>> {
    let length: u64 = length
        .parse()
        .map_err(|_| invalid(&format!("bad Content-Length {length:?}")))?;
    let mut body = Vec::new();
    r.by_ref().take(length).read_to_end(&mut body)?;
    if body.len() as u64 != length {
        let msg = format!("body ended after {} of {length} bytes", body.len());
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, msg));
    }
    Ok(body)
}

/// A close-delimited body (RFC 9112 §6.3 rule 8); a reset after some bytes also ends it.
fn read_until_close(r: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    match r.read_to_end(&mut body) {
        Ok(_) => Ok(body),
        Err(e) if is_reset(&e) => Ok(body),
        Err(e) => Err(e),
    }
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(input: &[u8], method: &str) -> io::Result<Response> {
        read_response(&mut &input[..], method)
    }

    #[test]
    fn content_length_body_leaves_the_next_response() {
        let mut input: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: b\r\n\r\nhiHTTP/1.1";
        let response = read_response(&mut input, "GET").unwrap();
        assert_eq!((response.status, response.reason.as_str()), (200, "OK"));
        assert_eq!(response.header("x-a"), Some("b"));
        assert_eq!(response.text(), "hi");
        assert!(!response.chunked);
        assert_eq!(input, b"HTTP/1.1");
    }

    #[test]
    fn chunked_body_is_decoded_and_flagged() {
        let input = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
        let response = parse(input, "GET").unwrap();
        assert_eq!(response.body, b"abc");
        assert!(response.chunked);
    }

    #[test]
    fn bodiless_responses_read_no_body() {
        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n";
        assert!(parse(head, "HEAD").unwrap().body.is_empty());
        let no_content = parse(b"HTTP/1.1 204 No Content\r\n\r\n", "GET").unwrap();
        assert_eq!(no_content.status, 204);
        let interim = parse(b"HTTP/1.1 100 Continue\r\n\r\n", "POST").unwrap();
        assert_eq!(interim.status, 100);
    }

    #[test]
    fn close_delimited_body_reads_to_eof() {
        let response = parse(b"HTTP/1.0 200 OK\r\n\r\nuntil close", "GET").unwrap();
        assert_eq!(
            (response.version.as_str(), response.text().as_str()),
            ("HTTP/1.0", "until close")
        );
    }

    #[test]
    fn framing_errors_are_reported() {
        let err = |input: &[u8]| parse(input, "GET").unwrap_err().kind();
        assert_eq!(err(b""), io::ErrorKind::UnexpectedEof);
        assert_eq!(err(b"NOT HTTP AT ALL\r\n\r\n"), io::ErrorKind::InvalidData);
        assert_eq!(
            err(b"HTTP/1.1 200 OK\nContent-Length: 0\n\n"),
            io::ErrorKind::InvalidData
        );
        let both = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(err(both), io::ErrorKind::InvalidData);
        let short = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789";
        assert_eq!(err(short), io::ErrorKind::UnexpectedEof);
    }
}
