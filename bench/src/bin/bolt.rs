//! `bolt`: the Bolt RPC benchmark (see `baton_bench::bolt`). Parses the
//! command line, runs, maps the outcome to an exit code: 0 clean, 64
//! usage, 1 a failed run or any failed request.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = match baton_bench::bolt::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 64 } else { 0 });
        }
    };
    match baton_bench::bolt::run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bolt: {e}");
            ExitCode::FAILURE
        }
    }
}
