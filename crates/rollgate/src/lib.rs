#![doc = include_str!("../README.md")]

#[cfg(feature = "deploy")]
pub use rollgate_deploy as deploy;
