//! Shared checks for the per-protocol tests.

use bytes::BytesMut;

use super::{AnyCodec, CodecConfig, CodecError, Frame, Protocol};

pub(crate) fn codec(protocol: Protocol) -> AnyCodec {
    protocol.codec(CodecConfig::default())
}

/// Decodes `bytes` as exactly one complete frame.
pub(crate) fn decode_one(protocol: Protocol, bytes: &[u8]) -> Frame {
    let mut buf = BytesMut::from(bytes);
    let frame = codec(protocol)
        .decode(&mut buf)
        .expect("decodes")
        .expect("complete");
    assert!(buf.is_empty(), "{} bytes left over", buf.len());
    frame
}

/// Decodes `bytes`, expecting an error.
pub(crate) fn decode_err(protocol: Protocol, bytes: &[u8]) -> CodecError {
    decode_err_with(protocol, CodecConfig::default(), bytes)
}

pub(crate) fn decode_err_with(protocol: Protocol, config: CodecConfig, bytes: &[u8]) -> CodecError {
    let mut buf = BytesMut::from(bytes);
    match protocol.codec(config).decode(&mut buf) {
        Err(e) => e,
        other => panic!("expected an error, got {other:?}"),
    }
}

/// Asserts `bytes` is incomplete: `Ok(None)` and nothing consumed.
pub(crate) fn assert_incomplete(protocol: Protocol, bytes: &[u8]) {
    let mut buf = BytesMut::from(bytes);
    let got = codec(protocol).decode(&mut buf);
    assert!(matches!(got, Ok(None)), "expected Ok(None), got {got:?}");
    assert_eq!(&buf[..], bytes, "Ok(None) must not consume");
}

/// The framing invariants for one valid frame:
/// * every strict prefix is `Ok(None)` and consumes nothing;
/// * split at every byte boundary, then completed, it decodes to the same
///   frame as in one piece;
/// * byte by byte it decodes to the same frame;
/// * followed by a second copy, the two decode back to back and the
///   remainder is left intact.
pub(crate) fn assert_framing(protocol: Protocol, bytes: &[u8]) -> Frame {
    let whole = decode_one(protocol, bytes);
    for k in 0..bytes.len() {
        let mut c = codec(protocol);
        let mut buf = BytesMut::from(&bytes[..k]);
        assert!(
            matches!(c.decode(&mut buf), Ok(None)),
            "prefix of {k} bytes"
        );
        assert_eq!(buf.len(), k, "prefix of {k} bytes consumed");
        buf.extend_from_slice(&bytes[k..]);
        let frame = c.decode(&mut buf).expect("decodes").expect("complete");
        assert_eq!(frame, whole, "split at {k}");
        assert!(buf.is_empty());
    }
    let mut c = codec(protocol);
    let mut buf = BytesMut::new();
    let mut got = None;
    for &b in bytes {
        buf.extend_from_slice(&[b]);
        if let Some(f) = c.decode(&mut buf).expect("decodes") {
            assert!(got.is_none(), "two frames from one");
            got = Some(f);
        }
    }
    assert_eq!(got.as_ref(), Some(&whole), "byte by byte");

    let mut c = codec(protocol);
    let mut buf = BytesMut::from(bytes);
    buf.extend_from_slice(bytes);
    buf.extend_from_slice(&bytes[..bytes.len() / 2]);
    let a = c.decode(&mut buf).expect("first").expect("complete");
    let b = c.decode(&mut buf).expect("second").expect("complete");
    assert_eq!(a, whole);
    assert_eq!(b, whole);
    assert_eq!(&buf[..], &bytes[..bytes.len() / 2], "remainder intact");
    assert!(matches!(c.decode(&mut buf), Ok(None)));
    whole
}

/// Encoding a decoded frame gives back its input.
pub(crate) fn assert_lossless(protocol: Protocol, bytes: &[u8]) {
    let frame = decode_one(protocol, bytes);
    let mut out = BytesMut::new();
    codec(protocol).encode(&frame, &mut out);
    assert_eq!(&out[..], bytes);
}

/// Sets a new id, re-encodes, re-decodes: the new id reads back and every
/// other property is unchanged.
pub(crate) fn assert_id_rewrite(protocol: Protocol, bytes: &[u8], new_id: u64) -> Frame {
    let mut frame = decode_one(protocol, bytes);
    let original = frame.clone();
    frame
        .set_request_id(super::RequestId(new_id))
        .expect("in range");
    assert_eq!(frame.request_id().0, new_id);
    let mut out = BytesMut::new();
    codec(protocol).encode(&frame, &mut out);
    let back = decode_one(protocol, &out);
    assert_eq!(back.request_id().0, new_id);
    assert_eq!(back.kind(), original.kind());
    assert_eq!(back.status(), original.status());
    assert_eq!(back.attributes(), original.attributes());
    assert_eq!(back.expects_response(), original.expects_response());
    back
}

/// Arbitrary bytes never panic the decoder, whatever the chunking.
pub(crate) fn assert_no_panic(protocol: Protocol, data: &[u8]) {
    super::fuzzing::decode_stream(protocol, data);
}
