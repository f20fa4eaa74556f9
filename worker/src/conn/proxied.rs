//! Reading a PROXY protocol header off a newly accepted connection
//! (listeners with `proxy_protocol`; the format is
//! [`crate::codec::proxy_protocol`]'s).
//!
//! The header is looked at with `MSG_PEEK` until it is whole, then exactly
//! its bytes are read: what the client sends after it stays in the
//! socket for the listener's own protocol, whatever that is (an HTTP
//! request, a TLS ClientHello, RPC frames, a tunnel's bytes). When a peek
//! holds less than the header needs, the peek reports "would block", which
//! clears tokio's readiness, so the task sleeps until more bytes arrive
//! rather than spinning. The caller bounds the whole read with the
//! listener's `proxy_protocol_timeout`.

use std::io;

use tokio::io::Interest;
use tokio::net::TcpStream;

use crate::codec::proxy_protocol::{self, Accept, Addresses, MAX_HEADER, Parsed, ProxyError};

/// Why a connection's header was not read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HeaderError {
    #[error(transparent)]
    Bad(#[from] ProxyError),
    #[error("closed before a whole PROXY header")]
    Closed,
    #[error("reading the PROXY header: {0}")]
    Io(#[from] io::Error),
}

impl HeaderError {
    /// A short label for logs and the access log.
    pub(crate) fn label(&self) -> &'static str {
        match self {
            HeaderError::Bad(e) => e.label(),
            HeaderError::Closed => "closed",
            HeaderError::Io(_) => "io",
        }
    }
}

/// Reads `client`'s PROXY header and nothing after it: the addresses it
/// gives, or `None` when it gives none (`LOCAL`, `UNKNOWN`).
pub(crate) async fn read_header(
    client: &TcpStream,
    accept: Accept,
) -> Result<Option<Addresses>, HeaderError> {
    let mut buf = vec![0u8; MAX_HEADER];
    let mut needed = 1;
    let (len, addresses) = loop {
        client.readable().await?;
        let peeked = client.try_io(Interest::READABLE, || {
            let (n, _) = rustix::net::recv(
                client,
                &mut buf[..],
                rustix::net::RecvFlags::PEEK | rustix::net::RecvFlags::DONTWAIT,
            )?;
            if n != 0 && n < needed {
                // Not enough yet: "would block" clears the readiness.
                return Err(io::ErrorKind::WouldBlock.into());
            }
            Ok(n)
        });
        let n = match peeked {
            Ok(0) => return Err(HeaderError::Closed),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e.into()),
        };
        match proxy_protocol::parse(&buf[..n], accept)? {
            Parsed::Incomplete(more) => needed = more,
            Parsed::Header { len, addresses } => break (len, addresses),
        }
    };
    // The header's bytes are in the socket: take exactly them.
    let mut header = vec![0u8; len];
    let mut read = 0;
    while read < len {
        client.readable().await?;
        match client.try_read(&mut header[read..]) {
            Ok(0) => return Err(HeaderError::Closed),
            Ok(n) => read += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(addresses)
}
