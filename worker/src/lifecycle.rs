//! What a generation tells its connections, and what it counts of them:
//! the [`Order`] every connection task obeys, the connection [`Stats`],
//! and how a drain ended ([`DrainReport`]).
//!
//! A leaf: std only. The generation publishes the order on a
//! `tokio::sync::watch` channel; connection tasks and upstream pools
//! subscribe.

use std::sync::atomic::AtomicU64;

/// What every connection task obeys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Run,
    /// Stop pumping and close both sockets now.
    Close,
}

/// Connection counters.
#[derive(Debug, Default)]
pub struct Stats {
    /// Connection tasks alive (accepted or adopted, not yet ended or
    /// handed on).
    pub active: AtomicU64,
    /// Connections accepted by this generation.
    pub accepted: AtomicU64,
    /// Connections that ended here (not handed on).
    pub finished: AtomicU64,
}

/// How a drain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrainReport {
    /// Connections that ended by themselves during the drain.
    pub finished: u64,
    /// Connections still open at the deadline, closed by force.
    pub closed: u64,
}
