//! `rbac`: an HTTP filter that allows or denies requests by rules — Envoy's
//! RBAC filter, simplified to one policy of rules over the client's
//! address, the path, the method and a header.
//!
//! A rule matches a request when every field it gives matches: the
//! client's address is in one of its `source` ranges (an IPv4-mapped
//! IPv6 client counts as its IPv4 address; an unknown address is in no
//! range), the path (without the query) starts with its `path_prefix`,
//! the method is one of its `methods`, its `header` has exactly the
//! value given (the first value, if several). With `allow`, a request
//! matching no rule is refused; with `deny`, one matching a rule is.
//! Refused: 403 with `RBAC: access denied` (Envoy's body), before
//! routing, so the upstream never sees it.
//!
//! It looks at each request's head once and keeps nothing: it moves.

use std::net::IpAddr;
use std::sync::Arc;

use baton_config::filter::{RangePolicy, RbacRule};

use crate::filter::http::{Action, HttpFilter, HttpStreamFilter, LocalResponse, RequestHead};
use crate::filter::{ConnInfo, Mobility};

/// Allows or denies requests by rules.
#[derive(Debug, Clone)]
pub(crate) struct Rbac {
    inner: Arc<Policy>,
}

#[derive(Debug)]
struct Policy {
    action: RangePolicy,
    rules: Vec<RbacRule>,
}

impl Rbac {
    pub(crate) fn new(action: RangePolicy, rules: Vec<RbacRule>) -> Rbac {
        Rbac {
            inner: Arc::new(Policy { action, rules }),
        }
    }
}

impl Policy {
    fn allows(&self, source: Option<IpAddr>, head: &dyn RequestHead) -> bool {
        let matched = self.rules.iter().any(|rule| matches(rule, source, head));
        match self.action {
            RangePolicy::Allow => matched,
            RangePolicy::Deny => !matched,
        }
    }
}

fn matches(rule: &RbacRule, source: Option<IpAddr>, head: &dyn RequestHead) -> bool {
    let source_ok = rule.source.is_empty()
        || source.is_some_and(|ip| rule.source.iter().any(|r| r.contains(ip)));
    let path_ok = rule
        .path_prefix
        .as_deref()
        .is_none_or(|p| head.path().starts_with(p));
    let method_ok = rule.methods.is_empty() || rule.methods.iter().any(|m| m == head.method());
    let header_ok = rule
        .header
        .as_ref()
        .is_none_or(|(name, value)| head.get(name) == Some(value.as_bytes()));
    source_ok && path_ok && method_ok && header_ok
}

impl HttpFilter for Rbac {
    fn name(&self) -> &'static str {
        "rbac"
    }

    fn mobility(&self) -> Mobility {
        Mobility::Moves
    }

    fn stream(&self, conn: &ConnInfo) -> Box<dyn HttpStreamFilter> {
        Box::new(RbacStream {
            policy: Arc::clone(&self.inner),
            source: conn.source.map(|s| s.ip()),
        })
    }
}

struct RbacStream {
    policy: Arc<Policy>,
    source: Option<IpAddr>,
}

impl HttpStreamFilter for RbacStream {
    fn on_request_headers(&mut self, head: &mut dyn RequestHead, _end_of_stream: bool) -> Action {
        if self.policy.allows(self.source, head) {
            return Action::Continue;
        }
        match LocalResponse::new(403, &b"RBAC: access denied\n"[..]) {
            Ok(answer) => Action::Respond(Box::new(answer)),
            // A constant status: cannot be refused.
            Err(e) => {
                tracing::error!(error = %e, "rbac: could not build its answer");
                Action::Continue
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::http::HttpChain;
    use crate::filter::http::mock::{exchange, request, response};

    fn rule() -> RbacRule {
        RbacRule::default()
    }

    /// The status the mock exchange's client (10.0.0.1) gets for a
    /// request (`method`, `path`, `headers`) under `action` and `rules`.
    fn status(
        action: RangePolicy,
        rules: &[RbacRule],
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> u16 {
        let chain = HttpChain::new(vec![Arc::new(Rbac::new(action, rules.to_vec()))]);
        let mut sent = request(path, headers);
        sent.head.method = method.into();
        let run = exchange(&chain, sent, response(200, &[]));
        assert_eq!(
            run.upstream_saw.is_some(),
            run.client_got.head.status == 200
        );
        run.client_got.head.status
    }

    #[test]
    fn a_rule_matches_when_all_its_fields_do() {
        let admin = RbacRule {
            source: vec!["10.0.0.0/8".parse().unwrap()],
            path_prefix: Some("/admin".into()),
            methods: vec!["GET".into(), "HEAD".into()],
            header: Some(("x-role".into(), "ops".into())),
        };
        let allow = |m, p, h: &[(&str, &str)]| {
            status(RangePolicy::Allow, std::slice::from_ref(&admin), m, p, h)
        };
        let ops = [("x-role", "ops")];
        assert_eq!(allow("GET", "/admin/users?x=1", &ops), 200);
        assert_eq!(allow("POST", "/admin/users", &ops), 403, "method");
        assert_eq!(allow("GET", "/public", &ops), 403, "path");
        assert_eq!(allow("GET", "/admin", &[("x-role", "dev")]), 403, "header");
        assert_eq!(allow("GET", "/admin", &[]), 403, "no header");
        let elsewhere = RbacRule {
            source: vec!["192.0.2.0/24".parse().unwrap()],
            ..admin.clone()
        };
        assert_eq!(
            status(RangePolicy::Allow, &[elsewhere], "GET", "/admin", &ops),
            403,
            "source"
        );
    }

    #[test]
    fn allow_passes_only_matches_and_deny_refuses_only_them() {
        let health = RbacRule {
            path_prefix: Some("/health".into()),
            ..rule()
        };
        let posts = RbacRule {
            methods: vec!["POST".into()],
            ..rule()
        };
        let rules = [health, posts];
        let allow = |m, p| status(RangePolicy::Allow, &rules, m, p, &[]);
        assert_eq!(allow("GET", "/health"), 200);
        assert_eq!(allow("POST", "/x"), 200, "any rule will do");
        assert_eq!(allow("GET", "/x"), 403);
        let deny = |m, p| status(RangePolicy::Deny, &rules, m, p, &[]);
        assert_eq!(deny("GET", "/health"), 403);
        assert_eq!(deny("POST", "/x"), 403);
        assert_eq!(deny("GET", "/x"), 200);
    }

    #[test]
    fn the_answer_is_a_403_the_upstream_never_sees() {
        let chain = HttpChain::new(vec![Arc::new(Rbac::new(
            RangePolicy::Deny,
            vec![RbacRule {
                source: vec!["10.0.0.1".parse().unwrap()],
                ..rule()
            }],
        ))]);
        let run = exchange(&chain, request("/", &[]), response(200, &[]));
        assert!(run.upstream_saw.is_none());
        assert_eq!(run.client_got.head.status, 403);
        assert_eq!(run.client_got.body, [b"RBAC: access denied\n".to_vec()]);
    }
}
