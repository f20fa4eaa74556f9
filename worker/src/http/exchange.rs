//! One HTTP exchange — a request and its response — whatever the client
//! and the cluster speak: the same pipeline, generic over the two sides
//! ([`crate::http::sides`]), serves HTTP/1.1 and HTTP/2 clients
//! (`session_h1`, `session_h2`: they call it) in front of HTTP/1.1 and
//! HTTP/2 clusters ([`client_h1`], [`client_h2`]).
//!
//! ```text
//!  filters     request headers (before routing) ─▶ a filter's answer: answered here
//!  decide      route::decide ─▶ direct / redirect / 404: answered here
//!  transform   Outgoing: hop-by-hop dropped, Host/:authority, framing,
//!                │   X-Forwarded-For/-Proto (see `transform`)
//!  forward     per attempt: a connection (pool or new) or a stream ─▶ head
//!                │   ║ request body, piece by piece  (filters: request body, trailers)
//!                │   ║ response head                  (filters: response headers)
//!  respond       ▼   ║ response body, trailers        (filters: response body, trailers)
//! ```
//!
//! [`client_h1`]: crate::http::client_h1
//! [`client_h2`]: crate::http::client_h2
//!
//! # Filters
//!
//! The listener's L7 chain ([`crate::filter::http`]) runs on every
//! request when it is not empty (an empty one costs one branch: no
//! stream is made, nothing is called). Its request-headers callbacks run
//! **before routing**, as Envoy's decoder filters run before its router:
//! a header a filter sets can choose the route. Body pieces go through
//! the filters as they pass (request side in chain order, response side
//! in reverse); the end of a body without trailers is told by one more
//! call with an empty piece and `end_of_stream`; HTTP/1.1 trailers are
//! split into fields for them and joined again.
//!
//! A filter's delay ([`Action::Delay`], from the request headers) is
//! waited out here, before routing, and the chain goes on from the
//! filter that asked for it.
//!
//! A filter's answer ([`Action::Respond`]) goes to the client through the
//! response side of the filters before it. From the request headers, the
//! upstream is never contacted (the body is read and dropped as for a
//! direct response); from the request body or trailers, the upstream's
//! stream is reset (HTTP/2) or its connection dropped (HTTP/1.1), and the
//! client's connection closes after the answer; from the response head,
//! the upstream's response is dropped with its connection the same way.
//! Once the response head has gone to the client nothing can replace it:
//! an answer from the response body or trailers cuts the response
//! ([`ExchangeError::Filtered`]). The proxy's own answers (direct
//! responses, 404, 502, 504...) go through the response side of the
//! filters too. A filter that changes the length of a body piece where
//! the message's length went out in its head (`content-length`) breaks
//! the framing: the proxy answers 500 if it still can, else cuts. A
//! filter that re-encodes a response (`compression`) drops its length
//! from the head first (`ResponseHead::stream_body`): the length is read
//! from the head after the filters, so the body then goes out chunked
//! (HTTP/1.1) or in DATA frames to END_STREAM (HTTP/2).
//!
//! **Route filters** (a route's `filters`, issue 15) run after the
//! listener's, in the same stream, and a route can turn listener filters
//! off by name. Which route's filters run is decided by the route the
//! request matches *as it arrives*, before any filter changed it; the
//! route that forwards it is then chosen on what the filters made of it.
//! When a listener filter moves a request to another route, the first
//! route's filters have run, not the second's (Envoy, which also routes
//! after its decoder filters, would re-resolve on `clearRouteCache`).
//! When no route has filters of its own, no route is picked twice.
//!
//! **Shadow copies** (the `mirror` filter) are taken here, of a request
//! that every filter let through and that goes to a cluster: its head as
//! it goes upstream, its body pieces as they do; they are sent on their
//! own once the body has ended ([`crate::http::shadow`]), and nothing of
//! them comes back to the exchange.
//!
//! The stream is shared by the two directions of an attempt (the request
//! body going up, the response coming down, polled by one task) behind a
//! lock that is never contended nor held across an await.
//!
//! # Both ways at once
//!
//! The request body goes up while the response is awaited and comes down,
//! so a server that answers while it still reads (or answers early) never
//! deadlocks against the proxy. A response that is complete while the
//! request body is not ends the exchange: the rest of the body is not
//! forwarded, the upstream connection is not reused (an HTTP/2 upstream's
//! stream is reset), and the client's connection closes after the response
//! (HTTP/1.1; `Connection: close` is in its head when the body was not
//! complete by then) or its stream is reset with NO_ERROR (HTTP/2, RFC 9113
//! §8.1).
//!
//! # Retries
//!
//! Retrying is safe only when nothing can have been consumed: an
//! idempotent request without a body (GET, HEAD, OPTIONS, TRACE, DELETE,
//! PUT; not an upgrade). Such a request goes again, up to the route's
//! `retries`, when no connection to the cluster can be made, the upstream
//! fails before answering, or it answers 5xx (that answer is dropped). A
//! pooled HTTP/1.1 connection the server had closed, or a pooled HTTP/2
//! connection that died ([`UpstreamError::Stale`]), gets a fresh
//! connection once more beyond that, for any request without a body:
//! nothing of it was processed. A retry goes to another endpoint first
//! (the balancer's order with the last attempt's endpoint moved to the
//! end, as Envoy's `previous_hosts` predicate does), whatever the policy.
//!
//! # Outlier detection
//!
//! Each attempt's outcome is reported to the cluster's health
//! ([`crate::upstream::health`]): a response head's status (5xx a
//! failure, anything else a success), a failure before the head, a
//! timeout. A stale pooled connection is not the endpoint's fault and is
//! not reported.
//!
//! Each retry takes a unit of the cluster's `max_retries` (or of its
//! `retry_budget`) for as long as its attempt runs; when none is left the
//! request is not retried: the 5xx goes to the client, or the failure is
//! answered 502, as on the last attempt (Envoy returns the original
//! response likewise).
//!
//! # Circuit breakers
//!
//! The cluster's limits ([`crate::upstream::breaker`]) are taken here: the
//! exchange holds a unit of `max_requests` from routing to its end, each
//! attempt a unit of `max_pending_requests` while it gets its connection
//! (the connect takes one of `max_connections`, which the connection
//! keeps). A full limit is answered at once with 503 and the header
//! `x-baton-overloaded: <the limit's key>`, never retried.
//!
//! # Timeouts
//!
//! The route's `timeout` (else the listener's `request_timeout`) bounds
//! each attempt from the request head going up to the response head
//! coming back (then 504, counted in `baton_http_upstream_timeouts_total`),
//! and then each wait for the next piece of the response body (a stalled
//! body cuts the response, counted the same way): a long download that
//! keeps moving is never cut. The request body's stalls are the client's,
//! bounded by `body_timeout` (408 while no response has begun). An HTTP/2
//! stream's own upstream connection waits for its fd budget unit within
//! the timeout too.
//!
//! # Failures
//!
//! | what | before the response head | after it |
//! |---|---|---|
//! | no connection | 502 `no upstream reachable` (or retry) | — |
//! | the upstream fails, closes, or breaks the framing | 502 (or retry); a malformed answer is counted in `baton_http_bad_responses_total` and its connection dropped | cut |
//! | no answer within the timeout | 504 | cut |
//! | 101 to a request that did not ask | 502, counted as a bad response | — |
//! | request trailers over the head limits (HTTP/2) | 431, the upstream's stream reset | reset |
//! | the request body stalls | 408 | the body is abandoned |
//!
//! "Cut": an HTTP/1.1 client's connection closes (it cannot take a partial
//! response for a whole one), an HTTP/2 client's stream is reset.
//!
//! # Latency
//!
//! Every exchange, however it ends, is timed into the listener's histogram
//! under the route that matched (`telemetry::histogram`); a forwarded one
//! also into its cluster's, from routing to its end, and each attempt's
//! wait from the request going up to the final response head into the
//! cluster's time to first byte.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;
use std::time::Duration;

use baton_config::{ClusterId, UpstreamProtocol};
use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::codec::http1::{self, Framing, Head};
use crate::filter::ConnInfo;
use crate::filter::http::{Action, HeaderBlock, HttpStream, LocalResponse};
use crate::http::client_h1::H1Client;
use crate::http::client_h2::H2Client;
use crate::http::error::{ClientError, ExchangeError, UpstreamError};
use crate::http::message::{BodyLength, Done, Local, Piece, RequestInfo, ResponseHead, Trailers};
use crate::http::route::Decision;
use crate::http::shadow::{self, Shadow, ShadowSlot};
use crate::http::sides::{
    BodySink, Buffered, Client, Downstream, RequestBody, Respond, ResponseSource, Stalled,
};
use crate::http::transform::Outgoing;
use crate::http::{HttpContext, route};
use crate::telemetry::histogram::Histogram;
use crate::telemetry::meters::Overflow;
use crate::telemetry::trace;
use crate::upstream::breaker::{Breakers, Permit};
use crate::upstream::health::{ClusterHealth, Outcome};
use crate::upstream::lb::{EndpointIndex, Load, Pick};

/// The header of a 503 the proxy answers because a circuit breaker of the
/// cluster is full; its value is the limit (`max_requests`...).
const OVERLOADED_HEADER: &str = "x-baton-overloaded";

/// A routed request's forwarding plan.
#[derive(Debug, Clone, Copy)]
struct Plan {
    cluster: ClusterId,
    timeout: Duration,
    retries: u32,
}

/// One request's filters (see "Filters" in the module docs): `None` when
/// the listener has none.
type Filters<'a> = Option<&'a Mutex<HttpStream>>;

/// Serves one request: routes it, then answers it or forwards it; its
/// duration is counted in the listener's histogram, however it ends.
pub(crate) async fn exchange<D: Downstream>(
    down: &mut D,
    ctx: &HttpContext,
) -> Result<Done, ExchangeError> {
    let started = Instant::now();
    let mut matched = None;
    let origin = trace::Origin {
        listener: &ctx.listener.name,
        scheme: ctx.listener.proto,
        protocol: down.protocol(),
        client: down.client_addr(),
    };
    let span = trace::begin(down.head_mut(), origin);
    let done = match &span {
        None => serve(down, ctx, &mut matched).await,
        Some(span) => span.scope(serve(down, ctx, &mut matched)).await,
    };
    ctx.meters.duration.observe(matched, started.elapsed());
    if let Some(span) = span {
        span.end(done.is_err());
    }
    done
}

/// [`exchange`], untimed; `matched` is set to the position of the route
/// that matched, if one did.
async fn serve<D: Downstream>(
    down: &mut D,
    ctx: &HttpContext,
    matched: &mut Option<usize>,
) -> Result<Done, ExchangeError> {
    // The route as the request arrives decides which route filters run
    // (and which listener filters it turns off); routing proper comes
    // after the filters, on what they changed (see "Filters").
    // With filters, the route is also what they are told it is called
    // (proxy-wasm's `route_name`).
    let picked = (ctx.listener.route_filters || !ctx.filters.is_empty())
        .then(|| route::pick_compiled(&ctx.listener.routes, down.head()))
        .flatten();
    let route = picked.filter(|r| r.has_filters());
    // No filters anywhere, the common case, costs these branches.
    let filters = (!ctx.filters.is_empty() || route.is_some()).then(|| {
        let conn = ConnInfo {
            listener: Arc::clone(&ctx.listener.name),
            source: down.client_addr(),
            local: None,
        };
        let mut stream = match route {
            Some(r) => ctx
                .filters
                .stream_with(&conn, &r.route.disabled_filters, &r.filters),
            None => ctx.filters.stream(&conn),
        };
        stream.set_protocol(down.protocol());
        if let Some(name) = picked.and_then(|r| r.name.clone()) {
            stream.set_route_name(name);
        }
        Mutex::new(stream)
    });
    let filters = filters.as_ref();
    if let Some(stream) = filters {
        // Before routing: the route sees what the filters changed.
        let end = down.head().framing == Framing::None;
        loop {
            let action = stream.lock().request_headers(down.head_mut(), end);
            match action {
                Action::Continue => break,
                Action::Respond(local) => {
                    if let Some(name) = stream.lock().answered_by() {
                        ctx.meters.filter_answered(name);
                    }
                    return answer_local(down, filters, *local, false).await;
                }
                // A filter's delay (fault injection): wait, then ask it
                // again.
                Action::Delay(wait) => tokio::time::sleep(wait).await,
            }
        }
    }
    let listener = Arc::clone(&ctx.listener);
    let (at, decision) = route::decide(&listener, down.head(), ctx.generation);
    *matched = at;
    trace::note_route(at.and_then(|i| listener.routes[i].name.as_ref()));
    let plan = match decision {
        Decision::Forward {
            cluster,
            timeout,
            retries,
        } => Plan {
            cluster,
            timeout,
            retries,
        },
        Decision::Answer {
            status,
            content_type,
            location,
            body,
        } => {
            let local = Local {
                status,
                content_type,
                location,
                body: body.as_bytes(),
                close: false,
                extra: &[],
            };
            return respond_local(down, filters, local).await;
        }
    };
    down.check_body().await?;
    trace::note_cluster(&ctx.upstream(plan.cluster).base.cluster.name);
    let started = Instant::now();
    let done = match ctx.upstream(plan.cluster).protocol() {
        UpstreamProtocol::Http1 => forward::<D, H1Client>(down, ctx, plan, filters).await,
        UpstreamProtocol::Http2 => forward::<D, H2Client>(down, ctx, plan, filters).await,
    };
    let times = &ctx.upstream(plan.cluster).base.times;
    times.request.observe(started.elapsed());
    done
}

/// Forwards the request to the plan's cluster, with its retries.
async fn forward<D: Downstream, C: Client>(
    down: &mut D,
    ctx: &HttpContext,
    plan: Plan,
    filters: Filters<'_>,
) -> Result<Done, ExchangeError> {
    let info = RequestInfo::of(down.head());
    // The request transforms, once for every attempt.
    let prepared = {
        let outgoing = Outgoing::new(down.head(), down.client_ip(), ctx.listener.proto);
        C::prepare(&outgoing)
    };
    let prepared = match prepared {
        Ok(prepared) => prepared,
        Err(e) => {
            debug!(error = %e, "cannot forward the request");
            let local = Local::error(400, b"bad request target\n");
            return respond_local(down, filters, local).await;
        }
    };
    // The shadow copies the filters ask for (sent at once when there is
    // no body, else when it has passed).
    let shadow: ShadowSlot = Mutex::new(
        filters.and_then(|f| Shadow::begin(ctx, f, down.head(), down.client_ip(), plan.timeout)),
    );
    // The cluster's circuit breakers (see "Circuit breakers" above).
    let breakers = ctx.upstream(plan.cluster).base.breakers();
    let _request = match breakers.request() {
        Ok(permit) => permit,
        Err(overflow) => return overloaded(down, filters, overflow).await,
    };
    // The running retry's unit of max_retries (or of the retry budget):
    // taken when an attempt decides to retry, given back when the retry
    // ends (the next one replaces it).
    let retry: Mutex<Option<Permit>> = Mutex::new(None);
    let mut attempts_left = if info.retryable { plan.retries + 1 } else { 1 };
    // The endpoint the last attempt went to: a retry goes elsewhere first.
    let mut previous: Option<EndpointIndex> = None;
    loop {
        attempts_left -= 1;
        let last = attempts_left == 0;
        // An HTTP/2 stream's own upstream connection takes a unit of the
        // fd budget while it lives, waiting for one rather than meeting
        // EMFILE (crate::fds).
        let _units = if C::OWN_CONNECTION {
            let units = down.upstream_units();
            match tokio::time::timeout(plan.timeout, units).await {
                Ok(units) => units,
                Err(_) => return upstream_timeout(down, ctx, filters).await,
            }
        } else {
            None
        };
        // The balancer chooses per attempt, so a retry may go elsewhere.
        // The pick borrows what the request already has; only a hashing
        // policy reads it.
        let upstream = &ctx.upstream(plan.cluster).base;
        let balancer = upstream.balancer();
        let health = upstream.health();
        let order = balancer.order(&Pick {
            source: down.client_ip(),
            request: Some(down.head()),
        });
        let order = match previous {
            Some(endpoint) => order.after(endpoint),
            None => order,
        };
        // Waiting for a connection (pooled, new, or an HTTP/2 stream's):
        // a pending request.
        let opened = match breakers.pending() {
            Ok(_pending) => C::open(ctx, plan.cluster, order).await,
            Err(overflow) => return overloaded(down, filters, overflow).await,
        };
        let mut up = match opened {
            Ok(up) => up,
            Err(e) => {
                if let Some(overflow) = e.overflow() {
                    debug!(error = %e, "cluster overloaded");
                    return overloaded(down, filters, overflow).await;
                }
                warn!(error = %e, "no upstream reachable");
                if !last && retry_allowed(breakers, &retry) {
                    continue;
                }
                let local = Local {
                    close: false,
                    ..Local::error(502, b"no upstream reachable\n")
                };
                return respond_local(down, filters, local).await;
            }
        };
        let endpoint = up.endpoint();
        trace::note_attempt(health.address(endpoint));
        previous = Some(endpoint);
        let _load = Load::counted(balancer, endpoint);
        let sent = Instant::now();
        let deadline = sent + plan.timeout;
        let attempt = Attempt {
            info: &info,
            sent,
            ttfb: &ctx.upstream(plan.cluster).base.times.ttfb,
            deadline,
            stall: plan.timeout,
            may_retry: !last,
            retry: (breakers, &retry),
            ctx,
            filters,
            shadow: &shadow,
            outlier: (&**health, endpoint),
        };
        match attempt.run(down, &mut up, &prepared).await {
            Ended::Complete {
                keep_alive,
                body_complete,
            } => {
                up.finish(ctx, plan.cluster, body_complete);
                return Ok(if keep_alive && body_complete {
                    Done::KeepAlive
                } else {
                    Done::Close
                });
            }
            Ended::Retry => debug!("retrying after a 5xx"),
            Ended::Switched => {
                return Ok(match up.into_tunnel() {
                    Some((io, rest)) => Done::Switched(io, rest),
                    None => Done::Close,
                });
            }
            Ended::Timeout => {
                health.report(endpoint, Outcome::GatewayFailure);
                return upstream_timeout(down, ctx, filters).await;
            }
            // A filter answered in place of the upstream: what the
            // upstream sent is dropped with its connection (or stream).
            Ended::Answer(local) => {
                up.finish(ctx, plan.cluster, false);
                if down.responded() {
                    down.abort(false);
                    return Err(ExchangeError::Filtered);
                }
                return answer_local(down, filters, *local, true).await;
            }
            // A pooled connection the server had closed: nothing was
            // answered, a fresh connection gets a fair try (once more
            // than the budget allows, since nothing was consumed).
            Ended::Failed(UpstreamError::Stale) if up.reused() && !info.has_body => {
                attempts_left += 1;
            }
            Ended::Failed(e) => {
                refused(ctx, &e);
                health.report(endpoint, Outcome::GatewayFailure);
                if last || !retry_allowed(breakers, &retry) {
                    debug!(error = %e, "upstream failed before answering");
                    let body: &[u8] = match e {
                        UpstreamError::Stale => b"upstream closed the connection\n",
                        _ => b"upstream failed\n",
                    };
                    return respond_local(down, filters, Local::error(502, body)).await;
                }
            }
            Ended::Error(ExchangeError::Client(ClientError::Trailers(why))) => {
                // Not forwarded whole: the upstream's stream was reset.
                warn!(error = %why, "refused a request's trailers");
                ctx.meters.reject(&why);
                if down.responded() {
                    down.abort(true);
                    return Err(ClientError::Trailers(why).into());
                }
                let body = format!("trailers: {why}\n");
                return respond_local(down, filters, Local::error(431, body.as_bytes())).await;
            }
            Ended::Error(e) => {
                if let ExchangeError::Cut(e) = &e {
                    refused(ctx, e);
                }
                if down.responded() {
                    down.abort(false);
                }
                return Err(e);
            }
        }
    }
}

/// Takes a unit of the cluster's retry limit for the next attempt into
/// `slot` (giving back the last retry's): false when the limit is full
/// (the overflow is counted), and the request is then not retried.
fn retry_allowed(breakers: &Breakers, slot: &Mutex<Option<Permit>>) -> bool {
    match breakers.retry() {
        Ok(permit) => {
            *slot.lock() = Some(permit);
            true
        }
        Err(overflow) => {
            debug!(
                reason = overflow.label(),
                "retry refused by the circuit breaker"
            );
            false
        }
    }
}

/// A circuit breaker of the cluster is full: 503 at once, the limit
/// named in `x-baton-overloaded` (it was counted by the breaker).
async fn overloaded<D: Downstream>(
    down: &mut D,
    filters: Filters<'_>,
    overflow: Overflow,
) -> Result<Done, ExchangeError> {
    let extra = [(
        OVERLOADED_HEADER.to_owned(),
        overflow.label().as_bytes().to_vec(),
    )];
    let local = Local {
        close: false,
        extra: &extra,
        ..Local::error(503, b"upstream overloaded\n")
    };
    respond_local(down, filters, local).await
}

/// No answer within the timeout: 504.
async fn upstream_timeout<D: Downstream>(
    down: &mut D,
    ctx: &HttpContext,
    filters: Filters<'_>,
) -> Result<Done, ExchangeError> {
    ctx.meters.timeouts.fetch_add(1, Ordering::Relaxed);
    respond_local(down, filters, Local::error(504, b"upstream timeout\n")).await
}

// === local answers and the filters ===

/// Answers with the proxy's own response: straight to the client without
/// filters, else through their response side like a filter's answer.
async fn respond_local<D: Downstream>(
    down: &mut D,
    filters: Filters<'_>,
    local: Local<'_>,
) -> Result<Done, ExchangeError> {
    if filters.is_none() {
        trace::note_status(local.status);
        return Ok(down.answer(local).await?);
    }
    let mut headers = vec![(
        "content-type".to_owned(),
        local.content_type.as_bytes().to_vec(),
    )];
    if let Some(location) = local.location {
        headers.push(("location".to_owned(), location.as_bytes().to_vec()));
    }
    headers.extend(local.extra.iter().cloned());
    let response = LocalResponse {
        status: local.status,
        headers,
        body: Bytes::copy_from_slice(local.body),
    };
    answer_local(down, filters, response, local.close).await
}

/// Answers with `response` (a filter's, or the proxy's own), through the
/// response side of the filters that take part (those before the one
/// that answered, in reverse); one of them answering in turn replaces it
/// — each answer shortens the chain, so this ends. `close`: the request
/// went (part way) upstream (see [`Local::close`]).
async fn answer_local<D: Downstream>(
    down: &mut D,
    filters: Filters<'_>,
    mut response: LocalResponse,
    close: bool,
) -> Result<Done, ExchangeError> {
    let (head, body) = loop {
        let mut head = Head {
            method: String::new(),
            target: String::new(),
            status: response.status,
            reason: http1::reason(response.status).to_owned(),
            minor: 1,
            headers: std::mem::take(&mut response.headers),
            framing: Framing::Length(response.body.len() as u64),
        };
        let mut body = BytesMut::from(&response.body[..]);
        let Some(stream) = filters else {
            break (head, body);
        };
        let mut stream = stream.lock();
        if let Action::Respond(next) = stream.response_headers(&mut head, body.is_empty()) {
            response = *next;
            continue;
        }
        if !body.is_empty()
            && let Action::Respond(next) = stream.response_body(&mut body, true)
        {
            response = *next;
            continue;
        }
        break (head, body);
    };
    let content_type = head.header_str("content-type").unwrap_or("text/plain");
    let extra: Vec<(String, Vec<u8>)> = head
        .headers
        .iter()
        .filter(|(name, _)| !name.eq_ignore_ascii_case("content-type"))
        .cloned()
        .collect();
    let local = Local {
        status: head.status,
        content_type,
        location: None,
        body: &body,
        close,
        extra: &extra,
    };
    trace::note_status(local.status);
    Ok(down.answer(local).await?)
}

/// Where the message's length went out in its head: its body's bytes so
/// far, as received and as passed on by the filters.
#[derive(Debug, Default)]
struct Fixed {
    seen: usize,
    passed: usize,
}

/// A body piece through the filters (request side in chain order,
/// response side in reverse): the piece as it goes on, or the answer that
/// replaces the message. `fixed`: the message's length went out in its
/// head, so a filter may hold bytes back (a plugin buffering the body
/// until its end) but not pass on more than it was given, nor end with
/// another total — that is answered with a 500 while that can still be
/// done.
fn filter_data(
    stream: &Mutex<HttpStream>,
    data: Bytes,
    end: bool,
    fixed: Option<&mut Fixed>,
    request: bool,
) -> Result<Bytes, Box<LocalResponse>> {
    let mut chunk = BytesMut::from(data);
    let before = chunk.len();
    let action = {
        let mut stream = stream.lock();
        if request {
            stream.request_body(&mut chunk, end)
        } else {
            stream.response_body(&mut chunk, end)
        }
    };
    if let Action::Respond(local) = action {
        return Err(local);
    }
    let broken = fixed.is_some_and(|f| {
        f.seen += before;
        f.passed += chunk.len();
        f.passed > f.seen || (end && f.passed != f.seen)
    });
    if broken {
        warn!("a filter changed the length of a body whose length was sent");
        return Err(Box::new(LocalResponse {
            status: 500,
            headers: vec![("content-type".into(), b"text/plain".to_vec())],
            body: Bytes::from_static(b"a filter changed the length of a body\n"),
        }));
    }
    Ok(chunk.freeze())
}

/// Trailers through the filters. HTTP/1.1 trailers (field lines, as the
/// chunked parser checked them) are split into fields for the filters
/// and joined again.
fn filter_trailers(stream: &Mutex<HttpStream>, trailers: &mut Trailers, request: bool) -> Action {
    let run = |block: &mut dyn HeaderBlock| {
        let mut stream = stream.lock();
        if request {
            stream.request_trailers(block)
        } else {
            stream.response_trailers(block)
        }
    };
    match trailers {
        Trailers::H2(map) => run(map),
        Trailers::H1(lines) => {
            let mut fields: Vec<(String, Vec<u8>)> = lines
                .split(|b| *b == b'\n')
                .filter_map(|line| {
                    let line = line.strip_suffix(b"\r").unwrap_or(line);
                    let colon = line.iter().position(|b| *b == b':')?;
                    let name = std::str::from_utf8(&line[..colon]).ok()?;
                    Some((name.to_owned(), line[colon + 1..].trim_ascii().to_vec()))
                })
                .collect();
            let action = run(&mut fields);
            let mut joined = BytesMut::new();
            for (name, value) in &fields {
                joined.extend_from_slice(name.as_bytes());
                joined.extend_from_slice(b": ");
                joined.extend_from_slice(value);
                joined.extend_from_slice(b"\r\n");
            }
            *lines = joined.freeze();
            action
        }
    }
}

/// Counts an upstream's answer that breaks the rules.
fn refused(ctx: &HttpContext, e: &UpstreamError) {
    if matches!(
        e,
        UpstreamError::Malformed(_)
            | UpstreamError::UnaskedSwitch
            | UpstreamError::HeadTooLarge { .. }
            | UpstreamError::Trailers(_)
    ) {
        warn!(error = %e, "refused an upstream response");
        ctx.meters.bad_responses.fetch_add(1, Ordering::Relaxed);
    }
}

/// One attempt's settings.
struct Attempt<'a> {
    info: &'a RequestInfo,
    /// When the request went up, and where the wait for the response head
    /// is counted.
    sent: Instant,
    ttfb: &'a Histogram,
    /// For the response head.
    deadline: Instant,
    /// The longest wait for a piece of the response body.
    stall: Duration,
    /// A 5xx is dropped and the request tried again (when the cluster's
    /// retry limit has room: `retry`).
    may_retry: bool,
    /// The cluster's breakers, and where a retry's unit goes.
    retry: (&'a Breakers, &'a Mutex<Option<Permit>>),
    ctx: &'a HttpContext,
    filters: Filters<'a>,
    /// The request's shadow copies, while its body passes.
    shadow: &'a ShadowSlot,
    /// Where the response's status is reported for outlier detection.
    outlier: (&'a ClusterHealth, EndpointIndex),
}

/// How an attempt ended.
#[derive(Debug)]
enum Ended {
    /// The response went whole to the client; `body_complete`: the
    /// request's went whole to the upstream.
    Complete {
        keep_alive: bool,
        body_complete: bool,
    },
    /// A 5xx, dropped: try again.
    Retry,
    /// 101, passed on: the connection becomes a tunnel.
    Switched,
    /// No response head within the timeout.
    Timeout,
    /// The upstream failed before a response head.
    Failed(UpstreamError),
    /// A filter answered, on the request body's side or the response's.
    Answer(Box<LocalResponse>),
    Error(ExchangeError),
}

/// Why the request body stopped going up early.
enum PumpStop {
    Client(ClientError),
    Upstream(UpstreamError),
    /// A filter answered.
    Answered(Box<LocalResponse>),
}

impl Attempt<'_> {
    /// Sends the request, then moves its body up and the response down at
    /// once (see the module docs).
    async fn run<D: Downstream, C: Client>(
        &self,
        down: &mut D,
        up: &mut C,
        request: &C::Prepared,
    ) -> Ended {
        let info = self.info;
        if let Err(e) = up.send(request, info).await {
            return Ended::Failed(e);
        }
        // Set once the response head goes to the client: from then on, a
        // stalled request body is abandoned rather than answered 408.
        let responded = AtomicBool::new(false);
        let body_done = AtomicBool::new(!info.has_body);
        let (body, respond) = down.split();
        let (mut body_out, mut response) = up.split();
        if info.has_body
            && info.expects_continue
            && !C::RELAYS_INTERIM
            && let Err(e) = respond.send_continue().await
        {
            return Ended::Error(e.into());
        }
        let filters = self.filters;
        let copies = self.shadow;
        let mut fixed = matches!(info.framing, Framing::Length(_)).then(Fixed::default);
        let pump = async {
            let mut trailers_seen = false;
            loop {
                let sent = match body.next().await {
                    Ok(Some(Piece::Data(data))) if data.is_empty() => continue,
                    Ok(Some(Piece::Data(data))) => {
                        let data = match filters {
                            None => data,
                            Some(f) => match filter_data(f, data, false, fixed.as_mut(), true) {
                                Ok(data) if data.is_empty() => continue,
                                Ok(data) => {
                                    shadow::copy_data(copies, &data);
                                    data
                                }
                                Err(local) => {
                                    body_out.cancel();
                                    return Err(PumpStop::Answered(local));
                                }
                            },
                        };
                        body_out.data(data).await
                    }
                    Ok(Some(Piece::Trailers(mut trailers))) => {
                        trailers_seen = true;
                        if let Some(f) = filters
                            && let Action::Respond(local) = filter_trailers(f, &mut trailers, true)
                        {
                            body_out.cancel();
                            return Err(PumpStop::Answered(local));
                        }
                        if filters.is_some() {
                            shadow::copy_trailers(copies, &trailers);
                        }
                        body_out.trailers(trailers).await
                    }
                    Ok(None) => {
                        // The filters hear of the end: an empty last
                        // piece, unless trailers ended the body.
                        if let Some(f) = filters
                            && !trailers_seen
                        {
                            match filter_data(f, Bytes::new(), true, fixed.as_mut(), true) {
                                Ok(last) if last.is_empty() => {}
                                Ok(last) => {
                                    shadow::copy_data(copies, &last);
                                    if let Err(e) = body_out.data(last).await {
                                        return Err(PumpStop::Upstream(e));
                                    }
                                }
                                Err(local) => {
                                    body_out.cancel();
                                    return Err(PumpStop::Answered(local));
                                }
                            }
                        }
                        if filters.is_some() {
                            shadow::body_ended(copies);
                        }
                        let ended = body_out.end().await;
                        if ended.is_ok() {
                            body_done.store(true, Ordering::Relaxed);
                        }
                        ended
                    }
                    Err(e) => {
                        body_out.cancel();
                        return Err(PumpStop::Client(e));
                    }
                };
                match sent {
                    Ok(()) if body_done.load(Ordering::Relaxed) => return Ok(()),
                    Ok(()) => {}
                    Err(e) => return Err(PumpStop::Upstream(e)),
                }
            }
        };
        let relay = self.relay(&mut response, respond, &responded, &body_done);
        tokio::pin!(pump, relay);
        // Some(whole): how the request body went.
        let mut pumped = if info.has_body { None } else { Some(true) };
        loop {
            tokio::select! {
                biased;
                end = &mut relay => {
                    let body_complete = match pumped {
                        Some(whole) => whole,
                        // Its end may be there already (END_STREAM after
                        // the DATA the upstream answered on).
                        None => matches!(poll_now(&mut pump), Poll::Ready(Ok(()))),
                    };
                    return match end {
                        Relayed::Complete { keep_alive } => Ended::Complete {
                            keep_alive,
                            body_complete,
                        },
                        Relayed::Ended(ended) => ended,
                    };
                }
                end = &mut pump, if pumped.is_none() => match end {
                    Ok(()) => pumped = Some(true),
                    // The upstream stopped taking the body: its answer,
                    // if one comes, still counts.
                    Err(PumpStop::Upstream(e)) => {
                        debug!(error = %e, "the upstream stopped taking the request body");
                        pumped = Some(false);
                    }
                    Err(PumpStop::Client(ClientError::Stalled))
                        if responded.load(Ordering::Relaxed) =>
                    {
                        self.ctx.meters.timed_out(crate::telemetry::meters::TimeoutKind::Body);
                        pumped = Some(false);
                    }
                    Err(PumpStop::Client(e)) => return Ended::Error(e.into()),
                    Err(PumpStop::Answered(local)) => return Ended::Answer(local),
                },
            }
        }
    }

    /// The response: interim heads, the final head, the body.
    async fn relay<S: ResponseSource, R: Respond>(
        &self,
        response: &mut S,
        respond: &mut R,
        responded: &AtomicBool,
        body_done: &AtomicBool,
    ) -> Relayed {
        let info = self.info;
        let meters = &self.ctx.meters;
        let head = loop {
            let head = match tokio::time::timeout_at(self.deadline, response.head()).await {
                Err(_) => return Ended::Timeout.into(),
                Ok(Err(e)) => return Ended::Failed(e).into(),
                Ok(Ok(head)) => head,
            };
            if !head.is_interim() {
                self.ttfb.observe(self.sent.elapsed());
                break head;
            }
            // 100 Continue lets the client send its body.
            if let Err(e) = respond.interim(&head).await {
                return Ended::Error(e.into()).into();
            }
        };
        let status = head.status();
        let (health, endpoint) = self.outlier;
        health.report(endpoint, Outcome::of_status(status));
        if status == 101 {
            if info.upgrade {
                match respond.switch(&head).await {
                    Ok(true) => {
                        meters.status(101);
                        trace::note_status(101);
                        return Ended::Switched.into();
                    }
                    Ok(false) => {}
                    Err(e) => return Ended::Error(e.into()).into(),
                }
            }
            // Switching protocols unasked: nothing after it can be framed.
            return Ended::Failed(UpstreamError::UnaskedSwitch).into();
        }
        // Past the retry limit, the 5xx goes to the client, as Envoy
        // returns the original response.
        if self.may_retry && status >= 500 && retry_allowed(self.retry.0, self.retry.1) {
            return Ended::Retry.into();
        }
        let mut head = head;
        if let Some(filters) = self.filters {
            let end = head.length(info.head_request) == BodyLength::None;
            let action = {
                let mut stream = filters.lock();
                match &mut head {
                    ResponseHead::H1(head) => stream.response_headers(head, end),
                    ResponseHead::H2 { parts, .. } => stream.response_headers(parts, end),
                }
            };
            if let Action::Respond(local) = action {
                return Ended::Answer(local).into();
            }
        }
        let status = head.status();
        meters.status(status);
        trace::note_status(status);
        let length = head.length(info.head_request);
        let mut fixed = matches!(length, BodyLength::Known(_)).then(Fixed::default);
        let mut trailers_seen = false;
        responded.store(true, Ordering::Relaxed);
        let cut = |e: ExchangeError| Relayed::Ended(Ended::Error(e));
        if let Err(e) = respond
            .head(&head, length, body_done.load(Ordering::Relaxed))
            .await
        {
            return cut(e.into());
        }
        loop {
            let piece = match response.buffered() {
                Ok(Buffered::Piece(piece)) => Some(piece),
                Ok(Buffered::End) => None,
                Ok(Buffered::Empty) => {
                    // What is held goes out before the wait.
                    if let Err(e) = respond.flush().await {
                        return cut(e.into());
                    }
                    match response.next(self.stall).await {
                        Ok(piece) => piece,
                        Err(Stalled::Timeout) => {
                            meters.timeouts.fetch_add(1, Ordering::Relaxed);
                            return cut(ExchangeError::Stalled);
                        }
                        Err(Stalled::Failed(e)) => return cut(ExchangeError::Cut(e)),
                    }
                }
                Err(e) => return cut(ExchangeError::Cut(e)),
            };
            // A filter's answer, once the head has gone, cannot be sent.
            let sent = match piece {
                Some(Piece::Data(data)) => {
                    trace::note_response_bytes(data.len());
                    match self.filters {
                        None => respond.data(data).await,
                        Some(f) => match filter_data(f, data, false, fixed.as_mut(), false) {
                            // An empty piece would end a chunked body.
                            Ok(data) if data.is_empty() => Ok(()),
                            Ok(data) => respond.data(data).await,
                            Err(_) => return cut(ExchangeError::Filtered),
                        },
                    }
                }
                Some(Piece::Trailers(mut trailers)) => {
                    trailers_seen = true;
                    if let Some(f) = self.filters
                        && let Action::Respond(_) = filter_trailers(f, &mut trailers, false)
                    {
                        return cut(ExchangeError::Filtered);
                    }
                    respond.trailers(trailers).await
                }
                None => {
                    // The filters hear of the end as the request's do.
                    if let Some(f) = self.filters
                        && !trailers_seen
                        && length != BodyLength::None
                    {
                        match filter_data(f, Bytes::new(), true, fixed.as_mut(), false) {
                            Ok(last) if last.is_empty() => {}
                            Ok(last) => {
                                if let Err(e) = respond.data(last).await {
                                    return cut(e.into());
                                }
                            }
                            Err(_) => return cut(ExchangeError::Filtered),
                        }
                    }
                    return match respond.end().await {
                        Ok(()) => Relayed::Complete {
                            keep_alive: respond.keeps_alive(),
                        },
                        Err(e) => cut(e.into()),
                    };
                }
            };
            if let Err(e) = sent {
                return cut(e.into());
            }
        }
    }
}

/// How the response went.
enum Relayed {
    Complete { keep_alive: bool },
    Ended(Ended),
}

impl From<Ended> for Relayed {
    fn from(ended: Ended) -> Relayed {
        Relayed::Ended(ended)
    }
}

/// Polls a future once, without waiting.
fn poll_now<F: Future + Unpin>(future: &mut F) -> Poll<F::Output> {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    std::pin::Pin::new(future).poll(&mut cx)
}
