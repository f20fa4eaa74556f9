//! Filters as the config names them (issue 15): `filters = [...]` on a
//! listener (its L4 network filters and its HTTP or RPC stream filters,
//! in one list, in order) and on an HTTP route (run after the listener's;
//! `{ name = "…", disabled = true }` turns a listener filter off for the
//! route).
//!
//! Each entry is a table with a `name` and that filter's settings:
//!
//! | name | chain | settings |
//! |---|---|---|
//! | `source_ranges` | L4 (any listener: on accept) | `allow = ["10.0.0.0/8", …]` or `deny = [...]` |
//! | `byte_limit` | L4 (tcp listeners) | `to_upstream`, `to_client`: bytes per connection |
//! | `headers` | HTTP | `request_set`, `request_append`, `response_set`, `response_append` (tables name → value), `request_remove`, `response_remove` (lists of names) |
//! | `rpc_fault` | RPC | `service`, `method` (optional), `error` (`unavailable` by default; `timeout`, `no_route`, `overloaded`, `bad_request`, `internal`) |
//! | `wasm` | HTTP | `file` (a proxy-wasm module), `config` (the plugin's configuration, a string), `root_id` (optional), `fuel` (optional: the CPU budget of one request, in wasm instructions); also written `{ wasm = "file.wasm", config = "…" }` |
//!
//! A setting the filter does not know, a missing one, a filter on a
//! listener whose protocol cannot run it, or an unknown name is a config
//! error at the entry's line and column (checked in `raw_filter`). The
//! worker builds its chains from these (`worker/src/filter/config.rs`).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// One configured filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    /// L4: refuses connections by source address.
    SourceRanges {
        policy: RangePolicy,
        ranges: Vec<Cidr>,
    },
    /// L4: closes a connection that moves more bytes than this, per
    /// direction (`None`: unlimited that way).
    ByteLimit {
        to_upstream: Option<u64>,
        to_client: Option<u64>,
    },
    /// HTTP: header edits, on requests and on responses, in order.
    Headers {
        request: Vec<HeaderEdit>,
        response: Vec<HeaderEdit>,
    },
    /// RPC: answers requests for `service` (and `method`) with the
    /// protocol's own error.
    RpcFault {
        service: String,
        method: Option<String>,
        error: RpcError,
    },
    /// HTTP: a proxy-wasm plugin (ABI 0.2.1), run per request.
    Wasm(WasmPlugin),
}

/// A proxy-wasm plugin's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WasmPlugin {
    /// The module, as written (relative paths from the worker's working
    /// directory, as TLS files are).
    pub file: std::path::PathBuf,
    /// Handed to the plugin's `proxy_on_configure`.
    pub config: String,
    /// Which of the module's root contexts (`plugin_root_id`); empty by
    /// default.
    pub root_id: String,
    /// The most wasm instructions one request's callbacks may run.
    pub fuel: u64,
}

impl WasmPlugin {
    /// The default per-request budget: a header plugin built with the
    /// AssemblyScript SDK runs some tens of thousands of instructions a
    /// request, so this leaves two orders of magnitude of room while
    /// stopping a loop within a fraction of a second.
    pub const DEFAULT_FUEL: u64 = 20_000_000;
}

/// Which chain a filter joins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    /// The L4 network-filter chain.
    Network,
    /// The HTTP stream-filter chain.
    Http,
    /// The RPC stream-filter chain.
    Rpc,
}

impl Filter {
    /// The name the config gives it.
    pub fn name(&self) -> &'static str {
        match self {
            Filter::SourceRanges { .. } => "source_ranges",
            Filter::ByteLimit { .. } => "byte_limit",
            Filter::Headers { .. } => "headers",
            Filter::RpcFault { .. } => "rpc_fault",
            Filter::Wasm(_) => "wasm",
        }
    }

    pub fn layer(&self) -> Layer {
        match self {
            Filter::SourceRanges { .. } | Filter::ByteLimit { .. } => Layer::Network,
            Filter::Headers { .. } => Layer::Http,
            Filter::RpcFault { .. } => Layer::Rpc,
            Filter::Wasm(_) => Layer::Http,
        }
    }
}

/// Every filter name, as an error message lists them.
pub const NAMES: [&str; 5] = [
    "source_ranges",
    "byte_limit",
    "headers",
    "rpc_fault",
    "wasm",
];

/// What a `source_ranges` match means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangePolicy {
    /// Only sources in the ranges may connect.
    Allow,
    /// Sources in the ranges may not connect.
    Deny,
}

/// One header edit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderEdit {
    /// Replace every value (or add it).
    Set(String, String),
    /// Add a value after any others.
    Append(String, String),
    /// Remove every value.
    Remove(String),
}

/// The error an `rpc_fault` answers with (each protocol says it its way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RpcError {
    Timeout,
    NoRoute,
    Unavailable,
    Overloaded,
    BadRequest,
    Internal,
}

impl FromStr for RpcError {
    type Err = String;

    fn from_str(text: &str) -> Result<RpcError, String> {
        Ok(match text {
            "timeout" => RpcError::Timeout,
            "no_route" => RpcError::NoRoute,
            "unavailable" => RpcError::Unavailable,
            "overloaded" => RpcError::Overloaded,
            "bad_request" => RpcError::BadRequest,
            "internal" => RpcError::Internal,
            other => {
                return Err(format!(
                    "{other:?} is not an RPC error (timeout, no_route, unavailable, overloaded, bad_request, internal)"
                ));
            }
        })
    }
}

/// An address range: an address and how many leading bits must match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

/// A range that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an address range (like 10.0.0.0/8 or 2001:db8::/32)")]
pub struct BadCidr(String);

impl FromStr for Cidr {
    type Err = BadCidr;

    /// `addr/prefix`, or a bare address (the range of one).
    fn from_str(text: &str) -> Result<Cidr, BadCidr> {
        let bad = || BadCidr(text.into());
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr = IpAddr::from_str(addr).map_err(|_| bad())?.to_canonical();
        let width = match addr {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        let prefix = match prefix {
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= width)
                .ok_or_else(bad)?,
            None => width,
        };
        Ok(Cidr { addr, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Cidr {
    /// Whether `addr` is in the range (an IPv4-mapped IPv6 address counts
    /// as the IPv4 address it is).
    pub fn contains(&self, addr: IpAddr) -> bool {
        let keep = |bits: u32, width: u32| -> u128 {
            // The top `bits` of a `width`-bit number.
            match bits {
                0 => 0,
                b => (u128::MAX >> (128 - width)) & !((1u128 << (width - b)) - 1),
            }
        };
        match (self.addr, addr.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(a)) => {
                let mask = keep(u32::from(self.prefix), 32);
                u128::from(u32::from(net)) & mask == u128::from(u32::from(a)) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                let mask = keep(u32::from(self.prefix), 128);
                u128::from(net) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// Header fields the proxy owns per hop (framing, connection
/// management): no filter may set, append or remove them.
pub const RESERVED_HEADERS: &[&str] = &[
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "upgrade",
    "te",
];

/// Whether `name` may name an HTTP header field (RFC 9110 `token`).
pub(crate) fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Whether `value` may be a header field's value (no control characters
/// but tab: nothing that could end the field or the head).
pub(crate) fn is_header_value(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(text: &str) -> Cidr {
        text.parse().unwrap()
    }

    #[test]
    fn ranges_parse_and_match() {
        let net = cidr("10.1.0.0/16");
        assert!(net.contains("10.1.200.3".parse().unwrap()));
        assert!(!net.contains("10.2.0.1".parse().unwrap()));
        assert!(
            net.contains("::ffff:10.1.0.9".parse().unwrap()),
            "IPv4-mapped"
        );
        assert!(!net.contains("2001:db8::1".parse().unwrap()));
        assert!(cidr("0.0.0.0/0").contains("192.0.2.1".parse().unwrap()));
        assert!(cidr("192.0.2.7").contains("192.0.2.7".parse().unwrap()));
        assert!(!cidr("192.0.2.7").contains("192.0.2.8".parse().unwrap()));
        let v6 = cidr("2001:db8::/32");
        assert!(v6.contains("2001:db8:ffff::1".parse().unwrap()));
        assert!(!v6.contains("2001:db9::1".parse().unwrap()));
        assert!(cidr("::/0").contains("::1".parse().unwrap()));
        assert!(cidr("::1").contains("::1".parse().unwrap()));
        assert_eq!(cidr("10.1.2.3/8").to_string(), "10.1.2.3/8");
        for bad in ["10.0.0.0/33", "10.0.0/8", "x", "::/129", "10.0.0.0/"] {
            assert_eq!(bad.parse::<Cidr>(), Err(BadCidr(bad.into())), "{bad}");
        }
    }

    #[test]
    fn header_names_are_tokens_and_values_have_no_line_breaks() {
        assert!(is_header_name("x-request-id"));
        assert!(!is_header_name(""));
        assert!(!is_header_name("x y"));
        assert!(!is_header_name("x:y"));
        assert!(is_header_value("a value\twith tab"));
        assert!(!is_header_value("a\r\nx-injected: 1"));
    }
}
