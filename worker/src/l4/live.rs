//! The L4 kinds running, as the connection task drives them
//! ([`crate::kind::Live`]): a tunnel to a cluster ([`TunnelConn`]) and
//! the echo; and how their parked forms resume ([`crate::kind::Resume`]).

use std::net::SocketAddr;
use std::sync::Arc;

use crate::io::Outcome;
use crate::kind::{BoxFuture, Env, Live, Mobility, Provides, Resume, Task};
use crate::l4::parked::{ParkedEcho, ParkedTunnel};
use crate::l4::tap::Tap;
use crate::l4::tunnel::{Echo, Tunnel};
use crate::upstream::breaker::Permit;
use crate::upstream::lb::Load;

/// A running tunnel, and where it goes (for the access log).
#[derive(Debug)]
pub(crate) struct TunnelConn {
    pub(crate) tunnel: Tunnel,
    pub(crate) cluster: Arc<str>,
    pub(crate) upstream: SocketAddr,
    /// The tunnel as its cluster's policy counts it (`least_request`:
    /// active connections); only for a policy that counts. Not part of
    /// its parked form: the next generation counts it against its own
    /// balancers ([`Balancers`]).
    #[expect(
        dead_code,
        reason = "a guard: held for its Drop, which uncounts the tunnel"
    )]
    pub(crate) load: Option<Load>,
    /// The upstream connection's unit of its cluster's `max_connections`
    /// (`crate::upstream::breaker`); a tunnel moved in is counted by its
    /// cluster (by name) in this generation ([`Balancers`]), over the
    /// limit if need be. `None` for a tunnel switched from HTTP, or whose
    /// cluster is gone.
    #[expect(
        dead_code,
        reason = "a guard: held for its Drop, which gives the unit back"
    )]
    pub(crate) circuit: Option<Permit>,
}

/// What a tunnel moved in needs of this generation's clusters: its
/// [`Load`] on the balancer of its cluster (by name) and endpoint (by
/// address: indices may differ between configs), when both are still
/// here and the policy counts load.
pub(crate) trait Balancers {
    fn load_of(&self, cluster: &str, upstream: SocketAddr) -> Option<Load>;

    /// A unit of the cluster's `max_connections` for a tunnel moved in:
    /// it is open, so it counts, even past the limit (which then refuses
    /// new connects until enough end).
    fn connection_of(&self, cluster: &str) -> Option<Permit>;
}

impl<W: Task> Live<W> for TunnelConn
where
    W::Failure: From<std::io::Error>,
    W::Parts: From<ParkedTunnel>,
{
    fn run_until<'a>(
        &'a mut self,
        stop: BoxFuture<'a, W::Stop>,
    ) -> BoxFuture<'a, Outcome<W::Stop, W::Failure>> {
        Box::pin(async move {
            self.tunnel
                .run_until(stop)
                .await
                .map_failure(W::Failure::from)
        })
    }

    /// Its L4 filters may keep state that cannot move (see
    /// crate::filter): it drains here instead.
    fn mobility(&self) -> Mobility {
        if self.tunnel.moves() {
            Mobility::Moves
        } else {
            Mobility::Drains
        }
    }

    fn moved(&self) -> (u64, u64) {
        self.tunnel.moved()
    }

    fn upstream(&self) -> Option<(&str, SocketAddr)> {
        Some((&self.cluster, self.upstream))
    }

    fn park(self: Box<Self>) -> Option<W::Parts> {
        let TunnelConn {
            tunnel,
            cluster,
            upstream,
            ..
        } = *self;
        Some(
            ParkedTunnel {
                parts: tunnel.into_parts(),
                cluster,
                upstream,
            }
            .into(),
        )
    }
}

impl<W: Task> Live<W> for Echo
where
    W::Failure: From<std::io::Error>,
    W::Parts: From<ParkedEcho>,
{
    fn run_until<'a>(
        &'a mut self,
        stop: BoxFuture<'a, W::Stop>,
    ) -> BoxFuture<'a, Outcome<W::Stop, W::Failure>> {
        Box::pin(async move {
            Echo::run_until(self, stop)
                .await
                .map_failure(W::Failure::from)
        })
    }

    fn mobility(&self) -> Mobility {
        Mobility::Moves
    }

    fn moved(&self) -> (u64, u64) {
        Echo::moved(self)
    }

    fn park(self: Box<Self>) -> Option<W::Parts> {
        let (client, pipe) = self.into_parts();
        Some(ParkedEcho { client, pipe }.into())
    }
}

impl<W: Task> Resume<W> for ParkedTunnel
where
    W::Failure: From<std::io::Error>,
    W::Parts: From<ParkedTunnel>,
    W::Site: Provides<Box<dyn Tap>> + Balancers,
{
    /// Only connections whose filters all move come here: they get this
    /// generation's filters, afresh (see crate::filter).
    fn resume(self, site: &W::Site, env: Env) -> Option<Box<dyn Live<W>>> {
        let tap = site.provide(&self.parts.client);
        let tunnel = Tunnel::from_parts(self.parts, env.idle_timeout, env.bytes).with_tap(tap);
        Some(Box::new(TunnelConn {
            tunnel,
            load: site.load_of(&self.cluster, self.upstream),
            circuit: site.connection_of(&self.cluster),
            cluster: self.cluster,
            upstream: self.upstream,
        }))
    }
}

impl<W: Task> Resume<W> for ParkedEcho
where
    W::Failure: From<std::io::Error>,
    W::Parts: From<ParkedEcho>,
{
    fn resume(self, _site: &W::Site, env: Env) -> Option<Box<dyn Live<W>>> {
        let echo = Echo::from_parts(self.client, self.pipe, env.idle_timeout, env.bytes);
        Some(Box::new(echo))
    }
}
