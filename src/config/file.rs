//! The `-config FILE`: Gourmet's TOML schema of upstream groups and locations, read and
//! checked into a [`FileConfig`] of validated values.
//!
//! ```toml
//! [upstreams.backend]            # any name; the table order does not matter
//!   balancer = "round_robin"     # round_robin (default) | random | least_conn | hash
//!   provider = "static"          # only "static" (the default)
//!   hash_key = "client_ip"       # with "hash" only: client_ip (default) | uri | "header:NAME"
//!   health_check = "/health"     # active checks at this path; none when absent
//!   handles = 32                 # requests in flight per server (1..=4096); -n when absent
//!   [[upstreams.backend.servers]]
//!     path = "10.0.0.1:8080"     # host[:port] (http implied) or an http:// / https:// URL
//!     weight = 5                 # default 1; 0 also means 1, as in Gourmet
//!     max_fail = 10              # default 10; 0 turns passive health off for this server
//!     fail_timeout = 1           # whole seconds or a Go duration ("1.5s"); default 1s, 0 too
//! [server]
//!   port = 8080                  # Gourmet's default; -p, when given, wins
//!   [[server.locations]]         # tried in file order, first match wins
//!     path = "api/(.+/?)"        # or `location`, the README's spelling: a regex
//!     http_pass = "backend"      # or `upstream`, the README's spelling
//!     host = "api.example.com"   # exact Host, case-insensitive, port ignored unless given
//!     pass_path = false          # true: the backend gets the original path
//! ```
//!
//! Patterns are the `regex` crate's syntax, which for what URL patterns use (classes, groups,
//! repetition, `\d` `\w` `\s`, `(?i)`) reads like Go's RE2; Unicode property classes
//! (`\p{Greek}`) are not built in.
//!
//! Keys are Gourmet's (its code's `path` and `http_pass`, and its README's `location` and
//! `upstream`); `hash_key`, `health_check`, `handles`, `host` and `pass_path` are ours. An
//! unknown key is an error, so that a typo is not silently ignored. Every error is one line
//! that names the file: `FILE:LINE:COLUMN: ...` for what the TOML reader refused (syntax,
//! unknown keys, wrong types), `FILE: upstream "NAME": ...` or `FILE: location N "PATTERN":
//! ...` (N counting `[[server.locations]]` from 1) for what this module refused.
//!
//! **The `default` upstream** is where requests go when the file has no locations, and is
//! what `-b` and the control socket fill. A file may define `[upstreams.default]` itself (a
//! Gourmet file that used the name keeps working); then `-b` must not be given as well: one
//! list from two places is refused ([`FileConfig::check_backend_flags`]) rather than merged
//! by a rule nobody remembers. When the file does not define it, [`FileConfig::upstreams`]
//! still holds a `default` entry, marked [`Upstream::from_flags`] and without servers, for
//! the `-b` backends (possibly none), so a location may name `default` either way.
//!
//! What a location's pattern does to a request is `routing`'s business; balancing, passive
//! and active health are `upstream`'s; reading `-p` and deciding between it and
//! [`FileConfig::port`] is the caller's ([`FileConfig::listen_port`] says how).

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::HeaderName;
use regex::Regex;
use serde::Deserialize;

use super::backend_url::parse_url;
use super::{parse_duration, BackendUrl, UrlProblem, MAX_CONNS_PER_BACKEND};

/// The upstream of the `-b` backends, and of every request when the file has no locations.
pub(crate) const DEFAULT_UPSTREAM: &str = "default";
/// `[server] port`: Gourmet's default, used when neither the file nor `-p` gives one.
pub(crate) const DEFAULT_FILE_PORT: u16 = 8080;
/// `weight` of a server (also for `weight = 0`, as in Gourmet).
pub(crate) const DEFAULT_WEIGHT: u32 = 1;
/// `max_fail`: failures within `fail_timeout` that take a server out (nginx's `max_fails`).
pub(crate) const DEFAULT_MAX_FAIL: u32 = 10;
/// `fail_timeout`: the window failures are counted in, and how long a server stays out.
pub(crate) const DEFAULT_FAIL_TIMEOUT: Duration = Duration::from_secs(1);

/// A checked `-config` file.
#[derive(Debug, Clone)]
pub struct FileConfig {
    /// Where it was read from, for messages.
    pub path: PathBuf,
    /// `[server] port` as written; see [`listen_port`](Self::listen_port).
    pub port: Option<u16>,
    /// Sorted by name; always holds one named `default` (see the module docs).
    pub upstreams: Vec<Upstream>,
    /// In file order: the order they are tried in.
    pub locations: Vec<Location>,
    /// Index of `default` in `upstreams`.
    default: usize,
}

/// One `[upstreams.NAME]` group.
#[derive(Debug, Clone)]
pub struct Upstream {
    pub name: String,
    pub balancer: BalancerKind,
    /// `health_check`: the path active checks request; `None`: no active checks.
    pub health_check: Option<String>,
    /// `handles`: requests in flight per server; `None`: `-n`.
    pub handles: Option<usize>,
    /// In file order, no two alike; never empty unless [`from_flags`](Self::from_flags).
    pub servers: Vec<Server>,
    /// The `default` upstream the file did not define: its servers are `-b`'s and the control
    /// socket's, and the flags' settings (`-n`, `-max-fails`, `/health` checks) apply.
    pub from_flags: bool,
}

/// One `[[upstreams.NAME.servers]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    pub url: BackendUrl,
    /// At least 1.
    pub weight: u32,
    /// 0: passive health off.
    pub max_fail: u32,
    /// Never zero.
    pub fail_timeout: Duration,
}

/// `balancer`: how an upstream orders its servers for a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BalancerKind {
    /// Smooth weighted round-robin (nginx's).
    RoundRobin,
    /// Weighted random.
    Random,
    /// Fewest requests in flight relative to weight.
    LeastConn,
    /// Weighted rendezvous hashing of what `key` names.
    Hash { key: HashKey },
}

impl BalancerKind {
    /// The name the file and `-balancer` use.
    pub fn name(&self) -> &'static str {
        match self {
            BalancerKind::RoundRobin => "round_robin",
            BalancerKind::Random => "random",
            BalancerKind::LeastConn => "least_conn",
            BalancerKind::Hash { .. } => "hash",
        }
    }
}

/// `hash_key`: what a request is hashed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashKey {
    /// The client's IP address (not its port).
    ClientIp,
    /// The request target, path and query, as sent.
    Uri,
    /// The value of this request header (lowercase name); requests without it fall back to
    /// round-robin.
    Header(HeaderName),
}

/// One `[[server.locations]]` entry.
#[derive(Debug, Clone)]
pub struct Location {
    /// `path` (or `location`), compiled: matched unanchored against Host + path.
    pub pattern: Regex,
    /// `http_pass` (or `upstream`): index into [`FileConfig::upstreams`].
    pub upstream: usize,
    /// `host`, lowercase: `name` or `name:port` (IPv6 in brackets).
    pub host: Option<String>,
    /// `pass_path`: send the original path instead of the rewritten one.
    pub pass_path: bool,
}

impl FileConfig {
    /// What goaround runs with when there is no `-config`: the `default` upstream alone, for
    /// the `-b` backends, and no locations.
    pub fn flags_only() -> FileConfig {
        FileConfig {
            path: PathBuf::new(),
            port: None,
            upstreams: vec![Upstream::flags()],
            locations: Vec::new(),
            default: 0,
        }
    }

    /// Index of the `default` upstream in [`upstreams`](Self::upstreams).
    pub fn default_upstream(&self) -> usize {
        self.default
    }

    /// Index of the upstream called `name`.
    pub fn upstream(&self, name: &str) -> Option<usize> {
        self.upstreams.iter().position(|u| u.name == name)
    }

    /// The port to listen on: `-p` when it was given (`explicit`), else the file's
    /// `[server] port`, else Gourmet's 8080.
    pub fn listen_port(&self, explicit: Option<u16>) -> u16 {
        explicit.or(self.port).unwrap_or(DEFAULT_FILE_PORT)
    }

    /// `-b` and a `[upstreams.default]` of the file's own do not go together.
    pub fn check_backend_flags(&self, backends: &[BackendUrl]) -> Result<(), FileError> {
        if backends.is_empty() || self.upstreams[self.default].from_flags {
            return Ok(());
        }
        Err(FileError {
            path: self.path.clone(),
            problem: FileProblem::DefaultTwice,
        })
    }
}

impl Upstream {
    /// The `default` upstream of the `-b` backends.
    fn flags() -> Upstream {
        Upstream {
            name: DEFAULT_UPSTREAM.to_string(),
            balancer: BalancerKind::RoundRobin,
            health_check: None,
            handles: None,
            servers: Vec::new(),
            from_flags: true,
        }
    }
}

/// A balancer by its name in the file (and in `-balancer`): `round_robin`, `random`,
/// `least_conn` or `hash` (hashing the client address unless told otherwise).
pub fn balancer_kind(name: &str) -> Option<BalancerKind> {
    match name {
        "round_robin" => Some(BalancerKind::RoundRobin),
        "random" => Some(BalancerKind::Random),
        "least_conn" => Some(BalancerKind::LeastConn),
        "hash" => Some(BalancerKind::Hash {
            key: HashKey::ClientIp,
        }),
        _ => None,
    }
}

/// Reads and checks the file at `path`.
pub fn load(path: &Path) -> Result<FileConfig, FileError> {
    let text = std::fs::read_to_string(path).map_err(|cause| FileError {
        path: path.to_path_buf(),
        problem: FileProblem::Read(cause),
    })?;
    parse(&text, path)
}

/// Checks `text`, the contents of the file at `origin` (named in errors only).
pub fn parse(text: &str, origin: &Path) -> Result<FileConfig, FileError> {
    let error = |problem| FileError {
        path: origin.to_path_buf(),
        problem,
    };
    let raw: RawFile = toml::from_str(text).map_err(|e| error(syntax(text, &e)))?;
    let (upstreams, default) = upstreams(raw.upstreams).map_err(error)?;
    let locations = raw
        .server
        .locations
        .into_iter()
        .enumerate()
        .map(|(i, raw)| location(i + 1, raw, &upstreams))
        .collect::<Result<Vec<_>, _>>()
        .map_err(error)?;
    Ok(FileConfig {
        path: origin.to_path_buf(),
        port: raw.server.port,
        upstreams,
        locations,
        default,
    })
}

// The file as TOML has it; `deny_unknown_fields` everywhere so that typos are errors.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    upstreams: BTreeMap<String, RawUpstream>,
    #[serde(default)]
    server: RawServer,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUpstream {
    balancer: Option<String>,
    provider: Option<String>,
    hash_key: Option<String>,
    health_check: Option<String>,
    handles: Option<i64>,
    #[serde(default)]
    servers: Vec<RawMember>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMember {
    path: String,
    weight: Option<u32>,
    max_fail: Option<u32>,
    fail_timeout: Option<RawDuration>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawServer {
    port: Option<u16>,
    #[serde(default)]
    locations: Vec<RawLocation>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLocation {
    #[serde(alias = "location")]
    path: String,
    #[serde(alias = "upstream")]
    http_pass: String,
    host: Option<String>,
    #[serde(default)]
    pass_path: bool,
}

/// `fail_timeout`: whole seconds as Gourmet reads it, or a Go duration string.
enum RawDuration {
    Seconds(i64),
    Text(String),
}

impl<'de> Deserialize<'de> for RawDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = RawDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("whole seconds or a duration such as \"1.5s\"")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<RawDuration, E> {
                Ok(RawDuration::Seconds(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<RawDuration, E> {
                i64::try_from(v)
                    .map(RawDuration::Seconds)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Unsigned(v), &self))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawDuration, E> {
                Ok(RawDuration::Text(v.to_string()))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// The TOML reader's refusal, at its line and column (1-based, in characters).
fn syntax(text: &str, e: &toml::de::Error) -> FileProblem {
    let at = e.span().map(|span| {
        let before = text.as_bytes().get(..span.start).unwrap_or(text.as_bytes());
        let line_start = before
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |i| i + 1);
        let line = before.iter().filter(|b| **b == b'\n').count() + 1;
        // UTF-8 continuation bytes are 0b10xxxxxx; every other byte starts a character.
        let column = before[line_start..]
            .iter()
            .filter(|b| **b & 0xC0 != 0x80)
            .count()
            + 1;
        (line, column)
    });
    FileProblem::Syntax {
        at,
        message: one_line(e.message()),
    }
}

fn one_line(text: &str) -> String {
    text.split('\n')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Checks every upstream and adds the `-b` placeholder when the file has no `default`;
/// returns them sorted by name, with the index of `default`.
fn upstreams(raw: BTreeMap<String, RawUpstream>) -> Result<(Vec<Upstream>, usize), FileProblem> {
    let mut upstreams = raw
        .into_iter()
        .map(|(name, raw)| upstream(name, raw))
        .collect::<Result<Vec<_>, _>>()?;
    let default = match upstreams.binary_search_by(|u| u.name.as_str().cmp(DEFAULT_UPSTREAM)) {
        Ok(i) => i,
        Err(i) => {
            upstreams.insert(i, Upstream::flags());
            i
        }
    };
    Ok((upstreams, default))
}

fn upstream(name: String, raw: RawUpstream) -> Result<Upstream, FileProblem> {
    let problem = |what| FileProblem::Upstream {
        upstream: name.clone(),
        problem: what,
    };
    if name.is_empty() {
        return Err(problem(UpstreamProblem::EmptyName));
    }
    match raw.provider.as_deref() {
        None | Some("static") => {}
        Some(other) => return Err(problem(UpstreamProblem::Provider(other.to_string()))),
    }
    let balancer = match raw.balancer.as_deref().map(balancer_kind) {
        None => BalancerKind::RoundRobin,
        Some(Some(BalancerKind::Hash { .. })) => BalancerKind::Hash {
            key: match raw.hash_key.as_deref() {
                None => HashKey::ClientIp,
                Some(key) => hash_key(key)
                    .ok_or_else(|| problem(UpstreamProblem::HashKey(key.to_string())))?,
            },
        },
        Some(Some(kind)) => kind,
        Some(None) => {
            let name = raw.balancer.clone().unwrap_or_default();
            return Err(problem(UpstreamProblem::Balancer(name)));
        }
    };
    if raw.hash_key.is_some() && !matches!(balancer, BalancerKind::Hash { .. }) {
        return Err(problem(UpstreamProblem::HashKeyWithoutHash));
    }
    let health_check = match raw.health_check {
        Some(path) if !is_request_path(&path) => {
            return Err(problem(UpstreamProblem::HealthCheck(path)))
        }
        other => other,
    };
    let handles = match raw.handles {
        None => None,
        Some(n) => Some(
            usize::try_from(n)
                .ok()
                .filter(|n| (1..=MAX_CONNS_PER_BACKEND).contains(n))
                .ok_or_else(|| problem(UpstreamProblem::Handles(n)))?,
        ),
    };
    if raw.servers.is_empty() {
        return Err(problem(UpstreamProblem::NoServers));
    }
    let mut seen = HashSet::new();
    let mut servers = Vec::with_capacity(raw.servers.len());
    for member in raw.servers {
        let server = server(member).map_err(problem)?;
        if !seen.insert(server.url.base.clone()) {
            return Err(problem(UpstreamProblem::DuplicateServer(server.url.base)));
        }
        servers.push(server);
    }
    Ok(Upstream {
        name,
        balancer,
        health_check,
        handles,
        servers,
        from_flags: false,
    })
}

/// `client_ip`, `uri` or `header:NAME` (a valid field name, RFC 9110 section 5.1).
fn hash_key(value: &str) -> Option<HashKey> {
    match value {
        "client_ip" => Some(HashKey::ClientIp),
        "uri" => Some(HashKey::Uri),
        _ => value
            .strip_prefix("header:")
            .and_then(|name| HeaderName::from_bytes(name.as_bytes()).ok())
            .map(HashKey::Header),
    }
}

/// An origin-form target (RFC 9112 section 3.2.1): "/" then visible ASCII.
fn is_request_path(path: &str) -> bool {
    path.starts_with('/') && path.bytes().all(|b| b.is_ascii_graphic())
}

fn server(raw: RawMember) -> Result<Server, UpstreamProblem> {
    let problem = |what| UpstreamProblem::Server {
        path: raw.path.clone(),
        problem: what,
    };
    let url = if raw.path.contains("://") {
        parse_url(&raw.path)
    } else {
        parse_url(&format!("http://{}", raw.path))
    }
    .map_err(|p| problem(ServerProblem::Url(p)))?;
    let fail_timeout = match &raw.fail_timeout {
        None => Duration::ZERO,
        Some(RawDuration::Seconds(s)) => u64::try_from(*s)
            .map(Duration::from_secs)
            .map_err(|_| problem(ServerProblem::FailTimeout(format!("negative duration {s}"))))?,
        Some(RawDuration::Text(text)) => {
            parse_duration(text).map_err(|cause| problem(ServerProblem::FailTimeout(cause)))?
        }
    };
    Ok(Server {
        url,
        weight: raw.weight.filter(|w| *w != 0).unwrap_or(DEFAULT_WEIGHT),
        max_fail: raw.max_fail.unwrap_or(DEFAULT_MAX_FAIL),
        // Zero would make the window empty and the pause nothing: Gourmet reads it as unset.
        fail_timeout: Some(fail_timeout)
            .filter(|d| !d.is_zero())
            .unwrap_or(DEFAULT_FAIL_TIMEOUT),
    })
}

fn location(
    index: usize,
    raw: RawLocation,
    upstreams: &[Upstream],
) -> Result<Location, FileProblem> {
    let problem = |what| FileProblem::Location {
        index,
        pattern: raw.path.clone(),
        problem: what,
    };
    let pattern =
        Regex::new(&raw.path).map_err(|e| problem(LocationProblem::Regex(regex_cause(&e))))?;
    let upstream = upstreams
        .iter()
        .position(|u| u.name == raw.http_pass)
        .ok_or_else(|| problem(LocationProblem::NoUpstream(raw.http_pass.clone())))?;
    let host = match &raw.host {
        None => None,
        Some(host) => {
            Some(location_host(host).ok_or_else(|| problem(LocationProblem::Host(host.clone())))?)
        }
    };
    Ok(Location {
        pattern,
        upstream,
        host,
        pass_path: raw.pass_path,
    })
}

/// `host` or `host:port` as a Host header carries it (RFC 9110 section 7.2), lowercased.
fn location_host(host: &str) -> Option<String> {
    let valid = !host.contains(['/', '?', '#']) && parse_url(&format!("http://{host}")).is_ok();
    valid.then(|| host.to_ascii_lowercase())
}

/// The regex crate's syntax errors span lines (pattern, caret, "error: ..."): keep the cause.
fn regex_cause(e: &regex::Error) -> String {
    match e {
        regex::Error::Syntax(text) => text
            .lines()
            .rev()
            .find_map(|l| l.trim().strip_prefix("error: "))
            .map_or_else(|| one_line(text), str::to_string),
        other => one_line(&other.to_string()),
    }
}

/// Why a `-config` file was refused: the file, and what is wrong in it.
#[derive(Debug)]
pub struct FileError {
    pub path: PathBuf,
    pub problem: FileProblem,
}

/// What is wrong in a `-config` file.
#[derive(Debug)]
pub enum FileProblem {
    /// Missing, unreadable, or not UTF-8.
    Read(io::Error),
    /// What the TOML reader refused: syntax, an unknown key, a wrong type, a duplicate key.
    Syntax {
        /// Line and column, 1-based, when the reader said where.
        at: Option<(usize, usize)>,
        message: String,
    },
    Upstream {
        upstream: String,
        problem: UpstreamProblem,
    },
    Location {
        /// 1-based: the first `[[server.locations]]` is 1.
        index: usize,
        pattern: String,
        problem: LocationProblem,
    },
    /// `[upstreams.default]` in the file, and `-b` too.
    DefaultTwice,
}

/// What is wrong with one `[upstreams.NAME]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamProblem {
    EmptyName,
    Balancer(String),
    Provider(String),
    HashKey(String),
    HashKeyWithoutHash,
    HealthCheck(String),
    Handles(i64),
    NoServers,
    DuplicateServer(String),
    Server {
        path: String,
        problem: ServerProblem,
    },
}

/// What is wrong with one server of an upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerProblem {
    Url(UrlProblem),
    FailTimeout(String),
}

/// What is wrong with one `[[server.locations]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocationProblem {
    Regex(String),
    NoUpstream(String),
    Host(String),
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.display();
        match &self.problem {
            FileProblem::Syntax {
                at: Some((line, column)),
                message,
            } => write!(f, "{path}:{line}:{column}: {message}"),
            problem => write!(f, "{path}: {problem}"),
        }
    }
}

impl std::error::Error for FileError {}

impl fmt::Display for FileProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileProblem::Read(cause) => write!(f, "cannot read: {cause}"),
            FileProblem::Syntax { message, .. } => f.write_str(message),
            FileProblem::Upstream { upstream, problem } => {
                write!(f, "upstream {upstream:?}: {problem}")
            }
            FileProblem::Location {
                index,
                pattern,
                problem,
            } => write!(f, "location {index} {pattern:?}: {problem}"),
            FileProblem::DefaultTwice => write!(
                f,
                "upstream {DEFAULT_UPSTREAM:?} is defined both here and by -b: \
                 give one or the other"
            ),
        }
    }
}

impl fmt::Display for UpstreamProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UpstreamProblem::EmptyName => f.write_str("name must not be empty"),
            UpstreamProblem::Balancer(value) => write!(
                f,
                "unknown balancer {value:?} (round_robin, random, least_conn or hash)"
            ),
            UpstreamProblem::Provider(value) => {
                write!(f, "unknown provider {value:?} (only \"static\")")
            }
            UpstreamProblem::HashKey(value) => write!(
                f,
                "unknown hash_key {value:?} (client_ip, uri or header:NAME)"
            ),
            UpstreamProblem::HashKeyWithoutHash => {
                f.write_str("hash_key needs balancer = \"hash\"")
            }
            UpstreamProblem::HealthCheck(value) => write!(
                f,
                "health_check {value:?} is not a path (\"/\" then visible ASCII)"
            ),
            UpstreamProblem::Handles(n) => write!(
                f,
                "handles = {n}: must be between 1 and {MAX_CONNS_PER_BACKEND}"
            ),
            UpstreamProblem::NoServers => f.write_str("no servers"),
            UpstreamProblem::DuplicateServer(base) => write!(f, "duplicate server {base}"),
            UpstreamProblem::Server { path, problem } => write!(f, "server {path:?}: {problem}"),
        }
    }
}

impl fmt::Display for ServerProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerProblem::Url(UrlProblem::NotHttp) => {
                f.write_str("neither host[:port] nor an http(s) URL")
            }
            ServerProblem::Url(problem) => write!(f, "{problem}"),
            ServerProblem::FailTimeout(cause) => write!(f, "fail_timeout: {cause}"),
        }
    }
}

impl fmt::Display for LocationProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LocationProblem::Regex(cause) => write!(f, "invalid regex: {cause}"),
            LocationProblem::NoUpstream(name) => write!(f, "no upstream {name:?}"),
            LocationProblem::Host(host) => {
                write!(f, "host {host:?} is not a host name or host:port")
            }
        }
    }
}

#[cfg(test)]
mod tests;
