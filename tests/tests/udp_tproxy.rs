//! UDP interception end to end: baton runs in a "pod" network namespace
//! whose nftables rules (`baton intercept install --mode tproxy
//! --outbound-udp-port …`) divert the application's outgoing UDP to
//! baton's udp listeners (`original_destination = "tproxy"`), and a
//! DNS-like server (Python) answers on a "remote" host behind a veth
//! pair, on port 53 and on another port.
//!
//! The application (an unprivileged user in the pod) queries the remote
//! host's address on a **connected** UDP socket, so an answer that came
//! from any address but the one it asked would never reach it. Over IPv4
//! and IPv6, each query is answered once, through baton (the server sees
//! baton's flow socket, not the application's), by the original
//! destination the datagram was going to (the `original_dst` cluster);
//! the access log has each flow's original destination; a datagram sent
//! to the listener itself has none, opens no flow and is counted. `baton intercept
//! remove` takes the rules away, and the application's queries go direct
//! again.
// Test code: a panic is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use baton_tests::admin::{http, sum};
use baton_tests::netns::{Namespaces, POD_V4, POD_V6, REMOTE_V4, REMOTE_V6, remote_ips};
use baton_tests::{Baton, PATIENCE, access_log_line, eventually};

/// The remote host's UDP ports: DNS's, and another one.
const PORTS: [u16; 2] = [53, 5300];

/// Queries per client socket.
const QUERIES: u32 = 20;

/// The remote host's server: on each of its addresses and [`PORTS`], it
/// answers each datagram with the datagram, `|`, and the address it came
/// from (so the client learns which socket asked: its own, or baton's).
const SERVER: &str = "\
import selectors, socket, sys
sel = selectors.DefaultSelector()
for family, host in ((socket.AF_INET, sys.argv[1]), (socket.AF_INET6, sys.argv[2])):
    for port in sys.argv[3:]:
        s = socket.socket(family, socket.SOCK_DGRAM)
        s.bind((host, int(port)))
        sel.register(s, selectors.EVENT_READ)
print('ready', flush=True)
while True:
    for key, _ in sel.select():
        data, source = key.fileobj.recvfrom(65535)
        peer = '%s:%d' % source[:2] if key.fileobj.family == socket.AF_INET else '[%s]:%d' % source[:2]
        key.fileobj.sendto(data + b'|' + peer.encode(), source)
";

/// The Python server in the remote namespace, killed when dropped.
struct Server(Child);

impl Server {
    fn start(ns: &Namespaces) -> Server {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &ns.remote, "python3", "-c", SERVER])
            .args([REMOTE_V4.to_string(), REMOTE_V6.to_string()])
            .args(PORTS.map(|p| p.to_string()))
            .stdout(Stdio::piped());
        let mut child = command.spawn().expect("python3 runs");
        let mut ready = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut ready)
            .unwrap();
        assert_eq!(ready.trim(), "ready", "the server started");
        Server(child)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// baton in the pod: a udp listener per family taking diverted
/// datagrams, each flow to its original destination.
fn config(access_log: &Path) -> String {
    let listener = |name: &str, address: &str| {
        format!(
            "[[listeners]]\nname = \"{name}\"\naddress = \"{address}\"\nprotocol = \"udp\"\n\
             original_destination = \"tproxy\"\ncluster = \"passthrough\"\nidle_timeout = \"1s\"\n\n"
        )
    };
    format!(
        "[access_log]\npath = \"{}\"\n\n{}{}\
         [[clusters]]\nname = \"passthrough\"\ntype = \"original_dst\"\n\n\
         [admin]\naddress = \"127.0.0.1:0\"\n",
        access_log.display(),
        listener("udp4", "0.0.0.0:0"),
        listener("udp6", "[::]:0"),
    )
}

/// What the application saw: its socket's own address (the pod's, once
/// connected), and each answer's
/// text after its query's (the address the server saw asking).
struct Asked {
    local: SocketAddr,
    askers: Vec<String>,
}

/// As the application in the pod: [`QUERIES`] queries to `to` on a
/// connected UDP socket, each answer waited for (a query that gets none
/// fails the test).
fn ask(ns: &Namespaces, to: SocketAddr) -> Asked {
    ns.in_pod_as_app(move || {
        let any: SocketAddr = if to.is_ipv4() {
            "0.0.0.0:0".parse().unwrap()
        } else {
            "[::]:0".parse().unwrap()
        };
        let socket = UdpSocket::bind(any).unwrap();
        socket.connect(to).unwrap();
        socket.set_read_timeout(Some(PATIENCE)).unwrap();
        let local = socket.local_addr().unwrap();
        let askers = queries(&socket, to, 0..QUERIES);
        Asked { local, askers }
    })
}

/// Queries `ids` on `socket` (connected to `to`), each answer waited
/// for: the address the server saw asking each.
fn queries(socket: &UdpSocket, to: SocketAddr, ids: std::ops::Range<u32>) -> Vec<String> {
    let mut askers = Vec::new();
    let mut buf = [0u8; 2048];
    for i in ids {
        let query = format!("{i}:{to}");
        socket.send(query.as_bytes()).unwrap();
        let n = socket
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("query {query:?} unanswered: {e}"));
        let answer = String::from_utf8(buf[..n].to_vec()).unwrap();
        let asker = answer
            .strip_prefix(&format!("{query}|"))
            .unwrap_or_else(|| panic!("query {query:?} got {answer:?}"));
        askers.push(asker.to_string());
    }
    askers
}

/// `baton intercept install` arguments that divert the pod's outbound
/// UDP (but root's: baton's own) to `baton`'s listeners `udp4` and `udp6`.
fn install_args(baton: &Baton) -> Vec<String> {
    let port = |name: &str| baton.addr(name).port().to_string();
    [
        "--mode",
        "tproxy",
        "--outbound-udp-port",
        &port("udp4"),
        "--outbound-udp-port-v6",
        &port("udp6"),
        "--owner-uid",
        "0",
    ]
    .iter()
    .map(ToString::to_string)
    .collect()
}

/// The pod's own address in the family of `to`.
fn pod_ip(to: SocketAddr) -> IpAddr {
    if to.is_ipv4() {
        IpAddr::V4(POD_V4)
    } else {
        IpAddr::V6(POD_V6)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intercepted_udp_reaches_its_original_destination_and_answers_come_from_it() {
    let ns = Namespaces::new();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let _server = Server::start(&ns);
    let baton = Baton::start_wrapped(&ns.pod_wrapper(), &config(&log));
    let args = install_args(&baton);
    tokio::task::block_in_place(|| {
        ns.intercept("install", &args);
        let once = ns.ruleset();
        ns.intercept("install", &args);
        assert_eq!(ns.ruleset(), once, "a second install changed the rules");
    });

    for ip in remote_ips() {
        let listener = if ip.is_ipv4() { "udp4" } else { "udp6" };
        for port in PORTS {
            let to = SocketAddr::new(ip, port);
            let asked = tokio::task::block_in_place(|| ask(&ns, to));
            // One flow: every query came to the server from one socket
            // of the pod's, and not the application's own.
            let asker: SocketAddr = asked.askers[0].parse().unwrap();
            assert!(
                asked.askers.iter().all(|a| *a == asked.askers[0]),
                "{to}: one flow: {:?}",
                asked.askers
            );
            assert_eq!(asker.ip(), pod_ip(to), "{to}");
            assert_ne!(asker, asked.local, "{to}: the query went direct");
            let line = access_log_line(
                &log,
                &[
                    &format!("listener={listener} "),
                    &format!("client={} ", asked.local),
                    &format!("destination={to} "),
                ],
            );
            assert!(
                line.contains(&format!("cluster=passthrough upstream={to} ")),
                "{to}: {line}"
            );
        }
    }

    // A datagram sent to the listener itself (loopback is never
    // diverted) was going nowhere else: the original_dst cluster has no
    // destination for it, so it opens no flow, and is counted.
    let admin = baton.admin_addr();
    let own = SocketAddr::from(([127, 0, 0, 1], baton.addr("udp4").port()));
    tokio::task::block_in_place(|| {
        ns.in_pod_as_app(move || {
            let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
            socket.send_to(b"0:to the listener", own).unwrap();
        });
        eventually(
            "a datagram without an original destination, counted",
            || {
                let scrape = ns.in_pod_as_app(move || http(admin, "GET", "/metrics").body);
                let dropped = "baton_udp_dropped_total";
                sum(&scrape, dropped, "reason=\"no_original_destination\"") == 1
                    && sum(&scrape, dropped, "listener=\"udp4\"") == 1
            },
        );
    });

    // Removed: no rule left, and the application's queries go direct
    // (the server sees the application's own socket).
    tokio::task::block_in_place(|| {
        ns.intercept("remove", &[]);
        assert!(!ns.ruleset().contains("table"), "{}", ns.ruleset());
        for ip in remote_ips() {
            let to = SocketAddr::new(ip, PORTS[0]);
            let asked = ask(&ns, to);
            let local = asked.local.to_string();
            assert!(
                asked.askers.iter().all(|a| *a == local),
                "{to}: direct from {local}: {:?}",
                asked.askers
            );
        }
    });
    drop(baton);
}

/// Across `baton upgrade`, an intercepted flow moves with both its
/// sockets: the application's connected socket (which hears only the
/// address it asked) keeps being answered, and the server sees the same
/// flow socket asking before and after — over IPv4 and IPv6.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_intercepted_flow_keeps_both_its_sockets_across_an_upgrade() {
    let ns = Namespaces::new();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let _server = Server::start(&ns);
    let text = config(&log).replace("idle_timeout = \"1s\"", "idle_timeout = \"1h\"");
    let baton = Baton::start_wrapped(&ns.pod_wrapper(), &text);
    let args = install_args(&baton);
    tokio::task::block_in_place(|| ns.intercept("install", &args));
    let old_worker = baton.worker_pid();
    tokio::task::block_in_place(|| {
        std::thread::scope(|scope| {
            let (asked_tx, asked_rx) = std::sync::mpsc::channel();
            let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
            let app = scope.spawn(|| {
                ns.in_pod_as_app(move || {
                    let sockets: Vec<(SocketAddr, UdpSocket)> = remote_ips()
                        .into_iter()
                        .map(|ip| {
                            let to = SocketAddr::new(ip, PORTS[1]);
                            let any: SocketAddr = if ip.is_ipv4() {
                                "0.0.0.0:0".parse().unwrap()
                            } else {
                                "[::]:0".parse().unwrap()
                            };
                            let socket = UdpSocket::bind(any).unwrap();
                            socket.connect(to).unwrap();
                            socket.set_read_timeout(Some(PATIENCE)).unwrap();
                            (to, socket)
                        })
                        .collect();
                    let before: Vec<Vec<String>> = sockets
                        .iter()
                        .map(|(to, s)| queries(s, *to, 0..QUERIES))
                        .collect();
                    asked_tx.send(()).unwrap();
                    go_rx.recv().unwrap();
                    let after: Vec<Vec<String>> = sockets
                        .iter()
                        .map(|(to, s)| queries(s, *to, QUERIES..2 * QUERIES))
                        .collect();
                    (before, after)
                })
            });
            asked_rx.recv().unwrap();
            baton.upgrade(&[]);
            go_tx.send(()).unwrap();
            let (before, after) = app.join().unwrap();
            for (b, a) in before.iter().zip(&after) {
                let first = &b[0];
                assert!(
                    b.iter().chain(a).all(|asker| asker == first),
                    "one flow socket before and after the upgrade: {b:?} then {a:?}"
                );
            }
        });
    });
    assert_ne!(baton.worker_pid(), old_worker, "a new generation");
    tokio::task::block_in_place(|| {
        eventually("the old worker to exit (its flows moved)", || {
            !baton_tests::alive(old_worker)
        });
    });
    drop(baton);
}
