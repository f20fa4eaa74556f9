//! HTTP/1.1 responses, decoded sans-I/O: bytes in, "a whole response
//! ended here" out — no sockets, no clocks, no allocation.
//!
//! # What is read
//!
//! A response is a head — status line, header lines, an empty line, every
//! line ending in CRLF — and a body framed as RFC 9112 §6.3 says, in this
//! order of precedence:
//!
//! 1. no body for a 1xx, 204 or 304 status (the request is always GET, so
//!    the HEAD rule never applies);
//! 2. `Transfer-Encoding` whose last coding is `chunked`: chunks, then
//!    trailers up to an empty line (chunk extensions and trailers are
//!    skipped); any other transfer coding runs to the end of the
//!    connection;
//! 3. `Content-Length`: that many bytes (repeated fields must agree);
//! 4. otherwise the body runs to the end of the connection.
//!
//! Both `Transfer-Encoding` and `Content-Length` is an error (RFC 9112
//! says a client "ought to" treat it as one: it is how responses get
//! split), as is anything not HTTP/1.0 or 1.1, a folded header line, a
//! bare LF, a `101 Switching Protocols` (nothing asked for an upgrade),
//! and a head or chunk line beyond its bound ([`MAX_HEAD`],
//! [`MAX_CHUNK_LINE`], [`MAX_TRAILERS`]). Interim 1xx responses are
//! skipped: the response that counts is the final one.
//!
//! The connection stays open after a response unless it carries
//! `Connection: close`, is HTTP/1.0 without `Connection: keep-alive`, or
//! has a body that runs to the end of the connection.
//!
//! Bodies are skipped, never stored: the decoder counts them off the
//! buffer, so a large body costs reads but no memory.

/// Longest response head accepted (status line and headers, with the
/// final empty line). nginx's own default for request heads is 1 KiB;
/// 16 KiB is far beyond anything a `return 200` or a proxy in front of it
/// sends, and small enough that a runaway stream is cut off early.
pub const MAX_HEAD: usize = 16 * 1024;

/// Longest chunk-size line (hex size and extensions, with its CRLF).
pub const MAX_CHUNK_LINE: usize = 4 * 1024;

/// Most bytes of trailer section (all its lines, with the final empty one).
pub const MAX_TRAILERS: usize = 16 * 1024;

/// A complete final response: what the load generator needs of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// The server closes the connection after this response.
    pub close: bool,
}

/// Why a byte stream is not a valid response. Cheap to make: the load
/// generator counts these on its hot path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    #[error("response head longer than {MAX_HEAD} bytes")]
    HeadTooLong,
    #[error("malformed status line")]
    StatusLine,
    #[error("malformed header line")]
    HeaderLine,
    #[error("malformed Content-Length")]
    ContentLength,
    #[error("both Transfer-Encoding and Content-Length")]
    LengthAndEncoding,
    #[error("unexpected 101 Switching Protocols")]
    Upgrade,
    #[error("malformed chunk-size line")]
    ChunkSize,
    #[error("chunk data not followed by CRLF")]
    ChunkEnd,
    #[error("trailer section longer than {MAX_TRAILERS} bytes")]
    TrailersTooLong,
    #[error("connection closed in the middle of a response")]
    Truncated,
}

/// What one call to [`Decoder::decode`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Bytes at the front of the buffer that are done with: the caller
    /// drops them before it appends more and calls again.
    pub used: usize,
    /// The response that ended at `used`, if one did.
    pub response: Option<Response>,
}

/// Where the decoder is within a response.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum State {
    /// Waiting for a whole head; nothing of it is used before it is whole.
    #[default]
    Head,
    /// `remaining` bytes still to come of a `Content-Length` body, or of
    /// the current chunk if `chunk`.
    Data { remaining: u64, chunk: bool },
    /// Waiting for a whole chunk-size line.
    ChunkSize,
    /// The CRLF after a chunk's data.
    ChunkEnd,
    /// Trailer lines after the last chunk; `seen` bytes of them so far.
    Trailers { seen: usize },
    /// Everything up to the end of the connection is body.
    UntilClose,
}

/// How a response's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Empty,
    Length(u64),
    Chunked,
    UntilClose,
}

/// A parsed head: the response so far and how its body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Head {
    response: Response,
    framing: Framing,
}

/// Decodes one response after another from a connection's bytes.
#[derive(Debug, Clone, Default)]
pub struct Decoder {
    state: State,
    /// The head of the response whose body is being read.
    current: Option<Response>,
}

impl Decoder {
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// Nothing of a response has been used yet (a head may be partly in
    /// the caller's buffer).
    pub fn is_between_responses(&self) -> bool {
        self.state == State::Head
    }

    /// Reads from `buf` (the bytes not yet used) as far as it can: to the
    /// end of the next response, or of the buffer.
    pub fn decode(&mut self, buf: &[u8]) -> Result<Progress, ParseError> {
        let mut at = 0;
        loop {
            let rest = &buf[at..];
            match self.state {
                State::Head => {
                    let Some(len) = head_len(rest)? else {
                        return Ok(partial(at));
                    };
                    let head = parse_head(&rest[..len])?;
                    at += len;
                    if head.response.status / 100 == 1 {
                        if head.response.status == 101 {
                            return Err(ParseError::Upgrade);
                        }
                        // Interim: its final response follows.
                        continue;
                    }
                    self.current = Some(head.response);
                    self.state = match head.framing {
                        Framing::Empty | Framing::Length(0) => return Ok(self.complete(at)),
                        Framing::Length(n) => State::Data {
                            remaining: n,
                            chunk: false,
                        },
                        Framing::Chunked => State::ChunkSize,
                        Framing::UntilClose => State::UntilClose,
                    };
                }
                State::ChunkSize => {
                    let Some(line) = line_len(rest, MAX_CHUNK_LINE, ParseError::ChunkSize)? else {
                        return Ok(partial(at));
                    };
                    let size = chunk_size(&rest[..line - 2])?;
                    at += line;
                    self.state = if size == 0 {
                        State::Trailers { seen: 0 }
                    } else {
                        State::Data {
                            remaining: size,
                            chunk: true,
                        }
                    };
                }
                State::Data { remaining, chunk } => {
                    let (took, left) = take(remaining, rest.len());
                    at += took;
                    if left > 0 {
                        self.state = State::Data {
                            remaining: left,
                            chunk,
                        };
                        return Ok(partial(at));
                    }
                    if !chunk {
                        return Ok(self.complete(at));
                    }
                    self.state = State::ChunkEnd;
                }
                State::ChunkEnd => {
                    match rest {
                        [b'\r', b'\n', ..] => {}
                        [] | [b'\r'] => return Ok(partial(at)),
                        _ => return Err(ParseError::ChunkEnd),
                    }
                    at += 2;
                    self.state = State::ChunkSize;
                }
                State::Trailers { seen } => {
                    let room = MAX_TRAILERS - seen;
                    let Some(line) = line_len(rest, room, ParseError::TrailersTooLong)? else {
                        return Ok(partial(at));
                    };
                    at += line;
                    if line == 2 {
                        return Ok(self.complete(at));
                    }
                    self.state = State::Trailers { seen: seen + line };
                }
                State::UntilClose => return Ok(partial(buf.len())),
            }
        }
    }

    /// The connection has ended; `rest` is what the caller holds of it
    /// that is not used yet. A body that runs to the end of the connection
    /// is complete now; nothing at all (between responses) is no response;
    /// anything else was cut off.
    pub fn finish(&mut self, rest: &[u8]) -> Result<Option<Response>, ParseError> {
        match self.state {
            State::UntilClose => {
                self.state = State::Head;
                Ok(self.current.take())
            }
            State::Head if rest.is_empty() => Ok(None),
            _ => Err(ParseError::Truncated),
        }
    }

    /// The current response ended at `at`.
    fn complete(&mut self, at: usize) -> Progress {
        self.state = State::Head;
        Progress {
            used: at,
            response: self.current.take(),
        }
    }
}

fn partial(used: usize) -> Progress {
    Progress {
        used,
        response: None,
    }
}

/// Of `remaining` body bytes, how many `available` covers, and how many
/// are left.
fn take(remaining: u64, available: usize) -> (usize, u64) {
    let took = usize::try_from(remaining).map_or(available, |r| r.min(available));
    (took, remaining - took as u64)
}

/// The length of the head at the front of `buf` (through its empty line),
/// if it is all there.
fn head_len(buf: &[u8]) -> Result<Option<usize>, ParseError> {
    // Scan for LFs only: the end is the first "\r\n\r\n"; a bare LF is
    // caught by the line checks of `parse_head`.
    let limit = buf.len().min(MAX_HEAD);
    let mut from = 3;
    while from < limit {
        match buf[from..limit].iter().position(|&b| b == b'\n') {
            Some(i) => {
                let end = from + i;
                if &buf[end - 3..=end] == b"\r\n\r\n" {
                    return Ok(Some(end + 1));
                }
                from = end + 1;
            }
            None => break,
        }
    }
    if buf.len() >= MAX_HEAD {
        Err(ParseError::HeadTooLong)
    } else {
        Ok(None)
    }
}

/// The length of the CRLF-terminated line at the front of `buf` (with its
/// CRLF), if it is all there and within `max`.
fn line_len(buf: &[u8], max: usize, too_long: ParseError) -> Result<Option<usize>, ParseError> {
    let limit = buf.len().min(max);
    match buf[..limit].iter().position(|&b| b == b'\n') {
        Some(0) => Err(too_long),
        Some(i) if buf[i - 1] == b'\r' => Ok(Some(i + 1)),
        // A bare LF: the same failure as an overlong line (the stream is
        // not what it should be).
        Some(_) => Err(too_long),
        None if buf.len() >= max => Err(too_long),
        None => Ok(None),
    }
}

/// A chunk-size line without its CRLF: hex digits, then optionally
/// whitespace and `;extensions`.
fn chunk_size(line: &[u8]) -> Result<u64, ParseError> {
    let digits = line
        .iter()
        .position(|b| !b.is_ascii_hexdigit())
        .unwrap_or(line.len());
    match line[digits..].iter().find(|&&b| b != b' ' && b != b'\t') {
        None | Some(b';') => {}
        Some(_) => return Err(ParseError::ChunkSize),
    }
    // 15 hex digits cannot overflow u64 and are far beyond any real chunk.
    if digits == 0 || digits > 15 {
        return Err(ParseError::ChunkSize);
    }
    Ok(line[..digits].iter().fold(0, |n, &b| n * 16 + hex(b)))
}

fn hex(b: u8) -> u64 {
    u64::from(match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        _ => b - b'A' + 10,
    })
}

/// A whole head, through its empty line.
fn parse_head(head: &[u8]) -> Result<Head, ParseError> {
    // Without the final "\n\r\n": the status line and header lines, each
    // ending in "\r", separated by "\n" (`head_len` saw the 4-byte end).
    let mut lines = head[..head.len() - 3].split(|&b| b == b'\n');
    let status_line = lines.next().ok_or(ParseError::StatusLine)?;
    let (http_1_1, status) = status_line_fields(status_line)?;

    let mut content_length: Option<u64> = None;
    let mut transfer_encoding = false;
    let mut chunked = false;
    let mut close = false;
    let mut keep_alive = false;
    for raw in lines {
        let line = raw.strip_suffix(b"\r").ok_or(ParseError::HeaderLine)?;
        let (name, value) = header_fields(line)?;
        if name.eq_ignore_ascii_case(b"content-length") {
            let n = content_length_value(value)?;
            if content_length.is_some_and(|m| m != n) {
                return Err(ParseError::ContentLength);
            }
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            transfer_encoding = true;
            // Only the last coding of the last field decides.
            if let Some(last) = tokens(value).last() {
                chunked = last.eq_ignore_ascii_case(b"chunked");
            }
        } else if name.eq_ignore_ascii_case(b"connection") {
            for token in tokens(value) {
                close |= token.eq_ignore_ascii_case(b"close");
                keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        }
    }

    let framing = if status / 100 == 1 || status == 204 || status == 304 {
        Framing::Empty
    } else if transfer_encoding {
        if content_length.is_some() {
            return Err(ParseError::LengthAndEncoding);
        }
        if chunked {
            Framing::Chunked
        } else {
            Framing::UntilClose
        }
    } else {
        match content_length {
            Some(n) => Framing::Length(n),
            None => Framing::UntilClose,
        }
    };
    let close = close || (!http_1_1 && !keep_alive) || framing == Framing::UntilClose;
    Ok(Head {
        response: Response { status, close },
        framing,
    })
}

/// `HTTP/1.1 200 OK` (with its CR) → (is 1.1, 200).
fn status_line_fields(line: &[u8]) -> Result<(bool, u16), ParseError> {
    let line = line.strip_suffix(b"\r").ok_or(ParseError::StatusLine)?;
    let http_1_1 = match line.get(..9) {
        Some(b"HTTP/1.1 ") => true,
        Some(b"HTTP/1.0 ") => false,
        _ => return Err(ParseError::StatusLine),
    };
    let code = match line.get(9..12) {
        Some(&[a, b, c]) if [a, b, c].iter().all(u8::is_ascii_digit) => {
            u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0')
        }
        _ => return Err(ParseError::StatusLine),
    };
    // The reason phrase may be empty, but the code must end there.
    match line.get(12) {
        None | Some(b' ') if code >= 100 => {}
        _ => return Err(ParseError::StatusLine),
    }
    if line.contains(&b'\r') {
        return Err(ParseError::StatusLine);
    }
    Ok((http_1_1, code))
}

/// `Name: value` → (name, value without surrounding whitespace).
fn header_fields(line: &[u8]) -> Result<(&[u8], &[u8]), ParseError> {
    let colon = line
        .iter()
        .position(|&b| b == b':')
        .ok_or(ParseError::HeaderLine)?;
    let (name, value) = (&line[..colon], &line[colon + 1..]);
    // An empty name, whitespace before the colon, or a leading space (an
    // obsolete folded continuation line) are all refused.
    if name.is_empty() || !name.iter().all(|&b| b.is_ascii_graphic()) {
        return Err(ParseError::HeaderLine);
    }
    if value.iter().any(|&b| b == b'\r' || b == 0) {
        return Err(ParseError::HeaderLine);
    }
    Ok((name, value.trim_ascii()))
}

fn content_length_value(value: &[u8]) -> Result<u64, ParseError> {
    // 18 digits cannot overflow u64.
    if value.is_empty() || value.len() > 18 || !value.iter().all(u8::is_ascii_digit) {
        return Err(ParseError::ContentLength);
    }
    Ok(value.iter().fold(0, |n, &b| n * 10 + u64::from(b - b'0')))
}

/// The comma-separated tokens of a field value, trimmed, empty ones left
/// out.
fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELLO: &[u8] = b"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Type: text/plain\r\n\
                            Content-Length: 6\r\nConnection: keep-alive\r\n\r\nhello\n";

    /// Feeds `stream` in pieces of `step` bytes, as a socket might deliver
    /// it, keeping unused bytes as the connection does; returns every
    /// response and the bytes left over.
    fn feed(stream: &[u8], step: usize) -> Result<(Vec<Response>, Vec<u8>), ParseError> {
        let mut decoder = Decoder::new();
        let mut buf = Vec::new();
        let mut out = Vec::new();
        for piece in stream.chunks(step) {
            buf.extend_from_slice(piece);
            loop {
                let p = decoder.decode(&buf)?;
                buf.drain(..p.used);
                match p.response {
                    Some(r) => out.push(r),
                    None => break,
                }
            }
        }
        Ok((out, buf))
    }

    fn ok(status: u16) -> Response {
        Response {
            status,
            close: false,
        }
    }

    #[test]
    fn content_length_whole_and_split_at_every_byte() {
        let two = [HELLO, HELLO].concat();
        for step in 1..=two.len() {
            let (responses, rest) = feed(&two, step).unwrap();
            assert_eq!(responses, vec![ok(200), ok(200)], "step {step}");
            assert!(rest.is_empty());
        }
    }

    #[test]
    fn a_response_ends_exactly_where_its_body_does() {
        let mut d = Decoder::new();
        let mut stream = HELLO.to_vec();
        stream.extend_from_slice(b"HTTP/1.1");
        let p = d.decode(&stream).unwrap();
        assert_eq!(p.used, HELLO.len());
        assert_eq!(p.response, Some(ok(200)));
        assert!(d.is_between_responses());
    }

    #[test]
    fn chunked_with_extensions_and_trailers_split_at_every_byte() {
        let stream: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                              6\r\nhello\n\r\n\
                              A;name=value\r\n0123456789\r\n\
                              0\r\nX-Trailer: yes\r\n\r\n\
                              HTTP/1.1 404 Not Found\r\ntransfer-encoding: gzip, Chunked\r\n\r\n\
                              0\r\n\r\n";
        for step in 1..=stream.len() {
            let (responses, rest) = feed(stream, step).unwrap();
            assert_eq!(responses, vec![ok(200), ok(404)], "step {step}");
            assert!(rest.is_empty());
        }
    }

    #[test]
    fn bodies_are_skipped_without_being_held() {
        let mut d = Decoder::new();
        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n";
        let p = d.decode(head).unwrap();
        assert_eq!((p.used, p.response), (head.len(), None));
        let p = d.decode(&[b'x'; 60_000]).unwrap();
        assert_eq!((p.used, p.response), (60_000, None));
        let p = d.decode(&[b'x'; 60_000]).unwrap();
        assert_eq!((p.used, p.response), (40_000, Some(ok(200))));
    }

    #[test]
    fn connection_close_and_http_1_0() {
        let close = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: Close\r\n\r\n";
        let (r, _) = feed(close, 7).unwrap();
        assert_eq!(
            r[0],
            Response {
                status: 200,
                close: true
            }
        );

        let listed = b"HTTP/1.1 200 OK\r\nConnection: upgrade, close\r\nContent-Length: 0\r\n\r\n";
        assert!(feed(listed, 100).unwrap().0[0].close);

        let old = b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n";
        assert!(feed(old, 100).unwrap().0[0].close);

        let old_kept = b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n";
        assert!(!feed(old_kept, 100).unwrap().0[0].close);
    }

    #[test]
    fn a_body_without_length_runs_to_the_end_of_the_connection() {
        let mut d = Decoder::new();
        let stream = b"HTTP/1.1 200 OK\r\nServer: x\r\n\r\nhello\nmore";
        let p = d.decode(stream).unwrap();
        assert_eq!((p.used, p.response), (stream.len(), None));
        assert_eq!(
            d.finish(&[]).unwrap(),
            Some(Response {
                status: 200,
                close: true
            })
        );
        assert!(d.is_between_responses());
    }

    #[test]
    fn no_body_for_204_304_and_interim_responses_are_skipped() {
        let stream = b"HTTP/1.1 100 Continue\r\n\r\n\
                       HTTP/1.1 204 No Content\r\nContent-Length: 99\r\n\r\n\
                       HTTP/1.1 304 Not Modified\r\n\r\n\
                       HTTP/1.1 503 \r\nContent-Length: 1\r\n\r\nx";
        let (r, rest) = feed(stream, 5).unwrap();
        assert_eq!(r, vec![ok(204), ok(304), ok(503)]);
        assert!(rest.is_empty());
    }

    #[test]
    fn end_of_connection_between_and_within_responses() {
        let mut d = Decoder::new();
        assert_eq!(d.finish(&[]), Ok(None));
        assert_eq!(d.finish(b"HTTP/1.1 2"), Err(ParseError::Truncated));
        let p = d.decode(&HELLO[..HELLO.len() - 2]).unwrap();
        assert_eq!(p.response, None);
        assert_eq!(d.finish(&[]), Err(ParseError::Truncated));
    }

    #[test]
    fn malformed_responses_are_errors() {
        let cases: &[(&[u8], ParseError)] = &[
            (b"HTTP/2 200 OK\r\n\r\n", ParseError::StatusLine),
            (b"HTTP/1.1 20 OK\r\n\r\n", ParseError::StatusLine),
            (b"HTTP/1.1 2000 OK\r\n\r\n", ParseError::StatusLine),
            (b"HTTP/1.1 099 OK\r\n\r\n", ParseError::StatusLine),
            (b"SSH-2.0-OpenSSH\r\n\r\n", ParseError::StatusLine),
            (
                b"HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n",
                ParseError::StatusLine,
            ),
            (
                b"HTTP/1.1 200 OK\r\nNo colon\r\n\r\n",
                ParseError::HeaderLine,
            ),
            (
                b"HTTP/1.1 200 OK\r\nName : v\r\n\r\n",
                ParseError::HeaderLine,
            ),
            (
                b"HTTP/1.1 200 OK\r\nA: b\r\n folded\r\n\r\n",
                ParseError::HeaderLine,
            ),
            (
                b"HTTP/1.1 200 OK\r\nA: b\nB: c\r\n\r\n",
                ParseError::HeaderLine,
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
                ParseError::ContentLength,
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 6, 6\r\n\r\n",
                ParseError::ContentLength,
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                ParseError::ContentLength,
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
                ParseError::LengthAndEncoding,
            ),
            (
                b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
                ParseError::Upgrade,
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                ParseError::ChunkSize,
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\r\n",
                ParseError::ChunkSize,
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1000000000000000\r\n",
                ParseError::ChunkSize,
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n",
                ParseError::ChunkEnd,
            ),
        ];
        for (stream, want) in cases {
            for step in [1, 3, stream.len()] {
                assert_eq!(
                    feed(stream, step).map(|_| ()),
                    Err(*want),
                    "{} in steps of {step}",
                    String::from_utf8_lossy(stream)
                );
            }
        }
    }

    #[test]
    fn bounds_cut_off_runaway_streams() {
        let mut endless_head = b"HTTP/1.1 200 OK\r\n".to_vec();
        while endless_head.len() < MAX_HEAD {
            endless_head.extend_from_slice(b"X-Filler: 0123456789\r\n");
        }
        assert_eq!(
            feed(&endless_head, 4096).map(|_| ()),
            Err(ParseError::HeadTooLong)
        );

        let mut endless_chunk_line =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;".to_vec();
        endless_chunk_line.resize(endless_chunk_line.len() + MAX_CHUNK_LINE, b'x');
        assert_eq!(
            feed(&endless_chunk_line, 1000).map(|_| ()),
            Err(ParseError::ChunkSize)
        );

        let mut endless_trailers =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n".to_vec();
        while endless_trailers.len() < 2 * MAX_TRAILERS {
            endless_trailers.extend_from_slice(b"X-Trailer: 0123456789\r\n");
        }
        assert_eq!(
            feed(&endless_trailers, 1000).map(|_| ()),
            Err(ParseError::TrailersTooLong)
        );
    }
}
