//! What the event loops promise, against the real binary: no client holds a loop or a
//! backend slot by not reading (stalled downloads, a reader cut at `-write-timeout`, a slow
//! reader of a small answer), a stuck `/metrics` scraper delays no other, and `-n` is one
//! limit per backend across all loops, with a FIFO queue and `-queue-timeout`.
//!
//! A client that "does not read" gets a small receive buffer (`SO_RCVBUF` before connect),
//! so the kernel stops taking bytes for it early and the proxy's own buffering is what is
//! tested. The `-n` tests count requests in flight at a [`HoldingBackend`], whose count is
//! exact where the fixture's may run one over. Every test starts its own `goaround` and
//! backends on `127.0.0.1:0`; conditions are polled with deadlines, and the only sleeps pace
//! a slow reader, space the arrivals of queued requests, or are a backend's hold.

mod support;

use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

use support::backend::{pattern_byte, read_head, HEALTHY_BODY};
use support::scripted::ScriptedServer;
use support::{get, get_request, proxy, wait_until, Backend, Goaround, Response};

/// Longest wait for backends to be up, or for any other polled condition.
const READY: Duration = Duration::from_secs(10);
/// How fast a well-behaved client must be served while others misbehave.
const PROMPT: Duration = Duration::from_secs(1);
/// Receive buffer of a client that does not read (the kernel may round it up a little).
const SMALL_RCVBUF: usize = 4096;

fn timed_get(addr: SocketAddr, path: &str) -> (Response, Duration) {
    let started = Instant::now();
    let r = get(addr, path);
    (r, started.elapsed())
}

/// `goaround_backend_in_flight` of `b`.
fn in_flight_series(b: &Backend) -> String {
    format!("goaround_backend_in_flight{{backend=\"{}\"}}", b.url())
}

/// A connection with a small receive buffer that has sent `GET path` and reads nothing
/// until the test says so.
fn stalled_client(addr: SocketAddr, path: &str) -> TcpStream {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).expect("socket");
    socket
        .set_recv_buffer_size(SMALL_RCVBUF)
        .expect("SO_RCVBUF");
    socket
        .connect_timeout(&addr.into(), READY)
        .expect("connect to goaround");
    let mut stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(READY)).expect("read timeout");
    stream
        .write_all(get_request(path).as_bytes())
        .expect("send request");
    stream
}

/// Reads one response head from `stream`, byte by byte (nothing after it is consumed), and
/// returns its Content-Length.
fn read_head_length(stream: &mut TcpStream) -> u64 {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).expect("read response head");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    head.lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or_else(|| panic!("no Content-Length in {head}"))
}

/// Reads `len` body bytes and checks them against the fixture's pattern from `offset`.
fn read_pattern(stream: &mut TcpStream, offset: u64, len: u64) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut at = offset;
    while at < offset + len {
        let want = buf.len().min((offset + len - at) as usize);
        let n = stream.read(&mut buf[..want]).expect("read body");
        assert!(n > 0, "body ended at {at} of {}", offset + len);
        for (i, b) in buf[..n].iter().enumerate() {
            assert_eq!(
                *b,
                pattern_byte(at + i as u64),
                "body differs at {}",
                at + i as u64
            );
        }
        at += n as u64;
    }
}

/// CPU time (user + system, in clock ticks) process `pid` has used so far.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc stat");
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime: fields 14 and 15 of proc(5), counted from the state field (3).
    field(11) + field(12)
}

/// Waits until process `pid` uses no CPU for 300 ms in a row: whatever it was moving has
/// stopped moving.
fn wait_quiet(pid: u32) {
    let mut last = cpu_ticks(pid);
    let mut quiet_samples = 0;
    let settled = wait_until(READY, || {
        thread::sleep(Duration::from_millis(100));
        let now = cpu_ticks(pid);
        quiet_samples = if now == last { quiet_samples + 1 } else { 0 };
        last = now;
        quiet_samples >= 3
    });
    assert!(settled, "goaround kept using CPU for {READY:?}");
}

/// Everything until the peer closes (a reset ends it too), and whether it did within
/// [`READY`].
fn read_until_closed(stream: &mut TcpStream) -> (u64, bool) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return (total, true),
            Ok(n) => total += n as u64,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return (total, true),
            Err(_) => return (total, false),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Clients that do not read
// ---------------------------------------------------------------------------------------

#[test]
fn forty_stalled_downloads_on_two_loops_do_not_delay_other_clients() {
    const STALLED: usize = 40;
    const LEN: u64 = 5 * 1024 * 1024;
    let b = Backend::start("b1");
    // Slots for everyone: what is tested is the loops, not the queue.
    let g = proxy(&[&b], &["-workers", "2", "-n", "64"]);
    let mut stalled: Vec<TcpStream> = (0..STALLED)
        .map(|_| stalled_client(g.addr(), &format!("/bytes/{LEN}")))
        .collect();
    // Each holds its slot until the last byte of its response is in the proxy's buffer,
    // which a client that reads nothing never lets happen.
    let series = in_flight_series(&b);
    let last = g.wait_metric(&series, STALLED as f64, READY);
    assert_eq!(last, Some(STALLED as f64), "{series}");
    // Until every buffer on the way is full the loops are busy copying; what is tested is
    // the stall itself.
    wait_quiet(g.pid());

    let mut slowest = Duration::ZERO;
    for i in 0..20 {
        let (r, took) = timed_get(g.addr(), &format!("/?other={i}"));
        assert_eq!((r.status, r.text().as_str()), (200, "hello from b1"));
        assert!(took < PROMPT, "request {i} took {took:?}");
        slowest = slowest.max(took);
    }
    eprintln!("{STALLED} stalled downloads: slowest of 20 other requests {slowest:?}");
    assert_eq!(g.metric(&series), Some(STALLED as f64), "{series}");

    // The stalled ones were only paused: two of them read their whole answer now.
    for stream in stalled.iter_mut().take(2) {
        assert_eq!(read_head_length(stream), LEN);
        read_pattern(stream, 0, LEN);
    }
}

#[test]
fn client_not_reading_is_cut_at_write_timeout_and_its_slot_freed() {
    const LEN: u64 = 50 * 1024 * 1024;
    let b = Backend::start("b1");
    let g = proxy(&[&b], &["-n", "1", "-write-timeout", "1s"]);
    let series = in_flight_series(&b);
    let started = Instant::now();
    let mut stalled = stalled_client(g.addr(), &format!("/bytes/{LEN}"));
    assert_eq!(g.wait_metric(&series, 1.0, READY), Some(1.0), "{series}");
    // Bytes stop leaving for the client at some point after `started`: the cut comes at
    // least a write timeout after that.
    assert_eq!(
        g.wait_metric(&series, 0.0, READY),
        Some(0.0),
        "slot never freed"
    );
    let cut_after = started.elapsed();
    assert!(
        cut_after >= Duration::from_secs(1) && cut_after < Duration::from_secs(8),
        "slot freed after {cut_after:?} with -write-timeout 1s"
    );
    assert!(
        g.wait_for_log("client not reading", READY),
        "no log line for the cut"
    );

    // The one slot serves the next client at once.
    let (r, took) = timed_get(g.addr(), "/");
    assert_eq!((r.status, r.text().as_str()), (200, "hello from b1"));
    assert!(took < PROMPT, "next request took {took:?}");

    // The stalled client finds its connection closed, its answer cut short.
    let (got, closed) = read_until_closed(&mut stalled);
    assert!(closed, "connection still open after {got} bytes");
    assert!(got < LEN, "the whole answer arrived ({got} bytes)");
    eprintln!("write timeout: cut after {cut_after:?}, the client got {got} of {LEN} bytes");
}

#[test]
fn slow_reader_of_a_small_answer_holds_no_slot() {
    // Head and body fit the proxy's 64 KiB buffer, and are far more than the client's
    // receive buffer takes.
    const LEN: u64 = 60_000;
    let b = Backend::start("b1");
    // One slot, and a queue long enough that a held slot shows as slowness, not a 503.
    let g = proxy(&[&b], &["-n", "1", "-queue-timeout", "10s"]);
    let series = in_flight_series(&b);
    let mut slow = stalled_client(g.addr(), &format!("/bytes/{LEN}"));
    assert!(
        b.wait_for(|b| b.requests() == 1, READY),
        "the slow reader's request never reached the backend"
    );
    assert_eq!(g.wait_metric(&series, 0.0, READY), Some(0.0), "{series}");

    // Not reading at all.
    let (r, took) = timed_get(g.addr(), "/");
    assert_eq!(r.status, 200);
    assert!(took < PROMPT, "request behind a non-reader took {took:?}");

    // Reading one byte every 100 ms, while others are served.
    assert_eq!(read_head_length(&mut slow), LEN);
    let trickle = thread::spawn(move || {
        let mut byte = [0u8; 1];
        for i in 0..10 {
            slow.read_exact(&mut byte).expect("read a byte");
            assert_eq!(byte[0], pattern_byte(i));
            thread::sleep(Duration::from_millis(100));
        }
        slow
    });
    for i in 0..5 {
        let (r, took) = timed_get(g.addr(), &format!("/?beside-trickle={i}"));
        assert_eq!(r.status, 200);
        assert!(
            took < PROMPT,
            "request {i} beside a trickling reader took {took:?}"
        );
    }
    let mut slow = trickle.join().expect("trickling reader");
    read_pattern(&mut slow, 10, LEN - 10);
}

// ---------------------------------------------------------------------------------------
// The metrics listener
// ---------------------------------------------------------------------------------------

#[test]
fn stuck_metrics_scrapers_do_not_delay_another() {
    let g = Goaround::builder().start();
    // Half a request head each, and then nothing.
    let stuck: Vec<TcpStream> = (0..4)
        .map(|_| {
            let mut s = TcpStream::connect(g.metrics_addr()).expect("connect to metrics");
            s.write_all(b"GET /metr").expect("send half a head");
            s
        })
        .collect();
    for i in 0..5 {
        let started = Instant::now();
        let page = g.metrics();
        let took = started.elapsed();
        assert!(page.contains("goaround_backends "), "scrape {i}: {page}");
        assert!(took < PROMPT, "scrape {i} beside stuck ones took {took:?}");
    }
    drop(stuck);
}

// ---------------------------------------------------------------------------------------
// -n across loops
// ---------------------------------------------------------------------------------------

fn spawn_get(addr: SocketAddr, path: String) -> JoinHandle<Response> {
    thread::spawn(move || get(addr, &path))
}

/// A backend that holds each request `/hold/MS?...` for MS ms and answers `200 held`.
///
/// Unlike the fixture's `in_flight`, which drops only after the answer is written (so the
/// proxy, which frees a slot as soon as it has the whole answer, can start the next request
/// on another connection before the old thread has counted down), this one counts a request
/// in flight only while holding it, before any byte of the answer leaves. Its peak is then
/// never above the proxy's slots in use: more than `-n` is a real breach.
struct HoldingBackend {
    server: ScriptedServer,
    state: Arc<Holding>,
}

#[derive(Default)]
struct Holding {
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    /// Targets in the order their heads arrived.
    arrivals: Mutex<Vec<String>>,
}

impl HoldingBackend {
    fn start() -> HoldingBackend {
        let state = Arc::new(Holding::default());
        let server = ScriptedServer::start({
            let state = Arc::clone(&state);
            move |stream| hold_requests(stream, &state)
        });
        HoldingBackend { server, state }
    }

    fn url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    fn in_flight(&self) -> usize {
        self.state.in_flight.load(Ordering::SeqCst)
    }

    fn max_in_flight(&self) -> usize {
        self.state.max_in_flight.load(Ordering::SeqCst)
    }

    fn arrivals(&self) -> Vec<String> {
        self.state
            .arrivals
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

fn hold_requests(stream: TcpStream, state: &Holding) {
    let mut reader = BufReader::new(&stream);
    while let Ok(Some(head)) = read_head(&mut reader) {
        let answer = if head.target == "/health" {
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{HEALTHY_BODY}",
                HEALTHY_BODY.len()
            )
        } else {
            let now = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            state.max_in_flight.fetch_max(now, Ordering::SeqCst);
            state
                .arrivals
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(head.target.clone());
            let ms = head
                .target
                .strip_prefix("/hold/")
                .and_then(|rest| rest.split('?').next())
                .and_then(|ms| ms.parse().ok())
                .unwrap_or(0);
            thread::sleep(Duration::from_millis(ms));
            state.in_flight.fetch_sub(1, Ordering::SeqCst);
            "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nheld".to_owned()
        };
        if (&stream).write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

#[test]
fn n_is_one_limit_across_loops_and_its_queue_is_fifo() {
    let b = HoldingBackend::start();
    let g = Goaround::builder()
        .backends(&[b.url()])
        .args(&["-workers", "2", "-n", "2", "-queue-timeout", "10s"])
        .start();
    assert!(g.wait_ready_backends(1, READY), "backend not up");
    // Two requests take both slots and hold them for a while.
    let mut clients: Vec<JoinHandle<Response>> = (0..2)
        .map(|i| spawn_get(g.addr(), format!("/hold/2000?holder={i}")))
        .collect();
    assert!(wait_until(READY, || b.in_flight() == 2), "slots not taken");
    // Six more queue, arriving 200 ms apart so their order is known. The gap only orders
    // arrivals; the holders outlast all of them.
    for i in 0..6 {
        clients.push(spawn_get(g.addr(), format!("/hold/300?queued={i}")));
        thread::sleep(Duration::from_millis(200));
    }
    for (i, c) in clients.into_iter().enumerate() {
        let r = c.join().expect("client thread");
        assert_eq!((r.status, r.text().as_str()), (200, "held"), "client {i}");
    }
    let arrivals = b.arrivals();
    assert_eq!(arrivals.len(), 8, "{arrivals:?}");
    assert_eq!(b.max_in_flight(), 2, "-n 2 not kept across two loops");

    // Two slots come free at about the same time, so neighbours may swap; a later arrival
    // never overtakes an earlier pair.
    let queued: Vec<usize> = arrivals
        .iter()
        .filter_map(|t| t.split("queued=").nth(1)?.parse().ok())
        .collect();
    assert_eq!(queued.len(), 6, "{arrivals:?}");
    for (pair, got) in queued.chunks(2).enumerate() {
        let mut got = got.to_vec();
        got.sort_unstable();
        assert_eq!(got, [pair * 2, pair * 2 + 1], "queue order {queued:?}");
    }
}

#[test]
fn queue_timeout_sends_the_excess_away_with_503_across_loops() {
    let b = Backend::start("b1");
    let g = proxy(
        &[&b],
        &["-workers", "2", "-n", "2", "-queue-timeout", "300ms"],
    );
    let clients: Vec<JoinHandle<Response>> = (0..8)
        .map(|i| spawn_get(g.addr(), format!("/slow/1500?client={i}")))
        .collect();
    let responses: Vec<Response> = clients
        .into_iter()
        .map(|c| c.join().expect("client thread"))
        .collect();
    let served = responses.iter().filter(|r| r.status == 200).count();
    let refused: Vec<&Response> = responses.iter().filter(|r| r.status == 503).collect();
    assert_eq!(
        (served, refused.len()),
        (2, 6),
        "{:?}",
        responses.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    for r in refused {
        assert!(r.text().contains("busy"), "{}", r.text());
    }
    assert_eq!(b.max_in_flight(), 2);
    assert_eq!(b.requests(), 2, "a refused request reached the backend");
    assert!(wait_until(READY, || b.in_flight() == 0));
}
