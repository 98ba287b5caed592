//! Every limit the HTTP/1 codec enforces, on client requests and backend responses, in one
//! place (README.md lists them too).
//!
//! httparse counts headers but not bytes, so the head size is checked by the caller before
//! each read; the rest are checked while parsing.

/// Largest request head (request line + header fields + blank line). Larger: 431, or 414 when
/// the request line alone does not fit in [`MAX_URI_BYTES`].
pub const MAX_HEAD_BYTES: usize = 32 * 1024;

/// Most header fields in one request head. More: 431.
pub const MAX_HEADERS: usize = 100;

/// Longest request-target. Longer: 414.
pub const MAX_URI_BYTES: usize = 8 * 1024;

/// Largest response head a backend may send (status line + header fields + blank line).
/// Larger: the response is refused and the client gets 502.
pub const MAX_RESPONSE_HEAD_BYTES: usize = 32 * 1024;

/// Most header fields in one response head. More: 502.
pub const MAX_RESPONSE_HEADERS: usize = 100;

/// Longest chunk-size line, extensions included (RFC 9112 §7.1.1). Longer: 400.
pub const MAX_CHUNK_LINE_BYTES: usize = 4 * 1024;

/// Largest trailer section of a chunked body (RFC 9112 §7.1.2); trailers are read and dropped.
pub const MAX_TRAILER_BYTES: usize = 16 * 1024;

/// Largest request body read whole before forwarding, so that a failed attempt can be
/// retried on another backend. Larger bodies are streamed and never retried once sent.
pub const MAX_BUFFERED_BODY: usize = 64 * 1024;

/// Size of the per-connection read buffer and of the response copy buffer.
pub const IO_BUFFER_BYTES: usize = 64 * 1024;
