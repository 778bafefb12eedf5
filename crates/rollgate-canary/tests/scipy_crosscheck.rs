//! Cross-checks Mann-Whitney p-values against `scipy.stats.mannwhitneyu` to
//! 1e-12 over seeded cases (exact and asymptotic modes, heavy ties, n from 1
//! to 10^6), also over distinct values with counts (the tied-sample and
//! histogram path) against scipy on the expanded data. The Python side is `tests/scipy/mwu_cases.py`; scipy is
//! installed by `scripts/install-test-deps.sh`.

use std::path::Path;
use std::process::Command;

use rollgate_canary::stats::{
    MwMethod, mann_whitney_runs, mann_whitney_u, mann_whitney_unsorted, sorted_finite,
};

/// Distinct values with their counts: the judge's path for tied samples
/// and for histograms (each bucket one tie group).
fn runs(sorted: &[f64]) -> Vec<(f64, u64)> {
    let mut out: Vec<(f64, u64)> = Vec::new();
    for &v in sorted {
        match out.last_mut() {
            Some(last) if last.0 == v => last.1 += 1,
            _ => out.push((v, 1)),
        }
    }
    out
}

fn read_f64(path: &Path) -> Vec<f64> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    bytes
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
        .collect()
}

fn assert_close(what: &str, ours: f64, scipy: f64) {
    let diff = (ours - scipy).abs();
    assert!(
        diff <= 1e-12,
        "{what}: ours {ours:e} scipy {scipy:e} differ by {diff:e}"
    );
}

#[test]
fn p_values_agree_with_scipy_to_1e_12() {
    let dir = tempfile::tempdir().expect("tempdir");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scipy/mwu_cases.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(dir.path())
        .output()
        .expect("python3 must be installed (scripts/install-test-deps.sh)");
    assert!(
        out.status.success(),
        "{} failed: {}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let expected: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("expected.json")).expect("expected.json"),
    )
    .expect("expected.json is JSON");
    let cases = expected["cases"].as_array().expect("cases array");
    assert!(cases.len() >= 50, "too few cases: {}", cases.len());
    let (mut exact_checked, mut tied_checked, mut largest) = (0, 0, 0u64);
    for case in cases {
        let id = case["id"].as_u64().expect("id");
        let x = read_f64(&dir.path().join(format!("case{id}_x.f64")));
        let y = read_f64(&dir.path().join(format!("case{id}_y.f64")));
        assert_eq!(x.len() as u64, case["n1"].as_u64().expect("n1"));
        largest = largest.max((x.len() + y.len()) as u64);
        let xs = sorted_finite("x", &x).expect("finite");
        let ys = sorted_finite("y", &y).expect("finite");
        let what = format!("case {id} ({} n1={} n2={})", case["kind"], x.len(), y.len());

        let asym = mann_whitney_u(&xs, &ys, MwMethod::Asymptotic).expect("asymptotic");
        assert_eq!(asym.u1, case["u1"].as_f64().expect("u1"), "{what}: U1");
        assert_close(
            &format!("{what} asymptotic"),
            asym.p_value,
            case["asymptotic"].as_f64().expect("p"),
        );
        assert_eq!(
            asym.ties,
            case["ties"].as_bool().expect("ties"),
            "{what}: ties"
        );
        // The unsorted entry point (radix sort, or histograms for heavy ties) agrees too.
        let unsorted = mann_whitney_unsorted(&x, &y, MwMethod::Asymptotic).expect("unsorted");
        assert_close(
            &format!("{what} unsorted"),
            unsorted.p_value,
            case["asymptotic"].as_f64().expect("p"),
        );
        // Over distinct values with counts (scipy ran on the expanded data).
        let by_runs =
            mann_whitney_runs(&runs(&xs), &runs(&ys), MwMethod::Asymptotic).expect("runs");
        assert_eq!(by_runs.u1, asym.u1, "{what}: U1 over runs");
        assert_close(
            &format!("{what} over distinct values"),
            by_runs.p_value,
            case["asymptotic"].as_f64().expect("p"),
        );
        if asym.ties {
            tied_checked += 1;
            assert!(mann_whitney_u(&xs, &ys, MwMethod::Exact).is_err());
        }
        if let Some(p) = case["exact"].as_f64() {
            let exact = mann_whitney_u(&xs, &ys, MwMethod::Exact).expect("exact");
            assert_close(&format!("{what} exact"), exact.p_value, p);
            let auto = mann_whitney_u(&xs, &ys, MwMethod::Auto).expect("auto");
            assert_eq!(auto.method, MwMethod::Exact, "{what}: auto picks exact");
            exact_checked += 1;
        }
    }
    assert!(exact_checked >= 20, "exact cases checked: {exact_checked}");
    assert!(tied_checked >= 10, "tied cases checked: {tied_checked}");
    assert!(largest >= 1_000_000, "largest case {largest}");
}
