//! The GET cache (`-cache`) against the real binary: hits and misses, HEAD from a stored
//! GET, every rule that keeps a response out of the store, expiry, the key (query, Host,
//! `Vary`), the byte bound with least-recently-used eviction, collapsed forwarding,
//! invalidation by unsafe methods, and the cache metrics.
//!
//! Responses come from [`ScriptedBackend`], whose answers each test writes as closures per
//! path, so that every header a rule looks at is under the test's control; it records every
//! request, which is how a test knows whether one reached the backend. Sleeps appear only
//! where the passing of time is the behaviour under test (expiry).
//!
//! goaround stores a response just after its last byte went to the client; a lookup of the
//! same URL meanwhile waits for that store. So the cache's counters are read after a hit on
//! the URL just fetched, never straight after its miss.

mod support;

use support::scripted::ScriptedServer;

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Barrier, Mutex, MutexGuard, PoisonError};
use std::thread::{self};
use std::time::{Duration, Instant, SystemTime};

use support::backend::{read_chunked_body, read_head, RequestHead};
use support::{request, Conn, Goaround, Recorded, Response};

/// Longest wait for the backend to be reported up.
const READY: Duration = Duration::from_secs(10);
/// Longest a scripted backend connection waits for its next request.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
const KB: usize = 1024;

// ---------------------------------------------------------------------------------------
// The scripted backend
// ---------------------------------------------------------------------------------------

/// One answer of the scripted backend, always framed with `Content-Length` unless chunked.
#[derive(Clone, Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    chunked: bool,
    /// Waited before answering: a slow backend.
    delay: Duration,
}

impl Answer {
    fn ok(body: impl Into<Vec<u8>>) -> Answer {
        Answer {
            status: 200,
            headers: Vec::new(),
            body: body.into(),
            chunked: false,
            delay: Duration::ZERO,
        }
    }

    fn status(mut self, status: u16) -> Answer {
        self.status = status;
        self
    }

    fn header(mut self, name: &str, value: &str) -> Answer {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    fn chunked(mut self) -> Answer {
        self.chunked = true;
        self
    }

    fn delay(mut self, delay: Duration) -> Answer {
        self.delay = delay;
        self
    }

    /// Head and body as sent; HEAD gets the head only.
    fn render(&self, head_only: bool) -> Vec<u8> {
        let reason = if self.status == 200 { "OK" } else { "Other" };
        let mut out = format!("HTTP/1.1 {} {reason}\r\n", self.status);
        for (name, value) in &self.headers {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        if self.chunked {
            out.push_str("Transfer-Encoding: chunked\r\n\r\n");
        } else {
            out.push_str(&format!("Content-Length: {}\r\n\r\n", self.body.len()));
        }
        let mut out = out.into_bytes();
        if head_only {
            return out;
        }
        if self.chunked {
            for piece in self.body.chunks(500) {
                out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
                out.extend_from_slice(piece);
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"0\r\n\r\n");
        } else {
            out.extend_from_slice(&self.body);
        }
        out
    }
}

/// Makes the answer to a request; the number is how many requests its target (query
/// included) has had, this one included (1 for the first).
type Handler = Arc<dyn Fn(&Recorded, usize) -> Answer + Send + Sync>;

#[derive(Default)]
struct Script {
    routes: Mutex<HashMap<String, Handler>>,
    /// Per target: requests answered so far.
    counts: Mutex<HashMap<String, usize>>,
    /// Every request but `/health`, oldest first.
    seen: Mutex<Vec<Recorded>>,
}

/// A backend answering each route with a closure. A route is an exact path (`/a`) or, failing
/// that, a first path segment (`/obj` answers `/obj/7`). `/health` is always healthy; a path
/// with no route gets 404.
struct ScriptedBackend {
    server: ScriptedServer,
    script: Arc<Script>,
}

impl ScriptedBackend {
    fn start() -> ScriptedBackend {
        let script = Arc::new(Script::default());
        let server = ScriptedServer::start({
            let script = Arc::clone(&script);
            move |stream| serve(stream, &script)
        });
        ScriptedBackend { server, script }
    }

    fn url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// Answers `route` with `handler` from now on.
    fn route(
        &self,
        route: &str,
        handler: impl Fn(&Recorded, usize) -> Answer + Send + Sync + 'static,
    ) {
        lock(&self.script.routes).insert(route.to_owned(), Arc::new(handler));
    }

    /// Requests received with exactly this target (any method).
    fn count(&self, target: &str) -> usize {
        self.count_where(|r| r.target == target)
    }

    fn count_where(&self, pred: impl Fn(&Recorded) -> bool) -> usize {
        lock(&self.script.seen).iter().filter(|r| pred(r)).count()
    }
}

/// A poisoned lock only means a connection thread panicked; the data is still usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn serve(stream: TcpStream, script: &Script) {
    // Bounds the thread's life even if the peer never closes.
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let mut reader = BufReader::new(&stream);
    while let Ok(Some(head)) = read_head(&mut reader) {
        let Ok(body) = read_body(&mut reader, &head) else {
            return;
        };
        let head_only = head.method == "HEAD";
        let answer = if head.target == "/health" {
            Answer::ok(r#"{"state": "healthy", "message": ""}"#)
        } else {
            answer(script, head, body)
        };
        thread::sleep(answer.delay);
        if (&stream).write_all(&answer.render(head_only)).is_err() {
            return;
        }
    }
}

/// Records the request and asks its route for the answer.
fn answer(script: &Script, head: RequestHead, body: Vec<u8>) -> Answer {
    let path = head.target.split('?').next().unwrap_or_default().to_owned();
    let segment = format!("/{}", path[1..].split('/').next().unwrap_or_default());
    let recorded = Recorded {
        method: head.method,
        target: head.target,
        version: head.version,
        headers: head.headers,
        body,
    };
    lock(&script.seen).push(recorded.clone());
    let found = {
        let routes = lock(&script.routes);
        [&path, &segment]
            .into_iter()
            .find_map(|r| routes.get(r).map(Arc::clone))
    };
    let Some(handler) = found else {
        return Answer::ok("no route").status(404);
    };
    let n = {
        let mut counts = lock(&script.counts);
        let n = counts.entry(recorded.target.clone()).or_default();
        *n += 1;
        *n
    };
    handler(&recorded, n)
}

fn read_body(r: &mut impl BufRead, head: &RequestHead) -> io::Result<Vec<u8>> {
    let field = |name: &str| {
        head.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    if field("transfer-encoding").is_some() {
        return read_chunked_body(r);
    }
    let length: u64 = field("content-length")
        .map_or(Ok(0), str::parse)
        .map_err(io::Error::other)?;
    let mut body = Vec::new();
    r.take(length).read_to_end(&mut body)?;
    Ok(body)
}

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// Starts goaround with `-cache` and `args` in front of `backend`; waits until it is up.
fn cached_proxy(backend: &ScriptedBackend, args: &[&str]) -> Goaround {
    let g = Goaround::builder()
        .backends(&[backend.url()])
        .arg("-cache")
        .args(args)
        .start();
    assert!(
        g.wait_ready_backends(1, READY),
        "backend not up within {READY:?}"
    );
    g
}

/// `GET path` with `Host: test` and the extra header lines `extra`, on a fresh connection.
fn get(g: &Goaround, path: &str, extra: &[(&str, &str)]) -> Response {
    request(g.addr(), raw("GET", path, extra).as_bytes())
}

fn raw(method: &str, path: &str, extra: &[(&str, &str)]) -> String {
    let mut raw = format!("{method} {path} HTTP/1.1\r\n");
    if !extra.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        raw.push_str("Host: test\r\n");
    }
    for (name, value) in extra {
        raw.push_str(&format!("{name}: {value}\r\n"));
    }
    if method != "GET" && method != "HEAD" {
        raw.push_str("Content-Length: 0\r\n");
    }
    raw.push_str("\r\n");
    raw
}

fn x_cache(r: &Response) -> &str {
    r.header("x-cache").unwrap_or("(none)")
}

/// `goaround_cache_events_total` for one event.
fn cache_event(g: &Goaround, event: &str) -> f64 {
    let series = format!("goaround_cache_events_total{{event=\"{event}\"}}");
    g.metric(&series).unwrap_or(0.0)
}

/// Polls `cond` every 5 ms until it holds (true) or [`READY`] passes (false).
fn poll(cond: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + READY;
    while !cond() {
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(5));
    }
    true
}

fn http_date(t: SystemTime) -> String {
    httpdate::fmt_http_date(t)
}

// ---------------------------------------------------------------------------------------
// Hits
// ---------------------------------------------------------------------------------------

#[test]
fn second_get_is_a_hit_with_age_and_the_backend_sees_one_request() {
    let b = ScriptedBackend::start();
    b.route("/page", |_, n| {
        Answer::ok(format!("page #{n}"))
            .header("Cache-Control", "max-age=60")
            .header("ETag", "\"v1\"")
    });
    let g = cached_proxy(&b, &[]);

    let first = get(&g, "/page", &[]);
    assert_eq!((first.status, first.text().as_str()), (200, "page #1"));
    assert_eq!(x_cache(&first), "MISS");
    assert_eq!(first.header("age"), None);

    // Two hits on one keep-alive connection: the stored answer is framed correctly.
    let mut conn = Conn::open(g.addr());
    for _ in 0..2 {
        conn.send(raw("GET", "/page", &[]).as_bytes());
        let hit = conn.read_response();
        assert_eq!((hit.status, hit.text().as_str()), (200, "page #1"));
        assert_eq!(x_cache(&hit), "HIT");
        let age: u64 = hit
            .header("age")
            .expect("Age on a hit")
            .parse()
            .expect("Age");
        assert!(age <= 1, "Age {age}");
        assert_eq!(hit.header("etag"), Some("\"v1\""));
        assert_eq!(hit.header("cache-control"), Some("max-age=60"));
        assert_eq!(hit.header("content-length"), Some("7"));
    }
    assert_eq!(b.count("/page"), 1);

    // A hit to a client that asked to close says so, and closes.
    let mut conn = Conn::open(g.addr());
    conn.send(raw("GET", "/page", &[("Connection", "close")]).as_bytes());
    let hit = conn.read_response();
    assert_eq!(
        (x_cache(&hit), hit.header("connection")),
        ("HIT", Some("close"))
    );
    assert!(
        conn.is_closed_by_peer(READY),
        "still open after Connection: close"
    );
}

#[test]
fn head_is_answered_from_a_cached_get() {
    let b = ScriptedBackend::start();
    b.route("/doc", |_, n| {
        Answer::ok(format!("document body #{n}")).header("Cache-Control", "max-age=60")
    });
    let g = cached_proxy(&b, &[]);
    assert_eq!(x_cache(&get(&g, "/doc", &[])), "MISS");

    let mut conn = Conn::open(g.addr());
    conn.send(raw("HEAD", "/doc", &[]).as_bytes());
    let head = conn.read_response_to("HEAD");
    assert_eq!(head.status, 200);
    assert_eq!(x_cache(&head), "HIT");
    assert_eq!(head.header("content-length"), Some("16"));
    assert!(head.body.is_empty());
    // Nothing followed the HEAD answer: the next answer on the connection parses.
    conn.send(raw("GET", "/doc", &[]).as_bytes());
    let after = conn.read_response();
    assert_eq!(
        (x_cache(&after), after.text().as_str()),
        ("HIT", "document body #1")
    );
    assert_eq!(b.count("/doc"), 1);
    assert_eq!(b.count_where(|r| r.method == "HEAD"), 0);

    // A HEAD never fills the cache: the GET after it still goes to the backend.
    b.route("/other", |_, n| {
        Answer::ok(format!("other #{n}")).header("Cache-Control", "max-age=60")
    });
    let mut conn = Conn::open(g.addr());
    conn.send(raw("HEAD", "/other", &[]).as_bytes());
    let head = conn.read_response_to("HEAD");
    assert_eq!(
        (x_cache(&head), head.header("content-length")),
        ("MISS", Some("8"))
    );
    assert_eq!(x_cache(&get(&g, "/other", &[])), "MISS");
    assert_eq!(x_cache(&get(&g, "/other", &[])), "HIT");
    assert_eq!(b.count("/other"), 2);
}

#[test]
fn stored_responses_are_replayed_without_hop_by_hop_fields_and_with_their_age() {
    let b = ScriptedBackend::start();
    b.route("/hop", |_, n| {
        numbered(n, &[("Cache-Control", "max-age=60")])
            .header("Connection", "X-Hop")
            .header("X-Hop", "1")
            .header("Keep-Alive", "timeout=5")
            .header("X-End", "kept")
    });
    b.route("/chunked", |_, _| {
        Answer::ok(vec![b'c'; 3000])
            .header("Cache-Control", "max-age=60")
            .chunked()
    });
    b.route("/aged", |_, n| {
        numbered(n, &[("Cache-Control", "max-age=60"), ("Age", "30")])
    });
    let g = cached_proxy(&b, &[]);

    for r in [get(&g, "/hop", &[]), get(&g, "/hop", &[])] {
        for hop in ["x-hop", "keep-alive"] {
            assert_eq!(r.header(hop), None, "{} {hop}", x_cache(&r));
        }
        assert_eq!(r.header("x-end"), Some("kept"), "{}", x_cache(&r));
    }

    let miss = get(&g, "/chunked", &[]);
    assert!(miss.chunked, "relayed as it came");
    let hit = get(&g, "/chunked", &[]);
    assert_eq!(x_cache(&hit), "HIT");
    assert!(!hit.chunked, "a stored body has a known length");
    assert_eq!(hit.header("content-length"), Some("3000"));
    assert_eq!(hit.body, miss.body);

    // RFC 9111 §4.2.3: the age it arrived with, plus the time stored.
    assert_eq!(get(&g, "/aged", &[]).header("age"), Some("30"));
    let hit = get(&g, "/aged", &[]);
    let age: u64 = hit
        .header("age")
        .expect("Age")
        .parse()
        .expect("Age is a number");
    assert_eq!(x_cache(&hit), "HIT");
    assert!((30..=31).contains(&age), "Age {age}");
}

// ---------------------------------------------------------------------------------------
// What is not stored
// ---------------------------------------------------------------------------------------

/// A cacheable answer numbered `n`, with `fields` added.
fn numbered(n: usize, fields: &[(&str, &str)]) -> Answer {
    fields
        .iter()
        .fold(Answer::ok(format!("#{n}")), |a, (name, value)| {
            a.header(name, value)
        })
}

/// One row of the storability table.
struct Case {
    path: &'static str,
    /// Answered on every request; an empty body becomes `#n`, the request's number.
    answer: Answer,
    /// Header fields the client adds.
    request: &'static [(&'static str, &'static str)],
    /// Whether the second request is a hit.
    stored: bool,
}

fn case(path: &'static str, fields: &[(&str, &str)], stored: bool) -> Case {
    let answer = fields
        .iter()
        .fold(Answer::ok(""), |a, (name, value)| a.header(name, value));
    Case {
        path,
        answer,
        request: &[],
        stored,
    }
}

#[test]
fn responses_that_must_not_be_stored_reach_the_backend_every_time() {
    const AUTH: &[(&str, &str)] = &[("Authorization", "Bearer secret")];
    let past = http_date(SystemTime::now() - Duration::from_secs(3600));
    let future = http_date(SystemTime::now() + Duration::from_secs(3600));
    let now = http_date(SystemTime::now());
    let (past, future, now) = (past.as_str(), future.as_str(), now.as_str());
    let max_age = ("Cache-Control", "max-age=60");
    let cases = [
        case("/no-store", &[("Cache-Control", "no-store")], false),
        case(
            "/private",
            &[("Cache-Control", "private, max-age=60")],
            false,
        ),
        case(
            "/no-cache",
            &[("Cache-Control", "no-cache, max-age=60")],
            false,
        ),
        case("/cookie", &[max_age, ("Set-Cookie", "session=1")], false),
        case("/vary-star", &[max_age, ("Vary", "*")], false),
        case("/expired", &[("Date", now), ("Expires", past)], false),
        case("/old-on-arrival", &[max_age, ("Age", "60")], false),
        Case {
            request: AUTH,
            ..case("/authorized", &[max_age], false)
        },
        Case {
            request: &[("Cache-Control", "no-store")],
            ..case("/request-no-store", &[max_age], false)
        },
        Case {
            answer: Answer::ok("#")
                .status(404)
                .header("Cache-Control", "max-age=60"),
            ..case("/not-found", &[], false)
        },
        // -cache-max-object 1K: 1024 bytes are stored, 1025 are not, however framed.
        Case {
            answer: Answer::ok(vec![b'b'; KB + 1]).header("Cache-Control", "max-age=60"),
            ..case("/big", &[], false)
        },
        Case {
            answer: Answer::ok(vec![b'c'; 2 * KB])
                .header("Cache-Control", "max-age=60")
                .chunked(),
            ..case("/big-chunked", &[], false)
        },
        // Controls: the same kinds of answer, allowed.
        case("/plain", &[max_age], true),
        case(
            "/expires-later",
            &[("Date", now), ("Expires", future)],
            true,
        ),
        Case {
            answer: Answer::ok(vec![b'k'; KB]).header("Cache-Control", "max-age=60"),
            ..case("/kib", &[], true)
        },
        Case {
            request: AUTH,
            ..case(
                "/authorized-public",
                &[("Cache-Control", "public, max-age=60")],
                true,
            )
        },
        Case {
            request: AUTH,
            ..case(
                "/authorized-s-maxage",
                &[("Cache-Control", "s-maxage=60")],
                true,
            )
        },
    ];
    let b = ScriptedBackend::start();
    for case in &cases {
        let answer = case.answer.clone();
        b.route(case.path, move |_, n| {
            let mut answer = answer.clone();
            if answer.body == b"#" || answer.body.is_empty() {
                answer.body = format!("#{n}").into_bytes();
            }
            answer
        });
    }
    let g = cached_proxy(&b, &["-cache-max-object", "1K"]);

    let mut wrong = Vec::new();
    for Case {
        path,
        request,
        stored,
        ..
    } in cases
    {
        let first = get(&g, path, request);
        let second = get(&g, path, request);
        assert_eq!(x_cache(&first), "MISS", "{path}");
        assert_eq!(first.status, second.status, "{path}");
        let expected = if stored { ("HIT", 1) } else { ("MISS", 2) };
        let got = (x_cache(&second), b.count(path));
        if got != expected {
            wrong.push(format!(
                "{path}: second answer {} after {} backend requests, expected {expected:?}",
                got.0, got.1
            ));
        }
        if first.body.starts_with(b"#") {
            let expected = if stored { "#1" } else { "#2" };
            assert_eq!(second.text(), expected, "{path}: body of the second answer");
        } else {
            assert_eq!(first.body, second.body, "{path}");
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

// ---------------------------------------------------------------------------------------
// Expiry
// ---------------------------------------------------------------------------------------

/// Past a one-second lifetime: the time itself is under test.
const PAST_ONE_SECOND: Duration = Duration::from_millis(1200);

#[test]
fn max_age_expires_the_stored_response() {
    let b = ScriptedBackend::start();
    b.route("/short", |_, n| {
        numbered(n, &[("Cache-Control", "max-age=1")])
    });
    let g = cached_proxy(&b, &[]);
    assert_eq!(x_cache(&get(&g, "/short", &[])), "MISS");
    let hit = get(&g, "/short", &[]);
    assert_eq!((x_cache(&hit), hit.header("age")), ("HIT", Some("0")));

    thread::sleep(PAST_ONE_SECOND);
    let after = get(&g, "/short", &[]);
    assert_eq!((x_cache(&after), after.text().as_str()), ("MISS", "#2"));
    assert_eq!(b.count("/short"), 2);
    assert_eq!(cache_event(&g, "expired"), 1.0);
    assert_eq!(x_cache(&get(&g, "/short", &[])), "HIT", "stored again");
}

#[test]
fn cache_ttl_is_the_lifetime_of_responses_stating_none() {
    let b = ScriptedBackend::start();
    b.route("/plain", |_, n| numbered(n, &[]));
    b.route("/stated", |_, n| {
        numbered(n, &[("Cache-Control", "max-age=60")])
    });
    let g = cached_proxy(&b, &["-cache-ttl", "1s"]);
    for path in ["/plain", "/stated"] {
        assert_eq!(x_cache(&get(&g, path, &[])), "MISS", "{path}");
        assert_eq!(x_cache(&get(&g, path, &[])), "HIT", "{path}");
    }

    thread::sleep(PAST_ONE_SECOND);
    let plain = get(&g, "/plain", &[]);
    assert_eq!((x_cache(&plain), plain.text().as_str()), ("MISS", "#2"));
    // An explicit lifetime wins over the default.
    let stated = get(&g, "/stated", &[]);
    assert_eq!((x_cache(&stated), stated.text().as_str()), ("HIT", "#1"));
    assert_eq!((b.count("/plain"), b.count("/stated")), (2, 1));
}

// ---------------------------------------------------------------------------------------
// The key
// ---------------------------------------------------------------------------------------

#[test]
fn key_includes_the_query_and_the_host() {
    let b = ScriptedBackend::start();
    b.route("/a", |req, _| {
        let host = req.header("host").unwrap_or_default();
        Answer::ok(format!("{host} {}", req.target)).header("Cache-Control", "max-age=60")
    });
    let g = cached_proxy(&b, &[]);

    for target in ["/a?x=1", "/a?x=2"] {
        assert_eq!(x_cache(&get(&g, target, &[])), "MISS", "{target}");
    }
    for target in ["/a?x=1", "/a?x=2"] {
        let hit = get(&g, target, &[]);
        assert_eq!(x_cache(&hit), "HIT", "{target}");
        assert_eq!(hit.text(), format!("test {target}"));
    }

    for host in ["one.test", "two.test"] {
        assert_eq!(x_cache(&get(&g, "/a", &[("Host", host)])), "MISS", "{host}");
    }
    // Host names are case-insensitive (RFC 3986 §3.2.2).
    for (host, stored_for) in [("one.test", "one.test"), ("TWO.test", "two.test")] {
        let hit = get(&g, "/a", &[("Host", host)]);
        assert_eq!(x_cache(&hit), "HIT", "{host}");
        assert_eq!(hit.text(), format!("{stored_for} /a"));
    }
    assert_eq!(b.count_where(|r| r.target.starts_with("/a")), 4);
}

#[test]
fn vary_stores_one_variant_per_request_value() {
    let b = ScriptedBackend::start();
    b.route("/lang", |req, n| {
        let lang = req.header("accept-language").unwrap_or("none");
        Answer::ok(format!("{lang} #{n}"))
            .header("Cache-Control", "max-age=60")
            .header("Vary", "Accept-Language")
    });
    let g = cached_proxy(&b, &[]);
    let en = [("Accept-Language", "en")];
    let de = [("Accept-Language", "de")];

    assert_eq!(x_cache(&get(&g, "/lang", &en)), "MISS");
    assert_eq!(x_cache(&get(&g, "/lang", &de)), "MISS");
    for (req, body) in [(&en, "en #1"), (&de, "de #2"), (&en, "en #1")] {
        let hit = get(&g, "/lang", req);
        assert_eq!((x_cache(&hit), hit.text().as_str()), ("HIT", body));
        assert_eq!(hit.header("vary"), Some("Accept-Language"));
    }
    // Without the field, neither stored variant matches.
    let none = get(&g, "/lang", &[]);
    assert_eq!((x_cache(&none), none.text().as_str()), ("MISS", "none #3"));
    let none = get(&g, "/lang", &[]);
    assert_eq!((x_cache(&none), none.text().as_str()), ("HIT", "none #3"));
    assert_eq!(b.count("/lang"), 3);
    assert_eq!(g.metric("goaround_cache_entries"), Some(3.0));
}

// ---------------------------------------------------------------------------------------
// The byte bound
// ---------------------------------------------------------------------------------------

#[test]
fn size_bound_evicts_the_least_recently_used_first() {
    const OBJECTS: usize = 20;
    const BOUND: f64 = 65536.0;
    let b = ScriptedBackend::start();
    b.route("/obj", |req, _| {
        let fill = req.target.bytes().last().unwrap_or(b'?');
        Answer::ok(vec![fill; 8 * KB]).header("Cache-Control", "max-age=60")
    });
    let g = cached_proxy(&b, &["-cache-size", "64K"]);

    for i in 0..OBJECTS {
        let r = get(&g, &format!("/obj/{i}"), &[]);
        assert_eq!(
            (r.status, x_cache(&r), r.body.len()),
            (200, "MISS", 8 * KB),
            "/obj/{i}"
        );
        // /obj/0 is used after every new object, so it is never the least recent.
        let touch = get(&g, "/obj/0", &[]);
        assert_eq!(x_cache(&touch), "HIT", "/obj/0 after /obj/{i}");
        let bytes = g
            .metric("goaround_cache_bytes")
            .expect("goaround_cache_bytes");
        assert!(
            bytes > 0.0 && bytes <= BOUND,
            "{bytes} bytes after /obj/{i}"
        );
    }
    // The most recent and /obj/0 are still there (these hits also wait for a store still
    // under way, so the counters below are final).
    assert_eq!(x_cache(&get(&g, "/obj/19", &[])), "HIT");
    assert_eq!(x_cache(&get(&g, "/obj/0", &[])), "HIT");
    let evictions = cache_event(&g, "eviction");
    let entries = g
        .metric("goaround_cache_entries")
        .expect("goaround_cache_entries");
    assert!(evictions >= 1.0, "no eviction counted");
    assert_eq!(
        entries + evictions,
        OBJECTS as f64,
        "each object stored once"
    );
    let bytes = g.metric("goaround_cache_bytes").unwrap_or_default();
    assert!(bytes <= BOUND, "{bytes} bytes at the end");

    // The oldest untouched object went first.
    assert_eq!(x_cache(&get(&g, "/obj/1", &[])), "MISS");
    assert_eq!(b.count("/obj/0"), 1);
}

// ---------------------------------------------------------------------------------------
// Collapsed forwarding and invalidation
// ---------------------------------------------------------------------------------------

#[test]
fn concurrent_gets_of_one_url_reach_the_backend_once() {
    const CLIENTS: usize = 10;
    let b = ScriptedBackend::start();
    b.route("/slow", |_, n| {
        numbered(n, &[("Cache-Control", "max-age=60")]).delay(Duration::from_millis(500))
    });
    let g = cached_proxy(&b, &[]);
    let addr = g.addr();
    let start = Arc::new(Barrier::new(CLIENTS));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let start = Arc::clone(&start);
            thread::spawn(move || {
                start.wait();
                request(addr, raw("GET", "/slow/500", &[]).as_bytes())
            })
        })
        .collect();
    let responses: Vec<Response> = clients
        .into_iter()
        .map(|c| c.join().expect("client thread"))
        .collect();

    assert_eq!(b.count("/slow/500"), 1);
    for r in &responses {
        assert_eq!((r.status, r.text().as_str()), (200, "#1"));
    }
    let misses = responses.iter().filter(|r| x_cache(r) == "MISS").count();
    let hits = responses.iter().filter(|r| x_cache(r) == "HIT").count();
    assert_eq!((misses, hits), (1, CLIENTS - 1));
    // Whether a client waited or came after the store, it counts as a hit.
    assert_eq!(cache_event(&g, "miss"), 1.0);
    assert_eq!(cache_event(&g, "hit"), (CLIENTS - 1) as f64);
    assert!(cache_event(&g, "collapsed") >= 1.0, "no lookup waited");
}

#[test]
fn unsafe_methods_invalidate_the_stored_url() {
    let b = ScriptedBackend::start();
    b.route("/item", |req, n| {
        numbered(n, &[("Cache-Control", "max-age=60")]).header("X-Method", &req.method)
    });
    let g = cached_proxy(&b, &[]);

    for method in ["POST", "PUT", "DELETE"] {
        let path = format!("/item/{method}");
        let gets = || b.count_where(|r| r.method == "GET" && r.target == path);
        assert_eq!(x_cache(&get(&g, &path, &[])), "MISS", "{path}");
        assert_eq!(x_cache(&get(&g, &path, &[])), "HIT", "{path}");
        assert_eq!(gets(), 1);

        let r = request(g.addr(), raw(method, &path, &[]).as_bytes());
        assert_eq!((r.status, r.header("x-method")), (200, Some(method)));
        assert_eq!(r.header("x-cache"), None, "{method} does not use the cache");
        assert_eq!(b.count_where(|r| r.method == method), 1);

        let after = get(&g, &path, &[]);
        assert_eq!(
            (x_cache(&after), after.text().as_str()),
            ("MISS", "#3"),
            "after {method}"
        );
        assert_eq!(gets(), 2);
    }
}

#[test]
fn response_fetched_while_its_url_is_invalidated_is_not_stored() {
    let b = ScriptedBackend::start();
    b.route("/race", |req, n| {
        let answer = numbered(n, &[("Cache-Control", "max-age=60")]);
        if req.method == "GET" && n == 1 {
            answer.delay(Duration::from_millis(300))
        } else {
            answer
        }
    });
    let g = cached_proxy(&b, &[]);
    let addr = g.addr();
    let slow = thread::spawn(move || request(addr, raw("GET", "/race", &[]).as_bytes()));
    // The POST goes out once the backend holds the GET, and is answered first.
    assert!(
        poll(|| b.count("/race") == 1),
        "the GET did not reach the backend"
    );
    let post = request(g.addr(), raw("POST", "/race", &[]).as_bytes());
    assert_eq!(post.status, 200);
    let first = slow.join().expect("GET thread");
    assert_eq!((x_cache(&first), first.text().as_str()), ("MISS", "#1"));

    // RFC 9111 §4.4: what was on its way when the URL changed is not kept.
    let next = get(&g, "/race", &[]);
    assert_eq!((x_cache(&next), next.text().as_str()), ("MISS", "#3"));
    assert_eq!(x_cache(&get(&g, "/race", &[])), "HIT");
}

// ---------------------------------------------------------------------------------------
// Metrics
// ---------------------------------------------------------------------------------------

#[test]
fn metrics_count_hits_misses_stores_and_size() {
    let b = ScriptedBackend::start();
    b.route("/m", |_, n| numbered(n, &[("Cache-Control", "max-age=60")]));
    b.route("/nostore", |_, n| {
        numbered(n, &[("Cache-Control", "no-store")])
    });
    let g = cached_proxy(&b, &[]);
    for event in ["hit", "miss", "store"] {
        assert_eq!(cache_event(&g, event), 0.0, "{event} at start");
    }
    assert_eq!(g.metric("goaround_cache_entries"), Some(0.0));

    for path in ["/m", "/m", "/m", "/nostore", "/nostore"] {
        assert_eq!(get(&g, path, &[]).status, 200);
    }
    assert_eq!(cache_event(&g, "hit"), 2.0);
    assert_eq!(cache_event(&g, "miss"), 3.0);
    assert_eq!(cache_event(&g, "store"), 1.0);
    assert_eq!(g.metric("goaround_cache_entries"), Some(1.0));
    let bytes = g
        .metric("goaround_cache_bytes")
        .expect("goaround_cache_bytes");
    assert!(bytes > 2.0, "{bytes}");
    // Hits are counted as requests answered by the cache.
    let served = g.metric("goaround_requests_total{backend=\"cache\",code=\"200\"}");
    assert_eq!(served, Some(2.0));
}
