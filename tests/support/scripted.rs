//! A listener on `127.0.0.1:0` that runs a test's own function on each connection (one
//! thread per connection), for backends the fixture cannot play: fixed bytes, resets,
//! per-route closures, TLS. Dropping it stops accepting; connection threads end with their
//! connections, whose reads time out after [`CONN_TIMEOUT`].

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

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
