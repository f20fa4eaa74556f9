//! The worker's command line, shared by the two executables that can be a
//! worker: `baton-worker` itself, and `baton`, which carries the worker so
//! that a bare `cargo run --bin baton` serves (the supervisor runs it with
//! `BATON_ROLE=worker`, see [`baton_ipc::env::ROLE`]).
//!
//! * no subcommand — serve as one generation, over the ctrl fd inherited
//!   from the supervisor ([`crate::run_inherited`]);
//! * `check FILE|-` — validate a config as a new generation would (what
//!   `baton check` runs).

use std::ffi::OsString;
use std::io::Read;
use std::path::Path;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "baton-worker",
    version,
    about = "baton's data-plane worker (started by `baton run`)"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Validate a config file as a new generation would; `-` reads stdin.
    Check {
        file: std::path::PathBuf,
        /// The name to use in error messages (default: the path).
        #[arg(long)]
        source_name: Option<String>,
    },
}

/// Parses `args` (the program name first) and runs the worker or the check.
pub fn main(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 64 } else { 0 });
        }
    };
    match cli.command {
        None => crate::run_inherited(),
        Some(Command::Check { file, source_name }) => check(&file, source_name),
    }
}

#[allow(clippy::print_stdout)]
fn check(file: &Path, source_name: Option<String>) -> ExitCode {
    let read = if file.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).map(|_| text)
    } else {
        std::fs::read_to_string(file)
    };
    let text = match read {
        Ok(text) => text,
        Err(e) => {
            eprintln!("read config {}: {e}", file.display());
            return ExitCode::from(crate::EXIT_CONFIG);
        }
    };
    let source = source_name.unwrap_or_else(|| file.display().to_string());
    match crate::check(&source, &text) {
        Ok(config) => {
            println!(
                "{source}: ok ({} listeners, {} clusters)",
                config.listeners.len(),
                config.clusters.len()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(crate::EXIT_CONFIG)
        }
    }
}
