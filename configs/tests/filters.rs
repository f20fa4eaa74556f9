//! `filters` on listeners and HTTP routes (issue 15): what parses into
//! which filter, and every mistake refused at its line and column.
// Test code: a panic is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use baton_config::filter::{Cidr, Filter, HeaderEdit, RangePolicy, RpcError};
use baton_config::{ConfigError, parse};

const TAIL: &str = "[[clusters]]\nname = \"c\"\nendpoints = [\"127.0.0.1:1\"]\n";

/// A listener speaking `protocol` (line 1 is `[[listeners]]`; its own
/// keys end on line 5), then `extra`, then the cluster.
fn listener(protocol: &str, extra: &str) -> String {
    format!(
        "[[listeners]]\nname = \"a\"\naddress = \"127.0.0.1:0\"\nprotocol = \"{protocol}\"\ncluster = \"c\"\n{extra}{TAIL}"
    )
}

fn error(text: &str) -> (usize, String, String) {
    match parse("bad.toml", text) {
        Err(ConfigError::Invalid {
            line,
            path,
            message,
            ..
        }) => (line, path, message),
        other => panic!("expected an Invalid error for {text:?}, got {other:?}"),
    }
}

#[test]
fn a_listeners_filters_parse_in_order_both_ways_of_writing_them() {
    let inline = listener(
        "tcp",
        "filters = [{ name = \"source_ranges\", deny = [\"192.0.2.0/24\"] }, \
         { name = \"byte_limit\", to_upstream = 1024 }]\n",
    );
    let tables = format!(
        "[[listeners]]\nname = \"a\"\naddress = \"127.0.0.1:0\"\ncluster = \"c\"\n\
         [[listeners.filters]]\nname = \"source_ranges\"\ndeny = [\"192.0.2.0/24\"]\n\
         [[listeners.filters]]\nname = \"byte_limit\"\nto_upstream = 1024\n{TAIL}"
    );
    for text in [inline, tables] {
        let config = parse("ok.toml", &text).unwrap();
        assert_eq!(
            config.listeners[0].filters,
            [
                Filter::SourceRanges {
                    policy: RangePolicy::Deny,
                    ranges: vec!["192.0.2.0/24".parse::<Cidr>().unwrap()],
                },
                Filter::ByteLimit {
                    to_upstream: Some(1024),
                    to_client: None,
                },
            ]
        );
    }
}

#[test]
fn http_listener_and_route_filters_parse_with_disabled_ones() {
    let text = listener(
        "http",
        "filters = [{ name = \"headers\", request_set = { \"X-Edge\" = \"1\" }, \
         response_remove = [\"server\"] }]\n\
         [[listeners.routes]]\npath_prefix = \"/api\"\ncluster = \"c\"\n\
         filters = [{ name = \"headers\", disabled = true }, \
         { name = \"headers\", request_append = { \"x-route\" = \"api\" } }]\n",
    );
    let config = parse("ok.toml", &text).unwrap();
    let l = &config.listeners[0];
    assert_eq!(
        l.filters,
        [Filter::Headers {
            request: vec![HeaderEdit::Set("x-edge".into(), "1".into())],
            response: vec![HeaderEdit::Remove("server".into())],
        }]
    );
    let route = &l.http.as_ref().unwrap().routes[0];
    assert_eq!(route.disabled_filters, ["headers"]);
    assert_eq!(
        route.filters,
        [Filter::Headers {
            request: vec![HeaderEdit::Append("x-route".into(), "api".into())],
            response: vec![],
        }]
    );
}

#[test]
fn an_rpc_fault_defaults_to_unavailable() {
    let text = listener(
        "bolt",
        "filters = [{ name = \"rpc_fault\", service = \"com.example.Echo\" }]\n",
    );
    let config = parse("ok.toml", &text).unwrap();
    assert_eq!(
        config.listeners[0].filters,
        [Filter::RpcFault {
            service: "com.example.Echo".into(),
            method: None,
            error: RpcError::Unavailable,
        }]
    );
}

#[test]
fn every_mistake_is_refused_at_its_entry() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "tcp",
            "filters = [{ name = \"gzip\" }]\n",
            "unknown filter \"gzip\"",
        ),
        (
            "tcp",
            "filters = [{ name = \"byte_limit\", allow = [\"10.0.0.0/8\"] }]\n",
            "byte_limit has no setting `allow`",
        ),
        (
            "tcp",
            "filters = [{ name = \"source_ranges\", allow = [\"10.0.0.0/33\"] }]\n",
            "is not an address range",
        ),
        (
            "tcp",
            "filters = [{ name = \"source_ranges\", allow = [\"10.0.0.1\"], deny = [\"10.0.0.2\"] }]\n",
            "one of `allow` or `deny`",
        ),
        (
            "tcp",
            "filters = [{ name = \"headers\", request_set = { a = \"1\" } }]\n",
            "headers cannot run on a tcp listener",
        ),
        (
            "http",
            "filters = [{ name = \"byte_limit\", to_client = 1 }]\n",
            "byte_limit cannot run on a http listener",
        ),
        (
            "http",
            "filters = [{ name = \"rpc_fault\", service = \"s\" }]\n",
            "rpc_fault cannot run on a http listener",
        ),
        (
            "bolt",
            "filters = [{ name = \"rpc_fault\", service = \"s\", error = \"oops\" }]\n",
            "is not an RPC error",
        ),
        (
            "http",
            "filters = [{ name = \"headers\", request_set = { \"content-length\" = \"1\" } }]\n",
            "framing or connection management",
        ),
        (
            "http",
            "filters = [{ name = \"headers\", response_set = { \"x-a\" = \"1\\r\\nx-b: 2\" } }]\n",
            "control character",
        ),
        (
            "http",
            "filters = [{ name = \"headers\", disabled = true }]\n",
            "`disabled` applies to filters of a route",
        ),
        (
            "http",
            "filters = [{ name = \"headers\", colour = \"blue\" }]\n",
            "unknown field `colour`",
        ),
    ];
    for (protocol, extra, wanted) in cases {
        let (line, path, message) = error(&listener(protocol, extra));
        assert_eq!(line, 6, "{extra}: {message}");
        assert!(path.starts_with("listeners[0].filters"), "{extra}: {path}");
        assert!(message.contains(wanted), "{extra}: {message}");
    }
}

#[test]
fn a_route_may_only_turn_off_filters_its_listener_has() {
    let (line, path, message) = error(&listener(
        "http",
        "[[listeners.routes]]\npath_prefix = \"/\"\ncluster = \"c\"\n\
         filters = [{ name = \"headers\", disabled = true }]\n",
    ));
    assert_eq!(line, 9);
    assert_eq!(path, "listeners[0].routes[0].filters");
    assert!(
        message.contains("not one of the listener's filters"),
        "{message}"
    );

    let (_, path, message) = error(&listener(
        "bolt",
        "[[listeners.routes]]\nservice = \"s\"\ncluster = \"c\"\n\
         filters = [{ name = \"rpc_fault\", service = \"s\" }]\n",
    ));
    assert_eq!(path, "listeners[0].routes[0].filters");
    assert!(message.contains("applies to http routes"), "{message}");
}

#[test]
fn a_wasm_plugin_parses_in_both_forms() {
    use baton_config::filter::WasmPlugin;
    let named = listener(
        "http",
        "filters = [{ name = \"wasm\", file = \"p.wasm\", config = \"x\", root_id = \"r\", fuel = 1000 }]\n",
    );
    let config = parse("ok.toml", &named).unwrap();
    assert_eq!(
        config.listeners[0].filters,
        [Filter::Wasm(WasmPlugin {
            file: "p.wasm".into(),
            config: "x".into(),
            root_id: "r".into(),
            fuel: 1000,
        })]
    );
    let short = listener(
        "http",
        "[[listeners.routes]]\npath_prefix = \"/\"\ncluster = \"c\"\n\
         filters = [{ wasm = \"p.wasm\", config = \"x\" }]\n",
    );
    let config = parse("ok.toml", &short).unwrap();
    let route = &config.listeners[0].http.as_ref().unwrap().routes[0];
    assert_eq!(
        route.filters,
        [Filter::Wasm(WasmPlugin {
            file: "p.wasm".into(),
            config: "x".into(),
            root_id: String::new(),
            fuel: WasmPlugin::DEFAULT_FUEL,
        })]
    );
}

#[test]
fn bad_wasm_settings_are_refused_at_their_entry() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "http",
            "filters = [{ name = \"wasm\", config = \"x\" }]\n",
            "wasm needs `file`",
        ),
        (
            "http",
            "filters = [{ name = \"wasm\", file = \"a.wasm\", wasm = \"b.wasm\" }]\n",
            "not both",
        ),
        (
            "http",
            "filters = [{ wasm = \"a.wasm\", fuel = 0 }]\n",
            "`fuel` must be more than 0",
        ),
        (
            "http",
            "filters = [{ wasm = \"a.wasm\", allow = [\"10.0.0.0/8\"] }]\n",
            "wasm has no setting `allow`",
        ),
        (
            "tcp",
            "filters = [{ wasm = \"a.wasm\" }]\n",
            "wasm cannot run on a tcp listener",
        ),
        (
            "http",
            "filters = [{ config = \"x\" }]\n",
            "a filter needs a `name`",
        ),
    ];
    for (protocol, extra, wanted) in cases {
        let (line, path, message) = error(&listener(protocol, extra));
        assert_eq!(line, 6, "{extra}: {message}");
        assert!(path.starts_with("listeners[0].filters"), "{extra}: {path}");
        assert!(message.contains(wanted), "{extra}: {message}");
    }
}
