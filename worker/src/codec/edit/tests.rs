//! Header edits on fixtures captured from other implementations (see
//! `bolt::fixtures`, `dubbo::fixtures`): every edited frame must decode
//! again, to the edits, with everything else as it was.

use super::*;
use crate::codec::bolt::fixtures as bolt_fx;
use crate::codec::dubbo::fixtures as dubbo_fx;
use crate::codec::testkit::{assert_framing, decode_one};

fn keys(headers: &[(String, String)]) -> Vec<&str> {
    headers.iter().map(|(k, _)| k.as_str()).collect()
}

fn get<'h>(headers: &'h [(String, String)], key: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

#[test]
fn dubbo_attachments_are_found_past_an_object_argument_and_rewritten() {
    let mut frame = decode_one(Protocol::Dubbo, &dubbo_fx::DUBBO_REQUEST_NOTIFY_JOB);
    let before = frame.editable_headers();
    assert_eq!(
        keys(&before),
        [
            "a.s.u",
            "a.s.t",
            "a.s.d",
            "path",
            "dubboApplication",
            "interface",
            "version",
            "timeout"
        ]
    );
    assert_eq!(get(&before, "timeout"), Some("5000"));
    let map_at = dubbo_fx::DUBBO_REQUEST_NOTIFY_JOB
        .iter()
        .rposition(|&b| b == b'H')
        .unwrap();

    frame
        .edit_headers(&[
            HeaderOp::Set("x-tenant", "blue"),
            HeaderOp::Remove("a.s.t"),
            HeaderOp::Set("timeout", "250"),
        ])
        .unwrap();

    // The edited frame decodes on its own, to the same request...
    let again = assert_framing(Protocol::Dubbo, frame.as_bytes());
    assert_eq!(again.attributes(), frame.attributes());
    assert_eq!(again.request_id(), frame.request_id());
    // ...with its header and arguments byte for byte as they were (but
    // the body length) and the edits in its attachments.
    let raw = frame.as_bytes();
    assert_eq!(raw[..12], dubbo_fx::DUBBO_REQUEST_NOTIFY_JOB[..12]);
    assert_eq!(
        raw[16..map_at],
        dubbo_fx::DUBBO_REQUEST_NOTIFY_JOB[16..map_at]
    );
    let after = again.editable_headers();
    assert_eq!(
        keys(&after),
        [
            "a.s.u",
            "a.s.d",
            "path",
            "dubboApplication",
            "interface",
            "version",
            "timeout",
            "x-tenant"
        ]
    );
    assert_eq!(get(&after, "timeout"), Some("250"));
    assert_eq!(get(&after, "x-tenant"), Some("blue"));
}

#[test]
fn dubbo_attachments_after_nested_objects_lists_and_maps() {
    // Four arguments: a string, an object holding objects, a list, a map.
    let mut frame = decode_one(Protocol::Dubbo, &dubbo_fx::DUBBO_REQUEST_COMPLEX);
    let before = frame.editable_headers();
    assert!(!before.is_empty(), "no attachments found");
    frame
        .edit_headers(&[HeaderOp::Set("zone", "eu-1")])
        .unwrap();
    let again = assert_framing(Protocol::Dubbo, frame.as_bytes());
    let after = again.editable_headers();
    assert_eq!(after[..before.len()], before[..]);
    assert_eq!(after[before.len()..], [("zone".into(), "eu-1".into())]);
}

#[test]
fn bolt_request_headers_are_rewritten_and_route_again() {
    let mut frame = decode_one(Protocol::Bolt, &bolt_fx::BOLT_REQUEST_PROTOBUF);
    let before = frame.editable_headers();
    assert_eq!(before, frame.attributes().headers);
    frame
        .edit_headers(&[
            HeaderOp::Set("service", "com.example.Other:1.0"),
            HeaderOp::Set("x-caller", "gateway"),
            HeaderOp::Remove("sofa_head_method_name"),
        ])
        .unwrap();
    assert_eq!(
        frame.attributes().service.as_deref(),
        Some("com.example.Other:1.0")
    );
    assert_eq!(frame.attributes().method, None);
    let again = assert_framing(Protocol::Bolt, frame.as_bytes());
    assert_eq!(again.attributes(), frame.attributes());
    assert_eq!(again.attributes().header("x-caller"), Some("gateway"));
    assert_eq!(keys(&again.editable_headers()).len(), before.len());
    // The content after the map is what it was.
    let tail = wire::u32_at(&bolt_fx::BOLT_REQUEST_PROTOBUF, 18).unwrap() as usize;
    assert!(tail > 0);
    let n = bolt_fx::BOLT_REQUEST_PROTOBUF.len();
    assert_eq!(
        frame.as_bytes()[frame.len() - tail..],
        bolt_fx::BOLT_REQUEST_PROTOBUF[n - tail..]
    );
}

#[test]
fn bolt_response_headers_are_rewritten() {
    let mut frame = decode_one(Protocol::Bolt, &bolt_fx::BOLT_RESPONSE_PROTOBUF);
    frame
        .edit_headers(&[HeaderOp::Set("x-served-by", "baton")])
        .unwrap();
    let again = assert_framing(Protocol::Bolt, frame.as_bytes());
    assert_eq!(again.status(), frame.status());
    assert_eq!(get(&again.editable_headers(), "x-served-by"), Some("baton"));
}

#[test]
fn what_cannot_be_edited_is_refused_and_left_as_it_was() {
    let mut heartbeat = decode_one(Protocol::Bolt, &bolt_fx::BOLT_HEARTBEAT_REQUEST);
    assert!(matches!(
        heartbeat.edit_headers(&[HeaderOp::Set("a", "b")]),
        Err(CodecError::Unsupported { .. })
    ));
    assert_eq!(heartbeat.as_bytes(), bolt_fx::BOLT_HEARTBEAT_REQUEST);

    // A Bolt header map is at most 65,535 bytes.
    let mut frame = decode_one(Protocol::Bolt, &bolt_fx::BOLT_REQUEST_PROTOBUF);
    let huge = "x".repeat(70_000);
    assert!(matches!(
        frame.edit_headers(&[HeaderOp::Set("big", &huge)]),
        Err(CodecError::Rewrite { .. })
    ));
    assert_eq!(frame.as_bytes(), bolt_fx::BOLT_REQUEST_PROTOBUF);

    // A Dubbo body in another serialization (flag 0xc6: fastjson).
    let mut json = dubbo_fx::DUBBO_REQUEST_NOTIFY_JOB;
    json[2] = 0xc6;
    let mut frame = decode_one(Protocol::Dubbo, &json);
    assert!(frame.edit_headers(&[HeaderOp::Remove("path")]).is_err());
    assert_eq!(frame.as_bytes(), json);
    assert!(frame.editable_headers().is_empty());
}

#[test]
fn a_dubbo_request_without_attachments_gets_a_map() {
    // Built by hand from the documented layout: four strings, an empty
    // descriptor (no arguments), and nothing after.
    let mut body = BytesMut::new();
    for s in ["2.0.2", "com.example.Echo", "1.0", "ping", ""] {
        hessian2::write_string(&mut body, s);
    }
    let mut raw = BytesMut::new();
    raw.extend_from_slice(&[0xda, 0xbb, 0xc2, 0]);
    raw.put_u64(7);
    raw.put_u32(u32::try_from(body.len()).unwrap());
    raw.extend_from_slice(&body);
    let mut frame = decode_one(Protocol::Dubbo, &raw);
    assert!(frame.editable_headers().is_empty());
    frame.edit_headers(&[HeaderOp::Set("tenant", "a")]).unwrap();
    let again = assert_framing(Protocol::Dubbo, frame.as_bytes());
    assert_eq!(
        again.editable_headers(),
        [("tenant".to_string(), "a".to_string())]
    );
    assert_eq!(again.attributes().method.as_deref(), Some("ping"));
}

#[test]
fn descriptors_count_their_parameters() {
    assert_eq!(argument_count(""), Some(0));
    assert_eq!(argument_count("Ljava/lang/String;[II"), Some(3));
    assert_eq!(argument_count("[[Ljava/lang/Object;J"), Some(2));
    assert_eq!(argument_count("Ljava/lang/String"), None);
    assert_eq!(argument_count("Q"), None);
}

proptest::proptest! {
    #[test]
    fn skipping_arbitrary_bytes_never_panics(b in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..96)) {
        let mut reader = Reader::new(&b);
        while !reader.at_end() && reader.skip_value().is_ok() {}
    }
}
