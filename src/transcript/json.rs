//! A JSON reader for one transcript line: a `serde` deserializer over a `&str`
//! that accepts exactly what `serde_json::from_str` accepts and hands the same
//! values to the same `Deserialize` impls, but passes over string bodies 64 bytes
//! at a time.
//!
//! Most of a line's bytes are strings nobody parses (tool results, file contents,
//! thinking), and they are full of escapes (`\n` every line of code). `serde_json`
//! steps over them escape by escape; here a block of 64 bytes gives three bit masks
//! (quotes, backslashes, control characters) and only the backslashes are visited
//! one by one, to check their escape and step over the character they escape.
//! Everything `serde_json` checks is checked the same way: the grammar of skipped
//! values (strings, numbers, literals, nesting), control characters and escapes in
//! every string, lone surrogates in the strings that are parsed, the recursion
//! limit of parsed values (skipped ones have none, as there), trailing characters.
//! `tests` below hold it to `serde_json` on every fixture line and on mutations of them.
//!
//! The input must be `&str` (UTF-8 checked once, by the caller): string slices are
//! cut at quotes, which are ASCII, so every slice is on a character boundary.
//!
//! `&serde_json::value::RawValue` works here as in `serde_json`: its newtype token
//! is answered with the value's raw text, borrowed.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, SeqAccess, Visitor};

/// Parse `s` as one JSON value of type `T`, as `serde_json::from_str` would.
pub fn from_str<'de, T: de::Deserialize<'de>>(s: &'de str) -> Result<T, Error> {
    let mut r = Reader { s, b: s.as_bytes(), i: 0, depth: MAX_DEPTH, scratch: String::new() };
    let value = T::deserialize(&mut r).map_err(|e| e.at(r.i))?;
    r.ws();
    if r.i < r.b.len() {
        return Err(Error::new("trailing characters").at(r.i));
    }
    Ok(value)
}

/// How deep parsed arrays and objects may nest (`serde_json`'s limit).
const MAX_DEPTH: u16 = 128;

/// `serde_json`'s token for `RawValue` (`serde_json::raw::TOKEN`, not exported).
const RAW_VALUE_TOKEN: &str = "$serde_json::private::RawValue";

/// Why a line is not JSON of the expected shape, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    msg: String,
    /// 0-based byte offset, once known.
    at: Option<usize>,
}

impl Error {
    fn new(msg: &str) -> Self {
        Error { msg: msg.to_owned(), at: None }
    }

    fn at(mut self, i: usize) -> Self {
        self.at.get_or_insert(i);
        self
    }

    /// The 1-based column (the line is one line) where reading stopped.
    pub fn column(&self) -> usize {
        self.at.unwrap_or(0) + 1
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{} at column {}", self.msg, self.column())
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error { msg: msg.to_string(), at: None }
    }
}

struct Reader<'de> {
    s: &'de str,
    b: &'de [u8],
    i: usize,
    /// Nesting levels parsed values may still go down.
    depth: u16,
    /// Unescaped strings (they cannot be borrowed).
    scratch: String,
}

/// Where a string's closing quote is, and whether its body has escapes.
struct StrEnd {
    close: usize,
    escaped: bool,
}

impl<'de> Reader<'de> {
    fn err<T>(&self, msg: &str) -> Result<T, Error> {
        Err(Error::new(msg).at(self.i))
    }

    /// Skip whitespace; the next byte, if any.
    fn ws(&mut self) -> Option<u8> {
        while let Some(&c) = self.b.get(self.i) {
            if !matches!(c, b' ' | b'\n' | b'\t' | b'\r') {
                return Some(c);
            }
            self.i += 1;
        }
        None
    }

    fn peek(&mut self) -> Result<u8, Error> {
        match self.ws() {
            Some(c) => Ok(c),
            None => self.err("EOF while parsing a value"),
        }
    }

    fn expect(&mut self, c: u8, msg: &str) -> Result<(), Error> {
        if self.ws() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            self.err(msg)
        }
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), Error> {
        if self.b[self.i..].starts_with(word) {
            self.i += word.len();
            Ok(())
        } else {
            self.err("expected ident")
        }
    }

    /// With `i` just after an opening quote: find the closing one, checking every
    /// escape and refusing control characters. Sixteen bytes are looked at at once;
    /// only the special ones (quote, backslash, control) are visited one by one.
    fn string_end(&self) -> Result<StrEnd, Error> {
        let b = self.b;
        let mut i = self.i;
        let mut escaped = false;
        loop {
            // Find the next special byte.
            match b.get(i..i + 16) {
                Some(chunk) => {
                    let m = specials(chunk.try_into().expect("16 bytes"));
                    if m == 0 {
                        i += 16;
                        continue;
                    }
                    i += m.trailing_zeros() as usize;
                }
                None => {
                    // The last few bytes of the line, one at a time.
                    while b.get(i).is_some_and(|&c| c != b'"' && c != b'\\' && c >= 0x20) {
                        i += 1;
                    }
                }
            }
            match b.get(i) {
                Some(b'"') => return Ok(StrEnd { close: i, escaped }),
                Some(b'\\') => {
                    i += escape_len(b, i).ok_or_else(|| Error::new("invalid escape").at(i))?;
                    escaped = true;
                }
                Some(_) => return Err(Error::new("control character while parsing a string").at(i)),
                None => return Err(Error::new("EOF while parsing a string").at(b.len())),
            }
        }
    }

    /// Parse a string (at its opening quote): borrowed if it has no escapes, else
    /// unescaped into the scratch buffer.
    fn string(&mut self) -> Result<Str<'de, '_>, Error> {
        self.i += 1;
        let start = self.i;
        let end = self.string_end()?;
        self.i = end.close + 1;
        let raw = &self.s[start..end.close];
        if !end.escaped {
            return Ok(Str::Borrowed(raw));
        }
        self.scratch.clear();
        let scratch = &mut self.scratch;
        // `unescape` takes the string with its quotes.
        super::unescape(&self.s[start - 1..=end.close], &mut |piece| scratch.push_str(piece))
            .ok_or_else(|| Error::new("invalid unicode code point").at(start))?;
        Ok(Str::Copied(&self.scratch))
    }

    /// Pass over one value, checking its grammar, without recursion.
    fn skip(&mut self) -> Result<(), Error> {
        // Open containers: `true` for an object.
        let mut open: Vec<bool> = Vec::new();
        loop {
            // A value.
            match self.peek()? {
                b'"' => {
                    self.i += 1;
                    self.i = self.string_end()?.close + 1;
                }
                b'{' => {
                    self.i += 1;
                    if self.peek()? == b'}' {
                        self.i += 1;
                    } else {
                        open.push(true);
                        self.key_colon()?;
                        continue;
                    }
                }
                b'[' => {
                    self.i += 1;
                    if self.peek()? == b']' {
                        self.i += 1;
                    } else {
                        open.push(false);
                        continue;
                    }
                }
                b'-' | b'0'..=b'9' => {
                    self.number()?;
                }
                b't' => self.literal(b"true")?,
                b'f' => self.literal(b"false")?,
                b'n' => self.literal(b"null")?,
                _ => return self.err("expected value"),
            }
            // After a value: close containers or go on to the next element.
            loop {
                let Some(&object) = open.last() else { return Ok(()) };
                match self.ws() {
                    Some(b',') => {
                        self.i += 1;
                        if object {
                            self.key_colon()?;
                        }
                        break;
                    }
                    Some(b'}') if object => {
                        self.i += 1;
                        open.pop();
                    }
                    Some(b']') if !object => {
                        self.i += 1;
                        open.pop();
                    }
                    Some(_) => return self.err(if object { "expected `,` or `}`" } else { "expected `,` or `]`" }),
                    None => return self.err("EOF while parsing a value"),
                }
            }
        }
    }

    /// An object key (skipped) and its colon.
    fn key_colon(&mut self) -> Result<(), Error> {
        if self.peek()? != b'"' {
            return self.err("key must be a string");
        }
        self.i += 1;
        self.i = self.string_end()?.close + 1;
        self.expect(b':', "expected `:`")
    }

    /// Pass over a number, checking its grammar; whether it is an integer.
    fn number(&mut self) -> Result<bool, Error> {
        let b = self.b;
        let digits = |i: &mut usize| {
            let s = *i;
            while b.get(*i).is_some_and(u8::is_ascii_digit) {
                *i += 1;
            }
            *i > s
        };
        let mut i = self.i;
        if b[i] == b'-' {
            i += 1;
        }
        match b.get(i) {
            Some(b'0') => i += 1,
            Some(b'1'..=b'9') => {
                digits(&mut i);
            }
            _ => {
                self.i = i;
                return self.err("invalid number");
            }
        }
        let mut integer = true;
        if b.get(i) == Some(&b'.') {
            i += 1;
            integer = false;
            if !digits(&mut i) {
                self.i = i;
                return self.err("invalid number");
            }
        }
        if matches!(b.get(i), Some(b'e' | b'E')) {
            i += 1;
            integer = false;
            if matches!(b.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            if !digits(&mut i) {
                self.i = i;
                return self.err("invalid number");
            }
        }
        self.i = i;
        Ok(integer)
    }

    /// Parse a number and hand it on as `serde_json` does: `u64`, else `i64`, else `f64`.
    fn visit_number<V: Visitor<'de>>(&mut self, visitor: V) -> Result<V::Value, Error> {
        let start = self.i;
        let integer = self.number()?;
        let text = &self.s[start..self.i];
        if integer {
            if let Ok(n) = text.parse::<u64>() {
                return visitor.visit_u64(n);
            }
            // A negative zero is a float there (`-0.0`), as in `serde_json`.
            if let Ok(n) = text.parse::<i64>()
                && n < 0
            {
                return visitor.visit_i64(n);
            }
        }
        match text.parse::<f64>() {
            Ok(x) if x.is_finite() => visitor.visit_f64(x),
            _ => Err(Error::new("number out of range").at(start)),
        }
    }

    fn nest<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T, Error>) -> Result<T, Error> {
        if self.depth == 0 {
            return self.err("recursion limit exceeded");
        }
        self.depth -= 1;
        let r = f(self);
        self.depth += 1;
        r
    }
}

/// A parsed string: borrowed from the line, or unescaped into the scratch buffer.
enum Str<'de, 's> {
    Borrowed(&'de str),
    Copied(&'s str),
}

/// The length of the escape sequence at `at` (a backslash): 2, or 6 for `\uXXXX`;
/// `None` if it is not one JSON allows.
fn escape_len(b: &[u8], at: usize) -> Option<usize> {
    match *b.get(at + 1)? {
        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Some(2),
        b'u' => b.get(at + 2..at + 6)?.iter().all(u8::is_ascii_hexdigit).then_some(6),
        _ => None,
    }
}

/// A bit for each byte of `chunk` that is a quote, a backslash or a control
/// character (below 0x20): the bytes a string scan must stop at.
fn specials(chunk: &[u8; 16]) -> u32 {
    use wide::u8x16;
    let v = u8x16::new(*chunk);
    // v <= 0x1f (unsigned) exactly when min(v, 0x1f) == v.
    let stop = v.simd_eq(u8x16::splat(b'"')) | v.simd_eq(u8x16::splat(b'\\')) | v.min(u8x16::splat(0x1f)).simd_eq(v);
    stop.to_bitmask()
}

/// The same bits a byte at a time: the reference the fast version is tested against.
#[cfg(test)]
fn specials_scalar(chunk: &[u8; 16]) -> u32 {
    chunk.iter().enumerate().map(|(j, &c)| u32::from(c == b'"' || c == b'\\' || c < 0x20) << j).sum()
}

impl<'de> Deserializer<'de> for &mut Reader<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.peek()? {
            b'"' => match self.string()? {
                Str::Borrowed(s) => visitor.visit_borrowed_str(s),
                Str::Copied(s) => visitor.visit_str(s),
            },
            b'{' => {
                self.i += 1;
                self.nest(|r| {
                    let value = visitor.visit_map(Map { r: &mut *r, first: true })?;
                    r.expect(b'}', "expected `,` or `}`")?;
                    Ok(value)
                })
            }
            b'[' => {
                self.i += 1;
                self.nest(|r| {
                    let value = visitor.visit_seq(Seq { r: &mut *r, first: true })?;
                    r.expect(b']', "expected `,` or `]`")?;
                    Ok(value)
                })
            }
            b'-' | b'0'..=b'9' => self.visit_number(visitor),
            b't' => {
                self.literal(b"true")?;
                visitor.visit_bool(true)
            }
            b'f' => {
                self.literal(b"false")?;
                visitor.visit_bool(false)
            }
            b'n' => {
                self.literal(b"null")?;
                visitor.visit_unit()
            }
            _ => self.err("expected value"),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if self.peek()? == b'n' {
            self.literal(b"null")?;
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.skip()?;
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, name: &'static str, visitor: V) -> Result<V::Value, Error> {
        if name == RAW_VALUE_TOKEN {
            self.ws();
            let start = self.i;
            self.skip()?;
            return visitor.visit_map(RawMap { raw: Some(&self.s[start..self.i]) });
        }
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.peek()? {
            b'"' => match self.string()? {
                Str::Borrowed(s) => visitor.visit_enum(s.into_deserializer()),
                Str::Copied(s) => visitor.visit_enum(s.to_owned().into_deserializer()),
            },
            b'{' => {
                self.i += 1;
                self.nest(|r| {
                    let value =
                        visitor.visit_enum(de::value::MapAccessDeserializer::new(Map { r: &mut *r, first: true }))?;
                    r.expect(b'}', "expected `}`")?;
                    Ok(value)
                })
            }
            _ => self.err("expected value"),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map struct identifier
    }
}

struct Map<'a, 'de> {
    r: &'a mut Reader<'de>,
    first: bool,
}

impl<'de> MapAccess<'de> for Map<'_, 'de> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Error> {
        let r = &mut *self.r;
        match r.ws() {
            Some(b'}') => return Ok(None),
            Some(b',') if !self.first => {
                r.i += 1;
                r.ws();
            }
            Some(_) if self.first => {}
            Some(_) => return r.err("expected `,` or `}`"),
            None => return r.err("EOF while parsing an object"),
        }
        self.first = false;
        if r.b.get(r.i) != Some(&b'"') {
            return r.err(if r.i >= r.b.len() { "EOF while parsing an object" } else { "key must be a string" });
        }
        seed.deserialize(&mut *r).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        self.r.expect(b':', "expected `:`")?;
        seed.deserialize(&mut *self.r)
    }
}

struct Seq<'a, 'de> {
    r: &'a mut Reader<'de>,
    first: bool,
}

impl<'de> SeqAccess<'de> for Seq<'_, 'de> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, Error> {
        let r = &mut *self.r;
        match r.ws() {
            Some(b']') => return Ok(None),
            Some(b',') if !self.first => r.i += 1,
            Some(_) if self.first => {}
            Some(_) => return r.err("expected `,` or `]`"),
            None => return r.err("EOF while parsing a list"),
        }
        self.first = false;
        seed.deserialize(&mut *r).map(Some)
    }
}

/// The one-entry map `RawValue` asks for: its token, then the raw text.
struct RawMap<'de> {
    raw: Option<&'de str>,
}

impl<'de> MapAccess<'de> for RawMap<'de> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Error> {
        if self.raw.is_none() {
            return Ok(None);
        }
        seed.deserialize(de::value::BorrowedStrDeserializer::new(RAW_VALUE_TOKEN)).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let raw = self.raw.take().ok_or_else(|| Error::new("raw value read twice"))?;
        seed.deserialize(de::value::BorrowedStrDeserializer::new(raw))
    }
}

#[cfg(test)]
mod tests;
