//! How responses are relayed by the real binary: interim `103 Early Hints` forwarded as they
//! come (to HTTP/1.1 clients only), every upstream framing (chunked in chunks small and
//! larger than the proxy's buffer, Content-Length, close-delimited) carried intact on one
//! kept-alive client connection, and backend connections kept alive and reused.
//!
//! Responses the fixture backend cannot produce come from [`ScriptedServer`] scripts in this
//! file. Every test starts its own `goaround` and backends on `127.0.0.1:0`; conditions are
//! polled with deadlines, never assumed after a sleep.

mod support;

use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use support::backend::{pattern_byte, read_head, HEALTHY_BODY};
use support::scripted::ScriptedServer;
use support::{get_request, proxy, request, Backend, Conn, Goaround, Response};

/// Longest wait for backends to be up, or for any other polled condition.
const READY: Duration = Duration::from_secs(10);

/// Starts goaround in front of `server` with the extra `args` and waits until it is up.
fn proxy_scripted(server: &ScriptedServer, args: &[&str]) -> Goaround {
    let g = Goaround::builder()
        .backends(&[format!("http://{}", server.addr())])
        .args(args)
        .start();
    assert!(g.wait_ready_backends(1, READY), "backend not up");
    g
}

/// Answers `/health` the way the fixture does; false when the connection broke.
fn answer_health(mut stream: &TcpStream) -> bool {
    let reply = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{HEALTHY_BODY}",
        HEALTHY_BODY.len()
    );
    stream.write_all(reply.as_bytes()).is_ok()
}

/// `len` bytes of the fixture's pattern from offset `offset`.
fn pattern(offset: u64, len: u64) -> Vec<u8> {
    (offset..offset + len).map(pattern_byte).collect()
}

fn is_pattern(body: &[u8]) -> bool {
    body.iter()
        .enumerate()
        .all(|(i, b)| *b == pattern_byte(i as u64))
}

// ---------------------------------------------------------------------------------------
// 1xx
// ---------------------------------------------------------------------------------------

/// A door the test opens once; a backend script waits at it.
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    opened: Condvar,
    /// Someone gave up waiting: the test did not open the gate in time.
    timed_out: AtomicBool,
}

impl Gate {
    fn open(&self) {
        *self.open.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.opened.notify_all();
    }

    /// Waits until the gate is open, at most [`READY`].
    fn pass(&self) {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let waited = self.opened.wait_timeout_while(open, READY, |open| !*open);
        let (open, result) = waited.unwrap_or_else(PoisonError::into_inner);
        drop(open);
        if result.timed_out() {
            self.timed_out.store(true, Ordering::SeqCst);
        }
    }
}

const EARLY_HINTS: &[u8] = b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n\
    HTTP/1.1 103 Early Hints\r\nLink: </b.js>; rel=preload\r\n\r\n";

/// Script: two `103 Early Hints`, then, once `gate` opens, `200 hello`.
fn early_hints_then_200(stream: TcpStream, gate: &Gate) {
    let mut reader = BufReader::new(&stream);
    while let Ok(Some(head)) = read_head(&mut reader) {
        if head.target == "/health" {
            if !answer_health(&stream) {
                return;
            }
            continue;
        }
        if (&stream).write_all(EARLY_HINTS).is_err() {
            return;
        }
        gate.pass();
        let reply = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        if (&stream).write_all(reply).is_err() {
            return;
        }
    }
}

#[test]
fn early_hints_reach_http11_clients_before_the_answer_and_not_http10_ones() {
    let gate = Arc::new(Gate::default());
    let server = ScriptedServer::start({
        let gate = Arc::clone(&gate);
        move |stream| early_hints_then_200(stream, &gate)
    });
    let g = proxy_scripted(&server, &[]);

    let mut conn = Conn::open(g.addr());
    conn.send(get_request("/page").as_bytes());
    // The backend holds its 200 until the hints have reached the client: they are passed
    // on as they come, not with the answer.
    for link in ["</a.css>; rel=preload", "</b.js>; rel=preload"] {
        let hints = conn.read_response();
        assert_eq!((hints.version.as_str(), hints.status), ("HTTP/1.1", 103));
        assert_eq!(hints.header("link"), Some(link), "{:?}", hints.headers);
    }
    gate.open();
    let r = conn.read_response();
    assert_eq!((r.status, r.text().as_str()), (200, "hello"));
    assert!(
        !gate.timed_out.load(Ordering::SeqCst),
        "the hints were held back until the answer came"
    );
    // The connection goes on after an answer that came with hints.
    conn.send(get_request("/again").as_bytes());
    assert_eq!(conn.read_response().status, 103);
    assert_eq!(conn.read_response().status, 103);
    assert_eq!(conn.read_response().status, 200);

    // RFC 9110 §15.2: no 1xx to an HTTP/1.0 client; its first response line is the 200.
    let r = request(g.addr(), b"GET /page HTTP/1.0\r\n\r\n");
    assert_eq!((r.status, r.text().as_str()), (200, "hello"));
}

// ---------------------------------------------------------------------------------------
// Framing
// ---------------------------------------------------------------------------------------

/// Script for every upstream framing, the body always the fixture's pattern:
/// `/chunked/N/C` (N bytes in chunks of C), `/length/N`, and `/until-close/N` (no length:
/// N bytes, then the backend closes).
fn every_framing(stream: TcpStream) {
    let mut reader = BufReader::new(&stream);
    while let Ok(Some(head)) = read_head(&mut reader) {
        let parts: Vec<&str> = head.target.split('/').skip(1).collect();
        let number = |i: usize| parts.get(i).and_then(|n| n.parse::<u64>().ok());
        let mut out = Vec::new();
        let mut close = false;
        match (parts.first().copied(), number(1), number(2)) {
            (Some("health"), _, _) => {
                if !answer_health(&stream) {
                    return;
                }
                continue;
            }
            (Some("chunked"), Some(len), Some(size)) => {
                out.extend_from_slice(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
                let mut sent = 0;
                while sent < len {
                    let n = size.min(len - sent);
                    out.extend_from_slice(format!("{n:x}\r\n").as_bytes());
                    out.extend_from_slice(&pattern(sent, n));
                    out.extend_from_slice(b"\r\n");
                    sent += n;
                }
                out.extend_from_slice(b"0\r\n\r\n");
            }
            (Some("length"), Some(len), _) => {
                out.extend_from_slice(
                    format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n\r\n").as_bytes(),
                );
                out.extend_from_slice(&pattern(0, len));
            }
            (Some("until-close"), Some(len), _) => {
                out.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n");
                out.extend_from_slice(&pattern(0, len));
                close = true;
            }
            _ => out.extend_from_slice(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"),
        }
        if (&stream).write_all(&out).is_err() || close {
            return;
        }
    }
}

/// Checks one answer of [`every_framing`]: status, the pattern, and how it was framed.
fn assert_framed(r: &Response, path: &str, len: usize, chunked: bool) {
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    assert_eq!(r.body.len(), len, "{path}: body length");
    assert!(is_pattern(&r.body), "{path}: body corrupted");
    assert_eq!(r.chunked, chunked, "{path}: chunked? {:?}", r.headers);
}

#[test]
fn every_upstream_framing_is_relayed_intact_on_one_kept_alive_connection() {
    let server = ScriptedServer::start(every_framing);
    let g = proxy_scripted(&server, &[]);
    let mut conn = Conn::open(g.addr());
    // (path, body length, chunked to an HTTP/1.1 client)
    let cases: &[(&str, usize, bool)] = &[
        ("/chunked/10/10", 10, true),
        ("/chunked/100000/100000", 100_000, true),
        ("/until-close/70000", 70_000, true),
        ("/chunked/200000/7000", 200_000, true),
        ("/length/5", 5, false),
        ("/until-close/0", 0, true),
        ("/chunked/70000/65536", 70_000, true),
        ("/until-close/300000", 300_000, true),
        ("/length/100000", 100_000, false),
        ("/chunked/1/1", 1, true),
    ];
    for (path, len, chunked) in cases {
        conn.send(get_request(path).as_bytes());
        let r = conn.read_response();
        assert_framed(&r, path, *len, *chunked);
        if *chunked {
            assert_eq!(r.header("content-length"), None, "{path}: {:?}", r.headers);
        }
    }
    assert!(
        !conn.is_closed_by_peer(Duration::from_millis(100)),
        "the client connection was closed after the last answer"
    );
}

#[test]
fn close_delimited_answer_stays_close_delimited_to_http10_clients() {
    let server = ScriptedServer::start(every_framing);
    let g = proxy_scripted(&server, &[]);
    for raw in [
        "GET /until-close/70000 HTTP/1.0\r\n\r\n",
        // Asking to keep the connection changes nothing: only the close can end the body.
        "GET /until-close/70000 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    ] {
        let mut conn = Conn::open(g.addr());
        conn.send(raw.as_bytes());
        let r = conn.read_response();
        assert_framed(&r, raw, 70_000, false);
        assert_eq!(r.header("content-length"), None, "{raw}: {:?}", r.headers);
        assert!(conn.is_closed_by_peer(READY), "{raw}: connection left open");
    }
}

// ---------------------------------------------------------------------------------------
// Backend connections
// ---------------------------------------------------------------------------------------

#[test]
fn backend_connections_are_kept_alive_and_reused() {
    const WORKERS: u64 = 2;
    const N: u64 = 3;
    let b = Backend::start("b1");
    let g = proxy(
        &[&b],
        &["-workers", "2", "-n", "3", "-health-interval", "60s"],
    );
    let connections_before = b.connections();
    // 500 requests over five client connections, one after another, every response framing.
    let paths = ["/", "/chunked/3000", "/bytes/70000", "/status/204"];
    for c in 0..5 {
        let mut conn = Conn::open(g.addr());
        for i in 0..100 {
            let path = paths[i % paths.len()];
            conn.send(get_request(path).as_bytes());
            let r = conn.read_response();
            assert!(
                matches!(r.status, 200 | 204),
                "client {c}, request {i} ({path}): {}",
                r.status
            );
        }
    }
    assert_eq!(b.requests(), 500);
    let opened = b.connections() - connections_before;
    eprintln!("500 requests over {opened} backend connections");
    // One idle pool per loop, at most -n connections each (and a health check that may
    // have been under way when counting began).
    assert!(
        opened <= WORKERS * N + 1,
        "{opened} backend connections for 500 sequential requests"
    );
}
