//! `baton`: command line. Parses arguments, runs, maps errors to exit
//! codes (64 usage, 78 config, 69 supervisor unreachable, 1 runtime: a
//! refused, rolled-back or failed upgrade, an error reply).

use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use baton_supervisor::control::proto::{Outcome, Reply, Request};
use baton_supervisor::control::{self, ClientError, render};
use baton_supervisor::source::ConfigSource;
use clap::{Args, Parser, Subcommand};

/// `EX_USAGE`: a command line that makes no sense.
const EX_USAGE: u8 = 64;
/// `EX_UNAVAILABLE`: no supervisor at the control socket.
const EX_UNAVAILABLE: u8 = 69;
/// `EX_CONFIG`: the config named with `-c` cannot be used.
const EX_CONFIG: u8 = 78;

#[derive(Parser)]
#[command(
    name = "baton",
    version,
    about = "A proxy whose workers are upgraded while every client stays connected"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the supervisor in the foreground (without -c: the embedded
    /// default config, an echo service on 127.0.0.1:7000).
    Run {
        #[arg(short, long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Validate a config file (without -c: the embedded default).
    Check {
        #[arg(short, long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Replace the running worker with a new binary and/or config; waits
    /// until the upgrade has succeeded, rolled back, failed or been refused.
    Upgrade {
        /// The new worker binary (default: the config's worker binary,
        /// else baton-worker beside baton).
        #[arg(long, value_name = "PATH")]
        binary: Option<PathBuf>,
        /// The new config (default: the current config file, re-read). Its
        /// supervisor.control_socket also says where the supervisor is,
        /// unless --control-socket is given.
        #[arg(short, long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// The control socket (default: $BATON_CONTROL_SOCKET, else the
        /// config's supervisor.control_socket, else /run/baton/control.sock).
        #[arg(long, value_name = "PATH")]
        control_socket: Option<PathBuf>,
    },
    /// Go back to the previous generation's binary and config.
    Rollback {
        #[command(flatten)]
        reach: Reach,
    },
    /// Show generations, listeners and the last upgrade.
    Status {
        /// Print the supervisor's reply as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        reach: Reach,
    },
    /// Stop gracefully: drain the workers within the deadline, then exit.
    Stop {
        #[command(flatten)]
        reach: Reach,
    },
    /// Send a network namespace's TCP traffic through baton's outbound and
    /// inbound listeners (nftables rules, table `inet baton`), or take
    /// them away.
    Intercept {
        #[command(subcommand)]
        action: InterceptAction,
    },
}

#[derive(Subcommand)]
enum InterceptAction {
    /// Write the rules (replacing any installed before).
    Install {
        #[command(flatten)]
        plan: baton_supervisor::intercept::Plan,
        #[command(flatten)]
        how: InterceptHow,
    },
    /// Delete the rules; nothing installed is not an error.
    Remove {
        #[command(flatten)]
        plan: baton_supervisor::intercept::Plan,
        #[command(flatten)]
        how: InterceptHow,
    },
}

#[derive(Args)]
struct InterceptHow {
    /// Run in this network namespace (`ip netns exec NAME`).
    #[arg(long, value_name = "NAME")]
    netns: Option<String>,
    /// Print the commands instead of running them.
    #[arg(long)]
    dry_run: bool,
}

/// Where the running supervisor's control socket is.
#[derive(Args)]
struct Reach {
    /// The control socket (default: $BATON_CONTROL_SOCKET, else the
    /// config's supervisor.control_socket, else /run/baton/control.sock).
    #[arg(long, value_name = "PATH")]
    control_socket: Option<PathBuf>,
    /// A config file whose supervisor.control_socket to use.
    #[arg(short, long, value_name = "FILE")]
    config: Option<PathBuf>,
}

fn main() -> ExitCode {
    // Run by a supervisor as a worker (no `baton-worker` beside it): be
    // one, before anything else touches the inherited fds.
    if std::env::var_os(baton_ipc::env::ROLE).is_some_and(|r| r == baton_ipc::env::ROLE_WORKER) {
        return baton_worker::cli::main(std::env::args_os());
    }
    // Whatever our parent left open stays with us, never reaches a worker.
    if let Err(e) = baton_ipc::fd::cloexec_inherited() {
        eprintln!("baton: mark inherited fds close-on-exec: {e}");
        return ExitCode::FAILURE;
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 64 } else { 0 });
        }
    };
    match cli.command {
        Command::Run { config } => {
            match baton_supervisor::supervise::run(ConfigSource::from_arg(config.as_deref())) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    // The subscriber may not be up yet (a config error), so
                    // the reason goes to stderr directly as well.
                    tracing::error!(error = %e, "baton run failed");
                    eprintln!("baton: {e}");
                    ExitCode::from(e.exit_code())
                }
            }
        }
        Command::Check { config } => ExitCode::from(baton_supervisor::check::check(
            &ConfigSource::from_arg(config.as_deref()),
        )),
        Command::Upgrade {
            binary,
            config,
            control_socket,
        } => {
            // The supervisor's working directory is not ours: send paths
            // it can use as they are.
            let (binary, config) = match (absolute(binary.as_deref()), absolute(config.as_deref()))
            {
                (Ok(binary), Ok(config)) => (binary, config),
                (Err(e), _) | (_, Err(e)) => {
                    eprintln!("baton: {e}");
                    return ExitCode::from(EX_USAGE);
                }
            };
            // The binary travels open: the supervisor runs the file we
            // could read now. One we cannot open goes as a path, for the
            // supervisor to try and refuse with its reason.
            let file = binary
                .as_deref()
                .and_then(|path| std::fs::File::open(path).ok());
            let request = Request::Upgrade {
                binary,
                config: config.clone(),
                binary_attached: file.is_some(),
            };
            let fds: Vec<_> = file.iter().map(AsFd::as_fd).collect();
            exit(ask(control_socket.as_deref(), config.as_deref(), &request, &fds).map(upgraded))
        }
        Command::Rollback { reach } => exit(reach.ask(&Request::Rollback).map(upgraded)),
        Command::Status { json, reach } => {
            exit(reach.ask(&Request::Status).map(|reply| status(reply, json)))
        }
        Command::Stop { reach } => exit(reach.ask(&Request::Stop).map(stopped)),
        Command::Intercept { action } => intercept(action),
    }
}

fn exit(code: Result<u8, u8>) -> ExitCode {
    ExitCode::from(code.unwrap_or_else(|code| code))
}

/// `path` made absolute against our working directory.
fn absolute(path: Option<&Path>) -> Result<Option<PathBuf>, String> {
    path.map(|p| std::path::absolute(p).map_err(|e| format!("resolve {}: {e}", p.display())))
        .transpose()
}

impl Reach {
    fn ask(&self, request: &Request) -> Result<Reply, u8> {
        ask(
            self.control_socket.as_deref(),
            self.config.as_deref(),
            request,
            &[],
        )
    }
}

/// Sends `request` to the supervisor and waits for the reply; `Err` is the
/// exit code, the reason already printed.
fn ask(
    flag: Option<&Path>,
    config: Option<&Path>,
    request: &Request,
    fds: &[BorrowedFd<'_>],
) -> Result<Reply, u8> {
    // Read here, not in the library: main is the one place that looks at
    // the environment. Set but empty counts as unset, as in most shells'
    // conventions (`X=${X:-}`).
    let env = std::env::var_os(control::SOCKET_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    let path = control::socket_path(flag.or(env.as_deref()), config).map_err(|e| {
        eprintln!("baton: find the control socket: {e}");
        EX_CONFIG
    })?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("baton: start the async runtime: {e}");
            1
        })?;
    runtime
        .block_on(control::call_attaching(&path, request, fds))
        .map_err(|e| {
            eprintln!("baton: {e}");
            if matches!(e, ClientError::Unreachable { .. }) {
                EX_UNAVAILABLE
            } else {
                1
            }
        })
}

#[allow(clippy::print_stdout)]
fn upgraded(reply: Reply) -> u8 {
    match reply {
        Reply::Upgrade(report) if report.outcome == Outcome::Succeeded => {
            println!("{}", render::report_line(&report));
            0
        }
        Reply::Upgrade(report) => {
            eprintln!("baton: {}", render::report_line(&report));
            1
        }
        other => unexpected(other),
    }
}

#[allow(clippy::print_stdout)]
fn status(reply: Reply, json: bool) -> u8 {
    let Reply::Status(status) = reply else {
        return unexpected(reply);
    };
    if !json {
        print!("{}", render::status_text(&status));
        return 0;
    }
    match serde_json::to_string_pretty(&status) {
        Ok(text) => {
            println!("{text}");
            0
        }
        Err(e) => {
            eprintln!("baton: print the status as JSON: {e}");
            1
        }
    }
}

#[allow(clippy::print_stdout)]
fn stopped(reply: Reply) -> u8 {
    match reply {
        Reply::Stopped => {
            println!("stopped");
            0
        }
        other => unexpected(other),
    }
}

/// An error reply, or one that does not answer the request (a supervisor
/// of another version, or a bug): the reason on stderr, exit 1.
fn unexpected(reply: Reply) -> u8 {
    match reply {
        Reply::Error { reason } => eprintln!("baton: {reason}"),
        other => eprintln!("baton: unexpected reply from the supervisor: {other:?}"),
    }
    1
}

/// `baton intercept install|remove`; `--dry-run` prints the commands.
#[allow(clippy::print_stdout)]
fn intercept(action: InterceptAction) -> ExitCode {
    use baton_supervisor::intercept::{self, PlanError, Target};
    let (install, plan, how) = match action {
        InterceptAction::Install { plan, how } => (true, plan, how),
        InterceptAction::Remove { plan, how } => (false, plan, how),
    };
    let target = Target { netns: how.netns };
    let result = if how.dry_run {
        let described = if install {
            plan.nft_install()
                .map(|script| intercept::describe(&script, &plan.ip_install()))
        } else {
            Ok(intercept::describe(
                &intercept::nft_remove(),
                &plan.ip_remove(),
            ))
        };
        described.map(|text| print!("{text}"))
    } else if install {
        intercept::install(&plan, &target)
    } else {
        intercept::remove(&plan, &target)
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e @ PlanError::Invalid(_)) => {
            eprintln!("baton intercept: {e}");
            ExitCode::from(EX_USAGE)
        }
        Err(e) => {
            eprintln!("baton intercept: {e}");
            ExitCode::FAILURE
        }
    }
}
