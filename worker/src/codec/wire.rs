//! Bounds-checked big-endian reads shared by the codecs.
//!
//! Every read returns `None` instead of panicking when the slice is short,
//! so a decoder never indexes past what it has; the decoders turn `None`
//! into "need more bytes" (header) or `Malformed` (inside a complete frame).

/// Reads `N` bytes at `at`, if present.
fn array<const N: usize>(buf: &[u8], at: usize) -> Option<[u8; N]> {
    let end = at.checked_add(N)?;
    buf.get(at..end)?.try_into().ok()
}

pub(crate) fn u16_at(buf: &[u8], at: usize) -> Option<u16> {
    array(buf, at).map(u16::from_be_bytes)
}

pub(crate) fn u32_at(buf: &[u8], at: usize) -> Option<u32> {
    array(buf, at).map(u32::from_be_bytes)
}

pub(crate) fn i32_at(buf: &[u8], at: usize) -> Option<i32> {
    array(buf, at).map(i32::from_be_bytes)
}

pub(crate) fn u64_at(buf: &[u8], at: usize) -> Option<u64> {
    array(buf, at).map(u64::from_be_bytes)
}

/// Overwrites 4 bytes at `at`; false if they are not there.
pub(crate) fn put_u32_at(buf: &mut [u8], at: usize, value: u32) -> bool {
    match at.checked_add(4).and_then(|end| buf.get_mut(at..end)) {
        Some(slot) => {
            slot.copy_from_slice(&value.to_be_bytes());
            true
        }
        None => false,
    }
}

/// Overwrites 8 bytes at `at`; false if they are not there.
pub(crate) fn put_u64_at(buf: &mut [u8], at: usize, value: u64) -> bool {
    match at.checked_add(8).and_then(|end| buf.get_mut(at..end)) {
        Some(slot) => {
            slot.copy_from_slice(&value.to_be_bytes());
            true
        }
        None => false,
    }
}

/// A forward-only reader over a complete frame (or a part of one).
#[derive(Debug)]
pub(crate) struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let out = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(out)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    pub(crate) fn u8(&mut self) -> Option<u8> {
        self.array::<1>().map(|[b]| b)
    }

    pub(crate) fn i16(&mut self) -> Option<i16> {
        self.array().map(i16::from_be_bytes)
    }

    pub(crate) fn i32(&mut self) -> Option<i32> {
        self.array().map(i32::from_be_bytes)
    }
}

/// Lossy UTF-8 to an owned string. Attribute text comes from peers that may
/// not send valid UTF-8 (Java's modified UTF-8 for supplementary
/// characters); routing only ever compares it, so a replacement character is
/// the right outcome, not an error.
pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_reads_are_none_not_panics() {
        let b = [1u8, 2, 3];
        assert_eq!(u16_at(&b, 1), Some(0x0203));
        assert_eq!(u16_at(&b, 2), None);
        assert_eq!(u32_at(&b, 0), None);
        assert_eq!(u64_at(&b, usize::MAX), None);
        let mut c = Cursor::new(&b);
        assert_eq!(c.take(usize::MAX), None);
        assert_eq!(c.i16(), Some(0x0102));
        assert_eq!(c.i16(), None);
        assert_eq!(c.u8(), Some(3));
        assert!(c.is_empty());
        let mut m = [0u8; 4];
        assert!(!put_u64_at(&mut m, 0, 1));
        assert!(put_u32_at(&mut m, 0, 0x0a0b0c0d));
        assert_eq!(m, [0x0a, 0x0b, 0x0c, 0x0d]);
    }
}
