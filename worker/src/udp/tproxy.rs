//! TPROXY for udp listeners (`original_destination = "tproxy"`): where
//! each datagram was going, and replies that come from there.
//!
//! A datagram diverted by an nftables `tproxy to :PORT` rule (`baton
//! intercept install --outbound-udp-port`) keeps its destination address:
//! nothing is rewritten, the kernel hands it to the transparent listening
//! socket as it is. A UDP socket has no per-peer local address to read
//! back (as an accepted tcp socket has), so the destination travels with
//! each datagram instead: the supervisor sets `IP_RECVORIGDSTADDR`
//! (IPv4) or `IPV6_RECVORIGDSTADDR` (IPv6) on the listening socket, and
//! [`recv`] reads every datagram with `recvmsg(2)`, taking its original
//! destination from the `IP_ORIGDSTADDR` / `IPV6_ORIGDSTADDR` control
//! message. A datagram sent to the listener's own port was not diverted
//! (a diverted one keeps the port it was going to): it has no original
//! destination, as for tcp (`conn::destination`).
//!
//! The client sent to the original destination, and a client with a
//! connected UDP socket (a resolver's, say) takes only datagrams from
//! there. So replies cannot leave through the listening socket: each flow
//! with an original destination gets a **reply socket**
//! ([`reply_socket`]), `IP_TRANSPARENT` (which lets it bind an address
//! that is not this host's; it needs `CAP_NET_ADMIN`, as the listener
//! does) and `SO_REUSEADDR` (so that every client's flow to one
//! destination has its own), bound to the original destination, from
//! which the flow `sendto(2)`s its replies to the client. It is never
//! connected, so TPROXY's lookup of an established socket passes it by
//! (the kernel returns only connected UDP sockets there) and the
//! client's next datagrams keep arriving at the listener.

use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::AsFd;

use nix::sys::socket::{
    ControlMessageOwned, MsgFlags, SockaddrIn, SockaddrIn6, SockaddrLike, SockaddrStorage, recvmsg,
    setsockopt, sockopt,
};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Asks the kernel for each datagram's original destination (what
/// [`recv`] reads): `IP_RECVORIGDSTADDR` or `IPV6_RECVORIGDSTADDR` by
/// the socket's family. No capability needed.
pub(crate) fn receive_original_destinations(socket: &impl AsFd, ipv6: bool) -> io::Result<()> {
    if ipv6 {
        setsockopt(socket, sockopt::Ipv6OrigDstAddr, &true)?;
    } else {
        setsockopt(socket, sockopt::Ipv4OrigDstAddr, &true)?;
    }
    Ok(())
}

/// Reads a datagram into `buf`: its length, its sender, and its original
/// destination (`None` when it has none: sent to `listening`'s port, or
/// read without the control message).
pub(crate) async fn recv(
    socket: &UdpSocket,
    buf: &mut [u8],
    listening: Option<SocketAddr>,
) -> io::Result<(usize, SocketAddr, Option<SocketAddr>)> {
    let (n, client, destination) = socket
        .async_io(Interest::READABLE, || recv_now(socket, buf))
        .await?;
    let diverted = destination.filter(|d| listening.map(|l| l.port()) != Some(d.port()));
    Ok((n, client, diverted))
}

/// One `recvmsg(2)`, which fails with `WouldBlock` when nothing is
/// queued (the socket is non-blocking).
#[expect(
    clippy::disallowed_methods,
    reason = "nix's recvmsg takes the fd's number; the socket stays borrowed for the call"
)]
fn recv_now(
    socket: &UdpSocket,
    buf: &mut [u8],
) -> io::Result<(usize, SocketAddr, Option<SocketAddr>)> {
    use std::os::fd::AsRawFd;
    let mut control = nix::cmsg_space!(nix::libc::sockaddr_in6);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = recvmsg::<SockaddrStorage>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut control),
        MsgFlags::empty(),
    )?;
    let client = msg
        .address
        .as_ref()
        .and_then(socket_addr)
        .ok_or_else(|| io::Error::other("a datagram without an IP source address"))?;
    let destination = msg.cmsgs().ok().and_then(|mut all| {
        all.find_map(|c| match c {
            ControlMessageOwned::Ipv4OrigDstAddr(a) => {
                Some(SocketAddr::V4(SockaddrIn::from(a).into()))
            }
            ControlMessageOwned::Ipv6OrigDstAddr(a) => {
                Some(SocketAddr::V6(SockaddrIn6::from(a).into()))
            }
            _ => None,
        })
    });
    Ok((msg.bytes, client, destination))
}

fn socket_addr(address: &SockaddrStorage) -> Option<SocketAddr> {
    match address.family() {
        Some(nix::sys::socket::AddressFamily::Inet) => address
            .as_sockaddr_in()
            .map(|a| SocketAddr::V4((*a).into())),
        Some(nix::sys::socket::AddressFamily::Inet6) => address
            .as_sockaddr_in6()
            .map(|a| SocketAddr::V6((*a).into())),
        _ => None,
    }
}

/// A flow's reply socket: transparent, bound to its original destination
/// `from` (shared with other flows' by `SO_REUSEADDR`), unconnected.
pub(crate) fn reply_socket(from: SocketAddr) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(from), Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    if from.is_ipv6() {
        socket.set_only_v6(true)?;
        socket.set_ip_transparent_v6(true)?;
    } else {
        socket.set_ip_transparent_v4(true)?;
    }
    socket.bind(&from.into())?;
    socket.set_nonblocking(true)?;
    UdpSocket::from_std(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On loopback (no interception), the control message carries the
    /// address the datagram was sent to: the listener's own, which is no
    /// original destination; another port on the same socket would be.
    #[tokio::test]
    async fn the_destination_comes_with_each_datagram() {
        for any in ["127.0.0.1:0", "[::1]:0"] {
            let socket = UdpSocket::bind(any).await.unwrap();
            let local = socket.local_addr().unwrap();
            receive_original_destinations(&socket, local.is_ipv6()).unwrap();
            let client = UdpSocket::bind(any).await.unwrap();
            client.send_to(b"query", local).await.unwrap();
            let mut buf = [0u8; 64];
            let (n, from, to) = recv(&socket, &mut buf, Some(local)).await.unwrap();
            assert_eq!(&buf[..n], b"query");
            assert_eq!(from, client.local_addr().unwrap());
            assert_eq!(to, None, "{any}: sent to the listener itself");
            client.send_to(b"again", local).await.unwrap();
            let elsewhere = SocketAddr::new(local.ip(), local.port().wrapping_add(1));
            let (_, _, to) = recv(&socket, &mut buf, Some(elsewhere)).await.unwrap();
            assert_eq!(to, Some(local), "{any}");
        }
    }

    /// Two reply sockets share one address, and what they send comes
    /// from it (this runs as root, as TPROXY itself needs).
    #[tokio::test]
    async fn reply_sockets_share_their_address() {
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let destination: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let first = reply_socket(destination).unwrap();
        let from = first.local_addr().unwrap();
        let second = reply_socket(from).unwrap();
        second
            .send_to(b"answer", client.local_addr().unwrap())
            .await
            .unwrap();
        let mut buf = [0u8; 64];
        let (n, sender) = client.recv_from(&mut buf).await.unwrap();
        assert_eq!((&buf[..n], sender), (&b"answer"[..], from));
    }
}
