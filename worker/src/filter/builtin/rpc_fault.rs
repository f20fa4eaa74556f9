//! `rpc_fault`: an RPC filter that answers requests for a service (and,
//! optionally, one of its methods) with the protocol's own error instead
//! of routing them — fault injection's abort (issue 15), and a way to
//! take a service out of reach at the proxy.
//!
//! The answer is the codec's hijack for the configured [`ErrorKind`], so
//! a Bolt client reads a Bolt error status, a Dubbo client a Dubbo error
//! response, and so on. With a `percentage` below 100, each matching
//! request rolls for it (as `fault`'s abort does) and the others are
//! routed.

use crate::codec::{ErrorKind, Frame};
use crate::filter::builtin::fault::roll;
use crate::filter::rpc::{RpcAction, RpcFilter, RpcFrameFilter};
use crate::filter::{ConnInfo, Mobility};

/// Answers matching requests with an error.
#[derive(Debug, Clone)]
pub(crate) struct RpcFault {
    pub service: String,
    /// `None`: every method of the service.
    pub method: Option<String>,
    pub error: ErrorKind,
    /// Of the matching requests, the share answered (0 to 100).
    pub percentage: u8,
}

impl RpcFilter for RpcFault {
    fn name(&self) -> &'static str {
        "rpc_fault"
    }

    fn mobility(&self) -> Mobility {
        Mobility::Moves
    }

    fn connection(&self, _conn: &ConnInfo) -> Box<dyn RpcFrameFilter> {
        Box::new(self.clone())
    }
}

impl RpcFrameFilter for RpcFault {
    fn on_request(&mut self, request: &mut Frame) -> RpcAction {
        let attributes = request.attributes();
        let service = attributes.service.as_deref() == Some(self.service.as_str());
        let method = self
            .method
            .as_deref()
            .is_none_or(|m| attributes.method.as_deref() == Some(m));
        if service && method && roll(self.percentage) {
            RpcAction::Respond(self.error)
        } else {
            RpcAction::Continue
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{CodecConfig, Protocol, bolt, dubbo, tars};
    use crate::filter::rpc::{RpcChain, RpcFlow};
    use bytes::BytesMut;
    use std::sync::Arc;

    fn request(protocol: Protocol, bytes: &[u8]) -> (Frame, crate::codec::AnyCodec) {
        let mut codec = protocol.codec(CodecConfig::default());
        let frame = codec.decode(&mut BytesMut::from(bytes)).unwrap().unwrap();
        (frame, codec)
    }

    fn flow(fault: RpcFault, protocol: Protocol, bytes: &[u8]) -> RpcFlow {
        let chain = RpcChain::new(vec![Arc::new(fault)]);
        let mut filters = chain.connection(&ConnInfo {
            listener: Arc::from("l"),
            source: None,
            local: None,
        });
        let (mut frame, codec) = request(protocol, bytes);
        filters.request(&mut frame, &codec)
    }

    #[test]
    fn answers_the_service_with_the_protocols_error() {
        for (protocol, bytes) in [
            (Protocol::Bolt, &bolt::fixtures::BOLT_REQUEST_PROTOBUF[..]),
            (
                Protocol::Dubbo,
                &dubbo::fixtures::DUBBO_REQUEST_NOTIFY_JOB[..],
            ),
            (Protocol::Tars, &tars::fixtures::TARS_REQUEST_ECHO[..]),
        ] {
            let (frame, codec) = request(protocol, bytes);
            let service = frame.attributes().service.clone().expect("a service");
            let method = frame.attributes().method.clone();
            let fault = RpcFault {
                service: service.clone(),
                method,
                error: ErrorKind::Unavailable,
                percentage: 100,
            };
            let RpcFlow::Answer(answer) = flow(fault, protocol, bytes) else {
                panic!("{protocol:?}: answered");
            };
            assert_eq!(
                *answer,
                codec.hijack(&frame, ErrorKind::Unavailable),
                "{protocol:?}"
            );
            assert_eq!(answer.request_id(), frame.request_id());

            // Another service, or another method of it, is routed.
            let other = RpcFault {
                service: format!("{service}.Other"),
                method: None,
                error: ErrorKind::Unavailable,
                percentage: 100,
            };
            assert_eq!(
                flow(other, protocol, bytes),
                RpcFlow::Forward,
                "{protocol:?}"
            );
            let other_method = RpcFault {
                service,
                method: Some("no-such-method".into()),
                error: ErrorKind::Unavailable,
                percentage: 100,
            };
            assert_eq!(flow(other_method, protocol, bytes), RpcFlow::Forward);
            let never = RpcFault {
                service: frame.attributes().service.clone().expect("a service"),
                method: None,
                error: ErrorKind::Unavailable,
                percentage: 0,
            };
            assert_eq!(flow(never, protocol, bytes), RpcFlow::Forward);
        }
    }
}
