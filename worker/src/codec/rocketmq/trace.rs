//! Message trace (RocketMQ's 消息轨迹): the messages a request and its
//! response carried, read from the frames baton proxied — one
//! [`MessageEvent`] per message produced or consumed. Sans-I/O, like the
//! codec: the RPC layer calls [`events`] with a request and its response
//! and writes what it returns.
//!
//! What is read, by request code:
//!
//! * **produce** — SEND_MESSAGE (10; ext fields `producerGroup`, `topic`,
//!   `queueId`, `properties`), SEND_MESSAGE_V2 (310; the same as `a`, `b`,
//!   `e`, `i`), SEND_BATCH_MESSAGE (320; the V2 header, and each message's
//!   properties from the batch body: `[totalSize i32][magic i32][bodyCRC
//!   i32][flag i32][bodyLen i32][body][propertiesLen i16][properties]`).
//!   The message id is the producer's `UNIQ_KEY` property, the tags and
//!   keys its `TAGS` and `KEYS`; the response's ext fields give the
//!   broker's offset message id (`msgId`, comma-separated for a batch),
//!   `queueId` and `queueOffset`.
//! * **consume** — PULL_MESSAGE (11; ext fields `consumerGroup`,
//!   `topic`), or LITE_PULL_MESSAGE (361, a lite pull consumer's), answered
//!   FOUND (0): the response body is the messages in the
//!   broker's store format (`MessageDecoder`): `[totalSize i32][magic
//!   i32][bodyCRC i32][queueId i32][flag i32][queueOffset i64][physicalOffset
//!   i64][sysFlag i32][bornTimestamp i64][bornHost 8 or 20][storeTimestamp
//!   i64][storeHost 8 or 20][reconsumeTimes i32][preparedTxOffset
//!   i64][bodyLen i32][body][topicLen i8 (magic v1) or i16 (v2)][topic]
//!   [propertiesLen i16][properties]` — a host is 20 bytes (IPv6) when
//!   `sysFlag` has bit 4 (born) or bit 5 (store). The offset message id is
//!   the store host's address and port and the physical offset, in hex
//!   (as the Java client computes it).
//!
//! Properties are `name \x01 value \x02` pairs. A body that does not parse
//! gives the events it parsed so far: a trace never fails a request.
//!
//! For distributed tracing ([`context_fields`], [`code_name`]): where a
//! request's trace context can be — its ext fields, and a single-message
//! send's properties, where OpenTelemetry's RocketMQ instrumentation puts
//! `traceparent` (`Message.putUserProperty`) — and what the request code
//! is called.

use super::{SerializeType, collect_ext_fields, parse_header};
use crate::codec::Frame;
use crate::codec::wire::Cursor;

/// SEND_MESSAGE.
pub const SEND_MESSAGE: i32 = 10;
/// PULL_MESSAGE.
pub const PULL_MESSAGE: i32 = 11;
/// SEND_MESSAGE_V2.
pub const SEND_MESSAGE_V2: i32 = 310;
/// SEND_BATCH_MESSAGE.
pub const SEND_BATCH_MESSAGE: i32 = 320;
/// LITE_PULL_MESSAGE: a lite pull consumer's PULL_MESSAGE (the pull API,
/// RocketMQ 5), the same header and answer.
pub const LITE_PULL_MESSAGE: i32 = 361;

/// The request codes a client sends most, by name (`RequestCode`); the
/// rest go by number.
const CODE_NAMES: &[(i32, &str)] = &[
    (SEND_MESSAGE, "SEND_MESSAGE"),
    (PULL_MESSAGE, "PULL_MESSAGE"),
    (14, "QUERY_CONSUMER_OFFSET"),
    (15, "UPDATE_CONSUMER_OFFSET"),
    (34, "HEART_BEAT"),
    (35, "UNREGISTER_CLIENT"),
    (36, "CONSUMER_SEND_MSG_BACK"),
    (37, "END_TRANSACTION"),
    (38, "GET_CONSUMER_LIST_BY_GROUP"),
    (41, "LOCK_BATCH_MQ"),
    (42, "UNLOCK_BATCH_MQ"),
    (105, "GET_ROUTEINFO_BY_TOPIC"),
    (106, "GET_BROKER_CLUSTER_INFO"),
    (SEND_MESSAGE_V2, "SEND_MESSAGE_V2"),
    (SEND_BATCH_MESSAGE, "SEND_BATCH_MESSAGE"),
    (LITE_PULL_MESSAGE, "LITE_PULL_MESSAGE"),
];

/// A request code's name, or its number.
pub fn code_name(code: i32) -> std::borrow::Cow<'static, str> {
    CODE_NAMES
        .iter()
        .find(|(c, _)| *c == code)
        .map_or_else(|| code.to_string().into(), |(_, name)| (*name).into())
}

/// Where a request's trace context can be: its ext fields, then, for a
/// single-message send, its message's properties (`properties`, or `i`
/// in SEND_MESSAGE_V2's short names).
pub fn context_fields(request: &Frame) -> Vec<(String, String)> {
    let attributes = request.attributes();
    let mut fields = attributes.headers.clone();
    let properties = match attributes.code {
        Some(SEND_MESSAGE) => attributes.header("properties"),
        Some(SEND_MESSAGE_V2) => attributes.header("properties").or(attributes.header("i")),
        _ => None,
    };
    if let Some(properties) = properties {
        fields.extend(pairs(properties).map(|(k, v)| (k.to_owned(), v.to_owned())));
    }
    fields
}

/// `MessageDecoder.MESSAGE_MAGIC_CODE` (topic length in one byte).
const MAGIC_V1: i32 = -626_843_481;
/// `MESSAGE_MAGIC_CODE_V2` (topic length in two bytes).
const MAGIC_V2: i32 = -626_843_477;
const BORN_HOST_V6: i32 = 1 << 4;
const STORE_HOST_V6: i32 = 1 << 5;

/// Which way a message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Produce,
    Consume,
}

impl Role {
    pub fn label(self) -> &'static str {
        match self {
            Role::Produce => "produce",
            Role::Consume => "consume",
        }
    }
}

/// One message produced or consumed through the proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageEvent {
    pub role: Role,
    pub topic: Option<String>,
    pub tags: Option<String>,
    pub keys: Option<String>,
    /// The producer's id for it (`UNIQ_KEY`).
    pub msg_id: Option<String>,
    /// The broker's id for it (store host and commit-log offset).
    pub offset_msg_id: Option<String>,
    /// The producer group (produce) or consumer group (consume).
    pub group: Option<String>,
    pub queue_id: Option<i32>,
    pub queue_offset: Option<i64>,
    /// The response's code (0: SEND_OK, FOUND).
    pub code: i32,
}

/// The messages `request` carried or `response` delivered; none for a
/// request that neither produces nor consumes.
pub fn events(request: &Frame, response: &Frame) -> Vec<MessageEvent> {
    let attributes = request.attributes();
    let Some(code) = attributes.code else {
        return Vec::new();
    };
    let field = |long: &str, short: &str| {
        attributes
            .header(long)
            .or_else(|| {
                (code != SEND_MESSAGE)
                    .then(|| attributes.header(short))
                    .flatten()
            })
            .map(str::to_owned)
    };
    let status = response.status().unwrap_or(-1);
    match code {
        SEND_MESSAGE | SEND_MESSAGE_V2 | SEND_BATCH_MESSAGE => {
            let answer = ext_fields(response.as_bytes());
            let answered = |key: &str| {
                answer
                    .iter()
                    .find(|(k, _)| k == key)
                    .map(|(_, v)| v.as_str())
            };
            let base = MessageEvent {
                role: Role::Produce,
                topic: attributes.topic.clone(),
                tags: None,
                keys: None,
                msg_id: None,
                offset_msg_id: None,
                group: field("producerGroup", "a"),
                queue_id: answered("queueId")
                    .or_else(|| attributes.header("queueId").or(attributes.header("e")))
                    .and_then(|q| q.parse().ok()),
                queue_offset: answered("queueOffset").and_then(|q| q.parse().ok()),
                code: status,
            };
            let offset_ids: Vec<&str> = answered("msgId")
                .map(|ids| ids.split(',').collect())
                .unwrap_or_default();
            let properties: Vec<String> = if code == SEND_BATCH_MESSAGE {
                batch_properties(body(request.as_bytes()))
            } else {
                field("properties", "i").into_iter().collect()
            };
            properties
                .iter()
                .enumerate()
                .map(|(i, props)| MessageEvent {
                    tags: property(props, "TAGS"),
                    keys: property(props, "KEYS"),
                    msg_id: property(props, "UNIQ_KEY"),
                    offset_msg_id: offset_ids.get(i).map(|s| (*s).to_owned()),
                    queue_offset: base.queue_offset.map(|o| o + i as i64),
                    ..base.clone()
                })
                .collect()
        }
        PULL_MESSAGE | LITE_PULL_MESSAGE if status == super::code::SUCCESS => {
            let group = attributes.header("consumerGroup").map(str::to_owned);
            stored_messages(body(response.as_bytes()))
                .into_iter()
                .map(|m| MessageEvent {
                    role: Role::Consume,
                    tags: property(&m.properties, "TAGS"),
                    keys: property(&m.properties, "KEYS"),
                    msg_id: property(&m.properties, "UNIQ_KEY"),
                    offset_msg_id: Some(m.offset_msg_id),
                    topic: Some(m.topic),
                    group: group.clone(),
                    queue_id: Some(m.queue_id),
                    queue_offset: Some(m.queue_offset),
                    code: status,
                })
                .collect()
        }
        _ => Vec::new(),
    }
}

/// A frame's ext fields (none if its header does not parse).
fn ext_fields(frame: &[u8]) -> Vec<(String, String)> {
    let parsed = || {
        let word = u32::from_be_bytes(frame.get(4..8)?.try_into().ok()?);
        let serialize_type = match word >> 24 {
            0 => SerializeType::Json,
            1 => SerializeType::RocketMq,
            _ => return None,
        };
        let header = frame.get(8..8 + (word & 0x00ff_ffff) as usize)?;
        let range = parse_header(serialize_type, header).ok()?.ext_fields?;
        collect_ext_fields(serialize_type, header, range).ok()
    };
    parsed().unwrap_or_default()
}

/// A frame's body (empty if its header length runs past it).
fn body(frame: &[u8]) -> &[u8] {
    super::route::frame_body(frame).unwrap_or_default()
}

/// The value of property `name` in `name\x01value\x02…` text.
pub fn property(properties: &str, name: &str) -> Option<String> {
    pairs(properties)
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// The `name\x01value\x02…` pairs of properties text.
fn pairs(properties: &str) -> impl Iterator<Item = (&str, &str)> {
    properties
        .split('\u{2}')
        .filter_map(|pair| pair.split_once('\u{1}'))
}

fn i64_of(c: &mut Cursor<'_>) -> Option<i64> {
    Some(i64::from_be_bytes(c.take(8)?.try_into().ok()?))
}

/// Each message's properties in a SEND_BATCH_MESSAGE body.
fn batch_properties(body: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut c = Cursor::new(body);
    while !c.is_empty() {
        let mut one = || -> Option<String> {
            let total = usize::try_from(c.i32()?).ok()?;
            let mut m = Cursor::new(c.take(total.checked_sub(4)?)?);
            let _magic = m.i32()?;
            let _crc = m.i32()?;
            let _flag = m.i32()?;
            let body_len = usize::try_from(m.i32()?).ok()?;
            m.take(body_len)?;
            let len = usize::try_from(m.i16()?).ok()?;
            Some(String::from_utf8_lossy(m.take(len)?).into_owned())
        };
        match one() {
            Some(properties) => out.push(properties),
            None => break,
        }
    }
    out
}

/// One message of a pull response, as much as the trace needs.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stored {
    queue_id: i32,
    queue_offset: i64,
    offset_msg_id: String,
    topic: String,
    properties: String,
}

/// The messages of a PULL_MESSAGE response body (store format).
fn stored_messages(body: &[u8]) -> Vec<Stored> {
    let mut out = Vec::new();
    let mut c = Cursor::new(body);
    while !c.is_empty() {
        let mut one = || -> Option<Stored> {
            let total = usize::try_from(c.i32()?).ok()?;
            let mut m = Cursor::new(c.take(total.checked_sub(4)?)?);
            let magic = m.i32()?;
            let _crc = m.i32()?;
            let queue_id = m.i32()?;
            let _flag = m.i32()?;
            let queue_offset = i64_of(&mut m)?;
            let physical = i64_of(&mut m)?;
            let sys_flag = m.i32()?;
            let _born = i64_of(&mut m)?;
            m.take(if sys_flag & BORN_HOST_V6 != 0 { 20 } else { 8 })?;
            let _stored = i64_of(&mut m)?;
            let store_host = m.take(if sys_flag & STORE_HOST_V6 != 0 { 20 } else { 8 })?;
            let _reconsume = m.i32()?;
            let _prepared = i64_of(&mut m)?;
            let body_len = usize::try_from(m.i32()?).ok()?;
            m.take(body_len)?;
            let topic_len = match magic {
                MAGIC_V1 => usize::from(m.u8()?),
                MAGIC_V2 => usize::try_from(m.i16()?).ok()?,
                _ => return None,
            };
            let topic = String::from_utf8_lossy(m.take(topic_len)?).into_owned();
            let len = usize::try_from(m.i16()?).ok()?;
            let properties = String::from_utf8_lossy(m.take(len)?).into_owned();
            let mut offset_msg_id = String::with_capacity(2 * (store_host.len() + 8));
            for b in store_host.iter().chain(&physical.to_be_bytes()) {
                offset_msg_id.push_str(&format!("{b:02X}"));
            }
            Some(Stored {
                queue_id,
                queue_offset,
                offset_msg_id,
                topic,
                properties,
            })
        };
        match one() {
            Some(message) => out.push(message),
            None => break,
        }
    }
    out
}

#[cfg(test)]
mod tests;
