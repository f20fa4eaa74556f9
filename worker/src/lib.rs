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
//! # Layout
//!
//! * [`cli`] — the command line (`baton-worker`, and `baton` as a worker);
//! * [`codec`] — pure RPC codecs (Bolt, Dubbo, RocketMQ): frames, ids, hijack;
//! * [`ctrl`] — the session with the supervisor;
//! * [`serve`] — [`serve::Server`]: listeners, accept loops, drain;
//! * [`conn`] — connection tasks and the registry that pauses them;
//! * [`fds`] — the fd budget: connection limits from `RLIMIT_NOFILE`;
//! * [`handoff`] — moving live connections to the next generation;
//! * [`metrics`] — counters, sent to the supervisor every heartbeat;
//! * [`access_log`] — one line per connection, off the data path;
//! * [`http`] — HTTP/1.1 proxying: routes, keep-alive pools, streaming;
//! * [`rpc`] — Bolt, Dubbo, RocketMQ proxying: routing, multiplexed
//!   upstream pools, write migration;
//! * [`tunnel`] — the pausable byte pump (L4 proxy and the echo built-in);
//! * [`upstream`] — clusters: round robin, connect with fall-through.

pub mod cli;
pub mod codec;
pub mod conn;
pub mod ctrl;
pub mod fds;
pub mod handoff;
pub mod http;
pub mod io;
pub mod l4;
pub mod lifecycle;
pub mod rpc;
pub mod serve;
pub mod telemetry;
pub mod upstream;

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
    init_logging();
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
            ctrl::WorkerError::Ipc(baton_ipc::IpcError::Io {
                op: "register ctrl fd",
                source: e,
            })
        })?;
        ctrl::run(ctrl).await
    });
    // Connection tasks may still hold sockets; do not wait for them.
    runtime.shutdown_background();
    match result {
        Ok(ctrl::Ended::Drained | ctrl::Ended::HandedOff) => ExitCode::SUCCESS,
        Ok(ctrl::Ended::Orphaned) => ExitCode::FAILURE,
        Err(ctrl::WorkerError::Config(_)) => ExitCode::from(EXIT_CONFIG),
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
pub fn check(source: &str, text: &str) -> Result<baton_config::Config, String> {
    let config = baton_config::parse(source, text).map_err(|e| e.to_string())?;
    http::verify(&config).map_err(|e| format!("{source}: {e}"))?;
    Ok(config)
}

fn init_logging() {
    let filter = std::env::var(baton_ipc::env::LOG)
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".into());
    let filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}
