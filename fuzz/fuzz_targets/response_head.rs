//! The response-head parser never panics, and what it accepts is self-consistent and can be
//! written back for the client as a head that parses again.
#![no_main]
use goaround::http1::response::{
    write_client_head, write_informational, write_switching_protocols,
};
use goaround::http1::{parse_response_head, ResponseError, UpstreamFraming, Version};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for request_was_head in [false, true] {
        let Ok(Some(head)) = parse_response_head(data, request_was_head) else {
            continue;
        };
        assert!(head.head_len <= data.len());
        // A body that ends at close leaves nothing to reuse.
        assert!(!(head.keep_alive && head.framing == UpstreamFraming::UntilClose));
        let raw = &data[..head.head_len];
        let mut out = Vec::new();
        match head.status {
            101 => write_switching_protocols(&mut out, raw, &head),
            100..=199 => write_informational(&mut out, raw, &head),
            _ => {
                let framing = head.client_framing(Version::Http11);
                write_client_head(
                    &mut out,
                    raw,
                    &head,
                    framing,
                    head.keep_alive,
                    Version::Http11,
                    &[],
                );
            }
        }
        match parse_response_head(&out, request_was_head) {
            Ok(Some(again)) => {
                assert_eq!(again.status, head.status);
                assert_eq!(again.head_len, out.len());
            }
            // CRLF for bare LF and the proxy's own fields can push a head past the limits.
            Err(ResponseError::HeadTooLarge) => {}
            other => panic!("rewritten head does not parse: {other:?}"),
        }
    }
});
