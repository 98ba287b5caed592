//! Upgrading the binary in place (SIGUSR2): the new process takes over the listening sockets
//! and the old one drains, with no failed request; a new process that cannot start leaves
//! the old one serving.
//!
//! The new process is the same test binary started again (the running binary's path), with
//! the same arguments; its output goes to the same pipes, so the harness sees both. It is
//! not the harness's child: a guard kills it by the pid it wrote to `-pidfile`.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use support::{control, get, wait_until, Backend, Conn, Goaround};

const READY: Duration = Duration::from_secs(10);
const SIGUSR2: i32 = 12;

/// The pid in `path`, once the file holds one.
fn pid_in(path: &Path) -> Option<u32> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Kills the process whose pid is in the pidfile when the test ends, pass or fail.
struct KillFromPidfile(PathBuf, u32);

impl Drop for KillFromPidfile {
    fn drop(&mut self) {
        if let Some(pid) = pid_in(&self.0).filter(|&p| p != self.1) {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        }
    }
}

/// Requests on kept-alive connections until stopped; a connection the old process closes
/// is replaced and the request sent again (what an HTTP client does with an idempotent
/// request on a reused connection). Counts answers that are not 200, and reconnects.
struct Load {
    stop: Arc<AtomicBool>,
    bad: Arc<AtomicU64>,
    ok: Arc<AtomicU64>,
    reconnects: Arc<AtomicU64>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl Load {
    fn start(addr: std::net::SocketAddr, clients: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let (bad, ok, reconnects) = (
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicU64::new(0)),
        );
        let threads = (0..clients)
            .map(|_| {
                let (stop, bad, ok, reconnects) = (
                    Arc::clone(&stop),
                    Arc::clone(&bad),
                    Arc::clone(&ok),
                    Arc::clone(&reconnects),
                );
                thread::spawn(move || {
                    let mut conn = Conn::open(addr);
                    while !stop.load(Ordering::Acquire) {
                        let answer = conn
                            .try_send(support::get_request("/").as_bytes())
                            .and_then(|()| conn.try_read_response());
                        match answer {
                            Ok(r) if r.status == 200 => {
                                ok.fetch_add(1, Ordering::Relaxed);
                                if r.header("connection") == Some("close") {
                                    conn = Conn::open(addr);
                                    reconnects.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                            Ok(_) => {
                                bad.fetch_add(1, Ordering::Relaxed);
                            }
                            // Closed between two requests: a new connection, same request.
                            Err(_) => {
                                conn = Conn::open(addr);
                                reconnects.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            bad,
            ok,
            reconnects,
            threads,
        }
    }

    fn finish(self) -> (u64, u64, u64) {
        self.stop.store(true, Ordering::Release);
        for t in self.threads {
            t.join().expect("load thread");
        }
        (
            self.ok.load(Ordering::Relaxed),
            self.bad.load(Ordering::Relaxed),
            self.reconnects.load(Ordering::Relaxed),
        )
    }
}

#[test]
fn sigusr2_hands_over_to_a_new_process_without_a_failed_request() {
    let b1 = Backend::start("b1");
    let dir = support::tempdir::TempDir::new("upgrade");
    let pidfile = dir.join("goaround.pid");
    let pidfile_arg = pidfile.display().to_string();
    let g = support::proxy(
        &[&b1],
        &["-pidfile", &pidfile_arg, "-shutdown-timeout", "3s"],
    );
    let old = g.pid();
    let _guard = KillFromPidfile(pidfile.clone(), old);
    assert!(wait_until(READY, || pid_in(&pidfile) == Some(old)));

    let load = Load::start(g.addr(), 4);
    assert!(wait_until(READY, || b1.requests() > 200));
    g.signal(SIGUSR2);
    let new = {
        let mut new = None;
        wait_until(READY, || {
            new = pid_in(&pidfile).filter(|&p| p != old);
            new.is_some()
        });
        new.unwrap_or_else(|| panic!("no new pid in the pidfile\n{}", g.stderr()))
    };
    let status = g
        .wait_exit(READY)
        .unwrap_or_else(|| panic!("the old process did not exit\n{}", g.stderr()));
    assert!(status.success(), "old process: {status}");
    // Load goes on against the new process alone for a moment.
    let served = b1.requests();
    assert!(wait_until(READY, || b1.requests() > served + 200));
    let (ok, bad, reconnects) = load.finish();
    eprintln!("upgrade under load: {ok} answered, {bad} not 200, {reconnects} reconnects");
    assert_eq!(bad, 0, "{}", g.stderr());

    // The new process has the port, the control socket and the metrics port.
    assert_eq!(get(g.addr(), "/").status, 200);
    assert!(control(g.socket_path(), "list").contains("ok: 1 backends"));
    assert!(g.metrics().contains("goaround_requests_total"));
    assert!(
        g.socket_path().exists(),
        "the socket file belongs to the new process"
    );
    assert_eq!(pid_in(&pidfile), Some(new));
    assert!(g
        .stderr()
        .contains(&format!("upgrade: took over from process {old}")));
}

#[test]
fn a_new_process_that_cannot_start_leaves_the_old_one_serving() {
    let b1 = Backend::start("b1");
    let dir = support::tempdir::TempDir::new("upgrade");
    let pidfile = dir.join("goaround.pid");
    let config = dir.write(
        "goaround.toml",
        format!(
            "[upstreams.api]\n  [[upstreams.api.servers]]\n    path = \"{}\"\n\
             [server]\n  [[server.locations]]\n    path = \"api/(.*)\"\n    http_pass = \"api\"\n",
            b1.addr()
        )
        .as_bytes(),
    );
    let (pidfile_arg, config_arg) = (pidfile.display().to_string(), config.display().to_string());
    let g = Goaround::builder()
        .args(&["-pidfile", &pidfile_arg, "-config", &config_arg])
        .start();
    let old = g.pid();
    let _guard = KillFromPidfile(pidfile.clone(), old);
    assert!(wait_until(READY, || pid_in(&pidfile) == Some(old)));
    // The new process will read a file it cannot use, and exit 2.
    fs::write(&config, "[upstreams.api\n").unwrap();
    g.signal(SIGUSR2);
    assert!(
        g.wait_for_log("still serving", READY),
        "no failed upgrade logged\n{}",
        g.stderr()
    );
    assert!(g.stderr().contains("exited with"), "{}", g.stderr());
    assert_eq!(pid_in(&pidfile), Some(old));
    assert!(
        g.wait_exit(Duration::from_millis(200)).is_none(),
        "the old one left"
    );
    // Serving as before, with the configuration it started with (the file is read again
    // only on SIGHUP).
    let r = get(g.addr(), "/api/");
    assert_eq!(r.status, 200, "{}", g.stderr());
    assert_eq!(r.header("x-backend"), Some("b1"));
}
