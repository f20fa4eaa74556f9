//! What can go wrong in an HTTP exchange, by side: the client's
//! ([`ClientError`]), an upstream attempt's ([`UpstreamError`]), and
//! reaching a cluster at all ([`ConnectError`]); and, before any exchange,
//! what stops a generation's HTTP state from being built ([`SetupError`]:
//! certificates, keys, CA bundles, route regexes).
//!
//! The exchange decides from the variant alone what the client still gets
//! (see `http::exchange`): a local answer (502, 504, 408, 400,
//! 431) while no response has begun, a retry, or a cut connection (HTTP/1.1)
//! or reset stream (HTTP/2) once one has.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::codec::http1::H1Error;
use crate::telemetry::meters::Overflow;
use crate::upstream::cluster;

/// The client's side of an exchange failed or broke the rules.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ClientError {
    /// The client connection failed (reset, closed mid-body...).
    #[error("client connection: {0}")]
    Io(#[from] std::io::Error),
    /// The client's HTTP/2 stream failed (reset by the client, or a
    /// `content-length` its DATA broke: h2 checks it).
    #[error("client stream: {0}")]
    Stream(#[from] h2::Error),
    /// The request body is malformed (a bad chunk): 400, and the
    /// connection closes.
    #[error("request body: {0}")]
    Malformed(H1Error),
    /// The request body stalled past `body_timeout`: 408.
    #[error("request body stalled past body_timeout")]
    Stalled,
    /// The request's trailers are over the listener's head limits
    /// (HTTP/2; HTTP/1.1 trailers are bounded by their parser): 431.
    #[error("request trailers: {0}")]
    Trailers(H1Error),
    /// The client closed its connection in the middle of the body.
    #[error("client closed the connection mid-body")]
    Truncated,
}

/// One attempt at an upstream failed, or its answer is refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UpstreamError {
    /// No connection to the cluster.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// A reused connection turned out closed before a byte of the answer:
    /// the request cannot have been processed, so it may go again.
    #[error("the upstream closed the connection before answering")]
    Stale,
    #[error("upstream connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("upstream stream: {0}")]
    Stream(#[from] h2::Error),
    /// A response head or body that breaks the framing rules
    /// (`codec::http1`): counted in `baton_http_bad_responses_total`.
    #[error("refused the upstream's response: {0}")]
    Malformed(H1Error),
    /// `101 Switching Protocols` to a request that did not ask to switch
    /// (or to an HTTP/2 stream): nothing after it could be framed.
    #[error("101 to a request that did not ask to switch protocols")]
    UnaskedSwitch,
    /// An HTTP/2 response head over the bound HTTP/1.1 response heads
    /// have (`codec::http1::RESPONSE_LIMITS`).
    #[error("response head of {fields} fields, {bytes} bytes: over the bound")]
    HeadTooLarge { fields: usize, bytes: usize },
    /// An HTTP/2 response's trailers over that bound.
    #[error("response trailers: {0}")]
    Trailers(H1Error),
    /// The upstream ended the connection in the middle of the body.
    #[error("the upstream cut the response body short")]
    Truncated,
    /// The request could not be made an HTTP/2 request (its target).
    #[error("request target not valid for HTTP/2: {0}")]
    Target(#[from] http::Error),
}

/// Reaching a cluster failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(transparent)]
    Tcp(#[from] cluster::ConnectError),
    #[error("TLS handshake with {addr}: {source}")]
    Tls {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("TLS handshake with {addr}: timed out")]
    TlsTimeout { addr: SocketAddr },
    #[error("TLS to {addr}: the server chose ALPN {chosen:?}, not {wanted:?}")]
    Alpn {
        addr: SocketAddr,
        chosen: String,
        wanted: &'static str,
    },
    #[error("h2 handshake with {addr}: {source}")]
    Handshake { addr: SocketAddr, source: h2::Error },
}

impl UpstreamError {
    /// The cluster's circuit breaker that refused the connection, if that
    /// is why there is none: the exchange answers 503 at once, no retry.
    pub(crate) fn overflow(&self) -> Option<Overflow> {
        match self {
            UpstreamError::Connect(ConnectError::Tcp(e)) => e.overflow,
            _ => None,
        }
    }
}

/// Why an exchange ended without a complete response, for the client's
/// session to act on.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ExchangeError {
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The response had begun when the upstream failed: the client's
    /// connection (HTTP/1.1) or stream (HTTP/2) is cut, so that it cannot
    /// take a partial response for a whole one.
    #[error("response cut short: {0}")]
    Cut(UpstreamError),
    /// The response had begun when its body stalled past the request
    /// timeout: cut likewise.
    #[error("response cut short: the upstream stalled")]
    Stalled,
    /// A filter answered (or changed the length of a body whose length
    /// was sent) once the response head had gone: cut likewise.
    #[error("response cut short by a filter")]
    Filtered,
}

/// Why an HTTP connection failed rather than ended: what its session
/// reports to the connection task (which logs it).
#[derive(Debug, thiserror::Error)]
pub(crate) enum SessionError {
    /// The client's socket failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A malformed or hostile request, answered with a 400 and a close.
    #[error(transparent)]
    Refused(H1Error),
    /// An exchange that could not end with a complete response.
    #[error(transparent)]
    Exchange(#[from] ExchangeError),
    /// The HTTP/2 connection failed.
    #[error(transparent)]
    H2(#[from] h2::Error),
}

/// What stops an HTTP listener's or cluster's state from being built
/// (reported by `check` and refused by a generation before it serves).
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("listener {name:?}: {source}")]
    Listener {
        name: String,
        #[source]
        source: Box<SetupError>,
    },
    #[error("cluster {name:?}: {source}")]
    Cluster {
        name: String,
        #[source]
        source: Box<SetupError>,
    },
    #[error("route: {0}")]
    Route(#[from] regex::Error),
    #[error("filter: {0}")]
    Filter(#[from] crate::filter::http::HeaderError),
    #[error("filter: {0}")]
    Plugin(#[from] crate::filter::wasm::LoadError),
    #[error("filter: {0}")]
    Compiled(#[from] crate::filter::compiled::CompiledError),
    #[error("certificate {}: {source}", path.display())]
    CertFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("certificate {}: no PEM certificate in it", path.display())]
    NoCert { path: PathBuf },
    #[error("key {}: {source}", path.display())]
    KeyFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("key {}: no PEM private key in it", path.display())]
    NoKey { path: PathBuf },
    #[error("key {}: {source}", path.display())]
    Key {
        path: PathBuf,
        source: rustls::Error,
    },
    #[error("CA bundle {}: {source}", path.display())]
    CaBundle {
        path: PathBuf,
        source: rustls::Error,
    },
    #[error("no system CA bundle (SSL_CERT_FILE unset, none of {tried}); set the cluster's tls.ca")]
    NoSystemBundle { tried: String },
    #[error("tls.server_name {name:?}: {source}")]
    ServerName {
        name: String,
        source: rustls::pki_types::InvalidDnsNameError,
    },
    #[error(transparent)]
    Tls(#[from] rustls::Error),
}

impl SetupError {
    /// This error, said of listener `name`.
    pub fn listener(name: &str) -> impl FnOnce(SetupError) -> SetupError + '_ {
        move |e| SetupError::Listener {
            name: name.to_string(),
            source: Box::new(e),
        }
    }

    /// This error, said of cluster `name`.
    pub fn cluster(name: &str) -> impl FnOnce(SetupError) -> SetupError + '_ {
        move |e| SetupError::Cluster {
            name: name.to_string(),
            source: Box::new(e),
        }
    }
}

impl From<crate::filter::config::ChainError> for SetupError {
    fn from(error: crate::filter::config::ChainError) -> SetupError {
        use crate::filter::config::ChainError;
        match error {
            ChainError::Header(e) => SetupError::Filter(e),
            ChainError::Plugin(e) => SetupError::Plugin(e),
            ChainError::Compiled(e) => SetupError::Compiled(e),
        }
    }
}
