//! The handoff schema: what a connection is on the handoff channel, which
//! versions of that this build speaks ([`HANDOFF_VERSIONS`]), how two
//! generations agree on one ([`handshake`]), and how a batch is written
//! and read in each ([`encode_batch`], [`decode_batch`]).
//!
//! `baton_ipc` frames and carries a batch without knowing what is in it
//! (`ConnBatch { seq, schema, fds, body }`, or schema 1's `ConnBatchV1`
//! whose frame body is the batch itself), so the supervisor, which only
//! passes the channel's ends, never compiles the worker's data model.
//!
//! ```text
//! schema 1: message kind 13 (ConnBatchV1)    schema 2: message kind 23 (ConnBatch)
//!   body = bincode { seq: u64,                 envelope: seq: u64, schema: u16 = 2,
//!                    conns: [ConnState] }                fds: u16 (all the batch's)
//!   fds  = every connection's, in order        body = bincode [ConnState]
//!                                              fds  = every connection's, in order
//!
//! ConnState (the same bytes in both):
//!   id: u64, listener: string, idle_timeout: {secs: u64, nanos: u32},
//!   kind: ConnKind (variant index, then its fields),
//!   started_unix_ms: u64, received: u64, sent: u64, moves: u32
//! ConnKind variants: 0 Tunnel, 1 Echo, 2 Rpc, 3 Http (also TLS before its
//!   ClientHello: nothing pending), 4 SpilledTunnel (schema 2 on, see
//!   below), 5 RpcV7 (schema 7 on)
//!   — each variant one kind's wire form, a struct defined in the kind's
//!   module, listed in this order by the registry in `conn::state`
//!
//! schema 3: batches as in schema 2 (`schema: u16 = 3`), and before the
//!   first one, right after the Hellos, the old generation's endpoint
//!   health (`migrate::health`), message kind 26 (HealthBatch):
//!   envelope: schema: u16 = 3, last: bool
//!   body = bincode [EndpointState]
//!
//! EndpointState:
//!   cluster: string, address: SocketAddr (serde: variant V4 0 / V6 1, then
//!   the address's octets and port), health: 0 Unknown | 1 Healthy |
//!   2 Unhealthy, ejected_for: Option<{secs: u64, nanos: u32}> (time left),
//!   ejections: u32, consecutive_errors: u32
//!
//! schema 4: as schema 3, and after the last health batch, the rate
//!   limits' token buckets (`migrate::health`), message kind 26 again:
//!   envelope: schema: u16 = 4, last: bool
//!   body = bincode [BucketState]
//!
//! BucketState:
//!   place: string (`http:<listener>:<position>`,
//!   `http:<listener>:route<index>:<position>`, `rpc:<listener>:<position>`),
//!   key: Option<BucketKey: 0 Ip(IpAddr, as SocketAddr's ip) | 1 Value(bytes)>,
//!   tokens: u64, since_fill: {secs: u64, nanos: u32}
//!
//!   and after the last bucket batch, the proxy-wasm plugins' shared data,
//!   message kind 26 again (schema 4, last): body = bincode [SharedEntry]
//!
//! SharedEntry:
//!   key: bytes, value: bytes, cas: u32
//!
//! schema 5: as schema 4, and every ConnState in a batch is followed by
//!   the addresses its PROXY protocol header gave (`kind::Ends`):
//!   ends: Option<{ source: Option<SocketAddr>, destination:
//!   Option<SocketAddr> }> — None for a connection without a header. A
//!   connection with a header has no form in schemas 1–4: it stays in the
//!   old generation and drains there.
//!
//! schema 6: as schema 5, and after the last shared-data batch, the UDP
//!   flows (`migrate::flows`), message kind 27 (FlowBatch), each with its
//!   sockets' fds beside it (at least one message, `last` on the final one):
//!   envelope: schema: u16 = 6, last: bool, fds: u16
//!   body = bincode [FlowState]
//!   fds  = each flow's upstream socket, then its reply socket if it has one
//!
//! FlowState:
//!   listener: string, client: SocketAddr, destination: Option<SocketAddr>,
//!   cluster: string, endpoint: SocketAddr, reply_socket: bool,
//!   idle_for: {secs: u64, nanos: u32} (since a datagram last moved),
//!   started_unix_ms: u64, received: u64, sent: u64, moves: u32
//!
//! schema 7: as schema 6, and a new connection form, ConnKind variant 5
//!   RpcV7 (`rpc::parked::RpcWireV7`): an RPC client connection with the
//!   pinned upstream connections that move with it (RocketMQ's broker
//!   connections, `move_pinned_upstreams`), the spans of its requests in
//!   flight (`[tracing]`) or its RPC filters' copies of them; one with
//!   none of these is still written as Rpc:
//!   codec: bytes, in_flight: u64, read_closed: bool,
//!   pinned: [UpWire { cluster: string, addr: SocketAddr, codec: bytes,
//!            next_id: u64, requests: [{ id: u64, client_id: u64,
//!            left: {secs: u64, nanos: u32} }] }],
//!   asked: [(u64, string)],
//!   bytes: [bytes] (the client's partial frame and unwritten bytes, then
//!          per pinned connection its partial frame, its unwritten bytes
//!          and each request's frame, then the filtered requests; empty
//!          when spilled),
//!   spilled: Option<[u64]> (the same lists' lengths, in a memfd),
//!   traces: [(u64 the client's request id, MovingSpan { trace_id: u128,
//!            span_id: u64, parent: Option<u64>, trace_state:
//!            Option<string>, sampled: bool, start_unix_nanos: u64,
//!            listener: string, client: Option<SocketAddr>, cluster:
//!            Option<string>, system: string, service: Option<string>,
//!            method: Option<string> })],
//!   registration: Option<bytes> (the client's last registering request,
//!            a whole frame: RocketMQ's HEART_BEAT),
//!   filtered: u32 (how many of `bytes`, at their end, are the requests in
//!            flight its RPC filters passed on, whole frames)
//!   fds = the client, each pinned connection's socket, the memfd if any
//! ```
//!
//! (bincode 2, standard config: integers as varints, a string or a byte
//! list as its length then its bytes, a struct as its fields in order, an
//! enum as its variant index then its fields.)
//!
//! # Versioning
//!
//! * Both generations send [`HANDOFF_VERSIONS`] in their handoff `Hello`
//!   and take the highest version both list. The old generation writes
//!   every batch in that version; this build reads and writes every version
//!   it lists, so an upgrade *and a rollback* between this release and the
//!   previous one (schema 1 only) move connections.
//! * A connection that has no form in the agreed version is not sent: it
//!   stays in the old generation and drains there, counted
//!   ([`SchemaError::Unsupported`]). `ConnKind::SpilledTunnel` (variant 4)
//!   was added to schema 1 after workers that speak schema 1 had shipped,
//!   and such a worker dies on it mid-batch; so it is written only in
//!   schema 2, and read in both (the release before this one writes it).
//! * With no version in common, nothing moves and nothing is refused: the
//!   new generation takes the listeners and the old one drains
//!   ([`Agreed::Drain`]; the `migrate` module doc has the sequence).
//! * Changing how any kind is written — a field, a variant, the codec
//!   state an RPC connection carries — means a new version: the golden
//!   fixtures (`fixtures/schema-N/*.hex`, checked by this module's tests)
//!   hold the bytes of every kind in every version this build speaks, and
//!   fail when they change. Adding version N+1: a [`Schema`] constant, its
//!   arms in [`encode_batch`]/[`decode_batch`]/[`ConnState::writable_in`],
//!   `N+1` in [`HANDOFF_VERSIONS`], and its fixtures. Dropping the oldest
//!   version is a deliberate edit of [`HANDOFF_VERSIONS`] (and its
//!   fixtures), never a side effect.

use std::time::Duration;

use baton_ipc::{Channel, ConnBatch, ConnBatchV1, FlowBatch, HealthBatch, IpcError, Message, Role};
use serde::{Deserialize, Serialize};

/// Handoff schema versions this build speaks, oldest first: the previous
/// releases' (1 to 6) and this one's (7).
pub const HANDOFF_VERSIONS: &[u16] = &[
    Schema::V1.0,
    Schema::V2.0,
    Schema::V3.0,
    Schema::V4.0,
    Schema::V5.0,
    Schema::V6.0,
    Schema::V7.0,
];

/// A handoff schema version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Schema(pub u16);

impl Schema {
    /// Schema 1, as workers up to 3c3e9b9 speak it: kind-13 batches whose
    /// body is `{seq, conns}`. Never carries `SpilledTunnel` from this
    /// build (see the module doc).
    pub const V1: Schema = Schema(1);
    /// Schema 2: kind-23 batches (`ConnBatch { seq, schema, fds, body }`);
    /// the connections are written as in schema 1, and a tunnel whose
    /// pending bytes went to a memfd (`SpilledTunnel`) may be among them.
    pub const V2: Schema = Schema(2);
    /// Schema 3: connections as in schema 2 (kind-23 batches saying
    /// `schema: 3`), and before them, right after the `Hello`s, the old
    /// generation's endpoint health ([`EndpointState`] lists in kind-26
    /// `HealthBatch`es; see the module doc).
    pub const V3: Schema = Schema(3);
    /// Schema 4: as schema 3, and after the endpoint health, the rate
    /// limits' token buckets ([`BucketState`] lists in more kind-26
    /// batches) and the proxy-wasm plugins' shared data
    /// ([`SharedEntry`] lists); see the module doc.
    pub const V4: Schema = Schema(4);
    /// Schema 5: as schema 4, and each connection's PROXY protocol
    /// addresses after it ([`EndsWire`]); see the module doc.
    pub const V5: Schema = Schema(5);
    /// Schema 6: as schema 5, and after the plugins' shared data, the UDP
    /// flows with their sockets ([`FlowState`] lists in kind-27
    /// `FlowBatch`es); see the module doc.
    pub const V6: Schema = Schema(6);
    /// Schema 7: as schema 6, and an RPC client connection may move with
    /// its pinned upstream connections and the spans of its requests in
    /// flight (`ConnKind::RpcV7`); see the module doc.
    pub const V7: Schema = Schema(7);

    /// Whether the old generation sends its endpoint health in this
    /// version (before the new one accepts).
    pub fn carries_health(self) -> bool {
        self >= Schema::V3
    }

    /// Whether the old generation sends its rate limits' buckets in this
    /// version (after its endpoint health).
    pub fn carries_buckets(self) -> bool {
        self >= Schema::V4
    }

    /// Whether the old generation hands its UDP flows over in this
    /// version (after its shared data, before the new one accepts).
    pub fn carries_flows(self) -> bool {
        self >= Schema::V6
    }

    /// Whether an RPC client connection's pinned upstream connections
    /// (and its requests' spans) can move with it in this version.
    pub fn carries_pinned(self) -> bool {
        self >= Schema::V7
    }
}

impl std::fmt::Display for Schema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What two generations agreed on in their handoff `Hello`s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Agreed {
    /// The highest schema both speak: connections move in it.
    Schema(Schema),
    /// No schema in common: nothing moves; the new generation takes the
    /// listeners and the old one drains (DESIGN §4).
    Drain { ours: Vec<u16>, theirs: Vec<u16> },
}

/// The `Hello` exchange that opens the handoff channel, within
/// `baton_ipc::HELLO_TIMEOUT`. Unlike ctrl, no version in common is not a
/// refusal but [`Agreed::Drain`]. (A peer of the release before this one
/// refuses instead; but it speaks schema 1, which this build speaks too.)
pub async fn handshake(chan: &Channel, versions: &[u16]) -> Result<Agreed, IpcError> {
    let peer = chan.exchange_hellos(Role::Worker, versions).await?;
    Ok(agree(versions, &peer.versions))
}

/// The highest version both lists hold, or [`Agreed::Drain`].
pub fn agree(ours: &[u16], theirs: &[u16]) -> Agreed {
    match ours.iter().filter(|v| theirs.contains(v)).max() {
        Some(version) => Agreed::Schema(Schema(*version)),
        None => Agreed::Drain {
            ours: ours.to_vec(),
            theirs: theirs.to_vec(),
        },
    }
}

// The wire forms are the kinds' own (each kind's `parked` module),
// listed in wire order by the registry in `conn::state`.
pub use crate::conn::state::ConnKind;
pub use crate::l4::parked::PipeWire;

/// One connection in a handoff batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnState {
    /// The old generation's id for it (for logs, and for the responses
    /// forwarded to it).
    pub id: u64,
    /// The listener that accepted it.
    pub listener: String,
    pub idle_timeout: Duration,
    pub kind: ConnKind,
    /// Its life so far, for the access log of the generation where it
    /// ends: when it was accepted (ms since the Unix epoch), bytes moved
    /// by earlier generations, upgrades crossed before this one.
    pub started_unix_ms: u64,
    pub received: u64,
    pub sent: u64,
    pub moves: u32,
    /// The addresses its PROXY protocol header gave, if it came with one
    /// (schema 5 on; written after the fields above, see
    /// [`encode_batch`]).
    #[serde(skip)]
    pub ends: Option<EndsWire>,
}

/// A connection's PROXY protocol addresses on the wire (schema 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndsWire {
    pub source: Option<std::net::SocketAddr>,
    pub destination: Option<std::net::SocketAddr>,
}

/// Schema 5's connection: the state, then its addresses.
#[derive(Serialize)]
struct WithEnds<'a> {
    conn: &'a ConnState,
    ends: &'a Option<EndsWire>,
}

/// [`WithEnds`], read.
#[derive(Deserialize)]
struct WithEndsOwned {
    conn: ConnState,
    ends: Option<EndsWire>,
}

impl ConnState {
    /// Whether this connection has a form in `schema`; if not, it stays
    /// in the old generation and drains there.
    pub fn writable_in(&self, schema: Schema) -> Result<(), SchemaError> {
        if !matches!(
            schema,
            Schema::V1
                | Schema::V2
                | Schema::V3
                | Schema::V4
                | Schema::V5
                | Schema::V6
                | Schema::V7
        ) {
            return Err(SchemaError::UnknownSchema(schema));
        }
        if self.ends.is_some() && schema < Schema::V5 {
            return Err(SchemaError::Unsupported {
                kind: "a connection with a PROXY protocol header",
                schema,
            });
        }
        if schema.0 < self.kind.since() {
            return Err(SchemaError::Unsupported {
                kind: self.kind.name(),
                schema,
            });
        }
        Ok(())
    }
}

/// Why a batch could not be written or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SchemaError {
    /// This kind has no form in `schema`: the connection stays in its
    /// generation and drains.
    #[error("a {kind} connection cannot be written in handoff schema {schema}")]
    Unsupported { kind: &'static str, schema: Schema },
    #[error("handoff schema {0} is not one this worker speaks")]
    UnknownSchema(Schema),
    #[error("encode a batch in handoff schema {schema}: {source}")]
    Encode {
        schema: Schema,
        #[source]
        source: bincode::error::EncodeError,
    },
    #[error("decode a batch in handoff schema {schema}: {source}")]
    Decode {
        schema: Schema,
        #[source]
        source: bincode::error::DecodeError,
    },
    #[error("a batch in handoff schema {schema} has {extra} bytes left over")]
    Trailing { schema: Schema, extra: usize },
    #[error("a batch in handoff schema {got}, but schema {agreed} was agreed")]
    WrongSchema { got: Schema, agreed: Schema },
    #[error("a batch's connections use {described} fds, but {carried} came with it")]
    FdCount { described: usize, carried: usize },
    #[error("a batch's fd count {0} does not fit the envelope")]
    TooManyFds(usize),
    #[error("a {0:?} message is not a connection batch")]
    NotABatch(baton_ipc::Kind),
    #[error("a {0:?} message is not a health batch")]
    NotHealth(baton_ipc::Kind),
    #[error("handoff schema {0} does not carry that part of a generation's state")]
    NoHealth(Schema),
    #[error("an endpoint's health ({0} bytes) does not fit a datagram")]
    RecordTooLarge(usize),
    #[error("a {0:?} message is not a flow batch")]
    NotFlows(baton_ipc::Kind),
    #[error("a flow batch: {0}")]
    FlowBatch(#[source] IpcError),
}

/// bincode counts its limit in decoded bytes (a one-byte varint claims
/// the 8 of its `u64`): a few datagrams' worth, so that a hostile length
/// prefix allocates no more.
const DECODE_LIMIT: usize = 8 * baton_ipc::MAX_DATAGRAM;

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<DECODE_LIMIT>()
}

fn encode<T: Serialize>(schema: Schema, value: &T) -> Result<Vec<u8>, SchemaError> {
    bincode::serde::encode_to_vec(value, config())
        .map_err(|source| SchemaError::Encode { schema, source })
}

fn decode<T: serde::de::DeserializeOwned>(schema: Schema, body: &[u8]) -> Result<T, SchemaError> {
    let (value, used) = bincode::serde::decode_from_slice(body, config())
        .map_err(|source| SchemaError::Decode { schema, source })?;
    if used != body.len() {
        return Err(SchemaError::Trailing {
            schema,
            extra: body.len() - used,
        });
    }
    Ok(value)
}

/// The message carrying batch `seq` of `conns` in `schema`. Every
/// connection must be [`ConnState::writable_in`] it; their fds (in order)
/// go beside the message.
pub fn encode_batch(schema: Schema, seq: u64, conns: &[ConnState]) -> Result<Message, SchemaError> {
    for conn in conns {
        conn.writable_in(schema)?;
    }
    let count: usize = conns.iter().map(|c| c.kind.fd_count()).sum();
    let fds = u16::try_from(count).map_err(|_| SchemaError::TooManyFds(count))?;
    match schema {
        Schema::V1 => Ok(Message::ConnBatchV1(ConnBatchV1 {
            fds,
            // A struct is its fields in order: the same bytes as schema
            // 1's `ConnBatch { seq, conns }`.
            body: encode(schema, &(seq, conns))?,
        })),
        Schema::V2 | Schema::V3 | Schema::V4 => Ok(Message::ConnBatch(ConnBatch {
            seq,
            schema: schema.0,
            fds,
            body: encode(schema, &conns)?,
        })),
        Schema::V5 | Schema::V6 | Schema::V7 => {
            let with: Vec<WithEnds<'_>> = conns
                .iter()
                .map(|conn| WithEnds {
                    conn,
                    ends: &conn.ends,
                })
                .collect();
            Ok(Message::ConnBatch(ConnBatch {
                seq,
                schema: schema.0,
                fds,
                body: encode(schema, &with)?,
            }))
        }
        other => Err(SchemaError::UnknownSchema(other)),
    }
}

/// Reads a batch message in the `agreed` schema: its sequence number and
/// connections.
pub fn decode_batch(
    agreed: Schema,
    message: &Message,
) -> Result<(u64, Vec<ConnState>), SchemaError> {
    let (got, fds, decoded) = match message {
        Message::ConnBatchV1(batch) => (
            Schema::V1,
            batch.fds,
            decode::<(u64, Vec<ConnState>)>(Schema::V1, &batch.body),
        ),
        Message::ConnBatch(batch) => {
            let got = Schema(batch.schema);
            let decoded = match got {
                Schema::V2 | Schema::V3 | Schema::V4 => {
                    decode::<Vec<ConnState>>(got, &batch.body).map(|c| (batch.seq, c))
                }
                Schema::V5 | Schema::V6 | Schema::V7 => {
                    decode::<Vec<WithEndsOwned>>(got, &batch.body).map(|with| {
                        let conns = with
                            .into_iter()
                            .map(|w| ConnState {
                                ends: w.ends,
                                ..w.conn
                            })
                            .collect();
                        (batch.seq, conns)
                    })
                }
                other => Err(SchemaError::UnknownSchema(other)),
            };
            (got, batch.fds, decoded)
        }
        other => return Err(SchemaError::NotABatch(other.kind())),
    };
    if got != agreed {
        return Err(SchemaError::WrongSchema { got, agreed });
    }
    decoded.and_then(|(seq, conns)| {
        let described: usize = conns.iter().map(|c| c.kind.fd_count()).sum();
        if described != usize::from(fds) {
            return Err(SchemaError::FdCount {
                described,
                carried: usize::from(fds),
            });
        }
        Ok((seq, conns))
    })
}

/// What an endpoint's active checks say, on the wire (schema 3 on).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EndpointHealth {
    /// Not checked (yet), or its cluster has no active check.
    Unknown,
    Healthy,
    Unhealthy,
}

/// One upstream endpoint as the old generation sees it (schema 3 on):
/// what the new generation starts from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointState {
    /// The cluster's name and the endpoint's address: the key the new
    /// generation looks it up by.
    pub cluster: String,
    pub address: std::net::SocketAddr,
    pub health: EndpointHealth,
    /// How much longer it stays ejected, if it is: a duration, since an
    /// instant means nothing in another process.
    pub ejected_for: Option<Duration>,
    /// Times it has been ejected (the next ejection lasts longer).
    pub ejections: u32,
    /// Its current run of errors, for outlier detection.
    pub consecutive_errors: u32,
}

/// The body bytes a health batch may hold: a datagram's, less room for
/// the message's own fields.
const HEALTH_BODY: usize = baton_ipc::MAX_BODY - 64;

/// The messages carrying `endpoints` in `schema`: as many
/// `HealthBatch`es as datagrams need (at least one, `last` on the final
/// one).
pub fn encode_health(
    schema: Schema,
    endpoints: &[EndpointState],
) -> Result<Vec<Message>, SchemaError> {
    if !schema.carries_health() {
        return Err(SchemaError::NoHealth(schema));
    }
    encode_runs(schema, endpoints)
}

/// Reads a health batch in the `agreed` schema: its endpoints, and
/// whether it is the last.
pub fn decode_health(
    agreed: Schema,
    message: &Message,
) -> Result<(Vec<EndpointState>, bool), SchemaError> {
    decode_run(agreed, message, Schema::carries_health)
}

/// The messages carrying `buckets` in `schema` (one that
/// [`Schema::carries_buckets`]), as [`encode_health`] cuts them.
pub fn encode_buckets(
    schema: Schema,
    buckets: &[BucketState],
) -> Result<Vec<Message>, SchemaError> {
    if !schema.carries_buckets() {
        return Err(SchemaError::NoHealth(schema));
    }
    encode_runs(schema, buckets)
}

/// Reads a bucket batch in the `agreed` schema: its buckets, and whether
/// it is the last.
pub fn decode_buckets(
    agreed: Schema,
    message: &Message,
) -> Result<(Vec<BucketState>, bool), SchemaError> {
    decode_run(agreed, message, Schema::carries_buckets)
}

/// `items` in as many kind-26 batches as datagrams need (at least one,
/// `last` on the final one), cut by encoded size: a list is its length
/// (a varint, ≤ 10 bytes) then its elements' bytes.
fn encode_runs<T: Serialize>(schema: Schema, items: &[T]) -> Result<Vec<Message>, SchemaError> {
    let mut runs: Vec<&[T]> = Vec::new();
    let (mut start, mut size) = (0, 10);
    for (i, item) in items.iter().enumerate() {
        let len = encode(schema, item)?.len();
        if 10 + len > HEALTH_BODY {
            return Err(SchemaError::RecordTooLarge(len));
        }
        if size + len > HEALTH_BODY {
            runs.push(&items[start..i]);
            (start, size) = (i, 10);
        }
        size += len;
    }
    runs.push(&items[start..]);
    let count = runs.len();
    runs.into_iter()
        .enumerate()
        .map(|(i, run)| {
            Ok(Message::HealthBatch(HealthBatch {
                schema: schema.0,
                last: i + 1 == count,
                body: encode(schema, &run)?,
            }))
        })
        .collect()
}

/// One kind-26 batch in the `agreed` schema, which must carry what is
/// read (`carries`).
fn decode_run<T: serde::de::DeserializeOwned>(
    agreed: Schema,
    message: &Message,
    carries: fn(Schema) -> bool,
) -> Result<(Vec<T>, bool), SchemaError> {
    let Message::HealthBatch(batch) = message else {
        return Err(SchemaError::NotHealth(message.kind()));
    };
    let got = Schema(batch.schema);
    if got != agreed {
        return Err(SchemaError::WrongSchema { got, agreed });
    }
    if !HANDOFF_VERSIONS.contains(&got.0) {
        return Err(SchemaError::UnknownSchema(got));
    }
    if !carries(got) {
        return Err(SchemaError::NoHealth(got));
    }
    Ok((decode(got, &batch.body)?, batch.last))
}

/// One token bucket of a rate-limit filter, as the old generation has it
/// (schema 4 on).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketState {
    /// Which filter: `http:<listener>:<position>`,
    /// `http:<listener>:route<index>:<position>` or
    /// `rpc:<listener>:<position>` (positions in the filter lists).
    pub place: String,
    /// Its key (`None`: the filter's unkeyed bucket).
    pub key: Option<BucketKey>,
    pub tokens: u64,
    /// How long ago it was last filled.
    pub since_fill: Duration,
}

/// One key of the proxy-wasm plugins' shared data (schema 4 on).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedEntry {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub cas: u32,
}

/// The messages carrying `entries` in `schema` (one that
/// [`Schema::carries_buckets`]), cut as [`encode_health`] cuts them; an
/// entry too large for a datagram is left out (and named in the error
/// list returned beside).
pub fn encode_shared(
    schema: Schema,
    entries: &[SharedEntry],
) -> Result<(Vec<Message>, usize), SchemaError> {
    if !schema.carries_buckets() {
        return Err(SchemaError::NoHealth(schema));
    }
    let mut fitting = Vec::with_capacity(entries.len());
    for entry in entries {
        if 10 + encode(schema, entry)?.len() <= HEALTH_BODY {
            fitting.push(entry.clone());
        }
    }
    let left_out = entries.len() - fitting.len();
    Ok((encode_runs(schema, &fitting)?, left_out))
}

/// Reads a shared-data batch in the `agreed` schema: its entries, and
/// whether it is the last.
pub fn decode_shared(
    agreed: Schema,
    message: &Message,
) -> Result<(Vec<SharedEntry>, bool), SchemaError> {
    decode_run(agreed, message, Schema::carries_buckets)
}

/// A keyed bucket's key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BucketKey {
    Ip(std::net::IpAddr),
    Value(Vec<u8>),
}

#[cfg(test)]
mod tests;

/// One UDP flow as the old generation hands it over (schema 6 on): with
/// its sockets' fds beside it, what the new generation needs to go on
/// relaying it with the same 5-tuple.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowState {
    /// The udp listener it came in on, and the client's address: the key
    /// of the new generation's flow table.
    pub listener: String,
    pub client: std::net::SocketAddr,
    /// The client's original destination (a `tproxy` listener), if known.
    pub destination: Option<std::net::SocketAddr>,
    /// The cluster and endpoint its upstream socket is connected to.
    pub cluster: String,
    pub endpoint: std::net::SocketAddr,
    /// Whether a reply socket's fd follows the upstream socket's (a
    /// `tproxy` listener's flow answers from the original destination).
    pub reply_socket: bool,
    /// How long since a datagram last moved either way: its idle timer
    /// goes on from there.
    pub idle_for: Duration,
    /// As [`ConnState`]'s: for the access log where it ends.
    pub started_unix_ms: u64,
    pub received: u64,
    pub sent: u64,
    pub moves: u32,
}

impl FlowState {
    /// The fds that travel beside it.
    pub fn fd_count(&self) -> usize {
        1 + usize::from(self.reply_socket)
    }
}

/// The messages carrying `flows` in `schema` (one that
/// [`Schema::carries_flows`]): as many `FlowBatch`es as the datagram's
/// bounds on bytes and fds need (at least one, `last` on the final one),
/// each with the number of fds its flows describe. Returns each message
/// with the range of `flows` it carries, whose fds go beside it in order.
pub fn encode_flows(
    schema: Schema,
    flows: &[FlowState],
) -> Result<Vec<(Message, std::ops::Range<usize>)>, SchemaError> {
    if !schema.carries_flows() {
        return Err(SchemaError::NoHealth(schema));
    }
    let indexed: Vec<(usize, &FlowState)> = flows.iter().enumerate().collect();
    let runs = baton_ipc::batch::batches(indexed, |(_, f)| f.fd_count())
        .map_err(SchemaError::FlowBatch)?;
    let count = runs.len();
    runs.into_iter()
        .enumerate()
        .map(|(i, run)| {
            let range = run
                .first()
                .map_or(0..0, |(first, _)| *first..*first + run.len());
            let fds: usize = run.iter().map(|(_, f)| f.fd_count()).sum();
            let fds = u16::try_from(fds).map_err(|_| SchemaError::TooManyFds(fds))?;
            let body = encode(schema, &run.iter().map(|(_, f)| *f).collect::<Vec<_>>())?;
            let message = Message::FlowBatch(FlowBatch {
                schema: schema.0,
                last: i + 1 == count,
                fds,
                body,
            });
            Ok((message, range))
        })
        .collect()
}

/// Reads a flow batch in the `agreed` schema: its flows (whose fds must
/// be the `FlowBatch`'s count), and whether it is the last.
pub fn decode_flows(
    agreed: Schema,
    message: &Message,
) -> Result<(Vec<FlowState>, bool), SchemaError> {
    let Message::FlowBatch(batch) = message else {
        return Err(SchemaError::NotFlows(message.kind()));
    };
    let got = Schema(batch.schema);
    if got != agreed {
        return Err(SchemaError::WrongSchema { got, agreed });
    }
    if !HANDOFF_VERSIONS.contains(&got.0) {
        return Err(SchemaError::UnknownSchema(got));
    }
    if !got.carries_flows() {
        return Err(SchemaError::NoHealth(got));
    }
    let flows: Vec<FlowState> = decode(got, &batch.body)?;
    let described: usize = flows.iter().map(FlowState::fd_count).sum();
    if described != usize::from(batch.fds) {
        return Err(SchemaError::FdCount {
            described,
            carried: usize::from(batch.fds),
        });
    }
    Ok((flows, batch.last))
}
