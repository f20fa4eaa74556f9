//! The RocketMQ JSON header, read the way the Java broker (fastjson) reads
//! it, not the way RFC 8259 would:
//!
//! * keys match case-insensitively (`Code`, `ExtFields`, `Opaque` from the
//!   .NET client are the broker's `code`, `extFields`, `opaque`);
//! * raw control characters inside strings are accepted (the .NET client
//!   sends message properties with literal 0x01/0x02 separators);
//! * absent fields take Java's defaults (`flag` 0, `code` 0).
//!
//! Everything else is strict: one object, quoted keys, nothing after it.
//! The reader is a single forward pass with no recursion beyond
//! [`MAX_DEPTH`] levels of values it skips, and it allocates only for the
//! strings it keeps (remark, ext fields). It records where `opaque`'s digits
//! are so the request id can be rewritten in place ([`super::super::Frame`]).

use std::borrow::Cow;
use std::ops::Range;

/// Nesting allowed inside values the codec skips (unknown keys). The header
/// is a flat object; a client sending more is not one we know.
const MAX_DEPTH: usize = 16;

/// The fields the codec uses.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct JsonHeader {
    pub(super) code: i32,
    pub(super) flag: i32,
    pub(super) version: i32,
    /// `opaque`'s value and the byte range of its digits in the header.
    pub(super) opaque: Option<(i32, Range<usize>)>,
    pub(super) remark: Option<String>,
    /// Where the `extFields` object is, validated but not collected:
    /// responses are routed by id, so only requests pay for [`ext_fields`].
    pub(super) ext_fields: Option<Range<usize>>,
}

/// Parses `header`.
pub(super) fn parse(header: &[u8]) -> Result<JsonHeader, &'static str> {
    let mut p = Parser {
        buf: header,
        pos: 0,
    };
    let mut out = JsonHeader::default();
    p.ws();
    p.expect(b'{')?;
    p.ws();
    if !p.eat(b'}') {
        loop {
            p.ws();
            let key = p.string()?;
            p.ws();
            p.expect(b':')?;
            p.ws();
            let key = Key::of(&key);
            match key {
                Key::Code => out.code = p.int()?.0,
                Key::Flag => out.flag = p.int()?.0,
                Key::Version => out.version = p.int()?.0,
                Key::Opaque => {
                    if out.opaque.is_some() {
                        return Err("JSON header with two opaque fields");
                    }
                    out.opaque = Some(p.int()?);
                }
                Key::Remark => out.remark = p.nullable_string()?.map(lossy),
                Key::ExtFields => {
                    let start = p.pos;
                    p.ext_fields(None)?;
                    out.ext_fields = Some(start..p.pos);
                }
                Key::Other => p.skip_value(0)?,
            }
            p.ws();
            if p.eat(b',') {
                continue;
            }
            p.expect(b'}')?;
            break;
        }
    }
    p.ws();
    if p.pos != header.len() {
        return Err("bytes after the JSON header object");
    }
    Ok(out)
}

/// Collects the ext fields at `range` (as returned by [`parse`]).
pub(super) fn ext_fields(
    header: &[u8],
    range: Range<usize>,
) -> Result<Vec<(String, String)>, &'static str> {
    let slice = header.get(range).ok_or("ext fields outside the header")?;
    let mut p = Parser { buf: slice, pos: 0 };
    let mut out = Vec::new();
    p.ext_fields(Some(&mut out))?;
    Ok(out)
}

fn lossy(bytes: Cow<'_, [u8]>) -> String {
    match bytes {
        Cow::Borrowed(b) => String::from_utf8_lossy(b).into_owned(),
        Cow::Owned(v) => match String::from_utf8(v) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        },
    }
}

enum Key {
    Code,
    Flag,
    Version,
    Opaque,
    Remark,
    ExtFields,
    Other,
}

impl Key {
    fn of(name: &[u8]) -> Self {
        let is = |k: &str| name.eq_ignore_ascii_case(k.as_bytes());
        if is("code") {
            Key::Code
        } else if is("flag") {
            Key::Flag
        } else if is("version") {
            Key::Version
        } else if is("opaque") {
            Key::Opaque
        } else if is("remark") {
            Key::Remark
        } else if is("extFields") {
            Key::ExtFields
        } else {
            Key::Other
        }
    }
}

struct Parser<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.pos += 1;
        Some(b)
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, b: u8) -> Result<(), &'static str> {
        if self.eat(b) {
            Ok(())
        } else {
            Err("unexpected byte in the JSON header")
        }
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), &'static str> {
        let end = self.pos + word.len();
        if self.buf.get(self.pos..end) == Some(word) {
            self.pos = end;
            Ok(())
        } else {
            Err("bad literal in the JSON header")
        }
    }

    /// A JSON integer that fits an i32 (Java `int`), and its byte range.
    /// fastjson writes ints plainly; a fraction or exponent is refused.
    fn int(&mut self) -> Result<(i32, Range<usize>), &'static str> {
        let start = self.pos;
        let negative = self.eat(b'-');
        let mut value: i64 = 0;
        let mut digits = 0;
        while let Some(d @ b'0'..=b'9') = self.peek() {
            self.pos += 1;
            digits += 1;
            if digits > 10 {
                return Err("integer too long in the JSON header");
            }
            value = value * 10 + i64::from(d - b'0');
        }
        if digits == 0 {
            return Err("expected an integer in the JSON header");
        }
        let value = if negative { -value } else { value };
        // `opaque` is a Java int but some clients write it unsigned.
        let value = i32::try_from(value)
            .or_else(|_| u32::try_from(value).map(u32::cast_signed))
            .map_err(|_| "integer out of range in the JSON header")?;
        Ok((value, start..self.pos))
    }

    /// A string's unescaped bytes (UTF-8 for valid input), borrowed when
    /// it has no escapes (the common case: no allocation).
    fn string(&mut self) -> Result<Cow<'a, [u8]>, &'static str> {
        self.expect(b'"')?;
        let buf = self.buf;
        let mut owned: Option<Vec<u8>> = None;
        loop {
            // Take the run up to the next quote or backslash in one go.
            let rest = buf.get(self.pos..).unwrap_or_default();
            let Some(run) = rest.iter().position(|&b| b == b'"' || b == b'\\') else {
                return Err("unterminated string in the JSON header");
            };
            let chunk = rest.get(..run).unwrap_or_default();
            self.pos += run;
            match (self.bump(), owned.as_mut()) {
                (Some(b'"'), None) => return Ok(Cow::Borrowed(chunk)),
                (Some(b'"'), Some(out)) => {
                    out.extend_from_slice(chunk);
                    return Ok(Cow::Owned(owned.unwrap_or_default()));
                }
                (Some(_), _) => {
                    let out = owned.get_or_insert_with(Vec::new);
                    out.extend_from_slice(chunk);
                    self.escape(out)?;
                }
                (None, _) => return Err("unterminated string in the JSON header"),
            }
        }
    }

    fn escape(&mut self, out: &mut Vec<u8>) -> Result<(), &'static str> {
        let c = match self.bump() {
            Some(b'"') => '"',
            Some(b'\\') => '\\',
            Some(b'/') => '/',
            Some(b'b') => '\u{8}',
            Some(b'f') => '\u{c}',
            Some(b'n') => '\n',
            Some(b'r') => '\r',
            Some(b't') => '\t',
            Some(b'u') => {
                let hi = self.hex4()?;
                let code = if (0xd800..0xdc00).contains(&hi)
                    && self.buf.get(self.pos..self.pos + 2) == Some(b"\\u")
                {
                    self.pos += 2;
                    let lo = self.hex4()?;
                    if (0xdc00..0xe000).contains(&lo) {
                        0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00)
                    } else {
                        0xfffd
                    }
                } else {
                    hi
                };
                char::from_u32(code).unwrap_or('\u{fffd}')
            }
            _ => return Err("bad escape in the JSON header"),
        };
        let mut utf8 = [0u8; 4];
        out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
        Ok(())
    }

    fn hex4(&mut self) -> Result<u32, &'static str> {
        let mut v = 0;
        for _ in 0..4 {
            let d = match self.bump() {
                Some(b @ b'0'..=b'9') => b - b'0',
                Some(b @ b'a'..=b'f') => b - b'a' + 10,
                Some(b @ b'A'..=b'F') => b - b'A' + 10,
                _ => return Err("bad \\u escape in the JSON header"),
            };
            v = v * 16 + u32::from(d);
        }
        Ok(v)
    }

    fn nullable_string(&mut self) -> Result<Option<Cow<'a, [u8]>>, &'static str> {
        if self.peek() == Some(b'n') {
            self.literal(b"null")?;
            Ok(None)
        } else {
            self.string().map(Some)
        }
    }

    /// `extFields`: null or an object of scalars. Numbers and booleans are
    /// kept as their text (fastjson would turn them into strings too).
    fn ext_fields(
        &mut self,
        mut keep: Option<&mut Vec<(String, String)>>,
    ) -> Result<(), &'static str> {
        if self.peek() == Some(b'n') {
            return self.literal(b"null");
        }
        self.expect(b'{')?;
        self.ws();
        if self.eat(b'}') {
            return Ok(());
        }
        loop {
            self.ws();
            let key = self.string()?;
            self.ws();
            self.expect(b':')?;
            self.ws();
            let value = match self.peek() {
                Some(b'"') => Some(self.string()?),
                Some(b'n') => {
                    self.literal(b"null")?;
                    None
                }
                _ => {
                    let start = self.pos;
                    self.skip_scalar()?;
                    Some(Cow::Borrowed(
                        self.buf.get(start..self.pos).unwrap_or_default(),
                    ))
                }
            };
            if let (Some(keep), Some(value)) = (keep.as_deref_mut(), value) {
                keep.push((lossy(key), lossy(value)));
            }
            self.ws();
            if self.eat(b',') {
                continue;
            }
            return self.expect(b'}');
        }
    }

    fn skip_scalar(&mut self) -> Result<(), &'static str> {
        match self.peek() {
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            Some(b'-' | b'0'..=b'9') => {
                let start = self.pos;
                while matches!(
                    self.peek(),
                    Some(b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                ) {
                    self.pos += 1;
                }
                if self.pos == start {
                    Err("bad number in the JSON header")
                } else {
                    Ok(())
                }
            }
            _ => Err("expected a scalar in the JSON header"),
        }
    }

    fn skip_value(&mut self, depth: usize) -> Result<(), &'static str> {
        if depth > MAX_DEPTH {
            return Err("JSON header nested too deep");
        }
        match self.peek() {
            Some(b'"') => self.string().map(drop),
            Some(open @ (b'{' | b'[')) => {
                self.pos += 1;
                let close = if open == b'{' { b'}' } else { b']' };
                self.ws();
                if self.eat(close) {
                    return Ok(());
                }
                loop {
                    self.ws();
                    if open == b'{' {
                        self.string()?;
                        self.ws();
                        self.expect(b':')?;
                        self.ws();
                    }
                    self.skip_value(depth + 1)?;
                    self.ws();
                    if self.eat(b',') {
                        continue;
                    }
                    return self.expect(close);
                }
            }
            _ => self.skip_scalar(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_java_header() {
        let h = br#"{"code":105,"extFields":{"topic":"TeZ_Test_Lng"},"flag":0,"language":"JAVA","opaque":12,"serializeTypeCurrentRPC":"JSON","version":453}"#;
        let parsed = parse(h).unwrap();
        assert_eq!(parsed.code, 105);
        assert_eq!(parsed.version, 453);
        let (opaque, range) = parsed.opaque.unwrap();
        assert_eq!(opaque, 12);
        assert_eq!(&h[range], b"12");
        assert_eq!(
            ext_fields(h, parsed.ext_fields.unwrap()).unwrap(),
            vec![("topic".into(), "TeZ_Test_Lng".into())]
        );
    }

    #[test]
    fn fastjson_leniencies() {
        let h = b"{ \"Code\" : 310, \"ExtFields\": {\"i\":\"A\x01B\\u0002\", \"n\": 5, \"z\": null, \"t\": true}, \"Opaque\": -1, \"Remark\": null, \"other\": [1, {\"x\": [\"y\"]}, -2.5e3] }";
        let parsed = parse(h).unwrap();
        assert_eq!(parsed.code, 310);
        assert_eq!(parsed.opaque.as_ref().map(|o| o.0), Some(-1));
        assert_eq!(
            ext_fields(h, parsed.ext_fields.unwrap()).unwrap(),
            vec![
                ("i".into(), "A\u{1}B\u{2}".into()),
                ("n".into(), "5".into()),
                ("t".into(), "true".into())
            ]
        );
        // Unsigned opaque is taken as its i32 bit pattern.
        assert_eq!(
            parse(br#"{"opaque":4294967295}"#)
                .unwrap()
                .opaque
                .map(|o| o.0),
            Some(-1)
        );
    }

    #[test]
    fn refuses_garbage_without_panicking() {
        for bad in [
            &b""[..],
            b"{",
            b"[]",
            b"{\"code\":}",
            b"{\"code\":1.5}",
            b"{\"code\":99999999999}",
            b"{\"opaque\":1,\"opaque\":2}",
            b"{\"code\":1} x",
            b"{\"a\":\"unterminated}",
            b"{\"a\":\"\\x\"}",
            b"{\"a\":\"\\u12\"}",
            b"{code:1}",
            b"{\"extFields\":[1]}",
        ] {
            assert!(parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        let deep = format!("{{\"x\":{}{}}}", "[".repeat(100), "]".repeat(100));
        assert!(parse(deep.as_bytes()).is_err());
    }

    proptest::proptest! {
        #[test]
        fn never_panics(b in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..96)) {
            if let Ok(h) = parse(&b)
                && let Some(range) = h.ext_fields
            {
                proptest::prop_assert!(ext_fields(&b, range).is_ok());
            }
        }
    }
}
