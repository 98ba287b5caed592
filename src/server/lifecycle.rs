//! A running goaround, as the main thread sees it: waiting for signals and acting on them.
//!
//! | signal | what happens |
//! |---|---|
//! | SIGHUP | re-read the TLS files and the `-config` file (a bad one changes nothing) |
//! | SIGUSR1 | reopen the access log (after logrotate renamed it) |
//! | SIGUSR2 | upgrade: start the binary now at our path with our arguments, hand it the listening sockets; once it serves, drain and exit, leaving the control socket and the pidfile to it. If it fails to start, keep serving |
//! | SIGTERM, SIGINT | drain: stop accepting, answer what already arrived, let requests in flight finish within `-shutdown-timeout`, remove the control socket and the pidfile, exit. A second one ends the wait |
//!
//! The upgrade itself runs on a thread of its own (starting a process and waiting for it
//! takes a while), so SIGTERM is still heard meanwhile. Signals reach the main thread through
//! a channel fed by a small thread blocked in `signal-hook`'s iterator, so the main thread
//! sleeps until something happens: an idle goaround does not wake up to poll.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{select, Receiver};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1, SIGUSR2};
use signal_hook::iterator::Signals;

use super::mailbox::{Mailbox, Msg};
use super::sockets::Handover;
use super::Shared;
use crate::access_log::AccessLogWriter;
use crate::metrics::Metrics;
use crate::upgrade::{self, Successor, UpgradeError};
use crate::upstream::health::HealthSettings;

/// Longest a new binary may take from start to serving before the upgrade is given up.
const UPGRADE_TIMEOUT: Duration = Duration::from_secs(30);

/// A running loop, as the main thread sees it.
pub(crate) struct LoopHandle {
    pub mailbox: Arc<Mailbox>,
    pub thread: thread::JoinHandle<()>,
}

pub(crate) struct Running {
    pub shared: Arc<Shared>,
    pub loops: Vec<LoopHandle>,
    pub health: HealthSettings,
    pub metrics: Arc<Metrics>,
    pub access_writer: Option<AccessLogWriter>,
    pub socket_path: PathBuf,
    pub handover: Arc<Handover>,
    /// Tells the metrics and control threads to stop accepting.
    pub stop_threads: Arc<AtomicBool>,
}

/// How the process leaves.
enum Exit {
    /// SIGTERM or SIGINT: the files are ours to remove.
    Shutdown(&'static str),
    /// A new process took over: the control socket and pidfile are its now.
    Upgraded(u32),
}

impl Running {
    /// Acts on signals until the process should exit, then drains.
    pub(crate) fn wait(self, signals: Signals) {
        let (upgrade_tx, upgrade_rx) = crossbeam_channel::bounded(1);
        let signal_rx = forward(signals);
        let mut upgrading = false;
        let exit = loop {
            select! {
                recv(signal_rx) -> signal => {
                    if let Some(exit) = self.on_signal(signal.ok(), &mut upgrading, &upgrade_tx) {
                        break exit;
                    }
                }
                recv(upgrade_rx) -> outcome => match outcome {
                    Ok(Ok(successor)) => break Exit::Upgraded(successor.pid()),
                    Ok(Err(e)) => {
                        log::error!("{e}; still serving");
                        upgrading = false;
                    }
                    // Never: this function holds a sender.
                    Err(_) => {}
                },
            }
        };
        self.drain(exit, &signal_rx);
    }

    /// Acts on one signal; `Some` when the process should now drain and exit. `None` for
    /// `signal`: the forwarding thread is gone.
    fn on_signal(
        &self,
        signal: Option<i32>,
        upgrading: &mut bool,
        upgrade_tx: &crossbeam_channel::Sender<Result<Successor, UpgradeError>>,
    ) -> Option<Exit> {
        let Some(signal) = signal else {
            // Nothing could stop this process cleanly any more but SIGKILL: drain now
            // rather than serve deaf.
            log::error!("signals: no longer received; draining");
            return Some(Exit::Shutdown("SIGTERM"));
        };
        match signal {
            SIGHUP => {
                let has_config = self.shared.config.config_file.is_some();
                if self.shared.tls.is_some() || !has_config {
                    super::reload_tls(self.shared.tls.as_deref());
                }
                super::reload_config(&self.shared, &self.health, &self.metrics);
            }
            SIGUSR1 => match &self.access_writer {
                Some(writer) => writer.reopen(),
                None => log::info!("SIGUSR1: no access log to reopen"),
            },
            SIGUSR2 if *upgrading => log::warn!("SIGUSR2: an upgrade is already in progress"),
            SIGUSR2 => {
                *upgrading = true;
                self.start_upgrade(upgrade_tx.clone());
            }
            SIGINT => return Some(Exit::Shutdown("SIGINT")),
            _ => return Some(Exit::Shutdown("SIGTERM")),
        }
        None
    }

    fn start_upgrade(&self, done: crossbeam_channel::Sender<Result<Successor, UpgradeError>>) {
        let handover = Arc::clone(&self.handover);
        let spawned = thread::Builder::new()
            .name("upgrade".into())
            .spawn(move || {
                let result = upgrade::current_program().and_then(|program| {
                    log::info!("SIGUSR2: starting {}", program.display());
                    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
                    handover
                        .with_fds(|fds| {
                            upgrade::start_successor(&program, &args, fds, UPGRADE_TIMEOUT)
                        })
                        .unwrap_or(Err(UpgradeError::ShuttingDown))
                });
                let _ = done.send(result);
            });
        if let Err(e) = spawned {
            log::error!("upgrade: cannot start a thread: {e}; still serving");
        }
    }

    /// Stops accepting and lets what is in progress finish within `-shutdown-timeout`.
    fn drain(self, exit: Exit, signals: &Receiver<i32>) {
        let config = &self.shared.config;
        let take_backlog = match exit {
            Exit::Shutdown(signal) => {
                log::info!(
                    "received {signal}, draining for up to {:?}",
                    config.shutdown_timeout
                );
                true
            }
            Exit::Upgraded(pid) => {
                log::info!(
                    "upgrade: process {pid} serves now; draining for up to {:?}",
                    config.shutdown_timeout
                );
                // Its sockets are the new process's too: leave what is queued to it.
                false
            }
        };
        self.shared.begin_shutdown();
        self.stop_threads.store(true, Ordering::Release);
        let deadline = Instant::now() + config.shutdown_timeout;
        for l in &self.loops {
            l.mailbox.send(Msg::Drain { take_backlog });
        }
        if take_backlog {
            // Each client socket now closes when its loop, having taken what was queued,
            // drops its descriptor: later connections are refused instead of queued.
            self.handover.close_clients();
        }
        // Loops end when their last connection does. A second SIGTERM/SIGINT ends the wait
        // at once (an operator pressing Ctrl-C twice).
        while self.loops.iter().any(|l| !l.thread.is_finished()) && Instant::now() < deadline {
            if signals.try_iter().any(|s| s == SIGTERM || s == SIGINT) {
                log::warn!("second signal: exiting without waiting for in-flight requests");
                break;
            }
            thread::sleep(Duration::from_millis(10));
        }
        let busy = self.shared.open.load(Ordering::Acquire);
        if busy > 0 && Instant::now() >= deadline {
            log::warn!("{busy} connections still open after the shutdown timeout; exiting anyway");
        }
        if let Some(writer) = self.access_writer {
            let left = deadline.saturating_duration_since(Instant::now());
            if !writer.close(left.max(Duration::from_millis(500))) {
                log::warn!("access log: lines still queued at exit were not written");
            }
        }
        if let Exit::Shutdown(_) = exit {
            if let Err(e) = std::fs::remove_file(&self.socket_path) {
                log::warn!("removing {}: {e}", self.socket_path.display());
            }
            if let Some(path) = &config.pidfile {
                if let Err(e) = upgrade::remove_pidfile_if_ours(path, std::process::id()) {
                    log::warn!("{e}");
                }
            }
        }
        log::info!("stopped");
    }
}

/// The signals as they arrive, from a thread of their own.
fn forward(mut signals: Signals) -> Receiver<i32> {
    let (tx, rx) = crossbeam_channel::unbounded();
    let spawned = thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                if tx.send(signal).is_err() {
                    break;
                }
            }
        });
    if let Err(e) = spawned {
        // The receiver then reports a disconnect, and `wait` drains.
        log::error!("signals: cannot start a thread: {e}");
    }
    rx
}

/// The signals the main thread acts on.
pub(crate) fn signals() -> std::io::Result<Signals> {
    Signals::new([SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2])
}
