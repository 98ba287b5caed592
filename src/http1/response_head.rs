//! Parsing a backend's response head: its status, how its body is delimited (RFC 9112 §6.3)
//! and whether the upstream connection may carry another request afterwards (§9.3).
//!
//! [`parse_response_head`] takes the bytes read from the backend so far and answers `None`
//! (read more), a [`ResponseHead`], or a [`ResponseError`]. Every error means the response
//! cannot be framed or trusted: the client gets 502 and the upstream connection is closed. A
//! 1xx head comes back like any other (its status tells); the caller reads on for the final
//! one. Writing the head for the client is [`response`](super::response)'s job, from the
//! same bytes and the [`FieldIndex`] kept here: the head is parsed once.
//!
//! The rules, each with the section it implements:
//! - bare LF line endings are accepted (§2.2 lets a recipient; the head is re-emitted with
//!   CRLF); a bare CR, obs-fold (§5.2) or whitespace before a colon (§5.1) is an error;
//! - a status code below 100 is an error (RFC 9110 §15); 600–999 pass as unknown codes;
//! - no body after HEAD, 1xx, 204 and 304, whatever the fields say (§6.3 item 1);
//! - `Transfer-Encoding: chunked` is decoded (§6.3 item 3); any other transfer-coding is an
//!   error, because only `chunked` is decoded here and Transfer-Encoding is hop-by-hop: the
//!   client would receive a body still coded with no field saying so;
//! - Transfer-Encoding in an HTTP/1.0 response: error (§6.1, the framing is faulty);
//! - Transfer-Encoding with Content-Length: Transfer-Encoding wins and the connection is not
//!   reused (§6.3 item 3, §6.1);
//! - a Content-Length that is not one decimal number, or values that differ: error (§6.3
//!   item 5: a proxy discards the response and answers 502);
//! - with neither, the body runs until the backend closes (§6.3 item 8).

use std::mem::MaybeUninit;
use std::ops::Range;

use super::field_index::{span_of, FieldIndex, Fields};
use super::fields::{list_contains, list_items, parse_decimal, trim_ows, ConnectionFields};
use super::limits::{MAX_RESPONSE_HEADERS, MAX_RESPONSE_HEAD_BYTES};
use super::request::Version;
use super::response::ResponseFraming;

/// How a backend's response body is delimited on the upstream connection (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamFraming {
    /// No body follows: the request was HEAD, or the status is 1xx, 204 or 304.
    NoBody,
    /// Exactly this many bytes follow (possibly 0).
    Length(u64),
    /// `Transfer-Encoding: chunked`: decode with [`ChunkedDecoder`](super::ChunkedDecoder).
    Chunked,
    /// The body ends when the backend closes the connection.
    UntilClose,
}

/// A parsed, validated response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    pub version: Version,
    /// Bytes of the head, blank line included: where the body starts.
    pub head_len: usize,
    pub framing: UpstreamFraming,
    /// Whether the upstream connection may carry another request once this response's body
    /// has been read. Always false for `101 Switching Protocols` (the connection becomes a
    /// tunnel), a close-delimited body, and Transfer-Encoding sent with Content-Length. On
    /// another 1xx it describes only that interim head: the final head decides.
    pub keep_alive: bool,
    /// The backend's Content-Length when valid and not overridden by Transfer-Encoding. On a
    /// response to HEAD or a 304 it is the size the body would have had, worth passing on
    /// (RFC 9110 §8.6); an invalid one there is ignored, as no body depends on it.
    pub content_length: Option<u64>,
    /// `Connection` lists `upgrade` (RFC 9110 §7.8).
    pub connection_upgrade: bool,
    /// Where the reason phrase lies in the head bytes; see [`reason`](Self::reason).
    pub reason_span: Range<usize>,
    /// Every field as received, as offsets into the head bytes; see
    /// [`fields`](Self::fields).
    pub field_index: FieldIndex,
}

impl ResponseHead {
    /// A 1xx interim response: a final one follows on the same connection (except after 101).
    pub fn is_informational(&self) -> bool {
        (100..200).contains(&self.status)
    }

    /// The fields, read from the head bytes this was parsed from.
    pub fn fields<'a>(&'a self, raw_head: &'a [u8]) -> Fields<'a> {
        self.field_index.view(raw_head)
    }

    /// The reason phrase as received (often empty), from the head bytes this was parsed from.
    pub fn reason<'a>(&self, raw_head: &'a [u8]) -> &'a [u8] {
        raw_head.get(self.reason_span.clone()).unwrap_or_default()
    }

    /// The value of the first `Upgrade` field, from the head bytes this was parsed from.
    pub fn upgrade<'a>(&'a self, raw_head: &'a [u8]) -> Option<&'a [u8]> {
        self.fields(raw_head).get("upgrade")
    }

    /// A `101` that switches to WebSocket, as RFC 6455 §4.2.2 requires it: `Connection:
    /// upgrade` and `Upgrade: websocket`. Any other 101 is not one the proxy asked for.
    pub fn switches_to_websocket(&self, raw_head: &[u8]) -> bool {
        self.status == 101
            && self.connection_upgrade
            && self
                .upgrade(raw_head)
                .is_some_and(|v| list_contains(v, "websocket"))
    }

    /// How the body goes to a client speaking `client_version`: a known length as is, an
    /// unknown one chunked to HTTP/1.1 and close-delimited to HTTP/1.0 (which has no chunked
    /// coding, RFC 9112 §7.1). Content-Length is passed on for HEAD and 304 only: 1xx and 204
    /// must not carry one (RFC 9110 §8.6).
    pub fn client_framing(&self, client_version: Version) -> ResponseFraming {
        match self.framing {
            UpstreamFraming::NoBody => ResponseFraming::NoBody {
                content_length: if self.is_informational() || self.status == 204 {
                    None
                } else {
                    self.content_length
                },
            },
            UpstreamFraming::Length(n) => ResponseFraming::Length(n),
            UpstreamFraming::Chunked | UpstreamFraming::UntilClose => match client_version {
                Version::Http11 => ResponseFraming::Chunked,
                Version::Http10 => ResponseFraming::UntilClose,
            },
        }
    }
}

/// Why a backend's response head is refused. Each one is answered with 502 and the upstream
/// connection is closed: what follows on it cannot be framed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseError {
    /// Not an HTTP/1.x status line and header section; the text says which part.
    Malformed(&'static str),
    /// A field line starting with whitespace: obs-fold (RFC 9112 §5.2) or whitespace after
    /// the status line (§2.2).
    ObsFold,
    /// Larger than [`MAX_RESPONSE_HEAD_BYTES`] or more than [`MAX_RESPONSE_HEADERS`] fields.
    HeadTooLarge,
    /// A status code below 100.
    InvalidStatus(u16),
    /// A Content-Length that is not a decimal number.
    InvalidContentLength,
    /// Content-Length values that differ.
    DifferingContentLength,
    /// A transfer-coding other than exactly `chunked`.
    UnsupportedTransferCoding,
    /// Transfer-Encoding in an HTTP/1.0 response.
    TransferEncodingHttp10,
}

impl std::fmt::Display for ResponseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("upstream response: ")?;
        match self {
            Self::Malformed(why) => f.write_str(why),
            Self::ObsFold => f.write_str("field line starting with whitespace (obs-fold)"),
            Self::HeadTooLarge => write!(
                f,
                "head larger than {MAX_RESPONSE_HEAD_BYTES} bytes or {MAX_RESPONSE_HEADERS} fields"
            ),
            Self::InvalidStatus(code) => write!(f, "invalid status code {code}"),
            Self::InvalidContentLength => f.write_str("invalid Content-Length"),
            Self::DifferingContentLength => f.write_str("differing Content-Length values"),
            Self::UnsupportedTransferCoding => f.write_str("transfer-coding other than chunked"),
            Self::TransferEncodingHttp10 => {
                f.write_str("Transfer-Encoding in an HTTP/1.0 response")
            }
        }
    }
}

impl std::error::Error for ResponseError {}

/// Parses the response head at the start of `buf`; `None`: not complete yet, read more.
///
/// `request_was_head`: the request was HEAD, so no body follows whatever the head says. The
/// caller must not let `buf` grow past [`MAX_RESPONSE_HEAD_BYTES`] before a head completes:
/// a partial head of that size is an error here.
pub fn parse_response_head(
    buf: &[u8],
    request_was_head: bool,
) -> Result<Option<ResponseHead>, ResponseError> {
    let mut storage = [const { MaybeUninit::uninit() }; MAX_RESPONSE_HEADERS];
    let mut response = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut response,
        buf,
        &mut storage,
    );
    let head_len = match parsed {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_RESPONSE_HEAD_BYTES => {
            return Err(ResponseError::HeadTooLarge)
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(map_httparse_error(e, buf)),
    };
    if head_len > MAX_RESPONSE_HEAD_BYTES {
        return Err(ResponseError::HeadTooLarge);
    }
    let version = match response.version {
        Some(0) => Version::Http10,
        Some(1) => Version::Http11,
        // httparse reads only HTTP/1.0 and HTTP/1.1 status lines.
        _ => return Err(ResponseError::Malformed("invalid version")),
    };
    let status = response.code.unwrap_or_default();
    if status < 100 {
        return Err(ResponseError::InvalidStatus(status));
    }
    let field_index = FieldIndex::of(buf, response.headers);
    let fields = field_index.view(buf);
    let reason_span = span_of(buf, response.reason.unwrap_or_default().as_bytes());

    let no_body =
        request_was_head || (100..200).contains(&status) || status == 204 || status == 304;
    let transfer = transfer_coding(fields);
    let has_length = fields.get("content-length").is_some();
    let (framing, content_length) = if no_body {
        // §6.3 item 1: no body, whatever the fields say; a Content-Length is only information.
        let length = match transfer {
            Some(_) => None,
            None => content_length(fields).ok().flatten(),
        };
        (UpstreamFraming::NoBody, length)
    } else {
        match transfer {
            Some(_) if version == Version::Http10 => {
                return Err(ResponseError::TransferEncodingHttp10)
            }
            Some(Coding::Chunked) => (UpstreamFraming::Chunked, None),
            Some(Coding::Other) => return Err(ResponseError::UnsupportedTransferCoding),
            None => match content_length(fields)? {
                Some(n) => (UpstreamFraming::Length(n), Some(n)),
                None => (UpstreamFraming::UntilClose, None),
            },
        }
    };

    let connection = ConnectionFields::of(fields);
    let persistent =
        !connection.list("close") && (version == Version::Http11 || connection.list("keep-alive"));
    let keep_alive = persistent
        && status != 101
        && framing != UpstreamFraming::UntilClose
        && !(transfer.is_some() && has_length);
    let connection_upgrade = connection.list("upgrade");
    Ok(Some(ResponseHead {
        status,
        version,
        head_len,
        framing,
        keep_alive,
        content_length,
        connection_upgrade,
        reason_span,
        field_index,
    }))
}

/// What the Transfer-Encoding fields ask for, when there are any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Coding {
    /// Exactly one coding, `chunked`.
    Chunked,
    /// Anything else: another coding, `chunked` twice or not last, or an empty list.
    Other,
}

fn transfer_coding(fields: Fields<'_>) -> Option<Coding> {
    let mut codings = fields.all("transfer-encoding").peekable();
    codings.peek()?;
    let mut items = codings.flat_map(list_items);
    let only_chunked = items.next().is_some_and(|c| {
        // Parameters (";q=...") are not part of the coding's name (RFC 9110 §10.1.4).
        let name = c.split(|&b| b == b';').next().unwrap_or_default();
        trim_ows(name).eq_ignore_ascii_case(b"chunked")
    }) && items.next().is_none();
    Some(if only_chunked {
        Coding::Chunked
    } else {
        Coding::Other
    })
}

/// All Content-Length values (several fields, or a comma list) must be the same number
/// (RFC 9112 §6.3 item 5, RFC 9110 §8.6).
fn content_length(fields: Fields<'_>) -> Result<Option<u64>, ResponseError> {
    let mut found: Option<u64> = None;
    for value in fields.all("content-length") {
        for item in value.split(|&b| b == b',') {
            let n = parse_decimal(trim_ows(item)).ok_or(ResponseError::InvalidContentLength)?;
            match found {
                Some(m) if m != n => return Err(ResponseError::DifferingContentLength),
                _ => found = Some(n),
            }
        }
    }
    Ok(found)
}

fn map_httparse_error(e: httparse::Error, buf: &[u8]) -> ResponseError {
    match e {
        httparse::Error::TooManyHeaders => ResponseError::HeadTooLarge,
        httparse::Error::HeaderName if starts_a_line_with_whitespace(buf) => ResponseError::ObsFold,
        httparse::Error::HeaderName => ResponseError::Malformed("invalid field name"),
        httparse::Error::HeaderValue => ResponseError::Malformed("invalid field value"),
        httparse::Error::NewLine => ResponseError::Malformed("invalid line ending"),
        httparse::Error::Version => ResponseError::Malformed("not an HTTP/1.x status line"),
        httparse::Error::Status | httparse::Error::Token => {
            ResponseError::Malformed("invalid status line")
        }
    }
}

/// httparse reports obs-fold as a bad field name; this tells the two apart for the log. Only
/// lines before the end of the head (the first empty line) count.
fn starts_a_line_with_whitespace(buf: &[u8]) -> bool {
    let head = &buf[..buf.len().min(MAX_RESPONSE_HEAD_BYTES)];
    head.split(|&b| b == b'\n')
        .skip(1)
        .take_while(|line| !line.is_empty() && *line != b"\r")
        .any(|line| matches!(line.first(), Some(b' ' | b'\t')))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `raw` whole and fed one byte at a time; both must agree.
    fn parse(raw: &str, request_was_head: bool) -> Result<ResponseHead, ResponseError> {
        let raw = raw.as_bytes();
        let whole = parse_response_head(raw, request_was_head);
        let mut bytewise = Ok(None);
        for end in 1..=raw.len() {
            bytewise = parse_response_head(&raw[..end], request_was_head);
            if !matches!(bytewise, Ok(None)) {
                break;
            }
        }
        assert_eq!(whole, bytewise, "{raw:?}");
        whole.map(|h| h.unwrap_or_else(|| panic!("partial: {raw:?}")))
    }

    use UpstreamFraming::{Chunked, Length, NoBody, UntilClose};

    /// Each case: raw head, whether the request was HEAD => framing, keep-alive.
    macro_rules! framing_cases {
        ($($name:ident: $raw:expr, $head:expr => $framing:expr, $keep:expr;)*) => {$(
            #[test]
            fn $name() {
                let h = parse($raw, $head).unwrap();
                assert_eq!((h.framing, h.keep_alive), ($framing, $keep), "{:?}", $raw);
            }
        )*};
    }

    framing_cases! {
        length: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", false => Length(5), true;
        length_zero: "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false => Length(0), true;
        length_same_twice: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\ncontent-length: 5, 5\r\n\r\n", false => Length(5), true;
        chunked: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false => Chunked, true;
        chunked_upper: "HTTP/1.1 200 OK\r\nTransfer-Encoding: CHUNKED\r\n\r\n", false => Chunked, true;
        chunked_empty_items: "HTTP/1.1 200 OK\r\nTransfer-Encoding: , chunked\r\n\r\n", false => Chunked, true;
        te_wins_over_cl: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", false => Chunked, false;
        te_wins_over_bad_cl: "HTTP/1.1 200 OK\r\nContent-Length: x\r\nTransfer-Encoding: chunked\r\n\r\n", false => Chunked, false;
        until_close: "HTTP/1.1 200 OK\r\nServer: s\r\n\r\n", false => UntilClose, false;
        head_request: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true => NoBody, true;
        head_request_chunked: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", true => NoBody, true;
        head_request_bad_cl: "HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n", true => NoBody, true;
        continue_100: "HTTP/1.1 100 Continue\r\n\r\n", false => NoBody, true;
        early_hints: "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n", false => NoBody, true;
        switching: "HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n", false => NoBody, false;
        no_content: "HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n", false => NoBody, true;
        not_modified: "HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n", false => NoBody, true;
        close_token: "HTTP/1.1 200 OK\r\nConnection: Close\r\nContent-Length: 1\r\n\r\n", false => Length(1), false;
        close_among_tokens: "HTTP/1.1 200 OK\r\nConnection: x-a\r\nConnection: keep-alive, close\r\nContent-Length: 1\r\n\r\n", false => Length(1), false;
        http10_plain: "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", false => Length(1), false;
        http10_keep_alive: "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 1\r\n\r\n", false => Length(1), true;
        http10_until_close: "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n", false => UntilClose, false;
        bare_lf: "HTTP/1.1 200 OK\nContent-Length: 2\n\nhi", false => Length(2), true;
        no_reason: "HTTP/1.1 200\r\nContent-Length: 2\r\n\r\n", false => Length(2), true;
        leading_empty_line: "\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n", false => Length(2), true;
        code_999: "HTTP/1.1 999 Custom\r\nContent-Length: 2\r\n\r\n", false => Length(2), true;
    }

    macro_rules! error_cases {
        ($($name:ident: $raw:expr => $err:expr,)*) => {$(
            #[test]
            fn $name() {
                assert_eq!(parse($raw, false), Err($err), "{:?}", $raw);
            }
        )*};
    }

    error_cases! {
        differing_cl: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n" => ResponseError::DifferingContentLength,
        differing_cl_list: "HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n" => ResponseError::DifferingContentLength,
        cl_negative: "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n" => ResponseError::InvalidContentLength,
        cl_hex: "HTTP/1.1 200 OK\r\nContent-Length: 0x5\r\n\r\n" => ResponseError::InvalidContentLength,
        cl_empty: "HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n" => ResponseError::InvalidContentLength,
        cl_empty_item: "HTTP/1.1 200 OK\r\nContent-Length: 5,\r\n\r\n" => ResponseError::InvalidContentLength,
        cl_overflow: "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n" => ResponseError::InvalidContentLength,
        cl_inner_space: "HTTP/1.1 200 OK\r\nContent-Length: 1 2\r\n\r\n" => ResponseError::InvalidContentLength,
        te_gzip: "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n" => ResponseError::UnsupportedTransferCoding,
        te_gzip_chunked: "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n" => ResponseError::UnsupportedTransferCoding,
        te_chunked_twice: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n" => ResponseError::UnsupportedTransferCoding,
        te_empty: "HTTP/1.1 200 OK\r\nTransfer-Encoding: \r\n\r\n" => ResponseError::UnsupportedTransferCoding,
        te_http10: "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" => ResponseError::TransferEncodingHttp10,
        obs_fold: "HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 0\r\n\r\n" => ResponseError::ObsFold,
        obs_fold_tab: "HTTP/1.1 200 OK\nX-A: a\n\tb\n\n" => ResponseError::ObsFold,
        space_after_status_line: "HTTP/1.1 200 OK\r\n X-A: a\r\n\r\n" => ResponseError::ObsFold,
        space_before_colon: "HTTP/1.1 200 OK\r\nX-A : a\r\n\r\n" => ResponseError::Malformed("invalid field name"),
        bare_cr_in_value: "HTTP/1.1 200 OK\r\nX-A: a\rb\r\n\r\n" => ResponseError::Malformed("invalid field value"),
        bare_cr_in_reason: "HTTP/1.1 200 O\rK\r\n\r\n" => ResponseError::Malformed("invalid status line"),
        nul_in_value: "HTTP/1.1 200 OK\r\nX-A: a\0b\r\n\r\n" => ResponseError::Malformed("invalid field value"),
        http2: "HTTP/2 200\r\n\r\n" => ResponseError::Malformed("not an HTTP/1.x status line"),
        not_http: "SSH-2.0-OpenSSH\r\n\r\n" => ResponseError::Malformed("not an HTTP/1.x status line"),
        two_digit_status: "HTTP/1.1 20 OK\r\n\r\n" => ResponseError::Malformed("invalid status line"),
        status_zero: "HTTP/1.1 000 Zero\r\n\r\n" => ResponseError::InvalidStatus(0),
        status_99: "HTTP/1.1 099 Low\r\nContent-Length: 0\r\n\r\n" => ResponseError::InvalidStatus(99),
    }

    #[test]
    fn every_prefix_is_partial_and_the_body_is_not_the_head() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nX-A: b\r\n\r\nbody";
        let head_len = raw.len() - 4;
        for end in 0..head_len {
            assert_eq!(parse_response_head(&raw[..end], false), Ok(None), "{end}");
        }
        for end in head_len..=raw.len() {
            let h = parse_response_head(&raw[..end], false).unwrap().unwrap();
            assert_eq!(h.head_len, head_len);
            assert_eq!(h.status, 200);
            assert_eq!(h.version, Version::Http11);
            assert_eq!(h.content_length, Some(4));
        }
    }

    #[test]
    fn partial_head_at_the_limit_is_refused() {
        let mut raw = b"HTTP/1.1 200 OK\r\nX-Long: ".to_vec();
        raw.resize(MAX_RESPONSE_HEAD_BYTES - 1, b'a');
        assert_eq!(parse_response_head(&raw, false), Ok(None));
        raw.push(b'a');
        assert_eq!(
            parse_response_head(&raw, false),
            Err(ResponseError::HeadTooLarge)
        );
        // Complete, but past the limit.
        raw.extend_from_slice(b"\r\n\r\n");
        assert_eq!(
            parse_response_head(&raw, false),
            Err(ResponseError::HeadTooLarge)
        );
    }

    #[test]
    fn too_many_fields_is_refused() {
        let mut raw = String::from("HTTP/1.1 200 OK\r\n");
        for i in 0..MAX_RESPONSE_HEADERS {
            raw.push_str(&format!("X-{i}: v\r\n"));
        }
        let mut at_limit = raw.clone();
        at_limit.push_str("\r\n");
        assert!(parse_response_head(at_limit.as_bytes(), false).is_ok());
        raw.push_str("X-One-More: v\r\n\r\n");
        assert_eq!(
            parse_response_head(raw.as_bytes(), false),
            Err(ResponseError::HeadTooLarge)
        );
    }

    #[test]
    fn content_length_is_kept_for_head_and_304_only() {
        let cases = [
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n",
                true,
                Some(9),
            ),
            (
                "HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
                false,
                Some(9),
            ),
            (
                "HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n",
                false,
                None,
            ),
            (
                "HTTP/1.1 100 Continue\r\nContent-Length: 9\r\n\r\n",
                false,
                None,
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 9, 8\r\n\r\n",
                true,
                None,
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 9\r\nTransfer-Encoding: chunked\r\n\r\n",
                true,
                None,
            ),
        ];
        for (raw, was_head, want) in cases {
            let h = parse(raw, was_head).unwrap();
            assert_eq!(
                h.client_framing(Version::Http11),
                ResponseFraming::NoBody {
                    content_length: want
                },
                "{raw:?}"
            );
        }
    }

    #[test]
    fn client_framing_follows_the_client_version() {
        let cases = [
            (
                "Content-Length: 3",
                Version::Http10,
                ResponseFraming::Length(3),
            ),
            (
                "Transfer-Encoding: chunked",
                Version::Http11,
                ResponseFraming::Chunked,
            ),
            (
                "Transfer-Encoding: chunked",
                Version::Http10,
                ResponseFraming::UntilClose,
            ),
            ("X-None: 1", Version::Http11, ResponseFraming::Chunked),
            ("X-None: 1", Version::Http10, ResponseFraming::UntilClose),
        ];
        for (field, client, want) in cases {
            let raw = format!("HTTP/1.1 200 OK\r\n{field}\r\n\r\n");
            let h = parse(&raw, false).unwrap();
            assert_eq!(h.client_framing(client), want, "{field} to {client:?}");
        }
    }

    #[test]
    fn switching_protocols_exposes_upgrade() {
        let raw =
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\n\
                   Sec-WebSocket-Accept: x\r\n\r\n";
        let h = parse(raw, false).unwrap();
        assert!(h.is_informational());
        assert!(h.connection_upgrade);
        assert_eq!(h.upgrade(raw.as_bytes()), Some(b"WebSocket".as_slice()));
        assert!(h.switches_to_websocket(raw.as_bytes()));

        let h2c = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n";
        let h = parse(h2c, false).unwrap();
        assert!(!h.switches_to_websocket(h2c.as_bytes()));

        let no_connection = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n";
        let h = parse(no_connection, false).unwrap();
        assert!(!h.connection_upgrade);
        assert!(!h.switches_to_websocket(no_connection.as_bytes()));

        let plain = parse("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false).unwrap();
        assert_eq!(plain.upgrade(b"HTTP/1.1 200 OK\r\n"), None);
        assert!(!plain.is_informational());
    }

    #[test]
    fn errors_read_as_context_and_cause() {
        assert_eq!(
            ResponseError::DifferingContentLength.to_string(),
            "upstream response: differing Content-Length values"
        );
        assert_eq!(
            ResponseError::HeadTooLarge.to_string(),
            format!(
                "upstream response: head larger than {MAX_RESPONSE_HEAD_BYTES} bytes or \
                 {MAX_RESPONSE_HEADERS} fields"
            )
        );
    }
}
