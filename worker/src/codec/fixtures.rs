//! Byte fixtures for the codec tests, the fuzz seed corpus and the stable
//! fuzz smoke runner. Public (hidden) so `fuzz/` and `worker/tests/` share
//! one copy.
//!
//! Captured fixtures are copied byte for byte from the test suites of other
//! implementations of each protocol; the source (repository, file, test and
//! the commit it was read at) is given beside each. Where no capture exists
//! the fixture is built by hand from the documented layout, and says so.
//!
//! Each protocol keeps its own fixtures beside its codec, in
//! `<protocol>::fixtures` (a `pub const ALL` listing them by name), and the
//! registry line that adds the protocol makes them reachable from here: a
//! new protocol's fixtures need no edit of this file.

use super::Protocol;

/// Every fixture of every registered protocol, with the protocol it
/// belongs to, in registry order: for corpus seeding and table-driven
/// tests.
pub fn all() -> impl Iterator<Item = (&'static str, Protocol, &'static [u8])> {
    Protocol::ALL.iter().flat_map(|&protocol| {
        protocol
            .fixtures()
            .iter()
            .map(move |&(name, bytes)| (name, protocol, bytes))
    })
}
