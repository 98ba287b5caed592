//! The `-config` file against the real binary: Gourmet's README example and the code's own
//! spelling both load and route, locations are tried in file order with Gourmet's path
//! rewrite, a location's `host` restricts it, `pass_path` keeps the path, no match is a 404
//! page chosen by `Accept`, the `-b` backends are the `default` upstream, the file's port
//! applies unless `-p` is given, the example in `contrib/` starts and routes, and every bad
//! file is refused with exit 2 and one line naming the file and the thing.
//!
//! Config files are written into a temp dir with the fixture backends' ports; the harness
//! passes `-p 0`, which wins over the file's `port`.

mod support;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use support::tempdir::TempDir;
use support::{request, run_cli, Backend, Goaround, Response};

/// Long enough for anything that happens at start-up.
const READY: Duration = Duration::from_secs(10);

/// Exit status of a refused command line or config file.
const EXIT_USAGE: i32 = 2;

/// The configuration example of Gourmet's README, verbatim but for the server names, which
/// the tests replace with fixture backends' addresses.
const GOURMET_README: &str = r#"
[upstreams]
    [upstreams.backend]
        balancer="round_robin" # default round_robin 
        provider="static"      # default static

        [[upstreams.backend.servers]]
            path="api1.foo.bar"
            weight=5 # optional weight

        [[upstreams.backend.servers]]
            path="api2.foo.bar"

        [[upstreams.backend.servers]]
            path="api3.foo.bar"

    [upstreams.front]
        provider="static"
        balancer="round_robin"

        [[upstreams.front.servers]]
            path="static1.foo.bar"
            weight=2    

        [[upstreams.front.servers]]
            path="static2.foo.bar"

        [[upstreams.front.servers]]
            path="static3.foo.bar"

[server]
    port=80 # default is 8080

    [[server.locations]]
        location="api/(.+/?)"
        upstream="backend"

    [[server.locations]]
        location="static/.+/?"
        upstream="front"
"#;

/// `host:port` of a fixture backend, as a config file's server `path` takes it.
fn addr(b: &Backend) -> String {
    b.addr().to_string()
}

/// Writes `text` to `goaround.toml` in `dir`.
fn write_config(dir: &TempDir, text: &str) -> PathBuf {
    dir.write("goaround.toml", text.as_bytes())
}

/// Starts goaround with `-config FILE` and `extra` flags, and waits until `up` backends are
/// up (config servers without `health_check` are up at once).
fn start(config: &Path, extra: &[&str], up: usize) -> Goaround {
    let g = Goaround::builder()
        .arg("-config")
        .arg(config.display().to_string())
        .args(extra)
        .start();
    assert!(g.wait_ready_backends(up, READY), "{up} backends not up");
    g
}

/// `GET target` with `Host: host` and any `extra` header lines (each ending in CRLF).
fn get_as(g: &Goaround, host: &str, target: &str, extra: &str) -> Response {
    let raw = format!("GET {target} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n");
    request(g.addr(), raw.as_bytes())
}

/// Which fixture answered, and the target it received (its last request).
fn answered(r: &Response, backends: &[&Backend]) -> (String, String) {
    let name = r
        .header("x-backend")
        .unwrap_or_else(|| panic!("not answered by a backend: {r:?}"))
        .to_owned();
    let backend = backends
        .iter()
        .find(|b| b.name() == name)
        .unwrap_or_else(|| panic!("answered by {name}, not one of the expected backends"));
    let last = backend.received().pop().expect("the backend recorded it");
    (name, last.target)
}

// ---------------------------------------------------------------------------------------------
// Routing

#[test]
fn gourmet_readme_config_loads_and_routes_with_gourmets_rewrite() {
    let names = ["api1", "api2", "api3", "static1", "static2", "static3"];
    let fixtures: Vec<Backend> = names.iter().map(|n| Backend::start(n)).collect();
    let mut text = GOURMET_README.to_owned();
    for (name, b) in names.iter().zip(&fixtures) {
        text = text.replace(&format!("\"{name}.foo.bar\""), &format!("\"{}\"", addr(b)));
    }
    let dir = TempDir::new("config");
    let g = start(&write_config(&dir, &text), &[], 6);
    let (api, front) = fixtures.split_at(3);
    let api: Vec<&Backend> = api.iter().collect();
    let front: Vec<&Backend> = front.iter().collect();

    // `api/(.+/?)`: the last group's text, with the query kept.
    let r = get_as(&g, "lb.test", "/api/users/7?x=1", "");
    let (_, target) = answered(&r, &api);
    assert_eq!(target, "/users/7?x=1");
    // `static/.+/?` has no group: the whole match, path as it was.
    let r = get_as(&g, "lb.test", "/static/css/a.css", "");
    let (_, target) = answered(&r, &front);
    assert_eq!(target, "/static/css/a.css");
    // `.+` needs something after `api/`; nothing else matches: 404.
    for target in ["/api/", "/other", "/"] {
        let r = get_as(&g, "lb.test", target, "");
        assert_eq!(r.status, 404, "{target}: {r:?}");
        assert_eq!(r.header("x-backend"), None);
    }
    let served: u64 = fixtures.iter().map(Backend::requests).sum();
    assert_eq!(served, 2, "only the two routed requests reached a backend");
}

#[test]
fn code_spelling_path_and_http_pass_routes_the_same() {
    let a = Backend::start("a");
    let b = Backend::start("b");
    let dir = TempDir::new("config");
    let text = format!(
        r#"
[upstreams.api]
  [[upstreams.api.servers]]
    path = "http://{a}"
[upstreams.web]
  [[upstreams.web.servers]]
    path = "{b}"
[server]
  [[server.locations]]
    path = "api/(.*)"
    http_pass = "api"
  [[server.locations]]
    location = "web/(.*)"
    upstream = "web"
"#,
        a = addr(&a),
        b = addr(&b)
    );
    let g = start(&write_config(&dir, &text), &[], 2);
    let r = get_as(&g, "lb.test", "/api/v1/items?page=2&sort=asc", "");
    assert_eq!(
        answered(&r, &[&a]),
        ("a".into(), "/v1/items?page=2&sort=asc".into())
    );
    let r = get_as(&g, "lb.test", "/web/index.html", "");
    assert_eq!(answered(&r, &[&b]), ("b".into(), "/index.html".into()));
    // `(.*)` may take nothing: the backend gets "/", with the query.
    let r = get_as(&g, "lb.test", "/api/?q=1", "");
    assert_eq!(answered(&r, &[&a]), ("a".into(), "/?q=1".into()));
}

#[test]
fn no_matching_location_is_a_404_page_chosen_by_accept() {
    let a = Backend::start("a");
    let dir = TempDir::new("config");
    let text = format!(
        "[[upstreams.api.servers]]\npath = \"{}\"\n\
         [[server.locations]]\npath = \"^[^/]*/api/\"\nhttp_pass = \"api\"\n",
        addr(&a)
    );
    let g = start(&write_config(&dir, &text), &[], 1);
    let message = "no location matches this request";
    let cases = [
        (
            "",
            "text/plain; charset=utf-8",
            format!("404 Not Found: {message}\n"),
        ),
        (
            "Accept: application/json\r\n",
            "application/json",
            format!(
                "{{\"status\":404,\"status_text\":\"Not Found\",\"description\":\"{message}\"}}\n"
            ),
        ),
        (
            "Accept: text/html,application/xhtml+xml,*/*;q=0.8\r\n",
            "text/html; charset=utf-8",
            format!(
                "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>404 Not Found\
                 </title></head><body><h1>404 Not Found</h1><p>{message}</p></body></html>\n"
            ),
        ),
    ];
    for (accept, content_type, body) in cases {
        let r = get_as(&g, "lb.test", "/nothing/here", accept);
        assert_eq!(r.status, 404, "{accept:?}");
        assert_eq!(r.header("content-type"), Some(content_type), "{accept:?}");
        assert_eq!(r.text(), body, "{accept:?}");
        assert_eq!(r.header("cache-control"), Some("no-store"));
    }
    // The pattern is unanchored at the end but not at the start of the path: /x/api/ is no
    // match for `^[^/]*/api/`.
    assert_eq!(get_as(&g, "lb.test", "/x/api/", "").status, 404);
    let r = get_as(&g, "lb.test", "/api/x", "");
    assert_eq!(r.header("x-backend"), Some("a"), "{r:?}");
    assert_eq!(a.requests(), 1);
}

/// Two locations that both match `/api/v2/x`: the first in the file wins, whichever it is.
#[test]
fn locations_are_tried_in_file_order() {
    let one = Backend::start("one");
    let two = Backend::start("two");
    let upstreams = format!(
        "[[upstreams.one.servers]]\npath = \"{}\"\n[[upstreams.two.servers]]\npath = \"{}\"\n",
        addr(&one),
        addr(&two)
    );
    let location = |pattern: &str, upstream: &str| {
        format!("[[server.locations]]\npath = \"{pattern}\"\nhttp_pass = \"{upstream}\"\n")
    };
    let dir = TempDir::new("config");

    let specific_first = format!(
        "{upstreams}{}{}",
        location("api/v2/(.*)", "two"),
        location("api/(.*)", "one")
    );
    let g = start(&write_config(&dir, &specific_first), &[], 2);
    let r = get_as(&g, "lb.test", "/api/v2/x", "");
    assert_eq!(answered(&r, &[&one, &two]), ("two".into(), "/x".into()));
    let r = get_as(&g, "lb.test", "/api/v1/x", "");
    assert_eq!(answered(&r, &[&one, &two]), ("one".into(), "/v1/x".into()));
    drop(g);

    let general_first = format!(
        "{upstreams}{}{}",
        location("api/(.*)", "one"),
        location("api/v2/(.*)", "two")
    );
    let g = start(&write_config(&dir, &general_first), &[], 2);
    let r = get_as(&g, "lb.test", "/api/v2/x", "");
    assert_eq!(answered(&r, &[&one, &two]), ("one".into(), "/v2/x".into()));
}

#[test]
fn a_locations_host_restricts_it() {
    let api = Backend::start("api");
    let web = Backend::start("web");
    let dir = TempDir::new("config");
    let text = format!(
        r#"
[[upstreams.api.servers]]
  path = "{api}"
[[upstreams.web.servers]]
  path = "{web}"
[[server.locations]]
  path = "/(.*)"
  http_pass = "api"
  host = "API.example.com"
[[server.locations]]
  path = "/web/(.*)"
  http_pass = "web"
"#,
        api = addr(&api),
        web = addr(&web)
    );
    let g = start(&write_config(&dir, &text), &[], 2);
    let both = [&api, &web];
    // (Host, target, "backend target-it-got" or "404")
    let cases = [
        ("api.example.com", "/v1/x", "api /v1/x"),
        // Case-insensitive, and any port when `host` names none.
        ("Api.Example.COM:3000", "/v1/x", "api /v1/x"),
        // The first location wins for its host even where the second would match.
        ("api.example.com", "/web/x", "api /web/x"),
        ("www.example.com", "/web/x", "web /x"),
        ("www.example.com", "/v1/x", "404"),
        ("api.example.com.evil", "/v1/x", "404"),
    ];
    for (host, target, want) in cases {
        let r = get_as(&g, host, target, "");
        let got = match r.status {
            404 if r.header("x-backend").is_none() => "404".to_owned(),
            _ => {
                let (name, sent) = answered(&r, &both);
                format!("{name} {sent}")
            }
        };
        assert_eq!(got, want, "{host} {target}");
    }
}

#[test]
fn pass_path_keeps_the_original_path_and_query() {
    let a = Backend::start("a");
    let dir = TempDir::new("config");
    let text = format!(
        "[[upstreams.api.servers]]\npath = \"{}\"\n\
         [[server.locations]]\npath = \"api/(.*)\"\nhttp_pass = \"api\"\npass_path = true\n",
        addr(&a)
    );
    let g = start(&write_config(&dir, &text), &[], 1);
    let r = get_as(&g, "lb.test", "/api/users/7?x=1&y=%2F", "");
    assert_eq!(
        answered(&r, &[&a]),
        ("a".into(), "/api/users/7?x=1&y=%2F".into())
    );
}

/// `-b` backends are the `default` upstream: a location may send requests there, and a file
/// without locations sends every request there unchanged.
#[test]
fn b_backends_are_the_default_upstream() {
    let flagged = Backend::start("flagged");
    let api = Backend::start("api");
    let dir = TempDir::new("config");
    let upstream = format!("[[upstreams.api.servers]]\npath = \"{}\"\n", addr(&api));
    let with_locations = format!(
        "{upstream}\
         [[server.locations]]\npath = \"api/(.*)\"\nhttp_pass = \"api\"\n\
         [[server.locations]]\npath = \"\"\nhttp_pass = \"default\"\npass_path = true\n"
    );
    let config = write_config(&dir, &with_locations);
    let g = start(&config, &["-b", &flagged.url()], 2);
    let both = [&flagged, &api];
    let r = get_as(&g, "lb.test", "/api/x", "");
    assert_eq!(answered(&r, &both), ("api".into(), "/x".into()));
    let r = get_as(&g, "lb.test", "/other?q", "");
    assert_eq!(answered(&r, &both), ("flagged".into(), "/other?q".into()));
    drop(g);

    // No locations: everything goes to `default`, as sent; `api` gets nothing.
    let config = write_config(&dir, &upstream);
    let g = start(&config, &["-b", &flagged.url()], 2);
    let api_before = api.requests();
    for target in ["/", "/api/x", "/a/b?c=d"] {
        let r = get_as(&g, "lb.test", target, "");
        assert_eq!(answered(&r, &both), ("flagged".into(), target.into()));
    }
    assert_eq!(api.requests(), api_before);
}

/// Forwarded fields reach a config server: `X-Real-IP` is the client's address (a client's
/// own is replaced), `X-Forwarded-Host` the Host it sent.
#[test]
fn x_real_ip_and_x_forwarded_host_reach_the_backend() {
    let a = Backend::start("a");
    let dir = TempDir::new("config");
    let text = format!(
        "[[upstreams.api.servers]]\npath = \"{}\"\n\
         [[server.locations]]\npath = \"api/(.*)\"\nhttp_pass = \"api\"\n",
        addr(&a)
    );
    let g = start(&write_config(&dir, &text), &[], 1);
    let r = get_as(
        &g,
        "shop.example:8443",
        "/api/headers",
        "X-Real-IP: 6.6.6.6\r\nX-Forwarded-Host: evil.example\r\n",
    );
    assert_eq!(r.status, 200);
    let got = a.received().pop().expect("recorded");
    assert_eq!(got.header_all("x-real-ip"), ["127.0.0.1"]);
    assert_eq!(got.header_all("x-forwarded-host"), ["shop.example:8443"]);
    assert_eq!(got.header_all("host"), ["shop.example:8443"]);
    assert_eq!(got.header_all("x-forwarded-for"), ["127.0.0.1"]);
}

// ---------------------------------------------------------------------------------------------
// Ports

/// A port that was free a moment ago.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local_addr").port()
}

/// Without `-p` the file's `[server] port` is where goaround listens; with `-p` (every other
/// test: the harness passes `-p 0` while the files say 80 or nothing) `-p` wins.
#[test]
fn the_files_port_applies_unless_p_is_given() {
    let a = Backend::start("a");
    let dir = TempDir::new("config");
    let port = free_port();
    let text = format!(
        "[server]\nport = {port}\n[[upstreams.default.servers]]\npath = \"{}\"\n",
        addr(&a)
    );
    let g = Goaround::builder()
        .arg("-config")
        .arg(write_config(&dir, &text).display().to_string())
        .without_default("p")
        .start();
    assert_eq!(g.addr().port(), port);
    assert!(g.wait_ready_backends(1, READY));
    assert_eq!(
        get_as(&g, "lb.test", "/", "").header("x-backend"),
        Some("a")
    );
}

// ---------------------------------------------------------------------------------------------
// The example in contrib/

fn contrib_example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/goaround.toml")
}

/// The example, with its servers pointed at fixture backends (loopback only: the shipped
/// addresses are not contacted), loads and routes as its comments say.
#[test]
fn contrib_example_routes_as_documented() {
    let text = std::fs::read_to_string(contrib_example()).expect("read contrib/goaround.toml");
    let names = ["api1", "api2", "static1", "static2"];
    let fixtures: Vec<Backend> = names.iter().map(|n| Backend::start(n)).collect();
    let mut text = text;
    for (i, b) in fixtures.iter().enumerate() {
        let shipped = format!("10.0.0.{}:8080", i + 1);
        assert!(text.contains(&shipped), "the example names {shipped}");
        text = text.replace(&shipped, &addr(b));
    }
    let dir = TempDir::new("config");
    let config = write_config(&dir, &text);
    // The api servers are up once their first /health check passed.
    let g = start(&config, &[], 4);
    let loaded = format!("config {}: 3 upstreams, 4 servers", config.display());
    assert!(g.wait_for_log(&loaded, READY), "{}", g.stderr());
    let (api, front) = fixtures.split_at(2);
    let api: Vec<&Backend> = api.iter().collect();
    let front: Vec<&Backend> = front.iter().collect();
    let r = get_as(&g, "www.example.com", "/api/v1/users?id=7", "");
    assert_eq!(answered(&r, &api).1, "/v1/users?id=7");
    let r = get_as(&g, "www.example.com", "/static/css/site.css", "");
    assert_eq!(answered(&r, &front).1, "/css/site.css");
    let r = get_as(&g, "admin.example.com", "/users?all", "");
    assert_eq!(answered(&r, &api).1, "/users?all");
    assert_eq!(get_as(&g, "www.example.com", "/users", "").status, 404);
}

// ---------------------------------------------------------------------------------------------
// Refused files

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs goaround with `-config FILE` (and `extra`), expects exit 2 and exactly one stderr
/// line `goaround: FILE...`; returns the line without the `goaround: ` prefix.
#[track_caller]
fn refused(file: &Path, extra: &[&str]) -> String {
    let file_arg = file.display().to_string();
    let mut args = vec![
        "-config",
        file_arg.as_str(),
        "-p",
        "0",
        "-prometheus-port",
        "0",
    ];
    args.extend_from_slice(extra);
    let out = run_cli(&args);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(EXIT_USAGE), "{args:?}: {err}");
    assert!(out.stdout.is_empty(), "{args:?}: stdout {:?}", out.stdout);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{args:?}: one line wanted: {err}");
    let message = lines[0]
        .strip_prefix("goaround: ")
        .unwrap_or_else(|| panic!("no `goaround: ` prefix: {err}"));
    assert!(
        message.starts_with(&file_arg),
        "the message names the file {file_arg}: {message}"
    );
    message[file_arg.len()..].to_owned()
}

#[test]
fn every_bad_file_is_refused_with_one_line_naming_file_and_thing() {
    let dir = TempDir::new("config");
    let server = "[[upstreams.api.servers]]\npath = \"127.0.0.1:9\"\n";
    // (file contents, the message after the file name)
    let cases: &[(String, &str)] = &[
        (
            "[upstreams.api\nbalancer = 1\n".into(),
            ":1:15: unclosed table, expected `]`",
        ),
        (
            format!("{server}[server]\nport = 80\nworkers = 4\n"),
            ":5:1: unknown field `workers`, expected `port` or `locations`",
        ),
        (
            format!("[upstreams.api]\nbalancer = \"fastest\"\n{server}"),
            ": upstream \"api\": unknown balancer \"fastest\" \
             (round_robin, random, least_conn or hash)",
        ),
        (
            format!("[upstreams.api]\nprovider = \"kube\"\n{server}"),
            ": upstream \"api\": unknown provider \"kube\" (only \"static\")",
        ),
        (
            format!("{server}[[server.locations]]\npath = \"api/(.+\"\nhttp_pass = \"api\"\n"),
            ": location 1 \"api/(.+\": invalid regex: unclosed group",
        ),
        (
            format!(
                "{server}[[server.locations]]\npath = \"a/\"\nhttp_pass = \"api\"\n\
                 [[server.locations]]\nlocation = \"b/\"\nupstream = \"front\"\n"
            ),
            ": location 2 \"b/\": no upstream \"front\"",
        ),
        (
            "[[upstreams.api.servers]]\npath = \"ftp://files.example\"\n".into(),
            ": upstream \"api\": server \"ftp://files.example\": \
             neither host[:port] nor an http(s) URL",
        ),
    ];
    for (text, want) in cases {
        let file = dir.write("bad.toml", text.as_bytes());
        assert_eq!(refused(&file, &[]), *want, "{text}");
    }
}

#[test]
fn a_missing_file_is_refused_naming_it() {
    let dir = TempDir::new("config");
    let missing = dir.join("nowhere.toml");
    assert_eq!(
        refused(&missing, &[]),
        ": cannot read: No such file or directory (os error 2)"
    );
}

/// `-b` fills `default`; a file with its own `[upstreams.default]` and `-b` is one list from
/// two places, refused rather than merged.
#[test]
fn b_together_with_the_files_own_default_is_refused() {
    let dir = TempDir::new("config");
    let file = dir.write(
        "default.toml",
        b"[[upstreams.default.servers]]\npath = \"127.0.0.1:9\"\n",
    );
    assert_eq!(
        refused(&file, &["-b", "http://127.0.0.1:10"]),
        ": upstream \"default\" is defined both here and by -b: give one or the other"
    );
}

/// The two flags that name a choice say which flag was wrong, with the usage hint.
#[test]
fn bad_balancer_and_log_format_flags_exit_2_naming_the_flag() {
    let cases = [
        (
            "-balancer",
            "goaround: invalid value \"nonsense\" for -balancer: \
             not a balancer (round_robin, random, least_conn or hash)",
        ),
        (
            "-access-log-format",
            "goaround: invalid value \"nonsense\" for -access-log-format: \
             not a log format (combined or json)",
        ),
    ];
    for (flag, want) in cases {
        let out = run_cli(&[flag, "nonsense", "-p", "0", "-prometheus-port", "0"]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(EXIT_USAGE), "{flag}: {err}");
        assert_eq!(
            err,
            format!("{want}\nrun 'goaround -h' for the list of flags\n"),
            "{flag}"
        );
    }
}

/// The example at the top of README.md's "Config file (-config)" loads and routes as its
/// comment says, with its two servers pointed at fixtures.
#[test]
fn readme_config_example_routes_as_its_comment_says() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("read README.md");
    let section = readme
        .split("\n## Config file (-config)\n")
        .nth(1)
        .expect("the section");
    let example = section
        .split("```toml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a toml block");
    let (one, two) = (Backend::start("one"), Backend::start("two"));
    let text = example
        .replace("10.0.0.1:8080", &addr(&one))
        .replace("10.0.0.2:8080", &addr(&two));
    let dir = TempDir::new("config");
    let g = start(&write_config(&dir, &text), &[], 2);
    let r = get_as(&g, "lb.test", "/api/v1/x?y", "");
    assert_eq!(answered(&r, &[&one, &two]).1, "/v1/x?y");
}
