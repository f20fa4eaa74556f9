//! The metrics proxy-wasm plugins define (`proxy_define_metric`), and
//! how often a plugin was stopped (its CPU budget spent, or a trap).
//!
//! One registry per worker process, which is one generation: a plugin's
//! instances (several per plugin, see `filter::wasm`) define the same
//! metric by name and get the same id, so their increments add up. The
//! registry is a process-wide static for that reason: the filters that
//! define metrics are built from the config deep inside route and
//! listener setup, and a worker never holds two generations.
//!
//! On `/metrics` (through `Meters::snapshot` in `telemetry::metrics`):
//!
//! * `baton_wasm_counter_total{plugin, metric}` — counters;
//! * `baton_wasm_gauge{plugin, metric}` — gauges (a negative level shows
//!   as 0: the wire carries unsigned values);
//! * `baton_wasm_histogram_count_total` and `baton_wasm_histogram_sum_total`
//!   `{plugin, metric}` — histograms, as the count and sum of what was
//!   recorded (the plugin's values have no unit baton could bucket);
//! * `baton_wasm_stopped_total{plugin, reason}` — requests answered 500
//!   because the plugin ran out of fuel (`reason="cpu"`) or trapped
//!   (`reason="trap"`).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};

use baton_ipc::{MetricFamily, MetricKind, MetricSample};
use parking_lot::RwLock;

/// What a plugin metric is (the ABI's `MetricType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    pub(crate) fn from_abi(value: i32) -> Option<Kind> {
        Some(match value {
            0 => Kind::Counter,
            1 => Kind::Gauge,
            2 => Kind::Histogram,
            _ => return None,
        })
    }
}

/// Why a plugin was stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// Its per-request fuel ran out.
    Cpu,
    /// It trapped (or exited).
    Trap,
}

#[derive(Debug)]
struct Metric {
    plugin: String,
    name: String,
    kind: Kind,
    /// A counter's total or a gauge's level; a histogram's count.
    value: AtomicI64,
    /// A histogram's sum.
    sum: AtomicU64,
}

/// Every plugin metric of this process.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    metrics: RwLock<Vec<Arc<Metric>>>,
    /// (plugin, reason, count).
    stopped: RwLock<Vec<(String, Stop, Arc<AtomicU64>)>>,
}

static REGISTRY: LazyLock<Registry> = LazyLock::new(Registry::default);

/// The process's registry.
pub(crate) fn registry() -> &'static Registry {
    &REGISTRY
}

impl Registry {
    /// The id of `plugin`'s metric `name` of `kind`: the same for every
    /// definition of it.
    pub(crate) fn define(&self, plugin: &str, kind: Kind, name: &str) -> u32 {
        let find = |all: &[Arc<Metric>]| {
            all.iter()
                .position(|m| m.kind == kind && m.name == name && m.plugin == plugin)
        };
        if let Some(at) = find(&self.metrics.read()) {
            return id(at);
        }
        let mut all = self.metrics.write();
        if let Some(at) = find(&all) {
            return id(at);
        }
        all.push(Arc::new(Metric {
            plugin: plugin.into(),
            name: name.into(),
            kind,
            value: AtomicI64::new(0),
            sum: AtomicU64::new(0),
        }));
        id(all.len() - 1)
    }

    fn get_metric(&self, id: u32) -> Option<Arc<Metric>> {
        self.metrics.read().get(id as usize).cloned()
    }

    /// Adds `offset` to a counter or gauge (a counter does not go down).
    pub(crate) fn increment(&self, id: u32, offset: i64) -> bool {
        match self.get_metric(id) {
            Some(m) if m.kind == Kind::Counter && offset < 0 => false,
            Some(m) if m.kind != Kind::Histogram => {
                m.value.fetch_add(offset, Ordering::Relaxed);
                true
            }
            _ => false,
        }
    }

    /// Sets a gauge, or records a histogram observation.
    pub(crate) fn record(&self, id: u32, value: u64) -> bool {
        match self.get_metric(id) {
            Some(m) if m.kind == Kind::Histogram => {
                m.value.fetch_add(1, Ordering::Relaxed);
                m.sum.fetch_add(value, Ordering::Relaxed);
                true
            }
            Some(m) if m.kind == Kind::Gauge => {
                m.value
                    .store(i64::try_from(value).unwrap_or(i64::MAX), Ordering::Relaxed);
                true
            }
            _ => false,
        }
    }

    /// A counter's or gauge's value, a histogram's count.
    pub(crate) fn get(&self, id: u32) -> Option<u64> {
        self.get_metric(id)
            .map(|m| u64::try_from(m.value.load(Ordering::Relaxed)).unwrap_or(0))
    }

    /// Counts a request stopped because of `plugin`.
    pub(crate) fn stopped(&self, plugin: &str, reason: Stop) {
        let find = |all: &[(String, Stop, Arc<AtomicU64>)]| {
            all.iter()
                .find(|(p, r, _)| p == plugin && *r == reason)
                .map(|(_, _, c)| Arc::clone(c))
        };
        // The read guard must be gone before the write lock is taken.
        let known = find(&self.stopped.read());
        let counter = known.unwrap_or_else(|| {
            let mut all = self.stopped.write();
            find(&all).unwrap_or_else(|| {
                let counter = Arc::new(AtomicU64::new(0));
                all.push((plugin.into(), reason, Arc::clone(&counter)));
                counter
            })
        });
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The families for `/metrics` (none while no plugin defined any).
    pub(crate) fn families(&self) -> Vec<MetricFamily> {
        let metrics = self.metrics.read().clone();
        let sample = |m: &Metric, value: u64| MetricSample {
            labels: vec![
                ("plugin".into(), m.plugin.clone()),
                ("metric".into(), m.name.clone()),
            ],
            value,
        };
        let level = |m: &Metric| u64::try_from(m.value.load(Ordering::Relaxed)).unwrap_or(0);
        let of = |kind: Kind, value: &dyn Fn(&Metric) -> u64| -> Vec<MetricSample> {
            metrics
                .iter()
                .filter(|m| m.kind == kind)
                .map(|m| sample(m, value(m)))
                .collect()
        };
        let stopped = self
            .stopped
            .read()
            .iter()
            .map(|(plugin, reason, count)| MetricSample {
                labels: vec![
                    ("plugin".into(), plugin.clone()),
                    (
                        "reason".into(),
                        match reason {
                            Stop::Cpu => "cpu",
                            Stop::Trap => "trap",
                        }
                        .into(),
                    ),
                ],
                value: count.load(Ordering::Relaxed),
            })
            .collect();
        let family = |name: &str, help: &str, kind, samples| MetricFamily {
            name: name.into(),
            help: help.into(),
            kind,
            samples,
        };
        let mut families = vec![
            family(
                "baton_wasm_counter_total",
                "Counters defined by proxy-wasm plugins.",
                MetricKind::Counter,
                of(Kind::Counter, &level),
            ),
            family(
                "baton_wasm_gauge",
                "Gauges defined by proxy-wasm plugins.",
                MetricKind::Gauge,
                of(Kind::Gauge, &level),
            ),
            family(
                "baton_wasm_histogram_count_total",
                "Values recorded in histograms defined by proxy-wasm plugins.",
                MetricKind::Counter,
                of(Kind::Histogram, &level),
            ),
            family(
                "baton_wasm_histogram_sum_total",
                "The sum of the values recorded in histograms defined by proxy-wasm plugins.",
                MetricKind::Counter,
                of(Kind::Histogram, &|m| m.sum.load(Ordering::Relaxed)),
            ),
            family(
                "baton_wasm_stopped_total",
                "Requests answered 500 because a proxy-wasm plugin spent its CPU budget or trapped.",
                MetricKind::Counter,
                stopped,
            ),
        ];
        families.retain(|f| !f.samples.is_empty());
        families
    }
}

fn id(index: usize) -> u32 {
    u32::try_from(index).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_shared_by_name_and_exported() {
        let registry = Registry::default();
        let a = registry.define("p", Kind::Counter, "requests");
        assert_eq!(registry.define("p", Kind::Counter, "requests"), a);
        let gauge = registry.define("p", Kind::Gauge, "level");
        let histogram = registry.define("p", Kind::Histogram, "sizes");
        assert!(registry.increment(a, 2));
        assert!(!registry.increment(a, -1), "a counter does not go down");
        assert!(!registry.record(a, 1));
        assert!(registry.increment(gauge, -3));
        assert!(registry.record(histogram, 10));
        assert!(registry.record(histogram, 5));
        assert!(!registry.increment(99, 1));
        assert_eq!(registry.get(a), Some(2));
        assert_eq!(registry.get(gauge), Some(0), "a negative level reads 0");
        assert_eq!(registry.get(histogram), Some(2));
        registry.stopped("p", Stop::Cpu);
        registry.stopped("p", Stop::Cpu);
        let families = registry.families();
        let value = |name: &str| {
            families
                .iter()
                .find(|f| f.name == name)
                .map(|f| f.samples[0].value)
        };
        assert_eq!(value("baton_wasm_counter_total"), Some(2));
        assert_eq!(value("baton_wasm_histogram_sum_total"), Some(15));
        assert_eq!(value("baton_wasm_stopped_total"), Some(2));
        assert!(Registry::default().families().is_empty());
    }
}
