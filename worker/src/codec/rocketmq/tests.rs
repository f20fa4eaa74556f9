//! RocketMQ remoting codec tests. Fixtures and their sources:
//! [`super::fixtures`].

use bytes::{BufMut, BytesMut};
use proptest::prelude::*;

use super::fixtures as fx;
use super::*;
use crate::codec::testkit::*;

const P: Protocol = Protocol::RocketMq;

/// The JSON header text of a frame.
fn header_text(frame: &[u8]) -> String {
    let len = (u32::from_be_bytes(frame[4..8].try_into().unwrap()) & 0xff_ffff) as usize;
    String::from_utf8_lossy(&frame[8..8 + len]).into_owned()
}

#[test]
fn java_json_request_and_response() {
    // NewLife.RocketMQ CommandTests.cs GetRouteInfo_v520_Java.
    let f = assert_framing(P, &fx::ROCKETMQ_JSON_GET_ROUTE);
    assert_eq!(f.kind(), FrameKind::Request);
    assert!(f.expects_response());
    assert_eq!(f.request_id(), RequestId(0));
    assert_eq!(f.attributes().code, Some(105));
    assert_eq!(f.attributes().topic.as_deref(), Some("TeZ_Test_Lng"));
    assert_lossless(P, &fx::ROCKETMQ_JSON_GET_ROUTE);

    // DecodeRouteInfo_v520_Java: the broker's answer, with a JSON body.
    let f = assert_framing(P, &fx::ROCKETMQ_JSON_ROUTE_RESPONSE);
    assert_eq!(f.kind(), FrameKind::Response);
    assert_eq!(f.status(), Some(code::SUCCESS));
    assert_eq!(f.request_id(), RequestId(0));
    assert_eq!(f.attributes(), &Attributes::default());
}

#[test]
fn send_message_v2_topic_is_the_short_key_b() {
    let f = assert_framing(P, &fx::ROCKETMQ_JSON_SEND_V2_JAVA);
    assert_eq!(f.attributes().code, Some(310));
    assert_eq!(f.request_id(), RequestId(2));
    assert_eq!(f.attributes().topic.as_deref(), Some("TeZ_Test_Lng"));
    assert_eq!(f.attributes().header("a"), Some("R01_producer_123"));
    // `\u0001` escapes are decoded.
    let props = f.attributes().header("i").unwrap();
    assert!(props.starts_with("UNIQ_KEY\u{1}2400DD"), "{props:?}");
    assert_eq!(f.attributes().headers.len(), 13);
}

#[test]
fn dotnet_client_quirks_are_accepted() {
    // Raw 0x01/0x02 inside a JSON string (DecodeJson2).
    let f = assert_framing(P, &fx::ROCKETMQ_JSON_SEND_V2_DOTNET_RAW_CONTROL);
    assert_eq!(f.request_id(), RequestId(1576));
    assert_eq!(f.attributes().topic.as_deref(), Some("IOC_INS_PARSE_TOPIC"));
    assert_eq!(
        f.attributes().header("i"),
        Some("TAGS\u{1}T0200\u{2}KEYS\u{1}0a0745cd1693459822560b363ef734\u{2}WAIT\u{1}True\u{2}")
    );
    // PascalCase keys (SendMessageV2_v520_Dotnet2).
    let f = assert_framing(P, &fx::ROCKETMQ_JSON_SEND_V2_DOTNET_PASCAL);
    assert_eq!(f.request_id(), RequestId(1));
    assert_eq!(f.attributes().code, Some(310));
    assert_eq!(f.attributes().topic.as_deref(), Some("TeZ_Test_Lng"));
}

#[test]
fn heart_beat_is_a_request_for_the_broker_not_a_transport_heartbeat() {
    let f = assert_framing(P, &fx::ROCKETMQ_JSON_HEART_BEAT);
    assert_eq!(f.kind(), FrameKind::Request);
    assert_eq!(f.attributes().code, Some(34));
    assert_eq!(f.attributes().topic, None);
    assert!(codec(P).heartbeat_reply(&f).is_none());
    assert!(codec(P).heartbeat(RequestId(1)).is_none());
}

#[test]
fn binary_header_fixtures() {
    // DecodeRocketMQ / DecodeRocketMQ2.
    let f = assert_framing(P, &fx::ROCKETMQ_BINARY_RESPONSE);
    assert_eq!(f.kind(), FrameKind::Response);
    assert_eq!(f.request_id(), RequestId(1575));
    assert_eq!(f.status(), Some(0));
    let f = assert_framing(P, &fx::ROCKETMQ_BINARY_RESPONSE_EXT);
    assert_eq!(f.request_id(), RequestId(1576));
    assert_lossless(P, &fx::ROCKETMQ_BINARY_RESPONSE_EXT);
    // Built from RocketMQSerializableTest's layout.
    let f = assert_framing(P, &fx::ROCKETMQ_BINARY_REQUEST);
    assert_eq!(f.kind(), FrameKind::Request);
    assert_eq!(f.request_id(), RequestId(7));
    assert_eq!(f.attributes().code, Some(103));
    assert_eq!(f.attributes().headers, vec![("key".into(), "value".into())]);
    assert_eq!(f.attributes().topic, None);
}

#[test]
fn binary_request_id_rewrites_in_place() {
    let back = assert_id_rewrite(P, &fx::ROCKETMQ_BINARY_REQUEST, 0x8000_0001);
    assert_eq!(&back.as_bytes()[13..17], &[0x80, 0, 0, 1]);
    assert_eq!(&back.as_bytes()[17..], &fx::ROCKETMQ_BINARY_REQUEST[17..]);
}

#[test]
fn json_request_id_rewrite_splices_the_decimal_and_fixes_both_lengths() {
    let original = header_text(&fx::ROCKETMQ_JSON_GET_ROUTE);
    for (id, text) in [
        (7u64, "7"),
        (123_456, "123456"),
        (u64::from(u32::MAX), "-1"),
        (0x8000_0000, "-2147483648"),
        (0, "0"),
    ] {
        let back = assert_id_rewrite(P, &fx::ROCKETMQ_JSON_GET_ROUTE, id);
        let bytes = back.as_bytes();
        let header = header_text(bytes);
        assert_eq!(
            header,
            original.replace("\"opaque\":0", &format!("\"opaque\":{text}"))
        );
        let length = u32::from_be_bytes(bytes[0..4].try_into().unwrap()) as usize;
        assert_eq!(length + 4, bytes.len());
        assert_eq!(bytes[4], 0, "serialize type kept");
    }
    // Rewriting twice tracks the moved digits.
    let mut f = decode_one(P, &fx::ROCKETMQ_JSON_SEND_V2_JAVA);
    f.set_request_id(RequestId(1_000_000)).unwrap();
    f.set_request_id(RequestId(3)).unwrap();
    let mut expect = fx::ROCKETMQ_JSON_SEND_V2_JAVA.to_vec();
    let at = expect
        .windows(10)
        .position(|w| w == b"\"opaque\":2")
        .unwrap();
    expect[at + 9] = b'3';
    assert_eq!(f.as_bytes(), &expect[..]);
    let back = decode_one(P, f.as_bytes());
    assert_eq!(back.request_id(), RequestId(3));
    assert_eq!(
        back.attributes(),
        decode_one(P, &fx::ROCKETMQ_JSON_SEND_V2_JAVA).attributes()
    );
    assert!(f.set_request_id(RequestId(1 << 32)).is_err());
}

#[test]
fn hijack_answers_in_the_requests_serialisation() {
    let c = codec(P);
    let json_req = decode_one(P, &fx::ROCKETMQ_JSON_SEND_V2_JAVA);
    let h = c.hijack(&json_req, ErrorKind::Timeout);
    assert_eq!(
        header_text(h.as_bytes()),
        r#"{"code":2,"flag":1,"language":"JAVA","opaque":2,"remark":"baton: upstream timeout","serializeTypeCurrentRPC":"JSON","version":453}"#
    );
    let back = assert_framing(P, h.as_bytes());
    assert_eq!(back.kind(), FrameKind::Response);
    assert_eq!(back.status(), Some(code::SYSTEM_BUSY));
    assert_eq!(back.request_id(), RequestId(2));
    // The hijack frame's own id can be rewritten too.
    assert_id_rewrite(P, h.as_bytes(), 99_999);

    let bin_req = decode_one(P, &fx::ROCKETMQ_BINARY_REQUEST);
    for (kind, code) in [
        (ErrorKind::Timeout, 2),
        (ErrorKind::NoRoute, 14),
        (ErrorKind::Unavailable, 14),
        (ErrorKind::Overloaded, 2),
        (ErrorKind::BadRequest, 1),
        (ErrorKind::BadResponse, 1),
        (ErrorKind::Internal, 1),
    ] {
        let h = c.hijack(&bin_req, kind);
        let bytes = h.as_bytes();
        assert_eq!(bytes[4], 1, "binary header");
        let back = decode_one(P, bytes);
        assert_eq!(back.status(), Some(code), "{kind:?}");
        assert_eq!(back.request_id(), RequestId(7));
        // code, JAVA, version 2333, opaque 7, flag 1, then the remark.
        assert_eq!(
            &bytes[8..21],
            &[0, code as u8, 0, 0x09, 0x1d, 0, 0, 0, 7, 0, 0, 0, 1]
        );
        let remark_len = u32::from_be_bytes(bytes[21..25].try_into().unwrap()) as usize;
        assert_eq!(&bytes[25..25 + remark_len], kind.message().as_bytes());
    }
}

#[test]
fn oneway_flag() {
    let f = decode_one(
        P,
        &json_frame(r#"{"code":10,"flag":2,"opaque":5}"#, b"body"),
    );
    assert_eq!(f.kind(), FrameKind::Oneway);
    assert!(!f.expects_response());
    assert_eq!(f.attributes().code, Some(10));
}

#[test]
fn malformed_input_is_an_error_or_incomplete_never_a_panic() {
    assert_incomplete(P, &[]);
    assert_incomplete(P, &[0, 0, 0]);
    assert_incomplete(P, &fx::ROCKETMQ_BINARY_REQUEST[..7]);
    assert_incomplete(P, &fx::ROCKETMQ_BINARY_REQUEST[..55]);
    let bad = |b: &[u8]| decode_err(P, b);
    assert!(
        matches!(bad(&[0x80, 0, 0, 0]), CodecError::Malformed { .. }),
        "negative length"
    );
    assert!(
        matches!(bad(&[0, 0, 0, 3]), CodecError::Malformed { .. }),
        "length < 4"
    );
    // An absurd length is refused from the first four bytes.
    assert!(matches!(
        bad(&[0x7f, 0xff, 0xff, 0xff]),
        CodecError::FrameTooLarge { .. }
    ));
    assert!(matches!(
        bad(&[0, 0, 0, 8, 2, 0, 0, 4]),
        CodecError::Unsupported {
            what: "serialize type",
            value: 2,
            ..
        }
    ));
    assert!(
        matches!(bad(&[0, 0, 0, 8, 0, 0, 0, 0]), CodecError::Malformed { .. }),
        "header length 0"
    );
    assert!(
        matches!(bad(&[0, 0, 0, 8, 0, 0, 0, 5]), CodecError::Malformed { .. }),
        "header past frame"
    );
    for header in [
        r#"{"code":1"#,
        r#"{"code":1,"flag":0}"#,
        "[]",
        r#"{"opaque":"x"}"#,
    ] {
        assert!(
            matches!(bad(&json_frame(header, b"")), CodecError::Malformed { .. }),
            "{header}"
        );
    }
    // Binary: truncated fixed fields, remark and ext past the header, a
    // negative ext key length.
    let mut short = binary_frame(&Spec::default());
    short[7] = 20;
    short[3] = 24;
    short.truncate(28);
    assert!(matches!(bad(&short), CodecError::Malformed { .. }));
    let spec = Spec {
        remark: Some("r".into()),
        ..Spec::default()
    };
    let mut remark_past = binary_frame(&spec);
    remark_past[8 + 13 + 3] = 200;
    assert!(matches!(bad(&remark_past), CodecError::Malformed { .. }));
    let spec = Spec {
        ext: vec![("k".into(), "v".into())],
        ..Spec::default()
    };
    let mut neg_key = binary_frame(&spec);
    neg_key[8 + 21] = 0xff;
    assert!(matches!(bad(&neg_key), CodecError::Malformed { .. }));
    // Negative remark length means "absent", as in RocketMQSerializable.
    let mut neg_remark = binary_frame(&Spec::default());
    neg_remark[8 + 13..8 + 17].copy_from_slice(&(-5i32).to_be_bytes());
    assert_eq!(decode_one(P, &neg_remark).kind(), FrameKind::Request);
}

fn json_frame(header: &str, body: &[u8]) -> Vec<u8> {
    let mut b = BytesMut::new();
    b.put_u32((4 + header.len() + body.len()) as u32);
    b.put_u32(header.len() as u32);
    b.extend_from_slice(header.as_bytes());
    b.extend_from_slice(body);
    b.to_vec()
}

#[derive(Debug, Clone, Default)]
struct Spec {
    code: i16,
    version: i16,
    opaque: i32,
    flag: i32,
    remark: Option<String>,
    ext: Vec<(String, String)>,
    body: Vec<u8>,
    json_spacing: bool,
}

fn binary_frame(s: &Spec) -> Vec<u8> {
    let mut h = BytesMut::new();
    h.put_i16(s.code);
    h.put_u8(0);
    h.put_i16(s.version);
    h.put_i32(s.opaque);
    h.put_i32(s.flag);
    match &s.remark {
        Some(r) => {
            h.put_i32(r.len() as i32);
            h.extend_from_slice(r.as_bytes());
        }
        None => h.put_i32(0),
    }
    let mut ext = BytesMut::new();
    for (k, v) in &s.ext {
        ext.put_i16(k.len() as i16);
        ext.extend_from_slice(k.as_bytes());
        ext.put_i32(v.len() as i32);
        ext.extend_from_slice(v.as_bytes());
    }
    h.put_i32(ext.len() as i32);
    h.extend_from_slice(&ext);
    let mut b = BytesMut::new();
    b.put_u32((4 + h.len() + s.body.len()) as u32);
    b.put_u32(1 << 24 | h.len() as u32);
    b.extend_from_slice(&h);
    b.extend_from_slice(&s.body);
    b.to_vec()
}

fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json_header(s: &Spec) -> String {
    let sp = if s.json_spacing { " " } else { "" };
    let mut fields = vec![
        format!("\"code\":{sp}{}", s.code),
        format!("\"flag\":{sp}{}", s.flag),
        format!("\"language\":{sp}\"JAVA\""),
        format!("\"opaque\":{sp}{}", s.opaque),
        format!("\"version\":{sp}{}", s.version),
    ];
    if let Some(r) = &s.remark {
        fields.push(format!("\"remark\":{sp}{}", json_string(r)));
    }
    if !s.ext.is_empty() {
        let ext: Vec<String> = s
            .ext
            .iter()
            .map(|(k, v)| format!("{}:{sp}{}", json_string(k), json_string(v)))
            .collect();
        fields.insert(1, format!("\"extFields\":{sp}{{{}}}", ext.join(",")));
    }
    format!("{{{sp}{}{sp}}}", fields.join(&format!(",{sp}")))
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        any::<i16>(),
        any::<i16>(),
        any::<i32>(),
        0i32..4,
        proptest::option::of(".{0,20}"),
        proptest::collection::vec(("[a-zA-Z]{0,8}", ".{0,16}"), 0..5),
        proptest::collection::vec(any::<u8>(), 0..48),
        any::<bool>(),
    )
        .prop_map(
            |(code, version, opaque, flag, remark, ext, body, json_spacing)| Spec {
                code,
                version,
                opaque,
                flag,
                remark,
                ext,
                body,
                json_spacing,
            },
        )
}

fn check(s: &Spec, bytes: &[u8]) -> Result<(), TestCaseError> {
    let f = assert_framing(P, bytes);
    assert_lossless(P, bytes);
    prop_assert_eq!(f.request_id(), RequestId(u64::from(s.opaque as u32)));
    let response = s.flag & 1 != 0;
    prop_assert_eq!(f.is_response(), response);
    if response {
        prop_assert_eq!(f.status(), Some(i32::from(s.code)));
    } else {
        prop_assert_eq!(f.expects_response(), s.flag & 2 == 0);
        prop_assert_eq!(f.attributes().code, Some(i32::from(s.code)));
        prop_assert_eq!(&f.attributes().headers, &s.ext);
    }
    Ok(())
}

/// Only SUCCESS (0) is a success: 20 is PULL_RETRY_IMMEDIATELY here (not
/// Dubbo's OK), and 19 and 21 are the other pull answers without a
/// message; in either header serialisation.
#[test]
fn only_code_success_is_a_success() {
    let c = codec(P);
    for fixture in [
        &fx::ROCKETMQ_JSON_ROUTE_RESPONSE[..],
        &fx::ROCKETMQ_BINARY_RESPONSE,
    ] {
        let ok = decode_one(P, fixture);
        assert_eq!(ok.status(), Some(code::SUCCESS));
        assert_eq!(c.classify(&ok), ResponseClass::Success);
    }
    for serialize_type in [SerializeType::Json, SerializeType::RocketMq] {
        for status in [
            code::PULL_RETRY_IMMEDIATELY,
            code::PULL_NOT_FOUND,
            code::PULL_OFFSET_MOVED,
            code::SYSTEM_ERROR,
            code::SYSTEM_BUSY,
        ] {
            let answer = response(serialize_type, status, 0, 7, "x");
            let answer = decode_one(P, answer.as_bytes());
            assert_eq!(answer.status(), Some(status));
            assert_eq!(
                c.classify(&answer),
                ResponseClass::Error,
                "{serialize_type:?} code {status}"
            );
        }
    }
    assert_eq!(code::PULL_RETRY_IMMEDIATELY, 20);
}

/// Brokers call their clients: each client is pinned to upstream
/// connections of its own.
#[test]
fn clients_are_pinned() {
    assert_eq!(P.pinning(), Pinning::PerClient);
}

#[test]
fn decimal_formats_the_i32_range() {
    let mut b = [0u8; 11];
    for v in [0, 7, -7, 10, 1_234_567, i32::MAX, i32::MIN] {
        assert_eq!(decimal(v, &mut b), v.to_string().as_bytes());
    }
}

/// A splice that cannot be done leaves the frame as it was.
#[test]
fn a_bad_splice_changes_nothing() {
    let mut raw = BytesMut::from(&fx::ROCKETMQ_JSON_GET_ROUTE[..]);
    let len = raw.len();
    let outside = Splice {
        at: len + 1,
        end: len + 3,
        tag: 0,
    };
    assert!(RocketMqCodec::splice_id(&mut raw, outside, RequestId(12_345)).is_err());
    assert!(RocketMqCodec::splice_id(&mut raw, outside, RequestId(1 << 40)).is_err());
    assert_eq!(&raw[..], &fx::ROCKETMQ_JSON_GET_ROUTE[..]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn arbitrary_binary_frames_round_trip(s in spec()) {
        check(&s, &binary_frame(&s))?;
    }

    #[test]
    fn arbitrary_json_frames_round_trip(s in spec()) {
        check(&s, &json_frame(&json_header(&s), &s.body))?;
    }

    #[test]
    fn set_request_id_then_encode_then_decode(s in spec(), id in any::<u32>()) {
        assert_id_rewrite(P, &binary_frame(&s), u64::from(id));
        assert_id_rewrite(P, &json_frame(&json_header(&s), &s.body), u64::from(id));
    }

    #[test]
    fn mutated_frames_never_panic(s in spec(), json in any::<bool>(), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4), control in any::<u8>()) {
        let mut bytes = if json { json_frame(&json_header(&s), &s.body) } else { binary_frame(&s) };
        for (at, v) in flips {
            let n = bytes.len();
            bytes[at % n] = v;
        }
        let mut data = vec![control];
        data.extend_from_slice(&bytes);
        assert_no_panic(P, &data);
    }

    #[test]
    fn garbage_headers_never_panic(header in proptest::collection::vec(any::<u8>(), 1..200), json in any::<bool>()) {
        let mut data = vec![0u8];
        data.extend_from_slice(&((4 + header.len()) as u32).to_be_bytes());
        data.extend_from_slice(&(u32::from(!json) << 24 | header.len() as u32).to_be_bytes());
        data.extend_from_slice(&header);
        assert_no_panic(P, &data);
    }
}
