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

/// The rules read the obvious way (line by line, word by word, `str::contains`):
/// the one-pass scanner must make the same set.
fn reference(text: &str) -> TokenSet {
    let mut b = Builder::default();
    for line in text.split('\n') {
        let head = &line[..cut(line, LINE_MAX)];
        let error = ERROR_WORDS.iter().any(|w| {
            let cap = w[..1].to_ascii_uppercase() + &w[1..];
            head.contains(w) || head.contains(&cap) || head.contains(&w.to_ascii_uppercase())
        });
        for word in line.split(|c: char| !(c.is_ascii_alphanumeric() || "_./-:".contains(c))) {
            let plain = word.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && word.chars().skip(1).all(|c| c.is_ascii_lowercase());
            if !word.is_empty() && !plain {
                let w = &word[..word.len().min(WORD_MAX)];
                let all = w.bytes().fold(0, |a, c| a | CLASS[usize::from(c)]);
                b.word(w, all);
            }
        }
        b.end_line(line, error);
    }
    b.shrink();
    TokenSet(b.tokens)
}

#[test]
fn the_scanner_follows_the_rules_on_real_and_random_text() {
    let mut texts: Vec<String> = Vec::new();
    for path in crate::research::testing::real_files() {
        let raw = std::fs::read_to_string(&path).unwrap();
        // Each line's JSON text stands for a text: code, paths, errors, prose.
        texts.extend(raw.lines().map(|l| l.replace("\\n", "\n")));
    }
    // Random text from pieces that meet the rules' edges.
    let pieces = [
        "a",
        "Z",
        "_",
        ".",
        "/",
        "-",
        ":",
        "0",
        "42",
        "1234",
        "error",
        "Error",
        "ERROR",
        "eRROR",
        "Failed",
        "FAILED",
        "panicked",
        "Exception",
        "traceback",
        "TypeError",
        " ",
        "\n",
        "é",
        "src/lib.rs",
        "fooBar",
        "x".repeat(190).leak(),
        "(",
        "\"",
    ];
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    for _ in 0..3000 {
        let mut t = String::new();
        for _ in 0..(seed % 40) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            t.push_str(pieces[(seed % pieces.len() as u64) as usize]);
        }
        seed = seed.wrapping_add(1);
        texts.push(t);
    }
    assert!(texts.len() > 5_000, "{} texts", texts.len());
    for t in &texts {
        assert_eq!(TokenSet::of(t), reference(t), "text: {t:?}");
    }
}

/// Every byte value in every lane, among neighbours of every kind (high bytes
/// included: no carry may cross a lane).
#[test]
fn special_finds_exactly_the_bytes_a_token_needs() {
    let want = |c: u8| CLASS[usize::from(c)] & (DIGIT | UNDERSCORE | PATH_SEP | UPPER) != 0;
    for c in 0..=255u8 {
        for lane in 0..8 {
            for fill in [0u8, b'a', b'Z', b'9', 0x7f, 0x80, 0xff, b'.', b'_'] {
                let mut bytes = [fill; 8];
                bytes[lane] = c;
                let m = special(u64::from_le_bytes(bytes));
                for (k, byte) in bytes.iter().enumerate() {
                    assert_eq!(m >> (8 * k + 7) & 1 == 1, want(*byte), "byte {byte:#x} in lane {k} of {bytes:x?}");
                }
                assert_eq!(m & !HIGH, 0);
            }
        }
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
