//! An RPC client connection running, as the connection task drives it
//! ([`crate::kind::Live`]).

use tokio::sync::mpsc;

use crate::io::Outcome;
use crate::kind::{BoxFuture, Live, Mobility, Task};
use crate::rpc::Outbound;
use crate::rpc::downstream::{Downstream, DownstreamError, RpcParts};

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
