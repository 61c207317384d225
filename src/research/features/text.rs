//! What a text says, for the features: a test command, test results passing or failing,
//! a prompt's features (counts and flags, never the text).

use super::PromptFeatures;
use crate::research::tokens::{TokenKind, TokenSet};

/// Words that make a `Bash` command a test run: a test runner, or a build tool's test
/// step (`cargo test`, `pytest`, `npm test`, `go test`, `jest`, …).
pub fn is_test_command(command: &str) -> bool {
    const RUNNERS: [&str; 12] = [
        "pytest",
        "jest",
        "vitest",
        "mocha",
        "rspec",
        "phpunit",
        "ctest",
        "tox",
        "nextest",
        "unittest",
        "playwright",
        "cypress",
    ];
    const STEPS: [&str; 11] = ["cargo", "npm", "pnpm", "yarn", "bun", "deno", "go", "make", "mvn", "gradle", "dotnet"];
    let words: Vec<&str> =
        command.split(|c: char| c.is_whitespace() || matches!(c, ';' | '&' | '|' | '(' | ')')).collect();
    words.iter().enumerate().any(|(i, w)| {
        let base = w.rsplit('/').next().unwrap_or(w);
        RUNNERS.contains(&base)
            || (STEPS.contains(&base)
                && words[i + 1..].iter().filter(|x| !x.is_empty()).take(2).any(|x| *x == "test" || *x == "tests"))
    })
}

/// Whether a text reports tests passing: `test result: ok`, `N passed`, `PASSED`,
/// `OK (`, `Tests: … passed`, `All tests passed`.
/// `0 passed` does not count.
pub fn says_pass(text: &str) -> bool {
    test_marks(text).0
}

/// Whether a text reports tests failing: `test result: FAILED`, `N failed`, `FAILED`,
/// `FAIL `, `failures:`, `AssertionError`.
/// `0 failed` (cargo's and pytest's summary of a passing run) does not count.
pub fn says_fail(text: &str) -> bool {
    test_marks(text).1
}

/// ([`says_pass`], [`says_fail`]) of `text`, in one pass over it.
pub fn test_marks(text: &str) -> (bool, bool) {
    // `tests passed` and `Tests failed` are ` passed` and ` failed` after a word.
    const PASS: [&str; 5] = ["test result: ok", "PASSED", "OK (", "All tests passed", "passed"];
    const FAIL: [&str; 6] = ["test result: FAILED", "FAILED", "FAIL ", "failures:", "AssertionError", "failed"];
    static MARKS: std::sync::LazyLock<aho_corasick::AhoCorasick> = std::sync::LazyLock::new(|| {
        aho_corasick::AhoCorasick::new(PASS.iter().chain(FAIL.iter())).expect("fixed patterns")
    });
    let (mut pass, mut fail) = (false, false);
    for m in MARKS.find_overlapping_iter(text) {
        let id = m.pattern().as_usize();
        let marker = if id < PASS.len() { PASS[id] } else { FAIL[id - PASS.len()] };
        // ` passed` / ` failed` (after a space) count only after a count that is not zero
        // (or no count). Searched without the space: a pattern that starts with a common
        // byte defeats the search's prefilter.
        if marker == "passed" || marker == "failed" {
            let at = m.start();
            if at == 0 || text.as_bytes()[at - 1] != b' ' || !counted(text, at - 1) {
                continue;
            }
        }
        if id < PASS.len() {
            pass = true;
        } else {
            fail = true;
        }
        if pass && fail {
            break;
        }
    }
    (pass, fail)
}

/// Whether the marker at `at` is not right after a count of zero (`0 failed`).
fn counted(text: &str, at: usize) -> bool {
    let before = text[..at].trim_end_matches(|c: char| c.is_ascii_digit());
    let digits = &text[before.len()..at];
    digits.is_empty() || digits.bytes().any(|b| b != b'0')
}

/// Features of a prompt made of the texts `parts` (the first 256 KiB of them).
pub(super) fn prompt_features(parts: &[&str]) -> Option<PromptFeatures> {
    let mut text = String::new();
    for p in parts {
        if !text.is_empty() {
            text.push('\n');
        }
        if text.len() < 256 << 10 {
            text.push_str(p);
        }
    }
    let t = text.trim();
    if t.is_empty() {
        return None;
    }
    const QUESTION_WORDS: [&str; 15] = [
        "what", "why", "how", "when", "where", "which", "who", "can", "could", "should", "is", "are", "does", "do",
        "would",
    ];
    let first = t.split_whitespace().next().unwrap_or("").trim_end_matches([',', ':']).to_ascii_lowercase();
    let mentions = t.split_whitespace().filter(|w| w.starts_with('@') && w.len() > 1).count() as u64;
    // A slash command's own name (`/review`) is not a file.
    let body = if t.starts_with('/') { t.split_once(char::is_whitespace).map_or("", |(_, rest)| rest) } else { t };
    let paths = TokenSet::of(body).as_slice().iter().filter(|h| TokenKind::of(**h) == TokenKind::Path).count() as u64;
    let frames = t
        .lines()
        .filter(|l| {
            let l = l.trim_start();
            l.starts_with("at ") || l.starts_with("File \"") || l.starts_with("--> ") || l.starts_with("Traceback")
        })
        .count();
    let errors = TokenSet::of(t).as_slice().iter().any(|h| TokenKind::of(*h) == TokenKind::ErrorLine);
    Some(PromptFeatures {
        chars: t.chars().count() as u64,
        lines: t.lines().count() as u64,
        words: t.split_whitespace().count() as u64,
        slash_command: t.starts_with('/') || t.starts_with("<command-name>") || t.starts_with("<command-message>"),
        file_mentions: mentions.max(paths),
        question: t.ends_with('?') || QUESTION_WORDS.contains(&first.as_str()),
        pasted_error: errors || frames > 0,
        code_block: t.contains("```"),
        correction: is_correction(t),
    })
}

/// Whether a prompt reads as a correction of the turn before: its first word (lowercase,
/// `’` read as `'`, trailing `, . ! : ;` dropped) is `no`, `nope`, `not`, `actually`,
/// `wait`, `stop`, `instead`, `revert`, `undo`, `don't`, `dont` or `wrong`, or it starts
/// with `that's wrong`, `that is wrong`, `that's not`, `that is not`, `this is wrong`,
/// `this is not`, `it still` or `still`.
pub fn is_correction(prompt: &str) -> bool {
    const WORDS: [&str; 12] =
        ["no", "nope", "not", "actually", "wait", "stop", "instead", "revert", "undo", "don't", "dont", "wrong"];
    const PHRASES: [&str; 8] = [
        "that's wrong",
        "that is wrong",
        "that's not",
        "that is not",
        "this is wrong",
        "this is not",
        "it still",
        "still",
    ];
    let start: String = prompt.trim_start().chars().take(40).collect::<String>().to_lowercase().replace('’', "'");
    let first = start.split_whitespace().next().unwrap_or("").trim_end_matches([',', '.', '!', ':', ';']);
    WORDS.contains(&first)
        || PHRASES.iter().any(|p| {
            start
                .strip_prefix(p)
                .is_some_and(|rest| rest.chars().next().is_none_or(|c| !(c.is_alphanumeric() || c == '_')))
        })
}
