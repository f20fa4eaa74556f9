//! Every example config parses; every kind of mistake is refused with the
//! line, column and key that caused it.
// Test code: a panic is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use baton_config::{Builtin, ClusterId, Config, ConfigError, SupervisorView, Target, parse};

#[test]
fn every_config_in_the_directory_parses() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml")
            && path.file_name() != Some("Cargo.toml".as_ref())
        {
            let config = baton_config::parse_file(&path)
                .unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()));
            SupervisorView::parse(&config.source, &std::fs::read_to_string(&path).unwrap())
                .unwrap();
            seen += 1;
        }
    }
    assert!(seen >= 2, "default.toml and example.toml at least");
}

#[test]
fn the_embedded_default_serves_echo_on_7000_and_hello_on_8080() {
    let config = Config::embedded_default().unwrap();
    assert_eq!(config.listeners.len(), 2);
    let hello = &config.listeners[1];
    assert_eq!(hello.address, "127.0.0.1:8080".parse().unwrap());
    assert_eq!(hello.protocol, baton_config::Protocol::Http);
    assert_eq!(hello.target, Target::NotFound);
    let http = hello.http.as_ref().unwrap();
    assert!(
        matches!(&http.routes[0].action, baton_config::HttpAction::Direct { body, .. } if body.contains("{generation}"))
    );
    let echo = &config.listeners[0];
    assert_eq!(echo.address, "127.0.0.1:7000".parse().unwrap());
    assert_eq!(echo.target, Target::Builtin(Builtin::Echo));
    assert!(config.clusters.is_empty());
}

#[test]
fn defaults_fill_what_is_left_out() {
    let config = parse(
        "t.toml",
        "[[listeners]]\nname = \"a\"\naddress = \"127.0.0.1:0\"\ncluster = \"c\"\n\
         [[clusters]]\nname = \"c\"\nendpoints = [\"127.0.0.1:1\"]\n",
    )
    .unwrap();
    assert_eq!(config.supervisor.drain_timeout, Duration::from_secs(30));
    assert_eq!(
        config.supervisor.control_socket.to_str(),
        Some("/run/baton/control.sock")
    );
    let l = &config.listeners[0];
    assert_eq!(l.backlog, 1024);
    assert_eq!(l.max_connections.get(), 10_000);
    assert_eq!(l.idle_timeout, Duration::from_secs(3600));
    assert_eq!(l.target, Target::Cluster(ClusterId::new(0)));
    assert_eq!(config.clusters[0].connect_timeout, Duration::from_secs(5));
}

fn error(text: &str) -> (usize, usize, String, String) {
    match parse("bad.toml", text) {
        Err(ConfigError::Invalid {
            source_name,
            line,
            column,
            path,
            message,
        }) => {
            assert_eq!(source_name, "bad.toml");
            (line, column, path, message)
        }
        other => panic!("expected an Invalid error for {text:?}, got {other:?}"),
    }
}

const GOOD_TAIL: &str = "[[clusters]]\nname = \"c\"\nendpoints = [\"127.0.0.1:1\"]\n";

fn listener(extra: &str) -> String {
    format!(
        "[[listeners]]\nname = \"a\"\naddress = \"127.0.0.1:0\"\ncluster = \"c\"\n{extra}{GOOD_TAIL}"
    )
}

#[test]
fn unknown_keys_are_refused_with_line_column_and_path() {
    let (line, column, path, message) = error(&listener("colour = \"blue\"\n"));
    assert_eq!((line, column), (5, 1));
    assert_eq!(path, "listeners[0].colour");
    assert!(message.contains("unknown field `colour`"), "{message}");

    let (line, _, path, _) = error("[supervisr]\nx = 1\n");
    assert_eq!(line, 1);
    assert_eq!(path, "supervisr");
}

#[test]
fn the_message_reads_file_line_column_path() {
    let err = parse("bad.toml", &listener("colour = 1\n")).unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("bad.toml:5:1: listeners[0].colour: unknown field"),
        "{text}"
    );
}

#[test]
fn bad_values_are_refused_where_they_are() {
    let (line, column, path, _) = error(&format!(
        "[[listeners]]\nname = \"a\"\naddress = \"localhost\"\ncluster = \"c\"\n{GOOD_TAIL}"
    ));
    assert_eq!(
        (line, column, path.as_str()),
        (3, 11, "listeners[0].address")
    );

    let (line, _, path, message) = error(&listener("idle_timeout = \"10 parsecs\"\n"));
    assert_eq!((line, path.as_str()), (5, "listeners[0].idle_timeout"));
    assert!(message.contains("invalid duration"), "{message}");

    let (_, _, path, message) = error(&listener("idle_timeout = \"0s\"\n"));
    assert_eq!(path, "listeners[0].idle_timeout");
    assert!(message.contains("greater than zero"));

    let (_, _, path, _) = error(&listener("max_connections = 0\n"));
    assert_eq!(path, "listeners[0].max_connections");

    let (_, _, path, message) = error(&listener("protocol = \"gopher\"\n"));
    assert_eq!(path, "listeners[0].protocol");
    assert!(message.contains("gopher"), "{message}");

    let (line, _, path, _) = error("[supervisor]\ndrain_timeout = 30\n");
    assert_eq!((line, path.as_str()), (2, "supervisor.drain_timeout"));
}

/// `Protocol::name` is the name a config file uses: every protocol
/// parses from its own name, so the worker can find its codec by it.
#[test]
fn every_protocol_parses_from_its_name() {
    for &protocol in baton_config::Protocol::ALL {
        let text = format!(
            "[[listeners]]\nname = \"a\"\naddress = \"127.0.0.1:0\"\nprotocol = \"{}\"\n\
             cluster = \"c\"\n[[clusters]]\nname = \"c\"\nendpoints = [\"127.0.0.1:1\"]\n",
            protocol.name()
        );
        let config = parse("test.toml", &text).unwrap_or_else(|e| panic!("{protocol:?}: {e}"));
        assert_eq!(config.listeners[0].protocol, protocol);
    }
}

#[test]
fn references_and_names_are_checked() {
    let (line, column, path, message) =
        error("[[listeners]]\nname = \"a\"\naddress = \"127.0.0.1:0\"\ncluster = \"nope\"\n");
    assert_eq!(
        (line, column, path.as_str()),
        (4, 11, "listeners[0].cluster")
    );
    assert!(message.contains("no cluster named \"nope\""), "{message}");

    let (_, _, _, message) = error(
        "[[listeners]]\nname = \"a\"\naddress = \"127.0.0.1:0\"\ncluster = \"builtin:teapot\"\n",
    );
    assert!(
        message.contains("builtin:echo"),
        "lists the known built-ins: {message}"
    );

    let (line, _, path, message) = error(&format!(
        "[[listeners]]\nname = \"a\"\naddress = \"127.0.0.1:5\"\ncluster = \"c\"\n\
         [[listeners]]\nname = \"a\"\naddress = \"127.0.0.1:6\"\ncluster = \"c\"\n{GOOD_TAIL}"
    ));
    assert_eq!((line, path.as_str()), (6, "listeners[1].name"));
    assert!(message.contains("duplicate"));

    let (line, _, path, _) = error(&format!(
        "[[listeners]]\nname = \"a\"\naddress = \"127.0.0.1:5\"\ncluster = \"c\"\n\
         [[listeners]]\nname = \"b\"\naddress = \"127.0.0.1:5\"\ncluster = \"c\"\n{GOOD_TAIL}"
    ));
    assert_eq!((line, path.as_str()), (7, "listeners[1].address"));

    let (_, _, path, _) = error("[[clusters]]\nname = \"c:d\"\nendpoints = [\"127.0.0.1:1\"]\n");
    assert_eq!(path, "clusters[0].name");
    let (_, _, path, _) =
        error("[[clusters]]\nname = \"builtin:x\"\nendpoints = [\"127.0.0.1:1\"]\n");
    assert_eq!(path, "clusters[0].name");
    let (line, _, path, _) = error("[[clusters]]\nname = \"c\"\nendpoints = []\n");
    assert_eq!((line, path.as_str()), (3, "clusters[0].endpoints"));
}

#[test]
fn syntax_errors_have_a_position_too() {
    let (line, column, path, _) = error("[[listeners]\nname = \"a\"\n");
    assert_eq!(line, 1);
    assert!(column > 1);
    assert_eq!(path, "");
}

#[test]
fn the_supervisor_view_ignores_what_it_does_not_own() {
    let text = "[supervisor]\ndrain_timeout = \"5s\"\n\
        [future_section]\nx = 1\n\
        [[listeners]]\nname = \"a\"\naddress = \"[::1]:0\"\nbacklog = 7\nnew_knob = true\n";
    let view = SupervisorView::parse("v.toml", text).unwrap();
    assert_eq!(view.supervisor.drain_timeout, Duration::from_secs(5));
    assert_eq!(view.listeners.len(), 1);
    assert_eq!(view.listeners[0].backlog, 7);
    assert!(view.listeners[0].address.is_ipv6());
    // The worker, parsing strictly, refuses the same text.
    assert!(parse("v.toml", text).is_err());
    // But the supervisor is strict about its own table.
    let err = SupervisorView::parse("v.toml", "[supervisor]\ndrain_timout = \"5s\"\n").unwrap_err();
    assert!(
        err.to_string()
            .contains("v.toml:2:1: supervisor.drain_timout"),
        "{err}"
    );
}

#[test]
fn a_missing_file_is_a_read_error() {
    let err = baton_config::parse_file("/nonexistent/baton.toml".as_ref()).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }));
    assert!(err.to_string().contains("/nonexistent/baton.toml"));
}

#[test]
fn upstream_tls_is_for_http_listeners_only() {
    let tls_cluster = "[[clusters]]\nname = \"c\"\nendpoints = [\"127.0.0.1:1\"]\n\
                       [clusters.tls]\nca = \"ca.pem\"\nserver_name = \"api.internal\"\n";
    let http = format!(
        "[[listeners]]\nname = \"a\"\naddress = \"127.0.0.1:0\"\nprotocol = \"http\"\ncluster = \"c\"\n{tls_cluster}"
    );
    let config = parse("good.toml", &http).unwrap();
    let tls = config.clusters[0].tls.as_ref().unwrap();
    assert_eq!(tls.ca.as_deref(), Some(std::path::Path::new("ca.pem")));
    assert_eq!(tls.server_name.as_deref(), Some("api.internal"));

    for protocol in ["tcp", "bolt"] {
        let text = format!(
            "[[listeners]]\nname = \"a\"\naddress = \"127.0.0.1:0\"\nprotocol = \"{protocol}\"\ncluster = \"c\"\n{tls_cluster}"
        );
        let (line, _, path, message) = error(&text);
        assert_eq!(
            (line, path.as_str()),
            (5, "listeners[0].cluster"),
            "{protocol}"
        );
        assert!(message.contains("only http listeners"), "{message}");
    }
    let (_, _, _, message) = error(
        "[[listeners]]\nname = \"a\"\naddress = \"127.0.0.1:0\"\ncluster = \"c\"\n\
         [[clusters]]\nname = \"c\"\nendpoints = [\"127.0.0.1:1\"]\n[clusters.tls]\ncolour = 1\n",
    );
    assert!(message.contains("unknown field `colour`"), "{message}");
}

#[test]
fn http_timeouts_have_defaults_and_belong_to_http_listeners() {
    let http = |extra: &str| {
        format!(
            "[[listeners]]\nname = \"a\"\naddress = \"127.0.0.1:0\"\nprotocol = \"http\"\ncluster = \"c\"\n{extra}{GOOD_TAIL}"
        )
    };
    let config = parse("good.toml", &http("")).unwrap();
    let h = config.listeners[0].http.as_ref().unwrap();
    assert_eq!(
        (h.header_timeout, h.keepalive_timeout, h.body_timeout),
        (
            Duration::from_secs(10),
            Duration::from_secs(75),
            Duration::from_secs(30)
        )
    );
    let config = parse(
        "good.toml",
        &http("header_timeout = \"2s\"\nkeepalive_timeout = \"500ms\"\nbody_timeout = \"1m\"\n"),
    )
    .unwrap();
    let h = config.listeners[0].http.as_ref().unwrap();
    assert_eq!(
        (h.header_timeout, h.keepalive_timeout, h.body_timeout),
        (
            Duration::from_secs(2),
            Duration::from_millis(500),
            Duration::from_secs(60)
        )
    );

    for key in ["header_timeout", "keepalive_timeout", "body_timeout"] {
        let (line, column, path, message) = error(&http(&format!("{key} = \"0s\"\n")));
        assert_eq!(
            (line, column, path.as_str()),
            (6, key.len() + 4, format!("listeners[0].{key}").as_str())
        );
        assert!(message.contains("greater than zero"), "{message}");

        let (line, _, path, message) = error(&listener(&format!("{key} = \"5s\"\n")));
        assert_eq!((line, path), (5, format!("listeners[0].{key}")));
        assert!(message.contains("does not apply to tcp"), "{message}");
    }
}

#[test]
fn admin_token_and_control_address_are_checked_for_both_readers() {
    let good = "[admin]\naddress = \"127.0.0.1:0\"\ntoken = \"0123456789abcdef\"\n\
                control_address = \"127.0.0.1:9\"\n";
    let admin = parse("t.toml", good).unwrap().admin.unwrap();
    assert_eq!(admin.token.as_ref().unwrap().0, "0123456789abcdef");
    assert_eq!(admin.control_address, Some("127.0.0.1:9".parse().unwrap()));
    // The secret stays out of debug output.
    assert!(!format!("{admin:?}").contains("0123456789abcdef"));
    assert_eq!(
        SupervisorView::parse("t.toml", good).unwrap().admin,
        Some(admin)
    );

    let cases = [
        ("token = \"short\"\n", 3, 9, "admin.token", "too short"),
        (
            "token = \"0123456789 abcdef\"\n",
            3,
            9,
            "admin.token",
            "printable",
        ),
        (
            "control_address = \"127.0.0.1:9901\"\n",
            3,
            19,
            "admin.control_address",
            "differ",
        ),
        (
            "control_address = \"nowhere\"\n",
            3,
            19,
            "admin.control_address",
            "socket address",
        ),
        (
            "tokn = \"0123456789abcdef\"\n",
            3,
            1,
            "admin.tokn",
            "unknown field",
        ),
    ];
    for (extra, line, column, key, words) in cases {
        let text = format!("[admin]\naddress = \"127.0.0.1:9901\"\n{extra}");
        let (l, c, path, message) = error(&text);
        assert_eq!(
            (l, c, path.as_str()),
            (line, column, key),
            "{text}: {message}"
        );
        assert!(message.contains(words), "{text}: {message}");
        // The supervisor refuses it the same way, before touching anything.
        let view = SupervisorView::parse("bad.toml", &text).unwrap_err();
        assert!(
            view.to_string()
                .contains(&format!("bad.toml:{line}:{column}")),
            "{view}"
        );
    }
}

#[test]
fn rocketmq_brokers_name_rocketmq_listeners_one_to_one() {
    let config = |brokers: &str, second_protocol: &str| {
        format!(
            "[[listeners]]\nname = \"ns\"\naddress = \"127.0.0.1:0\"\nprotocol = \"rocketmq\"\n\
             cluster = \"c\"\nrocketmq_brokers = {brokers}\n\
             [[listeners]]\nname = \"b\"\naddress = \"127.0.0.1:0\"\nprotocol = \"{second_protocol}\"\n\
             cluster = \"c\"\n\
             [[listeners]]\nname = \"b2\"\naddress = \"127.0.0.1:0\"\nprotocol = \"rocketmq\"\n\
             cluster = \"c\"\n{GOOD_TAIL}"
        )
    };
    let good = parse(
        "t.toml",
        &config(
            "{ \"10.0.0.5:10911\" = \"b\", \"10.0.0.6:10911\" = \"b2\" }",
            "rocketmq",
        ),
    )
    .unwrap();
    let brokers = &good.listeners[0].rpc.as_ref().unwrap().rocketmq_brokers;
    assert_eq!(
        brokers,
        &vec![
            ("10.0.0.5:10911".parse().unwrap(), "b".to_owned()),
            ("10.0.0.6:10911".parse().unwrap(), "b2".to_owned()),
        ]
    );
    for (brokers, protocol, wanted) in [
        (
            "{ \"10.0.0.5:10911\" = \"nope\" }",
            "rocketmq",
            "no listener is named",
        ),
        (
            "{ \"10.0.0.5:10911\" = \"b\" }",
            "bolt",
            "is not a rocketmq listener",
        ),
        (
            "{ \"10.0.0.5:10911\" = \"b\", \"10.0.0.6:10911\" = \"b\" }",
            "rocketmq",
            "fronts two brokers",
        ),
        (
            "{ \"broker-a\" = \"b\" }",
            "rocketmq",
            "is not a broker address",
        ),
    ] {
        let (line, _, path, message) = error(&config(brokers, protocol));
        assert_eq!(line, 6, "{message}");
        assert_eq!(path, "listeners[0].rocketmq_brokers");
        assert!(message.contains(wanted), "{wanted:?} in {message}");
    }
    // Only on rocketmq listeners.
    let (_, _, path, message) = error(&listener("protocol = \"bolt\"\nrocketmq_brokers = {}\n"));
    assert_eq!(path, "listeners[0].rocketmq_brokers");
    assert!(
        message.contains("applies to rocketmq listeners"),
        "{message}"
    );
}

fn cluster(extra: &str) -> String {
    format!(
        "[[listeners]]\nname = \"a\"\naddress = \"127.0.0.1:0\"\ncluster = \"c\"\n\
         [[clusters]]\nname = \"c\"\n{extra}"
    )
}

#[test]
fn every_lb_policy_parses_from_its_name() {
    use baton_config::Lb;
    for lb in [
        Lb::RoundRobin,
        Lb::Random,
        Lb::LeastRequest,
        Lb::RingHash,
        Lb::Maglev,
    ] {
        let config = parse(
            "t.toml",
            &cluster(&format!(
                "lb = \"{}\"\nendpoints = [\"127.0.0.1:1\"]\n",
                lb.name()
            )),
        )
        .unwrap();
        assert_eq!(config.clusters[0].lb, lb);
    }
    let (line, _, path, message) = error(&cluster(
        "lb = \"least_conn\"\nendpoints = [\"127.0.0.1:1\"]\n",
    ));
    assert_eq!((line, path.as_str()), (7, "clusters[0].lb"));
    assert!(
        message.contains("least_conn") && message.contains("maglev"),
        "{message}"
    );
}

#[test]
fn endpoints_are_plain_or_weighted() {
    use baton_config::{Endpoint, Weight};
    let config = parse(
        "t.toml",
        &cluster(
            "endpoints = [\"127.0.0.1:1\", { address = \"127.0.0.1:2\", weight = 5 }, \
             { address = \"127.0.0.1:3\" }]\n",
        ),
    )
    .unwrap();
    let weights: Vec<u32> = config.clusters[0]
        .endpoints
        .iter()
        .map(|e| e.weight.get())
        .collect();
    assert_eq!(weights, [1, 5, 1]);
    assert_eq!(
        config.clusters[0].endpoints[1],
        Endpoint {
            address: "127.0.0.1:2".parse().unwrap(),
            weight: Weight::new(5).unwrap(),
        }
    );
    // The bounds: 1 and 128 are fine, 0 and 129 are refused.
    for (weight, ok) in [
        (1, true),
        (128, true),
        (0, false),
        (129, false),
        (-1, false),
    ] {
        let text = cluster(&format!(
            "endpoints = [{{ address = \"127.0.0.1:2\", weight = {weight} }}]\n"
        ));
        match parse("t.toml", &text) {
            Ok(_) => assert!(ok, "weight {weight} accepted"),
            Err(_) => {
                assert!(!ok, "weight {weight} refused");
                let (line, _, path, message) = error(&text);
                assert_eq!(line, 7);
                assert!(path.starts_with("clusters[0].endpoints"), "{path}");
                assert!(message.contains("weight must be 1 to 128"), "{message}");
            }
        }
    }
    let (_, _, _, message) = error(&cluster("endpoints = [\"localhost\"]\n"));
    assert!(message.contains("ip:port"), "{message}");
    let (_, _, _, message) = error(&cluster(
        "endpoints = [{ address = \"127.0.0.1:2\", wieght = 2 }]\n",
    ));
    assert!(message.contains("wieght"), "{message}");
}

#[test]
fn hash_policies_follow_envoys_shape() {
    use baton_config::HashPolicy;
    let config = parse(
        "t.toml",
        &cluster(
            "lb = \"ring_hash\"\nendpoints = [\"127.0.0.1:1\"]\n\
             hash_policy = [{ header = \"x-user\" }, { cookie = \"sid\" }, { source_ip = true }, \
             { path = true }, { service = true }, { method = true }, { attachment = \"k\" }]\n",
        ),
    )
    .unwrap();
    assert_eq!(
        config.clusters[0].hash_policy,
        [
            HashPolicy::Header("x-user".into()),
            HashPolicy::Cookie("sid".into()),
            HashPolicy::SourceIp,
            HashPolicy::Path,
            HashPolicy::Service,
            HashPolicy::Method,
            HashPolicy::Attachment("k".into()),
        ]
    );
    // The one-entry shorthand.
    let config = parse(
        "t.toml",
        &cluster(
            "lb = \"maglev\"\nendpoints = [\"127.0.0.1:1\"]\nhash = { header = \"x-user\" }\n",
        ),
    )
    .unwrap();
    assert_eq!(
        config.clusters[0].hash_policy,
        [HashPolicy::Header("x-user".into())]
    );

    // A hash policy on a policy that does not hash.
    let (line, _, path, message) = error(&cluster(
        "lb = \"round_robin\"\nendpoints = [\"127.0.0.1:1\"]\nhash_policy = [{ path = true }]\n",
    ));
    assert_eq!((line, path.as_str()), (9, "clusters[0].hash_policy"));
    assert!(message.contains("ring_hash"), "{message}");
    let (_, _, path, _) = error(&cluster(
        "endpoints = [\"127.0.0.1:1\"]\nhash = { source_ip = true }\n",
    ));
    assert_eq!(path, "clusters[0].hash");

    // Each entry names exactly one thing.
    for entry in [
        "{ header = \"a\", cookie = \"b\" }",
        "{}",
        "{ path = false }",
    ] {
        let (_, _, path, message) = error(&cluster(&format!(
            "lb = \"maglev\"\nendpoints = [\"127.0.0.1:1\"]\nhash_policy = [{entry}]\n"
        )));
        assert_eq!(path, "clusters[0].hash_policy[0]", "{entry}");
        assert!(message.contains("exactly one"), "{message}");
    }
    let (_, _, path, _) = error(&cluster(
        "lb = \"maglev\"\nendpoints = [\"127.0.0.1:1\"]\nhash_policy = [{ query = \"q\" }]\n",
    ));
    assert!(path.starts_with("clusters[0].hash_policy[0]"), "{path}");
    let (_, _, path, _) = error(&cluster(
        "lb = \"maglev\"\nendpoints = [\"127.0.0.1:1\"]\nhash_policy = [{ path = true }]\n\
         hash = { path = true }\n",
    ));
    assert_eq!(path, "clusters[0].hash");
}

#[test]
fn circuit_breakers_take_envoys_names_and_defaults() {
    use baton_config::{CircuitBreakers, RetryBudget};
    let plain = parse("t.toml", &cluster("endpoints = [\"127.0.0.1:1\"]\n")).unwrap();
    let c = &plain.clusters[0];
    assert_eq!(
        c.circuit_breakers,
        CircuitBreakers {
            max_connections: 1024,
            max_pending_requests: 1024,
            max_requests: 1024,
            max_retries: 3,
        }
    );
    assert_eq!(c.retry_budget, None);

    let set = parse(
        "t.toml",
        &cluster(
            "endpoints = [\"127.0.0.1:1\"]\n\
             [clusters.circuit_breakers]\nmax_requests = 10\nmax_retries = 0\n\
             [clusters.retry_budget]\nmin_retry_concurrency = 5\n",
        ),
    )
    .unwrap();
    let c = &set.clusters[0];
    assert_eq!(c.circuit_breakers.max_requests, 10);
    assert_eq!(c.circuit_breakers.max_retries, 0);
    assert_eq!(c.circuit_breakers.max_connections, 1024);
    assert_eq!(
        c.retry_budget,
        Some(RetryBudget {
            budget_percent: 20.0,
            min_retry_concurrency: 5,
        })
    );
    // An integer percentage is a percentage too.
    let whole = parse(
        "t.toml",
        &cluster("endpoints = [\"127.0.0.1:1\"]\n[clusters.retry_budget]\nbudget_percent = 50\n"),
    )
    .unwrap();
    assert_eq!(
        whole.clusters[0].retry_budget.map(|b| b.budget_percent),
        Some(50.0)
    );
}

#[test]
fn circuit_breakers_are_checked_where_they_are() {
    let (line, column, path, message) = error(&cluster(
        "endpoints = [\"127.0.0.1:1\"]\n[clusters.circuit_breakers]\nmax_requests = 0\n",
    ));
    assert_eq!(
        (line, column, path.as_str()),
        (9, 16, "clusters[0].circuit_breakers.max_requests")
    );
    assert!(message.contains("at least 1"), "{message}");

    let (line, _, path, _) = error(&cluster(
        "endpoints = [\"127.0.0.1:1\"]\n[clusters.circuit_breakers]\nmax_connection = 5\n",
    ));
    assert_eq!(
        (line, path.as_str()),
        (9, "clusters[0].circuit_breakers.max_connection")
    );

    let (line, _, path, _) = error(&cluster(
        "endpoints = [\"127.0.0.1:1\"]\n[clusters.circuit_breakers]\nmax_retries = -1\n",
    ));
    assert_eq!(
        (line, path.as_str()),
        (9, "clusters[0].circuit_breakers.max_retries")
    );

    let (line, _, path, message) = error(&cluster(
        "endpoints = [\"127.0.0.1:1\"]\n[clusters.retry_budget]\nbudget_percent = 120.0\n",
    ));
    assert_eq!(
        (line, path.as_str()),
        (9, "clusters[0].retry_budget.budget_percent")
    );
    assert!(message.contains("between 0 and 100"), "{message}");
}

#[test]
fn proxy_protocol_on_listeners_and_tcp_clusters() {
    use baton_config::ProxyVersion;
    let config = parse("ok.toml", &listener("proxy_protocol = \"any\"\n")).unwrap();
    let pp = config.listeners[0].proxy_protocol.unwrap();
    assert_eq!(
        (pp.accept, pp.timeout),
        (ProxyVersion::Any, Duration::from_secs(5))
    );
    let config = parse(
        "ok.toml",
        &listener("proxy_protocol = \"v2\"\nproxy_protocol_timeout = \"1s\"\n"),
    )
    .unwrap();
    assert_eq!(
        config.listeners[0].proxy_protocol.unwrap().timeout,
        Duration::from_secs(1)
    );
    let (_, _, path, _) = error(&listener("proxy_protocol_timeout = \"1s\"\n"));
    assert_eq!(path, "listeners[0].proxy_protocol_timeout");
    let (_, _, path, _) = error(&listener("proxy_protocol = \"v3\"\n"));
    assert!(path.starts_with("listeners[0]"), "{path}");

    let sending = |version: &str, protocol: &str| {
        format!(
            "[[listeners]]\nname = \"a\"\naddress = \"127.0.0.1:0\"\ncluster = \"c\"\n\
             protocol = \"{protocol}\"\n{GOOD_TAIL}proxy_protocol = \"{version}\"\n"
        )
    };
    let config = parse("ok.toml", &sending("v1", "tcp")).unwrap();
    assert_eq!(config.clusters[0].proxy_protocol, Some(ProxyVersion::V1));
    let (_, _, path, _) = error(&sending("any", "tcp"));
    assert_eq!(path, "clusters[0].proxy_protocol");
    let (_, _, path, message) = error(&sending("v2", "bolt"));
    assert_eq!(path, "listeners[0].cluster");
    assert!(message.contains("PROXY"), "{message}");
}
