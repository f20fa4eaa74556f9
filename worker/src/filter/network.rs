//! The L4 network-filter chain: what runs on a listener's connections
//! before (and, for L4 tunnels, while) they are proxied.
//!
//! Two stages, each filter taking part in either or both:
//!
//! 1. **Accept** ([`NetworkFilter::on_accept`]), once per accepted
//!    connection, in chain order, before the upstream is connected: a
//!    filter may refuse, and the connection is closed at once (logged with
//!    outcome `refused` in the access log); the filters after it do not run.
//! 2. **Bytes** ([`ByteFilter::on_data`]): each filter may give a
//!    connection its own byte filter ([`NetworkFilter::session`]); the
//!    connection's filters ([`ConnFilters`]) become its tunnel's
//!    [`Tap`]. Client-to-upstream reads go through them in chain order,
//!    upstream-to-client reads in reverse; each may rewrite the read or
//!    close the connection. A read a filter empties is not shown to the
//!    filters after it.
//!
//! An empty chain (a listener without L4 filters)
//! costs one length check per accepted connection: no [`ConnInfo`] is
//! built, no tap is attached, and the tunnel keeps splicing bulk streams.
//! A chain whose filters take no bytes and all move attaches no tap either.
//!
//! A filter that counts the connections it lets through (a limit per
//! source) admits with a [`Hold`] ([`NetworkFilter::admit`]): the
//! connection task keeps the holds of its connection for as long as it
//! runs here, and dropping one — when the connection ends, leaves for the
//! next generation, or is refused by a filter after the one that counted
//! it — gives the count back. That is the chain's on-close hook: `Drop`,
//! so no ending (an error, a panic, a drain deadline) can miss it.
//!
//! A connection adopted from the previous generation skips the accept
//! stage ([`NetworkChain::adopt`]): it was accepted there, and refusing it
//! now would cut a live stream; it holds nothing here, so counting filters
//! do not count it (as `max_connections` does not). See the parent module
//! for which connections move and which drain.

use std::fmt;
use std::sync::Arc;

use crate::filter::{ConnInfo, Mobility};
use crate::l4::tap::{Tap, TapVerdict, Way};

/// An accept-stage verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    Continue,
    /// Close the connection now.
    Refuse,
}

/// What an admitted connection holds of a filter's per-listener state
/// while it runs here (a place in a count): given back when dropped.
pub(crate) type Hold = Box<dyn fmt::Debug + Send + Sync>;

/// A connection's holds, in chain order (empty: no allocation).
pub(crate) type Holds = Vec<Hold>;

/// One configured L4 filter: shared by every connection of its listener.
pub trait NetworkFilter: fmt::Debug + Send + Sync {
    /// Its config name (issue 15 names filters in `[[listeners.filters]]`).
    fn name(&self) -> &'static str;

    /// Whether it keeps per-connection state that cannot move.
    fn mobility(&self) -> Mobility;

    /// A new connection: let it through or refuse it.
    fn on_accept(&self, conn: &ConnInfo) -> Admit {
        let _ = conn;
        Admit::Continue
    }

    /// The accept stage as the chain runs it: [`NetworkFilter::on_accept`]
    /// with nothing held, unless the filter counts connections, when it
    /// checks and counts in one step and returns the [`Hold`] that gives
    /// the count back.
    fn admit(&self, conn: &ConnInfo) -> Result<Option<Hold>, Refused> {
        match self.on_accept(conn) {
            Admit::Continue => Ok(None),
            Admit::Refuse => Err(Refused {
                filter: self.name(),
            }),
        }
    }

    /// This connection's byte filter, for a filter that looks at bytes.
    /// Called for accepted connections that passed the accept stage and
    /// for adopted ones.
    fn session(&self, conn: &ConnInfo) -> Option<Box<dyn ByteFilter>> {
        let _ = conn;
        None
    }
}

/// One connection's byte filter (its per-connection state, if any).
pub trait ByteFilter: fmt::Debug + Send {
    /// As [`Tap::on_data`]: `data` was read going `way`; change it, or
    /// close the connection.
    fn on_data(&mut self, way: Way, data: &mut Vec<u8>, end: bool) -> TapVerdict;
}

/// A filter refused a connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("refused by L4 filter {filter:?}")]
pub struct Refused {
    pub filter: &'static str,
}

/// A listener's L4 filters, in order. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct NetworkChain {
    filters: Arc<[Arc<dyn NetworkFilter>]>,
}

impl NetworkChain {
    pub fn new(filters: Vec<Arc<dyn NetworkFilter>>) -> NetworkChain {
        NetworkChain {
            filters: filters.into(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.filters.is_empty()
    }

    /// The filters' names, in order.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.filters.iter().map(|f| f.name())
    }

    /// Whether its connections move at an upgrade.
    pub fn mobility(&self) -> Mobility {
        Mobility::of_all(self.filters.iter().map(|f| f.mobility()))
    }

    /// Runs the accept stage, then starts the byte stage: the connection's
    /// filters (`None` when none of them looks at bytes and all move:
    /// nothing to attach) and what it holds while it runs.
    pub fn accept(&self, conn: &ConnInfo) -> Result<Accepted, Refused> {
        let mut holds = Holds::new();
        for filter in self.filters.iter() {
            // A refusal drops the holds taken so far: given back.
            holds.extend(filter.admit(conn)?);
        }
        Ok(Accepted {
            tap: self.adopt(conn),
            holds,
        })
    }

    /// The byte stage alone, for a connection adopted from the previous
    /// generation (its filters start afresh: only moving ones came here).
    pub fn adopt(&self, conn: &ConnInfo) -> Option<Box<ConnFilters>> {
        if self.filters.is_empty() {
            return None;
        }
        let sessions: Vec<Box<dyn ByteFilter>> = self
            .filters
            .iter()
            .filter_map(|f| f.session(conn))
            .collect();
        let mobility = self.mobility();
        if sessions.is_empty() && mobility == Mobility::Moves {
            return None;
        }
        Some(Box::new(ConnFilters { sessions, mobility }))
    }
}

/// A connection the accept stage let through.
#[derive(Debug)]
pub struct Accepted {
    /// Its tunnel's tap, if it needs one.
    pub tap: Option<Box<ConnFilters>>,
    /// To keep while the connection runs.
    pub holds: Holds,
}

/// One connection's byte filters: its tunnel's tap.
#[derive(Debug)]
pub struct ConnFilters {
    /// In chain order.
    sessions: Vec<Box<dyn ByteFilter>>,
    mobility: Mobility,
}

impl Tap for ConnFilters {
    fn on_data(&mut self, way: Way, data: &mut Vec<u8>, end: bool) -> TapVerdict {
        let mut run = |filter: &mut Box<dyn ByteFilter>| {
            if data.is_empty() && !end {
                return TapVerdict::Continue;
            }
            filter.on_data(way, data, end)
        };
        let verdict = match way {
            Way::ToUpstream => self
                .sessions
                .iter_mut()
                .map(&mut run)
                .find(|v| *v != TapVerdict::Continue),
            Way::ToClient => self
                .sessions
                .iter_mut()
                .rev()
                .map(&mut run)
                .find(|v| *v != TapVerdict::Continue),
        };
        verdict.unwrap_or(TapVerdict::Continue)
    }

    fn moves(&self) -> bool {
        self.mobility == Mobility::Moves
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parking_lot::Mutex;

    /// Records what it sees, tags what passes, and refuses or closes on
    /// demand.
    #[derive(Debug)]
    struct Probe {
        name: &'static str,
        refuse: bool,
        mobility: Mobility,
        seen: Arc<Mutex<Vec<String>>>,
    }

    #[derive(Debug)]
    struct ProbeSession {
        name: &'static str,
        seen: Arc<Mutex<Vec<String>>>,
    }

    impl NetworkFilter for Probe {
        fn name(&self) -> &'static str {
            self.name
        }
        fn mobility(&self) -> Mobility {
            self.mobility
        }
        fn on_accept(&self, _conn: &ConnInfo) -> Admit {
            self.seen.lock().push(format!("{} accept", self.name));
            if self.refuse {
                Admit::Refuse
            } else {
                Admit::Continue
            }
        }
        fn session(&self, _conn: &ConnInfo) -> Option<Box<dyn ByteFilter>> {
            Some(Box::new(ProbeSession {
                name: self.name,
                seen: Arc::clone(&self.seen),
            }))
        }
    }

    impl ByteFilter for ProbeSession {
        fn on_data(&mut self, way: Way, data: &mut Vec<u8>, end: bool) -> TapVerdict {
            self.seen.lock().push(format!(
                "{} {way:?} {:?} end={end}",
                self.name,
                String::from_utf8_lossy(data)
            ));
            if data == b"close" {
                return TapVerdict::Close;
            }
            if data == b"drop" {
                data.clear();
            } else if !end {
                data.extend_from_slice(self.name.as_bytes());
            }
            TapVerdict::Continue
        }
    }

    fn info() -> ConnInfo {
        ConnInfo {
            listener: Arc::from("l"),
            source: "127.0.0.1:5000".parse().ok(),
            local: None,
        }
    }

    fn chain(probes: &[(&'static str, bool, Mobility)]) -> (NetworkChain, Arc<Mutex<Vec<String>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let filters = probes
            .iter()
            .map(|&(name, refuse, mobility)| {
                Arc::new(Probe {
                    name,
                    refuse,
                    mobility,
                    seen: Arc::clone(&seen),
                }) as Arc<dyn NetworkFilter>
            })
            .collect();
        (NetworkChain::new(filters), seen)
    }

    #[test]
    fn an_empty_chain_attaches_nothing() {
        let chain = NetworkChain::default();
        assert!(chain.is_empty());
        assert!(chain.accept(&info()).unwrap().tap.is_none());
        assert!(chain.adopt(&info()).is_none());
        assert_eq!(chain.mobility(), Mobility::Moves);
    }

    #[test]
    fn a_refusal_stops_the_chain() {
        let (chain, seen) = chain(&[
            ("a", false, Mobility::Moves),
            ("b", true, Mobility::Moves),
            ("c", false, Mobility::Moves),
        ]);
        assert_eq!(chain.accept(&info()).unwrap_err(), Refused { filter: "b" });
        assert_eq!(*seen.lock(), ["a accept", "b accept"]);
        assert_eq!(
            chain.accept(&info()).unwrap_err().to_string(),
            "refused by L4 filter \"b\""
        );
    }

    #[test]
    fn bytes_go_through_in_order_upstream_and_in_reverse_back() {
        let (chain, seen) = chain(&[("a", false, Mobility::Moves), ("b", false, Mobility::Moves)]);
        let mut tap = chain.accept(&info()).unwrap().tap.expect("a tap");
        assert!(tap.moves());
        seen.lock().clear();

        let mut data = b"x".to_vec();
        assert_eq!(
            tap.on_data(Way::ToUpstream, &mut data, false),
            TapVerdict::Continue
        );
        assert_eq!(
            data, b"xab",
            "each filter modified the read, in chain order"
        );
        let mut data = b"y".to_vec();
        assert_eq!(
            tap.on_data(Way::ToClient, &mut data, false),
            TapVerdict::Continue
        );
        assert_eq!(data, b"yba", "in reverse order on the way back");

        // An emptied read goes no further; a close stops at once.
        let mut data = b"drop".to_vec();
        tap.on_data(Way::ToUpstream, &mut data, false);
        assert!(data.is_empty());
        let mut data = b"close".to_vec();
        assert_eq!(
            tap.on_data(Way::ToClient, &mut data, false),
            TapVerdict::Close
        );
        // The end of a stream reaches every filter, even with no bytes.
        let mut data = Vec::new();
        tap.on_data(Way::ToUpstream, &mut data, true);
        assert_eq!(
            *seen.lock(),
            [
                "a ToUpstream \"x\" end=false",
                "b ToUpstream \"xa\" end=false",
                "b ToClient \"y\" end=false",
                "a ToClient \"yb\" end=false",
                "a ToUpstream \"drop\" end=false",
                "b ToClient \"close\" end=false",
                "a ToUpstream \"\" end=true",
                "b ToUpstream \"\" end=true",
            ]
        );
    }

    #[test]
    fn one_staying_filter_keeps_the_connection_here() {
        let (chain, _) = chain(&[("a", false, Mobility::Moves), ("b", false, Mobility::Stays)]);
        assert_eq!(chain.mobility(), Mobility::Stays);
        assert!(!chain.accept(&info()).unwrap().tap.unwrap().moves());
        assert!(!chain.adopt(&info()).unwrap().moves());
        assert_eq!(chain.names().collect::<Vec<_>>(), ["a", "b"]);
    }

    /// A filter that takes no bytes but stays still needs the tap: it is
    /// what tells the tunnel to drain.
    #[test]
    fn a_staying_filter_without_bytes_still_attaches() {
        #[derive(Debug)]
        struct Quiet(Mobility);
        impl NetworkFilter for Quiet {
            fn name(&self) -> &'static str {
                "quiet"
            }
            fn mobility(&self) -> Mobility {
                self.0
            }
        }
        let moving = NetworkChain::new(vec![Arc::new(Quiet(Mobility::Moves))]);
        assert!(moving.accept(&info()).unwrap().tap.is_none());
        let staying = NetworkChain::new(vec![Arc::new(Quiet(Mobility::Stays))]);
        let tap = staying.accept(&info()).unwrap().tap.expect("a tap");
        assert!(!tap.moves());
    }
}
