//! The tree model every loader produces: JSON-like values that remember where
//! in the source they came from.

use std::fmt;

/// The string type of keys and string values. Strings of up to 24 bytes (in
/// real configurations nearly all of them) are stored inline, so loading a
/// large document allocates once per container rather than once per string.
/// It dereferences to `str` and converts from `&str` and `String`.
pub type Str = compact_str::CompactString;

/// A position in a source file: 1-based line and column (columns count bytes
/// for JSON and TOML, characters for YAML), and which source file when a
/// document was merged from several (a base and its overlays).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Pos {
    /// Line, starting at 1; 0 means "unknown" (a node built in code).
    pub line: u32,
    /// Column, starting at 1; 0 means "unknown".
    pub column: u32,
    /// Which of the merged sources the node came from: 0 for the base (and
    /// any single file), `k` for the `k`-th overlay (see
    /// [`Node::set_source`] and `RenderOptions::desired_sources`).
    pub source: u32,
}

impl Pos {
    /// A position at `line`:`column` of source 0.
    #[must_use]
    pub const fn new(line: u32, column: u32) -> Self {
        Self {
            line,
            column,
            source: 0,
        }
    }

    /// Whether the position is known (the node came from a source file).
    #[must_use]
    pub const fn is_known(&self) -> bool {
        self.line > 0
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// A number as the sources write it: an integer when it fits `i64`, a float
/// otherwise. `1` and `1.0` compare equal.
#[derive(Debug, Clone, Copy)]
pub enum Number {
    /// An integer.
    Int(i64),
    /// A finite floating point number.
    Float(f64),
}

impl Number {
    /// The value as `f64` (may round large integers).
    #[must_use]
    pub fn as_f64(&self) -> f64 {
        match *self {
            // Rounding is the documented behaviour for huge integers.
            #[allow(clippy::cast_precision_loss)]
            Number::Int(i) => i as f64,
            Number::Float(f) => f,
        }
    }
}

impl PartialEq for Number {
    fn eq(&self, other: &Self) -> bool {
        match (*self, *other) {
            (Number::Int(a), Number::Int(b)) => a == b,
            (a, b) => a.as_f64() == b.as_f64(),
        }
    }
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Number::Int(i) => write!(f, "{i}"),
            Number::Float(x) => {
                if x.is_finite() && x == x.trunc() && x.abs() < 1e16 {
                    write!(f, "{x:.1}")
                } else {
                    write!(f, "{x:?}")
                }
            }
        }
    }
}

/// One key of an object with the position of the key itself. Equality
/// ignores positions.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The key.
    pub key: Str,
    /// Where the key was written.
    pub key_pos: Pos,
    /// The value.
    pub node: Node,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key && self.node == other.node
    }
}

/// An object: keys kept sorted so lookups are binary searches and every
/// rendering is deterministic.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Map {
    entries: Vec<Entry>,
}

impl Map {
    /// An empty map.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a map from entries in any order. Returns the first duplicate
    /// (the later of the two entries with the same key) and the earlier one's
    /// key position as an error.
    pub(crate) fn from_unsorted(mut entries: Vec<Entry>) -> Result<Self, (Entry, Pos)> {
        // Stable sort keeps source order among equal keys, so the second of a
        // duplicate pair is the one reported.
        if entries
            .windows(2)
            .all(|w| key_cmp(&w[0].key, &w[1].key).is_lt())
        {
            // Strictly increasing: sorted, and no key twice.
            return Ok(Self { entries });
        }
        entries.sort_by(|a, b| key_cmp(&a.key, &b.key));
        let dup = entries
            .windows(2)
            .enumerate()
            .filter(|(_, w)| w[0].key == w[1].key)
            .map(|(i, _)| i)
            .next();
        if let Some(i) = dup {
            let first = entries[i].key_pos;
            let second = entries.swap_remove(i + 1);
            return Err((second, first));
        }
        Ok(Self { entries })
    }

    /// The number of keys.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the map has no key.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The value under `key`.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.find(key).ok().map(|i| &self.entries[i].node)
    }

    /// The value under `key`, mutably.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Node> {
        self.find(key).ok().map(move |i| &mut self.entries[i].node)
    }

    /// The entry under `key`.
    #[must_use]
    pub fn entry(&self, key: &str) -> Option<&Entry> {
        self.find(key).ok().map(|i| &self.entries[i])
    }

    /// Inserts or replaces `key`, returning the old value.
    pub fn insert(&mut self, key: impl Into<Str>, node: Node) -> Option<Node> {
        let key = key.into();
        match self.find(&key) {
            Ok(i) => Some(std::mem::replace(&mut self.entries[i].node, node)),
            Err(i) => {
                let key_pos = node.pos;
                self.entries.insert(i, Entry { key, key_pos, node });
                None
            }
        }
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<Node> {
        self.find(key).ok().map(|i| self.entries.remove(i).node)
    }

    /// The entries in key order, as a slice.
    pub(crate) fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The entries in key order.
    pub fn iter(&self) -> std::slice::Iter<'_, Entry> {
        self.entries.iter()
    }

    /// The entries in key order, values mutable.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&str, &mut Node)> {
        self.entries
            .iter_mut()
            .map(|e| (e.key.as_str(), &mut e.node))
    }

    fn find(&self, key: &str) -> Result<usize, usize> {
        self.entries.binary_search_by(|e| key_cmp(&e.key, key))
    }
}

/// Byte order of keys, deciding on the first byte when it differs (nearly
/// always, in real configurations) before comparing the rest.
#[inline]
pub(crate) fn key_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    match (a.first(), b.first()) {
        (Some(x), Some(y)) if x != y => x.cmp(y),
        _ => a.cmp(b),
    }
}

impl<'a> IntoIterator for &'a Map {
    type Item = &'a Entry;
    type IntoIter = std::slice::Iter<'a, Entry>;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter()
    }
}

/// A value of the tree.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `null` (JSON, YAML `~`).
    Null,
    /// A boolean.
    Bool(bool),
    /// A number.
    Number(Number),
    /// A string (TOML datetimes load as their RFC 3339 text).
    String(Str),
    /// A list.
    Array(Vec<Node>),
    /// An object.
    Object(Map),
}

impl Value {
    /// The type's name as reports print it.
    #[must_use]
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        }
    }

    /// Whether the value is a scalar (not an array nor an object).
    #[must_use]
    pub fn is_scalar(&self) -> bool {
        !matches!(self, Value::Array(_) | Value::Object(_))
    }
}

/// A node: a value and where it was written.
///
/// Equality compares values only, never positions.
///
/// ```
/// use rollgate_drift::{Format, Limits, load};
/// let a = load(r#"{"replicas": 3}"#, Format::Json, "a.json", &Limits::default())?;
/// let b = load("replicas: 3\n", Format::Yaml, "b.yaml", &Limits::default())?;
/// assert_eq!(a, b);
/// assert_eq!(b.pointer("/replicas").map(|n| n.pos.line), Some(1));
/// # Ok::<(), rollgate_drift::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Node {
    /// The value.
    pub value: Value,
    /// Where the value starts in its source.
    pub pos: Pos,
}

impl PartialEq for Node {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}

impl Node {
    /// A node with an unknown position.
    #[must_use]
    pub fn new(value: Value) -> Self {
        Self {
            value,
            pos: Pos::default(),
        }
    }

    /// A node at `pos`.
    #[must_use]
    pub fn at(value: Value, pos: Pos) -> Self {
        Self { value, pos }
    }

    /// Marks this node and everything under it as coming from source
    /// `source` (an overlay's index, from 1, before it is merged onto its
    /// base), so reports name the right file for each position.
    ///
    /// ```
    /// use rollgate_drift::{Format, Limits, load};
    /// let mut overlay = load("a: {b: 1}\n", Format::Yaml, "prod.yaml", &Limits::default())?;
    /// overlay.set_source(1);
    /// assert_eq!(overlay.pointer("/a/b").map(|n| (n.pos.source, n.pos.line)), Some((1, 1)));
    /// # Ok::<(), rollgate_drift::Error>(())
    /// ```
    pub fn set_source(&mut self, source: u32) {
        let mut stack = vec![self];
        while let Some(n) = stack.pop() {
            n.pos.source = source;
            match &mut n.value {
                Value::Array(items) => stack.extend(items.iter_mut()),
                Value::Object(m) => stack.extend(m.iter_mut().map(|(_, v)| v)),
                _ => {}
            }
        }
    }

    /// The node at a JSON Pointer (RFC 6901), if any.
    #[must_use]
    pub fn pointer(&self, pointer: &str) -> Option<&Node> {
        if pointer.is_empty() {
            return Some(self);
        }
        let rest = pointer.strip_prefix('/')?;
        let mut node = self;
        for raw in rest.split('/') {
            let token = unescape_token(raw);
            node = match &node.value {
                Value::Object(map) => map.get(&token)?,
                Value::Array(items) => items.get(parse_index(&token)?)?,
                _ => return None,
            };
        }
        Some(node)
    }

    /// The number of nodes in this subtree (itself included).
    #[must_use]
    pub fn count(&self) -> usize {
        match &self.value {
            Value::Array(items) => 1 + items.iter().map(Node::count).sum::<usize>(),
            Value::Object(map) => 1 + map.iter().map(|e| e.node.count()).sum::<usize>(),
            _ => 1,
        }
    }

    /// Serialises the node as compact JSON with keys sorted.
    #[must_use]
    pub fn to_json(&self) -> String {
        let mut out = String::new();
        crate::render::write_json(&mut out, self, None);
        out
    }
}

impl From<Value> for Node {
    fn from(value: Value) -> Self {
        Node::new(value)
    }
}

/// Parses an array index token of a JSON Pointer (no leading zeros, no sign).
pub(crate) fn parse_index(token: &str) -> Option<usize> {
    if token.is_empty() || (token.len() > 1 && token.starts_with('0')) {
        return None;
    }
    if !token.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    token.parse().ok()
}

/// Escapes one JSON Pointer token (`~` -> `~0`, `/` -> `~1`).
#[must_use]
pub fn escape_token(token: &str) -> String {
    if token.contains(['~', '/']) {
        token.replace('~', "~0").replace('/', "~1")
    } else {
        token.to_owned()
    }
}

/// Unescapes one JSON Pointer token.
#[must_use]
pub fn unescape_token(token: &str) -> String {
    if token.contains('~') {
        token.replace("~1", "/").replace("~0", "~")
    } else {
        token.to_owned()
    }
}
