//! `baton-worker`: one generation of baton's data plane.
//!
//! A worker is spawned by the supervisor (`baton run`) with one end of a
//! SOCK_SEQPACKET socketpair inherited as the fd in `BATON_IPC_FD`. It
//! receives the config text and the listening sockets over it, validates
//! the whole config, accepts and proxies until told to drain, and never
//! outlives its supervisor: channel EOF ends it, and `PR_SET_PDEATHSIG`
//! kills it if the supervisor dies without closing the channel.
//!
//! `baton-worker check FILE` validates a config the way a new generation
//! would (`baton check` runs it), so new config syntax ships with the
//! worker and never needs a supervisor upgrade.
//!
//! # Layers
//!
//! The crate is layered, and the folder tree shows it. Each layer depends
//! only on the layers below it — never on its own callers — so no module
//! imports one that imports it back (`.ci/module-cycles worker/src`
//! checks it in CI; doc links count as imports there too):
//!
//! ```text
//!  6  generation/   serve (Server: build, accept loops, drain), ctrl (the supervisor session)
//! 4½  udp           udp listeners: datagrams relayed by flow (conn's Ctx and counters; flows handed over by migrate::flows)
//!  5  migrate/      old (hand_off), new (take_over), schema (handoff versions), wire, forward, health, hooks
//!  4  conn/         ctx (what tasks share), registry (pause slots), state (Parked; kinds!), task
//!  3  http/  rpc/   per-protocol proxies: sessions, routes, upstream pools and clients; live, parked
//! 2½  filter/       chains: L4 network filters (accept, bytes), L7 stream filters (HTTP, RPC)
//!  2  l4/  upstream/  byte pumps (pipe, tunnel, echo, tap; live, parked); clusters, balancers (connect with fall-through), health, circuit breakers
//!  1  io  kind  lifecycle  fds  telemetry/   pump vocabulary; a connection kind's forms; Order and Stats; fd budget; meters, log
//!  0  codec/        sans-I/O: the RPC codecs and HTTP/1.1 framing (codec::http1)
//! ```
//!
//! * [`codec`] — pure codecs (Bolt, Dubbo, RocketMQ, Tars) and
//!   [`codec::http1`], HTTP/1.1 message framing: bytes in, frames out, no
//!   sockets or clocks; each decoder bounded and fuzzed;
//! * [`io`] — how a pump's run ends ([`io::Outcome`]), the idle timer,
//!   the boxed client stream types; [`kind`] — the traits a kind of
//!   connection implements for its running, parked and wire forms
//!   ([`kind::Live`], [`kind::Resume`], [`kind::Kind`], [`kind::Encode`],
//!   [`kind::WireForm`]);
//!   [`lifecycle`] — the close [`lifecycle::Order`],
//!   connection counters, drain report; [`fds`] — the fd budget;
//!   [`telemetry`] — meters, their snapshot for the supervisor, the access
//!   log;
//! * [`l4`] — the pausable byte pumps (a [`l4::pipe::Pipe`] per direction,
//!   splice for bulk streams; [`l4::tunnel::Tunnel`] and the echo);
//!   [`upstream`] — clusters at run time and their balancers
//!   ([`upstream::lb::Balancer`], chosen by a cluster's `lb`), over the
//!   endpoints their health leaves available ([`upstream::health`]:
//!   active checks, outlier detection, panic mode), and their circuit
//!   breakers ([`upstream::breaker::Breakers`]: limits taken as permits,
//!   overflow answered at once);
//! * [`filter`] — the filter chains: L4 network filters (refuse on accept;
//!   see, rewrite or close on bytes, through an [`l4::tap::Tap`]) and L7
//!   stream filters for HTTP and RPC (continue, modify, answer locally);
//!   which connections move and which drain when filters keep state;
//! * [`http`] — HTTP/1.1 and HTTP/2 proxying: routes, keep-alive and
//!   HTTP/2 upstream pools, TLS; [`rpc`] — the multiplexed RPC protocols:
//!   routing, multiplexed upstream pools, RocketMQ pinning;
//! * [`udp`] — `protocol = "udp"` listeners: a flow per client address
//!   (a socket connected to an endpoint the balancer picks), replies sent
//!   back from the listening socket, closed when idle; flows count as the
//!   generation's connections and move at an upgrade with their sockets
//!   (handoff schema 6, [`migrate::flows`]);
//! * [`conn`] — one task per connection, whatever its kind, pausable into
//!   a [`conn::state::Parked`] form and rebuilt from one; the registry of
//!   kinds (each defines its parked and wire forms in its own module, see
//!   [`kind`]; the `conn` module doc has the checklist for a new one);
//! * [`migrate`] — moving parked connections to the next generation over
//!   the handoff channel, and forwarding the responses that arrive late;
//! * [`generation`] — the data plane of one generation and its session
//!   with the supervisor; [`cli`] and this root sit on top (the binaries'
//!   entry points).
//!
//! # The path of a request
//!
//! **An L4 connection.** [`generation::serve`]'s accept loop takes a
//! `max_connections` permit and the connection's units of the fd budget,
//! accepts, and hands the socket to `conn::task::spawn`. The task runs the
//! listener's L4 filters' accept stage ([`filter::network::NetworkChain`]:
//! a filter may refuse), connects to the listener's cluster
//! ([`upstream::cluster::Upstream::connect_for`]: the cluster's balancer
//! picks, by the client's IP for a hashing policy, a failed connect falls
//! through to the next endpoint; `least_request` counts the tunnel), then runs
//! an [`l4::tunnel::Tunnel`] — a [`l4::pipe::Pipe`] each way, counted in the
//! listener's [`telemetry::meters::ByteMeter`] — until both directions end,
//! it idles out, or it is paused or closed; the end is one access log line.
//!
//! **An HTTP/1.1 request.** The task (on an `http` listener) runs an
//! [`http::session_h1::H1Conn`]; it reads a head with [`codec::http1`] and
//! hands the request to [`http::exchange`], the one pipeline for both
//! client and both cluster protocols: it routes the request
//! ([`http::route`]), answers it itself or applies the request transforms
//! ([`http::transform`]) and forwards it with its timeout and retries: each
//! attempt asks the cluster's balancer for an endpoint (the head is its
//! [`upstream::lb::RequestKeys`]), then uses a connection to that endpoint
//! from [`http::h1_pool`] (or a new one, [`http::connect`], plain or TLS)
//! or a stream of [`http::client_h2`],
//! streams the body both ways and counts the status in
//! [`telemetry::meters::HttpMeters`]. A client that opens with the HTTP/2
//! preface (or picks `h2` by ALPN) becomes an
//! [`http::session_h2::H2Conn`] instead, one task per stream, each stream
//! through the same exchange.
//!
//! **An RPC request.** The task runs an [`rpc::downstream::Downstream`]: it
//! decodes the client's frames ([`codec::AnyCodec`]), answers heartbeats,
//! routes each request by its attributes ([`rpc::route`]) and sends it
//! through the cluster's [`rpc::pool::Pool`] (to the endpoint the balancer
//! picks for those attributes), which rewrites the request id
//! into its upstream connection's id space; the response (or the protocol's
//! own error, on timeout or upstream loss) comes back to the connection's
//! inbox ([`rpc::Outbound`]) with the client's id, and is written between
//! frames.
//!
//! **A handoff.** [`generation::ctrl`] receives `HandoffTo` and runs
//! [`migrate::old::hand_off`] with its `Server` as the [`migrate::Host`]:
//! first it sends its endpoints' health, which the new generation applies
//! before it accepts ([`migrate::health`]); once the new generation is accepting, the old one stops, asks connections
//! to pause a wave at a time ([`conn::registry::Registry::pause_some`]); each
//! task stops between two pump steps and answers with a
//! [`conn::state::Parked`], which [`migrate::wire`] describes as a
//! [`migrate::schema::ConnState`] plus fds, written in the handoff schema
//! both generations speak. On the other side
//! [`migrate::new::take_over`] rebuilds the batch, acknowledges it, and
//! starts each connection with [`conn::task::adopt`]. Responses to requests
//! a moved RPC connection had in flight arrive in the old generation and
//! are forwarded ([`migrate::forward`]) to the new one, which writes them to
//! the client.
//!
//! # Visibility
//!
//! `pub(crate)` by default: `unreachable_pub` warns (CI denies warnings),
//! so an item is public only when something outside the crate uses it —
//! the binary ([`cli`]), the fuzz targets and codec tests ([`codec`],
//! `http::fuzzing`), and the component tests in `worker/tests/`
//! (`conn::ctx`, `generation::serve`, `migrate::{hooks, new, old,
//! schema}`; `migrate::health` for the error those return).
#![warn(unreachable_pub)]

pub mod cli;
pub mod codec;
pub mod conn;
pub(crate) mod fds;
pub mod filter;
pub mod generation;
pub mod http;
pub(crate) mod io;
pub(crate) mod kind;
pub(crate) mod l4;
pub(crate) mod lifecycle;
pub mod migrate;
pub(crate) mod rpc;
pub(crate) mod telemetry;
pub mod udp;
pub(crate) mod upstream;

use std::process::ExitCode;

/// Exit code for a config the worker refuses (`EX_CONFIG`).
pub const EXIT_CONFIG: u8 = 78;

/// Runs a worker generation over the ctrl fd inherited from the supervisor.
pub fn run_inherited() -> ExitCode {
    // Workers are executed through `/proc/<supervisor>/fd/<n>` (the binary
    // the supervisor holds open), which would make the process name "4":
    // name it for ps, top and pgrep.
    let _ = rustix::thread::set_name(c"baton-worker");
    // Backstop for "never outlive the supervisor": channel EOF is the
    // normal signal, this covers a supervisor killed while we are blocked.
    if let Err(e) =
        rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
    {
        tracing::warn!(error = %e, "PR_SET_PDEATHSIG failed");
    }
    let set_filter = init_logging();
    let fd = match baton_ipc::fd::adopt_inherited(baton_ipc::env::IPC_FD) {
        Ok(fd) => fd,
        Err(e) => {
            tracing::error!(error = %e, "cannot adopt the ctrl channel");
            return ExitCode::FAILURE;
        }
    };
    match fds::raise_open_file_limit() {
        Ok((before, after)) if before != after => {
            tracing::info!(
                ?before,
                ?after,
                "raised the open-file limit to the hard limit"
            );
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "could not raise the open-file limit"),
    }
    presize_fd_table(&fd);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the runtime");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let ctrl = baton_ipc::Channel::from_owned_fd(fd).map_err(|e| {
            generation::ctrl::WorkerError::Ipc(baton_ipc::IpcError::Io {
                op: "register ctrl fd",
                source: e,
            })
        })?;
        generation::ctrl::run(ctrl, set_filter).await
    });
    // Connection tasks may still hold sockets; do not wait for them.
    runtime.shutdown_background();
    match result {
        Ok(generation::ctrl::Ended::Drained | generation::ctrl::Ended::HandedOff) => {
            ExitCode::SUCCESS
        }
        Ok(generation::ctrl::Ended::Orphaned) => ExitCode::FAILURE,
        Err(generation::ctrl::WorkerError::Config(_)) => ExitCode::from(EXIT_CONFIG),
        Err(e) => {
            tracing::error!(error = %e, "worker failed");
            ExitCode::FAILURE
        }
    }
}

/// Grows the fd table to its final size now, while the process has one
/// thread.
///
/// Why: in a multi-threaded process the kernel makes every growth of the
/// fd table wait for an RCU grace period (`expand_files` →
/// `synchronize_rcu`), 6–23 ms each here. A worker adopting thousands of
/// connections in a handoff, or accepting its 1,025th, would stall that
/// long at every doubling (measured: half of a 5,000-connection migration).
/// In a single-threaded process the growth is cheap, and a table never
/// shrinks. Up to the fd limit, capped at 65,536 entries (512 KiB).
fn presize_fd_table(any: &std::os::fd::OwnedFd) {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(65_536)
        .min(65_536);
    let Ok(top) = i32::try_from(limit.saturating_sub(1)) else {
        return;
    };
    // Duplicated to the highest number allowed, then closed at once.
    if let Err(e) = rustix::io::fcntl_dupfd_cloexec(any, top) {
        tracing::debug!(error = %e, top, "could not presize the fd table");
    }
}

/// Validates config `text` as a new generation would: the text, then
/// what it names (certificates, CA bundles) and compiles (route regexes).
pub fn check(source: &str, text: &str) -> Result<baton_config::Config, CheckError> {
    let config = baton_config::parse(source, text)?;
    http::verify(&config).map_err(|error| CheckError::Setup {
        source_name: source.to_string(),
        error,
    })?;
    Ok(config)
}

/// Why [`check`] refused a config.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The text: its syntax, a key or a value.
    #[error(transparent)]
    Config(#[from] baton_config::ConfigError),
    /// What it names or compiles (a certificate, a CA bundle, a regex).
    #[error("{source_name}: {error}")]
    Setup {
        source_name: String,
        #[source]
        error: http::error::SetupError,
    },
}

/// Installs the subscriber; returns how to replace its filter later
/// (`SetLogLevel`).
fn init_logging() -> generation::ctrl::SetFilter {
    let filter = std::env::var(baton_ipc::env::LOG)
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".into());
    let filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .with_filter_reloading();
    let handle = builder.reload_handle();
    builder.init();
    Box::new(move |filter| {
        let filter = tracing_subscriber::EnvFilter::try_new(filter)?;
        Ok(handle.reload(filter)?)
    })
}
