//! An HTTP/2 client that writes the frames a test tells it to, malformed
//! ones included (a `connection` field, a `content-length` the DATA
//! breaks, `host` beside `:authority`): real clients (curl, nghttp, the
//! h2 crate) refuse to send those, and the point is to see what baton
//! makes of them.
//!
//! Header blocks are HPACK literals without indexing and without Huffman
//! coding (RFC 7541 §6.2.2), so no encoder state is needed. Of a response
//! it decodes only `:status`, which the peer sends first: an indexed
//! static-table entry, or a literal whose value may be Huffman-coded
//! digits.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::PATIENCE;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;

pub const END_STREAM: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;
pub const ACK: u8 = 0x1;

/// `PROTOCOL_ERROR` (RFC 9113 §7).
pub const PROTOCOL_ERROR: u32 = 0x1;

/// One frame as read.
#[derive(Debug, Clone)]
pub struct Frame {
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
    pub payload: Vec<u8>,
}

/// How a stream ended, as the client saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEnd {
    /// RST_STREAM with this error code (before or after a response head).
    Reset(u32),
    /// A complete response.
    Response { status: u16, body: Vec<u8> },
    /// GOAWAY with this error code.
    GoAway(u32),
    /// The connection ended.
    Closed,
}

/// The client; see the module docs.
#[derive(Debug)]
pub struct H2Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl H2Client {
    /// Connects and sends the preface and an empty SETTINGS.
    pub async fn connect(addr: SocketAddr) -> H2Client {
        let stream = timeout(PATIENCE, TcpStream::connect(addr))
            .await
            .expect("connect timed out")
            .unwrap();
        let _ = stream.set_nodelay(true);
        let mut client = H2Client {
            stream,
            buf: Vec::new(),
        };
        let mut hello = PREFACE.to_vec();
        frame(&mut hello, SETTINGS, 0, 0, &[]);
        client.write(&hello).await;
        client
    }

    async fn write(&mut self, bytes: &[u8]) {
        timeout(PATIENCE, self.stream.write_all(bytes))
            .await
            .expect("write timed out")
            .unwrap();
    }

    /// A HEADERS frame (END_HEADERS set) with `fields` in order,
    /// pseudo-fields included, as they are.
    pub async fn headers(&mut self, id: u32, fields: &[(&str, &str)], end_stream: bool) {
        let mut block = Vec::new();
        for (name, value) in fields {
            // Literal without indexing, new name, no Huffman.
            block.push(0x00);
            integer(&mut block, 0, 7, name.len());
            block.extend_from_slice(name.as_bytes());
            integer(&mut block, 0, 7, value.len());
            block.extend_from_slice(value.as_bytes());
        }
        let flags = END_HEADERS | if end_stream { END_STREAM } else { 0 };
        let mut out = Vec::new();
        frame(&mut out, HEADERS, flags, id, &block);
        self.write(&out).await;
    }

    /// A DATA frame.
    pub async fn data(&mut self, id: u32, data: &[u8], end_stream: bool) {
        let mut out = Vec::new();
        frame(
            &mut out,
            DATA,
            if end_stream { END_STREAM } else { 0 },
            id,
            data,
        );
        self.write(&out).await;
    }

    /// The next frame; SETTINGS and PING are acknowledged on the way.
    /// `None` when the connection ends.
    pub async fn frame(&mut self) -> Option<Frame> {
        loop {
            if self.buf.len() >= 9 {
                let len = usize::from(self.buf[0]) << 16
                    | usize::from(self.buf[1]) << 8
                    | usize::from(self.buf[2]);
                if self.buf.len() >= 9 + len {
                    let head: Vec<u8> = self.buf.drain(..9).collect();
                    let payload: Vec<u8> = self.buf.drain(..len).collect();
                    let frame = Frame {
                        kind: head[3],
                        flags: head[4],
                        stream: u32::from_be_bytes([head[5], head[6], head[7], head[8]])
                            & 0x7fff_ffff,
                        payload,
                    };
                    let mut ack = Vec::new();
                    match frame.kind {
                        SETTINGS if frame.flags & ACK == 0 => frame_ack(&mut ack, SETTINGS, &[]),
                        PING if frame.flags & ACK == 0 => frame_ack(&mut ack, PING, &frame.payload),
                        _ => {}
                    }
                    if !ack.is_empty() {
                        // The peer may be gone already; the frame still counts.
                        let _ = self.stream.write_all(&ack).await;
                    }
                    return Some(frame);
                }
            }
            let mut chunk = [0u8; 16 * 1024];
            match timeout(PATIENCE, self.stream.read(&mut chunk))
                .await
                .expect("no frame within PATIENCE")
            {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Reads frames until stream `id` ends (see [`StreamEnd`]).
    pub async fn outcome(&mut self, id: u32) -> StreamEnd {
        let mut status = None;
        let mut body = Vec::new();
        loop {
            let Some(frame) = self.frame().await else {
                return StreamEnd::Closed;
            };
            match frame.kind {
                GOAWAY => {
                    let code = frame
                        .payload
                        .get(4..8)
                        .map_or(0, |c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
                    return StreamEnd::GoAway(code);
                }
                RST_STREAM if frame.stream == id => {
                    let c = &frame.payload;
                    return StreamEnd::Reset(u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
                }
                HEADERS if frame.stream == id => {
                    if status.is_none() {
                        status = Some(status_of(header_block(&frame)));
                    }
                }
                DATA if frame.stream == id => body.extend_from_slice(&frame.payload),
                _ => continue,
            }
            if frame.flags & END_STREAM != 0 {
                return StreamEnd::Response {
                    status: status.unwrap_or(0),
                    body,
                };
            }
        }
    }
}

/// A HEADERS frame's block, without padding and priority.
fn header_block(frame: &Frame) -> &[u8] {
    let mut block = &frame.payload[..];
    let mut pad = 0;
    if frame.flags & 0x8 != 0 {
        pad = usize::from(block[0]);
        block = &block[1..];
    }
    if frame.flags & 0x20 != 0 {
        block = &block[5..];
    }
    &block[..block.len() - pad]
}

/// `:status` from the first representation of a response block.
fn status_of(block: &[u8]) -> u16 {
    let Some(&first) = block.first() else {
        return 0;
    };
    if first & 0x80 != 0 {
        // Indexed: the static table's :status entries (RFC 7541 App. A).
        return match first & 0x7f {
            8 => 200,
            9 => 204,
            10 => 206,
            11 => 304,
            12 => 400,
            13 => 404,
            14 => 500,
            _ => 0,
        };
    }
    // A literal with an indexed name (:status is 8..=14): skip the name
    // index, then the value string.
    let prefix = if first & 0x40 != 0 { 6 } else { 4 };
    let index = usize::from(first) & ((1 << prefix) - 1);
    if !(8..=14).contains(&index) || block.len() < 2 {
        return 0;
    }
    let huffman = block[1] & 0x80 != 0;
    let len = usize::from(block[1] & 0x7f);
    let Some(value) = block.get(2..2 + len) else {
        return 0;
    };
    let text = if huffman {
        huffman_digits(value)
    } else {
        String::from_utf8_lossy(value).into_owned()
    };
    text.parse().unwrap_or(0)
}

/// Decodes Huffman-coded digits (RFC 7541 Appendix B: `0`-`2` are 5-bit
/// codes `00000`-`00010`, `3`-`9` are 6-bit codes `011001`-`011111`).
fn huffman_digits(bytes: &[u8]) -> String {
    let bits: Vec<u8> = bytes
        .iter()
        .flat_map(|b| (0..8).rev().map(move |i| (b >> i) & 1))
        .collect();
    let mut out = String::new();
    let mut at = 0;
    let code = |from: usize, n: usize| {
        bits.get(from..from + n)
            .map(|b| b.iter().fold(0u8, |v, bit| v << 1 | bit))
    };
    while at + 5 <= bits.len() {
        if let Some(c @ 0..=2) = code(at, 5) {
            out.push(char::from(b'0' + c));
            at += 5;
            continue;
        }
        match code(at, 6) {
            Some(c @ 0b011001..=0b011111) => {
                out.push(char::from(b'3' + (c - 0b011001)));
                at += 6;
            }
            // The EOS padding (all ones) or something else: done.
            _ => break,
        }
    }
    out
}

fn frame(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    let len = payload.len();
    out.extend_from_slice(&[(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags]);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
}

fn frame_ack(out: &mut Vec<u8>, kind: u8, payload: &[u8]) {
    frame(out, kind, ACK, 0, payload);
}

/// An HPACK integer with an `n`-bit prefix (RFC 7541 §5.1).
fn integer(out: &mut Vec<u8>, high: u8, n: u32, mut value: usize) {
    let max = (1usize << n) - 1;
    if value < max {
        out.push(high | value as u8);
        return;
    }
    out.push(high | max as u8);
    value -= max;
    while value >= 128 {
        out.push((value % 128 + 128) as u8);
        value /= 128;
    }
    out.push(value as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_decode_indexed_literal_and_huffman() {
        assert_eq!(status_of(&[0x88]), 200);
        assert_eq!(status_of(&[0x8c]), 400);
        assert_eq!(status_of(&[0x08, 0x03, b'5', b'0', b'2']), 502);
        // "502" Huffman-coded: 011011 00000 00010 + padding 1111 1... =
        // 0110 1100 0000 0010 1111 1111 -> 0x6c 0x02 0xff? Built here.
        let mut bits = String::from("011011" /* 5 */);
        bits.push_str("00000" /* 0 */);
        bits.push_str("00010" /* 2 */);
        while bits.len() % 8 != 0 {
            bits.push('1');
        }
        let bytes: Vec<u8> = bits
            .as_bytes()
            .chunks(8)
            .map(|c| u8::from_str_radix(std::str::from_utf8(c).unwrap(), 2).unwrap())
            .collect();
        let mut block = vec![0x48, 0x80 | bytes.len() as u8];
        block.extend_from_slice(&bytes);
        assert_eq!(status_of(&block), 502);
        let mut out = Vec::new();
        integer(&mut out, 0, 7, 1337);
        assert_eq!(out, [127, 0xba, 0x09]);
    }
}
