//! Talking to the supervisor's admin endpoint (`/metrics`, `/status`,
//! `/ready`, the admin API).

use std::io::{Read, Write};
use std::net::SocketAddr;

use std::time::Duration;

use crate::{Baton, PATIENCE};

/// A plain HTTP response.
#[derive(Debug)]
pub struct Response {
    pub code: u16,
    pub head: String,
    pub body: String,
}

impl Baton {
    /// The admin endpoint's bound address, as the status showed it when
    /// [`Baton::start`] returned. Panics when the config has no `[admin]`.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
            .unwrap_or_else(|| panic!("no admin endpoint: the config has no [admin] address"))
    }
}

/// One request, `Connection: close`, blocking.
pub fn http(admin: SocketAddr, method: &str, path: &str) -> Response {
    http_with(admin, method, path, &[])
}

/// One request with extra `headers`, `Connection: close`, blocking.
pub fn http_with(
    admin: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Response {
    let mut stream = std::net::TcpStream::connect(admin).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let extra: String = headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {admin}\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of head in {raw:?}"));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status code in {head:?}"));
    Response {
        code,
        head: head.to_string(),
        body: body.to_string(),
    }
}

/// The value of the sample `name{labels}` (exactly as printed) in a
/// `/metrics` scrape, or `None`.
pub fn sample(scrape: &str, series: &str) -> Option<f64> {
    scrape
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            l.strip_prefix(series)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
}

/// `/metrics` now (from async code: the request blocks a pool thread,
/// not the runtime).
pub async fn metrics(baton: &Baton) -> String {
    let admin = baton.admin_addr();
    tokio::task::spawn_blocking(move || http(admin, "GET", "/metrics").body)
        .await
        .unwrap()
}

/// The sum of `family`'s integer samples whose labels include `label`.
pub fn sum(scrape: &str, family: &str, label: &str) -> u64 {
    scrape
        .lines()
        .filter(|l| l.starts_with(&format!("{family}{{")) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// The value of `family`'s sample for upstream `endpoint` (0 when
/// absent).
pub fn endpoint_sample(scrape: &str, family: &str, endpoint: SocketAddr) -> u64 {
    sum(scrape, family, &format!("endpoint=\"{endpoint}\""))
}

/// Polls `/metrics` until `endpoint`'s health gauge
/// (`baton_upstream_healthy`) is `want` (1 healthy, 0 not); panics after
/// [`PATIENCE`]. For 0, the endpoint must also have been judged
/// (`baton_upstream_health_checked` 1): a series not exported yet reads
/// as 0 too.
pub async fn wait_health(baton: &Baton, endpoint: SocketAddr, want: u64) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let reached = |scrape: &str| {
        endpoint_sample(scrape, "baton_upstream_healthy", endpoint) == want
            && (want != 0
                || endpoint_sample(scrape, "baton_upstream_health_checked", endpoint) == 1)
    };
    while !reached(&metrics(baton).await) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{endpoint} never became {}",
            if want == 1 { "healthy" } else { "unhealthy" }
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
