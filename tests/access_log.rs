//! The access log against the real binary: one line per answered request in both formats
//! (`combined` with goaround's upstream fields, and `json`) for a proxied request, a cache
//! hit, a 404 from no location and a 503 from no backend; `-access-log -` writes to stdout;
//! SIGUSR1 reopens the file after it was renamed, as logrotate does.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use regex::Regex;
use support::tempdir::TempDir;
use support::{request, wait_until, Backend, Conn, Goaround, Response};

const READY: Duration = Duration::from_secs(10);
const SIGUSR1: i32 = 10;

/// The requests of [`four_kinds`], with their status and whether a backend answered.
const TARGETS: [(&str, u16); 4] = [
    ("/app/?q=1", 200), // proxied (and stored by the cache)
    ("/app/?q=1", 200), // a cache hit
    ("/nowhere", 404),  // no location
    ("/empty/x", 503),  // the `default` upstream, empty: no backend
];

/// Starts goaround with the cache, a log at `log` in `format`, and a config whose upstream
/// `app` (the fixture `backend`) is behind `/app/`, and whose `/empty/` leads to `default`,
/// which has no servers.
fn start(dir: &TempDir, backend: &Backend, log: &str, format: &str) -> Goaround {
    let text = format!(
        "[[upstreams.app.servers]]\npath = \"{}\"\n\
         [[server.locations]]\npath = \"^[^/]*/app/(.*)\"\nhttp_pass = \"app\"\n\
         [[server.locations]]\npath = \"^[^/]*/empty/\"\nhttp_pass = \"default\"\n",
        backend.addr()
    );
    let config = dir.write("goaround.toml", text.as_bytes());
    let g = Goaround::builder()
        .args(&["-config", &config.display().to_string(), "-cache"])
        .args(&["-access-log", log, "-access-log-format", format])
        .start();
    assert!(g.wait_ready_backends(1, READY));
    g
}

/// `GET target` with a Referer and a User-Agent.
fn request_with_headers(target: &str) -> String {
    format!(
        "GET {target} HTTP/1.1\r\nHost: lb.test\r\nReferer: http://ref.example/page\r\n\
         User-Agent: test-agent/1.0 \"quoted\"\r\n\r\n"
    )
}

/// [`request_with_headers`] on a connection of its own.
fn get(g: &Goaround, target: &str) -> Response {
    request(g.addr(), request_with_headers(target).as_bytes())
}

/// Sends the four kinds of request in order over one connection (so that their lines are in
/// that order: requests on different connections may finish on different event loops, and
/// each loop logs a request once its answer is on its way); returns the time before the
/// first and after the last, which every line's timestamp must fall between.
fn four_kinds(g: &Goaround) -> (SystemTime, SystemTime) {
    let before = SystemTime::now();
    let mut conn = Conn::open(g.addr());
    for (target, status) in TARGETS {
        conn.send(request_with_headers(target).as_bytes());
        let r = conn.read_response();
        assert_eq!(r.status, status, "{target}: {r:?}");
    }
    (before, SystemTime::now())
}

/// The lines of `path` once there are `n` (the writer is a thread of its own).
#[track_caller]
fn lines(path: &Path, n: usize) -> Vec<String> {
    let read = || {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    wait_until(READY, || read().len() >= n);
    let got = read();
    assert_eq!(got.len(), n, "{}: {got:#?}", path.display());
    got
}

/// UTC calendar fields of `t` (from its HTTP date): (day, month name, month, year, h:m:s).
fn utc(t: SystemTime) -> (String, String, u32, String, String) {
    let date = httpdate::fmt_http_date(t); // "Tue, 01 Dec 2026 13:04:35 GMT"
    let parts: Vec<&str> = date.split(' ').collect();
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| *m == parts[2])
    .expect("a month name") as u32
        + 1;
    (
        parts[1].to_owned(),
        parts[2].to_owned(),
        month,
        parts[3].to_owned(),
        parts[4].to_owned(),
    )
}

/// Every whole second from `from` to `to`, formatted by `f`.
fn seconds_between(
    from: SystemTime,
    to: SystemTime,
    f: impl Fn(SystemTime) -> String,
) -> Vec<String> {
    let mut out = Vec::new();
    let mut t = from;
    while t <= to + Duration::from_secs(1) {
        out.push(f(t));
        t += Duration::from_secs(1);
    }
    out
}

#[test]
fn combined_lines_for_proxied_cached_404_and_503() {
    let b = Backend::start("b");
    let dir = TempDir::new("access");
    let log = dir.join("access.log");
    let g = start(&dir, &b, &log.display().to_string(), "combined");
    let (before, after) = four_kinds(&g);
    let got = lines(&log, 4);

    let stamps = seconds_between(before, after, |t| {
        let (day, month, _, year, time) = utc(t);
        format!("[{day}/{month}/{year}:{time} +0000]")
    });
    let line = Regex::new(
        r#"^127\.0\.0\.1 - - (\[[^\]]+\]) "GET (\S+) HTTP/1\.1" (\d{3}) (\d+) "http://ref\.example/page" "test-agent/1\.0 \\x22quoted\\x22" (\S+) (\S+) (\d+\.\d{3})$"#,
    )
    .expect("regex");
    let upstream = format!("http://{}", b.addr());
    let hello = "hello from b".len().to_string();
    // (upstream, upstream status, body bytes) per request of TARGETS
    let want = [
        (upstream.as_str(), "200", hello.as_str()),
        ("-", "-", hello.as_str()),
        ("-", "-", "-"),
        ("-", "-", "-"),
    ];
    for ((text, (target, status)), (up, up_status, bytes)) in got.iter().zip(TARGETS).zip(want) {
        let c = line
            .captures(text)
            .unwrap_or_else(|| panic!("not a combined line: {text}"));
        assert!(
            stamps.contains(&c[1].to_owned()),
            "{text}: not in {stamps:?}"
        );
        assert_eq!(&c[2], target, "{text}");
        assert_eq!(&c[3], status.to_string(), "{text}");
        if bytes != "-" {
            assert_eq!(&c[4], bytes, "{text}");
        } else {
            assert!(
                c[4].parse::<u64>().expect("bytes") > 0,
                "an error page: {text}"
            );
        }
        assert_eq!((&c[5], &c[6]), (up, up_status), "{text}");
        let seconds: f64 = c[7].parse().expect("request time");
        assert!(seconds < READY.as_secs_f64(), "{text}");
    }
    assert_eq!(g.metric("goaround_access_log_dropped_total"), Some(0.0));
}

#[test]
fn json_lines_for_proxied_cached_404_and_503() {
    let b = Backend::start("b");
    let dir = TempDir::new("access");
    let log = dir.join("access.log");
    let g = start(&dir, &b, &log.display().to_string(), "json");
    let (before, after) = four_kinds(&g);
    let got = lines(&log, 4);

    let stamps = seconds_between(before, after, |t| {
        let (day, _, month, year, time) = utc(t);
        format!("{year}-{month:02}-{day}T{time}")
    });
    let variable = Regex::new(
        r#"^\{"time":"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.\d{3}Z",(.*),"request_time":(\d+\.\d{3})\}$"#,
    )
    .expect("regex");
    let body_bytes = Regex::new(r#","bytes":(\d+),"#).expect("regex");
    let upstream = format!("\"http://{}\"", b.addr());
    let hello = "hello from b".len();
    // (bytes, upstream, upstream_status) per request of TARGETS; None: an error page.
    let want = [
        (Some(hello), upstream.as_str(), "200"),
        (Some(hello), "null", "null"),
        (None, "null", "null"),
        (None, "null", "null"),
    ];
    for ((text, (target, status)), (bytes, up, up_status)) in got.iter().zip(TARGETS).zip(want) {
        let c = variable
            .captures(text)
            .unwrap_or_else(|| panic!("not a json line: {text}"));
        assert!(
            stamps.contains(&c[1].to_owned()),
            "{text}: not in {stamps:?}"
        );
        let seconds: f64 = c[3].parse().expect("request_time");
        assert!(seconds < READY.as_secs_f64(), "{text}");
        let sent: usize = body_bytes.captures(&c[2]).expect("bytes")[1]
            .parse()
            .expect("a number");
        match bytes {
            Some(n) => assert_eq!(sent, n, "{text}"),
            None => assert!(sent > 0, "an error page: {text}"),
        }
        let fixed = body_bytes.replace(&c[2], ",\"bytes\":N,");
        assert_eq!(
            fixed,
            format!(
                "\"client_ip\":\"127.0.0.1\",\"method\":\"GET\",\"uri\":\"{target}\",\
                 \"protocol\":\"HTTP/1.1\",\"status\":{status},\"bytes\":N,\
                 \"referer\":\"http://ref.example/page\",\
                 \"user_agent\":\"test-agent/1.0 \\\"quoted\\\"\",\"host\":\"lb.test\",\
                 \"upstream\":{up},\"upstream_status\":{up_status}"
            ),
            "{text}"
        );
    }
}

#[test]
fn access_log_dash_goes_to_stdout() {
    let b = Backend::start("b");
    let dir = TempDir::new("access");
    let g = start(&dir, &b, "-", "combined");
    assert_eq!(get(&g, "/app/?to=stdout").status, 200);
    let line = "[stdout] 127.0.0.1 - - [";
    let request = "\"GET /app/?to=stdout HTTP/1.1\" 200 ";
    assert!(
        wait_until(READY, || g
            .stderr()
            .lines()
            .any(|l| l.starts_with(line) && l.contains(request))),
        "no access line on stdout:\n{}",
        g.stderr()
    );
}

/// logrotate renames the file and sends SIGUSR1: lines from then on go to a new file at the
/// path; the renamed one keeps what it had.
#[test]
fn sigusr1_reopens_the_log_after_it_was_renamed() {
    let b = Backend::start("b");
    let dir = TempDir::new("access");
    let log: PathBuf = dir.join("access.log");
    let g = start(&dir, &b, &log.display().to_string(), "combined");
    assert_eq!(get(&g, "/app/?n=1").status, 200);
    assert_eq!(lines(&log, 1).len(), 1);

    let rotated = dir.join("access.log.1");
    std::fs::rename(&log, &rotated).expect("rename the log");
    g.signal(SIGUSR1);
    let reopened = format!("access log: reopened {}", log.display());
    assert!(g.wait_for_log(&reopened, READY), "{}", g.stderr());
    assert_eq!(get(&g, "/app/?n=2").status, 200);

    let now = lines(&log, 1);
    assert!(now[0].contains("GET /app/?n=2 "), "{now:?}");
    // Created 0640 (less the umask): nothing for others, no writing for the group.
    let mode = std::fs::metadata(&log)
        .expect("stat the log")
        .permissions()
        .mode();
    assert_eq!(mode & 0o027, 0, "mode {mode:o}");
    let old = lines(&rotated, 1);
    assert!(old[0].contains("GET /app/?n=1 "), "{old:?}");
}

/// Regression: goaround's own answers (404, 503, ...) were logged with 0 body bytes though
/// their error page was sent; a HEAD gets the head only, and 0 is right for it.
#[test]
fn access_log_counts_the_body_of_goarounds_own_error_pages() {
    let b = Backend::start("b");
    let dir = TempDir::new("access");
    let log = dir.join("access.log");
    let g = start(&dir, &b, &log.display().to_string(), "combined");
    let mut conn = Conn::open(g.addr());
    conn.send(b"GET /nowhere HTTP/1.1\r\nHost: lb.test\r\nAccept: application/json\r\n\r\n");
    let page = conn.read_response();
    assert_eq!(page.status, 404);
    conn.send(b"HEAD /empty/ HTTP/1.1\r\nHost: lb.test\r\n\r\n");
    assert_eq!(conn.read_response_to("HEAD").status, 503);
    let got = lines(&log, 2);
    let sent = |line: &str| -> String {
        let after_request = line.split('"').nth(2).expect("status and bytes");
        after_request
            .split_whitespace()
            .nth(1)
            .expect("bytes")
            .to_owned()
    };
    assert_eq!(sent(&got[0]), page.body.len().to_string(), "{}", got[0]);
    assert_eq!(sent(&got[1]), "0", "{}", got[1]);
}

/// A log file that cannot be opened is a start-up error naming it (exit 2).
#[test]
fn an_access_log_that_cannot_be_opened_stops_the_start() {
    let dir = TempDir::new("access");
    let path = dir.join("missing-dir/access.log");
    let path = path.display().to_string();
    let args = ["-access-log", &path, "-p", "0", "-prometheus-port", "0"];
    let socket = dir.join("goaround.sock").display().to_string();
    let args: Vec<&str> = args.iter().copied().chain(["-socket", &socket]).collect();
    let out = support::run_cli(&args);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    let want = format!("goaround: access log {path}: No such file or directory (os error 2)\n");
    assert!(err.ends_with(&want), "{err}");
}

/// SIGUSR1 without `-access-log` is logged and changes nothing; a request refused while
/// its head was read (here a 400) gets a line without a request line, as nginx writes it.
#[test]
fn sigusr1_without_a_log_and_refused_heads_logged_without_a_request_line() {
    let b = Backend::start("b");
    let g = support::proxy(&[&b], &[]);
    g.signal(SIGUSR1);
    assert!(g.wait_for_log("SIGUSR1: no access log to reopen", READY));
    assert_eq!(get(&g, "/").status, 200);

    let dir = TempDir::new("access");
    let log = dir.join("access.log");
    let g = start(&dir, &b, &log.display().to_string(), "combined");
    let bad = request(g.addr(), b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n");
    assert_eq!(bad.status, 400);
    assert_eq!(get(&g, "/app/?after=bad").status, 200);
    let got = lines(&log, 2);
    // As nginx logs a request it refused: no request line, goaround's status and body.
    let refused = format!("\"-\" 400 {} \"-\" \"-\" - - ", bad.body.len());
    assert!(got[0].contains(&refused), "{got:?}");
    assert!(got[0].starts_with("127.0.0.1 - - ["), "{got:?}");
    assert!(got[1].contains("GET /app/?after=bad "), "{got:?}");
}
