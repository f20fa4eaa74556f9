#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The codec API as a connection task uses it: decode a client's stream,
//! route, rewrite ids into an upstream's id space and back, hijack, and move
//! a connection between "processes" mid-stream through a serialised state.
//! Plus a deterministic fuzz smoke over the fixtures (the `fuzz/` crate runs
//! the same harness for longer).

use bytes::BytesMut;

use baton_worker::codec::{
    AnyCodec, CodecConfig, CodecState, Direction, ErrorKind, FrameKind, Protocol, RequestId,
};
use baton_worker::codec::{bolt, dubbo, fixtures, rocketmq};

fn codec(p: Protocol) -> AnyCodec {
    p.codec(CodecConfig::default())
}

#[test]
fn proxy_round_trip_rewrites_ids_both_ways() {
    let mut client_side = codec(Protocol::Bolt);
    let mut upstream_side = codec(Protocol::Bolt);

    // Client → proxy: a request, routed on its service.
    let mut from_client = BytesMut::from(&bolt::fixtures::BOLT_REQUEST_PROTOBUF[..]);
    let mut request = client_side.decode(&mut from_client).unwrap().unwrap();
    assert_eq!(request.kind(), FrameKind::Request);
    let client_id = request.request_id();
    assert_eq!(
        request.attributes().service.as_deref(),
        Some("com.alipay.rpc.common.service.facade.pb.SampleServicePb:1.0")
    );
    // Into the upstream connection's id space.
    request.set_request_id(RequestId(1)).unwrap();
    let mut to_upstream = BytesMut::new();
    upstream_side.encode(&request, &mut to_upstream);
    assert_eq!(
        to_upstream.len(),
        bolt::fixtures::BOLT_REQUEST_PROTOBUF.len()
    );

    // The upstream decodes it with id 1 and answers (here: a canned
    // response with the id set to 1).
    let mut server = codec(Protocol::Bolt);
    let seen = server.decode(&mut to_upstream).unwrap().unwrap();
    assert_eq!(seen.request_id(), RequestId(1));
    let mut from_upstream = BytesMut::from(&bolt::fixtures::BOLT_RESPONSE_PROTOBUF[..]);
    let mut response = upstream_side.decode(&mut from_upstream).unwrap().unwrap();
    response.set_request_id(RequestId(1)).unwrap();

    // Proxy → client: back into the client's id space.
    response.set_request_id(client_id).unwrap();
    let mut to_client = BytesMut::new();
    client_side.encode(&response, &mut to_client);
    let mut client = codec(Protocol::Bolt);
    let answer = client.decode(&mut to_client).unwrap().unwrap();
    assert_eq!(answer.request_id(), client_id);
    assert!(answer.is_response());
}

#[test]
fn hijack_and_heartbeat_for_every_protocol() {
    for (p, request, heartbeat) in [
        (
            Protocol::Bolt,
            &bolt::fixtures::BOLT_REQUEST_PROTOBUF[..],
            Some(&bolt::fixtures::BOLT_HEARTBEAT_REQUEST[..]),
        ),
        (
            Protocol::Dubbo,
            &dubbo::fixtures::DUBBO_REQUEST_NOTIFY_JOB[..],
            Some(&dubbo::fixtures::DUBBO_HEARTBEAT_REQUEST[..]),
        ),
        (
            Protocol::RocketMq,
            &rocketmq::fixtures::ROCKETMQ_JSON_SEND_V2_JAVA[..],
            None,
        ),
    ] {
        let mut c = codec(p);
        let req = c.decode(&mut BytesMut::from(request)).unwrap().unwrap();
        let err = c.hijack(&req, ErrorKind::Unavailable);
        let back = codec(p)
            .decode(&mut err.clone().into_bytes())
            .unwrap()
            .unwrap();
        assert_eq!(back.request_id(), req.request_id(), "{p}");
        assert_eq!(back.kind(), FrameKind::Response, "{p}");
        assert!(
            back.status().is_some_and(|s| s != 0 && s != 20),
            "{p}: error status"
        );
        if let Some(hb) = heartbeat {
            let hb = c.decode(&mut BytesMut::from(hb)).unwrap().unwrap();
            let reply = c.heartbeat_reply(&hb).unwrap();
            assert_eq!(
                reply.kind(),
                FrameKind::Heartbeat(Direction::Response),
                "{p}"
            );
        }
    }
}

/// A live upgrade stops reading at a frame boundary, ships the unconsumed
/// bytes and the codec state, and the new generation continues: the frames
/// it decodes are exactly those the old one would have.
#[test]
fn a_connection_moves_between_processes_mid_stream() {
    for (name, p, bytes) in fixtures::all() {
        if name == "bolt_v2_response" {
            continue;
        }
        // Three frames; the old generation has read 1.5 of them.
        let mut stream = BytesMut::new();
        for _ in 0..3 {
            stream.extend_from_slice(bytes);
        }
        let cut = bytes.len() + bytes.len() / 2;
        let cfg = bincode::config::standard();
        // The old generation: decodes what it has, then ships its state and
        // the unconsumed bytes over the handoff channel (bincode).
        let (first, wire) = {
            let mut old = codec(p);
            let mut buf = BytesMut::from(&stream[..cut]);
            let first = old.decode(&mut buf).unwrap().unwrap();
            assert!(old.decode(&mut buf).unwrap().is_none(), "{name}");
            let wire = bincode::serde::encode_to_vec((old.state(), buf.to_vec()), cfg).unwrap();
            (first, wire)
        };
        let ((state, unconsumed), _): ((CodecState, Vec<u8>), usize) =
            bincode::serde::decode_from_slice(&wire, cfg).unwrap();
        assert_eq!(state.protocol(), p);

        let mut new = AnyCodec::from_state(state).unwrap();
        let mut buf = BytesMut::from(&unconsumed[..]);
        buf.extend_from_slice(&stream[cut..]);
        let second = new.decode(&mut buf).unwrap().unwrap();
        let third = new.decode(&mut buf).unwrap().unwrap();
        assert!(buf.is_empty(), "{name}");
        assert_eq!(second, first, "{name}");
        assert_eq!(third, first, "{name}");
    }
}

/// Deterministic fuzz smoke: each fixture, mutated a few thousand ways and
/// fed in varying chunks, through the fuzz harness (which asserts the codec
/// contract on everything that decodes). Longer runs: `fuzz/README.md`.
#[test]
fn fuzz_smoke_over_mutated_fixtures() {
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut frames = 0;
    for (_, p, bytes) in fixtures::all() {
        for _ in 0..1500 {
            let mut data = vec![next() as u8];
            data.extend_from_slice(bytes);
            for _ in 0..(next() % 4) {
                let at = (next() as usize) % data.len();
                match next() % 3 {
                    0 => data[at] = next() as u8,
                    1 => data.truncate(at.max(1)),
                    _ => data.extend_from_slice(&bytes[..at.min(bytes.len())]),
                }
            }
            frames += baton_worker::codec::fuzzing::decode_stream(p, &data);
        }
    }
    // Most mutations keep the first frame whole: the smoke really decodes.
    assert!(frames > 10_000, "only {frames} frames decoded");
}
