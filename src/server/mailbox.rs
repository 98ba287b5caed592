//! How other threads reach an event loop: a queue of [`Msg`] and a `mio::Waker`.
//!
//! A loop owns its connections and nobody else touches them; what other threads have to say
//! about one of them (a backend slot came free for a queued request, a cache fill it waited
//! for finished) arrives here and is handled by the loop between two polls. Lifecycle
//! orders (drain) come the same way. The loop drains its queue after every batch of
//! events, so a message sent by the loop to itself needs no wake-up.

use std::sync::{Arc, OnceLock};
use std::thread::ThreadId;

use crossbeam_channel::{Receiver, Sender};
use mio::Waker;

use super::slab::Id;
use crate::upstream::{AcquireError, Notify, Slot};

pub(crate) enum Msg {
    /// The wait with this token for a backend slot ended.
    Slot {
        token: u64,
        outcome: Result<Slot, AcquireError>,
    },
    /// The cache fill this connection waited for finished: look the URL up again.
    CacheReady(Id),
    /// Stop accepting and finish what is in progress. `take_backlog`: answer the
    /// connections already waiting in the kernel (a shutdown), or leave them to a new
    /// process that shares the listeners (an upgrade).
    Drain { take_backlog: bool },
}

pub(crate) struct Mailbox {
    tx: Sender<Msg>,
    waker: Waker,
    /// The loop's thread, once it runs: messages it sends itself need no wake-up.
    owner: OnceLock<ThreadId>,
}

impl Mailbox {
    /// A mailbox for a loop, woken through `waker`.
    pub(crate) fn new(waker: Waker) -> (Arc<Mailbox>, Receiver<Msg>) {
        let (tx, rx) = crossbeam_channel::unbounded();
        let mailbox = Mailbox {
            tx,
            waker,
            owner: OnceLock::new(),
        };
        (Arc::new(mailbox), rx)
    }

    /// Called by the loop's thread when it starts.
    pub(crate) fn set_owner(&self) {
        let _ = self.owner.set(std::thread::current().id());
    }

    pub(crate) fn send(&self, msg: Msg) {
        // The receiver lives as long as the loop; after it is gone nobody needs telling, and
        // a slot inside the message is returned when the message is dropped here.
        if self.tx.send(msg).is_err() {
            return;
        }
        if self.owner.get() != Some(&std::thread::current().id()) {
            if let Err(e) = self.waker.wake() {
                log::error!("waking an event loop: {e}");
            }
        }
    }
}

impl Notify for Mailbox {
    fn notify(&self, token: u64, outcome: Result<Slot, AcquireError>) {
        self.send(Msg::Slot { token, outcome });
    }
}
