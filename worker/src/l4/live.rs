//! The L4 kinds running, as the connection task drives them
//! ([`crate::kind::Live`]): a tunnel to a cluster ([`TunnelConn`]) and
//! the echo.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::io::Outcome;
use crate::kind::{BoxFuture, Live, Mobility, Task};
use crate::l4::parked::{ParkedEcho, ParkedTunnel};
use crate::l4::tunnel::{Echo, Tunnel};

/// A running tunnel, and where it goes (for the access log).
#[derive(Debug)]
pub struct TunnelConn {
    pub tunnel: Tunnel,
    pub cluster: Arc<str>,
    pub upstream: SocketAddr,
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
