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
pub fn route(request: &Request, state: &AdminState, access: Access) -> Response {
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
        state.token.as_deref(),
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
