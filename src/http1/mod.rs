//! I/O-free HTTP/1.1 codec for the client side of the proxy.
//!
//! Everything here takes bytes and returns values or "need more": request-head parsing with
//! the framing rules of RFC 9112 ([`request`]), the chunked body decoder ([`chunked`]),
//! response-head writing ([`response`]) and error pages ([`error_page`]). Sockets, buffers
//! and timeouts belong to `server`; every limit is a named constant in [`limits`].

pub mod chunked;
pub mod error_page;
mod fields;
pub mod limits;
pub mod request;
pub mod response;

pub use chunked::{ChunkedDecoder, ChunkedError};
pub use request::{parse_request_head, BodyFraming, Parse, RequestError, RequestHead, Version};
