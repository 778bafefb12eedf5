//! A JSON parser that keeps positions, enforces limits and rejects duplicate
//! keys. Hand-written because it is the hot path of large comparisons.

use crate::error::Error;
use std::io::Read;

use crate::load::{Limits, line_col, to_u32};
use crate::tree::{Entry, Map, Node, Number, Pos, Str, Value};

pub(crate) fn parse(text: &str, source_name: &str, limits: &Limits) -> Result<Node, Error> {
    run(Whole(text), source_name, limits, 0)
}

/// Parses JSON read from `reader` a block of lines at a time, so the whole
/// input is never held in memory: only the tree is. A raw line break never
/// occurs inside a JSON token, so every block ends between tokens, inside
/// whitespace, where the parser asks for the next one.
pub(crate) fn parse_read(
    reader: impl Read,
    source_name: &str,
    limits: &Limits,
) -> Result<Node, Error> {
    parse_blocks(reader, source_name, limits, BLOCK)
}

pub(crate) fn parse_blocks(
    reader: impl Read,
    source_name: &str,
    limits: &Limits,
    block: usize,
) -> Result<Node, Error> {
    let mut lines = Lines {
        reader,
        block,
        chunk: String::new(),
        spare: Vec::new(),
        carry: Vec::new(),
        eof: false,
        total: 0,
        limit: limits.max_bytes,
    };
    lines.advance().map_err(|e| e.into_error(source_name, 1))?;
    // A UTF-8 byte order mark carries no content (as `load` strips it).
    let bom = if lines.chunk.starts_with('\u{feff}') {
        '\u{feff}'.len_utf8()
    } else {
        0
    };
    run(lines, source_name, limits, bom)
}

fn run<S: Source>(src: S, source_name: &str, limits: &Limits, skip: usize) -> Result<Node, Error> {
    let mut p = Parser {
        src,
        i: skip,
        line: 1,
        line_start: skip,
        source_name,
        max_depth: limits.depth(),
        max_nodes: limits.max_nodes,
        nodes: 0,
        entries: Vec::new(),
        items: Vec::new(),
    };
    p.skip_ws()?;
    let node = p.value(0)?;
    p.skip_ws()?;
    if p.i < p.src.bytes().len() {
        return Err(p.syntax("trailing characters after the document"));
    }
    Ok(node)
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
/// path: a quote, a backslash, a control character, or the end of `b`. Eight
/// bytes at a time: a byte `v` equal to zero sets the top bit of
/// `(v - 1) & !v`, and a borrow can only mark bytes above the first match, so
/// the lowest marked byte is exact.
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

impl<S: Source> Parser<'_, S> {
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
                    }
                    _ => return Ok(()),
                }
            }
            // The end of a block, always between tokens: on to the next one.
            match self.src.advance() {
                Ok(true) => {
                    self.i = 0;
                    self.line_start = 0;
                }
                Ok(false) => return Ok(()),
                Err(e) => return Err(e.into_error(self.source_name, self.line)),
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
        let value = match self.src.bytes().get(self.i) {
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
        if self.src.bytes()[self.i..].starts_with(word.as_bytes()) {
            self.i += word.len();
            Ok(value)
        } else {
            Err(self.syntax("invalid literal"))
        }
    }

    fn object(&mut self, depth: usize) -> Result<Map, Error> {
        self.i += 1; // '{'
        let start = self.entries.len();
        self.skip_ws()?;
        if self.src.bytes().get(self.i) == Some(&b'}') {
            self.i += 1;
            return Ok(Map::new());
        }
        loop {
            self.skip_ws()?;
            if self.src.bytes().get(self.i) != Some(&b'"') {
                return Err(self.syntax("expected a string key"));
            }
            let key_pos = self.pos();
            let key = self.string()?;
            self.skip_ws()?;
            if self.src.bytes().get(self.i) != Some(&b':') {
                return Err(self.syntax("expected ':' after the key"));
            }
            self.i += 1;
            self.skip_ws()?;
            let node = self.value(depth + 1)?;
            self.entries.push(Entry { key, key_pos, node });
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
        let entries = self.entries.split_off(start);
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
        self.skip_ws()?;
        if self.src.bytes().get(self.i) == Some(&b']') {
            self.i += 1;
            return Ok(Vec::new());
        }
        loop {
            self.skip_ws()?;
            let item = self.value(depth + 1)?;
            self.items.push(item);
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
        Ok(self.items.split_off(start))
    }

    fn string(&mut self) -> Result<Str, Error> {
        self.i += 1; // opening quote
        let start = self.i;
        // Fast path: no escapes.
        let stop = string_stop(self.src.bytes(), start);
        if self.src.bytes().get(stop) == Some(&b'"') {
            let s = Str::from(&self.src.text()[start..stop]);
            self.i = stop + 1;
            return Ok(s);
        }
        self.i = stop;
        let mut out = String::with_capacity(self.i - start + 16);
        out.push_str(&self.src.text()[start..self.i]);
        loop {
            let Some(&c) = self.src.bytes().get(self.i) else {
                return Err(self.syntax("unterminated string"));
            };
            match c {
                b'"' => {
                    self.i += 1;
                    return Ok(out.into());
                }
                b'\\' => {
                    self.i += 1;
                    let Some(&e) = self.src.bytes().get(self.i) else {
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
                    while let Some(&c) = self.src.bytes().get(self.i) {
                        if c == b'"' || c == b'\\' || c < 0x20 {
                            break;
                        }
                        self.i += 1;
                    }
                    out.push_str(&self.src.text()[run..self.i]);
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn whole(text: &str) -> Result<Node, String> {
        parse(text, "t.json", &Limits::default()).map_err(|e| e.to_string())
    }

    fn blocks(bytes: &[u8], block: usize, limits: &Limits) -> Result<Node, String> {
        parse_blocks(bytes, "t.json", limits, block).map_err(|e| e.to_string())
    }

    /// Pretty JSON with every kind of token, escapes and non-ASCII text.
    const DOC: &str = "{\n  \"items\": [\n    {\"name\": \"a\\n\\u00e9\", \"n\": -1.5e3},\n    {\"name\": \"caf\u{e9} \u{1f600}\", \"ok\": true, \"x\": null}\n  ],\r\n  \"count\": 2\n}\n";

    #[test]
    fn blocks_of_any_size_give_the_same_tree() {
        let expected = whole(DOC).expect("valid");
        for block in 1..=DOC.len() + 1 {
            assert_eq!(
                blocks(DOC.as_bytes(), block, &Limits::default()),
                Ok(expected.clone()),
                "block {block}"
            );
        }
    }

    proptest! {
        #[test]
        fn errors_and_positions_match_the_whole_input_parser(
            cut in 0usize..DOC.len(),
            insert in prop::sample::select(vec!["", "\n", "}", ",", "x", "\"", "\n\n]", " 1"]),
            block in 1usize..40,
        ) {
            let mut text = DOC.as_bytes()[..cut].to_vec();
            text.extend_from_slice(insert.as_bytes());
            text.extend_from_slice(&DOC.as_bytes()[cut..]);
            let expected = match std::str::from_utf8(&text) {
                Ok(t) => whole(t),
                Err(_) => crate::load::load_bytes(&text, crate::load::Format::Json, "t.json", &Limits::default())
                    .map_err(|e| e.to_string()),
            };
            prop_assert_eq!(blocks(&text, block, &Limits::default()), expected);
        }
    }

    #[test]
    fn invalid_utf8_in_a_later_block_names_its_line_and_column() {
        let mut text = b"[\n1,\n2,\n\"ab".to_vec();
        text.push(0xff);
        text.extend_from_slice(b"\"]\n");
        let expected = crate::load::load_bytes(
            &text,
            crate::load::Format::Json,
            "t.json",
            &Limits::default(),
        )
        .expect_err("invalid UTF-8")
        .to_string();
        assert_eq!(expected, "t.json:4:4: invalid json: invalid UTF-8");
        for block in 1..8 {
            assert_eq!(
                blocks(&text, block, &Limits::default()).unwrap_err(),
                expected,
                "block {block}"
            );
        }
    }

    #[test]
    fn a_byte_order_mark_is_skipped_and_columns_count_after_it() {
        let text = "\u{feff}{\"a\": 1, \"a\": 2}";
        let expected = crate::load::load(
            text,
            crate::load::Format::Json,
            "t.json",
            &Limits::default(),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            blocks(text.as_bytes(), 4, &Limits::default()).unwrap_err(),
            expected
        );
        assert!(blocks("\u{feff}[1]".as_bytes(), 2, &Limits::default()).is_ok());
    }

    #[test]
    fn a_read_error_and_the_size_limit_are_reported() {
        struct Failing(usize);
        impl Read for Failing {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                if self.0 == 0 {
                    return Err(std::io::Error::other("disk on fire"));
                }
                self.0 -= 1;
                buf[..2].copy_from_slice(b"[\n");
                Ok(2)
            }
        }
        let err = parse_blocks(Failing(3), "t.json", &Limits::default(), 4).unwrap_err();
        assert!(matches!(err, Error::Read { .. }), "{err}");
        assert!(err.to_string().contains("disk on fire"), "{err}");
        let limits = Limits {
            max_bytes: 10,
            ..Limits::default()
        };
        let err = blocks(b"[1,\n2,\n3,\n4,\n5]\n", 4, &limits).unwrap_err();
        assert!(err.contains("limit"), "{err}");
        assert!(blocks(b"[1,\n2]\n", 4, &limits).is_ok());
    }

    #[test]
    fn the_string_scan_stops_at_the_first_quote_backslash_or_control_byte() {
        let slow = |b: &[u8], i: usize| {
            (i..b.len())
                .find(|&k| b[k] == b'"' || b[k] == b'\\' || b[k] < 0x20)
                .unwrap_or(b.len())
        };
        let fill = b"abcdefghijklmnopqrstuvw\xc3\xa9\x7f~ ";
        for stop in [b'"', b'\\', 0x00, 0x1f, b'\n'] {
            for len in 0..24 {
                for at in 0..=len {
                    let mut b: Vec<u8> = fill.iter().copied().cycle().take(len).collect();
                    if at < len {
                        b[at] = stop;
                        // A byte that can follow a match must not hide it.
                        if at + 1 < len {
                            b[at + 1] = 0x21;
                        }
                    }
                    for from in 0..=at.min(len) {
                        assert_eq!(string_stop(&b, from), slow(&b, from), "{b:?} from {from}");
                    }
                }
            }
        }
    }

    #[test]
    fn empty_input_is_an_error_at_the_start() {
        assert_eq!(blocks(b"", 4, &Limits::default()), whole(""));
        assert_eq!(blocks(b"\n\n", 1, &Limits::default()), whole("\n\n"));
    }
}
