//! TOML loader on `toml`'s spanned document model. A cheap pre-scan bounds
//! the nesting before the parser sees the input, so a hostile file cannot
//! exhaust the stack.

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::error::Error;
use crate::load::{Limits, to_u32};
use crate::tree::{Entry, Map, Node, Number, Pos, Str, Value};

struct Lines {
    starts: Vec<usize>,
}

impl Lines {
    fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(
            text.bytes()
                .enumerate()
                .filter(|&(_, b)| b == b'\n')
                .map(|(i, _)| i + 1),
        );
        Self { starts }
    }

    fn pos(&self, offset: usize) -> Pos {
        let line = self.starts.partition_point(|&s| s <= offset).max(1);
        let start = self.starts[line - 1];
        Pos::new(to_u32(line), to_u32(offset - start + 1))
    }
}

struct Conv<'a> {
    source_name: &'a str,
    lines: Lines,
    limits: Limits,
    nodes: usize,
}

pub(crate) fn parse(text: &str, source_name: &str, limits: &Limits) -> Result<Node, Error> {
    let lines = Lines::new(text);
    prescan(text, source_name, limits, &lines)?;
    let doc = DeTable::parse(text).map_err(|e| {
        let pos = lines.pos(e.span().map_or(0, |s| s.start));
        let mut message = e.message().trim_end().to_owned();
        // The parser says only "duplicate key": name it, as JSON and YAML do.
        if message == "duplicate key"
            && let Some(key) = e.span().and_then(|s| text.get(s))
        {
            let key = key.trim().trim_matches(['"', '\'']);
            message = format!("duplicate key {key:?}");
        }
        Error::Syntax {
            source_name: source_name.to_owned(),
            format: "toml",
            line: pos.line,
            column: pos.column,
            message,
        }
    })?;
    let mut conv = Conv {
        source_name,
        lines,
        limits: *limits,
        nodes: 0,
    };
    let span = doc.span();
    let map = conv.table(doc.get_ref(), 0)?;
    Ok(Node::at(Value::Object(map), conv.lines.pos(span.start)))
}

impl Conv<'_> {
    fn count(&mut self, pos: Pos) -> Result<(), Error> {
        self.nodes += 1;
        if self.nodes > self.limits.max_nodes {
            return Err(Error::TooManyNodes {
                source_name: self.source_name.to_owned(),
                line: pos.line,
                column: pos.column,
                limit: self.limits.max_nodes,
            });
        }
        Ok(())
    }

    fn too_deep(&self, pos: Pos) -> Error {
        Error::TooDeep {
            source_name: self.source_name.to_owned(),
            line: pos.line,
            column: pos.column,
            limit: self.limits.depth(),
        }
    }

    fn table(&mut self, table: &DeTable<'_>, depth: usize) -> Result<Map, Error> {
        let mut entries = Vec::with_capacity(table.len());
        for (key, value) in table {
            let key_pos = self.lines.pos(key.span().start);
            let node = self.value(value, depth + 1)?;
            entries.push(Entry {
                key: Str::from(key.get_ref().as_ref()),
                key_pos,
                node,
            });
        }
        // The TOML parser already rejects duplicate keys with a position.
        Map::from_unsorted(entries).map_err(|(dup, first)| Error::DuplicateKey {
            source_name: self.source_name.to_owned(),
            key: dup.key.into(),
            line: dup.key_pos.line,
            column: dup.key_pos.column,
            first_line: first.line,
            first_column: first.column,
        })
    }

    fn value(&mut self, value: &Spanned<DeValue<'_>>, depth: usize) -> Result<Node, Error> {
        let pos = self.lines.pos(value.span().start);
        self.count(pos)?;
        let v = match value.get_ref() {
            DeValue::String(s) => Value::String(Str::from(s.as_ref())),
            DeValue::Integer(i) => {
                let digits: String = i.as_str().chars().filter(|&c| c != '_').collect();
                let parsed = i64::from_str_radix(&digits, i.radix())
                    .map_err(|_| self.syntax(pos, "integer out of range"))?;
                Value::Number(Number::Int(parsed))
            }
            DeValue::Float(f) => {
                let digits: String = f.as_str().chars().filter(|&c| c != '_').collect();
                match digits.parse::<f64>() {
                    Ok(x) if x.is_finite() => Value::Number(Number::Float(x)),
                    // inf and nan have no place in a JSON-shaped tree: keep the text.
                    _ => Value::String(digits.into()),
                }
            }
            DeValue::Boolean(b) => Value::Bool(*b),
            DeValue::Datetime(d) => Value::String(compact_str::format_compact!("{d}")),
            DeValue::Array(items) => {
                if depth >= self.limits.depth() {
                    return Err(self.too_deep(pos));
                }
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    out.push(self.value(item, depth + 1)?);
                }
                Value::Array(out)
            }
            DeValue::Table(t) => {
                if depth >= self.limits.depth() {
                    return Err(self.too_deep(pos));
                }
                Value::Object(self.table(t, depth)?)
            }
        };
        Ok(Node::at(v, pos))
    }

    fn syntax(&self, pos: Pos, message: &str) -> Error {
        Error::Syntax {
            source_name: self.source_name.to_owned(),
            format: "toml",
            line: pos.line,
            column: pos.column,
            message: message.to_owned(),
        }
    }
}

/// Bounds nesting before parsing: `[`/`{` depth in values and the number of
/// dotted-key segments per line, skipping strings and comments. It counts
/// conservatively (a table header's brackets count too), which only matters
/// for limits far below any real configuration.
fn prescan(text: &str, source_name: &str, limits: &Limits, lines: &Lines) -> Result<(), Error> {
    let limit = limits.depth();
    let b = text.as_bytes();
    let mut depth = 0usize;
    let mut dots = 0usize;
    let mut inline_dots = 0usize;
    let mut after_eq = false;
    let mut i = 0;
    let deep = |at: usize| {
        let pos = lines.pos(at);
        Error::TooDeep {
            source_name: source_name.to_owned(),
            line: pos.line,
            column: pos.column,
            limit,
        }
    };
    while i < b.len() {
        match b[i] {
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'"' | b'\'' => {
                let q = b[i];
                let triple = b[i..].starts_with(if q == b'"' { b"\"\"\"" } else { b"'''" });
                if triple {
                    i += 3;
                    while i < b.len()
                        && !b[i..].starts_with(if q == b'"' { b"\"\"\"" } else { b"'''" })
                    {
                        if q == b'"' && b[i] == b'\\' {
                            i += 1;
                        }
                        i += 1;
                    }
                    i += 3;
                } else {
                    i += 1;
                    while i < b.len() && b[i] != q && b[i] != b'\n' {
                        if q == b'"' && b[i] == b'\\' {
                            i += 1;
                        }
                        i += 1;
                    }
                    i += 1;
                }
                continue;
            }
            b'[' | b'{' => {
                inline_dots = 0;
                depth += 1;
                if depth > limit + 1 {
                    return Err(deep(i));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            b'=' => {
                after_eq = true;
                inline_dots = 0;
            }
            b',' => inline_dots = 0,
            b'.' if !after_eq => {
                dots += 1;
                if dots + depth > limit {
                    return Err(deep(i));
                }
            }
            b'.' if depth > 0 => {
                inline_dots += 1;
                if inline_dots + depth > limit {
                    return Err(deep(i));
                }
            }
            b'\n' if depth == 0 => {
                after_eq = false;
                dots = 0;
            }
            _ => {}
        }
        i += 1;
    }
    Ok(())
}
