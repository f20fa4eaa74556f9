//! OTLP's protobuf encoding of spans: an
//! `opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest`
//! (opentelemetry-proto v1, `trace.proto`, `common.proto`,
//! `resource.proto`), written by hand — the few messages and field
//! numbers below are all baton sends, and the encoding is protobuf's
//! wire format (varints, length-delimited fields, fixed64 times).
//!
//! ```text
//! ExportTraceServiceRequest { 1: repeated ResourceSpans }
//! ResourceSpans { 1: Resource { 1: repeated KeyValue }, 2: repeated ScopeSpans }
//! ScopeSpans    { 1: InstrumentationScope { 1: name, 2: version }, 2: repeated Span }
//! Span { 1: trace_id (16 bytes), 2: span_id (8), 3: trace_state, 4: parent_span_id,
//!        5: name, 6: kind (2 = SERVER), 7: start (fixed64 ns), 8: end (fixed64 ns),
//!        9: repeated KeyValue, 15: Status { 2: message, 3: code (2 = ERROR) },
//!        16: flags (fixed32: the W3C trace flags) }
//! KeyValue { 1: key, 2: AnyValue { 1: string | 2: bool | 3: int64 } }
//! ```

/// An attribute's value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Str(String),
    Int(i64),
    Bool(bool),
}

/// A finished span, as exported.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SpanData {
    pub trace_id: u128,
    pub span_id: u64,
    pub parent: Option<u64>,
    pub trace_state: Option<String>,
    pub name: String,
    pub start_unix_nanos: u64,
    pub end_unix_nanos: u64,
    pub attributes: Vec<(&'static str, Value)>,
    /// Status ERROR, with this message.
    pub error: Option<String>,
    pub sampled: bool,
}

/// SpanKind SERVER: baton serves the downstream's request.
const KIND_SERVER: u64 = 2;
/// Status.code ERROR.
const STATUS_ERROR: u64 = 2;

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn key(out: &mut Vec<u8>, field: u32, wire: u8) {
    varint(out, (u64::from(field) << 3) | u64::from(wire));
}

fn bytes(out: &mut Vec<u8>, field: u32, data: &[u8]) {
    key(out, field, 2);
    varint(out, data.len() as u64);
    out.extend_from_slice(data);
}

fn uint(out: &mut Vec<u8>, field: u32, v: u64) {
    key(out, field, 0);
    varint(out, v);
}

fn fixed64(out: &mut Vec<u8>, field: u32, v: u64) {
    key(out, field, 1);
    out.extend_from_slice(&v.to_le_bytes());
}

fn fixed32(out: &mut Vec<u8>, field: u32, v: u32) {
    key(out, field, 5);
    out.extend_from_slice(&v.to_le_bytes());
}

/// A nested message: `write` fills it, then it goes in length-delimited.
fn message(out: &mut Vec<u8>, field: u32, write: impl FnOnce(&mut Vec<u8>)) {
    let mut inner = Vec::new();
    write(&mut inner);
    bytes(out, field, &inner);
}

fn key_value(out: &mut Vec<u8>, field: u32, name: &str, value: &Value) {
    message(out, field, |kv| {
        bytes(kv, 1, name.as_bytes());
        message(kv, 2, |any| match value {
            Value::Str(s) => bytes(any, 1, s.as_bytes()),
            // int64: two's complement as a varint.
            Value::Int(i) => uint(any, 3, *i as u64),
            Value::Bool(b) => uint(any, 2, u64::from(*b)),
        });
    });
}

fn span(out: &mut Vec<u8>, s: &SpanData) {
    message(out, 2, |m| {
        bytes(m, 1, &s.trace_id.to_be_bytes());
        bytes(m, 2, &s.span_id.to_be_bytes());
        if let Some(state) = &s.trace_state {
            bytes(m, 3, state.as_bytes());
        }
        if let Some(parent) = s.parent {
            bytes(m, 4, &parent.to_be_bytes());
        }
        bytes(m, 5, s.name.as_bytes());
        uint(m, 6, KIND_SERVER);
        fixed64(m, 7, s.start_unix_nanos);
        fixed64(m, 8, s.end_unix_nanos);
        for (name, value) in &s.attributes {
            key_value(m, 9, name, value);
        }
        if let Some(why) = &s.error {
            message(m, 15, |status| {
                bytes(status, 2, why.as_bytes());
                uint(status, 3, STATUS_ERROR);
            });
        }
        fixed32(m, 16, u32::from(s.sampled));
    });
}

/// The export request for `spans`, under a resource named `service`.
pub(crate) fn encode(service: &str, generation: u32, spans: &[SpanData]) -> Vec<u8> {
    let mut out = Vec::with_capacity(spans.len() * 384 + 128);
    message(&mut out, 1, |rs| {
        message(rs, 1, |resource| {
            let attributes = [
                ("service.name", Value::Str(service.to_string())),
                ("telemetry.sdk.name", Value::Str("baton".into())),
                (
                    "service.version",
                    Value::Str(env!("CARGO_PKG_VERSION").into()),
                ),
                ("baton.generation", Value::Int(i64::from(generation))),
            ];
            for (name, value) in &attributes {
                key_value(resource, 1, name, value);
            }
        });
        message(rs, 2, |ss| {
            message(ss, 1, |scope| {
                bytes(scope, 1, b"baton");
                bytes(scope, 2, env!("CARGO_PKG_VERSION").as_bytes());
            });
            for s in spans {
                span(ss, s);
            }
        });
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Protobuf fields of a message: (field, wire type, payload).
    fn fields(mut data: &[u8]) -> Vec<(u64, u8, Vec<u8>)> {
        fn read_varint(data: &mut &[u8]) -> u64 {
            let mut v = 0;
            for shift in (0..64).step_by(7) {
                let b = data[0];
                *data = &data[1..];
                v |= u64::from(b & 0x7f) << shift;
                if b < 0x80 {
                    break;
                }
            }
            v
        }
        let mut out = Vec::new();
        while !data.is_empty() {
            let k = read_varint(&mut data);
            let wire = (k & 7) as u8;
            let payload = match wire {
                0 => read_varint(&mut data).to_le_bytes().to_vec(),
                1 | 5 => {
                    let n = if wire == 1 { 8 } else { 4 };
                    let (p, rest) = data.split_at(n);
                    data = rest;
                    p.to_vec()
                }
                2 => {
                    let n = read_varint(&mut data) as usize;
                    let (p, rest) = data.split_at(n);
                    data = rest;
                    p.to_vec()
                }
                w => panic!("wire type {w}"),
            };
            out.push((k >> 3, wire, payload));
        }
        out
    }

    fn field(data: &[u8], number: u64) -> Vec<Vec<u8>> {
        fields(data)
            .into_iter()
            .filter(|(n, _, _)| *n == number)
            .map(|(_, _, p)| p)
            .collect()
    }

    #[test]
    fn a_span_in_its_envelope() {
        let span = SpanData {
            trace_id: 0x0102030405060708090a0b0c0d0e0f10,
            span_id: 0x1112131415161718,
            parent: Some(0x2122232425262728),
            trace_state: Some("k=v".into()),
            name: "GET api".into(),
            start_unix_nanos: 1_000,
            end_unix_nanos: 301_000,
            attributes: vec![
                ("http.request.method", Value::Str("GET".into())),
                ("http.response.status_code", Value::Int(503)),
            ],
            error: Some("503".into()),
            sampled: true,
        };
        let request = encode("svc", 3, &[span.clone(), span]);
        let resource_spans = field(&request, 1);
        assert_eq!(resource_spans.len(), 1);
        let resource = &field(&resource_spans[0], 1)[0];
        let first_attribute = &field(resource, 1)[0];
        assert_eq!(field(first_attribute, 1)[0], b"service.name");
        assert_eq!(field(&field(first_attribute, 2)[0], 1)[0], b"svc");
        let scope_spans = &field(&resource_spans[0], 2)[0];
        let spans = field(scope_spans, 2);
        assert_eq!(spans.len(), 2);
        let s = &spans[0];
        assert_eq!(field(s, 1)[0], (1..=16).collect::<Vec<u8>>());
        assert_eq!(field(s, 2)[0], (0x11..=0x18).collect::<Vec<u8>>());
        assert_eq!(field(s, 3)[0], b"k=v");
        assert_eq!(field(s, 4)[0], (0x21..=0x28).collect::<Vec<u8>>());
        assert_eq!(field(s, 5)[0], b"GET api");
        assert_eq!(field(s, 6)[0][0], 2);
        assert_eq!(field(s, 8)[0], 301_000u64.to_le_bytes());
        let attributes = field(s, 9);
        let status_code = &field(&attributes[1], 2)[0];
        assert_eq!(field(status_code, 3)[0][..2], 503u64.to_le_bytes()[..2]);
        let status = &field(s, 15)[0];
        assert_eq!(field(status, 3)[0][0], 2);
        assert_eq!(field(s, 16)[0], 1u32.to_le_bytes());
    }
}
