//! The chunked decoder never panics, never produces more than it consumed, and gives the
//! same result whatever the fragmentation of its input.
#![no_main]
use goaround::http1::{ChunkedDecoder, ChunkedError};
use libfuzzer_sys::fuzz_target;

fn decode(data: &[u8], step: usize, out_size: usize) -> Result<(Vec<u8>, usize, bool), ChunkedError> {
    let mut decoder = ChunkedDecoder::new();
    let mut body = Vec::new();
    let mut out = vec![0u8; out_size];
    let mut pos = 0;
    while pos < data.len() && !decoder.is_done() {
        let end = (pos + step).min(data.len());
        let (consumed, produced) = decoder.decode(&data[pos..end], &mut out)?;
        assert!(produced <= consumed);
        body.extend_from_slice(&out[..produced]);
        pos += consumed;
        if consumed == 0 && produced == 0 {
            break;
        }
    }
    Ok((body, pos, decoder.is_done()))
}

fuzz_target!(|data: &[u8]| {
    let whole = decode(data, data.len().max(1), 4096);
    let bytewise = decode(data, 1, 7);
    match (whole, bytewise) {
        (Ok(a), Ok(b)) => {
            if a.2 && b.2 {
                assert_eq!(a, b);
            }
        }
        (Err(a), Err(b)) => assert_eq!(a, b),
        // Fragmentation may only change how far the decoder got before an error, never
        // whether a complete body is accepted.
        (Ok(a), Err(_)) => assert!(!a.2),
        (Err(_), Ok(b)) => assert!(!b.2),
    }
});
