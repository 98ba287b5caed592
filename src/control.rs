//! The control socket: replacing the backend set at run time (GoAround's protocol).
//!
//! A unix stream socket at `-socket` (mode 0600). Each line is either
//! - a comma-separated list of backend URLs, which replaces the whole `default` upstream
//!   (the `-b` backends): answered `ok: N backends`, or `error: <reason>` with nothing
//!   changed;
//! - `upstream NAME url,url,...`: the same for the `-config` upstream NAME (weights reset
//!   to 1);
//! - `list`: one line per backend (`URL up|down in_flight=N`, and `weight=W` when not 1),
//!   under an `upstream NAME ...` heading each when there is more than `default`, then
//!   `ok: N backends`.
//!
//! `echo "http://a:1,http://b:2" | nc -U /tmp/goaround.sock` must work whether or not the
//! line ends in a newline and whether or not `nc` half-closes: a line is complete at a
//! newline, at end of input, or after [`IDLE`] of silence, and the connection is closed after
//! [`IDLE`] without input. Connections are served one at a time on one thread, each for at
//! most [`MAX_SESSION`].

use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustix::fs::Mode;
use rustix::process::umask;

use crate::config::parse_backend_list;
use crate::metrics::Metrics;
use crate::upstream::health::{self, HealthSettings};
use crate::upstream::routes::{control_servers, SharedRoutes};

/// Silence after which a partial line is taken as complete and an idle connection closed.
pub const IDLE: Duration = Duration::from_millis(500);

/// Longest accepted line.
pub const MAX_LINE: usize = 64 * 1024;

/// Longest a connection is served, so that a client trickling bytes cannot hold the (single)
/// control thread.
pub const MAX_SESSION: Duration = Duration::from_secs(10);

/// Why the control socket could not be set up.
#[derive(Debug)]
pub enum ControlError {
    InUse(PathBuf),
    NotASocket(PathBuf),
    Io(PathBuf, io::Error),
}

impl std::fmt::Display for ControlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::InUse(p) => {
                write!(
                    f,
                    "control socket {}: another process is listening on it",
                    p.display()
                )
            }
            Self::NotASocket(p) => write!(
                f,
                "control socket {}: exists and is not a socket (not removing it)",
                p.display()
            ),
            Self::Io(p, e) => write!(f, "control socket {}: {e}", p.display()),
        }
    }
}

impl std::error::Error for ControlError {}

pub struct ControlSocket {
    listener: UnixListener,
    path: PathBuf,
}

impl ControlSocket {
    /// Binds `path`, replacing a stale socket file left by a previous run.
    pub fn bind(path: &Path) -> Result<ControlSocket, ControlError> {
        let io_err = |e| ControlError::Io(path.to_owned(), e);
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_socket() => match UnixStream::connect(path) {
                Ok(_) => return Err(ControlError::InUse(path.to_owned())),
                // Nobody listens: a previous run's leftover.
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    std::fs::remove_file(path).map_err(io_err)?
                }
                // Someone else's socket we may not even connect to: not ours to remove.
                Err(e) => return Err(io_err(e)),
            },
            Ok(_) => return Err(ControlError::NotASocket(path.to_owned())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(e)),
        }
        // Created 0600 from the start (umask), not chmod-ed after a window at 0755.
        let old_mask = umask(Mode::from_bits_truncate(0o177));
        let bound = UnixListener::bind(path);
        umask(old_mask);
        let listener = bound.map_err(io_err)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io_err)?;
        Ok(ControlSocket {
            listener,
            path: path.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Our own descriptor of the same socket (to hand it to a new process).
    pub fn try_clone_listener(&self) -> io::Result<UnixListener> {
        self.listener.try_clone()
    }

    /// The control socket handed over by the process this one replaces: already bound at
    /// `path`, which must not be removed or bound again.
    pub fn inherited(listener: UnixListener, path: &Path) -> ControlSocket {
        ControlSocket {
            listener,
            path: path.to_owned(),
        }
    }

    /// Serves connections one after the other until `stop` is set.
    pub fn serve(
        self,
        routes: &SharedRoutes,
        health: HealthSettings,
        metrics: &Arc<Metrics>,
        stop: Arc<std::sync::atomic::AtomicBool>,
    ) {
        let commands = Commands {
            routes,
            health,
            metrics,
        };
        let mut acceptor = match crate::accept::Acceptor::new(self.listener, stop) {
            Ok(acceptor) => acceptor,
            Err(e) => return log::error!("control: cannot watch the socket: {e}"),
        };
        while let Some(stream) = acceptor.next() {
            match stream {
                Ok(stream) => {
                    if let Err(e) = commands.session(stream) {
                        log::debug!("control: {e}");
                    }
                }
                Err(e) => {
                    log::warn!("control: accept: {e}");
                    std::thread::sleep(IDLE);
                }
            }
        }
    }
}

struct Commands<'a> {
    routes: &'a SharedRoutes,
    health: HealthSettings,
    metrics: &'a Arc<Metrics>,
}

impl Commands<'_> {
    fn session(&self, mut stream: UnixStream) -> io::Result<()> {
        stream.set_read_timeout(Some(IDLE))?;
        stream.set_write_timeout(Some(Duration::from_secs(5)))?;
        let mut lines = LineBuffer::default();
        let mut chunk = [0u8; 4096];
        let started = std::time::Instant::now();
        loop {
            let n = match stream.read(&mut chunk) {
                Ok(n) => n,
                // Silence counts as the end of input (see the module docs).
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    0
                }
                Err(e) => return Err(e),
            };
            let at_end = n == 0 || started.elapsed() >= MAX_SESSION;
            for line in lines.push(&chunk[..n], at_end) {
                let reply = match line {
                    Ok(line) => self.execute(&line),
                    Err(e) => format!("error: {e}\n"),
                };
                stream.write_all(reply.as_bytes())?;
            }
            if at_end {
                return Ok(());
            }
        }
    }

    /// Runs one command line and returns the reply (one or more lines).
    fn execute(&self, line: &str) -> String {
        let line = line.trim();
        if line == "list" {
            return self.list();
        }
        let routes = self.routes.current();
        let (upstream, list) = match line.strip_prefix("upstream ") {
            Some(rest) => {
                let rest = rest.trim_start();
                let (name, list) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
                match routes.by_name(name) {
                    Some(upstream) => (upstream, list),
                    None => return self.refuse(line, &format!("no upstream named {name:?}")),
                }
            }
            None => (routes.default_upstream(), line),
        };
        let urls = match parse_backend_list(list) {
            Ok(urls) => urls,
            Err(e) => return self.refuse(line, &e.to_string()),
        };
        let set = &upstream.set;
        let change = set.replace_servers(&control_servers(set, &urls));
        for b in &change.removed {
            log::info!(
                "control: removed backend {} ({} in flight drain)",
                b.url,
                b.in_flight()
            );
            self.metrics.forget_backend(&b.url.base);
        }
        let checked = set.settings().health_check.is_some();
        for b in change.added {
            log::info!("control: added backend {}", b.url);
            if checked {
                health::spawn(
                    b,
                    self.health.clone(),
                    Arc::clone(self.metrics),
                    Arc::clone(set),
                );
            }
        }
        if upstream.from_flags {
            log::info!("control: backend set is now {}", describe(&urls));
        } else {
            log::info!(
                "control: upstream {} is now {}",
                upstream.name,
                describe(&urls)
            );
        }
        format!("ok: {} backends\n", urls.len())
    }

    fn refuse(&self, line: &str, why: &str) -> String {
        log::warn!("control: rejected {line:?}: {why}");
        format!("error: {why}\n")
    }

    /// One line per backend; upstream headings when there is more than `default`.
    fn list(&self) -> String {
        let routes = self.routes.current();
        let headings = routes.upstreams.len() > 1;
        let mut out = String::new();
        let mut total = 0;
        for upstream in &routes.upstreams {
            let backends = upstream.set.snapshot();
            if headings {
                let settings = upstream.set.settings();
                out.push_str(&format!(
                    "upstream {} balancer={} backends={}\n",
                    upstream.name,
                    settings.balancer.name(),
                    backends.len()
                ));
            }
            for b in backends.iter() {
                let state = if b.is_usable() { "up" } else { "down" };
                out.push_str(&format!("{} {state} in_flight={}", b.url, b.in_flight()));
                if b.weight() != 1 {
                    out.push_str(&format!(" weight={}", b.weight()));
                }
                out.push('\n');
            }
            total += backends.len();
        }
        out.push_str(&format!("ok: {total} backends\n"));
        out
    }
}

fn describe(urls: &[crate::config::BackendUrl]) -> String {
    if urls.is_empty() {
        return "empty".into();
    }
    urls.iter()
        .map(|u| u.base.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// Splits input into lines. A line is complete at `\n`, or at the end of input when
/// `flush` is set; lines over [`MAX_LINE`] are reported as errors and skipped.
#[derive(Default)]
struct LineBuffer {
    partial: Vec<u8>,
    /// Inside an over-long line: drop bytes until its end.
    skipping: bool,
}

impl LineBuffer {
    fn push(&mut self, bytes: &[u8], flush: bool) -> Vec<Result<String, &'static str>> {
        let mut lines = Vec::new();
        for &b in bytes {
            if b == b'\n' {
                if !std::mem::take(&mut self.skipping) {
                    lines.push(self.take());
                }
                self.partial.clear();
            } else if !self.skipping {
                self.partial.push(b);
                if self.partial.len() > MAX_LINE {
                    self.partial.clear();
                    self.skipping = true;
                    lines.push(Err("line too long"));
                }
            }
        }
        if flush && !self.partial.is_empty() && !self.skipping {
            lines.push(self.take());
        }
        if flush {
            self.skipping = false;
            self.partial.clear();
        }
        lines
    }

    fn take(&mut self) -> Result<String, &'static str> {
        let raw = std::mem::take(&mut self.partial);
        let line = String::from_utf8(raw).map_err(|_| "line is not UTF-8")?;
        Ok(line.strip_suffix('\r').unwrap_or(&line).to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(pieces: &[(&str, bool)]) -> Vec<Result<String, &'static str>> {
        let mut b = LineBuffer::default();
        pieces
            .iter()
            .flat_map(|(p, flush)| b.push(p.as_bytes(), *flush))
            .collect()
    }

    #[test]
    fn splits_on_newlines_and_flushes_the_rest() {
        assert_eq!(
            lines(&[("a,b\nlist\r\n", false)]),
            vec![Ok("a,b".into()), Ok("list".into())]
        );
        assert_eq!(lines(&[("a,", false), ("b", true)]), vec![Ok("a,b".into())]);
        assert_eq!(
            lines(&[("a", false), ("", false)]),
            Vec::<Result<String, &str>>::new()
        );
        assert_eq!(lines(&[("\n", false)]), vec![Ok(String::new())]);
    }

    #[test]
    fn long_lines_are_errors_and_skipped() {
        let long = "x".repeat(MAX_LINE + 1);
        let got = lines(&[(&long, false), ("tail\nnext\n", false)]);
        assert_eq!(got, vec![Err("line too long"), Ok("next".into())]);
    }

    #[test]
    fn invalid_utf8_is_an_error() {
        let mut b = LineBuffer::default();
        assert_eq!(b.push(b"\xff\n", false), vec![Err("line is not UTF-8")]);
    }
}
