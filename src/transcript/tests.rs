//! Unit tests of the wire format: borrowing, usage bounds, bad lines, progress
//! lines, long lines read raw, heads of string content.

use super::*;

#[test]
fn assistant_line_borrows_ids_and_skips_content() {
    let l = br#"{"type":"assistant","sessionId":"s1","requestId":"req_1","timestamp":"2025-01-01T00:00:00.000Z","message":{"id":"msg_1","model":"claude-opus-4-6","content":[{"type":"text","text":"hello"},{"type":"tool_use","id":"toolu_1","name":"Task","input":{"subagent_type":"Plan","prompt":"x"}}],"usage":{"input_tokens":3,"output_tokens":5,"cache_creation_input_tokens":7,"cache_read_input_tokens":11,"cache_creation":{"ephemeral_5m_input_tokens":2,"ephemeral_1h_input_tokens":5}}}}"#;
    let line = parse_line(l).unwrap();
    assert!(line.is_known_type());
    let m = line.message.unwrap();
    assert!(matches!(m.id, Some(Text(Cow::Borrowed("msg_1")))));
    let u = m.usage.unwrap();
    assert_eq!(
        (u.input_tokens, u.output_tokens, u.cache_creation_input_tokens, u.cache_read_input_tokens),
        (3, 5, 7, 11)
    );
    assert_eq!(u.cache_creation.unwrap().ephemeral_1h_input_tokens, 5);
    let Content::Blocks(b) = m.content else { panic!("blocks") };
    assert_eq!(b[1].name.as_deref(), Some("Task"));
    assert_eq!(b[1].subagent_type().as_deref(), Some("Plan"));
}

#[test]
fn usage_out_of_range_fails_the_line() {
    let line = |usage: &str| format!(r#"{{"type":"assistant","message":{{"id":"m","usage":{{{usage}}}}}}}"#);
    for bad in [
        r#""input_tokens":9223372036854775808"#,
        r#""input_tokens":18446744073709551615"#,
        r#""input_tokens":-1"#,
        r#""output_tokens":1.5"#,
        r#""output_tokens":1e3"#,
        r#""cache_read_input_tokens":10000001"#,
        r#""cache_creation_input_tokens":10000001"#,
        r#""output_tokens":1000001"#,
        r#""cache_creation":{"ephemeral_1h_input_tokens":10000001}"#,
        r#""input_tokens":"5""#,
    ] {
        assert!(parse_line(line(bad).as_bytes()).is_err(), "{bad}");
    }
    let at_bounds = line(
        r#""input_tokens":10000000,"output_tokens":1000000,"cache_read_input_tokens":10000000,"cache_creation_input_tokens":10000000"#,
    );
    let u = parse_line(at_bounds.as_bytes()).unwrap().message.unwrap().usage.unwrap();
    assert_eq!((u.input_tokens, u.output_tokens, u.cache_read_input_tokens), (10_000_000, 1_000_000, 10_000_000));
    let compact =
        |n: &str| format!(r#"{{"type":"system","subtype":"compact_boundary","compactMetadata":{{"preTokens":{n}}}}}"#);
    assert!(parse_line(compact("9223372036854775808").as_bytes()).is_err());
    assert_eq!(parse_line(compact("167094").as_bytes()).unwrap().compact_metadata.unwrap().pre_tokens, Some(167_094));
}

#[test]
fn bad_lines_fail_alone() {
    assert!(matches!(parse_line(b"{\"type\":\"user\""), Err(ParseError::Json { .. })));
    assert!(matches!(parse_line(b"{\"type\":\"us\xffer\"}"), Err(ParseError::Json { .. })));
    assert!(matches!(parse_line(b"\x00\x01\x02\xfe\xff"), Err(ParseError::Json { .. })));
    assert!(matches!(parse_line(b"[1,2]"), Err(ParseError::Json { .. })));
    let unknown = parse_line(br#"{"type":"brand-new","x":1}"#).unwrap();
    assert!(!unknown.is_known_type());
}

#[test]
fn progress_lines_are_recognised_without_parsing_data() {
    let l = br#"{"parentUuid":"p","isSidechain":false,"cwd":"/w","sessionId":"s-1","type":"progress","data":{"type":"agent_progress","message":{"type":"assistant","timestamp":"2020-01-01T00:00:00Z","message":{"usage":{"input_tokens":5}}}},"uuid":"u","timestamp":"2026-02-12T20:30:28.504Z"}"#;
    let h = progress_head(l).unwrap();
    assert_eq!(h, ProgressHead { session_id: Some("s-1"), timestamp: Some("2026-02-12T20:30:28.504Z") });
    // A nested object before the type: not trusted, parsed fully instead.
    assert!(progress_head(br#"{"data":{"x":1},"type":"progress","sessionId":"s"}"#).is_none());
    // The pattern inside a string is escaped and does not match.
    assert!(progress_head(br#"{"type":"user","text":""type":"progress""}"#).is_none());
    assert!(progress_head(br#"{"type":"assistant"}"#).is_none());
}

#[test]
fn long_lines_read_string_content_raw_with_the_same_result() {
    let pad = "p".repeat(LONG_LINE);
    for content in [
        r#""h\u00e9llo \"w\u00f6rld\"\n\t\ud83d\ude00 \/ \\ end of a long enough head, and then some more""#,
        r#""Warmup""#,
        r#""""#,
        r#""\u003clocal-command-stdout>x""#,
        r#"null"#,
        r#"[{"type":"text","text":"a"}]"#,
    ] {
        let short = format!(r#"{{"type":"user","message":{{"content":{content}}}}}"#);
        let long = format!(r#"{{"type":"user","pad":"{pad}","message":{{"content":{content}}}}}"#);
        let (a, b) = (parse_line(short.as_bytes()).unwrap(), parse_line(long.as_bytes()).unwrap());
        // The same message; a long line's string content also has its raw JSON.
        let view = |m: Option<Message<'_>>| match m.map(|m| m.content) {
            Some(Content::Text(t)) => format!("{:?} {} {:?}", t.head, t.json_len, t.text),
            other => format!("{other:?}"),
        };
        assert_eq!(view(a.message), view(b.message), "{content}");
    }
    for bad in [r#""lone \ud800""#, r#""bad \x""#, "7"] {
        let short = format!(r#"{{"type":"user","message":{{"content":{bad}}}}}"#);
        let long = format!(r#"{{"type":"user","pad":"{pad}","message":{{"content":{bad}}}}}"#);
        assert!(parse_line(short.as_bytes()).is_err() && parse_line(long.as_bytes()).is_err(), "{bad}");
    }
    assert!(!RAW_STRINGS.get(), "reset after a long line");
}

#[test]
fn string_content_keeps_only_its_head() {
    let long = format!(r#"{{"type":"user","message":{{"role":"user","content":"{}"}}}}"#, "é".repeat(100));
    let line = parse_line(long.as_bytes()).unwrap();
    let Content::Text(t) = line.message.unwrap().content else { panic!("text") };
    assert!(t.head.as_str().len() <= Head::LEN && t.head.starts_with("é"));
    let block = parse_line(br#"{"type":"user","message":{"content":[{"type":"text","text":"Warmup"}]}}"#).unwrap();
    let Content::Blocks(b) = block.message.unwrap().content else { panic!("blocks") };
    assert_eq!(b[0].text.unwrap().head().as_str(), "Warmup");
}

#[test]
fn invalid_utf8_in_skipped_content_is_read_as_before_and_in_a_read_field_fails() {
    // A valid line goes the `str` way; the same line with a stray byte in text we
    // skip goes the bytes way and must mean the same.
    let valid = br#"{"type":"assistant","sessionId":"s1","message":{"id":"msg_1","model":"m","content":[{"type":"text","text":"h\u00e9"}],"usage":{"input_tokens":3,"output_tokens":5}},"notRead":"OKAY"}"#;
    let mut invalid = valid.to_vec();
    let at = invalid.windows(4).position(|w| w == b"OKAY").unwrap();
    invalid[at] = 0xff;
    assert!(std::str::from_utf8(&invalid).is_err());
    for bytes in [&valid[..], &invalid[..]] {
        let line = parse_line(bytes).unwrap();
        assert_eq!(line.session_id.as_deref(), Some("s1"));
        let m = line.message.unwrap();
        assert_eq!((m.id.as_deref(), m.usage.unwrap().output_tokens), (Some("msg_1"), 5));
    }
    let mut bad_field = valid.to_vec();
    let at = bad_field.windows(4).position(|w| w == b"\"s1\"").unwrap();
    bad_field[at + 1] = 0xff;
    assert!(parse_line(&bad_field).is_err(), "invalid UTF-8 in a field we read fails the line");
}
