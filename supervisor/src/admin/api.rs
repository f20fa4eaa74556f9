//! The JSON (and text) of each admin API endpoint, built from what the
//! supervisor publishes: its status, the workers' metrics, the config in
//! force (read as plain TOML, so that a newer worker's keys show too) and
//! the upgrade history.
//!
//! Nothing here invents a value: what the metrics do not have is `null`
//! (JSON) or `-` (text). A listener's `latency_ms` (p50, p99)
//! comes from the workers' request duration histograms (`null` before a
//! request was timed, or with a worker too old to send histograms).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{Value, json};

use super::http::Response;
use super::{AdminState, redact};
use crate::clusters;
use crate::metrics::{Labels, MetricsStore};

/// The request duration histograms a listener's latency comes from (a
/// listener is HTTP or RPC: one of them has its series).
const LATENCY_FAMILIES: [&str; 2] = [
    "baton_http_request_duration_seconds",
    "baton_rpc_request_duration_seconds",
];

/// `/config_dump`: the current release's config, secrets redacted.
pub(crate) fn config_dump(state: &AdminState, text: bool) -> Response {
    let published = state.published.borrow().clone();
    let mut config = match config_value(&published.config_text) {
        Ok(config) => config,
        Err(e) => return Response::error(500, &e, text),
    };
    redact::redact(&mut config);
    if text {
        let xds = published.xds.as_ref().map_or_else(String::new, |x| {
            format!("# xDS resources in force (name = version): {x}\n")
        });
        return match toml::to_string_pretty(&config) {
            Ok(toml) => Response::text(
                200,
                format!(
                    "# {} (secrets redacted)\n{xds}{toml}",
                    published.config_name
                ),
            ),
            Err(e) => Response::text(500, format!("encode TOML: {e}")),
        };
    }
    match serde_json::to_value(&config) {
        Ok(config) => Response::json(
            200,
            &json!({
                "source": published.config_name,
                "redacted": redact::REDACTED,
                "config": config,
                "xds": published.xds,
            }),
        ),
        Err(e) => Response::error(500, &format!("encode JSON: {e}"), false),
    }
}

/// `/listeners`: each listener with its connections and requests.
pub(crate) fn listeners(state: &AdminState, text: bool) -> Response {
    let config = match config_value(&state.published.borrow().config_text) {
        Ok(config) => config,
        Err(e) => return Response::error(500, &e, text),
    };
    let status = state.status.borrow().clone();
    let metrics = state.metrics.lock();
    let listeners: Vec<Value> = status
        .listeners
        .iter()
        .map(|l| {
            let configured = tables(&config, "listeners")
                .find(|t| t.get("name").and_then(toml::Value::as_str) == Some(l.name.as_str()));
            let key = |k: &str| {
                configured
                    .and_then(|t| t.get(k))
                    .and_then(toml::Value::as_str)
                    .map(str::to_string)
            };
            let by = [("listener", l.name.as_str())];
            let requests = sum_some([
                total(&metrics, "baton_http_responses_total", &by),
                total(&metrics, "baton_rpc_requests_total", &by),
            ]);
            let latency = LATENCY_FAMILIES
                .iter()
                .find_map(|f| metrics.quantiles_ms(f, &by, &[0.5, 0.99]))
                .map(|q| json!({ "p50": q[0], "p99": q[1] }));
            json!({
                "name": l.name,
                "address": l.address,
                "protocol": key("protocol").unwrap_or_else(|| "tcp".to_string()),
                "cluster": key("cluster"),
                "connections_active": total(&metrics, "baton_listener_connections_active", &by),
                "connections_total": total(&metrics, "baton_listener_connections_total", &by),
                "received_bytes": total(&metrics, "baton_listener_received_bytes_total", &by),
                "sent_bytes": total(&metrics, "baton_listener_sent_bytes_total", &by),
                "requests": requests,
                "latency_ms": latency,
                "metrics": samples(&metrics, &by),
            })
        })
        .collect();
    drop(metrics);
    if !text {
        return Response::json(
            200,
            &json!({ "listeners": listeners, "latency_histograms": true }),
        );
    }
    let mut out = format!(
        "{:<16} {:<22} {:<9} {:>7} {:>9} {:>9}\n",
        "listener", "address", "protocol", "active", "accepted", "requests"
    );
    for l in &listeners {
        let _ = writeln!(
            out,
            "{:<16} {:<22} {:<9} {:>7} {:>9} {:>9}",
            s(&l["name"]),
            s(&l["address"]),
            s(&l["protocol"]),
            n(&l["connections_active"]),
            n(&l["connections_total"]),
            n(&l["requests"]),
        );
    }
    Response::text(200, out)
}

/// `/clusters`: each cluster and its endpoints: weight, health, ejection
/// and work in flight (as `baton status` shows them, [`crate::clusters`]), and
/// what else the metrics have.
pub(crate) fn clusters(state: &AdminState, text: bool) -> Response {
    let config_text = state.published.borrow().config_text.clone();
    let config = match config_value(&config_text) {
        Ok(config) => config,
        Err(e) => return Response::error(500, &e, text),
    };
    let metrics = state.metrics.lock();
    let mut configured = clusters::configured(&config_text);
    clusters::refresh(&mut configured, &metrics);
    let clusters: Vec<Value> = configured
        .iter()
        .map(|c| {
            let endpoints: Vec<Value> = c
                .endpoints
                .iter()
                .map(|e| {
                    let by = [("cluster", c.name.as_str()), ("endpoint", e.address.as_str())];
                    json!({
                        "address": e.address,
                        "health": e.health.label(),
                        "weight": e.weight,
                        "ejected": e.ejected,
                        "in_flight": e.in_flight,
                        "upstream_connections": total(&metrics, "baton_upstream_connections_total", &by),
                        "connect_failures": total(&metrics, "baton_upstream_connect_failures_total", &by),
                        "connect_timeouts": total(&metrics, "baton_upstream_connect_timeouts_total", &by),
                        "metrics": samples(&metrics, &by),
                    })
                })
                .collect();
            let protocol = tables(&config, "clusters")
                .find(|t| t.get("name").and_then(toml::Value::as_str) == Some(c.name.as_str()))
                .and_then(|t| t.get("protocol"))
                .and_then(toml::Value::as_str);
            json!({
                "name": c.name,
                "lb": c.lb,
                "protocol": protocol,
                "endpoints": endpoints,
            })
        })
        .collect();
    drop(metrics);
    if !text {
        return Response::json(
            200,
            &json!({ "clusters": clusters, "health_checking": true }),
        );
    }
    let mut out = format!(
        "{:<16} {:<22} {:>6} {:<9} {:<7} {:>9} {:>11} {:>9} {:>9}\n",
        "cluster",
        "endpoint",
        "weight",
        "health",
        "ejected",
        "in_flight",
        "connections",
        "failures",
        "timeouts"
    );
    for c in &clusters {
        for e in c["endpoints"].as_array().into_iter().flatten() {
            let _ = writeln!(
                out,
                "{:<16} {:<22} {:>6} {:<9} {:<7} {:>9} {:>11} {:>9} {:>9}",
                s(&c["name"]),
                s(&e["address"]),
                n(&e["weight"]),
                s(&e["health"]),
                yes_no(&e["ejected"]),
                n(&e["in_flight"]),
                n(&e["upstream_connections"]),
                n(&e["connect_failures"]),
                n(&e["connect_timeouts"]),
            );
        }
    }
    Response::text(200, out)
}

/// `/generations`: the workers alive and the upgrade history.
pub(crate) fn generations(state: &AdminState, text: bool) -> Response {
    let status = state.status.borrow().clone();
    let history: Vec<_> = state.published.borrow().history.iter().cloned().collect();
    if !text {
        return match serde_json::to_value((&status.generations, &history, &status.upgrades)) {
            Ok(Value::Array(parts)) => {
                let mut parts = parts.into_iter();
                Response::json(
                    200,
                    &json!({
                        "supervisor_pid": status.supervisor_pid,
                        "upgrade_phase": status.upgrade_phase,
                        "generations": parts.next(),
                        "history": parts.next(),
                        "history_limit": super::HISTORY,
                        "upgrades": parts.next(),
                        "worker_restarts": status.worker_restarts,
                    }),
                )
            }
            Ok(_) => Response::error(500, "encode JSON", false),
            Err(e) => Response::error(500, &format!("encode JSON: {e}"), false),
        };
    }
    let mut out = format!(
        "supervisor pid {}, upgrade phase {}\n\n{:>10} {:>8} {:<12} {:>11}  binary\n",
        status.supervisor_pid, status.upgrade_phase, "generation", "pid", "phase", "connections"
    );
    for g in &status.generations {
        let _ = writeln!(
            out,
            "{:>10} {:>8} {:<12} {:>11}  {}",
            g.generation,
            g.pid,
            g.phase,
            g.connections
                .map_or_else(|| "-".to_string(), |c| c.to_string()),
            g.binary
        );
    }
    let _ = writeln!(
        out,
        "\nupgrades (last {}):\n{:<20} {:<8} {:>4} {:>4} {:>8} {:>6} {:>5}  result",
        super::HISTORY,
        "started (UTC)",
        "kind",
        "from",
        "to",
        "ms",
        "moved",
        "lost"
    );
    for record in &history {
        let r = &record.report;
        let number = |g: Option<u32>| g.map_or_else(|| "-".to_string(), |g| g.to_string());
        let _ = writeln!(
            out,
            "{:<20} {:<8} {:>4} {:>4} {:>8} {:>6} {:>5}  {}{}",
            utc(record.started_unix_ms),
            r.kind,
            number(r.from_generation),
            number(r.to_generation),
            r.duration_ms,
            r.migrated,
            r.lost,
            outcome(r.outcome),
            r.reason
                .as_deref()
                .map(|why| format!(": {why}"))
                .unwrap_or_default()
        );
    }
    Response::text(200, out)
}

/// `/logging`: the filter in force.
pub(crate) fn logging(state: &AdminState, text: bool) -> Response {
    let level = state.log.current();
    if text {
        return Response::text(200, format!("log level: {level} (supervisor and workers)"));
    }
    Response::json(
        200,
        &json!({ "level": level, "applies_to": ["supervisor", "workers"] }),
    )
}

fn outcome(outcome: crate::control::proto::Outcome) -> &'static str {
    use crate::control::proto::Outcome;
    match outcome {
        Outcome::Succeeded => "succeeded",
        Outcome::RolledBack => "rolled_back",
        Outcome::Failed => "failed",
        Outcome::Refused => "refused",
    }
}

/// The config text as a TOML value (the worker accepted it already).
fn config_value(text: &str) -> Result<toml::Value, String> {
    text.parse::<toml::Table>()
        .map(toml::Value::Table)
        .map_err(|e| format!("read the config in force: {e}"))
}

/// The tables of array `key` (`[[listeners]]`).
fn tables<'a>(config: &'a toml::Value, key: &str) -> impl Iterator<Item = &'a toml::Table> {
    config
        .get(key)
        .and_then(toml::Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(toml::Value::as_table)
}

/// Whether `labels` carry every pair of `by`.
fn matches(labels: &Labels, by: &[(&str, &str)]) -> bool {
    by.iter()
        .all(|(k, v)| labels.iter().any(|(lk, lv)| lk == k && lv == v))
}

/// The sum of family `name`'s samples labelled `by`; `None` when it has
/// none (not reported, or not for this listener or endpoint).
fn total(metrics: &MetricsStore, name: &str, by: &[(&str, &str)]) -> Option<u64> {
    let values = metrics.family(name);
    let mut found = values.iter().filter(|(l, _)| matches(l, by)).peekable();
    found.peek()?;
    Some(found.map(|(_, v)| v).sum())
}

fn sum_some<const N: usize>(values: [Option<u64>; N]) -> Option<u64> {
    values.into_iter().flatten().reduce(|a, b| a + b)
}

/// Every sample labelled `by`, keyed `family{other="labels"}`.
fn samples(metrics: &MetricsStore, by: &[(&str, &str)]) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for name in metrics.family_names() {
        for (labels, value) in metrics.family(name) {
            if !matches(labels, by) {
                continue;
            }
            let rest: Vec<String> = labels
                .iter()
                .filter(|(k, _)| !by.iter().any(|(bk, _)| bk == k))
                .map(|(k, v)| format!("{k}=\"{v}\""))
                .collect();
            let key = if rest.is_empty() {
                name.to_string()
            } else {
                format!("{name}{{{}}}", rest.join(","))
            };
            out.insert(key, value);
        }
    }
    out
}

fn s(value: &Value) -> &str {
    value.as_str().unwrap_or("-")
}

fn yes_no(value: &Value) -> &'static str {
    match value.as_bool() {
        Some(true) => "yes",
        Some(false) => "no",
        None => "-",
    }
}

fn n(value: &Value) -> String {
    value
        .as_u64()
        .map_or_else(|| "-".to_string(), |v| v.to_string())
}

/// `2026-12-07T06:18:01Z` for a time in milliseconds since the epoch.
pub(crate) fn utc(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 to (year,
/// month, day) in the proleptic Gregorian calendar.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(utc(1_796_624_281_000), "2026-12-07T06:18:01Z");
    }
}
