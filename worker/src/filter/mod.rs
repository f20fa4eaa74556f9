//! Filter chains: what a listener and an HTTP route run on
//! its connections and requests besides proxying them.
//!
//! The layer sits between the upstreams and the per-protocol proxies: the
//! proxies run the chains, and the chains see only the vocabulary below
//! them (the pumps' [`crate::l4::tap`], the codecs' [`crate::codec::Frame`]
//! and [`crate::codec::http1::Head`], the `http` crate's types).
//!
//! * [`network`] — the **L4 network-filter chain**
//!   ([`network::NetworkChain`]): on accept a filter may refuse the
//!   connection; on bytes, each way, it may observe, rewrite or close;
//! * [`http`] — the **L7 stream-filter chain for HTTP**
//!   ([`http::HttpChain`], one [`http::HttpStream`] per request): request
//!   headers, body chunks, trailers, then response headers, body chunks,
//!   trailers; each callback continues (having modified what it was handed,
//!   or not) or answers locally with an HTTP response;
//! * [`rpc`] — the **L7 stream-filter chain for RPC**
//!   ([`rpc::RpcChain`], one [`rpc::RpcFilters`] per connection): request
//!   and response frames; each callback continues or answers locally with
//!   the protocol's own error response (the codec's `hijack`);
//! * [`builtin`] — the built-in filters of each chain (header edits,
//!   rate limits, RBAC, faults, CORS, response compression, request
//!   mirroring, …);
//! * [`buckets`] — token buckets (the rate limits'), which an upgrade
//!   carries to the next generation;
//! * [`wasm`] — proxy-wasm plugins as HTTP filters (the host, on wasmi);
//! * [`compiled`] — HTTP filters compiled into a worker binary of one's
//!   own, registered by name (the public API for writing a filter in
//!   Rust, with `examples/custom_filter.rs`);
//! * [`config`] — the chains built from a listener's and a route's
//!   `filters` (`baton_config::filter`).
//!
//! Order: request-side callbacks run in chain order, response-side ones in
//! reverse (the first filter sees the request first and the response
//! last), as Envoy's decoder and encoder chains do. The config
//! (`filters = [...]` or `[[listeners.filters]]` on a listener,
//! `filters` on an HTTP route) builds the chains ([`config`]); a listener
//! without filters has empty chains, and an empty chain costs a length
//! check: no allocation, no call, and an L4 tunnel keeps splicing.
//!
//! # Filters and upgrades: who moves, who drains
//!
//! Every filter declares its [`Mobility`]: whether it keeps
//! per-connection state that cannot move to the next generation. The rule:
//!
//! * a connection whose filters are all [`Mobility::Moves`] moves at an
//!   upgrade like any other of its kind; the next generation builds the
//!   connection's filters afresh from *its* chain for that listener (a
//!   moved connection is not accepted again: the accept stage does not
//!   run for it);
//! * a connection with one [`Mobility::Stays`] filter drains instead: it
//!   answers the pause with "ended", keeps running in the old generation
//!   until it finishes or the drain deadline closes it (counted like every
//!   drained connection), and the next generation never sees it. (An
//!   HTTP/1.1 connection, paused only between two requests, has nothing
//!   in flight to drain: it closes there.)
//!
//! A filter whose per-connection state is only what its config implies
//! (a header it adds, an address list it checks) is `Moves`; one that
//! counts or remembers per connection (bytes so far, a session it opened)
//! is `Stays`, until the handoff can carry its state. State kept per
//! listener rather than per connection (a rate limit's buckets, a
//! per-source connection count) is not what this is about: it is the
//! generation's, and such a filter `Moves`. A count of open connections
//! is given back when a connection leaves, whether it ends or moves
//! (the [`network::Hold`] its connection task drops).
//!
//! Where migration checks it, in the pause arms of `conn::task`: an L4
//! tunnel asks its tap ([`crate::l4::tap::Tap::moves`], answered by
//! [`network::ConnFilters`]); an HTTP/1.1 connection asks its listener's
//! [`http::HttpChain::mobility`] (HTTP filters are made per request, so
//! the listener's chain is what the connection's filters are) and, if it
//! must stay, closes between two requests, as a TLS connection does — the
//! client reconnects to the new generation; an RPC connection asks
//! [`rpc::RpcFilters::moves`] and drains. An HTTP/2 connection drains
//! whatever its filters (a two-step GOAWAY: it cannot move yet).
//!
//! # Wired so far
//!
//! * L4: the chain runs on every accepted connection (the accept stage)
//!   and taps L4 tunnels (the byte stage); on HTTP, RPC and echo
//!   listeners only the accept stage runs.
//! * HTTP: the listener's [`http::HttpChain`] (in `http::HttpContext`)
//!   runs in the HTTP exchange (`http::exchange`, every client and
//!   upstream protocol), request headers before routing.
//! * RPC: the listener's [`rpc::RpcChain`] (in
//!   `rpc::downstream::Context`) runs in each client connection
//!   (`rpc::downstream`) on request frames before routing and on the
//!   responses to them.
//!
//! * HTTP routes: a route's own chain runs after the listener's, in the
//!   same stream, and may turn listener filters off by name (see
//!   `http::exchange`'s "Filters" for which route's filters run).
//!
//! Not wired yet: the L4 byte stage on HTTP and RPC connections (the
//! config refuses `byte_limit` there), filters on RPC routes.

pub(crate) mod buckets;
pub(crate) mod builtin;
pub mod compiled;
pub(crate) mod config;
pub mod http;
pub(crate) mod network;
pub(crate) mod rpc;
pub(crate) mod wasm;

use std::net::SocketAddr;
use std::sync::Arc;

/// Whether a filter keeps per-connection state that cannot move to the
/// next generation (see the module docs for the rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mobility {
    /// No per-connection state, or only what the next generation rebuilds
    /// from its config: the connection moves.
    Moves,
    /// Per-connection state that cannot move: the connection drains.
    Stays,
}

impl Mobility {
    /// `Moves` only if every one of `all` does.
    pub fn of_all(all: impl IntoIterator<Item = Mobility>) -> Mobility {
        if all.into_iter().all(|m| m == Mobility::Moves) {
            Mobility::Moves
        } else {
            Mobility::Stays
        }
    }
}

/// The connection a filter is run for.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// The listener's name.
    pub listener: Arc<str>,
    /// The client's address.
    pub source: Option<SocketAddr>,
    /// The address the client connected to (with TPROXY, the original
    /// destination).
    pub local: Option<SocketAddr>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_staying_filter_keeps_the_connection() {
        use Mobility::{Moves, Stays};
        assert_eq!(Mobility::of_all([]), Moves);
        assert_eq!(Mobility::of_all([Moves, Moves]), Moves);
        assert_eq!(Mobility::of_all([Moves, Stays, Moves]), Stays);
    }
}
