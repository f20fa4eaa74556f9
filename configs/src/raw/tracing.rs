//! `[tracing]` as written, and its validation into
//! [`crate::model::Tracing`].

use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use crate::duration::Text as DurationText;
use crate::model::{OtlpExporter, Tracing};

/// A failed check: where, which key (under `tracing.`), why.
pub(super) type Invalid = (Range<usize>, &'static str, String);

/// Defaults, each with its reason.
mod defaults {
    use std::time::Duration;

    /// OpenTelemetry's SDK defaults for its batch span processor
    /// (`OTEL_BSP_MAX_QUEUE_SIZE`, `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`,
    /// `OTEL_BSP_SCHEDULE_DELAY`), which collectors are sized for; the
    /// export timeout is a third of the SDK's 30 s, so that a stuck
    /// collector holds one batch, not a queue's worth, for long.
    pub(super) const QUEUE_SIZE: usize = 2048;
    pub(super) const BATCH_SIZE: usize = 512;
    pub(super) const EXPORT_INTERVAL: Duration = Duration::from_secs(5);
    pub(super) const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
    /// The ports OTLP registers (gRPC, HTTP) and the HTTP traces path.
    pub(super) const GRPC_PORT: u16 = 4317;
    pub(super) const HTTP_PORT: u16 = 4318;
    pub(super) const HTTP_PATH: &str = "/v1/traces";
    pub(super) const SERVICE_NAME: &str = "baton";
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTracing {
    otlp_endpoint: Option<Spanned<String>>,
    otlp_http_endpoint: Option<Spanned<String>>,
    sampling: Option<Spanned<f64>>,
    service_name: Option<Spanned<String>>,
    #[serde(default)]
    always_sample_errors: bool,
    queue_size: Option<Spanned<usize>>,
    batch_size: Option<Spanned<usize>>,
    export_interval: Option<Spanned<DurationText>>,
    export_timeout: Option<Spanned<DurationText>>,
}

impl RawTracing {
    /// `whole`: the table's span, for a missing endpoint.
    pub(crate) fn validate(self, whole: Range<usize>) -> Result<Tracing, Invalid> {
        let exporter = match (self.otlp_endpoint, self.otlp_http_endpoint) {
            (Some(grpc), None) => {
                let (authority, _) = parse_url(&grpc, defaults::GRPC_PORT, "otlp_endpoint")?;
                OtlpExporter::Grpc { authority }
            }
            (None, Some(http)) => {
                let (authority, path) =
                    parse_url(&http, defaults::HTTP_PORT, "otlp_http_endpoint")?;
                let path = if path.is_empty() || path == "/" {
                    defaults::HTTP_PATH.to_string()
                } else {
                    path
                };
                OtlpExporter::Http { authority, path }
            }
            (Some(_), Some(http)) => {
                return Err((
                    http.span(),
                    "otlp_http_endpoint",
                    "give otlp_endpoint (gRPC) or otlp_http_endpoint (HTTP), not both".into(),
                ));
            }
            (None, None) => {
                return Err((
                    whole,
                    "otlp_endpoint",
                    "missing: where the spans go, e.g. \"http://127.0.0.1:4317\" \
                     (or otlp_http_endpoint = \"http://127.0.0.1:4318/v1/traces\")"
                        .into(),
                ));
            }
        };
        let sampling_millionths = match self.sampling {
            None => 1_000_000,
            Some(s) => {
                let ratio = *s.get_ref();
                if !(0.0..=1.0).contains(&ratio) {
                    return Err((
                        s.span(),
                        "sampling",
                        "a ratio from 0.0 (none) to 1.0 (every request)".into(),
                    ));
                }
                // In range, so the cast cannot overflow.
                (ratio * 1_000_000.0).round() as u32
            }
        };
        let service_name = match self.service_name {
            None => defaults::SERVICE_NAME.to_string(),
            Some(name) if name.get_ref().trim().is_empty() => {
                return Err((name.span(), "service_name", "must not be empty".into()));
            }
            Some(name) => name.into_inner(),
        };
        let positive =
            |value: Option<Spanned<usize>>, default: usize, key: &'static str| match value {
                None => Ok(default),
                Some(v) if *v.get_ref() == 0 => Err((v.span(), key, "must be at least 1".into())),
                Some(v) => Ok(v.into_inner()),
            };
        let queue_size = positive(self.queue_size, defaults::QUEUE_SIZE, "queue_size")?;
        let batch_size = positive(self.batch_size, defaults::BATCH_SIZE, "batch_size")?;
        let duration =
            |value: Option<Spanned<DurationText>>, default, key: &'static str| match value {
                None => Ok(default),
                Some(d) if d.get_ref().0.is_zero() => {
                    Err((d.span(), key, "must be longer than 0".into()))
                }
                Some(d) => Ok(d.into_inner().0),
            };
        Ok(Tracing {
            exporter,
            sampling_millionths,
            service_name,
            always_sample_errors: self.always_sample_errors,
            queue_size,
            batch_size: batch_size.min(queue_size),
            export_interval: duration(
                self.export_interval,
                defaults::EXPORT_INTERVAL,
                "export_interval",
            )?,
            export_timeout: duration(
                self.export_timeout,
                defaults::EXPORT_TIMEOUT,
                "export_timeout",
            )?,
        })
    }
}

/// `http://host[:port][/path]` into `host:port` and the path.
fn parse_url(
    url: &Spanned<String>,
    default_port: u16,
    key: &'static str,
) -> Result<(String, String), Invalid> {
    let bad = |why: &str| (url.span(), key, why.to_string());
    let text = url.get_ref().trim();
    let Some(rest) = text.strip_prefix("http://") else {
        return Err(bad(if text.starts_with("https://") {
            "https is not supported: the exporter speaks plain HTTP (run the collector \
             beside baton, or a local agent)"
        } else {
            "expected a URL such as \"http://127.0.0.1:4317\""
        }));
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if authority.is_empty() || authority.contains('@') {
        return Err(bad("expected a host (and a port) after http://"));
    }
    // `[v6]:port`, `host:port`, or a host alone.
    let has_port = match authority.rfind(':') {
        Some(i) => !authority[i..].contains(']'),
        None => false,
    };
    let authority = if has_port {
        let port = &authority[authority.rfind(':').unwrap_or(0) + 1..];
        if port.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(bad("the port must be a number from 1 to 65535"));
        }
        authority.to_string()
    } else {
        format!("{authority}:{default_port}")
    };
    Ok((authority, path.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Tracing, String> {
        let raw: RawTracing = toml::from_str(text).map_err(|e| e.to_string())?;
        raw.validate(0..0)
            .map_err(|(_, key, why)| format!("{key}: {why}"))
    }

    #[test]
    fn grpc_endpoint_with_defaults() {
        let t = parse("otlp_endpoint = \"http://127.0.0.1:4317\"").unwrap();
        assert_eq!(
            t.exporter,
            OtlpExporter::Grpc {
                authority: "127.0.0.1:4317".into()
            }
        );
        assert_eq!(t.sampling_millionths, 1_000_000);
        assert_eq!(t.service_name, "baton");
        assert_eq!(t.queue_size, 2048);
    }

    #[test]
    fn http_endpoint_default_port_and_path() {
        let t = parse("otlp_http_endpoint = \"http://collector\"\nsampling = 0.25").unwrap();
        assert_eq!(
            t.exporter,
            OtlpExporter::Http {
                authority: "collector:4318".into(),
                path: "/v1/traces".into()
            }
        );
        assert_eq!(t.sampling_millionths, 250_000);
        let t = parse("otlp_http_endpoint = \"http://[::1]:9/x/traces\"").unwrap();
        assert_eq!(
            t.exporter,
            OtlpExporter::Http {
                authority: "[::1]:9".into(),
                path: "/x/traces".into()
            }
        );
    }

    #[test]
    fn refusals() {
        for (text, key) in [
            ("sampling = 1.0", "otlp_endpoint: missing"),
            (
                "otlp_endpoint = \"http://a:1\"\notlp_http_endpoint = \"http://a:2\"",
                "otlp_http_endpoint: give",
            ),
            ("otlp_endpoint = \"https://a:1\"", "otlp_endpoint: https"),
            ("otlp_endpoint = \"a:1\"", "otlp_endpoint: expected a URL"),
            ("otlp_endpoint = \"http://a:0\"", "otlp_endpoint: the port"),
            (
                "otlp_endpoint = \"http://a\"\nsampling = 1.5",
                "sampling: a ratio",
            ),
            (
                "otlp_endpoint = \"http://a\"\nqueue_size = 0",
                "queue_size: must",
            ),
            (
                "otlp_endpoint = \"http://a\"\nservice_name = \" \"",
                "service_name: must",
            ),
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.starts_with(key), "{text}: {err}");
        }
        assert!(parse("otlp_endpoint = \"http://a\"\nsampler = 1").is_err());
    }
}
