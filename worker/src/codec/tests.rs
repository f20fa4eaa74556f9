//! Framework tests: the registry, config bounds, state round trips through
//! bincode (as the handoff carries them), and every fixture through
//! [`AnyCodec`].

use bytes::BytesMut;

use super::fixtures;
use super::*;

#[test]
fn registry_names_round_trip() {
    for &p in Protocol::ALL {
        assert_eq!(p.name().parse::<Protocol>(), Ok(p));
        assert_eq!(p.to_string(), p.name());
        assert_eq!(p.codec(CodecConfig::default()).protocol(), p);
    }
    let err = "thrift".parse::<Protocol>().unwrap_err();
    assert_eq!(err.known, "bolt dubbo rocketmq tars");
    assert_eq!(
        err.to_string(),
        "unknown protocol \"thrift\" (known: bolt dubbo rocketmq tars)"
    );
    assert_eq!(
        Protocol::Bolt.max_request_id(),
        RequestId(u64::from(u32::MAX))
    );
    assert_eq!(Protocol::Dubbo.max_request_id(), RequestId(u64::MAX));
    assert_eq!(Protocol::RocketMq.request_id_bits(), 32);
}

#[test]
fn config_bounds() {
    assert_eq!(CodecConfig::default().max_frame_size(), 16 * 1024 * 1024);
    assert!(CodecConfig::with_max_frame_size(63).is_err());
    assert!(CodecConfig::with_max_frame_size(64).is_ok());
    assert!(CodecConfig::with_max_frame_size(u32::MAX).is_err());
}

fn bincode_round_trip(state: &CodecState) -> CodecState {
    let cfg = bincode::config::standard();
    let bytes = bincode::serde::encode_to_vec(state, cfg).unwrap();
    let (back, _) = bincode::serde::decode_from_slice(&bytes, cfg).unwrap();
    back
}

#[test]
fn state_survives_bincode_and_restores_the_same_codec() {
    for &(name, protocol, bytes) in fixtures::ALL {
        let config = CodecConfig::with_max_frame_size(1 << 20).unwrap();
        let mut codec = protocol.codec(config);
        let mut buf = BytesMut::from(bytes);
        let _ = codec.decode(&mut buf);
        let state = codec.state();
        assert_eq!(state.protocol(), protocol, "{name}");
        let back = bincode_round_trip(&state);
        assert_eq!(back, state, "{name}");
        let restored = AnyCodec::from_state(back).unwrap();
        assert_eq!(restored.state(), state, "{name}");
        assert_eq!(restored.config(), config, "{name}");
    }
}

#[test]
fn bad_states_are_refused() {
    let mut state = Protocol::Bolt.codec(CodecConfig::default()).state();
    state.config = CodecConfig { max_frame_size: 1 };
    assert!(AnyCodec::from_state(state).is_err());
    let state = CodecState {
        config: CodecConfig::default(),
        protocol: ProtocolState::Dubbo(dubbo::DubboState {
            serialization: Some(0x40),
        }),
    };
    assert!(matches!(
        AnyCodec::from_state(state),
        Err(CodecError::InvalidState { .. })
    ));
}

/// Every fixture but the Bolt v2 one decodes as exactly one frame, whose
/// bytes are the fixture and whose re-encoding is the fixture.
#[test]
fn every_fixture_decodes_whole_and_re_encodes_identically() {
    for &(name, protocol, bytes) in fixtures::ALL {
        let mut codec = protocol.codec(CodecConfig::default());
        let mut buf = BytesMut::from(bytes);
        let decoded = codec.decode(&mut buf);
        if name == "bolt_v2_response" {
            assert!(
                matches!(decoded, Err(CodecError::Unsupported { .. })),
                "{name}"
            );
            continue;
        }
        let frame = decoded
            .unwrap()
            .unwrap_or_else(|| panic!("{name}: incomplete"));
        assert!(buf.is_empty(), "{name}: {} bytes left", buf.len());
        assert_eq!(frame.protocol(), protocol);
        let mut out = BytesMut::new();
        codec.encode(&frame, &mut out);
        assert_eq!(&out[..], bytes, "{name}");
    }
}

/// The fuzz harness itself, over the fixtures, so `cargo test` exercises it.
#[test]
fn fuzz_harness_accepts_every_fixture() {
    for &(name, protocol, bytes) in fixtures::ALL {
        for control in 0u8..8 {
            let mut data = vec![control];
            data.extend_from_slice(bytes);
            data.extend_from_slice(bytes);
            let frames = fuzzing::decode_stream(protocol, &data);
            // Control bytes with low bits 0 keep the default limit.
            if control & 3 == 0 && name != "bolt_v2_response" {
                assert_eq!(frames, 2, "{name}");
            }
        }
    }
}

#[test]
fn error_messages_name_protocol_and_cause() {
    let mut codec = Protocol::Dubbo.codec(CodecConfig::default());
    let mut buf = BytesMut::from(&b"\xda\xbb\xc2\x00\0\0\0\0\0\0\0\x01\x7f\xff\xff\xff"[..]);
    let err = codec.decode(&mut buf).unwrap_err();
    assert_eq!(
        err.to_string(),
        "decode dubbo frame: header declares 2147483663 bytes, the limit is 16777216"
    );
}
