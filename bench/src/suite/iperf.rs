//! Bulk L4 throughput with iperf3: one TCP stream, client to server,
//! through the L4 proxy (or straight to the server).
//!
//! `iperf3 -c <addr> -p <port> -t <window> -O 1 -J`: the first second
//! (slow start, buffers growing) is left out of the figures (`-O`), the
//! rest is reported as JSON, of which the bench reads
//! `end.sum_received.bits_per_second` — what the server received, so
//! bytes still in the proxy's buffers at the end do not count. iperf3
//! opens a control connection and then the data connection to the same
//! port: both go through the proxy. An `"error"` in the JSON (or no
//! figure) fails the run.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use tokio::process::Command;

use crate::error::{Result, failed};
use crate::suite::httpload::finish;

/// Seconds left out at the start of each test (`-O`).
const OMIT_S: u32 = 1;

/// The number after `"key":` at or after `from` in a JSON text (iperf3
/// writes a tab after the colon), and where it ends.
fn number_after(json: &str, key: &str, from: usize) -> Option<(f64, usize)> {
    let quoted = format!("\"{key}\"");
    let at = from + json.get(from..)?.find(&quoted)? + quoted.len();
    let rest = json[at..].trim_start().strip_prefix(':')?.trim_start();
    let len = rest
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E')))
        .unwrap_or(rest.len());
    let start = json.len() - rest.len();
    Some((rest[..len].parse().ok()?, start + len))
}

/// The string after `"key":`, if it is one.
fn string_after(json: &str, key: &str) -> Option<String> {
    let quoted = format!("\"{key}\"");
    let at = json.find(&quoted)? + quoted.len();
    let rest = json[at..].trim_start().strip_prefix(':')?.trim_start();
    let rest = rest.strip_prefix('"')?;
    Some(rest[..rest.find('"')?].to_string())
}

/// `end.sum_received.bits_per_second` of iperf3's `-J` output, in
/// Gbit/s, or iperf3's error.
pub fn parse_json(json: &str) -> Result<f64, String> {
    if let Some(error) = string_after(json, "error") {
        return Err(format!("iperf3: {error}"));
    }
    let end = json.find("\"end\"").ok_or("no \"end\" object")?;
    let received = end
        + json[end..]
            .find("\"sum_received\"")
            .ok_or("no end.sum_received")?;
    let (bits, _) = number_after(json, "bits_per_second", received)
        .ok_or("no end.sum_received.bits_per_second")?;
    Ok(bits / 1e9)
}

/// Runs one test of `seconds` against `target`; output to
/// `dir/<name>.json`. Returns Gbit/s received.
pub async fn run(target: SocketAddr, seconds: u32, dir: &Path, name: &str) -> Result<f64> {
    let what = format!("iperf3 to {target}");
    let done = finish(
        Command::new("iperf3")
            .arg("-c")
            .arg(target.ip().to_string())
            .arg("-p")
            .arg(target.port().to_string())
            .arg("-t")
            .arg(seconds.to_string())
            .arg("-O")
            .arg(OMIT_S.to_string())
            .arg("-J"),
        Duration::from_secs(u64::from(seconds + OMIT_S)),
        &what,
        &dir.join(format!("{name}.json")),
    )
    .await?;
    let gbps = parse_json(&done.stdout).map_err(|e| {
        failed(format!(
            "{what} ({}): {e}; stderr: {}",
            done.status,
            done.stderr.trim()
        ))
    })?;
    if !done.status.success() {
        return Err(failed(format!("{what} exited with {}", done.status)));
    }
    Ok(gbps)
}

#[cfg(test)]
mod tests {
    use super::*;

    const JSON: &str = "{\n\t\"start\":\t{\n\t\t\"connected\":\t[],\n\t\t\"sum_received\":\t{\"bits_per_second\":\t1}\n\t},\n\
                        \t\"intervals\":\t[],\n\t\"end\":\t{\n\t\t\"sum_sent\":\t{\n\t\t\t\"bits_per_second\":\t3.2e10,\n\
                        \t\t\t\"retransmits\":\t0\n\t\t},\n\t\t\"sum_received\":\t{\n\t\t\t\"start\":\t0,\n\
                        \t\t\t\"bytes\":\t3933732864,\n\t\t\t\"bits_per_second\":\t31457028444.394688,\n\
                        \t\t\t\"sender\":\ttrue\n\t\t}\n\t}\n}\n";

    #[test]
    fn received_bits_per_second_of_the_end_summary() {
        let gbps = parse_json(JSON).unwrap();
        assert!((gbps - 31.457_028_444).abs() < 1e-6, "{gbps}");
    }

    #[test]
    fn iperf3_errors_and_truncated_output_are_errors() {
        let error = "{\n\t\"start\":\t{},\n\t\"intervals\":\t[],\n\t\"end\":\t{\n\t},\n\
                     \t\"error\":\t\"unable to connect to server: Connection refused\"\n}\n";
        assert_eq!(
            parse_json(error).unwrap_err(),
            "iperf3: unable to connect to server: Connection refused"
        );
        assert!(parse_json("").is_err());
        assert!(parse_json(&JSON.replace("31457028444.394688", "\"x\"")).is_err());
    }

    #[test]
    fn numbers_in_json() {
        assert_eq!(number_after("{\"a\": -1.5e3}", "a", 0), Some((-1500.0, 12)));
        assert_eq!(number_after("{\"a\":2,\"a\":3}", "a", 6), Some((3.0, 12)));
        assert_eq!(number_after("{\"b\":2}", "a", 0), None);
    }
}
