//! Splitting an HTTP/1.1 byte stream into a read half and a write half for
//! the length of one exchange, so that the request body goes one way while
//! the response comes the other ([`Duplex`]).
//!
//! A plain TCP socket splits for free (`TcpStream::split`: both halves
//! borrow it); a TLS stream, whose session state both directions share,
//! through tokio's `split` (a lock, and an allocation per split — TLS
//! costs far more than that already).

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio_rustls::client::TlsStream;

use crate::http::connect::UpIo;
use crate::io::{BoxIo, Io};

/// A byte stream that splits into halves borrowed from it.
pub(crate) trait Duplex: AsyncRead + AsyncWrite + Unpin + Send {
    type Read<'a>: AsyncRead + Unpin + Send
    where
        Self: 'a;
    type Write<'a>: AsyncWrite + Unpin + Send
    where
        Self: 'a;

    fn halves(&mut self) -> (Self::Read<'_>, Self::Write<'_>);
}

impl Duplex for TcpStream {
    type Read<'a> = ReadHalf<'a>;
    type Write<'a> = WriteHalf<'a>;

    fn halves(&mut self) -> (ReadHalf<'_>, WriteHalf<'_>) {
        self.split()
    }
}

impl Duplex for BoxIo {
    type Read<'a> = tokio::io::ReadHalf<&'a mut dyn Io>;
    type Write<'a> = tokio::io::WriteHalf<&'a mut dyn Io>;

    fn halves(&mut self) -> (Self::Read<'_>, Self::Write<'_>) {
        tokio::io::split(&mut **self)
    }
}

type TlsRead<'a> = tokio::io::ReadHalf<&'a mut TlsStream<TcpStream>>;
type TlsWrite<'a> = tokio::io::WriteHalf<&'a mut TlsStream<TcpStream>>;

/// The read half of an upstream connection.
#[derive(Debug)]
pub(crate) enum UpRead<'a> {
    Plain(ReadHalf<'a>),
    Tls(TlsRead<'a>),
}

/// The write half of an upstream connection.
#[derive(Debug)]
pub(crate) enum UpWrite<'a> {
    Plain(WriteHalf<'a>),
    Tls(TlsWrite<'a>),
}

impl Duplex for UpIo {
    type Read<'a> = UpRead<'a>;
    type Write<'a> = UpWrite<'a>;

    fn halves(&mut self) -> (UpRead<'_>, UpWrite<'_>) {
        match self {
            UpIo::Plain(tcp) => {
                let (r, w) = tcp.split();
                (UpRead::Plain(r), UpWrite::Plain(w))
            }
            UpIo::Tls(tls) => {
                let (r, w) = tokio::io::split(&mut **tls);
                (UpRead::Tls(r), UpWrite::Tls(w))
            }
        }
    }
}

impl AsyncRead for UpRead<'_> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            UpRead::Plain(r) => Pin::new(r).poll_read(cx, buf),
            UpRead::Tls(r) => Pin::new(r).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for UpWrite<'_> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            UpWrite::Plain(w) => Pin::new(w).poll_write(cx, data),
            UpWrite::Tls(w) => Pin::new(w).poll_write(cx, data),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            UpWrite::Plain(w) => Pin::new(w).poll_flush(cx),
            UpWrite::Tls(w) => Pin::new(w).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            UpWrite::Plain(w) => Pin::new(w).poll_shutdown(cx),
            UpWrite::Tls(w) => Pin::new(w).poll_shutdown(cx),
        }
    }
}
