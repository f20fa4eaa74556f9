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
//! | `headers` | HTTP | `request_set`, `request_append`, `response_set`, `response_append` (tables name → value), `request_remove`, `response_remove` (lists of names); values may hold placeholders ([`Template`]) |
//! | `rpc_fault` | RPC | `service`, `method` (optional), `error` (`unavailable` by default; `timeout`, `no_route`, `overloaded`, `bad_request`, `internal`), `percentage` (of the matching requests, 100 by default) |
//! | `local_rate_limit` | HTTP | a token bucket: `max_tokens`, `tokens_per_fill` (1 by default), `fill_interval` (`"1s"`); `key` (optional): `{ header = "x-user" }` or `{ source_ip = true }`, a bucket per value |
//! | `connection_limit` | L4 (any listener: on accept) | `max_per_source`: connections open at once from one client IP |
//! | `rbac` | HTTP | `action` (`allow`: only requests matching a rule pass; `deny`: those are refused), `rules = [{ source = ["cidr", …], path_prefix = "/x", methods = ["GET", …], header = { name = "…", value = "…" } }]` (a rule matches when all the fields it gives do); refused: 403 |
//! | `fault` | HTTP | `abort = { status, percentage }`, `delay = { duration, percentage }` (percentage 100 by default; a delayed request may then be aborted), `header_control = true`: a request's `x-baton-fault-abort: <status>` and `x-baton-fault-delay: <ms>` ask for them |
//! | `cors` | HTTP | `allow_origins` (exact origins, or `"*"`), `allow_methods`, `allow_headers`, `expose_headers` (lists), `max_age` (`"1h"`), `allow_credentials` (false by default) |
//! | `rpc_rate_limit` | RPC | the same bucket for the requests of `service` (and `method`; both optional: without them, every request) |
//! | `compression` | HTTP | `algorithms` (the server's preference, default `["zstd", "br", "gzip"]`), `content_types` (media types, default Envoy's list: [`DEFAULT_CONTENT_TYPES`]), `min_content_length` (bytes, default 30), `levels` (`{ gzip = 1..9, br = 0..11, zstd = 1..22 }`, defaults 6, 3, 3 as Envoy's) |
//! | `mirror` | HTTP | `cluster` (required: the shadow cluster, one of `[[clusters]]`), `percentage` (of the requests, 100 by default), `disable_shadow_host_suffix_append` (false by default: the copy's `Host`/`:authority` gets `-shadow`), `max_body_bytes` (1 MiB by default: a body past it is not copied) |
//! | `wasm` | HTTP | `file` (a proxy-wasm module), `config` (the plugin's configuration, a string), `root_id` (optional), `fuel` (optional: the CPU budget of one request, in wasm instructions); also written `{ wasm = "file.wasm", config = "…" }` |
//!
//! A setting the filter does not know, a missing one, a filter on a
//! listener whose protocol cannot run it, or an unknown name is a config
//! error at the entry's line and column (checked in `raw_filter`). The
//! worker builds its chains from these (`worker/src/filter/config.rs`).

use std::fmt;
use std::net::IpAddr;
use std::num::{NonZeroU32, NonZeroU64};
use std::str::FromStr;
use std::time::Duration;

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
        /// Of the matching requests, the share answered (0 to 100).
        percentage: u8,
    },
    /// HTTP: delays and aborts requests (by percentage, or as a request's
    /// headers ask when `header_control`).
    Fault {
        abort: Option<FaultAbort>,
        delay: Option<FaultDelay>,
        header_control: bool,
    },
    /// HTTP: answers CORS preflights and adds CORS headers to responses
    /// for allowed origins.
    Cors(CorsPolicy),
    /// HTTP: compresses responses in an encoding the request accepts.
    Compression(Compression),
    /// HTTP: a proxy-wasm plugin (ABI 0.2.1), run per request.
    Wasm(WasmPlugin),
    /// HTTP: a filter compiled into the worker binary (one built with
    /// its own filters, see the worker's `examples/`), found by the name it
    /// registered; the worker refuses a name it does not have.
    Compiled { filter: String, config: String },
    /// HTTP: copies requests to a shadow cluster, its answers ignored
    /// (Envoy's `request_mirror_policies`).
    Mirror(Mirror),
    /// HTTP: a token bucket per listener (or route), or per `key`; a
    /// request finding it empty is answered 429.
    LocalRateLimit { bucket: TokenBucket, key: RateKey },
    /// L4: refuses a connection from a client IP that has this many open.
    ConnectionLimit { max_per_source: NonZeroU32 },
    /// HTTP: allows or denies requests by rules; refused: 403.
    Rbac {
        action: RangePolicy,
        rules: Vec<RbacRule>,
    },
    /// RPC: edits of the headers of requests (Bolt's header map, Dubbo's
    /// attachments) and of responses (Bolt), for `service` (and
    /// `method`) or every request. Only `Set` and `Remove` edits.
    RpcHeaders {
        service: Option<String>,
        method: Option<String>,
        request: Vec<HeaderEdit>,
        response: Vec<HeaderEdit>,
    },
    /// RPC: a token bucket for the requests of `service` (and `method`);
    /// a request finding it empty gets the protocol's `overloaded` error.
    RpcRateLimit {
        service: Option<String>,
        method: Option<String>,
        bucket: TokenBucket,
    },
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

/// A `mirror` filter's settings (Envoy's request mirror policy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    /// The shadow cluster's name (checked: one of the config's clusters,
    /// and one an HTTP listener may use).
    pub cluster: String,
    /// Of the requests, the share copied (0 to 100).
    pub percentage: u8,
    /// `-shadow` is appended to the copy's host (before any port), as
    /// Envoy does unless `disable_shadow_host_suffix_append`.
    pub host_suffix: bool,
    /// A request body longer than this is not copied: the copy is
    /// abandoned (the request itself goes on).
    pub max_body_bytes: u64,
}

impl Mirror {
    /// The longest body copied by default. Why: a copy is held whole until
    /// the request's body has passed, so each request being mirrored may
    /// hold this much; 1 MiB covers API requests without letting uploads
    /// pin memory.
    pub const DEFAULT_MAX_BODY_BYTES: u64 = 1024 * 1024;
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
            Filter::LocalRateLimit { .. } => "local_rate_limit",
            Filter::RpcRateLimit { .. } => "rpc_rate_limit",
            Filter::RpcHeaders { .. } => "rpc_headers",
            Filter::ConnectionLimit { .. } => "connection_limit",
            Filter::Rbac { .. } => "rbac",
            Filter::Fault { .. } => "fault",
            Filter::Cors(_) => "cors",
            Filter::Compression(_) => "compression",
            Filter::Wasm(_) => "wasm",
            Filter::Compiled { .. } => "compiled",
            Filter::Mirror(_) => "mirror",
        }
    }

    pub fn layer(&self) -> Layer {
        match self {
            Filter::SourceRanges { .. }
            | Filter::ByteLimit { .. }
            | Filter::ConnectionLimit { .. } => Layer::Network,
            Filter::Headers { .. }
            | Filter::LocalRateLimit { .. }
            | Filter::Rbac { .. }
            | Filter::Fault { .. }
            | Filter::Cors(_)
            | Filter::Compression(_)
            | Filter::Wasm(_)
            | Filter::Compiled { .. }
            | Filter::Mirror(_) => Layer::Http,
            Filter::RpcFault { .. } | Filter::RpcRateLimit { .. } | Filter::RpcHeaders { .. } => {
                Layer::Rpc
            }
        }
    }
}

/// Every filter name, as an error message lists them.
pub const NAMES: [&str; 15] = [
    "source_ranges",
    "byte_limit",
    "headers",
    "rpc_fault",
    "local_rate_limit",
    "rpc_rate_limit",
    "rpc_headers",
    "connection_limit",
    "rbac",
    "fault",
    "cors",
    "compression",
    "wasm",
    "compiled",
    "mirror",
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

/// A token bucket's settings (Envoy's local rate limit): it holds at
/// most `max_tokens`, starts full, and gains `tokens_per_fill` every
/// `fill_interval`; each request takes one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenBucket {
    pub max_tokens: NonZeroU64,
    pub tokens_per_fill: NonZeroU64,
    /// Never zero.
    pub fill_interval: Duration,
}

/// What a `local_rate_limit` keeps a bucket per.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RateKey {
    /// One bucket for the listener (or route).
    None,
    /// A bucket per value of this header (lowercase); requests without it
    /// share one more.
    Header(String),
    /// A bucket per client IP address.
    SourceIp,
}

/// One `rbac` rule: it matches a request when every field it gives
/// does (at least one is given).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RbacRule {
    /// The client's address is in one of these (empty: any).
    pub source: Vec<Cidr>,
    /// The path starts with this.
    pub path_prefix: Option<String>,
    /// The method is one of these, uppercase (empty: any).
    pub methods: Vec<String>,
    /// This header (lowercase name) has exactly this value.
    pub header: Option<(String, String)>,
}

/// A `fault` filter's abort: the status, for this share of requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultAbort {
    /// 200 to 599.
    pub status: u16,
    /// 0 to 100.
    pub percentage: u8,
}

/// A `fault` filter's delay: how long, for this share of requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultDelay {
    pub duration: Duration,
    /// 0 to 100.
    pub percentage: u8,
}

/// A `cors` filter's policy (Envoy's CORS policy).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CorsPolicy {
    /// Origins exactly as browsers send them (`https://a.example:8443`),
    /// or `*` for any.
    pub allow_origins: Vec<String>,
    /// Uppercase methods (empty: the header is left out, and browsers
    /// allow the safelisted ones).
    pub allow_methods: Vec<String>,
    /// Lowercase header names (empty: left out).
    pub allow_headers: Vec<String>,
    /// Lowercase header names (empty: left out).
    pub expose_headers: Vec<String>,
    /// How long a browser may cache a preflight's answer.
    pub max_age: Option<Duration>,
    pub allow_credentials: bool,
}

/// A header value with placeholders, as Envoy writes them: `%NAME%`,
/// expanded per request. Known: `%DOWNSTREAM_REMOTE_ADDRESS%` (the
/// client's `ip:port`), `%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%`,
/// `%REQ(name)%` (the request's first value of header `name`, empty when
/// it has none; on the response side, the request's), `%PROTOCOL%`
/// (`HTTP/1.1`, `HTTP/2`...). `%%` is a literal `%`. Parsed once, when
/// the config is read: a value with an unknown or unclosed placeholder is
/// a config error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pieces: Vec<Piece>,
}

/// A piece of a [`Template`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Text(String),
    RemoteAddress,
    RemoteAddressWithoutPort,
    /// A request header, by its lowercase name.
    Req(String),
    Protocol,
}

impl Template {
    pub fn pieces(&self) -> &[Piece] {
        &self.pieces
    }

    /// The value, when it has no placeholder.
    pub fn literal(&self) -> Option<&str> {
        match self.pieces.as_slice() {
            [] => Some(""),
            [Piece::Text(text)] => Some(text),
            _ => None,
        }
    }
}

impl FromStr for Template {
    type Err = String;

    fn from_str(text: &str) -> Result<Template, String> {
        let mut pieces = Vec::new();
        let mut plain = String::new();
        let mut rest = text;
        while let Some(at) = rest.find('%') {
            plain.push_str(&rest[..at]);
            let after = &rest[at + 1..];
            let Some(end) = after.find('%') else {
                return Err(format!(
                    "unclosed placeholder at {:?} (write %% for a %)",
                    &rest[at..]
                ));
            };
            let name = &after[..end];
            rest = &after[end + 1..];
            let piece = match name {
                "" => {
                    plain.push('%');
                    continue;
                }
                "DOWNSTREAM_REMOTE_ADDRESS" => Piece::RemoteAddress,
                "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT" => Piece::RemoteAddressWithoutPort,
                "PROTOCOL" => Piece::Protocol,
                other => match other.strip_prefix("REQ(").and_then(|n| n.strip_suffix(')')) {
                    Some(header) if is_header_name(header) => {
                        Piece::Req(header.to_ascii_lowercase())
                    }
                    _ => {
                        return Err(format!(
                            "unknown placeholder %{other}% (known: %DOWNSTREAM_REMOTE_ADDRESS%, \
                             %DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%, %REQ(header)%, %PROTOCOL%)"
                        ));
                    }
                },
            };
            if !plain.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut plain)));
            }
            pieces.push(piece);
        }
        plain.push_str(rest);
        if !plain.is_empty() {
            pieces.push(Piece::Text(plain));
        }
        Ok(Template { pieces })
    }
}

/// A `compression` filter's settings (Envoy's compressor filter).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compression {
    /// The encodings it may use, the server's preference first (it breaks
    /// ties between encodings the client accepts equally).
    pub algorithms: Vec<Algorithm>,
    /// The media types it compresses (lowercase, no parameters).
    pub content_types: Vec<String>,
    /// A response whose `content-length` is below this is sent as it is.
    pub min_content_length: u64,
    pub gzip_level: u32,
    pub brotli_level: u32,
    pub zstd_level: i32,
}

/// Envoy's compressor filter's default `content_type` list.
pub const DEFAULT_CONTENT_TYPES: [&str; 8] = [
    "application/javascript",
    "application/json",
    "application/xhtml+xml",
    "image/svg+xml",
    "text/css",
    "text/html",
    "text/plain",
    "text/xml",
];

impl Default for Compression {
    /// Envoy's defaults: 30 bytes, gzip level 6 (zlib's default), brotli
    /// quality 3, zstd level 3 (zstd's default).
    fn default() -> Compression {
        Compression {
            algorithms: vec![Algorithm::Zstd, Algorithm::Brotli, Algorithm::Gzip],
            content_types: DEFAULT_CONTENT_TYPES
                .iter()
                .map(|t| t.to_string())
                .collect(),
            min_content_length: 30,
            gzip_level: 6,
            brotli_level: 3,
            zstd_level: 3,
        }
    }
}

/// A content coding the `compression` filter speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Gzip,
    Brotli,
    Zstd,
}

impl Algorithm {
    /// Its name in `accept-encoding` and `content-encoding`.
    pub fn token(self) -> &'static str {
        match self {
            Algorithm::Gzip => "gzip",
            Algorithm::Brotli => "br",
            Algorithm::Zstd => "zstd",
        }
    }

    /// The levels it takes.
    pub fn levels(self) -> std::ops::RangeInclusive<i64> {
        match self {
            Algorithm::Gzip => 1..=9,
            Algorithm::Brotli => 0..=11,
            Algorithm::Zstd => 1..=22,
        }
    }
}

impl FromStr for Algorithm {
    type Err = String;

    fn from_str(text: &str) -> Result<Algorithm, String> {
        [Algorithm::Gzip, Algorithm::Brotli, Algorithm::Zstd]
            .into_iter()
            .find(|a| a.token() == text)
            .ok_or_else(|| format!("{text:?} is not a compression algorithm (gzip, br, zstd)"))
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
    /// Whether it is a range of IPv4 addresses.
    pub fn is_ipv4(&self) -> bool {
        self.addr.is_ipv4()
    }

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
    fn templates_parse_placeholders_once() {
        let t: Template =
            "ip=%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%; 100%% %REQ(X-User)%%PROTOCOL%"
                .parse()
                .unwrap();
        assert_eq!(
            t.pieces(),
            [
                Piece::Text("ip=".into()),
                Piece::RemoteAddressWithoutPort,
                Piece::Text("; 100% ".into()),
                Piece::Req("x-user".into()),
                Piece::Protocol,
            ]
        );
        assert_eq!(t.literal(), None);
        let plain: Template = "50%% off".parse().unwrap();
        assert_eq!(plain.literal(), Some("50% off"));
        assert_eq!("".parse::<Template>().unwrap().literal(), Some(""));
        assert_eq!(
            "%DOWNSTREAM_REMOTE_ADDRESS%"
                .parse::<Template>()
                .unwrap()
                .pieces(),
            [Piece::RemoteAddress]
        );
        for bad in ["%NOPE%", "100%", "%REQ(a b)%", "%REQ()%", "%REQ(x%"] {
            assert!(bad.parse::<Template>().is_err(), "{bad}");
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
