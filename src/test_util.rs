//! Helpers shared by the unit tests of several modules.

use http::{HeaderMap, HeaderName};

// The integration tests' temp directories, shared rather than copied.
#[path = "../tests/support/tempdir.rs"]
pub(crate) mod tempdir;

/// A header map from `(name, value)` pairs, in order, repeats kept.
pub(crate) fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (name, value) in pairs {
        let name = HeaderName::from_bytes(name.as_bytes()).expect("valid test header name");
        h.append(name, value.parse().expect("valid test header value"));
    }
    h
}
