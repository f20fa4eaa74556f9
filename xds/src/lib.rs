//! `baton-xds`: baton's xDS client. It speaks the Envoy v3 API's
//! Aggregated Discovery Service (one gRPC stream for LDS, RDS, CDS, EDS
//! and SDS, state of the world or delta) to a control plane named in the
//! config's `[xds]` bootstrap ([`baton_config::Xds`]), and maps what it
//! accepts to baton's own config types.
//!
//! * [`client`] — the ADS stream: subscriptions, ACK/NACK, versions and
//!   nonces, reconnection; accepted state published on a
//!   `tokio::sync::watch` as a [`Snapshot`], the stream's health as a
//!   [`Status`];
//! * [`map`] — each resource to baton's types (or a NACK's message), and
//!   [`map::compose`]: the static config plus the accepted resources as
//!   one [`baton_config::Config`];
//! * [`resources`] — the resource types and the published structs.
//!
//! The generated protos and the ADS client stub are the `envoy-types`
//! crate's (0.7, on tonic 0.14 and prost 0.14): nothing is generated here.
//! The stream runs over h2c, or TLS / mTLS with `[xds.tls]` (tonic's
//! rustls, on ring).
//!
//! * [`render`] — the static file text plus the composed resources, as
//!   the text a worker generation parses ([`render::compose_text`]).
//!
//! # Driving baton (phase 2a)
//!
//! The supervisor runs the [`Client`] when the config has `[xds]`
//! (`supervisor/src/xds.rs`): it lives across worker generations, so an
//! upgrade re-fetches nothing. The first generation waits for the first
//! complete answer (listeners, and every resource they and the clusters
//! name), at most
//! `[xds] initial_fetch_timeout` (15 s), then serves what arrived. Each
//! accepted change, once `[xds] debounce` (100 ms) has gathered a burst
//! and every resource it names has arrived (warming), is composed with
//! the file ([`render::compose_text`]) and, if the text differs from the
//! one in force, becomes an upgrade of kind `xds`: a new generation with
//! the composed config, every connection carried over at its request or
//! frame boundary (HTTP/1.1 keep-alive, WebSocket-style tunnels, L4 and
//! RPC connections stay open), listeners LDS added bound and those it
//! removed closed by the supervisor. One that cannot compose, bind or
//! start is refused and counted (`baton_upgrades_total{kind="xds"}`);
//! the generation in force serves on. The client has ACKed the resources
//! by then (it ACKs what maps), so the control plane is not told of such
//! a refusal: a NACK names only a resource that does not map. Losing the
//! control plane keeps the last accepted resources in force; `baton
//! upgrade` and SIGHUP compose the file with them.
//!
//! The next step is to swap routes, clusters and endpoints inside the
//! running generation, with no new process per change.
//!
//! # Mapping
//!
//! What baton honours of each resource; the rest is either ignored and
//! counted ([`map::Ignored`], in [`Status::ignored`], by
//! `"<resource>.<field>"`) or makes the resource, and so the response
//! carrying it, NACKed with a message naming the resource.
//!
//! | xDS | baton | ignored (counted) | NACKed |
//! |---|---|---|---|
//! | `Cluster.name` | `Cluster.name` | | |
//! | `Cluster.type` `STATIC` (+ `load_assignment`), `EDS` (+ `eds_cluster_config.service_name`), `ORIGINAL_DST` | `ClusterKind::Static` with the endpoints (EDS: from the ClusterLoadAssignment), `ClusterKind::OriginalDst` | | `STRICT_DNS`, `LOGICAL_DNS`, custom types; `STATIC` without endpoints |
//! | `Cluster.lb_policy` `ROUND_ROBIN`, `LEAST_REQUEST`, `RANDOM`, `RING_HASH`, `MAGLEV` | `Lb` of the same name | `load_balancing_policy`, `common_lb_config`, `lb_subset_config` | `CLUSTER_PROVIDED`, `LOAD_BALANCING_POLICY_CONFIG` |
//! | `Cluster.connect_timeout` | `connect_timeout` | | |
//! | `Cluster.circuit_breakers.thresholds` (priority `DEFAULT`): `max_connections`, `max_pending_requests`, `max_requests`, `max_retries` | `CircuitBreakers` | `HIGH` priority thresholds, `per_host_thresholds`, `retry_budget` | |
//! | `Cluster.health_checks[0]`: `tcp_health_check`, `http_health_check` (`path`, `host`, `expected_statuses`, `codec_client_type` HTTP2), `grpc_health_check` (`service_name`); `interval`, `timeout`, `interval_jitter`, `no_traffic_interval`, `healthy_threshold`, `unhealthy_threshold` | `HealthCheck` | further health checks | `custom_health_check` |
//! | `Cluster.outlier_detection`: `consecutive_5xx`, `interval`, `base_ejection_time`, `max_ejection_time`, `max_ejection_percent`, `consecutive_gateway_failure` | `OutlierDetection` (the rest: baton's defaults) | | |
//! | `Cluster.http2_protocol_options` | `UpstreamProtocol::Http2` | `typed_extension_protocol_options`, `transport_socket` (upstream TLS itself: next phase), `dns_lookup_family` | |
//! | `Cluster.transport_socket` UpstreamTlsContext, listener chain's DownstreamTlsContext: `tls_certificate_sds_secret_configs`, `validation_context_sds_secret_config` (also in a combined context) | [`map::MappedCluster::secrets`], [`map::MappedListener::secrets`]: the SDS names subscribed | the rest of the TLS context | an undecodable TLS context |
//! | `ClusterLoadAssignment.endpoints[priority 0].lb_endpoints`: socket address, `load_balancing_weight` (1 to 128), `health_status` | `Endpoint { address, weight }`; `UNHEALTHY`, `DRAINING`, `TIMEOUT` endpoints left out | priority > 0 localities, locality weights, `policy` | named endpoints, non-IP addresses, weights > 128 |
//! | `Listener.address` (socket address), one filter chain, its only network filter | `Listener.address` | `listener_filters`, the chain's `transport_socket` | pipes; several filter chains or a `filter_chain_match` (next phase); other network filters |
//! | `tcp_proxy` (`cluster`) | a `tcp` listener to the cluster (left out, warming, until the cluster is there) | | `weighted_clusters` |
//! | `http_connection_manager` with `rds` or inline `route_config` | an `http` listener with those routes (RDS: left out, warming, until the RouteConfiguration is there) | HTTP filters other than the router | `scoped_routes` |
//! | `RouteConfiguration.virtual_hosts[].domains`: exact names, `*.suffix`, `*` (any) | each route's `hosts`; virtual hosts ordered as Envoy picks them (exact, longest suffix, `*`) | `vhds` | prefix wildcards (`foo.*`) |
//! | `Route.match`: `prefix`, `path`, `safe_regex` (whole path), `headers` with `exact_match` (`:method` → `methods`) | `PathMatch`, `headers`, `methods` | `query_parameters`, `runtime_fraction` | other header matchers, case-insensitive matching |
//! | `RouteAction`: `cluster`, `weighted_clusters`, `timeout`, `retry_policy.num_retries` | `HttpAction::Cluster`, `HttpAction::Weighted`, `timeout`, `retries` (a cluster not there yet: 503) | `prefix_rewrite`, `hash_policy`, host rewrites | `cluster_header` |
//! | `request_headers_to_add`/`_remove`, `response_headers_to_add`/`_remove` (route, virtual host, configuration) | a `headers` filter on the route (`append_action` / `append` → append or set) | | |
//! | `direct_response` (`status`, inline `body`) | `HttpAction::Direct` | | body from a file |
//! | `redirect` (`host_redirect`, `port_redirect`, `path_redirect`, scheme, `response_code`) | `HttpAction::Redirect` with a fixed `Location` | | prefix and regex rewrites |
//! | `Secret.tls_certificate` (`certificate_chain`, `private_key`), `validation_context.trusted_ca`: inline or a file name | [`map::MappedSecret`] (the worker's TLS contexts take them next phase) | | other secret types |
//!
//! Protobuf fields unknown to the Envoy v1.40 API are skipped by the
//! decoder (prost), as protobuf requires.

pub mod client;
pub mod map;
pub mod render;
pub mod resources;

pub use client::Client;
pub use resources::{Kind, Snapshot, Status};
