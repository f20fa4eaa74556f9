//! Token buckets, as Envoy's local rate limit filter keeps them: what
//! `local_rate_limit` and `rpc_rate_limit` (the `builtin` filters)
//! count with, and what an
//! upgrade carries to the next generation ([`Limiter::snapshot`],
//! [`Limiter::restore`]; `migrate::health` sends them).
//!
//! A bucket holds at most `max_tokens`, starts full and gains
//! `tokens_per_fill` every `fill_interval` (whole intervals: a token
//! never arrives early); each request takes one.
//!
//! A [`Limiter`] is one filter's buckets: the unkeyed one and, with a
//! `key` (a header's value, or the client's IP), one per value. Keyed
//! buckets are bounded by [`MAX_KEYS`]: when a new key finds the map
//! full, the buckets that have refilled to the brim are dropped first (a
//! full bucket is what a new one would be, so nothing is lost), and if
//! none has, the least recently used one goes (a scan, paid only while
//! every one of [`MAX_KEYS`] keys is active). A [`parking_lot::Mutex`]
//! guards them, held for the arithmetic only.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use baton_config::filter::TokenBucket as Settings;
use parking_lot::Mutex;
use tokio::time::Instant;

/// How many keyed buckets one filter keeps. Why this many: enough for
/// the active users or clients of one listener; each costs well under a
/// hundred bytes, so the bound caps memory at about a megabyte however
/// many distinct values clients send.
pub(crate) const MAX_KEYS: usize = 10_000;

/// One token bucket: its settings and its state.
#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    settings: Settings,
    tokens: u64,
    /// When the last whole interval ended (tokens were last added).
    last_fill: Instant,
}

/// A bucket's state as plain data, to carry it elsewhere (to the next
/// generation at an upgrade): its tokens, and how long ago its last fill
/// was — a duration, not an instant, so it means the same in another
/// process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Snapshot {
    pub(crate) tokens: u64,
    pub(crate) since_fill: Duration,
}

impl TokenBucket {
    /// A full bucket.
    pub(crate) fn full(settings: Settings, now: Instant) -> TokenBucket {
        TokenBucket {
            settings,
            tokens: settings.max_tokens.get(),
            last_fill: now,
        }
    }

    /// A bucket in the state `snapshot` describes (its tokens capped at
    /// what `settings` allow, should they have changed).
    pub(crate) fn restore(settings: Settings, snapshot: Snapshot, now: Instant) -> TokenBucket {
        TokenBucket {
            settings,
            tokens: snapshot.tokens.min(settings.max_tokens.get()),
            last_fill: now.checked_sub(snapshot.since_fill).unwrap_or(now),
        }
    }

    pub(crate) fn snapshot(&mut self, now: Instant) -> Snapshot {
        self.refill(now);
        Snapshot {
            tokens: self.tokens,
            since_fill: now.saturating_duration_since(self.last_fill),
        }
    }

    /// Adds the tokens of the whole intervals since the last fill.
    fn refill(&mut self, now: Instant) {
        let interval = self.settings.fill_interval;
        let elapsed = now.saturating_duration_since(self.last_fill);
        let intervals = elapsed.as_nanos() / interval.as_nanos().max(1);
        if intervals == 0 {
            return;
        }
        let max = self.settings.max_tokens.get();
        let added = u128::from(self.settings.tokens_per_fill.get()).saturating_mul(intervals);
        self.tokens = u64::try_from(u128::from(self.tokens).saturating_add(added))
            .unwrap_or(max)
            .min(max);
        if self.tokens == max {
            // Full: the next fill is an interval from now, whatever is left
            // of this one (nothing is owed to a full bucket).
            self.last_fill = now;
        } else {
            // Not full: keep the interval's phase. `intervals` is small here
            // (fewer than max_tokens / tokens_per_fill).
            let whole = u32::try_from(intervals).unwrap_or(u32::MAX);
            self.last_fill += interval.saturating_mul(whole);
        }
    }

    /// Takes a token; if there is none, how long until the next one.
    pub(crate) fn take(&mut self, now: Instant) -> Result<(), Duration> {
        self.refill(now);
        if self.tokens > 0 {
            self.tokens -= 1;
            return Ok(());
        }
        let next = self.last_fill + self.settings.fill_interval;
        Err(next.saturating_duration_since(now))
    }

    fn is_full(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.tokens == self.settings.max_tokens.get()
    }
}

/// What a keyed bucket is kept for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Key {
    Ip(IpAddr),
    Value(Box<[u8]>),
}

/// One filter's buckets: the unkeyed one and the keyed ones.
#[derive(Debug)]
pub struct Limiter {
    settings: Settings,
    state: Mutex<Buckets>,
}

#[derive(Debug)]
struct Buckets {
    unkeyed: TokenBucket,
    /// Each with when it was last used.
    keyed: HashMap<Key, (TokenBucket, Instant)>,
}

impl Limiter {
    pub(crate) fn new(settings: Settings, now: Instant) -> Limiter {
        Limiter {
            settings,
            state: Mutex::new(Buckets {
                unkeyed: TokenBucket::full(settings, now),
                keyed: HashMap::new(),
            }),
        }
    }

    /// Takes a token from `key`'s bucket (the unkeyed one for `None`).
    pub(crate) fn take(&self, key: Option<Key>, now: Instant) -> Result<(), Duration> {
        let mut state = self.state.lock();
        let Some(key) = key else {
            return state.unkeyed.take(now);
        };
        if !state.keyed.contains_key(&key) && state.keyed.len() >= MAX_KEYS {
            state.make_room(now);
        }
        let (bucket, used) = state
            .keyed
            .entry(key)
            .or_insert_with(|| (TokenBucket::full(self.settings, now), now));
        *used = now;
        bucket.take(now)
    }

    /// Every bucket's state (the unkeyed one's key is `None`).
    pub(crate) fn snapshot(&self, now: Instant) -> Vec<(Option<Key>, Snapshot)> {
        let mut state = self.state.lock();
        let mut out = vec![(None, state.unkeyed.snapshot(now))];
        for (key, (bucket, _)) in &mut state.keyed {
            out.push((Some(key.clone()), bucket.snapshot(now)));
        }
        out
    }

    /// Puts back the buckets [`Limiter::snapshot`] took (in another
    /// generation): each capped at this limiter's settings; keyed ones
    /// past [`MAX_KEYS`] are left out (they start full).
    pub(crate) fn restore(&self, buckets: Vec<(Option<Key>, Snapshot)>, now: Instant) {
        let mut state = self.state.lock();
        for (key, snapshot) in buckets {
            let bucket = TokenBucket::restore(self.settings, snapshot, now);
            match key {
                None => state.unkeyed = bucket,
                Some(key) if state.keyed.len() < MAX_KEYS || state.keyed.contains_key(&key) => {
                    state.keyed.insert(key, (bucket, now));
                }
                Some(_) => {}
            }
        }
    }

    /// How many keyed buckets it keeps now.
    #[cfg(test)]
    fn keys(&self) -> usize {
        self.state.lock().keyed.len()
    }
}

impl Buckets {
    /// Drops the full buckets, or else the least recently used one.
    fn make_room(&mut self, now: Instant) {
        self.keyed.retain(|_, (bucket, _)| !bucket.is_full(now));
        if self.keyed.len() < MAX_KEYS {
            return;
        }
        let oldest = self
            .keyed
            .iter()
            .min_by_key(|(_, (_, used))| *used)
            .map(|(key, _)| key.clone());
        if let Some(key) = oldest {
            self.keyed.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::num::NonZeroU64;

    fn settings(max: u64, per_fill: u64, interval: Duration) -> Settings {
        Settings {
            max_tokens: NonZeroU64::new(max).unwrap(),
            tokens_per_fill: NonZeroU64::new(per_fill).unwrap(),
            fill_interval: interval,
        }
    }

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn a_bucket_empties_then_fills_by_whole_intervals() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::full(settings(3, 2, SECOND), t0);
        for _ in 0..3 {
            assert_eq!(bucket.take(t0), Ok(()));
        }
        assert_eq!(bucket.take(t0), Err(SECOND));
        let later = t0 + Duration::from_millis(400);
        assert_eq!(bucket.take(later), Err(Duration::from_millis(600)));
        // One interval: two tokens.
        let t1 = t0 + Duration::from_millis(1100);
        assert_eq!(bucket.take(t1), Ok(()));
        assert_eq!(bucket.take(t1), Ok(()));
        assert_eq!(
            bucket.take(t1),
            Err(Duration::from_millis(900)),
            "the fills keep their phase"
        );
        // Long idle: full, never more.
        let t2 = t0 + Duration::from_secs(3600);
        assert_eq!(bucket.snapshot(t2).tokens, 3);
    }

    #[test]
    fn a_snapshot_carries_tokens_and_the_time_since_the_fill() {
        let t0 = Instant::now();
        let s = settings(5, 1, Duration::from_secs(10));
        let mut bucket = TokenBucket::full(s, t0);
        for _ in 0..5 {
            bucket.take(t0).unwrap();
        }
        let then = t0 + Duration::from_secs(14);
        let snapshot = bucket.snapshot(then);
        assert_eq!(
            snapshot,
            Snapshot {
                tokens: 1,
                since_fill: Duration::from_secs(4)
            }
        );
        // Elsewhere, later: the same bucket.
        let elsewhere = then + Duration::from_secs(100);
        let mut moved = TokenBucket::restore(s, snapshot, elsewhere);
        assert_eq!(moved.take(elsewhere), Ok(()));
        assert_eq!(moved.take(elsewhere), Err(Duration::from_secs(6)));
        // Smaller settings cap what it carried.
        let smaller = TokenBucket::restore(settings(1, 1, SECOND), snapshot, elsewhere);
        assert_eq!(smaller.tokens, 1);
        let mut full = TokenBucket::restore(
            s,
            Snapshot {
                tokens: 99,
                since_fill: Duration::ZERO,
            },
            elsewhere,
        );
        assert_eq!(full.snapshot(elsewhere).tokens, 5);
    }

    #[test]
    fn keys_get_their_own_buckets_and_the_map_stays_bounded() {
        let t0 = Instant::now();
        let limiter = Limiter::new(settings(1, 1, SECOND), t0);
        let user = |u: &str| Some(Key::Value(u.as_bytes().into()));
        assert_eq!(limiter.take(user("a"), t0), Ok(()));
        assert!(limiter.take(user("a"), t0).is_err());
        assert_eq!(limiter.take(user("b"), t0), Ok(()));
        assert_eq!(limiter.take(None, t0), Ok(()), "the unkeyed bucket");
        assert!(limiter.take(None, t0).is_err());

        // Full of active keys: the least recently used goes ("a").
        let soon = t0 + Duration::from_millis(1);
        for i in 2..MAX_KEYS {
            let ip = IpAddr::from(u32::try_from(i).unwrap().to_be_bytes());
            assert_eq!(limiter.take(Some(Key::Ip(ip)), soon), Ok(()));
        }
        assert_eq!(limiter.keys(), MAX_KEYS);
        let t1 = t0 + Duration::from_millis(10);
        assert!(limiter.take(user("b"), t1).is_err(), "b is remembered");
        assert!(limiter.take(user("new"), t1).is_ok());
        assert_eq!(limiter.keys(), MAX_KEYS);
        assert!(
            limiter.take(user("a"), t1).is_ok(),
            "a was evicted: a fresh bucket"
        );

        // Once they have refilled, the full buckets make room at once.
        let t2 = t0 + Duration::from_secs(2);
        assert!(limiter.take(user("another"), t2).is_ok());
        assert_eq!(limiter.keys(), 1);
        assert_eq!(limiter.snapshot(t2).len(), 2);
    }
}
