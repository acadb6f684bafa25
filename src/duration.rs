//! Durations written as Terraform users write them elsewhere (`timeouts`, the AWS
//! provider): Go's syntax, e.g. `"300ms"`, `"2s"`, `"1m30s"`, `"1.5h"`; the range each
//! kind of duration attribute takes; and deadlines that no duration can overflow.

use std::time::Duration;

use tokio::time::Instant;

const DAY: Duration = Duration::from_secs(24 * 3600);
const WEEK: Duration = Duration::from_secs(7 * 24 * 3600);

/// The range one kind of duration attribute takes, checked at `terraform validate`, so
/// that no wait spins at zero or outlasts the longest deadline.
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    /// Whether zero is in the range: it means "none" (no bake, no delay).
    zero: bool,
    max: Duration,
}

/// Between two checks, measurements or traffic steps, and one check's timeout. Zero would
/// be a busy loop (and HAProxy's `inter 1ms`); a release that looks again only after more
/// than a day is not watching.
pub const INTERVAL: Bounds = Bounds {
    zero: false,
    max: DAY,
};

/// An operation's deadline: `timeouts`, the rollback action's `timeout`.
pub const TIMEOUT: Bounds = Bounds {
    zero: false,
    max: WEEK,
};

/// A span that may be none. `bake_time` and `initial_delay` wait inside one operation,
/// whose deadline (at most a week) would cut a longer wait short; `rollback_window` says
/// how recently the warm colour served, and one idle for over a week deserves the full gate.
pub const SPAN: Bounds = Bounds {
    zero: true,
    max: WEEK,
};

impl Bounds {
    /// Parses `text` and checks that it is in range; the error says what the range is.
    pub fn parse(self, text: &str) -> Result<Duration, String> {
        let d = parse(text)?;
        if d.is_zero() && !self.zero {
            Err(format!(
                "{text:?} is not above zero: give a duration {}",
                self.range()
            ))
        } else if d > self.max {
            Err(format!(
                "{text:?} is longer than {}: give a duration {}",
                format(self.max),
                self.range()
            ))
        } else {
            Ok(d)
        }
    }

    /// The range as the documentation states it: "Above zero and at most 24h."
    pub fn sentence(self) -> String {
        format!("{}.", crate::text::capitalised(&self.range()))
    }

    fn range(self) -> String {
        let max = format(self.max);
        if self.zero {
            format!("from 0s to {max}")
        } else {
            format!("above zero and at most {max}")
        }
    }
}

/// `at` plus `d`, for deadlines and wake-ups. A `d` past what a clock holds would panic
/// in `Instant + Duration`; waits are capped at a century, which is never reached.
pub fn later(at: Instant, d: Duration) -> Instant {
    const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    at + d.min(CENTURY)
}

/// Parses a Go-style duration. Negative durations and bare numbers without a unit are
/// rejected; `"0"` is allowed, as in Go. A duration too long to hold is `Duration::MAX`,
/// which every [`Bounds`] refuses with its range.
pub fn parse(text: &str) -> Result<Duration, String> {
    let invalid = || {
        format!("{text:?} is not a duration: use a number with a unit, such as \"500ms\", \"2s\", \"1m30s\" or \"1h\"")
    };
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    if text.is_empty() {
        return Err(invalid());
    }
    let mut rest = text;
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(invalid)?;
        let number: f64 = rest[..number_len].parse().map_err(|_| invalid())?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds_per_unit = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(invalid()),
        };
        total += number * seconds_per_unit;
        rest = &rest[unit_len..];
    }
    // `total` is a sum of non-negative numbers, so only its size can fail the conversion.
    Ok(Duration::try_from_secs_f64(total).unwrap_or(Duration::MAX))
}

/// Formats a duration for messages, e.g. `1m30s`, `250ms`.
pub fn format(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let frac = if !ms.is_multiple_of(1000) && h == 0 && m == 0 {
        format!(".{:03}", ms % 1000)
            .trim_end_matches('0')
            .to_string()
    } else {
        String::new()
    };
    let mut out = String::new();
    if h > 0 {
        out += &format!("{h}h");
    }
    if m > 0 {
        out += &format!("{m}m");
    }
    if s > 0 || !frac.is_empty() || out.is_empty() {
        out += &format!("{s}{frac}s");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_durations() {
        assert_eq!(parse("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("300ms"), Ok(Duration::from_millis(300)));
        assert_eq!(parse("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
        assert_eq!(parse("0s"), Ok(Duration::ZERO));
        assert_eq!(parse("1h2m3s4ms"), Ok(Duration::from_millis(3_723_004)));
    }

    #[test]
    fn rejects_what_go_rejects() {
        for bad in ["", "5", "-1s", "1x", "s", "1.2.3s", "1 s", "two seconds"] {
            let err = parse(bad).unwrap_err();
            assert!(err.contains("is not a duration"), "{bad}: {err}");
        }
    }

    #[test]
    fn a_duration_too_long_to_hold_is_the_longest() {
        assert_eq!(
            parse("9300000000000000000s"),
            Ok(Duration::from_secs(9_300_000_000_000_000_000))
        );
        assert_eq!(parse("99999999999999999999h"), Ok(Duration::MAX));
        assert_eq!(parse(&format!("{}s", "9".repeat(400))), Ok(Duration::MAX));
    }

    #[test]
    fn intervals_are_above_zero_and_at_most_a_day() {
        assert_eq!(INTERVAL.parse("1ms"), Ok(Duration::from_millis(1)));
        assert_eq!(INTERVAL.parse("24h"), Ok(DAY));
        assert_eq!(
            INTERVAL.parse("0s"),
            Err("\"0s\" is not above zero: give a duration above zero and at most 24h".into())
        );
        assert_eq!(
            INTERVAL.parse("9300000000000000000s"),
            Err("\"9300000000000000000s\" is longer than 24h: give a duration above zero and at most 24h".into())
        );
        assert!(INTERVAL
            .parse("24h0m1s")
            .unwrap_err()
            .contains("longer than 24h"));
        assert!(INTERVAL
            .parse("soon")
            .unwrap_err()
            .contains("is not a duration"));
    }

    #[test]
    fn timeouts_are_above_zero_and_at_most_a_week_spans_may_be_zero() {
        assert_eq!(TIMEOUT.parse("168h"), Ok(WEEK));
        assert!(TIMEOUT.parse("0s").unwrap_err().contains("not above zero"));
        assert!(TIMEOUT
            .parse("168h1s")
            .unwrap_err()
            .contains("longer than 168h"));
        assert_eq!(SPAN.parse("0s"), Ok(Duration::ZERO));
        assert_eq!(SPAN.parse("168h"), Ok(WEEK));
        assert_eq!(
            SPAN.parse("200h"),
            Err("\"200h\" is longer than 168h: give a duration from 0s to 168h".into())
        );
        assert_eq!(INTERVAL.sentence(), "Above zero and at most 24h.");
        assert_eq!(SPAN.sentence(), "From 0s to 168h.");
    }

    #[test]
    fn a_deadline_after_the_longest_duration_does_not_overflow() {
        let now = Instant::now();
        assert!(later(now, Duration::MAX) > later(now, WEEK));
        assert_eq!(later(now, WEEK), now + WEEK);
    }

    #[test]
    fn formats_compactly() {
        assert_eq!(format(Duration::from_millis(250)), "250ms");
        assert_eq!(format(Duration::from_secs(90)), "1m30s");
        assert_eq!(format(Duration::from_millis(2500)), "2.5s");
        assert_eq!(format(Duration::from_secs(3600)), "1h");
        assert_eq!(format(Duration::from_secs(300)), "5m");
    }
}
