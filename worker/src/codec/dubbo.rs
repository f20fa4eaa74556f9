//! Apache Dubbo 2 (the `dubbo://` protocol, `ExchangeCodec`/`DubboCodec`).
//!
//! # Wire format
//!
//! A 16-byte header, big-endian, then `bodyLen` bytes of body:
//!
//! ```text
//!  0        1        2        3        4                                  12                 16
//!  +--------+--------+--------+--------+----------------------------------+------------------+
//!  | 0xda   | 0xbb   | flag   | status | request id (u64)                 | bodyLen (i32)    |
//!  +--------+--------+--------+--------+----------------------------------+------------------+
//!  | body: serialized with the serialization named in the flag                               |
//!  +-----------------------------------------------------------------------------------------+
//!
//!  flag:  bit 7 (0x80) request · bit 6 (0x40) two-way · bit 5 (0x20) event
//!         bits 0-4 serialization id (2 = hessian2, Dubbo's default)
//! ```
//!
//! `status` is meaningful in responses: OK 20, CLIENT_TIMEOUT 30,
//! SERVER_TIMEOUT 31, BAD_REQUEST 40, BAD_RESPONSE 50, SERVICE_NOT_FOUND 60,
//! SERVICE_ERROR 70, SERVER_ERROR 80, CLIENT_ERROR 90,
//! SERVER_THREADPOOL_EXHAUSTED_ERROR 100 (Dubbo `Response`).
//!
//! A request body (`DubboCodec.encodeRequestData`) starts with four strings —
//! framework version, service path, service version, method name — then the
//! parameter descriptor, the arguments and the attachments map. A response
//! body with status OK starts with a response-type int; any other status
//! carries a single string, the error message (`out.writeUTF(errorMessage)`).
//!
//! # Sequence
//!
//! Two-way requests are answered by a response with the same id, in any
//! order; oneway requests (no two-way bit) are not answered. Heartbeats are
//! two-way events whose data is null (hessian2 `N`); the receiver answers
//! with an event response, status OK, same id, null data
//! ([`DubboCodec::heartbeat_reply`], which echoes the request's
//! serialization and null bytes). Other events (e.g. a provider's READONLY
//! event, data `"R"`) are [`FrameKind::Event`] for the proxy to handle.
//!
//! # Routing attributes (requests only)
//!
//! For hessian2 bodies the four leading strings are read with a bounded
//! reader (`codec::hessian2`, crate-private): `protocol_version`, `service` (the path,
//! i.e. the interface), `service_version`, `method`. Nothing after them is
//! parsed (so attachments such as `group` are not available). A body in
//! another serialization, or one that is not four strings, still proxies —
//! it just has no attributes.
//!
//! # Failure handling
//!
//! * Bytes 0-1 not `0xdabb` → `BadMagic` (checked byte by byte, as soon as
//!   each arrives).
//! * `bodyLen` negative, or `16 + bodyLen` above the max frame size →
//!   `FrameTooLarge`/`Malformed` from the header alone.
//! * A body whose strings cannot be read is not an error (see above).
//!
//! Hijacked responses ([`DubboCodec::hijack`]) are what Dubbo's own
//! `ExchangeCodec.encodeResponse` writes for a failed request: flag `0x02`
//! (response, hessian2), the mapped status, the request's id, and a body
//! that is the hessian2 string [`ErrorKind::message`]. Hessian2 regardless
//! of the request's serialization: a Dubbo client picks the deserializer
//! from the response's own flag, and hessian2 is always available.
//!
//! | [`ErrorKind`] | status |
//! |---|---|
//! | Timeout | SERVER_TIMEOUT 31 |
//! | NoRoute | SERVICE_NOT_FOUND 60 |
//! | Unavailable | SERVICE_ERROR 70 |
//! | Overloaded | SERVER_THREADPOOL_EXHAUSTED_ERROR 100 |
//! | BadRequest | BAD_REQUEST 40 |
//! | BadResponse | BAD_RESPONSE 50 |
//! | Internal | SERVER_ERROR 80 |
//!
//! Dubbo's `DefaultFuture` raises a `TimeoutException` for 30/31 and a
//! `RemotingException` carrying the message for the others.
//!
//! # Success and pinning
//!
//! A response succeeded when its status is OK (20), whatever its body
//! holds (a result, or an exception the service threw, which is the
//! application's answer); any other status is an error
//! ([`DubboCodec::classify`]), as `DefaultFuture.returnFromResponse` reads
//! it. Clients share each cluster's pool ([`Pinning::Pooled`](super::Pinning::Pooled)): a request
//! a provider sends on its own (Dubbo's parameter callbacks) has no client
//! to go to there and is dropped; baton does not proxy callbacks.

use bytes::{BufMut, BytesMut};
use serde::{Deserialize, Serialize};

use super::frame::{FrameParts, IdSlot};
use super::hessian2;
use super::wire;
use super::{
    Attributes, Codec, CodecConfig, CodecError, Direction, ErrorKind, Frame, FrameKind, Protocol,
    RequestId, ResponseClass,
};

const PROTOCOL: Protocol = Protocol::Dubbo;

pub const MAGIC: u16 = 0xdabb;
pub const HEADER_LEN: usize = 16;

pub const FLAG_REQUEST: u8 = 0x80;
pub const FLAG_TWO_WAY: u8 = 0x40;
pub const FLAG_EVENT: u8 = 0x20;
pub const SERIALIZATION_MASK: u8 = 0x1f;
pub const SERIALIZATION_HESSIAN2: u8 = 2;

/// Dubbo `Response` status codes.
pub mod status {
    pub const OK: u8 = 20;
    pub const CLIENT_TIMEOUT: u8 = 30;
    pub const SERVER_TIMEOUT: u8 = 31;
    pub const BAD_REQUEST: u8 = 40;
    pub const BAD_RESPONSE: u8 = 50;
    pub const SERVICE_NOT_FOUND: u8 = 60;
    pub const SERVICE_ERROR: u8 = 70;
    pub const SERVER_ERROR: u8 = 80;
    pub const CLIENT_ERROR: u8 = 90;
    pub const SERVER_THREADPOOL_EXHAUSTED_ERROR: u8 = 100;
}

/// What a Dubbo connection remembers between frames: the serialization the
/// client's requests use (informational: reported by the proxy, and kept
/// across an upgrade so a new generation knows it before the next frame).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DubboState {
    pub serialization: Option<u8>,
}

/// The Dubbo 2 codec.
#[derive(Debug)]
pub struct DubboCodec {
    config: CodecConfig,
    state: DubboState,
}

// === impl DubboCodec ===

impl Codec for DubboCodec {
    type State = DubboState;
    const REQUEST_ID_BITS: u32 = 64;

    fn new(config: CodecConfig) -> Self {
        Self {
            config,
            state: DubboState::default(),
        }
    }

    fn from_state(config: CodecConfig, state: DubboState) -> Result<Self, CodecError> {
        if state.serialization.is_some_and(|s| s > SERIALIZATION_MASK) {
            return Err(CodecError::InvalidState {
                protocol: PROTOCOL,
                what: "serialization id wider than 5 bits",
            });
        }
        Ok(Self { config, state })
    }

    fn state(&self) -> DubboState {
        self.state.clone()
    }

    fn config(&self) -> CodecConfig {
        self.config
    }

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        let [hi, lo] = MAGIC.to_be_bytes();
        match (buf.first(), buf.get(1)) {
            (None, _) => return Ok(None),
            (Some(&a), _) if a != hi => return Err(bad_magic(u32::from(a) << 8)),
            (Some(&a), Some(&b)) if b != lo => {
                return Err(bad_magic(u32::from(a) << 8 | u32::from(b)));
            }
            _ => {}
        }
        if buf.len() < HEADER_LEN {
            return Ok(None);
        }
        let (Some(&flag), Some(&status), Some(id), Some(body_len)) = (
            buf.get(2),
            buf.get(3),
            wire::u64_at(buf, 4),
            wire::i32_at(buf, 12),
        ) else {
            return Ok(None);
        };
        // Dubbo reads the length as a Java int; negative is nonsense.
        let body_len = u64::try_from(body_len).map_err(|_| CodecError::Malformed {
            protocol: PROTOCOL,
            what: "negative body length",
        })?;
        let size = self
            .config
            .check_frame_size(PROTOCOL, HEADER_LEN as u64 + body_len)?;
        if buf.len() < size {
            return Ok(None);
        }

        let raw = buf.split_to(size);
        let body = raw.get(HEADER_LEN..).unwrap_or_default();
        let serialization = flag & SERIALIZATION_MASK;
        let request = flag & FLAG_REQUEST != 0;
        let two_way = flag & FLAG_TWO_WAY != 0;
        let event = flag & FLAG_EVENT != 0;
        let heartbeat = event && is_null_payload(body);
        let direction = if request {
            Direction::Request
        } else {
            Direction::Response
        };
        let kind = match (request, event, heartbeat, two_way) {
            (_, true, true, _) => FrameKind::Heartbeat(direction),
            (_, true, false, _) => FrameKind::Event(direction),
            (true, false, _, true) => FrameKind::Request,
            (true, false, _, false) => FrameKind::Oneway,
            (false, false, _, _) => FrameKind::Response,
        };
        let attributes = if request && !event && serialization == SERIALIZATION_HESSIAN2 {
            request_attributes(body)
        } else {
            Attributes::default()
        };
        if request {
            self.state.serialization = Some(serialization);
        }
        Ok(Some(Frame::new(
            FrameParts {
                protocol: PROTOCOL,
                kind,
                request_id: RequestId(id),
                expects_response: request && two_way,
                status: (!request).then_some(i32::from(status)),
                attributes,
                id_slot: IdSlot::U64 { at: 4 },
            },
            raw,
        )))
    }

    fn classify(&self, response: &Frame) -> ResponseClass {
        ResponseClass::success_if(response.status() == Some(i32::from(status::OK)))
    }

    fn hijack(&self, request: &Frame, kind: ErrorKind) -> Frame {
        let status = match kind {
            ErrorKind::Timeout => status::SERVER_TIMEOUT,
            ErrorKind::NoRoute => status::SERVICE_NOT_FOUND,
            ErrorKind::Unavailable => status::SERVICE_ERROR,
            ErrorKind::Overloaded => status::SERVER_THREADPOOL_EXHAUSTED_ERROR,
            ErrorKind::BadRequest => status::BAD_REQUEST,
            ErrorKind::BadResponse => status::BAD_RESPONSE,
            ErrorKind::Internal => status::SERVER_ERROR,
        };
        let mut body = BytesMut::new();
        hessian2::write_string(&mut body, kind.message());
        response(
            request.request_id(),
            SERIALIZATION_HESSIAN2,
            status,
            &body,
            FrameKind::Response,
        )
    }

    fn heartbeat_reply(&self, heartbeat: &Frame) -> Option<Frame> {
        if heartbeat.kind() != FrameKind::Heartbeat(Direction::Request)
            || !heartbeat.expects_response()
        {
            return None;
        }
        let bytes = heartbeat.as_bytes();
        let serialization = bytes
            .get(2)
            .map_or(SERIALIZATION_HESSIAN2, |f| f & SERIALIZATION_MASK);
        // The request's body is its serialization's null: answer with the same.
        let body = bytes.get(HEADER_LEN..).unwrap_or_default();
        Some(response(
            heartbeat.request_id(),
            FLAG_EVENT | serialization,
            status::OK,
            body,
            FrameKind::Heartbeat(Direction::Response),
        ))
    }

    fn heartbeat(&self, id: RequestId) -> Option<Frame> {
        let mut body = BytesMut::with_capacity(1);
        hessian2::write_null(&mut body);
        let flag = FLAG_REQUEST | FLAG_TWO_WAY | FLAG_EVENT | SERIALIZATION_HESSIAN2;
        Some(frame(
            id,
            flag,
            0,
            &body,
            FrameKind::Heartbeat(Direction::Request),
            true,
        ))
    }
}

fn bad_magic(found: u32) -> CodecError {
    CodecError::BadMagic {
        protocol: PROTOCOL,
        found,
        expected: u32::from(MAGIC),
    }
}

/// Whether an event body is its serialization's null, i.e. a heartbeat:
/// hessian2 `N`, the JSON serializations' `null`, or nothing at all.
fn is_null_payload(body: &[u8]) -> bool {
    let trimmed = body.trim_ascii();
    trimmed.is_empty() || trimmed == b"N" || trimmed == b"null"
}

fn request_attributes(body: &[u8]) -> Attributes {
    let mut reader = hessian2::Reader::new(body);
    let mut next = || reader.read_string();
    match (next(), next(), next(), next()) {
        (Ok(protocol_version), Ok(service), Ok(service_version), Ok(method)) => Attributes {
            protocol_version,
            service,
            service_version,
            method,
            ..Attributes::default()
        },
        _ => Attributes::default(),
    }
}

fn response(id: RequestId, flag: u8, status: u8, body: &[u8], kind: FrameKind) -> Frame {
    frame(id, flag, status, body, kind, false)
}

fn frame(
    id: RequestId,
    flag: u8,
    status: u8,
    body: &[u8],
    kind: FrameKind,
    expects_response: bool,
) -> Frame {
    let mut raw = BytesMut::with_capacity(HEADER_LEN + body.len());
    raw.put_u16(MAGIC);
    raw.put_u8(flag);
    raw.put_u8(status);
    raw.put_u64(id.0);
    // Bodies built here are a message or a null: far below 2^31.
    #[allow(clippy::cast_possible_truncation)]
    raw.put_u32(body.len() as u32);
    raw.extend_from_slice(body);
    let request = flag & FLAG_REQUEST != 0;
    Frame::new(
        FrameParts {
            protocol: PROTOCOL,
            kind,
            request_id: id,
            expects_response,
            status: (!request).then_some(i32::from(status)),
            attributes: Attributes::default(),
            id_slot: IdSlot::U64 { at: 4 },
        },
        raw,
    )
}

#[doc(hidden)]
pub mod fixtures;
#[cfg(test)]
mod tests;
