//! A generation: one worker process's data plane, driven by its
//! supervisor.
//!
//! * [`serve`] — [`serve::Server`]: builds what the connection tasks share
//!   from a validated config and the listening sockets it is handed, runs
//!   the accept loops, drains;
//! * [`ctrl`] — the session with the supervisor over the ctrl channel:
//!   config and listeners in, `Ready` out, then orders (activate, hand off,
//!   take over, drain) and the metrics heartbeat.
//!
//! The top layer: it uses every layer below (it builds `conn`'s context,
//! and hands `migrate` the server as its [`crate::migrate::Host`]), and
//! nothing below uses it.

pub(crate) mod ctrl;
pub mod serve;
