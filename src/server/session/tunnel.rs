//! A WebSocket connection after `101 Switching Protocols`: bytes relayed both ways, as they
//! are, until either side closes or nothing moves for `-tunnel-idle-timeout`.
//!
//! The client's bytes go through the session's input buffer, the backend's through its
//! output buffer; each side is read only while the other has room, so a peer that does not
//! read holds back its partner instead of growing a buffer. A tunnel holds no backend slot
//! (`-n` limits requests in flight, and a WebSocket may stay open for hours); it counts
//! toward `-max-conns` like any client connection, and in `goaround_tunnels`.

use std::io;
use std::time::Instant;

use super::io::{ClientIo, Read};
use super::relay::{read_up, UpRead};
use super::Ctx;

pub(crate) struct Tunnel {
    pub up: usize,
    pub last_activity: Instant,
    /// The backend closed: once its last bytes reached the client, the tunnel ends.
    up_closed: bool,
}

/// Whether the tunnel goes on.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Pumped {
    Open,
    Closed,
}

impl Tunnel {
    /// A tunnel over backend connection `up`. Bytes the backend sent behind its `101` are
    /// already in the output buffer and become ready to send.
    pub(crate) fn new(up: usize, io: &mut ClientIo, now: Instant) -> Tunnel {
        if let Some(out) = io.out.as_ref() {
            io.ready = out.len();
        }
        Tunnel {
            up,
            last_activity: now,
            up_closed: false,
        }
    }

    /// Moves bytes both ways until neither side can move any.
    pub(crate) fn pump(&mut self, io: &mut ClientIo, ctx: &mut Ctx<'_>) -> Pumped {
        loop {
            let mut moved = false;
            let Some(up) = ctx.ups.get_mut(self.up) else {
                return Pumped::Closed;
            };
            // Client to backend: what is in the input buffer first, then more from the socket.
            loop {
                if let Some(input) = io.input.as_mut().filter(|i| !i.is_empty()) {
                    if !up.writable {
                        break;
                    }
                    match up.transport.write(input.data()) {
                        Ok(n) => {
                            let all = n == input.len();
                            input.consume(n);
                            moved = true;
                            if !all && !up.transport.is_tls() {
                                up.writable = false;
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            up.writable = false;
                            break;
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(_) => return Pumped::Closed,
                    }
                    continue;
                }
                match io.read_input(ctx.buffers) {
                    Ok(Read::Data(_)) => moved = true,
                    Ok(Read::Blocked | Read::Full) => break,
                    Ok(Read::Eof) | Err(_) => return Pumped::Closed,
                }
            }
            if up.transport.has_pending_output() && up.writable {
                match up.transport.flush() {
                    Ok(true) => {}
                    Ok(false) => up.writable = false,
                    Err(_) => return Pumped::Closed,
                }
            }
            // Backend to client: read only into free room, then flush.
            if !self.up_closed {
                let (out, ready) = io.out_and_ready(ctx.buffers);
                if out.spare_len() == 0 {
                    out.compact();
                }
                if out.spare_len() > 0 {
                    let (read, n) = read_up(up, out.spare());
                    match read {
                        UpRead::Data => {
                            out.filled(n);
                            *ready += n;
                            moved = true;
                        }
                        UpRead::Blocked => {}
                        UpRead::Eof | UpRead::Failed(_) => self.up_closed = true,
                    }
                }
            }
            let before = io.ready_len();
            if io.out_pending() {
                match io.flush(ctx.now) {
                    Ok(_) => moved |= io.ready_len() < before,
                    Err(_) => return Pumped::Closed,
                }
            }
            if self.up_closed && !io.out_pending() {
                return Pumped::Closed;
            }
            if !moved {
                return Pumped::Open;
            }
            self.last_activity = ctx.now;
            if !ctx.spend() {
                return Pumped::Open;
            }
        }
    }
}
