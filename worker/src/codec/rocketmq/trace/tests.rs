//! Message trace: a real Java client's SEND_MESSAGE_V2 (fixture), and
//! responses and bodies written here in the broker's formats.

use bytes::{BufMut, BytesMut};

use super::*;
use crate::codec::Protocol;
use crate::codec::rocketmq::fixtures as fx;
use crate::codec::testkit::decode_one;

const P: Protocol = Protocol::RocketMq;

/// A JSON-header frame: `header` is the JSON text.
fn frame(header: &str, body: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    out.put_u32((4 + header.len() + body.len()) as u32);
    out.put_u32(header.len() as u32);
    out.put_slice(header.as_bytes());
    out.put_slice(body);
    out.to_vec()
}

fn response(code: i32, opaque: i32, ext: &str, body: &[u8]) -> Frame {
    let header = format!(
        "{{\"code\":{code},\"extFields\":{{{ext}}},\"flag\":1,\"language\":\"JAVA\",\"opaque\":{opaque},\"serializeTypeCurrentRPC\":\"JSON\",\"version\":453}}"
    );
    decode_one(P, &frame(&header, body))
}

fn request(code: i32, ext: &str, body: &[u8]) -> Frame {
    let header = format!(
        "{{\"code\":{code},\"extFields\":{{{ext}}},\"flag\":0,\"language\":\"JAVA\",\"opaque\":7,\"serializeTypeCurrentRPC\":\"JSON\",\"version\":453}}"
    );
    decode_one(P, &frame(&header, body))
}

/// One message in the broker's store format (magic v1 or v2).
fn stored(magic: i32, queue_id: i32, queue_offset: i64, physical: i64, props: &str) -> Vec<u8> {
    let mut m = BytesMut::new();
    m.put_i32(magic);
    m.put_i32(0); // body CRC
    m.put_i32(queue_id);
    m.put_i32(0); // flag
    m.put_i64(queue_offset);
    m.put_i64(physical);
    m.put_i32(0); // sys flag: IPv4 hosts
    m.put_i64(1_700_000_000_000);
    m.put_slice(&[10, 0, 0, 7, 0, 0, 0x9c, 0x40]); // born host
    m.put_i64(1_700_000_000_001);
    m.put_slice(&[127, 0, 0, 1, 0, 0, 0x2a, 0x9f]); // store host 127.0.0.1:10911
    m.put_i32(0); // reconsume times
    m.put_i64(0);
    m.put_i32(5);
    m.put_slice(b"hello");
    if magic == MAGIC_V1 {
        m.put_u8(5);
    } else {
        m.put_i16(5);
    }
    m.put_slice(b"Trade");
    m.put_i16(props.len() as i16);
    m.put_slice(props.as_bytes());
    let mut out = BytesMut::new();
    out.put_i32(4 + m.len() as i32);
    out.put_slice(&m);
    out.to_vec()
}

#[test]
fn a_java_send_v2_gives_one_produce_event_with_the_brokers_answer() {
    let req = decode_one(P, &fx::ROCKETMQ_JSON_SEND_V2_JAVA);
    let resp = response(
        0,
        2,
        "\"msgId\":\"7F00000100002A9F0000000000001234\",\"queueId\":\"3\",\"queueOffset\":\"42\"",
        b"",
    );
    let got = events(&req, &resp);
    assert_eq!(
        got,
        vec![MessageEvent {
            role: Role::Produce,
            topic: Some("TeZ_Test_Lng".into()),
            tags: Some("*".into()),
            keys: None,
            msg_id: Some(
                "2400DD0210080015 2B2B7D0419D6DD5E9EFC18B4AAC246212A7D0000".replace(' ', "")
            ),
            offset_msg_id: Some("7F00000100002A9F0000000000001234".into()),
            group: Some("R01_producer_123".into()),
            queue_id: Some(3),
            queue_offset: Some(42),
            code: 0,
        }]
    );
}

#[test]
fn a_failed_send_is_an_event_with_its_code() {
    let req = request(
        SEND_MESSAGE,
        "\"producerGroup\":\"pg\",\"topic\":\"T\",\"queueId\":\"1\",\"properties\":\"KEYS\\u0001k1\\u0002TAGS\\u0001a\\u0002UNIQ_KEY\\u0001U1\\u0002\"",
        b"body",
    );
    let resp = response(14, 7, "", b"");
    let got = events(&req, &resp);
    assert_eq!(got.len(), 1);
    let e = &got[0];
    assert_eq!(
        (e.role, e.code, e.topic.as_deref(), e.group.as_deref()),
        (Role::Produce, 14, Some("T"), Some("pg"))
    );
    assert_eq!(
        (e.keys.as_deref(), e.tags.as_deref(), e.msg_id.as_deref()),
        (Some("k1"), Some("a"), Some("U1"))
    );
    assert_eq!(
        (e.queue_id, e.queue_offset, e.offset_msg_id.as_deref()),
        (Some(1), None, None)
    );
}

#[test]
fn a_batch_gives_an_event_per_message_with_its_offset_id() {
    let mut body = BytesMut::new();
    for (i, key) in ["b1", "b2"].iter().enumerate() {
        let props = format!("KEYS\u{1}{key}\u{2}UNIQ_KEY\u{1}U{i}\u{2}");
        let mut m = BytesMut::new();
        m.put_i32(0); // magic
        m.put_i32(0); // crc
        m.put_i32(0); // flag
        m.put_i32(3);
        m.put_slice(b"abc");
        m.put_i16(props.len() as i16);
        m.put_slice(props.as_bytes());
        body.put_i32(4 + m.len() as i32);
        body.put_slice(&m);
    }
    let req = request(
        SEND_BATCH_MESSAGE,
        "\"a\":\"pg\",\"b\":\"T\",\"e\":\"0\"",
        &body,
    );
    let resp = response(
        0,
        7,
        "\"msgId\":\"AA,BB\",\"queueId\":\"2\",\"queueOffset\":\"10\"",
        b"",
    );
    let got = events(&req, &resp);
    let summary: Vec<_> = got
        .iter()
        .map(|e| {
            (
                e.keys.as_deref(),
                e.msg_id.as_deref(),
                e.offset_msg_id.as_deref(),
                e.queue_offset,
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (Some("b1"), Some("U0"), Some("AA"), Some(10)),
            (Some("b2"), Some("U1"), Some("BB"), Some(11)),
        ]
    );
    assert!(
        got.iter()
            .all(|e| e.topic.as_deref() == Some("T") && e.queue_id == Some(2))
    );
}

#[test]
fn a_pull_gives_an_event_per_stored_message_in_either_magic() {
    let req = request(
        PULL_MESSAGE,
        "\"consumerGroup\":\"cg\",\"topic\":\"Trade\",\"queueId\":\"1\"",
        b"",
    );
    let mut body = stored(
        MAGIC_V1,
        1,
        5,
        0x1234,
        "KEYS\u{1}k5\u{2}UNIQ_KEY\u{1}U5\u{2}TAGS\u{1}t\u{2}",
    );
    body.extend(stored(MAGIC_V2, 1, 6, 0x1300, "KEYS\u{1}k6\u{2}"));
    let resp = response(0, 7, "\"nextBeginOffset\":\"7\"", &body);
    let got = events(&req, &resp);
    assert_eq!(got.len(), 2);
    assert_eq!(
        got[0],
        MessageEvent {
            role: Role::Consume,
            topic: Some("Trade".into()),
            tags: Some("t".into()),
            keys: Some("k5".into()),
            msg_id: Some("U5".into()),
            offset_msg_id: Some("7F00000100002A9F0000000000001234".into()),
            group: Some("cg".into()),
            queue_id: Some(1),
            queue_offset: Some(5),
            code: 0,
        }
    );
    assert_eq!(
        (
            got[1].keys.as_deref(),
            got[1].queue_offset,
            got[1].msg_id.as_deref()
        ),
        (Some("k6"), Some(6), None)
    );
    // A lite pull consumer's LITE_PULL_MESSAGE reads the same.
    let lite = request(
        LITE_PULL_MESSAGE,
        "\"consumerGroup\":\"cg\",\"topic\":\"Trade\",\"queueId\":\"1\"",
        b"",
    );
    assert_eq!(events(&lite, &resp), got);
}

#[test]
fn a_pull_not_found_or_a_broken_body_gives_what_parses() {
    let req = request(PULL_MESSAGE, "\"consumerGroup\":\"cg\"", b"");
    assert!(events(&req, &response(19, 7, "", b"")).is_empty());
    let mut body = stored(MAGIC_V2, 0, 1, 1, "");
    body.extend_from_slice(&stored(MAGIC_V2, 0, 2, 2, "")[..30]);
    assert_eq!(events(&req, &response(0, 7, "", &body)).len(), 1);
    // Not a message-carrying request.
    let heartbeat = request(34, "", b"");
    assert!(events(&heartbeat, &response(0, 7, "", b"")).is_empty());
}

proptest::proptest! {
    /// Any bytes as a pull body: no panic.
    #[test]
    fn any_pull_body_is_read_without_panic(body in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
        let _ = stored_messages(&body);
        let _ = batch_properties(&body);
    }
}

/// A request's trace context is looked for in its ext fields and, for a
/// single-message send, in its message's properties (where OpenTelemetry's
/// RocketMQ instrumentation writes `traceparent`); a pull has no
/// properties to look in.
#[test]
fn trace_context_fields_are_the_ext_fields_then_the_properties() {
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let v2 = request(
        SEND_MESSAGE_V2,
        &format!(
            "\"a\":\"PG\",\"b\":\"Trade\",\"i\":\"TAGS\\u0001t\\u0002traceparent\\u0001{tp}\\u0002\""
        ),
        b"m",
    );
    let fields = context_fields(&v2);
    assert!(fields.contains(&("b".into(), "Trade".into())), "{fields:?}");
    assert!(
        fields.contains(&("traceparent".into(), tp.into())),
        "{fields:?}"
    );
    assert!(fields.contains(&("TAGS".into(), "t".into())), "{fields:?}");
    let v1 = request(
        SEND_MESSAGE,
        &format!("\"topic\":\"Trade\",\"properties\":\"traceparent\\u0001{tp}\\u0002\""),
        b"m",
    );
    assert!(context_fields(&v1).contains(&("traceparent".into(), tp.into())));
    // A pull's `i`-like fields are not properties.
    let pull = request(
        PULL_MESSAGE,
        "\"topic\":\"Trade\",\"i\":\"x\\u0001y\\u0002\"",
        b"",
    );
    assert_eq!(
        context_fields(&pull),
        vec![
            ("topic".to_string(), "Trade".to_string()),
            ("i".to_string(), "x\u{1}y\u{2}".to_string())
        ]
    );
    assert_eq!(code_name(SEND_MESSAGE_V2), "SEND_MESSAGE_V2");
    assert_eq!(code_name(34), "HEART_BEAT");
    assert_eq!(code_name(9999), "9999");
}
