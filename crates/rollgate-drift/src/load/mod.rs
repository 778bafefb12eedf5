//! Loaders: JSON, YAML (multi-document) and TOML into one [`Node`] tree, with
//! positions, a depth limit, a size limit, a node limit and duplicate-key
//! rejection.

mod json;
mod toml;
mod yaml;

use std::io::Read;
use std::path::Path;

use crate::error::Error;
use crate::tree::Node;

/// The largest depth limit accepted; deeper limits are clamped so recursion
/// stays well inside a thread's stack.
pub const MAX_DEPTH_CEILING: usize = 1000;

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
    /// Maximum input size in bytes.
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
    check_size(text.len(), source_name, limits)?;
    // A UTF-8 byte order mark carries no content (editors on Windows add it).
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    match format {
        Format::Json => json::parse(text, source_name, limits),
        Format::Yaml => yaml::parse(text, source_name, limits),
        Format::Toml => toml::parse(text, source_name, limits),
    }
}

/// Loads raw bytes (which must be UTF-8) in `format`.
pub fn load_bytes(
    bytes: &[u8],
    format: Format,
    source_name: &str,
    limits: &Limits,
) -> Result<Node, Error> {
    check_size(bytes.len(), source_name, limits)?;
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let (line, column) = line_col(bytes, e.valid_up_to());
        Error::Syntax {
            source_name: source_name.to_owned(),
            format: format.name(),
            line,
            column,
            message: "invalid UTF-8".to_owned(),
        }
    })?;
    load(text, format, source_name, limits)
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
        return json::parse_read(reader, source_name, limits);
    }
    // One byte past the limit is enough for `load_bytes` to reject the size.
    let mut bytes = Vec::new();
    reader
        .take(limits.max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|source| Error::Read {
            path: source_name.into(),
            source,
        })?;
    load_bytes(&bytes, format, source_name, limits)
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
    json::parse_blocks(reader, source_name, limits, block.max(1))
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
    let name = path.display().to_string();
    let read_err = |source| Error::Read {
        path: path.to_owned(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(read_err)?;
    if meta.len() > limits.max_bytes {
        return Err(Error::TooLarge {
            source_name: name,
            size: meta.len(),
            limit: limits.max_bytes,
        });
    }
    if format == Format::Json {
        // Read a block of lines at a time: the text is never whole in memory.
        let file = std::fs::File::open(path).map_err(read_err)?;
        return load_reader(file, format, &name, limits);
    }
    let bytes = std::fs::read(path).map_err(read_err)?;
    load_bytes(&bytes, format, &name, limits)
}

fn check_size(len: usize, source_name: &str, limits: &Limits) -> Result<(), Error> {
    let size = len as u64;
    if size > limits.max_bytes {
        return Err(Error::TooLarge {
            source_name: source_name.to_owned(),
            size,
            limit: limits.max_bytes,
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
