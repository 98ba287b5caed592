//! A client connection as it moves between the idle poller and the workers.
//!
//! A `Conn` carries only what must survive between requests: the socket, the peer address,
//! bytes read but not yet used (a partial head, or pipelined requests), and the deadline of
//! the handshake or head in progress. Read and write buffers belong to the
//! workers, so 10,000 idle connections cost sockets, not buffers.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use super::stream::ClientStream;
use crate::metrics::Metrics;

/// Counts open client connections: one per `Conn`, released on drop.
pub(crate) struct OpenCount {
    open: AtomicUsize,
    metrics: Arc<Metrics>,
}

impl OpenCount {
    pub(crate) fn new(metrics: Arc<Metrics>) -> Arc<OpenCount> {
        Arc::new(OpenCount {
            open: AtomicUsize::new(0),
            metrics,
        })
    }

    pub(crate) fn get(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }
}

/// Releases its connection's place in [`OpenCount`] when dropped.
struct OpenGuard(Arc<OpenCount>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
        self.0.metrics.client_connection_closed();
    }
}

pub(crate) struct Conn {
    pub stream: ClientStream,
    pub peer: SocketAddr,
    /// Bytes read and not consumed yet; empty (no allocation) for an idle connection.
    pub pending: Vec<u8>,
    /// When the TLS handshake, or the head whose first bytes are in `pending`, must be
    /// complete (`-handshake-timeout`, `-header-timeout`); `None` between requests.
    pub deadline: Option<Instant>,
    _open: OpenGuard,
}

impl Conn {
    pub(crate) fn new(
        stream: ClientStream,
        peer: SocketAddr,
        deadline: Option<Instant>,
        count: &Arc<OpenCount>,
    ) -> Conn {
        count.open.fetch_add(1, Ordering::AcqRel);
        count.metrics.client_connection_opened();
        Conn {
            stream,
            peer,
            pending: Vec::new(),
            deadline,
            _open: OpenGuard(Arc::clone(count)),
        }
    }
}
