//! L7 proxying of the multiplexed RPC protocols — SOFA Bolt, Dubbo 2,
//! RocketMQ remoting, Tars, whatever the codec registry holds — over the
//! pure codecs of [`crate::codec`]. Nothing here names a protocol: what
//! differs between them (heartbeats, error answers, which status is a
//! success, id rewriting, pinning) is asked of the codec.
//!
//! # Shape
//!
//! A client connection is a [`downstream::Downstream`]: it decodes the
//! client's frames, answers heartbeats itself, routes each request by its
//! attributes ([`route`]) to a cluster, and sends it through that cluster's
//! [`pool::Pool`] of multiplexed upstream connections, which rewrite the
//! request id into their own id space and deliver the response — or the
//! protocol's own error on timeout, upstream loss or close — to the
//! connection's inbox. Oneway requests are written and forgotten.
//!
//! Where the protocol's servers also send requests to clients
//! ([`crate::codec::Pinning::PerClient`]: RocketMQ brokers, e.g.
//! CHECK_TRANSACTION_STATE, NOTIFY_CONSUMER_IDS_CHANGED), a client
//! connection gets its own upstream connection (pinned, not pooled) to
//! each cluster its requests are routed to: what a server sends unasked on
//! one goes to that client, and the client's answer goes back on the
//! connection that asked, with the server's id untouched.
//!
//! # Across an upgrade (read and write migration)
//!
//! A client connection moves at a frame boundary: its socket, the bytes of
//! a partial frame not yet decoded, the bytes decoded-and-answered but not
//! yet written, and its codec state ([`crate::codec::CodecState`]) — its
//! parked form, [`downstream::RpcParts`], written as a [`parked::RpcWire`]
//! (its running form's [`crate::kind::Live`] is in [`live`]). The
//! requests it already sent upstream stay in the old generation, in the
//! upstream connections that carry them; their responses (or errors, at
//! the drain deadline) land in the moved connection's old inbox, and the
//! old generation forwards them over the handoff channel to the new one,
//! which writes them to the client between its own frames (write
//! migration: the `forward` module of `migrate`). The client sees every
//! response on the socket it always had. The old generation exits once
//! the last forwarded response is out.
//!
//! Where the connection has pinned upstream connections
//! (`move_pinned_upstreams`, handoff schema 7 on), they move with it: the
//! old generation parks each one too ([`pool::UpHandle::park`]: stopped
//! between two steps, so at a frame boundary both ways, with the requests
//! queued for it encoded behind its unwritten bytes), and the client
//! connection travels with their sockets, pending bytes, codec states and
//! the requests in flight on them ([`downstream::Pinned`],
//! [`parked::RpcWireV7`]). The new generation runs them again
//! ([`pool::resume`]) for the moved client: their answers, and what the
//! server asks, are read there from the same socket, and nothing of
//! theirs is forwarded. The server never sees the connection close
//! (RocketMQ: no consumer-group change, transaction checks never sent to
//! a process that is leaving). A failed move runs them again in the old
//! generation, as they were. A connection whose RPC filters
//! keep state that cannot move (`crate::filter`) does not move: it
//! drains in the old generation.
//!
//! # Message trace
//!
//! A rocketmq listener with `message_trace` writes one JSON event per
//! message produced or consumed to the access log, when the broker's
//! response reaches the upstream connection ([`pool`]): what
//! `crate::codec::rocketmq::trace` reads from the request and its
//! response, the listener, the broker's address, and the latency.

pub(crate) mod downstream;
pub(crate) mod live;
pub(crate) mod parked;
pub(crate) mod pool;
pub(crate) mod route;

use std::sync::Arc;
use std::time::Duration;

use baton_config::ClusterId;
use bytes::BytesMut;

use crate::codec::{CodecConfig, Frame, Protocol};
use crate::telemetry::access_log::AccessLog;
use crate::telemetry::meters::RpcMeters;

/// What an RPC connection's inbox receives.
#[derive(Debug)]
pub enum Outbound {
    /// A response (or error) already carrying the client's id, or a
    /// server-initiated request on a pinned connection. Boxed: a frame
    /// carries its parsed attributes.
    Frame(Box<Frame>),
    /// A request the server sent on this client's pinned connection to
    /// `cluster` (e.g. RocketMQ broker → client): the client's answer goes
    /// back up that connection.
    Asked {
        frame: Box<Frame>,
        cluster: ClusterId,
    },
    /// A frame forwarded from the previous generation, as bytes; a response
    /// settles one request in flight.
    Forwarded { bytes: BytesMut, response: bool },
}

/// One RPC listener's settings.
#[derive(Debug)]
pub struct RpcListener {
    pub name: Arc<str>,
    pub protocol: Protocol,
    pub codec: CodecConfig,
    pub request_timeout: Duration,
    pub routes: Vec<baton_config::Route>,
    /// The listener's `cluster`: where unrouted requests go.
    pub default_cluster: ClusterId,
    pub meters: Arc<RpcMeters>,
    /// `message_trace`: where each message's event goes (the access log).
    pub message_trace: Option<Arc<AccessLog>>,
    /// `move_pinned_upstreams`: a moving client connection takes its
    /// pinned upstream connections along (pinned protocols only).
    pub move_pinned: bool,
}

impl RpcListener {
    /// The codec protocol for a config protocol, by its config name
    /// (`None` for `tcp` and `http`, which are not in the codec registry).
    pub fn protocol_of(protocol: baton_config::Protocol) -> Option<Protocol> {
        protocol.name().parse().ok()
    }
}

#[cfg(test)]
mod tests;
