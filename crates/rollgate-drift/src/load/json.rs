//! A JSON parser that keeps positions, enforces limits and rejects duplicate
//! keys. Hand-written because it is the hot path of large comparisons.

use crate::error::Error;
use crate::load::{Limits, to_u32};
use crate::tree::{Entry, Map, Node, Number, Pos, Str, Value};

pub(crate) fn parse(text: &str, source_name: &str, limits: &Limits) -> Result<Node, Error> {
    let mut p = Parser {
        text,
        b: text.as_bytes(),
        i: 0,
        line: 1,
        line_start: 0,
        source_name,
        max_depth: limits.depth(),
        max_nodes: limits.max_nodes,
        nodes: 0,
        entries: Vec::new(),
        items: Vec::new(),
    };
    p.skip_ws();
    let node = p.value(0)?;
    p.skip_ws();
    if p.i < p.b.len() {
        return Err(p.syntax("trailing characters after the document"));
    }
    Ok(node)
}

struct Parser<'a> {
    text: &'a str,
    b: &'a [u8],
    i: usize,
    line: usize,
    line_start: usize,
    source_name: &'a str,
    max_depth: usize,
    max_nodes: usize,
    nodes: usize,
    // Shared stacks for the children of the objects and arrays being parsed:
    // each container is then allocated once, at its exact size.
    entries: Vec<Entry>,
    items: Vec<Node>,
}

impl Parser<'_> {
    fn pos(&self) -> Pos {
        Pos::new(to_u32(self.line), to_u32(self.i - self.line_start + 1))
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

    #[inline]
    fn skip_ws(&mut self) {
        while let Some(&c) = self.b.get(self.i) {
            match c {
                b' ' | b'\t' | b'\r' => self.i += 1,
                b'\n' => {
                    self.i += 1;
                    self.line += 1;
                    self.line_start = self.i;
                }
                _ => break,
            }
        }
    }

    fn value(&mut self, depth: usize) -> Result<Node, Error> {
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
        let pos = self.pos();
        let value = match self.b.get(self.i) {
            None => return Err(self.syntax("unexpected end of input, expected a value")),
            Some(b'{') => {
                self.enter(depth)?;
                Value::Object(self.object(depth)?)
            }
            Some(b'[') => {
                self.enter(depth)?;
                Value::Array(self.array(depth)?)
            }
            Some(b'"') => Value::String(self.string()?),
            Some(b't') => self.literal("true", Value::Bool(true))?,
            Some(b'f') => self.literal("false", Value::Bool(false))?,
            Some(b'n') => self.literal("null", Value::Null)?,
            Some(b'-' | b'0'..=b'9') => Value::Number(self.number()?),
            Some(_) => return Err(self.syntax("expected a value")),
        };
        Ok(Node::at(value, pos))
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

    fn literal(&mut self, word: &str, value: Value) -> Result<Value, Error> {
        if self.b[self.i..].starts_with(word.as_bytes()) {
            self.i += word.len();
            Ok(value)
        } else {
            Err(self.syntax("invalid literal"))
        }
    }

    fn object(&mut self, depth: usize) -> Result<Map, Error> {
        self.i += 1; // '{'
        let start = self.entries.len();
        self.skip_ws();
        if self.b.get(self.i) == Some(&b'}') {
            self.i += 1;
            return Ok(Map::new());
        }
        loop {
            self.skip_ws();
            if self.b.get(self.i) != Some(&b'"') {
                return Err(self.syntax("expected a string key"));
            }
            let key_pos = self.pos();
            let key = self.string()?;
            self.skip_ws();
            if self.b.get(self.i) != Some(&b':') {
                return Err(self.syntax("expected ':' after the key"));
            }
            self.i += 1;
            self.skip_ws();
            let node = self.value(depth + 1)?;
            self.entries.push(Entry { key, key_pos, node });
            self.skip_ws();
            match self.b.get(self.i) {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    break;
                }
                _ => return Err(self.syntax("expected ',' or '}'")),
            }
        }
        let entries: Vec<Entry> = self.entries.drain(start..).collect();
        Map::from_unsorted(entries).map_err(|(dup, first)| Error::DuplicateKey {
            source_name: self.source_name.to_owned(),
            key: dup.key.into(),
            line: dup.key_pos.line,
            column: dup.key_pos.column,
            first_line: first.line,
            first_column: first.column,
        })
    }

    fn array(&mut self, depth: usize) -> Result<Vec<Node>, Error> {
        self.i += 1; // '['
        let start = self.items.len();
        self.skip_ws();
        if self.b.get(self.i) == Some(&b']') {
            self.i += 1;
            return Ok(Vec::new());
        }
        loop {
            self.skip_ws();
            let item = self.value(depth + 1)?;
            self.items.push(item);
            self.skip_ws();
            match self.b.get(self.i) {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    break;
                }
                _ => return Err(self.syntax("expected ',' or ']'")),
            }
        }
        Ok(self.items.drain(start..).collect())
    }

    fn string(&mut self) -> Result<Str, Error> {
        self.i += 1; // opening quote
        let start = self.i;
        // Fast path: no escapes.
        while let Some(&c) = self.b.get(self.i) {
            if c == b'"' {
                let s = Str::from(&self.text[start..self.i]);
                self.i += 1;
                return Ok(s);
            }
            if c == b'\\' || c < 0x20 {
                break;
            }
            self.i += 1;
        }
        let mut out = String::with_capacity(self.i - start + 16);
        out.push_str(&self.text[start..self.i]);
        loop {
            let Some(&c) = self.b.get(self.i) else {
                return Err(self.syntax("unterminated string"));
            };
            match c {
                b'"' => {
                    self.i += 1;
                    return Ok(out.into());
                }
                b'\\' => {
                    self.i += 1;
                    let Some(&e) = self.b.get(self.i) else {
                        return Err(self.syntax("unterminated string"));
                    };
                    self.i += 1;
                    match e {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => out.push(self.unicode_escape()?),
                        _ => {
                            self.i -= 1;
                            return Err(self.syntax("invalid escape"));
                        }
                    }
                }
                c if c < 0x20 => return Err(self.syntax("control character in string")),
                _ => {
                    let run = self.i;
                    while let Some(&c) = self.b.get(self.i) {
                        if c == b'"' || c == b'\\' || c < 0x20 {
                            break;
                        }
                        self.i += 1;
                    }
                    out.push_str(&self.text[run..self.i]);
                }
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, Error> {
        let digits = self
            .b
            .get(self.i..self.i + 4)
            .ok_or_else(|| self.syntax("truncated \\u escape"))?;
        let mut v = 0u32;
        for &d in digits {
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
            if self.b.get(self.i..self.i + 2) != Some(b"\\u") {
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
        let neg = self.b[self.i] == b'-';
        if neg {
            self.i += 1;
        }
        let int_start = self.i;
        match self.b.get(self.i) {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                while matches!(self.b.get(self.i), Some(b'0'..=b'9')) {
                    self.i += 1;
                }
            }
            _ => return Err(self.syntax("invalid number")),
        }
        let int_end = self.i;
        let mut float = false;
        if self.b.get(self.i) == Some(&b'.') {
            float = true;
            self.i += 1;
            if !matches!(self.b.get(self.i), Some(b'0'..=b'9')) {
                return Err(self.syntax("invalid number: digit expected after '.'"));
            }
            while matches!(self.b.get(self.i), Some(b'0'..=b'9')) {
                self.i += 1;
            }
        }
        if matches!(self.b.get(self.i), Some(b'e' | b'E')) {
            float = true;
            self.i += 1;
            if matches!(self.b.get(self.i), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if !matches!(self.b.get(self.i), Some(b'0'..=b'9')) {
                return Err(self.syntax("invalid number: digit expected in exponent"));
            }
            while matches!(self.b.get(self.i), Some(b'0'..=b'9')) {
                self.i += 1;
            }
        }
        if !float && int_end - int_start <= 18 {
            let mut v: i64 = 0;
            for &d in &self.b[int_start..int_end] {
                v = v * 10 + i64::from(d - b'0');
            }
            return Ok(Number::Int(if neg { -v } else { v }));
        }
        let text = &self.text[start..self.i];
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
