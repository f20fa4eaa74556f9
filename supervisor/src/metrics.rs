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
//!
//! Workers that speak ctrl version 4 send latency histograms too
//! ([`baton_ipc::Histograms`]): each series is kept like a counter (a dead
//! generation's last buckets and sum stay in the total) and exposed as a
//! Prometheus histogram, its buckets made cumulative here. Should a newer
//! worker bring other bounds for a family, the counts of the older ones
//! move to the first new bound at or above theirs, so every `le` still
//! holds (what it counts took at most that long) and no bucket goes back.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use baton_ipc::{Histograms, MetricFamily, MetricKind, Metrics};

/// A sample's labels, in the order the worker gave them.
pub(crate) type Labels = Vec<(String, String)>;

/// The worker family that the supervisor adds the losses of dead
/// generations to.
const CONNECTIONS_LOST: &str = "baton_migration_connections_lost_total";

/// Upper bounds of the upgrade duration histogram, in seconds: from a
/// handful of idle connections (milliseconds) to a drain deadline.
const UPGRADE_BUCKETS: &[f64] = &[0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

#[derive(Debug, Default)]
pub(crate) struct MetricsStore {
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
    /// The xDS client's, when `[xds]` runs one.
    xds: Option<XdsMetrics>,
    /// Help and bounds of every histogram family seen (the latest bounds).
    histogram_meta: BTreeMap<String, (String, Vec<u64>)>,
    /// Histogram series of generations that are gone, by (family, labels).
    histograms_retired: BTreeMap<(String, Labels), Series>,
    /// The latest histogram series of each live generation.
    histograms_live: BTreeMap<u32, BTreeMap<(String, Labels), Series>>,
}

/// One histogram series: counts per bucket (not cumulative; the last is
/// `+Inf`) over `bounds`, and the sum, in microseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Series {
    bounds: Vec<u64>,
    buckets: Vec<u64>,
    sum_us: u64,
}

impl Series {
    /// Adds `other`'s counts, moved to this series' bounds when its own
    /// differ (see the module docs).
    fn add(&mut self, other: &Series) {
        if self.buckets.len() != self.bounds.len() + 1 {
            self.buckets = vec![0; self.bounds.len() + 1];
        }
        for (i, n) in other.buckets.iter().enumerate() {
            let at = match other.bounds.get(i) {
                Some(bound) => self.bounds.partition_point(|b| b < bound),
                None => self.bounds.len(),
            };
            if let Some(bucket) = self.buckets.get_mut(at) {
                *bucket += n;
            }
        }
        self.sum_us += other.sum_us;
    }

    fn empty(bounds: &[u64]) -> Series {
        Series {
            bounds: bounds.to_vec(),
            buckets: vec![0; bounds.len() + 1],
            sum_us: 0,
        }
    }
}

impl MetricsStore {
    /// A generation's latest snapshot.
    pub(crate) fn update(&mut self, generation: u32, metrics: Metrics) {
        for family in &metrics.families {
            self.meta
                .insert(family.name.clone(), (family.help.clone(), family.kind));
        }
        self.live.insert(generation, metrics.families);
    }

    /// A generation's latest histograms (or a part of them: each series
    /// replaces its own previous values).
    pub(crate) fn update_histograms(&mut self, generation: u32, histograms: Histograms) {
        let live = self.histograms_live.entry(generation).or_default();
        for family in histograms.families {
            for series in family.series {
                live.insert(
                    (family.name.clone(), series.labels),
                    Series {
                        bounds: family.bounds_us.clone(),
                        buckets: series.buckets,
                        sum_us: series.sum_us,
                    },
                );
            }
            self.histogram_meta
                .insert(family.name, (family.help, family.bounds_us));
        }
    }

    /// A generation ended: keep its counters, forget its gauges.
    pub(crate) fn retire(&mut self, generation: u32) {
        for (key, series) in self
            .histograms_live
            .remove(&generation)
            .into_iter()
            .flatten()
        {
            let bounds = self
                .histogram_meta
                .get(&key.0)
                .map_or_else(|| series.bounds.clone(), |(_, b)| b.clone());
            self.histograms_retired
                .entry(key)
                .or_insert_with(|| Series::empty(&bounds))
                .add(&series);
        }
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
    pub(crate) fn connections(&self, generation: u32) -> Option<u64> {
        let families = self.live.get(&generation)?;
        let active = families
            .iter()
            .find(|f| f.name == "baton_listener_connections_active")?;
        Some(active.samples.iter().map(|s| s.value).sum())
    }

    /// Requests waiting for an upstream response in a live generation, from
    /// its last snapshot.
    pub(crate) fn pending_requests(&self, generation: u32) -> Option<u64> {
        let families = self.live.get(&generation)?;
        let pending = families
            .iter()
            .find(|f| f.name == "baton_rpc_requests_pending")?;
        Some(pending.samples.iter().map(|s| s.value).sum())
    }

    /// Connections and requests in flight that died with a generation
    /// during an upgrade.
    pub(crate) fn count_losses(&mut self, connections: u64, requests: u64) {
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

    pub(crate) fn upgrade_done(&mut self, kind: &str, outcome: &str, seconds: f64) {
        *self
            .upgrades
            .entry((kind.to_string(), outcome.to_string()))
            .or_default() += 1;
        self.upgrade_seconds.push(seconds);
    }

    pub(crate) fn worker_restarted(&mut self) {
        self.restarts += 1;
    }

    /// Workers restarted after a death, so far.
    pub(crate) fn restarts(&self) -> u64 {
        self.restarts
    }

    /// A worker family's values by label set, as `/metrics` shows them
    /// (retired + live for counters, live for gauges); empty when no
    /// worker reported it.
    pub(crate) fn family(&self, name: &str) -> BTreeMap<&Labels, u64> {
        match self.meta.get(name) {
            Some((_, kind)) => self.sums(name, *kind),
            None => BTreeMap::new(),
        }
    }

    /// A worker family's values by label set in the newest live
    /// generation's last snapshot (the one that takes new work): for a
    /// state, such as an endpoint's health, that two generations may see
    /// differently during an upgrade. Empty when it has not reported it.
    pub(crate) fn newest(&self, name: &str) -> BTreeMap<&Labels, u64> {
        self.live
            .values()
            .next_back()
            .into_iter()
            .flatten()
            .filter(|f| f.name == name)
            .flat_map(|f| f.samples.iter().map(|s| (&s.labels, s.value)))
            .collect()
    }

    /// The names of the workers' families seen so far.
    pub(crate) fn family_names(&self) -> impl Iterator<Item = &str> {
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

    pub(crate) fn set_generations(&mut self, generations: Vec<(u32, u32, String)>) {
        self.generations = generations;
    }

    /// Everything, in the Prometheus text exposition format (0.0.4).
    pub(crate) fn render(&self) -> String {
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

        self.render_histograms(&mut out);

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
        if let Some(xds) = &self.xds {
            xds.render(&mut out);
        }
        out
    }
}

/// The xDS client's families (present only with `[xds]`).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct XdsMetrics {
    /// Responses per (type: `cds`, `eds`, `lds`, `rds`, `sds`; result:
    /// `accepted`, `rejected`).
    pub updates: BTreeMap<(String, String), u64>,
    pub connected: bool,
    /// When the last accepted update was taken in (after the debounce),
    /// seconds since the Unix epoch.
    pub last_update: Option<f64>,
}

impl XdsMetrics {
    fn render(&self, out: &mut String) {
        let name = "baton_xds_updates_total";
        header(
            out,
            name,
            "xDS responses, by resource type and whether they were accepted (ACK) or rejected (NACK).",
            "counter",
        );
        for ((kind, result), n) in &self.updates {
            let labels = vec![
                ("type".to_string(), kind.clone()),
                ("result".to_string(), result.clone()),
            ];
            sample(out, name, &labels, &n.to_string());
        }
        let name = "baton_xds_connected";
        header(
            out,
            name,
            "1 while the ADS stream to a control plane is open.",
            "gauge",
        );
        sample(
            out,
            name,
            &Vec::new(),
            if self.connected { "1" } else { "0" },
        );
        let name = "baton_xds_last_update_timestamp_seconds";
        header(
            out,
            name,
            "When the last accepted xDS update was taken in (Unix time; 0: none yet).",
            "gauge",
        );
        let at = self.last_update.unwrap_or(0.0);
        sample(out, name, &Vec::new(), &format!("{at:.3}"));
    }
}

impl MetricsStore {
    /// The xDS client's counters and state (the last update's time kept).
    pub(crate) fn set_xds(&mut self, metrics: XdsMetrics) {
        let last_update = self.xds.as_ref().and_then(|x| x.last_update);
        self.xds = Some(XdsMetrics {
            last_update,
            ..metrics
        });
    }

    /// An accepted xDS update was taken in at `at` (Unix seconds).
    pub(crate) fn xds_updated(&mut self, at: f64) {
        self.xds.get_or_insert_default().last_update = Some(at);
    }
}

// === impl MetricsStore: histograms ===

impl MetricsStore {
    /// Quantiles `qs` (each in 0..=1) of worker histogram `family`, in
    /// milliseconds, over its series whose labels include every pair of
    /// `by` (summed: every route of a listener), estimated as Prometheus'
    /// `histogram_quantile` does (linear within a bucket; the highest
    /// finite bound for the `+Inf` bucket). `None` when nothing is counted.
    pub(crate) fn quantiles_ms(
        &self,
        family: &str,
        by: &[(&str, &str)],
        qs: &[f64],
    ) -> Option<Vec<f64>> {
        let (_, bounds) = self.histogram_meta.get(family)?;
        let mut total = Series::empty(bounds);
        let live = self.histograms_live.values().flatten();
        for ((name, labels), series) in self.histograms_retired.iter().chain(live) {
            let wanted = by
                .iter()
                .all(|(k, v)| labels.iter().any(|(lk, lv)| lk == k && lv == v));
            if name == family && wanted {
                total.add(series);
            }
        }
        let count: u64 = total.buckets.iter().sum();
        if count == 0 {
            return None;
        }
        let quantile = |q: f64| {
            let rank = q.clamp(0.0, 1.0) * count as f64;
            let mut below = 0u64;
            for (i, n) in total.buckets.iter().enumerate() {
                if *n > 0 && (below + n) as f64 >= rank {
                    let Some(upper) = bounds.get(i) else {
                        // `+Inf`: the highest bound is all we know.
                        return bounds.last().copied().unwrap_or(0) as f64 / 1000.0;
                    };
                    let lower = if i == 0 { 0 } else { bounds[i - 1] };
                    let within = (rank - below as f64).max(0.0) / *n as f64;
                    let us = lower as f64 + (*upper - lower) as f64 * within;
                    return (us / 10.0).round() / 100.0;
                }
                below += n;
            }
            0.0
        };
        Some(qs.iter().map(|q| quantile(*q)).collect())
    }

    /// The workers' histograms: retired + live, per series, on the
    /// family's latest bounds.
    fn render_histograms(&self, out: &mut String) {
        for (name, (help, bounds)) in &self.histogram_meta {
            let mut totals: BTreeMap<&Labels, Series> = BTreeMap::new();
            let live = self.histograms_live.values().flatten();
            for ((family, labels), series) in self.histograms_retired.iter().chain(live) {
                if family == name {
                    totals
                        .entry(labels)
                        .or_insert_with(|| Series::empty(bounds))
                        .add(series);
                }
            }
            header(out, name, help, "histogram");
            let bucket = format!("{name}_bucket");
            for (labels, series) in totals {
                let mut cumulative = 0u64;
                for (i, n) in series.buckets.iter().enumerate() {
                    cumulative += n;
                    let le = bounds
                        .get(i)
                        .map_or_else(|| "+Inf".to_string(), |b| seconds(*b));
                    let mut with_le = labels.clone();
                    with_le.push(("le".to_string(), le));
                    sample(out, &bucket, &with_le, &cumulative.to_string());
                }
                sample(out, &format!("{name}_sum"), labels, &seconds(series.sum_us));
                sample(
                    out,
                    &format!("{name}_count"),
                    labels,
                    &cumulative.to_string(),
                );
            }
        }
    }
}

/// Microseconds as seconds, in decimal: exact, no float rounding.
fn seconds(us: u64) -> String {
    let (whole, fraction) = (us / 1_000_000, us % 1_000_000);
    if fraction == 0 {
        return whole.to_string();
    }
    let fraction = format!("{fraction:06}");
    format!("{whole}.{}", fraction.trim_end_matches('0'))
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

    fn histogram(buckets: Vec<u64>, sum_us: u64, bounds_us: Vec<u64>) -> Histograms {
        Histograms {
            families: vec![baton_ipc::HistogramFamily {
                name: "baton_upstream_ttfb_seconds".into(),
                help: "h".into(),
                bounds_us,
                series: vec![baton_ipc::HistogramSeries {
                    labels: vec![("cluster".into(), "back".into())],
                    buckets,
                    sum_us,
                }],
            }],
        }
    }

    #[test]
    fn histograms_are_cumulative_and_survive_generations() {
        let mut store = MetricsStore::default();
        store.update_histograms(1, histogram(vec![2, 1, 0], 1_500, vec![500, 250_000]));
        let text = store.render();
        assert!(text.contains("# TYPE baton_upstream_ttfb_seconds histogram\n"));
        for line in [
            r#"baton_upstream_ttfb_seconds_bucket{cluster="back",le="0.0005"} 2"#,
            r#"baton_upstream_ttfb_seconds_bucket{cluster="back",le="0.25"} 3"#,
            r#"baton_upstream_ttfb_seconds_bucket{cluster="back",le="+Inf"} 3"#,
            r#"baton_upstream_ttfb_seconds_sum{cluster="back"} 0.0015"#,
            r#"baton_upstream_ttfb_seconds_count{cluster="back"} 3"#,
        ] {
            assert!(text.contains(&format!("{line}\n")), "{line} in\n{text}");
        }
        // Generation 2 starts from nothing; 1's last values stay.
        store.update_histograms(2, histogram(vec![0, 0, 0], 0, vec![500, 250_000]));
        store.retire(1);
        store.update_histograms(2, histogram(vec![1, 0, 1], 2_000_000, vec![500, 250_000]));
        let text = store.render();
        assert!(
            text.contains(r#"_bucket{cluster="back",le="0.0005"} 3"#),
            "{text}"
        );
        assert!(
            text.contains(r#"_bucket{cluster="back",le="+Inf"} 5"#),
            "{text}"
        );
        assert!(text.contains(r#"_sum{cluster="back"} 2.0015"#), "{text}");
        assert!(text.contains(r#"_count{cluster="back"} 5"#), "{text}");
    }

    #[test]
    fn quantiles_interpolate_within_buckets_over_matching_series() {
        let mut store = MetricsStore::default();
        assert_eq!(
            store.quantiles_ms("baton_upstream_ttfb_seconds", &[], &[0.5]),
            None
        );
        // 10 in (0, 1 ms], 10 in (1 ms, 3 ms]; another cluster's ignored.
        store.update_histograms(1, histogram(vec![10, 10, 0], 0, vec![1_000, 3_000]));
        let mut other = histogram(vec![0, 0, 50], 0, vec![1_000, 3_000]);
        other.families[0].series[0].labels = vec![("cluster".into(), "other".into())];
        store.update_histograms(1, other);
        let by = [("cluster", "back")];
        let q = store
            .quantiles_ms("baton_upstream_ttfb_seconds", &by, &[0.25, 0.5, 0.75, 1.0])
            .unwrap();
        assert_eq!(q, vec![0.5, 1.0, 2.0, 3.0]);
        // All of it: the other cluster's +Inf puts p99 at the top bound.
        let q = store
            .quantiles_ms("baton_upstream_ttfb_seconds", &[], &[0.99])
            .unwrap();
        assert_eq!(q, vec![3.0]);
    }

    #[test]
    fn counts_move_to_new_bounds_without_going_back() {
        let mut store = MetricsStore::default();
        store.update_histograms(1, histogram(vec![1, 1, 1], 0, vec![500, 250_000]));
        store.retire(1);
        // A newer worker with finer bounds: 0.5 ms stays, 250 ms goes to
        // the first new bound at or above it (1 s).
        store.update_histograms(2, histogram(vec![0, 0, 0, 0], 0, vec![100, 500, 1_000_000]));
        let text = store.render();
        assert!(text.contains(r#"le="0.0001"} 0"#), "{text}");
        assert!(text.contains(r#"le="0.0005"} 1"#), "{text}");
        assert!(text.contains(r#"le="1"} 2"#), "{text}");
        assert!(text.contains(r#"le="+Inf"} 3"#), "{text}");
        assert_eq!(seconds(60_000_000), "60");
        assert_eq!(seconds(2_500), "0.0025");
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
