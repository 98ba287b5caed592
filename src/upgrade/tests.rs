//! Both sides of the upgrade together: in-process (a thread plays the new process), through
//! `/bin/sh` for the spawn path, and once with a real child process (this test binary).

use std::ffi::OsString;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::os::unix::net::UnixListener;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rustix::process::{getpid, Pid};

use super::inherit::receive;
use super::successor::{hand_over, start_command, Deadline, Peer, Rendezvous};
use super::*;
use crate::test_util::tempdir::TempDir;

#[test]
fn roles_round_trip_through_their_wire_words() {
    for role in [SocketRole::Client, SocketRole::Metrics, SocketRole::Control] {
        assert_eq!(SocketRole::from_wire(role.as_str()), Some(role));
    }
    assert_eq!(SocketRole::from_wire("Client"), None);
    assert_eq!(SocketRole::from_wire(""), None);
}

#[test]
fn errors_say_what_happened_and_when() {
    let exited = UpgradeError::Exited(ExitStatus::from_raw(3 << 8), Stage::Connecting);
    assert_eq!(
        exited.to_string(),
        "upgrade: the new process exited with status 3 before it connected"
    );
    let killed = UpgradeError::Exited(ExitStatus::from_raw(9), Stage::Starting);
    assert_eq!(
        killed.to_string(),
        "upgrade: the new process was killed by signal 9 before it was ready"
    );
    let late = UpgradeError::Timeout(Duration::from_secs(5), Stage::Starting);
    assert_eq!(
        late.to_string(),
        "upgrade: the new process was not ready within 5s"
    );
}

#[test]
fn a_replaced_binary_is_started_from_the_path_it_had() {
    let dir = TempDir::new("upgrade-exe");
    let exe = dir.write("goaround", b"new binary");
    let deleted = dir.join("goaround (deleted)");
    assert_eq!(without_deleted_suffix(&deleted), exe);
    assert_eq!(without_deleted_suffix(&exe), exe);
    // A file really named so is taken as it is.
    let odd = dir.write("odd (deleted)", b"");
    assert_eq!(without_deleted_suffix(&odd), odd);
}

#[test]
fn current_program_is_this_test_binary() {
    let exe = current_program().unwrap();
    assert!(exe.is_file(), "{}", exe.display());
}

/// Long enough for any of these exchanges on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(10);

/// The "new process" of the in-process tests: a thread of ours, so its pid is ours.
struct FakeChild {
    pid: Pid,
    status: Arc<Mutex<Option<ExitStatus>>>,
}

impl FakeChild {
    fn us() -> FakeChild {
        FakeChild {
            pid: getpid(),
            status: Arc::default(),
        }
    }

    fn exited_with(code: i32) -> FakeChild {
        let child = FakeChild::us();
        *child.status.lock().unwrap() = Some(ExitStatus::from_raw(code << 8));
        child
    }
}

impl Peer for FakeChild {
    fn pid(&self) -> Pid {
        self.pid
    }

    fn exited(&mut self) -> Option<ExitStatus> {
        *self.status.lock().unwrap()
    }
}

fn listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").unwrap()
}

fn addr(l: &TcpListener) -> SocketAddr {
    l.local_addr().unwrap()
}

/// Runs `new_side` on a thread, as the new process, against `rendezvous`.
fn new_process<T: Send + 'static>(
    rendezvous: &Rendezvous,
    new_side: impl FnOnce(Result<Inherited, UpgradeError>) -> T + Send + 'static,
) -> JoinHandle<T> {
    let path = rendezvous.path().to_owned();
    thread::Builder::new()
        .name("new process".into())
        .spawn(move || new_side(receive(&path, getpid())))
        .unwrap()
}

#[test]
fn a_listener_handed_over_is_the_same_socket() {
    let old = listener();
    let address = addr(&old);
    let rendezvous = Rendezvous::create().unwrap();
    let new = new_process(&rendezvous, |inherited| {
        let mut inherited = inherited.unwrap();
        let listeners = inherited.take_client_listeners();
        inherited.ready().unwrap();
        listeners
    });
    let sockets = [(SocketRole::Client, old.as_fd())];
    let deadline = Deadline::after(PATIENCE);
    hand_over(
        &rendezvous.listener,
        &mut FakeChild::us(),
        &sockets,
        deadline,
    )
    .unwrap();
    let received = new.join().unwrap();
    // The old process stops accepting: its descriptor closes, the socket lives on.
    drop(old);

    let mut client = TcpStream::connect(address).unwrap();
    let (mut accepted, peer) = received[0].accept().unwrap();
    assert_eq!(peer, client.local_addr().unwrap());
    accepted.write_all(b"served by the new side\n").unwrap();
    let mut line = String::new();
    BufReader::new(&mut client).read_line(&mut line).unwrap();
    assert_eq!(line, "served by the new side\n");
}

#[test]
fn roles_order_and_counts_survive() {
    let dir = TempDir::new("upgrade-roles");
    let clients = [listener(), listener(), listener()];
    let metrics = listener();
    let control = UnixListener::bind(dir.join("control.sock")).unwrap();
    let mut sockets: Vec<(SocketRole, _)> = clients
        .iter()
        .map(|l| (SocketRole::Client, l.as_fd()))
        .collect();
    sockets.push((SocketRole::Metrics, metrics.as_fd()));
    sockets.push((SocketRole::Control, control.as_fd()));

    let rendezvous = Rendezvous::create().unwrap();
    let new = new_process(&rendezvous, |inherited| {
        let mut inherited = inherited.unwrap();
        assert_eq!(inherited.count(SocketRole::Client), 3);
        assert_eq!(inherited.count(SocketRole::Metrics), 1);
        assert_eq!(inherited.count(SocketRole::Control), 1);
        let got = (
            inherited.take_client_listeners(),
            inherited.take_metrics_listener(),
            inherited.take_control_listener(),
        );
        assert_eq!(inherited.count(SocketRole::Client), 0);
        inherited.ready().unwrap();
        got
    });
    let deadline = Deadline::after(PATIENCE);
    hand_over(
        &rendezvous.listener,
        &mut FakeChild::us(),
        &sockets,
        deadline,
    )
    .unwrap();
    let (got_clients, got_metrics, got_control) = new.join().unwrap();

    let addrs = |ls: &[TcpListener]| ls.iter().map(addr).collect::<Vec<_>>();
    assert_eq!(addrs(&got_clients), addrs(&clients));
    assert_eq!(addr(&got_metrics.unwrap()), addr(&metrics));
    let control_path = got_control.unwrap().local_addr().unwrap();
    assert_eq!(
        control_path.as_pathname(),
        Some(dir.join("control.sock").as_path())
    );
}

#[test]
fn blocking_mode_is_shared_by_both_processes() {
    // Documents a trap for the server: O_NONBLOCK belongs to the socket both processes
    // hold, so the new process switching an inherited listener changes it for the old too.
    let old = listener();
    let rendezvous = Rendezvous::create().unwrap();
    let new = new_process(&rendezvous, |inherited| {
        let mut inherited = inherited.unwrap();
        let listeners = inherited.take_client_listeners();
        inherited.ready().unwrap();
        listeners
    });
    let sockets = [(SocketRole::Client, old.as_fd())];
    let deadline = Deadline::after(PATIENCE);
    hand_over(
        &rendezvous.listener,
        &mut FakeChild::us(),
        &sockets,
        deadline,
    )
    .unwrap();
    let received = new.join().unwrap();
    received[0].set_nonblocking(true).unwrap();
    let err = old.accept().unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
}

#[test]
fn a_child_that_never_connects_times_out() {
    let rendezvous = Rendezvous::create().unwrap();
    let started = Instant::now();
    let deadline = Deadline::after(Duration::from_millis(200));
    let err = hand_over(&rendezvous.listener, &mut FakeChild::us(), &[], deadline).unwrap_err();
    assert!(
        matches!(err, UpgradeError::Timeout(_, Stage::Connecting)),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_child_that_exits_before_connecting_is_reported_at_once() {
    let rendezvous = Rendezvous::create().unwrap();
    let started = Instant::now();
    let mut child = FakeChild::exited_with(3);
    let err = hand_over(
        &rendezvous.listener,
        &mut child,
        &[],
        Deadline::after(PATIENCE),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "upgrade: the new process exited with status 3 before it connected"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn a_child_that_closes_without_ready_is_a_protocol_error() {
    let rendezvous = Rendezvous::create().unwrap();
    let new = new_process(&rendezvous, |inherited| drop(inherited.unwrap()));
    let deadline = Deadline::after(PATIENCE);
    let err = hand_over(&rendezvous.listener, &mut FakeChild::us(), &[], deadline).unwrap_err();
    new.join().unwrap();
    assert_eq!(
        err.to_string(),
        "upgrade: protocol error: the new process closed the connection before it was ready"
    );
}

#[test]
fn a_child_that_dies_after_taking_the_sockets_is_reported_with_its_status() {
    let rendezvous = Rendezvous::create().unwrap();
    let mut child = FakeChild::us();
    let status = Arc::clone(&child.status);
    let new = new_process(&rendezvous, move |inherited| {
        drop(inherited.unwrap());
        *status.lock().unwrap() = Some(ExitStatus::from_raw(9));
    });
    let err = hand_over(
        &rendezvous.listener,
        &mut child,
        &[],
        Deadline::after(PATIENCE),
    )
    .unwrap_err();
    new.join().unwrap();
    assert!(
        matches!(err, UpgradeError::Exited(s, Stage::Starting) if s.signal() == Some(9)),
        "{err}"
    );
}

#[test]
fn a_child_that_never_says_ready_times_out() {
    let rendezvous = Rendezvous::create().unwrap();
    let (release, released) = mpsc::channel::<()>();
    let new = new_process(&rendezvous, move |inherited| {
        let inherited = inherited.unwrap();
        let _ = released.recv();
        drop(inherited);
    });
    let started = Instant::now();
    let deadline = Deadline::after(Duration::from_millis(300));
    let err = hand_over(&rendezvous.listener, &mut FakeChild::us(), &[], deadline).unwrap_err();
    release.send(()).unwrap();
    new.join().unwrap();
    assert!(
        matches!(err, UpgradeError::Timeout(_, Stage::Starting)),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "upgrade: the new process was not ready within 300ms"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn a_child_that_gives_up_says_why() {
    let rendezvous = Rendezvous::create().unwrap();
    let new = new_process(&rendezvous, |inherited| {
        inherited
            .unwrap()
            .abort("-cacert: cannot read /etc/cert.pem");
    });
    let deadline = Deadline::after(PATIENCE);
    let err = hand_over(&rendezvous.listener, &mut FakeChild::us(), &[], deadline).unwrap_err();
    new.join().unwrap();
    assert_eq!(
        err.to_string(),
        "upgrade: the new process gave up: -cacert: cannot read /etc/cert.pem"
    );
}

#[test]
fn a_socket_of_the_wrong_kind_is_refused_by_the_new_side() {
    let dir = TempDir::new("upgrade-kind");
    let unix = UnixListener::bind(dir.join("x.sock")).unwrap();
    let connected = TcpStream::connect(addr(&listener())).unwrap();
    for (role, fd) in [
        (SocketRole::Client, unix.as_fd()),
        (SocketRole::Control, connected.as_fd()),
    ] {
        let rendezvous = Rendezvous::create().unwrap();
        let new = new_process(&rendezvous, |inherited| inherited.map(drop));
        let deadline = Deadline::after(PATIENCE);
        let err = hand_over(
            &rendezvous.listener,
            &mut FakeChild::us(),
            &[(role, fd)],
            deadline,
        )
        .unwrap_err();
        let new_err = new.join().unwrap().unwrap_err();
        assert!(matches!(new_err, UpgradeError::Protocol(_)), "{new_err}");
        // The old side hears why.
        assert_eq!(
            err.to_string(),
            format!("upgrade: the new process gave up: {new_err}")
        );
    }
}

#[test]
fn a_stranger_is_not_given_the_sockets() {
    let old = listener();
    let rendezvous = Rendezvous::create().unwrap();
    // We connect (as "the new process") but the old side waits for pid 1.
    let new = new_process(&rendezvous, |inherited| inherited.map(drop));
    let mut child = FakeChild {
        pid: Pid::from_raw(1).unwrap(),
        status: Arc::default(),
    };
    let sockets = [(SocketRole::Client, old.as_fd())];
    let deadline = Deadline::after(Duration::from_millis(500));
    let err = hand_over(&rendezvous.listener, &mut child, &sockets, deadline).unwrap_err();
    assert!(
        matches!(err, UpgradeError::Timeout(_, Stage::Connecting)),
        "{err}"
    );
    let new_err = new.join().unwrap().unwrap_err();
    assert!(
        new_err
            .to_string()
            .contains("closed the connection before sending"),
        "{new_err}"
    );
}

#[test]
fn the_new_side_takes_sockets_only_from_the_expected_process() {
    let rendezvous = Rendezvous::create().unwrap();
    let err = receive(rendezvous.path(), Pid::from_raw(1).unwrap()).unwrap_err();
    assert!(
        err.to_string().contains(&format!(
            "is held by pid {}, not by pid 1",
            std::process::id()
        )),
        "{err}"
    );
}

#[test]
fn rendezvous_is_private_unique_and_removed() {
    use std::os::unix::fs::PermissionsExt;
    let (a, b) = (Rendezvous::create().unwrap(), Rendezvous::create().unwrap());
    assert_ne!(a.path(), b.path());
    let dir = a.path().parent().unwrap().to_owned();
    let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
    drop(a);
    assert!(!dir.exists());
}

fn sh(script: &str) -> Command {
    let mut command = Command::new("/bin/sh");
    command.args(["-c", script]);
    command
}

#[test]
fn spawn_path_reports_the_exit_status() {
    let started = Instant::now();
    let err = start_command(sh("exit 3"), &[], PATIENCE).unwrap_err();
    assert_eq!(
        err.to_string(),
        "upgrade: the new process exited with status 3 before it connected"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[test]
fn spawn_failure_names_the_binary() {
    let exe = Path::new("/nonexistent/goaround");
    let err = start_successor(exe, &[], &[], PATIENCE).unwrap_err();
    assert!(matches!(err, UpgradeError::Spawn(..)), "{err}");
    assert!(err
        .to_string()
        .starts_with("upgrade: cannot start /nonexistent/goaround: "));
}

#[test]
fn a_hung_child_is_killed_reaped_and_its_rendezvous_removed() {
    let dir = TempDir::new("upgrade-hung");
    let out = dir.join("child");
    let script = format!(
        "echo $$ > '{0}'; echo \"${ENV_VAR}\" >> '{0}'; exec sleep 30",
        out.display()
    );
    let started = Instant::now();
    let err = start_command(sh(&script), &[], Duration::from_millis(500)).unwrap_err();
    assert!(
        matches!(err, UpgradeError::Timeout(_, Stage::Connecting)),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));

    let written = std::fs::read_to_string(&out).unwrap();
    let mut lines = written.lines();
    let pid = lines.next().unwrap();
    let variable = lines.next().unwrap();
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "child {pid} left behind"
    );
    // The child was told our pid and a path, which is gone now.
    let (sender, path) = inherit::parse_variable(variable.as_ref()).unwrap();
    assert_eq!(sender, getpid());
    assert!(!path.parent().unwrap().exists(), "{}", path.display());
}

/// The new process of [`a_real_process_takes_over_the_listener`]: this test binary started
/// again with only this test selected. Run on its own, it finds no variable and passes.
#[test]
#[ignore = "run as a child process by a_real_process_takes_over_the_listener"]
fn successor_process() {
    let Some(mut inherited) = inherit().unwrap() else {
        return;
    };
    let listeners = inherited.take_client_listeners();
    inherited.ready().unwrap();
    let (mut conn, _) = listeners[0].accept().unwrap();
    writeln!(conn, "served by {}", std::process::id()).unwrap();
}

#[test]
fn a_real_process_takes_over_the_listener() {
    let old = listener();
    let address = addr(&old);
    let mut command = Command::new(std::env::current_exe().unwrap());
    let args = ["upgrade::tests::successor_process", "--exact", "--ignored"];
    command.args(args.map(OsString::from));
    command.stdout(Stdio::null());
    let sockets = [(SocketRole::Client, old.as_fd())];
    let mut successor = start_command(command, &sockets, PATIENCE).unwrap();
    drop(old);

    let mut answer = String::new();
    TcpStream::connect(address)
        .unwrap()
        .read_to_string(&mut answer)
        .unwrap();
    assert_eq!(answer, format!("served by {}\n", successor.pid()));
    let until = Instant::now() + PATIENCE;
    let status = loop {
        if let Some(status) = successor.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < until, "the new process did not exit");
        thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
}
