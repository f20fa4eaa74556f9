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

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::SystemTime;

    use super::*;
    use crate::codec::{CodecConfig, Protocol};
    use crate::migrate::schema::{Schema, decode_batch, encode_batch};

    /// A connected pair of sockets: ours (to park) and the peer's.
    async fn socket() -> (TcpStream, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ours = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (peer, _) = listener.accept().await.unwrap();
        (ours, peer)
    }

    fn parked(conn: ConnParts) -> Parked {
        Parked {
            id: ConnId(42),
            listener: Arc::from("front"),
            idle_timeout: Duration::from_secs(90),
            conn,
            history: History {
                started: SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_910_400_123),
                received: 10,
                sent: 20,
                moves: 1,
            },
        }
    }

    fn pipe(pending: Vec<u8>, read_closed: bool) -> PipeState {
        PipeState {
            pending,
            read_closed,
            write_closed: false,
        }
    }

    /// Large enough to go in a memfd.
    fn big(seed: u8) -> Vec<u8> {
        (0..INLINE_BYTES + 1000)
            .map(|i| (i as u8).wrapping_mul(seed))
            .collect()
    }

    /// Describes `parked`, writes it in `schema` and reads it back the
    /// way the next generation does (fds duplicated, as SCM_RIGHTS would).
    fn round_trip(parked: &Parked, schema: Schema) -> (ConnState, Parked) {
        let (state, spill) = describe(parked).unwrap();
        let mut fds: Vec<OwnedFd> = fds_of(parked)
            .into_iter()
            .map(|fd| fd.try_clone_to_owned().unwrap())
            .collect();
        fds.extend(spill);
        assert_eq!(fds.len(), state.kind.fd_count());
        let message = encode_batch(schema, 3, std::slice::from_ref(&state)).unwrap();
        let (seq, conns) = decode_batch(schema, &message).unwrap();
        assert_eq!(seq, 3);
        let mut back = rebuild_batch(conns, fds).unwrap();
        assert_eq!(back.len(), 1);
        (state, back.remove(0))
    }

    fn same_socket(a: &TcpStream, b: &TcpStream) {
        let addrs = |s: &TcpStream| -> (SocketAddr, SocketAddr) {
            (s.local_addr().unwrap(), s.peer_addr().unwrap())
        };
        assert_eq!(addrs(a), addrs(b));
    }

    fn same_head(a: &Parked, b: &Parked) {
        assert_eq!(a.id, b.id);
        assert_eq!(a.listener, b.listener);
        assert_eq!(a.idle_timeout, b.idle_timeout);
        assert_eq!(a.history.started, b.history.started);
        assert_eq!(
            (a.history.received, a.history.sent, a.history.moves),
            (b.history.received, b.history.sent, b.history.moves)
        );
    }

    /// A tunnel, small or spilled, moves with its bytes, flags and both
    /// sockets; a spilled one is schema 2's alone.
    #[tokio::test]
    async fn a_tunnel_round_trips_inline_and_spilled() {
        for (c2u, u2c, spilled) in [(b"abc".to_vec(), Vec::new(), false), (big(3), big(7), true)] {
            let ((client, _c), (upstream, _u)) = (socket().await, socket().await);
            let original = parked(ConnParts::Tunnel {
                parts: Parts {
                    client,
                    upstream,
                    c2u: pipe(c2u.clone(), true),
                    u2c: pipe(u2c.clone(), false),
                },
                cluster: Arc::from("back"),
                upstream: "127.0.0.1:9".parse().unwrap(),
            });
            let (state, back) = round_trip(&original, Schema::V2);
            assert_eq!(
                matches!(state.kind, ConnKind::SpilledTunnel { .. }),
                spilled
            );
            assert_eq!(state.writable_in(Schema::V1).is_ok(), !spilled);
            same_head(&original, &back);
            let (
                ConnParts::Tunnel {
                    parts: a,
                    cluster: ca,
                    upstream: ua,
                },
                ConnParts::Tunnel {
                    parts: b,
                    cluster: cb,
                    upstream: ub,
                },
            ) = (&original.conn, &back.conn)
            else {
                panic!("a tunnel comes back a tunnel")
            };
            assert_eq!((ca, ua), (cb, ub));
            assert_eq!(b.c2u.pending, c2u);
            assert_eq!(b.u2c.pending, u2c);
            assert_eq!(
                (b.c2u.read_closed, b.u2c.read_closed),
                (a.c2u.read_closed, a.u2c.read_closed)
            );
            same_socket(&a.client, &b.client);
            same_socket(&a.upstream, &b.upstream);
        }
    }

    #[tokio::test]
    async fn echo_and_http_round_trip_in_both_schemas() {
        for schema in [Schema::V1, Schema::V2] {
            let (client, _peer) = socket().await;
            let original = parked(ConnParts::Echo {
                client,
                pipe: pipe(b"echo".to_vec(), false),
            });
            let (_, back) = round_trip(&original, schema);
            same_head(&original, &back);
            let (ConnParts::Echo { client: a, .. }, ConnParts::Echo { client: b, pipe }) =
                (&original.conn, &back.conn)
            else {
                panic!("an echo comes back an echo")
            };
            assert_eq!(pipe.pending, b"echo");
            same_socket(a, b);

            for pending in [b"GET / HTTP/1.1\r\n".to_vec(), big(5)] {
                let (client, _peer) = socket().await;
                let original = parked(ConnParts::Http {
                    client,
                    pending: pending.clone(),
                });
                let (state, back) = round_trip(&original, schema);
                assert_eq!(
                    state.kind.fd_count(),
                    1 + usize::from(pending.len() > INLINE_BYTES)
                );
                let (
                    ConnParts::Http { client: a, .. },
                    ConnParts::Http {
                        client: b,
                        pending: got,
                    },
                ) = (&original.conn, &back.conn)
                else {
                    panic!("HTTP/1.1 comes back HTTP/1.1")
                };
                assert_eq!(*got, pending);
                same_socket(a, b);
            }
        }
    }

    #[tokio::test]
    async fn an_rpc_connection_round_trips_with_its_codec_state() {
        for (read, write) in [(vec![1, 2, 3], b"answer".to_vec()), (big(9), big(11))] {
            let (client, _peer) = socket().await;
            let codec = Protocol::Dubbo
                .codec(CodecConfig::with_max_frame_size(1 << 20).unwrap())
                .state();
            let original = parked(ConnParts::Rpc(RpcParts {
                client,
                codec: codec.clone(),
                read_pending: read.clone(),
                write_pending: write.clone(),
                in_flight: 4,
                read_closed: true,
                inbox: None,
            }));
            let (_, back) = round_trip(&original, Schema::V1);
            same_head(&original, &back);
            let (ConnParts::Rpc(a), ConnParts::Rpc(b)) = (&original.conn, &back.conn) else {
                panic!("RPC comes back RPC")
            };
            assert_eq!(b.codec, codec);
            assert_eq!((&b.read_pending, &b.write_pending), (&read, &write));
            assert_eq!((b.in_flight, b.read_closed), (4, true));
            same_socket(&a.client, &b.client);
        }
    }

    #[tokio::test]
    async fn a_batch_short_of_fds_or_with_a_huge_spill_is_refused() {
        let (client, _peer) = socket().await;
        let original = parked(ConnParts::Echo {
            client,
            pipe: pipe(Vec::new(), false),
        });
        let (state, _) = describe(&original).unwrap();
        assert!(matches!(
            rebuild_batch(vec![state.clone()], Vec::new()),
            Err(WireError::MissingFd)
        ));
        let memfd = spill_to_memfd(b"x", b"").unwrap();
        assert!(matches!(
            read_spill(memfd, (MAX_SPILL, 1)),
            Err(WireError::SpillTooLarge { .. })
        ));
    }
}
