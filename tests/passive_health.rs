//! Passive health of `-config` servers (`max_fail` / `fail_timeout`, nginx's rules) through
//! the real binary: `max_fail` failures within `fail_timeout` take a server out; while out
//! it gets no request; once `fail_timeout` has passed it gets live traffic again, on
//! probation: one more failure takes it out at once, a success brings it back. Each
//! transition is logged and counted in `goaround_passive_transitions_total`.
//!
//! Failures are 503 answers from a scripted server, or refused connections (a dead port).
//! Timing is only ever asserted as a lower bound that the binary must respect (a server out
//! at time T is not tried before T + fail_timeout) or checked for requests that completed
//! inside the window, so a slow machine cannot fail these tests, only make them check less.

mod support;

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::scripted::{answer_each, ScriptedServer};
use support::tempdir::TempDir;
use support::{control, dead_url, get_request, wait_until, Backend, Conn, Goaround, Response};

const READY: Duration = Duration::from_secs(10);
/// The servers' `fail_timeout` in these tests.
const FAIL_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a test waits for a server to be tried again after its pause.
const BACK_WITHIN: Duration = Duration::from_secs(10);

/// A config whose upstream `pool` gets every request, with these `(path, max_fail)` servers,
/// each with a `fail_timeout` of [`FAIL_TIMEOUT`] and weight 1 (plain round-robin).
fn pool_config(dir: &TempDir, servers: &[(String, u32)]) -> PathBuf {
    let mut text = String::new();
    for (path, max_fail) in servers {
        text.push_str(&format!(
            "[[upstreams.pool.servers]]\npath = \"{path}\"\nmax_fail = {max_fail}\n\
             fail_timeout = \"{}s\"\n",
            FAIL_TIMEOUT.as_secs()
        ));
    }
    text.push_str("[[server.locations]]\npath = \"\"\nhttp_pass = \"pool\"\npass_path = true\n");
    dir.write("goaround.toml", text.as_bytes())
}

fn start(config: &Path, up: usize) -> Goaround {
    let g = Goaround::builder()
        .arg("-config")
        .arg(config.display().to_string())
        .start();
    assert!(g.wait_ready_backends(up, READY), "{up} backends not up");
    g
}

/// `GET /` over `conn`: the response, and when the request was sent.
fn ask(conn: &mut Conn) -> (Instant, Response) {
    let sent = Instant::now();
    conn.send(get_request("/").as_bytes());
    (sent, conn.read_response())
}

fn transitions(g: &Goaround, url: &str, to: &str) -> f64 {
    let series = format!("goaround_passive_transitions_total{{backend=\"{url}\",to=\"{to}\"}}");
    g.metric(&series).unwrap_or(0.0)
}

/// A server that answers 503 while `failing` is set and 200 otherwise, counting requests.
struct Flaky {
    server: ScriptedServer,
    failing: Arc<AtomicBool>,
    requests: Arc<AtomicUsize>,
}

impl Flaky {
    fn start() -> Flaky {
        let failing = Arc::new(AtomicBool::new(true));
        let requests = Arc::new(AtomicUsize::new(0));
        let server = ScriptedServer::start({
            let (failing, requests) = (Arc::clone(&failing), Arc::clone(&requests));
            move |stream: TcpStream| {
                answer_each(stream, "flaky", |_| {
                    requests.fetch_add(1, Ordering::SeqCst);
                    match failing.load(Ordering::SeqCst) {
                        true => (503, "overloaded".into()),
                        false => (200, "fine".into()),
                    }
                })
            }
        });
        Flaky {
            server,
            failing,
            requests,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr())
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

/// When a request was sent and when its response was in.
#[derive(Clone, Copy)]
struct Span {
    sent: Instant,
    answered: Instant,
}

/// Sends requests over `conn` until `tried()` passes `before`, at most [`BACK_WITHIN`];
/// returns the span of the request that did it.
#[track_caller]
fn ask_until_tried(conn: &mut Conn, tried: impl Fn() -> usize, before: usize) -> Span {
    let mut last = None;
    let tried_again = wait_until(BACK_WITHIN, || {
        let (sent, _) = ask(conn);
        last = Some(Span {
            sent,
            answered: Instant::now(),
        });
        tried() > before
    });
    assert!(tried_again, "not tried again within {BACK_WITHIN:?}");
    last.expect("at least one request was sent")
}

/// Sends requests over `conn` for as long as `since + fail_timeout / 2`, and checks that
/// every one answered before `since + fail_timeout` went to the good server while `tried()`
/// stayed at `count`. Returns how many were checked (at least one).
#[track_caller]
fn assert_out_until_fail_timeout(
    conn: &mut Conn,
    since: Instant,
    tried: impl Fn() -> usize,
    count: usize,
) -> usize {
    let mut checked = 0;
    while since.elapsed() < FAIL_TIMEOUT / 2 {
        let (_, r) = ask(conn);
        if since.elapsed() < FAIL_TIMEOUT {
            assert_eq!(r.status, 200, "{r:?}");
            assert_eq!(r.header("x-backend"), Some("good"), "while out");
            assert_eq!(tried(), count, "a server that is out was tried");
            checked += 1;
        }
    }
    assert!(checked > 0, "no request was answered within the pause");
    checked
}

/// A server answering 503: out after `max_fail` (2) within `fail_timeout`, no traffic
/// while out, live traffic again after `fail_timeout`, out again at once after one more
/// 503, back for good after a success; every transition logged and counted.
#[test]
fn a_server_answering_503_is_taken_out_probed_and_brought_back() {
    let good = Backend::start("good");
    let flaky = Flaky::start();
    let dir = TempDir::new("passive");
    let servers = [(flaky.addr().to_string(), 2), (good.addr().to_string(), 2)];
    let g = start(&pool_config(&dir, &servers), 2);
    let url = flaky.url();
    let mut conn = Conn::open(g.addr());

    // Round-robin alternates: the second request to the flaky server is its second 503.
    let mut sent_second = None;
    while flaky.requests() < 2 {
        let (sent, r) = ask(&mut conn);
        sent_second = Some(sent);
        let status = if r.header("x-backend") == Some("flaky") {
            503
        } else {
            200
        };
        assert_eq!(r.status, status, "passed through as answered: {r:?}");
    }
    let out_since = sent_second.expect("sent");
    let down = format!(
        "backend {url} is down for its fail_timeout: 2 failures (max_fail), \
         last: 502/503/504 answers"
    );
    assert!(g.wait_for_log(&down, READY), "{}", g.stderr());
    assert_eq!(transitions(&g, &url, "down"), 1.0);
    let list = control(g.socket_path(), "list");
    if out_since.elapsed() < FAIL_TIMEOUT {
        assert!(list.contains(&format!("{url} down ")), "{list}");
    }
    assert_out_until_fail_timeout(&mut conn, out_since, || flaky.requests(), 2);

    // After fail_timeout, live traffic probes it; a 503 takes it out again at once. (It went
    // out after `out_since`; the probe was chosen before its answer was in.)
    let probe = ask_until_tried(&mut conn, || flaky.requests(), 2);
    assert!(
        probe.answered >= out_since + FAIL_TIMEOUT,
        "tried before its fail_timeout"
    );
    assert_eq!(flaky.requests(), 3);
    let again = format!("backend {url} is down for its fail_timeout: 3 failures (max_fail)");
    assert!(g.wait_for_log(&again, READY), "{}", g.stderr());
    assert_eq!(transitions(&g, &url, "down"), 2.0);
    assert_out_until_fail_timeout(&mut conn, probe.sent, || flaky.requests(), 3);

    // Healthy now: the next probe succeeds and it is back in rotation for good.
    flaky.failing.store(false, Ordering::SeqCst);
    let second = ask_until_tried(&mut conn, || flaky.requests(), 3);
    assert!(
        second.answered >= probe.sent + FAIL_TIMEOUT,
        "tried before its fail_timeout"
    );
    let up = format!("backend {url} is up again after its fail_timeout");
    assert!(g.wait_for_log(&up, READY), "{}", g.stderr());
    assert_eq!(transitions(&g, &url, "up"), 1.0);
    assert_eq!(transitions(&g, &url, "down"), 2.0);
    let before = flaky.requests();
    let answered: Vec<String> = (0..6)
        .map(|_| {
            ask(&mut conn)
                .1
                .header("x-backend")
                .unwrap_or("?")
                .to_owned()
        })
        .collect();
    assert_eq!(flaky.requests() - before, 3, "half of {answered:?}");
    assert_eq!(transitions(&g, &good.url(), "down"), 0.0);
}

/// A dead port: each refused connection is a failure (the request goes on to the other
/// server, so the client sees none); `max_fail` (3) of them take the server out, and
/// while it is out goaround does not even try to connect.
#[test]
fn refused_connections_take_a_server_out_without_the_client_noticing() {
    let good = Backend::start("good");
    let dead = dead_url();
    let dead_addr = dead.trim_start_matches("http://").to_owned();
    let dir = TempDir::new("passive");
    let servers = [(dead_addr, 3), (good.addr().to_string(), 3)];
    let g = start(&pool_config(&dir, &servers), 2);
    let errors = |g: &Goaround| {
        let series =
            format!("goaround_upstream_errors_total{{backend=\"{dead}\",kind=\"connect\"}}");
        g.metric(&series).unwrap_or(0.0) as usize
    };
    let mut conn = Conn::open(g.addr());
    let mut sent_third = None;
    while errors(&g) < 3 {
        let (sent, r) = ask(&mut conn);
        sent_third = Some(sent);
        assert_eq!(r.status, 200, "retried on the other server: {r:?}");
        assert_eq!(r.header("x-backend"), Some("good"));
    }
    let out_since = sent_third.expect("sent");
    let down =
        format!("backend {dead} is down for its fail_timeout: 3 failures (max_fail), last: ");
    assert!(g.wait_for_log(&down, READY), "{}", g.stderr());
    assert_eq!(transitions(&g, &dead, "down"), 1.0);
    assert_out_until_fail_timeout(&mut conn, out_since, || errors(&g), 3);

    let probe = ask_until_tried(&mut conn, || errors(&g), 3);
    assert!(
        probe.answered >= out_since + FAIL_TIMEOUT,
        "tried before its fail_timeout"
    );
    assert!(wait_until(READY, || transitions(&g, &dead, "down") == 2.0));
    assert_out_until_fail_timeout(&mut conn, probe.sent, || errors(&g), 4);
}

/// Regression: `goaround_backend_up` (and `goaround_backends_up`, and `/status`) said 1 for
/// a `-config` server that `max_fail` had taken out, because they read the active health
/// state only, while `list` said down. A long `fail_timeout` keeps it out for the whole test.
#[test]
fn backend_up_metric_is_0_while_max_fail_keeps_a_server_out() {
    let good = Backend::start("good");
    let flaky = Flaky::start();
    let dir = TempDir::new("passive");
    let text = format!(
        "[[upstreams.pool.servers]]\npath = \"{}\"\nmax_fail = 1\nfail_timeout = \"1h\"\n\
         [[upstreams.pool.servers]]\npath = \"{}\"\n\
         [[server.locations]]\npath = \"\"\nhttp_pass = \"pool\"\npass_path = true\n",
        flaky.addr(),
        good.addr()
    );
    let g = start(&dir.write("goaround.toml", text.as_bytes()), 2);
    let url = flaky.url();
    let mut conn = Conn::open(g.addr());
    while flaky.requests() < 1 {
        ask(&mut conn);
    }
    let series = format!("goaround_backend_up{{backend=\"{url}\"}}");
    assert!(
        wait_until(READY, || g.metric(&series) == Some(0.0)),
        "{series} stays {:?}",
        g.metric(&series)
    );
    assert_eq!(g.metric("goaround_backends_up"), Some(1.0));
    let status = support::get(g.metrics_addr(), "/status").text();
    assert!(
        status.contains(&format!(r#"<tr class="backend st-down" data-url="{url}">"#)),
        "{status}"
    );
    assert!(control(g.socket_path(), "list").contains(&format!("{url} down ")));
}

/// When every server of an upstream is out, goaround answers 503 `no backend is available`
/// itself until a `fail_timeout` ends (a long one here: the whole test is inside it).
#[test]
fn every_server_out_gives_503_until_a_fail_timeout_ends() {
    let flaky = Flaky::start();
    let dir = TempDir::new("passive");
    let text = format!(
        "[[upstreams.pool.servers]]\npath = \"{}\"\nmax_fail = 1\nfail_timeout = \"1h\"\n\
         [[server.locations]]\npath = \"\"\nhttp_pass = \"pool\"\npass_path = true\n",
        flaky.addr()
    );
    let g = start(&dir.write("goaround.toml", text.as_bytes()), 1);
    let mut conn = Conn::open(g.addr());
    let (_, r) = ask(&mut conn);
    assert_eq!((r.status, r.header("x-backend")), (503, Some("flaky")));
    let (_, r) = ask(&mut conn);
    assert_eq!(r.status, 503);
    assert_eq!(r.header("x-backend"), None, "answered by goaround: {r:?}");
    assert_eq!(
        r.text(),
        "503 Service Unavailable: no backend is available\n"
    );
    assert_eq!(flaky.requests(), 1);
}
