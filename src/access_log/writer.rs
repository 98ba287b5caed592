//! The `access-log` thread: takes records off the queue, formats them into a batch and
//! writes the batch when it is full or when the queue runs empty, so lines appear at once at
//! low traffic and in large writes under load. Between batches it obeys [`Control`]
//! messages (reopen, close).
//!
//! The batch is our own buffer rather than a `BufWriter` so that a failed write knows
//! exactly which lines it lost: each record is one line, and escaping guarantees no other
//! newline, so the lines lost are the newlines not yet written.
//!
//! ```text
//!  ┌─► try_recv ── record ──► format into batch ── batch ≥ BATCH_BYTES ──► write, control ─┐
//!  │      │ empty                                                                          │
//!  │      └─► write batch, report drops, control ── closing? ──► stop                      │
//!  │                └─► block on records or control ───────────────────────────────────────┤
//!  └──────────────────────────────────────────────────────────────────────────────────────┘
//! ```

use std::fs::File;
use std::io::{self, Write};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crossbeam_channel::{Receiver, TryRecvError};

use super::{open_file, AccessRecord, Control, Destination, Drops, LogFormat};

/// Formatted bytes held before a write: large enough that a busy log costs few system
/// calls, small enough that a crash loses little.
const BATCH_BYTES: usize = 64 * 1024;

pub(super) struct Writer {
    records: Receiver<Box<AccessRecord>>,
    control: Receiver<Control>,
    format: LogFormat,
    destination: Destination,
    file: File,
    batch: Vec<u8>,
    drops: Arc<Drops>,
    /// `Close` was received: stop the next time the queue is empty.
    closing: bool,
    /// Lines lost since writes started failing; `None` while they succeed.
    failing: Option<u64>,
    /// The queue-full count last reported in the log.
    queue_full_reported: u64,
}

impl Writer {
    pub(super) fn new(
        records: Receiver<Box<AccessRecord>>,
        control: Receiver<Control>,
        format: LogFormat,
        destination: Destination,
        file: File,
        drops: Arc<Drops>,
    ) -> Writer {
        Writer {
            records,
            control,
            format,
            destination,
            file,
            batch: Vec::with_capacity(BATCH_BYTES + 4096),
            drops,
            closing: false,
            failing: None,
            queue_full_reported: 0,
        }
    }

    /// Runs until every [`AccessLog`](super::AccessLog) is dropped or `Close` arrives, and
    /// the queue is empty.
    pub(super) fn run(mut self) {
        loop {
            match self.records.try_recv() {
                Ok(record) => {
                    self.format.write(&record, &mut self.batch);
                    if self.batch.len() >= BATCH_BYTES {
                        self.write_batch();
                        self.take_control();
                    }
                }
                Err(TryRecvError::Empty) => {
                    self.write_batch();
                    self.report_queue_full();
                    self.take_control();
                    if self.closing {
                        break;
                    }
                    self.wait();
                }
                Err(TryRecvError::Disconnected) => break,
            }
        }
        self.write_batch();
        self.report_queue_full();
    }

    /// Blocks until a record or a control message arrives, and takes it.
    fn wait(&mut self) {
        crossbeam_channel::select! {
            // A disconnected queue is seen by the next `try_recv`.
            recv(self.records) -> record => if let Ok(record) = record {
                self.format.write(&record, &mut self.batch);
            },
            recv(self.control) -> message => self.obey(message.ok()),
        }
    }

    /// Handles the control messages waiting, without blocking.
    fn take_control(&mut self) {
        loop {
            match self.control.try_recv() {
                Ok(message) => self.obey(Some(message)),
                Err(TryRecvError::Empty) => return,
                Err(TryRecvError::Disconnected) => return self.obey(None),
            }
        }
    }

    /// `None`: the server dropped its handle without closing; records are still written
    /// until the last sender goes.
    fn obey(&mut self, message: Option<Control>) {
        match message {
            Some(Control::Reopen) => self.reopen(),
            Some(Control::Close) => self.closing = true,
            None => self.control = crossbeam_channel::never(),
        }
    }

    /// Lines formatted so far go to the old file (logrotate's renamed one); the rest to a
    /// file opened at the path now.
    fn reopen(&mut self) {
        self.write_batch();
        let Destination::File(path) = &self.destination else {
            log::debug!("access log: stdout cannot be reopened");
            return;
        };
        match open_file(path) {
            Ok(file) => {
                self.file = file;
                log::info!("access log: reopened {}", path.display());
            }
            Err(e) => log::error!(
                "access log: cannot reopen {}, still writing to the old file: {e}",
                path.display()
            ),
        }
    }

    /// Writes the batch out. A failure counts the lines it lost and is logged once per run
    /// of failures, with a second message when writes succeed again.
    fn write_batch(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        match write_fully(&mut self.file, &self.batch) {
            Ok(()) => {
                if let Some(lost) = self.failing.take() {
                    log::warn!(
                        "access log: writing {} again; {lost} lines lost",
                        self.destination
                    );
                }
            }
            Err((written, e)) => {
                // A line cut short counts as lost: its newline is in the unwritten part.
                let lost = self.batch[written..]
                    .iter()
                    .filter(|&&b| b == b'\n')
                    .count() as u64;
                self.drops.write_failed.fetch_add(lost, Ordering::Relaxed);
                match &mut self.failing {
                    Some(total) => *total += lost,
                    None => {
                        log::error!(
                            "access log: writing {}: {e}; dropping lines until a write succeeds",
                            self.destination
                        );
                        self.failing = Some(lost);
                    }
                }
            }
        }
        self.batch.clear();
    }

    /// Once per burst: the count is looked at only when the queue has run empty.
    fn report_queue_full(&mut self) {
        let now = self.drops.queue_full.load(Ordering::Relaxed);
        if now > self.queue_full_reported {
            log::warn!(
                "access log: queue full; {} lines dropped",
                now - self.queue_full_reported
            );
            self.queue_full_reported = now;
        }
    }
}

/// `write_all` that says how far it got before an error.
fn write_fully(file: &mut File, buf: &[u8]) -> Result<(), (usize, io::Error)> {
    let mut written = 0;
    while written < buf.len() {
        match file.write(&buf[written..]) {
            Ok(0) => return Err((written, io::ErrorKind::WriteZero.into())),
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err((written, e)),
        }
    }
    Ok(())
}
