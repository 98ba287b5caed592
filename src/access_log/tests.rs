//! The access log end to end: the writer thread, files, rotation, shutdown, drops.

use std::fs;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant, UNIX_EPOCH};

use super::*;

use crate::test_util::tempdir::TempDir;

/// Long enough for a loaded CI machine; the tests finish as soon as the lines are there.
const PATIENCE: Duration = Duration::from_secs(10);

fn record(n: u32) -> AccessRecord {
    AccessRecord {
        start: UNIX_EPOCH + Duration::from_secs(971_186_136),
        client_ip: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)),
        request: Some(RequestLine {
            method: Method::GET,
            target: format!("/{n}"),
            version: Version::Http11,
        }),
        status: 200,
        body_bytes: 5,
        referer: None,
        user_agent: None,
        host: None,
        upstream: None,
        upstream_status: None,
        duration: Duration::from_millis(1),
    }
}

fn lines(path: &Path) -> Vec<String> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Polls until `path` holds `n` lines (they are written without any close or flush call).
fn wait_for_lines(path: &Path, n: usize) -> Vec<String> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let got = lines(path);
        if got.len() >= n || Instant::now() > deadline {
            assert_eq!(got.len(), n, "{got:#?}");
            return got;
        }
        thread::sleep(Duration::from_millis(5));
    }
}

fn open(path: &Path, format: LogFormat) -> (AccessLog, AccessLogWriter) {
    AccessLog::open(Destination::File(path.to_owned()), format).expect("open access log")
}

#[test]
fn flags() {
    assert_eq!(Destination::from_flag("-"), Destination::Stdout);
    assert_eq!(
        Destination::from_flag("/var/log/a.log"),
        Destination::File("/var/log/a.log".into())
    );
    assert_eq!(LogFormat::from_flag("combined"), Some(LogFormat::Combined));
    assert_eq!(LogFormat::from_flag("json"), Some(LogFormat::Json));
    assert_eq!(LogFormat::from_flag("JSON"), None);
    assert_eq!(LogFormat::default(), LogFormat::Combined);
}

#[test]
fn lines_appear_while_idle_and_close_drains() {
    let dir = TempDir::new("access-log");
    let path = dir.join("access.log");
    fs::write(&path, "an older line\n").unwrap();
    let (log, writer) = open(&path, LogFormat::Json);
    for n in 0..3 {
        log.send(record(n));
    }
    let got = wait_for_lines(&path, 4);
    assert_eq!(got[0], "an older line", "appends");
    assert!(got[1].starts_with("{\"time\":\"2000-10-10T13:55:36.000Z\""));
    assert!(got[3].contains("\"uri\":\"/2\""), "{}", got[3]);

    // Close with a handle still alive: everything already queued is written.
    for n in 3..20_003 {
        log.send(record(n));
    }
    assert!(writer.close(PATIENCE));
    let got = lines(&path);
    assert_eq!(got.len(), 20_004);
    assert!(
        got[20_003].contains("\"uri\":\"/20002\""),
        "{}",
        got[20_003]
    );
    assert_eq!(log.dropped(), 0);

    // The writer is gone: a late record is counted, not lost silently.
    log.send(record(0));
    assert_eq!(log.dropped(), 1);
}

#[test]
fn new_file_has_the_mode() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("access-log");
    let path = dir.join("access.log");
    let (_log, writer) = open(&path, LogFormat::Combined);
    let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    // The umask may take bits away, never add them.
    assert_eq!(mode & !FILE_MODE, 0, "{mode:o}");
    assert!(writer.close(PATIENCE));
}

#[test]
fn dropping_every_handle_stops_the_writer() {
    let dir = TempDir::new("access-log");
    let path = dir.join("access.log");
    let (log, writer) = open(&path, LogFormat::Combined);
    let second = log.clone();
    log.send(record(1));
    second.send(record(2));
    drop((log, second));
    assert_eq!(
        writer.done.recv_timeout(PATIENCE),
        Err(RecvTimeoutError::Disconnected)
    );
    assert_eq!(lines(&path).len(), 2);
    assert!(writer.close(Duration::ZERO));
}

#[test]
fn reopen_after_rename_starts_a_new_file() {
    let dir = TempDir::new("access-log");
    let path = dir.join("access.log");
    let rotated = dir.join("access.log.1");
    let (log, writer) = open(&path, LogFormat::Combined);
    log.send(record(1));
    log.send(record(2));
    wait_for_lines(&path, 2);

    fs::rename(&path, &rotated).unwrap();
    // Until the reopen the writer still has the renamed file open.
    log.send(record(3));
    wait_for_lines(&rotated, 3);
    writer.reopen();
    log.send(record(4));
    let new = wait_for_lines(&path, 1);
    assert!(new[0].contains("\"GET /4 HTTP/1.1\""), "{}", new[0]);
    let old = lines(&rotated);
    assert!(old[2].contains("\"GET /3 HTTP/1.1\""), "{}", old[2]);

    // No record is lost across a reopen, however many are queued around it.
    for n in 0..5000 {
        log.send(record(n));
        if n == 2500 {
            fs::rename(&path, dir.join("access.log.2")).unwrap();
            writer.reopen();
        }
    }
    assert!(writer.close(PATIENCE));
    let total: usize = ["access.log", "access.log.1", "access.log.2"]
        .iter()
        .map(|name| lines(&dir.join(name)).len())
        .sum();
    assert_eq!(total, 3 + 1 + 5000);
    assert_eq!(log.dropped(), 0);
}

#[test]
fn failed_reopen_keeps_the_old_file() {
    let dir = TempDir::new("access-log");
    let sub = dir.join("logs");
    fs::create_dir(&sub).unwrap();
    let path = sub.join("access.log");
    let (log, writer) = open(&path, LogFormat::Combined);
    log.send(record(1));
    wait_for_lines(&path, 1);

    let moved = dir.join("moved");
    fs::rename(&sub, &moved).unwrap();
    writer.reopen(); // the directory is gone: the open fails
    log.send(record(2));
    assert!(writer.close(PATIENCE));
    assert_eq!(lines(&moved.join("access.log")).len(), 2);
    assert!(!path.exists());
}

#[test]
fn full_queue_drops_and_counts() {
    let (log, records) = AccessLog::with_capacity(2);
    let counter = log.dropped_lines();
    for n in 0..5 {
        log.send(record(n));
    }
    assert_eq!(records.len(), 2);
    assert_eq!(log.dropped(), 3);
    assert_eq!(counter.get(), 3);
    drop(records);
    log.send(record(9));
    assert_eq!(counter.get(), 4, "a stopped writer counts as full");
}

#[test]
fn write_errors_count_every_line() {
    // Every write to /dev/full fails with ENOSPC.
    let full = Path::new("/dev/full");
    if !full.exists() {
        return;
    }
    let (log, writer) = open(full, LogFormat::Combined);
    let counter = writer.dropped_lines();
    for n in 0..100 {
        log.send(record(n));
    }
    assert!(writer.close(PATIENCE));
    assert_eq!(log.dropped(), 100);
    assert_eq!(counter.get(), 100);
}

#[test]
fn open_errors_name_the_file() {
    let dir = TempDir::new("access-log");
    let path = dir.join("missing").join("access.log");
    let err = AccessLog::open(Destination::File(path.clone()), LogFormat::Combined)
        .expect_err("no such directory");
    let message = err.to_string();
    assert!(
        message.starts_with(&format!("access log {}: ", path.display())),
        "{message}"
    );
}

#[test]
fn stdout_cannot_be_reopened_but_works() {
    let (log, writer) = AccessLog::open(Destination::Stdout, LogFormat::Json).unwrap();
    writer.reopen();
    drop(log);
    assert!(writer.close(PATIENCE));
}
