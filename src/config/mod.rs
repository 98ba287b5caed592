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
/// `-workers`: worker threads serving requests.
pub(crate) const DEFAULT_WORKERS: usize = 64;
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
/// `-workers` upper bound: more threads than this only add contention and memory.
pub(crate) const MAX_WORKERS: usize = 4096;
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
    /// `-workers`, default 64.
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
    /// `-backend-ca`: CA certificates for https backends instead of the bundled web roots.
    pub backend_ca: Option<PathBuf>,
    /// `-cache` with `-cache-size` (64MB), `-cache-max-object` (1MB), `-cache-ttl` (60s).
    pub cache: Option<CacheConfig>,
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
                DEFAULT_WORKERS,
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
            backend_ca: file(raw.backend_ca.as_deref()),
            cache: cache(raw)?,
        })
    }
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
        }
    }
}

#[cfg(test)]
mod tests {
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
        assert_eq!(c.workers, 64);
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
            assert_eq!(format!("{:?}", ok(&[&arg])), defaults, "{arg}");
        }
        let without: Vec<&str> = cli::FLAGS
            .iter()
            .filter(|f| matches!(f.kind, FlagKind::Value { .. }) && f.default.is_empty())
            .map(|f| f.name)
            .collect();
        assert_eq!(without, ["b", "cacert", "privkey", "backend-ca"]);
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
            "-workers=4096",
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
        assert_eq!(c.workers, 4096);
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
            (&["-workers", "4097"], "-workers must be at most 4096"),
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
}
