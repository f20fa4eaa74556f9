//! `source_ranges`: an L4 filter that refuses connections by their source
//! address — Envoy's network RBAC reduced to its commonest rule, a list
//! of CIDR ranges that either alone may connect or may not.
//!
//! IPv4 clients of a dual-stack listener arrive as IPv4-mapped IPv6
//! addresses (`::ffff:10.0.0.1`); they are matched as the IPv4 address
//! they are. A connection whose source is unknown (the kernel would not
//! say) is refused by an allow list and let through by a deny list.

pub(crate) use baton_config::filter::{Cidr, RangePolicy as Policy};

use crate::filter::network::{Admit, NetworkFilter};
use crate::filter::{ConnInfo, Mobility};

/// Refuses connections by source address.
#[derive(Debug, Clone)]
pub(crate) struct SourceRanges {
    pub(crate) policy: Policy,
    pub(crate) ranges: Vec<Cidr>,
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
