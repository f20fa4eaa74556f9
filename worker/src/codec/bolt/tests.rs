//! Bolt v1 codec tests. Fixtures and their sources: [`super::fixtures`].

use bytes::{BufMut, BytesMut};
use proptest::prelude::*;

use super::fixtures as fx;
use super::*;
use crate::codec::Pinning;
use crate::codec::testkit::*;

const P: Protocol = Protocol::Bolt;

#[test]
fn sofarpc_request_fixture() {
    // sofa-bolt-python tests/test_bolt_package.py (see fixtures.rs).
    let f = assert_framing(P, &fx::BOLT_REQUEST_PROTOBUF);
    assert_eq!(f.kind(), FrameKind::Request);
    assert!(f.expects_response());
    assert_eq!(f.request_id(), RequestId(109));
    assert_eq!(f.status(), None);
    let a = f.attributes();
    assert_eq!(
        a.class_name.as_deref(),
        Some("com.alipay.sofa.rpc.core.request.SofaRequest")
    );
    assert_eq!(
        a.service.as_deref(),
        Some("com.alipay.rpc.common.service.facade.pb.SampleServicePb:1.0")
    );
    assert_eq!(a.method.as_deref(), Some("hello"));
    assert_eq!(a.timeout_ms, Some(100));
    assert_eq!(a.header("sofa_head_target_app"), Some("bar1"));
    assert_eq!(
        a.header("rpc_trace_context.sofaCallerIp"),
        Some("11.166.22.161")
    );
    // Empty values (valLen 0) are entries too.
    assert_eq!(a.header("rpc_trace_context.sofaPenAttrs"), Some(""));
    assert_eq!(a.headers.len(), 16);
    assert_lossless(P, &fx::BOLT_REQUEST_PROTOBUF);
}

#[test]
fn sofarpc_response_fixtures() {
    let f = assert_framing(P, &fx::BOLT_RESPONSE_PROTOBUF);
    assert_eq!(f.kind(), FrameKind::Response);
    assert!(!f.expects_response());
    assert_eq!(f.request_id(), RequestId(0x84));
    assert_eq!(f.status(), Some(i32::from(status::SUCCESS)));
    // Responses are routed by id: no attributes parsed.
    assert_eq!(f.attributes(), &Attributes::default());

    // sofa-bolt-node test/decoder.test.js: RpcServerException.
    let f = assert_framing(P, &fx::BOLT_RESPONSE_SERVER_EXCEPTION);
    assert_eq!(f.request_id(), RequestId(1));
    assert_eq!(f.status(), Some(i32::from(status::SERVER_EXCEPTION)));
    assert_lossless(P, &fx::BOLT_RESPONSE_SERVER_EXCEPTION);
}

#[test]
fn bolt_v2_is_refused_not_misparsed() {
    let err = decode_err(P, &fx::BOLT_V2_RESPONSE);
    assert!(
        matches!(err, CodecError::Unsupported { value: 2, .. }),
        "{err}"
    );
    // From the first byte on.
    assert!(matches!(
        decode_err(P, &[2]),
        CodecError::Unsupported { .. }
    ));
}

#[test]
fn heartbeat_is_answered_with_the_ack_sofa_bolt_sends() {
    let hb = assert_framing(P, &fx::BOLT_HEARTBEAT_REQUEST);
    assert_eq!(hb.kind(), FrameKind::Heartbeat(Direction::Request));
    assert!(hb.expects_response() && hb.is_request() && hb.is_heartbeat());
    let reply = codec(P).heartbeat_reply(&hb).unwrap();
    assert_eq!(reply.as_bytes(), &fx::BOLT_HEARTBEAT_ACK[..]);
    let ack = assert_framing(P, &fx::BOLT_HEARTBEAT_ACK);
    assert_eq!(ack.kind(), FrameKind::Heartbeat(Direction::Response));
    assert_eq!(ack, reply);
    // Only heartbeat requests get replies.
    assert!(codec(P).heartbeat_reply(&ack).is_none());
    let req = decode_one(P, &fx::BOLT_REQUEST_PROTOBUF);
    assert!(codec(P).heartbeat_reply(&req).is_none());
}

#[test]
fn originated_heartbeat_uses_the_clients_ver2_and_codec() {
    let mut c = codec(P);
    let mut buf = BytesMut::from(&fx::BOLT_REQUEST_PROTOBUF[..]);
    c.decode(&mut buf).unwrap().unwrap();
    let hb = c.heartbeat(RequestId(7)).unwrap();
    let mut expect = fx::BOLT_HEARTBEAT_REQUEST;
    expect[9] = 0x0b; // the protobuf codec the client used
    assert_eq!(hb.as_bytes(), &expect[..]);
    assert_eq!(decode_one(P, hb.as_bytes()), hb);
    assert!(c.heartbeat(RequestId(1 << 32)).is_none());
}

#[test]
fn hijack_writes_each_status_for_the_request_id() {
    let req = decode_one(P, &fx::BOLT_REQUEST_PROTOBUF);
    let c = codec(P);
    let cases = [
        (ErrorKind::Timeout, 0x0007),
        (ErrorKind::NoRoute, 0x0006),
        (ErrorKind::Unavailable, 0x0010),
        (ErrorKind::Overloaded, 0x0004),
        (ErrorKind::BadRequest, 0x0009),
        (ErrorKind::BadResponse, 0x0005),
        (ErrorKind::Internal, 0x0002),
    ];
    for (kind, code) in cases {
        let h = c.hijack(&req, kind);
        let [hi, lo] = u16::to_be_bytes(code);
        // proto, type=response, cmd=RPC_RESPONSE, ver2, id 109, codec 11
        // (the request's), status, empty class/header/content.
        let expect = [
            1, 0, 0, 2, 1, 0, 0, 0, 109, 0x0b, hi, lo, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        assert_eq!(h.as_bytes(), &expect[..], "{kind:?}");
        let back = decode_one(P, h.as_bytes());
        assert_eq!(back.kind(), FrameKind::Response);
        assert_eq!(back.status(), Some(i32::from(code)));
        assert_eq!(back.request_id(), req.request_id());
    }
}

#[test]
fn request_id_rewrites_in_place() {
    let back = assert_id_rewrite(P, &fx::BOLT_REQUEST_PROTOBUF, 0xdead_beef);
    let (a, b) = (back.as_bytes(), &fx::BOLT_REQUEST_PROTOBUF[..]);
    assert_eq!(a.len(), b.len());
    assert_eq!(&a[5..9], &[0xde, 0xad, 0xbe, 0xef]);
    assert_eq!((&a[..5], &a[9..]), (&b[..5], &b[9..]));
    let mut f = decode_one(P, &fx::BOLT_RESPONSE_PROTOBUF);
    let err = f.set_request_id(RequestId(1 << 32)).unwrap_err();
    assert!(matches!(
        err,
        CodecError::RequestIdOutOfRange { bits: 32, .. }
    ));
    assert_eq!(f.request_id(), RequestId(0x84), "unchanged on error");
}

#[test]
fn malformed_input_is_an_error_or_incomplete_never_a_panic() {
    assert_incomplete(P, &[]);
    assert_incomplete(P, &[1]);
    assert_incomplete(P, &[1, 1, 0]);
    assert_incomplete(P, &fx::BOLT_REQUEST_PROTOBUF[..21]);
    assert_incomplete(P, &fx::BOLT_RESPONSE_PROTOBUF[..19]);
    assert!(matches!(
        decode_err(P, &[0xda]),
        CodecError::BadMagic { found: 0xda, .. }
    ));
    assert!(matches!(
        decode_err(P, &[1, 3]),
        CodecError::Unsupported {
            what: "command type",
            ..
        }
    ));
    assert!(matches!(
        decode_err(P, &[1, 1, 0, 9]),
        CodecError::Unsupported {
            what: "command code",
            value: 9,
            ..
        }
    ));
    // An absurd content length is refused from the header alone.
    let mut absurd = fx::BOLT_HEARTBEAT_REQUEST;
    absurd[18..22].copy_from_slice(&u32::MAX.to_be_bytes());
    let err = decode_err(P, &absurd);
    assert!(
        matches!(err, CodecError::FrameTooLarge { size, .. } if size == 22 + u64::from(u32::MAX))
    );
    // Just over a small configured limit.
    let config = CodecConfig::with_max_frame_size(64).unwrap();
    let mut big = fx::BOLT_HEARTBEAT_REQUEST;
    big[18..22].copy_from_slice(&43u32.to_be_bytes());
    assert!(matches!(
        decode_err_with(P, config, &big),
        CodecError::FrameTooLarge {
            size: 65,
            max: 64,
            ..
        }
    ));
}

#[test]
fn broken_header_maps_are_malformed() {
    let frame = |map: &[u8]| build(TYPE_REQUEST, CMD_REQUEST, 1, 5, 1, 1000, b"C", map, b"x");
    for map in [
        &[0, 0, 0][..],                              // truncated key length
        &[0, 0, 0, 5, b'a'],                         // key past the section
        &[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0],       // negative key length
        &[0, 0, 0, 1, b'k', 0xff, 0xff, 0xff, 0xfe], // value length -2
        &[0, 0, 0, 1, b'k', 0, 0, 0, 9, b'v'],       // value past the section
    ] {
        assert!(
            matches!(decode_err(P, &frame(map)), CodecError::Malformed { .. }),
            "{map:?}"
        );
    }
    // -1 is SOFARPC's null value: read as empty.
    let f = decode_one(P, &frame(&[0, 0, 0, 1, b'k', 0xff, 0xff, 0xff, 0xff]));
    assert_eq!(f.attributes().header("k"), Some(""));
    // Responses' header maps are not parsed, so not validated either.
    let f = decode_one(
        P,
        &build(
            TYPE_RESPONSE,
            CMD_RESPONSE,
            1,
            5,
            1,
            0,
            b"",
            &[0, 0, 0],
            b"",
        ),
    );
    assert_eq!(f.kind(), FrameKind::Response);
}

#[test]
fn service_falls_back_to_the_old_header_key() {
    let map = encode_map(&[
        (
            "sofa_head_target_service".into(),
            Some("com.example.Old:1.0".into()),
        ),
        ("service".into(), Some(String::new())),
    ]);
    let f = decode_one(
        P,
        &build(TYPE_ONEWAY, CMD_REQUEST, 1, 9, 1, 0, b"", &map, b""),
    );
    assert_eq!(f.kind(), FrameKind::Oneway);
    assert!(!f.expects_response());
    assert_eq!(
        f.attributes().service.as_deref(),
        Some("com.example.Old:1.0")
    );
    assert_eq!(f.attributes().timeout_ms, None);
    assert_eq!(f.attributes().class_name, None);
}

/// Builds a Bolt v1 frame; `word` is the timeout (requests) or the status
/// (responses).
#[allow(clippy::too_many_arguments)]
fn build(
    ty: u8,
    cmd: u16,
    ver2: u8,
    id: u32,
    codec: u8,
    word: i32,
    class: &[u8],
    map: &[u8],
    content: &[u8],
) -> Vec<u8> {
    let mut b = BytesMut::new();
    b.put_u8(PROTO_V1);
    b.put_u8(ty);
    b.put_u16(cmd);
    b.put_u8(ver2);
    b.put_u32(id);
    b.put_u8(codec);
    if ty == TYPE_RESPONSE {
        b.put_u16(word as u16);
    } else {
        b.put_i32(word);
    }
    b.put_u16(class.len() as u16);
    b.put_u16(map.len() as u16);
    b.put_u32(content.len() as u32);
    b.extend_from_slice(class);
    b.extend_from_slice(map);
    b.extend_from_slice(content);
    b.to_vec()
}

fn encode_map(entries: &[(String, Option<String>)]) -> Vec<u8> {
    let mut b = BytesMut::new();
    for (k, v) in entries {
        b.put_i32(k.len() as i32);
        b.extend_from_slice(k.as_bytes());
        match v {
            Some(v) => {
                b.put_i32(v.len() as i32);
                b.extend_from_slice(v.as_bytes());
            }
            None => b.put_i32(-1),
        }
    }
    b.to_vec()
}

#[derive(Debug, Clone)]
struct Spec {
    ty: u8,
    cmd: u16,
    ver2: u8,
    id: u32,
    codec: u8,
    word: i32,
    class: String,
    headers: Vec<(String, Option<String>)>,
    content: Vec<u8>,
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        0u8..=2,
        0u16..=2,
        any::<u8>(),
        any::<u32>(),
        any::<u8>(),
        any::<i32>(),
        "[a-zA-Z.]{0,40}",
        proptest::collection::vec(("[a-z_.]{0,12}", proptest::option::of(".{0,16}")), 0..6),
        proptest::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(
            |(ty, cmd, ver2, id, codec, word, class, headers, content)| Spec {
                ty,
                cmd,
                ver2,
                id,
                codec,
                word: if ty == TYPE_RESPONSE {
                    word & 0xffff
                } else {
                    word
                },
                class,
                headers,
                content,
            },
        )
}

fn bytes_of(s: &Spec) -> Vec<u8> {
    build(
        s.ty,
        s.cmd,
        s.ver2,
        s.id,
        s.codec,
        s.word,
        s.class.as_bytes(),
        &encode_map(&s.headers),
        &s.content,
    )
}

/// `respStatus` SUCCESS is a success; every other status an error.
#[test]
fn classifies_by_resp_status() {
    let c = codec(P);
    let ok = decode_one(P, &fx::BOLT_RESPONSE_PROTOBUF);
    assert_eq!(c.classify(&ok), ResponseClass::Success);
    let failed = decode_one(P, &fx::BOLT_RESPONSE_SERVER_EXCEPTION);
    assert_eq!(failed.status(), Some(i32::from(status::SERVER_EXCEPTION)));
    assert_eq!(c.classify(&failed), ResponseClass::Error);
    let request = decode_one(P, &fx::BOLT_REQUEST_PROTOBUF);
    for s in [status::ERROR, status::TIMEOUT, 20] {
        let answer = BoltCodec::new(CodecConfig::default()).response(
            &request,
            CMD_RESPONSE,
            s,
            FrameKind::Response,
        );
        let answer = decode_one(P, answer.as_bytes());
        assert_eq!(c.classify(&answer), ResponseClass::Error, "status {s}");
    }
}

/// Bolt servers never call clients: clients share the pools.
#[test]
fn clients_share_pools() {
    assert_eq!(P.pinning(), Pinning::Pooled);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn arbitrary_valid_frames_round_trip(s in spec()) {
        let bytes = bytes_of(&s);
        let f = assert_framing(P, &bytes);
        assert_lossless(P, &bytes);
        prop_assert_eq!(f.request_id(), RequestId(u64::from(s.id)));
        let kind = match (s.ty, s.cmd) {
            (TYPE_RESPONSE, CMD_HEARTBEAT) => FrameKind::Heartbeat(Direction::Response),
            (TYPE_RESPONSE, _) => FrameKind::Response,
            (_, CMD_HEARTBEAT) => FrameKind::Heartbeat(Direction::Request),
            (TYPE_REQUEST, _) => FrameKind::Request,
            _ => FrameKind::Oneway,
        };
        prop_assert_eq!(f.kind(), kind);
        prop_assert_eq!(f.expects_response(), s.ty == TYPE_REQUEST);
        if s.ty == TYPE_RESPONSE {
            prop_assert_eq!(f.status(), Some(s.word));
        }
        if matches!(kind, FrameKind::Request | FrameKind::Oneway) {
            let headers: Vec<(String, String)> = s.headers.iter()
                .map(|(k, v)| (k.clone(), v.clone().unwrap_or_default())).collect();
            prop_assert_eq!(&f.attributes().headers, &headers);
            prop_assert_eq!(f.attributes().class_name.clone(), (!s.class.is_empty()).then(|| s.class.clone()));
        }
    }

    #[test]
    fn set_request_id_then_encode_then_decode(s in spec(), id in any::<u32>()) {
        assert_id_rewrite(P, &bytes_of(&s), u64::from(id));
    }

    #[test]
    fn mutated_frames_never_panic(s in spec(), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4), control in any::<u8>()) {
        let mut bytes = bytes_of(&s);
        for (at, v) in flips {
            let n = bytes.len();
            bytes[at % n] = v;
        }
        let mut data = vec![control];
        data.extend_from_slice(&bytes);
        assert_no_panic(P, &data);
    }

    #[test]
    fn garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..256)) {
        assert_no_panic(P, &data);
    }
}
