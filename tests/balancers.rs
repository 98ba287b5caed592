//! The balancers of `-config` upstreams through the real binary, seen from the client by
//! which backend answered (`X-Backend`): smooth weighted round-robin's exact sequence,
//! weighted random's proportions, least_conn's preference for the faster server, hash
//! stickiness (header, URI, client address) and how few keys move when a server goes; and
//! the control socket's `upstream NAME ...` and `list` with named upstreams.
//!
//! Requests go one after the other over one keep-alive connection where an order matters;
//! config servers without `health_check` are in rotation from the start, so no request is
//! spent before the sequence starts.

mod support;

use std::collections::HashMap;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use socket2::{Domain, Socket, Type};
use support::scripted::{answer_each, ScriptedServer};
use support::tempdir::TempDir;
use support::{control, get_request, Backend, Conn, Goaround, Response};

/// Long enough for anything that happens at start-up or after a control-socket change.
const READY: Duration = Duration::from_secs(10);

/// A config file with one upstream called `pool` that gets every request as sent, whose
/// servers are `(address, weight)`, and `settings` (TOML lines) for the upstream.
fn pool_config(dir: &TempDir, settings: &str, servers: &[(SocketAddr, u32)]) -> PathBuf {
    let mut text = format!("[upstreams.pool]\n{settings}\n");
    for (addr, weight) in servers {
        text.push_str(&format!(
            "[[upstreams.pool.servers]]\npath = \"{addr}\"\nweight = {weight}\n"
        ));
    }
    text.push_str("[[server.locations]]\npath = \"\"\nhttp_pass = \"pool\"\npass_path = true\n");
    dir.write("goaround.toml", text.as_bytes())
}

fn start(config: &Path, extra: &[&str], up: usize) -> Goaround {
    let g = Goaround::builder()
        .arg("-config")
        .arg(config.display().to_string())
        .args(extra)
        .start();
    assert!(g.wait_ready_backends(up, READY), "{up} backends not up");
    g
}

fn served_by(r: &Response) -> String {
    assert_eq!(r.status, 200, "{r:?}");
    r.header("x-backend")
        .unwrap_or_else(|| panic!("no X-Backend in {r:?}"))
        .to_owned()
}

/// `n` requests for `target`, in sequence over `conn`: who answered each.
fn sequence(conn: &mut Conn, target: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| {
            conn.send(get_request(target).as_bytes());
            served_by(&conn.read_response())
        })
        .collect()
}

fn count(names: &[String], name: &str) -> usize {
    names.iter().filter(|n| *n == name).count()
}

// ---------------------------------------------------------------------------------------------
// round_robin, random, least_conn

/// nginx's smooth weighted round-robin: weights 5, 1, 1 give `a a b a c a a`, every cycle.
#[test]
fn round_robin_with_weights_5_1_1_is_the_smooth_sequence() {
    let (a, b, c) = (
        Backend::start("a"),
        Backend::start("b"),
        Backend::start("c"),
    );
    let dir = TempDir::new("balancers");
    let servers = [(a.addr(), 5), (b.addr(), 1), (c.addr(), 1)];
    let g = start(
        &pool_config(&dir, "balancer = \"round_robin\"", &servers),
        &[],
        3,
    );
    let mut conn = Conn::open(g.addr());
    let got = sequence(&mut conn, "/", 21).concat();
    assert_eq!(got, "aabacaa".repeat(3));
}

/// Weighted random with weights 3 and 1: `a`'s share of 1000 draws is Binomial(1000, 3/4),
/// mean 750 and standard deviation sqrt(1000 * 3/4 * 1/4) = 13.7. Accepting 650..=850 fails
/// only beyond 7.3 standard deviations (about 3e-13; Hoeffding's bound 2 exp(-2 * 1000 *
/// 0.1^2) = 4e-9 holds without the normal approximation). Both servers are drawn.
#[test]
fn random_follows_the_weights_within_a_computed_tolerance() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let dir = TempDir::new("balancers");
    let servers = [(a.addr(), 3), (b.addr(), 1)];
    let g = start(
        &pool_config(&dir, "balancer = \"random\"", &servers),
        &[],
        2,
    );
    let mut conn = Conn::open(g.addr());
    let got = sequence(&mut conn, "/", 1000);
    let on_a = count(&got, "a");
    assert!((650..=850).contains(&on_a), "a answered {on_a} of 1000");
    assert_eq!(on_a + count(&got, "b"), 1000);
}

/// A server that takes `delay` for every answer.
fn slow_server(name: &'static str, delay: Duration) -> ScriptedServer {
    ScriptedServer::start(move |stream: TcpStream| {
        answer_each(stream, name, |_| {
            thread::sleep(delay);
            (200, "slow".into())
        })
    })
}

/// least_conn sends a request to the server with the fewest in flight. Four clients in a
/// closed loop share 100 requests: the slow server (300 ms an answer) holds at most two of
/// them at a time while the fast one answers the others as fast as they ask, so the fast one
/// gets most requests, where round-robin would give each server half. (The clients stop
/// together: a client left alone would find both servers idle, a tie, and ties take turns.)
#[test]
fn least_conn_prefers_the_faster_server() {
    const CLIENTS: usize = 4;
    const TOTAL: usize = 100;
    let fast = Backend::start("fast");
    let slow = slow_server("slow", Duration::from_millis(300));
    let dir = TempDir::new("balancers");
    let servers = [(slow.addr(), 1), (fast.addr(), 1)];
    let g = start(
        &pool_config(&dir, "balancer = \"least_conn\"", &servers),
        &[],
        2,
    );
    let answered = Arc::new(AtomicUsize::new(0));
    let on_slow = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let addr = g.addr();
            let (answered, on_slow) = (Arc::clone(&answered), Arc::clone(&on_slow));
            thread::spawn(move || {
                let mut conn = Conn::open(addr);
                while answered.load(Ordering::SeqCst) < TOTAL {
                    if sequence(&mut conn, "/", 1)[0] == "slow" {
                        on_slow.fetch_add(1, Ordering::SeqCst);
                    }
                    answered.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    for c in clients {
        c.join().expect("client thread");
    }
    let (total, on_slow) = (
        answered.load(Ordering::SeqCst),
        on_slow.load(Ordering::SeqCst),
    );
    assert_eq!(fast.requests() as usize + on_slow, total);
    // Round-robin would put half on the slow server.
    assert!(
        on_slow * 4 <= total,
        "the slow server answered {on_slow} of {total}"
    );
}

// ---------------------------------------------------------------------------------------------
// hash

/// `hash_key = "header:X-User"`: a user always lands on the same server; when a server is
/// removed (control socket) only its users move, each to one of the others.
#[test]
fn hash_on_a_header_is_sticky_and_removal_moves_only_the_removed_servers_keys() {
    // 100 users over 3 servers: a server gets none with probability below 3 (2/3)^100 = 7e-18
    // (the placement depends on the fixtures' random ports).
    const USERS: usize = 100;
    let fixtures = [
        Backend::start("a"),
        Backend::start("b"),
        Backend::start("c"),
    ];
    let dir = TempDir::new("balancers");
    let servers: Vec<_> = fixtures.iter().map(|b| (b.addr(), 1)).collect();
    let settings = "balancer = \"hash\"\nhash_key = \"header:X-User\"";
    let g = start(&pool_config(&dir, settings, &servers), &[], 3);
    let mut conn = Conn::open(g.addr());
    let mut ask = |user: usize| {
        let raw = format!("GET / HTTP/1.1\r\nHost: lb.test\r\nX-User: user-{user}\r\n\r\n");
        conn.send(raw.as_bytes());
        served_by(&conn.read_response())
    };
    let before: Vec<String> = (0..USERS).map(&mut ask).collect();
    for (user, first) in before.iter().enumerate() {
        assert_eq!(&ask(user), first, "user-{user} moved without a change");
    }
    for b in &fixtures {
        assert!(
            before.contains(&b.name().to_owned()),
            "{} got no user",
            b.name()
        );
    }

    let reply = control(
        g.socket_path(),
        &format!("upstream pool {},{}", fixtures[0].url(), fixtures[2].url()),
    );
    assert_eq!(reply, "ok: 2 backends\n");
    let after: Vec<String> = (0..USERS).map(&mut ask).collect();
    for (user, (was, is)) in before.iter().zip(&after).enumerate() {
        if was == "b" {
            assert_ne!(is, "b", "user-{user} still on the removed server");
        } else {
            assert_eq!(is, was, "user-{user} moved, but its server stayed");
        }
    }
}

/// `hash_key = "uri"`: the same target lands on the same server; a request without the hash
/// input (here: no `X-User` for a header key) goes round-robin instead.
#[test]
fn hash_on_the_uri_is_sticky_and_a_missing_header_goes_round_robin() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let dir = TempDir::new("balancers");
    let servers = [(a.addr(), 1), (b.addr(), 1)];
    let g = start(
        &pool_config(&dir, "balancer = \"hash\"\nhash_key = \"uri\"", &servers),
        &[],
        2,
    );
    let mut conn = Conn::open(g.addr());
    for i in 0..20 {
        let target = format!("/?item={i}");
        let got = sequence(&mut conn, &target, 4);
        assert!(got.iter().all(|n| *n == got[0]), "{target}: {got:?}");
    }
    drop(g);

    let settings = "balancer = \"hash\"\nhash_key = \"header:X-User\"";
    let g = start(&pool_config(&dir, settings, &servers), &[], 2);
    let mut conn = Conn::open(g.addr());
    let got = sequence(&mut conn, "/", 6).concat();
    assert!(got == "ababab" || got == "bababa", "{got}");
}

/// A connection to `proxy` from the loopback address `source` (any 127.x.y.z is local).
fn conn_from(source: [u8; 4], proxy: SocketAddr) -> Conn {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    let from = SocketAddr::from((source, 0));
    socket
        .bind(&from.into())
        .expect("bind a loopback source address");
    socket.connect(&proxy.into()).expect("connect to the proxy");
    Conn::from_stream(socket.into()).expect("set up the connection")
}

/// `hash` without `hash_key` hashes the client's address: each client sticks to one server
/// whatever connection it comes on, where round-robin would alternate.
#[test]
fn hash_on_the_client_address_is_sticky_across_connections() {
    let (a, b, c) = (
        Backend::start("a"),
        Backend::start("b"),
        Backend::start("c"),
    );
    let dir = TempDir::new("balancers");
    let servers = [(a.addr(), 1), (b.addr(), 1), (c.addr(), 1)];
    let g = start(&pool_config(&dir, "balancer = \"hash\"", &servers), &[], 3);
    let mut seen: HashMap<u8, String> = HashMap::new();
    for round in 0..3 {
        for host in 2..=31u8 {
            let mut conn = conn_from([127, 0, 0, host], g.addr());
            let got = sequence(&mut conn, "/", 2);
            assert_eq!(got[0], got[1], "127.0.0.{host} on one connection");
            let first = seen.entry(host).or_insert_with(|| got[0].clone());
            assert_eq!(*first, got[0], "127.0.0.{host} moved in round {round}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The control socket with named upstreams

/// `upstream NAME url,...` replaces that upstream's servers with weights reset to 1, an
/// unknown NAME is refused and changes nothing, a bare line still replaces `default`, and
/// `list` shows every upstream under its heading.
#[test]
fn control_socket_replaces_named_upstreams_and_lists_them() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let (d, e) = (Backend::start("d"), Backend::start("e"));
    let dir = TempDir::new("balancers");
    let text = format!(
        "[[upstreams.api.servers]]\npath = \"{}\"\nweight = 3\n\
         [[upstreams.api.servers]]\npath = \"{}\"\n\
         [[server.locations]]\npath = \"^[^/]*/api/(.*)\"\nhttp_pass = \"api\"\n\
         [[server.locations]]\npath = \"\"\nhttp_pass = \"default\"\npass_path = true\n",
        a.addr(),
        b.addr()
    );
    let config = dir.write("goaround.toml", text.as_bytes());
    let g = start(&config, &["-b", &d.url()], 3);
    // A request's slot is given back just after its response is on its way: `list` may
    // still count it in flight for a moment.
    let list = |g: &Goaround, want: &str| {
        let mut last = String::new();
        support::wait_until(READY, || {
            last = control(g.socket_path(), "list");
            last == want
        });
        last
    };
    let before = format!(
        "upstream api balancer=round_robin backends=2\n\
         {} up in_flight=0 weight=3\n\
         {} up in_flight=0\n\
         upstream default balancer=round_robin backends=1\n\
         {} up in_flight=0\n\
         ok: 3 backends\n",
        a.url(),
        b.url(),
        d.url()
    );
    assert_eq!(list(&g, &before), before);
    let mut conn = Conn::open(g.addr());
    let got = sequence(&mut conn, "/api/", 8);
    assert_eq!((count(&got, "a"), count(&got, "b")), (6, 2), "3:1 before");

    // Same servers, through the socket: weights are 1 now, the share even.
    let line = format!("upstream api {},{}", a.url(), b.url());
    assert_eq!(control(g.socket_path(), &line), "ok: 2 backends\n");
    let got = sequence(&mut conn, "/api/", 8);
    assert_eq!((count(&got, "a"), count(&got, "b")), (4, 4), "1:1 after");
    let now_even = before.replace(" weight=3", "");
    assert_eq!(list(&g, &now_even), now_even);
    let changed = format!("control: upstream api is now {},{}", a.url(), b.url());
    assert!(g.wait_for_log(&changed, READY), "{}", g.stderr());

    // An unknown upstream: an error, and nothing changes.
    let reply = control(g.socket_path(), &format!("upstream nope {}", e.url()));
    assert_eq!(reply, "error: no upstream named \"nope\"\n");
    assert_eq!(list(&g, &now_even), now_even);

    // A bare line is GoAround's: it replaces `default`, whose servers are checked at /health.
    assert_eq!(control(g.socket_path(), &e.url()), "ok: 1 backends\n");
    assert!(g.wait_ready_backends(3, READY));
    let d_before = d.requests();
    let got = sequence(&mut conn, "/", 3);
    assert_eq!(got, ["e", "e", "e"]);
    assert_eq!(
        d.requests(),
        d_before,
        "the removed default backend gets nothing"
    );
    let replaced = now_even.replace(&d.url(), &e.url());
    assert_eq!(list(&g, &replaced), replaced);
}

/// `-balancer` chooses the `-b` backends' balancer: `hash` hashes the client's address, so
/// one client always gets the same backend, where round-robin alternates.
#[test]
fn balancer_flag_applies_to_the_b_backends() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let urls = [a.url(), b.url()];
    let g = Goaround::builder().backends(&urls).start();
    assert!(g.wait_ready_backends(2, READY));
    let got = sequence(&mut Conn::open(g.addr()), "/", 4).concat();
    assert!(
        got == "abab" || got == "baba",
        "round-robin by default: {got}"
    );
    drop(g);
    let g = Goaround::builder()
        .backends(&urls)
        .args(&["-balancer", "hash"])
        .start();
    assert!(g.wait_ready_backends(2, READY));
    let got = sequence(&mut Conn::open(g.addr()), "/", 6).concat();
    assert!(
        got == "aaaaaa" || got == "bbbbbb",
        "one client, one backend: {got}"
    );
}
