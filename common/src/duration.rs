//! One duration syntax for every flag and config key: Go's `time.ParseDuration`
//! (what Hubble's flags and Kubernetes' duration strings use: `1h30m`, `500ms`,
//! `1.5s`, `8760h`), plus a bare number meaning seconds, which earlier Sightline
//! flags accepted.

use std::time::Duration;

/// Why a duration did not parse; the text names the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {input:?}: {reason} (examples: 500ms, 2s, 1m30s, 8760h)")]
pub struct DurationError {
    input: String,
    reason: &'static str,
}

const UNITS: [(&str, f64); 8] = [
    ("ns", 1e-9),
    ("us", 1e-6),
    ("µs", 1e-6),
    ("μs", 1e-6),
    ("ms", 1e-3),
    ("s", 1.0),
    ("m", 60.0),
    ("h", 3600.0),
];

/// Parses `text` as a non-negative duration.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let input = text.trim();
    let fail = |reason| DurationError {
        input: input.to_owned(),
        reason,
    };
    if input.is_empty() {
        return Err(fail("empty"));
    }
    if input.starts_with('-') {
        return Err(fail("negative"));
    }
    let body = input.strip_prefix('+').unwrap_or(input);
    if body.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        let seconds: f64 = body.parse().map_err(|_| fail("not a number"))?;
        return Duration::try_from_secs_f64(seconds).map_err(|_| fail("out of range"));
    }
    let mut rest = body;
    let mut total = 0.0_f64;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .ok_or_else(|| fail("a number without a unit"))?;
        if number_len == 0 {
            return Err(fail("expected a number"));
        }
        let value: f64 = rest[..number_len].parse().map_err(|_| fail("not a number"))?;
        rest = &rest[number_len..];
        let (unit, scale) = UNITS
            .iter()
            // "ms" before "m", "µs" before nothing: the longest unit that matches.
            .filter(|(unit, _)| rest.starts_with(unit))
            .max_by_key(|(unit, _)| unit.len())
            .ok_or_else(|| fail("unknown unit (use ns, us, ms, s, m or h)"))?;
        total += value * scale;
        rest = &rest[unit.len()..];
    }
    Duration::try_from_secs_f64(total).map_err(|_| fail("out of range"))
}

/// Prints a duration the way [`parse_duration`] reads it back, Go style (`1h30m0s`
/// becomes `1h30m`; sub-second values in ms).
pub fn format_duration(duration: Duration) -> String {
    let total = duration.as_secs();
    let nanos = duration.subsec_nanos();
    if total == 0 {
        return match nanos {
            0 => "0s".to_owned(),
            n if n % 1_000_000 == 0 => format!("{}ms", n / 1_000_000),
            n if n % 1_000 == 0 => format!("{}us", n / 1_000),
            n => format!("{n}ns"),
        };
    }
    let (hours, minutes, seconds) = (total / 3600, total / 60 % 60, total % 60);
    let mut out = String::new();
    if hours > 0 {
        out.push_str(&format!("{hours}h"));
    }
    if minutes > 0 {
        out.push_str(&format!("{minutes}m"));
    }
    match (seconds, nanos) {
        (0, 0) => {}
        (s, 0) => out.push_str(&format!("{s}s")),
        (s, n) => out.push_str(&format!("{}s", format!("{s}.{n:09}").trim_end_matches('0'))),
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn go_syntax_and_bare_seconds() {
        let ok = |text: &str| parse_duration(text).unwrap();
        assert_eq!(ok("1s"), Duration::from_secs(1));
        assert_eq!(ok("250ms"), Duration::from_millis(250));
        assert_eq!(ok("1500us"), Duration::from_micros(1500));
        assert_eq!(ok("1µs"), Duration::from_micros(1));
        assert_eq!(ok("2m"), Duration::from_secs(120));
        assert_eq!(ok("1h30m"), Duration::from_secs(5400));
        assert_eq!(ok("8760h"), Duration::from_secs(8760 * 3600));
        assert_eq!(ok("1.5s"), Duration::from_millis(1500));
        assert_eq!(ok("2"), Duration::from_secs(2));
        assert_eq!(ok("0"), Duration::ZERO);
        assert_eq!(ok(" 3s "), Duration::from_secs(3));
    }

    #[test]
    fn errors_name_the_input_and_the_problem() {
        for (text, reason) in [
            ("", "empty"),
            ("-1s", "negative"),
            ("1 fortnight", "unknown unit"),
            ("5d", "unknown unit"),
            ("s", "expected a number"),
            ("1h30", "without a unit"),
            ("1..2s", "not a number"),
        ] {
            let error = parse_duration(text).unwrap_err().to_string();
            assert!(error.contains(reason), "{text:?}: {error}");
            assert!(error.contains(&format!("{:?}", text.trim())), "{error}");
        }
    }

    #[test]
    fn formatting_round_trips() {
        for text in ["0s", "250ms", "1s", "1m30s", "1h", "8760h", "1h0m1s", "1.5s", "3us"] {
            let parsed = parse_duration(text).unwrap();
            assert_eq!(parse_duration(&format_duration(parsed)).unwrap(), parsed, "{text}");
        }
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
    }
}
