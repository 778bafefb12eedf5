//! Property tests for the invariants worth stating.

use proptest::prelude::*;
use rollgate_telemetry::{HistogramSnapshot, MASK, Redactor};

fn secret() -> impl Strategy<Value = String> {
    "[A-Za-z0-9]{8,24}"
}

fn text() -> impl Strategy<Value = String> {
    "[ -~]{0,30}"
}

proptest! {
    /// A secret in any of the known shapes, surrounded by arbitrary text,
    /// never survives redaction.
    #[test]
    fn a_secret_in_a_known_shape_never_survives(
        prefix in text(),
        suffix in text(),
        secret in secret(),
        shape in 0usize..6,
    ) {
        prop_assume!(!prefix.contains(&secret) && !suffix.contains(&secret));
        let planted = match shape {
            0 => format!("password={secret}"),
            1 => format!("token: {secret}"),
            2 => format!("https://user:{secret}@api.example.com/v1"),
            3 => format!("Authorization: Bearer {secret}"),
            4 => format!("\"api_key\": \"{secret}\""),
            _ => format!("https://h/cb?code=1&access_token={secret}&x=2"),
        };
        let input = format!("{prefix} {planted} {suffix}");
        let out = Redactor::default().text(&input).into_owned();
        prop_assert!(!out.contains(&secret), "{input:?} -> {out:?}");
        prop_assert!(out.contains(MASK));
    }

    /// Any field whose name contains a sensitive word is masked whole.
    #[test]
    fn sensitive_field_names_are_masked_whatever_the_value(
        before in "[a-z_]{0,8}",
        after in "[a-z_]{0,8}",
        upper in any::<bool>(),
        value in "[ -~]{0,40}",
    ) {
        let mut name = format!("{before}password{after}");
        if upper {
            name = name.to_uppercase();
        }
        let masked = Redactor::default().field(&name, &value).into_owned();
        prop_assert_eq!(masked.as_str(), MASK);
    }

    /// Quantiles never decrease with q and stay within the bucket bounds.
    #[test]
    fn quantiles_are_monotone_and_bounded(
        counts in proptest::collection::vec(0u64..1000, 6),
        q1 in 0.0f64..=1.0,
        q2 in 0.0f64..=1.0,
    ) {
        let h = HistogramSnapshot { bounds: vec![0.1, 0.2, 0.5, 1.0, 2.0], counts, sum: 0.0 };
        let (lo, hi) = if q1 <= q2 { (q1, q2) } else { (q2, q1) };
        match (h.quantile(lo), h.quantile(hi)) {
            (Some(a), Some(b)) => {
                prop_assert!(a <= b + 1e-12, "q{lo} = {a} > q{hi} = {b}");
                prop_assert!((0.0..=2.0).contains(&a) && (0.0..=2.0).contains(&b));
            }
            (None, None) => prop_assert_eq!(h.count(), 0),
            other => prop_assert!(false, "inconsistent emptiness {other:?}"),
        }
    }

    /// Merging then taking the window since the first part gives the second.
    #[test]
    fn since_undoes_merge(
        a in proptest::collection::vec(0u64..1_000_000, 4),
        b in proptest::collection::vec(0u64..1_000_000, 4),
    ) {
        let bounds = vec![0.1, 0.5, 1.0];
        let first = HistogramSnapshot { bounds: bounds.clone(), counts: a, sum: 1.5 };
        let second = HistogramSnapshot { bounds, counts: b, sum: 2.25 };
        let mut merged = first.clone();
        merged.merge(&second, "h").map_err(|e| TestCaseError::fail(e.to_string()))?;
        let window = merged.since(&first, "h").map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(window.counts, second.counts);
        prop_assert!((window.sum - second.sum).abs() < 1e-12);
    }
}
