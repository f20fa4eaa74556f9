//! The L7 stream-filter chain for HTTP: what runs on each request and its
//! response, whatever the versions on either side.
//!
//! # Callbacks
//!
//! A configured filter ([`HttpFilter`]) makes one [`HttpStreamFilter`] per
//! request; the exchange drives the request's [`HttpStream`] through six
//! callbacks, in this order, each at most once per request except bodies
//! (once per chunk):
//!
//! ```text
//!  request:  on_request_headers → on_request_body* → on_request_trailers?    (chain order)
//!  response: on_response_headers → on_response_body* → on_response_trailers? (reverse order)
//! ```
//!
//! `end_of_stream` says the message ends with this callback (no body, or
//! the last chunk with no trailers after it; the exchange learns that a
//! body has ended only when it has, so its last piece is an empty one
//! with `end_of_stream`). Each callback returns an
//! [`Action`]:
//!
//! * [`Action::Continue`] — on to the next filter, with whatever the
//!   filter changed in what it was handed (a header set or removed, a body
//!   chunk rewritten) — modifying is done in place;
//! * [`Action::Respond`] — answer locally with a [`LocalResponse`]: the
//!   filters after this one never see the request, the upstream (if not
//!   yet asked) is not asked, and the local response goes back through the
//!   response side of the filters *before* this one (reverse order), as a
//!   response from upstream would. A filter answering from the response
//!   side replaces the upstream's response the same way. Once the response
//!   head has left for the client, an answer can no longer be sent: the
//!   exchange resets the stream (HTTP/2 `RST_STREAM`, HTTP/1.1 close)
//!   instead;
//! * [`Action::Delay`] — from `on_request_headers` only: the exchange
//!   waits that long (the request goes nowhere meanwhile), then calls the
//!   same filter's `on_request_headers` again, which continues or answers
//!   by what it decided the first time (a fault filter's delay, then its
//!   abort). A filter keeps that in its per-request state. The callbacks
//!   stay synchronous: the wait is the exchange's, and a chain whose
//!   filters never delay pays nothing for it. Elsewhere a `Delay` counts
//!   as `Continue`.
//!
//! # Headers
//!
//! Filters see heads through [`HeaderBlock`], [`RequestHead`] and
//! [`ResponseHead`], implemented for the `http` crate's types (what HTTP/2
//! decodes into) and for [`Head`] (HTTP/1.1's parsed head), so a filter
//! works on every path unchanged. Names and values are checked as the `http`
//! crate checks them (no CR, LF or NUL in a value: no header injection).
//! Framing and connection-management headers (`content-length`,
//! `transfer-encoding`, `connection`, `keep-alive`, `proxy-connection`,
//! `upgrade`, `te`) belong to the exchange, which frames each hop itself:
//! a filter that tries to change one gets [`HeaderError::Reserved`]. A
//! filter may change a body piece's length where the message is streamed
//! (chunked on HTTP/1.1, no `content-length` on HTTP/2): the exchange
//! frames what it is given. A filter that will change a response body's
//! length says so from its response-headers callback
//! ([`ResponseHead::stream_body`]): the head then goes out without a
//! length and the body is streamed. Where the head carried the length, it went
//! out before the body: a changed length is refused (a 500 in place of
//! the message while nothing of it has reached the client, else the
//! message is cut).
//!
//! # Shadow copies
//!
//! A filter cannot send anything itself (the chain sits below the HTTP
//! proxy and its upstream connections). The `mirror` filter instead asks
//! for a shadow copy of its request ([`HttpStreamFilter::mirror`], a
//! [`MirrorTo`]); the exchange collects those of the filters the request
//! passed ([`HttpStream::mirrors`]) once it is routed to a cluster, copies
//! the request as it goes upstream and sends the copies on their own
//! (`http::shadow`).
//!
//! # Cost
//!
//! An empty chain makes no stream ([`HttpChain::is_empty`] is the
//! exchange's check); a non-empty one makes one box per filter per
//! request.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use ::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use bytes::{Bytes, BytesMut};

use crate::codec::http1::{self, Head};
use crate::filter::{ConnInfo, Mobility};

/// Headers the exchange owns (see the module docs).
const RESERVED: &[&str] = baton_config::filter::RESERVED_HEADERS;

/// A header change a filter asked for that cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderError {
    #[error("invalid header name {0:?}")]
    Name(String),
    #[error("invalid value for header {0:?}")]
    Value(String),
    #[error("header {0:?} is framing or connection management, which the proxy does per hop")]
    Reserved(String),
    #[error("invalid status {0}")]
    Status(u16),
}

fn checked_name(name: &str) -> Result<HeaderName, HeaderError> {
    let parsed =
        HeaderName::from_bytes(name.as_bytes()).map_err(|_| HeaderError::Name(name.into()))?;
    if RESERVED.contains(&parsed.as_str()) {
        return Err(HeaderError::Reserved(parsed.as_str().into()));
    }
    Ok(parsed)
}

fn checked_value(name: &HeaderName, value: &[u8]) -> Result<HeaderValue, HeaderError> {
    HeaderValue::from_bytes(value).map_err(|_| HeaderError::Value(name.as_str().into()))
}

/// A block of header fields: a head's headers, or trailers.
pub trait HeaderBlock {
    /// The first value of `name` (case-insensitive).
    fn get(&self, name: &str) -> Option<&[u8]>;

    /// Replaces every value of `name` with `value`.
    fn set(&mut self, name: &str, value: &[u8]) -> Result<(), HeaderError>;

    /// Adds a value of `name` after the others.
    fn append(&mut self, name: &str, value: &[u8]) -> Result<(), HeaderError>;

    /// Removes every value of `name`; how many there were.
    fn remove(&mut self, name: &str) -> Result<usize, HeaderError>;

    /// Every field, in order, names lower-cased (what a proxy-wasm
    /// plugin is shown).
    fn pairs(&self) -> Vec<(String, Vec<u8>)>;
}

/// A request head.
pub trait RequestHead: HeaderBlock {
    fn method(&self) -> &str;
    /// The path, without the query.
    fn path(&self) -> &str;

    /// The protocol the client speaks (`HTTP/1.1`, `HTTP/2`): what
    /// `%PROTOCOL%` expands to. The exchange tells the stream
    /// ([`HttpStream::set_protocol`]); a head alone knows its own version.
    fn protocol(&self) -> &'static str {
        "HTTP/1.1"
    }

    /// The name of the route the request matched as it arrived (the
    /// config's `name`), empty when it has none: what Envoy answers for
    /// proxy-wasm's `route_name`. The exchange tells the stream
    /// ([`HttpStream::set_route_name`]).
    fn route_name(&self) -> &str {
        ""
    }

    /// An HTTP/1.0 request: its response cannot be chunked.
    fn is_http10(&self) -> bool {
        false
    }
}

/// A response head.
pub trait ResponseHead: HeaderBlock {
    fn status(&self) -> u16;
    fn set_status(&mut self, status: u16) -> Result<(), HeaderError>;

    /// Says that the body's length will change (a filter re-encodes it):
    /// its `content-length` goes, and the exchange streams it — chunked
    /// to an HTTP/1.1 client, DATA frames to END_STREAM to an HTTP/2 one.
    /// Called from `on_response_headers`; a body that ends with the
    /// connection, or that there is none of, stays as it is.
    fn stream_body(&mut self);
}

// === impl HeaderBlock for the http crate's types ===

impl HeaderBlock for HeaderMap {
    fn get(&self, name: &str) -> Option<&[u8]> {
        HeaderMap::get(self, name).map(HeaderValue::as_bytes)
    }

    fn set(&mut self, name: &str, value: &[u8]) -> Result<(), HeaderError> {
        let name = checked_name(name)?;
        let value = checked_value(&name, value)?;
        self.insert(name, value);
        Ok(())
    }

    fn append(&mut self, name: &str, value: &[u8]) -> Result<(), HeaderError> {
        let name = checked_name(name)?;
        let value = checked_value(&name, value)?;
        HeaderMap::append(self, name, value);
        Ok(())
    }

    fn remove(&mut self, name: &str) -> Result<usize, HeaderError> {
        let name = checked_name(name)?;
        let count = self.get_all(&name).iter().count();
        HeaderMap::remove(self, &name);
        Ok(count)
    }

    fn pairs(&self) -> Vec<(String, Vec<u8>)> {
        self.iter()
            .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
            .collect()
    }
}

/// Implements [`HeaderBlock`] for a type by delegating to its field.
macro_rules! headers_in {
    ($ty:ty, $field:ident) => {
        impl HeaderBlock for $ty {
            fn get(&self, name: &str) -> Option<&[u8]> {
                HeaderBlock::get(&self.$field, name)
            }
            fn set(&mut self, name: &str, value: &[u8]) -> Result<(), HeaderError> {
                HeaderBlock::set(&mut self.$field, name, value)
            }
            fn append(&mut self, name: &str, value: &[u8]) -> Result<(), HeaderError> {
                HeaderBlock::append(&mut self.$field, name, value)
            }
            fn remove(&mut self, name: &str) -> Result<usize, HeaderError> {
                HeaderBlock::remove(&mut self.$field, name)
            }
            fn pairs(&self) -> Vec<(String, Vec<u8>)> {
                HeaderBlock::pairs(&self.$field)
            }
        }
    };
}

headers_in!(::http::request::Parts, headers);
headers_in!(::http::response::Parts, headers);
headers_in!(Head, headers);

impl RequestHead for ::http::request::Parts {
    fn method(&self) -> &str {
        self.method.as_str()
    }

    fn path(&self) -> &str {
        self.uri.path()
    }

    fn protocol(&self) -> &'static str {
        match self.version {
            ::http::Version::HTTP_09 => "HTTP/0.9",
            ::http::Version::HTTP_10 => "HTTP/1.0",
            ::http::Version::HTTP_2 => "HTTP/2",
            ::http::Version::HTTP_3 => "HTTP/3",
            _ => "HTTP/1.1",
        }
    }
}

impl ResponseHead for ::http::response::Parts {
    fn status(&self) -> u16 {
        self.status.as_u16()
    }

    fn set_status(&mut self, status: u16) -> Result<(), HeaderError> {
        self.status = StatusCode::from_u16(status).map_err(|_| HeaderError::Status(status))?;
        Ok(())
    }

    /// Without `content-length` an HTTP/2 head's body is streamed
    /// (`message::ResponseHead::length`).
    fn stream_body(&mut self) {
        self.headers.remove(::http::header::CONTENT_LENGTH);
    }
}

// === impl HeaderBlock for HTTP/1.1's header list ===

/// HTTP/1.1 keeps headers as they came, in order, names in their case.
impl HeaderBlock for Vec<(String, Vec<u8>)> {
    fn get(&self, name: &str) -> Option<&[u8]> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    /// In place of the first value, the others removed.
    fn set(&mut self, name: &str, value: &[u8]) -> Result<(), HeaderError> {
        let parsed = checked_name(name)?;
        checked_value(&parsed, value)?;
        let mut first = true;
        self.retain_mut(|(n, v)| {
            if !n.eq_ignore_ascii_case(name) {
                return true;
            }
            if std::mem::take(&mut first) {
                *v = value.to_vec();
                return true;
            }
            false
        });
        if first {
            self.push((parsed.as_str().to_owned(), value.to_vec()));
        }
        Ok(())
    }

    fn append(&mut self, name: &str, value: &[u8]) -> Result<(), HeaderError> {
        let parsed = checked_name(name)?;
        checked_value(&parsed, value)?;
        self.push((parsed.as_str().to_owned(), value.to_vec()));
        Ok(())
    }

    fn remove(&mut self, name: &str) -> Result<usize, HeaderError> {
        checked_name(name)?;
        let before = self.len();
        self.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        Ok(before - self.len())
    }

    fn pairs(&self) -> Vec<(String, Vec<u8>)> {
        self.iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
            .collect()
    }
}

impl RequestHead for Head {
    fn method(&self) -> &str {
        &self.method
    }

    fn path(&self) -> &str {
        Head::path(self)
    }

    fn protocol(&self) -> &'static str {
        if self.minor == 0 {
            "HTTP/1.0"
        } else {
            "HTTP/1.1"
        }
    }

    fn is_http10(&self) -> bool {
        self.minor == 0
    }
}

/// A request head as the exchange hands it to the filters: the head, and
/// the protocol its client speaks (an HTTP/2 request's head is parsed
/// into an HTTP/1.1 [`Head`], which cannot tell).
struct Speaking<'a> {
    head: &'a mut dyn RequestHead,
    protocol: &'static str,
    route: &'a str,
}

impl HeaderBlock for Speaking<'_> {
    fn get(&self, name: &str) -> Option<&[u8]> {
        self.head.get(name)
    }
    fn set(&mut self, name: &str, value: &[u8]) -> Result<(), HeaderError> {
        self.head.set(name, value)
    }
    fn append(&mut self, name: &str, value: &[u8]) -> Result<(), HeaderError> {
        self.head.append(name, value)
    }
    fn remove(&mut self, name: &str) -> Result<usize, HeaderError> {
        self.head.remove(name)
    }
    fn pairs(&self) -> Vec<(String, Vec<u8>)> {
        self.head.pairs()
    }
}

impl RequestHead for Speaking<'_> {
    fn method(&self) -> &str {
        self.head.method()
    }
    fn path(&self) -> &str {
        self.head.path()
    }
    fn protocol(&self) -> &'static str {
        self.protocol
    }

    fn route_name(&self) -> &str {
        self.route
    }

    fn is_http10(&self) -> bool {
        self.head.is_http10()
    }
}

impl ResponseHead for Head {
    fn status(&self) -> u16 {
        self.status
    }

    fn set_status(&mut self, status: u16) -> Result<(), HeaderError> {
        if !(100..=999).contains(&status) {
            return Err(HeaderError::Status(status));
        }
        self.status = status;
        self.reason = http1::reason(status).to_owned();
        Ok(())
    }

    /// A length becomes chunked framing (`write_response` then writes
    /// `Transfer-Encoding: chunked`).
    fn stream_body(&mut self) {
        if let http1::Framing::Length(_) = self.framing {
            self.framing = http1::Framing::Chunked;
        }
        self.headers
            .retain(|(n, _)| !n.eq_ignore_ascii_case("content-length"));
    }
}

// === the filters ===

/// What a callback decides.
#[derive(Debug)]
pub enum Action {
    /// On to the next filter (with any changes made in place).
    Continue,
    /// Answer locally (boxed: `Continue` is the common case).
    Respond(Box<LocalResponse>),
    /// Wait this long, then ask the same filter again (request headers
    /// only; see the module docs).
    Delay(Duration),
}

/// A response made by a filter instead of the upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalResponse {
    pub status: u16,
    /// Checked as [`HeaderBlock`] checks; the exchange adds the framing.
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Bytes,
}

impl LocalResponse {
    /// A final (non-1xx) status and a body.
    pub fn new(status: u16, body: impl Into<Bytes>) -> Result<LocalResponse, HeaderError> {
        if !(200..=599).contains(&status) {
            return Err(HeaderError::Status(status));
        }
        Ok(LocalResponse {
            status,
            headers: Vec::new(),
            body: body.into(),
        })
    }

    pub fn with_header(mut self, name: &str, value: &[u8]) -> Result<LocalResponse, HeaderError> {
        HeaderBlock::append(&mut self.headers, name, value)?;
        Ok(self)
    }
}

/// One configured HTTP filter: shared by every request of its listener
/// (or route).
pub trait HttpFilter: fmt::Debug + Send + Sync {
    /// Its config name (issue 15: `filters = [...]`; a route disables a
    /// listener's filter by this name).
    fn name(&self) -> &'static str;

    /// Whether it keeps per-connection state that cannot move (a filter
    /// keeps per-connection state in itself, keyed by the connection).
    fn mobility(&self) -> Mobility;

    /// Its state for one request.
    fn stream(&self, conn: &ConnInfo) -> Box<dyn HttpStreamFilter>;

    /// Its token buckets, if it keeps some (a rate limit): an upgrade
    /// carries them to the next generation's filter at the same place.
    fn buckets(&self) -> Option<&crate::filter::buckets::Limiter> {
        None
    }
}

/// A shadow copy of a request that a filter asks for (the `mirror`
/// filter's): where it goes and how it is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirrorTo {
    /// The shadow cluster's name (the config checked it is one).
    pub cluster: Arc<str>,
    /// `-shadow` is appended to the copy's host (before any port).
    pub host_suffix: bool,
    /// A request body longer than this is not copied.
    pub max_body_bytes: u64,
}

/// One request's filter. Every callback continues unless overridden.
pub trait HttpStreamFilter: Send {
    /// The shadow copy this request asks for, if any: asked once its head
    /// has passed every filter and it is routed to a cluster (see
    /// [`HttpStream::mirrors`]).
    fn mirror(&self) -> Option<MirrorTo> {
        None
    }

    fn on_request_headers(&mut self, head: &mut dyn RequestHead, end_of_stream: bool) -> Action {
        let _ = (head, end_of_stream);
        Action::Continue
    }

    fn on_request_body(&mut self, chunk: &mut BytesMut, end_of_stream: bool) -> Action {
        let _ = (chunk, end_of_stream);
        Action::Continue
    }

    fn on_request_trailers(&mut self, trailers: &mut dyn HeaderBlock) -> Action {
        let _ = trailers;
        Action::Continue
    }

    fn on_response_headers(&mut self, head: &mut dyn ResponseHead, end_of_stream: bool) -> Action {
        let _ = (head, end_of_stream);
        Action::Continue
    }

    fn on_response_body(&mut self, chunk: &mut BytesMut, end_of_stream: bool) -> Action {
        let _ = (chunk, end_of_stream);
        Action::Continue
    }

    fn on_response_trailers(&mut self, trailers: &mut dyn HeaderBlock) -> Action {
        let _ = trailers;
        Action::Continue
    }
}

/// A listener's (or route's) HTTP filters, in order. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct HttpChain {
    filters: Arc<[Arc<dyn HttpFilter>]>,
}

impl HttpChain {
    pub fn new(filters: Vec<Arc<dyn HttpFilter>>) -> HttpChain {
        HttpChain {
            filters: filters.into(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.filters.is_empty()
    }

    /// Its filters, in order.
    pub(crate) fn filters(&self) -> &[Arc<dyn HttpFilter>] {
        &self.filters
    }

    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.filters.iter().map(|f| f.name())
    }

    /// Whether its connections move at an upgrade.
    pub fn mobility(&self) -> Mobility {
        Mobility::of_all(self.filters.iter().map(|f| f.mobility()))
    }

    /// The filters of one request.
    pub fn stream(&self, conn: &ConnInfo) -> HttpStream {
        self.stream_with(conn, &[], &HttpChain::default())
    }

    /// The filters of one request on a route that has its own: this
    /// chain's but those named in `disabled`, then `route`'s.
    pub fn stream_with(
        &self,
        conn: &ConnInfo,
        disabled: &[String],
        route: &HttpChain,
    ) -> HttpStream {
        let filters: Vec<_> = self
            .filters
            .iter()
            .filter(|f| !disabled.iter().any(|d| d == f.name()))
            .chain(route.filters.iter())
            .map(|f| (f.name(), f.stream(conn)))
            .collect();
        HttpStream {
            reached: filters.len(),
            filters,
            resume: 0,
            protocol: None,
            route: None,
        }
    }
}

/// One request's filters, and how far its request got through them.
pub struct HttpStream {
    /// In chain order, with their names.
    filters: Vec<(&'static str, Box<dyn HttpStreamFilter>)>,
    /// The filters that take part from here on: all of them, or those
    /// before the one that answered locally.
    reached: usize,
    /// The filter whose `on_request_headers` runs next: the one that
    /// asked for a delay, once the exchange has waited.
    resume: usize,
    /// The client's protocol, when the exchange told it.
    protocol: Option<&'static str>,
    /// The matched route's name, when the exchange told it.
    route: Option<Arc<str>>,
}

impl fmt::Debug for HttpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpStream")
            .field("filters", &self.filters.len())
            .field("reached", &self.reached)
            .finish()
    }
}

impl HttpStream {
    /// The filter that answered the request locally, if one did.
    pub fn answered_by(&self) -> Option<&'static str> {
        self.filters.get(self.reached).map(|(name, _)| *name)
    }

    /// The shadow copies asked for by the filters the request reached
    /// (every one, once its head has passed them all), in chain order.
    pub fn mirrors(&self) -> Vec<MirrorTo> {
        self.filters[..self.reached]
            .iter()
            .filter_map(|(_, f)| f.mirror())
            .collect()
    }

    /// The protocol the request's client speaks, for the filters'
    /// [`RequestHead::protocol`].
    pub fn set_protocol(&mut self, protocol: &'static str) {
        self.protocol = Some(protocol);
    }

    /// The request head, from the first filter or, after an
    /// [`Action::Delay`] (which the exchange waits out before calling this
    /// again), from the filter that asked for it.
    pub fn request_headers(&mut self, head: &mut dyn RequestHead, end_of_stream: bool) -> Action {
        if self.protocol.is_none() && self.route.is_none() {
            return self.request_headers_of(head, end_of_stream);
        }
        let protocol = self.protocol.unwrap_or_else(|| head.protocol());
        let route = self.route.clone();
        let mut speaking = Speaking {
            head,
            protocol,
            route: route.as_deref().unwrap_or_default(),
        };
        self.request_headers_of(&mut speaking, end_of_stream)
    }

    /// The name of the route the request matched, for the filters'
    /// [`RequestHead::route_name`].
    pub fn set_route_name(&mut self, name: Arc<str>) {
        self.route = Some(name);
    }

    fn request_headers_of(&mut self, head: &mut dyn RequestHead, end_of_stream: bool) -> Action {
        for index in self.resume..self.reached {
            match self.filters[index]
                .1
                .on_request_headers(head, end_of_stream)
            {
                Action::Continue => {}
                Action::Delay(wait) => {
                    self.resume = index;
                    return Action::Delay(wait);
                }
                Action::Respond(local) => {
                    self.reached = index;
                    return Action::Respond(local);
                }
            }
        }
        self.resume = self.reached;
        Action::Continue
    }

    pub fn request_body(&mut self, chunk: &mut BytesMut, end_of_stream: bool) -> Action {
        self.forward(|f| f.on_request_body(chunk, end_of_stream))
    }

    pub fn request_trailers(&mut self, trailers: &mut dyn HeaderBlock) -> Action {
        self.forward(|f| f.on_request_trailers(trailers))
    }

    /// The response head — the upstream's, or a local response's after an
    /// [`Action::Respond`] (which only the filters before the answering one
    /// see).
    pub fn response_headers(&mut self, head: &mut dyn ResponseHead, end_of_stream: bool) -> Action {
        self.backward(|f| f.on_response_headers(head, end_of_stream))
    }

    pub fn response_body(&mut self, chunk: &mut BytesMut, end_of_stream: bool) -> Action {
        self.backward(|f| f.on_response_body(chunk, end_of_stream))
    }

    pub fn response_trailers(&mut self, trailers: &mut dyn HeaderBlock) -> Action {
        self.backward(|f| f.on_response_trailers(trailers))
    }

    fn forward(&mut self, mut call: impl FnMut(&mut dyn HttpStreamFilter) -> Action) -> Action {
        for index in 0..self.reached {
            if let Action::Respond(local) = call(&mut *self.filters[index].1) {
                self.reached = index;
                return Action::Respond(local);
            }
        }
        Action::Continue
    }

    fn backward(&mut self, mut call: impl FnMut(&mut dyn HttpStreamFilter) -> Action) -> Action {
        for index in (0..self.reached).rev() {
            if let Action::Respond(local) = call(&mut *self.filters[index].1) {
                self.reached = index;
                return Action::Respond(local);
            }
        }
        Action::Continue
    }
}

/// A mock exchange that drives a chain the way `http::exchange` does:
/// shared with the built-in filters' tests.
#[cfg(test)]
pub(crate) mod mock {
    use super::*;

    /// A request or response as the mock carries it.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub(crate) struct Message {
        pub(crate) head: Head,
        pub(crate) body: Vec<Vec<u8>>,
        pub(crate) trailers: Option<Vec<(String, Vec<u8>)>>,
    }

    pub(crate) fn request(target: &str, headers: &[(&str, &str)]) -> Message {
        Message {
            head: Head {
                method: "POST".into(),
                target: target.into(),
                status: 0,
                reason: String::new(),
                minor: 1,
                headers: headers
                    .iter()
                    .map(|(n, v)| ((*n).into(), v.as_bytes().to_vec()))
                    .collect(),
                framing: http1::Framing::Chunked,
            },
            body: vec![b"hello ".to_vec(), b"world".to_vec()],
            trailers: Some(vec![("x-checksum".into(), b"1".to_vec())]),
        }
    }

    pub(crate) fn response(status: u16, headers: &[(&str, &str)]) -> Message {
        let mut message = request("", headers);
        message.head.method.clear();
        message.head.status = status;
        message.head.reason = http1::reason(status).into();
        message.body = vec![b"answer".to_vec()];
        message.trailers = None;
        message
    }

    /// What a run of the exchange did.
    #[derive(Debug)]
    pub(crate) struct Run {
        /// What reached the upstream, if it was asked.
        pub(crate) upstream_saw: Option<Message>,
        /// What the client got.
        pub(crate) client_got: Message,
        /// The delays the request waited, in order.
        pub(crate) delayed: Vec<std::time::Duration>,
    }

    fn local(response: &LocalResponse) -> Message {
        let mut message = self::response(response.status, &[]);
        message.head.headers = response.headers.clone();
        message.body = vec![response.body.to_vec()];
        message
    }

    /// Runs one request through `chain` to an upstream that answers
    /// `answer`.
    pub(crate) fn exchange(chain: &HttpChain, mut request: Message, answer: Message) -> Run {
        let conn = ConnInfo {
            listener: Arc::from("l"),
            source: "10.0.0.1:4000".parse().ok(),
            local: None,
        };
        let mut stream = chain.stream(&conn);
        let mut delayed = Vec::new();
        let answered = 'request: {
            let no_body = request.body.is_empty() && request.trailers.is_none();
            loop {
                match stream.request_headers(&mut request.head, no_body) {
                    Action::Continue => break,
                    // The wait itself is the exchange's: noted, not slept.
                    Action::Delay(wait) => delayed.push(wait),
                    Action::Respond(r) => break 'request Some(r),
                }
            }
            let chunks = request.body.len();
            for (i, chunk) in request.body.iter_mut().enumerate() {
                let mut buf = BytesMut::from(&chunk[..]);
                let last = i + 1 == chunks && request.trailers.is_none();
                if let Action::Respond(r) = stream.request_body(&mut buf, last) {
                    break 'request Some(r);
                }
                *chunk = buf.to_vec();
            }
            if let Some(trailers) = request.trailers.as_mut()
                && let Action::Respond(r) = stream.request_trailers(trailers)
            {
                break 'request Some(r);
            }
            None
        };
        let (upstream_saw, mut response) = match answered {
            Some(local_response) => (None, local(&local_response)),
            None => (Some(request), answer),
        };
        // The response side, again from the top if a filter answers.
        loop {
            let no_body = response.body.is_empty() && response.trailers.is_none();
            if let Action::Respond(r) = stream.response_headers(&mut response.head, no_body) {
                response = local(&r);
                continue;
            }
            let chunks = response.body.len();
            let mut replaced = None;
            for (i, chunk) in response.body.iter_mut().enumerate() {
                let mut buf = BytesMut::from(&chunk[..]);
                let last = i + 1 == chunks && response.trailers.is_none();
                if let Action::Respond(r) = stream.response_body(&mut buf, last) {
                    replaced = Some(r);
                    break;
                }
                *chunk = buf.to_vec();
            }
            if let Some(r) = replaced {
                // The mock has not sent the head yet, so it can still
                // answer; a real exchange past the head resets instead.
                response = local(&r);
                continue;
            }
            if let Some(trailers) = response.trailers.as_mut()
                && let Action::Respond(r) = stream.response_trailers(trailers)
            {
                response = local(&r);
                continue;
            }
            break;
        }
        Run {
            upstream_saw,
            client_got: response,
            delayed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::mock::{exchange, request, response};
    use super::*;
    use parking_lot::Mutex;

    /// Logs every callback, marks what passes through, and answers
    /// locally at the phase it is told to.
    #[derive(Debug)]
    struct Probe {
        name: &'static str,
        answer_at: Option<&'static str>,
        log: Arc<Mutex<Vec<String>>>,
    }

    struct ProbeStream {
        name: &'static str,
        answer_at: Option<&'static str>,
        log: Arc<Mutex<Vec<String>>>,
    }

    impl HttpFilter for Probe {
        fn name(&self) -> &'static str {
            self.name
        }
        fn mobility(&self) -> Mobility {
            Mobility::Moves
        }
        fn stream(&self, _conn: &ConnInfo) -> Box<dyn HttpStreamFilter> {
            Box::new(ProbeStream {
                name: self.name,
                answer_at: self.answer_at,
                log: Arc::clone(&self.log),
            })
        }
    }

    impl ProbeStream {
        fn see(&mut self, phase: &'static str) -> Action {
            self.log.lock().push(format!("{} {phase}", self.name));
            if self.answer_at == Some(phase) {
                self.answer_at = None;
                let local = LocalResponse::new(403, format!("denied by {}", self.name))
                    .unwrap()
                    .with_header("x-denied-by", self.name.as_bytes())
                    .unwrap();
                return Action::Respond(Box::new(local));
            }
            Action::Continue
        }
    }

    impl HttpStreamFilter for ProbeStream {
        fn on_request_headers(&mut self, head: &mut dyn RequestHead, _eos: bool) -> Action {
            head.append("x-seen", self.name.as_bytes()).unwrap();
            self.see("request_headers")
        }
        fn on_request_body(&mut self, chunk: &mut BytesMut, _eos: bool) -> Action {
            chunk.extend_from_slice(self.name.as_bytes());
            self.see("request_body")
        }
        fn on_request_trailers(&mut self, _trailers: &mut dyn HeaderBlock) -> Action {
            self.see("request_trailers")
        }
        fn on_response_headers(&mut self, head: &mut dyn ResponseHead, _eos: bool) -> Action {
            head.append("x-seen", self.name.as_bytes()).unwrap();
            self.see("response_headers")
        }
        fn on_response_body(&mut self, chunk: &mut BytesMut, _eos: bool) -> Action {
            chunk.extend_from_slice(self.name.as_bytes());
            self.see("response_body")
        }
        fn on_response_trailers(&mut self, _trailers: &mut dyn HeaderBlock) -> Action {
            self.see("response_trailers")
        }
    }

    fn chain(
        probes: &[(&'static str, Option<&'static str>)],
    ) -> (HttpChain, Arc<Mutex<Vec<String>>>) {
        let log = Arc::new(Mutex::new(Vec::new()));
        let filters = probes
            .iter()
            .map(|&(name, answer_at)| {
                Arc::new(Probe {
                    name,
                    answer_at,
                    log: Arc::clone(&log),
                }) as Arc<dyn HttpFilter>
            })
            .collect();
        (HttpChain::new(filters), log)
    }

    fn seen(head: &Head) -> Vec<&[u8]> {
        head.headers
            .iter()
            .filter(|(n, _)| n == "x-seen")
            .map(|(_, v)| v.as_slice())
            .collect()
    }

    #[test]
    fn requests_run_in_order_and_responses_in_reverse() {
        let (chain, log) = chain(&[("a", None), ("b", None)]);
        let run = exchange(&chain, request("/p", &[]), response(200, &[]));
        let upstream = run.upstream_saw.expect("the upstream was asked");
        assert_eq!(seen(&upstream.head), [b"a", b"b"]);
        assert_eq!(upstream.body, [b"hello ab".to_vec(), b"worldab".to_vec()]);
        assert_eq!(seen(&run.client_got.head), [b"b", b"a"]);
        assert_eq!(run.client_got.body, [b"answerba".to_vec()]);
        assert_eq!(
            *log.lock(),
            [
                "a request_headers",
                "b request_headers",
                "a request_body",
                "b request_body",
                "a request_body",
                "b request_body",
                "a request_trailers",
                "b request_trailers",
                "b response_headers",
                "a response_headers",
                "b response_body",
                "a response_body",
            ]
        );
    }

    #[test]
    fn a_local_answer_skips_the_upstream_and_the_filters_after() {
        let (chain, log) = chain(&[("a", None), ("b", Some("request_headers")), ("c", None)]);
        let run = exchange(&chain, request("/p", &[]), response(200, &[]));
        assert!(run.upstream_saw.is_none(), "the upstream was not asked");
        let got = run.client_got;
        assert_eq!(got.head.status, 403);
        assert_eq!(got.head.header("x-denied-by"), Some(&b"b"[..]));
        assert_eq!(got.body, [b"denied by ba".to_vec()]);
        assert_eq!(
            seen(&got.head),
            [b"a"],
            "only the filters before b see the answer"
        );
        assert_eq!(
            *log.lock(),
            [
                "a request_headers",
                "b request_headers",
                "a response_headers",
                "a response_body"
            ]
        );
    }

    #[test]
    fn the_stream_names_the_filter_that_answered() {
        let (chain, _) = chain(&[("a", None), ("b", Some("request_headers")), ("c", None)]);
        let conn = ConnInfo {
            listener: Arc::from("l"),
            source: None,
            local: None,
        };
        let mut stream = chain.stream(&conn);
        assert_eq!(stream.answered_by(), None);
        let mut head = request("/", &[]).head;
        assert!(matches!(
            stream.request_headers(&mut head, true),
            Action::Respond(_)
        ));
        assert_eq!(stream.answered_by(), Some("b"));
    }

    #[test]
    fn a_local_answer_from_a_body_chunk() {
        let (chain, log) = chain(&[("a", None), ("b", Some("request_body"))]);
        let run = exchange(&chain, request("/p", &[]), response(200, &[]));
        assert!(run.upstream_saw.is_none());
        assert_eq!(run.client_got.head.status, 403);
        let log = log.lock();
        assert_eq!(
            log.iter().filter(|l| l.ends_with("request_body")).count(),
            2
        );
        assert!(!log.iter().any(|l| l.ends_with("request_trailers")));
    }

    #[test]
    fn a_filter_replaces_the_upstream_response() {
        let (chain, log) = chain(&[("a", None), ("b", Some("response_headers")), ("c", None)]);
        let run = exchange(&chain, request("/p", &[]), response(200, &[]));
        assert!(run.upstream_saw.is_some());
        let got = run.client_got;
        assert_eq!(got.head.status, 403);
        assert_eq!(seen(&got.head), [b"a"]);
        assert_eq!(
            log.lock()[12..],
            [
                "c response_headers",
                "b response_headers",
                "a response_headers",
                "a response_body"
            ]
        );
    }

    #[test]
    fn an_empty_chain_changes_nothing() {
        let chain = HttpChain::default();
        assert!(chain.is_empty());
        let sent = request("/p", &[("x-a", "1")]);
        let answer = response(204, &[]);
        let run = exchange(&chain, sent.clone(), answer.clone());
        assert_eq!(run.upstream_saw, Some(sent));
        assert_eq!(run.client_got, answer);
    }

    #[test]
    fn mobility_is_every_filters() {
        #[derive(Debug)]
        struct Sticky;
        struct Nothing;
        impl HttpStreamFilter for Nothing {}
        impl HttpFilter for Sticky {
            fn name(&self) -> &'static str {
                "sticky"
            }
            fn mobility(&self) -> Mobility {
                Mobility::Stays
            }
            fn stream(&self, _conn: &ConnInfo) -> Box<dyn HttpStreamFilter> {
                Box::new(Nothing)
            }
        }
        let (moving, _) = chain(&[("a", None)]);
        assert_eq!(moving.mobility(), Mobility::Moves);
        let staying = HttpChain::new(vec![Arc::new(Sticky), moving.filters[0].clone()]);
        assert_eq!(staying.mobility(), Mobility::Stays);
        assert_eq!(staying.names().collect::<Vec<_>>(), ["sticky", "a"]);
    }

    /// The same header operations on both representations.
    fn exercise(block: &mut dyn HeaderBlock) {
        block.append("X-Tag", b"1").unwrap();
        block.append("x-tag", b"2").unwrap();
        assert_eq!(block.get("x-TAG"), Some(&b"1"[..]));
        block.set("x-tag", b"3").unwrap();
        assert_eq!(block.get("x-tag"), Some(&b"3"[..]));
        assert_eq!(block.remove("x-tag").unwrap(), 1);
        assert_eq!(block.get("x-tag"), None);
        assert_eq!(block.remove("x-tag").unwrap(), 0);
        // No header injection, no framing changes, no bad names.
        assert_eq!(
            block.set("x-a", b"v\r\nx-evil: 1"),
            Err(HeaderError::Value("x-a".into()))
        );
        assert_eq!(
            block.set("Content-Length", b"0"),
            Err(HeaderError::Reserved("content-length".into()))
        );
        assert_eq!(
            block.remove("transfer-encoding"),
            Err(HeaderError::Reserved("transfer-encoding".into()))
        );
        assert_eq!(
            block.append("a b", b"1"),
            Err(HeaderError::Name("a b".into()))
        );
    }

    #[test]
    fn headers_behave_alike_on_http1_and_the_http_crate() {
        let mut list: Vec<(String, Vec<u8>)> = vec![("content-length".into(), b"5".to_vec())];
        exercise(&mut list);
        assert_eq!(list, [("content-length".to_string(), b"5".to_vec())]);
        let mut map = HeaderMap::new();
        exercise(&mut map);
        assert!(map.is_empty());
    }

    #[test]
    fn heads_on_both_paths() {
        let (mut parts, ()) = ::http::Request::post("http://h/a/b?q=1")
            .body(())
            .unwrap()
            .into_parts();
        let h2: &mut dyn RequestHead = &mut parts;
        assert_eq!((h2.method(), h2.path()), ("POST", "/a/b"));
        let mut h1 = request("/a/b?q=1", &[]).head;
        let h1: &mut dyn RequestHead = &mut h1;
        assert_eq!((h1.method(), h1.path()), ("POST", "/a/b"));

        let (mut parts, ()) = ::http::Response::new(()).into_parts();
        parts.set_status(404).unwrap();
        assert_eq!(parts.status(), 404);
        assert_eq!(parts.set_status(1000), Err(HeaderError::Status(1000)));
        let mut head = response(200, &[]).head;
        head.set_status(503).unwrap();
        assert_eq!(
            (head.status, head.reason.as_str()),
            (503, "Service Unavailable")
        );
        assert_eq!(head.set_status(42), Err(HeaderError::Status(42)));
    }

    #[test]
    fn a_local_response_is_checked() {
        assert_eq!(LocalResponse::new(101, ""), Err(HeaderError::Status(101)));
        let local = LocalResponse::new(429, "slow down").unwrap();
        assert_eq!(
            local.clone().with_header("retry-after", b"1\n"),
            Err(HeaderError::Value("retry-after".into()))
        );
        let local = local.with_header("retry-after", b"1").unwrap();
        assert_eq!(local.headers, [("retry-after".to_string(), b"1".to_vec())]);
    }
}
