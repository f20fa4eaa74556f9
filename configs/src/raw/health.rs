//! `[clusters.health_check]` and `[clusters.outlier_detection]` as
//! written, and their validation into [`crate::model::HealthCheck`] and
//! [`crate::model::OutlierDetection`].

use std::num::NonZeroU32;
use std::ops::Range;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::positive;
use crate::duration::Text as DurationText;
use crate::model::{
    CheckKind, FailurePercentage, HealthCheck, HttpCheck, OutlierDetection, Protocol, SuccessRate,
};

/// A failed check: where, which key (under the table), why.
pub(super) type Invalid = (Range<usize>, &'static str, String);

/// Defaults, each with its reason. Envoy requires interval, timeout and
/// both thresholds; these are HAProxy's server defaults (`inter 2s`,
/// `rise 2`, `fall 3`) but for the interval, longer so that many
/// workers' probes stay light.
mod defaults {
    use std::time::Duration;

    pub(super) const INTERVAL: Duration = Duration::from_secs(5);
    /// A healthy endpoint answers a probe in milliseconds.
    pub(super) const TIMEOUT: Duration = Duration::from_secs(1);
    pub(super) const HEALTHY_THRESHOLD: u32 = 2;
    pub(super) const UNHEALTHY_THRESHOLD: u32 = 3;
    /// Envoy's outlier detection defaults.
    pub(super) const CONSECUTIVE_ERRORS: u32 = 5;
    pub(super) const BASE_EJECTION_TIME: Duration = Duration::from_secs(30);
    pub(super) const MAX_EJECTION_TIME: Duration = Duration::from_secs(300);
    pub(super) const MAX_EJECTION_PERCENT: u8 = 10;
    pub(super) const ANALYSIS_INTERVAL: Duration = Duration::from_secs(10);
    pub(super) const ENFORCING_SUCCESS_RATE: u8 = 100;
    pub(super) const SUCCESS_RATE_MINIMUM_HOSTS: u32 = 5;
    pub(super) const SUCCESS_RATE_REQUEST_VOLUME: u32 = 100;
    pub(super) const SUCCESS_RATE_STDEV_FACTOR: u32 = 1900;
    pub(super) const ENFORCING_FAILURE_PERCENTAGE: u8 = 0;
    pub(super) const FAILURE_PERCENTAGE_MINIMUM_HOSTS: u32 = 5;
    pub(super) const FAILURE_PERCENTAGE_REQUEST_VOLUME: u32 = 50;
    pub(super) const FAILURE_PERCENTAGE_THRESHOLD: u8 = 85;
}

/// Envoy's default `healthy_panic_threshold`.
pub(super) const HEALTHY_PANIC_THRESHOLD: u8 = 50;

/// Envoy's `codec_client_type` for HTTP checks.
#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum CodecClientType {
    Http1,
    Http2,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Kind {
    Tcp,
    Http,
    Grpc,
    Heartbeat,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHealthCheck {
    kind: Spanned<Kind>,
    interval: Option<Spanned<DurationText>>,
    interval_jitter: Option<Spanned<DurationText>>,
    no_traffic_interval: Option<Spanned<DurationText>>,
    timeout: Option<Spanned<DurationText>>,
    healthy_threshold: Option<NonZeroU32>,
    unhealthy_threshold: Option<NonZeroU32>,
    /// HTTP.
    path: Option<Spanned<String>>,
    method: Option<Spanned<String>>,
    host: Option<Spanned<String>>,
    expected_statuses: Option<Spanned<Vec<Spanned<RawStatuses>>>>,
    codec_client_type: Option<Spanned<CodecClientType>>,
    /// gRPC; a Tars heartbeat's servant.
    service: Option<Spanned<String>>,
    /// Heartbeat.
    protocol: Option<Spanned<Protocol>>,
}

/// One `expected_statuses` entry: a status (`200`) or Envoy's half-open
/// range (`{ start = 200, end = 300 }`).
pub(super) struct RawStatuses(i64, i64);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRange {
    start: i64,
    end: i64,
}

impl<'de> Deserialize<'de> for RawStatuses {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<RawStatuses, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = RawStatuses;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a status (200) or a range { start = 200, end = 300 }")
            }

            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<RawStatuses, E> {
                Ok(RawStatuses(n, n.saturating_add(1)))
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<RawStatuses, A::Error> {
                let r = RawRange::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(RawStatuses(r.start, r.end))
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl RawHealthCheck {
    pub(super) fn validate(self) -> Result<HealthCheck, Invalid> {
        let kind = *self.kind.get_ref();
        let interval = positive(self.interval, defaults::INTERVAL).map_err(at("interval"))?;
        let timeout = positive(self.timeout, defaults::TIMEOUT).map_err(at("timeout"))?;
        let no_traffic_interval = match self.no_traffic_interval {
            None => None,
            Some(v) => Some(positive(Some(v), interval).map_err(at("no_traffic_interval"))?),
        };
        let interval_jitter = self
            .interval_jitter
            .map_or(Duration::ZERO, |j| j.into_inner().0);
        // A key that the kind does not use is a mistake worth naming.
        let only =
            |set: bool, span: Option<Range<usize>>, key: &'static str, for_kind: &str| match span {
                Some(span) if !set => {
                    Err((span, key, format!("{key} is for kind = \"{for_kind}\"")))
                }
                _ => Ok(()),
            };
        let http = kind == Kind::Http;
        only(http, self.path.as_ref().map(Spanned::span), "path", "http")?;
        only(
            http,
            self.method.as_ref().map(Spanned::span),
            "method",
            "http",
        )?;
        only(http, self.host.as_ref().map(Spanned::span), "host", "http")?;
        let statuses_span = self.expected_statuses.as_ref().map(Spanned::span);
        only(http, statuses_span, "expected_statuses", "http")?;
        let codec_span = self.codec_client_type.as_ref().map(Spanned::span);
        only(http, codec_span, "codec_client_type", "http")?;
        let service_span = self.service.as_ref().map(Spanned::span);
        let tars_heartbeat = kind == Kind::Heartbeat
            && self.protocol.as_ref().map(|p| *p.get_ref()) == Some(Protocol::Tars);
        only(
            kind == Kind::Grpc || tars_heartbeat,
            service_span,
            "service",
            "grpc\" or kind = \"heartbeat\" with protocol = \"tars",
        )?;
        let protocol_span = self.protocol.as_ref().map(Spanned::span);
        only(
            kind == Kind::Heartbeat,
            protocol_span,
            "protocol",
            "heartbeat",
        )?;
        let kind = match kind {
            Kind::Tcp => CheckKind::Tcp,
            Kind::Http => CheckKind::Http(http_check(
                self.path,
                self.method,
                self.host,
                self.expected_statuses,
                self.codec_client_type.map(|c| *c.get_ref()) == Some(CodecClientType::Http2),
            )?),
            Kind::Grpc => CheckKind::Grpc {
                // Envoy: an empty service name asks for the server's
                // overall health.
                service: self.service.map(Spanned::into_inner).unwrap_or_default(),
            },
            Kind::Heartbeat => {
                let Some(protocol) = self.protocol else {
                    return Err((
                        self.kind.span(),
                        "protocol",
                        "kind = \"heartbeat\" needs protocol = \"bolt\", \"dubbo\" or \"tars\""
                            .into(),
                    ));
                };
                if !matches!(
                    protocol.get_ref(),
                    Protocol::Bolt | Protocol::Dubbo | Protocol::Tars
                ) {
                    return Err((
                        protocol.span(),
                        "protocol",
                        format!(
                            "no heartbeat check for {:?}: protocol = \"bolt\", \"dubbo\" or \"tars\"",
                            protocol.get_ref().name()
                        ),
                    ));
                }
                let service = self.service.map(Spanned::into_inner);
                if tars_heartbeat && service.as_deref().is_none_or(str::is_empty) {
                    return Err((
                        protocol.span(),
                        "service",
                        "a tars heartbeat pings a servant: give service = \"App.Server.Obj\""
                            .into(),
                    ));
                }
                CheckKind::Heartbeat {
                    protocol: protocol.into_inner(),
                    service,
                }
            }
        };
        Ok(HealthCheck {
            kind,
            interval,
            interval_jitter,
            no_traffic_interval,
            timeout,
            healthy_threshold: self
                .healthy_threshold
                .unwrap_or(NonZeroU32::MIN.saturating_add(defaults::HEALTHY_THRESHOLD - 1)),
            unhealthy_threshold: self
                .unhealthy_threshold
                .unwrap_or(NonZeroU32::MIN.saturating_add(defaults::UNHEALTHY_THRESHOLD - 1)),
        })
    }
}

fn at(key: &'static str) -> impl Fn((Range<usize>, String)) -> Invalid {
    move |(span, message)| (span, key, message)
}

fn http_check(
    path: Option<Spanned<String>>,
    method: Option<Spanned<String>>,
    host: Option<Spanned<String>>,
    statuses: Option<Spanned<Vec<Spanned<RawStatuses>>>>,
    http2: bool,
) -> Result<HttpCheck, Invalid> {
    let path = match path {
        Some(p) if !p.get_ref().starts_with('/') => {
            return Err((p.span(), "path", "a path starts with '/'".into()));
        }
        Some(p) => p.into_inner(),
        None => "/".into(),
    };
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    let method = match method {
        Some(m) if m.get_ref().is_empty() || !m.get_ref().chars().all(token) => {
            return Err((m.span(), "method", "not an HTTP method".into()));
        }
        Some(m) => m.into_inner(),
        None => "GET".into(),
    };
    let host = match host {
        Some(h) if h.get_ref().is_empty() || h.get_ref().chars().any(char::is_whitespace) => {
            return Err((h.span(), "host", "not a host name".into()));
        }
        host => host.map(Spanned::into_inner),
    };
    let expected_statuses = match statuses {
        None => vec![(200, 300)],
        Some(list) if list.get_ref().is_empty() => {
            return Err((
                list.span(),
                "expected_statuses",
                "give at least one status".into(),
            ));
        }
        Some(list) => list
            .into_inner()
            .into_iter()
            .map(|entry| {
                let span = entry.span();
                let RawStatuses(start, end) = entry.into_inner();
                match (u16::try_from(start), u16::try_from(end)) {
                    (Ok(s), Ok(e)) if (100..=599).contains(&s) && s < e && e <= 600 => Ok((s, e)),
                    _ => Err((
                        span,
                        "expected_statuses",
                        "statuses are 100 to 599, a range's start below its end".into(),
                    )),
                }
            })
            .collect::<Result<_, _>>()?,
    };
    Ok(HttpCheck {
        method,
        path,
        host,
        expected_statuses,
        http2,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOutlierDetection {
    consecutive_errors: Option<NonZeroU32>,
    base_ejection_time: Option<Spanned<DurationText>>,
    max_ejection_time: Option<Spanned<DurationText>>,
    max_ejection_percent: Option<Spanned<i64>>,
    consecutive_gateway_failure: Option<NonZeroU32>,
    interval: Option<Spanned<DurationText>>,
    enforcing_success_rate: Option<Spanned<i64>>,
    success_rate_minimum_hosts: Option<u32>,
    success_rate_request_volume: Option<u32>,
    success_rate_stdev_factor: Option<u32>,
    enforcing_failure_percentage: Option<Spanned<i64>>,
    failure_percentage_minimum_hosts: Option<u32>,
    failure_percentage_request_volume: Option<u32>,
    failure_percentage_threshold: Option<Spanned<i64>>,
}

impl RawOutlierDetection {
    pub(super) fn validate(self) -> Result<OutlierDetection, Invalid> {
        let base_ejection_time = positive(self.base_ejection_time, defaults::BASE_EJECTION_TIME)
            .map_err(at("base_ejection_time"))?;
        let max_span = self.max_ejection_time.as_ref().map(Spanned::span);
        let max_ejection_time = positive(self.max_ejection_time, defaults::MAX_EJECTION_TIME)
            .map_err(at("max_ejection_time"))?;
        // Envoy: the max is the larger of the two when unset; set, it must
        // not be below the base.
        let max_ejection_time = match max_span {
            Some(span) if max_ejection_time < base_ejection_time => {
                return Err((
                    span,
                    "max_ejection_time",
                    "must not be below base_ejection_time".into(),
                ));
            }
            Some(_) => max_ejection_time,
            None => max_ejection_time.max(base_ejection_time),
        };
        let max_ejection_percent = percentage(
            self.max_ejection_percent,
            "max_ejection_percent",
            defaults::MAX_EJECTION_PERCENT,
        )?;
        let interval =
            positive(self.interval, defaults::ANALYSIS_INTERVAL).map_err(at("interval"))?;
        let success_rate = SuccessRate {
            enforcing: percentage(
                self.enforcing_success_rate,
                "enforcing_success_rate",
                defaults::ENFORCING_SUCCESS_RATE,
            )?,
            minimum_hosts: self
                .success_rate_minimum_hosts
                .unwrap_or(defaults::SUCCESS_RATE_MINIMUM_HOSTS),
            request_volume: self
                .success_rate_request_volume
                .unwrap_or(defaults::SUCCESS_RATE_REQUEST_VOLUME),
            stdev_factor: self
                .success_rate_stdev_factor
                .unwrap_or(defaults::SUCCESS_RATE_STDEV_FACTOR),
        };
        let failure_percentage = FailurePercentage {
            enforcing: percentage(
                self.enforcing_failure_percentage,
                "enforcing_failure_percentage",
                defaults::ENFORCING_FAILURE_PERCENTAGE,
            )?,
            minimum_hosts: self
                .failure_percentage_minimum_hosts
                .unwrap_or(defaults::FAILURE_PERCENTAGE_MINIMUM_HOSTS),
            request_volume: self
                .failure_percentage_request_volume
                .unwrap_or(defaults::FAILURE_PERCENTAGE_REQUEST_VOLUME),
            threshold: percentage(
                self.failure_percentage_threshold,
                "failure_percentage_threshold",
                defaults::FAILURE_PERCENTAGE_THRESHOLD,
            )?,
        };
        Ok(OutlierDetection {
            consecutive_errors: self
                .consecutive_errors
                .unwrap_or(NonZeroU32::MIN.saturating_add(defaults::CONSECUTIVE_ERRORS - 1)),
            base_ejection_time,
            max_ejection_time,
            max_ejection_percent,
            consecutive_gateway_failure: self.consecutive_gateway_failure,
            interval,
            success_rate,
            failure_percentage,
        })
    }
}

/// An optional percentage, 0 to 100.
fn percentage(value: Option<Spanned<i64>>, key: &'static str, default: u8) -> Result<u8, Invalid> {
    match value {
        None => Ok(default),
        Some(p) => u8::try_from(*p.get_ref())
            .ok()
            .filter(|p| *p <= 100)
            .ok_or_else(|| (p.span(), key, "a percentage, 0 to 100".into())),
    }
}

/// `healthy_panic_threshold`: a percentage.
pub(super) fn panic_threshold(value: Option<Spanned<i64>>) -> Result<u8, Invalid> {
    percentage(value, "healthy_panic_threshold", HEALTHY_PANIC_THRESHOLD)
}
