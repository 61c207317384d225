//! Salient tokens: the parts of a text that can show that one text was used in another.
//!
//! In: text (a tool result, an assistant reply, a tool input), in pieces. Out: a
//! [`TokenSet`]: sorted, distinct 64-bit hashes, each tagged with its [`TokenKind`].
//! The text itself is not kept; only hashes leave this module, and they stay in memory.
//!
//! The rules (documented in `docs/research.md`, tested below):
//! - a **word** is a maximal run of `A–Z a–z 0–9 _ . / - :` (other bytes end it), with
//!   the leading and trailing `. : -` trimmed;
//! - a word with a `/`, or ending in `.ext` (1 to 5 letters or digits after the last
//!   dot, with something before it) is a **path** (`src/lib.rs`, `Cargo.toml`);
//! - otherwise, split at `.`, `/`, `:` and `-`, each part that starts with a letter or
//!   `_`, is at least 4 long and has a `_`, a digit, or an uppercase letter after a
//!   lowercase one is an **identifier** (`parse_line`, `HashMap`, `e2e_test`): plain
//!   words (`the`, `Error`, `function`) are not, since any reply has them;
//! - a run of at least 3 digits is a **number** (`4096`, `170251`), also inside words;
//! - a line (up to 200 bytes, trimmed) that says `error`, `failed`, `panicked`,
//!   `exception` or `traceback` (in lowercase, capitalized or uppercase) is an **error line**.
//!
//! Tool results and tool inputs are read at their ends only when long: the first and the
//! last [`SPAN`] bytes (32 KiB, each cut at a line end), so that a large file read or
//! written costs a bounded time; what a model picks out of the middle of a long output
//! is not seen.
//!
//! At most [`MAX_TOKENS`] distinct tokens are kept per text, those with the smallest
//! tagged hashes (paths first, then identifiers, numbers, error lines; within a kind, a
//! sample that is the same for every text, so two capped sets still meet on the tokens
//! they share), so that a megabyte of output costs a bounded set.

/// Distinct tokens kept per text at most.
pub const MAX_TOKENS: usize = 4096;
/// [`TokenSet::of_ends`] reads this many bytes at each end of a long text.
pub const SPAN: usize = 32 << 10;

/// What a token is; its weight in the influence score is documented with the score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    /// A file path or file name.
    Path,
    /// A code identifier (snake_case, camelCase, with digits).
    Identifier,
    /// A number of 3 digits or more.
    Number,
    /// A whole line that reports an error.
    ErrorLine,
}

impl TokenKind {
    const ALL: [TokenKind; 4] = [TokenKind::Path, TokenKind::Identifier, TokenKind::Number, TokenKind::ErrorLine];

    fn tag(self) -> u64 {
        match self {
            TokenKind::Path => 0,
            TokenKind::Identifier => 1,
            TokenKind::Number => 2,
            TokenKind::ErrorLine => 3,
        }
    }

    /// The kind a token's hash carries.
    pub fn of(token: u64) -> TokenKind {
        TokenKind::ALL[(token >> 62) as usize]
    }
}

/// Sorted, distinct token hashes; the top two bits of each say its [`TokenKind`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenSet(Vec<u64>);

impl TokenSet {
    /// The salient tokens of `text`.
    pub fn of(text: &str) -> TokenSet {
        let mut b = Builder::default();
        b.push(text);
        b.finish()
    }

    /// The salient tokens of the first and the last [`SPAN`] bytes of `text` (of all of
    /// it when it is not longer than two spans), each part cut at a line end.
    pub fn of_ends(text: &str) -> TokenSet {
        if text.len() <= 2 * SPAN {
            return TokenSet::of(text);
        }
        let head = &text[..cut(text, SPAN)];
        let head = head.rfind('\n').map_or(head, |i| &head[..i]);
        let mut from = text.len() - SPAN;
        while !text.is_char_boundary(from) {
            from += 1;
        }
        let tail = &text[from..];
        let tail = tail.find('\n').map_or(tail, |i| &tail[i + 1..]);
        let mut b = Builder::default();
        b.push(head);
        b.push("\n");
        b.push(tail);
        b.finish()
    }

    /// The hashes, sorted.
    pub fn as_slice(&self) -> &[u64] {
        &self.0
    }

    /// How many tokens.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// No tokens.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `token` is in the set.
    pub fn contains(&self, token: u64) -> bool {
        self.0.binary_search(&token).is_ok()
    }

    /// The tokens of `self` that are also in `other`.
    pub fn common<'a>(&'a self, other: &'a TokenSet) -> impl Iterator<Item = u64> + 'a {
        self.0.iter().copied().filter(|t| other.contains(*t))
    }

    /// `self` without the tokens of `other`.
    pub fn without(&self, other: &TokenSet) -> TokenSet {
        TokenSet(self.0.iter().copied().filter(|t| !other.contains(*t)).collect())
    }

    /// Both sets' tokens.
    pub fn union(&self, other: &TokenSet) -> TokenSet {
        let mut v: Vec<u64> = self.0.iter().chain(&other.0).copied().collect();
        v.sort_unstable();
        v.dedup();
        TokenSet(v)
    }
}

/// Builds a [`TokenSet`] from text given in pieces (as JSON unescaping hands it on).
///
/// Text is read a line at a time (no word or error line spans a line end), straight
/// from the pieces; only a line cut by a piece boundary is copied, to join it. The
/// complete lines of a piece are read twice, quickly: once for the few words that can be
/// tokens, once for the error words.
#[derive(Debug, Default)]
pub struct Builder {
    tokens: Vec<u64>,
    /// The start of a line whose end is in a later piece.
    pending: String,
}

const LINE_MAX: usize = 200;
const WORD_MAX: usize = 512;

impl Builder {
    /// Read the next piece of the text.
    pub fn push(&mut self, piece: &str) {
        let mut rest = piece;
        if !self.pending.is_empty() {
            let Some(i) = memchr::memchr(b'\n', rest.as_bytes()) else {
                self.pending.push_str(rest);
                return;
            };
            let mut line = std::mem::take(&mut self.pending);
            line.push_str(&rest[..i]);
            self.lines(&line);
            line.clear();
            self.pending = line;
            rest = &rest[i + 1..];
        }
        let Some(last) = memchr::memrchr(b'\n', rest.as_bytes()) else {
            self.pending.push_str(rest);
            return;
        };
        self.lines(&rest[..last]);
        self.pending.push_str(&rest[last + 1..]);
    }

    /// The set of everything pushed.
    pub fn finish(mut self) -> TokenSet {
        let last = std::mem::take(&mut self.pending);
        self.lines(&last);
        self.shrink();
        TokenSet(self.tokens)
    }

    /// Sorted, distinct, and at most [`MAX_TOKENS`]: the smallest hashes stay.
    fn shrink(&mut self) {
        self.tokens.sort_unstable();
        self.tokens.dedup();
        self.tokens.truncate(MAX_TOKENS);
    }

    fn add(&mut self, kind: TokenKind, text: &str) {
        if self.tokens.len() >= MAX_TOKENS * 2 {
            self.shrink();
        }
        let h = hash(text) >> 2;
        self.tokens.push(h | (kind.tag() << 62));
    }

    /// Whole lines (`text` starts and ends where a line does): their words, and each
    /// line itself when it reports an error.
    fn lines(&mut self, text: &str) {
        self.words(text);
        self.error_lines(text);
    }

    /// The words that can be tokens. Most words of a text are letters only, lowercase
    /// after the first (`the`, `Error`), and none of the kinds: a word can be a token only
    /// when it holds a digit, `_`, `.`, `/` or an uppercase letter. So the text is read
    /// eight bytes at a time for those bytes alone ([`special`]), and only the word
    /// around each one found is read byte by byte.
    fn words(&mut self, text: &str) {
        let b = text.as_bytes();
        let n = b.len();
        let mut i = 0;
        while i < n {
            let mut block = [0u8; 8];
            let m = if i + 8 <= n {
                special(u64::from_le_bytes(b[i..i + 8].try_into().expect("eight bytes")))
            } else {
                // The last bytes, padded with zeros (no word byte).
                block[..n - i].copy_from_slice(&b[i..]);
                special(u64::from_le_bytes(block))
            };
            if m == 0 {
                i += 8;
                continue;
            }
            // The word around the byte found: back to its start (the bytes before it were
            // passed over, and no earlier word reaches it), then on to its end, with the
            // classes of its first byte and of the rest.
            let p = i + (m.trailing_zeros() / 8) as usize;
            let (mut start, mut first, mut rest) = (p, CLASS[usize::from(b[p])], 0);
            while start > 0 {
                let c = CLASS[usize::from(b[start - 1])];
                if c & WORD == 0 {
                    break;
                }
                (start, first, rest) = (start - 1, c, rest | first);
            }
            let mut end = p + 1;
            while end < n {
                let c = CLASS[usize::from(b[end])];
                if c & WORD == 0 {
                    break;
                }
                (end, rest) = (end + 1, rest | c);
            }
            self.scan_word(&text[start..end], first, rest);
            i = end;
        }
    }

    /// A whole word (a maximal run of word bytes) with the classes of its first byte and
    /// of the others: its tokens, if it can have any. A word of letters only, lowercase
    /// after the first, is none of the kinds; nor is one with no digit, `_`, `.`, `/` and
    /// not both cases (`ERROR`, `a-b`).
    fn scan_word(&mut self, word: &str, first: u8, rest: u8) {
        let all = first | rest;
        let plain = first & (LOWER | UPPER) != 0 && rest & !(WORD | LOWER) == 0;
        // A lowercase-to-uppercase step needs both cases; `word` looks for it.
        let mixed = all & LOWER != 0 && all & UPPER != 0;
        if !plain && (mixed || all & (DIGIT | UNDERSCORE | PATH_SEP) != 0) {
            // Word bytes are ASCII: any cut is a character boundary.
            self.word(&word[..word.len().min(WORD_MAX)], all);
        }
    }

    /// The lines whose first [`LINE_MAX`] bytes hold an error word, found by a search for
    /// the words themselves (they are rare). Error words never overlap one another, so
    /// the leftmost match is also the one that ends first: when it ends beyond the
    /// line's first `LINE_MAX` bytes, no other in that line can qualify.
    fn error_lines(&mut self, text: &str) {
        let b = text.as_bytes();
        let n = b.len();
        let mut from = 0;
        while let Some(m) = ERRORS.find(aho_corasick::Input::new(b).span(from..n)) {
            let low = m.start().saturating_sub(LINE_MAX);
            let line_start = match memchr::memrchr(b'\n', &b[low..m.start()]) {
                Some(q) => Some(low + q + 1),
                None if low == 0 => Some(0),
                None => None,
            };
            let line_end = memchr::memchr(b'\n', &b[m.end()..]).map_or(n, |q| m.end() + q);
            if let Some(ls) = line_start.filter(|ls| m.end() <= ls + LINE_MAX) {
                self.end_line(&text[ls..line_end], true);
            }
            if line_end >= n {
                break;
            }
            from = line_end + 1;
        }
    }

    /// A line's end: the line is a token when it reports an `error`.
    fn end_line(&mut self, line: &str, error: bool) {
        if error {
            self.add(TokenKind::ErrorLine, line[..cut(line, LINE_MAX)].trim());
        }
    }

    /// A word's tokens; `all` has the class bits of its bytes.
    fn word(&mut self, word: &str, all: u8) {
        let b = word.as_bytes();
        let (mut s, mut e) = (0, b.len());
        while s < e && matches!(b[s], b'.' | b':' | b'-') {
            s += 1;
        }
        while e > s && matches!(b[e - 1], b'.' | b':' | b'-') {
            e -= 1;
        }
        if s == e {
            return;
        }
        let w = &word[s..e];
        if all & PATH_SEP != 0 && is_path(w) {
            self.add(TokenKind::Path, w);
        } else if all & (UNDERSCORE | DIGIT | UPPER) != 0 {
            // An identifier needs a `_`, a digit or an uppercase letter.
            let wb = w.as_bytes();
            let mut from = 0;
            for k in 0..=wb.len() {
                if k == wb.len() || matches!(wb[k], b'.' | b'/' | b':' | b'-') {
                    if is_identifier(&w[from..k]) {
                        self.add(TokenKind::Identifier, &w[from..k]);
                    }
                    from = k + 1;
                }
            }
        }
        if all & DIGIT == 0 {
            return;
        }
        let bytes = w.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i].is_ascii_digit() {
                let start = i;
                while i < bytes.len() && bytes[i].is_ascii_digit() {
                    i += 1;
                }
                if i - start >= 3 {
                    self.add(TokenKind::Number, &w[start..i]);
                }
            } else {
                i += 1;
            }
        }
    }
}

/// A token's hash: eight bytes a step, then mixed (murmur3's finalizer) so that the
/// smallest hashes are an even sample. In memory only, never persisted.
fn hash(text: &str) -> u64 {
    use std::hash::Hasher;
    let mut h = crate::transcript::identity::FastHasher::default();
    h.write(text.as_bytes());
    let mut x = h.finish();
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn cut(s: &str, max: usize) -> usize {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    end
}

const WORD: u8 = 1;
const LOWER: u8 = 2;
const UPPER: u8 = 4;
const DIGIT: u8 = 8;
const UNDERSCORE: u8 = 16;
const PATH_SEP: u8 = 32;

/// Byte classes: word bytes (`A–Z a–z 0–9 _ . / - :`), lowercase and uppercase letters,
/// digits, `_`, and the path separators `.` and `/`.
static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        if c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'/' | b'-' | b':') {
            t[b] |= WORD;
        }
        if c.is_ascii_lowercase() {
            t[b] |= LOWER;
        }
        if c.is_ascii_uppercase() {
            t[b] |= UPPER;
        }
        if c.is_ascii_digit() {
            t[b] |= DIGIT;
        }
        if c == b'_' {
            t[b] |= UNDERSCORE;
        }
        if c == b'.' || c == b'/' {
            t[b] |= PATH_SEP;
        }
        b += 1;
    }
    t
};

/// The error words in lowercase, capitalized and uppercase (matched exactly, as
/// parts of a word: `TypeError`, `errors`, `FAILED`).
const ERROR_WORDS: [&str; 5] = ["error", "failed", "panicked", "exception", "traceback"];

/// A search for the error words in their three cases.
static ERRORS: std::sync::LazyLock<aho_corasick::AhoCorasick> = std::sync::LazyLock::new(|| {
    let cased =
        ERROR_WORDS.iter().flat_map(|w| [w.to_string(), w[..1].to_ascii_uppercase() + &w[1..], w.to_ascii_uppercase()]);
    aho_corasick::AhoCorasick::builder()
        .match_kind(aho_corasick::MatchKind::LeftmostFirst)
        .build(cased)
        .expect("fixed patterns")
});

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// The high bit of each byte of `x` that is a digit, `_`, `.`, `/` or an uppercase
/// letter: the bytes without which a word is no token (see [`Builder::words`]).
fn special(x: u64) -> u64 {
    // Each byte's low seven bits; sums below cannot carry into the next byte.
    let y = x & !HIGH;
    // The high bit of `y + (0x80 - lo)` says `byte >= lo`, that of `y + (0x7f - hi)` says `byte > hi`.
    let range = |lo: u8, hi: u8| (y + ONES * u64::from(0x80 - lo)) & !(y + ONES * u64::from(0x7f - hi));
    // `.` `/` and the digits are one range (0x2e–0x39); bytes of 0x80 and more are none.
    (range(b'.', b'9') | range(b'A', b'Z') | range(b'_', b'_')) & !x & HIGH
}

fn is_path(w: &str) -> bool {
    let b = w.as_bytes();
    if b.len() < 3 {
        return false;
    }
    if memchr::memchr(b'/', b).is_some() {
        return b.iter().any(|c| c.is_ascii_alphanumeric());
    }
    match memchr::memrchr(b'.', b) {
        Some(dot) => {
            let (stem, ext) = (&b[..dot], &b[dot + 1..]);
            !stem.is_empty()
                && (1..=5).contains(&ext.len())
                && ext.iter().all(|c| c.is_ascii_alphanumeric())
                && ext.iter().any(|c| c.is_ascii_alphabetic())
                && stem.iter().any(|c| c.is_ascii_alphabetic())
        }
        None => false,
    }
}

fn is_identifier(p: &str) -> bool {
    let b = p.as_bytes();
    if b.len() < 4 || !(b[0].is_ascii_alphabetic() || b[0] == b'_') {
        return false;
    }
    let mixed = b.windows(2).any(|w| w[0].is_ascii_lowercase() && w[1].is_ascii_uppercase());
    b.iter().any(|c| *c == b'_' || c.is_ascii_digit()) || mixed
}

#[cfg(test)]
mod tests;
