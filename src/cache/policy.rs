//! Whether a response may be stored, and for how long (RFC 9111 §3 and §4.2).
//!
//! Pure functions of the request and response header fields, the status and two clock
//! readings passed in by the caller; nothing here touches the store or reads a clock, so every
//! rule is tested with a table. Which stored response answers which request (the key, `Vary`)
//! is `key.rs`; holding responses is `store.rs`.
//!
//! Freshness lifetime, first match wins (§4.2.1): `s-maxage` (we are a shared cache), then
//! `max-age`, then `Expires` minus `Date` (minus now without a usable `Date`), then the
//! configured default. A response whose `Age` already reaches its lifetime is stale on arrival
//! and not stored.

use std::fmt;
use std::time::{Duration, Instant, SystemTime};

use http::header::{
    AGE, AUTHORIZATION, CACHE_CONTROL, CONTENT_LENGTH, DATE, EXPIRES, IF_MATCH, IF_MODIFIED_SINCE,
    IF_NONE_MATCH, IF_RANGE, IF_UNMODIFIED_SINCE, RANGE, SET_COOKIE, VARY,
};
use http::{HeaderMap, HeaderName, Method, StatusCode};

/// Delta-seconds larger than this are taken as this (RFC 9111 §1.2.2).
const DELTA_SECONDS_CAP: u64 = 1 << 31;

/// Why a response is not stored; for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotStorable {
    /// Only 200 responses are stored.
    Status,
    /// `Cache-Control: no-store` (§5.2.2.5).
    NoStore,
    /// `Cache-Control: private` (§5.2.2.7): not for a shared cache.
    Private,
    /// `Cache-Control: no-cache` (§5.2.2.4): would need revalidation, which we do not do.
    NoCache,
    /// `Set-Cookie` is specific to one client.
    SetCookie,
    /// `Vary: *` never matches a later request (§4.1).
    VaryStar,
    /// A `Vary` member that is not a field name.
    InvalidVary,
    /// The request carried `Authorization` and the response did not allow sharing (§3.5).
    Authorization,
    /// Zero or invalid freshness lifetime, or already as old as its lifetime (§4.2).
    Stale,
    /// The body is larger than the largest object or the whole store.
    TooLarge,
    /// An unsafe request invalidated the URL while this response was being fetched (§4.4).
    Invalidated,
}

impl fmt::Display for NotStorable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Status => "status is not 200",
            Self::NoStore => "cache-control: no-store",
            Self::Private => "cache-control: private",
            Self::NoCache => "cache-control: no-cache",
            Self::SetCookie => "response sets a cookie",
            Self::VaryStar => "vary: *",
            Self::InvalidVary => "vary names an invalid field",
            Self::Authorization => "request was authorized and the response is not public",
            Self::Stale => "response is stale on arrival",
            Self::TooLarge => "body is larger than the cache allows",
            Self::Invalidated => "url was invalidated while fetching",
        })
    }
}

/// The verdict on a response that may be stored: how long it stays fresh and which request
/// fields select it. Obtained from [`FillTicket::storable`](super::FillTicket::storable).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Storable {
    /// Freshness lifetime (§4.2.1).
    pub(crate) lifetime: Duration,
    /// The response's `Age` when it arrived (§5.1); zero without a valid one.
    pub(crate) initial_age: Duration,
    /// Lower-case names from `Vary`, without duplicates.
    pub(crate) vary: Vec<HeaderName>,
    /// When the head arrived: the body's download time counts toward the age.
    pub(crate) received: Instant,
}

impl Storable {
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    pub fn initial_age(&self) -> Duration {
        self.initial_age
    }
}

/// A delta-seconds directive argument; invalid ones make the response stale (§4.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Seconds {
    Valid(u64),
    Invalid,
}

/// The directives of all `Cache-Control` lines that matter here (§5.2); others are ignored.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct CacheControl {
    pub(crate) no_store: bool,
    pub(crate) no_cache: bool,
    pub(crate) private: bool,
    pub(crate) public: bool,
    pub(crate) must_revalidate: bool,
    /// The first occurrence wins (§4.2.1 allows "the first occurrence").
    pub(crate) max_age: Option<Seconds>,
    pub(crate) s_maxage: Option<Seconds>,
}

impl CacheControl {
    pub(crate) fn of(headers: &HeaderMap) -> CacheControl {
        let mut cc = CacheControl::default();
        for value in headers.get_all(CACHE_CONTROL) {
            for_each_directive(value.as_bytes(), |name, arg| {
                let is = |s: &str| name.eq_ignore_ascii_case(s.as_bytes());
                if is("no-store") {
                    cc.no_store = true;
                } else if is("no-cache") {
                    cc.no_cache = true;
                } else if is("private") {
                    cc.private = true;
                } else if is("public") {
                    cc.public = true;
                } else if is("must-revalidate") {
                    cc.must_revalidate = true;
                } else if is("max-age") {
                    cc.max_age.get_or_insert(seconds(arg));
                } else if is("s-maxage") {
                    cc.s_maxage.get_or_insert(seconds(arg));
                }
            });
        }
        cc
    }
}

/// Calls `f(name, argument)` for each directive of one field value (§5.2:
/// `token [ "=" ( token / quoted-string ) ]`, comma-separated). A quoted argument is given
/// without its quotes and unescaped only as far as finding its end needs; text after a
/// directive and before the next comma is ignored.
fn for_each_directive(mut s: &[u8], mut f: impl FnMut(&[u8], Option<&[u8]>)) {
    let is_ows = |b: &u8| matches!(b, b' ' | b'\t');
    loop {
        let Some(start) = s.iter().position(|b| !is_ows(b) && *b != b',') else {
            return;
        };
        s = &s[start..];
        let end = s
            .iter()
            .position(|b| is_ows(b) || matches!(b, b'=' | b','))
            .unwrap_or(s.len());
        let name = &s[..end];
        s = trim_start(&s[end..]);
        let mut arg = None;
        if let Some(rest) = s.strip_prefix(b"=") {
            s = trim_start(rest);
            if let Some(quoted) = s.strip_prefix(b"\"") {
                let mut escaped = false;
                let close = quoted.iter().position(|&b| {
                    let closes = !escaped && b == b'"';
                    escaped = !escaped && b == b'\\';
                    closes
                });
                let close = close.unwrap_or(quoted.len());
                arg = Some(&quoted[..close]);
                s = quoted.get(close + 1..).unwrap_or_default();
            } else {
                let end = s
                    .iter()
                    .position(|b| is_ows(b) || *b == b',')
                    .unwrap_or(s.len());
                arg = Some(&s[..end]);
                s = &s[end..];
            }
        }
        f(name, arg);
        match s.iter().position(|&b| b == b',') {
            Some(comma) => s = &s[comma + 1..],
            None => return,
        }
    }
}

fn trim_start(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t'))
        .unwrap_or(s.len());
    &s[start..]
}

/// `delta-seconds = 1*DIGIT` (§1.2.2), capped at 2^31.
fn seconds(arg: Option<&[u8]>) -> Seconds {
    match arg {
        Some(digits) if !digits.is_empty() && digits.iter().all(u8::is_ascii_digit) => {
            let n = digits.iter().fold(0u64, |n, d| {
                (n * 10 + u64::from(d - b'0')).min(DELTA_SECONDS_CAP)
            });
            Seconds::Valid(n)
        }
        _ => Seconds::Invalid,
    }
}

/// Whether the cache takes part in this request at all: GET or HEAD without
/// `Cache-Control: no-store` (§5.2.1.5). `Authorization` is decided with the response (§3.5).
/// Request `no-cache`, `max-age` and `Pragma` are ignored, as nginx does by default.
pub fn request_is_cacheable(method: &Method, req_headers: &HeaderMap) -> bool {
    (method == Method::GET || method == Method::HEAD) && !CacheControl::of(req_headers).no_store
}

/// Whether this request's answer is a full response other requests can wait for. A range or
/// conditional request would likely get a 206 or 304 (not storable), so it never leads a
/// collapsed fetch; it may still store a 200 it happens to get.
pub(crate) fn may_lead(req_headers: &HeaderMap) -> bool {
    let partial_or_conditional = [
        RANGE,
        IF_MATCH,
        IF_NONE_MATCH,
        IF_MODIFIED_SINCE,
        IF_UNMODIFIED_SINCE,
        IF_RANGE,
    ];
    !partial_or_conditional
        .iter()
        .any(|name| req_headers.contains_key(name))
}

/// Whether the request carried credentials (§3.5).
pub(crate) fn is_authorized(req_headers: &HeaderMap) -> bool {
    req_headers.contains_key(AUTHORIZATION)
}

/// The limits and defaults [`storability`] applies.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) default_ttl: Duration,
    pub(crate) max_object: usize,
}

/// Decides from the response head (before its body is read) whether it may be stored
/// (§3), for how long it is fresh (§4.2.1) and how old it already is (§5.1).
/// `wall` is the current time for `Expires`; `mono` is recorded as the receipt time.
pub(crate) fn storability(
    status: StatusCode,
    authorized: bool,
    resp: &HeaderMap,
    limits: Limits,
    wall: SystemTime,
    mono: Instant,
) -> Result<Storable, NotStorable> {
    if status != StatusCode::OK {
        return Err(NotStorable::Status);
    }
    let cc = CacheControl::of(resp);
    if cc.no_store {
        return Err(NotStorable::NoStore);
    }
    if cc.private {
        return Err(NotStorable::Private);
    }
    if cc.no_cache {
        return Err(NotStorable::NoCache);
    }
    if resp.contains_key(SET_COOKIE) {
        return Err(NotStorable::SetCookie);
    }
    let vary = vary_names(resp)?;
    if authorized && !(cc.public || cc.must_revalidate || cc.s_maxage.is_some()) {
        return Err(NotStorable::Authorization);
    }
    let declared_length = resp
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared_length.is_some_and(|n| n > limits.max_object as u64) {
        return Err(NotStorable::TooLarge);
    }
    let lifetime = lifetime(&cc, resp, limits.default_ttl, wall).ok_or(NotStorable::Stale)?;
    let initial_age = initial_age(resp);
    if initial_age >= lifetime {
        return Err(NotStorable::Stale);
    }
    Ok(Storable {
        lifetime,
        initial_age,
        vary,
        received: mono,
    })
}

/// The freshness lifetime (§4.2.1); `None` when a directive or `Expires` is invalid, which
/// makes the response stale (§4.2.1, §5.3).
fn lifetime(
    cc: &CacheControl,
    resp: &HeaderMap,
    default_ttl: Duration,
    wall: SystemTime,
) -> Option<Duration> {
    if let Some(s) = cc.s_maxage.or(cc.max_age) {
        return match s {
            Seconds::Valid(n) => Some(Duration::from_secs(n)),
            Seconds::Invalid => None,
        };
    }
    if let Some(expires) = resp.get(EXPIRES) {
        // §5.3: an invalid date, "0" above all, means already expired.
        let expires = http_date(expires)?;
        let date = resp.get(DATE).and_then(http_date).unwrap_or(wall);
        return Some(expires.duration_since(date).unwrap_or(Duration::ZERO));
    }
    Some(default_ttl)
}

fn http_date(value: &http::HeaderValue) -> Option<SystemTime> {
    httpdate::parse_http_date(value.to_str().ok()?.trim()).ok()
}

/// `Age` (§5.1): the first member of the first line; an invalid one is ignored.
fn initial_age(resp: &HeaderMap) -> Duration {
    let first = resp.get(AGE).map(|v| {
        v.as_bytes()
            .split(|&b| b == b',')
            .next()
            .unwrap_or_default()
    });
    match seconds(first.map(|s| s.trim_ascii())) {
        Seconds::Valid(n) => Duration::from_secs(n),
        Seconds::Invalid => Duration::ZERO,
    }
}

/// The field names listed in `Vary` (§12.5.5 of RFC 9110), lower-case and without duplicates.
fn vary_names(resp: &HeaderMap) -> Result<Vec<HeaderName>, NotStorable> {
    let mut names: Vec<HeaderName> = Vec::new();
    for value in resp.get_all(VARY) {
        for member in value.as_bytes().split(|&b| b == b',') {
            let member = member.trim_ascii();
            if member.is_empty() {
                continue;
            }
            if member == b"*" {
                return Err(NotStorable::VaryStar);
            }
            // from_bytes lower-cases.
            let name = HeaderName::from_bytes(member).map_err(|_| NotStorable::InvalidVary)?;
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_util::headers;

    const LIMITS: Limits = Limits {
        default_ttl: Duration::from_secs(60),
        max_object: 1000,
    };

    fn wall() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    fn date(offset_secs: i64) -> String {
        let t = if offset_secs >= 0 {
            wall() + Duration::from_secs(offset_secs as u64)
        } else {
            wall() - Duration::from_secs(offset_secs.unsigned_abs())
        };
        httpdate::fmt_http_date(t)
    }

    fn decide(authorized: bool, resp: &[(&str, &str)]) -> Result<Storable, NotStorable> {
        storability(
            StatusCode::OK,
            authorized,
            &headers(resp),
            LIMITS,
            wall(),
            Instant::now(),
        )
    }

    /// Name, status, request had `Authorization`, response fields, expected refusal.
    type Case<'a> = (
        &'a str,
        u16,
        bool,
        &'a [(&'a str, &'a str)],
        Option<NotStorable>,
    );

    #[test]
    fn storability_rules() {
        use NotStorable::*;
        let cases: &[Case] = &[
            ("plain 200", 200, false, &[], None),
            (
                "404",
                404,
                false,
                &[("cache-control", "max-age=60")],
                Some(Status),
            ),
            ("206", 206, false, &[], Some(Status)),
            (
                "no-store",
                200,
                false,
                &[("cache-control", "no-store")],
                Some(NoStore),
            ),
            (
                "No-Store any case",
                200,
                false,
                &[("cache-control", "No-Store")],
                Some(NoStore),
            ),
            (
                "private",
                200,
                false,
                &[("cache-control", "private")],
                Some(Private),
            ),
            (
                "private=field",
                200,
                false,
                &[("cache-control", "private=\"x-a, x-b\"")],
                Some(Private),
            ),
            (
                "no-cache",
                200,
                false,
                &[("cache-control", "max-age=5, no-cache")],
                Some(NoCache),
            ),
            (
                "no-cache on 2nd line",
                200,
                false,
                &[
                    ("cache-control", "max-age=5"),
                    ("cache-control", "no-cache"),
                ],
                Some(NoCache),
            ),
            (
                "set-cookie",
                200,
                false,
                &[("set-cookie", "a=b")],
                Some(SetCookie),
            ),
            (
                "vary *",
                200,
                false,
                &[("vary", "accept, *")],
                Some(VaryStar),
            ),
            (
                "vary list",
                200,
                false,
                &[("vary", "Accept-Encoding, accept")],
                None,
            ),
            (
                "vary invalid",
                200,
                false,
                &[("vary", "a b")],
                Some(InvalidVary),
            ),
            (
                "authorization",
                200,
                true,
                &[("cache-control", "max-age=60")],
                Some(Authorization),
            ),
            (
                "authorization + public",
                200,
                true,
                &[("cache-control", "public")],
                None,
            ),
            (
                "authorization + s-maxage",
                200,
                true,
                &[("cache-control", "s-maxage=5")],
                None,
            ),
            (
                "authorization + must-revalidate",
                200,
                true,
                &[("cache-control", "must-revalidate")],
                None,
            ),
            (
                "content-length too large",
                200,
                false,
                &[("content-length", "1001")],
                Some(TooLarge),
            ),
            (
                "content-length at limit",
                200,
                false,
                &[("content-length", "1000")],
                None,
            ),
            (
                "max-age=0",
                200,
                false,
                &[("cache-control", "max-age=0")],
                Some(Stale),
            ),
            (
                "max-age invalid",
                200,
                false,
                &[("cache-control", "max-age=abc")],
                Some(Stale),
            ),
            (
                "max-age without value",
                200,
                false,
                &[("cache-control", "max-age")],
                Some(Stale),
            ),
            (
                "expires invalid",
                200,
                false,
                &[("expires", "0")],
                Some(Stale),
            ),
            (
                "expires before date",
                200,
                false,
                &[("date", &date(0)), ("expires", &date(-5))],
                Some(Stale),
            ),
            (
                "age beyond lifetime",
                200,
                false,
                &[("cache-control", "max-age=10"), ("age", "10")],
                Some(Stale),
            ),
            (
                "unknown directives ignored",
                200,
                false,
                &[("cache-control", "foo, bar=\"baz,no-store\", immutable")],
                None,
            ),
        ];
        for (name, status, authorized, resp, want) in cases {
            let got = storability(
                StatusCode::from_u16(*status).unwrap(),
                *authorized,
                &headers(resp),
                LIMITS,
                wall(),
                Instant::now(),
            );
            assert_eq!(got.err(), *want, "{name}");
        }
    }

    #[test]
    fn lifetime_precedence() {
        let secs = |resp: &[(&str, &str)]| decide(false, resp).unwrap().lifetime().as_secs();
        let expires = date(300);
        let now = date(0);
        assert_eq!(secs(&[]), 60, "default ttl");
        assert_eq!(secs(&[("date", &now), ("expires", &expires)]), 300);
        // Without Date, Expires counts from now.
        assert_eq!(secs(&[("expires", &expires)]), 300);
        // An invalid Date is as good as none.
        assert_eq!(secs(&[("date", "yesterday"), ("expires", &expires)]), 300);
        let with_max_age = [("cache-control", "max-age=20"), ("expires", &expires)];
        assert_eq!(secs(&with_max_age), 20, "max-age beats Expires");
        let all = [
            ("cache-control", "max-age=20, s-maxage=7"),
            ("expires", &expires),
        ];
        assert_eq!(secs(&all), 7, "s-maxage beats max-age");
        assert_eq!(
            secs(&[("cache-control", "max-age=20, max-age=5")]),
            20,
            "first wins"
        );
        assert_eq!(secs(&[("cache-control", "max-age=\"30\"")]), 30, "quoted");
        assert_eq!(
            secs(&[("cache-control", "MAX-AGE = 31")]),
            31,
            "spaces, case"
        );
        assert_eq!(
            secs(&[("cache-control", "max-age=99999999999999999999")]),
            1 << 31,
            "capped at 2^31"
        );
        // An invalid s-maxage is not rescued by a valid max-age.
        assert_eq!(
            decide(false, &[("cache-control", "s-maxage=x, max-age=5")]).err(),
            Some(NotStorable::Stale)
        );
    }

    #[test]
    fn zero_default_ttl_stores_only_explicit_freshness() {
        let limits = Limits {
            default_ttl: Duration::ZERO,
            ..LIMITS
        };
        let check = |resp: &HeaderMap| {
            storability(StatusCode::OK, false, resp, limits, wall(), Instant::now()).err()
        };
        assert_eq!(check(&HeaderMap::new()), Some(NotStorable::Stale));
        assert_eq!(check(&headers(&[("cache-control", "max-age=1")])), None);
    }

    #[test]
    fn age_header() {
        let age = |v: &str| {
            decide(false, &[("cache-control", "max-age=100"), ("age", v)])
                .unwrap()
                .initial_age()
                .as_secs()
        };
        assert_eq!(age("5"), 5);
        assert_eq!(age(" 7 "), 7);
        assert_eq!(age("8, 9"), 8, "first member of a list");
        assert_eq!(age("-1"), 0, "invalid is ignored");
        assert_eq!(age("soon"), 0, "invalid is ignored");
        assert_eq!(decide(false, &[]).unwrap().initial_age(), Duration::ZERO);
    }

    #[test]
    fn vary_names_are_lowercase_and_unique() {
        let s = decide(
            false,
            &[
                ("vary", "Accept-Encoding, ACCEPT"),
                ("vary", "accept-encoding,,"),
            ],
        )
        .unwrap();
        assert_eq!(s.vary, vec!["accept-encoding", "accept"]);
    }

    #[test]
    fn directive_parser() {
        let parse = |s: &str| {
            let mut out = Vec::new();
            for_each_directive(s.as_bytes(), |n, a| {
                out.push((
                    String::from_utf8_lossy(n).into_owned(),
                    a.map(|a| String::from_utf8_lossy(a).into_owned()),
                ))
            });
            out
        };
        let d = |n: &str, a: Option<&str>| (n.to_string(), a.map(str::to_string));
        assert_eq!(parse(""), vec![]);
        assert_eq!(parse(" , ,"), vec![]);
        assert_eq!(
            parse("public,max-age=5"),
            vec![d("public", None), d("max-age", Some("5"))]
        );
        assert_eq!(
            parse("no-cache=\"a, b\", private"),
            vec![d("no-cache", Some("a, b")), d("private", None)]
        );
        assert_eq!(
            parse(r#"x="a\"b,c", y"#),
            vec![d("x", Some(r#"a\"b,c"#)), d("y", None)]
        );
        assert_eq!(parse("x=\"open"), vec![d("x", Some("open"))]);
        assert_eq!(parse("a junk, b"), vec![d("a", None), d("b", None)]);
    }

    #[test]
    fn request_cacheability() {
        let none = HeaderMap::new();
        let no_store = headers(&[("cache-control", "no-store")]);
        let no_cache = headers(&[("cache-control", "no-cache"), ("pragma", "no-cache")]);
        let auth = headers(&[("authorization", "Basic eDp5")]);
        assert!(request_is_cacheable(&Method::GET, &none));
        assert!(request_is_cacheable(&Method::HEAD, &none));
        assert!(request_is_cacheable(&Method::GET, &no_cache));
        assert!(request_is_cacheable(&Method::GET, &auth));
        assert!(!request_is_cacheable(&Method::GET, &no_store));
        for m in [
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::PATCH,
            Method::OPTIONS,
        ] {
            assert!(!request_is_cacheable(&m, &none), "{m}");
        }
    }

    #[test]
    fn conditional_and_range_requests_do_not_lead() {
        assert!(may_lead(&HeaderMap::new()));
        assert!(may_lead(&headers(&[("accept", "*/*")])));
        for name in [
            "range",
            "if-none-match",
            "if-modified-since",
            "if-match",
            "if-range",
        ] {
            assert!(!may_lead(&headers(&[(name, "x")])), "{name}");
        }
    }
}
