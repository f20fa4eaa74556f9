//! `cors`: an HTTP filter for cross-origin requests — Envoy's CORS filter.
//!
//! A request with an `origin` header is a CORS request; its origin is
//! allowed when `allow_origins` names it exactly (as browsers send it:
//! scheme, host, port) or holds `*`.
//!
//! * **Preflight** — `OPTIONS` with `origin` and
//!   `access-control-request-method`, from an allowed origin: answered
//!   here with 204 (the upstream is not asked): `access-control-allow-origin`
//!   (the request's origin), `-allow-methods`, `-allow-headers`,
//!   `-max-age` (seconds) when configured, `-allow-credentials: true` when
//!   allowed.
//! * **Other requests** from an allowed origin go on, and their response
//!   (the upstream's or a local one from a filter after this one) gets
//!   `access-control-allow-origin`, `-allow-credentials`,
//!   `-expose-headers`.
//! * **A disallowed origin** gets no CORS headers at all and is passed on
//!   (a preflight too): the browser then blocks the response. The proxy
//!   does not refuse it — refusing is a server's business, and a client
//!   that is not a browser ignores CORS anyway.
//!
//! The allowed origin is echoed rather than `*` (as Envoy does; `*` is
//! not accepted with credentials), so each answer also gets
//! `vary: origin`: a cache keeps one per origin.
//!
//! It keeps the request's origin in its stream, nothing per connection:
//! it moves.

use std::sync::Arc;

use baton_config::filter::CorsPolicy;

use crate::filter::http::{
    Action, HeaderBlock, HeaderError, HttpFilter, HttpStreamFilter, LocalResponse, RequestHead,
    ResponseHead,
};
use crate::filter::{ConnInfo, Mobility};

/// Answers preflights and marks responses to allowed origins.
#[derive(Debug, Clone)]
pub(crate) struct Cors {
    policy: Arc<Prepared>,
}

/// The policy with its header values joined once.
#[derive(Debug)]
struct Prepared {
    origins: Vec<String>,
    any_origin: bool,
    credentials: bool,
    methods: Option<String>,
    headers: Option<String>,
    expose: Option<String>,
    max_age: Option<String>,
}

impl Cors {
    pub(crate) fn new(policy: &CorsPolicy) -> Cors {
        let joined = |list: &[String]| (!list.is_empty()).then(|| list.join(", "));
        Cors {
            policy: Arc::new(Prepared {
                any_origin: policy.allow_origins.iter().any(|o| o == "*"),
                origins: policy.allow_origins.clone(),
                credentials: policy.allow_credentials,
                methods: joined(&policy.allow_methods),
                headers: joined(&policy.allow_headers),
                expose: joined(&policy.expose_headers),
                max_age: policy.max_age.map(|a| a.as_secs().to_string()),
            }),
        }
    }
}

impl Prepared {
    fn allows(&self, origin: &[u8]) -> bool {
        self.any_origin || self.origins.iter().any(|o| o.as_bytes() == origin)
    }

    /// The headers every answer to an allowed origin gets.
    fn mark(&self, block: &mut dyn HeaderBlock, origin: &[u8]) -> Result<(), HeaderError> {
        block.set("access-control-allow-origin", origin)?;
        if self.credentials {
            block.set("access-control-allow-credentials", b"true")?;
        }
        block.append("vary", b"origin")
    }

    /// The 204 to a preflight from `origin`.
    fn preflight(&self, origin: &[u8]) -> Result<LocalResponse, HeaderError> {
        let mut answer = LocalResponse::new(204, &b""[..])?;
        self.mark(&mut answer.headers, origin)?;
        let optional = [
            ("access-control-allow-methods", &self.methods),
            ("access-control-allow-headers", &self.headers),
            ("access-control-max-age", &self.max_age),
        ];
        for (name, value) in optional {
            if let Some(value) = value {
                answer.headers.set(name, value.as_bytes())?;
            }
        }
        Ok(answer)
    }
}

impl HttpFilter for Cors {
    fn name(&self) -> &'static str {
        "cors"
    }

    fn mobility(&self) -> Mobility {
        Mobility::Moves
    }

    fn stream(&self, _conn: &ConnInfo) -> Box<dyn HttpStreamFilter> {
        Box::new(CorsStream {
            policy: Arc::clone(&self.policy),
            origin: None,
        })
    }
}

struct CorsStream {
    policy: Arc<Prepared>,
    /// The request's origin, when it is allowed.
    origin: Option<Vec<u8>>,
}

impl HttpStreamFilter for CorsStream {
    fn on_request_headers(&mut self, head: &mut dyn RequestHead, _end_of_stream: bool) -> Action {
        let Some(origin) = head.get("origin").filter(|o| self.policy.allows(o)) else {
            return Action::Continue;
        };
        let preflight =
            head.method() == "OPTIONS" && head.get("access-control-request-method").is_some();
        if !preflight {
            self.origin = Some(origin.to_vec());
            return Action::Continue;
        }
        match self.policy.preflight(origin) {
            Ok(answer) => Action::Respond(Box::new(answer)),
            // The origin came in a header, so it is a valid value.
            Err(e) => {
                tracing::debug!(error = %e, "cors: preflight not answered");
                Action::Continue
            }
        }
    }

    fn on_response_headers(&mut self, head: &mut dyn ResponseHead, _end_of_stream: bool) -> Action {
        let Some(origin) = self.origin.take() else {
            return Action::Continue;
        };
        let mut marked = self.policy.mark(head, &origin);
        if let (Ok(()), Some(expose)) = (&marked, &self.policy.expose) {
            marked = head.set("access-control-expose-headers", expose.as_bytes());
        }
        if let Err(e) = marked {
            tracing::debug!(error = %e, "cors: response not marked");
        }
        Action::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::http::HttpChain;
    use crate::filter::http::mock::{Run, exchange, request, response};
    use std::time::Duration;

    fn chain(origins: &[&str], credentials: bool) -> HttpChain {
        let policy = CorsPolicy {
            allow_origins: origins.iter().map(|o| o.to_string()).collect(),
            allow_methods: vec!["GET".into(), "PUT".into()],
            allow_headers: vec!["x-token".into()],
            expose_headers: vec!["x-trace".into(), "x-cost".into()],
            max_age: Some(Duration::from_secs(600)),
            allow_credentials: credentials,
        };
        HttpChain::new(vec![Arc::new(Cors::new(&policy))])
    }

    fn send(chain: &HttpChain, method: &str, headers: &[(&str, &str)]) -> Run {
        let mut sent = request("/", headers);
        sent.head.method = method.into();
        exchange(chain, sent, response(200, &[]))
    }

    fn header<'a>(run: &'a Run, name: &str) -> Option<&'a str> {
        run.client_got
            .head
            .header(name)
            .map(|v| std::str::from_utf8(v).unwrap())
    }

    const PREFLIGHT: [(&str, &str); 2] = [
        ("origin", "https://app.example"),
        ("access-control-request-method", "PUT"),
    ];

    #[test]
    fn a_preflight_from_an_allowed_origin_is_answered_here() {
        let run = send(
            &chain(&["https://app.example"], true),
            "OPTIONS",
            &PREFLIGHT,
        );
        assert!(run.upstream_saw.is_none());
        assert_eq!(run.client_got.head.status, 204);
        for (name, value) in [
            ("access-control-allow-origin", "https://app.example"),
            ("access-control-allow-methods", "GET, PUT"),
            ("access-control-allow-headers", "x-token"),
            ("access-control-max-age", "600"),
            ("access-control-allow-credentials", "true"),
            ("vary", "origin"),
        ] {
            assert_eq!(header(&run, name), Some(value), "{name}");
        }
    }

    #[test]
    fn responses_to_allowed_origins_are_marked() {
        let run = send(
            &chain(&["*"], false),
            "GET",
            &[("origin", "https://other.example")],
        );
        assert!(run.upstream_saw.is_some());
        assert_eq!(run.client_got.head.status, 200);
        assert_eq!(
            header(&run, "access-control-allow-origin"),
            Some("https://other.example")
        );
        assert_eq!(
            header(&run, "access-control-expose-headers"),
            Some("x-trace, x-cost")
        );
        assert_eq!(header(&run, "access-control-allow-credentials"), None);
        assert_eq!(header(&run, "access-control-allow-methods"), None);
        // An OPTIONS without the preflight header is an ordinary request.
        let run = send(
            &chain(&["*"], false),
            "OPTIONS",
            &[("origin", "https://other.example")],
        );
        assert!(run.upstream_saw.is_some());
    }

    #[test]
    fn other_origins_and_plain_requests_get_nothing() {
        let chain = chain(&["https://app.example"], true);
        for (method, headers) in [
            (
                "OPTIONS",
                &[("origin", "https://evil.example"), PREFLIGHT[1]][..],
            ),
            ("GET", &[("origin", "https://app.example.evil")][..]),
            ("GET", &[][..]),
        ] {
            let run = send(&chain, method, headers);
            assert!(run.upstream_saw.is_some(), "{method} {headers:?}");
            assert_eq!(header(&run, "access-control-allow-origin"), None);
            assert_eq!(header(&run, "vary"), None);
        }
    }
}
