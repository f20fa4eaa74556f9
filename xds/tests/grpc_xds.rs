//! gRPC's own xDS client (grpcio, `GRPC_XDS_BOOTSTRAP`, the channel
//! `xds:///echo.test`) against the test control plane that the client
//! tests use: it finds its listener, routes, cluster and endpoints there
//! and reaches a grpcio server (tests/interop/grpc/server.py), and ACKs
//! every type — so the control plane speaks xDS as gRPC understands it,
//! not only as baton does.
// Test code: a panic is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;

use baton_xds::Kind;
use common::{ControlPlane, PATIENCE};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

/// The Python of `tests/interop/.venv`, where `.ci/run` installs grpcio.
fn python() -> PathBuf {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/interop/.venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing (.ci/run makes it: python3 -m venv tests/interop/.venv, then pip install -r tests/interop/requirements.txt)",
        python.display()
    );
    python
}

fn interop(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/interop")
        .join(path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcs_xds_client_is_served_by_the_test_control_plane() {
    // The grpcio server the resources point at.
    let mut server = Command::new(python())
        .arg(interop("grpc/server.py"))
        .arg("echo")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the grpcio server");
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(PATIENCE, lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .expect("the grpcio server's first line");
    let first: Value = serde_json::from_str(&first).unwrap();
    assert_eq!(first["event"], "listening", "{first}");
    let server_port = first["port"].as_u64().unwrap();

    let mut cp = ControlPlane::start(0).await;
    cp.node = "grpc-client";
    cp.set(
        "1",
        json!({
            "clusters": [{ "name": "echo" }],
            "endpoints": [{ "cluster": "echo", "endpoints": [{ "port": server_port }] }],
            "listeners": [{ "name": "echo.test", "api": true, "route_config": "echo-routes" }],
            "routes": [{
                "name": "echo-routes",
                "virtual_hosts": [{ "name": "echo", "domains": ["*"],
                                    "routes": [{ "prefix": "", "cluster": "echo" }] }],
            }],
        }),
    )
    .await;

    let dir = tempfile::tempdir().unwrap();
    let bootstrap = dir.path().join("bootstrap.json");
    std::fs::write(
        &bootstrap,
        json!({
            "xds_servers": [{
                "server_uri": format!("127.0.0.1:{}", cp.port),
                "channel_creds": [{ "type": "insecure" }],
                "server_features": ["xds_v3"],
            }],
            "node": { "id": "grpc-client", "cluster": "test" },
        })
        .to_string(),
    )
    .unwrap();
    let client = Command::new(python())
        .arg(interop("xds/grpc_xds_client.py"))
        .arg("echo.test")
        .env("GRPC_XDS_BOOTSTRAP", &bootstrap)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(PATIENCE * 2, client)
        .await
        .expect("the grpc xDS client finishes")
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let result: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "{e}: stdout {stdout:?}, stderr {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    assert_eq!(result, json!({ "reply": "echo|hi" }));
    for kind in [Kind::Listener, Kind::Route, Kind::Cluster, Kind::Endpoint] {
        cp.ack(kind, "1").await;
    }
}
