//! Broker addresses in name-server answers, rewritten to baton's listeners
//! and back (issue 18, item 2). Pure: bytes in, bytes out, no I/O.
//!
//! # How a RocketMQ client finds its brokers
//!
//! A client is configured with name-server addresses only. It learns every
//! broker address from two name-server answers (checked against Apache
//! RocketMQ 5.3.3's `ClientRequestProcessor`, `RouteInfoManager` and the
//! client's `MQClientInstance`):
//!
//! * GET_ROUTEINFO_BY_TOPIC (105) → `TopicRouteData`:
//!   `brokerDatas[].brokerAddrs` maps a broker id (0 = master) to
//!   `"ip:port"`; `filterServerTable` is keyed by broker address (empty
//!   unless class-filter servers run). Producers, consumers and the
//!   transactional END_TRANSACTION all pick their broker from here
//!   (`findBrokerAddressInPublish`/`InSubscribe`, by broker name and id).
//! * GET_BROKER_CLUSTER_INFO (106) → `ClusterInfo`:
//!   `brokerAddrTable.<name>.brokerAddrs` (admin tools, the proxy).
//! * GET_BROKER_MEMBER_GROUP (901) → `BrokerMemberGroup`: `brokerAddrs`
//!   (brokers and the RocketMQ proxy ask it; rewritten the same way).
//!
//! Addresses that are *not* rewritten, and why: a broker → client request
//! (CHECK_TRANSACTION_STATE) is answered on the connection it came on
//! (`parseChannelRemoteAddr`), so it needs no address; the `offsetMsgId`
//! of a send result and the `storeHost` of a consumed message encode the
//! broker's own address, which only `viewMessage(offsetMsgId)` (an admin
//! query) and a 4.x consumer's `sendMessageBack` without a broker name
//! dial directly — those bypass a rewriting proxy, and are left as the
//! broker wrote them (rewriting a message id would change the id).
//!
//! # Design: rewrite name-server answers, not intercept connections
//!
//! Two ways put baton between a client and its brokers:
//!
//! 1. **Rewrite** every broker address in the answers above to a baton
//!    listener that fronts that broker (one listener per broker address),
//!    and map a connection on that listener back to the real broker. It
//!    needs no privileges, no routing tricks and no client configuration
//!    beyond pointing it at baton as its name server, and works for
//!    clients anywhere on the network; its cost is one listener per broker
//!    and knowing the brokers (config, or learnt from these answers).
//! 2. **Transparent interception** (TPROXY/iptables in the client's network
//!    namespace, the sidecar issue): the client dials the real broker and
//!    the kernel hands the connection to baton, which reads the original
//!    destination. No rewriting, but it needs root in the client's
//!    namespace, and it does not work for clients outside it.
//!
//! baton rewrites (1), and this module is that rewrite; interception can
//! later share everything but this step. The rewrite is done on the
//! answer's bytes, not by parsing and re-serialising: the name server's
//! JSON is fastjson's, whose quirks a re-serialiser would lose —
//! `brokerAddrs` keys are **unquoted integers** (`{0:"ip:port"}`) in
//! GET_BROKER_CLUSTER_INFO and in route answers to clients older than
//! 4.9.4 (request `version` < 401), quoted (`{"0":…}`, sorted) for newer
//! ones; field order is fastjson's (alphabetical). So only the address
//! strings change; every other byte is copied. An address with no
//! mapping is left as it is and reported ([`Rewritten::unmapped`]): the
//! caller decides (log it, bind a listener for a broker that joined).
//!
//! # Bounds and failures
//!
//! Bodies are walked as JSON with fastjson's relaxations (unquoted keys,
//! whitespace anywhere) to a nesting depth of [`MAX_DEPTH`] (route answers
//! nest 4 deep); a body that is not such JSON, or nests deeper, is a
//! [`RouteError`] with the byte offset, and the caller forwards the answer
//! unchanged or fails that one request — never the connection's others.
//! Strings are compared as written: an address spelt with JSON escapes
//! (never the case in fastjson's output) does not match and is reported
//! unmapped.
//!
//! # Wiring
//!
//! The RPC filter `rocketmq_routes` (`crate::filter::builtin`) runs on a
//! listener whose config has `rocketmq_brokers` (a listener in front of
//! name servers): for each successful answer to a request that
//! [`carries_addresses`] it calls [`rewrite_answer`]; the listeners named
//! there proxy to their brokers like any RocketMQ listener. Fixtures:
//! answers captured from a real 5.3.3 name server by
//! `tests/tests/interop_rocketmq.rs` (`fixtures/`, with the broker's
//! ephemeral address replaced by `127.0.0.1:10911`).

use std::collections::BTreeMap;

use bytes::BytesMut;

use super::RocketMqCodec;
use crate::codec::{Codec, CodecConfig, Frame, MAX_MAX_FRAME_SIZE};

/// GET_ROUTEINFO_BY_TOPIC: a topic's brokers and queues.
pub const GET_ROUTEINFO_BY_TOPIC: i32 = 105;
/// GET_BROKER_CLUSTER_INFO: every cluster's brokers.
pub const GET_BROKER_CLUSTER_INFO: i32 = 106;
/// GET_BROKER_MEMBER_GROUP: one broker group's members.
pub const GET_BROKER_MEMBER_GROUP: i32 = 901;

/// How deep a body may nest (objects and arrays). Route answers nest 4
/// deep (`brokerDatas[0].brokerAddrs`), cluster info 3; the bound stops a
/// hostile body from recursing the stack away.
pub const MAX_DEPTH: usize = 32;

/// Whether the answer to a request with this code carries broker
/// addresses that [`rewrite_body`] rewrites.
pub fn carries_addresses(request_code: i32) -> bool {
    matches!(
        request_code,
        GET_ROUTEINFO_BY_TOPIC | GET_BROKER_CLUSTER_INFO | GET_BROKER_MEMBER_GROUP
    )
}

/// Why a body or frame could not be rewritten.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RouteError {
    #[error("route answer body: {what} at byte {offset}")]
    Malformed { what: &'static str, offset: usize },
    #[error("route answer body nests deeper than {MAX_DEPTH} at byte {offset}")]
    TooDeep { offset: usize },
    #[error("remoting frame: {0}")]
    Frame(&'static str),
    #[error("address map: {0} is mapped twice")]
    Ambiguous(String),
}

/// Which way to rewrite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Real broker address → the baton listener that fronts it (answers
    /// going to a client).
    ToListener,
    /// Baton listener → real broker (undoing the rewrite).
    ToBroker,
}

/// Real broker addresses and the baton listeners fronting them, one to
/// one, as `"ip:port"` strings (as the name server spells them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddrMap {
    to_listener: BTreeMap<String, String>,
    to_broker: BTreeMap<String, String>,
}

impl AddrMap {
    /// From `(broker, listener)` pairs; a broker or a listener named twice
    /// is refused (a listener fronting two brokers could not map back).
    pub fn new<I, B, L>(pairs: I) -> Result<AddrMap, RouteError>
    where
        I: IntoIterator<Item = (B, L)>,
        B: Into<String>,
        L: Into<String>,
    {
        let mut map = AddrMap::default();
        for (broker, listener) in pairs {
            let (broker, listener) = (broker.into(), listener.into());
            if map.to_listener.contains_key(&broker) {
                return Err(RouteError::Ambiguous(broker));
            }
            if map.to_broker.contains_key(&listener) {
                return Err(RouteError::Ambiguous(listener));
            }
            map.to_listener.insert(broker.clone(), listener.clone());
            map.to_broker.insert(listener, broker);
        }
        Ok(map)
    }

    /// The listener fronting a real broker address.
    pub fn listener_for(&self, broker: &str) -> Option<&str> {
        self.to_listener.get(broker).map(String::as_str)
    }

    /// The real broker behind a listener address.
    pub fn broker_for(&self, listener: &str) -> Option<&str> {
        self.to_broker.get(listener).map(String::as_str)
    }

    fn lookup(&self, dir: Direction, addr: &str) -> Option<&str> {
        match dir {
            Direction::ToListener => self.listener_for(addr),
            Direction::ToBroker => self.broker_for(addr),
        }
    }
}

/// A rewritten body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewritten {
    /// The body, addresses replaced, every other byte as it was.
    pub body: Vec<u8>,
    /// How many addresses were replaced.
    pub rewritten: usize,
    /// Addresses found where brokers are named but absent from the map,
    /// left unchanged.
    pub unmapped: Vec<String>,
}

/// Rewrites the broker addresses of a name-server answer body through
/// `map`: every string value of a `brokerAddrs` object, and every key of a
/// `filterServerTable` object, wherever they nest.
pub fn rewrite_body(body: &[u8], map: &AddrMap, dir: Direction) -> Result<Rewritten, RouteError> {
    let mut w = Walker {
        src: body,
        pos: 0,
        copied: 0,
        out: Vec::with_capacity(body.len() + 64),
        map,
        dir,
        rewritten: 0,
        unmapped: Vec::new(),
    };
    w.skip_ws();
    if w.pos < body.len() {
        w.value(Place::Other, 0)?;
        w.skip_ws();
        if w.pos != body.len() {
            return Err(w.err("trailing bytes after the JSON value"));
        }
    }
    w.out.extend_from_slice(&body[w.copied..]);
    Ok(Rewritten {
        body: w.out,
        rewritten: w.rewritten,
        unmapped: w.unmapped,
    })
}

/// A remoting frame (length prefix included) with its body replaced: the
/// header bytes are kept, the length recomputed.
pub fn reframe(frame: &[u8], body: &[u8]) -> Result<Vec<u8>, RouteError> {
    let word = |at: usize| -> Result<u32, RouteError> {
        frame
            .get(at..at + 4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(u32::from_be_bytes)
            .ok_or(RouteError::Frame("shorter than its 8-byte prefix"))
    };
    let length = word(0)? as usize;
    if frame.len() != 4 + length {
        return Err(RouteError::Frame(
            "length prefix disagrees with the frame size",
        ));
    }
    let header_len = (word(4)? & 0x00ff_ffff) as usize;
    let head_end = 8 + header_len;
    if head_end > frame.len() {
        return Err(RouteError::Frame("header length past the frame"));
    }
    let new_length = u32::try_from(4 + header_len + body.len())
        .map_err(|_| RouteError::Frame("rewritten frame over 4 GiB"))?;
    let mut out = Vec::with_capacity(head_end + body.len());
    out.extend_from_slice(&new_length.to_be_bytes());
    out.extend_from_slice(&frame[4..head_end]);
    out.extend_from_slice(body);
    Ok(out)
}

/// A name-server answer (a response frame the RocketMQ codec decoded)
/// with its broker addresses rewritten through `map`, as a frame again
/// (same id, same header); `None` when no address changed, so the answer
/// goes on as it came. Addresses found unmapped are returned either way.
pub fn rewrite_answer(
    answer: &Frame,
    map: &AddrMap,
) -> Result<(Option<Frame>, Vec<String>), RouteError> {
    let raw = answer.as_bytes();
    let out = rewrite_body(frame_body(raw)?, map, Direction::ToListener)?;
    if out.rewritten == 0 {
        return Ok((None, out.unmapped));
    }
    let mut bytes = BytesMut::from(&reframe(raw, &out.body)?[..]);
    // The answer was within the listener's frame bound; an address or two
    // longer must not turn it into an error, so decode with the widest.
    let config = CodecConfig::with_max_frame_size(MAX_MAX_FRAME_SIZE)
        .map_err(|_| RouteError::Frame("no codec config for the widest frame"))?;
    match RocketMqCodec::new(config).decode(&mut bytes) {
        Ok(Some(frame)) if bytes.is_empty() => Ok((Some(frame), out.unmapped)),
        _ => Err(RouteError::Frame("the rewritten answer does not decode")),
    }
}

/// The body of a remoting frame (length prefix included).
pub fn frame_body(frame: &[u8]) -> Result<&[u8], RouteError> {
    let header = frame
        .get(4..8)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(u32::from_be_bytes)
        .ok_or(RouteError::Frame("shorter than its 8-byte prefix"))?;
    frame
        .get(8 + (header & 0x00ff_ffff) as usize..)
        .ok_or(RouteError::Frame("header length past the frame"))
}

// === the walk ===

/// Where a value sits, as far as addresses go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// A value of a `brokerAddrs` object: an address.
    BrokerAddr,
    /// The object under `brokerAddrs`.
    BrokerAddrs,
    /// The object under `filterServerTable` (keys are addresses).
    FilterServerTable,
    Other,
}

struct Walker<'a> {
    src: &'a [u8],
    pos: usize,
    /// `src[..copied]` is already in `out`.
    copied: usize,
    out: Vec<u8>,
    map: &'a AddrMap,
    dir: Direction,
    rewritten: usize,
    unmapped: Vec<String>,
}

impl Walker<'_> {
    fn err(&self, what: &'static str) -> RouteError {
        RouteError::Malformed {
            what,
            offset: self.pos,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.src.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.pos += 1;
        }
    }

    fn expect(&mut self, byte: u8, what: &'static str) -> Result<(), RouteError> {
        self.skip_ws();
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.err(what))
        }
    }

    fn value(&mut self, place: Place, depth: usize) -> Result<(), RouteError> {
        if depth > MAX_DEPTH {
            return Err(RouteError::TooDeep { offset: self.pos });
        }
        self.skip_ws();
        match self.peek() {
            Some(b'{') => self.object(place, depth + 1),
            Some(b'[') => self.array(depth + 1),
            Some(q @ (b'"' | b'\'')) => {
                let (start, end) = self.string(q)?;
                if place == Place::BrokerAddr {
                    self.replace(start, end);
                }
                Ok(())
            }
            Some(_) => self.scalar(),
            None => Err(self.err("a value expected, the body ended")),
        }
    }

    fn object(&mut self, place: Place, depth: usize) -> Result<(), RouteError> {
        self.pos += 1; // '{'
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            self.skip_ws();
            let (start, end) = match self.peek() {
                Some(q @ (b'"' | b'\'')) => self.string(q)?,
                // fastjson writes integer map keys unquoted: {0:"ip:port"}.
                Some(c) if c.is_ascii_alphanumeric() || c == b'_' || c == b'-' => {
                    let start = self.pos;
                    while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
                    {
                        self.pos += 1;
                    }
                    (start, self.pos)
                }
                _ => return Err(self.err("an object key expected")),
            };
            if place == Place::FilterServerTable {
                self.replace(start, end);
            }
            let inner = match (place, &self.src[start..end]) {
                (Place::BrokerAddrs, _) => Place::BrokerAddr,
                (_, b"brokerAddrs") => Place::BrokerAddrs,
                (_, b"filterServerTable") => Place::FilterServerTable,
                _ => Place::Other,
            };
            self.expect(b':', "':' after an object key expected")?;
            self.value(inner, depth)?;
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(self.err("',' or '}' expected in an object")),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<(), RouteError> {
        self.pos += 1; // '['
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            self.value(Place::Other, depth)?;
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(self.err("',' or ']' expected in an array")),
            }
        }
    }

    /// A string literal from the quote at `pos`; returns the span of its
    /// contents (between the quotes), as written.
    fn string(&mut self, quote: u8) -> Result<(usize, usize), RouteError> {
        self.pos += 1;
        let start = self.pos;
        loop {
            match self.peek() {
                // An escape: skip the escaped byte too (never past the end).
                Some(b'\\') => self.pos = (self.pos + 2).min(self.src.len()),
                Some(c) if c == quote => {
                    let end = self.pos;
                    self.pos += 1;
                    return Ok((start, end));
                }
                Some(_) => self.pos += 1,
                None => return Err(self.err("unterminated string")),
            }
        }
    }

    /// A number, true, false or null: a run of the bytes they are made of.
    fn scalar(&mut self) -> Result<(), RouteError> {
        let start = self.pos;
        while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'+' | b'.'))
        {
            self.pos += 1;
        }
        if self.pos == start {
            return Err(self.err("a value expected"));
        }
        Ok(())
    }

    /// Replaces `src[start..end]` (a string's contents or a bare key) by
    /// its mapping, if it has one.
    fn replace(&mut self, start: usize, end: usize) {
        let text = String::from_utf8_lossy(&self.src[start..end]);
        match self.map.lookup(self.dir, &text) {
            Some(to) => {
                self.out.extend_from_slice(&self.src[self.copied..start]);
                self.out.extend_from_slice(to.as_bytes());
                self.copied = end;
                self.rewritten += 1;
            }
            None => self.unmapped.push(text.into_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured from Apache RocketMQ 5.3.3's name server (see the module
    /// doc): a 5.3.3 client's route request (version 479, standard JSON).
    const ROUTE_V479: &[u8] = include_bytes!("fixtures/get_routeinfo_by_topic.v479.frame");
    /// The same route asked with version 0 (fastjson's own output:
    /// unquoted integer keys).
    const ROUTE_V0: &[u8] = include_bytes!("fixtures/get_routeinfo_by_topic.v0.frame");
    const CLUSTER_INFO: &[u8] = include_bytes!("fixtures/get_broker_cluster_info.frame");

    /// The broker address in the fixtures.
    const BROKER: &str = "127.0.0.1:10911";
    const LISTENER: &str = "127.0.0.1:7000";

    fn map() -> AddrMap {
        AddrMap::new([(BROKER, LISTENER)]).unwrap()
    }

    fn text(b: &[u8]) -> String {
        String::from_utf8(b.to_vec()).unwrap()
    }

    #[test]
    fn fixtures_name_the_broker_where_expected() {
        assert!(
            text(frame_body(ROUTE_V479).unwrap())
                .contains(r#""brokerAddrs":{"0":"127.0.0.1:10911"}"#)
        );
        assert!(
            text(frame_body(ROUTE_V0).unwrap()).contains(r#""brokerAddrs":{0:"127.0.0.1:10911"}"#)
        );
        assert!(
            text(frame_body(CLUSTER_INFO).unwrap())
                .contains(r#""brokerAddrs":{0:"127.0.0.1:10911"}"#)
        );
    }

    #[test]
    fn captured_answers_are_rewritten_and_nothing_else_changes() {
        for frame in [ROUTE_V479, ROUTE_V0, CLUSTER_INFO] {
            let body = frame_body(frame).unwrap();
            let out = rewrite_body(body, &map(), Direction::ToListener).unwrap();
            assert_eq!(out.rewritten, 1, "{}", text(body));
            assert!(out.unmapped.is_empty());
            // Byte for byte the same but for the address (same length here
            // only by chance of digit counts, so compare by substitution).
            assert_eq!(text(&out.body), text(body).replace(BROKER, LISTENER));
            assert!(!text(&out.body).contains(BROKER));
        }
    }

    #[test]
    fn fastjson_unquoted_keys_stay_unquoted() {
        let out =
            rewrite_body(frame_body(ROUTE_V0).unwrap(), &map(), Direction::ToListener).unwrap();
        assert!(
            text(&out.body).contains(r#""brokerAddrs":{0:"127.0.0.1:7000"}"#),
            "{}",
            text(&out.body)
        );
    }

    #[test]
    fn standard_json_answers_still_parse_with_the_listener_address() {
        let out = rewrite_body(
            frame_body(ROUTE_V479).unwrap(),
            &map(),
            Direction::ToListener,
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.body).unwrap();
        assert_eq!(v["brokerDatas"][0]["brokerAddrs"]["0"], LISTENER);
        assert_eq!(v["brokerDatas"][0]["brokerName"], "broker-a");
        assert_eq!(v["queueDatas"][0]["readQueueNums"], 4);
    }

    #[test]
    fn rewriting_back_restores_the_captured_bytes() {
        for frame in [ROUTE_V479, ROUTE_V0, CLUSTER_INFO] {
            let body = frame_body(frame).unwrap();
            let there = rewrite_body(body, &map(), Direction::ToListener).unwrap();
            let back = rewrite_body(&there.body, &map(), Direction::ToBroker).unwrap();
            assert_eq!(back.body, body);
            assert_eq!(reframe(frame, &back.body).unwrap(), frame);
        }
    }

    #[test]
    fn reframe_recomputes_the_length_when_the_address_length_changes() {
        let map = AddrMap::new([(BROKER, "10.1.2.3:80")]).unwrap();
        let body = frame_body(ROUTE_V479).unwrap();
        let out = rewrite_body(body, &map, Direction::ToListener).unwrap();
        assert_eq!(
            out.body.len(),
            body.len() - BROKER.len() + "10.1.2.3:80".len()
        );
        let frame = reframe(ROUTE_V479, &out.body).unwrap();
        let length = u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
        assert_eq!(length + 4, frame.len());
        // The header bytes are the captured ones.
        assert_eq!(
            frame[4..frame.len() - out.body.len()],
            ROUTE_V479[4..ROUTE_V479.len() - body.len()]
        );
        assert_eq!(frame_body(&frame).unwrap(), &out.body[..]);
    }

    #[test]
    fn unmapped_addresses_are_reported_and_left_alone() {
        let map = AddrMap::new([("127.0.0.1:1", LISTENER)]).unwrap();
        let body = frame_body(CLUSTER_INFO).unwrap();
        let out = rewrite_body(body, &map, Direction::ToListener).unwrap();
        assert_eq!(out.body, body);
        assert_eq!(out.rewritten, 0);
        assert_eq!(out.unmapped, vec![BROKER.to_owned()]);
    }

    #[test]
    fn only_broker_address_places_change() {
        // The broker's address where no broker address belongs (a name, a
        // queue field, an array) stays; a master and a slave both change;
        // filterServerTable keys change, its values (filter servers) stay.
        let map =
            AddrMap::new([(BROKER, LISTENER), ("127.0.0.1:10921", "127.0.0.1:7001")]).unwrap();
        let body = br#"{"brokerDatas":[{"brokerAddrs":{0:"127.0.0.1:10911",1:"127.0.0.1:10921"},"brokerName":"127.0.0.1:10911","cluster":"c"}],"filterServerTable":{"127.0.0.1:10911":["127.0.0.1:10911"]},"queueDatas":[{"brokerName":"127.0.0.1:10911","perm":6}],"x":["127.0.0.1:10911"]}"#;
        let out = rewrite_body(body, &map, Direction::ToListener).unwrap();
        assert_eq!(
            text(&out.body),
            r#"{"brokerDatas":[{"brokerAddrs":{0:"127.0.0.1:7000",1:"127.0.0.1:7001"},"brokerName":"127.0.0.1:10911","cluster":"c"}],"filterServerTable":{"127.0.0.1:7000":["127.0.0.1:10911"]},"queueDatas":[{"brokerName":"127.0.0.1:10911","perm":6}],"x":["127.0.0.1:10911"]}"#
        );
        assert_eq!(out.rewritten, 3);
    }

    #[test]
    fn whitespace_and_member_group_bodies() {
        let body = b" {\n  \"cluster\" : \"c\",\n  \"brokerAddrs\" : { \"0\" : \"127.0.0.1:10911\" } ,\n  \"brokerName\":\"b\"\n}\n";
        let out = rewrite_body(body, &map(), Direction::ToListener).unwrap();
        assert_eq!(text(&out.body), text(body).replace(BROKER, LISTENER));
        assert!(carries_addresses(GET_BROKER_MEMBER_GROUP));
        assert!(carries_addresses(GET_ROUTEINFO_BY_TOPIC));
        assert!(carries_addresses(GET_BROKER_CLUSTER_INFO));
        assert!(!carries_addresses(10));
    }

    #[test]
    fn empty_body_is_no_change() {
        let out = rewrite_body(b"", &map(), Direction::ToListener).unwrap();
        assert!(out.body.is_empty());
        assert_eq!(out.rewritten, 0);
    }

    #[test]
    fn malformed_bodies_are_errors_with_offsets() {
        let bad: &[&[u8]] = &[
            br#"{"brokerAddrs":{0:"127.0.0.1:10911"}"#,
            br#"{"brokerAddrs":{0:"127.0.0.1:10911}}"#,
            br#"{"brokerAddrs" {0:"a"}}"#,
            br#"{"a":1,}"#,
            br#"{"a":1} x"#,
            br#"[1 2]"#,
            br#"{:1}"#,
            b"{\"a\":\\",
        ];
        for body in bad {
            match rewrite_body(body, &map(), Direction::ToListener) {
                Err(RouteError::Malformed { offset, .. }) => assert!(offset <= body.len()),
                other => panic!("{}: {other:?}", text(body)),
            }
        }
        let deep = "[".repeat(MAX_DEPTH + 2);
        assert!(matches!(
            rewrite_body(deep.as_bytes(), &map(), Direction::ToListener),
            Err(RouteError::TooDeep { .. })
        ));
    }

    #[test]
    fn truncated_frames_are_errors() {
        assert!(frame_body(&ROUTE_V0[..6]).is_err());
        assert!(reframe(&ROUTE_V0[..ROUTE_V0.len() - 1], b"{}").is_err());
        let mut lying = ROUTE_V0.to_vec();
        lying[4..8].copy_from_slice(&0x00ff_ffffu32.to_be_bytes());
        assert!(reframe(&lying, b"{}").is_err());
        assert!(frame_body(&lying).is_err());
    }

    #[test]
    fn ambiguous_maps_are_refused() {
        assert_eq!(
            AddrMap::new([("a:1", "l:1"), ("a:1", "l:2")]),
            Err(RouteError::Ambiguous("a:1".into()))
        );
        assert_eq!(
            AddrMap::new([("a:1", "l:1"), ("a:2", "l:1")]),
            Err(RouteError::Ambiguous("l:1".into()))
        );
        let m = map();
        assert_eq!(m.listener_for(BROKER), Some(LISTENER));
        assert_eq!(m.broker_for(LISTENER), Some(BROKER));
        assert_eq!(m.broker_for(BROKER), None);
    }
}
