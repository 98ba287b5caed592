//! Writing response heads and chunk framing towards the client.
//!
//! The caller decides which backend headers survive (hop-by-hop ones never do) and how the
//! body is framed; this module only renders bytes, so a head and a small body can leave in a
//! single `write`.

use std::io::Write;

use super::request::Version;

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
    // Writing to a Vec cannot fail.
    let _ = write!(out, "HTTP/1.1 {status} {}\r\n", reason_phrase(status));
    for (name, value) in fields {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    match framing {
        ResponseFraming::NoBody {
            content_length: Some(n),
        }
        | ResponseFraming::Length(n) => {
            let _ = write!(out, "content-length: {n}\r\n");
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

/// Appends the size line of a chunk of `len` bytes (`len` > 0).
pub fn write_chunk_start(out: &mut Vec<u8>, len: usize) {
    let _ = write!(out, "{len:x}\r\n");
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
}
