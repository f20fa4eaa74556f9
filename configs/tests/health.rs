//! `[clusters.health_check]`, `[clusters.outlier_detection]` and
//! `healthy_panic_threshold`: the keys the issue names, their defaults,
//! and mistakes refused with line, column and key.
// Test code: a panic is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use baton_config::{CheckKind, Cluster, ConfigError, Protocol, parse};

/// A cluster `c` with `extra` after its name (from line 7 on).
fn cluster(extra: &str) -> String {
    format!(
        "[[listeners]]\nname = \"a\"\naddress = \"127.0.0.1:0\"\ncluster = \"c\"\n\
         [[clusters]]\nname = \"c\"\nendpoints = [\"127.0.0.1:1\"]\n{extra}"
    )
}

fn parsed(extra: &str) -> Cluster {
    parse("t.toml", &cluster(extra))
        .unwrap_or_else(|e| panic!("{e}"))
        .clusters
        .remove(0)
}

fn error(extra: &str) -> (usize, String, String) {
    match parse("bad.toml", &cluster(extra)) {
        Err(ConfigError::Invalid {
            line,
            path,
            message,
            ..
        }) => (line, path, message),
        other => panic!("expected an Invalid error for {extra:?}, got {other:?}"),
    }
}

#[test]
fn no_tables_no_checks_and_envoys_panic_threshold() {
    let c = parsed("");
    assert_eq!(c.health_check, None);
    assert_eq!(c.outlier_detection, None);
    assert_eq!(c.healthy_panic_threshold, 50);
    assert_eq!(
        parsed("healthy_panic_threshold = 0\n").healthy_panic_threshold,
        0
    );
}

#[test]
fn an_http_check_with_the_issues_key_names() {
    let c = parsed(
        "[clusters.health_check]\nkind = \"http\"\ninterval = \"2s\"\ntimeout = \"500ms\"\n\
         healthy_threshold = 3\nunhealthy_threshold = 1\npath = \"/healthz\"\n\
         expected_statuses = [200, { start = 300, end = 400 }]\nhost = \"svc.local\"\n\
         method = \"HEAD\"\ninterval_jitter = \"100ms\"\n",
    );
    let check = c.health_check.unwrap();
    assert_eq!(check.interval, Duration::from_secs(2));
    assert_eq!(check.timeout, Duration::from_millis(500));
    assert_eq!(check.interval_jitter, Duration::from_millis(100));
    assert_eq!(check.healthy_threshold.get(), 3);
    assert_eq!(check.unhealthy_threshold.get(), 1);
    let CheckKind::Http(http) = check.kind else {
        panic!("{:?}", check.kind)
    };
    assert_eq!(http.path, "/healthz");
    assert_eq!(http.method, "HEAD");
    assert_eq!(http.host.as_deref(), Some("svc.local"));
    assert_eq!(http.expected_statuses, [(200, 201), (300, 400)]);
    assert!(http.expects(200) && http.expects(302));
    assert!(!http.expects(201) && !http.expects(400));
}

#[test]
fn defaults_fill_a_check_and_a_detector() {
    let c = parsed("[clusters.health_check]\nkind = \"http\"\n[clusters.outlier_detection]\n");
    let check = c.health_check.unwrap();
    assert_eq!(check.interval, Duration::from_secs(5));
    assert_eq!(check.timeout, Duration::from_secs(1));
    assert_eq!(
        (
            check.healthy_threshold.get(),
            check.unhealthy_threshold.get()
        ),
        (2, 3)
    );
    let CheckKind::Http(http) = check.kind else {
        panic!()
    };
    assert_eq!((http.method.as_str(), http.path.as_str()), ("GET", "/"));
    assert!(http.expects(200) && http.expects(299) && !http.expects(300));
    let outlier = c.outlier_detection.unwrap();
    assert_eq!(outlier.consecutive_errors.get(), 5);
    assert_eq!(outlier.base_ejection_time, Duration::from_secs(30));
    assert_eq!(outlier.max_ejection_time, Duration::from_secs(300));
    assert_eq!(outlier.max_ejection_percent, 10);
}

#[test]
fn grpc_and_heartbeat_checks() {
    let c = parsed("[clusters.health_check]\nkind = \"grpc\"\nservice = \"orders.Orders\"\n");
    assert_eq!(
        c.health_check.unwrap().kind,
        CheckKind::Grpc {
            service: "orders.Orders".into()
        }
    );
    let c = parsed("[clusters.health_check]\nkind = \"heartbeat\"\nprotocol = \"dubbo\"\n");
    assert_eq!(
        c.health_check.unwrap().kind,
        CheckKind::Heartbeat {
            protocol: Protocol::Dubbo,
            service: None,
        }
    );
    let c = parsed("[clusters.health_check]\nkind = \"tcp\"\n");
    assert_eq!(c.health_check.unwrap().kind, CheckKind::Tcp);
}

#[test]
fn an_outlier_detector_with_the_issues_key_names() {
    let c = parsed(
        "[clusters.outlier_detection]\nconsecutive_errors = 3\nbase_ejection_time = \"10s\"\n\
         max_ejection_percent = 50\n",
    );
    let outlier = c.outlier_detection.unwrap();
    assert_eq!(outlier.consecutive_errors.get(), 3);
    assert_eq!(outlier.base_ejection_time, Duration::from_secs(10));
    assert_eq!(outlier.max_ejection_percent, 50);
    // A base above the default max raises the max (Envoy).
    let c = parsed("[clusters.outlier_detection]\nbase_ejection_time = \"10m\"\n");
    assert_eq!(
        c.outlier_detection.unwrap().max_ejection_time,
        Duration::from_secs(600)
    );
}

#[test]
fn mistakes_are_refused_where_they_are() {
    let (line, path, message) =
        error("[clusters.health_check]\nkind = \"http\"\nservice = \"x\"\n");
    assert_eq!(
        (line, path.as_str()),
        (10, "clusters[0].health_check.service")
    );
    assert!(message.contains("kind = \"grpc\""), "{message}");

    let (line, path, _) = error("[clusters.health_check]\nkind = \"udp\"\n");
    assert_eq!((line, path.as_str()), (9, "clusters[0].health_check.kind"));

    let (line, path, message) = error("[clusters.health_check]\nkind = \"heartbeat\"\n");
    assert_eq!(
        (line, path.as_str()),
        (9, "clusters[0].health_check.protocol")
    );
    assert!(message.contains("bolt"), "{message}");

    let (line, path, _) =
        error("[clusters.health_check]\nkind = \"heartbeat\"\nprotocol = \"tcp\"\n");
    assert_eq!(
        (line, path.as_str()),
        (10, "clusters[0].health_check.protocol")
    );

    let (line, path, _) =
        error("[clusters.health_check]\nkind = \"http\"\nexpected_statuses = [700]\n");
    assert_eq!(
        (line, path.as_str()),
        (10, "clusters[0].health_check.expected_statuses")
    );

    let (line, path, _) = error("[clusters.health_check]\nkind = \"http\"\npath = \"x\"\n");
    assert_eq!((line, path.as_str()), (10, "clusters[0].health_check.path"));

    let (line, path, _) = error("[clusters.health_check]\nkind = \"tcp\"\ninterval = \"0s\"\n");
    assert_eq!(
        (line, path.as_str()),
        (10, "clusters[0].health_check.interval")
    );

    let (_, path, _) = error("[clusters.health_check]\nkind = \"tcp\"\nhealthy_threshold = 0\n");
    assert_eq!(path, "clusters[0].health_check.healthy_threshold");

    let (_, path, _) = error("[clusters.health_check]\nkind = \"tcp\"\nrise = 2\n");
    assert!(path.starts_with("clusters[0].health_check"), "{path}");

    let (line, path, _) = error("[clusters.outlier_detection]\nmax_ejection_percent = 101\n");
    assert_eq!(
        (line, path.as_str()),
        (9, "clusters[0].outlier_detection.max_ejection_percent")
    );

    let (line, path, _) = error(
        "[clusters.outlier_detection]\nbase_ejection_time = \"1m\"\nmax_ejection_time = \"30s\"\n",
    );
    assert_eq!(
        (line, path.as_str()),
        (10, "clusters[0].outlier_detection.max_ejection_time")
    );

    let (line, path, _) = error("healthy_panic_threshold = 200\n");
    assert_eq!(
        (line, path.as_str()),
        (8, "clusters[0].healthy_panic_threshold")
    );
}

#[test]
fn envoys_other_detectors_with_their_defaults_and_bad_values_refused() {
    let outlier = parsed("[clusters.outlier_detection]\n")
        .outlier_detection
        .unwrap();
    assert_eq!(outlier.consecutive_gateway_failure, None);
    assert_eq!(outlier.interval, Duration::from_secs(10));
    assert_eq!(
        (
            outlier.success_rate.enforcing,
            outlier.success_rate.minimum_hosts,
            outlier.success_rate.request_volume,
            outlier.success_rate.stdev_factor
        ),
        (100, 5, 100, 1900)
    );
    assert_eq!(
        (
            outlier.failure_percentage.enforcing,
            outlier.failure_percentage.threshold,
            outlier.failure_percentage.minimum_hosts,
            outlier.failure_percentage.request_volume
        ),
        (0, 85, 5, 50)
    );
    let outlier = parsed(
        "[clusters.outlier_detection]\nconsecutive_gateway_failure = 2\ninterval = \"1s\"\n\
         enforcing_failure_percentage = 50\nfailure_percentage_threshold = 60\n",
    )
    .outlier_detection
    .unwrap();
    assert_eq!(
        outlier.consecutive_gateway_failure.map(|n| n.get()),
        Some(2)
    );
    assert_eq!(outlier.interval, Duration::from_secs(1));
    assert_eq!(
        (
            outlier.failure_percentage.enforcing,
            outlier.failure_percentage.threshold
        ),
        (50, 60)
    );
    for (key, value) in [
        ("enforcing_success_rate", "101"),
        ("failure_percentage_threshold", "-1"),
        ("interval", "\"0s\""),
        ("consecutive_gateway_failure", "0"),
    ] {
        let (line, path, _) = error(&format!("[clusters.outlier_detection]\n{key} = {value}\n"));
        assert_eq!(
            (line, path),
            (9, format!("clusters[0].outlier_detection.{key}")),
            "{key} = {value}"
        );
    }
}

#[test]
fn http_checks_over_h2_and_tars_heartbeats_on_a_servant() {
    let c = parsed("[clusters.health_check]\nkind = \"http\"\ncodec_client_type = \"http2\"\n");
    let CheckKind::Http(http) = c.health_check.unwrap().kind else {
        panic!()
    };
    assert!(http.http2);
    let c = parsed(
        "[clusters.health_check]\nkind = \"heartbeat\"\nprotocol = \"tars\"\n\
         service = \"Baton.EchoServer.EchoObj\"\n",
    );
    assert_eq!(
        c.health_check.unwrap().kind,
        CheckKind::Heartbeat {
            protocol: Protocol::Tars,
            service: Some("Baton.EchoServer.EchoObj".into()),
        }
    );
    let (_, path, message) =
        error("[clusters.health_check]\nkind = \"heartbeat\"\nprotocol = \"tars\"\n");
    assert_eq!(path, "clusters[0].health_check.service");
    assert!(message.contains("servant"), "{message}");
    let (_, path, _) = error(
        "[clusters.health_check]\nkind = \"heartbeat\"\nprotocol = \"bolt\"\nservice = \"x\"\n",
    );
    assert_eq!(path, "clusters[0].health_check.service");
    let (_, path, _) =
        error("[clusters.health_check]\nkind = \"tcp\"\ncodec_client_type = \"http2\"\n");
    assert_eq!(path, "clusters[0].health_check.codec_client_type");
}
