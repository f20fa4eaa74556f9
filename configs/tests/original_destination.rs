//! `original_destination`, `[[listeners.destinations]]` and `type =
//! "original_dst"` clusters: what parses, and every misuse refused with
//! the line, column and key that caused it.
// Test code: a panic is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::error;

use baton_config::{ClusterId, ClusterKind, OriginalDestination, SupervisorView, Target, parse};

/// A tcp listener with `extra` keys, its fallback cluster `any` (an
/// original_dst one) and a static cluster `web`.
fn config(listener_extra: &str, tail: &str) -> String {
    format!(
        "[[listeners]]\nname = \"out\"\naddress = \"127.0.0.1:15001\"\ncluster = \"any\"\n\
         {listener_extra}\
         [[clusters]]\nname = \"any\"\ntype = \"original_dst\"\n\
         [[clusters]]\nname = \"web\"\nendpoints = [\"127.0.0.1:80\"]\n{tail}"
    )
}

#[test]
fn a_sidecar_listener_routes_by_destination_with_an_original_dst_fallback() {
    let text = config(
        "original_destination = \"redirect\"\n\
         [[listeners.destinations]]\nport = 80\ncidr = \"10.0.0.0/8\"\ncluster = \"web\"\n\
         [[listeners.destinations]]\ncidr = \"fd00::/8\"\ncluster = \"web\"\n",
        "",
    );
    let c = parse("ok.toml", &text).unwrap();
    let l = &c.listeners[0];
    assert_eq!(l.original_destination, Some(OriginalDestination::Redirect));
    assert_eq!(l.target, Target::Cluster(ClusterId::new(0)));
    assert_eq!(c.clusters[0].kind, ClusterKind::OriginalDst);
    assert!(c.clusters[0].endpoints.is_empty());
    assert_eq!(c.clusters[1].kind, ClusterKind::Static);
    let [port80, v6] = &l.destinations[..] else {
        panic!("two destinations: {:?}", l.destinations)
    };
    assert_eq!(port80.cluster, ClusterId::new(1));
    assert!(port80.matches("10.1.2.3:80".parse().unwrap()));
    assert!(!port80.matches("10.1.2.3:81".parse().unwrap()));
    assert!(!port80.matches("11.1.2.3:80".parse().unwrap()));
    assert!(v6.matches("[fd00::5]:443".parse().unwrap()));
    assert!(!v6.matches("[2001:db8::5]:443".parse().unwrap()));

    let tproxy = config("original_destination = \"tproxy\"\n", "");
    let c = parse("ok.toml", &tproxy).unwrap();
    assert_eq!(
        c.listeners[0].original_destination,
        Some(OriginalDestination::Tproxy)
    );
    // The supervisor sees what it binds with.
    let view = SupervisorView::parse("ok.toml", &tproxy).unwrap();
    assert!(view.listeners[0].transparent());
    let view = SupervisorView::parse("ok.toml", &text).unwrap();
    assert!(!view.listeners[0].transparent());
    // A PROXY header's destination serves as well.
    parse("ok.toml", &config("proxy_protocol = \"v2\"\n", "")).unwrap();
}

#[test]
fn bad_values_are_refused_where_they_are() {
    let (line, column, path, message) = error(&config("original_destination = \"nat\"\n", ""));
    assert_eq!((line, column), (5, 24));
    assert_eq!(path, "listeners[0].original_destination");
    assert!(
        message.contains("redirect") && message.contains("tproxy"),
        "{message}"
    );

    let (line, column, path, message) = error(&config(
        "original_destination = \"redirect\"\n[[listeners.destinations]]\ncidr = \"10.0.0.0/33\"\ncluster = \"web\"\n",
        "",
    ));
    assert_eq!((line, column), (7, 8));
    assert_eq!(path, "listeners[0].destinations[0].cidr");
    assert!(message.contains("10.0.0.0/33"), "{message}");

    let (_, _, path, message) = error(&config(
        "original_destination = \"redirect\"\n[[listeners.destinations]]\ncluster = \"web\"\n",
        "",
    ));
    assert_eq!(path, "listeners[0].destinations[0]");
    assert!(message.contains("port, cidr"), "{message}");

    let (line, _, path, _) = error(&config(
        "original_destination = \"redirect\"\n[[listeners.destinations]]\nport = 70000\ncluster = \"web\"\n",
        "",
    ));
    assert_eq!(line, 7);
    assert_eq!(path, "listeners[0].destinations[0].port");

    let (_, _, path, message) = error(&config(
        "original_destination = \"redirect\"\n[[listeners.destinations]]\nport = 80\ncluster = \"nope\"\n",
        "",
    ));
    assert_eq!(path, "listeners[0].destinations[0].cluster");
    assert!(message.contains("no cluster named \"nope\""), "{message}");

    let (_, _, path, message) = error(&config(
        "original_destination = \"redirect\"\n[[listeners.destinations]]\nport = 80\ncluster = \"web\"\ncolour = 1\n",
        "",
    ));
    assert_eq!(path, "listeners[0].destinations[0].colour");
    assert!(message.contains("unknown field"), "{message}");
}

#[test]
fn an_original_dst_cluster_has_no_endpoints_and_serves_tcp_listeners_that_learn_destinations() {
    // Endpoints given: refused where they are.
    let text = "[[listeners]]\nname = \"out\"\naddress = \"127.0.0.1:0\"\ncluster = \"any\"\n\
                original_destination = \"redirect\"\n\
                [[clusters]]\nname = \"any\"\ntype = \"original_dst\"\nendpoints = [\"127.0.0.1:1\"]\n";
    let (line, column, path, message) = error(text);
    assert_eq!((line, column), (9, 13));
    assert_eq!(path, "clusters[0].endpoints");
    assert!(message.contains("no endpoints"), "{message}");

    let (line, _, path, message) = error(&config(
        "",
        "[[clusters]]\nname = \"x\"\ntype = \"dynamic\"\n",
    ));
    assert_eq!(line, 13);
    assert_eq!(path, "clusters[2].type");
    assert!(message.contains("original_dst"), "{message}");

    let (_, _, path, _) = error(&config("", "[[clusters]]\nname = \"x\"\n"));
    assert_eq!(path, "clusters[2].endpoints");

    let (_, _, path, _) = error(
        &config("original_destination = \"redirect\"\n", "").replace(
            "type = \"original_dst\"\n",
            "type = \"original_dst\"\nlb = \"maglev\"\n",
        ),
    );
    assert_eq!(path, "clusters[0].lb");

    // A listener that cannot tell where a connection was going.
    let (line, _, path, message) = error(&config("", ""));
    assert_eq!(line, 4);
    assert_eq!(path, "listeners[0].cluster");
    assert!(message.contains("original_destination"), "{message}");

    let (_, _, path, message) = error(
        &config(
            "[[listeners.destinations]]\nport = 80\ncluster = \"web\"\n",
            "",
        )
        .replace("cluster = \"any\"\n", "cluster = \"web\"\n"),
    );
    assert_eq!(path, "listeners[0].destinations");
    assert!(message.contains("original_destination"), "{message}");

    // Not both ways of learning it.
    let (_, _, path, _) = error(&config(
        "original_destination = \"tproxy\"\nproxy_protocol = \"v1\"\n",
        "",
    ));
    assert_eq!(path, "listeners[0].original_destination");

    // L4 only.
    let http = config("protocol = \"http\"\n", "");
    let (_, _, path, message) = error(&http);
    assert_eq!(path, "listeners[0].cluster");
    assert!(message.contains("original_dst"), "{message}");
    let (_, _, path, _) = error(
        &config(
            "protocol = \"http\"\noriginal_destination = \"redirect\"\n",
            "",
        )
        .replace("cluster = \"any\"\n", "cluster = \"web\"\n"),
    );
    assert_eq!(path, "listeners[0].original_destination");
}

#[test]
fn source_address_client_is_for_tcp_listeners_clusters() {
    let with = |protocol: &str, value: &str| {
        format!(
            "[[listeners]]\nname = \"in\"\naddress = \"127.0.0.1:0\"\nprotocol = \"{protocol}\"\ncluster = \"app\"\n\
             [[clusters]]\nname = \"app\"\nendpoints = [\"127.0.0.1:80\"]\nsource_address = \"{value}\"\n"
        )
    };
    let c = parse("ok.toml", &with("tcp", "client")).unwrap();
    assert_eq!(
        c.clusters[0].source_address,
        baton_config::SourceAddress::Client
    );
    let (line, column, path, _) = error(&with("tcp", "proxy"));
    assert_eq!((line, column), (9, 18));
    assert_eq!(path, "clusters[0].source_address");
    let (_, _, path, message) = error(&with("http", "client"));
    assert_eq!(path, "listeners[0].cluster");
    assert!(message.contains("source_address"), "{message}");
}

/// A udp listener learns each datagram's original destination with
/// TPROXY only (NAT leaves a datagram none to read back), and its flows
/// may then go to it (`original_dst`); without it they cannot.
#[test]
fn a_udp_listener_takes_tproxy_and_an_original_dst_cluster() {
    let udp = |extra: &str| config(&format!("protocol = \"udp\"\n{extra}"), "");
    let text = udp("original_destination = \"tproxy\"\n");
    let c = parse("ok.toml", &text).unwrap();
    assert_eq!(
        c.listeners[0].original_destination,
        Some(OriginalDestination::Tproxy)
    );
    assert_eq!(c.listeners[0].target, Target::Cluster(ClusterId::new(0)));
    let view = SupervisorView::parse("ok.toml", &text).unwrap();
    assert!(view.listeners[0].transparent() && view.listeners[0].datagram());

    let (line, column, path, message) = error(&udp("original_destination = \"redirect\"\n"));
    assert_eq!((line, column), (6, 24));
    assert_eq!(path, "listeners[0].original_destination");
    assert!(
        message.contains("\"tproxy\" only") && message.contains("SO_ORIGINAL_DST"),
        "{message}"
    );

    let (_, _, path, message) = error(&udp(""));
    assert_eq!(path, "listeners[0].cluster");
    assert!(message.contains("original_destination"), "{message}");
}
