//! Prototype of ADR 0004: a loaded JSON document as one arena of 16-byte
//! slots plus one string of unescaped text, instead of a tree of owned nodes.
//!
//! Layout. Every value is a [`Slot`]: its kind, the byte offset where it
//! starts in the source, and 8 bytes of payload (the number itself, or an
//! offset and a length into `text` for a string, or the index of the first
//! child and the child count for a container). An array's elements are
//! consecutive slots; an object's entries are consecutive (key, value) slot
//! pairs sorted by key bytes, the key slot being a string whose position is
//! the key's. The root is slot 0.
//!
//! Building. The parser pushes every finished value onto a stack of pending
//! children. When a container closes, its children are the top of that stack:
//! an object's pairs are sorted there (and checked for duplicate keys), then
//! the children are copied once, contiguously, to the end of `slots`, and the
//! container's own slot replaces them on the stack. Each slot is thus written
//! twice (stack, then arena) and never moved again; nothing is allocated per
//! container, and the stack only ever holds the open containers' children.
//!
//! Positions are byte offsets from the start of the input; `lines` holds the
//! offset of every line start, so `line:column` is a binary search.
//!
//! The parser is a copy of `load::json` (same streaming block reader, same
//! limits, same error messages and positions), kept separate so the two can
//! be compared.

use std::cmp::Ordering;
use std::io::Read;
use std::path::Path;

use crate::error::Error;
use crate::load::{Limits, line_col, to_u32};
use crate::tree::{Entry, Map, Node, Number, Pos, Str, Value};

/// What a slot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Kind {
    Null,
    Bool,
    Int,
    Float,
    String,
    Array,
    Object,
}

/// One value of a [`Tree`]: 16 bytes, 4-aligned.
#[derive(Debug, Clone, Copy)]
struct Slot {
    /// Byte offset of the value's first byte in the input.
    pos: u32,
    /// A [`Kind`], or `INLINE + n` for a string of `n <= 11` bytes held in `b`.
    tag: u8,
    /// An inline string, or (in `b[3..11]`) the payload: a boolean (0/1), an
    /// `i64`, an `f64`'s bits, or two `u32` halves (low: offset into `text` or
    /// first child; high: length or child count).
    b: [u8; INLINE_MAX],
}

/// Tags from `INLINE` to `INLINE + 11` are strings stored in the slot itself.
const INLINE: u8 = 16;
/// The longest string stored in its slot.
const INLINE_MAX: usize = 11;

impl Slot {
    fn new(kind: Kind, pos: u32, data: u64) -> Self {
        let mut b = [0; 11];
        b[3..].copy_from_slice(&data.to_le_bytes());
        Self {
            pos,
            tag: kind as u8,
            b,
        }
    }

    fn pair(kind: Kind, pos: u32, lo: u32, hi: u32) -> Self {
        Self::new(kind, pos, u64::from(lo) | (u64::from(hi) << 32))
    }

    /// A string of at most [`INLINE_MAX`] bytes, held in the slot.
    #[allow(clippy::cast_possible_truncation)]
    fn inline(pos: u32, s: &[u8]) -> Self {
        let mut b = [0; 11];
        b[..s.len()].copy_from_slice(s);
        Self {
            pos,
            tag: INLINE + s.len() as u8,
            b,
        }
    }

    /// A string of `len <= INLINE_MAX` bytes, the first `len` of `window`
    /// (a fixed-size copy; the bytes after the string are ignored).
    #[allow(clippy::cast_possible_truncation)]
    fn inline_window(pos: u32, window: [u8; INLINE_MAX], len: usize) -> Self {
        Self {
            pos,
            tag: INLINE + len as u8,
            b: window,
        }
    }

    fn kind(&self) -> Kind {
        match self.tag {
            0 => Kind::Null,
            1 => Kind::Bool,
            2 => Kind::Int,
            3 => Kind::Float,
            5 => Kind::Array,
            6 => Kind::Object,
            _ => Kind::String,
        }
    }

    fn data(&self) -> u64 {
        let mut w = [0; 8];
        w.copy_from_slice(&self.b[3..]);
        u64::from_le_bytes(w)
    }

    /// The low half: offset into `text` or index of the first child.
    #[allow(clippy::cast_possible_truncation)]
    fn lo(&self) -> usize {
        (self.data() as u32) as usize
    }

    /// The high half: string length or child count.
    fn hi(&self) -> usize {
        (self.data() >> 32) as usize
    }

    /// The payload bytes as two overlapping little-endian words (bytes
    /// 0..8 and 7..11); an inline string's are compared under
    /// [`INLINE_MASKS`] (the bytes after it are not defined).
    #[inline]
    fn words(&self) -> (u64, u32) {
        let mut lo = [0; 8];
        lo.copy_from_slice(&self.b[..8]);
        let mut hi = [0; 4];
        hi.copy_from_slice(&self.b[7..]);
        (u64::from_le_bytes(lo), u32::from_le_bytes(hi))
    }

    /// Whether two slots hold the same inline string (`false` when either
    /// is something else; strings stored in `text` are compared by bytes).
    #[inline]
    fn same_inline(&self, other: &Slot) -> bool {
        if self.tag != other.tag || self.tag < INLINE {
            return false;
        }
        let (m_lo, m_hi) = INLINE_MASKS[usize::from(self.tag - INLINE).min(INLINE_MAX)];
        let ((a_lo, a_hi), (b_lo, b_hi)) = (self.words(), other.words());
        (a_lo ^ b_lo) & m_lo == 0 && (a_hi ^ b_hi) & m_hi == 0
    }
}

/// For each inline length `n`, the masks keeping an inline string's first
/// `n` bytes in its two [`Slot::words`].
const INLINE_MASKS: [(u64, u32); INLINE_MAX + 1] = {
    let mut out = [(0, 0); INLINE_MAX + 1];
    let mut n = 0;
    while n <= INLINE_MAX {
        let lo = if n >= 8 {
            u64::MAX
        } else {
            (1u64 << (8 * n)) - 1
        };
        let m = n.saturating_sub(7);
        let hi = if m >= 4 {
            u32::MAX
        } else {
            (1u32 << (8 * m)) - 1
        };
        out[n] = (lo, hi);
        n += 1;
    }
    out
};

/// A key looked up in small objects: matched against inline keys as two
/// masked words (no byte-slice comparison), and against keys held in
/// `text` by bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Needle {
    tag: u8,
    /// The key's words, masked.
    words: (u64, u32),
    masks: (u64, u32),
}

impl Needle {
    /// `None` for keys too long to be held inline.
    #[inline]
    #[allow(clippy::cast_possible_truncation)]
    fn new(bytes: &[u8]) -> Option<Self> {
        if bytes.len() > INLINE_MAX {
            return None;
        }
        let mut b = [0; INLINE_MAX];
        for (to, from) in b.iter_mut().zip(bytes) {
            *to = *from;
        }
        let slot = Slot {
            pos: 0,
            tag: INLINE + bytes.len() as u8,
            b,
        };
        let masks = INLINE_MASKS[bytes.len()];
        let (lo, hi) = slot.words();
        Some(Self {
            tag: slot.tag,
            words: (lo & masks.0, hi & masks.1),
            masks,
        })
    }

    /// Whether `s` is the key `bytes` this needle was made from.
    #[inline]
    fn matches(&self, text: &str, s: &Slot, bytes: &[u8]) -> bool {
        if s.tag == self.tag {
            let (lo, hi) = s.words();
            (lo & self.masks.0, hi & self.masks.1) == self.words
        } else {
            // The parser holds every string of up to 11 bytes inline; this
            // keeps the lookup right if a key of that length is in `text`.
            s.tag == Kind::String as u8 && slot_bytes(text, s) == bytes
        }
    }
}

/// The bytes of the string a string slot holds, inline or in `text`.
#[inline]
fn slot_bytes<'a>(text: &'a str, s: &'a Slot) -> &'a [u8] {
    if s.tag >= INLINE {
        &s.b[..usize::from(s.tag - INLINE)]
    } else {
        &text.as_bytes()[s.lo()..s.lo() + s.hi()]
    }
}

/// The string a string slot holds, inline or in `text`.
fn slot_str<'a>(text: &'a str, s: &'a Slot) -> &'a str {
    if s.tag >= INLINE {
        // Always a whole string's bytes: the check only guards the prototype.
        std::str::from_utf8(&s.b[..usize::from(s.tag - INLINE)]).unwrap_or_default()
    } else {
        &text[s.lo()..s.lo() + s.hi()]
    }
}

/// A JSON document loaded as an arena (ADR 0004). Read it through
/// [`Tree::root`].
#[derive(Debug, Clone)]
pub struct Tree {
    slots: Vec<Slot>,
    text: String,
    lines: Vec<u32>,
}

impl Tree {
    /// The root value.
    #[must_use]
    pub fn root(&self) -> NodeRef<'_> {
        NodeRef { tree: self, idx: 0 }
    }

    /// The number of slots (values and object keys).
    #[must_use]
    pub fn slot_count(&self) -> usize {
        self.slots.len()
    }

    /// The bytes of unescaped string text (keys and values).
    #[must_use]
    pub fn text_bytes(&self) -> usize {
        self.text.len()
    }

    /// The number of lines of the input.
    #[must_use]
    pub fn line_count(&self) -> usize {
        self.lines.len()
    }

    /// Bytes the tree's contents take (slots, text, line table), not counting
    /// spare capacity.
    #[must_use]
    pub fn used_bytes(&self) -> usize {
        self.slots.len() * size_of::<Slot>() + self.text.len() + self.lines.len() * 4
    }

    /// Bytes the tree has allocated (spare capacity included; spare capacity
    /// that was never written is not resident memory).
    #[must_use]
    pub fn allocated_bytes(&self) -> usize {
        self.slots.capacity() * size_of::<Slot>() + self.text.capacity() + self.lines.capacity() * 4
    }

    /// The line and column of a byte offset of the input.
    fn pos_at(&self, offset: u32) -> Pos {
        pos_in(&self.lines, offset)
    }

    fn str_of(&self, idx: usize) -> &str {
        slot_str(&self.text, &self.slots[idx])
    }
}

/// The 1-based line and byte column of `offset`, given every line's start.
fn pos_in(lines: &[u32], offset: u32) -> Pos {
    let line = lines.partition_point(|&start| start <= offset).max(1);
    Pos::new(to_u32(line), offset.saturating_sub(lines[line - 1]) + 1)
}

/// A value of a [`Tree`] with its position.
#[derive(Debug, Clone, Copy)]
pub struct NodeRef<'t> {
    tree: &'t Tree,
    idx: usize,
}

/// The value of a [`NodeRef`].
#[derive(Debug, Clone, Copy)]
pub enum ValueRef<'t> {
    /// `null`.
    Null,
    /// A boolean.
    Bool(bool),
    /// A number.
    Number(Number),
    /// A string.
    String(&'t str),
    /// An array.
    Array(ArrayRef<'t>),
    /// An object.
    Object(MapRef<'t>),
}

impl<'t> NodeRef<'t> {
    fn slot(&self) -> Slot {
        self.tree.slots[self.idx]
    }

    /// The value.
    #[must_use]
    pub fn value(&self) -> ValueRef<'t> {
        let tree = self.tree;
        let s = self.slot();
        match s.kind() {
            Kind::Null => ValueRef::Null,
            Kind::Bool => ValueRef::Bool(s.data() != 0),
            #[allow(clippy::cast_possible_wrap)]
            Kind::Int => ValueRef::Number(Number::Int(s.data() as i64)),
            Kind::Float => ValueRef::Number(Number::Float(f64::from_bits(s.data()))),
            Kind::String => ValueRef::String(tree.str_of(self.idx)),
            Kind::Array => ValueRef::Array(ArrayRef {
                tree,
                first: s.lo(),
                len: s.hi(),
            }),
            Kind::Object => ValueRef::Object(MapRef {
                tree,
                first: s.lo(),
                len: s.hi(),
            }),
        }
    }

    /// Where the value starts in its source.
    #[must_use]
    pub fn pos(&self) -> Pos {
        self.tree.pos_at(self.slot().pos)
    }

    /// Converts the subtree into the owned model, positions included.
    #[must_use]
    pub fn to_node(&self) -> Node {
        let value = match self.value() {
            ValueRef::Null => Value::Null,
            ValueRef::Bool(b) => Value::Bool(b),
            ValueRef::Number(n) => Value::Number(n),
            ValueRef::String(s) => Value::String(Str::from(s)),
            ValueRef::Array(a) => Value::Array(a.iter().map(|n| n.to_node()).collect()),
            ValueRef::Object(m) => {
                let entries = m
                    .iter()
                    .map(|(key, key_pos, node)| Entry {
                        key: Str::from(key),
                        key_pos,
                        node: node.to_node(),
                    })
                    .collect();
                // Already sorted and free of duplicates: the fast path.
                Value::Object(Map::from_unsorted(entries).unwrap_or_else(|_| Map::new()))
            }
        };
        Node::at(value, self.pos())
    }
}

/// An array of a [`Tree`]: its elements are consecutive slots.
#[derive(Debug, Clone, Copy)]
pub struct ArrayRef<'t> {
    tree: &'t Tree,
    first: usize,
    len: usize,
}

impl<'t> ArrayRef<'t> {
    /// The number of elements.
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the array is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The element at `index`.
    #[must_use]
    pub fn get(&self, index: usize) -> Option<NodeRef<'t>> {
        (index < self.len).then(|| NodeRef {
            tree: self.tree,
            idx: self.first + index,
        })
    }

    /// The elements in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = NodeRef<'t>> + 't {
        let tree = self.tree;
        (self.first..self.first + self.len).map(move |idx| NodeRef { tree, idx })
    }
}

/// An object of a [`Tree`]: its entries are consecutive (key, value) slot
/// pairs in key order.
#[derive(Debug, Clone, Copy)]
pub struct MapRef<'t> {
    tree: &'t Tree,
    first: usize,
    len: usize,
}

impl<'t> MapRef<'t> {
    /// The number of keys.
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the object has no key.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn key(&self, k: usize) -> &'t [u8] {
        slot_bytes(&self.tree.text, &self.tree.slots[self.first + 2 * k])
    }

    /// The value under `key` (a binary search).
    #[must_use]
    pub fn get(&self, key: &str) -> Option<NodeRef<'t>> {
        let key_bytes = key.as_bytes();
        if self.len <= 8 {
            // Small objects (nearly all): a scan on the length and the first
            // byte before any byte comparison.
            let first = key_bytes.first();
            for k in 0..self.len {
                let kb = self.key(k);
                if kb.len() == key_bytes.len() && kb.first() == first && kb == key_bytes {
                    return Some(NodeRef {
                        tree: self.tree,
                        idx: self.first + 2 * k + 1,
                    });
                }
            }
            return None;
        }
        let (mut lo, mut hi) = (0, self.len);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match key_cmp(self.key(mid), key.as_bytes()) {
                Ordering::Less => lo = mid + 1,
                Ordering::Greater => hi = mid,
                Ordering::Equal => {
                    return Some(NodeRef {
                        tree: self.tree,
                        idx: self.first + 2 * mid + 1,
                    });
                }
            }
        }
        None
    }

    /// The entries in key order: key, the key's position, value.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&'t str, Pos, NodeRef<'t>)> + 't {
        let tree = self.tree;
        let first = self.first;
        (0..self.len).map(move |k| {
            let key = first + 2 * k;
            (
                tree.str_of(key),
                tree.pos_at(tree.slots[key].pos),
                NodeRef {
                    tree,
                    idx: first + 2 * k + 1,
                },
            )
        })
    }
}

/// Byte order of keys, deciding on the first byte when it differs (as
/// `tree::key_cmp`).
#[inline]
fn key_cmp(a: &[u8], b: &[u8]) -> Ordering {
    match (a.first(), b.first()) {
        (Some(x), Some(y)) if x != y => x.cmp(y),
        _ => a.cmp(b),
    }
}

/// Parses JSON text held in memory, as [`crate::load`] does with
/// [`crate::Format::Json`] (size limit, byte order mark skipped).
pub fn parse_str(text: &str, source_name: &str, limits: &Limits) -> Result<Tree, Error> {
    check_size(text.len() as u64, source_name, limits)?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    run(Whole(text), source_name, limits, 0, text.len())
}

/// Parses JSON read from `reader` a block of lines at a time (as
/// [`crate::load_file`] does for JSON). `size_hint`, the input's size when
/// known, sizes the arena up front so it is not copied while it grows.
pub fn parse_read(
    reader: impl Read,
    source_name: &str,
    limits: &Limits,
    size_hint: usize,
) -> Result<Tree, Error> {
    parse_blocks(reader, source_name, limits, BLOCK, size_hint)
}

/// Loads a JSON file, streamed a block of lines at a time.
pub fn load_file(path: &Path, limits: &Limits) -> Result<Tree, Error> {
    let name = path.display().to_string();
    let read_err = |source| Error::Read {
        path: path.to_owned(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(read_err)?;
    check_size(meta.len(), &name, limits)?;
    let file = std::fs::File::open(path).map_err(read_err)?;
    let hint = usize::try_from(meta.len()).unwrap_or(usize::MAX);
    parse_read(file, &name, limits, hint)
}

fn check_size(size: u64, source_name: &str, limits: &Limits) -> Result<(), Error> {
    // Offsets are `u32`: larger inputs need a wider slot.
    let limit = limits.max_bytes.min(u64::from(u32::MAX));
    if size > limit {
        return Err(Error::TooLarge {
            source_name: source_name.to_owned(),
            size,
            limit,
        });
    }
    Ok(())
}

fn parse_blocks(
    reader: impl Read,
    source_name: &str,
    limits: &Limits,
    block: usize,
    size_hint: usize,
) -> Result<Tree, Error> {
    let mut lines = Lines {
        reader,
        block,
        chunk: String::new(),
        spare: Vec::new(),
        carry: Vec::new(),
        eof: false,
        total: 0,
        limit: limits.max_bytes.min(u64::from(u32::MAX)),
    };
    let mut bom = 0;
    match lines.advance() {
        Ok(_) => {
            if lines.chunk.starts_with('\u{feff}') {
                bom = '\u{feff}'.len_utf8();
            }
        }
        Err(e) => return Err(e.into_error(source_name, 1)),
    }
    run(lines, source_name, limits, bom, size_hint)
}

fn run<S: Source>(
    src: S,
    source_name: &str,
    limits: &Limits,
    skip: usize,
    size_hint: usize,
) -> Result<Tree, Error> {
    // Room for the whole tree up to a slot per 8 input bytes and all of the
    // input as text; capacity never written is never resident.
    let mut slots = Vec::with_capacity(size_hint / 8 + 1);
    slots.push(Slot::new(Kind::Null, 0, 0));
    let mut p = Parser {
        src,
        i: skip,
        base: 0,
        line: 1,
        line_start: skip,
        source_name,
        max_depth: limits.depth(),
        max_nodes: limits.max_nodes,
        nodes: 0,
        stack: Vec::new(),
        slots,
        text: String::with_capacity(size_hint),
        lines: vec![to_u32(skip)],
    };
    p.skip_ws()?;
    p.value(0)?;
    p.skip_ws()?;
    if p.i < p.src.bytes().len() {
        return Err(p.syntax("trailing characters after the document"));
    }
    let root = p.stack.pop().unwrap_or(Slot::new(Kind::Null, 0, 0));
    p.slots[0] = root;
    Ok(Tree {
        slots: p.slots,
        text: p.text,
        lines: p.lines,
    })
}

/// Where the parser's text comes from: the current block (valid UTF-8, ending
/// just after a line break or at the end of the input) and the way to the next.
trait Source {
    fn text(&self) -> &str;
    #[inline]
    fn bytes(&self) -> &[u8] {
        self.text().as_bytes()
    }
    /// Replaces the block with the next one; `false` at the end of the input.
    fn advance(&mut self) -> Result<bool, ChunkError>;
}

/// An input held whole in memory: one block.
struct Whole<'a>(&'a str);

impl Source for Whole<'_> {
    #[inline]
    fn text(&self) -> &str {
        self.0
    }
    fn advance(&mut self) -> Result<bool, ChunkError> {
        Ok(false)
    }
}

enum ChunkError {
    Io(std::io::Error),
    /// Invalid UTF-8 `lines` line breaks into the new block, at `column`.
    Utf8 {
        lines: u32,
        column: u32,
    },
    TooLarge {
        size: u64,
        limit: u64,
    },
}

impl ChunkError {
    /// The error for a failed read of the next block, which starts at `line`.
    fn into_error(self, source_name: &str, line: usize) -> Error {
        match self {
            ChunkError::Io(source) => Error::Read {
                path: source_name.into(),
                source,
            },
            ChunkError::TooLarge { size, limit } => Error::TooLarge {
                source_name: source_name.to_owned(),
                size,
                limit,
            },
            ChunkError::Utf8 { lines, column } => Error::Syntax {
                source_name: source_name.to_owned(),
                format: "json",
                line: to_u32(line).saturating_add(lines),
                column,
                message: "invalid UTF-8".to_owned(),
            },
        }
    }
}

/// How much to read before cutting a block at its last line break.
const BLOCK: usize = 1 << 20;

/// An input read a block of whole lines at a time.
struct Lines<R> {
    reader: R,
    /// Bytes to read before cutting a block ([`BLOCK`]; small in tests).
    block: usize,
    chunk: String,
    /// The buffer the next block is read into (the previous block's).
    spare: Vec<u8>,
    /// Bytes read after the current block's last line break.
    carry: Vec<u8>,
    eof: bool,
    total: u64,
    limit: u64,
}

impl<R: Read> Source for Lines<R> {
    #[inline]
    fn text(&self) -> &str {
        &self.chunk
    }

    fn advance(&mut self) -> Result<bool, ChunkError> {
        let mut raw = std::mem::take(&mut self.spare);
        raw.clear();
        raw.append(&mut self.carry);
        let cut = loop {
            if raw.len() >= self.block || self.eof {
                if let Some(p) = raw.iter().rposition(|&b| b == b'\n') {
                    break p + 1;
                }
                if self.eof {
                    break raw.len();
                }
            }
            // `read_to_end` fills the spare capacity without zeroing it first.
            let want = self.block as u64;
            let n = (&mut self.reader)
                .take(want)
                .read_to_end(&mut raw)
                .map_err(ChunkError::Io)?;
            self.total += n as u64;
            if self.total > self.limit {
                return Err(ChunkError::TooLarge {
                    size: self.total,
                    limit: self.limit,
                });
            }
            // `take` reads until it has `want` bytes or the input ends.
            self.eof = (n as u64) < want;
        };
        if cut == 0 {
            // Nothing left: the last block stays, as an in-memory input's does.
            self.spare = raw;
            return Ok(false);
        }
        self.carry.extend_from_slice(&raw[cut..]);
        raw.truncate(cut);
        match String::from_utf8(raw) {
            Ok(chunk) => {
                self.spare = std::mem::replace(&mut self.chunk, chunk).into_bytes();
                Ok(true)
            }
            Err(e) => {
                let (line, column) = line_col(e.as_bytes(), e.utf8_error().valid_up_to());
                Err(ChunkError::Utf8 {
                    lines: line - 1,
                    column,
                })
            }
        }
    }
}

/// The index of the first byte at or after `i` that ends a string's fast
/// path: a quote, a backslash, a control character, or the end of `b` (as
/// `load::json::string_stop`, eight bytes at a time).
#[inline]
fn string_stop(b: &[u8], mut i: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const TOPS: u64 = 0x8080_8080_8080_8080;
    let zero = |v: u64| v.wrapping_sub(ONES) & !v;
    while let Some(chunk) = b.get(i..i + 8) {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        let x = u64::from_le_bytes(w);
        let hit = (zero(x ^ (ONES * u64::from(b'"')))
            | zero(x ^ (ONES * u64::from(b'\\')))
            | (x.wrapping_sub(ONES * 0x20) & !x))
            & TOPS;
        if hit != 0 {
            return i + (hit.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while let Some(&c) = b.get(i) {
        if c == b'"' || c == b'\\' || c < 0x20 {
            break;
        }
        i += 1;
    }
    i
}

struct Parser<'a, S> {
    src: S,
    /// Index into the current block.
    i: usize,
    /// Offset of the current block's first byte in the input.
    base: usize,
    line: usize,
    line_start: usize,
    source_name: &'a str,
    max_depth: usize,
    max_nodes: usize,
    nodes: usize,
    /// Finished values whose container is still open.
    stack: Vec<Slot>,
    slots: Vec<Slot>,
    text: String,
    lines: Vec<u32>,
}

impl<S: Source> Parser<'_, S> {
    fn pos(&self) -> Pos {
        Pos::new(to_u32(self.line), to_u32(self.i - self.line_start + 1))
    }

    /// The input offset of the current byte (below `u32::MAX`: checked).
    #[allow(clippy::cast_possible_truncation)]
    fn offset(&self) -> u32 {
        (self.base + self.i) as u32
    }

    fn syntax(&self, message: &str) -> Error {
        let pos = self.pos();
        Error::Syntax {
            source_name: self.source_name.to_owned(),
            format: "json",
            line: pos.line,
            column: pos.column,
            message: message.to_owned(),
        }
    }

    #[inline(always)]
    fn skip_ws(&mut self) -> Result<(), Error> {
        // Compact JSON has no whitespace between tokens.
        if self.src.bytes().get(self.i).is_some_and(|&c| c > b' ') {
            return Ok(());
        }
        self.skip_ws_slow()
    }

    fn skip_ws_slow(&mut self) -> Result<(), Error> {
        loop {
            while let Some(&c) = self.src.bytes().get(self.i) {
                match c {
                    b' ' | b'\t' | b'\r' => self.i += 1,
                    b'\n' => {
                        self.i += 1;
                        self.line += 1;
                        self.line_start = self.i;
                        self.lines.push(self.offset());
                    }
                    _ => return Ok(()),
                }
            }
            // The end of a block, always between tokens: on to the next one.
            let len = self.src.bytes().len();
            match self.src.advance() {
                Ok(true) => {
                    self.base += len;
                    self.i = 0;
                    self.line_start = 0;
                }
                Ok(false) => return Ok(()),
                Err(e) => return Err(e.into_error(self.source_name, self.line)),
            }
        }
    }

    /// Parses one value and pushes its slot onto the stack.
    fn value(&mut self, depth: usize) -> Result<(), Error> {
        self.nodes += 1;
        if self.nodes > self.max_nodes {
            let pos = self.pos();
            return Err(Error::TooManyNodes {
                source_name: self.source_name.to_owned(),
                line: pos.line,
                column: pos.column,
                limit: self.max_nodes,
            });
        }
        let at = self.offset();
        let slot = match self.src.bytes().get(self.i) {
            None => return Err(self.syntax("unexpected end of input, expected a value")),
            Some(b'{') => {
                self.enter(depth)?;
                self.object(depth, at)?
            }
            Some(b'[') => {
                self.enter(depth)?;
                self.array(depth, at)?
            }
            Some(b'"') => self.string(at)?,
            Some(b't') => self.literal("true", Slot::new(Kind::Bool, at, 1))?,
            Some(b'f') => self.literal("false", Slot::new(Kind::Bool, at, 0))?,
            Some(b'n') => self.literal("null", Slot::new(Kind::Null, at, 0))?,
            Some(b'-' | b'0'..=b'9') => match self.number()? {
                #[allow(clippy::cast_sign_loss)]
                Number::Int(v) => Slot::new(Kind::Int, at, v as u64),
                Number::Float(f) => Slot::new(Kind::Float, at, f.to_bits()),
            },
            Some(_) => return Err(self.syntax("expected a value")),
        };
        self.stack.push(slot);
        Ok(())
    }

    fn enter(&self, depth: usize) -> Result<(), Error> {
        if depth >= self.max_depth {
            let pos = self.pos();
            return Err(Error::TooDeep {
                source_name: self.source_name.to_owned(),
                line: pos.line,
                column: pos.column,
                limit: self.max_depth,
            });
        }
        Ok(())
    }

    fn literal(&mut self, word: &str, slot: Slot) -> Result<Slot, Error> {
        if self.src.bytes()[self.i..].starts_with(word.as_bytes()) {
            self.i += word.len();
            Ok(slot)
        } else {
            Err(self.syntax("invalid literal"))
        }
    }

    /// Moves the children on the stack above `start` to the end of the arena
    /// and returns the container's slot.
    fn close(&mut self, kind: Kind, at: u32, start: usize, count: usize) -> Slot {
        let first = self.slots.len();
        self.slots.extend_from_slice(&self.stack[start..]);
        self.stack.truncate(start);
        Slot::pair(kind, at, to_u32(first), to_u32(count))
    }

    fn object(&mut self, depth: usize, at: u32) -> Result<Slot, Error> {
        self.i += 1; // '{'
        let start = self.stack.len();
        self.skip_ws()?;
        if self.src.bytes().get(self.i) == Some(&b'}') {
            self.i += 1;
            return Ok(Slot::pair(Kind::Object, at, 0, 0));
        }
        loop {
            self.skip_ws()?;
            if self.src.bytes().get(self.i) != Some(&b'"') {
                return Err(self.syntax("expected a string key"));
            }
            let key = self.string(self.offset())?;
            self.stack.push(key);
            self.skip_ws()?;
            if self.src.bytes().get(self.i) != Some(&b':') {
                return Err(self.syntax("expected ':' after the key"));
            }
            self.i += 1;
            self.skip_ws()?;
            self.value(depth + 1)?;
            self.skip_ws()?;
            match self.src.bytes().get(self.i) {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    break;
                }
                _ => return Err(self.syntax("expected ',' or '}'")),
            }
        }
        self.sort_entries(start)?;
        let count = (self.stack.len() - start) / 2;
        Ok(self.close(Kind::Object, at, start, count))
    }

    /// Sorts the (key, value) pairs on the stack above `start` by key, and
    /// rejects a duplicate key as `Map::from_unsorted` does: the later of the
    /// first equal pair in key order, with the earlier one's position.
    fn sort_entries(&mut self, start: usize) -> Result<(), Error> {
        let text = &self.text;
        let (pairs, _) = self.stack[start..].as_chunks_mut::<2>();
        if pairs
            .windows(2)
            .all(|w| key_cmp(slot_bytes(text, &w[0][0]), slot_bytes(text, &w[1][0])).is_lt())
        {
            return Ok(());
        }
        // Stable: equal keys stay in source order.
        pairs.sort_by(|a, b| key_cmp(slot_bytes(text, &a[0]), slot_bytes(text, &b[0])));
        let Some(i) = pairs
            .windows(2)
            .position(|w| slot_bytes(text, &w[0][0]) == slot_bytes(text, &w[1][0]))
        else {
            return Ok(());
        };
        let (dup, first) = (pairs[i + 1][0], pairs[i][0]);
        let (dup_pos, first_pos) = (pos_in(&self.lines, dup.pos), pos_in(&self.lines, first.pos));
        Err(Error::DuplicateKey {
            source_name: self.source_name.to_owned(),
            key: slot_str(text, &dup).into(),
            line: dup_pos.line,
            column: dup_pos.column,
            first_line: first_pos.line,
            first_column: first_pos.column,
        })
    }

    fn array(&mut self, depth: usize, at: u32) -> Result<Slot, Error> {
        self.i += 1; // '['
        let start = self.stack.len();
        self.skip_ws()?;
        if self.src.bytes().get(self.i) == Some(&b']') {
            self.i += 1;
            return Ok(Slot::pair(Kind::Array, at, 0, 0));
        }
        loop {
            self.skip_ws()?;
            self.value(depth + 1)?;
            self.skip_ws()?;
            match self.src.bytes().get(self.i) {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    break;
                }
                _ => return Err(self.syntax("expected ',' or ']'")),
            }
        }
        let count = self.stack.len() - start;
        Ok(self.close(Kind::Array, at, start, count))
    }

    /// Parses a string into `text` and returns its slot.
    fn string(&mut self, at: u32) -> Result<Slot, Error> {
        self.i += 1; // opening quote
        let start = self.i;
        let off = self.text.len();
        let slot =
            |text: &String| Slot::pair(Kind::String, at, to_u32(off), to_u32(text.len() - off));
        // Fast path: no escapes.
        let stop = string_stop(self.src.bytes(), start);
        if self.src.bytes().get(stop) == Some(&b'"') {
            self.i = stop + 1;
            let len = stop - start;
            if len <= INLINE_MAX {
                let bytes = self.src.bytes();
                return Ok(match bytes.get(start..start + INLINE_MAX) {
                    Some(w) => {
                        let mut window = [0; INLINE_MAX];
                        window.copy_from_slice(w);
                        Slot::inline_window(at, window, len)
                    }
                    None => Slot::inline(at, &bytes[start..stop]),
                });
            }
            self.text.push_str(&self.src.text()[start..stop]);
            return Ok(slot(&self.text));
        }
        self.i = stop;
        self.text.push_str(&self.src.text()[start..self.i]);
        loop {
            let Some(&c) = self.src.bytes().get(self.i) else {
                return Err(self.syntax("unterminated string"));
            };
            match c {
                b'"' => {
                    self.i += 1;
                    if self.text.len() - off <= INLINE_MAX {
                        let s = Slot::inline(at, &self.text.as_bytes()[off..]);
                        self.text.truncate(off);
                        return Ok(s);
                    }
                    return Ok(slot(&self.text));
                }
                b'\\' => {
                    self.i += 1;
                    let Some(&e) = self.src.bytes().get(self.i) else {
                        return Err(self.syntax("unterminated string"));
                    };
                    self.i += 1;
                    match e {
                        b'"' => self.text.push('"'),
                        b'\\' => self.text.push('\\'),
                        b'/' => self.text.push('/'),
                        b'b' => self.text.push('\u{8}'),
                        b'f' => self.text.push('\u{c}'),
                        b'n' => self.text.push('\n'),
                        b'r' => self.text.push('\r'),
                        b't' => self.text.push('\t'),
                        b'u' => {
                            let c = self.unicode_escape()?;
                            self.text.push(c);
                        }
                        _ => {
                            self.i -= 1;
                            return Err(self.syntax("invalid escape"));
                        }
                    }
                }
                c if c < 0x20 => return Err(self.syntax("control character in string")),
                _ => {
                    let run = self.i;
                    self.i = string_stop(self.src.bytes(), run);
                    self.text.push_str(&self.src.text()[run..self.i]);
                }
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, Error> {
        // Byte by byte, so a line break (where a block may end) reads as an
        // invalid digit, exactly as with the whole input in memory.
        let mut v = 0u32;
        for k in 0..4 {
            let Some(&d) = self.src.bytes().get(self.i + k) else {
                return Err(self.syntax("truncated \\u escape"));
            };
            let h = (d as char)
                .to_digit(16)
                .ok_or_else(|| self.syntax("invalid \\u escape"))?;
            v = v * 16 + h;
        }
        self.i += 4;
        Ok(v)
    }

    fn unicode_escape(&mut self) -> Result<char, Error> {
        let hi = self.hex4()?;
        let code = if (0xD800..0xDC00).contains(&hi) {
            if self.src.bytes().get(self.i..self.i + 2) != Some(b"\\u") {
                return Err(self.syntax("unpaired surrogate in \\u escape"));
            }
            self.i += 2;
            let lo = self.hex4()?;
            if !(0xDC00..0xE000).contains(&lo) {
                return Err(self.syntax("unpaired surrogate in \\u escape"));
            }
            0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
        } else {
            hi
        };
        char::from_u32(code).ok_or_else(|| self.syntax("invalid \\u escape"))
    }

    fn number(&mut self) -> Result<Number, Error> {
        let start = self.i;
        let neg = self.src.bytes()[self.i] == b'-';
        if neg {
            self.i += 1;
        }
        let int_start = self.i;
        match self.src.bytes().get(self.i) {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                while matches!(self.src.bytes().get(self.i), Some(b'0'..=b'9')) {
                    self.i += 1;
                }
            }
            _ => return Err(self.syntax("invalid number")),
        }
        let int_end = self.i;
        let mut float = false;
        if self.src.bytes().get(self.i) == Some(&b'.') {
            float = true;
            self.i += 1;
            if !matches!(self.src.bytes().get(self.i), Some(b'0'..=b'9')) {
                return Err(self.syntax("invalid number: digit expected after '.'"));
            }
            while matches!(self.src.bytes().get(self.i), Some(b'0'..=b'9')) {
                self.i += 1;
            }
        }
        if matches!(self.src.bytes().get(self.i), Some(b'e' | b'E')) {
            float = true;
            self.i += 1;
            if matches!(self.src.bytes().get(self.i), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if !matches!(self.src.bytes().get(self.i), Some(b'0'..=b'9')) {
                return Err(self.syntax("invalid number: digit expected in exponent"));
            }
            while matches!(self.src.bytes().get(self.i), Some(b'0'..=b'9')) {
                self.i += 1;
            }
        }
        if !float && int_end - int_start <= 18 {
            let mut v: i64 = 0;
            for &d in &self.src.bytes()[int_start..int_end] {
                v = v * 10 + i64::from(d - b'0');
            }
            return Ok(Number::Int(if neg { -v } else { v }));
        }
        let text = &self.src.text()[start..self.i];
        if !float && let Ok(v) = text.parse::<i64>() {
            return Ok(Number::Int(v));
        }
        match text.parse::<f64>() {
            Ok(f) if f.is_finite() => Ok(Number::Float(f)),
            _ => {
                self.i = start;
                Err(self.syntax("number out of range"))
            }
        }
    }
}

impl<'t> crate::view::View<'t> for NodeRef<'t> {
    type List = ArrayRef<'t>;
    type Obj = MapRef<'t>;

    #[inline]
    fn shape(self) -> crate::view::Shape<'t, Self> {
        use crate::view::{Scalar, Shape};
        // The slot read once and matched on its tag directly (the differ
        // asks at every node; containers are the common case).
        let tree = self.tree;
        let s = &tree.slots[self.idx];
        match s.tag {
            t if t == Kind::Object as u8 => Shape::Object(MapRef {
                tree,
                first: s.lo(),
                len: s.hi(),
            }),
            t if t == Kind::Array as u8 => Shape::Array(ArrayRef {
                tree,
                first: s.lo(),
                len: s.hi(),
            }),
            _ => match self.value() {
                ValueRef::Null => Shape::Scalar(Scalar::Null),
                ValueRef::Bool(b) => Shape::Scalar(Scalar::Bool(b)),
                ValueRef::Number(n) => Shape::Scalar(Scalar::Number(n)),
                ValueRef::String(s) => Shape::Scalar(Scalar::String(s)),
                ValueRef::Array(a) => Shape::Array(a),
                ValueRef::Object(m) => Shape::Object(m),
            },
        }
    }

    #[inline]
    fn is_object(self) -> bool {
        self.slot().kind() == Kind::Object
    }

    #[inline(always)]
    fn quick_equal(self, other: Self) -> bool {
        let (a, b) = (self.slot(), other.slot());
        if a.tag != b.tag {
            // Different kinds or string lengths (`1` against `1.0` is left
            // to the full comparison).
            return false;
        }
        match a.kind() {
            Kind::Null => true,
            Kind::Bool | Kind::Int => a.data() == b.data(),
            Kind::Float => f64::from_bits(a.data()) == f64::from_bits(b.data()),
            Kind::String => {
                a.same_inline(&b)
                    || (a.tag < INLINE
                        && slot_bytes(&self.tree.text, &a) == slot_bytes(&other.tree.text, &b))
            }
            Kind::Array | Kind::Object => false,
        }
    }

    fn pos(self) -> Pos {
        NodeRef::pos(&self)
    }

    #[inline]
    fn short_str_rank(self) -> Option<u128> {
        let s = &self.tree.slots[self.idx];
        if s.tag < INLINE {
            return None;
        }
        let n = usize::from(s.tag - INLINE).min(INLINE_MAX);
        let (m_lo, m_hi) = INLINE_MASKS[n];
        let (lo, hi) = s.words();
        // Big-endian: the kind (2, a string), bytes 0..8, bytes 8..11 (in
        // `hi`, which holds bytes 7..11), zeros, the length.
        Some(
            (2u128 << 120)
                | (u128::from((lo & m_lo).swap_bytes()) << 56)
                | (u128::from(((hi & m_hi) >> 8).swap_bytes()) << 24)
                | n as u128,
        )
    }

    #[inline]
    fn str_bytes(self) -> Option<&'t [u8]> {
        let s = &self.tree.slots[self.idx];
        (s.kind() == Kind::String).then(|| slot_bytes(&self.tree.text, s))
    }

    fn to_node(self) -> Node {
        NodeRef::to_node(&self)
    }
}

impl<'t> crate::view::ListView<'t> for ArrayRef<'t> {
    type Item = NodeRef<'t>;

    #[inline]
    fn len(self) -> usize {
        self.len
    }

    #[inline]
    fn at(self, i: usize) -> NodeRef<'t> {
        debug_assert!(i < self.len);
        NodeRef {
            tree: self.tree,
            idx: self.first + i,
        }
    }
}

impl<'t> crate::view::ObjView<'t> for MapRef<'t> {
    type Item = NodeRef<'t>;

    #[inline]
    fn len(self) -> usize {
        self.len
    }

    #[inline]
    fn entry(self, k: usize) -> (&'t str, NodeRef<'t>) {
        let key = self.first + 2 * k;
        (
            self.tree.str_of(key),
            NodeRef {
                tree: self.tree,
                idx: key + 1,
            },
        )
    }

    #[inline]
    fn key_bytes(self, k: usize) -> &'t [u8] {
        self.key(k)
    }

    #[inline]
    fn key_cmp(self, k: usize, other: Self, j: usize) -> Ordering {
        let (a, b) = (
            &self.tree.slots[self.first + 2 * k],
            &other.tree.slots[other.first + 2 * j],
        );
        if a.same_inline(b) {
            // Most keys are short and on both sides.
            return Ordering::Equal;
        }
        slot_bytes(&self.tree.text, a).cmp(slot_bytes(&other.tree.text, b))
    }

    #[inline]
    fn value(self, k: usize) -> NodeRef<'t> {
        NodeRef {
            tree: self.tree,
            idx: self.first + 2 * k + 1,
        }
    }

    fn get(self, key: &str) -> Option<NodeRef<'t>> {
        MapRef::get(&self, key)
    }

    type Probe = Option<Needle>;

    #[inline]
    fn probe(key: &str) -> Option<Needle> {
        Needle::new(key.as_bytes())
    }

    #[inline]
    fn find(self, probe: Option<Needle>, key: &str) -> Option<NodeRef<'t>> {
        match probe {
            // Small objects (nearly all) and short keys (nearly all): a scan
            // comparing the inline keys as words.
            Some(needle) if self.len <= 8 => {
                let slots = &self.tree.slots[self.first..self.first + 2 * self.len];
                (0..self.len)
                    .find(|&k| needle.matches(&self.tree.text, &slots[2 * k], key.as_bytes()))
                    .map(|k| NodeRef {
                        tree: self.tree,
                        idx: self.first + 2 * k + 1,
                    })
            }
            _ => MapRef::get(&self, key),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::Format;
    use proptest::prelude::*;

    /// Node equality with positions (the owned model's `==` ignores them).
    fn same(a: &Node, b: &Node) -> bool {
        a.pos == b.pos
            && match (&a.value, &b.value) {
                (Value::Array(x), Value::Array(y)) => {
                    x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
                }
                (Value::Object(x), Value::Object(y)) => {
                    x.len() == y.len()
                        && x.iter().zip(y).all(|(p, q)| {
                            p.key == q.key && p.key_pos == q.key_pos && same(&p.node, &q.node)
                        })
                }
                (x, y) => x == y,
            }
    }

    fn arena(text: &str, limits: &Limits) -> Result<Node, String> {
        parse_str(text, "t.json", limits)
            .map(|t| t.root().to_node())
            .map_err(|e| e.to_string())
    }

    fn arena_blocks(bytes: &[u8], block: usize, limits: &Limits) -> Result<Node, String> {
        parse_blocks(bytes, "t.json", limits, block, 0)
            .map(|t| t.root().to_node())
            .map_err(|e| e.to_string())
    }

    fn owned(bytes: &[u8], limits: &Limits) -> Result<Node, String> {
        crate::load::load_bytes(bytes, Format::Json, "t.json", limits).map_err(|e| e.to_string())
    }

    fn check(bytes: &[u8], block: usize, limits: &Limits) -> Result<(), TestCaseError> {
        let expected = owned(bytes, limits);
        let streamed = arena_blocks(bytes, block, limits);
        if expected
            .as_ref()
            .is_err_and(|e| e.contains("exceed the size limit"))
        {
            // A stream knows only how much it has read when it passes the
            // limit (as `load::json`'s); `load_file` checks the size first.
            prop_assert!(
                streamed
                    .as_ref()
                    .is_err_and(|e| e.contains("exceed the size limit"))
            );
        } else {
            match (&streamed, &expected) {
                (Ok(a), Ok(b)) => prop_assert!(same(a, b), "{a:?}\n!=\n{b:?}"),
                _ => prop_assert_eq!(&streamed, &expected),
            }
        }
        if let Ok(text) = std::str::from_utf8(bytes) {
            let got = arena(text, limits);
            match (&got, &expected) {
                (Ok(a), Ok(b)) => prop_assert!(same(a, b), "{a:?}\n!=\n{b:?}"),
                _ => prop_assert_eq!(&got, &expected),
            }
        }
        Ok(())
    }

    #[test]
    fn a_slot_is_16_bytes() {
        assert_eq!(size_of::<Slot>(), 16);
    }

    /// The word comparisons of inline strings (`same_inline`, `Needle`) see
    /// only a string's own bytes, never the undefined ones after it, and a
    /// needle still finds a short key held in `text`.
    #[test]
    fn inline_strings_compare_by_their_own_bytes() {
        let words: Vec<&[u8]> = vec![
            b"",
            b"a",
            b"\0",
            b"a\0",
            b"ab",
            b"ac",
            b"abcdefg",
            b"abcdefh",
            b"abcdefgh",
            b"abcdefgi",
            b"abcdefgh\0",
            b"abcdefghi",
            b"abcdefghij",
            b"abcdefghijk",
            b"abcdefghijl",
            b"bbcdefghijk",
        ];
        let slot = |w: &[u8], garbage: u8| {
            let mut window = [garbage; INLINE_MAX];
            window[..w.len()].copy_from_slice(w);
            Slot::inline_window(0, window, w.len())
        };
        let mut text = String::new();
        for x in &words {
            for y in &words {
                let same = x == y;
                let (sx, sy) = (slot(x, 0xaa), slot(y, 0x55));
                assert_eq!(sx.same_inline(&sy), same, "{x:?} {y:?}");
                let needle = Needle::new(x).unwrap();
                assert_eq!(needle.matches("", &sy, x), same, "{x:?} {y:?}");
                text.clear();
                text.push_str(std::str::from_utf8(y).unwrap());
                let held = Slot::pair(Kind::String, 0, 0, to_u32(y.len()));
                assert_eq!(needle.matches(&text, &held, x), same, "{x:?} {y:?}");
                assert!(!sx.same_inline(&held));
            }
        }
        assert!(Needle::new(b"abcdefghijkl").is_none());
    }

    const DOC: &str = "{\n  \"items\": [\n    {\"name\": \"a\\n\\u00e9\", \"n\": -1.5e3},\n    {\"name\": \"caf\u{e9} \u{1f600}\", \"ok\": true, \"x\": null}\n  ],\r\n  \"count\": 2, \"big\": 123456789012345678901, \"neg\": -9223372036854775808\n}\n";

    #[test]
    fn views_read_the_document() {
        let tree = parse_str(DOC, "t.json", &Limits::default()).unwrap();
        let ValueRef::Object(root) = tree.root().value() else {
            panic!("object")
        };
        assert_eq!(root.len(), 4);
        let keys: Vec<&str> = root.iter().map(|(k, _, _)| k).collect();
        assert_eq!(keys, ["big", "count", "items", "neg"]);
        assert!(root.get("nope").is_none());
        let ValueRef::Array(items) = root.get("items").unwrap().value() else {
            panic!("array")
        };
        assert_eq!(items.len(), 2);
        assert!(items.get(2).is_none());
        let first = items.get(0).unwrap();
        assert_eq!(first.pos().to_string(), "3:5");
        let ValueRef::Object(m) = first.value() else {
            panic!("object")
        };
        assert!(matches!(
            m.get("name").unwrap().value(),
            ValueRef::String("a\n\u{e9}")
        ));
        assert!(matches!(
            m.get("n").unwrap().value(),
            ValueRef::Number(Number::Float(f)) if f == -1500.0
        ));
        assert_eq!(root.get("count").unwrap().pos().to_string(), "6:12");
    }

    #[test]
    fn fixtures_load_to_the_same_tree() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let mut seen = 0;
        let mut stack = vec![dir];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "json") {
                    let expected = crate::load_file(&path, &Limits::default()).unwrap();
                    let got = load_file(&path, &Limits::default())
                        .unwrap()
                        .root()
                        .to_node();
                    assert!(same(&got, &expected), "{}", path.display());
                    let text = std::fs::read_to_string(&path).unwrap();
                    let got = parse_str(&text, "t.json", &Limits::default()).unwrap();
                    assert!(same(&got.root().to_node(), &expected), "{}", path.display());
                    seen += 1;
                }
            }
        }
        assert!(seen >= 4, "{seen} fixtures");
    }

    #[test]
    fn blocks_of_any_size_give_the_same_tree() {
        for block in 1..=DOC.len() + 1 {
            check(DOC.as_bytes(), block, &Limits::default()).unwrap();
        }
    }

    #[test]
    fn limits_and_hostile_inputs_give_the_same_errors() {
        let small = Limits {
            max_depth: 3,
            max_nodes: 5,
            max_bytes: 40,
        };
        let cases: &[&[u8]] = &[
            b"[[[[1]]]]",
            b"[1,2,3,4,5,6]",
            b"[1,2,\n3,4]",
            b"\"0123456789012345678901234567890123456789\"",
            b"{\"a\": 1, \"b\": {\"c\": 2,\n \"c\": 3}}",
            b"{\"b\":1,\"a\":2,\"b\":3,\"a\":4}",
            b"\xef\xbb\xbf{\"a\": 1, \"a\": 2}",
            b"\xef\xbb\xbf[1]",
            b"",
            b"\n\n",
            b"[\n1,\n2,\n\"ab\xff\"]\n",
            b"[1e400]",
            b"[\"\\ud800\"]",
            b"[\"\\ud800\\u0041\"]",
            b"[\"\\u12\n\"]",
            b"[\"a\\x\"]",
            b"[\"a\tb\"]",
            b"[tru]",
            b"{\"a\" 1}",
            b"{1: 2}",
            b"[1 2]",
            b"[-]",
            b"[1.]",
            b"[1e]",
            b"[01]",
            b"[1] x",
            b"[1,]",
        ];
        for case in cases {
            for limits in [Limits::default(), small] {
                for block in [1, 3, 64] {
                    check(case, block, &limits).unwrap();
                }
            }
        }
    }

    /// JSON text with every kind of token, escapes, whitespace and line
    /// breaks between tokens, and (sometimes) duplicate keys.
    fn json() -> impl Strategy<Value = String> {
        let ws = prop::sample::select(vec!["", "", "", " ", "\n", "\r\n  ", "\t"]);
        let leaf = prop_oneof![
            Just("null".to_owned()),
            Just("true".to_owned()),
            Just("false".to_owned()),
            any::<i64>().prop_map(|i| i.to_string()),
            prop::sample::select(vec![
                "0",
                "-0",
                "1.5",
                "-2.25e-3",
                "1E+2",
                "12345678901234567890",
                "1e300",
                "0.1"
            ])
            .prop_map(str::to_owned),
            prop::sample::select(vec![
                "\"\"",
                "\"a\"",
                "\"long string value beyond eight\"",
                "\"\\u00e9\\n\\\"q\\\"\"",
                "\"\\ud83d\\ude00 \u{e9}\"",
                "\"tab\\tx\\/y\\\\z\\b\\f\\r\"",
            ])
            .prop_map(str::to_owned),
        ];
        leaf.prop_recursive(5, 64, 6, move |inner| {
            let ws = ws.clone();
            prop_oneof![
                prop::collection::vec((inner.clone(), ws.clone()), 0..6).prop_map(|items| {
                    let body: Vec<String> = items
                        .into_iter()
                        .map(|(v, w)| format!("{w}{v}{w}"))
                        .collect();
                    format!("[{}]", body.join(","))
                }),
                prop::collection::vec(
                    (
                        prop::sample::select(vec![
                            "a", "b", "c", "ab", "", "\\u0061", "zz", "k\\n"
                        ]),
                        inner,
                        ws.clone(),
                    ),
                    0..6
                )
                .prop_map(|entries| {
                    let body: Vec<String> = entries
                        .into_iter()
                        .map(|(k, v, w)| format!("{w}\"{k}\"{w}:{w}{v}{w}"))
                        .collect();
                    format!("{{{}}}", body.join(","))
                }),
            ]
        })
    }

    proptest! {
        #[test]
        fn generated_json_loads_to_the_same_tree_or_error(
            doc in json(),
            block in 1usize..64,
        ) {
            check(doc.as_bytes(), block, &Limits::default())?;
            let tight = Limits { max_depth: 3, max_nodes: 20, ..Limits::default() };
            check(doc.as_bytes(), block, &tight)?;
        }

        #[test]
        fn damaged_json_gives_the_same_error(
            doc in json(),
            cut in any::<prop::sample::Index>(),
            insert in prop::sample::select(vec!["", "\n", "}", "]", ",", ":", "x", "\"", "\\", "\n\n]", " 1", "\u{0}", "\u{e9}"]),
            remove in 0usize..3,
            block in 1usize..40,
        ) {
            let bytes = doc.as_bytes();
            let at = cut.index(bytes.len() + 1);
            let mut text = bytes[..at].to_vec();
            text.extend_from_slice(insert.as_bytes());
            text.extend_from_slice(&bytes[(at + remove).min(bytes.len())..]);
            check(&text, block, &Limits::default())?;
        }
    }
}
