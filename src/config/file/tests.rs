//! Tests of the `-config` file: what it accepts, its defaults, and one line per refusal.

use super::*;

const FILE: &str = "lb.toml";

fn ok(text: &str) -> FileConfig {
    parse(text, Path::new(FILE)).unwrap_or_else(|e| panic!("{text}\n=> {e}"))
}

fn error(text: &str) -> String {
    match parse(text, Path::new(FILE)) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e.to_string(),
    }
}

fn url(s: &str) -> BackendUrl {
    BackendUrl {
        base: s.to_string(),
    }
}

fn names(c: &FileConfig) -> Vec<&str> {
    c.upstreams.iter().map(|u| u.name.as_str()).collect()
}

/// The example of the module docs, every key given.
const FULL: &str = r#"
[upstreams.backend]
  balancer = "hash"
  provider = "static"
  hash_key = "header:X-User"
  health_check = "/health"
  handles = 32
  [[upstreams.backend.servers]]
    path = "10.0.0.1:8080"
    weight = 5
    max_fail = 3
    fail_timeout = 2
  [[upstreams.backend.servers]]
    path = "https://api.example.com"
    fail_timeout = "1.5s"
[server]
  port = 8081
  [[server.locations]]
    path = "api/(.+/?)"
    http_pass = "backend"
    host = "API.example.com"
    pass_path = true
  [[server.locations]]
    location = "static/.+"
    upstream = "default"
"#;

#[test]
fn every_key() {
    let c = ok(FULL);
    assert_eq!(c.path, PathBuf::from(FILE));
    assert_eq!(c.port, Some(8081));
    assert_eq!(names(&c), ["backend", "default"]);
    let b = &c.upstreams[0];
    assert_eq!(
        b.balancer,
        BalancerKind::Hash {
            key: HashKey::Header(HeaderName::from_static("x-user"))
        }
    );
    assert_eq!(b.health_check.as_deref(), Some("/health"));
    assert_eq!(b.handles, Some(32));
    assert!(!b.from_flags);
    assert_eq!(
        b.servers,
        [
            Server {
                url: url("http://10.0.0.1:8080"),
                weight: 5,
                max_fail: 3,
                fail_timeout: Duration::from_secs(2),
            },
            Server {
                url: url("https://api.example.com:443"),
                weight: 1,
                max_fail: 10,
                fail_timeout: Duration::from_millis(1500),
            },
        ]
    );
    let [api, stat] = &c.locations[..] else {
        panic!("two locations expected")
    };
    assert_eq!(api.pattern.as_str(), "api/(.+/?)");
    assert_eq!(api.upstream, 0);
    assert_eq!(api.host.as_deref(), Some("api.example.com"));
    assert!(api.pass_path);
    assert_eq!(stat.pattern.as_str(), "static/.+");
    assert_eq!(stat.upstream, c.default_upstream());
    assert_eq!(stat.host, None);
    assert!(!stat.pass_path);
}

/// Gourmet's README example, as written there (its `location`/`upstream` spellings).
#[test]
fn gourmet_readme_example() {
    let c = ok(r#"
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
"#);
    assert_eq!(c.port, Some(80));
    assert_eq!(names(&c), ["backend", "default", "front"]);
    let backend = &c.upstreams[0];
    assert_eq!(backend.balancer, BalancerKind::RoundRobin);
    let servers: Vec<_> = backend
        .servers
        .iter()
        .map(|s| (s.url.base.as_str(), s.weight))
        .collect();
    assert_eq!(
        servers,
        [
            ("http://api1.foo.bar:80", 5),
            ("http://api2.foo.bar:80", 1),
            ("http://api3.foo.bar:80", 1)
        ]
    );
    let patterns: Vec<_> = c
        .locations
        .iter()
        .map(|l| (l.pattern.as_str(), l.upstream))
        .collect();
    assert_eq!(patterns, [("api/(.+/?)", 0), ("static/.+/?", 2)]);
}

#[test]
fn defaults() {
    let c = ok("[[upstreams.a.servers]]\npath = \"h\"\n");
    assert_eq!(c.port, None);
    assert!(c.locations.is_empty());
    let a = &c.upstreams[0];
    assert_eq!(a.balancer, BalancerKind::RoundRobin);
    assert_eq!(a.health_check, None);
    assert_eq!(a.handles, None);
    assert_eq!(
        a.servers,
        [Server {
            url: url("http://h:80"),
            weight: DEFAULT_WEIGHT,
            max_fail: DEFAULT_MAX_FAIL,
            fail_timeout: DEFAULT_FAIL_TIMEOUT,
        }]
    );
    assert_eq!((DEFAULT_WEIGHT, DEFAULT_MAX_FAIL), (1, 10));
    assert_eq!(DEFAULT_FAIL_TIMEOUT, Duration::from_secs(1));
    // Hash without hash_key hashes the client's address.
    let c = ok("[upstreams.a]\nbalancer = \"hash\"\n[[upstreams.a.servers]]\npath = \"h\"\n");
    assert_eq!(
        c.upstreams[0].balancer,
        BalancerKind::Hash {
            key: HashKey::ClientIp
        }
    );
    // An empty file is valid: the `-b` backends get everything.
    let c = ok("");
    assert_eq!(names(&c), ["default"]);
    assert!(c.upstreams[0].from_flags);
}

fn one_server(line: &str) -> Server {
    let c = ok(&format!("[[upstreams.a.servers]]\npath = \"h\"\n{line}\n"));
    c.upstreams[0].servers[0].clone()
}

#[test]
fn server_values() {
    let timeouts = [
        ("fail_timeout = 3", Duration::from_secs(3)),
        ("fail_timeout = \"1.5s\"", Duration::from_millis(1500)),
        ("fail_timeout = \"250ms\"", Duration::from_millis(250)),
        ("fail_timeout = \"1m\"", Duration::from_secs(60)),
        ("fail_timeout = 0", DEFAULT_FAIL_TIMEOUT),
        ("fail_timeout = \"0s\"", DEFAULT_FAIL_TIMEOUT),
    ];
    for (line, want) in timeouts {
        assert_eq!(one_server(line).fail_timeout, want, "{line}");
    }
    let weights = [("weight = 0", 1), ("weight = 1", 1), ("weight = 100", 100)];
    for (line, want) in weights {
        assert_eq!(one_server(line).weight, want, "{line}");
    }
    assert_eq!(one_server("max_fail = 0").max_fail, 0);
    assert_eq!(one_server("max_fail = 1").max_fail, 1);
}

#[test]
fn server_paths() {
    let cases = [
        ("10.0.0.1:8080", "http://10.0.0.1:8080"),
        ("api1.foo.bar", "http://api1.foo.bar:80"),
        ("Api1.Foo.Bar:0081", "http://api1.foo.bar:81"),
        ("[::1]:9000", "http://[::1]:9000"),
        ("localhost/", "http://localhost:80"),
        ("http://a:1", "http://a:1"),
        ("HTTPS://a", "https://a:443"),
        ("https://a:8443/", "https://a:8443"),
    ];
    for (path, want) in cases {
        let c = ok(&format!("[[upstreams.a.servers]]\npath = \"{path}\"\n"));
        assert_eq!(c.upstreams[0].servers[0].url, url(want), "{path}");
    }
}

#[test]
fn hash_keys() {
    let cases = [
        ("client_ip", HashKey::ClientIp),
        ("uri", HashKey::Uri),
        (
            "header:X-User",
            HashKey::Header(HeaderName::from_static("x-user")),
        ),
        (
            "header:cookie",
            HashKey::Header(HeaderName::from_static("cookie")),
        ),
    ];
    for (key, want) in cases {
        let c = ok(&format!(
            "[upstreams.a]\nbalancer = \"hash\"\nhash_key = \"{key}\"\n\
             [[upstreams.a.servers]]\npath = \"h\"\n"
        ));
        assert_eq!(
            c.upstreams[0].balancer,
            BalancerKind::Hash { key: want },
            "{key}"
        );
    }
}

#[test]
fn balancers() {
    let cases = [
        ("round_robin", BalancerKind::RoundRobin),
        ("random", BalancerKind::Random),
        ("least_conn", BalancerKind::LeastConn),
    ];
    for (name, want) in cases {
        let c = ok(&format!(
            "[upstreams.a]\nbalancer = \"{name}\"\n[[upstreams.a.servers]]\npath = \"h\"\n"
        ));
        assert_eq!(c.upstreams[0].balancer, want, "{name}");
    }
}

#[test]
fn location_hosts() {
    let cases = [
        ("api.example.com", "api.example.com"),
        ("API.Example.COM:8080", "api.example.com:8080"),
        ("[::1]:3000", "[::1]:3000"),
        ("localhost", "localhost"),
    ];
    for (host, want) in cases {
        let c = ok(&format!(
            "[[server.locations]]\npath = \"\"\nhttp_pass = \"default\"\nhost = \"{host}\"\n"
        ));
        assert_eq!(c.locations[0].host.as_deref(), Some(want), "{host}");
    }
}

/// The regex features kept: Perl classes and case-insensitivity (module docs).
#[test]
fn regex_features() {
    let cases = [
        (r"api/(\\d+)", "h/api/12"),
        (r"\\w+/\\s?", "h/api/12"),
        ("(?i)API/(.*)", "h/api/12"),
        ("^[^/]+/v[0-9]/(.*)$", "h:80/v1/x"),
    ];
    for (pattern, haystack) in cases {
        let c = ok(&format!(
            "[[server.locations]]\npath = \"{pattern}\"\nhttp_pass = \"default\"\n"
        ));
        assert!(c.locations[0].pattern.is_match(haystack), "{pattern}");
    }
}

/// A config `default` replaces the placeholder for `-b`, and then `-b` is refused.
#[test]
fn default_upstream() {
    let c = ok("[[server.locations]]\npath = \"x\"\nhttp_pass = \"default\"\n");
    assert_eq!(names(&c), ["default"]);
    assert!(c.upstreams[c.default_upstream()].from_flags);
    assert_eq!(c.locations[0].upstream, c.default_upstream());
    assert!(c.check_backend_flags(&[url("http://b:1")]).is_ok());
    assert!(c.check_backend_flags(&[]).is_ok());

    let c = ok("[[upstreams.default.servers]]\npath = \"a\"\n\
         [[upstreams.zzz.servers]]\npath = \"z\"\n\
         [[upstreams.abc.servers]]\npath = \"c\"\n");
    assert_eq!(names(&c), ["abc", "default", "zzz"]);
    assert_eq!(c.default_upstream(), 1);
    assert_eq!(c.upstream("zzz"), Some(2));
    assert_eq!(c.upstream("nope"), None);
    let d = &c.upstreams[1];
    assert!(!d.from_flags);
    assert_eq!(d.servers[0].url, url("http://a:80"));
    assert!(c.check_backend_flags(&[]).is_ok());
    assert_eq!(
        c.check_backend_flags(&[url("http://b:1")])
            .unwrap_err()
            .to_string(),
        "lb.toml: upstream \"default\" is defined both here and by -b: give one or the other"
    );

    let f = FileConfig::flags_only();
    assert_eq!(names(&f), ["default"]);
    assert!(f.upstreams[f.default_upstream()].from_flags);
    assert!(f.locations.is_empty());
    assert!(f.check_backend_flags(&[url("http://b:1")]).is_ok());
}

#[test]
fn listen_port() {
    let none = ok("");
    let file = ok("[server]\nport = 9000\n");
    assert_eq!(none.listen_port(None), DEFAULT_FILE_PORT);
    assert_eq!(DEFAULT_FILE_PORT, 8080);
    assert_eq!(none.listen_port(Some(3000)), 3000);
    assert_eq!(file.listen_port(None), 9000);
    assert_eq!(file.listen_port(Some(3000)), 3000);
    assert_eq!(file.listen_port(Some(0)), 0);
}

#[test]
fn errors() {
    let cases: &[(&str, &str)] = &[
        // What the TOML reader refuses, at its line and column.
        ("[upstreams\n", "lb.toml:1:11: unclosed table, expected `]`"),
        (
            "[server]\nport = \n",
            "lb.toml:2:8: string values must be quoted, expected literal string",
        ),
        (
            "[upstreams.a]\nbalancr = \"random\"\n",
            "lb.toml:2:1: unknown field `balancr`, expected one of `balancer`, `provider`, \
             `hash_key`, `health_check`, `handles`, `servers`",
        ),
        (
            "[upstreams.a]\n[[upstreams.a.servers]]\npath = \"h\"\nweigth = 2\n",
            "lb.toml:4:1: unknown field `weigth`, expected one of `path`, `weight`, \
             `max_fail`, `fail_timeout`",
        ),
        (
            "[server]\nlisten = 80\n",
            "lb.toml:2:1: unknown field `listen`, expected `port` or `locations`",
        ),
        (
            "[servers]\n",
            "lb.toml:1:2: unknown field `servers`, expected `upstreams` or `server`",
        ),
        (
            "[[server.locations]]\npath = \"a\"\nhttp_pass = \"default\"\npas_path = true\n",
            "lb.toml:4:1: unknown field `pas_path`, expected one of `location`, `path`, \
             `http_pass`, `upstream`, `host`, `pass_path`",
        ),
        (
            "[[server.locations]]\nhttp_pass = \"default\"\n",
            "lb.toml:1:1: missing field `path`",
        ),
        (
            "[[server.locations]]\npath = \"a\"\nlocation = \"b\"\nhttp_pass = \"default\"\n",
            "lb.toml:1:1: duplicate field `path`",
        ),
        (
            "[server]\nport = 70000\n",
            "lb.toml:2:8: invalid value: integer `70000`, expected u16",
        ),
        (
            "[[upstreams.a.servers]]\npath = \"h\"\nweight = -1\n",
            "lb.toml:3:10: invalid value: integer `-1`, expected u32",
        ),
        (
            "[[upstreams.a.servers]]\npath = \"h\"\nfail_timeout = 1.5\n",
            "lb.toml:3:16: invalid type: floating point `1.5`, expected whole seconds or a \
             duration such as \"1.5s\"",
        ),
        (
            "[upstreams.a]\n[upstreams.a]\n",
            "lb.toml:2:12: duplicate key",
        ),
        (
            "[upstreams.a]\nbalancer = \"rr\"\n[[upstreams.a.servers]]\npath = \"h\"\n",
            "lb.toml: upstream \"a\": unknown balancer \"rr\" \
             (round_robin, random, least_conn or hash)",
        ),
        (
            "[upstreams.a]\nprovider = \"kube\"\n[[upstreams.a.servers]]\npath = \"h\"\n",
            "lb.toml: upstream \"a\": unknown provider \"kube\" (only \"static\")",
        ),
        (
            "[upstreams.a]\nbalancer = \"hash\"\nhash_key = \"ip\"\n",
            "lb.toml: upstream \"a\": unknown hash_key \"ip\" (client_ip, uri or header:NAME)",
        ),
        (
            "[upstreams.a]\nbalancer = \"hash\"\nhash_key = \"header:\"\n",
            "lb.toml: upstream \"a\": unknown hash_key \"header:\" (client_ip, uri or header:NAME)",
        ),
        (
            "[upstreams.a]\nbalancer = \"hash\"\nhash_key = \"header:a b\"\n",
            "lb.toml: upstream \"a\": unknown hash_key \"header:a b\" \
             (client_ip, uri or header:NAME)",
        ),
        (
            "[upstreams.a]\nhash_key = \"uri\"\n[[upstreams.a.servers]]\npath = \"h\"\n",
            "lb.toml: upstream \"a\": hash_key needs balancer = \"hash\"",
        ),
        (
            "[upstreams.a]\nhealth_check = \"health\"\n",
            "lb.toml: upstream \"a\": health_check \"health\" is not a path \
             (\"/\" then visible ASCII)",
        ),
        (
            "[upstreams.a]\nhealth_check = \"/a b\"\n",
            "lb.toml: upstream \"a\": health_check \"/a b\" is not a path \
             (\"/\" then visible ASCII)",
        ),
        (
            "[upstreams.a]\nhandles = 0\n",
            "lb.toml: upstream \"a\": handles = 0: must be between 1 and 4096",
        ),
        (
            "[upstreams.a]\nhandles = 4097\n",
            "lb.toml: upstream \"a\": handles = 4097: must be between 1 and 4096",
        ),
        ("[upstreams.a]\n", "lb.toml: upstream \"a\": no servers"),
        (
            "[upstreams.a]\nservers = []\n",
            "lb.toml: upstream \"a\": no servers",
        ),
        (
            "[[upstreams.\"\".servers]]\npath = \"h\"\n",
            "lb.toml: upstream \"\": name must not be empty",
        ),
        (
            "[[upstreams.a.servers]]\npath = \"a:80\"\n\
             [[upstreams.a.servers]]\npath = \"http://A/\"\n",
            "lb.toml: upstream \"a\": duplicate server http://a:80",
        ),
        (
            "[[upstreams.a.servers]]\npath = \"ftp://h\"\n",
            "lb.toml: upstream \"a\": server \"ftp://h\": neither host[:port] nor an http(s) URL",
        ),
        (
            "[[upstreams.a.servers]]\npath = \"\"\n",
            "lb.toml: upstream \"a\": server \"\": empty host",
        ),
        (
            "[[upstreams.a.servers]]\npath = \"a b\"\n",
            "lb.toml: upstream \"a\": server \"a b\": invalid host",
        ),
        (
            "[[upstreams.a.servers]]\npath = \"h:http\"\n",
            "lb.toml: upstream \"a\": server \"h:http\": invalid port",
        ),
        (
            "[[upstreams.a.servers]]\npath = \"h/api\"\n",
            "lb.toml: upstream \"a\": server \"h/api\": paths are not supported",
        ),
        (
            "[[upstreams.a.servers]]\npath = \"h\"\nfail_timeout = -1\n",
            "lb.toml: upstream \"a\": server \"h\": fail_timeout: negative duration -1",
        ),
        (
            "[[upstreams.a.servers]]\npath = \"h\"\nfail_timeout = \"5\"\n",
            "lb.toml: upstream \"a\": server \"h\": fail_timeout: missing unit in duration \"5\"",
        ),
        (
            "[[server.locations]]\npath = \"api/(\"\nhttp_pass = \"default\"\n",
            "lb.toml: location 1 \"api/(\": invalid regex: unclosed group",
        ),
        (
            "[[server.locations]]\npath = \"a\"\nhttp_pass = \"default\"\n\
             [[server.locations]]\npath = \"x{2,1}\"\nhttp_pass = \"default\"\n",
            "lb.toml: location 2 \"x{2,1}\": invalid regex: invalid repetition count range, \
             the start must be <= the end",
        ),
        (
            "[[server.locations]]\npath = \"\\\\p{Greek}\"\nhttp_pass = \"default\"\n",
            "lb.toml: location 1 \"\\\\p{Greek}\": invalid regex: Unicode property not found",
        ),
        (
            "[[server.locations]]\npath = \"api\"\nupstream = \"backnd\"\n",
            "lb.toml: location 1 \"api\": no upstream \"backnd\"",
        ),
        (
            "[[server.locations]]\npath = \"api\"\nhttp_pass = \"default\"\nhost = \"a/b\"\n",
            "lb.toml: location 1 \"api\": host \"a/b\" is not a host name or host:port",
        ),
        (
            "[[server.locations]]\npath = \"api\"\nhttp_pass = \"default\"\nhost = \"a:x\"\n",
            "lb.toml: location 1 \"api\": host \"a:x\" is not a host name or host:port",
        ),
        (
            "[[server.locations]]\npath = \"api\"\nhttp_pass = \"default\"\nhost = \"\"\n",
            "lb.toml: location 1 \"api\": host \"\" is not a host name or host:port",
        ),
    ];
    let wrong: Vec<_> = cases
        .iter()
        .map(|(text, want)| (text, error(text), want))
        .filter(|(_, got, want)| got != *want || got.contains('\n'))
        .collect();
    assert!(wrong.is_empty(), "(file, got, want): {wrong:#?}");
}

#[test]
fn columns_count_characters() {
    // "é" is two bytes, one column.
    assert_eq!(
        error("[upstreams.\"é\"]\nbalancer = \"x\"\nx = 1\n"),
        "lb.toml:3:1: unknown field `x`, expected one of `balancer`, `provider`, `hash_key`, \
         `health_check`, `handles`, `servers`"
    );
    assert_eq!(
        error("a = \"é\" x\n"),
        "lb.toml:1:9: unexpected key or value, expected newline, `#`"
    );
}

#[test]
fn load_reads_the_file() {
    let dir = std::env::temp_dir().join(format!("goaround-file-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("lb.toml");
    std::fs::write(&path, FULL).unwrap();
    let c = load(&path).unwrap();
    assert_eq!(c.path, path);
    assert_eq!(c.upstreams.len(), 2);

    std::fs::write(&path, "[upstreams.a]\nbalancer = \"rr\"\n").unwrap();
    let e = load(&path).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!("{}: upstream \"a\"", path.display())),
        "{e}"
    );

    std::fs::write(&path, b"\xff\xfe").unwrap();
    let e = load(&path).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!("{}: cannot read: ", path.display())),
        "{e}"
    );

    let missing = dir.join("missing.toml");
    assert_eq!(
        load(&missing).unwrap_err().to_string(),
        format!(
            "{}: cannot read: No such file or directory (os error 2)",
            missing.display()
        )
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
