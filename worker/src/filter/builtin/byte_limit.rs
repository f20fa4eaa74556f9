//! `byte_limit`: an L4 filter that counts each connection's bytes and
//! closes a connection once it carries more than its limit in a direction
//! (a cap on what one client may upload, or be sent).
//!
//! The read that crosses the limit is not passed on: the connection is
//! closed with what was within the limit delivered. The count is
//! per-connection state that the handoff cannot carry yet, so the filter
//! [`Mobility::Stays`]: a limited connection drains in its generation
//! instead of moving with its count reset.

use crate::filter::network::{ByteFilter, NetworkFilter};
use crate::filter::{ConnInfo, Mobility};
use crate::l4::tap::{TapVerdict, Way};

/// Byte limits per direction (`None`: unlimited that way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ByteLimit {
    /// Client to upstream.
    pub to_upstream: Option<u64>,
    /// Upstream to client.
    pub to_client: Option<u64>,
}

impl NetworkFilter for ByteLimit {
    fn name(&self) -> &'static str {
        "byte_limit"
    }

    fn mobility(&self) -> Mobility {
        Mobility::Stays
    }

    fn session(&self, _conn: &ConnInfo) -> Option<Box<dyn ByteFilter>> {
        Some(Box::new(Counted {
            limit: *self,
            to_upstream: 0,
            to_client: 0,
        }))
    }
}

/// One connection's counts.
#[derive(Debug)]
struct Counted {
    limit: ByteLimit,
    to_upstream: u64,
    to_client: u64,
}

impl ByteFilter for Counted {
    fn on_data(&mut self, way: Way, data: &mut Vec<u8>, _end: bool) -> TapVerdict {
        let (count, limit) = match way {
            Way::ToUpstream => (&mut self.to_upstream, self.limit.to_upstream),
            Way::ToClient => (&mut self.to_client, self.limit.to_client),
        };
        *count += data.len() as u64;
        match limit {
            Some(limit) if *count > limit => TapVerdict::Close,
            _ => TapVerdict::Continue,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::network::NetworkChain;
    use crate::l4::tap::Tap;
    use std::sync::Arc;

    #[test]
    fn closes_past_the_limit_each_way_on_its_own() {
        let chain = NetworkChain::new(vec![Arc::new(ByteLimit {
            to_upstream: Some(10),
            to_client: None,
        })]);
        let conn = ConnInfo {
            listener: Arc::from("l"),
            source: None,
            local: None,
        };
        let mut tap = chain.accept(&conn).unwrap().tap.expect("a tap");
        assert!(!tap.moves(), "a counted connection drains");
        let mut six = vec![0u8; 6];
        assert_eq!(
            tap.on_data(Way::ToUpstream, &mut six, false),
            TapVerdict::Continue
        );
        let mut four = vec![0u8; 4];
        assert_eq!(
            tap.on_data(Way::ToUpstream, &mut four, false),
            TapVerdict::Continue,
            "exactly at the limit"
        );
        let mut big = vec![0u8; 1 << 20];
        assert_eq!(
            tap.on_data(Way::ToClient, &mut big, false),
            TapVerdict::Continue,
            "the other way is unlimited"
        );
        let mut one = vec![0u8; 1];
        assert_eq!(
            tap.on_data(Way::ToUpstream, &mut one, false),
            TapVerdict::Close
        );

        // Each connection counts from zero.
        let mut fresh = chain.accept(&conn).unwrap().tap.expect("a tap");
        let mut ten = vec![0u8; 10];
        assert_eq!(
            fresh.on_data(Way::ToUpstream, &mut ten, false),
            TapVerdict::Continue
        );
    }
}
