//! TARS (Tencent's RPC protocol; TarsCpp, TarsJava, TarsGo, TarsNode), the
//! classic `RequestPacket` / `ResponsePacket` framing.
//!
//! # Wire format
//!
//! ```text
//!  0                 4
//!  +-----------------+--------------------------------------------------+
//!  | length (u32 BE) | RequestPacket or ResponsePacket, TARS-encoded    |
//!  | = 4 + packet    | (the struct's fields, no STRUCT_BEGIN/END around)|
//!  +-----------------+--------------------------------------------------+
//! ```
//!
//! The length counts itself (TarsGo `protocol.TarsRequest`, TarsCpp
//! `AppProtocol.h` `parseBinary4`). The packet is the fields of one struct
//! in the tag-length-value encoding described in the private `tlv` module;
//! the structs are `RequestF.tars`:
//!
//! | tag | RequestPacket | ResponsePacket |
//! |---|---|---|
//! | 1 | `short iVersion` (1 TARS, 3 TUP, 5 JSON) | `short iVersion` |
//! | 2 | `byte cPacketType` (0 normal, 1 oneway) | `byte cPacketType` |
//! | 3 | `int iMessageType` | `int iRequestId` |
//! | 4 | `int iRequestId` | `int iMessageType` |
//! | 5 | `string sServantName` | `int iRet` |
//! | 6 | `string sFuncName` | `vector<byte> sBuffer` |
//! | 7 | `vector<byte> sBuffer` (the arguments) | `map<string,string> status` |
//! | 8 | `int iTimeout` (ms) | optional `string sResultDesc` |
//! | 9 | `map<string,string> context` | optional `map<string,string> context` |
//! | 10 | `map<string,string> status` | |
//!
//! A request and a response are told apart by the type of tag 5: a string
//! (the servant) or an integer (`iRet`), as MOSN's `getStreamType` does —
//! here with every integer encoding, since TarsGo writes a small `iRet` as
//! INT1 (`-3` is `50 fd`).
//!
//! Except in TUP (iVersion 3, or 2 for TarsNode's `TUP_COMPLEX`), whose
//! responses are RequestPackets too: TarsGo's server (`req2Byte`) leaves
//! their servant and function names empty; TarsNode's (`composeTUP`)
//! copies them and always puts the code in `status["STATUS_RESULT_CODE"]`
//! (the message in `STATUS_RESULT_DESC`); TarsCpp's (`Current::
//! sendResponse`) copies them and puts the code there only when it is not
//! 0. So a TUP RequestPacket is a response when its `sFuncName` is empty
//! or it has a `STATUS_RESULT_CODE` (a TUP request always names the
//! function it calls and has no result code), or — the only way to tell a
//! successful TarsCpp answer — when it arrives on the proxy's end of an
//! upstream connection (a codec made by [`Protocol::upstream_codec`],
//! [`TarsState::upstream`]). Its `iRet` is the status entry, 0 when absent.
//! MOSN's Tars support reads every TUP response as a request.
//!
//! Every field is read with its reference type and
//! the packet must end exactly after its last field; fields with unknown
//! tags (a newer peer's) are skipped and kept. `sBuffer` (the arguments
//! or result, in the IDL's own encoding, TUP or JSON for iVersion 3 or 5)
//! is never looked into, so every version proxies alike.
//!
//! # Sequence
//!
//! Calls are multiplexed on one connection and matched by `iRequestId`
//! (an `int`, kept as its `u32` bit pattern here, [`TarsCodec::REQUEST_ID_BITS`]
//! = 32), answered in any order. A request with `cPacketType` 1
//! (TARSONEWAY) is never answered. Other values of `cPacketType` are
//! refused (`Unsupported`): the protocol defines none, and the proxy must
//! know whether an answer will come.
//!
//! There is no transport-level heartbeat in the classic protocol: a client
//! that checks a server calls the function `tars_ping` on a servant, which
//! the server answers like any call (TarsGo `tarsprotocol.go` skips the
//! dispatch for it). So `tars_ping` is an ordinary [`FrameKind::Request`]
//! here, forwarded to the server it checks, and
//! [`TarsCodec::heartbeat_reply`] and [`TarsCodec::heartbeat`] are always
//! `None`; the health checker's Tars heartbeat sends a `tars_ping` of its
//! own ([`ping_request`]) to the servant its config names.
//!
//! # Routing attributes (requests only)
//!
//! `service` is `sServantName` (e.g. `Baton.EchoServer.EchoObj`), `method`
//! is `sFuncName`, `timeout_ms` is a positive `iTimeout`, and `headers` are
//! the first [`MAX_HEADERS`] entries of `context`, in wire order.
//!
//! # Request id rewrite
//!
//! `iRequestId` is an integer in the smallest encoding that holds it: 1
//! byte for 0 (ZERO_TAG), 2 for -128..=127, 3 for a `short`, 5 otherwise.
//! A new id therefore may not fit where the old one was. The frame keeps
//! where the whole field (head and value) sits, and a rewrite replaces that
//! field with the new id's smallest encoding (what every Tars encoder
//! writes), moves the bytes after it by the difference and fixes the
//! length prefix; every other byte stays as the peer wrote it. Cost: an
//! overwrite in place when the width is unchanged, else one `memmove` of
//! the rest of the frame (the field is the packet's fourth or third, so
//! about the whole frame), and a frame grows by at most 4 bytes. Rewritten
//! back to the client's id, a response is byte-identical to what the server
//! would have sent the client directly. Re-encoding the whole packet (as
//! MOSN does, through TarsGo's structs) would instead reorder the maps,
//! re-encode `sBuffer` and drop unknown fields.
//!
//! # Failure handling
//!
//! * A length below 5 (TarsCpp's `TARS_NET_MIN_PACKAGE_SIZE`) →
//!   `Malformed`; above the max frame size → `FrameTooLarge`, from the 4
//!   length bytes alone, before the body is waited for (TarsGo refuses
//!   above 10 MiB by default, TarsCpp above 100 MiB; the listener's
//!   `max_frame_size`, default 16 MiB, applies).
//! * A packet whose first field is not `iVersion` (a head byte of tag 1
//!   with an integer type: 0x10, 0x11 or 0x1c) → `BadMagic`, as soon as
//!   that byte is in: a stream of something else is refused early.
//! * A required field missing or of the wrong type, a length past the
//!   packet, a negative length, containers nested deeper than 32, bytes
//!   after the last field that are not whole fields → `Malformed`.
//!
//! Hijacked responses ([`TarsCodec::hijack`]) are ResponsePackets with the
//! request's `iVersion` and `iRequestId`, `cPacketType` 0, `iMessageType`
//! 0, an empty `sBuffer` and `status`, `sResultDesc` = [`ErrorKind::message`]
//! and this `iRet` (`BaseF.tars`) — or, to a TUP request, the RequestPacket
//! TarsNode's server would write (names copied, an empty UniAttribute,
//! `STATUS_RESULT_CODE` and `STATUS_RESULT_DESC`):
//!
//! | [`ErrorKind`] | `iRet` |
//! |---|---|
//! | Timeout | TARSINVOKETIMEOUT -7 |
//! | NoRoute | TARSSERVERNOSERVANTERR -4 |
//! | Unavailable | TARSPROXYCONNECTERR -8 |
//! | Overloaded | TARSSERVEROVERLOAD -9 |
//! | BadRequest | TARSSERVERDECODEERR -1 |
//! | BadResponse | TARSSERVERUNKNOWNERR -99 |
//! | Internal | TARSSERVERUNKNOWNERR -99 |
//!
//! A Tars client turns any non-zero `iRet` into an error for the caller
//! with that code and `sResultDesc` (TarsGo `ServantProxy.TarsInvoke`,
//! @tars/rpc `TarsError`); `iRet` 0 (TARSSERVERSUCCESS) is success.
//!
//! # Success and pinning
//!
//! So a response succeeded when its `iRet` (a TUP answer's
//! `STATUS_RESULT_CODE`, 0 when absent) is TARSSERVERSUCCESS (0); any other
//! code is an error ([`TarsCodec::classify`]). Servers never call clients
//! on their connection, so clients share each cluster's pool
//! ([`Pinning::Pooled`](super::Pinning::Pooled)).

mod tlv;

use bytes::{BufMut, BytesMut};
use serde::{Deserialize, Serialize};

use self::tlv::{Head, Reader, Width};
use super::frame::{FrameParts, IdSlot};
use super::wire;
use super::{
    Attributes, Codec, CodecConfig, CodecError, ErrorKind, Frame, FrameKind, Protocol, RequestId,
    ResponseClass, Splice,
};

const PROTOCOL: Protocol = Protocol::Tars;

/// The length prefix.
pub const PREFIX_LEN: usize = 4;

/// `BaseF.tars` packet versions, and TUP's other one (`TUP_COMPLEX` in
/// `@tars/stream`; `TUPVERSION` is its `TUP_SIMPLE`).
pub const TARSVERSION: i16 = 1;
pub const TUP_COMPLEX: i16 = 2;
pub const TUPVERSION: i16 = 3;
pub const JSONVERSION: i16 = 5;

/// The `status` keys of a TUP response that carry `iRet` and
/// `sResultDesc` (TarsNode `tars-server.js` `composeTUP`).
pub const STATUS_RESULT_CODE: &str = "STATUS_RESULT_CODE";
pub const STATUS_RESULT_DESC: &str = "STATUS_RESULT_DESC";

/// `BaseF.tars` packet types.
pub const TARSNORMAL: i8 = 0;
pub const TARSONEWAY: i8 = 1;

/// `BaseF.tars` return codes (`iRet`).
pub mod ret {
    pub const TARSSERVERSUCCESS: i32 = 0;
    pub const TARSSERVERDECODEERR: i32 = -1;
    pub const TARSSERVERENCODEERR: i32 = -2;
    pub const TARSSERVERNOFUNCERR: i32 = -3;
    pub const TARSSERVERNOSERVANTERR: i32 = -4;
    pub const TARSSERVERRESETGRID: i32 = -5;
    pub const TARSSERVERQUEUETIMEOUT: i32 = -6;
    pub const TARSINVOKETIMEOUT: i32 = -7;
    pub const TARSPROXYCONNECTERR: i32 = -8;
    pub const TARSSERVEROVERLOAD: i32 = -9;
    pub const TARSADAPTERNULL: i32 = -10;
    pub const TARSINVOKEBYINVALIDESET: i32 = -11;
    pub const TARSCLIENTDECODEERR: i32 = -12;
    pub const TARSSERVERUNKNOWNERR: i32 = -99;
}

/// Tag of `iRequestId` in a RequestPacket and in a ResponsePacket.
const REQUEST_ID_TAG: u8 = 4;
const RESPONSE_ID_TAG: u8 = 3;

/// How many `context` entries a request exposes as [`Attributes::headers`].
/// Bounds the per-frame allocation for routing (one `(String, String)` per
/// entry) independently of how many tiny entries a large frame can hold;
/// a context past it still proxies whole, its later entries just cannot
/// be routed on. Real contexts carry a few trace and dyeing keys.
pub const MAX_HEADERS: usize = 64;

/// What a Tars connection remembers: which end of the proxy it is (see
/// [`TarsCodec::upstream`]). Every packet carries its own version; there is
/// no per-connection negotiation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TarsState {
    /// The proxy's end of an upstream connection: what it reads are the
    /// server's answers, so a TUP RequestPacket is one whatever its fields.
    pub upstream: bool,
}

/// The Tars codec.
#[derive(Debug)]
pub struct TarsCodec {
    config: CodecConfig,
    state: TarsState,
}

pub(crate) fn malformed(what: &'static str) -> CodecError {
    CodecError::Malformed {
        protocol: PROTOCOL,
        what,
    }
}

fn unsupported(what: &'static str, value: u64) -> CodecError {
    CodecError::Unsupported {
        protocol: PROTOCOL,
        what,
        value,
    }
}

// === impl TarsCodec ===

impl Codec for TarsCodec {
    type State = TarsState;
    const REQUEST_ID_BITS: u32 = 32;

    fn new(config: CodecConfig) -> Self {
        Self {
            config,
            state: TarsState::default(),
        }
    }

    /// Knows it reads answers: the only way to tell a successful TarsCpp
    /// TUP answer from a request (see the module docs).
    fn upstream(config: CodecConfig) -> Self {
        Self {
            config,
            state: TarsState { upstream: true },
        }
    }

    fn from_state(config: CodecConfig, state: TarsState) -> Result<Self, CodecError> {
        Ok(Self { config, state })
    }

    fn state(&self) -> TarsState {
        self.state.clone()
    }

    fn config(&self) -> CodecConfig {
        self.config
    }

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        let Some(len) = wire::u32_at(buf, 0) else {
            return Ok(None);
        };
        if (len as usize) <= PREFIX_LEN {
            return Err(malformed(
                "length prefix below the smallest packet (5 bytes)",
            ));
        }
        let size = self.config.check_frame_size(PROTOCOL, u64::from(len))?;
        let Some(&first) = buf.get(PREFIX_LEN) else {
            return Ok(None);
        };
        if !matches!(first, 0x10 | 0x11 | 0x1c) {
            return Err(CodecError::BadMagic {
                protocol: PROTOCOL,
                found: u32::from(first),
                expected: 0x10,
            });
        }
        if buf.len() < size {
            return Ok(None);
        }
        // Parse before splitting: an error leaves the buffer as it was
        // (the stream is broken either way, but nothing is half-consumed).
        let parts = parse(buf.get(..size).unwrap_or_default(), self.state.upstream)?;
        let raw = buf.split_to(size);
        Ok(Some(Frame::new(parts, raw)))
    }

    fn hijack(&self, request: &Frame, kind: ErrorKind) -> Frame {
        let code = match kind {
            ErrorKind::Timeout => ret::TARSINVOKETIMEOUT,
            ErrorKind::NoRoute => ret::TARSSERVERNOSERVANTERR,
            ErrorKind::Unavailable => ret::TARSPROXYCONNECTERR,
            ErrorKind::Overloaded => ret::TARSSERVEROVERLOAD,
            ErrorKind::BadRequest => ret::TARSSERVERDECODEERR,
            ErrorKind::BadResponse | ErrorKind::Internal => ret::TARSSERVERUNKNOWNERR,
        };
        // A frame this codec decoded always has its iVersion first.
        let version = version_of(request.as_bytes()).unwrap_or(i32::from(TARSVERSION));
        // Tars ids are 32 bits; a frame decoded here always fits.
        #[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]
        let id = request.request_id().0 as u32 as i32;
        if is_tup(version) {
            let a = request.attributes();
            let names = (
                a.service.as_deref().unwrap_or(""),
                a.method.as_deref().unwrap_or(""),
            );
            return tup_response(version, id, names, code, kind.message());
        }
        response(version, id, code, kind.message())
    }

    fn classify(&self, response: &Frame) -> ResponseClass {
        ResponseClass::success_if(response.status() == Some(ret::TARSSERVERSUCCESS))
    }

    /// The whole `iRequestId` field: see `splice_int_field`.
    fn splice_id(raw: &mut BytesMut, slot: Splice, id: RequestId) -> Result<Splice, &'static str> {
        let id = u32::try_from(id.0).map_err(|_| "iRequestId wider than 32 bits")?;
        // Tars ids are `int`s; keep the bit pattern.
        splice_int_field(raw, slot, id.cast_signed())
    }

    fn heartbeat_reply(&self, _heartbeat: &Frame) -> Option<Frame> {
        None
    }

    fn heartbeat(&self, _id: RequestId) -> Option<Frame> {
        None
    }
}

/// The `iVersion` a frame starts with.
fn version_of(frame: &[u8]) -> Result<i32, CodecError> {
    let mut r = Reader::new(frame, PREFIX_LEN);
    let head = r.head()?;
    r.int(head.ty, Width::Short)
}

/// Integer fields read before tag 5 says which packet this is.
#[derive(Debug)]
struct IntField {
    head: Head,
    end: usize,
    value: i32,
}

/// Reads a required integer field.
fn int_field(
    r: &mut Reader<'_>,
    tag: u8,
    width: Width,
    what: &'static str,
) -> Result<IntField, CodecError> {
    let head = r.field(tag)?.ok_or(malformed(what))?;
    let value = r.int(head.ty, width)?;
    Ok(IntField {
        head,
        end: r.position(),
        value,
    })
}

/// Reads a required field's head.
fn required(r: &mut Reader<'_>, tag: u8, what: &'static str) -> Result<Head, CodecError> {
    r.field(tag)?.ok_or(malformed(what))
}

/// Parses one complete frame (prefix included) into its frame parts.
fn parse(frame: &[u8], answers: bool) -> Result<FrameParts, CodecError> {
    let mut r = Reader::new(frame, PREFIX_LEN);
    let version = int_field(&mut r, 1, Width::Short, "iVersion (tag 1) missing")?.value;
    let packet_type = int_field(&mut r, 2, Width::Byte, "cPacketType (tag 2) missing")?;
    let third = int_field(
        &mut r,
        3,
        Width::Int,
        "tag 3 (iMessageType or iRequestId) missing",
    )?;
    let fourth = int_field(
        &mut r,
        4,
        Width::Int,
        "tag 4 (iRequestId or iMessageType) missing",
    )?;
    let fifth = required(&mut r, 5, "tag 5 (sServantName or iRet) missing")?;
    match fifth.ty {
        tlv::STRING1 | tlv::STRING4 => {
            request(&mut r, version, answers, fifth, &packet_type, &fourth)
        }
        _ => {
            let code = r.int(fifth.ty, Width::Int)?;
            response_parts(&mut r, code, &third)
        }
    }
}

/// Whether `version` is one of TUP's, whose responses are RequestPackets.
fn is_tup(version: i32) -> bool {
    version == i32::from(TUPVERSION) || version == i32::from(TUP_COMPLEX)
}

fn request(
    r: &mut Reader<'_>,
    version: i32,
    answers: bool,
    servant: Head,
    packet_type: &IntField,
    id: &IntField,
) -> Result<FrameParts, CodecError> {
    let servant = r.string(servant.ty)?;
    let func = required(r, 6, "sFuncName (tag 6) missing")?;
    let func = r.string(func.ty)?;
    let buffer = required(r, 7, "sBuffer (tag 7) missing")?;
    r.bytes_vector(buffer.ty)?;
    let timeout = int_field(r, 8, Width::Int, "iTimeout (tag 8) missing")?.value;
    let context = required(r, 9, "context (tag 9) missing")?;
    let mut headers = Vec::new();
    r.string_map(context.ty, |k, v| {
        if headers.len() < MAX_HEADERS {
            headers.push((wire::text(k), wire::text(v)));
        }
    })?;
    let status = required(r, 10, "status (tag 10) missing")?;
    let mut result_code = None;
    r.string_map(status.ty, |k, v| {
        if k == STATUS_RESULT_CODE.as_bytes() && result_code.is_none() {
            result_code = Some(v);
        }
    })?;
    r.skip_rest()?;

    if is_tup(version) && (answers || func.is_empty() || result_code.is_some()) {
        // A TUP response (see the module docs): its code, if any, is the
        // status entry; an unreadable one is not a success.
        let code = result_code.map_or(ret::TARSSERVERSUCCESS, |v| {
            std::str::from_utf8(v)
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(ret::TARSSERVERUNKNOWNERR)
        });
        return Ok(FrameParts {
            protocol: PROTOCOL,
            kind: FrameKind::Response,
            request_id: id_of(id.value),
            expects_response: false,
            status: Some(code),
            attributes: Attributes::default(),
            id_slot: IdSlot::Spliced(Splice {
                at: id.head.at,
                end: id.end,
                tag: REQUEST_ID_TAG,
            }),
        });
    }

    let (kind, expects_response) = match i8::try_from(packet_type.value) {
        Ok(TARSNORMAL) => (FrameKind::Request, true),
        Ok(TARSONEWAY) => (FrameKind::Oneway, false),
        _ => {
            #[allow(clippy::cast_sign_loss)]
            let value = packet_type.value as u8;
            return Err(unsupported("cPacketType", u64::from(value)));
        }
    };
    Ok(FrameParts {
        protocol: PROTOCOL,
        kind,
        request_id: id_of(id.value),
        expects_response,
        status: None,
        attributes: Attributes {
            service: Some(wire::text(servant)),
            method: Some(wire::text(func)),
            timeout_ms: u32::try_from(timeout).ok().filter(|&t| t > 0),
            headers,
            ..Attributes::default()
        },
        id_slot: IdSlot::Spliced(Splice {
            at: id.head.at,
            end: id.end,
            tag: REQUEST_ID_TAG,
        }),
    })
}

fn response_parts(r: &mut Reader<'_>, code: i32, id: &IntField) -> Result<FrameParts, CodecError> {
    let buffer = required(r, 6, "sBuffer (tag 6) missing")?;
    r.bytes_vector(buffer.ty)?;
    let status = required(r, 7, "status (tag 7) missing")?;
    r.string_map(status.ty, |_, _| {})?;
    if let Some(desc) = r.field(8)? {
        r.string(desc.ty)?;
    }
    if let Some(context) = r.field(9)? {
        r.string_map(context.ty, |_, _| {})?;
    }
    r.skip_rest()?;
    Ok(FrameParts {
        protocol: PROTOCOL,
        kind: FrameKind::Response,
        request_id: id_of(id.value),
        expects_response: false,
        status: Some(code),
        attributes: Attributes::default(),
        id_slot: IdSlot::Spliced(Splice {
            at: id.head.at,
            end: id.end,
            tag: RESPONSE_ID_TAG,
        }),
    })
}

/// Replaces the integer field at `raw[slot.at..slot.end]` (head with tag
/// `slot.tag`, then the value) with `value` in its smallest encoding,
/// moving the rest of the frame if the width changed and fixing the length
/// prefix (see "Request id rewrite" in the module docs). Leaves `raw`
/// unchanged on error.
fn splice_int_field(raw: &mut BytesMut, slot: Splice, value: i32) -> Result<Splice, &'static str> {
    let Splice { at, end, tag } = slot;
    let mut buf = [0u8; 5];
    let field = tars_int_field(tag, value, &mut buf);
    let old_len = raw.len();
    if at < PREFIX_LEN || at > end || end > old_len {
        return Err("request id field outside the frame");
    }
    let new_len = old_len - (end - at) + field.len();
    let total = u32::try_from(new_len).map_err(|_| "frame length out of range")?;
    let new_end = at + field.len();
    if new_end > end {
        raw.resize(new_len, 0);
        raw.copy_within(end..old_len, new_end);
    } else if new_end < end {
        raw.copy_within(end..old_len, new_end);
        raw.truncate(new_len);
    }
    if let Some(slot) = raw.get_mut(at..new_end) {
        slot.copy_from_slice(field);
    }
    // `at >= PREFIX_LEN` (checked above), so the prefix is there.
    wire::put_u32_at(raw, 0, total);
    Ok(Splice {
        at,
        end: new_end,
        tag,
    })
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

/// The wire `int` as the u32 bit pattern [`RequestId`] carries.
fn id_of(value: i32) -> RequestId {
    #[allow(clippy::cast_sign_loss)]
    RequestId(u64::from(value as u32))
}

/// A classic (iVersion 1) two-way RequestPacket calling `tars_ping` on
/// `servant`, with request id `id`, no arguments and a timeout of
/// `timeout_ms`: the check a Tars client makes of a server (TarsGo's
/// adapter sends it; a server answers it without dispatching, `iRet` 0).
/// The health checker's Tars heartbeat.
pub(crate) fn ping_request(id: i32, servant: &str, timeout_ms: i32) -> BytesMut {
    const PING: &[u8] = b"tars_ping";
    let mut raw = BytesMut::with_capacity(48 + servant.len());
    raw.put_u32(0);
    let mut field = [0u8; 5];
    raw.extend_from_slice(tars_int_field(1, 1, &mut field));
    raw.extend_from_slice(tars_int_field(2, i32::from(TARSNORMAL), &mut field));
    raw.extend_from_slice(tars_int_field(3, 0, &mut field));
    raw.extend_from_slice(tars_int_field(REQUEST_ID_TAG, id, &mut field));
    tlv::put_string(&mut raw, 5, servant.as_bytes());
    tlv::put_string(&mut raw, 6, PING);
    // sBuffer: an empty SIMPLE_LIST (element head INT1 tag 0, length 0).
    tlv::put_head(&mut raw, tlv::SIMPLE_LIST, 7);
    tlv::put_head(&mut raw, tlv::INT1, 0);
    tlv::put_head(&mut raw, tlv::ZERO_TAG, 0);
    raw.extend_from_slice(tars_int_field(8, timeout_ms, &mut field));
    // context and status: empty maps.
    for tag in [9, 10] {
        tlv::put_head(&mut raw, tlv::MAP, tag);
        tlv::put_head(&mut raw, tlv::ZERO_TAG, 0);
    }
    let total = u32::try_from(raw.len()).unwrap_or(u32::MAX);
    wire::put_u32_at(&mut raw, 0, total);
    raw
}

/// A ResponsePacket with no result: what [`TarsCodec::hijack`] sends.
fn response(version: i32, id: i32, code: i32, message: &str) -> Frame {
    let mut raw = BytesMut::with_capacity(32 + message.len());
    raw.put_u32(0);
    let mut field = [0u8; 5];
    raw.extend_from_slice(tars_int_field(1, version, &mut field));
    raw.extend_from_slice(tars_int_field(2, i32::from(TARSNORMAL), &mut field));
    let id_at = raw.len();
    raw.extend_from_slice(tars_int_field(RESPONSE_ID_TAG, id, &mut field));
    let id_end = raw.len();
    raw.extend_from_slice(tars_int_field(4, 0, &mut field));
    raw.extend_from_slice(tars_int_field(5, code, &mut field));
    // sBuffer: an empty SIMPLE_LIST (element head INT1 tag 0, length 0).
    tlv::put_head(&mut raw, tlv::SIMPLE_LIST, 6);
    tlv::put_head(&mut raw, tlv::INT1, 0);
    tlv::put_head(&mut raw, tlv::ZERO_TAG, 0);
    // status: an empty map.
    tlv::put_head(&mut raw, tlv::MAP, 7);
    tlv::put_head(&mut raw, tlv::ZERO_TAG, 0);
    tlv::put_string(&mut raw, 8, message.as_bytes());
    // The message is one of ErrorKind's short texts.
    let total = u32::try_from(raw.len()).unwrap_or(u32::MAX);
    wire::put_u32_at(&mut raw, 0, total);
    Frame::new(
        FrameParts {
            protocol: PROTOCOL,
            kind: FrameKind::Response,
            request_id: id_of(id),
            expects_response: false,
            status: Some(code),
            attributes: Attributes::default(),
            id_slot: IdSlot::Spliced(Splice {
                at: id_at,
                end: id_end,
                tag: RESPONSE_ID_TAG,
            }),
        },
        raw,
    )
}

/// A TUP response with no result: a RequestPacket (what TUP clients read)
/// with the request's version, id, servant and function, an empty
/// UniAttribute in `sBuffer` (a map with no entries, at tag 0: `08 0c`), and
/// `code` and `message` in `status`, as TarsNode's `composeTUP` writes one.
fn tup_response(version: i32, id: i32, names: (&str, &str), code: i32, message: &str) -> Frame {
    let mut raw = BytesMut::with_capacity(96 + names.0.len() + names.1.len() + message.len());
    raw.put_u32(0);
    let mut field = [0u8; 5];
    raw.extend_from_slice(tars_int_field(1, version, &mut field));
    raw.extend_from_slice(tars_int_field(2, i32::from(TARSNORMAL), &mut field));
    raw.extend_from_slice(tars_int_field(3, 0, &mut field));
    let id_at = raw.len();
    raw.extend_from_slice(tars_int_field(REQUEST_ID_TAG, id, &mut field));
    let id_end = raw.len();
    tlv::put_string(&mut raw, 5, names.0.as_bytes());
    tlv::put_string(&mut raw, 6, names.1.as_bytes());
    // sBuffer: a SIMPLE_LIST of the 2 bytes of an empty UniAttribute.
    tlv::put_head(&mut raw, tlv::SIMPLE_LIST, 7);
    tlv::put_head(&mut raw, tlv::INT1, 0);
    raw.extend_from_slice(tars_int_field(0, 2, &mut field));
    tlv::put_head(&mut raw, tlv::MAP, 0);
    tlv::put_head(&mut raw, tlv::ZERO_TAG, 0);
    raw.extend_from_slice(tars_int_field(8, 0, &mut field));
    // context: empty; status: the code and the message.
    tlv::put_head(&mut raw, tlv::MAP, 9);
    tlv::put_head(&mut raw, tlv::ZERO_TAG, 0);
    tlv::put_head(&mut raw, tlv::MAP, 10);
    raw.extend_from_slice(tars_int_field(0, 2, &mut field));
    tlv::put_string(&mut raw, 0, STATUS_RESULT_CODE.as_bytes());
    tlv::put_string(&mut raw, 1, code.to_string().as_bytes());
    tlv::put_string(&mut raw, 0, STATUS_RESULT_DESC.as_bytes());
    tlv::put_string(&mut raw, 1, message.as_bytes());
    let total = u32::try_from(raw.len()).unwrap_or(u32::MAX);
    wire::put_u32_at(&mut raw, 0, total);
    Frame::new(
        FrameParts {
            protocol: PROTOCOL,
            kind: FrameKind::Response,
            request_id: id_of(id),
            expects_response: false,
            status: Some(code),
            attributes: Attributes::default(),
            id_slot: IdSlot::Spliced(Splice {
                at: id_at,
                end: id_end,
                tag: REQUEST_ID_TAG,
            }),
        },
        raw,
    )
}

#[doc(hidden)]
pub mod fixtures;
#[cfg(test)]
mod tests;
