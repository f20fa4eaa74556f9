//! A baton worker with an HTTP filter of your own, compiled in: copy this
//! file to start yours.
//!
//! The filter, `api_key`, lets through requests that carry one of its
//! keys and answers the others itself:
//!
//! * a request without the header, or with a key it does not know, gets
//!   `401` with a `www-authenticate` header, and never reaches an upstream;
//! * a request with a known key goes on with the key replaced by the
//!   key's name (`x-api-client: <name>`), so upstreams never see secrets;
//! * every response it let through is marked `x-api-checked: 1`.
//!
//! Its config string is `header;name=key,name=key…`, e.g.
//! `x-api-key;mobile=k1,partner=k2`.
//!
//! # Building and running it
//!
//! ```text
//! cargo build --release -p baton-worker --example custom_filter
//! ```
//!
//! then point the supervisor at the binary and use the filter by its
//! registered name:
//!
//! ```toml
//! [supervisor]
//! worker_binary = "target/release/examples/custom_filter"
//!
//! [[listeners]]
//! name = "web"
//! address = "127.0.0.1:8080"
//! protocol = "http"
//! cluster = "app"
//! filters = [{ compiled = "api_key", config = "x-api-key;mobile=k1,partner=k2" }]
//! ```
//!
//! `baton check` runs this binary's check, so a config its factory
//! refuses is refused there, and at `baton upgrade` before the running
//! generation is touched. A new build of the binary is picked up by
//! `baton upgrade` like any worker.

use std::process::ExitCode;
use std::sync::Arc;

use baton_worker::filter::compiled::register_http;
use baton_worker::filter::http::{
    Action, HttpFilter, HttpStreamFilter, LocalResponse, RequestHead, ResponseHead,
};
use baton_worker::filter::{ConnInfo, Mobility};

/// The configured filter: made once per listener (or route) that names
/// it, shared by all of its requests.
#[derive(Debug)]
struct ApiKey {
    header: String,
    /// (name, key) pairs.
    keys: Arc<[(String, String)]>,
}

impl ApiKey {
    /// The factory `register_http` takes: the config string in, the
    /// filter or a message for `baton check` out.
    fn from_config(config: &str) -> Result<Arc<dyn HttpFilter>, String> {
        let (header, list) = config
            .split_once(';')
            .ok_or("expected `header;name=key,…`")?;
        let header = header.trim().to_ascii_lowercase();
        if header.is_empty() {
            return Err("the header name is empty".into());
        }
        let keys = list
            .split(',')
            .map(|pair| {
                let (name, key) = pair
                    .split_once('=')
                    .ok_or_else(|| format!("{pair:?} is not name=key"))?;
                Ok((name.trim().to_string(), key.trim().to_string()))
            })
            .collect::<Result<Vec<_>, String>>()?;
        if keys.iter().any(|(n, k)| n.is_empty() || k.is_empty()) {
            return Err("a name or a key is empty".into());
        }
        Ok(Arc::new(ApiKey {
            header,
            keys: keys.into(),
        }))
    }
}

impl HttpFilter for ApiKey {
    fn name(&self) -> &'static str {
        "api_key"
    }

    /// Nothing outlives a request: connections move at an upgrade.
    fn mobility(&self) -> Mobility {
        Mobility::Moves
    }

    fn stream(&self, _conn: &ConnInfo) -> Box<dyn HttpStreamFilter> {
        Box::new(ApiKeyStream {
            header: self.header.clone(),
            keys: Arc::clone(&self.keys),
        })
    }
}

/// One request's run through the filter.
struct ApiKeyStream {
    header: String,
    keys: Arc<[(String, String)]>,
}

impl HttpStreamFilter for ApiKeyStream {
    fn on_request_headers(&mut self, head: &mut dyn RequestHead, _end_of_stream: bool) -> Action {
        let client = head.get(&self.header).and_then(|given| {
            self.keys
                .iter()
                .find(|(_, key)| key.as_bytes() == given)
                .map(|(name, _)| name.clone())
        });
        let Some(client) = client else {
            return match LocalResponse::new(401, "a valid API key is required\n")
                .and_then(|r| r.with_header("www-authenticate", b"ApiKey"))
            {
                Ok(response) => Action::Respond(Box::new(response)),
                // Only a bad status or header could fail; these are fixed.
                Err(_) => Action::Continue,
            };
        };
        // Header edits fail only for names the proxy keeps for itself
        // (framing, connection management); these are not.
        let _ = head.remove(&self.header);
        let _ = head.set("x-api-client", client.as_bytes());
        Action::Continue
    }

    fn on_response_headers(&mut self, head: &mut dyn ResponseHead, _end_of_stream: bool) -> Action {
        let _ = head.set("x-api-checked", b"1");
        Action::Continue
    }
}

fn main() -> ExitCode {
    register_http("api_key", ApiKey::from_config);
    baton_worker::cli::main(std::env::args_os())
}
