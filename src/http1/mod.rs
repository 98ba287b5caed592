//! I/O-free HTTP/1.1 codec for both sides of the proxy.
//!
//! Everything here takes bytes and returns values or "need more". Client side: request-head
//! parsing with the framing rules of RFC 9112 ([`request`]), the chunked body decoder
//! ([`chunked`]), response-head writing ([`response`]) and error pages ([`error_page`]).
//! Backend side: the request head sent upstream ([`forward`]) and response-head parsing
//! ([`response_head`]). Sockets, buffers and timeouts belong to `server`; every limit is a
//! named constant in [`limits`].

pub mod chunked;
pub mod error_page;
mod field_index;
mod fields;
pub mod forward;
pub mod limits;
pub mod request;
pub mod response;
pub mod response_head;

pub use chunked::{ChunkedDecoder, ChunkedError};
pub use forward::{is_websocket_upgrade, write_upstream_head, Forwarding};
pub use request::{parse_request_head, BodyFraming, Parse, RequestError, RequestHead, Version};
pub use response_head::{parse_response_head, ResponseError, ResponseHead, UpstreamFraming};
