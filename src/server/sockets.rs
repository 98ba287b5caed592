//! The process's listening sockets: bound at start, or taken over from the goaround this one
//! replaces (a binary upgrade, `crate::upgrade`), and kept at hand to pass on to the next one.
//!
//! The client port is one `SO_REUSEPORT` listener per event loop. Inherited listeners are
//! all served, whatever `-workers` says now: a loop may get several (closing one would drop
//! the connections queued on it), and extra loops join the same port with listeners of
//! their own.

use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixListener;
use std::sync::{Mutex, PoisonError};

use super::{listen, StartError};
use crate::config::Config;
use crate::control::ControlSocket;
use crate::upgrade::{Inherited, SocketRole};

pub(crate) struct Sockets {
    /// The client port's listeners, one group per event loop.
    pub per_loop: Vec<Vec<TcpListener>>,
    pub metrics: TcpListener,
    pub control: ControlSocket,
    /// Our own descriptors of the same sockets, for the next upgrade.
    pub handover: Handover,
}

/// Duplicates of every listening socket (the same sockets, not copies bound anew).
///
/// While these are open the client sockets listen, whatever the loops do with their own
/// descriptors: the kernel completes handshakes into the backlog. A shutdown therefore
/// closes them ([`close_clients`](Self::close_clients)) once the loops have been told to
/// drain; otherwise connections made during the drain would wait in a backlog nobody
/// accepts from, and be reset at exit after their clients had sent a request.
pub(crate) struct Handover {
    /// `None` once closed for a shutdown.
    clients: Mutex<Option<Vec<TcpListener>>>,
    metrics: TcpListener,
    control: UnixListener,
}

impl Handover {
    /// Runs `f` with the sockets as `crate::upgrade` sends them; `None` when a shutdown has
    /// closed the client sockets.
    pub(crate) fn with_fds<R>(
        &self,
        f: impl FnOnce(&[(SocketRole, BorrowedFd<'_>)]) -> R,
    ) -> Option<R> {
        let clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        let clients = clients.as_ref()?;
        let mut fds: Vec<(SocketRole, BorrowedFd<'_>)> = clients
            .iter()
            .map(|l| (SocketRole::Client, l.as_fd()))
            .collect();
        fds.push((SocketRole::Metrics, self.metrics.as_fd()));
        fds.push((SocketRole::Control, self.control.as_fd()));
        Some(f(&fds))
    }

    /// Closes our duplicates of the client sockets, so that each closes for good when its
    /// loop drops its own. Skipped while an upgrade is handing them over (it holds them).
    pub(crate) fn close_clients(&self) {
        match self.clients.try_lock() {
            Ok(mut clients) => drop(clients.take()),
            Err(std::sync::TryLockError::Poisoned(e)) => drop(e.into_inner().take()),
            Err(std::sync::TryLockError::WouldBlock) => {
                log::warn!("shutdown during an upgrade: the client port stays open until exit");
            }
        }
    }
}

impl Sockets {
    /// Binds every socket the configuration names, or takes them over from `inherited`.
    pub(crate) fn open(
        config: &Config,
        inherited: Option<&mut Inherited>,
    ) -> Result<Sockets, StartError> {
        let listen_addr = SocketAddr::new(config.bind, config.port);
        let metrics_addr = SocketAddr::new(config.bind, config.metrics_port);
        let (clients, metrics, control) = match inherited {
            Some(inherited) => {
                let clients = inherited.take_client_listeners();
                let metrics = inherited.take_metrics_listener();
                let control = inherited.take_control_listener();
                let (Some(metrics), Some(control), false) = (metrics, control, clients.is_empty())
                else {
                    return Err(StartError::Inherit(
                        "the old process handed over an incomplete set of sockets".into(),
                    ));
                };
                let control = ControlSocket::inherited(control, &config.socket);
                (clients, metrics, control)
            }
            None => {
                let clients = listen::bind_group(listen_addr, config.workers)
                    .map_err(|e| StartError::Listen(listen_addr, e))?;
                let metrics = TcpListener::bind(metrics_addr)
                    .map_err(|e| StartError::Metrics(metrics_addr, e))?;
                let control = ControlSocket::bind(&config.socket).map_err(StartError::Control)?;
                (clients, metrics, control)
            }
        };
        let handover = Handover {
            clients: Mutex::new(Some(
                clients
                    .iter()
                    .map(TcpListener::try_clone)
                    .collect::<Result<_, _>>()
                    .map_err(StartError::Thread)?,
            )),
            metrics: metrics.try_clone().map_err(StartError::Thread)?,
            control: control.try_clone_listener().map_err(StartError::Thread)?,
        };
        let per_loop = spread(clients, config.workers, listen_addr)?;
        Ok(Sockets {
            per_loop,
            metrics,
            control,
            handover,
        })
    }
}

/// Gives each of `loops` event loops its listeners: inherited ones spread round-robin, and
/// loops left without one join the port with a new `SO_REUSEPORT` listener.
fn spread(
    clients: Vec<TcpListener>,
    loops: usize,
    fallback: SocketAddr,
) -> Result<Vec<Vec<TcpListener>>, StartError> {
    let addr = clients
        .first()
        .and_then(|l| l.local_addr().ok())
        .unwrap_or(fallback);
    let mut per_loop: Vec<Vec<TcpListener>> = (0..loops.max(1)).map(|_| Vec::new()).collect();
    let count = per_loop.len();
    for (i, listener) in clients.into_iter().enumerate() {
        per_loop[i % count].push(listener);
    }
    for listeners in per_loop.iter_mut().filter(|l| l.is_empty()) {
        let joined = listen::join_group(addr).map_err(|e| StartError::Listen(addr, e))?;
        listeners.push(joined);
    }
    Ok(per_loop)
}
