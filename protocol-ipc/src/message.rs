//! The typed messages and their wire kinds.
//!
//! Adding a message: a payload struct, a [`Kind`] with a new number (never
//! reuse one), one line in each of the `messages!` arms below, and — if it
//! changes what a peer must understand — a new entry in
//! [`PROTOCOL_VERSIONS`].

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::IpcError;

/// Message-set versions this build speaks on ctrl, oldest first. The
/// handshake picks the highest one both peers list.
///
/// * 1 — the first message set.
/// * 2 — adds what a handoff reports about its losses: the old generation's
///   [`HandoffProgress`] and [`HandoffAborted`] (which replaces
///   [`HandoffFailed`]), the new generation's [`TakeoverEnded`]. A peer sends
///   them only when version 2 was negotiated, so either side may be older.
/// * 3 — adds [`SetLogLevel`] (the admin API's `/logging`); the supervisor
///   sends it only when version 3 was negotiated.
/// * 4 — adds [`Histograms`], worker → supervisor beside every
///   [`Metrics`]; a worker sends it only when version 4 was negotiated.
///   (A new message kind rather than a field of [`Metrics`]: bincode bodies
///   have no field tags, so a field added there would make every older
///   peer refuse the message.)
pub const PROTOCOL_VERSIONS: &[u16] = &[1, 2, 3, 4];

/// The first ctrl version with [`SetLogLevel`].
pub const LOG_LEVEL_VERSION: u16 = 3;

/// The first ctrl version with [`Histograms`].
pub const HISTOGRAMS_VERSION: u16 = 4;

/// The first ctrl version with [`HandoffProgress`], [`HandoffAborted`] and
/// [`TakeoverEnded`].
pub const LOSS_REPORTS_VERSION: u16 = 2;

/// A worker generation: one worker process, numbered from 1, never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Generation(pub u32);

impl std::fmt::Display for Generation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Which end of a channel a peer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Role {
    Supervisor,
    Worker,
}

/// First message on every channel, sent by both sides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Message-set versions the sender speaks.
    pub versions: Vec<u16>,
    pub role: Role,
    pub pid: u32,
}

/// The sender will not go on, and says why (no common version, a config it
/// rejects, ...). The channel is closed after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refuse {
    pub reason: String,
}

/// A piece of the config text. The text may be larger than one datagram,
/// so it travels in order in parts; the part with `last` ends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigPart {
    /// The generation number the receiving worker is.
    pub generation: Generation,
    /// Where the text came from, for error messages (a path, or
    /// `<embedded default>`).
    pub source: String,
    pub chunk: Vec<u8>,
    pub last: bool,
}

/// Listening sockets: one fd per name, in the same order. Sent in several
/// batches when there are more than a datagram carries; `last` ends them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenerBatch {
    pub names: Vec<String>,
    pub last: bool,
}

/// The worker has parsed the config, adopted the listeners and accepts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ready {
    pub pid: u32,
    pub listeners: u32,
}

/// Stop accepting, let connections finish within `deadline`, then report
/// [`Drained`] and exit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drain {
    pub deadline: Duration,
}

/// The worker is done and exits: `finished` connections ended by
/// themselves, `migrated` moved to the next generation, `closed` were still
/// open at the deadline and were closed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drained {
    pub finished: u64,
    pub migrated: u64,
    pub closed: u64,
}

/// Start accepting (a worker is `Ready` before it accepts, so that during
/// an upgrade the supervisor decides when it takes the listeners).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Activate {}

/// To the old generation, with its end of the handoff channel: hand
/// everything to generation `to`, within `deadline`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandoffTo {
    pub to: Generation,
    pub deadline: Duration,
}

/// To the new generation, with its end of the handoff channel: take over
/// from generation `from`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandoffFrom {
    pub from: Generation,
}

/// From the old generation to the supervisor: the handoff failed; it has
/// resumed accepting and every connection not acknowledged by the new
/// generation (`resumed`), and keeps serving.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandoffFailed {
    pub reason: String,
    pub resumed: u64,
    /// Connections the new generation had acknowledged before it failed:
    /// they were closed here and are gone.
    pub lost: u64,
}

/// How far the old generation's side of a handoff has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HandoffStage {
    /// The new generation accepts and the old one has stopped; connections
    /// move in batches. Until the last batch is acknowledged the old
    /// generation can still take back what it has not seen acknowledged.
    Migrating,
    /// Every connection is acknowledged: the new generation owns them all
    /// (the commit). The old generation forwards the responses to the
    /// requests they had in flight and lets draining connections finish.
    Forwarding,
}

/// Old generation → supervisor (ctrl version 2): the handoff reached
/// `stage`, and what the old generation held at that moment. The
/// supervisor shows the stage as the upgrade's phase, and uses the counts
/// to tell what was lost if this generation dies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandoffProgress {
    pub stage: HandoffStage,
    /// `Migrating`: connections open here, all to move. `Forwarding`:
    /// connections moved.
    pub connections: u64,
    /// `Forwarding`: connections that drain here rather than move (HTTP/2
    /// after its GOAWAY, TLS). 0 while `Migrating`.
    pub draining: u64,
    /// `Migrating`: requests waiting for an upstream response here.
    /// `Forwarding`: responses still to forward to the moved connections.
    pub requests: u64,
}

/// Old generation → supervisor (ctrl version 2, in place of
/// [`HandoffFailed`]): the handoff failed — the new generation died,
/// refused, or is wedged — and this generation accepts again and serves
/// everything it resumed. What the new generation held is lost with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandoffAborted {
    pub reason: String,
    /// Connections taken back here (never acknowledged by the new one).
    pub resumed: u64,
    /// Connections the new generation had acknowledged: they were closed
    /// here and are gone with it.
    pub lost: u64,
    /// Requests in flight on those connections whose responses had not
    /// been forwarded yet: they can no longer reach their client.
    pub requests_lost: u64,
}

/// New generation → supervisor (ctrl version 2): its side of the handoff
/// ended, completely (`HandoffDone` arrived) or not (the old generation's
/// end closed first: it died). It keeps serving what it adopted either
/// way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TakeoverEnded {
    pub complete: bool,
    /// Connections adopted (and acknowledged).
    pub adopted: u64,
    /// Requests the adopted connections had in flight in the old
    /// generation when they moved: their responses were to be forwarded.
    pub in_flight_adopted: u64,
    /// Of those, the ones whose response never arrived.
    pub awaiting: u64,
}

/// Handoff, new → old: the new generation accepts on every listener; the
/// old one may stop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accepting {}

/// Handoff, old → new (handoff schema 2 on): connections and their fds,
/// in order. What `body` holds is the worker's handoff schema `schema`
/// (`baton-worker`'s `migrate::schema`): this crate carries it without
/// knowing it, so the supervisor never compiles the worker's data model.
/// `fds` is how many fds travel beside it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnBatch {
    pub seq: u64,
    pub schema: u16,
    pub fds: u16,
    pub body: Vec<u8>,
}

/// Handoff, old → new, in handoff schema 1 (the release before
/// [`ConnBatch`]): the datagram's body is `body` itself — schema 1's
/// batch, sequence number first — not an encoding of this struct; `fds`
/// comes from the header, not the body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnBatchV1 {
    pub fds: u16,
    pub body: Vec<u8>,
}

/// Handoff, old → new (handoff schema 3 on), right after the `Hello`s and
/// before the new generation accepts: the old generation's view of its
/// upstream endpoints (health, ejections), in as many messages as
/// datagrams need, `last` on the final one. Like [`ConnBatch`], `body` is
/// the worker's handoff schema `schema`, opaque here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthBatch {
    pub schema: u16,
    pub last: bool,
    pub body: Vec<u8>,
}

/// Handoff, old → new (handoff schema 6 on), after the last
/// [`HealthBatch`] and before the new generation accepts: the old
/// generation's UDP flows, each with its sockets' fds (`fds` in all,
/// beside the datagram), in as many messages as datagrams need, `last` on
/// the final one. `body` is the worker's handoff schema `schema`, opaque
/// here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowBatch {
    pub schema: u16,
    pub last: bool,
    pub fds: u16,
    pub body: Vec<u8>,
}

/// Handoff, new → old: batch `seq` is adopted; the old generation may close
/// its copies. The new generation moves no byte of it before sending this.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnAck {
    pub seq: u64,
}

/// Handoff, old → new: a piece of a frame for a connection that moved
/// (write migration): a response to a request the old generation had sent
/// upstream, already carrying the client's id. A frame larger than a
/// datagram comes in several pieces; `last` ends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Forward {
    /// The connection's id in the old generation (as its batch gave it).
    pub conn: u64,
    /// A response (it settles one request in flight), not a request from
    /// the server.
    pub response: bool,
    pub chunk: Vec<u8>,
    pub last: bool,
}

/// Handoff, old → new: nothing more will come.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandoffDone {
    pub migrated: u64,
    pub lost: u64,
}

/// What a metric is, for aggregation: a counter only grows (the
/// supervisor keeps a dead generation's last value), a gauge is a level
/// (only live generations count).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetricKind {
    Counter,
    Gauge,
}

/// One labelled value of a family.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricSample {
    pub labels: Vec<(String, String)>,
    pub value: u64,
}

/// A metric family as the worker defines it. The supervisor aggregates and
/// exposes families without knowing them, so a new worker can bring new
/// metrics without a supervisor upgrade.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricFamily {
    /// Prometheus name (counters end in `_total`).
    pub name: String,
    pub help: String,
    pub kind: MetricKind,
    pub samples: Vec<MetricSample>,
}

/// Worker → supervisor, every heartbeat interval and once more before it
/// exits: its metrics since it started (counters) and now (gauges). Its
/// arrival is also the worker's heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metrics {
    pub families: Vec<MetricFamily>,
}

/// One series of a histogram: its labels, how many observations fell in
/// each bucket (not cumulative; one more than the family's bounds, the
/// last being `+Inf`), and their sum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistogramSeries {
    pub labels: Vec<(String, String)>,
    pub buckets: Vec<u64>,
    /// In microseconds.
    pub sum_us: u64,
}

/// A histogram family as the worker defines it (the supervisor exposes it
/// without knowing it, as it does [`MetricFamily`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistogramFamily {
    /// Prometheus name, without `_bucket`, `_sum` or `_count`.
    pub name: String,
    pub help: String,
    /// The buckets' upper bounds, in microseconds, increasing.
    pub bounds_us: Vec<u64>,
    pub series: Vec<HistogramSeries>,
}

/// Worker → supervisor (ctrl version 4), after each [`Metrics`]: its
/// histograms since it started. Like counters, the supervisor keeps a dead
/// generation's last values in the sum. Several messages when they do not
/// fit one datagram (split by `batch::histogram_batches`): each series
/// replaces that series' previous values, so a snapshot may come in parts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Histograms {
    pub families: Vec<HistogramFamily>,
}

/// To a worker: log with this tracing filter from now on (`info`,
/// `baton=debug`...). The worker keeps its filter when this one does not
/// parse, and says so in its log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetLogLevel {
    pub filter: String,
}

/// One of every message, with its wire kind number.
macro_rules! messages {
    ($($variant:ident = $num:literal,)*) => {
        /// The wire kind of a message: the header's `kind` byte.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        #[non_exhaustive]
        pub enum Kind {
            $($variant = $num,)*
        }

        impl Kind {
            /// Every kind, for tests and diagnostics.
            pub const ALL: &[Kind] = &[$(Kind::$variant,)*];

            pub fn from_u8(byte: u8) -> Option<Kind> {
                match byte {
                    $($num => Some(Kind::$variant),)*
                    _ => None,
                }
            }
        }

        /// A message on a baton ipc channel. Fds travel beside it (see
        /// [`crate::Channel::send`]).
        #[derive(Debug, Clone, PartialEq, Eq)]
        #[non_exhaustive]
        pub enum Message {
            $($variant($variant),)*
        }

        impl Message {
            pub fn kind(&self) -> Kind {
                match self {
                    $(Message::$variant(_) => Kind::$variant,)*
                }
            }

            /// The bincode body of this message.
            pub fn encode_body(&self) -> Result<Vec<u8>, IpcError> {
                if let Message::ConnBatchV1(batch) = self {
                    return Ok(batch.body.clone());
                }
                let encoded = match self {
                    $(Message::$variant(payload) => encode(payload),)*
                };
                encoded.map_err(|e| IpcError::Encode { kind: self.kind(), reason: e.to_string() })
            }

            /// Decodes a body of the given kind; every byte must be used.
            /// (A [`ConnBatchV1`] comes back with no fds: see
            /// [`Message::decode_frame`].)
            pub fn decode_body(kind: u8, body: &[u8]) -> Result<Message, IpcError> {
                Message::decode_frame(kind, 0, body)
            }

            /// Decodes a datagram's body of the given kind that came with
            /// `fds` fds.
            pub fn decode_frame(kind: u8, fds: usize, body: &[u8]) -> Result<Message, IpcError> {
                let kind = Kind::from_u8(kind).ok_or(IpcError::UnknownKind(kind))?;
                if kind == Kind::ConnBatchV1 {
                    // At most MAX_FDS, which the header's u16 holds.
                    let fds = u16::try_from(fds).map_err(|_| IpcError::TooManyFds { count: fds })?;
                    return Ok(Message::ConnBatchV1(ConnBatchV1 { fds, body: body.to_vec() }));
                }
                let fail = |reason: String| IpcError::Decode { kind, reason };
                Ok(match kind {
                    $(Kind::$variant => Message::$variant(decode(body).map_err(fail)?),)*
                })
            }
        }

        $(
            impl From<$variant> for Message {
                fn from(payload: $variant) -> Message {
                    Message::$variant(payload)
                }
            }
        )*
    };
}

messages! {
    Hello = 1,
    Refuse = 2,
    ConfigPart = 3,
    ListenerBatch = 4,
    Ready = 5,
    Drain = 6,
    Drained = 7,
    Activate = 8,
    HandoffTo = 9,
    HandoffFrom = 10,
    HandoffFailed = 11,
    Accepting = 12,
    // Handoff schema 1's batch (was `ConnBatch`): its body is raw.
    ConnBatchV1 = 13,
    ConnAck = 14,
    HandoffDone = 15,
    // 16 and 17 were StatsRequest and Stats: retired, never reused.
    Metrics = 18,
    Forward = 19,
    HandoffProgress = 20,
    HandoffAborted = 21,
    TakeoverEnded = 22,
    ConnBatch = 23,
    SetLogLevel = 24,
    Histograms = 25,
    HealthBatch = 26,
    FlowBatch = 27,
}

impl Message {
    /// How many fds travel with this message. The receiver checks the fds
    /// that arrived against it.
    pub fn fd_count(&self) -> usize {
        match self {
            Message::ListenerBatch(batch) => batch.names.len(),
            Message::HandoffTo(_) | Message::HandoffFrom(_) => 1,
            Message::ConnBatch(batch) => usize::from(batch.fds),
            Message::ConnBatchV1(batch) => usize::from(batch.fds),
            Message::FlowBatch(batch) => usize::from(batch.fds),
            _ => 0,
        }
    }
}

/// The bincode configuration of every body. The limit stops a hostile
/// length prefix from allocating much more than a datagram could hold.
fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<DECODE_LIMIT>()
}

/// bincode counts its limit in decoded (in-memory) bytes, not body bytes:
/// a one-byte varint claims the 8 bytes of the `u64` or length it decodes
/// to. So a valid body of up to [`crate::MAX_BODY`] bytes may claim up to
/// eight times its size; a limit of one datagram refused full, valid
/// batches of short names.
const DECODE_LIMIT: usize = 8 * crate::MAX_DATAGRAM;

/// Encodes one value as a body (also used to measure items for batching).
pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, bincode::error::EncodeError> {
    bincode::serde::encode_to_vec(value, config())
}

fn decode<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    let (value, used) =
        bincode::serde::decode_from_slice(body, config()).map_err(|e| e.to_string())?;
    if used != body.len() {
        return Err(format!("{} trailing bytes", body.len() - used));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One sample of every message kind; the test below fails when a kind
    /// is added without a sample.
    pub(crate) fn samples() -> Vec<Message> {
        vec![
            Hello {
                versions: vec![1, 2],
                role: Role::Worker,
                pid: 42,
            }
            .into(),
            Refuse {
                reason: "no".into(),
            }
            .into(),
            ConfigPart {
                generation: Generation(3),
                source: "/etc/baton.toml".into(),
                chunk: b"[supervisor]\n".to_vec(),
                last: true,
            }
            .into(),
            ListenerBatch {
                names: vec!["a".into(), "b".into()],
                last: false,
            }
            .into(),
            Ready {
                pid: 7,
                listeners: 2,
            }
            .into(),
            Drain {
                deadline: Duration::from_millis(1500),
            }
            .into(),
            Drained {
                finished: 3,
                migrated: 5,
                closed: 1,
            }
            .into(),
            Activate {}.into(),
            HandoffTo {
                to: Generation(4),
                deadline: Duration::from_secs(30),
            }
            .into(),
            HandoffFrom {
                from: Generation(3),
            }
            .into(),
            HandoffFailed {
                reason: "gone".into(),
                resumed: 9,
                lost: 1,
            }
            .into(),
            Accepting {}.into(),
            ConnBatchV1 {
                fds: 0,
                body: vec![2, 0],
            }
            .into(),
            ConnAck { seq: 2 }.into(),
            HandoffDone {
                migrated: 7,
                lost: 0,
            }
            .into(),
            Metrics {
                families: vec![MetricFamily {
                    name: "baton_listener_connections_total".into(),
                    help: "Connections accepted.".into(),
                    kind: MetricKind::Counter,
                    samples: vec![MetricSample {
                        labels: vec![("listener".into(), "front".into())],
                        value: 12,
                    }],
                }],
            }
            .into(),
            Forward {
                conn: 11,
                response: true,
                chunk: vec![1, 2, 3],
                last: true,
            }
            .into(),
            HandoffProgress {
                stage: HandoffStage::Forwarding,
                connections: 300,
                draining: 2,
                requests: 600,
            }
            .into(),
            HandoffAborted {
                reason: "the new generation closed the handoff channel".into(),
                resumed: 48,
                lost: 252,
                requests_lost: 504,
            }
            .into(),
            TakeoverEnded {
                complete: false,
                adopted: 252,
                in_flight_adopted: 504,
                awaiting: 500,
            }
            .into(),
            ConnBatch {
                seq: 3,
                schema: 2,
                fds: 0,
                body: vec![1, 2, 3],
            }
            .into(),
            SetLogLevel {
                filter: "baton=debug".into(),
            }
            .into(),
            Histograms {
                families: vec![HistogramFamily {
                    name: "baton_upstream_ttfb_seconds".into(),
                    help: "Time to the first byte of a response.".into(),
                    bounds_us: vec![500, 1_000],
                    series: vec![HistogramSeries {
                        labels: vec![("cluster".into(), "back".into())],
                        buckets: vec![3, 0, 1],
                        sum_us: 70_000,
                    }],
                }],
            }
            .into(),
            HealthBatch {
                schema: 3,
                last: true,
                body: vec![4, 5],
            }
            .into(),
            FlowBatch {
                schema: 6,
                last: true,
                fds: 0,
                body: vec![6, 7],
            }
            .into(),
        ]
    }

    #[test]
    fn every_kind_round_trips() {
        let samples = samples();
        let kinds: Vec<Kind> = samples.iter().map(Message::kind).collect();
        assert_eq!(kinds, Kind::ALL, "one sample per kind, in kind order");
        for message in samples {
            let body = message.encode_body().unwrap();
            let back = Message::decode_body(message.kind() as u8, &body).unwrap();
            assert_eq!(back, message);
        }
    }

    #[test]
    fn trailing_bytes_and_unknown_kinds_are_errors() {
        let mut body = Message::from(Refuse { reason: "x".into() })
            .encode_body()
            .unwrap();
        body.push(0);
        assert!(matches!(
            Message::decode_body(Kind::Refuse as u8, &body),
            Err(IpcError::Decode { .. })
        ));
        assert!(matches!(
            Message::decode_body(200, &[]),
            Err(IpcError::UnknownKind(200))
        ));
    }

    /// Schema 1's batch is carried as it is, its fds counted by the
    /// header: the bytes a worker of the release before wrote come out
    /// unchanged.
    #[test]
    fn a_schema_1_batch_is_carried_raw() {
        let body = vec![5, 1, 7, 0xff];
        let message = Message::decode_frame(Kind::ConnBatchV1 as u8, 3, &body).unwrap();
        assert_eq!(
            message,
            Message::ConnBatchV1(ConnBatchV1 {
                fds: 3,
                body: body.clone()
            })
        );
        assert_eq!(message.fd_count(), 3);
        assert_eq!(message.encode_body().unwrap(), body);
    }

    #[test]
    fn hostile_lengths_do_not_allocate() {
        // A Refuse whose string length claims 2^60 bytes.
        let body = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0x10];
        assert!(Message::decode_body(Kind::Refuse as u8, &body).is_err());
    }
}
