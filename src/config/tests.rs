//! Tests of flag validation and defaults (`Config::from_raw`).

use super::*;
use crate::cli::{self, FlagKind, Parsed};

fn config(args: &[&str]) -> Result<Config, String> {
    match cli::parse_args(args.iter().copied()) {
        Ok(Parsed::Run(raw)) => Config::from_raw(&raw).map_err(|e| e.to_string()),
        other => panic!("{args:?} parsed to {other:?}"),
    }
}

fn ok(args: &[&str]) -> Config {
    config(args).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

fn url(s: &str) -> BackendUrl {
    BackendUrl {
        base: s.to_string(),
    }
}

#[test]
fn defaults() {
    let c = ok(&[]);
    assert_eq!(c.bind, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    assert_eq!(c.port, 3000);
    assert!(c.backends.is_empty());
    assert_eq!(c.max_conns_per_backend, 3);
    assert_eq!(c.metrics_port, 8080);
    assert_eq!(c.socket, PathBuf::from("/tmp/goaround.sock"));
    assert_eq!(c.health_interval, Duration::from_secs(10));
    assert_eq!(c.health_timeout, Duration::from_secs(5));
    assert_eq!(c.workers, default_workers());
    assert!(c.workers >= 1);
    assert_eq!(c.tunnel_idle_timeout, Duration::from_secs(3600));
    assert_eq!(c.connect_timeout, Duration::from_secs(5));
    assert_eq!(c.response_timeout, Duration::from_secs(30));
    assert_eq!(c.queue_timeout, Duration::from_secs(5));
    assert_eq!(c.idle_timeout, Duration::from_secs(60));
    assert_eq!(c.header_timeout, Duration::from_secs(10));
    assert_eq!(c.body_timeout, Duration::from_secs(30));
    assert_eq!(c.write_timeout, Duration::from_secs(30));
    assert_eq!(c.shutdown_timeout, Duration::from_secs(5));
    assert_eq!(c.max_client_conns, 10_000);
}

/// The defaults `--help` shows are the ones applied: giving each shown default explicitly
/// changes nothing, and every flag with a default here shows one.
#[test]
fn usage_shows_the_real_defaults() {
    let defaults = format!("{:?}", ok(&[]));
    for spec in cli::FLAGS {
        if spec.default.is_empty() {
            continue;
        }
        let arg = format!("-{}={}", spec.name, spec.default);
        let mut given = ok(&[&arg]);
        // Whether a port was given matters only to a -config file's port.
        given.explicit_ports = (false, false);
        assert_eq!(format!("{given:?}"), defaults, "{arg}");
    }
    let without: Vec<&str> = cli::FLAGS
        .iter()
        .filter(|f| matches!(f.kind, FlagKind::Value { .. }) && f.default.is_empty())
        .map(|f| f.name)
        .collect();
    // -workers defaults to the number of CPUs, which the help text says in words.
    assert_eq!(
        without,
        [
            "b",
            "workers",
            "cacert",
            "privkey",
            "backend-ca",
            "config",
            "access-log",
            "pidfile"
        ]
    );
}

#[test]
fn values() {
    let c = ok(&[
        "-p=80",
        "-bind",
        "::1",
        "-b",
        "http://127.0.0.1:9001",
        "-b=HTTPS://Example.COM/",
        "-n",
        "10",
        "--prometheus-port",
        "0",
        "-socket",
        "/run/lb.sock",
        "-health-interval=1m30s",
        "-health-timeout=1.5s",
        "-workers=1024",
        "-connect-timeout=100ms",
        "-response-timeout=2m",
        "-queue-timeout=250us",
        "-idle-timeout=1h",
        "-header-timeout=3s",
        "-body-timeout=4s",
        "-write-timeout=6s",
        "-shutdown-timeout=7s",
        "-max-conns=1",
        "-cacert=",
        "-privkey",
        "",
        "-cache=false",
    ]);
    assert_eq!(c.port, 80);
    assert_eq!(c.bind, "::1".parse::<IpAddr>().unwrap());
    assert_eq!(
        c.backends,
        [url("http://127.0.0.1:9001"), url("https://example.com:443")]
    );
    assert_eq!(c.max_conns_per_backend, 10);
    assert_eq!(c.metrics_port, 0);
    assert_eq!(c.socket, PathBuf::from("/run/lb.sock"));
    assert_eq!(c.health_interval, Duration::from_secs(90));
    assert_eq!(c.health_timeout, Duration::from_millis(1500));
    assert_eq!(c.workers, 1024);
    assert_eq!(c.connect_timeout, Duration::from_millis(100));
    assert_eq!(c.response_timeout, Duration::from_secs(120));
    assert_eq!(c.queue_timeout, Duration::from_micros(250));
    assert_eq!(c.idle_timeout, Duration::from_secs(3600));
    assert_eq!(c.header_timeout, Duration::from_secs(3));
    assert_eq!(c.body_timeout, Duration::from_secs(4));
    assert_eq!(c.write_timeout, Duration::from_secs(6));
    assert_eq!(c.shutdown_timeout, Duration::from_secs(7));
    assert_eq!(c.max_client_conns, 1);
}

#[test]
fn edge_values_accepted() {
    assert_eq!(ok(&["-p", "0"]).port, 0);
    assert_eq!(ok(&["-p", "65535"]).port, 65535);
    assert_eq!(ok(&["-p", "+80"]).port, 80);
    assert_eq!(
        ok(&["-bind", "127.0.0.1"]).bind,
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    );
    assert_eq!(ok(&["-n", "1"]).max_conns_per_backend, 1);
    assert_eq!(ok(&["-workers", "1"]).workers, 1);
    assert_eq!(
        ok(&["-health-interval", "1ns"]).health_interval,
        Duration::from_nanos(1)
    );
}

#[test]
fn errors() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["-p", "abc"],
            "invalid value \"abc\" for -p: not a port number",
        ),
        (
            &["-p", "65536"],
            "invalid value \"65536\" for -p: not a port number",
        ),
        (
            &["-p", "-1"],
            "invalid value \"-1\" for -p: not a port number",
        ),
        (&["-p="], "invalid value \"\" for -p: not a port number"),
        (
            &["-p", " 80"],
            "invalid value \" 80\" for -p: not a port number",
        ),
        (
            &["-prometheus-port", "x"],
            "invalid value \"x\" for -prometheus-port: not a port number",
        ),
        (
            &["-bind", "localhost"],
            "invalid value \"localhost\" for -bind: not an IP address",
        ),
        (
            &["-bind", "[::1]"],
            "invalid value \"[::1]\" for -bind: not an IP address",
        ),
        (&["-n", "0"], "-n must be at least 1"),
        (&["-n", "-3"], "-n must be at least 1"),
        (
            &["-n", "three"],
            "invalid value \"three\" for -n: not a whole number",
        ),
        (
            &["-n", "1.5"],
            "invalid value \"1.5\" for -n: not a whole number",
        ),
        (
            &["-n", "99999999999999999999"],
            "invalid value \"99999999999999999999\" for -n: value out of range",
        ),
        (&["-workers", "0"], "-workers must be at least 1"),
        (&["-workers", "1025"], "-workers must be at most 1024"),
        (&["-max-conns", "0"], "-max-conns must be at least 1"),
        (
            &["-socket="],
            "invalid value \"\" for -socket: must not be empty",
        ),
        (
            &["-health-interval", "10"],
            "invalid value \"10\" for -health-interval: missing unit in duration \"10\"",
        ),
        (
            &["-connect-timeout", "0"],
            "invalid value \"0\" for -connect-timeout: must be greater than zero",
        ),
        (
            &["-idle-timeout", "0s"],
            "invalid value \"0s\" for -idle-timeout: must be greater than zero",
        ),
        (
            &["-write-timeout", "-1s"],
            "invalid value \"-1s\" for -write-timeout: negative duration \"-1s\"",
        ),
        (
            &["-queue-timeout", "5x"],
            "invalid value \"5x\" for -queue-timeout: unknown unit \"x\" in duration \"5x\"",
        ),
        (
            &["-b", "localhost:9000"],
            "-b \"localhost:9000\": not an absolute http(s) URL",
        ),
        (
            &["-b", "http://a/x"],
            "-b \"http://a/x\": paths are not supported",
        ),
        (
            &["-b", "http://a:80", "-b", "HTTP://A/"],
            "duplicate backend: http://a:80",
        ),
        (&["-cacert", "ca.pem"], "-cacert needs -privkey too"),
        (&["-privkey", "key.pem"], "-privkey needs -cacert too"),
        (
            &["-cache-size", "10X"],
            "invalid value \"10X\" for -cache-size: invalid size \"10X\": unknown unit \"X\" (K, M or G)",
        ),
        (
            &["-cache-max-object", "0"],
            "invalid value \"0\" for -cache-max-object: must be greater than zero",
        ),
        (
            &["-cache-ttl", "0s"],
            "invalid value \"0s\" for -cache-ttl: must be greater than zero",
        ),
    ];
    for (args, want) in cases {
        assert_eq!(config(args).map(|_| ()), Err(want.to_string()), "{args:?}");
    }
}

#[test]
fn every_duration_flag_is_checked() {
    for spec in cli::FLAGS.iter().filter(|f| f.default.ends_with('s')) {
        let arg = format!("-{}=0s", spec.name);
        let want = format!(
            "invalid value \"0s\" for -{}: must be greater than zero",
            spec.name
        );
        assert_eq!(config(&[&arg]).map(|_| ()), Err(want));
    }
}

#[test]
fn tls_flags() {
    let c = ok(&[
        "-cacert",
        "c.pem",
        "-privkey",
        "k.pem",
        "-handshake-timeout",
        "2s",
    ]);
    let files = c.tls.expect("tls configured");
    assert_eq!(files.cert, PathBuf::from("c.pem"));
    assert_eq!(files.key, PathBuf::from("k.pem"));
    assert_eq!(c.handshake_timeout, Duration::from_secs(2));
    let d = ok(&["-cacert=", "-privkey="]);
    assert!(
        d.tls.is_none(),
        "empty values are GoAround's defaults: no TLS"
    );
    assert_eq!(d.handshake_timeout, DEFAULT_HANDSHAKE_TIMEOUT);
    assert_eq!(
        ok(&["-backend-ca", "ca.pem"]).backend_ca,
        Some(PathBuf::from("ca.pem"))
    );
}

#[test]
fn cache_flags() {
    assert!(ok(&[]).cache.is_none());
    assert!(ok(&["-cache=false", "-cache-size", "1G"]).cache.is_none());
    let c = ok(&["-cache"]).cache.expect("cache on");
    assert_eq!(c.max_bytes, crate::cache::DEFAULT_MAX_BYTES);
    assert_eq!(c.max_object, crate::cache::DEFAULT_MAX_OBJECT);
    assert_eq!(c.default_ttl, crate::cache::DEFAULT_TTL);
    let c = ok(&[
        "-cache",
        "-cache-size=8MB",
        "-cache-max-object=64K",
        "-cache-ttl=5s",
    ]);
    let c = c.cache.expect("cache on");
    assert_eq!(c.max_bytes, 8 << 20);
    assert_eq!(c.max_object, 64 << 10);
    assert_eq!(c.default_ttl, Duration::from_secs(5));
}

#[test]
fn max_fails_and_max_body() {
    let d = ok(&[]);
    assert_eq!(d.max_fails, DEFAULT_MAX_FAILS);
    assert_eq!(d.max_body, None);
    let c = ok(&["-max-fails", "0", "-max-body", "1M"]);
    assert_eq!(c.max_fails, 0);
    assert_eq!(c.max_body, Some(1 << 20));
    assert_eq!(ok(&["-max-body", "0"]).max_body, None);
}

#[test]
fn backend_url_host_and_port() {
    let cases = [
        ("http://127.0.0.1:9001", "127.0.0.1", 9001),
        ("https://Example.com", "example.com", 443),
        ("http://[::1]:8080/", "::1", 8080),
        ("http://localhost", "localhost", 80),
    ];
    for (url, host, port) in cases {
        let url = BackendUrl::parse(url).unwrap();
        assert_eq!((url.host(), url.port()), (host, port), "{url}");
    }
}

/// `-config`: the file's port unless `-p` was given, and the metrics listener moved off a
/// file port that is the metrics default (8080, Gourmet's default too) unless
/// `-prometheus-port` was given.
#[test]
fn load_file_port_and_metrics_port() {
    let dir = std::env::temp_dir().join(format!("goaround-load-file-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let at_8080 = write("8080.toml", "[server]\nport = 8080\n");
    let no_port = write("none.toml", "");
    let at_9000 = write("9000.toml", "[server]\nport = 9000\n");
    // (flags, listen port, metrics port)
    let cases: &[(Vec<&str>, u16, u16)] = &[
        (vec!["-config", &at_8080], 8080, 8081),
        (vec!["-config", &no_port], 8080, 8081),
        (vec!["-config", &at_9000], 9000, 8080),
        (vec!["-config", &at_8080, "-p", "3000"], 3000, 8080),
        (
            vec!["-config", &at_8080, "-prometheus-port", "8080"],
            8080,
            8080,
        ),
        (
            vec!["-config", &at_8080, "-prometheus-port", "9100"],
            8080,
            9100,
        ),
        (vec!["-config", &at_9000, "-p", "0"], 0, 8080),
        // With a file, any client port of 8080 moves the metrics; without one, nothing does.
        (vec!["-config", &at_9000, "-p", "8080"], 8080, 8081),
        (vec!["-p", "8080"], 8080, 8080),
    ];
    for (args, port, metrics) in cases {
        let mut c = ok(args);
        c.load_file().unwrap_or_else(|e| panic!("{args:?}: {e}"));
        assert_eq!((c.port, c.metrics_port), (*port, *metrics), "{args:?}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
