//! HTTP proxying.
//!
//! An `http` listener speaks HTTP/1.1 ([`session_h1`], on the framing of
//! [`http1`]), routes each request ([`route`]): by host (exact or `*.`
//! wildcard), path (exact, prefix, regex), method and headers, to a
//! cluster (or weighted clusters), a direct response or a redirect — and
//! forwards it with its body streamed, over idle keep-alive upstream
//! connections ([`h1_pool`]).
//!
//! HTTP/2 ([`session_h2`]) is spoken to clients that open with its preface (h2c
//! prior knowledge) or pick it by ALPN over TLS ([`tls`]), and to clusters
//! with `protocol = "http2"`; streams to `http1` clusters are translated.
//! Clusters with a `tls` table are reached over TLS ([`connect`]).
//! The head limits (`max_headers`, `max_header_bytes`) apply to both
//! protocols, measured the same way ([`h2_limits`] for HTTP/2).
//!
//! The HTTP/1 head and chunked parsers have fuzz targets (`fuzz/`), whose
//! harness is the (hidden) `fuzzing` module.
//!
//! Across an upgrade, a plaintext HTTP/1.1 connection moves between two
//! requests with the bytes it has read of the next one (see
//! [`session_h1`]) — unless its listener's filters keep state that
//! cannot move (`crate::filter`): then it closes there; a connection upgraded to a tunnel (WebSocket) moves
//! like any L4 tunnel when both of its sides are plain TCP, and drains
//! otherwise ([`relay`]);
//! an HTTP/2 connection drains with a two-step GOAWAY; a TLS connection
//! (no kTLS here, so its session cannot move) closes after its current
//! response (HTTP/1.1) or drains (HTTP/2).
//!
//! # Timeouts (slowloris and friends)
//!
//! A client holds a connection slot, an fd and memory while it is slow, so
//! every wait on it is bounded ([`Timeouts`], per listener):
//!
//! * `header_timeout`: a request head must arrive whole within it — from
//!   the accept for the first request, from its first byte on a
//!   kept-alive connection (HAProxy's `timeout http-request`). It also
//!   bounds a TLS handshake and an HTTP/2 connection's preface and first
//!   stream. A head that began gets a 408; a connection that sent nothing
//!   is closed quietly (a browser's preconnect, like HAProxy's
//!   `option http-ignore-probes`).
//! * `keepalive_timeout`: between two requests (HTTP/2: while no stream is
//!   open), the wait for the next one; the connection then closes quietly
//!   (HTTP/2: GOAWAY).
//! * `body_timeout`: the longest stall between two reads of a request
//!   body; then 408 (HTTP/2: on the stream) and the connection closes.
//!
//! Each is counted by kind in `baton_http_timeouts_total`.
//!
//! # Layout
//!
//! One request goes through one pipeline, [`exchange`] (decide → request
//! transforms → forward with timeout and retries → response → respond),
//! whatever the client and the cluster speak: it is generic over the two
//! sides ([`sides`]), each implemented once per protocol.
//!
//! | part | HTTP/1.1 | HTTP/2 |
//! |---|---|---|
//! | client side (the connection, its requests) | [`session_h1`] | [`session_h2`] |
//! | upstream side (a connection or a stream) | [`client_h1`], pooled by [`h1_pool`] | [`client_h2`] (`H2Pool`: one connection per cluster) |
//!
//! The listener's L7 filters ([`crate::filter::http`], in
//! [`HttpContext::filters`]) run in the exchange (see its "Filters");
//! the shadow copies the `mirror` filter asks for are made and sent by
//! [`shadow`].
//!
//! Between them: [`message`] (what moves: heads, body pieces, trailers,
//! local answers), [`transform`] (what a message carries to the next hop:
//! XFF/`X-Forwarded-Proto`, hop-by-hop removal, Host/`:authority`,
//! framing), [`translate`] (heads and trailers across protocols),
//! [`error`] (typed errors by side), [`duplex`] (an HTTP/1.1 stream split
//! into halves for an exchange). Also: [`connect`] (upstream connections,
//! plain or TLS), [`tls`] (listener certificates), [`relay`] (switched
//! protocols over TLS), [`h2_limits`] (HTTP/2 head limits), [`parked`]
//! (a paused HTTP/1.1 connection at rest and on the wire), [`live`] (the
//! HTTP kinds running, as the connection task drives them).

pub(crate) mod client_h1;
pub(crate) mod client_h2;
pub(crate) mod connect;
pub(crate) mod duplex;
pub(crate) mod error;
pub(crate) mod exchange;
#[doc(hidden)]
pub mod fuzzing;
pub(crate) mod h1_pool;
pub(crate) mod h2_limits;
pub(crate) mod live;
pub(crate) mod message;
pub(crate) mod parked;
pub(crate) mod relay;
pub(crate) mod route;
pub(crate) mod session_h1;
pub(crate) mod session_h2;
pub(crate) mod shadow;
pub(crate) mod sides;
pub(crate) mod tls;
pub(crate) mod transform;
pub(crate) mod translate;

use std::sync::Arc;
use std::time::Duration;

use baton_config::{ClusterId, Config, Listener, Target};

use crate::codec::http1;
use crate::filter::http::HttpChain;
use crate::telemetry::meters::HttpMeters;

/// One HTTP listener's settings, compiled.
#[derive(Debug)]
pub struct HttpListener {
    pub name: Arc<str>,
    pub routes: Vec<route::Compiled>,
    /// Whether any route has filters of its own (or turns the listener's
    /// off): when none has, a request runs the listener's chain alone.
    pub(crate) route_filters: bool,
    /// Whether every route's filters let a connection move.
    pub(crate) routes_move: bool,
    /// The listener's `cluster`, or `NotFound`.
    pub default: Target,
    pub request_timeout: Duration,
    pub timeouts: Timeouts,
    pub limits: http1::Limits,
    /// `http` or `https`, for `X-Forwarded-Proto`.
    pub proto: &'static str,
}

impl HttpListener {
    pub fn new(spec: &Listener) -> Result<Option<HttpListener>, error::SetupError> {
        let Some(http) = &spec.http else {
            return Ok(None);
        };
        let routes = http
            .routes
            .iter()
            .map(|r| route::Compiled::new(r.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(HttpListener {
            name: Arc::from(spec.name.as_str()),
            route_filters: routes.iter().any(route::Compiled::has_filters),
            routes_move: routes
                .iter()
                .all(|r| r.filters.mobility() == crate::filter::Mobility::Moves),
            routes,
            default: spec.target.clone(),
            request_timeout: http.request_timeout,
            timeouts: Timeouts {
                header: http.header_timeout,
                keepalive: http.keepalive_timeout,
                body: http.body_timeout,
            },
            limits: http1::Limits {
                max_header_bytes: http.max_header_bytes,
                max_headers: http.max_headers,
            },
            proto: if http.tls.is_some() { "https" } else { "http" },
        }))
    }
}

/// How long an HTTP listener waits on a client (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// For a whole request head (and a TLS handshake, an HTTP/2 preface).
    pub header: Duration,
    /// For the next request on a kept-alive connection.
    pub keepalive: Duration,
    /// The longest stall inside a request body.
    pub body: Duration,
}

/// What an HTTP connection needs from its generation.
#[derive(Debug, Clone)]
pub struct HttpContext {
    pub listener: Arc<HttpListener>,
    /// One per `config.clusters`, same order: read through
    /// [`HttpContext::upstream`].
    pub upstreams: Arc<[Arc<connect::HttpUpstream>]>,
    pub pool: Arc<h1_pool::H1Pool>,
    pub h2_pool: Arc<client_h2::H2Pool>,
    /// TLS listeners: the server config (certificates, ALPN).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub meters: Arc<HttpMeters>,
    /// This worker's generation, for direct responses.
    pub generation: u32,
    /// The worker's fd budget: an HTTP/2 stream's upstream connection
    /// takes a unit of it.
    pub fds: Arc<crate::fds::FdBudget>,
    /// The listener's L7 filters (empty until issue 15's config builds
    /// them: then the exchange makes no stream and calls nothing).
    pub filters: HttpChain,
}

impl HttpContext {
    /// The upstream of cluster `id`.
    pub fn upstream(&self, id: ClusterId) -> &Arc<connect::HttpUpstream> {
        &self.upstreams[id.index()]
    }
}

/// Builds, and drops, what an HTTP generation reads or compiles beyond the
/// config text — route regexes, listener certificates, cluster CA bundles —
/// so that `check` reports what would stop a generation from starting.
pub fn verify(config: &Config) -> Result<(), error::SetupError> {
    use error::SetupError;
    for l in &config.listeners {
        HttpListener::new(l).map_err(SetupError::listener(&l.name))?;
        if let Some(tls) = l.http.as_ref().and_then(|h| h.tls.as_ref()) {
            tls::server_config(tls).map_err(SetupError::listener(&l.name))?;
        }
    }
    for c in &config.clusters {
        connect::verify(c).map_err(SetupError::cluster(&c.name))?;
    }
    Ok(())
}
