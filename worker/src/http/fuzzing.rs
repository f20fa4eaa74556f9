//! The fuzz harness of the HTTP/1 parsers, shared by the `fuzz/` targets
//! (`fuzz_http_head`, `fuzz_http_chunked`), their stable smoke runner and
//! the worker's own tests. Hidden from docs: not an API.
//!
//! Byte 0 of an input is a control byte (limits, request or response,
//! how the input is split); the rest is the message. Each function checks
//! the parser's contract on what it parses and panics on a violation —
//! that is how a fuzzer sees it.
// A harness reports a broken contract by panicking, with what it saw.
#![allow(clippy::panic, clippy::expect_used)]

use bytes::BytesMut;

use crate::codec::http1::{
    self, Chunked, H1Error, Limits, MAX_CHUNK_LINE, MAX_TRAILER_BYTES, Rechunk,
};

/// The head limits the control byte's low two bits select: the defaults,
/// and small ones so that the "too large" paths are reached.
const LIMITS: [Limits; 4] = [
    Limits {
        max_header_bytes: 8192,
        max_headers: 100,
    },
    Limits {
        max_header_bytes: 64,
        max_headers: 2,
    },
    Limits {
        max_header_bytes: 300,
        max_headers: 8,
    },
    Limits {
        max_header_bytes: 16 * 1024,
        max_headers: 32,
    },
];

/// Split points for feeding an input in pieces, from a seed.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

/// One request or response head (control bit 2: response; bit 3: to a
/// HEAD request). Checks: nothing is consumed unless a head parses, and
/// then at most the limit; the field count is within the limit; fed in
/// pieces it parses the same; re-serialised for the next hop it parses
/// again to the same message, and re-serialising that gives the same
/// bytes. Returns whether a head parsed.
pub fn head(data: &[u8]) -> bool {
    let Some((&control, input)) = data.split_first() else {
        return false;
    };
    let limits = LIMITS[usize::from(control & 3)];
    if control & 4 != 0 {
        let method = if control & 8 != 0 { "HEAD" } else { "GET" };
        return response_head(control, input, method, limits.max_header_bytes);
    }
    let mut buf = BytesMut::from(input);
    let whole = http1::parse_request(&mut buf, limits);
    let consumed = input.len() - buf.len();
    let same_in_pieces = in_pieces(control, input, |buf| http1::parse_request(buf, limits));
    match &whole {
        Ok(Some(head)) => {
            assert!(
                consumed > 0 && consumed <= limits.max_header_bytes,
                "consumed {consumed}"
            );
            assert!(head.headers.len() <= limits.max_headers, "too many fields");
            assert_eq!(
                same_in_pieces,
                Some((whole.clone(), consumed)),
                "parsing in pieces differs"
            );
            request_round_trip(head);
        }
        Ok(None) => {
            assert_eq!(consumed, 0, "Ok(None) consumed bytes");
            assert!(
                input.len() <= limits.max_header_bytes,
                "a partial head over the limit is not an error"
            );
        }
        Err(_) => {
            assert_eq!(consumed, 0, "an error consumed bytes");
            assert!(
                !matches!(same_in_pieces, Some((Ok(Some(_)), _))),
                "in pieces a head parsed that does not as a whole"
            );
        }
    }
    matches!(whole, Ok(Some(_)))
}

/// Feeds `input` to `parse` in pieces (sizes from `control`) until it
/// gives a head or an error: that result and the bytes consumed, or
/// `None` if the input ran out first.
fn in_pieces<T>(
    control: u8,
    input: &[u8],
    mut parse: impl FnMut(&mut BytesMut) -> Result<Option<T>, H1Error>,
) -> Option<(Result<Option<T>, H1Error>, usize)> {
    let mut chunks = Lcg(u64::from(control) | 1);
    let mut buf = BytesMut::new();
    let mut fed = 0;
    while fed < input.len() {
        let step = 1 + (chunks.next() % 61) as usize;
        let end = input.len().min(fed + step);
        buf.extend_from_slice(&input[fed..end]);
        fed = end;
        let before = buf.len();
        match parse(&mut buf) {
            Ok(None) => assert_eq!(buf.len(), before, "Ok(None) consumed bytes"),
            done => {
                let consumed = fed - buf.len();
                return Some((done, consumed));
            }
        }
    }
    None
}

/// The head written for the upstream parses back to the same request,
/// and writing that again gives the same bytes.
fn request_round_trip(head: &http1::Head) {
    let mut out = BytesMut::new();
    write_request(head, &mut out);
    let written = out.clone();
    let generous = Limits {
        max_header_bytes: out.len() + 1,
        max_headers: head.headers.len() + 8,
    };
    let again = match http1::parse_request(&mut out, generous) {
        Ok(Some(again)) => again,
        other => panic!(
            "the head written upstream does not parse: {other:?}\n{:?}",
            String::from_utf8_lossy(&written)
        ),
    };
    assert!(out.is_empty(), "the written head parsed short");
    assert_eq!(again.method, head.method, "method");
    assert_eq!(again.target, head.origin_form(), "target");
    assert_eq!(again.framing, head.framing, "framing");
    assert_eq!(
        again.host().unwrap_or_default(),
        head.host().unwrap_or_default(),
        "host"
    );
    assert_eq!(again.is_upgrade(), head.is_upgrade(), "upgrade");
    let mut twice = BytesMut::new();
    write_request(&again, &mut twice);
    assert_eq!(
        String::from_utf8_lossy(&twice),
        String::from_utf8_lossy(&written),
        "writing the head is not stable"
    );
}

/// The head an HTTP/1.1 upstream gets for `head`, through the exchange's
/// own request transform.
fn write_request(head: &http1::Head, out: &mut BytesMut) {
    let outgoing = crate::http::transform::Outgoing::new(head, None, "http");
    http1::write_request(head, &outgoing.hop(), out);
}

fn response_head(control: u8, input: &[u8], method: &str, max: usize) -> bool {
    let mut buf = BytesMut::from(input);
    let whole = http1::parse_response(&mut buf, method, max);
    let consumed = input.len() - buf.len();
    let same_in_pieces = in_pieces(control, input, |buf| {
        http1::parse_response(buf, method, max)
    });
    let Ok(Some(head)) = &whole else {
        assert_eq!(
            consumed, 0,
            "a response head that did not parse consumed bytes"
        );
        if whole == Ok(None) {
            assert!(
                input.len() <= max,
                "a partial head over the limit is not an error"
            );
        }
        return false;
    };
    assert!(consumed > 0 && consumed <= max, "consumed {consumed}");
    assert_eq!(
        same_in_pieces,
        Some((whole.clone(), consumed)),
        "parsing in pieces differs"
    );
    let keep_alive = control & 16 != 0;
    let mut out = BytesMut::new();
    http1::write_response(head, keep_alive, &mut out);
    let written = out.clone();
    let again = match http1::parse_response(&mut out, method, written.len() + 1) {
        Ok(Some(again)) => again,
        other => panic!(
            "the response head written to the client does not parse: {other:?}\n{:?}",
            String::from_utf8_lossy(&written)
        ),
    };
    assert!(out.is_empty(), "the written head parsed short");
    assert_eq!(again.status, head.status, "status");
    assert_eq!(again.framing, head.framing, "framing");
    let mut twice = BytesMut::new();
    http1::write_response(&again, keep_alive, &mut twice);
    assert_eq!(
        String::from_utf8_lossy(&twice),
        String::from_utf8_lossy(&written),
        "writing the head is not stable"
    );
    true
}

/// A chunked body (after the control byte). Checks: decoding it whole,
/// byte by byte (so split at every chunk boundary, and everywhere else)
/// and in random pieces gives the same result, data and length; an
/// independent reference decoder agrees; what is consumed is within the
/// input; re-chunking keeps the data and trailers, and re-chunking the
/// re-chunked body gives what re-chunking the original does. Returns
/// whether the body was complete.
pub fn chunked(data: &[u8]) -> bool {
    let Some((&control, body)) = data.split_first() else {
        return false;
    };
    let mut whole_data = BytesMut::new();
    let whole = Chunked::default().decode(body, &mut whole_data);
    if let Ok((used, done)) = whole {
        assert!(used <= body.len(), "consumed more than the input");
        assert!(done || used == body.len(), "stopped early without an end");
    }

    // Byte by byte, then in random pieces.
    let mut splits: Vec<Vec<usize>> = vec![(1..body.len()).collect()];
    let mut lcg = Lcg(u64::from(control) | 1);
    let mut random = Vec::new();
    let mut at = 0;
    while at < body.len() {
        at += 1 + (lcg.next() % 97) as usize;
        random.push(at.min(body.len()));
    }
    splits.push(random);
    for cuts in splits {
        let got = decode_at(body, &cuts);
        match (&whole, &got) {
            (Ok((used, done)), Ok((u, d, data))) => {
                assert_eq!((used, done), (u, d), "decoded in pieces, the end differs");
                assert_eq!(
                    &whole_data[..],
                    &data[..],
                    "decoded in pieces, the data differs"
                );
            }
            (Err(_), Err(_)) => {}
            _ => panic!("whole: {whole:?}, in pieces: {got:?}"),
        }
    }

    // The reference decoder.
    match (reference(body), &whole) {
        (Reference::Complete { data, used }, Ok((u, true))) => {
            assert_eq!(used, *u, "the reference ends elsewhere");
            assert_eq!(data, &whole_data[..], "the reference decodes other data");
        }
        (Reference::Complete { .. }, other) => {
            panic!("the reference decodes a complete body, Chunked says {other:?}")
        }
        (Reference::Invalid(why), Ok(_)) => {
            panic!("the reference refuses ({why}), Chunked does not")
        }
        (Reference::Invalid(_), Err(_)) => {}
        // Chunked may see an error the reference needs a whole line for.
        (Reference::Incomplete, Ok((_, false)) | Err(_)) => {}
        (Reference::Incomplete, other) => {
            panic!("the reference needs more, Chunked says {other:?}")
        }
    }

    // Re-chunking.
    let Ok((used, true)) = whole else {
        return false;
    };
    let mut rechunked = BytesMut::new();
    let mut input = BytesMut::from(&body[..used]);
    let mut rechunk = Rechunk::default();
    let mut done = false;
    let mut lcg = Lcg(u64::from(control) ^ 0x5a);
    while !input.is_empty() {
        let n = (1 + (lcg.next() % 97) as usize).min(input.len());
        let mut piece = input.split_to(n);
        done = rechunk
            .take(&mut piece, &mut rechunked)
            .expect("rechunk a valid body");
        assert!(
            piece.is_empty() || done,
            "rechunk left bytes before the end"
        );
    }
    assert!(done, "rechunk did not see the end");
    let mut again = BytesMut::new();
    let (u, d) = Chunked::default()
        .decode(&rechunked, &mut again)
        .expect("the re-chunked body decodes");
    assert_eq!(
        (u, d),
        (rechunked.len(), true),
        "the re-chunked body ends at its end"
    );
    assert_eq!(&again[..], &whole_data[..], "re-chunking changed the data");
    let once = |bytes: &[u8]| {
        let mut out = BytesMut::new();
        let mut input = BytesMut::from(bytes);
        let done = Rechunk::default()
            .take(&mut input, &mut out)
            .expect("rechunk");
        assert!(done && input.is_empty());
        out
    };
    assert_eq!(
        once(&rechunked),
        once(&body[..used]),
        "re-chunking is not stable"
    );
    true
}

/// Decodes `body` fed in pieces cut at `cuts`: the bytes used, whether it
/// ended, the data.
fn decode_at(body: &[u8], cuts: &[usize]) -> Result<(usize, bool, BytesMut), H1Error> {
    let mut decoder = Chunked::default();
    let mut data = BytesMut::new();
    let mut used = 0;
    let mut from = 0;
    for &to in cuts.iter().chain(std::iter::once(&body.len())) {
        if to <= from {
            continue;
        }
        let (u, done) = decoder.decode(&body[from..to], &mut data)?;
        used += u;
        if done {
            return Ok((used, true, data));
        }
        assert_eq!(u, to - from, "a piece was not all used before the end");
        from = to;
    }
    Ok((used, false, data))
}

enum Reference {
    Complete { data: Vec<u8>, used: usize },
    Invalid(&'static str),
    Incomplete,
}

/// A chunked decoder written from RFC 9112 §7.1 and the bounds of
/// [`Chunked`], line by line, sharing nothing with it.
fn reference(body: &[u8]) -> Reference {
    let ctl = |b: u8| (b < 0x20 && b != b'\t') || b == 0x7f;
    let mut data = Vec::new();
    let mut at = 0;
    loop {
        // The size line, up to CR LF: hex digits, then `;` extensions.
        let rest = &body[at..];
        let cr = rest.iter().position(|b| *b == b'\r' || *b == b'\n');
        let line_end = match cr {
            // The line so far is already over (the CR would come on top).
            None if rest.len() > MAX_CHUNK_LINE => {
                return Reference::Invalid("size line too long");
            }
            None => return Reference::Incomplete,
            Some(i) => i,
        };
        if line_end + 1 > MAX_CHUNK_LINE {
            return Reference::Invalid("size line too long");
        }
        if rest[line_end] == b'\n' {
            return Reference::Invalid("bare LF");
        }
        let line = &rest[..line_end];
        let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
        if digits == 0 || digits > 15 {
            return Reference::Invalid("size digits");
        }
        match line.get(digits) {
            None => {}
            Some(b';') if !line[digits..].iter().any(|b| ctl(*b)) => {}
            Some(_) => return Reference::Invalid("after the size"),
        }
        match rest.get(line_end + 1) {
            None => return Reference::Incomplete,
            Some(b'\n') => {}
            Some(_) => return Reference::Invalid("CR without LF"),
        }
        let size = line[..digits].iter().fold(0u64, |v, b| {
            v * 16 + u64::from((*b as char).to_digit(16).unwrap_or(0))
        });
        at += line_end + 2;
        if size == 0 {
            break;
        }
        let Ok(size) = usize::try_from(size) else {
            return Reference::Incomplete;
        };
        if body.len() - at < size {
            return Reference::Incomplete;
        }
        data.extend_from_slice(&body[at..at + size]);
        at += size;
        match body.get(at..at + 2) {
            Some(b"\r\n") => at += 2,
            Some(_) => return Reference::Invalid("no CRLF after data"),
            None if body.get(at).is_some_and(|b| *b != b'\r') => {
                return Reference::Invalid("no CRLF after data");
            }
            None => return Reference::Incomplete,
        }
    }
    // Trailer lines, then the empty line; the section is counted up to
    // and with the final CR.
    let start = at;
    loop {
        let rest = &body[at..];
        let Some(end) = rest.iter().position(|b| *b == b'\r' || *b == b'\n') else {
            return if at - start + rest.len() > MAX_TRAILER_BYTES {
                Reference::Invalid("trailers too large")
            } else {
                Reference::Incomplete
            };
        };
        if at - start + end + 1 > MAX_TRAILER_BYTES {
            return Reference::Invalid("trailers too large");
        }
        if rest[end] == b'\n' {
            return Reference::Invalid("bare LF in trailers");
        }
        let line = &rest[..end];
        if matches!(line.first(), Some(b' ' | b'\t')) || line.iter().any(|b| ctl(*b)) {
            return Reference::Invalid("trailer line");
        }
        match rest.get(end + 1) {
            None => return Reference::Incomplete,
            Some(b'\n') => {}
            Some(_) => return Reference::Invalid("CR without LF in trailers"),
        }
        at += end + 2;
        if line.is_empty() {
            return Reference::Complete { data, used: at };
        }
    }
}

/// Seeds for both targets, beyond the smuggling corpus: well-formed and
/// edge-case messages (with their control byte).
pub const SEEDS: &[(&str, &[u8])] = &[
    ("get", b"\x00GET /a?b HTTP/1.1\r\nHost: x\r\n\r\n"),
    (
        "post-length",
        b"\x00POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
    ),
    (
        "absolute-upgrade",
        b"\x02GET http://x:81/ws HTTP/1.1\r\nHost: y\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n",
    ),
    (
        "response-chunked",
        b"\x04HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nConnection: x-a\r\nX-A: 1\r\n\r\n",
    ),
    (
        "response-head-request",
        b"\x0cHTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n",
    ),
    ("chunked-body", b"\x00a;x=\"y\"\r\n0123456789\r\n3\r\nabc\r\n0\r\nT: 1\r\n\r\n"),
    // Found by the smoke runner: a trailer line starting with a control
    // byte was taken.
    (
        "chunked-body-trailer-control-byte",
        b"\x005\r\njello\r\n0\r\n\x11\xebontent-Length: 44\r\n\r\n",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seeds_and_their_mutations_keep_the_contract() {
        let mut lcg = Lcg(7);
        for (_, seed) in SEEDS {
            head(seed);
            chunked(seed);
            for _ in 0..300 {
                let mut input = seed.to_vec();
                for _ in 0..=lcg.next() % 3 {
                    let at = (lcg.next() as usize) % input.len();
                    match lcg.next() % 4 {
                        0 => input[at] = lcg.next() as u8,
                        1 => input.insert(at, b"\r\n:; ,0\t"[(lcg.next() % 8) as usize]),
                        2 if input.len() > 1 => {
                            input.remove(at);
                        }
                        _ => input.truncate(at.max(1)),
                    }
                }
                head(&input);
                chunked(&input);
            }
        }
    }

    #[test]
    fn a_valid_body_is_complete_and_a_head_parses() {
        assert!(chunked(b"\x005\r\nhello\r\n0\r\n\r\n"));
        assert!(head(b"\x00GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert!(head(b"\x04HTTP/1.1 204 No Content\r\n\r\n"));
    }
}
