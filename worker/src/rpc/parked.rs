//! An RPC client connection at rest and on the wire: a paused
//! [`Downstream`](super::downstream::Downstream) is an [`RpcParts`],
//! written as an [`RpcWire`]. See [`crate::kind`] for the traits and
//! `conn::state` for where they are registered.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use serde::{Deserialize, Serialize};

use crate::codec::CodecState;
use crate::kind::{self, Encode, Fds, INLINE_BYTES, Kind, WireError, WireForm};
use crate::rpc::downstream::RpcParts;

/// An RPC client connection (Bolt, Dubbo, RocketMQ, Tars) on the wire, at
/// a frame boundary. fds: client, and when `spilled`, a memfd holding
/// `read_pending` then `write_pending` (too large for a datagram).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RpcWire {
    /// The codec's state ([`CodecState`], bincode).
    pub codec: Vec<u8>,
    /// A partial frame not yet decoded (empty when spilled).
    pub read_pending: Vec<u8>,
    /// Bytes for the client not yet written (empty when spilled).
    pub write_pending: Vec<u8>,
    /// When spilled: the lengths of the two parts in the memfd.
    pub spilled: Option<(u64, u64)>,
    /// Requests whose responses the old generation will forward.
    pub in_flight: u64,
    pub read_closed: bool,
}

impl Kind for RpcParts {
    const NAME: &'static str = "rpc";
    const FD_UNITS: u32 = 1;

    fn fds(&self) -> Vec<BorrowedFd<'_>> {
        vec![self.client.as_fd()]
    }

    fn client(&self) -> &tokio::net::TcpStream {
        &self.client
    }
}

impl<W: From<RpcWire>> Encode<W> for RpcParts {
    fn encode(&self) -> Result<(W, Option<OwnedFd>), WireError> {
        let codec = bincode::serde::encode_to_vec(&self.codec, bincode::config::standard())
            .map_err(WireError::EncodeCodec)?;
        let (read, write) = (&self.read_pending, &self.write_pending);
        let (read_pending, write_pending, spilled, memfd) =
            if read.len() + write.len() > INLINE_BYTES {
                let lens = (read.len() as u64, write.len() as u64);
                (
                    Vec::new(),
                    Vec::new(),
                    Some(lens),
                    Some(kind::spill(read, write)?),
                )
            } else {
                (read.clone(), write.clone(), None, None)
            };
        let wire = RpcWire {
            codec,
            read_pending,
            write_pending,
            spilled,
            in_flight: self.in_flight,
            read_closed: self.read_closed,
        };
        Ok((wire.into(), memfd))
    }
}

impl WireForm for RpcWire {
    type Kind = RpcParts;
    const NAME: &'static str = "rpc";

    fn fd_count(&self) -> usize {
        1 + usize::from(self.spilled.is_some())
    }

    fn adopt(self, fds: &mut Fds) -> Result<RpcParts, WireError> {
        let client = fds.socket()?;
        let (read_pending, write_pending) = match self.spilled {
            None => (self.read_pending, self.write_pending),
            Some(lens) => kind::unspill(fds.next_fd()?, lens)?,
        };
        let (codec, _): (CodecState, usize) = bincode::serde::decode_from_slice(
            &self.codec,
            bincode::config::standard().with_limit::<{ 1 << 20 }>(),
        )
        .map_err(WireError::DecodeCodec)?;
        Ok(RpcParts {
            client,
            codec,
            read_pending,
            write_pending,
            in_flight: self.in_flight,
            read_closed: self.read_closed,
            inbox: None,
        })
    }
}
