//! Compile-time hints for builder methods whose cargo feature is off.
//!
//! Without the feature, the method still exists but takes an argument that
//! must implement one of these traits, which nothing implements: the call is
//! a compile error whose message names the feature to enable, instead of
//! `no method named ...`.

/// Implemented by nothing: see [`TelemetryBuilder::serve_metrics`](crate::TelemetryBuilder::serve_metrics).
#[diagnostic::on_unimplemented(
    message = "`serve_metrics` needs the `prometheus` feature of rollgate-telemetry",
    label = "rollgate-telemetry was built without its `prometheus` feature",
    note = "enable it in Cargo.toml: rollgate-telemetry = {{ version = \"...\", features = [\"prometheus\"] }}"
)]
pub trait NeedsPrometheusFeature {}

/// Implemented by nothing: see [`TelemetryBuilder::otlp_endpoint`](crate::TelemetryBuilder::otlp_endpoint).
#[diagnostic::on_unimplemented(
    message = "`otlp_endpoint` needs the `otlp` feature of rollgate-telemetry",
    label = "rollgate-telemetry was built without its `otlp` feature",
    note = "enable it in Cargo.toml: rollgate-telemetry = {{ version = \"...\", features = [\"otlp\"] }}"
)]
pub trait NeedsOtlpFeature {}
