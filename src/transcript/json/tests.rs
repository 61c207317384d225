//! The reader against `serde_json`: the same lines accepted and refused, the same
//! values handed on, on every fixture line, on mutations of them and on hand-made
//! edge cases; and the search for special bytes against a byte-at-a-time one.

use super::*;
use crate::research::stats::Rng;
use crate::research::testing::jsonl_files;
use crate::transcript::Line;

fn fixture_lines() -> Vec<String> {
    let files = [jsonl_files("real"), jsonl_files("handmade")].concat();
    let mut lines = Vec::new();
    for f in files {
        let data = std::fs::read(&f).expect("fixture");
        for l in data.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            if let Ok(s) = std::str::from_utf8(l) {
                lines.push(s.to_owned());
            }
        }
    }
    assert!(lines.len() > 3000, "only {} fixture lines", lines.len());
    lines
}

/// Both parsers give the same outcome for `s`: equal values, or both refuse it.
fn same(s: &str) {
    let ours = from_str::<Line>(s).map(|l| format!("{l:?}"));
    let theirs = serde_json::from_str::<Line>(s).map(|l| format!("{l:?}"));
    match (&ours, &theirs) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "different values for {s:?}"),
        (Err(_), Err(_)) => {}
        _ => panic!("ours {:?}, serde_json {:?}, for {s:?}", ours.map(|_| ()), theirs.map(|_| ())),
    }
    let ours = from_str::<serde_json::Value>(s);
    let theirs = serde_json::from_str::<serde_json::Value>(s);
    match (&ours, &theirs) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "different values for {s:?}"),
        (Err(_), Err(_)) => {}
        _ => panic!("as a Value: ours {ours:?}, serde_json {theirs:?}, for {s:?}"),
    }
    assert_eq!(
        from_str::<de::IgnoredAny>(s).is_ok(),
        serde_json::from_str::<de::IgnoredAny>(s).is_ok(),
        "skipping {s:?}"
    );
}

#[test]
fn every_fixture_line_reads_as_serde_json_reads_it() {
    let lines = fixture_lines();
    let mut read = 0;
    for l in &lines {
        same(l);
        read += usize::from(from_str::<Line>(l).is_ok());
    }
    // The hand-made files hold a few broken lines on purpose; the rest read.
    assert!(read + 20 > lines.len(), "{read} of {} lines read", lines.len());
}

#[test]
fn mutated_fixture_lines_are_accepted_and_refused_as_serde_json_does() {
    // Bytes that change the grammar: quotes, escapes, brackets, separators,
    // digits and signs, a control character, letters of escapes and literals.
    const SPECIAL: &[u8] = b"\"\\{}[],:0159-+.eEunrtfl \x01\x1f";
    let lines = fixture_lines();
    let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15);
    let mut outcomes = [0usize; 2];
    for _ in 0..6000 {
        let line = &lines[rng.below(lines.len())];
        let mut b = line.as_bytes().to_vec();
        // One to three edits: a byte replaced, inserted or removed, or the line cut short.
        for _ in 0..1 + rng.below(3) {
            let at = rng.below(b.len().max(1));
            match rng.below(4) {
                0 => b[at] = SPECIAL[rng.below(SPECIAL.len())],
                1 => b.insert(at, SPECIAL[rng.below(SPECIAL.len())]),
                2 => {
                    b.remove(at.min(b.len() - 1));
                }
                _ => b.truncate(at.max(1)),
            }
            if b.is_empty() {
                b.push(b'{');
            }
        }
        if let Ok(s) = std::str::from_utf8(&b) {
            same(s);
            outcomes[usize::from(serde_json::from_str::<Line>(s).is_ok())] += 1;
        }
    }
    // Both outcomes are well represented, so agreement on each means something.
    assert!(outcomes.iter().all(|n| *n > 1000), "refused, accepted: {outcomes:?}");
}

#[test]
fn edge_cases_agree_with_serde_json() {
    let long = "x".repeat(200);
    let escapes = r#"\n\t\"\\\/\b\f\r\u00e9\ud83d\ude00"#.repeat(20);
    let deep = format!("{}{}", "[".repeat(300), "]".repeat(300));
    let cases = [
        // numbers in usage: sign, zero, overflow, fractions, exponents
        r#"{"message":{"usage":{"input_tokens":-0}}}"#.to_owned(),
        r#"{"message":{"usage":{"input_tokens":0}}}"#.to_owned(),
        r#"{"message":{"usage":{"input_tokens":01}}}"#.to_owned(),
        r#"{"message":{"usage":{"input_tokens":1.0}}}"#.to_owned(),
        r#"{"message":{"usage":{"input_tokens":1e2}}}"#.to_owned(),
        r#"{"message":{"usage":{"input_tokens":-}}}"#.to_owned(),
        r#"{"message":{"usage":{"input_tokens":18446744073709551616}}}"#.to_owned(),
        r#"{"x":[1e400]}"#.to_owned(),
        r#"{"x":1e400}"#.to_owned(),
        r#"{"x":-9223372036854775808,"y":-9223372036854775809,"z":1.5e-400}"#.to_owned(),
        r#"{"x":1.}"#.to_owned(),
        r#"{"x":.5}"#.to_owned(),
        r#"{"x":1e}"#.to_owned(),
        r#"{"x":+1}"#.to_owned(),
        // strings: escapes parsed and skipped, surrogates, control characters
        format!(r#"{{"type":"{escapes}","x":"{escapes}"}}"#),
        r#"{"type":"\ud83d"}"#.to_owned(),
        r#"{"x":"\ud83d"}"#.to_owned(),
        r#"{"x":"\q"}"#.to_owned(),
        r#"{"type":"\q"}"#.to_owned(),
        r#"{"x":"\u12"}"#.to_owned(),
        r#"{"x":"\u12G4"}"#.to_owned(),
        "{\"x\":\"a\x01b\"}".to_owned(),
        "{\"type\":\"a\x1fb\"}".to_owned(),
        format!("{{\"x\":\"{long}\x07{long}\"}}"),
        format!(r#"{{"x":"{long}\\"}}"#),
        format!(r#"{{"x":"{long}\\\"}}"#),
        format!(r#"{{"x":"{long}\\\\"}}"#),
        format!(r#"{{"x":"{long}"#),
        // structure: nesting, trailing commas and characters, keys, literals
        format!(r#"{{"x":{deep}}}"#),
        format!(r#"{{"message":{{"content":[{{"type":"text","input":{deep}}}]}}}}"#),
        r#"{"x":[1,]}"#.to_owned(),
        r#"{"x":{"a":1,}}"#.to_owned(),
        r#"{"x":{1:2}}"#.to_owned(),
        r#"{"x":[1 2]}"#.to_owned(),
        r#"{"type":"user"} "#.to_owned(),
        r#"{"type":"user"} x"#.to_owned(),
        r#"{"type":"user"}{"type":"user"}"#.to_owned(),
        r#"{"isSidechain":null}"#.to_owned(),
        r#"{"isSidechain":tru}"#.to_owned(),
        r#"{"isSidechain":true,"isSidechain":false}"#.to_owned(),
        r#"{"message":null,"cwd":nul}"#.to_owned(),
        r#" {"type" : "user" , "message" : { "content" : [ ] } } "#.to_owned(),
        r#"[]"#.to_owned(),
        r#""#.to_owned(),
        // a half-written line followed by a whole one
        r#"{"type":"user","message":{"content":"abc{"type":"assistant","message":{"id":"m","usage":{"input_tokens":5}}}"#.to_owned(),
        // toolUseResult shapes read by PatchStats
        r#"{"toolUseResult":{"type":"create","content":"a\nb\n","structuredPatch":[]}}"#.to_owned(),
        r#"{"toolUseResult":{"structuredPatch":[{"lines":["+a","-b"," c"]}],"agentId":"a\u0031"}}"#.to_owned(),
        r#"{"toolUseResult":"Error: \"x\""}"#.to_owned(),
        r#"{"toolUseResult":[1,{"a":[true,false,null]},-2.5e3]}"#.to_owned(),
    ];
    for c in &cases {
        same(c);
    }
}

#[test]
fn raw_values_are_the_text_as_written() {
    #[derive(serde::Deserialize)]
    struct T<'a> {
        #[serde(borrow)]
        a: &'a serde_json::value::RawValue,
        #[serde(borrow)]
        b: &'a serde_json::value::RawValue,
    }
    let s = r#"{"a": [1, {"x":"\"y\\"}] ,"b":"q\n"}"#;
    let t: T = from_str(s).unwrap();
    assert_eq!(t.a.get(), r#"[1, {"x":"\"y\\"}]"#);
    assert_eq!(t.b.get(), r#""q\n""#);
}

#[test]
fn errors_say_where() {
    let e = from_str::<Line>(r#"{"type":"user",}"#).unwrap_err();
    assert_eq!(e.column(), 16, "{e}");
    let e = from_str::<Line>("{\"type\":\"us\x01er\"}").unwrap_err();
    assert_eq!(e.column(), 12, "{e}");
    assert!(e.to_string().contains("control character"), "{e}");
}

#[test]
fn special_bytes_are_found_as_byte_by_byte() {
    let mut rng = Rng::new(42);
    const PICK: &[u8] = b"\"\\\x00\x1f\x20\x21\x7f\x80\xff\x5b\x5d";
    for _ in 0..50_000 {
        let mut chunk = [0u8; 16];
        for c in &mut chunk {
            *c = if rng.below(2) == 0 { PICK[rng.below(PICK.len())] } else { rng.next_u64() as u8 };
        }
        assert_eq!(specials(&chunk), specials_scalar(&chunk), "{chunk:?}");
    }
    for c in 0..=255u8 {
        let mut chunk = [b'a'; 16];
        chunk[7] = c;
        let hit = c == b'"' || c == b'\\' || c < 0x20;
        assert_eq!(specials(&chunk), u32::from(hit) << 7, "byte {c}");
    }
}
