//! Locations: which upstream a request goes to, and the path it is sent there with.
//!
//! A [`Router`] holds the `-config` file's locations in file order (Gourmet kept them in a Go
//! map, so its order was random; ours is the order written). The first location whose `host`
//! (when set) equals the request's Host and whose regex matches **Host + path** wins: the
//! Host as sent (port included) followed by the path without the query, matched unanchored,
//! as Gourmet does, so both `api/(.+/?)` and `localhost:8081/api/(.+)` work. No location
//! matching: no route (the server answers 404). A file without locations, or no file, sends
//! everything to the `default` upstream unchanged ([`Router::default_only`]).
//!
//! The path sent upstream is Gourmet's rewrite: `/` + the text of the pattern's **last**
//! capture group, or of the whole match when the pattern has no group; the query is kept.
//! A group that did not take part in the match counts as empty. Unlike Gourmet, a text that
//! already starts with `/` gets no second one, and the path is matched and forwarded as the
//! client encoded it (Go's `URL.Path` is percent-decoded, then encoded again). Whatever
//! follows the match is dropped, so a pattern that should keep the rest of the path ends in
//! `(.*)` or `.*`. `pass_path = true` sends the original path and query instead. An
//! asterisk-form target (`OPTIONS *`) is matched like a path but always sent as `*`.
//!
//! | pattern                   | Host             | target              | sent as             |
//! |---------------------------|------------------|---------------------|---------------------|
//! | `api/(.+/?)`              | `h`              | `/api/users/7?x=1`  | `/users/7?x=1`      |
//! | `api/(.*)`                | `h`              | `/api/`             | `/`                 |
//! | `static/.+/?`             | `h`              | `/static/css/a.css` | `/static/css/a.css` |
//! | `localhost:8081/api/(.+)` | `localhost:8081` | `/api/v1`           | `/v1`               |
//! | `^[^/]+/(v\d)/`           | `h`              | `/v2/items?all`     | `/v2?all`           |
//! | `api(/x)?`                | `h`              | `/api/y`            | `/`                 |
//! | `(/img/.*)`               | `h`              | `/img/a.png`        | `/img/a.png`        |
//!
//! The request head's parser has already reduced an absolute-form target to origin form and
//! taken its authority as the Host. Which server of the upstream gets the request is the
//! upstream's balancer's business.

use std::borrow::Cow;
use std::ops::Range;

use crate::config::file::{FileConfig, Location};

/// Where requests go: the locations of a `-config` file, or everything to one upstream.
#[derive(Debug, Clone)]
pub struct Router {
    mode: Mode,
}

#[derive(Debug, Clone)]
enum Mode {
    /// No locations: every request, unchanged, to this upstream.
    Everything(usize),
    /// In file order.
    Locations(Vec<Rule>),
}

#[derive(Debug, Clone)]
struct Rule {
    location: Location,
    /// Index of the pattern's last capture group; 0 (the whole match) when it has none.
    last_group: usize,
}

/// The upstream a request goes to and the target (path and query) it is sent with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route<'a> {
    /// Index into [`FileConfig::upstreams`].
    pub upstream: usize,
    /// Origin-form path and query for the upstream request; borrowed from the request's
    /// target whenever the rewrite is a suffix of it (the usual `prefix/(.*)` case).
    pub path: Cow<'a, str>,
}

impl Router {
    /// The locations of `config`, or everything to its `default` upstream when it has none.
    pub fn new(config: &FileConfig) -> Router {
        if config.locations.is_empty() {
            return Router::default_only(config.default_upstream());
        }
        let rules = config
            .locations
            .iter()
            .map(|location| Rule {
                location: location.clone(),
                // captures_len counts the whole match as group 0, so it is at least 1.
                last_group: location.pattern.captures_len().saturating_sub(1),
            })
            .collect();
        Router {
            mode: Mode::Locations(rules),
        }
    }

    /// Every request to `upstream` with its target unchanged: goaround without `-config`,
    /// or with a file that has no locations.
    pub fn default_only(upstream: usize) -> Router {
        Router {
            mode: Mode::Everything(upstream),
        }
    }

    /// Routes a request: `host` is its Host (as sent, port included), `target` its
    /// origin-form target (path and query) or `*`. `None`: no location matches (404).
    pub fn route<'a>(&self, host: Option<&str>, target: &'a str) -> Option<Route<'a>> {
        let rules = match &self.mode {
            Mode::Everything(upstream) => {
                return Some(Route {
                    upstream: *upstream,
                    path: Cow::Borrowed(target),
                })
            }
            Mode::Locations(rules) => rules,
        };
        let (path, query) = target.split_at(target.find('?').unwrap_or(target.len()));
        let host_len = host.map_or(0, str::len);
        let mut haystack = String::with_capacity(host_len + path.len());
        haystack.push_str(host.unwrap_or(""));
        haystack.push_str(path);
        for rule in rules {
            let location = &rule.location;
            if let Some(want) = &location.host {
                if !host.is_some_and(|sent| host_matches(want, sent)) {
                    continue;
                }
            }
            let Some(span) = rule.find(&haystack) else {
                continue;
            };
            let path = if location.pass_path || target == "*" {
                Cow::Borrowed(target)
            } else {
                rewrite(target, query, &haystack, host_len, span)
            };
            return Some(Route {
                upstream: location.upstream,
                path,
            });
        }
        None
    }
}

impl Rule {
    /// `None`: no match. `Some(None)`: a match whose last group did not take part.
    /// `Some(Some(span))`: the last group's (or the whole match's) span in `haystack`.
    fn find(&self, haystack: &str) -> Option<Option<Range<usize>>> {
        let pattern = &self.location.pattern;
        if self.last_group == 0 {
            return pattern.find(haystack).map(|m| Some(m.range()));
        }
        let captures = pattern.captures(haystack)?;
        Some(captures.get(self.last_group).map(|m| m.range()))
    }
}

/// `/` + the captured text (unless it starts with `/`) + the query.
fn rewrite<'a>(
    target: &'a str,
    query: &str,
    haystack: &str,
    host_len: usize,
    span: Option<Range<usize>>,
) -> Cow<'a, str> {
    let Some(span) = span else {
        return Cow::Owned(format!("/{query}"));
    };
    // When the text runs to the end of the path and starts with '/' or just after one in the
    // path, the result is a suffix of the target: no copy.
    if span.end == haystack.len() && span.start >= host_len {
        let at = span.start - host_len;
        if haystack[span.clone()].starts_with('/') {
            return Cow::Borrowed(&target[at..]);
        }
        if at > 0 && target.as_bytes()[at - 1] == b'/' {
            return Cow::Borrowed(&target[at - 1..]);
        }
    }
    let text = &haystack[span];
    let slash = if text.starts_with('/') { "" } else { "/" };
    Cow::Owned(format!("{slash}{text}{query}"))
}

/// A location's `host` (lowercase) against a Host header: equal ignoring ASCII case, and
/// without a port in `want`, any port (or none) in `sent` (RFC 9110 section 7.2).
fn host_matches(want: &str, sent: &str) -> bool {
    if sent.eq_ignore_ascii_case(want) {
        return true;
    }
    let want_name = host_name(want);
    want_name.len() == want.len() && host_name(sent).eq_ignore_ascii_case(want)
}

/// `host` of `host[:port]`; an IPv6 literal keeps its brackets.
fn host_name(host: &str) -> &str {
    let end = if host.starts_with('[') {
        host.find(']').map_or(host.len(), |i| i + 1)
    } else {
        host.find(':').unwrap_or(host.len())
    };
    &host[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::file::parse;
    use std::path::Path;

    /// A router over upstreams `a`, `b` and `default` (indices 0, 1, 2) and these
    /// locations, each `(pattern, upstream, extra TOML lines)`.
    fn router(locations: &[(&str, &str, &str)]) -> Router {
        let mut text = String::from(
            "[[upstreams.a.servers]]\npath = \"a\"\n[[upstreams.b.servers]]\npath = \"b\"\n",
        );
        for (pattern, upstream, extra) in locations {
            let pattern = pattern.replace('\\', "\\\\");
            text.push_str(&format!(
                "[[server.locations]]\npath = \"{pattern}\"\nhttp_pass = \"{upstream}\"\n{extra}\n"
            ));
        }
        let config = parse(&text, Path::new("t.toml")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.upstream("b"), Some(1));
        assert_eq!(config.default_upstream(), 2);
        Router::new(&config)
    }

    fn route(r: &Router, host: Option<&str>, target: &str) -> Option<(usize, String)> {
        r.route(host, target)
            .map(|route| (route.upstream, route.path.into_owned()))
    }

    #[test]
    fn gourmet_rewrite() {
        // (pattern, host, target, sent as)
        let cases: &[(&str, Option<&str>, &str, Option<&str>)] = &[
            (
                "api/(.+/?)",
                Some("h"),
                "/api/users/7?x=1",
                Some("/users/7?x=1"),
            ),
            ("api/(.+/?)", Some("h"), "/api/users/", Some("/users/")),
            ("api/(.+/?)", Some("h"), "/api/", None),
            ("api/(.*)", Some("h"), "/api/", Some("/")),
            ("api/(.*)", Some("h"), "/api/?q", Some("/?q")),
            ("api/(.*)", None, "/api/x", Some("/x")),
            // No group: the whole match.
            (
                "static/.+/?",
                Some("h"),
                "/static/css/a.css",
                Some("/static/css/a.css"),
            ),
            ("static/", Some("h"), "/static/css/a.css", Some("/static/")),
            // A pattern that matches the Host too.
            (
                "localhost:8081/api/(.+)",
                Some("localhost:8081"),
                "/api/v1",
                Some("/v1"),
            ),
            (
                "localhost:8081/api/(.+)",
                Some("localhost:8082"),
                "/api/v1",
                None,
            ),
            ("localhost:8081/api/(.+)", None, "/api/v1", None),
            ("^h/(.*)$", Some("h"), "/x/y", Some("/x/y")),
            (
                "^[^/]+/(v\\d)/",
                Some("h"),
                "/v2/items?all",
                Some("/v2?all"),
            ),
            // No group, whole match starting in the Host: Gourmet's rule, kept.
            ("h/a", Some("h"), "/a", Some("/h/a")),
            // The last group counts; one that did not take part is empty.
            ("(a)/(b)?", Some("h"), "/a/c", Some("/")),
            ("(a)/(b)?", Some("h"), "/a/b?z", Some("/b?z")),
            ("api(/x)?", Some("h"), "/api/y", Some("/")),
            ("(a)(/.*)", Some("h"), "/a/b", Some("/b")),
            // A text that starts with '/' gets no second one.
            ("(/img/.*)", Some("h"), "/img/a.png", Some("/img/a.png")),
            (
                "/img/.*",
                Some("h"),
                "/img/a.png?v=2",
                Some("/img/a.png?v=2"),
            ),
            // The query is not matched.
            ("api/(.*)", Some("h"), "/x?api/y", None),
            ("x(.*)", Some("h"), "/x?y", Some("/?y")),
            // Matched and sent as encoded.
            (
                "api/(.*)",
                Some("h"),
                "/api/a%20b?c=%2F",
                Some("/a%20b?c=%2F"),
            ),
            // An empty pattern matches everything: whole match "" then "/".
            ("", Some("h"), "/anything?q", Some("/?q")),
            ("", Some("h"), "*", Some("*")),
        ];
        let mut wrong = Vec::new();
        for (pattern, host, target, want) in cases {
            let r = router(&[(pattern, "a", "")]);
            let got = route(&r, *host, target);
            let want = want.map(|p| (0, p.to_string()));
            if got != want {
                wrong.push((pattern, host, target, got, want));
            }
        }
        assert!(wrong.is_empty(), "{wrong:#?}");
    }

    #[test]
    fn borrowed_when_a_suffix_of_the_target() {
        let r = router(&[("api/(.*)", "a", ""), ("x/(y)", "a", "")]);
        let borrowed =
            |target| matches!(r.route(Some("h"), target).unwrap().path, Cow::Borrowed(_));
        assert!(borrowed("/api/users?q=1"));
        assert!(borrowed("/api/"));
        assert!(!borrowed("/x/yz"));
    }

    #[test]
    fn file_order_first_match_wins() {
        let r = router(&[
            ("api/v2/(.*)", "b", ""),
            ("api/(.*)", "a", ""),
            ("", "default", ""),
        ]);
        assert_eq!(route(&r, Some("h"), "/api/v2/x"), Some((1, "/x".into())));
        assert_eq!(route(&r, Some("h"), "/api/v1/x"), Some((0, "/v1/x".into())));
        assert_eq!(route(&r, Some("h"), "/other"), Some((2, "/".into())));
        let r = router(&[("api/(.*)", "a", ""), ("api/v2/(.*)", "b", "")]);
        assert_eq!(route(&r, Some("h"), "/api/v2/x"), Some((0, "/v2/x".into())));
        assert_eq!(route(&r, Some("h"), "/nope"), None);
    }

    #[test]
    fn pass_path() {
        let r = router(&[("api/(.*)", "a", "pass_path = true")]);
        assert_eq!(
            route(&r, Some("h"), "/api/x?y=1"),
            Some((0, "/api/x?y=1".into()))
        );
        assert_eq!(route(&r, Some("h"), "/other"), None);
    }

    #[test]
    fn host_before_the_pattern() {
        let r = router(&[
            ("(.*)", "a", "host = \"api.example.com\""),
            ("(.*)", "b", "host = \"example.com:8080\""),
            ("(.*)", "default", "host = \"[::1]\""),
        ]);
        let cases: &[(Option<&str>, Option<usize>)] = &[
            (Some("api.example.com"), Some(0)),
            (Some("API.Example.COM"), Some(0)),
            (Some("api.example.com:3000"), Some(0)),
            (Some("api.example.com.evil"), None),
            (Some("xapi.example.com"), None),
            (Some("example.com:8080"), Some(1)),
            (Some("EXAMPLE.com:8080"), Some(1)),
            (Some("example.com"), None),
            (Some("example.com:80"), None),
            (Some("[::1]"), Some(2)),
            (Some("[::1]:3000"), Some(2)),
            (Some("[::2]"), None),
            (None, None),
        ];
        for (host, want) in cases {
            let got = r.route(*host, "/p").map(|route| route.upstream);
            assert_eq!(got, *want, "{host:?}");
        }
        // The regex sees the Host as sent, whatever `host` matched.
        let r = router(&[(
            "^API\\.example\\.com:3000/(.*)",
            "a",
            "host = \"api.example.com\"",
        )]);
        assert_eq!(
            route(&r, Some("API.example.com:3000"), "/x"),
            Some((0, "/x".into()))
        );
    }

    #[test]
    fn default_only() {
        let r = Router::default_only(4);
        for target in ["/", "/a/b?c", "*"] {
            let route = r.route(Some("h"), target).unwrap();
            assert_eq!(route.upstream, 4);
            assert!(matches!(route.path, Cow::Borrowed(p) if p == target));
        }
        assert_eq!(r.route(None, "/x").unwrap().upstream, 4);
        // A file without locations.
        let config = parse("[[upstreams.a.servers]]\npath = \"a\"\n", Path::new("t")).unwrap();
        let r = Router::new(&config);
        assert_eq!(
            route(&r, Some("h"), "/x?y"),
            Some((config.default_upstream(), "/x?y".into()))
        );
        assert_eq!(config.default_upstream(), 1);
    }

    #[test]
    fn host_names() {
        let cases = [
            ("h", "h"),
            ("h:80", "h"),
            ("[::1]", "[::1]"),
            ("[::1]:80", "[::1]"),
            ("[::1", "[::1"),
            ("", ""),
        ];
        for (host, want) in cases {
            assert_eq!(host_name(host), want, "{host}");
        }
    }
}
