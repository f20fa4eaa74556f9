//! baton driven by a control plane: the supervisor's xDS client against a
//! real, independently written one — go-control-plane's snapshot cache
//! and ADS server (tests/interop/xds/, built by `.ci/run` with
//! `tests/interop/xds/build.sh`; the same helper as the xDS crate's own
//! tests drives it). Each accepted change becomes a new generation that
//! every connection moves into: the tests hold clients open across the
//! changes and count what breaks (nothing may).
// Test code: a panic is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;

use baton_supervisor::control::proto::Status;
use baton_tests::Baton;
use baton_tests::admin::{http, sample};
use baton_tests::http_peer::{Client, HttpUpstream, curl, expect_bytes};
use baton_xds::Kind;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

#[path = "../../xds/tests/common/mod.rs"]
mod control_plane;

use control_plane::ControlPlane;

/// A config with nothing but the admin endpoint and `[xds]`: every
/// listener and cluster comes from the control plane.
fn config(cp: &ControlPlane) -> String {
    format!(
        "[admin]\naddress = \"127.0.0.1:0\"\n\n[xds]\nservers = [\"127.0.0.1:{}\"]\n\
         node = {{ id = \"{}\", cluster = \"test\" }}\ndebounce = \"50ms\"\n",
        cp.port, cp.node
    )
}

fn endpoints(cluster: &str, upstreams: &[&HttpUpstream]) -> Value {
    let endpoints: Vec<Value> = upstreams
        .iter()
        .map(|u| json!({ "port": u.addr.port() }))
        .collect();
    json!({ "cluster": cluster, "endpoints": endpoints })
}

/// An HTTP listener `front` on a port of baton's choosing whose routes
/// are RDS `route_config`; RouteConfigurations named in `routes`, each
/// sending `/` to a cluster; EDS clusters `a` and `b` on `a` and `b`; a
/// tcp listener `l4` to cluster `a`.
fn http_resources(
    route_config: &str,
    routes: &[(&str, &str)],
    a: &[&HttpUpstream],
    b: &[&HttpUpstream],
) -> Value {
    let routes: Vec<Value> = routes
        .iter()
        .map(|(name, cluster)| {
            json!({ "name": name, "virtual_hosts": [{
                "name": "all", "domains": ["*"],
                "routes": [{ "prefix": "/", "cluster": cluster }],
            }]})
        })
        .collect();
    json!({
        "clusters": [{ "name": "a" }, { "name": "b" }],
        "endpoints": [endpoints("a", a), endpoints("b", b)],
        "listeners": [
            { "name": "front", "port": 0, "route_config": route_config },
            { "name": "l4", "port": 0, "cluster": "a" },
        ],
        "routes": routes,
    })
}

/// Upstreams `a` and `b` (each cluster's endpoint unless a test says
/// otherwise), the control plane, and baton serving its version 1.
struct Fixture {
    a: HttpUpstream,
    b: HttpUpstream,
    cp: ControlPlane,
    baton: Baton,
    /// Listener `front`'s address.
    front: SocketAddr,
}

impl Fixture {
    /// Version 1: `front` on RouteConfiguration `rc`, `/` to `cluster`.
    async fn start(rc: &str, cluster: &str) -> Fixture {
        Fixture::start_with(rc, cluster, "").await
    }

    /// With more `[xds]` keys.
    async fn start_with(rc: &str, cluster: &str, xds: &str) -> Fixture {
        let a = HttpUpstream::start("a").await;
        let b = HttpUpstream::start("b").await;
        let mut cp = ControlPlane::start(0).await;
        cp.set("1", http_resources(rc, &[(rc, cluster)], &[&a], &[&b]))
            .await;
        let baton = Baton::start(&format!("{}{xds}", config(&cp)));
        let front = baton.addr("front");
        Fixture {
            a,
            b,
            cp,
            baton,
            front,
        }
    }

    /// Sets `version`: `front` on `rc`, `/` to `cluster`.
    async fn set(&mut self, version: &str, rc: &str, cluster: &str) {
        let resources = http_resources(rc, &[(rc, cluster)], &[&self.a], &[&self.b]);
        self.cp.set(version, resources).await;
    }
}

/// Listener `name`'s bound address, from the status (a listener the
/// control plane adds is bound with port 0's luck).
fn listener(baton: &Baton, name: &str) -> SocketAddr {
    let status = baton.wait_for_status(&format!("listener {name}"), |s| {
        s.listeners.iter().any(|l| l.name == name)
    });
    let l = status.listeners.iter().find(|l| l.name == name).unwrap();
    l.address.parse().unwrap()
}

/// Waits until the generation in force serves with `done` holding and
/// no upgrade in progress.
fn settled(
    baton: &Baton,
    what: &str,
    done: impl Fn(&baton_supervisor::control::proto::Status) -> bool,
) {
    baton.wait_for_status(what, |s| {
        s.upgrade_phase == "idle" && s.generations.iter().any(|g| g.phase == "serving") && done(s)
    });
}

/// The upstream that answered (`X-Upstream`).
async fn upstream_of(client: &mut Client, target: &str) -> String {
    let r = client.get(target).await;
    assert_eq!(r.status(), 200, "{}", r.head.raw);
    r.header("x-upstream").unwrap().to_string()
}

async fn curl_upstream(addr: SocketAddr) -> String {
    let out = curl(&["--include", &format!("http://{addr}/hello")]).await;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .find_map(|l| {
            l.strip_prefix("X-Upstream: ")
                .or_else(|| l.strip_prefix("x-upstream: "))
        })
        .unwrap_or_else(|| panic!("no X-Upstream in {text}"))
        .trim()
        .to_string()
}

/// `[xds]` and an admin address alone: the control plane's listener,
/// route and EDS cluster serve curl; status, `/config_dump` and
/// `/metrics` show the stream and the resources with their versions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_to_serving() {
    let f = Fixture::start("r", "a").await;
    assert_eq!(curl_upstream(f.front).await, "a");

    let status = f.baton.wait_for_status("the xDS stream connected", |s| {
        s.xds.as_ref().is_some_and(|x| x.connected)
    });
    let xds = status.xds.unwrap();
    assert_eq!(xds.versions["LDS"], "1");
    assert_eq!(xds.versions["CDS"], "1");
    assert_eq!(xds.resources["EDS"], 2);
    let text = String::from_utf8(f.baton.cli(&["status"]).stdout).unwrap();
    let line = format!("xds           connected to 127.0.0.1:{}", f.cp.port);
    assert!(text.contains(&line), "{text}");

    let admin = f.baton.admin_addr();
    let dump: Value = serde_json::from_str(&http(admin, "GET", "/config_dump").body).unwrap();
    assert_eq!(dump["xds"]["resources"]["RDS"]["r"], "1", "{dump}");
    assert_eq!(dump["xds"]["versions"]["CDS"], "1", "{dump}");
    let listeners = dump["config"]["listeners"].as_array().unwrap();
    assert!(listeners.iter().any(|l| l["name"] == "front"), "{dump}");

    let scrape = http(admin, "GET", "/metrics").body;
    assert_eq!(
        sample(&scrape, "baton_xds_connected"),
        Some(1.0),
        "{scrape}"
    );
    let lds = r#"baton_xds_updates_total{type="lds",result="accepted"}"#;
    assert!(sample(&scrape, lds) >= Some(1.0), "{scrape}");
    let at = sample(&scrape, "baton_xds_last_update_timestamp_seconds");
    assert!(at > Some(0.0), "{scrape}");
}

/// A control plane with no cluster for the node (go-control-plane then
/// sends no CDS response at all): the first generation does not wait for
/// one (an initial wait longer than the test's patience would fail it),
/// and a change of a direct response applies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listeners_without_clusters_serve_and_change() {
    let direct = |body: &str| {
        json!({
            "listeners": [{ "name": "front", "port": 0, "route_config": "r" }],
            "routes": [{ "name": "r", "virtual_hosts": [{
                "name": "all", "domains": ["*"],
                "routes": [{ "prefix": "/", "direct": { "status": 200, "body": body } }],
            }]}],
        })
    };
    let mut cp = ControlPlane::start(0).await;
    cp.set("1", direct("one")).await;
    let baton = Baton::start(&format!("{}initial_fetch_timeout = \"1h\"\n", config(&cp)));
    let mut client = Client::connect(baton.addr("front")).await;
    assert_eq!(client.get("/").await.text(), "one");
    cp.set("2", direct("two")).await;
    let mut n = 0;
    while client.get("/").await.text() != "two" {
        n += 1;
        assert!(n < 100_000, "the change never applied");
    }
}

/// An RDS change while keep-alive HTTP/1.1 clients send without pause:
/// every request answered 200 on the socket it started on, and each
/// client sees the new route on that same connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rds_change_under_load_reaches_every_connection() {
    const CLIENTS: usize = 8;
    let mut f = Fixture::start("r", "a").await;
    let front = f.front;
    let mut clients = Vec::new();
    let (ready_tx, mut ready) = tokio::sync::mpsc::channel(CLIENTS);
    for i in 0..CLIENTS {
        let ready_tx = ready_tx.clone();
        clients.push(tokio::spawn(async move {
            // One socket for the client's whole life: a closed one fails
            // the next request (and the test). No pause between requests.
            let mut client = Client::connect(front).await;
            assert_eq!(upstream_of(&mut client, &format!("/{i}/0")).await, "a");
            ready_tx.send(()).await.unwrap();
            let mut requests = 1u64;
            loop {
                requests += 1;
                let from = upstream_of(&mut client, &format!("/{i}/{requests}")).await;
                if from == "b" {
                    return;
                }
                assert_eq!(from, "a");
                assert!(requests < 1_000_000, "client {i} never saw the new route");
            }
        }));
    }
    for _ in 0..CLIENTS {
        ready.recv().await.unwrap();
    }
    f.set("2", "r", "b").await;
    for c in clients {
        c.await.expect("a client failed");
    }
    let last = f.baton.status().last_upgrade.unwrap();
    assert_eq!(last.kind, "xds", "{last:?}");
    assert_eq!(last.lost, 0, "{last:?}");
}

/// Delta (incremental) xDS drives baton the same way: a route change
/// reaches an open keep-alive connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_xds_changes_a_route_too() {
    let mut f = Fixture::start_with("r", "a", "mode = \"delta\"\n").await;
    let mut client = Client::connect(f.front).await;
    assert_eq!(upstream_of(&mut client, "/").await, "a");
    f.set("2", "r", "b").await;
    let mut n = 0;
    while upstream_of(&mut client, &format!("/{n}")).await != "b" {
        n += 1;
        assert!(n < 100_000, "the change never applied");
    }
    let status = f.baton.status();
    assert_eq!(status.xds.unwrap().mode, "delta");
    assert_eq!(status.last_upgrade.unwrap().kind, "xds");
}

/// EDS adds an endpoint (requests reach it) and removes one (no new
/// request reaches it), on one keep-alive connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eds_scale_up_and_down() {
    let mut f = Fixture::start("r", "a").await;
    let mut client = Client::connect(f.front).await;
    assert_eq!(upstream_of(&mut client, "/").await, "a");

    // Up: cluster a gains upstream b.
    let (a, b) = (&f.a, &f.b);
    let resources = http_resources("r", &[("r", "a")], &[a, b], &[b]);
    f.cp.set("2", resources).await;
    let mut n = 0;
    while upstream_of(&mut client, &format!("/up/{n}")).await != "b" {
        n += 1;
        assert!(n < 10_000, "the new endpoint never got a request");
    }

    // Down: upstream a leaves; once the generation that knows it serves,
    // a gets nothing new.
    let resources = http_resources("r", &[("r", "a")], &[b], &[b]);
    f.cp.set("3", resources).await;
    let b_port = format!(":{}", f.b.addr.port());
    settled(&f.baton, "cluster a on b alone", |s| {
        s.clusters.iter().any(|c| {
            c.name == "a" && c.endpoints.len() == 1 && c.endpoints[0].address.ends_with(&b_port)
        })
    });
    let a_before = f.a.requests();
    for i in 0..20 {
        assert_eq!(upstream_of(&mut client, &format!("/down/{i}")).await, "b");
    }
    assert_eq!(f.a.requests(), a_before, "a removed endpoint got requests");
}

/// LDS points listener `front` at another RouteConfiguration while 100
/// WebSocket-style tunnels and 100 keep-alive HTTP/1.1 connections are
/// open, and 20 L4 connections through listener `l4`: none closes; each
/// tunnel still echoes, each keep-alive connection's next request takes
/// the new route, each L4 connection keeps its upstream connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_lds_change_keeps_tunnels_and_keep_alive_connections() {
    const EACH: usize = 100;
    let mut f = Fixture::start("r1", "a").await;
    let mut tunnels = Vec::new();
    for i in 0..EACH {
        let mut c = Client::connect(f.front).await;
        c.send(b"GET /ws HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
            .await;
        let r = c.response("GET").await;
        assert_eq!(r.status(), 101, "tunnel {i}: {}", r.head.raw);
        let (mut stream, mut buf) = c.into_parts();
        let hello = format!("hello {i}|");
        stream.write_all(hello.as_bytes()).await.unwrap();
        expect_bytes(&mut stream, &mut buf, hello.as_bytes()).await;
        tunnels.push((stream, buf));
    }
    let mut keep_alive = Vec::new();
    for i in 0..EACH {
        let mut c = Client::connect(f.front).await;
        assert_eq!(upstream_of(&mut c, &format!("/k/{i}")).await, "a");
        keep_alive.push(c);
    }

    // L4: bytes to upstream a, here HTTP/1.1 that a answers.
    let l4 = f.baton.addr("l4");
    let mut tcp = Vec::new();
    for i in 0..20 {
        let mut c = Client::connect(l4).await;
        assert_eq!(upstream_of(&mut c, &format!("/l4/{i}")).await, "a");
        tcp.push(c);
    }

    f.set("2", "r2", "b").await;
    f.cp.ack(Kind::Route, "2").await;
    settled(&f.baton, "the listener on r2", |s| {
        s.last_upgrade.as_ref().is_some_and(|u| u.kind == "xds")
    });
    let a_connections = f.a.connections();
    for (i, c) in tcp.iter_mut().enumerate() {
        let from = upstream_of(c, &format!("/l4/{i}/after")).await;
        assert_eq!(from, "a", "L4 connection {i}");
    }
    assert_eq!(
        f.a.connections(),
        a_connections,
        "an L4 connection reconnected upstream"
    );

    for (i, (stream, buf)) in tunnels.iter_mut().enumerate() {
        let again = format!("again {i}|");
        stream.write_all(again.as_bytes()).await.unwrap();
        expect_bytes(stream, buf, again.as_bytes()).await;
    }
    for (i, c) in keep_alive.iter_mut().enumerate() {
        let from = upstream_of(c, &format!("/k/{i}/after")).await;
        assert_eq!(from, "b", "connection {i}");
    }
    let last = f.baton.status().last_upgrade.unwrap();
    assert_eq!(last.lost, 0, "{last:?}");
}

/// LDS adds a listener (the supervisor binds it, it serves) and removes
/// it (the supervisor closes it: connecting is refused).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lds_adds_and_removes_a_listener() {
    let mut f = Fixture::start("r", "a").await;
    let plain = http_resources("r", &[("r", "a")], &[&f.a], &[&f.b]);
    let mut more = plain.clone();
    more["listeners"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "name": "extra", "port": 0, "cluster": "b" }));
    f.cp.set("2", more).await;
    let extra = listener(&f.baton, "extra");
    let mut c = Client::connect(extra).await;
    assert_eq!(upstream_of(&mut c, "/").await, "b");
    drop(c);

    f.cp.set("3", plain).await;
    settled(&f.baton, "listener extra gone", |s| {
        !s.listeners.iter().any(|l| l.name == "extra")
    });
    let refused = tokio::net::TcpStream::connect(extra).await;
    assert!(refused.is_err(), "listener extra still accepts");
    assert_eq!(curl_upstream(f.front).await, "a");
}

/// A cluster baton cannot serve is NACKed with a message (the control
/// plane reports it), and a listener that cannot be bound makes the
/// composed config refused: either way the old config serves on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_resources_are_refused_and_the_old_config_serves() {
    let mut f = Fixture::start("r", "a").await;
    let good = http_resources("r", &[("r", "a")], &[&f.a], &[&f.b]);
    let mut bad = good.clone();
    bad["clusters"][0]["lb_policy"] = json!("CLUSTER_PROVIDED");
    f.cp.set("2", bad).await;
    let nack =
        f.cp.event(|e| e["event"] == "nack" && e["type_url"] == Kind::Cluster.type_url())
            .await;
    let message = nack["error"].as_str().unwrap().to_string();
    assert!(message.contains("CLUSTER_PROVIDED"), "{message}");
    let status = f.baton.wait_for_status("the NACK counted", |s| {
        s.xds.as_ref().is_some_and(|x| x.rejected > 0)
    });
    let rejection = status.xds.unwrap().last_rejection.unwrap();
    assert!(rejection.contains(&message), "{rejection}");
    assert_eq!(curl_upstream(f.front).await, "a");
    let cds = r#"baton_xds_updates_total{type="cds",result="rejected"}"#;
    f.baton.wait_for_metric(cds, "counted", |v| v >= Some(1.0));

    // A listener on an address already taken: the composed config is
    // refused (it cannot be bound), the generation in force serves on.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let mut busy = good;
    busy["listeners"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "name": "busy", "port": port, "cluster": "a" }));
    f.cp.set("3", busy).await;
    let status = f.baton.wait_for_status("the xDS upgrade refused", |s| {
        s.last_upgrade.as_ref().is_some_and(|u| u.kind == "xds") && s.upgrades.refused > 0
    });
    let reason = status.last_upgrade.unwrap().reason.unwrap();
    assert!(reason.contains("\"busy\""), "{reason}");
    assert!(!status.listeners.iter().any(|l| l.name == "busy"));
    assert_eq!(curl_upstream(f.front).await, "a");
    let refused = r#"baton_upgrades_total{kind="xds",outcome="refused"}"#;
    f.baton
        .wait_for_metric(refused, "counted", |v| v >= Some(1.0));
}

/// The control plane killed: serving goes on, the stream shows it lost;
/// started again on the same port: the stream resumes and an update
/// applies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_control_plane_restart_resumes_the_stream() {
    let mut f = Fixture::start("r", "a").await;
    let lost = |s: &Status| s.xds.as_ref().is_some_and(|x| !x.connected);
    let port = f.cp.kill().await;
    f.baton.wait_for_status("the stream lost", lost);
    assert_eq!(curl_upstream(f.front).await, "a");

    f.cp = ControlPlane::start(port).await;
    f.set("2", "r", "b").await;
    f.cp.ack(Kind::Route, "2").await;
    let mut client = Client::connect(f.front).await;
    let mut n = 0;
    while upstream_of(&mut client, &format!("/{n}")).await != "b" {
        n += 1;
        assert!(n < 100_000, "the update after the restart never applied");
    }
    assert!(f.baton.status().xds.unwrap().streams >= 2);
}

/// `baton upgrade` with the control plane down: the new generation runs
/// the resources accepted last (nothing is re-fetched), and serves them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_with_the_control_plane_down_keeps_its_config() {
    let mut f = Fixture::start("r", "b").await;
    f.cp.kill().await;
    f.baton.wait_for_status("the stream lost", |s| {
        s.xds.as_ref().is_some_and(|x| !x.connected)
    });

    let out = f.baton.upgrade(&[]);
    assert!(out.contains("succeeded"), "{out}");
    let status = f.baton.status();
    assert_eq!(status.generations.len(), 1);
    assert_ne!(status.generations[0].generation, 1);
    assert_eq!(listener(&f.baton, "front"), f.front);
    assert_eq!(curl_upstream(f.front).await, "b");
    let admin = f.baton.admin_addr();
    let dump: Value = serde_json::from_str(&http(admin, "GET", "/config_dump").body).unwrap();
    assert_eq!(dump["xds"]["resources"]["CDS"]["b"], "1", "{dump}");
}
