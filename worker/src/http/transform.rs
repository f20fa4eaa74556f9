//! The exchange's transforms: what a request carries to the next hop and
//! what a response carries back, decided here once for both client
//! protocols and both cluster protocols, and written by each protocol's
//! serialiser (`codec::http1::write_request`, `http::translate`).
//!
//! # Request (client → upstream)
//!
//! * **Hop-by-hop fields are dropped**: those of
//!   [`http1::HOP_BY_HOP`] and those the `Connection` header names
//!   (RFC 9110 §7.6.1); an HTTP/2 upstream gets `te: trailers` back when
//!   the client accepts trailers (RFC 9113 §8.2.2; gRPC needs it).
//! * **Framing fields are written, never copied**: `Content-Length` or
//!   `Transfer-Encoding: chunked` from the framing baton parsed (HTTP/1.1)
//!   or h2 checked (HTTP/2) to an HTTP/1.1 upstream; DATA frames, and the
//!   `content-length` when known, to an HTTP/2 one.
//! * **`Host` / `:authority`**: the absolute-form target's authority, else
//!   the client's `Host` (HTTP/2: `:authority`), else empty — an HTTP/2
//!   upstream, which needs one, then gets `localhost`.
//! * **`X-Forwarded-For`**: every value the client sent, joined in order,
//!   the client's address appended; **`X-Forwarded-Proto`**: the scheme
//!   the client spoke to the listener (`http` or `https`); what the
//!   client sent of it is replaced.
//!
//! # Response (upstream → client)
//!
//! * Hop-by-hop fields are dropped ([`response_field`]); an HTTP/1.1
//!   client gets its framing written from the response's (a length,
//!   chunked when it is not known, or until close) and `Connection: close`
//!   when its connection will close.
//!
//! # Trailers
//!
//! Trailers pass as they came between peers of one protocol; crossing
//! protocols, the fields that may not be trailers are dropped
//! ([`trailer_field`], RFC 9110 §6.5.1): framing, routing, authentication
//! and hop-by-hop fields.

use std::net::IpAddr;

use crate::codec::http1::{self, Head, Hop};

/// A request's next hop, decided once per request: the head, and what the
/// proxy writes in place of the fields it rewrites.
#[derive(Debug)]
pub(crate) struct Outgoing<'a> {
    pub head: &'a Head,
    forwarded_for: Option<Vec<u8>>,
    proto: &'static str,
}

impl<'a> Outgoing<'a> {
    /// `client`: the address `X-Forwarded-For` gets; `proto`: the
    /// listener's scheme, for `X-Forwarded-Proto`.
    pub(crate) fn new(head: &'a Head, client: Option<IpAddr>, proto: &'static str) -> Outgoing<'a> {
        Outgoing {
            head,
            forwarded_for: http1::forwarded_for(head, client),
            proto,
        }
    }

    /// What HTTP/1.1's serialiser writes in place of the rewritten fields.
    pub(crate) fn hop(&self) -> Hop<'_> {
        Hop {
            authority: Hop::authority(self.head),
            forwarded_for: self.forwarded_for.as_deref(),
            proto: self.proto,
        }
    }

    /// The fields that go to the next hop as they came.
    pub(crate) fn fields(&self) -> impl Iterator<Item = (&'a str, &'a [u8])> {
        let head = self.head;
        head.headers
            .iter()
            .filter(move |(name, _)| http1::forwarded_field(head, name))
            .map(|(name, value)| (name.as_str(), value.as_slice()))
    }

    /// The client accepts trailers (`TE: trailers`): an HTTP/2 upstream is
    /// told so.
    pub(crate) fn te_trailers(&self) -> bool {
        self.head.has_token("te", "trailers")
    }

    /// The scheme the client spoke.
    pub(crate) fn scheme(&self) -> &'static str {
        self.proto
    }
}

/// Whether a field of an HTTP/1.1 response goes to the client as it came
/// (an HTTP/2 response has no `Connection` field: h2 refuses one).
pub(crate) fn response_field(head: &Head, name: &str) -> bool {
    !http1::hop_by_hop(head, name)
}

/// Whether a trailer field may cross protocols (RFC 9110 §6.5.1: not the
/// fields that frame, route, authenticate or control the message).
pub(crate) fn trailer_field(name: &str) -> bool {
    const NOT_TRAILERS: [&str; 8] = [
        "content-length",
        "content-type",
        "content-encoding",
        "content-range",
        "host",
        "authorization",
        "set-cookie",
        "cookie",
    ];
    !NOT_TRAILERS.iter().any(|n| name.eq_ignore_ascii_case(n))
        && !http1::HOP_BY_HOP
            .iter()
            .any(|n| name.eq_ignore_ascii_case(n))
        && !name.starts_with(':')
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

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
    fn forwarded_for_joins_every_value_then_the_client() {
        let h = head(
            "GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 1.1.1.1\r\nx-forwarded-for: 2.2.2.2, 3.3.3.3\r\n\r\n",
        );
        let out = Outgoing::new(&h, "10.0.0.9".parse().ok(), "https");
        let hop = out.hop();
        assert_eq!(
            hop.forwarded_for,
            Some(&b"1.1.1.1, 2.2.2.2, 3.3.3.3, 10.0.0.9"[..])
        );
        assert_eq!(hop.proto, "https");
        assert_eq!(hop.authority, "h");
        let none = head("GET / HTTP/1.0\r\n\r\n");
        let out = Outgoing::new(&none, None, "http");
        assert_eq!(out.hop().forwarded_for, None);
        assert_eq!(out.hop().authority, "");
    }

    #[test]
    fn rewritten_and_hop_by_hop_fields_do_not_pass() {
        let h = head(
            "POST http://a.example/x HTTP/1.1\r\nHost: b\r\nConnection: X-Secret\r\nX-Secret: 1\r\nTE: trailers\r\nContent-Length: 3\r\nX-Forwarded-Proto: ftp\r\nKeep-Alive: 5\r\nAccept: */*\r\n\r\n",
        );
        let out = Outgoing::new(&h, None, "http");
        let names: Vec<&str> = out.fields().map(|(n, _)| n).collect();
        assert_eq!(names, ["Accept"]);
        assert!(out.te_trailers());
        assert_eq!(out.hop().authority, "a.example", "absolute form wins");
    }

    #[test]
    fn trailers_that_frame_route_or_authenticate_do_not_cross() {
        for name in ["Content-Length", "host", "Transfer-Encoding", ":path", "TE"] {
            assert!(!trailer_field(name), "{name}");
        }
        for name in ["grpc-status", "grpc-message", "x-checksum"] {
            assert!(trailer_field(name), "{name}");
        }
    }
}
