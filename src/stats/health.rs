//! A backend's health history as the status page tells it: the last active check (when, how
//! long, passed or not, and what it said) and the last change of state with its reason.
//!
//! Written by the backend's health thread and by whoever takes the backend out (passive
//! health, removal), a few times a second at most, so a `Mutex` held for one small copy is
//! enough; the request path never touches it. Deciding health is `upstream::health`'s job.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// Longest check message kept (in characters): a backend's error body can be long.
pub const MAX_MESSAGE_CHARS: usize = 200;

/// One active health check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    /// When it ended, in [`Clock`](super::Clock) seconds.
    pub at_secs: u64,
    pub ok: bool,
    pub duration: Duration,
    /// What it found, e.g. `200 OK`, `status 503`, `connect: connection refused`.
    pub message: String,
}

/// What the status page reads.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct HealthView {
    /// When the state last changed (or the backend was added).
    pub changed_at_secs: Option<u64>,
    /// Why it is not up, as recorded with the change; None when up.
    pub reason: Option<String>,
    pub last_check: Option<CheckResult>,
}

#[derive(Default)]
pub struct HealthRecord {
    view: Mutex<HealthView>,
}

impl HealthRecord {
    /// The record of a backend added at second `added_at_secs`.
    pub fn new(added_at_secs: u64) -> HealthRecord {
        HealthRecord {
            view: Mutex::new(HealthView {
                changed_at_secs: Some(added_at_secs),
                ..HealthView::default()
            }),
        }
    }

    /// An active check ended.
    pub fn record_check(&self, at_secs: u64, ok: bool, duration: Duration, message: &str) {
        let check = CheckResult {
            at_secs,
            ok,
            duration,
            message: truncate(message),
        };
        self.lock().last_check = Some(check);
    }

    /// The state changed at `at_secs`; `reason` says why it is not up (None when it is):
    /// `check failed: status 503`, `3 requests failed in a row`, `removed from the set`.
    pub fn record_change(&self, at_secs: u64, reason: Option<&str>) {
        let mut view = self.lock();
        view.changed_at_secs = Some(at_secs);
        view.reason = reason.map(truncate);
    }

    pub fn read(&self) -> HealthView {
        self.lock().clone()
    }

    fn lock(&self) -> MutexGuard<'_, HealthView> {
        // A panic elsewhere while holding it left a whole value behind: still readable.
        self.view.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn truncate(message: &str) -> String {
    match message.char_indices().nth(MAX_MESSAGE_CHARS) {
        None => message.to_owned(),
        Some((end, _)) => format!("{}…", &message[..end]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_check_and_change() {
        let h = HealthRecord::new(7);
        assert_eq!(h.read().changed_at_secs, Some(7));
        assert_eq!(h.read().last_check, None);
        h.record_check(9, false, Duration::from_millis(3), "status 503");
        h.record_change(9, Some("check failed: status 503"));
        h.record_check(12, true, Duration::from_millis(2), "200 OK");
        let v = h.read();
        assert_eq!(v.changed_at_secs, Some(9));
        assert_eq!(v.reason.as_deref(), Some("check failed: status 503"));
        let check = v.last_check.unwrap();
        assert!(check.ok);
        assert_eq!((check.at_secs, check.message.as_str()), (12, "200 OK"));
        h.record_change(12, None);
        assert_eq!(h.read().reason, None);
    }

    #[test]
    fn long_messages_are_cut_on_a_character() {
        let long = "é".repeat(MAX_MESSAGE_CHARS + 10);
        let h = HealthRecord::new(0);
        h.record_check(1, false, Duration::ZERO, &long);
        let message = h.read().last_check.unwrap().message;
        assert_eq!(message.chars().count(), MAX_MESSAGE_CHARS + 1);
        assert!(message.ends_with('…'));
        assert_eq!(truncate("short"), "short");
    }
}
