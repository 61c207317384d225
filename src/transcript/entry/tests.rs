//! Unit tests of a line's facts: timestamps, prompts, synthetic error replies,
//! captured content, usage at its bounds, compaction boundaries.

use super::*;
use crate::transcript::parse_line;

#[test]
fn timestamps_parse_to_epoch_millis() {
    assert_eq!(parse_timestamp("1970-01-01T00:00:00Z"), Some(0));
    assert_eq!(parse_timestamp("2025-11-13T11:21:46.951Z"), Some(1_763_032_906_951));
    assert_eq!(parse_timestamp("2025-11-13T12:21:46.9+01:00"), Some(1_763_032_906_900));
    assert_eq!(parse_timestamp("2024-02-29T00:00:00.000Z"), Some(1_709_164_800_000));
    assert_eq!(parse_timestamp("yesterday"), None);
    assert_eq!(parse_timestamp("2025-13-01T00:00:00Z"), None);
}

fn entry(json: &str) -> Entry {
    Entry::from_line(&parse_line(json.as_bytes()).unwrap())
}

#[test]
fn prompts_exclude_tool_results_meta_and_command_output() {
    assert!(entry(r#"{"type":"user","message":{"content":"fix the bug"}}"#).prompt);
    assert!(entry(r#"{"type":"user","message":{"content":[{"type":"text","text":"hi"}]}}"#).prompt);
    assert!(!entry(r#"{"type":"user","isMeta":true,"message":{"content":"caveat"}}"#).prompt);
    assert!(!entry(r#"{"type":"user","isSidechain":true,"message":{"content":"task prompt"}}"#).prompt);
    assert!(!entry(r#"{"type":"user","message":{"content":"<local-command-stdout>x</local-command-stdout>"}}"#).prompt);
    assert!(
        !entry(r#"{"type":"user","message":{"content":[{"type":"text","text":"[Request interrupted by user]"}]}}"#)
            .prompt
    );
    let r = entry(
        r#"{"type":"user","message":{"content":[{"type":"tool_result","tool_use_id":"t1","is_error":true,"content":"boom"}]}}"#,
    );
    assert!(!r.prompt);
    assert_eq!(
        r.tool_results,
        vec![ToolResult { tool_use_id: "t1".into(), is_error: true, bytes: 6 }],
        "\"boom\" is 6 bytes"
    );
}

#[test]
fn synthetic_replies_are_errors_not_usage() {
    let e = entry(
        r#"{"type":"assistant","isApiErrorMessage":true,"message":{"id":"x","model":"<synthetic>","usage":{"input_tokens":0},"content":[{"type":"text","text":"API Error: 529 {\"type\":\"overloaded_error\"}"}]}}"#,
    );
    assert_eq!(e.api_error, Some(ApiError::Overloaded));
    assert!(e.response.is_none());
    let limit = entry(
        r#"{"type":"assistant","message":{"id":"y","model":"<synthetic>","content":[{"type":"text","text":"Claude AI usage limit reached|1700000000"}]},"isApiErrorMessage":true}"#,
    );
    assert_eq!(limit.api_error, Some(ApiError::RateLimit));
    let fabricated = entry(
        r#"{"type":"assistant","message":{"id":"z","model":"<synthetic>","content":[{"type":"text","text":"No response requested."}]}}"#,
    );
    assert_eq!(fabricated.api_error, None);
    assert!(fabricated.response.is_none());
}

#[test]
fn usage_at_its_bounds_is_counted_exactly() {
    use crate::transcript::{MAX_OUTPUT_TOKENS, MAX_PROMPT_TOKENS};
    let line = format!(
        r#"{{"type":"assistant","message":{{"id":"m","model":"claude-opus-4-6","usage":{{"input_tokens":{p},"output_tokens":{o},"cache_creation_input_tokens":{p},"cache_read_input_tokens":{p},"cache_creation":{{"ephemeral_1h_input_tokens":{p}}}}}}}}}"#,
        p = MAX_PROMPT_TOKENS,
        o = MAX_OUTPUT_TOKENS
    );
    let t = entry(&line).response.unwrap().tokens;
    let p = MAX_PROMPT_TOKENS;
    let want = Tokens { input: p, output: MAX_OUTPUT_TOKENS, cache_creation: p, cache_creation_1h: p, cache_read: p };
    assert_eq!(t, want);
    assert_eq!(t.prompt(), 3 * p);
}

#[test]
fn compaction_boundary_is_read() {
    let e = entry(
        r#"{"type":"system","subtype":"compact_boundary","compactMetadata":{"trigger":"manual","preTokens":142431}}"#,
    );
    assert_eq!(
        e.compaction.as_deref(),
        Some(&Compaction { manual: true, pre_tokens: Some(142_431), post_tokens: None })
    );
}
