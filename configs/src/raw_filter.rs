//! Filter lists as written (`filters = [...]` on a listener or an HTTP
//! route) and their checks, into [`crate::filter::Filter`]s: names,
//! settings, and which listener may run which filter.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use crate::filter::{
    Cidr, Filter, HeaderEdit, Layer, NAMES, RESERVED_HEADERS, RangePolicy, RpcError, WasmPlugin,
    is_header_name, is_header_value,
};
use crate::model::Protocol;

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
    /// `wasm`: the module (`file`), or the whole entry's shorthand (`wasm`).
    wasm: Option<String>,
    file: Option<String>,
    config: Option<String>,
    root_id: Option<String>,
    fuel: Option<u64>,
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

/// Checks a filter list written at `place`.
pub(crate) fn lower(raw: &[Spanned<RawFilter>], place: Place) -> Result<Lowered, Refused> {
    let mut filters = Vec::new();
    let mut disabled = Vec::new();
    for entry in raw {
        let span = entry.span();
        let f = entry.get_ref();
        let (name, name_span) = match (&f.name, &f.wasm) {
            (Some(name), _) => (name.get_ref().as_str(), name.span()),
            (None, Some(_)) => ("wasm", span.clone()),
            (None, None) => return Err((span, "a filter needs a `name`".into())),
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
            "wasm" => &["wasm", "file", "config", "root_id", "fuel"],
            _ => &["service", "method", "error"],
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
        let filter = f.build(name).map_err(|m| (span.clone(), m))?;
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
        (Layer::Network, Place::Listener(_)) if matches!(filter, Filter::SourceRanges { .. }) => {
            true
        }
        // The byte stage taps L4 tunnels only.
        (Layer::Network, Place::Listener(p)) => p == Protocol::Tcp,
        (Layer::Http, Place::Listener(p)) => p == Protocol::Http,
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
    fn settings(&self) -> [(&'static str, bool); 18] {
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
            ("wasm", self.wasm.is_some()),
            ("file", self.file.is_some()),
            ("config", self.config.is_some()),
            ("root_id", self.root_id.is_some()),
            ("fuel", self.fuel.is_some()),
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
            "wasm" => self.wasm_plugin().map(Filter::Wasm),
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
                })
            }
        }
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
