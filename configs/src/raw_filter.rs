//! Filter lists as written (`filters = [...]` on a listener or an HTTP
//! route) and their checks, into [`crate::filter::Filter`]s: names,
//! settings, and which listener may run which filter.

use std::collections::BTreeMap;
use std::num::{NonZeroU32, NonZeroU64};

use serde::Deserialize;
use toml::Spanned;

use crate::filter::{
    Algorithm, Cidr, Compression, CorsPolicy, FaultAbort, FaultDelay, Filter, HeaderEdit, Layer,
    NAMES, RESERVED_HEADERS, RangePolicy, RateKey, RbacRule, RpcError, Template, TokenBucket,
    WasmPlugin, is_header_name, is_header_value,
};
use crate::model::{Cluster, Protocol};

/// A filter entry as written: `name`, and any filter's settings (each
/// filter takes its own; [`lower`] refuses the others).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFilter {
    /// Required but in the `{ wasm = "file.wasm" }` form.
    pub(crate) name: Option<Spanned<String>>,
    /// Routes only: turns the listener's filter of this name off.
    disabled: Option<bool>,
    allow: Option<Vec<String>>,
    deny: Option<Vec<String>>,
    to_upstream: Option<u64>,
    to_client: Option<u64>,
    request_set: Option<BTreeMap<String, String>>,
    request_append: Option<BTreeMap<String, String>>,
    request_remove: Option<Vec<String>>,
    response_set: Option<BTreeMap<String, String>>,
    response_append: Option<BTreeMap<String, String>>,
    response_remove: Option<Vec<String>>,
    service: Option<String>,
    method: Option<String>,
    error: Option<String>,
    max_tokens: Option<u64>,
    tokens_per_fill: Option<u64>,
    fill_interval: Option<String>,
    key: Option<RawRateKey>,
    max_per_source: Option<u32>,
    action: Option<String>,
    rules: Option<Vec<RawRbacRule>>,
    abort: Option<RawAbort>,
    delay: Option<RawDelay>,
    header_control: Option<bool>,
    percentage: Option<u32>,
    allow_origins: Option<Vec<String>>,
    allow_methods: Option<Vec<String>>,
    allow_headers: Option<Vec<String>>,
    expose_headers: Option<Vec<String>>,
    max_age: Option<String>,
    allow_credentials: Option<bool>,
    algorithms: Option<Vec<String>>,
    content_types: Option<Vec<String>>,
    min_content_length: Option<u64>,
    levels: Option<BTreeMap<String, i64>>,
    /// `wasm`: the module (`file`), or the whole entry's shorthand (`wasm`).
    wasm: Option<String>,
    file: Option<String>,
    config: Option<String>,
    root_id: Option<String>,
    fuel: Option<u64>,
    /// `compiled`: the registered name of a filter built into the worker.
    compiled: Option<String>,
    /// `mirror`: the shadow cluster (spanned: a name that is not a
    /// cluster is refused where it is written).
    cluster: Option<Spanned<String>>,
    disable_shadow_host_suffix_append: Option<bool>,
    max_body_bytes: Option<u64>,
}

/// A `fault`'s `abort` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAbort {
    status: u16,
    percentage: Option<u32>,
}

/// A `fault`'s `delay` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDelay {
    duration: String,
    percentage: Option<u32>,
}

/// An `rbac` rule as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRbacRule {
    source: Option<Vec<String>>,
    path_prefix: Option<String>,
    methods: Option<Vec<String>>,
    header: Option<RawHeaderMatch>,
}

/// An `rbac` rule's `header`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHeaderMatch {
    name: String,
    value: String,
}

/// A `local_rate_limit`'s `key` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRateKey {
    header: Option<String>,
    source_ip: Option<bool>,
}

/// Where a filter list is written: which protocols' chains it may join.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Place {
    Listener(Protocol),
    /// An HTTP route: HTTP filters, and `disabled` entries.
    HttpRoute,
}

/// A filter list, checked: the filters in order, and (routes) the
/// names of the listener filters turned off.
pub(crate) type Lowered = (Vec<Filter>, Vec<String>);

/// Why a filter entry was refused: the span of what it is about, and a
/// message.
pub(crate) type Refused = (std::ops::Range<usize>, String);

/// Checks a filter list written at `place`; `clusters`: the config's,
/// which a filter may name (`mirror`).
pub(crate) fn lower(
    raw: &[Spanned<RawFilter>],
    place: Place,
    clusters: &[Cluster],
) -> Result<Lowered, Refused> {
    let mut filters = Vec::new();
    let mut disabled = Vec::new();
    for entry in raw {
        let span = entry.span();
        let f = entry.get_ref();
        let (name, name_span) = match (&f.name, &f.wasm, &f.compiled) {
            (Some(name), _, _) => (name.get_ref().as_str(), name.span()),
            (None, Some(_), _) => ("wasm", span.clone()),
            (None, None, Some(_)) => ("compiled", span.clone()),
            (None, None, None) => return Err((span, "a filter needs a `name`".into())),
        };
        if !NAMES.contains(&name) {
            return Err((
                name_span,
                format!("unknown filter {name:?} (known: {})", NAMES.join(", ")),
            ));
        }
        let set = f.settings();
        if let Some(off) = f.disabled {
            if !matches!(place, Place::HttpRoute) {
                return Err((span, "`disabled` applies to filters of a route".into()));
            }
            if let Some(key) = set.iter().find(|(_, is_set)| *is_set).map(|(k, _)| k) {
                return Err((
                    span,
                    format!("a disabled filter takes no settings (found `{key}`)"),
                ));
            }
            if off {
                disabled.push(name.to_string());
            }
            continue;
        }
        let allowed: &[&str] = match name {
            "source_ranges" => &["allow", "deny"],
            "byte_limit" => &["to_upstream", "to_client"],
            "headers" => &[
                "request_set",
                "request_append",
                "request_remove",
                "response_set",
                "response_append",
                "response_remove",
            ],
            "local_rate_limit" => &["max_tokens", "tokens_per_fill", "fill_interval", "key"],
            "rpc_rate_limit" => &[
                "service",
                "method",
                "max_tokens",
                "tokens_per_fill",
                "fill_interval",
            ],
            "rpc_headers" => &[
                "service",
                "method",
                "request_set",
                "request_remove",
                "response_set",
                "response_remove",
            ],
            "connection_limit" => &["max_per_source"],
            "rbac" => &["action", "rules"],
            "fault" => &["abort", "delay", "header_control"],
            "cors" => &[
                "allow_origins",
                "allow_methods",
                "allow_headers",
                "expose_headers",
                "max_age",
                "allow_credentials",
            ],
            "compression" => &[
                "algorithms",
                "content_types",
                "min_content_length",
                "levels",
            ],
            "wasm" => &["wasm", "file", "config", "root_id", "fuel"],
            "compiled" => &["compiled", "config"],
            "mirror" => &[
                "cluster",
                "percentage",
                "disable_shadow_host_suffix_append",
                "max_body_bytes",
            ],
            _ => &["service", "method", "error", "percentage"],
        };
        if let Some((key, _)) = set
            .iter()
            .find(|(key, is_set)| *is_set && !allowed.contains(key))
        {
            return Err((
                span,
                format!(
                    "{name} has no setting `{key}` (its settings: {})",
                    allowed.join(", ")
                ),
            ));
        }
        let filter = match name {
            "mirror" => f.mirror(&span, clusters)?,
            _ => f.build(name).map_err(|m| (span.clone(), m))?,
        };
        check_place(&filter, place).map_err(|m| (span, m))?;
        filters.push(filter);
    }
    Ok((filters, disabled))
}

/// Whether `filter` can run where it is written.
fn check_place(filter: &Filter, place: Place) -> Result<(), String> {
    let name = filter.name();
    let ok = match (filter.layer(), place) {
        (Layer::Http, Place::HttpRoute) => true,
        (_, Place::HttpRoute) => {
            return Err(format!(
                "{name} cannot run on a route: a route's filters are HTTP filters"
            ));
        }
        // The accept stage runs on every listener.
        (Layer::Network, Place::Listener(_))
            if matches!(
                filter,
                Filter::SourceRanges { .. } | Filter::ConnectionLimit { .. }
            ) =>
        {
            true
        }
        // The byte stage taps L4 tunnels only.
        (Layer::Network, Place::Listener(p)) => p == Protocol::Tcp,
        (Layer::Http, Place::Listener(p)) => p == Protocol::Http,
        // Header edits know Bolt's header map and Dubbo's attachments;
        // Dubbo responses carry none.
        (Layer::Rpc, Place::Listener(p)) if matches!(filter, Filter::RpcHeaders { .. }) => {
            match (p, filter) {
                (Protocol::Bolt, _) => true,
                (Protocol::Dubbo, Filter::RpcHeaders { response, .. }) if !response.is_empty() => {
                    return Err(
                        "rpc_headers cannot edit Dubbo responses (they carry no attachments); \
                         use request_set and request_remove"
                            .into(),
                    );
                }
                (Protocol::Dubbo, _) => true,
                _ => false,
            }
        }
        (Layer::Rpc, Place::Listener(p)) => !matches!(p, Protocol::Tcp | Protocol::Http),
    };
    if ok {
        Ok(())
    } else {
        let on = match place {
            Place::Listener(p) => p.name(),
            Place::HttpRoute => "http",
        };
        Err(format!("{name} cannot run on a {on} listener"))
    }
}

impl RawFilter {
    /// Every setting's key, and whether it is written.
    fn settings(&self) -> [(&'static str, bool); 43] {
        [
            ("allow", self.allow.is_some()),
            ("deny", self.deny.is_some()),
            ("to_upstream", self.to_upstream.is_some()),
            ("to_client", self.to_client.is_some()),
            ("request_set", self.request_set.is_some()),
            ("request_append", self.request_append.is_some()),
            ("request_remove", self.request_remove.is_some()),
            ("response_set", self.response_set.is_some()),
            ("response_append", self.response_append.is_some()),
            ("response_remove", self.response_remove.is_some()),
            ("service", self.service.is_some()),
            ("method", self.method.is_some()),
            ("error", self.error.is_some()),
            ("max_tokens", self.max_tokens.is_some()),
            ("tokens_per_fill", self.tokens_per_fill.is_some()),
            ("fill_interval", self.fill_interval.is_some()),
            ("key", self.key.is_some()),
            ("max_per_source", self.max_per_source.is_some()),
            ("action", self.action.is_some()),
            ("rules", self.rules.is_some()),
            ("abort", self.abort.is_some()),
            ("delay", self.delay.is_some()),
            ("header_control", self.header_control.is_some()),
            ("percentage", self.percentage.is_some()),
            ("allow_origins", self.allow_origins.is_some()),
            ("allow_methods", self.allow_methods.is_some()),
            ("allow_headers", self.allow_headers.is_some()),
            ("expose_headers", self.expose_headers.is_some()),
            ("max_age", self.max_age.is_some()),
            ("allow_credentials", self.allow_credentials.is_some()),
            ("algorithms", self.algorithms.is_some()),
            ("content_types", self.content_types.is_some()),
            ("min_content_length", self.min_content_length.is_some()),
            ("levels", self.levels.is_some()),
            ("wasm", self.wasm.is_some()),
            ("file", self.file.is_some()),
            ("config", self.config.is_some()),
            ("root_id", self.root_id.is_some()),
            ("fuel", self.fuel.is_some()),
            ("compiled", self.compiled.is_some()),
            ("cluster", self.cluster.is_some()),
            (
                "disable_shadow_host_suffix_append",
                self.disable_shadow_host_suffix_append.is_some(),
            ),
            ("max_body_bytes", self.max_body_bytes.is_some()),
        ]
    }

    /// The filter `name` from its settings (only its own are written).
    fn build(&self, name: &str) -> Result<Filter, String> {
        match name {
            "source_ranges" => {
                let (policy, list) = match (&self.allow, &self.deny) {
                    (Some(list), None) => (RangePolicy::Allow, list),
                    (None, Some(list)) => (RangePolicy::Deny, list),
                    _ => return Err("source_ranges takes one of `allow` or `deny`".into()),
                };
                let ranges = list
                    .iter()
                    .map(|r| r.parse::<Cidr>().map_err(|e| e.to_string()))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Filter::SourceRanges { policy, ranges })
            }
            "byte_limit" => {
                if self.to_upstream.is_none() && self.to_client.is_none() {
                    return Err("byte_limit takes `to_upstream`, `to_client` or both".into());
                }
                Ok(Filter::ByteLimit {
                    to_upstream: self.to_upstream,
                    to_client: self.to_client,
                })
            }
            "headers" => {
                let request = edits(
                    &self.request_set,
                    &self.request_append,
                    &self.request_remove,
                )?;
                let response = edits(
                    &self.response_set,
                    &self.response_append,
                    &self.response_remove,
                )?;
                if request.is_empty() && response.is_empty() {
                    return Err("headers has no edit (request_set, response_remove, …)".into());
                }
                Ok(Filter::Headers { request, response })
            }
            "local_rate_limit" => Ok(Filter::LocalRateLimit {
                bucket: self.bucket(name)?,
                key: self.rate_key()?,
            }),
            "rpc_rate_limit" => Ok(Filter::RpcRateLimit {
                service: self.service.clone(),
                method: self.method.clone(),
                bucket: self.bucket(name)?,
            }),
            "rpc_headers" => self.rpc_headers(),
            "connection_limit" => {
                let max = self
                    .max_per_source
                    .ok_or("connection_limit needs `max_per_source`")?;
                Ok(Filter::ConnectionLimit {
                    max_per_source: NonZeroU32::new(max)
                        .ok_or("`max_per_source` must be at least 1")?,
                })
            }
            "rbac" => self.rbac(),
            "fault" => self.fault(),
            "cors" => self.cors().map(Filter::Cors),
            "compression" => self.compression().map(Filter::Compression),
            "wasm" => self.wasm_plugin().map(Filter::Wasm),
            "compiled" => match &self.compiled {
                Some(filter) if !filter.is_empty() => Ok(Filter::Compiled {
                    filter: filter.clone(),
                    config: self.config.clone().unwrap_or_default(),
                }),
                _ => Err(
                    "compiled needs `compiled` = the name the filter registered in the worker"
                        .into(),
                ),
            },
            _ => {
                let service = self
                    .service
                    .clone()
                    .ok_or("rpc_fault needs `service` (the service or interface it answers for)")?;
                let error = match &self.error {
                    Some(e) => e.parse()?,
                    None => RpcError::Unavailable,
                };
                Ok(Filter::RpcFault {
                    service,
                    method: self.method.clone(),
                    error,
                    percentage: percentage(self.percentage)?,
                })
            }
        }
    }
}

impl RawFilter {
    /// `rpc_headers`: sets and removals, checked as RPC header keys (any
    /// text without control characters) and values (templates).
    fn rpc_headers(&self) -> Result<Filter, String> {
        let side = |set: &Option<BTreeMap<String, String>>, remove: &Option<Vec<String>>| {
            let key = |k: &str| {
                if k.is_empty() || k.chars().any(char::is_control) {
                    Err(format!("{k:?} is not an RPC header key"))
                } else {
                    Ok(k.to_string())
                }
            };
            let mut out = Vec::new();
            for (k, v) in set.iter().flatten() {
                if v.chars().any(char::is_control) {
                    return Err(format!("the value of {k} has a control character"));
                }
                v.parse::<Template>()
                    .map_err(|e| format!("the value of {k}: {e}"))?;
                out.push(HeaderEdit::Set(key(k)?, v.clone()));
            }
            for k in remove.iter().flatten() {
                out.push(HeaderEdit::Remove(key(k)?));
            }
            Ok::<_, String>(out)
        };
        let request = side(&self.request_set, &self.request_remove)?;
        let response = side(&self.response_set, &self.response_remove)?;
        if request.is_empty() && response.is_empty() {
            return Err("rpc_headers has no edit (request_set, request_remove, …)".into());
        }
        Ok(Filter::RpcHeaders {
            service: self.service.clone(),
            method: self.method.clone(),
            request,
            response,
        })
    }

    /// A rate limit's token bucket.
    fn bucket(&self, name: &str) -> Result<TokenBucket, String> {
        let max_tokens = self
            .max_tokens
            .ok_or_else(|| format!("{name} needs `max_tokens` (the bucket's size)"))?;
        let max_tokens = NonZeroU64::new(max_tokens).ok_or("`max_tokens` must be at least 1")?;
        let tokens_per_fill = NonZeroU64::new(self.tokens_per_fill.unwrap_or(1))
            .ok_or("`tokens_per_fill` must be at least 1")?;
        let fill_interval = self
            .fill_interval
            .as_deref()
            .ok_or_else(|| format!("{name} needs `fill_interval` (like \"1s\")"))?;
        let fill_interval =
            crate::duration::parse(fill_interval).map_err(|e| format!("`fill_interval`: {e}"))?;
        if fill_interval.is_zero() {
            return Err("`fill_interval` must be longer than zero".into());
        }
        Ok(TokenBucket {
            max_tokens,
            tokens_per_fill,
            fill_interval,
        })
    }

    /// A `cors` filter's policy.
    fn cors(&self) -> Result<CorsPolicy, String> {
        let origins = self
            .allow_origins
            .clone()
            .ok_or("cors needs `allow_origins` (origins, or \"*\")")?;
        if origins.is_empty() {
            return Err("`allow_origins` is empty".into());
        }
        for o in &origins {
            if o != "*" && (o.is_empty() || o.contains(char::is_whitespace) || !is_header_value(o))
            {
                return Err(format!("`allow_origins`: {o:?} is not an origin"));
            }
        }
        let names = |key: &str, list: &Option<Vec<String>>, upper: bool| {
            list.iter()
                .flatten()
                .map(|n| {
                    if !is_header_name(n) {
                        return Err(format!("`{key}`: {n:?} is not a token"));
                    }
                    Ok(if upper {
                        n.to_ascii_uppercase()
                    } else {
                        n.to_ascii_lowercase()
                    })
                })
                .collect::<Result<Vec<_>, String>>()
        };
        let max_age = match &self.max_age {
            Some(t) => Some(crate::duration::parse(t).map_err(|e| format!("`max_age`: {e}"))?),
            None => None,
        };
        Ok(CorsPolicy {
            allow_origins: origins,
            allow_methods: names("allow_methods", &self.allow_methods, true)?,
            allow_headers: names("allow_headers", &self.allow_headers, false)?,
            expose_headers: names("expose_headers", &self.expose_headers, false)?,
            max_age,
            allow_credentials: self.allow_credentials.unwrap_or(false),
        })
    }

    /// A `fault` filter.
    fn fault(&self) -> Result<Filter, String> {
        let abort = match &self.abort {
            Some(a) => {
                if !(200..=599).contains(&a.status) {
                    return Err(format!("`abort`: status {} is not 200 to 599", a.status));
                }
                Some(FaultAbort {
                    status: a.status,
                    percentage: percentage(a.percentage).map_err(|e| format!("`abort`: {e}"))?,
                })
            }
            None => None,
        };
        let delay = match &self.delay {
            Some(d) => Some(FaultDelay {
                duration: crate::duration::parse(&d.duration)
                    .map_err(|e| format!("`delay`: {e}"))?,
                percentage: percentage(d.percentage).map_err(|e| format!("`delay`: {e}"))?,
            }),
            None => None,
        };
        let header_control = self.header_control.unwrap_or(false);
        if abort.is_none() && delay.is_none() && !header_control {
            return Err("fault needs `abort`, `delay` or `header_control = true`".into());
        }
        Ok(Filter::Fault {
            abort,
            delay,
            header_control,
        })
    }

    /// An `rbac` filter.
    fn rbac(&self) -> Result<Filter, String> {
        let action = match self.action.as_deref() {
            Some("allow") => RangePolicy::Allow,
            Some("deny") => RangePolicy::Deny,
            Some(other) => return Err(format!("`action` is \"allow\" or \"deny\", not {other:?}")),
            None => return Err("rbac needs `action` (\"allow\" or \"deny\")".into()),
        };
        let raw = self.rules.as_deref().ok_or("rbac needs `rules`")?;
        if raw.is_empty() {
            return Err("rbac needs at least one rule".into());
        }
        let mut rules = Vec::new();
        for (i, r) in raw.iter().enumerate() {
            let at = |m: String| format!("rules[{i}]: {m}");
            let source = r
                .source
                .iter()
                .flatten()
                .map(|c| c.parse::<Cidr>().map_err(|e| at(e.to_string())))
                .collect::<Result<Vec<_>, _>>()?;
            if r.source.as_ref().is_some_and(Vec::is_empty) {
                return Err(at("`source` is empty (leave it out to match any)".into()));
            }
            if let Some(p) = &r.path_prefix
                && !p.starts_with('/')
            {
                return Err(at(format!("`path_prefix` {p:?} does not start with /")));
            }
            let methods = r
                .methods
                .iter()
                .flatten()
                .map(|m| {
                    if is_header_name(m) {
                        Ok(m.to_ascii_uppercase())
                    } else {
                        Err(at(format!("{m:?} is not a method")))
                    }
                })
                .collect::<Result<Vec<_>, _>>()?;
            if r.methods.as_ref().is_some_and(Vec::is_empty) {
                return Err(at("`methods` is empty (leave it out to match any)".into()));
            }
            let header = match &r.header {
                Some(h) => {
                    if !is_header_name(&h.name) {
                        return Err(at(format!("{:?} is not a header name", h.name)));
                    }
                    if !is_header_value(&h.value) {
                        return Err(at(format!(
                            "the value of {} has a control character",
                            h.name
                        )));
                    }
                    Some((h.name.to_ascii_lowercase(), h.value.clone()))
                }
                None => None,
            };
            let rule = RbacRule {
                source,
                path_prefix: r.path_prefix.clone(),
                methods,
                header,
            };
            if rule == RbacRule::default() {
                return Err(at(
                    "a rule needs one of `source`, `path_prefix`, `methods`, `header`".into(),
                ));
            }
            rules.push(rule);
        }
        Ok(Filter::Rbac { action, rules })
    }

    /// A `local_rate_limit`'s key.
    fn rate_key(&self) -> Result<RateKey, String> {
        let Some(key) = &self.key else {
            return Ok(RateKey::None);
        };
        match (&key.header, key.source_ip) {
            (Some(header), None) => {
                if !is_header_name(header) {
                    return Err(format!("`key`: {header:?} is not a header name"));
                }
                Ok(RateKey::Header(header.to_ascii_lowercase()))
            }
            (None, Some(true)) => Ok(RateKey::SourceIp),
            _ => Err(
                "`key` is `{ header = \"name\" }` or `{ source_ip = true }` (leave it out for one bucket)"
                    .into(),
            ),
        }
    }
}

/// A percentage as written (100 when not).
fn percentage(written: Option<u32>) -> Result<u8, String> {
    match written {
        None => Ok(100),
        Some(p) => u8::try_from(p)
            .ok()
            .filter(|p| *p <= 100)
            .ok_or_else(|| format!("`percentage` {p} is not 0 to 100")),
    }
}

impl RawFilter {
    /// A `compression` filter: its defaults (Envoy's) where a setting is
    /// not written.
    fn compression(&self) -> Result<Compression, String> {
        let mut c = Compression::default();
        if let Some(names) = &self.algorithms {
            let mut algorithms = Vec::new();
            for name in names {
                let a: Algorithm = name.parse()?;
                if algorithms.contains(&a) {
                    return Err(format!("compression names {name:?} twice in `algorithms`"));
                }
                algorithms.push(a);
            }
            if algorithms.is_empty() {
                return Err("compression needs at least one of `algorithms`".into());
            }
            c.algorithms = algorithms;
        }
        if let Some(types) = &self.content_types {
            let mut lowered = Vec::new();
            for t in types {
                let (top, sub) = t.split_once('/').unwrap_or((t, ""));
                if !is_header_name(top) || !is_header_name(sub) {
                    return Err(format!(
                        "{t:?} is not a media type (like text/html, without parameters)"
                    ));
                }
                lowered.push(t.to_ascii_lowercase());
            }
            if lowered.is_empty() {
                return Err("compression needs at least one of `content_types`".into());
            }
            c.content_types = lowered;
        }
        if let Some(min) = self.min_content_length {
            c.min_content_length = min;
        }
        for (name, level) in self.levels.iter().flatten() {
            let a: Algorithm = name.parse()?;
            let range = a.levels();
            if !range.contains(level) {
                return Err(format!(
                    "{name} level {level} is out of range ({}..={})",
                    range.start(),
                    range.end()
                ));
            }
            // In range, so these fit.
            match a {
                Algorithm::Gzip => c.gzip_level = *level as u32,
                Algorithm::Brotli => c.brotli_level = *level as u32,
                Algorithm::Zstd => c.zstd_level = *level as i32,
            }
        }
        Ok(c)
    }
}

impl RawFilter {
    /// Its name as written (`wasm` for the `{ wasm = "…" }` form).
    pub(crate) fn name(&self) -> &str {
        match &self.name {
            Some(name) => name.get_ref(),
            None => "wasm",
        }
    }

    fn wasm_plugin(&self) -> Result<WasmPlugin, String> {
        let file = match (&self.file, &self.wasm) {
            (Some(file), None) | (None, Some(file)) => file,
            (Some(_), Some(_)) => {
                return Err("wasm takes its module as `file` or as `wasm`, not both".into());
            }
            (None, None) => return Err("wasm needs `file` (the plugin's .wasm module)".into()),
        };
        if file.is_empty() {
            return Err("wasm's `file` is empty".into());
        }
        let fuel = self.fuel.unwrap_or(WasmPlugin::DEFAULT_FUEL);
        if fuel == 0 {
            return Err("wasm's `fuel` must be more than 0".into());
        }
        Ok(WasmPlugin {
            file: file.into(),
            config: self.config.clone().unwrap_or_default(),
            root_id: self.root_id.clone().unwrap_or_default(),
            fuel,
        })
    }
}

/// One side's header edits: sets, then appends, then removals (each in
/// name order), every name and value checked.
fn edits(
    set: &Option<BTreeMap<String, String>>,
    append: &Option<BTreeMap<String, String>>,
    remove: &Option<Vec<String>>,
) -> Result<Vec<HeaderEdit>, String> {
    let check = |name: &str, value: Option<&str>| -> Result<String, String> {
        if !is_header_name(name) {
            return Err(format!("{name:?} is not a header name"));
        }
        let lower = name.to_ascii_lowercase();
        if RESERVED_HEADERS.contains(&lower.as_str()) {
            return Err(format!(
                "{name} is framing or connection management, which the proxy does per hop"
            ));
        }
        if let Some(v) = value
            && !is_header_value(v)
        {
            return Err(format!("the value of {name} has a control character"));
        }
        if let Some(v) = value {
            v.parse::<Template>()
                .map_err(|e| format!("the value of {name}: {e}"))?;
        }
        Ok(lower)
    };
    let mut out = Vec::new();
    for (name, value) in set.iter().flatten() {
        out.push(HeaderEdit::Set(check(name, Some(value))?, value.clone()));
    }
    for (name, value) in append.iter().flatten() {
        out.push(HeaderEdit::Append(check(name, Some(value))?, value.clone()));
    }
    for name in remove.iter().flatten() {
        out.push(HeaderEdit::Remove(check(name, None)?));
    }
    Ok(out)
}

impl RawFilter {
    /// A `mirror` filter: its cluster must be one of `clusters` that an
    /// HTTP listener may send to (refused at the name as written).
    fn mirror(
        &self,
        entry: &std::ops::Range<usize>,
        clusters: &[Cluster],
    ) -> Result<Filter, Refused> {
        let Some(name) = &self.cluster else {
            return Err((
                entry.clone(),
                "mirror needs `cluster` (the shadow cluster)".into(),
            ));
        };
        let refused = |m: String| (name.span(), m);
        let cluster = clusters
            .iter()
            .find(|c| c.name == *name.get_ref())
            .ok_or_else(|| {
                refused(format!(
                    "no cluster named {:?} (clusters are declared in [[clusters]])",
                    name.get_ref()
                ))
            })?;
        if cluster.proxy_protocol.is_some() {
            return Err(refused(format!(
                "cluster {:?} sends a PROXY protocol header per connection, which only tcp \
                 listeners' clusters do (an HTTP upstream connection carries many clients' requests)",
                cluster.name
            )));
        }
        let max_body_bytes = self
            .max_body_bytes
            .unwrap_or(crate::filter::Mirror::DEFAULT_MAX_BODY_BYTES);
        Ok(Filter::Mirror(crate::filter::Mirror {
            cluster: cluster.name.clone(),
            percentage: percentage(self.percentage).map_err(|m| (entry.clone(), m))?,
            host_suffix: !self.disable_shadow_host_suffix_append.unwrap_or(false),
            max_body_bytes,
        }))
    }
}
