//! The ADS client: one gRPC stream to a control plane carrying CDS, EDS,
//! LDS, RDS and SDS, state of the world or delta.
//!
//! # The protocol, as implemented here
//!
//! * **Connect.** `servers` are tried in turn, over h2c, or TLS with
//!   `[xds.tls]` (mTLS with its certificate). A stream opens with one
//!   request per type: CDS and LDS as wildcards; EDS, RDS and SDS for the
//!   names the accepted resources use (none on a first start). Every
//!   request carries the node.
//! * **Resume.** On a reconnect the first requests say what the client
//!   holds: state of the world, each type's last accepted `version_info`
//!   (a control plane that has nothing newer stays silent); delta,
//!   `initial_resource_versions` (each held resource and its version).
//! * **Accept or reject.** Each response is decoded and every resource in
//!   it mapped on its own ([`crate::map`]). If all map, the response is
//!   applied — state of the world: a CDS or LDS response replaces every
//!   resource of its type, an EDS, RDS or SDS one the resources it holds;
//!   delta: its resources are added or replaced and `removed_resources`
//!   removed — the new [`Snapshot`] is published, and an ACK goes back (its
//!   nonce; state of the world also its `version_info` and names). If one
//!   does not map, nothing of the response is applied, and a NACK goes
//!   back: its nonce, the last accepted version, `error_detail` with code
//!   `INVALID_ARGUMENT` and the resource's message.
//! * **Subscriptions.** After an accepted CDS or LDS response, the names
//!   the clusters and listeners use (EDS service names, RDS route config
//!   names) are compared with those subscribed; a change is sent as a new
//!   request (state of the world: the full list, with the type's last
//!   version and nonce; delta: `resource_names_subscribe` and
//!   `_unsubscribe`). Resources no longer subscribed are dropped.
//! * **Loss.** When the stream fails, the last accepted snapshot stays
//!   published (serving continues); the client waits and reconnects,
//!   with exponential backoff (250 ms doubling to 30 s) and full jitter
//!   (a random delay up to the bound), reset once a stream has delivered
//!   a response. A NACK that repeats the previous one waits a second
//!   before it goes (`REPEATED_NACK_DELAY`).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use baton_config::{Xds, XdsMode, XdsServer, XdsTls};
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient as Ads;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind as ValueKind};
use envoy_types::pb::google::rpc::Status as RpcStatus;
use rand::Rng;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::UnboundedReceiverStream;

use crate::map::Ignored;
use crate::resources::{self, Kind, Snapshot, Status};

/// gRPC's `INVALID_ARGUMENT`, the code of a NACK's `error_detail`.
const INVALID_ARGUMENT: i32 = 3;
const BACKOFF_BASE: Duration = Duration::from_millis(250);
const BACKOFF_CAP: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A NACK that repeats the previous one (same type, same message) waits
/// this long before it is sent: a control plane that answers every NACK
/// with the same response at once (go-control-plane's snapshot cache
/// does: the NACK's version is not the one it holds) would otherwise spin
/// both ends.
const REPEATED_NACK_DELAY: Duration = Duration::from_secs(1);

/// A running ADS client; dropping it stops it.
#[derive(Debug)]
pub struct Client {
    snapshots: watch::Receiver<Arc<Snapshot>>,
    status: watch::Receiver<Status>,
    task: tokio::task::JoinHandle<()>,
}

impl Client {
    /// Starts a client for `bootstrap` on the current tokio runtime, with
    /// nothing accepted yet.
    pub fn start(bootstrap: Xds) -> Client {
        Client::start_from(bootstrap, Snapshot::default())
    }

    /// Starts from resources accepted before (a previous generation's):
    /// they are published at once, and the stream resumes with their
    /// versions.
    pub fn start_from(bootstrap: Xds, snapshot: Snapshot) -> Client {
        let (snapshots_tx, snapshots) = watch::channel(Arc::new(snapshot.clone()));
        let (status_tx, status) = watch::channel(Status::default());
        let task = tokio::spawn(
            State {
                node: node(&bootstrap),
                bootstrap,
                snapshot,
                types: Default::default(),
                snapshots: snapshots_tx,
                status: status_tx,
                hold: None,
            }
            .run(),
        );
        Client {
            snapshots,
            status,
            task,
        }
    }

    /// Every accepted snapshot, the latest first.
    pub fn snapshots(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.snapshots.clone()
    }

    pub fn status(&self) -> watch::Receiver<Status> {
        self.status.clone()
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn node(bootstrap: &Xds) -> Node {
    let fields = bootstrap
        .node
        .metadata
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                Value {
                    kind: Some(ValueKind::StringValue(v.clone())),
                },
            )
        })
        .collect();
    Node {
        id: bootstrap.node.id.clone(),
        cluster: bootstrap.node.cluster.clone(),
        metadata: Some(Struct { fields }),
        user_agent_name: "baton".into(),
        ..Node::default()
    }
}

/// Where a system's CA bundle usually is, when `SSL_CERT_FILE` is unset
/// (the worker's list for clusters' TLS).
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

/// `[xds.tls]` as tonic's (rustls) client config; the files are read at
/// each connection, so a renewed certificate is taken on the next one.
fn tls_config(tls: &XdsTls, host: &str) -> Result<tonic::transport::ClientTlsConfig, String> {
    use tonic::transport::{Certificate, ClientTlsConfig, Identity};
    let read = |path: &std::path::Path| {
        std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
    };
    let ca = match &tls.ca {
        Some(ca) => ca.clone(),
        None => std::env::var_os("SSL_CERT_FILE")
            .map(std::path::PathBuf::from)
            .or_else(|| {
                SYSTEM_BUNDLES
                    .iter()
                    .map(std::path::PathBuf::from)
                    .find(|p| p.is_file())
            })
            .ok_or("no system CA bundle (SSL_CERT_FILE unset); set [xds.tls] ca")?,
    };
    let mut config = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(read(&ca)?))
        .domain_name(tls.server_name.as_deref().unwrap_or(host));
    if let Some((cert, key)) = &tls.identity {
        config = config.identity(Identity::from_pem(read(cert)?, read(key)?));
    }
    Ok(config)
}

/// Per type, what the stream has said.
#[derive(Debug, Default, Clone)]
struct TypeState {
    /// The last response's nonce on this stream.
    nonce: String,
    /// Names subscribed (EDS, RDS, SDS).
    names: BTreeSet<String>,
}

struct State {
    bootstrap: Xds,
    node: Node,
    snapshot: Snapshot,
    types: std::collections::BTreeMap<Kind, TypeState>,
    snapshots: watch::Sender<Arc<Snapshot>>,
    status: watch::Sender<Status>,
    /// Set by a repeated NACK: wait before sending it.
    hold: Option<Duration>,
}

/// How a stream ended: whether it got as far as a response (then the
/// backoff starts over).
struct Ended {
    responded: bool,
    error: String,
}

impl State {
    async fn run(mut self) {
        let mut attempt: u32 = 0;
        let mut server = 0;
        loop {
            let target = self.bootstrap.servers[server % self.bootstrap.servers.len()].clone();
            let ended = self.stream(&target).await;
            self.status.send_modify(|s| {
                s.connected = false;
                s.last_error = Some(ended.error.clone());
            });
            tracing::warn!(server = %target, error = %ended.error, "xDS stream ended");
            if ended.responded {
                attempt = 0;
            } else {
                attempt = attempt.saturating_add(1);
                server += 1;
            }
            let bound = BACKOFF_BASE
                .saturating_mul(1 << attempt.min(16))
                .min(BACKOFF_CAP);
            let delay = rand::rng().random_range(Duration::ZERO..=bound);
            tokio::time::sleep(delay).await;
        }
    }

    async fn stream(&mut self, server: &XdsServer) -> Ended {
        let mut responded = false;
        let error = match self
            .stream_inner(&server.to_string(), &server.host, &mut responded)
            .await
        {
            Ok(()) => "the control plane closed the stream".to_string(),
            Err(e) => e,
        };
        Ended { responded, error }
    }

    async fn stream_inner(
        &mut self,
        server: &str,
        host: &str,
        responded: &mut bool,
    ) -> Result<(), String> {
        let scheme = if self.bootstrap.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let mut endpoint = tonic::transport::Endpoint::from_shared(format!("{scheme}://{server}"))
            .map_err(|e| e.to_string())?
            .connect_timeout(CONNECT_TIMEOUT);
        if let Some(tls) = &self.bootstrap.tls {
            endpoint = endpoint
                .tls_config(tls_config(tls, host)?)
                .map_err(|e| format!("TLS to {server}: {e}"))?;
        }
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| format!("connect to {server}: {e}"))?;
        let mut ads = Ads::new(channel).max_decoding_message_size(64 << 20);
        // Fresh per stream: nonces belong to a stream.
        for kind in Kind::ALL {
            let names = self.snapshot.wanted(kind).unwrap_or_default();
            self.types.insert(
                kind,
                TypeState {
                    nonce: String::new(),
                    names,
                },
            );
        }
        let delta = self.bootstrap.mode == XdsMode::Delta;
        let opened = |s: &mut Status| {
            s.connected = true;
            s.server = Some(server.to_string());
            s.streams += 1;
        };
        if delta {
            let (tx, rx) = mpsc::unbounded_channel();
            for kind in Kind::ALL {
                if let Some(r) = self.initial_delta(kind) {
                    let _ = tx.send(r);
                }
            }
            let mut inbound = ads
                .delta_aggregated_resources(UnboundedReceiverStream::new(rx))
                .await
                .map_err(|e| format!("DeltaAggregatedResources: {e}"))?
                .into_inner();
            self.status.send_modify(opened);
            while let Some(response) = inbound.message().await.map_err(|e| e.to_string())? {
                *responded = true;
                let requests = self.on_delta(response);
                if let Some(hold) = self.hold.take() {
                    tokio::time::sleep(hold).await;
                }
                for r in requests {
                    tx.send(r).map_err(|_| "request stream closed")?;
                }
            }
        } else {
            let (tx, rx) = mpsc::unbounded_channel();
            for kind in Kind::ALL {
                if let Some(r) = self.initial_sotw(kind) {
                    let _ = tx.send(r);
                }
            }
            let mut inbound = ads
                .stream_aggregated_resources(UnboundedReceiverStream::new(rx))
                .await
                .map_err(|e| format!("StreamAggregatedResources: {e}"))?
                .into_inner();
            self.status.send_modify(opened);
            while let Some(response) = inbound.message().await.map_err(|e| e.to_string())? {
                *responded = true;
                let requests = self.on_sotw(response);
                if let Some(hold) = self.hold.take() {
                    tokio::time::sleep(hold).await;
                }
                for r in requests {
                    tx.send(r).map_err(|_| "request stream closed")?;
                }
            }
        }
        Ok(())
    }

    fn type_state(&mut self, kind: Kind) -> &mut TypeState {
        self.types.entry(kind).or_default()
    }

    fn sotw_request(&self, kind: Kind, error: Option<String>) -> DiscoveryRequest {
        let state = self.types.get(&kind).cloned().unwrap_or_default();
        DiscoveryRequest {
            version_info: self
                .snapshot
                .versions
                .get(&kind)
                .cloned()
                .unwrap_or_default(),
            node: Some(self.node.clone()),
            resource_names: if kind.wildcard() {
                Vec::new()
            } else {
                state.names.into_iter().collect()
            },
            type_url: kind.type_url().into(),
            response_nonce: state.nonce,
            error_detail: error.map(|message| RpcStatus {
                code: INVALID_ARGUMENT,
                message,
                details: Vec::new(),
            }),
            ..DiscoveryRequest::default()
        }
    }

    fn initial_sotw(&self, kind: Kind) -> Option<DiscoveryRequest> {
        // A named type with no names is not asked for: an empty list would
        // read as a wildcard.
        let names = &self.types.get(&kind)?.names;
        (kind.wildcard() || !names.is_empty()).then(|| self.sotw_request(kind, None))
    }

    fn on_sotw(&mut self, response: DiscoveryResponse) -> Vec<DiscoveryRequest> {
        let Some(kind) = Kind::from_type_url(&response.type_url) else {
            tracing::warn!(type_url = %response.type_url, "xDS response of an unknown type");
            return Vec::new();
        };
        self.type_state(kind).nonce = response.nonce.clone();
        let mut ignored = Ignored::default();
        let decoded: Result<Vec<_>, String> = response
            .resources
            .iter()
            .map(|any| resources::decode(kind, any, &mut ignored))
            .collect();
        let mut decoded = match decoded {
            Ok(d) => d,
            Err(message) => {
                return vec![self.reject(kind, message, |s, m| s.sotw_request(kind, Some(m)))];
            }
        };
        // Of a named type, only what is subscribed (a response may still
        // answer an earlier subscription).
        if !kind.wildcard() {
            let names = &self.type_state(kind).names;
            decoded.retain(|(name, _)| names.contains(name));
        }
        // A CDS or LDS response holds every resource of its type: it
        // replaces what was held. An EDS, RDS or SDS response holds the
        // resources it updates; one it leaves out stays until it is no
        // longer subscribed (xDS's rule for these types).
        if kind.wildcard() {
            for name in self.snapshot.names(kind) {
                self.snapshot.remove(kind, &name);
            }
        }
        let versions = self.snapshot.resource_versions.entry(kind).or_default();
        for (name, _) in &decoded {
            versions.insert(name.clone(), response.version_info.clone());
        }
        for (name, one) in decoded {
            self.snapshot.insert(name, one);
        }
        self.snapshot
            .versions
            .insert(kind, response.version_info.clone());
        let mut out = vec![self.sotw_request(kind, None)];
        for dependent in self.accept(kind, &ignored) {
            out.push(self.sotw_request(dependent, None));
        }
        out
    }

    fn delta_request(&self, kind: Kind) -> DeltaDiscoveryRequest {
        DeltaDiscoveryRequest {
            node: Some(self.node.clone()),
            type_url: kind.type_url().into(),
            ..DeltaDiscoveryRequest::default()
        }
    }

    fn initial_delta(&self, kind: Kind) -> Option<DeltaDiscoveryRequest> {
        let names = &self.types.get(&kind)?.names;
        if !kind.wildcard() && names.is_empty() {
            return None;
        }
        let mut r = self.delta_request(kind);
        r.resource_names_subscribe = names.iter().cloned().collect();
        r.initial_resource_versions = self
            .snapshot
            .resource_versions
            .get(&kind)
            .map(|v| v.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        Some(r)
    }

    fn on_delta(&mut self, response: DeltaDiscoveryResponse) -> Vec<DeltaDiscoveryRequest> {
        let Some(kind) = Kind::from_type_url(&response.type_url) else {
            tracing::warn!(type_url = %response.type_url, "xDS response of an unknown type");
            return Vec::new();
        };
        let mut ignored = Ignored::default();
        let mut decoded = Vec::new();
        for r in &response.resources {
            let Some(any) = &r.resource else { continue };
            match resources::decode(kind, any, &mut ignored) {
                Ok((name, one)) => decoded.push((name, r.version.clone(), one)),
                Err(message) => {
                    let nonce = response.nonce.clone();
                    return vec![self.reject(kind, message, move |s, m| {
                        let mut r = s.delta_request(kind);
                        r.response_nonce = nonce;
                        r.error_detail = Some(RpcStatus {
                            code: INVALID_ARGUMENT,
                            message: m,
                            details: Vec::new(),
                        });
                        r
                    })];
                }
            }
        }
        if !kind.wildcard() {
            let names = &self.type_state(kind).names;
            decoded.retain(|(name, _, _)| names.contains(name));
        }
        for name in &response.removed_resources {
            self.snapshot.remove(kind, name);
        }
        for (name, version, one) in decoded {
            self.snapshot
                .resource_versions
                .entry(kind)
                .or_default()
                .insert(name.clone(), version);
            self.snapshot.insert(name, one);
        }
        self.snapshot
            .versions
            .insert(kind, response.system_version_info.clone());
        let mut ack = self.delta_request(kind);
        ack.response_nonce = response.nonce;
        let mut out = vec![ack];
        let before: std::collections::BTreeMap<Kind, BTreeSet<String>> = self
            .types
            .iter()
            .map(|(k, s)| (*k, s.names.clone()))
            .collect();
        for dependent in self.accept(kind, &ignored) {
            let old = before.get(&dependent).cloned().unwrap_or_default();
            let new = self.type_state(dependent).names.clone();
            let mut r = self.delta_request(dependent);
            r.resource_names_subscribe = new.difference(&old).cloned().collect();
            r.resource_names_unsubscribe = old.difference(&new).cloned().collect();
            out.push(r);
        }
        out
    }

    /// Publishes the snapshot after an accepted response of `kind`;
    /// returns the named types whose subscription changed (their
    /// resources no longer wanted are dropped, and published so).
    fn accept(&mut self, kind: Kind, ignored: &Ignored) -> Vec<Kind> {
        let mut changed = Vec::new();
        for dependent in Kind::ALL {
            let Some(wanted) = self.snapshot.wanted(dependent) else {
                continue;
            };
            if wanted == self.type_state(dependent).names {
                continue;
            }
            for name in self.snapshot.names(dependent) {
                if !wanted.contains(&name) {
                    self.snapshot.remove(dependent, &name);
                }
            }
            if wanted.is_empty() {
                // Not asked for again (an empty list would be a wildcard
                // in state of the world); nothing of it is held now.
                self.type_state(dependent).names = wanted;
                continue;
            }
            self.type_state(dependent).names = wanted;
            changed.push(dependent);
        }
        self.snapshot.updates += 1;
        tracing::info!(
            kind = kind.short(),
            version = self.snapshot.versions.get(&kind).map(String::as_str),
            "xDS update accepted"
        );
        self.snapshots.send_replace(Arc::new(self.snapshot.clone()));
        self.status.send_modify(|s| {
            *s.accepted.entry(kind).or_default() += 1;
            s.ignored.add(ignored);
        });
        changed
    }

    fn reject<R>(
        &mut self,
        kind: Kind,
        message: String,
        request: impl FnOnce(&Self, String) -> R,
    ) -> R {
        tracing::warn!(kind = kind.short(), %message, "xDS update rejected");
        let repeated = self
            .status
            .borrow()
            .last_rejection
            .as_ref()
            .is_some_and(|(k, m)| *k == kind && *m == message);
        if repeated {
            self.hold = Some(REPEATED_NACK_DELAY);
        }
        self.status.send_modify(|s| {
            *s.rejected.entry(kind).or_default() += 1;
            s.last_rejection = Some((kind, message.clone()));
        });
        request(self, message)
    }
}
