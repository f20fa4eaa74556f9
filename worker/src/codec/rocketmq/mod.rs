//! Apache RocketMQ remoting (`RemotingCommand`), between clients, brokers
//! and name servers.
//!
//! # Wire format
//!
//! ```text
//!  0                 4        5                 8
//!  +-----------------+--------+-----------------+------------------+-----------------+
//!  | length (i32)    | serial | header length   | header           | body            |
//!  | = 4 + hdr + body| type   | (24 bits)       | (header length)  | (the rest)      |
//!  +-----------------+--------+-----------------+------------------+-----------------+
//! ```
//!
//! `length` counts everything after itself. The serialize type (the top
//! byte of the second word, `RemotingCommand.markProtocolType`) says how the
//! header is written:
//!
//! * **0, JSON** (the default of the Java client): an object with `code`,
//!   `language`, `version`, `opaque`, `flag`, `remark`, `extFields` (string
//!   map) and `serializeTypeCurrentRPC`. Read as fastjson does (see
//!   the private `json` module: case-insensitive keys, raw control characters in strings).
//! * **1, ROCKETMQ** (`RocketMQSerializable`):
//!
//! ```text
//!  +--------+------+---------+---------+--------+----------------+------------------------------+
//!  | code   | lang | version | opaque  | flag   | remarkLen+data | extLen + repeated            |
//!  | i16    | u8   | i16     | i32     | i32    | i32  bytes     | i32  [keyLen i16][key]       |
//!  |        |      |         |         |        |                |      [valLen i32][val]       |
//!  +--------+------+---------+---------+--------+----------------+------------------------------+
//! ```
//!
//! `flag` bit 0 (`RPC_TYPE`) marks a response, bit 1 (`RPC_ONEWAY`) a oneway
//! request. `opaque` is the request id (an i32; kept as its u32 bit
//! pattern). Frames are re-encoded in the serialize type they arrived in:
//! the codec never re-serialises a header, it edits `opaque` in place
//! (binary) or splices its new decimal into the JSON text.
//!
//! # Sequence
//!
//! Requests flow both ways: clients call brokers and name servers, and
//! brokers call clients (CHECK_TRANSACTION_STATE 39,
//! NOTIFY_CONSUMER_IDS_CHANGED 40, …), so the proxy must keep a client
//! pinned to one upstream connection. A response carries the request's
//! `opaque`. There is no transport-level heartbeat: HEART_BEAT (34) is a
//! client registration that the broker must see, so it is a plain
//! [`FrameKind::Request`] here and [`RocketMqCodec::heartbeat_reply`] is
//! always `None`; it is what [`Codec::registers`] names, so that a broker
//! connection baton dials again (the broker restarted) starts with it.
//!
//! # Routing attributes (requests only)
//!
//! `code` is the request code; `topic` is the ext field `topic` (most
//! request headers), else `b` for the `SendMessageRequestHeaderV2` short
//! form used by SEND_MESSAGE_V2 (310), SEND_BATCH_MESSAGE (320) and
//! SEND_REPLY_MESSAGE_V2 (325); `headers` holds all ext fields.
//!
//! # Failure handling
//!
//! * `length` < 4, a serialize type other than 0 or 1, or a header length
//!   of 0 or past `length - 4` → `Malformed`/`Unsupported`, as soon as the
//!   first 8 bytes are in.
//! * `4 + length` above the max frame size (default 16 MiB, the Java
//!   `NettyDecoder`'s own limit) → `FrameTooLarge` from the first 4 bytes.
//! * A header that does not parse (bad JSON, a binary length past its
//!   container, a JSON header without `opaque`) → `Malformed`. Like the Java
//!   decoder, negative remark/ext lengths in a binary header mean "absent".
//!
//! Hijacked responses ([`RocketMqCodec::hijack`]) use the request's
//! serialize type and version, `flag` = 1, language JAVA (a broker's),
//! the request's opaque, a remark of [`ErrorKind::message`], and this code
//! (`RemotingSysResponseCode`/`ResponseCode`):
//!
//! | [`ErrorKind`] | code |
//! |---|---|
//! | Timeout | SYSTEM_BUSY 2 |
//! | NoRoute | SERVICE_NOT_AVAILABLE 14 |
//! | Unavailable | SERVICE_NOT_AVAILABLE 14 |
//! | Overloaded | SYSTEM_BUSY 2 |
//! | BadRequest | SYSTEM_ERROR 1 |
//! | BadResponse | SYSTEM_ERROR 1 |
//! | Internal | SYSTEM_ERROR 1 |
//!
//! The Java producer retries a send on SYSTEM_BUSY, SYSTEM_ERROR and
//! SERVICE_NOT_AVAILABLE (its default `retryResponseCodes`), which is what a
//! proxy-side failure calls for.
//!
//! Which of these a client gets when (a request timing out, its broker
//! connection lost, an upgrade's drain deadline reached — Internal, so
//! SYSTEM_ERROR) and what baton counts: README.md, "Failure semantics
//! (RocketMQ)", tested in `tests/tests/rocketmq.rs` and
//! `tests/tests/interop_rocketmq.rs`.
//!
//! # Success and pinning
//!
//! A response succeeded only when its `code` is SUCCESS (0)
//! ([`RocketMqCodec::classify`]). Every other code is an error, including
//! the pull answers PULL_NOT_FOUND (19), PULL_RETRY_IMMEDIATELY (20) and
//! PULL_OFFSET_MOVED (21), which tell the consumer it got no message: 20
//! is Dubbo's OK, not RocketMQ's.
//!
//! Brokers call their clients, so a client connection is pinned to
//! upstream connections of its own ([`Pinning::PerClient`]),
//! one per cluster its requests are routed to: what a broker asks on one
//! reaches that client, and the client's answer (a response with the
//! broker's `opaque`, untouched) goes back up it.

mod json;
pub mod route;
pub mod trace;

use std::ops::Range;

use bytes::{BufMut, BytesMut};
use serde::{Deserialize, Serialize};

use super::frame::{FrameParts, IdSlot};
use super::wire::{self, Cursor};
use super::{
    Attributes, Codec, CodecConfig, CodecError, ErrorKind, Frame, FrameKind, Pinning, Protocol,
    RequestId, ResponseClass, Splice,
};

const PROTOCOL: Protocol = Protocol::RocketMq;

/// Bytes before the header: length and serialize type/header length.
pub const PREFIX_LEN: usize = 8;
/// Smallest binary header: code, language, version, opaque, flag, two
/// empty lengths.
pub const MIN_BINARY_HEADER_LEN: usize = 21;
/// Offset of `opaque` in a frame with a binary header.
const BINARY_OPAQUE_AT: usize = PREFIX_LEN + 5;

pub const FLAG_RESPONSE: i32 = 1 << 0;
pub const FLAG_ONEWAY: i32 = 1 << 1;

/// Language code of Java (`LanguageCode.JAVA`), what a broker sends.
const LANGUAGE_JAVA: u8 = 0;

/// Request codes whose header is `SendMessageRequestHeaderV2`, where the
/// topic is the short key `b`.
const SEND_V2_CODES: [i32; 3] = [310, 320, 325];
/// HEART_BEAT: a client's registration with a broker.
const HEART_BEAT: i32 = 34;

/// `RemotingSysResponseCode` / `ResponseCode` values used by hijack.
pub mod code {
    pub const SUCCESS: i32 = 0;
    pub const SYSTEM_ERROR: i32 = 1;
    pub const SYSTEM_BUSY: i32 = 2;
    pub const REQUEST_CODE_NOT_SUPPORTED: i32 = 3;
    pub const SERVICE_NOT_AVAILABLE: i32 = 14;
    pub const PULL_NOT_FOUND: i32 = 19;
    pub const PULL_RETRY_IMMEDIATELY: i32 = 20;
    pub const PULL_OFFSET_MOVED: i32 = 21;
}

/// How a header is serialised (`SerializeType`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SerializeType {
    Json,
    RocketMq,
}

impl SerializeType {
    fn from_byte(b: u8) -> Option<Self> {
        match b {
            0 => Some(Self::Json),
            1 => Some(Self::RocketMq),
            _ => None,
        }
    }

    fn byte(self) -> u8 {
        match self {
            Self::Json => 0,
            Self::RocketMq => 1,
        }
    }
}

/// What a RocketMQ connection remembers between frames: how the client
/// writes headers and which remoting version it speaks, so that frames
/// baton originates on the connection before the client sends another one
/// (a hijack after a handoff) look like the client's own.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RocketMqState {
    pub serialize_type: Option<SerializeType>,
    pub version: Option<i32>,
}

/// The RocketMQ remoting codec.
#[derive(Debug)]
pub struct RocketMqCodec {
    config: CodecConfig,
    state: RocketMqState,
}

fn malformed(what: &'static str) -> CodecError {
    CodecError::Malformed {
        protocol: PROTOCOL,
        what,
    }
}

/// A parsed header, either serialisation.
#[derive(Debug)]
struct Header {
    serialize_type: SerializeType,
    code: i32,
    version: i32,
    opaque: i32,
    flag: i32,
    id_slot: IdSlot,
    /// The ext fields' bytes within the header, validated, not yet collected.
    ext_fields: Option<Range<usize>>,
}

// === impl RocketMqCodec ===

impl Codec for RocketMqCodec {
    type State = RocketMqState;
    const REQUEST_ID_BITS: u32 = 32;
    const PINNING: Pinning = Pinning::PerClient;

    fn new(config: CodecConfig) -> Self {
        Self {
            config,
            state: RocketMqState::default(),
        }
    }

    fn from_state(config: CodecConfig, state: RocketMqState) -> Result<Self, CodecError> {
        Ok(Self { config, state })
    }

    fn state(&self) -> RocketMqState {
        self.state.clone()
    }

    fn config(&self) -> CodecConfig {
        self.config
    }

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        let Some(length) = wire::i32_at(buf, 0) else {
            return Ok(None);
        };
        let length = u64::try_from(length).map_err(|_| malformed("negative frame length"))?;
        let size = self.config.check_frame_size(PROTOCOL, length + 4)?;
        if length < 4 {
            return Err(malformed("frame length below 4"));
        }
        let Some(word) = wire::u32_at(buf, 4) else {
            return Ok(None);
        };
        let type_byte = word.to_be_bytes()[0];
        let serialize_type =
            SerializeType::from_byte(type_byte).ok_or(CodecError::Unsupported {
                protocol: PROTOCOL,
                what: "serialize type",
                value: u64::from(type_byte),
            })?;
        let header_len = (word & 0x00ff_ffff) as usize;
        if header_len == 0 || header_len as u64 > length - 4 {
            return Err(malformed("header length 0 or past the frame"));
        }
        if buf.len() < size {
            return Ok(None);
        }

        let raw = buf.split_to(size);
        let header_bytes = raw
            .get(PREFIX_LEN..PREFIX_LEN + header_len)
            .ok_or(malformed("header past the frame"))?;
        let header = parse_header(serialize_type, header_bytes)?;
        let is_response = header.flag & FLAG_RESPONSE != 0;
        let (kind, expects_response) = if is_response {
            (FrameKind::Response, false)
        } else if header.flag & FLAG_ONEWAY != 0 {
            (FrameKind::Oneway, false)
        } else {
            (FrameKind::Request, true)
        };
        let attributes = match (is_response, header.ext_fields.clone()) {
            (true, _) => Attributes::default(),
            (false, None) => request_attributes(header.code, Vec::new()),
            (false, Some(range)) => request_attributes(
                header.code,
                collect_ext_fields(serialize_type, header_bytes, range)?,
            ),
        };
        if !is_response {
            self.state = RocketMqState {
                serialize_type: Some(serialize_type),
                version: Some(header.version),
            };
        }
        Ok(Some(Frame::new(
            FrameParts {
                protocol: PROTOCOL,
                kind,
                request_id: RequestId(u64::from(header.opaque.cast_unsigned())),
                expects_response,
                status: is_response.then_some(header.code),
                attributes,
                id_slot: header.id_slot,
            },
            raw,
        )))
    }

    fn hijack(&self, request: &Frame, kind: ErrorKind) -> Frame {
        let code = match kind {
            ErrorKind::Timeout | ErrorKind::Overloaded => code::SYSTEM_BUSY,
            ErrorKind::NoRoute | ErrorKind::Unavailable => code::SERVICE_NOT_AVAILABLE,
            ErrorKind::BadRequest | ErrorKind::BadResponse | ErrorKind::Internal => {
                code::SYSTEM_ERROR
            }
        };
        // Answer in the request's own serialisation and version; fall back
        // to what this connection has seen.
        let bytes = request.as_bytes();
        let parsed = wire::u32_at(bytes, 4).and_then(|word| {
            let ty = SerializeType::from_byte(word.to_be_bytes()[0])?;
            let len = (word & 0x00ff_ffff) as usize;
            let header = bytes.get(PREFIX_LEN..PREFIX_LEN.checked_add(len)?)?;
            parse_header(ty, header).ok()
        });
        let serialize_type = parsed
            .as_ref()
            .map(|h| h.serialize_type)
            .or(self.state.serialize_type)
            .unwrap_or(SerializeType::Json);
        let version = parsed
            .as_ref()
            .map(|h| h.version)
            .or(self.state.version)
            .unwrap_or(0);
        // RocketMQ ids are 32 bits; a frame decoded here always fits.
        #[allow(clippy::cast_possible_truncation)]
        let opaque = (request.request_id().0 as u32).cast_signed();
        response(serialize_type, code, version, opaque, kind.message())
    }

    fn classify(&self, response: &Frame) -> ResponseClass {
        ResponseClass::success_if(response.status() == Some(code::SUCCESS))
    }

    /// The decimal text of `opaque` in a JSON header: see `splice_opaque`.
    fn splice_id(raw: &mut BytesMut, slot: Splice, id: RequestId) -> Result<Splice, &'static str> {
        let id = u32::try_from(id.0).map_err(|_| "opaque wider than 32 bits")?;
        // Java writes `opaque` as a signed int; keep its bit pattern.
        splice_opaque(raw, slot, id.cast_signed())
    }

    fn heartbeat_reply(&self, _heartbeat: &Frame) -> Option<Frame> {
        None
    }

    fn heartbeat(&self, _id: RequestId) -> Option<Frame> {
        None
    }

    /// HEART_BEAT (34): the client's producer and consumer groups, which a
    /// broker knows a client by.
    fn registers(&self, request: &Frame) -> bool {
        request.attributes().code == Some(HEART_BEAT)
    }
}

/// Where the decimal text of `opaque` sits in a frame with a JSON header.
fn json_opaque_slot(start: usize, end: usize) -> IdSlot {
    IdSlot::Spliced(Splice {
        at: start,
        end,
        tag: 0,
    })
}

/// Replaces the JSON number at `raw[slot.at..slot.end]` with `value` and
/// fixes the two length fields (bytes 0..4, the frame length minus 4, and
/// the header length in bytes 5..8) if its width changed. Leaves `raw`
/// unchanged on error.
fn splice_opaque(raw: &mut BytesMut, slot: Splice, value: i32) -> Result<Splice, &'static str> {
    let Splice { at: start, end, .. } = slot;
    let mut digits = [0u8; 11];
    let text = decimal(value, &mut digits);
    let old_width = end.saturating_sub(start);
    if text.len() == old_width
        && let Some(field) = raw.get_mut(start..end)
    {
        field.copy_from_slice(text);
        return Ok(slot);
    }
    let (Some(prefix), Some(suffix)) = (raw.get(..start), raw.get(end..)) else {
        return Err("opaque field outside the frame");
    };
    let new_len = prefix.len() + text.len() + suffix.len();
    let header_field = wire::u32_at(raw, 4).ok_or("frame shorter than 8")?;
    // The digits sit inside the header, so the old header length covers
    // `old_width` and the subtraction cannot underflow for a frame this
    // codec decoded; checked anyway.
    let header_len = ((header_field & 0x00ff_ffff) as usize + text.len())
        .checked_sub(old_width)
        .filter(|&n| n <= 0x00ff_ffff)
        .ok_or("JSON header length out of range")?;
    let body_len = new_len
        .checked_sub(4)
        .and_then(|n| u32::try_from(n).ok())
        .ok_or("frame length out of range")?;
    let mut out = BytesMut::with_capacity(new_len);
    out.extend_from_slice(prefix);
    out.extend_from_slice(text);
    out.extend_from_slice(suffix);
    // `header_len` fits in 24 bits (checked above).
    #[allow(clippy::cast_possible_truncation)]
    let header_field = (header_field & 0xff00_0000) | header_len as u32;
    if !(wire::put_u32_at(&mut out, 0, body_len) && wire::put_u32_at(&mut out, 4, header_field)) {
        return Err("frame shorter than 8");
    }
    *raw = out;
    Ok(Splice {
        at: start,
        end: start + text.len(),
        tag: 0,
    })
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

fn request_attributes(code: i32, ext_fields: Vec<(String, String)>) -> Attributes {
    let mut attributes = Attributes {
        code: Some(code),
        headers: ext_fields,
        ..Attributes::default()
    };
    attributes.topic = attributes
        .header("topic")
        .or_else(|| {
            SEND_V2_CODES
                .contains(&code)
                .then(|| attributes.header("b"))
                .flatten()
        })
        .map(str::to_owned);
    attributes
}

/// Parses either header form, validating the ext fields without collecting
/// them.
fn parse_header(serialize_type: SerializeType, header: &[u8]) -> Result<Header, CodecError> {
    match serialize_type {
        SerializeType::Json => {
            let parsed = json::parse(header).map_err(malformed)?;
            let (opaque, range) = parsed
                .opaque
                .ok_or(malformed("JSON header without opaque"))?;
            Ok(Header {
                serialize_type,
                code: parsed.code,
                version: parsed.version,
                opaque,
                flag: parsed.flag,
                id_slot: json_opaque_slot(PREFIX_LEN + range.start, PREFIX_LEN + range.end),
                ext_fields: parsed.ext_fields,
            })
        }
        SerializeType::RocketMq => parse_binary_header(header),
    }
}

/// Collects the ext fields [`parse_header`] located.
fn collect_ext_fields(
    serialize_type: SerializeType,
    header: &[u8],
    range: Range<usize>,
) -> Result<Vec<(String, String)>, CodecError> {
    match serialize_type {
        SerializeType::Json => json::ext_fields(header, range).map_err(malformed),
        SerializeType::RocketMq => {
            let mut out = Vec::new();
            let ext = header
                .get(range)
                .ok_or(malformed("ext fields past the header"))?;
            walk_binary_ext(ext, |k, v| out.push((wire::text(k), wire::text(v))))?;
            Ok(out)
        }
    }
}

/// `mapSerialize`: repeated `[keyLen i16][key][valLen i32][val]`.
fn walk_binary_ext(ext: &[u8], mut each: impl FnMut(&[u8], &[u8])) -> Result<(), CodecError> {
    let bad = || malformed("ext field length past its section");
    let mut e = Cursor::new(ext);
    while !e.is_empty() {
        let key_len = usize::try_from(e.i16().ok_or_else(bad)?).map_err(|_| bad())?;
        let key = e.take(key_len).ok_or_else(bad)?;
        let value_len = usize::try_from(e.i32().ok_or_else(bad)?).map_err(|_| bad())?;
        let value = e.take(value_len).ok_or_else(bad)?;
        each(key, value);
    }
    Ok(())
}

fn parse_binary_header(header: &[u8]) -> Result<Header, CodecError> {
    let short = || malformed("binary header truncated");
    let mut c = Cursor::new(header);
    let code = c.i16().ok_or_else(short)?;
    let _language = c.u8().ok_or_else(short)?;
    let version = c.i16().ok_or_else(short)?;
    let opaque = c.i32().ok_or_else(short)?;
    let flag = c.i32().ok_or_else(short)?;
    // Like `RocketMQSerializable`, a length <= 0 means "absent".
    let remark_len = c.i32().ok_or_else(short)?;
    if let Ok(n @ 1..) = usize::try_from(remark_len) {
        c.take(n)
            .ok_or(malformed("remark length past the header"))?;
    }
    let ext_len = c.i32().ok_or_else(short)?;
    let mut ext_fields = None;
    if let Ok(n @ 1..) = usize::try_from(ext_len) {
        let start = c.position();
        let ext = c
            .take(n)
            .ok_or(malformed("ext fields length past the header"))?;
        walk_binary_ext(ext, |_, _| {})?;
        ext_fields = Some(start..c.position());
    }
    Ok(Header {
        serialize_type: SerializeType::RocketMq,
        code: i32::from(code),
        version: i32::from(version),
        opaque,
        flag,
        id_slot: IdSlot::U32 {
            at: BINARY_OPAQUE_AT,
        },
        ext_fields,
    })
}

/// A response frame with no ext fields and no body.
fn response(
    serialize_type: SerializeType,
    code: i32,
    version: i32,
    opaque: i32,
    remark: &str,
) -> Frame {
    let mut header = BytesMut::new();
    let id_slot = match serialize_type {
        SerializeType::Json => {
            header.extend_from_slice(b"{\"code\":");
            header.extend_from_slice(code.to_string().as_bytes());
            header.extend_from_slice(b",\"flag\":1,\"language\":\"JAVA\",\"opaque\":");
            let start = PREFIX_LEN + header.len();
            header.extend_from_slice(opaque.to_string().as_bytes());
            let end = PREFIX_LEN + header.len();
            header.extend_from_slice(b",\"remark\":\"");
            json_escape_into(&mut header, remark);
            header.extend_from_slice(b"\",\"serializeTypeCurrentRPC\":\"JSON\",\"version\":");
            header.extend_from_slice(version.to_string().as_bytes());
            header.put_u8(b'}');
            json_opaque_slot(start, end)
        }
        SerializeType::RocketMq => {
            // Codes and versions on the binary wire are Java shorts.
            #[allow(clippy::cast_possible_truncation)]
            {
                header.put_i16(code as i16);
                header.put_u8(LANGUAGE_JAVA);
                header.put_i16(version as i16);
            }
            header.put_i32(opaque);
            header.put_i32(FLAG_RESPONSE);
            // The remark is one of the short static messages.
            #[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]
            header.put_i32(remark.len() as i32);
            header.extend_from_slice(remark.as_bytes());
            header.put_i32(0);
            IdSlot::U32 {
                at: BINARY_OPAQUE_AT,
            }
        }
    };
    let mut raw = BytesMut::with_capacity(PREFIX_LEN + header.len());
    // Headers built here are a few hundred bytes.
    #[allow(clippy::cast_possible_truncation)]
    let header_len = header.len() as u32;
    raw.put_u32(4 + header_len);
    raw.put_u32(u32::from(serialize_type.byte()) << 24 | header_len);
    raw.extend_from_slice(&header);
    Frame::new(
        FrameParts {
            protocol: PROTOCOL,
            kind: FrameKind::Response,
            request_id: RequestId(u64::from(opaque.cast_unsigned())),
            expects_response: false,
            status: Some(code),
            attributes: Attributes::default(),
            id_slot,
        },
        raw,
    )
}

fn json_escape_into(out: &mut BytesMut, s: &str) {
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            c if u32::from(c) < 0x20 => {
                out.extend_from_slice(format!("\\u{:04x}", u32::from(c)).as_bytes());
            }
            c => {
                let mut utf8 = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
            }
        }
    }
}

#[doc(hidden)]
pub mod fixtures;
#[cfg(test)]
mod tests;
