//! What a failed attempt means: retry here, retry elsewhere, or give up, with which status,
//! and whether it counts against the backend. One pure function, [`decide`], tested as a
//! table; the event loop only carries out its verdict.
//!
//! The rules (README "Behaviour on failure"):
//! - nothing reached the backend (the connection could not be made): the request goes to
//!   another backend if its body is still at hand; each backend at most once;
//! - the connection was lost before any response byte: an idempotent request (RFC 9110
//!   §9.2.2) whose body is still at hand is sent again, first over a fresh connection to the
//!   same backend when the lost one was a reused keep-alive connection (the backend closed
//!   it as we sent: the stale keep-alive race), then to other backends;
//! - no response head in time: 504; garbage instead of a response: 502; never retried, as
//!   the backend may be acting on the request;
//! - running out of local ports or descriptors is goaround's own trouble: 503, and never
//!   held against the backend.
//!
//! Counting against a backend feeds `-max-fails` (and a config server's `max_fail`); a
//! refused connection also takes the backend out at once, as GoAround's degraded
//! connections did. A single connect *timeout* does not: a backend that is slow to accept
//! under a burst is not dead, and `-max-fails` timeouts in a row still take it out.

/// Why an attempt to get a response failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The backend refused the connection, or its host or network is unreachable.
    ConnectRefused,
    /// The connection was not established within `-connect-timeout`.
    ConnectTimeout,
    /// The TLS handshake with an https backend failed (bad certificate, protocol).
    TlsHandshake,
    /// No local port or file descriptor was free (`EADDRNOTAVAIL`, `EMFILE`, `ENFILE`).
    LocalResources,
    /// The connection was reset or closed before any byte of a response head.
    /// `reused`: it had carried a request before (a keep-alive connection from the pool).
    Lost { reused: bool },
    /// No response head within `-response-timeout`.
    ResponseTimeout,
    /// The backend answered something that is not an HTTP/1 response head.
    BadResponse,
}

impl Failure {
    /// The `kind` label of `goaround_upstream_errors_total`.
    pub fn kind(self) -> &'static str {
        match self {
            Failure::ConnectRefused | Failure::ConnectTimeout | Failure::TlsHandshake => "connect",
            Failure::LocalResources => "local",
            Failure::Lost { .. } => "reset",
            Failure::ResponseTimeout => "timeout",
            Failure::BadResponse => "protocol",
        }
    }
}

/// What is known about the request when an attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    /// GET, HEAD, PUT, DELETE, OPTIONS or TRACE.
    pub idempotent: bool,
    /// The whole body (if any) is still at hand, or none of it was sent yet.
    pub replayable: bool,
    /// This request already used its one retry over a fresh connection.
    pub fresh_retry_used: bool,
}

/// Where the request goes next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Once more to the same backend, over a new connection.
    SameBackendFresh,
    /// To a backend not tried yet (if none is left: 502 `no backend answered`).
    OtherBackend,
    /// Answer the client with this status and message.
    GiveUp { status: u16, message: &'static str },
}

/// The decision about one failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub next: Next,
    /// Counts toward `-max-fails` (passive health).
    pub counts_against_backend: bool,
    /// Takes the backend out at once, until its health check passes.
    pub marks_down: bool,
}

/// The message of a 502 after every backend was tried.
pub const NO_BACKEND_ANSWERED: &str = "no backend answered";

const FAILED_TO_ANSWER: &str = "the backend failed to answer";
const TOO_SLOW: &str = "the backend did not answer in time";
const LOCAL: &str = "goaround cannot open more connections right now";

/// The verdict for `failure` of `attempt`.
pub fn decide(failure: Failure, attempt: Attempt) -> Verdict {
    let give_up = |status, message| Next::GiveUp { status, message };
    let elsewhere_if_replayable = if attempt.replayable {
        Next::OtherBackend
    } else {
        give_up(502, FAILED_TO_ANSWER)
    };
    match failure {
        Failure::ConnectRefused | Failure::TlsHandshake => Verdict {
            next: elsewhere_if_replayable,
            counts_against_backend: true,
            marks_down: true,
        },
        Failure::ConnectTimeout => Verdict {
            next: elsewhere_if_replayable,
            counts_against_backend: true,
            marks_down: false,
        },
        Failure::LocalResources => Verdict {
            next: give_up(503, LOCAL),
            counts_against_backend: false,
            marks_down: false,
        },
        Failure::Lost { reused } => {
            let retry = attempt.idempotent && attempt.replayable;
            let next = match () {
                _ if !retry => give_up(502, FAILED_TO_ANSWER),
                _ if reused && !attempt.fresh_retry_used => Next::SameBackendFresh,
                _ => Next::OtherBackend,
            };
            Verdict {
                next,
                // A reused connection closed under us is the stale keep-alive race, not a
                // sign of a failing backend.
                counts_against_backend: !reused,
                marks_down: false,
            }
        }
        Failure::ResponseTimeout => Verdict {
            next: give_up(504, TOO_SLOW),
            counts_against_backend: true,
            marks_down: false,
        },
        Failure::BadResponse => Verdict {
            next: give_up(502, FAILED_TO_ANSWER),
            counts_against_backend: true,
            marks_down: false,
        },
    }
}

/// Methods that may be sent twice (RFC 9110 §9.2.2).
pub fn is_idempotent(method: &http::Method) -> bool {
    use http::Method;
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS | Method::TRACE
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAME: Next = Next::SameBackendFresh;
    const OTHER: Next = Next::OtherBackend;
    const fn up(status: u16, message: &'static str) -> Next {
        Next::GiveUp { status, message }
    }

    #[test]
    fn the_table() {
        use Failure::*;
        // (failure, idempotent, replayable, fresh retry used) => (next, counts, marks down)
        let table: &[(Failure, bool, bool, bool, Next, bool, bool)] = &[
            (ConnectRefused, true, true, false, OTHER, true, true),
            (ConnectRefused, false, true, false, OTHER, true, true),
            (
                ConnectRefused,
                false,
                false,
                false,
                up(502, FAILED_TO_ANSWER),
                true,
                true,
            ),
            (TlsHandshake, true, true, false, OTHER, true, true),
            (ConnectTimeout, true, true, false, OTHER, true, false),
            (
                ConnectTimeout,
                true,
                false,
                false,
                up(502, FAILED_TO_ANSWER),
                true,
                false,
            ),
            (
                LocalResources,
                true,
                true,
                false,
                up(503, LOCAL),
                false,
                false,
            ),
            (Lost { reused: true }, true, true, false, SAME, false, false),
            (Lost { reused: true }, true, true, true, OTHER, false, false),
            (
                Lost { reused: false },
                true,
                true,
                false,
                OTHER,
                true,
                false,
            ),
            (
                Lost { reused: true },
                false,
                true,
                false,
                up(502, FAILED_TO_ANSWER),
                false,
                false,
            ),
            (
                Lost { reused: false },
                true,
                false,
                false,
                up(502, FAILED_TO_ANSWER),
                true,
                false,
            ),
            (
                ResponseTimeout,
                true,
                true,
                false,
                up(504, TOO_SLOW),
                true,
                false,
            ),
            (
                BadResponse,
                true,
                true,
                false,
                up(502, FAILED_TO_ANSWER),
                true,
                false,
            ),
        ];
        for &(failure, idempotent, replayable, fresh_retry_used, next, counts, down) in table {
            let attempt = Attempt {
                idempotent,
                replayable,
                fresh_retry_used,
            };
            let verdict = decide(failure, attempt);
            let expected = Verdict {
                next,
                counts_against_backend: counts,
                marks_down: down,
            };
            assert_eq!(verdict, expected, "{failure:?} {attempt:?}");
        }
    }

    #[test]
    fn idempotent_methods() {
        use http::Method;
        for m in [
            Method::GET,
            Method::HEAD,
            Method::PUT,
            Method::DELETE,
            Method::OPTIONS,
        ] {
            assert!(is_idempotent(&m), "{m}");
        }
        for m in [Method::POST, Method::PATCH] {
            assert!(!is_idempotent(&m), "{m}");
        }
    }

    #[test]
    fn kinds_label_the_metric() {
        assert_eq!(Failure::ConnectTimeout.kind(), "connect");
        assert_eq!(Failure::Lost { reused: false }.kind(), "reset");
        assert_eq!(Failure::LocalResources.kind(), "local");
    }
}
