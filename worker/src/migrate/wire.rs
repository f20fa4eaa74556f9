//! A parked connection on the wire and back: `describe` turns a
//! [`Parked`] into the handoff schema's [`ConnState`] (with `fds_of` the
//! descriptors that travel beside it), and `rebuild_batch` turns received
//! states and fds back into parked connections.
//!
//! Pending bytes up to `INLINE_BYTES` travel inside the state; more go in
//! a memfd sent after the connection's own fds, and a peer's spill is
//! refused past `MAX_SPILL`.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use tokio::net::TcpStream;

use crate::codec::CodecState;
use crate::conn::state::{ConnId, ConnParts, History, Parked};
use crate::l4::pipe::PipeState;
use crate::l4::tunnel::Parts;
use crate::migrate::schema::{ConnKind, ConnState, PipeWire};
use crate::rpc::downstream::RpcParts;

/// Pending bytes up to this size travel inside the batch; more (a large
/// partial frame, a slow client's backlog, a bulk stream's kernel pipe) go
/// in a memfd beside it.
const INLINE_BYTES: usize = 32 * 1024;

/// The most spilled bytes accepted from a peer: an RPC frame's bound
/// (16 MiB by default) plus a backlog of written-but-unsent responses.
const MAX_SPILL: u64 = 64 * 1024 * 1024;

/// Why a parked connection could not be described, or a received one
/// rebuilt.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    #[error("encode an RPC connection's codec state: {0}")]
    EncodeCodec(#[source] bincode::error::EncodeError),
    #[error("decode an RPC connection's codec state: {0}")]
    DecodeCodec(#[source] bincode::error::DecodeError),
    #[error("{op} a spill memfd: {source}")]
    Spill {
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("spilled state of {len} bytes is larger than {MAX_SPILL}")]
    SpillTooLarge { len: u64 },
    #[error("fewer fds than the batch describes")]
    MissingFd,
    #[error("register a received socket: {0}")]
    Socket(#[source] std::io::Error),
}

fn spill_error(op: &'static str) -> impl FnOnce(std::io::Error) -> WireError {
    move |source| WireError::Spill { op, source }
}

/// A parked connection as it travels, and the memfd holding its large
/// pending bytes, if any.
pub(crate) fn describe(parked: &Parked) -> Result<(ConnState, Option<OwnedFd>), WireError> {
    let mut spill = None;
    let kind = match &parked.conn {
        ConnParts::Tunnel {
            parts,
            cluster,
            upstream,
        } => {
            let (c2u, u2c) = (&parts.c2u.pending, &parts.u2c.pending);
            if c2u.len() + u2c.len() > INLINE_BYTES {
                spill = Some(spill_to_memfd(c2u, u2c)?);
                ConnKind::SpilledTunnel {
                    c2u: flags_to_wire(&parts.c2u),
                    u2c: flags_to_wire(&parts.u2c),
                    cluster: cluster.to_string(),
                    upstream: *upstream,
                    spilled: (c2u.len() as u64, u2c.len() as u64),
                }
            } else {
                ConnKind::Tunnel {
                    c2u: to_wire(&parts.c2u),
                    u2c: to_wire(&parts.u2c),
                    cluster: cluster.to_string(),
                    upstream: *upstream,
                }
            }
        }
        ConnParts::Echo { pipe, .. } => ConnKind::Echo {
            pipe: to_wire(pipe),
        },
        ConnParts::Http { pending, .. } => {
            if pending.len() > INLINE_BYTES {
                spill = Some(spill_to_memfd(pending, &[])?);
                ConnKind::Http {
                    read_pending: Vec::new(),
                    spilled: Some(pending.len() as u64),
                }
            } else {
                ConnKind::Http {
                    read_pending: pending.clone(),
                    spilled: None,
                }
            }
        }
        ConnParts::Rpc(parts) => {
            let codec = bincode::serde::encode_to_vec(&parts.codec, bincode::config::standard())
                .map_err(WireError::EncodeCodec)?;
            let big = parts.read_pending.len() + parts.write_pending.len() > INLINE_BYTES;
            let (read_pending, write_pending, spilled) = if big {
                spill = Some(spill_to_memfd(&parts.read_pending, &parts.write_pending)?);
                let lens = (
                    parts.read_pending.len() as u64,
                    parts.write_pending.len() as u64,
                );
                (Vec::new(), Vec::new(), Some(lens))
            } else {
                (
                    parts.read_pending.clone(),
                    parts.write_pending.clone(),
                    None,
                )
            };
            ConnKind::Rpc {
                codec,
                read_pending,
                write_pending,
                spilled,
                in_flight: parts.in_flight,
                read_closed: parts.read_closed,
            }
        }
    };
    let history = &parked.history;
    let state = ConnState {
        id: parked.id.0,
        listener: parked.listener.to_string(),
        idle_timeout: parked.idle_timeout,
        kind,
        started_unix_ms: history
            .started
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
        received: history.received,
        sent: history.sent,
        moves: history.moves,
    };
    Ok((state, spill))
}

fn spill_to_memfd(first: &[u8], second: &[u8]) -> Result<OwnedFd, WireError> {
    use std::io::Write;
    let fd = rustix::fs::memfd_create("baton-conn-state", rustix::fs::MemfdFlags::CLOEXEC)
        .map_err(|e| spill_error("create")(e.into()))?;
    let mut file = std::fs::File::from(fd);
    file.write_all(first).map_err(spill_error("write"))?;
    file.write_all(second).map_err(spill_error("write"))?;
    Ok(OwnedFd::from(file))
}

fn read_spill(fd: OwnedFd, (first, second): (u64, u64)) -> Result<(Vec<u8>, Vec<u8>), WireError> {
    use std::io::{Read, Seek, SeekFrom};
    let len = first.saturating_add(second);
    if len > MAX_SPILL {
        return Err(WireError::SpillTooLarge { len });
    }
    let mut file = std::fs::File::from(fd);
    file.seek(SeekFrom::Start(0)).map_err(spill_error("seek"))?;
    // Both within MAX_SPILL, checked above.
    let mut a = vec![0u8; first as usize];
    let mut b = vec![0u8; second as usize];
    file.read_exact(&mut a).map_err(spill_error("read"))?;
    file.read_exact(&mut b).map_err(spill_error("read"))?;
    Ok((a, b))
}

/// The fds that travel with a parked connection, in [`ConnKind`] order
/// (a spill memfd, when there is one, is added after them).
pub(crate) fn fds_of(parked: &Parked) -> Vec<BorrowedFd<'_>> {
    match &parked.conn {
        ConnParts::Tunnel { parts, .. } => vec![parts.client.as_fd(), parts.upstream.as_fd()],
        ConnParts::Echo { client, .. } => vec![client.as_fd()],
        ConnParts::Rpc(parts) => vec![parts.client.as_fd()],
        ConnParts::Http { client, .. } => vec![client.as_fd()],
    }
}

fn to_wire(state: &PipeState) -> PipeWire {
    PipeWire {
        pending: state.pending.clone(),
        ..flags_to_wire(state)
    }
}

/// A direction's flags, its bytes left out (they are spilled).
fn flags_to_wire(state: &PipeState) -> PipeWire {
    PipeWire {
        pending: Vec::new(),
        read_closed: state.read_closed,
        write_closed: state.write_closed,
    }
}

fn from_wire(wire: PipeWire) -> PipeState {
    PipeState {
        pending: wire.pending,
        read_closed: wire.read_closed,
        write_closed: wire.write_closed,
    }
}

/// Received states and fds → connections ready to run (registered with
/// this runtime, not yet polled).
pub(crate) fn rebuild_batch(
    conns: Vec<ConnState>,
    fds: Vec<OwnedFd>,
) -> Result<Vec<Parked>, WireError> {
    let mut fds = fds.into_iter();
    let mut out = Vec::with_capacity(conns.len());
    let socket = |fds: &mut std::vec::IntoIter<OwnedFd>| -> Result<TcpStream, WireError> {
        let fd = fds.next().ok_or(WireError::MissingFd)?;
        // Already non-blocking: O_NONBLOCK lives on the open file
        // description, which the old generation set and we share.
        TcpStream::from_std(std::net::TcpStream::from(fd)).map_err(WireError::Socket)
    };
    for state in conns {
        let conn = match state.kind {
            ConnKind::Tunnel {
                c2u,
                u2c,
                cluster,
                upstream,
            } => ConnParts::Tunnel {
                parts: Parts {
                    client: socket(&mut fds)?,
                    upstream: socket(&mut fds)?,
                    c2u: from_wire(c2u),
                    u2c: from_wire(u2c),
                },
                cluster: Arc::from(cluster),
                upstream,
            },
            ConnKind::SpilledTunnel {
                c2u,
                u2c,
                cluster,
                upstream,
                spilled,
            } => {
                let client = socket(&mut fds)?;
                let upstream_socket = socket(&mut fds)?;
                let fd = fds.next().ok_or(WireError::MissingFd)?;
                let (c2u_pending, u2c_pending) = read_spill(fd, spilled)?;
                ConnParts::Tunnel {
                    parts: Parts {
                        client,
                        upstream: upstream_socket,
                        c2u: PipeState {
                            pending: c2u_pending,
                            ..from_wire(c2u)
                        },
                        u2c: PipeState {
                            pending: u2c_pending,
                            ..from_wire(u2c)
                        },
                    },
                    cluster: Arc::from(cluster),
                    upstream,
                }
            }
            ConnKind::Echo { pipe } => ConnParts::Echo {
                client: socket(&mut fds)?,
                pipe: from_wire(pipe),
            },
            ConnKind::Http {
                read_pending,
                spilled,
            } => {
                let client = socket(&mut fds)?;
                let pending = match spilled {
                    None => read_pending,
                    Some(len) => {
                        let fd = fds.next().ok_or(WireError::MissingFd)?;
                        read_spill(fd, (len, 0))?.0
                    }
                };
                ConnParts::Http { client, pending }
            }
            ConnKind::Rpc {
                codec,
                read_pending,
                write_pending,
                spilled,
                in_flight,
                read_closed,
            } => {
                let client = socket(&mut fds)?;
                let (read_pending, write_pending) = match spilled {
                    None => (read_pending, write_pending),
                    Some(lens) => {
                        let fd = fds.next().ok_or(WireError::MissingFd)?;
                        read_spill(fd, lens)?
                    }
                };
                let (codec, _): (CodecState, usize) = bincode::serde::decode_from_slice(
                    &codec,
                    bincode::config::standard().with_limit::<{ 1 << 20 }>(),
                )
                .map_err(WireError::DecodeCodec)?;
                ConnParts::Rpc(RpcParts {
                    client,
                    codec,
                    read_pending,
                    write_pending,
                    in_flight,
                    read_closed,
                    inbox: None,
                })
            }
        };
        out.push(Parked {
            id: ConnId(state.id),
            listener: Arc::from(state.listener),
            idle_timeout: state.idle_timeout,
            conn,
            history: History {
                started: UNIX_EPOCH + Duration::from_millis(state.started_unix_ms),
                received: state.received,
                sent: state.sent,
                moves: state.moves,
            },
        });
    }
    Ok(out)
}
