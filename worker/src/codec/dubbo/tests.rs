//! Dubbo 2 codec tests. Fixtures and their sources: [`super::fixtures`].

use bytes::{BufMut, BytesMut};
use proptest::prelude::*;

use super::fixtures as fx;
use super::*;
use crate::codec::Pinning;
use crate::codec::testkit::*;

const P: Protocol = Protocol::Dubbo;

#[test]
fn mosn_request_fixtures_route_on_service_and_method() {
    // MOSN pkg/protocol/xprotocol/dubbo/decoder_test.go `benchmarkData`.
    let f = assert_framing(P, &fx::DUBBO_REQUEST_NOTIFY_JOB);
    assert_eq!(f.kind(), FrameKind::Request);
    assert!(f.expects_response());
    assert_eq!(f.request_id(), RequestId(0x4c));
    assert_eq!(f.status(), None);
    let a = f.attributes();
    assert_eq!(a.protocol_version.as_deref(), Some("2.6.2"));
    assert_eq!(
        a.service.as_deref(),
        Some("com.raycloud.notify.api.service.NotifyJobRequest")
    );
    assert_eq!(a.service_version.as_deref(), Some("2.0.1-vpc-test"));
    assert_eq!(a.method.as_deref(), Some("stopNotifyJob"));
    assert_lossless(P, &fx::DUBBO_REQUEST_NOTIFY_JOB);

    // MOSN `complexData`.
    let f = assert_framing(P, &fx::DUBBO_REQUEST_COMPLEX);
    assert_eq!(f.request_id(), RequestId(10));
    let a = f.attributes();
    assert_eq!(a.protocol_version.as_deref(), Some("2.0.2"));
    assert_eq!(
        a.service.as_deref(),
        Some("com.dmall.dsf.zone.proxy.service.ProxyInterface")
    );
    assert_eq!(a.service_version.as_deref(), Some("0.0.0"));
    assert_eq!(a.method.as_deref(), Some("unitTestByUnit"));
}

#[test]
fn zoodubbo_response_fixture() {
    let f = assert_framing(P, &fx::DUBBO_RESPONSE_INT);
    assert_eq!(f.kind(), FrameKind::Response);
    assert_eq!(f.status(), Some(i32::from(status::OK)));
    assert_eq!(f.request_id(), RequestId(0));
    assert!(!f.expects_response());
    assert_eq!(f.attributes(), &Attributes::default());
}

#[test]
fn heartbeats_are_answered_like_dubbos_heartbeat_handler() {
    let hb = assert_framing(P, &fx::DUBBO_HEARTBEAT_REQUEST);
    assert_eq!(hb.kind(), FrameKind::Heartbeat(Direction::Request));
    assert!(hb.expects_response());
    let reply = codec(P).heartbeat_reply(&hb).unwrap();
    assert_eq!(reply.as_bytes(), &fx::DUBBO_HEARTBEAT_RESPONSE[..]);
    let resp = assert_framing(P, &fx::DUBBO_HEARTBEAT_RESPONSE);
    assert_eq!(resp.kind(), FrameKind::Heartbeat(Direction::Response));
    assert_eq!(resp, reply);
    assert!(codec(P).heartbeat_reply(&resp).is_none());
    // What baton originates is the fixture with its own id.
    let mine = codec(P).heartbeat(RequestId(5)).unwrap();
    assert_eq!(mine.as_bytes(), &fx::DUBBO_HEARTBEAT_REQUEST[..]);
    // A heartbeat in another serialization (fastjson, id 6) is answered in it.
    let json_hb = build(
        FLAG_REQUEST | FLAG_TWO_WAY | FLAG_EVENT | 6,
        0,
        9,
        b"null\n",
    );
    let f = decode_one(P, &json_hb);
    assert_eq!(f.kind(), FrameKind::Heartbeat(Direction::Request));
    let reply = codec(P).heartbeat_reply(&f).unwrap();
    assert_eq!(
        reply.as_bytes(),
        &build(FLAG_EVENT | 6, status::OK, 9, b"null\n")[..]
    );
}

#[test]
fn events_oneways_and_other_serializations() {
    // READONLY event: a request event whose data is the string "R".
    let f = decode_one(P, &build(FLAG_REQUEST | FLAG_EVENT | 2, 0, 3, b"\x01R"));
    assert_eq!(f.kind(), FrameKind::Event(Direction::Request));
    assert!(!f.expects_response());
    assert!(codec(P).heartbeat_reply(&f).is_none());
    // Oneway: no two-way bit.
    let mut body = BytesMut::new();
    for s in ["2.0.2", "com.example.Echo", "1.0", "echo"] {
        hessian2::write_string(&mut body, s);
    }
    let f = decode_one(P, &build(FLAG_REQUEST | 2, 0, 4, &body));
    assert_eq!(f.kind(), FrameKind::Oneway);
    assert!(!f.expects_response());
    assert_eq!(f.attributes().method.as_deref(), Some("echo"));
    // Same body under kryo (8): proxied, not routed on.
    let f = decode_one(P, &build(FLAG_REQUEST | FLAG_TWO_WAY | 8, 0, 4, &body));
    assert_eq!(f.kind(), FrameKind::Request);
    assert_eq!(f.attributes(), &Attributes::default());
    // A null version is fine; a body that is not four strings has no attributes.
    let f = decode_one(P, &build(0xc2, 0, 1, b"\x052.0.2\x03a.B\x4e\x01m"));
    assert_eq!(f.attributes().service_version, None);
    assert_eq!(f.attributes().method.as_deref(), Some("m"));
    let f = decode_one(P, &build(0xc2, 0, 1, b"\x052.0.2\x91"));
    assert_eq!(f.attributes(), &Attributes::default());
}

#[test]
fn hijack_is_a_hessian2_error_string_with_the_mapped_status() {
    let req = decode_one(P, &fx::DUBBO_REQUEST_NOTIFY_JOB);
    let c = codec(P);
    for (kind, code) in [
        (ErrorKind::Timeout, 31),
        (ErrorKind::NoRoute, 60),
        (ErrorKind::Unavailable, 70),
        (ErrorKind::Overloaded, 100),
        (ErrorKind::BadRequest, 40),
        (ErrorKind::BadResponse, 50),
        (ErrorKind::Internal, 80),
    ] {
        let h = c.hijack(&req, kind);
        let msg = kind.message();
        // Hessian2 string: compact below 32 units, else the 2-byte form.
        let string_header = if msg.len() < 32 {
            vec![msg.len() as u8]
        } else {
            vec![0x30 | (msg.len() >> 8) as u8, msg.len() as u8]
        };
        let mut expect = vec![0xda, 0xbb, 0x02, code, 0, 0, 0, 0, 0, 0, 0, 0x4c];
        expect.extend_from_slice(&((string_header.len() + msg.len()) as u32).to_be_bytes());
        expect.extend_from_slice(&string_header);
        expect.extend_from_slice(msg.as_bytes());
        assert_eq!(h.as_bytes(), &expect[..], "{kind:?}");
        let back = decode_one(P, h.as_bytes());
        assert_eq!(back.kind(), FrameKind::Response);
        assert_eq!(back.status(), Some(i32::from(code)));
        let body = &back.as_bytes()[HEADER_LEN..];
        assert_eq!(
            hessian2::Reader::new(body).read_string(),
            Ok(Some(msg.to_owned()))
        );
    }
}

#[test]
fn request_id_rewrites_all_64_bits_in_place() {
    let back = assert_id_rewrite(P, &fx::DUBBO_REQUEST_COMPLEX, u64::MAX - 1);
    assert_eq!(&back.as_bytes()[4..12], &(u64::MAX - 1).to_be_bytes());
    assert_eq!(&back.as_bytes()[12..], &fx::DUBBO_REQUEST_COMPLEX[12..]);
}

#[test]
fn malformed_input_is_an_error_or_incomplete_never_a_panic() {
    assert_incomplete(P, &[]);
    assert_incomplete(P, &[0xda]);
    assert_incomplete(P, &fx::DUBBO_RESPONSE_INT[..15]);
    assert_incomplete(P, &fx::DUBBO_RESPONSE_INT[..18]);
    assert!(matches!(
        decode_err(P, &[0xdb]),
        CodecError::BadMagic { found: 0xdb00, .. }
    ));
    assert!(matches!(
        decode_err(P, &[0xda, 0xbc]),
        CodecError::BadMagic { found: 0xdabc, .. }
    ));
    let mut negative = fx::DUBBO_HEARTBEAT_REQUEST;
    negative[12] = 0x80;
    assert!(matches!(
        decode_err(P, &negative[..16]),
        CodecError::Malformed { .. }
    ));
    let mut absurd = fx::DUBBO_HEARTBEAT_REQUEST;
    absurd[12..16].copy_from_slice(&i32::MAX.to_be_bytes());
    assert!(matches!(
        decode_err(P, &absurd[..16]),
        CodecError::FrameTooLarge { .. }
    ));
}

fn build(flag: u8, status: u8, id: u64, body: &[u8]) -> Vec<u8> {
    let mut b = BytesMut::new();
    b.put_u16(MAGIC);
    b.put_u8(flag);
    b.put_u8(status);
    b.put_u64(id);
    b.put_u32(body.len() as u32);
    b.extend_from_slice(body);
    b.to_vec()
}

#[derive(Debug, Clone)]
struct Spec {
    flag: u8,
    status: u8,
    id: u64,
    strings: Vec<Option<String>>,
    tail: Vec<u8>,
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        any::<u8>(),
        any::<u8>(),
        any::<u64>(),
        proptest::collection::vec(proptest::option::weighted(0.9, ".{0,24}"), 0..5),
        proptest::collection::vec(any::<u8>(), 0..48),
    )
        .prop_map(|(flag, status, id, strings, tail)| Spec {
            flag,
            status,
            id,
            strings,
            tail,
        })
}

fn bytes_of(s: &Spec) -> Vec<u8> {
    let mut body = BytesMut::new();
    for string in &s.strings {
        match string {
            Some(v) => hessian2::write_string(&mut body, v),
            None => hessian2::write_null(&mut body),
        }
    }
    body.extend_from_slice(&s.tail);
    build(s.flag, s.status, s.id, &body)
}

/// Status OK (20) is a success, whatever the body; every other status an
/// error.
#[test]
fn classifies_by_status_ok_20() {
    let c = codec(P);
    let ok = decode_one(P, &fx::DUBBO_RESPONSE_INT);
    assert_eq!(ok.status(), Some(20));
    assert_eq!(c.classify(&ok), ResponseClass::Success);
    for s in [
        status::CLIENT_TIMEOUT,
        status::SERVER_TIMEOUT,
        status::BAD_REQUEST,
        status::SERVICE_NOT_FOUND,
        status::SERVER_ERROR,
        0,
    ] {
        let answer = response(RequestId(5), 0x02, s, b"\x00", FrameKind::Response);
        let answer = decode_one(P, answer.as_bytes());
        assert_eq!(answer.status(), Some(i32::from(s)));
        assert_eq!(c.classify(&answer), ResponseClass::Error, "status {s}");
    }
}

/// Dubbo's callbacks are not proxied: clients share the pools.
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
        prop_assert_eq!(f.request_id(), RequestId(s.id));
        let request = s.flag & FLAG_REQUEST != 0;
        prop_assert_eq!(f.is_request(), request);
        prop_assert_eq!(f.expects_response(), request && s.flag & FLAG_TWO_WAY != 0);
        prop_assert_eq!(f.status(), (!request).then_some(i32::from(s.status)));
        let routable = request && s.flag & FLAG_EVENT == 0 && s.flag & SERIALIZATION_MASK == 2;
        if routable && s.strings.len() >= 4 {
            let a = f.attributes();
            prop_assert_eq!(&a.protocol_version, &s.strings[0]);
            prop_assert_eq!(&a.service, &s.strings[1]);
            prop_assert_eq!(&a.service_version, &s.strings[2]);
            prop_assert_eq!(&a.method, &s.strings[3]);
        }
    }

    #[test]
    fn set_request_id_then_encode_then_decode(s in spec(), id in any::<u64>()) {
        assert_id_rewrite(P, &bytes_of(&s), id);
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
    fn garbage_after_the_magic_never_panics(data in proptest::collection::vec(any::<u8>(), 0..256)) {
        let mut input = vec![0u8, 0xda, 0xbb];
        input.extend_from_slice(&data);
        assert_no_panic(P, &input);
    }
}
