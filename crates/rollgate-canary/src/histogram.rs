//! Histogram samples: cumulative buckets as Prometheus exposes them, their
//! validation, `histogram_quantile` and the rank statistics over buckets.
//!
//! A [`Histogram`] is always valid: its bounds (`le`) increase strictly and
//! end with `+Inf`, its cumulative counts never decrease, and its total fits
//! [`MAX_OBSERVATIONS`]. Every constructor checks this and names the
//! offending index; the judge adds the metric and cohort.

use std::fmt;

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};

use crate::error::CanaryError;

/// Largest number of observations one histogram may hold (2^40, about
/// 1.1·10^12): the rank sums and tie terms of the Mann-Whitney test over two
/// histograms are then exact in 128-bit integers.
pub const MAX_OBSERVATIONS: u64 = 1 << 40;

/// Cumulative histogram buckets: `counts[i]` observations were `<= le[i]`.
///
/// This is Prometheus's classic histogram (`_bucket{le="..."}` series) for
/// one cohort over one window: take the increase of each bucket series over
/// the window and put them in order of `le`.
///
/// ```
/// use rollgate_canary::Histogram;
/// let h = Histogram::new(
///     vec![0.1, 0.25, 0.5, 1.0, f64::INFINITY],
///     vec![10, 60, 90, 99, 100],
/// )?;
/// assert_eq!(h.count(), 100);
/// // As PromQL's histogram_quantile(0.5, ...) answers: linear inside the bucket.
/// assert!((h.quantile(0.5) - 0.22).abs() < 1e-12);
/// // Anything in the +Inf bucket reports the highest finite bound.
/// assert_eq!(h.quantile(0.999), 1.0);
/// assert!(Histogram::new(vec![0.1, 0.2], vec![1, 2]).is_err()); // no +Inf
/// # Ok::<(), rollgate_canary::CanaryError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    le: Vec<f64>,
    cumulative: Vec<u64>,
    sum: Option<f64>,
}

/// Why a set of buckets is not a histogram: the index (`le[3]`,
/// `counts[2]`, or none for the whole) and the reason.
pub(crate) type Invalid = (String, String);

impl Histogram {
    /// Buckets from their upper bounds (the last one `f64::INFINITY`) and
    /// cumulative counts. Errors name the offending index.
    pub fn new(le: Vec<f64>, cumulative: Vec<u64>) -> Result<Self, CanaryError> {
        Self::checked(le, cumulative, None)
            .map_err(|(at, why)| CanaryError::input(format!("histogram{at}"), why))
    }

    /// Buckets from cumulative counts given as floats, as the Prometheus
    /// exposition format and HTTP API write them: each count must be a
    /// whole number in `0..=2^40` (a fractional, negative or too large
    /// count is an error naming its index).
    ///
    /// ```
    /// use rollgate_canary::Histogram;
    /// let h = Histogram::from_f64_counts(vec![1.0, f64::INFINITY], &[3.0, 5.0])?;
    /// assert_eq!(h.cumulative_counts(), &[3, 5]);
    /// assert!(Histogram::from_f64_counts(vec![1.0, f64::INFINITY], &[3.0, 2.5]).is_err());
    /// # Ok::<(), rollgate_canary::CanaryError>(())
    /// ```
    pub fn from_f64_counts(le: Vec<f64>, cumulative: &[f64]) -> Result<Self, CanaryError> {
        let counts = cumulative
            .iter()
            .enumerate()
            .map(|(i, &c)| whole_count(c).map_err(|why| (format!(".counts[{i}]"), why)))
            .collect::<Result<Vec<u64>, Invalid>>()
            .map_err(|(at, why)| CanaryError::input(format!("histogram{at}"), why))?;
        Self::new(le, counts)
    }

    /// The same histogram with the sum of its observations (Prometheus's
    /// `_sum` series), which gives the mean. The sum must be finite.
    pub fn with_sum(mut self, sum: f64) -> Result<Self, CanaryError> {
        if !sum.is_finite() {
            return Err(CanaryError::input(
                "histogram.sum",
                format!("{sum} is not a finite sum"),
            ));
        }
        self.sum = Some(sum);
        Ok(self)
    }

    pub(crate) fn checked(
        le: Vec<f64>,
        cumulative: Vec<u64>,
        sum: Option<f64>,
    ) -> Result<Self, Invalid> {
        validate(&le, &cumulative)?;
        if let Some(s) = sum
            && !s.is_finite()
        {
            return Err((".sum".into(), format!("{s} is not a finite sum")));
        }
        Ok(Self {
            le,
            cumulative,
            sum,
        })
    }

    /// Upper bounds, strictly increasing, the last one `+Inf`.
    pub fn upper_bounds(&self) -> &[f64] {
        &self.le
    }

    /// Cumulative counts, one per bound, never decreasing.
    pub fn cumulative_counts(&self) -> &[u64] {
        &self.cumulative
    }

    /// The sum of the observations, when known.
    pub fn sum(&self) -> Option<f64> {
        self.sum
    }

    /// Number of observations (the `+Inf` bucket's count).
    pub fn count(&self) -> u64 {
        self.cumulative.last().copied().unwrap_or(0)
    }

    /// Observations per bucket (not cumulative), in bound order.
    pub fn bucket_counts(&self) -> impl Iterator<Item = u64> + '_ {
        self.cumulative
            .iter()
            .scan(0u64, |prev, &c| Some(c - std::mem::replace(prev, c)))
    }

    /// The mean, when the sum is known and there are observations.
    pub fn mean(&self) -> Option<f64> {
        let n = self.count();
        self.sum.filter(|_| n > 0).map(|s| s / n as f64)
    }

    /// The `q`-quantile exactly as PromQL's `histogram_quantile(q, ...)`
    /// computes it (Prometheus 2.x `bucketQuantile`): the bucket holding
    /// rank `q·count` is found and the value interpolated linearly inside
    /// it; the first bucket starts at 0 (or is its own bound when that is
    /// not positive), and a rank in the `+Inf` bucket reports the highest
    /// finite bound. `NaN` when there are no observations; `-Inf`/`+Inf`
    /// for `q` below 0 or above 1, as PromQL does.
    pub fn quantile(&self, q: f64) -> f64 {
        if q.is_nan() {
            return f64::NAN;
        }
        if q < 0.0 {
            return f64::NEG_INFINITY;
        }
        if q > 1.0 {
            return f64::INFINITY;
        }
        let n = self.le.len();
        let observations = self.count() as f64;
        if n < 2 || observations == 0.0 {
            return f64::NAN;
        }
        let rank = q * observations;
        // sort.Search over all but the +Inf bucket: the first with count >= rank.
        let b = self.cumulative[..n - 1].partition_point(|&c| (c as f64) < rank);
        if b == n - 1 {
            return self.le[n - 2];
        }
        if b == 0 && self.le[0] <= 0.0 {
            return self.le[0];
        }
        let (mut start, end) = (0.0, self.le[b]);
        let mut count = self.cumulative[b] as f64;
        let mut rank = rank;
        if b > 0 {
            start = self.le[b - 1];
            count -= self.cumulative[b - 1] as f64;
            rank -= self.cumulative[b - 1] as f64;
        }
        start + (end - start) * (rank / count)
    }

    /// Both histograms on their common bounds (the bounds they share; the
    /// cumulative count at a shared bound is exact in each), so their
    /// buckets line up. Errors when they share no finite bound.
    pub fn common_bounds(a: &Histogram, b: &Histogram) -> Result<(Histogram, Histogram), String> {
        if a.le == b.le {
            return Ok((a.clone(), b.clone()));
        }
        let (mut i, mut j) = (0, 0);
        let (mut le, mut ca, mut cb) = (Vec::new(), Vec::new(), Vec::new());
        while i < a.le.len() && j < b.le.len() {
            let (x, y) = (a.le[i], b.le[j]);
            if x == y {
                le.push(x);
                ca.push(a.cumulative[i]);
                cb.push(b.cumulative[j]);
                i += 1;
                j += 1;
            } else if x < y {
                i += 1;
            } else {
                j += 1;
            }
        }
        if le.len() < 2 {
            return Err(format!(
                "the baseline's bucket bounds ({}) and the canary's ({}) share no finite bound",
                bounds_text(&a.le),
                bounds_text(&b.le)
            ));
        }
        let keep = |le: Vec<f64>, c: Vec<u64>, s: Option<f64>| Histogram {
            le,
            cumulative: c,
            sum: s,
        };
        Ok((keep(le.clone(), ca, a.sum), keep(le, cb, b.sum)))
    }
}

fn bounds_text(le: &[f64]) -> String {
    let shown: Vec<String> = le.iter().take(6).map(|v| fmt_bound(*v)).collect();
    if le.len() > 6 {
        format!("{}, ... {} bounds", shown.join(", "), le.len())
    } else {
        shown.join(", ")
    }
}

fn fmt_bound(v: f64) -> String {
    if v == f64::INFINITY {
        "+Inf".into()
    } else {
        format!("{v}")
    }
}

/// A count given as a float: a whole number in `0..=MAX_OBSERVATIONS`.
pub(crate) fn whole_count(c: f64) -> Result<u64, String> {
    if c.is_nan() {
        Err("NaN is not a count".into())
    } else if c < 0.0 {
        Err(format!("negative count {c}"))
    } else if c > MAX_OBSERVATIONS as f64 {
        Err(format!(
            "count {c} overflows the largest histogram of 2^40 observations"
        ))
    } else if c.fract() != 0.0 {
        Err(format!("{c} is not a whole count"))
    } else {
        Ok(c as u64)
    }
}

fn validate(le: &[f64], counts: &[u64]) -> Result<(), Invalid> {
    if le.len() != counts.len() {
        return Err((
            String::new(),
            format!(
                "{} bounds (le) but {} counts: one cumulative count per bound",
                le.len(),
                counts.len()
            ),
        ));
    }
    if le.is_empty() {
        return Err((String::new(), "no buckets".into()));
    }
    for (i, &b) in le.iter().enumerate() {
        if b.is_nan() {
            return Err((format!(".le[{i}]"), "NaN is not a bucket bound".into()));
        }
        if b == f64::NEG_INFINITY {
            return Err((format!(".le[{i}]"), "-Inf is not a bucket bound".into()));
        }
        if b == f64::INFINITY && i + 1 != le.len() {
            return Err((
                format!(".le[{i}]"),
                "+Inf must be the last bound".to_string(),
            ));
        }
        if i > 0 && b <= le[i - 1] {
            return Err((
                format!(".le[{i}]"),
                format!(
                    "bound {} is not above the previous bound {} (le must increase)",
                    fmt_bound(b),
                    fmt_bound(le[i - 1])
                ),
            ));
        }
    }
    if le[le.len() - 1] != f64::INFINITY {
        return Err((
            ".le".into(),
            format!(
                "the last bound is {}, not +Inf (every observation must fall in a bucket)",
                fmt_bound(le[le.len() - 1])
            ),
        ));
    }
    if le.len() < 2 {
        return Err((
            ".le".into(),
            "only the +Inf bucket: at least one finite bound is needed".into(),
        ));
    }
    for (i, &c) in counts.iter().enumerate() {
        if c > MAX_OBSERVATIONS {
            return Err((
                format!(".counts[{i}]"),
                format!("count {c} overflows the largest histogram of 2^40 observations"),
            ));
        }
        if i > 0 && c < counts[i - 1] {
            return Err((
                format!(".counts[{i}]"),
                format!(
                    "cumulative count {c} is below the previous {} (cumulative counts never decrease)",
                    counts[i - 1]
                ),
            ));
        }
    }
    Ok(())
}

impl Serialize for Histogram {
    /// `{"le": [..., "+Inf"], "counts": [...]}` (plus `"sum"` when known),
    /// the shape `SAMPLES.json` reads.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct Bounds<'a>(&'a [f64]);
        impl Serialize for Bounds<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut seq = s.serialize_seq(Some(self.0.len()))?;
                for &b in self.0 {
                    if b == f64::INFINITY {
                        seq.serialize_element("+Inf")?;
                    } else {
                        seq.serialize_element(&b)?;
                    }
                }
                seq.end()
            }
        }
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("le", &Bounds(&self.le))?;
        m.serialize_entry("counts", &self.cumulative)?;
        if let Some(sum) = self.sum {
            m.serialize_entry("sum", &sum)?;
        }
        m.end()
    }
}

impl fmt::Display for Histogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "histogram of {} observations in {} buckets",
            self.count(),
            self.le.len()
        )
    }
}

/// Weighted statistics over two histograms on the same bounds: rank tests
/// treat each bucket as one tie group (exact tie correction), value
/// statistics place a bucket's observations at its upper bound (the `+Inf`
/// bucket at the highest finite bound, as `histogram_quantile` does).
pub(crate) mod weighted {
    use super::Histogram;

    /// Distinct values with their counts, sorted ascending.
    pub(crate) type Runs = Vec<(f64, u64)>;

    /// The buckets as `(representative value, count)` runs. Rank tests use
    /// the bucket index order, which these values keep except that the
    /// `+Inf` bucket shares the highest finite bound: [`rank_runs`] keeps
    /// them apart.
    pub(crate) fn value_runs(h: &Histogram) -> Runs {
        let n = h.le.len();
        let top = h.le[n - 2];
        h.bucket_counts()
            .enumerate()
            .map(|(i, c)| (if i + 1 == n { top } else { h.le[i] }, c))
            .collect()
    }

    /// Runs whose values order (and tie) exactly like the buckets: the
    /// bucket index.
    pub(crate) fn rank_runs(h: &Histogram) -> Runs {
        h.bucket_counts()
            .enumerate()
            .map(|(i, c)| (i as f64, c))
            .collect()
    }

    /// Kolmogorov-Smirnov distances `(max(F_x - F_y), max(F_y - F_x))`
    /// between the bucket CDFs of two histograms on the same bounds.
    pub(crate) fn ks_distances(x: &Histogram, y: &Histogram) -> (f64, f64) {
        let (n1, n2) = (x.count() as f64, y.count() as f64);
        let (mut dp, mut dm) = (0.0f64, 0.0f64);
        for (&a, &b) in x.cumulative.iter().zip(&y.cumulative) {
            let d = a as f64 / n1 - b as f64 / n2;
            dp = dp.max(d);
            dm = dm.max(-d);
        }
        (dp, dm)
    }

    /// The exceedance count for the baseline's `p`-quantile: `(kc, r)`.
    /// Upper: `r = ceil(n_b (1 - p))` and `kc` the canary observations in
    /// buckets strictly above the bucket holding the baseline's `r`-th
    /// largest observation; lower: `r = ceil(n_b p)` and `kc` the canary
    /// observations in buckets strictly below the one holding its `r`-th
    /// smallest. Observations sharing that bucket are not counted, which
    /// keeps the test conservative.
    pub(crate) fn exceedance(b: &Histogram, c: &Histogram, p: f64, upper: bool) -> (u64, u64) {
        let nb = b.count();
        let last = b.cumulative.len() - 1;
        if upper {
            let r = ((nb as f64 * (1.0 - p)).ceil() as u64).clamp(1, nb);
            (above(b, c, r), r)
        } else {
            let r = ((nb as f64 * p).ceil() as u64).clamp(1, nb);
            let t = b.cumulative.partition_point(|&cum| cum < r).min(last);
            (if t == 0 { 0 } else { c.cumulative[t - 1] }, r)
        }
    }

    /// Canary observations in buckets strictly above the bucket holding the
    /// baseline's `r`-th largest observation (`1 <= r <= n_b`).
    pub(crate) fn above(b: &Histogram, c: &Histogram, r: u64) -> u64 {
        let nb = b.count();
        let last = b.cumulative.len() - 1;
        // The r-th largest lies in the first bucket whose cumulative count
        // reaches nb - r + 1.
        let t = b
            .cumulative
            .partition_point(|&cum| cum < nb - r + 1)
            .min(last);
        c.count() - c.cumulative[t]
    }

    /// `h` with every observation `x` moved to `factor * x + add`, kept on
    /// `h`'s own bounds. A finite bucket's observations are spread over the
    /// buckets its scaled interval overlaps, in proportion to the overlap
    /// (observations uniform inside a bucket: the assumption
    /// `histogram_quantile` makes), rounded so that the counts stay whole
    /// and their total is kept. The `+Inf` bucket (and a first bucket with
    /// a bound at or below 0) has no finite width: its observations move
    /// as far as they can in the tested direction (`up`: the `+Inf` bucket
    /// stays; down: just above its scaled finite end).
    pub(crate) fn scaled(h: &Histogram, factor: f64, add: f64, up: bool) -> Histogram {
        let le = &h.le;
        let n = le.len();
        let bucket_of = |x: f64| le.partition_point(|&g| g < x).min(n - 1);
        let mut per = vec![0u64; n];
        for (i, w) in h.bucket_counts().enumerate() {
            if w == 0 {
                continue;
            }
            let last = i + 1 == n;
            let lower = if i == 0 { 0.0 } else { le[i - 1] };
            if last || (i == 0 && le[0] <= 0.0) {
                let j = match (last, up) {
                    (true, true) => n - 1,
                    // Just above the scaled finite lower end.
                    (true, false) => {
                        let x = factor * le[n - 2] + add;
                        le.partition_point(|&g| g <= x).min(n - 1)
                    }
                    (false, true) => bucket_of(factor * le[0] + add),
                    (false, false) => 0,
                };
                per[j] += w;
                continue;
            }
            let (lo, hi) = (factor * lower + add, factor * le[i] + add);
            if hi <= lo || hi.is_nan() || lo.is_nan() {
                per[bucket_of(hi)] += w;
                continue;
            }
            // Whole counts by cumulative rounding of the overlap shares.
            let (first, end) = (bucket_of(lo), bucket_of(hi));
            let mut given = 0u64;
            for (j, slot) in per.iter_mut().enumerate().take(end + 1).skip(first) {
                let upto = if j == end { hi } else { le[j].min(hi) };
                let share = ((upto - lo) / (hi - lo)).clamp(0.0, 1.0);
                let cum = if j == end {
                    w
                } else {
                    ((w as f64 * share).round() as u64).min(w)
                };
                *slot += cum.saturating_sub(given);
                given = given.max(cum);
            }
        }
        let cumulative = per
            .iter()
            .scan(0u64, |acc, &c| {
                *acc += c;
                Some(*acc)
            })
            .collect();
        Histogram {
            le: le.clone(),
            cumulative,
            sum: h.sum.map(|s| factor * s + add * h.count() as f64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(le: &[f64], c: &[u64]) -> Histogram {
        Histogram::new(le.to_vec(), c.to_vec()).expect("valid")
    }

    const INF: f64 = f64::INFINITY;

    #[test]
    fn rejects_every_malformed_bucket_set_naming_the_index() {
        let cases: [(&[f64], &[u64], &str); 8] = [
            (
                &[1.0, 2.0],
                &[1, 2],
                "histogram.le: the last bound is 2, not +Inf",
            ),
            (
                &[1.0, 1.0, INF],
                &[1, 2, 3],
                "histogram.le[1]: bound 1 is not above",
            ),
            (
                &[2.0, 1.0, INF],
                &[1, 2, 3],
                "histogram.le[1]: bound 1 is not above",
            ),
            (
                &[f64::NAN, INF],
                &[1, 2],
                "histogram.le[0]: NaN is not a bucket bound",
            ),
            (
                &[1.0, INF],
                &[3, 2],
                "histogram.counts[1]: cumulative count 2 is below",
            ),
            (
                &[1.0, INF, 3.0],
                &[1, 2, 3],
                "histogram.le[1]: +Inf must be the last",
            ),
            (&[1.0, INF], &[1], "histogram: 2 bounds (le) but 1 counts"),
            (&[INF], &[1], "histogram.le: only the +Inf bucket"),
        ];
        for (le, c, want) in cases {
            let e = Histogram::new(le.to_vec(), c.to_vec()).expect_err(want);
            assert!(e.to_string().starts_with(want), "{e} != {want}");
        }
        let e = Histogram::new(vec![1.0, INF], vec![1, MAX_OBSERVATIONS + 1]).expect_err("big");
        assert!(e.to_string().contains("counts[1]: count"), "{e}");
        for (c, want) in [
            (-1.0, "negative count -1"),
            (2.5, "2.5 is not a whole count"),
            (1e20, "overflows"),
            (f64::NAN, "NaN is not a count"),
        ] {
            let e = Histogram::from_f64_counts(vec![1.0, INF], &[0.0, c]).expect_err(want);
            assert!(e.to_string().contains(want), "{e}");
            assert!(e.to_string().starts_with("histogram.counts[1]"), "{e}");
        }
    }

    #[test]
    fn quantiles_follow_prometheus_bucket_quantile() {
        let x = h(&[0.1, 0.25, 0.5, 1.0, INF], &[10, 60, 90, 99, 100]);
        // rank 50 in (0.1, 0.25] holding 50: 0.1 + 0.15 * 40/50
        assert!((x.quantile(0.5) - 0.22).abs() < 1e-15);
        // rank 5 in the first bucket (starting at 0)
        assert!((x.quantile(0.05) - 0.05).abs() < 1e-15);
        // rank 99 exactly at the 1.0 bound
        assert_eq!(x.quantile(0.99), 1.0);
        // rank 99.5 is in the +Inf bucket: the highest finite bound
        assert_eq!(x.quantile(0.995), 1.0);
        assert_eq!(x.quantile(-0.1), f64::NEG_INFINITY);
        assert_eq!(x.quantile(1.1), INF);
        assert!(x.quantile(f64::NAN).is_nan());
        // a non-positive first bound is its own quantile
        let neg = h(&[-1.0, 0.0, INF], &[5, 10, 10]);
        assert_eq!(neg.quantile(0.2), -1.0);
        let empty = h(&[1.0, INF], &[0, 0]);
        assert!(empty.quantile(0.5).is_nan());
    }

    #[test]
    fn common_bounds_keep_shared_bounds_and_exact_counts() {
        let a = h(&[0.1, 0.2, 0.5, 1.0, INF], &[1, 2, 5, 9, 10]);
        let b = h(&[0.2, 0.3, 1.0, INF], &[4, 6, 7, 8]);
        let (x, y) = Histogram::common_bounds(&a, &b).expect("merge");
        assert_eq!(x.upper_bounds(), &[0.2, 1.0, INF]);
        assert_eq!(x.cumulative_counts(), &[2, 9, 10]);
        assert_eq!(y.cumulative_counts(), &[4, 7, 8]);
        let c = h(&[0.15, INF], &[1, 1]);
        let e = Histogram::common_bounds(&a, &c).expect_err("disjoint");
        assert!(e.contains("share no finite bound"), "{e}");
    }

    #[test]
    fn scaling_spreads_buckets_by_overlap_and_keeps_the_total() {
        let x = h(&[1.0, 2.0, 3.0, 4.0, INF], &[10, 20, 30, 40, 50]);
        // x1.5: (0,1] -> (0,1.5]: 2/3 in bucket 0, 1/3 in 1; (1,2] -> (1.5,3]:
        // 1/3 in 1, 2/3 in 2; (2,3] -> (3,4.5]: 2/3 in 3, 1/3 in +Inf;
        // (3,4] -> (4.5,6]: +Inf; +Inf stays.
        let up = weighted::scaled(&x, 1.5, 0.0, true);
        assert_eq!(up.cumulative_counts(), &[7, 13, 20, 27, 50]);
        // x0.5: (0,1] -> bucket 0; (1,2] -> (0.5,1] -> 0; (2,3] -> (1,1.5]
        // -> 1; (3,4] -> (1.5,2] -> 1; +Inf: just above 2 -> bucket 2.
        let down = weighted::scaled(&x, 0.5, 0.0, false);
        assert_eq!(down.cumulative_counts(), &[20, 40, 50, 50, 50]);
        // Scaling by 1 is the identity.
        assert_eq!(weighted::scaled(&x, 1.0, 0.0, true), x);
        assert_eq!(weighted::scaled(&x, 1.0, 0.0, false), x);
    }

    #[test]
    fn bucket_counts_and_serialization_round_trip() {
        let x = h(&[1.0, 2.0, INF], &[3, 3, 7]).with_sum(12.5).expect("sum");
        assert_eq!(x.bucket_counts().collect::<Vec<_>>(), vec![3, 0, 4]);
        assert_eq!(x.mean(), Some(12.5 / 7.0));
        let json = serde_json::to_string(&x).expect("json");
        assert_eq!(
            json,
            r#"{"le":[1.0,2.0,"+Inf"],"counts":[3,3,7],"sum":12.5}"#
        );
    }
}
