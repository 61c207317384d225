use super::*;
use crate::research::tokens::TokenKind;
use crate::transcript::parse_line;

fn read(line: &str) -> LineFeatures {
    let e = Entry::from_line(&parse_line(line.as_bytes()).unwrap());
    LineFeatures::read(line, &e)
}

#[test]
fn a_prompt_is_user_text_with_its_features() {
    let f = read(
        r#"{"type":"user","message":{"role":"user","content":"Why does cargo test fail in @src/lib.rs?\nerror[E0308]: mismatched types"}}"#,
    );
    let raw = r#""Why does cargo test fail in @src/lib.rs?\nerror[E0308]: mismatched types""#;
    assert_eq!(f.added, vec![(Source::UserText, raw.len() as u64)]);
    let p = f.prompt.unwrap();
    assert!(p.question && p.pasted_error && !p.slash_command && !p.code_block);
    assert_eq!((p.lines, p.file_mentions), (2, 1));
    let f = read(r#"{"type":"user","message":{"role":"user","content":"/review the diff"}}"#);
    assert!(f.prompt.unwrap().slash_command);
    assert_eq!(f.prompt.unwrap().file_mentions, 0, "the command's name is not a file");
    let f = read(r#"{"type":"user","message":{"role":"user","content":"/review src/main.rs"}}"#);
    assert_eq!(f.prompt.unwrap().file_mentions, 1);
    let f =
        read(r#"{"type":"user","isMeta":true,"message":{"role":"user","content":[{"type":"text","text":"caveat"}]}}"#);
    assert_eq!((f.added.clone(), f.prompt), (vec![(Source::Meta, 8)], None));
}

#[test]
fn tool_calls_and_results_have_sizes_hashes_and_tokens() {
    let call = r#"{"type":"assistant","requestId":"r","message":{"id":"m","model":"x","content":[{"type":"text","text":"Running the tests for parse_line."},{"type":"tool_use","id":"t1","name":"Bash","input":{"command":"cd app && cargo test -q"}}],"usage":{}}}"#;
    let f = read(call);
    assert_eq!(f.tool_uses.len(), 1);
    let u = &f.tool_uses[0];
    assert!(u.test_command);
    assert_eq!(u.input_bytes, r#"{"command":"cd app && cargo test -q"}"#.len() as u64);
    assert_eq!(f.added(Source::AssistantOutput), u.input_bytes + r#""Running the tests for parse_line.""#.len() as u64);
    assert_eq!(f.reply.len(), 1, "parse_line");
    let again = read(call);
    assert_eq!(again.tool_uses[0].input_hash, u.input_hash);

    let result = r#"{"type":"user","message":{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","is_error":true,"content":[{"type":"text","text":"test result: FAILED. 3 passed; 1 failed\nthread 'x' panicked at src/a.rs:10:5"}]}]}}"#;
    let f = read(result);
    assert!(f.added.is_empty(), "tool results are counted by their tool, not as user text");
    let r = &f.tool_results[0];
    assert!(r.is_error && r.says_fail && r.says_pass);
    let kinds: Vec<TokenKind> = r.tokens.as_slice().iter().map(|t| TokenKind::of(*t)).collect();
    assert!(kinds.contains(&TokenKind::Path) && kinds.contains(&TokenKind::ErrorLine), "{kinds:?}");
    assert_eq!(f.prompt, None);
}

#[test]
fn test_commands_are_recognised_by_their_words() {
    for yes in [
        "cargo test",
        "npm test",
        "npx jest --ci",
        "python -m pytest -x",
        "go test ./...",
        "make test",
        "cargo nextest run",
    ] {
        assert!(is_test_command(yes), "{yes}");
    }
    for no in ["cargo build", "cat test.txt", "grep -r test src", "npm install", "ls tests/"] {
        assert!(!is_test_command(no), "{no}");
    }
}

#[test]
fn other_lines_add_what_they_are() {
    let f = read(r#"{"type":"attachment","attachment":{"type":"hook_success","stdout":"ok"}}"#);
    assert_eq!(f.added, vec![(Source::Attachment, r#"{"type":"hook_success","stdout":"ok"}"#.len() as u64)]);
    let f = read(r#"{"type":"system","subtype":"turn_duration","durationMs":5}"#);
    assert_eq!(f, LineFeatures::default());
    let f = read(
        r#"{"type":"system","subtype":"compact_boundary","version":"2.1.39","compactMetadata":{"trigger":"auto","preTokens":5}}"#,
    );
    assert_eq!(f.version.as_deref(), Some("2.1.39"));
}

#[test]
fn a_count_of_zero_is_not_a_pass_or_a_failure() {
    assert!(says_pass("test result: ok. 5 passed; 0 failed; 0 ignored"));
    assert!(!says_fail("test result: ok. 5 passed; 0 failed; 0 ignored"));
    assert!(!says_fail("===== 12 passed, 0 failed in 0.3s ====="));
    assert!(
        says_fail("4 passed; 10 failed") && says_fail("build failed") && says_fail("test result: FAILED. 0 passed")
    );
    assert!(!says_pass("0 passed; 3 failed") && says_pass("10 passed"));
}

#[test]
fn a_correction_starts_with_a_word_or_phrase_that_undoes() {
    for yes in [
        "No, use the other file",
        "no.",
        "Actually, keep the old name",
        "Wait! that breaks the build",
        "Don’t touch the tests",
        "dont",
        "That's wrong: it should be 4096",
        "that is not what I asked",
        "It still fails",
        "Revert that",
        "undo the last edit",
        "Instead, write a test first",
    ] {
        assert!(is_correction(yes), "{yes}");
    }
    for no in ["Now run the tests", "Notice the header", "Stopwatch is a crate", "still_ok is a name", "Fix it", ""] {
        assert!(!is_correction(no), "{no}");
    }
    let f = read(r#"{"type":"user","message":{"role":"user","content":"No, the other test"}}"#);
    assert!(f.prompt.unwrap().correction);
    let f = read(r#"{"type":"user","message":{"role":"user","content":"Run the other test"}}"#);
    assert!(!f.prompt.unwrap().correction);
}
