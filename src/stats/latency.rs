//! The latency histogram of one second: a fixed log-linear bucket layout over atomic counters,
//! and percentiles read from summed counts.
//!
//! Values are microseconds. Each power of two from 64 µs to 2^26 µs (about 67 s) is split
//! into [`PER_OCTAVE`] equal buckets, so a bucket is at most a quarter of its lower bound wide;
//! one bucket below takes everything under 64 µs and one above everything from 67 s on.
//! Four per octave rather than two: at two, a p99 could be reported 41 % off, enough to rank
//! two backends wrongly; four cost 82 counters per second (656 bytes) and keep it under 25 %.
//! Recording is one `fetch_add`; the bucket index comes from the value's leading zeros.

use std::sync::atomic::{AtomicU64, Ordering};

/// Sub-buckets per power of two, as a shift: 2 bits, four buckets.
const SUB_BITS: u32 = 2;
/// Buckets in each power of two.
pub(crate) const PER_OCTAVE: usize = 1 << SUB_BITS;
/// The first power of two split into buckets: 2^6 µs = 64 µs.
const FIRST_OCTAVE: u32 = 6;
/// One past the last split power of two: from 2^26 µs (67.1 s) on is the overflow bucket.
const END_OCTAVE: u32 = 26;
/// Underflow bucket, the split octaves, overflow bucket.
pub(crate) const BUCKETS: usize = 1 + (END_OCTAVE - FIRST_OCTAVE) as usize * PER_OCTAVE + 1;
const OVERFLOW: usize = BUCKETS - 1;

/// The bucket of a latency of `micros`.
pub(crate) fn bucket_of(micros: u64) -> usize {
    if micros < 1 << FIRST_OCTAVE {
        return 0;
    }
    if micros >= 1 << END_OCTAVE {
        return OVERFLOW;
    }
    let octave = u64::BITS - 1 - micros.leading_zeros();
    let sub = (micros >> (octave - SUB_BITS)) as usize & (PER_OCTAVE - 1);
    1 + (octave - FIRST_OCTAVE) as usize * PER_OCTAVE + sub
}

/// The values bucket `index` holds, in microseconds: `[low, high)`; the overflow bucket's
/// `high` is `u64::MAX`.
pub(crate) fn bucket_bounds(index: usize) -> (u64, u64) {
    match index {
        0 => (0, 1 << FIRST_OCTAVE),
        OVERFLOW.. => (1 << END_OCTAVE, u64::MAX),
        _ => {
            let octave = FIRST_OCTAVE + ((index - 1) / PER_OCTAVE) as u32;
            let width = 1u64 << (octave - SUB_BITS);
            let low = (1u64 << octave) + ((index - 1) % PER_OCTAVE) as u64 * width;
            (low, low + width)
        }
    }
}

/// Latency counts of one second; each bucket an atomic so that any thread can record.
pub(crate) struct Histogram {
    counts: [AtomicU64; BUCKETS],
}

impl Default for Histogram {
    fn default() -> Histogram {
        Histogram {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl Histogram {
    pub(crate) fn record(&self, micros: u64) {
        self.counts[bucket_of(micros)].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn clear(&self) {
        for c in &self.counts {
            c.store(0, Ordering::Relaxed);
        }
    }

    /// Adds this second's counts into `sum`.
    pub(crate) fn add_to(&self, sum: &mut Counts) {
        for (total, c) in sum.0.iter_mut().zip(&self.counts) {
            *total += c.load(Ordering::Relaxed);
        }
    }
}

/// Plain counts per bucket, summed over several seconds at read time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Counts(pub(crate) [u64; BUCKETS]);

impl Default for Counts {
    fn default() -> Counts {
        Counts([0; BUCKETS])
    }
}

impl Counts {
    pub(crate) fn add(&mut self, other: &Counts) {
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            *a += b;
        }
    }

    /// The `q` quantile (0 < q ≤ 1) in milliseconds, None without samples.
    ///
    /// The nearest-rank sample (the `ceil(q·n)`-th smallest) is found by walking the buckets;
    /// inside its bucket the samples are taken as evenly spread, so the `j`-th of `c` sits at
    /// `low + width·(j − ½)/c`. The result is therefore always inside the true sample's
    /// bucket: off by less than one bucket width (under 25 % of the value). Samples in the
    /// overflow bucket are reported as its lower bound, 67.1 s.
    pub(crate) fn quantile_ms(&self, q: f64) -> Option<f64> {
        let n: u64 = self.0.iter().sum();
        if n == 0 {
            return None;
        }
        let rank = ((q * n as f64).ceil() as u64).clamp(1, n);
        let mut below = 0;
        for (index, &c) in self.0.iter().enumerate() {
            if below + c < rank {
                below += c;
                continue;
            }
            let (low, high) = bucket_bounds(index);
            if index == OVERFLOW {
                return Some(low as f64 / 1000.0);
            }
            let position = ((rank - below) as f64 - 0.5) / c as f64;
            let micros = low as f64 + (high - low) as f64 * position;
            return Some(micros / 1000.0);
        }
        // Unreachable: rank ≤ n, so some bucket reaches it.
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts_of(samples_micros: impl IntoIterator<Item = u64>) -> Counts {
        let h = Histogram::default();
        for s in samples_micros {
            h.record(s);
        }
        let mut c = Counts::default();
        h.add_to(&mut c);
        c
    }

    /// Width in ms of the bucket that holds `ms`.
    fn width_ms(ms: f64) -> f64 {
        let (low, high) = bucket_bounds(bucket_of((ms * 1000.0) as u64));
        (high - low) as f64 / 1000.0
    }

    fn assert_within_a_bucket(got: Option<f64>, want_ms: f64) {
        let got = got.expect("samples were recorded");
        assert!(
            (got - want_ms).abs() <= width_ms(want_ms),
            "got {got} ms, want {want_ms} ms ± {}",
            width_ms(want_ms)
        );
    }

    #[test]
    fn layout_covers_the_range_without_gaps() {
        assert_eq!(BUCKETS, 82);
        assert_eq!(bucket_bounds(0), (0, 64));
        for index in 1..OVERFLOW {
            let (low, high) = bucket_bounds(index);
            assert_eq!(
                bucket_bounds(index - 1).1,
                low,
                "bucket {index} starts where the last ended"
            );
            assert_eq!(bucket_of(low), index);
            assert_eq!(bucket_of(high - 1), index);
            assert!(
                (high - low) * 4 <= low,
                "bucket {index} is at most a quarter of its value"
            );
        }
        assert_eq!(bucket_bounds(OVERFLOW - 1).1, 1 << 26);
        assert_eq!(bucket_of(1 << 26), OVERFLOW);
        assert_eq!(bucket_of(u64::MAX), OVERFLOW);
        assert_eq!(bucket_of(0), 0);
        // 0.1 ms and 60 s both fall inside the split octaves.
        assert!(bucket_of(100) > 0 && bucket_of(60_000_000) < OVERFLOW);
    }

    #[test]
    fn no_samples_no_quantile() {
        assert_eq!(Counts::default().quantile_ms(0.5), None);
    }

    #[test]
    fn uniform_distribution() {
        // 1 ms .. 1000 ms, one sample each: p50 is 500 ms, p99 990 ms.
        let c = counts_of((1..=1000).map(|ms| ms * 1000));
        assert_within_a_bucket(c.quantile_ms(0.5), 500.0);
        assert_within_a_bucket(c.quantile_ms(0.99), 990.0);
        assert_within_a_bucket(c.quantile_ms(1.0), 1000.0);
    }

    #[test]
    fn a_single_value_stays_in_its_bucket() {
        let c = counts_of(std::iter::repeat_n(10_000, 500));
        let (low, high) = bucket_bounds(bucket_of(10_000));
        for q in [0.01, 0.5, 0.99, 1.0] {
            let ms = c.quantile_ms(q).unwrap();
            assert!(
                ms * 1000.0 >= low as f64 && ms * 1000.0 < high as f64,
                "{q}: {ms}"
            );
        }
    }

    #[test]
    fn a_slow_tail_shows_in_p99_only() {
        // 98 % at 2 ms, 2 % at 300 ms.
        let fast = std::iter::repeat_n(2_000, 980);
        let slow = std::iter::repeat_n(300_000, 20);
        let c = counts_of(fast.chain(slow));
        assert_within_a_bucket(c.quantile_ms(0.5), 2.0);
        assert_within_a_bucket(c.quantile_ms(0.99), 300.0);
    }

    #[test]
    fn extremes() {
        let c = counts_of([5, 20]);
        let p = c.quantile_ms(1.0).unwrap();
        assert!(p < 0.064, "sub-64 µs samples stay under 64 µs: {p}");
        let c = counts_of([120_000_000]);
        assert_eq!(
            c.quantile_ms(0.99),
            Some(67_108.864),
            "overflow reports its lower bound"
        );
    }

    #[test]
    fn counts_add_up() {
        let mut a = counts_of([1_000, 2_000]);
        a.add(&counts_of([1_000]));
        assert_eq!(a.0.iter().sum::<u64>(), 3);
        assert_eq!(a.0[bucket_of(1_000)], 2);
    }
}
