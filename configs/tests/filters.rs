//! `filters` on listeners and HTTP routes (issue 15): what parses into
//! which filter, and every mistake refused at its line and column.
// Test code: a panic is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::num::NonZeroU64;
use std::time::Duration;

use baton_config::filter::{
    Cidr, Filter, HeaderEdit, RangePolicy, RateKey, RbacRule, RpcError, TokenBucket,
};
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
            percentage: 100,
        }]
    );
}

#[test]
fn rate_limits_parse_with_their_keys_and_defaults() {
    let bucket = |max: u64, per_fill: u64, ms: u64| TokenBucket {
        max_tokens: NonZeroU64::new(max).unwrap(),
        tokens_per_fill: NonZeroU64::new(per_fill).unwrap(),
        fill_interval: Duration::from_millis(ms),
    };
    let text = listener(
        "http",
        "filters = [{ name = \"local_rate_limit\", max_tokens = 10, tokens_per_fill = 5, fill_interval = \"1s\" }, \
         { name = \"local_rate_limit\", max_tokens = 2, fill_interval = \"250ms\", key = { header = \"X-User\" } }, \
         { name = \"local_rate_limit\", max_tokens = 1, fill_interval = \"1m\", key = { source_ip = true } }]\n",
    );
    let config = parse("ok.toml", &text).unwrap();
    assert_eq!(
        config.listeners[0].filters,
        [
            Filter::LocalRateLimit {
                bucket: bucket(10, 5, 1000),
                key: RateKey::None,
            },
            Filter::LocalRateLimit {
                bucket: bucket(2, 1, 250),
                key: RateKey::Header("x-user".into()),
            },
            Filter::LocalRateLimit {
                bucket: bucket(1, 1, 60_000),
                key: RateKey::SourceIp,
            },
        ]
    );
    let text = listener(
        "dubbo",
        "filters = [{ name = \"rpc_rate_limit\", service = \"s\", method = \"m\", max_tokens = 3, fill_interval = \"1s\" }]\n",
    );
    assert_eq!(
        parse("ok.toml", &text).unwrap().listeners[0].filters,
        [Filter::RpcRateLimit {
            service: Some("s".into()),
            method: Some("m".into()),
            bucket: bucket(3, 1, 1000),
        }]
    );
}

#[test]
fn a_compiled_filter_is_named_by_what_it_registered() {
    let text = listener(
        "http",
        "filters = [{ compiled = \"api_key\", config = \"x-api-key;a=b\" }, { name = \"compiled\", compiled = \"other\" }]\n",
    );
    assert_eq!(
        parse("ok.toml", &text).unwrap().listeners[0].filters,
        [
            Filter::Compiled {
                filter: "api_key".into(),
                config: "x-api-key;a=b".into(),
            },
            Filter::Compiled {
                filter: "other".into(),
                config: String::new(),
            },
        ]
    );
}

#[test]
fn rpc_header_edits_parse_for_bolt_and_dubbo() {
    let text = listener(
        "bolt",
        "filters = [{ name = \"rpc_headers\", service = \"s\", request_set = { tenant = \"%DOWNSTREAM_REMOTE_ADDRESS%\", \"rpc_trace_context.sofaCallerApp\" = \"edge\" }, \
         request_remove = [\"secret\"], response_set = { \"x-by\" = \"baton\" } }]\n",
    );
    assert_eq!(
        parse("ok.toml", &text).unwrap().listeners[0].filters,
        [Filter::RpcHeaders {
            service: Some("s".into()),
            method: None,
            request: vec![
                HeaderEdit::Set("rpc_trace_context.sofaCallerApp".into(), "edge".into()),
                HeaderEdit::Set("tenant".into(), "%DOWNSTREAM_REMOTE_ADDRESS%".into()),
                HeaderEdit::Remove("secret".into()),
            ],
            response: vec![HeaderEdit::Set("x-by".into(), "baton".into())],
        }]
    );
    // Keys keep their case: Dubbo's attachments are case-sensitive.
    let text = listener(
        "dubbo",
        "filters = [{ name = \"rpc_headers\", request_set = { dubboApplication = \"edge\" } }]\n",
    );
    assert!(matches!(
        &parse("ok.toml", &text).unwrap().listeners[0].filters[..],
        [Filter::RpcHeaders { request, .. }] if request == &[HeaderEdit::Set("dubboApplication".into(), "edge".into())]
    ));
}

#[test]
fn rbac_and_connection_limit_parse() {
    let text = listener(
        "http",
        "filters = [{ name = \"connection_limit\", max_per_source = 4 }, \
         { name = \"rbac\", action = \"deny\", rules = [{ source = [\"10.0.0.0/8\"], path_prefix = \"/admin\", \
         methods = [\"get\", \"POST\"], header = { name = \"X-Role\", value = \"guest\" } }, { path_prefix = \"/x\" }] }]\n",
    );
    let config = parse("ok.toml", &text).unwrap();
    assert_eq!(
        config.listeners[0].filters,
        [
            Filter::ConnectionLimit {
                max_per_source: std::num::NonZeroU32::new(4).unwrap(),
            },
            Filter::Rbac {
                action: RangePolicy::Deny,
                rules: vec![
                    RbacRule {
                        source: vec!["10.0.0.0/8".parse().unwrap()],
                        path_prefix: Some("/admin".into()),
                        methods: vec!["GET".into(), "POST".into()],
                        header: Some(("x-role".into(), "guest".into())),
                    },
                    RbacRule {
                        path_prefix: Some("/x".into()),
                        ..RbacRule::default()
                    },
                ],
            },
        ]
    );
    // The accept stage runs on every listener.
    let text = listener(
        "bolt",
        "filters = [{ name = \"connection_limit\", max_per_source = 1 }]\n",
    );
    assert!(parse("ok.toml", &text).is_ok());
}

#[test]
fn faults_parse_with_percentages_defaulting_to_100() {
    use baton_config::filter::{FaultAbort, FaultDelay};
    let text = listener(
        "http",
        "filters = [{ name = \"fault\", abort = { status = 503, percentage = 10 }, delay = { duration = \"1s\" } }, \
         { name = \"fault\", header_control = true }]\n",
    );
    assert_eq!(
        parse("ok.toml", &text).unwrap().listeners[0].filters,
        [
            Filter::Fault {
                abort: Some(FaultAbort {
                    status: 503,
                    percentage: 10
                }),
                delay: Some(FaultDelay {
                    duration: Duration::from_secs(1),
                    percentage: 100
                }),
                header_control: false,
            },
            Filter::Fault {
                abort: None,
                delay: None,
                header_control: true,
            },
        ]
    );
    let text = listener(
        "bolt",
        "filters = [{ name = \"rpc_fault\", service = \"s\", percentage = 5 }]\n",
    );
    let config = parse("ok.toml", &text).unwrap();
    assert!(matches!(
        config.listeners[0].filters[0],
        Filter::RpcFault { percentage: 5, .. }
    ));
}

#[test]
fn cors_parses_with_names_normalised() {
    use baton_config::filter::CorsPolicy;
    let text = listener(
        "http",
        "filters = [{ name = \"cors\", allow_origins = [\"https://a.example\", \"*\"], allow_methods = [\"get\"], \
         allow_headers = [\"X-Token\"], expose_headers = [\"X-Trace\"], max_age = \"1h\", allow_credentials = true }, \
         { name = \"cors\", allow_origins = [\"*\"] }]\n",
    );
    assert_eq!(
        parse("ok.toml", &text).unwrap().listeners[0].filters,
        [
            Filter::Cors(CorsPolicy {
                allow_origins: vec!["https://a.example".into(), "*".into()],
                allow_methods: vec!["GET".into()],
                allow_headers: vec!["x-token".into()],
                expose_headers: vec!["x-trace".into()],
                max_age: Some(Duration::from_secs(3600)),
                allow_credentials: true,
            }),
            Filter::Cors(CorsPolicy {
                allow_origins: vec!["*".into()],
                ..CorsPolicy::default()
            }),
        ]
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
            "filters = [{ name = \"compiled\", config = \"x\" }]\n",
            "compiled needs `compiled`",
        ),
        (
            "bolt",
            "filters = [{ compiled = \"api_key\" }]\n",
            "compiled cannot run on a bolt listener",
        ),
        (
            "dubbo",
            "filters = [{ name = \"rpc_headers\", response_set = { a = \"1\" } }]\n",
            "cannot edit Dubbo responses",
        ),
        (
            "tars",
            "filters = [{ name = \"rpc_headers\", request_set = { a = \"1\" } }]\n",
            "rpc_headers cannot run on a tars listener",
        ),
        (
            "bolt",
            "filters = [{ name = \"rpc_headers\", service = \"s\" }]\n",
            "rpc_headers has no edit",
        ),
        (
            "bolt",
            "filters = [{ name = \"rpc_headers\", request_set = { a = \"%REQ(\" } }]\n",
            "unclosed placeholder",
        ),
        (
            "bolt",
            "filters = [{ name = \"rpc_headers\", request_append = { a = \"1\" } }]\n",
            "rpc_headers has no setting `request_append`",
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
        (
            "http",
            "filters = [{ name = \"local_rate_limit\", fill_interval = \"1s\" }]\n",
            "needs `max_tokens`",
        ),
        (
            "http",
            "filters = [{ name = \"local_rate_limit\", max_tokens = 0, fill_interval = \"1s\" }]\n",
            "`max_tokens` must be at least 1",
        ),
        (
            "http",
            "filters = [{ name = \"local_rate_limit\", max_tokens = 1, tokens_per_fill = 0, fill_interval = \"1s\" }]\n",
            "`tokens_per_fill` must be at least 1",
        ),
        (
            "http",
            "filters = [{ name = \"local_rate_limit\", max_tokens = 1 }]\n",
            "needs `fill_interval`",
        ),
        (
            "http",
            "filters = [{ name = \"local_rate_limit\", max_tokens = 1, fill_interval = \"0s\" }]\n",
            "longer than zero",
        ),
        (
            "http",
            "filters = [{ name = \"local_rate_limit\", max_tokens = 1, fill_interval = \"soon\" }]\n",
            "`fill_interval`",
        ),
        (
            "http",
            "filters = [{ name = \"local_rate_limit\", max_tokens = 1, fill_interval = \"1s\", key = { source_ip = false } }]\n",
            "`key` is",
        ),
        (
            "http",
            "filters = [{ name = \"local_rate_limit\", max_tokens = 1, fill_interval = \"1s\", key = { header = \"a b\" } }]\n",
            "not a header name",
        ),
        (
            "http",
            "filters = [{ name = \"local_rate_limit\", max_tokens = 1, fill_interval = \"1s\", service = \"s\" }]\n",
            "local_rate_limit has no setting `service`",
        ),
        (
            "bolt",
            "filters = [{ name = \"local_rate_limit\", max_tokens = 1, fill_interval = \"1s\" }]\n",
            "local_rate_limit cannot run on a bolt listener",
        ),
        (
            "http",
            "filters = [{ name = \"rpc_rate_limit\", max_tokens = 1, fill_interval = \"1s\" }]\n",
            "rpc_rate_limit cannot run on a http listener",
        ),
        (
            "bolt",
            "filters = [{ name = \"rpc_rate_limit\", max_tokens = 1, fill_interval = \"1s\", key = { source_ip = true } }]\n",
            "rpc_rate_limit has no setting `key`",
        ),
        (
            "tcp",
            "filters = [{ name = \"connection_limit\", max_per_source = 0 }]\n",
            "`max_per_source` must be at least 1",
        ),
        (
            "tcp",
            "filters = [{ name = \"connection_limit\" }]\n",
            "needs `max_per_source`",
        ),
        (
            "tcp",
            "filters = [{ name = \"rbac\", action = \"allow\", rules = [{ path_prefix = \"/\" }] }]\n",
            "rbac cannot run on a tcp listener",
        ),
        (
            "http",
            "filters = [{ name = \"rbac\", action = \"maybe\", rules = [{ path_prefix = \"/\" }] }]\n",
            "`action` is",
        ),
        (
            "http",
            "filters = [{ name = \"rbac\", action = \"allow\" }]\n",
            "rbac needs `rules`",
        ),
        (
            "http",
            "filters = [{ name = \"rbac\", action = \"allow\", rules = [] }]\n",
            "at least one rule",
        ),
        (
            "http",
            "filters = [{ name = \"rbac\", action = \"allow\", rules = [{}] }]\n",
            "rules[0]: a rule needs one of",
        ),
        (
            "http",
            "filters = [{ name = \"rbac\", action = \"allow\", rules = [{ source = [\"10.0.0.0/99\"] }] }]\n",
            "is not an address range",
        ),
        (
            "http",
            "filters = [{ name = \"rbac\", action = \"allow\", rules = [{ path_prefix = \"x\" }] }]\n",
            "does not start with /",
        ),
        (
            "http",
            "filters = [{ name = \"rbac\", action = \"allow\", rules = [{ methods = [\"G T\"] }] }]\n",
            "is not a method",
        ),
        (
            "http",
            "filters = [{ name = \"rbac\", action = \"allow\", rules = [{ header = { name = \"x\" } }] }]\n",
            "missing field `value`",
        ),
        (
            "http",
            "filters = [{ name = \"rbac\", action = \"allow\", rules = [{ host = \"x\" }] }]\n",
            "unknown field `host`",
        ),
        (
            "http",
            "filters = [{ name = \"fault\" }]\n",
            "fault needs `abort`, `delay` or `header_control = true`",
        ),
        (
            "http",
            "filters = [{ name = \"fault\", header_control = false }]\n",
            "fault needs",
        ),
        (
            "http",
            "filters = [{ name = \"fault\", abort = { status = 99 } }]\n",
            "status 99 is not 200 to 599",
        ),
        (
            "http",
            "filters = [{ name = \"fault\", abort = { status = 503, percentage = 101 } }]\n",
            "`abort`: `percentage` 101 is not 0 to 100",
        ),
        (
            "http",
            "filters = [{ name = \"fault\", delay = { duration = \"later\" } }]\n",
            "`delay`:",
        ),
        (
            "http",
            "filters = [{ name = \"fault\", delay = { percentage = 5 } }]\n",
            "missing field `duration`",
        ),
        (
            "http",
            "filters = [{ name = \"fault\", header_control = true, percentage = 5 }]\n",
            "fault has no setting `percentage`",
        ),
        (
            "bolt",
            "filters = [{ name = \"rpc_fault\", service = \"s\", percentage = 200 }]\n",
            "`percentage` 200 is not 0 to 100",
        ),
        (
            "bolt",
            "filters = [{ name = \"fault\", header_control = true }]\n",
            "fault cannot run on a bolt listener",
        ),
        (
            "http",
            "filters = [{ name = \"cors\", allow_methods = [\"GET\"] }]\n",
            "cors needs `allow_origins`",
        ),
        (
            "http",
            "filters = [{ name = \"cors\", allow_origins = [] }]\n",
            "`allow_origins` is empty",
        ),
        (
            "http",
            "filters = [{ name = \"cors\", allow_origins = [\"https://a b\"] }]\n",
            "is not an origin",
        ),
        (
            "http",
            "filters = [{ name = \"cors\", allow_origins = [\"*\"], allow_headers = [\"x y\"] }]\n",
            "`allow_headers`: \"x y\" is not a token",
        ),
        (
            "http",
            "filters = [{ name = \"cors\", allow_origins = [\"*\"], max_age = \"long\" }]\n",
            "`max_age`",
        ),
        (
            "tcp",
            "filters = [{ name = \"cors\", allow_origins = [\"*\"] }]\n",
            "cors cannot run on a tcp listener",
        ),
        (
            "http",
            "filters = [{ name = \"headers\", request_set = { \"x-a\" = \"%UPSTREAM_HOST%\" } }]\n",
            "the value of x-a: unknown placeholder %UPSTREAM_HOST%",
        ),
        (
            "http",
            "filters = [{ name = \"headers\", response_append = { \"x-a\" = \"100%\" } }]\n",
            "unclosed placeholder",
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
fn compression_takes_envoys_defaults_and_its_own_settings() {
    use baton_config::filter::{Algorithm, Compression, DEFAULT_CONTENT_TYPES};
    let config = parse(
        "ok.toml",
        &listener("http", "filters = [{ name = \"compression\" }]\n"),
    )
    .unwrap();
    let Filter::Compression(c) = &config.listeners[0].filters[0] else {
        panic!("{:?}", config.listeners[0].filters);
    };
    assert_eq!(*c, Compression::default());
    assert_eq!(
        c.algorithms,
        [Algorithm::Zstd, Algorithm::Brotli, Algorithm::Gzip]
    );
    assert_eq!(c.content_types, DEFAULT_CONTENT_TYPES);
    assert_eq!(c.min_content_length, 30);

    let config = parse(
        "ok.toml",
        &listener(
            "http",
            "filters = [{ name = \"compression\", algorithms = [\"gzip\", \"br\"], \
             content_types = [\"Text/HTML\"], min_content_length = 1024, \
             levels = { gzip = 9, br = 11, zstd = 19 } }]\n",
        ),
    )
    .unwrap();
    assert_eq!(
        config.listeners[0].filters[0],
        Filter::Compression(Compression {
            algorithms: vec![Algorithm::Gzip, Algorithm::Brotli],
            content_types: vec!["text/html".into()],
            min_content_length: 1024,
            gzip_level: 9,
            brotli_level: 11,
            zstd_level: 19,
        })
    );
}

#[test]
fn bad_compression_settings_are_refused_at_their_entry() {
    let cases = [
        (
            "tcp",
            "{ name = \"compression\" }",
            "compression cannot run on a tcp listener",
        ),
        (
            "bolt",
            "{ name = \"compression\" }",
            "compression cannot run on a bolt listener",
        ),
        (
            "http",
            "{ name = \"compression\", algorithms = [\"deflate\"] }",
            "\"deflate\" is not a compression algorithm",
        ),
        (
            "http",
            "{ name = \"compression\", algorithms = [\"gzip\", \"gzip\"] }",
            "twice",
        ),
        (
            "http",
            "{ name = \"compression\", algorithms = [] }",
            "at least one",
        ),
        (
            "http",
            "{ name = \"compression\", content_types = [\"text/html; charset=utf-8\"] }",
            "is not a media type",
        ),
        (
            "http",
            "{ name = \"compression\", content_types = [] }",
            "at least one",
        ),
        (
            "http",
            "{ name = \"compression\", levels = { gzip = 10 } }",
            "gzip level 10 is out of range (1..=9)",
        ),
        (
            "http",
            "{ name = \"compression\", levels = { zstd = 0 } }",
            "zstd level 0 is out of range",
        ),
        (
            "http",
            "{ name = \"compression\", levels = { lz4 = 1 } }",
            "\"lz4\" is not a compression algorithm",
        ),
        (
            "http",
            "{ name = \"compression\", min_content_length = -1 }",
            "invalid value: integer `-1`",
        ),
        (
            "http",
            "{ name = \"compression\", service = \"s\" }",
            "compression has no setting `service`",
        ),
    ];
    for (protocol, entry, wanted) in cases {
        let extra = format!("filters = [{entry}]\n");
        let (line, path, message) = error(&listener(protocol, &extra));
        assert_eq!(line, 6, "{entry}: {message}");
        assert!(path.starts_with("listeners[0].filters"), "{entry}: {path}");
        assert!(message.contains(wanted), "{entry}: {message}");
    }
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
