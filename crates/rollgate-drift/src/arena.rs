//! The loaded document: one arena of 16-byte slots plus one string of
//! unescaped text (ADR 0004), read through cheap `Copy` views.
//!
//! A [`Tree`] is what the loaders build for comparison: JSON is parsed
//! straight into it; YAML, TOML and overlay results are converted from the
//! owned [`Node`] with [`Tree::from_node`]. It takes about 2 bytes per byte
//! of compact JSON (the owned model takes about 4.5) and three buffers per
//! document (slots, text, line starts) instead of an allocation per
//! container, so large documents load faster and in half the memory. [`crate::Differ::diff_trees`] compares two trees.
//!
//! Layout. Every value is a slot: its kind, where it starts in the source,
//! and 11 bytes of payload (the number itself, a string of up to 11 bytes,
//! an offset and a length into the text for a longer string, or the index of
//! the first child and the child count for a container). An array's
//! elements are consecutive slots; an object's entries are consecutive
//! (key, value) slot pairs sorted by key bytes, the key slot being a string
//! whose position is the key's. The root is slot 0.
//!
//! Positions. A parsed tree stores byte offsets from the start of the input
//! and the offset of every line start, so `line:column` is a binary search
//! done only when a position is asked for. A tree converted from a [`Node`]
//! keeps a table of the node's positions instead.
//!
//! ```
//! use rollgate_drift::{Format, Limits, arena::ValueRef, load_tree};
//! let tree = load_tree("{\"image\": \"app:2\",\n \"replicas\": 3}", Format::Json, "d.json", &Limits::default())?;
//! let ValueRef::Object(root) = tree.root().value() else { unreachable!() };
//! let replicas = root.get("replicas").unwrap();
//! assert!(matches!(replicas.value(), ValueRef::Number(n) if n.as_f64() == 3.0));
//! assert_eq!(replicas.pos().to_string(), "2:14");
//! // The same values as the owned model (`Node`'s `==` compares values, not
//! // positions, so the key order and layout of the text do not matter).
//! assert_eq!(tree.to_node(), rollgate_drift::load("{\"replicas\": 3, \"image\": \"app:2\"}", Format::Json, "d.json", &Limits::default())?);
//! # Ok::<(), rollgate_drift::Error>(())
//! ```

use std::cmp::Ordering;

use crate::error::Error;
use crate::load::to_u32;
use crate::tree::{Entry, Map, Node, Number, Pos, Str, Value};

/// What a slot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Kind {
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
pub(crate) struct Slot {
    /// Byte offset of the value's first byte in the input (or its index in
    /// the position table of a tree converted from a [`Node`]).
    pub(crate) pos: u32,
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
pub(crate) const INLINE_MAX: usize = 11;

impl Slot {
    pub(crate) fn new(kind: Kind, pos: u32, data: u64) -> Self {
        let mut b = [0; 11];
        b[3..].copy_from_slice(&data.to_le_bytes());
        Self {
            pos,
            tag: kind as u8,
            b,
        }
    }

    pub(crate) fn pair(kind: Kind, pos: u32, lo: u32, hi: u32) -> Self {
        Self::new(kind, pos, u64::from(lo) | (u64::from(hi) << 32))
    }

    /// A string of at most [`INLINE_MAX`] bytes, held in the slot.
    #[allow(clippy::cast_possible_truncation)]
    pub(crate) fn inline(pos: u32, s: &[u8]) -> Self {
        let mut b = [0; 11];
        b[..s.len()].copy_from_slice(s);
        Self {
            pos,
            tag: INLINE + s.len() as u8,
            b,
        }
    }

    /// A string of `len <= INLINE_MAX` bytes, the first `len` of the
    /// [`INLINE_MAX`]-byte `window` (a fixed-size copy, as two words: bytes
    /// 0..8 and 7..11; the bytes after the string are ignored).
    #[allow(clippy::cast_possible_truncation)]
    #[inline]
    pub(crate) fn inline_window(pos: u32, window: &[u8], len: usize) -> Self {
        let mut lo = [0; 8];
        lo.copy_from_slice(&window[..8]);
        let mut hi = [0; 4];
        hi.copy_from_slice(&window[7..INLINE_MAX]);
        let mut b = [0; INLINE_MAX];
        b[..8].copy_from_slice(&lo);
        b[7..].copy_from_slice(&hi);
        Self {
            pos,
            tag: INLINE + len as u8,
            b,
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
pub(crate) fn slot_bytes<'a>(text: &'a str, s: &'a Slot) -> &'a [u8] {
    if s.tag >= INLINE {
        &s.b[..usize::from(s.tag - INLINE)]
    } else {
        &text.as_bytes()[s.lo()..s.lo() + s.hi()]
    }
}

/// The string a string slot holds, inline or in `text`.
pub(crate) fn slot_str<'a>(text: &'a str, s: &'a Slot) -> &'a str {
    if s.tag >= INLINE {
        // Always a whole string's bytes: the check only guards the prototype.
        std::str::from_utf8(&s.b[..usize::from(s.tag - INLINE)]).unwrap_or_default()
    } else {
        &text[s.lo()..s.lo() + s.hi()]
    }
}

/// A document (JSON, YAML or TOML) in compact form (ADR 0004). Read it
/// through [`Tree::root`].
#[derive(Debug, Clone)]
pub struct Tree {
    pub(crate) slots: Vec<Slot>,
    pub(crate) text: String,
    /// The input offset of every line start (parsed trees).
    pub(crate) lines: Vec<u32>,
    /// Positions by slot `pos` (trees converted from a [`Node`]); empty for
    /// parsed trees, whose slots hold input offsets.
    pub(crate) table: Vec<Pos>,
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

    /// The bytes of unescaped string text held beside the slots (keys and
    /// values longer than 11 bytes; shorter ones live in their slot).
    #[must_use]
    pub fn text_bytes(&self) -> usize {
        self.text.len()
    }

    /// The number of line starts recorded: the input's line breaks plus one
    /// (0 for a tree converted from a [`Node`]).
    #[must_use]
    pub fn line_count(&self) -> usize {
        self.lines.len()
    }

    /// Bytes the tree's contents take (slots, text, line table), not counting
    /// spare capacity.
    #[must_use]
    pub fn used_bytes(&self) -> usize {
        self.slots.len() * size_of::<Slot>()
            + self.text.len()
            + self.lines.len() * 4
            + self.table.len() * size_of::<Pos>()
    }

    /// Bytes the tree has allocated (spare capacity included; spare capacity
    /// that was never written is not resident memory).
    #[must_use]
    pub fn allocated_bytes(&self) -> usize {
        self.slots.capacity() * size_of::<Slot>()
            + self.text.capacity()
            + self.lines.capacity() * 4
            + self.table.capacity() * size_of::<Pos>()
    }

    /// The line and column of a slot's `pos`.
    fn pos_at(&self, offset: u32) -> Pos {
        if self.table.is_empty() {
            pos_in(&self.lines, offset)
        } else {
            self.table[offset as usize]
        }
    }

    /// Converts an owned tree (positions included), as YAML, TOML and
    /// overlay results reach the differ. Fails only when the document holds
    /// more than a tree's 32-bit offsets reach: 4 GiB - 1 bytes of string
    /// text (say, a YAML alias repeating a long string), or as many values.
    ///
    /// ```
    /// use rollgate_drift::{Format, Limits, arena::Tree, load};
    /// let node = load("replicas: 3\nports: [80, 443]\n", Format::Yaml, "v.yaml", &Limits::default())?;
    /// let tree = Tree::from_node(&node)?;
    /// assert_eq!(tree.to_node(), node);
    /// assert_eq!(tree.root().to_node().pointer("/ports/1").map(|n| n.pos), node.pointer("/ports/1").map(|n| n.pos));
    /// # Ok::<(), rollgate_drift::Error>(())
    /// ```
    pub fn from_node(node: &Node) -> Result<Self, Error> {
        let mut tree = Tree {
            slots: vec![Slot::new(Kind::Null, 0, 0)],
            text: String::new(),
            lines: Vec::new(),
            table: Vec::new(),
        };
        tree.fill(0, node)?;
        Ok(tree)
    }

    /// Writes `node` into slot `idx`, its children after the current end.
    fn fill(&mut self, idx: usize, node: &Node) -> Result<(), Error> {
        let at = self.place(node.pos)?;
        self.slots[idx] = match &node.value {
            Value::Null => Slot::new(Kind::Null, at, 0),
            Value::Bool(b) => Slot::new(Kind::Bool, at, u64::from(*b)),
            #[allow(clippy::cast_sign_loss)]
            Value::Number(Number::Int(i)) => Slot::new(Kind::Int, at, *i as u64),
            Value::Number(Number::Float(f)) => Slot::new(Kind::Float, at, f.to_bits()),
            Value::String(s) => self.string(at, s)?,
            Value::Array(items) => {
                let first = self.grow(items.len())?;
                for (k, item) in items.iter().enumerate() {
                    self.fill(first as usize + k, item)?;
                }
                Slot::pair(Kind::Array, at, first, to_u32(items.len()))
            }
            Value::Object(map) => {
                let first = self.grow(2 * map.len())?;
                for (k, entry) in map.iter().enumerate() {
                    let key_at = self.place(entry.key_pos)?;
                    self.slots[first as usize + 2 * k] = self.string(key_at, &entry.key)?;
                    self.fill(first as usize + 2 * k + 1, &entry.node)?;
                }
                Slot::pair(Kind::Object, at, first, to_u32(map.len()))
            }
        };
        Ok(())
    }

    /// Appends `n` empty slots and returns the index of the first.
    fn grow(&mut self, n: usize) -> Result<u32, Error> {
        let first = self.slots.len();
        fits(first + n, "values and keys")?;
        self.slots.resize(first + n, Slot::new(Kind::Null, 0, 0));
        Ok(to_u32(first))
    }

    /// Records a position; the slot keeps its index in the table.
    fn place(&mut self, pos: Pos) -> Result<u32, Error> {
        fits(self.table.len() + 1, "values and keys")?;
        self.table.push(pos);
        Ok(to_u32(self.table.len() - 1))
    }

    fn string(&mut self, at: u32, s: &str) -> Result<Slot, Error> {
        if s.len() <= INLINE_MAX {
            return Ok(Slot::inline(at, s.as_bytes()));
        }
        let off = self.text.len();
        fits(off + s.len(), "bytes of string text")?;
        self.text.push_str(s);
        Ok(Slot::pair(Kind::String, at, to_u32(off), to_u32(s.len())))
    }

    /// Gives back the buffers' spare capacity. A parsed tree reserves room
    /// for the largest tree its input could make; keep one for long (as
    /// [`crate::DriftWatcher`] keeps its desired document) after shrinking.
    pub fn shrink_to_fit(&mut self) {
        self.slots.shrink_to_fit();
        self.text.shrink_to_fit();
        self.lines.shrink_to_fit();
        self.table.shrink_to_fit();
    }

    /// The whole document in the owned model, positions included.
    #[must_use]
    pub fn to_node(&self) -> Node {
        self.root().to_node()
    }

    fn str_of(&self, idx: usize) -> &str {
        slot_str(&self.text, &self.slots[idx])
    }
}

impl TryFrom<&Node> for Tree {
    type Error = Error;
    fn try_from(node: &Node) -> Result<Self, Error> {
        Tree::from_node(node)
    }
}

/// Fails when `count` is past what a tree's 32-bit offsets reach.
fn fits(count: usize, what: &'static str) -> Result<(), Error> {
    if count > u32::MAX as usize {
        return Err(Error::TreeTooLarge {
            what,
            limit: u64::from(u32::MAX),
        });
    }
    Ok(())
}

/// The 1-based line and byte column of `offset`, given every line's start.
pub(crate) fn pos_in(lines: &[u32], offset: u32) -> Pos {
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
pub(crate) fn key_cmp(a: &[u8], b: &[u8]) -> Ordering {
    match (a.first(), b.first()) {
        (Some(x), Some(y)) if x != y => x.cmp(y),
        _ => a.cmp(b),
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
    use crate::{Format, Limits, load_file, load_tree};
    use std::path::Path;

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
            Slot::inline_window(0, &window, w.len())
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
        let tree = load_tree(DOC, Format::Json, "t.json", &Limits::default()).unwrap();
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
    fn a_tree_from_any_fixture_node_gives_the_node_back() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let mut seen = std::collections::BTreeSet::new();
        let mut stack = vec![dir];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                let Ok(node) = load_file(&path, &Limits::default()) else {
                    continue;
                };
                let tree = Tree::from_node(&node).unwrap();
                assert!(same(&tree.to_node(), &node), "{}", path.display());
                assert_eq!(tree.line_count(), 0);
                seen.insert(Format::from_path(&path).unwrap().name());
            }
        }
        assert_eq!(seen.len(), 3, "fixtures of every format: {seen:?}");
    }

    #[test]
    fn conversion_refuses_what_32_bit_offsets_cannot_reach() {
        // A 4 GiB document is too big for a test; the one check every
        // conversion step goes through is tested at its edge.
        assert!(fits(u32::MAX as usize, "bytes of string text").is_ok());
        let err = fits(u32::MAX as usize + 1, "bytes of string text").unwrap_err();
        assert_eq!(
            err.to_string(),
            "the document holds more than 4294967295 bytes of string text, the most a compact tree can hold"
        );
    }

    #[test]
    fn shrinking_keeps_the_document() {
        let text = r#"{"a long key beyond eleven": "a string longer than eleven bytes"}"#;
        let mut tree = load_tree(text, Format::Json, "t.json", &Limits::default()).unwrap();
        let before = tree.to_node();
        assert!(tree.allocated_bytes() > tree.used_bytes());
        tree.shrink_to_fit();
        assert!(same(&tree.to_node(), &before));
        assert!(tree.allocated_bytes() <= tree.used_bytes() + 64);
    }

    #[test]
    fn long_strings_keys_and_extreme_numbers_survive_conversion() {
        let text = r#"{"a long key beyond eleven": ["a string longer than eleven bytes", "short", -9223372036854775808, 1.5e300, true, null, {}, []], "": 0}"#;
        let node = crate::load(text, Format::Json, "t.json", &Limits::default()).unwrap();
        let tree = Tree::from_node(&node).unwrap();
        assert!(same(&tree.to_node(), &node));
        let parsed = load_tree(text, Format::Json, "t.json", &Limits::default()).unwrap();
        assert!(same(&parsed.to_node(), &node));
        assert_eq!(tree.text_bytes(), parsed.text_bytes());
    }
}
