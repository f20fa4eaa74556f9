//! The PROXY protocol (HAProxy's, versions 1 and 2): the header a proxy
//! in front of baton sends first on every connection, saying whose
//! connection it really is. Read on listeners with `proxy_protocol`.
//!
//! # Version 1 (text)
//!
//! ```text
//! "PROXY" SP ( "TCP4" | "TCP6" ) SP src-ip SP dst-ip SP src-port SP dst-port CRLF
//! "PROXY" SP "UNKNOWN" [ anything up to CRLF ] CRLF
//! ```
//!
//! At most 107 bytes with its CRLF. Read strictly: single spaces, an
//! address of the named family in its usual text form, ports in decimal
//! without a sign or leading zeros (0–65535). `UNKNOWN` says the proxy
//! does not know the addresses: the connection's own stand.
//!
//! # Version 2 (binary)
//!
//! ```text
//!  0                  12      13        14       16
//!  +------------------+-------+---------+--------+--------------------+
//!  | signature        | ver | | family  | length | addresses, TLVs    |
//!  | \r\n\r\n\0\r\nQUIT\n | cmd | | +proto  | u16 BE | (`length` bytes)   |
//!  +------------------+-------+---------+--------+--------------------+
//! ```
//!
//! `ver|cmd`: version 2 in the high nibble; command 0 `LOCAL` (a health
//! check of the proxy's own: the connection's addresses stand) or 1
//! `PROXY`. `family|proto`: 0x11 TCP over IPv4, 0x21 TCP over IPv6 (0x12,
//! 0x22 UDP: taken too, the addresses are what matters), 0x00 unspecified
//! (addresses unknown). Addresses: IPv4 src 4, dst 4, src port 2, dst
//! port 2 (12 bytes); IPv6 16, 16, 2, 2 (36 bytes). What follows them is
//! TLVs (`type u8, length u16 BE, value`), checked to fit exactly in
//! `length` and otherwise skipped. Unix-socket families are refused: a
//! TCP listener cannot use them. A header past [`MAX_V2_LENGTH`] bytes of
//! body is refused (the spec allows 65,535; the TLVs a proxy sends are a
//! few hundred).
//!
//! Anything else — another first byte, a bad field, a header that does
//! not end where it says — is an error: the connection is closed without
//! a byte forwarded.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The v2 signature.
pub(crate) const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// The longest v1 header, CRLF included (the spec's).
pub(crate) const V1_MAX: usize = 107;

/// The longest v2 body (addresses and TLVs) accepted.
pub(crate) const MAX_V2_LENGTH: usize = 2048;

/// The most a header can take, of either version: what a reader must be
/// ready to look at.
pub(crate) const MAX_HEADER: usize = 16 + MAX_V2_LENGTH;

/// Which versions a listener takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Accept {
    V1,
    V2,
    Any,
}

impl From<baton_config::ProxyVersion> for Accept {
    fn from(v: baton_config::ProxyVersion) -> Accept {
        match v {
            baton_config::ProxyVersion::V1 => Accept::V1,
            baton_config::ProxyVersion::V2 => Accept::V2,
            baton_config::ProxyVersion::Any => Accept::Any,
        }
    }
}

/// The connection's real ends, as the header gives them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Addresses {
    pub(crate) source: SocketAddr,
    pub(crate) destination: SocketAddr,
}

/// What the bytes so far hold.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Parsed {
    /// Not a whole header yet: at least this many bytes in all are needed.
    Incomplete(usize),
    /// A header of `len` bytes; `None` addresses: `LOCAL` or unknown (the
    /// connection's own stand).
    Header {
        len: usize,
        addresses: Option<Addresses>,
    },
}

/// Why a header is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ProxyError {
    #[error("not a PROXY protocol header this listener takes")]
    NotAHeader,
    #[error("malformed v1 header: {0}")]
    V1(&'static str),
    #[error("malformed v2 header: {0}")]
    V2(&'static str),
    #[error("v2 header too long: {0} bytes of addresses and TLVs")]
    TooLong(usize),
}

impl ProxyError {
    /// A short label for metrics and logs.
    pub(crate) fn label(&self) -> &'static str {
        match self {
            ProxyError::NotAHeader => "not_a_header",
            ProxyError::V1(_) | ProxyError::V2(_) => "malformed",
            ProxyError::TooLong(_) => "too_long",
        }
    }
}

/// Reads a header at the start of `buf` (the connection's first bytes).
pub(crate) fn parse(buf: &[u8], accept: Accept) -> Result<Parsed, ProxyError> {
    const V1_PREFIX: &[u8] = b"PROXY ";
    let is_prefix_of = |full: &[u8]| buf.len() < full.len() && full.starts_with(buf);
    let v1 = accept != Accept::V2;
    let v2 = accept != Accept::V1;
    if v2 && buf.starts_with(&V2_SIGNATURE) {
        return parse_v2(buf);
    }
    if v1 && buf.starts_with(V1_PREFIX) {
        return parse_v1(buf);
    }
    if (v2 && is_prefix_of(&V2_SIGNATURE)) || (v1 && is_prefix_of(V1_PREFIX)) {
        return Ok(Parsed::Incomplete(buf.len() + 1));
    }
    Err(ProxyError::NotAHeader)
}

fn parse_v1(buf: &[u8]) -> Result<Parsed, ProxyError> {
    let window = &buf[..buf.len().min(V1_MAX)];
    let Some(end) = window.windows(2).position(|w| w == b"\r\n") else {
        return if buf.len() >= V1_MAX {
            Err(ProxyError::V1("no CRLF within 107 bytes"))
        } else {
            Ok(Parsed::Incomplete(buf.len() + 1))
        };
    };
    let line = std::str::from_utf8(&buf[..end]).map_err(|_| ProxyError::V1("not ASCII"))?;
    let len = end + 2;
    let mut fields = line.split(' ');
    let _proxy = fields.next();
    let family = fields.next().ok_or(ProxyError::V1("no protocol"))?;
    match family {
        "UNKNOWN" => {
            return Ok(Parsed::Header {
                len,
                addresses: None,
            });
        }
        "TCP4" | "TCP6" => {}
        _ => return Err(ProxyError::V1("protocol neither TCP4, TCP6 nor UNKNOWN")),
    }
    let mut next = || fields.next().ok_or(ProxyError::V1("missing field"));
    let (src, dst, sport, dport) = (next()?, next()?, next()?, next()?);
    if fields.next().is_some() {
        return Err(ProxyError::V1("extra field"));
    }
    let ip = |text: &str| -> Result<IpAddr, ProxyError> {
        let ip = if family == "TCP4" {
            text.parse::<Ipv4Addr>().map(IpAddr::V4)
        } else {
            text.parse::<Ipv6Addr>().map(IpAddr::V6)
        };
        ip.map_err(|_| ProxyError::V1("address not of the family"))
    };
    let port = |text: &str| -> Result<u16, ProxyError> {
        let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
        if !digits || (text.len() > 1 && text.starts_with('0')) {
            return Err(ProxyError::V1("bad port"));
        }
        text.parse().map_err(|_| ProxyError::V1("bad port"))
    };
    Ok(Parsed::Header {
        len,
        addresses: Some(Addresses {
            source: SocketAddr::new(ip(src)?, port(sport)?),
            destination: SocketAddr::new(ip(dst)?, port(dport)?),
        }),
    })
}

fn parse_v2(buf: &[u8]) -> Result<Parsed, ProxyError> {
    let Some(fixed) = buf.get(..16) else {
        return Ok(Parsed::Incomplete(16));
    };
    let (ver_cmd, family) = (fixed[12], fixed[13]);
    if ver_cmd >> 4 != 2 {
        return Err(ProxyError::V2("version not 2"));
    }
    let body_len = usize::from(u16::from_be_bytes([fixed[14], fixed[15]]));
    if body_len > MAX_V2_LENGTH {
        return Err(ProxyError::TooLong(body_len));
    }
    let len = 16 + body_len;
    let Some(body) = buf.get(16..len) else {
        return Ok(Parsed::Incomplete(len));
    };
    let local = match ver_cmd & 0x0f {
        0 => true,
        1 => false,
        _ => return Err(ProxyError::V2("command neither LOCAL nor PROXY")),
    };
    let (addresses, rest) = match family {
        0x00 => (None, body),
        0x11 | 0x12 => {
            let a = body
                .get(..12)
                .ok_or(ProxyError::V2("IPv4 addresses cut short"))?;
            let ip = |at: usize| IpAddr::V4(Ipv4Addr::new(a[at], a[at + 1], a[at + 2], a[at + 3]));
            let port = |at: usize| u16::from_be_bytes([a[at], a[at + 1]]);
            (
                Some(Addresses {
                    source: SocketAddr::new(ip(0), port(8)),
                    destination: SocketAddr::new(ip(4), port(10)),
                }),
                &body[12..],
            )
        }
        0x21 | 0x22 => {
            let a = body
                .get(..36)
                .ok_or(ProxyError::V2("IPv6 addresses cut short"))?;
            let ip = |at: usize| {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(&a[at..at + 16]);
                IpAddr::V6(Ipv6Addr::from(octets))
            };
            let port = |at: usize| u16::from_be_bytes([a[at], a[at + 1]]);
            (
                Some(Addresses {
                    source: SocketAddr::new(ip(0), port(32)),
                    destination: SocketAddr::new(ip(16), port(34)),
                }),
                &body[36..],
            )
        }
        _ => {
            return Err(ProxyError::V2(
                "address family not TCP/UDP over IPv4 or IPv6",
            ));
        }
    };
    check_tlvs(rest)?;
    Ok(Parsed::Header {
        len,
        addresses: if local { None } else { addresses },
    })
}

/// TLVs must fill what is left exactly.
fn check_tlvs(mut rest: &[u8]) -> Result<(), ProxyError> {
    while !rest.is_empty() {
        let head = rest.get(..3).ok_or(ProxyError::V2("TLV cut short"))?;
        let value_len = usize::from(u16::from_be_bytes([head[1], head[2]]));
        rest = rest
            .get(3 + value_len..)
            .ok_or(ProxyError::V2("TLV longer than the header"))?;
    }
    Ok(())
}

/// The header baton sends first to a cluster with `proxy_protocol`, for
/// a client connection from `source` to `destination` (mixed families
/// are written as IPv6, the IPv4 one mapped).
pub(crate) fn header(
    version: baton_config::ProxyVersion,
    source: SocketAddr,
    destination: SocketAddr,
) -> Vec<u8> {
    match version {
        baton_config::ProxyVersion::V1 => v1_header(source, destination),
        _ => v2_header(source, destination),
    }
}

/// A v1 `PROXY TCP4|TCP6 …` line.
fn v1_header(source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    let (s, d) = match (source.ip(), destination.ip()) {
        (s @ IpAddr::V4(_), d @ IpAddr::V4(_)) => (s, d),
        (s, d) => (IpAddr::V6(as_v6(s)), IpAddr::V6(as_v6(d))),
    };
    let family = if s.is_ipv4() { "TCP4" } else { "TCP6" };
    format!(
        "PROXY {family} {s} {d} {} {}\r\n",
        source.port(),
        destination.port()
    )
    .into_bytes()
}

fn as_v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

/// A v2 `PROXY` header for a TCP connection from `source` to
/// `destination`, with no TLVs (a tcp listener knows no ALPN or SNI).
pub(crate) fn v2_header(source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + 36);
    out.extend_from_slice(&V2_SIGNATURE);
    out.push(0x21);
    match (source.ip(), destination.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            out.push(0x11);
            out.extend_from_slice(&12u16.to_be_bytes());
            out.extend_from_slice(&s.octets());
            out.extend_from_slice(&d.octets());
        }
        (s, d) => {
            out.push(0x21);
            out.extend_from_slice(&36u16.to_be_bytes());
            out.extend_from_slice(&as_v6(s).octets());
            out.extend_from_slice(&as_v6(d).octets());
        }
    }
    out.extend_from_slice(&source.port().to_be_bytes());
    out.extend_from_slice(&destination.port().to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(source: &str, destination: &str) -> Option<Addresses> {
        Some(Addresses {
            source: source.parse().unwrap(),
            destination: destination.parse().unwrap(),
        })
    }

    #[test]
    fn v1_headers_and_what_follows_them() {
        let line = b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nGET / HTTP/1.1\r\n";
        assert_eq!(
            parse(line, Accept::V1),
            Ok(Parsed::Header {
                len: 45,
                addresses: addrs("192.0.2.1:56324", "198.51.100.2:443"),
            })
        );
        let v6 = b"PROXY TCP6 2001:db8::1 ::1 65535 0\r\n";
        assert_eq!(
            parse(v6, Accept::Any),
            Ok(Parsed::Header {
                len: v6.len(),
                addresses: addrs("[2001:db8::1]:65535", "[::1]:0"),
            })
        );
        assert_eq!(
            parse(b"PROXY UNKNOWN whatever\r\n", Accept::V1),
            Ok(Parsed::Header {
                len: 24,
                addresses: None
            })
        );
    }

    #[test]
    fn a_header_in_pieces_asks_for_more() {
        let line = b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n";
        for cut in 1..line.len() {
            assert!(
                matches!(parse(&line[..cut], Accept::Any), Ok(Parsed::Incomplete(n)) if n > cut),
                "{cut}"
            );
        }
        let header = v2_header(
            "192.0.2.1:1".parse().unwrap(),
            "192.0.2.2:2".parse().unwrap(),
        );
        for cut in 1..header.len() {
            assert!(
                matches!(parse(&header[..cut], Accept::Any), Ok(Parsed::Incomplete(n)) if n > cut),
                "{cut}"
            );
        }
    }

    #[test]
    fn v1_is_read_strictly() {
        for bad in [
            &b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443 extra\r\n"[..],
            b"PROXY TCP4 192.0.2.1  198.51.100.2 56324 443\r\n",
            b"PROXY TCP4 ::1 198.51.100.2 56324 443\r\n",
            b"PROXY TCP6 192.0.2.1 ::1 1 2\r\n",
            b"PROXY TCP4 192.0.2.1 198.51.100.2 056324 443\r\n",
            b"PROXY TCP4 192.0.2.1 198.51.100.2 65536 443\r\n",
            b"PROXY TCP4 192.0.2.1 198.51.100.2 +1 443\r\n",
            b"PROXY UDP4 192.0.2.1 198.51.100.2 1 2\r\n",
            b"PROXY TCP4 192.0.2.1 198.51.100.2 1\r\n",
        ] {
            assert!(
                matches!(parse(bad, Accept::V1), Err(ProxyError::V1(_))),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let long = [b"PROXY ".as_slice(), &[b'x'; 200]].concat();
        assert!(matches!(parse(&long, Accept::V1), Err(ProxyError::V1(_))));
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\n", Accept::Any),
            Err(ProxyError::NotAHeader)
        );
        // A version the listener does not take.
        assert_eq!(
            parse(b"PROXY UNKNOWN\r\n", Accept::V2),
            Err(ProxyError::NotAHeader)
        );
    }

    #[test]
    fn v2_round_trips_and_carries_tlvs() {
        for (s, d) in [
            ("192.0.2.1:56324", "198.51.100.2:443"),
            ("[2001:db8::1]:1", "[2001:db8::2]:2"),
        ] {
            let header = v2_header(s.parse().unwrap(), d.parse().unwrap());
            assert_eq!(
                parse(&header, Accept::V2),
                Ok(Parsed::Header {
                    len: header.len(),
                    addresses: addrs(s, d),
                })
            );
        }
        // With TLVs (ALPN "h2", an empty NOOP), the length grown to match.
        let mut header = v2_header(
            "192.0.2.1:1".parse().unwrap(),
            "192.0.2.2:2".parse().unwrap(),
        );
        let tlvs = [0x01, 0x00, 0x02, b'h', b'2', 0x04, 0x00, 0x00];
        header.extend_from_slice(&tlvs);
        header[14..16].copy_from_slice(&(12 + tlvs.len() as u16).to_be_bytes());
        assert!(matches!(
            parse(&header, Accept::Any),
            Ok(Parsed::Header { len, addresses: Some(_) }) if len == header.len()
        ));
        // A TLV that runs past the end.
        let last = header.len() - 2;
        header[last] = 0x05;
        assert!(matches!(
            parse(&header, Accept::Any),
            Err(ProxyError::V2(_))
        ));
    }

    #[test]
    fn what_baton_sends_reads_back() {
        use baton_config::ProxyVersion;
        for version in [ProxyVersion::V1, ProxyVersion::V2] {
            for (s, d, want) in [
                (
                    "192.0.2.1:56324",
                    "198.51.100.2:443",
                    ("192.0.2.1:56324", "198.51.100.2:443"),
                ),
                ("[2001:db8::1]:1", "[::1]:2", ("[2001:db8::1]:1", "[::1]:2")),
                (
                    "192.0.2.1:1",
                    "[::1]:2",
                    ("[::ffff:192.0.2.1]:1", "[::1]:2"),
                ),
            ] {
                let sent = header(version, s.parse().unwrap(), d.parse().unwrap());
                assert_eq!(
                    parse(&sent, Accept::Any),
                    Ok(Parsed::Header {
                        len: sent.len(),
                        addresses: addrs(want.0, want.1),
                    }),
                    "{version:?} {s} {d}"
                );
            }
        }
    }

    #[test]
    fn v2_local_unspecified_and_bad_headers() {
        let mut local = V2_SIGNATURE.to_vec();
        local.extend_from_slice(&[0x20, 0x00, 0x00, 0x00]);
        assert_eq!(
            parse(&local, Accept::V2),
            Ok(Parsed::Header {
                len: 16,
                addresses: None
            })
        );
        let good = v2_header(
            "192.0.2.1:1".parse().unwrap(),
            "192.0.2.2:2".parse().unwrap(),
        );
        let mut bad_version = good.clone();
        bad_version[12] = 0x11;
        let mut bad_command = good.clone();
        bad_command[12] = 0x22;
        let mut unix = good.clone();
        unix[13] = 0x31;
        let mut short = good.clone();
        short[14..16].copy_from_slice(&4u16.to_be_bytes());
        short.truncate(20);
        for bad in [bad_version, bad_command, unix, short] {
            assert!(
                matches!(parse(&bad, Accept::V2), Err(ProxyError::V2(_))),
                "{bad:?}"
            );
        }
        let mut huge = good;
        huge[14..16].copy_from_slice(&60_000u16.to_be_bytes());
        assert_eq!(parse(&huge, Accept::V2), Err(ProxyError::TooLong(60_000)));
    }
}
