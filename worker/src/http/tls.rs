//! TLS termination (rustls): certificates chosen by SNI, ALPN `h2` and
//! `http/1.1`. Each generation reads the certificate files anew, so an
//! upgrade (or SIGHUP) after renewing them serves the new ones.

use std::fmt;
use std::sync::Arc;

use baton_config::Tls;
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::http::error::SetupError;

/// A certificate and the chain's first (end-entity) certificate, kept to
/// match SNI names against.
struct Entry {
    leaf: CertificateDer<'static>,
    key: Arc<CertifiedKey>,
}

/// Picks the first certificate valid for the client's SNI name, else the
/// first one.
struct SniResolver {
    entries: Vec<Entry>,
}

impl fmt::Debug for SniResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SniResolver({} certificates)", self.entries.len())
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let chosen = hello
            .server_name()
            .and_then(|name| ServerName::try_from(name.to_string()).ok())
            .and_then(|name| {
                self.entries.iter().find(|e| {
                    webpki::EndEntityCert::try_from(&e.leaf)
                        .is_ok_and(|cert| cert.verify_is_valid_for_subject_name(&name).is_ok())
                })
            })
            .or_else(|| self.entries.first())?;
        Some(Arc::clone(&chosen.key))
    }
}

/// The server config of a TLS listener.
pub(crate) fn server_config(tls: &Tls) -> Result<Arc<ServerConfig>, SetupError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut entries = Vec::new();
    for (cert_path, key_path) in &tls.certificates {
        let chain = read_certs(cert_path)?;
        let key = read_key(key_path)?;
        let signing = provider
            .key_provider
            .load_private_key(key)
            .map_err(|source| SetupError::Key {
                path: key_path.clone(),
                source,
            })?;
        let Some(leaf) = chain.first().cloned() else {
            return Err(SetupError::NoCert {
                path: cert_path.clone(),
            });
        };
        entries.push(Entry {
            leaf,
            key: Arc::new(CertifiedKey::new(chain, signing)),
        });
    }
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SniResolver { entries }));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

pub(crate) fn read_certs(
    path: &std::path::Path,
) -> Result<Vec<CertificateDer<'static>>, SetupError> {
    let failed = |source| SetupError::CertFile {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(failed)?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut std::io::BufReader::new(file))
        .collect::<Result<_, _>>()
        .map_err(failed)?;
    if certs.is_empty() {
        return Err(SetupError::NoCert {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

fn read_key(path: &std::path::Path) -> Result<PrivateKeyDer<'static>, SetupError> {
    let failed = |source| SetupError::KeyFile {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(failed)?;
    rustls_pemfile::private_key(&mut std::io::BufReader::new(file))
        .map_err(failed)?
        .ok_or_else(|| SetupError::NoKey {
            path: path.to_path_buf(),
        })
}
