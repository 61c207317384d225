//! Long lines: memory stays bounded whatever a line's length, and lines up to
//! `--max-line-bytes` are still counted, including the ones right after a line
//! that was skipped for being over it.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use super::daemon::{Daemon, Metrics, append};
use super::support;

const MIB: u64 = 1 << 20;
/// The default `--max-line-bytes`, as the README states it.
const DEFAULT_LIMIT: usize = 16 << 20;

/// `VmHWM` (peak) or `VmRSS` (now) of a process, in KiB.
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/<pid>/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/{pid}/status"))
}

fn lines(m: &Metrics, result: &str) -> f64 {
    m.sum("claude_sessions_exporter_lines_total", &[("result", result)])
}

/// A user line carrying an image tool result, `len` bytes long without its newline.
fn image_line(len: usize, ts_second: u32) -> (Vec<u8>, Vec<u8>, usize) {
    let head = format!(
        r#"{{"type":"user","sessionId":"s1","timestamp":"2026-01-01T00:00:{ts_second:02}.000Z","message":{{"role":"user","content":[{{"type":"tool_result","tool_use_id":"toolu_{ts_second}","content":[{{"type":"image","source":{{"type":"base64","media_type":"image/png","data":""#
    );
    let tail = r#""}}]}]}}"#.to_owned();
    let data = len - head.len() - tail.len();
    (head.into_bytes(), tail.into_bytes(), data)
}

/// Append that line and a newline in 1 MiB writes, without holding it.
fn append_image_line(path: &Path, len: usize, ts_second: u32) {
    let (head, tail, mut data) = image_line(len, ts_second);
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(&head).unwrap();
    let chunk = vec![b'A'; MIB as usize];
    while data > 0 {
        let k = data.min(chunk.len());
        f.write_all(&chunk[..k]).unwrap();
        data -= k;
    }
    f.write_all(&tail).unwrap();
    f.write_all(b"\n").unwrap();
}

fn user_line(ts_second: u32) -> Vec<u8> {
    format!(
        "{{\"type\":\"user\",\"sessionId\":\"s1\",\"timestamp\":\"2026-01-01T00:00:{ts_second:02}.000Z\",\"message\":{{\"role\":\"user\",\"content\":\"next\"}}}}\n"
    )
    .into_bytes()
}

/// Wait until `ok` lines and `oversized` ones are counted; panics with the metrics if not.
fn wait_counted(d: &Daemon, ok: f64, oversized: f64) {
    let done = d.wait_for(Duration::from_secs(60), |m| lines(m, "ok") == ok && lines(m, "oversized") == oversized);
    let m = d.metrics();
    assert!(
        done.is_some(),
        "not counted: ok {} (want {ok}), oversized {} (want {oversized})\n{}",
        lines(&m, "ok"),
        lines(&m, "oversized"),
        d.log_text()
    );
}

#[test]
fn a_100_mb_line_and_one_just_under_the_limit_keep_peak_memory_within_32_mib_of_idle() {
    let root = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let file = root.path().join("projects/-w-demo/s1.jsonl");
    append(&file, &user_line(0));
    // Default limit; rules on (the default), so new lines' content is read too.
    let d = Daemon::start(root.path(), state.path(), &[]);
    d.wait_ready(Duration::from_secs(20));
    wait_counted(&d, 1.0, 0.0);
    std::thread::sleep(Duration::from_millis(1500));
    let pid = d.pid().expect("running");
    let idle = status_kib(pid, "VmRSS:");
    let before = status_kib(pid, "VmHWM:");

    append_image_line(&file, 100_000_000, 1);
    append(&file, &user_line(2));
    wait_counted(&d, 2.0, 1.0);
    let peak_100mb = status_kib(pid, "VmHWM:");

    // Just under the default limit: read whole and parsed, content captured.
    append_image_line(&file, DEFAULT_LIMIT - 1, 3);
    append(&file, &user_line(4));
    wait_counted(&d, 4.0, 1.0);
    let peak_under = status_kib(pid, "VmHWM:");
    eprintln!(
        "line_memory: idle RSS {:.1} MiB (peak before {:.1}); peak after a 100 MB line {:.1} MiB (+{:.1}); \
         after a {} byte line {:.1} MiB (+{:.1})",
        idle as f64 / 1024.0,
        before as f64 / 1024.0,
        peak_100mb as f64 / 1024.0,
        (peak_100mb.saturating_sub(idle)) as f64 / 1024.0,
        DEFAULT_LIMIT - 1,
        peak_under as f64 / 1024.0,
        (peak_under.saturating_sub(idle)) as f64 / 1024.0,
    );
    let bound = idle + 32 * 1024;
    assert!(peak_100mb <= bound, "100 MB line: peak {peak_100mb} KiB over idle {idle} KiB + 32 MiB");
    assert!(peak_under <= bound, "line under the limit: peak {peak_under} KiB over idle {idle} KiB + 32 MiB");
}

/// An assistant line of exactly `len` bytes (without newline) with `input` tokens.
fn assistant_line(len: usize, id: &str, input: u64) -> Vec<u8> {
    let head = format!(
        r#"{{"type":"assistant","sessionId":"s1","timestamp":"2026-01-01T00:01:00.000Z","requestId":"req_{id}","message":{{"id":"msg_{id}","model":"claude-sonnet-4-5-20250929","role":"assistant","usage":{{"input_tokens":{input},"output_tokens":1}},"content":[{{"type":"text","text":""#
    );
    let tail = r#""}]}}"#;
    assert!(len >= head.len() + tail.len());
    let mut line = head.into_bytes();
    // Text with escapes: what a long pasted or generated text looks like.
    let pad = len - line.len() - tail.len();
    line.extend((0..pad).map(|i| {
        if i % 64 < 62 {
            b'x'
        } else if i % 64 == 62 {
            b'\\'
        } else {
            b'n'
        }
    }));
    if pad % 64 == 63 {
        // Do not leave a lone backslash before the closing quote.
        *line.last_mut().unwrap() = b'x';
    }
    line.extend_from_slice(tail.as_bytes());
    assert_eq!(line.len(), len);
    line.push(b'\n');
    line
}

#[test]
fn lines_at_the_limit_count_over_it_are_skipped_and_the_next_ones_count() {
    let root = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let projects = root.path().join("projects");
    let file = projects.join("-w-demo/s1.jsonl");
    append(&file, &user_line(0));
    let d = Daemon::start(root.path(), state.path(), &[]);
    d.wait_ready(Duration::from_secs(20));
    // What each line should give, by construction: (bytes, input tokens, counted).
    let plan: [(usize, u64, bool); 6] = [
        (300, 1, true),
        (DEFAULT_LIMIT, 10, true),
        (DEFAULT_LIMIT + 1, 100, false),
        (400, 1000, true),
        (3 * DEFAULT_LIMIT, 10_000, false),
        (DEFAULT_LIMIT - 1, 100_000, true),
    ];
    for (i, (len, input, _)) in plan.iter().enumerate() {
        append(&file, &assistant_line(*len, &i.to_string(), *input));
    }
    append(&file, &user_line(5));
    let want_ok = 2.0 + plan.iter().filter(|p| p.2).count() as f64;
    let want_over = plan.iter().filter(|p| !p.2).count() as f64;
    let want_input: u64 = plan.iter().filter(|p| p.2).map(|p| p.1).sum();
    wait_counted(&d, want_ok, want_over);
    let m = d.metrics();
    assert_eq!(m.sum("claude_sessions_tokens_total", &[("type", "input")]) as u64, want_input);
    assert_eq!(lines(&m, "malformed"), 0.0);

    // `scan` (history, two threads) counts the same.
    let r = support::run_scan_json(root.path());
    assert_eq!(
        (r["lines"]["ok"].as_f64(), r["lines"]["oversized"].as_f64()),
        (Some(want_ok), Some(want_over)),
        "scan: {}",
        r["lines"]
    );
    let scan_input: f64 = r["models"].as_object().unwrap().values().map(|m| m["input"].as_f64().unwrap()).sum();
    assert_eq!(scan_input as u64, want_input);
}
