//! Durations written as a number and a unit: `"250ms"`, `"30s"`, `"5m"`,
//! `"1h"`. One unit per value; fractions are not accepted (write `1500ms`).

use std::time::Duration;

use serde::Deserialize;

/// Parses `"<digits><unit>"` with unit `ms`, `s`, `m` or `h`.
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let bad =
        || format!("invalid duration {text:?}: expected e.g. \"250ms\", \"30s\", \"5m\", \"1h\"");
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let duration = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.checked_mul(60).ok_or_else(bad)?),
        "h" => Duration::from_secs(n.checked_mul(3600).ok_or_else(bad)?),
        _ => return Err(bad()),
    };
    Ok(duration)
}

/// A duration as written in the file (`"30s"`), for serde.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Text(pub Duration);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Text, D::Error> {
        let text = String::deserialize(de)?;
        parse(&text).map(Text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_unit() {
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn rejects_the_rest() {
        for bad in [
            "",
            "30",
            "s",
            "1.5s",
            "-1s",
            "10 parsecs",
            "5d",
            "99999999999999999999h",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
