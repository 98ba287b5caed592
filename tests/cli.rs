//! The command line, against the real binary: help and version, every way a flag can be
//! refused (exit 2 with a message naming it), and the Go `flag` syntax variants that existing
//! GoAround scripts use, which must start a working server.
//!
//! Refusals run the binary with [`run_cli`], which fails the test if the binary keeps running
//! (a refused command line must never start a server). Accepted command lines start it through
//! the harness and send a request through it.

mod support;

use support::tempdir::TempDir;

use std::net::TcpListener;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use support::{get, run_cli, Backend, Goaround};

/// Every flag GoAround scripts may pass, plus goaround's own; `-h` must list each one.
const FLAGS: &[&str] = &[
    "p",
    "bind",
    "b",
    "n",
    "prometheus-port",
    "socket",
    "health-interval",
    "health-timeout",
    "workers",
    "connect-timeout",
    "response-timeout",
    "queue-timeout",
    "idle-timeout",
    "header-timeout",
    "body-timeout",
    "write-timeout",
    "shutdown-timeout",
    "max-conns",
    "max-fails",
    "max-body",
    "cacert",
    "privkey",
    "handshake-timeout",
    "backend-ca",
    "cache",
    "cache-size",
    "cache-max-object",
    "cache-ttl",
    "version",
    "h",
    "help",
];

const READY: Duration = Duration::from_secs(5);

/// Exit status of a refused command line (Go's `flag` package uses 2).
const EXIT_USAGE: i32 = 2;

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether `text` mentions `-flag` as a whole word (so `-p` is not found in `-prometheus-port`).
fn names_flag(text: &str, flag: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '-';
    let needle = format!("-{flag}");
    text.match_indices(&needle).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + needle.len()..].chars().next();
        !before.is_some_and(|c| c.is_ascii_alphanumeric()) && !after.is_some_and(word)
    })
}

/// Runs `args` and checks the binary refused them with exit 2 and a message naming `-flag`.
#[track_caller]
fn assert_refused(args: &[&str], flag: &str) -> String {
    let out = run_cli(args);
    let err = stderr(&out);
    assert_eq!(
        out.status.code(),
        Some(EXIT_USAGE),
        "{args:?}: {}\nstderr: {err}",
        out.status
    );
    assert!(
        names_flag(&err, flag),
        "{args:?}: stderr does not name -{flag}: {err}"
    );
    err
}

/// Starts goaround with `args` (the harness adds what it lacks) and checks it serves.
#[track_caller]
fn assert_serves(args: &[String], backend: &Backend) {
    let g = Goaround::builder().args(args).start();
    assert!(
        g.wait_ready_backends(1, READY),
        "{args:?}: backend never up"
    );
    let r = get(g.addr(), "/");
    assert_eq!(r.status, 200, "{args:?}: {r:?}");
    assert_eq!(r.header("x-backend"), Some(backend.name()), "{args:?}");
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

// ---------------------------------------------------------------------------------------------
// Help and version

#[test]
fn help_lists_every_flag_and_exits_0() {
    for arg in ["-h", "-help", "--help", "--h"] {
        let out = run_cli(&[arg]);
        assert_eq!(out.status.code(), Some(0), "{arg}: {}", stderr(&out));
        let usage = stdout(&out);
        for flag in FLAGS {
            let listed = usage
                .lines()
                .any(|l| l.trim_start().split(' ').next() == Some(&format!("-{flag}")));
            assert!(listed, "{arg}: -{flag} not listed in:\n{usage}");
        }
    }
}

#[test]
fn help_wins_over_whatever_follows() {
    let out = run_cli(&["-p", "1", "-h", "-nonsense", "extra"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("-health-interval"));
}

#[test]
fn version_prints_the_version() {
    let want = format!("goaround {}\n", env!("CARGO_PKG_VERSION"));
    for args in [&["-version"][..], &["--version"], &["-version=true"]] {
        let out = run_cli(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        assert_eq!(stdout(&out), want, "{args:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Refused command lines

#[test]
fn unknown_flag_exits_2_naming_it() {
    assert_refused(&["-nonsense"], "nonsense");
    assert_refused(&["--nonsense=1"], "nonsense");
    assert_refused(&["-P", "80"], "P");
    assert_refused(&["-port", "80"], "port");
}

#[test]
fn bad_values_exit_2_naming_the_flag() {
    let cases: &[(&[&str], &str)] = &[
        (&["-p", "abc"], "p"),
        (&["-p", "70000"], "p"),
        (&["-p", "-1"], "p"),
        (&["-p="], "p"),
        (&["-n", "0"], "n"),
        (&["-n", "three"], "n"),
        (&["-b", "localhost:9000"], "b"),
        (&["-b", "ftp://x"], "b"),
        (&["-b", "http://a:1/path"], "b"),
        (&["-b", "http://a:0"], "b"),
        (&["-health-interval", "10"], "health-interval"),
        (&["-health-interval", "0"], "health-interval"),
        (&["-health-timeout", "5x"], "health-timeout"),
        (&["-shutdown-timeout", "-1s"], "shutdown-timeout"),
        (&["-bind", "localhost"], "bind"),
        (&["-prometheus-port", "65536"], "prometheus-port"),
        (&["-workers", "0"], "workers"),
        (&["-workers", "100000"], "workers"),
        (&["-socket", ""], "socket"),
        (&["-max-fails", "-1"], "max-fails"),
        (&["-max-fails", "three"], "max-fails"),
        (&["-max-body", "10X"], "max-body"),
        (&["-max-body", "M"], "max-body"),
        (&["-cache=maybe"], "cache"),
    ];
    for (args, flag) in cases {
        assert_refused(args, flag);
    }
}

#[test]
fn flag_without_its_value_exits_2_naming_it() {
    assert_refused(&["-p"], "p");
    assert_refused(&["-b"], "b");
    assert_refused(&["-p", "0", "--health-interval"], "health-interval");
}

#[test]
fn duplicate_backends_exit_2() {
    let out = run_cli(&["-b", "http://a:1", "-b", "HTTP://A:1/"]);
    assert_eq!(out.status.code(), Some(EXIT_USAGE), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("duplicate backend"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn bad_cache_sizes_exit_2_naming_the_flag() {
    let cases: &[(&[&str], &str)] = &[
        (&["-cache", "-cache-size", "lots"], "cache-size"),
        (&["-cache-max-object=0"], "cache-max-object"),
        (&["-cache", "-cache-ttl", "10"], "cache-ttl"),
    ];
    for (args, flag) in cases {
        assert_refused(args, flag);
    }
}

#[test]
fn tls_flags_go_together_and_files_must_be_readable() {
    let err = assert_refused(&["-cacert", "cert.pem"], "cacert");
    assert!(err.contains("-cacert needs -privkey too"), "{err}");
    let err = assert_refused(&["-privkey", "key.pem"], "privkey");
    assert!(err.contains("-privkey needs -cacert too"), "{err}");
    let missing = [
        "-cacert=/nonexistent/cert.pem",
        "-privkey=/nonexistent/key.pem",
    ];
    let err = assert_refused(&missing, "cacert");
    assert!(
        err.contains("/nonexistent/cert.pem") && err.contains("cannot read"),
        "{err}"
    );
}

#[test]
fn positional_argument_exits_2() {
    let dir = TempDir::new("cli");
    let socket = dir.join("goaround.sock").display().to_string();
    let base = ["-p", "0", "-prometheus-port", "0", "-socket", &socket];
    for extra in [&["serve"][..], &["-", "-p", "1"], &["--", "-p", "1"]] {
        let args: Vec<&str> = base.iter().chain(extra).copied().collect();
        let out = run_cli(&args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(EXIT_USAGE), "{args:?}: {err}");
        assert!(err.contains("unexpected argument"), "{args:?}: {err}");
    }
    // "-cache true": the boolean does not take "true", which is then a positional argument.
    let out = run_cli(&["-cache", "true"]);
    assert_eq!(out.status.code(), Some(EXIT_USAGE), "{}", stderr(&out));
    assert!(stderr(&out).contains("unexpected argument: true"));
    assert!(dir.path().read_dir().expect("temp dir").next().is_none());
}

#[test]
fn port_in_use_exits_2_naming_the_address() {
    let dir = TempDir::new("cli");
    let socket = dir.join("goaround.sock").display().to_string();
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("local addr").port().to_string();
    let address = format!("127.0.0.1:{port}");

    let proxy = ["-p", &port, "-prometheus-port", "0"];
    let metrics = ["-p", "0", "-prometheus-port", &port];
    for ports in [proxy, metrics] {
        let mut args = vec!["-bind", "127.0.0.1", "-socket", &socket];
        args.extend(ports);
        let out = run_cli(&args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(EXIT_USAGE), "{args:?}: {err}");
        assert!(
            err.contains(&address),
            "{args:?}: stderr does not name {address}: {err}"
        );
    }
    // Nothing left behind for the next start.
    assert!(
        !Path::new(&socket).exists(),
        "socket file left after a failed start"
    );
}

// ---------------------------------------------------------------------------------------------
// Accepted command lines

#[test]
fn cache_flag_is_accepted_in_every_boolean_form() {
    let backend = Backend::start("a");
    for cache in [
        "-cache=false",
        "--cache=0",
        "-cache=F",
        "-cache",
        "--cache=true",
    ] {
        assert_serves(&strings(&[cache, "-b", &backend.url()]), &backend);
    }
}

#[test]
fn go_syntax_variants_start_the_server() {
    let backend = Backend::start("a");
    let url = backend.url();
    let b_eq = format!("-b={url}");
    let dash_dash_b_eq = format!("--b={url}");
    let variants: Vec<Vec<&str>> = vec![
        vec!["--p=0", "--b", &url],
        vec!["-p=0", &b_eq],
        vec!["-p", "0", &dash_dash_b_eq],
        vec!["--p", "0", "-b", &url, "--n=2", "-workers", "4"],
        vec!["-b", &url, "-max-fails=0", "--max-body", "10M"],
        // A bare boolean never takes the next argument: "-p" stays a flag.
        vec!["-cache", "-p", "0", "-b", &url],
        // The same flag with a value later: the last one wins.
        vec!["-cache", "-p", "0", "-cache=false", "-b", &url],
        vec![
            "--bind=127.0.0.1",
            "--prometheus-port=0",
            "--health-interval=100ms",
            "--health-timeout",
            "1s",
            &b_eq,
        ],
    ];
    for args in variants {
        assert_serves(&strings(&args), &backend);
    }
}
