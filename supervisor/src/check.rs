//! `baton check`: validate a config the way a new generation would.
//!
//! The supervisor checks the part it owns, then hands the text to the
//! worker binary (`baton-worker check -`), which parses all of it: new
//! config syntax comes with a new worker and needs no new supervisor.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::source::ConfigSource;

/// Runs the check; returns the exit code (0, 78 for a bad config, 1 when
/// the worker binary cannot be run).
pub fn check(source: &ConfigSource) -> u8 {
    let loaded = match source.load() {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("{e}");
            return 78;
        }
    };
    let binary = match loaded.worker_binary() {
        Ok(binary) => binary,
        Err(e) => {
            eprintln!("locate the worker binary: {e}");
            return 1;
        }
    };
    let spawned = Command::new(&binary)
        .args(["check", "-", "--source-name", &loaded.name])
        .env(baton_ipc::env::ROLE, baton_ipc::env::ROLE_WORKER)
        .stdin(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            eprintln!("run {} check: {e}", binary.display());
            return 1;
        }
    };
    // Dropping stdin after the write closes it: the worker reads to EOF.
    if let Some(Err(e)) = child
        .stdin
        .take()
        .map(|mut stdin| stdin.write_all(loaded.text.as_bytes()))
    {
        eprintln!("pass the config to {}: {e}", binary.display());
    }
    match child.wait() {
        Ok(status) => status
            .code()
            .and_then(|c| u8::try_from(c).ok())
            .unwrap_or(1),
        Err(e) => {
            eprintln!("wait for {} check: {e}", binary.display());
            1
        }
    }
}
