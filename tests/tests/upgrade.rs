//! Live upgrades with real binaries: connections move to the new
//! generation and no client can tell.
// Test code: a panic is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use baton_tests::state::Outcome;
use baton_tests::traffic::{Checked, ModalUpstream, stream_echo, stream_half_closed};
use baton_tests::upstream::round_trip;
use baton_tests::{Baton, PATIENCE, alive, tcp_config};
use rand::RngCore;
use rustix::process::Signal;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::timeout;

const LONG_LIVED: u64 = 200;
const UPGRADES: usize = 20;

/// 200 long-lived connections (echo, slow echo with bytes queued inside
/// the proxy, half-closed) checking every byte, new short connections
/// beside them, and 20 upgrades alternating SIGHUP and `baton upgrade`:
/// no error of any kind, every connection alive at the end, every worker
/// replaced and gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_upgrades_under_load_disturb_nothing() {
    let upstream = ModalUpstream::start().await;
    let baton = Baton::start(&tcp_config(&[upstream.addr], ""));
    let addr = baton.addr("front");
    let (stop, stopped) = watch::channel(false);

    let mut long = Vec::new();
    for i in 0..LONG_LIVED {
        let stopped = stopped.clone();
        long.push(tokio::spawn(async move {
            match i % 4 {
                0 | 1 => stream_echo(addr, i, false, stopped).await,
                2 => stream_echo(addr, i, true, stopped).await,
                _ => stream_half_closed(addr, i, stopped).await,
            }
        }));
    }
    let short = {
        let stopped = stopped.clone();
        tokio::spawn(async move {
            let (mut ok, mut errors) = (0u64, Vec::<String>::new());
            while !*stopped.borrow() {
                let mut data = vec![0u8; 256];
                rand::rng().fill_bytes(&mut data);
                let result = async {
                    let mut stream = TcpStream::connect(addr)
                        .await
                        .map_err(|e| format!("connect: {e}"))?;
                    let local = stream.local_addr().map_err(|e| e.to_string())?;
                    // The upstream's mode byte: echo.
                    stream
                        .write_all(b"E")
                        .await
                        .map_err(|e| format!("write: {e}"))?;
                    let back = timeout(PATIENCE, round_trip(stream, &data))
                        .await
                        .map_err(|_| format!("no answer on {local}"))?;
                    if back == data {
                        Ok(())
                    } else {
                        Err("corrupted".to_string())
                    }
                }
                .await;
                match result {
                    Ok(()) => ok += 1,
                    Err(e) => errors.push(e),
                }
            }
            (ok, errors)
        })
    };

    // Every long-lived connection is through the proxy before the first
    // upgrade (the short ones come and go).
    baton.wait_for_status("200 connections through the proxy", |s| {
        matches!(
            s.generations.as_slice(),
            [one] if one.connections.is_some_and(|c| c == LONG_LIVED || c == LONG_LIVED + 1)
        )
    });

    let mut pids = vec![baton.worker_pid()];
    let mut migrated = 0;
    for round in 0..UPGRADES {
        if round % 2 == 0 {
            baton.signal(Signal::HUP);
        } else {
            baton.upgrade(&[]);
        }
        let status = baton.wait_for_upgrades(round as u64 + 1);
        let report = status.last_upgrade.as_ref().unwrap();
        assert_eq!(
            report.outcome,
            Outcome::Succeeded,
            "round {round}: {report:?}"
        );
        migrated += report.migrated;
        pids.push(baton.worker_pid());
    }
    let counts = baton.status().upgrades;
    assert_eq!(
        (counts.requested, counts.succeeded, counts.finished()),
        (UPGRADES as u64, UPGRADES as u64, UPGRADES as u64),
        "every upgrade succeeded: {counts:?}"
    );

    stop.send_replace(true);
    let mut results: Vec<Checked> = Vec::new();
    for task in long {
        results.push(
            timeout(PATIENCE, task)
                .await
                .expect("a connection hung")
                .unwrap(),
        );
    }
    let (short_ok, short_errors) = short.await.unwrap();

    let failed: Vec<(usize, &Checked)> = results
        .iter()
        .enumerate()
        .filter(|(_, c)| c.error.is_some())
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {LONG_LIVED} connections failed: {failed:?}",
        failed.len()
    );
    assert!(
        results.iter().all(|c| c.verified > 0),
        "every connection moved bytes"
    );
    assert!(
        short_errors.is_empty(),
        "short connections failed: {short_errors:?}"
    );
    assert!(short_ok > 0);

    let mut distinct = pids.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        UPGRADES + 1,
        "every upgrade replaced the worker: {pids:?}"
    );
    for pid in &pids[..UPGRADES] {
        assert!(!alive(*pid), "old worker {pid} still alive");
    }
    assert!(
        migrated >= LONG_LIVED * UPGRADES as u64,
        "each upgrade moved the long-lived connections ({migrated})"
    );
}

/// `baton upgrade --binary PATH` passes the file the CLI opened over the
/// control socket, and the supervisor runs that file: here PATH exists
/// only in the CLI's own mount namespace (a tmpfs the supervisor cannot
/// see), so a supervisor that opened the path itself would refuse. An
/// echo connection moves across, and the status names PATH.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_runs_the_binary_file_the_cli_opened() {
    let upstream = ModalUpstream::start().await;
    let baton = Baton::start(&tcp_config(&[upstream.addr], ""));
    let mut client = TcpStream::connect(baton.addr("front")).await.unwrap();
    // `E`: the upstream echoes the rest (see `ModalUpstream`).
    client.write_all(b"E").await.unwrap();
    echo_line(&mut client, b"before").await;

    let hidden = tempfile::tempdir().unwrap();
    let path = hidden.path().join("baton-worker");
    let script = r#"mount -t tmpfs tmpfs "$1" && cp "$2" "$1/baton-worker" && exec "$3" upgrade --binary "$1/baton-worker" --control-socket "$4""#;
    let out = std::process::Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
            script,
            "sh",
        ])
        .arg(hidden.path())
        .arg(baton_tests::bin("baton-worker"))
        .arg(baton_tests::bin("baton"))
        .arg(baton.control_socket())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "upgrade from the CLI's namespace: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !path.exists(),
        "the binary must be invisible outside the CLI's namespace"
    );
    let status = baton_tests::faults::status_json(&baton);
    assert_eq!(
        status["generations"][0]["binary"],
        path.display().to_string(),
        "{status:#}"
    );
    assert_eq!(status["generations"][0]["generation"], 2, "{status:#}");
    echo_line(&mut client, b"after").await;
}

async fn echo_line(client: &mut TcpStream, line: &[u8]) {
    use tokio::io::AsyncReadExt;
    client.write_all(line).await.unwrap();
    let mut back = vec![0; line.len()];
    timeout(PATIENCE, client.read_exact(&mut back))
        .await
        .expect("echo in time")
        .unwrap();
    assert_eq!(back, line);
}
