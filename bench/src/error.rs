//! The bench's one error type: what was being done, and why it failed.

use std::io;

/// A benchmark run that could not complete, or completed wrong.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// An I/O step failed: `what` names the step and its object.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    /// A step ended without its expected result (a log line that never
    /// came, an upgrade that was refused, a child that printed nonsense).
    #[error("{0}")]
    Failed(String),
}

pub type Result<T, E = BenchError> = std::result::Result<T, E>;

/// Names the step an `io::Error` came from.
pub trait Context<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Context<T> for io::Result<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| BenchError::Io {
            what: what(),
            source,
        })
    }
}

/// Shorthand for [`BenchError::Failed`].
pub fn failed(reason: impl Into<String>) -> BenchError {
    BenchError::Failed(reason.into())
}
