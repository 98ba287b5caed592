//! `/status`: one self-contained HTML page, rendered here from the snapshot so that it is
//! complete without JavaScript, and rebuilt in place by its inline script (`page.js`) from
//! `/status.json` every two seconds.
//!
//! The markup below is a contract with `page.js`, which builds the same elements with the
//! same classes and text; the browser test (`tests/status_page.rs`) checks that both
//! renderings of one snapshot read the same. Every value from the snapshot is escaped
//! ([`escape`]); the script only ever sets `textContent`, never markup. The page loads nothing
//! from anywhere: styles and script are inline, the favicon is drawn by the script, and the
//! Content-Security-Policy allows no other source even if one slipped in.

use super::format::{bytes, command_line, count, duration, ms, percent, rate};
use super::{BackendState, BackendStatus, StatusSnapshot, UpstreamStatus};
use crate::stats::ProcessTotals;

const CSS: &str = include_str!("page.css");
const SCRIPT: &str = include_str!("page.js");

/// Same-origin fetches only (the JSON), inline style and script, data: images (favicon).
const CSP: &str = "default-src 'none'; connect-src 'self'; img-src data:; \
                   style-src 'unsafe-inline'; script-src 'unsafe-inline'; base-uri 'none'; \
                   form-action 'none'";

/// Columns of a backend row: header text and whether it is numeric (right-aligned).
const COLUMNS: [(&str, bool); 10] = [
    ("Backend", false),
    ("State", false),
    ("Last check", false),
    ("In flight", true),
    ("Req/s", true),
    ("Requests", true),
    ("Errors", false),
    ("p50", true),
    ("p99", true),
    ("Received / sent", true),
];

/// The page for `s`, as UTF-8 HTML.
pub fn render_html(s: &StatusSnapshot) -> Vec<u8> {
    let mut h = Html::default();
    let (up, total) = up_and_total(s);
    h.raw("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    h.raw("<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\n");
    h.raw("<meta http-equiv=\"Content-Security-Policy\" content=\"");
    h.raw(CSP);
    h.raw("\">\n<title>");
    h.text(&format!("goaround · {up}/{total} up"));
    h.raw("</title>\n<link rel=\"icon\" id=\"favicon\" href=\"data:,\">\n<style>\n");
    h.raw(CSS);
    h.raw("</style>\n</head>\n<body>\n<div class=\"wrap\">\n");
    header(&mut h, s);
    totals(&mut h, &s.totals, s);
    h.raw("<div class=\"cmd\"><span class=\"k\">Command line</span><code id=\"flags\">");
    h.text(&command_line(&s.flags));
    h.raw("</code></div>\n<main id=\"upstreams\">\n");
    for u in &s.upstreams {
        upstream(&mut h, u);
    }
    h.raw("</main>\n<footer>The same data as JSON: <a href=\"/status.json\">/status.json</a>");
    h.raw(" · Prometheus: <a href=\"/metrics\">/metrics</a></footer>\n</div>\n<script>\n");
    h.raw(SCRIPT);
    h.raw("</script>\n</body>\n</html>\n");
    h.out.into_bytes()
}

fn up_and_total(s: &StatusSnapshot) -> (usize, usize) {
    let backends = s.upstreams.iter().flat_map(|u| &u.backends);
    let up = backends
        .clone()
        .filter(|b| b.state == BackendState::Up)
        .count();
    (up, backends.count())
}

fn header(h: &mut Html, s: &StatusSnapshot) {
    h.raw("<header class=\"top\"><div class=\"brand\"><h1>goaround</h1>");
    h.raw("<span class=\"version\" id=\"version\">");
    h.text(&s.version);
    h.raw("</span><span class=\"build\" id=\"build\">");
    h.text(build_text(s.build_static));
    h.raw("</span></div>");
    h.raw("<div class=\"live\" id=\"live\"><span class=\"dot\"></span>");
    h.raw("<span id=\"live-text\">Snapshot from page load: reload to update</span></div>");
    h.raw("</header>\n<div class=\"alert\" id=\"alert\" role=\"alert\" hidden></div>\n");
}

fn build_text(build_static: bool) -> &'static str {
    if build_static {
        "static build"
    } else {
        "dynamically linked"
    }
}

fn totals(h: &mut Html, t: &ProcessTotals, s: &StatusSnapshot) {
    let (up, total) = up_and_total(s);
    h.raw("<section class=\"totals\" id=\"totals\" aria-label=\"Totals\">");
    let mut counts = [0usize; 4];
    for b in s.upstreams.iter().flat_map(|u| &u.backends) {
        counts[state_index(b.state)] += 1;
    }
    let [_, down, draining, pending] = counts;
    let mut notes = Vec::new();
    for (n, word) in [(down, "down"), (draining, "draining"), (pending, "pending")] {
        if n > 0 {
            notes.push(format!("{n} {word}"));
        }
    }
    let note = match (total, notes.is_empty()) {
        (0, _) => "none configured".to_owned(),
        (_, true) => "all up".to_owned(),
        _ => notes.join(" · "),
    };
    // Red when a backend is down or none is left to serve (all pending is only starting up).
    let class = if down > 0 || (total > 0 && up == 0 && pending == 0) {
        "tile bad"
    } else if draining + pending > 0 {
        "tile warn"
    } else {
        "tile"
    };
    tile(h, class, "Backends up", &format!("{up} / {total}"), &note);
    tile(h, "tile", "Requests/s", &rate(t.rps_10s), "last 10 s");
    tile(h, "tile", "Requests", &count(t.requests), "since start");
    tile(
        h,
        "tile",
        "Connections",
        &count(t.client_connections),
        "open now",
    );
    tile(h, "tile", "Tunnels", &count(t.tunnels), "WebSocket");
    match &t.cache {
        Some(c) => {
            let lookups = format!("{} hits · {} misses", count(c.hits), count(c.misses));
            tile(h, "tile", "Cache hits", &percent(c.hit_ratio()), &lookups);
            let entries = format!("{} entries", count(c.entries));
            tile(h, "tile", "Cache size", &bytes(c.bytes), &entries);
        }
        None => tile(h, "tile", "Cache", "off", "-cache not set"),
    }
    tile(h, "tile", "Uptime", &duration(s.uptime_secs), "since start");
    h.raw("</section>\n");
}

fn state_index(state: BackendState) -> usize {
    match state {
        BackendState::Up => 0,
        BackendState::Down => 1,
        BackendState::Draining => 2,
        BackendState::Pending => 3,
    }
}

fn tile(h: &mut Html, class: &str, key: &str, value: &str, note: &str) {
    h.raw("<div class=\"");
    h.text(class);
    h.raw("\"><span class=\"k\">");
    h.text(key);
    h.raw("</span><span class=\"v\">");
    h.text(value);
    h.raw("</span><span class=\"s\">");
    h.text(note);
    h.raw("</span></div>");
}

fn upstream(h: &mut Html, u: &UpstreamStatus) {
    let up = u
        .backends
        .iter()
        .filter(|b| b.state == BackendState::Up)
        .count();
    h.raw("<section class=\"upstream\"><h2>");
    h.text(&u.name);
    h.raw(" <span class=\"meta\">");
    h.text(&format!("{} · {up} of {} up", u.balancer, u.backends.len()));
    h.raw("</span></h2>\n<div class=\"scroll\"><table>\n<thead><tr>");
    for (i, (name, numeric)) in COLUMNS.iter().enumerate() {
        let class = match (i, numeric) {
            (0, _) => " class=\"url\"",
            (_, true) => " class=\"num\"",
            _ => "",
        };
        h.raw(&format!("<th{class} scope=\"col\">"));
        h.text(name);
        h.raw("</th>");
    }
    h.raw("</tr></thead>\n<tbody>\n");
    if u.backends.is_empty() {
        h.raw(&format!(
            "<tr class=\"empty\"><td colspan=\"{}\">",
            COLUMNS.len()
        ));
        h.raw("No backends: give them with -b or through the control socket.</td></tr>\n");
    }
    for b in &u.backends {
        backend(h, b, u.health_check.is_some());
    }
    h.raw("</tbody></table></div></section>\n");
}

/// One backend's row; `checked` says whether its upstream runs active health checks.
fn backend(h: &mut Html, b: &BackendStatus, checked: bool) {
    let state = b.state.as_str();
    h.raw(&format!("<tr class=\"backend st-{state}\" data-url=\""));
    h.text(&b.url);
    h.raw("\"><th class=\"url\" scope=\"row\" data-label=\"Backend\"><span class=\"u\">");
    h.text(&b.url);
    h.raw("</span>");
    if let Some(w) = b.weight {
        h.raw(&format!("<span class=\"w\">weight {w}</span>"));
    }
    h.raw("</th>");

    h.raw("<td class=\"state\" data-label=\"State\">");
    h.raw(&format!("<span class=\"badge {state}\">{state}</span>"));
    if let Some(secs) = b.since_change_secs {
        h.raw("<span class=\"since\">for ");
        h.text(&duration(secs));
        h.raw("</span>");
    }
    if let Some(reason) = &b.reason {
        h.raw("<span class=\"reason\">");
        h.text(reason);
        h.raw("</span>");
    }
    h.raw("</td>");

    h.raw("<td class=\"check\" data-label=\"Last check\">");
    match &b.last_check {
        None if checked => h.raw("<span class=\"muted\">none yet</span>"),
        None => h.raw("<span class=\"muted\">off · passive health only</span>"),
        Some(c) => {
            let (class, word) = if c.ok {
                ("res ok", "✓ passed")
            } else {
                ("res fail", "✗ failed")
            };
            h.raw(&format!(
                "<span class=\"{class}\">{word}</span><span class=\"ago\">"
            ));
            h.text(&format!(
                "{} ago · {}",
                duration(c.ago_secs),
                ms(Some(c.duration_ms))
            ));
            h.raw("</span><span class=\"msg\" title=\"");
            h.text(&c.message);
            h.raw("\">");
            h.text(&c.message);
            h.raw("</span>");
        }
    }
    h.raw("</td>");

    h.raw("<td class=\"num inflight\" data-label=\"In flight\"><span>");
    h.text(&format!("{} / {}", count(b.in_flight), count(b.limit)));
    let load = load_percent(b.in_flight, b.limit);
    let bar = if load >= 80 { "bar full" } else { "bar" };
    h.raw(&format!(
        "</span><span class=\"{bar}\"><span style=\"width:{load}%\"></span></span></td>"
    ));

    cell(h, "num", "Req/s", &rate(b.rps_10s));
    cell(h, "num", "Requests", &count(b.requests));

    h.raw("<td class=\"errors\" data-label=\"Errors\">");
    let e = &b.errors;
    let kinds = [
        ("5xx", e.http_5xx),
        ("connect", e.connect),
        ("timeout", e.timeout),
        ("reset", e.reset),
        ("protocol", e.protocol),
    ];
    let mut any = false;
    for (kind, n) in kinds.into_iter().filter(|(_, n)| *n > 0) {
        any = true;
        h.raw("<span class=\"err\">");
        h.text(&format!("{kind} {}", count(n)));
        h.raw("</span>");
    }
    if !any {
        h.raw("<span class=\"muted\">none</span>");
    }
    h.raw("</td>");

    cell(h, "num", "p50", &ms(b.latency_p50_ms));
    cell(h, "num", "p99", &ms(b.latency_p99_ms));
    let traffic = format!("{} / {}", bytes(b.bytes_in), bytes(b.bytes_out));
    cell(h, "num", "Received / sent", &traffic);
    h.raw("</tr>\n");
}

/// In-flight requests as a whole percentage of the limit, for the bar.
fn load_percent(in_flight: u64, limit: u64) -> u64 {
    if limit == 0 {
        return 0;
    }
    (in_flight.min(limit) * 100 + limit / 2) / limit
}

fn cell(h: &mut Html, class: &str, label: &str, value: &str) {
    h.raw(&format!("<td class=\"{class}\" data-label=\"{label}\">"));
    h.text(value);
    h.raw("</td>");
}

/// A page being written: markup as given, text escaped.
#[derive(Default)]
struct Html {
    out: String,
}

impl Html {
    fn raw(&mut self, markup: &str) {
        self.out.push_str(markup);
    }

    /// Text for an element or a quoted attribute value.
    fn text(&mut self, text: &str) {
        escape(&mut self.out, text);
    }
}

/// Appends `text` with the five characters that can end a text node or a quoted attribute
/// replaced by references.
fn escape(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{fixtures, BackendState, BackendStatus, LastCheck, UpstreamStatus};
    use super::*;

    fn page(s: &StatusSnapshot) -> String {
        String::from_utf8(render_html(s)).expect("the page is UTF-8")
    }

    #[test]
    fn every_backend_with_its_state_in_words() {
        let mut s = fixtures::snapshot();
        s.upstreams.push(UpstreamStatus {
            name: "images".into(),
            balancer: "round-robin".into(),
            health_check: Some("/health".into()),
            backends: vec![
                fixtures::backend("http://img-1:80", BackendState::Draining),
                fixtures::backend("http://img-2:80", BackendState::Pending),
            ],
        });
        let html = page(&s);
        for (url, state) in [
            ("http://10.0.0.1:8080", "up"),
            ("http://10.0.0.2:8080", "down"),
            ("http://img-1:80", "draining"),
            ("http://img-2:80", "pending"),
        ] {
            let row = format!("<tr class=\"backend st-{state}\" data-url=\"{url}\">");
            assert!(html.contains(&row), "{row}");
            let badge = format!("<span class=\"badge {state}\">{state}</span>");
            assert!(html.contains(&badge), "{badge}");
        }
        assert!(html.contains("check failed: status 503"));
        assert!(html.contains("<title>goaround · 1/4 up</title>"));
        assert!(html.contains("images <span class=\"meta\">round-robin · 0 of 2 up</span>"));
        assert!(html.contains("1 down · 1 draining · 1 pending"));
    }

    #[test]
    fn a_backend_never_checked_says_why() {
        let mut s = fixtures::snapshot();
        let mut b = fixtures::backend("http://p:1", BackendState::Up);
        b.last_check = None;
        s.upstreams[0].backends = vec![b.clone()];
        assert!(page(&s).contains(">none yet<"));
        s.upstreams[0].health_check = None;
        let html = page(&s);
        assert!(html.contains(">off · passive health only<"), "{html}");
        assert!(!html.contains(">none yet<"));
    }

    #[test]
    fn totals_and_figures() {
        let html = page(&fixtures::snapshot());
        for text in [
            "static build",
            "0.1.0",
            "goaround -b http://10.0.0.1:8080 -n 16",
            ">83.4<",
            ">999,999<",
            ">87.5%<",
            ">2.0\u{a0}KiB<",
            ">1d 2h<",
            ">41.7<",
            ">123,456<",
            ">1.2\u{a0}ms<",
            ">48.5\u{a0}ms<",
            ">4.8\u{a0}MiB / 117.2\u{a0}KiB<",
            ">5xx 2<",
            ">connect 1<",
            ">3 / 16<",
            "for 3m 12s",
            "1s ago · 2.1\u{a0}ms",
        ] {
            assert!(html.contains(text), "missing {text}");
        }
    }

    #[test]
    fn values_are_escaped() {
        let mut s = fixtures::snapshot();
        let evil = "http://x/\"><script>alert('x')</script>&amp;";
        let mut b = BackendStatus::new(evil, BackendState::Down);
        b.reason = Some("<img src=x onerror=alert(1)>".into());
        b.last_check = Some(LastCheck {
            ago_secs: 0,
            ok: false,
            duration_ms: 1.0,
            message: "\"quoted\" <b>".into(),
        });
        s.upstreams[0].backends.push(b);
        s.upstreams[0].name = "<u>".into();
        s.flags.push("<flag>".into());
        s.version = "<v>".into();
        let html = page(&s);
        assert!(!html.contains("<script>alert"));
        assert!(!html.contains("<img"));
        assert!(!html.contains("<b>"));
        assert!(!html.contains("<u>"));
        assert!(!html.contains("<flag>"));
        assert!(!html.contains("<v>"));
        let escaped = "http://x/&quot;&gt;&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;amp;";
        assert!(html.contains(&format!("data-url=\"{escaped}\"")));
        assert!(html.contains(&format!("<span class=\"u\">{escaped}</span>")));
        assert!(html.contains("title=\"&quot;quoted&quot; &lt;b&gt;\""));
    }

    /// Every place a page can name another resource: none may point off this origin.
    #[test]
    fn no_external_resources() {
        let html = page(&fixtures::snapshot()).to_ascii_lowercase();
        let mut refs = 0;
        for opener in ["src=", "href=", "url(", "@import", "srcset=", "action="] {
            for (at, _) in html.match_indices(opener) {
                refs += 1;
                let target = html[at + opener.len()..].trim_start_matches([' ', '"', '\'', '(']);
                for external in ["http:", "https:", "//", "ftp:", "ws:", "wss:"] {
                    assert!(
                        !target.starts_with(external),
                        "{opener} loads {}",
                        &target[..target.len().min(60)]
                    );
                }
            }
        }
        assert!(refs >= 3, "the scan found the page's own links ({refs})");
        assert!(!html.contains("<iframe") && !html.contains("<object"));
        assert!(html.contains("default-src 'none'"), "the CSP is in place");
    }

    #[test]
    fn an_empty_upstream_says_so() {
        let mut s = fixtures::snapshot();
        s.upstreams[0].backends.clear();
        s.totals.cache = None;
        let html = page(&s);
        assert!(html.contains("No backends"));
        assert!(html.contains("none configured"));
        assert!(html.contains(">off<"));
    }

    #[test]
    fn the_backends_tile_is_red_only_when_something_is_wrong() {
        let tile_class = |states: &[BackendState]| {
            let mut s = fixtures::snapshot();
            s.upstreams[0].backends = states
                .iter()
                .map(|&state| fixtures::backend("http://b:1", state))
                .collect();
            let html = page(&s);
            let at = html.find("<span class=\"k\">Backends up").unwrap();
            let start = html[..at].rfind("<div class=\"").unwrap() + "<div class=\"".len();
            html[start..at - 2].to_owned()
        };
        use BackendState::*;
        assert_eq!(tile_class(&[Up, Up]), "tile");
        assert_eq!(tile_class(&[Pending, Pending]), "tile warn", "starting up");
        assert_eq!(tile_class(&[Up, Draining]), "tile warn");
        assert_eq!(tile_class(&[Up, Down]), "tile bad");
        assert_eq!(tile_class(&[Draining]), "tile bad", "nothing left to serve");
    }

    #[test]
    fn load_bar() {
        assert_eq!(load_percent(0, 0), 0);
        assert_eq!(load_percent(3, 16), 19);
        assert_eq!(load_percent(20, 16), 100);
    }
}
