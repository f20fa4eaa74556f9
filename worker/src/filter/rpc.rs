//! The L7 stream-filter chain for the multiplexed RPC protocols: what runs
//! on each request frame a client sends and each response frame that
//! answers it.
//!
//! A configured filter ([`RpcFilter`]) makes one [`RpcFrameFilter`] per
//! downstream connection (frames of many requests interleave on one
//! connection, so per-connection is where an RPC filter's state lives);
//! the connection's [`RpcFilters`] run them:
//!
//! * [`RpcFilters::request`] — a request or oneway frame from the client,
//!   in chain order, before it is routed;
//! * [`RpcFilters::response`] — the response to it, in reverse order,
//!   before it is written to the client, with the request it answers (a
//!   connection with filters keeps a copy of each request in flight for
//!   this: `rpc::downstream`).
//!
//! Heartbeats and protocol events are the proxy's (answered on the side
//! they arrive on) and never reach the filters.
//!
//! Each callback returns an [`RpcAction`]: continue (with whatever it
//! changed in the frame, in place), or answer with the protocol's own
//! error response — built by the codec's `hijack` from the request, so
//! the client reads it like any error from that protocol. An answer to a
//! request stops it there (not routed, filters after this one skipped)
//! and goes back through the response side of the filters before this
//! one, as an HTTP local response does; an answer to a response replaces
//! it the same way. A oneway request has no response: an answer to it
//! just drops it.

use std::fmt;
use std::sync::Arc;

use crate::codec::{AnyCodec, ErrorKind, Frame};
use crate::filter::{ConnInfo, Mobility};

/// What a callback decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RpcAction {
    /// On to the next filter (with any change made to the frame).
    Continue,
    /// Answer with the protocol's error response of this kind.
    Respond(ErrorKind),
}

/// What the proxy does with a frame after the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RpcFlow {
    /// Send it on (a request upstream, a response to the client).
    Forward,
    /// Write this to the client instead; for a request, route nothing.
    Answer(Box<Frame>),
    /// A oneway request a filter answered: nothing goes anywhere.
    Drop,
}

/// One configured RPC filter: shared by every connection of its listener
/// (or route).
pub trait RpcFilter: fmt::Debug + Send + Sync {
    /// Its config name (issue 15: `filters = [...]`).
    fn name(&self) -> &'static str;

    /// Whether it keeps per-connection state that cannot move.
    fn mobility(&self) -> Mobility;

    /// Its state for one downstream connection.
    fn connection(&self, conn: &ConnInfo) -> Box<dyn RpcFrameFilter>;

    /// Its token buckets, if it keeps some (a rate limit): an upgrade
    /// carries them to the next generation's filter at the same place.
    fn buckets(&self) -> Option<&crate::filter::buckets::Limiter> {
        None
    }
}

/// One connection's filter. Both callbacks continue unless overridden.
pub trait RpcFrameFilter: fmt::Debug + Send {
    fn on_request(&mut self, request: &mut Frame) -> RpcAction {
        let _ = request;
        RpcAction::Continue
    }

    /// `request` is the request as the filters passed it on (with the
    /// client's id).
    fn on_response(&mut self, response: &mut Frame, request: &Frame) -> RpcAction {
        let _ = (response, request);
        RpcAction::Continue
    }
}

/// A listener's (or route's) RPC filters, in order. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct RpcChain {
    filters: Arc<[Arc<dyn RpcFilter>]>,
}

impl RpcChain {
    pub fn new(filters: Vec<Arc<dyn RpcFilter>>) -> RpcChain {
        RpcChain {
            filters: filters.into(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.filters.is_empty()
    }

    /// Its filters, in order.
    pub(crate) fn filters(&self) -> &[Arc<dyn RpcFilter>] {
        &self.filters
    }

    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.filters.iter().map(|f| f.name())
    }

    /// The filters of one downstream connection.
    pub fn connection(&self, conn: &ConnInfo) -> RpcFilters {
        RpcFilters {
            filters: self.filters.iter().map(|f| f.connection(conn)).collect(),
            mobility: Mobility::of_all(self.filters.iter().map(|f| f.mobility())),
        }
    }
}

/// One downstream connection's filters.
#[derive(Debug)]
pub struct RpcFilters {
    /// In chain order.
    filters: Vec<Box<dyn RpcFrameFilter>>,
    mobility: Mobility,
}

impl RpcFilters {
    /// Whether the connection moves at an upgrade (else it drains).
    pub fn moves(&self) -> bool {
        self.mobility == Mobility::Moves
    }

    /// A request (or oneway) frame from the client.
    pub fn request(&mut self, request: &mut Frame, codec: &AnyCodec) -> RpcFlow {
        for index in 0..self.filters.len() {
            if let RpcAction::Respond(kind) = self.filters[index].on_request(request) {
                if !request.expects_response() {
                    return RpcFlow::Drop;
                }
                let mut answer = codec.hijack(request, kind);
                // The filters before this one see the answer, as they
                // would the upstream's.
                self.back_from(index, &mut answer, request, codec);
                return RpcFlow::Answer(Box::new(answer));
            }
        }
        RpcFlow::Forward
    }

    /// The response to `request`.
    pub fn response(&mut self, response: &mut Frame, request: &Frame, codec: &AnyCodec) -> RpcFlow {
        let len = self.filters.len();
        match self.back_from(len, response, request, codec) {
            Some(answer) => RpcFlow::Answer(Box::new(answer)),
            None => RpcFlow::Forward,
        }
    }

    /// Runs the response side of the filters before `end`, in reverse;
    /// the answer that replaced `response`, if one did.
    fn back_from(
        &mut self,
        end: usize,
        response: &mut Frame,
        request: &Frame,
        codec: &AnyCodec,
    ) -> Option<Frame> {
        let mut replaced: Option<Frame> = None;
        for index in (0..end).rev() {
            let current = replaced.as_mut().unwrap_or(&mut *response);
            if let RpcAction::Respond(kind) = self.filters[index].on_response(current, request) {
                replaced = Some(codec.hijack(request, kind));
            }
        }
        if let Some(answer) = replaced.as_mut()
            && response.request_id() != answer.request_id()
        {
            // The hijack carries the request's id; the response being
            // replaced may already carry the client's.
            let _ = answer.set_request_id(response.request_id());
        }
        replaced
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{CodecConfig, Protocol, RequestId, bolt, tars};
    use bytes::BytesMut;
    use parking_lot::Mutex;

    /// Logs what it sees and answers with `kind` at `at`.
    #[derive(Debug)]
    struct Probe {
        name: &'static str,
        at: Option<(&'static str, ErrorKind)>,
        log: Arc<Mutex<Vec<String>>>,
    }

    impl RpcFilter for Probe {
        fn name(&self) -> &'static str {
            self.name
        }
        fn mobility(&self) -> Mobility {
            Mobility::Moves
        }
        fn connection(&self, _conn: &ConnInfo) -> Box<dyn RpcFrameFilter> {
            Box::new(ProbeConn {
                name: self.name,
                at: self.at,
                log: Arc::clone(&self.log),
            })
        }
    }

    #[derive(Debug)]
    struct ProbeConn {
        name: &'static str,
        at: Option<(&'static str, ErrorKind)>,
        log: Arc<Mutex<Vec<String>>>,
    }

    impl ProbeConn {
        fn see(&self, phase: &'static str, frame: &Frame) -> RpcAction {
            self.log
                .lock()
                .push(format!("{} {phase} status={:?}", self.name, frame.status()));
            match self.at {
                Some((at, kind)) if at == phase => RpcAction::Respond(kind),
                _ => RpcAction::Continue,
            }
        }
    }

    impl RpcFrameFilter for ProbeConn {
        fn on_request(&mut self, request: &mut Frame) -> RpcAction {
            self.see("request", request)
        }
        fn on_response(&mut self, response: &mut Frame, _request: &Frame) -> RpcAction {
            self.see("response", response)
        }
    }

    fn chain(
        probes: &[(&'static str, Option<(&'static str, ErrorKind)>)],
    ) -> (RpcFilters, Arc<Mutex<Vec<String>>>) {
        let log = Arc::new(Mutex::new(Vec::new()));
        let filters = probes
            .iter()
            .map(|&(name, at)| {
                Arc::new(Probe {
                    name,
                    at,
                    log: Arc::clone(&log),
                }) as Arc<dyn RpcFilter>
            })
            .collect();
        let conn = ConnInfo {
            listener: Arc::from("l"),
            source: None,
            local: None,
        };
        (RpcChain::new(filters).connection(&conn), log)
    }

    fn bolt() -> AnyCodec {
        Protocol::Bolt.codec(CodecConfig::default())
    }

    fn decode(codec: &mut AnyCodec, bytes: &[u8]) -> Frame {
        codec
            .decode(&mut BytesMut::from(bytes))
            .unwrap()
            .expect("a whole frame")
    }

    /// A mock of the RPC proxy: the request through the chain, then to
    /// an "upstream" that answers with `upstream_answer`, then the
    /// response through the chain. What the client gets, and whether the
    /// upstream was asked.
    fn exchange(filters: &mut RpcFilters, upstream_answer: &[u8]) -> (Option<Frame>, bool) {
        let mut codec = bolt();
        let mut request = decode(&mut codec, &bolt::fixtures::BOLT_REQUEST_PROTOBUF);
        match filters.request(&mut request, &codec) {
            RpcFlow::Answer(answer) => return (Some(*answer), false),
            RpcFlow::Drop => return (None, false),
            RpcFlow::Forward => {}
        }
        let mut upstream = Protocol::Bolt.upstream_codec(CodecConfig::default());
        let mut response = decode(&mut upstream, upstream_answer);
        match filters.response(&mut response, &request, &codec) {
            RpcFlow::Answer(answer) => (Some(*answer), true),
            RpcFlow::Drop => (None, true),
            RpcFlow::Forward => (Some(response), true),
        }
    }

    #[test]
    fn frames_pass_in_order_and_back_in_reverse() {
        let (mut filters, log) = chain(&[("a", None), ("b", None)]);
        let (got, asked) = exchange(&mut filters, &bolt::fixtures::BOLT_RESPONSE_PROTOBUF);
        assert!(asked);
        let got = got.unwrap();
        assert_eq!(
            got.as_bytes(),
            &bolt::fixtures::BOLT_RESPONSE_PROTOBUF,
            "passed through unchanged"
        );
        assert_eq!(
            *log.lock(),
            [
                "a request status=None",
                "b request status=None",
                "b response status=Some(0)",
                "a response status=Some(0)"
            ]
        );
        assert!(filters.moves());
    }

    #[test]
    fn an_answer_to_a_request_is_the_protocols_error() {
        let (mut filters, log) = chain(&[
            ("a", None),
            ("b", Some(("request", ErrorKind::Overloaded))),
            ("c", None),
        ]);
        let (got, asked) = exchange(&mut filters, &bolt::fixtures::BOLT_RESPONSE_PROTOBUF);
        assert!(!asked, "the upstream was not asked");
        let got = got.unwrap();
        let request = decode(&mut bolt(), &bolt::fixtures::BOLT_REQUEST_PROTOBUF);
        assert_eq!(got, bolt().hijack(&request, ErrorKind::Overloaded));
        assert!(got.is_response());
        assert_eq!(got.request_id(), request.request_id());
        assert_ne!(got.status(), Some(0));
        let overloaded = got.status();
        assert_eq!(
            *log.lock(),
            [
                "a request status=None".to_string(),
                "b request status=None".to_string(),
                format!("a response status={overloaded:?}"),
            ]
        );
    }

    #[test]
    fn an_answer_to_a_response_replaces_it_with_the_clients_id() {
        let (mut filters, log) = chain(&[
            ("a", None),
            ("b", Some(("response", ErrorKind::BadResponse))),
        ]);
        let mut codec = bolt();
        let mut request = decode(&mut codec, &bolt::fixtures::BOLT_REQUEST_PROTOBUF);
        assert_eq!(filters.request(&mut request, &codec), RpcFlow::Forward);
        let mut response = decode(&mut bolt(), &bolt::fixtures::BOLT_RESPONSE_PROTOBUF);
        response.set_request_id(RequestId(77)).unwrap();
        let RpcFlow::Answer(answer) = filters.response(&mut response, &request, &codec) else {
            panic!("b answers");
        };
        assert_eq!(answer.request_id(), RequestId(77));
        let mut expected = codec.hijack(&request, ErrorKind::BadResponse);
        expected.set_request_id(RequestId(77)).unwrap();
        assert_eq!(*answer, expected);
        let log = log.lock();
        assert_eq!(log.len(), 4, "{log:?}");
        assert_eq!(log[3], format!("a response status={:?}", expected.status()));
    }

    #[test]
    fn an_answered_oneway_is_dropped() {
        let (mut filters, _) = chain(&[("a", Some(("request", ErrorKind::Overloaded)))]);
        let mut codec = Protocol::Tars.codec(CodecConfig::default());
        let mut oneway = decode(&mut codec, &tars::fixtures::TARS_NODE_REQUEST_ONEWAY);
        assert!(!oneway.expects_response());
        assert_eq!(filters.request(&mut oneway, &codec), RpcFlow::Drop);
    }

    #[test]
    fn an_empty_chain_forwards() {
        let chain = RpcChain::default();
        assert!(chain.is_empty());
        let mut filters = chain.connection(&ConnInfo {
            listener: Arc::from("l"),
            source: None,
            local: None,
        });
        let (got, asked) = exchange(&mut filters, &bolt::fixtures::BOLT_RESPONSE_PROTOBUF);
        assert!(asked);
        assert_eq!(
            got.unwrap().as_bytes(),
            &bolt::fixtures::BOLT_RESPONSE_PROTOBUF
        );
    }
}
