//! Control-socket framing: a 4-byte big-endian length, then that many bytes
//! of JSON. See the [module docs](super) for the protocol around it.
//!
//! The pure half ([`encode`], [`body_len`], [`decode_body`]) touches no
//! socket and no clock; [`read()`] and [`write()`] move one frame over any
//! async stream and leave timeouts to the caller, who knows why it waits;
//! [`read_with_fds`] and [`write_with_fds`] do the same on a unix socket
//! with descriptors passed alongside (SCM_RIGHTS, on the frame's bytes).

use std::os::fd::{BorrowedFd, OwnedFd};

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::UnixStream;

/// The largest body a frame may announce. A request is a few hundred
/// bytes and a status reply a few KiB even with hundreds of listeners;
/// each cluster endpoint it lists adds about 100 bytes, so 1 MiB holds
/// some ten thousand of them (past that, `status` answers with an error
/// that says so). The bound exists so that a peer's length field can never
/// make us allocate more than this.
pub const MAX_FRAME: usize = 1 << 20;

/// The length prefix: a `u32`, big-endian.
pub const HEADER_LEN: usize = 4;

/// A frame that could not be read, written or understood.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The length field (or an encoded message) is over [`MAX_FRAME`].
    #[error("a frame of {len} bytes exceeds the {MAX_FRAME}-byte bound")]
    TooLarge { len: usize },
    /// The peer closed the connection before sending a single byte.
    #[error("the peer closed the connection without sending a frame")]
    Closed,
    /// The peer closed the connection in the middle of a frame.
    #[error("the peer closed the connection after {got} of {want} bytes of a frame")]
    Truncated { got: usize, want: usize },
    /// The body is not JSON of the expected shape.
    #[error("malformed JSON: {0}")]
    Json(#[source] serde_json::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Encodes `message` as one frame (header and body).
pub fn encode<T: Serialize>(message: &T) -> Result<Vec<u8>, FrameError> {
    let mut frame = vec![0; HEADER_LEN];
    serde_json::to_writer(&mut frame, message).map_err(FrameError::Json)?;
    let len = frame.len() - HEADER_LEN;
    let header = u32::try_from(len)
        .ok()
        .filter(|_| len <= MAX_FRAME)
        .ok_or(FrameError::TooLarge { len })?;
    frame[..HEADER_LEN].copy_from_slice(&header.to_be_bytes());
    Ok(frame)
}

/// The body length a header announces, refused before anything is
/// allocated for it when it is over [`MAX_FRAME`].
pub fn body_len(header: [u8; HEADER_LEN]) -> Result<usize, FrameError> {
    // u32 → usize cannot fail on the 32- and 64-bit targets baton builds
    // for; saturating keeps it an error (over the bound) if it ever did.
    let len = usize::try_from(u32::from_be_bytes(header)).unwrap_or(usize::MAX);
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge { len });
    }
    Ok(len)
}

/// Parses a body; trailing bytes after the JSON value are an error.
pub fn decode_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, FrameError> {
    serde_json::from_slice(body).map_err(FrameError::Json)
}

/// Reads exactly one frame and parses it. Reads nothing past the frame.
pub async fn read<T, S>(stream: &mut S) -> Result<T, FrameError>
where
    T: DeserializeOwned,
    S: AsyncRead + Unpin,
{
    read_from(&mut Plain(stream)).await
}

/// [`read()`] on a unix stream socket, keeping the descriptors that came
/// with the frame's bytes (at most [`baton_ipc::fd::MAX_STREAM_FDS`] per
/// read; more are closed by the kernel).
pub async fn read_with_fds<T: DeserializeOwned>(
    stream: &UnixStream,
) -> Result<(T, Vec<OwnedFd>), FrameError> {
    let mut source = WithFds {
        stream,
        fds: Vec::new(),
    };
    let message = read_from(&mut source).await?;
    Ok((message, source.fds))
}

async fn read_from<T: DeserializeOwned>(source: &mut impl Fill) -> Result<T, FrameError> {
    let mut header = [0; HEADER_LEN];
    let got = source.fill(&mut header).await?;
    if got == 0 {
        return Err(FrameError::Closed);
    }
    if got < HEADER_LEN {
        return Err(FrameError::Truncated {
            got,
            want: HEADER_LEN,
        });
    }
    let len = body_len(header)?;
    // Allocated only now that `len` is known to be within the bound.
    let mut body = vec![0; len];
    let got = source.fill(&mut body).await?;
    if got < len {
        return Err(FrameError::Truncated {
            got: HEADER_LEN + got,
            want: HEADER_LEN + len,
        });
    }
    decode_body(&body)
}

/// Encodes `message` and writes it as one frame.
pub async fn write<T, S>(stream: &mut S, message: &T) -> Result<(), FrameError>
where
    T: Serialize,
    S: AsyncWrite + Unpin,
{
    let frame = encode(message)?;
    stream.write_all(&frame).await?;
    stream.flush().await?;
    Ok(())
}

/// [`write()`] on a unix stream socket with `fds` attached to the frame's
/// first byte (SCM_RIGHTS), so that they arrive before the frame ends.
pub async fn write_with_fds<T: Serialize>(
    stream: &mut UnixStream,
    message: &T,
    fds: &[BorrowedFd<'_>],
) -> Result<(), FrameError> {
    let frame = encode(message)?;
    let sent = loop {
        stream.writable().await?;
        match baton_ipc::fd::send_on_stream(stream, &frame, fds) {
            Ok(n) => break n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e.into()),
        }
    };
    stream.write_all(&frame[sent..]).await?;
    stream.flush().await?;
    Ok(())
}

/// Where frame bytes come from.
trait Fill {
    /// Reads until `buf` is full or the peer closes; returns how much was
    /// read (so that a short frame can be reported with its numbers).
    async fn fill(&mut self, buf: &mut [u8]) -> std::io::Result<usize>;
}

/// Any async stream: bytes only.
struct Plain<'a, S>(&'a mut S);

impl<S: AsyncRead + Unpin> Fill for Plain<'_, S> {
    async fn fill(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut got = 0;
        while got < buf.len() {
            match self.0.read(&mut buf[got..]).await? {
                0 => break,
                n => got += n,
            }
        }
        Ok(got)
    }
}

/// A unix stream socket: bytes, and the descriptors passed with them.
struct WithFds<'a> {
    stream: &'a UnixStream,
    fds: Vec<OwnedFd>,
}

impl Fill for WithFds<'_> {
    async fn fill(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut got = 0;
        while got < buf.len() {
            self.stream.readable().await?;
            match baton_ipc::fd::recv_on_stream(self.stream, &mut buf[got..], &mut self.fds) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(got)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::control::proto::{Reply, Request};

    #[test]
    fn encode_prefixes_the_json_with_its_length() {
        let frame = encode(&Request::Status).unwrap();
        let body = br#"{"request":"status"}"#;
        assert_eq!(&frame[..HEADER_LEN], &(body.len() as u32).to_be_bytes());
        assert_eq!(&frame[HEADER_LEN..], body);
    }

    #[test]
    fn a_length_over_the_bound_is_refused_before_allocation() {
        let len = MAX_FRAME + 1;
        let err = body_len((len as u32).to_be_bytes()).unwrap_err();
        assert!(matches!(err, FrameError::TooLarge { len: l } if l == len));
        assert_eq!(
            body_len((MAX_FRAME as u32).to_be_bytes()).unwrap(),
            MAX_FRAME
        );
        assert!(body_len([0xff; 4]).is_err());
    }

    #[test]
    fn encode_refuses_a_message_over_the_bound() {
        let reason = "x".repeat(MAX_FRAME);
        let err = encode(&Reply::Error { reason }).unwrap_err();
        assert!(matches!(err, FrameError::TooLarge { .. }), "{err}");
    }

    #[test]
    fn trailing_bytes_in_a_body_are_an_error() {
        assert!(decode_body::<Request>(br#"{"request":"status"}"#).is_ok());
        assert!(decode_body::<Request>(br#"{"request":"status"} x"#).is_err());
        assert!(decode_body::<Request>(br#"{"request":"reboot"}"#).is_err());
        assert!(decode_body::<Request>(b"").is_err());
    }

    #[tokio::test]
    async fn read_reports_where_a_frame_stopped() {
        let frame = encode(&Request::Stop).unwrap();
        let mut whole: &[u8] = &frame;
        assert_eq!(read::<Request, _>(&mut whole).await.unwrap(), Request::Stop);

        let mut empty: &[u8] = &[];
        let err = read::<Request, _>(&mut empty).await.unwrap_err();
        assert!(matches!(err, FrameError::Closed), "{err}");

        let mut short: &[u8] = &frame[..HEADER_LEN + 3];
        let err = read::<Request, _>(&mut short).await.unwrap_err();
        assert!(
            matches!(err, FrameError::Truncated { got, want } if got == HEADER_LEN + 3 && want == frame.len()),
            "{err}"
        );

        let mut half_header: &[u8] = &frame[..2];
        let err = read::<Request, _>(&mut half_header).await.unwrap_err();
        assert!(
            matches!(err, FrameError::Truncated { got: 2, want: 4 }),
            "{err}"
        );
    }

    #[tokio::test]
    async fn read_stops_at_the_end_of_the_frame() {
        let mut two = encode(&Request::Status).unwrap();
        two.extend(encode(&Request::Stop).unwrap());
        let mut stream: &[u8] = &two;
        assert_eq!(
            read::<Request, _>(&mut stream).await.unwrap(),
            Request::Status
        );
        assert_eq!(
            read::<Request, _>(&mut stream).await.unwrap(),
            Request::Stop
        );
    }
}
