//! HTTP/1.1 message framing, sans I/O: request and response heads
//! (httparse, bounded), body framing (RFC 9112 §6), a streaming chunked
//! decoder that finds where a body ends, and rewriting heads for the hop
//! to the other side.
//!
//! Security rules enforced here, each answered with 400 by the caller and
//! the connection closed (the request is never forwarded):
//! * a request line and headers over `max_header_bytes`, or over
//!   `max_headers` fields;
//! * `Transfer-Encoding` together with `Content-Length` (request
//!   smuggling), more than one `Content-Length`, a `Content-Length` that is
//!   not a plain decimal;
//! * a `Transfer-Encoding` other than exactly `chunked`;
//! * header names or values with bytes httparse refuses (CR, LF, NUL...);
//! * a bad chunk size line (non-hex, too long, an overflowing size);
//! * an HTTP/1.1 request without a `Host`, or with more than one
//!   (RFC 9112 §3.2).
//!
//! An absolute-form target (`GET http://host/path`) routes by its
//! authority, which replaces any `Host` the client sent, and goes upstream
//! in origin form (RFC 9112 §3.2.2).

use bytes::BytesMut;

/// Why a message cannot be proxied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum H1Error {
    #[error("request head over {0} bytes")]
    HeadTooLarge(usize),
    #[error("more than {0} header fields")]
    TooManyHeaders(usize),
    #[error("malformed head: {0}")]
    Malformed(&'static str),
    #[error("both Transfer-Encoding and Content-Length")]
    Smuggling,
    #[error("more than one Content-Length")]
    DuplicateLength,
    #[error("invalid Content-Length")]
    BadLength,
    #[error("unsupported Transfer-Encoding")]
    UnsupportedEncoding,
    #[error("invalid chunk: {0}")]
    BadChunk(&'static str),
    #[error("unsupported HTTP version")]
    Version,
    #[error("{0}")]
    Host(&'static str),
}

/// Limits on a request head.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_header_bytes: usize,
    pub max_headers: usize,
}

/// Limits on an upstream's response head, whatever the listener: a
/// response over them is answered 502 (HTTP/1.1 here, HTTP/2 in
/// `h2_limits`).
pub const RESPONSE_LIMITS: Limits = Limits {
    max_header_bytes: 64 * 1024,
    max_headers: 256,
};

/// How a message's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    None,
    Length(u64),
    Chunked,
    /// Until the connection closes (responses only).
    Close,
}

/// A parsed head: owned, so the buffer can move on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// Request: the method; response: empty.
    pub method: String,
    /// Request: the target; response: empty.
    pub target: String,
    /// Response: the status code; request: 0.
    pub status: u16,
    /// Response: the reason phrase.
    pub reason: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor: u8,
    pub headers: Vec<(String, Vec<u8>)>,
    pub framing: Framing,
}

impl Head {
    /// The first value of a header (names are case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Whether a comma-separated header lists `token`.
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(|b| *b == b','))
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    }

    /// The connection persists after this message (RFC 9112 §9.3).
    pub fn keep_alive(&self) -> bool {
        if self.has_token("connection", "close") {
            return false;
        }
        self.minor >= 1 || self.has_token("connection", "keep-alive")
    }

    /// A request asking to switch protocols (WebSocket...).
    pub fn is_upgrade(&self) -> bool {
        self.has_token("connection", "upgrade") && self.header("upgrade").is_some()
    }

    pub fn expects_continue(&self) -> bool {
        self.header("expect")
            .is_some_and(|v| v.eq_ignore_ascii_case(b"100-continue"))
    }

    /// The path without the query.
    pub fn path(&self) -> &str {
        let target = match self.absolute_rest() {
            Some(rest) => rest.find(['/', '?', '#']).map_or("", |i| &rest[i..]),
            None => self.target.as_str(),
        };
        match target.split(['?', '#']).next().unwrap_or(target) {
            "" => "/",
            path => path,
        }
    }

    /// The target without `scheme://` when it is in absolute form.
    fn absolute_rest(&self) -> Option<&str> {
        let t = self.target.as_str();
        let scheme = t.get(..8).filter(|s| s.eq_ignore_ascii_case("https://"));
        let scheme = scheme.or_else(|| t.get(..7).filter(|s| s.eq_ignore_ascii_case("http://")));
        scheme.map(|s| &t[s.len()..])
    }

    /// The authority of an absolute-form target (`host[:port]`).
    pub fn authority(&self) -> Option<&str> {
        let rest = self.absolute_rest()?;
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        Some(&rest[..end])
    }

    /// The target in origin form (`/path?query`), as it goes upstream.
    pub fn origin_form(&self) -> std::borrow::Cow<'_, str> {
        let Some(rest) = self.absolute_rest() else {
            return self.target.as_str().into();
        };
        let tail = rest.find(['/', '?']).map_or("", |i| &rest[i..]);
        match tail.as_bytes().first() {
            Some(b'/') => tail.into(),
            _ => format!("/{tail}").into(),
        }
    }

    /// Host for routing: the authority of an absolute target, else the
    /// Host header; lower-case, without the port.
    pub fn host(&self) -> Option<String> {
        let raw = match self.authority() {
            Some(a) => a.to_string(),
            None => self.header_str("host")?.to_string(),
        };
        let host = if raw.starts_with('[') {
            raw.split(']')
                .next()
                .map(|h| format!("{h}]"))
                .unwrap_or(raw.clone())
        } else {
            raw.rsplit_once(':')
                .map_or(raw.as_str(), |(h, _)| h)
                .to_string()
        };
        Some(host.to_ascii_lowercase())
    }
}

/// Parses a request head at the start of `buf`. `Ok(None)`: incomplete
/// (and within the limits). On success the head's bytes are consumed.
pub fn parse_request(buf: &mut BytesMut, limits: Limits) -> Result<Option<Head>, H1Error> {
    let mut headers = vec![httparse::EMPTY_HEADER; limits.max_headers];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => {
            return if buf.len() > limits.max_header_bytes {
                Err(H1Error::HeadTooLarge(limits.max_header_bytes))
            } else {
                Ok(None)
            };
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Err(H1Error::TooManyHeaders(limits.max_headers));
        }
        Err(httparse::Error::Version) => return Err(H1Error::Version),
        Err(_) => return Err(H1Error::Malformed("request line or header syntax")),
    };
    if len > limits.max_header_bytes {
        return Err(H1Error::HeadTooLarge(limits.max_header_bytes));
    }
    let mut head = Head {
        method: req.method.unwrap_or_default().to_string(),
        target: req.path.unwrap_or_default().to_string(),
        status: 0,
        reason: String::new(),
        minor: req.version.unwrap_or(1),
        headers: req
            .headers
            .iter()
            .map(|h| (h.name.to_string(), h.value.to_vec()))
            .collect(),
        framing: Framing::None,
    };
    let hosts = head
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("host"))
        .count();
    if hosts > 1 {
        return Err(H1Error::Host("more than one Host"));
    }
    if hosts == 0 && head.minor >= 1 {
        return Err(H1Error::Host("HTTP/1.1 request without Host"));
    }
    head.framing = request_framing(&head)?;
    let _ = buf.split_to(len);
    Ok(Some(head))
}

fn content_length(head: &Head) -> Result<Option<u64>, H1Error> {
    let mut values = head
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("content-length"));
    let Some((_, first)) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(H1Error::DuplicateLength);
    }
    let text = std::str::from_utf8(first).map_err(|_| H1Error::BadLength)?;
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) || text.len() > 19 {
        return Err(H1Error::BadLength);
    }
    text.parse().map(Some).map_err(|_| H1Error::BadLength)
}

fn transfer_encoding(head: &Head) -> Result<bool, H1Error> {
    let mut found = false;
    for (_, v) in head
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("transfer-encoding"))
    {
        if found || !v.trim_ascii().eq_ignore_ascii_case(b"chunked") {
            return Err(H1Error::UnsupportedEncoding);
        }
        found = true;
    }
    Ok(found)
}

fn request_framing(head: &Head) -> Result<Framing, H1Error> {
    let chunked = transfer_encoding(head)?;
    let length = content_length(head)?;
    match (chunked, length) {
        (true, Some(_)) => Err(H1Error::Smuggling),
        (true, None) => Ok(Framing::Chunked),
        (false, Some(0) | None) => Ok(Framing::None),
        (false, Some(n)) => Ok(Framing::Length(n)),
    }
}

/// Parses a response head; `request_method` decides bodies of HEAD
/// responses.
pub fn parse_response(
    buf: &mut BytesMut,
    request_method: &str,
    max: usize,
) -> Result<Option<Head>, H1Error> {
    let mut headers = vec![httparse::EMPTY_HEADER; RESPONSE_LIMITS.max_headers];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() > max => return Err(H1Error::HeadTooLarge(max)),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(H1Error::Malformed("response head")),
    };
    let mut head = Head {
        method: String::new(),
        target: String::new(),
        status: resp.code.unwrap_or(0),
        reason: resp.reason.unwrap_or_default().to_string(),
        minor: resp.version.unwrap_or(1),
        headers: resp
            .headers
            .iter()
            .map(|h| (h.name.to_string(), h.value.to_vec()))
            .collect(),
        framing: Framing::None,
    };
    head.framing = if request_method.eq_ignore_ascii_case("HEAD")
        || (100..200).contains(&head.status)
        || head.status == 204
        || head.status == 304
    {
        Framing::None
    } else if transfer_encoding(&head).unwrap_or(false) {
        // A server's own TE wins over a CL it may also send (RFC 9112
        // §6.3 item 3); we forward it chunked.
        Framing::Chunked
    } else {
        match content_length(&head)? {
            Some(n) => Framing::Length(n),
            None => Framing::Close,
        }
    };
    let _ = buf.split_to(len);
    Ok(Some(head))
}

/// Hop-by-hop fields (RFC 9110 §7.6.1), never forwarded as they came.
fn hop_by_hop(head: &Head, name: &str) -> bool {
    const ALWAYS: &[&str] = &[
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "upgrade",
    ];
    ALWAYS.iter().any(|h| name.eq_ignore_ascii_case(h))
        // Fields the Connection header names are hop-by-hop too.
        || head.has_token("connection", name)
}

/// Writes a request head for the upstream hop: hop-by-hop fields dropped,
/// `X-Forwarded-For` and `X-Forwarded-Proto` added, keep-alive (or the
/// upgrade) asked for.
pub fn write_request(
    head: &Head,
    client_ip: Option<std::net::IpAddr>,
    proto: &str,
    out: &mut BytesMut,
) {
    out.extend_from_slice(head.method.as_bytes());
    out.extend_from_slice(b" ");
    out.extend_from_slice(head.origin_form().as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let authority = head.authority();
    if let Some(a) = authority {
        header(out, b"Host", a.as_bytes());
    }
    let mut forwarded_for: Option<Vec<u8>> = None;
    for (name, value) in &head.headers {
        if authority.is_some() && name.eq_ignore_ascii_case("host") {
            continue;
        }
        if name.eq_ignore_ascii_case("x-forwarded-for") {
            // Merged below, with the client's address appended.
            let merged = forwarded_for.get_or_insert_with(Vec::new);
            if !merged.is_empty() {
                merged.extend_from_slice(b", ");
            }
            merged.extend_from_slice(value);
            continue;
        }
        if name.eq_ignore_ascii_case("x-forwarded-proto") {
            continue;
        }
        // Transfer-Encoding is framing and stays: the body goes as it came.
        if hop_by_hop(head, name) && !name.eq_ignore_ascii_case("transfer-encoding") {
            continue;
        }
        header(out, name.as_bytes(), value);
    }
    if let Some(ip) = client_ip {
        let merged = forwarded_for.get_or_insert_with(Vec::new);
        if !merged.is_empty() {
            merged.extend_from_slice(b", ");
        }
        merged.extend_from_slice(ip.to_string().as_bytes());
    }
    if let Some(v) = forwarded_for {
        header(out, b"X-Forwarded-For", &v);
    }
    header(out, b"X-Forwarded-Proto", proto.as_bytes());
    if head.is_upgrade() {
        if let Some(up) = head.header("upgrade") {
            header(out, b"Upgrade", up);
        }
        header(out, b"Connection", b"upgrade");
    } else {
        header(out, b"Connection", b"keep-alive");
    }
    out.extend_from_slice(b"\r\n");
}

/// Writes a response head for the client hop: hop-by-hop fields dropped,
/// `Connection` set to what the proxy will do.
pub fn write_response(head: &Head, keep_alive: bool, out: &mut BytesMut) {
    let mut line = format!("HTTP/1.1 {} {}\r\n", head.status, head.reason);
    if head.reason.is_empty() {
        line = format!("HTTP/1.1 {} {}\r\n", head.status, reason(head.status));
    }
    out.extend_from_slice(line.as_bytes());
    for (name, value) in &head.headers {
        if hop_by_hop(head, name) && !name.eq_ignore_ascii_case("transfer-encoding") {
            continue;
        }
        // A chunked body's length is the chunks' (RFC 9112 §6.3).
        if head.framing == Framing::Chunked && name.eq_ignore_ascii_case("content-length") {
            continue;
        }
        header(out, name.as_bytes(), value);
    }
    if head.status == 101 {
        if let Some(up) = head.header("upgrade") {
            header(out, b"Upgrade", up);
        }
        header(out, b"Connection", b"upgrade");
    } else if !keep_alive {
        header(out, b"Connection", b"close");
    }
    out.extend_from_slice(b"\r\n");
}

fn header(out: &mut BytesMut, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// A whole response made by the proxy itself (`head_only` for a HEAD
/// request: the length a GET would get, no body).
pub fn simple_response(
    status: u16,
    content_type: &str,
    extra: &[(&str, &str)],
    body: &[u8],
    keep_alive: bool,
    head_only: bool,
) -> BytesMut {
    let mut out = BytesMut::with_capacity(128 + body.len());
    out.extend_from_slice(format!("HTTP/1.1 {status} {}\r\n", reason(status)).as_bytes());
    header(&mut out, b"Content-Type", content_type.as_bytes());
    header(
        &mut out,
        b"Content-Length",
        body.len().to_string().as_bytes(),
    );
    for (k, v) in extra {
        header(&mut out, k.as_bytes(), v.as_bytes());
    }
    if !keep_alive {
        header(&mut out, b"Connection", b"close");
    }
    out.extend_from_slice(b"\r\n");
    if !head_only {
        out.extend_from_slice(body);
    }
    out
}

pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

/// Finds where a chunked body ends, byte by byte, without copying it:
/// the proxy forwards the chunked bytes as they are and only needs to know
/// how many of them belong to this message.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Chunked {
    state: ChunkState,
    /// Digits of the current size line, for its bound.
    size_digits: u8,
    size: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
enum ChunkState {
    #[default]
    Size,
    /// In a chunk extension, up to CR.
    Extension,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    /// Trailer lines after the last chunk: at the start of a line.
    TrailerStart,
    /// Inside a trailer line.
    Trailer,
    TrailerLf,
    EndLf,
    Done,
}

impl Chunked {
    /// How many bytes of `input` belong to the body, and whether the body
    /// ends there.
    pub fn feed(&mut self, input: &[u8]) -> Result<(usize, bool), H1Error> {
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            match self.state {
                ChunkState::Size => match b {
                    b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                        self.size_digits += 1;
                        // 16 hex digits would overflow a u64 on the next.
                        if self.size_digits > 15 {
                            return Err(H1Error::BadChunk("chunk size too long"));
                        }
                        let digit = (b as char).to_digit(16).unwrap_or(0) as u64;
                        self.size = self.size * 16 + digit;
                    }
                    b';' if self.size_digits > 0 => self.state = ChunkState::Extension,
                    b'\r' if self.size_digits > 0 => self.state = ChunkState::SizeLf,
                    _ => return Err(H1Error::BadChunk("chunk size")),
                },
                ChunkState::Extension => match b {
                    b'\r' => self.state = ChunkState::SizeLf,
                    b'\n' => return Err(H1Error::BadChunk("bare LF in chunk extension")),
                    _ => {}
                },
                ChunkState::SizeLf => {
                    if b != b'\n' {
                        return Err(H1Error::BadChunk("expected LF after chunk size"));
                    }
                    self.size_digits = 0;
                    self.state = if self.size == 0 {
                        ChunkState::TrailerStart
                    } else {
                        ChunkState::Data
                    };
                }
                ChunkState::Data => {
                    let take = (self.size as usize).min(input.len() - i);
                    self.size -= take as u64;
                    i += take;
                    if self.size == 0 {
                        self.state = ChunkState::DataCr;
                    }
                    continue;
                }
                ChunkState::DataCr => {
                    if b != b'\r' {
                        return Err(H1Error::BadChunk("expected CRLF after chunk data"));
                    }
                    self.state = ChunkState::DataLf;
                }
                ChunkState::DataLf => {
                    if b != b'\n' {
                        return Err(H1Error::BadChunk("expected CRLF after chunk data"));
                    }
                    self.state = ChunkState::Size;
                }
                ChunkState::TrailerStart => match b {
                    b'\r' => self.state = ChunkState::EndLf,
                    b'\n' => return Err(H1Error::BadChunk("bare LF in trailer")),
                    _ => self.state = ChunkState::Trailer,
                },
                ChunkState::Trailer => match b {
                    b'\r' => self.state = ChunkState::TrailerLf,
                    b'\n' => return Err(H1Error::BadChunk("bare LF in trailer")),
                    _ => {}
                },
                ChunkState::TrailerLf => {
                    if b != b'\n' {
                        return Err(H1Error::BadChunk("expected LF in trailer"));
                    }
                    self.state = ChunkState::TrailerStart;
                }
                ChunkState::EndLf => {
                    if b != b'\n' {
                        return Err(H1Error::BadChunk("expected final CRLF"));
                    }
                    self.state = ChunkState::Done;
                    return Ok((i + 1, true));
                }
                ChunkState::Done => return Ok((i, true)),
            }
            i += 1;
        }
        Ok((i, self.state == ChunkState::Done))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_header_bytes: 1024,
        max_headers: 16,
    };

    fn req(text: &str) -> Result<Option<Head>, H1Error> {
        parse_request(&mut BytesMut::from(text.as_bytes()), LIMITS)
    }

    #[test]
    fn parses_a_request_and_its_framing() {
        let head =
            req("POST /a?b=1 HTTP/1.1\r\nHost: Example.COM:8080\r\nContent-Length: 5\r\n\r\nhello")
                .unwrap()
                .unwrap();
        assert_eq!(head.method, "POST");
        assert_eq!(head.path(), "/a");
        assert_eq!(head.host().as_deref(), Some("example.com"));
        assert_eq!(head.framing, Framing::Length(5));
        assert!(head.keep_alive());
        let head = req("GET / HTTP/1.0\r\n\r\n").unwrap().unwrap();
        assert!(!head.keep_alive());
        assert_eq!(
            req("GET / HTTP/1.1\r\nHost: x\r\n").unwrap(),
            None,
            "incomplete"
        );
    }

    #[test]
    fn refuses_what_smuggles_or_overflows() {
        let smuggle =
            "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(req(smuggle), Err(H1Error::Smuggling));
        let dup = "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n";
        assert_eq!(req(dup), Err(H1Error::DuplicateLength));
        assert_eq!(
            req("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +3\r\n\r\n"),
            Err(H1Error::BadLength)
        );
        assert_eq!(
            req("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
            Err(H1Error::UnsupportedEncoding)
        );
        let big = format!(
            "GET / HTTP/1.1\r\nHost: h\r\nX: {}\r\n\r\n",
            "a".repeat(2000)
        );
        assert_eq!(req(&big), Err(H1Error::HeadTooLarge(1024)));
        let partial_big = format!("GET / HTTP/1.1\r\nHost: h\r\nX: {}", "a".repeat(2000));
        assert_eq!(req(&partial_big), Err(H1Error::HeadTooLarge(1024)));
        let many: String = (0..20).map(|i| format!("H{i}: v\r\n")).collect();
        assert_eq!(
            req(&format!("GET / HTTP/1.1\r\nHost: h\r\n{many}\r\n")),
            Err(H1Error::TooManyHeaders(16))
        );
        // Header injection: a bare CR inside a value.
        assert!(req("GET / HTTP/1.1\r\nHost: h\r\nX: a\rInjected: 1\r\n\r\n").is_err());
        assert!(
            req("GET / HTTP/1.1\r\nHost: h\r\nX : a\r\n\r\n").is_err(),
            "space before colon"
        );
        let no_host = "GET / HTTP/1.1\r\n\r\n";
        assert!(matches!(req(no_host), Err(H1Error::Host(_))));
        let two_hosts = "GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n";
        assert!(matches!(req(two_hosts), Err(H1Error::Host(_))));
        assert!(
            req("GET / HTTP/1.0\r\n\r\n").unwrap().is_some(),
            "1.0 needs no Host"
        );
    }

    #[test]
    fn absolute_targets_route_by_authority_and_go_in_origin_form() {
        let head = req("GET http://Api.Example:81/a/b?q=1 HTTP/1.1\r\nHost: other\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(head.host().as_deref(), Some("api.example"));
        assert_eq!(head.path(), "/a/b");
        let mut out = BytesMut::new();
        write_request(&head, None, "http", &mut out);
        let text = String::from_utf8(out.to_vec()).unwrap();
        assert!(
            text.starts_with("GET /a/b?q=1 HTTP/1.1\r\nHost: Api.Example:81\r\n"),
            "{text}"
        );
        assert!(!text.contains("other"), "{text}");
        let bare = req("GET http://h?x HTTP/1.1\r\nHost: h\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(bare.path(), "/");
        assert_eq!(bare.origin_form(), "/?x");
    }

    #[test]
    fn chunked_responses_lose_their_content_length() {
        let mut b = BytesMut::from(
            &b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
        );
        let head = parse_response(&mut b, "GET", 1024).unwrap().unwrap();
        assert_eq!(head.framing, Framing::Chunked);
        let mut out = BytesMut::new();
        write_response(&head, true, &mut out);
        let text = String::from_utf8(out.to_vec())
            .unwrap()
            .to_ascii_lowercase();
        assert!(!text.contains("content-length"), "{text}");
        assert!(text.contains("transfer-encoding: chunked"), "{text}");
    }

    #[test]
    fn chunked_bodies_end_where_they_end() {
        let body = b"4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\nTrailer: x\r\n\r\nNEXT";
        let mut c = Chunked::default();
        let (used, done) = c.feed(body).unwrap();
        assert!(done);
        assert_eq!(&body[used..], b"NEXT");
        // Byte by byte gives the same.
        let mut c = Chunked::default();
        let mut total = 0;
        for (i, b) in body.iter().enumerate() {
            let (used, done) = c.feed(std::slice::from_ref(b)).unwrap();
            total += used;
            if done {
                assert_eq!(i + 1, total);
                break;
            }
        }
        assert_eq!(&body[total..], b"NEXT");
        for bad in [
            &b"zz\r\n"[..],
            b"4\nWiki",
            b"4\r\nWikiXX",
            b"ffffffffffffffff1\r\n",
            b"\r\n",
        ] {
            assert!(
                Chunked::default().feed(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn rewriting_drops_hop_by_hop_and_adds_forwarded() {
        let head = req("GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, X-Secret\r\nX-Secret: s\r\nKeep-Alive: 5\r\nX-Forwarded-For: 1.1.1.1\r\n\r\n")
            .unwrap()
            .unwrap();
        let mut out = BytesMut::new();
        write_request(&head, "10.0.0.9".parse().ok(), "http", &mut out);
        let text = String::from_utf8(out.to_vec()).unwrap();
        assert!(text.starts_with("GET / HTTP/1.1\r\nHost: h\r\n"), "{text}");
        assert!(
            !text.contains("X-Secret") && !text.contains("Keep-Alive"),
            "{text}"
        );
        assert!(
            text.contains("X-Forwarded-For: 1.1.1.1, 10.0.0.9\r\n"),
            "{text}"
        );
        assert!(text.contains("X-Forwarded-Proto: http\r\n"));
        assert!(text.ends_with("Connection: keep-alive\r\n\r\n"));
    }

    #[test]
    fn response_framing() {
        let mut b = BytesMut::from(&b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"[..]);
        assert_eq!(
            parse_response(&mut b, "GET", 4096)
                .unwrap()
                .unwrap()
                .framing,
            Framing::Length(2)
        );
        let mut b = BytesMut::from(&b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"[..]);
        assert_eq!(
            parse_response(&mut b, "HEAD", 4096)
                .unwrap()
                .unwrap()
                .framing,
            Framing::None
        );
        let mut b = BytesMut::from(&b"HTTP/1.1 200 OK\r\n\r\n"[..]);
        assert_eq!(
            parse_response(&mut b, "GET", 4096)
                .unwrap()
                .unwrap()
                .framing,
            Framing::Close
        );
        let mut b = BytesMut::from(&b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n"[..]);
        assert_eq!(
            parse_response(&mut b, "GET", 4096)
                .unwrap()
                .unwrap()
                .framing,
            Framing::None
        );
    }
}
