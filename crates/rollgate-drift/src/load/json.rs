//! The JSON parser: keeps positions, enforces limits, rejects duplicate keys,
//! and builds the compact [`Tree`] directly (ADR 0004). Hand-written because
//! it is the hot path of large comparisons; the owned [`crate::Node`] of a
//! JSON document is converted from the tree.
//!
//! Building. The parser pushes every finished value onto a stack of pending
//! children. When a container closes, its children are the top of that stack:
//! an object's pairs are sorted there (and checked for duplicate keys), then
//! the children are copied once, contiguously, to the end of the tree's
//! slots, and the container's own slot replaces them on the stack. Each slot
//! is thus written twice (stack, then tree) and never moved again; nothing is
//! allocated per container, and the stack only ever holds the open
//! containers' children.
//!
//! Streaming. Input read from a file or a pipe is parsed a block of lines at
//! a time, so the whole text is never held in memory: only the tree is. A raw
//! line break never occurs inside a JSON token, so every block ends between
//! tokens, inside whitespace, where the parser asks for the next one.

use std::io::Read;

use crate::arena::{INLINE_MAX, Kind, Slot, Tree, key_cmp, pos_in, slot_bytes, slot_str};
use crate::error::Error;
use crate::load::{Limits, line_col, to_u32};
use crate::tree::{Number, Pos};

/// Parses JSON text held in memory (the caller has checked its size and
/// stripped a byte order mark).
pub(crate) fn parse(text: &str, source_name: &str, limits: &Limits) -> Result<Tree, Error> {
    run(Whole(text), source_name, limits, 0, text.len())
}

/// Parses JSON read from `reader` a block of lines at a time. `size_hint`,
/// the input's size when known, sizes the tree up front so it is not copied
/// while it grows.
pub(crate) fn parse_read(
    reader: impl Read,
    source_name: &str,
    limits: &Limits,
    size_hint: usize,
) -> Result<Tree, Error> {
    parse_blocks(reader, source_name, limits, BLOCK, size_hint)
}

pub(crate) fn parse_blocks(
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
        limit: limits.bytes(),
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
        table: Vec::new(),
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
        // The carry holds no line break, nor do bytes already searched: each
        // byte is searched once, however long the line (a whole input with no
        // line break was searched again after every read: quadratic).
        let mut searched = raw.len();
        let cut = loop {
            if raw.len() >= self.block || self.eof {
                if let Some(p) = raw[searched..].iter().rposition(|&b| b == b'\n') {
                    break searched + p + 1;
                }
                searched = raw.len();
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
            Some(b'"') => return self.string(at),
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
            self.string(self.offset())?;
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

    /// Parses a string into `text` and pushes its slot onto the stack. (The
    /// slot is written where it stays: returned through memory, its bytes
    /// were read back right after being written piecewise, which stalls the
    /// store buffer; this was a tenth of the parse.)
    fn string(&mut self, at: u32) -> Result<(), Error> {
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
                let s = match bytes.get(start..start + INLINE_MAX) {
                    Some(w) => Slot::inline_window(at, w, len),
                    None => Slot::inline(at, &bytes[start..stop]),
                };
                self.stack.push(s);
                return Ok(());
            }
            self.text.push_str(&self.src.text()[start..stop]);
            let s = slot(&self.text);
            self.stack.push(s);
            return Ok(());
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
                    let s = if self.text.len() - off <= INLINE_MAX {
                        let s = Slot::inline(at, &self.text.as_bytes()[off..]);
                        self.text.truncate(off);
                        s
                    } else {
                        slot(&self.text)
                    };
                    self.stack.push(s);
                    return Ok(());
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::Format;
    use crate::tree::{Node, Value};
    use proptest::prelude::*;

    fn whole(text: &str) -> Result<Node, String> {
        parse(text, "t.json", &Limits::default())
            .map(|t| t.to_node())
            .map_err(|e| e.to_string())
    }

    fn blocks(bytes: &[u8], block: usize, limits: &Limits) -> Result<Node, String> {
        parse_blocks(bytes, "t.json", limits, block, 0)
            .map(|t| t.to_node())
            .map_err(|e| e.to_string())
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
        let err = parse_blocks(Failing(3), "t.json", &Limits::default(), 4, 0).unwrap_err();
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
        crate::load::load_tree(text, Format::Json, "t.json", limits)
            .map(|t| t.to_node())
            .map_err(|e| e.to_string())
    }

    fn arena_blocks(bytes: &[u8], block: usize, limits: &Limits) -> Result<Node, String> {
        parse_blocks(bytes, "t.json", limits, block, 0)
            .map(|t| t.to_node())
            .map_err(|e| e.to_string())
    }

    /// The whole input parsed at once (`load_bytes`: size check, UTF-8
    /// check, byte order mark), the reference for streaming.
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
        } else if let Err(e) = &expected
            && e.ends_with("invalid UTF-8")
        {
            // The whole input is checked for UTF-8 before it is parsed; a
            // stream checks each block as it arrives, so it may meet a syntax
            // error in an earlier block first. Either way it fails, and never
            // after the invalid byte.
            let Err(got) = &streamed else {
                return Err(TestCaseError::fail(format!("loaded despite {e}")));
            };
            prop_assert!(got == e || err_pos(got) <= err_pos(e), "{got} after {e}");
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

    /// The line and column of an error message `t.json:LINE:COLUMN: ...`.
    fn err_pos(message: &str) -> (u32, u32) {
        let mut parts = message
            .split(':')
            .skip(1)
            .map(|p| p.parse().unwrap_or(u32::MAX));
        (
            parts.next().unwrap_or(u32::MAX),
            parts.next().unwrap_or(u32::MAX),
        )
    }

    #[test]
    fn a_stream_may_report_a_syntax_error_before_later_invalid_utf8() {
        // Found by `damaged_json_gives_the_same_error`: line breaks inserted
        // inside the two bytes of a letter, the rest of the string after them.
        // Every cut, removal and block size; at least one must show a stream
        // stopping at a syntax error before the broken letter.
        let doc = "[-2.25e-3,\"\\ud83d\\ude00 \u{e9}\"]".as_bytes();
        let mut earlier = 0;
        for at in 0..=doc.len() {
            for remove in 0..3 {
                let mut text = doc[..at].to_vec();
                text.extend_from_slice(b"\n\n]");
                text.extend_from_slice(&doc[(at + remove).min(doc.len())..]);
                for block in 1..8 {
                    check(&text, block, &Limits::default()).unwrap();
                    let whole = owned(&text, &Limits::default());
                    let streamed = arena_blocks(&text, block, &Limits::default());
                    if let (Err(w), Err(s)) = (whole, streamed) {
                        earlier += usize::from(w != s && w.ends_with("invalid UTF-8"));
                    }
                }
            }
        }
        assert!(earlier > 0);
    }

    /// Whether a loaded tree holds the values `serde_json` reads from the
    /// same text (an independent parser; numbers compared as `f64`).
    fn agrees(node: &Node, v: &serde_json::Value) -> bool {
        match (&node.value, v) {
            (Value::Null, serde_json::Value::Null) => true,
            (Value::Bool(a), serde_json::Value::Bool(b)) => a == b,
            #[allow(clippy::float_cmp)]
            (Value::Number(a), serde_json::Value::Number(b)) => Some(a.as_f64()) == b.as_f64(),
            (Value::String(a), serde_json::Value::String(b)) => a == b,
            (Value::Array(a), serde_json::Value::Array(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| agrees(x, y))
            }
            (Value::Object(a), serde_json::Value::Object(b)) => {
                a.len() == b.len()
                    && b.iter()
                        .all(|(k, y)| a.get(k).is_some_and(|x| agrees(x, y)))
            }
            _ => false,
        }
    }

    #[test]
    fn fixtures_load_to_the_same_tree_streamed_or_whole_as_serde_json_reads_them() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let mut seen = 0;
        let mut stack = vec![dir];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "json") {
                    // Streamed from the file (tree sized from the file's
                    // size) against the text parsed whole.
                    let text = std::fs::read_to_string(&path).unwrap();
                    let expected = arena(&text, &Limits::default()).unwrap();
                    let got = crate::load_tree_file(&path, &Limits::default())
                        .unwrap()
                        .to_node();
                    assert!(same(&got, &expected), "{}", path.display());
                    let oracle: serde_json::Value = serde_json::from_str(&text).unwrap();
                    assert!(agrees(&got, &oracle), "{}", path.display());
                    seen += 1;
                }
            }
        }
        assert!(seen >= 4, "{seen} fixtures");
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
        fn generated_json_loads_to_the_same_tree_or_error_streamed_or_whole(
            doc in json(),
            block in 1usize..64,
        ) {
            check(doc.as_bytes(), block, &Limits::default())?;
            if let Ok(node) = arena(&doc, &Limits::default()) {
                let oracle: serde_json::Value = serde_json::from_str(&doc).unwrap();
                prop_assert!(agrees(&node, &oracle), "{doc}");
            }
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
