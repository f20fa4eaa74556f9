//! [`Frame`]: one decoded message, its wire bytes and what routing needs.
//!
//! A frame owns the exact bytes it was decoded from (split off the read
//! buffer without a copy). Everything else — kind, request id, status,
//! attributes — is a view computed once at decode time. Proxying a frame is
//! writing those bytes; the only mutation a proxy needs, rewriting the
//! request id into another connection's id space, edits them in place where
//! the id has a fixed width and offset ([`IdSlot::U32`], [`IdSlot::U64`]),
//! and otherwise asks the frame's own codec to splice the new value in
//! ([`super::Codec::splice_id`]: the decimal in a RocketMQ JSON header, a
//! Tars integer field), so a frame is never re-serialised from parsed
//! fields, nothing the codec does not model is lost, and no protocol's
//! wire details live here.

use std::fmt;

use bytes::BytesMut;
use serde::{Deserialize, Serialize};

use super::{CodecError, Protocol, wire};

/// A request id as carried on the wire: u32 for Bolt and RocketMQ (`opaque`,
/// an i32 whose bit pattern is kept), u64 for Dubbo. One type for all
/// protocols so the proxy's id maps are protocol-agnostic; each protocol
/// refuses ids wider than its field ([`Protocol::request_id_bits`]).
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
pub struct RequestId(pub u64);

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// Which way a heartbeat or event travels.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    Request,
    Response,
}

/// What a frame is, for the proxy's purposes.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FrameKind {
    /// A request that expects a [`FrameKind::Response`] with the same id.
    Request,
    /// A request that gets no response (Bolt type 2, Dubbo without the
    /// two-way bit, RocketMQ flag bit 1).
    Oneway,
    /// The answer to a request.
    Response,
    /// Connection keep-alive: answered by the proxy on the side it arrives
    /// on ([`super::Codec::heartbeat_reply`]), never forwarded.
    Heartbeat(Direction),
    /// A protocol event that is not a heartbeat (Dubbo's event flag with a
    /// payload, e.g. the READONLY event a provider sends before it stops).
    Event(Direction),
}

/// Routing attributes, parsed once at decode time from requests only (a
/// response is routed by its id, never by its content).
///
/// Every field is optional: a peer may omit it, and a body the codec cannot
/// read within its bounds (say a Dubbo request in a serialization other than
/// hessian2) still proxies — it only routes by the listener's default.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Attributes {
    /// Bolt: header `service` (SOFARPC's key), else `sofa_head_target_service`
    /// (its older key). Dubbo: the service path (interface name). Tars:
    /// `sServantName`.
    pub service: Option<String>,
    /// Bolt: header `sofa_head_method_name`. Dubbo: the method name. Tars:
    /// `sFuncName`.
    pub method: Option<String>,
    /// Dubbo: the service version (`version` in the body, e.g. `1.0.0`).
    pub service_version: Option<String>,
    /// Dubbo: the framework version string that starts every request body
    /// (e.g. `2.0.2`).
    pub protocol_version: Option<String>,
    /// Bolt: the class name section (e.g. `com.alipay.sofa.rpc.core.request.SofaRequest`).
    pub class_name: Option<String>,
    /// RocketMQ: the topic from the ext fields (`topic`, or `b` in
    /// `SendMessageRequestHeaderV2`).
    pub topic: Option<String>,
    /// RocketMQ: the request code (e.g. 310 SEND_MESSAGE_V2).
    pub code: Option<i32>,
    /// Bolt: the request's timeout field in milliseconds, when positive.
    /// Tars: `iTimeout`, when positive.
    pub timeout_ms: Option<u32>,
    /// Bolt: the header map; RocketMQ: the ext fields; Tars: the `context`
    /// map (its first 64 entries). In wire order.
    pub headers: Vec<(String, String)>,
}

impl Attributes {
    /// The first header (Bolt) or ext field (RocketMQ) named `key`.
    pub fn header(&self, key: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Where a frame's request id lives in its bytes.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum IdSlot {
    /// A big-endian u32 at this offset (Bolt, RocketMQ binary header).
    U32 { at: usize },
    /// A big-endian u64 at this offset (Dubbo).
    U64 { at: usize },
    /// A field whose width depends on its value (the decimal text of a
    /// RocketMQ JSON header, a Tars integer): rewritten by the protocol's
    /// own [`super::Codec::splice_id`].
    Spliced(Splice),
}

/// Where a variable-width request id field sits in a frame's bytes, for
/// its codec's [`super::Codec::splice_id`]: `raw[at..end]`, plus one
/// byte the codec keeps for itself (Tars: the field's tag; RocketMQ: 0).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Splice {
    pub at: usize,
    pub end: usize,
    pub tag: u8,
}

/// The decoded parts a codec hands to [`Frame::new`].
#[derive(Debug)]
pub(crate) struct FrameParts {
    pub(crate) protocol: Protocol,
    pub(crate) kind: FrameKind,
    pub(crate) request_id: RequestId,
    pub(crate) expects_response: bool,
    pub(crate) status: Option<i32>,
    pub(crate) attributes: Attributes,
    pub(crate) id_slot: IdSlot,
}

/// One complete protocol message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    protocol: Protocol,
    kind: FrameKind,
    request_id: RequestId,
    expects_response: bool,
    status: Option<i32>,
    attributes: Attributes,
    id_slot: IdSlot,
    raw: BytesMut,
}

// === impl Frame ===

impl Frame {
    pub(crate) fn new(parts: FrameParts, raw: BytesMut) -> Self {
        Self {
            protocol: parts.protocol,
            kind: parts.kind,
            request_id: parts.request_id,
            expects_response: parts.expects_response,
            status: parts.status,
            attributes: parts.attributes,
            id_slot: parts.id_slot,
            raw,
        }
    }

    /// New bytes for the same message (its headers edited): the id stays
    /// where it was, ahead of what changed.
    pub(crate) fn replace(&mut self, raw: BytesMut, attributes: Attributes) {
        self.raw = raw;
        self.attributes = attributes;
    }

    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    pub fn kind(&self) -> FrameKind {
        self.kind
    }

    /// Requests, oneways, and heartbeats or events sent as requests.
    pub fn is_request(&self) -> bool {
        matches!(
            self.kind,
            FrameKind::Request
                | FrameKind::Oneway
                | FrameKind::Heartbeat(Direction::Request)
                | FrameKind::Event(Direction::Request)
        )
    }

    pub fn is_response(&self) -> bool {
        !self.is_request()
    }

    pub fn is_heartbeat(&self) -> bool {
        matches!(self.kind, FrameKind::Heartbeat(_))
    }

    /// Whether the peer waits for a response with this frame's id: true for
    /// requests and two-way heartbeats/events, false for oneways and all
    /// responses. A proxy tracks (and on failure hijacks) exactly these.
    pub fn expects_response(&self) -> bool {
        self.expects_response
    }

    pub fn request_id(&self) -> RequestId {
        self.request_id
    }

    /// The response status as the protocol writes it (Bolt `respStatus`,
    /// Dubbo status byte, RocketMQ response `code`); `None` for requests.
    pub fn status(&self) -> Option<i32> {
        self.status
    }

    pub fn attributes(&self) -> &Attributes {
        &self.attributes
    }

    /// The frame's exact wire bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.raw
    }

    /// The wire length in bytes.
    pub fn len(&self) -> usize {
        self.raw.len()
    }

    /// Always false for a decoded frame; here for symmetry with [`Self::len`].
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// The wire bytes, for a write without a copy.
    pub fn into_bytes(self) -> BytesMut {
        self.raw
    }

    /// Rewrites the request id in the frame's bytes, so that encoding it
    /// sends the new id. Fails, leaving the frame unchanged, if the id does
    /// not fit the protocol's field.
    pub fn set_request_id(&mut self, id: RequestId) -> Result<(), CodecError> {
        let bits = self.protocol.request_id_bits();
        let narrow = match u32::try_from(id.0) {
            Ok(v) => v,
            Err(_) if bits == 64 => 0,
            Err(_) => {
                return Err(CodecError::RequestIdOutOfRange {
                    protocol: self.protocol,
                    id: id.0,
                    bits,
                });
            }
        };
        let written = match self.id_slot {
            IdSlot::U32 { at } => wire::put_u32_at(&mut self.raw, at, narrow),
            IdSlot::U64 { at } => wire::put_u64_at(&mut self.raw, at, id.0),
            IdSlot::Spliced(slot) => {
                let spliced = self
                    .protocol
                    .splice_id(&mut self.raw, slot, id)
                    .map_err(|what| CodecError::Rewrite {
                        protocol: self.protocol,
                        what,
                    })?;
                self.id_slot = IdSlot::Spliced(spliced);
                true
            }
        };
        if !written {
            // Only reachable if a codec built an IdSlot outside the frame.
            return Err(CodecError::Rewrite {
                protocol: self.protocol,
                what: "request id field outside the frame",
            });
        }
        self.request_id = id;
        Ok(())
    }
}
