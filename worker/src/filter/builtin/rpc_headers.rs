//! `rpc_headers`: an RPC filter that sets and removes the headers of
//! requests — Bolt's header map, Dubbo's attachments — and of Bolt
//! responses (issue 15's RPC header/attachment manipulation), for one
//! service (and method) or for every request.
//!
//! The frame is rewritten in place by the codec
//! (`codec::edit`): the payload is untouched, a Bolt request routes by
//! its edited headers (a `service` set here picks the route), a Dubbo
//! request's attachments are found past its arguments. Values may hold
//! the same placeholders as HTTP `headers` (`Template`):
//! `%DOWNSTREAM_REMOTE_ADDRESS%`, `%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%`,
//! `%REQ(key)%` (the request's header or attachment, as it reached this
//! filter; keys compared without case, since a template's key is kept
//! lowercase) and `%PROTOCOL%` (`bolt`, `dubbo`).
//!
//! A request whose headers cannot be edited — a Dubbo body in a
//! serialization other than hessian2, arguments this reader cannot step
//! over — is answered with the protocol's `bad_request` error rather than
//! sent on without edits its config requires (an identity it must carry,
//! a secret it must not); a response that cannot be edited (a Bolt map
//! that would outgrow its u16 length) is replaced by the `internal`
//! error. Both are logged.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::codec::{ErrorKind, Frame, HeaderOp};
use crate::filter::builtin::headers::{Context, Edit, Placeholders, expand};
use crate::filter::rpc::{RpcAction, RpcFilter, RpcFrameFilter};
use crate::filter::{ConnInfo, Mobility};

/// Header edits on RPC requests and responses.
#[derive(Debug, Clone)]
pub(crate) struct RpcHeaders {
    inner: Arc<Inner>,
    source: Option<SocketAddr>,
}

#[derive(Debug)]
struct Inner {
    service: Option<String>,
    method: Option<String>,
    /// `Set` and `Remove` only (the config has no append for a map).
    request: Vec<Edit>,
    response: Vec<Edit>,
}

impl RpcHeaders {
    pub(crate) fn new(
        service: Option<String>,
        method: Option<String>,
        request: Vec<Edit>,
        response: Vec<Edit>,
    ) -> RpcHeaders {
        RpcHeaders {
            inner: Arc::new(Inner {
                service,
                method,
                request,
                response,
            }),
            source: None,
        }
    }

    fn matches(&self, request: &Frame) -> bool {
        let attributes = request.attributes();
        let is = |want: &Option<String>, have: &Option<String>| {
            want.as_deref().is_none_or(|w| have.as_deref() == Some(w))
        };
        is(&self.inner.service, &attributes.service) && is(&self.inner.method, &attributes.method)
    }

    /// Applies `edits`, their values expanded against `request`.
    fn edit(&self, edits: &[Edit], frame: &mut Frame, request: Option<&Frame>) -> bool {
        if edits.is_empty() {
            return true;
        }
        let needs_request = edits
            .iter()
            .any(|e| e.template().is_some_and(|t| t.literal().is_none()));
        let fields = RequestFields {
            headers: if needs_request {
                request.unwrap_or(frame).editable_headers()
            } else {
                Vec::new()
            },
            protocol: frame.protocol().name(),
        };
        let ctx = Context {
            source: self.source,
            request: &fields,
        };
        let values: Vec<Cow<'_, str>> = edits
            .iter()
            .map(|e| match e.template() {
                Some(t) => match expand(t, &ctx) {
                    Cow::Borrowed(b) => String::from_utf8_lossy(b),
                    Cow::Owned(b) => Cow::Owned(String::from_utf8_lossy(&b).into_owned()),
                },
                None => Cow::Borrowed(""),
            })
            .collect();
        let ops: Vec<HeaderOp<'_>> = edits
            .iter()
            .zip(&values)
            .filter_map(|(e, v)| match e {
                Edit::Set(name, _) => Some(HeaderOp::Set(name, v)),
                Edit::Remove(name) => Some(HeaderOp::Remove(name)),
                Edit::Append(..) => None,
            })
            .collect();
        match frame.edit_headers(&ops) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "rpc_headers: the frame's headers cannot be edited");
                false
            }
        }
    }
}

/// The request's headers, for `%REQ(key)%`.
struct RequestFields {
    headers: Vec<(String, String)>,
    protocol: &'static str,
}

impl Placeholders for RequestFields {
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_bytes())
    }

    fn protocol(&self) -> &str {
        self.protocol
    }
}

impl RpcFilter for RpcHeaders {
    fn name(&self) -> &'static str {
        "rpc_headers"
    }

    fn mobility(&self) -> Mobility {
        Mobility::Moves
    }

    fn connection(&self, conn: &ConnInfo) -> Box<dyn RpcFrameFilter> {
        Box::new(RpcHeaders {
            inner: Arc::clone(&self.inner),
            source: conn.source,
        })
    }
}

impl RpcFrameFilter for RpcHeaders {
    fn on_request(&mut self, request: &mut Frame) -> RpcAction {
        if !self.matches(request) || self.edit(&self.inner.request, request, None) {
            RpcAction::Continue
        } else {
            RpcAction::Respond(ErrorKind::BadRequest)
        }
    }

    fn on_response(&mut self, response: &mut Frame, request: &Frame) -> RpcAction {
        if !self.matches(request) || self.edit(&self.inner.response, response, Some(request)) {
            RpcAction::Continue
        } else {
            RpcAction::Respond(ErrorKind::Internal)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::bolt::fixtures as bolt_fx;
    use crate::codec::dubbo::fixtures as dubbo_fx;
    use crate::codec::{AnyCodec, CodecConfig, Protocol};
    use crate::filter::builtin::headers::Template;
    use crate::filter::rpc::{RpcChain, RpcFlow};

    fn decode(protocol: Protocol, bytes: &[u8]) -> (AnyCodec, Frame) {
        let mut codec = protocol.codec(CodecConfig::default());
        let mut buf = bytes::BytesMut::from(bytes);
        let frame = codec.decode(&mut buf).unwrap().unwrap();
        (codec, frame)
    }

    fn set(name: &str, value: &str) -> Edit {
        Edit::Set(name.into(), value.parse::<Template>().unwrap())
    }

    fn conn() -> ConnInfo {
        ConnInfo {
            listener: "rpc".into(),
            source: Some("192.0.2.7:4000".parse().unwrap()),
            local: None,
        }
    }

    #[test]
    fn a_dubbo_requests_attachments_get_the_edits_with_placeholders() {
        let chain = RpcChain::new(vec![Arc::new(RpcHeaders::new(
            Some("com.raycloud.notify.api.service.NotifyJobRequest".into()),
            None,
            vec![
                set("caller", "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%"),
                set("app-was", "%REQ(dubboApplication)%"),
                Edit::Remove("a.s.t".into()),
            ],
            vec![],
        ))]);
        let (codec, mut frame) = decode(Protocol::Dubbo, &dubbo_fx::DUBBO_REQUEST_NOTIFY_JOB);
        let mut filters = chain.connection(&conn());
        assert_eq!(filters.request(&mut frame, &codec), RpcFlow::Forward);
        let headers = frame.editable_headers();
        let get = |k: &str| {
            headers
                .iter()
                .find(|(h, _)| h == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("caller"), Some("192.0.2.7"));
        assert_eq!(get("app-was"), Some("com-raycloud-admin-x"));
        assert_eq!(get("a.s.t"), None);
    }

    #[test]
    fn other_services_pass_untouched() {
        let chain = RpcChain::new(vec![Arc::new(RpcHeaders::new(
            Some("com.example.Other".into()),
            None,
            vec![set("a", "b")],
            vec![],
        ))]);
        let (codec, mut frame) = decode(Protocol::Bolt, &bolt_fx::BOLT_REQUEST_PROTOBUF);
        let mut filters = chain.connection(&conn());
        assert_eq!(filters.request(&mut frame, &codec), RpcFlow::Forward);
        assert_eq!(frame.as_bytes(), bolt_fx::BOLT_REQUEST_PROTOBUF);
    }

    #[test]
    fn a_request_that_cannot_be_edited_is_answered_bad_request() {
        let chain = RpcChain::new(vec![Arc::new(RpcHeaders::new(
            None,
            None,
            vec![set("a", "b")],
            vec![],
        ))]);
        // The same request in fastjson (serialization 6): no attachments
        // to find.
        let mut json = dubbo_fx::DUBBO_REQUEST_NOTIFY_JOB;
        json[2] = 0xc6;
        let (codec, mut frame) = decode(Protocol::Dubbo, &json);
        let mut filters = chain.connection(&conn());
        match filters.request(&mut frame, &codec) {
            RpcFlow::Answer(answer) => {
                assert_eq!(answer.request_id(), frame.request_id());
                assert_eq!(
                    answer.status(),
                    Some(i32::from(crate::codec::dubbo::status::BAD_REQUEST))
                );
            }
            other => panic!("expected an answer, got {other:?}"),
        }
    }

    #[test]
    fn bolt_responses_get_their_edits() {
        let chain = RpcChain::new(vec![Arc::new(RpcHeaders::new(
            None,
            None,
            vec![],
            vec![set("x-served-by", "baton %PROTOCOL%")],
        ))]);
        let (codec, request) = decode(Protocol::Bolt, &bolt_fx::BOLT_REQUEST_PROTOBUF);
        let (_, mut response) = decode(Protocol::Bolt, &bolt_fx::BOLT_RESPONSE_PROTOBUF);
        let mut filters = chain.connection(&conn());
        assert_eq!(
            filters.response(&mut response, &request, &codec),
            RpcFlow::Forward
        );
        assert!(
            response
                .editable_headers()
                .contains(&("x-served-by".into(), "baton bolt".into()))
        );
    }
}
