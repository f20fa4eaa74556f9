//! Codec errors.
//!
//! Decode errors are on the hot path of a hostile or broken peer, so they are
//! cheap values: no allocation, no formatting until displayed. Every variant
//! names the protocol and what was wrong; the connection task adds which
//! connection it was (peer address, listener) when it logs or counts it.
//!
//! A decode error is final for the stream: the bytes after a bad frame cannot
//! be trusted to start a frame, so the caller closes the connection (after
//! answering the requests it already forwarded, if it can).

use super::Protocol;

/// What went wrong while decoding, re-encoding or restoring a codec.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The stream does not start with this protocol's magic.
    #[error("decode {protocol} frame: bad magic {found:#x}, expected {expected:#x}")]
    BadMagic {
        protocol: Protocol,
        found: u32,
        expected: u32,
    },
    /// The header declares a frame larger than the configured bound. Raised
    /// from the header alone, before any of the body is buffered.
    #[error("decode {protocol} frame: header declares {size} bytes, the limit is {max}")]
    FrameTooLarge {
        protocol: Protocol,
        size: u64,
        max: u32,
    },
    /// A field holds a value the protocol does not define.
    #[error("decode {protocol} frame: unsupported {what} {value}")]
    Unsupported {
        protocol: Protocol,
        what: &'static str,
        value: u64,
    },
    /// The frame is complete but its inside is inconsistent (a length that
    /// runs past its container, a broken header map, invalid JSON…).
    #[error("decode {protocol} frame: {what}")]
    Malformed {
        protocol: Protocol,
        what: &'static str,
    },
    /// The new request id does not fit the protocol's id field.
    #[error("set {protocol} request id: {id} does not fit in {bits} bits")]
    RequestIdOutOfRange {
        protocol: Protocol,
        id: u64,
        bits: u32,
    },
    /// A rewrite would push a length field past what the wire format allows.
    #[error("rewrite {protocol} frame: {what}")]
    Rewrite {
        protocol: Protocol,
        what: &'static str,
    },
    /// A codec configuration outside the allowed range.
    #[error("codec config: {what} (got {value})")]
    InvalidConfig { what: &'static str, value: u64 },
    /// A serialised codec state that this codec cannot adopt.
    #[error("restore {protocol} codec state: {what}")]
    InvalidState {
        protocol: Protocol,
        what: &'static str,
    },
}

/// A protocol name that is not in the registry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown protocol {name:?} (known: {known})")]
pub struct UnknownProtocol {
    pub name: String,
    pub known: &'static str,
}
