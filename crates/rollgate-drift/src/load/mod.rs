//! Loaders: JSON, YAML (multi-document) and TOML into one tree model, with
//! positions, a depth limit, a size limit, a node limit and duplicate-key
//! rejection. `load*` give the owned, editable [`Node`]; `load_tree*` give
//! the compact read-only [`Tree`] the differ compares fastest (JSON is parsed
//! straight into it; YAML and TOML are converted from their [`Node`]).

mod json;
mod toml;
mod yaml;

use std::io::Read;
use std::path::Path;

use crate::arena::Tree;
use crate::error::Error;
use crate::tree::Node;

/// The largest depth limit accepted; deeper limits are clamped so recursion
/// stays well inside a thread's stack.
pub const MAX_DEPTH_CEILING: usize = 1000;

/// The largest size limit accepted (4 GiB - 1: a [`Tree`] holds positions
/// as 32-bit offsets); larger limits are clamped.
pub const MAX_BYTES_CEILING: u64 = u32::MAX as u64;

/// A source format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Format {
    /// JSON (RFC 8259).
    Json,
    /// YAML 1.2; a stream of several documents loads as an array of them.
    Yaml,
    /// TOML 1.0.
    Toml,
}

impl Format {
    /// The format a file name's extension names.
    #[must_use]
    pub fn from_path(path: &Path) -> Option<Self> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "json" => Some(Format::Json),
            "yaml" | "yml" => Some(Format::Yaml),
            "toml" => Some(Format::Toml),
            _ => None,
        }
    }

    /// The format's name as errors print it.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Yaml => "yaml",
            Format::Toml => "toml",
        }
    }
}

/// Limits every loader enforces.
///
/// ```
/// use rollgate_drift::{Error, Format, Limits, load};
/// let limits = Limits { max_depth: 3, ..Limits::default() };
/// let err = load("[[[[1]]]]", Format::Json, "deep.json", &limits).unwrap_err();
/// assert!(matches!(err, Error::TooDeep { .. }));
/// assert_eq!(err.to_string(), "deep.json:1:4: nesting deeper than the limit of 3 levels");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Maximum nesting of arrays and objects (clamped to [`MAX_DEPTH_CEILING`]).
    pub max_depth: usize,
    /// Maximum input size in bytes (clamped to [`MAX_BYTES_CEILING`]).
    pub max_bytes: u64,
    /// Maximum number of nodes after YAML alias expansion.
    pub max_nodes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_depth: 128,
            max_bytes: 1 << 30,
            max_nodes: 100_000_000,
        }
    }
}

impl Limits {
    pub(crate) fn depth(&self) -> usize {
        self.max_depth.min(MAX_DEPTH_CEILING)
    }

    pub(crate) fn bytes(&self) -> u64 {
        self.max_bytes.min(MAX_BYTES_CEILING)
    }
}

/// Loads `text` in `format`. `source_name` names the input in errors.
///
/// ```
/// use rollgate_drift::{Format, Limits, load};
/// let err = load("a = 1\n[b]\nx = [1,\n", Format::Toml, "app.toml", &Limits::default()).unwrap_err();
/// assert!(err.to_string().starts_with("app.toml:"));
/// let err = load("{\"a\": 1, \"a\": 2}", Format::Json, "d.json", &Limits::default()).unwrap_err();
/// assert_eq!(err.to_string(), "d.json:1:10: duplicate key \"a\" (first at 1:2)");
/// ```
pub fn load(text: &str, format: Format, source_name: &str, limits: &Limits) -> Result<Node, Error> {
    let text = checked(text, source_name, limits)?;
    match format {
        Format::Json => json::parse(text, source_name, limits).map(|tree| tree.to_node()),
        Format::Yaml => yaml::parse(text, source_name, limits),
        Format::Toml => toml::parse(text, source_name, limits),
    }
}

/// Loads `text` in `format` as a compact [`Tree`], the form
/// [`crate::Differ::diff_trees`] compares. Errors are [`load`]'s.
///
/// ```
/// use rollgate_drift::{Differ, Format, Limits, load_tree};
/// let limits = Limits::default();
/// let desired = load_tree("{\"replicas\": 3}", Format::Json, "desired.json", &limits)?;
/// let live = load_tree("replicas: 2\n", Format::Yaml, "live.yaml", &limits)?;
/// let report = Differ::default().diff_trees(&desired, &live);
/// assert_eq!(report.differences()[0].path, "/replicas");
/// # Ok::<(), rollgate_drift::Error>(())
/// ```
pub fn load_tree(
    text: &str,
    format: Format,
    source_name: &str,
    limits: &Limits,
) -> Result<Tree, Error> {
    if format == Format::Json {
        let text = checked(text, source_name, limits)?;
        return json::parse(text, source_name, limits);
    }
    Tree::from_node(&load(text, format, source_name, limits)?)
}

/// The text without a byte order mark, if its size is within the limit.
fn checked<'a>(text: &'a str, source_name: &str, limits: &Limits) -> Result<&'a str, Error> {
    check_size(text.len(), source_name, limits)?;
    // A UTF-8 byte order mark carries no content (editors on Windows add it).
    Ok(text.strip_prefix('\u{feff}').unwrap_or(text))
}

/// Loads raw bytes (which must be UTF-8) in `format`.
pub fn load_bytes(
    bytes: &[u8],
    format: Format,
    source_name: &str,
    limits: &Limits,
) -> Result<Node, Error> {
    check_size(bytes.len(), source_name, limits)?;
    load(
        utf8(bytes, format, source_name)?,
        format,
        source_name,
        limits,
    )
}

/// [`load_bytes`] into a compact [`Tree`].
///
/// ```
/// use rollgate_drift::{Format, Limits, load_tree_bytes};
/// let err = load_tree_bytes(b"{\"a\": \"\xff\"}", Format::Json, "live.json", &Limits::default()).unwrap_err();
/// assert_eq!(err.to_string(), "live.json:1:8: invalid json: invalid UTF-8");
/// ```
pub fn load_tree_bytes(
    bytes: &[u8],
    format: Format,
    source_name: &str,
    limits: &Limits,
) -> Result<Tree, Error> {
    check_size(bytes.len(), source_name, limits)?;
    load_tree(
        utf8(bytes, format, source_name)?,
        format,
        source_name,
        limits,
    )
}

/// The bytes as text, or an error at the first invalid byte.
fn utf8<'a>(bytes: &'a [u8], format: Format, source_name: &str) -> Result<&'a str, Error> {
    std::str::from_utf8(bytes).map_err(|e| {
        let (line, column) = line_col(bytes, e.valid_up_to());
        Error::Syntax {
            source_name: source_name.to_owned(),
            format: format.name(),
            line,
            column,
            message: "invalid UTF-8".to_owned(),
        }
    })
}

/// Loads from any reader (standard input, a pipe, a response body). JSON is
/// parsed as it is read, a block of lines at a time, so only the tree is held
/// in memory; YAML and TOML are read whole first. The size limit counts the
/// bytes read.
///
/// ```
/// use rollgate_drift::{Format, Limits, load_reader};
/// let text = "{\"replicas\": 3,\n \"image\": \"app:2\"}\n";
/// let node = load_reader(text.as_bytes(), Format::Json, "stdin", &Limits::default())?;
/// assert_eq!(node.pointer("/image").map(|n| n.pos.line), Some(2));
/// # Ok::<(), rollgate_drift::Error>(())
/// ```
pub fn load_reader(
    reader: impl Read,
    format: Format,
    source_name: &str,
    limits: &Limits,
) -> Result<Node, Error> {
    if format == Format::Json {
        return json::parse_read(reader, source_name, limits, 0).map(|tree| tree.to_node());
    }
    load_bytes(
        &read_all(reader, source_name, limits)?,
        format,
        source_name,
        limits,
    )
}

/// [`load_reader`] into a compact [`Tree`]: JSON is parsed into it as it is
/// read, so only the tree is ever held in memory.
///
/// ```
/// use rollgate_drift::{Format, Limits, load_tree_reader};
/// let text = "{\"replicas\": 3,\n \"image\": \"app:2\"}\n";
/// let tree = load_tree_reader(text.as_bytes(), Format::Json, "stdin", &Limits::default())?;
/// assert_eq!(tree.to_node().pointer("/image").map(|n| n.pos.to_string()), Some("2:11".into()));
/// # Ok::<(), rollgate_drift::Error>(())
/// ```
pub fn load_tree_reader(
    reader: impl Read,
    format: Format,
    source_name: &str,
    limits: &Limits,
) -> Result<Tree, Error> {
    if format == Format::Json {
        return json::parse_read(reader, source_name, limits, 0);
    }
    load_tree_bytes(
        &read_all(reader, source_name, limits)?,
        format,
        source_name,
        limits,
    )
}

/// Reads a YAML or TOML input whole: one byte past the limit is enough for
/// `load_bytes` to reject the size.
fn read_all(reader: impl Read, source_name: &str, limits: &Limits) -> Result<Vec<u8>, Error> {
    let mut bytes = Vec::new();
    reader
        .take(limits.bytes().saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|source| Error::Read {
            path: source_name.into(),
            source,
        })?;
    Ok(bytes)
}

/// [`load_reader`] for JSON with a chosen block size, so the fuzz target can
/// put block boundaries anywhere. Not part of the API.
#[doc(hidden)]
pub fn load_json_reader_blocks(
    reader: impl Read,
    source_name: &str,
    limits: &Limits,
    block: usize,
) -> Result<Node, Error> {
    json::parse_blocks(reader, source_name, limits, block.max(1), 0).map(|tree| tree.to_node())
}

/// Loads a file; its extension names the format.
pub fn load_file(path: &Path, limits: &Limits) -> Result<Node, Error> {
    let format = Format::from_path(path).ok_or_else(|| Error::UnknownFormat {
        path: path.to_owned(),
    })?;
    load_file_as(path, format, limits)
}

/// Loads a file in an explicit format. JSON is parsed as it is read, a block
/// of lines at a time, so only the tree is held in memory, not the text.
pub fn load_file_as(path: &Path, format: Format, limits: &Limits) -> Result<Node, Error> {
    if format == Format::Json {
        return load_tree_file_as(path, format, limits).map(|tree| tree.to_node());
    }
    let (name, bytes) = read_file(path, limits)?;
    load_bytes(&bytes, format, &name, limits)
}

/// [`load_file`] into a compact [`Tree`], the form the differ compares
/// fastest and in about half the memory.
///
/// ```no_run
/// use rollgate_drift::{Differ, Limits, load_tree_file};
/// let limits = Limits::default();
/// let desired = load_tree_file("desired.json".as_ref(), &limits)?;
/// let live = load_tree_file("live.json".as_ref(), &limits)?;
/// println!("{} differences", Differ::default().diff_trees(&desired, &live).differences().len());
/// # Ok::<(), rollgate_drift::Error>(())
/// ```
pub fn load_tree_file(path: &Path, limits: &Limits) -> Result<Tree, Error> {
    let format = Format::from_path(path).ok_or_else(|| Error::UnknownFormat {
        path: path.to_owned(),
    })?;
    load_tree_file_as(path, format, limits)
}

/// [`load_file_as`] into a compact [`Tree`].
pub fn load_tree_file_as(path: &Path, format: Format, limits: &Limits) -> Result<Tree, Error> {
    let name = path.display().to_string();
    let read_err = |source| Error::Read {
        path: path.to_owned(),
        source,
    };
    if format == Format::Json {
        let meta = std::fs::metadata(path).map_err(read_err)?;
        check_size(
            usize::try_from(meta.len()).unwrap_or(usize::MAX),
            &name,
            limits,
        )?;
        // Read a block of lines at a time: the text is never whole in memory.
        // The file's size sizes the tree up front.
        let file = std::fs::File::open(path).map_err(read_err)?;
        let hint = usize::try_from(meta.len()).unwrap_or(0);
        return json::parse_read(file, &name, limits, hint);
    }
    let (name, bytes) = read_file(path, limits)?;
    load_tree_bytes(&bytes, format, &name, limits)
}

/// A YAML or TOML file's name and bytes, if its size is within the limit.
fn read_file(path: &Path, limits: &Limits) -> Result<(String, Vec<u8>), Error> {
    let name = path.display().to_string();
    let read_err = |source| Error::Read {
        path: path.to_owned(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(read_err)?;
    check_size(
        usize::try_from(meta.len()).unwrap_or(usize::MAX),
        &name,
        limits,
    )?;
    let bytes = std::fs::read(path).map_err(read_err)?;
    Ok((name, bytes))
}

fn check_size(len: usize, source_name: &str, limits: &Limits) -> Result<(), Error> {
    let size = len as u64;
    if size > limits.bytes() {
        return Err(Error::TooLarge {
            source_name: source_name.to_owned(),
            size,
            limit: limits.bytes(),
        });
    }
    Ok(())
}

/// 1-based line and byte column of a byte offset.
pub(crate) fn line_col(bytes: &[u8], offset: usize) -> (u32, u32) {
    let offset = offset.min(bytes.len());
    let before = &bytes[..offset];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    (to_u32(line), to_u32(offset - line_start + 1))
}

pub(crate) fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
