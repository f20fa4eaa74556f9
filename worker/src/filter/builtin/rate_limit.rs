//! `local_rate_limit` (HTTP) and `rpc_rate_limit` (RPC): token buckets,
//! as Envoy's local rate limit filter keeps them.
//!
//! A bucket holds at most `max_tokens`, starts full and gains
//! `tokens_per_fill` every `fill_interval` (whole intervals: a token
//! never arrives early); each request takes one. A request that finds
//! its bucket empty is answered at once and never reaches the upstream:
//! HTTP with 429, `retry-after` (whole seconds until the next token,
//! at least 1) and `x-baton-ratelimited: 1`; RPC with the protocol's own
//! `overloaded` error frame.
//!
//! # Where the buckets live
//!
//! In the filter, which the generation builds once per listener (and
//! once per route with filters of its own) and shares between all the
//! listener's connections and worker threads: a limit is per
//! listener or route, however many connections the requests come over.
//! A [`parking_lot::Mutex`] guards them, held for the arithmetic only.
//! The state is per listener, not per connection, so the filter
//! [`Mobility::Moves`]; the buckets themselves are the generation's (see
//! [`Snapshot`] for carrying them).
//!
//! # Keys
//!
//! With a `key` (a header's value, or the client's IP) each value gets
//! its own bucket; requests without one (no such header, an unknown
//! address) share the filter's unkeyed bucket. Keyed buckets are bounded
//! by [`MAX_KEYS`]: when a new key finds the map full, the buckets that
//! have refilled to the brim are dropped first (a full bucket is what a
//! new one would be, so nothing is lost), and if none has, the least
//! recently used one goes (a scan, paid only while every one of
//! [`MAX_KEYS`] keys is active).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use baton_config::filter::{RateKey, TokenBucket as Settings};
use parking_lot::Mutex;
use tokio::time::Instant;

use crate::codec::{ErrorKind, Frame};
use crate::filter::http::{Action, HttpFilter, HttpStreamFilter, LocalResponse, RequestHead};
use crate::filter::rpc::{RpcAction, RpcFilter, RpcFrameFilter};
use crate::filter::{ConnInfo, Mobility};

/// How many keyed buckets one filter keeps. Why this many: enough for
/// the active users or clients of one listener; each costs well under a
/// hundred bytes, so the bound caps memory at about a megabyte however
/// many distinct values clients send.
pub(crate) const MAX_KEYS: usize = 10_000;

/// One token bucket: its settings and its state.
#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    settings: Settings,
    tokens: u64,
    /// When the last whole interval ended (tokens were last added).
    last_fill: Instant,
}

/// A bucket's state as plain data, to carry it elsewhere (to the next
/// generation at an upgrade): its tokens, and how long ago its last fill
/// was — a duration, not an instant, so it means the same in another
/// process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Snapshot {
    pub(crate) tokens: u64,
    pub(crate) since_fill: Duration,
}

impl TokenBucket {
    /// A full bucket.
    pub(crate) fn full(settings: Settings, now: Instant) -> TokenBucket {
        TokenBucket {
            settings,
            tokens: settings.max_tokens.get(),
            last_fill: now,
        }
    }

    #[cfg_attr(
        not(test),
        expect(
            dead_code,
            reason = "for carrying buckets across an upgrade (issue 15 item 4)"
        )
    )]
    /// A bucket in the state `snapshot` describes (its tokens capped at
    /// what `settings` allow, should they have changed).
    pub(crate) fn restore(settings: Settings, snapshot: Snapshot, now: Instant) -> TokenBucket {
        TokenBucket {
            settings,
            tokens: snapshot.tokens.min(settings.max_tokens.get()),
            last_fill: now.checked_sub(snapshot.since_fill).unwrap_or(now),
        }
    }

    pub(crate) fn snapshot(&mut self, now: Instant) -> Snapshot {
        self.refill(now);
        Snapshot {
            tokens: self.tokens,
            since_fill: now.saturating_duration_since(self.last_fill),
        }
    }

    /// Adds the tokens of the whole intervals since the last fill.
    fn refill(&mut self, now: Instant) {
        let interval = self.settings.fill_interval;
        let elapsed = now.saturating_duration_since(self.last_fill);
        let intervals = elapsed.as_nanos() / interval.as_nanos().max(1);
        if intervals == 0 {
            return;
        }
        let max = self.settings.max_tokens.get();
        let added = u128::from(self.settings.tokens_per_fill.get()).saturating_mul(intervals);
        self.tokens = u64::try_from(u128::from(self.tokens).saturating_add(added))
            .unwrap_or(max)
            .min(max);
        if self.tokens == max {
            // Full: the next fill is an interval from now, whatever is left
            // of this one (nothing is owed to a full bucket).
            self.last_fill = now;
        } else {
            // Not full: keep the interval's phase. `intervals` is small here
            // (fewer than max_tokens / tokens_per_fill).
            let whole = u32::try_from(intervals).unwrap_or(u32::MAX);
            self.last_fill += interval.saturating_mul(whole);
        }
    }

    /// Takes a token; if there is none, how long until the next one.
    pub(crate) fn take(&mut self, now: Instant) -> Result<(), Duration> {
        self.refill(now);
        if self.tokens > 0 {
            self.tokens -= 1;
            return Ok(());
        }
        let next = self.last_fill + self.settings.fill_interval;
        Err(next.saturating_duration_since(now))
    }

    fn is_full(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.tokens == self.settings.max_tokens.get()
    }
}

/// What a keyed bucket is kept for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Key {
    Ip(IpAddr),
    Value(Box<[u8]>),
}

/// One filter's buckets: the unkeyed one and the keyed ones.
#[derive(Debug)]
pub(crate) struct Limiter {
    settings: Settings,
    state: Mutex<Buckets>,
}

#[derive(Debug)]
struct Buckets {
    unkeyed: TokenBucket,
    /// Each with when it was last used.
    keyed: HashMap<Key, (TokenBucket, Instant)>,
}

impl Limiter {
    pub(crate) fn new(settings: Settings, now: Instant) -> Limiter {
        Limiter {
            settings,
            state: Mutex::new(Buckets {
                unkeyed: TokenBucket::full(settings, now),
                keyed: HashMap::new(),
            }),
        }
    }

    /// Takes a token from `key`'s bucket (the unkeyed one for `None`).
    pub(crate) fn take(&self, key: Option<Key>, now: Instant) -> Result<(), Duration> {
        let mut state = self.state.lock();
        let Some(key) = key else {
            return state.unkeyed.take(now);
        };
        if !state.keyed.contains_key(&key) && state.keyed.len() >= MAX_KEYS {
            state.make_room(now);
        }
        let (bucket, used) = state
            .keyed
            .entry(key)
            .or_insert_with(|| (TokenBucket::full(self.settings, now), now));
        *used = now;
        bucket.take(now)
    }

    /// Every bucket's state (the unkeyed one's key is `None`).
    #[cfg_attr(
        not(test),
        expect(
            dead_code,
            reason = "for carrying buckets across an upgrade (issue 15 item 4)"
        )
    )]
    pub(crate) fn snapshot(&self, now: Instant) -> Vec<(Option<Key>, Snapshot)> {
        let mut state = self.state.lock();
        let mut out = vec![(None, state.unkeyed.snapshot(now))];
        for (key, (bucket, _)) in &mut state.keyed {
            out.push((Some(key.clone()), bucket.snapshot(now)));
        }
        out
    }

    /// How many keyed buckets it keeps now.
    #[cfg(test)]
    fn keys(&self) -> usize {
        self.state.lock().keyed.len()
    }
}

impl Buckets {
    /// Drops the full buckets, or else the least recently used one.
    fn make_room(&mut self, now: Instant) {
        self.keyed.retain(|_, (bucket, _)| !bucket.is_full(now));
        if self.keyed.len() < MAX_KEYS {
            return;
        }
        let oldest = self
            .keyed
            .iter()
            .min_by_key(|(_, (_, used))| *used)
            .map(|(key, _)| key.clone());
        if let Some(key) = oldest {
            self.keyed.remove(&key);
        }
    }
}

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
    use std::num::NonZeroU64;

    fn settings(max: u64, per_fill: u64, interval: Duration) -> Settings {
        Settings {
            max_tokens: NonZeroU64::new(max).unwrap(),
            tokens_per_fill: NonZeroU64::new(per_fill).unwrap(),
            fill_interval: interval,
        }
    }

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn a_bucket_empties_then_fills_by_whole_intervals() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::full(settings(3, 2, SECOND), t0);
        for _ in 0..3 {
            assert_eq!(bucket.take(t0), Ok(()));
        }
        assert_eq!(bucket.take(t0), Err(SECOND));
        let later = t0 + Duration::from_millis(400);
        assert_eq!(bucket.take(later), Err(Duration::from_millis(600)));
        // One interval: two tokens.
        let t1 = t0 + Duration::from_millis(1100);
        assert_eq!(bucket.take(t1), Ok(()));
        assert_eq!(bucket.take(t1), Ok(()));
        assert_eq!(
            bucket.take(t1),
            Err(Duration::from_millis(900)),
            "the fills keep their phase"
        );
        // Long idle: full, never more.
        let t2 = t0 + Duration::from_secs(3600);
        assert_eq!(bucket.snapshot(t2).tokens, 3);
    }

    #[test]
    fn a_snapshot_carries_tokens_and_the_time_since_the_fill() {
        let t0 = Instant::now();
        let s = settings(5, 1, Duration::from_secs(10));
        let mut bucket = TokenBucket::full(s, t0);
        for _ in 0..5 {
            bucket.take(t0).unwrap();
        }
        let then = t0 + Duration::from_secs(14);
        let snapshot = bucket.snapshot(then);
        assert_eq!(
            snapshot,
            Snapshot {
                tokens: 1,
                since_fill: Duration::from_secs(4)
            }
        );
        // Elsewhere, later: the same bucket.
        let elsewhere = then + Duration::from_secs(100);
        let mut moved = TokenBucket::restore(s, snapshot, elsewhere);
        assert_eq!(moved.take(elsewhere), Ok(()));
        assert_eq!(moved.take(elsewhere), Err(Duration::from_secs(6)));
        // Smaller settings cap what it carried.
        let smaller = TokenBucket::restore(settings(1, 1, SECOND), snapshot, elsewhere);
        assert_eq!(smaller.tokens, 1);
        let mut full = TokenBucket::restore(
            s,
            Snapshot {
                tokens: 99,
                since_fill: Duration::ZERO,
            },
            elsewhere,
        );
        assert_eq!(full.snapshot(elsewhere).tokens, 5);
    }

    #[test]
    fn keys_get_their_own_buckets_and_the_map_stays_bounded() {
        let t0 = Instant::now();
        let limiter = Limiter::new(settings(1, 1, SECOND), t0);
        let user = |u: &str| Some(Key::Value(u.as_bytes().into()));
        assert_eq!(limiter.take(user("a"), t0), Ok(()));
        assert!(limiter.take(user("a"), t0).is_err());
        assert_eq!(limiter.take(user("b"), t0), Ok(()));
        assert_eq!(limiter.take(None, t0), Ok(()), "the unkeyed bucket");
        assert!(limiter.take(None, t0).is_err());

        // Full of active keys: the least recently used goes ("a").
        let soon = t0 + Duration::from_millis(1);
        for i in 2..MAX_KEYS {
            let ip = IpAddr::from(u32::try_from(i).unwrap().to_be_bytes());
            assert_eq!(limiter.take(Some(Key::Ip(ip)), soon), Ok(()));
        }
        assert_eq!(limiter.keys(), MAX_KEYS);
        let t1 = t0 + Duration::from_millis(10);
        assert!(limiter.take(user("b"), t1).is_err(), "b is remembered");
        assert!(limiter.take(user("new"), t1).is_ok());
        assert_eq!(limiter.keys(), MAX_KEYS);
        assert!(
            limiter.take(user("a"), t1).is_ok(),
            "a was evicted: a fresh bucket"
        );

        // Once they have refilled, the full buckets make room at once.
        let t2 = t0 + Duration::from_secs(2);
        assert!(limiter.take(user("another"), t2).is_ok());
        assert_eq!(limiter.keys(), 1);
        assert_eq!(limiter.snapshot(t2).len(), 2);
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
