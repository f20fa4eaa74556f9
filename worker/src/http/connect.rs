//! Connections to HTTP clusters: plain TCP, or TLS (rustls) when the
//! cluster has a `tls` table.
//!
//! TLS to an upstream verifies its certificate against the cluster's CA
//! bundle (`tls.ca`), else the system's bundle (`SSL_CERT_FILE`, else the
//! usual Debian/Fedora/Alpine paths). The name sent (SNI) and verified is
//! `tls.server_name`, else the endpoint's IP address (which the
//! certificate must then list as an IP SAN). ALPN offers `h2` to `http2`
//! clusters and `http/1.1` to `http1` ones; a server that picks another
//! protocol is refused. Each generation reads the CA files anew.
//!
//! An upstream TLS session, like a client's, cannot move to another
//! process (no kTLS here): a tunnel over one ([`UpIo::Tls`]) drains
//! instead of moving; pooled idle connections simply stay behind.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use baton_config::{UpstreamProtocol, UpstreamTls};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::http::error::{ConnectError, SetupError};
use crate::upstream::breaker::Permit;
use crate::upstream::cluster::Upstream;
use crate::upstream::lb::{EndpointIndex, TryOrder};

/// Where a system's CA bundle usually is, when `SSL_CERT_FILE` is unset.
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

/// A connection to an upstream.
#[derive(Debug)]
pub enum UpIo {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl UpIo {
    pub fn tcp(&self) -> &TcpStream {
        match self {
            UpIo::Plain(s) => s,
            UpIo::Tls(s) => s.get_ref().0,
        }
    }

    /// The socket, when nothing but TCP is on it (it can then move).
    pub fn into_plain(self) -> Result<TcpStream, UpIo> {
        match self {
            UpIo::Plain(s) => Ok(s),
            tls => Err(tls),
        }
    }

    /// An idle connection must have nothing to read: end of stream means
    /// the server closed it, bytes mean it is out of step (a response
    /// nobody asked for: reused, it would answer the next client's
    /// request). The socket is asked directly (`MSG_PEEK | MSG_DONTWAIT`):
    /// tokio's cached readiness can lag behind a FIN or bytes that have
    /// already arrived. (Over TLS, bytes may be records that carry no
    /// data, such as session tickets: the TLS read below consumes those.)
    pub fn idle_and_open(&mut self) -> bool {
        let mut peek = [0u8; 1];
        match rustix::net::recv(
            self.tcp(),
            &mut peek[..],
            rustix::net::RecvFlags::PEEK | rustix::net::RecvFlags::DONTWAIT,
        ) {
            Err(rustix::io::Errno::AGAIN) if matches!(self, UpIo::Plain(_)) => return true,
            Ok((0, _)) => return false,
            Err(e) if e != rustix::io::Errno::AGAIN => return false,
            Ok(_) if matches!(self, UpIo::Plain(_)) => return false,
            // TLS: rustls may hold plaintext already, or the bytes may be
            // records without data; its read decides.
            _ => {}
        }
        let mut probe = [0u8; 1];
        let mut buf = ReadBuf::new(&mut probe);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        matches!(Pin::new(self).poll_read(&mut cx, &mut buf), Poll::Pending)
    }
}

impl AsyncRead for UpIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            UpIo::Plain(s) => Pin::new(s).poll_read(cx, buf),
            UpIo::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for UpIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            UpIo::Plain(s) => Pin::new(s).poll_write(cx, data),
            UpIo::Tls(s) => Pin::new(s).poll_write(cx, data),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            UpIo::Plain(s) => Pin::new(s).poll_flush(cx),
            UpIo::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            UpIo::Plain(s) => Pin::new(s).poll_shutdown(cx),
            UpIo::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// A cluster's TLS client settings, compiled.
struct ClientTls {
    connector: TlsConnector,
    server_name: Option<ServerName<'static>>,
    /// The ALPN protocol the cluster must speak.
    alpn: &'static str,
}

/// An HTTP cluster: its endpoints and how to speak to them.
pub struct HttpUpstream {
    pub base: Arc<Upstream>,
    tls: Option<ClientTls>,
}

impl std::fmt::Debug for HttpUpstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpUpstream")
            .field("cluster", &self.base.cluster.name)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl HttpUpstream {
    /// Reads the cluster's CA bundle, if it has TLS.
    pub fn new(base: Arc<Upstream>) -> Result<HttpUpstream, SetupError> {
        let tls = match &base.cluster.tls {
            Some(tls) => Some(client_tls(tls, base.cluster.protocol)?),
            None => None,
        };
        Ok(HttpUpstream { base, tls })
    }

    pub fn protocol(&self) -> UpstreamProtocol {
        self.base.cluster.protocol
    }

    /// Connects to the endpoints of `order` in turn (the balancer's
    /// choice, then the others), then shakes hands over TLS if the
    /// cluster asks for it. The connect timeout bounds the handshake too.
    /// With the connection comes its unit of the cluster's
    /// `max_connections`, to keep as long as the connection.
    pub async fn connect(
        &self,
        order: TryOrder,
    ) -> Result<(UpIo, SocketAddr, EndpointIndex, Permit), ConnectError> {
        let connected = self.base.connect_order(order).await?;
        let (tcp, addr, endpoint, permit) = (
            connected.stream,
            connected.addr,
            connected.endpoint,
            connected.permit,
        );
        let _ = tcp.set_nodelay(true);
        let Some(tls) = &self.tls else {
            return Ok((UpIo::Plain(tcp), addr, endpoint, permit));
        };
        let name = tls
            .server_name
            .clone()
            .unwrap_or_else(|| ServerName::IpAddress(addr.ip().into()));
        let timeout = self.base.cluster.connect_timeout;
        let stream = match tokio::time::timeout(timeout, tls.connector.connect(name, tcp)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(source)) => return Err(ConnectError::Tls { addr, source }),
            Err(_) => return Err(ConnectError::TlsTimeout { addr }),
        };
        match stream.get_ref().1.alpn_protocol() {
            // No ALPN at all: the server speaks what it was configured to.
            None => {}
            Some(p) if p == tls.alpn.as_bytes() => {}
            Some(p) => {
                return Err(ConnectError::Alpn {
                    addr,
                    chosen: String::from_utf8_lossy(p).into_owned(),
                    wanted: tls.alpn,
                });
            }
        }
        Ok((UpIo::Tls(Box::new(stream)), addr, endpoint, permit))
    }
}

/// Reads a cluster's CA bundle, as [`HttpUpstream::new`] will.
pub(crate) fn verify(cluster: &baton_config::Cluster) -> Result<(), SetupError> {
    match &cluster.tls {
        Some(tls) => client_tls(tls, cluster.protocol).map(drop),
        None => Ok(()),
    }
}

fn client_tls(tls: &UpstreamTls, protocol: UpstreamProtocol) -> Result<ClientTls, SetupError> {
    let bundle = match &tls.ca {
        Some(path) => path.clone(),
        None => system_bundle()?,
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in super::tls::read_certs(&bundle)? {
        roots.add(cert).map_err(|source| SetupError::CaBundle {
            path: bundle.clone(),
            source,
        })?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let alpn = match protocol {
        UpstreamProtocol::Http1 => "http/1.1",
        UpstreamProtocol::Http2 => "h2",
    };
    config.alpn_protocols = vec![alpn.as_bytes().to_vec()];
    let server_name =
        match &tls.server_name {
            Some(name) => Some(ServerName::try_from(name.clone()).map_err(|source| {
                SetupError::ServerName {
                    name: name.clone(),
                    source,
                }
            })?),
            None => None,
        };
    Ok(ClientTls {
        connector: TlsConnector::from(Arc::new(config)),
        server_name,
        alpn,
    })
}

fn system_bundle() -> Result<std::path::PathBuf, SetupError> {
    if let Some(path) = std::env::var_os("SSL_CERT_FILE") {
        return Ok(path.into());
    }
    SYSTEM_BUNDLES
        .iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.is_file())
        .ok_or_else(|| SetupError::NoSystemBundle {
            tried: SYSTEM_BUNDLES.join(", "),
        })
}
