//! The `baton` command line: exit codes and messages.
// Test code: a panic is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

fn baton() -> Command {
    Command::new(env!("CARGO_BIN_EXE_baton"))
}

#[test]
fn usage_errors_exit_64() {
    let out = baton().arg("frobnicate").output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    let out = baton().args(["run", "--no-such-flag"]).output().unwrap();
    assert_eq!(out.status.code(), Some(64));
}

#[test]
fn help_exits_0() {
    let out = baton().arg("--help").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("run"));
}

#[test]
fn check_of_a_missing_file_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = baton()
        .args(["check", "-c"])
        .arg(dir.path().join("absent.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("absent.toml"));
}

#[test]
fn check_catches_the_supervisors_own_table() {
    // The supervisor's part is checked before any worker runs: a typo in
    // [supervisor] is found even when the worker binary is missing.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.toml");
    std::fs::write(
        &path,
        "[supervisor]\ndrain_timout = \"5s\"\nworker_binary = \"/nonexistent\"\n",
    )
    .unwrap();
    let out = baton().args(["check", "-c"]).arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("b.toml:2:1: supervisor.drain_timout"),
        "{stderr}"
    );
}

#[test]
fn check_without_a_worker_binary_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        "[supervisor]\nworker_binary = \"/nonexistent/baton-worker\"\n",
    )
    .unwrap();
    let out = baton().args(["check", "-c"]).arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/baton-worker"));
}
