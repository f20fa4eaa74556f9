//! The ADS client against a real control plane: go-control-plane's
//! snapshot cache and ADS server (tests/interop/xds/, built by `.ci/run`
//! with `tests/interop/xds/build.sh`), in state-of-the-world and delta
//! modes: the first resources arrive and map, an update is ACKed with its
//! version, a bad resource is NACKed with a message while the accepted
//! snapshot stays, and a control plane killed and restarted finds the
//! client keeping its snapshot and resuming.
// Test code: a panic is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use baton_config::{HttpAction, Target, Xds, XdsMode, XdsNode, XdsServer};
use baton_xds::map::{ListenerKind, MappedSecret, Pem, RouteSource, compose};
use baton_xds::{Client, Kind, Snapshot};
use serde_json::{Value, json};

mod common;

use common::{ControlPlane, NODE, PATIENCE};

fn bootstrap(port: u16, mode: XdsMode) -> Xds {
    Xds {
        servers: vec![XdsServer {
            host: "127.0.0.1".into(),
            port,
        }],
        node: XdsNode {
            id: NODE.into(),
            cluster: "test".into(),
            metadata: Default::default(),
        },
        mode,
        tls: None,
        initial_fetch_timeout: Xds::INITIAL_FETCH_TIMEOUT,
        debounce: Xds::DEBOUNCE,
    }
}

/// Resources of every type but secrets: an EDS cluster `web` behind an
/// HTTP listener (RDS `routes`), a STATIC cluster `db` behind a tcp
/// listener, `web`'s endpoints on `ports`.
fn resources(ports: &[u16]) -> Value {
    let endpoints: Vec<Value> = ports
        .iter()
        .enumerate()
        .map(|(i, p)| json!({ "port": p, "weight": i + 1 }))
        .collect();
    json!({
        "clusters": [
            { "name": "web", "lb_policy": "LEAST_REQUEST", "max_requests": 77,
              "sds_certificate": "web-cert", "sds_validation": "ca" },
            { "name": "db", "type": "STATIC", "endpoints": [{ "port": 5432 }] },
        ],
        "endpoints": [{ "cluster": "web", "endpoints": endpoints }],
        "listeners": [
            { "name": "http", "port": 8080, "route_config": "routes" },
            { "name": "tcp", "port": 5433, "cluster": "db" },
        ],
        "routes": [{
            "name": "routes",
            "virtual_hosts": [{
                "name": "all",
                "domains": ["*"],
                "routes": [
                    { "prefix": "/api", "cluster": "web", "timeout_ms": 1500, "retries": 2,
                      "add_headers": { "x-from": "xds" } },
                    { "path": "/old", "redirect": { "host": "new.example", "path": "/new" } },
                    { "prefix": "/", "direct": { "status": 404, "body": "nothing here" } },
                ],
            }],
        }],
        "secrets": [
            { "name": "ca", "ca_pem": "CA PEM" },
            { "name": "web-cert", "cert_pem": "CHAIN PEM", "key_pem": "KEY PEM" },
        ],
    })
}

async fn wait_for(client: &Client, what: &str, ok: impl Fn(&Snapshot) -> bool) -> Arc<Snapshot> {
    let mut snapshots = client.snapshots();
    let result = tokio::time::timeout(PATIENCE, snapshots.wait_for(|s| ok(s))).await;
    match result {
        Ok(Ok(s)) => Arc::clone(&s),
        _ => panic!(
            "no snapshot with {what}; last: {:#?}; status: {:#?}",
            client.snapshots().borrow(),
            client.status().borrow()
        ),
    }
}

fn endpoint_ports(s: &Snapshot) -> Vec<u16> {
    s.resources
        .endpoints
        .get("web")
        .map(|e| e.endpoints.iter().map(|e| e.address.port()).collect())
        .unwrap_or_default()
}

/// Everything of version 1 arrived and maps into a config.
fn complete(s: &Snapshot) -> bool {
    s.resources.listeners.len() == 2
        && s.resources.routes.contains_key("routes")
        && s.resources.clusters.len() == 2
        && !endpoint_ports(s).is_empty()
        && s.resources.secrets.len() == 2
}

fn check_mapping(s: &Snapshot) {
    let r = &s.resources;
    assert_eq!(
        r.listeners["http"].kind,
        ListenerKind::Http {
            routes: RouteSource::Rds("routes".into())
        }
    );
    let web = &r.clusters["web"];
    assert_eq!(web.eds.as_deref(), Some("web"));
    assert_eq!(web.cluster.lb, baton_config::Lb::LeastRequest);
    assert_eq!(web.cluster.circuit_breakers.max_requests, 77);
    let weights: Vec<u32> = r.endpoints["web"]
        .endpoints
        .iter()
        .map(|e| e.weight.get())
        .collect();
    assert_eq!(weights, [1]);
    // SDS: the secrets the cluster's TLS context names. (The snapshot
    // holds no other: go-control-plane's ADS mode answers a named request
    // only when the request names every resource of the type it holds.)
    assert_eq!(web.secrets, ["web-cert", "ca"]);
    let names: Vec<&str> = r.secrets.keys().map(String::as_str).collect();
    assert_eq!(names, ["ca", "web-cert"]);
    assert_eq!(
        r.secrets["ca"],
        MappedSecret::Validation {
            trusted_ca: Pem::Inline(b"CA PEM".to_vec())
        }
    );
    assert_eq!(
        r.secrets["web-cert"],
        MappedSecret::Certificate {
            chain: Pem::Inline(b"CHAIN PEM".to_vec()),
            key: Pem::Inline(b"KEY PEM".to_vec()),
        }
    );

    // The static config plus these: one config, names resolved.
    let base = baton_config::parse(
        "static.toml",
        "[[listeners]]\nname = \"static\"\naddress = \"127.0.0.1:9\"\ncluster = \"s\"\n\
         [[clusters]]\nname = \"s\"\nendpoints = [\"127.0.0.1:1\"]\n",
    )
    .unwrap();
    let (config, warming) = compose(&base, r);
    assert_eq!(warming, Default::default());
    let names: Vec<&str> = config.listeners.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["static", "http", "tcp"]);
    let web_id = config
        .clusters
        .iter()
        .position(|c| c.name == "web")
        .unwrap();
    let db_id = config.clusters.iter().position(|c| c.name == "db").unwrap();
    assert_eq!(
        config.listeners[2].target,
        Target::Cluster(baton_config::ClusterId::new(db_id))
    );
    let routes = &config.listeners[1].http.as_ref().unwrap().routes;
    assert_eq!(routes.len(), 3);
    assert_eq!(
        routes[0].action,
        HttpAction::Cluster(baton_config::ClusterId::new(web_id))
    );
    assert_eq!(routes[0].timeout, Some(Duration::from_millis(1500)));
    assert_eq!(routes[0].retries, 2);
    assert_eq!(routes[0].filters.len(), 1, "the header edit");
    assert_eq!(
        routes[1].action,
        HttpAction::Redirect {
            location: "http://new.example/new".into(),
            status: 301
        }
    );
    assert!(
        matches!(&routes[2].action, HttpAction::Direct { status: 404, body, .. } if body == "nothing here")
    );
}

/// First resources, an update ACKed, a bad resource NACKed.
async fn updates(mode: XdsMode) {
    let mut cp = ControlPlane::start(0).await;
    cp.set("1", resources(&[7001])).await;
    let client = Client::start(bootstrap(cp.port, mode));

    let s = wait_for(&client, "every resource of version 1", complete).await;
    check_mapping(&s);
    for kind in Kind::ALL {
        cp.ack(kind, "1").await;
    }

    // An EDS scale-up: ACKed with the new version.
    cp.set("2", resources(&[7001, 7002])).await;
    let s = wait_for(&client, "two endpoints", |s| {
        endpoint_ports(s) == [7001, 7002]
    })
    .await;
    assert_eq!(s.versions[&Kind::Endpoint], "2");
    let weights: Vec<u32> = s.resources.endpoints["web"]
        .endpoints
        .iter()
        .map(|e| e.weight.get())
        .collect();
    assert_eq!(weights, [1, 2]);
    cp.ack(Kind::Endpoint, "2").await;

    // A cluster baton cannot serve: the CDS response is NACKed with a
    // message naming it, and the accepted clusters stay.
    let mut bad = resources(&[7001, 7002]);
    bad["clusters"][0]["lb_policy"] = json!("CLUSTER_PROVIDED");
    cp.set("3", bad).await;
    // (A NACK carries the last accepted version, not the rejected one.)
    let nack = cp
        .event(|e| e["event"] == "nack" && e["type_url"] == Kind::Cluster.type_url())
        .await;
    let message = nack["error"].as_str().unwrap();
    assert!(
        message.contains("\"web\"") && message.contains("CLUSTER_PROVIDED"),
        "{message}"
    );
    let mut status = client.status();
    let status = tokio::time::timeout(
        PATIENCE,
        status.wait_for(|s| s.rejected.get(&Kind::Cluster).is_some_and(|n| *n > 0)),
    )
    .await
    .unwrap()
    .unwrap()
    .clone();
    assert_eq!(status.last_rejection.as_ref().unwrap().1, message);
    let s = client.snapshots().borrow().clone();
    assert_ne!(
        s.versions[&Kind::Cluster],
        "3",
        "the rejected version is not taken"
    );
    assert_eq!(
        s.resources.clusters["web"].cluster.lb,
        baton_config::Lb::LeastRequest
    );
    check_mapping_endpoints_kept(&s);

    // The tcp listener and its cluster removed (and the bad cluster
    // fixed): gone from the snapshot, the rest kept.
    let mut fewer = resources(&[7001, 7002]);
    fewer["listeners"] = json!([fewer["listeners"][0]]);
    fewer["clusters"] = json!([fewer["clusters"][0]]);
    cp.set("4", fewer).await;
    let s = wait_for(&client, "the tcp listener and db cluster removed", |s| {
        !s.resources.listeners.contains_key("tcp") && !s.resources.clusters.contains_key("db")
    })
    .await;
    assert!(s.resources.listeners.contains_key("http"));
    assert!(s.resources.clusters.contains_key("web"));
    assert_eq!(endpoint_ports(&s), [7001, 7002]);
    cp.ack(Kind::Listener, "4").await;
}

fn check_mapping_endpoints_kept(s: &Snapshot) {
    assert_eq!(endpoint_ports(s), [7001, 7002]);
}

/// The control plane killed: the snapshot stays; restarted on the same
/// port: the client resumes and takes what is new.
async fn restart(mode: XdsMode) {
    let mut cp = ControlPlane::start(0).await;
    cp.set("1", resources(&[7001])).await;
    let client = Client::start(bootstrap(cp.port, mode));
    wait_for(&client, "every resource of version 1", complete).await;
    cp.ack(Kind::Route, "1").await;

    let port = cp.kill().await;
    let mut status = client.status();
    tokio::time::timeout(PATIENCE, status.wait_for(|s| !s.connected))
        .await
        .unwrap()
        .unwrap();
    let kept = client.snapshots().borrow().clone();
    assert!(complete(&kept), "the last snapshot stays: {kept:#?}");
    check_mapping(&kept);

    let mut cp = ControlPlane::start(port).await;
    // The new control plane starts with version 1 again, then 2.
    cp.set("1", resources(&[7001])).await;
    tokio::time::timeout(PATIENCE, status.wait_for(|s| s.connected && s.streams >= 2))
        .await
        .unwrap()
        .unwrap();
    // The new stream starts from what the client holds: CDS with its
    // version (state of the world) or each cluster's (delta), and the
    // EDS subscription it had.
    let cds = cp
        .event(|e| e["event"] == "request" && e["type_url"] == Kind::Cluster.type_url())
        .await;
    let eds = cp
        .event(|e| e["event"] == "request" && e["type_url"] == Kind::Endpoint.type_url())
        .await;
    assert_eq!(eds["names"], json!(["web"]), "{eds}");
    match mode {
        XdsMode::Sotw => {
            assert_eq!(cds["version"], "1", "{cds}");
            assert_eq!(eds["version"], "1", "{eds}");
        }
        XdsMode::Delta => {
            let held = cds["initial_versions"].as_object().unwrap();
            let names: Vec<&str> = held.keys().map(String::as_str).collect();
            assert_eq!(names, ["db", "web"], "{cds}");
            assert!(
                held.values()
                    .all(|v| v.as_str().is_some_and(|v| !v.is_empty())),
                "{cds}"
            );
            let held = eds["initial_versions"].as_object().unwrap();
            assert!(held.contains_key("web"), "{eds}");
        }
    }
    cp.set("2", resources(&[7003])).await;
    let s = wait_for(&client, "the restarted control plane's update", |s| {
        endpoint_ports(s) == [7003]
    })
    .await;
    assert!(complete(&s));
    cp.ack(Kind::Endpoint, "2").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_of_the_world_updates_and_nack() {
    updates(XdsMode::Sotw).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_updates_and_nack() {
    updates(XdsMode::Delta).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_of_the_world_survives_a_control_plane_restart() {
    restart(XdsMode::Sotw).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_survives_a_control_plane_restart() {
    restart(XdsMode::Delta).await;
}

/// Runs `openssl` in `dir`; it must succeed.
fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl runs (.ci/run installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, and two certificates it signs: the control plane's (for the
/// name `cp.test`) and the client's.
fn certificates(dir: &std::path::Path) {
    let key = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509", "-days", "2", "-subj", "/CN=xds test CA"];
    ca.extend(key);
    ca.extend(["-keyout", "ca.key", "-out", "ca.pem"]);
    openssl(dir, &ca);
    for (name, ext) in [
        (
            "cp",
            "subjectAltName=DNS:cp.test\nextendedKeyUsage=serverAuth\n",
        ),
        ("client", "extendedKeyUsage=clientAuth\n"),
    ] {
        std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
        let mut req = vec!["req", "-subj"];
        let subject = format!("/CN={name}");
        req.push(&subject);
        req.extend(key);
        let (k, csr) = (format!("{name}.key"), format!("{name}.csr"));
        req.extend(["-keyout", &k, "-out", &csr]);
        openssl(dir, &req);
        let (pem, ext) = (format!("{name}.pem"), format!("{name}.ext"));
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-days",
                "2",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-extfile",
                &ext,
                "-out",
                &pem,
            ],
        );
    }
}

/// `[xds.tls]`: mTLS to a control plane that requires a client
/// certificate, its name checked as `server_name` says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_to_the_control_plane() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    certificates(d);
    let (cert, key, ca) = (d.join("cp.pem"), d.join("cp.key"), d.join("ca.pem"));
    let mut cp = ControlPlane::start_with(
        0,
        &[
            "-tls-cert".as_ref(),
            cert.as_os_str(),
            "-tls-key".as_ref(),
            key.as_os_str(),
            "-tls-client-ca".as_ref(),
            ca.as_os_str(),
        ],
    )
    .await;
    cp.set("1", resources(&[7001])).await;
    let mut bootstrap = bootstrap(cp.port, XdsMode::Sotw);
    bootstrap.tls = Some(baton_config::XdsTls {
        ca: Some(ca.clone()),
        server_name: Some("cp.test".into()),
        identity: Some((d.join("client.pem"), d.join("client.key"))),
    });
    let client = Client::start(bootstrap);
    let s = wait_for(&client, "every resource over mTLS", complete).await;
    check_mapping(&s);
    cp.ack(Kind::Cluster, "1").await;
}
