//! The client port: one listening socket per event loop, all bound to the same address with
//! `SO_REUSEPORT`, so the kernel spreads new connections over the loops and no loop hands
//! a connection to another.
//!
//! `SO_REUSEPORT` would also let a second goaround bind the same port silently; before the
//! group is bound, a plain bind (without it) checks that nobody listens there yet, so "port
//! in use" stays a start-up error. With `-p 0` the first socket takes a free port and the
//! others join it.

use std::io;
use std::net::{SocketAddr, TcpListener};

use socket2::{Domain, Socket, Type};

/// Pending connections the kernel keeps per listening socket (capped by `somaxconn`).
const BACKLOG: i32 = 4096;

/// Binds `count` listening sockets sharing `addr`.
pub(crate) fn bind_group(addr: SocketAddr, count: usize) -> io::Result<Vec<TcpListener>> {
    if addr.port() != 0 {
        // Fails with EADDRINUSE if anyone listens on the port, with or without
        // SO_REUSEPORT; dropped before the group binds.
        drop(socket(addr, false)?);
    }
    let first = socket(addr, true)?;
    let bound = first.local_addr()?.as_socket().unwrap_or(addr);
    let mut group = vec![TcpListener::from(first)];
    for _ in 1..count.max(1) {
        group.push(TcpListener::from(socket(bound, true)?));
    }
    Ok(group)
}

/// One more listener in the group already listening on `addr` (a loop that inherited no
/// listener from the process it replaces).
pub(crate) fn join_group(addr: SocketAddr) -> io::Result<TcpListener> {
    socket(addr, true).map(TcpListener::from)
}

/// A listening socket on `addr`; non-blocking, as the loops use it.
fn socket(addr: SocketAddr, reuse_port: bool) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    // TIME_WAIT connections of a previous run must not keep the port.
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    if addr.is_ipv6() {
        // `-bind ::` serves IPv4 too, as Go's listener does.
        let _ = socket.set_only_v6(false);
    }
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_shares_one_free_port() {
        let group = bind_group("127.0.0.1:0".parse().unwrap(), 3).unwrap();
        let ports: Vec<u16> = group
            .iter()
            .map(|l| l.local_addr().unwrap().port())
            .collect();
        assert_ne!(ports[0], 0);
        assert!(ports.iter().all(|&p| p == ports[0]), "{ports:?}");
    }

    #[test]
    fn a_port_in_use_is_an_error_even_for_our_own_group() {
        let group = bind_group("127.0.0.1:0".parse().unwrap(), 2).unwrap();
        let addr = group[0].local_addr().unwrap();
        let e = bind_group(addr, 2).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
        let plain = TcpListener::bind("127.0.0.1:0").unwrap();
        let e = bind_group(plain.local_addr().unwrap(), 1).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
    }
}
