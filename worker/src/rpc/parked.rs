//! An RPC client connection at rest and on the wire: a paused
//! [`Downstream`](super::downstream::Downstream) is an [`RpcParts`],
//! written as an [`RpcWire`], or — when its pinned upstream connections
//! or the spans of its requests in flight move with it (handoff schema 7
//! on) — as a [`RpcWireV7`]. See
//! [`crate::kind`] for the traits and `conn::state` for where they are
//! registered.

use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use serde::{Deserialize, Serialize};

use crate::codec::{AnyCodec, CodecState, Frame, RequestId};
use crate::kind::{self, Encode, Fds, INLINE_BYTES, Kind, WireError, WireForm};
use crate::rpc::downstream::{Pinned, RpcParts};
use crate::rpc::pool::{MovedRequest, ParkedUp};
use crate::telemetry::trace::{Active, MovingSpan};

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

/// Schema 7's form of an RPC client connection, written when it has more
/// than a socket and bytes to carry: the pinned upstream connections that
/// move with it, at a frame boundary on every socket, the spans of its
/// requests in flight, and its RPC filters' copies of them. fds:
/// the client, each pinned connection's socket in `pinned` order, and
/// when `spilled`, a memfd holding the byte lists (see `bytes`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RpcWireV7 {
    /// The client codec's state ([`CodecState`], bincode).
    pub codec: Vec<u8>,
    /// Requests whose responses the old generation will forward, plus
    /// those in flight on `pinned`, answered in the new one.
    pub in_flight: u64,
    pub read_closed: bool,
    pub pinned: Vec<UpWire>,
    /// The server requests passed to the client, latest last: the
    /// server's id and the cluster whose connection asked.
    pub asked: Vec<(u64, String)>,
    /// The byte lists, in this order: the client's partial frame, the
    /// bytes for the client; then for each pinned connection, its partial
    /// frame from the server, its bytes for the server, and each of its
    /// requests' frame; then the `filtered` requests. Empty when spilled.
    pub bytes: Vec<Vec<u8>>,
    /// When the byte lists went to the memfd: their lengths, in order.
    pub spilled: Option<Vec<u64>>,
    /// The spans of its requests in flight, by the client's id.
    pub traces: Vec<(u64, MovingSpan)>,
    /// The client's last request registering it with its server (a
    /// RocketMQ HEART_BEAT), whole, to replay on a connection dialled
    /// again (see `rpc::downstream`).
    pub registration: Option<Vec<u8>>,
    /// How many of the byte lists, at their end, are the requests in
    /// flight its RPC filters passed on (their responses go through the
    /// filters' response side in the new generation).
    pub filtered: u32,
}

/// A pinned upstream connection on the wire (in a [`RpcWireV7`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpWire {
    /// Its cluster's name (looked up again in the new generation).
    pub cluster: String,
    /// The endpoint it is connected to.
    pub addr: SocketAddr,
    /// Its codec's state ([`CodecState`], bincode).
    pub codec: Vec<u8>,
    /// The last request id it gave.
    pub next_id: u64,
    pub requests: Vec<RequestWire>,
}

/// A request in flight on a moving pinned connection; its frame is in
/// the byte lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestWire {
    /// The id the connection gave it (the server answers with it).
    pub id: u64,
    /// The id its client used.
    pub client_id: u64,
    /// Time left until its deadline.
    pub left: Duration,
}

impl Kind for RpcParts {
    const NAME: &'static str = "rpc";
    const FD_UNITS: u32 = 1;

    fn fds(&self) -> Vec<BorrowedFd<'_>> {
        let mut fds = vec![self.client.as_fd()];
        fds.extend(self.parked_pinned().map(|(_, conn)| conn.stream.as_fd()));
        fds
    }

    fn client(&self) -> &tokio::net::TcpStream {
        &self.client
    }
}

fn encode_codec(state: &CodecState) -> Result<Vec<u8>, WireError> {
    bincode::serde::encode_to_vec(state, bincode::config::standard())
        .map_err(WireError::EncodeCodec)
}

fn decode_codec(bytes: &[u8]) -> Result<CodecState, WireError> {
    let (codec, _): (CodecState, usize) = bincode::serde::decode_from_slice(
        bytes,
        bincode::config::standard().with_limit::<{ 1 << 20 }>(),
    )
    .map_err(WireError::DecodeCodec)?;
    Ok(codec)
}

impl<W: From<RpcWire> + From<RpcWireV7>> Encode<W> for RpcParts {
    fn encode(&self) -> Result<(W, Option<OwnedFd>), WireError> {
        if self.parked_pinned().next().is_some()
            || !self.traces.is_empty()
            || !self.filtered.is_empty()
        {
            let (wire, memfd) = self.encode_pinned()?;
            return Ok((wire.into(), memfd));
        }
        let codec = encode_codec(&self.codec)?;
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
        Ok(RpcParts {
            client,
            codec: decode_codec(&self.codec)?,
            read_pending,
            write_pending,
            in_flight: self.in_flight,
            read_closed: self.read_closed,
            inbox: None,
            pinned: Vec::new(),
            asked: Vec::new(),
            pinned_move: true,
            traces: Vec::new(),
            registration: None,
            filtered: Vec::new(),
        })
    }
}

impl RpcParts {
    /// Its form with its parked pinned connections.
    fn encode_pinned(&self) -> Result<(RpcWireV7, Option<OwnedFd>), WireError> {
        let mut bytes: Vec<&[u8]> = vec![&self.read_pending, &self.write_pending];
        let mut pinned = Vec::new();
        for (cluster, conn) in self.parked_pinned() {
            bytes.push(&conn.read_pending);
            bytes.push(&conn.write_pending);
            bytes.extend(conn.requests.iter().map(|r| r.request.as_bytes()));
            pinned.push(UpWire {
                cluster: cluster.to_string(),
                addr: conn.addr,
                codec: encode_codec(&conn.codec)?,
                next_id: conn.next_id,
                requests: conn
                    .requests
                    .iter()
                    .map(|r| RequestWire {
                        id: r.id,
                        client_id: r.client_id.0,
                        left: r.left,
                    })
                    .collect(),
            });
        }
        bytes.extend(self.filtered.iter().map(Frame::as_bytes));
        let total: usize = bytes.iter().map(|b| b.len()).sum();
        let (inline, spilled, memfd) = if total > INLINE_BYTES {
            let lens = bytes.iter().map(|b| b.len() as u64).collect();
            (Vec::new(), Some(lens), Some(kind::spill_all(&bytes)?))
        } else {
            (bytes.iter().map(|b| b.to_vec()).collect(), None, None)
        };
        let wire = RpcWireV7 {
            codec: encode_codec(&self.codec)?,
            in_flight: self.in_flight,
            read_closed: self.read_closed,
            pinned,
            asked: self
                .asked
                .iter()
                .map(|(id, cluster)| (id.0, cluster.to_string()))
                .collect(),
            bytes: inline,
            spilled,
            traces: self
                .traces
                .iter()
                .filter_map(|(id, span)| Some((id.0, span.moving()?)))
                .collect(),
            registration: self.registration.as_ref().map(|f| f.as_bytes().to_vec()),
            filtered: u32::try_from(self.filtered.len()).unwrap_or(u32::MAX),
        };
        Ok((wire, memfd))
    }
}

impl WireForm for RpcWireV7 {
    type Kind = RpcParts;
    const NAME: &'static str = "rpc with pinned upstreams, spans or filtered requests";
    const SINCE: u16 = 7;

    fn fd_count(&self) -> usize {
        1 + self.pinned.len() + usize::from(self.spilled.is_some())
    }

    fn adopt(self, fds: &mut Fds) -> Result<RpcParts, WireError> {
        let client = fds.socket()?;
        let streams = self
            .pinned
            .iter()
            .map(|_| fds.socket())
            .collect::<Result<Vec<_>, _>>()?;
        let expected = 2
            + self
                .pinned
                .iter()
                .map(|p| 2 + p.requests.len())
                .sum::<usize>()
            + self.filtered as usize;
        let bytes = match &self.spilled {
            None => self.bytes,
            Some(lens) => kind::unspill_all(fds.next_fd()?, lens)?,
        };
        if bytes.len() != expected {
            return Err(WireError::Request(format!(
                "{} byte lists where the connection has {expected}",
                bytes.len()
            )));
        }
        let mut bytes = bytes.into_iter();
        let mut next = || bytes.next().unwrap_or_default();
        let codec = decode_codec(&self.codec)?;
        let (read_pending, write_pending) = (next(), next());
        let mut pinned = Vec::with_capacity(self.pinned.len());
        for (up, stream) in self.pinned.into_iter().zip(streams) {
            let (read_pending, write_pending) = (next(), next());
            let requests = up
                .requests
                .iter()
                .map(|r| {
                    Ok(MovedRequest {
                        id: r.id,
                        client_id: RequestId(r.client_id),
                        left: r.left,
                        request: request_frame(&codec, next())?,
                    })
                })
                .collect::<Result<Vec<_>, WireError>>()?;
            pinned.push(Pinned::Parked {
                cluster: Arc::from(up.cluster),
                conn: ParkedUp {
                    stream,
                    addr: up.addr,
                    codec: decode_codec(&up.codec)?,
                    read_pending,
                    write_pending,
                    next_id: up.next_id,
                    requests,
                    permit: None,
                },
            });
        }
        let registration = match self.registration {
            Some(bytes) => Some(Box::new(request_frame(&codec, bytes)?)),
            None => None,
        };
        let filtered = (0..self.filtered)
            .map(|_| request_frame(&codec, next()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RpcParts {
            client,
            codec,
            read_pending,
            write_pending,
            in_flight: self.in_flight,
            read_closed: self.read_closed,
            inbox: None,
            pinned,
            asked: self
                .asked
                .into_iter()
                .map(|(id, cluster)| (RequestId(id), Arc::from(cluster)))
                .collect(),
            pinned_move: true,
            traces: self
                .traces
                .into_iter()
                .map(|(id, span)| (RequestId(id), Active::moved(span)))
                .collect(),
            registration,
            filtered,
        })
    }
}

/// A moved request's frame, read back with the client's codec (which
/// reads what clients send): exactly one whole frame.
fn request_frame(
    client_codec: &CodecState,
    bytes: Vec<u8>,
) -> Result<crate::codec::Frame, WireError> {
    let mut codec = AnyCodec::from_state(client_codec.clone())
        .map_err(|e| WireError::Request(e.to_string()))?;
    let mut buf = BytesMut::from(&bytes[..]);
    match codec.decode(&mut buf) {
        Ok(Some(frame)) if buf.is_empty() => Ok(frame),
        Ok(Some(_)) => Err(WireError::Request("bytes after its frame".into())),
        Ok(None) => Err(WireError::Request("not a whole frame".into())),
        Err(e) => Err(WireError::Request(e.to_string())),
    }
}
