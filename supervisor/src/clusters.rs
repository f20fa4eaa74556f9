//! The clusters of the config in force and their endpoints, as `baton
//! status`, `/status`, `/clusters` and the status page show them: each
//! endpoint's address and weight from the config (read as plain TOML, so
//! that a newer worker's keys do not stop it), its health, ejection and
//! work in flight from the workers' metrics.
//!
//! Health and ejection are states: they come from the newest live
//! generation (the one that takes new work; during an upgrade the two may
//! disagree). Work in flight is summed over the live generations, as every
//! gauge of `/metrics` is: the old one still finishes its requests.
//!
//! | field | from |
//! |---|---|
//! | `health` | `baton_upstream_health_checked` 0 → unknown; else `baton_upstream_healthy` 1 → healthy, 0 → unhealthy |
//! | `ejected` | `baton_upstream_ejected` |
//! | `in_flight` | `baton_upstream_in_flight` |

use std::collections::{BTreeMap, HashMap};

use crate::control::proto::{ClusterStatus, EndpointHealth, EndpointStatus};
use crate::metrics::{Labels, MetricsStore};

/// The clusters of `config` (the config text in force) in config order,
/// every endpoint as no worker has reported yet. A config that does not
/// parse has none (the admin API says why on its own).
pub(crate) fn configured(config: &str) -> Vec<ClusterStatus> {
    let Ok(config) = config.parse::<toml::Table>() else {
        return Vec::new();
    };
    config
        .get("clusters")
        .and_then(toml::Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(toml::Value::as_table)
        .map(|c| ClusterStatus {
            name: c
                .get("name")
                .and_then(toml::Value::as_str)
                .unwrap_or("")
                .to_string(),
            lb: c
                .get("lb")
                .and_then(toml::Value::as_str)
                .unwrap_or("round_robin")
                .to_string(),
            endpoints: c
                .get("endpoints")
                .and_then(toml::Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(endpoint)
                .collect(),
        })
        .collect()
}

/// `"ip:port"` (weight 1) or `{ address, weight }`.
fn endpoint(value: &toml::Value) -> Option<EndpointStatus> {
    let (address, weight) = match value {
        toml::Value::String(address) => (address.as_str(), 1),
        toml::Value::Table(t) => {
            let address = t.get("address").and_then(toml::Value::as_str)?;
            let weight = t.get("weight").and_then(toml::Value::as_integer);
            (address, weight.unwrap_or(1))
        }
        _ => return None,
    };
    // Written as the worker labels it (`SocketAddr`'s form), so that the
    // metrics are found however the config spelled it.
    let address = address
        .parse::<std::net::SocketAddr>()
        .map_or_else(|_| address.to_string(), |a| a.to_string());
    Some(EndpointStatus {
        address,
        weight: u64::try_from(weight).unwrap_or(0),
        health: EndpointHealth::Unknown,
        ejected: None,
        in_flight: None,
    })
}

/// Sets every endpoint's health, ejection and work in flight from the
/// workers' latest metrics.
pub(crate) fn refresh(clusters: &mut [ClusterStatus], metrics: &MetricsStore) {
    let checked = by_endpoint(&metrics.newest("baton_upstream_health_checked"));
    let healthy = by_endpoint(&metrics.newest("baton_upstream_healthy"));
    let ejected = by_endpoint(&metrics.newest("baton_upstream_ejected"));
    let in_flight = by_endpoint(&metrics.family("baton_upstream_in_flight"));
    for cluster in clusters {
        for e in &mut cluster.endpoints {
            let key = (cluster.name.as_str(), e.address.as_str());
            let value = |values: &HashMap<(&str, &str), u64>| values.get(&key).copied();
            e.health = match (value(&checked), value(&healthy)) {
                (Some(1..), Some(0)) => EndpointHealth::Unhealthy,
                (Some(1..), Some(_)) => EndpointHealth::Healthy,
                _ => EndpointHealth::Unknown,
            };
            e.ejected = value(&ejected).map(|n| n > 0);
            e.in_flight = value(&in_flight);
        }
    }
}

/// A per-endpoint family's values by (cluster, endpoint), summed over any
/// other labels: one pass, so that a refresh stays linear in the number
/// of endpoints.
fn by_endpoint<'a>(values: &BTreeMap<&'a Labels, u64>) -> HashMap<(&'a str, &'a str), u64> {
    let mut out = HashMap::new();
    for (labels, value) in values {
        let label = |key: &str| {
            labels
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        if let (Some(cluster), Some(endpoint)) = (label("cluster"), label("endpoint")) {
            *out.entry((cluster, endpoint)).or_default() += value;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use baton_ipc::{MetricFamily, MetricKind, MetricSample, Metrics};

    use super::*;

    const CONFIG: &str = r#"
[[clusters]]
name = "back"
lb = "least_request"
endpoints = [{ address = "10.0.0.5:9000", weight = 3 }, "10.0.0.6:9000", "10.0.0.7:9000"]
"#;

    fn gauge(name: &str, values: &[(&str, u64)]) -> MetricFamily {
        MetricFamily {
            name: name.into(),
            help: String::new(),
            kind: MetricKind::Gauge,
            samples: values
                .iter()
                .map(|(endpoint, value)| MetricSample {
                    labels: vec![
                        ("cluster".into(), "back".into()),
                        ("endpoint".into(), (*endpoint).into()),
                    ],
                    value: *value,
                })
                .collect(),
        }
    }

    fn snapshot(checked: u64, healthy: u64, ejected: u64, in_flight: u64) -> Metrics {
        let five = "10.0.0.5:9000";
        let six = "10.0.0.6:9000";
        Metrics {
            families: vec![
                gauge(
                    "baton_upstream_health_checked",
                    &[(five, checked), (six, 0)],
                ),
                gauge("baton_upstream_healthy", &[(five, healthy), (six, 1)]),
                gauge("baton_upstream_ejected", &[(five, ejected), (six, 0)]),
                gauge("baton_upstream_in_flight", &[(five, in_flight), (six, 0)]),
            ],
        }
    }

    #[test]
    fn weights_from_the_config_and_the_rest_from_the_metrics() {
        let mut clusters = configured(CONFIG);
        assert_eq!(clusters.len(), 1);
        assert_eq!(clusters[0].lb, "least_request");
        let weights: Vec<u64> = clusters[0].endpoints.iter().map(|e| e.weight).collect();
        assert_eq!(weights, [3, 1, 1]);

        let mut store = MetricsStore::default();
        store.update(1, snapshot(1, 0, 1, 4));
        refresh(&mut clusters, &store);
        let [five, six, seven] = &clusters[0].endpoints[..] else {
            panic!("{clusters:?}");
        };
        assert_eq!(five.health, EndpointHealth::Unhealthy);
        assert_eq!((five.ejected, five.in_flight), (Some(true), Some(4)));
        assert_eq!(six.health, EndpointHealth::Unknown, "not checked");
        assert_eq!((six.ejected, six.in_flight), (Some(false), Some(0)));
        // Nothing reported: nothing claimed.
        assert_eq!(seven.health, EndpointHealth::Unknown);
        assert_eq!((seven.ejected, seven.in_flight), (None, None));

        // A newer generation sees it healthy: its view wins; the work in
        // flight is both generations'.
        store.update(2, snapshot(1, 1, 0, 2));
        refresh(&mut clusters, &store);
        let five = &clusters[0].endpoints[0];
        assert_eq!(five.health, EndpointHealth::Healthy);
        assert_eq!((five.ejected, five.in_flight), (Some(false), Some(6)));
    }

    #[test]
    fn a_config_that_does_not_parse_has_no_clusters() {
        assert!(configured("[[clusters]\n").is_empty());
    }
}
