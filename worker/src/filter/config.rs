//! The chains a generation builds from its config (issue 15): a
//! listener's `filters`, in order, each joining the chain of its layer
//! (`baton_config::filter::Layer`), and an HTTP route's own chain.
//!
//! The config checked every entry (names, settings, which listener may
//! run which filter); this turns each into its built-in
//! ([`crate::filter::builtin`]), or loads its proxy-wasm plugin
//! ([`crate::filter::wasm`]: a plugin that does not load fails the build).

use std::sync::Arc;

use baton_config::filter::{Filter, HeaderEdit, Layer, RpcError};
use baton_config::{Config, Listener};

use crate::codec::ErrorKind;
use crate::filter::builtin::byte_limit::ByteLimit;
use crate::filter::builtin::compression::Compression;
use crate::filter::builtin::connection_limit::ConnectionLimit;
use crate::filter::builtin::cors::Cors;
use crate::filter::builtin::fault::Fault;
use crate::filter::builtin::headers::{Edit, Headers, Template};
use crate::filter::builtin::mirror::Mirror;
use crate::filter::builtin::rate_limit::{LocalRateLimit, RpcRateLimit};
use crate::filter::builtin::rbac::Rbac;
use crate::filter::builtin::rpc_fault::RpcFault;
use crate::filter::builtin::rpc_headers::RpcHeaders;
use crate::filter::builtin::sources::SourceRanges;
use crate::filter::http::{HeaderError, HttpChain, HttpFilter};
use crate::filter::network::{NetworkChain, NetworkFilter};
use crate::filter::rpc::RpcFilter;
use crate::filter::wasm::{LoadError, Plugin};

/// Why an HTTP chain cannot be built.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ChainError {
    #[error(transparent)]
    Header(#[from] HeaderError),
    #[error(transparent)]
    Plugin(#[from] LoadError),
    #[error(transparent)]
    Compiled(#[from] crate::filter::compiled::CompiledError),
}

/// Each listener's L4 chain, by listener index.
pub(crate) fn network_chains(config: &Config) -> Vec<NetworkChain> {
    config.listeners.iter().map(network_chain).collect()
}

fn network_chain(listener: &Listener) -> NetworkChain {
    let filters = listener
        .filters
        .iter()
        .filter_map(|f| -> Option<Arc<dyn NetworkFilter>> {
            match f {
                Filter::SourceRanges { policy, ranges } => Some(Arc::new(SourceRanges {
                    policy: *policy,
                    ranges: ranges.clone(),
                })),
                Filter::ByteLimit {
                    to_upstream,
                    to_client,
                } => Some(Arc::new(ByteLimit {
                    to_upstream: *to_upstream,
                    to_client: *to_client,
                })),
                Filter::ConnectionLimit { max_per_source } => {
                    Some(Arc::new(ConnectionLimit::new(*max_per_source)))
                }
                _ => None,
            }
        })
        .collect();
    NetworkChain::new(filters)
}

/// The HTTP chain of `filters` (a listener's or a route's): its HTTP
/// filters, in order.
pub(crate) fn http_chain(filters: &[Filter]) -> Result<HttpChain, ChainError> {
    let mut chain: Vec<Arc<dyn HttpFilter>> = Vec::new();
    for f in filters {
        match f {
            Filter::Headers { request, response } => {
                chain.push(Arc::new(Headers::new(edits(request)?, edits(response)?)?));
            }
            Filter::LocalRateLimit { bucket, key } => {
                chain.push(Arc::new(LocalRateLimit::new(*bucket, key.clone())));
            }
            Filter::Rbac { action, rules } => {
                chain.push(Arc::new(Rbac::new(*action, rules.clone())));
            }
            Filter::Fault {
                abort,
                delay,
                header_control,
            } => {
                chain.push(Arc::new(Fault::new(*abort, *delay, *header_control)));
            }
            Filter::Cors(policy) => chain.push(Arc::new(Cors::new(policy))),
            Filter::Compression(settings) => {
                chain.push(Arc::new(Compression::new(settings.clone())));
            }
            Filter::Mirror(settings) => chain.push(Arc::new(Mirror::new(settings))),
            _ => {}
        }
        if let Filter::Wasm(plugin) = f {
            chain.push(Arc::new(Plugin::load(plugin)?));
        }
        if let Filter::Compiled { filter, config } = f {
            chain.push(crate::filter::compiled::http(filter, config)?);
        }
    }
    Ok(HttpChain::new(chain))
}

/// A listener's RPC filters, in order.
pub(crate) fn rpc_filters(listener: &Listener) -> Vec<Arc<dyn RpcFilter>> {
    listener
        .filters
        .iter()
        .filter(|f| f.layer() == Layer::Rpc)
        .filter_map(|f| -> Option<Arc<dyn RpcFilter>> {
            match f {
                Filter::RpcFault {
                    service,
                    method,
                    error,
                    percentage,
                } => Some(Arc::new(RpcFault {
                    service: service.clone(),
                    method: method.clone(),
                    error: error_kind(*error),
                    percentage: *percentage,
                })),
                Filter::RpcRateLimit {
                    service,
                    method,
                    bucket,
                } => Some(Arc::new(RpcRateLimit::new(
                    service.clone(),
                    method.clone(),
                    *bucket,
                ))),
                Filter::RpcHeaders {
                    service,
                    method,
                    request,
                    response,
                } => {
                    // The config checked every key and value.
                    let (Ok(request), Ok(response)) = (edits(request), edits(response)) else {
                        return None;
                    };
                    Some(Arc::new(RpcHeaders::new(
                        service.clone(),
                        method.clone(),
                        request,
                        response,
                    )))
                }
                _ => None,
            }
        })
        .collect()
}

/// The config's edits, their values parsed into templates (the config
/// checked them: a failure here is a config the checks let through).
fn edits(edits: &[HeaderEdit]) -> Result<Vec<Edit>, HeaderError> {
    let template = |name: &str, value: &str| {
        value
            .parse::<Template>()
            .map_err(|_| HeaderError::Value(name.into()))
    };
    edits
        .iter()
        .map(|e| {
            Ok(match e {
                HeaderEdit::Set(name, value) => Edit::Set(name.clone(), template(name, value)?),
                HeaderEdit::Append(name, value) => {
                    Edit::Append(name.clone(), template(name, value)?)
                }
                HeaderEdit::Remove(name) => Edit::Remove(name.clone()),
            })
        })
        .collect()
}

fn error_kind(error: RpcError) -> ErrorKind {
    match error {
        RpcError::Timeout => ErrorKind::Timeout,
        RpcError::NoRoute => ErrorKind::NoRoute,
        RpcError::Unavailable => ErrorKind::Unavailable,
        RpcError::Overloaded => ErrorKind::Overloaded,
        RpcError::BadRequest => ErrorKind::BadRequest,
        RpcError::Internal => ErrorKind::Internal,
    }
}
