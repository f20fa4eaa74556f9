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
    let known: Vec<&str> = Protocol::ALL.iter().map(|p| p.name()).collect();
    let known = known.join(" ");
    let err = "thrift".parse::<Protocol>().unwrap_err();
    assert_eq!(err.known, known);
    assert!(known.starts_with("bolt dubbo rocketmq tars"), "{known}");
    assert_eq!(
        err.to_string(),
        format!("unknown protocol \"thrift\" (known: {known})")
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
    for (name, protocol, bytes) in fixtures::all() {
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
    for (name, protocol, bytes) in fixtures::all() {
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
    for (name, protocol, bytes) in fixtures::all() {
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

/// Every registered protocol brings fixtures (its module's
/// `fixtures::ALL`), with names unique across protocols (they name the
/// fuzz seed files).
#[test]
fn every_protocol_has_fixtures_with_unique_names() {
    let mut names = std::collections::HashSet::new();
    for &p in Protocol::ALL {
        assert!(!p.fixtures().is_empty(), "{p}");
    }
    for (name, _, _) in fixtures::all() {
        assert!(names.insert(name), "{name} twice");
    }
}

/// The proxy's own error answers are never counted as successes: every
/// protocol classifies its hijack of every request fixture, for every
/// reason, as an error.
#[test]
fn every_hijack_is_classified_as_an_error() {
    let kinds = [
        ErrorKind::Timeout,
        ErrorKind::NoRoute,
        ErrorKind::Unavailable,
        ErrorKind::Overloaded,
        ErrorKind::BadRequest,
        ErrorKind::BadResponse,
        ErrorKind::Internal,
    ];
    let mut requests = 0;
    for (name, protocol, bytes) in fixtures::all() {
        let mut codec = protocol.codec(CodecConfig::default());
        let Ok(Some(request)) = codec.decode(&mut BytesMut::from(bytes)) else {
            continue;
        };
        if request.kind() != FrameKind::Request {
            continue;
        }
        requests += 1;
        for kind in kinds {
            let error = codec.hijack(&request, kind);
            assert_eq!(error.kind(), FrameKind::Response, "{name} {kind:?}");
            assert_eq!(
                codec.classify(&error),
                ResponseClass::Error,
                "{name} {kind:?}: {:?}",
                error.status()
            );
        }
    }
    assert!(
        requests >= Protocol::ALL.len(),
        "{requests} request fixtures"
    );
}

/// Only a protocol whose frames carry a variable-width id builds a
/// [`Splice`]; the others refuse one rather than write somewhere.
#[test]
fn fixed_width_protocols_refuse_a_splice() {
    for protocol in [Protocol::Bolt, Protocol::Dubbo] {
        let mut raw = BytesMut::from(&[0u8; 32][..]);
        let slot = Splice {
            at: 4,
            end: 8,
            tag: 0,
        };
        assert!(protocol.splice_id(&mut raw, slot, RequestId(7)).is_err());
        assert_eq!(&raw[..], &[0u8; 32][..], "{protocol}: unchanged");
    }
}
