//! Health checks, the control socket and signals, against the real binary.
//!
//! Each test starts its own fixture backends and its own `goaround` with small intervals given
//! as flags. Nothing waits a fixed time for something to happen: every wait polls a condition
//! (a metric, a log line, a backend counter) until a deadline, and the deadline only turns a
//! hang into a failure. Timing bounds are asserted only where the behaviour is about time
//! (first check at start-up, health timeout, shutdown timeout).

mod support;

use support::tempdir::TempDir;

use support::wait_until;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use support::{control, get, run_cli, Backend, Conn, Goaround, Response};

/// Upper bound for anything that should happen within a few health intervals.
const SOON: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------------------------
// Helpers (small enough not to belong in tests/support).

fn up_series(url: &str) -> String {
    format!("goaround_backend_up{{backend=\"{url}\"}}")
}

fn checks_series(url: &str, result: &str) -> String {
    format!("goaround_health_checks_total{{backend=\"{url}\",result=\"{result}\"}}")
}

/// Polls `/metrics` until `series` has `value`.
fn wait_metric(g: &Goaround, series: &str, value: f64, timeout: Duration) -> bool {
    wait_until(timeout, || g.metric(series) == Some(value))
}

/// Health checks of `url` that goaround has finished (either result).
fn checks_done(g: &Goaround, url: &str) -> f64 {
    let page = g.metrics();
    let n = |result| support::metric_value(&page, &checks_series(url, result)).unwrap_or(0.0);
    n("healthy") + n("unhealthy")
}

/// `GET /` through the proxy, which must answer 200; returns the backend that served it.
#[track_caller]
fn served_by(g: &Goaround) -> String {
    let r = get(g.addr(), "/");
    assert_eq!(r.status, 200, "GET / through the proxy: {r:?}");
    r.header("x-backend")
        .unwrap_or_else(|| panic!("no X-Backend in {r:?}"))
        .to_owned()
}

/// Polls `GET /` until `name` serves it; 503s meanwhile are fine (a new backend is down
/// until its first check passes).
fn wait_served_by(g: &Goaround, name: &str, timeout: Duration) -> bool {
    wait_until(timeout, || {
        let r = get(g.addr(), "/");
        r.status == 200 && r.header("x-backend") == Some(name)
    })
}

fn occurrences(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

fn up_line(url: &str) -> String {
    format!("backend {url} is up")
}

fn down_line(url: &str) -> String {
    format!("backend {url} is down")
}

/// Polls the output until `needle` occurs `n` times.
fn wait_log_count(g: &Goaround, needle: &str, n: usize, timeout: Duration) -> bool {
    wait_until(timeout, || occurrences(&g.stderr(), needle) >= n)
}

/// A control connection: write raw bytes, read replies as they come.
fn control_conn(socket: &Path) -> UnixStream {
    let stream =
        UnixStream::connect(socket).unwrap_or_else(|e| panic!("connect {}: {e}", socket.display()));
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("set read timeout");
    stream
}

/// Reads from `stream` until `reply` ends in a newline or the peer closes.
fn read_reply_line(stream: &mut UnixStream) -> String {
    let mut reply = Vec::new();
    let mut byte = [0u8; 1];
    while !reply.ends_with(b"\n") {
        match stream.read(&mut byte) {
            Ok(0) => break,
            Ok(_) => reply.push(byte[0]),
            Err(e) => panic!(
                "reading control reply (got {:?}): {e}",
                String::from_utf8_lossy(&reply)
            ),
        }
    }
    String::from_utf8(reply).expect("control reply is UTF-8")
}

/// A request sent to the proxy whose response is read later.
fn send_get(g: &Goaround, path: &str) -> Conn {
    let mut conn = Conn::open(g.addr());
    conn.send(format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes());
    conn
}

// ---------------------------------------------------------------------------------------------
// Health checks

/// (status, body) of `/health` → whether the backend is put in service.
const VERDICTS: &[(u16, &str, bool)] = &[
    (200, "", true),
    (200, "ok", true),
    (200, r#"{"state": "healthy", "message": ""}"#, true),
    (500, r#"{"state":"healthy"}"#, true),
    (
        503,
        r#"{"state": "healthy", "message": "still fine"}"#,
        true,
    ),
    (200, r#"{"state":"starting"}"#, true),
    (200, r#"{"message":"no state at all"}"#, true),
    (200, r#"{"state":"degraded"}"#, false),
    (500, r#"{"state":"degraded"}"#, false),
    (503, "x", false),
    (500, r#"{"state":"starting"}"#, false),
    (404, "", false),
    (301, "", false),
];

#[test]
fn health_verdict_decides_whether_requests_are_served() {
    for &(status, body, healthy) in VERDICTS {
        let case = format!("/health answering {status} {body:?}");
        let backend = Backend::start("verdict");
        backend.set_health(status, body);
        let g = Goaround::builder()
            .backends(&[backend.url()])
            .arg("-health-interval")
            .arg("60s")
            .start();
        let url = backend.url();
        assert!(
            wait_until(SOON, || checks_done(&g, &url) >= 1.0),
            "{case}: no health check finished"
        );
        // A down backend is checked again every second: count at least one.
        let result = if healthy { "healthy" } else { "unhealthy" };
        let other = if healthy { "unhealthy" } else { "healthy" };
        assert!(
            g.metric(&checks_series(&url, result)) >= Some(1.0),
            "{case}: expected a {result} check"
        );
        assert_eq!(
            g.metric(&checks_series(&url, other)),
            None,
            "{case}: unexpected {other} check"
        );
        let r = get(g.addr(), "/");
        if healthy {
            assert_eq!(r.status, 200, "{case}: {r:?}");
            assert_eq!(r.header("x-backend"), Some("verdict"), "{case}");
            assert_eq!(g.metric("goaround_backends_up"), Some(1.0), "{case}");
        } else {
            assert_eq!(r.status, 503, "{case}: {r:?}");
            assert_eq!(backend.requests(), 0, "{case}: request reached the backend");
            assert_eq!(g.metric("goaround_backends_up"), Some(0.0), "{case}");
        }
    }
}

#[test]
fn first_health_check_runs_at_start_not_after_an_interval() {
    let backend = Backend::start("a");
    let started = Instant::now();
    let g = Goaround::builder()
        .backends(&[backend.url()])
        .arg("-health-interval")
        .arg("60s")
        .start();
    assert!(
        g.wait_ready_backends(1, Duration::from_secs(1).saturating_sub(started.elapsed())),
        "backend not up within 1 s of start with -health-interval 60s"
    );
    assert_eq!(served_by(&g), "a");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "first request served {:?} after start",
        started.elapsed()
    );
    assert_eq!(
        backend.health_checks(),
        1,
        "checked again before the interval"
    );
}

/// A backend not checked yet is down (`list`, metrics) but *pending*: a request waits for
/// its first verdict, up to `-queue-timeout`, rather than failing at once.
#[test]
fn request_waits_for_the_first_check_of_a_new_backend() {
    let a = Backend::start("a");
    a.set_hang_health(true);
    let g = Goaround::builder()
        .backends(&[a.url()])
        .args(&["-health-interval", "60s", "-health-timeout", "5s"])
        .start();
    assert!(
        a.wait_for(|a| a.health_checks() >= 1, SOON),
        "no health check"
    );
    // The first check is held by the backend: the verdict is not in yet.
    let mut waiting = send_get(&g, "/");
    assert_eq!(
        control(g.socket_path(), "list"),
        format!("{} down in_flight=0\nok: 1 backends\n", a.url())
    );
    assert_eq!(g.metric("goaround_backends_up"), Some(0.0));
    assert_eq!(a.requests(), 0);
    // A slow answer within the health timeout still counts, and the request goes through.
    a.set_hang_health(false);
    let r = waiting.read_response();
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("x-backend"), Some("a"));
    assert_eq!(a.health_checks(), 1);
}

#[test]
fn pending_wait_ends_at_queue_timeout() {
    let a = Backend::start("a");
    a.set_hang_health(true);
    let g = Goaround::builder()
        .backends(&[a.url()])
        .args(&["-health-timeout", "5s", "-queue-timeout", "300ms"])
        .start();
    assert!(
        a.wait_for(|a| a.health_checks() >= 1, SOON),
        "no health check"
    );
    let sent = Instant::now();
    let r = get(g.addr(), "/");
    let took = sent.elapsed();
    assert_eq!(r.status, 503, "{r:?}");
    assert!(took >= Duration::from_millis(250), "503 after {took:?}");
    assert!(took < Duration::from_secs(3), "503 after {took:?}");
}

/// Once a check has failed the backend is down, not pending: no waiting.
#[test]
fn down_backend_answers_503_at_once() {
    let a = Backend::start("a");
    a.set_health(500, "");
    let g = Goaround::builder()
        .backends(&[a.url()])
        .args(&["-queue-timeout", "5s"])
        .start();
    let unhealthy = checks_series(&a.url(), "unhealthy");
    assert!(wait_until(SOON, || g.metric(&unhealthy) >= Some(1.0)));
    let sent = Instant::now();
    assert_eq!(get(g.addr(), "/").status, 503);
    assert!(
        sent.elapsed() < Duration::from_secs(2),
        "503 after {:?}",
        sent.elapsed()
    );
}

/// A down backend is checked again within a second even when `-health-interval` is long, so
/// a restarted backend is back quickly.
#[test]
fn down_backend_is_rechecked_within_a_second() {
    let a = Backend::start("a");
    a.set_health(503, "starting up");
    let g = Goaround::builder()
        .backends(&[a.url()])
        .arg("-health-interval")
        .arg("60s")
        .start();
    let unhealthy = checks_series(&a.url(), "unhealthy");
    assert!(wait_until(SOON, || g.metric(&unhealthy) >= Some(1.0)));
    a.set_health(200, "");
    let healed = Instant::now();
    assert!(
        g.wait_ready_backends(1, Duration::from_secs(3)),
        "a not back"
    );
    assert!(
        healed.elapsed() < Duration::from_millis(1500),
        "back after {:?}",
        healed.elapsed()
    );
    assert_eq!(served_by(&g), "a");
}

#[test]
fn checks_repeat_every_interval() {
    let backend = Backend::start("a");
    let started = Instant::now();
    let g = Goaround::builder()
        .backends(&[backend.url()])
        .arg("-health-interval")
        .arg("100ms")
        .start();
    assert!(
        backend.wait_for(|b| b.health_checks() >= 5, SOON),
        "only {} checks",
        backend.health_checks()
    );
    // Four intervals at least separate the first check from the fifth.
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "5 checks within {:?}",
        started.elapsed()
    );
    assert!(g.wait_ready_backends(1, SOON));
}

#[test]
fn unhealthy_backend_is_taken_out_and_comes_back() {
    let a = Backend::start("a");
    let b = Backend::start("b");
    let g = Goaround::builder()
        .backends(&[a.url(), b.url()])
        .arg("-health-interval")
        .arg("100ms")
        .start();
    assert!(g.wait_ready_backends(2, SOON));

    a.set_health(500, r#"{"state":"degraded"}"#);
    assert!(
        wait_metric(&g, &up_series(&a.url()), 0.0, SOON),
        "a still up"
    );
    let before = a.requests();
    for i in 0..10 {
        assert_eq!(served_by(&g), "b", "request {i} while a is down");
    }
    assert_eq!(a.requests(), before, "a got requests while down");

    a.set_health(200, "");
    assert!(g.wait_ready_backends(2, SOON), "a did not come back");
    let mut seen_a = false;
    for _ in 0..10 {
        seen_a |= served_by(&g) == "a";
    }
    assert!(seen_a, "a is up again but gets no requests");
}

#[test]
fn health_check_timeout_marks_backend_down() {
    let a = Backend::start("a");
    a.set_hang_health(true);
    let started = Instant::now();
    let g = Goaround::builder()
        .backends(&[a.url()])
        .args(&["-health-interval", "200ms", "-health-timeout", "300ms"])
        .start();
    // The default timeout is 5 s: a failed check well before that is the flag at work.
    let unhealthy = checks_series(&a.url(), "unhealthy");
    assert!(
        wait_until(Duration::from_secs(3), || g.metric(&unhealthy) >= Some(1.0)),
        "no timed-out check"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "first check took {:?} to time out",
        started.elapsed()
    );
    assert_eq!(get(g.addr(), "/").status, 503);
    assert_eq!(g.metric(&up_series(&a.url())), Some(0.0));

    a.set_hang_health(false);
    assert!(g.wait_ready_backends(1, SOON), "a never came up");
    assert_eq!(served_by(&g), "a");

    a.set_hang_health(true);
    assert!(
        g.wait_for_log(&down_line(&a.url()), SOON),
        "hanging /health did not take a down"
    );
    assert!(g.wait_ready_backends(0, SOON));
    assert_eq!(get(g.addr(), "/").status, 503);
    let line = g
        .stderr()
        .lines()
        .find(|l| l.contains(&down_line(&a.url())))
        .map(str::to_owned)
        .unwrap_or_default();
    assert!(
        line.contains("timeout"),
        "down reason does not mention the timeout: {line}"
    );
}

#[test]
fn each_transition_is_logged_once() {
    let a = Backend::start("a");
    let g = Goaround::builder()
        .backends(&[a.url()])
        .arg("-health-interval")
        .arg("50ms")
        .start();
    let (up, down) = (up_line(&a.url()), down_line(&a.url()));
    // Several checks after each transition, each one a chance to log it again.
    let checks_after = |n: u64| {
        let from = a.health_checks();
        assert!(
            a.wait_for(|b| b.health_checks() >= from + n, SOON),
            "health checks stopped"
        );
    };

    assert!(g.wait_for_log(&up, SOON));
    checks_after(4);
    a.set_health(503, "maintenance");
    assert!(g.wait_for_log(&down, SOON));
    checks_after(4);
    a.set_health(200, r#"{"state":"healthy"}"#);
    assert!(wait_log_count(&g, &up, 2, SOON));
    checks_after(4);

    let log = g.stderr();
    assert_eq!(occurrences(&log, &up), 2, "up transitions in:\n{log}");
    assert_eq!(occurrences(&log, &down), 1, "down transitions in:\n{log}");
}

#[test]
fn backend_up_metrics_follow_health() {
    let a = Backend::start("a");
    let b = Backend::start("b");
    let g = Goaround::builder()
        .backends(&[a.url(), b.url()])
        .arg("-health-interval")
        .arg("100ms")
        .start();
    assert!(g.wait_ready_backends(2, SOON));
    assert_eq!(g.metric(&up_series(&a.url())), Some(1.0));
    assert_eq!(g.metric(&up_series(&b.url())), Some(1.0));
    assert_eq!(g.metric("goaround_backends"), Some(2.0));

    b.set_health(500, "");
    assert!(g.wait_ready_backends(1, SOON));
    assert_eq!(g.metric(&up_series(&a.url())), Some(1.0));
    assert_eq!(g.metric(&up_series(&b.url())), Some(0.0));

    a.set_health(200, r#"{"state":"degraded"}"#);
    assert!(g.wait_ready_backends(0, SOON));
    assert_eq!(g.metric(&up_series(&a.url())), Some(0.0));
    assert_eq!(g.metric(&up_series(&b.url())), Some(0.0));
    assert_eq!(g.metric("goaround_backends"), Some(2.0));

    b.set_health(200, "");
    assert!(g.wait_ready_backends(1, SOON));
    assert_eq!(g.metric(&up_series(&a.url())), Some(0.0));
    assert_eq!(g.metric(&up_series(&b.url())), Some(1.0));
}

#[test]
fn unreachable_backend_is_never_used() {
    let live = Backend::start("live");
    let dead = support::dead_url();
    let g = Goaround::builder()
        .backends(&[dead.clone(), live.url()])
        .arg("-health-interval")
        .arg("100ms")
        .start();
    let unhealthy = checks_series(&dead, "unhealthy");
    assert!(
        wait_until(SOON, || g.metric(&unhealthy) >= Some(2.0)),
        "no failed checks of {dead}"
    );
    assert!(g.wait_ready_backends(1, SOON));
    assert_eq!(g.metric(&up_series(&dead)), Some(0.0));
    for i in 0..6 {
        assert_eq!(served_by(&g), "live", "request {i}");
    }
    assert_eq!(occurrences(&g.stderr(), &up_line(&dead)), 0);
    let listing = control(g.socket_path(), "list");
    assert!(
        listing.starts_with(&format!("{dead} down in_flight=0\n{} up ", live.url())),
        "{listing:?}"
    );
}

#[test]
fn stopped_backend_is_taken_out_and_logged_down_once() {
    let a = Backend::start("a");
    let b = Backend::start("b");
    let a_url = a.url();
    let g = Goaround::builder()
        .backends(&[a_url.clone(), b.url()])
        .arg("-health-interval")
        .arg("50ms")
        .start();
    assert!(g.wait_ready_backends(2, SOON));

    a.stop();
    // Requests that meet the refused connection are retried on b: none fails.
    for i in 0..10 {
        assert_eq!(served_by(&g), "b", "request {i} after a stopped");
    }
    assert!(g.wait_ready_backends(1, SOON));
    let unhealthy = checks_series(&a_url, "unhealthy");
    let failed = g.metric(&unhealthy).unwrap_or(0.0);
    assert!(
        wait_until(SOON, || g.metric(&unhealthy) >= Some(failed + 4.0)),
        "health checks of a stopped"
    );
    let log = g.stderr();
    assert_eq!(occurrences(&log, &down_line(&a_url)), 1, "in:\n{log}");
    assert_eq!(occurrences(&log, &up_line(&a_url)), 1, "in:\n{log}");
}

// ---------------------------------------------------------------------------------------------
// Control socket

#[test]
fn start_without_backends_answers_503_until_control_adds_one() {
    let a = Backend::start("a");
    let g = Goaround::builder().start();
    assert_eq!(control(g.socket_path(), "list"), "ok: 0 backends\n");
    let r = get(g.addr(), "/");
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(control(g.socket_path(), &a.url()), "ok: 1 backends\n");
    assert!(wait_served_by(&g, "a", SOON));
}

#[test]
fn resending_the_set_keeps_backends_up() {
    let a = Backend::start("a");
    let b = Backend::start("b");
    let g = Goaround::builder()
        .backends(&[a.url(), b.url()])
        .arg("-health-interval")
        .arg("60s")
        .start();
    assert!(g.wait_ready_backends(2, SOON));
    // Same backends, other order and spelling: nothing to check again, nothing goes down.
    let same = format!("{}/,{}", b.url(), a.url().to_uppercase());
    assert_eq!(control(g.socket_path(), &same), "ok: 2 backends\n");
    assert_eq!(g.metric("goaround_backends_up"), Some(2.0));
    let mut names: Vec<String> = (0..4).map(|_| served_by(&g)).collect();
    names.sort();
    names.dedup();
    assert_eq!(names, ["a", "b"]);
    assert_eq!((a.health_checks(), b.health_checks()), (1, 1));
    let log = g.stderr();
    assert_eq!(occurrences(&log, &up_line(&a.url())), 1, "in:\n{log}");
}

#[test]
fn control_line_replaces_the_backend_set() {
    let a = Backend::start("a");
    let b = Backend::start("b");
    // A long interval: b can only come up through the check made when it is added.
    let g = Goaround::builder()
        .backends(&[a.url()])
        .arg("-health-interval")
        .arg("60s")
        .start();
    assert!(g.wait_ready_backends(1, SOON));

    assert_eq!(control(g.socket_path(), &b.url()), "ok: 1 backends\n");
    assert!(
        b.wait_for(|b| b.health_checks() >= 1, SOON),
        "b not checked when added"
    );
    assert!(wait_served_by(&g, "b", SOON), "b gets no traffic");
    let a_requests = a.requests();
    for i in 0..6 {
        assert_eq!(served_by(&g), "b", "request {i} after a was removed");
    }
    assert_eq!(a.requests(), a_requests, "removed backend got new requests");
    // The handle goes back just after the last response bytes are written: poll for it.
    let listed = format!("{} up in_flight=0\nok: 1 backends\n", b.url());
    assert!(
        wait_until(SOON, || control(g.socket_path(), "list") == listed),
        "list: {}",
        control(g.socket_path(), "list")
    );
    assert_eq!(g.metric("goaround_backends"), Some(1.0));
    assert_eq!(g.metric(&up_series(&a.url())), None, "a still in /metrics");
    assert_eq!(b.health_checks(), 1, "b checked again before the interval");

    // Both, with spaces around the items; a is new again and is checked again.
    let both = format!(" {} , {}/ ", a.url(), b.url());
    assert_eq!(control(g.socket_path(), &both), "ok: 2 backends\n");
    assert!(g.wait_ready_backends(2, SOON));
    let mut names: Vec<String> = (0..6).map(|_| served_by(&g)).collect();
    names.sort();
    names.dedup();
    assert_eq!(names, ["a", "b"]);
}

#[test]
fn invalid_control_line_changes_nothing() {
    let a = Backend::start("a");
    let b = Backend::start("b");
    let g = Goaround::builder()
        .backends(&[a.url()])
        .arg("-health-interval")
        .arg("60s")
        .start();
    assert!(g.wait_ready_backends(1, SOON));
    let (a_url, b_url) = (a.url(), b.url());
    let bad_lines = [
        format!("{b_url},not a url"),
        format!("{b_url},,{a_url}"),
        format!("{b_url},"),
        format!("{b_url},{b_url}/"),
        format!("{b_url},ftp://x"),
        format!("{b_url},localhost:9000"),
        format!("{b_url}/path"),
        String::new(),
        "   ".to_owned(),
        format!("{b_url},{}", "x".repeat(70_000)),
    ];
    for line in &bad_lines {
        let reply = control(g.socket_path(), line);
        assert!(
            reply.starts_with("error: ") && reply.ends_with('\n') && reply.lines().count() == 1,
            "{line:?} answered {reply:?}"
        );
    }
    let listed = format!("{a_url} up in_flight=0\nok: 1 backends\n");
    assert!(
        wait_until(SOON, || control(g.socket_path(), "list") == listed),
        "list: {}",
        control(g.socket_path(), "list")
    );
    for i in 0..4 {
        assert_eq!(served_by(&g), "a", "request {i}");
    }
    assert_eq!(b.health_checks(), 0, "a refused list started checks of b");
    assert_eq!(b.requests(), 0);
}

#[test]
fn every_line_of_a_connection_is_answered() {
    let a = Backend::start("a");
    let b = Backend::start("b");
    let g = Goaround::builder().backends(&[a.url()]).start();
    assert!(g.wait_ready_backends(1, SOON));

    let mut conn = control_conn(g.socket_path());
    let input = format!("{},{}\nbogus\nlist\n{}\n", a.url(), b.url(), a.url());
    conn.write_all(input.as_bytes()).expect("write");
    conn.shutdown(Shutdown::Write).expect("half-close");
    let mut reply = String::new();
    conn.read_to_string(&mut reply).expect("read replies");
    let lines: Vec<&str> = reply.lines().collect();
    assert_eq!(lines.len(), 6, "{reply:?}");
    assert_eq!(lines[0], "ok: 2 backends");
    assert!(lines[1].starts_with("error: "), "{reply:?}");
    assert!(lines[2].starts_with(&format!("{} ", a.url())), "{reply:?}");
    assert!(lines[3].starts_with(&format!("{} ", b.url())), "{reply:?}");
    assert_eq!(&lines[4..], ["ok: 2 backends", "ok: 1 backends"]);
}

#[test]
fn line_without_newline_and_without_half_close_is_processed() {
    let a = Backend::start("a");
    let b = Backend::start("b");
    let g = Goaround::builder().backends(&[a.url()]).start();
    assert!(g.wait_ready_backends(1, SOON));

    let mut conn = control_conn(g.socket_path());
    let sent = Instant::now();
    conn.write_all(b.url().as_bytes()).expect("write");
    assert_eq!(read_reply_line(&mut conn), "ok: 1 backends\n");
    assert!(
        sent.elapsed() < Duration::from_secs(2),
        "reply took {:?}",
        sent.elapsed()
    );
    // Then the server closes the idle connection.
    let mut rest = Vec::new();
    conn.read_to_end(&mut rest).expect("read to close");
    assert!(rest.is_empty(), "unexpected {rest:?}");
    assert!(
        sent.elapsed() < Duration::from_secs(3),
        "idle connection closed after {:?}",
        sent.elapsed()
    );
    assert!(g.wait_ready_backends(1, SOON));
    assert!(wait_served_by(&g, "b", SOON));
}

#[test]
fn newline_ends_a_line_without_waiting_for_more() {
    let a = Backend::start("a");
    let g = Goaround::builder().backends(&[a.url()]).start();
    let mut conn = control_conn(g.socket_path());
    for _ in 0..2 {
        let sent = Instant::now();
        conn.write_all(b"list\n").expect("write");
        let listing = read_reply_line(&mut conn);
        assert!(listing.starts_with(&a.url()), "{listing:?}");
        assert_eq!(read_reply_line(&mut conn), "ok: 1 backends\n");
        // Well under the idle limit: the newline, not the silence, ended the line.
        assert!(
            sent.elapsed() < Duration::from_millis(450),
            "reply took {:?}",
            sent.elapsed()
        );
    }
}

#[test]
fn silent_control_client_is_dropped_and_does_not_block_others() {
    let a = Backend::start("a");
    let g = Goaround::builder().backends(&[a.url()]).start();
    let mut silent = control_conn(g.socket_path());
    let connected = Instant::now();
    let other = thread::spawn({
        let path = g.socket_path().to_owned();
        move || control(&path, "list")
    });
    let mut rest = Vec::new();
    silent.read_to_end(&mut rest).expect("read to close");
    assert!(rest.is_empty(), "unexpected {rest:?}");
    assert!(
        connected.elapsed() < Duration::from_secs(2),
        "silent connection closed after {:?}",
        connected.elapsed()
    );
    let reply = other.join().expect("second control client");
    assert!(reply.ends_with("ok: 1 backends\n"), "{reply:?}");
    assert!(
        connected.elapsed() < Duration::from_secs(3),
        "second client answered after {:?}",
        connected.elapsed()
    );
}

/// `echo -n URL | nc -U PATH`: no newline, then a half-close.
#[test]
fn nc_style_half_closed_line_is_processed() {
    let a = Backend::start("a");
    let b = Backend::start("b");
    let g = Goaround::builder().backends(&[a.url()]).start();
    assert!(g.wait_ready_backends(1, SOON));

    let mut conn = control_conn(g.socket_path());
    let sent = Instant::now();
    let line = format!("{},{}", a.url(), b.url());
    conn.write_all(line.as_bytes()).expect("write");
    conn.shutdown(Shutdown::Write).expect("half-close");
    let mut reply = String::new();
    conn.read_to_string(&mut reply).expect("read reply");
    assert_eq!(reply, "ok: 2 backends\n");
    // End of input completes the line; the idle limit is not what answered it.
    assert!(
        sent.elapsed() < Duration::from_millis(450),
        "reply took {:?}",
        sent.elapsed()
    );
    assert!(g.wait_ready_backends(2, SOON));
}

#[test]
fn removed_backend_finishes_its_in_flight_request() {
    let a = Backend::start("a");
    let b = Backend::start("b");
    let g = Goaround::builder().backends(&[a.url()]).start();
    assert!(g.wait_ready_backends(1, SOON));

    let mut slow = send_get(&g, "/slow/1000");
    assert!(
        a.wait_for(|a| a.in_flight() == 1, SOON),
        "slow request not at a"
    );
    assert_eq!(
        control(g.socket_path(), "list"),
        format!("{} up in_flight=1\nok: 1 backends\n", a.url())
    );
    assert_eq!(control(g.socket_path(), &b.url()), "ok: 1 backends\n");
    assert!(
        a.in_flight() == 1,
        "the slow request ended before the removal; the test proves nothing"
    );

    let r: Response = slow.read_response();
    assert_eq!((r.status, r.text().as_str()), (200, "slow"), "{r:?}");
    assert_eq!(r.header("x-backend"), Some("a"));

    assert!(wait_served_by(&g, "b", SOON));
    let a_requests = a.requests();
    for _ in 0..4 {
        assert_eq!(served_by(&g), "b");
    }
    assert_eq!(a.requests(), a_requests);
}

#[test]
fn socket_file_is_private_and_removed_at_exit() {
    let a = Backend::start("a");
    let g = Goaround::builder().backends(&[a.url()]).start();
    let meta = std::fs::symlink_metadata(g.socket_path()).expect("socket file exists");
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);

    g.signal(15);
    let status = g.wait_exit(SOON).expect("no exit after SIGTERM");
    assert_eq!(status.code(), Some(0), "{status}");
    assert!(!g.socket_path().exists(), "socket file left behind");
}

#[test]
fn stale_socket_file_is_replaced_at_start() {
    let dir = TempDir::new("hc");
    let path = dir.path().join("stale.sock");
    drop(UnixListener::bind(&path).expect("bind the stale socket"));
    assert!(path.exists(), "a dropped listener leaves its file");

    let a = Backend::start("a");
    let g = Goaround::builder()
        .backends(&[a.url()])
        .arg("-socket")
        .arg(path.display().to_string())
        .start();
    assert!(g.wait_ready_backends(1, SOON));
    assert_eq!(
        control(&path, "list"),
        format!("{} up in_flight=0\nok: 1 backends\n", a.url())
    );
}

#[test]
fn socket_of_a_live_process_is_not_taken_over() {
    let a = Backend::start("a");
    let first = Goaround::builder().backends(&[a.url()]).start();
    let path = first.socket_path().display().to_string();
    let second = run_cli(&[
        "-p",
        "0",
        "-bind",
        "127.0.0.1",
        "-prometheus-port",
        "0",
        "-socket",
        &path,
        "-b",
        &a.url(),
    ]);
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&path) && stderr.contains("another process"),
        "{stderr}"
    );
    // The first one still owns its socket.
    assert!(first.wait_ready_backends(1, SOON));
    assert_eq!(
        control(first.socket_path(), "list"),
        format!("{} up in_flight=0\nok: 1 backends\n", a.url())
    );
}

// ---------------------------------------------------------------------------------------------
// Signals

/// Polls until connecting to the proxy is refused.
fn wait_refused(g: &Goaround, timeout: Duration) -> bool {
    wait_until(timeout, || match TcpStream::connect(g.addr()) {
        Ok(_) => false,
        Err(e) => e.kind() == ErrorKind::ConnectionRefused,
    })
}

fn drains_then_exits_on(signal: i32) {
    let a = Backend::start("a");
    let g = Goaround::builder()
        .backends(&[a.url()])
        .args(&["-shutdown-timeout", "5s"])
        .start();
    assert!(g.wait_ready_backends(1, SOON));

    let mut slow = send_get(&g, "/slow/1000");
    assert!(
        a.wait_for(|a| a.in_flight() == 1, SOON),
        "slow request not at a"
    );
    let signalled = Instant::now();
    g.signal(signal);
    assert!(
        wait_refused(&g, Duration::from_secs(2)),
        "still accepting connections after signal {signal}"
    );
    let r = slow.read_response();
    assert_eq!((r.status, r.text().as_str()), (200, "slow"), "{r:?}");
    assert!(
        slow.is_closed_by_peer(Duration::from_secs(2)),
        "connection kept open during shutdown"
    );
    let status = g
        .wait_exit(Duration::from_secs(5))
        .unwrap_or_else(|| panic!("still running 5 s after signal {signal}"));
    assert_eq!(status.code(), Some(0), "{status}");
    assert!(
        signalled.elapsed() < Duration::from_secs(5),
        "exit took {:?}",
        signalled.elapsed()
    );
    assert!(!g.socket_path().exists(), "socket file left behind");
}

#[test]
fn sigterm_drains_in_flight_request_then_exits_0() {
    drains_then_exits_on(15);
}

#[test]
fn sigint_drains_in_flight_request_then_exits_0() {
    drains_then_exits_on(2);
}

#[test]
fn shutdown_timeout_bounds_the_drain() {
    let a = Backend::start("a");
    let g = Goaround::builder()
        .backends(&[a.url()])
        .args(&["-shutdown-timeout", "500ms"])
        .start();
    assert!(g.wait_ready_backends(1, SOON));

    let _hung = send_get(&g, "/hang");
    assert!(
        a.wait_for(|a| a.in_flight() == 1, SOON),
        "hang request not at a"
    );
    let signalled = Instant::now();
    g.signal(15);
    let status = g
        .wait_exit(Duration::from_secs(5))
        .expect("a hung request kept the process alive");
    let took = signalled.elapsed();
    assert_eq!(status.code(), Some(0), "{status}");
    assert!(took >= Duration::from_millis(500), "exited after {took:?}");
    assert!(took < Duration::from_secs(2), "exited after {took:?}");
}
