//! SIGHUP re-reads the `-config` file, against the real binary: a good file replaces the
//! locations and upstreams at once (a new location works, the servers of an upstream that is
//! gone get no new request, a server present in both keeps serving over the connection it
//! had), and a bad one is logged and changes nothing.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use support::tempdir::TempDir;
use support::{get_request, Backend, Conn, Goaround, Response};

const READY: Duration = Duration::from_secs(10);
const SIGHUP: i32 = 1;

/// A config of `upstreams` (`(name, server address)`) and `locations` (`(prefix, upstream)`,
/// each routing `/PREFIX/rest` as `/rest`), in that order.
fn config(upstreams: &[(&str, &Backend)], locations: &[(&str, &str)]) -> String {
    let mut text = String::new();
    for (name, server) in upstreams {
        text.push_str(&format!(
            "[[upstreams.{name}.servers]]\npath = \"{}\"\n",
            server.addr()
        ));
    }
    for (prefix, upstream) in locations {
        text.push_str(&format!(
            "[[server.locations]]\npath = \"^[^/]*/{prefix}/(.*)\"\nhttp_pass = \"{upstream}\"\n"
        ));
    }
    text
}

/// Starts goaround on `path` with one event loop, so that every request of a test shares
/// one pool of backend connections.
fn start(path: &Path, up: usize) -> Goaround {
    let g = Goaround::builder()
        .args(&["-config", &path.display().to_string(), "-workers", "1"])
        .start();
    assert!(g.wait_ready_backends(up, READY), "{up} backends not up");
    g
}

fn ask(conn: &mut Conn, target: &str) -> Response {
    conn.send(get_request(target).as_bytes());
    conn.read_response()
}

fn served_by(r: &Response) -> Option<&str> {
    r.header("x-backend")
}

/// Sends SIGHUP and waits for the log line that starts with `line`.
#[track_caller]
fn reload(g: &Goaround, line: &str) {
    g.signal(SIGHUP);
    assert!(
        g.wait_for_log(line, READY),
        "no {line:?} in:\n{}",
        g.stderr()
    );
}

struct Fixtures {
    old: Backend,
    both: Backend,
    new: Backend,
    dir: TempDir,
    path: PathBuf,
}

/// `old` and `both` upstreams behind `/old/` and `/both/`; `new` is not in the file yet.
fn fixtures() -> Fixtures {
    let (old, both, new) = (
        Backend::start("old"),
        Backend::start("both"),
        Backend::start("new"),
    );
    let dir = TempDir::new("reload");
    let text = config(
        &[("old", &old), ("both", &both)],
        &[("old", "old"), ("both", "both")],
    );
    let path = dir.write("goaround.toml", text.as_bytes());
    Fixtures {
        old,
        both,
        new,
        dir,
        path,
    }
}

#[test]
fn sighup_with_a_good_file_replaces_locations_and_upstreams_at_once() {
    let f = fixtures();
    let g = start(&f.path, 2);
    let mut conn = Conn::open(g.addr());
    assert_eq!(served_by(&ask(&mut conn, "/old/")), Some("old"));
    assert_eq!(served_by(&ask(&mut conn, "/both/")), Some("both"));
    assert_eq!(ask(&mut conn, "/new/").status, 404);
    let both_connections = f.both.connections();
    let old_requests = f.old.requests();

    // `old` is gone (its prefix now leads to `new`), `new` is added, `both` stays. The port
    // is read at start only: a new one changes nothing until a restart.
    let text = "[server]\nport = 1\n".to_owned()
        + &config(
            &[("new", &f.new), ("both", &f.both)],
            &[("new", "new"), ("old", "new"), ("both", "both")],
        );
    f.dir.write("goaround.toml", text.as_bytes());
    // 3 upstreams: new, both, and the -b placeholder `default`.
    reload(
        &g,
        &format!(
            "SIGHUP: reloaded {}: 3 upstreams, 2 servers (1 added, 1 removed)",
            f.path.display()
        ),
    );
    for target in ["/new/", "/old/"] {
        let r = ask(&mut conn, target);
        assert_eq!((r.status, served_by(&r)), (200, Some("new")), "{target}");
    }
    assert_eq!(
        f.new.received()[1].target,
        "/",
        "the new location's rewrite"
    );
    assert_eq!(
        f.old.requests(),
        old_requests,
        "a removed server got a request"
    );
    // The kept server kept its idle connection from before the reload.
    let r = ask(&mut conn, "/both/");
    assert_eq!(served_by(&r), Some("both"));
    assert_eq!(f.both.connections(), both_connections, "a new connection");
    assert_eq!(f.both.requests(), 2);
}

#[test]
fn sighup_with_a_bad_file_is_logged_and_changes_nothing() {
    let f = fixtures();
    let g = start(&f.path, 2);
    let path = f.path.display().to_string();
    let bad_files = [
        (
            "[upstreams.new\n".to_owned(),
            format!("{path}:1:15: unclosed table"),
        ),
        (
            config(&[("new", &f.new)], &[("new", "nowhere")]),
            format!("{path}: location 1 \"^[^/]*/new/(.*)\": no upstream \"nowhere\""),
        ),
    ];
    for (text, why) in bad_files {
        f.dir.write("goaround.toml", text.as_bytes());
        reload(
            &g,
            &format!("SIGHUP: keeping the current configuration: {why}"),
        );
        let mut conn = Conn::open(g.addr());
        assert_eq!(served_by(&ask(&mut conn, "/old/")), Some("old"));
        assert_eq!(served_by(&ask(&mut conn, "/both/")), Some("both"));
        assert_eq!(ask(&mut conn, "/new/").status, 404);
    }
    assert_eq!(f.new.requests(), 0);
}

/// The `-b` rule holds on reload too: a file that now defines `[upstreams.default]` while
/// `-b` was given is refused, and the `-b` backends keep serving.
#[test]
fn sighup_refuses_a_file_whose_default_clashes_with_b() {
    let f = fixtures();
    // Everything that is not /old/ or /both/ goes to `default`, the -b backends.
    let mut text = std::fs::read_to_string(&f.path).expect("read the config");
    text.push_str("[[server.locations]]\npath = \"\"\nhttp_pass = \"default\"\npass_path = true\n");
    f.dir.write("goaround.toml", text.as_bytes());
    let g = Goaround::builder()
        .args(&["-config", &f.path.display().to_string(), "-b", &f.new.url()])
        .start();
    assert!(g.wait_ready_backends(3, READY));
    let text = config(&[("default", &f.both)], &[]);
    f.dir.write("goaround.toml", text.as_bytes());
    reload(
        &g,
        &format!(
            "SIGHUP: keeping the current configuration: {}: upstream \"default\" is defined \
             both here and by -b: give one or the other",
            f.path.display()
        ),
    );
    let mut conn = Conn::open(g.addr());
    assert_eq!(served_by(&ask(&mut conn, "/old/")), Some("old"));
    assert_eq!(served_by(&ask(&mut conn, "/")), Some("new"));
}

/// Regression: the reload log's "N added" counted only servers that need a health thread,
/// so servers added to an upstream without `health_check` (the usual config upstream) were
/// logged as "0 added".
#[test]
fn sighup_log_counts_servers_added_to_upstreams_without_health_check() {
    let f = fixtures();
    let g = start(&f.path, 2);
    let text = config(
        &[("old", &f.old), ("old", &f.new), ("both", &f.both)],
        &[("old", "old"), ("both", "both")],
    );
    f.dir.write("goaround.toml", text.as_bytes());
    reload(
        &g,
        &format!(
            "SIGHUP: reloaded {}: 3 upstreams, 3 servers (1 added, 0 removed)",
            f.path.display()
        ),
    );
}

/// A reload sets every upstream to what the file says: servers set through the control
/// socket since are replaced by the file's again, and `default` gets the `-b` list back.
#[test]
fn sighup_undoes_control_socket_changes() {
    let f = fixtures();
    let extra = Backend::start("extra");
    // Everything that is not /old/ or /both/ goes to `default`, the -b backends.
    let mut text = std::fs::read_to_string(&f.path).expect("read the config");
    text.push_str("[[server.locations]]\npath = \"\"\nhttp_pass = \"default\"\npass_path = true\n");
    f.dir.write("goaround.toml", text.as_bytes());
    let g = Goaround::builder()
        .args(&["-config", &f.path.display().to_string(), "-b", &extra.url()])
        .start();
    assert!(g.wait_ready_backends(3, READY));
    let socket = g.socket_path();
    let line = format!("upstream both {}", f.new.url());
    assert_eq!(support::control(socket, &line), "ok: 1 backends\n");
    assert_eq!(support::control(socket, &f.new.url()), "ok: 1 backends\n");
    let mut conn = Conn::open(g.addr());
    assert_eq!(served_by(&ask(&mut conn, "/both/")), Some("new"));
    assert!(support::wait_until(READY, || served_by(&ask(
        &mut conn, "/"
    )) == Some("new")));
    reload(&g, &format!("SIGHUP: reloaded {}", f.path.display()));
    assert_eq!(served_by(&ask(&mut conn, "/both/")), Some("both"));
    assert!(g.wait_ready_backends(3, READY));
    assert_eq!(served_by(&ask(&mut conn, "/")), Some("extra"));
}
