//! The command line of `loadgen` (the benchmark suite spawns it with
//! exactly these options; see the module docs of [`crate::loadgen`]).

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;

use crate::loadgen::{Config, Mode};

/// HTTP/1.1 keep-alive load generator: closed loop, or open loop at a
/// fixed rate. Prints one line of `key=value` pairs on stdout.
#[derive(Debug, Parser)]
#[command(name = "loadgen", args_override_self = true)]
pub struct Cli {
    /// Where to connect (no name resolution: an address and a port).
    #[arg(long)]
    pub addr: SocketAddr,

    /// Keep-alive connections, each with one request in flight.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=65_535))]
    pub connections: u32,

    /// Open loop at this many requests/s in total, spread evenly over the
    /// connections. Without it: closed loop, as fast as responses come.
    #[arg(long, value_parser = parse_rate)]
    pub rate: Option<f64>,

    /// The measurement window, in milliseconds.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub duration_ms: u64,

    /// Traffic before the window, not counted, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub warmup_ms: u64,

    /// The `Host` header of every request.
    #[arg(long, default_value = "bench", value_parser = parse_host)]
    pub host: String,

    /// The request target (origin form).
    #[arg(long, default_value = "/", value_parser = parse_path)]
    pub path: String,

    /// An `Accept-Encoding` header for every request (visible ASCII, no
    /// spaces: `gzip` or `br,gzip`).
    #[arg(long, value_parser = parse_token_list)]
    pub accept_encoding: Option<String>,

    /// A request without its whole response after this long is an error;
    /// also the bound of each connect, in milliseconds.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout_ms: u64,
}

impl Cli {
    pub fn config(&self) -> Config {
        Config {
            addr: self.addr,
            connections: self.connections,
            mode: match self.rate {
                Some(rate) => Mode::Open { rate },
                None => Mode::Closed,
            },
            warmup: Duration::from_millis(self.warmup_ms),
            duration: Duration::from_millis(self.duration_ms),
            timeout: Duration::from_millis(self.timeout_ms),
            host: self.host.clone(),
            path: self.path.clone(),
            accept_encoding: self.accept_encoding.clone(),
        }
    }
}

fn parse_rate(s: &str) -> Result<f64, String> {
    let rate: f64 = s.parse().map_err(|e| format!("{s:?}: {e}"))?;
    if rate.is_finite() && rate > 0.0 {
        Ok(rate)
    } else {
        Err(format!("{s:?}: must be a positive number of requests/s"))
    }
}

/// Visible ASCII only: the value goes into the request as it is.
fn visible(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic())
}

fn parse_host(s: &str) -> Result<String, String> {
    if visible(s) {
        Ok(s.to_string())
    } else {
        Err(format!("{s:?}: not a host (visible ASCII, no spaces)"))
    }
}

fn parse_token_list(s: &str) -> Result<String, String> {
    if visible(s) {
        Ok(s.to_string())
    } else {
        Err(format!("{s:?}: visible ASCII without spaces, please"))
    }
}

fn parse_path(s: &str) -> Result<String, String> {
    if visible(s) && s.starts_with('/') {
        Ok(s.to_string())
    } else {
        Err(format!(
            "{s:?}: not a path (starts with '/', visible ASCII, no spaces)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_suites_command_lines_parse() {
        let cli = Cli::try_parse_from([
            "loadgen",
            "--addr",
            "127.0.0.1:8080",
            "--connections",
            "50",
            "--rate",
            "26000",
            "--duration-ms",
            "5000",
            "--warmup-ms",
            "1000",
        ])
        .unwrap();
        let c = cli.config();
        assert_eq!(c.mode, Mode::Open { rate: 26000.0 });
        assert_eq!((c.connections, c.warmup), (50, Duration::from_secs(1)));
        assert_eq!((c.host.as_str(), c.path.as_str()), ("bench", "/"));
        assert_eq!(c.timeout, Duration::from_secs(2));

        let cli = Cli::try_parse_from([
            "loadgen",
            "--addr=127.0.0.1:1",
            "--connections=64",
            "--duration-ms=100",
            "--host=example.com",
            "--path=/a?b=c",
            "--timeout-ms=500",
        ])
        .unwrap();
        assert_eq!(cli.config().mode, Mode::Closed);
    }

    #[test]
    fn bad_values_are_usage_errors() {
        let base = ["loadgen", "--addr=127.0.0.1:1", "--duration-ms=1"];
        for bad in [
            "--connections=0",
            "--rate=0",
            "--rate=-5",
            "--rate=inf",
            "--host=a b",
            "--path=relative",
            "--timeout-ms=0",
        ] {
            let mut args = base.to_vec();
            if !bad.starts_with("--connections") {
                args.push("--connections=1");
            }
            args.push(bad);
            assert!(Cli::try_parse_from(&args).is_err(), "{bad} accepted");
        }
        assert!(
            Cli::try_parse_from(["loadgen", "--addr=localhost:80", "--connections=1"]).is_err()
        );
    }
}
