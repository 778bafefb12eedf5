//! Rank statistics: Mann-Whitney U, Hodges-Lehmann shift and confidence
//! interval, Kolmogorov-Smirnov, quantiles and binomial tails.
//!
//! Every function takes *sorted*, finite samples (see [`sorted_finite`]) so a
//! judgement sorts each cohort once and sample order can never change a
//! result. All work is `O(n log n)` or better.

use crate::error::CanaryError;

/// How [`mann_whitney_u`] computes its p-value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MwMethod {
    /// Exact when there are no ties and the samples are small (the product of
    /// the sizes at most [`EXACT_MAX_PRODUCT`]), asymptotic otherwise.
    #[default]
    Auto,
    /// The exact null distribution of U (only without ties).
    Exact,
    /// The normal approximation with tie and continuity corrections.
    Asymptotic,
}

/// Largest `n1 * n2` for which [`MwMethod::Auto`] picks the exact distribution.
pub const EXACT_MAX_PRODUCT: u64 = 2500;

/// The result of a two-sided Mann-Whitney U test.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct MannWhitney {
    /// U statistic of the first sample (`R1 - n1 (n1 + 1) / 2`), as scipy reports it.
    pub u1: f64,
    /// Two-sided p-value.
    pub p_value: f64,
    /// Which method produced the p-value (never `Auto`).
    pub method: MwMethod,
    /// Whether the pooled samples contain ties.
    pub ties: bool,
}

/// The Hodges-Lehmann estimate of the shift `second - first` and its
/// distribution-free confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct HodgesLehmann {
    /// Median of all pairwise differences `second[j] - first[i]`.
    pub shift: f64,
    /// Lower end of the confidence interval.
    pub lo: f64,
    /// Upper end of the confidence interval.
    pub hi: f64,
}

/// Copies `values`, rejects NaN and infinities (naming `what` and the index)
/// and returns them sorted ascending.
///
/// ```
/// use rollgate_canary::stats::sorted_finite;
/// assert_eq!(sorted_finite("x", &[3.0, 1.0, 2.0]).unwrap(), vec![1.0, 2.0, 3.0]);
/// assert!(sorted_finite("x", &[1.0, f64::NAN]).is_err());
/// ```
pub fn sorted_finite(what: &str, values: &[f64]) -> Result<Vec<f64>, CanaryError> {
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(CanaryError::input(
            format!("{what}[{i}]"),
            format!("{} is not a finite sample", values[i]),
        ));
    }
    let mut v = values.to_vec();
    sort_floats(&mut v);
    Ok(v)
}

/// Sorts finite floats ascending and turns `-0.0` into `0.0` (one tie
/// group). Large inputs use an LSD radix sort on the order-preserving bit
/// pattern (10-bit digits, constant digits skipped), small ones pdqsort.
/// NaN must have been rejected before.
///
/// ```
/// use rollgate_canary::stats::sort_floats;
/// let mut v: Vec<f64> = (0..5000).map(|i| ((i * 7919) % 5000) as f64 - 2500.5).collect();
/// sort_floats(&mut v);
/// assert!(v.windows(2).all(|w| w[0] <= w[1]));
/// ```
pub fn sort_floats(v: &mut [f64]) {
    if v.len() < RADIX_MIN || v.len() > u32::MAX as usize {
        for x in v.iter_mut() {
            if *x == 0.0 {
                *x = 0.0;
            }
        }
        v.sort_unstable_by(f64::total_cmp);
        return;
    }
    if sort_small_whole_numbers(v) {
        return;
    }
    let keys = sorted_keys(v);
    for (o, &k) in v.iter_mut().zip(&keys) {
        *o = from_sort_key(k);
    }
}

/// Whole numbers in `[0, 2^16)` (whole milliseconds, bucket indices): a
/// counting sort, one pass to count and one to write. Gives up (`false`,
/// `v` untouched) at the first other value.
fn sort_small_whole_numbers(v: &mut [f64]) -> bool {
    const LIMIT: usize = 1 << 16;
    let mut counts = vec![0u32; LIMIT];
    for &x in v.iter() {
        // Saturating: negatives and NaN give 0, which then differs from x
        // (except -0.0, counted as 0.0 as the other paths do).
        let k = x as usize;
        if k as f64 != x || k >= LIMIT {
            return false;
        }
        counts[k] += 1;
    }
    let mut at = 0;
    for (value, &c) in counts.iter().enumerate() {
        if c > 0 {
            let c = c as usize;
            v[at..at + c].fill(value as f64);
            at += c;
        }
    }
    true
}

/// Below this many values pdqsort beats the radix sort's fixed costs.
const RADIX_MIN: usize = 4096;

const SIGN: u64 = 1 << 63;

/// The order-preserving unsigned key of a finite float: keys compare like
/// the floats, and equal keys are equal floats (`-0.0` maps to `0.0`'s key,
/// so both zeros form one tie group).
fn sort_key(x: f64) -> u64 {
    let b = if x == 0.0 { 0.0f64 } else { x }.to_bits();
    if b & SIGN != 0 { !b } else { b | SIGN }
}

fn from_sort_key(k: u64) -> f64 {
    f64::from_bits(if k & SIGN != 0 { k & !SIGN } else { !k })
}

/// The [`sort_key`]s of finite `v`, sorted ascending, by an LSD radix sort
/// (pdqsort when short). Working on keys lets the Mann-Whitney path merge
/// them directly, with no copy of the floats and no conversion back.
fn sorted_keys(v: &[f64]) -> Vec<u64> {
    // 10-bit digits: 6 passes for the 55 varying bits of typical latency
    // keys, with 4 KiB count tables and a scatter that stays cache-friendly;
    // 11-bit digits save a pass but measured slower per pass overall.
    const BITS: u32 = 10;
    const RADIX: usize = 1 << BITS;
    const MASK: u64 = RADIX as u64 - 1;
    // Digits of the absolute keys, counted while the keys are made (no
    // second pass); digits every key shares are skipped below, so only the
    // bits that vary are sorted.
    const DIGITS: usize = 64usize.div_ceil(BITS as usize);
    if v.len() < RADIX_MIN || v.len() > u32::MAX as usize {
        let mut keys: Vec<u64> = v.iter().map(|&x| sort_key(x)).collect();
        keys.sort_unstable();
        return keys;
    }
    let mut counts = vec![[0u32; RADIX]; DIGITS];
    let mut keys: Vec<u64> = v
        .iter()
        .map(|&x| {
            let k = sort_key(x);
            for (d, c) in counts.iter_mut().enumerate() {
                c[((k >> (BITS as usize * d)) & MASK) as usize] += 1;
            }
            k
        })
        .collect();
    let mut buf = vec![0u64; keys.len()];
    let n = keys.len() as u32;
    for (d, c) in counts.iter_mut().enumerate() {
        if c.contains(&n) {
            continue; // every key has the same digit here
        }
        let mut sum = 0u32;
        for slot in c.iter_mut() {
            let t = *slot;
            *slot = sum;
            sum += t;
        }
        let shift = BITS as usize * d;
        for &k in &keys {
            let digit = ((k >> shift) & MASK) as usize;
            buf[c[digit] as usize] = k;
            c[digit] += 1;
        }
        std::mem::swap(&mut keys, &mut buf);
    }
    keys
}

/// Sorts two samples, in parallel on two threads when both are large.
pub(crate) fn sort_pair(a: &mut [f64], b: &mut [f64]) {
    if a.len().min(b.len()) >= 1 << 17 {
        std::thread::scope(|s| {
            s.spawn(|| sort_floats(a));
            sort_floats(b);
        });
    } else {
        sort_floats(a);
        sort_floats(b);
    }
}

/// Mann-Whitney U on unsorted samples: rejects NaN and infinities, sorts
/// both samples (in parallel when large) and runs [`mann_whitney_u`].
///
/// ```
/// use rollgate_canary::stats::{mann_whitney_unsorted, MwMethod};
/// let r = mann_whitney_unsorted(&[3.0, 1.0, 2.0], &[6.0, 5.0, 4.0], MwMethod::Auto).unwrap();
/// assert!((r.p_value - 0.1).abs() < 1e-12);
/// ```
pub fn mann_whitney_unsorted(
    x: &[f64],
    y: &[f64],
    method: MwMethod,
) -> Result<MannWhitney, CanaryError> {
    for (what, v) in [
        ("mann-whitney first sample", x),
        ("mann-whitney second sample", y),
    ] {
        if v.is_empty() {
            return Err(CanaryError::input(what, "no samples"));
        }
        if let Some(i) = v.iter().position(|x| !x.is_finite()) {
            return Err(CanaryError::input(
                format!("{what}[{i}]"),
                format!("{} is not a finite sample", v[i]),
            ));
        }
    }
    // Heavily tied data (bucketed latencies, counts) has few distinct
    // values: rank it from two small histograms instead of sorting.
    if x.len() + y.len() >= 1 << 14
        && let Some(hx) = small_histogram(x, 2048)
        && let Some(hy) = small_histogram(y, 2048)
    {
        return mann_whitney_from_ranks(run_ranks(&hx, &hy), x.len(), y.len(), method);
    }
    // Rank the sorted keys (they order and tie exactly like the floats).
    let (kx, ky) = if x.len().min(y.len()) >= 1 << 17 {
        std::thread::scope(|s| {
            let kx = s.spawn(|| sorted_keys(x));
            let ky = sorted_keys(y);
            (kx.join().unwrap_or_else(|_| sorted_keys(x)), ky)
        })
    } else {
        (sorted_keys(x), sorted_keys(y))
    };
    mann_whitney_from_ranks(merge_ranks(&kx, &ky), x.len(), y.len(), method)
}

fn check_sorted(what: &str, v: &[f64]) -> Result<(), CanaryError> {
    if v.is_empty() {
        return Err(CanaryError::input(what, "no samples"));
    }
    if let Some(i) = v.iter().position(|x| !x.is_finite()) {
        return Err(CanaryError::input(
            format!("{what}[{i}]"),
            format!("{} is not a finite sample", v[i]),
        ));
    }
    if v.windows(2).any(|w| w[0] > w[1]) {
        return Err(CanaryError::input(what, "samples are not sorted"));
    }
    Ok(())
}

/// Rank sums of a merge of two sorted samples.
struct Ranks {
    /// Twice the rank sum of the first sample (an integer: ranks are halves).
    r1_twice: u128,
    /// Sum over tie groups of `t^3 - t`.
    tie_term: u128,
}

fn merge_ranks<T: Copy + PartialOrd + Sync>(x: &[T], y: &[T]) -> Ranks {
    untied_ranks(x, y).unwrap_or_else(|| tied_ranks(x, y))
}

/// Rank sums when the pooled samples have no ties at all (the common case
/// for continuous data), `None` otherwise. Without ties the rank of `x[i]`
/// is `i + 1` plus the number of `y` below it, so one branch-free merge
/// counting those pairs replaces the group-by-group walk of
/// [`tied_ranks`] (several times faster on large samples).
fn untied_ranks<T: Copy + PartialOrd + Sync>(x: &[T], y: &[T]) -> Option<Ranks> {
    // Ties inside one sorted sample are adjacent.
    if x.windows(2).any(|w| w[0] == w[1]) || y.windows(2).any(|w| w[0] == w[1]) {
        return None;
    }
    // The merge is one long dependency chain (each step's index feeds the
    // next load), so large inputs run its two halves on two threads: the
    // second half starts at the first y not below its first x.
    let (below, shared) = if x.len() >= 1 << 17 && y.len() >= 1 << 10 {
        let mid = x.len() / 2;
        let j0 = y.partition_point(|&v| v < x[mid]);
        std::thread::scope(|s| {
            let high = s.spawn(|| count_below(&x[mid..], y, j0));
            let (b0, s0) = count_below(&x[..mid], y, 0);
            let (b1, s1) = high.join().unwrap_or((0, true));
            (b0 + b1, s0 | s1)
        })
    } else {
        count_below(x, y, 0)
    };
    if shared {
        return None;
    }
    let n1 = x.len() as u128;
    Some(Ranks {
        r1_twice: n1 * (n1 + 1) + 2 * u128::from(below),
        tie_term: 0,
    })
}

/// The number of pairs with `y[j] < x[i]`, and whether some `x[i]` equals
/// some `y[j]`, for sorted `x` whose first value has exactly `j0` of `y`
/// below it.
fn count_below<T: Copy + PartialOrd>(x: &[T], y: &[T], j0: usize) -> (u64, bool) {
    // Each merge step waits for the previous one's index, so the loop runs
    // at load latency; two independent merges over the halves of x,
    // interleaved, keep twice as many loads in flight.
    if x.is_empty() {
        return (0, false);
    }
    let mid = x.len() / 2;
    let j1 = j0 + y[j0..].partition_point(|&v| v < x[mid]);
    let mut a = BelowMerge::new(0, mid, j0);
    let mut b = BelowMerge::new(mid, x.len(), j1);
    while a.live(y) && b.live(y) {
        a.step(x, y);
        b.step(x, y);
    }
    let (below_a, shared_a) = a.finish(x, y);
    let (below_b, shared_b) = b.finish(x, y);
    (below_a + below_b, shared_a | shared_b)
}

/// A branch-free merge of `x[i..end]` against `y`: for ascending x the
/// number of y below x[i] only grows, so each step either admits one more
/// y or closes x[i] (with `j` of them below); a closed x[i] can only equal
/// y[j], the first y not below it.
struct BelowMerge {
    i: usize,
    end: usize,
    j: usize,
    below: u64,
    shared: bool,
}

impl BelowMerge {
    fn new(i: usize, end: usize, j: usize) -> Self {
        Self {
            i,
            end,
            j,
            below: 0,
            shared: false,
        }
    }

    fn live<T>(&self, y: &[T]) -> bool {
        self.i < self.end && self.j < y.len()
    }

    #[inline(always)]
    fn step<T: Copy + PartialOrd>(&mut self, x: &[T], y: &[T]) {
        let (a, b) = (x[self.i], y[self.j]);
        let lt = b < a;
        self.shared |= !lt & (a == b);
        let step = usize::from(lt);
        self.j += step;
        self.below += ((1 - step) * self.j) as u64;
        self.i += 1 - step;
    }

    fn finish<T: Copy + PartialOrd>(mut self, x: &[T], y: &[T]) -> (u64, bool) {
        while self.live(y) {
            self.step(x, y);
        }
        // Every remaining x lies above all y (or none remains).
        let rest = (self.end - self.i) as u64 * self.j as u64;
        (self.below + rest, self.shared)
    }
}

/// Rank sums by walking the tie groups of the merged samples.
fn tied_ranks<T: Copy + PartialOrd>(x: &[T], y: &[T]) -> Ranks {
    let (mut i, mut j) = (0usize, 0usize);
    let mut pos: u128 = 0;
    let mut r1_twice: u128 = 0;
    let mut tie_term: u128 = 0;
    while i < x.len() || j < y.len() {
        let v = match (x.get(i), y.get(j)) {
            (Some(&a), Some(&b)) => {
                if b < a {
                    b
                } else {
                    a
                }
            }
            (Some(&a), None) => a,
            (None, Some(&b)) => b,
            (None, None) => break,
        };
        let i0 = i;
        while i < x.len() && x[i] == v {
            i += 1;
        }
        let j0 = j;
        while j < y.len() && y[j] == v {
            j += 1;
        }
        let cx = (i - i0) as u128;
        let t = cx + (j - j0) as u128;
        // ranks pos+1 ..= pos+t, average (2 pos + t + 1) / 2
        r1_twice += cx * (2 * pos + t + 1);
        tie_term += t * t * t - t;
        pos += t;
    }
    Ranks { r1_twice, tie_term }
}

/// Survival function of the standard normal distribution, `P(Z > z)`.
pub fn normal_sf(z: f64) -> f64 {
    0.5 * libm::erfc(z / std::f64::consts::SQRT_2)
}

/// Quantile of the standard normal distribution (`p` in `(0, 1)`).
///
/// Acklam's rational approximation refined by one Halley step on `erfc`,
/// accurate to about 1e-15.
pub fn normal_quantile(p: f64) -> f64 {
    if p.is_nan() || p <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if p >= 1.0 {
        return f64::INFINITY;
    }
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let plow = 0.02425;
    let x = if p < plow {
        let q = (-2.0 * p.ln()).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    } else if p <= 1.0 - plow {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        let q = (-2.0 * (1.0 - p).ln()).sqrt();
        -(((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    // One Halley step: e = Phi(x) - p.
    let e = 0.5 * libm::erfc(-x / std::f64::consts::SQRT_2) - p;
    let u = e * (2.0 * std::f64::consts::PI).sqrt() * (x * x / 2.0).exp();
    x - u / (1.0 + x * u / 2.0)
}

/// Exact null distribution of U for sizes `m`, `n` without ties: counts of
/// arrangements for each `u` in `0..=m*n`, or `None` when the total
/// `C(m+n, m)` does not fit 127 bits.
fn exact_counts(m: usize, n: usize) -> Option<Vec<u128>> {
    let (m, n) = (m.min(n), m.max(n));
    // C(m+n, m) fits?
    let mut total: u128 = 1;
    for k in 1..=m as u128 {
        total = total.checked_mul(n as u128 + k)? / k;
        if total > (1u128 << 126) {
            return None;
        }
    }
    let max_u = m * n;
    let mut c = vec![0i128; max_u + 1];
    c[0] = 1;
    // Gaussian binomial [m+n choose m]_q = prod_{i=1..m} (1 - q^{n+i}) / (1 - q^i).
    for i in 1..=m {
        let a = n + i;
        for u in (a..=max_u).rev() {
            c[u] -= c[u - a];
        }
        for u in i..=max_u {
            c[u] += c[u - i];
        }
    }
    c.into_iter().map(|v| u128::try_from(v).ok()).collect()
}

/// Two-sided Mann-Whitney U test of two sorted, finite samples, matching
/// `scipy.stats.mannwhitneyu(x, y, use_continuity=True,
/// alternative="two-sided", method=...)`.
///
/// The asymptotic p-value is tie-corrected and continuity-corrected; the
/// exact one uses the permutation distribution of U (no ties allowed).
///
/// ```
/// use rollgate_canary::stats::{mann_whitney_u, MwMethod};
/// let x = [1.0, 2.0, 3.0, 4.0];
/// let y = [5.0, 6.0, 7.0, 8.0];
/// let r = mann_whitney_u(&x, &y, MwMethod::Auto).unwrap();
/// assert_eq!(r.u1, 0.0);
/// assert_eq!(r.method, MwMethod::Exact);
/// assert!((r.p_value - 2.0 / 70.0).abs() < 1e-15);
/// ```
pub fn mann_whitney_u(x: &[f64], y: &[f64], method: MwMethod) -> Result<MannWhitney, CanaryError> {
    check_sorted("mann-whitney first sample", x)?;
    check_sorted("mann-whitney second sample", y)?;
    mann_whitney_sorted(x, y, method)
}

/// [`mann_whitney_u`] without re-checking that the inputs are sorted and finite.
pub(crate) fn mann_whitney_sorted(
    x: &[f64],
    y: &[f64],
    method: MwMethod,
) -> Result<MannWhitney, CanaryError> {
    mann_whitney_from_ranks(merge_ranks(x, y), x.len(), y.len(), method)
}

/// Distinct values with their counts, sorted, when `v` has at most
/// `max_distinct` distinct values (latencies in buckets, counts); `None`
/// as soon as it has more. One pass over a small open-addressing table.
fn small_histogram(v: &[f64], max_distinct: usize) -> Option<Vec<(f64, u64)>> {
    const SLOTS: usize = 1 << 12;
    debug_assert!(max_distinct * 2 <= SLOTS);
    let mut keys = vec![u64::MAX; SLOTS]; // u64::MAX is a NaN pattern: never a finite key
    let mut counts = vec![0u64; SLOTS];
    let mut distinct = 0usize;
    for &x in v {
        let x = if x == 0.0 { 0.0 } else { x };
        let bits = x.to_bits();
        let mut slot = (bits.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 52) as usize;
        loop {
            let k = keys[slot];
            if k == bits {
                counts[slot] += 1;
                break;
            }
            if k == u64::MAX {
                distinct += 1;
                if distinct > max_distinct {
                    return None;
                }
                keys[slot] = bits;
                counts[slot] = 1;
                break;
            }
            slot = (slot + 1) & (SLOTS - 1);
        }
    }
    let mut out: Vec<(f64, u64)> = keys
        .iter()
        .zip(&counts)
        .filter(|(k, _)| **k != u64::MAX)
        .map(|(k, c)| (f64::from_bits(*k), *c))
        .collect();
    out.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
    Some(out)
}

/// Rank sums from the distinct values and counts of both samples.
fn run_ranks(x: &[(f64, u64)], y: &[(f64, u64)]) -> Ranks {
    let (mut i, mut j) = (0usize, 0usize);
    let (mut pos, mut r1_twice, mut tie_term) = (0u128, 0u128, 0u128);
    while i < x.len() || j < y.len() {
        let (cx, cy) = match (x.get(i), y.get(j)) {
            (Some(a), Some(b)) if a.0 == b.0 => {
                i += 1;
                j += 1;
                (a.1, b.1)
            }
            (Some(a), Some(b)) if a.0 < b.0 => {
                i += 1;
                (a.1, 0)
            }
            (Some(a), None) => {
                i += 1;
                (a.1, 0)
            }
            (_, Some(b)) => {
                j += 1;
                (0, b.1)
            }
            (None, None) => break,
        };
        let (cx, t) = (u128::from(cx), u128::from(cx + cy));
        r1_twice += cx * (2 * pos + t + 1);
        tie_term += t * t * t - t;
        pos += t;
    }
    Ranks { r1_twice, tie_term }
}

fn mann_whitney_from_ranks(
    ranks: Ranks,
    len1: usize,
    len2: usize,
    method: MwMethod,
) -> Result<MannWhitney, CanaryError> {
    let (n1, n2) = (len1 as u128, len2 as u128);
    let ties = ranks.tie_term > 0;
    let u1_twice = ranks.r1_twice - n1 * (n1 + 1);
    let u1 = u1_twice as f64 / 2.0;
    let prod = n1 * n2;
    let u2_twice = 2 * prod - u1_twice;
    let u_twice = u1_twice.max(u2_twice);
    let use_exact = match method {
        MwMethod::Exact => {
            if ties {
                return Err(CanaryError::input(
                    "mann-whitney",
                    "the exact distribution needs samples without ties",
                ));
            }
            true
        }
        MwMethod::Asymptotic => false,
        MwMethod::Auto => !ties && prod <= EXACT_MAX_PRODUCT as u128,
    };
    if use_exact {
        let counts = exact_counts(len1, len2).ok_or_else(|| {
            CanaryError::input(
                "mann-whitney",
                format!("samples of {n1} and {n2} are too large for the exact distribution"),
            )
        })?;
        // Without ties U is an integer.
        let u = (u_twice / 2) as usize;
        let total: u128 = counts.iter().sum();
        let upper: u128 = counts[u.min(counts.len())..].iter().sum();
        let p = (2.0 * (upper as f64 / total as f64)).clamp(0.0, 1.0);
        return Ok(MannWhitney {
            u1,
            p_value: p,
            method: MwMethod::Exact,
            ties,
        });
    }
    let (fn1, fn2) = (n1 as f64, n2 as f64);
    let n = fn1 + fn2;
    let mu = fn1 * fn2 / 2.0;
    let tie = ranks.tie_term as f64;
    let s = (fn1 * fn2 / 12.0 * ((n + 1.0) - tie / (n * (n - 1.0)))).sqrt();
    let numerator = u_twice as f64 / 2.0 - mu - 0.5;
    let p = if s > 0.0 && s.is_finite() {
        (2.0 * normal_sf(numerator / s)).clamp(0.0, 1.0)
    } else {
        // Every value tied (or one sample of one each): no evidence at all.
        1.0
    };
    Ok(MannWhitney {
        u1,
        p_value: p,
        method: MwMethod::Asymptotic,
        ties,
    })
}

fn order_key(f: f64) -> i64 {
    let b = f.to_bits() as i64;
    if b < 0 { b ^ i64::MAX } else { b }
}

fn from_key(k: i64) -> f64 {
    let b = if k < 0 { k ^ i64::MAX } else { k };
    f64::from_bits(b as u64)
}

/// Number of pairs with `y[j] - x[i] <= d` (both sorted), in `O(n1 + n2)`.
fn count_le(x: &[f64], y: &[f64], d: f64) -> u64 {
    count_le_from(x, y, d, 0, 0, 0)
}

/// [`count_le`] continued from a merge state `(i, j, count)`.
fn count_le_from(x: &[f64], y: &[f64], d: f64, mut i: usize, mut j: usize, mut count: u64) -> u64 {
    // A branch-free merge: for ascending x the number of y with
    // y[j] - x[i] <= d only grows, so each step either admits one more y or
    // closes one x. The loop body compiles to conditional moves.
    let (n1, n2) = (x.len(), y.len());
    while i < n1 && j < n2 {
        let le = usize::from(y[j] - x[i] <= d);
        j += le;
        count += ((1 - le) * j) as u64;
        i += 1 - le;
    }
    count + (n1 - i) as u64 * j as u64
}

/// [`count_le`] for two thresholds in one pass. Each merge is a chain of
/// dependent loads, so running two side by side nearly halves the time of
/// two separate passes.
fn count_le_pair(x: &[f64], y: &[f64], d: [f64; 2]) -> [u64; 2] {
    let (n1, n2) = (x.len(), y.len());
    let (mut i, mut j, mut c) = ([0usize; 2], [0usize; 2], [0u64; 2]);
    while i[0] < n1 && j[0] < n2 && i[1] < n1 && j[1] < n2 {
        for t in 0..2 {
            let le = usize::from(y[j[t]] - x[i[t]] <= d[t]);
            j[t] += le;
            c[t] += ((1 - le) * j[t]) as u64;
            i[t] += 1 - le;
        }
    }
    [
        count_le_from(x, y, d[0], i[0], j[0], c[0]),
        count_le_from(x, y, d[1], i[1], j[1], c[1]),
    ]
}

/// The smallest difference `y[j] - x[i]` strictly greater than `d`.
fn next_difference_above(x: &[f64], y: &[f64], d: f64) -> f64 {
    let mut best = f64::INFINITY;
    let mut j = y.len();
    // Walking x downward the first qualifying j only moves left.
    for &xi in x.iter().rev() {
        while j > 0 && y[j - 1] - xi > d {
            j -= 1;
        }
        if let Some(&yj) = y.get(j) {
            best = best.min(yj - xi);
        }
    }
    best
}

/// A small deterministic generator (SplitMix64) for pivot sampling; the
/// answer never depends on it, only the speed.
struct SplitMix(u64);
impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// The `k`-th smallest (1-based) of the `x.len() * y.len()` differences
/// `y[j] - x[i]` of two sorted samples, in `O((n1 + n2) log)` time and
/// `O(n1 + n2)` memory (the differences are never materialised).
///
/// ```
/// use rollgate_canary::stats::kth_pairwise_difference;
/// let x = [0.0, 10.0];
/// let y = [1.0, 2.0];
/// // differences: 1, 2, -9, -8
/// assert_eq!(kth_pairwise_difference(&x, &y, 1), Some(-9.0));
/// assert_eq!(kth_pairwise_difference(&x, &y, 4), Some(2.0));
/// assert_eq!(kth_pairwise_difference(&x, &y, 5), None);
/// ```
pub fn kth_pairwise_difference(x: &[f64], y: &[f64], k: u64) -> Option<f64> {
    let total = (x.len() as u64).checked_mul(y.len() as u64)?;
    if k == 0 || k > total {
        return None;
    }
    let (n1, n2) = (x.len(), y.len());
    let mut lo = y[0] - x[n1 - 1];
    let mut hi = y[n2 - 1] - x[0];
    let mut below = 0u64; // count_le(lo), with lo the minimum: fixed below
    let mut upto = total; // count_le(hi)
    // Narrow the bracket with sampled pairs: the k-th difference lies
    // between sample quantiles a few standard errors either side of k/total.
    let s = (n1 + n2).clamp(64, 4096);
    if total > 4 * s as u64 {
        let mut rng = SplitMix(0x5EED ^ k ^ total);
        let mut sample: Vec<f64> = (0..s)
            .map(|_| y[rng.below(n2)] - x[rng.below(n1)])
            .collect();
        sample.sort_unstable_by(f64::total_cmp);
        let q = k as f64 / total as f64;
        let sd = (q * (1.0 - q) / s as f64).sqrt().max(1.0 / s as f64);
        let lo_i = ((q - 4.0 * sd) * s as f64).floor();
        let hi_i = ((q + 4.0 * sd) * s as f64).ceil();
        let lo_cand = (lo_i >= 0.0).then(|| sample[lo_i as usize]);
        let hi_cand = (hi_i < s as f64).then(|| sample[hi_i as usize]);
        let counts = match (lo_cand, hi_cand) {
            (Some(a), Some(b)) => count_le_pair(x, y, [a, b]).map(Some),
            (a, b) => [a.map(|a| count_le(x, y, a)), b.map(|b| count_le(x, y, b))],
        };
        if let (Some(cand), Some(c)) = (lo_cand, counts[0])
            && c < k
        {
            lo = cand;
            below = c;
        }
        if let (Some(cand), Some(c)) = (hi_cand, counts[1])
            && c >= k
        {
            hi = cand;
            upto = c;
        }
    }
    // Invariant from here: count_le(lo) < k <= count_le(hi), or lo is the
    // minimum difference and already the answer.
    if below == 0 {
        below = count_le(x, y, lo);
        if below >= k {
            return Some(lo);
        }
    }
    let limit = (n1 + n2) as u64 + 1024;
    // Shrink the value bracket (interpolating on the counts, with a
    // bisection every other step so skewed data still halves it) until few
    // pairs remain inside, then enumerate those pairs and select.
    for step in 0..64 {
        if upto - below <= limit {
            let mut cand = Vec::with_capacity((upto - below) as usize);
            // Pairs with lo < y[j] - x[i] <= hi: for ascending x both ends of
            // the qualifying range of j only move right.
            let (mut ja, mut jb) = (0usize, 0usize);
            for &xi in x {
                while ja < n2 && y[ja] - xi <= lo {
                    ja += 1;
                }
                while jb < n2 && y[jb] - xi <= hi {
                    jb += 1;
                }
                if ja < jb {
                    cand.extend(y[ja..jb].iter().map(|&yj| yj - xi));
                }
            }
            if cand.len() as u64 == upto - below && !cand.is_empty() {
                let idx = (k - below - 1) as usize;
                let (_, v, _) = cand.select_nth_unstable_by(idx, f64::total_cmp);
                return Some(*v);
            }
            break;
        }
        // Interpolate two probes a margin either side of k (the pairwise
        // differences are smooth inside a narrow bracket), so the bracket
        // usually closes around k from both sides; bisect when it does not.
        let span = (upto - below) as f64;
        let margin = (0.25 * limit as f64).max(0.005 * span);
        let want = (k - below) as f64;
        let probes = [
            lo + (hi - lo) * ((want - margin) / span),
            lo + (hi - lo) * ((want + margin) / span),
        ];
        let before = upto - below;
        // Count both probes in one pass; applying them in order is what
        // counting them one after the other would do (a probe outside the
        // bracket the first one left is skipped).
        let inside = |p: f64| p > lo && p < hi;
        let counts = match (inside(probes[0]), inside(probes[1])) {
            (true, true) => count_le_pair(x, y, probes),
            (a, b) => [
                if a { count_le(x, y, probes[0]) } else { 0 },
                if b { count_le(x, y, probes[1]) } else { 0 },
            ],
        };
        for (probe, c) in probes.into_iter().zip(counts) {
            if !(probe > lo && probe < hi) {
                continue;
            }
            if c >= k {
                hi = probe;
                upto = c;
            } else {
                lo = probe;
                below = c;
            }
        }
        if step > 0 && (upto - below) * 2 > before {
            let mid = lo + (hi - lo) / 2.0;
            if !(mid > lo && mid < hi) {
                break;
            }
            let c = count_le(x, y, mid);
            if c >= k {
                hi = mid;
                upto = c;
            } else {
                lo = mid;
                below = c;
            }
        }
    }
    // Fallback: bisect on the ordered bit pattern (at most 64 counts).
    let (mut lk, mut hk) = (i128::from(order_key(lo)), i128::from(order_key(hi)));
    while hk - lk > 1 {
        let mid = lk + (hk - lk) / 2;
        if count_le(x, y, from_key(mid as i64)) >= k {
            hk = mid;
        } else {
            lk = mid;
        }
    }
    Some(from_key(hk as i64))
}

/// Hodges-Lehmann estimate of the shift `y - x` (median of all pairwise
/// differences) with its `1 - alpha` confidence interval from the
/// Mann-Whitney distribution (Lehmann 1963): exact critical value when the
/// samples are small and untied, tie-corrected normal otherwise.
///
/// ```
/// use rollgate_canary::stats::hodges_lehmann;
/// let x: Vec<f64> = (0..100).map(f64::from).collect();
/// let y: Vec<f64> = (0..100).map(|v| f64::from(v) + 10.0).collect();
/// let hl = hodges_lehmann(&x, &y, 0.05).unwrap();
/// assert_eq!(hl.shift, 10.0);
/// assert!(hl.lo < 10.0 && hl.hi > 10.0);
/// ```
pub fn hodges_lehmann(x: &[f64], y: &[f64], alpha: f64) -> Result<HodgesLehmann, CanaryError> {
    check_sorted("hodges-lehmann first sample", x)?;
    check_sorted("hodges-lehmann second sample", y)?;
    if !(alpha > 0.0 && alpha < 1.0) {
        return Err(CanaryError::input(
            "hodges-lehmann alpha",
            format!("{alpha} is not in (0, 1)"),
        ));
    }
    Ok(hodges_lehmann_sorted(x, y, alpha))
}

pub(crate) fn hodges_lehmann_sorted(x: &[f64], y: &[f64], alpha: f64) -> HodgesLehmann {
    let total = x.len() as u64 * y.len() as u64;
    let kth = |k: u64| kth_pairwise_difference(x, y, k).unwrap_or(f64::NAN);
    let median = || {
        if total % 2 == 1 {
            kth(total / 2 + 1)
        } else {
            let a = kth(total / 2);
            // The next order statistic: a again when tied, else the smallest
            // difference above a (one pass instead of a second selection).
            let b = if count_le(x, y, a) > total / 2 {
                a
            } else {
                next_difference_above(x, y, a)
            };
            a + (b - a) / 2.0
        }
    };
    // c = number of differences cut from each end.
    let c = critical_count(x, y, alpha);
    let (lo_rank, hi_rank) = if c == 0 {
        (1, total)
    } else {
        (c + 1, total - c)
    };
    // The three selections are independent and exact: on large inputs run
    // each limit on its own thread (the answer never depends on it). Three
    // similar jobs on two cores finish sooner than a 1 + 2 split.
    if total >= 1 << 26 {
        std::thread::scope(|sc| {
            let lo = sc.spawn(|| kth(lo_rank));
            let hi = sc.spawn(|| kth(hi_rank));
            let shift = median();
            let lo = lo.join().unwrap_or(f64::NAN);
            let hi = hi.join().unwrap_or(f64::NAN);
            HodgesLehmann { shift, lo, hi }
        })
    } else {
        HodgesLehmann {
            shift: median(),
            lo: kth(lo_rank),
            hi: kth(hi_rank),
        }
    }
}

/// Two-sided Mann-Whitney U test over distinct values with counts (runs
/// `(value, count)`, sorted ascending by value, counts may be zero): each
/// run is one tie group, so the tie correction is exact. Equals
/// [`mann_whitney_u`] on the expanded samples, in `O(runs)`.
///
/// ```
/// use rollgate_canary::stats::{mann_whitney_runs, mann_whitney_u, MwMethod};
/// let x = [(1.0, 3), (2.0, 2)];
/// let y = [(2.0, 1), (3.0, 4)];
/// let a = mann_whitney_runs(&x, &y, MwMethod::Asymptotic).unwrap();
/// let b = mann_whitney_u(&[1.0, 1.0, 1.0, 2.0, 2.0], &[2.0, 3.0, 3.0, 3.0, 3.0], MwMethod::Asymptotic).unwrap();
/// assert_eq!(a, b);
/// ```
pub fn mann_whitney_runs(
    x: &[(f64, u64)],
    y: &[(f64, u64)],
    method: MwMethod,
) -> Result<MannWhitney, CanaryError> {
    let n1: u64 = x.iter().map(|r| r.1).sum();
    let n2: u64 = y.iter().map(|r| r.1).sum();
    for (what, n) in [
        ("mann-whitney first sample", n1),
        ("mann-whitney second sample", n2),
    ] {
        if n == 0 {
            return Err(CanaryError::input(what, "no samples"));
        }
    }
    mann_whitney_from_ranks(run_ranks(x, y), n1 as usize, n2 as usize, method)
}

/// The weighted count of pairs with `y - x <= d` and `y - x < d`, and the
/// number of (run, run) pairs with `y - x <= d`, over sorted runs.
fn count_runs(x: &[(f64, u64)], y: &[(f64, u64)], d: f64) -> (u128, u128, u64) {
    let (mut jle, mut jlt) = (0usize, 0usize);
    let (mut cum_le, mut cum_lt) = (0u128, 0u128);
    let (mut le, mut lt, mut pairs) = (0u128, 0u128, 0u64);
    for &(xv, xw) in x {
        while jle < y.len() && y[jle].0 - xv <= d {
            cum_le += u128::from(y[jle].1);
            jle += 1;
        }
        while jlt < y.len() && y[jlt].0 - xv < d {
            cum_lt += u128::from(y[jlt].1);
            jlt += 1;
        }
        le += u128::from(xw) * cum_le;
        lt += u128::from(xw) * cum_lt;
        pairs += jle as u64;
    }
    (le, lt, pairs)
}

/// The largest difference `y - x` strictly below `d` (or `d` when none).
fn difference_below(x: &[(f64, u64)], y: &[(f64, u64)], d: f64) -> f64 {
    let mut best = f64::NEG_INFINITY;
    let mut j = 0usize;
    // Walking x upward, the first y with y - x >= d only moves right.
    for &(xv, _) in x {
        while j < y.len() && y[j].0 - xv < d {
            j += 1;
        }
        if j > 0 {
            best = best.max(y[j - 1].0 - xv);
        }
    }
    if best == f64::NEG_INFINITY { d } else { best }
}

/// The `k`-th smallest (1-based) of the weighted pairwise differences
/// `y - x` of two sorted runs `(value, count)` with positive counts: the
/// same answer as [`kth_pairwise_difference`] on the expanded samples, in
/// `O((runs_x + runs_y) log)` expected time whatever the counts.
///
/// ```
/// use rollgate_canary::stats::kth_weighted_difference;
/// // x = [0, 0, 10], y = [1]: differences 1, 1, -9
/// let (x, y) = ([(0.0, 2), (10.0, 1)], [(1.0, 1)]);
/// assert_eq!(kth_weighted_difference(&x, &y, 1), Some(-9.0));
/// assert_eq!(kth_weighted_difference(&x, &y, 3), Some(1.0));
/// assert_eq!(kth_weighted_difference(&x, &y, 4), None);
/// ```
pub fn kth_weighted_difference(x: &[(f64, u64)], y: &[(f64, u64)], k: u128) -> Option<f64> {
    let x: Vec<(f64, u64)> = x.iter().copied().filter(|r| r.1 > 0).collect();
    let y: Vec<(f64, u64)> = y.iter().copied().filter(|r| r.1 > 0).collect();
    let total = x.iter().map(|r| u128::from(r.1)).sum::<u128>()
        * y.iter().map(|r| u128::from(r.1)).sum::<u128>();
    if k == 0 || k > total {
        return None;
    }
    let (nx, ny) = (x.len(), y.len());
    // Invariant: weight(<= lo) < k <= weight(<= hi); lo starts below every pair.
    let mut lo = f64::NEG_INFINITY;
    let mut below = 0u128;
    let mut hi = y[ny - 1].0 - x[0].0;
    let mut pairs_lo = 0u64;
    let mut pairs_hi = (nx * ny) as u64;
    let limit = (nx + ny) as u64 + 64;
    let mut rng = SplitMix(0x5EED ^ k as u64);
    loop {
        let inside = pairs_hi - pairs_lo;
        if inside <= limit {
            break;
        }
        // A uniformly drawn (run, run) pair inside the bracket as pivot.
        let mut r = rng.next() % inside;
        let (mut ja, mut jb) = (0usize, 0usize);
        let mut pivot = hi;
        for &(xv, _) in &x {
            while ja < ny && y[ja].0 - xv <= lo {
                ja += 1;
            }
            while jb < ny && y[jb].0 - xv <= hi {
                jb += 1;
            }
            let row = (jb - ja) as u64;
            if r < row {
                pivot = y[ja + r as usize].0 - xv;
                break;
            }
            r -= row;
        }
        let (le, lt, pairs) = count_runs(&x, &y, pivot);
        if lt < k && k <= le {
            return Some(pivot);
        }
        if le < k {
            lo = pivot;
            below = le;
            pairs_lo = pairs;
        } else {
            // Every pair at or above the pivot is out: hi is the next
            // difference below it.
            hi = difference_below(&x, &y, pivot);
            let (_, _, p) = count_runs(&x, &y, hi);
            pairs_hi = p;
        }
    }
    let mut cand: Vec<(f64, u64, u64)> = Vec::with_capacity((pairs_hi - pairs_lo) as usize);
    let (mut ja, mut jb) = (0usize, 0usize);
    for &(xv, xw) in &x {
        while ja < ny && y[ja].0 - xv <= lo {
            ja += 1;
        }
        while jb < ny && y[jb].0 - xv <= hi {
            jb += 1;
        }
        cand.extend(y[ja..jb].iter().map(|&(yv, yw)| (yv - xv, xw, yw)));
    }
    cand.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
    let mut acc = below;
    for (d, a, b) in cand {
        acc += u128::from(a) * u128::from(b);
        if acc >= k {
            return Some(d);
        }
    }
    Some(hi)
}

/// Hodges-Lehmann shift `y - x` and its `1 - alpha` interval over runs
/// `(value, count)` (distinct values with counts, sorted): the same as
/// [`hodges_lehmann`] on the expanded samples when those have ties (the
/// tie-corrected normal critical value), in time that grows with the
/// number of runs, not with the counts. `tie_term` (the sum of `t^3 - t`
/// over tie groups) sets the critical value; for histograms the tie groups
/// are the buckets.
pub(crate) fn hodges_lehmann_runs(
    x: &[(f64, u64)],
    y: &[(f64, u64)],
    tie_term: u128,
    alpha: f64,
) -> HodgesLehmann {
    let n1: u64 = x.iter().map(|r| r.1).sum();
    let n2: u64 = y.iter().map(|r| r.1).sum();
    let total = u128::from(n1) * u128::from(n2);
    let kth = |k: u128| kth_weighted_difference(x, y, k).unwrap_or(f64::NAN);
    let shift = if total % 2 == 1 {
        kth(total / 2 + 1)
    } else {
        let (a, b) = (kth(total / 2), kth(total / 2 + 1));
        a + (b - a) / 2.0
    };
    let c = u128::from(asymptotic_critical_count(n1, n2, tie_term, alpha));
    let (lo_rank, hi_rank) = if c == 0 {
        (1, total)
    } else {
        (c + 1, total - c)
    };
    HodgesLehmann {
        shift,
        lo: kth(lo_rank),
        hi: kth(hi_rank),
    }
}

/// Sum over tie groups of `t^3 - t` for runs of both samples.
pub(crate) fn runs_tie_term(x: &[(f64, u64)], y: &[(f64, u64)]) -> u128 {
    run_ranks(x, y).tie_term
}

/// The tie-corrected normal critical count of the Hodges-Lehmann interval.
fn asymptotic_critical_count(n1: u64, n2: u64, tie_term: u128, alpha: f64) -> u64 {
    let prod = n1.saturating_mul(n2);
    let (f1, f2) = (n1 as f64, n2 as f64);
    let n = f1 + f2;
    let tie = tie_term as f64;
    let s = if n > 1.0 {
        (f1 * f2 / 12.0 * ((n + 1.0) - tie / (n * (n - 1.0)))).sqrt()
    } else {
        0.0
    };
    let z = normal_quantile(1.0 - alpha / 2.0);
    let c = (prod as f64 / 2.0 - z * s - 0.5).floor();
    if c.is_finite() && c > 0.0 {
        (c as u64).min(prod.saturating_sub(1) / 2)
    } else {
        0
    }
}

/// The number `c` of extreme differences to drop from each end of the
/// ordered pairwise differences for a `1 - alpha` interval: the largest `c`
/// with `P(U <= c) <= alpha / 2` (the interval is `[d(c+1), d(N-c)]`).
fn critical_count(x: &[f64], y: &[f64], alpha: f64) -> u64 {
    let (n1, n2) = (x.len(), y.len());
    let prod = n1 as u64 * n2 as u64;
    let ties = merge_ranks(x, y).tie_term;
    if ties == 0
        && prod <= EXACT_MAX_PRODUCT
        && let Some(counts) = exact_counts(n1, n2)
    {
        let total: u128 = counts.iter().sum();
        let mut cum: u128 = 0;
        let mut c = 0u64;
        for (u, &cnt) in counts.iter().enumerate() {
            cum += cnt;
            if cum as f64 / total as f64 <= alpha / 2.0 {
                c = u as u64 + 1;
            } else {
                break;
            }
        }
        return c.saturating_sub(1).min(prod.saturating_sub(1) / 2);
    }
    asymptotic_critical_count(n1 as u64, n2 as u64, ties, alpha)
}

/// Quantile `q` in `[0, 1]` of a sorted, non-empty sample with linear
/// interpolation between order statistics (numpy's default, "type 7").
///
/// ```
/// use rollgate_canary::stats::quantile;
/// assert_eq!(quantile(&[1.0, 2.0, 3.0, 4.0], 0.5), 2.5);
/// ```
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let h = (sorted.len() - 1) as f64 * q.clamp(0.0, 1.0);
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    let frac = h - lo as f64;
    sorted[lo] + (sorted[hi] - sorted[lo]) * frac
}

/// Sum of a sample with Neumaier compensation (order-stable for sorted input).
pub fn sum(values: &[f64]) -> f64 {
    let mut s = 0.0f64;
    let mut c = 0.0f64;
    for &v in values {
        let t = s + v;
        if s.abs() >= v.abs() {
            c += (s - t) + v;
        } else {
            c += (v - t) + s;
        }
        s = t;
    }
    s + c
}

/// Kolmogorov-Smirnov distances between the empirical distributions of two
/// sorted samples: `(d_plus, d_minus)` where `d_plus = max(F_x - F_y)` (how
/// much mass `y` moved upward) and `d_minus = max(F_y - F_x)`.
pub fn ks_distances(x: &[f64], y: &[f64]) -> (f64, f64) {
    let (n1, n2) = (x.len() as f64, y.len() as f64);
    let (mut i, mut j) = (0usize, 0usize);
    let (mut dp, mut dm) = (0.0f64, 0.0f64);
    while i < x.len() && j < y.len() {
        let v = x[i].min(y[j]);
        while i < x.len() && x[i] == v {
            i += 1;
        }
        while j < y.len() && y[j] == v {
            j += 1;
        }
        let d = i as f64 / n1 - j as f64 / n2;
        dp = dp.max(d);
        dm = dm.max(-d);
    }
    (dp, dm)
}

/// Asymptotic one-sided Kolmogorov-Smirnov p-value `exp(-2 n_e d^2)` with
/// `n_e = n1 n2 / (n1 + n2)` (Smirnov's limit, conservative for small samples
/// after the Stephens correction used here).
pub fn ks_one_sided_p(d: f64, n1: usize, n2: usize) -> f64 {
    let ne = (n1 as f64 * n2 as f64) / (n1 as f64 + n2 as f64);
    let lambda = (ne.sqrt() + 0.12 + 0.11 / ne.sqrt()) * d;
    (-2.0 * lambda * lambda).exp().clamp(0.0, 1.0)
}

/// Upper tail `P(X >= k)` of a binomial `X ~ Bin(n, p)`, computed by summing
/// probability terms in log space from the nearer side (exact to rounding).
///
/// ```
/// use rollgate_canary::stats::binomial_sf;
/// assert!((binomial_sf(2, 2, 0.5) - 0.25).abs() < 1e-15);
/// assert_eq!(binomial_sf(0, 10, 0.3), 1.0);
/// ```
pub fn binomial_sf(k: u64, n: u64, p: f64) -> f64 {
    if k == 0 {
        return 1.0;
    }
    if k > n {
        return 0.0;
    }
    if p <= 0.0 {
        return 0.0;
    }
    if p >= 1.0 {
        return 1.0;
    }
    let (nf, lp, lq) = (n as f64, p.ln(), (-p).ln_1p());
    let lchoose = |i: u64| {
        libm::lgamma(nf + 1.0) - libm::lgamma(i as f64 + 1.0) - libm::lgamma((n - i) as f64 + 1.0)
    };
    let term = |i: u64| (lchoose(i) + i as f64 * lp + (n - i) as f64 * lq).exp();
    let odds = p / (1.0 - p);
    let ratio = |i: u64| (n - i) as f64 / (i + 1) as f64 * odds;
    tail_from(k, n, nf * p, term, ratio)
}

/// Exact tail of the exceedance statistic: with `n_b` baseline and `n_c`
/// canary values from one continuous distribution, the probability that at
/// least `m` canary values lie above the `r`-th largest baseline value,
///
/// ```text
/// P(K = j) = C(j + r - 1, j) C(n_c - j + n_b - r, n_c - j) / C(n_b + n_c, n_c)
/// ```
///
/// (distribution-free; ties only make the test conservative when values
/// equal to the threshold are not counted).
///
/// ```
/// use rollgate_canary::stats::exceedance_sf;
/// // 1 baseline, 1 canary value: the canary exceeds it half of the time.
/// assert!((exceedance_sf(1, 1, 1, 1) - 0.5).abs() < 1e-15);
/// assert_eq!(exceedance_sf(0, 3, 10, 10), 1.0);
/// ```
pub fn exceedance_sf(m: u64, r: u64, n_b: u64, n_c: u64) -> f64 {
    if m == 0 {
        return 1.0;
    }
    if m > n_c || r == 0 || r > n_b {
        return if m > n_c { 0.0 } else { 1.0 };
    }
    let lc =
        |a: f64, b: f64| libm::lgamma(a + 1.0) - libm::lgamma(b + 1.0) - libm::lgamma(a - b + 1.0);
    let (nb, nc, rf) = (n_b as f64, n_c as f64, r as f64);
    let total = lc(nb + nc, nc);
    let term = |j: u64| {
        let jf = j as f64;
        (lc(jf + rf - 1.0, jf) + lc(nc - jf + nb - rf, nc - jf) - total).exp()
    };
    // P(j + 1) / P(j) = (j + r) / (j + 1) · (n_c - j) / (n_c - j + n_b - r)
    let ratio = |j: u64| {
        let jf = j as f64;
        (jf + rf) / (jf + 1.0) * (nc - jf) / (nc - jf + nb - rf)
    };
    tail_from(m, n_c, nc * rf / (nb + 1.0), term, ratio)
}

/// Shares of the baseline's top that bound the upper tail test's cutoffs:
/// the top 0.05 %, 0.1 %, 0.2 %, 0.4 %, 0.8 % and 1.6 % (see [`tail_cutoffs`]).
pub const TAIL_SHARES: [f64; 6] = [0.0005, 0.001, 0.002, 0.004, 0.008, 0.016];

/// The tail test's cutoffs for `n_b` baseline values: `(r, c)` pairs with
/// strictly increasing ranks `r = ceil(n_b · share)` (clamped to
/// `1..=n_b`) over [`TAIL_SHARES`], and `c` the number of shares that map
/// to that rank (small samples merge the smallest shares into rank 1).
///
/// ```
/// use rollgate_canary::stats::tail_cutoffs;
/// assert_eq!(tail_cutoffs(2000), vec![(1, 1), (2, 1), (4, 1), (8, 1), (16, 1), (32, 1)]);
/// assert_eq!(tail_cutoffs(200), vec![(1, 4), (2, 1), (4, 1)]);
/// ```
pub fn tail_cutoffs(n_b: u64) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(TAIL_SHARES.len());
    if n_b == 0 {
        return out;
    }
    for q in TAIL_SHARES {
        // The shares are exact binary multiples of 0.0005: round the
        // product before ceil so 2000 · 0.0005 gives rank 1, not 2.
        let x = (n_b as f64 * q * 1e6).round() / 1e6;
        let r = (x.ceil() as u64).clamp(1, n_b);
        match out.last_mut() {
            Some(last) if last.0 == r => last.1 += 1,
            _ => out.push((r, 1)),
        }
    }
    out
}

/// How the upper tail test's p-value was computed (see [`tail_test`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TailMethod {
    /// The exact null distribution of the weighted sum, by dynamic
    /// programming.
    Exact,
    /// Past [`TAIL_EXACT_MAX_SUM`]: the exact probability of a sum at least
    /// that cap, an upper bound of the exact p-value (conservative).
    Capped,
    /// Samples too large for the exact distribution: Bonferroni over the
    /// cutoffs' exact exceedance tests (conservative).
    Bonferroni,
}

/// The exact tail distribution is computed while the null mean of the
/// weighted sum is at most this (about 3,000 values per cohort with the
/// default cutoffs); beyond it the test is Bonferroni over the cutoffs.
/// The choice depends on the sample sizes only, never on the data, so
/// either way the test keeps its level.
pub const TAIL_EXACT_MAX_MEAN: f64 = 100.0;

/// Largest weighted sum whose tail is computed exactly; a larger observed
/// sum gets `P(S >= TAIL_EXACT_MAX_SUM)`, which bounds its p-value from
/// above (at the largest null mean that tail is below 1e-12).
pub const TAIL_EXACT_MAX_SUM: u64 = 400;

/// One-sided upper tail test of the canary against the baseline:
/// `counts[i] = (r, c, k)` gives a cutoff (the baseline's `r`-th largest
/// value), its weight `c` and the number `k` of canary values strictly
/// above it, with `r` strictly increasing. The statistic is the weighted
/// sum `S = Σ c·k`: a canary value above the baseline's top `r_1` counts in
/// every cutoff, one just inside the widest cutoff in one, so with cutoffs
/// doubling in rank its score falls with the logarithm of its rank from
/// the top, the shape of the most powerful rank test against a slow path
/// taken by a small share of requests. Returns the p-value and how it was
/// computed.
///
/// Under the null (both cohorts from one continuous distribution) every
/// arrangement of the pooled ranks is equally likely, so the canary counts
/// between successive baseline values are a uniformly random composition
/// of `n_c` into `n_b + 1` parts; the counts at the cutoffs form a Markov
/// chain over it and the distribution of `S` follows by dynamic programming
/// over (count, partial sum), exactly. A canary stochastically smaller, or
/// ties (values equal to a cutoff are not counted), only make `S` smaller,
/// so the test stays conservative there.
///
/// ```
/// use rollgate_canary::stats::{tail_test, TailMethod};
/// // 1 baseline value, 1 canary value: the canary is above it half the time.
/// let (p, how) = tail_test(&[(1, 1, 1)], 1, 1);
/// assert!((p - 0.5).abs() < 1e-15);
/// assert_eq!(how, TailMethod::Exact);
/// ```
pub fn tail_test(counts: &[(u64, u64, u64)], n_b: u64, n_c: u64) -> (f64, TailMethod) {
    let s: u64 = counts.iter().map(|&(_, c, k)| c * k).sum();
    if s == 0 || counts.is_empty() || n_b == 0 {
        return (1.0, TailMethod::Exact);
    }
    let mean = n_c as f64 / (n_b as f64 + 1.0)
        * counts.iter().map(|&(r, c, _)| (c * r) as f64).sum::<f64>();
    if mean <= TAIL_EXACT_MAX_MEAN {
        let cuts: Vec<(u64, u64)> = counts.iter().map(|&(r, c, _)| (r, c)).collect();
        let capped = s > TAIL_EXACT_MAX_SUM;
        let p = tail_sum_sf(s.min(TAIL_EXACT_MAX_SUM), &cuts, n_b, n_c);
        let how = if capped {
            TailMethod::Capped
        } else {
            TailMethod::Exact
        };
        return (p, how);
    }
    let m = counts.len() as f64;
    let best = counts
        .iter()
        .map(|&(r, _, k)| exceedance_sf(k, r, n_b, n_c))
        .fold(1.0f64, f64::min);
    ((m * best).min(1.0), TailMethod::Bonferroni)
}

/// `P(S >= s)` for `S = Σ c_b K_b`, `K_b` the canary values above the
/// baseline's `r_b`-th largest, both cohorts from one continuous
/// distribution (see [`tail_test`]). `cuts` holds `(r_b, c_b)` with `r_b`
/// strictly increasing in `1..=n_b` and `c_b >= 1`.
///
/// Level `b` of the chain holds the probability of each `(K_b, partial
/// sum)` that can still end below `s`; paths whose sum must reach `s`
/// whatever the later counts (`partial + (c_b + later weights) · K_b >= s`)
/// leave the chain into the tail. Given `K_{b-1} = k`, the canary values
/// left (`A = n_c - k`) fall uniformly over the compositions of the
/// `n_b - r_{b-1} + 1` remaining gaps, so the `G = K_b - k` of them in the
/// `d = r_b - r_{b-1}` gaps up to the `r_b`-th baseline value have
///
/// ```text
/// P(G = g) = C(g + d - 1, d - 1) C(A - g + n_b - r_b, n_b - r_b) / C(A + n_b - r_{b-1}, n_b - r_{b-1}).
/// ```
pub fn tail_sum_sf(s: u64, cuts: &[(u64, u64)], n_b: u64, n_c: u64) -> f64 {
    if s == 0 {
        return 1.0;
    }
    let m = cuts.len();
    if m == 0 {
        return 0.0;
    }
    // later[b]: the weight of cutoff b and every later one.
    let mut later = vec![0u64; m + 1];
    for b in (0..m).rev() {
        later[b] = later[b + 1] + cuts[b].1;
    }
    let width = s as usize;
    // Level b - 1's probabilities, row k, column partial sum.
    let mut cur = vec![0.0f64; width];
    cur[0] = 1.0;
    let mut rows = 1usize;
    let mut tail = 0.0f64;
    let mut r0 = 0u64;
    let mut pmf: Vec<f64> = Vec::new();
    let mut above: Vec<f64> = Vec::new();
    let lc =
        |a: f64, b: f64| libm::lgamma(a + 1.0) - libm::lgamma(b + 1.0) - libm::lgamma(a - b + 1.0);
    for b in 0..m {
        let (r1, c) = cuts[b];
        let w = later[b];
        let last = b + 1 == m;
        // Rows of the next level: (K_b) · w < s.
        let next_rows = if last { 0 } else { ((s - 1) / w + 1) as usize };
        let mut next = vec![0.0f64; next_rows * width];
        let d = r1 - r0;
        let rest = n_b - r1;
        for k in 0..rows {
            let row = &cur[k * width..(k + 1) * width];
            let Some(s_min) = row.iter().position(|&v| v > 0.0) else {
                continue;
            };
            let k64 = k as u64;
            if k64 > n_c {
                continue;
            }
            let a = n_c - k64;
            // Smallest G that sends a path with partial sum `p` to the tail.
            let crit = |p: usize| ((s - p as u64).div_ceil(w)).saturating_sub(k64);
            let gmax = crit(s_min).min(a + 1);
            // pmf[g] for g < gmax, above[g] = P(G >= g) for g <= gmax.
            let (af, df, restf) = (a as f64, d as f64, rest as f64);
            let total = lc(af + (n_b - r0) as f64, (n_b - r0) as f64);
            let term = |g: u64| {
                let gf = g as f64;
                (lc(gf + df - 1.0, df - 1.0) + lc(af - gf + restf, restf) - total).exp()
            };
            // P(G = g + 1) / P(G = g).
            let ratio = |g: u64| {
                let gf = g as f64;
                (gf + df) / (gf + 1.0) * (af - gf) / (af - gf + restf)
            };
            pmf.clear();
            let mut t = 0.0;
            for g in 0..gmax {
                t = if g % 64 == 0 {
                    term(g)
                } else {
                    t * ratio(g - 1)
                };
                pmf.push(t);
            }
            // P(G >= gmax), summed upward until the terms stop counting.
            let mean = df * af / ((n_b - r0) as f64 + 1.0);
            let mut hi = 0.0;
            if gmax <= a {
                let mut g = gmax;
                let mut t = term(g);
                loop {
                    hi += t;
                    if g == a
                        || (t < hi * 1e-18 && g as f64 > mean)
                        || (t == 0.0 && g as f64 > mean)
                    {
                        break;
                    }
                    let q = ratio(g);
                    g += 1;
                    t = if (g - gmax) % 64 == 0 || !(q.is_finite() && q >= 0.0) {
                        term(g)
                    } else {
                        t * q
                    };
                }
            }
            above.clear();
            above.resize(gmax as usize + 1, 0.0);
            above[gmax as usize] = hi;
            for g in (0..gmax as usize).rev() {
                above[g] = above[g + 1] + pmf[g];
            }
            for (p, &pr) in row.iter().enumerate().skip(s_min) {
                if pr == 0.0 {
                    continue;
                }
                let g_crit = crit(p).min(gmax) as usize;
                tail += pr * above[g_crit];
                if last {
                    continue;
                }
                for (g, &q) in pmf.iter().enumerate().take(g_crit) {
                    let k2 = k + g;
                    next[k2 * width + p + c as usize * k2] += pr * q;
                }
            }
        }
        cur = next;
        rows = next_rows;
        r0 = r1;
    }
    tail.min(1.0)
}

/// `P(X >= k)` for a distribution on `0..=n` with probability mass `term`
/// and mean `mean`, for `1 <= k <= n`: summed upward from `k` when `k` lies
/// above the mean, else as `1 - P(X <= k - 1)` summed downward, so the sum
/// always runs away from the mode and stops once terms no longer count.
/// `ratio(i)` is `term(i + 1) / term(i)`: successive terms come from it
/// (one multiplication instead of several log-gamma evaluations), with an
/// exact `term` every 64 steps and wherever the ratio is not usable.
fn tail_from(
    k: u64,
    n: u64,
    mean: f64,
    term: impl Fn(u64) -> f64,
    ratio: impl Fn(u64) -> f64,
) -> f64 {
    const ANCHOR: u64 = 64;
    if k as f64 >= mean {
        let mut s = 0.0;
        let mut i = k;
        let mut t = term(k);
        loop {
            s += t;
            if i == n || (t < s * 1e-18 && i as f64 > mean) {
                break;
            }
            let r = ratio(i);
            i += 1;
            t = if (i - k).is_multiple_of(ANCHOR) || !(r.is_finite() && r > 0.0) {
                term(i)
            } else {
                t * r
            };
        }
        s.min(1.0)
    } else {
        let mut s = 0.0;
        let mut i = k - 1;
        let mut t = term(i);
        loop {
            s += t;
            if i == 0 || (t < s * 1e-18 && (i as f64) < mean) {
                break;
            }
            let r = ratio(i - 1);
            i -= 1;
            t = if (k - 1 - i).is_multiple_of(ANCHOR) || !(r.is_finite() && r > 0.0) {
                term(i)
            } else {
                t / r
            };
        }
        (1.0 - s).clamp(0.0, 1.0)
    }
}

/// Lower tail `P(X <= k)` of a binomial `X ~ Bin(n, p)`.
pub fn binomial_cdf(k: u64, n: u64, p: f64) -> f64 {
    if k >= n {
        return 1.0;
    }
    (1.0 - binomial_sf(k + 1, n, p)).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brute_kth(x: &[f64], y: &[f64], k: u64) -> f64 {
        let mut d: Vec<f64> = x
            .iter()
            .flat_map(|a| y.iter().map(move |b| b - a))
            .collect();
        d.sort_unstable_by(f64::total_cmp);
        d[(k - 1) as usize]
    }

    #[test]
    fn kth_difference_matches_brute_force_including_ties() {
        let mut rng = SplitMix(7);
        for case in 0..200 {
            let n1 = 1 + rng.below(40);
            let n2 = 1 + rng.below(40);
            let levels = if case % 2 == 0 { 5 } else { 1000 };
            let mut x: Vec<f64> = (0..n1).map(|_| rng.below(levels) as f64 * 0.5).collect();
            let mut y: Vec<f64> = (0..n2).map(|_| rng.below(levels) as f64 * 0.5).collect();
            x.sort_unstable_by(f64::total_cmp);
            y.sort_unstable_by(f64::total_cmp);
            let total = (n1 * n2) as u64;
            for k in [1, total / 3 + 1, total / 2 + 1, total] {
                assert_eq!(
                    kth_pairwise_difference(&x, &y, k),
                    Some(brute_kth(&x, &y, k)),
                    "case {case} k {k}"
                );
            }
        }
    }

    fn runs_of(v: &[f64]) -> Vec<(f64, u64)> {
        let mut out: Vec<(f64, u64)> = Vec::new();
        for &x in v {
            match out.last_mut() {
                Some(last) if last.0 == x => last.1 += 1,
                _ => out.push((x, 1)),
            }
        }
        out
    }

    #[test]
    fn weighted_statistics_equal_the_expanded_samples() {
        let mut rng = SplitMix(29);
        for case in 0..300 {
            let (n1, n2) = (1 + rng.below(60), 1 + rng.below(60));
            let levels = [1, 2, 4, 9, 40, 1000][case % 6];
            let draw = |rng: &mut SplitMix, n: usize, off: usize| {
                let mut v: Vec<f64> = (0..n)
                    .map(|_| (rng.below(levels) + off) as f64 * 0.25)
                    .collect();
                v.sort_unstable_by(f64::total_cmp);
                v
            };
            let (x, y) = (draw(&mut rng, n1, 0), draw(&mut rng, n2, case % 3));
            let (rx, ry) = (runs_of(&x), runs_of(&y));
            let total = (n1 * n2) as u64;
            for k in [1, total / 4 + 1, total / 2, total / 2 + 1, total - 1, total] {
                let k = k.clamp(1, total);
                assert_eq!(
                    kth_weighted_difference(&rx, &ry, u128::from(k)),
                    Some(brute_kth(&x, &y, k)),
                    "case {case} k {k}"
                );
            }
            assert_eq!(
                mann_whitney_runs(&rx, &ry, MwMethod::Asymptotic).ok(),
                mann_whitney_u(&x, &y, MwMethod::Asymptotic).ok(),
                "case {case}"
            );
            let tie = runs_tie_term(&rx, &ry);
            if tie > 0 {
                assert_eq!(
                    hodges_lehmann_runs(&rx, &ry, tie, 0.05),
                    hodges_lehmann_sorted(&x, &y, 0.05),
                    "case {case}"
                );
            }
        }
        // Zero-count runs (empty buckets) change nothing.
        let (x, y) = ([(1.0, 2), (2.0, 0), (3.0, 1)], [(0.0, 0), (2.0, 3)]);
        assert_eq!(kth_weighted_difference(&x, &y, 1), Some(-1.0));
        assert_eq!(kth_weighted_difference(&x, &y, 9), Some(1.0));
        assert_eq!(kth_weighted_difference(&x, &y, 10), None);
        // Huge counts stay exact: 2^39 x 2^39 pairs.
        let big = 1u64 << 39;
        let (x, y) = ([(0.0, big), (1.0, big)], [(0.0, big), (5.0, big)]);
        let quarter = u128::from(big) * u128::from(big);
        assert_eq!(kth_weighted_difference(&x, &y, quarter), Some(-1.0));
        assert_eq!(kth_weighted_difference(&x, &y, quarter + 1), Some(0.0));
        assert_eq!(kth_weighted_difference(&x, &y, 4 * quarter), Some(5.0));
    }

    #[test]
    fn kth_difference_large_sample_uses_bracket() {
        let mut rng = SplitMix(11);
        let mut x: Vec<f64> = (0..1500).map(|_| (rng.next() % 100_000) as f64).collect();
        let mut y: Vec<f64> = (0..1000)
            .map(|_| (rng.next() % 100_000) as f64 + 7.0)
            .collect();
        x.sort_unstable_by(f64::total_cmp);
        y.sort_unstable_by(f64::total_cmp);
        for k in [1u64, 17, 750_000, 1_499_999, 1_500_000] {
            assert_eq!(
                kth_pairwise_difference(&x, &y, k),
                Some(brute_kth(&x, &y, k))
            );
        }
    }

    #[test]
    fn histogram_path_equals_sorted_path() {
        let mut rng = SplitMix(3);
        for levels in [1usize, 3, 50, 2000, 5000] {
            let x: Vec<f64> = (0..20_000)
                .map(|_| rng.below(levels) as f64 * 0.5)
                .collect();
            let y: Vec<f64> = (0..15_000)
                .map(|_| rng.below(levels) as f64 * 0.5 + 0.5)
                .collect();
            let fast = mann_whitney_unsorted(&x, &y, MwMethod::Asymptotic).ok();
            let (xs, ys) = (sorted_finite("x", &x).ok(), sorted_finite("y", &y).ok());
            let slow = xs
                .zip(ys)
                .and_then(|(a, b)| mann_whitney_u(&a, &b, MwMethod::Asymptotic).ok());
            assert_eq!(fast, slow, "levels {levels}");
        }
        assert!(
            small_histogram(&[0.0, -0.0, 1.0], 4).is_some_and(|h| h == vec![(0.0, 2), (1.0, 1)])
        );
    }

    #[test]
    fn untied_fast_path_equals_tie_group_walk() {
        let mut rng = SplitMix(19);
        for case in 0..300 {
            let (n1, n2) = (1 + rng.below(300), 1 + rng.below(300));
            // Few levels give ties (fast path must decline), many give none.
            let levels = if case % 3 == 0 { 50 } else { 1 << 40 };
            let draw = |rng: &mut SplitMix, n: usize| {
                let mut v: Vec<f64> = (0..n).map(|_| rng.below(levels) as f64 - 7.5).collect();
                v.sort_unstable_by(f64::total_cmp);
                v
            };
            let (x, y) = (draw(&mut rng, n1), draw(&mut rng, n2));
            let slow = tied_ranks(&x, &y);
            match untied_ranks(&x, &y) {
                Some(fast) => {
                    assert_eq!(slow.tie_term, 0, "case {case}");
                    assert_eq!(fast.r1_twice, slow.r1_twice, "case {case}");
                }
                None => assert!(slow.tie_term > 0, "case {case}"),
            }
            let (kx, ky): (Vec<u64>, Vec<u64>) = (
                x.iter().map(|&v| sort_key(v)).collect(),
                y.iter().map(|&v| sort_key(v)).collect(),
            );
            let on_keys = merge_ranks(&kx, &ky);
            assert_eq!(on_keys.r1_twice, slow.r1_twice, "case {case}");
            assert_eq!(on_keys.tie_term, slow.tie_term, "case {case}");
            let d = [rng.below(20) as f64 - 10.0, rng.below(200) as f64 - 100.0];
            assert_eq!(
                count_le_pair(&x, &y, d),
                [count_le(&x, &y, d[0]), count_le(&x, &y, d[1])],
                "case {case}"
            );
        }
        // A value shared between the samples (only) is a tie too.
        assert!(untied_ranks(&[1.0, 2.0], &[2.0, 3.0]).is_none());
    }

    #[test]
    fn radix_keys_sort_like_floats() {
        let mut rng = SplitMix(23);
        let v: Vec<f64> = (0..20_000)
            .map(|i| match i % 4 {
                0 => -0.0,
                1 => (rng.next() >> 11) as f64 * 1e-9 - 4e3,
                _ => f64::from_bits(rng.next() >> 2),
            })
            .collect();
        let mut want = v.clone();
        for x in want.iter_mut() {
            if *x == 0.0 {
                *x = 0.0;
            }
        }
        want.sort_unstable_by(f64::total_cmp);
        let mut got = v.clone();
        sort_floats(&mut got);
        assert_eq!(
            got.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            want.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        );
        let keys = sorted_keys(&v);
        assert!(
            keys.iter()
                .zip(&want)
                .all(|(&k, &w)| from_sort_key(k).to_bits() == w.to_bits())
        );
    }

    #[test]
    fn exact_distribution_sums_to_binomial() {
        let c = exact_counts(5, 7).unwrap_or_default();
        assert_eq!(c.iter().sum::<u128>(), 792);
        assert_eq!(c.len(), 36);
        // symmetric
        assert!(c.iter().zip(c.iter().rev()).all(|(a, b)| a == b));
    }

    #[test]
    fn normal_quantile_inverts_sf() {
        for p in [1e-12, 1e-6, 0.01, 0.3, 0.5, 0.9, 0.995, 1.0 - 1e-9] {
            let z = normal_quantile(p);
            assert!((normal_sf(-z) - p).abs() < 1e-14 * p.max(1e-2), "p {p}");
        }
    }

    #[test]
    fn all_tied_samples_give_p_one() {
        let r = mann_whitney_u(&[1.0, 1.0], &[1.0, 1.0, 1.0], MwMethod::Auto).unwrap();
        assert_eq!(r.p_value, 1.0);
        assert!(r.ties);
    }

    #[test]
    fn exceedance_distribution_matches_enumeration() {
        // Every arrangement of 4 baseline (B) and 3 canary (C) ranks is
        // equally likely under H0; count canary values above the 2nd largest B.
        let (nb, nc, r) = (4usize, 3usize, 2usize);
        let n = nb + nc;
        let mut hist = [0u32; 4];
        let mut total = 0u32;
        for mask in 0u32..(1 << n) {
            if mask.count_ones() as usize != nc {
                continue;
            }
            // positions sorted ascending; bit set = canary
            let mut seen_b = 0;
            let mut above = 0;
            for pos in (0..n).rev() {
                if mask & (1 << pos) != 0 {
                    if seen_b < r {
                        above += 1;
                    }
                } else {
                    seen_b += 1;
                }
            }
            hist[above] += 1;
            total += 1;
        }
        for m in 0..=3u64 {
            let want: u32 = hist[m as usize..].iter().sum();
            let got = exceedance_sf(m, r as u64, nb as u64, nc as u64);
            assert!(
                (got - f64::from(want) / f64::from(total)).abs() < 1e-12,
                "m {m}"
            );
        }
    }

    /// Every arrangement of `nb` baseline and `nc` canary ranks, equally
    /// likely under H0: the distribution of `Σ c·K_r` by enumeration.
    fn tail_sum_by_enumeration(nb: usize, nc: usize, cuts: &[(u64, u64)]) -> Vec<u64> {
        let n = nb + nc;
        let mut hist = Vec::new();
        for mask in 0u32..(1 << n) {
            if mask.count_ones() as usize != nc {
                continue;
            }
            let mut sum = 0u64;
            for &(r, c) in cuts {
                let (mut seen_b, mut above) = (0u64, 0u64);
                for pos in (0..n).rev() {
                    if mask & (1 << pos) != 0 {
                        above += u64::from(seen_b < r);
                    } else {
                        seen_b += 1;
                    }
                }
                sum += c * above;
            }
            if hist.len() <= sum as usize {
                hist.resize(sum as usize + 1, 0);
            }
            hist[sum as usize] += 1;
        }
        hist
    }

    #[test]
    fn tail_sum_distribution_matches_enumeration() {
        for (nb, nc, cuts) in [
            (4usize, 3usize, vec![(1u64, 1u64), (2, 1)]),
            (6, 6, vec![(1, 1), (2, 1), (4, 1)]),
            (7, 5, vec![(2, 1), (4, 2), (7, 1)]),
            (5, 9, vec![(1, 3), (3, 1), (4, 1)]),
            (9, 4, vec![(1, 1), (2, 1), (4, 1), (8, 1)]),
            (8, 8, vec![(1, 4), (2, 1), (4, 1)]),
            (3, 1, vec![(3, 1)]),
        ] {
            let hist = tail_sum_by_enumeration(nb, nc, &cuts);
            let total: u64 = hist.iter().sum();
            for s in 0..hist.len() as u64 + 2 {
                let want: u64 = hist.iter().skip(s as usize).sum();
                let want = want as f64 / total as f64;
                let got = tail_sum_sf(s, &cuts, nb as u64, nc as u64);
                assert!(
                    (got - want).abs() <= 1e-13 * want.max(1e-300) || (got - want).abs() < 1e-15,
                    "{nb} {nc} {cuts:?} s {s}: {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn tail_sum_agrees_with_the_python_reference_at_2000() {
        // `benches/canary/tail_test.py` (dictionary DP summing whole pmfs,
        // itself checked against enumeration) on seven cutoffs 1..64. Each
        // term comes from log-gamma values near 3e4 on both sides, so each
        // carries a relative error near 1e-12: 1e-10 is what can be asked.
        let cuts: Vec<(u64, u64)> = (0..7).map(|i| (1u64 << i, 1u64)).collect();
        for (s, want) in [
            (146u64, 2.312375840442529e-01),
            (362, 3.629144917762087e-09),
        ] {
            let got = tail_sum_sf(s, &cuts, 2000, 2000);
            assert!((got - want).abs() <= 1e-10 * want, "s {s}: {got} vs {want}");
        }
    }

    #[test]
    fn tail_test_is_exact_then_capped_then_bonferroni() {
        // A single cutoff: the weighted sum is the exceedance count.
        for (m, r, nb, nc) in [
            (5u64, 3u64, 50u64, 40u64),
            (12, 20, 2000, 2000),
            (1, 1, 10, 10),
        ] {
            let (p, how) = tail_test(&[(r, 1, m)], nb, nc);
            let want = exceedance_sf(m, r, nb, nc);
            assert_eq!(how, TailMethod::Exact);
            assert!((p - want).abs() <= 1e-12 * want, "{m} {r}: {p} vs {want}");
        }
        let cuts = tail_cutoffs(2000);
        let with = |ks: [u64; 6]| -> Vec<(u64, u64, u64)> {
            cuts.iter().zip(ks).map(|(&(r, c), k)| (r, c, k)).collect()
        };
        let (p, how) = tail_test(&with([1, 2, 4, 8, 16, 32]), 2000, 2000);
        assert_eq!(how, TailMethod::Exact);
        assert!(p > 0.3 && p < 0.8, "null-like counts: {p}");
        // Past the cap: the tail at the cap, an upper bound, still tiny.
        let (p, how) = tail_test(&with([20, 40, 60, 80, 100, 120]), 2000, 2000);
        assert_eq!(how, TailMethod::Capped);
        assert_eq!(p, tail_sum_sf(TAIL_EXACT_MAX_SUM, &cuts, 2000, 2000));
        assert!(p < 1e-12, "{p}");
        // Exact p-values fall as the sum grows.
        let a = tail_test(&with([1, 3, 6, 12, 20, 40]), 2000, 2000).0;
        let b = tail_test(&with([1, 3, 6, 12, 21, 40]), 2000, 2000).0;
        assert!(b < a);
        // Large samples: Bonferroni over the cutoffs' exceedance tests.
        let n = 100_000;
        let big: Vec<(u64, u64, u64)> = tail_cutoffs(n).iter().map(|&(r, c)| (r, c, r)).collect();
        let (p, how) = tail_test(&big, n, n);
        assert_eq!(how, TailMethod::Bonferroni);
        let best = big
            .iter()
            .map(|&(r, _, k)| exceedance_sf(k, r, n, n))
            .fold(1.0f64, f64::min);
        assert_eq!(p, (6.0 * best).min(1.0));
        // The cap's bound stays negligible at the largest exact null mean.
        let nb = 3000;
        let cuts = tail_cutoffs(nb);
        let mean =
            cuts.iter().map(|&(r, c)| (r * c) as f64).sum::<f64>() * nb as f64 / (nb as f64 + 1.0);
        assert!(mean <= TAIL_EXACT_MAX_MEAN && mean > 90.0, "{mean}");
        assert!(tail_sum_sf(TAIL_EXACT_MAX_SUM, &cuts, nb, nb) < 1e-10);
    }

    #[test]
    fn tails_by_ratio_recurrence_equal_term_by_term_sums() {
        // The old evaluation: every term from log-gamma. At n = 10^5 the
        // log-gamma values are ~10^6, so each term carries a relative error
        // near 1e-10 either way: agreement to 1e-9 is what can be asked.
        let lc = |a: f64, b: f64| {
            libm::lgamma(a + 1.0) - libm::lgamma(b + 1.0) - libm::lgamma(a - b + 1.0)
        };
        let exceed = |m: u64, r: u64, nb: u64, nc: u64| {
            let (nbf, ncf, rf) = (nb as f64, nc as f64, r as f64);
            let total = lc(nbf + ncf, ncf);
            (m..=nc)
                .map(|j| {
                    let jf = j as f64;
                    (lc(jf + rf - 1.0, jf) + lc(ncf - jf + nbf - rf, ncf - jf) - total).exp()
                })
                .sum::<f64>()
                .min(1.0)
        };
        for (m, r, nb, nc) in [
            (60u64, 20u64, 2000u64, 2000u64),
            (50_200, 50_000, 100_000, 100_000),
            (49_800, 50_000, 100_000, 100_000),
            (1_100, 1_000, 100_000, 100_000),
            (3, 1, 10, 10),
        ] {
            let (got, want) = (exceedance_sf(m, r, nb, nc), exceed(m, r, nb, nc));
            assert!(
                (got - want).abs() <= 1e-9 * want.max(1e-300) || (got - want).abs() < 1e-13,
                "exceedance {m} {r} {nb} {nc}: {got} vs {want}"
            );
        }
        let binom = |k: u64, n: u64, p: f64| {
            let nf = n as f64;
            (k..=n)
                .map(|i| {
                    (lc(nf, i as f64) + i as f64 * p.ln() + (n - i) as f64 * (-p).ln_1p()).exp()
                })
                .sum::<f64>()
                .min(1.0)
        };
        for (k, n, p) in [
            (130u64, 200u64, 0.6),
            (5_100, 10_000, 0.5),
            (12, 1000, 0.004),
        ] {
            let (got, want) = (binomial_sf(k, n, p), binom(k, n, p));
            assert!(
                (got - want).abs() <= 1e-9 * want.max(1e-300) || (got - want).abs() < 1e-13,
                "binomial {k} {n} {p}: {got} vs {want}"
            );
        }
    }

    #[test]
    fn binomial_tails_are_complementary() {
        for (k, n, p) in [
            (3u64, 10u64, 0.2),
            (50, 100, 0.5),
            (0, 5, 0.1),
            (999, 1000, 0.999),
        ] {
            let total = binomial_sf(k, n, p) + binomial_cdf(k.saturating_sub(1), n, p);
            if k > 0 {
                assert!((total - 1.0).abs() < 1e-12, "{k} {n} {p}");
            }
        }
        // P(X >= 3) for Bin(10, 0.2) = 0.3222004736
        assert!((binomial_sf(3, 10, 0.2) - 0.322_200_473_6).abs() < 1e-10);
    }
}
