//! The retry table (`upstream::retry`) end to end, for the rows `tests/faults.rs` does not
//! cover: every backend refusing (each tried once, then 502 `no backend answered`), no head
//! within `-response-timeout` (504, never sent elsewhere), and a connect timeout, which
//! moves the request on without taking the backend out, until `-max-fails` of them in a row
//! do. (A reset or close before the head, GET retried and POST not, and the stale keep-alive
//! race are in `tests/faults.rs`.)
//!
//! A connect timeout needs a backend that does not answer a SYN. A non-routable address
//! would do it but leaves the loopback, so [`Unaccepting`] does it on `127.0.0.1`: a
//! listener with a backlog of 0 that stops accepting, its one queue place taken by a
//! connection of our own. Linux then drops further SYNs (`tcp_conn_request`: "accept queue
//! full"), and a connect waits until its caller gives up.

mod support;

use std::io::{BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

use support::backend::{read_head, HEALTHY_BODY};
use support::{get, proxy, request, Backend, Goaround, Response};

/// Longest wait for backends to be up, or for any other polled condition.
const READY: Duration = Duration::from_secs(10);

fn served_by(r: &Response) -> &str {
    r.header("x-backend").unwrap_or("(none)")
}

fn upstream_errors(g: &Goaround, backend: &str, kind: &str) -> f64 {
    let series = format!("goaround_upstream_errors_total{{backend=\"{backend}\",kind=\"{kind}\"}}");
    g.metric(&series).unwrap_or(0.0)
}

// ---------------------------------------------------------------------------------------
// Refused everywhere
// ---------------------------------------------------------------------------------------

#[test]
fn every_backend_refusing_is_tried_once_each_then_502() {
    let (a, b, c) = (
        Backend::start("a"),
        Backend::start("b"),
        Backend::start("c"),
    );
    let urls = [a.url(), b.url(), c.url()];
    let g = proxy(&[&a, &b, &c], &["-health-interval", "60s"]);
    a.stop();
    b.stop();
    c.stop();
    let started = Instant::now();
    let body = "tried everywhere";
    let raw = format!(
        "POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let r = request(g.addr(), raw.as_bytes());
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(r.text().contains("no backend answered"), "{}", r.text());
    assert!(
        started.elapsed() < READY,
        "502 after {:?}",
        started.elapsed()
    );
    for url in &urls {
        assert_eq!(upstream_errors(&g, url, "connect"), 1.0, "{url} tried");
    }
    assert!(g.wait_for_log("gave up after 3 backends failed", READY));
    // Each refusal took its backend out: nothing is left to try.
    let r = get(g.addr(), "/");
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.text().contains("no backend is available"), "{}", r.text());
}

/// README: `goaround_retries_total` counts "every extra attempt". Three backends refusing
/// make three attempts, two of them extra.
#[test]
fn retries_total_counts_no_retry_when_no_backend_is_left_to_try() {
    let (a, b, c) = (
        Backend::start("a"),
        Backend::start("b"),
        Backend::start("c"),
    );
    let g = proxy(&[&a, &b, &c], &["-health-interval", "60s"]);
    a.stop();
    b.stop();
    c.stop();
    let r = get(g.addr(), "/");
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(g.metric("goaround_retries_total"), Some(2.0));
}

// ---------------------------------------------------------------------------------------
// No head in time
// ---------------------------------------------------------------------------------------

#[test]
fn no_head_within_response_timeout_is_504_and_never_sent_elsewhere() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let g = proxy(&[&a, &b], &["-response-timeout", "1s", "-max-fails", "3"]);
    for i in 0..2 {
        let started = Instant::now();
        let r = get(g.addr(), &format!("/hang?attempt={i}"));
        let waited = started.elapsed();
        assert_eq!(r.status, 504, "{}", r.text());
        assert!(r.text().contains("did not answer in time"), "{}", r.text());
        assert!(
            waited >= Duration::from_secs(1) && waited < Duration::from_secs(6),
            "504 after {waited:?} with -response-timeout 1s"
        );
    }
    // Round-robin sent one to each; neither went on to the other backend.
    assert_eq!((a.requests(), b.requests()), (1, 1), "a 504 was retried");
    assert_eq!(g.metric("goaround_retries_total"), Some(0.0));
    for b in [&a, &b] {
        assert_eq!(upstream_errors(&g, &b.url(), "timeout"), 1.0, "{}", b.url());
    }
    // One timeout each is below -max-fails: both stay in.
    assert_eq!(g.metric("goaround_backends_up"), Some(2.0));
}

// ---------------------------------------------------------------------------------------
// Connect timeouts
// ---------------------------------------------------------------------------------------

/// A backend on `127.0.0.1` that answers `/health` until [`Unaccepting::stop_accepting`], and
/// then lets no connection through: its accept queue (backlog 0) holds one connection of
/// ours and is never drained, so the kernel drops every SYN that comes.
struct Unaccepting {
    addr: SocketAddr,
    accepting: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
    /// Accepted connections, to cut them when accepting stops.
    served: Arc<Mutex<Vec<TcpStream>>>,
    /// What fills the queue.
    queued: Vec<TcpStream>,
}

impl Unaccepting {
    fn start() -> Unaccepting {
        let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).expect("socket");
        let any_port = SocketAddr::from(([127, 0, 0, 1], 0));
        socket.bind(&any_port.into()).expect("bind 127.0.0.1:0");
        socket.listen(0).expect("listen");
        socket.set_nonblocking(true).expect("non-blocking listener");
        let listener: std::net::TcpListener = socket.into();
        let addr = listener.local_addr().expect("local_addr");
        let accepting = Arc::new(AtomicBool::new(true));
        let served = Arc::new(Mutex::new(Vec::new()));
        let acceptor = thread::Builder::new()
            .name("unaccepting".to_owned())
            .spawn({
                let (accepting, served) = (Arc::clone(&accepting), Arc::clone(&served));
                move || {
                    while accepting.load(Ordering::SeqCst) {
                        match listener.accept() {
                            Ok((stream, _)) => serve_health(stream, &served),
                            Err(_) => thread::sleep(Duration::from_millis(5)),
                        }
                    }
                    // The listener lives on, unaccepted, until the test ends.
                    thread::park();
                    drop(listener);
                }
            })
            .expect("spawn acceptor");
        Unaccepting {
            addr,
            accepting,
            acceptor: Some(acceptor),
            served,
            queued: Vec::new(),
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, cuts the connections served so far, and fills the accept queue:
    /// connects until a connect times out.
    fn stop_accepting(&mut self) {
        self.accepting.store(false, Ordering::SeqCst);
        for stream in lock(&self.served).drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
        // The acceptor may be inside one last accept; connecting until the kernel stops
        // answering makes sure the queue is full whatever it took.
        for _ in 0..16 {
            match TcpStream::connect_timeout(&self.addr, Duration::from_millis(300)) {
                Ok(stream) => self.queued.push(stream),
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return,
                Err(e) => panic!("filling the accept queue of {}: {e}", self.addr),
            }
        }
        panic!("the accept queue of {} never filled", self.addr);
    }
}

impl Drop for Unaccepting {
    fn drop(&mut self) {
        self.accepting.store(false, Ordering::SeqCst);
        if let Some(acceptor) = self.acceptor.take() {
            acceptor.thread().unpark();
            let _ = acceptor.join();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Answers `/health` on `stream` on a thread of its own, until the connection ends.
fn serve_health(stream: TcpStream, served: &Mutex<Vec<TcpStream>>) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(READY));
    if let Ok(handle) = stream.try_clone() {
        lock(served).push(handle);
    }
    let spawned = thread::Builder::new()
        .name("unaccepting-health".to_owned())
        .spawn(move || {
            let mut reader = BufReader::new(&stream);
            while let Ok(Some(_)) = read_head(&mut reader) {
                let reply = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{HEALTHY_BODY}",
                    HEALTHY_BODY.len()
                );
                if (&stream).write_all(reply.as_bytes()).is_err() {
                    return;
                }
            }
        });
    drop(spawned);
}

#[test]
fn connect_timeout_moves_on_and_takes_the_backend_out_only_after_max_fails() {
    let mut silent = Unaccepting::start();
    let b = Backend::start("b");
    let g = Goaround::builder()
        .backends(&[silent.url(), b.url()])
        .args(&[
            "-connect-timeout",
            "300ms",
            "-max-fails",
            "3",
            "-health-interval",
            "60s",
        ])
        .start();
    assert!(g.wait_ready_backends(2, READY), "backends not up");
    silent.stop_accepting();
    let silent_url = silent.url();
    let up_series = format!("goaround_backend_up{{backend=\"{silent_url}\"}}");

    // Sends requests until the silent backend has `n` connect failures; every one of them
    // is answered by `b`, whichever backend was offered first.
    let mut sent = 0;
    let mut until_failures = |n: f64| {
        while upstream_errors(&g, &silent_url, "connect") < n {
            assert!(sent < 20, "{sent} requests and not {n} connect timeouts");
            let started = Instant::now();
            let r = get(g.addr(), &format!("/?request={sent}"));
            assert_eq!((r.status, served_by(&r)), (200, "b"), "{}", r.text());
            assert!(
                started.elapsed() < READY,
                "answer after {:?}",
                started.elapsed()
            );
            sent += 1;
        }
    };

    until_failures(1.0);
    assert_eq!(upstream_errors(&g, &silent_url, "connect"), 1.0);
    assert!(
        g.wait_for_log("connect: timed out", READY),
        "the connect failure was not a timeout"
    );
    assert_eq!(
        g.metric(&up_series),
        Some(1.0),
        "one connect timeout took the backend out"
    );
    assert!(!g.stderr().contains("is down"), "{}", g.stderr());

    until_failures(3.0);
    assert!(
        g.wait_for_log("3 failed requests in a row", READY),
        "-max-fails 3 connect timeouts did not take the backend out"
    );
    assert_eq!(
        g.wait_metric(&up_series, 0.0, READY),
        Some(0.0),
        "{up_series}"
    );
    assert_eq!(g.metric("goaround_retries_total"), Some(3.0));
}
