//! One upstream's current set of backends, replaced as a whole, and taking a slot from it.
//!
//! Event loops read an `Arc` snapshot of the set (a mutex held for one clone); the control
//! socket or a reloaded `-config` swaps in a new one. Backends that stay keep their state;
//! new ones start down and are checked at once (or up, in an upstream without active
//! checks); removed ones are retired and drain.
//!
//! Taking a slot never blocks a thread. [`BackendSet::acquire`] offers the usable backends
//! in the balancer's order and takes the first free slot; when every one is busy (or the only
//! backends are new and not checked yet) the request joins the set's FIFO [`WaitQueue`] and
//! its loop goes on with other work. A slot that comes back is handed to the first queued
//! request that may use that backend, through the request's [`Notify`] (the loop's mailbox):
//!
//! ```text
//!   acquire ──free slot──────────────────────────────► Acquired::Slot
//!      │ all busy / pending
//!      ▼
//!   queued (FIFO) ──a slot is dropped / a backend comes up──► notify(token, Ok(slot))
//!      │           ──nothing usable or pending is left───────► notify(token, Err(NoBackend))
//!      └─ the loop's -queue-timeout ──► cancel(token) ──► 503
//! ```
//!
//! The queue's "someone is waiting" counter is raised *before* a queued request checks the
//! slots one last time, and a returned slot is decremented *before* the counter is read
//! (both SeqCst), so a slot returned while a request queues is never lost.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::backend::{Backend, Slot};
use super::balancer::Balancer;
use crate::config::file::BalancerKind;
use crate::config::BackendUrl;

/// Why no slot could be had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcquireError {
    /// No backend (outside those already tried) is up.
    NoBackend,
    /// Every usable backend stayed busy for the whole queue timeout.
    Busy,
}

impl std::fmt::Display for AcquireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::NoBackend => "no backend is available",
            Self::Busy => "all backends are busy",
        })
    }
}

/// Tells a queued request (in whatever loop it lives) how its wait ended.
pub trait Notify: Send + Sync {
    fn notify(&self, token: u64, outcome: Result<Slot, AcquireError>);
}

/// The answer of [`BackendSet::acquire`].
pub enum Acquired {
    Slot(Slot),
    /// Waiting in the set's queue; the request's `Notify` will be told.
    Queued,
    Failed(AcquireError),
}

/// Who waits, for what, and how to tell them.
struct Waiter {
    token: u64,
    /// Backends this request already tried (a retry must go elsewhere).
    exclude: Vec<u64>,
    notify: Arc<dyn Notify>,
}

/// The requests waiting for any slot of one set, oldest first.
#[derive(Default)]
pub struct WaitQueue {
    waiting: AtomicUsize,
    queue: Mutex<VecDeque<Waiter>>,
}

impl WaitQueue {
    fn lock(&self) -> MutexGuard<'_, VecDeque<Waiter>> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn has_waiters(&self) -> bool {
        self.waiting.load(Ordering::SeqCst) > 0
    }

    pub fn len(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Gives free slots of `backend` to the first queued requests that may use it.
    pub(crate) fn offer(&self, backend: &Arc<Backend>) {
        let mut granted = Vec::new();
        {
            let mut queue = self.lock();
            while let Some(pos) = queue.iter().position(|w| !w.exclude.contains(&backend.id)) {
                let Some(slot) = backend.try_take_slot() else {
                    break;
                };
                if let Some(waiter) = queue.remove(pos) {
                    self.waiting.fetch_sub(1, Ordering::SeqCst);
                    granted.push((waiter, slot));
                }
            }
        }
        // Outside the lock: a notification may drop the slot at once (the request is gone),
        // which offers it again.
        for (waiter, slot) in granted {
            waiter.notify.notify(waiter.token, Ok(slot));
        }
    }

    /// Ends every wait with `error`.
    fn fail_all(&self, error: AcquireError) {
        let failed: Vec<Waiter> = {
            let mut queue = self.lock();
            self.waiting.fetch_sub(queue.len(), Ordering::SeqCst);
            queue.drain(..).collect()
        };
        for waiter in failed {
            waiter.notify.notify(waiter.token, Err(error));
        }
    }

    /// Removes a request that stopped waiting; false when it was granted (or failed)
    /// meanwhile, and its notification is on its way.
    pub fn cancel(&self, token: u64) -> bool {
        let mut queue = self.lock();
        match queue.iter().position(|w| w.token == token) {
            Some(pos) => {
                queue.remove(pos);
                self.waiting.fetch_sub(1, Ordering::SeqCst);
                true
            }
            None => false,
        }
    }
}

/// One backend as a set is told about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSpec {
    pub url: BackendUrl,
    pub weight: u32,
    /// `max_fail` and `fail_timeout` of a `-config` server; `None`: `-max-fails` rules.
    pub passive: Option<(u32, std::time::Duration)>,
}

impl ServerSpec {
    /// A `-b` (or control socket) backend: weight 1, `-max-fails` rules.
    pub fn plain(url: BackendUrl) -> ServerSpec {
        ServerSpec {
            url,
            weight: 1,
            passive: None,
        }
    }
}

/// How a set balances and checks its backends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetSettings {
    pub balancer: BalancerKind,
    /// Requests in flight per backend (`-n`, or the upstream's `handles`).
    pub slots: usize,
    /// Path of the active health check; `None`: backends are up from the start.
    pub health_check: Option<String>,
}

/// What acquiring reads together: the backends and how to order them.
struct Members {
    backends: Arc<Vec<Arc<Backend>>>,
    balancer: Arc<Balancer>,
}

/// The live backend set with its balancer and its queue.
pub struct BackendSet {
    current: Mutex<Members>,
    /// Backends removed from the set with requests still in flight (for the status page).
    draining: Mutex<Vec<Arc<Backend>>>,
    settings: Mutex<SetSettings>,
    queue: Arc<WaitQueue>,
}

/// What [`BackendSet::replace`] changed.
pub struct Change {
    pub added: Vec<Arc<Backend>>,
    pub removed: Vec<Arc<Backend>>,
}

impl BackendSet {
    pub fn new(settings: SetSettings) -> BackendSet {
        BackendSet {
            current: Mutex::new(Members {
                backends: Arc::new(Vec::new()),
                balancer: Arc::new(Balancer::new(&settings.balancer)),
            }),
            settings: Mutex::new(settings),
            draining: Mutex::new(Vec::new()),
            queue: Arc::default(),
        }
    }

    /// Removed backends whose requests are still finishing.
    pub fn draining(&self) -> Vec<Arc<Backend>> {
        let mut draining = self.draining.lock().unwrap_or_else(PoisonError::into_inner);
        draining.retain(|b| b.in_flight() > 0);
        draining.clone()
    }

    /// A set of `-b` backends balanced round-robin with `slots` each, checked at `/health`.
    pub fn round_robin(slots: usize) -> BackendSet {
        BackendSet::new(SetSettings {
            balancer: BalancerKind::RoundRobin,
            slots,
            health_check: Some("/health".into()),
        })
    }

    /// The backends in their configured order.
    pub fn snapshot(&self) -> Arc<Vec<Arc<Backend>>> {
        let current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(&current.backends)
    }

    pub fn settings(&self) -> SetSettings {
        self.settings
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Changes how the set balances and how many slots its backends have (a reloaded
    /// `-config`); a balancer of the same kind keeps its state. The health check path is
    /// read by health threads started from now on.
    pub fn reconfigure(&self, settings: SetSettings) {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        let mut old = self.settings.lock().unwrap_or_else(PoisonError::into_inner);
        if old.balancer != settings.balancer {
            current.balancer = Arc::new(Balancer::new(&settings.balancer));
        }
        for b in current.backends.iter() {
            b.set_limit(settings.slots);
        }
        *old = settings;
    }

    /// Requests waiting for a slot now.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Replaces the whole set with `urls`, weight 1 each (GoAround's socket protocol).
    pub fn replace(&self, urls: &[BackendUrl]) -> Change {
        let specs: Vec<ServerSpec> = urls.iter().cloned().map(ServerSpec::plain).collect();
        self.replace_servers(&specs)
    }

    /// Replaces the whole set with `servers`; backends that stay take the new weight and
    /// passive settings and keep the rest of their state.
    pub fn replace_servers(&self, servers: &[ServerSpec]) -> Change {
        let settings = self.settings();
        let unchecked = settings.health_check.is_none();
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        let mut added = Vec::new();
        let next: Vec<Arc<Backend>> = servers
            .iter()
            .map(|spec| {
                let b = match current.backends.iter().find(|b| b.url == spec.url) {
                    Some(kept) => Arc::clone(kept),
                    None => {
                        let b = Backend::with_health(
                            spec.url.clone(),
                            settings.slots,
                            Arc::clone(&self.queue),
                            unchecked,
                        );
                        added.push(Arc::clone(&b));
                        b
                    }
                };
                b.set_weight(spec.weight);
                b.set_passive(spec.passive);
                b
            })
            .collect();
        let removed: Vec<Arc<Backend>> = current
            .backends
            .iter()
            .filter(|b| !servers.iter().any(|s| s.url == b.url))
            .cloned()
            .collect();
        current.backends = Arc::new(next);
        drop(current);
        for b in &removed {
            b.retire();
        }
        {
            let mut draining = self.draining.lock().unwrap_or_else(PoisonError::into_inner);
            draining.retain(|b| b.in_flight() > 0);
            draining.extend(removed.iter().filter(|b| b.in_flight() > 0).cloned());
        }
        self.wake_waiters();
        Change { added, removed }
    }

    /// Takes a slot of a usable backend not in `exclude` (backend ids), in the policy's
    /// order. When every one is busy, or the only candidates are not checked yet, and
    /// `waiter` is given, the request is queued and told later; without `waiter` that is
    /// `Failed(Busy)`.
    ///
    /// `hash_input` is what the request hashes to, for a `hash` balancer.
    pub fn acquire(
        &self,
        exclude: &[u64],
        waiter: Option<(u64, &Arc<dyn Notify>)>,
        hash_input: Option<&[u8]>,
    ) -> Acquired {
        // The set's lock is held while the balancer orders the candidates and a slot is
        // taken (a few atomic operations): cheaper under contention between loops than
        // cloning the backends and the balancer out of it for every request.
        let current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        let set = &current.backends;
        let mut candidates: Vec<&Arc<Backend>> = set
            .iter()
            .filter(|b| b.is_usable() && !exclude.contains(&b.id))
            .collect();
        current.balancer.order(&mut candidates, hash_input);
        if let Some(slot) = candidates.iter().find_map(|b| b.try_take_slot()) {
            return Acquired::Slot(slot);
        }
        let pending = set
            .iter()
            .any(|b| b.is_pending() && !exclude.contains(&b.id));
        if candidates.is_empty() && !pending {
            return Acquired::Failed(AcquireError::NoBackend);
        }
        let Some((token, notify)) = waiter else {
            return Acquired::Failed(AcquireError::Busy);
        };
        let mut queue = self.queue.lock();
        self.queue.waiting.fetch_add(1, Ordering::SeqCst);
        // Once more, now that returned slots will look at the queue.
        if let Some(slot) = candidates.iter().find_map(|b| b.try_take_slot()) {
            self.queue.waiting.fetch_sub(1, Ordering::SeqCst);
            return Acquired::Slot(slot);
        }
        queue.push_back(Waiter {
            token,
            exclude: exclude.to_vec(),
            notify: Arc::clone(notify),
        });
        Acquired::Queued
    }

    /// Removes a queued request (its queue timeout passed, or it went away); false when its
    /// notification is already on its way.
    pub fn cancel(&self, token: u64) -> bool {
        self.queue.cancel(token)
    }

    /// Looks at the queue again after the set or a backend's health changed: free slots of
    /// usable backends go to queued requests; when nothing is usable or pending any more,
    /// every queued request is told there is no backend.
    pub fn wake_waiters(&self) {
        if !self.queue.has_waiters() {
            return;
        }
        let set = self.snapshot();
        for b in set.iter().filter(|b| b.is_usable()) {
            self.queue.offer(b);
        }
        if !set.iter().any(|b| b.is_usable() || b.is_pending()) {
            self.queue.fail_all(AcquireError::NoBackend);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex as StdMutex;

    fn set(n: usize, urls: &[&str]) -> BackendSet {
        let s = BackendSet::round_robin(n);
        s.replace(&parse(urls));
        s
    }

    fn parse(urls: &[&str]) -> Vec<BackendUrl> {
        urls.iter().map(|u| BackendUrl::parse(u).unwrap()).collect()
    }

    fn all_up(s: &BackendSet) {
        s.snapshot().iter().for_each(|b| {
            b.set_up(true);
        });
    }

    /// Records notifications.
    #[derive(Default)]
    struct Inbox(StdMutex<Vec<(u64, Result<Slot, AcquireError>)>>);

    impl Notify for Inbox {
        fn notify(&self, token: u64, outcome: Result<Slot, AcquireError>) {
            self.0.lock().unwrap().push((token, outcome));
        }
    }

    impl Inbox {
        fn take(&self) -> Vec<(u64, Result<Slot, AcquireError>)> {
            std::mem::take(&mut *self.0.lock().unwrap())
        }
    }

    fn slot(a: Acquired) -> Slot {
        match a {
            Acquired::Slot(s) => s,
            Acquired::Queued => panic!("queued"),
            Acquired::Failed(e) => panic!("failed: {e}"),
        }
    }

    #[test]
    fn no_backend_up_fails_at_once() {
        let s = set(1, &["http://a:1"]);
        s.snapshot()[0].set_up(false);
        let inbox: Arc<dyn Notify> = Arc::new(Inbox::default());
        assert!(matches!(
            s.acquire(&[], Some((1, &inbox)), None),
            Acquired::Failed(AcquireError::NoBackend)
        ));
    }

    #[test]
    fn a_pending_backend_queues_and_is_granted_when_it_comes_up() {
        let s = set(1, &["http://a:1"]);
        let inbox = Arc::new(Inbox::default());
        let notify: Arc<dyn Notify> = inbox.clone();
        assert!(matches!(
            s.acquire(&[], Some((7, &notify)), None),
            Acquired::Queued
        ));
        s.snapshot()[0].set_up(true);
        s.wake_waiters();
        let got = inbox.take();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, 7);
        assert!(got[0].1.is_ok());
    }

    #[test]
    fn a_pending_backend_that_fails_its_check_fails_the_queue() {
        let s = set(1, &["http://a:1"]);
        let inbox = Arc::new(Inbox::default());
        let notify: Arc<dyn Notify> = inbox.clone();
        assert!(matches!(
            s.acquire(&[], Some((7, &notify)), None),
            Acquired::Queued
        ));
        s.snapshot()[0].set_up(false);
        s.wake_waiters();
        let got = inbox.take();
        assert!(matches!(got[0].1, Err(AcquireError::NoBackend)));
        assert_eq!(s.queued(), 0);
    }

    #[test]
    fn a_returned_slot_goes_to_the_oldest_waiter() {
        let s = set(1, &["http://a:1"]);
        all_up(&s);
        let inbox = Arc::new(Inbox::default());
        let notify: Arc<dyn Notify> = inbox.clone();
        let held = slot(s.acquire(&[], Some((1, &notify)), None));
        assert!(matches!(
            s.acquire(&[], Some((2, &notify)), None),
            Acquired::Queued
        ));
        assert!(matches!(
            s.acquire(&[], Some((3, &notify)), None),
            Acquired::Queued
        ));
        assert_eq!(s.queued(), 2);
        drop(held);
        let got = inbox.take();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, 2, "first in, first served");
        assert_eq!(s.snapshot()[0].in_flight(), 1, "the slot moved, not freed");
        drop(got);
        assert_eq!(inbox.take()[0].0, 3, "dropping the grant hands it on");
    }

    #[test]
    fn without_a_waiter_busy_is_an_error() {
        let s = set(1, &["http://a:1"]);
        all_up(&s);
        let _held = slot(s.acquire(&[], None, None));
        assert!(matches!(
            s.acquire(&[], None, None),
            Acquired::Failed(AcquireError::Busy)
        ));
    }

    #[test]
    fn cancel_removes_a_waiter_once() {
        let s = set(1, &["http://a:1"]);
        all_up(&s);
        let inbox = Arc::new(Inbox::default());
        let notify: Arc<dyn Notify> = inbox.clone();
        let held = slot(s.acquire(&[], None, None));
        assert!(matches!(
            s.acquire(&[], Some((9, &notify)), None),
            Acquired::Queued
        ));
        assert!(s.cancel(9));
        assert!(!s.cancel(9));
        drop(held);
        assert!(inbox.take().is_empty());
        assert_eq!(s.snapshot()[0].in_flight(), 0);
    }

    #[test]
    fn excluded_backends_are_skipped_also_when_granting() {
        let s = set(1, &["http://a:1", "http://b:2"]);
        all_up(&s);
        let all = s.snapshot();
        let a = slot(s.acquire(&[all[1].id], None, None));
        assert_eq!(a.backend().url.base, "http://a:1");
        let b = slot(s.acquire(&[], None, None));
        assert_eq!(b.backend().url.base, "http://b:2");
        let inbox = Arc::new(Inbox::default());
        let notify: Arc<dyn Notify> = inbox.clone();
        assert!(matches!(
            s.acquire(&[all[0].id], Some((5, &notify)), None),
            Acquired::Queued
        ));
        drop(a);
        assert!(inbox.take().is_empty(), "a is excluded for this request");
        drop(b);
        let got = inbox.take();
        assert_eq!(got[0].1.as_ref().unwrap().backend().url.base, "http://b:2");
        assert!(matches!(
            s.acquire(&[all[0].id, all[1].id], None, None),
            Acquired::Failed(AcquireError::NoBackend)
        ));
    }

    #[test]
    fn slots_are_never_lost_between_threads() {
        let s = Arc::new(set(2, &["http://a:1"]));
        all_up(&s);
        let inbox = Arc::new(Inbox::default());
        let notify: Arc<dyn Notify> = inbox.clone();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let (s, notify, inbox) = (Arc::clone(&s), Arc::clone(&notify), inbox.clone());
                std::thread::spawn(move || {
                    for i in 0..2000u64 {
                        let token = t * 10_000 + i;
                        match s.acquire(&[], Some((token, &notify)), None) {
                            Acquired::Slot(slot) => drop(slot),
                            Acquired::Queued => {}
                            Acquired::Failed(e) => panic!("{e}"),
                        }
                        // Whatever was granted to anyone is dropped at once, as a loop
                        // whose request is served would.
                        drop(inbox.take());
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        drop(inbox.take());
        assert_eq!(s.queued(), 0, "every queued request was granted");
        assert_eq!(s.snapshot()[0].in_flight(), 0);
    }

    #[test]
    fn replace_keeps_existing_and_retires_removed() {
        let s = set(2, &["http://a:1", "http://b:2"]);
        let a = Arc::clone(&s.snapshot()[0]);
        a.set_up(true);
        let change = s.replace(&parse(&["http://a:1", "http://c:3"]));
        assert_eq!(change.added.len(), 1);
        assert_eq!(change.added[0].url.base, "http://c:3");
        assert_eq!(change.removed.len(), 1);
        assert!(change.removed[0].is_retired());
        let now = s.snapshot();
        assert!(Arc::ptr_eq(&now[0], &a), "kept backend keeps its state");
        assert!(now[0].is_up());
        assert!(!now[1].is_up(), "new backend starts down");
    }
}
