//! Request-head parsing and message framing (RFC 9112 §2–§7).
//!
//! [`parse_request_head`] takes the bytes read so far and answers [`Parse::Partial`] (read
//! more), a complete [`RequestHead`], or a [`RequestError`] that carries the status to answer
//! with. After any error the connection must be closed: the framing of whatever follows is
//! unknown, and guessing it is how request smuggling happens.
//!
//! The rules, each with the section it implements:
//! - bare LF or bare CR in the head: 400 (§2.2 allows servers to accept bare LF; a proxy must
//!   not, because the backend may split lines differently);
//! - obs-fold, whitespace before the colon, empty names, control bytes: 400 (§5.1, §5.2);
//! - HTTP/1.1 without exactly one Host: 400 (§3.2);
//! - Content-Length together with Transfer-Encoding: 400 (§6.1 lets a server drop CL; a
//!   proxy rejects, as the backend may not agree);
//! - Content-Length that is not one decimal number, or fields that differ: 400 (§6.3);
//! - Transfer-Encoding on HTTP/1.0: 400 (§6.1, the 1.0 peer cannot frame it);
//! - Transfer-Encoding whose final coding is not `chunked`, or `chunked` twice: 400 (§6.3);
//!   any other coding before `chunked`: 501 (§6.1, we decode only `chunked`);
//! - HTTP/2 or later on this port: 505; an `Expect` other than `100-continue`: 417.

use std::mem::MaybeUninit;

use http::{HeaderMap, HeaderName, HeaderValue, Method};

use super::field_index::{FieldIndex, Fields};
use super::fields::{connection_lists, is_fixed_hop_by_hop, parse_decimal, trim_ows};
use super::limits::{MAX_HEADERS, MAX_HEAD_BYTES, MAX_URI_BYTES};

/// The HTTP version of a request; only 1.0 and 1.1 are spoken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

/// How the request body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body (no Content-Length, no Transfer-Encoding, or Content-Length: 0).
    None,
    /// Exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// A parsed, validated request head.
///
/// It keeps the head as received (one copy, one allocation) and where each field lies in it,
/// rather than a map of owned names and values: a proxy reads a few fields of each request
/// and passes the rest on in order, so building a map would cost allocations and hashing per
/// field for lookups that a scan of a few dozen fields answers as fast.
#[derive(Debug, Clone)]
pub struct RequestHead {
    pub method: Method,
    /// The request-target in origin form (`/path?query`), or `*` for `OPTIONS *`. An
    /// absolute-form target (`http://host/path`) is reduced to its path and query, and its
    /// authority becomes [`host`](Self::host) (§3.2.2).
    pub target: String,
    pub version: Version,
    /// The head as received: request line, fields, blank line.
    raw: Box<[u8]>,
    /// Where each field lies in `raw`, in received order.
    field_index: FieldIndex,
    pub framing: BodyFraming,
    /// Whether the client wants the connection kept open after this exchange (§9.3).
    pub keep_alive: bool,
    /// `Expect: 100-continue` was sent (§10.1.1).
    pub expect_continue: bool,
    /// Host as sent (or the authority of an absolute-form target).
    pub host: Option<String>,
    /// Bytes of the head, blank line included: where the body (or the next request) starts.
    pub head_len: usize,
}

impl RequestHead {
    /// The head's bytes as received.
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    /// Every field in received order, with the names as sent; hop-by-hop ones included.
    pub fn fields(&self) -> Fields<'_> {
        self.field_index.view(&self.raw)
    }

    /// The value of the first field called `name` (any case).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.fields().get(name)
    }

    /// Whether a `Connection` field lists `token` (any case): an option such as `close`, or
    /// a field that is hop-by-hop for this request (RFC 9110 §7.6.1).
    pub fn connection_lists(&self, token: &str) -> bool {
        connection_lists(self.fields(), token)
    }

    /// The `Accept` header, for choosing the format of error pages.
    pub fn accept(&self) -> Option<&[u8]> {
        self.header("accept")
    }

    /// The fields as an `http` map (names lower-cased), for code that matches on them by
    /// name many times: the cache's `Vary` and `Cache-Control` rules. Built on each call.
    pub fn header_map(&self) -> HeaderMap {
        let mut map = HeaderMap::with_capacity(self.field_index.len());
        for field in self.fields().iter() {
            // httparse let through only token names and visible or blank value bytes, which
            // is what these accept; a field that still fails is left out.
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(field.name),
                HeaderValue::from_bytes(field.value),
            ) {
                map.append(name, value);
            }
        }
        map
    }
}

/// The result of feeding bytes to [`parse_request_head`].
// The head is moved once, straight to the worker; boxing it would cost an allocation per
// request to save a copy of a few hundred bytes.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Parse {
    /// Not a whole head yet, and still within the limits: read more.
    Partial,
    Complete(RequestHead),
}

/// Why a request head is refused. Each maps to one status code; the connection is closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestError {
    /// 400: malformed syntax or framing; the text says which rule.
    BadRequest(&'static str),
    /// 414: the request-target is longer than [`MAX_URI_BYTES`].
    UriTooLong,
    /// 431: the head is larger than [`MAX_HEAD_BYTES`] or has more than [`MAX_HEADERS`] fields.
    HeadersTooLarge,
    /// 501: a transfer-coding other than `chunked`.
    UnknownTransferCoding,
    /// 505: not HTTP/1.0 or HTTP/1.1.
    VersionNotSupported,
    /// 417: an expectation other than `100-continue`.
    ExpectationFailed,
    /// 405: `CONNECT` (tunnelling) is not offered.
    MethodNotAllowed,
    /// 408: the head did not arrive within the header timeout (decided by the caller).
    HeadTimeout,
}

impl RequestError {
    pub fn status(&self) -> u16 {
        match self {
            Self::BadRequest(_) => 400,
            Self::UriTooLong => 414,
            Self::HeadersTooLarge => 431,
            Self::UnknownTransferCoding => 501,
            Self::VersionNotSupported => 505,
            Self::ExpectationFailed => 417,
            Self::MethodNotAllowed => 405,
            Self::HeadTimeout => 408,
        }
    }
}

impl std::fmt::Display for RequestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::BadRequest(why) => f.write_str(why),
            Self::UriTooLong => write!(f, "request-target longer than {MAX_URI_BYTES} bytes"),
            Self::HeadersTooLarge => write!(
                f,
                "request head larger than {MAX_HEAD_BYTES} bytes or {MAX_HEADERS} fields"
            ),
            Self::UnknownTransferCoding => write!(f, "transfer-coding other than chunked"),
            Self::VersionNotSupported => write!(f, "only HTTP/1.0 and HTTP/1.1 are supported"),
            Self::ExpectationFailed => write!(f, "only the 100-continue expectation is supported"),
            Self::MethodNotAllowed => write!(f, "CONNECT is not supported"),
            Self::HeadTimeout => write!(f, "request head not received in time"),
        }
    }
}

impl std::error::Error for RequestError {}

/// Parses the request head at the start of `buf`.
///
/// The caller reads until this returns `Complete` or an error, and must not let `buf` grow
/// past [`MAX_HEAD_BYTES`]: a partial head of that size is answered here with 431 (or 414).
pub fn parse_request_head(buf: &[u8]) -> Result<Parse, RequestError> {
    let mut storage = [const { MaybeUninit::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let parsed = httparse::ParserConfig::default().parse_request_with_uninit_headers(
        &mut req,
        buf,
        &mut storage,
    );
    let head_len = match parsed {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return partial(buf),
        Err(e) => return Err(map_httparse_error(e, buf)),
    };
    if head_len > MAX_HEAD_BYTES {
        return Err(RequestError::HeadersTooLarge);
    }
    check_line_endings(&buf[..head_len])?;

    let version = match req.version {
        Some(0) => Version::Http10,
        Some(1) => Version::Http11,
        _ => return Err(RequestError::VersionNotSupported),
    };
    let raw_target = req.path.unwrap_or_default();
    if raw_target.len() > MAX_URI_BYTES {
        return Err(RequestError::UriTooLong);
    }
    let method = Method::from_bytes(req.method.unwrap_or_default().as_bytes())
        .map_err(|_| RequestError::BadRequest("invalid method"))?;
    if method == Method::CONNECT {
        return Err(RequestError::MethodNotAllowed);
    }

    // httparse has checked every name is a token and every value holds only visible bytes,
    // spaces and tabs (RFC 9110 §5.1, §5.5).
    let field_index = FieldIndex::of(buf, req.headers);
    let fields = field_index.view(buf);

    let (target, target_host) = split_target(&method, raw_target)?;
    let host = request_host(fields, version, target_host)?;
    let framing = body_framing(fields, version)?;
    let keep_alive = wants_keep_alive(fields, version);
    let expect_continue = expects_continue(fields, version)?;

    Ok(Parse::Complete(RequestHead {
        method,
        target,
        version,
        raw: buf[..head_len].into(),
        field_index,
        framing,
        keep_alive,
        expect_continue,
        host,
        head_len,
    }))
}

/// A partial head is fine while it can still become a legal one.
fn partial(buf: &[u8]) -> Result<Parse, RequestError> {
    let line_end = buf.iter().position(|&b| b == b'\n');
    if line_end.is_none() && buf.len() > MAX_URI_BYTES + 64 {
        // Still inside the request line: whatever else it is, the target is too long.
        return Err(RequestError::UriTooLong);
    }
    if buf.len() >= MAX_HEAD_BYTES {
        return Err(RequestError::HeadersTooLarge);
    }
    Ok(Parse::Partial)
}

fn map_httparse_error(e: httparse::Error, buf: &[u8]) -> RequestError {
    match e {
        httparse::Error::TooManyHeaders => RequestError::HeadersTooLarge,
        httparse::Error::Version => {
            // "HTTP/2.0", "HTTP/3" or the HTTP/2 preface: a real version we do not speak;
            // anything else in that place is just garbage.
            let line = buf.split(|&b| b == b'\n').next().unwrap_or_default();
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let parts: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
            if parts.len() == 3 && parts[2].starts_with(b"HTTP/") {
                RequestError::VersionNotSupported
            } else {
                RequestError::BadRequest("invalid HTTP version")
            }
        }
        httparse::Error::HeaderName => RequestError::BadRequest("invalid header name"),
        httparse::Error::HeaderValue => RequestError::BadRequest("invalid header value"),
        httparse::Error::NewLine => RequestError::BadRequest("invalid line ending"),
        httparse::Error::Token => RequestError::BadRequest("invalid token in request line"),
        httparse::Error::Status => RequestError::BadRequest("invalid request line"),
    }
}

/// RFC 9112 §2.2: every line must end in CRLF. httparse accepts a bare LF; a bare CR inside a
/// value would be read as a line break by some backends. Both are refused.
fn check_line_endings(head: &[u8]) -> Result<(), RequestError> {
    // httparse has refused any CR not followed by LF, so as many CRs as LFs means every LF
    // has its CR. Counted in one branch-free pass; only a bad head is looked at closely.
    let (mut cr, mut lf) = (0u32, 0u32);
    for &b in head {
        cr += u32::from(b == b'\r');
        lf += u32::from(b == b'\n');
    }
    if cr == lf {
        return Ok(());
    }
    for i in memchr::memchr2_iter(b'\r', b'\n', head) {
        match head[i] {
            b'\n' if i == 0 || head[i - 1] != b'\r' => {
                return Err(RequestError::BadRequest("bare LF in request head"))
            }
            b'\r' if head.get(i + 1) != Some(&b'\n') => {
                return Err(RequestError::BadRequest("bare CR in request head"))
            }
            _ => {}
        }
    }
    Ok(())
}

/// Origin form stays as is; absolute form is split into path and authority (§3.2.2);
/// asterisk form is only for OPTIONS (§3.2.4).
fn split_target(method: &Method, raw: &str) -> Result<(String, Option<String>), RequestError> {
    if raw.starts_with('/') {
        return Ok((raw.to_owned(), None));
    }
    if raw == "*" {
        return if method == Method::OPTIONS {
            Ok((raw.to_owned(), None))
        } else {
            Err(RequestError::BadRequest(
                "asterisk-form target on a method other than OPTIONS",
            ))
        };
    }
    let lower = raw.get(..8).unwrap_or(raw).to_ascii_lowercase();
    let rest = if lower.starts_with("http://") {
        &raw[7..]
    } else if lower.starts_with("https://") {
        &raw[8..]
    } else {
        return Err(RequestError::BadRequest("invalid request-target"));
    };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains('@') {
        return Err(RequestError::BadRequest(
            "invalid authority in request-target",
        ));
    }
    let path = if path.starts_with('?') {
        format!("/{path}")
    } else {
        path.to_owned()
    };
    Ok((path, Some(authority.to_owned())))
}

/// §3.2: an HTTP/1.1 request has exactly one Host; with an absolute-form target the target's
/// authority wins.
fn request_host(
    fields: Fields<'_>,
    version: Version,
    target_host: Option<String>,
) -> Result<Option<String>, RequestError> {
    let mut values = fields.all("host");
    let first = values.next();
    if values.next().is_some() {
        return Err(RequestError::BadRequest("more than one Host header"));
    }
    let sent = match first {
        // Visible ASCII only: obs-text has no place in a host name.
        Some(v) => match std::str::from_utf8(v) {
            Ok(host) if host.is_ascii() => Some(host.to_owned()),
            _ => return Err(RequestError::BadRequest("invalid Host header")),
        },
        None if version == Version::Http11 && target_host.is_none() => {
            return Err(RequestError::BadRequest("missing Host header"))
        }
        None => None,
    };
    Ok(target_host.or(sent))
}

/// §6.1–§6.3: how long the body is.
fn body_framing(fields: Fields<'_>, version: Version) -> Result<BodyFraming, RequestError> {
    let has_te = fields.get("transfer-encoding").is_some();
    let length = content_length(fields)?;
    if has_te {
        if length.is_some() {
            return Err(RequestError::BadRequest(
                "both Content-Length and Transfer-Encoding",
            ));
        }
        if version == Version::Http10 {
            return Err(RequestError::BadRequest(
                "Transfer-Encoding in an HTTP/1.0 request",
            ));
        }
        return transfer_codings(fields).map(|()| BodyFraming::Chunked);
    }
    Ok(match length {
        None | Some(0) => BodyFraming::None,
        Some(n) => BodyFraming::Length(n),
    })
}

/// All Content-Length values (several fields, or a comma list) must be the same number.
fn content_length(fields: Fields<'_>) -> Result<Option<u64>, RequestError> {
    let mut found: Option<u64> = None;
    for value in fields.all("content-length") {
        for item in value.split(|&b| b == b',') {
            let n = parse_decimal(trim_ows(item))
                .ok_or(RequestError::BadRequest("invalid Content-Length"))?;
            match found {
                Some(m) if m != n => {
                    return Err(RequestError::BadRequest("differing Content-Length values"))
                }
                _ => found = Some(n),
            }
        }
    }
    Ok(found)
}

/// The list of transfer-codings must be exactly one `chunked`, last.
fn transfer_codings(fields: Fields<'_>) -> Result<(), RequestError> {
    let mut codings = 0;
    let mut chunked = 0;
    let mut last_is_chunked = false;
    for value in fields.all("transfer-encoding") {
        for item in value.split(|&b| b == b',') {
            let coding = trim_ows(item);
            // Parameters (";q=...") are not part of the coding name.
            let name = coding.split(|&b| b == b';').next().unwrap_or_default();
            let name = trim_ows(name);
            if name.is_empty() {
                return Err(RequestError::BadRequest("empty transfer-coding"));
            }
            codings += 1;
            last_is_chunked = name.eq_ignore_ascii_case(b"chunked");
            chunked += usize::from(last_is_chunked);
        }
    }
    if !last_is_chunked {
        return Err(RequestError::BadRequest(
            "final transfer-coding is not chunked",
        ));
    }
    if chunked > 1 {
        return Err(RequestError::BadRequest("chunked applied more than once"));
    }
    if codings > 1 {
        return Err(RequestError::UnknownTransferCoding);
    }
    Ok(())
}

/// §9.3: 1.1 is persistent unless `close`; 1.0 only with `keep-alive` (and no `close`).
fn wants_keep_alive(fields: Fields<'_>, version: Version) -> bool {
    if connection_lists(fields, "close") {
        return false;
    }
    match version {
        Version::Http11 => true,
        Version::Http10 => connection_lists(fields, "keep-alive"),
    }
}

/// §10.1.1: `100-continue` is the only expectation; a 1.0 client's Expect is ignored.
fn expects_continue(fields: Fields<'_>, version: Version) -> Result<bool, RequestError> {
    let mut wants = false;
    for value in fields.all("expect") {
        if version == Version::Http10 {
            return Ok(false);
        }
        if value.eq_ignore_ascii_case(b"100-continue") {
            wants = true;
        } else {
            return Err(RequestError::ExpectationFailed);
        }
    }
    Ok(wants)
}

/// Whether `name` (lower-case) must not be forwarded: the fixed hop-by-hop fields of
/// RFC 9110 §7.6.1 plus those the message's `Connection` header lists.
pub fn is_hop_by_hop(name: &str, connection_tokens: &[String]) -> bool {
    is_fixed_hop_by_hop(name) || connection_tokens.iter().any(|t| t == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Result<RequestHead, RequestError> {
        match parse_request_head(raw.as_bytes())? {
            Parse::Complete(h) => Ok(h),
            Parse::Partial => panic!("partial: {raw:?}"),
        }
    }

    fn status_of(raw: &str) -> u16 {
        match parse_request_head(raw.as_bytes()) {
            Err(e) => e.status(),
            Ok(Parse::Complete(_)) => 200,
            Ok(Parse::Partial) => 0,
        }
    }

    #[test]
    fn simple_get() {
        let h = parse("GET /a?b=1 HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\nrest").unwrap();
        assert_eq!(h.method, Method::GET);
        assert_eq!(h.target, "/a?b=1");
        assert_eq!(h.version, Version::Http11);
        assert_eq!(h.host.as_deref(), Some("x"));
        assert_eq!(h.framing, BodyFraming::None);
        assert!(h.keep_alive);
        assert!(!h.expect_continue);
        assert_eq!(
            h.head_len,
            "GET /a?b=1 HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n".len()
        );
    }

    #[test]
    fn fed_one_byte_at_a_time_is_partial_until_the_end() {
        let raw = b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n";
        for end in 0..raw.len() {
            assert!(
                matches!(parse_request_head(&raw[..end]), Ok(Parse::Partial)),
                "prefix of {end} bytes"
            );
        }
        let Parse::Complete(h) = parse_request_head(raw).unwrap() else {
            panic!()
        };
        assert_eq!(h.framing, BodyFraming::Length(5));
    }

    /// Each case: raw head, expected status (200 = accepted).
    macro_rules! status_cases {
        ($($name:ident: $raw:expr => $status:expr,)*) => {$(
            #[test]
            fn $name() {
                assert_eq!(status_of($raw), $status, "{:?}", $raw);
            }
        )*};
    }

    status_cases! {
        cl_and_te: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n" => 400,
        te_and_cl: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n" => 400,
        differing_cl: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n" => 400,
        same_cl_twice: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n" => 200,
        cl_list_same: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 3\r\n\r\n" => 200,
        cl_list_differs: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 4\r\n\r\n" => 400,
        cl_negative: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n" => 400,
        cl_plus: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +1\r\n\r\n" => 400,
        cl_hex: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x10\r\n\r\n" => 400,
        cl_empty: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: \r\n\r\n" => 400,
        cl_overflow: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999\r\n\r\n" => 400,
        cl_inner_space: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1 2\r\n\r\n" => 400,
        te_gzip_only: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n" => 400,
        te_gzip_chunked: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n" => 501,
        te_chunked_twice: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, chunked\r\n\r\n" => 400,
        te_chunked_two_fields: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n" => 400,
        te_chunked_not_last: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, identity\r\n\r\n" => 400,
        te_chunked_upper: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: CHUNKED\r\n\r\n" => 200,
        te_empty: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: \r\n\r\n" => 400,
        te_http10: "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n" => 400,
        te_xchunked: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: xchunked\r\n\r\n" => 400,
        obs_fold: "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\r\n b\r\n\r\n" => 400,
        space_before_colon: "GET / HTTP/1.1\r\nHost: h\r\nX-A : a\r\n\r\n" => 400,
        empty_header_name: "GET / HTTP/1.1\r\nHost: h\r\n: a\r\n\r\n" => 400,
        nul_in_value: "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\0b\r\n\r\n" => 400,
        cr_in_value: "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\rb\r\n\r\n" => 400,
        bare_lf_line: "GET / HTTP/1.1\nHost: h\r\n\r\n" => 400,
        bare_lf_end: "GET / HTTP/1.1\r\nHost: h\n\n" => 400,
        missing_host_11: "GET / HTTP/1.1\r\n\r\n" => 400,
        missing_host_10: "GET / HTTP/1.0\r\n\r\n" => 200,
        two_hosts: "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n" => 400,
        http2: "GET / HTTP/2.0\r\nHost: h\r\n\r\n" => 505,
        h2_preface: "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" => 505,
        garbage_version: "GET / FOO/1.1\r\nHost: h\r\n\r\n" => 400,
        connect: "CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n" => 405,
        expect_other: "PUT / HTTP/1.1\r\nHost: h\r\nExpect: 200-ok\r\n\r\n" => 417,
        asterisk_get: "GET * HTTP/1.1\r\nHost: h\r\n\r\n" => 400,
        asterisk_options: "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n" => 200,
        relative_target: "GET foo HTTP/1.1\r\nHost: h\r\n\r\n" => 400,
        space_in_target: "GET /a b HTTP/1.1\r\nHost: h\r\n\r\n" => 400,
    }

    #[test]
    fn too_many_headers_is_431() {
        let mut raw = String::from("GET / HTTP/1.1\r\nHost: h\r\n");
        for i in 0..MAX_HEADERS {
            raw.push_str(&format!("X-{i}: v\r\n"));
        }
        raw.push_str("\r\n");
        assert_eq!(status_of(&raw), 431);
    }

    #[test]
    fn endless_header_line_is_431_at_the_limit() {
        let mut raw = String::from("GET / HTTP/1.1\r\nHost: h\r\nX-Long: ");
        while raw.len() < MAX_HEAD_BYTES - 1 {
            raw.push('a');
        }
        assert_eq!(status_of(&raw), 0, "still partial below the limit");
        raw.push('a');
        assert_eq!(status_of(&raw), 431);
    }

    #[test]
    fn long_target_is_414() {
        let raw = format!(
            "GET /{} HTTP/1.1\r\nHost: h\r\n\r\n",
            "a".repeat(MAX_URI_BYTES)
        );
        assert_eq!(status_of(&raw), 414);
        let partial = format!("GET /{}", "a".repeat(MAX_URI_BYTES + 100));
        assert_eq!(status_of(&partial), 414);
    }

    #[test]
    fn absolute_form_sets_host_and_path() {
        let h = parse("GET http://Example.com:81/p?q HTTP/1.1\r\nHost: other\r\n\r\n").unwrap();
        assert_eq!(h.target, "/p?q");
        assert_eq!(h.host.as_deref(), Some("Example.com:81"));
        let h = parse("GET http://e.com HTTP/1.1\r\n\r\n").unwrap();
        assert_eq!(h.target, "/");
        let h = parse("GET http://e.com?x=1 HTTP/1.1\r\n\r\n").unwrap();
        assert_eq!(h.target, "/?x=1");
        assert_eq!(status_of("GET http://u@e.com/ HTTP/1.1\r\n\r\n"), 400);
    }

    #[test]
    fn keep_alive_rules() {
        assert!(
            !parse("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
                .unwrap()
                .keep_alive
        );
        assert!(!parse("GET / HTTP/1.0\r\n\r\n").unwrap().keep_alive);
        assert!(
            parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
                .unwrap()
                .keep_alive
        );
        let h = parse("GET / HTTP/1.1\r\nHost: h\r\nConnection: X-Foo, close\r\n\r\n").unwrap();
        assert!(!h.keep_alive);
        assert!(h.connection_lists("x-foo") && h.connection_lists("CLOSE"));
        assert!(!h.connection_lists("host"));
    }

    #[test]
    fn expect_continue() {
        let h =
            parse("PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n");
        assert!(h.unwrap().expect_continue);
        let h = parse("PUT / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n");
        assert!(!h.unwrap().expect_continue);
    }

    #[test]
    fn framing_values() {
        let h = parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n").unwrap();
        assert_eq!(h.framing, BodyFraming::None);
        let h = parse("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap();
        assert_eq!(h.framing, BodyFraming::Chunked);
    }

    #[test]
    fn hop_by_hop_names() {
        let tokens = vec!["x-secret".to_owned()];
        for name in [
            "connection",
            "keep-alive",
            "te",
            "trailer",
            "transfer-encoding",
            "upgrade",
        ] {
            assert!(is_hop_by_hop(name, &[]), "{name}");
        }
        assert!(is_hop_by_hop("proxy-connection", &[]));
        assert!(is_hop_by_hop("x-secret", &tokens));
        assert!(!is_hop_by_hop("x-forwarded-for", &tokens));
        assert!(!is_hop_by_hop("content-length", &tokens));
    }
}
