//! `baton-worker check`: the full validation that `baton check` delegates.
// Test code: a panic is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::process::{Command, Stdio};

fn worker() -> Command {
    Command::new(env!("CARGO_BIN_EXE_baton-worker"))
}

#[test]
fn a_good_file_passes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ok.toml");
    std::fs::write(&path, baton_config::EXAMPLE_CONFIG).unwrap();
    let out = worker().arg("check").arg(&path).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok (3 listeners, 1 clusters)"));
}

#[test]
fn stdin_with_a_source_name() {
    let mut child = worker()
        .args(["check", "-", "--source-name", "from-stdin.toml"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(
            b"[[listeners]]\nname = \"a\"\naddress = \"127.0.0.1:0\"\ncluster = \"missing\"\n",
        )
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("from-stdin.toml:4:11: listeners[0].cluster"),
        "{stderr}"
    );
}

#[test]
fn without_a_supervisor_it_refuses_to_run() {
    let out = worker().env_remove("BATON_IPC_FD").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("BATON_IPC_FD"));
}
