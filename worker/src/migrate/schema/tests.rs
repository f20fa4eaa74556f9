//! Golden fixtures of every connection kind in every handoff schema this
//! build speaks, and the batch envelopes.
//!
//! `fixtures/schema-1/` was written by the release before this one
//! (3c3e9b9, whose `baton_ipc::ConnState` it is): it is what that worker
//! sends and reads. A test here fails when this build writes any kind
//! differently from its fixture — change the encoding only with a new
//! schema version. A version without its fixtures fails too; with
//! `BATON_WRITE_MISSING_FIXTURES=1` the missing files (never existing
//! ones) are written from this build, to be reviewed and committed.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::*;
use crate::codec::{CodecConfig, Protocol};
use crate::http::parked::HttpWire;
use crate::l4::parked::{EchoWire, SpilledTunnelWire, TunnelWire};
use crate::rpc::parked::{RequestWire, RpcWire, RpcWireV7, UpWire};
use crate::telemetry::trace::MovingSpan;

fn head(kind: ConnKind) -> ConnState {
    ConnState {
        id: 7,
        listener: "front".into(),
        idle_timeout: Duration::from_millis(90_500),
        kind,
        started_unix_ms: 1_795_910_400_123,
        received: 1000,
        sent: 2000,
        moves: 2,
        ends: None,
    }
}

fn codec(protocol: Protocol, config: CodecConfig) -> Vec<u8> {
    let state = protocol.codec(config).state();
    bincode::serde::encode_to_vec(&state, bincode::config::standard()).unwrap()
}

/// One connection of every kind, in every form its wire form has.
fn samples() -> Vec<(String, ConnState)> {
    let mut out = vec![
        (
            "tunnel".to_string(),
            head(ConnKind::Tunnel(TunnelWire {
                c2u: PipeWire {
                    pending: b"GET / HTTP/1.1\r\n".to_vec(),
                    read_closed: false,
                    write_closed: false,
                },
                u2c: PipeWire {
                    pending: Vec::new(),
                    read_closed: true,
                    write_closed: true,
                },
                cluster: "back".into(),
                upstream: "127.0.0.1:9000".parse().unwrap(),
            })),
        ),
        (
            "tunnel_spilled".to_string(),
            head(ConnKind::SpilledTunnel(SpilledTunnelWire {
                c2u: PipeWire {
                    pending: Vec::new(),
                    read_closed: true,
                    write_closed: false,
                },
                u2c: PipeWire::default(),
                cluster: "back".into(),
                upstream: "[::1]:9000".parse().unwrap(),
                spilled: (40_000, 3),
            })),
        ),
        (
            "echo".to_string(),
            head(ConnKind::Echo(EchoWire {
                pipe: PipeWire {
                    pending: b"echo me".to_vec(),
                    read_closed: false,
                    write_closed: false,
                },
            })),
        ),
    ];
    for p in Protocol::ALL {
        out.push((
            format!("rpc_{}", p.name()),
            head(ConnKind::Rpc(RpcWire {
                codec: codec(*p, CodecConfig::with_max_frame_size(1 << 20).unwrap()),
                read_pending: vec![0xbc, 0x01],
                write_pending: b"answer".to_vec(),
                spilled: None,
                in_flight: 3,
                read_closed: false,
            })),
        ));
    }
    out.extend([
        (
            "rpc_spilled".to_string(),
            head(ConnKind::Rpc(RpcWire {
                codec: codec(Protocol::Bolt, CodecConfig::default()),
                read_pending: Vec::new(),
                write_pending: Vec::new(),
                spilled: Some((40_000, 10)),
                in_flight: 0,
                read_closed: true,
            })),
        ),
        (
            "http1".to_string(),
            head(ConnKind::Http(HttpWire {
                read_pending: b"GET /next HTTP/1.1\r\nHost: a\r\n".to_vec(),
                spilled: None,
            })),
        ),
        (
            "http1_spilled".to_string(),
            head(ConnKind::Http(HttpWire {
                read_pending: Vec::new(),
                spilled: Some(40_000),
            })),
        ),
        (
            "tls_hello".to_string(),
            head(ConnKind::Http(HttpWire {
                read_pending: Vec::new(),
                spilled: None,
            })),
        ),
    ]);
    let rocketmq = codec(Protocol::RocketMq, CodecConfig::default());
    let broker = |requests: Vec<RequestWire>| UpWire {
        cluster: "broker-a".into(),
        addr: "10.0.0.7:10911".parse().unwrap(),
        codec: rocketmq.clone(),
        next_id: 41,
        requests,
    };
    let pull = RequestWire {
        id: 40,
        client_id: 1234,
        left: Duration::from_millis(29_500),
    };
    out.extend([
        (
            "rpc_pinned".to_string(),
            head(ConnKind::RpcV7(RpcWireV7 {
                codec: rocketmq.clone(),
                in_flight: 2,
                read_closed: false,
                pinned: vec![broker(vec![pull])],
                asked: vec![(77, "broker-a".into())],
                bytes: vec![
                    vec![0, 0],
                    b"to the client".to_vec(),
                    Vec::new(),
                    b"to the broker".to_vec(),
                    b"the pull request".to_vec(),
                    b"a filtered request".to_vec(),
                ],
                spilled: None,
                traces: Vec::new(),
                registration: Some(b"the client's HEART_BEAT".to_vec()),
                filtered: 1,
            })),
        ),
        (
            "rpc_pinned_spilled".to_string(),
            head(ConnKind::RpcV7(RpcWireV7 {
                codec: rocketmq.clone(),
                in_flight: 0,
                read_closed: true,
                pinned: vec![broker(Vec::new())],
                asked: Vec::new(),
                bytes: Vec::new(),
                spilled: Some(vec![0, 0, 40_000, 0]),
                traces: Vec::new(),
                registration: None,
                filtered: 0,
            })),
        ),
        (
            "rpc_traced".to_string(),
            head(ConnKind::RpcV7(RpcWireV7 {
                codec: codec(Protocol::Bolt, CodecConfig::default()),
                in_flight: 1,
                read_closed: false,
                pinned: Vec::new(),
                asked: Vec::new(),
                bytes: vec![Vec::new(), Vec::new()],
                spilled: None,
                traces: vec![(
                    3,
                    MovingSpan {
                        trace_id: 0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736,
                        span_id: 0x00f0_67aa_0ba9_02b7,
                        parent: Some(0x1111_2222_3333_4444),
                        trace_state: Some("vendor=1".into()),
                        sampled: true,
                        start_unix_nanos: 1_795_910_400_123_000_000,
                        listener: "front".into(),
                        client: Some("10.1.2.3:40000".parse().unwrap()),
                        cluster: Some("back".into()),
                        system: "bolt".into(),
                        service: Some("com.example.Echo".into()),
                        method: Some("echo".into()),
                    },
                )],
                registration: None,
                filtered: 0,
            })),
        ),
    ]);
    out
}

/// Whether `state` has a golden fixture in `schema`: every form has one
/// in every version, but forms added after schema 6, which are never
/// written in an older one.
fn has_fixture(schema: Schema, state: &ConnState) -> bool {
    let since = Schema(state.kind.since());
    since <= Schema::V6 || since <= schema
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    let text = text.trim();
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

fn fixture_path(schema: Schema, name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("src/migrate/fixtures")
        .join(format!("schema-{schema}"))
        .join(format!("{name}.hex"))
}

/// The fixture's bytes; a missing one fails (or is written, see the
/// module doc).
fn fixture(schema: Schema, name: &str, ours: &[u8]) -> Vec<u8> {
    let path = fixture_path(schema, name);
    match std::fs::read_to_string(&path) {
        Ok(text) => unhex(&text),
        Err(_) if std::env::var_os("BATON_WRITE_MISSING_FIXTURES").is_some() => {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, hex(ours) + "\n").unwrap();
            ours.to_vec()
        }
        Err(e) => panic!(
            "no golden fixture {} ({e}): every kind needs one in every schema version",
            path.display()
        ),
    }
}

/// One connection's bytes in a batch of `schema` (from schema 5 on,
/// followed by its PROXY protocol addresses).
fn state_bytes(schema: Schema, state: &ConnState) -> Vec<u8> {
    let config = bincode::config::standard();
    if schema >= Schema::V5 {
        let with = WithEnds {
            conn: state,
            ends: &state.ends,
        };
        bincode::serde::encode_to_vec(&with, config).unwrap()
    } else {
        bincode::serde::encode_to_vec(state, config).unwrap()
    }
}

/// [`state_bytes`], read back.
fn read_state(schema: Schema, bytes: &[u8]) -> ConnState {
    if schema >= Schema::V5 {
        let with: WithEndsOwned = decode(schema, bytes).unwrap();
        ConnState {
            ends: with.ends,
            ..with.conn
        }
    } else {
        decode(schema, bytes).unwrap()
    }
}

#[test]
fn every_kind_is_written_as_its_golden_fixture_in_every_version() {
    for &version in HANDOFF_VERSIONS {
        let schema = Schema(version);
        for (name, state) in samples() {
            if !has_fixture(schema, &state) {
                continue;
            }
            // Schema 1 fixtures include the spilled tunnel: this build
            // reads it from the previous release, though never writes it.
            let ours = state_bytes(schema, &state);
            let golden = fixture(schema, &name, &ours);
            assert_eq!(
                hex(&ours),
                hex(&golden),
                "{name} in schema {schema} changed: a new encoding needs a new schema version"
            );
            let back = read_state(schema, &golden);
            assert_eq!(back, state, "{name} in schema {schema} reads back");
        }
    }
}

#[test]
fn batches_are_written_as_their_golden_fixtures() {
    let all = samples();
    let two = [all[0].1.clone(), all[2].1.clone()];
    for &version in HANDOFF_VERSIONS {
        let schema = Schema(version);
        let message = encode_batch(schema, 5, &two).unwrap();
        assert_eq!(message.fd_count(), 3, "a tunnel's two fds and an echo's");
        let ours = message.encode_body().unwrap();
        let golden = fixture(schema, "batch", &ours);
        assert_eq!(
            hex(&ours),
            hex(&golden),
            "batch envelope of schema {schema}"
        );
        let back = Message::decode_frame(message.kind() as u8, 3, &golden).unwrap();
        let (seq, conns) = decode_batch(schema, &back).unwrap();
        assert_eq!((seq, conns.as_slice()), (5, &two[..]));
    }
}

#[test]
fn every_version_round_trips_every_kind_it_can_write() {
    for &version in HANDOFF_VERSIONS {
        let schema = Schema(version);
        for (name, state) in samples() {
            if state.writable_in(schema).is_err() {
                continue;
            }
            let message = encode_batch(schema, 9, std::slice::from_ref(&state)).unwrap();
            let body = message.encode_body().unwrap();
            let back =
                Message::decode_frame(message.kind() as u8, message.fd_count(), &body).unwrap();
            let (seq, conns) = decode_batch(schema, &back).unwrap();
            assert_eq!((seq, conns), (9, vec![state]), "{name} in schema {schema}");
        }
    }
}

/// A connection that came with a PROXY protocol header travels with its
/// addresses from schema 5 on; in an older schema it has no form (it
/// stays and drains in the old generation).
#[test]
fn a_proxied_connection_travels_with_its_addresses_from_schema_5() {
    let mut state = samples().remove(0).1;
    state.ends = Some(EndsWire {
        source: Some("192.0.2.7:40000".parse().unwrap()),
        destination: Some("[2001:db8::1]:443".parse().unwrap()),
    });
    for old in [Schema::V1, Schema::V2, Schema::V3, Schema::V4] {
        assert!(matches!(
            encode_batch(old, 0, std::slice::from_ref(&state)),
            Err(SchemaError::Unsupported { .. })
        ));
    }
    let ours = state_bytes(Schema::V5, &state);
    let golden = fixture(Schema::V5, "tunnel_proxied", &ours);
    assert_eq!(hex(&ours), hex(&golden), "a proxied tunnel in schema 5");
    assert_eq!(read_state(Schema::V5, &golden), state);
    let message = encode_batch(Schema::V5, 3, std::slice::from_ref(&state)).unwrap();
    let body = message.encode_body().unwrap();
    let back = Message::decode_frame(message.kind() as u8, message.fd_count(), &body).unwrap();
    assert_eq!(decode_batch(Schema::V5, &back).unwrap(), (3, vec![state]));
}

/// The spilled tunnel came after schema 1 shipped: an older worker dies
/// on it, so it never goes out in schema 1 — it stays and drains.
#[test]
fn a_spilled_tunnel_is_never_written_in_schema_1() {
    let spilled = samples()
        .into_iter()
        .find(|(name, _)| name == "tunnel_spilled")
        .unwrap()
        .1;
    assert!(matches!(
        spilled.writable_in(Schema::V1),
        Err(SchemaError::Unsupported { .. })
    ));
    assert!(matches!(
        encode_batch(Schema::V1, 0, std::slice::from_ref(&spilled)),
        Err(SchemaError::Unsupported { .. })
    ));
    assert!(encode_batch(Schema::V2, 0, &[spilled]).is_ok());
}

#[test]
fn the_highest_common_version_wins_and_none_means_drain() {
    assert_eq!(agree(&[1, 2], &[1]), Agreed::Schema(Schema::V1));
    assert_eq!(agree(&[1], &[1, 2]), Agreed::Schema(Schema::V1));
    assert_eq!(agree(&[1, 2], &[1, 2, 3]), Agreed::Schema(Schema::V2));
    assert_eq!(
        agree(HANDOFF_VERSIONS, &[1, 2, 3]),
        Agreed::Schema(Schema::V3)
    );
    assert_eq!(
        agree(&[1, 2], &[99]),
        Agreed::Drain {
            ours: vec![1, 2],
            theirs: vec![99]
        }
    );
}

#[test]
fn a_batch_in_another_schema_or_with_other_fds_is_refused() {
    let all = samples();
    let v2 = encode_batch(Schema::V2, 1, &[all[0].1.clone()]).unwrap();
    assert!(matches!(
        decode_batch(Schema::V1, &v2),
        Err(SchemaError::WrongSchema { .. })
    ));
    let Message::ConnBatch(mut batch) = v2 else {
        panic!("schema 2 is a ConnBatch")
    };
    batch.fds = 1;
    assert!(matches!(
        decode_batch(Schema::V2, &Message::ConnBatch(batch.clone())),
        Err(SchemaError::FdCount { .. })
    ));
    batch.schema = 99;
    assert!(matches!(
        decode_batch(Schema::V2, &Message::ConnBatch(batch.clone())),
        Err(SchemaError::WrongSchema { .. })
    ));
    // Even if a peer claimed to agree on a schema this build does not know.
    assert!(matches!(
        decode_batch(Schema(99), &Message::ConnBatch(batch)),
        Err(SchemaError::UnknownSchema(Schema(99)))
    ));
    assert!(matches!(
        decode_batch(Schema::V2, &Message::ConnAck(baton_ipc::ConnAck { seq: 1 })),
        Err(SchemaError::NotABatch(_))
    ));
}

#[test]
fn garbage_and_hostile_lengths_are_errors() {
    let garbage = Message::ConnBatchV1(ConnBatchV1 {
        fds: 0,
        body: vec![5, 0xfd, 0, 0, 0, 0, 0, 0, 0x10],
    });
    assert!(matches!(
        decode_batch(Schema::V1, &garbage),
        Err(SchemaError::Decode { .. })
    ));
}

/// Endpoint health of every form: every health, ejected or not.
fn health_samples() -> Vec<EndpointState> {
    vec![
        EndpointState {
            cluster: "orders".into(),
            address: "10.0.0.5:9000".parse().unwrap(),
            health: EndpointHealth::Unhealthy,
            ejected_for: None,
            ejections: 0,
            consecutive_errors: 1,
        },
        EndpointState {
            cluster: "orders".into(),
            address: "[2001:db8::1]:8080".parse().unwrap(),
            health: EndpointHealth::Healthy,
            ejected_for: Some(Duration::from_millis(29_250)),
            ejections: 2,
            consecutive_errors: 0,
        },
        EndpointState {
            cluster: "users".into(),
            address: "127.0.0.1:80".parse().unwrap(),
            health: EndpointHealth::Unknown,
            ejected_for: None,
            ejections: 0,
            consecutive_errors: 0,
        },
    ]
}

#[test]
fn endpoint_health_is_written_as_its_golden_fixture() {
    for &version in HANDOFF_VERSIONS {
        let schema = Schema(version);
        if !schema.carries_health() {
            assert!(matches!(
                encode_health(schema, &health_samples()),
                Err(SchemaError::NoHealth(_))
            ));
            continue;
        }
        let messages = encode_health(schema, &health_samples()).unwrap();
        assert_eq!(messages.len(), 1, "three endpoints fit one datagram");
        let ours = messages[0].encode_body().unwrap();
        let golden = fixture(schema, "health", &ours);
        assert_eq!(
            hex(&ours),
            hex(&golden),
            "endpoint health in schema {schema} changed: a new encoding needs a new schema version"
        );
        let back = Message::decode_frame(messages[0].kind() as u8, 0, &golden).unwrap();
        assert_eq!(
            decode_health(schema, &back).unwrap(),
            (health_samples(), true)
        );
    }
}

/// Rate-limit buckets of every form: unkeyed, keyed by an IPv4 and an
/// IPv6 address, keyed by a header's value.
fn bucket_samples() -> Vec<BucketState> {
    vec![
        BucketState {
            place: "http:web:0".into(),
            key: None,
            tokens: 7,
            since_fill: Duration::from_millis(250),
        },
        BucketState {
            place: "http:web:route2:1".into(),
            key: Some(BucketKey::Ip("192.0.2.9".parse().unwrap())),
            tokens: 0,
            since_fill: Duration::from_secs(3),
        },
        BucketState {
            place: "rpc:bolt:0".into(),
            key: Some(BucketKey::Ip("2001:db8::9".parse().unwrap())),
            tokens: 1,
            since_fill: Duration::ZERO,
        },
        BucketState {
            place: "http:web:0".into(),
            key: Some(BucketKey::Value(b"alice".to_vec())),
            tokens: 99,
            since_fill: Duration::from_nanos(1),
        },
    ]
}

#[test]
fn buckets_are_written_as_their_golden_fixture() {
    for &version in HANDOFF_VERSIONS {
        let schema = Schema(version);
        if !schema.carries_buckets() {
            assert!(matches!(
                encode_buckets(schema, &bucket_samples()),
                Err(SchemaError::NoHealth(_))
            ));
            continue;
        }
        let messages = encode_buckets(schema, &bucket_samples()).unwrap();
        assert_eq!(messages.len(), 1, "four buckets fit one datagram");
        let ours = messages[0].encode_body().unwrap();
        let golden = fixture(schema, "buckets", &ours);
        assert_eq!(
            hex(&ours),
            hex(&golden),
            "buckets in schema {schema} changed: a new encoding needs a new schema version"
        );
        let back = Message::decode_frame(messages[0].kind() as u8, 0, &golden).unwrap();
        assert_eq!(
            decode_buckets(schema, &back).unwrap(),
            (bucket_samples(), true)
        );
        // Read as endpoint health in a schema without buckets: refused.
        assert!(decode_buckets(Schema::V3, &back).is_err());
    }
}

#[test]
fn shared_data_is_written_as_its_golden_fixture_and_oversized_entries_stay() {
    let entries = vec![
        SharedEntry {
            key: b"visits".to_vec(),
            value: b"42".to_vec(),
            cas: 7,
        },
        SharedEntry {
            key: Vec::new(),
            value: vec![0, 255],
            cas: 1,
        },
    ];
    for &version in HANDOFF_VERSIONS {
        let schema = Schema(version);
        if !schema.carries_buckets() {
            assert!(encode_shared(schema, &entries).is_err());
            continue;
        }
        let (messages, left_out) = encode_shared(schema, &entries).unwrap();
        assert_eq!((messages.len(), left_out), (1, 0));
        let ours = messages[0].encode_body().unwrap();
        let golden = fixture(schema, "shared", &ours);
        assert_eq!(
            hex(&ours),
            hex(&golden),
            "shared data in schema {schema} changed: a new encoding needs a new schema version"
        );
        let back = Message::decode_frame(messages[0].kind() as u8, 0, &golden).unwrap();
        assert_eq!(
            decode_shared(schema, &back).unwrap(),
            (entries.clone(), true)
        );
    }
    // One entry larger than a datagram stays behind; the rest go.
    let mut with_huge = entries.clone();
    with_huge.push(SharedEntry {
        key: b"huge".to_vec(),
        value: vec![1; baton_ipc::MAX_BODY],
        cas: 1,
    });
    let (messages, left_out) = encode_shared(Schema::V4, &with_huge).unwrap();
    assert_eq!(left_out, 1);
    let (got, last) = decode_shared(Schema::V4, &messages[0]).unwrap();
    assert_eq!((got, last), (entries, true));
}

/// Many endpoints go in as many datagrams as they need, in order, the
/// last one marked; none at all is still one (empty, last) batch.
#[test]
fn endpoint_health_is_cut_under_the_datagram_bound() {
    let many: Vec<EndpointState> = (0..20_000u16)
        .map(|i| EndpointState {
            cluster: format!("cluster-{}", i / 100),
            address: SocketAddr::from(([10, 0, (i >> 8) as u8, i as u8], 9000 + i)),
            ..health_samples()[1].clone()
        })
        .collect();
    let messages = encode_health(Schema::V3, &many).unwrap();
    assert!(messages.len() > 1);
    let mut back = Vec::new();
    for (i, message) in messages.iter().enumerate() {
        let body = message.encode_body().unwrap();
        assert!(body.len() <= baton_ipc::MAX_BODY);
        let (endpoints, last) = decode_health(Schema::V3, message).unwrap();
        assert_eq!(last, i + 1 == messages.len());
        back.extend(endpoints);
    }
    assert_eq!(back, many);
    let none = encode_health(Schema::V3, &[]).unwrap();
    assert_eq!(none.len(), 1);
    assert_eq!(decode_health(Schema::V3, &none[0]).unwrap(), (vec![], true));
}

#[test]
fn endpoint_health_in_another_schema_or_message_is_refused() {
    let message = encode_health(Schema::V3, &health_samples())
        .unwrap()
        .remove(0);
    assert!(matches!(
        decode_health(Schema::V2, &message),
        Err(SchemaError::WrongSchema { .. })
    ));
    assert!(matches!(
        decode_health(Schema::V3, &Message::ConnAck(baton_ipc::ConnAck { seq: 1 })),
        Err(SchemaError::NotHealth(_))
    ));
    let garbage = Message::HealthBatch(baton_ipc::HealthBatch {
        schema: 3,
        last: true,
        body: vec![0xfd, 0, 0, 0, 0, 0, 0, 0, 0x10],
    });
    assert!(matches!(
        decode_health(Schema::V3, &garbage),
        Err(SchemaError::Decode { .. })
    ));
}

/// UDP flows of every form: IPv4 and IPv6, with and without an original
/// destination and a reply socket.
fn flow_samples() -> Vec<FlowState> {
    vec![
        FlowState {
            listener: "dns".into(),
            client: "10.1.2.3:53124".parse().unwrap(),
            destination: None,
            cluster: "resolvers".into(),
            endpoint: "10.0.0.53:53".parse().unwrap(),
            reply_socket: false,
            idle_for: Duration::from_millis(1_250),
            started_unix_ms: 1_765_000_000_000,
            received: 4_096,
            sent: 65_000,
            moves: 1,
        },
        FlowState {
            listener: "outbound-udp".into(),
            client: "[fd00::2]:40000".parse().unwrap(),
            destination: Some("[fd00::9]:5353".parse().unwrap()),
            cluster: "passthrough".into(),
            endpoint: "[fd00::9]:5353".parse().unwrap(),
            reply_socket: true,
            idle_for: Duration::ZERO,
            started_unix_ms: 0,
            received: 0,
            sent: 0,
            moves: 3,
        },
    ]
}

#[test]
fn udp_flows_are_written_as_their_golden_fixture_from_schema_6() {
    for &version in HANDOFF_VERSIONS {
        let schema = Schema(version);
        if !schema.carries_flows() {
            assert!(matches!(
                encode_flows(schema, &flow_samples()),
                Err(SchemaError::NoHealth(_))
            ));
            continue;
        }
        let messages = encode_flows(schema, &flow_samples()).unwrap();
        assert_eq!(messages.len(), 1, "two flows fit one datagram");
        let (message, range) = &messages[0];
        assert_eq!(range, &(0..2));
        assert_eq!(message.fd_count(), 3, "one socket, then two");
        let ours = message.encode_body().unwrap();
        let golden = fixture(schema, "flows", &ours);
        assert_eq!(
            hex(&ours),
            hex(&golden),
            "udp flows in schema {schema} changed: a new encoding needs a new schema version"
        );
        let back = Message::decode_frame(message.kind() as u8, 3, &golden).unwrap();
        assert_eq!(decode_flows(schema, &back).unwrap(), (flow_samples(), true));
    }
}

/// Flows are cut under both datagram bounds, bytes and fds, each batch
/// with the fds of exactly its flows; no flow is still one (empty, last)
/// batch.
#[test]
fn udp_flows_are_cut_under_the_fd_bound() {
    let many: Vec<FlowState> = (0..1_000u16)
        .map(|i| FlowState {
            client: SocketAddr::from(([10, 1, (i >> 8) as u8, i as u8], 1000 + i)),
            reply_socket: i % 3 == 0,
            ..flow_samples()[0].clone()
        })
        .collect();
    let messages = encode_flows(Schema::V6, &many).unwrap();
    assert!(messages.len() > 1);
    let mut back = Vec::new();
    let mut next = 0;
    for (i, (message, range)) in messages.iter().enumerate() {
        assert_eq!(range.start, next, "runs follow each other");
        next = range.end;
        assert!(message.fd_count() <= baton_ipc::MAX_FDS);
        let described: usize = many[range.clone()].iter().map(FlowState::fd_count).sum();
        assert_eq!(message.fd_count(), described);
        let (flows, last) = decode_flows(Schema::V6, message).unwrap();
        assert_eq!(last, i + 1 == messages.len());
        back.extend(flows);
    }
    assert_eq!(back, many);
    let none = encode_flows(Schema::V6, &[]).unwrap();
    assert_eq!(none.len(), 1);
    assert_eq!(none[0].1, 0..0);
    assert_eq!(
        decode_flows(Schema::V6, &none[0].0).unwrap(),
        (vec![], true)
    );
}

#[test]
fn udp_flows_with_other_fds_or_in_another_schema_are_refused() {
    let (message, _) = encode_flows(Schema::V6, &flow_samples()).unwrap().remove(0);
    assert!(matches!(
        decode_flows(Schema::V5, &message),
        Err(SchemaError::WrongSchema { .. })
    ));
    let Message::FlowBatch(mut batch) = message else {
        panic!("a flow batch");
    };
    batch.fds = 2;
    assert!(matches!(
        decode_flows(Schema::V6, &Message::FlowBatch(batch.clone())),
        Err(SchemaError::FdCount {
            described: 3,
            carried: 2
        })
    ));
    batch.schema = 5;
    assert!(matches!(
        decode_flows(Schema::V5, &Message::FlowBatch(batch)),
        Err(SchemaError::NoHealth(_))
    ));
    assert!(matches!(
        decode_flows(Schema::V6, &Message::ConnAck(baton_ipc::ConnAck { seq: 1 })),
        Err(SchemaError::NotFlows(_))
    ));
}
