//! A connection at rest: what a paused connection is ([`Parked`]: its
//! id, listener, idle timeout, [`History`] and [`ConnParts`]), here or on
//! its way to the next generation.
//!
//! This is the one form every kind of connection takes between running
//! (the sibling `task` module) and the wire (the handoff's `wire` module, which
//! describes it in the handoff schema and rebuilds it on the other side).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::net::TcpStream;

use crate::l4::pipe::PipeState;
use crate::l4::tunnel::Parts;
use crate::rpc::downstream::RpcParts;

/// A connection's id within one generation (for logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnId(pub u64);

impl std::fmt::Display for ConnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A paused connection: everything needed to resume it, here or in the
/// next generation.
#[derive(Debug)]
pub struct Parked {
    pub id: ConnId,
    /// The accepting listener's name.
    pub listener: Arc<str>,
    pub idle_timeout: Duration,
    pub conn: ConnParts,
    pub history: History,
}

/// A connection's life so far, across generations, for the access log.
#[derive(Debug, Clone, Copy)]
pub struct History {
    pub started: SystemTime,
    /// Bytes moved by earlier generations.
    pub received: u64,
    pub sent: u64,
    /// Upgrades crossed.
    pub moves: u32,
}

impl History {
    pub(crate) fn new() -> History {
        History {
            started: SystemTime::now(),
            received: 0,
            sent: 0,
            moves: 0,
        }
    }

    /// With `(received, sent)` more bytes from this generation.
    pub(crate) fn plus(self, (received, sent): (u64, u64)) -> History {
        History {
            received: self.received + received,
            sent: self.sent + sent,
            ..self
        }
    }
}

/// A paused connection's sockets and state, by kind: what
/// the connection task takes a running connection apart into, and what
/// the handoff describes on the wire and rebuilds.
#[derive(Debug)]
pub enum ConnParts {
    Tunnel {
        parts: Parts,
        cluster: Arc<str>,
        upstream: SocketAddr,
    },
    Echo {
        client: TcpStream,
        pipe: PipeState,
    },
    Rpc(RpcParts),
    /// An HTTP/1.1 connection between requests — or, on a TLS listener,
    /// a connection whose client has not sent its ClientHello yet
    /// (`pending` empty).
    Http {
        client: TcpStream,
        pending: Vec<u8>,
    },
}
