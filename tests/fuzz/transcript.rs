//! Target `transcript_line`: what turns a line into an entry — the parser
//! (`transcript::parse_line`), the `progress` fast path, the conversion to an
//! `Entry`, content capture — and the reader underneath: the whole input,
//! written to a file in two pieces, read by a real `Tail`.
//!
//! The entries are then applied to an aggregator (sessions, dedup, counters,
//! pricing), which is ticked, reported as `scan` reports and rendered as
//! `/metrics`: numbers in a line reach all of that.
//!
//! Properties: no panic, no hang; every line counted once under one result;
//! capturing content changes no count; the streaming content reader gives what
//! a plain `serde_json::Value` parse gives wherever that parse succeeds (the
//! reference below is independent of the crate's code); the `Tail` hands on
//! exactly the complete, non-blank lines within the limit and counts the others.

use std::path::{Path, PathBuf};

use std::sync::{Arc, Mutex, OnceLock};

use claude_sessions::engine::capture;
use claude_sessions::engine::{self, LineCounts};
use claude_sessions::source::discover::{FileInfo, Role};
use claude_sessions::source::tail::Tail;
use claude_sessions::state::live::{self, Aggregator, Source};
use claude_sessions::transcript::entry::{Captured, cap_text};

use super::harness;

pub fn run() {
    let mut seeds = Vec::new();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    for f in jsonl_files(&fixtures.join("real")).into_iter().chain(jsonl_files(&fixtures.join("handmade"))) {
        let data = std::fs::read(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        seeds.extend(data.split(|b| *b == b'\n').filter(|l| !l.is_empty()).map(<[u8]>::to_vec));
    }
    assert!(seeds.len() > 1000, "only {} seed lines", seeds.len());
    harness::run("transcript_line", seeds, target);
}

fn jsonl_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "jsonl" || x == "rest") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn target(data: &[u8]) {
    let path = Path::new("fuzz.jsonl");
    let mut counts = LineCounts::default();
    let mut lines = 0;
    let mut agg = Aggregator::new(config());
    let role = [Role::Main, Role::Subagent, Role::Compaction][data.len() % 3];
    let info = FileInfo { role, slug: "-w-fuzz".into(), session: Some("s".into()), agent: None };
    for line in data.split(|b| *b == b'\n') {
        lines += 1;
        let cap = 1 + line.len() % 97;
        let plain = engine::parse(line, &mut counts, path, None);
        let mut again = LineCounts::default();
        let captured = engine::parse(line, &mut again, path, Some(cap));
        assert_eq!(plain.is_some(), captured.is_some(), "capturing content changed the result");
        if let Some(e) = &captured {
            agg.apply(e, &Source { info: &info, warmup: false });
        }
        assert_eq!(again.ok + again.malformed + again.unknown_type, 1, "one line, one result");
        if serde_json::from_slice::<serde_json::Value>(line).is_ok() {
            let want = reference_capture(line, cap);
            assert_eq!(
                capture::read(line, cap, &capture::Inspect::default()),
                want,
                "content differs from a Value parse"
            );
            assert_eq!(claude_sessions::engine::capture::read_streaming(line, cap), want, "streaming content differs");
        }
    }
    assert_eq!(counts.ok + counts.malformed + counts.unknown_type, lines, "every line counted once");
    agg.tick(i64::MAX / 2);
    let report = claude_sessions::report::Report::from_aggregator(&agg, 1);
    assert!(!report.table().is_empty());
    let exposition = claude_sessions::server::Exposition::new(Arc::new(Mutex::new(agg)));
    assert!(!exposition.render(true).is_empty());
    tail_matches_model(data);
}

/// The aggregator's settings, with the embedded price table parsed once.
fn config() -> live::Config {
    static CONFIG: OnceLock<live::Config> = OnceLock::new();
    CONFIG.get_or_init(live::Config::default).clone()
}

thread_local! {
    static DIR: tempfile::TempDir = tempfile::tempdir().expect("temp dir");
}

/// Write `data` in two pieces, reading after each, then complete it; the lines
/// handed on must be the model's.
fn tail_matches_model(data: &[u8]) {
    let h = data.iter().fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(*b)));
    let window = 1 + (h % 97) as usize;
    let max_line = 1 + ((h >> 8) % 300) as usize;
    let cut = (h >> 20) as usize % (data.len() + 1);
    let keep_open = h & (1 << 40) != 0;
    DIR.with(|d| {
        let p = d.path().join("t.jsonl");
        let _ = std::fs::remove_file(&p);
        let mut t = Tail::default().with_window(window);
        let mut buf = Vec::new();
        let (mut got, mut oversized, mut bytes) = (Vec::new(), 0, 0);
        let mut read = |t: &mut Tail| {
            let r = t.read(&p, max_line, keep_open, &mut buf, &mut |l| got.push(l.to_vec())).expect("read");
            oversized += r.oversized;
            bytes += r.bytes;
        };
        std::fs::write(&p, &data[..cut]).unwrap();
        read(&mut t);
        append(&p, &data[cut..]);
        read(&mut t);
        append(&p, b"\n");
        read(&mut t);
        let mut all = data.to_vec();
        all.push(b'\n');
        let (want, want_oversized) = model(&all, max_line);
        assert_eq!(got, want, "lines handed on (window {window}, max_line {max_line}, cut {cut})");
        assert_eq!(oversized, want_oversized, "oversized lines");
        assert_eq!(bytes, all.len() as u64, "bytes consumed");
    });
}

fn append(p: &Path, b: &[u8]) {
    use std::io::Write;
    std::fs::OpenOptions::new().append(true).open(p).unwrap().write_all(b).unwrap();
}

/// Complete lines within `max_line` (without `\r`), non-blank; and how many were over it.
fn model(data: &[u8], max_line: usize) -> (Vec<Vec<u8>>, u64) {
    let (mut lines, mut over) = (Vec::new(), 0);
    for line in data.split_inclusive(|b| *b == b'\n').filter(|l| l.ends_with(b"\n")) {
        let line = &line[..line.len() - 1];
        if line.len() > max_line {
            over += 1;
        } else {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if !line.iter().all(u8::is_ascii_whitespace) {
                lines.push(line.to_vec());
            }
        }
    }
    (lines, over)
}

/// Content of a line as a plain `Value` parse gives it (the behaviour the
/// streaming reader must keep): the prompt, tool inputs as JSON, tool outputs as text.
fn reference_capture(line: &[u8], cap: usize) -> Option<Box<Captured>> {
    use serde_json::Value;
    let v: Value = serde_json::from_slice(line).ok()?;
    let kind = v.get("type")?.as_str()?;
    if kind != "user" && kind != "assistant" {
        return None;
    }
    let content = v.get("message")?.get("content")?;
    let mut c = Captured::default();
    let text_of = |x: &Value| match x {
        Value::String(s) => cap_text(s, cap),
        Value::Array(parts) => {
            let texts: Vec<&str> = parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect();
            if texts.is_empty() { cap_text(&x.to_string(), cap) } else { cap_text(&texts.join("\n"), cap) }
        }
        other => cap_text(&other.to_string(), cap),
    };
    match content {
        Value::String(s) if kind == "user" => c.prompt = Some(cap_text(s, cap)),
        Value::Array(blocks) => {
            for b in blocks {
                match b.get("type").and_then(Value::as_str) {
                    Some("text") if kind == "user" && c.prompt.is_none() => {
                        c.prompt = b.get("text").and_then(Value::as_str).map(|t| cap_text(t, cap));
                    }
                    Some("tool_use") => {
                        if let (Some(id), Some(input)) = (b.get("id").and_then(Value::as_str), b.get("input")) {
                            c.tool_inputs.push((id.to_owned(), cap_text(&input.to_string(), cap)));
                        }
                    }
                    Some("tool_result") => {
                        if let Some(id) = b.get("tool_use_id").and_then(Value::as_str) {
                            c.tool_outputs.push((id.to_owned(), b.get("content").map(text_of).unwrap_or_default()));
                        }
                    }
                    _ => {}
                }
            }
        }
        _ => {}
    }
    (c != Captured::default()).then(|| Box::new(c))
}
