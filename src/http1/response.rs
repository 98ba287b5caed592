//! Writing response heads towards the client, and the chunk framing of bodies the proxy
//! chunks itself (towards a client, or a request body sent upstream chunked).
//!
//! [`write_head`] renders a head from fields the caller chose (error pages, cache hits).
//! [`write_client_head`] rewrites a backend's head as received: names, case, order and values
//! kept, hop-by-hop fields dropped, framing chosen for this client; a `101` and other 1xx
//! heads have writers of their own because their rules differ. Which framing and whether to
//! keep the connection are the caller's decisions; this module only renders bytes, into a
//! buffer the caller reuses, so a head and a small body can leave in a single `write`.

use std::io::Write;

use super::fields::{is_fixed_hop_by_hop, push_decimal, ConnectionFields};
use super::request::Version;
use super::response_head::ResponseHead;

/// How the body that follows a response head is delimited towards the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseFraming {
    /// No body may follow (HEAD, 1xx, 204, 304), but a Content-Length the backend sent is
    /// still worth passing on for HEAD/304 (RFC 9110 §8.6).
    NoBody { content_length: Option<u64> },
    /// Exactly this many bytes follow.
    Length(u64),
    /// Chunked (RFC 9112 §7.1): the body length is unknown and the client speaks HTTP/1.1.
    Chunked,
    /// The body ends when the connection closes (unknown length, HTTP/1.0 client).
    UntilClose,
}

/// The reason phrase for a status code (RFC 9110 §15); an empty one is legal.
pub fn reason_phrase(status: u16) -> &'static str {
    http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("")
}

/// Appends a complete response head to `out`: status line, the given fields, then the
/// framing and connection fields this proxy owns, then the blank line.
pub fn write_head<'a>(
    out: &mut Vec<u8>,
    status: u16,
    fields: impl Iterator<Item = (&'a str, &'a [u8])>,
    framing: ResponseFraming,
    keep_alive: bool,
    client_version: Version,
) {
    write_status_line(out, status, b"");
    for (name, value) in fields {
        write_field(out, name.as_bytes(), value);
    }
    finish_head(out, framing, keep_alive, client_version);
}

/// Appends a backend's final response head, rewritten for the client: the status line with
/// the reason as received (the canonical one when it was empty), the received fields with
/// their names, case, order and values, then `extra` (fields this proxy adds), then the
/// framing and connection fields for `to_client`, then the blank line.
///
/// Dropped: the hop-by-hop fields (RFC 9110 §7.6.1: the fixed ones and those the backend's
/// `Connection` lists) and Content-Length, which is written again from `to_client`. A `101`
/// goes through [`write_switching_protocols`], other 1xx through [`write_informational`].
///
/// `raw_head` is the head [`parse_response_head`](super::parse_response_head) accepted as
/// `head` (its first `head_len` bytes). Bare LF line ends come out as CRLF.
pub fn write_client_head(
    out: &mut Vec<u8>,
    raw_head: &[u8],
    head: &ResponseHead,
    to_client: ResponseFraming,
    keep_alive: bool,
    client_version: Version,
    extra: &[(&str, &[u8])],
) {
    debug_assert!(!head.is_informational(), "1xx heads have their own writers");
    write_received(out, raw_head, head);
    for &(name, value) in extra {
        write_field(out, name.as_bytes(), value);
    }
    finish_head(out, to_client, keep_alive, client_version);
}

/// Appends a backend's `101 Switching Protocols` for the client, after which the connection
/// is a tunnel. Like [`write_client_head`], except that `Upgrade` is kept as received and
/// `Connection: Upgrade` is written at the place of the backend's first `Connection` field
/// (or after the fields), because the client needs both to accept the switch (RFC 9110
/// §7.8, RFC 6455 §4.2.2); no framing fields, as no body follows.
pub fn write_switching_protocols(out: &mut Vec<u8>, raw_head: &[u8], head: &ResponseHead) {
    debug_assert_eq!(head.status, 101);
    let fields = head.fields(raw_head);
    write_status_line(out, head.status, head.reason(raw_head));
    let connection = ConnectionFields::of(fields);
    let mut connection_written = false;
    for field in fields.iter() {
        if field.is("upgrade") {
            write_line(out, field.line);
        } else if field.is("connection") {
            if !connection_written {
                write_field(out, field.name, b"Upgrade");
                connection_written = true;
            }
        } else if is_end_to_end(field.name, &connection) {
            write_line(out, field.line);
        }
    }
    if !connection_written {
        write_field(out, b"Connection", b"Upgrade");
    }
    out.extend_from_slice(b"\r\n");
}

/// Appends a backend's interim response other than 101 (`100`, `103 Early Hints`, ...) for
/// an HTTP/1.1 client: status line and end-to-end fields only, no framing or connection
/// fields (a 1xx has no body, RFC 9110 §15.2). HTTP/1.0 has no 1xx, so the caller sends
/// none to such a client; nor a `100 Continue` after answering the client's `Expect` itself.
pub fn write_informational(out: &mut Vec<u8>, raw_head: &[u8], head: &ResponseHead) {
    debug_assert!(head.is_informational() && head.status != 101);
    write_received(out, raw_head, head);
    out.extend_from_slice(b"\r\n");
}

/// The status line and the end-to-end fields of a received head, as received.
fn write_received(out: &mut Vec<u8>, raw_head: &[u8], head: &ResponseHead) {
    let fields = head.fields(raw_head);
    write_status_line(out, head.status, head.reason(raw_head));
    let connection = ConnectionFields::of(fields);
    for field in fields.iter() {
        if is_end_to_end(field.name, &connection) {
            write_line(out, field.line);
        }
    }
}

/// Whether a backend's field goes to the client: not hop-by-hop (RFC 9110 §7.6.1, fixed or
/// listed in `Connection`) and not Content-Length, which follows the framing chosen here.
fn is_end_to_end(name: &[u8], connection: &ConnectionFields<'_>) -> bool {
    !is_fixed_hop_by_hop(name)
        && !name.eq_ignore_ascii_case(b"content-length")
        && !connection.list(name)
}

/// `HTTP/1.1 <status> <reason>`; the canonical reason when `reason` is empty. A proxy sends
/// its own version, whatever the backend spoke (RFC 9110 §6.2).
fn write_status_line(out: &mut Vec<u8>, status: u16, reason: &[u8]) {
    let reason = if reason.is_empty() {
        reason_phrase(status).as_bytes()
    } else {
        reason
    };
    out.extend_from_slice(b"HTTP/1.1 ");
    push_decimal(out, u64::from(status));
    out.push(b' ');
    out.extend_from_slice(reason);
    out.extend_from_slice(b"\r\n");
}

/// A received field line, passed on as it came.
fn write_line(out: &mut Vec<u8>, line: &[u8]) {
    out.extend_from_slice(line);
    out.extend_from_slice(b"\r\n");
}

fn write_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// The framing and connection fields this proxy owns, and the blank line.
fn finish_head(
    out: &mut Vec<u8>,
    framing: ResponseFraming,
    keep_alive: bool,
    client_version: Version,
) {
    match framing {
        ResponseFraming::NoBody {
            content_length: Some(n),
        }
        | ResponseFraming::Length(n) => {
            out.extend_from_slice(b"content-length: ");
            push_decimal(out, n);
            out.extend_from_slice(b"\r\n");
        }
        ResponseFraming::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        ResponseFraming::NoBody {
            content_length: None,
        }
        | ResponseFraming::UntilClose => {}
    }
    let keep_alive = keep_alive && framing != ResponseFraming::UntilClose;
    if !keep_alive {
        out.extend_from_slice(b"connection: close\r\n");
    } else if client_version == Version::Http10 {
        out.extend_from_slice(b"connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Appends the size line of a chunk of `len` bytes (`len` > 0: a zero size ends the body).
pub fn write_chunk_start(out: &mut Vec<u8>, len: usize) {
    debug_assert!(len > 0, "a zero-size chunk is the last chunk");
    let _ = write!(out, "{len:x}\r\n");
}

/// Room to leave before chunk data whose size line is written in place once the data has
/// been read ([`write_chunk_prefix`]): 8 hex digits and CRLF.
pub const CHUNK_PREFIX_BYTES: usize = 10;

/// Writes the size line of a chunk of `len` bytes into `dst[..CHUNK_PREFIX_BYTES]`, as 8 hex
/// digits with leading zeros (RFC 9112 §7.1 allows them: `chunk-size = 1*HEXDIG`), so that
/// its width is known before the data is read and the chunk is framed without a copy.
///
/// Panics if `dst` is shorter than [`CHUNK_PREFIX_BYTES`], or `len` is 0 (that would be the
/// last chunk) or above `u32::MAX`: each is a bug in the caller's buffer handling.
pub fn write_chunk_prefix(dst: &mut [u8], len: usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    assert!(len > 0, "a zero-size chunk is the last chunk");
    let Ok(len) = u32::try_from(len) else {
        panic!("chunk of {len} bytes does not fit an 8-digit size line");
    };
    let (digits, crlf) = dst[..CHUNK_PREFIX_BYTES].split_at_mut(8);
    for (i, digit) in digits.iter_mut().enumerate() {
        *digit = HEX[((len >> (4 * (7 - i))) & 0xf) as usize];
    }
    crlf.copy_from_slice(CHUNK_END);
}

/// The CRLF after chunk data.
pub const CHUNK_END: &[u8] = b"\r\n";

/// The last chunk and an empty trailer section.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

#[cfg(test)]
mod tests {
    use super::*;

    fn head(framing: ResponseFraming, keep_alive: bool, v: Version) -> String {
        let mut out = Vec::new();
        let fields = [("content-type", b"text/plain".as_slice())];
        write_head(&mut out, 200, fields.into_iter(), framing, keep_alive, v);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn length_keep_alive_11() {
        assert_eq!(
            head(ResponseFraming::Length(5), true, Version::Http11),
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 5\r\n\r\n"
        );
    }

    #[test]
    fn chunked_close() {
        assert_eq!(
            head(ResponseFraming::Chunked, false, Version::Http11),
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
        );
    }

    #[test]
    fn http10_keep_alive_is_announced() {
        let h = head(ResponseFraming::Length(0), true, Version::Http10);
        assert!(
            h.ends_with("content-length: 0\r\nconnection: keep-alive\r\n\r\n"),
            "{h}"
        );
    }

    #[test]
    fn until_close_always_closes() {
        let h = head(ResponseFraming::UntilClose, true, Version::Http10);
        assert!(h.ends_with("connection: close\r\n\r\n"), "{h}");
        assert!(!h.contains("content-length"));
    }

    #[test]
    fn no_body_keeps_backend_length() {
        let h = head(
            ResponseFraming::NoBody {
                content_length: Some(9),
            },
            true,
            Version::Http11,
        );
        assert!(h.contains("content-length: 9\r\n"));
        let h = head(
            ResponseFraming::NoBody {
                content_length: None,
            },
            true,
            Version::Http11,
        );
        assert!(!h.contains("content-length"));
    }

    #[test]
    fn chunk_framing() {
        let mut out = Vec::new();
        write_chunk_start(&mut out, 255);
        assert_eq!(out, b"ff\r\n");
        assert_eq!(reason_phrase(599), "");
        assert_eq!(reason_phrase(503), "Service Unavailable");
    }

    use crate::http1::{parse_response_head, ChunkedDecoder};

    /// Parses `raw` as a backend head and writes it back for the client.
    fn rewrite(
        raw: &str,
        to_client: ResponseFraming,
        keep_alive: bool,
        client_version: Version,
        extra: &[(&str, &[u8])],
    ) -> String {
        let head = parse_response_head(raw.as_bytes(), false).unwrap().unwrap();
        let mut out = b"stale bytes stay".to_vec();
        write_client_head(
            &mut out,
            &raw.as_bytes()[..head.head_len],
            &head,
            to_client,
            keep_alive,
            client_version,
            extra,
        );
        let out = String::from_utf8(out).unwrap();
        out.strip_prefix("stale bytes stay").unwrap().to_owned()
    }

    #[test]
    fn client_head_keeps_names_order_and_values() {
        let raw = "HTTP/1.1 200 Fine Thanks\r\nServer: s\r\nset-cookie: a=1\r\nX-UPPER: V a l\r\n\
                   Set-Cookie: b=2\r\nContent-Length: 3\r\n\r\nabc";
        assert_eq!(
            rewrite(raw, ResponseFraming::Length(3), true, Version::Http11, &[]),
            "HTTP/1.1 200 Fine Thanks\r\nServer: s\r\nset-cookie: a=1\r\nX-UPPER: V a l\r\n\
             Set-Cookie: b=2\r\ncontent-length: 3\r\n\r\n"
        );
    }

    #[test]
    fn client_head_drops_hop_by_hop_and_framing() {
        let raw =
            "HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: 5\r\n\
                   Proxy-Connection: x\r\nTE: trailers\r\nTrailer: X-T\r\nUpgrade: h2c\r\n\
                   Transfer-Encoding: chunked\r\nX-Kept: yes\r\n\r\n";
        assert_eq!(
            rewrite(raw, ResponseFraming::Chunked, true, Version::Http11, &[]),
            "HTTP/1.1 200 OK\r\nX-Kept: yes\r\ntransfer-encoding: chunked\r\n\r\n"
        );
    }

    #[test]
    fn client_head_framing_follows_the_caller() {
        let raw = "HTTP/1.0 200 OK\nContent-Length: 3\nX-A: 1\n\n";
        let cases = [
            (
                ResponseFraming::Length(3),
                true,
                Version::Http10,
                "content-length: 3\r\nconnection: keep-alive\r\n\r\n",
            ),
            (
                ResponseFraming::UntilClose,
                true,
                Version::Http10,
                "connection: close\r\n\r\n",
            ),
            (
                ResponseFraming::Length(3),
                false,
                Version::Http11,
                "content-length: 3\r\nconnection: close\r\n\r\n",
            ),
            (
                ResponseFraming::NoBody {
                    content_length: None,
                },
                true,
                Version::Http11,
                "\r\n",
            ),
        ];
        for (framing, keep_alive, version, tail) in cases {
            let out = rewrite(raw, framing, keep_alive, version, &[]);
            // Bare LF from the backend, CRLF to the client; HTTP/1.1 whatever the backend spoke.
            assert_eq!(
                out,
                format!("HTTP/1.1 200 OK\r\nX-A: 1\r\n{tail}"),
                "{framing:?}"
            );
        }
    }

    #[test]
    fn client_head_reason_and_extra_fields() {
        let out = rewrite(
            "HTTP/1.1 404\r\nContent-Length: 0\r\n\r\n",
            ResponseFraming::Length(0),
            true,
            Version::Http11,
            &[("X-Cache", b"MISS"), ("x-two", b"2")],
        );
        assert_eq!(
            out,
            "HTTP/1.1 404 Not Found\r\nX-Cache: MISS\r\nx-two: 2\r\ncontent-length: 0\r\n\r\n"
        );
        let out = rewrite(
            "HTTP/1.1 299 \r\nContent-Length: 0\r\n\r\n",
            ResponseFraming::Length(0),
            true,
            Version::Http11,
            &[],
        );
        assert!(out.starts_with("HTTP/1.1 299 \r\n"), "{out:?}");
    }

    #[test]
    fn switching_protocols_keeps_the_upgrade() {
        let cases = [
            (
                "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nConnection: upgrade, x-hop\r\n\
                 X-Hop: 1\r\nKeep-Alive: 5\r\nSec-WebSocket-Accept: k\r\nConnection: other\r\n\r\n",
                "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Accept: k\r\n\r\n",
            ),
            (
                "HTTP/1.1 101 \r\nUpgrade: websocket\r\nSec-WebSocket-Accept: k\r\n\r\n",
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: k\r\n\
                 Connection: Upgrade\r\n\r\n",
            ),
        ];
        for (raw, want) in cases {
            let head = parse_response_head(raw.as_bytes(), false).unwrap().unwrap();
            let mut out = Vec::new();
            write_switching_protocols(&mut out, raw.as_bytes(), &head);
            assert_eq!(String::from_utf8(out).unwrap(), want);
        }
    }

    #[test]
    fn informational_passes_end_to_end_fields_only() {
        let raw = "HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\nConnection: x-a\r\n\
                   X-A: 1\r\nContent-Length: 0\r\nlink: </t.js>\r\n\r\n";
        let head = parse_response_head(raw.as_bytes(), false).unwrap().unwrap();
        let mut out = Vec::new();
        write_informational(&mut out, raw.as_bytes(), &head);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\nlink: </t.js>\r\n\r\n"
        );
        let raw = "HTTP/1.1 100 Continue\r\n\r\n";
        let head = parse_response_head(raw.as_bytes(), false).unwrap().unwrap();
        let mut out = Vec::new();
        write_informational(&mut out, raw.as_bytes(), &head);
        assert_eq!(out, raw.as_bytes());
    }

    #[test]
    fn chunk_prefix_in_place() {
        let mut buf = [b'.'; 12];
        write_chunk_prefix(&mut buf, 0x1f2e);
        assert_eq!(&buf, b"00001f2e\r\n..");
        write_chunk_prefix(&mut buf, u32::MAX as usize);
        assert_eq!(&buf[..10], b"ffffffff\r\n");
    }

    #[test]
    #[should_panic(expected = "last chunk")]
    fn chunk_prefix_refuses_zero() {
        write_chunk_prefix(&mut [0; CHUNK_PREFIX_BYTES], 0);
    }

    /// What the encoders write, the decoder reads back, with both kinds of size line.
    #[test]
    fn encoded_chunks_decode() {
        let data: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
        let mut wire = Vec::new();
        for (i, piece) in data.chunks(700).enumerate() {
            if i % 2 == 0 {
                write_chunk_start(&mut wire, piece.len());
            } else {
                let at = wire.len();
                wire.resize(at + CHUNK_PREFIX_BYTES, 0);
                write_chunk_prefix(&mut wire[at..], piece.len());
            }
            wire.extend_from_slice(piece);
            wire.extend_from_slice(CHUNK_END);
        }
        wire.extend_from_slice(LAST_CHUNK);
        let mut decoder = ChunkedDecoder::new();
        let mut out = vec![0; 4096];
        let mut body = Vec::new();
        let mut input = wire.as_slice();
        while !decoder.is_done() {
            let (consumed, produced) = decoder.decode(input, &mut out).unwrap();
            body.extend_from_slice(&out[..produced]);
            input = &input[consumed..];
        }
        assert!(input.is_empty());
        assert_eq!(body, data);
    }
}
