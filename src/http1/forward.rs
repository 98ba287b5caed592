//! The request head sent to a backend, rebuilt from the client's head as received.
//!
//! [`write_upstream_head`] writes `METHOD target HTTP/1.1`, then the client's field lines in
//! received order with their original names and values, minus what must not cross this hop,
//! plus the fields this proxy owns:
//! - dropped: hop-by-hop fields (RFC 9110 §7.6.1: the fixed ones and those the client's
//!   `Connection` lists), Content-Length and Transfer-Encoding (the framing is written from
//!   [`Forwarding::body`]), `Expect` (the proxy answers `100-continue` itself, RFC 9110
//!   §10.1.1) and `HTTP2-Settings` (an h2c upgrade is refused by not passing it on);
//! - `Host`: the parsed one, so an absolute-form target's authority replaces the received
//!   field (RFC 9112 §3.2.2);
//! - `X-Forwarded-For`: the client's list, then the client's address, as every proxy in a
//!   chain appends; `X-Forwarded-Proto`, `X-Forwarded-Host` and `X-Real-IP` describe this hop
//!   and replace any the client sent. Each owned field takes the place of the client's first
//!   one of that name, or is appended;
//! - no `Connection` field, since an HTTP/1.1 connection persists by default (RFC 9112 §9.3),
//!   except `Connection: Upgrade` and `Upgrade: websocket` for a WebSocket handshake.
//!
//! Whether a request is a WebSocket handshake is [`is_websocket_upgrade`]; any other upgrade
//! (`h2c`) is served as plain HTTP/1.1, its `Upgrade` dropped like any hop-by-hop field.

use std::net::IpAddr;

use http::Method;

use super::field_index::Fields;
use super::fields::{
    connection_lists, is_fixed_hop_by_hop, list_contains, list_items, push_decimal,
    ConnectionFields,
};
use super::request::{BodyFraming, RequestHead, Version};

/// How one request goes to its backend, besides the client's own head.
#[derive(Debug, Clone)]
pub struct Forwarding<'a> {
    /// The client's address as [`client_ip_text`] writes it, for `X-Forwarded-For` and
    /// `X-Real-IP` (rendered once per connection, not per request).
    pub client_ip: &'a str,
    /// `"http"` or `"https"`: the scheme the client used, for `X-Forwarded-Proto`.
    pub proto: &'static str,
    /// The request-target to send (the caller may have rewritten the path). Ignored for
    /// `OPTIONS *`, which keeps its asterisk-form.
    pub target: &'a str,
    /// How the body is framed upstream (not necessarily as the client framed it).
    pub body: BodyFraming,
    /// The request is a WebSocket handshake to pass on ([`is_websocket_upgrade`]).
    pub websocket: bool,
}

/// Fields this proxy writes itself, in the order they are appended when the client sent none.
const OWNED: [(Owned, &str); 5] = [
    (Owned::Host, "Host"),
    (Owned::ForwardedFor, "X-Forwarded-For"),
    (Owned::ForwardedProto, "X-Forwarded-Proto"),
    (Owned::ForwardedHost, "X-Forwarded-Host"),
    (Owned::RealIp, "X-Real-IP"),
];

#[derive(Debug, Clone, Copy)]
enum Owned {
    Host,
    ForwardedFor,
    ForwardedProto,
    ForwardedHost,
    RealIp,
}

/// The client address as it goes into `X-Forwarded-For` and `X-Real-IP`: an IPv4 client
/// seen through a dual-stack socket is named as IPv4.
pub fn client_ip_text(ip: IpAddr) -> String {
    ip.to_canonical().to_string()
}

/// Whether the request asks to become a WebSocket (RFC 6455 §4.1, RFC 9110 §7.8): an
/// HTTP/1.1 GET whose `Connection` lists `upgrade` and whose `Upgrade` lists `websocket`, in
/// any case. Any other upgrade token (`h2c`) is not one: the request is served as HTTP/1.1.
pub fn is_websocket_upgrade(head: &RequestHead) -> bool {
    head.method == Method::GET
        && head.version == Version::Http11
        && head.connection_lists("upgrade")
        && head
            .fields()
            .all("upgrade")
            .any(|v| list_contains(v, "websocket"))
}

/// Appends the request head for the backend to `out` (see the module documentation for what
/// it contains). Nothing is allocated beyond growing `out`.
pub fn write_upstream_head(out: &mut Vec<u8>, head: &RequestHead, fwd: &Forwarding<'_>) {
    let fields = head.fields();
    let target = if head.target == "*" { "*" } else { fwd.target };
    out.extend_from_slice(head.method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");

    let mut written = [false; OWNED.len()];
    let connection = ConnectionFields::of(fields);
    for field in fields.iter() {
        if let Some(i) = OWNED.iter().position(|(_, name)| field.is(name)) {
            if !written[i] {
                written[i] = true;
                write_owned(out, OWNED[i].0, field.name, fields, head, fwd);
            }
        } else if is_end_to_end(field.name, &connection) {
            out.extend_from_slice(field.line);
            out.extend_from_slice(b"\r\n");
        }
    }
    for (i, &(owned, name)) in OWNED.iter().enumerate() {
        if !written[i] {
            write_owned(out, owned, name.as_bytes(), fields, head, fwd);
        }
    }

    match fwd.body {
        BodyFraming::Length(n) => {
            out.extend_from_slice(b"Content-Length: ");
            push_decimal(out, n);
            out.extend_from_slice(b"\r\n");
        }
        BodyFraming::Chunked => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
        // RFC 9110 §8.6: methods whose content means something get a length even when it is
        // 0; some servers answer 411 otherwise (Go's client does the same).
        BodyFraming::None if [Method::POST, Method::PUT, Method::PATCH].contains(&head.method) => {
            out.extend_from_slice(b"Content-Length: 0\r\n");
        }
        BodyFraming::None => {}
    }
    if fwd.websocket {
        out.extend_from_slice(b"Connection: Upgrade\r\nUpgrade: ");
        out.extend_from_slice(websocket_token(fields));
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Whether a client field goes to the backend; the owned ones are handled before this.
fn is_end_to_end(name: &[u8], connection: &ConnectionFields<'_>) -> bool {
    !is_fixed_hop_by_hop(name)
        && !connection.list(name)
        && !["content-length", "expect", "http2-settings"]
            .iter()
            .any(|n| n.as_bytes().eq_ignore_ascii_case(name))
}

/// Writes one field the proxy owns under `name` (the client's spelling when it sent one).
fn write_owned(
    out: &mut Vec<u8>,
    owned: Owned,
    name: &[u8],
    fields: Fields<'_>,
    head: &RequestHead,
    fwd: &Forwarding<'_>,
) {
    let client_ip = fwd.client_ip;
    let host = head.host.as_deref().filter(|h| !h.is_empty());
    match owned {
        // Only an HTTP/1.0 request may come without any host; it is forwarded without.
        Owned::Host => {
            if let Some(host) = head.host.as_deref() {
                write_field(out, name, host.as_bytes());
            }
        }
        Owned::ForwardedFor => {
            out.extend_from_slice(name);
            out.extend_from_slice(b": ");
            // A client that lists X-Forwarded-For in Connection wants its own dropped here.
            if !connection_lists(fields, "x-forwarded-for") {
                for item in fields.all("x-forwarded-for").flat_map(list_items) {
                    out.extend_from_slice(item);
                    out.extend_from_slice(b", ");
                }
            }
            out.extend_from_slice(client_ip.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        Owned::ForwardedProto => write_field(out, name, fwd.proto.as_bytes()),
        Owned::ForwardedHost => {
            if let Some(host) = host {
                write_field(out, name, host.as_bytes());
            }
        }
        Owned::RealIp => {
            write_field(out, name, client_ip.as_bytes());
        }
    }
}

/// The `websocket` element of the client's `Upgrade`, as the client spelled it.
fn websocket_token<'b>(fields: Fields<'b>) -> &'b [u8] {
    fields
        .all("upgrade")
        .flat_map(list_items)
        .find(|item| item.eq_ignore_ascii_case(b"websocket"))
        .unwrap_or(b"websocket")
}

fn write_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http1::{parse_request_head, Parse};

    fn head(raw: &str) -> RequestHead {
        match parse_request_head(raw.as_bytes()).unwrap() {
            Parse::Complete(h) => h,
            Parse::Partial => panic!("partial: {raw:?}"),
        }
    }

    fn forwarding(head: &RequestHead) -> Forwarding<'_> {
        Forwarding {
            client_ip: "10.0.0.9",
            proto: "http",
            target: &head.target,
            body: head.framing,
            websocket: is_websocket_upgrade(head),
        }
    }

    /// The head sent upstream for `raw`, with `change` applied to the default forwarding.
    fn upstream_with(raw: &str, change: impl FnOnce(&mut Forwarding<'_>)) -> String {
        let h = head(raw);
        let mut fwd = forwarding(&h);
        change(&mut fwd);
        let mut out = b"kept".to_vec();
        write_upstream_head(&mut out, &h, &fwd);
        let out = String::from_utf8(out).unwrap();
        out.strip_prefix("kept").unwrap().to_owned()
    }

    fn upstream(raw: &str) -> String {
        upstream_with(raw, |_| {})
    }

    /// The forwarding fields as appended when the client sent none, for host `h`.
    const OWN: &str =
        "X-Forwarded-For: 10.0.0.9\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: h\r\nX-Real-IP: 10.0.0.9\r\n";

    #[test]
    fn hop_by_hop_and_framing_are_dropped() {
        let out = upstream(
            "POST / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, X-Private\r\nX-Private: 1\r\n\
             Keep-Alive: 5\r\nTE: trailers\r\nTrailer: X-T\r\nUpgrade: h2c\r\nProxy-Connection: x\r\n\
             Transfer-Encoding: chunked\r\nExpect: 100-continue\r\nX-Keep: yes\r\n\r\n",
        );
        assert_eq!(
            out,
            format!(
                "POST / HTTP/1.1\r\nHost: h\r\nX-Keep: yes\r\n{OWN}Transfer-Encoding: chunked\r\n\r\n"
            )
        );
    }

    #[test]
    fn names_order_and_values_are_kept() {
        let out = upstream(
            "GET /p?q=1 HTTP/1.1\r\nuser-agent: UA/1\r\nHOST: h\r\nAccept: */*\r\nX-Dup: 1\r\n\
             Cookie: a=1\r\nx-dup: 2\r\n\r\n",
        );
        assert_eq!(
            out,
            format!(
                "GET /p?q=1 HTTP/1.1\r\nuser-agent: UA/1\r\nHOST: h\r\nAccept: */*\r\nX-Dup: 1\r\n\
                 Cookie: a=1\r\nx-dup: 2\r\n{OWN}\r\n"
            )
        );
    }

    #[test]
    fn forwarded_for_is_appended_and_proto_host_replaced() {
        let out = upstream(
            "GET / HTTP/1.1\r\nHost: example.com\r\nx-forwarded-for: 1.2.3.4\r\nX-Real-IP: 6.6.6.6\r\n\
             X-Forwarded-For: 5.6.7.8, ,\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: evil\r\n\
             X-Forwarded-Proto: ftp\r\n\r\n",
        );
        assert_eq!(
            out,
            "GET / HTTP/1.1\r\nHost: example.com\r\nx-forwarded-for: 1.2.3.4, 5.6.7.8, 10.0.0.9\r\n\
             X-Real-IP: 10.0.0.9\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: example.com\r\n\r\n"
        );
    }

    #[test]
    fn absolute_form_authority_replaces_host() {
        let out = upstream("GET http://example.com:81/p HTTP/1.1\r\nX-A: 1\r\nHost: other\r\n\r\n");
        assert!(
            out.starts_with("GET /p HTTP/1.1\r\nX-A: 1\r\nHost: example.com:81\r\n"),
            "{out}"
        );
        assert!(
            out.contains("X-Forwarded-Host: example.com:81\r\n"),
            "{out}"
        );
        // Without a Host field, the authority is appended as one.
        let out = upstream("GET http://example.com/ HTTP/1.1\r\nX-A: 1\r\n\r\n");
        assert!(
            out.starts_with("GET / HTTP/1.1\r\nX-A: 1\r\nHost: example.com\r\n"),
            "{out}"
        );
    }

    #[test]
    fn http10_without_host_has_none() {
        let out = upstream("GET / HTTP/1.0\r\n\r\n");
        assert_eq!(
            out,
            "GET / HTTP/1.1\r\nX-Forwarded-For: 10.0.0.9\r\nX-Forwarded-Proto: http\r\n\
             X-Real-IP: 10.0.0.9\r\n\r\n"
        );
    }

    #[test]
    fn client_address_forms() {
        let raw = "GET / HTTP/1.1\r\nHost: h\r\n\r\n";
        for (ip, shown) in [
            ("2001:db8::1", "2001:db8::1"),
            ("::ffff:192.0.2.7", "192.0.2.7"),
            ("127.0.0.1", "127.0.0.1"),
        ] {
            let out = upstream_with(raw, |f| {
                let text = client_ip_text(ip.parse().unwrap());
                f.client_ip = Box::leak(text.into_boxed_str());
                f.proto = "https";
            });
            assert!(
                out.contains(&format!("X-Forwarded-For: {shown}\r\n")),
                "{out}"
            );
            assert!(out.contains(&format!("X-Real-IP: {shown}\r\n")), "{out}");
            assert!(out.contains("X-Forwarded-Proto: https\r\n"), "{out}");
        }
    }

    #[test]
    fn connection_cannot_hide_what_the_proxy_owns() {
        let out = upstream(
            "GET / HTTP/1.1\r\nHost: h\r\nConnection: Host, X-Forwarded-For, X-Real-IP\r\n\
             X-Forwarded-For: 1.1.1.1\r\n\r\n",
        );
        // The client's own X-Forwarded-For is hop-by-hop as it asked; the proxy's fields stay.
        assert_eq!(
            out,
            "GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 10.0.0.9\r\nX-Forwarded-Proto: http\r\n\
             X-Forwarded-Host: h\r\nX-Real-IP: 10.0.0.9\r\n\r\n"
        );
    }

    #[test]
    fn target_and_framing_come_from_the_caller() {
        let raw = "POST /api/x HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n";
        let cases: [(&str, BodyFraming, &str); 4] = [
            ("/x", BodyFraming::Length(5), "Content-Length: 5\r\n"),
            ("/x", BodyFraming::Chunked, "Transfer-Encoding: chunked\r\n"),
            ("/x?y", BodyFraming::Length(0), "Content-Length: 0\r\n"),
            // POST with no body still says so (RFC 9110 §8.6).
            ("/", BodyFraming::None, "Content-Length: 0\r\n"),
        ];
        for (target, body, framing) in cases {
            let out = upstream_with(raw, |f| {
                f.target = target;
                f.body = body;
            });
            assert_eq!(
                out,
                format!("POST {target} HTTP/1.1\r\nHost: h\r\n{OWN}{framing}\r\n"),
                "{body:?}"
            );
        }
        let out = upstream("GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(out, format!("GET / HTTP/1.1\r\nHost: h\r\n{OWN}\r\n"));
    }

    #[test]
    fn options_asterisk_keeps_its_form() {
        let out = upstream_with("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", |f| f.target = "/");
        assert_eq!(out, format!("OPTIONS * HTTP/1.1\r\nHost: h\r\n{OWN}\r\n"));
    }

    #[test]
    fn websocket_handshake_is_passed_on() {
        let out = upstream(
            "GET /chat HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Upgrade\r\nUpgrade: WebSocket\r\n\
             Sec-WebSocket-Key: k==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        );
        assert_eq!(
            out,
            format!(
                "GET /chat HTTP/1.1\r\nHost: h\r\nSec-WebSocket-Key: k==\r\nSec-WebSocket-Version: 13\r\n\
                 {OWN}Connection: Upgrade\r\nUpgrade: WebSocket\r\n\r\n"
            )
        );
    }

    #[test]
    fn h2c_upgrade_is_removed() {
        let raw =
            "GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n\
                   HTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n";
        assert!(!is_websocket_upgrade(&head(raw)));
        assert_eq!(
            upstream(raw),
            format!("GET / HTTP/1.1\r\nHost: h\r\n{OWN}\r\n")
        );
        // Even when Connection does not list it.
        let raw = "GET / HTTP/1.1\r\nHost: h\r\nhttp2-settings: AAMAAABkAAQAAP__\r\n\r\n";
        assert_eq!(
            upstream(raw),
            format!("GET / HTTP/1.1\r\nHost: h\r\n{OWN}\r\n")
        );
    }

    #[test]
    fn websocket_detection() {
        let cases = [
            ("GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", true),
            ("GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, upgrade\r\nUpgrade: WEBSOCKET\r\n\r\n", true),
            ("GET / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: h2c, websocket\r\n\r\n", true),
            ("GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n", false),
            ("GET / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\n\r\n", false),
            ("GET / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\n", false),
            ("GET / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: websockets\r\n\r\n", false),
            ("POST / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n", false),
            ("GET / HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n", false),
        ];
        for (raw, want) in cases {
            assert_eq!(is_websocket_upgrade(&head(raw)), want, "{raw:?}");
        }
    }
}
