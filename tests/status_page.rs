//! The status page in a real browser (headless Chromium): its script fetches `/status.json`,
//! rebuilds the page from it exactly as the server renders it, keeps the last data under a
//! banner when the fetch fails, and the page reads well wide and on a phone (screenshots in
//! `target/`, to look at).
//!
//! The page and a changing `/status.json` come from a small server in the test, so each test
//! decides what every fetch returns; the real binary's `/status` is another test's business.
//! Without Chromium these tests say SKIPPED loudly and return (see `support::browser`).

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use goaround::stats::{CacheTotals, ErrorCounts, ProcessTotals};
use goaround::status::{
    render_html, render_json, BackendState, BackendStatus, LastCheck, StatusSnapshot,
    UpstreamStatus,
};
use support::browser::{element_by_id, squeeze_between_tags, Chromium, PHONE, WIDE};
use support::scripted::ScriptedServer;

/// Virtual time a page runs for: enough for four refreshes at two seconds.
const BUDGET: Duration = Duration::from_secs(9);

/// What `/status.json` answers to its `n`-th fetch (0-based): a body, or None for a 503.
type JsonPlan = dyn Fn(usize) -> Option<Vec<u8>> + Send + Sync;

/// Serves `/status` (the fixed `page`) and `/status.json` (per `plan`), counting fetches.
struct StatusServer {
    server: ScriptedServer,
    json_fetches: Arc<AtomicUsize>,
}

impl StatusServer {
    fn start(page: Vec<u8>, plan: Box<JsonPlan>) -> StatusServer {
        let json_fetches = Arc::new(AtomicUsize::new(0));
        let fetches = Arc::clone(&json_fetches);
        let server = ScriptedServer::start(move |stream| {
            let Some(path) = request_path(&stream) else {
                return;
            };
            let (status, kind, body) = match path.as_str() {
                "/status" => ("200 OK", "text/html; charset=utf-8", page.clone()),
                "/status.json" => match plan(fetches.fetch_add(1, Ordering::SeqCst)) {
                    Some(json) => ("200 OK", "application/json", json),
                    None => (
                        "503 Service Unavailable",
                        "text/plain",
                        b"restarting\n".to_vec(),
                    ),
                },
                _ => ("404 Not Found", "text/plain", b"not here\n".to_vec()),
            };
            let head = format!(
                "HTTP/1.1 {status}\r\ncontent-type: {kind}\r\ncontent-length: {}\r\n\
                 cache-control: no-store\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let mut stream = stream;
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        });
        StatusServer {
            server,
            json_fetches,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/status", self.server.addr())
    }

    fn json_fetches(&self) -> usize {
        self.json_fetches.load(Ordering::SeqCst)
    }
}

/// The path of the request on `stream` (its head read whole), or None if it closed first.
fn request_path(stream: &TcpStream) -> Option<String> {
    let mut reader = BufReader::new(stream);
    let mut first = String::new();
    reader.read_line(&mut first).ok()?;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 || line == "\r\n" {
            break;
        }
    }
    first.split_whitespace().nth(1).map(str::to_owned)
}

fn backend(url: &str, state: BackendState, requests: u64) -> BackendStatus {
    BackendStatus {
        since_change_secs: Some(4000),
        last_check: Some(LastCheck {
            ago_secs: 2,
            ok: state == BackendState::Up,
            duration_ms: 1.8,
            message: if state == BackendState::Up {
                "200 OK".into()
            } else {
                "status 503".into()
            },
        }),
        in_flight: requests % 17,
        limit: 16,
        requests,
        rps_10s: requests as f64 / 5000.0,
        errors: ErrorCounts {
            http_5xx: requests / 1000,
            ..ErrorCounts::default()
        },
        latency_p50_ms: Some(3.2),
        latency_p99_ms: Some(41.0),
        bytes_in: requests * 2000,
        bytes_out: requests * 300,
        ..BackendStatus::new(url, state)
    }
}

/// Two upstreams, one backend down with its reason, one draining.
fn before() -> StatusSnapshot {
    let mut down = backend("http://10.1.0.3:8080", BackendState::Down, 52_000);
    down.reason = Some("check failed: status 503".into());
    down.since_change_secs = Some(75);
    down.errors.connect = 4;
    let mut draining = backend("http://10.2.0.2:9000", BackendState::Draining, 7_700);
    draining.reason = Some("removed from the set: 3 requests finishing".into());
    let mut unchecked = backend("http://10.2.0.1:9000", BackendState::Up, 88_001);
    unchecked.last_check = None;
    draining.last_check = None;
    StatusSnapshot {
        version: "0.1.0".into(),
        build_static: true,
        uptime_secs: 266_400,
        flags: [
            "-b",
            "http://10.1.0.1:8080,http://10.1.0.2:8080,http://10.1.0.3:8080",
        ]
        .into_iter()
        .chain(["-n", "16", "-cache", "-prometheus-port", "8080"])
        .map(str::to_owned)
        .collect(),
        totals: ProcessTotals {
            client_connections: 1_312,
            tunnels: 9,
            requests: 48_123_456,
            rps_10s: 842.3,
            cache: Some(CacheTotals {
                hits: 30_211,
                misses: 9_870,
                bytes: 41_000_000,
                entries: 2_931,
            }),
        },
        upstreams: vec![
            UpstreamStatus {
                name: "api".into(),
                balancer: "round-robin".into(),
                health_check: Some("/health".into()),
                backends: vec![
                    backend("http://10.1.0.1:8080", BackendState::Up, 1_234_567),
                    backend("http://10.1.0.2:8080", BackendState::Up, 1_230_004),
                    down,
                ],
            },
            UpstreamStatus {
                name: "static".into(),
                balancer: "round-robin".into(),
                // A -config upstream without health_check: passive health only.
                health_check: None,
                backends: vec![unchecked, draining],
            },
        ],
    }
}

/// The second backend went down and a new one was added.
fn after() -> StatusSnapshot {
    let mut s = before();
    let flipped = &mut s.upstreams[0].backends[1];
    flipped.state = BackendState::Down;
    flipped.reason = Some("3 requests failed in a row: connect: connection refused".into());
    flipped.since_change_secs = Some(1);
    flipped.errors.connect = 3;
    let mut new = backend("http://10.1.0.9:8080", BackendState::Pending, 0);
    new.last_check = None;
    new.latency_p50_ms = None;
    new.latency_p99_ms = None;
    new.since_change_secs = Some(1);
    s.upstreams[0].backends.push(new);
    let mut unchecked = backend("http://10.2.0.3:9000", BackendState::Up, 12);
    unchecked.last_check = None;
    s.upstreams[1].backends.push(unchecked);
    s.totals.requests += 1_700;
    s
}

fn target_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join(name)
}

/// The first fetch returns what the page shows, every later one the changed snapshot.
fn changing_json() -> Box<JsonPlan> {
    let (first, later) = (render_json(&before()), render_json(&after()));
    Box::new(move |n| Some(if n == 0 { first.clone() } else { later.clone() }))
}

#[test]
fn the_script_shows_a_changed_snapshot() {
    let Some(chromium) = Chromium::find_or_skip("the_script_shows_a_changed_snapshot") else {
        return;
    };
    let server = StatusServer::start(render_html(&before()), changing_json());
    let page = render_html(&before());
    assert!(!String::from_utf8_lossy(&page).contains("10.1.0.9"));

    let dom = chromium.dump_dom(&server.url(), BUDGET);
    assert!(
        server.json_fetches() >= 2,
        "fetches: {}",
        server.json_fetches()
    );
    assert!(
        dom.contains(r#"<tr class="backend st-pending" data-url="http://10.1.0.9:8080">"#),
        "the new backend appears:\n{dom}"
    );
    assert!(
        dom.contains(r#"<tr class="backend st-down" data-url="http://10.1.0.2:8080">"#),
        "the flipped backend shows down:\n{dom}"
    );
    assert!(dom.contains("3 requests failed in a row: connect: connection refused"));
    assert!(!dom.contains(r#"st-up" data-url="http://10.1.0.2:8080""#));
    assert!(dom.contains("<title>goaround · 3/7 up</title>"));
    assert!(
        dom.contains("off · passive health only"),
        "a backend of an upstream without active checks says so"
    );
    assert!(
        dom.contains(r#"id="favicon" href="data:image/png;base64,"#),
        "the script drew the favicon"
    );
    let (live, text) = element_by_id(&dom, "div", "live").expect("live indicator");
    assert!(live.contains("live ok"), "{live}");
    assert!(text.contains("Live · updated "), "{text}");
    let (alert, _) = element_by_id(&dom, "div", "alert").expect("alert banner");
    assert!(alert.contains("hidden"), "no failure, no banner: {alert}");
}

/// The script rebuilds the markup the server writes, element for element and digit for
/// digit: `page.js` and `html.rs`/`format.rs` cannot drift apart unnoticed.
#[test]
fn the_script_renders_what_the_server_renders() {
    let Some(chromium) = Chromium::find_or_skip("the_script_renders_what_the_server_renders")
    else {
        return;
    };
    // The server's rendering of `after()`, left alone by a script whose fetches all fail.
    let served = StatusServer::start(render_html(&after()), Box::new(|_| None));
    let served_dom = chromium.dump_dom(&served.url(), BUDGET);
    assert!(served.json_fetches() >= 1);
    // The script's rendering of `after()`, over a page rendered from `before()`.
    let scripted = StatusServer::start(render_html(&before()), changing_json());
    let scripted_dom = chromium.dump_dom(&scripted.url(), BUDGET);
    assert!(scripted.json_fetches() >= 2);

    for (tag, id) in [
        ("section", "totals"),
        ("main", "upstreams"),
        ("code", "flags"),
    ] {
        let part = |dom: &str| {
            let (_, inner) = element_by_id(dom, tag, id).unwrap_or_else(|| panic!("#{id}"));
            squeeze_between_tags(inner)
        };
        let (server, script) = (part(&served_dom), part(&scripted_dom));
        if server != script {
            let at = server
                .chars()
                .zip(script.chars())
                .take_while(|(a, b)| a == b)
                .map(|(a, _)| a.len_utf8())
                .sum::<usize>();
            let context = |s: &str| s[at.saturating_sub(200)..(at + 200).min(s.len())].to_owned();
            panic!(
                "#{id} differs at byte {at}:\nserver: …{}…\nscript: …{}…",
                context(&server),
                context(&script)
            );
        }
    }
    let title =
        |dom: &str| dom[dom.find("<title>").unwrap()..dom.find("</title>").unwrap()].to_owned();
    assert_eq!(title(&served_dom), title(&scripted_dom));
}

#[test]
fn a_failed_fetch_keeps_the_data_and_says_so() {
    let Some(chromium) = Chromium::find_or_skip("a_failed_fetch_keeps_the_data_and_says_so") else {
        return;
    };
    // One good answer, then goaround is "restarting".
    let json = render_json(&before());
    let plan: Box<JsonPlan> = Box::new(move |n| (n == 0).then(|| json.clone()));
    let server = StatusServer::start(render_html(&before()), plan);
    let dom = chromium.dump_dom(&server.url(), BUDGET);
    assert!(
        server.json_fetches() >= 3,
        "fetches: {}",
        server.json_fetches()
    );

    let (alert, text) = element_by_id(&dom, "div", "alert").expect("alert banner");
    assert!(!alert.contains("hidden"), "the banner shows: {alert}");
    assert!(text.contains("Cannot reach /status.json since "), "{text}");
    assert!(text.contains("last: HTTP 503"), "{text}");
    assert!(text.contains("failed tries"), "{text}");
    let (live, live_text) = element_by_id(&dom, "div", "live").expect("live indicator");
    assert!(live.contains("live fail"), "{live}");
    assert!(
        live_text.contains("Not updating · data from "),
        "{live_text}"
    );
    // The last data stays, marked stale.
    let (main, rows) = element_by_id(&dom, "main", "upstreams").expect("backends");
    assert!(main.contains("stale"), "{main}");
    for url in [
        "http://10.1.0.1:8080",
        "http://10.1.0.3:8080",
        "http://10.2.0.2:9000",
    ] {
        assert!(rows.contains(&format!("data-url=\"{url}\"")), "{url} kept");
    }

    chromium.screenshot(
        &server.url(),
        WIDE,
        BUDGET,
        &target_file("status-page-offline.png"),
    );
}

#[test]
fn screenshots_wide_and_phone() {
    let Some(chromium) = Chromium::find_or_skip("screenshots_wide_and_phone") else {
        return;
    };
    for (size, name) in [
        (WIDE, "status-page-1400.png"),
        (PHONE, "status-page-phone.png"),
    ] {
        let server = StatusServer::start(render_html(&before()), changing_json());
        let path = target_file(name);
        chromium.screenshot(&server.url(), size, BUDGET, &path);
        assert!(server.json_fetches() >= 2, "{name} shows refreshed data");
        eprintln!("status page screenshot: {}", path.display());
    }
}
