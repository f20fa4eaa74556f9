//! Component tests of [`Channel`] over real SEQPACKET socketpairs: every
//! message kind, real sockets passed and used on the far side, batches past
//! the kernel's per-datagram fd limit, end of file, the `Hello` handshake,
//! and adopting an inherited fd in a child process.
//!
//! The malformed-datagram cases, which also count open fds, live in
//! `tests/errors.rs`: fd counts are process-wide, so they need a test
//! binary of their own (see there).
// Test code: helpers outside `#[test]` functions too; a panic is a failed
// test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::process::{Command, Stdio};
use std::time::Duration;

use baton_ipc::fd::{self, AdoptError};
use baton_ipc::{
    Accepting, Activate, Channel, ConfigPart, ConnAck, ConnBatch, ConnBatchV1, Drain, Drained,
    Forward, Generation, HELLO_TIMEOUT, HandoffAborted, HandoffDone, HandoffFailed, HandoffFrom,
    HandoffProgress, HandoffStage, HandoffTo, Hello, IpcError, Kind, ListenerBatch, MAX_BODY,
    MAX_FDS, Message, MetricFamily, MetricKind, MetricSample, Metrics, PROTOCOL_VERSIONS, Ready,
    Refuse, Role, TakeoverEnded,
};
use command_fds::{CommandFdExt, FdMapping};
use rustix::io::{FdFlags, fcntl_getfd};

/// Bound on blocking TCP reads in these tests, so that a broken pass fails
/// the test instead of hanging it. Everything read is already in flight,
/// so this only ever expires on a bug.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

fn is_cloexec(fd: impl AsFd) -> bool {
    fcntl_getfd(fd).unwrap().contains(FdFlags::CLOEXEC)
}

fn loopback_listener() -> TcpListener {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap()
}

/// The socket's inode: equal for two fds exactly when they are the same
/// socket.
fn inode(fd: impl AsFd) -> u64 {
    rustix::fs::fstat(fd).unwrap().st_ino
}

// === Every kind ===

/// One sample of every message kind, in kind order. The `ListenerBatch`
/// names three fds, so it is sent with three real sockets.
fn samples() -> Vec<Message> {
    vec![
        Hello {
            versions: vec![1, 2, 7],
            role: Role::Supervisor,
            pid: 4242,
        }
        .into(),
        Refuse {
            reason: "listener \"api\": bind 0.0.0.0:80: permission denied (é, ✗)".into(),
        }
        .into(),
        ConfigPart {
            generation: Generation(9),
            source: "/etc/baton/baton.toml".into(),
            chunk: (0..=255u8).cycle().take(3000).collect(),
            last: false,
        }
        .into(),
        ListenerBatch {
            names: vec!["http".into(), "https".into(), "admin".into()],
            last: true,
        }
        .into(),
        Ready {
            pid: 31337,
            listeners: 3,
        }
        .into(),
        Drain {
            deadline: Duration::new(30, 500_000_000),
        }
        .into(),
        Drained {
            finished: u64::MAX,
            migrated: 12,
            closed: 0,
        }
        .into(),
        Activate {}.into(),
        HandoffTo {
            to: Generation(10),
            deadline: Duration::from_secs(30),
        }
        .into(),
        HandoffFrom {
            from: Generation(9),
        }
        .into(),
        HandoffFailed {
            reason: "the new generation died".into(),
            resumed: 40,
            lost: 2,
        }
        .into(),
        Accepting {}.into(),
        // Handoff schema 1's batch: its body as the worker wrote it, its
        // fds (three sockets) counted by the header.
        ConnBatchV1 {
            fds: 3,
            body: vec![7, 2, 0xab, 0xcd],
        }
        .into(),
        ConnAck { seq: 7 }.into(),
        HandoffDone {
            migrated: 2,
            lost: 0,
        }
        .into(),
        Metrics {
            families: vec![MetricFamily {
                name: "baton_listener_bytes_received_total".into(),
                help: "Bytes read from clients.".into(),
                kind: MetricKind::Counter,
                samples: vec![MetricSample {
                    labels: vec![("listener".into(), "front".into())],
                    value: u64::MAX,
                }],
            }],
        }
        .into(),
        Forward {
            conn: 1,
            response: false,
            chunk: vec![0xda, 0xbb],
            last: false,
        }
        .into(),
        HandoffProgress {
            stage: HandoffStage::Migrating,
            connections: 2062,
            draining: 0,
            requests: 400,
        }
        .into(),
        HandoffAborted {
            reason: "the new generation's end of the handoff failed".into(),
            resumed: 0,
            lost: 2062,
            requests_lost: 400,
        }
        .into(),
        TakeoverEnded {
            complete: false,
            adopted: 1000,
            in_flight_adopted: 200,
            awaiting: 200,
        }
        .into(),
        // A later schema's batch, opaque here: two sockets.
        ConnBatch {
            seq: 8,
            schema: 2,
            fds: 2,
            body: (0..=255u8).collect(),
        }
        .into(),
        baton_ipc::SetLogLevel {
            filter: "baton=debug,warn".into(),
        }
        .into(),
        // Every bucket of a series well past one byte's varint.
        baton_ipc::Histograms {
            families: vec![baton_ipc::HistogramFamily {
                name: "baton_http_request_duration_seconds".into(),
                help: "HTTP requests.".into(),
                bounds_us: vec![500, 1_000, 60_000_000],
                series: vec![baton_ipc::HistogramSeries {
                    labels: vec![
                        ("listener".into(), "web".into()),
                        ("route".into(), "none".into()),
                    ],
                    buckets: vec![1 << 40, 0, 7, u64::MAX],
                    sum_us: u64::MAX,
                }],
            }],
        }
        .into(),
        baton_ipc::HealthBatch {
            schema: 3,
            last: false,
            body: vec![0; 1000],
        }
        .into(),
        baton_ipc::FlowBatch {
            schema: 6,
            last: true,
            fds: 0,
            body: vec![0; 100],
        }
        .into(),
    ]
}

#[tokio::test]
async fn every_kind_round_trips_through_a_socketpair() {
    let samples = samples();
    let kinds: Vec<Kind> = samples.iter().map(Message::kind).collect();
    assert_eq!(kinds, Kind::ALL, "one sample per kind, in kind order");

    let sockets: Vec<UdpSocket> = (0..3)
        .map(|_| UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap())
        .collect();
    let (a, b) = Channel::pair().unwrap();
    // Both directions: the channel is symmetric.
    for (from, to) in [(&a, &b), (&b, &a)] {
        for message in &samples {
            let fds: Vec<BorrowedFd<'_>> = sockets
                .iter()
                .take(message.fd_count())
                .map(AsFd::as_fd)
                .collect();
            assert_eq!(fds.len(), message.fd_count(), "not enough sample fds");
            from.send(message, &fds).await.unwrap();

            let received = to.recv().await.unwrap();
            assert_eq!(&received.message, message);
            assert_eq!(received.fds.len(), message.fd_count());
            for (fd, original) in received.fds.into_iter().zip(&sockets) {
                assert!(is_cloexec(&fd), "received fds are close-on-exec");
                assert_eq!(inode(&fd), inode(original));
                let socket = UdpSocket::from(fd);
                assert_eq!(socket.local_addr().unwrap(), original.local_addr().unwrap());
            }
        }
    }
}

#[tokio::test]
async fn the_bounds_are_inclusive() {
    let part = |len: usize| {
        Message::from(ConfigPart {
            generation: Generation(1),
            source: "big".into(),
            chunk: vec![b'x'; len],
            last: true,
        })
    };
    // Every chunk length from 2^8 to 2^16 has the same 3-byte varint
    // prefix, so the rest of the body is a constant overhead.
    let overhead = part(MAX_BODY / 2).encode_body().unwrap().len() - MAX_BODY / 2;
    let largest = part(MAX_BODY - overhead);
    assert_eq!(largest.encode_body().unwrap().len(), MAX_BODY);

    let (a, b) = Channel::pair().unwrap();
    a.send(&largest, &[]).await.unwrap();
    assert_eq!(b.recv_msg().await.unwrap(), largest);

    let too_large = part(MAX_BODY - overhead + 1);
    let err = a.send(&too_large, &[]).await.unwrap_err();
    assert!(
        matches!(err, IpcError::TooLarge { len } if len == MAX_BODY + 1),
        "{err:?}"
    );

    // MAX_FDS fds in one message.
    let file = std::fs::File::open("/dev/null").unwrap();
    let batch = Message::from(ListenerBatch {
        names: (0..MAX_FDS).map(|i| format!("l{i}")).collect(),
        last: true,
    });
    a.send(&batch, &vec![file.as_fd(); MAX_FDS]).await.unwrap();
    let received = b.recv().await.unwrap();
    assert_eq!(received.message, batch);
    assert_eq!(received.fds.len(), MAX_FDS);
    assert!(received.fds.iter().all(|fd| inode(fd) == inode(&file)));
}

// === Real sockets ===

#[tokio::test]
async fn passed_tcp_sockets_work_on_the_other_side() {
    let (sender, receiver) = Channel::pair().unwrap();

    let listener = loopback_listener();
    let addr = listener.local_addr().unwrap();
    let mut client = TcpStream::connect(addr).unwrap();
    client.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let (accepted, _) = listener.accept().unwrap();
    client.write_all(b"written before the pass").unwrap();

    let batch = Message::from(ListenerBatch {
        names: vec!["http".into(), "conn-1".into()],
        last: true,
    });
    sender
        .send(&batch, &[listener.as_fd(), accepted.as_fd()])
        .await
        .unwrap();
    // The receiver gets its own descriptors: the sender's may go at once.
    drop((listener, accepted));

    let received = receiver.recv().await.unwrap();
    assert_eq!(received.message, batch);
    let [listener, conn]: [OwnedFd; 2] = received.fds.try_into().unwrap();
    let listener = TcpListener::from(listener);
    let mut conn = TcpStream::from(conn);
    conn.set_read_timeout(Some(IO_TIMEOUT)).unwrap();

    // The connection: bytes queued before the pass are read here, and
    // bytes written here reach the peer.
    assert_eq!(conn.peer_addr().unwrap(), client.local_addr().unwrap());
    let mut before = [0u8; 23];
    conn.read_exact(&mut before).unwrap();
    assert_eq!(&before, b"written before the pass");
    conn.write_all(b"written after the pass").unwrap();
    let mut after = [0u8; 22];
    client.read_exact(&mut after).unwrap();
    assert_eq!(&after, b"written after the pass");

    // The listener: still bound to the same port, accepts a connection
    // made after the pass.
    assert_eq!(listener.local_addr().unwrap(), addr);
    let mut late = TcpStream::connect(addr).unwrap();
    let (mut served, peer) = listener.accept().unwrap();
    assert_eq!(peer, late.local_addr().unwrap());
    served.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    late.write_all(b"ping").unwrap();
    let mut ping = [0u8; 4];
    served.read_exact(&mut ping).unwrap();
    assert_eq!(&ping, b"ping");
}

// === Batches ===

#[tokio::test]
async fn six_hundred_listeners_cross_in_batches() {
    const COUNT: usize = 600;
    let listeners: Vec<(String, TcpListener)> = (0..COUNT)
        .map(|i| (format!("listener-{i}"), loopback_listener()))
        .collect();
    let (a, b) = Channel::pair().unwrap();

    // How they travel: full datagrams of MAX_FDS, then the rest, and
    // `last` on the final one only.
    a.send_listeners(&listeners).await.unwrap();
    let mut shape = Vec::new();
    loop {
        let received = b.recv().await.unwrap();
        let Message::ListenerBatch(batch) = received.message else {
            panic!("expected a ListenerBatch, got {:?}", received.message);
        };
        assert_eq!(batch.names.len(), received.fds.len());
        shape.push((received.fds.len(), batch.last));
        if batch.last {
            break;
        }
    }
    assert_eq!(shape, [(MAX_FDS, false), (MAX_FDS, false), (94, true)]);

    // What arrives: every listener, in order, each a working socket.
    a.send_listeners(&listeners).await.unwrap();
    let received = b.recv_listeners().await.unwrap();
    assert_eq!(received.len(), COUNT);
    for ((name, fd), (sent_name, sent)) in received.into_iter().zip(&listeners) {
        assert_eq!(&name, sent_name);
        assert_eq!(inode(&fd), inode(sent));
        let listener = TcpListener::from(fd);
        assert_eq!(listener.local_addr().unwrap(), sent.local_addr().unwrap());
    }

    // Nothing is one empty, last batch.
    a.send_listeners::<TcpListener>(&[]).await.unwrap();
    assert_eq!(
        b.recv_msg().await.unwrap(),
        Message::from(ListenerBatch {
            names: vec![],
            last: true
        })
    );
}

/// Full datagrams of long names. `batches` fills a body up to MAX_BODY
/// encoded bytes, and the receiver's decode limit is counted in decoded
/// bytes (8 for each one-byte length prefix): every batch the sender makes
/// must still decode. Names of 252 bytes and more once did not.
#[tokio::test]
async fn long_listener_names_cross_in_batches() {
    let file = std::fs::File::open("/dev/null").unwrap();
    let (a, b) = Channel::pair().unwrap();
    for len in [250, 251, 252, 255, 300, 1000] {
        let listeners: Vec<(String, &std::fs::File)> = (0..2 * MAX_FDS)
            .map(|i| (format!("{i:0>len$}"), &file))
            .collect();
        // Long names take several datagrams of nearly MAX_BODY, more than
        // the socket buffer holds: send and receive at once.
        let (sent, received) = tokio::join!(a.send_listeners(&listeners), b.recv_listeners());
        sent.unwrap();
        let received = received.unwrap();
        assert_eq!(received.len(), listeners.len(), "names of {len} bytes");
        for ((name, _), (sent, _)) in received.iter().zip(&listeners) {
            assert_eq!(name, sent);
        }
    }
}

// === End of file ===

#[tokio::test]
async fn a_closed_peer_is_closed() {
    // Messages sent before the close are still delivered, then EOF.
    let (a, b) = Channel::pair().unwrap();
    b.send_msg(Ready {
        pid: 1,
        listeners: 0,
    })
    .await
    .unwrap();
    drop(b);
    assert!(matches!(a.recv_msg().await, Ok(Message::Ready(_))));
    assert!(matches!(a.recv().await, Err(IpcError::Closed)));
    assert!(matches!(a.recv().await, Err(IpcError::Closed)));
    let err = a.send_msg(Refuse { reason: "x".into() }).await.unwrap_err();
    assert!(matches!(err, IpcError::Closed), "{err:?}");

    // A peer that sends its last word and closes without reading ours
    // (a worker that refuses its config before reading its listeners):
    // the kernel flags the reset, and its last word still arrives first.
    let (a, b) = Channel::pair().unwrap();
    a.send_msg(ConfigPart {
        generation: Generation(2),
        source: "test".into(),
        chunk: b"unread".to_vec(),
        last: true,
    })
    .await
    .unwrap();
    b.send_msg(Refuse {
        reason: "config rejected".into(),
    })
    .await
    .unwrap();
    drop(b);
    match a.recv_msg().await {
        Ok(Message::Refuse(refuse)) => assert_eq!(refuse.reason, "config rejected"),
        other => panic!("expected the peer's Refuse, got {other:?}"),
    }
    assert!(matches!(a.recv().await, Err(IpcError::Closed)));

    // A recv already waiting is woken by the close.
    let (a, b) = Channel::pair().unwrap();
    let (received, ()) = tokio::join!(a.recv(), async move {
        tokio::task::yield_now().await;
        drop(b);
    });
    assert!(matches!(received, Err(IpcError::Closed)));
}

// === Handshake ===

#[tokio::test]
async fn handshake_agrees_on_the_highest_common_version() {
    let (a, b) = Channel::pair().unwrap();
    let (sup, work) = tokio::join!(
        a.handshake(Role::Supervisor, &[1, 2, 3]),
        b.handshake(Role::Worker, &[2, 3, 4]),
    );
    let (sup, work) = (sup.unwrap(), work.unwrap());
    assert_eq!((sup.version, work.version), (3, 3));
    assert_eq!(sup.peer.role, Role::Worker);
    assert_eq!(sup.peer.versions, [2, 3, 4]);
    assert_eq!(work.peer.role, Role::Supervisor);
    assert_eq!(work.peer.versions, [1, 2, 3]);
    assert_eq!(sup.peer.pid, std::process::id());

    // The channel goes on after the handshake.
    a.send_msg(Drained {
        migrated: 0,
        finished: 1,
        closed: 2,
    })
    .await
    .unwrap();
    assert!(matches!(b.recv_msg().await, Ok(Message::Drained(_))));

    // This build against itself.
    let (a, b) = Channel::pair().unwrap();
    let (sup, work) = tokio::join!(a.hello(Role::Supervisor), b.hello(Role::Worker));
    let newest = *PROTOCOL_VERSIONS.iter().max().unwrap();
    assert_eq!(sup.unwrap().version, newest);
    assert_eq!(work.unwrap().version, newest);
}

#[tokio::test]
async fn disjoint_versions_are_refused_on_both_sides() {
    let (a, b) = Channel::pair().unwrap();
    let (sup, work) = tokio::join!(
        a.handshake(Role::Supervisor, &[1]),
        b.handshake(Role::Worker, &[2, 3]),
    );
    // Both sides send Hello before reading, so each reads the other's
    // Hello first: both find no common version and both send a Refuse
    // (which the other reads next, if it reads on).
    let sup = sup.unwrap_err();
    let work = work.unwrap_err();
    assert!(
        matches!(&sup, IpcError::NoCommonVersion { ours, theirs } if ours == &[1] && theirs == &[2, 3]),
        "{sup:?}"
    );
    assert!(
        matches!(&work, IpcError::NoCommonVersion { ours, theirs } if ours == &[2, 3] && theirs == &[1]),
        "{work:?}"
    );
    for (side, theirs) in [(&a, &work), (&b, &sup)] {
        match side.recv_msg().await.unwrap() {
            Message::Refuse(refuse) => assert_eq!(refuse.reason, theirs.to_string()),
            other => panic!("expected Refuse, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn handshake_reports_a_refusal_or_a_wrong_first_message() {
    // A peer that refuses instead of saying Hello.
    let (a, b) = Channel::pair().unwrap();
    b.send_msg(Refuse {
        reason: "supervisor is shutting down".into(),
    })
    .await
    .unwrap();
    let err = a.hello(Role::Worker).await.unwrap_err();
    assert!(
        matches!(&err, IpcError::Refused(reason) if reason == "supervisor is shutting down"),
        "{err:?}"
    );

    // A peer that skips the Hello.
    let (a, b) = Channel::pair().unwrap();
    b.send_msg(Ready {
        pid: 1,
        listeners: 0,
    })
    .await
    .unwrap();
    let err = a.hello(Role::Supervisor).await.unwrap_err();
    assert!(
        matches!(
            err,
            IpcError::Unexpected {
                expected: "Hello",
                got: Kind::Ready
            }
        ),
        "{err:?}"
    );

    // A peer that closes before its Hello.
    let (a, b) = Channel::pair().unwrap();
    drop(b);
    let err = a.hello(Role::Supervisor).await.unwrap_err();
    assert!(matches!(err, IpcError::Closed), "{err:?}");
}

/// The paused clock auto-advances once the runtime has nothing to do but
/// wait: our Hello is sent at once (the socket is writable), the read of
/// the peer's blocks on a socket that never becomes readable, so the clock
/// jumps to the HELLO_TIMEOUT deadline without real waiting.
#[tokio::test(start_paused = true)]
async fn a_silent_peer_times_out() {
    let (a, _silent) = Channel::pair().unwrap();
    let virtual_start = tokio::time::Instant::now();
    // Wall-clock on purpose: it shows that no real five seconds pass.
    let real_start = std::time::Instant::now();
    let err = a.hello(Role::Supervisor).await.unwrap_err();
    assert!(
        matches!(err, IpcError::Timeout(after, _) if after == HELLO_TIMEOUT),
        "{err:?}"
    );
    assert!(virtual_start.elapsed() >= HELLO_TIMEOUT);
    assert!(real_start.elapsed() < HELLO_TIMEOUT);
}

// === Inherited fds ===

/// Set in the environment of the child process that runs
/// [`child_adopts_inherited_fd`].
const CHILD_ENV: &str = "BATON_TEST_CHILD";

/// Reads the environment and adopts fd numbers, so it only runs in a child
/// process that [`adopts_an_inherited_fd_in_a_child`] set up; anywhere
/// else it returns at once.
#[test]
fn child_adopts_inherited_fd() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    // The parent mapped: 3 = our end of a seqpacket pair, 4 = a TCP
    // listener, 5 = /dev/null. Inheriting cleared close-on-exec.
    assert!(!fdinfo_cloexec(3));

    let ours = fd::adopt_inherited("BATON_IPC_FD").unwrap();
    assert!(is_cloexec(&ours), "adopting sets close-on-exec");
    assert!(matches!(
        fd::adopt_inherited("BATON_IPC_FD"),
        Err(AdoptError::AlreadyAdopted(3))
    ));
    assert!(matches!(
        fd::adopt_inherited("BATON_TEST_SAME_FD"),
        Err(AdoptError::AlreadyAdopted(3))
    ));
    assert!(matches!(
        fd::adopt_inherited("BATON_TEST_UNSET"),
        Err(AdoptError::Missing("BATON_TEST_UNSET"))
    ));
    for var in ["BATON_TEST_ABC", "BATON_TEST_STDERR", "BATON_TEST_64"] {
        let err = fd::adopt_inherited(var).unwrap_err();
        assert!(
            matches!(&err, AdoptError::Invalid { var: v, .. } if *v == var),
            "{var}: {err:?}"
        );
    }
    assert!(
        std::fs::symlink_metadata("/proc/self/fd/60").is_err(),
        "the test needs fd 60 closed in the child"
    );
    assert!(matches!(
        fd::adopt_inherited("BATON_TEST_CLOSED"),
        Err(AdoptError::NotOpen(60))
    ));
    assert!(matches!(
        fd::adopt_inherited("BATON_TEST_TCP"),
        Err(AdoptError::NotSeqpacket { fd: 4, .. })
    ));
    assert!(matches!(
        fd::adopt_inherited("BATON_TEST_FILE"),
        Err(AdoptError::NotSeqpacket { fd: 5, .. })
    ));

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let channel = Channel::from_owned_fd(ours).unwrap();
        let negotiated = channel.hello(Role::Worker).await.unwrap();
        assert_eq!(negotiated.peer.role, Role::Supervisor);
    });
}

/// Whether fd number `n` is close-on-exec, read from `/proc/self/fdinfo`
/// (whose `flags:` line is octal and includes `O_CLOEXEC`), since nothing
/// owns that number yet and borrowing it would take `unsafe`.
fn fdinfo_cloexec(n: i32) -> bool {
    const O_CLOEXEC: u32 = 0o2_000_000;
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{n}")).unwrap();
    let flags = info
        .lines()
        .find_map(|line| line.strip_prefix("flags:"))
        .unwrap();
    u32::from_str_radix(flags.trim(), 8).unwrap() & O_CLOEXEC != 0
}

#[tokio::test]
async fn adopts_an_inherited_fd_in_a_child() {
    let (ours, theirs) = fd::seqpacket_pair().unwrap();
    let tcp = loopback_listener();
    let file = std::fs::File::open("/dev/null").unwrap();

    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "child_adopts_inherited_fd",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .env("BATON_IPC_FD", "3")
        .env("BATON_TEST_SAME_FD", " 3\n")
        .env_remove("BATON_TEST_UNSET")
        .env("BATON_TEST_ABC", "abc")
        .env("BATON_TEST_STDERR", "2")
        .env("BATON_TEST_64", "64")
        .env("BATON_TEST_CLOSED", "60")
        .env("BATON_TEST_TCP", "4")
        .env("BATON_TEST_FILE", "5")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .fd_mappings(vec![
            FdMapping {
                parent_fd: theirs,
                child_fd: 3,
            },
            FdMapping {
                parent_fd: tcp.into(),
                child_fd: 4,
            },
            FdMapping {
                parent_fd: file.into(),
                child_fd: 5,
            },
        ])
        .unwrap();
    let child = command.spawn().unwrap();
    let child_pid = child.id();
    // The command holds our copies of the child's fds; without them, the
    // child's exit closes the channel and our handshake cannot hang.
    drop(command);

    let channel = Channel::from_owned_fd(ours).unwrap();
    let handshake = channel.hello(Role::Supervisor).await;
    let output = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        output.status.success(),
        "child failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("1 passed"),
        "the child ran no test:\n{stdout}"
    );
    let negotiated = handshake.unwrap();
    assert_eq!(negotiated.peer.role, Role::Worker);
    assert_eq!(negotiated.peer.pid, child_pid);
}
