//! The first filters of each chain: real ones, small, each with its
//! tests, and the models for issue 15's built-ins.
//!
//! | chain | filter | name | does | mobility |
//! |---|---|---|---|---|
//! | L4 | [`sources::SourceRanges`] | `source_ranges` | refuses a connection by its source address (CIDR ranges, allow or deny) | moves |
//! | L4 | [`byte_limit::ByteLimit`] | `byte_limit` | closes a connection that sends (or is sent) more than its limit, counting per connection | stays |
//! | L4 | [`connection_limit::ConnectionLimit`] | `connection_limit` | refuses a connection from a client IP with `max_per_source` open (counts per listener, given back when a connection ends) | moves |
//! | HTTP | [`rbac::Rbac`] | `rbac` | allows or denies requests by rules on source, path, method, header: 403 | moves |
//! | HTTP | [`cors::Cors`] | `cors` | answers CORS preflights from allowed origins (204) and marks their responses | moves |
//! | HTTP | [`fault::Fault`] | `fault` | delays and aborts a share of requests, or those whose headers ask (opt-in) | moves |
//! | HTTP | [`headers::Headers`] | `headers` | sets, appends and removes request and response headers | moves |
//! | HTTP | [`compression::Compression`] | `compression` | compresses responses (gzip, brotli, zstd) by the request's `accept-encoding` and the response's content type, streaming | moves |
//! | HTTP | [`mirror::Mirror`] | `mirror` | asks for a copy of a share of requests for a shadow cluster (`-shadow` host), which the exchange sends on its own, its answer ignored | moves |
//! | RPC | [`rpc_fault::RpcFault`] | `rpc_fault` | answers requests for a service (and method), or a share of them, with the protocol's error | moves |
//! | HTTP | [`rate_limit::LocalRateLimit`] | `local_rate_limit` | a token bucket per listener or route (or per header value, or client IP): 429 when empty | moves (buckets are per listener) |
//! | RPC | [`rpc_headers::RpcHeaders`] | `rpc_headers` | sets and removes request headers (Bolt's header map, Dubbo's attachments) and Bolt response headers, for a service (and method) or all | moves |
//! | RPC | [`rate_limit::RpcRateLimit`] | `rpc_rate_limit` | a token bucket for a service's (method's) requests: the protocol's `overloaded` error when empty | moves (the bucket is per listener) |
//! | RPC | [`rocketmq_routes::RocketMqRoutes`] | `rocketmq_routes` | rewrites broker addresses in RocketMQ name-server answers to the listeners fronting the brokers | moves |
//!
//! Each is configured by its name in a listener's (or an HTTP route's)
//! `filters` (`baton_config::filter` has the settings; `filter::config`
//! builds them) — but `rocketmq_routes`, which a RocketMQ listener's
//! `rocketmq_brokers` key builds.

pub(crate) mod byte_limit;
pub(crate) mod compression;
pub(crate) mod connection_limit;
pub(crate) mod cors;
pub(crate) mod fault;
pub(crate) mod headers;
pub(crate) mod mirror;
pub(crate) mod rate_limit;
pub(crate) mod rbac;
pub(crate) mod rocketmq_routes;
pub(crate) mod rpc_fault;
pub(crate) mod rpc_headers;
pub(crate) mod sources;
