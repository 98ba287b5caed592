//! The request-head parser never panics, and what it accepts is self-consistent.
#![no_main]
use goaround::http1::{parse_request_head, BodyFraming, Parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Parse::Complete(head)) = parse_request_head(data) {
        assert!(head.head_len <= data.len());
        assert!(data[..head.head_len].ends_with(b"\r\n\r\n"));
        // A head with both framings, or chunked on HTTP/1.0, must never be accepted.
        if head.headers.contains_key("transfer-encoding") {
            assert_eq!(head.framing, BodyFraming::Chunked);
            assert!(!head.headers.contains_key("content-length"));
        }
    }
});
