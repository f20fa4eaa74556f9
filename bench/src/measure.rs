//! Numbers from raw observations: pauses from pong times, and the median
//! and range of a figure over repeated runs.

/// A gap between two consecutive pongs: µs since the run's base.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    pub from: u64,
    pub to: u64,
}

impl Gap {
    pub fn len(&self) -> u64 {
        self.to.saturating_sub(self.from)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The longest gaps between consecutive pongs of one connection, in µs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Gaps {
    /// Longest gap that overlaps the upgrade window: the connection's
    /// pause for the upgrade, plus whatever scheduling noise fell into it.
    pub during: Option<Gap>,
    /// Longest gap that overlaps the control window (and not the upgrade
    /// window): the same measure over an equally long stretch without an
    /// upgrade, the fair comparison for `during`.
    pub control: Option<u64>,
    /// Longest gap entirely before the window (and after `settle`): the
    /// same connection's noise floor when nothing is being upgraded.
    pub outside: Option<u64>,
}

/// Splits the gaps of `pongs` (sorted µs timestamps) by whether they
/// overlap `window` = `(start, end)`, and finds the longest that overlaps
/// `control` instead. Gaps that begin before `settle` are ignored outside
/// the window: the first pongs after the loops start measure start-up,
/// not steady state. Gaps after the window count in neither.
pub fn gaps(pongs: &[u64], window: (u64, u64), control: (u64, u64), settle: u64) -> Gaps {
    let (start, end) = window;
    let overlaps = |(a, b): (u64, u64), from: u64, to: u64| to > a && from < b;
    let mut out = Gaps::default();
    for pair in pongs.windows(2) {
        let [from, to] = [pair[0], pair[1]];
        let gap = to.saturating_sub(from);
        if overlaps((start, end), from, to) {
            if out.during.is_none_or(|g| gap > g.len()) {
                out.during = Some(Gap { from, to });
            }
        } else if from >= settle && to <= start {
            out.outside = Some(out.outside.map_or(gap, |g| g.max(gap)));
            if overlaps(control, from, to) {
                out.control = Some(out.control.map_or(gap, |g| g.max(gap)));
            }
        }
    }
    out
}

/// Median and range of one figure over runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    /// `None` for no values. An even count takes the mean of the middle
    /// two.
    pub fn of(values: &[f64]) -> Option<Spread> {
        let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        if sorted.is_empty() {
            return None;
        }
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median = if n % 2 == 1 {
            sorted[n / 2]
        } else {
            (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
        };
        Some(Spread {
            median,
            min: sorted[0],
            max: sorted[n - 1],
        })
    }
}

/// The `q` quantile (0..=1) of `values`, nearest rank; `None` if empty.
pub fn quantile(values: &[f64], q: f64) -> Option<f64> {
    let mut sorted: Vec<f64> = values.to_vec();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gap_that_overlaps_the_window_counts_as_during() {
        // Pongs every 10 µs, except a 50 µs gap across the window 100..120,
        // a 15 µs one before the control window 50..60 and a 25 µs one
        // after the window (which counts nowhere).
        let pongs = [0, 10, 25, 35, 45, 55, 65, 75, 90, 140, 150, 175];
        let g = gaps(&pongs, (100, 120), (50, 60), 5);
        assert_eq!(g.during, Some(Gap { from: 90, to: 140 }));
        assert_eq!(g.outside, Some(15));
        assert_eq!(g.control, Some(10));
    }

    #[test]
    fn gaps_before_settling_are_ignored() {
        let pongs = [0, 100, 110, 120, 300, 500, 505, 900];
        let g = gaps(&pongs, (400, 450), (0, 300), 100);
        assert_eq!(g.during.map(|g| g.len()), Some(200));
        assert_eq!(g.outside, Some(180));
        assert_eq!(g.control, Some(180));
    }

    #[test]
    fn no_pongs_no_gaps() {
        assert_eq!(gaps(&[], (0, 10), (0, 0), 0), Gaps::default());
        assert_eq!(gaps(&[5], (0, 10), (0, 0), 0), Gaps::default());
    }

    #[test]
    fn spread_and_quantiles() {
        let s = Spread::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        let s = Spread::of(&[4.0, 1.0, 2.0, 3.0]).unwrap();
        assert_eq!(s.median, 2.5);
        assert_eq!(Spread::of(&[]), None);
        assert_eq!(quantile(&[1.0, 2.0, 3.0, 4.0], 0.5), Some(2.0));
        assert_eq!(quantile(&[1.0, 2.0, 3.0, 4.0], 0.99), Some(4.0));
        assert_eq!(quantile(&[], 0.5), None);
    }
}
