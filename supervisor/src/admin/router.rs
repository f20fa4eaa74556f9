//! Path and method to handler; the mutating calls pass [`auth`] first.

use tokio::sync::oneshot;

use super::auth::{self, Access};
use super::http::{Request, Response};
use super::{AdminState, api};
use crate::control::Command;
use crate::control::proto;

/// The status page, served as is: self-contained (inline CSS and JS, no
/// external assets), it fetches the JSON endpoints itself.
const PAGE: &str = include_str!("page.html");

const PATHS: &str = "/, /metrics, /status, /ready, /config_dump, /listeners, /clusters, \
                     /generations, /logging, /drain";

/// Answers one request that came in on an address with `access`.
pub(crate) fn route(request: &Request, state: &AdminState, access: Access) -> Response {
    let text = wants_text(request);
    let get = request.method == "GET";
    let post = request.method == "POST";
    let path = request.path.as_str();
    match path {
        "/" | "/metrics" | "/status" | "/ready" | "/config_dump" | "/listeners" | "/clusters"
        | "/generations"
            if !get =>
        {
            not_allowed(path, "GET", text)
        }
        "/" => Response::new(200, "text/html; charset=utf-8", PAGE.to_string()),
        "/metrics" => Response::new(
            200,
            "text/plain; version=0.0.4; charset=utf-8",
            state.metrics.lock().render(),
        ),
        "/status" => match serde_json::to_value(&*state.status.borrow()) {
            Ok(json) => Response::json(200, &json),
            Err(e) => Response::text(500, e.to_string()),
        },
        "/ready" => {
            let serving = state
                .status
                .borrow()
                .generations
                .iter()
                .any(|g| g.phase == "serving");
            if serving {
                Response::text(200, "ready")
            } else {
                Response::text(503, "not ready")
            }
        }
        "/config_dump" => api::config_dump(state, text),
        "/listeners" => api::listeners(state, text),
        "/clusters" => api::clusters(state, text),
        "/generations" => api::generations(state, text),
        "/logging" if get => {
            if request.param("level").is_some() {
                return Response::error(
                    405,
                    "/logging?level= changes the log level: use POST (GET only reads it)",
                    text,
                )
                .allow("GET, POST");
            }
            api::logging(state, text)
        }
        "/logging" if post => {
            if let Err(refused) = authorize(request, state, access) {
                return Response::error(403, &refused.to_string(), text);
            }
            let Some(level) = request.param("level") else {
                return Response::error(
                    400,
                    "POST /logging needs ?level=FILTER (e.g. debug, or baton=debug,warn)",
                    text,
                );
            };
            match state.log.set(level) {
                Ok(()) => {
                    tracing::info!(level, "log level set over the admin API");
                    api::logging(state, text)
                }
                Err(e) => Response::error(400, &format!("level {level:?}: {e}"), text),
            }
        }
        "/logging" => not_allowed(path, "GET, POST", text),
        "/drain" if post => {
            if let Err(refused) = authorize(request, state, access) {
                return Response::error(403, &refused.to_string(), text);
            }
            if let Some(listener) = request.param("listener") {
                return Response::error(
                    501,
                    &format!(
                        "draining one listener ({listener:?}) is not supported yet: the worker \
                         cannot stop accepting on one socket; POST /drain drains everything"
                    ),
                    text,
                );
            }
            drain(state, text)
        }
        "/drain" => not_allowed(path, "POST", text),
        _ => Response::error(404, &format!("not found: try {PATHS}"), text),
    }
}

fn authorize(request: &Request, state: &AdminState, access: Access) -> Result<(), auth::Refusal> {
    auth::allow_mutation(
        access,
        state.published.borrow().token.as_deref(),
        request.authorization.as_deref(),
        &request.path,
    )
}

/// `/drain`: the stop `baton stop` asks for, through the same queue.
fn drain(state: &AdminState, text: bool) -> Response {
    // Nobody waits for the `Stopped` reply: the admin endpoint goes away
    // with the supervisor. The main loop answers into a closed channel.
    let (reply, _) = oneshot::channel();
    let command = Command {
        request: proto::Request::Stop,
        binary: None,
        reply,
    };
    match state.commands.try_send(command) {
        Ok(()) => {
            tracing::info!("stop requested over the admin API");
            if text {
                Response::text(
                    202,
                    "draining: the supervisor stops once the workers have drained",
                )
            } else {
                Response::json(
                    202,
                    &serde_json::json!({
                        "draining": "all",
                        "note": "the supervisor drains its workers within [supervisor] drain_timeout, then exits, as `baton stop` does",
                    }),
                )
            }
        }
        Err(e) => Response::error(
            503,
            &format!("the supervisor cannot take a stop now: {e}"),
            text,
        ),
    }
}

fn not_allowed(path: &str, allow: &str, text: bool) -> Response {
    Response::error(405, &format!("{path}: use {allow}"), text).allow(allow)
}

/// `?format=text`, or an `Accept` that takes text/plain and not JSON.
fn wants_text(request: &Request) -> bool {
    match request.param("format") {
        Some(format) => format == "text",
        None => request
            .accept
            .as_deref()
            .is_some_and(|a| a.contains("text/plain") && !a.contains("application/json")),
    }
}

impl Response {
    fn allow(mut self, methods: &str) -> Response {
        self.headers.push(format!("Allow: {methods}"));
        self
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use baton_ipc::{MetricFamily, MetricKind, MetricSample, Metrics};
    use parking_lot::Mutex;
    use tokio::sync::{mpsc, watch};

    use super::*;
    use crate::admin::Published;
    use crate::admin::http::parse_query;
    use crate::control::proto::{ListenerStatus, Status};
    use crate::logging::LogLevel;
    use crate::metrics::MetricsStore;

    const TOKEN: &str = "0123456789abcdef";
    const CONFIG: &str = r#"
[admin]
address = "127.0.0.1:9901"
token = "0123456789abcdef"

[[listeners]]
name = "front"
address = "127.0.0.1:7000"
protocol = "http"
cluster = "back"

[[clusters]]
name = "back"
endpoints = ["10.0.0.5:9000"]
"#;

    fn state() -> (AdminState, mpsc::Receiver<Command>) {
        let mut metrics = MetricsStore::default();
        let sample = |labels: &[(&str, &str)], value| MetricSample {
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            value,
        };
        let family = |name: &str, kind, samples| MetricFamily {
            name: name.into(),
            help: "h".into(),
            kind,
            samples,
        };
        metrics.update(
            1,
            Metrics {
                families: vec![
                    family(
                        "baton_listener_connections_active",
                        MetricKind::Gauge,
                        vec![sample(&[("listener", "front")], 3)],
                    ),
                    family(
                        "baton_http_responses_total",
                        MetricKind::Counter,
                        vec![
                            sample(&[("listener", "front"), ("class", "2xx")], 40),
                            sample(&[("listener", "front"), ("class", "5xx")], 2),
                        ],
                    ),
                    family(
                        "baton_upstream_connect_failures_total",
                        MetricKind::Counter,
                        vec![sample(
                            &[("cluster", "back"), ("endpoint", "10.0.0.5:9000")],
                            7,
                        )],
                    ),
                ],
            },
        );
        let status = Status {
            listeners: vec![ListenerStatus {
                name: "front".into(),
                address: "127.0.0.1:7000".into(),
            }],
            ..Status::default()
        };
        let published = Published {
            config_name: "baton.toml".into(),
            config_text: CONFIG.into(),
            token: Some(Arc::from(TOKEN)),
            xds: None,
            history: Default::default(),
        };
        let (commands, queue) = mpsc::channel(1);
        let state = AdminState {
            metrics: Arc::new(Mutex::new(metrics)),
            status: watch::channel(status).1,
            published: watch::channel(published).1,
            log: Arc::new(LogLevel::detached("info")),
            commands,
        };
        (state, queue)
    }

    fn request(method: &str, target: &str, authorization: Option<&str>) -> Request {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        Request {
            method: method.into(),
            path: path.into(),
            query: parse_query(query),
            authorization: authorization.map(str::to_string),
            accept: None,
        }
    }

    fn body(response: &Response) -> serde_json::Value {
        serde_json::from_str(&response.body).unwrap()
    }

    #[test]
    fn listeners_and_clusters_carry_the_metrics_they_have_and_no_more() {
        let (state, _queue) = state();
        let listeners = route(
            &request("GET", "/listeners", None),
            &state,
            Access::ReadOnly,
        );
        let front = &body(&listeners)["listeners"][0];
        assert_eq!(front["protocol"], "http");
        assert_eq!(front["connections_active"], 3);
        assert_eq!(front["requests"], 42);
        // Not reported by the worker: null, not 0.
        assert_eq!(front["connections_total"], serde_json::Value::Null);
        assert_eq!(
            front["metrics"]["baton_http_responses_total{class=\"5xx\"}"],
            2
        );
        let clusters = route(&request("GET", "/clusters", None), &state, Access::ReadOnly);
        let endpoint = &body(&clusters)["clusters"][0]["endpoints"][0];
        assert_eq!(endpoint["connect_failures"], 7);
        assert_eq!(endpoint["upstream_connections"], serde_json::Value::Null);
        assert_eq!(endpoint["health"], "unknown");
        assert_eq!(endpoint["weight"], 1);
        assert_eq!(endpoint["ejected"], serde_json::Value::Null);
        assert_eq!(endpoint["in_flight"], serde_json::Value::Null);
    }

    #[test]
    fn the_config_dump_hides_the_token() {
        let (state, _queue) = state();
        let dump = route(
            &request("GET", "/config_dump", None),
            &state,
            Access::ReadOnly,
        );
        assert_eq!(dump.code, 200);
        assert!(!dump.body.contains(TOKEN), "{}", dump.body);
        assert_eq!(body(&dump)["config"]["admin"]["token"], "<redacted>");
    }

    #[test]
    fn mutations_pass_the_gate_first() {
        let (state, mut queue) = state();
        let bearer = format!("Bearer {TOKEN}");
        let set = |auth, access| {
            route(
                &request("POST", "/logging?level=debug", auth),
                &state,
                access,
            )
            .code
        };
        assert_eq!(set(None, Access::ReadOnly), 403);
        assert_eq!(state.log.current(), "info");
        assert_eq!(set(Some(bearer.as_str()), Access::ReadOnly), 200);
        assert_eq!(state.log.current(), "debug");
        let bad = route(
            &request("POST", "/logging?level=%5B", None),
            &state,
            Access::Control,
        );
        assert_eq!(bad.code, 400);
        assert_eq!(state.log.current(), "debug");

        let drain = route(&request("POST", "/drain", None), &state, Access::ReadOnly);
        assert_eq!(drain.code, 403);
        assert!(queue.try_recv().is_err(), "nothing queued");
        let drain = route(&request("POST", "/drain", None), &state, Access::Control);
        assert_eq!(drain.code, 202);
        let queued = queue.try_recv().unwrap();
        assert_eq!(queued.request, proto::Request::Stop);
        // The queue is full (one slot): said so, not dropped silently.
        let (reply, _) = oneshot::channel();
        state
            .commands
            .try_send(Command {
                request: proto::Request::Stop,
                binary: None,
                reply,
            })
            .unwrap();
        let full = route(&request("POST", "/drain", None), &state, Access::Control);
        assert_eq!(full.code, 503);
    }

    #[test]
    fn text_is_for_whoever_asks() {
        let (state, _queue) = state();
        let mut asked = request("GET", "/logging", None);
        assert!(
            route(&asked, &state, Access::ReadOnly)
                .content_type
                .contains("json")
        );
        asked.accept = Some("text/plain".into());
        let text = route(&asked, &state, Access::ReadOnly);
        assert!(text.content_type.starts_with("text/plain"), "{text:?}");
        assert!(text.body.contains("info"));
        let explicit = request("GET", "/generations?format=text", None);
        assert!(
            route(&explicit, &state, Access::ReadOnly)
                .body
                .contains("upgrades (last 50)")
        );
    }
}
