//! [`Frame`]: one decoded message, its wire bytes and what routing needs.
//!
//! A frame owns the exact bytes it was decoded from (split off the read
//! buffer without a copy). Everything else — kind, request id, status,
//! attributes — is a view computed once at decode time. Proxying a frame is
//! writing those bytes; the only mutation a proxy needs, rewriting the
//! request id into another connection's id space, edits them in place (Bolt,
//! Dubbo, RocketMQ binary headers) or splices the new value in where its
//! width varies (the decimal in a RocketMQ JSON header, a Tars integer
//! field), so a frame is never re-serialised from parsed fields and
//! nothing the codec does not model is lost.

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
    /// RocketMQ JSON header: the decimal text of `opaque` at
    /// `raw[start..end]`. Bytes 0..4 hold the frame length minus 4 and bytes
    /// 5..8 the header length; both move with the text's width.
    JsonDecimal { start: usize, end: usize },
    /// Tars: the whole `iRequestId` field (head and value) at
    /// `raw[at..end]`, an integer in its smallest encoding (1 to 5 bytes).
    /// Bytes 0..4 hold the frame length; it moves with the field's width.
    TarsInt { at: usize, end: usize, tag: u8 },
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
            IdSlot::JsonDecimal { start, end } => {
                // Java writes `opaque` as a signed int; keep its bit pattern.
                #[allow(clippy::cast_possible_wrap)]
                let signed = narrow as i32;
                self.splice_json_decimal(start, end, signed)?;
                true
            }
            IdSlot::TarsInt { at, end, tag } => {
                // Tars ids are `int`s; keep the bit pattern.
                #[allow(clippy::cast_possible_wrap)]
                let signed = narrow as i32;
                self.splice_tars_int(at, end, tag, signed)?;
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

    /// Replaces the JSON number at `raw[start..end]` with `value` and fixes
    /// the two RocketMQ length fields if its width changed.
    fn splice_json_decimal(
        &mut self,
        start: usize,
        end: usize,
        value: i32,
    ) -> Result<(), CodecError> {
        let mut digits = [0u8; 11];
        let text = decimal(value, &mut digits);
        let old_width = end.saturating_sub(start);
        if text.len() == old_width
            && let Some(slot) = self.raw.get_mut(start..end)
        {
            slot.copy_from_slice(text);
            return Ok(());
        }
        let rewrite = |what| CodecError::Rewrite {
            protocol: self.protocol,
            what,
        };
        let (Some(prefix), Some(suffix)) = (self.raw.get(..start), self.raw.get(end..)) else {
            return Err(rewrite("opaque field outside the frame"));
        };
        let new_len = prefix.len() + text.len() + suffix.len();
        let header_field = wire::u32_at(&self.raw, 4).ok_or(rewrite("frame shorter than 8"))?;
        // The digits sit inside the header, so the old header length covers
        // `old_width` and the subtraction cannot underflow for a frame this
        // codec decoded; checked anyway.
        let header_len = ((header_field & 0x00ff_ffff) as usize + text.len())
            .checked_sub(old_width)
            .filter(|&n| n <= 0x00ff_ffff)
            .ok_or(rewrite("JSON header length out of range"))?;
        let body_len = new_len
            .checked_sub(4)
            .and_then(|n| u32::try_from(n).ok())
            .ok_or(rewrite("frame length out of range"))?;
        let mut out = BytesMut::with_capacity(new_len);
        out.extend_from_slice(prefix);
        out.extend_from_slice(text);
        out.extend_from_slice(suffix);
        // `header_len` fits in 24 bits (checked above).
        #[allow(clippy::cast_possible_truncation)]
        let header_field = (header_field & 0xff00_0000) | header_len as u32;
        let ok =
            wire::put_u32_at(&mut out, 0, body_len) && wire::put_u32_at(&mut out, 4, header_field);
        if !ok {
            return Err(rewrite("frame shorter than 8"));
        }
        self.raw = out;
        self.id_slot = IdSlot::JsonDecimal {
            start,
            end: start + text.len(),
        };
        Ok(())
    }
}

impl Frame {
    /// Replaces the Tars integer field at `raw[at..end]` with `value` in its
    /// smallest encoding, moving the rest of the frame if the width changed
    /// and fixing the length prefix (see the `tars` module docs).
    fn splice_tars_int(
        &mut self,
        at: usize,
        end: usize,
        tag: u8,
        value: i32,
    ) -> Result<(), CodecError> {
        let rewrite = |what| CodecError::Rewrite {
            protocol: self.protocol,
            what,
        };
        let mut buf = [0u8; 5];
        let field = tars_int_field(tag, value, &mut buf);
        let old_len = self.raw.len();
        if at < 4 || at > end || end > old_len {
            return Err(rewrite("request id field outside the frame"));
        }
        let new_len = old_len - (end - at) + field.len();
        let total = u32::try_from(new_len).map_err(|_| rewrite("frame length out of range"))?;
        let new_end = at + field.len();
        if new_end > end {
            self.raw.resize(new_len, 0);
            self.raw.copy_within(end..old_len, new_end);
        } else if new_end < end {
            self.raw.copy_within(end..old_len, new_end);
            self.raw.truncate(new_len);
        }
        if let Some(slot) = self.raw.get_mut(at..new_end) {
            slot.copy_from_slice(field);
        }
        if !wire::put_u32_at(&mut self.raw, 0, total) {
            return Err(rewrite("frame shorter than its length prefix"));
        }
        self.id_slot = IdSlot::TarsInt {
            at,
            end: new_end,
            tag,
        };
        Ok(())
    }
}

/// A Tars integer field (head with `tag` < 15, then the value) in the
/// smallest encoding that holds `value`, as every Tars encoder writes it
/// (TarsGo `WriteInt32`): ZERO_TAG (type 12) for 0, INT1 (0), INT2 (1) or
/// INT4 (2).
pub(crate) fn tars_int_field(tag: u8, value: i32, buf: &mut [u8; 5]) -> &[u8] {
    let tag = (tag & 0x0f) << 4;
    let len = if value == 0 {
        buf[0] = tag | 12;
        1
    } else if let Ok(v) = i8::try_from(value) {
        buf[0] = tag;
        buf[1..2].copy_from_slice(&v.to_be_bytes());
        2
    } else if let Ok(v) = i16::try_from(value) {
        buf[0] = tag | 1;
        buf[1..3].copy_from_slice(&v.to_be_bytes());
        3
    } else {
        buf[0] = tag | 2;
        buf[1..5].copy_from_slice(&value.to_be_bytes());
        5
    };
    &buf[..len]
}

/// Formats `value` in decimal into `buf` without allocating.
fn decimal(value: i32, buf: &mut [u8; 11]) -> &[u8] {
    let mut n = value.unsigned_abs();
    let mut i = buf.len();
    loop {
        i -= 1;
        // `n % 10` is a single digit.
        #[allow(clippy::cast_possible_truncation)]
        let digit = (n % 10) as u8;
        buf[i] = b'0' + digit;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if value < 0 {
        i -= 1;
        buf[i] = b'-';
    }
    &buf[i..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_formats_the_i32_range() {
        let mut b = [0u8; 11];
        for v in [0, 7, -7, 10, 1_234_567, i32::MAX, i32::MIN] {
            assert_eq!(decimal(v, &mut b), v.to_string().as_bytes());
        }
    }
}
