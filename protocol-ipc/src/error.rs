use crate::message::Kind;

/// Everything that can go wrong on a channel.
///
/// Every variant but [`IpcError::Closed`] means the channel can no longer
/// be trusted; the owner logs it and closes the channel.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IpcError {
    #[error("{op} on ipc channel: {source}")]
    Io {
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("ipc peer closed the channel")]
    Closed,
    #[error("datagram truncated by the kernel: larger than {max} bytes", max = crate::MAX_DATAGRAM)]
    Truncated,
    #[error("control message truncated by the kernel: more fds than a datagram may carry")]
    AncillaryTruncated,
    #[error(
        "datagram of {len} bytes is shorter than the {} byte header",
        crate::frame::HEADER_LEN
    )]
    ShortDatagram { len: usize },
    #[error("bad magic {0:02x?}: the peer does not speak baton ipc")]
    BadMagic([u8; 2]),
    #[error("unsupported wire version {0} (this side speaks {ours})", ours = crate::WIRE_VERSION)]
    WireVersion(u8),
    #[error("reserved header bytes are not zero")]
    Reserved,
    #[error("header declares a {declared} byte body but {actual} bytes followed")]
    BodyLength { declared: usize, actual: usize },
    #[error("{count} fds in one datagram (at most {})", crate::MAX_FDS)]
    TooManyFds { count: usize },
    #[error("body of {len} bytes exceeds the {} byte bound", crate::MAX_BODY)]
    TooLarge { len: usize },
    #[error("header declares {declared} fds but {received} arrived")]
    FdCountMismatch { declared: usize, received: usize },
    #[error("{kind:?} carries {expected} fds, but the datagram has {received}")]
    WrongFds {
        kind: Kind,
        expected: usize,
        received: usize,
    },
    #[error("unknown message kind {0}")]
    UnknownKind(u8),
    #[error("decode {kind:?} body: {reason}")]
    Decode { kind: Kind, reason: String },
    #[error("encode {kind:?} body: {reason}")]
    Encode { kind: Kind, reason: String },
    #[error("expected {expected}, got {got:?}")]
    Unexpected { expected: &'static str, got: Kind },
    #[error("peer refused: {0}")]
    Refused(String),
    #[error("no common protocol version: we speak {ours:?}, the peer speaks {theirs:?}")]
    NoCommonVersion { ours: Vec<u16>, theirs: Vec<u16> },
    #[error("timed out after {0:?} waiting for {1}")]
    Timeout(std::time::Duration, &'static str),
}

impl IpcError {
    pub(crate) fn io(op: &'static str) -> impl FnOnce(std::io::Error) -> IpcError {
        move |source| IpcError::Io { op, source }
    }
}
