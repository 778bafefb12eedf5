#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod command;
mod deployer;
mod error;
mod event;
mod executor;
mod gate;
mod notify;
mod plan;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;
mod state;
mod store;
mod types;
#[cfg(feature = "webhook")]
mod webhook;

pub use command::{CommandEnv, CommandOutput, CommandTemplate, kill_running_commands, run_shell};
pub use deployer::{
    CommandDeployer, CommandRouter, DEPLOYER_PLACEHOLDERS, Deployer, Readiness, Router,
    TargetAttributes, attribute_value_ok,
};
pub use error::{Cause, Error, error_chain};
pub use event::{Event, EventRecord, GatePolicy, Outcome, RolloutRequest};
pub use executor::{
    Driving, Executor, ExecutorConfig, Jitter, Observer, Report, RetryPolicy, driving,
};
pub use gate::{
    CohortEvidence, CommandGate, Decision, GATE_PLACEHOLDERS, Gate, GateContext, GateEvidence,
    MetricEvidence, Number, Reasons,
};
pub use notify::{
    Destination, DispatchConfig, Dispatcher, Notification, NotificationId, Notifier, NotifyFormat,
    NotifyKind, Outgoing, SecretRef, SendError, event_id, notify_kinds, payload, redact_url, sign,
    verify_signature,
};
pub use plan::{GateUse, Phase, PhaseAction, PhaseDefaults, Plan, Ring, Strategy};
#[cfg(feature = "postgres")]
pub use postgres::PostgresStore;
#[cfg(feature = "sqlite")]
pub use sqlite::{Durability, LeaseClock, SqliteOptions, SqliteStore};
pub use state::{Action, InFlight, Interruption, Rollout, Stage, Status, TargetState};
pub use store::{
    Created, LeaseInfo, ListFilter, MemoryStore, RolloutSummary, StateStore, UnfinishedRollout,
    Writer,
};
pub use types::{Artifact, Digest, Fence, Percent, RolloutId, TargetId};
#[cfg(feature = "webhook")]
pub use webhook::WebhookNotifier;
