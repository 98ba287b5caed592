//! Test harness: runs the real `goaround` binary as a child process, one per test.
//!
//! It owns the child's lifetime ([`Goaround`] kills it on drop, even when the test panics),
//! a fresh temp dir per run (control socket path), the child's output (collected on
//! background threads and searchable), and readiness: the proxy and metrics addresses are
//! parsed from the startup log and healthy backends are polled on `/metrics`. The fixture
//! backend lives in [`backend`], the raw HTTP client in [`client`], the WebSocket echo backend
//! and client in [`ws`], headless Chromium in [`browser`].
//!
//! Readiness is polled with short sleeps between checks, never assumed after a fixed delay.

// Each test binary uses a different part of the harness.
#![allow(dead_code)]

pub mod backend;
pub mod browser;
pub mod client;
pub mod openssl;
pub mod scripted;
pub mod tempdir;
pub mod ws;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

// Shortcuts for the names most tests need; a test binary that uses none of them is fine.
#[allow(unused_imports)]
pub use backend::{dead_url, Backend, Recorded};
#[allow(unused_imports)]
pub use client::{get, request, Conn, Response};

/// Path of the binary under test: the one cargo built for integration tests, or
/// `GOAROUND_TEST_BIN` (CI runs the data-path tests against the static musl binary too).
pub fn bin() -> String {
    std::env::var("GOAROUND_TEST_BIN")
        .ok()
        .filter(|path| !path.is_empty())
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_goaround").to_owned())
}
/// How long the binary may take to print its listening addresses.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long [`run_cli`] lets the binary run before calling it a hang.
pub const CLI_TIMEOUT: Duration = Duration::from_secs(10);
/// How long [`control`] waits for the control socket.
pub const CONTROL_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause between two readiness checks.
const POLL_EVERY: Duration = Duration::from_millis(10);
/// Lines of the child's output printed when a test panics with the child still attached.
const LOG_TAIL_ON_PANIC: usize = 200;

/// A running `goaround`; dropping it kills the process and removes its temp dir.
pub struct Goaround {
    /// Behind a lock so that `signal` and `wait_exit` can take `&self` and never signal a
    /// pid that was already reaped (and possibly reused).
    child: Mutex<Child>,
    pid: u32,
    addr: SocketAddr,
    metrics_addr: SocketAddr,
    socket_path: PathBuf,
    temp_dir: PathBuf,
    log: Arc<Log>,
    /// The output is already in a panic message; drop need not print it again.
    output_shown: bool,
}

/// Builds the command line of a [`Goaround`]; see [`Goaround::builder`].
#[derive(Default)]
pub struct GoaroundBuilder {
    args: Vec<String>,
    envs: Vec<(String, String)>,
    /// A program (and its arguments) that runs the binary: `prefix... bin args...`.
    launcher: Vec<String>,
    /// Test defaults not to add (e.g. `p`, so that a `-config` file's port applies).
    omitted: Vec<&'static str>,
}

impl GoaroundBuilder {
    /// Adds `-b URL` for each backend, in order.
    pub fn backends<S: AsRef<str>>(mut self, urls: &[S]) -> Self {
        for url in urls {
            self.args.push("-b".to_owned());
            self.args.push(url.as_ref().to_owned());
        }
        self
    }

    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<S: AsRef<str>>(mut self, args: &[S]) -> Self {
        self.args.extend(args.iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Runs the binary through `prefix` (`prefix... bin args...`); it must `exec` the binary
    /// so that the pid stays the binary's.
    pub fn launcher<S: AsRef<str>>(mut self, prefix: &[S]) -> Self {
        self.launcher = prefix.iter().map(|a| a.as_ref().to_owned()).collect();
        self
    }

    /// Leaves out the test default `-flag` (one of `p`, `bind`, `prometheus-port`, `socket`)
    /// without giving a value instead: the binary's own default, or a `-config` file, applies.
    pub fn without_default(mut self, flag: &'static str) -> Self {
        self.omitted.push(flag);
        self
    }

    /// Sets an environment variable of the child (`RUST_LOG` here replaces the default).
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.envs.push((key.into(), value.into()));
        self
    }

    /// Starts the binary and waits until it has printed both listening addresses; panics
    /// with its output if it exits or stays silent for [`STARTUP_TIMEOUT`].
    pub fn start(self) -> Goaround {
        let temp_dir = fresh_temp_dir();
        let socket_path = match flag_value(&self.args, "socket") {
            Some(path) => PathBuf::from(path),
            None => temp_dir.join("goaround.sock"),
        };
        let args = with_test_defaults(self.args, &socket_path, &self.omitted);
        let mut command = match self.launcher.split_first() {
            Some((program, rest)) => {
                let mut command = Command::new(program);
                command.args(rest).arg(bin());
                command
            }
            None => Command::new(bin()),
        };
        command.args(&args).env("RUST_LOG", "debug");
        command.envs(self.envs.iter().map(|(k, v)| (k, v)));
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin()));
        let log = Arc::new(Log::default());
        collect_lines(child.stderr.take(), "", &log);
        collect_lines(child.stdout.take(), "[stdout] ", &log);
        let mut guard = Goaround {
            pid: child.id(),
            child: Mutex::new(child),
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            metrics_addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            socket_path,
            temp_dir,
            log,
            output_shown: false,
        };
        let (addr, metrics_addr) = guard.wait_for_addresses(&args);
        guard.addr = addr;
        guard.metrics_addr = metrics_addr;
        guard
    }
}

/// Adds `-p 0 -bind 127.0.0.1 -prometheus-port 0 -socket PATH`, each unless the caller gave it
/// or `omitted` names it.
fn with_test_defaults(mut args: Vec<String>, socket_path: &Path, omitted: &[&str]) -> Vec<String> {
    let socket = socket_path.display().to_string();
    let defaults = [
        ("p", "0"),
        ("bind", "127.0.0.1"),
        ("prometheus-port", "0"),
        ("socket", socket.as_str()),
    ];
    for (flag, value) in defaults {
        if flag_value(&args, flag).is_none() && !omitted.contains(&flag) {
            args.push(format!("-{flag}"));
            args.push(value.to_owned());
        }
    }
    args
}

/// The value given to `-flag`/`--flag` as `-flag value` or `-flag=value`, if any.
fn flag_value<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    args.iter().enumerate().find_map(|(i, arg)| {
        let name = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-'))?;
        match name.split_once('=') {
            Some((name, value)) if name == flag => Some(value),
            None if name == flag => Some(args.get(i + 1).map_or("", String::as_str)),
            _ => None,
        }
    })
}

impl Goaround {
    pub fn builder() -> GoaroundBuilder {
        GoaroundBuilder::default()
    }

    /// The proxy's listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`, the proxy's base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics_addr
    }

    pub fn socket_path(&self) -> &Path {
        &self.socket_path
    }

    /// A directory private to this run, removed on drop (for extra files a test needs).
    pub fn temp_dir(&self) -> &Path {
        &self.temp_dir
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Everything the binary wrote so far, one line each; stdout lines start `[stdout] `.
    pub fn stderr(&self) -> String {
        self.log.state().lines.join("\n")
    }

    /// Waits until an output line contains `needle`; false after `timeout`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        self.log.wait_until(timeout, |state| {
            state.lines.iter().any(|l| l.contains(needle))
        })
    }

    /// The text of `GET /metrics` on the metrics port; panics if it cannot be fetched.
    pub fn metrics(&self) -> String {
        client::get(self.metrics_addr, "/metrics").text()
    }

    /// Value of one exposed series, `series` written exactly as exposed, e.g.
    /// `goaround_backends_up` or `name{label="value"}`.
    pub fn metric(&self, series: &str) -> Option<f64> {
        metric_value(&self.metrics(), series)
    }

    /// Polls `/metrics` until `series` has value `want`; returns the last value seen, which
    /// is not `Some(want)` when `timeout` passed first.
    pub fn wait_metric(&self, series: &str, want: f64, timeout: Duration) -> Option<f64> {
        let mut last = None;
        wait_until(timeout, || {
            last = self.metric(series);
            last == Some(want)
        });
        last
    }

    /// Polls `/metrics` until `goaround_backends_up` equals `n`; false after `timeout`.
    pub fn wait_ready_backends(&self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let page = client::try_get(self.metrics_addr, "/metrics");
            let up = page
                .ok()
                .and_then(|r| metric_value(&r.text(), "goaround_backends_up"));
            if up == Some(n as f64) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(POLL_EVERY);
        }
    }

    /// Sends signal number `sig` (15 TERM, 2 INT, 1 HUP, 9 KILL) with kill(1). Panics if the
    /// process has already exited.
    pub fn signal(&self, sig: i32) {
        // Held across kill(1): the child cannot be reaped (freeing its pid) meanwhile.
        let mut child = lock(&self.child);
        if let Ok(Some(status)) = child.try_wait() {
            panic!("signal {sig}: goaround already exited with {status}");
        }
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap_or_else(|e| panic!("cannot run kill: {e}"));
        assert!(status.success(), "kill -{sig} {} failed", self.pid());
    }

    /// Waits for the process to exit; None if it is still running after `timeout`.
    pub fn wait_exit(&self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = lock(&self.child).try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(POLL_EVERY);
        }
    }

    /// Reads both addresses from the startup log, or panics with everything printed so far.
    fn wait_for_addresses(&mut self, args: &[String]) -> (SocketAddr, SocketAddr) {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            let found = startup_addresses(&self.log.state().lines);
            if let (Some(addr), Some(metrics)) = found {
                return (addr, metrics);
            }
            let exited = lock(&self.child).try_wait().ok().flatten();
            if exited.is_some() || Instant::now() >= deadline {
                let why = match exited {
                    Some(status) => format!("exited with {status}"),
                    None => format!("printed no listening addresses within {STARTUP_TIMEOUT:?}"),
                };
                // Lets the output threads finish so the panic shows all of it.
                let _ = self
                    .log
                    .wait_until(Duration::from_secs(2), |s| s.open_streams == 0);
                self.output_shown = true;
                panic!("goaround {args:?} {why}; its output:\n{}", self.stderr());
            }
            self.log.wait_until(POLL_EVERY, |_| false);
        }
    }
}

impl Drop for Goaround {
    fn drop(&mut self) {
        let child = self.child.get_mut().unwrap_or_else(PoisonError::into_inner);
        if let Ok(None) = child.try_wait() {
            let _ = child.kill();
        }
        let _ = child.wait();
        if thread::panicking() && !self.output_shown {
            let tail = {
                let lines = &self.log.state().lines;
                lines[lines.len().saturating_sub(LOG_TAIL_ON_PANIC)..].join("\n")
            };
            eprintln!("--- goaround output (last {LOG_TAIL_ON_PANIC} lines at most) ---");
            eprintln!("{tail}\n--- end of goaround output ---");
        }
        let _ = std::fs::remove_dir_all(&self.temp_dir);
    }
}

/// The proxy address (a line with `listening on`) and the metrics address (a line with
/// `metrics on`/`metrics ... on`): the first socket address in each such line.
fn startup_addresses(lines: &[String]) -> (Option<SocketAddr>, Option<SocketAddr>) {
    let (mut proxy, mut metrics) = (None, None);
    for line in lines {
        let Some(addr) = first_socket_addr(line) else {
            continue;
        };
        if line.contains("metrics") {
            metrics = metrics.or(Some(addr));
        } else if line.contains("listening on") {
            proxy = proxy.or(Some(addr));
        }
    }
    (proxy, metrics)
}

/// The first word of `line` that is a socket address; an unspecified IP (a wildcard bind)
/// becomes loopback, which is where a test connects.
fn first_socket_addr(line: &str) -> Option<SocketAddr> {
    let mut addr: SocketAddr = line.split_whitespace().find_map(|word| {
        let word = word.strip_prefix("http://").unwrap_or(word);
        let word = word.trim_end_matches(|c: char| !c.is_ascii_digit());
        word.parse().ok()
    })?;
    if addr.ip().is_unspecified() {
        let loopback: IpAddr = match addr {
            SocketAddr::V4(_) => Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => Ipv6Addr::LOCALHOST.into(),
        };
        addr.set_ip(loopback);
    }
    Some(addr)
}

/// The value of `series` in Prometheus text exposition `page`.
pub fn metric_value(page: &str, series: &str) -> Option<f64> {
    page.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        value.split_whitespace().next()?.parse().ok()
    })
}

/// A poisoned lock only means another thread panicked; the data is still usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Output lines of the child, shared between the reader threads and the test.
#[derive(Default)]
struct Log {
    state: Mutex<LogState>,
    changed: Condvar,
}

#[derive(Default)]
struct LogState {
    lines: Vec<String>,
    /// Output pipes not yet at EOF.
    open_streams: usize,
}

impl Log {
    fn state(&self) -> MutexGuard<'_, LogState> {
        lock(&self.state)
    }

    /// Waits until `done` holds (true) or `timeout` passes (false).
    fn wait_until(&self, timeout: Duration, done: impl Fn(&LogState) -> bool) -> bool {
        let state = self.state();
        let result = self
            .changed
            .wait_timeout_while(state, timeout, |s| !done(s));
        let (state, _) = result.unwrap_or_else(PoisonError::into_inner);
        done(&state)
    }

    fn push(&self, line: String) {
        self.state().lines.push(line);
        self.changed.notify_all();
    }
}

/// Copies `pipe` into `log` line by line on a named thread until EOF.
fn collect_lines(pipe: Option<impl Read + Send + 'static>, prefix: &'static str, log: &Arc<Log>) {
    let Some(pipe) = pipe else {
        return;
    };
    log.state().open_streams += 1;
    let log = Arc::clone(log);
    let name = if prefix.is_empty() {
        "goaround-stderr"
    } else {
        "goaround-stdout"
    };
    let spawned = thread::Builder::new().name(name.to_owned()).spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut line = Vec::new();
        // Lossy, because a log line must never stop the collection.
        while matches!(reader.read_until(b'\n', &mut line), Ok(n) if n > 0) {
            let text = String::from_utf8_lossy(&line);
            log.push(format!("{prefix}{}", text.trim_end_matches(['\r', '\n'])));
            line.clear();
        }
        log.state().open_streams -= 1;
        log.changed.notify_all();
    });
    spawned.expect("spawn output reader thread");
}

/// A new empty directory under the system temp dir, unique to this process and call.
fn fresh_temp_dir() -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("goaround-test-{}-{n}", std::process::id()));
    // A leftover from an earlier process with the same pid is stale.
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    dir
}

/// Runs the binary with `args` (nothing added) and returns its output. Panics if it is still
/// running after [`CLI_TIMEOUT`]: a flag test that ends up starting a server is a failure.
pub fn run_cli(args: &[&str]) -> Output {
    let mut child = Command::new(bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin()));
    // Drained on their own threads so a chatty child never blocks on a full pipe.
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let deadline = Instant::now() + CLI_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for goaround") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = String::from_utf8_lossy(&stderr.join().unwrap_or_default()).into_owned();
            panic!("goaround {args:?} still running after {CLI_TIMEOUT:?}; stderr:\n{stderr}");
        }
        thread::sleep(POLL_EVERY);
    };
    Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

fn drain(pipe: Option<impl Read + Send + 'static>) -> thread::JoinHandle<Vec<u8>> {
    thread::Builder::new()
        .name("goaround-cli-output".to_owned())
        .spawn(move || {
            let mut out = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut out);
            }
            out
        })
        .expect("spawn output reader thread")
}

/// Sends one line to the control socket at `socket` and returns the whole reply (read until
/// the server closes). Panics on any error or after [`CONTROL_TIMEOUT`].
pub fn control(socket: &Path, line: &str) -> String {
    try_control(socket, line)
        .unwrap_or_else(|e| panic!("control {} {line:?}: {e}", socket.display()))
}

pub fn try_control(socket: &Path, line: &str) -> io::Result<String> {
    let mut stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(CONTROL_TIMEOUT))?;
    stream.set_write_timeout(Some(CONTROL_TIMEOUT))?;
    stream.write_all(format!("{line}\n").as_bytes())?;
    stream.shutdown(Shutdown::Write)?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply)?;
    Ok(reply)
}

/// Polls `cond` every 10 ms until it holds (true) or `timeout` passes (false): how tests
/// wait for something the binary does, never a fixed sleep.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Starts goaround in front of `backends` with the extra `args`, and waits until every
/// backend is up.
pub fn proxy(backends: &[&Backend], args: &[&str]) -> Goaround {
    let urls: Vec<String> = backends.iter().map(|b| b.url()).collect();
    let g = Goaround::builder().backends(&urls).args(args).start();
    assert!(
        g.wait_ready_backends(backends.len(), STARTUP_TIMEOUT),
        "{} backends not up within {STARTUP_TIMEOUT:?}",
        backends.len()
    );
    g
}

/// `GET path` over HTTP/1.1 with `Host: test`.
pub fn get_request(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn test_defaults_yield_to_the_callers_flags() {
        let args = with_test_defaults(
            strings(&["-b", "u", "--p=7", "-socket", "/s"]),
            "/x".as_ref(),
            &[],
        );
        let expected = [
            "-b",
            "u",
            "--p=7",
            "-socket",
            "/s",
            "-bind",
            "127.0.0.1",
            "-prometheus-port",
            "0",
        ];
        assert_eq!(args, strings(&expected));
        assert_eq!(flag_value(&args, "bind"), Some("127.0.0.1"));
        assert_eq!(flag_value(&args, "b"), Some("u"));
        assert_eq!(flag_value(&args, "n"), None);
        let args = with_test_defaults(strings(&["-b", "u"]), "/x".as_ref(), &["p", "socket"]);
        assert_eq!(flag_value(&args, "p"), None);
        assert_eq!(flag_value(&args, "socket"), None);
        assert_eq!(flag_value(&args, "prometheus-port"), Some("0"));
    }

    #[test]
    fn startup_lines_give_both_addresses() {
        let lines = strings(&[
            "2026-01-01T00:00:00.123Z INFO  [goaround] control socket listening on /tmp/g.sock",
            "2026-01-01T00:00:00.123Z INFO  [goaround] listening on 0.0.0.0:3000 (2 backends)",
            "2026-01-01T00:00:00.123Z INFO  [goaround] metrics listening on http://[::]:8080/metrics",
        ]);
        let (proxy, metrics) = startup_addresses(&lines);
        assert_eq!(proxy, Some("127.0.0.1:3000".parse().unwrap()));
        assert_eq!(metrics, Some("[::1]:8080".parse().unwrap()));
    }

    #[test]
    fn metric_values_are_found_by_exact_series() {
        let page = "# TYPE goaround_backends_up gauge\ngoaround_backends_up 2\n\
                    goaround_backends_up_total 9\nreq{b=\"x\"} 1.5 1700000000\n";
        assert_eq!(metric_value(page, "goaround_backends_up"), Some(2.0));
        assert_eq!(metric_value(page, "req{b=\"x\"}"), Some(1.5));
        assert_eq!(metric_value(page, "req"), None);
    }
}
