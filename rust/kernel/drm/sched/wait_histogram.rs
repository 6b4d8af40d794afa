// SPDX-License-Identifier: GPL-2.0

//! How long an entity's jobs waited from push to start: a histogram of power-of-two buckets,
//! small enough to keep per entity under the scheduler's lock and to fill from a completion
//! (no allocation). Plain Rust: its host tests run with the policies'.
//!
//! Bucket 0 holds waits below 2 µs, bucket `b` waits in `[2^b, 2^(b+1))` µs, the last one
//! everything from `2^(BUCKETS-1)` µs (about 36 minutes) up. A percentile is reported as the
//! upper bound of the bucket it falls in: at most twice the true value, never below it.

/// Number of buckets.
pub(crate) const BUCKETS: usize = 32;

/// Waits of an entity's jobs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WaitHistogram {
    counts: [u32; BUCKETS],
    /// Waits recorded.
    count: u64,
    /// Their sum, in ns (saturating).
    sum_ns: u64,
}

impl Default for WaitHistogram {
    fn default() -> Self {
        Self {
            counts: [0; BUCKETS],
            count: 0,
            sum_ns: 0,
        }
    }
}

impl WaitHistogram {
    /// The bucket of a wait of `ns`.
    fn bucket(ns: u64) -> usize {
        let us = ns / 1000;
        if us < 2 {
            0
        } else {
            // CAST: at most 63.
            ((63 - us.leading_zeros()) as usize).min(BUCKETS - 1)
        }
    }

    /// The largest wait (in ns) bucket `b` holds, or `u64::MAX` for the last one.
    fn upper_ns(b: usize) -> u64 {
        if b + 1 >= BUCKETS {
            u64::MAX
        } else {
            (2000u64 << b) - 1
        }
    }

    /// Records a wait of `ns`.
    pub fn record(&mut self, ns: u64) {
        let c = &mut self.counts[Self::bucket(ns)];
        *c = c.saturating_add(1);
        self.count = self.count.saturating_add(1);
        self.sum_ns = self.sum_ns.saturating_add(ns);
    }

    /// Waits recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The mean wait in ns (0 without any).
    pub fn mean_ns(&self) -> u64 {
        self.sum_ns.checked_div(self.count).unwrap_or(0)
    }

    /// An upper bound of the `per_mille`-th per-mille wait in ns (0 without any): the upper
    /// bound of the bucket that holds it.
    pub fn percentile_ns(&self, per_mille: u32) -> u64 {
        let total: u64 = self.counts.iter().map(|&c| u64::from(c)).sum();
        if total == 0 {
            return 0;
        }
        // The rank of the percentile, 1-based and rounded up (the nearest-rank method).
        let rank = (total * u64::from(per_mille.min(1000)))
            .div_ceil(1000)
            .max(1);
        let mut seen = 0;
        for (b, &c) in self.counts.iter().enumerate() {
            seen += u64::from(c);
            if seen >= rank {
                return Self::upper_ns(b);
            }
        }
        u64::MAX
    }
}

#[cfg(test)]
mod tests {
    use super::{WaitHistogram, BUCKETS};

    #[test]
    fn buckets_are_powers_of_two_microseconds() {
        assert_eq!(WaitHistogram::bucket(0), 0);
        assert_eq!(WaitHistogram::bucket(1_999), 0);
        assert_eq!(WaitHistogram::bucket(2_000), 1);
        assert_eq!(WaitHistogram::bucket(3_999), 1);
        assert_eq!(WaitHistogram::bucket(4_000), 2);
        assert_eq!(WaitHistogram::bucket(1_000_000), 9);
        assert_eq!(WaitHistogram::bucket(u64::MAX), BUCKETS - 1);
        // Every wait is at most its bucket's upper bound and above the bucket below's.
        for ns in (0..40)
            .map(|s| 1u64 << s)
            .chain([999, 1_000, 1_001, 123_456_789])
        {
            let b = WaitHistogram::bucket(ns);
            assert!(ns <= WaitHistogram::upper_ns(b), "{ns} in bucket {b}");
            if b > 0 {
                assert!(ns > WaitHistogram::upper_ns(b - 1), "{ns} in bucket {b}");
            }
        }
    }

    #[test]
    fn percentiles_bound_the_true_value_within_a_factor_of_two() {
        let mut h = WaitHistogram::default();
        assert_eq!((h.percentile_ns(990), h.mean_ns(), h.count()), (0, 0, 0));
        // 98 waits of 10 µs, 2 of 5 ms: p50 is 10 µs, p99 5 ms.
        for _ in 0..98 {
            h.record(10_000);
        }
        h.record(5_000_000);
        h.record(5_000_000);
        assert_eq!(h.count(), 100);
        assert_eq!(h.mean_ns(), (98 * 10_000 + 2 * 5_000_000) / 100);
        let (p50, p98, p99) = (
            h.percentile_ns(500),
            h.percentile_ns(980),
            h.percentile_ns(990),
        );
        assert!((10_000..20_000).contains(&p50), "p50 {p50}");
        assert!((10_000..20_000).contains(&p98), "p98 {p98}");
        assert!((5_000_000..10_000_000).contains(&p99), "p99 {p99}");
        assert_eq!(h.percentile_ns(1000), p99);
    }

    #[test]
    fn recording_saturates_instead_of_wrapping() {
        let mut h = WaitHistogram::default();
        h.record(u64::MAX);
        h.record(u64::MAX);
        assert_eq!(h.mean_ns(), u64::MAX / 2);
        assert_eq!(h.percentile_ns(990), u64::MAX);
    }
}
