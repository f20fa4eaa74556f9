//! The byte pumps: what moves an L4 connection's bytes, pausable at any
//! instant with its state exact (so that it can move to the next
//! generation whole).
//!
//! * [`pipe`] — one direction: a bounded buffer, or `splice(2)` through a
//!   kernel pipe for bulk streams; its state ([`pipe::PipeState`]) is the
//!   bytes read and not yet written, and the half-close flags;
//! * [`tunnel`] — a client and an upstream socket with a pipe each way
//!   ([`tunnel::Tunnel`]), and the echo built-in ([`tunnel::Echo`]);
//! * [`live`] — the tunnel and the echo running, as the connection task
//!   drives them ([`crate::kind::Live`]);
//! * [`parked`] — the tunnel and the echo at rest and on the wire (their
//!   [`crate::kind`] implementations);
//! * [`tap`] — what a tunnel shows its bytes to when something above
//!   wants to see or rewrite them (the L4 filter chain): a
//!   [`tap::Tap`], and no splicing while one is attached.
//!
//! Depends only on the leaves: [`crate::io`] (how a run ends, the idle
//! timer), [`crate::telemetry`] (byte meters), [`crate::fds`] (the cap on
//! kernel pipes), [`crate::kind`] (the forms of a kind of connection).

pub(crate) mod live;
pub(crate) mod parked;
pub(crate) mod pipe;
pub(crate) mod tap;
pub(crate) mod tunnel;
