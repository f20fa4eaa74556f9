//! Sidecar interception end to end (`original_destination`,
//! `[[listeners.destinations]]`, `type = "original_dst"` clusters): baton
//! runs in a "pod" network namespace whose nftables rules send the
//! application's outgoing TCP to it — NAT `redirect` (read back with
//! `SO_ORIGINAL_DST`) or `tproxy` (the transparent listener's accepted
//! socket keeps the original destination as its local address) — and a
//! real nginx serves on a "remote" host behind a veth pair. The rules are
//! `baton intercept install`'s (`--owner-uid 0`: root's sockets, baton's
//! own upstream connections included, are left alone, so nothing loops);
//! the application is curl (and a streaming client) running as an
//! unprivileged user, and nginx in the pod as the inbound application.
//!
//! Over IPv4 and IPv6, each way: a request to the remote host reaches
//! nginx at the address it was sent to (through the `original_dst`
//! cluster), one to port 8080 is routed by destination to the `web`
//! cluster instead, the access log records each original destination, a
//! connection made to the listener directly has none and is refused, and
//! a connection streaming checked bytes keeps flowing and keeps its
//! original destination across `baton upgrade`. Inbound, a client on the
//! remote host reaches the pod's application through the inbound
//! listeners. `baton intercept remove` leaves no rule, and traffic goes
//! direct again. Inbound, through TPROXY,
//! a cluster with `source_address = "client"` reaches the application
//! from the client's own address.
// Test code: a panic is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use baton_tests::http_peer::Nginx;
use baton_tests::netns::{Namespaces, POD_V4, POD_V6, REMOTE_V4, REMOTE_V6, remote_ips};
use baton_tests::traffic::{ModalUpstream, stream_echo_over};
use baton_tests::{Baton, PATIENCE, access_log_line as logged, eventually};
use tokio::sync::watch;

/// The remote host's ports: nginx on 80 (reached through the original
/// destination) and 8080 (routed to cluster `web`, which is nginx on
/// 9000), the streaming upstream on 7000.
const DIRECT: u16 = 80;
const ROUTED: u16 = 8080;
const WEB: u16 = 9000;
const STREAM: u16 = 7000;

/// nginx on the remote host, answering each request with the address it
/// was reached at.
fn remote_nginx(ns: &Namespaces) -> Nginx {
    let mut listens = Vec::new();
    for port in [DIRECT, ROUTED] {
        listens.push(format!("{REMOTE_V4}:{port}"));
        listens.push(format!("[{REMOTE_V6}]:{port}"));
    }
    listens.push(format!("{REMOTE_V4}:{WEB}"));
    let listens: Vec<&str> = listens.iter().map(String::as_str).collect();
    let addr = SocketAddr::from((REMOTE_V4, DIRECT));
    Nginx::start_in(
        &ns.remote_wrapper(),
        &listens,
        "    location / { return 200 \"$server_addr:$server_port\"; }",
        addr,
        || ns.in_remote(move || std::net::TcpStream::connect(addr).is_ok()),
    )
}

/// baton in the pod: an IPv4 and an IPv6 listener taking intercepted
/// connections (`mode`), port 8080 to `web`, the rest to their original
/// destination.
fn inbound(name: &str, address: &str, mode: &str) -> String {
    format!(
        "[[listeners]]\nname = \"{name}\"\naddress = \"{address}\"\n\
         original_destination = \"{mode}\"\ncluster = \"passthrough\"\n\n"
    )
}

fn config(mode: &str, access_log: &Path) -> String {
    let listener = |name: &str, address: &str| {
        format!(
            "[[listeners]]\nname = \"{name}\"\naddress = \"{address}\"\n\
             original_destination = \"{mode}\"\ncluster = \"passthrough\"\n\
             [[listeners.destinations]]\nport = {ROUTED}\ncluster = \"web\"\n\n"
        )
    };
    format!(
        "[access_log]\npath = \"{}\"\n\n{}{}\
         [[clusters]]\nname = \"passthrough\"\ntype = \"original_dst\"\n\n\
         [[clusters]]\nname = \"web\"\nendpoints = [\"{REMOTE_V4}:{WEB}\"]\n",
        access_log.display(),
        listener("out4", "0.0.0.0:0"),
        listener("out6", "[::]:0"),
    ) + &inbound("in4", "0.0.0.0:0", mode)
        + &inbound("in6", "[::]:0", mode)
}

/// The application's port in the pod (inbound interception).
const APP: u16 = 8080;

/// The pod's TCP sent through baton: every outbound connection to its
/// outbound listeners, inbound ones to the application's port to its
/// inbound listeners; root's own (baton's) left alone. Installed twice:
/// the second run replaces the first.
fn intercept_pod(ns: &Namespaces, mode: &str, baton: &Baton) {
    let port = |name: &str| baton.addr(name).port().to_string();
    let args: Vec<String> = [
        "--mode",
        mode,
        "--outbound-port",
        &port("out4"),
        "--outbound-port-v6",
        &port("out6"),
        "--inbound-port",
        &port("in4"),
        "--inbound-port-v6",
        &port("in6"),
        "--inbound-ports",
        &APP.to_string(),
        "--owner-uid",
        "0",
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    ns.intercept("install", &args);
    let once = ns.ruleset();
    ns.intercept("install", &args);
    assert_eq!(ns.ruleset(), once, "a second install changed the rules");
}

/// `curl http://to/` in the pod as the application: the body.
fn curl(ns: &Namespaces, to: SocketAddr) -> String {
    let command = ns.as_app(
        "curl",
        &["-sS", "--max-time", "10", &format!("http://{to}/")],
    );
    body_of(command, &format!("curl {to} from the pod"))
}

/// What `command` (a curl) printed, which must have succeeded.
fn body_of(mut command: std::process::Command, what: &str) -> String {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Asserts the access log has `listener`'s line for a connection to
/// `to` that went on to `to` itself (the `passthrough` cluster).
fn passed_through(log: &Path, listener: &str, to: SocketAddr, mode: &str) {
    let line = logged(
        log,
        &[
            &format!("listener={listener} "),
            &format!("destination={to} "),
        ],
    );
    assert!(
        line.contains(&format!("cluster=passthrough upstream={to} ")),
        "{mode}: {line}"
    );
}

/// nginx's answer for `ip:port`, as `$server_addr:$server_port` writes it.
fn reached(ip: IpAddr, port: u16) -> String {
    format!("{ip}:{port}")
}

async fn intercepted_traffic_goes_to_its_original_destination(mode: &str) {
    let ns = Namespaces::new();
    let dir = tempfile::tempdir().unwrap();
    let log: PathBuf = dir.path().join("access.log");
    let nginx = remote_nginx(&ns);
    let remote = ns.in_remote(|| {
        let listener = std::net::TcpListener::bind((REMOTE_V4, STREAM)).unwrap();
        listener.set_nonblocking(true).unwrap();
        listener
    });
    let _streaming = ModalUpstream::on(tokio::net::TcpListener::from_std(remote).unwrap());
    let app_nginx = pod_nginx(&ns);
    let baton = Baton::start_wrapped(&ns.pod_wrapper(), &config(mode, &log));
    let v4 = baton.addr("out4").port();
    intercept_pod(&ns, mode, &baton);

    for ip in remote_ips() {
        let listener = if ip.is_ipv4() { "out4" } else { "out6" };
        // Through the original_dst cluster, to where curl was going.
        let to = SocketAddr::new(ip, DIRECT);
        let body = tokio::task::block_in_place(|| curl(&ns, to));
        assert_eq!(body, reached(ip, DIRECT), "{mode}: curl {to}");
        passed_through(&log, listener, to, mode);
        // Port 8080 is routed by destination to cluster `web`.
        let to = SocketAddr::new(ip, ROUTED);
        let body = tokio::task::block_in_place(|| curl(&ns, to));
        assert_eq!(
            body,
            reached(IpAddr::V4(REMOTE_V4), WEB),
            "{mode}: curl {to}"
        );
        let line = logged(&log, &[&format!("destination={to} ")]);
        assert!(
            line.contains(&format!("cluster=web upstream={REMOTE_V4}:{WEB} ")),
            "{mode}: {line}"
        );
    }

    // A connection made to the listener itself was going nowhere else:
    // refused, not looped back to the listener.
    let own = SocketAddr::from(([127, 0, 0, 1], v4));
    let answer = ns.in_pod_as_app(move || {
        let mut stream = std::net::TcpStream::connect(own).unwrap();
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        let mut all = Vec::new();
        std::io::Read::read_to_end(&mut stream, &mut all).map(|_| all.len())
    });
    assert!(
        matches!(answer, Ok(0)) || answer.is_err(),
        "{mode}: closed without a byte: {answer:?}"
    );
    let line = logged(&log, &["outcome=no_original_destination"]);
    assert!(line.contains("listener=out4 "), "{line}");

    // A stream crosses an upgrade, its original destination unchanged.
    let to = SocketAddr::new(IpAddr::V4(REMOTE_V4), STREAM);
    let stream = ns.in_pod_as_app(move || {
        let stream = std::net::TcpStream::connect(to).unwrap();
        stream.set_nonblocking(true).unwrap();
        stream
    });
    let stream = tokio::net::TcpStream::from_std(stream).unwrap();
    let (stop_tx, stop) = watch::channel(false);
    let streaming = tokio::spawn(stream_echo_over(stream, 17, false, stop));
    tokio::task::block_in_place(|| {
        baton.wait_for_status("the stream through the proxy", |s| {
            s.generations.first().and_then(|g| g.connections) == Some(1)
        });
        baton.upgrade(&[]);
        let status = baton.wait_for_upgrades(1);
        let report = status.last_upgrade.unwrap();
        assert_eq!(report.migrated, 1, "{mode}: the stream moved: {report:?}");
    });
    // A while longer through the new generation, which adopted it.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    stop_tx.send(true).unwrap();
    let checked = tokio::time::timeout(PATIENCE, streaming)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(checked.error, None, "{mode}: {checked:?}");
    assert!(checked.verified > 0, "{mode}: {checked:?}");
    let line = logged(&log, &[&format!("destination={to} ")]);
    assert!(
        line.contains(&format!("cluster=passthrough upstream={to} ")) && line.contains(" moves=1"),
        "{mode}: {line}"
    );

    // Inbound: from the remote host to the pod's application, through
    // the inbound listener of the connection's family.
    for (ip, listener) in [(IpAddr::V4(POD_V4), "in4"), (IpAddr::V6(POD_V6), "in6")] {
        let to = SocketAddr::new(ip, APP);
        let body = tokio::task::block_in_place(|| curl_from_remote(&ns, to));
        assert_eq!(body, "app", "{mode}: curl {to} from the remote host");
        passed_through(&log, listener, to, mode);
    }

    // Removed: no rule left, and the application's traffic goes direct.
    ns.intercept("remove", &[]);
    assert!(!ns.ruleset().contains("table"), "{}", ns.ruleset());
    ns.intercept("remove", &[]);
    let lines = std::fs::read_to_string(&log).unwrap().lines().count();
    let to = SocketAddr::new(IpAddr::V4(REMOTE_V4), DIRECT);
    let body = tokio::task::block_in_place(|| curl(&ns, to));
    assert_eq!(body, reached(IpAddr::V4(REMOTE_V4), DIRECT));
    drop(baton);
    assert_eq!(
        std::fs::read_to_string(&log).unwrap().lines().count(),
        lines,
        "{mode}: a connection went through baton after `intercept remove`"
    );
    drop(nginx);
    drop(app_nginx);
}

/// nginx as the pod's application, on its port [`APP`], answering "app".
fn pod_nginx(ns: &Namespaces) -> Nginx {
    let v4 = SocketAddr::from((POD_V4, APP));
    let v6 = SocketAddr::from((POD_V6, APP));
    Nginx::start_in(
        &ns.pod_wrapper(),
        &[&v4.to_string(), &v6.to_string()],
        "    location / { return 200 \"app\"; }",
        v4,
        || ns.in_pod_as_app(move || std::net::TcpStream::connect(v4).is_ok()),
    )
}

/// `curl http://to/` from the remote host: the body.
fn curl_from_remote(ns: &Namespaces, to: SocketAddr) -> String {
    let mut command = std::process::Command::new("ip");
    command
        .args([
            "netns",
            "exec",
            &ns.remote,
            "curl",
            "-sS",
            "--max-time",
            "10",
        ])
        .arg(format!("http://{to}/"));
    body_of(command, &format!("curl {to} from the remote host"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirected_connections_reach_their_original_destination_across_an_upgrade() {
    intercepted_traffic_goes_to_its_original_destination("redirect").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tproxied_connections_reach_their_original_destination_across_an_upgrade() {
    intercepted_traffic_goes_to_its_original_destination("tproxy").await;
}

/// Inbound, the way a sidecar keeps the client's address: a client on
/// the remote host connects to the pod's port 80, TPROXY diverts it to
/// baton, whose `original_dst` cluster with `source_address = "client"`
/// connects to the application (nginx on the pod's address) from the
/// client's address. The application's replies to that address are sent
/// back in to baton by a mark on their connection (set when baton's
/// transparent connection left: a locally made packet from an address
/// that is not the pod's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_tproxy_connects_to_the_application_from_the_clients_address() {
    let ns = Namespaces::new();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let app = SocketAddr::from((POD_V4, DIRECT));
    let nginx = Nginx::start_in(
        &ns.pod_wrapper(),
        &[&app.to_string()],
        "    location / { return 200 \"$remote_addr\"; }",
        app,
        || ns.in_pod_as_app(move || std::net::TcpStream::connect(app).is_ok()),
    );
    let config = format!(
        "[access_log]\npath = \"{}\"\n\n\
         [[listeners]]\nname = \"in\"\naddress = \"0.0.0.0:0\"\n\
         original_destination = \"tproxy\"\ncluster = \"inbound\"\n\n\
         [[clusters]]\nname = \"inbound\"\ntype = \"original_dst\"\nsource_address = \"client\"\n",
        log.display()
    );
    let baton = Baton::start_wrapped(&ns.pod_wrapper(), &config);
    let port = baton.addr("in").port();
    ns.deliver_marked_locally();
    ns.nft(&format!(
        "table inet baton_test {{\n\
           chain prerouting {{\n\
             type filter hook prerouting priority mangle; policy accept;\n\
             iifname \"veth0\" ip daddr {POD_V4} tcp dport {DIRECT} tproxy ip to :{port} meta mark set 1\n\
           }}\n\
           chain output {{\n\
             type route hook output priority mangle; policy accept;\n\
             fib saddr type != local ct mark set 1\n\
             ct mark 1 meta mark set 1\n\
           }}\n\
         }}\n"
    ));
    let body = tokio::task::block_in_place(|| curl_from_remote(&ns, app));
    assert_eq!(
        body,
        REMOTE_V4.to_string(),
        "the application sees the client's address"
    );
    let line = logged(
        &log,
        &[
            &format!("client={REMOTE_V4}:"),
            &format!("destination={app} "),
        ],
    );
    assert!(
        line.contains(&format!("cluster=inbound upstream={app} ")),
        "{line}"
    );
    drop(baton);
    drop(nginx);
}

/// Under load, across ten upgrades: 100 intercepted connections streaming
/// checked bytes to the remote host and wrk's keep-alive connections to
/// its nginx, all through the outbound listener (redirect). Not one byte
/// wrong, no socket error, no reconnect: the access log has exactly one
/// line per connection, each with its original destination and all ten
/// moves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intercepted_connections_cross_ten_upgrades_under_load() {
    const STREAMS: usize = 100;
    const WRK_CONNECTIONS: u32 = 8;
    const KEEP: u16 = 8081;
    let ns = Namespaces::new();
    let dir = tempfile::tempdir().unwrap();
    let log: PathBuf = dir.path().join("access.log");
    let keep = SocketAddr::from((REMOTE_V4, KEEP));
    let nginx = Nginx::start_in(
        &ns.remote_wrapper(),
        &[&keep.to_string()],
        "    keepalive_requests 1000000;\n    location / { return 200 \"ok\"; }",
        keep,
        || ns.in_remote(move || std::net::TcpStream::connect(keep).is_ok()),
    );
    let remote = ns.in_remote(|| {
        let listener = std::net::TcpListener::bind((REMOTE_V4, STREAM)).unwrap();
        listener.set_nonblocking(true).unwrap();
        listener
    });
    let _streaming = ModalUpstream::on(tokio::net::TcpListener::from_std(remote).unwrap());
    let baton = Baton::start_wrapped(&ns.pod_wrapper(), &config("redirect", &log));
    intercept_pod(&ns, "redirect", &baton);

    let to = SocketAddr::from((REMOTE_V4, STREAM));
    let (stop_tx, stop) = watch::channel(false);
    let mut streams = Vec::new();
    for seed in 0..STREAMS {
        let stream = ns.in_pod_as_app(move || {
            let stream = std::net::TcpStream::connect(to).unwrap();
            stream.set_nonblocking(true).unwrap();
            stream
        });
        let stream = tokio::net::TcpStream::from_std(stream).unwrap();
        streams.push(tokio::spawn(stream_echo_over(
            stream,
            seed as u64,
            false,
            stop.clone(),
        )));
    }
    let wrk = ns
        .as_app(
            "wrk",
            &[
                "-t1",
                &format!("-c{WRK_CONNECTIONS}"),
                "-d12s",
                "--timeout",
                "10s",
                &format!("http://{keep}/"),
            ],
        )
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("wrk runs (.ci/run installs it)");
    tokio::task::block_in_place(|| {
        baton.wait_for_status("every stream through the proxy", |s| {
            s.generations
                .first()
                .and_then(|g| g.connections)
                .is_some_and(|c| c >= STREAMS as u64)
        });
        for n in 1..=10 {
            baton.upgrade(&[]);
            let status = baton.wait_for_upgrades(n);
            let report = status.last_upgrade.unwrap();
            assert!(
                report.migrated >= STREAMS as u64,
                "upgrade {n}: every stream moved: {report:?}"
            );
        }
    });
    stop_tx.send(true).unwrap();
    for (seed, streaming) in streams.into_iter().enumerate() {
        let checked = tokio::time::timeout(PATIENCE, streaming)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(checked.error, None, "stream {seed}: {checked:?}");
        assert!(checked.verified > 0, "stream {seed}: {checked:?}");
    }
    let out = tokio::task::block_in_place(|| wrk.wait_with_output()).unwrap();
    let report = baton_tests::http_peer::WrkReport::parse(&String::from_utf8_lossy(&out.stdout));
    assert!(out.status.success(), "{}", report.output);
    assert!(report.requests > 0, "{}", report.output);
    assert_eq!(report.socket_errors, [0; 4], "{}", report.output);
    assert_eq!(report.non_2xx, 0, "{}", report.output);

    // One line per connection, when it ended (written as it ends, so
    // waited for): no reconnect added any.
    let count = |text: &str, to: SocketAddr| {
        text.lines()
            .filter(|l| l.contains(&format!("destination={to} ")))
            .count()
    };
    eventually("a line for every connection", || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        count(&text, to) >= STREAMS && count(&text, keep) > WRK_CONNECTIONS as usize
    });
    drop(baton);
    let text = std::fs::read_to_string(&log).unwrap();
    let of = |to: SocketAddr| -> Vec<&str> {
        text.lines()
            .filter(|l| l.contains(&format!("destination={to} ")))
            .collect()
    };
    let streamed = of(to);
    assert_eq!(streamed.len(), STREAMS, "{text}");
    assert!(
        streamed.iter().all(|l| l.contains(" moves=10")),
        "every stream crossed all ten upgrades: {streamed:?}"
    );
    // wrk's connections and its first probe (which it closes at once).
    assert_eq!(
        of(keep).len(),
        WRK_CONNECTIONS as usize + 1,
        "wrk reconnected: {}",
        report.output
    );
    drop(nginx);
}
