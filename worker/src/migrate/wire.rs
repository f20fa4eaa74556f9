//! A parked connection on the wire and back: `describe` turns a
//! [`Parked`] into the handoff schema's [`ConnState`] (with `fds_of` the
//! descriptors that travel beside it), and `rebuild_batch` turns received
//! states and fds back into parked connections.
//!
//! What each kind is on the wire is the kind's own ([`crate::kind`]: its
//! parked form encodes itself, its wire forms adopt themselves); this
//! module writes and reads what every connection has (id, listener, idle
//! timeout, history) and dispatches the rest through the registry's enums
//! ([`crate::conn::state::ConnParts`], [`crate::conn::state::ConnKind`]).
//! Pending bytes up to
//! [`crate::kind::INLINE_BYTES`] travel inside the state; more go in a
//! memfd sent after the connection's own fds, and a peer's spill is
//! refused past [`crate::kind::MAX_SPILL`].

use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use crate::conn::state::{ConnId, History, Parked};
use crate::kind::{Ends, Fds};
use crate::migrate::schema::{ConnState, EndsWire};

pub(crate) use crate::kind::WireError;

/// A parked connection as it travels, and the memfd holding its large
/// pending bytes, if any.
pub(crate) fn describe(parked: &Parked) -> Result<(ConnState, Option<OwnedFd>), WireError> {
    let (kind, spill) = parked.conn.encode()?;
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
        ends: parked.ends.map(|e| EndsWire {
            source: e.source,
            destination: e.destination,
        }),
    };
    Ok((state, spill))
}

/// The fds that travel with a parked connection, in its wire form's order
/// (a spill memfd, when there is one, is added after them).
pub(crate) fn fds_of(parked: &Parked) -> Vec<BorrowedFd<'_>> {
    parked.conn.fds()
}

/// Received states and fds → connections ready to run (registered with
/// this runtime, not yet polled).
pub(crate) fn rebuild_batch(
    conns: Vec<ConnState>,
    fds: Vec<OwnedFd>,
) -> Result<Vec<Parked>, WireError> {
    let mut fds = Fds::new(fds);
    let mut out = Vec::with_capacity(conns.len());
    for state in conns {
        let conn = state.kind.adopt(&mut fds)?;
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
            ends: state.ends.map(|e| Ends {
                source: e.source,
                destination: e.destination,
            }),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::SystemTime;

    use tokio::net::TcpStream;

    use super::*;
    use crate::codec::RequestId;
    use crate::codec::{CodecConfig, Protocol};
    use crate::conn::state::ConnParts;
    use crate::http::parked::ParkedH1;
    use crate::kind::{INLINE_BYTES, MAX_SPILL, unspill};
    use crate::l4::parked::{ParkedEcho, ParkedTunnel};
    use crate::l4::pipe::PipeState;
    use crate::l4::tunnel::Parts;
    use crate::migrate::schema::{ConnKind, Schema, decode_batch, encode_batch};
    use crate::rpc::downstream::{Pinned, RpcParts};
    use crate::rpc::pool::{MovedRequest, ParkedUp};

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
            ends: None,
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
            let original = parked(ConnParts::Tunnel(ParkedTunnel {
                parts: Parts {
                    client,
                    upstream,
                    c2u: pipe(c2u.clone(), true),
                    u2c: pipe(u2c.clone(), false),
                },
                cluster: Arc::from("back"),
                upstream: "127.0.0.1:9".parse().unwrap(),
            }));
            let (state, back) = round_trip(&original, Schema::V2);
            assert_eq!(matches!(state.kind, ConnKind::SpilledTunnel(_)), spilled);
            assert_eq!(state.writable_in(Schema::V1).is_ok(), !spilled);
            same_head(&original, &back);
            let (
                ConnParts::Tunnel(ParkedTunnel {
                    parts: a,
                    cluster: ca,
                    upstream: ua,
                }),
                ConnParts::Tunnel(ParkedTunnel {
                    parts: b,
                    cluster: cb,
                    upstream: ub,
                }),
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
            let original = parked(ConnParts::Echo(ParkedEcho {
                client,
                pipe: pipe(b"echo".to_vec(), false),
            }));
            let (_, back) = round_trip(&original, schema);
            same_head(&original, &back);
            let (
                ConnParts::Echo(ParkedEcho { client: a, .. }),
                ConnParts::Echo(ParkedEcho { client: b, pipe }),
            ) = (&original.conn, &back.conn)
            else {
                panic!("an echo comes back an echo")
            };
            assert_eq!(pipe.pending, b"echo");
            same_socket(a, b);

            for pending in [b"GET / HTTP/1.1\r\n".to_vec(), big(5)] {
                let (client, _peer) = socket().await;
                let original = parked(ConnParts::Http(ParkedH1 {
                    client,
                    pending: pending.clone(),
                }));
                let (state, back) = round_trip(&original, schema);
                assert_eq!(
                    state.kind.fd_count(),
                    1 + usize::from(pending.len() > INLINE_BYTES)
                );
                let (
                    ConnParts::Http(ParkedH1 { client: a, .. }),
                    ConnParts::Http(ParkedH1 {
                        client: b,
                        pending: got,
                    }),
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
                pinned: Vec::new(),
                asked: Vec::new(),
                pinned_move: true,
                traces: Vec::new(),
                registration: None,
                filtered: Vec::new(),
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

    /// A RocketMQ client connection with its parked broker connection:
    /// both sockets, every byte list (inline and spilled), the requests
    /// in flight on the broker connection and the broker's asks come back
    /// as they left; schema 7's alone.
    #[tokio::test]
    async fn an_rpc_connection_round_trips_with_its_pinned_upstream() {
        let config = CodecConfig::default();
        let request = {
            let (_, bytes) = Protocol::RocketMq.fixtures()[0];
            let mut buf = bytes::BytesMut::from(bytes);
            Protocol::RocketMq
                .codec(config)
                .decode(&mut buf)
                .unwrap()
                .unwrap()
        };
        for to_broker in [b"SEND".to_vec(), big(5)] {
            let ((client, _c), (broker, _b)) = (socket().await, socket().await);
            let original = parked(ConnParts::Rpc(RpcParts {
                client,
                codec: Protocol::RocketMq.codec(config).state(),
                read_pending: vec![0, 0, 1],
                write_pending: b"for the client".to_vec(),
                in_flight: 3,
                read_closed: false,
                inbox: None,
                pinned: vec![Pinned::Parked {
                    cluster: Arc::from("broker-a"),
                    conn: ParkedUp {
                        stream: broker,
                        addr: "127.0.0.1:10911".parse().unwrap(),
                        codec: Protocol::RocketMq.upstream_codec(config).state(),
                        read_pending: vec![0, 0],
                        write_pending: to_broker.clone(),
                        next_id: 12,
                        requests: vec![MovedRequest {
                            id: 11,
                            client_id: RequestId(5),
                            left: Duration::from_millis(2500),
                            request: request.clone(),
                        }],
                        permit: None,
                    },
                }],
                asked: vec![(RequestId(9), Arc::from("broker-a"))],
                pinned_move: true,
                traces: Vec::new(),
                registration: Some(Box::new(request.clone())),
                filtered: vec![request.clone()],
            }));
            let (state, back) = round_trip(&original, Schema::V7);
            assert!(matches!(state.kind, ConnKind::RpcV7(_)));
            assert!(state.writable_in(Schema::V6).is_err());
            same_head(&original, &back);
            let (ConnParts::Rpc(a), ConnParts::Rpc(b)) = (&original.conn, &back.conn) else {
                panic!("RPC comes back RPC")
            };
            same_socket(&a.client, &b.client);
            assert_eq!(
                (&b.read_pending, &b.write_pending),
                (&a.read_pending, &a.write_pending)
            );
            assert_eq!((b.in_flight, b.forwarded_in_flight()), (3, 2));
            assert_eq!(b.asked, a.asked);
            assert_eq!(
                b.registration.as_ref().map(|f| f.as_bytes()),
                Some(request.as_bytes())
            );
            let filtered: Vec<&[u8]> = b.filtered.iter().map(|f| f.as_bytes()).collect();
            assert_eq!(filtered, vec![request.as_bytes()]);
            let ([(_, x)], [(name, y)]) = (
                &a.parked_pinned().collect::<Vec<_>>()[..],
                &b.parked_pinned().collect::<Vec<_>>()[..],
            ) else {
                panic!("one pinned connection each")
            };
            assert_eq!(&***name, "broker-a");
            same_socket(&x.stream, &y.stream);
            assert_eq!((y.addr, &y.codec, y.next_id), (x.addr, &x.codec, 12));
            assert_eq!(
                (&y.read_pending, &y.write_pending),
                (&x.read_pending, &to_broker)
            );
            let (rx, ry) = (&x.requests[0], &y.requests[0]);
            assert_eq!(
                (ry.id, ry.client_id, ry.left),
                (rx.id, rx.client_id, rx.left)
            );
            assert_eq!(ry.request.as_bytes(), rx.request.as_bytes());
        }
    }

    #[tokio::test]
    async fn a_batch_short_of_fds_or_with_a_huge_spill_is_refused() {
        let (client, _peer) = socket().await;
        let original = parked(ConnParts::Echo(ParkedEcho {
            client,
            pipe: pipe(Vec::new(), false),
        }));
        let (state, _) = describe(&original).unwrap();
        assert!(matches!(
            rebuild_batch(vec![state.clone()], Vec::new()),
            Err(WireError::MissingFd)
        ));
        let memfd = crate::kind::spill(b"x", b"").unwrap();
        assert!(matches!(
            unspill(memfd, (MAX_SPILL, 1)),
            Err(WireError::SpillTooLarge { .. })
        ));
    }
}
