//! Raising the open-files limit at start, as Go programs do since Go 1.19.
//!
//! Every client connection and every upstream connection is a file descriptor; the usual
//! soft limit of 1024 would cap goaround far below `-max-conns`. The soft limit is raised to
//! the hard limit (which an unprivileged process may do); the hard limit is the operator's.

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; returns the limit now in force
/// (`None`: unlimited).
pub(crate) fn raise_open_files_limit() -> Option<u64> {
    let limit = getrlimit(Resource::Nofile);
    if limit.current == limit.maximum {
        return limit.current;
    }
    let raised = Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => limit.maximum,
        Err(e) => {
            log::warn!("cannot raise the open-files limit: {e}");
            limit.current
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soft_limit_ends_at_the_hard_limit() {
        let now = raise_open_files_limit();
        let after = getrlimit(Resource::Nofile);
        assert_eq!(after.current, after.maximum);
        assert_eq!(now, after.current);
    }
}
