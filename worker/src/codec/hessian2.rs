//! Just enough Hessian 2.0 to route Dubbo requests and to write Dubbo error
//! bodies: strings and null, nothing else.
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
}

/// A forward reader over a hessian2 byte sequence.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
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
