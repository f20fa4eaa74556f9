//! Moving live connections from one generation to the next.
//!
//! The handoff channel is a SEQPACKET socketpair the supervisor makes per
//! upgrade and hands one end each to the old (N) and the new (N+1) worker
//! over ctrl (`HandoffTo` / `HandoffFrom`). On it:
//!
//! ```text
//!  N (old)                                             N+1 (new)
//!   | <------------------------------ Hello --------> |  both ways; HANDOFF_VERSIONS
//!   |                                                  |  N+1 starts accepting
//!   | <--------------------------------- Accepting -- |
//!   | N stops accepting (both held the same sockets,   |
//!   |   so nothing queued is lost)                     |
//!   | pause a wave of connections (≤ one datagram)     |
//!   | -- ConnBatch{seq} + fds -----------------------> |  adopt: fds → sockets, no I/O yet
//!   | <------------------------------ ConnAck{seq} -- |  then N+1 starts pumping them
//!   | close our copies of batch seq                    |
//!   |   ... up to WINDOW batches in flight ...         |
//!   | -- HandoffDone ---------------------------------> |
//!   | report Drained to the supervisor, exit           |
//! ```
//!
//! **Exactness.** A connection is paused between two pump steps: every
//! byte it read and did not write is in its state, and it reads nothing
//! more. N+1 acknowledges a batch before it moves a byte of it, and N
//! closes its copies only after the acknowledgement: until then N can
//! resume the connection with its state intact.
//!
//! **Pauses are short.** Connections are paused a wave at a time (what one
//! datagram carries) rather than all at once, so a connection stands still
//! only for its own batch's round trip, not for the whole migration.
//!
//! **Failure.** If the channel fails before `HandoffDone` (N+1 died,
//! refused, or sent nonsense), N resumes every connection it still holds —
//! unsent, sent but unacknowledged, and those still answering the pause —
//! and starts accepting again; the supervisor is told `HandoffFailed` (on
//! ctrl version 2 `HandoffAborted`) and kills N+1. Connections N+1 had
//! acknowledged are lost with it, and so are the requests they had in
//! flight whose responses N had not forwarded yet: both are counted and
//! reported. That holds after the commit too (the last batch
//! acknowledged): while N forwards late responses it watches the channel,
//! whose end of file means N+1 is gone, and then serves on instead of
//! exiting. If N dies instead, N+1 keeps what it adopted and tells the
//! supervisor how much (`TakeoverEnded`); if N dies before the handshake,
//! N+1 waits for the supervisor's `Activate` to accept.
//!
//! **Reports** (ctrl version 2): `HandoffProgress` when N stops accepting
//! (`Migrating`: connections and requests in flight here) and at the
//! commit (`Forwarding`: connections moved, draining, responses still to
//! forward) — the supervisor's phases, and its count of what N's death
//! would lose.
//!
//! **Test hook.** `BATON_TEST_PAUSE_AT` + `BATON_TEST_PAUSE_FILE` hold a
//! generation at a named point ([`PausePoint`]) until a file exists, so
//! that process tests can kill a generation at a phase of their choosing
//! (see [`Hooks`]).
//!
//! **Timeouts.** The handshake is bounded by `HELLO_TIMEOUT`; N+1's
//! `Accepting` by [`ACCEPTING_TIMEOUT`]; the whole migration by the drain
//! deadline the supervisor sends with `HandoffTo`. Connections that could
//! not be paused by then (say, one still connecting to a blackholed
//! upstream) are closed and counted lost.

use std::collections::VecDeque;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use baton_ipc::{
    Accepting, Channel, ConnAck, ConnBatch, ConnKind, ConnState, HandoffDone, HandoffProgress,
    HandoffStage, IpcError, Message, PipeWire, Role,
};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{Instrument, debug, error, info, warn};

use crate::codec::CodecState;
use crate::conn::{ConnId, ConnParts, History, Parked, Paused};
use crate::l4::pipe::PipeState;
use crate::l4::tunnel::Parts;
use crate::rpc;
use crate::rpc::downstream::RpcParts;
use crate::serve::Server;

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

/// Test hooks, read from the environment once at start. Never set in
/// production; they make failure paths reachable from process tests.
#[derive(Debug, Clone, Default)]
pub struct Hooks {
    /// `BATON_TEST_ABORT_AFTER_ADOPT=K`: the new generation aborts (like a
    /// crash) when adopting the batch that brings it to K connections,
    /// before acknowledging it.
    pub abort_after_adopt: Option<u64>,
    /// `BATON_TEST_HANDOFF_VERSIONS=a,b`: handoff versions to announce.
    pub handoff_versions: Option<Vec<u16>>,
    /// `BATON_TEST_PAUSE_AT=<point>` together with
    /// `BATON_TEST_PAUSE_FILE=<path>`: hold this generation at `point`
    /// until `path` exists, so that a process test can kill a generation
    /// at a phase of its choosing. Both variables must be set, and the
    /// point must be one of [`PausePoint`]'s names; anything else leaves
    /// the hook off (with a warning). Every hold is logged (`test hook
    /// BATON_TEST_PAUSE_AT: holding`) and ends after [`PAUSE_LIMIT`] at
    /// the latest, so a forgotten variable delays a worker, never wedges it.
    pub pause: Option<Pause>,
}

/// Where [`Hooks::pause`] can hold a generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PausePoint {
    /// `starting`: a new generation has its config and listeners, and has
    /// not parsed them or said `Ready`.
    Starting,
    /// `ready`: a new generation was ordered to take over and has not
    /// started its handoff handshake.
    Ready,
    /// `migrating`: an old generation has had its first batch of
    /// connections acknowledged and has not sent the rest.
    Migrating,
}

impl PausePoint {
    const ALL: [PausePoint; 3] = [
        PausePoint::Starting,
        PausePoint::Ready,
        PausePoint::Migrating,
    ];

    pub fn name(self) -> &'static str {
        match self {
            PausePoint::Starting => "starting",
            PausePoint::Ready => "ready",
            PausePoint::Migrating => "migrating",
        }
    }
}

/// An armed [`Hooks::pause`].
#[derive(Debug, Clone)]
pub struct Pause {
    at: PausePoint,
    release: std::path::PathBuf,
}

/// How often a held generation looks for its release file: often enough
/// not to slow a test down, rarely enough to cost nothing.
const PAUSE_POLL: Duration = Duration::from_millis(10);

/// The longest [`Hooks::pause`] holds a generation: far beyond what a
/// test needs to act on a held phase, short enough that a hook left set by
/// mistake delays an upgrade instead of wedging it.
pub const PAUSE_LIMIT: Duration = Duration::from_secs(60);

impl Hooks {
    pub fn from_env() -> Hooks {
        Hooks {
            abort_after_adopt: std::env::var("BATON_TEST_ABORT_AFTER_ADOPT")
                .ok()
                .and_then(|v| v.parse().ok()),
            handoff_versions: versions_var("BATON_TEST_HANDOFF_VERSIONS"),
            pause: pause_var(),
        }
    }

    /// Holds here while the pause hook is armed for `point` and its file
    /// does not exist (at most [`PAUSE_LIMIT`]). Only this task waits: the
    /// generation's connections, accept loops and heartbeat go on.
    pub async fn pause(&self, point: PausePoint) {
        let Some(pause) = self.pause.as_ref().filter(|p| p.at == point) else {
            return;
        };
        warn!(
            point = point.name(),
            pid = std::process::id(),
            release = %pause.release.display(),
            "test hook BATON_TEST_PAUSE_AT: holding"
        );
        let released = tokio::time::timeout(PAUSE_LIMIT, async {
            while !pause.release.exists() {
                tokio::time::sleep(PAUSE_POLL).await;
            }
        })
        .await;
        match released {
            Ok(()) => warn!(
                point = point.name(),
                "test hook BATON_TEST_PAUSE_AT: released"
            ),
            Err(_) => warn!(
                point = point.name(),
                "test hook BATON_TEST_PAUSE_AT: not released within {PAUSE_LIMIT:?}; going on"
            ),
        }
    }

    fn handoff_versions(&self) -> Vec<u16> {
        self.handoff_versions
            .clone()
            .unwrap_or_else(|| baton_ipc::HANDOFF_VERSIONS.to_vec())
    }
}

/// `BATON_TEST_PAUSE_AT` and `BATON_TEST_PAUSE_FILE`, both or nothing.
fn pause_var() -> Option<Pause> {
    let at = std::env::var("BATON_TEST_PAUSE_AT").ok();
    let release = std::env::var_os("BATON_TEST_PAUSE_FILE");
    let (at, release) = match (at, release) {
        (None, None) => return None,
        (Some(at), Some(release)) if !release.is_empty() => (at, release),
        _ => {
            warn!("test hook ignored: BATON_TEST_PAUSE_AT and BATON_TEST_PAUSE_FILE go together");
            return None;
        }
    };
    let Some(at) = PausePoint::ALL.into_iter().find(|p| p.name() == at) else {
        warn!(point = %at, "test hook ignored: BATON_TEST_PAUSE_AT names no pause point");
        return None;
    };
    warn!(
        point = at.name(),
        "test hook BATON_TEST_PAUSE_AT armed: this worker will hold there"
    );
    Some(Pause {
        at,
        release: std::path::PathBuf::from(release),
    })
}

/// `a,b,c` → versions.
pub fn versions_var(name: &str) -> Option<Vec<u16>> {
    let text = std::env::var(name).ok()?;
    text.split(',').map(|v| v.trim().parse().ok()).collect()
}

/// The old side's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandedOff {
    pub migrated: u64,
    /// Could not be paused before the deadline; closed.
    pub lost: u64,
    /// Of the migrated, those whose pending bytes went in a memfd.
    pub spilled: u64,
}

/// The old side failed and took everything back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandoffFailure {
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
pub async fn hand_off(
    server: Server,
    chan: Channel,
    deadline: Duration,
    hooks: Hooks,
    progress: Option<Arc<Channel>>,
) -> Result<HandedOff, HandoffFailure> {
    let chan = Arc::new(chan);
    let deadline = Instant::now() + deadline;
    let early = |reason: String| HandoffFailure {
        reason,
        resumed: 0,
        lost: 0,
        requests_lost: 0,
    };
    let negotiated = chan
        .handshake(Role::Worker, &hooks.handoff_versions())
        .await
        .map_err(|e| early(format!("handoff handshake: {e}")))?;
    debug!(
        version = negotiated.version,
        peer = negotiated.peer.pid,
        "handoff channel up"
    );
    match tokio::time::timeout(ACCEPTING_TIMEOUT, chan.recv_msg()).await {
        Ok(Ok(Message::Accepting(_))) => {}
        Ok(Ok(other)) => return Err(early(format!("expected Accepting, got {:?}", other.kind()))),
        Ok(Err(e)) => {
            return Err(early(format!(
                "waiting for the new generation to accept: {e}"
            )));
        }
        Err(_) => {
            return Err(early(format!(
                "the new generation did not start accepting within {ACCEPTING_TIMEOUT:?}"
            )));
        }
    }
    server.stop_accepting().await;
    info!(
        connections = server.active(),
        "new generation accepts; migrating connections"
    );
    report(
        progress.as_deref(),
        HandoffProgress {
            stage: HandoffStage::Migrating,
            connections: server.active(),
            draining: 0,
            requests: server.meters().rpc_pending(),
        },
    )
    .await;

    let mut migration = Migration::new(server.clone(), Arc::clone(&chan), hooks);
    if let Err(reason) = migration.run(&chan, deadline).await {
        return Err(migration.fail(reason));
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
            draining: server.active(),
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
            Err(e) => e.to_string(),
            Ok(received) => format!("unexpected {:?}", received.message.kind()),
        };
        if !migration.closed_all {
            return Err(migration.fail(format!(
                "the new generation's end of the handoff failed after it had taken every connection: {why}"
            )));
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
    })
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
struct Migration {
    server: Server,
    chan: Arc<Channel>,
    /// Write migration: one task per moved RPC connection with requests
    /// in flight.
    forwarders: tokio::task::JoinSet<Result<(), IpcError>>,
    reply_tx: mpsc::UnboundedSender<Paused>,
    reply_rx: mpsc::UnboundedReceiver<Paused>,
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

impl Migration {
    fn new(server: Server, chan: Arc<Channel>, hooks: Hooks) -> Migration {
        let (reply_tx, reply_rx) = mpsc::unbounded_channel();
        Migration {
            server,
            chan,
            forwarders: tokio::task::JoinSet::new(),
            reply_tx,
            reply_rx,
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
        self.server.close_all().await;
    }

    /// The handoff failed: takes back everything not acknowledged, accepts
    /// again, and counts what the new generation took along.
    fn fail(&mut self, reason: String) -> HandoffFailure {
        let lost = self.migrated;
        let requests_lost = self.to_forward.load(Ordering::Relaxed);
        // Forwarding to a dead peer is pointless: stop at once.
        self.forwarders.abort_all();
        let resumed = self.resume();
        self.server.start_accepting();
        HandoffFailure {
            reason,
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
        let staying = self.server.active();
        if staying > 0 {
            info!(
                connections = staying,
                "waiting for draining connections (HTTP/2, TLS)"
            );
            let left = deadline.saturating_duration_since(Instant::now());
            if !self.server.wait_idle(left).await {
                warn!(
                    open = self.server.active(),
                    "drain deadline: closing what is left"
                );
                self.close_all().await;
            }
        }
    }

    async fn run(&mut self, chan: &Channel, deadline: Instant) -> Result<(), String> {
        loop {
            // The next wave is asked once the last one has answered, while
            // earlier batches may still await their acks.
            if self.asked == 0 && self.ready.is_empty() && self.in_flight.len() < WINDOW {
                self.asked = self.server.registry().pause_some(WAVE, &self.reply_tx);
            }
            if self.asked == 0 && !self.ready.is_empty() && self.in_flight.len() < WINDOW {
                self.send_ready(chan).await?;
                continue;
            }
            if self.asked == 0 && self.ready.is_empty() && self.in_flight.is_empty() {
                if self.server.registry().is_empty() {
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
    async fn send_ready(&mut self, chan: &Channel) -> Result<(), String> {
        let parked = std::mem::take(&mut self.ready);
        let mut states = Vec::with_capacity(parked.len());
        let mut spills = Vec::with_capacity(parked.len());
        for p in &parked {
            match describe(p) {
                Ok((state, spill)) => {
                    states.push(state);
                    spills.push(spill);
                }
                Err(e) => {
                    // Keep them all: the failure resumes them here.
                    self.ready = parked;
                    return Err(format!("describe a connection: {e}"));
                }
            }
        }
        self.spilled += spills.iter().filter(|s| s.is_some()).count() as u64;
        let runs =
            baton_ipc::batch::batches(states, |s| s.kind.fd_count()).map_err(|e| e.to_string())?;
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
            let batch = Message::ConnBatch(ConnBatch { seq, conns });
            // Keep the connections even if the send fails: they resume.
            let sent = chan.send(&batch, &fds).await;
            drop(fds);
            self.in_flight.push_back((seq, members));
            sent.map_err(|e| format!("send batch {seq}: {e}"))?;
        }
        Ok(())
    }

    fn acked(&mut self, ack: Result<Message, IpcError>) -> Result<(), String> {
        match ack {
            Ok(Message::ConnAck(ConnAck { seq })) => {
                let Some((expected, members)) = self.in_flight.pop_front() else {
                    return Err(format!("ack for batch {seq}, none in flight"));
                };
                if seq != expected {
                    // Put it back: it resumes with the rest.
                    self.in_flight.push_front((expected, members));
                    return Err(format!("ack for batch {seq}, expected {expected}"));
                }
                self.migrated += members.len() as u64;
                self.server
                    .meters()
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
                        let meters = self.server.rpc_meters(&parked.listener);
                        self.to_forward
                            .fetch_add(parts.in_flight, Ordering::Relaxed);
                        let task = rpc::forward::forward(
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
            Ok(other) => Err(format!("expected ConnAck, got {:?}", other.kind())),
            Err(e) => Err(format!("waiting for an ack: {e}")),
        }
    }

    /// The deadline passed. With batches still unacknowledged the new
    /// generation is wedged: fail (and resume). Otherwise only connections
    /// that never paused are left: close them, count them lost.
    async fn at_deadline(&mut self) -> Result<(), String> {
        if !self.in_flight.is_empty() {
            return Err("deadline passed with batches unacknowledged".to_string());
        }
        let left = self.server.active() + self.ready.len() as u64;
        warn!(
            left,
            "migration deadline passed; closing what could not move"
        );
        self.ready.clear();
        self.close_all().await;
        self.lost += left;
        self.server
            .meters()
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
            self.server.adopt(parked);
            resumed += 1;
        }
        // Connections still answering the pause resume as their answers
        // arrive.
        let (asked, server) = (self.asked, self.server.clone());
        let mut rx = std::mem::replace(&mut self.reply_rx, mpsc::unbounded_channel().1);
        self.asked = 0;
        tokio::spawn(async move {
            for _ in 0..asked {
                match rx.recv().await {
                    Some(Paused::Parked(parked)) => {
                        server.adopt(*parked);
                    }
                    Some(Paused::Ended(_)) => {}
                    None => break,
                }
            }
        });
        resumed + asked as u64
    }
}

/// The new side's result: what it took over, for the supervisor's count
/// of what a death lost ([`baton_ipc::TakeoverEnded`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TookOver {
    /// `HandoffDone` arrived; otherwise the old generation's end closed
    /// first (it died), and what it still held is gone.
    pub complete: bool,
    pub adopted: u64,
    /// Requests the adopted connections had in flight in the old
    /// generation when they moved.
    pub in_flight_adopted: u64,
    /// Responses forwarded to them.
    pub answered: u64,
}

/// New side: takes over from the peer on `chan`. If the peer's end closes
/// before the handshake — the old generation died — this generation has
/// not started accepting: with `activated` (a supervisor of ctrl version
/// 2, which sends `Activate` when the old generation dies) it waits for
/// that; otherwise it fails, and the supervisor restarts a worker.
pub async fn take_over(
    server: Server,
    chan: Channel,
    hooks: Hooks,
    activated: bool,
) -> Result<TookOver, IpcError> {
    hooks.pause(PausePoint::Ready).await;
    match chan
        .handshake(Role::Worker, &hooks.handoff_versions())
        .await
    {
        Ok(_) => {}
        Err(IpcError::Closed) if activated => {
            warn!("the old generation closed the handoff before its handshake");
            return Ok(TookOver::default());
        }
        Err(e) => return Err(e),
    }
    server.start_accepting();
    chan.send_msg(Accepting {}).await?;
    let mut took = TookOver::default();
    let mut inboxes = rpc::forward::Inboxes::default();
    loop {
        let received = match chan.recv().await {
            Ok(received) => received,
            Err(IpcError::Closed) => {
                warn!(
                    adopted = took.adopted,
                    awaiting = took.in_flight_adopted.saturating_sub(took.answered),
                    "the old generation closed the handoff before it was done"
                );
                return Ok(took);
            }
            Err(e) => return Err(e),
        };
        match received.message {
            Message::ConnBatch(batch) => {
                let parked =
                    rebuild_batch(batch.conns, received.fds).map_err(|source| IpcError::Io {
                        op: "adopt a connection batch",
                        source,
                    })?;
                let count = parked.len() as u64;
                if hooks
                    .abort_after_adopt
                    .is_some_and(|k| took.adopted + count >= k)
                {
                    error!(
                        adopted = took.adopted,
                        "test hook BATON_TEST_ABORT_AFTER_ADOPT: aborting"
                    );
                    std::process::abort();
                }
                // Acknowledge before moving a byte: once the old side has
                // the ack it closes its copies; before, it could resume.
                chan.send_msg(ConnAck { seq: batch.seq }).await?;
                for p in parked {
                    let old_id = p.id.0;
                    if let ConnParts::Rpc(parts) = &p.conn {
                        took.in_flight_adopted += parts.in_flight;
                    }
                    if let Some(inbox) = server.adopt(p) {
                        inboxes.insert(old_id, inbox);
                    }
                }
                took.adopted += count;
            }
            Message::Forward(piece) => {
                if piece.response && piece.last {
                    took.answered += 1;
                }
                inboxes.deliver(piece);
            }
            Message::HandoffDone(done) => {
                info!(adopted = took.adopted, lost = done.lost, "handoff complete");
                took.complete = true;
                return Ok(took);
            }
            other => {
                return Err(IpcError::Unexpected {
                    expected: "ConnBatch or HandoffDone",
                    got: other.kind(),
                });
            }
        }
    }
}

/// Pending bytes up to this size travel inside the batch; more (a large
/// partial frame, a slow client's backlog, a bulk stream's kernel pipe) go
/// in a memfd beside it.
const INLINE_BYTES: usize = 32 * 1024;

/// The most spilled bytes accepted from a peer: an RPC frame's bound
/// (16 MiB by default) plus a backlog of written-but-unsent responses.
const MAX_SPILL: u64 = 64 * 1024 * 1024;

/// A parked connection as it travels, and the memfd holding its large
/// pending bytes, if any.
fn describe(parked: &Parked) -> std::io::Result<(ConnState, Option<OwnedFd>)> {
    let mut spill = None;
    let kind = match &parked.conn {
        ConnParts::Tunnel {
            parts,
            cluster,
            upstream,
        } => {
            let (c2u, u2c) = (&parts.c2u.pending, &parts.u2c.pending);
            if c2u.len() + u2c.len() > INLINE_BYTES {
                spill = Some(spill_to_memfd(c2u, u2c)?);
                ConnKind::SpilledTunnel {
                    c2u: flags_to_wire(&parts.c2u),
                    u2c: flags_to_wire(&parts.u2c),
                    cluster: cluster.to_string(),
                    upstream: *upstream,
                    spilled: (c2u.len() as u64, u2c.len() as u64),
                }
            } else {
                ConnKind::Tunnel {
                    c2u: to_wire(&parts.c2u),
                    u2c: to_wire(&parts.u2c),
                    cluster: cluster.to_string(),
                    upstream: *upstream,
                }
            }
        }
        ConnParts::Echo { pipe, .. } => ConnKind::Echo {
            pipe: to_wire(pipe),
        },
        ConnParts::Http { pending, .. } => {
            if pending.len() > INLINE_BYTES {
                spill = Some(spill_to_memfd(pending, &[])?);
                ConnKind::Http {
                    read_pending: Vec::new(),
                    spilled: Some(pending.len() as u64),
                }
            } else {
                ConnKind::Http {
                    read_pending: pending.clone(),
                    spilled: None,
                }
            }
        }
        ConnParts::Rpc(parts) => {
            let codec = bincode::serde::encode_to_vec(&parts.codec, bincode::config::standard())
                .map_err(std::io::Error::other)?;
            let big = parts.read_pending.len() + parts.write_pending.len() > INLINE_BYTES;
            let (read_pending, write_pending, spilled) = if big {
                spill = Some(spill_to_memfd(&parts.read_pending, &parts.write_pending)?);
                let lens = (
                    parts.read_pending.len() as u64,
                    parts.write_pending.len() as u64,
                );
                (Vec::new(), Vec::new(), Some(lens))
            } else {
                (
                    parts.read_pending.clone(),
                    parts.write_pending.clone(),
                    None,
                )
            };
            ConnKind::Rpc {
                codec,
                read_pending,
                write_pending,
                spilled,
                in_flight: parts.in_flight,
                read_closed: parts.read_closed,
            }
        }
    };
    let history = &parked.history;
    let state = ConnState {
        id: parked.id.0,
        listener: parked.listener.to_string(),
        idle_timeout: parked.idle_timeout,
        kind,
        started_unix_ms: history
            .started
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
        received: history.received,
        sent: history.sent,
        moves: history.moves,
    };
    Ok((state, spill))
}

fn spill_to_memfd(first: &[u8], second: &[u8]) -> std::io::Result<OwnedFd> {
    use std::io::Write;
    let fd = rustix::fs::memfd_create("baton-conn-state", rustix::fs::MemfdFlags::CLOEXEC)?;
    let mut file = std::fs::File::from(fd);
    file.write_all(first)?;
    file.write_all(second)?;
    Ok(OwnedFd::from(file))
}

fn read_spill(fd: OwnedFd, (first, second): (u64, u64)) -> std::io::Result<(Vec<u8>, Vec<u8>)> {
    use std::io::{Read, Seek, SeekFrom};
    if first.saturating_add(second) > MAX_SPILL {
        return Err(std::io::Error::other(format!(
            "spilled state of {} bytes is too large",
            first + second
        )));
    }
    let mut file = std::fs::File::from(fd);
    file.seek(SeekFrom::Start(0))?;
    let mut a = vec![0u8; first as usize];
    let mut b = vec![0u8; second as usize];
    file.read_exact(&mut a)?;
    file.read_exact(&mut b)?;
    Ok((a, b))
}

/// The fds that travel with a parked connection, in [`ConnKind`] order
/// (a spill memfd, when there is one, is added after them).
fn fds_of(parked: &Parked) -> Vec<BorrowedFd<'_>> {
    match &parked.conn {
        ConnParts::Tunnel { parts, .. } => vec![parts.client.as_fd(), parts.upstream.as_fd()],
        ConnParts::Echo { client, .. } => vec![client.as_fd()],
        ConnParts::Rpc(parts) => vec![parts.client.as_fd()],
        ConnParts::Http { client, .. } => vec![client.as_fd()],
    }
}

fn to_wire(state: &PipeState) -> PipeWire {
    PipeWire {
        pending: state.pending.clone(),
        ..flags_to_wire(state)
    }
}

/// A direction's flags, its bytes left out (they are spilled).
fn flags_to_wire(state: &PipeState) -> PipeWire {
    PipeWire {
        pending: Vec::new(),
        read_closed: state.read_closed,
        write_closed: state.write_closed,
    }
}

fn from_wire(wire: PipeWire) -> PipeState {
    PipeState {
        pending: wire.pending,
        read_closed: wire.read_closed,
        write_closed: wire.write_closed,
    }
}

/// Received states and fds → connections ready to run (registered with
/// this runtime, not yet polled).
fn rebuild_batch(conns: Vec<ConnState>, fds: Vec<OwnedFd>) -> std::io::Result<Vec<Parked>> {
    let mut fds = fds.into_iter();
    let mut out = Vec::with_capacity(conns.len());
    let socket = |fds: &mut std::vec::IntoIter<OwnedFd>| -> std::io::Result<TcpStream> {
        let fd = fds
            .next()
            .ok_or_else(|| std::io::Error::other("fewer fds than the batch describes"))?;
        // Already non-blocking: O_NONBLOCK lives on the open file
        // description, which the old generation set and we share.
        TcpStream::from_std(std::net::TcpStream::from(fd))
    };
    for state in conns {
        let conn = match state.kind {
            ConnKind::Tunnel {
                c2u,
                u2c,
                cluster,
                upstream,
            } => ConnParts::Tunnel {
                parts: Parts {
                    client: socket(&mut fds)?,
                    upstream: socket(&mut fds)?,
                    c2u: from_wire(c2u),
                    u2c: from_wire(u2c),
                },
                cluster: Arc::from(cluster),
                upstream,
            },
            ConnKind::SpilledTunnel {
                c2u,
                u2c,
                cluster,
                upstream,
                spilled,
            } => {
                let client = socket(&mut fds)?;
                let upstream_socket = socket(&mut fds)?;
                let fd = fds.next().ok_or_else(|| {
                    std::io::Error::other("a spilled connection state without its memfd")
                })?;
                let (c2u_pending, u2c_pending) = read_spill(fd, spilled)?;
                ConnParts::Tunnel {
                    parts: Parts {
                        client,
                        upstream: upstream_socket,
                        c2u: PipeState {
                            pending: c2u_pending,
                            ..from_wire(c2u)
                        },
                        u2c: PipeState {
                            pending: u2c_pending,
                            ..from_wire(u2c)
                        },
                    },
                    cluster: Arc::from(cluster),
                    upstream,
                }
            }
            ConnKind::Echo { pipe } => ConnParts::Echo {
                client: socket(&mut fds)?,
                pipe: from_wire(pipe),
            },
            ConnKind::Http {
                read_pending,
                spilled,
            } => {
                let client = socket(&mut fds)?;
                let pending = match spilled {
                    None => read_pending,
                    Some(len) => {
                        let fd = fds.next().ok_or_else(|| {
                            std::io::Error::other("a spilled connection state without its memfd")
                        })?;
                        read_spill(fd, (len, 0))?.0
                    }
                };
                ConnParts::Http { client, pending }
            }
            ConnKind::Rpc {
                codec,
                read_pending,
                write_pending,
                spilled,
                in_flight,
                read_closed,
            } => {
                let client = socket(&mut fds)?;
                let (read_pending, write_pending) = match spilled {
                    None => (read_pending, write_pending),
                    Some(lens) => {
                        let fd = fds.next().ok_or_else(|| {
                            std::io::Error::other("a spilled connection state without its memfd")
                        })?;
                        read_spill(fd, lens)?
                    }
                };
                let (codec, _): (CodecState, usize) = bincode::serde::decode_from_slice(
                    &codec,
                    bincode::config::standard().with_limit::<{ 1 << 20 }>(),
                )
                .map_err(|e| std::io::Error::other(format!("codec state: {e}")))?;
                ConnParts::Rpc(RpcParts {
                    client,
                    codec,
                    read_pending,
                    write_pending,
                    in_flight,
                    read_closed,
                    inbox: None,
                })
            }
        };
        out.push(Parked {
            id: ConnId(state.id),
            listener: Arc::from(state.listener),
            idle_timeout: state.idle_timeout,
            conn,
            history: History {
                started: UNIX_EPOCH + Duration::from_millis(state.started_unix_ms),
                received: state.received,
                sent: state.sent,
                moves: state.moves,
            },
        });
    }
    Ok(out)
}
