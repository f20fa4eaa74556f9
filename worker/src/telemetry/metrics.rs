//! The worker's metrics: every meter of a generation ([`Meters`], the
//! counters and gauges of [`super::meters`], kept in atomics on the hot
//! path), turned into [`baton_ipc::Metrics`] once a second for the
//! supervisor, which aggregates them across generations and serves
//! `/metrics` (so counters never go backwards across an upgrade: a dead
//! generation's last values stay in the sum).
//!
//! Its latency histograms ([`super::histogram`]) go beside them as
//! [`baton_ipc::Histograms`], summed across generations the same way.
//!
//! Byte counters are bumped per write by the pump (one relaxed atomic add
//! beside a syscall); connection counters per connection.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use baton_config::Config;
use baton_ipc::{Histograms, MetricFamily, MetricKind, MetricSample, Metrics};
use parking_lot::Mutex;

use crate::telemetry::histogram::{self, ClusterTimes, RouteTimes};
use crate::telemetry::meters::{
    BreakerMeter, EndpointMeter, HttpMeters, ListenerMeter, MigrationMeter, Overflow, Resource,
    RpcMeters, TimeoutKind, UdpDrop, UdpMeter,
};

/// One sample of an RPC family: an extra label, and the value.
type RpcSample = (Option<(&'static str, &'static str)>, u64);

/// A counter family over listeners' meters of one kind: a sample per
/// listener and extra label (`values` gives them).
fn per_listener_counter<M>(
    name: &str,
    help: &str,
    meters: &[(String, Arc<M>)],
    values: &dyn Fn(&M) -> Vec<RpcSample>,
) -> MetricFamily {
    MetricFamily {
        name: name.into(),
        help: help.into(),
        kind: MetricKind::Counter,
        samples: meters
            .iter()
            .flat_map(|(l, m)| {
                values(m).into_iter().map(move |(extra, value)| {
                    let mut labels = vec![("listener".to_string(), l.clone())];
                    if let Some((k, v)) = extra {
                        labels.push((k.to_string(), v.to_string()));
                    }
                    MetricSample { labels, value }
                })
            })
            .collect(),
    }
}

/// How often the worker sends its metrics — which is also its heartbeat
/// for the supervisor's watchdog. Scrapes see values at most this old.
pub(crate) const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);

/// Every meter of a generation.
#[derive(Debug, Default)]
pub struct Meters {
    /// By listener name; a connection adopted from a listener the new
    /// config dropped gets its own entry.
    listeners: Mutex<HashMap<Arc<str>, Arc<ListenerMeter>>>,
    /// (cluster, endpoint, meter), in config order.
    endpoints: Vec<(String, String, Arc<EndpointMeter>)>,
    /// (cluster, its circuit breakers), in config order.
    breakers: Vec<(String, Arc<BreakerMeter>)>,
    pub migration: MigrationMeter,
    /// RPC listeners: (listener, protocol, meters).
    rpc: Mutex<Vec<(String, String, Arc<RpcMeters>)>>,
    /// HTTP listeners: (listener, meters).
    http: Mutex<Vec<(String, Arc<HttpMeters>)>>,
    /// `udp` listeners: (listener, meters).
    udp: Mutex<Vec<(String, Arc<UdpMeter>)>>,
    /// Each cluster's histograms, in config order.
    clusters: Vec<(String, Arc<ClusterTimes>)>,
}

impl Meters {
    pub fn new(config: &Config) -> Meters {
        let listeners = config
            .listeners
            .iter()
            .map(|l| (Arc::from(l.name.as_str()), Arc::default()))
            .collect();
        let endpoints = config
            .clusters
            .iter()
            .flat_map(|c| {
                c.endpoints
                    .iter()
                    .map(|e| (c.name.clone(), e.address.to_string(), Arc::default()))
            })
            .collect();
        let breakers = config
            .clusters
            .iter()
            .map(|c| (c.name.clone(), Arc::default()))
            .collect();
        let clusters = config
            .clusters
            .iter()
            .map(|c| (c.name.clone(), Arc::default()))
            .collect();
        Meters {
            listeners: Mutex::new(listeners),
            endpoints,
            breakers,
            migration: MigrationMeter::default(),
            rpc: Mutex::new(Vec::new()),
            http: Mutex::new(Vec::new()),
            udp: Mutex::new(Vec::new()),
            clusters,
        }
    }

    /// The histograms of cluster `cluster` (unregistered ones, never
    /// reported, for a name the config does not have).
    pub fn cluster_times(&self, cluster: &str) -> Arc<ClusterTimes> {
        self.clusters
            .iter()
            .find(|(c, _)| c == cluster)
            .map_or_else(Arc::default, |(_, t)| Arc::clone(t))
    }

    /// Every histogram, for the supervisor (see [`histogram`]'s families).
    pub fn histograms(&self) -> Histograms {
        let label = |k: &str, v: &str| (k.to_string(), v.to_string());
        let http = self.http.lock().clone();
        let rpc = self.rpc.lock().clone();
        let per_cluster =
            |name: &str, help: &str, pick: fn(&ClusterTimes) -> &histogram::Histogram| {
                histogram::family(
                    name,
                    help,
                    self.clusters
                        .iter()
                        .map(|(c, t)| (vec![label("cluster", c)], pick(t))),
                )
            };
        let mut families = vec![
            histogram::family(
                "baton_http_request_duration_seconds",
                "HTTP requests, from the head read to the end of the exchange, by route \
                 (its position among the listener's routes, or none).",
                http.iter().flat_map(|(l, m)| {
                    m.duration.series().map(move |(route, h)| {
                        (vec![label("listener", l), label("route", &route)], h)
                    })
                }),
            ),
            histogram::family(
                "baton_rpc_request_duration_seconds",
                "RPC requests, from decoded to answered, by route (its position among the \
                 listener's routes, or none).",
                rpc.iter().flat_map(|(l, p, m)| {
                    m.duration.series().map(move |(route, h)| {
                        (
                            vec![
                                label("listener", l),
                                label("protocol", p),
                                label("route", &route),
                            ],
                            h,
                        )
                    })
                }),
            ),
            per_cluster(
                "baton_upstream_request_duration_seconds",
                "Requests (HTTP and RPC) routed to a cluster, to their end.",
                |t| &t.request,
            ),
            per_cluster(
                "baton_upstream_connect_duration_seconds",
                "Successful TCP connects to a cluster's endpoints.",
                |t| &t.connect,
            ),
            per_cluster(
                "baton_upstream_ttfb_seconds",
                "From a request sent upstream to its response head (HTTP) or frame (RPC).",
                |t| &t.ttfb,
            ),
        ];
        families.retain(|f| !f.series.is_empty());
        Histograms { families }
    }

    /// The request counters of HTTP listener `listener`, which has
    /// `routes` routes.
    pub fn http(&self, listener: &str, routes: usize) -> Arc<HttpMeters> {
        let meters = Arc::new(HttpMeters {
            duration: RouteTimes::new(routes),
            ..HttpMeters::default()
        });
        self.http
            .lock()
            .push((listener.to_string(), Arc::clone(&meters)));
        meters
    }

    /// Requests waiting for an upstream response now, over every RPC
    /// listener.
    pub fn rpc_pending(&self) -> u64 {
        self.rpc
            .lock()
            .iter()
            .map(|(_, _, m)| m.pending.load(Ordering::Relaxed))
            .sum()
    }

    /// The request counters of RPC listener `listener`, which has
    /// `routes` routes.
    pub fn rpc(&self, listener: &str, protocol: &str, routes: usize) -> Arc<RpcMeters> {
        let meters = Arc::new(RpcMeters {
            duration: RouteTimes::new(routes),
            ..RpcMeters::default()
        });
        self.rpc.lock().push((
            listener.to_string(),
            protocol.to_string(),
            Arc::clone(&meters),
        ));
        meters
    }

    /// The datagram counters of `udp` listener `listener`.
    pub fn udp(&self, listener: &str) -> Arc<UdpMeter> {
        let meter: Arc<UdpMeter> = Arc::default();
        self.udp
            .lock()
            .push((listener.to_string(), Arc::clone(&meter)));
        meter
    }

    pub fn listener(&self, name: &str) -> Arc<ListenerMeter> {
        let mut listeners = self.listeners.lock();
        if let Some(meter) = listeners.get(name) {
            return Arc::clone(meter);
        }
        let meter: Arc<ListenerMeter> = Arc::default();
        listeners.insert(Arc::from(name), Arc::clone(&meter));
        meter
    }

    /// The meters of `cluster`'s endpoints, in config order.
    pub fn endpoints(&self, cluster: &str) -> Vec<Arc<EndpointMeter>> {
        self.endpoints
            .iter()
            .filter(|(c, _, _)| c == cluster)
            .map(|(_, _, m)| Arc::clone(m))
            .collect()
    }

    /// The circuit breakers' meter of `cluster`.
    pub fn breaker(&self, cluster: &str) -> Arc<BreakerMeter> {
        self.breakers
            .iter()
            .find(|(c, _)| c == cluster)
            .map(|(_, m)| Arc::clone(m))
            .unwrap_or_default()
    }

    pub fn snapshot(&self) -> Metrics {
        let load = |v: &AtomicU64| v.load(Ordering::Relaxed);
        let listeners: Vec<(Arc<str>, Arc<ListenerMeter>)> = {
            let map = self.listeners.lock();
            let mut all: Vec<_> = map
                .iter()
                .map(|(k, v)| (Arc::clone(k), Arc::clone(v)))
                .collect();
            all.sort_by(|a, b| a.0.cmp(&b.0));
            all
        };
        let per_listener =
            |name: &str, help: &str, kind, value: &dyn Fn(&ListenerMeter) -> u64| MetricFamily {
                name: name.into(),
                help: help.into(),
                kind,
                samples: listeners
                    .iter()
                    .map(|(l, m)| MetricSample {
                        labels: vec![("listener".into(), l.to_string())],
                        value: value(m),
                    })
                    .collect(),
            };
        let per_endpoint_of =
            |name: &str, help: &str, kind, value: &dyn Fn(&EndpointMeter) -> u64| MetricFamily {
                name: name.into(),
                help: help.into(),
                kind,
                samples: self
                    .endpoints
                    .iter()
                    .map(|(c, e, m)| MetricSample {
                        labels: vec![
                            ("cluster".into(), c.clone()),
                            ("endpoint".into(), e.clone()),
                        ],
                        value: value(m),
                    })
                    .collect(),
            };
        let per_endpoint = |name: &str, help: &str, value: &dyn Fn(&EndpointMeter) -> u64| {
            per_endpoint_of(name, help, MetricKind::Counter, value)
        };
        let single = |name: &str, help: &str, value: u64| MetricFamily {
            name: name.into(),
            help: help.into(),
            kind: MetricKind::Counter,
            samples: vec![MetricSample {
                labels: Vec::new(),
                value,
            }],
        };
        let rpc = self.rpc.lock().clone();
        let per_rpc =
            |name: &str, help: &str, values: &dyn Fn(&RpcMeters) -> Vec<RpcSample>| MetricFamily {
                name: name.into(),
                help: help.into(),
                kind: MetricKind::Counter,
                samples: rpc
                    .iter()
                    .flat_map(|(l, p, m)| {
                        values(m).into_iter().map(move |(extra, value)| {
                            let mut labels = vec![
                                ("listener".to_string(), l.clone()),
                                ("protocol".to_string(), p.clone()),
                            ];
                            if let Some((k, v)) = extra {
                                labels.push((k.to_string(), v.to_string()));
                            }
                            MetricSample { labels, value }
                        })
                    })
                    .collect(),
            };
        let mut families = vec![
            per_rpc(
                "baton_rpc_requests_total",
                "RPC requests sent upstream.",
                &|m| vec![(None, load(&m.requests))],
            ),
            per_rpc(
                "baton_rpc_responses_total",
                "RPC responses from upstreams, by result.",
                &|m| {
                    vec![
                        (Some(("result", "ok")), load(&m.responses_ok)),
                        (Some(("result", "error")), load(&m.responses_error)),
                    ]
                },
            ),
            per_rpc(
                "baton_rpc_proxy_errors_total",
                "RPC requests the proxy answered with the protocol's error, by reason.",
                &|m| {
                    vec![
                        (Some(("reason", "timeout")), load(&m.timeouts)),
                        (Some(("reason", "unavailable")), load(&m.unavailable)),
                        (Some(("reason", "no_route")), load(&m.no_route)),
                        (Some(("reason", "other")), load(&m.other_errors)),
                    ]
                },
            ),
            per_rpc(
                "baton_rpc_decode_errors_total",
                "Client connections closed for an undecodable frame.",
                &|m| vec![(None, load(&m.decode_errors))],
            ),
            MetricFamily {
                kind: MetricKind::Gauge,
                ..per_rpc(
                    "baton_rpc_requests_pending",
                    "RPC requests waiting for an upstream's response now.",
                    &|m| vec![(None, load(&m.pending))],
                )
            },
            per_rpc(
                "baton_migration_forwarded_responses_total",
                "Responses forwarded to the next generation (write migration).",
                &|m| vec![(None, load(&m.forwarded))],
            ),
            per_rpc(
                "baton_migration_forwarded_bytes_total",
                "Bytes of responses forwarded to the next generation (write migration).",
                &|m| vec![(None, load(&m.forwarded_bytes))],
            ),
        ];
        let http = self.http.lock().clone();
        let per_http = |name: &str, help: &str, values: &dyn Fn(&HttpMeters) -> Vec<RpcSample>| {
            per_listener_counter(name, help, &http, values)
        };
        families.push(per_http(
            "baton_http_responses_total",
            "HTTP responses to clients, by status class.",
            &|m| {
                vec![
                    (Some(("class", "1xx")), load(&m.status_1xx)),
                    (Some(("class", "2xx")), load(&m.status_2xx)),
                    (Some(("class", "3xx")), load(&m.status_3xx)),
                    (Some(("class", "4xx")), load(&m.status_4xx)),
                    (Some(("class", "5xx")), load(&m.status_5xx)),
                ]
            },
        ));
        families.push(per_http(
            "baton_http_filter_answers_total",
            "Requests an HTTP filter answered from their head instead of the upstream (a rate \
             limit's 429, rbac's 403, a fault's abort, a CORS preflight), by filter.",
            &|m| {
                m.filter_answers
                    .lock()
                    .iter()
                    .map(|(name, count)| (Some(("filter", *name)), *count))
                    .collect()
            },
        ));
        families.push(per_http(
            "baton_http_mirror_requests_total",
            "Shadow copies of requests (the mirror filter), by result: sent (the shadow cluster \
             answered), failed (no connection, a circuit breaker full, an error, no answer in \
             time), abandoned (not sent: a body past max_body_bytes, a request body not read \
             whole).",
            &|m| {
                vec![
                    (Some(("result", "sent")), load(&m.mirror_sent)),
                    (Some(("result", "failed")), load(&m.mirror_failed)),
                    (Some(("result", "abandoned")), load(&m.mirror_abandoned)),
                ]
            },
        ));
        families.push(per_http(
            "baton_http_bad_requests_total",
            "Requests refused as malformed or hostile (never forwarded).",
            &|m| vec![(None, load(&m.bad_requests))],
        ));
        families.push(per_http(
            "baton_http_requests_rejected_total",
            "Requests refused as malformed or hostile (never forwarded), by reason.",
            &|m| {
                crate::codec::http1::REJECT_REASONS
                    .iter()
                    .zip(&m.rejected)
                    .map(|(reason, n)| (Some(("reason", *reason)), load(n)))
                    .collect()
            },
        ));
        families.push(per_http(
            "baton_http_upstream_bad_responses_total",
            "Upstream responses refused as malformed or ambiguously framed (502, or the client connection cut).",
            &|m| vec![(None, load(&m.bad_responses))],
        ));
        families.push(per_http(
            "baton_http_upstream_timeouts_total",
            "Requests answered 504: no response head within the timeout.",
            &|m| vec![(None, load(&m.timeouts))],
        ));
        families.push(per_http(
            "baton_http_timeouts_total",
            "Client connections cut off for being too slow, by what was awaited: a request head \
             (header), the next request (keepalive), a request body (body), a TLS handshake \
             (handshake).",
            &|m| {
                [
                    (TimeoutKind::Header, &m.header_timeouts),
                    (TimeoutKind::Keepalive, &m.keepalive_timeouts),
                    (TimeoutKind::Body, &m.body_timeouts),
                    (TimeoutKind::Handshake, &m.handshake_timeouts),
                ]
                .into_iter()
                .map(|(kind, counter)| (Some(("kind", kind.label())), load(counter)))
                .collect()
            },
        ));
        let udp = self.udp.lock().clone();
        let per_udp = |name: &str, help: &str, values: &dyn Fn(&UdpMeter) -> Vec<RpcSample>| {
            per_listener_counter(name, help, &udp, values)
        };
        families.push(per_udp(
            "baton_udp_datagrams_received_total",
            "Datagrams read from clients by a udp listener (its flows count in \
             baton_listener_connections_total, its bytes in baton_listener_*_bytes_total).",
            &|m| vec![(None, load(&m.datagrams_received))],
        ));
        families.push(per_udp(
            "baton_udp_datagrams_sent_total",
            "Datagrams written to clients by a udp listener.",
            &|m| vec![(None, load(&m.datagrams_sent))],
        ));
        families.push(per_udp(
            "baton_udp_dropped_total",
            "Client datagrams a udp listener dropped, by reason: max_flows (it would have \
             opened a flow past max_flows), no_upstream (no endpoint for a new flow), refused \
             (source_ranges), send_failed (the upstream send failed), no_original_destination \
             (a tproxy listener's original_dst flow for a datagram sent to the listener itself).",
            &|m| {
                UdpDrop::ALL
                    .iter()
                    .map(|why| {
                        (
                            Some(("reason", why.label())),
                            load(&m.dropped[*why as usize]),
                        )
                    })
                    .collect()
            },
        ));
        families.retain(|f| !f.samples.is_empty());
        let mut all = vec![
            per_listener(
                "baton_listener_connections_total",
                "Connections accepted.",
                MetricKind::Counter,
                &|m| load(&m.accepted),
            ),
            per_listener(
                "baton_listener_refused_total",
                "Connections closed on accept: by an L4 filter, or for a missing or bad PROXY protocol header.",
                MetricKind::Counter,
                &|m| load(&m.refused),
            ),
            per_listener(
                "baton_listener_connections_active",
                "Connections open now.",
                MetricKind::Gauge,
                &|m| load(&m.active),
            ),
            per_listener(
                "baton_listener_received_bytes_total",
                "Bytes read from clients.",
                MetricKind::Counter,
                &|m| load(&m.bytes.received),
            ),
            per_listener(
                "baton_listener_sent_bytes_total",
                "Bytes written to clients.",
                MetricKind::Counter,
                &|m| load(&m.bytes.sent),
            ),
            per_endpoint(
                "baton_upstream_connections_total",
                "Upstream connections established.",
                &|m| load(&m.connections),
            ),
            per_endpoint(
                "baton_upstream_connect_failures_total",
                "Upstream connects that failed (refused, unreachable...).",
                &|m| load(&m.connect_failures),
            ),
            per_endpoint(
                "baton_upstream_connect_timeouts_total",
                "Upstream connects that timed out.",
                &|m| load(&m.connect_timeouts),
            ),
            // Summed over live generations like every gauge: during an
            // upgrade, how many of them consider the endpoint healthy.
            per_endpoint_of(
                "baton_upstream_healthy",
                "1 unless active health checks find the endpoint unhealthy.",
                MetricKind::Gauge,
                &|m| load(&m.healthy),
            ),
            per_endpoint_of(
                "baton_upstream_health_checked",
                "1 once active health checks have judged the endpoint (healthy or unhealthy), \
                 0 while its health is unknown.",
                MetricKind::Gauge,
                &|m| load(&m.checked),
            ),
            per_endpoint(
                "baton_upstream_ejections_total",
                "Times outlier detection ejected the endpoint.",
                &|m| load(&m.ejections),
            ),
            per_endpoint_of(
                "baton_upstream_ejected",
                "1 while outlier detection keeps the endpoint out.",
                MetricKind::Gauge,
                &|m| load(&m.ejected),
            ),
            per_endpoint_of(
                "baton_upstream_in_flight",
                "Work on the endpoint now, whatever the cluster's policy: HTTP exchanges and \
                 RPC requests in flight, L4 tunnels open.",
                MetricKind::Gauge,
                &|m| load(&m.in_flight),
            ),
            MetricFamily {
                name: "baton_upstream_overflows_total".into(),
                help: "Connections and requests refused at once because a cluster's circuit \
                       breaker was full, by the limit (max_connections, max_pending_requests, \
                       max_requests, max_retries, retry_budget)."
                    .into(),
                kind: MetricKind::Counter,
                samples: self
                    .breakers
                    .iter()
                    .flat_map(|(c, m)| {
                        Overflow::ALL.into_iter().map(move |o| MetricSample {
                            labels: vec![
                                ("cluster".into(), c.clone()),
                                ("reason".into(), o.label().into()),
                            ],
                            value: load(&m.overflows[o as usize]),
                        })
                    })
                    .collect(),
            },
            MetricFamily {
                name: "baton_upstream_active".into(),
                help: "What a cluster's circuit breakers count now: connections open, requests \
                       waiting for a connection, requests and retries in flight."
                    .into(),
                kind: MetricKind::Gauge,
                samples: self
                    .breakers
                    .iter()
                    .flat_map(|(c, m)| {
                        Resource::ALL.into_iter().map(move |r| MetricSample {
                            labels: vec![
                                ("cluster".into(), c.clone()),
                                ("resource".into(), r.label().into()),
                            ],
                            value: load(m.active(r)),
                        })
                    })
                    .collect(),
            },
            single(
                "baton_migration_connections_moved_total",
                "Connections handed to the next generation.",
                load(&self.migration.moved),
            ),
            single(
                "baton_migration_connections_lost_total",
                "Connections that could not move across an upgrade and were closed.",
                load(&self.migration.lost),
            ),
        ];
        all.append(&mut families);
        all.extend(super::plugin::registry().families());
        all.extend(super::trace::families());
        Metrics { families: all }
    }
}
