//! Component tests of the RPC proxy over real loopback sockets, with a
//! scripted upstream: what it learns from the codec (pinning, response
//! classes) and how it keeps ids apart (oneways). Written over
//! `Protocol::ALL` where they can be, so a new protocol is tested by them
//! without an edit here.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, timeout};

use super::downstream::{Context, Downstream};
use super::pool::{Pool, ReplyTo, UpRequest};
use super::{Outbound, RpcListener};
use crate::codec::{
    AnyCodec, CodecConfig, ErrorKind, Frame, FrameKind, Pinning, Protocol, RequestId,
    ResponseClass, fixtures,
};
use crate::filter::rpc::RpcChain;
use crate::lifecycle::Order;
use crate::telemetry::meters::{ByteMeter, EndpointMeter, RpcMeters};
use crate::upstream::cluster::Upstream;

/// Bound on every wait here: generous for a loaded 2-core machine. Tests
/// wait for events; none passes or fails by the clock, this only turns a
/// hang into a failure.
const PATIENCE: Duration = Duration::from_secs(20);

/// A one-endpoint cluster with `per_endpoint` pooled connections.
fn cluster(addr: SocketAddr, per_endpoint: u32) -> Arc<Upstream> {
    let text = format!(
        "[[listeners]]\nname = \"l\"\naddress = \"127.0.0.1:0\"\ncluster = \"c\"\n\
         [[clusters]]\nname = \"c\"\nendpoints = [\"{addr}\"]\n\
         connections_per_endpoint = {per_endpoint}\n"
    );
    let config = baton_config::parse("test.toml", &text).unwrap();
    Arc::new(Upstream::new(
        config.clusters[0].clone(),
        vec![Arc::new(EndpointMeter::default())],
    ))
}

/// A pool for the first cluster of the config `text`, and the order
/// that keeps it running.
fn pool_of(protocol: Protocol, text: &str) -> (Arc<Pool>, watch::Sender<Order>) {
    let config = baton_config::parse("test.toml", text).unwrap();
    let upstream = Arc::new(Upstream::new(config.clusters[0].clone(), Vec::new()));
    let (order_tx, order_rx) = watch::channel(Order::Run);
    let pool = Pool::new(
        upstream,
        protocol,
        CodecConfig::default(),
        order_rx,
        Arc::new(RpcMeters::default()),
    );
    (Arc::new(pool), order_tx)
}

/// The first fixture of `protocol` that decodes to `kind`.
fn fixture(protocol: Protocol, kind: FrameKind) -> Frame {
    fixtures::all()
        .filter(|(_, p, _)| *p == protocol)
        .find_map(|(_, _, bytes)| {
            let frame = protocol
                .codec(CodecConfig::default())
                .decode(&mut BytesMut::from(bytes))
                .ok()??;
            (frame.kind() == kind).then_some(frame)
        })
        .unwrap_or_else(|| panic!("{protocol}: no {kind:?} fixture"))
}

/// Reads one frame with `codec` from `stream`, or `None` at its end.
async fn read_frame(
    stream: &mut TcpStream,
    codec: &mut AnyCodec,
    buf: &mut BytesMut,
) -> Option<Frame> {
    loop {
        if let Some(frame) = codec.decode(buf).unwrap() {
            return Some(frame);
        }
        if timeout(PATIENCE, stream.read_buf(buf))
            .await
            .unwrap()
            .unwrap()
            == 0
        {
            return None;
        }
    }
}

/// One upstream connection as the scripted server sees it.
struct Peer {
    stream: TcpStream,
    codec: AnyCodec,
    buf: BytesMut,
}

impl Peer {
    async fn next(&mut self) -> Frame {
        read_frame(&mut self.stream, &mut self.codec, &mut self.buf)
            .await
            .expect("a frame from the proxy")
    }

    async fn send(&mut self, frame: &Frame) {
        self.stream.write_all(frame.as_bytes()).await.unwrap();
    }
}

/// A scripted upstream: its address, and each connection the proxy opens.
async fn server(protocol: Protocol) -> (SocketAddr, mpsc::UnboundedReceiver<Peer>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let peer = Peer {
                stream,
                codec: protocol.codec(CodecConfig::default()),
                buf: BytesMut::new(),
            };
            if tx.send(peer).is_err() {
                break;
            }
        }
    });
    (addr, rx)
}

async fn next_peer(peers: &mut mpsc::UnboundedReceiver<Peer>) -> Peer {
    timeout(PATIENCE, peers.recv()).await.unwrap().unwrap()
}

fn pool(
    protocol: Protocol,
    addr: SocketAddr,
    meters: &Arc<RpcMeters>,
) -> (Arc<Pool>, watch::Sender<Order>) {
    let (order_tx, order_rx) = watch::channel(Order::Run);
    let pool = Arc::new(Pool::new(
        cluster(addr, 1),
        protocol,
        CodecConfig::default(),
        order_rx,
        Arc::clone(meters),
    ));
    (pool, order_tx)
}

fn request(frame: Frame, reply: Option<ReplyTo>) -> UpRequest {
    UpRequest::new(
        frame,
        reply,
        Instant::now() + PATIENCE,
        Instant::now(),
        None,
    )
}

/// The response in an inbox, with the client's id back.
async fn answer(inbox: &mut mpsc::UnboundedReceiver<Outbound>) -> Frame {
    match timeout(PATIENCE, inbox.recv()).await.unwrap().unwrap() {
        Outbound::Frame(frame) => *frame,
        other => panic!("expected a frame, got {other:?}"),
    }
}

// === config protocols and codecs ===

/// The config's RPC protocols and the codec registry are the same set, by
/// name: a config protocol with no codec (or the reverse) fails here, not
/// in a running worker.
#[test]
fn every_rpc_config_protocol_has_its_codec_and_back() {
    for &p in baton_config::Protocol::ALL {
        let codec = RpcListener::protocol_of(p);
        assert_eq!(codec.is_some(), p.is_rpc(), "{p:?}");
        if let Some(codec) = codec {
            assert_eq!(codec.name(), p.name());
        }
    }
    for &codec in Protocol::ALL {
        assert!(
            baton_config::Protocol::ALL
                .iter()
                .any(|p| RpcListener::protocol_of(*p) == Some(codec)),
            "{codec} has no config protocol"
        );
    }
}

// === ids ===

/// A oneway goes up with an id the pool gave it, never the client's: here
/// a client's oneway carries the very id the pool gave another client's
/// request, and the server answers the oneway anyway, first. The request
/// still gets its own answer, and nothing else.
#[tokio::test]
async fn a_oneway_never_takes_a_pending_requests_id() {
    let mut tested = Vec::new();
    for &protocol in Protocol::ALL {
        let Some(oneway) =
            fixtures::all()
                .filter(|(_, p, _)| *p == protocol)
                .find_map(|(_, _, bytes)| {
                    let f = protocol
                        .codec(CodecConfig::default())
                        .decode(&mut BytesMut::from(bytes))
                        .ok()??;
                    (f.kind() == FrameKind::Oneway).then_some(f)
                })
        else {
            // No oneway fixture: nothing to collide.
            continue;
        };
        let (addr, mut peers) = server(protocol).await;
        let meters = Arc::new(RpcMeters::default());
        let (pool, _order) = pool(protocol, addr, &meters);
        let (inbox_tx, mut inbox) = mpsc::unbounded_channel();

        let mut two_way = fixture(protocol, FrameKind::Request);
        two_way.set_request_id(RequestId(77)).unwrap();
        let reply = ReplyTo {
            inbox: inbox_tx.clone(),
            client_id: RequestId(77),
        };
        pool.send(request(two_way, Some(reply)), None)
            .await
            .unwrap();
        let mut peer = next_peer(&mut peers).await;
        let upstream_request = peer.next().await;
        let pending_id = upstream_request.request_id();

        let mut oneway = oneway;
        oneway.set_request_id(pending_id).unwrap();
        pool.send(request(oneway, None), None).await.unwrap();
        let upstream_oneway = peer.next().await;
        assert_eq!(upstream_oneway.kind(), FrameKind::Oneway, "{protocol}");
        assert_ne!(
            upstream_oneway.request_id(),
            pending_id,
            "{protocol}: the oneway went up with a pending request's id"
        );

        // The oneway's answer first (a timeout error), then the request's
        // (a no-route error): distinct, so a mix-up shows.
        let server_codec = protocol.codec(CodecConfig::default());
        peer.send(&server_codec.hijack(&upstream_oneway, ErrorKind::Timeout))
            .await;
        peer.send(&server_codec.hijack(&upstream_request, ErrorKind::NoRoute))
            .await;
        let got = answer(&mut inbox).await;
        let expected = server_codec.hijack(&upstream_request, ErrorKind::NoRoute);
        assert_eq!(got.request_id(), RequestId(77), "{protocol}");
        assert_eq!(
            got.status(),
            expected.status(),
            "{protocol}: its own answer"
        );
        // Both answers were read in order: the oneway's went nowhere.
        assert!(inbox.try_recv().is_err(), "{protocol}: a second answer");
        assert_eq!(meters.responses_error.load(Ordering::Relaxed), 1);
        tested.push(protocol);
    }
    assert!(tested.contains(&Protocol::Tars), "{tested:?}");
}

// === response classes ===

/// Builds a RocketMQ response with a JSON header and this `code`.
fn rocketmq_response(code: i32, opaque: u32) -> Vec<u8> {
    let header = format!(
        "{{\"code\":{code},\"flag\":1,\"language\":\"JAVA\",\"opaque\":{},\"serializeTypeCurrentRPC\":\"JSON\",\"version\":0}}",
        opaque.cast_signed()
    );
    let mut out = Vec::new();
    out.extend_from_slice(&u32::try_from(4 + header.len()).unwrap().to_be_bytes());
    out.extend_from_slice(&u32::try_from(header.len()).unwrap().to_be_bytes());
    out.extend_from_slice(header.as_bytes());
    out
}

/// What a scripted server answers to the request it got with this id.
type Respond = Box<dyn Fn(RequestId) -> Vec<u8>>;

/// The pool counts each response by its codec's class: RocketMQ's 20
/// (PULL_RETRY_IMMEDIATELY) as an error, its 0 as a success, Dubbo's 20
/// (OK) as a success.
#[tokio::test]
async fn responses_are_counted_by_their_codecs_class() {
    let dubbo_ok = fixture(Protocol::Dubbo, FrameKind::Response);
    assert_eq!(dubbo_ok.status(), Some(20));
    let cases: [(Protocol, Respond, ResponseClass); 3] = [
        (
            Protocol::RocketMq,
            Box::new(|id: RequestId| rocketmq_response(20, u32::try_from(id.0).unwrap())),
            ResponseClass::Error,
        ),
        (
            Protocol::RocketMq,
            Box::new(|id: RequestId| rocketmq_response(0, u32::try_from(id.0).unwrap())),
            ResponseClass::Success,
        ),
        (
            Protocol::Dubbo,
            Box::new(move |id| {
                let mut ok = dubbo_ok.clone();
                ok.set_request_id(id).unwrap();
                ok.as_bytes().to_vec()
            }),
            ResponseClass::Success,
        ),
    ];
    for (protocol, respond, class) in cases {
        let (addr, mut peers) = server(protocol).await;
        let meters = Arc::new(RpcMeters::default());
        let (pool, _order) = pool(protocol, addr, &meters);
        let (inbox_tx, mut inbox) = mpsc::unbounded_channel();
        let reply = ReplyTo {
            inbox: inbox_tx,
            client_id: RequestId(5),
        };
        let two_way = fixture(protocol, FrameKind::Request);
        pool.send(request(two_way, Some(reply)), None)
            .await
            .unwrap();
        let mut peer = next_peer(&mut peers).await;
        let upstream_request = peer.next().await;
        peer.stream
            .write_all(&respond(upstream_request.request_id()))
            .await
            .unwrap();
        let got = answer(&mut inbox).await;
        assert_eq!(got.request_id(), RequestId(5));
        let (ok, error) = (
            meters.responses_ok.load(Ordering::Relaxed),
            meters.responses_error.load(Ordering::Relaxed),
        );
        let expected = match class {
            ResponseClass::Success => (1, 0),
            ResponseClass::Error => (0, 1),
        };
        assert_eq!((ok, error), expected, "{protocol} {:?}", got.status());
    }
}

/// `least_request` over RPC: a request counts on its endpoint from when
/// it is sent until it is answered.
#[tokio::test]
async fn least_request_counts_rpc_requests_until_answered() {
    let protocol = Protocol::Dubbo;
    let (a, peers_a) = server(protocol).await;
    let (b, peers_b) = server(protocol).await;
    let mut peers = [peers_a, peers_b];
    let text = format!(
        "[[clusters]]\nname = \"c\"\nlb = \"least_request\"\nendpoints = [\"{a}\", \"{b}\"]\n"
    );
    let (pool, _order) = pool_of(protocol, &text);
    let (inbox_tx, mut inbox) = mpsc::unbounded_channel();
    let send = |id: u64| {
        let mut frame = fixture(protocol, FrameKind::Request);
        frame.set_request_id(RequestId(id)).unwrap();
        let reply = ReplyTo {
            inbox: inbox_tx.clone(),
            client_id: RequestId(id),
        };
        pool.send(request(frame, Some(reply)), None)
    };

    // The first request goes to either endpoint: call it x.
    send(1).await.unwrap();
    let (x, mut peer_x) = {
        let [pa, pb] = &mut peers;
        timeout(PATIENCE, async {
            tokio::select! {
                Some(p) = pa.recv() => (0, p),
                Some(p) = pb.recv() => (1, p),
            }
        })
        .await
        .unwrap()
    };
    let first = peer_x.next().await;
    // x has one in flight: the second goes to the other.
    send(2).await.unwrap();
    let mut peer_y = next_peer(&mut peers[1 - x]).await;
    let second = peer_y.next().await;
    // x's request answered: x has none in flight, y one; the third goes
    // to x, on the connection x already has.
    let mut ok = fixture(protocol, FrameKind::Response);
    ok.set_request_id(first.request_id()).unwrap();
    peer_x.send(&ok).await;
    assert_eq!(answer(&mut inbox).await.request_id(), RequestId(1));
    send(3).await.unwrap();
    let third = peer_x.next().await;
    assert_ne!(third.request_id(), second.request_id());
    assert!(peers[x].try_recv().is_err(), "no new connection to x");
}

/// Whatever the policy (round robin here, which counts nothing itself),
/// an RPC request is work in flight in its endpoint's meter from when it
/// is sent until it is answered (`baton_upstream_in_flight`).
#[tokio::test]
async fn an_rpc_request_is_in_flight_in_its_endpoints_meter_until_answered() {
    let protocol = Protocol::Dubbo;
    let (addr, mut peers) = server(protocol).await;
    let text = format!("[[clusters]]\nname = \"c\"\nendpoints = [\"{addr}\"]\n");
    let config = baton_config::parse("test.toml", &text).unwrap();
    let meter = Arc::new(EndpointMeter::default());
    let upstream = Arc::new(Upstream::new(
        config.clusters[0].clone(),
        vec![Arc::clone(&meter)],
    ));
    let (_order_tx, order_rx) = watch::channel(Order::Run);
    let meters = Arc::new(RpcMeters::default());
    let pool = Arc::new(Pool::new(
        upstream,
        protocol,
        CodecConfig::default(),
        order_rx,
        meters,
    ));
    let (inbox_tx, mut inbox) = mpsc::unbounded_channel();
    let mut frame = fixture(protocol, FrameKind::Request);
    frame.set_request_id(RequestId(1)).unwrap();
    let reply = ReplyTo {
        inbox: inbox_tx,
        client_id: RequestId(1),
    };
    pool.send(request(frame, Some(reply)), None).await.unwrap();
    let mut peer = next_peer(&mut peers).await;
    let sent = peer.next().await;
    assert_eq!(meter.in_flight.load(Ordering::Relaxed), 1);
    let mut ok = fixture(protocol, FrameKind::Response);
    ok.set_request_id(sent.request_id()).unwrap();
    peer.send(&ok).await;
    assert_eq!(answer(&mut inbox).await.request_id(), RequestId(1));
    assert_eq!(meter.in_flight.load(Ordering::Relaxed), 0);
}

// === pinning ===

/// Serves one client connection with a [`Downstream`] of `ctx`; returns the
/// client's end.
async fn client(ctx: &Context) -> TcpStream {
    let front = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = TcpStream::connect(front.local_addr().unwrap())
        .await
        .unwrap();
    let (accepted, _) = front.accept().await.unwrap();
    let mut downstream = Downstream::new(
        accepted,
        ctx.clone(),
        PATIENCE,
        Arc::new(ByteMeter::default()),
    );
    tokio::spawn(async move {
        downstream.run_until(std::future::pending::<()>()).await;
    });
    client
}

/// Two clients of one listener, one request each, a cluster of one pooled
/// connection: a protocol that pools sends both over that connection; one
/// that pins (its servers call clients) opens one per client. Each client
/// gets its own answer either way.
#[tokio::test]
async fn clients_share_a_pool_or_get_their_own_upstream_as_the_codec_says() {
    for &protocol in Protocol::ALL {
        let (addr, mut peers) = server(protocol).await;
        let upstream = cluster(addr, 1);
        let meters = Arc::new(RpcMeters::default());
        let (_order_tx, order) = watch::channel(Order::Run);
        let listener = Arc::new(RpcListener {
            name: Arc::from("l"),
            protocol,
            codec: CodecConfig::default(),
            request_timeout: PATIENCE,
            routes: Vec::new(),
            default_cluster: baton_config::ClusterId::new(0),
            meters: Arc::clone(&meters),
            message_trace: None,
            move_pinned: true,
        });
        let pool = Arc::new(Pool::new(
            Arc::clone(&upstream),
            protocol,
            CodecConfig::default(),
            order.clone(),
            Arc::clone(&meters),
        ));
        let ctx = Context {
            listener,
            pools: vec![pool].into(),
            upstreams: vec![upstream].into(),
            order,
            filters: RpcChain::default(),
        };
        let mut clients = [client(&ctx).await, client(&ctx).await];
        let mut request = fixture(protocol, FrameKind::Request);
        for (i, c) in clients.iter_mut().enumerate() {
            request.set_request_id(RequestId(100 + i as u64)).unwrap();
            c.write_all(request.as_bytes()).await.unwrap();
        }
        // What reaches the server, on how many connections.
        let expected = match protocol.pinning() {
            Pinning::Pooled => 1,
            Pinning::PerClient => 2,
        };
        let mut connections = Vec::new();
        let mut seen = 0;
        while seen < 2 {
            if connections.len() < expected {
                connections.push(next_peer(&mut peers).await);
            }
            // Requests arrive on the newest connection, or on the one
            // pooled connection.
            let peer = connections.last_mut().unwrap();
            let up = peer.next().await;
            let server_codec = protocol.codec(CodecConfig::default());
            peer.send(&server_codec.hijack(&up, ErrorKind::Overloaded))
                .await;
            seen += 1;
        }
        for (i, c) in clients.iter_mut().enumerate() {
            let mut codec = protocol.upstream_codec(CodecConfig::default());
            let got = read_frame(c, &mut codec, &mut BytesMut::new())
                .await
                .unwrap();
            assert_eq!(got.request_id(), RequestId(100 + i as u64), "{protocol}");
        }
        assert!(
            peers.try_recv().is_err(),
            "{protocol}: more than {expected} upstream connections"
        );
        assert_eq!(connections.len(), expected, "{protocol}");
    }
}

// === requests a failed connection never sent ===

/// A Bolt request carrying `size` bytes of content (the captured request
/// with its content grown).
fn big_bolt_request(size: usize) -> Frame {
    let mut bytes = crate::codec::bolt::fixtures::BOLT_REQUEST_PROTOBUF.to_vec();
    // The v1 request head: content length at bytes 18..22.
    let content = u32::from_be_bytes(bytes[18..22].try_into().unwrap());
    let grown = content + u32::try_from(size).unwrap();
    bytes[18..22].copy_from_slice(&grown.to_be_bytes());
    bytes.resize(bytes.len() + size, b'x');
    Protocol::Bolt
        .codec(CodecConfig::default())
        .decode(&mut BytesMut::from(&bytes[..]))
        .unwrap()
        .unwrap()
}

/// Endpoint a takes requests and never reads them, so that most of what
/// the pool sends it is still queued in the proxy (past what the sockets
/// hold) when a's connection fails. Every request gets exactly one
/// answer: the ones the failed connection never wrote a byte of are sent
/// again and answered by b; the ones it wrote get the protocol's error
/// (the server may have seen them: they are not sent twice).
#[tokio::test]
async fn requests_a_failed_connection_never_sent_go_to_another_endpoint() {
    const REQUESTS: u32 = 600;
    const SIZE: usize = 64 * 1024;
    let protocol = Protocol::Bolt;
    let listener_a = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = listener_a.local_addr().unwrap();
    let (b, mut peers_b) = server(protocol).await;
    let text = format!("[[clusters]]\nname = \"c\"\nendpoints = [\"{a}\", \"{b}\"]\n");
    let (pool, _order) = pool_of(protocol, &text);
    // b answers everything, counting.
    let ok = fixture(protocol, FrameKind::Response);
    let answered_by_b = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let counted = Arc::clone(&answered_by_b);
    let ok_reply = ok.clone();
    tokio::spawn(async move {
        while let Some(mut peer) = peers_b.recv().await {
            let (ok, counted) = (ok_reply.clone(), Arc::clone(&counted));
            tokio::spawn(async move {
                while let Some(request) =
                    read_frame(&mut peer.stream, &mut peer.codec, &mut peer.buf).await
                {
                    let mut response = ok.clone();
                    response.set_request_id(request.request_id()).unwrap();
                    counted.fetch_add(1, Ordering::SeqCst);
                    peer.send(&response).await;
                }
            });
        }
    });
    let (inbox_tx, mut inbox) = mpsc::unbounded_channel();
    let request = big_bolt_request(SIZE);
    for id in 1..=REQUESTS {
        let mut frame = request.clone();
        frame.set_request_id(RequestId(u64::from(id))).unwrap();
        let reply = ReplyTo {
            inbox: inbox_tx.clone(),
            client_id: RequestId(u64::from(id)),
        };
        pool.send(
            super::pool::UpRequest::new(
                frame,
                Some(reply),
                Instant::now() + PATIENCE,
                Instant::now(),
                None,
            ),
            None,
        )
        .await
        .unwrap();
    }
    // a's connection: once its first byte is in, reset it (unread data:
    // RST) and stop listening, so nothing reaches a again.
    let (mut stream_a, _) = timeout(PATIENCE, listener_a.accept())
        .await
        .unwrap()
        .unwrap();
    drop(listener_a);
    let mut first = [0u8; 1];
    timeout(PATIENCE, stream_a.read_exact(&mut first))
        .await
        .unwrap()
        .unwrap();
    drop(stream_a);

    let mut ids = std::collections::BTreeSet::new();
    let (mut successes, mut errors) = (0u32, 0u32);
    for _ in 0..REQUESTS {
        let got = answer(&mut inbox).await;
        assert!(
            ids.insert(got.request_id()),
            "{:?} answered twice",
            got.request_id()
        );
        if got.status() == ok.status() {
            successes += 1;
        } else {
            errors += 1;
        }
    }
    assert_eq!(successes, answered_by_b.load(Ordering::SeqCst));
    assert!(errors > 0, "a was sent some of its requests: they fail");
    assert!(
        successes > REQUESTS / 2,
        "b answered its own half and what a never got ({successes})"
    );
}
