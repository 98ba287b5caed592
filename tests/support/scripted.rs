//! A listener on `127.0.0.1:0` that runs a test's own function on each connection (one
//! thread per connection), for backends the fixture cannot play: fixed bytes, resets,
//! per-route closures, TLS. Dropping it stops accepting; connection threads end with their
//! connections, whose reads time out after [`CONN_TIMEOUT`].

use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use super::backend::{read_head, RequestHead};

/// Read timeout of every accepted connection: bounds a connection thread's life.
pub const CONN_TIMEOUT: Duration = Duration::from_secs(10);

pub struct ScriptedServer {
    addr: SocketAddr,
    stopping: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl ScriptedServer {
    /// Starts accepting; `serve` runs on its own thread for each connection.
    pub fn start(serve: impl Fn(TcpStream) + Send + Sync + 'static) -> ScriptedServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local_addr");
        let stopping = Arc::new(AtomicBool::new(false));
        let serve = Arc::new(serve);
        let acceptor = thread::Builder::new()
            .name("scripted-accept".to_owned())
            .spawn({
                let stopping = Arc::clone(&stopping);
                move || {
                    for stream in listener.incoming() {
                        if stopping.load(Ordering::SeqCst) {
                            return;
                        }
                        let Ok(stream) = stream else { continue };
                        let _ = stream.set_read_timeout(Some(CONN_TIMEOUT));
                        let serve = Arc::clone(&serve);
                        let spawned = thread::Builder::new()
                            .name("scripted-conn".to_owned())
                            .spawn(move || serve(stream));
                        drop(spawned);
                    }
                }
            })
            .expect("spawn scripted server");
        ScriptedServer {
            addr,
            stopping,
            acceptor: Some(acceptor),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for ScriptedServer {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Wakes the acceptor, blocked in accept(), to see the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

/// Serves HTTP/1.1 keep-alive on `stream` until the client closes: each request (bodies are
/// not read: send none) gets `answer(head)`'s status and body, with `X-Backend: name` as the
/// fixture backend sends it. `answer` may take its time (a slow server) or change its mind
/// (a failing server that recovers).
pub fn answer_each(stream: TcpStream, name: &str, answer: impl Fn(&RequestHead) -> (u16, String)) {
    let _ = stream.set_nodelay(true);
    let mut reader = BufReader::new(&stream);
    while let Ok(Some(head)) = read_head(&mut reader) {
        let (status, body) = answer(&head);
        let reply = format!(
            "HTTP/1.1 {status} Scripted\r\nX-Backend: {name}\r\nContent-Type: text/plain\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        if (&stream).write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}
