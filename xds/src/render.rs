//! The composed config as the text a worker parses: the file's own text,
//! then the dynamic listeners and clusters [`crate::map::compose`] adds,
//! written in baton's file syntax (`[[listeners]]`, `[[clusters]]`).
//!
//! A worker generation receives config *text* (`baton_ipc`'s
//! `ConfigPart`s) and parses it strictly, as it parses a file; so the
//! supervisor, which runs the xDS client, hands each new generation the
//! static text with the control plane's resources appended. What a
//! generation runs is then exactly what `/config_dump` shows, what
//! `baton check` would accept, and what an upgrade with the control plane
//! down starts from.
//!
//! Only what compose sets is written; every other key is left to the
//! file's defaults, which are the defaults compose starts from. Durations
//! are written in milliseconds (xDS's nanoseconds below a millisecond are
//! dropped). Header edits are written as the `headers` filter's maps
//! (`request_set`, `request_append`, `request_remove`, …), which the
//! parser reads back sets first, then appends, then removals, each by
//! name: a RouteConfiguration that sets one header twice, or removes one
//! before it adds it, runs in that order. [`compose_text`] checks that the
//! text parses back to the composed config and says where it does not.
//! Listener and cluster names the file does not allow are written as
//! [`file_name`] says.

use std::time::Duration;

use baton_config::filter::{Filter, HeaderEdit};
use baton_config::{
    CheckKind, Cluster, ClusterKind, Config, HttpAction, HttpRoute, Listener, PathMatch, Protocol,
    Target, UpstreamProtocol,
};
use toml::{Table, Value};

use crate::map::{MappedResources, Warming, compose};

/// The text a worker runs: `static_text` (named `name`) with the dynamic
/// resources appended; what is still warming; and, when the appended text
/// does not parse back to exactly what compose made (a header edit order
/// the file syntax cannot keep, say), a note saying so (the text is still
/// what the worker runs). An `Err` is a static text that does not parse,
/// or a composed text that does not: the worker would refuse it too.
pub fn compose_text(
    name: &str,
    static_text: &str,
    resources: &MappedResources,
) -> Result<Composed, String> {
    let base = baton_config::parse(name, static_text).map_err(|e| e.to_string())?;
    let (mut config, warming) = compose(&base, resources);
    for l in &mut config.listeners[base.listeners.len()..] {
        l.name = file_name(&l.name);
    }
    for c in &mut config.clusters[base.clusters.len()..] {
        c.name = file_name(&c.name);
    }
    let mut text = static_text.to_string();
    let appended = render(&config, base.listeners.len(), base.clusters.len());
    if !appended.is_empty() {
        if !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str("\n# ---- from the xDS control plane (baton-xds) ----\n");
        text.push_str(&appended);
    }
    let parsed = baton_config::parse(name, &text).map_err(|e| e.to_string())?;
    let inexact = (parsed != config).then(|| {
        let differs: Vec<&str> = config
            .listeners
            .iter()
            .zip(&parsed.listeners)
            .filter(|(a, b)| a != b)
            .map(|(a, _)| a.name.as_str())
            .chain(
                config
                    .clusters
                    .iter()
                    .zip(&parsed.clusters)
                    .filter(|(a, b)| a != b)
                    .map(|(a, _)| a.name.as_str()),
            )
            .collect();
        format!(
            "the file syntax cannot express exactly what the control plane sent for {}",
            differs.join(", ")
        )
    });
    Ok(Composed {
        text,
        warming,
        inexact,
    })
}

/// A listener's or cluster's name as the file allows it (1 to 64 of
/// letters, digits, `-`, `_`, `.`: names go into logs, metric labels and
/// systemd's `FDNAME=`). Another name — Istio's
/// `outbound|9080||reviews.default.svc.cluster.local` — has each other
/// character replaced by `_`, is cut to 55 characters, and ends in `-`
/// and 8 hex digits of a hash (FNV-1a) of the name as sent, so that two
/// names cannot meet. `/config_dump`'s `xds` key keeps the names as sent.
pub fn file_name(name: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if !name.is_empty() && name.len() <= 64 && name.chars().all(plain) {
        return name.to_string();
    }
    let hash = name.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    let cut: String = name
        .chars()
        .map(|c| if plain(c) { c } else { '_' })
        .take(55)
        .collect();
    format!("{cut}-{hash:08x}")
}

/// What [`compose_text`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Composed {
    pub text: String,
    pub warming: Warming,
    pub inexact: Option<String>,
}

/// The listeners and clusters of `config` past the first `listeners` and
/// `clusters` (the static ones), as `[[listeners]]` and `[[clusters]]`
/// tables.
fn render(config: &Config, listeners: usize, clusters: usize) -> String {
    let mut out = Table::new();
    let cluster_name = |id: baton_config::ClusterId| config.cluster_by_id(id).name.clone();
    let ls: Vec<Value> = config.listeners[listeners..]
        .iter()
        .map(|l| Value::Table(listener(l, &cluster_name)))
        .collect();
    let cs: Vec<Value> = config.clusters[clusters..]
        .iter()
        .map(|c| Value::Table(cluster(c)))
        .collect();
    if !ls.is_empty() {
        out.insert("listeners".into(), Value::Array(ls));
    }
    if !cs.is_empty() {
        out.insert("clusters".into(), Value::Array(cs));
    }
    if out.is_empty() {
        return String::new();
    }
    // A table of strings, numbers, arrays and tables always serializes.
    toml::to_string(&out).unwrap_or_default()
}

fn ms(d: Duration) -> Value {
    Value::String(format!("{}ms", d.as_millis()))
}

fn int(n: impl Into<i64>) -> Value {
    Value::Integer(n.into())
}

fn strings(v: &[String]) -> Value {
    Value::Array(v.iter().cloned().map(Value::String).collect())
}

fn listener(l: &Listener, cluster: &impl Fn(baton_config::ClusterId) -> String) -> Table {
    let mut t = Table::new();
    t.insert("name".into(), Value::String(l.name.clone()));
    t.insert("address".into(), Value::String(l.address.to_string()));
    t.insert("protocol".into(), Value::String(l.protocol.name().into()));
    if let Target::Cluster(id) = l.target {
        t.insert("cluster".into(), Value::String(cluster(id)));
    }
    if let (Protocol::Http, Some(http)) = (l.protocol, &l.http)
        && !http.routes.is_empty()
    {
        let routes = http
            .routes
            .iter()
            .map(|r| Value::Table(route(r, cluster)))
            .collect();
        t.insert("routes".into(), Value::Array(routes));
    }
    t
}

fn route(r: &HttpRoute, cluster: &impl Fn(baton_config::ClusterId) -> String) -> Table {
    let mut t = Table::new();
    if let Some(name) = &r.name {
        t.insert("name".into(), Value::String(name.clone()));
    }
    if !r.hosts.is_empty() {
        t.insert("hosts".into(), strings(&r.hosts));
    }
    match &r.path {
        PathMatch::Any => {}
        PathMatch::Exact(p) => drop(t.insert("path".into(), Value::String(p.clone()))),
        PathMatch::Prefix(p) => drop(t.insert("path_prefix".into(), Value::String(p.clone()))),
        PathMatch::Regex(p) => drop(t.insert("path_regex".into(), Value::String(p.clone()))),
    }
    if !r.methods.is_empty() {
        t.insert("methods".into(), strings(&r.methods));
    }
    if !r.headers.is_empty() {
        let h: Table = r
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        t.insert("headers".into(), Value::Table(h));
    }
    match &r.action {
        HttpAction::Cluster(id) => drop(t.insert("cluster".into(), Value::String(cluster(*id)))),
        HttpAction::Weighted(w) => {
            let w = w
                .iter()
                .map(|(id, weight)| {
                    let mut e = Table::new();
                    e.insert("name".into(), Value::String(cluster(*id)));
                    e.insert("weight".into(), int(*weight));
                    Value::Table(e)
                })
                .collect();
            t.insert("clusters".into(), Value::Array(w));
        }
        HttpAction::Direct {
            status,
            body,
            content_type,
        } => {
            let mut d = Table::new();
            d.insert("status".into(), int(*status));
            d.insert("body".into(), Value::String(body.clone()));
            d.insert("content_type".into(), Value::String(content_type.clone()));
            t.insert("direct".into(), Value::Table(d));
        }
        HttpAction::Redirect { location, status } => {
            let mut d = Table::new();
            d.insert("location".into(), Value::String(location.clone()));
            d.insert("status".into(), int(*status));
            t.insert("redirect".into(), Value::Table(d));
        }
    }
    if let Some(timeout) = r.timeout {
        t.insert("timeout".into(), ms(timeout));
    }
    if r.retries != 0 {
        t.insert("retries".into(), int(r.retries));
    }
    let filters: Vec<Value> = r.filters.iter().filter_map(filter).collect();
    if !filters.is_empty() {
        t.insert("filters".into(), Value::Array(filters));
    }
    t
}

/// The `headers` filter (the only one compose makes).
fn filter(f: &Filter) -> Option<Value> {
    let Filter::Headers { request, response } = f else {
        return None;
    };
    let mut t = Table::new();
    t.insert("name".into(), Value::String("headers".into()));
    for (side, edits) in [("request", request), ("response", response)] {
        let mut set = Table::new();
        let mut append = Table::new();
        let mut remove = Vec::new();
        for e in edits {
            match e {
                HeaderEdit::Set(n, v) => drop(set.insert(n.clone(), Value::String(v.clone()))),
                HeaderEdit::Append(n, v) => {
                    drop(append.insert(n.clone(), Value::String(v.clone())))
                }
                HeaderEdit::Remove(n) => remove.push(Value::String(n.clone())),
            }
        }
        if !set.is_empty() {
            t.insert(format!("{side}_set"), Value::Table(set));
        }
        if !append.is_empty() {
            t.insert(format!("{side}_append"), Value::Table(append));
        }
        if !remove.is_empty() {
            t.insert(format!("{side}_remove"), Value::Array(remove));
        }
    }
    Some(Value::Table(t))
}

fn cluster(c: &Cluster) -> Table {
    let mut t = Table::new();
    t.insert("name".into(), Value::String(c.name.clone()));
    if c.kind == ClusterKind::OriginalDst {
        t.insert("type".into(), Value::String("original_dst".into()));
    }
    t.insert("lb".into(), Value::String(c.lb.name().into()));
    if c.kind == ClusterKind::Static {
        let endpoints = c
            .endpoints
            .iter()
            .map(|e| {
                let mut t = Table::new();
                t.insert("address".into(), Value::String(e.address.to_string()));
                t.insert("weight".into(), int(e.weight.get()));
                Value::Table(t)
            })
            .collect();
        t.insert("endpoints".into(), Value::Array(endpoints));
    }
    t.insert("connect_timeout".into(), ms(c.connect_timeout));
    if c.protocol == UpstreamProtocol::Http2 {
        t.insert("protocol".into(), Value::String("http2".into()));
    }
    let b = c.circuit_breakers;
    let mut cb = Table::new();
    cb.insert("max_connections".into(), int(b.max_connections));
    cb.insert("max_pending_requests".into(), int(b.max_pending_requests));
    cb.insert("max_requests".into(), int(b.max_requests));
    cb.insert("max_retries".into(), int(b.max_retries));
    t.insert("circuit_breakers".into(), Value::Table(cb));
    if let Some(h) = &c.health_check {
        let mut ht = Table::new();
        let kind = match &h.kind {
            CheckKind::Tcp => "tcp",
            CheckKind::Http(http) => {
                ht.insert("path".into(), Value::String(http.path.clone()));
                ht.insert("method".into(), Value::String(http.method.clone()));
                if let Some(host) = &http.host {
                    ht.insert("host".into(), Value::String(host.clone()));
                }
                let statuses = http
                    .expected_statuses
                    .iter()
                    .map(|(start, end)| {
                        let mut r = Table::new();
                        r.insert("start".into(), int(*start));
                        r.insert("end".into(), int(*end));
                        Value::Table(r)
                    })
                    .collect();
                ht.insert("expected_statuses".into(), Value::Array(statuses));
                if http.http2 {
                    ht.insert("codec_client_type".into(), Value::String("http2".into()));
                }
                "http"
            }
            CheckKind::Grpc { service } => {
                ht.insert("service".into(), Value::String(service.clone()));
                "grpc"
            }
            // Never mapped from xDS.
            CheckKind::Heartbeat { .. } => "tcp",
        };
        ht.insert("kind".into(), Value::String(kind.into()));
        ht.insert("interval".into(), ms(h.interval));
        ht.insert("interval_jitter".into(), ms(h.interval_jitter));
        if let Some(n) = h.no_traffic_interval {
            ht.insert("no_traffic_interval".into(), ms(n));
        }
        ht.insert("timeout".into(), ms(h.timeout));
        ht.insert("healthy_threshold".into(), int(h.healthy_threshold.get()));
        ht.insert(
            "unhealthy_threshold".into(),
            int(h.unhealthy_threshold.get()),
        );
        t.insert("health_check".into(), Value::Table(ht));
    }
    if let Some(o) = &c.outlier_detection {
        let mut ot = Table::new();
        ot.insert("consecutive_errors".into(), int(o.consecutive_errors.get()));
        ot.insert("base_ejection_time".into(), ms(o.base_ejection_time));
        ot.insert("max_ejection_time".into(), ms(o.max_ejection_time));
        ot.insert("max_ejection_percent".into(), int(o.max_ejection_percent));
        if let Some(g) = o.consecutive_gateway_failure {
            ot.insert("consecutive_gateway_failure".into(), int(g.get()));
        }
        ot.insert("interval".into(), ms(o.interval));
        let s = o.success_rate;
        ot.insert("enforcing_success_rate".into(), int(s.enforcing));
        ot.insert("success_rate_minimum_hosts".into(), int(s.minimum_hosts));
        ot.insert("success_rate_request_volume".into(), int(s.request_volume));
        ot.insert("success_rate_stdev_factor".into(), int(s.stdev_factor));
        let f = o.failure_percentage;
        ot.insert("enforcing_failure_percentage".into(), int(f.enforcing));
        ot.insert(
            "failure_percentage_minimum_hosts".into(),
            int(f.minimum_hosts),
        );
        ot.insert(
            "failure_percentage_request_volume".into(),
            int(f.request_volume),
        );
        ot.insert("failure_percentage_threshold".into(), int(f.threshold));
        t.insert("outlier_detection".into(), Value::Table(ot));
    }
    t
}
