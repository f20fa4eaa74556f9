//! The TARS ("JCE") tag-length-value encoding, read side, bounded.
//!
//! Every field starts with a head: one byte `tag << 4 | type`, or, for tags
//! 15 and up, the byte `0xF0 | type` followed by the tag in a second byte
//! (TarsGo `codec.Buffer.WriteHead`; readers accept the long form for any
//! tag). The value that follows depends on the type:
//!
//! | type | name | value |
//! |---|---|---|
//! | 0 | INT1 | 1 byte, signed |
//! | 1 | INT2 | 2 bytes, big-endian, signed |
//! | 2 | INT4 | 4 bytes |
//! | 3 | INT8 | 8 bytes |
//! | 4 | FLOAT | 4 bytes |
//! | 5 | DOUBLE | 8 bytes |
//! | 6 | STRING1 | length `u8`, then the bytes |
//! | 7 | STRING4 | length `u32`, then the bytes |
//! | 8 | MAP | a length (an integer field with tag 0), then that many key (tag 0) and value (tag 1) fields |
//! | 9 | LIST | a length (integer, tag 0), then that many elements (tag 0) |
//! | 10 | STRUCT_BEGIN | fields, up to a STRUCT_END |
//! | 11 | STRUCT_END | nothing |
//! | 12 | ZERO_TAG | nothing: the number 0 in any integer or float field |
//! | 13 | SIMPLE_LIST | a head of type INT1 with tag 0, a length (integer, tag 0), then that many bytes: `vector<byte>` |
//!
//! Integers are written in the smallest type that holds the value (TarsGo
//! `WriteInt32` falls through to `WriteInt16`, `WriteInt8`, ZERO_TAG), and
//! a reader of an `int` field accepts ZERO_TAG, INT1, INT2 and INT4, each
//! sign-extended; a `short` field accepts up to INT2, a `byte` field up to
//! INT1 (TarsGo `codec.Reader.ReadInt32` and friends, Java
//! `TarsInputStream.read`).
//!
//! # Bounds
//!
//! The reader works on one complete frame. Every length is checked against
//! the bytes left in that frame before anything is skipped or borrowed, a
//! count of elements costs at least one byte per element (so a peer's count
//! cannot make the reader loop longer than the frame is long), nothing is
//! allocated here, and containers nest at most [`MAX_DEPTH`] deep, so
//! recursion is bounded too.

use super::malformed;
use crate::codec::CodecError;

pub(super) const INT1: u8 = 0;
pub(super) const INT2: u8 = 1;
pub(super) const INT4: u8 = 2;
pub(super) const INT8: u8 = 3;
pub(super) const FLOAT: u8 = 4;
pub(super) const DOUBLE: u8 = 5;
pub(super) const STRING1: u8 = 6;
pub(super) const STRING4: u8 = 7;
pub(super) const MAP: u8 = 8;
pub(super) const LIST: u8 = 9;
pub(super) const STRUCT_BEGIN: u8 = 10;
pub(super) const STRUCT_END: u8 = 11;
pub(super) const ZERO_TAG: u8 = 12;
pub(super) const SIMPLE_LIST: u8 = 13;

/// How deep maps, lists and structs may nest inside a packet. The packet
/// structs themselves only hold flat maps and byte vectors; deeper values
/// can only be fields a newer peer added, and real IDL types rarely nest
/// past a handful of levels. Bounds the skipper's recursion.
pub(super) const MAX_DEPTH: usize = 32;

/// The widest integer type a field may use.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(super) enum Width {
    /// `byte`: ZERO_TAG or INT1.
    Byte,
    /// `short`: up to INT2.
    Short,
    /// `int`: up to INT4.
    Int,
}

/// One field head.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(super) struct Head {
    pub(super) ty: u8,
    pub(super) tag: u8,
    /// Offset of the head's first byte in the frame.
    pub(super) at: usize,
}

/// A forward-only reader over one complete frame.
#[derive(Debug)]
pub(super) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader over `buf`, starting at `pos`.
    pub(super) fn new(buf: &'a [u8], pos: usize) -> Self {
        Self { buf, pos }
    }

    pub(super) fn position(&self) -> usize {
        self.pos
    }

    pub(super) fn at_end(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.buf.len())
            .ok_or(malformed("a field runs past the end of the packet"))?;
        let out = self
            .buf
            .get(self.pos..end)
            .ok_or(malformed("a field runs past the end of the packet"))?;
        self.pos = end;
        Ok(out)
    }

    fn byte(&mut self) -> Result<u8, CodecError> {
        self.take(1).map(|b| b.first().copied().unwrap_or(0))
    }

    /// The next head, without consuming it.
    pub(super) fn peek_head(&self) -> Result<Head, CodecError> {
        let mut copy = Reader::new(self.buf, self.pos);
        copy.head()
    }

    /// Reads a head.
    pub(super) fn head(&mut self) -> Result<Head, CodecError> {
        let at = self.pos;
        let first = self.byte()?;
        let ty = first & 0x0f;
        let mut tag = first >> 4;
        if tag == 15 {
            tag = self.byte()?;
        }
        Ok(Head { ty, tag, at })
    }

    /// Reads the value of an integer field whose head said `ty`, refusing
    /// types wider than `width`.
    pub(super) fn int(&mut self, ty: u8, width: Width) -> Result<i32, CodecError> {
        let value = match ty {
            ZERO_TAG => 0,
            INT1 => i32::from(i8::from_be_bytes(self.array()?)),
            INT2 if width != Width::Byte => i32::from(i16::from_be_bytes(self.array()?)),
            INT4 if width == Width::Int => i32::from_be_bytes(self.array()?),
            _ => {
                return Err(malformed(
                    "an integer field has a non-integer or too wide type",
                ));
            }
        };
        Ok(value)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], CodecError> {
        self.take(N)?
            .try_into()
            .map_err(|_| malformed("a field runs past the end of the packet"))
    }

    /// A container's length: an `int` field with tag 0, not negative.
    fn length(&mut self) -> Result<usize, CodecError> {
        let head = self.head()?;
        if head.tag != 0 {
            return Err(malformed("a container length is not at tag 0"));
        }
        let n = self.int(head.ty, Width::Int)?;
        usize::try_from(n).map_err(|_| malformed("a negative container length"))
    }

    /// The bytes of a string field whose head said `ty`.
    pub(super) fn string(&mut self, ty: u8) -> Result<&'a [u8], CodecError> {
        let len = match ty {
            STRING1 => usize::from(self.byte()?),
            STRING4 => usize::try_from(u32::from_be_bytes(self.array()?))
                .map_err(|_| malformed("a string longer than the packet"))?,
            _ => return Err(malformed("a string field has a non-string type")),
        };
        if len > self.remaining() {
            return Err(malformed("a string runs past the end of the packet"));
        }
        self.take(len)
    }

    /// Skips a `vector<byte>` whose head said `ty`: a SIMPLE_LIST, or a LIST
    /// of INT1/ZERO_TAG elements (what older encoders write).
    pub(super) fn bytes_vector(&mut self, ty: u8) -> Result<(), CodecError> {
        match ty {
            SIMPLE_LIST => self.skip(SIMPLE_LIST, 0),
            LIST => {
                let n = self.length()?;
                for _ in 0..n {
                    let head = self.head()?;
                    if head.tag != 0 {
                        return Err(malformed("a list element is not at tag 0"));
                    }
                    self.int(head.ty, Width::Byte)?;
                }
                Ok(())
            }
            _ => Err(malformed(
                "a vector<byte> field is neither SIMPLE_LIST nor LIST",
            )),
        }
    }

    /// Reads a `map<string, string>` whose head said `ty`, handing each
    /// entry to `entry` in wire order.
    pub(super) fn string_map(
        &mut self,
        ty: u8,
        mut entry: impl FnMut(&'a [u8], &'a [u8]),
    ) -> Result<(), CodecError> {
        if ty != MAP {
            return Err(malformed("a map<string, string> field is not a MAP"));
        }
        let n = self.length()?;
        for _ in 0..n {
            let key = self.head()?;
            if key.tag != 0 {
                return Err(malformed("a map key is not at tag 0"));
            }
            let key = self.string(key.ty)?;
            let value = self.head()?;
            if value.tag != 1 {
                return Err(malformed("a map value is not at tag 1"));
            }
            let value = self.string(value.ty)?;
            entry(key, value);
        }
        Ok(())
    }

    /// Skips the value of a field whose head said `ty`, `depth` containers
    /// deep.
    pub(super) fn skip(&mut self, ty: u8, depth: usize) -> Result<(), CodecError> {
        match ty {
            INT1 => self.take(1).map(drop),
            INT2 => self.take(2).map(drop),
            INT4 | FLOAT => self.take(4).map(drop),
            INT8 | DOUBLE => self.take(8).map(drop),
            STRING1 | STRING4 => self.string(ty).map(drop),
            ZERO_TAG => Ok(()),
            SIMPLE_LIST => {
                let inner = self.head()?;
                if inner.ty != INT1 || inner.tag != 0 {
                    return Err(malformed("a SIMPLE_LIST without its INT1 element head"));
                }
                let n = self.length()?;
                if n > self.remaining() {
                    return Err(malformed("a SIMPLE_LIST runs past the end of the packet"));
                }
                self.take(n).map(drop)
            }
            MAP | LIST | STRUCT_BEGIN => {
                let depth = depth + 1;
                if depth > MAX_DEPTH {
                    return Err(malformed("values nested deeper than 32 containers"));
                }
                match ty {
                    STRUCT_BEGIN => loop {
                        let head = self.head()?;
                        if head.ty == STRUCT_END {
                            return Ok(());
                        }
                        self.skip(head.ty, depth)?;
                    },
                    _ => {
                        let n = self.length()?;
                        let fields = if ty == MAP { n.saturating_mul(2) } else { n };
                        // Each element costs at least its head byte, so this
                        // loop ends at the end of the packet whatever `n` is.
                        for _ in 0..fields {
                            let head = self.head()?;
                            if head.ty == STRUCT_END {
                                return Err(malformed("STRUCT_END where a value was expected"));
                            }
                            self.skip(head.ty, depth)?;
                        }
                        Ok(())
                    }
                }
            }
            STRUCT_END => Err(malformed("STRUCT_END outside a struct")),
            _ => Err(malformed("a field of unknown type (14 or 15)")),
        }
    }

    /// Moves to the field with `tag` in a struct whose fields come in
    /// ascending tag order, skipping fields with lower tags (unknown ones
    /// a newer peer added). Returns its head, consumed, or `None` (nothing
    /// consumed) if the next field has a higher tag or the packet ends:
    /// TarsGo's `SkipToNoCheck`.
    pub(super) fn field(&mut self, tag: u8) -> Result<Option<Head>, CodecError> {
        loop {
            if self.at_end() {
                return Ok(None);
            }
            let head = self.peek_head()?;
            if head.ty == STRUCT_END {
                return Err(malformed("STRUCT_END in a packet's top-level struct"));
            }
            if head.tag > tag {
                return Ok(None);
            }
            self.head()?;
            if head.tag == tag {
                return Ok(Some(head));
            }
            self.skip(head.ty, 0)?;
        }
    }

    /// Skips every field up to the end of the frame, which must end
    /// exactly at a field boundary.
    pub(super) fn skip_rest(&mut self) -> Result<(), CodecError> {
        while !self.at_end() {
            let head = self.head()?;
            if head.ty == STRUCT_END {
                return Err(malformed("STRUCT_END in a packet's top-level struct"));
            }
            self.skip(head.ty, 0)?;
        }
        Ok(())
    }
}

/// Writes the head of a field with `tag` and `ty` (tags below 15 in one
/// byte).
pub(super) fn put_head(out: &mut bytes::BytesMut, ty: u8, tag: u8) {
    use bytes::BufMut;
    if tag < 15 {
        out.put_u8(tag << 4 | ty);
    } else {
        out.put_u8(0xf0 | ty);
        out.put_u8(tag);
    }
}

/// Writes a string field (STRING1 up to 255 bytes, else STRING4), as
/// TarsGo's `WriteString` does.
pub(super) fn put_string(out: &mut bytes::BytesMut, tag: u8, s: &[u8]) {
    use bytes::BufMut;
    match u8::try_from(s.len()) {
        Ok(len) => {
            put_head(out, STRING1, tag);
            out.put_u8(len);
        }
        Err(_) => {
            put_head(out, STRING4, tag);
            // Only ever called with short proxy-made messages.
            out.put_u32(u32::try_from(s.len()).unwrap_or(u32::MAX));
        }
    }
    out.extend_from_slice(s);
}
