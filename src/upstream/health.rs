//! Active health checks: `GET {backend}/health`, GoAround's rules.
//!
//! One thread per backend (named `health <host:port>`) checks at once when the backend is
//! added, then every interval (every second at most while the backend is down), and early
//! when woken (a refused connection asks for a recheck).
//! It exits when the backend is retired. Each up/down transition is logged once.
//!
//! The verdict ([`verdict`]) is a pure function of status and body:
//! - a JSON object whose `"state"` is `"healthy"`: healthy, whatever the status;
//! - status 200 and a `"state"` that is not `"degraded"` (or no JSON at all): healthy;
//! - anything else, a timeout or a connection error: unhealthy.

use std::io::Read;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use super::backend::Backend;
use super::set::BackendSet;
use crate::metrics::Metrics;

/// Longest pause between checks of a backend that is down (GoAround re-checked degraded
/// connections every second; HAProxy calls this `downinter`).
const DOWN_RECHECK: Duration = Duration::from_secs(1);

/// Largest health-check body read; the rest is ignored.
const MAX_HEALTH_BODY: u64 = 64 * 1024;

/// How the health threads run.
#[derive(Debug, Clone)]
pub struct HealthSettings {
    pub interval: Duration,
    pub timeout: Duration,
    /// Trust for https backends, as for requests.
    pub tls: ureq::tls::TlsConfig,
}

/// Starts the health thread of `backend`, a member of `set` (whose queued requests are
/// looked at again after each verdict).
pub fn spawn(
    backend: Arc<Backend>,
    settings: HealthSettings,
    metrics: Arc<Metrics>,
    set: Arc<BackendSet>,
) {
    let name = format!("health {}", backend.url.host_port());
    let spawned = thread::Builder::new()
        .name(name)
        .spawn(move || run(&backend, settings, &metrics, &set));
    if let Err(e) = spawned {
        log::error!("cannot start a health-check thread: {e}");
    }
}

fn run(backend: &Backend, settings: HealthSettings, metrics: &Metrics, set: &BackendSet) {
    let agent = agent(&settings);
    while !backend.is_retired() {
        // The path is the upstream's (a reloaded -config may change it).
        let path = set
            .settings()
            .health_check
            .unwrap_or_else(|| "/health".into());
        let url = format!("{}{path}", backend.url.base);
        let downs_before = backend.passive_downs();
        let started = std::time::Instant::now();
        // The event loops never resolve names: new connections use the addresses found
        // here, so a changed address is picked up at the next check.
        let result = match backend.resolve() {
            Ok(()) => check(&agent, &url),
            Err(e) => Err(format!("resolving {}: {e}", backend.url.host())),
        };
        if backend.is_retired() {
            break;
        }
        let clock = crate::stats::clock();
        let message = match &result {
            Ok(()) => "healthy",
            Err(why) => why.as_str(),
        };
        backend
            .health
            .record_check(clock.now_secs(), result.is_ok(), started.elapsed(), message);
        metrics.health_check(&backend.url.base, result.is_ok());
        // A pass that began before requests took the backend out says nothing about it:
        // keep it out until a check that started afterwards passes.
        let up = result.is_ok() && backend.passive_downs() == downs_before;
        // The first verdict is always worth a line: a backend that is down from the start
        // would otherwise never be mentioned above debug.
        let first = backend.is_pending();
        if backend.set_up(up) || (first && !up) {
            let reason = match &result {
                _ if up => None,
                Err(why) => Some(format!("check failed: {why}")),
                Ok(()) => Some("requests failed; waiting for a later check".to_owned()),
            };
            backend
                .health
                .record_change(clock.now_secs(), reason.as_deref());
            match &result {
                _ if up => log::info!("backend {} is up", backend.url.base),
                Err(why) => log::warn!("backend {} is down: {why}", backend.url.base),
                Ok(()) => log::warn!("backend {} is down: requests failed", backend.url.base),
            }
        } else if let Err(why) = &result {
            log::debug!("backend {} still down: {why}", backend.url.base);
        }
        metrics.set_backend_up(&backend.url.base, up);
        set.wake_waiters();
        // Sleep for one interval (shorter while down, so a restarted backend is back within
        // a second), or less when woken.
        let down_pause = settings.interval.min(DOWN_RECHECK);
        let pause = if up { settings.interval } else { down_pause };
        if backend.health_wake_rx.recv_timeout(pause).is_ok() && !backend.is_up() {
            // Woken because requests failed and took the backend out: keep it out for a
            // moment, or a /health that still passes would put it straight back.
            let _ = backend.health_wake_rx.recv_timeout(down_pause);
        }
    }
    log::debug!("health checks of {} stopped", backend.url.base);
}

fn agent(settings: &HealthSettings) -> ureq::Agent {
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .tls_config(settings.tls.clone())
        .user_agent(concat!(
            "goaround/",
            env!("CARGO_PKG_VERSION"),
            " health-check"
        ))
        .timeout_global(Some(settings.timeout))
        .max_idle_connections(1)
        .max_idle_connections_per_host(1)
        .build();
    ureq::Agent::new_with_config(config)
}

/// One check: `Ok` when healthy, else why not.
fn check(agent: &ureq::Agent, url: &str) -> Result<(), String> {
    let mut response = agent
        .get(url)
        .call()
        .map_err(|e| format!("GET {url}: {e}"))?;
    let status = response.status().as_u16();
    let mut body = Vec::new();
    response
        .body_mut()
        .as_reader()
        .take(MAX_HEALTH_BODY)
        .read_to_end(&mut body)
        .map_err(|e| format!("GET {url}: reading body: {e}"))?;
    if verdict(status, &body) {
        Ok(())
    } else {
        Err(format!("GET {url} answered {status}"))
    }
}

/// GoAround's health rule (see the module docs).
pub fn verdict(status: u16, body: &[u8]) -> bool {
    match json_state(body).as_deref() {
        Some("healthy") => true,
        Some("degraded") => false,
        _ => status == 200,
    }
}

/// The string value of the top-level `"state"` member when `body` is a JSON object.
fn json_state(body: &[u8]) -> Option<String> {
    let mut p = JsonScan {
        s: std::str::from_utf8(body).ok()?.as_bytes(),
        i: 0,
    };
    p.ws();
    p.eat(b'{')?;
    let mut state = None;
    p.ws();
    if p.eat(b'}').is_some() {
        return None;
    }
    loop {
        p.ws();
        let key = p.string()?;
        p.ws();
        p.eat(b':')?;
        p.ws();
        if key == "state" && p.peek() == Some(b'"') {
            state = Some(p.string()?);
        } else {
            p.skip_value(0)?;
        }
        p.ws();
        match p.next()? {
            b',' => continue,
            b'}' => break,
            _ => return None,
        }
    }
    p.ws();
    (p.i == p.s.len()).then_some(state).flatten()
}

/// A minimal JSON scanner: enough to find one member without a JSON dependency.
struct JsonScan<'a> {
    s: &'a [u8],
    i: usize,
}

/// Nesting depth beyond which a health body is not worth scanning.
const MAX_DEPTH: usize = 32;

impl JsonScan<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.i += 1;
        Some(b)
    }

    /// Consumes `want` if it is next; leaves the input alone otherwise.
    fn eat(&mut self, want: u8) -> Option<()> {
        (self.peek()? == want).then(|| self.i += 1)
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.i += 1;
        }
    }

    /// A string literal; escapes are kept simple (`\"`, `\\`, `\/`, and the rest as-is).
    fn string(&mut self) -> Option<String> {
        self.eat(b'"')?;
        let mut out = Vec::new();
        loop {
            match self.next()? {
                b'"' => return String::from_utf8(out).ok(),
                b'\\' => match self.next()? {
                    b @ (b'"' | b'\\' | b'/') => out.push(b),
                    b => {
                        out.push(b'\\');
                        out.push(b);
                    }
                },
                b if b < 0x20 => return None,
                b => out.push(b),
            }
        }
    }

    fn skip_value(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        match self.peek()? {
            b'"' => self.string().map(|_| ()),
            open @ (b'{' | b'[') => {
                let close = if open == b'{' { b'}' } else { b']' };
                self.i += 1;
                self.ws();
                if self.peek() == Some(close) {
                    self.i += 1;
                    return Some(());
                }
                loop {
                    self.ws();
                    if open == b'{' {
                        self.string()?;
                        self.ws();
                        self.eat(b':')?;
                        self.ws();
                    }
                    self.skip_value(depth + 1)?;
                    self.ws();
                    match self.next()? {
                        b',' => continue,
                        b if b == close => return Some(()),
                        _ => return None,
                    }
                }
            }
            _ => {
                // number, true, false, null
                let start = self.i;
                while matches!(self.peek(), Some(b) if b.is_ascii_alphanumeric() || b"+-.".contains(&b))
                {
                    self.i += 1;
                }
                (self.i > start).then_some(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! verdicts {
        ($($name:ident: $status:expr, $body:expr => $healthy:expr,)*) => {$(
            #[test]
            fn $name() {
                assert_eq!(verdict($status, $body.as_bytes()), $healthy);
            }
        )*};
    }

    verdicts! {
        ok_empty: 200, "" => true,
        ok_text: 200, "fine" => true,
        ok_json_healthy: 200, r#"{"state": "healthy", "message": ""}"# => true,
        ok_json_degraded: 200, r#"{"state": "degraded", "message": "db slow"}"# => false,
        ok_json_other_state: 200, r#"{"state": "starting"}"# => true,
        ok_json_no_state: 200, r#"{"message": "hi"}"# => true,
        err_json_healthy: 503, r#"{"state":"healthy"}"# => true,
        err_json_degraded: 500, r#"{"state":"degraded"}"# => false,
        err_text: 500, "boom" => false,
        err_empty: 404, "" => false,
        redirect: 301, "" => false,
        nested_state_ignored: 500, r#"{"info": {"state": "healthy"}, "state": "degraded"}"# => false,
        state_as_value_ignored: 500, r#"{"message": "state", "x": "healthy"}"# => false,
        escaped_quotes: 500, r#"{"message": "\"state\": \"healthy\"", "state": "down"}"# => false,
        not_json_trailing: 500, r#"{"state": "healthy"} trailing"# => false,
        array_members: 503, r#"{"checks": [1, true, null, {"a": []}], "state": "healthy"}"# => true,
        whitespace: 503, "\n { \"state\" :\t\"healthy\" } \n" => true,
        truncated_json: 200, r#"{"state": "degraded""# => true,
    }
}
