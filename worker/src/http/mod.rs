//! HTTP proxying.
//!
//! An `http` listener speaks HTTP/1.1 ([`conn`], on the framing of [`h1`]),
//! routes each request ([`route`]): by host (exact or `*.` wildcard), path
//! (exact, prefix, regex), method and headers, to a cluster (or weighted
//! clusters), a direct response or a redirect — and forwards it with its
//! body streamed, over idle keep-alive upstream connections ([`pool`]).
//!
//! Across an upgrade, a plaintext HTTP/1.1 connection moves between two
//! requests with the bytes it has read of the next one (see [`conn`]); a
//! connection upgraded to a tunnel (WebSocket) moves like any L4 tunnel.

pub mod conn;
pub mod h1;
pub mod pool;
pub mod route;

use std::sync::Arc;
use std::time::Duration;

use baton_config::{Listener, Target};

use crate::upstream::Upstream;

/// One HTTP listener's settings, compiled.
#[derive(Debug)]
pub struct HttpListener {
    pub name: Arc<str>,
    pub routes: Vec<route::Compiled>,
    /// The listener's `cluster`, or `NotFound`.
    pub default: Target,
    pub request_timeout: Duration,
    pub limits: h1::Limits,
    /// `http` or `https`, for `X-Forwarded-Proto`.
    pub proto: &'static str,
}

impl HttpListener {
    pub fn new(spec: &Listener) -> Result<Option<HttpListener>, String> {
        let Some(http) = &spec.http else {
            return Ok(None);
        };
        let routes = http
            .routes
            .iter()
            .map(|r| route::Compiled::new(r.clone()).map_err(|e| e.to_string()))
            .collect::<Result<_, _>>()?;
        Ok(Some(HttpListener {
            name: Arc::from(spec.name.as_str()),
            routes,
            default: spec.target.clone(),
            request_timeout: http.request_timeout,
            limits: h1::Limits {
                max_header_bytes: http.max_header_bytes,
                max_headers: http.max_headers,
            },
            proto: if http.tls.is_some() { "https" } else { "http" },
        }))
    }
}

/// What an HTTP connection needs from its generation.
#[derive(Debug, Clone)]
pub struct HttpContext {
    pub listener: Arc<HttpListener>,
    /// By cluster index.
    pub upstreams: Arc<[Arc<Upstream>]>,
    pub pool: Arc<pool::H1Pool>,
    pub meters: Arc<conn::HttpMeters>,
    /// This worker's generation, for direct responses.
    pub generation: u32,
}
