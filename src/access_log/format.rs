//! Access-log lines: pure functions from an [`AccessRecord`] to bytes.
//!
//! `combined` is the NCSA combined format nginx and Apache write, followed by three fields
//! of goaround's (nginx's `$upstream_addr $upstream_status $request_time`):
//!
//! ```text
//! 192.0.2.7 - - [10/Oct/2000:13:55:36 +0000] "GET /a HTTP/1.1" 200 2326 "http://r/" "curl/8" http://10.0.0.1:8080 200 0.003
//! ```
//!
//! `json` is one object per line with fixed snake_case keys, `null` where a value is absent.
//! Whatever came from the client is escaped so that it cannot end a field or a line early:
//! in `combined`, `"`, `\`, control bytes and bytes outside ASCII become `\xHH` as nginx
//! writes them; in `json`, strings are escaped per RFC 8259 and bytes that are not UTF-8
//! become U+FFFD. Times are UTC.

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::AccessRecord;
use crate::http1::Version;
use crate::json;

/// Appends the `combined` line for `record`, newline included.
pub(crate) fn format_combined(r: &AccessRecord, out: &mut Vec<u8>) {
    let t = UtcTime::from(r.start);
    // Writing to a Vec cannot fail.
    let _ = write!(
        out,
        "{} - - [{:02}/{}/{:04}:{:02}:{:02}:{:02} +0000] \"",
        r.client_ip,
        t.day,
        MONTHS[usize::from(t.month - 1)],
        t.year,
        t.hour,
        t.minute,
        t.second
    );
    match &r.request {
        Some(line) => {
            write_escaped(out, line.method.as_str().as_bytes());
            out.push(b' ');
            write_escaped(out, line.target.as_bytes());
            out.push(b' ');
            out.extend_from_slice(protocol(line.version).as_bytes());
        }
        None => out.push(b'-'),
    }
    let _ = write!(out, "\" {} {} \"", r.status, r.body_bytes);
    write_escaped_or_dash(out, r.referer.as_ref().map(|v| v.as_bytes()));
    out.extend_from_slice(b"\" \"");
    write_escaped_or_dash(out, r.user_agent.as_ref().map(|v| v.as_bytes()));
    out.extend_from_slice(b"\" ");
    write_escaped_or_dash(out, r.upstream.as_ref().map(|u| u.as_bytes()));
    match r.upstream_status {
        Some(status) => {
            let _ = write!(out, " {status} ");
        }
        None => out.extend_from_slice(b" - "),
    }
    write_seconds(out, r.duration);
    out.push(b'\n');
}

/// Appends the `json` line for `record`, newline included.
pub(crate) fn format_json(r: &AccessRecord, out: &mut Vec<u8>) {
    let t = UtcTime::from(r.start);
    let _ = write!(
        out,
        "{{\"time\":\"{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z\",\
         \"client_ip\":\"{}\",\"method\":",
        t.year, t.month, t.day, t.hour, t.minute, t.second, t.millis, r.client_ip
    );
    let line = r.request.as_ref();
    write_json_or_null(out, line.map(|l| l.method.as_str().as_bytes()));
    out.extend_from_slice(b",\"uri\":");
    write_json_or_null(out, line.map(|l| l.target.as_bytes()));
    out.extend_from_slice(b",\"protocol\":");
    write_json_or_null(out, line.map(|l| protocol(l.version).as_bytes()));
    let _ = write!(
        out,
        ",\"status\":{},\"bytes\":{},\"referer\":",
        r.status, r.body_bytes
    );
    write_json_or_null(out, r.referer.as_ref().map(|v| v.as_bytes()));
    out.extend_from_slice(b",\"user_agent\":");
    write_json_or_null(out, r.user_agent.as_ref().map(|v| v.as_bytes()));
    out.extend_from_slice(b",\"host\":");
    write_json_or_null(out, r.host.as_ref().map(|h| h.as_bytes()));
    out.extend_from_slice(b",\"upstream\":");
    write_json_or_null(out, r.upstream.as_ref().map(|u| u.as_bytes()));
    match r.upstream_status {
        Some(status) => {
            let _ = write!(out, ",\"upstream_status\":{status}");
        }
        None => out.extend_from_slice(b",\"upstream_status\":null"),
    }
    out.extend_from_slice(b",\"request_time\":");
    write_seconds(out, r.duration);
    out.extend_from_slice(b"}\n");
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

fn protocol(version: Version) -> &'static str {
    match version {
        Version::Http10 => "HTTP/1.0",
        Version::Http11 => "HTTP/1.1",
    }
}

/// Seconds with millisecond precision (`0.003`), truncated as nginx's `$request_time`.
fn write_seconds(out: &mut Vec<u8>, d: Duration) {
    let _ = write!(out, "{}.{:03}", d.as_secs(), d.subsec_millis());
}

/// Bytes for a quoted `combined` field: `"`, `\`, controls and non-ASCII as `\xHH`.
fn write_escaped(out: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in bytes {
        if b == b'"' || b == b'\\' || !(0x20..0x7f).contains(&b) {
            out.extend_from_slice(&[
                b'\\',
                b'x',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 15)],
            ]);
        } else {
            out.push(b);
        }
    }
}

/// `-` for a missing or empty value, as nginx writes an empty variable.
fn write_escaped_or_dash(out: &mut Vec<u8>, value: Option<&[u8]>) {
    match value {
        Some(v) if !v.is_empty() => write_escaped(out, v),
        _ => out.push(b'-'),
    }
}

fn write_json_or_null(out: &mut Vec<u8>, value: Option<&[u8]>) {
    match value {
        Some(v) => {
            let _ = json::write_string(out, v);
        }
        None => out.extend_from_slice(b"null"),
    }
}

/// A UTC calendar time, to the millisecond.
#[derive(Debug, PartialEq, Eq)]
struct UtcTime {
    year: i64,
    month: u8,
    day: u8,
    hour: u8,
    minute: u8,
    second: u8,
    millis: u16,
}

impl From<SystemTime> for UtcTime {
    /// A time before 1970 (a clock set wrong) is written as the epoch.
    fn from(t: SystemTime) -> UtcTime {
        let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = since.as_secs();
        let (year, month, day) = civil_from_days(secs / 86_400);
        let of_day = secs % 86_400;
        // Each value is below 24, 60, 60 or 1000, so the narrowing casts cannot truncate.
        UtcTime {
            year,
            month,
            day,
            hour: (of_day / 3600) as u8,
            minute: (of_day / 60 % 60) as u8,
            second: (of_day % 60) as u8,
            millis: since.subsec_millis() as u16,
        }
    }
}

/// Year, month (1-12) and day (1-31) of a day count since 1970-01-01, in the proleptic
/// Gregorian calendar (Howard Hinnant's `civil_from_days`, for days after the epoch).
fn civil_from_days(days: u64) -> (i64, u8, u8) {
    // Shift the epoch to 0000-03-01, so a leap day ends its 400-year era's year.
    let z = i64::try_from(days).unwrap_or(i64::MAX / 2) + 719_468;
    let era = z / 146_097;
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153; // 0 = March
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    // Month and day are in 1..=12 and 1..=31.
    (year, month as u8, day as u8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access_log::RequestLine;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    use http::{HeaderValue, Method};

    /// 2000-10-10T13:55:36.123Z, the time of Apache's documentation example.
    fn apache_time() -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(971_186_136_123)
    }

    fn line(method: Method, target: &str, version: Version) -> RequestLine {
        RequestLine {
            method,
            target: target.to_owned(),
            version,
        }
    }

    /// A head refused before it was complete: 408 from goaround, no request line.
    fn refused() -> AccessRecord {
        let client_ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));
        AccessRecord {
            start: apache_time(),
            ..AccessRecord::refused(client_ip, 408, 55, Duration::from_millis(10_000))
        }
    }

    fn record() -> AccessRecord {
        AccessRecord {
            start: apache_time(),
            client_ip: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)),
            request: Some(line(Method::GET, "/a?b=c", Version::Http11)),
            status: 200,
            body_bytes: 2326,
            referer: Some(HeaderValue::from_static("http://example.com/start")),
            user_agent: Some(HeaderValue::from_static("curl/8.5.0")),
            host: Some("example.com".to_owned()),
            upstream: Some("http://10.0.0.1:8080".to_owned()),
            upstream_status: Some(200),
            duration: Duration::from_micros(3_900),
        }
    }

    /// A record answered by goaround itself: no backend, nothing optional.
    fn own_answer() -> AccessRecord {
        AccessRecord {
            client_ip: IpAddr::V6(Ipv6Addr::LOCALHOST),
            request: Some(line(Method::HEAD, "/", Version::Http10)),
            status: 503,
            body_bytes: 0,
            referer: None,
            user_agent: None,
            host: None,
            upstream: None,
            upstream_status: None,
            duration: Duration::from_millis(12_345),
            ..record()
        }
    }

    /// Quotes, a backslash, a newline, non-ASCII UTF-8 and bytes that are not UTF-8.
    fn hostile() -> AccessRecord {
        AccessRecord {
            request: Some(line(
                Method::from_bytes(b"PURGE").unwrap(),
                "/x\" 200 1 \"-\" \"-\"\n10.0.0.9 - - [\\caf\u{e9}\x7f",
                Version::Http11,
            )),
            referer: Some(HeaderValue::from_bytes(b"\"\\\t").unwrap()),
            user_agent: Some(HeaderValue::from_bytes(b"Mozilla \xff\xfe\x80\"x").unwrap()),
            host: Some("h\"\n".to_owned()),
            upstream: Some(String::new()),
            upstream_status: Some(502),
            ..record()
        }
    }

    fn combined(r: &AccessRecord) -> String {
        let mut out = Vec::new();
        format_combined(r, &mut out);
        String::from_utf8(out).unwrap()
    }

    fn json(r: &AccessRecord) -> String {
        let mut out = Vec::new();
        format_json(r, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn combined_lines() {
        let cases = [
            (
                record(),
                "192.0.2.7 - - [10/Oct/2000:13:55:36 +0000] \"GET /a?b=c HTTP/1.1\" 200 2326 \
                 \"http://example.com/start\" \"curl/8.5.0\" http://10.0.0.1:8080 200 0.003\n",
            ),
            (
                own_answer(),
                "::1 - - [10/Oct/2000:13:55:36 +0000] \"HEAD / HTTP/1.0\" 503 0 \"-\" \"-\" \
                 - - 12.345\n",
            ),
            (
                hostile(),
                "192.0.2.7 - - [10/Oct/2000:13:55:36 +0000] \"PURGE \
                 /x\\x22 200 1 \\x22-\\x22 \\x22-\\x22\\x0A10.0.0.9 - - [\\x5Ccaf\\xC3\\xA9\\x7F \
                 HTTP/1.1\" 200 2326 \"\\x22\\x5C\\x09\" \"Mozilla \\xFF\\xFE\\x80\\x22x\" \
                 - 502 0.003\n",
            ),
            (
                refused(),
                "192.0.2.7 - - [10/Oct/2000:13:55:36 +0000] \"-\" 408 55 \"-\" \"-\" - - 10.000\n",
            ),
        ];
        for (r, want) in cases {
            assert_eq!(combined(&r), want);
        }
    }

    #[test]
    fn json_lines() {
        let cases = [
            (
                record(),
                r#"{"time":"2000-10-10T13:55:36.123Z","client_ip":"192.0.2.7","method":"GET","uri":"/a?b=c","protocol":"HTTP/1.1","status":200,"bytes":2326,"referer":"http://example.com/start","user_agent":"curl/8.5.0","host":"example.com","upstream":"http://10.0.0.1:8080","upstream_status":200,"request_time":0.003}"#,
            ),
            (
                own_answer(),
                r#"{"time":"2000-10-10T13:55:36.123Z","client_ip":"::1","method":"HEAD","uri":"/","protocol":"HTTP/1.0","status":503,"bytes":0,"referer":null,"user_agent":null,"host":null,"upstream":null,"upstream_status":null,"request_time":12.345}"#,
            ),
            (
                hostile(),
                "{\"time\":\"2000-10-10T13:55:36.123Z\",\"client_ip\":\"192.0.2.7\",\
                 \"method\":\"PURGE\",\
                 \"uri\":\"/x\\\" 200 1 \\\"-\\\" \\\"-\\\"\\n10.0.0.9 - - [\\\\caf\u{e9}\\u007f\",\
                 \"protocol\":\"HTTP/1.1\",\"status\":200,\"bytes\":2326,\
                 \"referer\":\"\\\"\\\\\\t\",\
                 \"user_agent\":\"Mozilla \u{FFFD}\u{FFFD}\u{FFFD}\\\"x\",\
                 \"host\":\"h\\\"\\n\",\"upstream\":\"\",\"upstream_status\":502,\
                 \"request_time\":0.003}",
            ),
            (
                refused(),
                r#"{"time":"2000-10-10T13:55:36.123Z","client_ip":"192.0.2.7","method":null,"uri":null,"protocol":null,"status":408,"bytes":55,"referer":null,"user_agent":null,"host":null,"upstream":null,"upstream_status":null,"request_time":10.000}"#,
            ),
        ];
        for (r, want) in cases {
            assert_eq!(json(&r), format!("{want}\n"));
        }
    }

    #[test]
    fn one_line_per_record() {
        for r in [record(), own_answer(), hostile()] {
            for line in [combined(&r), json(&r)] {
                assert_eq!(line.matches('\n').count(), 1, "{line}");
                assert!(line.ends_with('\n'));
            }
            let line = combined(&r);
            // Fields split on unescaped quotes: request, referer, user agent.
            assert_eq!(line.matches('"').count(), 6, "{line}");
        }
    }

    #[test]
    fn calendar_matches_http_dates() {
        // Leap days, century rules, year ends, the epoch and the far future.
        let instants: &[u64] = &[
            0,
            86_399,
            951_782_400,   // 2000-02-29
            951_868_800,   // 2000-03-01
            978_307_199,   // 2000-12-31T23:59:59
            1_709_164_800, // 2024-02-29
            4_107_542_400, // 2100-03-01 (2100 is not a leap year)
            253_402_300_799,
        ];
        let every_17_days = (0..3000u64).map(|i| i * 17 * 86_400 + i * 3_671);
        for secs in instants.iter().copied().chain(every_17_days) {
            let t = UNIX_EPOCH + Duration::from_secs(secs);
            let u = UtcTime::from(t);
            let want = httpdate::fmt_http_date(t);
            let got = format!(
                "{:02} {} {:04} {:02}:{:02}:{:02}",
                u.day,
                MONTHS[usize::from(u.month - 1)],
                u.year,
                u.hour,
                u.minute,
                u.second
            );
            assert_eq!(&want[5..25], got, "{secs}");
        }
    }

    #[test]
    fn before_the_epoch_is_the_epoch() {
        let u = UtcTime::from(UNIX_EPOCH - Duration::from_secs(5));
        assert_eq!((u.year, u.month, u.day, u.hour), (1970, 1, 1, 0));
    }

    #[test]
    fn seconds_truncate_to_milliseconds() {
        for (d, want) in [
            (Duration::ZERO, "0.000"),
            (Duration::from_nanos(999_999), "0.000"),
            (Duration::from_micros(1_500), "0.001"),
            (Duration::from_secs(61), "61.000"),
        ] {
            let mut out = Vec::new();
            write_seconds(&mut out, d);
            assert_eq!(out, want.as_bytes());
        }
    }
}
