//! Validated run-time configuration.
//!
//! `cli` turns the command line into [`RawOptions`] (strings, exactly
//! as given); this module checks every value and builds a [`Config`]: parsed durations, sizes,
//! backend URLs and listen addresses. Nothing here does I/O, so every rule is unit-tested.
//! Defaults live here and nowhere else (README.md repeats them; `--help` shows them too, and a
//! test checks that what it shows is what [`Config::from_raw`] applies).
//!
//! The value grammars other layers share live in submodules and are re-exported here, so they
//! are named `config::…` like the rest: backend URLs ([`BackendUrl`], and the control socket's
//! comma-separated list, [`parse_backend_list`]) in `backend_url`; Go durations
//! ([`parse_duration`]) and byte sizes ([`parse_size`]) in `units`. This file keeps the flag
//! checks, the defaults and the error types. Whether a backend answers is `upstream`'s
//! business, not ours.

mod backend_url;
pub mod file;
mod units;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::num::IntErrorKind;
use std::path::PathBuf;
use std::time::Duration;

use crate::cache::{self, CacheConfig};
use crate::cli::RawOptions;
use crate::tls::TlsFiles;

use backend_url::backend_flags;
pub use backend_url::{parse_backend_list, BackendUrl, UrlProblem};
pub use file::{FileConfig, FileError};
pub use units::{parse_duration, parse_size};

/// `-bind`: every IPv4 interface.
pub(crate) const DEFAULT_BIND: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
/// `-p`: the port clients connect to.
pub(crate) const DEFAULT_PORT: u16 = 3000;
/// `-n`: concurrent requests (handles) per backend, as in GoAround.
pub(crate) const DEFAULT_CONNS_PER_BACKEND: usize = 3;
/// `-prometheus-port`: where /metrics and /status listen.
pub(crate) const DEFAULT_METRICS_PORT: u16 = 8080;
/// `-socket`: the control socket's path.
pub(crate) const DEFAULT_SOCKET: &str = "/tmp/goaround.sock";
/// `-health-interval`: time between two health checks of one backend.
pub(crate) const DEFAULT_HEALTH_INTERVAL: Duration = Duration::from_secs(10);
/// `-health-timeout`: time limit of one health check.
pub(crate) const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_secs(5);
/// `-tunnel-idle-timeout`: a WebSocket tunnel with no traffic either way.
pub(crate) const DEFAULT_TUNNEL_IDLE_TIMEOUT: Duration = Duration::from_secs(60 * 60);
/// `-connect-timeout`: time limit for opening a connection to a backend.
pub(crate) const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// `-response-timeout`: from request sent to response head received.
pub(crate) const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);
/// `-queue-timeout`: longest wait for a free backend handle before 503.
pub(crate) const DEFAULT_QUEUE_TIMEOUT: Duration = Duration::from_secs(5);
/// `-idle-timeout`: keep-alive client connection with no request.
pub(crate) const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// `-header-timeout`: from the first byte of a request head to its end.
pub(crate) const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// `-body-timeout`: longest wait for the next bytes of a request body.
pub(crate) const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// `-write-timeout`: longest wait for a client to accept response bytes.
pub(crate) const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// `-shutdown-timeout`: time in-flight requests get to finish on shutdown.
pub(crate) const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
/// `-max-conns`: open client connections; beyond it accepting pauses.
pub(crate) const DEFAULT_MAX_CLIENT_CONNS: usize = 10_000;
/// `-workers` upper bound: event loops beyond the number of cores only add contention.
pub(crate) const MAX_WORKERS: usize = 1024;
/// Upper bound of `-n`: each handle is a ureq agent built when the backend is added.
pub(crate) const MAX_CONNS_PER_BACKEND: usize = 4096;
/// `-handshake-timeout`: from accept to the end of the TLS handshake.
pub(crate) const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// `-max-fails`: failed exchanges in a row that take a backend out (0: never).
pub(crate) const DEFAULT_MAX_FAILS: u32 = 3;

/// Everything the server needs to run, already validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// `-bind`, default 0.0.0.0.
    pub bind: IpAddr,
    /// `-p`, default 3000; 0 asks the OS for a free port (logged at start).
    pub port: u16,
    /// `-b`, in order; may be empty (every request gets 503 until the control socket adds some).
    pub backends: Vec<BackendUrl>,
    /// `-n`, default 3: concurrent requests (handles) per backend.
    pub max_conns_per_backend: usize,
    /// `-prometheus-port`, default 8080; 0 asks the OS.
    pub metrics_port: u16,
    /// `-socket`, default /tmp/goaround.sock.
    pub socket: PathBuf,
    /// `-health-interval`, default 10s.
    pub health_interval: Duration,
    /// `-health-timeout`, default 5s.
    pub health_timeout: Duration,
    /// `-workers`, default the number of CPUs: event loops.
    pub workers: usize,
    /// `-connect-timeout`, default 5s.
    pub connect_timeout: Duration,
    /// `-response-timeout`, default 30s: from request sent to response head received.
    pub response_timeout: Duration,
    /// `-queue-timeout`, default 5s: longest wait for a free backend handle before 503.
    pub queue_timeout: Duration,
    /// `-idle-timeout`, default 60s: keep-alive connection with no request.
    pub idle_timeout: Duration,
    /// `-header-timeout`, default 10s: from first byte of a request head to its end.
    pub header_timeout: Duration,
    /// `-body-timeout`, default 30s: longest wait for the next bytes of a request body.
    pub body_timeout: Duration,
    /// `-write-timeout`, default 30s: longest wait for a client to accept response bytes.
    pub write_timeout: Duration,
    /// `-shutdown-timeout`, default 5s.
    pub shutdown_timeout: Duration,
    /// `-max-conns`, default 10000: open client connections; beyond it accepting pauses.
    pub max_client_conns: usize,
    /// `-max-fails`, default 3: failed exchanges in a row (reset, timeout, invalid response)
    /// that take a backend out until its health check passes; 0 turns passive health off.
    /// A refused connection takes it out at once whatever this is.
    pub max_fails: u32,
    /// `-max-body`, default unlimited (`0`): largest request body; larger: 413.
    pub max_body: Option<u64>,
    /// `-cacert` and `-privkey`, both or neither: the listener speaks TLS only.
    pub tls: Option<TlsFiles>,
    /// `-handshake-timeout`, default 10s: from accept to the end of the TLS handshake.
    pub handshake_timeout: Duration,
    /// `-tunnel-idle-timeout`, default 1h: a WebSocket tunnel with no traffic either way.
    pub tunnel_idle_timeout: Duration,
    /// `-backend-ca`: CA certificates for https backends instead of the bundled web roots.
    pub backend_ca: Option<PathBuf>,
    /// `-cache` with `-cache-size` (64MB), `-cache-max-object` (1MB), `-cache-ttl` (60s).
    pub cache: Option<CacheConfig>,
    /// `-config`: the file of upstreams and locations, read by [`Config::load_file`].
    pub config_file: Option<PathBuf>,
    /// What the `-config` file says; without one, the `default` upstream alone.
    pub file: FileConfig,
    /// `-balancer`, default round-robin: how the `-b` backends share requests.
    pub balancer: file::BalancerKind,
    /// `-access-log` (`-` is stdout) and `-access-log-format`.
    pub access_log: Option<(String, String)>,
    /// `-pidfile`.
    pub pidfile: Option<PathBuf>,
    /// `-p` and `-prometheus-port` were given (a `-config` port does not override them).
    pub explicit_ports: (bool, bool),
}

impl Config {
    /// Checks every raw option and fills in defaults for the absent ones. The first bad value
    /// found is the error; flags of features not built yet are refused before anything else.
    pub fn from_raw(raw: &RawOptions) -> Result<Config, ConfigError> {
        Ok(Config {
            bind: bind(raw.bind.as_deref())?,
            port: port("p", raw.port.as_deref(), DEFAULT_PORT)?,
            backends: backend_flags(&raw.backends)?,
            max_conns_per_backend: count(
                "n",
                raw.conns_per_backend.as_deref(),
                DEFAULT_CONNS_PER_BACKEND,
                MAX_CONNS_PER_BACKEND,
            )?,
            metrics_port: port(
                "prometheus-port",
                raw.prometheus_port.as_deref(),
                DEFAULT_METRICS_PORT,
            )?,
            socket: socket(raw.socket.as_deref())?,
            health_interval: duration(
                "health-interval",
                raw.health_interval.as_deref(),
                DEFAULT_HEALTH_INTERVAL,
            )?,
            health_timeout: duration(
                "health-timeout",
                raw.health_timeout.as_deref(),
                DEFAULT_HEALTH_TIMEOUT,
            )?,
            workers: count(
                "workers",
                raw.workers.as_deref(),
                default_workers(),
                MAX_WORKERS,
            )?,
            connect_timeout: duration(
                "connect-timeout",
                raw.connect_timeout.as_deref(),
                DEFAULT_CONNECT_TIMEOUT,
            )?,
            response_timeout: duration(
                "response-timeout",
                raw.response_timeout.as_deref(),
                DEFAULT_RESPONSE_TIMEOUT,
            )?,
            queue_timeout: duration(
                "queue-timeout",
                raw.queue_timeout.as_deref(),
                DEFAULT_QUEUE_TIMEOUT,
            )?,
            idle_timeout: duration(
                "idle-timeout",
                raw.idle_timeout.as_deref(),
                DEFAULT_IDLE_TIMEOUT,
            )?,
            header_timeout: duration(
                "header-timeout",
                raw.header_timeout.as_deref(),
                DEFAULT_HEADER_TIMEOUT,
            )?,
            body_timeout: duration(
                "body-timeout",
                raw.body_timeout.as_deref(),
                DEFAULT_BODY_TIMEOUT,
            )?,
            write_timeout: duration(
                "write-timeout",
                raw.write_timeout.as_deref(),
                DEFAULT_WRITE_TIMEOUT,
            )?,
            shutdown_timeout: duration(
                "shutdown-timeout",
                raw.shutdown_timeout.as_deref(),
                DEFAULT_SHUTDOWN_TIMEOUT,
            )?,
            max_client_conns: count(
                "max-conns",
                raw.max_conns.as_deref(),
                DEFAULT_MAX_CLIENT_CONNS,
                usize::MAX,
            )?,
            max_fails: max_fails(raw.max_fails.as_deref())?,
            max_body: max_body(raw.max_body.as_deref())?,
            tls: tls_files(raw)?,
            handshake_timeout: duration(
                "handshake-timeout",
                raw.handshake_timeout.as_deref(),
                DEFAULT_HANDSHAKE_TIMEOUT,
            )?,
            tunnel_idle_timeout: duration(
                "tunnel-idle-timeout",
                raw.tunnel_idle_timeout.as_deref(),
                DEFAULT_TUNNEL_IDLE_TIMEOUT,
            )?,
            backend_ca: file(raw.backend_ca.as_deref()),
            cache: cache(raw)?,
            config_file: file(raw.config.as_deref()),
            file: FileConfig::flags_only(),
            balancer: balancer(raw.balancer.as_deref())?,
            access_log: access_log(raw)?,
            pidfile: file(raw.pidfile.as_deref()),
            explicit_ports: (raw.port.is_some(), raw.prometheus_port.is_some()),
        })
    }

    /// Reads the `-config` file, if any (the one step of building a `Config` that reads a
    /// file): its upstreams and locations, and its port unless `-p` was given. Then the
    /// metrics port: a file that listens on 8080 (Gourmet's default), with no
    /// `-prometheus-port` given, moves the metrics listener to the next port rather than
    /// failing to start.
    pub fn load_file(&mut self) -> Result<(), FileError> {
        let Some(path) = &self.config_file else {
            return Ok(());
        };
        let loaded = file::load(path)?;
        loaded.check_backend_flags(&self.backends)?;
        let (port_given, metrics_given) = self.explicit_ports;
        if !port_given {
            self.port = loaded.listen_port(None);
        }
        if !metrics_given && self.metrics_port == self.port && self.port != 0 {
            self.metrics_port = self.port.wrapping_add(1);
        }
        self.file = loaded;
        Ok(())
    }
}

/// `-balancer`: a balancer's name, as in the `-config` file.
fn balancer(value: Option<&str>) -> Result<file::BalancerKind, ConfigError> {
    let Some(value) = value else {
        return Ok(file::BalancerKind::RoundRobin);
    };
    file::balancer_kind(value).ok_or_else(|| invalid("balancer", value, ValueProblem::Balancer))
}

/// `-access-log` and its format; an empty path is no log.
fn access_log(raw: &RawOptions) -> Result<Option<(String, String)>, ConfigError> {
    let format = raw.access_log_format.as_deref().unwrap_or("combined");
    if !matches!(format, "combined" | "json") {
        return Err(invalid(
            "access-log-format",
            format,
            ValueProblem::LogFormat,
        ));
    }
    Ok(raw
        .access_log
        .as_deref()
        .filter(|p| !p.is_empty())
        .map(|p| (p.to_owned(), format.to_owned())))
}

/// `-workers` by default: one event loop per CPU the process may run on (HAProxy's
/// `nbthread` and nginx's `worker_processes auto` choose the same).
pub(crate) fn default_workers() -> usize {
    std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .min(MAX_WORKERS)
}

/// `-cacert` and `-privkey` go together (GoAround terminates TLS only when both are given;
/// one alone is a mistake worth stopping for). The files are read at start, not here.
fn tls_files(raw: &RawOptions) -> Result<Option<TlsFiles>, ConfigError> {
    let cert = file(raw.cacert.as_deref());
    let key = file(raw.privkey.as_deref());
    match (cert, key) {
        (Some(cert), Some(key)) => Ok(Some(TlsFiles { cert, key })),
        (None, None) => Ok(None),
        (Some(_), None) => Err(ConfigError::Missing {
            flag: "privkey",
            with: "cacert",
        }),
        (None, Some(_)) => Err(ConfigError::Missing {
            flag: "cacert",
            with: "privkey",
        }),
    }
}

/// A file path flag; empty counts as not given (GoAround's flags default to "").
fn file(value: Option<&str>) -> Option<PathBuf> {
    value.filter(|v| !v.is_empty()).map(PathBuf::from)
}

/// `-cache` and its limits; the limits are checked even when the cache is off, so a typo
/// does not wait for the day someone turns it on.
fn cache(raw: &RawOptions) -> Result<Option<CacheConfig>, ConfigError> {
    let config = CacheConfig {
        max_bytes: size(
            "cache-size",
            raw.cache_size.as_deref(),
            cache::DEFAULT_MAX_BYTES,
        )?,
        max_object: size(
            "cache-max-object",
            raw.cache_max_object.as_deref(),
            cache::DEFAULT_MAX_OBJECT,
        )?,
        default_ttl: duration("cache-ttl", raw.cache_ttl.as_deref(), cache::DEFAULT_TTL)?,
    };
    Ok((raw.cache == Some(true)).then_some(config))
}

fn invalid(flag: &'static str, value: &str, problem: ValueProblem) -> ConfigError {
    ConfigError::InvalidValue {
        flag,
        value: value.to_string(),
        problem,
    }
}

fn bind(value: Option<&str>) -> Result<IpAddr, ConfigError> {
    let Some(value) = value else {
        return Ok(DEFAULT_BIND);
    };
    value
        .parse()
        .map_err(|_| invalid("bind", value, ValueProblem::NotAnIp))
}

/// A listen port; 0 asks the OS for a free one.
fn port(flag: &'static str, value: Option<&str>, default: u16) -> Result<u16, ConfigError> {
    let Some(value) = value else {
        return Ok(default);
    };
    value
        .parse()
        .map_err(|_| invalid(flag, value, ValueProblem::NotAPort))
}

/// A count that must be at least 1 and at most `max`.
fn count(
    flag: &'static str,
    value: Option<&str>,
    default: usize,
    max: usize,
) -> Result<usize, ConfigError> {
    const MIN: usize = 1;
    let Some(value) = value else {
        return Ok(default);
    };
    // Parsed signed so that "-n -1" says "must be at least 1", like GoAround's int flags.
    let n: i64 = value.parse().map_err(|e: std::num::ParseIntError| {
        let problem = match e.kind() {
            IntErrorKind::PosOverflow | IntErrorKind::NegOverflow => ValueProblem::OutOfRange,
            _ => ValueProblem::NotANumber,
        };
        invalid(flag, value, problem)
    })?;
    if n < MIN as i64 {
        return Err(ConfigError::TooSmall { flag, min: MIN });
    }
    let n = usize::try_from(n).map_err(|_| invalid(flag, value, ValueProblem::OutOfRange))?;
    if n > max {
        return Err(ConfigError::TooLarge { flag, max });
    }
    Ok(n)
}

/// `-max-fails`: a whole number, 0 allowed (passive health off).
fn max_fails(value: Option<&str>) -> Result<u32, ConfigError> {
    let Some(value) = value else {
        return Ok(DEFAULT_MAX_FAILS);
    };
    value.parse::<u32>().map_err(|e| {
        let problem = match e.kind() {
            IntErrorKind::PosOverflow => ValueProblem::OutOfRange,
            _ => ValueProblem::NotANumber,
        };
        invalid("max-fails", value, problem)
    })
}

/// `-max-body`: a size; 0 (the default) means no limit, as nginx's `client_max_body_size 0`.
fn max_body(value: Option<&str>) -> Result<Option<u64>, ConfigError> {
    let Some(value) = value else {
        return Ok(None);
    };
    let n =
        parse_size(value).map_err(|cause| invalid("max-body", value, ValueProblem::Size(cause)))?;
    Ok((n > 0).then_some(n))
}

/// A positive byte size that fits in memory.
fn size(flag: &'static str, value: Option<&str>, default: usize) -> Result<usize, ConfigError> {
    let Some(value) = value else {
        return Ok(default);
    };
    let n = parse_size(value).map_err(|why| invalid(flag, value, ValueProblem::Size(why)))?;
    if n == 0 {
        return Err(invalid(flag, value, ValueProblem::NotPositive));
    }
    usize::try_from(n).map_err(|_| invalid(flag, value, ValueProblem::OutOfRange))
}

/// A time limit or interval; zero would mean "never wait" or "spin", so it must be positive.
fn duration(
    flag: &'static str,
    value: Option<&str>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    let Some(value) = value else {
        return Ok(default);
    };
    let d = parse_duration(value)
        .map_err(|cause| invalid(flag, value, ValueProblem::Duration(cause)))?;
    if d.is_zero() {
        return Err(invalid(flag, value, ValueProblem::NotPositive));
    }
    Ok(d)
}

fn socket(value: Option<&str>) -> Result<PathBuf, ConfigError> {
    match value {
        None => Ok(PathBuf::from(DEFAULT_SOCKET)),
        Some("") => Err(invalid("socket", "", ValueProblem::Empty)),
        Some(path) => Ok(PathBuf::from(path)),
    }
}

/// Why a flag value or a backend list was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// `invalid value "abc" for -p: not a port number`
    InvalidValue {
        flag: &'static str,
        value: String,
        problem: ValueProblem,
    },
    /// `-n must be at least 1`
    TooSmall { flag: &'static str, min: usize },
    /// `-workers must be at most 4096`
    TooLarge { flag: &'static str, max: usize },
    /// `-b "localhost:9000": not an absolute http(s) URL`
    BackendFlag { value: String, problem: UrlProblem },
    /// A backend URL from elsewhere (the control socket):
    /// `backend "localhost:9000": not an absolute http(s) URL`
    Backend { value: String, problem: UrlProblem },
    /// Two URLs that normalise to the same backend: `duplicate backend: http://a:80`
    DuplicateBackend(String),
    /// `a,,b` or a trailing comma in a backend list.
    EmptyBackendItem,
    /// A blank backend list.
    EmptyBackendList,
    /// A flag that needs another one given too.
    Missing {
        flag: &'static str,
        with: &'static str,
    },
}

/// What is wrong with a flag value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueProblem {
    NotAPort,
    NotANumber,
    OutOfRange,
    NotAnIp,
    Empty,
    NotPositive,
    /// Why [`parse_duration`] refused it.
    Duration(String),
    /// Why [`parse_size`] refused it.
    Size(String),
    /// Not a balancer's name.
    Balancer,
    /// Not an access log format.
    LogFormat,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::InvalidValue {
                flag,
                value,
                problem,
            } => {
                write!(f, "invalid value {value:?} for -{flag}: {problem}")
            }
            ConfigError::TooSmall { flag, min } => write!(f, "-{flag} must be at least {min}"),
            ConfigError::TooLarge { flag, max } => write!(f, "-{flag} must be at most {max}"),
            ConfigError::BackendFlag { value, problem } => write!(f, "-b {value:?}: {problem}"),
            ConfigError::Backend { value, problem } => write!(f, "backend {value:?}: {problem}"),
            ConfigError::DuplicateBackend(base) => write!(f, "duplicate backend: {base}"),
            ConfigError::EmptyBackendItem => f.write_str("empty item in backend list"),
            ConfigError::EmptyBackendList => f.write_str("empty backend list"),
            ConfigError::Missing { flag, with } => write!(f, "-{with} needs -{flag} too"),
        }
    }
}

impl std::error::Error for ConfigError {}

impl fmt::Display for ValueProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueProblem::NotAPort => f.write_str("not a port number"),
            ValueProblem::NotANumber => f.write_str("not a whole number"),
            ValueProblem::OutOfRange => f.write_str("value out of range"),
            ValueProblem::NotAnIp => f.write_str("not an IP address"),
            ValueProblem::Empty => f.write_str("must not be empty"),
            ValueProblem::NotPositive => f.write_str("must be greater than zero"),
            ValueProblem::Duration(cause) | ValueProblem::Size(cause) => f.write_str(cause),
            ValueProblem::Balancer => {
                f.write_str("not a balancer (round_robin, random, least_conn or hash)")
            }
            ValueProblem::LogFormat => f.write_str("not a log format (combined or json)"),
        }
    }
}

#[cfg(test)]
mod tests;
