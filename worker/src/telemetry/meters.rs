//! The meters: counters and gauges kept in atomics on the hot path, one
//! type per thing measured, bumped by the layers above (the pumps, the
//! upstreams, the HTTP and RPC proxies, the handoff) and read by the
//! sibling `metrics` module, which turns them into the supervisor's
//! metrics.
//!
//! A leaf: it knows the meters' shapes (a cluster's circuit breakers keep
//! their counts in theirs, [`BreakerMeter`]), and of the protocols only the
//! labels it counts by (HTTP's reject reasons from the sans-I/O
//! [`http1`] framing, RPC's error kinds and response classes from
//! [`crate::codec`]: which status is a success is each codec's to say,
//! never this module's).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::codec::http1::{self, H1Error};
use crate::codec::{ErrorKind, ResponseClass};
use crate::telemetry::histogram::RouteTimes;

/// Bytes through one listener's connections.
#[derive(Debug, Default)]
pub struct ByteMeter {
    /// Read from clients (written upstream).
    pub received: AtomicU64,
    /// Written to clients.
    pub sent: AtomicU64,
}

/// One listener's counters.
#[derive(Debug, Default)]
pub struct ListenerMeter {
    pub accepted: AtomicU64,
    /// Accepted, then refused by an L4 filter.
    pub refused: AtomicU64,
    pub active: AtomicU64,
    pub bytes: Arc<ByteMeter>,
}

/// What a `udp` listener counts beside its [`ListenerMeter`] (where its
/// flows count as connections: opened, open now, bytes each way).
#[derive(Debug, Default)]
pub struct UdpMeter {
    /// Datagrams read from clients.
    pub datagrams_received: AtomicU64,
    /// Datagrams written to clients.
    pub datagrams_sent: AtomicU64,
    /// Datagrams dropped, by [`UdpDrop`].
    pub dropped: [AtomicU64; UdpDrop::ALL.len()],
}

impl UdpMeter {
    pub fn count_drop(&self, why: UdpDrop) {
        self.dropped[why as usize].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Why a `udp` listener dropped a client's datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UdpDrop {
    /// It would have opened a flow past `max_flows`.
    MaxFlows,
    /// It would have opened a flow, and no endpoint was available (or
    /// no socket could be opened to one).
    NoUpstream,
    /// A `source_ranges` filter refused its source.
    Refused,
    /// Sending it upstream failed (an ICMP error came back, a full
    /// buffer).
    SendFailed,
    /// It would have opened a flow to its original destination (an
    /// `original_dst` cluster), and had none: it was sent to the listener
    /// itself.
    NoOriginalDestination,
}

impl UdpDrop {
    pub const ALL: [UdpDrop; 5] = [
        UdpDrop::MaxFlows,
        UdpDrop::NoUpstream,
        UdpDrop::Refused,
        UdpDrop::SendFailed,
        UdpDrop::NoOriginalDestination,
    ];

    /// Its `reason` label.
    pub fn label(self) -> &'static str {
        match self {
            UdpDrop::MaxFlows => "max_flows",
            UdpDrop::NoUpstream => "no_upstream",
            UdpDrop::Refused => "refused",
            UdpDrop::SendFailed => "send_failed",
            UdpDrop::NoOriginalDestination => "no_original_destination",
        }
    }
}

/// One upstream endpoint's counters.
#[derive(Debug, Default)]
pub struct EndpointMeter {
    pub connections: AtomicU64,
    pub connect_failures: AtomicU64,
    pub connect_timeouts: AtomicU64,
    /// A gauge: 1 while active health checks do not say unhealthy (and
    /// always for a cluster without checks), else 0.
    pub healthy: AtomicU64,
    /// A gauge: 1 once active health checks have a verdict (healthy or
    /// unhealthy), 0 while they have none or there are no checks.
    pub checked: AtomicU64,
    /// Times outlier detection ejected the endpoint.
    pub ejections: AtomicU64,
    /// A gauge: 1 while outlier detection keeps the endpoint out (set at
    /// the ejection, cleared when an ejection whose time is up is next
    /// looked at: by the first pick after it).
    pub ejected: AtomicU64,
    /// A gauge: the work on the endpoint now, whatever the cluster's
    /// policy: HTTP exchanges and RPC requests in flight, L4 tunnels open.
    pub in_flight: AtomicU64,
}

/// One cluster's circuit breakers (`upstream::breaker`): what each limit
/// counts now, and how often one was full. The counts are the breakers'
/// own state (the breaker compares and bumps them), so the gauges are
/// never out of step with what the limits saw.
#[derive(Debug, Default)]
pub struct BreakerMeter {
    /// Indexed by [`Resource`].
    pub active: [AtomicU64; Resource::ALL.len()],
    /// Indexed by [`Overflow`].
    pub overflows: [AtomicU64; Overflow::ALL.len()],
}

impl BreakerMeter {
    pub fn active(&self, resource: Resource) -> &AtomicU64 {
        &self.active[resource as usize]
    }

    pub fn overflowed(&self, overflow: Overflow) {
        self.overflows[overflow as usize].fetch_add(1, Ordering::Relaxed);
    }
}

/// What a cluster's circuit breakers count; the `resource` label of
/// `baton_upstream_active`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Connections,
    PendingRequests,
    Requests,
    Retries,
}

impl Resource {
    pub const ALL: [Resource; 4] = [
        Resource::Connections,
        Resource::PendingRequests,
        Resource::Requests,
        Resource::Retries,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Resource::Connections => "connections",
            Resource::PendingRequests => "pending_requests",
            Resource::Requests => "requests",
            Resource::Retries => "retries",
        }
    }
}

/// Which limit was full: the `reason` label of
/// `baton_upstream_overflows_total` and the value of an HTTP answer's
/// `x-baton-overloaded` header. The config key's name, so an operator
/// knows which one to raise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    MaxConnections,
    MaxPendingRequests,
    MaxRequests,
    MaxRetries,
    /// `retry_budget` (in place of `max_retries`).
    RetryBudget,
}

impl Overflow {
    pub const ALL: [Overflow; 5] = [
        Overflow::MaxConnections,
        Overflow::MaxPendingRequests,
        Overflow::MaxRequests,
        Overflow::MaxRetries,
        Overflow::RetryBudget,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Overflow::MaxConnections => "max_connections",
            Overflow::MaxPendingRequests => "max_pending_requests",
            Overflow::MaxRequests => "max_requests",
            Overflow::MaxRetries => "max_retries",
            Overflow::RetryBudget => "retry_budget",
        }
    }
}

/// Migration counters of this generation.
#[derive(Debug, Default)]
pub struct MigrationMeter {
    /// Connections handed to the next generation.
    pub moved: AtomicU64,
    /// Connections that could not move and were closed.
    pub lost: AtomicU64,
}

/// Request counters of one RPC listener.
#[derive(Debug, Default)]
pub struct RpcMeters {
    /// Requests sent upstream (expecting a response or oneway).
    pub requests: AtomicU64,
    /// Responses from upstream, by their codec's [`ResponseClass`]: the
    /// protocol's own success code, or anything else.
    pub responses_ok: AtomicU64,
    pub responses_error: AtomicU64,
    /// Requests the proxy answered itself, by reason.
    pub timeouts: AtomicU64,
    pub unavailable: AtomicU64,
    pub no_route: AtomicU64,
    pub other_errors: AtomicU64,
    /// Client connections closed for an undecodable frame.
    pub decode_errors: AtomicU64,
    /// Responses forwarded to the next generation (write migration).
    pub forwarded: AtomicU64,
    pub forwarded_bytes: AtomicU64,
    /// Requests waiting for an upstream's response now, in this
    /// generation's upstream connections (a gauge). A handoff reports it,
    /// so that a generation's death counts the requests it took along.
    pub pending: AtomicU64,
    /// Requests from decoded to answered, by route
    /// (`baton_rpc_request_duration_seconds`).
    pub duration: RouteTimes,
}

impl RpcMeters {
    pub fn responded(&self, class: ResponseClass) {
        let counter = match class {
            ResponseClass::Success => &self.responses_ok,
            ResponseClass::Error => &self.responses_error,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn hijacked(&self, kind: ErrorKind) {
        let counter = match kind {
            ErrorKind::Timeout => &self.timeouts,
            ErrorKind::Unavailable => &self.unavailable,
            ErrorKind::NoRoute => &self.no_route,
            _ => &self.other_errors,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Request and response counters of one HTTP listener.
#[derive(Debug, Default)]
pub struct HttpMeters {
    pub status_1xx: AtomicU64,
    pub status_2xx: AtomicU64,
    pub status_3xx: AtomicU64,
    pub status_4xx: AtomicU64,
    pub status_5xx: AtomicU64,
    /// Refused as malformed or hostile (and never forwarded).
    pub bad_requests: AtomicU64,
    /// The same, by [`H1Error::reason`] (indexed as [`http1::REJECT_REASONS`]).
    pub rejected: [AtomicU64; http1::REJECT_REASONS.len()],
    /// Upstream responses refused as malformed or ambiguously framed
    /// (answered 502, or the client connection cut mid-body).
    pub bad_responses: AtomicU64,
    pub timeouts: AtomicU64,
    /// Clients cut off for being too slow, by [`TimeoutKind`].
    pub header_timeouts: AtomicU64,
    pub keepalive_timeouts: AtomicU64,
    pub body_timeouts: AtomicU64,
    pub handshake_timeouts: AtomicU64,
    /// Requests from head read to the exchange's end, by route
    /// (`baton_http_request_duration_seconds`).
    pub duration: RouteTimes,
    /// Requests a filter answered instead of the upstream, by filter name
    /// (a lock, not atomics: the names are the config's, and a filter's
    /// answer is the exception, not every request).
    pub filter_answers: parking_lot::Mutex<Vec<(&'static str, u64)>>,
    /// Shadow copies of requests (the `mirror` filter), by how they
    /// ended: answered by the shadow cluster, failed (no connection, a
    /// breaker full, an error, no answer in time), or abandoned before
    /// they went (a body past the limit, a request body not read whole).
    pub mirror_sent: AtomicU64,
    pub mirror_failed: AtomicU64,
    pub mirror_abandoned: AtomicU64,
}

impl HttpMeters {
    /// Counts a request filter `name` answered.
    pub fn filter_answered(&self, name: &'static str) {
        let mut answers = self.filter_answers.lock();
        match answers.iter_mut().find(|(n, _)| *n == name) {
            Some((_, count)) => *count += 1,
            None => answers.push((name, 1)),
        }
    }

    /// Counts a request refused with `e`.
    pub fn reject(&self, e: &H1Error) {
        self.bad_requests.fetch_add(1, Ordering::Relaxed);
        self.rejected[e.reason_index()].fetch_add(1, Ordering::Relaxed);
    }

    pub fn status(&self, status: u16) {
        let counter = match status {
            100..=199 => &self.status_1xx,
            200..=299 => &self.status_2xx,
            300..=399 => &self.status_3xx,
            400..=499 => &self.status_4xx,
            _ => &self.status_5xx,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn timed_out(&self, kind: TimeoutKind) {
        let counter = match kind {
            TimeoutKind::Header => &self.header_timeouts,
            TimeoutKind::Keepalive => &self.keepalive_timeouts,
            TimeoutKind::Body => &self.body_timeouts,
            TimeoutKind::Handshake => &self.handshake_timeouts,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// What a client was too slow with; the label of
/// `baton_http_timeouts_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutKind {
    Header,
    Keepalive,
    Body,
    /// A TLS handshake (the ClientHello included).
    Handshake,
}

impl TimeoutKind {
    pub fn label(self) -> &'static str {
        match self {
            TimeoutKind::Header => "header",
            TimeoutKind::Keepalive => "keepalive",
            TimeoutKind::Body => "body",
            TimeoutKind::Handshake => "handshake",
        }
    }
}
