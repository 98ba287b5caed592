//! Zero-downtime binary upgrade: handing the listening sockets to a new process.
//!
//! This module owns the plumbing of an upgrade, on both sides: starting the new binary with
//! the same arguments, passing it the listening sockets (the client port's listeners, the
//! metrics listener, the control socket's listener) over a private unix socket with
//! SCM_RIGHTS, waiting until it says it serves, and the pidfile. It leaves to the server
//! when to upgrade (SIGUSR2), how to stop accepting and drain, and what to log.
//!
//! ```text
//!  old process (serving)                          new process
//!  ─────────────────────                          ───────────
//!  SIGUSR2
//!    │ rendezvous socket in a fresh 0700 dir
//!    │ spawn exe, same args ───────────────────►  start, GOAROUND_UPGRADE_SOCKET=PID:PATH
//!    │ accept, watching the child  ◄────────────  connect (the peer must be its parent)
//!    │ the peer must be the child
//!    │ header + fds (SCM_RIGHTS) ──────────────►  check each fd's role, make listeners
//!    │ (still serving: the same sockets)          serve, write the pidfile
//!    │ ◄──────────────────────────────────────── "ready PID"
//!    │ stop accepting, drain (-shutdown-timeout)
//!    ▼ exit; the control socket file and the pidfile now belong to the new process
//! ```
//!
//! Both processes hold the same sockets (not copies bound to the same port), so nothing is
//! lost in between: a connection in the accept queue is taken by whichever process accepts
//! it first. If anything fails before `ready` (spawn, the child exits, a timeout, a protocol
//! error), the child is killed and [`start_successor`] returns an [`UpgradeError`] naming the
//! stage; the old process keeps serving. The protocol is described in `wire.rs`.
//!
//! Sharing the sockets has two consequences for the server. Their file status flags are
//! shared: if one process makes a listener non-blocking, it is non-blocking in the other
//! too (keep every listener non-blocking in every version, and accept through a poll). And
//! `shutdown()` on a listener stops it for both: the old process stops accepting by
//! deregistering and closing its descriptors, never by shutting the sockets down.
//!
//! **Wiring.** At start, before binding anything: [`inherit`]. With `Some`, take the
//! listeners instead of binding (the control listener too: `ControlSocket::bind` would find
//! the socket in use), start serving, write the pidfile, then [`Inherited::ready`]. On
//! SIGUSR2: [`start_successor`] with [`current_program`] and our arguments; on `Ok`, stop
//! accepting, drain, and exit without removing the control socket file or the pidfile; on
//! `Err`, log it and keep serving.
//!
//! **Rendezvous.** A path in a new directory under the temp dir (`$TMPDIR` or `/tmp`),
//! created with mode 0700, rather than an abstract-namespace name: an abstract socket has no
//! permissions at all (any process in the network namespace may connect to it, or take the
//! name first), while only our user can reach into a 0700 directory. The directory name
//! carries the pid, the time and a counter, and `mkdir` fails rather than reuse an existing
//! one, so two goarounds on one host never collide. Each side also checks the other's
//! credentials (SO_PEERCRED): the old process hands the sockets only to the pid it spawned,
//! and the new one only takes them from its parent.
//!
//! **The environment variable** names the parent's pid and the path. The new process does
//! not remove it from its environment (`remove_var` races with other threads and needs
//! `unsafe` from the 2024 edition on); instead [`inherit`] ignores a variable that names
//! some other parent, so a grandchild never reuses it, and [`start_successor`] always sets
//! it afresh.
//!
//! **The program.** [`current_program`] is the path the running binary was started from.
//! On Linux, once the file has been replaced (installed by rename), `current_exe()` of the
//! old process ends in ` (deleted)`; that suffix is dropped, so the path names the file now
//! there: the new binary.

mod inherit;
mod pidfile;
mod successor;
mod wire;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

pub use inherit::{inherit, Inherited};
pub use pidfile::{remove_pidfile_if_ours, write_pidfile};
pub use successor::{start_successor, Successor};
pub use wire::MAX_SOCKETS;

/// The environment variable that tells a starting goaround to inherit its sockets:
/// `PARENT_PID:PATH` of the rendezvous socket.
pub const ENV_VAR: &str = "GOAROUND_UPGRADE_SOCKET";

/// What a handed-over socket is for. Several `Client` sockets may be passed (one listener of
/// the client port per event loop); they keep their order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SocketRole {
    /// A listener of the client port (TCP).
    Client,
    /// The `/metrics` listener (TCP).
    Metrics,
    /// The control socket's listener (unix stream).
    Control,
}

impl SocketRole {
    /// The word that stands for the role on the wire.
    fn as_str(self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::Metrics => "metrics",
            Self::Control => "control",
        }
    }

    fn from_wire(word: &str) -> Option<SocketRole> {
        [Self::Client, Self::Metrics, Self::Control]
            .into_iter()
            .find(|r| r.as_str() == word)
    }
}

impl fmt::Display for SocketRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How far the new process got when an upgrade failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Started, not connected to the rendezvous socket yet.
    Connecting,
    /// Has its sockets, has not said `ready` yet.
    Starting,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Connecting => "before it connected",
            Self::Starting => "before it was ready",
        })
    }
}

/// Why an upgrade (old side), an inheritance (new side) or a pidfile operation failed.
#[derive(Debug)]
pub enum UpgradeError {
    /// The private rendezvous socket could not be created.
    Rendezvous(io::Error),
    /// The new binary could not be started.
    Spawn(PathBuf, io::Error),
    /// The new process exited before the upgrade completed.
    Exited(ExitStatus, Stage),
    /// The new process took longer than the timeout.
    Timeout(Duration, Stage),
    /// The new process said it cannot serve (`error TEXT`).
    Refused(String),
    /// The other side broke the protocol.
    Protocol(String),
    /// More sockets than one SCM_RIGHTS message carries.
    TooManySockets(usize),
    /// A socket operation of the handover failed.
    Io(&'static str, io::Error),
    /// [`ENV_VAR`] is set but is not `PID:PATH`.
    BadVariable(String),
    /// The new process could not connect to the rendezvous socket.
    Connect(PathBuf, io::Error),
    /// Reading the running binary's path failed.
    Program(io::Error),
    /// Writing, reading or removing the pidfile failed.
    Pidfile(PathBuf, io::Error),
    /// A shutdown closed the sockets before the upgrade could hand them over.
    ShuttingDown,
}

impl fmt::Display for UpgradeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Rendezvous(e) => write!(f, "upgrade: cannot create the rendezvous socket: {e}"),
            Self::Spawn(path, e) => write!(f, "upgrade: cannot start {}: {e}", path.display()),
            Self::Exited(status, stage) => {
                write!(f, "upgrade: the new process {} {stage}", describe(*status))
            }
            Self::Timeout(after, Stage::Connecting) => {
                write!(
                    f,
                    "upgrade: the new process did not connect within {after:?}"
                )
            }
            Self::Timeout(after, Stage::Starting) => {
                write!(f, "upgrade: the new process was not ready within {after:?}")
            }
            Self::Refused(why) => write!(f, "upgrade: the new process gave up: {why}"),
            Self::Protocol(what) => write!(f, "upgrade: protocol error: {what}"),
            Self::TooManySockets(n) => write!(
                f,
                "upgrade: {n} sockets to hand over, at most {MAX_SOCKETS} fit in one message"
            ),
            Self::Io(context, e) => write!(f, "upgrade: {context}: {e}"),
            Self::BadVariable(value) => {
                write!(f, "upgrade: {ENV_VAR}={value:?} is not PARENT_PID:PATH")
            }
            Self::Connect(path, e) => {
                write!(f, "upgrade: cannot connect to {}: {e}", path.display())
            }
            Self::Program(e) => write!(f, "upgrade: cannot find the running binary: {e}"),
            Self::Pidfile(path, e) => write!(f, "pidfile {}: {e}", path.display()),
            Self::ShuttingDown => write!(f, "upgrade: shutting down; nothing to hand over"),
        }
    }
}

impl std::error::Error for UpgradeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Rendezvous(e)
            | Self::Spawn(_, e)
            | Self::Io(_, e)
            | Self::Connect(_, e)
            | Self::Program(e)
            | Self::Pidfile(_, e) => Some(e),
            _ => None,
        }
    }
}

/// "exited with status 3" or "was killed by signal 9".
fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        (None, None) => format!("ended ({status})"),
    }
}

/// The path the running binary was started from, to start its successor from.
///
/// `std::env::current_exe()` reads `/proc/self/exe`, which gains a ` (deleted)` suffix once
/// the file is replaced by a rename (how binaries are installed); the suffix is dropped so
/// the path names the new file. A path that exists as read is kept as it is.
pub fn current_program() -> Result<PathBuf, UpgradeError> {
    let exe = std::env::current_exe().map_err(UpgradeError::Program)?;
    Ok(without_deleted_suffix(&exe))
}

fn without_deleted_suffix(exe: &Path) -> PathBuf {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    const SUFFIX: &[u8] = b" (deleted)";
    let bytes = exe.as_os_str().as_bytes();
    match bytes.strip_suffix(SUFFIX) {
        Some(original) if !exe.exists() => PathBuf::from(OsStr::from_bytes(original)),
        _ => exe.to_owned(),
    }
}

#[cfg(test)]
mod tests;
