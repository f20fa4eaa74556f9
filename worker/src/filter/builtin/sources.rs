//! `source_ranges`: an L4 filter that refuses connections by their source
//! address — Envoy's network RBAC reduced to its commonest rule, a list
//! of CIDR ranges that either alone may connect or may not.
//!
//! IPv4 clients of a dual-stack listener arrive as IPv4-mapped IPv6
//! addresses (`::ffff:10.0.0.1`); they are matched as the IPv4 address
//! they are. A connection whose source is unknown (the kernel would not
//! say) is refused by an allow list and let through by a deny list.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use crate::filter::network::{Admit, NetworkFilter};
use crate::filter::{ConnInfo, Mobility};

/// An address range: an address and how many leading bits must match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

/// A range that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an address range (like 10.0.0.0/8 or 2001:db8::/32)")]
pub(crate) struct BadCidr(String);

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
    pub(crate) fn contains(&self, addr: IpAddr) -> bool {
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

/// What a match means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Policy {
    /// Only sources in the ranges may connect.
    Allow,
    /// Sources in the ranges may not connect.
    Deny,
}

/// Refuses connections by source address.
#[derive(Debug, Clone)]
pub(crate) struct SourceRanges {
    pub policy: Policy,
    pub ranges: Vec<Cidr>,
}

impl NetworkFilter for SourceRanges {
    fn name(&self) -> &'static str {
        "source_ranges"
    }

    /// It looks at each connection once, on accept, and keeps nothing.
    fn mobility(&self) -> Mobility {
        Mobility::Moves
    }

    fn on_accept(&self, conn: &ConnInfo) -> Admit {
        let listed = conn
            .source
            .is_some_and(|s| self.ranges.iter().any(|r| r.contains(s.ip())));
        let allowed = match self.policy {
            Policy::Allow => listed,
            Policy::Deny => !listed,
        };
        if allowed {
            Admit::Continue
        } else {
            Admit::Refuse
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn cidr(text: &str) -> Cidr {
        text.parse().unwrap()
    }

    fn from(source: &str) -> ConnInfo {
        ConnInfo {
            listener: Arc::from("l"),
            source: source.parse().ok(),
            local: None,
        }
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
    fn an_allow_list_refuses_everyone_else() {
        let filter = SourceRanges {
            policy: Policy::Allow,
            ranges: vec![cidr("127.0.0.0/8"), cidr("fd00::/8")],
        };
        assert_eq!(filter.on_accept(&from("127.0.0.1:4000")), Admit::Continue);
        assert_eq!(filter.on_accept(&from("[fd00::5]:4000")), Admit::Continue);
        assert_eq!(filter.on_accept(&from("192.0.2.1:4000")), Admit::Refuse);
        assert_eq!(filter.on_accept(&from("unknown")), Admit::Refuse);
    }

    #[test]
    fn a_deny_list_refuses_only_those() {
        let filter = SourceRanges {
            policy: Policy::Deny,
            ranges: vec![cidr("192.0.2.0/24")],
        };
        assert_eq!(filter.on_accept(&from("192.0.2.9:4000")), Admit::Refuse);
        assert_eq!(
            filter.on_accept(&from("[::ffff:192.0.2.9]:4000")),
            Admit::Refuse
        );
        assert_eq!(
            filter.on_accept(&from("198.51.100.1:4000")),
            Admit::Continue
        );
        assert_eq!(filter.on_accept(&from("unknown")), Admit::Continue);
        assert_eq!(filter.mobility(), Mobility::Moves);
    }
}
