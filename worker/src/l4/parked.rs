//! The L4 kinds at rest and on the wire: a paused [`Tunnel`](super::tunnel::Tunnel)
//! ([`ParkedTunnel`]; written as [`TunnelWire`], or [`SpilledTunnelWire`]
//! when its pending bytes do not fit a datagram) and a paused echo
//! ([`ParkedEcho`], written as [`EchoWire`]). See [`crate::kind`] for the
//! traits and `conn::state` for where they are registered.

use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;

use crate::kind::{self, Encode, Fds, INLINE_BYTES, Kind, WireError, WireForm};
use crate::l4::pipe::PipeState;
use crate::l4::tunnel::Parts;

/// A paused tunnel: its sockets and pending bytes, and where it goes (for
/// the access log).
#[derive(Debug)]
pub struct ParkedTunnel {
    pub parts: Parts,
    pub cluster: Arc<str>,
    pub upstream: SocketAddr,
}

/// A paused echo: its socket and the bytes it has yet to echo.
#[derive(Debug)]
pub struct ParkedEcho {
    pub client: TcpStream,
    pub pipe: PipeState,
}

/// One direction of an L4 connection, as paused, on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PipeWire {
    /// Read from the source, not yet written to the destination.
    pub pending: Vec<u8>,
    /// The source has ended.
    pub read_closed: bool,
    /// The end has been passed on to the destination.
    pub write_closed: bool,
}

impl PipeWire {
    fn of(state: &PipeState) -> PipeWire {
        PipeWire {
            pending: state.pending.clone(),
            ..PipeWire::flags_of(state)
        }
    }

    /// A direction's flags, its bytes left out (they are spilled).
    fn flags_of(state: &PipeState) -> PipeWire {
        PipeWire {
            pending: Vec::new(),
            read_closed: state.read_closed,
            write_closed: state.write_closed,
        }
    }

    fn into_state(self) -> PipeState {
        PipeState {
            pending: self.pending,
            read_closed: self.read_closed,
            write_closed: self.write_closed,
        }
    }
}

/// A tunnel on the wire. fds: client, upstream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TunnelWire {
    pub c2u: PipeWire,
    pub u2c: PipeWire,
    pub cluster: String,
    pub upstream: SocketAddr,
}

/// A [`TunnelWire`] whose pending bytes do not fit a datagram (a bulk
/// stream's kernel pipe read out at the pause). fds: client, upstream,
/// and a memfd holding c2u's pending then u2c's, `spilled` bytes each; the
/// two [`PipeWire`]s carry the flags, no bytes. Written from schema 2 on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpilledTunnelWire {
    pub c2u: PipeWire,
    pub u2c: PipeWire,
    pub cluster: String,
    pub upstream: SocketAddr,
    pub spilled: (u64, u64),
}

/// The built-in echo on the wire. fds: client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EchoWire {
    pub pipe: PipeWire,
}

// === impl ParkedTunnel ===

impl Kind for ParkedTunnel {
    const NAME: &'static str = "tunnel";
    const FD_UNITS: u32 = 2;

    fn fds(&self) -> Vec<BorrowedFd<'_>> {
        vec![self.parts.client.as_fd(), self.parts.upstream.as_fd()]
    }

    fn client(&self) -> &TcpStream {
        &self.parts.client
    }
}

impl<W: From<TunnelWire> + From<SpilledTunnelWire>> Encode<W> for ParkedTunnel {
    fn encode(&self) -> Result<(W, Option<OwnedFd>), WireError> {
        let (parts, cluster, upstream) = (&self.parts, self.cluster.to_string(), self.upstream);
        let (c2u, u2c) = (&parts.c2u.pending, &parts.u2c.pending);
        if c2u.len() + u2c.len() > INLINE_BYTES {
            let memfd = kind::spill(c2u, u2c)?;
            let wire = SpilledTunnelWire {
                c2u: PipeWire::flags_of(&parts.c2u),
                u2c: PipeWire::flags_of(&parts.u2c),
                cluster,
                upstream,
                spilled: (c2u.len() as u64, u2c.len() as u64),
            };
            return Ok((wire.into(), Some(memfd)));
        }
        let wire = TunnelWire {
            c2u: PipeWire::of(&parts.c2u),
            u2c: PipeWire::of(&parts.u2c),
            cluster,
            upstream,
        };
        Ok((wire.into(), None))
    }
}

impl WireForm for TunnelWire {
    type Kind = ParkedTunnel;
    const NAME: &'static str = "tunnel";

    fn fd_count(&self) -> usize {
        2
    }

    fn adopt(self, fds: &mut Fds) -> Result<ParkedTunnel, WireError> {
        Ok(ParkedTunnel {
            parts: Parts {
                client: fds.socket()?,
                upstream: fds.socket()?,
                c2u: self.c2u.into_state(),
                u2c: self.u2c.into_state(),
            },
            cluster: Arc::from(self.cluster),
            upstream: self.upstream,
        })
    }
}

impl WireForm for SpilledTunnelWire {
    type Kind = ParkedTunnel;
    const NAME: &'static str = "spilled tunnel";
    // Added to schema 1 after workers that speak schema 1 had shipped, and
    // such a worker dies on it mid-batch (see migrate::schema).
    const SINCE: u16 = 2;

    fn fd_count(&self) -> usize {
        3
    }

    fn adopt(self, fds: &mut Fds) -> Result<ParkedTunnel, WireError> {
        let client = fds.socket()?;
        let upstream = fds.socket()?;
        let (c2u, u2c) = kind::unspill(fds.next_fd()?, self.spilled)?;
        Ok(ParkedTunnel {
            parts: Parts {
                client,
                upstream,
                c2u: PipeState {
                    pending: c2u,
                    ..self.c2u.into_state()
                },
                u2c: PipeState {
                    pending: u2c,
                    ..self.u2c.into_state()
                },
            },
            cluster: Arc::from(self.cluster),
            upstream: self.upstream,
        })
    }
}

// === impl ParkedEcho ===

impl Kind for ParkedEcho {
    const NAME: &'static str = "echo";
    const FD_UNITS: u32 = 1;

    fn fds(&self) -> Vec<BorrowedFd<'_>> {
        vec![self.client.as_fd()]
    }

    fn client(&self) -> &TcpStream {
        &self.client
    }
}

impl<W: From<EchoWire>> Encode<W> for ParkedEcho {
    fn encode(&self) -> Result<(W, Option<OwnedFd>), WireError> {
        let wire = EchoWire {
            pipe: PipeWire::of(&self.pipe),
        };
        Ok((wire.into(), None))
    }
}

impl WireForm for EchoWire {
    type Kind = ParkedEcho;
    const NAME: &'static str = "echo";

    fn fd_count(&self) -> usize {
        1
    }

    fn adopt(self, fds: &mut Fds) -> Result<ParkedEcho, WireError> {
        Ok(ParkedEcho {
            client: fds.socket()?,
            pipe: self.pipe.into_state(),
        })
    }
}
