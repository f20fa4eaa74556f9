//! baton's log lines, as the bench reads them from the supervisor's stderr.
//!
//! The supervisor and its workers share one stderr (the workers inherit
//! it), and with stderr a pipe tracing's fmt layer writes no ANSI:
//!
//! ```text
//! 2026-11-28T00:19:22.831955Z  INFO gen{n=1}: handed off; exiting migrated=0 lost=0
//! └ RFC 3339, UTC, µs          └ level └ spans └ message, then key=value fields
//! ```
//!
//! Each line is one `write(2)` of less than `PIPE_BUF`, so lines from the
//! supervisor and the workers interleave whole.

use std::fmt;

/// A log timestamp: microseconds since the Unix epoch, UTC. Only
/// differences between two of them mean anything to the bench.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Micros(pub i64);

impl Micros {
    /// `self - earlier`, in milliseconds.
    pub fn ms_since(self, earlier: Micros) -> f64 {
        (self.0 - earlier.0) as f64 / 1000.0
    }
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction]Z` (what tracing-subscriber
/// writes); any other offset than `Z` is refused, since baton logs UTC.
pub fn parse_rfc3339_utc(text: &str) -> Option<Micros> {
    let text = text.strip_suffix('Z')?;
    let (date, time) = text.split_once('T')?;
    let mut date_parts = date.splitn(3, '-');
    let year: i64 = number(date_parts.next()?, 4)?;
    let month: i64 = number(date_parts.next()?, 2)?;
    let day: i64 = number(date_parts.next()?, 2)?;
    let (hms, fraction) = match time.split_once('.') {
        Some((hms, fraction)) => (hms, Some(fraction)),
        None => (time, None),
    };
    let mut time_parts = hms.splitn(3, ':');
    let hour: i64 = number(time_parts.next()?, 2)?;
    let minute: i64 = number(time_parts.next()?, 2)?;
    let second: i64 = number(time_parts.next()?, 2)?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    // A leap second (`:60`) is allowed by RFC 3339; counting it as the
    // next second's start is exact enough for differences.
    if second > 60 {
        return None;
    }
    let micros = match fraction {
        None => 0,
        Some(f) if f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit()) => return None,
        // Digits past the sixth are below a microsecond: dropped.
        Some(f) => {
            let digits = &f[..f.len().min(6)];
            let value: i64 = digits.parse().ok()?;
            value * 10_i64.pow(6 - digits.len() as u32)
        }
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second;
    Some(Micros(seconds * 1_000_000 + micros))
}

/// Exactly `width` ASCII digits.
fn number(text: &str, width: usize) -> Option<i64> {
    if text.len() != width || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`, exact for every year the bench will ever see).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let shifted_month = (month + 9) % 12; // March = 0
    let day_of_year = (153 * shifted_month + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// One parsed log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub at: Micros,
    /// `INFO`, `WARN`, …
    pub level: String,
    /// The span prefix without its trailing colon, e.g.
    /// `gen{n=2}:listener{name=bench}`; empty for the supervisor's lines.
    pub spans: String,
    /// The message followed by its fields.
    pub text: String,
}

impl LogLine {
    /// `None` for a line that is not a tracing line (a panic message, say).
    pub fn parse(raw: &str) -> Option<LogLine> {
        let (stamp, rest) = raw.split_once(' ')?;
        let at = parse_rfc3339_utc(stamp)?;
        let rest = rest.trim_start();
        let (level, rest) = rest.split_once(' ')?;
        let rest = rest.trim_start();
        // A span prefix is one token (span fields here have no spaces)
        // that ends with ':' and names at least one span.
        let (spans, text) = match rest.split_once(' ') {
            Some((first, text)) if first.ends_with("}:") => {
                (first.trim_end_matches(':').to_string(), text.to_string())
            }
            _ => (String::new(), rest.to_string()),
        };
        Some(LogLine {
            at,
            level: level.to_string(),
            spans,
            text,
        })
    }

    /// The generation of the worker that wrote the line (`gen{n=N}`), or
    /// `None` for the supervisor.
    pub fn generation(&self) -> Option<u32> {
        let start = self.spans.find("gen{n=")? + "gen{n=".len();
        let len = self.spans[start..].find('}')?;
        self.spans[start..start + len].parse().ok()
    }

    /// Whether the message starts with `message`.
    pub fn says(&self, message: &str) -> bool {
        self.text.starts_with(message)
    }

    /// The value of a `key=value` field whose value has no spaces.
    pub fn field(&self, key: &str) -> Option<&str> {
        self.text.split_whitespace().find_map(|token| {
            token
                .strip_prefix(key)
                .and_then(|rest| rest.strip_prefix('='))
        })
    }

    /// [`LogLine::field`], parsed as a number.
    pub fn number(&self, key: &str) -> Option<u64> {
        self.field(key)?.parse().ok()
    }
}

impl fmt::Display for LogLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Micros(us) = self.at;
        if self.spans.is_empty() {
            write!(f, "[{us}µs] {} {}", self.level, self.text)
        } else {
            write!(f, "[{us}µs] {} {}: {}", self.level, self.spans, self.text)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tracing_timestamps() {
        // 2026-11-28T00:11:24Z is 1_795_824_684 s after the epoch.
        assert_eq!(
            parse_rfc3339_utc("2026-11-28T00:11:24.365998Z"),
            Some(Micros(1_795_824_684_365_998))
        );
        assert_eq!(parse_rfc3339_utc("1970-01-01T00:00:00Z"), Some(Micros(0)));
        assert_eq!(
            parse_rfc3339_utc("2000-03-01T00:00:00.5Z"),
            Some(Micros(951_868_800_500_000))
        );
        assert_eq!(
            parse_rfc3339_utc("2024-02-29T23:59:59.123456789Z"),
            Some(Micros(1_709_251_199_123_456))
        );
    }

    #[test]
    fn refuses_what_is_not_utc_rfc3339() {
        for bad in [
            "2026-11-28T00:11:24+01:00",
            "2026-11-28 00:11:24Z",
            "2026-13-28T00:11:24Z",
            "2026-11-28T00:11:24.Z",
            "26-11-28T00:11:24Z",
            "INFO",
        ] {
            assert_eq!(parse_rfc3339_utc(bad), None, "{bad}");
        }
    }

    #[test]
    fn splits_a_worker_line() {
        let line = LogLine::parse(
            "2026-11-28T00:19:22.831955Z  INFO gen{n=1}: handed off; exiting migrated=5000 lost=0",
        )
        .unwrap();
        assert_eq!(line.level, "INFO");
        assert_eq!(line.spans, "gen{n=1}");
        assert_eq!(line.generation(), Some(1));
        assert!(line.says("handed off; exiting"));
        assert_eq!(line.number("migrated"), Some(5000));
        assert_eq!(line.number("lost"), Some(0));
        assert_eq!(line.field("exiting"), None);
    }

    #[test]
    fn splits_nested_spans_and_supervisor_lines() {
        let line = LogLine::parse(
            "2026-11-28T00:19:22.831847Z  INFO gen{n=2}:listener{name=bench}: accepting address=127.0.0.1:45067",
        )
        .unwrap();
        assert_eq!(line.generation(), Some(2));
        assert!(line.spans.contains("listener{name=bench}"));
        assert_eq!(line.field("address"), Some("127.0.0.1:45067"));

        let line = LogLine::parse(
            "2026-11-28T00:19:22.832480Z  INFO upgrade succeeded kind=upgrade to=2 migrated=0 lost=0 ms=3",
        )
        .unwrap();
        assert_eq!(line.generation(), None);
        assert!(line.spans.is_empty());
        assert!(line.says("upgrade succeeded"));
        assert_eq!(line.number("ms"), Some(3));
    }
}
