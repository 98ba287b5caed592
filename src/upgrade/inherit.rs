//! The new process's side of an upgrade: at start, take the listening sockets from the old
//! process when [`ENV_VAR`] says there is one, and tell it `ready` once serving.
//!
//! The variable is honoured only when it names our parent: a process we start later (our
//! own successor, which gets a fresh value anyway, or anything else) sees a variable that
//! names us, not its parent, and starts normally.

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::net::TcpListener;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::net::sockopt;
use rustix::process::Pid;

use super::wire::{self, Answer};
use super::{SocketRole, UpgradeError, ENV_VAR};

/// How long the new process waits for the old one to send the sockets once connected (the
/// old one sends them straight away; this only bounds a wedged old process).
const RECEIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// The sockets handed over by the old process, and the connection to tell it `ready` on.
/// Sockets not taken are closed when this is dropped or consumed.
#[derive(Debug)]
pub struct Inherited {
    parent: UnixStream,
    parent_pid: u32,
    sockets: Vec<(SocketRole, OwnedFd)>,
}

/// At start: `Ok(None)` for a normal start (no [`ENV_VAR`], or one meant for some other
/// process), `Ok(Some)` with the old process's sockets during an upgrade. An error means the
/// upgrade cannot go on: exit non-zero (the old process, which keeps serving, sees it).
pub fn inherit() -> Result<Option<Inherited>, UpgradeError> {
    inherit_from(std::env::var_os(ENV_VAR), rustix::process::getppid())
}

fn inherit_from(
    value: Option<OsString>,
    parent: Option<Pid>,
) -> Result<Option<Inherited>, UpgradeError> {
    let Some(value) = value else {
        return Ok(None);
    };
    let (sender, path) = parse_variable(&value)?;
    if Some(sender) != parent {
        log::warn!(
            "upgrade: ignoring {ENV_VAR}: it was set by pid {}, which is not our parent",
            sender.as_raw_nonzero()
        );
        return Ok(None);
    }
    receive(&path, sender).map(Some)
}

/// `PID:PATH` → the old process's pid and the rendezvous path.
pub(super) fn parse_variable(value: &OsStr) -> Result<(Pid, PathBuf), UpgradeError> {
    let bad = || UpgradeError::BadVariable(value.to_string_lossy().into_owned());
    let bytes = value.as_bytes();
    let colon = bytes.iter().position(|&b| b == b':').ok_or_else(bad)?;
    let (pid, path) = (&bytes[..colon], &bytes[colon + 1..]);
    let pid = std::str::from_utf8(pid)
        .ok()
        // Digits only: `Pid::from_raw` panics on a negative number.
        .filter(|p| p.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|p| p.parse::<u32>().ok())
        .and_then(|p| i32::try_from(p).ok())
        .and_then(Pid::from_raw)
        .ok_or_else(bad)?;
    if path.is_empty() {
        return Err(bad());
    }
    Ok((pid, PathBuf::from(OsStr::from_bytes(path))))
}

/// Connects to the rendezvous socket at `path`, which process `sender` must be holding, and
/// receives the sockets.
pub(super) fn receive(path: &Path, sender: Pid) -> Result<Inherited, UpgradeError> {
    let parent = UnixStream::connect(path).map_err(|e| UpgradeError::Connect(path.into(), e))?;
    let peer = sockopt::socket_peercred(&parent)
        .map_err(|e| UpgradeError::Io("reading the peer's credentials", e.into()))?;
    if peer.pid != sender {
        return Err(UpgradeError::Protocol(format!(
            "{} is held by pid {}, not by pid {}",
            path.display(),
            peer.pid.as_raw_nonzero(),
            sender.as_raw_nonzero()
        )));
    }
    for set in [UnixStream::set_read_timeout, UnixStream::set_write_timeout] {
        set(&parent, Some(RECEIVE_TIMEOUT))
            .map_err(|e| UpgradeError::Io("rendezvous connection", e))?;
    }
    match wire::receive_sockets(&parent) {
        Ok(sockets) => Ok(Inherited {
            parent,
            parent_pid: sender.as_raw_nonzero().get().unsigned_abs(),
            sockets,
        }),
        Err(e) => {
            // Best effort: the old process logs why and keeps serving.
            let _ = (&parent).write_all(&wire::encode_answer(&Answer::Error(e.to_string())));
            Err(e)
        }
    }
}

impl Inherited {
    /// The old process's pid.
    pub fn parent_pid(&self) -> u32 {
        self.parent_pid
    }

    /// How many sockets of `role` are still here to take.
    pub fn count(&self, role: SocketRole) -> usize {
        self.sockets.iter().filter(|(r, _)| *r == role).count()
    }

    /// Every listener of the client port, in the order the old process listed them.
    pub fn take_client_listeners(&mut self) -> Vec<TcpListener> {
        self.take(SocketRole::Client)
            .into_iter()
            .map(TcpListener::from)
            .collect()
    }

    pub fn take_metrics_listener(&mut self) -> Option<TcpListener> {
        self.take(SocketRole::Metrics)
            .into_iter()
            .next()
            .map(TcpListener::from)
    }

    pub fn take_control_listener(&mut self) -> Option<UnixListener> {
        self.take(SocketRole::Control)
            .into_iter()
            .next()
            .map(UnixListener::from)
    }

    fn take(&mut self, role: SocketRole) -> Vec<OwnedFd> {
        let (taken, kept) = std::mem::take(&mut self.sockets)
            .into_iter()
            .partition(|(r, _)| *r == role);
        self.sockets = kept;
        taken.into_iter().map(|(_, fd)| fd).collect()
    }

    /// Tells the old process that we serve: it stops accepting and drains. Call it once the
    /// listeners are being accepted on and the pidfile is written. An error means the old
    /// process is gone already; keep serving.
    pub fn ready(self) -> Result<(), UpgradeError> {
        let answer = wire::encode_answer(&Answer::Ready(std::process::id()));
        (&self.parent)
            .write_all(&answer)
            .map_err(|e| UpgradeError::Io("telling the old process we are ready", e))
    }

    /// Tells the old process we cannot serve, and why; it logs the reason and keeps serving.
    /// Exit after this.
    pub fn abort(self, why: &str) {
        let answer = wire::encode_answer(&Answer::Error(why.to_owned()));
        let _ = (&self.parent).write_all(&answer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_variable_is_a_normal_start() {
        assert!(inherit_from(None, Pid::from_raw(1)).unwrap().is_none());
    }

    #[test]
    fn variable_is_parent_pid_colon_path() {
        let (pid, path) = parse_variable(OsStr::new("4242:/tmp/d/upgrade.sock")).unwrap();
        assert_eq!(pid.as_raw_nonzero().get(), 4242);
        assert_eq!(path, Path::new("/tmp/d/upgrade.sock"));
        // Only the first colon separates: a path may hold colons.
        let (_, path) = parse_variable(OsStr::new("7:/tmp/a:b")).unwrap();
        assert_eq!(path, Path::new("/tmp/a:b"));
        for bad in [
            "",
            "/tmp/x",
            "x:/tmp/x",
            "0:/tmp/x",
            "-3:/tmp/x",
            "+3:/tmp/x",
            "3000000000:/x",
            "12:",
        ] {
            let err = parse_variable(OsStr::new(bad)).unwrap_err();
            assert!(
                matches!(err, UpgradeError::BadVariable(_)),
                "{bad:?}: {err}"
            );
        }
    }

    #[test]
    fn a_variable_meant_for_another_process_is_ignored() {
        // A grandchild: the variable names the process that started our parent. Nothing is
        // connected to (the path does not exist).
        let value = OsString::from("4242:/nonexistent/upgrade.sock");
        let got = inherit_from(Some(value), Pid::from_raw(777)).unwrap();
        assert!(got.is_none());
    }

    #[test]
    fn a_variable_for_us_with_a_dead_socket_is_an_error() {
        let value = OsString::from("4242:/nonexistent/upgrade.sock");
        let err = inherit_from(Some(value), Pid::from_raw(4242)).unwrap_err();
        assert!(matches!(err, UpgradeError::Connect(..)), "{err}");
    }

    #[test]
    fn a_malformed_variable_is_an_error() {
        let err = inherit_from(Some("garbage".into()), Pid::from_raw(1)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "upgrade: GOAROUND_UPGRADE_SOCKET=\"garbage\" is not PARENT_PID:PATH"
        );
    }
}
