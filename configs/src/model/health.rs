//! A cluster's `[clusters.health_check]` and `[clusters.outlier_detection]`:
//! active checks that mark endpoints healthy or unhealthy, and passive
//! ejection of endpoints whose requests keep failing. Where the issue is
//! silent, the defaults are Envoy's (named on each).

use std::num::NonZeroU32;
use std::time::Duration;

use super::Protocol;

/// `[clusters.health_check]`: one probe per endpoint every `interval`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    pub kind: CheckKind,
    /// Between the end of one probe and the start of the next.
    pub interval: Duration,
    /// Up to this much more, at random, added to each interval (Envoy's
    /// `interval_jitter`), so that workers' probes do not arrive together.
    pub interval_jitter: Duration,
    /// The interval while the cluster has had no traffic in this
    /// generation (Envoy's `no_traffic_interval`); `None`: `interval`
    /// always (Envoy's default is 60 s: see the README for why not here).
    pub no_traffic_interval: Option<Duration>,
    /// A probe that has not answered by then failed.
    pub timeout: Duration,
    /// Consecutive passes that make an unhealthy (or unknown) endpoint
    /// healthy.
    pub healthy_threshold: NonZeroU32,
    /// Consecutive failures that make a healthy endpoint unhealthy.
    pub unhealthy_threshold: NonZeroU32,
}

/// What a probe does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckKind {
    /// `kind = "tcp"`: a connect that succeeds passes.
    Tcp,
    /// `kind = "http"`: an HTTP/1.1 request (or HTTP/2 over h2c) on a
    /// fresh connection; passes when the status is one of
    /// `expected_statuses`.
    Http(HttpCheck),
    /// `kind = "grpc"`: `grpc.health.v1.Health/Check` for `service` over
    /// h2c; passes on `SERVING`.
    Grpc { service: String },
    /// `kind = "heartbeat"`: the RPC protocol's heartbeat request; passes
    /// when its heartbeat response comes back. Tars has none at the
    /// transport level: its check calls `tars_ping` on `service` (the
    /// servant), which a Tars server answers without dispatching, and
    /// passes on `iRet` 0.
    Heartbeat {
        protocol: Protocol,
        /// Tars: the servant to ping (required there, unused elsewhere).
        service: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpCheck {
    pub method: String,
    pub path: String,
    /// The `Host` header; the endpoint's address when `None`.
    pub host: Option<String>,
    /// Half-open ranges `[start, end)`, Envoy's `expected_statuses` shape;
    /// `[200, 300)` when left out.
    pub expected_statuses: Vec<(u16, u16)>,
    /// Over HTTP/2 with prior knowledge (h2c) rather than HTTP/1.1
    /// (Envoy's `codec_client_type = HTTP2`).
    pub http2: bool,
}

impl HttpCheck {
    /// Whether `status` is one the check expects.
    pub fn expects(&self, status: u16) -> bool {
        self.expected_statuses
            .iter()
            .any(|&(start, end)| (start..end).contains(&status))
    }
}

/// `[clusters.outlier_detection]`: Envoy's consecutive-errors detector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutlierDetection {
    /// Consecutive failed requests (HTTP 5xx, connect failures and
    /// timeouts, RPC error responses and timeouts) that eject an endpoint
    /// (Envoy's `consecutive_5xx`, default 5).
    pub consecutive_errors: NonZeroU32,
    /// An ejection lasts this times the number of times the endpoint has
    /// been ejected (Envoy's default 30 s).
    pub base_ejection_time: Duration,
    /// ... capped at this (Envoy's default 300 s).
    pub max_ejection_time: Duration,
    /// At most this share of the cluster's endpoints is ejected at once,
    /// but at least one may be (Envoy's default 10 %, and its rule that one
    /// host is ejected regardless).
    pub max_ejection_percent: u8,
    /// Consecutive gateway failures (HTTP 502, 503, 504, connect
    /// failures, timeouts and lost connections; RPC timeouts and lost
    /// connections) that eject an endpoint; any other answer ends the run
    /// (Envoy's `consecutive_gateway_failure`). `None`: not detected (as
    /// Envoy's default `enforcing_consecutive_gateway_failure` of 0).
    pub consecutive_gateway_failure: Option<NonZeroU32>,
    /// How often the success-rate and failure-percentage detectors look
    /// at the requests since their last look (Envoy's `interval`, 10 s).
    pub interval: Duration,
    pub success_rate: SuccessRate,
    pub failure_percentage: FailurePercentage,
}

/// Envoy's success-rate detector: each `interval`, among the endpoints
/// that served at least `request_volume` requests — when there are at
/// least `minimum_hosts` of them — one whose success rate is below
/// mean − `stdev_factor`/1000 × standard deviation is ejected, with
/// probability `enforcing` %.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SuccessRate {
    /// Envoy's `enforcing_success_rate` (default 100; 0 turns it off).
    pub enforcing: u8,
    /// `success_rate_minimum_hosts` (default 5).
    pub minimum_hosts: u32,
    /// `success_rate_request_volume` (default 100).
    pub request_volume: u32,
    /// `success_rate_stdev_factor` (default 1900: 1.9 deviations).
    pub stdev_factor: u32,
}

/// Envoy's failure-percentage detector: each `interval`, among the
/// endpoints that served at least `request_volume` requests — when there
/// are at least `minimum_hosts` of them — one whose share of failed
/// requests is at least `threshold` % is ejected, with probability
/// `enforcing` %.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailurePercentage {
    /// Envoy's `enforcing_failure_percentage` (default 0: off).
    pub enforcing: u8,
    /// `failure_percentage_minimum_hosts` (default 5).
    pub minimum_hosts: u32,
    /// `failure_percentage_request_volume` (default 50).
    pub request_volume: u32,
    /// `failure_percentage_threshold` (default 85).
    pub threshold: u8,
}
