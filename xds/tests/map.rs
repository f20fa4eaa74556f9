//! The mapping of xDS resources to baton's config types, resource by
//! resource (what maps, what is refused with which message, what is
//! ignored and counted), and `compose` (names resolved, warming).
// Test code: a panic is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use baton_config::{HttpAction, PathMatch, Target};
use baton_xds::map::{
    self, Ignored, ListenerKind, MappedCluster, MappedEndpoints, MappedListener, MappedResources,
    MappedRoutes, NamedAction, RouteSource, compose,
};
use envoy_types::pb::envoy::config::cluster::v3 as xcluster;
use envoy_types::pb::envoy::config::core::v3 as xcore;
use envoy_types::pb::envoy::config::endpoint::v3 as xendpoint;
use envoy_types::pb::envoy::config::route::v3 as xroute;
use envoy_types::pb::google::protobuf::UInt32Value;

fn address(port: u32) -> Option<xcore::Address> {
    Some(xcore::Address {
        address: Some(xcore::address::Address::SocketAddress(
            xcore::SocketAddress {
                address: "127.0.0.1".into(),
                port_specifier: Some(xcore::socket_address::PortSpecifier::PortValue(port)),
                ..Default::default()
            },
        )),
    })
}

fn lb_endpoint(
    port: u32,
    weight: Option<u32>,
    health: xcore::HealthStatus,
) -> xendpoint::LbEndpoint {
    xendpoint::LbEndpoint {
        health_status: health as i32,
        load_balancing_weight: weight.map(|value| UInt32Value { value }),
        host_identifier: Some(xendpoint::lb_endpoint::HostIdentifier::Endpoint(
            xendpoint::Endpoint {
                address: address(port),
                ..Default::default()
            },
        )),
        ..Default::default()
    }
}

fn cla(localities: Vec<(u32, Vec<xendpoint::LbEndpoint>)>) -> xendpoint::ClusterLoadAssignment {
    xendpoint::ClusterLoadAssignment {
        cluster_name: "web".into(),
        endpoints: localities
            .into_iter()
            .map(|(priority, lb_endpoints)| xendpoint::LocalityLbEndpoints {
                priority,
                lb_endpoints,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

#[test]
fn endpoints_keep_weights_drop_unhealthy_and_count_other_priorities() {
    use xcore::HealthStatus as H;
    let mut ignored = Ignored::default();
    let e = map::load_assignment(
        &cla(vec![
            (
                0,
                vec![
                    lb_endpoint(1, Some(3), H::Healthy),
                    lb_endpoint(2, None, H::Unknown),
                    lb_endpoint(3, None, H::Unhealthy),
                    lb_endpoint(4, None, H::Draining),
                    lb_endpoint(5, None, H::Degraded),
                ],
            ),
            (1, vec![lb_endpoint(6, None, H::Healthy)]),
        ]),
        &mut ignored,
    )
    .unwrap();
    let got: Vec<(u16, u32)> = e
        .endpoints
        .iter()
        .map(|e| (e.address.port(), e.weight.get()))
        .collect();
    assert_eq!(got, [(1, 3), (2, 1), (5, 1)]);
    assert_eq!(
        ignored
            .0
            .get("cluster_load_assignment.endpoints[priority>0]"),
        Some(&1)
    );

    let too_heavy = cla(vec![(0, vec![lb_endpoint(1, Some(500), H::Healthy)])]);
    let message = map::load_assignment(&too_heavy, &mut ignored).unwrap_err();
    assert!(
        message.contains("500") && message.contains("128"),
        "{message}"
    );
}

#[test]
fn clusters_baton_cannot_serve_are_refused_with_a_reason() {
    let mut ignored = Ignored::default();
    let dns = xcluster::Cluster {
        name: "dns".into(),
        cluster_discovery_type: Some(xcluster::cluster::ClusterDiscoveryType::Type(
            xcluster::cluster::DiscoveryType::StrictDns as i32,
        )),
        ..Default::default()
    };
    let message = map::cluster(&dns, &mut ignored).unwrap_err();
    assert!(message.contains("STRICT_DNS"), "{message}");

    let static_empty = xcluster::Cluster {
        name: "s".into(),
        ..Default::default()
    };
    assert!(
        map::cluster(&static_empty, &mut ignored)
            .unwrap_err()
            .contains("without endpoints")
    );
}

#[test]
fn clusters_map_their_policies_and_count_what_baton_leaves_out() {
    use xcluster::cluster::{ClusterDiscoveryType, DiscoveryType, EdsClusterConfig, LbPolicy};
    let mut ignored = Ignored::default();
    let c = xcluster::Cluster {
        name: "web".into(),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32)),
        eds_cluster_config: Some(EdsClusterConfig {
            service_name: "web-eds".into(),
            ..Default::default()
        }),
        lb_policy: LbPolicy::Maglev as i32,
        outlier_detection: Some(xcluster::OutlierDetection {
            consecutive_5xx: Some(UInt32Value { value: 9 }),
            max_ejection_percent: Some(UInt32Value { value: 40 }),
            ..Default::default()
        }),
        health_checks: vec![xcore::HealthCheck {
            health_checker: Some(xcore::health_check::HealthChecker::HttpHealthCheck(
                xcore::health_check::HttpHealthCheck {
                    path: "/healthz".into(),
                    ..Default::default()
                },
            )),
            healthy_threshold: Some(UInt32Value { value: 4 }),
            ..Default::default()
        }],
        dns_lookup_family: 1,
        ..Default::default()
    };
    let MappedCluster { cluster, eds, .. } = map::cluster(&c, &mut ignored).unwrap();
    assert_eq!(eds.as_deref(), Some("web-eds"));
    assert_eq!(cluster.lb, baton_config::Lb::Maglev);
    let outlier = cluster.outlier_detection.unwrap();
    assert_eq!(
        (
            outlier.consecutive_errors.get(),
            outlier.max_ejection_percent
        ),
        (9, 40)
    );
    let check = cluster.health_check.unwrap();
    assert_eq!(check.healthy_threshold.get(), 4);
    match check.kind {
        baton_config::CheckKind::Http(h) => assert_eq!(h.path, "/healthz"),
        other => panic!("{other:?}"),
    }
    assert_eq!(ignored.0.get("cluster.dns_lookup_family"), Some(&1));
}

fn route(m: xroute::route_match::PathSpecifier, action: xroute::route::Action) -> xroute::Route {
    xroute::Route {
        r#match: Some(xroute::RouteMatch {
            path_specifier: Some(m),
            ..Default::default()
        }),
        action: Some(action),
        ..Default::default()
    }
}

fn routes(domains: &[&str], rs: Vec<xroute::Route>) -> xroute::RouteConfiguration {
    xroute::RouteConfiguration {
        name: "r".into(),
        virtual_hosts: vec![xroute::VirtualHost {
            name: "vh".into(),
            domains: domains.iter().map(|d| d.to_string()).collect(),
            routes: rs,
            ..Default::default()
        }],
        ..Default::default()
    }
}

#[test]
fn routes_map_matches_weights_and_redirects() {
    use xroute::route::Action;
    use xroute::route_match::PathSpecifier as P;
    let weighted = xroute::RouteAction {
        cluster_specifier: Some(xroute::route_action::ClusterSpecifier::WeightedClusters(
            xroute::WeightedCluster {
                clusters: vec![
                    xroute::weighted_cluster::ClusterWeight {
                        name: "a".into(),
                        weight: Some(UInt32Value { value: 90 }),
                        ..Default::default()
                    },
                    xroute::weighted_cluster::ClusterWeight {
                        name: "b".into(),
                        weight: Some(UInt32Value { value: 10 }),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            },
        )),
        ..Default::default()
    };
    let redirect = xroute::RedirectAction {
        host_redirect: "secure.example".into(),
        port_redirect: 8443,
        scheme_rewrite_specifier: Some(
            xroute::redirect_action::SchemeRewriteSpecifier::HttpsRedirect(true),
        ),
        response_code: xroute::redirect_action::RedirectResponseCode::PermanentRedirect as i32,
        ..Default::default()
    };
    let rc = routes(
        &["example.com", "*.example.com"],
        vec![
            route(
                P::SafeRegex(envoy_types::pb::envoy::r#type::matcher::v3::RegexMatcher {
                    regex: "/v[0-9]+/.*".into(),
                    ..Default::default()
                }),
                Action::Route(weighted),
            ),
            route(P::Path("/login".into()), Action::Redirect(redirect)),
        ],
    );
    let MappedRoutes { routes: mapped } =
        map::route_configuration(&rc, &mut Ignored::default()).unwrap();
    assert_eq!(mapped[0].route.hosts, ["example.com", "*.example.com"]);
    assert_eq!(
        mapped[0].route.path,
        PathMatch::Regex("^(?:/v[0-9]+/.*)$".into())
    );
    assert_eq!(
        mapped[0].target,
        NamedAction::Weighted(vec![("a".into(), 90), ("b".into(), 10)])
    );
    assert_eq!(mapped[1].route.path, PathMatch::Exact("/login".into()));
    assert_eq!(
        mapped[1].target,
        NamedAction::Fixed(HttpAction::Redirect {
            location: "https://secure.example:8443/".into(),
            status: 308
        })
    );

    let bad = routes(
        &["*"],
        vec![route(
            P::SafeRegex(envoy_types::pb::envoy::r#type::matcher::v3::RegexMatcher {
                regex: "(".into(),
                ..Default::default()
            }),
            Action::DirectResponse(xroute::DirectResponseAction {
                status: 200,
                ..Default::default()
            }),
        )],
    );
    let message = map::route_configuration(&bad, &mut Ignored::default()).unwrap_err();
    assert!(
        message.contains("virtual host \"vh\", route 0"),
        "{message}"
    );
}

#[test]
fn compose_resolves_names_and_holds_back_what_is_warming() {
    let base = baton_config::parse(
        "static.toml",
        "[[listeners]]\nname = \"static\"\naddress = \"127.0.0.1:9\"\ncluster = \"shared\"\n\
         [[clusters]]\nname = \"shared\"\nendpoints = [\"127.0.0.1:1\"]\n",
    )
    .unwrap();
    let mut ignored = Ignored::default();
    let eds = |name: &str| {
        let c = xcluster::Cluster {
            name: name.into(),
            cluster_discovery_type: Some(xcluster::cluster::ClusterDiscoveryType::Type(
                xcluster::cluster::DiscoveryType::Eds as i32,
            )),
            ..Default::default()
        };
        map::cluster(&c, &mut Ignored::default()).unwrap()
    };
    let mut r = MappedResources::default();
    r.clusters.insert("ready".into(), eds("ready"));
    r.clusters.insert("cold".into(), eds("cold"));
    // Named like the static cluster: the file's wins.
    r.clusters.insert("shared".into(), eds("shared"));
    let endpoints = map::load_assignment(
        &cla(vec![(
            0,
            vec![lb_endpoint(7, None, xcore::HealthStatus::Healthy)],
        )]),
        &mut ignored,
    )
    .unwrap();
    r.endpoints.insert("ready".into(), endpoints.clone());
    r.endpoints.insert(
        "cold".into(),
        MappedEndpoints {
            endpoints: Vec::new(),
        },
    );
    let listener = |name: &str, kind: ListenerKind| MappedListener {
        name: name.into(),
        address: "127.0.0.1:0".parse().unwrap(),
        kind,
        secrets: Vec::new(),
    };
    r.listeners.insert(
        "tcp-ready".into(),
        listener(
            "tcp-ready",
            ListenerKind::Tcp {
                cluster: "ready".into(),
            },
        ),
    );
    r.listeners.insert(
        "tcp-cold".into(),
        listener(
            "tcp-cold",
            ListenerKind::Tcp {
                cluster: "cold".into(),
            },
        ),
    );
    r.listeners.insert(
        "http-no-routes".into(),
        listener(
            "http-no-routes",
            ListenerKind::Http {
                routes: RouteSource::Rds("missing".into()),
            },
        ),
    );
    use xroute::route::Action;
    use xroute::route_match::PathSpecifier as P;
    let to = |c: &str| {
        Action::Route(xroute::RouteAction {
            cluster_specifier: Some(xroute::route_action::ClusterSpecifier::Cluster(c.into())),
            ..Default::default()
        })
    };
    let inline = map::route_configuration(
        &routes(
            &["*"],
            vec![
                route(P::Prefix("/ready".into()), to("ready")),
                route(P::Prefix("/cold".into()), to("cold")),
            ],
        ),
        &mut ignored,
    )
    .unwrap();
    r.listeners.insert(
        "http".into(),
        listener(
            "http",
            ListenerKind::Http {
                routes: RouteSource::Inline(inline),
            },
        ),
    );

    let (config, warming) = compose(&base, &r);
    assert_eq!(warming.clusters, ["cold"]);
    assert_eq!(warming.listeners, ["http-no-routes", "tcp-cold"]);
    let clusters: Vec<&str> = config.clusters.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(clusters, ["shared", "ready"]);
    assert_eq!(config.clusters[0].endpoints, base.clusters[0].endpoints);
    let listeners: Vec<&str> = config.listeners.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(listeners, ["static", "http", "tcp-ready"]);
    let ready = baton_config::ClusterId::new(1);
    assert_eq!(config.listeners[2].target, Target::Cluster(ready));
    let http = config.listeners[1].http.as_ref().unwrap();
    assert_eq!(http.routes[0].action, HttpAction::Cluster(ready));
    assert!(
        matches!(
            http.routes[1].action,
            HttpAction::Direct { status: 503, .. }
        ),
        "a route to a warming cluster answers 503: {:?}",
        http.routes[1].action
    );
}

#[test]
fn virtual_hosts_go_in_the_order_envoy_picks_them() {
    use xroute::route::Action;
    use xroute::route_match::PathSpecifier as P;
    let direct = |status| {
        Action::DirectResponse(xroute::DirectResponseAction {
            status,
            ..Default::default()
        })
    };
    let vh = |name: &str, domains: &[&str], status| xroute::VirtualHost {
        name: name.into(),
        domains: domains.iter().map(|d| d.to_string()).collect(),
        routes: vec![route(P::Prefix("/".into()), direct(status))],
        ..Default::default()
    };
    let rc = xroute::RouteConfiguration {
        virtual_hosts: vec![
            vh("any", &["*"], 201),
            vh("short", &["*.example.com"], 202),
            vh("long", &["*.api.example.com"], 203),
            vh("exact", &["www.example.com"], 204),
        ],
        ..Default::default()
    };
    let mapped = map::route_configuration(&rc, &mut Ignored::default()).unwrap();
    let statuses: Vec<u16> = mapped
        .routes
        .iter()
        .map(|r| match r.target {
            NamedAction::Fixed(HttpAction::Direct { status, .. }) => status,
            ref other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(statuses, [204, 203, 202, 201]);

    let prefix = xroute::RouteConfiguration {
        virtual_hosts: vec![vh("p", &["www.*"], 200)],
        ..Default::default()
    };
    let message = map::route_configuration(&prefix, &mut Ignored::default()).unwrap_err();
    assert!(message.contains("www.*"), "{message}");
}

/// What a generation runs is text: the static file with the dynamic
/// listeners and clusters written in the file syntax. It parses back to
/// exactly what compose made — policies, health checks, outlier
/// detection, weights, redirects, direct responses, header edits,
/// timeouts and retries — and adds nothing when nothing is dynamic.
#[test]
fn compose_text_writes_what_compose_makes() {
    use baton_xds::render::compose_text;
    use xcluster::cluster::{ClusterDiscoveryType, DiscoveryType, LbPolicy};
    use xroute::route::Action;
    use xroute::route_match::PathSpecifier as P;
    let file = "[[listeners]]\nname = \"static\"\naddress = \"127.0.0.1:9\"\ncluster = \"s\"\n\
                [[clusters]]\nname = \"s\"\nendpoints = [\"127.0.0.1:1\"]\n";
    let same = compose_text("f.toml", file, &MappedResources::default()).unwrap();
    assert_eq!(same.text, file);

    let mut ignored = Ignored::default();
    let mut r = MappedResources::default();
    let web = xcluster::Cluster {
        name: "web".into(),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32)),
        lb_policy: LbPolicy::RingHash as i32,
        outlier_detection: Some(xcluster::OutlierDetection {
            consecutive_5xx: Some(UInt32Value { value: 3 }),
            ..Default::default()
        }),
        health_checks: vec![xcore::HealthCheck {
            health_checker: Some(xcore::health_check::HealthChecker::HttpHealthCheck(
                xcore::health_check::HttpHealthCheck {
                    path: "/healthz".into(),
                    host: "probe".into(),
                    ..Default::default()
                },
            )),
            unhealthy_threshold: Some(UInt32Value { value: 5 }),
            ..Default::default()
        }],
        ..Default::default()
    };
    r.clusters
        .insert("web".into(), map::cluster(&web, &mut ignored).unwrap());
    let weights = cla(vec![(
        0,
        vec![
            lb_endpoint(7001, Some(3), xcore::HealthStatus::Healthy),
            lb_endpoint(7002, None, xcore::HealthStatus::Unknown),
        ],
    )]);
    r.endpoints.insert(
        "web".into(),
        map::load_assignment(&weights, &mut ignored).unwrap(),
    );
    let to = |c: &str| {
        Action::Route(xroute::RouteAction {
            cluster_specifier: Some(xroute::route_action::ClusterSpecifier::Cluster(c.into())),
            timeout: Some(envoy_types::pb::google::protobuf::Duration {
                seconds: 2,
                nanos: 500_000_000,
            }),
            retry_policy: Some(xroute::RetryPolicy {
                num_retries: Some(UInt32Value { value: 2 }),
                ..Default::default()
            }),
            ..Default::default()
        })
    };
    let mut api = route(P::Prefix("/api".into()), to("web"));
    api.request_headers_to_add = vec![
        envoy_types::pb::envoy::config::core::v3::HeaderValueOption {
            header: Some(envoy_types::pb::envoy::config::core::v3::HeaderValue {
                key: "x-from".into(),
                value: "xds".into(),
                ..Default::default()
            }),
            ..Default::default()
        },
    ];
    api.response_headers_to_remove = vec!["server".into()];
    let rc = routes(
        &["example.com"],
        vec![
            api,
            route(P::Prefix("/gone".into()), to("not-yet")),
            route(
                P::Path("/old".into()),
                Action::Redirect(xroute::RedirectAction {
                    host_redirect: "new.example".into(),
                    ..Default::default()
                }),
            ),
            route(
                P::Prefix("/".into()),
                Action::DirectResponse(xroute::DirectResponseAction {
                    status: 418,
                    body: Some(xcore::DataSource {
                        specifier: Some(xcore::data_source::Specifier::InlineString(
                            "teapot \"quoted\"\n".into(),
                        )),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
            ),
        ],
    );
    r.routes.insert(
        "rc".into(),
        map::route_configuration(&rc, &mut ignored).unwrap(),
    );
    for (name, kind) in [
        (
            "front",
            ListenerKind::Http {
                routes: RouteSource::Rds("rc".into()),
            },
        ),
        (
            "l4",
            ListenerKind::Tcp {
                cluster: "web".into(),
            },
        ),
    ] {
        r.listeners.insert(
            name.into(),
            MappedListener {
                name: name.into(),
                address: "127.0.0.1:0".parse().unwrap(),
                kind,
                secrets: Vec::new(),
            },
        );
    }

    let composed = compose_text("f.toml", file, &r).unwrap();
    assert_eq!(composed.inexact, None, "{}", composed.text);
    assert!(composed.text.starts_with(file));
    let (expected, warming) = compose(&baton_config::parse("f.toml", file).unwrap(), &r);
    assert_eq!(composed.warming, warming);
    let parsed = baton_config::parse("f.toml", &composed.text).unwrap();
    assert_eq!(parsed, expected);
    let names: Vec<&str> = parsed.listeners.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["static", "front", "l4"]);
    let web = &parsed.clusters[1];
    assert_eq!(web.lb, baton_config::Lb::RingHash);
    assert_eq!(web.endpoints[0].weight.get(), 3);
    assert!(web.health_check.is_some() && web.outlier_detection.is_some());
}

/// Names the file syntax does not allow (Istio's) are written in a form
/// it does, distinct and stable; references follow.
#[test]
fn istio_names_are_written_as_file_names() {
    use baton_xds::render::{compose_text, file_name};
    let istio = "outbound|9080||reviews.default.svc.cluster.local";
    let name = file_name(istio);
    assert!(
        name.len() <= 64 && name.starts_with("outbound_9080__reviews"),
        "{name}"
    );
    assert_eq!(name, file_name(istio), "stable");
    assert_ne!(file_name("a|b"), file_name("a:b"));
    assert_eq!(file_name("plain-name_1.2"), "plain-name_1.2");
    assert_ne!(file_name(&"x".repeat(65)), "x".repeat(65));

    let mut r = MappedResources::default();
    let c = xcluster::Cluster {
        name: istio.into(),
        load_assignment: Some(cla(vec![(
            0,
            vec![lb_endpoint(9080, None, xcore::HealthStatus::Healthy)],
        )])),
        ..Default::default()
    };
    r.clusters.insert(
        istio.into(),
        map::cluster(&c, &mut Ignored::default()).unwrap(),
    );
    r.listeners.insert(
        "0.0.0.0:9080".into(),
        MappedListener {
            name: "0.0.0.0:9080".into(),
            address: "127.0.0.1:0".parse().unwrap(),
            kind: ListenerKind::Tcp {
                cluster: istio.into(),
            },
            secrets: Vec::new(),
        },
    );
    let composed = compose_text("f.toml", "", &r).unwrap();
    assert_eq!(composed.inexact, None, "{}", composed.text);
    let parsed = baton_config::parse("f.toml", &composed.text).unwrap();
    assert_eq!(parsed.clusters[0].name, name);
    assert_eq!(parsed.listeners[0].name, file_name("0.0.0.0:9080"));
    assert_eq!(
        parsed.listeners[0].target,
        Target::Cluster(baton_config::ClusterId::new(0))
    );
}
