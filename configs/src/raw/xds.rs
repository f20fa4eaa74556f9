//! `[xds]` as written, and its validation into [`crate::model::Xds`].

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use crate::ConfigError;
use std::path::PathBuf;

use crate::model::{Xds, XdsMode, XdsNode, XdsServer, XdsTls};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawXds {
    servers: Spanned<Vec<Spanned<String>>>,
    node: Spanned<RawNode>,
    #[serde(default)]
    mode: XdsMode,
    tls: Option<Spanned<RawTls>>,
    initial_fetch_timeout: Option<crate::duration::Text>,
    debounce: Option<crate::duration::Text>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    ca: Option<PathBuf>,
    server_name: Option<String>,
    certificate: Option<PathBuf>,
    private_key: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    id: Spanned<String>,
    #[serde(default)]
    cluster: String,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
}

impl RawXds {
    pub(super) fn validate(self, source_name: &str, text: &str) -> Result<Xds, ConfigError> {
        let error = |span: std::ops::Range<usize>, key: String, message: String| {
            ConfigError::at(source_name, text, Some(span.start), key, message)
        };
        if self.servers.get_ref().is_empty() {
            return Err(error(
                self.servers.span(),
                "xds.servers".into(),
                "at least one control plane (\"host:port\")".into(),
            ));
        }
        let mut servers = Vec::new();
        for (i, s) in self.servers.into_inner().into_iter().enumerate() {
            let server = parse_server(s.get_ref())
                .map_err(|m| error(s.span(), format!("xds.servers[{i}]"), m))?;
            servers.push(server);
        }
        let node = self.node.into_inner();
        if node.id.get_ref().is_empty() {
            return Err(error(
                node.id.span(),
                "xds.node.id".into(),
                "empty: control planes key what they send by the node id".into(),
            ));
        }
        let tls = match self.tls {
            None => None,
            Some(t) => {
                let span = t.span();
                let t = t.into_inner();
                let identity = match (t.certificate, t.private_key) {
                    (Some(c), Some(k)) => Some((c, k)),
                    (None, None) => None,
                    _ => {
                        return Err(error(
                            span,
                            "xds.tls".into(),
                            "certificate and private_key go together (mTLS)".into(),
                        ));
                    }
                };
                Some(XdsTls {
                    ca: t.ca,
                    server_name: t.server_name,
                    identity,
                })
            }
        };
        Ok(Xds {
            tls,
            servers,
            node: XdsNode {
                id: node.id.into_inner(),
                cluster: node.cluster,
                metadata: node.metadata,
            },
            mode: self.mode,
            initial_fetch_timeout: self
                .initial_fetch_timeout
                .map_or(Xds::INITIAL_FETCH_TIMEOUT, |t| t.0),
            debounce: self.debounce.map_or(Xds::DEBOUNCE, |t| t.0),
        })
    }
}

/// `"host:port"`, `"[v6]:port"`.
fn parse_server(s: &str) -> Result<XdsServer, String> {
    let bad = || format!("{s:?} is not \"host:port\"");
    let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.strip_suffix(']').ok_or_else(bad)?,
        None if host.contains(':') => return Err(format!("{s:?}: an IPv6 address needs brackets")),
        None => host,
    };
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(bad());
    }
    let port: u16 = port.parse().map_err(|_| bad())?;
    if port == 0 {
        return Err(format!("{s:?}: port 0 is not a server's port"));
    }
    Ok(XdsServer {
        host: host.to_string(),
        port,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::parse_server;

    #[test]
    fn servers_are_host_and_port() {
        let s = parse_server("cp.example:18000").unwrap();
        assert_eq!((s.host.as_str(), s.port), ("cp.example", 18000));
        assert_eq!(parse_server("[::1]:5").unwrap().host, "::1");
        assert!(parse_server("::1:5").is_err());
        assert!(parse_server("cp.example").is_err());
        assert!(parse_server("cp:0").is_err());
        assert!(parse_server(":80").is_err());
    }
}
