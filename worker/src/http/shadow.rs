//! Shadow copies of requests: the `mirror` filter's (Envoy's request
//! mirroring), made and sent here, since a filter cannot send.
//!
//! # Sequence
//!
//! 1. **Begin** ([`Shadow::begin`], from `exchange::forward`): a request
//!    that every filter let through and that is routed to a cluster is
//!    asked for the copies its filters want
//!    ([`HttpStream::mirrors`](crate::filter::http::HttpStream::mirrors));
//!    none, the common case, costs that question. The head is copied as
//!    it goes upstream, every filter's change in it: its target in origin
//!    form, and its host (`Host`, or `:authority` to an HTTP/2 cluster)
//!    with `-shadow` appended before any port (`a.example:8080` becomes
//!    `a.example-shadow:8080`, as Envoy does), unless the filter says not
//!    to. `Expect` is dropped: the copy goes whole, nobody waits for a
//!    `100 Continue`. An upgrade (WebSocket) or a `CONNECT` is not copied.
//! 2. **Body**: each piece is copied as it goes to the main cluster (after
//!    the filters), trailers too. A copy whose body passes its
//!    `max_body_bytes` is abandoned there; the request goes on.
//! 3. **Send**: once the body has ended (at once when there is none), each
//!    copy goes on a task of its own ([`tokio::spawn`]), through the
//!    shadow cluster as a request of the exchange's would: its circuit
//!    breakers (`max_requests`, `max_pending_requests`), its balancer, a
//!    pooled connection or a new one (an HTTP/1.1 one takes a unit of the
//!    fd budget if one is free: a copy never waits for one), its outlier
//!    detection. The body goes with
//!    its length (chunked when it has trailers); then the response is read
//!    to its end and dropped, and the connection may serve again.
//!
//! # Bounds and failure
//!
//! A copy is held whole until the body has passed: at most
//! `max_body_bytes` per copy. Sending it is bounded by the route's
//! timeout (else the listener's `request_timeout`), from the task's start
//! to the end of the shadow's answer. Nothing of a copy reaches the
//! client or the request to the main cluster: the task owns everything it
//! uses, the exchange never waits for it, and its failures are counted,
//! never answered. A request whose body does not pass whole (the client
//! went away, the main cluster answered early) is not copied.
//!
//! Counted per listener in `baton_http_mirror_requests_total{result}`:
//! `sent` (the shadow answered, whatever its status), `failed` (no
//! connection, a breaker full, no fd to spare, an error, no answer in
//! time), `abandoned` (not sent: see above).
//!
//! A copy in flight when its generation exits (after an upgrade's drain)
//! is dropped with it: its answer was to be ignored anyway.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use baton_config::{ClusterId, UpstreamProtocol};
use bytes::Bytes;
use parking_lot::Mutex;
use tracing::{Instrument, debug};

use crate::codec::http1::{Framing, Head};
use crate::filter::http::{HttpStream, MirrorTo};
use crate::http::HttpContext;
use crate::http::client_h1::H1Client;
use crate::http::client_h2::H2Client;
use crate::http::error::UpstreamError;
use crate::http::message::{Piece, RequestInfo, Trailers};
use crate::http::sides::{BodySink, Buffered, Client, ResponseSource, Stalled};
use crate::http::transform::Outgoing;
use crate::telemetry::meters::Overflow;
use crate::upstream::health::Outcome;
use crate::upstream::lb::{Load, Pick};

/// A request's copies being made: the head, and the body so far.
pub(crate) struct Shadow {
    ctx: HttpContext,
    /// The copies still to send.
    targets: Vec<MirrorTo>,
    head: Head,
    client: Option<IpAddr>,
    body: Vec<Bytes>,
    len: u64,
    trailers: Option<Trailers>,
    timeout: Duration,
}

/// Where an exchange keeps its request's copies while the body passes
/// (shared by the attempt's two directions, like its filters: never
/// contended, never held across an await).
pub(crate) type ShadowSlot = Mutex<Option<Shadow>>;

impl Shadow {
    /// The copies `filters` ask for of the request `head` (as it goes
    /// upstream), bounded by `timeout`: sent at once when it has no body,
    /// else kept to copy the body into.
    pub(crate) fn begin(
        ctx: &HttpContext,
        filters: &Mutex<HttpStream>,
        head: &Head,
        client: Option<IpAddr>,
        timeout: Duration,
    ) -> Option<Shadow> {
        let targets = filters.lock().mirrors();
        if targets.is_empty() {
            return None;
        }
        let mut copy = head.clone();
        copy.target = head.origin_form().into_owned();
        copy.headers
            .retain(|(name, _)| !name.eq_ignore_ascii_case("expect"));
        let shadow = Shadow {
            ctx: ctx.clone(),
            targets,
            head: copy,
            client,
            body: Vec::new(),
            len: 0,
            trailers: None,
            timeout,
        };
        // A tunnel cannot be copied: dropped, so counted abandoned.
        if head.is_upgrade() || head.method.eq_ignore_ascii_case("CONNECT") {
            return None;
        }
        if head.framing == Framing::None {
            shadow.send();
            return None;
        }
        Some(shadow)
    }

    /// A piece of the body, as it goes to the main cluster.
    fn data(&mut self, data: &Bytes) {
        self.len += data.len() as u64;
        let len = self.len;
        let meters = &*self.ctx.meters;
        self.targets.retain(|t| {
            let fits = len <= t.max_body_bytes;
            if !fits {
                debug!(cluster = %t.cluster, "a mirrored body passed max_body_bytes: its copy is abandoned");
                count(&meters.mirror_abandoned);
            }
            fits
        });
        if self.targets.is_empty() {
            self.body.clear();
        } else {
            self.body.push(data.clone());
        }
    }

    /// Sends every copy, each on its own task.
    fn send(mut self) {
        let mut head = self.head.clone();
        head.framing = match self.trailers {
            Some(_) => Framing::Chunked,
            None if head.framing == Framing::None => Framing::None,
            None => Framing::Length(self.len),
        };
        let authority = crate::codec::http1::Hop::authority(&head).to_owned();
        for target in std::mem::take(&mut self.targets) {
            let mut head = head.clone();
            if target.host_suffix && !authority.is_empty() {
                set_host(&mut head, &shadow_host(&authority));
            }
            let copy = Copy {
                head,
                client: self.client,
                body: self.body.clone(),
                trailers: self.trailers.clone(),
            };
            let ctx = self.ctx.clone();
            let timeout = self.timeout;
            // In the connection's span, for its logs.
            let task = async move {
                match deliver(&ctx, &target, &copy, timeout).await {
                    Ok(()) => count(&ctx.meters.mirror_sent),
                    Err(e) => {
                        debug!(cluster = %target.cluster, error = %e, "a mirrored request failed");
                        count(&ctx.meters.mirror_failed);
                    }
                }
            };
            tokio::spawn(task.in_current_span());
        }
    }
}

impl Drop for Shadow {
    /// Copies never sent are counted.
    fn drop(&mut self) {
        for _ in &self.targets {
            count(&self.ctx.meters.mirror_abandoned);
        }
    }
}

fn count(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

// === the exchange's side ===

/// A piece of the request body went to the main cluster.
pub(crate) fn copy_data(slot: &ShadowSlot, data: &Bytes) {
    if let Some(shadow) = slot.lock().as_mut() {
        shadow.data(data);
    }
}

/// The request's trailers are going to the main cluster.
pub(crate) fn copy_trailers(slot: &ShadowSlot, trailers: &Trailers) {
    if let Some(shadow) = slot.lock().as_mut() {
        shadow.trailers = Some(trailers.clone());
    }
}

/// The request body has ended: the copies go.
pub(crate) fn body_ended(slot: &ShadowSlot) {
    let shadow = slot.lock().take();
    if let Some(shadow) = shadow {
        shadow.send();
    }
}

// === sending ===

/// One copy, whole.
struct Copy {
    head: Head,
    client: Option<IpAddr>,
    body: Vec<Bytes>,
    trailers: Option<Trailers>,
}

/// Why a copy did not get its answer.
#[derive(Debug, thiserror::Error)]
enum ShadowError {
    #[error("no cluster named {0:?} in this generation")]
    NoCluster(std::sync::Arc<str>),
    #[error("the cluster's {} is full", .0.label())]
    Overloaded(Overflow),
    #[error("no fd to spare for a shadow connection")]
    NoFd,
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error("the shadow's response body stalled")]
    Stalled,
    #[error("101 to a copy that did not ask to switch protocols")]
    Switched,
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

impl From<Stalled> for ShadowError {
    fn from(e: Stalled) -> ShadowError {
        match e {
            Stalled::Timeout => ShadowError::Stalled,
            Stalled::Failed(e) => ShadowError::Upstream(e),
        }
    }
}

/// Sends `copy` to the cluster `target` names and reads the answer to
/// its end, within `timeout`.
async fn deliver(
    ctx: &HttpContext,
    target: &MirrorTo,
    copy: &Copy,
    timeout: Duration,
) -> Result<(), ShadowError> {
    let cluster = ctx
        .upstreams
        .iter()
        .position(|u| *u.base.cluster.name == *target.cluster)
        .map(ClusterId::new)
        .ok_or_else(|| ShadowError::NoCluster(std::sync::Arc::clone(&target.cluster)))?;
    let sent = match ctx.upstream(cluster).protocol() {
        UpstreamProtocol::Http1 => {
            tokio::time::timeout(timeout, send::<H1Client>(ctx, cluster, copy, timeout)).await
        }
        UpstreamProtocol::Http2 => {
            tokio::time::timeout(timeout, send::<H2Client>(ctx, cluster, copy, timeout)).await
        }
    };
    sent.unwrap_or(Err(ShadowError::Timeout(timeout)))
}

/// One copy through `C`, as `exchange::forward` sends a request (one
/// attempt, no retry).
async fn send<C: Client>(
    ctx: &HttpContext,
    cluster: ClusterId,
    copy: &Copy,
    stall: Duration,
) -> Result<(), ShadowError> {
    let upstream = &ctx.upstream(cluster).base;
    let breakers = upstream.breakers();
    let _request = breakers.request().map_err(ShadowError::Overloaded)?;
    // A connection of the copy's own: a unit of the fd budget, if one is
    // free (a copy never waits for one, nor takes one a client needs
    // more: it fails instead).
    let _units = if C::OWN_CONNECTION {
        Some(ctx.fds.try_acquire(1).ok_or(ShadowError::NoFd)?)
    } else {
        None
    };
    let info = RequestInfo::of(&copy.head);
    let prepared = C::prepare(&Outgoing::new(&copy.head, copy.client, ctx.listener.proto))?;
    let balancer = upstream.balancer();
    let order = balancer.order(&Pick {
        source: copy.client,
        request: Some(&copy.head),
    });
    let opened = {
        let _pending = breakers.pending().map_err(ShadowError::Overloaded)?;
        C::open(ctx, cluster, order).await
    };
    let mut up = opened?;
    let endpoint = up.endpoint();
    let _load = Load::counted(balancer, endpoint);
    up.send(&prepared, &info).await?;
    let status = {
        let (mut body_out, mut response) = up.split();
        if info.has_body {
            for piece in &copy.body {
                body_out.data(piece.clone()).await?;
            }
            if let Some(trailers) = &copy.trailers {
                body_out.trailers(trailers.clone()).await?;
            }
            body_out.end().await?;
        }
        let head = loop {
            let head = response.head().await?;
            if !head.is_interim() {
                break head;
            }
        };
        let status = head.status();
        upstream
            .health()
            .report(endpoint, Outcome::of_status(status));
        if status == 101 {
            return Err(ShadowError::Switched);
        }
        // The answer, read to its end and dropped.
        loop {
            match response.buffered()? {
                Buffered::Piece(Piece::Data(_) | Piece::Trailers(_)) => {}
                Buffered::End => break,
                Buffered::Empty => {
                    if response.next(stall).await?.is_none() {
                        break;
                    }
                }
            }
        }
        status
    };
    debug!(status, "a mirrored request was answered");
    up.finish(ctx, cluster, true);
    Ok(())
}

// === the host ===

/// `host` with `-shadow` appended to its name, before any port (Envoy's
/// `shadowAppendedHost`).
fn shadow_host(host: &str) -> String {
    match host.rsplit_once(':') {
        Some((name, port))
            if !name.is_empty()
                && !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit())
                && (!name.contains(':') || name.ends_with(']')) =>
        {
            format!("{name}-shadow:{port}")
        }
        _ => format!("{host}-shadow"),
    }
}

/// Replaces the head's `Host` (the copy's target is in origin form, so
/// `Host` is its authority).
fn set_host(head: &mut Head, host: &str) {
    head.headers
        .retain(|(name, _)| !name.eq_ignore_ascii_case("host"));
    head.headers.push(("host".into(), host.as_bytes().to_vec()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_suffix_goes_before_the_port() {
        assert_eq!(shadow_host("a.example"), "a.example-shadow");
        assert_eq!(shadow_host("a.example:8080"), "a.example-shadow:8080");
        assert_eq!(shadow_host("127.0.0.1:80"), "127.0.0.1-shadow:80");
        assert_eq!(shadow_host("[::1]:80"), "[::1]-shadow:80");
        assert_eq!(shadow_host("[::1]"), "[::1]-shadow");
    }

    #[test]
    fn the_host_is_replaced_once() {
        let mut head = Head {
            method: "GET".into(),
            target: "/".into(),
            status: 0,
            reason: String::new(),
            minor: 1,
            headers: vec![
                ("Host".into(), b"a".to_vec()),
                ("x-a".into(), b"1".to_vec()),
            ],
            framing: Framing::None,
        };
        set_host(&mut head, "a-shadow");
        assert_eq!(
            head.headers,
            [
                ("x-a".to_string(), b"1".to_vec()),
                ("host".to_string(), b"a-shadow".to_vec()),
            ]
        );
    }
}
