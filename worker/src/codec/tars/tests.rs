//! Tars codec tests. Fixtures (encoded by TarsGo) and their sources:
//! [`super::fixtures`].

use bytes::{BufMut, BytesMut};
use proptest::prelude::*;

use super::fixtures as fx;
use super::tlv::*;
use super::*;
use crate::codec::Pinning;
use crate::codec::testkit::*;

const P: Protocol = Protocol::Tars;

// === a test encoder, from the layout in the module docs ===

fn int(out: &mut Vec<u8>, tag: u8, v: i32) {
    let mut buf = [0u8; 5];
    out.extend_from_slice(tars_int_field(tag, v, &mut buf));
}

fn head(out: &mut Vec<u8>, ty: u8, tag: u8) {
    let mut b = BytesMut::new();
    put_head(&mut b, ty, tag);
    out.extend_from_slice(&b);
}

fn string(out: &mut Vec<u8>, tag: u8, s: &[u8]) {
    let mut b = BytesMut::new();
    put_string(&mut b, tag, s);
    out.extend_from_slice(&b);
}

fn simple_list(out: &mut Vec<u8>, tag: u8, bytes: &[u8]) {
    head(out, SIMPLE_LIST, tag);
    head(out, INT1, 0);
    int(out, 0, i32::try_from(bytes.len()).unwrap());
    out.extend_from_slice(bytes);
}

fn map(out: &mut Vec<u8>, tag: u8, entries: &[(&str, &str)]) {
    head(out, MAP, tag);
    int(out, 0, i32::try_from(entries.len()).unwrap());
    for (k, v) in entries {
        string(out, 0, k.as_bytes());
        string(out, 1, v.as_bytes());
    }
}

/// Puts the length prefix in front of a packet.
fn frame(packet: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(packet.len() + 4);
    out.put_u32(u32::try_from(packet.len() + 4).unwrap());
    out.extend_from_slice(packet);
    out
}

#[derive(Clone, Debug)]
struct Req {
    version: i16,
    packet_type: i8,
    message_type: i32,
    id: i32,
    servant: String,
    func: String,
    buffer: Vec<u8>,
    timeout: i32,
    context: Vec<(String, String)>,
}

impl Default for Req {
    fn default() -> Self {
        Req {
            version: TARSVERSION,
            packet_type: TARSNORMAL,
            message_type: 0,
            id: 7,
            servant: "App.Server.Obj".into(),
            func: "call".into(),
            buffer: b"\x16\x02hi".to_vec(),
            timeout: 3000,
            context: vec![],
        }
    }
}

/// The packet's fields up to tag 8; [`req_tail`] adds context and status.
fn req_head(r: &Req) -> Vec<u8> {
    let mut p = Vec::new();
    int(&mut p, 1, i32::from(r.version));
    int(&mut p, 2, i32::from(r.packet_type));
    int(&mut p, 3, r.message_type);
    int(&mut p, 4, r.id);
    string(&mut p, 5, r.servant.as_bytes());
    string(&mut p, 6, r.func.as_bytes());
    simple_list(&mut p, 7, &r.buffer);
    int(&mut p, 8, r.timeout);
    p
}

fn req_tail(p: &mut Vec<u8>, r: &Req) {
    let context: Vec<(&str, &str)> = r
        .context
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    map(p, 9, &context);
    map(p, 10, &[]);
}

fn req(r: &Req) -> Vec<u8> {
    let mut p = req_head(r);
    req_tail(&mut p, r);
    frame(&p)
}

fn resp(id: i32, ret: i32, result: &[u8], desc: Option<&str>) -> Vec<u8> {
    let mut p = Vec::new();
    int(&mut p, 1, 1);
    int(&mut p, 2, 0);
    int(&mut p, 3, id);
    int(&mut p, 4, 0);
    int(&mut p, 5, ret);
    simple_list(&mut p, 6, result);
    map(&mut p, 7, &[]);
    if let Some(d) = desc {
        string(&mut p, 8, d.as_bytes());
    }
    frame(&p)
}

fn malformed_what(bytes: &[u8]) -> &'static str {
    match decode_err(P, bytes) {
        CodecError::Malformed { what, .. } => what,
        other => panic!("expected Malformed, got {other:?}"),
    }
}

// === fixtures from TarsGo ===

#[test]
fn tarsgo_request_routes_on_servant_and_function() {
    let f = assert_framing(P, &fx::TARS_REQUEST_ECHO);
    assert_eq!(f.kind(), FrameKind::Request);
    assert!(f.expects_response());
    assert_eq!(f.request_id(), RequestId(1));
    assert_eq!(f.status(), None);
    let a = f.attributes();
    assert_eq!(a.service.as_deref(), Some("Baton.EchoServer.EchoObj"));
    assert_eq!(a.method.as_deref(), Some("echo"));
    assert_eq!(a.timeout_ms, Some(3000));
    assert_eq!(a.headers, vec![("zone".into(), "gz".into())]);
    assert_lossless(P, &fx::TARS_REQUEST_ECHO);
}

#[test]
fn tarsgo_oneway_with_a_zero_tag_id() {
    let f = assert_framing(P, &fx::TARS_REQUEST_ONEWAY_ZERO_ID);
    assert_eq!(f.kind(), FrameKind::Oneway);
    assert!(!f.expects_response());
    assert_eq!(f.request_id(), RequestId(0));
    assert_eq!(f.attributes().method.as_deref(), Some("note"));
    assert!(f.attributes().headers.is_empty());
    assert_lossless(P, &fx::TARS_REQUEST_ONEWAY_ZERO_ID);
}

#[test]
fn tarsgo_request_with_int4_id_and_string4_context() {
    let f = assert_framing(P, &fx::TARS_REQUEST_LONG_CONTEXT);
    assert_eq!(f.request_id(), RequestId(70_000));
    assert_eq!(f.attributes().method.as_deref(), Some("slowEcho"));
    assert_eq!(f.attributes().timeout_ms, Some(60_000));
    assert_eq!(
        f.attributes().header("trace"),
        Some("t".repeat(300).as_str())
    );
    // The status map is not a routing attribute.
    assert_eq!(f.attributes().header("STATUS_DYED_KEY"), None);
}

#[test]
fn tarsgo_tup_request_proxies_like_any_version() {
    let f = assert_framing(P, &fx::TARS_REQUEST_TUP);
    assert_eq!(f.kind(), FrameKind::Request);
    // -2 as the u32 bit pattern.
    assert_eq!(f.request_id(), RequestId(0xffff_fffe));
    assert_eq!(f.attributes().method.as_deref(), Some("echo"));
    // The hijack answers in the request's version.
    let h = codec(P).hijack(&f, ErrorKind::Timeout);
    assert_eq!(&h.as_bytes()[4..6], &[0x10, 0x03]);
    assert_eq!(decode_one(P, h.as_bytes()).request_id(), f.request_id());
}

#[test]
fn tarsnode_requests_decode_alike() {
    let f = assert_framing(P, &fx::TARS_NODE_REQUEST_CONTEXT);
    assert_eq!(f.kind(), FrameKind::Request);
    assert_eq!(f.request_id(), RequestId(40_000));
    assert_eq!(
        f.attributes().service.as_deref(),
        Some("Baton.EchoServer.EchoObj")
    );
    assert_eq!(f.attributes().method.as_deref(), Some("echo"));
    assert_eq!(f.attributes().timeout_ms, Some(15_000));
    assert_eq!(f.attributes().header("zone"), Some("b"));
    let f = assert_framing(P, &fx::TARS_NODE_REQUEST_ONEWAY);
    assert_eq!(f.kind(), FrameKind::Oneway);
    assert_eq!(f.request_id(), RequestId(2));
    assert_lossless(P, &fx::TARS_NODE_REQUEST_ONEWAY);
}

#[test]
fn tarsgo_responses_carry_iret_as_status() {
    let f = assert_framing(P, &fx::TARS_RESPONSE_ECHO);
    assert_eq!(f.kind(), FrameKind::Response);
    assert!(!f.expects_response());
    assert_eq!(f.request_id(), RequestId(1));
    assert_eq!(f.status(), Some(ret::TARSSERVERSUCCESS));
    assert_eq!(f.attributes(), &Attributes::default());
    let f = assert_framing(P, &fx::TARS_RESPONSE_NO_FUNC);
    assert_eq!(f.request_id(), RequestId(300));
    assert_eq!(f.status(), Some(ret::TARSSERVERNOFUNCERR));
    assert_lossless(P, &fx::TARS_RESPONSE_NO_FUNC);
}

#[test]
fn hijack_is_what_tarsgo_writes_for_the_same_fields() {
    let request = decode_one(P, &fx::TARS_REQUEST_ECHO);
    let h = codec(P).hijack(&request, ErrorKind::Timeout);
    assert_eq!(h.as_bytes(), &fx::TARS_RESPONSE_INVOKE_TIMEOUT[..]);
    assert_eq!(h, decode_one(P, &fx::TARS_RESPONSE_INVOKE_TIMEOUT));
}

#[test]
fn hijack_codes_follow_basef() {
    let request = decode_one(P, &fx::TARS_REQUEST_LONG_CONTEXT);
    for (kind, code) in [
        (ErrorKind::Timeout, -7),
        (ErrorKind::NoRoute, -4),
        (ErrorKind::Unavailable, -8),
        (ErrorKind::Overloaded, -9),
        (ErrorKind::BadRequest, -1),
        (ErrorKind::BadResponse, -99),
        (ErrorKind::Internal, -99),
    ] {
        let h = codec(P).hijack(&request, kind);
        let back = assert_framing(P, h.as_bytes());
        assert_eq!(back.kind(), FrameKind::Response, "{kind:?}");
        assert_eq!(back.status(), Some(code), "{kind:?}");
        assert_eq!(back.request_id(), RequestId(70_000), "{kind:?}");
        let text = h.as_bytes();
        let message = kind.message().as_bytes();
        assert!(
            text.windows(message.len()).any(|w| w == message),
            "{kind:?}: sResultDesc"
        );
    }
}

#[test]
fn tup_responses_are_request_packets_told_apart_by_name_or_code() {
    // TarsGo: no names, no code.
    let f = assert_framing(P, &fx::TARS_GO_TUP_RESPONSE);
    assert_eq!(f.kind(), FrameKind::Response);
    assert!(!f.expects_response());
    assert_eq!(f.request_id(), RequestId(9));
    assert_eq!(f.status(), Some(0));
    assert_eq!(f.attributes(), &Attributes::default());
    // TarsNode: the names, and STATUS_RESULT_CODE.
    let f = assert_framing(P, &fx::TARS_NODE_TUP_RESPONSE);
    assert_eq!(f.kind(), FrameKind::Response);
    assert_eq!(f.request_id(), RequestId(7));
    assert_eq!(f.status(), Some(0));
    let f = assert_framing(P, &fx::TARS_NODE_TUP_RESPONSE_INVOKE_TIMEOUT);
    assert_eq!(f.status(), Some(ret::TARSINVOKETIMEOUT));
    for bytes in [
        &fx::TARS_GO_TUP_RESPONSE[..],
        &fx::TARS_NODE_TUP_RESPONSE,
        &fx::TARS_NODE_TUP_RESPONSE_INVOKE_TIMEOUT,
    ] {
        assert_lossless(P, bytes);
        assert_id_rewrite(P, bytes, 70_000);
    }
    // A TUP request names its function and has no code: still a request.
    assert_eq!(
        decode_one(P, &fx::TARS_REQUEST_TUP).kind(),
        FrameKind::Request
    );
    // Without a function name, a TARS (version 1) packet is a request too.
    let f = decode_one(
        P,
        &req(&Req {
            func: String::new(),
            ..Req::default()
        }),
    );
    assert_eq!(f.kind(), FrameKind::Request);
}

/// A successful TUP answer as TarsCpp's `Current::sendResponse` writes one:
/// the request's names copied, no `STATUS_RESULT_CODE` (it is left out for
/// 0). Built here from those fields (no TarsCpp peer runs here).
fn tarscpp_tup_success(id: i32) -> Vec<u8> {
    let mut p = Vec::new();
    int(&mut p, 1, 3);
    int(&mut p, 2, 0);
    int(&mut p, 3, 0);
    int(&mut p, 4, id);
    string(&mut p, 5, b"Baton.EchoServer.EchoObj");
    string(&mut p, 6, b"echo");
    simple_list(&mut p, 7, &[0x08, 0x0c]);
    int(&mut p, 8, 0);
    map(&mut p, 9, &[]);
    map(&mut p, 10, &[]);
    frame(&p)
}

#[test]
fn a_tup_answer_without_a_code_is_told_by_the_upstream_end() {
    let bytes = tarscpp_tup_success(11);
    // Read by a client connection's codec, it looks like a request: the
    // bytes alone cannot tell.
    assert_eq!(decode_one(P, &bytes).kind(), FrameKind::Request);
    // The proxy's end of an upstream connection reads answers.
    let mut upstream = P.upstream_codec(CodecConfig::default());
    let mut buf = BytesMut::from(&bytes[..]);
    let f = upstream.decode(&mut buf).unwrap().unwrap();
    assert_eq!(f.kind(), FrameKind::Response);
    assert_eq!(f.status(), Some(0));
    assert_eq!(f.request_id(), RequestId(11));
    assert_id_rewrite(P, &fx::TARS_NODE_TUP_RESPONSE, 3);
    // TARS (version 1) packets are still told apart by tag 5 there.
    let mut buf = BytesMut::from(&fx::TARS_REQUEST_ECHO[..]);
    assert_eq!(
        upstream.decode(&mut buf).unwrap().unwrap().kind(),
        FrameKind::Request
    );
    // The role is codec state.
    let state = upstream.state();
    assert_eq!(
        state.protocol,
        crate::codec::ProtocolState::Tars(TarsState { upstream: true })
    );
    let mut restored = crate::codec::AnyCodec::from_state(state).unwrap();
    let mut buf = BytesMut::from(&bytes[..]);
    assert!(restored.decode(&mut buf).unwrap().unwrap().is_response());
    assert_eq!(
        codec(P).state().protocol,
        crate::codec::ProtocolState::Tars(TarsState::default())
    );
}

#[test]
fn a_tup_request_is_answered_in_tup() {
    let mut request = decode_one(P, &fx::TARS_REQUEST_TUP);
    request.set_request_id(RequestId(8)).unwrap();
    let h = codec(P).hijack(&request, ErrorKind::Timeout);
    assert_eq!(h.as_bytes(), &fx::TARS_NODE_TUP_RESPONSE_INVOKE_TIMEOUT[..]);
    assert_eq!(h, decode_one(P, &fx::TARS_NODE_TUP_RESPONSE_INVOKE_TIMEOUT));
    // A code that does not parse is not a success.
    let mut bad = fx::TARS_NODE_TUP_RESPONSE_INVOKE_TIMEOUT.to_vec();
    let at = bad.windows(3).position(|w| w == b"-7\x06").unwrap();
    bad[at] = b'x';
    assert_eq!(
        decode_one(P, &bad).status(),
        Some(ret::TARSSERVERUNKNOWNERR)
    );
}

#[test]
fn no_transport_heartbeat_and_tars_ping_is_a_call() {
    let ping = req(&Req {
        func: "tars_ping".into(),
        buffer: vec![],
        ..Req::default()
    });
    let f = assert_framing(P, &ping);
    assert_eq!(f.kind(), FrameKind::Request);
    assert!(codec(P).heartbeat_reply(&f).is_none());
    assert!(codec(P).heartbeat(RequestId(1)).is_none());
}

// === request id rewrite ===

/// Ids whose smallest encodings have every width: ZERO_TAG, INT1, INT2,
/// INT4, and negative ones as u32 bit patterns.
const IDS: [u64; 10] = [
    0,
    1,
    127,
    128,
    300,
    32_767,
    32_768,
    70_000,
    0x8000_0000,
    0xffff_ffff,
];

#[test]
fn id_rewrite_to_every_width_and_back_is_byte_identical() {
    for &(name, bytes) in fx::ALL {
        let original = decode_one(P, bytes);
        for id in IDS {
            let back = assert_id_rewrite(P, bytes, id);
            let out = back.as_bytes();
            assert_eq!(
                u32::from_be_bytes(out[..4].try_into().unwrap()) as usize,
                out.len(),
                "{name} -> {id}: length prefix"
            );
            // The frame differs from the original at most by the id field
            // and the length prefix: same head before it, same tail after.
            let IdSlot::Spliced(Splice { at, end, .. }) = parse(bytes, false).unwrap().id_slot
            else {
                panic!("{name}: not a Tars id slot");
            };
            assert_eq!(&out[4..at], &bytes[4..at], "{name} -> {id}: before the id");
            let tail = &bytes[end..];
            assert_eq!(
                &out[out.len() - tail.len()..],
                tail,
                "{name} -> {id}: after the id"
            );
            // And back to the original id, which TarsGo wrote in its
            // smallest encoding: the original bytes.
            let mut f = back.clone();
            f.set_request_id(original.request_id()).unwrap();
            assert_eq!(f.as_bytes(), bytes, "{name} -> {id} -> back");
        }
        let mut f = original.clone();
        assert!(f.set_request_id(RequestId(1 << 32)).is_err());
        assert_eq!(f, original, "a refused id leaves the frame as it was");
    }
}

#[test]
fn id_rewrite_widths_are_the_smallest_encoding() {
    for (id, field) in [
        (0u64, &[0x4c][..]),
        (1, &[0x40, 0x01]),
        (0xffff_ff80, &[0x40, 0x80]),
        (128, &[0x41, 0x00, 0x80]),
        (0xffff_8000, &[0x41, 0x80, 0x00]),
        (32_768, &[0x42, 0x00, 0x00, 0x80, 0x00]),
        (0x8000_0000, &[0x42, 0x80, 0x00, 0x00, 0x00]),
    ] {
        let back = assert_id_rewrite(P, &fx::TARS_REQUEST_ECHO, id);
        // iVersion `10 01`, cPacketType `2c`, iMessageType `3c`, then the id.
        assert_eq!(&back.as_bytes()[8..8 + field.len()], field, "{id}");
    }
}

#[test]
fn an_id_in_a_long_form_head_is_rewritten_into_the_short_form() {
    // Tag 4 written as `f2 04` + INT4: legal, though no encoder does it.
    let mut p = Vec::new();
    int(&mut p, 1, 1);
    int(&mut p, 2, 0);
    int(&mut p, 3, 0);
    p.extend_from_slice(&[0xf2, 0x04, 0, 0, 0, 9]);
    let r = Req::default();
    let full = req_head(&r);
    // Everything after the id field of a default request.
    let after_id = &full[full.iter().position(|&b| b == 0x56).unwrap()..];
    p.extend_from_slice(after_id);
    req_tail(&mut p, &r);
    let bytes = frame(&p);
    let f = assert_framing(P, &bytes);
    assert_eq!(f.request_id(), RequestId(9));
    assert_lossless(P, &bytes);
    let back = assert_id_rewrite(P, &bytes, 10);
    assert_eq!(&back.as_bytes()[8..10], &[0x40, 10]);
    assert_eq!(back.len(), bytes.len() - 4);
}

// === what else the reader accepts ===

#[test]
fn unknown_fields_are_skipped_and_kept() {
    let r = Req::default();
    let mut p = req_head(&r);
    req_tail(&mut p, &r);
    // Tag 11: a struct holding a list of maps and a double; tag 200 (long
    // head): a SIMPLE_LIST; tag 201: an INT8.
    head(&mut p, STRUCT_BEGIN, 11);
    head(&mut p, LIST, 0);
    int(&mut p, 0, 2);
    map(&mut p, 0, &[("a", "b")]);
    map(&mut p, 0, &[]);
    head(&mut p, DOUBLE, 1);
    p.extend_from_slice(&1.5f64.to_be_bytes());
    head(&mut p, STRUCT_END, 0);
    simple_list(&mut p, 200, b"xyz");
    head(&mut p, INT8, 201);
    p.extend_from_slice(&[0; 8]);
    let bytes = frame(&p);
    let f = assert_framing(P, &bytes);
    assert_eq!(f.attributes().method.as_deref(), Some("call"));
    assert_lossless(P, &bytes);
    assert_id_rewrite(P, &bytes, 1 << 20);
}

#[test]
fn a_bytes_vector_may_be_a_list_and_ints_may_be_wide() {
    // sBuffer as LIST of INT1/ZERO_TAG (older encoders), iVersion as INT2,
    // iTimeout as INT4 although it fits in one byte.
    let mut p = Vec::new();
    p.extend_from_slice(&[0x11, 0x00, 0x01]);
    int(&mut p, 2, 0);
    int(&mut p, 3, 0);
    int(&mut p, 4, 5);
    string(&mut p, 5, b"S");
    string(&mut p, 6, b"f");
    head(&mut p, LIST, 7);
    int(&mut p, 0, 3);
    p.extend_from_slice(&[0x00, 0x41, 0x0c, 0x00, 0xff]);
    p.extend_from_slice(&[0x82, 0, 0, 0, 100]);
    map(&mut p, 9, &[]);
    map(&mut p, 10, &[]);
    let f = assert_framing(P, &frame(&p));
    assert_eq!(f.request_id(), RequestId(5));
    assert_eq!(f.attributes().timeout_ms, Some(100));
}

#[test]
fn headers_are_capped_but_the_frame_is_whole() {
    let context: Vec<(String, String)> = (0..MAX_HEADERS + 10)
        .map(|i| (format!("k{i}"), format!("v{i}")))
        .collect();
    let bytes = req(&Req {
        context,
        ..Req::default()
    });
    let f = assert_framing(P, &bytes);
    assert_eq!(f.attributes().headers.len(), MAX_HEADERS);
    assert_eq!(f.attributes().header("k0"), Some("v0"));
    assert_eq!(f.attributes().header(&format!("k{}", MAX_HEADERS)), None);
    assert_lossless(P, &bytes);
}

// === failures ===

#[test]
fn the_length_is_checked_before_the_body() {
    assert_incomplete(P, &[]);
    assert_incomplete(P, &[0, 0, 0]);
    assert_incomplete(P, &[0, 0, 0, 9]);
    for len in [0u8, 4] {
        assert!(matches!(
            decode_err(P, &[0, 0, 0, len]),
            CodecError::Malformed { .. }
        ));
    }
    let config = CodecConfig::with_max_frame_size(100).unwrap();
    assert!(matches!(
        decode_err_with(P, config, &[0, 0, 0, 101]),
        CodecError::FrameTooLarge {
            size: 101,
            max: 100,
            ..
        }
    ));
    assert!(matches!(
        decode_err(P, &[0xff, 0xff, 0xff, 0xff]),
        CodecError::FrameTooLarge { .. }
    ));
    // Another protocol's bytes: refused at the fifth byte.
    assert!(matches!(
        decode_err(P, b"\0\0\0\x20{"),
        CodecError::BadMagic { found: 0x7b, .. }
    ));
    // A 9-byte packet is waited for until whole.
    assert_incomplete(P, &[0, 0, 0, 9, 0x10, 0x01]);
}

#[test]
fn missing_and_mistyped_fields_are_malformed() {
    let r = Req::default();
    // Cut after each field: a required field is missing.
    let full = req(&r);
    let mut p = Vec::new();
    int(&mut p, 1, 1);
    assert_eq!(malformed_what(&frame(&p)), "cPacketType (tag 2) missing");
    int(&mut p, 2, 0);
    int(&mut p, 3, 0);
    int(&mut p, 4, 1);
    assert_eq!(
        malformed_what(&frame(&p)),
        "tag 5 (sServantName or iRet) missing"
    );
    string(&mut p, 5, b"S");
    assert_eq!(malformed_what(&frame(&p)), "sFuncName (tag 6) missing");
    // A complete request minus its status map.
    let no_status = frame(&full[4..full.len() - 2]);
    assert_eq!(malformed_what(&no_status), "status (tag 10) missing");
    // An INT8 where an int goes.
    let mut p = Vec::new();
    int(&mut p, 1, 1);
    int(&mut p, 2, 0);
    int(&mut p, 3, 0);
    head(&mut p, INT8, 4);
    p.extend_from_slice(&[0; 8]);
    assert!(malformed_what(&frame(&p)).contains("integer field"));
    // An INT2 cPacketType.
    let mut p = Vec::new();
    int(&mut p, 1, 1);
    p.extend_from_slice(&[0x21, 0x01, 0x00]);
    assert!(malformed_what(&frame(&p)).contains("integer field"));
}

#[test]
fn lengths_past_the_packet_are_malformed() {
    let r = Req::default();
    let good = req(&r);
    // The servant's STRING1 length (byte 11, after `10 01 2c 3c 40 07 56`)
    // made larger than what follows.
    let mut bad = good.clone();
    assert_eq!(bad[10], 0x56);
    bad[11] = 0xff;
    assert!(malformed_what(&bad).contains("past the end"));
    // A STRING4 claiming 4 GiB.
    let mut p = req_head(&r);
    head(&mut p, STRING4, 11);
    p.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]);
    let mut tail = Vec::new();
    req_tail(&mut tail, &r);
    let mut q = req_head(&r);
    q.extend_from_slice(&tail);
    q.extend_from_slice(&p[req_head(&r).len()..]);
    assert!(malformed_what(&frame(&q)).contains("past the end"));
    // A negative map length.
    let mut p = req_head(&r);
    head(&mut p, MAP, 9);
    int(&mut p, 0, -1);
    assert_eq!(malformed_what(&frame(&p)), "a negative container length");
    // A huge list count with nothing behind it ends at the packet's end.
    let mut p = req_head(&r);
    req_tail(&mut p, &r);
    head(&mut p, LIST, 11);
    int(&mut p, 0, i32::MAX);
    assert!(malformed_what(&frame(&p)).contains("past the end"));
    // A SIMPLE_LIST longer than the packet.
    let mut p = req_head(&r);
    req_tail(&mut p, &r);
    head(&mut p, SIMPLE_LIST, 11);
    head(&mut p, INT1, 0);
    int(&mut p, 0, 1000);
    assert!(malformed_what(&frame(&p)).contains("past the end"));
}

#[test]
fn nesting_is_bounded() {
    let r = Req::default();
    let nested = |depth: usize| {
        let mut p = req_head(&r);
        req_tail(&mut p, &r);
        head(&mut p, STRUCT_BEGIN, 11);
        for _ in 1..depth {
            head(&mut p, STRUCT_BEGIN, 0);
        }
        for _ in 0..depth {
            head(&mut p, STRUCT_END, 0);
        }
        frame(&p)
    };
    assert_framing(P, &nested(MAX_DEPTH));
    assert_eq!(
        malformed_what(&nested(MAX_DEPTH + 1)),
        "values nested deeper than 32 containers"
    );
    // Lists inside lists count too.
    let mut p = req_head(&r);
    req_tail(&mut p, &r);
    head(&mut p, LIST, 11);
    for _ in 0..MAX_DEPTH + 1 {
        int(&mut p, 0, 1);
        head(&mut p, LIST, 0);
    }
    int(&mut p, 0, 0);
    assert!(malformed_what(&frame(&p)).contains("nested deeper"));
}

#[test]
fn trailing_garbage_and_odd_types_are_malformed() {
    let r = Req::default();
    let mut p = req_head(&r);
    req_tail(&mut p, &r);
    let good = p.clone();
    // A trailing head with no value.
    p.push(0xb2);
    assert!(malformed_what(&frame(&p)).contains("past the end"));
    // A top-level STRUCT_END.
    let mut p = good.clone();
    head(&mut p, STRUCT_END, 11);
    assert!(malformed_what(&frame(&p)).contains("STRUCT_END"));
    // Types 14 and 15.
    for ty in [14u8, 15] {
        let mut p = good.clone();
        p.push(0xb0 | ty);
        assert!(malformed_what(&frame(&p)).contains("unknown type"));
    }
    // A map whose value sits at tag 0.
    let mut p = req_head(&r);
    head(&mut p, MAP, 9);
    int(&mut p, 0, 1);
    string(&mut p, 0, b"k");
    string(&mut p, 0, b"v");
    assert_eq!(malformed_what(&frame(&p)), "a map value is not at tag 1");
}

#[test]
fn undefined_packet_types_are_refused() {
    let bytes = req(&Req {
        packet_type: 2,
        ..Req::default()
    });
    assert!(matches!(
        decode_err(P, &bytes),
        CodecError::Unsupported {
            what: "cPacketType",
            value: 2,
            ..
        }
    ));
}

#[test]
fn a_response_to_a_request_built_here_round_trips() {
    let bytes = resp(-5, ret::TARSSERVERQUEUETIMEOUT, b"", Some("late"));
    let f = assert_framing(P, &bytes);
    assert_eq!(f.request_id(), RequestId(0xffff_fffb));
    assert_eq!(f.status(), Some(-6));
    assert_id_rewrite(P, &bytes, 12);
}

// === properties ===

fn req_spec() -> impl Strategy<Value = Req> {
    (
        prop_oneof![Just(1i16), Just(3), Just(5), any::<i16>()],
        prop_oneof![Just(0i8), Just(1)],
        any::<i32>(),
        prop_oneof![any::<i32>(), -200i32..200],
        ".{0,20}",
        "[a-zA-Z_]{1,12}",
        proptest::collection::vec(any::<u8>(), 0..300),
        any::<i32>(),
        proptest::collection::vec(("[a-z]{0,8}", ".{0,300}"), 0..4),
    )
        .prop_map(
            |(version, packet_type, message_type, id, servant, func, buffer, timeout, context)| {
                Req {
                    version,
                    packet_type,
                    message_type,
                    id,
                    servant,
                    func,
                    buffer,
                    timeout,
                    context,
                }
            },
        )
}

/// `iRet` 0 is a success, in a ResponsePacket and in a TUP answer (where
/// a missing `STATUS_RESULT_CODE` is 0); any other code an error.
#[test]
fn classifies_by_iret() {
    let c = codec(P);
    for fixture in [
        &fx::TARS_RESPONSE_ECHO[..],
        &fx::TARS_GO_TUP_RESPONSE,
        &fx::TARS_NODE_TUP_RESPONSE,
    ] {
        let ok = decode_one(P, fixture);
        assert_eq!(ok.status(), Some(ret::TARSSERVERSUCCESS));
        assert_eq!(c.classify(&ok), ResponseClass::Success);
    }
    for fixture in [
        &fx::TARS_RESPONSE_INVOKE_TIMEOUT[..],
        &fx::TARS_NODE_TUP_RESPONSE_INVOKE_TIMEOUT,
        &fx::TARS_RESPONSE_NO_FUNC,
    ] {
        let failed = decode_one(P, fixture);
        assert_ne!(failed.status(), Some(0));
        assert_eq!(c.classify(&failed), ResponseClass::Error);
    }
    for code in [ret::TARSSERVERNOFUNCERR, 20, 1] {
        let answer = decode_one(P, response(1, 9, code, "x").as_bytes());
        assert_eq!(c.classify(&answer), ResponseClass::Error, "iRet {code}");
    }
}

/// Tars servers never call clients: clients share the pools.
#[test]
fn clients_share_pools() {
    assert_eq!(P.pinning(), Pinning::Pooled);
}

/// A splice that cannot be done leaves the frame as it was.
#[test]
fn a_bad_splice_changes_nothing() {
    let mut raw = BytesMut::from(&fx::TARS_REQUEST_ECHO[..]);
    let len = raw.len();
    for slot in [
        Splice {
            at: 2,
            end: 3,
            tag: 4,
        },
        Splice {
            at: 10,
            end: 9,
            tag: 4,
        },
        Splice {
            at: 10,
            end: len + 1,
            tag: 4,
        },
    ] {
        assert!(TarsCodec::splice_id(&mut raw, slot, RequestId(300)).is_err());
    }
    assert!(
        TarsCodec::splice_id(
            &mut raw,
            Splice {
                at: 8,
                end: 10,
                tag: 4
            },
            RequestId(1 << 33)
        )
        .is_err()
    );
    assert_eq!(&raw[..], &fx::TARS_REQUEST_ECHO[..]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn arbitrary_valid_requests_round_trip(r in req_spec(), new_id in any::<u32>()) {
        let bytes = req(&r);
        let f = assert_framing(P, &bytes);
        assert_lossless(P, &bytes);
        #[allow(clippy::cast_sign_loss)]
        let id = u64::from(r.id as u32);
        prop_assert_eq!(f.request_id(), RequestId(id));
        let kind = if r.packet_type == TARSONEWAY { FrameKind::Oneway } else { FrameKind::Request };
        prop_assert_eq!(f.kind(), kind);
        prop_assert_eq!(f.attributes().service.as_deref(), Some(r.servant.as_str()));
        prop_assert_eq!(f.attributes().method.as_deref(), Some(r.func.as_str()));
        prop_assert_eq!(f.attributes().headers.len(), r.context.len());
        let mut moved = assert_id_rewrite(P, &bytes, u64::from(new_id));
        moved.set_request_id(RequestId(id)).unwrap();
        prop_assert_eq!(moved.as_bytes(), &bytes[..]);
        let h = codec(P).hijack(&f, ErrorKind::Unavailable);
        let back = decode_one(P, h.as_bytes());
        prop_assert_eq!(back.request_id(), f.request_id());
        prop_assert_eq!(back.status(), Some(ret::TARSPROXYCONNECTERR));
    }

    #[test]
    fn arbitrary_responses_round_trip(id in any::<i32>(), code in any::<i32>(), result in proptest::collection::vec(any::<u8>(), 0..300), desc in proptest::option::of(".{0,300}")) {
        let bytes = resp(id, code, &result, desc.as_deref());
        let f = assert_framing(P, &bytes);
        prop_assert_eq!(f.status(), Some(code));
        assert_lossless(P, &bytes);
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        assert_no_panic(P, &data);
    }

    /// A valid request with one byte changed anywhere: an error or a frame,
    /// never a panic, and never a frame of another length.
    #[test]
    fn corrupted_requests_never_panic(r in req_spec(), at in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut bytes = req(&r);
        let i = at.index(bytes.len());
        bytes[i] = byte;
        let mut data = vec![0u8];
        data.extend_from_slice(&bytes);
        assert_no_panic(P, &data);
    }
}
