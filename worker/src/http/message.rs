//! What one exchange moves between its two sides, whatever protocol each
//! side speaks: the request's facts ([`RequestInfo`]), body pieces
//! ([`Piece`]) and trailers ([`Trailers`]), an upstream's response head
//! ([`ResponseHead`]) and the length of its body ([`BodyLength`]), the
//! proxy's own answers ([`Local`]), and how an exchange ends ([`Done`]).
//!
//! A request head is an HTTP/1.1 [`Head`] for both client protocols: an
//! HTTP/2 session builds one from its HEADERS (routes match on it), with a
//! framing that says what its body will be — none (END_STREAM with the
//! HEADERS), a length (`content-length`), or chunked (a length nobody
//! knows yet, which an HTTP/1.1 upstream gets chunked).
//!
//! Heads and trailers stay in the form they arrived in and are translated
//! only where they cross protocols (`http::translate`), so that
//! HTTP/1.1 to HTTP/1.1 costs what it did before there was HTTP/2.

use bytes::Bytes;
use http::HeaderMap;

use crate::codec::http1::{Framing, Head};
use crate::http::connect::UpIo;

/// A piece of a message body, in order; the body's end is `None` from
/// whoever reads it.
#[derive(Debug)]
pub(crate) enum Piece {
    Data(Bytes),
    /// The trailers, last.
    Trailers(Trailers),
}

/// Trailer fields, in the form they came in (cloned for a shadow copy:
/// `http::shadow`).
#[derive(Debug, Clone)]
pub(crate) enum Trailers {
    /// HTTP/1.1: the trailer section's field lines, each with its CRLF,
    /// as the chunked parser validated them.
    H1(Bytes),
    /// HTTP/2: a decoded header block, checked against the head limits.
    H2(HeaderMap),
}

/// An upstream's response head.
#[derive(Debug)]
pub(crate) enum ResponseHead {
    /// From an HTTP/1.1 upstream: parsed and checked
    /// (`codec::http1::parse_response`), its framing decided.
    H1(Head),
    /// From an HTTP/2 upstream; `end`: END_STREAM came with the head.
    H2 {
        parts: http::response::Parts,
        end: bool,
    },
}

/// How long a response body is, as far as its head says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyLength {
    /// No body (a HEAD request's answer, 204, 304, END_STREAM).
    None,
    Known(u64),
    /// Streamed (chunked, or HTTP/2 without `content-length`).
    Unknown,
    /// Until the upstream closes the connection (HTTP/1.1 only).
    UntilClose,
}

impl ResponseHead {
    pub(crate) fn status(&self) -> u16 {
        match self {
            ResponseHead::H1(head) => head.status,
            ResponseHead::H2 { parts, .. } => parts.status.as_u16(),
        }
    }

    /// An interim response (1xx, but not 101), relayed where the client
    /// can take it and followed by another head.
    pub(crate) fn is_interim(&self) -> bool {
        let status = self.status();
        (100..200).contains(&status) && status != 101
    }

    /// The body's length; `head_request`: it answers a HEAD request.
    pub(crate) fn length(&self, head_request: bool) -> BodyLength {
        match self {
            ResponseHead::H1(head) => match head.framing {
                Framing::None => BodyLength::None,
                Framing::Length(n) => BodyLength::Known(n),
                Framing::Chunked => BodyLength::Unknown,
                Framing::Close => BodyLength::UntilClose,
            },
            ResponseHead::H2 { parts, end } => {
                let status = parts.status.as_u16();
                if head_request || status == 204 || status == 304 {
                    return BodyLength::None;
                }
                let length = parts
                    .headers
                    .get(http::header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok());
                match (length, end) {
                    (Some(n), _) => BodyLength::Known(n),
                    (None, true) => BodyLength::Known(0),
                    (None, false) => BodyLength::Unknown,
                }
            }
        }
    }
}

/// What the exchange needs to know of a request besides its head.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RequestInfo {
    /// `HEAD`: the answer has no body whatever it says.
    pub head_request: bool,
    /// A body follows the head.
    pub has_body: bool,
    /// How it is framed (HTTP/2: a length, or chunked when not known).
    pub framing: Framing,
    /// It asks to switch protocols (HTTP/1.1 only: WebSocket...).
    pub upgrade: bool,
    /// It waits for `100 Continue` before it sends its body.
    pub expects_continue: bool,
    /// It may be sent twice (RFC 9110 §9.2.2) — and it has no body, which
    /// could have been consumed: a retry is safe.
    pub retryable: bool,
}

impl RequestInfo {
    pub(crate) fn of(head: &Head) -> RequestInfo {
        let has_body = head.framing != Framing::None;
        let idempotent = matches!(
            head.method.as_str(),
            "GET" | "HEAD" | "OPTIONS" | "TRACE" | "DELETE" | "PUT"
        );
        let upgrade = head.is_upgrade();
        RequestInfo {
            head_request: head.method.eq_ignore_ascii_case("HEAD"),
            has_body,
            framing: head.framing,
            upgrade,
            expects_continue: head.expects_continue(),
            retryable: idempotent && !has_body && !upgrade,
        }
    }
}

/// An answer the proxy makes itself: a direct response, a redirect, a
/// 404, or an error in place of the upstream's answer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Local<'a> {
    pub status: u16,
    pub content_type: &'a str,
    pub location: Option<&'a str>,
    pub body: &'a [u8],
    /// Close the connection after it (HTTP/1.1): the request went (part
    /// way) upstream, so the connection's state is not to be trusted.
    pub close: bool,
    /// More header fields: a filter's local response's (checked as
    /// `filter::http` checks them: no framing, no CR/LF).
    pub extra: &'a [(String, Vec<u8>)],
}

impl<'a> Local<'a> {
    /// A plain-text error answer that closes the connection.
    pub(crate) fn error(status: u16, body: &'a [u8]) -> Local<'a> {
        Local {
            status,
            content_type: "text/plain",
            location: None,
            body,
            close: true,
            extra: &[],
        }
    }
}

/// How an exchange ended, for the client connection.
#[derive(Debug)]
pub(crate) enum Done {
    /// The connection goes on (HTTP/1.1: it is kept alive).
    KeepAlive,
    /// The connection closes after the response (HTTP/1.1).
    Close,
    /// Switched protocols (HTTP/1.1 to an HTTP/1.1 upstream): the
    /// connection becomes a tunnel to this upstream, starting with what it
    /// sent after its 101.
    Switched(UpIo, bytes::BytesMut),
}
