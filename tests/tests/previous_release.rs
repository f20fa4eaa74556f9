//! Upgrading from the previous release's worker and rolling back to it:
//! live connections move both ways.
//!
//! The previous release is [`PREVIOUS`] (the merge before the handoff
//! schema moved into the worker: it speaks handoff schema 1 only, and
//! still sends a spilled tunnel in schema 1). This test builds that
//! release's `baton-worker` once, from the commit's tree (`git archive`,
//! which leaves the repository untouched, unlike a worktree), with its own
//! `CARGO_TARGET_DIR` under this build's target directory; it keeps only
//! the binary (`<target>/previous-release/baton-worker-<commit>`, reused
//! by later runs) and deletes the sources and their build, so no second
//! target tree stays on disk. The first run costs a debug build of the
//! worker (minutes on two cores, once per checkout; CI builds it once per
//! run); it needs the repository's history, which a clone has. Moving
//! [`PREVIOUS`] to a newer release is a one-line change, in
//! `tests/previous-release` (which `.ci/run` reads too: in a shallow clone
//! it deepens the history, or says loudly that this test is skipped).
// Test code: a panic is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

use baton_tests::faults::{Fleet, failures, status_json};
use baton_tests::traffic::ModalUpstream;
use baton_tests::{Baton, bin, tcp_config};

/// The previous release: 3c3e9b9, "Merge branch 'layers'" (issue 13,
/// stage 1), the last commit whose worker speaks only handoff schema 1.
const PREVIOUS: &str = include_str!("../previous-release").trim_ascii();

/// The previous release's worker binary, built if it is not there yet.
fn previous_worker() -> PathBuf {
    let target = bin("baton")
        .parent()
        .and_then(Path::parent)
        .expect("binaries live in <target>/<profile>")
        .to_path_buf();
    let dir = target.join("previous-release");
    let binary = dir.join(format!("baton-worker-{}", &PREVIOUS[..12]));
    if binary.exists() {
        return binary;
    }
    std::fs::create_dir_all(&dir).unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate sits in the workspace")
        .to_path_buf();
    let src = dir.join("src");
    let build = dir.join("target");
    // The commit's tree, exported (`git archive`): no worktree to
    // register, nothing in the repository changes.
    let _ = std::fs::remove_dir_all(&src);
    std::fs::create_dir_all(&src).unwrap();
    let tar = dir.join("src.tar");
    run(Command::new("git")
        .arg("-C")
        .arg(&repo)
        .args(["archive", "--format=tar", "-o"])
        .arg(&tar)
        .arg(PREVIOUS));
    run(Command::new("tar").arg("-xf").arg(&tar).arg("-C").arg(&src));
    std::fs::remove_file(&tar).unwrap();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    run(Command::new(cargo)
        .current_dir(&src)
        .args([
            "build",
            "--locked",
            "-p",
            "baton-worker",
            "--bin",
            "baton-worker",
        ])
        .env("CARGO_TARGET_DIR", &build)
        .env("CARGO_INCREMENTAL", "0"));
    let partial = dir.join("baton-worker.partial");
    std::fs::copy(build.join("debug").join("baton-worker"), &partial).unwrap();
    std::fs::rename(&partial, &binary).unwrap();
    let _ = std::fs::remove_dir_all(&src);
    let _ = std::fs::remove_dir_all(&build);
    binary
}

fn run(command: &mut Command) {
    let status = command.status().unwrap();
    assert!(status.success(), "{command:?}: {status}");
}

fn summary(out: &std::process::Output) -> String {
    format!(
        "{:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Gen 1 runs the previous release's worker; long-lived connections
/// (tunnels) move to this build's worker (in schema 1, the highest both
/// speak), then back with `baton rollback`, every byte checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_from_the_previous_release_and_roll_back_to_it() {
    const CONNECTIONS: u64 = 30;
    let previous = tokio::task::spawn_blocking(previous_worker).await.unwrap();
    let upstream = ModalUpstream::start().await;
    let config = tcp_config(&[upstream.addr], "").replace(
        "[supervisor]\n",
        &format!("[supervisor]\nworker_binary = \"{}\"\n", previous.display()),
    );
    let baton = Baton::start(&config);
    let addr = baton.addr("front");
    let fleet = Fleet::echo(addr, CONNECTIONS, 5000);
    baton.wait_for_status(
        &format!("{CONNECTIONS} connections"),
        |s| matches!(s.generations.as_slice(), [one] if one.connections == Some(CONNECTIONS)),
    );
    let status = status_json(&baton);
    assert_eq!(
        status["generations"][0]["binary"].as_str(),
        Some(previous.display().to_string().as_str()),
        "{status:#}"
    );

    let current = bin("baton-worker");
    let out = baton.cli(&["upgrade", "--binary", &current.display().to_string()]);
    assert!(out.status.success(), "{}", summary(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        stdout.contains(&format!("{CONNECTIONS} migrated, 0 lost")),
        "every connection moved to this release: {stdout}"
    );

    let out = baton.cli(&["rollback"]);
    assert!(out.status.success(), "{}", summary(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        stdout.contains(&format!("{CONNECTIONS} migrated, 0 lost")),
        "every connection moved back to the previous release: {stdout}"
    );
    let status = status_json(&baton);
    assert_eq!(
        status["generations"][0]["binary"].as_str(),
        Some(previous.display().to_string().as_str()),
        "{status:#}"
    );

    let results = fleet.finish().await;
    let failed = failures(&results);
    assert!(
        failed.is_empty(),
        "{} of {CONNECTIONS} connections failed: {failed:?}",
        failed.len()
    );
    assert!(results.iter().all(|c| c.verified > 0));
}
