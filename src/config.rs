//! Validated run-time configuration.
//!
//! `cli` turns the command line into [`RawOptions`] (strings, exactly
//! as given); this module checks every value and builds a [`Config`]: parsed durations, sizes,
//! backend URLs and listen addresses. Nothing here does I/O, so every rule is unit-tested.
//! Defaults live here and nowhere else (README.md repeats them; `--help` shows them too, and a
//! test checks that what it shows is what [`Config::from_raw`] applies).
//!
//! It also owns the two value grammars other layers share: backend URLs ([`BackendUrl`], and
//! the control socket's comma-separated list, [`parse_backend_list`]) and Go durations
//! ([`parse_duration`]). Whether a backend answers is `upstream`'s business, not ours.

use std::collections::HashSet;
use std::fmt;
use std::net::IpAddr;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::num::IntErrorKind;
use std::path::PathBuf;
use std::time::Duration;

use crate::cache::{self, CacheConfig};
use crate::cli::RawOptions;
use crate::tls::TlsFiles;

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

/// A backend base URL: `http://host:port` or `https://host:port`, no path beyond `/`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BackendUrl {
    /// Normalised form, e.g. `http://127.0.0.1:9001` (no trailing slash). Used as the
    /// backend's identity in logs, metrics labels and the control socket.
    pub base: String,
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

/// A byte size: a whole number with an optional binary suffix `K`, `M`, `G` (or `KB`, `MB`,
/// `GB`, any case): `512K` is 524288 bytes.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let digits_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(digits_end);
    if digits.is_empty() {
        return Err(format!(
            "invalid size {s:?}: expected a number such as 512K or 64M"
        ));
    }
    let shift = match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" => 10,
        "M" | "MB" => 20,
        "G" | "GB" => 30,
        _ => {
            return Err(format!(
                "invalid size {s:?}: unknown unit {unit:?} (K, M or G)"
            ))
        }
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1 << shift))
        .ok_or_else(|| format!("size {s:?} is too large"))
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

fn backend_flags(values: &[String]) -> Result<Vec<BackendUrl>, ConfigError> {
    let urls = values
        .iter()
        .map(|value| {
            parse_url(value).map_err(|problem| ConfigError::BackendFlag {
                value: value.clone(),
                problem,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    reject_duplicates(urls)
}

/// Two spellings of one backend (`http://A`, `http://a:80/`) are the same backend.
fn reject_duplicates(urls: Vec<BackendUrl>) -> Result<Vec<BackendUrl>, ConfigError> {
    let mut seen = HashSet::new();
    for url in &urls {
        if !seen.insert(url.base.as_str()) {
            return Err(ConfigError::DuplicateBackend(url.base.clone()));
        }
    }
    Ok(urls)
}

/// Parses the backend list written to the control socket: comma-separated URLs, whitespace
/// around each one (and the line ending) ignored. The list replaces every backend, so an
/// empty list, an empty item or a duplicate is refused rather than guessed at.
pub fn parse_backend_list(line: &str) -> Result<Vec<BackendUrl>, ConfigError> {
    if line.trim().is_empty() {
        return Err(ConfigError::EmptyBackendList);
    }
    let urls = line
        .split(',')
        .map(str::trim)
        .map(|item| match item {
            "" => Err(ConfigError::EmptyBackendItem),
            _ => BackendUrl::parse(item),
        })
        .collect::<Result<Vec<_>, _>>()?;
    reject_duplicates(urls)
}

impl BackendUrl {
    /// Parses and normalises `http(s)://host[:port][/]`: lowercase scheme and host, port
    /// always written, IPv6 in brackets in its canonical form.
    pub fn parse(s: &str) -> Result<BackendUrl, ConfigError> {
        parse_url(s).map_err(|problem| ConfigError::Backend {
            value: s.to_string(),
            problem,
        })
    }

    /// The `host:port` part of [`base`](Self::base), e.g. `127.0.0.1:9001` or `[::1]:80`.
    pub fn host_port(&self) -> &str {
        self.base
            .split_once("://")
            .map_or(self.base.as_str(), |(_, rest)| rest)
    }

    pub fn is_https(&self) -> bool {
        self.base.starts_with("https://")
    }
}

impl fmt::Display for BackendUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.base)
    }
}

/// RFC 3986 section 3: `scheme "://" authority path-abempty ["?" query] ["#" fragment]`, of
/// which only `http`/`https`, a `host[:port]` authority and an empty or "/" path are ours.
fn parse_url(s: &str) -> Result<BackendUrl, UrlProblem> {
    let (scheme, rest) = s.split_once("://").ok_or(UrlProblem::NotHttp)?;
    let (scheme, default_port) = match scheme.to_ascii_lowercase().as_str() {
        "http" => ("http", 80),
        "https" => ("https", 443),
        _ => return Err(UrlProblem::NotHttp),
    };
    let (authority, tail) = rest.split_at(rest.find(['/', '?', '#']).unwrap_or(rest.len()));
    // RFC 3986 section 3.2.1: userinfo would end up in logs and metrics labels.
    if authority.contains('@') {
        return Err(UrlProblem::UserInfo);
    }
    let (host, port) = split_host_port(authority)?;
    let port = port.map_or(Ok(default_port), url_port)?;
    if tail.contains(['?', '#']) {
        return Err(UrlProblem::QueryOrFragment);
    }
    if !matches!(tail, "" | "/") {
        return Err(UrlProblem::Path);
    }
    Ok(BackendUrl {
        base: format!("{scheme}://{host}:{port}"),
    })
}

/// Splits `host[:port]` (RFC 3986 section 3.2.2), returning the normalised host.
fn split_host_port(authority: &str) -> Result<(String, Option<&str>), UrlProblem> {
    if let Some(bracketed) = authority.strip_prefix('[') {
        let (addr, after) = bracketed.split_once(']').ok_or(UrlProblem::InvalidHost)?;
        let ip: Ipv6Addr = addr.parse().map_err(|_| UrlProblem::InvalidHost)?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or(UrlProblem::InvalidHost)?),
        };
        return Ok((format!("[{ip}]"), port));
    }
    let (host, port) = match authority.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    };
    // A second ':' means an IPv6 address without its brackets.
    if port.is_some_and(|p| p.contains(':')) {
        return Err(UrlProblem::UnbracketedIpv6);
    }
    if host.is_empty() {
        return Err(UrlProblem::EmptyHost);
    }
    // RFC 3986 reg-name, minus percent-encoding and sub-delims: nothing a DNS name needs.
    let plain = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~');
    if !host.bytes().all(plain) {
        return Err(UrlProblem::InvalidHost);
    }
    Ok((host.to_ascii_lowercase(), port))
}

/// A backend's port: decimal digits, 1..=65535 (0 cannot be connected to).
fn url_port(s: &str) -> Result<u16, UrlProblem> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(UrlProblem::InvalidPort);
    }
    s.parse()
        .ok()
        .filter(|p| *p != 0)
        .ok_or(UrlProblem::InvalidPort)
}

/// Go's `time.ParseDuration`: a sequence of decimal numbers, each with an optional fraction
/// and a unit (`ns`, `us`/`µs`, `ms`, `s`, `m`, `h`), e.g. "300ms" or "1h30m"; "0" alone needs
/// no unit. Unlike Go, a negative duration is an error. Same limit as Go: about 292 years.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    if s.starts_with('-') {
        return Err(format!("negative duration {s:?}"));
    }
    let mut rest = s.strip_prefix('+').unwrap_or(s);
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(format!("invalid duration {s:?}"));
    }
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let (nanos, after) = duration_term(rest, s)?;
        total = total
            .checked_add(nanos)
            .filter(|t| *t <= MAX_DURATION_NANOS)
            .ok_or_else(|| format!("invalid duration {s:?}"))?;
        rest = after;
    }
    Ok(Duration::from_nanos(total))
}

/// Go's `time.Duration` is an i64 of nanoseconds.
const MAX_DURATION_NANOS: u64 = i64::MAX as u64;

/// One `<number><unit>` at the start of `s`, in nanoseconds, and what follows it. `whole` is
/// the full input, for messages.
fn duration_term<'a>(s: &'a str, whole: &str) -> Result<(u64, &'a str), String> {
    let invalid = || format!("invalid duration {whole:?}");
    let (int_digits, after_int) = split_digits(s);
    let (frac_digits, after_frac) = match after_int.strip_prefix('.') {
        Some(after_dot) => split_digits(after_dot),
        None => ("", after_int),
    };
    // Also rejects a term that starts with anything but a digit or '.'.
    if int_digits.is_empty() && frac_digits.is_empty() {
        return Err(invalid());
    }
    let unit_len = after_frac
        .bytes()
        .take_while(|b| *b != b'.' && !b.is_ascii_digit())
        .count();
    if unit_len == 0 {
        return Err(format!("missing unit in duration {whole:?}"));
    }
    // The unit ends at an ASCII byte (or the end), so this is a char boundary.
    let (unit, rest) = after_frac.split_at(unit_len);
    let unit_nanos =
        unit_nanos(unit).ok_or_else(|| format!("unknown unit {unit:?} in duration {whole:?}"))?;
    let whole_nanos = leading_int(int_digits)
        .filter(|v| *v <= (1 << 63) / unit_nanos)
        .ok_or_else(invalid)?
        * unit_nanos;
    let (frac, scale) = leading_fraction(frac_digits);
    // Float, as in Go, to stay nanosecond-exact for fractions of hours; truncates like Go.
    let frac_nanos = (frac as f64 * (unit_nanos as f64 / scale)) as u64;
    let nanos = whole_nanos + frac_nanos;
    if nanos > 1 << 63 {
        return Err(invalid());
    }
    Ok((nanos, rest))
}

fn split_digits(s: &str) -> (&str, &str) {
    s.split_at(s.bytes().take_while(u8::is_ascii_digit).count())
}

/// Go's `leadingInt`: `None` past 1<<63.
fn leading_int(digits: &str) -> Option<u64> {
    digits.bytes().try_fold(0u64, |x, b| {
        let y = x.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
        (y <= 1 << 63).then_some(y)
    })
}

/// Go's `leadingFraction`: the digits as an integer and 10^(digits used); digits that would
/// overflow are dropped, which only loses precision far below a nanosecond.
fn leading_fraction(digits: &str) -> (u64, f64) {
    let mut x: u64 = 0;
    let mut scale = 1.0;
    for b in digits.bytes() {
        match x
            .checked_mul(10)
            .and_then(|y| y.checked_add(u64::from(b - b'0')))
        {
            Some(y) if y <= 1 << 63 => {
                x = y;
                scale *= 10.0;
            }
            _ => break,
        }
    }
    (x, scale)
}

fn unit_nanos(unit: &str) -> Option<u64> {
    Some(match unit {
        "ns" => 1,
        // U+00B5 micro sign and U+03BC Greek mu, as Go accepts both.
        "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60 * 1_000_000_000,
        "h" => 3600 * 1_000_000_000,
        _ => return None,
    })
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

/// What is wrong with a backend URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlProblem {
    NotHttp,
    EmptyHost,
    InvalidHost,
    UnbracketedIpv6,
    InvalidPort,
    UserInfo,
    QueryOrFragment,
    Path,
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

impl fmt::Display for UrlProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UrlProblem::NotHttp => "not an absolute http(s) URL",
            UrlProblem::EmptyHost => "empty host",
            UrlProblem::InvalidHost => "invalid host",
            UrlProblem::UnbracketedIpv6 => "IPv6 addresses must be in brackets",
            UrlProblem::InvalidPort => "invalid port",
            UrlProblem::UserInfo => "user info is not supported",
            UrlProblem::QueryOrFragment => "query and fragment are not supported",
            UrlProblem::Path => "paths are not supported",
        })
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
    fn backend_urls() {
        let cases: &[(&str, Result<&str, UrlProblem>)] = &[
            ("http://127.0.0.1:9001", Ok("http://127.0.0.1:9001")),
            ("http://127.0.0.1:9001/", Ok("http://127.0.0.1:9001")),
            ("http://localhost", Ok("http://localhost:80")),
            ("https://localhost", Ok("https://localhost:443")),
            ("https://localhost:80", Ok("https://localhost:80")),
            (
                "HtTpS://Back-End.Example.COM:8443/",
                Ok("https://back-end.example.com:8443"),
            ),
            ("http://a_b.local", Ok("http://a_b.local:80")),
            ("http://h:0080", Ok("http://h:80")),
            ("http://[::1]", Ok("http://[::1]:80")),
            ("http://[::1]:9000/", Ok("http://[::1]:9000")),
            ("http://[0:0:0:0:0:0:0:1]:9000", Ok("http://[::1]:9000")),
            ("http://[FE80::A]:1", Ok("http://[fe80::a]:1")),
            ("localhost:9000", Err(UrlProblem::NotHttp)),
            ("", Err(UrlProblem::NotHttp)),
            ("//host", Err(UrlProblem::NotHttp)),
            ("ftp://host", Err(UrlProblem::NotHttp)),
            ("http:/host", Err(UrlProblem::NotHttp)),
            ("httpx://host", Err(UrlProblem::NotHttp)),
            (" http://host", Err(UrlProblem::NotHttp)),
            ("http://", Err(UrlProblem::EmptyHost)),
            ("http:///", Err(UrlProblem::EmptyHost)),
            ("http://:80", Err(UrlProblem::EmptyHost)),
            ("http://a b", Err(UrlProblem::InvalidHost)),
            ("http://a%41", Err(UrlProblem::InvalidHost)),
            ("http://host ", Err(UrlProblem::InvalidHost)),
            ("http://[::1", Err(UrlProblem::InvalidHost)),
            ("http://[]", Err(UrlProblem::InvalidHost)),
            ("http://[1.2.3.4]", Err(UrlProblem::InvalidHost)),
            ("http://[::1]80", Err(UrlProblem::InvalidHost)),
            ("http://[fe80::1%25eth0]", Err(UrlProblem::InvalidHost)),
            ("http://::1", Err(UrlProblem::UnbracketedIpv6)),
            ("http://fe80::1:80", Err(UrlProblem::UnbracketedIpv6)),
            ("http://h:", Err(UrlProblem::InvalidPort)),
            ("http://h:0", Err(UrlProblem::InvalidPort)),
            ("http://h:65536", Err(UrlProblem::InvalidPort)),
            ("http://h:+80", Err(UrlProblem::InvalidPort)),
            ("http://h:http", Err(UrlProblem::InvalidPort)),
            ("http://[::1]:", Err(UrlProblem::InvalidPort)),
            ("http://user@h", Err(UrlProblem::UserInfo)),
            ("http://user:pw@h:80/", Err(UrlProblem::UserInfo)),
            ("http://h?x=1", Err(UrlProblem::QueryOrFragment)),
            ("http://h/?", Err(UrlProblem::QueryOrFragment)),
            ("http://h#top", Err(UrlProblem::QueryOrFragment)),
            ("http://h/api", Err(UrlProblem::Path)),
            ("http://h//", Err(UrlProblem::Path)),
            ("http://h/api/", Err(UrlProblem::Path)),
        ];
        for (input, want) in cases {
            let got = BackendUrl::parse(input);
            match want {
                Ok(base) => assert_eq!(got, Ok(url(base)), "{input:?}"),
                Err(problem) => assert_eq!(
                    got,
                    Err(ConfigError::Backend {
                        value: input.to_string(),
                        problem: *problem
                    }),
                    "{input:?}"
                ),
            }
        }
    }

    #[test]
    fn backend_url_parts() {
        let cases = [
            ("http://127.0.0.1:9001", "127.0.0.1:9001", false),
            ("https://Example.com", "example.com:443", true),
            ("http://[::1]", "[::1]:80", false),
        ];
        for (input, host_port, https) in cases {
            let u = BackendUrl::parse(input).unwrap();
            assert_eq!(u.host_port(), host_port, "{input}");
            assert_eq!(u.is_https(), https, "{input}");
            assert_eq!(u.to_string(), u.base);
        }
    }

    #[test]
    fn backend_error_messages() {
        let cases = [
            (
                "localhost:9000",
                "backend \"localhost:9000\": not an absolute http(s) URL",
            ),
            (
                "http://h/x",
                "backend \"http://h/x\": paths are not supported",
            ),
            (
                "http://u@h",
                "backend \"http://u@h\": user info is not supported",
            ),
            (
                "http://h?q",
                "backend \"http://h?q\": query and fragment are not supported",
            ),
            ("http://h:x", "backend \"http://h:x\": invalid port"),
            ("http://", "backend \"http://\": empty host"),
            ("http://a!b", "backend \"http://a!b\": invalid host"),
            (
                "http://::1",
                "backend \"http://::1\": IPv6 addresses must be in brackets",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(BackendUrl::parse(input).unwrap_err().to_string(), want);
        }
    }

    #[test]
    fn backend_lists() {
        let cases: &[(&str, Result<&[&str], &str>)] = &[
            ("http://a:1", Ok(&["http://a:1"])),
            ("http://a:1\n", Ok(&["http://a:1"])),
            ("http://a:1\r\n", Ok(&["http://a:1"])),
            (
                " http://a:1 ,\thttps://B/ ,http://[::1]:3\r\n",
                Ok(&["http://a:1", "https://b:443", "http://[::1]:3"]),
            ),
            // Order is kept: it is the order backends are tried and listed.
            ("http://b,http://a", Ok(&["http://b:80", "http://a:80"])),
            ("", Err("empty backend list")),
            ("\n", Err("empty backend list")),
            (" \t\r\n", Err("empty backend list")),
            ("http://a,,http://b", Err("empty item in backend list")),
            ("http://a,", Err("empty item in backend list")),
            ("http://a, \n", Err("empty item in backend list")),
            (",http://a", Err("empty item in backend list")),
            (
                "http://a,http://A:80/",
                Err("duplicate backend: http://a:80"),
            ),
            (
                "http://a,b",
                Err("backend \"b\": not an absolute http(s) URL"),
            ),
            (
                "http://a http://b",
                Err("backend \"http://a http://b\": invalid host"),
            ),
        ];
        for (line, want) in cases {
            let got = parse_backend_list(line).map_err(|e| e.to_string());
            let want = want
                .map(|bases| bases.iter().map(|b| url(b)).collect::<Vec<_>>())
                .map_err(str::to_string);
            assert_eq!(got, want, "{line:?}");
        }
    }

    #[test]
    fn durations() {
        const NS: u64 = 1;
        const US: u64 = 1_000;
        const MS: u64 = 1_000_000;
        const S: u64 = 1_000_000_000;
        const M: u64 = 60 * S;
        const H: u64 = 60 * M;
        let cases: &[(&str, u64)] = &[
            ("0", 0),
            ("+0", 0),
            ("0s", 0),
            ("10ns", 10 * NS),
            ("100us", 100 * US),
            ("100\u{b5}s", 100 * US),
            ("100\u{3bc}s", 100 * US),
            ("300ms", 300 * MS),
            ("2s", 2 * S),
            ("+2s", 2 * S),
            ("1m30s", 90 * S),
            ("1.5h", 90 * M),
            (
                "1h2m3s4ms5us6ns",
                H + 2 * M + 3 * S + 4 * MS + 5 * US + 6 * NS,
            ),
            ("3h3h", 6 * H),
            (".5s", 500 * MS),
            ("1.s", S),
            ("1.0s", S),
            ("0.000000001s", 1),
            ("0.0000000019s", 1),
            ("1.000000000000000000001h", H),
            ("0100ms", 100 * MS),
            ("2562047h47m16.854775807s", i64::MAX as u64),
            ("9223372036854775807ns", i64::MAX as u64),
        ];
        for (input, nanos) in cases {
            assert_eq!(
                parse_duration(input),
                Ok(Duration::from_nanos(*nanos)),
                "{input:?}"
            );
        }
    }

    #[test]
    fn duration_errors() {
        let cases = [
            ("", "invalid duration \"\""),
            ("+", "invalid duration \"+\""),
            ("s", "invalid duration \"s\""),
            (".s", "invalid duration \".s\""),
            ("abc", "invalid duration \"abc\""),
            ("5", "missing unit in duration \"5\""),
            ("00", "missing unit in duration \"00\""),
            ("1h5", "missing unit in duration \"1h5\""),
            ("5x", "unknown unit \"x\" in duration \"5x\""),
            ("5S", "unknown unit \"S\" in duration \"5S\""),
            ("1h 30m", "unknown unit \"h \" in duration \"1h 30m\""),
            ("1e3s", "unknown unit \"e\" in duration \"1e3s\""),
            ("5 s", "unknown unit \" s\" in duration \"5 s\""),
            ("-5s", "negative duration \"-5s\""),
            ("-0", "negative duration \"-0\""),
            ("1s.", "invalid duration \"1s.\""),
            (
                "9223372036854775808ns",
                "invalid duration \"9223372036854775808ns\"",
            ),
            (
                "2562047h47m16.854775808s",
                "invalid duration \"2562047h47m16.854775808s\"",
            ),
            ("2562048h", "invalid duration \"2562048h\""),
            (
                "99999999999999999999s",
                "invalid duration \"99999999999999999999s\"",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(parse_duration(input), Err(want.to_string()), "{input:?}");
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
    fn sizes() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("512K"), Ok(512 << 10));
        assert_eq!(parse_size("64mb"), Ok(64 << 20));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("10B"), Ok(10));
        for bad in ["", "K", "1.5M", "-1", "12X", "1 M", "99999999999999999999G"] {
            assert!(parse_size(bad).is_err(), "{bad:?}");
        }
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
