//! RFC 6902 JSON Patch: the operations the differ emits, their JSON form and
//! an applier (used by tests, overlays and tools that remediate in process).

use crate::error::Error;
use crate::tree::{Node, Value, parse_index, unescape_token};

/// One JSON Patch operation.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum PatchOp {
    /// Adds a value (inserts into a list, sets an object key).
    Add {
        /// Target JSON Pointer.
        path: String,
        /// The value.
        value: Node,
    },
    /// Removes the value at `path`.
    Remove {
        /// Target JSON Pointer.
        path: String,
    },
    /// Replaces the value at `path`.
    Replace {
        /// Target JSON Pointer.
        path: String,
        /// The new value.
        value: Node,
    },
}

impl PatchOp {
    /// The operation's name (`add`, `remove`, `replace`).
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            PatchOp::Add { .. } => "add",
            PatchOp::Remove { .. } => "remove",
            PatchOp::Replace { .. } => "replace",
        }
    }

    /// The target path.
    #[must_use]
    pub fn path(&self) -> &str {
        match self {
            PatchOp::Add { path, .. }
            | PatchOp::Remove { path }
            | PatchOp::Replace { path, .. } => path,
        }
    }
}

/// An ordered list of operations.
///
/// ```
/// use rollgate_drift::{Format, Limits, load, diff};
/// let desired = load(r#"{"args": ["--a", "--b", "--c"], "port": 80}"#, Format::Json, "d", &Limits::default())?;
/// let mut live = load(r#"{"args": ["--c", "--a"], "port": 8080, "debug": true}"#, Format::Json, "l", &Limits::default())?;
/// let patch = diff(&desired, &live).patch().clone();
/// patch.apply(&mut live)?;
/// assert_eq!(live, desired);
/// # Ok::<(), rollgate_drift::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Patch {
    ops: Vec<PatchOp>,
}

impl Patch {
    /// A patch of `ops`.
    #[must_use]
    pub fn new(ops: Vec<PatchOp>) -> Self {
        Self { ops }
    }

    /// The operations in order.
    #[must_use]
    pub fn ops(&self) -> &[PatchOp] {
        &self.ops
    }

    /// Whether the patch does nothing.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Compact JSON.
    #[must_use]
    pub fn to_json(&self) -> String {
        let mut out = String::from("[");
        for (i, op) in self.ops.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            write_op(&mut out, op);
        }
        out.push(']');
        out
    }

    /// One operation per line, for people and line-oriented tools.
    #[must_use]
    pub fn to_json_lines(&self) -> String {
        if self.ops.is_empty() {
            return "[]\n".to_owned();
        }
        let mut out = String::from("[\n");
        for (i, op) in self.ops.iter().enumerate() {
            out.push_str("  ");
            write_op(&mut out, op);
            if i + 1 < self.ops.len() {
                out.push(',');
            }
            out.push('\n');
        }
        out.push_str("]\n");
        out
    }

    /// Applies the patch to `doc` in place. On error `doc` may be partly
    /// patched.
    pub fn apply(&self, doc: &mut Node) -> Result<(), Error> {
        for (index, op) in self.ops.iter().enumerate() {
            apply_op(doc, op).map_err(|message| Error::Patch {
                index,
                op: op.name(),
                path: op.path().to_owned(),
                message,
            })?;
        }
        Ok(())
    }
}

fn write_op(out: &mut String, op: &PatchOp) {
    out.push_str("{\"op\":\"");
    out.push_str(op.name());
    out.push_str("\",\"path\":");
    crate::render::write_str(out, op.path());
    match op {
        PatchOp::Add { value, .. } | PatchOp::Replace { value, .. } => {
            out.push_str(",\"value\":");
            crate::render::write_json(out, value, None);
        }
        PatchOp::Remove { .. } => {}
    }
    out.push('}');
}

fn split(path: &str) -> Result<(Vec<String>, String), String> {
    let rest = path
        .strip_prefix('/')
        .ok_or_else(|| "path must be empty or start with '/'".to_owned())?;
    let mut toks: Vec<String> = rest.split('/').map(unescape_token).collect();
    let last = toks.pop().unwrap_or_default();
    Ok((toks, last))
}

fn parent<'n>(doc: &'n mut Node, toks: &[String]) -> Result<&'n mut Node, String> {
    let mut cur = doc;
    for t in toks {
        cur = match &mut cur.value {
            Value::Object(m) => m.get_mut(t).ok_or_else(|| format!("no key \"{t}\""))?,
            Value::Array(items) => {
                let i = parse_index(t).ok_or_else(|| format!("bad list index \"{t}\""))?;
                let len = items.len();
                items
                    .get_mut(i)
                    .ok_or_else(|| format!("index {i} out of range (length {len})"))?
            }
            _ => return Err(format!("cannot descend into a scalar at \"{t}\"")),
        };
    }
    Ok(cur)
}

fn apply_op(doc: &mut Node, op: &PatchOp) -> Result<(), String> {
    if op.path().is_empty() {
        return match op {
            PatchOp::Add { value, .. } | PatchOp::Replace { value, .. } => {
                *doc = value.clone();
                Ok(())
            }
            PatchOp::Remove { .. } => Err("cannot remove the whole document".to_owned()),
        };
    }
    let (toks, last) = split(op.path())?;
    let target = parent(doc, &toks)?;
    match (&mut target.value, op) {
        (Value::Object(m), PatchOp::Add { value, .. }) => {
            m.insert(last, value.clone());
        }
        (Value::Object(m), PatchOp::Replace { value, .. }) => {
            let slot = m
                .get_mut(&last)
                .ok_or_else(|| format!("no key \"{last}\""))?;
            *slot = value.clone();
        }
        (Value::Object(m), PatchOp::Remove { .. }) => {
            m.remove(&last)
                .ok_or_else(|| format!("no key \"{last}\""))?;
        }
        (Value::Array(items), PatchOp::Add { value, .. }) => {
            let i = if last == "-" {
                items.len()
            } else {
                parse_index(&last).ok_or_else(|| format!("bad list index \"{last}\""))?
            };
            if i > items.len() {
                return Err(format!("index {i} out of range (length {})", items.len()));
            }
            items.insert(i, value.clone());
        }
        (Value::Array(items), PatchOp::Replace { value, .. }) => {
            let i = parse_index(&last).ok_or_else(|| format!("bad list index \"{last}\""))?;
            let len = items.len();
            let slot = items
                .get_mut(i)
                .ok_or_else(|| format!("index {i} out of range (length {len})"))?;
            *slot = value.clone();
        }
        (Value::Array(items), PatchOp::Remove { .. }) => {
            let i = parse_index(&last).ok_or_else(|| format!("bad list index \"{last}\""))?;
            if i >= items.len() {
                return Err(format!("index {i} out of range (length {})", items.len()));
            }
            items.remove(i);
        }
        _ => return Err("parent is a scalar".to_owned()),
    }
    Ok(())
}
