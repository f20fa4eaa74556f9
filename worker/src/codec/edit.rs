//! Editing an RPC frame's headers in place: Bolt's header map and Dubbo's
//! attachments, the key-value sections a proxy adds to or strips from a
//! request (a caller's identity, a tenant, a trace id) without touching
//! its payload. The `rpc_headers` filter is what uses it.
//!
//! # What is rewritten
//!
//! * **Bolt** (requests and responses): the header map section
//!   (`SimpleMapSerializer`, see [`super::bolt`]). The new map replaces the
//!   old one and `headerLen` is rewritten; the class name and content are
//!   copied untouched. A request's routing attributes are read again from
//!   the new map, so an edit of `service` routes the request by it.
//! * **Dubbo** (hessian2 requests): the attachments map that ends the
//!   body (see [`super::dubbo`]). It is found by reading the four leading
//!   strings and the parameter descriptor, then stepping over as many
//!   arguments as the descriptor names (`hessian2::Reader::skip_value`);
//!   the map is written again as an untyped hessian2 map (`'H' … 'Z'`,
//!   what Dubbo's own writer produces for a `HashMap`) and `bodyLen` is
//!   rewritten. Values that are not strings are kept byte for byte.
//!
//! Entries keep their order; a set replaces an entry's value where it is
//! (dropping later entries with the same key) or appends one; a removal
//! drops every entry with the key.
//!
//! # When it cannot
//!
//! A frame of another protocol, a Dubbo body in another serialization, or
//! one whose arguments cannot be stepped over (a value this reader does
//! not know, a class never defined) is refused with
//! [`CodecError::Unsupported`] or [`CodecError::Malformed`] and left
//! unchanged; a map that would outgrow its length field
//! (Bolt's `headerLen` is a u16) with [`CodecError::Rewrite`].

use std::ops::Range;

use bytes::{BufMut, BytesMut};

use super::hessian2::{self, Reader};
use super::{CodecError, Frame, Protocol, bolt, dubbo, wire};

/// One edit of a frame's headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderOp<'a> {
    /// Replace the value (or add the entry).
    Set(&'a str, &'a str),
    /// Drop every entry with this key.
    Remove(&'a str),
}

/// A header value: text, or bytes kept as the peer wrote them (a Bolt
/// null, a Dubbo value that is not a string).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    Text(String),
    Kept(Vec<u8>),
}

/// The headers of one frame, and where they sit in its bytes.
struct Section {
    /// The bytes the section occupies (Bolt: the header map; Dubbo: the
    /// attachments map, empty at the body's end when there is none).
    range: Range<usize>,
    entries: Vec<(String, Value)>,
}

impl Frame {
    /// The headers an RPC filter may edit, with text values: Bolt's
    /// header map, Dubbo's attachments (entries that are not strings are
    /// left out). Empty for a frame whose protocol has none to edit.
    pub fn editable_headers(&self) -> Vec<(String, String)> {
        let Ok(section) = section(self) else {
            return Vec::new();
        };
        section
            .entries
            .into_iter()
            .filter_map(|(k, v)| match v {
                Value::Text(text) => Some((k, text)),
                Value::Kept(_) => None,
            })
            .collect()
    }

    /// Applies `ops` in order. On an error the frame is unchanged.
    pub fn edit_headers(&mut self, ops: &[HeaderOp<'_>]) -> Result<(), CodecError> {
        let mut section = section(self)?;
        for op in ops {
            apply(&mut section.entries, *op);
        }
        let raw = self.as_bytes();
        let (raw, attributes) = match self.protocol() {
            Protocol::Bolt => {
                let map = bolt_map(&section.entries);
                let map_len = u16::try_from(map.len()).map_err(|_| CodecError::Rewrite {
                    protocol: Protocol::Bolt,
                    what: "the header map outgrows its u16 length",
                })?;
                let mut out = splice(raw, &section.range, &map);
                let header_len = bolt_header_len(raw);
                out[header_len - 6..header_len - 4].copy_from_slice(&map_len.to_be_bytes());
                let attributes = if self.is_request() && !self.is_heartbeat() {
                    let class_len = usize::from(wire::u16_at(raw, header_len - 8).unwrap_or(0));
                    let class = &raw[header_len..header_len + class_len];
                    let timeout = wire::i32_at(raw, 10).unwrap_or(0);
                    bolt::request_attributes(class, &map, timeout)?
                } else {
                    self.attributes().clone()
                };
                (out, attributes)
            }
            _ => {
                let mut map = BytesMut::new();
                map.put_u8(b'H');
                for (key, value) in &section.entries {
                    hessian2::write_string(&mut map, key);
                    match value {
                        Value::Text(text) => hessian2::write_string(&mut map, text),
                        Value::Kept(bytes) => map.extend_from_slice(bytes),
                    }
                }
                map.put_u8(b'Z');
                let mut out = splice(raw, &section.range, &map);
                let body_len = u32::try_from(out.len() - dubbo::HEADER_LEN)
                    .ok()
                    .filter(|&n| i32::try_from(n).is_ok())
                    .ok_or(CodecError::Rewrite {
                        protocol: Protocol::Dubbo,
                        what: "the body outgrows its i32 length",
                    })?;
                out[12..16].copy_from_slice(&body_len.to_be_bytes());
                (out, self.attributes().clone())
            }
        };
        self.replace(raw, attributes);
        Ok(())
    }
}

fn apply(entries: &mut Vec<(String, Value)>, op: HeaderOp<'_>) {
    match op {
        HeaderOp::Set(key, value) => match entries.iter().position(|(k, _)| k == key) {
            Some(first) => {
                entries[first].1 = Value::Text(value.to_owned());
                let mut at = 0;
                entries.retain(|(k, _)| {
                    at += 1;
                    at - 1 <= first || k != key
                });
            }
            None => entries.push((key.to_owned(), Value::Text(value.to_owned()))),
        },
        HeaderOp::Remove(key) => entries.retain(|(k, _)| k != key),
    }
}

/// `raw` with `range` replaced by `with`.
fn splice(raw: &[u8], range: &Range<usize>, with: &[u8]) -> BytesMut {
    let mut out = BytesMut::with_capacity(raw.len() - range.len() + with.len());
    out.extend_from_slice(&raw[..range.start]);
    out.extend_from_slice(with);
    out.extend_from_slice(&raw[range.end..]);
    out
}

fn section(frame: &Frame) -> Result<Section, CodecError> {
    match frame.protocol() {
        Protocol::Bolt if !frame.is_heartbeat() => bolt_section(frame.as_bytes()),
        Protocol::Dubbo if frame.is_request() && !frame.is_heartbeat() => {
            dubbo_section(frame.as_bytes())
        }
        protocol => Err(CodecError::Unsupported {
            protocol,
            what: "header edits of this frame kind",
            value: 0,
        }),
    }
}

fn bolt_header_len(raw: &[u8]) -> usize {
    if raw.get(1) == Some(&bolt::TYPE_RESPONSE) {
        bolt::RESPONSE_HEADER_LEN
    } else {
        bolt::REQUEST_HEADER_LEN
    }
}

fn bolt_malformed(what: &'static str) -> CodecError {
    CodecError::Malformed {
        protocol: Protocol::Bolt,
        what,
    }
}

fn bolt_section(raw: &[u8]) -> Result<Section, CodecError> {
    let header_len = bolt_header_len(raw);
    let (Some(class_len), Some(map_len)) = (
        wire::u16_at(raw, header_len - 8),
        wire::u16_at(raw, header_len - 6),
    ) else {
        return Err(bolt_malformed("header shorter than its fixed fields"));
    };
    let start = header_len + usize::from(class_len);
    let range = start..start + usize::from(map_len);
    let map = raw
        .get(range.clone())
        .ok_or(bolt_malformed("sections shorter than their lengths"))?;
    let mut cursor = wire::Cursor::new(map);
    let mut entries = Vec::new();
    while !cursor.is_empty() {
        let key = bolt_string(&mut cursor)?.ok_or(bolt_malformed("a null header key"))?;
        let at = cursor.position();
        let value = match bolt_string(&mut cursor)? {
            Some(text) => Value::Text(text),
            None => Value::Kept(map[at..cursor.position()].to_vec()),
        };
        entries.push((key, value));
    }
    Ok(Section { range, entries })
}

/// A length-prefixed string of the header map; `None` for a null (-1).
fn bolt_string(cursor: &mut wire::Cursor<'_>) -> Result<Option<String>, CodecError> {
    let len = cursor
        .i32()
        .ok_or(bolt_malformed("header map entry truncated"))?;
    if len == -1 {
        return Ok(None);
    }
    let len = usize::try_from(len).map_err(|_| bolt_malformed("negative header map length"))?;
    let bytes = cursor
        .take(len)
        .ok_or(bolt_malformed("header map length past its section"))?;
    Ok(Some(wire::text(bytes)))
}

fn bolt_map(entries: &[(String, Value)]) -> Vec<u8> {
    fn put(out: &mut Vec<u8>, text: &str) {
        // Lengths fit: the whole map is checked against a u16 after.
        #[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]
        out.extend_from_slice(&(text.len() as i32).to_be_bytes());
        out.extend_from_slice(text.as_bytes());
    }
    let mut out = Vec::new();
    for (key, value) in entries {
        put(&mut out, key);
        match value {
            Value::Text(text) => put(&mut out, text),
            Value::Kept(bytes) => out.extend_from_slice(bytes),
        }
    }
    out
}

fn dubbo_unsupported(what: &'static str) -> CodecError {
    CodecError::Unsupported {
        protocol: Protocol::Dubbo,
        what,
        value: 0,
    }
}

fn dubbo_section(raw: &[u8]) -> Result<Section, CodecError> {
    let serialization = raw
        .get(2)
        .map_or(0, |flag| flag & dubbo::SERIALIZATION_MASK);
    if serialization != dubbo::SERIALIZATION_HESSIAN2 {
        return Err(CodecError::Unsupported {
            protocol: Protocol::Dubbo,
            what: "serialization for attachment edits (hessian2 only)",
            value: u64::from(serialization),
        });
    }
    let body = raw.get(dubbo::HEADER_LEN..).unwrap_or_default();
    let unreadable = |_| dubbo_unsupported("request body (its arguments cannot be read)");
    let mut reader = Reader::new(body);
    for _ in 0..4 {
        reader.read_string().map_err(unreadable)?;
    }
    let descriptor = reader
        .read_string()
        .map_err(unreadable)?
        .unwrap_or_default();
    let arguments = argument_count(&descriptor).ok_or(dubbo_unsupported("parameter descriptor"))?;
    for _ in 0..arguments {
        reader.skip_value().map_err(unreadable)?;
    }
    let start = reader.position();
    let entries = if reader.at_end() {
        Vec::new()
    } else {
        reader
            .string_map()
            .map_err(|_| dubbo_unsupported("attachments (not a map of strings)"))?
            .unwrap_or_default()
            .into_iter()
            .map(|(key, at)| {
                let bytes = &body[at];
                let text = Reader::new(bytes)
                    .read_whole_string()
                    .map_or(Value::Kept(bytes.to_vec()), Value::Text);
                (key, text)
            })
            .collect()
    };
    if !reader.at_end() {
        return Err(dubbo_unsupported("bytes after the attachments"));
    }
    let end = reader.position();
    Ok(Section {
        range: dubbo::HEADER_LEN + start..dubbo::HEADER_LEN + end,
        entries,
    })
}

/// How many parameters a JVM method descriptor's parameter list names
/// (`Ljava/lang/String;[II` is three), as Dubbo's
/// `ReflectUtils.desc2classArray` reads it; `None` if it is not one.
fn argument_count(descriptor: &str) -> Option<usize> {
    let mut bytes = descriptor.bytes();
    let mut count = 0;
    while let Some(mut b) = bytes.next() {
        while b == b'[' {
            b = bytes.next()?;
        }
        match b {
            b'L' => while bytes.next()? != b';' {},
            b'Z' | b'B' | b'C' | b'S' | b'I' | b'J' | b'F' | b'D' => {}
            _ => return None,
        }
        count += 1;
    }
    Some(count)
}

#[cfg(test)]
mod tests;
