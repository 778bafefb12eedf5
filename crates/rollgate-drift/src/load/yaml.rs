//! YAML loader built on `saphyr-parser`'s event stream, so positions, depth,
//! alias expansion and duplicate keys are all under our control.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

use crate::error::Error;
use crate::load::{Limits, to_u32};
use crate::tree::{Entry, Map, Node, Number, Pos, Str, Value};

enum Frame {
    Seq {
        items: Vec<Node>,
        pos: Pos,
        anchor: usize,
    },
    Map {
        entries: Vec<Entry>,
        pos: Pos,
        anchor: usize,
        key: Option<(Str, Pos)>,
    },
}

struct Loader<'a> {
    source_name: &'a str,
    limits: Limits,
    nodes: usize,
    // Anchors are looked up by id only; nothing iterates this map, so its
    // order never reaches an output.
    anchors: HashMap<usize, (Node, usize)>,
    stack: Vec<Frame>,
    docs: Vec<Node>,
}

fn pos_of(span: &Span) -> Pos {
    Pos::new(
        to_u32(span.start.line()),
        to_u32(span.start.col().saturating_add(1)),
    )
}

pub(crate) fn parse(text: &str, source_name: &str, limits: &Limits) -> Result<Node, Error> {
    let mut loader = Loader {
        source_name,
        limits: *limits,
        nodes: 0,
        anchors: HashMap::new(),
        stack: Vec::new(),
        docs: Vec::new(),
    };
    let mut parser = Parser::new_from_str(text);
    while let Some(event) = parser.next_event() {
        let (event, span) = event.map_err(|e| Error::Syntax {
            source_name: source_name.to_owned(),
            format: "yaml",
            line: to_u32(e.marker().line()),
            column: to_u32(e.marker().col().saturating_add(1)),
            message: e.info().to_owned(),
        })?;
        let pos = pos_of(&span);
        match event {
            Event::StreamEnd => break,
            Event::Nothing | Event::StreamStart | Event::DocumentStart(_) | Event::DocumentEnd => {}
            Event::Alias(id) => {
                let count = match loader.anchors.get(&id) {
                    Some((_, count)) => *count,
                    None => return Err(loader.syntax(pos, "alias to an unknown anchor")),
                };
                loader.count(pos, count)?;
                let value = loader
                    .anchors
                    .get(&id)
                    .map_or(Value::Null, |(n, _)| n.value.clone());
                let node = Node::at(value, pos);
                loader.push(node, 0)?;
            }
            Event::Scalar(text, style, anchor, tag) => {
                let is_str_tag = tag
                    .as_ref()
                    .is_some_and(|t| t.is_yaml_core_schema() && t.suffix == "str");
                let value = if style == ScalarStyle::Plain && !is_str_tag {
                    resolve_plain(&text)
                } else {
                    Value::String(text.into())
                };
                loader.count(pos, 1)?;
                loader.push(Node::at(value, pos), anchor)?;
            }
            Event::SequenceStart(anchor, _) => {
                loader.enter(pos)?;
                loader.stack.push(Frame::Seq {
                    items: Vec::new(),
                    pos,
                    anchor,
                });
            }
            Event::MappingStart(anchor, _) => {
                loader.enter(pos)?;
                loader.stack.push(Frame::Map {
                    entries: Vec::new(),
                    pos,
                    anchor,
                    key: None,
                });
            }
            Event::SequenceEnd => {
                if let Some(Frame::Seq { items, pos, anchor }) = loader.stack.pop() {
                    loader.push(Node::at(Value::Array(items), pos), anchor)?;
                }
            }
            Event::MappingEnd => {
                if let Some(Frame::Map {
                    entries,
                    pos,
                    anchor,
                    ..
                }) = loader.stack.pop()
                {
                    let map = loader.finish_map(entries)?;
                    loader.push(Node::at(Value::Object(map), pos), anchor)?;
                }
            }
        }
    }
    Ok(match loader.docs.len() {
        0 => Node::at(Value::Null, Pos::new(1, 1)),
        1 => loader.docs.pop().unwrap_or_else(|| Node::new(Value::Null)),
        _ => Node::at(Value::Array(loader.docs), Pos::new(1, 1)),
    })
}

impl Loader<'_> {
    fn syntax(&self, pos: Pos, message: &str) -> Error {
        Error::Syntax {
            source_name: self.source_name.to_owned(),
            format: "yaml",
            line: pos.line,
            column: pos.column,
            message: message.to_owned(),
        }
    }

    fn count(&mut self, pos: Pos, n: usize) -> Result<(), Error> {
        self.nodes = self.nodes.saturating_add(n);
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

    fn enter(&mut self, pos: Pos) -> Result<(), Error> {
        self.count(pos, 1)?;
        let limit = self.limits.depth();
        if self.stack.len() >= limit {
            return Err(Error::TooDeep {
                source_name: self.source_name.to_owned(),
                line: pos.line,
                column: pos.column,
                limit,
            });
        }
        Ok(())
    }

    /// Hands a finished node to its parent (or ends a document).
    fn push(&mut self, node: Node, anchor: usize) -> Result<(), Error> {
        if anchor != 0 {
            let count = node.count();
            self.anchors.insert(anchor, (node.clone(), count));
        }
        match self.stack.last_mut() {
            None => self.docs.push(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map { entries, key, .. }) => match key.take() {
                Some((k, key_pos)) => entries.push(Entry {
                    key: k,
                    key_pos,
                    node,
                }),
                None => {
                    let k = match node.value {
                        Value::String(s) => s,
                        Value::Null => Str::default(),
                        Value::Bool(b) => Str::from(if b { "true" } else { "false" }),
                        Value::Number(n) => compact_str::format_compact!("{n}"),
                        Value::Array(_) | Value::Object(_) => {
                            return Err(self.syntax(node.pos, "keys must be scalars"));
                        }
                    };
                    *key = Some((k, node.pos));
                }
            },
        }
        Ok(())
    }

    /// Applies YAML merge keys (`<<`) and rejects duplicates.
    fn finish_map(&self, entries: Vec<Entry>) -> Result<Map, Error> {
        let (merges, own): (Vec<Entry>, Vec<Entry>) =
            entries.into_iter().partition(|e| e.key == "<<");
        let map = Map::from_unsorted(own).map_err(|(dup, first)| Error::DuplicateKey {
            source_name: self.source_name.to_owned(),
            key: dup.key.into(),
            line: dup.key_pos.line,
            column: dup.key_pos.column,
            first_line: first.line,
            first_column: first.column,
        })?;
        let mut map = map;
        for merge in merges {
            let sources = match merge.node.value {
                Value::Object(m) => vec![m],
                Value::Array(items) => {
                    let mut maps = Vec::new();
                    for item in items {
                        match item.value {
                            Value::Object(m) => maps.push(m),
                            _ => return Err(self.syntax(item.pos, "merge key needs mappings")),
                        }
                    }
                    maps
                }
                _ => return Err(self.syntax(merge.node.pos, "merge key needs a mapping")),
            };
            for source in sources {
                for e in source.iter() {
                    if map.get(&e.key).is_none() {
                        map.insert(e.key.clone(), e.node.clone());
                    }
                }
            }
        }
        Ok(map)
    }
}

/// Resolves a plain scalar with the YAML 1.2 core schema, except that an
/// integer with a leading zero is octal as in YAML 1.1 (`0644` = 420, as
/// Kubernetes reads file modes). `.inf` and `.nan` stay strings: the tree
/// model only holds finite numbers.
fn resolve_plain(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    let first = text.as_bytes()[0];
    if first.is_ascii_digit() || matches!(first, b'-' | b'+' | b'.') {
        if let Some(n) = parse_int(text) {
            return Value::Number(Number::Int(n));
        }
        // An octal integer too large for 64 bits is no decimal float.
        if is_octal(text) {
            return Value::String(text.into());
        }
        if is_core_float(text)
            && let Ok(f) = text.parse::<f64>()
            && f.is_finite()
        {
            return Value::Number(Number::Float(f));
        }
    }
    Value::String(text.into())
}

fn parse_int(text: &str) -> Option<i64> {
    if let Some(hex) = text.strip_prefix("0x") {
        return i64::from_str_radix(hex, 16).ok();
    }
    if let Some(oct) = text.strip_prefix("0o") {
        return i64::from_str_radix(oct, 8).ok();
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // YAML 1.1 octal, as Kubernetes, Helm and PyYAML read it: `0644` is
    // 420 (file modes), not six hundred and forty-four.
    if is_octal(text) {
        let n = i64::from_str_radix(digits, 8).ok()?;
        return Some(if text.starts_with('-') { -n } else { n });
    }
    text.parse().ok()
}

/// `[-+]? 0 [0-7]+`: a YAML 1.1 octal integer.
fn is_octal(text: &str) -> bool {
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    digits.len() > 1 && digits.starts_with('0') && digits.bytes().all(|b| (b'0'..b'8').contains(&b))
}

/// `[-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?`
fn is_core_float(text: &str) -> bool {
    let b = text.strip_prefix(['-', '+']).unwrap_or(text).as_bytes();
    let mut i = 0;
    let int_digits = b.iter().take_while(|c| c.is_ascii_digit()).count();
    i += int_digits;
    let mut frac_digits = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        frac_digits = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        i += frac_digits;
    }
    if int_digits == 0 && frac_digits == 0 {
        return false;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'-' | b'+')) {
            i += 1;
        }
        let exp = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        if exp == 0 {
            return false;
        }
        i += exp;
    }
    i == b.len()
}
