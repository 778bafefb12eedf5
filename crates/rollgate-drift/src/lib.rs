#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod arena;
mod diff;
mod error;
mod load;
mod normalise;
mod overlay;
mod patch;
mod render;
mod rules;
mod tree;
mod view;
mod watch;

/// Re-exported so implementors of [`LiveSource`] and [`Notifier`] need no
/// direct dependency on `async-trait`.
pub use async_trait::async_trait;
pub use diff::{Differ, Difference, Kind, MASK, Report, diff};
pub use error::Error;
pub use load::{
    Format, Limits, MAX_BYTES_CEILING, MAX_DEPTH_CEILING, load, load_bytes, load_file,
    load_file_as, load_json_reader_blocks, load_reader, load_tree, load_tree_bytes, load_tree_file,
    load_tree_file_as, load_tree_reader,
};
pub use normalise::Normaliser;
pub use overlay::apply_overlay;
pub use patch::{Patch, PatchOp};
pub use render::{RenderOptions, render_json, render_text, to_json_pretty};
pub use rules::{KeySpec, PathPattern, Rule, Rules, Severity, is_secret_key};
pub use tree::{Entry, Map, Node, Number, Pos, Str, Value, escape_token, unescape_token};
#[cfg(feature = "http")]
pub use watch::HttpSource;
pub use watch::{
    CheckOutcome, CommandSource, DriftEvent, DriftWatcher, DriftWatcherBuilder, FileSource,
    LiveSource, Notifier,
};
