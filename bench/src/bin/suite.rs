//! `suite`: the benchmark suite of issue 8 — baton against HAProxy, nginx
//! and a direct connection (see `baton_bench::suite`; `bash bench/run`
//! builds and runs it). Parses the command line, runs, maps the outcome
//! to an exit code: 0 clean, 64 usage, 1 a failed run, a failed request,
//! a missing figure (or, with --smoke, a client disturbed by an upgrade).

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = match baton_bench::suite::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 64 } else { 0 });
        }
    };
    match baton_bench::suite::run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("suite: {e}");
            ExitCode::FAILURE
        }
    }
}
