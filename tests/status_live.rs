//! The real binary's status page in headless Chromium: after the page's script has run (and
//! refreshed from `/status.json`), every backend of every upstream is on it with its state;
//! `/status.json` carries the documented keys. A screenshot is written to
//! `target/status-live-1400.png`. Without Chromium the browser test says SKIPPED and returns.

mod support;

use std::path::PathBuf;
use std::time::Duration;

use support::browser::{Chromium, WIDE};
use support::{dead_url, get, Backend, Goaround};

const READY: Duration = Duration::from_secs(10);
/// Virtual time the page runs for: two refreshes at two seconds.
const BUDGET: Duration = Duration::from_secs(5);

/// goaround with `-b` backends (`default`, checked) and a `-config` upstream `api` with a
/// live server and a dead one (unchecked: the dead one goes down by its `max_fail`).
fn goaround(b1: &Backend, api: &Backend, dir: &support::tempdir::TempDir) -> Goaround {
    let dead = dead_url();
    let dead = dead.trim_start_matches("http://");
    let config = dir.write(
        "goaround.toml",
        format!(
            "[upstreams.api]\n  balancer = \"least_conn\"\n\
             [[upstreams.api.servers]]\n    path = \"{}\"\n    weight = 3\n\
             [[upstreams.api.servers]]\n    path = \"{dead}\"\n    max_fail = 1\n    fail_timeout = \"1h\"\n\
             [server]\n  [[server.locations]]\n    path = \"api/(.*)\"\n    http_pass = \"api\"\n\
             [[server.locations]]\n    path = \".\"\n    http_pass = \"default\"\n    pass_path = true\n",
            api.addr()
        )
        .as_bytes(),
    );
    let config = config.display().to_string();
    let g = Goaround::builder()
        .backends(&[b1.url()])
        .args(&["-config", &config])
        .start();
    assert!(g.wait_ready_backends(3, READY), "{}", g.stderr());
    g
}

#[test]
fn status_json_has_every_backend_with_the_documented_keys() {
    let (b1, api) = (Backend::start("b1"), Backend::start("api"));
    let dir = support::tempdir::TempDir::new("status");
    let g = goaround(&b1, &api, &dir);
    // Traffic to both upstreams; the dead server fails its one allowed try.
    for _ in 0..4 {
        assert_eq!(get(g.addr(), "/").status, 200);
        get(g.addr(), "/api/");
    }
    let json = get(g.metrics_addr(), "/status.json");
    assert_eq!(json.status, 200);
    assert_eq!(json.header("content-type"), Some("application/json"));
    let text = json.text();
    for key in [
        "\"version\":",
        "\"build_static\":",
        "\"uptime_secs\":",
        "\"flags\":",
        "\"totals\":",
        "\"client_connections\":",
        "\"tunnels\":",
        "\"rps_10s\":",
        "\"upstreams\":",
        "\"balancer\":\"least_conn\"",
        "\"state\":",
        "\"in_flight\":",
        "\"limit\":",
        "\"requests\":",
        "\"errors\":",
        "\"latency_p50_ms\":",
        "\"latency_p99_ms\":",
        "\"last_check\":",
        "\"bytes_in\":",
        "\"bytes_out\":",
        "\"weight\":3",
    ] {
        assert!(text.contains(key), "{key} missing from {text}");
    }
    for backend in [b1.url(), api.url()] {
        assert!(
            text.contains(&format!("\"url\":\"{backend}\"")),
            "{backend}: {text}"
        );
    }
    assert!(
        text.contains("\"state\":\"down\""),
        "the dead server is down: {text}"
    );
}

#[test]
fn the_live_page_shows_every_backend_and_its_state() {
    let Some(chromium) = Chromium::find_or_skip("the_live_page_shows_every_backend_and_its_state")
    else {
        return;
    };
    let (b1, api) = (Backend::start("b1"), Backend::start("api"));
    let dir = support::tempdir::TempDir::new("status");
    let g = goaround(&b1, &api, &dir);
    for _ in 0..4 {
        get(g.addr(), "/api/");
    }
    let url = format!("http://{}/status", g.metrics_addr());
    let dom = chromium.dump_dom(&url, BUDGET);
    for (backend, state) in [(b1.url(), "up"), (api.url(), "up")] {
        let row = format!(r#"<tr class="backend st-{state}" data-url="{backend}">"#);
        assert!(dom.contains(&row), "{row} not in the page:\n{dom}");
    }
    assert!(
        dom.contains(r#"<tr class="backend st-down" data-url="http://127.0.0.1:"#),
        "the dead server shows down:\n{dom}"
    );
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("status-live-1400.png");
    chromium.screenshot(&url, WIDE, BUDGET, &path);
    eprintln!("live status page screenshot: {}", path.display());
}
