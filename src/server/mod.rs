//! The client side: listening, the worker pool, and the process lifecycle.
//!
//! [`run`] binds every socket first (so a port in use is a start-up error, not a log line),
//! then starts the threads: the poller (accepts and parks connections), `-workers` workers,
//! one health thread per backend, the control socket and the metrics listener. The calling
//! thread waits for signals: SIGHUP reloads the TLS certificate; SIGTERM/SIGINT drain (stop
//! accepting, let in-flight requests finish for up to `-shutdown-timeout`, remove the control
//! socket) and return.

mod body;
mod caching;
mod conn;
mod nofile;
mod poller;
mod relay;
mod stream;
mod worker;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::cache::Cache;
use crate::config::Config;
use crate::control::ControlSocket;
use crate::metrics::{self, Metrics};
use crate::tls::{self, ReloadableConfig, TlsError};
use crate::upstream::health::{self, HealthSettings};
use crate::upstream::policy::RoundRobin;
use crate::upstream::{AgentSettings, BackendSet};

/// Stack size of worker threads: they hold no large arrays (buffers are on the heap).
const WORKER_STACK: usize = 256 * 1024;

/// What every thread shares.
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) set: Arc<BackendSet>,
    pub(crate) metrics: Arc<Metrics>,
    /// `X-Forwarded-Proto` of this listener.
    pub(crate) proto: &'static str,
    /// The TLS configuration new connections use, when the listener speaks TLS.
    pub(crate) tls: Option<Arc<ReloadableConfig>>,
    /// The GET cache (`-cache`).
    pub(crate) cache: Option<Arc<Cache>>,
    shutting_down: AtomicBool,
}

impl Shared {
    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }

    /// Socket options every client connection gets: no Nagle delay (responses are written
    /// whole), the write timeout as a kernel timeout, and reads that give up after
    /// [`worker::LINGER`] (longer waits, such as the body timeout, are loops over that).
    fn prepare_client_socket(&self, stream: &TcpStream) -> std::io::Result<()> {
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(worker::LINGER))?;
        stream.set_write_timeout(Some(self.config.write_timeout))?;
        Ok(())
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
        }
    }
}

impl std::error::Error for StartError {}

/// Runs the load balancer until SIGTERM or SIGINT; returns after the drain.
pub fn run(config: Config) -> Result<(), StartError> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

    // Signals first: a SIGTERM during start-up must not kill the process half-way.
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])
        .map_err(StartError::Signals)?;

    // Certificates before sockets: a bad file is a start-up error naming the file.
    let tls = match &config.tls {
        Some(files) => Some(Arc::new(
            ReloadableConfig::load(files.clone()).map_err(StartError::Tls)?,
        )),
        None => None,
    };
    let backend_tls =
        tls::backend_tls_config(config.backend_ca.as_deref()).map_err(StartError::Tls)?;

    let open_files = nofile::raise_open_files_limit();
    let listen_addr = SocketAddr::new(config.bind, config.port);
    let listener =
        TcpListener::bind(listen_addr).map_err(|e| StartError::Listen(listen_addr, e))?;
    let metrics_addr = SocketAddr::new(config.bind, config.metrics_port);
    let metrics_listener =
        TcpListener::bind(metrics_addr).map_err(|e| StartError::Metrics(metrics_addr, e))?;
    let control = ControlSocket::bind(&config.socket).map_err(StartError::Control)?;

    let metrics = Arc::new(Metrics::new());
    let cache = config.cache.map(|c| Arc::new(Cache::new(c)));
    let health_settings = HealthSettings {
        interval: config.health_interval,
        timeout: config.health_timeout,
        tls: backend_tls.clone(),
    };
    let settings = AgentSettings {
        connect_timeout: config.connect_timeout,
        response_timeout: config.response_timeout,
        tls: backend_tls,
    };
    let set = Arc::new(BackendSet::new(
        Box::new(RoundRobin::default()),
        config.max_conns_per_backend,
        settings,
    ));
    for b in set.replace(&config.backends).added {
        health::spawn(b, health_settings.clone(), Arc::clone(&metrics));
    }

    let shared = Arc::new(Shared {
        config,
        set: Arc::clone(&set),
        metrics: Arc::clone(&metrics),
        proto: if tls.is_some() { "https" } else { "http" },
        tls,
        cache: cache.clone(),
        shutting_down: AtomicBool::new(false),
    });

    let local = listener.local_addr().unwrap_or(listen_addr);
    let metrics_local = metrics_listener.local_addr().unwrap_or(metrics_addr);
    let (ready_tx, ready_rx) = crossbeam_channel::unbounded();
    let (poller, parker) =
        poller::Poller::new(listener, ready_tx, Arc::clone(&shared)).map_err(StartError::Thread)?;

    let mut workers = Vec::with_capacity(shared.config.workers);
    for i in 0..shared.config.workers {
        let w = worker::Worker::new(Arc::clone(&shared), ready_rx.clone(), parker.clone());
        let handle = thread::Builder::new()
            .name(format!("worker {i}"))
            .stack_size(WORKER_STACK)
            .spawn(move || w.run())
            .map_err(StartError::Thread)?;
        workers.push(handle);
    }
    drop((ready_rx, parker));
    let poller_thread = thread::Builder::new()
        .name("poller".into())
        .spawn(move || poller.run())
        .map_err(StartError::Thread)?;
    {
        let (metrics, set) = (Arc::clone(&metrics), Arc::clone(&set));
        thread::Builder::new()
            .name("metrics".into())
            .spawn(move || metrics::serve(metrics_listener, metrics, set, cache))
            .map_err(StartError::Thread)?;
    }
    let socket_path = control.path().to_owned();
    {
        let (set, metrics) = (Arc::clone(&set), Arc::clone(&metrics));
        thread::Builder::new()
            .name("control".into())
            .spawn(move || control.serve(&set, health_settings, &metrics))
            .map_err(StartError::Thread)?;
    }

    match &shared.tls {
        Some(tls) => log::info!("listening on {local} (TLS, {})", tls.files().cert.display()),
        None => log::info!("listening on {local}"),
    }
    log::info!("metrics on {metrics_local}");
    log::info!(
        "{} backends, -n {} handles each, {} workers, control socket {}",
        shared.config.backends.len(),
        shared.config.max_conns_per_backend,
        shared.config.workers,
        socket_path.display()
    );
    match open_files {
        Some(n) => log::info!(
            "open files limit {n}, -max-conns {}",
            shared.config.max_client_conns
        ),
        None => log::info!("open files limit: unlimited"),
    }

    let mut signal = SIGTERM;
    for received in signals.forever() {
        if received == SIGHUP {
            reload_tls(shared.tls.as_deref());
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
    let _ = poller_thread.join();
    // Workers finish their current exchange and exit when the ready queue is empty. A second
    // SIGTERM/SIGINT ends the wait at once (an operator pressing Ctrl-C twice).
    while workers.iter().any(|w| !w.is_finished()) && Instant::now() < deadline {
        if signals.pending().any(|s| s != SIGHUP) {
            log::warn!("second signal: exiting without waiting for in-flight requests");
            break;
        }
        thread::sleep(Duration::from_millis(10));
    }
    let unfinished = workers.iter().filter(|w| !w.is_finished()).count();
    if unfinished > 0 && Instant::now() >= deadline {
        log::warn!("{unfinished} workers still busy after the shutdown timeout; exiting anyway");
    }
    if let Err(e) = std::fs::remove_file(&socket_path) {
        log::warn!("removing {}: {e}", socket_path.display());
    }
    log::info!("stopped");
    Ok(())
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
