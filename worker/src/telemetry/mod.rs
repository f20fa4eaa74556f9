//! What the worker tells about itself: meters and the access log.
//!
//! A leaf layer: the data path bumps these, nothing here calls back up.
//!
//! * [`meters`] — the counter types, one per thing measured (bytes,
//!   listeners, endpoints, circuit breakers, migration, HTTP and RPC
//!   requests);
//! * [`histogram`] — latency histograms: atomics per bucket, their
//!   families and snapshot;
//! * [`metrics`] — [`metrics::Meters`], every meter of a generation, and
//!   its snapshot for the supervisor (also the worker's heartbeat);
//! * [`access_log`] — one line per connection, off the data path;
//! * [`plugin`] — the metrics proxy-wasm plugins define, and how often
//!   plugins were stopped;
//! * [`trace`] — distributed tracing: a span per HTTP request, its
//!   context read and passed on, OTLP export.

pub(crate) mod access_log;
pub(crate) mod histogram;
pub(crate) mod meters;
pub(crate) mod metrics;
pub(crate) mod plugin;
pub(crate) mod trace;
