//! Malformed datagrams and impossible sends: each is a specific
//! [`IpcError`], never a panic, and no fd outlives it.
//!
//! The received side is driven by a bare SEQPACKET socket, so the test
//! writes every byte and attaches any fds it likes.
//!
//! # Why a file of its own, with one test
//!
//! The leak checks count the entries of `/proc/self/fd`, which belong to
//! the whole process. libtest runs the tests of one binary on parallel
//! threads, and a `#[tokio::test]` builds its runtime (an epoll fd, an
//! eventfd, a copy of tokio's signal socket) before its body could take
//! any lock, and drops it after; so in a shared binary, another test
//! starting or ending moves the count and the check flakes. Cargo runs test
//! binaries one at a time, so in a binary with a single test the count is
//! exact. Keep this file to one test.
// Test code: helpers outside `#[test]` functions too; a panic is a failed
// test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs::File;
use std::io::IoSlice;
use std::os::fd::{AsFd, BorrowedFd};

use baton_ipc::frame::{HEADER_LEN, Header, MAGIC};
use baton_ipc::{
    Channel, ConfigPart, Generation, Hello, IpcError, Kind, ListenerBatch, MAX_BODY, MAX_DATAGRAM,
    MAX_FDS, Message, Ready, Refuse, Role, WIRE_VERSION, fd,
};
use tokio_seqpacket::UnixSeqpacket;
use tokio_seqpacket::ancillary::AncillaryMessageWriter;

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn dev_nulls(count: usize) -> Vec<File> {
    (0..count)
        .map(|_| File::open("/dev/null").unwrap())
        .collect()
}

/// A channel whose peer is a bare socket.
fn raw_pair() -> (Channel, UnixSeqpacket) {
    let (ours, theirs) = fd::seqpacket_pair().unwrap();
    (
        Channel::from_owned_fd(ours).unwrap(),
        fd::seqpacket_from_owned(theirs).unwrap(),
    )
}

/// A datagram with a well-formed header in front of `body`.
fn datagram(kind: u8, fd_count: u16, body: &[u8]) -> Vec<u8> {
    let mut head = [0u8; HEADER_LEN];
    Header {
        kind,
        fd_count,
        body_len: body.len().try_into().unwrap(),
    }
    .encode(&mut head);
    [&head[..], body].concat()
}

/// The correct datagram of a message without fds.
fn good(message: impl Into<Message>) -> Vec<u8> {
    let message = message.into();
    datagram(message.kind() as u8, 0, &message.encode_body().unwrap())
}

fn ready() -> Ready {
    Ready {
        pid: 7,
        listeners: 0,
    }
}

/// Sends `bytes` with `fds` attached, as one datagram.
async fn send_raw(socket: &UnixSeqpacket, bytes: &[u8], fds: &[File]) {
    let mut buf = [0u8; 2048];
    let mut ancillary = AncillaryMessageWriter::new(&mut buf);
    if !fds.is_empty() {
        ancillary.add_fds(fds).unwrap();
    }
    let sent = socket
        .send_vectored_with_ancillary(&[IoSlice::new(bytes)], &mut ancillary)
        .await
        .unwrap();
    assert_eq!(sent, bytes.len());
}

/// Sends `bytes` with `fds` fresh fds from a bare peer and receives them on
/// a [`Channel`]. Checks that no fd the receiver got survives `recv`'s
/// result (the message's fds are dropped here), and that the whole
/// exchange leaves the fd table as it found it.
async fn exchange(bytes: &[u8], fds: usize) -> Result<Message, IpcError> {
    let before = open_fds();
    let result = {
        let (channel, raw) = raw_pair();
        // The sender's copies close at the end of this statement: from
        // then on the only references are in flight, in no fd table.
        send_raw(&raw, bytes, &dev_nulls(fds)).await;
        let in_flight = open_fds();
        let result = channel.recv().await.map(|received| received.message);
        assert_eq!(
            open_fds(),
            in_flight,
            "{result:?}: a received fd outlived recv"
        );
        result
    };
    assert_eq!(open_fds(), before, "{result:?}: an fd leaked");
    result
}

async fn recv_error(bytes: &[u8], fds: usize) -> IpcError {
    match exchange(bytes, fds).await {
        Ok(message) => panic!("accepted {message:?} from {bytes:02x?}"),
        Err(err) => err,
    }
}

/// A fixed-seed xorshift: reproducible garbage without a dependency.
struct Garbage(u64);

impl Garbage {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: u64) -> usize {
        (self.next() % n) as usize
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

#[tokio::test]
async fn bad_datagrams_and_sends_are_errors_and_leak_no_fd() {
    let baseline = open_fds();
    let mut garbage = Garbage(0x9e37_79b9_7f4a_7c15);

    // --- Random bytes: the header's checks, in order. -------------------
    for _ in 0..200 {
        let len = 1 + garbage.below(300);
        let mut bytes = garbage.bytes(len);
        if bytes.starts_with(&MAGIC) {
            bytes[0] = b'X';
        }
        let err = recv_error(&bytes, 0).await;
        if len < HEADER_LEN {
            assert!(
                matches!(err, IpcError::ShortDatagram { len: l } if l == len),
                "{err:?}"
            );
        } else {
            assert!(
                matches!(err, IpcError::BadMagic(m) if m == [bytes[0], bytes[1]]),
                "{err:?}"
            );
        }
    }

    // --- Random bodies behind valid headers: decoded or refused. --------
    for _ in 0..300 {
        let kind = Kind::ALL[garbage.below(Kind::ALL.len() as u64)];
        let len = garbage.below(64);
        let body = garbage.bytes(len);
        match exchange(&datagram(kind as u8, 0, &body), 0).await {
            Ok(message) => assert_eq!(message.kind(), kind),
            Err(IpcError::Decode { kind: k, .. }) => assert_eq!(k, kind),
            // A kind that carries fds, decoded from a body that names some.
            Err(IpcError::WrongFds {
                kind: k,
                received: 0,
                ..
            }) => assert_eq!(k, kind),
            Err(err) => panic!("{kind:?} body {body:02x?}: {err:?}"),
        }
    }

    // --- The header, one field at a time. --------------------------------
    let valid = good(ready());
    assert!(matches!(exchange(&valid, 0).await, Ok(Message::Ready(_))));

    let mut bytes = valid.clone();
    bytes[..2].copy_from_slice(b"HT");
    let err = recv_error(&bytes, 0).await;
    assert!(
        matches!(err, IpcError::BadMagic(m) if &m == b"HT"),
        "{err:?}"
    );

    let mut bytes = valid.clone();
    bytes[2] = WIRE_VERSION + 1;
    let err = recv_error(&bytes, 0).await;
    assert!(
        matches!(err, IpcError::WireVersion(v) if v == WIRE_VERSION + 1),
        "{err:?}"
    );

    for len in [1, HEADER_LEN - 1] {
        let err = recv_error(&valid[..len], 0).await;
        assert!(
            matches!(err, IpcError::ShortDatagram { len: l } if l == len),
            "{err:?}"
        );
    }

    let mut bytes = valid.clone();
    bytes[6] = 1;
    let err = recv_error(&bytes, 0).await;
    assert!(matches!(err, IpcError::Reserved), "{err:?}");

    // Body length: declared longer, then shorter, than what follows.
    let body_len = valid.len() - HEADER_LEN;
    let err = recv_error(&valid[..valid.len() - 1], 0).await;
    assert!(
        matches!(err, IpcError::BodyLength { declared, actual } if declared == body_len && actual == body_len - 1),
        "{err:?}"
    );
    let err = recv_error(&[&valid[..], b"!!"].concat(), 0).await;
    assert!(
        matches!(err, IpcError::BodyLength { declared, actual } if declared == body_len && actual == body_len + 2),
        "{err:?}"
    );

    let next_kind = Kind::ALL.iter().map(|k| *k as u8).max().unwrap() + 1;
    for kind in [0, next_kind, 255] {
        let err = recv_error(&datagram(kind, 0, b""), 0).await;
        assert!(
            matches!(err, IpcError::UnknownKind(k) if k == kind),
            "{err:?}"
        );
    }

    let err = recv_error(&datagram(Kind::ListenerBatch as u8, 254, b""), 0).await;
    assert!(
        matches!(err, IpcError::TooManyFds { count: 254 }),
        "{err:?}"
    );

    // --- Valid headers, undecodable bodies. ------------------------------
    let ready_body = Message::from(ready()).encode_body().unwrap();
    let cases: [(Kind, Vec<u8>, &str); 6] = [
        (Kind::Ready, vec![], "empty body"),
        (
            Kind::Ready,
            [&ready_body[..], &[0]].concat(),
            "trailing bytes",
        ),
        (Kind::Hello, vec![0xff], "truncated varint"),
        // versions [], role variant 9, pid 0
        (Kind::Hello, vec![0, 9, 0], "no such role"),
        (Kind::Refuse, vec![2, 0xff, 0xfe], "invalid UTF-8"),
        // A reason claiming 2^60 bytes: refused before allocating.
        (
            Kind::Refuse,
            vec![0xfd, 0, 0, 0, 0, 0, 0, 0, 0x10],
            "hostile length",
        ),
    ];
    for (kind, body, what) in cases {
        let err = recv_error(&datagram(kind as u8, 0, &body), 0).await;
        assert!(
            matches!(err, IpcError::Decode { kind: k, .. } if k == kind),
            "{what}: {err:?}"
        );
    }
    // With fds: they are closed too.
    let err = recv_error(&datagram(Kind::ListenerBatch as u8, 2, &[0xff]), 2).await;
    assert!(
        matches!(
            err,
            IpcError::Decode {
                kind: Kind::ListenerBatch,
                ..
            }
        ),
        "{err:?}"
    );

    // --- Too large for the receive buffer. -------------------------------
    for (len, fds) in [(MAX_DATAGRAM + 1, 0), (MAX_DATAGRAM + 1, 3), (100_000, 0)] {
        let body = vec![b'x'; len - HEADER_LEN];
        let bytes = datagram(Kind::ConfigPart as u8, fds as u16, &body);
        let err = recv_error(&bytes, fds).await;
        assert!(matches!(err, IpcError::Truncated), "{len}: {err:?}");
    }

    // --- Fds against the header and the message. -------------------------
    let batch = |names: usize| {
        Message::from(ListenerBatch {
            names: (0..names).map(|i| format!("l{i}")).collect(),
            last: true,
        })
        .encode_body()
        .unwrap()
    };
    let cases: [(Vec<u8>, usize, usize); 4] = [
        (datagram(Kind::ListenerBatch as u8, 1, &batch(1)), 3, 1),
        (datagram(Kind::ListenerBatch as u8, 2, &batch(2)), 0, 2),
        (datagram(Kind::Ready as u8, 0, &ready_body), 2, 0),
        // An empty datagram that carries fds is not end of file.
        (vec![], 1, 0),
    ];
    for (bytes, attached, declared) in cases {
        let err = recv_error(&bytes, attached).await;
        let expected = if bytes.is_empty() {
            matches!(err, IpcError::ShortDatagram { len: 0 })
        } else {
            matches!(err, IpcError::FdCountMismatch { declared: d, received: r } if d == declared && r == attached)
        };
        assert!(
            expected,
            "{declared} declared, {attached} attached: {err:?}"
        );
    }

    // The header agrees with the fds, but the message does not.
    let err = recv_error(&datagram(Kind::ListenerBatch as u8, 2, &batch(3)), 2).await;
    assert!(
        matches!(
            err,
            IpcError::WrongFds {
                kind: Kind::ListenerBatch,
                expected: 3,
                received: 2
            }
        ),
        "{err:?}"
    );
    let err = recv_error(&datagram(Kind::Ready as u8, 1, &ready_body), 1).await;
    assert!(
        matches!(
            err,
            IpcError::WrongFds {
                kind: Kind::Ready,
                expected: 0,
                received: 1
            }
        ),
        "{err:?}"
    );

    // An empty datagram reads as end of file: SEQPACKET gives recvmsg no
    // way to tell the two apart, and baton never sends one.
    assert!(matches!(exchange(&[], 0).await, Err(IpcError::Closed)));

    // --- The sending side refuses what the receiver would. ---------------
    let before = open_fds();
    {
        let (a, b) = Channel::pair().unwrap();
        let files = dev_nulls(1);
        let one: BorrowedFd<'_> = files[0].as_fd();

        let two_names = Message::from(ListenerBatch {
            names: vec!["a".into(), "b".into()],
            last: true,
        });
        let err = a.send(&two_names, &[one]).await.unwrap_err();
        assert!(
            matches!(
                err,
                IpcError::WrongFds {
                    kind: Kind::ListenerBatch,
                    expected: 2,
                    received: 1
                }
            ),
            "{err:?}"
        );
        let err = a.send(&ready().into(), &[one]).await.unwrap_err();
        assert!(
            matches!(
                err,
                IpcError::WrongFds {
                    kind: Kind::Ready,
                    expected: 0,
                    received: 1
                }
            ),
            "{err:?}"
        );

        let too_many = Message::from(ListenerBatch {
            names: (0..=MAX_FDS).map(|i| format!("l{i}")).collect(),
            last: true,
        });
        let err = a
            .send(&too_many, &vec![one; MAX_FDS + 1])
            .await
            .unwrap_err();
        assert!(
            matches!(err, IpcError::TooManyFds { count } if count == MAX_FDS + 1),
            "{err:?}"
        );

        let too_large = Message::from(ConfigPart {
            generation: Generation(1),
            source: "big".into(),
            chunk: vec![0; MAX_BODY],
            last: true,
        });
        let err = a.send(&too_large, &[]).await.unwrap_err();
        assert!(
            matches!(err, IpcError::TooLarge { len } if len > MAX_BODY),
            "{err:?}"
        );

        // A listener name no datagram can hold.
        let err = a
            .send_listeners(&[("n".repeat(MAX_BODY), &files[0])])
            .await
            .unwrap_err();
        assert!(matches!(err, IpcError::TooLarge { .. }), "{err:?}");

        // None of it went out: the next message is the first to arrive.
        let hello = Message::from(Hello {
            versions: vec![1],
            role: Role::Worker,
            pid: 1,
        });
        a.send(&hello, &[]).await.unwrap();
        assert_eq!(b.recv_msg().await.unwrap(), hello);

        drop(b);
        let err = a
            .send_msg(Refuse {
                reason: "gone".into(),
            })
            .await
            .unwrap_err();
        assert!(matches!(err, IpcError::Closed), "{err:?}");
    }
    assert_eq!(open_fds(), before, "the sending side leaked an fd");

    assert_eq!(open_fds(), baseline);
}
