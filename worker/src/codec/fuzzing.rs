//! The fuzz harness shared by the `fuzz/` targets, their stable smoke
//! runner, and the worker's own tests. Hidden from docs: not an API.
//!
//! [`decode_stream`] feeds arbitrary bytes to a decoder in arbitrary chunks,
//! decoding after every chunk until the decoder errors or the input is
//! exhausted, and checks the codec contract on everything it decodes. Any
//! violation panics — that is how a fuzzer sees it.

use bytes::BytesMut;

use super::{AnyCodec, CodecConfig, ErrorKind, Protocol, RequestId};

/// The frame-size limits the first input byte selects from: the default,
/// and small ones so that `FrameTooLarge` paths are reached too.
const LIMITS: [u32; 4] = [super::DEFAULT_MAX_FRAME_SIZE, 64, 300, 4096];

/// Runs one fuzz input against `protocol`'s decoder; returns how many
/// frames decoded before an error or the end of the input.
///
/// Layout of `data`: byte 0 picks the frame-size limit (low 2 bits) and
/// seeds the chunk sizes (the rest); the remaining bytes are the stream.
pub fn decode_stream(protocol: Protocol, data: &[u8]) -> usize {
    let Some((&control, stream)) = data.split_first() else {
        return 0;
    };
    let limit = LIMITS[usize::from(control & 3)];
    let Ok(config) = CodecConfig::with_max_frame_size(limit) else {
        return 0;
    };
    let mut frames = 0;
    let mut codec = protocol.codec(config);
    let mut chunks = Lcg(u64::from(control) | 1);
    let mut buf = BytesMut::new();
    let mut fed = 0;
    let mut consumed = 0;
    while fed < stream.len() {
        let step = 1 + (chunks.next() % 97) as usize;
        let end = stream.len().min(fed + step);
        buf.extend_from_slice(&stream[fed..end]);
        fed = end;
        loop {
            let before = buf.len();
            match codec.decode(&mut buf) {
                Ok(Some(frame)) => {
                    let len = frame.len();
                    assert!(len > 0, "empty frame");
                    assert_eq!(
                        before - buf.len(),
                        len,
                        "decode consumed a different length"
                    );
                    assert!(len <= limit as usize, "frame above the limit");
                    assert_eq!(
                        frame.as_bytes(),
                        &stream[consumed..consumed + len],
                        "frame bytes differ from the input"
                    );
                    consumed += len;
                    frames += 1;
                    check_frame(&codec, frame);
                }
                Ok(None) => {
                    assert_eq!(buf.len(), before, "Ok(None) consumed bytes");
                    break;
                }
                Err(_) => return frames,
            }
        }
    }
    frames
}

/// The contract on one decoded frame: lossless re-encode, a state that
/// round-trips, hijack and heartbeat replies that decode as responses to
/// the same id, and request ids that can be rewritten.
fn check_frame(codec: &AnyCodec, mut frame: super::Frame) {
    let protocol = codec.protocol();
    let mut out = BytesMut::new();
    codec.encode(&frame, &mut out);
    assert_eq!(
        &out[..],
        frame.as_bytes(),
        "encode is not the decoded bytes"
    );

    let restored = AnyCodec::from_state(codec.state());
    assert!(restored.is_ok(), "state does not restore: {restored:?}");

    if frame.is_request() {
        let hijack = codec.hijack(&frame, ErrorKind::Timeout);
        let back = redecode(protocol, hijack.as_bytes());
        assert_eq!(back.request_id(), frame.request_id(), "hijack id");
        assert!(back.is_response(), "hijack is not a response");
        if let Some(reply) = codec.heartbeat_reply(&frame) {
            let back = redecode(protocol, reply.as_bytes());
            assert_eq!(back.request_id(), frame.request_id(), "heartbeat reply id");
            assert!(
                back.is_heartbeat() && back.is_response(),
                "heartbeat reply kind"
            );
        }
    }

    let max = protocol.max_request_id().0;
    let new_id = RequestId((frame.request_id().0 ^ 0x5a5a_5a5a_5a5a_5a5a) & max);
    assert!(
        frame.set_request_id(new_id).is_ok(),
        "set_request_id in range"
    );
    assert!(
        frame.set_request_id(RequestId(max)).is_ok(),
        "set_request_id max"
    );
    assert!(frame.set_request_id(new_id).is_ok(), "set_request_id back");
    let back = redecode(protocol, frame.as_bytes());
    assert_eq!(back.request_id(), new_id, "rewritten id does not decode");
    assert_eq!(
        back.kind(),
        frame.kind(),
        "rewriting the id changed the kind"
    );
    if protocol.request_id_bits() < 64 {
        assert!(
            frame.set_request_id(RequestId(max + 1)).is_err(),
            "out-of-range id accepted"
        );
    }
}

/// Decodes `bytes` as exactly one frame with a fresh codec. With the
/// default limit, not the input's: a rewritten RocketMQ JSON id may add up
/// to ten digits to a frame that was at the (tiny, fuzzing-only) limit.
fn redecode(protocol: Protocol, bytes: &[u8]) -> super::Frame {
    let mut codec = protocol.codec(CodecConfig::default());
    let mut buf = BytesMut::from(bytes);
    match codec.decode(&mut buf) {
        Ok(Some(frame)) => {
            assert!(buf.is_empty(), "trailing bytes after a re-decoded frame");
            frame
        }
        // A bug in the codec: what it wrote, it cannot read.
        other => unreachable!("codec cannot decode its own output: {other:?}"),
    }
}

/// A tiny deterministic generator for chunk sizes (no dependency, same
/// sequence on every platform, so a crashing input replays exactly).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}
