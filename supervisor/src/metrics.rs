//! Metrics across generations, and `/metrics` in Prometheus text format.
//!
//! Workers send their metrics every second ([`baton_ipc::Metrics`]:
//! counters since they started, gauges now); the supervisor keeps the last
//! snapshot of each live generation. When a generation ends — handed off,
//! drained or crashed — its counters are folded into `retired`, so the sum
//! exposed here never goes backwards across an upgrade or a crash (a crash
//! loses at most the last second of a worker's counts, never a sample that
//! was already exposed). Gauges count live generations only.
//!
//! The supervisor does not know the workers' families: it sums by name and
//! labels, so a new worker brings new metrics without a supervisor upgrade.
//! Its own families (upgrades, restarts, generations, requests lost) are
//! added here. One worker family gets the supervisor's counts too:
//! `baton_migration_connections_lost_total` counts what workers closed at
//! a drain deadline (their own count) plus what died with a generation
//! during an upgrade, which only the supervisor can count
//! ([`MetricsStore::count_losses`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use baton_ipc::{MetricFamily, MetricKind, Metrics};

/// A sample's labels, in the order the worker gave them.
pub type Labels = Vec<(String, String)>;

/// The worker family that the supervisor adds the losses of dead
/// generations to.
const CONNECTIONS_LOST: &str = "baton_migration_connections_lost_total";

/// Upper bounds of the upgrade duration histogram, in seconds: from a
/// handful of idle connections (milliseconds) to a drain deadline.
const UPGRADE_BUCKETS: &[f64] = &[0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

#[derive(Debug, Default)]
pub struct MetricsStore {
    /// Counters of generations that are gone, by (family, labels).
    retired: BTreeMap<(String, Labels), u64>,
    /// Help and kind of every family seen.
    meta: BTreeMap<String, (String, MetricKind)>,
    /// The last snapshot of each live generation.
    live: BTreeMap<u32, Vec<MetricFamily>>,
    upgrades: BTreeMap<(String, String), u64>,
    upgrade_seconds: Vec<f64>,
    restarts: u64,
    /// Requests in flight that died with a generation during an upgrade.
    requests_lost: u64,
    /// (generation, pid, binary) of the workers alive.
    generations: Vec<(u32, u32, String)>,
}

impl MetricsStore {
    /// A generation's latest snapshot.
    pub fn update(&mut self, generation: u32, metrics: Metrics) {
        for family in &metrics.families {
            self.meta
                .insert(family.name.clone(), (family.help.clone(), family.kind));
        }
        self.live.insert(generation, metrics.families);
    }

    /// A generation ended: keep its counters, forget its gauges.
    pub fn retire(&mut self, generation: u32) {
        let Some(families) = self.live.remove(&generation) else {
            return;
        };
        for family in families
            .into_iter()
            .filter(|f| f.kind == MetricKind::Counter)
        {
            for sample in family.samples {
                *self
                    .retired
                    .entry((family.name.clone(), sample.labels))
                    .or_default() += sample.value;
            }
        }
    }

    /// Active connections of a live generation, from its last snapshot.
    pub fn connections(&self, generation: u32) -> Option<u64> {
        let families = self.live.get(&generation)?;
        let active = families
            .iter()
            .find(|f| f.name == "baton_listener_connections_active")?;
        Some(active.samples.iter().map(|s| s.value).sum())
    }

    /// Requests waiting for an upstream response in a live generation, from
    /// its last snapshot.
    pub fn pending_requests(&self, generation: u32) -> Option<u64> {
        let families = self.live.get(&generation)?;
        let pending = families
            .iter()
            .find(|f| f.name == "baton_rpc_requests_pending")?;
        Some(pending.samples.iter().map(|s| s.value).sum())
    }

    /// Connections and requests in flight that died with a generation
    /// during an upgrade.
    pub fn count_losses(&mut self, connections: u64, requests: u64) {
        let name = CONNECTIONS_LOST.to_string();
        self.meta.entry(name.clone()).or_insert_with(|| {
            (
                "Connections that did not survive an upgrade: closed at the drain \
                 deadline, or gone with a generation that died."
                    .to_string(),
                MetricKind::Counter,
            )
        });
        *self.retired.entry((name, Vec::new())).or_default() += connections;
        self.requests_lost += requests;
    }

    pub fn upgrade_done(&mut self, kind: &str, outcome: &str, seconds: f64) {
        *self
            .upgrades
            .entry((kind.to_string(), outcome.to_string()))
            .or_default() += 1;
        self.upgrade_seconds.push(seconds);
    }

    pub fn worker_restarted(&mut self) {
        self.restarts += 1;
    }

    /// Workers restarted after a death, so far.
    pub fn restarts(&self) -> u64 {
        self.restarts
    }

    /// A worker family's values by label set, as `/metrics` shows them
    /// (retired + live for counters, live for gauges); empty when no
    /// worker reported it.
    pub fn family(&self, name: &str) -> BTreeMap<&Labels, u64> {
        match self.meta.get(name) {
            Some((_, kind)) => self.sums(name, *kind),
            None => BTreeMap::new(),
        }
    }

    /// The names of the workers' families seen so far.
    pub fn family_names(&self) -> impl Iterator<Item = &str> {
        self.meta.keys().map(String::as_str)
    }

    fn sums(&self, name: &str, kind: MetricKind) -> BTreeMap<&Labels, u64> {
        let mut values: BTreeMap<&Labels, u64> = BTreeMap::new();
        if kind == MetricKind::Counter {
            for ((family, labels), value) in &self.retired {
                if family == name {
                    *values.entry(labels).or_default() += value;
                }
            }
        }
        for family in self.live.values().flatten().filter(|f| f.name == name) {
            for sample in &family.samples {
                *values.entry(&sample.labels).or_default() += sample.value;
            }
        }
        values
    }

    pub fn set_generations(&mut self, generations: Vec<(u32, u32, String)>) {
        self.generations = generations;
    }

    /// Everything, in the Prometheus text exposition format (0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Workers' families: retired + live for counters, live for gauges.
        for (name, (help, kind)) in &self.meta {
            let values = self.sums(name, *kind);
            let kind = match kind {
                MetricKind::Counter => "counter",
                MetricKind::Gauge => "gauge",
            };
            header(&mut out, name, help, kind);
            for (labels, value) in values {
                sample(&mut out, name, labels, &value.to_string());
            }
        }

        header(
            &mut out,
            "baton_upgrades_total",
            "Upgrades and rollbacks, by how they ended.",
            "counter",
        );
        for ((kind, outcome), n) in &self.upgrades {
            let labels = vec![
                ("kind".to_string(), kind.clone()),
                ("outcome".to_string(), outcome.clone()),
            ];
            sample(&mut out, "baton_upgrades_total", &labels, &n.to_string());
        }

        let name = "baton_upgrade_duration_seconds";
        header(
            &mut out,
            name,
            "Time from an upgrade's trigger to its end.",
            "histogram",
        );
        for bound in UPGRADE_BUCKETS {
            let n = self
                .upgrade_seconds
                .iter()
                .filter(|s| **s <= *bound)
                .count();
            let labels = vec![("le".to_string(), bound.to_string())];
            sample(&mut out, &format!("{name}_bucket"), &labels, &n.to_string());
        }
        let all = self.upgrade_seconds.len().to_string();
        sample(
            &mut out,
            &format!("{name}_bucket"),
            &vec![("le".into(), "+Inf".into())],
            &all,
        );
        // fold from +0.0: `sum()` of nothing is -0.0, which prints "-0".
        let sum = self.upgrade_seconds.iter().fold(0.0, |a, b| a + b);
        sample(
            &mut out,
            &format!("{name}_sum"),
            &Vec::new(),
            &sum.to_string(),
        );
        sample(&mut out, &format!("{name}_count"), &Vec::new(), &all);

        header(
            &mut out,
            "baton_migration_requests_lost_total",
            "Requests in flight whose responses died with a generation during an upgrade.",
            "counter",
        );
        sample(
            &mut out,
            "baton_migration_requests_lost_total",
            &Vec::new(),
            &self.requests_lost.to_string(),
        );

        header(
            &mut out,
            "baton_worker_restarts_total",
            "Workers restarted after they died.",
            "counter",
        );
        sample(
            &mut out,
            "baton_worker_restarts_total",
            &Vec::new(),
            &self.restarts.to_string(),
        );

        header(
            &mut out,
            "baton_generation_info",
            "The worker generations alive (value 1).",
            "gauge",
        );
        for (generation, pid, binary) in &self.generations {
            let labels = vec![
                ("generation".to_string(), generation.to_string()),
                ("pid".to_string(), pid.to_string()),
                ("binary".to_string(), binary.clone()),
            ];
            sample(&mut out, "baton_generation_info", &labels, "1");
        }
        out
    }
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let help = help.replace('\\', "\\\\").replace('\n', "\\n");
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, labels: &Labels, value: &str) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let v = v
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            let _ = write!(out, "{k}=\"{v}\"");
        }
        out.push('}');
    }
    let _ = writeln!(out, " {value}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_ipc::MetricSample;

    fn snapshot(accepted: u64, active: u64) -> Metrics {
        let family = |name: &str, kind, value| MetricFamily {
            name: name.into(),
            help: "h".into(),
            kind,
            samples: vec![MetricSample {
                labels: vec![("listener".into(), "front".into())],
                value,
            }],
        };
        Metrics {
            families: vec![
                family(
                    "baton_listener_connections_total",
                    MetricKind::Counter,
                    accepted,
                ),
                family(
                    "baton_listener_connections_active",
                    MetricKind::Gauge,
                    active,
                ),
            ],
        }
    }

    fn value(text: &str, name: &str) -> u64 {
        text.lines()
            .find(|l| l.starts_with(name) && !l.starts_with('#'))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap()
    }

    #[test]
    fn counters_survive_generations_gauges_do_not() {
        let mut store = MetricsStore::default();
        store.update(1, snapshot(10, 4));
        assert_eq!(
            value(&store.render(), "baton_listener_connections_total{"),
            10
        );
        // Generation 2 takes over (its own counts start at 0), 1 retires.
        store.update(2, snapshot(0, 4));
        store.retire(1);
        let text = store.render();
        assert_eq!(value(&text, "baton_listener_connections_total{"), 10);
        assert_eq!(value(&text, "baton_listener_connections_active{"), 4);
        store.update(2, snapshot(3, 5));
        assert_eq!(
            value(&store.render(), "baton_listener_connections_total{"),
            13
        );
        assert_eq!(store.connections(2), Some(5));
        assert_eq!(store.connections(1), None);
    }

    #[test]
    fn renders_the_supervisors_own_families() {
        let mut store = MetricsStore::default();
        store.upgrade_done("upgrade", "succeeded", 0.02);
        store.worker_restarted();
        store.set_generations(vec![(3, 42, r#"/usr/bin/baton-"worker""#.into())]);
        let text = store.render();
        assert!(
            text.contains(r#"baton_upgrades_total{kind="upgrade",outcome="succeeded"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"baton_upgrade_duration_seconds_bucket{le="0.05"} 1"#));
        assert!(text.contains(r#"baton_upgrade_duration_seconds_bucket{le="0.01"} 0"#));
        assert!(text.contains("baton_upgrade_duration_seconds_count 1"));
        assert!(text.contains("baton_worker_restarts_total 1"));
        assert!(text.contains("baton_migration_requests_lost_total 0\n"));
        assert!(
            text.contains(r#"binary="/usr/bin/baton-\"worker\"""#),
            "{text}"
        );
    }

    #[test]
    fn losses_add_to_the_workers_count_and_stay() {
        let lost = |n| Metrics {
            families: vec![MetricFamily {
                name: CONNECTIONS_LOST.into(),
                help: "h".into(),
                kind: MetricKind::Counter,
                samples: vec![MetricSample {
                    labels: Vec::new(),
                    value: n,
                }],
            }],
        };
        let mut store = MetricsStore::default();
        // Before any worker reported the family, it is shown anyway.
        store.count_losses(2, 5);
        let text = store.render();
        assert_eq!(value(&text, "baton_migration_connections_lost_total "), 2);
        assert_eq!(value(&text, "baton_migration_requests_lost_total "), 5);
        // A worker's own count (deadline closes) adds to it, and survives
        // the generation.
        store.update(1, lost(3));
        assert_eq!(
            value(&store.render(), "baton_migration_connections_lost_total "),
            5
        );
        store.retire(1);
        store.count_losses(10, 1);
        let text = store.render();
        assert_eq!(value(&text, "baton_migration_connections_lost_total "), 15);
        assert_eq!(value(&text, "baton_migration_requests_lost_total "), 6);
        assert_eq!(
            text.matches("# TYPE baton_migration_connections_lost_total")
                .count(),
            1
        );
    }
}
