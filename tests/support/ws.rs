//! A WebSocket echo backend and client for the tunnel tests, on `tungstenite` (a
//! dev-dependency, so this module stays out of `examples/fixture_backend.rs`, which includes
//! only `backend.rs`).
//!
//! [`WsBackend`] owns a [`ScriptedServer`] whose connections each read HTTP/1.1 heads and:
//!
//! | request                      | answer                                                   |
//! |------------------------------|----------------------------------------------------------|
//! | `GET /health`                | 200, the fixture's healthy JSON                          |
//! | a WebSocket handshake        | 101, then every text and binary message echoed back      |
//! | the same to `/greet`         | 101 and a text frame `welcome` in the same write, then echo |
//! | anything else                | 200 `plain`                                              |
//!
//! It records each handshake's head as received, and counts live echo sessions, so a test can
//! see that a tunnel ended at the backend too. The handshake is done by hand (the head is read
//! with the fixture's strict parser) so the recorded head is exactly what the proxy sent.

// Each test binary uses a different part of the harness.
#![allow(dead_code)]

use std::io::{self, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use tungstenite::handshake::derive_accept_key;
use tungstenite::protocol::Role;
use tungstenite::{Message, WebSocket};

use super::backend::{read_head, RequestHead, HEALTHY_BODY};
use super::client::TIMEOUT;
use super::scripted::ScriptedServer;

/// What `/greet` sends right behind its `101`: an unmasked text frame `welcome`
/// (RFC 6455 §5.2: FIN + opcode 1, length 7).
pub const GREETING: &[u8] = b"\x81\x07welcome";

/// A WebSocket echo server on `127.0.0.1:0`; dropping it stops accepting.
pub struct WsBackend {
    server: ScriptedServer,
    shared: Arc<WsShared>,
}

#[derive(Default)]
struct WsShared {
    handshakes: Mutex<Vec<RequestHead>>,
    /// Echo sessions whose connection is still open.
    open_sessions: AtomicUsize,
    connections: AtomicUsize,
}

impl WsBackend {
    pub fn start() -> WsBackend {
        let shared = Arc::new(WsShared::default());
        let server = ScriptedServer::start({
            let shared = Arc::clone(&shared);
            move |stream| {
                shared.connections.fetch_add(1, Ordering::SeqCst);
                serve(stream, &shared);
            }
        });
        WsBackend { server, shared }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// Every WebSocket handshake received, oldest first.
    pub fn handshakes(&self) -> Vec<RequestHead> {
        self.shared
            .handshakes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Echo sessions still open at the backend.
    pub fn open_sessions(&self) -> usize {
        self.shared.open_sessions.load(Ordering::SeqCst)
    }

    /// TCP connections accepted (health checks included).
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }
}

/// Counts an echo session as open for as long as it lives.
struct OpenSession<'a>(&'a AtomicUsize);

impl Drop for OpenSession<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn serve(stream: TcpStream, shared: &WsShared) {
    let _ = stream.set_nodelay(true);
    let mut reader = BufReader::new(stream);
    loop {
        let Ok(Some(head)) = read_head(&mut reader) else {
            return;
        };
        let written = if head.target == "/health" {
            answer(reader.get_ref(), "application/json", HEALTHY_BODY)
        } else if is_handshake(&head) {
            return echo(reader, head, shared);
        } else {
            answer(reader.get_ref(), "text/plain", "plain")
        };
        if written.is_err() {
            return;
        }
    }
}

fn answer(mut stream: &TcpStream, content_type: &str, body: &str) -> io::Result<()> {
    let reply = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(reply.as_bytes())
}

fn is_handshake(head: &RequestHead) -> bool {
    let lists = |name: &str, token: &str| {
        head.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    lists("connection", "upgrade") && lists("upgrade", "websocket")
}

/// Answers the handshake (RFC 6455 §4.2.2) and echoes messages until either side closes.
fn echo(reader: BufReader<TcpStream>, head: RequestHead, shared: &WsShared) {
    let key = head
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("sec-websocket-key"))
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let greet = head.target == "/greet";
    shared
        .handshakes
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(head);
    // The client may have sent its first frame right behind its handshake.
    let leftover = reader.buffer().to_vec();
    let mut stream = reader.into_inner();
    let mut reply = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n\r\n",
        derive_accept_key(key.as_bytes())
    )
    .into_bytes();
    if greet {
        reply.extend_from_slice(GREETING);
    }
    if stream.write_all(&reply).is_err() {
        return;
    }
    shared.open_sessions.fetch_add(1, Ordering::SeqCst);
    let _open = OpenSession(&shared.open_sessions);
    let mut ws = WebSocket::from_partially_read(stream, leftover, Role::Server, None);
    loop {
        match ws.read() {
            Ok(message @ (Message::Text(_) | Message::Binary(_))) => {
                if ws.send(message).is_err() {
                    return;
                }
            }
            // Pings are answered and a close is returned by tungstenite itself.
            Ok(_) => {}
            Err(_) => return,
        }
    }
}

/// A WebSocket client connection to `addr` (goaround), handshake done, requesting `path`.
/// Every read and write has [`TIMEOUT`].
pub fn connect(addr: SocketAddr, path: &str) -> WebSocket<TcpStream> {
    try_connect(addr, path).unwrap_or_else(|e| panic!("WebSocket handshake via {addr}: {e}"))
}

pub fn try_connect(addr: SocketAddr, path: &str) -> Result<WebSocket<TcpStream>, String> {
    let stream = TcpStream::connect_timeout(&addr, TIMEOUT).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    let _ = stream.set_nodelay(true);
    let url = format!("ws://{addr}{path}");
    match tungstenite::client(url.as_str(), stream) {
        Ok((ws, _response)) => Ok(ws),
        Err(e) => Err(e.to_string()),
    }
}

/// Sends `message` and reads the next data message (pings and pongs skipped).
pub fn round_trip(ws: &mut WebSocket<TcpStream>, message: Message) -> Message {
    ws.send(message)
        .unwrap_or_else(|e| panic!("WebSocket send: {e}"));
    next_data(ws)
}

/// The next text or binary message.
pub fn next_data(ws: &mut WebSocket<TcpStream>) -> Message {
    loop {
        match ws.read() {
            Ok(m @ (Message::Text(_) | Message::Binary(_))) => return m,
            Ok(Message::Close(frame)) => panic!("WebSocket closed by the peer: {frame:?}"),
            Ok(_) => {}
            Err(e) => panic!("WebSocket read: {e}"),
        }
    }
}

/// Closes `ws` the polite way (close frame, wait for the peer's, then EOF), within
/// [`TIMEOUT`].
pub fn close(mut ws: WebSocket<TcpStream>) {
    let _ = ws.close(None);
    let deadline = Instant::now() + TIMEOUT;
    while Instant::now() < deadline {
        if ws.read().is_err() {
            return;
        }
    }
    panic!("WebSocket close handshake not finished within {TIMEOUT:?}");
}
