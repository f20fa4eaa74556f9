//! `balance`: the upstream-management benchmark (see
//! `baton_bench::balance`). Parses the command line, runs, maps the
//! outcome to an exit code: 0 done, 64 usage, 1 a failed run.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = match baton_bench::balance::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 64 } else { 0 });
        }
    };
    match baton_bench::balance::run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("balance: {e}");
            ExitCode::FAILURE
        }
    }
}
