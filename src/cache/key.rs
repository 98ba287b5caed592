//! Which stored response answers which request (RFC 9111 §4.1).
//!
//! The base key is the target URI as the client addressed it: scheme, Host (lower-cased,
//! RFC 3986 §3.2.2) and the request-target with its query, byte for byte. Under one base key
//! live the variants a `Vary` response header asked for; each keeps the values the storing
//! request had for the varied fields, and a later request is served by a variant only when
//! its own values are the same bytes. A field absent from the request never matches one
//! present, even if empty. Lines of a repeated field are joined with ", " (RFC 9110 §5.3).

use std::borrow::Cow;

use http::{HeaderMap, HeaderName};

/// `scheme://host/target`. Host cannot hold '/' and a target starts with '/' (or is '*'),
/// so distinct triples give distinct keys.
pub(crate) fn base_key(scheme: &str, host: &str, target: &str) -> String {
    let mut key = String::with_capacity(scheme.len() + 3 + host.len() + target.len());
    key.push_str(scheme);
    key.push_str("://");
    key.extend(host.chars().map(|c| c.to_ascii_lowercase()));
    key.push_str(target);
    key
}

/// The values a stored variant was selected by: one per `Vary` name, `None` when the request
/// lacked the field.
pub(crate) type VaryValues = Box<[(HeaderName, Option<Box<[u8]>>)]>;

/// Records the storing request's values for `names`.
pub(crate) fn vary_values(names: &[HeaderName], req: &HeaderMap) -> VaryValues {
    names
        .iter()
        .map(|name| (name.clone(), field_value(req, name).map(Box::from)))
        .collect()
}

/// Whether `req` selects a variant stored with `stored` (§4.1).
pub(crate) fn vary_matches(stored: &[(HeaderName, Option<Box<[u8]>>)], req: &HeaderMap) -> bool {
    stored
        .iter()
        .all(|(name, want)| field_value(req, name).as_deref() == want.as_deref())
}

/// Bytes the vary values take, for the store's accounting.
pub(crate) fn vary_bytes(values: &[(HeaderName, Option<Box<[u8]>>)]) -> usize {
    values
        .iter()
        .map(|(name, value)| name.as_str().len() + value.as_ref().map_or(0, |v| v.len()))
        .sum()
}

/// The combined field value: borrowed for the usual single line, joined for several.
fn field_value<'a>(req: &'a HeaderMap, name: &HeaderName) -> Option<Cow<'a, [u8]>> {
    let mut lines = req.get_all(name).iter();
    let first = lines.next()?;
    let mut joined: Option<Vec<u8>> = None;
    for line in lines {
        let buf = joined.get_or_insert_with(|| first.as_bytes().to_vec());
        buf.extend_from_slice(b", ");
        buf.extend_from_slice(line.as_bytes());
    }
    Some(match joined {
        Some(buf) => Cow::Owned(buf),
        None => Cow::Borrowed(first.as_bytes()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_util::headers;

    #[test]
    fn base_key_keeps_query_and_lowercases_host() {
        assert_eq!(
            base_key("http", "Example.COM:8080", "/A?b=1"),
            "http://example.com:8080/A?b=1"
        );
        assert_ne!(base_key("http", "a", "/x?1"), base_key("http", "a", "/x?2"));
        assert_ne!(base_key("http", "a", "/x"), base_key("https", "a", "/x"));
        assert_ne!(base_key("http", "a", "/x"), base_key("http", "b", "/x"));
    }

    #[test]
    fn absent_is_not_empty() {
        let names = [HeaderName::from_static("accept-encoding")];
        let absent = vary_values(&names, &HeaderMap::new());
        let empty = vary_values(&names, &headers(&[("accept-encoding", "")]));
        assert!(vary_matches(&absent, &HeaderMap::new()));
        assert!(!vary_matches(&absent, &headers(&[("accept-encoding", "")])));
        assert!(vary_matches(&empty, &headers(&[("accept-encoding", "")])));
        assert!(!vary_matches(&empty, &HeaderMap::new()));
    }

    #[test]
    fn values_compare_as_bytes_and_lines_join() {
        let names = [
            HeaderName::from_static("accept"),
            HeaderName::from_static("x-lang"),
        ];
        let req = headers(&[("accept", "a"), ("Accept", "b"), ("x-lang", "en")]);
        let stored = vary_values(&names, &req);
        assert_eq!(stored[0].1.as_deref(), Some(&b"a, b"[..]));
        assert!(vary_matches(&stored, &req));
        assert!(vary_matches(
            &stored,
            &headers(&[("accept", "a, b"), ("x-lang", "en")])
        ));
        assert!(!vary_matches(
            &stored,
            &headers(&[("accept", "a, b"), ("x-lang", "EN")])
        ));
        assert!(!vary_matches(&stored, &headers(&[("accept", "a, b")])));
        assert_eq!(vary_bytes(&stored), "accept".len() + 4 + "x-lang".len() + 2);
    }

    #[test]
    fn no_vary_matches_everything() {
        let stored = vary_values(&[], &headers(&[("accept", "a")]));
        assert!(vary_matches(&stored, &HeaderMap::new()));
    }
}
