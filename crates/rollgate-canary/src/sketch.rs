//! A fixed-memory latency sketch: a log-linear histogram for recording
//! request latencies on a hot path and reading quantiles back.
//!
//! Each power of two between `2^-10` and `2^30` is split into 128 linear
//! sub-buckets, so a reported quantile is within 0.4 % (half a bucket of
//! relative width 1/128) of a value of its bucket, and its rank is off by at
//! most the share of samples in that one bucket. Memory is fixed (40 × 128
//! counters, 40 KiB) whatever the number of inserts; an insert is a few bit
//! operations and one increment.

const SUB_BITS: u32 = 7;
const SUB: usize = 1 << SUB_BITS;
const MIN_EXP: i32 = -10;
const MAX_EXP: i32 = 30;
const BUCKETS: usize = (MAX_EXP - MIN_EXP) as usize * SUB;

/// A log-linear latency histogram with bounded memory.
///
/// ```
/// use rollgate_canary::sketch::LatencySketch;
/// let mut s = LatencySketch::new();
/// for i in 1..=1000 {
///     s.insert(i as f64);
/// }
/// let p99 = s.quantile(0.99).unwrap();
/// assert!((p99 - 990.0).abs() / 990.0 < 0.01);
/// assert_eq!(s.count(), 1000);
/// ```
#[derive(Clone)]
pub struct LatencySketch {
    counts: Box<[u64]>,
    below: u64,
    above: u64,
    total: u64,
    min: f64,
    max: f64,
}

impl std::fmt::Debug for LatencySketch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LatencySketch")
            .field("count", &self.total)
            .field("min", &self.min)
            .field("max", &self.max)
            .finish()
    }
}

impl Default for LatencySketch {
    fn default() -> Self {
        Self::new()
    }
}

impl LatencySketch {
    /// An empty sketch (40 KiB of counters).
    pub fn new() -> Self {
        Self {
            counts: vec![0u64; BUCKETS].into_boxed_slice(),
            below: 0,
            above: 0,
            total: 0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }

    /// Records one value. Values below `2^-10` (including zero and
    /// negatives) and at or above `2^30` are counted in under/overflow
    /// buckets and reported as the exact minimum/maximum; NaN is ignored.
    #[inline]
    pub fn insert(&mut self, v: f64) {
        if v.is_nan() {
            return;
        }
        self.total += 1;
        if v < self.min {
            self.min = v;
        }
        if v > self.max {
            self.max = v;
        }
        let bits = v.to_bits();
        let exp = ((bits >> 52) & 0x7FF) as i32 - 1023;
        if v < 0.0 || exp < MIN_EXP {
            self.below += 1;
        } else if exp >= MAX_EXP {
            self.above += 1;
        } else {
            let sub = ((bits >> (52 - SUB_BITS)) & (SUB as u64 - 1)) as usize;
            let idx = (exp - MIN_EXP) as usize * SUB + sub;
            if let Some(c) = self.counts.get_mut(idx) {
                *c += 1;
            }
        }
    }

    /// Number of values recorded (NaN excluded).
    pub fn count(&self) -> u64 {
        self.total
    }

    /// Adds another sketch's counts into this one.
    pub fn merge(&mut self, other: &LatencySketch) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
        self.below += other.below;
        self.above += other.above;
        self.total += other.total;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    /// The `q`-quantile (`q` in `[0, 1]`), or `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.total == 0 || q.is_nan() {
            return None;
        }
        let rank = (q.clamp(0.0, 1.0) * self.total as f64).ceil().max(1.0) as u64;
        let mut seen = self.below;
        if rank <= seen {
            return Some(self.min);
        }
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if rank <= seen {
                let exp = (i / SUB) as i32 + MIN_EXP;
                let sub = (i % SUB) as f64;
                let lo = 2f64.powi(exp) * (1.0 + sub / SUB as f64);
                let hi = 2f64.powi(exp) * (1.0 + (sub + 1.0) / SUB as f64);
                return Some(((lo + hi) / 2.0).clamp(self.min, self.max));
            }
        }
        Some(self.max)
    }

    /// Bytes held by the sketch (constant).
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>() + self.counts.len() * std::mem::size_of::<u64>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rank_error_stays_under_one_percent_on_lognormal_latencies() {
        // deterministic log-normal-ish sample via a simple LCG + Box-Muller
        let mut state = 42u64;
        let mut uni = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        };
        let mut values = Vec::with_capacity(200_000);
        let mut s = LatencySketch::new();
        for _ in 0..100_000 {
            let (u1, u2) = (uni(), uni());
            let r = (-2.0 * u1.ln()).sqrt();
            for z in [
                r * (2.0 * std::f64::consts::PI * u2).cos(),
                r * (2.0 * std::f64::consts::PI * u2).sin(),
            ] {
                let v = 100.0 * (0.5 * z).exp();
                values.push(v);
                s.insert(v);
            }
        }
        values.sort_unstable_by(f64::total_cmp);
        let n = values.len() as f64;
        let mut worst = 0.0f64;
        for i in 1..1000 {
            let q = f64::from(i) / 1000.0;
            let est = s.quantile(q).unwrap_or(f64::NAN);
            let rank = values.partition_point(|&v| v <= est) as f64 / n;
            worst = worst.max((rank - q).abs());
        }
        assert!(worst <= 0.01, "worst rank error {worst}");
        let before = s.memory_bytes();
        for _ in 0..100_000 {
            s.insert(1e6 * uni());
        }
        assert_eq!(s.memory_bytes(), before);
    }

    #[test]
    fn edge_values_do_not_panic() {
        let mut s = LatencySketch::new();
        assert_eq!(s.quantile(0.5), None);
        for v in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e-300, 1e300, 5.0] {
            s.insert(v);
        }
        assert_eq!(s.count(), 6);
        assert_eq!(s.quantile(0.0), Some(-1.0));
        assert_eq!(s.quantile(1.0), Some(f64::INFINITY));
        let mut t = LatencySketch::new();
        t.insert(7.0);
        s.merge(&t);
        assert_eq!(s.count(), 7);
    }
}
