//! An RPC client connection running, as the connection task drives it
//! ([`crate::kind::Live`]), and how its parked form resumes
//! ([`crate::kind::Resume`]).

use tokio::sync::mpsc;
use tracing::warn;

use crate::io::Outcome;
use crate::kind::{BoxFuture, Env, Live, Mobility, Provides, Resume, Site, Task};
use crate::rpc::Outbound;
use crate::rpc::downstream::{Context, Downstream, DownstreamError, RpcParts};

impl<W> Live<W> for Downstream
where
    W: Task<Inbox = mpsc::UnboundedSender<Outbound>>,
    W::Failure: From<DownstreamError>,
    W::Parts: From<RpcParts>,
{
    fn run_until<'a>(
        &'a mut self,
        stop: BoxFuture<'a, W::Stop>,
    ) -> BoxFuture<'a, Outcome<W::Stop, W::Failure>> {
        Box::pin(async move {
            Downstream::run_until(self, stop)
                .await
                .map_failure(W::Failure::from)
        })
    }

    /// Its RPC filters may keep state that cannot move (see
    /// crate::filter): it drains here instead.
    fn mobility(&self) -> Mobility {
        if self.moves() {
            Mobility::Moves
        } else {
            Mobility::Drains
        }
    }

    fn moved(&self) -> (u64, u64) {
        Downstream::moved(self)
    }

    fn inbox(&self) -> Option<W::Inbox> {
        Some(Downstream::inbox(self))
    }

    fn park(self: Box<Self>) -> Option<W::Parts> {
        Some(self.into_parts().into())
    }
}

impl<W> Resume<W> for RpcParts
where
    W: Task<Inbox = mpsc::UnboundedSender<Outbound>>,
    W::Failure: From<DownstreamError>,
    W::Parts: From<RpcParts>,
    W::Site: Provides<Context>,
{
    /// An RPC connection needs its listener's routes and pools.
    fn resume(self, site: &W::Site, env: Env) -> Option<Box<dyn Live<W>>> {
        let Some(ctx) = site.provide(&self.client) else {
            warn!(listener = %site.listener(), "no RPC listener of that name any more; closing the connection");
            return None;
        };
        match Downstream::from_parts(self, ctx, env.idle_timeout, env.bytes) {
            // A PROXY header's addresses, when it came with one.
            Ok(downstream) => Some(Box::new(match env.ends {
                Some(ends) => downstream.with_ends(ends.source, ends.destination),
                None => downstream,
            })),
            Err(e) => {
                warn!(error = %e, "cannot resume an RPC connection; closing it");
                None
            }
        }
    }
}
