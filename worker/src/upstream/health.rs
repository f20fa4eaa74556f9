//! Endpoint health: what active checks and outlier detection know about
//! each endpoint of a cluster, and the try order that follows it.
//!
//! # The status table
//!
//! A [`ClusterHealth`] is built once per generation per cluster and shared
//! by its threads (plain atomics, no lock). Per endpoint it holds:
//!
//! * **health**, from active checks ([`Health`]): `Unknown` until the first
//!   probe, then `Healthy` or `Unhealthy` by the check's thresholds. Only
//!   the endpoint's checker task (the `check` submodule) writes it. A
//!   cluster without `[clusters.health_check]` keeps every endpoint
//!   `Unknown`, which counts as available.
//! * **ejection**, from outlier detection: ejected until a deadline (in
//!   milliseconds from the table's epoch, 0 when not ejected), how many
//!   times it has been ejected, and its run of consecutive errors.
//!   Written by whoever learns a request's outcome ([`ClusterHealth::report`]).
//!
//! Every field is plain data keyed by (cluster name, endpoint address)
//! ([`ClusterHealth::records`]): at an upgrade the old generation hands
//! the table to the new one, which takes it over
//! ([`ClusterHealth::restore`]) before it accepts and before its
//! checkers start ([`ClusterHealth::settle`]; the `migrate` layer
//! carries it).
//!
//! # Choosing among the available
//!
//! [`Healthy`] wraps a cluster's [`Balancer`]: when no endpoint is
//! unhealthy or ejected it is the policy itself (two relaxed loads per
//! pick). Otherwise, if the policy's first choice is out, it asks the
//! policy again (a few times: round robin's next turn, random's next draw,
//! so the available endpoints keep their shares), and the order it returns
//! skips every endpoint that is out ([`TryOrder::available_in`]). A hashing
//! policy answers the same key the same way, so its request falls through
//! to the next endpoint in turn, as a ring lookup walks on.
//!
//! [`Healthy`] also counts each endpoint's work in flight (the
//! [`Load`](crate::upstream::lb::Load) guards of its callers) in the
//! endpoint's meter, for every policy, so that `/metrics` and `baton
//! status` show it whatever the cluster's `lb`.
//! The meter mirrors the table too: `healthy` and `checked` (health),
//! `ejected` (an ejection in force).
//!
//! **Panic mode** (Envoy's `healthy_panic_threshold`, default 50 %): when
//! the share of available endpoints falls below the cluster's threshold,
//! the order is the policy's over all endpoints, as Envoy does: with most
//! of a cluster out, the checks are more likely wrong than the cluster.
//!
//! # Outlier detection
//!
//! Envoy's consecutive-errors detector: every failed request on an
//! endpoint (HTTP 5xx, connect failure or timeout, RPC error response or
//! timeout) adds one to its run, every success resets it. A run of
//! `consecutive_errors` ejects the endpoint for `base_ejection_time` ×
//! the number of times it has been ejected, capped at
//! `max_ejection_time` — unless `max_ejection_percent` of the cluster is
//! ejected already (one endpoint may always be, as in Envoy). An ejected
//! endpoint comes back when its time is up, with a fresh run.
//!
//! Beside it, as in Envoy: a **gateway-failure** run (502, 503, 504,
//! connect failures, timeouts, connections lost under requests — any
//! other error answer ends it) ejecting at `consecutive_gateway_failure`,
//! when set; and two **rate detectors**, which count every request of an
//! endpoint in a window and look at the windows once per `interval`
//! (whoever reports first past it looks; no task): **success rate** (on
//! by default: among at least `success_rate_minimum_hosts` endpoints with
//! `success_rate_request_volume` requests, one below the mean by more
//! than `success_rate_stdev_factor`/1000 standard deviations is out) and
//! **failure percentage** (off by default: one with at least
//! `failure_percentage_threshold` % failed). Each ejects with its
//! `enforcing_*` probability. The runs and windows are not carried to
//! the next generation (ejections and the errors' run are).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use baton_config::{Cluster, OutlierDetection};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use crate::telemetry::meters::EndpointMeter;
use crate::upstream::lb::{Availability, Balancer, EndpointIndex, Pick, TryOrder};

pub(crate) mod check;

/// How many times [`Healthy`] asks its policy again when the first choice
/// is out: enough that round robin reaches the next available endpoint
/// past a few dead ones in a row, bounded so that a pick stays cheap.
const REASKS: usize = 4;

/// What active checks say of an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Health {
    /// Not checked (yet): available.
    Unknown = 0,
    Healthy = 1,
    Unhealthy = 2,
}

impl Health {
    fn from_u8(n: u8) -> Health {
        match n {
            1 => Health::Healthy,
            2 => Health::Unhealthy,
            _ => Health::Unknown,
        }
    }
}

/// A request's or connect's outcome, as outlier detection counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Success,
    /// An error answer from the endpoint: HTTP 5xx but 502–504, an RPC
    /// error response.
    Failure,
    /// The endpoint could not be reached or did not answer: HTTP 502,
    /// 503, 504, a connect failure, a timeout, a connection lost under
    /// requests.
    GatewayFailure,
}

impl Outcome {
    /// An HTTP response status's outcome.
    pub(crate) fn of_status(status: u16) -> Outcome {
        match status {
            502..=504 => Outcome::GatewayFailure,
            500.. => Outcome::Failure,
            _ => Outcome::Success,
        }
    }
}

/// One endpoint's state.
#[derive(Debug)]
struct EndpointStatus {
    address: SocketAddr,
    health: AtomicU8,
    /// Milliseconds from the table's epoch; 0: not ejected.
    ejected_until: AtomicU64,
    ejections: AtomicU32,
    consecutive_errors: AtomicU32,
    consecutive_gateway: AtomicU32,
    /// Requests, and failed ones, since the rate detectors last looked
    /// (counted only when one of them is on).
    window_total: AtomicU32,
    window_failed: AtomicU32,
    meter: Arc<EndpointMeter>,
}

/// One endpoint's state as plain data (for a later generation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EndpointRecord {
    pub(crate) cluster: String,
    pub(crate) address: SocketAddr,
    pub(crate) health: Health,
    /// How much longer it stays ejected, if it is.
    pub(crate) ejected_for: Option<Duration>,
    pub(crate) ejections: u32,
    pub(crate) consecutive_errors: u32,
}

/// The health of one cluster's endpoints in this generation.
#[derive(Debug)]
pub(crate) struct ClusterHealth {
    cluster: String,
    endpoints: Box<[EndpointStatus]>,
    /// The zero of the ejection deadlines.
    epoch: Instant,
    outlier: Option<OutlierDetection>,
    panic_threshold: u8,
    /// Endpoints marked `Unhealthy` now, and with an ejection deadline set
    /// (maybe passed): when both are 0 nothing is out and a pick takes the
    /// fast path.
    unhealthy: AtomicUsize,
    ejected: AtomicUsize,
    /// Whether the table holds its starting state: the active checkers
    /// wait for it before their first probe ([`ClusterHealth::settle`]).
    settled: watch::Sender<bool>,
    /// When the rate detectors look next (ms from the epoch; whoever
    /// reports first past it looks).
    next_analysis: AtomicU64,
    /// Whether the cluster has been picked for traffic in this
    /// generation (for `no_traffic_interval`).
    used: AtomicBool,
    /// Told once, when `used` becomes true: checkers waiting out a
    /// `no_traffic_interval` probe at once.
    first_use: Notify,
}

impl ClusterHealth {
    /// Every endpoint `Unknown` and not ejected. `meters`: one per
    /// endpoint, same order (missing ones are made here).
    pub(crate) fn new(cluster: &Cluster, meters: &[Arc<EndpointMeter>]) -> ClusterHealth {
        let endpoints = cluster
            .endpoints
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let meter = meters.get(i).cloned().unwrap_or_default();
                // Not checked: healthy for the gauge.
                meter.healthy.store(1, Ordering::Relaxed);
                EndpointStatus {
                    address: e.address,
                    health: AtomicU8::new(Health::Unknown as u8),
                    ejected_until: AtomicU64::new(0),
                    ejections: AtomicU32::new(0),
                    consecutive_errors: AtomicU32::new(0),
                    consecutive_gateway: AtomicU32::new(0),
                    window_total: AtomicU32::new(0),
                    window_failed: AtomicU32::new(0),
                    meter,
                }
            })
            .collect();
        ClusterHealth {
            cluster: cluster.name.clone(),
            endpoints,
            epoch: Instant::now(),
            outlier: cluster.outlier_detection.clone(),
            panic_threshold: cluster.healthy_panic_threshold,
            unhealthy: AtomicUsize::new(0),
            ejected: AtomicUsize::new(0),
            settled: watch::Sender::new(false),
            used: AtomicBool::new(false),
            first_use: Notify::new(),
            next_analysis: AtomicU64::new(
                cluster
                    .outlier_detection
                    .as_ref()
                    .map_or(u64::MAX, |o| millis(o.interval)),
            ),
        }
    }

    /// Whether any request or connection has been balanced over the
    /// cluster in this generation.
    pub(crate) fn used(&self) -> bool {
        self.used.load(Ordering::Relaxed)
    }

    /// Waits up to `quiet` while the cluster has had no traffic: returns
    /// early when its first request or connection is balanced.
    pub(crate) async fn quiet_for(&self, quiet: Duration) {
        let first_use = self.first_use.notified();
        tokio::pin!(first_use);
        // Registered before looking, so a first use in between wakes it.
        first_use.as_mut().enable();
        if self.used() {
            return;
        }
        tokio::select! {
            () = tokio::time::sleep(quiet) => {}
            () = first_use => {}
        }
    }

    pub(crate) fn cluster(&self) -> &str {
        &self.cluster
    }

    pub(crate) fn endpoint_count(&self) -> usize {
        self.endpoints.len()
    }

    pub(crate) fn address(&self, endpoint: EndpointIndex) -> Option<SocketAddr> {
        self.endpoints.get(endpoint.0).map(|e| e.address)
    }

    fn now_ms(&self) -> u64 {
        // At least 1: 0 means "not ejected".
        u64::try_from(self.epoch.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    pub(crate) fn health(&self, endpoint: EndpointIndex) -> Health {
        self.endpoints.get(endpoint.0).map_or(Health::Unknown, |e| {
            Health::from_u8(e.health.load(Ordering::Relaxed))
        })
    }

    /// Sets what active checks say (the endpoint's checker only).
    pub(crate) fn set_health(&self, endpoint: EndpointIndex, health: Health) {
        let Some(e) = self.endpoints.get(endpoint.0) else {
            return;
        };
        let before = Health::from_u8(e.health.swap(health as u8, Ordering::Relaxed));
        if before == health {
            return;
        }
        match (before, health) {
            (Health::Unhealthy, _) => {
                self.unhealthy.fetch_sub(1, Ordering::Relaxed);
            }
            (_, Health::Unhealthy) => {
                self.unhealthy.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
        e.meter
            .healthy
            .store(u64::from(health != Health::Unhealthy), Ordering::Relaxed);
        e.meter
            .checked
            .store(u64::from(health != Health::Unknown), Ordering::Relaxed);
        tracing::info!(
            cluster = %self.cluster,
            endpoint = %e.address,
            ?health,
            "endpoint health changed"
        );
    }

    /// Whether `endpoint` is ejected now; clears an ejection whose time is
    /// up.
    fn ejected(&self, e: &EndpointStatus, now: u64) -> bool {
        let until = e.ejected_until.load(Ordering::Relaxed);
        if until == 0 {
            return false;
        }
        if until > now {
            return true;
        }
        // Time is up: back, with a fresh run (whoever clears it counts it).
        if e.ejected_until
            .compare_exchange(until, 0, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            e.consecutive_errors.store(0, Ordering::Relaxed);
            self.ejected.fetch_sub(1, Ordering::Relaxed);
            e.meter.ejected.store(0, Ordering::Relaxed);
            tracing::info!(cluster = %self.cluster, endpoint = %e.address, "ejection ended");
        }
        false
    }

    fn is_available(&self, e: &EndpointStatus, now: u64) -> bool {
        e.health.load(Ordering::Relaxed) != Health::Unhealthy as u8 && !self.ejected(e, now)
    }

    /// Whether any endpoint may be out (the slow path).
    fn any_out(&self) -> bool {
        self.unhealthy.load(Ordering::Relaxed) != 0 || self.ejected.load(Ordering::Relaxed) != 0
    }

    /// Whether so few endpoints are available that the cluster uses all.
    fn panicking(&self) -> bool {
        let now = self.now_ms();
        let available = self
            .endpoints
            .iter()
            .filter(|e| self.is_available(e, now))
            .count();
        // available / total < threshold %, in integers.
        available * 100 < usize::from(self.panic_threshold) * self.endpoints.len()
    }

    /// Counts a request's or connect's outcome on `endpoint` for outlier
    /// detection (nothing without `[clusters.outlier_detection]`).
    pub(crate) fn report(&self, endpoint: EndpointIndex, outcome: Outcome) {
        let (Some(outlier), Some(e)) = (&self.outlier, self.endpoints.get(endpoint.0)) else {
            return;
        };
        if rates_on(outlier) {
            e.window_total.fetch_add(1, Ordering::Relaxed);
            if outcome != Outcome::Success {
                e.window_failed.fetch_add(1, Ordering::Relaxed);
            }
            self.maybe_analyse(outlier);
        }
        // Envoy's runs: every failure adds to the errors' run, a gateway
        // failure to the gateway run too; a success ends both, another
        // failure ends the gateway run.
        let gateway = match outcome {
            Outcome::Success => {
                // Read first: a success on a quiet endpoint writes nothing.
                for run in [&e.consecutive_errors, &e.consecutive_gateway] {
                    if run.load(Ordering::Relaxed) != 0 {
                        run.store(0, Ordering::Relaxed);
                    }
                }
                return;
            }
            Outcome::Failure => {
                if e.consecutive_gateway.load(Ordering::Relaxed) != 0 {
                    e.consecutive_gateway.store(0, Ordering::Relaxed);
                }
                0
            }
            Outcome::GatewayFailure => e.consecutive_gateway.fetch_add(1, Ordering::Relaxed) + 1,
        };
        let run = e.consecutive_errors.fetch_add(1, Ordering::Relaxed) + 1;
        if run >= outlier.consecutive_errors.get() {
            self.eject(outlier, e, "consecutive errors", run);
        } else if let Some(limit) = outlier.consecutive_gateway_failure
            && gateway >= limit.get()
        {
            self.eject(outlier, e, "consecutive gateway failures", gateway);
        }
    }

    /// Ejects `e` for its next ejection time, unless it is ejected already
    /// or `max_ejection_percent` of the cluster is.
    fn eject(&self, outlier: &OutlierDetection, e: &EndpointStatus, why: &str, count: u32) {
        let now = self.now_ms();
        if self.ejected(e, now) {
            return;
        }
        let ejected_now = self
            .endpoints
            .iter()
            .filter(|other| self.ejected(other, now))
            .count();
        let allowed =
            (self.endpoints.len() * usize::from(outlier.max_ejection_percent) / 100).max(1);
        if ejected_now >= allowed {
            return;
        }
        let times = e.ejections.load(Ordering::Relaxed).saturating_add(1);
        let time = outlier
            .base_ejection_time
            .saturating_mul(times)
            .min(outlier.max_ejection_time);
        let until = now.saturating_add(millis(time));
        if e.ejected_until
            .compare_exchange(0, until, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            e.ejections.store(times, Ordering::Relaxed);
            e.consecutive_errors.store(0, Ordering::Relaxed);
            e.consecutive_gateway.store(0, Ordering::Relaxed);
            self.ejected.fetch_add(1, Ordering::Relaxed);
            e.meter.ejections.fetch_add(1, Ordering::Relaxed);
            e.meter.ejected.store(1, Ordering::Relaxed);
            tracing::warn!(
                cluster = %self.cluster,
                endpoint = %e.address,
                reason = why,
                count,
                ?time,
                "endpoint ejected"
            );
        }
    }

    /// Runs the rate detectors if their interval is up (one caller wins
    /// the turn; the others go on).
    fn maybe_analyse(&self, outlier: &OutlierDetection) {
        let now = self.now_ms();
        let next = self.next_analysis.load(Ordering::Relaxed);
        if now < next
            || self
                .next_analysis
                .compare_exchange(
                    next,
                    now.saturating_add(millis(outlier.interval)),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_err()
        {
            return;
        }
        // (requests, failed) of each endpoint since the last look.
        let windows: Vec<(u32, u32)> = self
            .endpoints
            .iter()
            .map(|e| {
                (
                    e.window_total.swap(0, Ordering::Relaxed),
                    e.window_failed.swap(0, Ordering::Relaxed),
                )
            })
            .collect();
        for (i, verdict) in rate_outliers(outlier, &windows) {
            let (total, failed) = windows[i];
            if enforced(verdict.enforcing()) {
                self.eject(
                    outlier,
                    &self.endpoints[i],
                    verdict.reason(),
                    failed * 100 / total.max(1),
                );
            }
        }
    }

    /// The table holds its starting state (fresh, or carried over from
    /// the previous generation): the active checkers may start probing.
    /// Idempotent.
    pub(crate) fn settle(&self) {
        self.settled.send_replace(true);
    }

    /// Resolves once [`ClusterHealth::settle`] has been called.
    pub(crate) async fn settled(&self) {
        let mut settled = self.settled.subscribe();
        // The sender lives as long as `self`: no error while we borrow it.
        let _ = settled.wait_for(|s| *s).await;
    }

    /// Takes over what a previous generation knew of the endpoint at
    /// `record.address`, if this cluster has it (returns whether it
    /// does). Health only when this cluster has an active check (without
    /// one nothing would ever bring an endpoint back), ejections only
    /// when it has outlier detection; an ejection keeps its remaining
    /// time and its count, so the next one lasts as long as it would
    /// have there. Not counted as a new ejection in the meters: the
    /// previous generation counted it.
    pub(crate) fn restore(&self, record: &EndpointRecord, has_check: bool) -> bool {
        let Some((i, e)) = self
            .endpoints
            .iter()
            .enumerate()
            .find(|(_, e)| e.address == record.address)
        else {
            return false;
        };
        if has_check && record.health != Health::Unknown {
            self.set_health(EndpointIndex(i), record.health);
        }
        if self.outlier.is_some() {
            e.ejections.store(record.ejections, Ordering::Relaxed);
            e.consecutive_errors
                .store(record.consecutive_errors, Ordering::Relaxed);
            if let Some(left) = record.ejected_for.filter(|left| !left.is_zero()) {
                let until = self
                    .now_ms()
                    .saturating_add(u64::try_from(left.as_millis()).unwrap_or(u64::MAX));
                if e.ejected_until.swap(until, Ordering::Relaxed) == 0 {
                    self.ejected.fetch_add(1, Ordering::Relaxed);
                }
                // The gauge shows it (the counter of ejections does not
                // count it again: the previous generation did).
                e.meter.ejected.store(1, Ordering::Relaxed);
                tracing::info!(
                    cluster = %self.cluster,
                    endpoint = %e.address,
                    ?left,
                    "endpoint stays ejected (carried over from the previous generation)"
                );
            }
        }
        true
    }

    /// The table as plain data.
    pub(crate) fn records(&self) -> Vec<EndpointRecord> {
        let now = self.now_ms();
        self.endpoints
            .iter()
            .map(|e| EndpointRecord {
                cluster: self.cluster.clone(),
                address: e.address,
                health: Health::from_u8(e.health.load(Ordering::Relaxed)),
                ejected_for: self.ejected(e, now).then(|| {
                    let until = e.ejected_until.load(Ordering::Relaxed);
                    Duration::from_millis(until.saturating_sub(now))
                }),
                ejections: e.ejections.load(Ordering::Relaxed),
                consecutive_errors: e.consecutive_errors.load(Ordering::Relaxed),
            })
            .collect()
    }
}

impl Availability for ClusterHealth {
    fn available(&self, endpoint: EndpointIndex) -> bool {
        self.endpoints
            .get(endpoint.0)
            .is_some_and(|e| self.is_available(e, self.now_ms()))
    }
}

/// A cluster's policy, over the endpoints its health leaves available.
#[derive(Debug)]
pub(crate) struct Healthy {
    inner: Arc<dyn Balancer>,
    health: Arc<ClusterHealth>,
}

impl Healthy {
    pub(crate) fn new(inner: Arc<dyn Balancer>, health: Arc<ClusterHealth>) -> Healthy {
        Healthy { inner, health }
    }
}

impl Balancer for Healthy {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn order(&self, pick: &Pick<'_>) -> TryOrder {
        // Read first: once set, a pick writes nothing.
        if !self.health.used.load(Ordering::Relaxed)
            && !self.health.used.swap(true, Ordering::Relaxed)
        {
            self.health.first_use.notify_waiters();
        }
        let mut order = self.inner.order(pick);
        if !self.health.any_out() || self.health.panicking() {
            return order;
        }
        for _ in 0..REASKS {
            match order.first() {
                Some(first) if !self.health.available(first) => order = self.inner.order(pick),
                _ => break,
            }
        }
        let health: Arc<dyn Availability> = self.health.clone();
        order.available_in(health)
    }

    /// Always: whatever the policy, each endpoint's work in flight is
    /// counted in its meter (`baton_upstream_in_flight`).
    fn counts_load(&self) -> bool {
        true
    }

    fn on_start(&self, endpoint: EndpointIndex) {
        if let Some(e) = self.health.endpoints.get(endpoint.0) {
            e.meter.in_flight.fetch_add(1, Ordering::Relaxed);
        }
        self.inner.on_start(endpoint);
    }

    fn on_end(&self, endpoint: EndpointIndex) {
        if let Some(e) = self.health.endpoints.get(endpoint.0) {
            e.meter.in_flight.fetch_sub(1, Ordering::Relaxed);
        }
        self.inner.on_end(endpoint);
    }
}

/// A duration in whole milliseconds (saturating).
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Whether a rate detector is on: then every request is counted in its
/// endpoint's window.
fn rates_on(outlier: &OutlierDetection) -> bool {
    outlier.success_rate.enforcing != 0 || outlier.failure_percentage.enforcing != 0
}

/// Which detector found an endpoint out.
#[derive(Debug, Clone, Copy, PartialEq)]
enum RateVerdict {
    SuccessRate(u8),
    FailurePercentage(u8),
}

impl RateVerdict {
    fn enforcing(self) -> u8 {
        match self {
            RateVerdict::SuccessRate(p) | RateVerdict::FailurePercentage(p) => p,
        }
    }

    fn reason(self) -> &'static str {
        match self {
            RateVerdict::SuccessRate(_) => "success rate below the cluster's",
            RateVerdict::FailurePercentage(_) => "failure percentage",
        }
    }
}

/// The endpoints the rate detectors find out, given each one's
/// (requests, failed) since the last look (Envoy's success-rate and
/// failure-percentage detectors; each needs `minimum_hosts` endpoints
/// with at least `request_volume` requests).
fn rate_outliers(outlier: &OutlierDetection, windows: &[(u32, u32)]) -> Vec<(usize, RateVerdict)> {
    let mut out = Vec::new();
    let success =
        |(total, failed): (u32, u32)| f64::from(total - failed) * 100.0 / f64::from(total);
    let sr = outlier.success_rate;
    if sr.enforcing != 0 {
        let qualified: Vec<usize> = (0..windows.len())
            .filter(|&i| windows[i].0 >= sr.request_volume.max(1))
            .collect();
        if qualified.len() as u64 >= u64::from(sr.minimum_hosts) && !qualified.is_empty() {
            let rates: Vec<f64> = qualified.iter().map(|&i| success(windows[i])).collect();
            let n = rates.len() as f64;
            let mean = rates.iter().sum::<f64>() / n;
            let variance = rates.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / n;
            let floor = mean - f64::from(sr.stdev_factor) / 1000.0 * variance.sqrt();
            for (&i, &rate) in qualified.iter().zip(&rates) {
                if rate < floor {
                    out.push((i, RateVerdict::SuccessRate(sr.enforcing)));
                }
            }
        }
    }
    let fp = outlier.failure_percentage;
    if fp.enforcing != 0 {
        let qualified: Vec<usize> = (0..windows.len())
            .filter(|&i| windows[i].0 >= fp.request_volume.max(1))
            .collect();
        if qualified.len() as u64 >= u64::from(fp.minimum_hosts) {
            for i in qualified {
                let (total, failed) = windows[i];
                let already = out.iter().any(|(j, _)| *j == i);
                if !already && u64::from(failed) * 100 >= u64::from(fp.threshold) * u64::from(total)
                {
                    out.push((i, RateVerdict::FailurePercentage(fp.enforcing)));
                }
            }
        }
    }
    out
}

/// Whether a detector that enforces `percent` % of its findings enforces
/// this one.
fn enforced(percent: u8) -> bool {
    percent >= 100 || rand::random_range(0..100u8) < percent
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use super::*;
    use crate::upstream::lb::RoundRobin;

    fn cluster(n: usize, outlier: Option<OutlierDetection>) -> Cluster {
        let mut text = String::from("[[clusters]]\nname = \"c\"\nendpoints = [");
        for i in 0..n {
            text.push_str(&format!("\"127.0.0.1:{}\",", 1000 + i));
        }
        text.push_str("]\n");
        let mut c = baton_config::parse("t.toml", &text)
            .unwrap()
            .clusters
            .remove(0);
        c.outlier_detection = outlier;
        c
    }

    /// Consecutive errors only: the rate detectors off.
    fn outlier(errors: u32, percent: u8) -> OutlierDetection {
        let mut o = parsed_outlier("enforcing_success_rate = 0\n");
        o.consecutive_errors = NonZeroU32::new(errors).unwrap();
        o.max_ejection_percent = percent;
        o
    }

    /// `[clusters.outlier_detection]` with `keys`, the rest defaults.
    fn parsed_outlier(keys: &str) -> OutlierDetection {
        let text = format!(
            "[[clusters]]\nname = \"c\"\nendpoints = [\"127.0.0.1:1\"]\n\
             [clusters.outlier_detection]\n{keys}"
        );
        baton_config::parse("t.toml", &text).unwrap().clusters[0]
            .outlier_detection
            .clone()
            .unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn a_run_of_gateway_failures_ejects_and_another_error_ends_it() {
        let o = parsed_outlier("consecutive_errors = 100\nconsecutive_gateway_failure = 3\n");
        let (health, _) = healthy(&cluster(3, Some(o)));
        let one = EndpointIndex(1);
        health.report(one, Outcome::GatewayFailure);
        health.report(one, Outcome::GatewayFailure);
        health.report(one, Outcome::Failure);
        health.report(one, Outcome::GatewayFailure);
        health.report(one, Outcome::GatewayFailure);
        assert!(health.available(one), "a 500 ends a run of 502s");
        health.report(one, Outcome::GatewayFailure);
        assert!(!health.available(one));
        assert_eq!(Outcome::of_status(503), Outcome::GatewayFailure);
        assert_eq!(Outcome::of_status(500), Outcome::Failure);
        assert_eq!(Outcome::of_status(404), Outcome::Success);
    }

    #[test]
    fn the_success_rate_detector_finds_the_endpoint_far_below_the_mean() {
        let o = parsed_outlier("success_rate_request_volume = 10\n");
        // Five endpoints with enough requests: one fails most of them.
        let windows = [(20, 0), (20, 1), (20, 0), (20, 0), (20, 15)];
        let found: Vec<usize> = rate_outliers(&o, &windows)
            .iter()
            .map(|(i, _)| *i)
            .collect();
        assert_eq!(found, [4]);
        // Four with enough requests: fewer than minimum_hosts, no verdict.
        let windows = [(20, 0), (20, 1), (20, 0), (9, 0), (20, 15)];
        assert!(rate_outliers(&o, &windows).is_empty());
        // All alike: nobody is below mean − 1.9 σ.
        let windows = [(20, 5); 5];
        assert!(rate_outliers(&o, &windows).is_empty());
    }

    #[test]
    fn the_failure_percentage_detector_takes_a_threshold() {
        let o = parsed_outlier(
            "enforcing_success_rate = 0\nenforcing_failure_percentage = 100\n\
             failure_percentage_minimum_hosts = 3\nfailure_percentage_request_volume = 10\n",
        );
        let windows = [(10, 9), (10, 8), (10, 0), (5, 5)];
        let found: Vec<usize> = rate_outliers(&o, &windows)
            .iter()
            .map(|(i, _)| *i)
            .collect();
        assert_eq!(
            found,
            [0],
            "90 % failed; 80 % is under 85; 5 requests too few"
        );
        // Envoy's defaults: success rate on, failure percentage off.
        let defaults = parsed_outlier("");
        assert_eq!(defaults.success_rate.enforcing, 100);
        assert_eq!(defaults.failure_percentage.enforcing, 0);
    }

    /// The detectors look once per interval, at the requests since the
    /// last look, from whichever report comes first past it.
    #[tokio::test(start_paused = true)]
    async fn the_rate_detectors_look_each_interval_at_the_requests_since() {
        let o = parsed_outlier(
            "interval = \"10s\"\nsuccess_rate_request_volume = 10\nmax_ejection_percent = 50\n\
             consecutive_errors = 1000\n",
        );
        let (health, _) = healthy(&cluster(5, Some(o)));
        let report_round = |bad: Outcome| {
            for i in 0..5 {
                for _ in 0..10 {
                    let outcome = if i == 4 { bad } else { Outcome::Success };
                    health.report(EndpointIndex(i), outcome);
                }
            }
        };
        report_round(Outcome::Failure);
        assert!(health.available(EndpointIndex(4)), "not looked yet");
        tokio::time::advance(Duration::from_secs(10)).await;
        health.report(EndpointIndex(0), Outcome::Success);
        assert!(
            !health.available(EndpointIndex(4)),
            "ejected by its success rate"
        );
        assert_eq!(health.records()[4].ejections, 1);
    }

    fn healthy(c: &Cluster) -> (Arc<ClusterHealth>, Healthy) {
        let health = Arc::new(ClusterHealth::new(c, &[]));
        let rr = Arc::new(RoundRobin::new(c.endpoints.len()));
        (Arc::clone(&health), Healthy::new(rr, health))
    }

    fn firsts(b: &Healthy, n: usize) -> Vec<usize> {
        (0..n)
            .map(|_| b.order(&Pick::default()).next().unwrap().0)
            .collect()
    }

    #[test]
    fn unhealthy_endpoints_get_nothing_and_the_rest_share_evenly() {
        let (health, b) = healthy(&cluster(4, None));
        health.set_health(EndpointIndex(1), Health::Unhealthy);
        let mut counts = [0; 4];
        for first in firsts(&b, 300) {
            counts[first] += 1;
        }
        assert_eq!(counts[1], 0, "{counts:?}");
        assert_eq!(counts, [100, 0, 100, 100]);
        // Every order skips it.
        let all: Vec<usize> = b.order(&Pick::default()).map(|e| e.0).collect();
        assert_eq!(all.len(), 3);
        assert!(!all.contains(&1));
        health.set_health(EndpointIndex(1), Health::Healthy);
        assert!(firsts(&b, 4).contains(&1));
    }

    #[test]
    fn below_the_panic_threshold_every_endpoint_is_used() {
        let (health, b) = healthy(&cluster(4, None));
        health.set_health(EndpointIndex(0), Health::Unhealthy);
        health.set_health(EndpointIndex(1), Health::Unhealthy);
        // 2 of 4 available: 50 % is not below 50 %.
        assert!(!firsts(&b, 8).iter().any(|&f| f < 2));
        health.set_health(EndpointIndex(2), Health::Unhealthy);
        // 1 of 4: panic, all of them.
        let mut seen = firsts(&b, 8);
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen, [0, 1, 2, 3]);
    }

    #[tokio::test(start_paused = true)]
    async fn consecutive_errors_eject_for_base_times_ejections() {
        let (health, b) = healthy(&cluster(3, Some(outlier(3, 50))));
        let one = EndpointIndex(1);
        health.report(one, Outcome::Failure);
        health.report(one, Outcome::Failure);
        health.report(one, Outcome::Success);
        health.report(one, Outcome::Failure);
        health.report(one, Outcome::Failure);
        assert!(health.available(one), "a success breaks the run");
        health.report(one, Outcome::Failure);
        assert!(!health.available(one));
        assert!(!firsts(&b, 30).contains(&1));
        assert_eq!(health.records()[1].ejections, 1);
        assert_eq!(
            health.records()[1].ejected_for,
            Some(Duration::from_secs(30))
        );
        tokio::time::advance(Duration::from_secs(31)).await;
        assert!(health.available(one));
        assert!(firsts(&b, 3).contains(&1));
        // The second ejection lasts twice as long.
        for _ in 0..3 {
            health.report(one, Outcome::Failure);
        }
        assert_eq!(
            health.records()[1].ejected_for,
            Some(Duration::from_secs(60))
        );
        tokio::time::advance(Duration::from_secs(31)).await;
        assert!(!health.available(one));
        tokio::time::advance(Duration::from_secs(30)).await;
        assert!(health.available(one));
    }

    #[tokio::test(start_paused = true)]
    async fn max_ejection_percent_bounds_ejections_but_one_is_allowed() {
        let (health, _) = healthy(&cluster(3, Some(outlier(1, 10))));
        health.report(EndpointIndex(0), Outcome::Failure);
        health.report(EndpointIndex(1), Outcome::Failure);
        assert!(!health.available(EndpointIndex(0)), "one always may be");
        assert!(
            health.available(EndpointIndex(1)),
            "10 % of 3 is less than 2"
        );
        // Without the detector, nothing is ejected.
        let (plain, _) = healthy(&cluster(3, None));
        for _ in 0..10 {
            plain.report(EndpointIndex(0), Outcome::Failure);
        }
        assert!(plain.available(EndpointIndex(0)));
    }

    #[tokio::test(start_paused = true)]
    async fn the_meters_mirror_health_ejections_and_work_in_flight() {
        use crate::upstream::lb::Load;
        let c = cluster(2, Some(outlier(1, 100)));
        let meters: Vec<Arc<EndpointMeter>> = (0..2).map(|_| Arc::default()).collect();
        let health = Arc::new(ClusterHealth::new(&c, &meters));
        // Round robin counts nothing itself: the wrapper counts anyway.
        let rr = Arc::new(RoundRobin::new(2));
        let b: Arc<dyn Balancer> = Arc::new(Healthy::new(rr, Arc::clone(&health)));
        let load = |m: &AtomicU64| m.load(Ordering::Relaxed);

        assert_eq!((load(&meters[0].healthy), load(&meters[0].checked)), (1, 0));
        health.set_health(EndpointIndex(0), Health::Unhealthy);
        health.set_health(EndpointIndex(1), Health::Healthy);
        assert_eq!((load(&meters[0].healthy), load(&meters[0].checked)), (0, 1));
        assert_eq!((load(&meters[1].healthy), load(&meters[1].checked)), (1, 1));

        let held: Vec<Load> = (0..3)
            .filter_map(|_| Load::counted(&b, EndpointIndex(1)))
            .collect();
        assert_eq!(load(&meters[1].in_flight), 3);
        drop(held);
        assert_eq!(load(&meters[1].in_flight), 0);

        health.report(EndpointIndex(1), Outcome::Failure);
        assert_eq!(load(&meters[1].ejected), 1);
        tokio::time::advance(Duration::from_secs(31)).await;
        assert!(health.available(EndpointIndex(1)));
        assert_eq!(load(&meters[1].ejected), 0);
        assert_eq!(load(&meters[1].ejections), 1);
    }

    /// What a previous generation knew comes back: health (with a
    /// check), the ejection's remaining time and count (with outlier
    /// detection), so the next ejection lasts as long as it would have.
    #[tokio::test(start_paused = true)]
    async fn a_restored_table_keeps_health_and_ejections() {
        let c = cluster(4, Some(outlier(3, 50)));
        let (old, _) = healthy(&c);
        old.set_health(EndpointIndex(0), Health::Unhealthy);
        for _ in 0..3 {
            old.report(EndpointIndex(1), Outcome::Failure);
        }
        old.report(EndpointIndex(2), Outcome::Failure);
        tokio::time::advance(Duration::from_secs(10)).await;
        let records = old.records();
        // (Deadlines count from 1 ms: 0 means "not ejected".)
        assert_eq!(records[1].ejected_for.map(|d| d.as_secs()), Some(20));

        let (new, b) = healthy(&c);
        for record in &records {
            assert!(new.restore(record, true));
        }
        assert_eq!(new.records(), records);
        assert_eq!(new.records()[2].consecutive_errors, 1);
        assert_eq!(firsts(&b, 6), [2, 3, 2, 3, 2, 3]);
        tokio::time::advance(Duration::from_secs(21)).await;
        assert!(new.available(EndpointIndex(1)), "back when its time is up");
        // The next ejection is its second: twice the base.
        for _ in 0..3 {
            new.report(EndpointIndex(1), Outcome::Failure);
        }
        assert_eq!(new.records()[1].ejections, 2);
        assert_eq!(new.records()[1].ejected_for, Some(Duration::from_secs(60)));

        // An address this cluster does not have is ignored.
        let mut stranger = records[0].clone();
        stranger.address = "127.0.0.1:1".parse().unwrap();
        assert!(!new.restore(&stranger, true));
    }

    /// Without an active check nothing would bring an endpoint back, and
    /// without outlier detection nothing ejects: a cluster takes only
    /// what it has the means to revise.
    #[tokio::test(start_paused = true)]
    async fn a_cluster_takes_only_the_state_it_can_revise() {
        let (old, _) = healthy(&cluster(2, Some(outlier(1, 50))));
        old.set_health(EndpointIndex(0), Health::Unhealthy);
        old.report(EndpointIndex(0), Outcome::Failure);
        let (new, _) = healthy(&cluster(2, None));
        for record in old.records() {
            assert!(new.restore(&record, false));
        }
        assert_eq!(new.health(EndpointIndex(0)), Health::Unknown);
        assert!(new.available(EndpointIndex(0)));
    }
}
