//! The request-head parser never panics, and what it accepts is self-consistent.
#![no_main]
use goaround::http1::{parse_request_head, BodyFraming, Parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Parse::Complete(head)) = parse_request_head(data) {
        assert!(head.head_len <= data.len());
        assert!(data[..head.head_len].ends_with(b"\r\n\r\n"));
        // A head with both framings, or chunked on HTTP/1.0, must never be accepted.
        if head.header("transfer-encoding").is_some() {
            assert_eq!(head.framing, BodyFraming::Chunked);
            assert!(head.header("content-length").is_none());
        }
        // The fields index the head they came from, and every one is in it.
        assert_eq!(head.raw(), &data[..head.head_len]);
        for field in head.fields().iter() {
            assert!(!field.name.is_empty());
            assert!(field.line.starts_with(field.name));
        }
    }
});
