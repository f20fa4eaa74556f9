//! The first filters of each chain: real ones, small, each with its
//! tests, and the models for issue 15's built-ins.
//!
//! | chain | filter | name | does | mobility |
//! |---|---|---|---|---|
//! | L4 | [`sources::SourceRanges`] | `source_ranges` | refuses a connection by its source address (CIDR ranges, allow or deny) | moves |
//! | L4 | [`byte_limit::ByteLimit`] | `byte_limit` | closes a connection that sends (or is sent) more than its limit, counting per connection | stays |
//! | HTTP | [`headers::Headers`] | `headers` | sets, appends and removes request and response headers | moves |
//! | RPC | [`rpc_fault::RpcFault`] | `rpc_fault` | answers requests for a service (and method) with the protocol's error | moves |
//! | RPC | [`rocketmq_routes::RocketMqRoutes`] | `rocketmq_routes` | rewrites broker addresses in RocketMQ name-server answers to the listeners fronting the brokers | moves |
//!
//! None is configurable yet: issue 15 gives them config keys; until then
//! they are built in code (tests) — but `rocketmq_routes`, which a
//! RocketMQ listener's `rocketmq_brokers` key builds.

// Configured by issue 15; only tests build it now.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) mod byte_limit;
// Configured by issue 15; only tests build it now.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) mod headers;
pub(crate) mod rocketmq_routes;
// Configured by issue 15; only tests build it now.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) mod rpc_fault;
// Configured by issue 15; only tests build it now.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) mod sources;
