//! `loadgen`: the HTTP/1.1 keep-alive load generator of the benchmark
//! suite (see `baton_bench::loadgen`). Parses the command line, runs,
//! prints the one result line on stdout and the first few errors on
//! stderr; exit 0 when it ran (whatever it counted), 64 usage, 1 when it
//! could not run.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = match baton_bench::loadgen::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 64 } else { 0 });
        }
    };
    let finished = match baton_bench::loadgen::run(&cli.config()) {
        Ok(finished) => finished,
        Err(e) => {
            eprintln!("loadgen: {e}");
            return ExitCode::FAILURE;
        }
    };
    for error in &finished.quoted_errors {
        eprintln!("loadgen: error: {error}");
    }
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{}", finished.report).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadgen: print the result: {e}");
            ExitCode::FAILURE
        }
    }
}
