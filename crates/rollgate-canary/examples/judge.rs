//! Judge a canary against its baseline: latency samples and error counts,
//! one verdict with its per-metric table.
//!
//! ```text
//! cargo run -p rollgate-canary --example judge
//! ```

use rollgate_canary::{Analysis, AnalysisConfig, CanaryError, MetricSamples, SampleSet, Verdict};

fn main() -> Result<(), CanaryError> {
    let config = AnalysisConfig::from_toml_str(
        r#"
alpha = 0.01
[score]
pass = 95
marginal = 75

[[metrics]]
name = "latency_ms"
kind = "latency"
bad = "increase"
min_samples = 50
relative = { max_increase_pct = 5.0 }
threshold = { p99_max = 500.0 }

[[metrics]]
name = "errors"
kind = "count"
bad = "increase"
critical = true
relative = { max_increase_pct = 50.0 }
threshold = { ratio_max = 0.01 }
"#,
    )?;
    let analysis = Analysis::new(config)?;

    let baseline: Vec<f64> = (0..500).map(|i| 100.0 + (i % 23) as f64).collect();
    // The canary is 30 % slower: a regression the relative check catches.
    let canary: Vec<f64> = (0..500).map(|i| 130.0 + (i * 7 % 23) as f64).collect();
    let mut data = SampleSet::default();
    data.insert("latency_ms", MetricSamples::values(baseline, canary));
    data.insert("errors", MetricSamples::counts((12, 10_000), (9, 10_000)));

    let report = analysis.judge(&data)?;
    println!("verdict: {:?}", report.verdict);
    println!("{}", report.to_table());
    assert_eq!(report.verdict, Verdict::Rollback);
    Ok(())
}
