//! A fixture HTTP/1.1 backend: the server behind the proxy in integration tests, the demo and
//! the benchmark.
//!
//! It owns a listener on `127.0.0.1`, one named thread per connection (keep-alive, pipelining,
//! `Content-Length` and chunked request bodies, `Connection: close`), a set of routes that
//! behave well or badly on purpose, a switchable `/health`, and counters a test can poll.
//! It leaves correctness checks of the proxy to the tests; it only records what it received.
//! It is std-only and self-contained so `examples/fixture_backend.rs` can include it with
//! `#[path]`. Request bodies are read whole into memory (tests send small ones).
//!
//! | route            | answer                                                          |
//! |------------------|-----------------------------------------------------------------|
//! | `/`              | 200 `hello from NAME`                                           |
//! | `/echo`          | 200, body = request body; `X-Method`, `X-Target`, `X-Body-Len`  |
//! | `/headers`       | 200, one `name: value\n` line per request header, as received   |
//! | `/status/NNN`    | status NNN, body `status NNN` (none for 204 and 304)            |
//! | `/bytes/N`       | N bytes of `0123456789...`, Content-Length, written 64 KiB at a time |
//! | `/chunked/N`     | N bytes of the same pattern, chunked, chunks of at most 8 KiB   |
//! | `/slow/MS`       | waits MS ms, then 200 `slow`                                    |
//! | `/close`         | 200 `close` with `Connection: close`, then closes               |
//! | `/die`           | head with Content-Length 1000, 10 body bytes, then closes       |
//! | `/garbage`       | `NOT HTTP AT ALL\r\n\r\n`, then closes                          |
//! | `/hang`          | never answers (until the backend stops)                         |
//! | `/health`        | [`Backend::set_health`], or nothing while [`Backend::set_hang_health`] |
//! | `/stats`         | 200, the counters: `requests N`, `health_checks N`, `connections N` lines |
//!
//! HEAD gets the same head as GET and no body. Unknown paths get 404. Every answer carries
//! `X-Backend: NAME`. Like `/health`, `/stats` is not counted in `requests` (a script reading
//! the counters does not change them).

// Each test binary (and the example) uses a different part of the fixture.
#![allow(dead_code)]

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Longest request line, header line or chunk-size line, CRLF included.
pub const MAX_LINE: usize = 64 * 1024;
/// Most header fields in one head; more is answered with 400.
pub const MAX_HEADERS: usize = 256;
/// `/bytes/N` writes its body in pieces of this size.
const BYTES_PIECE: usize = 64 * 1024;
/// `/chunked/N` writes chunks of at most this size.
const CHUNK_SIZE: usize = 8 * 1024;
const PATTERN: &[u8] = b"0123456789";
/// What `/health` answers until [`Backend::set_health`] is called (GoAround's format).
pub const HEALTHY_BODY: &str = r#"{"state": "healthy", "message": ""}"#;
/// How long `stop` waits for connection threads to notice their socket was shut down.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// How often [`Backend::wait_for`] re-checks its condition.
const POLL_EVERY: Duration = Duration::from_millis(5);
/// Size of each connection's read buffer.
const READ_BUFFER: usize = 16 * 1024;

/// One non-health request as the backend received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    pub method: String,
    pub target: String,
    /// `HTTP/1.1` or `HTTP/1.0`.
    pub version: String,
    /// In order, names spelled as sent.
    pub headers: Vec<(String, String)>,
    /// Decoded (de-chunked) body.
    pub body: Vec<u8>,
}

impl Recorded {
    /// First value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// Every value of header `name` (case-insensitive), in order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        header_all(&self.headers, name)
    }
}

/// A running fixture backend; stopping it (or dropping it) closes the listener and every
/// open connection.
pub struct Backend {
    shared: Arc<Shared>,
    addr: SocketAddr,
    acceptor: Option<JoinHandle<()>>,
}

impl Backend {
    /// Starts a backend on `127.0.0.1:0`. Panics if it cannot bind (tests cannot go on).
    pub fn start(name: &str) -> Backend {
        let any_port = SocketAddr::from(([127, 0, 0, 1], 0));
        Backend::bind(name, any_port)
            .unwrap_or_else(|e| panic!("fixture backend {name}: cannot bind: {e}"))
    }

    /// Starts a backend on `addr` (port 0 asks the OS).
    pub fn bind(name: &str, addr: SocketAddr) -> io::Result<Backend> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(name));
        let acceptor = thread::Builder::new()
            .name(format!("{name}-accept"))
            .spawn({
                let shared = Arc::clone(&shared);
                move || accept_loop(listener, &shared)
            })?;
        Ok(Backend {
            shared,
            addr,
            acceptor: Some(acceptor),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// What `GET /health` answers from now on (always `Content-Type: application/json`).
    pub fn set_health(&self, status: u16, body: &str) {
        let mut control = self.shared.control();
        control.health_status = status;
        control.health_body = body.to_owned();
    }

    /// While set, `/health` requests are read and held without an answer; clearing it lets
    /// the held ones answer.
    pub fn set_hang_health(&self, hang: bool) {
        self.shared.control().hang_health = hang;
        self.shared.changed.notify_all();
    }

    /// Whether [`Backend::received`] keeps requests (default true). The benchmark turns it
    /// off so memory stays flat over millions of requests.
    pub fn set_record(&self, record: bool) {
        self.shared.record.store(record, Ordering::SeqCst);
    }

    /// Non-health requests whose head and body were read completely (counted before the
    /// answer is written, so a client that has its response can rely on it).
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// `/health` requests received, held ones included.
    pub fn health_checks(&self) -> u64 {
        self.shared.health_checks.load(Ordering::SeqCst)
    }

    /// TCP connections accepted.
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// [`Backend::requests`], [`Backend::health_checks`] and [`Backend::connections`] as
    /// `/stats` answers them: one `name N` line each.
    pub fn stats(&self) -> String {
        self.shared.stats()
    }

    /// Non-health requests between head read and answer written. It drops just after the
    /// client may already have its response: poll it with [`Backend::wait_for`].
    pub fn in_flight(&self) -> usize {
        self.shared.in_flight.load(Ordering::SeqCst)
    }

    /// Peak of [`Backend::in_flight`] since start.
    pub fn max_in_flight(&self) -> usize {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }

    /// Every recorded non-health request, oldest first.
    pub fn received(&self) -> Vec<Recorded> {
        lock(&self.shared.received).clone()
    }

    /// Polls `cond` every 5 ms until it holds (true) or `timeout` passes (false).
    pub fn wait_for(&self, cond: impl Fn(&Backend) -> bool, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if cond(self) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(POLL_EVERY);
        }
    }

    /// Closes the listener (new connections are refused) and every open connection (peers
    /// see EOF or a reset). Dropping the backend does the same.
    pub fn stop(mut self) {
        self.shut_down();
    }

    /// Stops like [`Backend::stop`], then returns the final counters as [`Backend::stats`]
    /// writes them. Final: a request counted later could not be answered any more.
    pub fn stop_and_count(mut self) -> String {
        self.shut_down();
        self.shared.stats()
    }

    fn shut_down(&mut self) {
        let Some(acceptor) = self.acceptor.take() else {
            return;
        };
        self.shared.control().stopping = true;
        self.shared.changed.notify_all();
        // The acceptor is blocked in accept(); a connection of our own wakes it up to see
        // `stopping`. Connecting fails when the acceptor is already gone (fine) or, under a
        // flood, when the backlog is full (try again).
        while !acceptor.is_finished() {
            if TcpStream::connect_timeout(&self.addr, Duration::from_secs(1)).is_ok() {
                break;
            }
        }
        let _ = acceptor.join();
        // The listener is closed now and no connection can be added to `open`.
        let open: Vec<TcpStream> = lock(&self.shared.open).drain().map(|(_, s)| s).collect();
        for stream in open {
            // Unblocks the connection's thread in read or write, whatever it is doing.
            let _ = stream.shutdown(Shutdown::Both);
        }
        self.shared.wait_connections_gone(STOP_GRACE);
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// A URL where nothing listens (the port was free a moment ago), for connect-refused tests.
pub fn dead_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let addr = listener
        .local_addr()
        .expect("local_addr of a bound listener");
    drop(listener);
    format!("http://{addr}")
}

/// Settings tests change while the backend runs, and the stop flag.
struct Control {
    stopping: bool,
    health_status: u16,
    health_body: String,
    hang_health: bool,
}

struct Shared {
    name: String,
    control: Mutex<Control>,
    /// Signalled when `stopping` or `hang_health` changes.
    changed: Condvar,
    /// An atomic rather than in `control`: it is read on every request.
    record: AtomicBool,
    requests: AtomicU64,
    health_checks: AtomicU64,
    connections: AtomicU64,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    received: Mutex<Vec<Recorded>>,
    /// A second handle on each open connection, so `stop` can shut it down.
    open: Mutex<HashMap<u64, TcpStream>>,
    /// Connection threads still running; signalled through `threads_changed`.
    live_threads: Mutex<usize>,
    threads_changed: Condvar,
}

impl Shared {
    fn new(name: &str) -> Shared {
        Shared {
            name: name.to_owned(),
            control: Mutex::new(Control {
                stopping: false,
                health_status: 200,
                health_body: HEALTHY_BODY.to_owned(),
                hang_health: false,
            }),
            record: AtomicBool::new(true),
            changed: Condvar::new(),
            requests: AtomicU64::new(0),
            health_checks: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            received: Mutex::new(Vec::new()),
            open: Mutex::new(HashMap::new()),
            live_threads: Mutex::new(0),
            threads_changed: Condvar::new(),
        }
    }

    fn control(&self) -> MutexGuard<'_, Control> {
        lock(&self.control)
    }

    /// The counters as `/stats` and [`Backend::stats`] write them.
    fn stats(&self) -> String {
        format!(
            "requests {}\nhealth_checks {}\nconnections {}\n",
            self.requests.load(Ordering::SeqCst),
            self.health_checks.load(Ordering::SeqCst),
            self.connections.load(Ordering::SeqCst)
        )
    }

    fn stopping(&self) -> bool {
        self.control().stopping
    }

    /// Blocks while `blocked(control)` holds and the backend runs, at most `timeout` (None:
    /// no limit). Returns whether the backend is stopping.
    fn wait_while(&self, timeout: Option<Duration>, blocked: impl Fn(&Control) -> bool) -> bool {
        let still = |c: &mut Control| !c.stopping && blocked(c);
        let control = self.control();
        let control = match timeout {
            Some(t) => match self.changed.wait_timeout_while(control, t, still) {
                Ok((control, _)) => control,
                Err(poisoned) => poisoned.into_inner().0,
            },
            None => self
                .changed
                .wait_while(control, still)
                .unwrap_or_else(PoisonError::into_inner),
        };
        control.stopping
    }

    fn wait_connections_gone(&self, timeout: Duration) {
        let live = lock(&self.live_threads);
        let _ = self
            .threads_changed
            .wait_timeout_while(live, timeout, |n| *n > 0);
    }
}

/// A poisoned lock only means a connection thread panicked; the data is still usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn accept_loop(listener: TcpListener, shared: &Arc<Shared>) {
    for (id, stream) in (0u64..).zip(listener.incoming()) {
        if shared.stopping() {
            return;
        }
        match stream {
            Ok(stream) => {
                shared.connections.fetch_add(1, Ordering::SeqCst);
                spawn_connection(stream, id, shared);
            }
            // Out of file descriptors or a connection reset before accept: back off a
            // little rather than spin, and keep serving.
            Err(_) => thread::sleep(Duration::from_millis(10)),
        }
    }
}

fn spawn_connection(stream: TcpStream, id: u64, shared: &Arc<Shared>) {
    let Ok(handle) = stream.try_clone() else {
        return;
    };
    lock(&shared.open).insert(id, handle);
    *lock(&shared.live_threads) += 1;
    let guard = ConnectionGuard {
        shared: Arc::clone(shared),
        id,
    };
    let spawned = thread::Builder::new()
        .name(format!("{}-conn-{id}", shared.name))
        .spawn(move || {
            // Bound whole, so the guard drops when this thread ends, however it ends.
            let guard = guard;
            serve_connection(stream, &guard.shared);
        });
    // On spawn failure the closure, and with it the guard and the stream, is dropped.
    drop(spawned);
}

/// Unregisters a connection when its thread ends, however it ends.
struct ConnectionGuard {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        lock(&self.shared.open).remove(&self.id);
        *lock(&self.shared.live_threads) -= 1;
        self.shared.threads_changed.notify_all();
    }
}

/// Counts a non-health request in flight for as long as it lives.
struct InFlight<'a>(&'a Shared);

impl<'a> InFlight<'a> {
    fn enter(shared: &'a Shared) -> InFlight<'a> {
        let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        shared.max_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(shared)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What the connection does after an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Next {
    KeepAlive,
    Close,
}

fn serve_connection(stream: TcpStream, shared: &Shared) {
    let _ = stream.set_nodelay(true);
    let mut conn = BufReader::with_capacity(READ_BUFFER, stream);
    loop {
        let head = match read_head(&mut conn) {
            Ok(Some(head)) => head,
            Ok(None) => return,
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                let body = format!("bad request: {e}\n");
                let mut reply = Reply::new(conn.get_ref(), &shared.name, false, Next::Close);
                let _ = reply.send(400, &[], body.as_bytes());
                return;
            }
            Err(_) => return,
        };
        match serve_request(&mut conn, head, shared) {
            Ok(Next::KeepAlive) => continue,
            Ok(Next::Close) | Err(_) => return,
        }
    }
}

/// A request head: request line and header fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestHead {
    pub method: String,
    pub target: String,
    pub version: String,
    pub headers: Vec<(String, String)>,
}

impl RequestHead {
    fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }

    /// RFC 9112 §9.3: HTTP/1.1 stays open unless `close`; HTTP/1.0 only with `keep-alive`.
    fn next(&self) -> Next {
        let has = |token: &str| {
            header_all(&self.headers, "connection")
                .iter()
                .flat_map(|v| v.split(','))
                .any(|t| t.trim().eq_ignore_ascii_case(token))
        };
        let keep = if self.version == "HTTP/1.0" {
            has("keep-alive")
        } else {
            !has("close")
        };
        if keep {
            Next::KeepAlive
        } else {
            Next::Close
        }
    }
}

/// Reads a request head; `Ok(None)` on a clean EOF before its first byte. Framing errors are
/// `InvalidData`. Empty lines before the request line are skipped (RFC 9112 §2.2).
pub fn read_head(r: &mut impl BufRead) -> io::Result<Option<RequestHead>> {
    let line = loop {
        match read_line(r)? {
            None => return Ok(None),
            Some(line) if line.is_empty() => continue,
            Some(line) => break line,
        }
    };
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid(format!("bad request line {line:?}")));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(invalid(format!("unsupported version {version:?}")));
    }
    Ok(Some(RequestHead {
        method: method.to_owned(),
        target: target.to_owned(),
        version: version.to_owned(),
        headers: read_fields(r)?,
    }))
}

/// Reads header (or trailer) fields up to and including the empty line.
pub fn read_fields(r: &mut impl BufRead) -> io::Result<Vec<(String, String)>> {
    let mut fields = Vec::new();
    loop {
        let line = read_line(r)?.ok_or_else(|| eof("connection closed inside a head"))?;
        if line.is_empty() {
            return Ok(fields);
        }
        if fields.len() == MAX_HEADERS {
            return Err(invalid("too many header fields".to_owned()));
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(invalid(format!("header line without colon {line:?}")));
        };
        fields.push((name.to_owned(), value.trim().to_owned()));
    }
}

/// Reads one CRLF-terminated line (without the CRLF). `Ok(None)` on EOF before any byte. A
/// bare LF, a line longer than [`MAX_LINE`] or EOF inside the line is an error: the fixture
/// is strict so that a proxy framing bug shows up in tests.
pub fn read_line(r: &mut impl BufRead) -> io::Result<Option<String>> {
    let mut line = Vec::new();
    let n = r
        .by_ref()
        .take(MAX_LINE as u64)
        .read_until(b'\n', &mut line)?;
    if n == 0 {
        return Ok(None);
    }
    if !line.ends_with(b"\r\n") {
        return Err(match line.last() {
            Some(b'\n') => invalid("line ends in a bare LF".to_owned()),
            _ if n == MAX_LINE => invalid("line too long".to_owned()),
            _ => eof("connection closed inside a line"),
        });
    }
    line.truncate(line.len() - 2);
    Ok(Some(String::from_utf8_lossy(&line).into_owned()))
}

/// Reads a chunked body (RFC 9112 §7.1) and returns it decoded; extensions and trailers are
/// read and dropped.
pub fn read_chunked_body(r: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line = read_line(r)?.ok_or_else(|| eof("connection closed before a chunk"))?;
        let size = line.split(';').next().unwrap_or_default().trim();
        let size = u64::from_str_radix(size, 16)
            .map_err(|_| invalid(format!("bad chunk size line {line:?}")))?;
        if size == 0 {
            read_fields(r)?;
            return Ok(body);
        }
        let before = body.len() as u64;
        r.by_ref().take(size).read_to_end(&mut body)?;
        if body.len() as u64 - before != size {
            return Err(eof("connection closed inside a chunk"));
        }
        let mut crlf = [0; 2];
        r.read_exact(&mut crlf)?;
        if &crlf != b"\r\n" {
            return Err(invalid("chunk data not followed by CRLF".to_owned()));
        }
    }
}

/// Reads the body a request head announces (RFC 9112 §6.3).
fn read_body(r: &mut impl BufRead, head: &RequestHead) -> io::Result<Vec<u8>> {
    if let Some(codings) = header(&head.headers, "transfer-encoding") {
        let last = codings.rsplit(',').next().unwrap_or_default().trim();
        if !last.eq_ignore_ascii_case("chunked") {
            return Err(invalid(format!(
                "unsupported transfer-encoding {codings:?}"
            )));
        }
        return read_chunked_body(r);
    }
    let Some(length) = header(&head.headers, "content-length") else {
        return Ok(Vec::new());
    };
    let length: u64 = length
        .parse()
        .map_err(|_| invalid(format!("bad content-length {length:?}")))?;
    let mut body = Vec::new();
    r.by_ref().take(length).read_to_end(&mut body)?;
    if body.len() as u64 != length {
        return Err(eof("connection closed inside a body"));
    }
    Ok(body)
}

fn expects_continue(head: &RequestHead) -> bool {
    header(&head.headers, "expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
}

fn serve_request(
    conn: &mut BufReader<TcpStream>,
    head: RequestHead,
    shared: &Shared,
) -> io::Result<Next> {
    let is_health = head.path() == "/health";
    let is_stats = head.path() == "/stats";
    let in_flight = (!is_health && !is_stats).then(|| InFlight::enter(shared));
    if expects_continue(&head) {
        conn.get_ref().write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    }
    let body = match read_body(conn, &head) {
        Ok(body) => body,
        Err(e) if e.kind() == io::ErrorKind::InvalidData => {
            let msg = format!("bad request: {e}\n");
            return Reply::new(conn.get_ref(), &shared.name, false, Next::Close).send(
                400,
                &[],
                msg.as_bytes(),
            );
        }
        Err(e) => return Err(e),
    };
    let mut reply = Reply::new(
        conn.get_ref(),
        &shared.name,
        head.method == "HEAD",
        head.next(),
    );
    reply.in_flight = in_flight;
    if is_health {
        shared.health_checks.fetch_add(1, Ordering::SeqCst);
        return answer_health(&mut reply, shared);
    }
    if is_stats {
        let stats = shared.stats();
        return reply.send(200, &[("Content-Type", "text/plain")], stats.as_bytes());
    }
    if shared.record.load(Ordering::Relaxed) {
        let recorded = Recorded {
            method: head.method.clone(),
            target: head.target.clone(),
            version: head.version.clone(),
            headers: head.headers.clone(),
            body: body.clone(),
        };
        lock(&shared.received).push(recorded);
    }
    shared.requests.fetch_add(1, Ordering::SeqCst);
    route(&mut reply, &head, &body, shared)
}

fn answer_health(reply: &mut Reply<'_>, shared: &Shared) -> io::Result<Next> {
    if shared.wait_while(None, |c| c.hang_health) {
        return Ok(Next::Close);
    }
    let (status, body) = {
        let control = shared.control();
        (control.health_status, control.health_body.clone())
    };
    let json = [("Content-Type", "application/json")];
    reply.send(status, &json, body.as_bytes())
}

fn route(
    reply: &mut Reply<'_>,
    head: &RequestHead,
    body: &[u8],
    shared: &Shared,
) -> io::Result<Next> {
    let path = head.path();
    let (first, rest) = match path.get(1..).and_then(|p| p.split_once('/')) {
        Some((first, rest)) => (first, Some(rest)),
        None => (path.get(1..).unwrap_or_default(), None),
    };
    let text = [("Content-Type", "text/plain")];
    match (first, rest) {
        ("", None) => reply.send(200, &text, format!("hello from {}", shared.name).as_bytes()),
        ("echo", None) => {
            let len = body.len().to_string();
            let headers = [
                ("Content-Type", "application/octet-stream"),
                ("X-Method", head.method.as_str()),
                ("X-Target", head.target.as_str()),
                ("X-Body-Len", len.as_str()),
            ];
            reply.send(200, &headers, body)
        }
        ("headers", None) => {
            let mut listing = String::new();
            for (name, value) in &head.headers {
                // Writing to a String cannot fail.
                let _ = writeln!(listing, "{name}: {value}");
            }
            reply.send(200, &text, listing.as_bytes())
        }
        ("status", Some(n)) => match n.parse::<u16>() {
            Ok(status @ 200..=999) => {
                reply.send(status, &text, format!("status {status}").as_bytes())
            }
            _ => reply.send(400, &text, b"status must be 200..=999"),
        },
        ("bytes", Some(n)) => match n.parse() {
            Ok(len) => reply.send_pattern(len),
            Err(_) => reply.send(400, &text, b"bad length"),
        },
        ("chunked", Some(n)) => match n.parse() {
            Ok(len) => reply.send_chunked_pattern(len),
            Err(_) => reply.send(400, &text, b"bad length"),
        },
        ("slow", Some(ms)) => match ms.parse() {
            Ok(ms) => {
                let stopping = shared.wait_while(Some(Duration::from_millis(ms)), |_| true);
                if stopping {
                    return Ok(Next::Close);
                }
                reply.send(200, &text, b"slow")
            }
            Err(_) => reply.send(400, &text, b"bad delay"),
        },
        ("close", None) => {
            reply.next = Next::Close;
            reply.send(200, &text, b"close")
        }
        ("die", None) => reply.die(),
        ("garbage", None) => {
            reply.raw(b"NOT HTTP AT ALL\r\n\r\n")?;
            Ok(Next::Close)
        }
        ("hang", None) => {
            shared.wait_while(None, |_| true);
            Ok(Next::Close)
        }
        _ => reply.send(404, &text, b"not found"),
    }
}

/// Writes one response on a connection.
struct Reply<'a> {
    /// The request counts as in flight until its answer's last write starts: a proxy that
    /// has the whole answer may send the next request before this thread gets to return.
    in_flight: Option<InFlight<'a>>,
    stream: &'a TcpStream,
    /// Sent as `X-Backend` on every answer, so a test knows who served any route.
    backend: &'a str,
    head_only: bool,
    next: Next,
}

impl<'a> Reply<'a> {
    fn new(stream: &'a TcpStream, backend: &'a str, head_only: bool, next: Next) -> Reply<'a> {
        Reply {
            in_flight: None,
            stream,
            backend,
            head_only,
            next,
        }
    }

    fn head(&self, status: u16, headers: &[(&str, &str)], length: Option<u64>) -> Vec<u8> {
        // Writing to a String cannot fail.
        let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status));
        let _ = write!(head, "X-Backend: {}\r\n", self.backend);
        for (name, value) in headers {
            let _ = write!(head, "{name}: {value}\r\n");
        }
        if let Some(length) = length {
            let _ = write!(head, "Content-Length: {length}\r\n");
        }
        if self.next == Next::Close {
            head.push_str("Connection: close\r\n");
        }
        head.push_str("\r\n");
        head.into_bytes()
    }

    fn raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Head and body in one write: keeps the fixture cheap when it is benchmarked against.
    fn send(&mut self, status: u16, headers: &[(&str, &str)], body: &[u8]) -> io::Result<Next> {
        // RFC 9110 §8.6 and §15.4.5: no Content-Length and no content for 204 and 304.
        let bodiless = status == 204 || status == 304;
        let length = (!bodiless).then_some(body.len() as u64);
        let mut out = self.head(status, headers, length);
        if !self.head_only && !bodiless {
            out.extend_from_slice(body);
        }
        drop(self.in_flight.take());
        self.raw(&out)?;
        Ok(self.next)
    }

    fn send_pattern(&mut self, len: u64) -> io::Result<Next> {
        let head = self.head(
            200,
            &[("Content-Type", "application/octet-stream")],
            Some(len),
        );
        self.raw(&head)?;
        if !self.head_only {
            let mut sent = 0;
            while sent < len {
                let piece = (len - sent).min(BYTES_PIECE as u64);
                self.raw(pattern_at(sent, piece as usize))?;
                sent += piece;
            }
        }
        Ok(self.next)
    }

    fn send_chunked_pattern(&mut self, len: u64) -> io::Result<Next> {
        let headers = [
            ("Content-Type", "application/octet-stream"),
            ("Transfer-Encoding", "chunked"),
        ];
        let head = self.head(200, &headers, None);
        self.raw(&head)?;
        if self.head_only {
            return Ok(self.next);
        }
        let mut chunk = Vec::with_capacity(CHUNK_SIZE + 16);
        let mut sent = 0;
        while sent < len {
            let size = (len - sent).min(CHUNK_SIZE as u64);
            chunk.clear();
            chunk.extend_from_slice(format!("{size:x}\r\n").as_bytes());
            chunk.extend_from_slice(pattern_at(sent, size as usize));
            chunk.extend_from_slice(b"\r\n");
            self.raw(&chunk)?;
            sent += size;
        }
        self.raw(b"0\r\n\r\n")?;
        Ok(self.next)
    }

    /// A backend dying mid-response: promises 1000 bytes, sends 10, closes.
    fn die(&mut self) -> io::Result<Next> {
        let mut out = self.head(200, &[("Content-Type", "text/plain")], Some(1000));
        if !self.head_only {
            out.extend_from_slice(&PATTERN[..10]);
        }
        self.raw(&out)?;
        let _ = self.stream.shutdown(Shutdown::Write);
        Ok(Next::Close)
    }
}

/// `len` bytes of the repeating pattern starting at body offset `offset`.
fn pattern_at(offset: u64, len: usize) -> &'static [u8] {
    static BUFFER: OnceLock<Vec<u8>> = OnceLock::new();
    let buffer = BUFFER.get_or_init(|| {
        let len = BYTES_PIECE.max(CHUNK_SIZE) + PATTERN.len();
        PATTERN.iter().copied().cycle().take(len).collect()
    });
    let start = (offset % PATTERN.len() as u64) as usize;
    &buffer[start..start + len]
}

/// The byte at `offset` of `/bytes/N` and `/chunked/N` bodies, for tests checking content.
pub fn pattern_byte(offset: u64) -> u8 {
    PATTERN[(offset % PATTERN.len() as u64) as usize]
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        413 => "Content Too Large",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Other",
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    header_all(headers, name).into_iter().next()
}

fn header_all<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    let named = |(n, _): &&(String, String)| n.eq_ignore_ascii_case(name);
    headers
        .iter()
        .filter(named)
        .map(|(_, v)| v.as_str())
        .collect()
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

fn eof(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out its bytes one at a time, like the slowest possible peer.
    struct OneByte<'a>(&'a [u8]);

    impl Read for OneByte<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let Some((first, rest)) = self.0.split_first() else {
                return Ok(0);
            };
            if buf.is_empty() {
                return Ok(0);
            }
            buf[0] = *first;
            self.0 = rest;
            Ok(1)
        }
    }

    fn chunked(input: &[u8]) -> io::Result<Vec<u8>> {
        read_chunked_body(&mut BufReader::with_capacity(1, OneByte(input)))
    }

    #[test]
    fn chunked_body_is_decoded_when_fed_one_byte_at_a_time() {
        let input =
            b"5\r\nhello\r\n1;ext=1\r\n \r\nA\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\nNEXT";
        let mut reader = BufReader::with_capacity(1, OneByte(input));
        assert_eq!(read_chunked_body(&mut reader).unwrap(), b"hello 0123456789");
        let mut rest = String::new();
        reader.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "NEXT", "reader stops right after the body");
    }

    #[test]
    fn chunked_body_framing_errors() {
        let kind = |input: &[u8]| chunked(input).unwrap_err().kind();
        assert_eq!(kind(b"zz\r\n"), io::ErrorKind::InvalidData);
        assert_eq!(kind(b"5\r\nhelloXX0\r\n\r\n"), io::ErrorKind::InvalidData);
        assert_eq!(kind(b"5\nhello\r\n0\r\n\r\n"), io::ErrorKind::InvalidData);
        assert_eq!(kind(b"5\r\nhel"), io::ErrorKind::UnexpectedEof);
        assert_eq!(kind(b"5\r\nhello\r\n"), io::ErrorKind::UnexpectedEof);
        assert_eq!(kind(b"0\r\n"), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn head_is_parsed_with_names_as_sent() {
        let input = b"\r\nPOST /echo?x=1 HTTP/1.1\r\nHost: a\r\nX-Dup: 1\r\nx-dup: 2\r\n\r\n";
        let head = read_head(&mut BufReader::with_capacity(1, OneByte(input)))
            .unwrap()
            .unwrap();
        assert_eq!(head.method, "POST");
        assert_eq!(head.target, "/echo?x=1");
        assert_eq!(head.path(), "/echo");
        assert_eq!(header_all(&head.headers, "X-DUP"), ["1", "2"]);
        assert_eq!(head.headers[2].0, "x-dup");
    }

    #[test]
    fn head_errors() {
        let parse = |input: &[u8]| read_head(&mut &input[..]);
        assert!(parse(b"").unwrap().is_none());
        assert!(parse(b"GET /\r\n\r\n").is_err());
        assert!(parse(b"GET / HTTP/2.0\r\n\r\n").is_err());
        assert!(parse(b"GET / HTTP/1.1\r\nno colon\r\n\r\n").is_err());
        assert!(parse(b"GET / HTTP/1.1\nHost: a\n\n").is_err());
    }

    #[test]
    fn keep_alive_follows_version_and_connection_tokens() {
        let head = |version: &str, connection: Option<&str>| RequestHead {
            method: "GET".into(),
            target: "/".into(),
            version: version.into(),
            headers: connection
                .map(|c| ("Connection".into(), c.into()))
                .into_iter()
                .collect(),
        };
        assert_eq!(head("HTTP/1.1", None).next(), Next::KeepAlive);
        assert_eq!(head("HTTP/1.1", Some("TE, Close")).next(), Next::Close);
        assert_eq!(head("HTTP/1.0", None).next(), Next::Close);
        assert_eq!(head("HTTP/1.0", Some("keep-alive")).next(), Next::KeepAlive);
    }

    #[test]
    fn body_by_content_length_leaves_the_next_request() {
        let head = RequestHead {
            method: "POST".into(),
            target: "/".into(),
            version: "HTTP/1.1".into(),
            headers: vec![("Content-Length".into(), "3".into())],
        };
        let mut input: &[u8] = b"abcGET";
        assert_eq!(read_body(&mut input, &head).unwrap(), b"abc");
        assert_eq!(input, b"GET");
        let mut short: &[u8] = b"ab";
        assert!(read_body(&mut short, &head).is_err());
    }

    #[test]
    fn stats_count_requests_but_not_themselves() {
        let backend = Backend::start("stats");
        let get = |path: &str| {
            let mut conn = TcpStream::connect(backend.addr()).unwrap();
            let request = format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
            conn.write_all(request.as_bytes()).unwrap();
            let mut response = String::new();
            conn.read_to_string(&mut response).unwrap();
            response
        };
        get("/");
        get("/health");
        let response = get("/stats");
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
        let body = "requests 1\nhealth_checks 1\nconnections 3\n";
        assert!(response.ends_with(body), "{response}");
        assert_eq!(
            backend.stats(),
            "requests 1\nhealth_checks 1\nconnections 3\n"
        );
    }

    #[test]
    fn pattern_continues_across_pieces() {
        let mut body = Vec::new();
        for (offset, len) in [(0, 7), (7, 65536), (65543, 13)] {
            body.extend_from_slice(pattern_at(offset, len));
        }
        assert!(body
            .iter()
            .enumerate()
            .all(|(i, b)| *b == pattern_byte(i as u64)));
    }
}
