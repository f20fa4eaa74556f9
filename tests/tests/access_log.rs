//! The access log: one line per connection, written where it ends, with
//! its whole life even when it crossed upgrades.
// Test code: a panic is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use baton_tests::upstream::Echo;
use baton_tests::{Baton, PATIENCE, eventually, tcp_config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

fn lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_is_logged_once_with_its_whole_life() {
    let echo = Echo::start().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let config = tcp_config(&[echo.addr], "")
        + &format!(
            "\n[access_log]\npath = \"{}\"\nformat = \"json\"\n",
            log.display()
        );
    let baton = Baton::start(&config);

    let mut client = TcpStream::connect(baton.addr("front")).await.unwrap();
    let local = client.local_addr().unwrap();
    let mut buf = vec![0u8; 1000];
    client.write_all(&[1u8; 1000]).await.unwrap();
    client.read_exact(&mut buf).await.unwrap();
    baton.upgrade(&[]);
    client.write_all(&[2u8; 500]).await.unwrap();
    client.read_exact(&mut buf[..500]).await.unwrap();
    baton.upgrade(&[]);
    assert!(
        lines(&log).is_empty(),
        "nothing is logged while the connection lives"
    );
    client.write_all(&[3u8; 250]).await.unwrap();
    client.read_exact(&mut buf[..250]).await.unwrap();
    client.shutdown().await.unwrap();
    let mut rest = Vec::new();
    timeout(PATIENCE, client.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();

    eventually("the access log line", || !lines(&log).is_empty());
    let entries = lines(&log);
    assert_eq!(entries.len(), 1, "{entries:?}");
    let e = &entries[0];
    assert_eq!(e["client"], local.to_string());
    assert_eq!(e["listener"], "front");
    assert_eq!(e["cluster"], "back");
    assert_eq!(e["upstream"], echo.addr.to_string());
    assert_eq!(e["received"], 1750);
    assert_eq!(e["sent"], 1750);
    assert_eq!(e["moves"], 2);
    assert_eq!(e["outcome"], "finished");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logfmt_by_default_and_no_upstream_is_logged() {
    let dead = baton_tests::upstream::dead_addr().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let config =
        tcp_config(&[dead], "") + &format!("\n[access_log]\npath = \"{}\"\n", log.display());
    let baton = Baton::start(&config);
    let mut client = TcpStream::connect(baton.addr("front")).await.unwrap();
    let mut rest = Vec::new();
    let _ = timeout(PATIENCE, client.read_to_end(&mut rest))
        .await
        .unwrap();
    eventually("the access log line", || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains("outcome=no_upstream"))
    });
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.starts_with("time="), "{text}");
    assert!(
        text.contains("listener=front ") && text.contains("cluster=back "),
        "{text}"
    );
}

#[test]
fn an_access_log_that_cannot_be_opened_refuses_the_config() {
    let dir = tempfile::tempdir().unwrap();
    // Never dialled (the config is refused): any address will do.
    let unused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let config = tcp_config(&[unused.local_addr().unwrap()], "")
        + &format!(
            "\n[access_log]\npath = \"{}\"\n",
            dir.path().join("no/such/dir/log").display()
        );
    let mut baton = Baton::spawn(&config, &[]);
    let status = baton.wait_exit();
    assert_eq!(status.code(), Some(78));
    assert!(
        baton.log.iter().any(|l| l.contains("open access log")),
        "{:?}",
        baton.log
    );
}
