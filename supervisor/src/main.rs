//! `baton`: command line. Parses arguments, runs, maps errors to exit
//! codes (64 usage, 78 config, 1 runtime).

use std::path::PathBuf;
use std::process::ExitCode;

use baton_supervisor::source::ConfigSource;
use clap::{Parser, Subcommand};

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
}

fn main() -> ExitCode {
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
    }
}
