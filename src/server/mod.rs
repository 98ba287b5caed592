//! The client side: the event loops that own every connection, and the process lifecycle.
//!
//! [`run`] binds every socket first, or takes them over from the goaround it replaces (so a
//! port in use is a start-up error, not a log line), then starts the threads: `-workers`
//! event loops (`event_loop`), each with its own listening socket on the client port and
//! its own connections, one health thread per checked backend, the control socket and the
//! metrics listener. The calling thread then acts on signals (`lifecycle`): reloads,
//! upgrades, and the drain before exit.
//!
//! | file | owns |
//! |---|---|
//! | `event_loop.rs` | one loop: poll, accept, dispatch events, mailbox, timers, panics |
//! | `session/` | a client connection's states: handshake, idle, exchange, tunnel |
//! | `upstream_conn.rs` | backend connections: non-blocking connect, the per-loop idle pool |
//! | `transport.rs` | a non-blocking stream, plain or TLS (client and server side) |
//! | `mailbox.rs` | messages from other threads to a loop, and its waker |
//! | `caching.rs` | the loop's side of the GET cache |
//! | `lifecycle.rs` | signals: reload, reopen, upgrade, drain |
//! | `sockets.rs`, `listen.rs` | the listening sockets, bound or inherited; the `SO_REUSEPORT` group |
//! | `nofile.rs` | the open-files limit |
//! | `buffer.rs`, `slab.rs`, `timers.rs` | fixed buffers, connection slabs, deadlines |

mod buffer;
mod caching;
mod event_loop;
mod lifecycle;
mod listen;
mod mailbox;
mod nofile;
pub(crate) mod session;
mod slab;
mod sockets;
mod timers;
mod transport;
mod upstream_conn;

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;

use mio::{Poll, Waker};

use crate::access_log::{AccessLog, Destination, LogFormat};
use crate::cache::Cache;
use crate::config::Config;
use crate::metrics::{self, Metrics};
use crate::stats::ProcessStats;
use crate::tls::{self, ReloadableConfig, TlsError};
use crate::upgrade::{self, Inherited};
use crate::upstream::health::{self, HealthSettings};
use crate::upstream::routes::{self, FlagBackends, Reload, SharedRoutes};
use event_loop::EventLoop;
use lifecycle::{LoopHandle, Running};
use mailbox::Mailbox;
use sockets::Sockets;

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
    /// Connections, tunnels and requests for the status page.
    pub(crate) process: Arc<ProcessStats>,
    shutting_down: AtomicBool,
}

impl Shared {
    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }

    /// From now on every answer says `Connection: close`.
    pub(crate) fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::Release);
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
    /// Taking over the sockets of the process this one replaces failed.
    Inherit(String),
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
            Self::Inherit(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for StartError {}

/// Runs the load balancer until SIGTERM or SIGINT (or until a new binary took over after
/// SIGUSR2); returns after the drain.
pub fn run(config: Config) -> Result<(), StartError> {
    // Signals first: a SIGTERM during start-up must not kill the process half-way.
    let signals = lifecycle::signals().map_err(StartError::Signals)?;
    // A goaround started by another for an upgrade takes its sockets instead of binding.
    let mut inherited = upgrade::inherit().map_err(|e| StartError::Inherit(e.to_string()))?;
    match start(config, inherited.as_mut()) {
        Ok(running) => {
            if let Some(path) = &running.shared.config.pidfile {
                if let Err(e) = upgrade::write_pidfile(path) {
                    log::error!("{e}");
                }
            }
            if let Some(inherited) = inherited {
                let parent = inherited.parent_pid();
                match inherited.ready() {
                    Ok(()) => log::info!("upgrade: took over from process {parent}"),
                    Err(e) => log::warn!("upgrade: telling process {parent}: {e}"),
                }
            }
            running.wait(signals);
            Ok(())
        }
        Err(e) => {
            if let Some(inherited) = inherited {
                inherited.abort(&e.to_string());
            }
            Err(e)
        }
    }
}

/// Opens everything and starts every thread; the process serves when this returns.
fn start(config: Config, inherited: Option<&mut Inherited>) -> Result<Running, StartError> {
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
    let sockets = Sockets::open(&config, inherited)?;
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
    let health = HealthSettings {
        interval: config.health_interval,
        timeout: config.health_timeout,
        tls: health_tls,
    };
    let (initial, reload) = routes::build(&config.file, &flag_backends(&config), None);
    start_health_checks(&reload, &health, &metrics);

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
        process: Arc::new(ProcessStats::new()),
        shutting_down: AtomicBool::new(false),
    });

    let Sockets {
        per_loop,
        metrics: metrics_listener,
        control,
        handover,
    } = sockets;
    let local = per_loop
        .first()
        .and_then(|group| group.first())
        .and_then(|l| l.local_addr().ok());
    let metrics_local = metrics_listener.local_addr().ok();
    let loops = start_loops(per_loop, &shared)?;
    let stop_threads = Arc::new(AtomicBool::new(false));
    {
        let sources = Arc::new(crate::status::Sources {
            routes: Arc::clone(&shared.routes),
            process: Arc::clone(&shared.process),
            cache,
            flags: std::env::args().skip(1).collect(),
        });
        let (metrics, stop) = (Arc::clone(&metrics), Arc::clone(&stop_threads));
        thread::Builder::new()
            .name("metrics".into())
            .spawn(move || metrics::serve(metrics_listener, metrics, sources, stop))
            .map_err(StartError::Thread)?;
    }
    let socket_path = control.path().to_owned();
    {
        let (routes, metrics, health, stop) = (
            Arc::clone(&shared.routes),
            Arc::clone(&metrics),
            health.clone(),
            Arc::clone(&stop_threads),
        );
        thread::Builder::new()
            .name("control".into())
            .spawn(move || control.serve(&routes, health, &metrics, stop))
            .map_err(StartError::Thread)?;
    }
    log_start(&shared, local, metrics_local, &socket_path, open_files);
    Ok(Running {
        shared,
        loops,
        health,
        metrics,
        access_writer,
        socket_path,
        handover: Arc::new(handover),
        stop_threads,
    })
}

/// The start-up lines (the first two are what scripts and tests wait for).
fn log_start(
    shared: &Shared,
    local: Option<SocketAddr>,
    metrics_local: Option<SocketAddr>,
    socket_path: &std::path::Path,
    open_files: Option<u64>,
) {
    let local = local.map_or_else(|| "?".to_owned(), |a| a.to_string());
    match &shared.tls {
        Some(tls) => log::info!("listening on {local} (TLS, {})", tls.files().cert.display()),
        None => log::info!("listening on {local}"),
    }
    let metrics_local = metrics_local.map_or_else(|| "?".to_owned(), |a| a.to_string());
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
        let servers: usize = routes
            .upstreams
            .iter()
            .map(|u| u.set.snapshot().len())
            .sum();
        log::info!(
            "config {}: {} upstreams, {servers} servers",
            path.display(),
            routes.upstreams.len()
        );
    }
    match open_files {
        Some(n) => log::info!(
            "open files limit {n}, -max-conns {}",
            shared.config.max_client_conns
        ),
        None => log::info!("open files limit: unlimited"),
    }
}

/// Starts one event loop per group of listeners.
fn start_loops(
    per_loop: Vec<Vec<TcpListener>>,
    shared: &Arc<Shared>,
) -> Result<Vec<LoopHandle>, StartError> {
    let mut loops = Vec::with_capacity(per_loop.len());
    for (index, listeners) in per_loop.into_iter().enumerate() {
        let (event_loop, mailbox) =
            new_loop(index, listeners, Arc::clone(shared)).map_err(StartError::Thread)?;
        let thread = thread::Builder::new()
            .name(format!("loop {index}"))
            .stack_size(LOOP_STACK)
            .spawn(move || event_loop.run())
            .map_err(StartError::Thread)?;
        loops.push(LoopHandle { mailbox, thread });
    }
    Ok(loops)
}

/// Event loop `index` over `listeners`, not yet running, and the mailbox that reaches it.
fn new_loop(
    index: usize,
    listeners: Vec<TcpListener>,
    shared: Arc<Shared>,
) -> std::io::Result<(EventLoop, Arc<Mailbox>)> {
    let poll = Poll::new()?;
    let waker = Waker::new(poll.registry(), event_loop::WAKER)?;
    let (mailbox, inbox) = Mailbox::new(waker);
    let event_loop = EventLoop::new(index, poll, listeners, Arc::clone(&mailbox), inbox, shared)?;
    Ok((event_loop, mailbox))
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
pub(crate) fn reload_config(shared: &Shared, settings: &HealthSettings, metrics: &Arc<Metrics>) {
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
pub(crate) fn reload_tls(tls: Option<&ReloadableConfig>) {
    let Some(tls) = tls else {
        log::info!("SIGHUP: no TLS configured, nothing to reload");
        return;
    };
    match tls.reload() {
        Ok(()) => log::info!("SIGHUP: reloaded {}", tls.files().cert.display()),
        Err(e) => log::error!("SIGHUP: keeping the current certificate: {e}"),
    }
}
