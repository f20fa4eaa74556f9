//! The head limits (`max_headers`, `max_header_bytes`) on HTTP/2, where
//! HTTP/1.1 applies them while it parses ([`http1`]).
//!
//! # One measure for both protocols
//!
//! HTTP/1.1 measures a request head as the bytes on the wire: the request
//! line and one `name: value` line per field. HTTP/2 sends no such bytes
//! (HPACK compresses them), so baton measures the *decoded* HTTP/2 head as
//! the HTTP/1.1 head it stands for: `METHOD SP target SP HTTP/1.1 CRLF`,
//! a `host: authority CRLF` line for `:authority` (unless a `host` field
//! is there too), `name: value CRLF` per field, and the final CRLF; the
//! fields counted are the regular fields plus that host line. A request is
//! therefore refused over HTTP/2 exactly when it would be over HTTP/1.1,
//! and answered the same way: 431, counted in
//! `baton_http_requests_rejected_total{reason="header_too_large"|"too_many_headers"}`
//! (and `baton_http_bad_requests_total`), never forwarded.
//!
//! Trailers (HTTP/2 has them as a second header block) are held to the
//! same limits, measured as their field lines; responses from `http2`
//! clusters to [`http1::RESPONSE_LIMITS`], the bound HTTP/1.1 responses have
//! (a response over it is answered 502, as over HTTP/1.1).
//!
//! # Who enforces what, in order
//!
//! 1. **h2, while it decodes HPACK.** RFC 9113 §6.5.2 measures a header
//!    list as Σ (name + value + 32) over its fields, pseudo-header fields
//!    included. baton sets h2's `max_header_list_size` — advertised in
//!    SETTINGS_MAX_HEADER_LIST_SIZE and enforced by h2 — to
//!    [`header_list_bound`]: `max_header_bytes + 32 × (max_headers + 5)`,
//!    at least the RFC size of the largest head HTTP/1.1 accepts (a field
//!    costs 28 bytes more in the RFC's measure than as an HTTP/1.1 line,
//!    and the pseudo-header fields of an `http`/`https` request about 140
//!    more than its request line and host line), so that h2 does not
//!    refuse what baton would take. h2
//!    0.4 does not decode a block whole before it judges it: it adds up
//!    the size field by field and, once the bound is reached, keeps
//!    decoding (the HPACK table is connection state) but stores no more
//!    fields, so memory stays within the bound. Then:
//!    * the block decodes to over the bound: h2 answers the stream 431
//!      itself (HEADERS with END_STREAM), resets it, and never hands it
//!      to baton;
//!    * it decodes to over 4× the bound, needs more CONTINUATION frames
//!      than the bound does (+25 %, at least 5), or its CONTINUATION
//!      bytes grow past the bound once it is over: h2 ends the connection
//!      with GOAWAY (ENHANCE_YOUR_CALM `header_list_way_too_large` or
//!      `too_many_continuations`, or COMPRESSION_ERROR) — with the
//!      default limits a 16 MB head is refused at its sixth CONTINUATION
//!      frame, about 100 KB in.
//!
//!    Trailers over the bound are cut short by h2 (the fields past it are
//!    dropped, without an error): baton cannot see that happen.
//! 2. **baton, on each request h2 hands over**, before it copies anything
//!    into its own structures: [`request_head`] checked against the
//!    listener's limits, 431 as above.
//!
//! # Counting what h2 refuses itself
//!
//! h2 has no hook for what it refuses, and the error it returns when it
//! ends a connection does not say why (its GOAWAY's debug data stays on
//! the wire). So [`Watched`] wraps the connection's bytes and reads the
//! frame headers going each way (9 bytes each; of payloads, only a
//! GOAWAY's first bytes):
//! * a stream the client opened with HEADERS that baton never accepted,
//!   and that the server answers with HEADERS, was answered by h2 — the
//!   431 — since baton answers only the streams it accepted;
//! * a GOAWAY the server sends with COMPRESSION_ERROR, or ENHANCE_YOUR_CALM
//!   and the debug data of h2's two header-block guards, is a connection
//!   h2 ended for a header block.
//!
//! Both count as `header_too_large`.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderMap, Method, StatusCode, Uri};
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::codec::http1::{self, H1Error, Limits};

/// HPACK's per-field overhead in the RFC 9113 §6.5.2 measure.
const FIELD_OVERHEAD: usize = 32;

/// Pseudo-header fields a request can carry (`:method`, `:scheme`,
/// `:path`, `:authority`, `:protocol`), each costing the RFC's overhead.
const PSEUDO_FIELDS: usize = 5;

/// The value baton gives h2's `max_header_list_size` for a listener: the
/// RFC 9113 size of the largest request head `limits` let through over
/// HTTP/1.1 (see the module docs).
pub(crate) fn header_list_bound(limits: Limits) -> u32 {
    let bound = limits
        .max_header_bytes
        .saturating_add(FIELD_OVERHEAD.saturating_mul(limits.max_headers + PSEUDO_FIELDS));
    u32::try_from(bound).unwrap_or(u32::MAX)
}

/// The same for responses from `http2` clusters ([`http1::RESPONSE_LIMITS`];
/// a response has one pseudo-header field, `:status`).
pub(crate) fn response_list_bound() -> u32 {
    let limits = http1::RESPONSE_LIMITS;
    let bound = limits.max_header_bytes + FIELD_OVERHEAD * (limits.max_headers + 1);
    u32::try_from(bound).unwrap_or(u32::MAX)
}

/// A head's size as HTTP/1.1 would have it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HeadSize {
    /// Header fields (the request line and pseudo-header fields excluded).
    pub fields: usize,
    /// Bytes, start line and final CRLF included.
    pub bytes: usize,
}

impl HeadSize {
    /// Whether the head is within `limits`; the error is the one HTTP/1.1
    /// gives, too many fields first (as httparse finds them first).
    pub(crate) fn check(self, limits: Limits) -> Result<(), H1Error> {
        if self.fields > limits.max_headers {
            return Err(H1Error::TooManyHeaders(limits.max_headers));
        }
        if self.bytes > limits.max_header_bytes {
            return Err(H1Error::HeadTooLarge(limits.max_header_bytes));
        }
        Ok(())
    }
}

/// `name: value CRLF` per field.
fn field_lines(headers: &HeaderMap) -> usize {
    headers
        .iter()
        .map(|(name, value)| name.as_str().len() + 2 + value.len() + 2)
        .sum()
}

/// An HTTP/2 request head measured as HTTP/1.1 (see the module docs).
pub(crate) fn request_head(method: &Method, uri: &Uri, headers: &HeaderMap) -> HeadSize {
    let target = match uri.path_and_query() {
        Some(p) => p.as_str().len(),
        // CONNECT: authority-form.
        None => uri.authority().map_or(1, |a| a.as_str().len()),
    };
    let mut fields = headers.len();
    // `METHOD SP target SP HTTP/1.1 CRLF`, the final CRLF.
    let mut bytes = method.as_str().len() + 1 + target + 1 + 8 + 2 + 2;
    if let Some(authority) = uri.authority()
        && !headers.contains_key(http::header::HOST)
    {
        fields += 1;
        bytes += "host: ".len() + authority.as_str().len() + 2;
    }
    HeadSize {
        fields,
        bytes: bytes + field_lines(headers),
    }
}

/// An HTTP/2 response head measured as HTTP/1.1: `HTTP/1.1 SSS Reason
/// CRLF`, the fields, the final CRLF.
pub(crate) fn response_head(status: StatusCode, headers: &HeaderMap) -> HeadSize {
    let line = 8 + 1 + 3 + 1 + http1::reason(status.as_u16()).len() + 2;
    HeadSize {
        fields: headers.len(),
        bytes: line + field_lines(headers) + 2,
    }
}

/// A trailer section measured as HTTP/1.1 field lines.
pub(crate) fn trailers(headers: &HeaderMap) -> HeadSize {
    HeadSize {
        fields: headers.len(),
        bytes: field_lines(headers),
    }
}

// === impl Watched ===

/// The client connection preface, which comes before the first frame.
const PREFACE_LEN: usize = 24;

/// Frame types this looks at (RFC 9113 §6).
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const GOAWAY: u8 = 0x7;

/// Error codes (RFC 9113 §7) h2 ends a connection with for a header
/// block, and the debug data it sends with the second.
const COMPRESSION_ERROR: u32 = 0x9;
const ENHANCE_YOUR_CALM: u32 = 0xb;
const HEADER_BLOCK_GUARDS: [&[u8]; 2] = [b"header_list_way_too_large", b"too_many_continuations"];

/// A GOAWAY's bytes read: last stream id, error code, and enough debug
/// data to tell h2's guards.
const GOAWAY_READ: usize = 8 + 32;

/// What h2 refused on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// A request answered 431.
    Stream,
    /// The connection, ended with GOAWAY.
    Connection,
}

/// Streams remembered as opened and not accepted; past it the oldest are
/// forgotten (h2 allows far fewer streams open at once).
const TRACKED_STREAMS: usize = 1024;

/// A client connection's bytes, with the frame headers each way read to
/// count the streams h2 answers 431 itself (see the module docs).
pub(crate) struct Watched<S> {
    io: S,
    inbound: FrameScan,
    outbound: FrameScan,
    book: Arc<Mutex<Book>>,
    /// Called once per refusal of h2's own.
    on_refused: Arc<dyn Fn(Refusal) + Send + Sync>,
}

impl<S> std::fmt::Debug for Watched<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watched").finish_non_exhaustive()
    }
}

/// The handle the connection keeps to tell [`Watched`] which streams it
/// accepted.
#[derive(Debug, Clone)]
pub(crate) struct Accepted(Arc<Mutex<Book>>);

impl Accepted {
    /// Baton took stream `id` from h2.
    pub(crate) fn stream(&self, id: u32) {
        self.0.lock().accepted(id);
    }
}

impl<S> Watched<S> {
    pub(crate) fn new(
        io: S,
        on_refused: Arc<dyn Fn(Refusal) + Send + Sync>,
    ) -> (Watched<S>, Accepted) {
        let book = Arc::new(Mutex::new(Book::default()));
        let watched = Watched {
            io,
            inbound: FrameScan::after(PREFACE_LEN),
            outbound: FrameScan::after(0),
            book: Arc::clone(&book),
            on_refused,
        };
        (watched, Accepted(book))
    }

    fn saw_inbound(&mut self, bytes: &[u8]) {
        let book = &self.book;
        self.inbound.feed(bytes, |frame| match frame {
            Frame::Head(HEADERS, stream) => book.lock().opened(stream),
            Frame::Head(RST_STREAM, stream) => book.lock().closed(stream),
            _ => {}
        });
    }

    fn saw_outbound(&mut self, bytes: &[u8]) {
        let (book, on_refused) = (&self.book, &self.on_refused);
        self.outbound.feed(bytes, |frame| match frame {
            Frame::Head(HEADERS, stream) if book.lock().answered_unaccepted(stream) => {
                on_refused(Refusal::Stream)
            }
            Frame::Head(RST_STREAM, stream) => book.lock().closed(stream),
            Frame::GoAway { code, debug } => {
                let guard = HEADER_BLOCK_GUARDS.iter().any(|g| debug.starts_with(g));
                if code == COMPRESSION_ERROR || (code == ENHANCE_YOUR_CALM && guard) {
                    on_refused(Refusal::Connection);
                }
            }
            _ => {}
        });
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            let this = &mut *self;
            this.saw_inbound(&buf.filled()[before..]);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write(cx, data);
        if let Poll::Ready(Ok(n)) = polled {
            self.saw_outbound(&data[..n]);
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = polled {
            let mut left = n;
            for buf in bufs {
                if left == 0 {
                    break;
                }
                let take = left.min(buf.len());
                self.saw_outbound(&buf[..take]);
                left -= take;
            }
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// A frame seen by [`FrameScan`].
#[derive(Debug, PartialEq, Eq)]
enum Frame<'a> {
    /// A frame header: type, stream id.
    Head(u8, u32),
    /// A GOAWAY's error code and the start of its debug data, once read.
    GoAway { code: u32, debug: &'a [u8] },
}

/// Finds the frame headers in one direction of a connection's bytes,
/// however they are split, skipping payloads unread but a GOAWAY's first
/// bytes.
#[derive(Debug)]
struct FrameScan {
    /// Bytes still to skip before the first frame (the preface).
    skip: usize,
    head: [u8; 9],
    have: usize,
    /// Payload bytes of the current frame still to pass.
    payload: usize,
    /// In a GOAWAY: its first bytes.
    goaway: Option<Vec<u8>>,
}

impl FrameScan {
    fn after(skip: usize) -> FrameScan {
        FrameScan {
            skip,
            head: [0; 9],
            have: 0,
            payload: 0,
            goaway: None,
        }
    }

    /// Calls `frame` for each frame header completed in `bytes`, and for
    /// each GOAWAY once its payload has passed.
    fn feed(&mut self, mut bytes: &[u8], mut frame: impl FnMut(Frame<'_>)) {
        while !bytes.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(bytes.len());
                self.skip -= n;
                bytes = &bytes[n..];
                continue;
            }
            if self.payload > 0 {
                let n = self.payload.min(bytes.len());
                if let Some(goaway) = &mut self.goaway {
                    let keep = (GOAWAY_READ - goaway.len()).min(n);
                    goaway.extend_from_slice(&bytes[..keep]);
                }
                self.payload -= n;
                bytes = &bytes[n..];
                if self.payload == 0 {
                    self.goaway_done(&mut frame);
                }
                continue;
            }
            let n = (9 - self.have).min(bytes.len());
            self.head[self.have..self.have + n].copy_from_slice(&bytes[..n]);
            self.have += n;
            bytes = &bytes[n..];
            if self.have == 9 {
                let h = self.head;
                self.have = 0;
                self.payload = u32::from_be_bytes([0, h[0], h[1], h[2]]) as usize;
                let stream = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff;
                frame(Frame::Head(h[3], stream));
                if h[3] == GOAWAY {
                    self.goaway = Some(Vec::with_capacity(GOAWAY_READ));
                    if self.payload == 0 {
                        self.goaway_done(&mut frame);
                    }
                }
            }
        }
    }

    fn goaway_done(&mut self, frame: &mut impl FnMut(Frame<'_>)) {
        if let Some(read) = self.goaway.take()
            && read.len() >= 8
        {
            let code = u32::from_be_bytes([read[4], read[5], read[6], read[7]]);
            frame(Frame::GoAway {
                code,
                debug: &read[8..],
            });
        }
    }
}

/// Which client streams are open and not (yet) accepted by baton.
#[derive(Debug, Default)]
struct Book {
    /// The highest stream id a client HEADERS frame opened.
    last_opened: u32,
    /// Opened, not accepted yet: increasing ids.
    waiting: VecDeque<u32>,
    /// Passed over: a later stream was accepted first, so h2 will never
    /// hand these over (it hands streams over in order).
    passed: VecDeque<u32>,
}

impl Book {
    /// A client HEADERS frame on `id`: a new stream when its id is a new
    /// client (odd) one; else trailers, or an error h2 deals with.
    fn opened(&mut self, id: u32) {
        if id % 2 == 1 && id > self.last_opened {
            self.last_opened = id;
            push_bounded(&mut self.waiting, id);
        }
    }

    fn accepted(&mut self, id: u32) {
        while let Some(&first) = self.waiting.front() {
            if first > id {
                break;
            }
            self.waiting.pop_front();
            if first == id {
                break;
            }
            push_bounded(&mut self.passed, first);
        }
    }

    /// A RST_STREAM either way: the stream is done.
    fn closed(&mut self, id: u32) {
        self.waiting.retain(|s| *s != id);
        self.passed.retain(|s| *s != id);
    }

    /// The server sent HEADERS on `id`: whether that answered a stream
    /// baton never accepted.
    fn answered_unaccepted(&mut self, id: u32) -> bool {
        let before = self.waiting.len() + self.passed.len();
        self.closed(id);
        self.waiting.len() + self.passed.len() < before
    }
}

fn push_bounded(queue: &mut VecDeque<u32>, id: u32) {
    if queue.len() == TRACKED_STREAMS {
        queue.pop_front();
    }
    queue.push_back(id);
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const LIMITS: Limits = Limits {
        max_header_bytes: 4096,
        max_headers: 16,
    };

    fn headers(fields: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in fields {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                http::HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    /// The measure is the one HTTP/1.1 parsing applies to the same
    /// request: the length httparse finds, and its field count.
    #[test]
    fn a_request_measures_as_its_http11_head() {
        /// Method, path, `:authority`, fields.
        type Case<'a> = (&'a str, &'a str, Option<&'a str>, &'a [(&'a str, &'a str)]);
        let cases: &[Case] = &[
            ("GET", "/", Some("example.com"), &[]),
            (
                "POST",
                "/upload?x=1",
                Some("a.example:8080"),
                &[
                    ("content-type", "text/plain"),
                    ("x-many", "a"),
                    ("x-many", "b"),
                ],
            ),
            ("GET", "/only-host", None, &[("host", "h.example")]),
            (
                "GET",
                "/both",
                Some("a.example"),
                &[("host", "a.example"), ("x", "")],
            ),
        ];
        for (method, path, authority, fields) in cases {
            let uri: Uri = match authority {
                Some(a) => format!("http://{a}{path}").parse().unwrap(),
                None => path.parse().unwrap(),
            };
            let map = headers(fields);
            let size = request_head(&method.parse().unwrap(), &uri, &map);
            let mut text = format!("{method} {path} HTTP/1.1\r\n");
            if let Some(a) = authority
                && !map.contains_key("host")
            {
                text.push_str(&format!("host: {a}\r\n"));
            }
            for (n, v) in fields.iter() {
                text.push_str(&format!("{n}: {v}\r\n"));
            }
            text.push_str("\r\n");
            let mut buf = BytesMut::from(text.as_bytes());
            let head = http1::parse_request(
                &mut buf,
                Limits {
                    max_header_bytes: 1 << 20,
                    max_headers: 64,
                },
            )
            .unwrap()
            .unwrap();
            assert_eq!(size.bytes, text.len(), "{text:?}");
            assert_eq!(size.fields, head.headers.len(), "{text:?}");
        }
    }

    #[test]
    fn the_checks_refuse_as_http11_does() {
        let many: Vec<(String, String)> = (0..17).map(|i| (format!("x-{i}"), "v".into())).collect();
        let many: Vec<(&str, &str)> = many.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        let uri: Uri = "http://h/".parse().unwrap();
        // 16 fields + host: one too many.
        let size = request_head(&Method::GET, &uri, &headers(&many[..16]));
        assert_eq!(size.check(LIMITS), Err(H1Error::TooManyHeaders(16)));
        let size = request_head(&Method::GET, &uri, &headers(&many[..15]));
        assert_eq!(size.check(LIMITS), Ok(()));
        let big = "v".repeat(4096);
        let size = request_head(&Method::GET, &uri, &headers(&[("x-big", &big)]));
        assert_eq!(size.check(LIMITS), Err(H1Error::HeadTooLarge(4096)));
        // Exactly at the limit passes, one byte over does not.
        let fixed = request_head(&Method::GET, &uri, &headers(&[("x-big", "")])).bytes;
        let fits = "v".repeat(4096 - fixed);
        let size = request_head(&Method::GET, &uri, &headers(&[("x-big", &fits)]));
        assert_eq!((size.bytes, size.check(LIMITS)), (4096, Ok(())));
        let over = format!("{fits}v");
        let size = request_head(&Method::GET, &uri, &headers(&[("x-big", &over)]));
        assert!(size.check(LIMITS).is_err());
    }

    /// Whatever HTTP/1.1 accepts fits h2's bound in the RFC's measure,
    /// so h2 never refuses first what baton would take.
    #[test]
    fn the_bound_covers_every_head_http11_accepts() {
        let uri: Uri = "https://a-long-authority.example:8443/p?q".parse().unwrap();
        let rfc = |method: &Method, uri: &Uri, map: &HeaderMap| {
            let pseudo = [
                (":method".len(), method.as_str().len()),
                (":scheme".len(), uri.scheme_str().unwrap_or("").len()),
                (
                    ":path".len(),
                    uri.path_and_query().map_or(0, |p| p.as_str().len()),
                ),
                (
                    ":authority".len(),
                    uri.authority().map_or(0, |a| a.as_str().len()),
                ),
            ];
            pseudo.iter().map(|(n, v)| n + v + 32).sum::<usize>()
                + map
                    .iter()
                    .map(|(n, v)| n.as_str().len() + v.len() + 32)
                    .sum::<usize>()
        };
        // The most fields, empty values: the RFC's overhead at its worst.
        let names: Vec<String> = (0..15).map(|i| format!("x{i}")).collect();
        let fields: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "")).collect();
        let map = headers(&fields);
        let size = request_head(&Method::GET, &uri, &map);
        assert_eq!(size.check(LIMITS), Ok(()));
        assert!(rfc(&Method::GET, &uri, &map) < header_list_bound(LIMITS) as usize);
        // The most bytes.
        let fixed = request_head(&Method::GET, &uri, &headers(&[("x", "")])).bytes;
        let value = "v".repeat(4096 - fixed);
        let map = headers(&[("x", &value)]);
        assert_eq!(request_head(&Method::GET, &uri, &map).check(LIMITS), Ok(()));
        assert!(rfc(&Method::GET, &uri, &map) < header_list_bound(LIMITS) as usize);
    }

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = (payload.len() as u32).to_be_bytes()[1..].to_vec();
        out.extend_from_slice(&[kind, flags]);
        out.extend_from_slice(&stream.to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn frame_headers_are_found_however_the_bytes_are_split() {
        let mut bytes = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        bytes.extend(frame(4, 0, 0, &[0; 6]));
        bytes.extend(frame(1, 5, 1, &[0x82; 20]));
        bytes.extend(frame(0, 1, 1, &[9; 300]));
        bytes.extend(frame(3, 0, 3, &[0, 0, 0, 8]));
        let mut goaway = vec![0, 0, 0, 1, 0, 0, 0, 0xb];
        goaway.extend_from_slice(b"too_many_continuations and more than is read");
        bytes.extend(frame(7, 0, 0, &goaway));
        bytes.extend(frame(7, 0, 0, &[0, 0, 0, 1, 0, 0, 0, 0]));
        let debug = &goaway[8..GOAWAY_READ];
        let want: Vec<String> = [
            Frame::Head(4, 0),
            Frame::Head(1, 1),
            Frame::Head(0, 1),
            Frame::Head(3, 3),
            Frame::Head(7, 0),
            Frame::GoAway { code: 0xb, debug },
            Frame::Head(7, 0),
            Frame::GoAway {
                code: 0,
                debug: &[],
            },
        ]
        .iter()
        .map(|f| format!("{f:?}"))
        .collect();
        for piece in [1, 2, 5, 9, 10, 23, 24, 25, bytes.len()] {
            let mut scan = FrameScan::after(PREFACE_LEN);
            let mut seen = Vec::new();
            for chunk in bytes.chunks(piece) {
                scan.feed(chunk, |frame| seen.push(format!("{frame:?}")));
            }
            assert_eq!(seen, want, "in pieces of {piece}");
        }
    }

    #[test]
    fn the_book_tells_streams_h2_answered_from_those_baton_accepted() {
        let mut book = Book::default();
        for id in [1, 3, 5, 7] {
            book.opened(id);
        }
        // Trailers on 3, an even id: not new streams.
        book.opened(3);
        book.opened(8);
        // h2 answered 1 before baton accepted anything.
        assert!(book.answered_unaccepted(1));
        // Baton accepted 5: 3 was passed over (refused by h2).
        book.accepted(5);
        assert!(!book.answered_unaccepted(5), "baton's own answer");
        assert!(
            book.answered_unaccepted(3),
            "h2's answer after a later accept"
        );
        assert!(!book.answered_unaccepted(3), "counted once");
        // 7 reset by the client before baton took it.
        book.closed(7);
        assert!(!book.answered_unaccepted(7));
        assert!(book.waiting.is_empty() && book.passed.is_empty());
    }

    /// h2 itself, in memory: a raw client's header blocks over the bound
    /// are answered 431 by h2 or end the connection, each seen by
    /// [`Watched`] once; a block within it reaches the server.
    #[tokio::test]
    async fn h2s_own_refusals_are_seen() {
        const BOUND: u32 = 8 * 1024;
        let refused = Arc::new(Mutex::new(Vec::new()));
        let (client, server) = tokio::io::duplex(1 << 20);
        let seen = Arc::clone(&refused);
        let (io, accepted) = Watched::new(server, Arc::new(move |r| seen.lock().push(r)));
        let server = tokio::spawn(async move {
            let mut conn = h2::server::Builder::new()
                .max_header_list_size(BOUND)
                .handshake::<_, bytes::Bytes>(io)
                .await
                .unwrap();
            let mut paths = Vec::new();
            loop {
                match conn.accept().await {
                    Some(Ok((request, mut respond))) => {
                        accepted.stream(respond.stream_id().as_u32());
                        paths.push(request.uri().path().to_string());
                        let response = http::Response::builder().status(200).body(()).unwrap();
                        respond.send_response(response, true).unwrap();
                    }
                    Some(Err(e)) => return (paths, Some(e)),
                    None => return (paths, None),
                }
            }
        });
        let (mut read, mut write) = tokio::io::split(client);
        let literal = |name: &str, value: usize| {
            // Literal without indexing, new name; lengths as HPACK integers.
            let mut out = vec![0u8];
            hpack_int(&mut out, name.len());
            out.extend_from_slice(name.as_bytes());
            hpack_int(&mut out, value);
            out.extend(std::iter::repeat_n(b'v', value));
            out
        };
        let request = |path: &str| {
            // :method GET, :scheme http, :path (literal, indexed name 4).
            let mut block = vec![0x82, 0x86, 0x04, path.len() as u8];
            block.extend_from_slice(path.as_bytes());
            block
        };
        let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        out.extend(frame(4, 0, 0, b""));
        // Stream 1: over the bound in one frame: h2's 431.
        let mut block = request("/big");
        block.extend(literal("x-big", BOUND as usize));
        out.extend(frame(1, 0x5, 1, &block));
        // Stream 3: fine.
        out.extend(frame(1, 0x5, 3, &request("/ok")));
        write.write_all(&out).await.unwrap();
        let mut statuses = Vec::new();
        let mut buf = Vec::new();
        while statuses.len() < 2 {
            let mut chunk = [0u8; 4096];
            let n = read.read(&mut chunk).await.unwrap();
            assert!(n > 0);
            buf.extend_from_slice(&chunk[..n]);
            while buf.len() >= 9 {
                let len = u32::from_be_bytes([0, buf[0], buf[1], buf[2]]) as usize;
                if buf.len() < 9 + len {
                    break;
                }
                let stream = u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]);
                if buf[3] == HEADERS {
                    statuses.push((stream, buf[9..9 + len].to_vec()));
                }
                buf.drain(..9 + len);
            }
        }
        statuses.sort();
        // 0x88 is `:status 200` (static index 8); h2's 431 is a literal.
        assert_eq!(statuses[1], (3, vec![0x88]));
        assert_ne!(statuses[0].1, vec![0x88]);
        assert_eq!(*refused.lock(), [Refusal::Stream]);

        // Stream 5: a block of many CONTINUATION frames: GOAWAY.
        let mut out = frame(1, 0x1, 5, &request("/huge"));
        for _ in 0..16 {
            out.extend(frame(9, 0, 5, &literal("x-more", 1000)));
        }
        let _ = write.write_all(&out).await;
        let (paths, error) = server.await.unwrap();
        assert_eq!(paths, ["/ok"]);
        let error = error.expect("the connection ended with an error");
        assert_eq!(
            error.reason(),
            Some(h2::Reason::ENHANCE_YOUR_CALM),
            "{error}"
        );
        assert_eq!(*refused.lock(), [Refusal::Stream, Refusal::Connection]);
    }

    fn hpack_int(out: &mut Vec<u8>, mut v: usize) {
        // 7-bit prefix, its flag bit clear (no Huffman).
        if v < 127 {
            out.push(v as u8);
            return;
        }
        out.push(127);
        v -= 127;
        while v >= 128 {
            out.push((v % 128) as u8 | 0x80);
            v /= 128;
        }
        out.push(v as u8);
    }
}
