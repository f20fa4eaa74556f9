//! The `mirror` filter's config (issue 15: request mirroring, Envoy's
//! `request_mirror_policies`): its settings and defaults, and every
//! mistake refused at its line and column — a cluster that is not one
//! first of all.
// Test code: a panic is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::error;

use baton_config::filter::{Filter, Mirror};
use baton_config::parse;

/// Two clusters: `c` (line 7 on) and `shadow`.
const TAIL: &str = "[[clusters]]\nname = \"c\"\nendpoints = [\"127.0.0.1:1\"]\n\
                    [[clusters]]\nname = \"shadow\"\nendpoints = [\"127.0.0.1:2\"]\n";

/// A listener speaking `protocol` (its own keys on lines 1 to 5), then
/// `extra` from line 6, then the clusters.
fn listener(protocol: &str, extra: &str) -> String {
    format!(
        "[[listeners]]\nname = \"a\"\naddress = \"127.0.0.1:0\"\nprotocol = \"{protocol}\"\ncluster = \"c\"\n{extra}{TAIL}"
    )
}

#[test]
fn a_mirror_takes_envoys_defaults_and_its_settings() {
    let text = listener(
        "http",
        "filters = [{ name = \"mirror\", cluster = \"shadow\" }]\n\
         [[listeners.routes]]\npath_prefix = \"/api\"\ncluster = \"c\"\n\
         filters = [{ name = \"mirror\", cluster = \"c\", percentage = 25, \
         disable_shadow_host_suffix_append = true, max_body_bytes = 4096 }]\n",
    );
    let config = parse("ok.toml", &text).unwrap();
    let l = &config.listeners[0];
    assert_eq!(
        l.filters,
        [Filter::Mirror(Mirror {
            cluster: "shadow".into(),
            percentage: 100,
            host_suffix: true,
            max_body_bytes: Mirror::DEFAULT_MAX_BODY_BYTES,
        })]
    );
    assert_eq!(Mirror::DEFAULT_MAX_BODY_BYTES, 1024 * 1024);
    let route = &l.http.as_ref().unwrap().routes[0];
    assert_eq!(
        route.filters,
        [Filter::Mirror(Mirror {
            cluster: "c".into(),
            percentage: 25,
            host_suffix: false,
            max_body_bytes: 4096,
        })]
    );
}

#[test]
fn a_cluster_that_is_not_one_is_refused_where_it_is_named() {
    let text = listener(
        "http",
        "filters = [{ name = \"mirror\", cluster = \"nowhere\" }]\n",
    );
    let (line, column, path, message) = error(&text);
    assert_eq!((line, path.as_str()), (6, "listeners[0].filters"));
    // At the name as written: `filters = [{ name = "mirror", cluster = "nowhere" }]`.
    assert_eq!(column, 41);
    assert!(
        message.contains("no cluster named \"nowhere\""),
        "{message}"
    );
    // On a route too.
    let text = listener(
        "http",
        "[[listeners.routes]]\npath_prefix = \"/\"\ncluster = \"c\"\n\
         filters = [{ name = \"mirror\", cluster = \"builtin:echo\" }]\n",
    );
    let (line, _, path, message) = error(&text);
    assert_eq!((line, path.as_str()), (9, "listeners[0].routes[0].filters"));
    assert!(
        message.contains("no cluster named \"builtin:echo\""),
        "{message}"
    );
}

#[test]
fn every_mirror_mistake_is_refused_at_its_entry() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "http",
            "filters = [{ name = \"mirror\" }]\n",
            "mirror needs `cluster`",
        ),
        (
            "http",
            "filters = [{ name = \"mirror\", cluster = \"shadow\", percentage = 101 }]\n",
            "`percentage` 101 is not 0 to 100",
        ),
        (
            "http",
            "filters = [{ name = \"mirror\", cluster = \"shadow\", service = \"x\" }]\n",
            "mirror has no setting `service`",
        ),
        (
            "http",
            "filters = [{ name = \"headers\", request_set = { a = \"1\" }, cluster = \"shadow\" }]\n",
            "headers has no setting `cluster`",
        ),
        (
            "tcp",
            "filters = [{ name = \"mirror\", cluster = \"shadow\" }]\n",
            "mirror cannot run on a tcp listener",
        ),
        (
            "bolt",
            "filters = [{ name = \"mirror\", cluster = \"shadow\" }]\n",
            "mirror cannot run on a bolt listener",
        ),
    ];
    for (protocol, extra, want) in cases {
        let (line, _, path, message) = error(&listener(protocol, extra));
        assert_eq!(
            (line, path.as_str()),
            (6, "listeners[0].filters"),
            "{extra}"
        );
        assert!(message.contains(want), "{extra}: {message}");
    }
}

#[test]
fn a_shadow_cluster_that_speaks_proxy_protocol_is_refused() {
    let text = listener(
        "http",
        "filters = [{ name = \"mirror\", cluster = \"shadow\" }]\n",
    )
    .replace(
        "endpoints = [\"127.0.0.1:2\"]\n",
        "endpoints = [\"127.0.0.1:2\"]\nproxy_protocol = \"v1\"\n",
    );
    let (line, _, path, message) = error(&text);
    assert_eq!((line, path.as_str()), (6, "listeners[0].filters"));
    assert!(message.contains("PROXY protocol"), "{message}");
}
