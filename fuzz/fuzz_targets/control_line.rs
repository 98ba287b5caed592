//! The control-socket line parser never panics, and a list it accepts is what it parsed.
#![no_main]
use goaround::config::{parse_backend_list, BackendUrl};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(line) = std::str::from_utf8(data) else { return };
    if let Ok(urls) = parse_backend_list(line) {
        assert!(!urls.is_empty());
        for url in &urls {
            // A normalised URL parses back to itself.
            assert_eq!(BackendUrl::parse(&url.base).ok().as_ref(), Some(url));
        }
    }
});
