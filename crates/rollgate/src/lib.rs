#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "deploy")]
pub use rollgate_deploy as deploy;

#[cfg(feature = "canary")]
pub use rollgate_canary as canary;
#[cfg(feature = "canary")]
pub mod canary_gate;
pub mod exposition;
#[cfg(feature = "plan")]
pub mod plan;
#[cfg(feature = "plan")]
pub mod promql;
#[cfg(feature = "report")]
pub mod report;
#[cfg(feature = "plan")]
pub mod scrape;
#[cfg(feature = "sim")]
pub mod sim;

#[cfg(feature = "drift")]
pub use rollgate_drift as drift;

#[cfg(feature = "telemetry")]
pub use rollgate_telemetry as telemetry;

/// The names most programs need, in one import: `use rollgate::prelude::*;`.
#[cfg(feature = "deploy")]
pub mod prelude {
    #[cfg(feature = "canary")]
    pub use crate::canary_gate::CanaryGate;
    #[cfg(feature = "sqlite")]
    pub use rollgate_deploy::SqliteStore;
    pub use rollgate_deploy::{
        Artifact, Decision, Deployer, Digest, Error as DeployError, Executor, ExecutorConfig, Gate,
        GateContext, MemoryStore, Outcome, Percent, PhaseDefaults, Readiness, RolloutRequest,
        StateStore, Strategy, TargetId,
    };
}
