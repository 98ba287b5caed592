//! Backend URLs: the one way to name a backend, shared by `-b` and the control socket.
//!
//! [`BackendUrl::parse`] accepts `http(s)://host[:port][/]` (RFC 3986 section 3, cut down to
//! what a backend's base needs) and normalises it, so that two spellings of one backend are
//! one backend; [`parse_backend_list`] reads the control socket's comma-separated list. A
//! refusal is a [`UrlProblem`] inside the [`ConfigError`] of whoever asked (`-b` or the
//! control socket). Resolving the host and connecting to it are `upstream`'s business.

use std::collections::HashSet;
use std::fmt;
use std::net::Ipv6Addr;

use super::ConfigError;

/// A backend base URL: `http://host:port` or `https://host:port`, no path beyond `/`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BackendUrl {
    /// Normalised form, e.g. `http://127.0.0.1:9001` (no trailing slash). Used as the
    /// backend's identity in logs, metrics labels and the control socket.
    pub base: String,
}

pub(super) fn backend_flags(values: &[String]) -> Result<Vec<BackendUrl>, ConfigError> {
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

    /// The host as it is resolved or connected to: a name, an IPv4 literal, or an IPv6
    /// literal without its brackets.
    pub fn host(&self) -> &str {
        let host_port = self.host_port();
        let host = host_port
            .rsplit_once(':')
            .map_or(host_port, |(host, _)| host);
        host.strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host)
    }

    /// The port, always present in the normalised form.
    pub fn port(&self) -> u16 {
        self.host_port()
            .rsplit_once(':')
            .and_then(|(_, port)| port.parse().ok())
            // `parse_url` always writes a valid port; 0 is never reached.
            .unwrap_or(0)
    }
}

impl fmt::Display for BackendUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.base)
    }
}

/// RFC 3986 section 3: `scheme "://" authority path-abempty ["?" query] ["#" fragment]`, of
/// which only `http`/`https`, a `host[:port]` authority and an empty or "/" path are ours.
pub(super) fn parse_url(s: &str) -> Result<BackendUrl, UrlProblem> {
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

    fn url(s: &str) -> BackendUrl {
        BackendUrl {
            base: s.to_string(),
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
}
