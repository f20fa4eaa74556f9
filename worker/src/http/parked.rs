//! An HTTP/1.1 client connection at rest and on the wire: a paused
//! [`H1Conn`](super::session_h1::H1Conn) between two requests — or, on a
//! TLS listener, a connection whose client has not sent its ClientHello
//! yet (nothing pending) — is a [`ParkedH1`], written as an [`HttpWire`].
//! See [`crate::kind`] for the traits and `conn::state` for where they are
//! registered.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;

use crate::kind::{self, Encode, Fds, INLINE_BYTES, Kind, WireError, WireForm};

/// A paused HTTP/1.1 connection: its socket and what it has read of the
/// next request.
#[derive(Debug)]
pub struct ParkedH1 {
    pub client: TcpStream,
    pub pending: Vec<u8>,
}

/// A plaintext HTTP/1.1 connection between two requests on the wire — or,
/// on a TLS listener, one whose client has not sent its ClientHello
/// (nothing pending). fds: client, and when `spilled`, a memfd holding
/// `read_pending`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpWire {
    /// Read of the next request (pipelined, or part of its head).
    pub read_pending: Vec<u8>,
    pub spilled: Option<u64>,
}

impl Kind for ParkedH1 {
    const NAME: &'static str = "http1";
    const FD_UNITS: u32 = 2;

    fn fds(&self) -> Vec<BorrowedFd<'_>> {
        vec![self.client.as_fd()]
    }

    fn client(&self) -> &TcpStream {
        &self.client
    }
}

impl<W: From<HttpWire>> Encode<W> for ParkedH1 {
    fn encode(&self) -> Result<(W, Option<OwnedFd>), WireError> {
        let pending = &self.pending;
        if pending.len() > INLINE_BYTES {
            let memfd = kind::spill(pending, &[])?;
            let wire = HttpWire {
                read_pending: Vec::new(),
                spilled: Some(pending.len() as u64),
            };
            return Ok((wire.into(), Some(memfd)));
        }
        let wire = HttpWire {
            read_pending: pending.clone(),
            spilled: None,
        };
        Ok((wire.into(), None))
    }
}

impl WireForm for HttpWire {
    type Kind = ParkedH1;
    const NAME: &'static str = "http1";

    fn fd_count(&self) -> usize {
        1 + usize::from(self.spilled.is_some())
    }

    fn adopt(self, fds: &mut Fds) -> Result<ParkedH1, WireError> {
        let client = fds.socket()?;
        let pending = match self.spilled {
            None => self.read_pending,
            Some(len) => kind::unspill(fds.next_fd()?, (len, 0))?.0,
        };
        Ok(ParkedH1 { client, pending })
    }
}
