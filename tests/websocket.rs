//! Protocol upgrades through the real binary: a WebSocket handshake becomes a tunnel that
//! relays frames both ways (checked with a real client, `tungstenite`, against an echo
//! backend), holds no backend slot, shows in `goaround_tunnels` while it lives and ends at
//! both ends when either side leaves; an `h2c` upgrade is not one: it is served as plain
//! HTTP/1.1 with the upgrade fields removed.
//!
//! Every test starts its own `goaround` and backends on `127.0.0.1:0`; conditions are polled
//! with deadlines, never assumed after a sleep.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tungstenite::Message;

use support::ws::{self, WsBackend};
use support::{get, get_request, proxy, wait_until, Backend, Conn, Goaround, Response};

/// Longest wait for backends to be up, or for any other polled condition.
const READY: Duration = Duration::from_secs(10);
/// How fast a plain request must be answered while tunnels are open.
const PROMPT: Duration = Duration::from_secs(1);

/// Starts goaround in front of `urls` with the extra `args` and waits until all are up.
fn start(urls: &[String], args: &[&str]) -> Goaround {
    let g = Goaround::builder().backends(urls).args(args).start();
    assert!(
        g.wait_ready_backends(urls.len(), READY),
        "backends not up within {READY:?}"
    );
    g
}

/// Waits until `goaround_tunnels` is `n`; panics with the last value otherwise.
fn assert_tunnels(g: &Goaround, n: usize) {
    let last = g.wait_metric("goaround_tunnels", n as f64, READY);
    assert_eq!(last, Some(n as f64), "goaround_tunnels");
}

fn timed_get(addr: SocketAddr, path: &str) -> (Response, Duration) {
    let started = Instant::now();
    let r = get(addr, path);
    (r, started.elapsed())
}

/// `len` bytes that are not a short repeating pattern, so a shifted piece shows.
fn test_body(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

/// Whether the comma-separated field `name` of `fields` lists `token` (any case).
fn lists(fields: &[(String, String)], name: &str, token: &str) -> bool {
    fields
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .flat_map(|(_, v)| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

#[test]
fn websocket_echoes_text_and_a_megabyte_binary_message_through_a_tunnel() {
    let b = WsBackend::start();
    let g = start(&[b.url()], &[]);
    let mut socket = ws::connect(g.addr(), "/chat");
    assert_tunnels(&g, 1);

    let text = Message::text("hello through goaround");
    assert_eq!(ws::round_trip(&mut socket, text.clone()), text);
    let big = test_body(1024 * 1024);
    let echoed = ws::round_trip(&mut socket, Message::binary(big.clone())).into_data();
    assert_eq!(echoed.len(), big.len(), "binary message length");
    assert!(echoed == big, "binary message changed on the way");

    let handshakes = b.handshakes();
    assert_eq!(handshakes.len(), 1, "{handshakes:?}");
    let fields = &handshakes[0].headers;
    assert!(lists(fields, "upgrade", "websocket"), "{fields:?}");
    assert!(lists(fields, "connection", "upgrade"), "{fields:?}");
    assert!(
        fields
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("sec-websocket-key")),
        "Sec-WebSocket-Key not forwarded: {fields:?}"
    );
    assert_tunnels(&g, 1);

    ws::close(socket);
    assert_tunnels(&g, 0);
    assert!(
        wait_until(READY, || b.open_sessions() == 0),
        "the backend's side of the tunnel stayed open"
    );
    // The handshake is an answered request like any other.
    let series = format!(
        "goaround_requests_total{{backend=\"{}\",code=\"101\"}}",
        b.url()
    );
    assert_eq!(g.metric(&series), Some(1.0), "{series}");
}

#[test]
fn bytes_the_backend_sends_behind_its_101_reach_the_client() {
    let b = WsBackend::start();
    let g = start(&[b.url()], &[]);
    // `/greet` puts a frame in the same write as the 101: the proxy reads both at once.
    let mut socket = ws::connect(g.addr(), "/greet");
    assert_eq!(ws::next_data(&mut socket), Message::text("welcome"));
    let text = Message::text("and the tunnel goes on");
    assert_eq!(ws::round_trip(&mut socket, text.clone()), text);
    ws::close(socket);
    assert_tunnels(&g, 0);
}

#[test]
fn client_vanishing_closes_the_tunnel_at_the_backend() {
    let b = WsBackend::start();
    let g = start(&[b.url()], &[]);
    let mut socket = ws::connect(g.addr(), "/chat");
    let text = Message::text("before the cable is cut");
    assert_eq!(ws::round_trip(&mut socket, text.clone()), text);
    assert_eq!(b.open_sessions(), 1);
    // No close frame: the TCP connection just goes away.
    drop(socket);
    assert_tunnels(&g, 0);
    assert!(
        wait_until(READY, || b.open_sessions() == 0),
        "the backend connection of a vanished client stayed open"
    );
}

#[test]
fn three_hundred_tunnels_hold_no_slot_and_plain_requests_stay_prompt() {
    const TUNNELS: usize = 300;
    let b = WsBackend::start();
    // One slot, and a short queue: a tunnel holding the slot would turn plain requests into
    // 503s (or slow answers) at once.
    let g = start(&[b.url()], &["-n", "1", "-queue-timeout", "2s"]);
    let mut sockets: Vec<_> = (0..TUNNELS)
        .map(|i| ws::connect(g.addr(), &format!("/chat/{i}")))
        .collect();
    assert_tunnels(&g, TUNNELS);
    assert!(
        wait_until(READY, || b.open_sessions() == TUNNELS),
        "{} echo sessions open at the backend",
        b.open_sessions()
    );
    let in_flight = format!("goaround_backend_in_flight{{backend=\"{}\"}}", b.url());
    assert_eq!(
        g.metric(&in_flight),
        Some(0.0),
        "tunnels count as in flight"
    );

    let mut slowest = Duration::ZERO;
    for i in 0..20 {
        let (r, took) = timed_get(g.addr(), &format!("/plain/{i}"));
        assert_eq!((r.status, r.text().as_str()), (200, "plain"), "request {i}");
        assert!(took < PROMPT, "request {i} took {took:?}");
        slowest = slowest.max(took);
    }
    eprintln!("{TUNNELS} tunnels open: slowest of 20 plain requests {slowest:?}");

    // Every tunnel still carries its own messages.
    for (i, socket) in sockets.iter_mut().enumerate() {
        let text = Message::text(format!("tunnel {i}"));
        assert_eq!(ws::round_trip(socket, text.clone()), text, "tunnel {i}");
    }
    drop(sockets);
    assert_tunnels(&g, 0);
    assert!(
        wait_until(READY, || b.open_sessions() == 0),
        "{} echo sessions still open at the backend",
        b.open_sessions()
    );
}

#[test]
fn h2c_upgrade_is_removed_and_the_request_served_as_http11() {
    let b = Backend::start("b1");
    let g = proxy(&[&b], &[]);
    let mut conn = Conn::open(g.addr());
    conn.send(
        b"GET /headers HTTP/1.1\r\nHost: test\r\nConnection: Upgrade, HTTP2-Settings\r\n\
          Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
    );
    let r = conn.read_response();
    assert_eq!((r.version.as_str(), r.status), ("HTTP/1.1", 200), "{r:?}");
    assert_eq!(r.header("upgrade"), None, "{:?}", r.headers);

    let received = b.received();
    assert_eq!(received.len(), 1);
    let fields = &received[0].headers;
    for name in ["upgrade", "http2-settings"] {
        assert!(
            !fields.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)),
            "{name} forwarded: {fields:?}"
        );
    }
    for token in ["upgrade", "http2-settings"] {
        assert!(
            !lists(fields, "connection", token),
            "Connection lists {token}: {fields:?}"
        );
    }
    // Still an HTTP/1.1 keep-alive connection, and never a tunnel.
    conn.send(get_request("/").as_bytes());
    assert_eq!(conn.read_response().text(), "hello from b1");
    assert_eq!(g.metric("goaround_tunnels"), Some(0.0));
}
