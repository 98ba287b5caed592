//! Sending one request to one backend with ureq, and naming what went wrong.
//!
//! The request is rebuilt from the parsed client head: hop-by-hop fields dropped (RFC 9110
//! §7.6.1), framing chosen here (ureq frames the body: Content-Length or chunked, never
//! both), `X-Forwarded-For` appended, `X-Forwarded-Proto`/`-Host` set, `Host` kept as sent.
//! Failures are sorted by whether the request can have reached the backend, because that
//! decides whether another backend may be tried.

use std::io::{self, Read};
use std::net::IpAddr;

use http::header::{HeaderName, HeaderValue, CONTENT_LENGTH, EXPECT, HOST, TRANSFER_ENCODING};

use super::backend::Lease;
use crate::http1::request::is_hop_by_hop;
use crate::http1::{BodyFraming, RequestHead};

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// The body to send with a request.
pub enum OutgoingBody<'a> {
    None,
    /// Read whole beforehand: can be sent again to another backend.
    Buffered(&'a [u8]),
    /// Read from the client while sending: `Length(n)` or `Chunked` (already de-chunked).
    Streamed(&'a mut dyn Read, BodyFraming),
}

/// What a failed attempt means for the request.
#[derive(Debug)]
pub enum ForwardError {
    /// The connection to the backend could not be made: nothing was sent.
    Connect(String),
    /// The backend did not answer within the response timeout (504).
    Timeout,
    /// The connection was reset or closed before a response head: the request may have
    /// reached the backend, but nothing came back. The stale keep-alive race looks like this.
    Reset(String),
    /// The backend answered something that is not a valid response head (502).
    Upstream(String),
    /// The target or a header could not be expressed as an upstream request (400).
    Invalid(String),
}

impl std::fmt::Display for ForwardError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Connect(e) => write!(f, "connect: {e}"),
            Self::Timeout => write!(f, "no response head within the response timeout"),
            Self::Reset(e) => write!(f, "connection lost: {e}"),
            Self::Upstream(e) => write!(f, "upstream: {e}"),
            Self::Invalid(e) => write!(f, "invalid request: {e}"),
        }
    }
}

impl ForwardError {
    /// Short label for the `kind` of the upstream-errors metric.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Connect(_) => "connect",
            Self::Timeout => "timeout",
            Self::Reset(_) => "reset",
            Self::Upstream(_) => "protocol",
            // Never counted against a backend; named for logs.
            Self::Invalid(_) => "invalid",
        }
    }
}

/// Methods that may be sent twice (RFC 9110 §9.2.2): retried after a reset when the body
/// can be replayed.
pub fn is_idempotent(method: &http::Method) -> bool {
    use http::Method;
    [
        Method::GET,
        Method::HEAD,
        Method::PUT,
        Method::DELETE,
        Method::OPTIONS,
        Method::TRACE,
    ]
    .contains(method)
}

/// Sends `head` (and `body`) to the leased backend; returns the response with its body still
/// to be read.
pub fn send(
    lease: &Lease,
    head: &RequestHead,
    peer: IpAddr,
    proto: &'static str,
    body: OutgoingBody<'_>,
) -> Result<http::Response<ureq::Body>, ForwardError> {
    let target = if head.target == "*" {
        "/"
    } else {
        head.target.as_str()
    };
    let uri = format!("{}{}", lease.backend().url.base, target);
    let mut builder = http::Request::builder()
        .method(head.method.clone())
        .uri(uri);
    let headers = builder
        .headers_mut()
        .ok_or_else(|| ForwardError::Invalid("request-target".into()))?;
    copy_end_to_end_headers(head, headers);
    set_forwarded(head, peer, proto, headers)?;

    let result = match body {
        OutgoingBody::None => lease.agent().run(build(builder, ())?),
        OutgoingBody::Buffered(bytes) => {
            headers_len(&mut builder, bytes.len() as u64);
            lease.agent().run(build(builder, bytes)?)
        }
        OutgoingBody::Streamed(reader, framing) => {
            match framing {
                BodyFraming::Length(n) => headers_len(&mut builder, n),
                BodyFraming::Chunked => {
                    if let Some(h) = builder.headers_mut() {
                        h.insert(TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
                    }
                }
                BodyFraming::None => {}
            }
            lease
                .agent()
                .run(build(builder, ureq::SendBody::from_reader(reader))?)
        }
    };
    result.map_err(classify)
}

fn build<B>(builder: http::request::Builder, body: B) -> Result<http::Request<B>, ForwardError> {
    builder
        .body(body)
        .map_err(|e| ForwardError::Invalid(e.to_string()))
}

fn headers_len(builder: &mut http::request::Builder, n: u64) {
    if let Some(h) = builder.headers_mut() {
        h.insert(CONTENT_LENGTH, HeaderValue::from(n));
    }
}

/// Copies the fields meant for the backend: not hop-by-hop, not framing (set per body), not
/// `Expect` (answered here), not the forwarding fields this proxy owns. `Host` is the parsed
/// one: as sent, except that an absolute-form target's authority replaces it (RFC 9112
/// §3.2.2: a proxy must not forward the received Host then).
fn copy_end_to_end_headers(head: &RequestHead, out: &mut http::HeaderMap) {
    for (name, value) in &head.headers {
        let skip = is_hop_by_hop(name.as_str(), &head.connection_tokens)
            || name == CONTENT_LENGTH
            || name == EXPECT
            || name == HOST
            || name == X_FORWARDED_FOR
            || name == X_FORWARDED_PROTO
            || name == X_FORWARDED_HOST;
        if !skip {
            out.append(name.clone(), value.clone());
        }
    }
    if let Some(host) = head.host.as_deref() {
        // The parser took `host` from a visible-ASCII field or target, so this cannot fail;
        // without a Host, ureq writes the backend's own.
        if let Ok(value) = HeaderValue::from_str(host) {
            out.insert(HOST, value);
        }
    }
}

/// `X-Forwarded-For`: the client's list, then the peer (appended, as every proxy in a chain
/// does). `X-Forwarded-Proto` and `-Host` describe this hop only, so a client's are replaced.
fn set_forwarded(
    head: &RequestHead,
    peer: IpAddr,
    proto: &'static str,
    out: &mut http::HeaderMap,
) -> Result<(), ForwardError> {
    let mut chain = Vec::new();
    for v in head.headers.get_all(&X_FORWARDED_FOR) {
        chain.extend_from_slice(v.as_bytes());
        chain.extend_from_slice(b", ");
    }
    chain.extend_from_slice(peer.to_string().as_bytes());
    let xff = HeaderValue::from_bytes(&chain)
        .map_err(|_| ForwardError::Invalid("X-Forwarded-For".into()))?;
    out.insert(X_FORWARDED_FOR.clone(), xff);
    out.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static(proto));
    if let Some(host) = &head.host {
        if let Ok(v) = HeaderValue::from_str(host) {
            out.insert(X_FORWARDED_HOST.clone(), v);
        }
    }
    Ok(())
}

fn classify(e: ureq::Error) -> ForwardError {
    use ureq::{Error, Timeout};
    match e {
        Error::Timeout(Timeout::Connect | Timeout::Resolve) => {
            ForwardError::Connect("timed out".into())
        }
        Error::ConnectionFailed | Error::HostNotFound => ForwardError::Connect(e.to_string()),
        Error::Io(ref io) if is_connect_refusal(io) => ForwardError::Connect(e.to_string()),
        Error::Io(ref io) if is_reset(io) => ForwardError::Reset(e.to_string()),
        Error::Timeout(_) => ForwardError::Timeout,
        Error::BadUri(_) | Error::Http(_) => ForwardError::Invalid(e.to_string()),
        other => ForwardError::Upstream(other.to_string()),
    }
}

fn is_reset(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof
    )
}

fn is_connect_refusal(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::AddrNotAvailable
            | io::ErrorKind::HostUnreachable
            | io::ErrorKind::NetworkUnreachable
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http1::{parse_request_head, Parse};

    fn head(raw: &str) -> RequestHead {
        match parse_request_head(raw.as_bytes()).unwrap() {
            Parse::Complete(h) => h,
            Parse::Partial => panic!("partial"),
        }
    }

    fn forwarded(raw: &str) -> http::HeaderMap {
        let h = head(raw);
        let mut out = http::HeaderMap::new();
        copy_end_to_end_headers(&h, &mut out);
        set_forwarded(&h, "10.0.0.9".parse().unwrap(), "http", &mut out).unwrap();
        out
    }

    #[test]
    fn hop_by_hop_and_framing_are_dropped() {
        let out = forwarded(
            "POST / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, X-Private\r\nX-Private: 1\r\n\
             Keep-Alive: 5\r\nTE: trailers\r\nUpgrade: h2c\r\nProxy-Connection: x\r\n\
             Transfer-Encoding: chunked\r\nExpect: 100-continue\r\nX-Keep: yes\r\n\r\n",
        );
        for gone in [
            "connection",
            "x-private",
            "keep-alive",
            "te",
            "upgrade",
            "proxy-connection",
            "transfer-encoding",
            "expect",
        ] {
            assert!(!out.contains_key(gone), "{gone} forwarded");
        }
        assert_eq!(out["x-keep"], "yes");
        assert_eq!(out["host"], "h");
    }

    #[test]
    fn forwarded_for_is_appended_and_proto_host_replaced() {
        let out = forwarded(
            "GET / HTTP/1.1\r\nHost: example.com\r\nX-Forwarded-For: 1.2.3.4\r\n\
             X-Forwarded-For: 5.6.7.8\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: evil\r\n\r\n",
        );
        assert_eq!(out["x-forwarded-for"], "1.2.3.4, 5.6.7.8, 10.0.0.9");
        assert_eq!(out.get_all("x-forwarded-for").iter().count(), 1);
        assert_eq!(out["x-forwarded-proto"], "http");
        assert_eq!(out["x-forwarded-host"], "example.com");
    }

    #[test]
    fn absolute_form_authority_replaces_host() {
        let out = forwarded("GET http://example.com:81/p HTTP/1.1\r\nHost: other\r\n\r\n");
        assert_eq!(
            out.get_all("host").iter().collect::<Vec<_>>(),
            ["example.com:81"]
        );
        assert_eq!(out["x-forwarded-host"], "example.com:81");
    }

    #[test]
    fn forwarded_for_without_client_list() {
        let out = forwarded("GET / HTTP/1.0\r\n\r\n");
        assert_eq!(out["x-forwarded-for"], "10.0.0.9");
        assert!(!out.contains_key("x-forwarded-host"));
    }

    #[test]
    fn connect_errors_are_told_apart() {
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert!(matches!(
            classify(ureq::Error::Io(refused)),
            ForwardError::Connect(_)
        ));
        let reset = io::Error::from(io::ErrorKind::ConnectionReset);
        assert!(matches!(
            classify(ureq::Error::Io(reset)),
            ForwardError::Reset(_)
        ));
        let eof = io::Error::from(io::ErrorKind::UnexpectedEof);
        assert!(matches!(
            classify(ureq::Error::Io(eof)),
            ForwardError::Reset(_)
        ));
        let garbage = ureq::Error::LargeResponseHeader(70_000, 65_536);
        assert!(matches!(classify(garbage), ForwardError::Upstream(_)));
        let slow = ureq::Error::Timeout(ureq::Timeout::RecvResponse);
        assert!(matches!(classify(slow), ForwardError::Timeout));
        let connect = ureq::Error::Timeout(ureq::Timeout::Connect);
        assert!(matches!(classify(connect), ForwardError::Connect(_)));
    }
}
