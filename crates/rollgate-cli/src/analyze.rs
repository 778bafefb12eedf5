//! `rollgate analyze`: judge a canary from a samples file against an
//! `ANALYSIS.toml`, or two live cohorts of a plan's targets through its
//! canary gate's source (shadow mode), and print the verdict and the
//! per-metric table.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use rollgate::plan::Plan;
use rollgate_canary::{Analysis, AnalysisConfig, CanaryError, Report, SampleSet, Verdict};

/// Exit code: promote.
const PROMOTE: u8 = 0;
/// Exit code: roll back.
const ROLLBACK: u8 = 1;
/// Exit code: bad input (unreadable file, invalid config or samples, an
/// unknown target, a metric source that cannot be read).
const BAD_INPUT: u8 = 2;
/// Exit code: inconclusive (too little data or a marginal score).
const INCONCLUSIVE: u8 = 3;

/// Judge a canary against its baseline: samples from a file (`--data`), or
/// two live cohorts of a plan's targets (`--plan`, `--baseline`,
/// `--canary`: shadow mode, no rollout).
///
/// Exit codes: 0 promote, 1 rollback, 2 bad input (or the metric source
/// could not be read), 3 inconclusive.
#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    /// Analysis configuration (metrics, checks, bounds, score thresholds).
    #[arg(long, value_name = "ANALYSIS.toml")]
    config: PathBuf,
    /// Samples: {"metrics": {"NAME": {"baseline": [..], "canary": [..]}}}; a
    /// cohort is numbers, {"events", "trials"} or {"histogram": {"le", "counts"}}.
    #[arg(
        long,
        value_name = "SAMPLES.json",
        required_unless_present = "plan",
        conflicts_with = "plan"
    )]
    data: Option<PathBuf>,
    /// Shadow mode: read live metrics through this plan's `[gate] kind =
    /// "canary"` source (scrape or prometheus) and `[gate.metrics]`, judged
    /// with --config instead of the plan's analysis file.
    #[arg(long, value_name = "PLAN.toml", requires_all = ["baseline", "canary"])]
    plan: Option<PathBuf>,
    /// Shadow mode: the baseline cohort, target names of the plan.
    #[arg(
        long,
        value_name = "NAME,...",
        value_delimiter = ',',
        requires = "plan"
    )]
    baseline: Vec<String>,
    /// Shadow mode: the canary cohort, target names of the plan.
    #[arg(
        long,
        value_name = "NAME,...",
        value_delimiter = ',',
        requires = "plan"
    )]
    canary: Vec<String>,
    /// Shadow mode: the window judged (default: the gate's lookback). With
    /// source = "scrape" rollgate scrapes for this long, then judges.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, requires = "plan")]
    lookback: Option<std::time::Duration>,
    /// Output: a table for people or JSON for tools.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    output: Output,
    #[command(flatten)]
    telemetry: crate::obs::TelemetryFlags,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    Text,
    Json,
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// `e` about the file at `path`, given with `flag`. The library names a
/// document it could not parse at all by its conventional name
/// (`ANALYSIS.toml`, `SAMPLES.json`); say instead which of the user's files
/// it is and what it should have been.
fn in_file(flag: &str, path: &Path, e: CanaryError) -> String {
    let path = path.display();
    match e {
        CanaryError::Config { at, why } if at == "ANALYSIS.toml" => {
            format!("{path}: the {flag} file is not a valid analysis configuration (TOML): {why}")
        }
        CanaryError::Data { at, why } if at == "SAMPLES.json" => {
            format!("{path}: the {flag} file is not a valid samples document (JSON): {why}")
        }
        other => format!("{path}: {other}"),
    }
}

fn config(args: &AnalyzeArgs) -> Result<AnalysisConfig, String> {
    let cfg_text = read(&args.config)?;
    let cfg = AnalysisConfig::from_toml_str(&cfg_text)
        .map_err(|e| in_file("--config", &args.config, e))?;
    if cfg.metrics.is_empty() {
        return Err(format!(
            "{}: the --config file configures no metrics; add at least one [[metrics]] table",
            args.config.display()
        ));
    }
    Analysis::new(cfg.clone()).map_err(|e| in_file("--config", &args.config, e))?;
    Ok(cfg)
}

fn judge(args: &AnalyzeArgs) -> Result<Report, String> {
    let Some(data_path) = &args.data else {
        return shadow(args);
    };
    let cfg = config(args)?;
    let data_text = read(data_path)?;
    let analysis = Analysis::new(cfg).map_err(|e| in_file("--config", &args.config, e))?;
    let data = SampleSet::from_json_str(&data_text).map_err(|e| in_file("--data", data_path, e))?;
    analysis
        .judge(&data)
        .map_err(|e| in_file("--data", data_path, e))
}

/// Shadow mode: two live cohorts through the plan's canary gate source.
fn shadow(args: &AnalyzeArgs) -> Result<Report, String> {
    let Some(plan_path) = &args.plan else {
        return Err(
            "give --data SAMPLES.json, or --plan PLAN.toml with --baseline and --canary".into(),
        );
    };
    let cfg = config(args)?;
    let plan = Plan::load_with_analysis(plan_path, &args.config, cfg)
        .map_err(|e| rollgate_deploy::error_chain(&e))?;
    let mut shadow = plan
        .shadow(&args.baseline, &args.canary)
        .map_err(|e| rollgate_deploy::error_chain(&e))?;
    if let Some(l) = args.lookback {
        if l.is_zero() {
            return Err("--lookback must be above zero".into());
        }
        shadow = shadow.with_lookback(l);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let waits = shadow.measures_for();
    if !waits.is_zero() {
        crate::rollout::write_err(format_args!(
            "rollgate analyze: scraping baseline {} and canary {} for {}, then judging",
            args.baseline.join(","),
            args.canary.join(","),
            humantime::format_duration(waits)
        ));
    }
    rt.block_on(shadow.judge()).map_err(|e| {
        format!(
            "{}: {}",
            plan_path.display(),
            rollgate_deploy::error_chain(&e)
        )
    })
}

/// Runs `rollgate analyze`.
pub fn run(args: AnalyzeArgs) -> ExitCode {
    if let Err(e) = args.telemetry.install() {
        crate::obs::fail(&format!("rollgate analyze: {e}"), BAD_INPUT);
        return ExitCode::from(BAD_INPUT);
    }
    judge_and_print(&args)
}

/// Judges, prints the report, and returns the exit code.
fn judge_and_print(args: &AnalyzeArgs) -> ExitCode {
    match judge(args) {
        Err(e) => {
            crate::obs::fail(&format!("rollgate analyze: {e}"), BAD_INPUT);
            ExitCode::from(BAD_INPUT)
        }
        Ok(report) => {
            report.record_metric();
            match args.output {
                Output::Json => println!("{}", report.to_json()),
                Output::Text => print!("{}", report.to_table()),
            }
            ExitCode::from(match report.verdict {
                Verdict::Promote => PROMOTE,
                Verdict::Rollback => ROLLBACK,
                // A one-shot judgement never says continue; treat it as not yet decided.
                Verdict::Inconclusive | Verdict::Continue => INCONCLUSIVE,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = include_str!("../tests/fixtures/minimal.toml");

    fn args_for(config: PathBuf, data: PathBuf) -> AnalyzeArgs {
        AnalyzeArgs {
            config,
            data: Some(data),
            plan: None,
            baseline: Vec::new(),
            canary: Vec::new(),
            lookback: None,
            output: Output::Text,
            telemetry: crate::obs::TelemetryFlags::default(),
        }
    }

    fn samples(lat_scale: f64, errors: (u64, u64)) -> String {
        let n = 200;
        let base: Vec<String> = (0..n).map(|i| format!("{}", 80 + (i * 37) % 41)).collect();
        let can: Vec<String> = (0..n)
            .map(|i| format!("{}", (80 + (i * 53) % 41) as f64 * lat_scale))
            .collect();
        format!(
            r#"{{"metrics": {{"latency_ms": {{"baseline": [{}], "canary": [{}]}},
               "errors": {{"baseline": {{"events": {}, "trials": 100000}}, "canary": {{"events": {}, "trials": 100000}}}}}}}}"#,
            base.join(","),
            can.join(","),
            errors.0,
            errors.1
        )
    }

    fn run_with(config: &str, data: &str, output: Output) -> (ExitCode, Result<Report, String>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let (c, d) = (
            dir.path().join("ANALYSIS.toml"),
            dir.path().join("SAMPLES.json"),
        );
        std::fs::write(&c, config).expect("write config");
        std::fs::write(&d, data).expect("write data");
        let args = AnalyzeArgs {
            output,
            ..args_for(c, d)
        };
        let report = judge(&args);
        (judge_and_print(&args), report)
    }

    #[test]
    fn minimal_config_as_written_promotes_with_exit_0() {
        let (code, report) = run_with(MINIMAL, &samples(1.0, (20, 21)), Output::Json);
        let report = report.expect("judged");
        assert_eq!(report.verdict, Verdict::Promote, "{}", report.to_table());
        assert_eq!(code, ExitCode::from(PROMOTE));
        let json: serde_json::Value = serde_json::from_str(&report.to_json()).expect("json");
        assert_eq!(json["verdict"], "promote");
        assert_eq!(json["score"], 100.0);
        let m = &json["metrics"][0];
        for key in [
            "name", "result", "reason", "baseline", "canary", "p_value", "shift", "ci",
        ] {
            assert!(!m[key].is_null(), "missing {key} in {m}");
        }
        assert_eq!(m["ci"].as_array().map(Vec::len), Some(2));
    }

    #[test]
    fn regression_rolls_back_with_exit_1() {
        let (code, report) = run_with(MINIMAL, &samples(1.2, (20, 21)), Output::Text);
        assert_eq!(report.expect("judged").verdict, Verdict::Rollback);
        assert_eq!(code, ExitCode::from(ROLLBACK));
        let (code, _) = run_with(MINIMAL, &samples(1.0, (20, 90)), Output::Text);
        assert_eq!(code, ExitCode::from(ROLLBACK));
    }

    #[test]
    fn bad_input_exits_2_and_names_the_file() {
        let (code, report) = run_with(
            MINIMAL,
            "{\"metrics\": {\"latency_ms\": [NaN]}}",
            Output::Json,
        );
        assert_eq!(code, ExitCode::from(BAD_INPUT));
        let e = report.expect_err("bad data");
        assert!(e.contains("SAMPLES.json"), "{e}");
        let (code, report) = run_with("alpha = 7", &samples(1.0, (0, 0)), Output::Json);
        assert_eq!(code, ExitCode::from(BAD_INPUT));
        assert!(report.expect_err("bad config").contains("ANALYSIS.toml"));
        let args = args_for(
            PathBuf::from("/nonexistent/ANALYSIS.toml"),
            PathBuf::from("/nonexistent/SAMPLES.json"),
        );
        assert_eq!(judge_and_print(&args), ExitCode::from(BAD_INPUT));
    }

    #[test]
    fn too_little_data_exits_3() {
        // No requests at all: the error metric has no data.
        let (code, report) = run_with(
            MINIMAL,
            &samples(1.0, (0, 0)).replace("100000", "0"),
            Output::Text,
        );
        assert_eq!(report.expect("judged").verdict, Verdict::Inconclusive);
        assert_eq!(code, ExitCode::from(INCONCLUSIVE));
        // Two canary latencies: fewer than min_samples = 50.
        let mut v: serde_json::Value = serde_json::from_str(&samples(1.0, (1, 1))).expect("json");
        v["metrics"]["latency_ms"]["canary"] = serde_json::json!([100.0, 101.0]);
        let few = v.to_string();
        let (code, _) = run_with(MINIMAL, &few, Output::Json);
        assert_eq!(code, ExitCode::from(INCONCLUSIVE));
    }

    /// The error for `config` and `data` written to files named as a user
    /// might (not the library's conventional names), and those paths.
    fn error_for(config: &str, data: &str) -> (String, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let (c, d) = (dir.path().join("web.toml"), dir.path().join("web.json"));
        std::fs::write(&c, config).expect("write config");
        std::fs::write(&d, data).expect("write data");
        let args = args_for(c.clone(), d.clone());
        let e = judge(&args).expect_err("rejected");
        assert_eq!(judge_and_print(&args), ExitCode::from(BAD_INPUT));
        (e, c, d)
    }

    #[test]
    fn a_config_that_is_not_toml_is_named_by_its_flag_and_path() {
        let (e, config, _) = error_for("{\"metrics\": {}}", &samples(1.0, (1, 1)));
        let want = format!(
            "{}: the --config file is not a valid analysis configuration (TOML): TOML parse error at line 1, column 1",
            config.display()
        );
        assert!(e.starts_with(&want), "{e}");
        assert!(!e.contains("ANALYSIS.toml"), "{e}");
    }

    #[test]
    fn samples_that_are_not_a_samples_document_are_named_by_flag_and_path() {
        let (e, _, data) = error_for(MINIMAL, "{}");
        let want = format!(
            "{}: the --data file is not a valid samples document (JSON): missing field `metrics`",
            data.display()
        );
        assert!(e.starts_with(&want), "{e}");
        assert!(!e.contains("SAMPLES.json"), "{e}");
    }

    #[test]
    fn a_config_without_metrics_is_rejected_naming_the_config_file() {
        for empty in ["", "alpha = 0.05\n"] {
            let (e, config, _) = error_for(empty, &samples(1.0, (1, 1)));
            assert_eq!(
                e,
                format!(
                    "{}: the --config file configures no metrics; add at least one [[metrics]] table",
                    config.display()
                )
            );
        }
    }

    fn histogram_samples(canary: &str) -> String {
        format!(
            r#"{{"metrics": {{
  "latency_ms": {{"baseline": {{"histogram": {{"le": [50, 100, 200, 400, "+Inf"], "counts": [100, 600, 950, 995, 1000]}}}},
                 "canary": {{"histogram": {canary}}}}},
  "errors": {{"baseline": {{"events": 20, "trials": 100000}}, "canary": {{"events": 21, "trials": 100000}}}}}}}}"#
        )
    }

    #[test]
    fn histogram_samples_are_judged_and_bad_buckets_exit_2_naming_metric_and_cohort() {
        let ok = histogram_samples(
            r#"{"le": [50, 100, 200, 400, "+Inf"], "counts": [98, 603, 948, 996, 1000]}"#,
        );
        let (code, report) = run_with(MINIMAL, &ok, Output::Json);
        let report = report.expect("judged");
        assert_eq!(report.verdict, Verdict::Promote, "{}", report.to_table());
        assert_eq!(code, ExitCode::from(PROMOTE));
        for (canary, want) in [
            (
                r#"{"le": [50, 100, 200, 400, "+Inf"], "counts": [98, 603, 500, 996, 1000]}"#,
                "data metrics.latency_ms.canary.histogram.counts[2]: cumulative count 500 is below the previous 603",
            ),
            (
                r#"{"le": [50, 100, 200, 400], "counts": [98, 603, 948, 996]}"#,
                "data metrics.latency_ms.canary.histogram.le: the last bound is 400, not +Inf",
            ),
            (
                r#"{"le": [50, 100, "NaN", 400, "+Inf"], "counts": [98, 603, 948, 996, 1000]}"#,
                "data metrics.latency_ms.canary.histogram.le[2]: NaN is not a bucket bound",
            ),
            (
                r#"{"le": [50, 100, 200, 400, "+Inf"], "counts": [98, -603, 948, 996, 1000]}"#,
                "data metrics.latency_ms.canary.histogram.counts[1]: negative count -603",
            ),
            (
                r#"{"le": [50, 100, 200, 400, "+Inf"], "counts": [98, 603, 948, 996, 1e30]}"#,
                "data metrics.latency_ms.canary.histogram.counts[4]: count 1000000000000000000000000000000 overflows",
            ),
        ] {
            let (e, _, data) = error_for(MINIMAL, &histogram_samples(canary));
            assert!(
                e.starts_with(&format!("{}: {want}", data.display())),
                "{e}\n  wanted {want}"
            );
        }
    }

    #[test]
    fn other_config_errors_keep_the_key_and_name_the_file() {
        let (e, config, _) = error_for(&MINIMAL.replace("alpha = 0.01", "alpha = 0.7"), "{}");
        assert!(
            e.starts_with(&format!("{}: config alpha: 0.7", config.display())),
            "{e}"
        );
    }
}
