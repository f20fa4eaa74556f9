//! `local_rate_limit` (HTTP) and `rpc_rate_limit` (RPC): a request takes
//! a token from its bucket ([`crate::filter::buckets`]); one that finds
//! it empty is answered at once and never reaches the upstream: HTTP with
//! 429, `retry-after` (whole seconds until the next token, at least 1)
//! and `x-baton-ratelimited: 1`; RPC with the protocol's own `overloaded`
//! error frame.
//!
//! # Where the buckets live
//!
//! In the filter, which the generation builds once per listener (and
//! once per route with filters of its own) and shares between all the
//! listener's connections and worker threads: a limit is per listener or
//! route, however many connections the requests come over. The state is
//! per listener, not per connection, so the filter [`Mobility::Moves`];
//! the buckets themselves are the generation's, and an upgrade carries
//! them to the next one ([`HttpFilter::buckets`], `migrate::health`).
//!
//! With a `key` (a header's value, or the client's IP) each value gets
//! its own bucket; requests without one (no such header, an unknown
//! address) share the filter's unkeyed bucket.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use baton_config::filter::{RateKey, TokenBucket as Settings};
use tokio::time::Instant;

use crate::codec::{ErrorKind, Frame};
use crate::filter::buckets::{Key, Limiter};
use crate::filter::http::{Action, HttpFilter, HttpStreamFilter, LocalResponse, RequestHead};
use crate::filter::rpc::{RpcAction, RpcFilter, RpcFrameFilter};
use crate::filter::{ConnInfo, Mobility};

// === local_rate_limit (HTTP) ===

/// `local_rate_limit`: a listener's (or route's) buckets for its requests.
#[derive(Debug, Clone)]
pub(crate) struct LocalRateLimit {
    inner: Arc<LocalInner>,
}

#[derive(Debug)]
struct LocalInner {
    limiter: Limiter,
    key: RateKey,
}

impl LocalRateLimit {
    pub(crate) fn new(settings: Settings, key: RateKey) -> LocalRateLimit {
        LocalRateLimit {
            inner: Arc::new(LocalInner {
                limiter: Limiter::new(settings, Instant::now()),
                key,
            }),
        }
    }
}

impl HttpFilter for LocalRateLimit {
    fn name(&self) -> &'static str {
        "local_rate_limit"
    }

    /// Its buckets are the listener's, not a connection's.
    fn mobility(&self) -> Mobility {
        Mobility::Moves
    }

    fn buckets(&self) -> Option<&Limiter> {
        Some(&self.inner.limiter)
    }

    fn stream(&self, conn: &ConnInfo) -> Box<dyn HttpStreamFilter> {
        Box::new(LocalStream {
            inner: Arc::clone(&self.inner),
            source: conn.source.map(|s| s.ip().to_canonical()),
        })
    }
}

struct LocalStream {
    inner: Arc<LocalInner>,
    source: Option<IpAddr>,
}

impl HttpStreamFilter for LocalStream {
    fn on_request_headers(&mut self, head: &mut dyn RequestHead, _end_of_stream: bool) -> Action {
        let key = match &self.inner.key {
            RateKey::None => None,
            RateKey::Header(name) => head.get(name).map(|v| Key::Value(v.into())),
            RateKey::SourceIp => self.source.map(Key::Ip),
        };
        match self.inner.limiter.take(key, Instant::now()) {
            Ok(()) => Action::Continue,
            Err(wait) => too_many(wait),
        }
    }
}

/// The 429 for a request that found its bucket empty.
fn too_many(wait: Duration) -> Action {
    // Whole seconds, rounded up: a client that waits this long finds a
    // token.
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let answer = LocalResponse::new(429, &b"rate limited\n"[..])
        .and_then(|r| r.with_header("retry-after", seconds.max(1).to_string().as_bytes()))
        .and_then(|r| r.with_header("x-baton-ratelimited", b"1"));
    match answer {
        Ok(answer) => Action::Respond(Box::new(answer)),
        // Constant names and a number: cannot be refused.
        Err(e) => {
            tracing::error!(error = %e, "local_rate_limit: could not build its answer");
            Action::Continue
        }
    }
}

// === rpc_rate_limit (RPC) ===

/// `rpc_rate_limit`: one bucket for the requests of a service (and
/// method), or of every request.
#[derive(Debug, Clone)]
pub(crate) struct RpcRateLimit {
    inner: Arc<RpcInner>,
}

#[derive(Debug)]
struct RpcInner {
    service: Option<String>,
    method: Option<String>,
    limiter: Limiter,
}

impl RpcRateLimit {
    pub(crate) fn new(
        service: Option<String>,
        method: Option<String>,
        settings: Settings,
    ) -> RpcRateLimit {
        RpcRateLimit {
            inner: Arc::new(RpcInner {
                service,
                method,
                limiter: Limiter::new(settings, Instant::now()),
            }),
        }
    }
}

impl RpcFilter for RpcRateLimit {
    fn name(&self) -> &'static str {
        "rpc_rate_limit"
    }

    /// Its bucket is the listener's, not a connection's.
    fn mobility(&self) -> Mobility {
        Mobility::Moves
    }

    fn buckets(&self) -> Option<&Limiter> {
        Some(&self.inner.limiter)
    }

    fn connection(&self, _conn: &ConnInfo) -> Box<dyn RpcFrameFilter> {
        Box::new(self.clone())
    }
}

impl RpcFrameFilter for RpcRateLimit {
    fn on_request(&mut self, request: &mut Frame) -> RpcAction {
        let attributes = request.attributes();
        let matches = |want: &Option<String>, have: &Option<String>| {
            want.as_deref().is_none_or(|w| have.as_deref() == Some(w))
        };
        if !matches(&self.inner.service, &attributes.service)
            || !matches(&self.inner.method, &attributes.method)
        {
            return RpcAction::Continue;
        }
        match self.inner.limiter.take(None, Instant::now()) {
            Ok(()) => RpcAction::Continue,
            Err(_) => RpcAction::Respond(ErrorKind::Overloaded),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{CodecConfig, Protocol, bolt};
    use crate::filter::http::HttpChain;
    use crate::filter::http::mock::{exchange, request, response};
    use crate::filter::rpc::{RpcChain, RpcFlow};
    use bytes::BytesMut;

    fn settings(max: u64, per_fill: u64, interval: Duration) -> Settings {
        Settings {
            max_tokens: std::num::NonZeroU64::new(max).unwrap(),
            tokens_per_fill: std::num::NonZeroU64::new(per_fill).unwrap(),
            fill_interval: interval,
        }
    }

    fn limited(key: RateKey) -> HttpChain {
        HttpChain::new(vec![Arc::new(LocalRateLimit::new(
            settings(2, 1, Duration::from_secs(3600)),
            key,
        ))])
    }

    #[test]
    fn over_the_limit_a_request_gets_429_and_never_reaches_the_upstream() {
        let chain = limited(RateKey::None);
        for _ in 0..2 {
            let run = exchange(&chain, request("/", &[]), response(200, &[]));
            assert!(run.upstream_saw.is_some());
            assert_eq!(run.client_got.head.status, 200);
        }
        let run = exchange(&chain, request("/", &[]), response(200, &[]));
        assert!(run.upstream_saw.is_none());
        let got = run.client_got.head;
        assert_eq!(got.status, 429);
        assert_eq!(got.header("retry-after"), Some(&b"3600"[..]));
        assert_eq!(got.header("x-baton-ratelimited"), Some(&b"1"[..]));
    }

    #[test]
    fn a_header_key_limits_each_value_on_its_own() {
        let chain = limited(RateKey::Header("x-user".into()));
        let status = |user: Option<&str>| {
            let headers: Vec<_> = user.map(|u| ("x-user", u)).into_iter().collect();
            exchange(&chain, request("/", &headers), response(200, &[]))
                .client_got
                .head
                .status
        };
        assert_eq!([status(Some("a")), status(Some("a"))], [200, 200]);
        assert_eq!(status(Some("a")), 429);
        assert_eq!(status(Some("b")), 200);
        // Without the header: the shared bucket.
        assert_eq!([status(None), status(None), status(None)], [200, 200, 429]);
    }

    #[test]
    fn the_source_ip_key_uses_the_clients_address() {
        // The mock exchange's client is 10.0.0.1.
        let chain = limited(RateKey::SourceIp);
        let limiter = &chain;
        for want in [200, 200, 429] {
            let run = exchange(limiter, request("/", &[]), response(200, &[]));
            assert_eq!(run.client_got.head.status, want);
        }
    }

    #[test]
    fn rpc_requests_of_the_service_get_the_overloaded_error() {
        let mut codec = Protocol::Bolt.codec(CodecConfig::default());
        let bytes = &bolt::fixtures::BOLT_REQUEST_PROTOBUF[..];
        let frame = codec.decode(&mut BytesMut::from(bytes)).unwrap().unwrap();
        let service = frame.attributes().service.clone();
        let run = |filter: RpcRateLimit| {
            let chain = RpcChain::new(vec![Arc::new(filter)]);
            let conn = ConnInfo {
                listener: Arc::from("l"),
                source: None,
                local: None,
            };
            // Two connections share the listener's bucket.
            let mut connections = [chain.connection(&conn), chain.connection(&conn)];
            [0, 1, 0]
                .map(|i| connections[i].request(&mut frame.clone(), &codec))
                .to_vec()
        };
        let s = settings(2, 1, Duration::from_secs(3600));
        let flows = run(RpcRateLimit::new(service.clone(), None, s));
        assert_eq!(flows[..2], [RpcFlow::Forward, RpcFlow::Forward]);
        assert_eq!(
            flows[2],
            RpcFlow::Answer(Box::new(codec.hijack(&frame, ErrorKind::Overloaded)))
        );
        // Another service is not limited.
        let flows = run(RpcRateLimit::new(Some("other".into()), None, s));
        assert!(flows.iter().all(|f| *f == RpcFlow::Forward));
    }
}
