//! Proxying behaviour of the real binary: balancing, failure answers, request and response
//! framing, header rewriting, refusals of malformed requests, concurrency limits and the
//! request metrics.
//!
//! Every test starts its own `goaround` and fixture backends on `127.0.0.1:0`; readiness is
//! polled (`wait_ready_backends`, `Backend::wait_for`), never assumed after a sleep, and the
//! processes are cleaned up by the harness' `Drop` guards. Responses the fixture backend
//! cannot produce (hop-by-hop fields, close-delimited bodies) come from [`ScriptedBackend`].

mod support;

use support::scripted::ScriptedServer;
use support::{get_request, proxy};

use std::io::{self, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use support::backend::{pattern_byte, read_fields, read_head, read_line};
use support::{get, request, Backend, Conn, Goaround, Response};

/// Longest wait for backends to be reported up, or for any other polled condition.
const READY: Duration = Duration::from_secs(10);

/// `X-Backend` of a response from the fixture: which backend served it.
fn served_by(r: &Response) -> String {
    r.header("x-backend").unwrap_or("(none)").to_owned()
}

/// `len` bytes that are not the fixture's pattern, so a shifted or repeated piece shows.
fn test_body(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

/// Polls `/metrics` until `series` has value `want`; returns the last value seen.
fn wait_metric(g: &Goaround, series: &str, want: f64) -> Option<f64> {
    let deadline = Instant::now() + READY;
    loop {
        let value = g.metric(series);
        if value == Some(want) || Instant::now() >= deadline {
            return value;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// `goaround_requests_total` series of one backend and status code.
fn requests_series(backend: &str, code: u16) -> String {
    format!("goaround_requests_total{{backend=\"{backend}\",code=\"{code}\"}}")
}

// ---------------------------------------------------------------------------------------
// Balancing and failures
// ---------------------------------------------------------------------------------------

#[test]
fn round_robin_alternates_between_two_backends() {
    let (b1, b2) = (Backend::start("b1"), Backend::start("b2"));
    let g = proxy(&[&b1, &b2], &[]);
    let order: Vec<String> = (0..10).map(|_| served_by(&get(g.addr(), "/"))).collect();
    for pair in order.windows(2) {
        assert_ne!(pair[0], pair[1], "not alternating: {order:?}");
    }
    assert_eq!((b1.requests(), b2.requests()), (5, 5), "{order:?}");
}

#[test]
fn no_backend_configured_gives_503() {
    let g = Goaround::builder().start();
    let r = get(g.addr(), "/");
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.text().contains("no backend"), "{}", r.text());
}

#[test]
fn local_503_keeps_the_connection_only_when_its_framing_allows() {
    let g = Goaround::builder().start();
    // HEAD: no body, but the length of the one a GET would get; the connection stays usable.
    let mut conn = Conn::open(g.addr());
    conn.send(b"HEAD / HTTP/1.1\r\nHost: test\r\n\r\n");
    let head = conn.read_response_to("HEAD");
    assert_eq!(head.status, 503);
    conn.send(get_request("/").as_bytes());
    let r = conn.read_response();
    assert_eq!(r.status, 503);
    let length = r.body.len().to_string();
    assert_eq!(head.header("content-length"), Some(length.as_str()));
    assert!(!conn.is_closed_by_peer(Duration::from_millis(100)));

    // A body that was never read cannot be skipped safely: close.
    let mut conn = Conn::open(g.addr());
    conn.send(b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\n\r\nhello");
    let r = conn.read_response_to("POST");
    assert_eq!(r.status, 503);
    assert_eq!(r.header("connection"), Some("close"));
    assert!(
        conn.is_closed_by_peer(READY),
        "left open with an unread body"
    );
}

/// Regression: an error page produced by goaround itself for an HTTP/1.0 keep-alive client
/// kept the connection open without saying `Connection: keep-alive` (relayed responses do),
/// so the client had to assume the connection closed.
#[test]
fn local_error_page_to_http10_keep_alive_client_says_keep_alive() {
    let g = Goaround::builder().start();
    let mut conn = Conn::open(g.addr());
    for i in 0..2 {
        conn.send(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        let r = conn.read_response();
        assert_eq!(r.status, 503, "#{i}");
        assert_eq!(r.header("connection"), Some("keep-alive"), "#{i}");
        assert!(!conn.is_closed_by_peer(Duration::from_millis(100)), "#{i}");
    }
}

#[test]
fn all_backends_unhealthy_gives_503() {
    let (b1, b2) = (Backend::start("b1"), Backend::start("b2"));
    for b in [&b1, &b2] {
        b.set_health(500, r#"{"state": "unhealthy", "message": "test"}"#);
    }
    let urls = [b1.url(), b2.url()];
    let g = Goaround::builder()
        .backends(&urls)
        .args(&["-health-interval", "200ms"])
        .start();
    // Two checks each: the first verdict has certainly been applied.
    for b in [&b1, &b2] {
        assert!(b.wait_for(|b| b.health_checks() >= 2, READY));
    }
    let r = get(g.addr(), "/");
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(b1.requests() + b2.requests(), 0);
}

/// `POST /echo` with `body` on a fresh connection.
fn post_echo(addr: SocketAddr, body: &[u8]) -> Response {
    let mut raw = format!(
        "POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    raw.extend_from_slice(body);
    request(addr, &raw)
}

#[test]
fn stopped_backend_is_failed_over_to_the_other_one() {
    let (b1, b2) = (Backend::start("b1"), Backend::start("b2"));
    // Health checks far apart: the proxy itself must notice the refused connection.
    let g = proxy(&[&b1, &b2], &["-health-interval", "60s", "-n", "2"]);
    // Both backends have served (the handles hold open upstream connections) ...
    for _ in 0..4 {
        assert_eq!(get(g.addr(), "/").status, 200);
    }
    assert_eq!((b1.requests(), b2.requests()), (2, 2));
    // ... then one goes away; no client may notice. Of two requests in a row, round-robin
    // offers b1 first to one: a POST with a small (buffered) body.
    b1.stop();
    for body in [&b"first"[..], b"second"] {
        let r = post_echo(g.addr(), body);
        assert_eq!((r.status, r.body.as_slice()), (200, body), "{}", r.text());
        assert_eq!(served_by(&r), "b2");
    }
    for i in 0..4 {
        let r = get(g.addr(), "/");
        assert_eq!(r.status, 200, "GET {i} after the stop: {}", r.text());
        assert_eq!(served_by(&r), "b2");
    }
    let bodies: Vec<Vec<u8>> = b2.received()[2..].iter().map(|r| r.body.clone()).collect();
    let expected: [&[u8]; 6] = [b"first", b"second", b"", b"", b"", b""];
    assert_eq!(bodies, expected, "a POST was lost or sent twice");
    assert_eq!(wait_metric(&g, "goaround_retries_total", 1.0), Some(1.0));
}

#[test]
fn streamed_post_to_a_refusing_backend_goes_to_the_other_once() {
    let (b1, b2) = (Backend::start("b1"), Backend::start("b2"));
    let g = proxy(&[&b1, &b2], &["-health-interval", "60s"]);
    b1.stop();
    // Bodies above the 64 KiB buffering limit are streamed; nothing of them was sent when
    // the connection was refused, so the other backend may still get them.
    let bodies = [test_body(200 * 1024), test_body(300 * 1024)];
    for body in &bodies {
        let r = post_echo(g.addr(), body);
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(r.body == *body, "echoed body differs");
    }
    let received: Vec<Vec<u8>> = b2.received().into_iter().map(|r| r.body).collect();
    assert!(
        received == bodies,
        "b2 got {} bodies, not the two sent",
        received.len()
    );
    assert_eq!(wait_metric(&g, "goaround_retries_total", 1.0), Some(1.0));
}

#[test]
fn only_backend_stopped_gives_502_then_503() {
    let b1 = Backend::start("b1");
    let g = proxy(&[&b1], &["-health-interval", "60s"]);
    b1.stop();
    // The proxy still believes it up: connecting is refused, there is no other to try.
    let r = get(g.addr(), "/");
    assert_eq!(r.status, 502, "{}", r.text());
    // The refusal took it out of service.
    let r = get(g.addr(), "/");
    assert_eq!(r.status, 503, "{}", r.text());
}

/// After a failed exchange, the same (only) handle serves the next request normally: the
/// broken upstream connection was not kept for reuse.
fn assert_handle_still_serves(g: &Goaround) {
    let r = get(g.addr(), "/");
    assert_eq!((r.status, r.text().as_str()), (200, "hello from b1"));
}

#[test]
fn garbage_from_backend_gives_502() {
    let b1 = Backend::start("b1");
    let g = proxy(&[&b1], &["-n", "1"]);
    let r = get(g.addr(), "/garbage");
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(
        b1.requests(),
        1,
        "a GET answered with garbage was sent again"
    );
    assert_handle_still_serves(&g);
}

#[test]
fn backend_slower_than_response_timeout_gives_504() {
    let b1 = Backend::start("b1");
    let g = proxy(&[&b1], &["-n", "1", "-response-timeout", "1s"]);
    let started = Instant::now();
    let r = get(g.addr(), "/hang");
    let waited = started.elapsed();
    assert_eq!(r.status, 504, "{}", r.text());
    assert!(
        waited >= Duration::from_secs(1) && waited < Duration::from_secs(5),
        "504 after {waited:?}"
    );
    assert_handle_still_serves(&g);
}

#[test]
fn backend_dying_mid_response_truncates_the_client_response() {
    let b1 = Backend::start("b1");
    let g = proxy(&[&b1], &["-n", "1"]);
    let mut conn = Conn::open(g.addr());
    conn.send(get_request("/die").as_bytes());
    match conn.try_read_response() {
        Ok(r) => panic!("complete response: {} {:?}", r.status, r.text()),
        Err(e) => assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{e}"),
    }
    assert!(conn.is_closed_by_peer(READY), "connection left open");
    assert_handle_still_serves(&g);
}

#[test]
fn backend_dying_mid_chunked_response_gets_no_last_chunk() {
    let backend = ScriptedBackend::start(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
    );
    let g = Goaround::builder().backends(&[backend.url()]).start();
    assert!(g.wait_ready_backends(1, READY));
    let mut conn = Conn::open(g.addr());
    conn.send(get_request("/").as_bytes());
    match conn.try_read_response() {
        Ok(r) => panic!("complete response: {} {:?}", r.status, r.text()),
        Err(e) => assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{e}"),
    }
    assert!(conn.is_closed_by_peer(READY), "connection left open");
}

#[test]
fn backend_5xx_is_passed_through() {
    let b1 = Backend::start("b1");
    let g = proxy(&[&b1], &[]);
    let mut conn = Conn::open(g.addr());
    for status in [500, 503] {
        conn.send(get_request(&format!("/status/{status}")).as_bytes());
        let r = conn.read_response();
        assert_eq!(r.status, status);
        assert_eq!(r.text(), format!("status {status}"));
        assert_eq!(
            served_by(&r),
            "b1",
            "answered by the proxy, not the backend"
        );
    }
    assert_eq!(b1.requests(), 2);
}

// ---------------------------------------------------------------------------------------
// Request bodies
// ---------------------------------------------------------------------------------------

#[test]
fn small_post_arrives_exactly_once() {
    let b1 = Backend::start("b1");
    let g = proxy(&[&b1], &[]);
    let r = request(
        g.addr(),
        b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 11\r\n\r\nhello world",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "hello world");
    let received = b1.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].method, "POST");
    assert_eq!(received[0].body, b"hello world");
    assert_eq!(received[0].header("content-length"), Some("11"));
    assert_eq!(received[0].header("transfer-encoding"), None);
}

#[test]
fn large_content_length_post_arrives_once_intact() {
    let b1 = Backend::start("b1");
    let g = proxy(&[&b1], &[]);
    let body = test_body(5 * 1024 * 1024);
    let mut conn = Conn::open(g.addr());
    let head = format!(
        "POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    conn.send(head.as_bytes());
    conn.send(&body);
    let r = conn.read_response();
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("x-body-len"),
        Some(body.len().to_string().as_str())
    );
    assert!(r.body == body, "echoed body differs from the one sent");
    let received = b1.received();
    assert_eq!(received.len(), 1, "sent {} times", received.len());
    assert!(received[0].body == body, "backend got a different body");
}

#[test]
fn chunked_post_arrives_once_intact() {
    let b1 = Backend::start("b1");
    let g = proxy(&[&b1], &[]);
    let body = test_body(5 * 1024 * 1024);
    let mut conn = Conn::open(g.addr());
    conn.send(b"POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n");
    // Chunks of uneven sizes, each in its own write, one with an extension.
    let sizes = [1, 100, 8192, 65536, 12345, 300_000];
    let mut sent = 0;
    for size in sizes.iter().cycle() {
        if sent == body.len() {
            break;
        }
        let size = (*size).min(body.len() - sent);
        let mut chunk =
            format!("{size:x}{}\r\n", if size == 100 { ";ext=1" } else { "" }).into_bytes();
        chunk.extend_from_slice(&body[sent..sent + size]);
        chunk.extend_from_slice(b"\r\n");
        conn.send(&chunk);
        sent += size;
    }
    conn.send(b"0\r\n\r\n");
    let r = conn.read_response();
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("x-body-len"),
        Some(body.len().to_string().as_str())
    );
    assert!(r.body == body, "echoed body differs from the one sent");
    let received = b1.received();
    assert_eq!(received.len(), 1, "sent {} times", received.len());
    assert!(received[0].body == body, "backend got a different body");
    // The connection is still good for another request.
    conn.send(get_request("/").as_bytes());
    assert_eq!(conn.read_response().status, 200);
}

#[test]
fn expect_100_continue_gets_100_before_the_body_is_sent() {
    let b1 = Backend::start("b1");
    let g = proxy(&[&b1], &[]);
    let mut conn = Conn::open(g.addr());
    conn.send(
        b"POST /echo HTTP/1.1\r\nHost: test\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
    );
    // The body is held back until the 100 arrives (a missing 100 fails on the read timeout).
    let interim = conn.read_response_to("POST");
    assert_eq!(interim.status, 100);
    conn.send(b"hello");
    let r = conn.read_response_to("POST");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "hello");
    let received = b1.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].body, b"hello");
    assert_eq!(
        received[0].header("expect"),
        None,
        "Expect is answered here"
    );
}

#[test]
fn malformed_chunked_body_gives_400_and_never_reaches_the_backend_complete() {
    let b1 = Backend::start("b1");
    // One handle: the next request reuses whatever upstream connection the bad one left.
    let g = proxy(&[&b1], &["-n", "1"]);
    let mut conn = Conn::open(g.addr());
    conn.send(
        b"POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n\
          5\r\nhello\r\nzz\r\nworld\r\n0\r\n\r\n",
    );
    let r = conn.read_response_to("POST");
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        conn.is_closed_by_peer(READY),
        "connection left open after 400"
    );
    let r = get(g.addr(), "/");
    assert_eq!(r.status, 200, "{}", r.text());
    let targets: Vec<String> = b1.received().into_iter().map(|r| r.target).collect();
    assert_eq!(targets, ["/"], "the bad body reached the backend complete");
}

// ---------------------------------------------------------------------------------------
// Connections: keep-alive, pipelining, HTTP/1.0
// ---------------------------------------------------------------------------------------

#[test]
fn pipelined_requests_are_answered_in_order() {
    let b1 = Backend::start("b1");
    let g = proxy(&[&b1], &[]);
    let mut conn = Conn::open(g.addr());
    // One write; bodies of every framing, so each must end exactly where the next begins.
    let big = test_body(100 * 1024);
    let mut all = get_request("/status/201").into_bytes();
    all.extend_from_slice(b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\n\r\nthird");
    all.extend_from_slice(get_request("/status/202").as_bytes());
    all.extend_from_slice(
        b"POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n\
          3\r\nfou\r\n2\r\nrt\r\n1\r\nh\r\n0\r\nX-Trailer: dropped\r\n\r\n",
    );
    let head = format!(
        "POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n\r\n",
        big.len()
    );
    all.extend_from_slice(head.as_bytes());
    all.extend_from_slice(&big);
    all.extend_from_slice(get_request("/status/203").as_bytes());
    conn.send(&all);
    let expected: [(u16, &[u8]); 6] = [
        (201, b"status 201"),
        (200, b"third"),
        (202, b"status 202"),
        (200, b"fourth"),
        (200, &big),
        (203, b"status 203"),
    ];
    for (i, (status, body)) in expected.into_iter().enumerate() {
        let r = conn.read_response();
        assert_eq!(r.status, status, "response {i}: {}", r.text());
        assert!(r.body == body, "response {i}: body {:?}", r.text());
    }
    assert_eq!(b1.requests(), 6);
    assert!(!conn.is_closed_by_peer(Duration::from_millis(100)));
}

#[test]
fn keep_alive_serves_several_requests_on_one_connection() {
    let b1 = Backend::start("b1");
    let g = proxy(&[&b1], &[]);
    let mut conn = Conn::open(g.addr());
    for i in 0..5 {
        conn.send(get_request("/").as_bytes());
        let r = conn.read_response();
        assert_eq!(
            (r.status, r.text().as_str()),
            (200, "hello from b1"),
            "#{i}"
        );
        assert_eq!(r.header("connection"), None, "#{i}");
    }
    assert!(!conn.is_closed_by_peer(Duration::from_millis(100)));
    // `Connection: close` is honoured.
    conn.send(b"GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    let r = conn.read_response();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("connection"), Some("close"));
    assert!(conn.is_closed_by_peer(READY));
    assert_eq!(b1.requests(), 6);
}

#[test]
fn http10_request_without_keep_alive_is_closed() {
    let b1 = Backend::start("b1");
    let g = proxy(&[&b1], &[]);
    let mut conn = Conn::open(g.addr());
    conn.send(b"GET / HTTP/1.0\r\n\r\n");
    let r = conn.read_response();
    assert_eq!((r.status, r.text().as_str()), (200, "hello from b1"));
    assert_eq!(r.header("connection"), Some("close"));
    assert!(
        conn.is_closed_by_peer(READY),
        "HTTP/1.0 connection left open"
    );
}

#[test]
fn http10_request_with_keep_alive_stays_open() {
    let b1 = Backend::start("b1");
    let g = proxy(&[&b1], &[]);
    let mut conn = Conn::open(g.addr());
    for i in 0..2 {
        conn.send(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        let r = conn.read_response();
        assert_eq!(
            (r.status, r.text().as_str()),
            (200, "hello from b1"),
            "#{i}"
        );
        assert_eq!(r.header("connection"), Some("keep-alive"), "#{i}");
        assert!(!conn.is_closed_by_peer(Duration::from_millis(100)), "#{i}");
    }
}

#[test]
fn request_followed_by_half_close_is_still_answered() {
    let b1 = Backend::start("b1");
    let g = proxy(&[&b1], &[]);
    // What `printf ... | nc` does: the whole request, then EOF on the sending side.
    for raw in [
        &b"GET / HTTP/1.0\r\n\r\n"[..],
        b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\n\r\nhello",
    ] {
        let mut conn = Conn::open(g.addr());
        conn.send(raw);
        conn.shutdown_write();
        let r = conn.read_response();
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(conn.is_closed_by_peer(READY));
    }
    assert_eq!(b1.requests(), 2);
}

#[test]
fn idle_keep_alive_connection_is_closed_silently_after_idle_timeout() {
    let b1 = Backend::start("b1");
    let g = proxy(&[&b1], &["-idle-timeout", "300ms"]);
    let mut conn = Conn::open(g.addr());
    conn.send(get_request("/").as_bytes());
    assert_eq!(conn.read_response().status, 200);
    let started = Instant::now();
    let rest = conn.read_to_close();
    let waited = started.elapsed();
    assert!(rest.is_empty(), "sent {:?}", String::from_utf8_lossy(&rest));
    assert!(
        waited >= Duration::from_millis(250),
        "closed after {waited:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Response framing
// ---------------------------------------------------------------------------------------

#[test]
fn head_response_has_no_body_but_keeps_content_length() {
    let b1 = Backend::start("b1");
    let g = proxy(&[&b1], &[]);
    let mut conn = Conn::open(g.addr());
    conn.send(b"HEAD /bytes/1000 HTTP/1.1\r\nHost: test\r\n\r\n");
    let r = conn.read_response_to("HEAD");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("1000"));
    // A backend head announcing a chunked body: none follows either.
    conn.send(b"HEAD /chunked/1000 HTTP/1.1\r\nHost: test\r\n\r\n");
    let r = conn.read_response_to("HEAD");
    assert_eq!(r.status, 200);
    // Any body bytes would be read as the next response's status line.
    conn.send(get_request("/").as_bytes());
    assert_eq!(conn.read_response().text(), "hello from b1");
}

#[test]
fn no_content_and_not_modified_have_no_body() {
    let b1 = Backend::start("b1");
    let g = proxy(&[&b1], &[]);
    let mut conn = Conn::open(g.addr());
    for status in [204, 304] {
        conn.send(get_request(&format!("/status/{status}")).as_bytes());
        let r = conn.read_response();
        assert_eq!(r.status, status);
        assert_eq!(r.header("transfer-encoding"), None, "{status}");
        if status == 204 {
            assert_eq!(r.header("content-length"), None);
        }
    }
    conn.send(get_request("/").as_bytes());
    assert_eq!(conn.read_response().text(), "hello from b1");
}

/// Whether `body` is the fixture's pattern from offset 0.
fn is_pattern(body: &[u8]) -> bool {
    body.iter()
        .enumerate()
        .all(|(i, b)| *b == pattern_byte(i as u64))
}

#[test]
fn chunked_response_is_relayed_chunked_to_http11_and_close_delimited_to_http10() {
    let b1 = Backend::start("b1");
    let g = proxy(&[&b1], &[]);
    let mut conn = Conn::open(g.addr());
    conn.send(get_request("/chunked/100000").as_bytes());
    let r = conn.read_response();
    assert_eq!(r.status, 200);
    assert!(
        r.chunked,
        "unknown length not chunked to an HTTP/1.1 client"
    );
    assert_eq!(r.body.len(), 100_000);
    assert!(is_pattern(&r.body), "chunked body corrupted");
    // Same connection: the last chunk ended the response exactly.
    conn.send(get_request("/").as_bytes());
    assert_eq!(conn.read_response().text(), "hello from b1");

    let r = request(g.addr(), b"GET /chunked/100000 HTTP/1.0\r\n\r\n");
    assert_eq!(r.status, 200);
    assert!(!r.chunked, "chunked sent to an HTTP/1.0 client");
    assert_eq!(r.header("content-length"), None);
    assert_eq!(r.body.len(), 100_000);
    assert!(is_pattern(&r.body), "close-delimited body corrupted");
}

#[test]
fn large_response_is_streamed_intact() {
    const LEN: u64 = 200_000_000;
    let b1 = Backend::start("b1");
    let g = proxy(&[&b1], &[]);
    let stream = TcpStream::connect(g.addr()).expect("connect");
    stream.set_read_timeout(Some(READY)).expect("timeout");
    (&stream)
        .write_all(get_request(&format!("/bytes/{LEN}")).as_bytes())
        .expect("send");
    let mut reader = BufReader::with_capacity(64 * 1024, stream);
    let status = read_line(&mut reader).expect("status line");
    assert_eq!(status.as_deref(), Some("HTTP/1.1 200 OK"));
    let fields = read_fields(&mut reader).expect("fields");
    let length = fields
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.as_str());
    assert_eq!(length, Some(LEN.to_string().as_str()));
    // Compared piece by piece against the pattern, never held whole.
    let reference: Vec<u8> = (0..64 * 1024 + 10).map(pattern_byte).collect();
    let mut buf = vec![0; 64 * 1024];
    let mut offset = 0u64;
    while offset < LEN {
        let n = reader.read(&mut buf).expect("read body");
        assert!(n > 0, "body ended after {offset} of {LEN} bytes");
        let start = (offset % 10) as usize;
        assert!(
            buf[..n] == reference[start..start + n],
            "body differs near offset {offset}"
        );
        offset += n as u64;
    }
    assert_eq!(offset, LEN, "more bytes than Content-Length");
}

#[test]
fn client_leaving_mid_response_frees_the_backend_handle() {
    let b1 = Backend::start("b1");
    // One handle: the next request needs the one the departed client held.
    let g = proxy(&[&b1], &["-n", "1", "-queue-timeout", "5s"]);
    let mut conn = Conn::open(g.addr());
    conn.send(get_request("/bytes/200000000").as_bytes());
    let mut first = vec![0; 1024 * 1024];
    conn_read_exact(&mut conn, &mut first);
    drop(conn);
    let r = get(g.addr(), "/");
    assert_eq!((r.status, r.text().as_str()), (200, "hello from b1"));
}

/// Reads exactly `buf.len()` bytes from the connection's socket.
fn conn_read_exact(conn: &mut Conn, buf: &mut [u8]) {
    let mut stream = conn.stream();
    stream.read_exact(buf).expect("read from the proxy");
}

// ---------------------------------------------------------------------------------------
// Header rewriting
// ---------------------------------------------------------------------------------------

#[test]
fn hop_by_hop_request_headers_are_not_forwarded() {
    let b1 = Backend::start("b1");
    let g = proxy(&[&b1], &[]);
    let r = request(
        g.addr(),
        b"GET /headers HTTP/1.1\r\nHost: test\r\nConnection: X-Secret\r\nX-Secret: 1\r\n\
          Keep-Alive: timeout=5\r\nTE: trailers\r\nUpgrade: websocket\r\n\
          Proxy-Connection: keep-alive\r\nX-Keep: yes\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    let received = b1.received();
    assert_eq!(received.len(), 1);
    for gone in [
        "connection",
        "x-secret",
        "keep-alive",
        "te",
        "upgrade",
        "proxy-connection",
    ] {
        assert_eq!(
            received[0].header(gone),
            None,
            "{gone} forwarded: {:?}",
            received[0].headers
        );
    }
    assert_eq!(received[0].header("x-keep"), Some("yes"));
}

#[test]
fn hop_by_hop_response_headers_are_not_relayed() {
    let backend = ScriptedBackend::start(
        b"HTTP/1.1 200 OK\r\nConnection: close, X-Hop\r\nX-Hop: secret\r\n\
          Keep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nUpgrade: foo\r\n\
          Trailer: X-Sum\r\nX-End: kept\r\nContent-Length: 2\r\n\r\nok",
    );
    let g = Goaround::builder().backends(&[backend.url()]).start();
    assert!(g.wait_ready_backends(1, READY));
    let mut conn = Conn::open(g.addr());
    conn.send(get_request("/").as_bytes());
    let r = conn.read_response();
    assert_eq!((r.status, r.text().as_str()), (200, "ok"));
    for gone in [
        "x-hop",
        "keep-alive",
        "proxy-connection",
        "upgrade",
        "trailer",
    ] {
        assert_eq!(r.header(gone), None, "{gone} relayed: {:?}", r.headers);
    }
    assert_eq!(r.header("x-end"), Some("kept"));
    // The backend's `Connection: close` was about its own connection, not the client's.
    assert_eq!(r.header("connection"), None, "{:?}", r.headers);
    assert!(!conn.is_closed_by_peer(Duration::from_millis(100)));
}

#[test]
fn close_delimited_backend_response_is_chunked_to_http11_clients() {
    let backend = ScriptedBackend::start(b"HTTP/1.1 200 OK\r\nX-A: b\r\n\r\nuntil close");
    let g = Goaround::builder().backends(&[backend.url()]).start();
    assert!(g.wait_ready_backends(1, READY));
    let mut conn = Conn::open(g.addr());
    conn.send(get_request("/").as_bytes());
    let r = conn.read_response();
    assert_eq!((r.status, r.text().as_str()), (200, "until close"));
    assert!(r.chunked, "unknown length not chunked: {:?}", r.headers);
    assert!(!conn.is_closed_by_peer(Duration::from_millis(100)));
}

#[test]
fn x_forwarded_for_is_appended_to_the_clients_list() {
    let b1 = Backend::start("b1");
    let g = proxy(&[&b1], &[]);
    request(
        g.addr(),
        b"GET / HTTP/1.1\r\nHost: test\r\nX-Forwarded-For: 203.0.113.7\r\n\r\n",
    );
    request(g.addr(), get_request("/").as_bytes());
    let received = b1.received();
    assert_eq!(received.len(), 2);
    assert_eq!(
        received[0].header_all("x-forwarded-for"),
        ["203.0.113.7, 127.0.0.1"]
    );
    assert_eq!(received[1].header_all("x-forwarded-for"), ["127.0.0.1"]);
}

#[test]
fn x_forwarded_proto_and_host_are_replaced_and_host_kept() {
    let b1 = Backend::start("b1");
    let g = proxy(&[&b1], &[]);
    request(
        g.addr(),
        b"GET / HTTP/1.1\r\nHost: example.test:8443\r\nX-Forwarded-Proto: https\r\n\
          X-Forwarded-Host: evil.example\r\n\r\n",
    );
    let received = b1.received();
    assert_eq!(received.len(), 1);
    let r = &received[0];
    assert_eq!(r.header_all("host"), ["example.test:8443"]);
    assert_eq!(r.header_all("x-forwarded-proto"), ["http"]);
    assert_eq!(r.header_all("x-forwarded-host"), ["example.test:8443"]);
}

/// Regression: with an absolute-form target the backend got the client's `Host` (or, with
/// none, its own address) while `X-Forwarded-Host` named the target's authority; RFC 9112
/// §3.2.2 makes the authority the Host.
#[test]
fn absolute_form_target_sets_host_to_its_authority() {
    let b1 = Backend::start("b1");
    let g = proxy(&[&b1], &[]);
    for raw in [
        &b"GET http://example.com/echo?x=1 HTTP/1.1\r\nHost: other\r\n\r\n"[..],
        b"GET http://example.com/echo?x=1 HTTP/1.1\r\n\r\n",
    ] {
        assert_eq!(request(g.addr(), raw).status, 200);
    }
    for r in b1.received() {
        assert_eq!(r.target, "/echo?x=1");
        assert_eq!(r.header_all("host"), ["example.com"], "{:?}", r.headers);
        assert_eq!(r.header_all("x-forwarded-host"), ["example.com"]);
    }
}

// ---------------------------------------------------------------------------------------
// Malformed requests
// ---------------------------------------------------------------------------------------

#[test]
fn malformed_requests_are_refused_closed_and_never_forwarded() {
    let many_headers: String = (0..100).map(|i| format!("X-H{i}: v\r\n")).collect();
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        (
            "Content-Length with Transfer-Encoding",
            b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\
              Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                .to_vec(),
            400,
        ),
        (
            "two different Content-Length",
            b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n\
              hello!"
                .to_vec(),
            400,
        ),
        (
            "gzip before chunked",
            b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n\
              0\r\n\r\n"
                .to_vec(),
            501,
        ),
        (
            "HTTP/2.0 request line",
            b"GET / HTTP/2.0\r\nHost: t\r\n\r\n".to_vec(),
            505,
        ),
        (
            "101 header fields",
            format!("GET / HTTP/1.1\r\nHost: t\r\n{many_headers}\r\n").into_bytes(),
            431,
        ),
        (
            "a 40 KiB header",
            format!(
                "GET / HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
                "a".repeat(40 * 1024)
            )
            .into_bytes(),
            431,
        ),
        (
            "a 9 KiB request-target",
            format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(9 * 1024)).into_bytes(),
            414,
        ),
        (
            "obs-fold",
            b"GET / HTTP/1.1\r\nHost: t\r\nX-Fold: a\r\n b\r\n\r\n".to_vec(),
            400,
        ),
        ("bare LF", b"GET / HTTP/1.1\nHost: t\n\n".to_vec(), 400),
        (
            "HTTP/1.1 without Host",
            b"GET / HTTP/1.1\r\n\r\n".to_vec(),
            400,
        ),
        (
            "Expect other than 100-continue",
            b"POST /echo HTTP/1.1\r\nHost: t\r\nExpect: foo\r\nContent-Length: 0\r\n\r\n".to_vec(),
            417,
        ),
        (
            "CONNECT",
            b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n".to_vec(),
            405,
        ),
        (
            "two Host fields",
            b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n".to_vec(),
            400,
        ),
        (
            "Content-Length not a number",
            b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: +5\r\n\r\nhello".to_vec(),
            400,
        ),
        (
            "Transfer-Encoding on HTTP/1.0",
            b"POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(),
            400,
        ),
        (
            "whitespace before the colon",
            b"GET / HTTP/1.1\r\nHost : t\r\n\r\n".to_vec(),
            400,
        ),
        (
            "bare CR in a value",
            b"GET / HTTP/1.1\r\nHost: t\r\nX-A: a\rb\r\n\r\n".to_vec(),
            400,
        ),
    ];
    let b1 = Backend::start("b1");
    let g = proxy(&[&b1], &[]);
    // A well-behaved client on its own keep-alive connection, served between the bad ones.
    let mut good = Conn::open(g.addr());
    let mut good_requests = 0;
    for (what, raw, status) in &cases {
        let mut conn = Conn::open(g.addr());
        conn.send(raw);
        let r = conn
            .try_read_response()
            .unwrap_or_else(|e| panic!("{what}: no response: {e}"));
        assert_eq!(r.status, *status, "{what}: {}", r.text());
        assert_eq!(r.header("connection"), Some("close"), "{what}");
        assert!(
            conn.is_closed_by_peer(READY),
            "{what}: connection left open"
        );

        good.send(get_request("/").as_bytes());
        let r = good.read_response();
        assert_eq!(r.status, 200, "after {what}: {}", r.text());
        good_requests += 1;
    }
    let received = b1.received();
    assert!(
        received
            .iter()
            .all(|r| r.method == "GET" && r.target == "/"),
        "a refused request reached the backend: {received:?}"
    );
    assert_eq!(received.len(), good_requests);
    // Each refusal is counted under the backend label "none", by status.
    for status in [400, 405, 414, 417, 431, 501, 505] {
        let count = cases.iter().filter(|(_, _, s)| *s == status).count() as f64;
        let series = requests_series("none", status);
        assert_eq!(wait_metric(&g, &series, count), Some(count), "{series}");
    }
}

#[test]
fn requests_at_the_limits_are_served() {
    let b1 = Backend::start("b1");
    let g = proxy(&[&b1], &[]);
    // 100 fields in all (Host included), and a request-target of exactly 8 KiB.
    let fields: String = (0..99).map(|i| format!("X-H{i}: v\r\n")).collect();
    let r = request(
        g.addr(),
        format!("GET / HTTP/1.1\r\nHost: t\r\n{fields}\r\n").as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let target = format!("/echo?{}", "a".repeat(8 * 1024 - 6));
    let r = request(g.addr(), get_request(&target).as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-target"), Some(target.as_str()));
}

/// Sends `bytes` one at a time, `every` apart, until the proxy starts answering (or all are
/// sent); returns how long it took from the first byte to the first byte of the answer.
fn trickle_until_answered(conn: &Conn, bytes: &[u8], every: Duration) -> Duration {
    let started = Instant::now();
    let stream = conn.stream();
    let answered = || {
        let _ = stream.set_read_timeout(Some(every));
        let peeked = stream.peek(&mut [0; 1]);
        let _ = stream.set_read_timeout(Some(support::client::TIMEOUT));
        // Bytes, EOF or a reset all mean the proxy has stopped waiting for the head.
        match peeked {
            Ok(_) => true,
            Err(e) => !matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ),
        }
    };
    for byte in bytes {
        if (&*stream).write_all(&[*byte]).is_err() || answered() {
            return started.elapsed();
        }
    }
    while !answered() {
        assert!(started.elapsed() < READY, "no answer within {READY:?}");
    }
    started.elapsed()
}

#[test]
fn request_head_trickling_past_header_timeout_gets_408() {
    let b1 = Backend::start("b1");
    let g = proxy(&[&b1], &["-header-timeout", "300ms"]);
    let mut conn = Conn::open(g.addr());
    let head = get_request("/");
    let waited = trickle_until_answered(&conn, head.as_bytes(), Duration::from_millis(50));
    let r = conn.read_response();
    assert_eq!(r.status, 408, "{}", r.text());
    assert!(waited >= Duration::from_millis(300), "408 after {waited:?}");
    assert!(conn.is_closed_by_peer(READY));
    assert_eq!(b1.requests(), 0);
}

#[test]
fn stalled_request_body_gets_408_and_is_not_forwarded_complete() {
    let b1 = Backend::start("b1");
    // One handle: the next request reuses whatever upstream connection the stalled one left.
    let g = proxy(&[&b1], &["-n", "1", "-body-timeout", "300ms"]);
    // A buffered body (sent nowhere before it is whole) and a streamed one (half sent).
    for (length, sent) in [(10, 3), (200 * 1024, 100 * 1024)] {
        let mut conn = Conn::open(g.addr());
        let head = format!("POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: {length}\r\n\r\n");
        conn.send(head.as_bytes());
        // Taken before the last bytes leave: goaround may read them before `send` returns,
        // and its -body-timeout runs from that read.
        let started = Instant::now();
        conn.send(&test_body(sent));
        let r = conn.read_response_to("POST");
        let waited = started.elapsed();
        assert_eq!(r.status, 408, "{sent} of {length}: {}", r.text());
        assert!(waited >= Duration::from_millis(300), "408 after {waited:?}");
        assert!(
            conn.is_closed_by_peer(READY),
            "{sent} of {length}: left open"
        );
    }
    let r = get(g.addr(), "/");
    assert_eq!(r.status, 200, "{}", r.text());
    let targets: Vec<String> = b1.received().into_iter().map(|r| r.target).collect();
    assert_eq!(
        targets,
        ["/"],
        "a stalled body reached the backend complete"
    );
}

// ---------------------------------------------------------------------------------------
// Concurrency limits
// ---------------------------------------------------------------------------------------

#[test]
fn n_limits_requests_in_flight_per_backend() {
    let b1 = Backend::start("b1");
    let g = proxy(&[&b1], &["-n", "2", "-queue-timeout", "10s"]);
    let addr = g.addr();
    let clients: Vec<JoinHandle<u16>> = (0..10)
        .map(|_| thread::spawn(move || get(addr, "/slow/300").status))
        .collect();
    let statuses: Vec<u16> = clients
        .into_iter()
        .map(|c| c.join().expect("client thread"))
        .collect();
    assert_eq!(statuses, [200; 10]);
    assert_eq!(b1.requests(), 10);
    assert_eq!(
        b1.max_in_flight(),
        2,
        "-n 2 not respected (or never reached)"
    );
}

#[test]
fn queue_timeout_gives_503_while_handles_stay_busy() {
    let b1 = Backend::start("b1");
    let g = proxy(&[&b1], &["-n", "1", "-queue-timeout", "200ms"]);
    let addr = g.addr();
    let slow = thread::spawn(move || get(addr, "/slow/1500"));
    assert!(b1.wait_for(|b| b.in_flight() == 1, READY));
    let started = Instant::now();
    let r = get(g.addr(), "/");
    let waited = started.elapsed();
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.text().contains("busy"), "{}", r.text());
    assert!(waited >= Duration::from_millis(200), "503 after {waited:?}");
    assert_eq!(
        b1.in_flight(),
        1,
        "the slow request should still be running"
    );
    assert_eq!(slow.join().expect("slow client").status, 200);
    assert_eq!(b1.requests(), 1);
}

// ---------------------------------------------------------------------------------------
// Error pages and metrics
// ---------------------------------------------------------------------------------------

#[test]
fn error_page_format_follows_accept() {
    let g = Goaround::builder().start();
    let with_accept = |accept: &str| {
        let raw = format!("GET / HTTP/1.1\r\nHost: test\r\nAccept: {accept}\r\n\r\n");
        request(g.addr(), raw.as_bytes())
    };

    let r = with_accept("application/json");
    assert_eq!(r.status, 503);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let text = r.text();
    assert!(
        text.trim_start().starts_with('{') && text.contains("\"status\":503"),
        "{text}"
    );

    let r = with_accept("text/html,application/xhtml+xml;q=0.9");
    assert_eq!(r.status, 503);
    assert!(r
        .header("content-type")
        .unwrap_or("")
        .starts_with("text/html"));
    assert!(r.text().contains("<h1>503"), "{}", r.text());

    for r in [with_accept("*/*"), get(g.addr(), "/")] {
        assert_eq!(r.status, 503);
        assert!(r
            .header("content-type")
            .unwrap_or("")
            .starts_with("text/plain"));
        assert!(r.text().starts_with("503 "), "{}", r.text());
    }
}

#[test]
fn answered_requests_are_counted_by_backend_and_code() {
    let b1 = Backend::start("b1");
    let g = proxy(&[&b1], &[]);
    for _ in 0..3 {
        assert_eq!(get(g.addr(), "/").status, 200);
    }
    assert_eq!(get(g.addr(), "/status/503").status, 503);
    let ok = requests_series(&b1.url(), 200);
    assert_eq!(wait_metric(&g, &ok, 3.0), Some(3.0), "{}", g.metrics());
    let failed = requests_series(&b1.url(), 503);
    assert_eq!(wait_metric(&g, &failed, 1.0), Some(1.0), "{}", g.metrics());
}

// ---------------------------------------------------------------------------------------
// A backend that sends fixed bytes
// ---------------------------------------------------------------------------------------

/// A backend that answers `/health` as healthy and every other request with `answer`, byte
/// for byte, then closes the connection: for responses the fixture backend cannot produce.
/// Dropping it stops accepting; connection threads end with their connection.
struct ScriptedBackend {
    server: ScriptedServer,
}

impl ScriptedBackend {
    fn start(answer: &'static [u8]) -> ScriptedBackend {
        let server = ScriptedServer::start(move |stream| serve_scripted(stream, answer));
        ScriptedBackend { server }
    }

    fn url(&self) -> String {
        format!("http://{}", self.server.addr())
    }
}

fn serve_scripted(stream: TcpStream, answer: &[u8]) {
    let mut reader = BufReader::new(&stream);
    while let Ok(Some(head)) = read_head(&mut reader) {
        if head.target == "/health" {
            let body = r#"{"state": "healthy", "message": ""}"#;
            let reply = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\n\r\n{body}",
                body.len()
            );
            if (&stream).write_all(reply.as_bytes()).is_err() {
                return;
            }
            continue;
        }
        let _ = (&stream).write_all(answer);
        let _ = stream.shutdown(Shutdown::Both);
        return;
    }
}
