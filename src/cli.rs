//! Go-compatible command-line flags.
//!
//! goaround replaces a Go program, so existing scripts call it with the syntax of Go's `flag`
//! package, and this module accepts exactly that syntax. It is the raw layer: it recognises
//! flags and keeps every value as the string given, and leaves checking values and building
//! the real [`Config`](crate::config::Config) to [`crate::config`]. It does no I/O; `main`
//! prints [`usage`] or a [`CliError`].
//!
//! `FLAGS` is the only place a flag is declared: the parser and [`usage`] both read it.
//!
//! Each argument, left to right (Go's `FlagSet.parseOne`):
//! ```text
//! "--"                 stop; the arguments after it are positional
//! "-", "x", ""         stop; this argument and the ones after it are positional
//! "---x", "-=x"        error: bad flag syntax
//! "-name", "--name"    name = text up to the first '=' (the value is the text after it)
//!   undefined name     error (except -h / -help: Help, at once)
//!   boolean flag       "=value" parsed like Go's strconv.ParseBool, else true;
//!                      never takes the next argument
//!   value flag         "=value", else the next argument, even if it starts with '-'
//! ```
//! goaround takes no positional arguments, so any left over is an error.

use std::fmt;

/// What the command line asks for.
// Built once per process and moved straight into `Config::from_raw`, so the size of `Run`
// costs nothing, and a `Box` would only make callers and tests clumsier.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// Run the load balancer with these options.
    Run(RawOptions),
    /// `-h`, `-help` or `--help`: print [`usage`] and exit successfully.
    Help,
    /// `-version`: print the version and exit successfully.
    Version,
}

/// Flag values exactly as given; `None` (or empty for `-b`) when the flag was absent.
/// A repeated flag keeps its last value, except `-b`, which keeps every value in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawOptions {
    /// `-p`
    pub port: Option<String>,
    /// `-bind`
    pub bind: Option<String>,
    /// `-b`, every occurrence in order.
    pub backends: Vec<String>,
    /// `-n`
    pub conns_per_backend: Option<String>,
    /// `-prometheus-port`
    pub prometheus_port: Option<String>,
    /// `-socket`
    pub socket: Option<String>,
    /// `-health-interval`
    pub health_interval: Option<String>,
    /// `-health-timeout`
    pub health_timeout: Option<String>,
    /// `-workers`
    pub workers: Option<String>,
    /// `-connect-timeout`
    pub connect_timeout: Option<String>,
    /// `-response-timeout`
    pub response_timeout: Option<String>,
    /// `-queue-timeout`
    pub queue_timeout: Option<String>,
    /// `-idle-timeout`
    pub idle_timeout: Option<String>,
    /// `-header-timeout`
    pub header_timeout: Option<String>,
    /// `-body-timeout`
    pub body_timeout: Option<String>,
    /// `-write-timeout`
    pub write_timeout: Option<String>,
    /// `-shutdown-timeout`
    pub shutdown_timeout: Option<String>,
    /// `-max-conns`
    pub max_conns: Option<String>,
    /// `-max-fails`
    pub max_fails: Option<String>,
    /// `-max-body`
    pub max_body: Option<String>,
    /// `-handshake-timeout`
    pub handshake_timeout: Option<String>,
    /// `-tunnel-idle-timeout`
    pub tunnel_idle_timeout: Option<String>,
    /// `-backend-ca`
    pub backend_ca: Option<String>,
    /// `-cache-size`
    pub cache_size: Option<String>,
    /// `-cache-max-object`
    pub cache_max_object: Option<String>,
    /// `-cache-ttl`
    pub cache_ttl: Option<String>,
    /// `-config`
    pub config: Option<String>,
    /// `-balancer`
    pub balancer: Option<String>,
    /// `-access-log`
    pub access_log: Option<String>,
    /// `-access-log-format`
    pub access_log_format: Option<String>,
    /// `-pidfile`
    pub pidfile: Option<String>,
    /// `-cacert`
    pub cacert: Option<String>,
    /// `-privkey`
    pub privkey: Option<String>,
    /// `-cache`
    pub cache: Option<bool>,
}

/// A command line that does not follow the flag syntax; `main` prints it with the usage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError(Reason);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Reason {
    /// The whole argument, e.g. `---x` or `-=x`.
    BadSyntax(String),
    /// The flag name without dashes.
    Undefined(String),
    NeedsArgument(&'static str),
    InvalidBool {
        flag: &'static str,
        value: String,
    },
    Unexpected(String),
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Same wording as Go's flag package, so messages match GoAround's.
        match &self.0 {
            Reason::BadSyntax(arg) => write!(f, "bad flag syntax: {arg}"),
            Reason::Undefined(name) => write!(f, "flag provided but not defined: -{name}"),
            Reason::NeedsArgument(name) => write!(f, "flag needs an argument: -{name}"),
            Reason::InvalidBool { flag, value } => {
                write!(f, "invalid boolean value {value:?} for -{flag}")
            }
            Reason::Unexpected(arg) => write!(f, "unexpected argument: {arg}"),
        }
    }
}

impl std::error::Error for CliError {}

/// One flag: how it is parsed and how `usage` shows it.
pub(crate) struct FlagSpec {
    /// Without the leading dash.
    pub(crate) name: &'static str,
    pub(crate) kind: FlagKind,
    /// The default as `usage` shows it; empty when there is none to show. `config` owns the
    /// real defaults, and a test there checks that these texts parse to them.
    pub(crate) default: &'static str,
    pub(crate) help: &'static str,
}

pub(crate) enum FlagKind {
    /// Takes a value; `arg` names it in the usage text.
    Value {
        arg: &'static str,
        set: fn(&mut RawOptions, String),
    },
    Bool(fn(&mut RawOptions, bool)),
    /// A boolean that makes the result [`Parsed::Version`] instead of options.
    Version,
    /// Ends parsing at once with [`Parsed::Help`], whatever follows (as Go does).
    Help,
}

/// Every flag goaround accepts, in the order `usage` lists them.
pub(crate) const FLAGS: &[FlagSpec] = &[
    FlagSpec {
        name: "p",
        kind: FlagKind::Value {
            arg: "port",
            set: |o, v| o.port = Some(v),
        },
        default: "3000",
        help: "port for client connections; 0 = any free port",
    },
    FlagSpec {
        name: "bind",
        kind: FlagKind::Value {
            arg: "ip",
            set: |o, v| o.bind = Some(v),
        },
        default: "0.0.0.0",
        help: "IP address to listen on",
    },
    FlagSpec {
        name: "b",
        kind: FlagKind::Value {
            arg: "url",
            set: |o, v| o.backends.push(v),
        },
        default: "",
        help: "backend http(s)://host[:port]; repeat for more backends",
    },
    FlagSpec {
        name: "n",
        kind: FlagKind::Value {
            arg: "int",
            set: |o, v| o.conns_per_backend = Some(v),
        },
        default: "3",
        help: "concurrent requests per backend",
    },
    FlagSpec {
        name: "prometheus-port",
        kind: FlagKind::Value {
            arg: "port",
            set: |o, v| o.prometheus_port = Some(v),
        },
        default: "8080",
        help: "port for /metrics and /status; 0 = any free port",
    },
    FlagSpec {
        name: "socket",
        kind: FlagKind::Value {
            arg: "path",
            set: |o, v| o.socket = Some(v),
        },
        default: "/tmp/goaround.sock",
        help: "control socket: write a comma-separated URL list to replace the backends",
    },
    FlagSpec {
        name: "health-interval",
        kind: FlagKind::Value {
            arg: "duration",
            set: |o, v| o.health_interval = Some(v),
        },
        default: "10s",
        help: "time between health checks of a backend",
    },
    FlagSpec {
        name: "health-timeout",
        kind: FlagKind::Value {
            arg: "duration",
            set: |o, v| o.health_timeout = Some(v),
        },
        default: "5s",
        help: "time limit of one health check",
    },
    FlagSpec {
        name: "workers",
        kind: FlagKind::Value {
            arg: "int",
            set: |o, v| o.workers = Some(v),
        },
        default: "",
        help: "event loops serving connections (default: one per CPU; at most 1024)",
    },
    FlagSpec {
        name: "connect-timeout",
        kind: FlagKind::Value {
            arg: "duration",
            set: |o, v| o.connect_timeout = Some(v),
        },
        default: "5s",
        help: "time limit for connecting to a backend",
    },
    FlagSpec {
        name: "response-timeout",
        kind: FlagKind::Value {
            arg: "duration",
            set: |o, v| o.response_timeout = Some(v),
        },
        default: "30s",
        help: "time limit from request sent to response head received",
    },
    FlagSpec {
        name: "queue-timeout",
        kind: FlagKind::Value {
            arg: "duration",
            set: |o, v| o.queue_timeout = Some(v),
        },
        default: "5s",
        help: "longest wait for a free backend connection before answering 503",
    },
    FlagSpec {
        name: "idle-timeout",
        kind: FlagKind::Value {
            arg: "duration",
            set: |o, v| o.idle_timeout = Some(v),
        },
        default: "60s",
        help: "close a keep-alive client connection idle this long",
    },
    FlagSpec {
        name: "header-timeout",
        kind: FlagKind::Value {
            arg: "duration",
            set: |o, v| o.header_timeout = Some(v),
        },
        default: "10s",
        help: "time limit from the first byte of a request head to its end",
    },
    FlagSpec {
        name: "body-timeout",
        kind: FlagKind::Value {
            arg: "duration",
            set: |o, v| o.body_timeout = Some(v),
        },
        default: "30s",
        help: "longest wait for the next bytes of a request body",
    },
    FlagSpec {
        name: "write-timeout",
        kind: FlagKind::Value {
            arg: "duration",
            set: |o, v| o.write_timeout = Some(v),
        },
        default: "30s",
        help: "longest wait for a client to accept response bytes",
    },
    FlagSpec {
        name: "shutdown-timeout",
        kind: FlagKind::Value {
            arg: "duration",
            set: |o, v| o.shutdown_timeout = Some(v),
        },
        default: "5s",
        help: "time in-flight requests get to finish on shutdown",
    },
    FlagSpec {
        name: "max-conns",
        kind: FlagKind::Value {
            arg: "int",
            set: |o, v| o.max_conns = Some(v),
        },
        default: "10000",
        help: "open client connections; beyond it accepting pauses",
    },
    FlagSpec {
        name: "max-fails",
        kind: FlagKind::Value {
            arg: "int",
            set: |o, v| o.max_fails = Some(v),
        },
        default: "3",
        help: "failed requests in a row that take a backend out until healthy (0: never)",
    },
    FlagSpec {
        name: "max-body",
        kind: FlagKind::Value {
            arg: "size",
            set: |o, v| o.max_body = Some(v),
        },
        default: "0",
        help: "largest request body, e.g. 10M (0: no limit); larger gets 413",
    },
    FlagSpec {
        name: "cacert",
        kind: FlagKind::Value {
            arg: "file",
            set: |o, v| o.cacert = Some(v),
        },
        default: "",
        help: "TLS certificate chain, PEM; with -privkey the listener speaks TLS only",
    },
    FlagSpec {
        name: "privkey",
        kind: FlagKind::Value {
            arg: "file",
            set: |o, v| o.privkey = Some(v),
        },
        default: "",
        help: "TLS private key, PEM (PKCS#8, PKCS#1 or SEC1)",
    },
    FlagSpec {
        name: "handshake-timeout",
        kind: FlagKind::Value {
            arg: "duration",
            set: |o, v| o.handshake_timeout = Some(v),
        },
        default: "10s",
        help: "time from accept to the end of the TLS handshake",
    },
    FlagSpec {
        name: "tunnel-idle-timeout",
        kind: FlagKind::Value {
            arg: "duration",
            set: |o, v| o.tunnel_idle_timeout = Some(v),
        },
        default: "1h",
        help: "close a WebSocket tunnel with no traffic either way for this long",
    },
    FlagSpec {
        name: "backend-ca",
        kind: FlagKind::Value {
            arg: "file",
            set: |o, v| o.backend_ca = Some(v),
        },
        default: "",
        help: "CA certificates (PEM) for https backends instead of the bundled web roots",
    },
    FlagSpec {
        name: "cache",
        kind: FlagKind::Bool(|o, v| o.cache = Some(v)),
        default: "",
        help: "cache GET responses (honours Cache-Control, Expires, Vary)",
    },
    FlagSpec {
        name: "cache-size",
        kind: FlagKind::Value {
            arg: "size",
            set: |o, v| o.cache_size = Some(v),
        },
        default: "64MB",
        help: "memory the cache may use; least recently used entries go first",
    },
    FlagSpec {
        name: "cache-max-object",
        kind: FlagKind::Value {
            arg: "size",
            set: |o, v| o.cache_max_object = Some(v),
        },
        default: "1MB",
        help: "largest response body the cache stores",
    },
    FlagSpec {
        name: "cache-ttl",
        kind: FlagKind::Value {
            arg: "duration",
            set: |o, v| o.cache_ttl = Some(v),
        },
        default: "60s",
        help: "freshness of a response that states none (no max-age, s-maxage or Expires)",
    },
    FlagSpec {
        name: "config",
        kind: FlagKind::Value {
            arg: "file",
            set: |o, v| o.config = Some(v),
        },
        default: "",
        help: "TOML file of upstreams and locations (Gourmet's format); SIGHUP re-reads it",
    },
    FlagSpec {
        name: "balancer",
        kind: FlagKind::Value {
            arg: "name",
            set: |o, v| o.balancer = Some(v),
        },
        default: "round_robin",
        help: "how -b backends share requests: round_robin, random, least_conn or hash",
    },
    FlagSpec {
        name: "access-log",
        kind: FlagKind::Value {
            arg: "path",
            set: |o, v| o.access_log = Some(v),
        },
        default: "",
        help: "append one line per request to this file (- for stdout); SIGUSR1 reopens it",
    },
    FlagSpec {
        name: "access-log-format",
        kind: FlagKind::Value {
            arg: "format",
            set: |o, v| o.access_log_format = Some(v),
        },
        default: "combined",
        help: "access log lines: combined (NCSA + upstream, status, time) or json",
    },
    FlagSpec {
        name: "pidfile",
        kind: FlagKind::Value {
            arg: "path",
            set: |o, v| o.pidfile = Some(v),
        },
        default: "",
        help: "write the process id here once serving (SIGUSR2 upgrades in place)",
    },
    FlagSpec {
        name: "version",
        kind: FlagKind::Version,
        default: "",
        help: "print the version and exit",
    },
    FlagSpec {
        name: "h",
        kind: FlagKind::Help,
        default: "",
        help: "print this help and exit",
    },
    FlagSpec {
        name: "help",
        kind: FlagKind::Help,
        default: "",
        help: "same as -h",
    },
];

/// Parses the command line, without `argv[0]`, with Go's `flag` rules (see the module docs).
pub fn parse_args<I, S>(args: I) -> Result<Parsed, CliError>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let mut args = args.into_iter().map(Into::into);
    let mut raw = RawOptions::default();
    let mut version = false;
    let mut leftover = None;
    while let Some(arg) = args.next() {
        let (name, inline) = match classify(&arg)? {
            Token::EndOfFlags => {
                leftover = args.next();
                break;
            }
            Token::Positional => {
                leftover = Some(arg);
                break;
            }
            Token::Flag { name, value } => (name, value),
        };
        let spec = lookup(name).ok_or_else(|| CliError(Reason::Undefined(name.to_string())))?;
        match &spec.kind {
            FlagKind::Help => return Ok(Parsed::Help),
            FlagKind::Version => version = bool_value(spec.name, inline)?,
            FlagKind::Bool(set) => set(&mut raw, bool_value(spec.name, inline)?),
            FlagKind::Value { set, .. } => {
                let value = match inline {
                    Some(value) => value.to_string(),
                    None => args
                        .next()
                        .ok_or(CliError(Reason::NeedsArgument(spec.name)))?,
                };
                set(&mut raw, value);
            }
        }
    }
    // A Go program checks its version flag right after flag.Parse, before anything else.
    if version {
        return Ok(Parsed::Version);
    }
    match leftover {
        Some(arg) => Err(CliError(Reason::Unexpected(arg))),
        None => Ok(Parsed::Run(raw)),
    }
}

/// One argument, as Go's flag parser sees it.
#[derive(Debug, PartialEq, Eq)]
enum Token<'a> {
    /// `--`: flags end, and the argument itself is dropped.
    EndOfFlags,
    /// A non-flag argument: flags end here.
    Positional,
    /// `-name` or `--name`, with the text after the first `=` if there is one.
    Flag {
        name: &'a str,
        value: Option<&'a str>,
    },
}

fn classify(arg: &str) -> Result<Token<'_>, CliError> {
    if arg == "--" {
        return Ok(Token::EndOfFlags);
    }
    // "-" alone is a non-flag (conventionally stdin), as in Go.
    let Some(body) = arg.strip_prefix('-').filter(|b| !b.is_empty()) else {
        return Ok(Token::Positional);
    };
    let body = body.strip_prefix('-').unwrap_or(body);
    if body.is_empty() || body.starts_with(['-', '=']) {
        return Err(CliError(Reason::BadSyntax(arg.to_string())));
    }
    Ok(match body.split_once('=') {
        Some((name, value)) => Token::Flag {
            name,
            value: Some(value),
        },
        None => Token::Flag {
            name: body,
            value: None,
        },
    })
}

fn lookup(name: &str) -> Option<&'static FlagSpec> {
    FLAGS.iter().find(|spec| spec.name == name)
}

/// A boolean flag's value: bare means true, `=value` must be a Go boolean.
fn bool_value(flag: &'static str, inline: Option<&str>) -> Result<bool, CliError> {
    match inline {
        None => Ok(true),
        Some(value) => parse_go_bool(value).ok_or_else(|| {
            CliError(Reason::InvalidBool {
                flag,
                value: value.to_string(),
            })
        }),
    }
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// The `--help` text: a synopsis, then one line per flag with its default and meaning.
pub fn usage() -> String {
    let names: Vec<String> = FLAGS.iter().map(usage_name).collect();
    let width = names.iter().map(String::len).max().unwrap_or(0);
    let mut out = String::from(
        "Usage: goaround [flags]\n\n\
         Flags are written -name value, -name=value or --name=value;\n\
         booleans as -name or -name=false. -b may be repeated.\n\n",
    );
    for (spec, name) in FLAGS.iter().zip(&names) {
        out.push_str(&format!("  {name:width$}  {}", spec.help));
        if !spec.default.is_empty() {
            out.push_str(&format!(" (default {})", spec.default));
        }
        out.push('\n');
    }
    out
}

/// The left column of a usage line: `-name` and, for a value flag, what the value is.
fn usage_name(spec: &FlagSpec) -> String {
    match spec.kind {
        FlagKind::Value { arg, .. } => format!("-{} {arg}", spec.name),
        _ => format!("-{}", spec.name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Parsed, String> {
        parse_args(args.iter().copied()).map_err(|e| e.to_string())
    }

    /// Edits default options into the expected ones.
    type Edit = fn(&mut RawOptions);
    /// Reads one field back.
    type Get = fn(&RawOptions) -> Option<&str>;

    fn opts(edit: Edit) -> Result<Parsed, String> {
        let mut raw = RawOptions::default();
        edit(&mut raw);
        Ok(Parsed::Run(raw))
    }

    #[test]
    fn go_syntax_variants() {
        let cases: &[(&[&str], Edit)] = &[
            (&[], |_| {}),
            (&["-p", "80"], |o| o.port = Some("80".into())),
            (&["-p=80"], |o| o.port = Some("80".into())),
            (&["--p", "80"], |o| o.port = Some("80".into())),
            (&["--p=80"], |o| o.port = Some("80".into())),
            // The next argument is the value even when it looks like a flag.
            (&["-p", "-5"], |o| o.port = Some("-5".into())),
            (&["-p", "--"], |o| o.port = Some("--".into())),
            (&["-bind", "-b"], |o| o.bind = Some("-b".into())),
            // Only the first '=' splits; an empty value is still a value.
            (&["-bind=a=b"], |o| o.bind = Some("a=b".into())),
            (&["-p="], |o| o.port = Some(String::new())),
            (&["-p", ""], |o| o.port = Some(String::new())),
            // Last one wins.
            (&["-p", "1", "-p=2"], |o| o.port = Some("2".into())),
            // -b accumulates, in order.
            (&["-b", "http://a", "--b=http://b", "-b", "http://a"], |o| {
                o.backends = vec!["http://a".into(), "http://b".into(), "http://a".into()]
            }),
            (&["-cache"], |o| o.cache = Some(true)),
            (&["--cache"], |o| o.cache = Some(true)),
            (&["-cache=false"], |o| o.cache = Some(false)),
            (&["-cache=true", "-cache=0"], |o| o.cache = Some(false)),
            // A boolean never takes the next argument.
            (&["-cache", "-p", "1"], |o| {
                o.cache = Some(true);
                o.port = Some("1".into());
            }),
            // Flags stop at "--", which is dropped.
            (&["-p", "1", "--"], |o| o.port = Some("1".into())),
            (&["-version=false"], |_| {}),
            (&["-version", "-version=0"], |_| {}),
        ];
        for (args, edit) in cases {
            assert_eq!(parse(args), opts(*edit), "{args:?}");
        }
    }

    #[test]
    fn every_value_flag_sets_its_field() {
        let cases: &[(&str, Get)] = &[
            ("p", |o| o.port.as_deref()),
            ("bind", |o| o.bind.as_deref()),
            ("b", |o| o.backends.first().map(String::as_str)),
            ("n", |o| o.conns_per_backend.as_deref()),
            ("prometheus-port", |o| o.prometheus_port.as_deref()),
            ("socket", |o| o.socket.as_deref()),
            ("health-interval", |o| o.health_interval.as_deref()),
            ("health-timeout", |o| o.health_timeout.as_deref()),
            ("workers", |o| o.workers.as_deref()),
            ("connect-timeout", |o| o.connect_timeout.as_deref()),
            ("response-timeout", |o| o.response_timeout.as_deref()),
            ("queue-timeout", |o| o.queue_timeout.as_deref()),
            ("idle-timeout", |o| o.idle_timeout.as_deref()),
            ("header-timeout", |o| o.header_timeout.as_deref()),
            ("body-timeout", |o| o.body_timeout.as_deref()),
            ("write-timeout", |o| o.write_timeout.as_deref()),
            ("shutdown-timeout", |o| o.shutdown_timeout.as_deref()),
            ("max-conns", |o| o.max_conns.as_deref()),
            ("max-fails", |o| o.max_fails.as_deref()),
            ("max-body", |o| o.max_body.as_deref()),
            ("cacert", |o| o.cacert.as_deref()),
            ("privkey", |o| o.privkey.as_deref()),
            ("handshake-timeout", |o| o.handshake_timeout.as_deref()),
            ("tunnel-idle-timeout", |o| o.tunnel_idle_timeout.as_deref()),
            ("backend-ca", |o| o.backend_ca.as_deref()),
            ("cache-size", |o| o.cache_size.as_deref()),
            ("cache-max-object", |o| o.cache_max_object.as_deref()),
            ("cache-ttl", |o| o.cache_ttl.as_deref()),
            ("config", |o| o.config.as_deref()),
            ("balancer", |o| o.balancer.as_deref()),
            ("access-log", |o| o.access_log.as_deref()),
            ("access-log-format", |o| o.access_log_format.as_deref()),
            ("pidfile", |o| o.pidfile.as_deref()),
        ];
        for (name, get) in cases {
            let flag = format!("-{name}");
            let Ok(Parsed::Run(raw)) = parse_args([flag.as_str(), "X"]) else {
                panic!("-{name} did not parse");
            };
            assert_eq!(get(&raw), Some("X"), "-{name}");
            for (other, get_other) in cases.iter().filter(|(other, _)| other != name) {
                assert_eq!(get_other(&raw), None, "-{name} also set -{other}");
            }
            assert_eq!(raw.cache, None, "-{name}");
        }
        let value_flags = FLAGS
            .iter()
            .filter(|f| matches!(f.kind, FlagKind::Value { .. }));
        assert_eq!(
            value_flags.count(),
            cases.len(),
            "a value flag has no case here"
        );
    }

    #[test]
    fn go_booleans() {
        for value in ["1", "t", "T", "true", "TRUE", "True"] {
            let arg = format!("-cache={value}");
            assert_eq!(parse(&[&arg]), opts(|o| o.cache = Some(true)), "{arg}");
        }
        for value in ["0", "f", "F", "false", "FALSE", "False"] {
            let arg = format!("-cache={value}");
            assert_eq!(parse(&[&arg]), opts(|o| o.cache = Some(false)), "{arg}");
        }
    }

    #[test]
    fn help_and_version() {
        let cases: &[(&[&str], Parsed)] = &[
            (&["-h"], Parsed::Help),
            (&["-help"], Parsed::Help),
            (&["--help"], Parsed::Help),
            (&["--h"], Parsed::Help),
            // Go ignores a value given to -help.
            (&["-help=false"], Parsed::Help),
            // Help ends parsing, so nothing after it is looked at.
            (&["-p", "1", "-h", "-nonsense", "extra"], Parsed::Help),
            (&["-version", "-h"], Parsed::Help),
            (&["-version"], Parsed::Version),
            (&["--version"], Parsed::Version),
            (&["-version=true"], Parsed::Version),
            (&["-p", "1", "-version", "-b", "x"], Parsed::Version),
            // Version wins over leftover arguments (checked right after parsing, as in Go).
            (&["-version", "extra"], Parsed::Version),
        ];
        for (args, want) in cases {
            assert_eq!(parse(args), Ok(want.clone()), "{args:?}");
        }
    }

    #[test]
    fn errors() {
        let cases: &[(&[&str], &str)] = &[
            (&["-x"], "flag provided but not defined: -x"),
            (&["--x=1"], "flag provided but not defined: -x"),
            (&["-P", "80"], "flag provided but not defined: -P"),
            (
                &["-p", "1", "-port", "2"],
                "flag provided but not defined: -port",
            ),
            // Errors come in argument order: help after a bad flag is never reached.
            (&["-x", "-h"], "flag provided but not defined: -x"),
            (&["-p"], "flag needs an argument: -p"),
            (&["--b"], "flag needs an argument: -b"),
            (&["-p", "1", "-socket"], "flag needs an argument: -socket"),
            (
                &["-cache=maybe"],
                "invalid boolean value \"maybe\" for -cache",
            ),
            (&["-cache="], "invalid boolean value \"\" for -cache"),
            (&["-cache=yes"], "invalid boolean value \"yes\" for -cache"),
            (&["--version=2"], "invalid boolean value \"2\" for -version"),
            (&["---p", "1"], "bad flag syntax: ---p"),
            (&["-=1"], "bad flag syntax: -=1"),
            (&["--=1"], "bad flag syntax: --=1"),
            (&["serve"], "unexpected argument: serve"),
            (
                &["-p", "1", "serve", "-b", "x"],
                "unexpected argument: serve",
            ),
            (&["-"], "unexpected argument: -"),
            (&[""], "unexpected argument: "),
            (&["--", "-p"], "unexpected argument: -p"),
            // "-cache true": the boolean does not take "true", which ends the flags.
            (&["-cache", "true"], "unexpected argument: true"),
        ];
        for (args, want) in cases {
            assert_eq!(parse(args), Err(want.to_string()), "{args:?}");
        }
    }

    #[test]
    fn classify_tokens() {
        let flag = |name, value| Ok(Token::Flag { name, value });
        assert_eq!(classify("--"), Ok(Token::EndOfFlags));
        assert_eq!(classify("-"), Ok(Token::Positional));
        assert_eq!(classify("x-y"), Ok(Token::Positional));
        assert_eq!(classify("-a"), flag("a", None));
        assert_eq!(classify("--a=b=c"), flag("a", Some("b=c")));
        assert_eq!(classify("-a="), flag("a", Some("")));
    }

    #[test]
    fn flag_names_are_unique() {
        for (i, spec) in FLAGS.iter().enumerate() {
            assert!(
                FLAGS[i + 1..].iter().all(|other| other.name != spec.name),
                "-{} declared twice",
                spec.name
            );
        }
    }

    #[test]
    fn usage_lists_every_flag_once_with_default() {
        let text = usage();
        for spec in FLAGS {
            let lines: Vec<&str> = text
                .lines()
                .filter(|l| l.trim_start().split(' ').next() == Some(&format!("-{}", spec.name)))
                .collect();
            assert_eq!(lines.len(), 1, "-{} in\n{text}", spec.name);
            assert!(lines[0].contains(spec.help));
            if !spec.default.is_empty() {
                assert!(lines[0].ends_with(&format!("(default {})", spec.default)));
            }
        }
        assert!(text.contains("  -p port "), "{text}");
        assert!(text.contains("(default 0.0.0.0)"), "{text}");
        assert!(text.contains("  -cache "), "{text}");
    }
}
