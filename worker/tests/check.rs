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
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok (5 listeners, 2 clusters)"));
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

/// What a generation would read is read: a missing certificate or CA
/// bundle fails the check with the listener or cluster named (as does a
/// regex that does not compile, with its key path).
#[test]
fn files_and_regexes_the_config_names_are_checked_too() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let missing = missing.display();
    let cases = [
        (
            format!(
                "[[listeners]]\nname = \"web\"\naddress = \"127.0.0.1:0\"\nprotocol = \"http\"\n\
                 [listeners.tls]\ncertificates = [{{ cert = \"{missing}\", key = \"{missing}\" }}]\n"
            ),
            "listener \"web\": certificate",
        ),
        (
            format!(
                "[[listeners]]\nname = \"web\"\naddress = \"127.0.0.1:0\"\nprotocol = \"http\"\ncluster = \"api\"\n\
                 [[clusters]]\nname = \"api\"\nendpoints = [\"127.0.0.1:1\"]\n[clusters.tls]\nca = \"{missing}\"\n"
            ),
            "cluster \"api\": certificate",
        ),
        (
            "[[listeners]]\nname = \"web\"\naddress = \"127.0.0.1:0\"\nprotocol = \"http\"\n\
             [[listeners.routes]]\npath_regex = \"([\"\ndirect = { status = 200 }\n"
                .to_string(),
            "listeners[0].routes[0].path_regex: invalid regex",
        ),
    ];
    for (text, expected) in cases {
        let path = dir.path().join("c.toml");
        std::fs::write(&path, &text).unwrap();
        let out = worker().arg("check").arg(&path).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(78), "{text}\n{stderr}");
        assert!(stderr.contains(expected), "{expected:?} in {stderr}");
    }
}

/// `[xds]` (the control-plane bootstrap) is checked with the rest: a good
/// one passes beside static listeners, a bad server address fails at its
/// line and column.
#[test]
fn an_xds_bootstrap_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    let statics = "[[listeners]]\nname = \"a\"\naddress = \"127.0.0.1:0\"\ncluster = \"c\"\n\
                   [[clusters]]\nname = \"c\"\nendpoints = [\"127.0.0.1:1\"]\n";
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        format!(
            "{statics}[xds]\nservers = [\"127.0.0.1:18000\"]\nmode = \"delta\"\n\
             node = {{ id = \"sidecar-1\", cluster = \"web\" }}\n"
        ),
    )
    .unwrap();
    let out = worker().arg("check").arg(&good).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        format!("{statics}[xds]\nservers = [\"nowhere\"]\nnode = {{ id = \"n\" }}\n"),
    )
    .unwrap();
    let out = worker().arg("check").arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad.toml:9:12: xds.servers[0]"), "{stderr}");
}
