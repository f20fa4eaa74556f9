//! `baton-worker`: started by `baton run`, or `baton-worker check FILE`.

use std::io::Read;
use std::path::PathBuf;
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
        file: PathBuf,
        /// The name to use in error messages (default: the path).
        #[arg(long)]
        source_name: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        None => baton_worker::run_inherited(),
        Some(Command::Check { file, source_name }) => check(&file, source_name),
    }
}

#[allow(clippy::print_stdout)]
fn check(file: &PathBuf, source_name: Option<String>) -> ExitCode {
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
            return ExitCode::from(baton_worker::EXIT_CONFIG);
        }
    };
    let source = source_name.unwrap_or_else(|| file.display().to_string());
    match baton_worker::check(&source, &text) {
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
            ExitCode::from(baton_worker::EXIT_CONFIG)
        }
    }
}
