//! HTTP/1.1 ↔ HTTP/2 translation: heads and trailers, where a message
//! crosses from one protocol to the other. Bodies need none: both sides
//! move [`Piece`](crate::http::message::Piece)s, and the one chunked
//! writer (`codec::http1::write_chunk`) frames them for HTTP/1.1.
//!
//! What passes is decided by [`crate::http::transform`]; this module only
//! writes it in the other protocol's form. A field HTTP/2 cannot carry
//! (a name or value its `http` types refuse) is dropped.

use bytes::BytesMut;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use crate::codec::http1::{self, Framing, Head};
use crate::http::message::{BodyLength, Trailers};
use crate::http::transform::{self, Outgoing};

/// The authority an HTTP/2 request must carry when the client named none
/// (an HTTP/1.0 request without `Host`).
const NO_AUTHORITY: &str = "localhost";

/// The HTTP/2 request for `outgoing` (see [`transform`] for what it
/// carries): `:scheme` the client's, `:authority` the hop's, `:path` the
/// target in origin form (`/` for `*` and authority-form targets).
pub(crate) fn h2_request(outgoing: &Outgoing<'_>) -> Result<http::Request<()>, http::Error> {
    let head = outgoing.head;
    let hop = outgoing.hop();
    let authority = match hop.authority {
        "" => NO_AUTHORITY,
        a => a,
    };
    let target = head.origin_form();
    let path = if target.starts_with('/') {
        &target
    } else {
        "/"
    };
    let uri = http::Uri::builder()
        .scheme(outgoing.scheme())
        .authority(authority)
        .path_and_query(path)
        .build()?;
    let mut request = http::Request::builder()
        .method(head.method.as_bytes())
        .uri(uri)
        .body(())?;
    let headers = request.headers_mut();
    for (name, value) in outgoing.fields() {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value),
        ) {
            headers.append(n, v);
        }
    }
    if let Framing::Length(n) = head.framing {
        headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(n));
    }
    if outgoing.te_trailers() {
        headers.insert(http::header::TE, HeaderValue::from_static("trailers"));
    }
    if let Some(v) = hop.forwarded_for
        && let Ok(v) = HeaderValue::from_bytes(v)
    {
        headers.insert(HeaderName::from_static("x-forwarded-for"), v);
    }
    headers.insert(
        HeaderName::from_static("x-forwarded-proto"),
        HeaderValue::from_static(outgoing.scheme()),
    );
    Ok(request)
}

/// An HTTP/1.1 response head as an HTTP/2 one.
pub(crate) fn h2_response(head: &Head) -> http::Response<()> {
    let mut response = http::Response::new(());
    *response.status_mut() = StatusCode::from_u16(head.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let headers = response.headers_mut();
    for (name, value) in &head.headers {
        if !transform::response_field(head, name) {
            continue;
        }
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value),
        ) {
            headers.append(n, v);
        }
    }
    response
}

/// Writes an HTTP/2 response head as an HTTP/1.1 one: its framing from
/// `length` (`Content-Length`, or chunked when unknown), `Connection:
/// close` unless `keep_alive`.
pub(crate) fn write_h1_response(
    parts: &http::response::Parts,
    length: BodyLength,
    keep_alive: bool,
    out: &mut BytesMut,
) {
    use std::fmt::Write as _;
    let status = parts.status.as_u16();
    // Writing into a BytesMut cannot fail.
    let _ = write!(out, "HTTP/1.1 {status} {}\r\n", http1::reason(status));
    for (name, value) in &parts.headers {
        let name = name.as_str();
        // The length is written from `length`, but a HEAD's or a 304's
        // tells what the body would be.
        if name == "content-length" && length != BodyLength::None {
            continue;
        }
        if http1::HOP_BY_HOP.contains(&name) {
            continue;
        }
        field(out, name.as_bytes(), value.as_bytes());
    }
    match length {
        BodyLength::Known(n) => {
            let _ = write!(out, "Content-Length: {n}\r\n");
        }
        BodyLength::Unknown => field(out, b"Transfer-Encoding", b"chunked"),
        BodyLength::None | BodyLength::UntilClose => {}
    }
    if !keep_alive {
        field(out, b"Connection", b"close");
    }
    out.extend_from_slice(b"\r\n");
}

/// Trailers as an HTTP/2 header block: HTTP/1.1 field lines parsed, the
/// fields that may not be trailers dropped.
pub(crate) fn h2_trailers(trailers: Trailers) -> HeaderMap {
    let lines = match trailers {
        Trailers::H2(map) => return map,
        Trailers::H1(lines) => lines,
    };
    let mut map = HeaderMap::new();
    for line in lines.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        let Ok(name) = HeaderName::from_bytes(name) else {
            continue;
        };
        if !transform::trailer_field(name.as_str()) {
            continue;
        }
        if let Ok(value) = HeaderValue::from_bytes(value) {
            map.append(name, value);
        }
    }
    map
}

/// Trailers as HTTP/1.1 field lines, each with its CRLF, appended to
/// `out`.
pub(crate) fn write_h1_trailers(trailers: &Trailers, out: &mut Vec<u8>) {
    match trailers {
        Trailers::H1(lines) => out.extend_from_slice(lines),
        Trailers::H2(map) => {
            for (name, value) in map {
                if transform::trailer_field(name.as_str()) {
                    out.extend_from_slice(name.as_str().as_bytes());
                    out.extend_from_slice(b": ");
                    out.extend_from_slice(value.as_bytes());
                    out.extend_from_slice(b"\r\n");
                }
            }
        }
    }
}

fn field(out: &mut BytesMut, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn head(text: &str) -> Head {
        let limits = http1::Limits {
            max_header_bytes: 4096,
            max_headers: 32,
        };
        http1::parse_request(&mut BytesMut::from(text.as_bytes()), limits)
            .unwrap()
            .unwrap()
    }

    #[test]
    fn an_http11_request_becomes_an_http2_one_with_the_same_transforms() {
        let h = head(
            "POST /p?q HTTP/1.1\r\nHost: api\r\nContent-Length: 5\r\nConnection: keep-alive\r\nTE: trailers\r\nX-Forwarded-For: 1.1.1.1\r\nAccept: */*\r\n\r\n",
        );
        let out = Outgoing::new(&h, "10.0.0.9".parse().ok(), "http");
        let request = h2_request(&out).unwrap();
        assert_eq!(request.uri(), "http://api/p?q");
        let headers = request.headers();
        assert_eq!(headers["content-length"], "5");
        assert_eq!(headers["te"], "trailers");
        assert_eq!(headers["x-forwarded-for"], "1.1.1.1, 10.0.0.9");
        assert_eq!(headers["x-forwarded-proto"], "http");
        assert_eq!(headers["accept"], "*/*");
        assert!(headers.get("host").is_none() && headers.get("connection").is_none());
        let bare = head("OPTIONS * HTTP/1.0\r\n\r\n");
        let request = h2_request(&Outgoing::new(&bare, None, "https")).unwrap();
        assert_eq!(request.uri(), "https://localhost/");
    }

    #[test]
    fn an_http2_response_head_becomes_an_http11_one() {
        let mut response = http::Response::new(());
        *response.status_mut() = StatusCode::CREATED;
        response
            .headers_mut()
            .insert("content-length", HeaderValue::from_static("9"));
        response
            .headers_mut()
            .insert("x-a", HeaderValue::from_static("b"));
        let (parts, ()) = response.into_parts();
        let mut out = BytesMut::new();
        write_h1_response(&parts, BodyLength::Known(9), false, &mut out);
        assert_eq!(
            &out[..],
            b"HTTP/1.1 201 Created\r\nx-a: b\r\nContent-Length: 9\r\nConnection: close\r\n\r\n"
        );
        out.clear();
        write_h1_response(&parts, BodyLength::Unknown, true, &mut out);
        assert!(out.ends_with(b"x-a: b\r\nTransfer-Encoding: chunked\r\n\r\n"));
    }

    #[test]
    fn trailers_cross_both_ways_without_what_may_not_be_a_trailer() {
        let lines = Bytes::from_static(b"grpc-status: 0\r\nContent-Length: 3\r\nX-Sum:  ab \r\n");
        let map = h2_trailers(Trailers::H1(lines));
        assert_eq!(map.len(), 2);
        assert_eq!(map["grpc-status"], "0");
        assert_eq!(map["x-sum"], "ab");
        let mut out = Vec::new();
        write_h1_trailers(&Trailers::H2(map), &mut out);
        assert_eq!(out, b"grpc-status: 0\r\nx-sum: ab\r\n");
    }
}
