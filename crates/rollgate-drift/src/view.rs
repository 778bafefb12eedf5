//! Read-only views of a document, so the differ runs on the owned [`Node`]
//! model and on the arena ([`crate::arena::Tree`]) alike (ADR 0004, step 2).
//!
//! Everything here is `Copy` and monomorphised: the walk over either model
//! is compiled separately, with no dynamic dispatch.

use crate::tree::{Entry, Node, Number, Pos, Value};

/// A scalar borrowed from a document. Equality is the owned model's
/// (`1 == 1.0`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Scalar<'a> {
    Null,
    Bool(bool),
    Number(Number),
    String(&'a str),
}

impl Scalar<'_> {
    /// The owned value (for normalisers and defaults).
    pub(crate) fn to_value(self) -> Value {
        match self {
            Scalar::Null => Value::Null,
            Scalar::Bool(b) => Value::Bool(b),
            Scalar::Number(n) => Value::Number(n),
            Scalar::String(s) => Value::String(s.into()),
        }
    }
}

/// What a view holds.
pub(crate) enum Shape<'a, V: View<'a>> {
    Scalar(Scalar<'a>),
    Array(V::List),
    Object(V::Obj),
}

/// A value of a document with its position.
pub(crate) trait View<'a>: Copy + Send + Sync + 'a {
    /// The list type.
    type List: ListView<'a, Item = Self>;
    /// The object type.
    type Obj: ObjView<'a, Item = Self>;
    /// The value.
    fn shape(self) -> Shape<'a, Self>;
    /// Where the value starts in its source.
    fn pos(self) -> Pos;
    /// The subtree in the owned model, positions included.
    fn to_node(self) -> Node;
    /// A cheap check that two values are equal scalars, without building
    /// them: `true` only when they certainly are (`false` means "compare").
    #[inline]
    fn quick_equal(self, _other: Self) -> bool {
        false
    }
    /// A string's bytes, without building a `&str` (`None` for other kinds).
    fn str_bytes(self) -> Option<&'a [u8]>;
    /// For a short string held in compact form, its single-field list key
    /// rank (`diff::rank`), computed without copying bytes (`None`: use
    /// `rank`).
    #[inline]
    fn short_str_rank(self) -> Option<u128> {
        None
    }
    /// Whether the value is an object.
    fn is_object(self) -> bool {
        matches!(self.shape(), Shape::Object(_))
    }
}

/// A list's elements.
pub(crate) trait ListView<'a>: Copy + Send + Sync + 'a {
    type Item: View<'a>;
    fn len(self) -> usize;
    /// The element at `i < len()`.
    fn at(self, i: usize) -> Self::Item;
}

/// An object's entries in key (byte) order.
pub(crate) trait ObjView<'a>: Copy + Send + Sync + 'a {
    type Item: View<'a>;
    fn len(self) -> usize;
    /// The key and value of entry `k < len()`.
    fn entry(self, k: usize) -> (&'a str, Self::Item);
    /// The key of entry `k < len()` as bytes (no UTF-8 check).
    fn key_bytes(self, k: usize) -> &'a [u8];
    /// Byte order of this object's key `k` and `other`'s key `j`.
    #[inline]
    fn key_cmp(self, k: usize, other: Self, j: usize) -> std::cmp::Ordering {
        self.key_bytes(k).cmp(other.key_bytes(j))
    }
    /// The value of entry `k < len()`.
    fn value(self, k: usize) -> Self::Item;
    /// The value under `key`.
    fn get(self, key: &str) -> Option<Self::Item>;
    /// `key` prepared for looking it up in many objects ([`ObjView::find`]).
    type Probe: Copy;
    /// Prepares `key` for [`ObjView::find`].
    fn probe(key: &str) -> Self::Probe;
    /// The value under `key`, which `probe` was made from.
    #[inline]
    fn find(self, probe: Self::Probe, key: &str) -> Option<Self::Item> {
        let _ = probe;
        self.get(key)
    }
}

impl<'a> View<'a> for &'a Node {
    type List = &'a [Node];
    type Obj = &'a [Entry];

    #[inline]
    fn shape(self) -> Shape<'a, Self> {
        match &self.value {
            Value::Null => Shape::Scalar(Scalar::Null),
            Value::Bool(b) => Shape::Scalar(Scalar::Bool(*b)),
            Value::Number(n) => Shape::Scalar(Scalar::Number(*n)),
            Value::String(s) => Shape::Scalar(Scalar::String(s.as_str())),
            Value::Array(items) => Shape::Array(items.as_slice()),
            Value::Object(m) => Shape::Object(m.entries()),
        }
    }

    fn pos(self) -> Pos {
        self.pos
    }

    #[inline]
    fn str_bytes(self) -> Option<&'a [u8]> {
        match &self.value {
            Value::String(s) => Some(s.as_bytes()),
            _ => None,
        }
    }

    fn to_node(self) -> Node {
        self.clone()
    }
}

impl<'a> ListView<'a> for &'a [Node] {
    type Item = &'a Node;

    #[inline]
    fn len(self) -> usize {
        <[Node]>::len(self)
    }

    #[inline]
    fn at(self, i: usize) -> &'a Node {
        &self[i]
    }
}

impl<'a> ObjView<'a> for &'a [Entry] {
    type Item = &'a Node;

    #[inline]
    fn len(self) -> usize {
        <[Entry]>::len(self)
    }

    #[inline]
    fn entry(self, k: usize) -> (&'a str, &'a Node) {
        let e = &self[k];
        (&e.key, &e.node)
    }

    #[inline]
    fn key_bytes(self, k: usize) -> &'a [u8] {
        self[k].key.as_bytes()
    }

    #[inline]
    fn value(self, k: usize) -> &'a Node {
        &self[k].node
    }

    fn get(self, key: &str) -> Option<&'a Node> {
        self.binary_search_by(|e| crate::tree::key_cmp(&e.key, key))
            .ok()
            .map(|i| &self[i].node)
    }

    type Probe = ();

    fn probe(_key: &str) {}
}

/// Deep equality of two values, as the owned model's `==` (positions ignored).
pub(crate) fn equal<'a, V: View<'a>>(a: V, b: V) -> bool {
    match (a.shape(), b.shape()) {
        (Shape::Scalar(x), Shape::Scalar(y)) => x == y,
        (Shape::Array(x), Shape::Array(y)) => {
            x.len() == y.len() && (0..x.len()).all(|i| equal(x.at(i), y.at(i)))
        }
        (Shape::Object(x), Shape::Object(y)) => {
            x.len() == y.len()
                && (0..x.len()).all(|k| {
                    let ((ka, va), (kb, vb)) = (x.entry(k), y.entry(k));
                    ka == kb && equal(va, vb)
                })
        }
        _ => false,
    }
}
