//! The access log: one line per answered request.
//!
//! The event loops fill an [`AccessRecord`] per request (goaround's own answers included);
//! [`format`](mod@format) turns it into a line, NCSA combined plus upstream fields or JSON.
//! Flags, signals and the exported metric belong to their own layers.

pub(crate) mod format;

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use http::{HeaderValue, Method};

use crate::http1::Version;

/// What the server knows about one answered request, filled once when the response is done.
/// Built only when the log is on; the header values are the request's own (cloning one is a
/// reference count, not a copy).
#[derive(Debug, Clone)]
pub(crate) struct AccessRecord {
    /// When the request head was complete (the log's timestamp, as Apache's `%t`).
    pub start: SystemTime,
    pub client_ip: IpAddr,
    pub method: Method,
    /// The request-target as received (origin form, or `*`).
    pub target: String,
    pub version: Version,
    /// The status sent to the client.
    pub status: u16,
    /// Body bytes sent to the client (head excluded); 0 for none.
    pub body_bytes: u64,
    pub referer: Option<HeaderValue>,
    pub user_agent: Option<HeaderValue>,
    /// `Host`, or the authority of an absolute-form target.
    pub host: Option<String>,
    /// The backend that gave the final answer or, after failed attempts, the last one tried
    /// (its base URL, e.g. `http://10.0.0.1:8080`); `None` when no backend was involved
    /// (cache hit, goaround's own error page before choosing one).
    pub upstream: Option<String>,
    /// The status that backend answered; `None` when it answered nothing (refused, timed
    /// out, not HTTP) or there was no backend.
    pub upstream_status: Option<u16>,
    /// From [`start`](Self::start) to the last byte of the response.
    pub duration: Duration,
}

/// The line format: `-access-log-format combined|json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum LogFormat {
    #[default]
    Combined,
    Json,
}

impl LogFormat {
    /// The value of `-access-log-format`; `None` for anything else.
    pub(crate) fn from_flag(value: &str) -> Option<LogFormat> {
        match value {
            "combined" => Some(LogFormat::Combined),
            "json" => Some(LogFormat::Json),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags() {
        assert_eq!(LogFormat::from_flag("combined"), Some(LogFormat::Combined));
        assert_eq!(LogFormat::from_flag("json"), Some(LogFormat::Json));
        assert_eq!(LogFormat::from_flag("JSON"), None);
        assert_eq!(LogFormat::default(), LogFormat::Combined);
    }
}
