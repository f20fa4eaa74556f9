//! A tap on a tunnel's bytes: how something above the pumps (the L4
//! filter chain, in the `filter` layer) sees and rewrites what a tunnel
//! carries, without the pumps knowing about filters.
//!
//! A tunnel without a tap (every tunnel unless its listener has byte
//! filters) pays one `None` check per read, and keeps splicing bulk
//! streams. A tunnel with a tap never splices: every byte passes through
//! user space, one read (at most one pipe buffer) at a time, so the tap
//! sees each read before it is written on. The tap may rewrite a read in
//! place, grow it, or empty it; what it leaves is what goes on, and what
//! is pending when the tunnel pauses is the rewritten bytes, so a pause
//! never replays a read through the tap twice.

use std::fmt;

/// Which way bytes travel through a tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Way {
    /// Client to upstream.
    ToUpstream,
    /// Upstream to client.
    ToClient,
}

/// What the tunnel does after a tap has seen a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TapVerdict {
    /// Write on what the tap left in the buffer.
    Continue,
    /// Close the connection now (both sides); nothing more is written.
    Close,
}

/// One connection's view of its bytes.
pub(crate) trait Tap: Send + fmt::Debug {
    /// `data` was just read going `way` (never empty unless `end`); the
    /// tap may change it. `end`: the source has ended (`data` is empty,
    /// and whatever the tap puts in it is written before the end is
    /// passed on).
    fn on_data(&mut self, way: Way, data: &mut Vec<u8>, end: bool) -> TapVerdict;

    /// Whether the connection may move to the next generation at an
    /// upgrade: false when the tap holds per-connection state that cannot
    /// move, and the connection then drains where it is (the rule is in
    /// the `filter` layer's docs).
    fn moves(&self) -> bool;
}

/// A tunnel closed because its tap said so ([`TapVerdict::Close`]).
#[derive(Debug, thiserror::Error)]
#[error("closed by an L4 filter (bytes going {way:?})")]
pub(crate) struct ClosedByTap {
    pub way: Way,
}

impl ClosedByTap {
    /// As the pumps report failures: an `io::Error` (`ConnectionAborted`)
    /// carrying this value.
    pub(crate) fn into_io(self) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::ConnectionAborted, self)
    }
}
