#![doc = include_str!("../README.md")]

#[cfg(feature = "deploy")]
pub use rollgate_deploy as deploy;

#[cfg(feature = "canary")]
pub use rollgate_canary as canary;
#[cfg(feature = "canary")]
pub mod canary_gate;
