//! How long to wait before restarting a worker that died.
//!
//! Exponential: a worker that keeps crashing at start is retried at 100 ms,
//! 200 ms, 400 ms ... up to [`MAX_DELAY`], so a broken deployment does not
//! spin a core; one that ran for at least [`HEALTHY_PERIOD`] before dying
//! is restarted after [`INITIAL_DELAY`] again, since that crash is news,
//! not a repeat.

use std::time::Duration;

/// Short: the listeners stay open, so clients that connect meanwhile wait
/// in the accept queue for the new worker; each moment counts.
pub(crate) const INITIAL_DELAY: Duration = Duration::from_millis(100);

/// Long enough not to burn CPU on a crash loop, short enough that a fixed
/// problem (a full disk, a missing dependency) heals without an operator.
pub(crate) const MAX_DELAY: Duration = Duration::from_secs(10);

/// A worker that ran this long was healthy; its death resets the delay.
pub(crate) const HEALTHY_PERIOD: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            next: INITIAL_DELAY,
        }
    }
}

impl Backoff {
    /// The delay before the next restart of a worker that lived `lived`.
    pub(crate) fn delay(&mut self, lived: Duration) -> Duration {
        if lived >= HEALTHY_PERIOD {
            self.next = INITIAL_DELAY;
        }
        let delay = self.next;
        self.next = (self.next * 2).min(MAX_DELAY);
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_caps_and_resets_after_a_healthy_run() {
        let mut b = Backoff::default();
        let quick = Duration::from_millis(5);
        let delays: Vec<_> = (0..10).map(|_| b.delay(quick)).collect();
        assert_eq!(delays[0], INITIAL_DELAY);
        assert_eq!(delays[1], INITIAL_DELAY * 2);
        assert_eq!(delays[2], INITIAL_DELAY * 4);
        assert!(delays.windows(2).all(|w| w[1] >= w[0]));
        assert_eq!(*delays.last().unwrap(), MAX_DELAY);
        assert_eq!(b.delay(HEALTHY_PERIOD), INITIAL_DELAY);
        assert_eq!(b.delay(quick), INITIAL_DELAY * 2);
    }
}
