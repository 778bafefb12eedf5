#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod check;
pub mod config;
pub mod data;
pub mod error;
mod fastjson;
pub mod histogram;
pub mod judge;
pub mod overtime;
#[cfg(feature = "prometheus")]
pub mod prometheus;
pub mod recorder;
pub mod sketch;
pub mod source;
pub mod stats;

pub use check::{CheckResult, Outcome};
pub use config::{AnalysisConfig, Bad, MetricConfig, MetricKind};
pub use data::{Cohort, Counts, MetricSamples, SampleSet, Samples, Summary};
pub use error::CanaryError;
pub use histogram::Histogram;
pub use judge::{Analysis, MetricReport, Report, Verdict};
pub use source::{MetricQuery, MetricSource, Window};
