//! A connection's original destination (listeners with
//! `original_destination`): where the client was connecting before an
//! interception rule (a sidecar's nftables or iptables) sent the
//! connection to this listener.
//!
//! * `redirect` (NAT: nftables `redirect`, iptables `REDIRECT`): the
//!   connection's conntrack entry remembers the address it was rewritten
//!   from; `getsockopt(SOL_IP, SO_ORIGINAL_DST)` (IPv4) or
//!   `getsockopt(SOL_IPV6, IP6T_SO_ORIGINAL_DST)` (IPv6) on the accepted
//!   socket reads it. A connection made to the listener directly has no
//!   NAT entry (ENOENT), or one that rewrote nothing (the address read is
//!   the socket's own): it has no original destination.
//! * `tproxy` (nftables `tproxy`, iptables `TPROXY`): nothing is
//!   rewritten; the listener is transparent (bound so by the supervisor),
//!   and the accepted socket's local address is the original destination.
//!   A connection made to the listener's own port was not diverted (a
//!   diverted one keeps the port it was going to): it has none.
//!
//! Either way, a connection without an original destination never goes
//! to "its own" address, which is the listener: an `original_dst` cluster
//! would connect back to it, and so on until the fds run out.
//!
//! Both read the socket only, and a socket passed to the next generation
//! is the same socket (the conntrack entry is keyed by the connection's
//! addresses, not by the process), so a connection moved by an upgrade
//! reads the same destination there: the handoff carries nothing for it.

use std::net::SocketAddr;

use baton_config::OriginalDestination;
use tokio::net::TcpStream;

/// `client`'s original destination, by the listener's `mode`; `None` when
/// it has none (it was not intercepted) or the socket cannot tell.
/// `listening` is the listener's bound address, when known.
pub(crate) fn original(
    client: &TcpStream,
    mode: OriginalDestination,
    listening: Option<SocketAddr>,
) -> Option<SocketAddr> {
    let local = client.local_addr().ok()?;
    match mode {
        OriginalDestination::Tproxy => {
            (listening.map(|l| l.port()) != Some(local.port())).then_some(local)
        }
        OriginalDestination::Redirect => {
            let original = match local {
                SocketAddr::V4(_) => rustix::net::sockopt::ip_original_dst(client)
                    .ok()
                    .map(SocketAddr::V4),
                SocketAddr::V6(_) => rustix::net::sockopt::ipv6_original_dst(client)
                    .ok()
                    .map(SocketAddr::V6),
            }?;
            // A conntrack entry that rewrote nothing: made to the listener
            // itself (connecting on would loop back here).
            (original != local).then_some(original)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without interception, neither way finds an original destination
    /// (nor takes the listener's own address for one); tproxy reads the
    /// local address when its port is not the listener's.
    #[tokio::test]
    async fn a_direct_connection_has_no_original_destination() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let to = listener.local_addr().unwrap();
        let _client = TcpStream::connect(to).await.unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        let tproxy = OriginalDestination::Tproxy;
        assert_eq!(original(&accepted, tproxy, Some(to)), None);
        let elsewhere = SocketAddr::from(([0, 0, 0, 0], to.port().wrapping_add(1)));
        assert_eq!(original(&accepted, tproxy, Some(elsewhere)), Some(to));
        let redirect = OriginalDestination::Redirect;
        assert_eq!(original(&accepted, redirect, Some(to)), None);
    }
}
