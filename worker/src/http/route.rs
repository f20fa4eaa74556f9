//! Picking what serves an HTTP request: routes in config order, each a set
//! of conditions (host, path, method, headers), the first match deciding.

use std::time::Duration;

use baton_config::{ClusterId, HttpAction, HttpRoute, PathMatch, Target};
use regex::Regex;

use crate::codec::http1::Head;
use crate::filter::http::HttpChain;
use crate::http::HttpListener;
use crate::http::error::SetupError;

/// A route with its regex compiled and its filters built.
#[derive(Debug)]
pub struct Compiled {
    pub route: HttpRoute,
    regex: Option<Regex>,
    /// Its own HTTP filters, run after the listener's.
    pub(crate) filters: HttpChain,
    /// Its `name`, shared with each request's filters.
    pub(crate) name: Option<std::sync::Arc<str>>,
}

impl Compiled {
    pub fn new(route: HttpRoute) -> Result<Compiled, SetupError> {
        let regex = match &route.path {
            PathMatch::Regex(r) => Some(Regex::new(r)?),
            _ => None,
        };
        let filters = crate::filter::config::http_chain(&route.filters)?;
        let name = route.name.as_deref().map(std::sync::Arc::from);
        Ok(Compiled {
            route,
            regex,
            filters,
            name,
        })
    }

    /// Whether a request it takes has filters other than the listener's:
    /// its own, or listener filters it turns off.
    pub(crate) fn has_filters(&self) -> bool {
        !self.filters.is_empty() || !self.route.disabled_filters.is_empty()
    }

    fn matches(&self, host: Option<&str>, head: &Head) -> bool {
        let r = &self.route;
        let host_ok = r.hosts.is_empty()
            || host.is_some_and(|h| r.hosts.iter().any(|pattern| host_matches(pattern, h)));
        let path = head.path();
        let path_ok = match &r.path {
            PathMatch::Any => true,
            PathMatch::Exact(p) => path == p,
            PathMatch::Prefix(p) => path.starts_with(p.as_str()),
            PathMatch::Regex(_) => self.regex.as_ref().is_some_and(|re| re.is_match(path)),
        };
        let method_ok = r.methods.is_empty()
            || r.methods
                .iter()
                .any(|m| m.eq_ignore_ascii_case(&head.method));
        let headers_ok = r
            .headers
            .iter()
            .all(|(name, value)| head.header(name).is_some_and(|v| v == value.as_bytes()));
        host_ok && path_ok && method_ok && headers_ok
    }
}

/// `example.com` matches itself; `*.example.com` matches any subdomain
/// (not the bare domain); `*` matches everything.
fn host_matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix('*') {
        Some("") => true,
        Some(suffix) => host.len() > suffix.len() && host.ends_with(suffix),
        None => pattern == host,
    }
}

/// The first route matching, if any, and its position.
pub(crate) fn pick<'a>(routes: &'a [Compiled], head: &Head) -> Option<(usize, &'a HttpRoute)> {
    let host = head.host();
    routes
        .iter()
        .position(|r| r.matches(host.as_deref(), head))
        .map(|at| (at, &routes[at].route))
}

/// The route that takes `head`, with its filters.
pub(crate) fn pick_compiled<'a>(routes: &'a [Compiled], head: &Head) -> Option<&'a Compiled> {
    pick(routes, head).map(|(at, _)| &routes[at])
}

/// A weighted choice: `roll` in `0..sum(weights)`.
pub(crate) fn weighted(clusters: &[(ClusterId, u32)], roll: u64) -> Option<ClusterId> {
    let mut roll = roll;
    for (cluster, weight) in clusters {
        if roll < u64::from(*weight) {
            return Some(*cluster);
        }
        roll -= u64::from(*weight);
    }
    None
}

/// What a request gets once routed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decision<'a> {
    /// Forwarded to cluster `cluster`, within `timeout`, with up to
    /// `retries` retries (HTTP/1.1 only).
    Forward {
        cluster: ClusterId,
        timeout: Duration,
        retries: u32,
    },
    /// Answered by the proxy: a direct response (its body's
    /// `{generation}` and `{pid}` filled in), a redirect, or a 404 when no
    /// route matches and the listener has no cluster.
    Answer {
        status: u16,
        content_type: &'a str,
        location: Option<&'a str>,
        body: String,
    },
}

/// Routes `head` on `listener`, for the worker of generation `generation`.
/// One decision for HTTP/1.1 and HTTP/2 alike; with it, the position of
/// the route that matched (`None`: none did), which labels the request's
/// duration.
pub(crate) fn decide<'a>(
    listener: &'a HttpListener,
    head: &Head,
    generation: u32,
) -> (Option<usize>, Decision<'a>) {
    let picked = pick(&listener.routes, head);
    (
        picked.map(|(at, _)| at),
        decision(listener, picked.map(|(_, r)| r), generation),
    )
}

/// What `route` (the one that matched, if any) makes of a request.
fn decision<'a>(
    listener: &'a HttpListener,
    route: Option<&'a HttpRoute>,
    generation: u32,
) -> Decision<'a> {
    let timeout = route
        .and_then(|r| r.timeout)
        .unwrap_or(listener.request_timeout);
    let retries = route.map_or(0, |r| r.retries);
    let forward = |cluster| Decision::Forward {
        cluster,
        timeout,
        retries,
    };
    match (route.map(|r| &r.action), &listener.default) {
        (Some(HttpAction::Cluster(c)), _) | (None, Target::Cluster(c)) => forward(*c),
        (Some(action @ HttpAction::Weighted(clusters)), _) => {
            let roll = rand::random::<u64>() % total_weight(action).max(1);
            forward(weighted(clusters, roll).unwrap_or(clusters[0].0))
        }
        (
            Some(HttpAction::Direct {
                status,
                body,
                content_type,
            }),
            _,
        ) => Decision::Answer {
            status: *status,
            content_type,
            location: None,
            body: body
                .replace("{generation}", &generation.to_string())
                .replace("{pid}", &std::process::id().to_string()),
        },
        (Some(HttpAction::Redirect { location, status }), _) => Decision::Answer {
            status: *status,
            content_type: "text/plain",
            location: Some(location),
            body: String::new(),
        },
        (None, _) => Decision::Answer {
            status: 404,
            content_type: "text/plain",
            location: None,
            body: "no route\n".to_string(),
        },
    }
}

/// Total weight of a weighted action.
pub(crate) fn total_weight(action: &HttpAction) -> u64 {
    match action {
        HttpAction::Weighted(c) => c.iter().map(|(_, w)| u64::from(*w)).sum(),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::http1::{Limits, parse_request};

    fn head(text: &str) -> Head {
        let limits = Limits {
            max_header_bytes: 4096,
            max_headers: 32,
        };
        parse_request(&mut bytes::BytesMut::from(text.as_bytes()), limits)
            .unwrap()
            .unwrap()
    }

    fn route(hosts: &[&str], path: PathMatch, cluster: usize) -> Compiled {
        let cluster = ClusterId::new(cluster);
        Compiled::new(HttpRoute {
            name: None,
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
            path,
            methods: Vec::new(),
            headers: Vec::new(),
            action: HttpAction::Cluster(cluster),
            timeout: None,
            retries: 0,
            filters: Vec::new(),
            disabled_filters: Vec::new(),
        })
        .unwrap()
    }

    fn cluster_of(routes: &[Compiled], text: &str) -> Option<usize> {
        match pick(routes, &head(text))?.1.action {
            HttpAction::Cluster(c) => Some(c.index()),
            _ => None,
        }
    }

    fn listener(actions: Vec<(PathMatch, HttpAction)>, default: Target) -> HttpListener {
        let routes = actions
            .into_iter()
            .map(|(path, action)| {
                Compiled::new(HttpRoute {
                    name: None,
                    hosts: Vec::new(),
                    path,
                    methods: Vec::new(),
                    headers: Vec::new(),
                    action,
                    timeout: Some(Duration::from_secs(3)),
                    retries: 2,
                    filters: Vec::new(),
                    disabled_filters: Vec::new(),
                })
                .unwrap()
            })
            .collect();
        HttpListener {
            name: "web".into(),
            route_filters: false,
            routes_move: true,
            routes,
            default,
            request_timeout: Duration::from_secs(30),
            timeouts: crate::http::Timeouts {
                header: Duration::from_secs(10),
                keepalive: Duration::from_secs(75),
                body: Duration::from_secs(30),
            },
            limits: Limits {
                max_header_bytes: 4096,
                max_headers: 32,
            },
            proto: "http",
        }
    }

    #[test]
    fn decisions_forward_answer_or_404() {
        let get = |path: &str| head(&format!("GET {path} HTTP/1.1\r\nHost: a\r\n\r\n"));
        let routes = vec![
            (
                PathMatch::Exact("/api".into()),
                HttpAction::Cluster(ClusterId::new(1)),
            ),
            (
                PathMatch::Exact("/hello".into()),
                HttpAction::Direct {
                    status: 200,
                    body: "gen {generation} pid {pid}".into(),
                    content_type: "text/plain".into(),
                },
            ),
            (
                PathMatch::Exact("/old".into()),
                HttpAction::Redirect {
                    location: "https://new/".into(),
                    status: 301,
                },
            ),
        ];
        let with_default = listener(routes.clone(), Target::Cluster(ClusterId::new(0)));
        assert_eq!(
            decide(&with_default, &get("/api"), 7).1,
            Decision::Forward {
                cluster: ClusterId::new(1),
                timeout: Duration::from_secs(3),
                retries: 2
            },
            "a route's own timeout and retries"
        );
        assert_eq!(
            decide(&with_default, &get("/other"), 7).1,
            Decision::Forward {
                cluster: ClusterId::new(0),
                timeout: Duration::from_secs(30),
                retries: 0
            },
            "the listener's cluster and timeout when no route matches"
        );
        assert_eq!(
            decide(&with_default, &get("/hello"), 7).1,
            Decision::Answer {
                status: 200,
                content_type: "text/plain",
                location: None,
                body: format!("gen 7 pid {}", std::process::id()),
            }
        );
        assert_eq!(
            decide(&with_default, &get("/old"), 7).1,
            Decision::Answer {
                status: 301,
                content_type: "text/plain",
                location: Some("https://new/"),
                body: String::new(),
            }
        );
        assert_eq!(decide(&with_default, &get("/api"), 7).0, Some(0));
        assert_eq!(decide(&with_default, &get("/old"), 7).0, Some(2));
        assert_eq!(decide(&with_default, &get("/other"), 7).0, None);
        let without = listener(routes, Target::NotFound);
        assert!(matches!(
            decide(&without, &get("/other"), 7).1,
            Decision::Answer { status: 404, .. }
        ));
    }

    #[test]
    fn hosts_paths_and_order() {
        let routes = vec![
            route(&["api.example.com"], PathMatch::Exact("/health".into()), 1),
            route(&["*.example.com"], PathMatch::Prefix("/v1/".into()), 2),
            route(&[], PathMatch::Regex("^/u/[0-9]+$".into()), 3),
            route(&["example.com"], PathMatch::Any, 4),
        ];
        assert_eq!(
            cluster_of(
                &routes,
                "GET /health HTTP/1.1\r\nHost: API.example.com:443\r\n\r\n"
            ),
            Some(1)
        );
        assert_eq!(
            cluster_of(
                &routes,
                "GET /v1/x?q HTTP/1.1\r\nHost: api.example.com\r\n\r\n"
            ),
            Some(2)
        );
        assert_eq!(
            cluster_of(&routes, "GET /v1/x HTTP/1.1\r\nHost: example.com\r\n\r\n"),
            Some(4),
            "no bare domain for *."
        );
        assert_eq!(
            cluster_of(&routes, "GET /u/42 HTTP/1.1\r\nHost: other\r\n\r\n"),
            Some(3)
        );
        assert_eq!(
            cluster_of(&routes, "GET /u/x HTTP/1.1\r\nHost: other\r\n\r\n"),
            None
        );
    }

    #[test]
    fn methods_and_headers() {
        let mut r = route(&[], PathMatch::Any, 7);
        r.route.methods = vec!["GET".into()];
        r.route.headers = vec![("x-canary".into(), "1".into())];
        let routes = vec![r];
        assert_eq!(
            cluster_of(&routes, "GET / HTTP/1.1\r\nHost: h\r\nX-Canary: 1\r\n\r\n"),
            Some(7)
        );
        assert_eq!(
            cluster_of(&routes, "POST / HTTP/1.1\r\nHost: h\r\nX-Canary: 1\r\n\r\n"),
            None
        );
        assert_eq!(
            cluster_of(&routes, "GET / HTTP/1.1\r\nHost: h\r\nX-Canary: 2\r\n\r\n"),
            None
        );
    }

    #[test]
    fn weights_split_the_roll() {
        let (a, b) = (ClusterId::new(1), ClusterId::new(2));
        let w = [(a, 90), (b, 10)];
        assert_eq!(weighted(&w, 0), Some(a));
        assert_eq!(weighted(&w, 89), Some(a));
        assert_eq!(weighted(&w, 90), Some(b));
        assert_eq!(weighted(&w, 99), Some(b));
        assert_eq!(weighted(&w, 100), None);
    }
}
