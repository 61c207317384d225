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
/// from the pieces; only a line cut by a piece boundary is copied, to join it.
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
            let error = says_error(&line[..cut(&line, LINE_MAX)]);
            self.line(&line, error);
            line.clear();
            self.pending = line;
            rest = &rest[i + 1..];
        }
        let Some(last) = memchr::memrchr(b'\n', rest.as_bytes()) else {
            self.pending.push_str(rest);
            return;
        };
        // The error words of all the complete lines in one pass; a line reports an error
        // when one lies within its first LINE_MAX bytes.
        let (whole, tail) = (&rest[..last], &rest[last + 1..]);
        let mut hits = ERROR_WORDS.find_iter(whole).map(|m| (m.start(), m.end())).peekable();
        let mut start = 0;
        for line in whole.split('\n') {
            let end = start + cut(line, LINE_MAX);
            let mut error = false;
            while let Some(&(a, b)) = hits.peek() {
                if a >= start + line.len() {
                    break;
                }
                error |= a >= start && b <= end;
                hits.next();
            }
            self.line(line, error);
            start += line.len() + 1;
        }
        self.pending.push_str(tail);
    }

    /// The set of everything pushed.
    pub fn finish(mut self) -> TokenSet {
        let last = std::mem::take(&mut self.pending);
        let error = says_error(&last[..cut(&last, LINE_MAX)]);
        self.line(&last, error);
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

    /// The words of one line, and the line itself when it reports an `error`.
    fn line(&mut self, line: &str, error: bool) {
        let b = line.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if CLASS[usize::from(b[i])] & WORD == 0 {
                i += 1;
                continue;
            }
            let start = i;
            // A word of letters only, lowercase after the first (`the`, `Error`), is none
            // of the kinds: most words of a text, passed over here.
            let mut plain = CLASS[usize::from(b[i])] & LETTER != 0;
            i += 1;
            while i < b.len() && CLASS[usize::from(b[i])] & WORD != 0 {
                plain &= CLASS[usize::from(b[i])] & LOWER != 0;
                i += 1;
            }
            if !plain {
                // Word bytes are ASCII: any cut is a character boundary.
                self.word(&line[start..i.min(start + WORD_MAX)]);
            }
        }
        if error {
            self.add(TokenKind::ErrorLine, line[..cut(line, LINE_MAX)].trim());
        }
    }

    fn word(&mut self, word: &str) {
        let w = word.trim_matches(|c| matches!(c, '.' | ':' | '-'));
        if w.is_empty() {
            return;
        }
        if is_path(w) {
            self.add(TokenKind::Path, w);
        } else {
            for part in w.split(['.', '/', ':', '-']) {
                if is_identifier(part) {
                    self.add(TokenKind::Identifier, part);
                }
            }
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
const LETTER: u8 = 2;
const LOWER: u8 = 4;

/// Byte classes: word bytes (`A–Z a–z 0–9 _ . / - :`), letters, lowercase letters.
static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        if c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'/' | b'-' | b':') {
            t[b] |= WORD;
        }
        if c.is_ascii_alphabetic() {
            t[b] |= LETTER;
        }
        if c.is_ascii_lowercase() {
            t[b] |= LOWER;
        }
        b += 1;
    }
    t
};

/// The error words in lowercase, capitalized and uppercase (matched exactly: a
/// case-sensitive search can use a SIMD prefilter, an insensitive one cannot).
static ERROR_WORDS: std::sync::LazyLock<aho_corasick::AhoCorasick> = std::sync::LazyLock::new(|| {
    let words = ["error", "failed", "panicked", "exception", "traceback"];
    let mut all = Vec::new();
    for w in words {
        all.push(w.to_owned());
        all.push(w[..1].to_ascii_uppercase() + &w[1..]);
        all.push(w.to_ascii_uppercase());
    }
    aho_corasick::AhoCorasick::new(all).expect("fixed patterns")
});

fn is_path(w: &str) -> bool {
    if w.len() < 3 {
        return false;
    }
    if w.contains('/') {
        return w.bytes().any(|b| b.is_ascii_alphanumeric());
    }
    match w.rsplit_once('.') {
        Some((stem, ext)) => {
            !stem.is_empty()
                && (1..=5).contains(&ext.len())
                && ext.bytes().all(|b| b.is_ascii_alphanumeric())
                && ext.bytes().any(|b| b.is_ascii_alphabetic())
                && stem.bytes().any(|b| b.is_ascii_alphabetic())
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

fn says_error(line: &str) -> bool {
    ERROR_WORDS.is_match(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<(TokenKind, u64)> {
        TokenSet::of(text).as_slice().iter().map(|t| (TokenKind::of(*t), *t)).collect()
    }

    fn count(text: &str, kind: TokenKind) -> usize {
        kinds(text).iter().filter(|(k, _)| *k == kind).count()
    }

    #[test]
    fn words_are_paths_identifiers_numbers_or_nothing() {
        assert_eq!(count("see src/lib.rs and Cargo.toml, then ./run", TokenKind::Path), 3);
        assert_eq!(count("the function returns an Error value", TokenKind::Path), 0);
        assert_eq!(count("the function returns an Error value", TokenKind::Identifier), 0);
        assert_eq!(count("parse_line HashMap e2e_test x_y", TokenKind::Identifier), 3, "x_y is too short");
        assert_eq!(count("line 170251 of 42 and v1.2", TokenKind::Number), 1);
        assert_eq!(count("Foo::bar_baz(1)", TokenKind::Identifier), 1);
        assert_eq!(count("version 2.1.39.", TokenKind::Path), 0, "a version is not a file name");
    }

    #[test]
    fn error_lines_are_whole_lines() {
        let t = "compiling\nerror[E0308]: mismatched types\n  --> src/main.rs:4:5\ntest failed\n";
        assert_eq!(count(t, TokenKind::ErrorLine), 2);
        let a = TokenSet::of("x\nerror[E0308]: mismatched types\n");
        let b = TokenSet::of("  error[E0308]: mismatched types  ");
        assert_eq!(a.common(&b).filter(|t| TokenKind::of(*t) == TokenKind::ErrorLine).count(), 1);
    }

    #[test]
    fn pieces_make_the_same_set_as_the_whole() {
        let text = "fn parse_line(bytes: &[u8]) at src/transcript/mod.rs:68\nerror: boom 12345";
        let whole = TokenSet::of(text);
        for cut in 0..text.len() {
            if !text.is_char_boundary(cut) {
                continue;
            }
            let mut b = Builder::default();
            b.push(&text[..cut]);
            b.push(&text[cut..]);
            assert_eq!(b.finish(), whole, "cut at {cut}");
        }
    }

    #[test]
    fn sets_compare_and_stay_bounded() {
        let a = TokenSet::of("src/a.rs parse_line 12345");
        let b = TokenSet::of("edit src/a.rs now");
        assert_eq!(a.common(&b).count(), 1);
        assert_eq!(a.without(&b).len(), 2);
        assert_eq!(a.union(&b).len(), 3);
        let big: String = (0..20_000).map(|i| format!("id_{i} ")).collect();
        assert_eq!(TokenSet::of(&big).len(), MAX_TOKENS);
        // A long text is read at its ends: the middle's tokens are not there.
        let filler = "just plain words here\n".repeat(4000);
        let long = format!("line_0\n{filler}line_5000\n{filler}line_9999\n");
        assert!(long.len() > 2 * SPAN);
        let ends = TokenSet::of_ends(&long);
        assert!(ends.contains(*TokenSet::of("line_0").as_slice().first().unwrap()));
        assert!(ends.contains(*TokenSet::of("line_9999").as_slice().first().unwrap()));
        assert!(!ends.contains(*TokenSet::of("line_5000").as_slice().first().unwrap()));
        assert_eq!(TokenSet::of_ends("a_b c_d"), TokenSet::of("a_b c_d"));
    }
}
