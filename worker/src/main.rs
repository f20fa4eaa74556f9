//! `baton-worker`: started by `baton run`, or `baton-worker check FILE`.
//! Everything is in the library ([`baton_worker::cli`]).

fn main() -> std::process::ExitCode {
    baton_worker::cli::main(std::env::args_os())
}
