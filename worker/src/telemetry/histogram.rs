//! Latency histograms: fixed buckets counted in atomics on the hot path,
//! and their snapshot for the supervisor ([`baton_ipc::Histograms`]).
//!
//! A [`Histogram`] is one series (one label set): a relaxed atomic add to
//! the bucket an observation falls in, another to the sum. No lock, no
//! allocation per request: the series are made when a generation is built
//! (per listener and route, per cluster) and their owners keep them.
//!
//! `route` is the position of the route that matched among the listener's
//! routes (from 0; routes have no names), or `none` when none did.
//!
//! Buckets hold what fell in them, not cumulative counts, on the hot path
//! and on the wire (small numbers: short varints); the supervisor sums the
//! generations' snapshots and writes the cumulative `_bucket{le=...}`
//! lines. Bounds and sums are in microseconds on the wire (integers, so
//! that the message types stay `Eq`), in seconds in `/metrics`.
//!
//! # Families
//!
//! | family | labels | from | to |
//! |---|---|---|---|
//! | `baton_http_request_duration_seconds` | listener, route | the request head read | the exchange's end (response sent, cut, or switched) |
//! | `baton_rpc_request_duration_seconds` | listener, protocol, route | the request decoded | its response or error answered |
//! | `baton_upstream_request_duration_seconds` | cluster | the request routed to the cluster | its end, as above (HTTP and RPC) |
//! | `baton_upstream_connect_duration_seconds` | cluster | a TCP connect to an endpoint | it succeeded (TLS not included) |
//! | `baton_upstream_ttfb_seconds` | cluster | the request on its way up (HTTP: an attempt; RPC: queued on its connection) | the final response head (HTTP) or the response frame (RPC) |

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use baton_ipc::{HistogramFamily, HistogramSeries};

/// Upper bounds of the buckets, in microseconds: 0.1 ms to 60 s, Envoy's
/// range with finer steps below a millisecond (a sidecar's upstream is
/// often on the same host). A `+Inf` bucket follows.
pub(crate) const BOUNDS_US: [u64; 18] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000, 30_000_000, 60_000_000,
];

/// One series: counts per bucket (the last is `+Inf`) and the sum.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BOUNDS_US.len() + 1],
    sum_us: AtomicU64,
}

impl Histogram {
    /// Counts one observation of `elapsed`.
    pub fn observe(&self, elapsed: Duration) {
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        // The first bucket whose bound holds it (`le`: less or equal).
        let at = BOUNDS_US.partition_point(|bound| *bound < us);
        self.buckets[at].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// Observations so far (all buckets).
    #[cfg(test)]
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }

    /// The series as the supervisor takes it.
    fn series(&self, labels: Vec<(String, String)>) -> HistogramSeries {
        HistogramSeries {
            labels,
            buckets: self
                .buckets
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect(),
            sum_us: self.sum_us.load(Ordering::Relaxed),
        }
    }
}

/// A listener's request durations by route: a series per route, in config
/// order, and one for the requests no route took (the listener's own
/// cluster, a 404, an answer before routing).
#[derive(Debug, Default)]
pub struct RouteTimes {
    routes: Box<[Histogram]>,
    unrouted: Histogram,
}

impl RouteTimes {
    /// For a listener with `routes` routes.
    pub fn new(routes: usize) -> RouteTimes {
        RouteTimes {
            routes: (0..routes).map(|_| Histogram::default()).collect(),
            unrouted: Histogram::default(),
        }
    }

    /// Counts a request that route `route` (a position; `None`: none)
    /// took, `elapsed` long.
    pub fn observe(&self, route: Option<usize>, elapsed: Duration) {
        route
            .and_then(|at| self.routes.get(at))
            .unwrap_or(&self.unrouted)
            .observe(elapsed);
    }

    /// Each series with its `route` label: the route's position, or
    /// `none`.
    pub(crate) fn series(&self) -> impl Iterator<Item = (String, &Histogram)> {
        let routes = self.routes.iter().enumerate();
        routes
            .map(|(at, h)| (at.to_string(), h))
            .chain(std::iter::once(("none".to_string(), &self.unrouted)))
    }
}

/// One cluster's histograms, shared by every protocol that uses it.
#[derive(Debug, Default)]
pub struct ClusterTimes {
    /// Requests routed to the cluster, to their end.
    pub request: Histogram,
    /// Successful TCP connects to its endpoints.
    pub connect: Histogram,
    /// Request up to response head or frame.
    pub ttfb: Histogram,
}

/// A family's name and help, and its series with their labels.
pub(crate) fn family<'a>(
    name: &str,
    help: &str,
    series: impl Iterator<Item = (Vec<(String, String)>, &'a Histogram)>,
) -> HistogramFamily {
    HistogramFamily {
        name: name.into(),
        help: help.into(),
        bounds_us: BOUNDS_US.to_vec(),
        series: series
            .map(|(labels, histogram)| histogram.series(labels))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_the_first_bucket_that_holds_them() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(100)); // le 0.0001, inclusive
        h.observe(Duration::from_micros(101)); // le 0.00025
        h.observe(Duration::from_secs(61)); // +Inf
        h.observe(Duration::from_secs(3600)); // +Inf
        let s = h.series(vec![("listener".into(), "front".into())]);
        assert_eq!(s.buckets.len(), BOUNDS_US.len() + 1);
        assert_eq!(s.buckets[0], 1);
        assert_eq!(s.buckets[1], 1);
        assert_eq!(s.buckets[BOUNDS_US.len()], 2);
        assert_eq!(s.buckets.iter().sum::<u64>(), 4);
        assert_eq!(h.count(), 4);
    }

    #[test]
    fn routes_have_a_series_each_and_one_for_no_route() {
        let times = RouteTimes::new(2);
        times.observe(Some(1), Duration::from_millis(1));
        times.observe(None, Duration::from_millis(1));
        times.observe(Some(7), Duration::from_millis(1)); // not a route: none
        let counts: Vec<(String, u64)> = times.series().map(|(r, h)| (r, h.count())).collect();
        assert_eq!(
            counts,
            [("0".into(), 0), ("1".into(), 1), ("none".into(), 2)]
        );
    }

    #[test]
    fn a_family_carries_the_bounds_and_every_series() {
        let (a, b) = (Histogram::default(), Histogram::default());
        a.observe(Duration::from_millis(3));
        let f = family(
            "baton_upstream_ttfb_seconds",
            "h",
            [
                (vec![("cluster".into(), "a".into())], &a),
                (vec![("cluster".into(), "b".into())], &b),
            ]
            .into_iter(),
        );
        assert_eq!(f.bounds_us, BOUNDS_US);
        assert_eq!(f.series.len(), 2);
        assert_eq!(f.series[0].sum_us, 3_000);
        assert_eq!(f.series[1].buckets.iter().sum::<u64>(), 0);
    }
}
