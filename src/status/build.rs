//! Filling a [`StatusSnapshot`] from the live process: the upstreams and their backends
//! (with the ones still draining), the recorders of `stats`, the cache, and the command line.

use std::sync::Arc;

use super::{BackendState, BackendStatus, StatusSnapshot, UpstreamStatus};
use crate::cache::Cache;
use crate::stats::{self, CacheTotals, ProcessStats};
use crate::upstream::routes::SharedRoutes;
use crate::upstream::Backend;

/// What the status page is built from.
pub struct Sources {
    pub routes: Arc<SharedRoutes>,
    pub process: Arc<ProcessStats>,
    pub cache: Option<Arc<Cache>>,
    /// The command line goaround runs with.
    pub flags: Vec<String>,
}

/// The snapshot as of now.
pub fn snapshot(sources: &Sources) -> StatusSnapshot {
    let clock = stats::clock();
    let now = clock.now_secs();
    let mut totals = sources.process.read(now);
    totals.cache = sources.cache.as_ref().map(|cache| {
        let s = cache.stats();
        CacheTotals {
            hits: s.hits,
            misses: s.misses,
            bytes: s.bytes as u64,
            entries: s.entries as u64,
        }
    });
    let routes = sources.routes.current();
    let upstreams = routes
        .upstreams
        .iter()
        .map(|upstream| {
            let settings = upstream.set.settings();
            let mut backends: Vec<BackendStatus> = upstream
                .set
                .snapshot()
                .iter()
                .map(|b| backend_status(b, state_of(b), now))
                .collect();
            backends.extend(
                upstream
                    .set
                    .draining()
                    .iter()
                    .map(|b| backend_status(b, BackendState::Draining, now)),
            );
            UpstreamStatus {
                name: upstream.name.clone(),
                balancer: settings.balancer.name().to_owned(),
                health_check: settings.health_check.clone(),
                backends,
            }
        })
        .collect();
    StatusSnapshot {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        build_static: super::build_is_static(),
        uptime_secs: clock.uptime().as_secs(),
        flags: sources.flags.clone(),
        totals,
        upstreams,
    }
}

fn state_of(b: &Backend) -> BackendState {
    if b.is_pending() {
        BackendState::Pending
    } else if b.is_usable() {
        BackendState::Up
    } else {
        BackendState::Down
    }
}

/// Every balancer weighs its backends (all 1 for `-b` backends), so the weight is shown.
fn backend_status(b: &Backend, state: BackendState, now: u64) -> BackendStatus {
    let mut status = BackendStatus::new(b.url.base.clone(), state)
        .with_counters(&b.stats.read(now))
        .with_health(&b.health.read(), now);
    if state == BackendState::Down && b.is_passively_out() {
        status.reason = Some("max_fail failures; back after its fail_timeout".to_owned());
    }
    if state == BackendState::Up {
        status.reason = None;
    }
    status.in_flight = b.in_flight() as u64;
    status.limit = b.limit() as u64;
    status.weight = Some(b.weight());
    status
}
