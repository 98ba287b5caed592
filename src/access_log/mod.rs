//! The access log: one line per answered request, written off the request path.
//!
//! The event loops fill an [`AccessRecord`] per request (goaround's own answers included) and
//! hand it to an [`AccessLog`], a cloneable handle that never blocks: the record goes into a
//! bounded queue, or is dropped and counted when the queue is full. One thread, owned through
//! [`AccessLogWriter`], formats the records ([`format`](mod@format): NCSA combined plus
//! upstream fields, or JSON lines) and writes them to a file or stdout, in batches under load
//! and as soon as the queue is empty otherwise. It also reopens the file for log rotation
//! and drains the queue at shutdown. Flags, signals and the exported metric belong to their
//! own layers.
//!
//! ```text
//!  loops ── send() ──► [queue, QUEUE_CAPACITY] ──► "access-log" thread ──► file / stdout
//!    │ full: dropped, counted                          ▲
//!  server ── reopen() / close(timeout) ────────────────┘ (control channel)
//! ```

pub(crate) mod format;
mod writer;

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, SystemTime};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use http::{HeaderValue, Method};

use crate::http1::Version;

/// Records waiting for the writer. At about 300 bytes per queued record (strings included)
/// this bounds the backlog near 20 MiB; a writer that far behind is better served by
/// dropping lines than by holding requests up.
pub(crate) const QUEUE_CAPACITY: usize = 64 * 1024;

/// Permissions of a log file goaround creates (before the umask): lines hold client addresses
/// and full URLs with their query strings, which other local users should not read; the group
/// may, for a log shipper in the file's group (Debian's `adm` convention).
pub(crate) const FILE_MODE: u32 = 0o640;

/// What the server knows about one answered request, filled once when the response is done.
/// Built only when the log is on; the header values are the request's own (cloning one is a
/// reference count, not a copy).
#[derive(Debug, Clone)]
pub(crate) struct AccessRecord {
    /// When the request head was complete (the log's timestamp, as Apache's `%t`).
    pub start: SystemTime,
    pub client_ip: IpAddr,
    /// `None` for a request refused before its head was complete or valid (400, 408, 414,
    /// 431, ...): `"-"` in `combined`, `null`s in `json`, as nginx logs them.
    pub request: Option<RequestLine>,
    /// The status sent to the client.
    pub status: u16,
    /// Body bytes sent to the client (head excluded); 0 for none.
    pub body_bytes: u64,
    pub referer: Option<HeaderValue>,
    pub user_agent: Option<HeaderValue>,
    /// `Host`, or the authority of an absolute-form target.
    pub host: Option<String>,
    /// The backend that gave the final answer or, after failed attempts, the last one tried
    /// (its base URL, e.g. `http://10.0.0.1:8080`); `None` when no backend was involved
    /// (cache hit, goaround's own error page before choosing one).
    pub upstream: Option<String>,
    /// The status that backend answered; `None` when it answered nothing (refused, timed
    /// out, not HTTP) or there was no backend.
    pub upstream_status: Option<u16>,
    /// From [`start`](Self::start) to the last byte of the response.
    pub duration: Duration,
}

impl AccessRecord {
    /// A head refused before it was complete or valid, answered by goaround itself with
    /// `status` and a body of `body_bytes`, `took` after its first byte arrived: no request
    /// line, no fields, no backend.
    pub(crate) fn refused(client_ip: IpAddr, status: u16, body_bytes: u64, took: Duration) -> Self {
        AccessRecord {
            start: SystemTime::now() - took,
            client_ip,
            request: None,
            status,
            body_bytes,
            referer: None,
            user_agent: None,
            host: None,
            upstream: None,
            upstream_status: None,
            duration: took,
        }
    }
}

/// The request line of a logged request.
#[derive(Debug, Clone)]
pub(crate) struct RequestLine {
    pub method: Method,
    /// The request-target as received (origin form, or `*`).
    pub target: String,
    pub version: Version,
}

/// Where the log goes: `-access-log PATH`, `-` meaning stdout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Destination {
    Stdout,
    File(PathBuf),
}

impl Destination {
    /// The value of `-access-log`.
    pub(crate) fn from_flag(value: &str) -> Destination {
        match value {
            "-" => Destination::Stdout,
            path => Destination::File(PathBuf::from(path)),
        }
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Destination::Stdout => f.write_str("stdout"),
            Destination::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// The line format: `-access-log-format combined|json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum LogFormat {
    #[default]
    Combined,
    Json,
}

impl LogFormat {
    /// The value of `-access-log-format`; `None` for anything else.
    pub(crate) fn from_flag(value: &str) -> Option<LogFormat> {
        match value {
            "combined" => Some(LogFormat::Combined),
            "json" => Some(LogFormat::Json),
            _ => None,
        }
    }

    /// Appends one line for `record`, newline included.
    pub(crate) fn write(self, record: &AccessRecord, out: &mut Vec<u8>) {
        match self {
            LogFormat::Combined => format::format_combined(record, out),
            LogFormat::Json => format::format_json(record, out),
        }
    }
}

/// Errors starting the access log; once it runs, write errors are logged and counted instead.
#[derive(Debug)]
pub(crate) enum AccessLogError {
    Open {
        destination: Destination,
        source: io::Error,
    },
    Thread(io::Error),
}

impl fmt::Display for AccessLogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AccessLogError::Open {
                destination,
                source,
            } => write!(f, "access log {destination}: {source}"),
            AccessLogError::Thread(e) => write!(f, "access log: cannot start its thread: {e}"),
        }
    }
}

impl std::error::Error for AccessLogError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            AccessLogError::Open { source, .. } | AccessLogError::Thread(source) => Some(source),
        }
    }
}

/// Lines lost, by cause; the sum is `goaround_access_log_dropped_total`.
#[derive(Debug, Default)]
struct Drops {
    /// The queue was full (or the writer gone) when a record was sent.
    queue_full: AtomicU64,
    /// Formatted, but the write failed.
    write_failed: AtomicU64,
}

impl Drops {
    fn total(&self) -> u64 {
        self.queue_full.load(Ordering::Relaxed) + self.write_failed.load(Ordering::Relaxed)
    }
}

/// Reads the number of lines dropped, for the metrics layer; holding one does not keep the
/// writer alive.
#[derive(Debug, Clone)]
pub(crate) struct DroppedLines(Arc<Drops>);

impl DroppedLines {
    pub(crate) fn get(&self) -> u64 {
        self.0.total()
    }
}

/// Messages from the server to the writer, beside the records.
#[derive(Debug)]
enum Control {
    /// Close the file and open the path again (log rotation).
    Reopen,
    /// Write what is queued, then stop.
    Close,
}

/// The handle the event loops log through; clone one per loop. Cheap, and never blocks.
#[derive(Debug, Clone)]
pub(crate) struct AccessLog {
    records: Sender<Box<AccessRecord>>,
    drops: Arc<Drops>,
}

impl AccessLog {
    /// Opens `destination` (a file is created if missing, appended to otherwise) and starts the
    /// writer thread. An error names the file, for a start-up message.
    pub(crate) fn open(
        destination: Destination,
        format: LogFormat,
    ) -> Result<(AccessLog, AccessLogWriter), AccessLogError> {
        let file = match &destination {
            Destination::Stdout => stdout_file(),
            Destination::File(path) => open_file(path),
        }
        .map_err(|source| AccessLogError::Open {
            destination: destination.clone(),
            source,
        })?;
        let (log, records) = AccessLog::with_capacity(QUEUE_CAPACITY);
        let (control_tx, control_rx) = crossbeam_channel::unbounded();
        let (done_tx, done_rx) = crossbeam_channel::bounded::<()>(0);
        let writer = writer::Writer::new(
            records,
            control_rx,
            format,
            destination,
            file,
            Arc::clone(&log.drops),
        );
        let thread = thread::Builder::new()
            .name("access-log".into())
            .spawn(move || {
                // Dropped when the thread ends, panics included: that is what close() waits for.
                let _done = done_tx;
                writer.run();
            })
            .map_err(AccessLogError::Thread)?;
        let writer = AccessLogWriter {
            control: control_tx,
            done: done_rx,
            thread,
            drops: Arc::clone(&log.drops),
        };
        Ok((log, writer))
    }

    /// The sending half and the queue, without a writer (tests fill the queue themselves).
    fn with_capacity(capacity: usize) -> (AccessLog, Receiver<Box<AccessRecord>>) {
        // Boxed: a bounded channel allocates every slot up front, so a slot is kept to a
        // pointer (1 MiB for the whole queue instead of 16).
        let (records_tx, records_rx) = crossbeam_channel::bounded(capacity);
        let log = AccessLog {
            records: records_tx,
            drops: Arc::default(),
        };
        (log, records_rx)
    }

    /// Queues `record` for the writer, or drops and counts it when the queue is full or the
    /// writer has stopped. Never blocks.
    pub(crate) fn send(&self, record: AccessRecord) {
        match self.records.try_send(Box::new(record)) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.drops.queue_full.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Lines dropped so far (queue full or write failed).
    #[cfg(test)]
    pub(crate) fn dropped(&self) -> u64 {
        self.drops.total()
    }

    /// A reader of the dropped count that does not keep the writer running.
    #[cfg(test)]
    pub(crate) fn dropped_lines(&self) -> DroppedLines {
        DroppedLines(Arc::clone(&self.drops))
    }
}

/// The server's handle on the writer thread: log rotation and shutdown.
#[derive(Debug)]
pub(crate) struct AccessLogWriter {
    control: Sender<Control>,
    /// Never carries a message; disconnected when the thread has ended.
    done: Receiver<()>,
    thread: JoinHandle<()>,
    drops: Arc<Drops>,
}

impl AccessLogWriter {
    /// SIGUSR1: the writer writes out what it has formatted, then closes the file and opens
    /// the path again (after logrotate renamed it). Records still queued go to the new file;
    /// none are lost. If the path cannot be opened the writer keeps the old file and logs
    /// why. No effect on stdout. Returns at once.
    pub(crate) fn reopen(&self) {
        let _ = self.control.send(Control::Reopen);
    }

    /// A reader of the dropped-lines count, for the metrics layer.
    pub(crate) fn dropped_lines(&self) -> DroppedLines {
        DroppedLines(Arc::clone(&self.drops))
    }

    /// Shutdown: the writer writes every record already queued, then stops, even while loops
    /// still hold [`AccessLog`] handles (records they send later are counted as dropped; one
    /// that races the very end of the drain may be lost uncounted).
    /// Waits up to `timeout`; `false` if the writer had not finished by then (it is left to
    /// the process exit). Dropping every [`AccessLog`] ends the writer the same way.
    pub(crate) fn close(self, timeout: Duration) -> bool {
        let _ = self.control.send(Control::Close);
        match self.done.recv_timeout(timeout) {
            Ok(()) | Err(RecvTimeoutError::Disconnected) => {
                if self.thread.join().is_err() {
                    log::error!("access log: the writer thread panicked");
                }
                true
            }
            Err(RecvTimeoutError::Timeout) => false,
        }
    }
}

/// Appends, creates with [`FILE_MODE`] if missing.
fn open_file(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(FILE_MODE)
        .open(path)
}

/// A second descriptor for stdout, written to directly: `std`'s stdout would buffer by line
/// behind our own batching.
fn stdout_file() -> io::Result<File> {
    use std::os::fd::AsFd;
    Ok(File::from(io::stdout().as_fd().try_clone_to_owned()?))
}

#[cfg(test)]
mod tests;
