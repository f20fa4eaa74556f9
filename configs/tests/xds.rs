//! `[xds]`: the bootstrap of the control-plane client — its keys, defaults,
//! static listeners beside it, and mistakes refused with line, column and
//! key.
// Test code: a panic is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use baton_config::{XdsMode, parse};

mod common;

/// A static listener and cluster, then `xds` (from line 8 on).
fn with(xds: &str) -> String {
    format!(
        "[[listeners]]\nname = \"a\"\naddress = \"127.0.0.1:0\"\ncluster = \"c\"\n\
         [[clusters]]\nname = \"c\"\nendpoints = [\"127.0.0.1:1\"]\n{xds}"
    )
}

/// How `xds` after the static part is refused.
fn error(xds: &str) -> (usize, usize, String, String) {
    common::error(&with(xds))
}

#[test]
fn a_bootstrap_beside_static_listeners() {
    let config = parse(
        "t.toml",
        &with(
            "[xds]\nservers = [\"127.0.0.1:18000\", \"cp.example:443\"]\nmode = \"delta\"\n\
             node = { id = \"sidecar-1\", cluster = \"web\", metadata = { zone = \"a\" } }\n",
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let xds = config.xds.expect("[xds]");
    assert_eq!(xds.mode, XdsMode::Delta);
    let servers: Vec<String> = xds.servers.iter().map(ToString::to_string).collect();
    assert_eq!(servers, ["127.0.0.1:18000", "cp.example:443"]);
    assert_eq!(xds.node.id, "sidecar-1");
    assert_eq!(xds.node.cluster, "web");
    assert_eq!(xds.node.metadata["zone"], "a");
    assert_eq!(config.listeners.len(), 1, "the static listener stays");
    assert_eq!(xds.tls, None, "plaintext without [xds.tls]");
    assert_eq!(
        xds.initial_fetch_timeout,
        baton_config::Xds::INITIAL_FETCH_TIMEOUT
    );
    assert_eq!(xds.debounce, baton_config::Xds::DEBOUNCE);
}

#[test]
fn the_initial_wait_and_the_debounce() {
    let config = parse(
        "t.toml",
        &with(
            "[xds]\nservers = [\"cp:1\"]\nnode = { id = \"n\" }\n             initial_fetch_timeout = \"2s\"\ndebounce = \"250ms\"\n",
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let xds = config.xds.unwrap();
    assert_eq!(xds.initial_fetch_timeout, std::time::Duration::from_secs(2));
    assert_eq!(xds.debounce, std::time::Duration::from_millis(250));
    let (line, _, key, message) =
        error("[xds]\nservers = [\"cp:1\"]\nnode = { id = \"n\" }\ndebounce = \"soon\"\n");
    assert_eq!((line, key.as_str()), (11, "xds.debounce"), "{message}");
}

#[test]
fn tls_and_mtls_to_the_control_plane() {
    let config = parse(
        "t.toml",
        &with(
            "[xds]\nservers = [\"cp:443\"]\nnode = { id = \"n\" }\n[xds.tls]\nca = \"ca.pem\"\n\
             server_name = \"cp.example\"\ncertificate = \"me.pem\"\nprivate_key = \"me.key\"\n",
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let tls = config.xds.unwrap().tls.unwrap();
    assert_eq!(tls.ca.unwrap().to_str(), Some("ca.pem"));
    assert_eq!(tls.server_name.as_deref(), Some("cp.example"));
    let (cert, key) = tls.identity.unwrap();
    assert_eq!(
        (cert.to_str(), key.to_str()),
        (Some("me.pem"), Some("me.key"))
    );
}

#[test]
fn mode_defaults_to_state_of_the_world_and_no_table_no_client() {
    let config = parse(
        "t.toml",
        &with("[xds]\nservers = [\"127.0.0.1:1\"]\nnode = { id = \"n\" }\n"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.xds.expect("[xds]").mode, XdsMode::Sotw);
    assert_eq!(parse("t.toml", &with("")).unwrap().xds, None);
}

#[test]
fn mistakes_point_at_the_key() {
    let (line, column, path, message) =
        error("[xds]\nservers = [\"127.0.0.1:1\", \"nowhere\"]\nnode = { id = \"n\" }\n");
    assert_eq!((line, column, path.as_str()), (9, 27, "xds.servers[1]"));
    assert!(message.contains("host:port"), "{message}");

    let (line, _, path, message) = error("[xds]\nservers = []\nnode = { id = \"n\" }\n");
    assert_eq!((line, path.as_str()), (9, "xds.servers"));
    assert!(message.contains("at least one"), "{message}");

    let (line, _, path, _) = error("[xds]\nservers = [\"h:1\"]\nnode = { id = \"\" }\n");
    assert_eq!((line, path.as_str()), (10, "xds.node.id"));

    let (line, _, _, message) =
        error("[xds]\nservers = [\"h:1\"]\nnode = { id = \"n\" }\nmode = \"push\"\n");
    assert_eq!(line, 11);
    assert!(message.contains("sotw"), "{message}");

    let (_, _, _, message) =
        error("[xds]\nservers = [\"h:1\"]\nnode = { id = \"n\", zone = \"a\" }\n");
    assert!(message.contains("zone"), "{message}");

    let (line, _, path, message) = error(
        "[xds]\nservers = [\"h:1\"]\nnode = { id = \"n\" }\n[xds.tls]\ncertificate = \"c.pem\"\n",
    );
    assert_eq!((line, path.as_str()), (11, "xds.tls"));
    assert!(message.contains("private_key"), "{message}");
}
