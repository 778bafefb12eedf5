#![doc = include_str!("../README.md")]

pub mod fleet;
pub mod service;
pub mod store;

pub use service::{Faults, app};
pub use store::{Record, RecordType, Store, StoreError};
