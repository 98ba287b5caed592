//! The upstreams and the locations that lead to them, as one value the loops read: built at
//! start from the `-config` file and the `-b` flags, replaced whole when SIGHUP re-reads the
//! file.
//!
//! Each [`Upstream`] is a named [`BackendSet`] with its balancer and hash key. `default` holds
//! the `-b` backends (and what a bare control-socket line sets), checked at `/health` as
//! GoAround did; a `-config` upstream is checked only when it names a `health_check` path,
//! and its servers follow `max_fail`/`fail_timeout` instead (Gourmet servers have no
//! `/health`).
//!
//! Replacing the routes keeps what can be kept: an upstream present in both (by name) keeps
//! its set, queue and backends (a server present in both keeps its state, including its
//! connections and in-flight requests); an upstream whose health checking was switched on or
//! off starts over, as do new ones; upstreams that are gone retire their backends, whose
//! requests finish where they are. Starting health threads is the caller's: [`Reload`] lists
//! the backends that need one.

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use super::backend::Backend;
use super::set::{BackendSet, ServerSpec, SetSettings};
use crate::config::file::{BalancerKind, FileConfig, HashKey, Upstream as UpstreamConfig};
use crate::config::BackendUrl;
use crate::routing::Router;

/// One upstream group.
pub struct Upstream {
    pub name: String,
    pub set: Arc<BackendSet>,
    /// What a `hash` balancer hashes.
    pub hash_key: Option<HashKey>,
    /// The `-b` backends' upstream.
    pub from_flags: bool,
}

/// What the flags say about the `default` upstream.
#[derive(Debug, Clone)]
pub struct FlagBackends {
    pub urls: Vec<BackendUrl>,
    /// `-balancer`.
    pub balancer: BalancerKind,
    /// `-n`.
    pub slots: usize,
}

/// The upstreams and the locations leading to them.
pub struct Routes {
    pub upstreams: Vec<Arc<Upstream>>,
    router: Router,
    default: usize,
}

/// Where a request goes.
pub struct Routed<'a> {
    pub upstream: &'a Arc<Upstream>,
    /// The request-target to send upstream (rewritten by the location).
    pub target: Cow<'a, str>,
}

impl Routes {
    /// Routes a request by its Host and origin-form target; `None`: no location matches.
    pub fn route<'a>(&'a self, host: Option<&str>, target: &'a str) -> Option<Routed<'a>> {
        let route = self.router.route(host, target)?;
        Some(Routed {
            upstream: self.upstreams.get(route.upstream)?,
            target: route.path,
        })
    }

    pub fn by_name(&self, name: &str) -> Option<&Arc<Upstream>> {
        self.upstreams.iter().find(|u| u.name == name)
    }

    /// The upstream of `-b` and of bare control-socket lines.
    pub fn default_upstream(&self) -> &Arc<Upstream> {
        &self.upstreams[self.default]
    }
}

/// What building or replacing the routes changed.
#[derive(Default)]
pub struct Reload {
    /// Backends that need a health thread: (backend, its set). Only those of upstreams with
    /// health checks; see [`servers_added`](Self::servers_added) for the count of all.
    pub added: Vec<(Arc<Backend>, Arc<BackendSet>)>,
    /// Servers new to their upstream, checked or not (for the log).
    pub servers_added: usize,
    pub removed: Vec<Arc<Backend>>,
}

/// Builds the routes for `file` and `flags`, keeping what `previous` has in common.
pub fn build(
    file: &FileConfig,
    flags: &FlagBackends,
    previous: Option<&Routes>,
) -> (Routes, Reload) {
    let mut reload = Reload::default();
    let mut upstreams = Vec::with_capacity(file.upstreams.len());
    for config in &file.upstreams {
        let settings = settings_of(config, flags);
        // From the balancer in force: `default`'s is `-balancer`'s unless the file defines it.
        let hash_key = match &settings.balancer {
            BalancerKind::Hash { key } => Some(key.clone()),
            _ => None,
        };
        let servers = servers_of(config, flags);
        let kept = previous
            .and_then(|p| p.by_name(&config.name))
            .filter(|old| {
                old.set.settings().health_check.is_some() == settings.health_check.is_some()
            });
        let set = match kept {
            Some(old) => {
                old.set.reconfigure(settings);
                Arc::clone(&old.set)
            }
            None => Arc::new(BackendSet::new(settings)),
        };
        let change = set.replace_servers(&servers);
        reload.servers_added += change.added.len();
        if set.settings().health_check.is_some() {
            reload
                .added
                .extend(change.added.into_iter().map(|b| (b, Arc::clone(&set))));
        }
        reload.removed.extend(change.removed);
        upstreams.push(Arc::new(Upstream {
            name: config.name.clone(),
            hash_key,
            from_flags: config.from_flags,
            set,
        }));
    }
    // Upstreams that are gone (or started over) drain.
    if let Some(previous) = previous {
        for old in &previous.upstreams {
            let still = upstreams.iter().any(|u| Arc::ptr_eq(&u.set, &old.set));
            if !still {
                let change = old.set.replace_servers(&[]);
                reload.removed.extend(change.removed);
            }
        }
    }
    let routes = Routes {
        upstreams,
        router: Router::new(file),
        default: file.default_upstream(),
    };
    (routes, reload)
}

fn settings_of(config: &UpstreamConfig, flags: &FlagBackends) -> SetSettings {
    if config.from_flags {
        return SetSettings {
            balancer: flags.balancer.clone(),
            slots: flags.slots,
            health_check: Some("/health".into()),
        };
    }
    SetSettings {
        balancer: config.balancer.clone(),
        slots: config.handles.unwrap_or(flags.slots),
        health_check: config.health_check.clone(),
    }
}

fn servers_of(config: &UpstreamConfig, flags: &FlagBackends) -> Vec<ServerSpec> {
    if config.from_flags {
        return flags.urls.iter().cloned().map(ServerSpec::plain).collect();
    }
    config
        .servers
        .iter()
        .map(|s| ServerSpec {
            url: s.url.clone(),
            weight: s.weight,
            passive: Some((s.max_fail, s.fail_timeout)),
        })
        .collect()
}

/// The servers a control-socket line sets: weight 1, and in an upstream without active
/// checks Gourmet's default `max_fail`/`fail_timeout` (with checks, `-max-fails` rules).
pub fn control_servers(set: &BackendSet, urls: &[BackendUrl]) -> Vec<ServerSpec> {
    use crate::config::file::{DEFAULT_FAIL_TIMEOUT, DEFAULT_MAX_FAIL};
    let checked = set.settings().health_check.is_some();
    urls.iter()
        .cloned()
        .map(|url| ServerSpec {
            url,
            weight: 1,
            passive: (!checked).then_some((DEFAULT_MAX_FAIL, DEFAULT_FAIL_TIMEOUT)),
        })
        .collect()
}

/// The current routes, swapped whole; loops keep their own copy and look at the version
/// number (one atomic load) to know when to take the new one.
pub struct SharedRoutes {
    current: Mutex<Arc<Routes>>,
    version: AtomicU64,
}

impl SharedRoutes {
    pub fn new(routes: Routes) -> SharedRoutes {
        SharedRoutes {
            current: Mutex::new(Arc::new(routes)),
            version: AtomicU64::new(1),
        }
    }

    pub fn current(&self) -> Arc<Routes> {
        Arc::clone(&self.current.lock().unwrap_or_else(PoisonError::into_inner))
    }

    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    pub fn replace(&self, routes: Routes) {
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = Arc::new(routes);
        self.version.fetch_add(1, Ordering::AcqRel);
    }

    /// Every backend of every upstream, with its upstream's name (for metrics and status).
    pub fn backends(&self) -> Vec<(String, Arc<Backend>)> {
        let routes = self.current();
        routes
            .upstreams
            .iter()
            .flat_map(|u| {
                u.set
                    .snapshot()
                    .iter()
                    .map(|b| (u.name.clone(), Arc::clone(b)))
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

/// A loop's copy of the routes, refreshed when the version moves.
pub struct RoutesView {
    version: u64,
    routes: Arc<Routes>,
}

impl RoutesView {
    pub fn new(shared: &SharedRoutes) -> RoutesView {
        RoutesView {
            version: shared.version(),
            routes: shared.current(),
        }
    }

    /// The routes now in force.
    pub fn get(&mut self, shared: &SharedRoutes) -> &Arc<Routes> {
        let version = shared.version();
        if version != self.version {
            self.routes = shared.current();
            self.version = version;
        }
        &self.routes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::file;
    use std::path::Path;

    fn flags(urls: &[&str]) -> FlagBackends {
        FlagBackends {
            urls: urls.iter().map(|u| BackendUrl::parse(u).unwrap()).collect(),
            balancer: BalancerKind::RoundRobin,
            slots: 3,
        }
    }

    fn config(text: &str) -> FileConfig {
        file::parse(text, Path::new("t.toml")).unwrap()
    }

    const TWO: &str = r#"
[upstreams.api]
  [[upstreams.api.servers]]
    path = "127.0.0.1:1"
    weight = 5
  [[upstreams.api.servers]]
    path = "127.0.0.1:2"
[server]
  [[server.locations]]
    path = "api/(.*)"
    http_pass = "api"
"#;

    #[test]
    fn flags_only_is_the_default_upstream_with_health_checks() {
        let (routes, reload) = build(&FileConfig::flags_only(), &flags(&["http://a:1"]), None);
        let default = routes.default_upstream();
        assert_eq!(default.name, "default");
        assert_eq!(reload.added.len(), 1, "checked: a health thread is needed");
        assert!(!default.set.snapshot()[0].is_up(), "pending until checked");
        let routed = routes.route(Some("h"), "/x?y").unwrap();
        assert_eq!(routed.upstream.name, "default");
        assert_eq!(routed.target, "/x?y");
    }

    /// Regression: `-balancer hash` built a hash balancer for `default` but no hash key, so
    /// its requests went round-robin.
    #[test]
    fn balancer_flag_hash_gives_default_its_hash_key() {
        let mut hashed = flags(&["http://a:1"]);
        hashed.balancer = file::balancer_kind("hash").unwrap();
        let (routes, _) = build(&FileConfig::flags_only(), &hashed, None);
        assert_eq!(routes.default_upstream().hash_key, Some(HashKey::ClientIp));
        let (routes, _) = build(&FileConfig::flags_only(), &flags(&["http://a:1"]), None);
        assert_eq!(routes.default_upstream().hash_key, None);
    }

    #[test]
    fn config_servers_are_up_at_once_with_weights_and_routed_with_rewrite() {
        let (routes, reload) = build(&config(TWO), &flags(&[]), None);
        assert!(reload.added.is_empty(), "no health_check: no threads");
        let api = routes.by_name("api").unwrap();
        let servers = api.set.snapshot();
        assert!(servers.iter().all(|b| b.is_usable()));
        assert_eq!(servers[0].weight(), 5);
        let routed = routes.route(Some("h"), "/api/v1/x").unwrap();
        assert_eq!(routed.upstream.name, "api");
        assert_eq!(routed.target, "/v1/x");
        assert!(routes.route(Some("h"), "/other").is_none(), "404");
    }

    #[test]
    fn reload_keeps_servers_present_in_both() {
        let (first, _) = build(&config(TWO), &flags(&[]), None);
        let kept = Arc::clone(&first.by_name("api").unwrap().set.snapshot()[1]);
        let changed = TWO.replace("127.0.0.1:1", "127.0.0.1:3");
        let (second, reload) = build(&config(&changed), &flags(&[]), Some(&first));
        let now = second.by_name("api").unwrap().set.snapshot();
        assert!(Arc::ptr_eq(&now[1], &kept), "same server, same state");
        assert!(
            reload.added.is_empty(),
            "no health_check: no thread to start"
        );
        assert_eq!(reload.servers_added, 1, "but a server was added");
        assert_eq!(reload.removed.len(), 1);
        assert!(reload.removed[0].is_retired());
        assert_eq!(reload.removed[0].url.base, "http://127.0.0.1:1");
    }

    #[test]
    fn an_upstream_that_is_gone_drains() {
        let (first, _) = build(&config(TWO), &flags(&[]), None);
        let (_, reload) = build(&FileConfig::flags_only(), &flags(&[]), Some(&first));
        assert_eq!(reload.removed.len(), 2);
        assert!(reload.removed.iter().all(|b| b.is_retired()));
    }

    #[test]
    fn views_follow_replacements() {
        let (routes, _) = build(&FileConfig::flags_only(), &flags(&[]), None);
        let shared = SharedRoutes::new(routes);
        let mut view = RoutesView::new(&shared);
        let before = Arc::as_ptr(view.get(&shared));
        let (next, _) = build(&config(TWO), &flags(&[]), Some(&shared.current()));
        shared.replace(next);
        assert_ne!(before, Arc::as_ptr(view.get(&shared)));
        assert!(view.get(&shared).by_name("api").is_some());
    }
}
