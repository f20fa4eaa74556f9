//! `connection_limit`: an L4 filter that refuses a connection on accept
//! when its client IP already has `max_per_source` connections open on
//! the listener (Envoy's connection limit, counted per source).
//!
//! The counts are the listener's, shared by its connections (a
//! [`parking_lot::Mutex`] around a map from IP to count, held for the
//! arithmetic only). Each admitted connection holds its place
//! ([`crate::filter::network::Hold`]); the connection task drops the
//! hold when the connection ends here — closed, failed, drained, or
//! moved to the next generation — and the drop gives the place back and
//! forgets an IP whose count reaches zero. So the map has an entry per
//! client with connections open: no more entries than the listener has
//! connections.
//!
//! The counts are the generation's: a connection moved at an upgrade is
//! counted in the old generation until it leaves and not in the new one
//! (the accept stage does not run for it), as `max_connections` counts.
//! A connection whose client address is unknown is not counted. The
//! filter keeps no per-connection state of its own: it moves.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::filter::network::{Hold, NetworkFilter, Refused};
use crate::filter::{ConnInfo, Mobility};

/// Refuses a client's connection past its limit.
#[derive(Debug, Clone)]
pub(crate) struct ConnectionLimit {
    max_per_source: NonZeroU32,
    counts: Arc<Mutex<HashMap<IpAddr, u32>>>,
}

impl ConnectionLimit {
    pub(crate) fn new(max_per_source: NonZeroU32) -> ConnectionLimit {
        ConnectionLimit {
            max_per_source,
            counts: Arc::default(),
        }
    }
}

impl NetworkFilter for ConnectionLimit {
    fn name(&self) -> &'static str {
        "connection_limit"
    }

    fn mobility(&self) -> Mobility {
        Mobility::Moves
    }

    fn admit(&self, conn: &ConnInfo) -> Result<Option<Hold>, Refused> {
        let Some(ip) = conn.source.map(|s| s.ip().to_canonical()) else {
            return Ok(None);
        };
        let mut counts = self.counts.lock();
        let count = counts.entry(ip).or_insert(0);
        if *count >= self.max_per_source.get() {
            return Err(Refused {
                filter: self.name(),
            });
        }
        *count += 1;
        Ok(Some(Box::new(Place {
            counts: Arc::clone(&self.counts),
            ip,
        })))
    }
}

/// One connection's place in its client's count.
#[derive(Debug)]
struct Place {
    counts: Arc<Mutex<HashMap<IpAddr, u32>>>,
    ip: IpAddr,
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut counts = self.counts.lock();
        if let Some(count) = counts.get_mut(&self.ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::builtin::sources::{Policy, SourceRanges};
    use crate::filter::network::NetworkChain;

    fn from(source: &str) -> ConnInfo {
        ConnInfo {
            listener: Arc::from("l"),
            source: source.parse().ok(),
            local: None,
        }
    }

    #[test]
    fn a_source_past_its_limit_is_refused_until_one_closes() {
        let limit = ConnectionLimit::new(NonZeroU32::new(2).unwrap());
        let chain = NetworkChain::new(vec![Arc::new(limit.clone())]);
        let first = chain.accept(&from("10.0.0.1:1000")).unwrap();
        let second = chain.accept(&from("[::ffff:10.0.0.1]:1001")).unwrap();
        assert_eq!(
            chain.accept(&from("10.0.0.1:1002")).unwrap_err(),
            Refused {
                filter: "connection_limit"
            },
            "an IPv4-mapped client is the same client"
        );
        // Another client has its own count; an unknown one is not counted.
        let other = chain.accept(&from("10.0.0.2:1000")).unwrap();
        for _ in 0..3 {
            drop(chain.accept(&from("unknown")).unwrap());
        }
        drop(first);
        let third = chain.accept(&from("10.0.0.1:1003")).unwrap();
        assert_eq!(limit.counts.lock().len(), 2);
        drop((second, third, other));
        assert!(limit.counts.lock().is_empty(), "nothing left behind");
    }

    #[test]
    fn a_refusal_by_a_later_filter_gives_the_place_back() {
        let limit = ConnectionLimit::new(NonZeroU32::new(1).unwrap());
        let chain = NetworkChain::new(vec![
            Arc::new(limit.clone()),
            Arc::new(SourceRanges {
                policy: Policy::Deny,
                ranges: vec!["10.0.0.9".parse().unwrap()],
            }),
        ]);
        assert!(chain.accept(&from("10.0.0.9:1")).is_err());
        assert!(limit.counts.lock().is_empty());
        let held = chain.accept(&from("10.0.0.1:1")).unwrap();
        assert_eq!(held.holds.len(), 1);
        assert!(chain.accept(&from("10.0.0.1:2")).is_err());
    }
}
