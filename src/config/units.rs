//! The unit grammars flag values are written in: Go durations ([`parse_duration`], as
//! GoAround's `time.ParseDuration` flags read them) and byte sizes ([`parse_size`]).
//!
//! Each returns the value or a message saying why not. Which values a flag accepts (zero
//! or not, an upper bound) and which flag it was are the flag checks' business, in `config`.

use std::time::Duration;

/// Go's `time.ParseDuration`: a sequence of decimal numbers, each with an optional fraction
/// and a unit (`ns`, `us`/`µs`, `ms`, `s`, `m`, `h`), e.g. "300ms" or "1h30m"; "0" alone needs
/// no unit. Unlike Go, a negative duration is an error. Same limit as Go: about 292 years.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    if s.starts_with('-') {
        return Err(format!("negative duration {s:?}"));
    }
    let mut rest = s.strip_prefix('+').unwrap_or(s);
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(format!("invalid duration {s:?}"));
    }
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let (nanos, after) = duration_term(rest, s)?;
        total = total
            .checked_add(nanos)
            .filter(|t| *t <= MAX_DURATION_NANOS)
            .ok_or_else(|| format!("invalid duration {s:?}"))?;
        rest = after;
    }
    Ok(Duration::from_nanos(total))
}

/// Go's `time.Duration` is an i64 of nanoseconds.
const MAX_DURATION_NANOS: u64 = i64::MAX as u64;

/// One `<number><unit>` at the start of `s`, in nanoseconds, and what follows it. `whole` is
/// the full input, for messages.
fn duration_term<'a>(s: &'a str, whole: &str) -> Result<(u64, &'a str), String> {
    let invalid = || format!("invalid duration {whole:?}");
    let (int_digits, after_int) = split_digits(s);
    let (frac_digits, after_frac) = match after_int.strip_prefix('.') {
        Some(after_dot) => split_digits(after_dot),
        None => ("", after_int),
    };
    // Also rejects a term that starts with anything but a digit or '.'.
    if int_digits.is_empty() && frac_digits.is_empty() {
        return Err(invalid());
    }
    let unit_len = after_frac
        .bytes()
        .take_while(|b| *b != b'.' && !b.is_ascii_digit())
        .count();
    if unit_len == 0 {
        return Err(format!("missing unit in duration {whole:?}"));
    }
    // The unit ends at an ASCII byte (or the end), so this is a char boundary.
    let (unit, rest) = after_frac.split_at(unit_len);
    let unit_nanos =
        unit_nanos(unit).ok_or_else(|| format!("unknown unit {unit:?} in duration {whole:?}"))?;
    let whole_nanos = leading_int(int_digits)
        .filter(|v| *v <= (1 << 63) / unit_nanos)
        .ok_or_else(invalid)?
        * unit_nanos;
    let (frac, scale) = leading_fraction(frac_digits);
    // Float, as in Go, to stay nanosecond-exact for fractions of hours; truncates like Go.
    let frac_nanos = (frac as f64 * (unit_nanos as f64 / scale)) as u64;
    let nanos = whole_nanos + frac_nanos;
    if nanos > 1 << 63 {
        return Err(invalid());
    }
    Ok((nanos, rest))
}

fn split_digits(s: &str) -> (&str, &str) {
    s.split_at(s.bytes().take_while(u8::is_ascii_digit).count())
}

/// Go's `leadingInt`: `None` past 1<<63.
fn leading_int(digits: &str) -> Option<u64> {
    digits.bytes().try_fold(0u64, |x, b| {
        let y = x.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
        (y <= 1 << 63).then_some(y)
    })
}

/// Go's `leadingFraction`: the digits as an integer and 10^(digits used); digits that would
/// overflow are dropped, which only loses precision far below a nanosecond.
fn leading_fraction(digits: &str) -> (u64, f64) {
    let mut x: u64 = 0;
    let mut scale = 1.0;
    for b in digits.bytes() {
        match x
            .checked_mul(10)
            .and_then(|y| y.checked_add(u64::from(b - b'0')))
        {
            Some(y) if y <= 1 << 63 => {
                x = y;
                scale *= 10.0;
            }
            _ => break,
        }
    }
    (x, scale)
}

fn unit_nanos(unit: &str) -> Option<u64> {
    Some(match unit {
        "ns" => 1,
        // U+00B5 micro sign and U+03BC Greek mu, as Go accepts both.
        "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60 * 1_000_000_000,
        "h" => 3600 * 1_000_000_000,
        _ => return None,
    })
}

/// A byte size: a whole number with an optional binary suffix `K`, `M`, `G` (or `KB`, `MB`,
/// `GB`, any case): `512K` is 524288 bytes.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let digits_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(digits_end);
    if digits.is_empty() {
        return Err(format!(
            "invalid size {s:?}: expected a number such as 512K or 64M"
        ));
    }
    let shift = match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" => 10,
        "M" | "MB" => 20,
        "G" | "GB" => 30,
        _ => {
            return Err(format!(
                "invalid size {s:?}: unknown unit {unit:?} (K, M or G)"
            ))
        }
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1 << shift))
        .ok_or_else(|| format!("size {s:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        const NS: u64 = 1;
        const US: u64 = 1_000;
        const MS: u64 = 1_000_000;
        const S: u64 = 1_000_000_000;
        const M: u64 = 60 * S;
        const H: u64 = 60 * M;
        let cases: &[(&str, u64)] = &[
            ("0", 0),
            ("+0", 0),
            ("0s", 0),
            ("10ns", 10 * NS),
            ("100us", 100 * US),
            ("100\u{b5}s", 100 * US),
            ("100\u{3bc}s", 100 * US),
            ("300ms", 300 * MS),
            ("2s", 2 * S),
            ("+2s", 2 * S),
            ("1m30s", 90 * S),
            ("1.5h", 90 * M),
            (
                "1h2m3s4ms5us6ns",
                H + 2 * M + 3 * S + 4 * MS + 5 * US + 6 * NS,
            ),
            ("3h3h", 6 * H),
            (".5s", 500 * MS),
            ("1.s", S),
            ("1.0s", S),
            ("0.000000001s", 1),
            ("0.0000000019s", 1),
            ("1.000000000000000000001h", H),
            ("0100ms", 100 * MS),
            ("2562047h47m16.854775807s", i64::MAX as u64),
            ("9223372036854775807ns", i64::MAX as u64),
        ];
        for (input, nanos) in cases {
            assert_eq!(
                parse_duration(input),
                Ok(Duration::from_nanos(*nanos)),
                "{input:?}"
            );
        }
    }

    #[test]
    fn duration_errors() {
        let cases = [
            ("", "invalid duration \"\""),
            ("+", "invalid duration \"+\""),
            ("s", "invalid duration \"s\""),
            (".s", "invalid duration \".s\""),
            ("abc", "invalid duration \"abc\""),
            ("5", "missing unit in duration \"5\""),
            ("00", "missing unit in duration \"00\""),
            ("1h5", "missing unit in duration \"1h5\""),
            ("5x", "unknown unit \"x\" in duration \"5x\""),
            ("5S", "unknown unit \"S\" in duration \"5S\""),
            ("1h 30m", "unknown unit \"h \" in duration \"1h 30m\""),
            ("1e3s", "unknown unit \"e\" in duration \"1e3s\""),
            ("5 s", "unknown unit \" s\" in duration \"5 s\""),
            ("-5s", "negative duration \"-5s\""),
            ("-0", "negative duration \"-0\""),
            ("1s.", "invalid duration \"1s.\""),
            (
                "9223372036854775808ns",
                "invalid duration \"9223372036854775808ns\"",
            ),
            (
                "2562047h47m16.854775808s",
                "invalid duration \"2562047h47m16.854775808s\"",
            ),
            ("2562048h", "invalid duration \"2562048h\""),
            (
                "99999999999999999999s",
                "invalid duration \"99999999999999999999s\"",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(parse_duration(input), Err(want.to_string()), "{input:?}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("512K"), Ok(512 << 10));
        assert_eq!(parse_size("64mb"), Ok(64 << 20));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("10B"), Ok(10));
        for bad in ["", "K", "1.5M", "-1", "12X", "1 M", "99999999999999999999G"] {
            assert!(parse_size(bad).is_err(), "{bad:?}");
        }
    }
}
