//! Clusters at run time: endpoint choice and connecting.
//!
//! A connect asks the cluster's [`Balancer`] (its `lb` policy, see
//! [`super::lb`], over the endpoints its health leaves available, see
//! [`super::health`]) for the endpoints in try order and tries them in turn:
//! when a connect fails or times out, the next one, each once, so a dead
//! endpoint costs a retry but never a failed connection while another
//! endpoint lives.
//!
//! Every connect first takes a unit of the cluster's `max_connections`
//! ([`super::breaker`]), which the connection holds ([`Connected::permit`])
//! for as long as it is open; when none is left, the connect fails at once
//! ([`ConnectError::overflow`]) without trying an endpoint.
//!
//! A `type = "original_dst"` cluster has no endpoints and no balancer's
//! choice to make: each connection goes to its own original destination
//! ([`Upstream::connect_to`]), under the same `connect_timeout` and
//! circuit breakers.
//!
//! A cluster with `source_address = "client"` connects from the client's
//! IP address: the socket is made `IP_TRANSPARENT` (which needs
//! `CAP_NET_ADMIN`) and bound to that address, port 0, before it connects.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::time::Duration;

use std::sync::Arc;

use baton_config::{Cluster, SourceAddress};
use tokio::net::TcpStream;

use crate::telemetry::histogram::ClusterTimes;
use crate::telemetry::meters::{BreakerMeter, EndpointMeter, Overflow};
use crate::upstream::breaker::{Breakers, Permit};
use crate::upstream::health::{ClusterHealth, Healthy, Outcome};
use crate::upstream::lb::{self, Balancer, EndpointIndex, Pick, TryOrder};

/// A cluster, its balancer and its endpoints' health.
#[derive(Debug)]
pub struct Upstream {
    pub cluster: Cluster,
    /// The `lb` policy wrapped in [`Healthy`].
    balancer: Arc<dyn Balancer>,
    health: Arc<ClusterHealth>,
    /// One per endpoint, same order.
    meters: Vec<Arc<EndpointMeter>>,
    breakers: Breakers,
    /// The cluster's latency histograms: connects here, requests and
    /// first bytes by the protocols that use it.
    pub times: Arc<ClusterTimes>,
}

/// A connection to one of a cluster's endpoints.
#[derive(Debug)]
pub struct Connected {
    pub stream: TcpStream,
    pub addr: SocketAddr,
    /// Which endpoint, for its policy's [`lb::Load`].
    pub endpoint: EndpointIndex,
    /// The connection's unit of the cluster's `max_connections`: whoever
    /// keeps the connection keeps this with it.
    pub permit: Permit,
}

/// Every endpoint of a cluster failed, or the cluster's `max_connections`
/// was reached (`overflow`, and no attempt made).
#[derive(Debug, thiserror::Error)]
#[error("connect to cluster {cluster}: {}", Why(attempts, *overflow))]
pub struct ConnectError {
    pub cluster: String,
    pub attempts: Vec<(SocketAddr, AttemptError)>,
    pub overflow: Option<Overflow>,
}

#[derive(Debug)]
pub enum AttemptError {
    Io(std::io::Error),
    Timeout(Duration),
}

struct Attempts<'a>(&'a [(SocketAddr, AttemptError)]);

/// What went wrong: the limit reached, else every attempt.
struct Why<'a>(&'a [(SocketAddr, AttemptError)], Option<Overflow>);

impl fmt::Display for Why<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.1 {
            Some(overflow) => write!(f, "{} reached", overflow.label()),
            None => fmt::Display::fmt(&Attempts(self.0), f),
        }
    }
}

impl fmt::Display for Attempts<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (addr, error)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            match error {
                AttemptError::Io(e) => write!(f, "{addr}: {e}")?,
                AttemptError::Timeout(t) => write!(f, "{addr}: timed out after {t:?}")?,
            }
        }
        Ok(())
    }
}

impl Upstream {
    /// The cluster with the policy its `lb` names, every endpoint's
    /// health unknown (available).
    pub fn new(cluster: Cluster, meters: Vec<Arc<EndpointMeter>>) -> Upstream {
        let health = Arc::new(ClusterHealth::new(&cluster, &meters));
        let policy = lb::for_cluster(&cluster);
        Upstream {
            balancer: Arc::new(Healthy::new(policy, Arc::clone(&health))),
            health,
            breakers: Breakers::new(&cluster, Arc::default()),
            cluster,
            meters,
            times: Arc::default(),
        }
    }

    /// The same, its times counted in `times` (the generation's, which
    /// reports them).
    pub fn with_times(self, times: Arc<ClusterTimes>) -> Upstream {
        Upstream { times, ..self }
    }

    /// Counts the circuit breakers in `meter` (the generation's metrics)
    /// rather than in one of their own.
    pub fn with_breaker_meter(mut self, meter: Arc<BreakerMeter>) -> Upstream {
        self.breakers = Breakers::new(&self.cluster, meter);
        self
    }

    /// The cluster's circuit breakers.
    pub(crate) fn breakers(&self) -> &Breakers {
        &self.breakers
    }

    /// The cluster's load-balancing policy, over its available endpoints.
    pub fn balancer(&self) -> &Arc<dyn Balancer> {
        &self.balancer
    }

    /// The health of the cluster's endpoints: where active checks write
    /// and request outcomes are reported ([`ClusterHealth::report`]).
    pub(crate) fn health(&self) -> &Arc<ClusterHealth> {
        &self.health
    }

    /// Connects to the endpoint the balancer picks with no context,
    /// falling through to the others on failure.
    pub async fn connect(&self) -> Result<Connected, ConnectError> {
        self.connect_for(&Pick::default()).await
    }

    /// Connects to the endpoint the balancer picks for `pick`, falling
    /// through to the others, in the balancer's order, on failure.
    /// For a tunnel, whose only outcome is its connect, a success counts
    /// for outlier detection too.
    pub async fn connect_for(&self, pick: &Pick<'_>) -> Result<Connected, ConnectError> {
        let from = self.source(pick.source);
        let connected = self
            .connect_order_from(self.balancer.order(pick), from)
            .await?;
        self.health.report(connected.endpoint, Outcome::Success);
        Ok(connected)
    }

    /// Connects to `addr`, a connection's original destination (for a
    /// `type = "original_dst"` cluster): one attempt, timed and bounded
    /// like an endpoint's, under the cluster's `max_connections`. Its
    /// [`Connected::endpoint`] is no endpoint of the cluster's (it has
    /// none): nothing counts load on it.
    /// `client` is the client's address, for `source_address = "client"`.
    pub async fn connect_to(
        &self,
        addr: SocketAddr,
        client: Option<IpAddr>,
    ) -> Result<Connected, ConnectError> {
        let permit = self.connection_permit()?;
        let timeout = self.cluster.connect_timeout;
        let started = tokio::time::Instant::now();
        let dialing = dial(addr, self.source(client));
        let failed = match tokio::time::timeout(timeout, dialing).await {
            Ok(Ok(stream)) => {
                self.times.connect.observe(started.elapsed());
                return Ok(Connected {
                    stream,
                    addr,
                    endpoint: EndpointIndex(usize::MAX),
                    permit,
                });
            }
            Ok(Err(e)) => AttemptError::Io(e),
            Err(_) => AttemptError::Timeout(timeout),
        };
        Err(ConnectError {
            cluster: self.cluster.name.clone(),
            attempts: vec![(addr, failed)],
            overflow: None,
        })
    }

    /// Connects to the endpoints of `order` in turn until one answers
    /// (for a caller that asked the balancer itself, to look for a pooled
    /// connection to its choice first). A failed connect is reported to
    /// outlier detection; a successful one is not (the request on it
    /// decides).
    pub async fn connect_order(&self, order: TryOrder) -> Result<Connected, ConnectError> {
        self.connect_order_from(order, None).await
    }

    /// A connection under the cluster's `max_connections`, or the
    /// overflow as the connect's error (nothing was tried).
    fn connection_permit(&self) -> Result<Permit, ConnectError> {
        self.breakers.connection().map_err(|overflow| ConnectError {
            cluster: self.cluster.name.clone(),
            attempts: Vec::new(),
            overflow: Some(overflow),
        })
    }

    /// The address to connect from, given the client's: its own with
    /// `source_address = "client"`, else the kernel's choice.
    fn source(&self, client: Option<IpAddr>) -> Option<IpAddr> {
        match self.cluster.source_address {
            SourceAddress::Proxy => None,
            SourceAddress::Client => client,
        }
    }

    /// [`Upstream::connect_order`], from `from` when given.
    async fn connect_order_from(
        &self,
        order: TryOrder,
        from: Option<IpAddr>,
    ) -> Result<Connected, ConnectError> {
        let permit = self.connection_permit()?;
        let endpoints = &self.cluster.endpoints;
        let mut attempts = Vec::new();
        for endpoint in order {
            let Some(addr) = endpoints.get(endpoint.0).map(|e| e.address) else {
                continue;
            };
            let meter = self.meters.get(endpoint.0);
            let count = |pick: fn(&EndpointMeter) -> &std::sync::atomic::AtomicU64| {
                if let Some(m) = meter {
                    pick(m).fetch_add(1, Ordering::Relaxed);
                }
            };
            let timeout = self.cluster.connect_timeout;
            let started = tokio::time::Instant::now();
            match tokio::time::timeout(timeout, dial(addr, from)).await {
                Ok(Ok(stream)) => {
                    self.times.connect.observe(started.elapsed());
                    count(|m| &m.connections);
                    if !attempts.is_empty() {
                        tracing::warn!(
                            cluster = %self.cluster.name,
                            failed = %Attempts(&attempts),
                            %addr,
                            "connected after failed attempts"
                        );
                    }
                    return Ok(Connected {
                        stream,
                        addr,
                        endpoint,
                        permit,
                    });
                }
                Ok(Err(e)) => {
                    count(|m| &m.connect_failures);
                    self.health.report(endpoint, Outcome::GatewayFailure);
                    attempts.push((addr, AttemptError::Io(e)));
                }
                Err(_) => {
                    count(|m| &m.connect_timeouts);
                    self.health.report(endpoint, Outcome::GatewayFailure);
                    attempts.push((addr, AttemptError::Timeout(timeout)));
                }
            }
        }
        Err(ConnectError {
            cluster: self.cluster.name.clone(),
            attempts,
            overflow: None,
        })
    }
}

/// Connects to `addr`, from `from` (any port) when given: a transparent
/// socket, so the address need not be this host's.
async fn dial(addr: SocketAddr, from: Option<IpAddr>) -> std::io::Result<TcpStream> {
    let Some(from) = from else {
        return TcpStream::connect(addr).await;
    };
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    if addr.is_ipv6() {
        socket.set_ip_transparent_v6(true)?;
    } else {
        socket.set_ip_transparent_v4(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&SocketAddr::new(from.to_canonical(), 0).into())?;
    tokio::net::TcpSocket::from_std_stream(socket.into())
        .connect(addr)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    fn cluster(endpoints: Vec<SocketAddr>) -> Cluster {
        Cluster {
            name: "c".into(),
            kind: baton_config::ClusterKind::Static,
            lb: baton_config::Lb::RoundRobin,
            endpoints: endpoints
                .into_iter()
                .map(|address| baton_config::Endpoint {
                    address,
                    weight: baton_config::Weight::ONE,
                })
                .collect(),
            hash_policy: Vec::new(),
            connect_timeout: Duration::from_secs(5),
            connections_per_endpoint: std::num::NonZeroU32::MIN,
            protocol: baton_config::UpstreamProtocol::Http1,
            tls: None,
            health_check: None,
            outlier_detection: None,
            healthy_panic_threshold: 50,
            circuit_breakers: baton_config::CircuitBreakers::DEFAULT,
            retry_budget: None,
            proxy_protocol: None,
            source_address: baton_config::SourceAddress::Proxy,
        }
    }

    /// A port with nothing listening: bound, then closed.
    async fn dead_port() -> SocketAddr {
        TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap()
    }

    #[tokio::test]
    async fn round_robin_takes_turns() {
        let a = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let b = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (a_addr, b_addr) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        let upstream = Upstream::new(cluster(vec![a_addr, b_addr]), Vec::new());
        let mut seen = Vec::new();
        for _ in 0..4 {
            seen.push(upstream.connect().await.unwrap().addr);
        }
        assert_eq!(seen, vec![a_addr, b_addr, a_addr, b_addr]);
    }

    #[tokio::test]
    async fn a_dead_endpoint_falls_through_to_the_next() {
        let live = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let live_addr = live.local_addr().unwrap();
        let meters = vec![Arc::default(), Arc::default()];
        let upstream = Upstream::new(cluster(vec![dead_port().await, live_addr]), meters.clone());
        for _ in 0..3 {
            assert_eq!(upstream.connect().await.unwrap().addr, live_addr);
        }
        assert_eq!(
            upstream.times.connect.count(),
            3,
            "successful connects timed"
        );
        let (dead, live) = (&meters[0], &meters[1]);
        assert_eq!(live.connections.load(Ordering::Relaxed), 3);
        assert!(dead.connect_failures.load(Ordering::Relaxed) >= 1);
        assert_eq!(dead.connections.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn max_connections_refuses_a_connect_until_one_closes() {
        let live = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut c = cluster(vec![live.local_addr().unwrap()]);
        c.circuit_breakers.max_connections = 1;
        let upstream = Upstream::new(c, Vec::new());
        let first = upstream.connect().await.unwrap();
        let err = upstream.connect().await.unwrap_err();
        assert_eq!(err.overflow, Some(Overflow::MaxConnections));
        assert!(err.attempts.is_empty());
        assert!(err.to_string().contains("max_connections reached"), "{err}");
        drop(first);
        upstream.connect().await.unwrap();
    }

    /// An original_dst cluster connects where it is told, and names the
    /// address when that fails.
    #[tokio::test]
    async fn an_original_dst_cluster_connects_to_the_given_address() {
        let live = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut c = cluster(Vec::new());
        c.kind = baton_config::ClusterKind::OriginalDst;
        let upstream = Upstream::new(c, Vec::new());
        let to = live.local_addr().unwrap();
        assert_eq!(upstream.connect_to(to, None).await.unwrap().addr, to);
        let dead = dead_port().await;
        let err = upstream.connect_to(dead, None).await.unwrap_err();
        assert!(err.to_string().contains(&dead.to_string()), "{err}");
    }

    /// `source_address = "client"`: the endpoint sees the client's
    /// address (here another loopback address, bound transparent; this
    /// runs as root, as the option needs).
    #[tokio::test]
    async fn a_client_source_address_is_what_the_endpoint_sees() {
        let live = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut c = cluster(vec![live.local_addr().unwrap()]);
        c.source_address = SourceAddress::Client;
        let upstream = Upstream::new(c, Vec::new());
        let client: IpAddr = "127.0.0.9".parse().unwrap();
        let pick = Pick {
            source: Some(client),
            request: None,
        };
        let _connected = upstream.connect_for(&pick).await.unwrap();
        let (_, seen) = live.accept().await.unwrap();
        assert_eq!(seen.ip(), client);
    }

    #[tokio::test]
    async fn all_dead_names_every_attempt() {
        let (d1, d2) = (dead_port().await, dead_port().await);
        let err = Upstream::new(cluster(vec![d1, d2]), Vec::new())
            .connect()
            .await
            .unwrap_err();
        assert_eq!(err.attempts.len(), 2);
        let text = err.to_string();
        assert!(text.starts_with("connect to cluster c: "), "{text}");
        assert!(
            text.contains(&d1.to_string()) && text.contains(&d2.to_string()),
            "{text}"
        );
    }
}
