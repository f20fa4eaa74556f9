//! SOFA Bolt v1 frames as the bench writes and reads them: pure functions
//! on byte slices, written from the protocol's documented layout (the same
//! as `tests/src/bolt.rs`, not baton's codec, so that the bench checks
//! baton rather than agreeing with it by construction).
//!
//! ```text
//! request  (22 bytes): proto=1 | type u8 | cmdcode u16 | ver2 u8 | id u32 | codec u8
//!                      | timeout i32 | classLen u16 | headerLen u16 | contentLen u32
//! response (20 bytes): proto=1 | type=0 | cmdcode u16 | ver2 u8 | id u32 | codec u8
//!                      | status u16 | classLen u16 | headerLen u16 | contentLen u32
//! then class name, header map, content
//! ```
//!
//! Integers are big-endian. Type 1 is a request, 2 a oneway request, 0 a
//! response; command code 1 an RPC request, 2 an RPC response, 0 a
//! heartbeat. The header map is `[keyLen i32][key][valLen i32][val]`
//! repeated. The bench never looks inside the header map or the content:
//! the server copies the content into its response, the client compares
//! it byte for byte.
//!
//! Decoding is bounded ([`MAX_FRAME`]) and refuses what the bench never
//! sends (another protocol code, an unknown type or command code), so a
//! proxy that garbles a stream shows up as an error, not as a hang or a
//! huge allocation.

use std::ops::Range;

/// Bolt v1's protocol code, the first byte of every frame.
pub const PROTOCOL: u8 = 1;
/// A request's fixed header.
pub const REQUEST_HEADER: usize = 22;
/// A response's fixed header.
pub const RESPONSE_HEADER: usize = 20;
/// The largest frame the bench accepts, header included. Its own frames
/// are a few hundred bytes; anything near this is a garbled length.
pub const MAX_FRAME: usize = 1 << 20;

/// What the class name field says (SOFARPC's request class).
pub const CLASS: &[u8] = b"com.alipay.sofa.rpc.core.request.SofaRequest";
/// sofa-bolt's protocol version 2 byte, as SOFARPC writes it.
const VER2: u8 = 1;
/// Codec byte: hessian2 (carried, never interpreted).
const CODEC_HESSIAN2: u8 = 1;
/// The timeout written into requests, in ms. baton answers by its own
/// `request_timeout`; this field is only carried.
const TIMEOUT_MS: i32 = 3000;

/// Frame type (byte 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    Response,
    Request,
    Oneway,
}

/// Command code (bytes 2–3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Heartbeat,
    Request,
    Response,
}

impl Command {
    fn code(self) -> u16 {
        match self {
            Command::Heartbeat => 0,
            Command::Request => 1,
            Command::Response => 2,
        }
    }
}

/// A decoded frame: its fixed fields and where its content lies in the
/// buffer it was decoded from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub kind: Type,
    pub command: Command,
    pub id: u32,
    /// A response's status (0 is SUCCESS); 0 for requests.
    pub status: u16,
    /// The content's byte range within the decoded buffer.
    pub content: Range<usize>,
    /// Bytes the whole frame takes, header included.
    pub len: usize,
}

/// Why bytes are not a Bolt v1 frame the bench could have been sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("not Bolt v1: protocol code {0:#04x}")]
    Protocol(u8),
    #[error("unknown frame type {0}")]
    Type(u8),
    #[error("unknown command code {0}")]
    Command(u16),
    #[error("frame of {0} bytes is over the bench's limit of {MAX_FRAME}")]
    TooLarge(usize),
}

/// The first complete frame at the start of `buf`: `Ok(None)` when more
/// bytes are needed. The caller drops `frame.len` bytes once done with it.
pub fn decode(buf: &[u8]) -> Result<Option<Frame>, FrameError> {
    let Some(&protocol) = buf.first() else {
        return Ok(None);
    };
    if protocol != PROTOCOL {
        return Err(FrameError::Protocol(protocol));
    }
    let Some(&kind) = buf.get(1) else {
        return Ok(None);
    };
    let (kind, header) = match kind {
        0 => (Type::Response, RESPONSE_HEADER),
        1 => (Type::Request, REQUEST_HEADER),
        2 => (Type::Oneway, REQUEST_HEADER),
        other => return Err(FrameError::Type(other)),
    };
    if buf.len() < 4 {
        return Ok(None);
    }
    let command = match u16::from_be_bytes([buf[2], buf[3]]) {
        0 => Command::Heartbeat,
        1 => Command::Request,
        2 => Command::Response,
        other => return Err(FrameError::Command(other)),
    };
    if buf.len() < header {
        return Ok(None);
    }
    let id = u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]);
    let (status, lengths) = match kind {
        Type::Response => (u16::from_be_bytes([buf[10], buf[11]]), 12),
        Type::Request | Type::Oneway => (0, 14),
    };
    let class = usize::from(u16::from_be_bytes([buf[lengths], buf[lengths + 1]]));
    let headers = usize::from(u16::from_be_bytes([buf[lengths + 2], buf[lengths + 3]]));
    let content = u32::from_be_bytes([
        buf[lengths + 4],
        buf[lengths + 5],
        buf[lengths + 6],
        buf[lengths + 7],
    ]) as usize;
    let len = header + class + headers + content;
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge(len));
    }
    if buf.len() < len {
        return Ok(None);
    }
    Ok(Some(Frame {
        kind,
        command,
        id,
        status,
        content: len - content..len,
        len,
    }))
}

/// Appends an RPC request (type 1, command 1) with the SOFARPC class name,
/// `headers` as the header map, and `content`.
pub fn encode_request(id: u32, headers: &[(&str, &str)], content: &[u8], out: &mut Vec<u8>) {
    let map_len: usize = headers.iter().map(|(k, v)| 8 + k.len() + v.len()).sum();
    out.reserve(REQUEST_HEADER + CLASS.len() + map_len + content.len());
    out.extend_from_slice(&[PROTOCOL, 1]);
    out.extend_from_slice(&Command::Request.code().to_be_bytes());
    out.push(VER2);
    out.extend_from_slice(&id.to_be_bytes());
    out.push(CODEC_HESSIAN2);
    out.extend_from_slice(&TIMEOUT_MS.to_be_bytes());
    out.extend_from_slice(&(CLASS.len() as u16).to_be_bytes());
    out.extend_from_slice(&(map_len as u16).to_be_bytes());
    out.extend_from_slice(&(content.len() as u32).to_be_bytes());
    out.extend_from_slice(CLASS);
    for (key, value) in headers {
        out.extend_from_slice(&(key.len() as i32).to_be_bytes());
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(&(value.len() as i32).to_be_bytes());
        out.extend_from_slice(value.as_bytes());
    }
    out.extend_from_slice(content);
}

/// Appends a response to request `id` of `command` (an RPC request is
/// answered with command 2, a heartbeat with command 0), status SUCCESS,
/// no class name or header map.
pub fn encode_response(id: u32, command: Command, content: &[u8], out: &mut Vec<u8>) {
    let command = match command {
        Command::Heartbeat => Command::Heartbeat,
        Command::Request | Command::Response => Command::Response,
    };
    out.reserve(RESPONSE_HEADER + content.len());
    out.extend_from_slice(&[PROTOCOL, 0]);
    out.extend_from_slice(&command.code().to_be_bytes());
    out.push(VER2);
    out.extend_from_slice(&id.to_be_bytes());
    out.push(CODEC_HESSIAN2);
    out.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(&(content.len() as u32).to_be_bytes());
    out.extend_from_slice(content);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_round_trips_and_matches_the_documented_layout() {
        let mut out = Vec::new();
        encode_request(0x0102_0304, &[("service", "Echo")], b"hello", &mut out);
        // Header bytes as laid out in the module doc.
        assert_eq!(&out[..5], &[1, 1, 0, 1, 1]);
        assert_eq!(&out[5..9], &[1, 2, 3, 4]);
        assert_eq!(out[9], 1);
        assert_eq!(&out[10..14], &3000i32.to_be_bytes());
        assert_eq!(&out[14..16], &(CLASS.len() as u16).to_be_bytes());
        assert_eq!(&out[16..18], &(8 + 7 + 4u16).to_be_bytes());
        assert_eq!(&out[18..22], &5u32.to_be_bytes());
        let frame = decode(&out).unwrap().unwrap();
        assert_eq!(frame.kind, Type::Request);
        assert_eq!(frame.command, Command::Request);
        assert_eq!(frame.id, 0x0102_0304);
        assert_eq!(frame.len, out.len());
        assert_eq!(&out[frame.content], b"hello");
    }

    #[test]
    fn responses_round_trip_and_heartbeats_stay_heartbeats() {
        let mut out = Vec::new();
        encode_response(7, Command::Request, b"abc", &mut out);
        encode_response(8, Command::Heartbeat, b"", &mut out);
        let first = decode(&out).unwrap().unwrap();
        assert_eq!(
            (first.kind, first.command, first.id, first.status),
            (Type::Response, Command::Response, 7, 0)
        );
        assert_eq!(&out[first.content.clone()], b"abc");
        assert_eq!(first.len, RESPONSE_HEADER + 3);
        let second = decode(&out[first.len..]).unwrap().unwrap();
        assert_eq!((second.command, second.id), (Command::Heartbeat, 8));
    }

    #[test]
    fn partial_frames_need_more_bytes() {
        let mut out = Vec::new();
        encode_request(1, &[], &[9; 64], &mut out);
        for cut in 0..out.len() {
            assert_eq!(decode(&out[..cut]), Ok(None), "cut at {cut}");
        }
    }

    #[test]
    fn what_the_bench_never_sends_is_refused() {
        assert_eq!(decode(&[2, 1]), Err(FrameError::Protocol(2)));
        assert_eq!(decode(&[1, 5]), Err(FrameError::Type(5)));
        assert_eq!(decode(&[1, 1, 0, 9]), Err(FrameError::Command(9)));
        let mut huge = Vec::new();
        encode_response(1, Command::Request, b"", &mut huge);
        huge[16..20].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(decode(&huge), Err(FrameError::TooLarge(_))));
    }
}
