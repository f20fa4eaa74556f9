//! The fixed 12-byte header in front of every datagram, and the bounds.

use crate::IpcError;

/// First two bytes of every datagram.
pub const MAGIC: [u8; 2] = *b"BT";

/// Version of the header layout itself (not of the message set, which the
/// `Hello` handshake negotiates).
pub const WIRE_VERSION: u8 = 1;

/// Size of the fixed header.
pub const HEADER_LEN: usize = 12;

/// Largest datagram baton sends or accepts.
///
/// Why 64 KiB: a SEQPACKET datagram must fit the sender's socket buffer
/// (`net.core.wmem_default`, about 208 KiB here) or `sendmsg` fails with
/// `EMSGSIZE`. 64 KiB leaves room for a few datagrams in flight and for
/// hosts with smaller defaults, and is still large enough that batching
/// rarely needs more than a handful of datagrams.
pub const MAX_DATAGRAM: usize = 64 * 1024;

/// Largest body: a datagram minus its header.
pub const MAX_BODY: usize = MAX_DATAGRAM - HEADER_LEN;

/// Most fds one datagram carries: the kernel's `SCM_MAX_FD`. One more and
/// `sendmsg` fails with `EINVAL`.
pub const MAX_FDS: usize = 253;

/// The decoded fixed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub kind: u8,
    pub fd_count: u16,
    pub body_len: u32,
}

impl Header {
    /// Writes the header into the first [`HEADER_LEN`] bytes of `out`.
    pub fn encode(&self, out: &mut [u8; HEADER_LEN]) {
        out[0..2].copy_from_slice(&MAGIC);
        out[2] = WIRE_VERSION;
        out[3] = self.kind;
        out[4..6].copy_from_slice(&self.fd_count.to_le_bytes());
        out[6..8].copy_from_slice(&[0, 0]);
        out[8..12].copy_from_slice(&self.body_len.to_le_bytes());
    }

    /// Parses the header of `datagram` and checks it against the datagram's
    /// real length. Returns the header and the body.
    pub fn decode(datagram: &[u8]) -> Result<(Header, &[u8]), IpcError> {
        let Some((head, body)) = datagram.split_first_chunk::<HEADER_LEN>() else {
            return Err(IpcError::ShortDatagram {
                len: datagram.len(),
            });
        };
        if head[0..2] != MAGIC {
            return Err(IpcError::BadMagic([head[0], head[1]]));
        }
        if head[2] != WIRE_VERSION {
            return Err(IpcError::WireVersion(head[2]));
        }
        if head[6..8] != [0, 0] {
            return Err(IpcError::Reserved);
        }
        let header = Header {
            kind: head[3],
            fd_count: u16::from_le_bytes([head[4], head[5]]),
            body_len: u32::from_le_bytes([head[8], head[9], head[10], head[11]]),
        };
        if usize::from(header.fd_count) > MAX_FDS {
            return Err(IpcError::TooManyFds {
                count: usize::from(header.fd_count),
            });
        }
        if header.body_len as usize != body.len() {
            return Err(IpcError::BodyLength {
                declared: header.body_len as usize,
                actual: body.len(),
            });
        }
        Ok((header, body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn datagram(header: Header, body: &[u8]) -> Vec<u8> {
        let mut head = [0u8; HEADER_LEN];
        header.encode(&mut head);
        let mut out = head.to_vec();
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn header_round_trips() {
        let header = Header {
            kind: 7,
            fd_count: 3,
            body_len: 5,
        };
        let bytes = datagram(header, b"hello");
        let (back, body) = Header::decode(&bytes).unwrap();
        assert_eq!(back, header);
        assert_eq!(body, b"hello");
    }

    #[test]
    fn header_rejects_damage() {
        let good = datagram(
            Header {
                kind: 1,
                fd_count: 0,
                body_len: 2,
            },
            b"ok",
        );
        assert!(matches!(
            Header::decode(&good[..5]),
            Err(IpcError::ShortDatagram { len: 5 })
        ));
        let mut bad = good.clone();
        bad[0] = b'X';
        assert!(matches!(Header::decode(&bad), Err(IpcError::BadMagic(_))));
        let mut bad = good.clone();
        bad[2] = 9;
        assert!(matches!(
            Header::decode(&bad),
            Err(IpcError::WireVersion(9))
        ));
        let mut bad = good.clone();
        bad[7] = 1;
        assert!(matches!(Header::decode(&bad), Err(IpcError::Reserved)));
        let mut bad = good.clone();
        bad[4] = 254;
        assert!(matches!(
            Header::decode(&bad),
            Err(IpcError::TooManyFds { count: 254 })
        ));
        let mut bad = good.clone();
        bad.push(0);
        assert!(matches!(
            Header::decode(&bad),
            Err(IpcError::BodyLength {
                declared: 2,
                actual: 3
            })
        ));
    }
}
