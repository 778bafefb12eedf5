//! The crate's one error type.

use std::path::PathBuf;

/// Everything that can go wrong while loading, overlaying, comparing or
/// watching configuration. Messages name the file and the position.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input is not valid for its format.
    #[error("{source_name}:{line}:{column}: invalid {format}: {message}")]
    Syntax {
        /// The file (or stream) name.
        source_name: String,
        /// The format being parsed.
        format: &'static str,
        /// 1-based line.
        line: u32,
        /// 1-based column.
        column: u32,
        /// What is wrong.
        message: String,
    },
    /// Nesting goes deeper than the limit.
    #[error("{source_name}:{line}:{column}: nesting deeper than the limit of {limit} levels")]
    TooDeep {
        /// The file name.
        source_name: String,
        /// 1-based line.
        line: u32,
        /// 1-based column.
        column: u32,
        /// The configured limit.
        limit: usize,
    },
    /// A document holds more than a compact [`crate::arena::Tree`] can
    /// address (4 GiB - 1 bytes of string text, or as many values).
    #[error("the document holds more than {limit} {what}, the most a compact tree can hold")]
    TreeTooLarge {
        /// What overflowed.
        what: &'static str,
        /// The most a tree holds.
        limit: u64,
    },
    /// The input is larger than the limit.
    #[error("{source_name}: {size} bytes exceed the size limit of {limit} bytes")]
    TooLarge {
        /// The file name.
        source_name: String,
        /// The input size in bytes.
        size: u64,
        /// The configured limit.
        limit: u64,
    },
    /// The document expands to more nodes than the limit (YAML aliases can
    /// multiply a small file).
    #[error("{source_name}:{line}:{column}: more than {limit} nodes")]
    TooManyNodes {
        /// The file name.
        source_name: String,
        /// 1-based line.
        line: u32,
        /// 1-based column.
        column: u32,
        /// The configured limit.
        limit: usize,
    },
    /// An object has the same key twice.
    #[error(
        "{source_name}:{line}:{column}: duplicate key \"{key}\" (first at {first_line}:{first_column})"
    )]
    DuplicateKey {
        /// The file name.
        source_name: String,
        /// The repeated key.
        key: String,
        /// Line of the second occurrence.
        line: u32,
        /// Column of the second occurrence.
        column: u32,
        /// Line of the first occurrence.
        first_line: u32,
        /// Column of the first occurrence.
        first_column: u32,
    },
    /// A file could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file name does not say which format it holds.
    #[error("{}: unknown format (use a .json, .yaml, .yml or .toml file name)", path.display())]
    UnknownFormat {
        /// The file.
        path: PathBuf,
    },
    /// The rules file is invalid.
    #[error("{source_name}: invalid rules: {message}")]
    Rules {
        /// The rules file name.
        source_name: String,
        /// What is wrong, with the rule's path pattern.
        message: String,
    },
    /// An overlay cannot be applied.
    #[error("{source_name}:{line}:{column}: cannot apply overlay at {path}: {message}")]
    Overlay {
        /// The overlay file name.
        source_name: String,
        /// JSON Pointer of the offending node.
        path: String,
        /// 1-based line.
        line: u32,
        /// 1-based column.
        column: u32,
        /// What is wrong.
        message: String,
    },
    /// A JSON Patch operation cannot be applied.
    #[error("patch operation {index} ({op} {path}): {message}")]
    Patch {
        /// Index of the operation in the patch.
        index: usize,
        /// The operation name.
        op: &'static str,
        /// The operation's path.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A live source could not be read.
    #[error("live source {source_name}: {message}")]
    Live {
        /// The source's description (file path, command, URL).
        source_name: String,
        /// What went wrong.
        message: String,
    },
}
