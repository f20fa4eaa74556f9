//! `rocketmq_routes`: an RPC filter for a RocketMQ listener in front of
//! name servers, which rewrites each real broker address in the name
//! server's answers (route info, cluster info, broker member group) to
//! the address of the baton listener that fronts that broker — so that a
//! client that knows only baton (as its name server) reaches every broker
//! through baton too. The rewriting itself is
//! [`crate::codec::rocketmq::route`] (pure, on the answer's bytes).
//!
//! Built from the listener's `rocketmq_brokers` (config: real broker
//! address → name of a listener). The address a client is given for a
//! broker is that listener's bound address; when it is bound to an
//! unspecified IP (`0.0.0.0`, `[::]`), the IP is the one the client
//! reached this listener on (its connection's local address), with the
//! broker listener's port — the address under which the client can
//! already reach baton. Envoy's RocketMQ proxy does the same with its own
//! address, only it answers route queries itself, from cluster metadata,
//! with one listener for all brokers; baton keeps the name server in the
//! loop (topics, queues, permissions, broker failover stay its answers)
//! and gives each broker its own listener, so that routing a connection
//! needs no knowledge of which broker a request is for.
//!
//! Brokers are matched by their address as the name server writes it
//! (`brokerIP1:port`); the config parses it as `ip:port`, so an IPv6
//! broker — which Java writes without brackets — cannot be named yet.
//!
//! Stateless per connection beyond the address map: it moves.

use std::net::SocketAddr;

use tracing::{debug, warn};

use crate::codec::Frame;
use crate::codec::rocketmq::route::{AddrMap, carries_addresses, rewrite_answer};
use crate::filter::rpc::{RpcAction, RpcFilter, RpcFrameFilter};
use crate::filter::{ConnInfo, Mobility};

/// RocketMQ's SUCCESS response code: only successful answers carry routes.
const SUCCESS: i32 = 0;

/// Real brokers and the bound addresses of the listeners fronting them.
#[derive(Debug, Clone)]
pub(crate) struct RocketMqRoutes {
    brokers: Vec<(SocketAddr, SocketAddr)>,
}

impl RocketMqRoutes {
    /// From `(real broker, bound address of its listener)` pairs.
    pub(crate) fn new(brokers: Vec<(SocketAddr, SocketAddr)>) -> RocketMqRoutes {
        RocketMqRoutes { brokers }
    }

    /// The map for a client that reached the name-server listener at
    /// `local`.
    fn map_for(&self, local: Option<SocketAddr>) -> AddrMap {
        let pairs = self.brokers.iter().map(|(broker, listener)| {
            let advertised = match local {
                Some(local) if listener.ip().is_unspecified() => {
                    SocketAddr::new(local.ip(), listener.port())
                }
                _ => *listener,
            };
            (broker.to_string(), advertised.to_string())
        });
        // The config refuses a listener named for two brokers and a broker
        // named twice, so the pairs are one to one.
        AddrMap::new(pairs).unwrap_or_else(|e| {
            warn!(error = %e, "rocketmq_brokers: answers pass unrewritten");
            AddrMap::default()
        })
    }
}

impl RpcFilter for RocketMqRoutes {
    fn name(&self) -> &'static str {
        "rocketmq_routes"
    }

    fn mobility(&self) -> Mobility {
        Mobility::Moves
    }

    fn connection(&self, conn: &ConnInfo) -> Box<dyn RpcFrameFilter> {
        Box::new(Rewriting {
            map: self.map_for(conn.local),
        })
    }
}

/// One client connection's rewriting.
#[derive(Debug)]
struct Rewriting {
    map: AddrMap,
}

impl RpcFrameFilter for Rewriting {
    fn on_response(&mut self, response: &mut Frame, request: &Frame) -> RpcAction {
        let code = request.attributes().code;
        if response.status() != Some(SUCCESS) || !code.is_some_and(carries_addresses) {
            return RpcAction::Continue;
        }
        match rewrite_answer(response, &self.map) {
            Ok((rewritten, unmapped)) => {
                if !unmapped.is_empty() {
                    // A broker the config does not name (one that joined
                    // later?): the client will dial it directly.
                    warn!(
                        ?code,
                        brokers = ?unmapped,
                        "rocketmq_brokers: name-server answer names brokers without a listener; left as they are"
                    );
                }
                if let Some(frame) = rewritten {
                    *response = frame;
                }
            }
            // Forwarded unchanged: the client still gets its answer.
            Err(e) => debug!(?code, error = %e, "name-server answer not rewritten"),
        }
        RpcAction::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::rocketmq::route::frame_body;
    use crate::codec::{CodecConfig, Protocol};
    use crate::filter::rpc::RpcChain;
    use bytes::BytesMut;
    use std::sync::Arc;

    const ROUTE: &[u8] =
        include_bytes!("../../codec/rocketmq/fixtures/get_routeinfo_by_topic.v479.frame");

    /// A JSON-header request with `code` and opaque 7.
    fn request(code: i32) -> Vec<u8> {
        let header = format!(
            r#"{{"code":{code},"extFields":{{"topic":"T"}},"flag":0,"language":"JAVA","opaque":7,"serializeTypeCurrentRPC":"JSON","version":479}}"#
        );
        let mut out = Vec::new();
        out.extend_from_slice(&(4 + header.len() as u32).to_be_bytes());
        out.extend_from_slice(&(header.len() as u32).to_be_bytes());
        out.extend_from_slice(header.as_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Frame {
        let mut codec = Protocol::RocketMq.codec(CodecConfig::default());
        codec.decode(&mut BytesMut::from(bytes)).unwrap().unwrap()
    }

    fn answer(routes: RocketMqRoutes, local: Option<SocketAddr>, code: i32) -> Frame {
        let chain = RpcChain::new(vec![Arc::new(routes)]);
        let mut filters = chain.connection(&ConnInfo {
            listener: Arc::from("namesrv"),
            source: None,
            local,
        });
        let codec = Protocol::RocketMq.codec(CodecConfig::default());
        let mut request = decode(&request(code));
        let _ = filters.request(&mut request, &codec);
        let mut response = decode(ROUTE);
        let _ = filters.response(&mut response, &request, &codec);
        response
    }

    fn body(frame: &Frame) -> String {
        String::from_utf8(frame_body(frame.as_bytes()).unwrap().to_vec()).unwrap()
    }

    #[test]
    fn route_answers_name_the_brokers_listener() {
        let routes = RocketMqRoutes::new(vec![(
            "127.0.0.1:10911".parse().unwrap(),
            "127.0.0.1:7001".parse().unwrap(),
        )]);
        let out = answer(routes, None, 105);
        assert!(
            body(&out).contains(r#""brokerAddrs":{"0":"127.0.0.1:7001"}"#),
            "{}",
            body(&out)
        );
        assert_eq!(out.status(), Some(0));
        assert_eq!(out.request_id(), decode(ROUTE).request_id());
    }

    #[test]
    fn an_unspecified_bind_is_advertised_as_the_clients_local_ip() {
        let routes = RocketMqRoutes::new(vec![(
            "127.0.0.1:10911".parse().unwrap(),
            "0.0.0.0:7001".parse().unwrap(),
        )]);
        let out = answer(routes, Some("10.1.2.3:9876".parse().unwrap()), 105);
        assert!(body(&out).contains(r#""10.1.2.3:7001""#), "{}", body(&out));
    }

    #[test]
    fn answers_to_other_requests_and_unmapped_brokers_pass_unchanged() {
        let other = RocketMqRoutes::new(vec![(
            "127.0.0.1:10911".parse().unwrap(),
            "127.0.0.1:7001".parse().unwrap(),
        )]);
        // SEND_MESSAGE: not a route request.
        assert_eq!(answer(other, None, 10).as_bytes(), ROUTE);
        let unmapped = RocketMqRoutes::new(vec![(
            "10.9.9.9:10911".parse().unwrap(),
            "127.0.0.1:7001".parse().unwrap(),
        )]);
        assert_eq!(answer(unmapped, None, 105).as_bytes(), ROUTE);
    }
}
