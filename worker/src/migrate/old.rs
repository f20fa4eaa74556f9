//! The old side of a handoff: hand every connection to the next
//! generation ([`hand_off`]), forward the late responses of the moved RPC
//! connections, or — if the new generation fails — take everything back and
//! serve on; or, with no handoff schema in common, drain here instead. See
//! the module doc of `migrate` for the whole protocol.

use std::collections::VecDeque;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use baton_ipc::{
    Channel, ConnAck, HandoffDone, HandoffProgress, HandoffStage, IpcError, Kind, Message,
};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{Instrument, debug, info, warn};

use crate::conn::registry::Paused;
use crate::conn::state::{ConnParts, Parked};
use crate::conn::task;
use crate::migrate::Host;
use crate::migrate::flows::{self, FlowsError};
use crate::migrate::forward;
use crate::migrate::health::{self, HealthError};
use crate::migrate::hooks::{Hooks, PausePoint};
use crate::migrate::schema::{self, Agreed, Schema, SchemaError};
use crate::migrate::wire::{WireError, describe, fds_of};

/// How long the new generation may take to start accepting once the
/// handoff channel is up: it only spawns its accept loops, so this expires
/// only on a wedged worker.
pub const ACCEPTING_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections paused at once: as many tunnels as one datagram's fds carry.
const WAVE: usize = baton_ipc::MAX_FDS / 2;

/// Batches sent and not yet acknowledged, at most. More overlaps the new
/// generation's adoption with our next wave's pausing; each in-flight batch
/// is a set of connections standing still.
const WINDOW: usize = 2;

/// The old side's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandedOff {
    pub migrated: u64,
    /// Could not be paused before the deadline; closed.
    pub lost: u64,
    /// Of the migrated, those whose pending bytes went in a memfd.
    pub spilled: u64,
    /// Connections that had no form in the agreed handoff schema (or all
    /// of them, with none agreed) and drained here instead.
    pub stayed: u64,
    /// Of the connections that drained here, those that ended by
    /// themselves (the rest were closed at the deadline: `lost`). Only
    /// counted when nothing could move.
    pub finished: u64,
}

/// Why the old side of a handoff failed (and took everything back).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HandoffError {
    #[error("handoff handshake: {0}")]
    Handshake(#[source] IpcError),
    #[error("send the endpoint health: {0}")]
    Health(#[source] HealthError),
    #[error("hand the udp flows over: {0}")]
    Flows(#[source] FlowsError),
    #[error("expected Accepting, got {0:?}")]
    NotAccepting(Kind),
    #[error("waiting for the new generation to accept: {0}")]
    Accepting(#[source] IpcError),
    #[error("the new generation did not start accepting within {ACCEPTING_TIMEOUT:?}")]
    AcceptingTimeout,
    #[error("describe a connection: {0}")]
    Describe(#[source] WireError),
    #[error("cut connections into batches: {0}")]
    Batches(#[source] IpcError),
    #[error("write batch {seq}: {source}")]
    Write {
        seq: u64,
        #[source]
        source: SchemaError,
    },
    #[error("send batch {seq}: {source}")]
    Send {
        seq: u64,
        #[source]
        source: IpcError,
    },
    #[error("ack for batch {got}, none in flight")]
    AckNoneInFlight { got: u64 },
    #[error("ack for batch {got}, expected {expected}")]
    AckOutOfOrder { got: u64, expected: u64 },
    #[error("expected ConnAck, got {0:?}")]
    NotAnAck(Kind),
    #[error("waiting for an ack: {0}")]
    Ack(#[source] IpcError),
    #[error("deadline passed with batches unacknowledged")]
    Unacknowledged,
    #[error(
        "the new generation's end of the handoff failed after it had taken every connection: {0}"
    )]
    GoneAfterCommit(#[source] IpcError),
    #[error(
        "the new generation's end of the handoff failed after it had taken every connection: unexpected {0:?}"
    )]
    UnexpectedAfterCommit(Kind),
}

/// The old side failed and took everything back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandoffFailure {
    /// Why (a [`HandoffError`], as text: it is reported to the supervisor).
    pub reason: String,
    /// Connections resumed here.
    pub resumed: u64,
    /// Connections the new generation had acknowledged: closed here, gone
    /// with it.
    pub lost: u64,
    /// Requests in flight on those connections whose responses had not
    /// been forwarded: their clients will not get them.
    pub requests_lost: u64,
}

/// Old side: hands every connection of `server` to the peer on `chan`.
/// With `progress` (the ctrl channel, when the supervisor speaks ctrl
/// version 2) each stage is reported as [`HandoffProgress`].
pub async fn hand_off<H: Host>(
    server: H,
    chan: Channel,
    deadline: Duration,
    hooks: Hooks,
    progress: Option<Arc<Channel>>,
) -> Result<HandedOff, HandoffFailure> {
    let udp = server.udp_listeners();
    let result = hand_off_all(server, chan, deadline, hooks, progress).await;
    if result.is_err() {
        // The UDP flows handed over stay ours (`flows`).
        for (_, listener) in &udp {
            listener.keep();
        }
    }
    result
}

/// [`hand_off`], but for giving the UDP flows back when it fails.
async fn hand_off_all<H: Host>(
    server: H,
    chan: Channel,
    deadline: Duration,
    hooks: Hooks,
    progress: Option<Arc<Channel>>,
) -> Result<HandedOff, HandoffFailure> {
    let chan = Arc::new(chan);
    let deadline = Instant::now() + deadline;
    let early = |reason: HandoffError| HandoffFailure {
        reason: reason.to_string(),
        resumed: 0,
        lost: 0,
        requests_lost: 0,
    };
    let agreed = schema::handshake(&chan, &hooks.handoff_versions())
        .await
        .map_err(|e| early(HandoffError::Handshake(e)))?;
    debug!(?agreed, "handoff channel up");
    // Our view of the endpoints goes first: the new generation applies
    // it before it accepts (see `health`).
    if let Agreed::Schema(schema) = &agreed
        && schema.carries_health()
    {
        health::send(&chan, *schema, server.ctx())
            .await
            .map_err(|e| early(HandoffError::Health(e)))?;
    }
    // Then the UDP flows, before the new generation reads a datagram.
    if let Agreed::Schema(schema) = &agreed
        && schema.carries_flows()
    {
        flows::send(&chan, *schema, &server)
            .await
            .map_err(|e| early(HandoffError::Flows(e)))?;
    }
    match tokio::time::timeout(ACCEPTING_TIMEOUT, chan.recv_msg()).await {
        Ok(Ok(Message::Accepting(_))) => {}
        Ok(Ok(other)) => return Err(early(HandoffError::NotAccepting(other.kind()))),
        Ok(Err(e)) => return Err(early(HandoffError::Accepting(e))),
        Err(_) => return Err(early(HandoffError::AcceptingTimeout)),
    }
    server.stop_accepting().await;
    info!(
        connections = server.ctx().active(),
        "new generation accepts; migrating connections"
    );
    report(
        progress.as_deref(),
        HandoffProgress {
            stage: HandoffStage::Migrating,
            connections: server.ctx().active(),
            draining: 0,
            requests: server.ctx().meters.rpc_pending(),
        },
    )
    .await;

    let schema = match agreed {
        Agreed::Schema(schema) => schema,
        Agreed::Drain { ours, theirs } => {
            warn!(
                ?ours,
                ?theirs,
                "no handoff schema in common with the new generation: draining here, nothing moves"
            );
            return Ok(drain_instead(&server, &chan, deadline, progress.as_deref()).await);
        }
    };
    let mut migration = Migration::new(server.clone(), Arc::clone(&chan), hooks, schema);
    if let Err(reason) = migration.run(&chan, deadline).await {
        return Err(migration.fail(reason));
    }
    // The UDP flows handed over are the new generation's now.
    for (_, listener) in server.udp_listeners() {
        migration.migrated += listener.release();
    }
    // The commit: every connection is acknowledged and belongs to the new
    // generation. What their requests in flight answer is still to be
    // forwarded, and connections that drain rather than move (HTTP/2 after
    // its GOAWAY, TLS) finish here.
    report(
        progress.as_deref(),
        HandoffProgress {
            stage: HandoffStage::Forwarding,
            connections: migration.migrated,
            draining: server.ctx().active(),
            requests: migration.to_forward.load(Ordering::Relaxed),
        },
    )
    .await;
    // The new generation sends nothing more until it has our HandoffDone:
    // anything on the channel meanwhile — end of file when it dies — means
    // the connections it took are gone with it. Then this generation
    // serves again rather than exit and leave the listeners to nobody.
    let gone = {
        let rest = migration.finish(deadline);
        tokio::select! {
            () = rest => None,
            gone = chan.recv() => Some(gone),
        }
    };
    if let Some(gone) = gone {
        let why = match gone {
            Err(e) => HandoffError::GoneAfterCommit(e),
            Ok(received) => HandoffError::UnexpectedAfterCommit(received.message.kind()),
        };
        if !migration.closed_all {
            return Err(migration.fail(why));
        }
        // Past the deadline this generation has closed everything and
        // cannot serve again; it reports and exits as planned, and the
        // supervisor, seeing both gone, starts a fresh one.
        warn!(error = %why, "the new generation is gone, past the drain deadline");
    }
    let lost = migration.lost;
    let _ = chan
        .send_msg(HandoffDone {
            migrated: migration.migrated,
            lost,
        })
        .await;
    Ok(HandedOff {
        migrated: migration.migrated,
        lost,
        spilled: migration.spilled,
        stayed: migration.stayed,
        finished: 0,
    })
}

/// The drain fallback (DESIGN §4): no handoff schema in common, so nothing
/// moves. The new generation accepts already; this one lets every
/// connection finish until the deadline, closes what is left then, and
/// counts both. Then `HandoffDone`, as after a migration.
async fn drain_instead<H: Host>(
    server: &H,
    chan: &Channel,
    deadline: Instant,
    progress: Option<&Channel>,
) -> HandedOff {
    let ctx = server.ctx();
    let before = ctx.stats.finished.load(Ordering::Relaxed);
    let open = ctx.active();
    report(
        progress,
        HandoffProgress {
            stage: HandoffStage::Forwarding,
            connections: 0,
            draining: open,
            requests: 0,
        },
    )
    .await;
    let left = deadline.saturating_duration_since(Instant::now());
    let closed = if ctx.wait_idle(left).await {
        0
    } else {
        let open = ctx.active();
        warn!(open, "drain deadline: closing what is left");
        ctx.close_all().await;
        open
    };
    let ended = ctx.stats.finished.load(Ordering::Relaxed) - before;
    let _ = chan
        .send_msg(HandoffDone {
            migrated: 0,
            lost: closed,
        })
        .await;
    HandedOff {
        migrated: 0,
        lost: closed,
        spilled: 0,
        stayed: open,
        finished: ended.saturating_sub(closed),
    }
}

/// Tells the supervisor (when it listens) where the handoff is. Best
/// effort: a supervisor that cannot be told is gone, and the ctrl loop
/// sees that on its own.
async fn report(progress: Option<&Channel>, now: HandoffProgress) {
    info!(
        stage = ?now.stage,
        connections = now.connections,
        draining = now.draining,
        requests = now.requests,
        "handoff stage"
    );
    if let Some(ctrl) = progress {
        let _ = ctrl.send_msg(now).await;
    }
}

/// The old side's migration state.
struct Migration<H> {
    server: H,
    chan: Arc<Channel>,
    /// Write migration: one task per moved RPC connection with requests
    /// in flight.
    forwarders: tokio::task::JoinSet<Result<(), IpcError>>,
    reply_tx: mpsc::UnboundedSender<Paused>,
    reply_rx: mpsc::UnboundedReceiver<Paused>,
    /// The handoff schema both generations speak.
    schema: Schema,
    /// Paused, but with no form in `schema`: resumed here to drain.
    stayed: u64,
    /// Pause requests not answered yet.
    asked: usize,
    /// Paused, not sent yet.
    ready: Vec<Parked>,
    /// Sent, not acknowledged yet, in order.
    in_flight: VecDeque<(u64, Vec<Parked>)>,
    next_seq: u64,
    migrated: u64,
    lost: u64,
    /// Sent with their pending bytes in a memfd.
    spilled: u64,
    /// Requests in flight on the moved connections whose responses have
    /// not been forwarded yet (the forwarders take theirs off).
    to_forward: Arc<AtomicU64>,
    hooks: Hooks,
    /// Whether the `migrating` pause hook has had its turn.
    paused: bool,
    /// The drain deadline closed what was left here.
    closed_all: bool,
}

impl<H: Host> Migration<H> {
    fn new(server: H, chan: Arc<Channel>, hooks: Hooks, schema: Schema) -> Migration<H> {
        let (reply_tx, reply_rx) = mpsc::unbounded_channel();
        Migration {
            server,
            chan,
            forwarders: tokio::task::JoinSet::new(),
            reply_tx,
            reply_rx,
            schema,
            stayed: 0,
            asked: 0,
            ready: Vec::new(),
            in_flight: VecDeque::new(),
            next_seq: 0,
            migrated: 0,
            lost: 0,
            spilled: 0,
            to_forward: Arc::default(),
            hooks,
            paused: false,
            closed_all: false,
        }
    }

    /// Orders every connection here closed (at the drain deadline). From
    /// then on this generation can only finish and exit: its connections'
    /// order to close stays.
    async fn close_all(&mut self) {
        self.closed_all = true;
        self.server.ctx().close_all().await;
    }

    /// The handoff failed: takes back everything not acknowledged, accepts
    /// again, and counts what the new generation took along.
    fn fail(&mut self, reason: HandoffError) -> HandoffFailure {
        let lost = self.migrated;
        let requests_lost = self.to_forward.load(Ordering::Relaxed);
        // Forwarding to a dead peer is pointless: stop at once.
        self.forwarders.abort_all();
        let resumed = self.resume();
        self.server.start_accepting();
        HandoffFailure {
            reason: reason.to_string(),
            resumed,
            lost,
            requests_lost,
        }
    }

    /// After the commit: forwards the late responses, then lets the
    /// connections that drain rather than move finish, all within the
    /// deadline.
    async fn finish(&mut self, deadline: Instant) {
        self.finish_forwarding(deadline).await;
        let staying = self.server.ctx().active();
        if staying > 0 {
            info!(
                connections = staying,
                "waiting for draining connections (HTTP/2, TLS)"
            );
            let left = deadline.saturating_duration_since(Instant::now());
            if !self.server.ctx().wait_idle(left).await {
                warn!(
                    open = self.server.ctx().active(),
                    "drain deadline: closing what is left"
                );
                self.close_all().await;
            }
        }
    }

    async fn run(&mut self, chan: &Channel, deadline: Instant) -> Result<(), HandoffError> {
        loop {
            // The next wave is asked once the last one has answered, while
            // earlier batches may still await their acks.
            if self.asked == 0 && self.ready.is_empty() && self.in_flight.len() < WINDOW {
                self.asked = self.server.ctx().registry.pause_some(WAVE, &self.reply_tx);
            }
            if self.asked == 0 && !self.ready.is_empty() && self.in_flight.len() < WINDOW {
                self.send_ready(chan).await?;
                continue;
            }
            if self.asked == 0 && self.ready.is_empty() && self.in_flight.is_empty() {
                if self.server.ctx().registry.is_empty() {
                    return Ok(());
                }
                continue;
            }
            tokio::select! {
                paused = self.reply_rx.recv(), if self.asked > 0 => {
                    self.asked -= 1;
                    if let Some(Paused::Parked(parked)) = paused {
                        self.ready.push(*parked);
                    }
                }
                ack = chan.recv_msg(), if !self.in_flight.is_empty() => {
                    self.acked(ack)?;
                    if !self.paused {
                        self.paused = true;
                        self.hooks.pause(PausePoint::Migrating).await;
                    }
                }
                () = tokio::time::sleep_until(deadline) => return self.at_deadline().await,
            }
        }
    }

    /// Sends everything parked, in as many batches as datagrams need.
    async fn send_ready(&mut self, chan: &Channel) -> Result<(), HandoffError> {
        let mut rest = std::mem::take(&mut self.ready).into_iter();
        let mut parked = Vec::with_capacity(rest.len());
        let mut states = Vec::with_capacity(rest.len());
        let mut spills = Vec::with_capacity(rest.len());
        while let Some(mut p) = rest.next() {
            // Schema 7 on: a client's pinned upstream connections stop at
            // a frame boundary too, and go with it.
            // Older ones cannot take the spans of its requests in flight,
            // nor its filters' copies of them.
            if let ConnParts::Rpc(parts) = &mut p.conn {
                if self.schema.carries_pinned() {
                    parts.park_pinned().await;
                } else {
                    parts.keep_to_schema_6();
                }
            }
            let (state, spill) = match describe(&p) {
                Ok(described) => described,
                Err(e) => {
                    // Keep them all: the failure resumes them here.
                    self.ready = parked;
                    self.ready.push(p);
                    self.ready.extend(rest);
                    return Err(HandoffError::Describe(e));
                }
            };
            if let Err(why) = state.writable_in(self.schema) {
                // The new generation could not read it: it stays, out of
                // reach of the next pause, and drains here.
                debug!(conn = %p.id, %why, "stays here and drains");
                task::stay(self.server.ctx(), p);
                self.stayed += 1;
                continue;
            }
            parked.push(p);
            states.push(state);
            spills.push(spill);
        }
        self.spilled += spills.iter().filter(|s| s.is_some()).count() as u64;
        let runs = match baton_ipc::batch::batches(states, |s| s.kind.fd_count()) {
            Ok(runs) => runs,
            Err(e) => {
                self.ready = parked;
                return Err(HandoffError::Batches(e));
            }
        };
        let mut parked = parked.into_iter().zip(spills);
        for conns in runs {
            let (members, spills): (Vec<Parked>, Vec<Option<OwnedFd>>) =
                parked.by_ref().take(conns.len()).unzip();
            let fds: Vec<BorrowedFd<'_>> = members
                .iter()
                .zip(&spills)
                .flat_map(|(m, spill)| {
                    let mut fds = fds_of(m);
                    fds.extend(spill.as_ref().map(AsFd::as_fd));
                    fds
                })
                .collect();
            let seq = self.next_seq;
            self.next_seq += 1;
            let sent = match schema::encode_batch(self.schema, seq, &conns) {
                Ok(batch) => chan
                    .send(&batch, &fds)
                    .await
                    .map_err(|source| HandoffError::Send { seq, source }),
                Err(source) => Err(HandoffError::Write { seq, source }),
            };
            drop(fds);
            // Keep the connections even if the send fails: they resume.
            self.in_flight.push_back((seq, members));
            sent?;
        }
        Ok(())
    }

    fn acked(&mut self, ack: Result<Message, IpcError>) -> Result<(), HandoffError> {
        match ack {
            Ok(Message::ConnAck(ConnAck { seq })) => {
                let Some((expected, members)) = self.in_flight.pop_front() else {
                    return Err(HandoffError::AckNoneInFlight { got: seq });
                };
                if seq != expected {
                    // Put it back: it resumes with the rest.
                    self.in_flight.push_front((expected, members));
                    return Err(HandoffError::AckOutOfOrder { got: seq, expected });
                }
                self.migrated += members.len() as u64;
                self.server
                    .ctx()
                    .meters
                    .migration
                    .moved
                    .fetch_add(members.len() as u64, std::sync::atomic::Ordering::Relaxed);
                let mut members = members;
                for parked in &mut members {
                    // Write migration: what its requests in flight answer
                    // follows the connection.
                    if let ConnParts::Rpc(parts) = &mut parked.conn
                        && let Some((inbox, _)) = parts.inbox.take()
                    {
                        let meters = self.server.ctx().rpc_meters(&parked.listener);
                        self.to_forward
                            .fetch_add(parts.forwarded_in_flight(), Ordering::Relaxed);
                        let task = forward::forward(
                            Arc::clone(&self.chan),
                            parked.id.0,
                            inbox,
                            meters,
                            Arc::clone(&self.to_forward),
                        );
                        self.forwarders.spawn(task.in_current_span());
                    }
                }
                // Closing our copies (an epoll deregistration and a close per
                // socket) off this loop: the next ack need not wait for it.
                tokio::task::spawn_blocking(move || drop(members));
                Ok(())
            }
            Ok(other) => Err(HandoffError::NotAnAck(other.kind())),
            Err(e) => Err(HandoffError::Ack(e)),
        }
    }

    /// The deadline passed. With batches still unacknowledged the new
    /// generation is wedged: fail (and resume). Otherwise only connections
    /// that never paused are left: close them, count them lost.
    async fn at_deadline(&mut self) -> Result<(), HandoffError> {
        if !self.in_flight.is_empty() {
            return Err(HandoffError::Unacknowledged);
        }
        let left = self.server.ctx().active() + self.ready.len() as u64;
        warn!(
            left,
            "migration deadline passed; closing what could not move"
        );
        self.ready.clear();
        self.close_all().await;
        self.lost += left;
        self.server
            .ctx()
            .meters
            .migration
            .lost
            .fetch_add(left, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// Waits until every forwarded connection's requests are answered and
    /// forwarded. At the deadline the upstream connections are closed,
    /// which answers what is left with the protocol's error — forwarded
    /// too — so no request is left without a response.
    async fn finish_forwarding(&mut self, deadline: Instant) {
        if self.forwarders.is_empty() {
            return;
        }
        info!(
            connections = self.forwarders.len(),
            "forwarding late responses to the new generation"
        );
        let all = async {
            while let Some(done) = self.forwarders.join_next().await {
                if let Ok(Err(e)) = done {
                    warn!(error = %e, "forwarding stopped");
                }
            }
        };
        if tokio::time::timeout_at(deadline, all).await.is_err() {
            warn!(
                left = self.forwarders.len(),
                "drain deadline: answering the requests still in flight with errors"
            );
            self.close_all().await;
            let rest = async { while self.forwarders.join_next().await.is_some() {} };
            if tokio::time::timeout(ACCEPTING_TIMEOUT, rest).await.is_err() {
                self.forwarders.abort_all();
            }
        }
    }

    /// Takes back everything not acknowledged; returns how many.
    fn resume(&mut self) -> u64 {
        let mut resumed = 0;
        for parked in self
            .in_flight
            .drain(..)
            .flat_map(|(_, m)| m)
            .chain(self.ready.drain(..))
        {
            task::adopt(self.server.ctx(), parked);
            resumed += 1;
        }
        // Connections still answering the pause resume as their answers
        // arrive.
        let (asked, ctx) = (self.asked, std::sync::Arc::clone(self.server.ctx()));
        let mut rx = std::mem::replace(&mut self.reply_rx, mpsc::unbounded_channel().1);
        self.asked = 0;
        tokio::spawn(async move {
            for _ in 0..asked {
                match rx.recv().await {
                    Some(Paused::Parked(parked)) => {
                        task::adopt(&ctx, *parked);
                    }
                    Some(Paused::Ended(_)) => {}
                    None => break,
                }
            }
        });
        resumed + asked as u64
    }
}
