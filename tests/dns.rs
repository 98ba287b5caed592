//! Backends named by host name: the name is resolved again at every health check, every
//! address it has is used in turn for new connections, and a changed address is picked up.
//!
//! The names come from a hosts file of the test's own, bind-mounted over `/etc/hosts` for
//! the goaround process alone (`unshare -m`, root only): nothing outside the test sees it.
//! Where that is not possible the tests say SKIPPED and return.

mod support;

use std::fs;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::Duration;

use support::tempdir::TempDir;
use support::{get, wait_until, Backend, Goaround};

const READY: Duration = Duration::from_secs(10);

/// The host name the tests resolve.
const NAME: &str = "backend.goaround.test";

/// Whether this process may make a private mount namespace (root, and a kernel that lets
/// it); prints the reason it cannot.
fn private_hosts_possible() -> bool {
    let probe = Command::new("unshare")
        .args(["-m", "sh", "-c", "mount --bind /etc/hosts /etc/hosts"])
        .output();
    match probe {
        Ok(out) if out.status.success() => true,
        Ok(out) => {
            eprintln!(
                "SKIPPED: cannot give goaround a hosts file of its own (unshare -m): {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            false
        }
        Err(e) => {
            eprintln!("SKIPPED: cannot run unshare: {e}");
            false
        }
    }
}

/// goaround with `hosts` as its `/etc/hosts`.
fn goaround_with_hosts(hosts: &Path, args: &[&str]) -> Goaround {
    let script = format!(
        "mount --bind {} /etc/hosts && exec \"$0\" \"$@\"",
        hosts.display()
    );
    Goaround::builder()
        .launcher(&["unshare", "-m", "sh", "-c", &script])
        .args(args)
        .start()
}

/// Writes the hosts file in place (a rename would leave the mount on the old file).
fn write_hosts(path: &Path, addresses: &[IpAddr]) {
    let lines: String = addresses.iter().map(|a| format!("{a} {NAME}\n")).collect();
    fs::write(path, lines).expect("write the hosts file");
}

/// Two fixture backends on one port, at 127.0.0.1 and 127.0.0.2 (both loopback).
fn two_backends_on_one_port() -> (Backend, Backend, u16) {
    for _ in 0..20 {
        let a = Backend::start("a");
        let port = a.addr().port();
        let second = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)), port);
        if let Ok(b) = Backend::bind("b", second) {
            return (a, b, port);
        }
    }
    panic!("no port free on both 127.0.0.1 and 127.0.0.2");
}

#[test]
fn a_name_with_two_addresses_spreads_over_both() {
    if !private_hosts_possible() {
        return;
    }
    let dir = TempDir::new("dns");
    let hosts = dir.join("hosts");
    let (a, b, port) = two_backends_on_one_port();
    write_hosts(&hosts, &[a.addr().ip(), b.addr().ip()]);
    let url = format!("http://{NAME}:{port}");
    let g = goaround_with_hosts(
        &hosts,
        &["-b", &url, "-n", "8", "-health-interval", "200ms"],
    );
    assert!(g.wait_ready_backends(1, READY), "{}", g.stderr());
    // Concurrent slow requests need several connections; each new one takes the next address.
    let addr = g.addr();
    let clients: Vec<_> = (0..8)
        .map(|_| thread::spawn(move || get(addr, "/slow/300").status))
        .collect();
    for c in clients {
        assert_eq!(c.join().unwrap(), 200);
    }
    assert!(a.requests() > 0, "127.0.0.1 got none");
    assert!(b.requests() > 0, "127.0.0.2 got none");
}

#[test]
fn a_changed_address_is_picked_up() {
    if !private_hosts_possible() {
        return;
    }
    let dir = TempDir::new("dns");
    let hosts = dir.join("hosts");
    let (a, b, port) = two_backends_on_one_port();
    write_hosts(&hosts, &[a.addr().ip()]);
    let url = format!("http://{NAME}:{port}");
    let g = goaround_with_hosts(&hosts, &["-b", &url, "-health-interval", "200ms"]);
    assert!(g.wait_ready_backends(1, READY), "{}", g.stderr());
    assert_eq!(get(g.addr(), "/").header("x-backend"), Some("a"));

    // The name moves to 127.0.0.2 and the old address goes away (with its kept-alive
    // connections): the next check resolves the new address and requests follow.
    write_hosts(&hosts, &[b.addr().ip()]);
    a.stop();
    let moved = wait_until(READY, || {
        support::client::try_get(g.addr(), "/")
            .is_ok_and(|r| r.status == 200 && r.header("x-backend") == Some("b"))
    });
    assert!(
        moved,
        "requests never reached the new address\n{}",
        g.stderr()
    );
    assert!(b.requests() >= 1);
}
