//! Binding the listening sockets the supervisor keeps for its whole life.
//!
//! Each socket is bound once, here, and never closed by an upgrade or a
//! worker crash: workers get duplicates over ctrl. While no worker accepts
//! (a crash, a restart), the kernel keeps queueing connections up to the
//! backlog, so clients wait instead of being refused.
//!
//! A listener with `original_destination = "tproxy"` is bound with
//! `IP_TRANSPARENT` (IPv4) or `IPV6_TRANSPARENT` (IPv6), set before
//! `bind(2)`: TPROXY (nftables `tproxy to :PORT`) only delivers a
//! connection for a foreign address to a transparent listening socket,
//! and the accepted socket's local address is then the address the client
//! connected to. Setting the option needs `CAP_NET_ADMIN` (the systemd
//! unit's `AmbientCapabilities=`, when it runs as an unprivileged user);
//! without it the bind fails with EPERM and names the option.
//!
//! A `protocol = "udp"` listener is a UDP socket (`SOCK_DGRAM`), bound
//! and not listening (UDP has no `listen(2)`): it travels to the worker
//! over ctrl exactly like a listening one, and datagrams that arrive
//! while no worker reads queue in its receive buffer instead of an accept
//! queue. `SO_REUSEADDR` is set on it too (harmless for UDP, and it lets
//! a restarted supervisor bind while the old socket is being closed);
//! never `SO_REUSEPORT`, which would split a client's datagrams between
//! sockets. A socket is kept across configs only by a listener of the
//! same kind: a listener that turns from tcp to udp gets a new socket.
//!
//! A udp listener with `original_destination = "tproxy"` is transparent
//! too, and also gets `IP_RECVORIGDSTADDR` (`IPV6_RECVORIGDSTADDR`): a
//! datagram has no accepted socket whose local address would tell where
//! it was going, so the kernel attaches its original destination to each
//! one, for the worker's `recvmsg(2)` (`worker/src/udp/tproxy.rs`).

use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use baton_config::ListenerBind;
use socket2::{Domain, Protocol, Socket, Type};
use tracing::{info, warn};

/// A bound, listening socket and its name.
#[derive(Debug)]
pub(crate) struct BoundListener {
    pub name: String,
    /// Where it is bound (the kernel's choice when the config says port 0).
    pub address: SocketAddr,
    /// The address as the config wrote it: what a new config must repeat
    /// for the socket to be kept.
    pub configured: SocketAddr,
    /// A UDP socket (`protocol = "udp"`), not a listening stream one.
    pub datagram: bool,
    socket: Socket,
}

impl AsFd for BoundListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("listener {name:?}: {op} {address}: {source}")]
pub struct BindError {
    pub name: String,
    pub address: SocketAddr,
    pub op: &'static str,
    #[source]
    pub source: std::io::Error,
}

/// Binds and listens (a UDP socket: binds only); close-on-exec (socket2's default on Linux), so only
/// the copies sent over ctrl ever reach a worker.
pub(crate) fn bind(spec: &ListenerBind) -> Result<BoundListener, BindError> {
    let address = spec.address;
    let fail = |op| {
        let name = spec.name.clone();
        move |source| BindError {
            name,
            address,
            op,
            source,
        }
    };
    let (kind, protocol) = if spec.datagram() {
        (Type::DGRAM, Protocol::UDP)
    } else {
        (Type::STREAM, Protocol::TCP)
    };
    let socket =
        Socket::new(Domain::for_address(address), kind, Some(protocol)).map_err(fail("socket"))?;
    // Lets a restarted supervisor bind while old connections sit in
    // TIME_WAIT.
    socket
        .set_reuse_address(true)
        .map_err(fail("SO_REUSEADDR"))?;
    if address.is_ipv6() {
        // `[::]:80` and `0.0.0.0:80` can then be two listeners.
        socket.set_only_v6(true).map_err(fail("IPV6_V6ONLY"))?;
    }
    if spec.transparent() {
        set_transparent(&socket, address, true).map_err(fail(transparent_option(address)))?;
    }
    if spec.datagram() {
        set_recv_original_destination(&socket, address, spec.transparent())
            .map_err(fail(recv_original_destination_option(address)))?;
    }
    socket.bind(&address.into()).map_err(fail("bind"))?;
    if !spec.datagram() {
        let backlog = i32::try_from(spec.backlog).unwrap_or(i32::MAX);
        socket.listen(backlog).map_err(fail("listen"))?;
    }
    let address = socket
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .unwrap_or(address);
    Ok(BoundListener {
        name: spec.name.clone(),
        address,
        configured: spec.address,
        datagram: spec.datagram(),
        socket,
    })
}

/// `IP_TRANSPARENT` or `IPV6_TRANSPARENT`, by the address's family.
fn set_transparent(socket: &Socket, address: SocketAddr, on: bool) -> std::io::Result<()> {
    if address.is_ipv6() {
        socket.set_ip_transparent_v6(on)
    } else {
        socket.set_ip_transparent_v4(on)
    }
}

/// `IP_RECVORIGDSTADDR` or `IPV6_RECVORIGDSTADDR`, by the address's
/// family.
fn set_recv_original_destination(
    socket: &Socket,
    address: SocketAddr,
    on: bool,
) -> std::io::Result<()> {
    use nix::sys::socket::{setsockopt, sockopt};
    if address.is_ipv6() {
        setsockopt(socket, sockopt::Ipv6OrigDstAddr, &on)?;
    } else {
        setsockopt(socket, sockopt::Ipv4OrigDstAddr, &on)?;
    }
    Ok(())
}

fn recv_original_destination_option(address: SocketAddr) -> &'static str {
    if address.is_ipv6() {
        "IPV6_RECVORIGDSTADDR"
    } else {
        "IP_RECVORIGDSTADDR"
    }
}

fn transparent_option(address: SocketAddr) -> &'static str {
    if address.is_ipv6() {
        "IPV6_TRANSPARENT (needs CAP_NET_ADMIN)"
    } else {
        "IP_TRANSPARENT (needs CAP_NET_ADMIN)"
    }
}

/// The listening sockets one generation uses, in config order. Sockets are
/// shared between the sets of consecutive generations, and closed when the
/// last set holding them is dropped.
#[derive(Debug, Clone, Default)]
pub(crate) struct ListenerSet {
    pub listeners: Vec<Arc<BoundListener>>,
}

impl ListenerSet {
    /// Binds every listener, or none: on the first failure the ones already
    /// bound are closed again. (The supervisor binds with
    /// [`ListenerSet::adopt_or_bind`]; this is its case with nothing
    /// inherited, for tests.)
    #[cfg(test)]
    pub(crate) fn bind_all(specs: &[ListenerBind]) -> Result<ListenerSet, BindError> {
        ListenerSet::default().next(specs)
    }

    /// Binds every listener, or none, except that a listener whose name
    /// matches a socket handed over by systemd (socket activation, or the
    /// fd store after a restart) and whose address fits takes that socket: its
    /// accept queue, with the clients waiting in it, carries over. Sockets
    /// no listener claims are closed.
    pub(crate) fn adopt_or_bind(
        specs: &[ListenerBind],
        inherited: Vec<(String, OwnedFd)>,
    ) -> Result<ListenerSet, BindError> {
        let mut adopted = Vec::new();
        for (name, fd) in inherited {
            let socket = Socket::from(fd);
            let Some(spec) = specs.iter().find(|s| s.name == name) else {
                warn!(%name, "systemd passed a socket no listener is named after; closing it");
                continue;
            };
            let local = socket.local_addr().ok().and_then(|a| a.as_socket());
            let fits = local.is_some_and(|local| {
                local.ip() == spec.address.ip()
                    && (spec.address.port() == 0 || local.port() == spec.address.port())
            });
            let kind_fits = if spec.datagram() {
                socket.r#type().is_ok_and(|t| t == Type::DGRAM)
            } else {
                socket.is_listener().unwrap_or(false)
            };
            if !fits || !kind_fits {
                warn!(%name, ?local, wanted = %spec.address, "the socket systemd passed does not fit the listener; binding anew");
                continue;
            }
            info!(%name, address = ?local, "listener from systemd");
            adopted.push(Arc::new(BoundListener {
                name,
                address: local.unwrap_or(spec.address),
                configured: spec.address,
                datagram: spec.datagram(),
                socket,
            }));
        }
        ListenerSet { listeners: adopted }.next(specs)
    }

    /// The set for a new config: a listener with the same name and
    /// configured address keeps its socket (its accept queue, its clients
    /// waiting in it); any other is bound now. Nothing of `self` changes,
    /// so a failed upgrade just drops the result.
    pub(crate) fn next(&self, specs: &[ListenerBind]) -> Result<ListenerSet, BindError> {
        let mut listeners = Vec::with_capacity(specs.len());
        for spec in specs {
            let kept = self.listeners.iter().find(|l| {
                l.name == spec.name && l.configured == spec.address && l.datagram == spec.datagram()
            });
            let listener = match kept {
                Some(kept) => {
                    // listen(2) again on a listening socket only resizes its
                    // queue: a changed backlog applies without a rebind.
                    let backlog = i32::try_from(spec.backlog).unwrap_or(i32::MAX);
                    if !kept.datagram {
                        kept.socket.listen(backlog).map_err(|source| BindError {
                            name: spec.name.clone(),
                            address: spec.address,
                            op: "listen",
                            source,
                        })?;
                    }
                    // `original_destination` changed to or from "tproxy":
                    // the option applies to a bound socket too, so the
                    // socket (and its queue) is kept.
                    set_transparent(&kept.socket, spec.address, spec.transparent()).map_err(
                        |source| BindError {
                            name: spec.name.clone(),
                            address: spec.address,
                            op: transparent_option(spec.address),
                            source,
                        },
                    )?;
                    if kept.datagram {
                        set_recv_original_destination(
                            &kept.socket,
                            spec.address,
                            spec.transparent(),
                        )
                        .map_err(|source| BindError {
                            name: spec.name.clone(),
                            address: spec.address,
                            op: recv_original_destination_option(spec.address),
                            source,
                        })?;
                    }
                    Arc::clone(kept)
                }
                None => Arc::new(bind(spec)?),
            };
            listeners.push(listener);
        }
        Ok(ListenerSet { listeners })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(address: &str) -> ListenerBind {
        ListenerBind {
            name: "t".into(),
            address: address.parse().unwrap(),
            backlog: 16,
            original_destination: None,
            protocol: None,
        }
    }

    /// A udp listener is a bound datagram socket; a config that turns it
    /// into a tcp one gets a new (listening) socket on the same name.
    #[test]
    fn udp_listeners_are_datagram_sockets_kept_only_as_such() {
        let udp = ListenerBind {
            protocol: Some("udp".into()),
            ..spec("127.0.0.1:0")
        };
        let set = ListenerSet::bind_all(std::slice::from_ref(&udp)).unwrap();
        let bound = &set.listeners[0];
        assert_eq!(bound.socket.r#type().unwrap(), Type::DGRAM);
        assert_ne!(bound.address.port(), 0);
        let again = set.next(std::slice::from_ref(&udp)).unwrap();
        assert!(Arc::ptr_eq(bound, &again.listeners[0]), "same socket");
        let tcp = spec("127.0.0.1:0");
        let turned = set.next(&[tcp]).unwrap();
        assert!(!Arc::ptr_eq(bound, &turned.listeners[0]), "a new socket");
        assert!(turned.listeners[0].socket.is_listener().unwrap());
    }

    /// A tproxy udp listener is transparent and asks for each datagram's
    /// original destination; a kept socket follows a config that drops
    /// `original_destination`.
    #[test]
    fn tproxy_udp_listeners_receive_original_destinations() {
        use nix::sys::socket::{getsockopt, sockopt};
        for address in ["127.0.0.1:0", "[::1]:0"] {
            let tproxy = ListenerBind {
                original_destination: Some("tproxy".into()),
                protocol: Some("udp".into()),
                ..spec(address)
            };
            let set = ListenerSet::bind_all(std::slice::from_ref(&tproxy)).unwrap();
            let asks = |set: &ListenerSet| {
                let socket = &set.listeners[0].socket;
                if address.starts_with('[') {
                    (
                        socket.ip_transparent_v6().unwrap(),
                        getsockopt(socket, sockopt::Ipv6OrigDstAddr).unwrap(),
                    )
                } else {
                    (
                        socket.ip_transparent_v4().unwrap(),
                        getsockopt(socket, sockopt::Ipv4OrigDstAddr).unwrap(),
                    )
                }
            };
            assert_eq!(asks(&set), (true, true), "{address}");
            let plain = ListenerBind {
                original_destination: None,
                ..tproxy
            };
            let next = set.next(&[plain]).unwrap();
            assert!(Arc::ptr_eq(&next.listeners[0], &set.listeners[0]));
            assert_eq!(asks(&next), (false, false), "{address}");
        }
    }

    /// `original_destination = "tproxy"`: bound transparent, for either
    /// family (this runs as root in the project's test environments, as
    /// TPROXY itself needs); a kept socket follows a config that drops it.
    #[test]
    fn tproxy_listeners_are_transparent() {
        for address in ["127.0.0.1:0", "[::1]:0"] {
            let tproxy = ListenerBind {
                original_destination: Some("tproxy".into()),
                ..spec(address)
            };
            let bound = bind(&tproxy).unwrap();
            let on = if bound.address.is_ipv6() {
                bound.socket.ip_transparent_v6()
            } else {
                bound.socket.ip_transparent_v4()
            };
            assert!(on.unwrap(), "{address}");
            let set = ListenerSet {
                listeners: vec![Arc::new(bound)],
            };
            let redirect = ListenerBind {
                original_destination: Some("redirect".into()),
                ..spec(address)
            };
            let next = set.next(&[redirect]).unwrap();
            let kept = &next.listeners[0];
            assert!(Arc::ptr_eq(kept, &set.listeners[0]), "same socket");
            let on = if kept.address.is_ipv6() {
                kept.socket.ip_transparent_v6()
            } else {
                kept.socket.ip_transparent_v4()
            };
            assert!(!on.unwrap(), "{address}");
        }
    }

    #[test]
    fn binds_v4_and_v6_with_kernel_ports() {
        let v4 = bind(&spec("127.0.0.1:0")).unwrap();
        assert_ne!(v4.address.port(), 0);
        let v6 = bind(&spec("[::1]:0")).unwrap();
        assert!(v6.address.is_ipv6());
        // Accepts through the kernel queue even though nobody calls accept.
        std::net::TcpStream::connect(v4.address).unwrap();
    }

    #[test]
    fn a_new_set_keeps_matching_sockets_and_binds_the_rest() {
        let a = spec("127.0.0.1:0");
        let first = ListenerSet::bind_all(std::slice::from_ref(&a)).unwrap();
        let b = ListenerBind {
            name: "u".into(),
            ..spec("127.0.0.1:0")
        };
        let second = first.next(&[a.clone(), b]).unwrap();
        assert!(
            Arc::ptr_eq(&first.listeners[0], &second.listeners[0]),
            "same name and address: same socket"
        );
        assert_eq!(second.listeners.len(), 2);
        let moved = ListenerBind {
            address: "[::1]:0".parse().unwrap(),
            ..a
        };
        let third = second.next(&[moved]).unwrap();
        assert!(
            !Arc::ptr_eq(&second.listeners[0], &third.listeners[0]),
            "a new address is a new socket"
        );
    }

    #[test]
    fn a_taken_address_names_the_listener_and_the_step() {
        let first = bind(&spec("127.0.0.1:0")).unwrap();
        let err = bind(&spec(&first.address.to_string())).unwrap_err();
        assert_eq!(err.op, "bind");
        assert!(
            err.to_string()
                .starts_with("listener \"t\": bind 127.0.0.1:"),
            "{err}"
        );
    }
}
