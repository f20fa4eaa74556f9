//! A connection at rest: what a paused connection is ([`Parked`]: its
//! id, listener, idle timeout, [`History`] and [`ConnParts`]), here or on
//! its way to the next generation; and the registry of kinds (`kinds!`),
//! which builds the enums that dispatch to them: [`ConnParts`] (parked)
//! and [`ConnKind`] (the wire form the handoff schema writes).
//!
//! This is the one form every kind of connection takes between running
//! (the sibling `task` module) and the wire (the handoff's `wire` module, which
//! describes it in the handoff schema and rebuilds it on the other side).

use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;

use crate::http::parked::{HttpWire, ParkedH1};
use crate::kind::{Encode, Env, Fds, Kind, Live, Resume, Task, WireError, WireForm};
use crate::l4::parked::{EchoWire, ParkedEcho, ParkedTunnel, SpilledTunnelWire, TunnelWire};
use crate::rpc::downstream::RpcParts;
use crate::rpc::parked::{RpcWire, RpcWireV7};

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
    /// A PROXY protocol header's addresses, when it came with one.
    pub(crate) ends: Option<crate::kind::Ends>,
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

/// The kinds of connection that can be parked, and their wire forms:
/// the one list generic code dispatches through (see [`crate::kind`] and
/// the `conn` module doc's checklist).
///
/// `parked` lists each kind once, as `Variant(its parked type)`: it builds
/// [`ConnParts`]. `wire` lists every wire form, as `Variant(its type)`, in
/// the order the handoff schema writes them (by index): it builds
/// [`ConnKind`]. A new form goes at the end of `wire`, and with a new
/// schema version (its `SINCE`); never reorder either list's wire part.
macro_rules! kinds {
    (
        parked { $($kind:ident($parts:ty),)* }
        wire { $($form:ident($wire:ty),)* }
    ) => {
        /// A paused connection's sockets and state, by kind: what the
        /// connection task takes a running connection apart into, and what
        /// the handoff describes on the wire and rebuilds.
        #[derive(Debug)]
        pub enum ConnParts {
            $($kind($parts),)*
        }

        $(impl From<$parts> for ConnParts {
            fn from(parts: $parts) -> ConnParts {
                ConnParts::$kind(parts)
            }
        })*

        impl ConnParts {
            /// The kind's name, for logs and errors.
            pub fn name(&self) -> &'static str {
                match self {
                    $(ConnParts::$kind(_) => <$parts as Kind>::NAME,)*
                }
            }

            /// Its units of the fd budget when its listener is gone.
            pub fn fd_units(&self) -> u32 {
                match self {
                    $(ConnParts::$kind(_) => <$parts as Kind>::FD_UNITS,)*
                }
            }

            /// The fds that travel with it, in wire order (a spill memfd
            /// goes after them).
            pub fn fds(&self) -> Vec<BorrowedFd<'_>> {
                match self {
                    $(ConnParts::$kind(parts) => parts.fds(),)*
                }
            }

            /// Its client's socket.
            pub fn client(&self) -> &TcpStream {
                match self {
                    $(ConnParts::$kind(parts) => parts.client(),)*
                }
            }

            /// Its running form on `site`, in this generation; `None`
            /// when it cannot run there (it closes).
            pub(crate) fn resume<W>(self, site: &W::Site, env: Env) -> Option<Box<dyn Live<W>>>
            where
                W: Task,
                $($parts: Resume<W>,)*
            {
                match self {
                    $(ConnParts::$kind(parts) => parts.resume(site, env),)*
                }
            }

            /// Its wire form, and the memfd holding its large pending
            /// bytes, if any.
            pub fn encode(&self) -> Result<(ConnKind, Option<OwnedFd>), WireError> {
                match self {
                    $(ConnParts::$kind(parts) => Encode::<ConnKind>::encode(parts),)*
                }
            }
        }

        /// What a connection is on the handoff channel, with the state that
        /// moves with it (each form's fds are listed on its type). Written
        /// by variant index, then the form's fields in order: never reorder
        /// them; a new one is a new schema version.
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        pub enum ConnKind {
            $($form($wire),)*
        }

        $(impl From<$wire> for ConnKind {
            fn from(wire: $wire) -> ConnKind {
                ConnKind::$form(wire)
            }
        })*

        impl ConnKind {
            /// How many fds travel with a connection of this form.
            pub fn fd_count(&self) -> usize {
                match self {
                    $(ConnKind::$form(wire) => wire.fd_count(),)*
                }
            }

            /// The form's name, for logs and errors.
            pub fn name(&self) -> &'static str {
                match self {
                    $(ConnKind::$form(_) => <$wire as WireForm>::NAME,)*
                }
            }

            /// The first handoff schema version that writes this form.
            pub fn since(&self) -> u16 {
                match self {
                    $(ConnKind::$form(_) => <$wire as WireForm>::SINCE,)*
                }
            }

            /// The parked connection it describes, its fds taken from
            /// `fds`.
            pub fn adopt(self, fds: &mut Fds) -> Result<ConnParts, WireError> {
                match self {
                    $(ConnKind::$form(wire) => wire.adopt(fds).map(ConnParts::from),)*
                }
            }
        }
    };
}

kinds! {
    parked {
        Tunnel(ParkedTunnel),
        Echo(ParkedEcho),
        Rpc(RpcParts),
        Http(ParkedH1),
    }
    wire {
        Tunnel(TunnelWire),
        Echo(EchoWire),
        Rpc(RpcWire),
        Http(HttpWire),
        SpilledTunnel(SpilledTunnelWire),
        RpcV7(RpcWireV7),
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::time::Duration;

    use tokio::net::TcpStream;
    use tokio::sync::mpsc;

    use super::*;
    use crate::http::HttpContext;
    use crate::http::error::SessionError;
    use crate::kind::{Mobility, Provides, Site};
    use crate::l4::live::Balancers;
    use crate::l4::pipe::PipeState;
    use crate::l4::tap::Tap;
    use crate::rpc::Outbound;
    use crate::rpc::downstream::{Context as RpcContext, DownstreamError};
    use crate::telemetry::meters::ByteMeter;
    use crate::upstream::lb::Load;

    /// A task that only resumes and parks.
    struct Bare;

    /// Why a connection failed: not looked at here.
    #[derive(Debug)]
    struct Failed;

    impl From<std::io::Error> for Failed {
        fn from(_: std::io::Error) -> Failed {
            Failed
        }
    }

    impl From<SessionError> for Failed {
        fn from(_: SessionError) -> Failed {
            Failed
        }
    }

    impl From<DownstreamError> for Failed {
        fn from(_: DownstreamError) -> Failed {
            Failed
        }
    }

    impl Task for Bare {
        type Stop = ();
        type Failure = Failed;
        type Parts = ConnParts;
        type Inbox = mpsc::UnboundedSender<Outbound>;
        type Site = Gone;

        fn deadline() {}
    }

    /// A listener that is gone from the config: it provides nothing.
    struct Gone;

    impl Site for Gone {
        fn listener(&self) -> &str {
            "gone"
        }
    }

    impl Provides<HttpContext> for Gone {
        fn provide(&self, _: &TcpStream) -> Option<HttpContext> {
            None
        }
    }

    impl Provides<RpcContext> for Gone {
        fn provide(&self, _: &TcpStream) -> Option<RpcContext> {
            None
        }
    }

    impl Provides<Box<dyn Tap>> for Gone {
        fn provide(&self, _: &TcpStream) -> Option<Box<dyn Tap>> {
            None
        }
    }

    impl Balancers for Gone {
        fn load_of(&self, _: &str, _: SocketAddr) -> Option<Load> {
            None
        }

        fn connection_of(&self, _: &str) -> Option<crate::upstream::breaker::Permit> {
            None
        }
    }

    async fn socket() -> (TcpStream, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ours = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (peer, _) = listener.accept().await.unwrap();
        (ours, peer)
    }

    fn env() -> Env {
        Env {
            idle_timeout: Duration::from_secs(60),
            bytes: Arc::new(ByteMeter::default()),
            ends: None,
        }
    }

    /// Parked → running → parked gives back what was parked, through the
    /// registry alone; a kind whose listener context is gone does not
    /// resume (it closes), and one that needs none does.
    #[tokio::test]
    async fn a_parked_kind_resumes_and_parks_back_through_the_registry() {
        let ((client, _c), (upstream, _u)) = (socket().await, socket().await);
        let pending = |bytes: &[u8]| PipeState {
            pending: bytes.to_vec(),
            read_closed: false,
            write_closed: false,
        };
        let tunnel = ConnParts::from(ParkedTunnel {
            parts: crate::l4::tunnel::Parts {
                client,
                upstream,
                c2u: pending(b"up"),
                u2c: pending(b"down"),
            },
            cluster: Arc::from("back"),
            upstream: "127.0.0.1:9".parse().unwrap(),
        });
        let live = tunnel
            .resume::<Bare>(&Gone, env())
            .expect("a tunnel needs no context");
        assert_eq!(live.mobility(), Mobility::Moves, "no filters: it moves");
        assert_eq!(
            live.upstream().map(|(c, _)| c.to_string()).as_deref(),
            Some("back")
        );
        let Some(ConnParts::Tunnel(back)) = live.park() else {
            panic!("a tunnel parks as a tunnel")
        };
        assert_eq!(back.parts.c2u.pending, b"up");
        assert_eq!(back.parts.u2c.pending, b"down");

        let (client, _peer) = socket().await;
        let echo = ConnParts::from(ParkedEcho {
            client,
            pipe: pending(b"echo"),
        });
        let live = echo
            .resume::<Bare>(&Gone, env())
            .expect("an echo needs no context");
        let Some(ConnParts::Echo(back)) = live.park() else {
            panic!("an echo parks as an echo")
        };
        assert_eq!(back.pipe.pending, b"echo");

        let (client, _peer) = socket().await;
        let http = ConnParts::from(ParkedH1 {
            client,
            pending: b"GET / HTTP/1.1\r\n".to_vec(),
        });
        assert_eq!(http.name(), "http1");
        assert!(http.resume::<Bare>(&Gone, env()).is_none());
    }
}
