//! The cache as workers see it: lookup, fill, expiry on a moved clock, invalidation, and
//! collapsed forwarding across threads.

use std::sync::{Arc, Barrier, Mutex};
use std::thread;

use super::*;

/// A clock that moves only when told.
struct ManualClock {
    start: Instant,
    wall_start: SystemTime,
    offset: Mutex<Duration>,
}

impl ManualClock {
    fn new() -> Arc<ManualClock> {
        Arc::new(ManualClock {
            start: Instant::now(),
            wall_start: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            offset: Mutex::new(Duration::ZERO),
        })
    }

    fn advance(&self, by: Duration) {
        *self.offset.lock().unwrap() += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.start + *self.offset.lock().unwrap()
    }
    fn wall(&self) -> SystemTime {
        self.wall_start + *self.offset.lock().unwrap()
    }
}

fn cache() -> (Cache, Arc<ManualClock>) {
    let clock = ManualClock::new();
    let cache = Cache::with_clock(CacheConfig::default(), clock.clone());
    (cache, clock)
}

use crate::test_util::headers;

fn fields(h: &HeaderMap) -> Vec<(HeaderName, HeaderValue)> {
    h.iter().map(|(n, v)| (n.clone(), v.clone())).collect()
}

const LONG: Duration = Duration::from_secs(30);

fn get(cache: &Cache, host: &str, target: &str, req: &HeaderMap) -> Lookup {
    cache.lookup(&Method::GET, "http", host, target, req, false)
}

/// Looks up a GET of `http://h{target}` as an event loop does: when another request is
/// fetching it, wait (here: block this test thread) until that fetch finishes or `patience`
/// runs out, then look again without waiting.
fn wait_and_look(cache: &Cache, target: &str, req: &HeaderMap, patience: Duration) -> Lookup {
    match cache.lookup(&Method::GET, "http", "h", target, req, true) {
        Lookup::Wait(flight) => {
            let (tx, rx) = std::sync::mpsc::channel();
            flight.subscribe(Box::new(move || {
                let _ = tx.send(());
            }));
            let _ = rx.recv_timeout(patience);
            cache.lookup(&Method::GET, "http", "h", target, req, false)
        }
        other => other,
    }
}

fn ticket(lookup: Lookup) -> FillTicket {
    match lookup {
        Lookup::Miss(Some(t)) => t,
        other => panic!("expected a miss with a ticket, got {other:?}"),
    }
}

fn body_of(lookup: Lookup) -> Vec<u8> {
    match lookup {
        Lookup::Hit(r) => r.body.to_vec(),
        other => panic!("expected a hit, got {other:?}"),
    }
}

/// Fetches through `t` as a worker would: decide on the head, then store the body.
fn fill(t: FillTicket, resp: &[(&str, &str)], body: &[u8]) -> Result<(), NotStorable> {
    let resp = headers(resp);
    let storable = t.storable(StatusCode::OK, &resp)?;
    t.store(storable, fields(&resp), body.to_vec())
}

fn is_hit(lookup: &Lookup) -> bool {
    matches!(lookup, Lookup::Hit(_))
}

#[test]
fn miss_fill_hit() {
    let (cache, _) = cache();
    let req = HeaderMap::new();
    let t = ticket(get(&cache, "example.com", "/a?b=1", &req));
    assert!(t.is_leader());
    let resp = [
        ("content-type", "text/plain"),
        ("content-length", "5"),
        ("age", "3"),
    ];
    fill(t, &resp, b"hello").unwrap();
    match get(&cache, "example.com", "/a?b=1", &req) {
        Lookup::Hit(r) => {
            assert_eq!(r.status, StatusCode::OK);
            assert_eq!(&r.body[..], b"hello");
            assert_eq!(r.age, Duration::from_secs(3));
            let names: Vec<&str> = r.headers.iter().map(|(n, _)| n.as_str()).collect();
            assert_eq!(names, ["content-type"], "age and framing are the caller's");
        }
        other => panic!("{other:?}"),
    }
    let s = cache.stats();
    assert_eq!((s.hits, s.misses, s.stores, s.entries), (1, 1, 1, 1));
    assert!(s.bytes > 5);
}

#[test]
fn key_includes_scheme_host_and_query() {
    let (cache, _) = cache();
    let none = HeaderMap::new();
    fill(ticket(get(&cache, "a.example", "/p?q=1", &none)), &[], b"1").unwrap();
    assert!(!is_hit(&get(&cache, "a.example", "/p?q=2", &none)));
    assert!(!is_hit(&get(&cache, "a.example", "/p", &none)));
    assert!(!is_hit(&get(&cache, "b.example", "/p?q=1", &none)));
    let https = cache.lookup(&Method::GET, "https", "a.example", "/p?q=1", &none, false);
    assert!(!is_hit(&https));
    assert!(is_hit(&get(&cache, "A.Example", "/p?q=1", &none)));
}

#[test]
fn head_is_served_from_get_but_never_fills() {
    let (cache, _) = cache();
    let none = HeaderMap::new();
    let head = || cache.lookup(&Method::HEAD, "http", "h", "/", &none, false);
    assert!(matches!(head(), Lookup::Miss(None)));
    fill(ticket(get(&cache, "h", "/", &none)), &[], b"body").unwrap();
    assert_eq!(body_of(head()), b"body");
}

#[test]
fn bypassing_requests_get_no_ticket_and_are_not_counted() {
    let (cache, _) = cache();
    let no_store = headers(&[("cache-control", "no-store")]);
    assert!(matches!(
        get(&cache, "h", "/", &no_store),
        Lookup::Miss(None)
    ));
    let post = cache.lookup(&Method::POST, "http", "h", "/", &HeaderMap::new(), false);
    assert!(matches!(post, Lookup::Miss(None)));
    assert_eq!(cache.stats(), CacheStats::default());
}

#[test]
fn authorization_needs_a_sharing_directive() {
    let (cache, _) = cache();
    let auth = headers(&[("authorization", "Bearer t")]);
    let t = ticket(get(&cache, "h", "/private", &auth));
    assert_eq!(
        fill(t, &[("cache-control", "max-age=60")], b"x"),
        Err(NotStorable::Authorization)
    );
    let t = ticket(get(&cache, "h", "/public", &auth));
    fill(t, &[("cache-control", "public, max-age=60")], b"x").unwrap();
    assert!(is_hit(&get(&cache, "h", "/public", &HeaderMap::new())));
}

#[test]
fn entries_expire_on_the_clock() {
    let (cache, clock) = cache();
    let none = HeaderMap::new();
    let t = ticket(get(&cache, "h", "/", &none));
    fill(t, &[("cache-control", "max-age=10"), ("age", "4")], b"x").unwrap();
    clock.advance(Duration::from_secs(5));
    match get(&cache, "h", "/", &none) {
        Lookup::Hit(r) => assert_eq!(r.age, Duration::from_secs(9)),
        other => panic!("{other:?}"),
    }
    clock.advance(Duration::from_secs(1));
    assert!(!is_hit(&get(&cache, "h", "/", &none)));
    let s = cache.stats();
    assert_eq!((s.expired, s.entries, s.bytes), (1, 0, 0));
}

#[test]
fn default_ttl_and_expires_follow_the_clock() {
    let (cache, clock) = cache();
    let none = HeaderMap::new();
    fill(ticket(get(&cache, "h", "/default", &none)), &[], b"x").unwrap();
    let expires = httpdate::fmt_http_date(clock.wall() + Duration::from_secs(120));
    let t = ticket(get(&cache, "h", "/expires", &none));
    fill(t, &[("expires", &expires)], b"x").unwrap();
    clock.advance(DEFAULT_TTL);
    assert!(!is_hit(&get(&cache, "h", "/default", &none)));
    assert!(is_hit(&get(&cache, "h", "/expires", &none)));
    clock.advance(Duration::from_secs(60));
    assert!(!is_hit(&get(&cache, "h", "/expires", &none)));
}

#[test]
fn download_time_counts_toward_age() {
    let (cache, clock) = cache();
    let none = HeaderMap::new();
    let t = ticket(get(&cache, "h", "/", &none));
    let resp = headers(&[("cache-control", "max-age=10")]);
    let storable = t.storable(StatusCode::OK, &resp).unwrap();
    clock.advance(Duration::from_secs(10));
    assert_eq!(
        t.store(storable, fields(&resp), b"slow".to_vec()),
        Err(NotStorable::Stale)
    );
}

#[test]
fn vary_keeps_one_variant_per_header_value() {
    let (cache, _) = cache();
    let gzip = headers(&[("accept-encoding", "gzip")]);
    let br = headers(&[("accept-encoding", "br")]);
    let none = HeaderMap::new();
    let vary = [("vary", "Accept-Encoding")];
    fill(ticket(get(&cache, "h", "/v", &gzip)), &vary, b"gz").unwrap();
    // Another variant of a stored URL: a miss, and it fills.
    fill(ticket(get(&cache, "h", "/v", &br)), &vary, b"br").unwrap();
    fill(ticket(get(&cache, "h", "/v", &none)), &vary, b"identity").unwrap();
    assert_eq!(body_of(get(&cache, "h", "/v", &gzip)), b"gz");
    assert_eq!(body_of(get(&cache, "h", "/v", &br)), b"br");
    assert_eq!(body_of(get(&cache, "h", "/v", &none)), b"identity");
    let empty = headers(&[("accept-encoding", "")]);
    assert!(
        !is_hit(&get(&cache, "h", "/v", &empty)),
        "empty is not absent"
    );
    assert_eq!(cache.stats().entries, 3);
}

#[test]
fn oversized_bodies_are_refused() {
    let clock = ManualClock::new();
    let config = CacheConfig {
        max_object: 10,
        ..CacheConfig::default()
    };
    let cache = Cache::with_clock(config, clock);
    let none = HeaderMap::new();
    let t = ticket(get(&cache, "h", "/cl", &none));
    assert_eq!(t.max_body(), 10);
    assert_eq!(
        fill(t, &[("content-length", "11")], b""),
        Err(NotStorable::TooLarge)
    );
    // Unknown length: refused only once the body turns out too large.
    let t = ticket(get(&cache, "h", "/chunked", &none));
    assert_eq!(fill(t, &[], &[b'x'; 11]), Err(NotStorable::TooLarge));
    fill(ticket(get(&cache, "h", "/small", &none)), &[], &[b'x'; 10]).unwrap();
    assert_eq!(cache.stats().entries, 1);
}

#[test]
fn byte_bound_evicts_least_recently_used() {
    let clock = ManualClock::new();
    let config = CacheConfig {
        max_bytes: 3000,
        ..CacheConfig::default()
    };
    let cache = Cache::with_clock(config, clock);
    let none = HeaderMap::new();
    for path in ["/1", "/2"] {
        fill(ticket(get(&cache, "h", path, &none)), &[], &[0; 1000]).unwrap();
    }
    assert!(is_hit(&get(&cache, "h", "/1", &none)));
    fill(ticket(get(&cache, "h", "/3", &none)), &[], &[0; 1000]).unwrap();
    assert!(is_hit(&get(&cache, "h", "/1", &none)));
    assert!(is_hit(&get(&cache, "h", "/3", &none)));
    assert!(!is_hit(&get(&cache, "h", "/2", &none)));
    let s = cache.stats();
    assert_eq!((s.evictions, s.entries), (1, 2));
    assert!(s.bytes <= 3000);
}

#[test]
fn unsafe_methods_invalidate_every_variant() {
    let (cache, _) = cache();
    let a = headers(&[("accept", "a")]);
    let b = headers(&[("accept", "b")]);
    for req in [&a, &b] {
        fill(
            ticket(get(&cache, "h", "/r", req)),
            &[("vary", "accept")],
            b"x",
        )
        .unwrap();
    }
    fill(ticket(get(&cache, "h", "/other", &a)), &[], b"x").unwrap();
    cache.invalidate("http", "H", "/r");
    assert!(!is_hit(&get(&cache, "h", "/r", &a)));
    assert!(!is_hit(&get(&cache, "h", "/r", &b)));
    assert!(is_hit(&get(&cache, "h", "/other", &a)));
    assert_eq!(cache.stats().entries, 1);
}

#[test]
fn invalidation_during_a_fetch_keeps_its_response_out() {
    let (cache, _) = cache();
    let none = HeaderMap::new();
    let t = ticket(get(&cache, "h", "/r", &none));
    cache.invalidate("http", "h", "/r");
    assert_eq!(fill(t, &[], b"old"), Err(NotStorable::Invalidated));
    // A fetch begun after the invalidation stores normally.
    fill(ticket(get(&cache, "h", "/r", &none)), &[], b"new").unwrap();
    assert_eq!(body_of(get(&cache, "h", "/r", &none)), b"new");
}

/// Polls until `cond` holds; panics after a while rather than hanging the test run.
fn eventually(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(1));
    }
}

/// `n` threads look up one URL at once; returns their answers after `leader` has run with
/// the first leader ticket (once all others are waiting).
fn concurrent_misses(
    cache: &Arc<Cache>,
    n: usize,
    leader: impl FnOnce(FillTicket) + Send + 'static,
) -> Vec<Lookup> {
    let barrier = Arc::new(Barrier::new(n));
    let leader = Arc::new(Mutex::new(Some(leader)));
    let threads: Vec<_> = (0..n)
        .map(|i| {
            let (cache, barrier, leader) = (cache.clone(), barrier.clone(), leader.clone());
            thread::Builder::new()
                .name(format!("cache-test-{i}"))
                .spawn(move || {
                    barrier.wait();
                    let none = HeaderMap::new();
                    match wait_and_look(&cache, "/c", &none, LONG) {
                        Lookup::Miss(Some(t)) if t.is_leader() => {
                            // A waiter may lead the next fetch once the first leader is done;
                            // that one is an answer like the others.
                            let Some(run) = leader.lock().unwrap().take() else {
                                return Some(Lookup::Miss(Some(t)));
                            };
                            eventually("all waiters", || cache.stats().collapsed == n as u64 - 1);
                            run(t);
                            None
                        }
                        other => Some(other),
                    }
                })
                .unwrap()
        })
        .collect();
    let answers: Vec<Lookup> = threads
        .into_iter()
        .filter_map(|t| t.join().unwrap())
        .collect();
    assert_eq!(answers.len(), n - 1, "exactly one leader");
    answers
}

#[test]
fn waiters_are_served_from_the_leaders_store() {
    let cache = Arc::new(cache().0);
    let answers = concurrent_misses(&cache, 8, |t| fill(t, &[], b"shared").unwrap());
    for a in answers {
        assert_eq!(body_of(a), b"shared");
    }
    let s = cache.stats();
    assert_eq!((s.hits, s.misses, s.stores, s.collapsed), (7, 1, 1, 7));
}

#[test]
fn a_dropped_ticket_turns_waiters_into_fetchers() {
    let cache = Arc::new(cache().0);
    let start = Instant::now();
    let answers = concurrent_misses(&cache, 6, drop);
    assert!(
        start.elapsed() < LONG / 2,
        "waiters did not wait out their timeout"
    );
    // Nobody waits twice: the first waiter to look again leads, the others fetch at once.
    let tickets: Vec<FillTicket> = answers.into_iter().map(ticket).collect();
    let leaders = tickets.iter().filter(|t| t.is_leader()).count();
    assert_eq!(leaders, 1, "one waiter leads the next fetch");
    let s = cache.stats();
    assert_eq!((s.hits, s.misses, s.collapsed), (0, 6, 5));
}

#[test]
fn a_panicking_leader_releases_waiters() {
    let cache = Arc::new(cache().0);
    let answers = concurrent_misses(&cache, 4, |t| {
        let panicked = thread::spawn(move || {
            let _held = t;
            panic!("leader fails mid-fetch (expected in this test)");
        })
        .join();
        assert!(panicked.is_err());
    });
    assert!(answers.iter().all(|a| matches!(a, Lookup::Miss(Some(_)))));
}

#[test]
fn an_unstorable_response_sends_waiters_to_fetch() {
    let cache = Arc::new(cache().0);
    let answers = concurrent_misses(&cache, 4, |t| {
        assert_eq!(
            fill(t, &[("cache-control", "private")], b"mine"),
            Err(NotStorable::Private)
        );
    });
    assert!(answers.iter().all(|a| matches!(a, Lookup::Miss(Some(_)))));
    // A waiter's own fetch may still fill the cache.
    let mut answers = answers.into_iter();
    fill(ticket(answers.next().unwrap()), &[], b"later").unwrap();
    assert_eq!(body_of(get(&cache, "h", "/c", &HeaderMap::new())), b"later");
}

#[test]
fn waiter_timeout_is_honoured() {
    let (cache, _) = cache();
    let none = HeaderMap::new();
    let leader = ticket(get(&cache, "h", "/slow", &none));
    let start = Instant::now();
    let wait = Duration::from_millis(50);
    let waiter = wait_and_look(&cache, "/slow", &none, wait);
    let waited = start.elapsed();
    assert!(waited >= wait && waited < LONG, "{waited:?}");
    assert!(!ticket(waiter).is_leader());
    // With no patience at all, no waiting.
    let start = Instant::now();
    let impatient = get(&cache, "h", "/slow", &none);
    assert!(start.elapsed() < wait);
    assert!(!ticket(impatient).is_leader());
    assert_eq!(cache.stats().collapsed, 1);
    drop(leader);
}

#[test]
fn conditional_requests_do_not_lead() {
    let (cache, _) = cache();
    let conditional = headers(&[("if-none-match", "\"v1\"")]);
    let t = ticket(get(&cache, "h", "/", &conditional));
    assert!(!t.is_leader());
    // A plain request arriving meanwhile leads instead of waiting for a likely 304.
    assert!(ticket(get(&cache, "h", "/", &HeaderMap::new())).is_leader());
}

#[test]
fn a_waiter_of_another_variant_fetches_itself() {
    let (cache, _) = cache();
    let cache = Arc::new(cache);
    let gzip = headers(&[("accept-encoding", "gzip")]);
    let leader = ticket(get(&cache, "h", "/v", &gzip));
    let waiter = {
        let cache = cache.clone();
        thread::spawn(move || {
            let br = headers(&[("accept-encoding", "br")]);
            wait_and_look(&cache, "/v", &br, LONG)
        })
    };
    eventually("the waiter", || cache.stats().collapsed == 1);
    fill(leader, &[("vary", "accept-encoding")], b"gz").unwrap();
    let t = ticket(waiter.join().unwrap());
    // No other fetch runs by now: this one is the next to wait for.
    assert!(t.is_leader());
}

/// Regression: a waiter whose variant the leader did not store fetched without leading, so
/// the same client asking again right after its response (stored only after the last byte
/// went out) found neither the entry nor a flight and went to the backend a third time.
#[test]
fn a_waiter_fetching_itself_leads_so_the_next_miss_waits_for_it() {
    let (cache, _) = cache();
    let cache = Arc::new(cache);
    let br = headers(&[("accept-encoding", "br")]);
    let leader = ticket(get(
        &cache,
        "h",
        "/v",
        &headers(&[("accept-encoding", "gzip")]),
    ));
    let lookup_br = || {
        let (cache, br) = (cache.clone(), br.clone());
        thread::spawn(move || wait_and_look(&cache, "/v", &br, LONG))
    };
    let waiter = lookup_br();
    eventually("the waiter", || cache.stats().collapsed == 1);
    fill(leader, &[("vary", "accept-encoding")], b"gz").unwrap();
    let second = ticket(waiter.join().unwrap());

    // Asked again before the br response is stored: wait for it, then hit.
    let again = lookup_br();
    eventually("the second waiter", || cache.stats().collapsed == 2);
    fill(second, &[("vary", "accept-encoding")], b"br").unwrap();
    assert_eq!(body_of(again.join().unwrap()), b"br");
    assert_eq!(cache.stats().stores, 2);
}

#[test]
fn tickets_leave_no_trace() {
    let (cache, _) = cache();
    let none = HeaderMap::new();
    drop(ticket(get(&cache, "h", "/a", &none)));
    fill(ticket(get(&cache, "h", "/b", &none)), &[], b"x").unwrap();
    let t = ticket(get(&cache, "h", "/c", &none));
    cache.invalidate("http", "h", "/c");
    drop(t);
    assert!(cache.shared.lock().fills.is_empty());
}
