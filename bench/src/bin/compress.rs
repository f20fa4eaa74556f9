//! `compress`: the compression benchmark (see
//! `baton_bench::compress`). Parses the command line, runs, maps the
//! outcome to an exit code: 0 done, 64 usage, 1 a failed run.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = match baton_bench::compress::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 64 } else { 0 });
        }
    };
    match baton_bench::compress::run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("compress: {e}");
            ExitCode::FAILURE
        }
    }
}
