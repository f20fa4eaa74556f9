//! The first filters of each chain: real ones, small, each with its
//! tests, and the models for issue 15's built-ins.
//!
//! | chain | filter | name | does | mobility |
//! |---|---|---|---|---|
//! | L4 | [`sources::SourceRanges`] | `source_ranges` | refuses a connection by its source address (CIDR ranges, allow or deny) | moves |
//! | L4 | [`byte_limit::ByteLimit`] | `byte_limit` | closes a connection that sends (or is sent) more than its limit, counting per connection | stays |
//! | HTTP | [`headers::Headers`] | `headers` | sets, appends and removes request and response headers | moves |
//! | HTTP | [`compression::Compression`] | `compression` | compresses responses (gzip, brotli, zstd) by the request's `accept-encoding` and the response's content type, streaming | moves |
//! | RPC | [`rpc_fault::RpcFault`] | `rpc_fault` | answers requests for a service (and method) with the protocol's error | moves |
//! | RPC | [`rocketmq_routes::RocketMqRoutes`] | `rocketmq_routes` | rewrites broker addresses in RocketMQ name-server answers to the listeners fronting the brokers | moves |
//!
//! Each is configured by its name in a listener's (or an HTTP route's)
//! `filters` (`baton_config::filter` has the settings; `filter::config`
//! builds them) — but `rocketmq_routes`, which a RocketMQ listener's
//! `rocketmq_brokers` key builds.

pub(crate) mod byte_limit;
pub(crate) mod compression;
pub(crate) mod headers;
pub(crate) mod rocketmq_routes;
pub(crate) mod rpc_fault;
pub(crate) mod sources;
