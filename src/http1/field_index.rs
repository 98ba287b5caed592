//! Where each field of a parsed head lies in the head's bytes, in received order.
//!
//! A head is parsed once. What its writers need afterwards (every field's name and value,
//! with their case and order) is kept as offsets into the bytes the head was parsed from,
//! rather than copied field by field or parsed a second time: a few bytes per field and one
//! allocation per head. [`FieldIndex::view`] pairs the offsets with those bytes again.

use std::ops::Range;

use super::limits::{MAX_HEAD_BYTES, MAX_RESPONSE_HEAD_BYTES};

// Offsets are u16: every head is refused before it reaches 64 KiB.
const _: () = assert!(MAX_HEAD_BYTES <= u16::MAX as usize);
const _: () = assert!(MAX_RESPONSE_HEAD_BYTES <= u16::MAX as usize);

/// One field: where its name and its value start in the head, and their lengths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    name: u16,
    name_len: u16,
    value: u16,
    value_len: u16,
}

/// The fields of one head, as offsets into its bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldIndex {
    spans: Vec<Span>,
}

impl FieldIndex {
    /// Indexes `fields`, which httparse took from `head` (the head's first byte at `head[0]`,
    /// and shorter than 64 KiB).
    pub(crate) fn of(head: &[u8], fields: &[httparse::Header<'_>]) -> FieldIndex {
        let at = |part: &[u8]| -> (u16, u16) {
            let span = span_of(head, part);
            match (u16::try_from(span.start), u16::try_from(span.len())) {
                (Ok(start), Ok(len)) => (start, len),
                _ => (0, 0),
            }
        };
        let spans = fields
            .iter()
            .map(|f| {
                let (name, name_len) = at(f.name.as_bytes());
                let (value, value_len) = at(f.value);
                Span {
                    name,
                    name_len,
                    value,
                    value_len,
                }
            })
            .collect();
        FieldIndex { spans }
    }

    /// The fields, read from `head`: the bytes this index was made from.
    pub fn view<'a>(&'a self, head: &'a [u8]) -> Fields<'a> {
        Fields {
            head,
            spans: &self.spans,
        }
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }
}

/// One field as received: name and value bytes, the value without surrounding whitespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field<'a> {
    pub name: &'a [u8],
    pub value: &'a [u8],
    /// The field line as received from the name to the end of the value (`Name: value`,
    /// with the sender's spacing), without trailing whitespace or line end: what a writer
    /// copies in one piece to pass the field on.
    pub line: &'a [u8],
}

impl Field<'_> {
    /// Whether the field is called `name` (ASCII case ignored, as field names are).
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name.as_bytes())
    }
}

/// The fields of a head, in received order.
#[derive(Debug, Clone, Copy)]
pub struct Fields<'a> {
    head: &'a [u8],
    spans: &'a [Span],
}

impl<'a> Fields<'a> {
    /// Every field, in received order.
    pub fn iter(self) -> impl Iterator<Item = Field<'a>> + Clone + 'a {
        let head = self.head;
        self.spans.iter().map(move |s| {
            let name = slice(head, s.name, s.name_len);
            let value = slice(head, s.value, s.value_len);
            // The colon follows the name at once (httparse allows no space before it).
            let end = if s.value_len > 0 {
                usize::from(s.value) + usize::from(s.value_len)
            } else {
                usize::from(s.name) + usize::from(s.name_len) + 1
            };
            let line = head.get(usize::from(s.name)..end).unwrap_or_default();
            Field { name, value, line }
        })
    }

    /// The values of every field called `name`, in received order.
    pub fn all(self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        let head = self.head;
        self.spans
            .iter()
            .filter(move |s| named(head, s, name))
            .map(move |s| slice(head, s.value, s.value_len))
    }

    /// The value of the first field called `name`.
    pub fn get(self, name: &str) -> Option<&'a [u8]> {
        let head = self.head;
        self.spans
            .iter()
            .find(|s| named(head, s, name))
            .map(|s| slice(head, s.value, s.value_len))
    }

    pub fn len(self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(self) -> bool {
        self.spans.is_empty()
    }
}

/// Where `part`, a slice httparse took from `buf`, lies in `buf`; `0..0` for an empty one.
pub(crate) fn span_of(buf: &[u8], part: &[u8]) -> Range<usize> {
    if part.is_empty() {
        return 0..0;
    }
    let start = (part.as_ptr() as usize).wrapping_sub(buf.as_ptr() as usize);
    debug_assert!(start + part.len() <= buf.len(), "a part outside its head");
    start..start + part.len()
}

/// A request head's fields as [`parse_request_head`](super::parse_request_head) indexes them,
/// for tests of what reads them.
#[cfg(test)]
pub(crate) fn index_request(raw: &[u8]) -> FieldIndex {
    let mut storage = [httparse::EMPTY_HEADER; 16];
    let mut req = httparse::Request::new(&mut storage);
    assert!(req.parse(raw).unwrap().is_complete());
    FieldIndex::of(raw, req.headers)
}

/// Whether the field at `span` is called `name` (any case). Every lookup scans every field,
/// so the length, which rules out nearly all of them, is compared before any byte.
fn named(head: &[u8], span: &Span, name: &str) -> bool {
    usize::from(span.name_len) == name.len()
        && slice(head, span.name, span.name_len).eq_ignore_ascii_case(name.as_bytes())
}

/// `len` bytes of `head` from `start`; nothing when that is not inside `head` (an index
/// paired with bytes it was not made from: a caller's bug, not worth a panic mid-request).
fn slice(head: &[u8], start: u16, len: u16) -> &[u8] {
    let start = usize::from(start);
    head.get(start..start + usize::from(len))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::index_request as index;

    #[test]
    fn keeps_names_values_order_and_case() {
        let raw = b"GET / HTTP/1.1\r\nHost: a\r\nX-Two:  b c \r\nx-two:d\r\nEmpty:\r\n\r\n";
        let idx = index(raw);
        let lines: Vec<&[u8]> = idx.view(raw).iter().map(|f| f.line).collect();
        assert_eq!(
            lines,
            [&b"Host: a"[..], b"X-Two:  b c", b"x-two:d", b"Empty:"]
        );
        let fields: Vec<(&[u8], &[u8])> = idx.view(raw).iter().map(|f| (f.name, f.value)).collect();
        assert_eq!(
            fields,
            [
                (&b"Host"[..], &b"a"[..]),
                (b"X-Two", b"b c"),
                (b"x-two", b"d"),
                (b"Empty", b""),
            ]
        );
        assert_eq!(idx.len(), 4);
    }

    #[test]
    fn lookups_ignore_case() {
        let raw = b"GET / HTTP/1.1\r\nHost: a\r\nX-Two: b\r\nx-two: d\r\n\r\n";
        let idx = index(raw);
        let view = idx.view(raw);
        assert_eq!(view.get("x-TWO"), Some(&b"b"[..]));
        assert_eq!(view.all("X-two").collect::<Vec<_>>(), [&b"b"[..], b"d"]);
        assert_eq!(view.get("absent"), None);
    }

    #[test]
    fn the_wrong_bytes_give_empty_fields_not_a_panic() {
        let raw = b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n";
        let idx = index(raw);
        let short = b"GET";
        let field = idx.view(short).iter().next().unwrap();
        assert_eq!(
            (field.name, field.value, field.line),
            (&b""[..], &b""[..], &b""[..])
        );
    }
}
