//! The stored responses: an LRU of base keys, each holding its variants, bounded by bytes.
//!
//! Every entry is charged its body, its header fields, its key, its `Vary` values and
//! [`ENTRY_OVERHEAD`]. Inserting makes room by dropping whole base keys, least recently used
//! first; an entry larger than the whole store is refused. Expired variants are dropped when
//! their key is looked at. The caller holds the lock around every call and passes `now`, so
//! nothing here reads a clock or blocks. Storability is `policy.rs`; matching is `key.rs`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use lru::LruCache;

use super::key::{vary_bytes, vary_matches, VaryValues};
use super::policy::NotStorable;

/// Bytes charged per entry on top of what it holds: the entry, its `Arc`s, the LRU node and
/// the map slot, rounded up.
pub(crate) const ENTRY_OVERHEAD: usize = 256;

/// Most variants kept under one base key; past this the oldest goes. A `Vary:
/// User-Agent` would otherwise grow one list without bound and make every lookup scan it.
pub(crate) const MAX_VARIANTS: usize = 16;

/// One stored response: a variant of its base key.
pub(crate) struct Entry {
    pub(crate) vary: VaryValues,
    pub(crate) status: StatusCode,
    pub(crate) headers: Arc<[(HeaderName, HeaderValue)]>,
    pub(crate) body: Arc<[u8]>,
    /// When the response arrived; its age grows from `initial_age` from here.
    pub(crate) received: Instant,
    pub(crate) initial_age: Duration,
    pub(crate) lifetime: Duration,
    /// What it is charged against the bound.
    pub(crate) size: usize,
}

impl Entry {
    /// Current age (RFC 9111 §4.2.3, without the apparent age from `Date`).
    pub(crate) fn age(&self, now: Instant) -> Duration {
        self.initial_age + now.saturating_duration_since(self.received)
    }

    pub(crate) fn is_fresh(&self, now: Instant) -> bool {
        self.age(now) < self.lifetime
    }

    /// The bytes this entry is charged under `key_len`.
    pub(crate) fn charge(
        key_len: usize,
        vary: &VaryValues,
        headers: &[(HeaderName, HeaderValue)],
        body_len: usize,
    ) -> usize {
        let header_bytes: usize = headers
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len())
            .sum();
        ENTRY_OVERHEAD + key_len + vary_bytes(vary) + header_bytes + body_len
    }
}

/// A stored response as handed to a lookup: cheap clones of the stored parts.
pub(crate) struct Found {
    pub(crate) status: StatusCode,
    pub(crate) headers: Arc<[(HeaderName, HeaderValue)]>,
    pub(crate) body: Arc<[u8]>,
    pub(crate) age: Duration,
}

pub(crate) struct Store {
    lru: LruCache<String, Vec<Entry>>,
    max_bytes: usize,
    bytes: usize,
    entries: usize,
    pub(crate) stores: u64,
    pub(crate) evictions: u64,
    pub(crate) expired: u64,
}

impl Store {
    pub(crate) fn new(max_bytes: usize) -> Store {
        Store {
            // The bound is in bytes, enforced here; the LRU only keeps the order.
            lru: LruCache::unbounded(),
            max_bytes,
            bytes: 0,
            entries: 0,
            stores: 0,
            evictions: 0,
            expired: 0,
        }
    }

    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    pub(crate) fn entries(&self) -> usize {
        self.entries
    }

    /// The newest fresh variant of `key` that `req` selects; marks the key recently used.
    pub(crate) fn get(&mut self, key: &str, req: &HeaderMap, now: Instant) -> Option<Found> {
        let group = self.lru.peek_mut(key)?;
        let (freed, count) = drop_expired(group, now);
        let found = group
            .iter()
            .rev()
            .find(|e| vary_matches(&e.vary, req))
            .map(|e| Found {
                status: e.status,
                headers: Arc::clone(&e.headers),
                body: Arc::clone(&e.body),
                age: e.age(now),
            });
        let emptied = group.is_empty();
        self.bytes -= freed;
        self.entries -= count;
        self.expired += count as u64;
        if emptied {
            self.lru.pop(key);
        } else if found.is_some() {
            self.lru.promote(key);
        }
        found
    }

    /// Stores `entry` as the newest variant of `key`, replacing the variants `req` (the
    /// request it answers) would have selected, then evicts until within the bound.
    pub(crate) fn insert(
        &mut self,
        key: String,
        entry: Entry,
        req: &HeaderMap,
        now: Instant,
    ) -> Result<(), NotStorable> {
        if entry.size > self.max_bytes {
            return Err(NotStorable::TooLarge);
        }
        if !entry.is_fresh(now) {
            return Err(NotStorable::Stale);
        }
        // Taken out while it changes, so eviction below never picks it.
        let mut group = self.lru.pop(&key).unwrap_or_default();
        let old: usize = group.iter().map(|e| e.size).sum();
        self.bytes -= old;
        self.entries -= group.len();
        let (_, expired) = drop_expired(&mut group, now);
        self.expired += expired as u64;
        group.retain(|e| !vary_matches(&e.vary, req));
        group.push(entry);
        let overflow = group.len().saturating_sub(MAX_VARIANTS);
        group.drain(..overflow);
        self.evictions += overflow as u64;

        let mut group_bytes: usize = group.iter().map(|e| e.size).sum();
        while self.bytes + group_bytes > self.max_bytes {
            if let Some((_, evicted)) = self.lru.pop_lru() {
                self.bytes -= evicted.iter().map(|e| e.size).sum::<usize>();
                self.entries -= evicted.len();
                self.evictions += evicted.len() as u64;
            } else {
                // Only this key is left and its older variants do not fit beside the new
                // one (which alone fits: checked above).
                let oldest = group.remove(0);
                group_bytes -= oldest.size;
                self.evictions += 1;
            }
        }
        self.bytes += group_bytes;
        self.entries += group.len();
        self.stores += 1;
        self.lru.put(key, group);
        Ok(())
    }

    /// Drops every variant of `key` (RFC 9111 §4.4).
    pub(crate) fn remove(&mut self, key: &str) {
        if let Some(group) = self.lru.pop(key) {
            self.bytes -= group.iter().map(|e| e.size).sum::<usize>();
            self.entries -= group.len();
        }
    }
}

/// Removes the variants no longer fresh; returns the bytes and the number removed.
fn drop_expired(group: &mut Vec<Entry>, now: Instant) -> (usize, usize) {
    let (mut bytes, mut count) = (0, 0);
    group.retain(|e| {
        let keep = e.is_fresh(now);
        if !keep {
            bytes += e.size;
            count += 1;
        }
        keep
    });
    (bytes, count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::key::vary_values;

    const KB: usize = 1024;

    use crate::test_util::headers;

    /// An entry of exactly `size` charged bytes under a one-byte key, varying on `vary`
    /// with the values of `req`.
    fn entry(
        size: usize,
        lifetime_secs: u64,
        t0: Instant,
        vary: &[&str],
        req: &HeaderMap,
    ) -> Entry {
        let names: Vec<HeaderName> = vary
            .iter()
            .map(|n| HeaderName::from_bytes(n.as_bytes()).unwrap())
            .collect();
        let vary = vary_values(&names, req);
        let fixed = Entry::charge(1, &vary, &[], 0);
        Entry {
            vary,
            status: StatusCode::OK,
            headers: Arc::from(Vec::new()),
            body: Arc::from(vec![b'x'; size - fixed]),
            received: t0,
            initial_age: Duration::ZERO,
            lifetime: Duration::from_secs(lifetime_secs),
            size,
        }
    }

    fn put(store: &mut Store, key: &str, size: usize, t0: Instant) -> Result<(), NotStorable> {
        let e = entry(size, 60, t0, &[], &HeaderMap::new());
        store.insert(key.to_string(), e, &HeaderMap::new(), t0)
    }

    fn has(store: &mut Store, key: &str, now: Instant) -> bool {
        store.get(key, &HeaderMap::new(), now).is_some()
    }

    #[test]
    fn charge_counts_every_part() {
        let h: Vec<(HeaderName, HeaderValue)> = vec![(
            HeaderName::from_static("etag"),
            HeaderValue::from_static("\"v1\""),
        )];
        let vary = vary_values(
            &[HeaderName::from_static("accept")],
            &headers(&[("accept", "a/b")]),
        );
        assert_eq!(
            Entry::charge(10, &vary, &h, 100),
            ENTRY_OVERHEAD + 10 + ("accept".len() + 3) + (4 + 4) + 100
        );
    }

    #[test]
    fn evicts_least_recently_used_until_within_bound() {
        let t0 = Instant::now();
        let mut s = Store::new(10 * KB);
        put(&mut s, "a", 4 * KB, t0).unwrap();
        put(&mut s, "b", 4 * KB, t0).unwrap();
        assert_eq!(s.bytes(), 8 * KB);
        assert!(has(&mut s, "a", t0), "a is now more recent than b");
        put(&mut s, "c", 4 * KB, t0).unwrap();
        assert!(!has(&mut s, "b", t0), "b was least recently used");
        assert!(has(&mut s, "a", t0));
        assert!(has(&mut s, "c", t0));
        assert_eq!(
            (s.bytes(), s.entries(), s.evictions, s.stores),
            (8 * KB, 2, 1, 3)
        );
        // One large entry pushes out both.
        put(&mut s, "d", 9 * KB, t0).unwrap();
        assert_eq!((s.bytes(), s.entries(), s.evictions), (9 * KB, 1, 3));
    }

    #[test]
    fn entry_larger_than_store_is_refused() {
        let t0 = Instant::now();
        let mut s = Store::new(10 * KB);
        put(&mut s, "a", 4 * KB, t0).unwrap();
        assert_eq!(
            put(&mut s, "big", 10 * KB + 1, t0),
            Err(NotStorable::TooLarge)
        );
        assert!(has(&mut s, "a", t0), "a refusal evicts nothing");
        put(&mut s, "exact", 10 * KB, t0).unwrap();
        assert_eq!(s.bytes(), 10 * KB);
    }

    #[test]
    fn replacing_a_key_frees_the_old_bytes() {
        let t0 = Instant::now();
        let mut s = Store::new(10 * KB);
        put(&mut s, "a", 4 * KB, t0).unwrap();
        put(&mut s, "a", 3 * KB, t0).unwrap();
        assert_eq!((s.bytes(), s.entries(), s.evictions), (3 * KB, 1, 0));
    }

    #[test]
    fn expired_entries_are_dropped_on_lookup() {
        let t0 = Instant::now();
        let mut s = Store::new(10 * KB);
        put(&mut s, "a", KB, t0).unwrap();
        assert!(has(&mut s, "a", t0 + Duration::from_secs(59)));
        assert!(!has(&mut s, "a", t0 + Duration::from_secs(60)));
        assert_eq!((s.bytes(), s.entries(), s.expired), (0, 0, 1));
        let stale = entry(KB, 1, t0, &[], &HeaderMap::new());
        let later = t0 + Duration::from_secs(1);
        assert_eq!(
            s.insert("b".into(), stale, &HeaderMap::new(), later),
            Err(NotStorable::Stale)
        );
    }

    #[test]
    fn variants_live_side_by_side_and_replace_their_own() {
        let t0 = Instant::now();
        let mut s = Store::new(100 * KB);
        let gzip = headers(&[("accept-encoding", "gzip")]);
        let br = headers(&[("accept-encoding", "br")]);
        for req in [&gzip, &br, &gzip] {
            let e = entry(KB, 60, t0, &["accept-encoding"], req);
            s.insert("k".into(), e, req, t0).unwrap();
        }
        assert_eq!((s.entries(), s.bytes()), (2, 2 * KB));
        assert!(s.get("k", &gzip, t0).is_some());
        assert!(s.get("k", &br, t0).is_some());
        assert!(s.get("k", &HeaderMap::new(), t0).is_none());
        s.remove("k");
        assert_eq!((s.entries(), s.bytes()), (0, 0));
        assert!(s.get("k", &gzip, t0).is_none());
    }

    #[test]
    fn variants_per_key_are_capped() {
        let t0 = Instant::now();
        let mut s = Store::new(100 * KB);
        for i in 0..MAX_VARIANTS + 2 {
            let req = headers(&[("x-n", &i.to_string())]);
            let e = entry(KB, 60, t0, &["x-n"], &req);
            s.insert("k".into(), e, &req, t0).unwrap();
        }
        assert_eq!((s.entries(), s.evictions), (MAX_VARIANTS, 2));
        assert!(s.get("k", &headers(&[("x-n", "0")]), t0).is_none());
        assert!(s.get("k", &headers(&[("x-n", "17")]), t0).is_some());
    }

    #[test]
    fn own_older_variants_give_way_when_nothing_else_is_left() {
        let t0 = Instant::now();
        let mut s = Store::new(10 * KB);
        let a = headers(&[("x-v", "a")]);
        let b = headers(&[("x-v", "b")]);
        s.insert("k".into(), entry(6 * KB, 60, t0, &["x-v"], &a), &a, t0)
            .unwrap();
        s.insert("k".into(), entry(6 * KB, 60, t0, &["x-v"], &b), &b, t0)
            .unwrap();
        assert_eq!((s.entries(), s.bytes(), s.evictions), (1, 6 * KB, 1));
        assert!(s.get("k", &b, t0).is_some());
    }

    #[test]
    fn age_counts_from_initial_age() {
        let t0 = Instant::now();
        let mut e = entry(KB, 10, t0, &[], &HeaderMap::new());
        e.initial_age = Duration::from_secs(4);
        assert_eq!(e.age(t0 + Duration::from_secs(3)), Duration::from_secs(7));
        assert!(e.is_fresh(t0 + Duration::from_secs(5)));
        assert!(!e.is_fresh(t0 + Duration::from_secs(6)));
    }
}
