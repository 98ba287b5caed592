//! The loop's side of the GET cache (`-cache`): look up before a backend is chosen, answer
//! hits, and fill on misses while relaying.
//!
//! The rules (what is stored, for how long, keys, `Vary`, collapsed forwarding) live in
//! `crate::cache`; this module only connects them to a request and a response: a hit is
//! queued with `Age` and `X-Cache: HIT`, a response that went to a backend carries
//! `X-Cache: MISS`, and a non-GET/HEAD request invalidates the URL it names. A request that
//! waits for another one's fetch is only state: its loop is told through its mailbox when
//! the fetch ends.

use http::{HeaderMap, HeaderName, HeaderValue, Method};

use super::buffer::BufferPool;
use super::session::io::ClientIo;
use super::Shared;
use crate::cache::{CachedResponse, FillTicket, Flight, Lookup, Storable};
use crate::http1::response::{write_head, ResponseFraming};
use crate::http1::RequestHead;
use std::sync::Arc;

/// What the cache says about a request before it is forwarded.
pub(crate) enum Step {
    /// No cache, or a method the cache has nothing to do with.
    Bypass,
    Hit(CachedResponse),
    /// Forward it; with a ticket, the response may be stored (and others wait for it).
    Miss(Option<FillTicket>),
    /// Another request is fetching this URL.
    Wait(Arc<Flight>),
}

/// Looks the request up (GET and HEAD).
pub(crate) fn lookup(shared: &Shared, head: &RequestHead, may_wait: bool) -> Step {
    let Some(cache) = &shared.cache else {
        return Step::Bypass;
    };
    if head.method != Method::GET && head.method != Method::HEAD {
        return Step::Bypass;
    }
    let host = head.host.as_deref().unwrap_or_default();
    match cache.lookup(
        &head.method,
        shared.proto,
        host,
        &head.target,
        &head.header_map(),
        may_wait,
    ) {
        Lookup::Hit(response) => Step::Hit(response),
        Lookup::Miss(ticket) => Step::Miss(ticket),
        Lookup::Wait(flight) => Step::Wait(flight),
    }
}

/// A request that changes state (POST, PUT, DELETE, ...) drops what is stored for its URL.
pub(crate) fn invalidate(shared: &Shared, head: &RequestHead) {
    let Some(cache) = &shared.cache else { return };
    if head.method != Method::GET && head.method != Method::HEAD {
        let host = head.host.as_deref().unwrap_or_default();
        cache.invalidate(shared.proto, host, &head.target);
    }
}

/// Queues a stored response for the client; returns the body bytes it carries.
pub(crate) fn queue_hit(
    io: &mut ClientIo,
    buffers: &mut BufferPool,
    scratch: &mut Vec<u8>,
    head: &RequestHead,
    hit: &CachedResponse,
    keep_alive: bool,
) -> u64 {
    let age = hit.age.as_secs().to_string();
    let fields = hit
        .headers
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_bytes()))
        .chain([("age", age.as_bytes()), ("x-cache", b"HIT".as_slice())]);
    let length = hit.body.len() as u64;
    let head_only = head.method == Method::HEAD;
    let framing = if head_only {
        ResponseFraming::NoBody {
            content_length: Some(length),
        }
    } else {
        ResponseFraming::Length(length)
    };
    scratch.clear();
    write_head(
        scratch,
        hit.status.as_u16(),
        fields,
        framing,
        keep_alive,
        head.version,
    );
    io.queue(buffers, scratch);
    if head_only {
        return 0;
    }
    // A small body is copied behind the head (one write); a large one is sent from the
    // store's own bytes.
    let copied = io.queue(buffers, &hit.body);
    if copied < hit.body.len() {
        io.tail = Some((Arc::clone(&hit.body), copied));
    }
    length
}

/// A response on its way to the store: the ticket, its freshness, the head to replay and a
/// copy of the body taken while relaying.
pub(crate) struct Fill {
    ticket: FillTicket,
    storable: Storable,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Vec<u8>,
    overflowed: bool,
}

impl Fill {
    /// Starts filling if the response head allows storing; otherwise the ticket is dropped
    /// at once so that nobody waits for a response that will not be stored.
    pub(crate) fn start(ticket: FillTicket, status: u16, raw_head: &[u8]) -> Option<Fill> {
        let fields = end_to_end_fields(raw_head);
        let map: HeaderMap = fields.iter().cloned().collect();
        let status = http::StatusCode::from_u16(status).ok()?;
        let storable = match ticket.storable(status, &map) {
            Ok(storable) => storable,
            Err(why) => {
                log::debug!("not cached: {why}");
                return None;
            }
        };
        Some(Fill {
            ticket,
            storable,
            headers: fields,
            body: Vec::new(),
            overflowed: false,
        })
    }

    /// A piece of the body, as relayed; past the object limit the copy is given up.
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        if self.overflowed {
            return;
        }
        if self.body.len() + bytes.len() > self.ticket.max_body() {
            self.overflowed = true;
            self.body = Vec::new();
            return;
        }
        self.body.extend_from_slice(bytes);
    }

    /// Stores what was captured, if the whole body was.
    pub(crate) fn finish(self) {
        if self.overflowed {
            log::debug!("not cached: body larger than -cache-max-object");
            return;
        }
        if let Err(why) = self.ticket.store(self.storable, self.headers, self.body) {
            log::debug!("not cached: {why}");
        }
    }
}

/// The response's fields worth replaying from the store: hop-by-hop ones never are
/// (RFC 9110 §7.6.1), nor those the `Connection` field names.
fn end_to_end_fields(raw_head: &[u8]) -> Vec<(HeaderName, HeaderValue)> {
    let mut fields = [httparse::EMPTY_HEADER; crate::http1::limits::MAX_HEADERS * 2];
    let mut response = httparse::Response::new(&mut fields);
    if response.parse(raw_head).is_err() {
        return Vec::new();
    }
    let tokens: Vec<String> = response
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("connection"))
        .flat_map(|h| {
            String::from_utf8_lossy(h.value)
                .split(',')
                .map(|t| t.trim().to_ascii_lowercase())
                .collect::<Vec<_>>()
        })
        .collect();
    response
        .headers
        .iter()
        .filter_map(|h| {
            let name = HeaderName::from_bytes(h.name.as_bytes()).ok()?;
            let value = HeaderValue::from_bytes(h.value).ok()?;
            Some((name, value))
        })
        .filter(|(name, _)| !crate::http1::request::is_hop_by_hop(name.as_str(), &tokens))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_fields_leave_hop_by_hop_out() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close, X-Hop\r\n\
                    X-Hop: 1\r\nKeep-Alive: 5\r\nTransfer-Encoding: chunked\r\nETag: \"a\"\r\n\r\n";
        let names: Vec<String> = end_to_end_fields(raw)
            .into_iter()
            .map(|(n, _)| n.to_string())
            .collect();
        assert_eq!(names, ["content-type", "etag"]);
    }
}
