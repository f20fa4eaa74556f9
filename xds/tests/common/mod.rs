//! The test control plane (tests/interop/xds/, go-control-plane's snapshot
//! cache and ADS server, built by `.ci/run` with
//! `tests/interop/xds/build.sh`) as a child process: commands on its
//! stdin, events (ACKs, NACKs, streams) from its stdout.
// Test code: a panic is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use baton_xds::Kind;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

/// How long a test waits for what must happen before it fails (a guard
/// against hanging, not a measure: nothing here asserts a duration).
pub const PATIENCE: Duration = Duration::from_secs(60);

pub const NODE: &str = "sidecar-1";

/// The control plane process: commands on its stdin, events from its
/// stdout.
pub struct ControlPlane {
    /// The node whose snapshot `set` sets and whose ACKs `ack` awaits.
    pub node: &'static str,
    child: Child,
    stdin: ChildStdin,
    events: mpsc::UnboundedReceiver<Value>,
    /// Every event received, in order.
    seen: Vec<Value>,
    pub port: u16,
}

impl ControlPlane {
    pub async fn start(port: u16) -> ControlPlane {
        ControlPlane::start_with(port, &[]).await
    }

    /// With more flags (`-tls-cert`, …: tests/interop/xds/main.go).
    pub async fn start_with(port: u16, flags: &[&std::ffi::OsStr]) -> ControlPlane {
        let binary = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/interop/xds/bin/xds-control-plane");
        assert!(
            binary.exists(),
            "{} is missing: run tests/interop/xds/build.sh (.ci/run does)",
            binary.display()
        );
        let mut child = Command::new(binary)
            .arg("-port")
            .arg(port.to_string())
            .args(flags)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start the control plane");
        let stdin = child.stdin.take().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let (tx, mut events) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let event: Value = serde_json::from_str(&line).expect("a JSON line");
                if tx.send(event).is_err() {
                    break;
                }
            }
        });
        let first = tokio::time::timeout(PATIENCE, events.recv())
            .await
            .expect("the control plane says where it listens")
            .expect("the control plane's first line");
        assert_eq!(first["event"], "listening", "{first}");
        let port = u16::try_from(first["port"].as_u64().unwrap()).unwrap();
        ControlPlane {
            child,
            stdin,
            node: NODE,
            events,
            seen: Vec::new(),
            port,
        }
    }

    /// Sets the node's snapshot; `resources` has the keys `clusters`,
    /// `endpoints`, `listeners`, `routes`, `secrets` (tests/interop/xds/main.go).
    pub async fn set(&mut self, version: &str, mut resources: Value) {
        resources["op"] = json!("snapshot");
        resources["node"] = json!(self.node);
        resources["version"] = json!(version);
        let mut line = resources.to_string();
        line.push('\n');
        self.stdin.write_all(line.as_bytes()).await.unwrap();
        // The answer to this command: past every answer seen so far.
        let answered = self
            .seen
            .iter()
            .filter(|e| e["event"] == "ok" || e["event"] == "error")
            .count();
        let mut n = 0;
        let ok = self
            .event(|e| {
                let answer = e["event"] == "ok" || e["event"] == "error";
                if answer {
                    n += 1;
                }
                answer && n > answered
            })
            .await;
        assert_eq!(ok["event"], "ok", "{ok}");
    }

    /// The first event `wanted` accepts, seen before or awaited.
    pub async fn event(&mut self, mut wanted: impl FnMut(&Value) -> bool) -> Value {
        if let Some(e) = self.seen.iter().find(|e| wanted(e)) {
            return e.clone();
        }
        tokio::time::timeout(PATIENCE, async {
            loop {
                let e = self.events.recv().await.expect("the control plane runs");
                self.seen.push(e.clone());
                if wanted(&e) {
                    return e;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no awaited control-plane event; seen: {:#?}", self.seen))
    }

    /// Waits for the ACK of `kind`'s resources at `version`.
    pub async fn ack(&mut self, kind: Kind, version: &str) -> Value {
        let node = self.node;
        self.event(|e| {
            e["event"] == "ack"
                && e["type_url"] == kind.type_url()
                && e["version"] == version
                && e["node"] == node
        })
        .await
    }

    /// Kills the process (a dead control plane: its port refuses);
    /// returns the port, to start another on.
    pub async fn kill(&mut self) -> u16 {
        self.child.kill().await.unwrap();
        self.port
    }
}
