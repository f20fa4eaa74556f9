//! HTTP/1.1 message framing, sans I/O: request and response heads
//! (httparse, bounded), body framing (RFC 9112 §6), a streaming chunked
//! decoder that finds where a body ends ([`Chunked`]) and one that
//! re-frames it canonically ([`Rechunk`]), and rewriting heads for the hop
//! to the other side.
//!
//! # Request smuggling
//!
//! A proxy and the server behind it must agree on where every request
//! ends; any message two parsers could frame differently is refused. Each
//! rule below is answered with a 4xx (or 501/505) by the caller, the
//! connection closed, the request never forwarded, and the refusal
//! counted by [`H1Error::reason`]:
//! * a request line and headers over `max_header_bytes`, or over
//!   `max_headers` fields;
//! * `Transfer-Encoding` together with `Content-Length` (RFC 9112 §6.3
//!   item 3 allows a server to go on; a proxy cannot know which one the
//!   next hop believes), more than one `Content-Length` (a list `5, 5`
//!   included), a `Content-Length` that is not a plain decimal;
//! * a `Transfer-Encoding` whose codings do not end with `chunked`, or
//!   name it twice (400, RFC 9112 §6.3 item 4), or name another coding
//!   before it (501: we decode none); any `Transfer-Encoding` in an
//!   HTTP/1.0 message (RFC 9112 §6.1: faulty framing);
//! * a `Connection` header that names `Content-Length`,
//!   `Transfer-Encoding` or `Host` (RFC 9110 §7.6.1 lets a proxy drop the
//!   fields `Connection` names; dropping these would forward a body the
//!   next hop cannot frame, or a request it cannot route);
//! * a header name that is one of those three with `_` for `-`
//!   (`Transfer_Encoding`): servers that fold `_` into `-` would frame by
//!   it while we do not;
//! * header names or values with bytes httparse refuses (CR, LF, NUL,
//!   obs-fold, whitespace before the colon...);
//! * a bad chunk: a size line that is not hex, over 15 digits, with bare
//!   CR or LF, or longer than [`MAX_CHUNK_LINE`] with its extensions; data
//!   not followed by CRLF; a trailer section over [`MAX_TRAILER_BYTES`];
//! * an HTTP/1.1 request without a `Host`, with more than one, or with one
//!   that is not `host[:port]` (RFC 9112 §3.2);
//! * a target that is not origin-form (`/path`), absolute-form with an
//!   `http`/`https` scheme and a non-empty host without userinfo, `*` (for
//!   `OPTIONS`) or authority-form (for `CONNECT`) (RFC 9112 §3.2).
//!
//! What goes upstream is re-serialised, never copied: the framing headers
//! are written from what we parsed (`Content-Length: N` or
//! `Transfer-Encoding: chunked`), chunked bodies are re-chunked (one chunk
//! per read, extensions dropped, trailers kept), and hop-by-hop fields are
//! dropped. A request asking to upgrade to `h2c` is served as the plain
//! HTTP/1.1 request it also is: the upgrade is for this hop only, and an
//! upstream that switched would take the client past our routes.
//!
//! Responses follow the same rules (an upstream's ambiguous framing or
//! `Connection: Content-Length` make [`parse_response`] fail, and the
//! caller answers 502 and drops that upstream connection), except that a
//! response `Transfer-Encoding` may carry other codings before `chunked`,
//! and one where `chunked` is not last is read until the connection
//! closes (RFC 9112 §6.3 item 4).
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
    #[error("invalid Transfer-Encoding: {0}")]
    BadEncoding(&'static str),
    #[error("Transfer-Encoding in an HTTP/1.0 message")]
    Http10Encoding,
    #[error("Connection names {0}, which frames or routes the message")]
    ConnectionOption(&'static str),
    #[error("invalid chunk: {0}")]
    BadChunk(&'static str),
    #[error("unsupported HTTP version")]
    Version,
    #[error("{0}")]
    Host(&'static str),
    #[error("invalid request target: {0}")]
    Target(&'static str),
}

/// Every value of [`H1Error::reason`], in a fixed order (metric labels).
pub const REJECT_REASONS: [&str; 14] = [
    "header_too_large",
    "too_many_headers",
    "malformed",
    "content_length_and_transfer_encoding",
    "duplicate_content_length",
    "bad_content_length",
    "unsupported_transfer_encoding",
    "bad_transfer_encoding",
    "http10_transfer_encoding",
    "connection_option",
    "bad_chunk",
    "version",
    "host",
    "target",
];

impl H1Error {
    /// A short label for metrics: one of [`REJECT_REASONS`].
    pub fn reason(&self) -> &'static str {
        REJECT_REASONS[self.reason_index()]
    }

    /// The index of [`H1Error::reason`] in [`REJECT_REASONS`].
    pub fn reason_index(&self) -> usize {
        match self {
            H1Error::HeadTooLarge(_) => 0,
            H1Error::TooManyHeaders(_) => 1,
            H1Error::Malformed(_) => 2,
            H1Error::Smuggling => 3,
            H1Error::DuplicateLength => 4,
            H1Error::BadLength => 5,
            H1Error::UnsupportedEncoding => 6,
            H1Error::BadEncoding(_) => 7,
            H1Error::Http10Encoding => 8,
            H1Error::ConnectionOption(_) => 9,
            H1Error::BadChunk(_) => 10,
            H1Error::Version => 11,
            H1Error::Host(_) => 12,
            H1Error::Target(_) => 13,
        }
    }

    /// The status a client gets for a request refused with this error.
    pub fn status(&self) -> u16 {
        match self {
            H1Error::HeadTooLarge(_) | H1Error::TooManyHeaders(_) => 431,
            H1Error::UnsupportedEncoding => 501,
            H1Error::Version => 505,
            _ => 400,
        }
    }
}

/// The longest chunk-size line, extensions included: real clients send a
/// few hex digits; a longer line only costs the proxy memory and time.
pub const MAX_CHUNK_LINE: usize = 4096;

/// The largest trailer section of a chunked body: trailers are a few
/// fields at most (gRPC's status), and they are held until the body ends.
pub const MAX_TRAILER_BYTES: usize = 16 * 1024;

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

    /// A request asking to switch protocols (WebSocket...). An upgrade to
    /// `h2c` is not one: it would switch this hop, which we do not do, and
    /// an upstream that switched would serve the client past our routes
    /// (RFC 9113 §3.1 deprecates it); the request is served as HTTP/1.1.
    pub fn is_upgrade(&self) -> bool {
        self.has_token("connection", "upgrade")
            && self.header("upgrade").is_some()
            && !self.has_token("upgrade", "h2c")
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
    check_request(&head)?;
    head.framing = request_framing(&head)?;
    let _ = buf.split_to(len);
    Ok(Some(head))
}

/// The rules on a request head beyond its syntax (see the module docs).
fn check_request(head: &Head) -> Result<(), H1Error> {
    let mut hosts = head
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("host"));
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(H1Error::Host("more than one Host"));
    }
    match host {
        None if head.minor >= 1 => return Err(H1Error::Host("HTTP/1.1 request without Host")),
        // Empty is allowed: a target without an authority (RFC 9112 §3.2).
        Some((_, value)) if !value.is_empty() && !valid_authority(value) => {
            return Err(H1Error::Host("invalid Host"));
        }
        _ => {}
    }
    check_target(head)?;
    check_connection(head)?;
    for (name, _) in &head.headers {
        if name.contains('_') {
            let folded = name.replace('_', "-");
            if FRAMING_FIELDS
                .iter()
                .any(|f| folded.eq_ignore_ascii_case(f))
            {
                return Err(H1Error::Malformed(
                    "a framing field's name with '_' for '-'",
                ));
            }
        }
    }
    Ok(())
}

/// The fields that frame or route a message: `Connection` may not name
/// them (see the module docs).
const FRAMING_FIELDS: [&str; 3] = ["content-length", "transfer-encoding", "host"];

fn check_connection(head: &Head) -> Result<(), H1Error> {
    for field in FRAMING_FIELDS {
        if head.has_token("connection", field) {
            return Err(H1Error::ConnectionOption(field));
        }
    }
    Ok(())
}

/// The request target's form must be the one its method allows
/// (RFC 9112 §3.2).
fn check_target(head: &Head) -> Result<(), H1Error> {
    let target = head.target.as_str();
    if target.starts_with('/') {
        return Ok(());
    }
    if let Some(authority) = head.authority() {
        if authority.is_empty() {
            return Err(H1Error::Target("absolute-form without a host"));
        }
        if !valid_authority(authority.as_bytes()) {
            return Err(H1Error::Target("absolute-form with an invalid authority"));
        }
        return Ok(());
    }
    if target == "*" && head.method == "OPTIONS" {
        return Ok(());
    }
    if head.method == "CONNECT" && valid_authority(target.as_bytes()) && !target.is_empty() {
        return Ok(());
    }
    Err(H1Error::Target(
        "neither origin-form nor http(s) absolute-form",
    ))
}

/// `host [":" port]` (RFC 3986 §3.2.2): an IP literal in brackets, or
/// reg-name / IPv4 characters; no userinfo (RFC 9110 §4.2.4 makes `@` an
/// error), no whitespace.
pub fn valid_authority(value: &[u8]) -> bool {
    let (host, port) = if value.first() == Some(&b'[') {
        let Some(end) = value.iter().position(|b| *b == b']') else {
            return false;
        };
        let literal = &value[1..end];
        if literal.is_empty()
            || !literal
                .iter()
                .all(|b| b.is_ascii_hexdigit() || matches!(b, b':' | b'.' | b'v' | b'V'))
        {
            return false;
        }
        match &value[end + 1..] {
            [] => (&value[..0], None),
            [b':', port @ ..] => (&value[..0], Some(port)),
            _ => return false,
        }
    } else {
        match value.iter().rposition(|b| *b == b':') {
            Some(at) => (&value[..at], Some(&value[at + 1..])),
            None => (value, None),
        }
    };
    let reg_name = host.iter().all(|b| {
        b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'%'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
            )
    });
    reg_name && port.is_none_or(|p| p.len() <= 5 && p.iter().all(u8::is_ascii_digit))
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

/// The codings of every `Transfer-Encoding` field, in order (empty list
/// elements skipped, RFC 9110 §5.6.1); `None` without the field.
fn codings(head: &Head) -> Option<Vec<&[u8]>> {
    let mut present = false;
    let codings = head
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("transfer-encoding"))
        .inspect(|_| present = true)
        .flat_map(|(_, v)| v.split(|b| *b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|c| !c.is_empty())
        .collect();
    present.then_some(codings)
}

/// A request's `Transfer-Encoding`: absent, or `chunked` once and last
/// (else 400, RFC 9112 §6.3 item 4), with no coding before it (else 501:
/// we do not decode gzip & co., §6.1). Never in HTTP/1.0 (§6.1).
fn transfer_encoding(head: &Head) -> Result<bool, H1Error> {
    let Some(codings) = codings(head) else {
        return Ok(false);
    };
    if head.minor == 0 {
        return Err(H1Error::Http10Encoding);
    }
    let chunked = |c: &[u8]| c.eq_ignore_ascii_case(b"chunked");
    if !codings.last().is_some_and(|c| chunked(c)) {
        return Err(H1Error::BadEncoding("chunked is not the final coding"));
    }
    if codings.iter().filter(|c| chunked(c)).count() > 1 {
        return Err(H1Error::BadEncoding("chunked more than once"));
    }
    if codings.len() > 1 {
        return Err(H1Error::UnsupportedEncoding);
    }
    Ok(true)
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

/// How a response's `Transfer-Encoding` frames it: `None` without one,
/// `Chunked` when `chunked` is the last coding (and not also an earlier
/// one), `Close` otherwise (RFC 9112 §6.3 item 4).
fn response_encoding(head: &Head) -> Result<Option<Framing>, H1Error> {
    let Some(codings) = codings(head) else {
        return Ok(None);
    };
    let Some(last) = codings.last() else {
        return Err(H1Error::BadEncoding("no coding"));
    };
    if head.minor == 0 {
        return Err(H1Error::Http10Encoding);
    }
    let chunked = codings
        .iter()
        .filter(|c| c.eq_ignore_ascii_case(b"chunked"))
        .count();
    match (chunked, last.eq_ignore_ascii_case(b"chunked")) {
        (0, _) => Ok(Some(Framing::Close)),
        (1, true) => Ok(Some(Framing::Chunked)),
        // Chunked twice, or not last: no reading of it is safe.
        _ => Err(H1Error::BadEncoding("chunked not once and last")),
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
    // The bound holds however the head arrived (whole, or in pieces).
    if len > max {
        return Err(H1Error::HeadTooLarge(max));
    }
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
    if head.status < 100 {
        // Three digits, but no status: it would not survive being
        // written again (RFC 9110 §15: 1xx to 5xx, room up to 999).
        return Err(H1Error::Malformed("response status under 100"));
    }
    check_connection(&head)?;
    // Checked whatever the status: a head framed two ways is a broken (or
    // hostile) upstream, even where the status means no body.
    let encoding = response_encoding(&head)?;
    let length = content_length(&head)?;
    if encoding.is_some() && length.is_some() {
        // RFC 9112 §6.3 item 3 lets a proxy forward it chunked; we do
        // not: the upstream may have meant the length, and then the rest
        // of its bytes are a response nobody asked for.
        return Err(H1Error::Smuggling);
    }
    head.framing = if request_method.eq_ignore_ascii_case("HEAD")
        || (100..200).contains(&head.status)
        || head.status == 204
        || head.status == 304
    {
        Framing::None
    } else if let Some(framing) = encoding {
        framing
    } else {
        match length {
            Some(n) => Framing::Length(n),
            None => Framing::Close,
        }
    };
    let _ = buf.split_to(len);
    Ok(Some(head))
}

/// Hop-by-hop fields (RFC 9110 §7.6.1) that are never forwarded as they
/// came, whatever the `Connection` header says. HTTP/2 forbids them too
/// (RFC 9113 §8.2.2: `te` but `te: trailers`), so this one list serves
/// both protocols.
pub const HOP_BY_HOP: [&str; 10] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    // The settings of an h2c upgrade, for this hop only (RFC 7540 §3.2.1).
    "http2-settings",
];

/// Whether `name` is a hop-by-hop field of `head`: one of [`HOP_BY_HOP`],
/// or one its `Connection` header names.
pub fn hop_by_hop(head: &Head, name: &str) -> bool {
    HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h))
        // Fields the Connection header names are hop-by-hop too.
        || head.has_token("connection", name)
}

/// What the proxy writes itself into a request for the next hop, decided
/// once per request (the exchange's request transforms) and written by
/// [`write_request`], or into an HTTP/2 request by the HTTP/2 client.
#[derive(Debug, Clone, Copy)]
pub struct Hop<'a> {
    /// `Host` (`:authority`): the absolute-form target's authority, else
    /// the client's `Host`, else empty ([`Hop::authority`]).
    pub authority: &'a str,
    /// `X-Forwarded-For`: what the client sent, its address appended
    /// ([`forwarded_for`]).
    pub forwarded_for: Option<&'a [u8]>,
    /// `X-Forwarded-Proto`: the scheme the client spoke to us.
    pub proto: &'a str,
}

impl Hop<'_> {
    /// The authority a request names: its absolute-form target's, else its
    /// `Host`; empty when it has neither (HTTP/1.0), as HTTP/1.1 then
    /// requires of a `Host` (RFC 9112 §3.2).
    pub fn authority(head: &Head) -> &str {
        head.authority()
            .or_else(|| head.header_str("host"))
            .unwrap_or("")
    }
}

/// Whether a request field goes to the next hop as it came. What does not
/// is hop-by-hop ([`hop_by_hop`]), or written by the proxy from what it
/// decided: the framing fields (from [`Head::framing`]), `Host`, and the
/// `X-Forwarded-*` fields ([`Hop`]).
pub fn forwarded_field(head: &Head, name: &str) -> bool {
    const REWRITTEN: [&str; 5] = [
        "content-length",
        "transfer-encoding",
        "host",
        "x-forwarded-for",
        "x-forwarded-proto",
    ];
    !REWRITTEN.iter().any(|h| name.eq_ignore_ascii_case(h)) && !hop_by_hop(head, name)
}

/// The `X-Forwarded-For` value for the next hop: the client's own (every
/// field, in order, joined with `, `), then `client`'s address. `None`
/// when there is neither.
pub fn forwarded_for(head: &Head, client: Option<std::net::IpAddr>) -> Option<Vec<u8>> {
    use std::io::Write as _;
    let mut merged: Option<Vec<u8>> = None;
    let values = head
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("x-forwarded-for"))
        .map(|(_, v)| v.as_slice());
    for value in values {
        let merged = merged.get_or_insert_with(Vec::new);
        if !merged.is_empty() {
            merged.extend_from_slice(b", ");
        }
        merged.extend_from_slice(value);
    }
    if let Some(ip) = client {
        let merged = merged.get_or_insert_with(|| Vec::with_capacity(40));
        if !merged.is_empty() {
            merged.extend_from_slice(b", ");
        }
        // Writing into a Vec cannot fail.
        let _ = write!(merged, "{ip}");
    }
    merged
}

/// Writes a request head for an HTTP/1.1 upstream: the request line in
/// origin form, `Host` first, the fields that pass ([`forwarded_field`]),
/// the framing fields written from [`Head::framing`] (never copied), the
/// `X-Forwarded-*` fields of `hop`, and keep-alive (or the upgrade) asked
/// for.
pub fn write_request(head: &Head, hop: &Hop<'_>, out: &mut BytesMut) {
    out.extend_from_slice(head.method.as_bytes());
    out.extend_from_slice(b" ");
    out.extend_from_slice(head.origin_form().as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    header(out, b"Host", hop.authority.as_bytes());
    let mut had_length = false;
    for (name, value) in &head.headers {
        if forwarded_field(head, name) {
            header(out, name.as_bytes(), value);
        } else {
            had_length |= name.eq_ignore_ascii_case("content-length");
        }
    }
    match head.framing {
        Framing::Length(n) => header(out, b"Content-Length", n.to_string().as_bytes()),
        Framing::Chunked => header(out, b"Transfer-Encoding", b"chunked"),
        // `Content-Length: 0` stays: some servers want a length on a POST.
        Framing::None | Framing::Close if had_length => header(out, b"Content-Length", b"0"),
        Framing::None | Framing::Close => {}
    }
    if let Some(v) = hop.forwarded_for {
        header(out, b"X-Forwarded-For", v);
    }
    header(out, b"X-Forwarded-Proto", hop.proto.as_bytes());
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
    // A length a filter dropped (`filter::http::ResponseHead::stream_body`)
    // leaves chunked framing the upstream did not announce.
    if head.framing == Framing::Chunked && head.header("transfer-encoding").is_none() {
        header(out, b"Transfer-Encoding", b"chunked");
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
    extra: &[(&str, &[u8])],
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
        header(&mut out, k.as_bytes(), v);
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

/// Finds where a chunked body ends, byte by byte, and what it carries
/// (RFC 9112 §7.1): `chunk-size [ext] CRLF data CRLF ... 0 [ext] CRLF
/// trailers CRLF`. Strict: hex sizes of at most 15 digits, CRLF only (a
/// bare CR or LF anywhere in the framing is an error), size lines of at
/// most [`MAX_CHUNK_LINE`] bytes with their extensions, trailer sections
/// of at most [`MAX_TRAILER_BYTES`].
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Chunked {
    state: ChunkState,
    /// Digits of the current size line, for its bound.
    size_digits: u8,
    size: u64,
    /// Bytes of the current size line (extensions included), or of the
    /// trailer section, for their bounds.
    line: usize,
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
        self.step(input, &mut |_| {}, &mut |_| {})
    }

    /// As [`Chunked::feed`], and appends the data the chunks carry (the
    /// body without its framing) to `body`.
    pub fn decode(&mut self, input: &[u8], body: &mut BytesMut) -> Result<(usize, bool), H1Error> {
        self.step(input, &mut |d| body.extend_from_slice(d), &mut |_| {})
    }

    /// As [`Chunked::decode`], and appends the trailer section's field
    /// lines (each with its CRLF; validated, not parsed) to `trailers`.
    pub fn decode_with_trailers(
        &mut self,
        input: &[u8],
        body: &mut BytesMut,
        trailers: &mut Vec<u8>,
    ) -> Result<(usize, bool), H1Error> {
        self.step(input, &mut |d| body.extend_from_slice(d), &mut |t| {
            trailers.extend_from_slice(t)
        })
    }

    /// Whether the whole body has been seen.
    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// The state machine: `data` gets the chunk data, `trailer` the bytes
    /// of the trailer field lines (each with its CRLF; not the final one).
    fn step(
        &mut self,
        input: &[u8],
        data: &mut dyn FnMut(&[u8]),
        trailer: &mut dyn FnMut(&[u8]),
    ) -> Result<(usize, bool), H1Error> {
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            match self.state {
                ChunkState::Size | ChunkState::Extension => {
                    self.line += 1;
                    if self.line > MAX_CHUNK_LINE {
                        return Err(H1Error::BadChunk("chunk size line too long"));
                    }
                }
                ChunkState::Trailer | ChunkState::TrailerStart | ChunkState::TrailerLf => {
                    self.line += 1;
                    if self.line > MAX_TRAILER_BYTES {
                        return Err(H1Error::BadChunk("trailer section too large"));
                    }
                }
                _ => {}
            }
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
                    // Other controls (NUL, DEL...) have no place in an
                    // extension (RFC 9112 §7.1.1: tokens, quoted strings).
                    0..=0x08 | 0x0a..=0x1f | 0x7f => {
                        return Err(H1Error::BadChunk("control byte in chunk extension"));
                    }
                    _ => {}
                },
                ChunkState::SizeLf => {
                    if b != b'\n' {
                        return Err(H1Error::BadChunk("expected LF after chunk size"));
                    }
                    self.size_digits = 0;
                    self.line = 0;
                    self.state = if self.size == 0 {
                        ChunkState::TrailerStart
                    } else {
                        ChunkState::Data
                    };
                }
                ChunkState::Data => {
                    let take = usize::try_from(self.size)
                        .unwrap_or(usize::MAX)
                        .min(input.len() - i);
                    data(&input[i..i + take]);
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
                    // A trailer line starts with a field name, not
                    // whitespace (no obs-fold).
                    b' ' | b'\t' => return Err(H1Error::BadChunk("folded trailer line")),
                    0..=0x1f | 0x7f => return Err(H1Error::BadChunk("control byte in trailer")),
                    _ => {
                        trailer(&[b]);
                        self.state = ChunkState::Trailer;
                    }
                },
                ChunkState::Trailer => match b {
                    b'\r' => self.state = ChunkState::TrailerLf,
                    b'\n' => return Err(H1Error::BadChunk("bare LF in trailer")),
                    0..=0x08 | 0x0a..=0x1f | 0x7f => {
                        return Err(H1Error::BadChunk("control byte in trailer"));
                    }
                    _ => trailer(&[b]),
                },
                ChunkState::TrailerLf => {
                    if b != b'\n' {
                        return Err(H1Error::BadChunk("expected LF in trailer"));
                    }
                    trailer(b"\r\n");
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

/// Writes `data` as one chunk in canonical form: a plain hex size, no
/// extension. The one chunk writer: every chunked body baton sends, to a
/// client or an upstream, from an HTTP/1.1 or an HTTP/2 peer, is written
/// by it and [`write_last_chunk`].
pub fn write_chunk(data: &[u8], out: &mut BytesMut) {
    use std::fmt::Write as _;
    if data.is_empty() {
        // A zero-size chunk would end the body.
        return;
    }
    out.reserve(data.len() + 20);
    // Writing into a BytesMut cannot fail.
    let _ = write!(out, "{:x}\r\n", data.len());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// Writes the last chunk and the trailer section: `trailers` are field
/// lines, each ending in CRLF (possibly none).
pub fn write_last_chunk(trailers: &[u8], out: &mut BytesMut) {
    out.extend_from_slice(b"0\r\n");
    out.extend_from_slice(trailers);
    out.extend_from_slice(b"\r\n");
}

/// Re-frames a chunked body canonically as it streams through: the data
/// of each piece of input becomes one chunk with a plain hex size, chunk
/// extensions are dropped, and the trailer section (validated by
/// [`Chunked`]) follows the last chunk unchanged. The next hop then never
/// sees a size, extension or line ending that it might read differently
/// from us (a 32-bit size that wraps, say). The proxy's exchange does the
/// same in two steps (decode into pieces, write them with [`write_chunk`]);
/// this is its one-step form, fuzzed.
#[derive(Debug, Clone, Default)]
pub struct Rechunk {
    decoder: Chunked,
    /// The trailer section so far: sent with the last chunk.
    trailers: Vec<u8>,
}

impl Rechunk {
    /// Takes from the front of `input` what belongs to the body and
    /// appends its canonical form to `out`; returns whether the body ended.
    pub fn take(&mut self, input: &mut BytesMut, out: &mut BytesMut) -> Result<bool, H1Error> {
        let mut data = BytesMut::new();
        let (used, done) =
            self.decoder
                .decode_with_trailers(input, &mut data, &mut self.trailers)?;
        let _ = input.split_to(used);
        write_chunk(&data, out);
        if done {
            write_last_chunk(&self.trailers, out);
            self.trailers.clear();
        }
        Ok(done)
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

    /// The head written for an HTTP/1.1 upstream.
    fn upstream(head: &Head, client: Option<std::net::IpAddr>) -> String {
        let forwarded_for = forwarded_for(head, client);
        let hop = Hop {
            authority: Hop::authority(head),
            forwarded_for: forwarded_for.as_deref(),
            proto: "http",
        };
        let mut out = BytesMut::new();
        write_request(head, &hop, &mut out);
        String::from_utf8(out.to_vec()).unwrap()
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
        for (te, why) in [
            ("gzip", "chunked is not the final coding"),
            ("chunked, identity", "chunked is not the final coding"),
            ("xchunked", "chunked is not the final coding"),
            ("\"chunked\"", "chunked is not the final coding"),
            (",", "chunked is not the final coding"),
            ("chunked, chunked", "chunked more than once"),
        ] {
            assert_eq!(
                req(&format!(
                    "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: {te}\r\n\r\n"
                )),
                Err(H1Error::BadEncoding(why)),
                "{te}"
            );
        }
        assert_eq!(
            req(
                "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"
            ),
            Err(H1Error::BadEncoding("chunked more than once"))
        );
        let head = req("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: , CHUNKED\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(
            head.framing,
            Framing::Chunked,
            "empty list elements are skipped"
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
        let text = upstream(&head, None);
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
    fn responses_framed_two_ways_or_out_of_order_are_refused() {
        let parse = |text: &str| {
            parse_response(&mut BytesMut::from(text.as_bytes()), "GET", 1024)
                .map(|h| h.map(|h| h.framing))
        };
        assert_eq!(
            parse("HTTP/1.1 200 OK\r\nContent-Length: 9\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Err(H1Error::Smuggling)
        );
        assert_eq!(
            parse("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n"),
            Err(H1Error::DuplicateLength)
        );
        assert_eq!(
            parse("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: Content-Length\r\n\r\n"),
            Err(H1Error::ConnectionOption("content-length"))
        );
        assert_eq!(
            parse("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Err(H1Error::Http10Encoding)
        );
        assert_eq!(
            parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
            Ok(Some(Framing::Chunked))
        );
        assert_eq!(
            parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"),
            Ok(Some(Framing::Close)),
            "chunked not last: until the end of the connection"
        );
        assert_eq!(
            parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"),
            Err(H1Error::BadEncoding("chunked not once and last"))
        );
        assert_eq!(
            parse(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"
            ),
            Err(H1Error::BadEncoding("chunked not once and last"))
        );
    }

    #[test]
    fn connection_cannot_name_the_fields_that_frame_or_route() {
        for field in ["Content-Length", "transfer-encoding", "HOST"] {
            let text = format!(
                "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: keep-alive, {field}\r\n\r\nabc"
            );
            assert_eq!(
                req(&text),
                Err(H1Error::ConnectionOption(
                    FRAMING_FIELDS
                        .iter()
                        .find(|f| f.eq_ignore_ascii_case(field))
                        .unwrap()
                )),
                "{field}"
            );
        }
        assert!(
            matches!(
                req("GET / HTTP/1.1\r\nHost: x\r\nTransfer_Encoding: chunked\r\n\r\n"),
                Err(H1Error::Malformed(_))
            ),
            "a look-alike of Transfer-Encoding"
        );
        assert!(
            req("GET / HTTP/1.1\r\nHost: x\r\nX_Custom: 1\r\n\r\n")
                .unwrap()
                .is_some()
        );
        assert_eq!(
            req("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
            Err(H1Error::Http10Encoding)
        );
    }

    #[test]
    fn hosts_and_targets_are_checked() {
        for bad_host in ["a b", "x@evil", "a:b:c", "[::1", "h:123456", "a/b"] {
            assert_eq!(
                req(&format!("GET / HTTP/1.1\r\nHost: {bad_host}\r\n\r\n")),
                Err(H1Error::Host("invalid Host")),
                "{bad_host}"
            );
        }
        for good_host in [
            "",
            "x",
            "Example.COM:8080",
            "[::1]:80",
            "10.0.0.1",
            "a-b_c~d",
        ] {
            assert!(
                req(&format!("GET / HTTP/1.1\r\nHost: {good_host}\r\n\r\n")).is_ok(),
                "{good_host}"
            );
        }
        for (line, ok) in [
            ("GET /a HTTP/1.1", true),
            ("GET http://x/a HTTP/1.1", true),
            ("GET https://x HTTP/1.1", true),
            ("OPTIONS * HTTP/1.1", true),
            ("CONNECT x:443 HTTP/1.1", true),
            ("GET * HTTP/1.1", false),
            ("GET admin/secret HTTP/1.1", false),
            ("GET ftp://x/a HTTP/1.1", false),
            ("GET http:///a HTTP/1.1", false),
            ("GET http://user@admin/a HTTP/1.1", false),
        ] {
            let got = req(&format!("{line}\r\nHost: x\r\n\r\n"));
            assert_eq!(got.is_ok(), ok, "{line}: {got:?}");
        }
    }

    #[test]
    fn framing_fields_go_upstream_as_parsed_not_as_sent() {
        let upstream = |text: &str| upstream(&req(text).unwrap().unwrap(), None);
        let text = upstream("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:  CHUNKED \r\n\r\n");
        assert!(
            text.contains("\r\nTransfer-Encoding: chunked\r\n"),
            "{text}"
        );
        assert_eq!(text.matches("ransfer-").count(), 1, "{text}");
        let text = upstream("POST / HTTP/1.1\r\nHost: x\r\ncontent-length: 007\r\n\r\n");
        assert!(text.contains("\r\nContent-Length: 7\r\n"), "{text}");
        assert!(!text.contains("007"), "{text}");
        let text = upstream("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
        assert!(text.contains("\r\nContent-Length: 0\r\n"), "{text}");
        let text = upstream("GET / HTTP/1.0\r\n\r\n");
        assert!(text.starts_with("GET / HTTP/1.1\r\nHost: \r\n"), "{text}");
        // An h2c upgrade is this hop's: the request goes as a plain one.
        let text = upstream(
            "POST / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\nContent-Length: 2\r\n\r\nhi",
        );
        assert!(!text.to_ascii_lowercase().contains("upgrade"), "{text}");
        assert!(
            !text.to_ascii_lowercase().contains("http2-settings"),
            "{text}"
        );
        assert!(text.ends_with("Connection: keep-alive\r\n\r\n"), "{text}");
        let ws =
            req("GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
                .unwrap()
                .unwrap();
        assert!(ws.is_upgrade());
    }

    #[test]
    fn rechunking_keeps_the_data_and_trailers_and_drops_the_rest() {
        let body = b"4;name=\"v\"\r\nWiki\r\n005\r\npedia\r\n0;last\r\nX-T: 1\r\n\r\nNEXT";
        let mut input = BytesMut::from(&body[..]);
        let mut out = BytesMut::new();
        assert!(Rechunk::default().take(&mut input, &mut out).unwrap());
        assert_eq!(&input[..], b"NEXT");
        assert_eq!(&out[..], b"9\r\nWikipedia\r\n0\r\nX-T: 1\r\n\r\n");
        // Byte by byte: a chunk per byte, the same data.
        let mut r = Rechunk::default();
        let mut out = BytesMut::new();
        let mut done = false;
        for b in body {
            let mut one = BytesMut::from(&[*b][..]);
            done = r.take(&mut one, &mut out).unwrap();
            if done {
                break;
            }
        }
        assert!(done);
        let mut data = BytesMut::new();
        let (used, end) = Chunked::default().decode(&out, &mut data).unwrap();
        assert_eq!((used, end, &data[..]), (out.len(), true, &b"Wikipedia"[..]));
        let long_ext = format!("1;{}\r\n", "e".repeat(MAX_CHUNK_LINE));
        assert_eq!(
            Chunked::default().feed(long_ext.as_bytes()),
            Err(H1Error::BadChunk("chunk size line too long"))
        );
        let big_trailers = format!("0\r\n{}", "X-A: b\r\n".repeat(MAX_TRAILER_BYTES / 8 + 1));
        assert_eq!(
            Chunked::default().feed(big_trailers.as_bytes()),
            Err(H1Error::BadChunk("trailer section too large"))
        );
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
        let text = upstream(&head, "10.0.0.9".parse().ok());
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
