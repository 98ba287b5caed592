//! How the page writes numbers, sizes and durations, and how precise `/status.json` is.
//!
//! `page.js` has a twin of each function here (same name in camelCase), because the page is
//! rendered once by the server and then again by the script from the JSON; the browser test
//! compares the two renderings. Both round with "half away from zero" on the value already
//! rounded to the JSON's precision, so that they see the same input and agree to the digit.

/// Decimals kept in JSON for rates (requests per second).
pub(crate) const RATE_DECIMALS: u32 = 2;
/// Decimals kept in JSON for milliseconds (a microsecond).
pub(crate) const MS_DECIMALS: u32 = 3;
/// Decimals kept in JSON for ratios (0 to 1).
pub(crate) const RATIO_DECIMALS: u32 = 4;

/// `x` rounded to `decimals`; None for NaN and infinities (JSON has no such numbers).
pub(crate) fn round(x: f64, decimals: u32) -> Option<f64> {
    let scale = 10f64.powi(decimals as i32);
    x.is_finite().then(|| (x * scale).round() / scale)
}

/// `x` with exactly `decimals` decimals.
pub(crate) fn fixed(x: f64, decimals: u32) -> String {
    let x = round(x, decimals).unwrap_or(0.0);
    format!("{x:.*}", decimals as usize)
}

/// `1234567` → `1,234,567`.
pub(crate) fn count(n: u64) -> String {
    let digits = n.to_string();
    // The first group takes what is left over from groups of three; digits are ASCII.
    let mut at = match digits.len() % 3 {
        0 => 3,
        short => short,
    };
    let mut out = digits[..at].to_owned();
    while at < digits.len() {
        out.push(',');
        out.push_str(&digits[at..at + 3]);
        at += 3;
    }
    out
}

/// `512 B`, `1.5 KiB`, `20.0 MiB`, with a no-break space (a size never wraps apart).
pub(crate) fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n}\u{a0}B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{}\u{a0}{}", fixed(value, 1), UNITS[unit])
}

/// Requests per second: one decimal.
pub(crate) fn rate(x: f64) -> String {
    fixed(round(x, RATE_DECIMALS).unwrap_or(0.0), 1)
}

/// A latency: `0.42 ms`, `12.3 ms`, `250 ms`, `12.5 s` (a no-break space before the unit);
/// `–` when there is none.
pub(crate) fn ms(x: Option<f64>) -> String {
    let Some(x) = x.and_then(|x| round(x, MS_DECIMALS)) else {
        return "–".to_owned();
    };
    if x < 1.0 {
        format!("{}\u{a0}ms", fixed(x, 2))
    } else if x < 100.0 {
        format!("{}\u{a0}ms", fixed(x, 1))
    } else if x < 10_000.0 {
        format!("{}\u{a0}ms", fixed(x, 0))
    } else {
        format!("{}\u{a0}s", fixed(x / 1000.0, 1))
    }
}

/// `45s`, `3m 12s`, `2h 5m`, `3d 4h`: the two largest units.
pub(crate) fn duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m {s}s")
    } else {
        format!("{s}s")
    }
}

/// A ratio as a percentage with one decimal: `87.5%`; `–` when there is none.
pub(crate) fn percent(ratio: Option<f64>) -> String {
    match ratio.and_then(|r| round(r, RATIO_DECIMALS)) {
        Some(r) => format!("{}%", fixed(r * 100.0, 1)),
        None => "–".to_owned(),
    }
}

/// The command line as a shell would take it back: arguments with anything but plain
/// characters single-quoted.
pub(crate) fn command_line(flags: &[String]) -> String {
    let mut out = String::from("goaround");
    for flag in flags {
        out.push(' ');
        let plain = !flag.is_empty()
            && flag
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.,:/=@%+".contains(c));
        if plain {
            out.push_str(flag);
        } else {
            out.push('\'');
            out.push_str(&flag.replace('\'', r"'\''"));
            out.push('\'');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts() {
        let cases = [
            (0, "0"),
            (999, "999"),
            (1000, "1,000"),
            (123_456, "123,456"),
            (1_234_567, "1,234,567"),
        ];
        for (n, want) in cases {
            assert_eq!(count(n), want);
        }
    }

    #[test]
    fn sizes() {
        let cases = [
            (0, "0\u{a0}B"),
            (1023, "1023\u{a0}B"),
            (1024, "1.0\u{a0}KiB"),
            (1536, "1.5\u{a0}KiB"),
            (5_000_000, "4.8\u{a0}MiB"),
            (3 << 30, "3.0\u{a0}GiB"),
        ];
        for (n, want) in cases {
            assert_eq!(bytes(n), want);
        }
    }

    #[test]
    fn rounding_is_half_away_from_zero() {
        // 0.25 is exact in binary: formatting alone would give 0.2 (half to even).
        assert_eq!(fixed(0.25, 1), "0.3");
        assert_eq!(fixed(2.0, 1), "2.0");
        assert_eq!(rate(41.66), "41.7");
        assert_eq!(round(f64::NAN, 2), None);
        assert_eq!(round(1.23456, 3), Some(1.235));
    }

    #[test]
    fn latencies() {
        let cases = [
            (None, "–"),
            (Some(0.4236), "0.42\u{a0}ms"),
            // Rounded to the JSON's microsecond first (0.425), as the script sees it.
            (Some(0.4249), "0.43\u{a0}ms"),
            (Some(1.234), "1.2\u{a0}ms"),
            (Some(48.5), "48.5\u{a0}ms"),
            (Some(250.4), "250\u{a0}ms"),
            (Some(12_500.0), "12.5\u{a0}s"),
        ];
        for (x, want) in cases {
            assert_eq!(ms(x), want);
        }
    }

    #[test]
    fn durations() {
        let cases = [
            (0, "0s"),
            (45, "45s"),
            (192, "3m 12s"),
            (7500, "2h 5m"),
            (93_784, "1d 2h"),
        ];
        for (secs, want) in cases {
            assert_eq!(duration(secs), want);
        }
    }

    #[test]
    fn percents() {
        assert_eq!(percent(Some(0.875)), "87.5%");
        assert_eq!(percent(Some(1.0)), "100.0%");
        assert_eq!(percent(None), "–");
    }

    #[test]
    fn command_lines_quote_what_a_shell_would_split() {
        let flags: Vec<String> = ["-b", "http://a:1,http://b:2", "-cache", "it's here", ""]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            command_line(&flags),
            r"goaround -b http://a:1,http://b:2 -cache 'it'\''s here' ''"
        );
    }
}
