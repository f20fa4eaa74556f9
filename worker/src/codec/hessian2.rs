//! Just enough Hessian 2.0 to route Dubbo requests, to write Dubbo error
//! bodies, and to find (and rewrite) a request's attachments: strings and
//! null are read and written; every other value is only stepped over
//! ([`Reader::skip_value`]), its bytes kept as they are.
//!
//! String grammar (Hessian 2.0 serialization spec, §string):
//!
//! ```text
//! string ::= x52 b1 b0 <utf8-data> string   # non-final chunk, 'R'
//!        ::= 'S' b1 b0 <utf8-data>          # final chunk
//!        ::= [x00-x1f] <utf8-data>          # length 0-31
//!        ::= [x30-x33] b0 <utf8-data>       # length 0-1023
//! null   ::= 'N'
//! ```
//!
//! Lengths count UTF-16 code units, not bytes, so the reader walks the UTF-8
//! lead bytes to find where a string ends; it never trusts a length to size
//! an allocation. Java encodes a supplementary character as two surrogates
//! of three bytes each (not valid UTF-8); the reader counts them correctly
//! and converts lossily.

use bytes::{BufMut, BytesMut};

/// Longest string the reader returns, in UTF-16 units. Service, method and
/// version names are far shorter; a longer one is not routed on.
pub(crate) const MAX_STRING_UNITS: usize = 4096;

/// Why a string could not be read. Callers treat any of these as "attribute
/// absent", never as a broken frame: the body is the application's business.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadError {
    /// The bytes end inside the string.
    Truncated,
    /// The next value is not a string (or null).
    NotAString,
    /// Longer than [`MAX_STRING_UNITS`].
    TooLong,
    /// A byte that cannot start a UTF-8 sequence.
    BadUtf8,
    /// A tag no value starts with here (a reserved byte, an object of a
    /// class never defined, a negative count).
    Unsupported,
    /// Values nested deeper than [`MAX_DEPTH`].
    TooDeep,
}

/// A forward reader over a hessian2 byte sequence.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// The field count of each class definition met so far, in order.
    classes: Vec<usize>,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self {
            buf,
            pos: 0,
            classes: Vec::new(),
        }
    }

    fn byte(&mut self) -> Result<u8, ReadError> {
        let b = *self.buf.get(self.pos).ok_or(ReadError::Truncated)?;
        self.pos += 1;
        Ok(b)
    }

    /// Reads a string or null.
    pub(crate) fn read_string(&mut self) -> Result<Option<String>, ReadError> {
        let mut out = String::new();
        let mut units = 0usize;
        let mut first = true;
        loop {
            let tag = self.byte()?;
            let (len, last) = match tag {
                b'N' if first => return Ok(None),
                0x00..=0x1f => (usize::from(tag), true),
                0x30..=0x33 => (
                    (usize::from(tag - 0x30) << 8) | usize::from(self.byte()?),
                    true,
                ),
                b'S' | b'R' => {
                    let hi = usize::from(self.byte()?);
                    let lo = usize::from(self.byte()?);
                    ((hi << 8) | lo, tag == b'S')
                }
                _ => return Err(ReadError::NotAString),
            };
            first = false;
            units += len;
            if units > MAX_STRING_UNITS {
                return Err(ReadError::TooLong);
            }
            let bytes = self.utf8_units(len)?;
            out.push_str(&String::from_utf8_lossy(bytes));
            if last {
                return Ok(Some(out));
            }
        }
    }

    /// The string that is all of the bytes, if they are one.
    pub(crate) fn read_whole_string(&mut self) -> Option<String> {
        let text = self.read_string().ok()??;
        self.at_end().then_some(text)
    }

    /// Takes the bytes of `units` UTF-16 code units of (modified) UTF-8.
    fn utf8_units(&mut self, units: usize) -> Result<&'a [u8], ReadError> {
        let start = self.pos;
        let mut left = units;
        while left > 0 {
            let lead = *self.buf.get(self.pos).ok_or(ReadError::Truncated)?;
            let (width, count) = match lead {
                0x00..=0x7f => (1, 1),
                0xc0..=0xdf => (2, 1),
                0xe0..=0xef => (3, 1),
                // A 4-byte sequence is one supplementary character: two units.
                0xf0..=0xf7 if left >= 2 => (4, 2),
                _ => return Err(ReadError::BadUtf8),
            };
            let end = self.pos + width;
            if end > self.buf.len() {
                return Err(ReadError::Truncated);
            }
            self.pos = end;
            left -= count;
        }
        self.buf.get(start..self.pos).ok_or(ReadError::Truncated)
    }
}

/// A map's entries: each key and the range of its value's bytes.
pub(crate) type StringMap = Vec<(String, std::ops::Range<usize>)>;

/// How deep [`Reader::skip_value`] follows nested lists, maps and
/// objects: a Dubbo argument is rarely more than a few levels deep, and
/// the cap keeps a hostile body from exhausting the stack.
const MAX_DEPTH: u8 = 64;

/// Stepping over values (Hessian 2.0 serialization spec, §3):
///
/// ```text
/// value  ::= null | binary | boolean | class-def value | date | double
///          | int | list | long | map | object | ref | string
/// int    ::= 'I' b3 b2 b1 b0 | [x80-xbf] | [xc0-xcf] b0 | [xd0-xd7] b1 b0
/// long   ::= 'L' b7..b0 | [xd8-xef] | [xf0-xff] b0 | [x38-x3f] b1 b0 | x59 b3..b0
/// double ::= 'D' b7..b0 | x5b | x5c | x5d b0 | x5e b1 b0 | x5f b3..b0
/// date   ::= x4a b7..b0 | x4b b3..b0
/// binary ::= x41 b1 b0 <bytes> binary | 'B' b1 b0 <bytes> | [x20-x2f] <bytes> | [x34-x37] b0 <bytes>
/// list   ::= x55 type value* 'Z' | 'V' type int value* | x57 value* 'Z'
///          | x58 int value* | [x70-x77] type value* | [x78-x7f] value*
/// map    ::= 'M' type (value value)* 'Z' | 'H' (value value)* 'Z'
/// class-def ::= 'C' string int string*
/// object ::= 'O' int value* | [x60-x6f] value*
/// ref    ::= x51 int
/// type   ::= string | int
/// ```
///
/// An object's field count comes from its class definition, met earlier
/// in the same stream, so the reader remembers each definition's count.
impl Reader<'_> {
    /// Where the reader is, in bytes from the start.
    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    /// Whether every byte has been read.
    pub(crate) fn at_end(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn peek(&self) -> Result<u8, ReadError> {
        self.buf.get(self.pos).copied().ok_or(ReadError::Truncated)
    }

    fn advance(&mut self, n: usize) -> Result<(), ReadError> {
        let end = self.pos.checked_add(n).ok_or(ReadError::Truncated)?;
        if end > self.buf.len() {
            return Err(ReadError::Truncated);
        }
        self.pos = end;
        Ok(())
    }

    fn u16(&mut self) -> Result<usize, ReadError> {
        let hi = usize::from(self.byte()?);
        Ok((hi << 8) | usize::from(self.byte()?))
    }

    /// An int (the count or index forms use), which must not be negative.
    fn count(&mut self) -> Result<usize, ReadError> {
        let tag = self.byte()?;
        let value = match tag {
            0x80..=0xbf => i32::from(tag) - 0x90,
            0xc0..=0xcf => ((i32::from(tag) - 0xc8) << 8) | i32::from(self.byte()?),
            0xd0..=0xd7 => {
                let high = (i32::from(tag) - 0xd4) << 16;
                high | i32::try_from(self.u16()?).unwrap_or(0)
            }
            b'I' => {
                let hi = self.u16()?;
                let lo = self.u16()?;
                // Two u16 halves: at most 32 bits.
                #[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]
                let value = ((hi << 16) | lo) as u32 as i32;
                value
            }
            _ => return Err(ReadError::Unsupported),
        };
        // Every element takes at least a byte, so a loop over a count
        // that lies ends at the bytes' end (Truncated), however large.
        usize::try_from(value).map_err(|_| ReadError::Unsupported)
    }

    /// Steps over a string's chunks, `tag` (already read) first.
    fn skip_string(&mut self, mut tag: u8) -> Result<(), ReadError> {
        loop {
            let (len, last) = match tag {
                0x00..=0x1f => (usize::from(tag), true),
                0x30..=0x33 => (
                    (usize::from(tag - 0x30) << 8) | usize::from(self.byte()?),
                    true,
                ),
                b'S' | b'R' => (self.u16()?, tag == b'S'),
                _ => return Err(ReadError::NotAString),
            };
            self.utf8_units(len)?;
            if last {
                return Ok(());
            }
            tag = self.byte()?;
        }
    }

    /// A list's or map's type: a type name (a string) or a number naming
    /// one met before.
    fn skip_type(&mut self) -> Result<(), ReadError> {
        match self.peek()? {
            tag @ (0x00..=0x1f | 0x30..=0x33 | b'S' | b'R') => {
                self.pos += 1;
                self.skip_string(tag)
            }
            _ => self.count().map(drop),
        }
    }

    /// Steps over values up to the closing `'Z'`, `per_entry` at a time.
    fn skip_until_end(&mut self, per_entry: usize, depth: u8) -> Result<(), ReadError> {
        while self.peek()? != b'Z' {
            for _ in 0..per_entry {
                self.skip(depth)?;
            }
        }
        self.pos += 1;
        Ok(())
    }

    fn skip_values(&mut self, n: usize, depth: u8) -> Result<(), ReadError> {
        (0..n).try_for_each(|_| self.skip(depth))
    }

    /// A map whose keys are strings (Dubbo's attachments): each key, and
    /// where its value's bytes are. `None` for null. Refused if a key is
    /// not a string.
    pub(crate) fn string_map(&mut self) -> Result<Option<StringMap>, ReadError> {
        match self.byte()? {
            b'N' => return Ok(None),
            b'H' => {}
            b'M' => self.skip_type()?,
            _ => return Err(ReadError::Unsupported),
        }
        let mut entries = Vec::new();
        while self.peek()? != b'Z' {
            let key = self.read_string()?.ok_or(ReadError::NotAString)?;
            let at = self.pos;
            self.skip_value()?;
            entries.push((key, at..self.pos));
        }
        self.pos += 1;
        Ok(Some(entries))
    }

    /// Steps over one value of any type.
    pub(crate) fn skip_value(&mut self) -> Result<(), ReadError> {
        self.skip(MAX_DEPTH)
    }

    fn skip(&mut self, depth: u8) -> Result<(), ReadError> {
        let inner = depth.checked_sub(1).ok_or(ReadError::TooDeep)?;
        let mut tag = self.byte()?;
        // Class definitions precede the value that uses them.
        while tag == b'C' {
            let name = self.byte()?;
            self.skip_string(name)?;
            let fields = self.count()?;
            for _ in 0..fields {
                let field = self.byte()?;
                self.skip_string(field)?;
            }
            self.classes.push(fields);
            tag = self.byte()?;
        }
        match tag {
            b'N' | b'T' | b'F' | 0x80..=0xbf | 0xd8..=0xef | 0x5b | 0x5c => Ok(()),
            0xc0..=0xcf | 0xf0..=0xff | 0x5d => self.advance(1),
            0xd0..=0xd7 | 0x38..=0x3f | 0x5e => self.advance(2),
            b'I' | b'Y' | b'K' | 0x5f => self.advance(4),
            b'L' | b'D' | b'J' => self.advance(8),
            0x00..=0x1f | 0x30..=0x33 | b'S' | b'R' => self.skip_string(tag),
            0x20..=0x2f => self.advance(usize::from(tag - 0x20)),
            0x34..=0x37 => {
                let lo = usize::from(self.byte()?);
                self.advance((usize::from(tag - 0x34) << 8) | lo)
            }
            b'A' | b'B' => {
                let mut chunk = tag;
                loop {
                    let len = self.u16()?;
                    self.advance(len)?;
                    if chunk == b'B' {
                        return Ok(());
                    }
                    chunk = self.byte()?;
                    if !matches!(chunk, b'A' | b'B') {
                        return Err(ReadError::Unsupported);
                    }
                }
            }
            b'Q' => self.count().map(drop),
            b'H' => self.skip_until_end(2, inner),
            b'M' => {
                self.skip_type()?;
                self.skip_until_end(2, inner)
            }
            0x55 => {
                self.skip_type()?;
                self.skip_until_end(1, inner)
            }
            0x57 => self.skip_until_end(1, inner),
            b'V' => {
                self.skip_type()?;
                let n = self.count()?;
                self.skip_values(n, inner)
            }
            b'X' => {
                let n = self.count()?;
                self.skip_values(n, inner)
            }
            0x70..=0x77 => {
                self.skip_type()?;
                self.skip_values(usize::from(tag - 0x70), inner)
            }
            0x78..=0x7f => self.skip_values(usize::from(tag - 0x78), inner),
            b'O' | 0x60..=0x6f => {
                let class = if tag == b'O' {
                    self.count()?
                } else {
                    usize::from(tag - 0x60)
                };
                let fields = *self.classes.get(class).ok_or(ReadError::Unsupported)?;
                self.skip_values(fields, inner)
            }
            _ => Err(ReadError::Unsupported),
        }
    }
}

/// Appends `s` as a hessian2 string, chunked like Hessian's Java writer
/// (chunks of at most 0x8000 units; a chunk never splits a character).
pub(crate) fn write_string(out: &mut BytesMut, s: &str) {
    const CHUNK: usize = 0x8000;
    let mut rest = s;
    loop {
        // Find the longest prefix of at most CHUNK units.
        let mut units = 0;
        let mut split = rest.len();
        for (i, c) in rest.char_indices() {
            let w = c.len_utf16();
            if units + w > CHUNK {
                split = i;
                break;
            }
            units += w;
        }
        let (chunk, tail) = rest.split_at(split);
        if tail.is_empty() {
            write_final(out, chunk, units);
            return;
        }
        out.put_u8(b'R');
        // `units` <= CHUNK = 0x8000 fits in u16.
        #[allow(clippy::cast_possible_truncation)]
        out.put_u16(units as u16);
        out.extend_from_slice(chunk.as_bytes());
        rest = tail;
    }
}

#[allow(clippy::cast_possible_truncation)] // each branch bounds `units`
fn write_final(out: &mut BytesMut, chunk: &str, units: usize) {
    if units <= 0x1f {
        out.put_u8(units as u8);
    } else if units <= 0x3ff {
        out.put_u8(0x30 + (units >> 8) as u8);
        out.put_u8((units & 0xff) as u8);
    } else {
        out.put_u8(b'S');
        out.put_u16(units as u16);
    }
    out.extend_from_slice(chunk.as_bytes());
}

/// Appends hessian2 null.
pub(crate) fn write_null(out: &mut BytesMut) {
    out.put_u8(b'N');
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn read(b: &[u8]) -> Result<Option<String>, ReadError> {
        Reader::new(b).read_string()
    }

    #[test]
    fn reads_each_string_form() {
        // Compact, from the MOSN Dubbo fixture: 0x05 "2.6.2".
        assert_eq!(read(b"\x052.6.2"), Ok(Some("2.6.2".into())));
        // Medium: 0x30 0x30 = 48 units.
        let mut medium = vec![0x30, 0x30];
        medium.extend_from_slice(b"com.raycloud.notify.api.service.NotifyJobRequest");
        assert_eq!(
            read(&medium),
            Ok(Some(
                "com.raycloud.notify.api.service.NotifyJobRequest".into()
            ))
        );
        assert_eq!(read(b"S\x00\x03abc"), Ok(Some("abc".into())));
        assert_eq!(read(b"R\x00\x02ab\x01c"), Ok(Some("abc".into())));
        assert_eq!(read(b"N"), Ok(None));
        assert_eq!(read(b"\x00"), Ok(Some(String::new())));
        // Two units, one character outside the BMP, 4-byte UTF-8.
        assert_eq!(read("\x02😀".as_bytes()), Ok(Some("😀".into())));
        // Units, not bytes: "é" is one unit of two bytes.
        assert_eq!(read("\x02éa".as_bytes()), Ok(Some("éa".into())));
    }

    #[test]
    fn rejects_without_panicking() {
        assert_eq!(read(b""), Err(ReadError::Truncated));
        assert_eq!(read(b"\x05ab"), Err(ReadError::Truncated));
        assert_eq!(read(b"S\xff"), Err(ReadError::Truncated));
        assert_eq!(read(b"\x91"), Err(ReadError::NotAString));
        assert_eq!(read(b"R\x00\x01aN"), Err(ReadError::NotAString));
        assert_eq!(read(b"\x01\x80"), Err(ReadError::BadUtf8));
        assert_eq!(read(b"\x02\xe9"), Err(ReadError::Truncated));
        // A chain of 'R' chunks claiming 0xffff units each stops at the cap
        // before reading (or allocating) anything.
        assert_eq!(read(b"R\xff\xffabc"), Err(ReadError::TooLong));
    }

    proptest! {
        #[test]
        fn write_then_read(s in ".{0,40}", long in proptest::bool::ANY) {
            let s = if long { s.repeat(60) } else { s };
            let mut out = BytesMut::new();
            write_string(&mut out, &s);
            let units: usize = s.chars().map(char::len_utf16).sum();
            let expect = if units > MAX_STRING_UNITS { Err(ReadError::TooLong) } else { Ok(Some(s.clone())) };
            prop_assert_eq!(read(&out), expect);
        }

        #[test]
        fn never_panics(b in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = read(&b);
        }
    }

    #[test]
    fn chunks_long_strings() {
        let s = "a".repeat(0x8000 + 5);
        let mut out = BytesMut::new();
        write_string(&mut out, &s);
        assert_eq!(&out[..3], b"R\x80\x00");
        assert_eq!(&out[3 + 0x8000..3 + 0x8000 + 1], &[0x05]);
    }
}
