//! [`Channel`]: typed messages with fds over one SEQPACKET socket.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use tokio_seqpacket::UnixSeqpacket;
use tokio_seqpacket::ancillary::{AncillaryMessageWriter, OwnedAncillaryMessage};

use crate::frame::{HEADER_LEN, Header, MAX_BODY, MAX_DATAGRAM, MAX_FDS};
use crate::message::{Hello, Message, PROTOCOL_VERSIONS, Refuse, Role};
use crate::{HELLO_TIMEOUT, IpcError};

/// Room for one SCM_RIGHTS control message of [`MAX_FDS`] fds
/// (`CMSG_SPACE(253 * 4)` is 1032 on 64-bit Linux) plus slack. Aligned
/// because the kernel and `CMSG_*` walk it as `cmsghdr`s.
#[repr(C, align(8))]
struct AncillaryBuf([u8; 1088]);

/// A message and the fds that came with it.
#[derive(Debug)]
pub struct Received {
    pub message: Message,
    pub fds: Vec<OwnedFd>,
}

/// The outcome of [`Channel::handshake`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// The highest message-set version both peers speak.
    pub version: u16,
    pub peer: Hello,
}

/// One end of a baton ipc channel.
///
/// `send` and `recv` take `&self`: one task may read while others send,
/// and each datagram is delivered whole or not at all.
#[derive(Debug)]
pub struct Channel {
    socket: UnixSeqpacket,
}

impl Channel {
    /// Wraps an owned SEQPACKET socket (from [`crate::fd::seqpacket_pair`],
    /// [`crate::fd::adopt_inherited`] or a received fd). Needs a tokio
    /// runtime.
    pub fn from_owned_fd(fd: OwnedFd) -> std::io::Result<Channel> {
        Ok(Channel {
            socket: crate::fd::seqpacket_from_owned(fd)?,
        })
    }

    /// Two connected ends, for tests and in-process use.
    pub fn pair() -> std::io::Result<(Channel, Channel)> {
        let (a, b) = crate::fd::seqpacket_pair()?;
        Ok((Channel::from_owned_fd(a)?, Channel::from_owned_fd(b)?))
    }

    /// Gives the socket back as an owned fd (e.g. to pass it on).
    pub fn into_owned_fd(self) -> OwnedFd {
        crate::fd::seqpacket_into_owned(self.socket)
    }

    /// Sends one message with `fds`, whose number must match
    /// [`Message::fd_count`].
    pub async fn send(&self, message: &Message, fds: &[BorrowedFd<'_>]) -> Result<(), IpcError> {
        if fds.len() != message.fd_count() {
            return Err(IpcError::WrongFds {
                kind: message.kind(),
                expected: message.fd_count(),
                received: fds.len(),
            });
        }
        if fds.len() > MAX_FDS {
            return Err(IpcError::TooManyFds { count: fds.len() });
        }
        let body = message.encode_body()?;
        if body.len() > MAX_BODY {
            return Err(IpcError::TooLarge { len: body.len() });
        }
        let mut head = [0u8; HEADER_LEN];
        Header {
            kind: message.kind() as u8,
            // Both bounded just above.
            fd_count: fds.len() as u16,
            body_len: body.len() as u32,
        }
        .encode(&mut head);

        let mut anc = AncillaryBuf([0; 1088]);
        let mut writer = AncillaryMessageWriter::new(&mut anc.0);
        if !fds.is_empty() {
            writer
                .add_fds(fds.iter().copied())
                .map_err(|e| IpcError::io("add fds")(e.into()))?;
        }
        let iov = [IoSlice::new(&head), IoSlice::new(&body)];
        let sent = self
            .socket
            .send_vectored_with_ancillary(&iov, &mut writer)
            .await
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset => {
                    IpcError::Closed
                }
                _ => IpcError::io("sendmsg")(e),
            })?;
        // SEQPACKET sends all or nothing; anything else is a kernel surprise.
        if sent != HEADER_LEN + body.len() {
            return Err(IpcError::io("sendmsg")(std::io::Error::other(format!(
                "short send: {sent} of {} bytes",
                HEADER_LEN + body.len()
            ))));
        }
        Ok(())
    }

    /// Sends a message that carries no fds.
    pub async fn send_msg(&self, message: impl Into<Message>) -> Result<(), IpcError> {
        self.send(&message.into(), &[]).await
    }

    /// Receives one message and its fds. The fds are owned (and
    /// close-on-exec) before any check runs, so every error path closes
    /// them.
    pub async fn recv(&self) -> Result<Received, IpcError> {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        let mut anc = AncillaryBuf([0; 1088]);
        let mut iov = [IoSliceMut::new(&mut buf)];
        let first = self
            .socket
            .recv_vectored_with_ancillary(&mut iov, &mut anc.0)
            .await;
        // ECONNRESET: the peer closed with datagrams of ours unread. Linux
        // reports that once, ahead of the datagrams the peer sent before
        // closing (a `Refuse` with its reason, say); read on so that they
        // are not lost. After them comes end of file.
        let reset = matches!(&first, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset);
        let received = if reset {
            drop(first);
            self.socket
                .recv_vectored_with_ancillary(&mut iov, &mut anc.0)
                .await
        } else {
            first
        };
        let (info, ancillary) = received.map_err(|e| match e.kind() {
            std::io::ErrorKind::ConnectionReset => IpcError::Closed,
            _ => IpcError::io("recvmsg")(e),
        })?;
        let mut fds = Vec::new();
        for item in ancillary.into_messages() {
            if let OwnedAncillaryMessage::FileDescriptors(received) = item {
                fds.extend(received);
            }
        }
        if info.ancillary_truncated() {
            return Err(IpcError::AncillaryTruncated);
        }
        if info.truncated() {
            return Err(IpcError::Truncated);
        }
        let len = info.bytes_read();
        if len == 0 && fds.is_empty() {
            // A zero-length read on SEQPACKET is end of file: baton never
            // sends an empty datagram (the header alone is 12 bytes).
            return Err(IpcError::Closed);
        }
        let (header, body) = Header::decode(&buf[..len])?;
        if usize::from(header.fd_count) != fds.len() {
            return Err(IpcError::FdCountMismatch {
                declared: usize::from(header.fd_count),
                received: fds.len(),
            });
        }
        let message = Message::decode_frame(header.kind, fds.len(), body)?;
        if message.fd_count() != fds.len() {
            return Err(IpcError::WrongFds {
                kind: message.kind(),
                expected: message.fd_count(),
                received: fds.len(),
            });
        }
        Ok(Received { message, fds })
    }

    /// Receives a message that must carry no fds.
    pub async fn recv_msg(&self) -> Result<Message, IpcError> {
        Ok(self.recv().await?.message)
    }

    /// The `Hello` exchange that opens every channel: send ours, read
    /// theirs, agree on the highest common version, all within
    /// [`HELLO_TIMEOUT`]. `versions` is normally [`PROTOCOL_VERSIONS`].
    pub async fn handshake(&self, role: Role, versions: &[u16]) -> Result<Negotiated, IpcError> {
        let peer = self.exchange_hellos(role, versions).await?;
        match highest_common(versions, &peer.versions) {
            Some(version) => Ok(Negotiated { version, peer }),
            None => {
                let error = IpcError::NoCommonVersion {
                    ours: versions.to_vec(),
                    theirs: peer.versions,
                };
                // Best effort: the peer learns why before we close.
                let _ = self
                    .send_msg(Refuse {
                        reason: error.to_string(),
                    })
                    .await;
                Err(error)
            }
        }
    }

    /// The `Hello`s alone: send ours, return theirs (a `Refuse` in its
    /// place is an error), within [`HELLO_TIMEOUT`]. For a channel whose
    /// owner decides itself what no common version means (the handoff
    /// falls back to draining).
    pub async fn exchange_hellos(&self, role: Role, versions: &[u16]) -> Result<Hello, IpcError> {
        let ours = Hello {
            versions: versions.to_vec(),
            role,
            pid: std::process::id(),
        };
        let exchange = async {
            self.send_msg(ours).await?;
            match self.recv_msg().await? {
                Message::Hello(peer) => Ok(peer),
                Message::Refuse(refuse) => Err(IpcError::Refused(refuse.reason)),
                other => Err(IpcError::Unexpected {
                    expected: "Hello",
                    got: other.kind(),
                }),
            }
        };
        tokio::time::timeout(HELLO_TIMEOUT, exchange)
            .await
            .map_err(|_| IpcError::Timeout(HELLO_TIMEOUT, "the peer's Hello"))?
    }

    /// [`Channel::handshake`] with this build's [`PROTOCOL_VERSIONS`].
    pub async fn hello(&self, role: Role) -> Result<Negotiated, IpcError> {
        self.handshake(role, PROTOCOL_VERSIONS).await
    }
}

impl AsFd for Channel {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_async_fd().as_fd()
    }
}

fn highest_common(ours: &[u16], theirs: &[u16]) -> Option<u16> {
    ours.iter().filter(|v| theirs.contains(v)).max().copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_highest_common_version() {
        assert_eq!(highest_common(&[1, 2, 3], &[2, 3, 4]), Some(3));
        assert_eq!(highest_common(&[1], &[2]), None);
        assert_eq!(highest_common(&[], &[1]), None);
    }
}
