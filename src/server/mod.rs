//! The client side: the event loops that own every connection, and the process lifecycle.
//!
//! [`run`] binds every socket first (so a port in use is a start-up error, not a log line),
//! then starts the threads: `-workers` event loops (`event_loop`), each with its own
//! listening socket on the client port and its own connections, one health thread per
//! backend, the control socket and the metrics listener. The calling thread waits for
//! signals: SIGHUP reloads the TLS certificate; SIGTERM/SIGINT drain (stop accepting, let
//! in-flight requests finish for up to `-shutdown-timeout`, remove the control socket) and
//! return.
//!
//! | file | owns |
//! |---|---|
//! | `event_loop.rs` | one loop: poll, accept, dispatch events, mailbox, timers, panics |
//! | `session/` | a client connection's states: handshake, idle, exchange, tunnel |
//! | `upstream_conn.rs` | backend connections: non-blocking connect, the per-loop idle pool |
//! | `transport.rs` | a non-blocking stream, plain or TLS (client and server side) |
//! | `mailbox.rs` | messages from other threads to a loop, and its waker |
//! | `caching.rs` | the loop's side of the GET cache |
//! | `listen.rs`, `nofile.rs` | the `SO_REUSEPORT` listener group; the open-files limit |
//! | `buffer.rs`, `slab.rs`, `timers.rs` | fixed buffers, connection slabs, deadlines |

mod buffer;
mod caching;
mod event_loop;
mod listen;
mod mailbox;
mod nofile;
pub(crate) mod session;
mod slab;
mod timers;
mod transport;
mod upstream_conn;

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use mio::{Poll, Waker};

use crate::access_log::{AccessLog, Destination, LogFormat};
use crate::cache::Cache;
use crate::config::Config;
use crate::control::ControlSocket;
use crate::metrics::{self, Metrics};
use crate::tls::{self, ReloadableConfig, TlsError};
use crate::upstream::health::{self, HealthSettings};
use crate::upstream::routes::{self, FlagBackends, Reload, SharedRoutes};
use event_loop::EventLoop;
use mailbox::{Mailbox, Msg};

/// Stack size of event-loop threads: they hold no large arrays (buffers are on the heap).
const LOOP_STACK: usize = 512 * 1024;

/// What every thread shares.
pub(crate) struct Shared {
    pub(crate) config: Config,
    /// The upstreams and the locations leading to them; replaced by SIGHUP.
    pub(crate) routes: Arc<SharedRoutes>,
    pub(crate) metrics: Arc<Metrics>,
    /// `X-Forwarded-Proto` of this listener.
    pub(crate) proto: &'static str,
    /// The TLS configuration new connections use, when the listener speaks TLS.
    pub(crate) tls: Option<Arc<ReloadableConfig>>,
    /// TLS settings for https backends.
    pub(crate) backend_tls: Option<Arc<rustls::ClientConfig>>,
    /// The GET cache (`-cache`).
    pub(crate) cache: Option<Arc<Cache>>,
    /// Open client connections, across loops (for `-max-conns`).
    pub(crate) open: AtomicUsize,
    /// `-access-log`: where each loop sends a line per request.
    pub(crate) access_log: Option<AccessLog>,
    shutting_down: AtomicBool,
}

impl Shared {
    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }
}

/// Why goaround could not start.
#[derive(Debug)]
pub enum StartError {
    Listen(SocketAddr, std::io::Error),
    Metrics(SocketAddr, std::io::Error),
    Control(crate::control::ControlError),
    Thread(std::io::Error),
    Signals(std::io::Error),
    Tls(TlsError),
    /// The access log could not be opened (the message names the file).
    AccessLog(String),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Listen(addr, e) => write!(f, "cannot listen on {addr}: {e}"),
            Self::Metrics(addr, e) => write!(f, "cannot listen for metrics on {addr}: {e}"),
            Self::Control(e) => write!(f, "{e}"),
            Self::Thread(e) => write!(f, "cannot start a thread: {e}"),
            Self::Signals(e) => write!(f, "cannot install signal handlers: {e}"),
            Self::Tls(e) => write!(f, "{e}"),
            Self::AccessLog(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for StartError {}

/// A running loop, as the main thread sees it.
struct LoopHandle {
    mailbox: Arc<Mailbox>,
    thread: thread::JoinHandle<()>,
}

/// Runs the load balancer until SIGTERM or SIGINT; returns after the drain.
pub fn run(config: Config) -> Result<(), StartError> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};

    // Signals first: a SIGTERM during start-up must not kill the process half-way.
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP, SIGUSR1])
        .map_err(StartError::Signals)?;

    // Certificates before sockets: a bad file is a start-up error naming the file.
    let tls = match &config.tls {
        Some(files) => Some(Arc::new(
            ReloadableConfig::load(files.clone()).map_err(StartError::Tls)?,
        )),
        None => None,
    };
    let health_tls =
        tls::backend_tls_config(config.backend_ca.as_deref()).map_err(StartError::Tls)?;
    let backend_tls =
        tls::backend_client_config(config.backend_ca.as_deref()).map_err(StartError::Tls)?;

    let open_files = nofile::raise_open_files_limit();
    let listen_addr = SocketAddr::new(config.bind, config.port);
    let listeners = listen::bind_group(listen_addr, config.workers)
        .map_err(|e| StartError::Listen(listen_addr, e))?;
    let metrics_addr = SocketAddr::new(config.bind, config.metrics_port);
    let metrics_listener =
        TcpListener::bind(metrics_addr).map_err(|e| StartError::Metrics(metrics_addr, e))?;
    let control = ControlSocket::bind(&config.socket).map_err(StartError::Control)?;

    let (access_log, access_writer) = match &config.access_log {
        Some((path, format)) => {
            let format = LogFormat::from_flag(format).unwrap_or_default();
            let (log, writer) = AccessLog::open(Destination::from_flag(path), format)
                .map_err(|e| StartError::AccessLog(e.to_string()))?;
            (Some(log), Some(writer))
        }
        None => (None, None),
    };
    let metrics = Arc::new(Metrics::new());
    if let Some(writer) = &access_writer {
        metrics.count_access_log_drops(writer.dropped_lines());
    }
    let cache = config.cache.map(|c| Arc::new(Cache::new(c)));
    let health_settings = HealthSettings {
        interval: config.health_interval,
        timeout: config.health_timeout,
        tls: health_tls,
    };
    let (initial, reload) = routes::build(&config.file, &flag_backends(&config), None);
    start_health_checks(&reload, &health_settings, &metrics);

    let shared = Arc::new(Shared {
        config,
        routes: Arc::new(SharedRoutes::new(initial)),
        metrics: Arc::clone(&metrics),
        proto: if tls.is_some() { "https" } else { "http" },
        tls,
        backend_tls: Some(backend_tls),
        cache: cache.clone(),
        open: AtomicUsize::new(0),
        access_log,
        shutting_down: AtomicBool::new(false),
    });

    let local = listeners
        .first()
        .and_then(|l| l.local_addr().ok())
        .unwrap_or(listen_addr);
    let metrics_local = metrics_listener.local_addr().unwrap_or(metrics_addr);
    let loops = start_loops(listeners, &shared)?;
    {
        let (metrics, routes) = (Arc::clone(&metrics), Arc::clone(&shared.routes));
        thread::Builder::new()
            .name("metrics".into())
            .spawn(move || metrics::serve(metrics_listener, metrics, routes, cache))
            .map_err(StartError::Thread)?;
    }
    let socket_path = control.path().to_owned();
    {
        let (routes, metrics, health) = (
            Arc::clone(&shared.routes),
            Arc::clone(&metrics),
            health_settings.clone(),
        );
        thread::Builder::new()
            .name("control".into())
            .spawn(move || control.serve(&routes, health, &metrics))
            .map_err(StartError::Thread)?;
    }

    match &shared.tls {
        Some(tls) => log::info!("listening on {local} (TLS, {})", tls.files().cert.display()),
        None => log::info!("listening on {local}"),
    }
    log::info!("metrics on {metrics_local}");
    log::info!(
        "{} backends, -n {} in flight each, {} event loops, control socket {}",
        shared.config.backends.len(),
        shared.config.max_conns_per_backend,
        shared.config.workers,
        socket_path.display()
    );
    if let Some(path) = &shared.config.config_file {
        let routes = shared.routes.current();
        log::info!(
            "config {}: {} upstreams, {} servers",
            path.display(),
            routes.upstreams.len(),
            routes
                .upstreams
                .iter()
                .map(|u| u.set.snapshot().len())
                .sum::<usize>()
        );
    }
    match open_files {
        Some(n) => log::info!(
            "open files limit {n}, -max-conns {}",
            shared.config.max_client_conns
        ),
        None => log::info!("open files limit: unlimited"),
    }

    let mut signal = SIGTERM;
    for received in signals.forever() {
        if received == SIGUSR1 {
            match &access_writer {
                Some(writer) => writer.reopen(),
                None => log::info!("SIGUSR1: no access log to reopen"),
            }
            continue;
        }
        if received == SIGHUP {
            if shared.tls.is_some() || shared.config.config_file.is_none() {
                reload_tls(shared.tls.as_deref());
            }
            reload_config(&shared, &health_settings, &metrics);
            continue;
        }
        signal = received;
        break;
    }
    log::info!(
        "received {}, draining for up to {:?}",
        if signal == SIGINT {
            "SIGINT"
        } else {
            "SIGTERM"
        },
        shared.config.shutdown_timeout
    );
    shared.shutting_down.store(true, Ordering::Release);
    let deadline = Instant::now() + shared.config.shutdown_timeout;
    for l in &loops {
        l.mailbox.send(Msg::Drain { take_backlog: true });
    }
    // Loops end when their last connection does. A second SIGTERM/SIGINT ends the wait at
    // once (an operator pressing Ctrl-C twice).
    while loops.iter().any(|l| !l.thread.is_finished()) && Instant::now() < deadline {
        if signals.pending().any(|s| s == SIGTERM || s == SIGINT) {
            log::warn!("second signal: exiting without waiting for in-flight requests");
            break;
        }
        thread::sleep(Duration::from_millis(10));
    }
    let busy = shared.open.load(Ordering::Acquire);
    if busy > 0 && Instant::now() >= deadline {
        log::warn!("{busy} connections still open after the shutdown timeout; exiting anyway");
    }
    if let Some(writer) = access_writer {
        let left = deadline.saturating_duration_since(Instant::now());
        if !writer.close(left.max(Duration::from_millis(500))) {
            log::warn!("access log: lines still queued at exit were not written");
        }
    }
    if let Err(e) = std::fs::remove_file(&socket_path) {
        log::warn!("removing {}: {e}", socket_path.display());
    }
    log::info!("stopped");
    Ok(())
}

/// Starts one event loop per listener.
fn start_loops(
    listeners: Vec<TcpListener>,
    shared: &Arc<Shared>,
) -> Result<Vec<LoopHandle>, StartError> {
    let mut loops = Vec::with_capacity(listeners.len());
    for (index, listener) in listeners.into_iter().enumerate() {
        let poll = Poll::new().map_err(StartError::Thread)?;
        let waker = Waker::new(poll.registry(), event_loop::WAKER).map_err(StartError::Thread)?;
        let (mailbox, inbox) = Mailbox::new(waker);
        let event_loop = EventLoop::new(
            index,
            poll,
            Some(listener),
            Arc::clone(&mailbox),
            inbox,
            Arc::clone(shared),
        )
        .map_err(StartError::Thread)?;
        let thread = thread::Builder::new()
            .name(format!("loop {index}"))
            .stack_size(LOOP_STACK)
            .spawn(move || event_loop.run())
            .map_err(StartError::Thread)?;
        loops.push(LoopHandle { mailbox, thread });
    }
    Ok(loops)
}

/// What the flags say about the `default` upstream.
fn flag_backends(config: &Config) -> FlagBackends {
    FlagBackends {
        urls: config.backends.clone(),
        balancer: config.balancer.clone(),
        slots: config.max_conns_per_backend,
    }
}

/// Starts the health threads a build or reload of the routes asks for.
fn start_health_checks(reload: &Reload, settings: &HealthSettings, metrics: &Arc<Metrics>) {
    for (backend, set) in &reload.added {
        health::spawn(
            Arc::clone(backend),
            settings.clone(),
            Arc::clone(metrics),
            Arc::clone(set),
        );
    }
}

/// SIGHUP: re-reads the `-config` file. A valid one replaces the routes and upstreams at
/// once (requests in flight finish where they are; servers present in both keep their
/// state); an invalid one is logged and changes nothing.
fn reload_config(shared: &Shared, settings: &HealthSettings, metrics: &Arc<Metrics>) {
    let Some(path) = &shared.config.config_file else {
        return;
    };
    let file = match crate::config::file::load(path)
        .and_then(|f| f.check_backend_flags(&shared.config.backends).map(|()| f))
    {
        Ok(file) => file,
        Err(e) => {
            log::error!("SIGHUP: keeping the current configuration: {e}");
            return;
        }
    };
    let current = shared.routes.current();
    let (next, reload) = routes::build(&file, &flag_backends(&shared.config), Some(&current));
    let servers: usize = next.upstreams.iter().map(|u| u.set.snapshot().len()).sum();
    let upstreams = next.upstreams.len();
    shared.routes.replace(next);
    start_health_checks(&reload, settings, metrics);
    for b in &reload.removed {
        metrics.forget_backend(&b.url.base);
    }
    log::info!(
        "SIGHUP: reloaded {}: {upstreams} upstreams, {servers} servers ({} added, {} removed)",
        path.display(),
        reload.servers_added,
        reload.removed.len()
    );
}

/// SIGHUP: new handshakes use the certificate and key now in the files; connections already
/// open keep theirs. A bad file leaves the old pair in place.
fn reload_tls(tls: Option<&ReloadableConfig>) {
    let Some(tls) = tls else {
        log::info!("SIGHUP: no TLS configured, nothing to reload");
        return;
    };
    match tls.reload() {
        Ok(()) => log::info!("SIGHUP: reloaded {}", tls.files().cert.display()),
        Err(e) => log::error!("SIGHUP: keeping the current certificate: {e}"),
    }
}
