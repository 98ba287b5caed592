//! Writing JSON string literals by hand, for the few JSON documents goaround produces (error
//! pages, access-log lines); the project deliberately has no JSON library.
//!
//! Input is bytes, not `&str`, because what gets logged comes from clients: header values may
//! carry bytes that are not UTF-8 (RFC 9110 §5.5 obs-text). Those become U+FFFD, so the
//! output is always valid JSON (RFC 8259 §8.1 requires UTF-8), and a client cannot end the
//! string or the line early.

use std::io::{self, Write};

/// Writes `bytes` as a quoted JSON string (RFC 8259 §7): `"` and `\` escaped, control
/// characters (and DEL) as `\n`, `\r`, `\t` or `\u00XX`, invalid UTF-8 as U+FFFD.
pub(crate) fn write_string<W: Write + ?Sized>(out: &mut W, bytes: &[u8]) -> io::Result<()> {
    out.write_all(b"\"")?;
    for chunk in bytes.utf8_chunks() {
        write_valid(out, chunk.valid().as_bytes())?;
        if !chunk.invalid().is_empty() {
            out.write_all("\u{FFFD}".as_bytes())?;
        }
    }
    out.write_all(b"\"")
}

/// Escapes UTF-8 text: only ASCII needs escaping, so multi-byte sequences pass in runs.
fn write_valid<W: Write + ?Sized>(out: &mut W, text: &[u8]) -> io::Result<()> {
    let mut run = 0;
    for (i, &b) in text.iter().enumerate() {
        let short: Option<&[u8]> = match b {
            b'"' => Some(b"\\\""),
            b'\\' => Some(b"\\\\"),
            b'\n' => Some(b"\\n"),
            b'\r' => Some(b"\\r"),
            b'\t' => Some(b"\\t"),
            0..=0x1f | 0x7f => None,
            _ => continue,
        };
        out.write_all(&text[run..i])?;
        match short {
            Some(s) => out.write_all(s)?,
            None => write!(out, "\\u{b:04x}")?,
        }
        run = i + 1;
    }
    out.write_all(&text[run..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings() {
        let cases: &[(&[u8], &str)] = &[
            (b"", r#""""#),
            (b"plain", r#""plain""#),
            (b"say \"hi\"", r#""say \"hi\"""#),
            (b"back\\slash", r#""back\\slash""#),
            (b"a\nb\rc\td", r#""a\nb\rc\td""#),
            (b"\x00\x1b\x7f", r#""\u0000\u001b\u007f""#),
            ("caf\u{e9} \u{1f600}".as_bytes(), "\"caf\u{e9} \u{1f600}\""),
            (b"bad \xff\xfe end", "\"bad \u{FFFD}\u{FFFD} end\""),
            (b"cut \xe2\x82", "\"cut \u{FFFD}\""),
        ];
        for (input, want) in cases {
            let mut out = Vec::new();
            write_string(&mut out, input).unwrap();
            assert_eq!(String::from_utf8(out).unwrap(), *want, "{input:?}");
        }
    }
}
