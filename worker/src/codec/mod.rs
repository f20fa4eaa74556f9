//! Pure codecs for the multiplexed RPC protocols baton proxies at L7: SOFA
//! Bolt v1, Apache Dubbo 2, Apache RocketMQ remoting and TARS.
//!
//! No sockets, no clocks, no tasks: a codec turns bytes into [`Frame`]s and
//! frames back into bytes. The connection task that owns a socket drives it:
//!
//! ```text
//!   read(socket, &mut buf)            // BytesMut, grows as needed
//!   while let Some(frame) = codec.decode(&mut buf)? {
//!       match frame.kind() {
//!           Heartbeat(Request) => write(codec.heartbeat_reply(&frame)),   // answered here
//!           Request | Oneway   => route(frame.attributes()) → set_request_id → encode upstream
//!           Response           => look up the id → set_request_id(client id) → encode downstream
//!           …
//!       }
//!   }
//!   on timeout / upstream lost: write(codec.hijack(&request, ErrorKind::Timeout))
//! ```
//!
//! # The contract every codec keeps
//!
//! * **`decode` consumes exactly one frame or nothing.** `Ok(Some(frame))`
//!   has split that frame's bytes off the front of the buffer; `Ok(None)`
//!   leaves the buffer untouched (more bytes needed); `Err(_)` means the
//!   stream is broken and the connection must be closed — the decoder's
//!   position is no longer meaningful after an error.
//! * **Bounded.** The frame length is computed from the fixed header alone
//!   and checked against [`CodecConfig::max_frame_size`] (default 16 MiB,
//!   the same default as RocketMQ's `NettyDecoder`) *before* the body is
//!   waited for, so an absurd length is an error at once. The decoder never
//!   reserves capacity on the strength of a declared length; the buffer
//!   grows only with bytes that actually arrived. Inner lengths (header
//!   maps, hessian2 strings, JSON) are checked against the frame they sit in
//!   and attribute strings are capped, so no allocation is proportional to a
//!   number a peer wrote.
//! * **Lossless.** A frame keeps its exact wire bytes; [`Codec::encode`]
//!   writes them, so a proxied frame is byte-identical except for a
//!   rewritten request id ([`Frame::set_request_id`]).
//! * **No allocation per byte.** Decoding allocates per frame (the routing
//!   attributes of a request), never per byte or per field of a body.
//! * **Plain-data state.** Because `decode` never consumes a partial frame,
//!   a connection's complete codec state is its unconsumed buffer bytes plus
//!   [`AnyCodec::state`], a [`CodecState`] that serde serialises. A live
//!   upgrade stops reading a connection, sends both, and the new generation
//!   resumes with [`AnyCodec::from_state`] at the same frame boundary.
//!
//! # Design choices
//!
//! * **Enum dispatch, not `Box<dyn Codec>`.** [`AnyCodec`] is an enum over
//!   the registered codecs: no vtable on the per-frame path, the value is
//!   plain data (it moves into a state message as is), and the set of
//!   protocols is closed at compile time, which is what a config parser that
//!   rejects unknown names wants anyway. Compare MOSN's xprotocol, which
//!   registers `XProtocol` implementations in a runtime map; baton keeps the
//!   same shape (codec + heartbeater + hijacker per protocol) with static
//!   types.
//! * **One frame type for all protocols.** [`Frame`] carries what the proxy
//!   needs generically (kind, id, status, [`Attributes`]) and the raw bytes;
//!   protocol specifics stay inside the codec. MOSN's xprotocol exposes one
//!   Go type per protocol behind interfaces; a single struct keeps the proxy
//!   code monomorphic.
//! * **Request ids are `u64`** ([`RequestId`]) everywhere; each protocol
//!   states its width ([`Protocol::request_id_bits`]) and refuses wider ids.
//! * **Hijack always succeeds** and writes the protocol's own error response,
//!   so a client sees an error it understands (a Bolt `TIMEOUT` status, a
//!   Dubbo `SERVER_TIMEOUT`, a RocketMQ `SYSTEM_BUSY`, a Tars
//!   `TARSINVOKETIMEOUT`) instead of a dropped
//!   request.
//!
//! # Adding a protocol
//!
//! A protocol is its own module plus two registration edits; nothing in
//! the proxy (`rpc/`), the fd budget (`fds.rs`), the metrics or the frame
//! type names a protocol, because everything that differs between
//! protocols is a [`Codec`] item the module answers:
//!
//! | question | answered by |
//! |---|---|
//! | framing, routing attributes | [`Codec::decode`], [`Codec::encode`] |
//! | id width; rewriting an id | [`Codec::REQUEST_ID_BITS`]; a fixed slot, or [`Codec::splice_id`] for a variable-width field |
//! | heartbeats | [`Codec::heartbeat_reply`] |
//! | the proxy's own error answer (hijack) | [`Codec::hijack`] |
//! | which responses succeeded (`baton_rpc_responses_total{result}`) | [`Codec::classify`] |
//! | shared pools, or upstream connections per client | [`Codec::PINNING`] |
//! | a different codec on the proxy's upstream end | [`Codec::upstream`] |
//! | what survives an upgrade | [`Codec::State`], [`Codec::state`], [`Codec::from_state`] |
//!
//! The files a new protocol `myproto` touches — Tars was added this way
//! (`tars/`, and the two files of step 2):
//!
//! 1. Its own module, `codec/myproto.rs` or `codec/myproto/mod.rs`, with a
//!    type implementing [`Codec`]. Its module docs show the wire format (a
//!    header diagram), the request/response sequence, how each failure is
//!    handled, which status is a success and whether clients are pinned,
//!    like the ones here; the crate-private `wire` module has the
//!    bounds-checked reads. Beside it: `myproto/fixtures.rs` (`#[doc(hidden)]
//!    pub mod fixtures;`), byte fixtures from the protocol's own
//!    implementations (cited) and a `pub const ALL: &[(&str, &[u8])]`
//!    listing them, which the registry hands to the framework tests
//!    (`codec/tests.rs`, `rpc/tests.rs`) and the fuzz seed corpus; and
//!    `myproto/tests.rs`: unit tests (classification and pinning among
//!    them) and the proptest round trips (`testkit` has the framing checks).
//! 2. Registration, the only edits outside the module:
//!    * this file: `pub mod myproto;` below, and one line at the end of the
//!      `registry!` invocation, `MyProto = "myproto" =>
//!      myproto::MyProtoCodec,`, which creates `Protocol::MyProto`, its
//!      config name, its [`AnyCodec`] and [`ProtocolState`] variants and
//!      the dispatch;
//!    * `configs/src/model.rs`: the config's `Protocol` variant, in its
//!      `ALL` and `name()` under the same name (the config crate does not
//!      depend on the worker; `rpc::tests` fails if the two lists differ).
//!
//! Beside the code, as for any feature: a libFuzzer target
//! (`fuzz/fuzz_targets/fuzz_myproto.rs` and its `[[bin]]` in
//! `fuzz/Cargo.toml`; the stable smoke runner finds the protocol in the
//! registry by itself, and `smoke --write-corpus` writes
//! `fuzz/corpus/fuzz_myproto/`), the protocol in README.md ("Proxy RPC"
//! and the config reference), and interop tests with real peers
//! (`tests/tests/interop_myproto.rs`, `tests/interop/myproto/`, the lines
//! of `.ci/run` that install them).
//!
//! New variants go at the end of the registry: [`CodecState`] is serialised
//! by variant index, so the order is part of the handoff format.
//!
//! # HTTP/1.1 framing
//!
//! [`http1`] sits here too, outside the registry: HTTP/1.1 request and
//! response heads and body framing, sans I/O under the same rules (pure,
//! bounded, fuzzed). It is not a [`Codec`] — HTTP is not multiplexed and
//! the HTTP proxy drives it differently — but it is the same
//! layer: the bottom one, which depends on nothing else in the worker.
//! So does `proxy_protocol`: the PROXY protocol header (v1 and v2) that
//! a listener with `proxy_protocol` reads first and a cluster with it
//! writes first, parsed and built without I/O.

use std::fmt;
use std::str::FromStr;

use bytes::BytesMut;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

mod edit;
mod error;
mod frame;
pub(crate) mod hessian2;
pub(crate) mod wire;

pub mod bolt;
pub mod dubbo;
#[doc(hidden)]
pub mod fixtures;
#[doc(hidden)]
pub mod fuzzing;
pub mod http1;
pub(crate) mod proxy_protocol;
pub mod rocketmq;
pub mod tars;

pub use edit::HeaderOp;
pub use error::{CodecError, UnknownProtocol};
pub use frame::{Attributes, Direction, Frame, FrameKind, RequestId, Splice};

/// The default bound on one frame, header included: 16 MiB, RocketMQ's
/// `NettyDecoder` default and twice Dubbo's default payload limit. A frame
/// this large is already a misbehaving client for Bolt and Dubbo.
pub const DEFAULT_MAX_FRAME_SIZE: u32 = 16 * 1024 * 1024;

/// The smallest bound accepted: it must hold the largest fixed header (22
/// bytes for a Bolt request) with room for a useful frame.
pub const MIN_MAX_FRAME_SIZE: u32 = 64;

/// The largest bound accepted: RocketMQ and Dubbo lengths are Java `int`s.
pub const MAX_MAX_FRAME_SIZE: u32 = i32::MAX as u32;

/// Per-listener codec settings. Plain data: part of [`CodecState`].
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodecConfig {
    max_frame_size: u32,
}

impl Default for CodecConfig {
    fn default() -> Self {
        Self {
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
        }
    }
}

impl CodecConfig {
    /// A config with `max_frame_size` bytes per frame, header included.
    pub fn with_max_frame_size(max_frame_size: u32) -> Result<Self, CodecError> {
        let config = Self { max_frame_size };
        config.validate()?;
        Ok(config)
    }

    pub fn max_frame_size(&self) -> u32 {
        self.max_frame_size
    }

    fn validate(&self) -> Result<(), CodecError> {
        if (MIN_MAX_FRAME_SIZE..=MAX_MAX_FRAME_SIZE).contains(&self.max_frame_size) {
            Ok(())
        } else {
            Err(CodecError::InvalidConfig {
                what: "max_frame_size must be within 64 ..= 2^31 - 1 bytes",
                value: u64::from(self.max_frame_size),
            })
        }
    }

    /// The bound check every decoder runs on the length its header declares.
    pub(crate) fn check_frame_size(
        &self,
        protocol: Protocol,
        size: u64,
    ) -> Result<usize, CodecError> {
        if size > u64::from(self.max_frame_size) {
            return Err(CodecError::FrameTooLarge {
                protocol,
                size,
                max: self.max_frame_size,
            });
        }
        usize::try_from(size).map_err(|_| CodecError::FrameTooLarge {
            protocol,
            size,
            max: self.max_frame_size,
        })
    }
}

/// Why the proxy answers a request itself ([`Codec::hijack`]). Each codec
/// maps these to its protocol's status codes (see each module's docs).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The upstream did not answer within the request's timeout.
    Timeout,
    /// No route and no default cluster for this request.
    NoRoute,
    /// No upstream could take it: no healthy endpoint, connect failed, or
    /// the upstream connection carrying it was lost.
    Unavailable,
    /// The proxy is shedding load (pool or queue full).
    Overloaded,
    /// The request could not be proxied as sent.
    BadRequest,
    /// The upstream answered with something that could not be decoded.
    BadResponse,
    /// Anything else that went wrong inside the proxy (including a drain
    /// deadline that ended the generation holding the request).
    Internal,
}

impl ErrorKind {
    /// The message carried where the protocol has room for one (Dubbo error
    /// body, RocketMQ remark). Prefixed so operators can tell a proxy-made
    /// error from the server's own.
    pub fn message(self) -> &'static str {
        match self {
            ErrorKind::Timeout => "baton: upstream timeout",
            ErrorKind::NoRoute => "baton: no route for this request",
            ErrorKind::Unavailable => "baton: no upstream available",
            ErrorKind::Overloaded => "baton: proxy overloaded",
            ErrorKind::BadRequest => "baton: request could not be proxied",
            ErrorKind::BadResponse => "baton: upstream sent an undecodable response",
            ErrorKind::Internal => "baton: proxy error",
        }
    }
}

/// What a response says about the call it answers, in its protocol's own
/// terms ([`Codec::classify`]): the `result` label of
/// `baton_rpc_responses_total`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum ResponseClass {
    /// The protocol's success code (Bolt `SUCCESS` 0, Dubbo `OK` 20,
    /// RocketMQ `SUCCESS` 0, Tars `iRet` 0).
    Success,
    /// Anything else: the server (or a proxy on the way) reports a failure.
    Error,
}

impl ResponseClass {
    /// [`ResponseClass::Success`] if `success`, else [`ResponseClass::Error`].
    pub fn success_if(success: bool) -> Self {
        if success { Self::Success } else { Self::Error }
    }
}

/// How a client connection's requests reach the upstreams of a cluster
/// ([`Codec::PINNING`]).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Pinning {
    /// Through the cluster's pool of multiplexed connections, shared by
    /// every client of the listener: the protocol's servers only answer,
    /// so any connection will do and ids are rewritten per connection.
    Pooled,
    /// Through upstream connections of the client's own, one per cluster
    /// its requests are routed to, made at its first request there: the
    /// protocol's servers also send requests to their clients (RocketMQ
    /// brokers: CHECK_TRANSACTION_STATE, NOTIFY_CONSUMER_IDS_CHANGED), and
    /// those must reach the client whose connection they arrive on; its
    /// answers go back up the connection that asked, ids untouched.
    PerClient,
}

/// One protocol's codec. Implemented once per protocol module; the proxy
/// uses it through [`AnyCodec`] and [`Protocol`], and knows nothing of a
/// protocol but what this trait answers.
pub trait Codec: fmt::Debug + Send + Sync + Sized + 'static {
    /// What survives a live upgrade besides the unconsumed bytes: plain data.
    type State: fmt::Debug + Clone + PartialEq + Serialize + DeserializeOwned + Send + Sync;

    /// Width of the wire request id: 32 or 64.
    const REQUEST_ID_BITS: u32;

    /// How clients reach upstreams (see [`Pinning`]): shared pools unless
    /// the protocol's servers send requests of their own.
    const PINNING: Pinning = Pinning::Pooled;

    fn new(config: CodecConfig) -> Self;

    /// A codec for the proxy's end of an upstream connection, where what
    /// arrives answers what the proxy sent. Only a protocol whose frames do
    /// not always say whether they are requests or responses needs to know
    /// (Tars: TUP answers are RequestPackets); the others are [`Codec::new`].
    fn upstream(config: CodecConfig) -> Self {
        Self::new(config)
    }

    /// Rebuilds a codec from a state another process produced. Validates it:
    /// a state is input from another binary version.
    fn from_state(config: CodecConfig, state: Self::State) -> Result<Self, CodecError>;

    fn state(&self) -> Self::State;

    fn config(&self) -> CodecConfig;

    /// Splits one complete frame off the front of `buf` (see the module docs
    /// for the contract).
    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, CodecError>;

    /// Appends `frame`'s wire bytes (with any rewritten id) to `out`.
    fn encode(&self, frame: &Frame, out: &mut BytesMut) {
        out.extend_from_slice(frame.as_bytes());
    }

    /// The protocol's own error response to `request`, with its id.
    fn hijack(&self, request: &Frame, kind: ErrorKind) -> Frame;

    /// Whether `response` (a [`FrameKind::Response`] this codec decoded or
    /// made) reports success, by the protocol's own status codes. Each
    /// protocol answers for itself: the same number can mean success in
    /// one and failure in another (20 is Dubbo's `OK` and RocketMQ's
    /// `PULL_RETRY_IMMEDIATELY`).
    fn classify(&self, response: &Frame) -> ResponseClass;

    /// Rewrites a variable-width request id field ([`Splice`], which only
    /// this codec's frames carry) in `raw`, a whole frame, to `id` (already
    /// checked to fit [`Codec::REQUEST_ID_BITS`]), fixing whatever lengths
    /// the width changes; returns where the field is now. On error `raw`
    /// must be unchanged. Codecs whose ids have a fixed width and offset
    /// never build a [`Splice`] and keep this default.
    fn splice_id(raw: &mut BytesMut, slot: Splice, id: RequestId) -> Result<Splice, &'static str> {
        let _ = (raw, slot, id);
        Err("this protocol has no variable-width request id")
    }

    /// The answer to a heartbeat request that expects one; `None` for any
    /// other frame (including heartbeat responses and oneway heartbeats).
    fn heartbeat_reply(&self, heartbeat: &Frame) -> Option<Frame>;

    /// A heartbeat request the proxy can send itself (to probe an idle
    /// upstream connection), or `None` where the protocol has none at the
    /// transport level.
    fn heartbeat(&self, id: RequestId) -> Option<Frame>;

    /// Whether `request` registers its client with the server (where
    /// [`Pinning::PerClient`]: RocketMQ's HEART_BEAT, which tells a broker
    /// the client's producer and consumer groups). A pinned connection
    /// dialled again after its server went away starts with the client's
    /// last such request, as the client itself would on a reconnect it
    /// saw. None by default.
    fn registers(&self, request: &Frame) -> bool {
        let _ = request;
        false
    }
}

/// Declares the registered protocols. Each line
/// `Variant = "name" => module::CodecType,` yields a [`Protocol`] variant,
/// its config name, an [`AnyCodec`] variant, a [`ProtocolState`] variant
/// and the dispatch between them.
macro_rules! registry {
    ($( $(#[$doc:meta])* $variant:ident = $name:literal => $module:ident :: $codec:ident, )+) => {
        /// A protocol baton can decode, by its config name.
        #[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[non_exhaustive]
        pub enum Protocol {
            $( $(#[$doc])* #[serde(rename = $name)] $variant, )+
        }

        impl Protocol {
            /// Every registered protocol, in registry order.
            pub const ALL: &'static [Protocol] = &[$(Protocol::$variant),+];

            /// The name used in config files (`protocol = "bolt"`).
            pub fn name(self) -> &'static str {
                match self { $( Protocol::$variant => $name, )+ }
            }

            /// Width of this protocol's wire request id (32 or 64 bits).
            pub fn request_id_bits(self) -> u32 {
                match self { $( Protocol::$variant => <$module::$codec as Codec>::REQUEST_ID_BITS, )+ }
            }

            /// The largest request id this protocol can carry.
            pub fn max_request_id(self) -> RequestId {
                RequestId(u64::MAX >> (64 - self.request_id_bits()))
            }

            /// A fresh codec for a new connection.
            pub fn codec(self, config: CodecConfig) -> AnyCodec {
                match self { $( Protocol::$variant => AnyCodec::$variant(<$module::$codec as Codec>::new(config)), )+ }
            }

            /// A fresh codec for a new upstream connection ([`Codec::upstream`]).
            pub fn upstream_codec(self, config: CodecConfig) -> AnyCodec {
                match self { $( Protocol::$variant => AnyCodec::$variant(<$module::$codec as Codec>::upstream(config)), )+ }
            }

            /// How this protocol's clients reach upstreams ([`Codec::PINNING`]).
            pub fn pinning(self) -> Pinning {
                match self { $( Protocol::$variant => <$module::$codec as Codec>::PINNING, )+ }
            }

            /// See [`Codec::splice_id`].
            pub(crate) fn splice_id(self, raw: &mut BytesMut, slot: Splice, id: RequestId) -> Result<Splice, &'static str> {
                match self { $( Protocol::$variant => <$module::$codec as Codec>::splice_id(raw, slot, id), )+ }
            }

            /// The protocol's byte fixtures (`<module>::fixtures::ALL`), for
            /// the framework tests and the fuzz seed corpus ([`fixtures::all`]).
            #[doc(hidden)]
            pub fn fixtures(self) -> &'static [(&'static str, &'static [u8])] {
                match self { $( Protocol::$variant => $module::fixtures::ALL, )+ }
            }

            fn known_names() -> &'static str {
                concat!($( $name, " " ),+)
            }
        }

        impl FromStr for Protocol {
            type Err = UnknownProtocol;

            fn from_str(name: &str) -> Result<Self, UnknownProtocol> {
                match name {
                    $( $name => Ok(Protocol::$variant), )+
                    _ => Err(UnknownProtocol { name: name.to_owned(), known: Protocol::known_names().trim_end() }),
                }
            }
        }

        /// One connection's codec, whichever the protocol.
        #[derive(Debug)]
        #[non_exhaustive]
        pub enum AnyCodec {
            $( $variant($module::$codec), )+
        }

        /// The protocol-specific part of a [`CodecState`].
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        #[non_exhaustive]
        pub enum ProtocolState {
            $( $variant(<$module::$codec as Codec>::State), )+
        }

        impl AnyCodec {
            pub fn protocol(&self) -> Protocol {
                match self { $( AnyCodec::$variant(_) => Protocol::$variant, )+ }
            }

            pub fn config(&self) -> CodecConfig {
                match self { $( AnyCodec::$variant(c) => c.config(), )+ }
            }

            /// See [`Codec::decode`].
            pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
                match self { $( AnyCodec::$variant(c) => c.decode(buf), )+ }
            }

            /// See [`Codec::encode`].
            pub fn encode(&self, frame: &Frame, out: &mut BytesMut) {
                match self { $( AnyCodec::$variant(c) => c.encode(frame, out), )+ }
            }

            /// See [`Codec::hijack`].
            pub fn hijack(&self, request: &Frame, kind: ErrorKind) -> Frame {
                match self { $( AnyCodec::$variant(c) => c.hijack(request, kind), )+ }
            }

            /// See [`Codec::classify`].
            pub fn classify(&self, response: &Frame) -> ResponseClass {
                match self { $( AnyCodec::$variant(c) => c.classify(response), )+ }
            }

            /// See [`Codec::heartbeat_reply`].
            pub fn heartbeat_reply(&self, heartbeat: &Frame) -> Option<Frame> {
                match self { $( AnyCodec::$variant(c) => c.heartbeat_reply(heartbeat), )+ }
            }

            /// See [`Codec::heartbeat`].
            pub fn heartbeat(&self, id: RequestId) -> Option<Frame> {
                match self { $( AnyCodec::$variant(c) => c.heartbeat(id), )+ }
            }

            /// See [`Codec::registers`].
            pub fn registers(&self, request: &Frame) -> bool {
                match self { $( AnyCodec::$variant(c) => c.registers(request), )+ }
            }

            /// Everything but the unconsumed bytes that a connection needs to
            /// continue in another process.
            pub fn state(&self) -> CodecState {
                match self {
                    $( AnyCodec::$variant(c) => CodecState {
                        config: c.config(),
                        protocol: ProtocolState::$variant(c.state()),
                    }, )+
                }
            }

            /// Rebuilds the codec a [`CodecState`] was taken from.
            pub fn from_state(state: CodecState) -> Result<Self, CodecError> {
                state.config.validate()?;
                match state.protocol {
                    $( ProtocolState::$variant(s) => Ok(AnyCodec::$variant(<$module::$codec as Codec>::from_state(state.config, s)?)), )+
                }
            }
        }

        impl ProtocolState {
            pub fn protocol(&self) -> Protocol {
                match self { $( ProtocolState::$variant(_) => Protocol::$variant, )+ }
            }
        }
    };
}

registry! {
    /// SOFA Bolt v1 ([`bolt`]).
    Bolt = "bolt" => bolt::BoltCodec,
    /// Apache Dubbo 2 ([`dubbo`]).
    Dubbo = "dubbo" => dubbo::DubboCodec,
    /// Apache RocketMQ remoting ([`rocketmq`]).
    RocketMq = "rocketmq" => rocketmq::RocketMqCodec,
    /// TARS `RequestPacket` / `ResponsePacket` ([`tars`]).
    Tars = "tars" => tars::TarsCodec,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A connection's codec state, as it crosses a live upgrade (serde, so the
/// handoff's bincode carries it). Serialised by variant index: new protocols
/// are appended to the registry, never inserted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CodecState {
    pub config: CodecConfig,
    pub protocol: ProtocolState,
}

impl CodecState {
    pub fn protocol(&self) -> Protocol {
        self.protocol.protocol()
    }
}

#[cfg(test)]
mod testkit;
#[cfg(test)]
mod tests;
