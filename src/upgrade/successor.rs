//! The old process's side of an upgrade: start the new binary, hand it the sockets, wait
//! until it serves. On any failure the new process is killed and the caller keeps serving.
//!
//! Waiting never blocks for long: the rendezvous listener is polled (non-blocking accept)
//! and the answer is read with a short timeout, and between tries the child is checked with
//! `try_wait`, so a child that dies is reported at once and one that hangs is given up on at
//! the deadline (`ready_timeout` after the spawn, for the whole exchange).

use std::ffi::OsString;
use std::fs::DirBuilder;
use std::io::{self, Read};
use std::os::fd::BorrowedFd;
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rustix::net::sockopt;
use rustix::process::Pid;

use super::wire::{self, Answer};
use super::{SocketRole, Stage, UpgradeError, ENV_VAR};

/// How often the child is checked while waiting for it.
const POLL_EVERY: Duration = Duration::from_millis(20);

/// After the new process closes the connection, how long to wait for its exit status, so
/// that the error says "exited with status N" rather than only "closed the connection".
const EXIT_GRACE: Duration = Duration::from_millis(500);

/// A new process that has its sockets and serves.
#[derive(Debug)]
pub struct Successor {
    child: Child,
}

impl Successor {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The new process's exit status if it has exited (the old one may watch it while it
    /// drains); dropping the `Successor` leaves it running.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        self.child.try_wait()
    }
}

/// Starts `exe` with `args` (argv[1..]) and hands it `sockets`; returns once the new process
/// has said `ready`, at most `ready_timeout` after it was started.
///
/// The child inherits stdin, stdout and stderr (its logs go where ours go) and nothing else:
/// our descriptors are close-on-exec, and the sockets travel over the rendezvous socket. On
/// error the child, if it was started and still runs, is killed and reaped.
pub fn start_successor(
    exe: &Path,
    args: &[OsString],
    sockets: &[(SocketRole, BorrowedFd<'_>)],
    ready_timeout: Duration,
) -> Result<Successor, UpgradeError> {
    let mut command = Command::new(exe);
    command.args(args);
    start_command(command, sockets, ready_timeout)
}

/// [`start_successor`] for a prepared command (tests silence the child's output).
pub(super) fn start_command(
    mut command: Command,
    sockets: &[(SocketRole, BorrowedFd<'_>)],
    ready_timeout: Duration,
) -> Result<Successor, UpgradeError> {
    if sockets.len() > wire::MAX_SOCKETS {
        return Err(UpgradeError::TooManySockets(sockets.len()));
    }
    let rendezvous = Rendezvous::create().map_err(UpgradeError::Rendezvous)?;
    let program = PathBuf::from(command.get_program());
    let mut child = command
        .env(ENV_VAR, rendezvous.variable())
        .spawn()
        .map_err(|e| UpgradeError::Spawn(program, e))?;
    let deadline = Deadline::after(ready_timeout);
    let handed = hand_over(&rendezvous.listener, &mut child, sockets, deadline);
    drop(rendezvous);
    match handed {
        Ok(()) => Ok(Successor { child }),
        Err(e) => {
            // Already gone is fine; either way it is reaped so no zombie is left behind.
            let _ = child.kill();
            let _ = child.wait();
            Err(e)
        }
    }
}

/// The process on the other end of the rendezvous socket, as the old side watches it.
pub(super) trait Peer {
    fn pid(&self) -> Pid;
    fn exited(&mut self) -> Option<ExitStatus>;
}

impl Peer for Child {
    fn pid(&self) -> Pid {
        Pid::from_child(self)
    }

    fn exited(&mut self) -> Option<ExitStatus> {
        // An error here (ECHILD) cannot happen for a child we have not reaped; treat it as
        // still running and let the deadline decide.
        self.try_wait().ok().flatten()
    }
}

/// The whole exchange after the spawn: accept the child's connection, send the sockets,
/// wait for its answer.
pub(super) fn hand_over(
    listener: &UnixListener,
    child: &mut dyn Peer,
    sockets: &[(SocketRole, BorrowedFd<'_>)],
    deadline: Deadline,
) -> Result<(), UpgradeError> {
    let stream = accept_child(listener, child, deadline)?;
    wire::send_sockets(&stream, sockets)?;
    match wait_for_answer(&stream, child, deadline)? {
        Answer::Ready(_) => Ok(()),
        Answer::Error(why) => Err(UpgradeError::Refused(why)),
    }
}

#[derive(Clone, Copy, Debug)]
pub(super) struct Deadline {
    at: Instant,
    timeout: Duration,
}

impl Deadline {
    pub(super) fn after(timeout: Duration) -> Deadline {
        Deadline {
            at: Instant::now() + timeout,
            timeout,
        }
    }

    fn check(&self, stage: Stage) -> Result<(), UpgradeError> {
        if Instant::now() >= self.at {
            return Err(UpgradeError::Timeout(self.timeout, stage));
        }
        Ok(())
    }
}

/// The child's connection. A connection from any other process is dropped (it would get our
/// listening sockets) and waiting goes on.
fn accept_child(
    listener: &UnixListener,
    child: &mut dyn Peer,
    deadline: Deadline,
) -> Result<UnixStream, UpgradeError> {
    listener
        .set_nonblocking(true)
        .map_err(|e| UpgradeError::Io("rendezvous socket", e))?;
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                let peer = sockopt::socket_peercred(&stream)
                    .map_err(|e| UpgradeError::Io("reading the peer's credentials", e.into()))?;
                if peer.pid == child.pid() {
                    stream
                        .set_nonblocking(false)
                        .map_err(|e| UpgradeError::Io("rendezvous connection", e))?;
                    return Ok(stream);
                }
                log::warn!(
                    "upgrade: ignoring a connection from pid {} on the rendezvous socket",
                    peer.pid.as_raw_nonzero()
                );
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(UpgradeError::Io("accepting the new process", e)),
        }
        if let Some(status) = child.exited() {
            return Err(UpgradeError::Exited(status, Stage::Connecting));
        }
        deadline.check(Stage::Connecting)?;
        std::thread::sleep(POLL_EVERY);
    }
}

/// Reads the child's one-line answer, checking on the child between reads.
fn wait_for_answer(
    stream: &UnixStream,
    child: &mut dyn Peer,
    deadline: Deadline,
) -> Result<Answer, UpgradeError> {
    stream
        .set_read_timeout(Some(POLL_EVERY))
        .map_err(|e| UpgradeError::Io("rendezvous connection", e))?;
    let mut received = Vec::new();
    let mut chunk = [0u8; 512];
    loop {
        match (&*stream).read(&mut chunk) {
            Ok(0) => return Err(closed_early(child)),
            Ok(n) => {
                received.extend_from_slice(&chunk[..n]);
                if let Some(answer) = wire::parse_answer(&received)? {
                    return Ok(answer);
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(UpgradeError::Io("waiting for the new process", e)),
        }
        if let Some(status) = child.exited() {
            return Err(UpgradeError::Exited(status, Stage::Starting));
        }
        deadline.check(Stage::Starting)?;
    }
}

/// The child closed the connection without answering: most likely it is exiting, and its
/// exit status says more than "closed".
fn closed_early(child: &mut dyn Peer) -> UpgradeError {
    let until = Instant::now() + EXIT_GRACE;
    while Instant::now() < until {
        if let Some(status) = child.exited() {
            return UpgradeError::Exited(status, Stage::Starting);
        }
        std::thread::sleep(POLL_EVERY);
    }
    UpgradeError::Protocol("the new process closed the connection before it was ready".into())
}

/// The private socket the new process connects to: `upgrade.sock` in a fresh 0700
/// directory under the temp dir. Dropping it removes both.
pub(super) struct Rendezvous {
    dir: PathBuf,
    path: PathBuf,
    pub(super) listener: UnixListener,
}

impl Rendezvous {
    pub(super) fn create() -> io::Result<Rendezvous> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let base = std::env::temp_dir();
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        // `mkdir` fails on an existing name: a collision (or a name planted by someone else)
        // is never reused, only skipped.
        let dir = loop {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let name = format!("goaround-upgrade-{}-{nanos:x}-{n}", std::process::id());
            let dir = base.join(name);
            match DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => break dir,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && n < 1000 => continue,
                Err(e) => return Err(e),
            }
        };
        let path = dir.join("upgrade.sock");
        match UnixListener::bind(&path) {
            Ok(listener) => Ok(Rendezvous {
                dir,
                path,
                listener,
            }),
            Err(e) => {
                let _ = std::fs::remove_dir(&dir);
                Err(e)
            }
        }
    }

    #[cfg(test)]
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// The value of [`ENV_VAR`]: our pid, so that only our child uses it, and the path.
    fn variable(&self) -> OsString {
        let mut value = OsString::from(format!("{}:", std::process::id()));
        value.push(self.path.as_os_str());
        value
    }
}

impl Drop for Rendezvous {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        let _ = std::fs::remove_dir(&self.dir);
    }
}
