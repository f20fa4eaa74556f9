//! SOFA Bolt v1 (protocol code 1), the transport of SOFARPC.
//!
//! # Wire format
//!
//! Every integer is big-endian. A request (type 1) or oneway (type 2) has a
//! 22-byte header:
//!
//! ```text
//!  0      1      2      4      5             9      10            14        16        18            22
//!  +------+------+------+------+-------------+------+-------------+---------+---------+-------------+
//!  |proto | type |cmdcode|ver2 | requestId   |codec | timeout     |classLen |headerLen| contentLen  |
//!  | 0x01 |  1|2 | u16  | u8   | u32         | u8   | i32 (ms)    |  u16    |  u16    |  u32        |
//!  +------+------+------+------+-------------+------+-------------+---------+---------+-------------+
//!  | class name (classLen) | header map (headerLen) | content (contentLen)                          |
//!  +------------------------------------------------------------------------------------------------+
//! ```
//!
//! A response (type 0) has a 20-byte header: the same fields with a `u16`
//! `respStatus` in place of the 4-byte timeout:
//!
//! ```text
//!  0      1      2      4      5             9      10        12        14        16            20
//!  +------+------+------+------+-------------+------+---------+---------+---------+-------------+
//!  |proto | type |cmdcode|ver2 | requestId   |codec |respStatus|classLen|headerLen| contentLen  |
//!  +------+------+------+------+-------------+------+---------+---------+---------+-------------+
//! ```
//!
//! * `cmdcode`: 0 heartbeat, 1 RPC request, 2 RPC response (sofa-bolt
//!   `RpcCommandCode`; others are refused). `codec`: 1 hessian2, 11
//!   protobuf (carried, never interpreted).
//! * The header map is SOFA's `SimpleMapSerializer`: repeated
//!   `[keyLen i32][key][valLen i32][val]`, UTF-8; a value length of -1 is a
//!   null value (SOFARPC writes it for null), read as empty.
//! * `respStatus` (sofa-bolt `ResponseStatus`): SUCCESS 0x0000, ERROR
//!   0x0001, SERVER_EXCEPTION 0x0002, UNKNOWN 0x0003,
//!   SERVER_THREADPOOL_BUSY 0x0004, ERROR_COMM 0x0005, NO_PROCESSOR 0x0006,
//!   TIMEOUT 0x0007, CLIENT_SEND_ERROR 0x0008, CODEC_EXCEPTION 0x0009,
//!   CONNECTION_CLOSED 0x0010, SERVER_SERIAL_EXCEPTION 0x0011,
//!   SERVER_DESERIAL_EXCEPTION 0x0012 (note the jump from 0x0009 to 0x0010).
//!
//! # Sequence
//!
//! Requests and responses are matched by `requestId` (u32) and may be
//! answered in any order. Either side may send a heartbeat request (cmd code
//! 0, no class/header/content); the peer answers with a response of cmd code
//! 0, status SUCCESS, same id ([`BoltCodec::heartbeat_reply`]). A oneway
//! request is never answered.
//!
//! # Routing attributes (requests only)
//!
//! `service` is the header `service` (SOFARPC's key, also what
//! sofa-bolt-node writes), else `sofa_head_target_service` (the older key
//! MOSN also reads); `method` is `sofa_head_method_name`; `class_name` and
//! every header are exposed too. The content is never parsed.
//!
//! # Failure handling
//!
//! * First byte not 1 → `BadMagic`; protocol code 2 (Bolt v2) →
//!   `Unsupported` (its header differs; it is not silently misparsed).
//! * Unknown type or cmd code → `Unsupported`, as soon as those bytes are
//!   in, before the rest of the header.
//! * `22 + classLen + headerLen + contentLen` above the max frame size →
//!   `FrameTooLarge` from the header alone.
//! * A header map whose lengths run past its section, or a negative length
//!   other than a -1 value → `Malformed`.
//!
//! Hijacked responses ([`BoltCodec::hijack`]) carry the request's id, ver2
//! and codec, cmd code 2, empty class/header/content and this status:
//!
//! | [`ErrorKind`] | `respStatus` |
//! |---|---|
//! | Timeout | TIMEOUT 0x0007 |
//! | NoRoute | NO_PROCESSOR 0x0006 |
//! | Unavailable | CONNECTION_CLOSED 0x0010 |
//! | Overloaded | SERVER_THREADPOOL_BUSY 0x0004 |
//! | BadRequest | CODEC_EXCEPTION 0x0009 |
//! | BadResponse | ERROR_COMM 0x0005 |
//! | Internal | SERVER_EXCEPTION 0x0002 |
//!
//! (the same mapping MOSN's bolt `Mapping` uses where they overlap). Both
//! sofa-bolt's Java `RpcResponseResolver` and sofa-bolt-node turn a
//! non-success status with empty content into an exception for the caller.
//!
//! # Success and pinning
//!
//! A response succeeded when its `respStatus` is SUCCESS (0); any other
//! status is an error ([`BoltCodec::classify`]), as `RpcResponseResolver`
//! reads it. Servers never call clients, so clients share each cluster's
//! pool ([`Pinning::Pooled`](super::Pinning::Pooled)).

use bytes::{BufMut, BytesMut};
use serde::{Deserialize, Serialize};

use super::frame::{FrameParts, IdSlot};
use super::wire::{self, Cursor};
use super::{
    Attributes, Codec, CodecConfig, CodecError, Direction, ErrorKind, Frame, FrameKind, Protocol,
    RequestId, ResponseClass,
};

const PROTOCOL: Protocol = Protocol::Bolt;

/// Protocol code of Bolt v1 (first byte).
pub const PROTO_V1: u8 = 1;
/// Protocol code of Bolt v2, refused.
pub const PROTO_V2: u8 = 2;

pub const TYPE_RESPONSE: u8 = 0;
pub const TYPE_REQUEST: u8 = 1;
pub const TYPE_ONEWAY: u8 = 2;

pub const CMD_HEARTBEAT: u16 = 0;
pub const CMD_REQUEST: u16 = 1;
pub const CMD_RESPONSE: u16 = 2;

pub const REQUEST_HEADER_LEN: usize = 22;
pub const RESPONSE_HEADER_LEN: usize = 20;

/// Codec byte for hessian2, sofa-bolt's default.
pub const CODEC_HESSIAN2: u8 = 1;

/// sofa-bolt `ResponseStatus` values.
pub mod status {
    pub const SUCCESS: u16 = 0x0000;
    pub const ERROR: u16 = 0x0001;
    pub const SERVER_EXCEPTION: u16 = 0x0002;
    pub const UNKNOWN: u16 = 0x0003;
    pub const SERVER_THREADPOOL_BUSY: u16 = 0x0004;
    pub const ERROR_COMM: u16 = 0x0005;
    pub const NO_PROCESSOR: u16 = 0x0006;
    pub const TIMEOUT: u16 = 0x0007;
    pub const CLIENT_SEND_ERROR: u16 = 0x0008;
    pub const CODEC_EXCEPTION: u16 = 0x0009;
    pub const CONNECTION_CLOSED: u16 = 0x0010;
    pub const SERVER_SERIAL_EXCEPTION: u16 = 0x0011;
    pub const SERVER_DESERIAL_EXCEPTION: u16 = 0x0012;
}

/// The timeout written into heartbeats baton originates: sofa-bolt-node's
/// default heartbeat timeout.
const HEARTBEAT_TIMEOUT_MS: i32 = 3000;

/// Header map keys (SOFARPC `RemotingConstants`).
const HEADER_SERVICE: &str = "service";
const HEADER_TARGET_SERVICE: &str = "sofa_head_target_service";
const HEADER_METHOD: &str = "sofa_head_method_name";

/// What a Bolt connection remembers between frames: the `ver2` and codec
/// the client last sent a request with, so heartbeats baton originates on
/// that connection look like the client's own.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoltState {
    pub ver2: u8,
    pub codec: u8,
}

impl Default for BoltState {
    fn default() -> Self {
        Self {
            ver2: 1,
            codec: CODEC_HESSIAN2,
        }
    }
}

/// The Bolt v1 codec.
#[derive(Debug)]
pub struct BoltCodec {
    config: CodecConfig,
    state: BoltState,
}

fn unsupported(what: &'static str, value: u64) -> CodecError {
    CodecError::Unsupported {
        protocol: PROTOCOL,
        what,
        value,
    }
}

fn malformed(what: &'static str) -> CodecError {
    CodecError::Malformed {
        protocol: PROTOCOL,
        what,
    }
}

// === impl BoltCodec ===

impl Codec for BoltCodec {
    type State = BoltState;
    const REQUEST_ID_BITS: u32 = 32;

    fn new(config: CodecConfig) -> Self {
        Self {
            config,
            state: BoltState::default(),
        }
    }

    fn from_state(config: CodecConfig, state: BoltState) -> Result<Self, CodecError> {
        // Any ver2/codec byte is a value a client may have sent.
        Ok(Self { config, state })
    }

    fn state(&self) -> BoltState {
        self.state.clone()
    }

    fn config(&self) -> CodecConfig {
        self.config
    }

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        let Some(&proto) = buf.first() else {
            return Ok(None);
        };
        match proto {
            PROTO_V1 => {}
            PROTO_V2 => return Err(unsupported("protocol code (Bolt v2)", u64::from(proto))),
            _ => {
                return Err(CodecError::BadMagic {
                    protocol: PROTOCOL,
                    found: u32::from(proto),
                    expected: u32::from(PROTO_V1),
                });
            }
        }
        let Some(&ty) = buf.get(1) else {
            return Ok(None);
        };
        let header_len = match ty {
            TYPE_RESPONSE => RESPONSE_HEADER_LEN,
            TYPE_REQUEST | TYPE_ONEWAY => REQUEST_HEADER_LEN,
            _ => return Err(unsupported("command type", u64::from(ty))),
        };
        let Some(cmd) = wire::u16_at(buf, 2) else {
            return Ok(None);
        };
        if cmd > CMD_RESPONSE {
            return Err(unsupported("command code", u64::from(cmd)));
        }
        if buf.len() < header_len {
            return Ok(None);
        }
        // The three section lengths end the header in both layouts.
        let lens_at = header_len - 8;
        let (Some(class_len), Some(map_len), Some(content_len)) = (
            wire::u16_at(buf, lens_at),
            wire::u16_at(buf, lens_at + 2),
            wire::u32_at(buf, lens_at + 4),
        ) else {
            return Ok(None);
        };
        let size =
            header_len as u64 + u64::from(class_len) + u64::from(map_len) + u64::from(content_len);
        let size = self.config.check_frame_size(PROTOCOL, size)?;
        if buf.len() < size {
            return Ok(None);
        }

        let raw = buf.split_to(size);
        let (Some(&ver2), Some(id), Some(&codec)) = (raw.get(4), wire::u32_at(&raw, 5), raw.get(9))
        else {
            return Err(malformed("header shorter than its fixed fields"));
        };
        let heartbeat = cmd == CMD_HEARTBEAT;
        let (kind, expects_response) = match (ty, heartbeat) {
            (TYPE_RESPONSE, true) => (FrameKind::Heartbeat(Direction::Response), false),
            (TYPE_RESPONSE, false) => (FrameKind::Response, false),
            (TYPE_REQUEST, true) => (FrameKind::Heartbeat(Direction::Request), true),
            (TYPE_REQUEST, false) => (FrameKind::Request, true),
            (_, true) => (FrameKind::Heartbeat(Direction::Request), false),
            (_, false) => (FrameKind::Oneway, false),
        };
        let status = if ty == TYPE_RESPONSE {
            wire::u16_at(&raw, 10).map(i32::from)
        } else {
            None
        };
        let attributes = if ty != TYPE_RESPONSE && !heartbeat {
            let class_end = header_len + usize::from(class_len);
            let map_end = class_end + usize::from(map_len);
            let (Some(class), Some(map)) =
                (raw.get(header_len..class_end), raw.get(class_end..map_end))
            else {
                return Err(malformed("sections shorter than their lengths"));
            };
            let timeout = wire::i32_at(&raw, 10).unwrap_or(0);
            request_attributes(class, map, timeout)?
        } else {
            Attributes::default()
        };
        if ty != TYPE_RESPONSE {
            self.state = BoltState { ver2, codec };
        }
        Ok(Some(Frame::new(
            FrameParts {
                protocol: PROTOCOL,
                kind,
                request_id: RequestId(u64::from(id)),
                expects_response,
                status,
                attributes,
                id_slot: IdSlot::U32 { at: 5 },
            },
            raw,
        )))
    }

    fn hijack(&self, request: &Frame, kind: ErrorKind) -> Frame {
        let status = match kind {
            ErrorKind::Timeout => status::TIMEOUT,
            ErrorKind::NoRoute => status::NO_PROCESSOR,
            ErrorKind::Unavailable => status::CONNECTION_CLOSED,
            ErrorKind::Overloaded => status::SERVER_THREADPOOL_BUSY,
            ErrorKind::BadRequest => status::CODEC_EXCEPTION,
            ErrorKind::BadResponse => status::ERROR_COMM,
            ErrorKind::Internal => status::SERVER_EXCEPTION,
        };
        self.response(request, CMD_RESPONSE, status, FrameKind::Response)
    }

    fn classify(&self, response: &Frame) -> ResponseClass {
        ResponseClass::success_if(response.status() == Some(i32::from(status::SUCCESS)))
    }

    fn heartbeat_reply(&self, heartbeat: &Frame) -> Option<Frame> {
        (heartbeat.kind() == FrameKind::Heartbeat(Direction::Request)
            && heartbeat.expects_response())
        .then(|| {
            self.response(
                heartbeat,
                CMD_HEARTBEAT,
                status::SUCCESS,
                FrameKind::Heartbeat(Direction::Response),
            )
        })
    }

    fn heartbeat(&self, id: RequestId) -> Option<Frame> {
        let id32 = u32::try_from(id.0).ok()?;
        let mut raw = BytesMut::with_capacity(REQUEST_HEADER_LEN);
        raw.put_u8(PROTO_V1);
        raw.put_u8(TYPE_REQUEST);
        raw.put_u16(CMD_HEARTBEAT);
        raw.put_u8(self.state.ver2);
        raw.put_u32(id32);
        raw.put_u8(self.state.codec);
        raw.put_i32(HEARTBEAT_TIMEOUT_MS);
        raw.put_u16(0);
        raw.put_u16(0);
        raw.put_u32(0);
        Some(Frame::new(
            FrameParts {
                protocol: PROTOCOL,
                kind: FrameKind::Heartbeat(Direction::Request),
                request_id: RequestId(u64::from(id32)),
                expects_response: true,
                status: None,
                attributes: Attributes::default(),
                id_slot: IdSlot::U32 { at: 5 },
            },
            raw,
        ))
    }
}

impl BoltCodec {
    /// A 20-byte response to `request` with no class, header or content.
    fn response(&self, request: &Frame, cmd: u16, status: u16, kind: FrameKind) -> Frame {
        let bytes = request.as_bytes();
        let ver2 = bytes.get(4).copied().unwrap_or(self.state.ver2);
        let codec = bytes.get(9).copied().unwrap_or(self.state.codec);
        // Bolt ids are u32; a frame decoded here always fits.
        #[allow(clippy::cast_possible_truncation)]
        let id = request.request_id().0 as u32;
        let mut raw = BytesMut::with_capacity(RESPONSE_HEADER_LEN);
        raw.put_u8(PROTO_V1);
        raw.put_u8(TYPE_RESPONSE);
        raw.put_u16(cmd);
        raw.put_u8(ver2);
        raw.put_u32(id);
        raw.put_u8(codec);
        raw.put_u16(status);
        raw.put_u16(0);
        raw.put_u16(0);
        raw.put_u32(0);
        Frame::new(
            FrameParts {
                protocol: PROTOCOL,
                kind,
                request_id: RequestId(u64::from(id)),
                expects_response: false,
                status: Some(i32::from(status)),
                attributes: Attributes::default(),
                id_slot: IdSlot::U32 { at: 5 },
            },
            raw,
        )
    }
}

/// Parses a request's class name and header map into routing attributes.
pub(crate) fn request_attributes(
    class: &[u8],
    map: &[u8],
    timeout: i32,
) -> Result<Attributes, CodecError> {
    let mut attributes = Attributes {
        class_name: (!class.is_empty()).then(|| wire::text(class)),
        timeout_ms: u32::try_from(timeout).ok().filter(|&t| t > 0),
        headers: parse_header_map(map)?,
        ..Attributes::default()
    };
    attributes.service = attributes
        .header(HEADER_SERVICE)
        .filter(|s| !s.is_empty())
        .or_else(|| attributes.header(HEADER_TARGET_SERVICE))
        .map(str::to_owned);
    attributes.method = attributes.header(HEADER_METHOD).map(str::to_owned);
    Ok(attributes)
}

/// SOFA `SimpleMapSerializer`: `[keyLen i32][key][valLen i32][val]`…
fn parse_header_map(map: &[u8]) -> Result<Vec<(String, String)>, CodecError> {
    let mut cursor = Cursor::new(map);
    let mut out = Vec::new();
    while !cursor.is_empty() {
        let key = read_string(&mut cursor, false)?;
        let value = read_string(&mut cursor, true)?;
        out.push((key, value));
    }
    Ok(out)
}

fn read_string(cursor: &mut Cursor<'_>, nullable: bool) -> Result<String, CodecError> {
    let len = cursor
        .i32()
        .ok_or(malformed("header map entry truncated"))?;
    if len == -1 && nullable {
        return Ok(String::new());
    }
    let len = usize::try_from(len).map_err(|_| malformed("negative header map length"))?;
    let bytes = cursor
        .take(len)
        .ok_or(malformed("header map length past its section"))?;
    Ok(wire::text(bytes))
}

#[doc(hidden)]
pub mod fixtures;
#[cfg(test)]
mod tests;
