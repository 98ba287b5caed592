//! `/status.json`: the snapshot as one JSON object, written by hand (the project carries no
//! JSON library for this one small document).
//!
//! Keys are snake_case and stable: scripts and the page's own refresh read them. An absent
//! value is `null`, never a missing key. Strings are escaped per RFC 8259 §7, and `<`, `>`,
//! `&`, U+2028 and U+2029 are escaped too, so the text stays inert even if it is ever pasted
//! into HTML or a script. Rates, milliseconds and ratios are rounded (see `format.rs`).

use std::fmt::Write;

use super::format::{round, MS_DECIMALS, RATE_DECIMALS, RATIO_DECIMALS};
use super::{BackendStatus, StatusSnapshot, UpstreamStatus};
use crate::stats::ProcessTotals;

/// The snapshot as a JSON document (UTF-8, one line, ending in a newline).
pub fn render_json(s: &StatusSnapshot) -> Vec<u8> {
    let mut w = Writer::default();
    w.open('{');
    w.key("version").string(&s.version);
    w.key("build_static").bool(s.build_static);
    w.key("uptime_secs").uint(s.uptime_secs);
    w.key("flags").open('[');
    for flag in &s.flags {
        w.item().string(flag);
    }
    w.close(']');
    w.key("totals");
    totals(&mut w, &s.totals);
    w.key("upstreams").open('[');
    for u in &s.upstreams {
        w.item();
        upstream(&mut w, u);
    }
    w.close(']');
    w.close('}');
    w.out.push('\n');
    w.out.into_bytes()
}

fn totals(w: &mut Writer, t: &ProcessTotals) {
    w.open('{');
    w.key("client_connections").uint(t.client_connections);
    w.key("tunnels").uint(t.tunnels);
    w.key("requests").uint(t.requests);
    w.key("rps_10s").float(Some(t.rps_10s), RATE_DECIMALS);
    w.key("cache");
    match &t.cache {
        None => w.null(),
        Some(c) => {
            w.open('{');
            w.key("hits").uint(c.hits);
            w.key("misses").uint(c.misses);
            w.key("hit_ratio").float(c.hit_ratio(), RATIO_DECIMALS);
            w.key("bytes").uint(c.bytes);
            w.key("entries").uint(c.entries);
            w.close('}');
        }
    }
    w.close('}');
}

fn upstream(w: &mut Writer, u: &UpstreamStatus) {
    w.open('{');
    w.key("name").string(&u.name);
    w.key("balancer").string(&u.balancer);
    w.key("health_check").opt_string(u.health_check.as_deref());
    w.key("backends").open('[');
    for b in &u.backends {
        w.item();
        backend(w, b);
    }
    w.close(']');
    w.close('}');
}

fn backend(w: &mut Writer, b: &BackendStatus) {
    w.open('{');
    w.key("url").string(&b.url);
    w.key("state").string(b.state.as_str());
    w.key("reason").opt_string(b.reason.as_deref());
    w.key("since_change_secs").opt_uint(b.since_change_secs);
    w.key("last_check");
    match &b.last_check {
        None => w.null(),
        Some(c) => {
            w.open('{');
            w.key("ago_secs").uint(c.ago_secs);
            w.key("ok").bool(c.ok);
            w.key("duration_ms").float(Some(c.duration_ms), MS_DECIMALS);
            w.key("message").string(&c.message);
            w.close('}');
        }
    }
    w.key("in_flight").uint(b.in_flight);
    w.key("limit").uint(b.limit);
    w.key("requests").uint(b.requests);
    w.key("rps_10s").float(Some(b.rps_10s), RATE_DECIMALS);
    w.key("errors").open('{');
    let e = &b.errors;
    w.key("http_5xx").uint(e.http_5xx);
    w.key("connect").uint(e.connect);
    w.key("timeout").uint(e.timeout);
    w.key("reset").uint(e.reset);
    w.key("protocol").uint(e.protocol);
    w.close('}');
    w.key("latency_p50_ms").float(b.latency_p50_ms, MS_DECIMALS);
    w.key("latency_p99_ms").float(b.latency_p99_ms, MS_DECIMALS);
    w.key("bytes_in").uint(b.bytes_in);
    w.key("bytes_out").uint(b.bytes_out);
    w.key("weight").opt_uint(b.weight.map(u64::from));
    w.close('}');
}

/// Appends JSON tokens, putting the commas in: each container remembers whether it has
/// had a member yet.
#[derive(Default)]
struct Writer {
    out: String,
    /// One entry per open container: true until its first member.
    first: Vec<bool>,
}

impl Writer {
    fn open(&mut self, bracket: char) {
        self.out.push(bracket);
        self.first.push(true);
    }

    fn close(&mut self, bracket: char) {
        self.first.pop();
        self.out.push(bracket);
    }

    fn separate(&mut self) {
        if let Some(first) = self.first.last_mut() {
            if !std::mem::replace(first, false) {
                self.out.push(',');
            }
        }
    }

    /// Starts an array element.
    fn item(&mut self) -> &mut Writer {
        self.separate();
        self
    }

    /// Starts an object member.
    fn key(&mut self, key: &str) -> &mut Writer {
        self.separate();
        self.string(key);
        self.out.push(':');
        self
    }

    fn null(&mut self) {
        self.out.push_str("null");
    }

    fn bool(&mut self, b: bool) {
        self.out.push_str(if b { "true" } else { "false" });
    }

    fn uint(&mut self, n: u64) {
        // Writing into a String cannot fail.
        let _ = write!(self.out, "{n}");
    }

    fn opt_uint(&mut self, n: Option<u64>) {
        match n {
            Some(n) => self.uint(n),
            None => self.null(),
        }
    }

    /// A number rounded to `decimals`; `null` when absent or not finite. Rust never writes
    /// an f64 with an exponent, and rounded values are never tiny, so this is a JSON number.
    fn float(&mut self, x: Option<f64>, decimals: u32) {
        match x.and_then(|x| round(x, decimals)) {
            Some(x) => {
                let _ = write!(self.out, "{x}");
            }
            None => self.null(),
        }
    }

    fn opt_string(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.string(s),
            None => self.null(),
        }
    }

    fn string(&mut self, s: &str) {
        self.out.push('"');
        for c in s.chars() {
            match c {
                '"' => self.out.push_str("\\\""),
                '\\' => self.out.push_str("\\\\"),
                '\n' => self.out.push_str("\\n"),
                '\r' => self.out.push_str("\\r"),
                '\t' => self.out.push_str("\\t"),
                '\u{0}'..='\u{1f}' | '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                    let _ = write!(self.out, "\\u{:04x}", c as u32);
                }
                c => self.out.push(c),
            }
        }
        self.out.push('"');
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures;
    use super::super::{BackendState, BackendStatus, StatusSnapshot};
    use super::*;
    use crate::stats::ProcessTotals;

    fn text(s: &StatusSnapshot) -> String {
        String::from_utf8(render_json(s)).expect("JSON is UTF-8")
    }

    /// The keys of the objects in `json` at nesting depth `depth`, in order of appearance
    /// (a key is a string followed by `:`), for documents whose strings hold no `"` or `:`.
    fn keys_at_depth(json: &str, depth: usize) -> Vec<String> {
        let mut keys = Vec::new();
        let mut level = 0;
        let mut rest = json;
        while let Some(c) = rest.chars().next() {
            match c {
                '{' | '[' => level += 1,
                '}' | ']' => level -= 1,
                '"' => {
                    let end = rest[1..].find('"').unwrap() + 1;
                    if rest[end + 1..].starts_with(':') && level == depth {
                        keys.push(rest[1..end].to_owned());
                    }
                    rest = &rest[end + 1..];
                    continue;
                }
                _ => {}
            }
            rest = &rest[c.len_utf8()..];
        }
        keys
    }

    #[test]
    fn the_whole_document() {
        let mut s = fixtures::snapshot();
        s.upstreams[0].backends.truncate(1);
        s.upstreams[0].backends[0].weight = Some(3);
        let want = concat!(
            r#"{"version":"0.1.0","build_static":true,"uptime_secs":93784,"#,
            r#""flags":["-b","http://10.0.0.1:8080","-n","16"],"#,
            r#""totals":{"client_connections":12,"tunnels":1,"requests":999999,"rps_10s":83.4,"#,
            r#""cache":{"hits":7,"misses":1,"hit_ratio":0.875,"bytes":2048,"entries":3}},"#,
            r#""upstreams":[{"name":"default","balancer":"round-robin","health_check":"/health","#,
            r#""backends":[{"#,
            r#""url":"http://10.0.0.1:8080","state":"up","reason":null,"since_change_secs":192,"#,
            r#""last_check":{"ago_secs":1,"ok":true,"duration_ms":2.125,"message":"200 OK"},"#,
            r#""in_flight":3,"limit":16,"requests":123456,"rps_10s":41.7,"#,
            r#""errors":{"http_5xx":2,"connect":1,"timeout":0,"reset":0,"protocol":0},"#,
            r#""latency_p50_ms":1.234,"latency_p99_ms":48.5,"bytes_in":5000000,"#,
            r#""bytes_out":120000,"weight":3}]}]}"#,
            "\n"
        );
        assert_eq!(text(&s), want);
    }

    #[test]
    fn stable_keys() {
        let json = text(&fixtures::snapshot());
        let top = [
            "version",
            "build_static",
            "uptime_secs",
            "flags",
            "totals",
            "upstreams",
        ];
        assert_eq!(keys_at_depth(&json, 1), top);
        let backend_keys = [
            "url",
            "state",
            "reason",
            "since_change_secs",
            "last_check",
            "in_flight",
            "limit",
            "requests",
            "rps_10s",
            "errors",
            "latency_p50_ms",
            "latency_p99_ms",
            "bytes_in",
            "bytes_out",
            "weight",
        ];
        // Document 1, upstreams array 2, upstream 3, backends array 4, backend 5.
        let found = keys_at_depth(&json, 5);
        assert_eq!(found.len(), 2 * backend_keys.len());
        assert_eq!(found[..backend_keys.len()], backend_keys);
        assert_eq!(found[backend_keys.len()..], backend_keys);
    }

    #[test]
    fn absent_values_are_null() {
        let s = StatusSnapshot {
            version: String::new(),
            build_static: false,
            uptime_secs: 0,
            flags: vec![],
            totals: ProcessTotals {
                rps_10s: f64::NAN,
                ..ProcessTotals::default()
            },
            upstreams: vec![super::super::UpstreamStatus {
                name: "u".into(),
                balancer: "round-robin".into(),
                health_check: None,
                backends: vec![BackendStatus::new("http://x:1", BackendState::Pending)],
            }],
        };
        let json = text(&s);
        assert!(json.contains(r#""flags":[],"#), "{json}");
        assert!(json.contains(r#""rps_10s":null,"cache":null}"#), "{json}");
        for key in [
            "reason",
            "since_change_secs",
            "last_check",
            "latency_p50_ms",
            "latency_p99_ms",
            "weight",
        ] {
            assert!(json.contains(&format!(r#""{key}":null"#)), "{key}: {json}");
        }
        assert!(json.contains(r#""state":"pending""#));
    }

    #[test]
    fn strings_are_escaped() {
        let mut w = Writer::default();
        w.string("a\"b\\c\nd\te\u{1}</script>&\u{2028}é");
        assert_eq!(
            w.out,
            r#""a\"b\\c\nd\te\u0001\u003c/script\u003e\u0026\u2028é""#
        );
    }
}
