//! The worker's side of the GET cache (`-cache`): look up before a backend is chosen, answer
//! hits, and fill on misses while relaying.
//!
//! The rules (what is stored, for how long, keys, `Vary`, collapsed forwarding) live in
//! `crate::cache`; this module only connects them to a request and a response: a hit is
//! written with `Age` and `X-Cache: HIT`, a response that went to a backend carries
//! `X-Cache: MISS`, and a non-GET/HEAD request invalidates the URL it names.

use std::io::Write;

use http::{HeaderMap, HeaderName, HeaderValue, Method};

use super::relay::{connection_tokens, Capture};
use super::stream::ClientStream;
use super::Shared;
use crate::cache::{CachedResponse, FillTicket, Lookup, Storable};
use crate::http1::request::is_hop_by_hop;
use crate::http1::response::{write_head, ResponseFraming};
use crate::http1::RequestHead;

/// What the cache says about a request before it is forwarded.
pub(crate) enum Step {
    /// No cache, or a method the cache has nothing to do with.
    Bypass,
    /// A stored response answers it.
    Hit(CachedResponse),
    /// Forward it; with a ticket, the response may be stored (and others wait for it).
    Miss(Option<FillTicket>),
}

/// Looks the request up (GET and HEAD); waits for a concurrent fetch of the same URL.
pub(crate) fn lookup(shared: &Shared, head: &RequestHead) -> Step {
    let Some(cache) = &shared.cache else {
        return Step::Bypass;
    };
    if head.method != Method::GET && head.method != Method::HEAD {
        return Step::Bypass;
    }
    let host = head.host.as_deref().unwrap_or_default();
    let wait = shared.config.response_timeout;
    match cache.lookup(
        &head.method,
        shared.proto,
        host,
        &head.target,
        &head.headers,
        wait,
    ) {
        Lookup::Hit(response) => Step::Hit(response),
        Lookup::Miss(ticket) => Step::Miss(ticket),
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

/// Writes a stored response. Returns false if the client could not take it.
pub(crate) fn write_hit(
    stream: &ClientStream,
    head: &RequestHead,
    hit: &CachedResponse,
    keep_alive: bool,
) -> bool {
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
    let mut out = Vec::with_capacity(512 + if head_only { 0 } else { hit.body.len() });
    write_head(
        &mut out,
        hit.status.as_u16(),
        fields,
        framing,
        keep_alive,
        head.version,
    );
    if !head_only {
        out.extend_from_slice(&hit.body);
    }
    let mut stream = stream;
    stream.write_all(&out).is_ok()
}

/// A response on its way to the store: the ticket, its freshness, the head to replay and a
/// copy of the body taken while relaying.
pub(crate) struct Fill {
    ticket: FillTicket,
    storable: Storable,
    headers: Vec<(HeaderName, HeaderValue)>,
    pub(crate) capture: Capture,
}

impl Fill {
    /// Starts filling if the response head allows storing; otherwise the ticket is dropped
    /// at once so that nobody waits for a response that will not be stored.
    pub(crate) fn start(
        ticket: Option<FillTicket>,
        response: &http::Response<ureq::Body>,
    ) -> Option<Fill> {
        let ticket = ticket?;
        let storable = match ticket.storable(response.status(), response.headers()) {
            Ok(storable) => storable,
            Err(why) => {
                log::debug!("not cached: {why}");
                return None;
            }
        };
        let capture = Capture::new(ticket.max_body());
        let headers = end_to_end(response.headers());
        Some(Fill {
            ticket,
            storable,
            headers,
            capture,
        })
    }

    /// Stores what was captured, if the whole body was.
    pub(crate) fn finish(self) {
        if self.capture.overflowed {
            return;
        }
        if let Err(why) = self
            .ticket
            .store(self.storable, self.headers, self.capture.body)
        {
            log::debug!("not cached: {why}");
        }
    }
}

/// The response fields worth replaying from the store: hop-by-hop ones never are.
fn end_to_end(headers: &HeaderMap) -> Vec<(HeaderName, HeaderValue)> {
    let tokens = connection_tokens(headers);
    headers
        .iter()
        .filter(|(name, _)| !is_hop_by_hop(name.as_str(), &tokens))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect()
}
