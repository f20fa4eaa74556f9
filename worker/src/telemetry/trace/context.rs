//! Trace context on the wire: W3C Trace Context (`traceparent`,
//! `tracestate`) and Zipkin's B3 (the single `b3` header and the
//! `X-B3-*` headers) — read from a request, and written for the request
//! that goes on with baton's span as the parent.
//!
//! Read in that order of preference: a valid `traceparent`, else `b3`,
//! else `X-B3-TraceId` with `X-B3-SpanId`; an invalid header is ignored
//! as if absent (W3C §3.2.2.3: start a new trace). A B3 context given
//! only as a sampling decision (`b3: 0`, `X-B3-Sampled: 1` without ids)
//! starts a new trace with that decision.
//!
//! Written: `traceparent` always (version 00, baton's span id, the
//! sampled flag); `tracestate` passes on untouched; when the request
//! came with B3, its B3 headers are rewritten in the same form (64-bit
//! trace ids stay 64-bit) so that a B3-only upstream continues too.

/// Where a context came from, which decides how it is written back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    W3c,
    B3Single,
    B3Multi,
}

/// A context read from a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Incoming {
    pub trace_id: u128,
    /// The caller's span; `None` for a B3 decision without ids.
    pub parent: Option<u64>,
    /// The caller's decision; `None` when it left it to baton (B3 without
    /// a sampling state).
    pub sampled: Option<bool>,
    pub format: Format,
    /// A B3 trace id written with 16 hex digits.
    pub short_id: bool,
}

fn hex_u128(text: &str, digits: &[usize]) -> Option<u128> {
    if !digits.contains(&text.len()) || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u128::from_str_radix(text, 16).ok().filter(|v| *v != 0)
}

fn hex_u64(text: &str) -> Option<u64> {
    if text.len() != 16 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(text, 16).ok().filter(|v| *v != 0)
}

/// `traceparent` (W3C Trace Context §3.2): `00-<trace>-<parent>-<flags>`;
/// a later version may add fields after these (read as version 00),
/// version `ff` is invalid; ids are lowercase hex, not all zero.
pub(crate) fn parse_traceparent(value: &str) -> Option<Incoming> {
    let value = value.trim();
    let mut parts = value.splitn(5, '-');
    let version = parts.next()?;
    let (trace, parent, flags) = (parts.next()?, parts.next()?, parts.next()?);
    let rest = parts.next();
    if version.len() != 2
        || version == "ff"
        || !version
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        || (version == "00" && rest.is_some())
        || flags.len() != 2
        || [trace, parent, flags]
            .iter()
            .any(|p| p.bytes().any(|b| b.is_ascii_uppercase()))
    {
        return None;
    }
    let flags = u8::from_str_radix(flags, 16).ok()?;
    Some(Incoming {
        trace_id: hex_u128(trace, &[32])?,
        parent: Some(hex_u64(parent)?),
        sampled: Some(flags & 1 == 1),
        format: Format::W3c,
        short_id: false,
    })
}

/// B3's sampling state: `1`, `d` (debug: sampled) or `0`; the multi form
/// also `true`/`false`.
fn b3_sampled(value: &str) -> Option<bool> {
    match value.trim() {
        "1" | "d" | "true" => Some(true),
        "0" | "false" => Some(false),
        _ => None,
    }
}

/// The single `b3` header: `<trace>-<span>[-<state>[-<parent>]]`, or a
/// state alone.
pub(crate) fn parse_b3(value: &str) -> Option<Incoming> {
    let value = value.trim();
    let parts: Vec<&str> = value.split('-').collect();
    if parts.len() == 1 {
        let sampled = b3_sampled(parts[0])?;
        return Some(Incoming {
            trace_id: 0,
            parent: None,
            sampled: Some(sampled),
            format: Format::B3Single,
            short_id: false,
        });
    }
    if parts.len() > 4 {
        return None;
    }
    let sampled = match parts.get(2) {
        Some(state) => Some(b3_sampled(state)?),
        None => None,
    };
    if let Some(parent) = parts.get(3) {
        hex_u64(parent)?;
    }
    Some(Incoming {
        trace_id: hex_u128(parts[0], &[16, 32])?,
        parent: Some(hex_u64(parts[1])?),
        sampled,
        format: Format::B3Single,
        short_id: parts[0].len() == 16,
    })
}

/// The `X-B3-*` headers (`header` reads one by name).
pub(crate) fn parse_b3_multi<'a>(header: impl Fn(&str) -> Option<&'a str>) -> Option<Incoming> {
    let sampled = match header("x-b3-flags").map(str::trim) {
        Some("1") => Some(true),
        _ => header("x-b3-sampled").and_then(b3_sampled),
    };
    match (header("x-b3-traceid"), header("x-b3-spanid")) {
        (Some(trace), Some(span)) => {
            let trace = trace.trim();
            Some(Incoming {
                trace_id: hex_u128(trace, &[16, 32])?,
                parent: Some(hex_u64(span.trim())?),
                sampled,
                format: Format::B3Multi,
                short_id: trace.len() == 16,
            })
        }
        _ => sampled.map(|sampled| Incoming {
            trace_id: 0,
            parent: None,
            sampled: Some(sampled),
            format: Format::B3Multi,
            short_id: false,
        }),
    }
}

/// The `traceparent` of a request whose parent is `span`.
pub(crate) fn traceparent(trace_id: u128, span: u64, sampled: bool) -> String {
    format!("00-{trace_id:032x}-{span:016x}-{:02x}", u8::from(sampled))
}

/// A trace id as B3 writes it (16 digits when it came that way).
pub(crate) fn b3_trace_id(trace_id: u128, short: bool) -> String {
    if short {
        format!("{:016x}", trace_id as u64)
    } else {
        format!("{trace_id:032x}")
    }
}

/// The single `b3` header of a request whose parent is `span`.
pub(crate) fn b3(trace_id: u128, short: bool, span: u64, sampled: bool) -> String {
    format!(
        "{}-{span:016x}-{}",
        b3_trace_id(trace_id, short),
        u8::from(sampled)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACE: u128 = 0x4bf92f3577b34da6a3ce929d0e0e4736;

    #[test]
    fn traceparent_round_trip() {
        let value = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let ctx = parse_traceparent(value).unwrap();
        assert_eq!(ctx.trace_id, TRACE);
        assert_eq!(ctx.parent, Some(0x00f067aa0ba902b7));
        assert_eq!(ctx.sampled, Some(true));
        assert_eq!(traceparent(TRACE, 0x00f067aa0ba902b7, true), value);
        let unsampled = parse_traceparent(&value.replace("-01", "-00")).unwrap();
        assert_eq!(unsampled.sampled, Some(false));
        // A later version may carry more fields.
        assert!(parse_traceparent(&format!("01{}-extra", &value[2..])).is_some());
    }

    #[test]
    fn traceparent_refusals() {
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        for bad in [
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "",
        ] {
            assert_eq!(parse_traceparent(bad), None, "{bad}");
        }
        assert!(parse_traceparent(good).is_some());
    }

    #[test]
    fn b3_single_forms() {
        let ctx = parse_b3("80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90")
            .unwrap();
        assert_eq!(ctx.trace_id, 0x80f198ee56343ba864fe8b2a57d3eff7);
        assert_eq!(ctx.parent, Some(0xe457b5a2e4d86bd1));
        assert_eq!(ctx.sampled, Some(true));
        let short = parse_b3("64fe8b2a57d3eff7-e457b5a2e4d86bd1").unwrap();
        assert!(short.short_id);
        assert_eq!(short.sampled, None);
        assert_eq!(
            b3(short.trace_id, true, 1, false),
            "64fe8b2a57d3eff7-0000000000000001-0"
        );
        let decision = parse_b3("0").unwrap();
        assert_eq!((decision.parent, decision.sampled), (None, Some(false)));
        assert_eq!(parse_b3("d").unwrap().sampled, Some(true));
        for bad in [
            "x",
            "64fe8b2a57d3eff7",
            "64fe8b2a57d3eff7-e457b5a2e4d86bd1-2",
        ] {
            assert_eq!(parse_b3(bad), None, "{bad}");
        }
    }

    #[test]
    fn b3_multi_forms() {
        let headers = [
            ("x-b3-traceid", "463ac35c9f6413ad48485a3953bb6124"),
            ("x-b3-spanid", "a2fb4a1d1a96d312"),
            ("x-b3-sampled", "1"),
        ];
        let get = |name: &str| headers.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
        let ctx = parse_b3_multi(get).unwrap();
        assert_eq!(ctx.trace_id, 0x463ac35c9f6413ad48485a3953bb6124);
        assert_eq!(ctx.parent, Some(0xa2fb4a1d1a96d312));
        assert_eq!(ctx.sampled, Some(true));
        let flags = |name: &str| (name == "x-b3-flags").then_some("1");
        assert_eq!(parse_b3_multi(flags).unwrap().sampled, Some(true));
        assert_eq!(parse_b3_multi(|_| None), None);
    }
}
