//! UDP flows across a handoff (handoff schema 6 on): the old generation's
//! flows, each with its upstream socket's fd (and a `tproxy` flow's reply
//! socket's), sent after the shared data
//! and before the new generation reads a listening socket, so that a
//! client's next datagram finds its flow — and its 5-tuple — in the new
//! generation (`crate::udp` has the flow's side of it).
//!
//! ```text
//!  N (old)                                             N+1 (new)
//!   | -- HealthBatch{…, last}* (health, buckets, shared) -> |
//!   | -- FlowBatch{schema, last, fds, body} + fds* -------> |  within FLOWS_TIMEOUT:
//!   |    (every udp listener's flows, marked handed)         |  each put in its table,
//!   |                                                        |  relaying; then accept
//!   | <----------------------------------------- Accepting -- |
//!   |   ... connections migrate ...                          |
//!   | commit (last ConnAck): handed flows end here, quietly  |
//! ```
//!
//! Flows are matched by listener name; what the new generation cannot
//! take (see `udp::AdoptError`) is closed there and counted in a warning.
//! If the handoff fails before its commit the old generation keeps them.

use std::time::{Duration, UNIX_EPOCH};

use baton_ipc::{Channel, IpcError};
use tracing::{info, warn};

use crate::migrate::Host;
use crate::migrate::schema::{self, FlowState, Schema, SchemaError};
use crate::udp::{self, AdoptedFlow, FlowFacts};

/// How long the new generation waits for the old one's flows after its
/// shared data: sent from memory at once, so this expires only on a
/// wedged peer.
pub(crate) const FLOWS_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the flows could not be sent or taken over.
#[derive(Debug, thiserror::Error)]
pub enum FlowsError {
    #[error("udp flows: {0}")]
    Schema(#[from] SchemaError),
    #[error("udp flows: {0}")]
    Ipc(#[from] IpcError),
    #[error("udp flows: none within {FLOWS_TIMEOUT:?}")]
    Timeout,
}

/// Old side: hands every udp listener's flows over in `schema` (one
/// that [`Schema::carries_flows`]); how many.
pub(crate) async fn send<H: Host>(
    chan: &Channel,
    schema: Schema,
    server: &H,
) -> Result<usize, FlowsError> {
    let config = &server.ctx().config;
    let mut handed = Vec::new();
    for (id, listener) in server.udp_listeners() {
        let spec = config.listener(id);
        let cluster = match spec.target {
            baton_config::Target::Cluster(c) => server.ctx().upstream(c).cluster.name.clone(),
            _ => continue,
        };
        for flow in listener.hand_over() {
            let facts = &flow.facts;
            let state = FlowState {
                listener: spec.name.clone(),
                client: facts.client,
                destination: facts.destination,
                cluster: cluster.clone(),
                endpoint: facts.endpoint,
                reply_socket: flow.has_reply_socket(),
                idle_for: facts.idle_for,
                started_unix_ms: facts
                    .started
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                received: facts.received,
                sent: facts.sent,
                moves: facts.moves + 1,
            };
            handed.push((state, flow));
        }
    }
    let states: Vec<FlowState> = handed.iter().map(|(s, _)| s.clone()).collect();
    for (message, range) in schema::encode_flows(schema, &states)? {
        let fds: Vec<_> = handed[range].iter().flat_map(|(_, f)| f.fds()).collect();
        chan.send(&message, &fds).await?;
    }
    info!(flows = states.len(), "udp flows sent to the new generation");
    Ok(states.len())
}

/// New side: reads the old generation's flows (up to the batch marked
/// last) and puts each in its listener's table, within [`FLOWS_TIMEOUT`].
/// How many it took.
pub(crate) async fn receive<H: Host>(
    chan: &Channel,
    schema: Schema,
    server: &H,
) -> Result<usize, FlowsError> {
    let ctx = server.ctx();
    let listeners = server.udp_listeners();
    let all = async {
        let (mut taken, mut refused) = (0usize, 0usize);
        loop {
            let received = chan.recv().await?;
            let (flows, last) = schema::decode_flows(schema, &received.message)?;
            let mut fds = received.fds.into_iter();
            for state in flows {
                let upstream = fds.next();
                let reply = if state.reply_socket { fds.next() } else { None };
                let place = ctx
                    .config
                    .listener_id(&state.listener)
                    .and_then(|id| listeners.iter().find(|(l, _)| *l == id));
                let result = match (place, upstream) {
                    (Some((id, listener)), Some(upstream)) => udp::adopt(
                        ctx,
                        *id,
                        listener,
                        AdoptedFlow {
                            facts: FlowFacts {
                                client: state.client,
                                destination: state.destination,
                                endpoint: state.endpoint,
                                idle_for: state.idle_for,
                                started: UNIX_EPOCH + Duration::from_millis(state.started_unix_ms),
                                received: state.received,
                                sent: state.sent,
                                moves: state.moves,
                            },
                            cluster: state.cluster.clone(),
                            upstream,
                            reply,
                        },
                    )
                    .map_err(|e| e.to_string()),
                    _ => Err("no udp listener of that name here".to_owned()),
                };
                match result {
                    Ok(()) => taken += 1,
                    Err(why) => {
                        refused += 1;
                        warn!(client = %state.client, listener = %state.listener, reason = %why, "a udp flow of the previous generation is not taken");
                    }
                }
            }
            if last {
                break;
            }
        }
        Ok::<_, FlowsError>((taken, refused))
    };
    let (taken, refused) = tokio::time::timeout(FLOWS_TIMEOUT, all)
        .await
        .map_err(|_| FlowsError::Timeout)??;
    info!(
        flows = taken,
        refused, "udp flows taken over from the previous generation"
    );
    Ok(taken)
}
