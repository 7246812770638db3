//! Latency percentiles without keeping every sample.
//!
//! A long run makes millions of round trips; storing each one to sort them
//! later would cost memory the server under test may need. A log-linear
//! histogram keeps 32 buckets per power of two instead (about 3 % wide), a
//! few kilobytes in all, and answers "what was the 99th percentile?" to
//! within one bucket.

/// Buckets per power of two: 2^5 = 32.
const SUB_BITS: u32 = 5;
const SUB: u64 = 1 << SUB_BITS;
/// 32 exact buckets for 0..32, then 32 per power of two up to 2^64.
const BUCKETS: usize = (SUB + (64 - SUB_BITS as u64) * SUB) as usize;

/// Counts of values (nanoseconds here) in log-linear buckets.
#[derive(Debug, Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

impl Histogram {
    pub fn new() -> Histogram {
        Histogram {
            counts: vec![0; BUCKETS],
            total: 0,
            max: 0,
        }
    }

    pub fn record(&mut self, value: u64) {
        self.counts[index_of(value)] += 1;
        self.total += 1;
        self.max = self.max.max(value);
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    /// The value below which `fraction` (0.5, 0.99) of the samples fall,
    /// as the middle of its bucket; None without samples.
    pub fn percentile(&self, fraction: f64) -> Option<u64> {
        if self.total == 0 {
            return None;
        }
        let wanted = ((fraction * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (index, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= wanted {
                let (low, width) = bucket_of(index);
                return Some((low + width / 2).min(self.max));
            }
        }
        Some(self.max)
    }
}

fn index_of(value: u64) -> usize {
    if value < SUB {
        return value as usize;
    }
    let exponent = 63 - value.leading_zeros(); // at least SUB_BITS
    let mantissa = (value >> (exponent - SUB_BITS)) - SUB; // 0..SUB
    (SUB + u64::from(exponent - SUB_BITS) * SUB + mantissa) as usize
}

/// A bucket's lowest value and its width.
fn bucket_of(index: usize) -> (u64, u64) {
    let index = index as u64;
    if index < SUB {
        return (index, 1);
    }
    let exponent = (index - SUB) / SUB + u64::from(SUB_BITS);
    let mantissa = (index - SUB) % SUB + SUB;
    let shift = exponent - u64::from(SUB_BITS);
    (mantissa << shift, 1 << shift)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_lands_in_the_bucket_that_holds_it() {
        for value in [
            0,
            1,
            31,
            32,
            33,
            63,
            64,
            1000,
            123_456,
            u64::MAX / 3,
            u64::MAX,
        ] {
            let (low, width) = bucket_of(index_of(value));
            assert!(
                low <= value && value - low < width,
                "{value}: {low} +{width}"
            );
        }
        assert_eq!(index_of(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn percentiles_are_within_a_bucket() {
        let mut histogram = Histogram::new();
        assert_eq!(histogram.percentile(0.5), None);
        for value in 1..=10_000u64 {
            histogram.record(value * 1000);
        }
        let p50 = histogram.percentile(0.5).unwrap_or(0) as f64;
        let p99 = histogram.percentile(0.99).unwrap_or(0) as f64;
        assert!((p50 / 5_000_000.0 - 1.0).abs() < 0.04, "p50 {p50}");
        assert!((p99 / 9_900_000.0 - 1.0).abs() < 0.04, "p99 {p99}");
        assert_eq!(histogram.max(), 10_000_000);
        assert_eq!(histogram.count(), 10_000);
    }
}
