//! Field syntax shared by both directions of the codec (RFC 9110 §5): optional whitespace,
//! comma-separated lists, decimal numbers, tokens, and which fields are hop-by-hop.
//!
//! Everything works on raw bytes as received, with names in whatever case the peer sent, and
//! nothing allocates: the head writers call these once per field.

use super::field_index::Fields;

/// The hop-by-hop fields of RFC 9110 §7.6.1, plus `Proxy-Connection` (never standard, still
/// sent by old clients and meant for one hop only), by length: the head writers ask about
/// every field they pass on, and the length alone answers for most.
fn hop_by_hop_of_len(len: usize) -> &'static [&'static str] {
    match len {
        2 => &["te"],
        7 => &["trailer", "upgrade"],
        10 => &["connection", "keep-alive"],
        16 => &["proxy-connection"],
        17 => &["transfer-encoding"],
        _ => &[],
    }
}

/// Strips optional whitespace (SP / HTAB, RFC 9110 §5.6.3) from both ends.
pub(crate) fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// A non-empty run of ASCII digits that fits in a u64 (no sign, no spaces, no hex).
pub(crate) fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// The non-empty elements of a comma-separated list value, whitespace trimmed (RFC 9110
/// §5.6.1: a recipient accepts and ignores empty elements).
pub(crate) fn list_items(value: &[u8]) -> ListItems<'_> {
    ListItems { rest: Some(value) }
}

/// What [`list_items`] returns: written out rather than `split().map().filter()`, which cost
/// a measurable share of a small request when every head's `Connection` went through it.
#[derive(Clone)]
pub(crate) struct ListItems<'a> {
    /// What is left after the last comma taken; `None` once the last element is out.
    rest: Option<&'a [u8]>,
}

impl<'a> Iterator for ListItems<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        while let Some(rest) = self.rest {
            let item = match rest.iter().position(|&b| b == b',') {
                Some(comma) => {
                    self.rest = Some(&rest[comma + 1..]);
                    &rest[..comma]
                }
                None => {
                    self.rest = None;
                    rest
                }
            };
            let item = trim_ows(item);
            if !item.is_empty() {
                return Some(item);
            }
        }
        None
    }
}

/// Whether a list value has `token` as one of its elements, ignoring ASCII case.
pub(crate) fn list_contains(value: &[u8], token: impl AsRef<[u8]>) -> bool {
    let token = token.as_ref();
    list_items(value).any(|item| item.eq_ignore_ascii_case(token))
}

/// Whether `name` (any case) is one of the fixed hop-by-hop fields.
pub(crate) fn is_fixed_hop_by_hop(name: impl AsRef<[u8]>) -> bool {
    let name = name.as_ref();
    hop_by_hop_of_len(name.len())
        .iter()
        .any(|h| h.as_bytes().eq_ignore_ascii_case(name))
}

/// Whether a `Connection` field of `fields` lists `token` (any case): a connection option
/// such as `close`, or the name of a field that is hop-by-hop for this message (RFC 9110
/// §7.6.1). Called per field this is quadratic in the field count, which the head limits
/// keep small, and it needs no allocation.
pub(crate) fn connection_lists(fields: Fields<'_>, token: impl AsRef<[u8]>) -> bool {
    let token = token.as_ref();
    fields
        .all("connection")
        .any(|value| list_contains(value, token))
}

/// The elements of the `Connection` fields of one head, found once: asking whether they list
/// a field name, as the head writers do for every field, is then a scan of a few short
/// slices rather than a parse of the values each time.
pub(crate) struct ConnectionFields<'h> {
    tokens: [&'h [u8]; 8],
    len: usize,
    /// More elements than kept: ask the whole head.
    all: Option<Fields<'h>>,
}

impl<'h> ConnectionFields<'h> {
    pub(crate) fn of(fields: Fields<'h>) -> ConnectionFields<'h> {
        let mut found = ConnectionFields {
            tokens: [&[]; 8],
            len: 0,
            all: None,
        };
        for value in fields.all("connection") {
            for token in list_items(value) {
                if found.len == found.tokens.len() {
                    found.all = Some(fields);
                    return found;
                }
                found.tokens[found.len] = token;
                found.len += 1;
            }
        }
        found
    }

    /// Whether one of them lists `token` (any case).
    pub(crate) fn list(&self, token: impl AsRef<[u8]>) -> bool {
        let token = token.as_ref();
        match self.all {
            Some(fields) => connection_lists(fields, token),
            None => self.tokens[..self.len]
                .iter()
                .any(|t| t.eq_ignore_ascii_case(token)),
        }
    }
}

/// `tchar` of RFC 9110 §5.6.2: the bytes a token is made of.
pub(crate) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Appends `n` in decimal. Heads carry a status and a length each; `write!` through
/// `core::fmt` cost a measurable share of a small request's user time.
pub(crate) fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http1::field_index::{index_request, FieldIndex};

    /// A request head with `fields` (CRLF-terminated lines), and the index of its fields.
    fn indexed(fields: &str) -> (Vec<u8>, FieldIndex) {
        let raw = format!("GET / HTTP/1.1\r\n{fields}\r\n").into_bytes();
        let index = index_request(&raw);
        (raw, index)
    }

    #[test]
    fn connection_fields_found_once_also_beyond_the_kept_ones() {
        let values = ["a", "b, c", "d", "e, f, g, h", "i, X-Late", "j"];
        for n in [1, 4, 5, 6] {
            let raw: String = values[..n]
                .iter()
                .map(|v| format!("Connection: {v}\r\n"))
                .collect();
            let (raw, index) = indexed(&raw);
            let found = ConnectionFields::of(index.view(&raw));
            assert!(found.list("A"), "{n}");
            assert_eq!(found.list("x-late"), n >= 5, "{n}");
            assert_eq!(found.list("h"), n >= 4, "{n}");
            assert!(!found.list("z"), "{n}");
        }
    }

    #[test]
    fn decimals_written() {
        for n in [0u64, 7, 10, 200, 65_536, u64::MAX] {
            let mut out = b"x".to_vec();
            push_decimal(&mut out, n);
            assert_eq!(out, format!("x{n}").as_bytes());
        }
    }

    #[test]
    fn lists() {
        let items: Vec<&[u8]> = list_items(b" a ,, b\t,c,").collect();
        assert_eq!(items, [b"a".as_slice(), b"b", b"c"]);
        assert!(list_contains(b"keep-alive, Upgrade", "upgrade"));
        assert!(!list_contains(b"upgrades", "upgrade"));
        assert!(!list_contains(b"", "upgrade"));
    }

    #[test]
    fn list_items_split_trim_and_skip_empties() {
        let reference = |v: &'static [u8]| -> Vec<&'static [u8]> {
            v.split(|&b| b == b',')
                .map(trim_ows)
                .filter(|item| !item.is_empty())
                .collect()
        };
        for value in [
            &b""[..],
            b",",
            b",,",
            b" , ",
            b"\t",
            b"a",
            b"a,",
            b",a",
            b" a , b ",
            b"a,,b",
            b"a, \t ,b",
            b"close, X-Hop ,keep-alive",
        ] {
            assert_eq!(
                list_items(value).collect::<Vec<_>>(),
                reference(value),
                "{value:?}"
            );
        }
    }

    #[test]
    fn decimals() {
        for (raw, want) in [
            (&b"0"[..], Some(0)),
            (b"0012", Some(12)),
            (b"18446744073709551615", None), // 20 digits
            (b"9999999999999999999", Some(9_999_999_999_999_999_999)),
            (b"", None),
            (b"+1", None),
            (b"1 ", None),
            (b"0x1", None),
        ] {
            assert_eq!(parse_decimal(raw), want, "{raw:?}");
        }
    }

    #[test]
    fn hop_by_hop_in_any_case() {
        assert!(is_fixed_hop_by_hop("Transfer-Encoding"));
        assert!(is_fixed_hop_by_hop("PROXY-CONNECTION"));
        assert!(!is_fixed_hop_by_hop("Content-Length"));
        for name in [
            "TE",
            "Trailer",
            "Upgrade",
            "Connection",
            "Keep-Alive",
            "Proxy-Connection",
            "Transfer-Encoding",
        ] {
            assert!(is_fixed_hop_by_hop(name), "{name}");
            assert!(is_fixed_hop_by_hop(name.to_ascii_lowercase()), "{name}");
        }
        // The same lengths, other names.
        for name in [
            "Tf",
            "Trailed",
            "Referer",
            "Connectiom",
            "Keep-Alivf",
            "X-Forwarded-Host",
            "Transfer-Encodinf",
            "",
        ] {
            assert!(!is_fixed_hop_by_hop(name), "{name}");
        }
        let (raw, index) = indexed("Connection: close, X-Hop\r\nx-hop: 1\r\n");
        let fields = index.view(&raw);
        assert!(connection_lists(fields, "X-HOP"));
        assert!(connection_lists(fields, "close"));
        assert!(!connection_lists(fields, "x-other"));
    }

    #[test]
    fn token_bytes() {
        assert!(b"ext-Name_1.~".iter().all(|&b| is_tchar(b)));
        assert!(!b" \t\"=;,\0\x7f\x80".iter().any(|&b| is_tchar(b)));
    }
}
