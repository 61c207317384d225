//! `serve` across restarts: killed with SIGKILL while transcripts are being
//! written, stopped with SIGTERM and transcripts deleted meanwhile, started on a
//! corrupt checkpoint. Counters must come out as one uninterrupted run would
//! have them (`scan` of the final files, and a fresh daemon), and no counter
//! may ever be seen going down, not even from one process to the next.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::daemon::{Daemon, Metrics, append, empty_root, lines_of, real, scan_projects, scan_tokens};

const TYPES: [&str; 4] = ["input", "output", "cache_read", "cache_creation"];
const READY_WITHIN: Duration = Duration::from_secs(30);

const CODERABBIT: &str = "claude-code-log/projects/-Users-dain-workspace-coderabbit-review-helper";
const DEEP: &str = "claude-code-log/projects/-src-deep-manifest";
const SPOTTER: &str = "spotter/transcripts";
const SPOTTER_SESSION: &str = "4d5611e5-241a-462a-8d15-5122611a9569";

/// Real transcripts: (path below `projects/`, path below `tests/fixtures/real/`).
/// Main files and their 2.0.x flat and 2.1.x nested sub-agent files.
fn sources() -> Vec<(String, String)> {
    let slug = |p: &str| p.rsplit('/').next().unwrap().to_owned();
    let mut v = Vec::new();
    for (dir, file) in [
        (CODERABBIT, "cb2e607c-c758-415a-8b45-c49e4631906a.jsonl"),
        (CODERABBIT, "agent-ea02459f.jsonl"),
        (DEEP, "a7da6a22-facc-4fcd-8bab-f83c87862004.jsonl"),
        (DEEP, "agent-c8d9b115.jsonl"),
    ] {
        v.push((format!("{}/{file}", slug(dir)), format!("{dir}/{file}")));
    }
    for file in [
        format!("{SPOTTER_SESSION}.jsonl"),
        format!("{SPOTTER_SESSION}/subagents/agent-a2898e3.jsonl"),
        format!("{SPOTTER_SESSION}/subagents/agent-acompact-e1f845.jsonl"),
    ] {
        v.push((format!("-spotter-transcripts/{file}"), format!("{SPOTTER}/{file}")));
    }
    v
}

/// Copy every source whole into `<root>/projects/`.
fn copy_sources(root: &Path, sources: &[(String, String)]) {
    for (rel, src) in sources {
        append(&root.join("projects").join(rel), &std::fs::read(real(src)).unwrap());
    }
}

/// xorshift64*: reproducible "random" choices from a printed seed.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

fn seed() -> u64 {
    std::env::var("RESTART_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    })
}

// ---- /metrics that may be unreachable (a process being killed) ----

/// GET /metrics; `None` on any failure or a status other than 200 (never panics).
fn try_metrics(addr: SocketAddr) -> Option<Metrics> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes()).ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    if !head.starts_with("http/1.1 200") {
        return None;
    }
    let body = &raw[split + 4..];
    let len: usize = head.lines().find_map(|l| l.strip_prefix("content-length:"))?.trim().parse().ok()?;
    if body.len() != len {
        return None;
    }
    Some(Metrics::parse(std::str::from_utf8(body).ok()?))
}

/// Families exempt from the never-decrease rule: the event-lag histogram is
/// deliberately local to one process (it restarts at 0, a reset Prometheus
/// understands), since lines re-read after a crash have no honest lag.
const PROCESS_LOCAL: &[&str] = &["claude_sessions_exporter_event_lag_seconds"];

/// Every sample that must never decrease: counters and histogram buckets, counts and sums.
fn monotone(m: &Metrics) -> BTreeMap<String, f64> {
    m.samples
        .iter()
        .filter(|(n, _, _)| ["_total", "_bucket", "_count", "_sum"].iter().any(|s| n.ends_with(s)))
        .filter(|(n, _, _)| !PROCESS_LOCAL.iter().any(|p| n.starts_with(p)))
        .map(|(n, l, v)| (format!("{n}{l:?}"), *v))
        .collect()
}

#[derive(Default)]
struct SamplerState {
    /// The daemon being sampled, and which of the test's processes it is (1-based).
    addr: Option<SocketAddr>,
    life: usize,
    last: Option<(usize, BTreeMap<String, f64>)>,
    per_life: Vec<usize>,
    violations: Vec<String>,
}

impl SamplerState {
    fn sample(&mut self) {
        let Some(addr) = self.addr else { return };
        let Some(m) = try_metrics(addr) else { return };
        let now = monotone(&m);
        if let Some((prev_life, prev)) = &self.last {
            for (k, before) in prev {
                match now.get(k) {
                    Some(after) if after >= before => {}
                    got => self.violations.push(format!(
                        "{k}: {before:?} (process {prev_life}) -> {got:?} (process {}, sample {})",
                        self.life,
                        self.per_life[self.life - 1] + 1
                    )),
                }
            }
        }
        self.per_life[self.life - 1] += 1;
        self.last = Some((self.life, now));
    }
}

/// Samples `/metrics` of whichever daemon is attached, every ~50 ms, and
/// checks each sample against the previous one (across processes too).
#[derive(Default)]
struct Sampler {
    state: Mutex<SamplerState>,
    stop: AtomicBool,
}

impl Sampler {
    fn run(self: &Arc<Self>) -> std::thread::JoinHandle<()> {
        let me = Arc::clone(self);
        std::thread::spawn(move || {
            while !me.stop.load(Ordering::Acquire) {
                // The lock is held across the request: samples are checked in the order taken.
                me.state.lock().unwrap().sample();
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    }

    /// Start sampling a daemon that is ready, with one sample at once.
    fn attach(&self, d: &Daemon) {
        let mut s = self.state.lock().unwrap();
        s.addr = Some(d.addr);
        s.life += 1;
        s.per_life.push(0);
        s.sample();
    }

    /// One last sample, then stop sampling (before the daemon is killed or stopped).
    fn detach(&self) {
        let mut s = self.state.lock().unwrap();
        s.sample();
        s.addr = None;
    }
}

// ---- comparisons ----

/// The series of one family: label set → value.
fn family(m: &Metrics, name: &str) -> BTreeMap<String, f64> {
    m.samples.iter().filter(|(n, _, _)| n == name).map(|(_, l, v)| (format!("{l:?}"), *v)).collect()
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    a == b || (a - b).abs() <= rel * a.abs().max(b.abs())
}

/// Families that must come out the same however the files were read (bytes
/// read are compared to scan on their own).
const CONTENT: [&str; 12] = [
    "claude_sessions_tokens_total",
    "claude_sessions_api_requests_total",
    "claude_sessions_tool_calls_total",
    "claude_sessions_tool_errors_total",
    "claude_sessions_prompts_total",
    "claude_sessions_sessions_started_total",
    "claude_sessions_cost_usd_total",
    "claude_sessions_subagents_started_total",
    "claude_sessions_lines_of_code_total",
    "claude_sessions_compactions_total",
    "claude_sessions_api_errors_total",
    "claude_sessions_exporter_lines_total",
];

/// Series by series differences of `CONTENT` between two expositions (cost within 1e-9 relative).
pub(super) fn content_diff(left_name: &str, left: &Metrics, right_name: &str, right: &Metrics) -> Vec<String> {
    let mut out = Vec::new();
    for name in CONTENT {
        let (l, r) = (family(left, name), family(right, name));
        let rel = if name.contains("cost") { 1e-9 } else { 0.0 };
        for k in l.keys().chain(r.keys()).collect::<BTreeSet<_>>() {
            let (a, b) = (l.get(k), r.get(k));
            let same = match (a, b) {
                (Some(a), Some(b)) => close(*a, *b, rel),
                _ => false,
            };
            if !same {
                out.push(format!("{name}{k}: {left_name} {a:?}, {right_name} {b:?}"));
            }
        }
    }
    out
}

/// Where `/metrics` disagrees with a `scan --format json` report of the same files.
fn scan_diff(m: &Metrics, scan: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut check = |what: String, got: f64, want: f64, rel: f64| {
        if !close(got, want, rel) {
            out.push(format!("{what}: /metrics {got}, scan {want}"));
        }
    };
    for t in TYPES {
        check(format!("tokens {t}"), m.sum("claude_sessions_tokens_total", &[("type", t)]), scan_tokens(scan, t), 0.0);
    }
    for (model, v) in scan["models"].as_object().unwrap() {
        let f = [("model", model.as_str())];
        check(
            format!("requests {model}"),
            m.sum("claude_sessions_api_requests_total", &f),
            v["requests"].as_f64().unwrap(),
            0.0,
        );
        check(
            format!("cost {model}"),
            // scan's JSON gives money in whole micro-dollars.
            (m.sum("claude_sessions_cost_usd_total", &f) * 1e6).round() / 1e6,
            v["cost_usd"].as_f64().unwrap(),
            1e-9,
        );
        for t in TYPES {
            let got = m.sum("claude_sessions_tokens_total", &[("model", model), ("type", t)]);
            check(format!("tokens {model} {t}"), got, v[t].as_f64().unwrap(), 0.0);
        }
    }
    for (project, v) in scan["projects"].as_object().unwrap() {
        let got = m.sum("claude_sessions_api_requests_total", &[("project", project)]);
        check(format!("requests of project {project}"), got, v["requests"].as_f64().unwrap(), 0.0);
    }
    for (tool, v) in scan["tools"].as_object().unwrap() {
        let f = [("tool", tool.as_str())];
        check(
            format!("calls {tool}"),
            m.sum("claude_sessions_tool_calls_total", &f),
            v["calls"].as_f64().unwrap(),
            0.0,
        );
        check(
            format!("errors {tool}"),
            m.sum("claude_sessions_tool_errors_total", &f),
            v["errors"].as_f64().unwrap(),
            0.0,
        );
    }
    let total = |k: &str| scan["tools"].as_object().unwrap().values().map(|t| t[k].as_f64().unwrap()).sum::<f64>();
    check("tool calls".into(), m.sum("claude_sessions_tool_calls_total", &[]), total("calls"), 0.0);
    check("tool errors".into(), m.sum("claude_sessions_tool_errors_total", &[]), total("errors"), 0.0);
    check("prompts".into(), m.sum("claude_sessions_prompts_total", &[]), scan["prompts"].as_f64().unwrap(), 0.0);
    check(
        "sessions".into(),
        m.sum("claude_sessions_sessions_started_total", &[]),
        scan["sessions"].as_f64().unwrap(),
        0.0,
    );
    for (result, n) in scan["lines"].as_object().unwrap() {
        let got = m.sum("claude_sessions_exporter_lines_total", &[("result", result)]);
        check(format!("lines {result}"), got, n.as_f64().unwrap(), 0.0);
    }
    out
}

fn bytes_read(m: &Metrics) -> f64 {
    m.sum("claude_sessions_exporter_bytes_read_total", &[])
}

/// Counters and histograms that differ at all: a SIGTERM checkpoint holds the
/// exact state, so a restart with nothing new to read must show the same
/// values to the bit (the checkpoint writes themselves aside).
fn round_trip_diff(before: &Metrics, after: &Metrics) -> Vec<String> {
    let (b, a) = (monotone(before), monotone(after));
    b.keys()
        .chain(a.keys())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .filter(|k| !k.starts_with("claude_sessions_exporter_checkpoint_writes_total"))
        .filter(|k| b.get(*k) != a.get(*k))
        .map(|k| format!("{k}: before {:?}, after {:?}", b.get(k), a.get(k)))
        .collect()
}

// ---- the writer ----

/// What the writer did.
#[derive(Debug, Default)]
struct Written {
    chunks: usize,
    half_lines: usize,
    lines: usize,
}

/// Append every source to `<root>/projects/` line by line in chunks of 1–40
/// lines, in a random file order, a third of the chunks ending in half a line
/// (completed by the file's next chunk). Paced to take about `span`; holds
/// back the last tenth until `release` is set, so that the kills happen mid-stream.
fn write_in_chunks(root: &Path, seed: u64, span: Duration, release: &AtomicBool) -> Written {
    let mut rng = Rng::new(seed);
    let mut files: Vec<(PathBuf, Vec<Vec<u8>>, usize, usize)> = sources()
        .into_iter()
        .map(|(rel, src)| (root.join("projects").join(rel), lines_of(&real(&src)), 0, 0))
        .collect();
    let total: usize = files.iter().map(|f| f.1.len()).sum();
    let mut w = Written::default();
    let start = Instant::now();
    loop {
        let open: Vec<usize> = (0..files.len()).filter(|&i| files[i].2 < files[i].1.len()).collect();
        if open.is_empty() {
            return w;
        }
        if w.lines * 10 >= total * 9 {
            while !release.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        let (path, lines, next, part) = &mut files[open[rng.range(0, open.len() as u64 - 1) as usize]];
        let mut chunk = Vec::new();
        for _ in 0..rng.range(1, 40) {
            let Some(line) = lines.get(*next) else { break };
            chunk.extend_from_slice(&line[*part..]);
            *part = 0;
            *next += 1;
            w.lines += 1;
        }
        if let Some(line) = lines.get(*next)
            && line.len() > 1
            && rng.range(0, 2) == 0
        {
            *part = rng.range(1, line.len() as u64 - 1) as usize;
            chunk.extend_from_slice(&line[..*part]);
            w.half_lines += 1;
        }
        append(path, &chunk);
        w.chunks += 1;
        let due = span.mul_f64(w.lines as f64 / total as f64);
        std::thread::sleep(due.saturating_sub(start.elapsed()) + Duration::from_millis(rng.range(1, 4)));
    }
}

fn start_ready(root: &Path, state: &Path, extra: &[&str]) -> (Daemon, Duration) {
    let t = Instant::now();
    let d = Daemon::start(root, state, extra);
    d.wait_ready(READY_WITHIN);
    (d, t.elapsed())
}

/// The fixtures were written months ago: with the default `--end-timeout` every
/// session would end at the first tick and be pruned at each start (it is 40
/// days past its end), and the next appended line would start it again. That
/// is about replaying old files, not about restarts, so here sessions never end.
const REPLAY: [&str; 2] = ["--end-timeout", "100000d"];

/// SIGKILL twice while a writer appends real transcripts in chunks (some ending
/// in half a line), a third process finishes the stream: every counter equals
/// one uninterrupted read of the final files, and none was ever seen going down.
#[test]
fn kill_9_mid_appends_then_restart_counts_everything_once() {
    let seed = seed();
    eprintln!("seed {seed} (rerun with RESTART_SEED={seed})");
    let mut rng = Rng::new(seed ^ 0x9e37_79b9_7f4a_7c15);
    let root = empty_root();
    let state = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("projects")).unwrap();
    let t0 = Instant::now();

    let release = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (root, release, done) = (root.path().to_owned(), Arc::clone(&release), Arc::clone(&done));
        std::thread::spawn(move || {
            let w = write_in_chunks(&root, seed, Duration::from_secs(5), &release);
            done.store(true, Ordering::Release);
            w
        })
    };
    let sampler = Arc::new(Sampler::default());
    let sampling = sampler.run();
    std::thread::sleep(Duration::from_millis(rng.range(100, 400)));

    let mut lives = Vec::new();
    for _ in 0..2 {
        let (d, ready) = start_ready(root.path(), state.path(), &REPLAY);
        sampler.attach(&d);
        let life = Duration::from_millis(rng.range(500, 1500));
        std::thread::sleep(life);
        sampler.detach();
        assert!(!done.load(Ordering::Acquire), "the writer finished before the kill: not mid-stream");
        d.kill9();
        lives.push((ready, life));
    }
    let (d, ready) = start_ready(root.path(), state.path(), &REPLAY);
    sampler.attach(&d);
    lives.push((ready, Duration::ZERO));
    release.store(true, Ordering::Release);
    let written = writer.join().unwrap();
    eprintln!("writer: {written:?} done at {:?}; processes (ready after, killed after): {lives:?}", t0.elapsed());

    // Expected: one uninterrupted read of the final files. Every check below
    // runs; what failed is reported together at the end.
    let mut problems = Vec::new();
    let mut section = |title: &str, lines: Vec<String>| {
        if !lines.is_empty() {
            problems.push(format!("{title} ({}):\n  {}", lines.len(), lines.join("\n  ")));
        }
    };
    let scan = scan_projects(&root.path().join("projects"));
    let caught_up = d.wait_for(Duration::from_secs(10), |m| scan_diff(m, &scan).is_empty());
    let restarted = d.metrics();
    eprintln!("after the writer: /metrics matched scan in {caught_up:?}");
    section("after two SIGKILLs, /metrics never matched scan of the final files", scan_diff(&restarted, &scan));
    let fresh_state = tempfile::tempdir().unwrap();
    let (fresh, _) = start_ready(root.path(), fresh_state.path(), &REPLAY);
    let single = fresh.metrics();
    fresh.stop();
    section("a fresh daemon disagrees with scan", scan_diff(&single, &scan));
    section("the restarted daemon differs from a fresh one", content_diff("restarted", &restarted, "fresh", &single));
    // Bytes count once too: otherwise the counter is not a function of the
    // position, and a SIGKILL after re-reads of a half line makes it go down.
    let bytes = [bytes_read(&restarted), bytes_read(&single), scan["bytes"].as_f64().unwrap()];
    eprintln!("bytes read: restarted {}, fresh {}, scan {}", bytes[0], bytes[1], bytes[2]);
    if bytes[0] != bytes[2] || bytes[1] != bytes[2] {
        section(
            "claude_sessions_exporter_bytes_read_total differs from scan's bytes (half lines read again count again)",
            vec![format!("restarted {}, fresh {}, scan {}", bytes[0], bytes[1], bytes[2])],
        );
    }

    // SIGTERM and one more start from that checkpoint: the same values, to the
    // bit. First let a tick pass after the last line, so that every session is
    // idle (going idle observes a turn duration).
    std::thread::sleep(Duration::from_millis(1200));
    let settled =
        d.wait_for(Duration::from_secs(5), |m| m.sum("claude_sessions_sessions", &[("state", "active")]) == 0.0);
    assert!(settled.is_some(), "sessions of months-old transcripts still active");
    let last = d.metrics();
    sampler.detach();
    d.stop();
    let (d, _) = start_ready(root.path(), state.path(), &REPLAY);
    sampler.attach(&d);
    section("a SIGTERM restart with nothing new to read changed values", round_trip_diff(&last, &d.metrics()));
    sampler.detach();
    d.stop();

    sampler.stop.store(true, Ordering::Release);
    sampling.join().unwrap();
    let s = sampler.state.lock().unwrap();
    let samples: usize = s.per_life.iter().sum();
    let series = s.last.as_ref().map_or(0, |l| l.1.len());
    eprintln!(
        "monotonicity: {samples} samples of {series} counter/histogram series checked over {} processes {:?}; total {:?}",
        s.per_life.len(),
        s.per_life,
        t0.elapsed()
    );
    assert!(s.per_life.iter().all(|n| *n >= 2), "too few samples per process: {:?}", s.per_life);
    let (buckets, other): (Vec<_>, Vec<_>) = s.violations.iter().cloned().partition(|v| v.contains("_bucket["));
    let mut shown = other;
    if !buckets.is_empty() {
        shown.push(format!("... and {} histogram buckets", buckets.len()));
    }
    section("samples went down (process n is the n-th start; 1→2 and 2→3 are SIGKILLs, 3→4 a SIGTERM)", shown);
    assert!(problems.is_empty(), "seed {seed}:\n{}", problems.join("\n"));
}

/// SIGTERM, half of the transcripts deleted while down, start again: counts of
/// the deleted files stay, the files are no longer tracked, and a new file adds
/// exactly what scan says of it.
#[test]
fn transcripts_deleted_while_down_keep_their_counts() {
    let root = empty_root();
    let state = tempfile::tempdir().unwrap();
    let sources = sources();
    copy_sources(root.path(), &sources);
    let (d, _) = start_ready(root.path(), state.path(), &[]);
    let before = d.metrics();
    assert_eq!(before.sum("claude_sessions_exporter_files_tracked", &[]), sources.len() as f64);
    let scan = scan_projects(&root.path().join("projects"));
    let diff = scan_diff(&before, &scan);
    assert!(diff.is_empty(), "first run disagrees with scan:\n{}", diff.join("\n"));
    assert_eq!(bytes_read(&before), scan["bytes"].as_f64().unwrap(), "bytes read");
    d.stop();

    let deleted: Vec<_> = sources.iter().step_by(2).collect();
    for (rel, _) in &deleted {
        std::fs::remove_file(root.path().join("projects").join(rel)).unwrap();
    }
    let (d, _) = start_ready(root.path(), state.path(), &[]);
    let after = d.metrics();
    let mut lower = Vec::new();
    let after_all = monotone(&after);
    for (k, v) in monotone(&before) {
        match after_all.get(&k) {
            Some(a) if *a >= v => {}
            got => lower.push(format!("{k}: {v} -> {got:?}")),
        }
    }
    assert!(lower.is_empty(), "counters went down across the restart:\n{}", lower.join("\n"));
    let diff = content_diff("before", &before, "after", &after);
    assert!(diff.is_empty(), "counts changed across a SIGTERM restart:\n{}", diff.join("\n"));
    assert_eq!(bytes_read(&after), bytes_read(&before), "bytes read changed across a SIGTERM restart");
    let diff = round_trip_diff(&before, &after);
    assert!(diff.is_empty(), "a SIGTERM restart changed values:\n{}", diff.join("\n"));
    assert_eq!(
        after.sum("claude_sessions_exporter_files_tracked", &[]),
        (sources.len() - deleted.len()) as f64,
        "deleted files are still tracked"
    );

    // A new transcript adds exactly its own scan totals.
    let new_src = real("claude-code-viewer/projects/sample-project/5c0375b4-57a5-4f26-b12d-d022ee4e51b7.jsonl");
    let bytes = std::fs::read(new_src).unwrap();
    let shadow = tempfile::tempdir().unwrap();
    append(&shadow.path().join("-new/5c0375b4-57a5-4f26-b12d-d022ee4e51b7.jsonl"), &bytes);
    let own = scan_projects(shadow.path());
    append(&root.path().join("projects/-new/5c0375b4-57a5-4f26-b12d-d022ee4e51b7.jsonl"), &bytes);
    let deltas = |now: &Metrics| -> Vec<String> {
        let mut out = Vec::new();
        let mut check = |what: &str, name: &str, f: &[(&str, &str)], want: f64, rel: f64| {
            let got = now.sum(name, f) - after.sum(name, f);
            if !close(got, want, rel) {
                out.push(format!("{what}: +{got}, scan of the file {want}"));
            }
        };
        for t in TYPES {
            check(t, "claude_sessions_tokens_total", &[("type", t)], scan_tokens(&own, t), 0.0);
        }
        let models = own["models"].as_object().unwrap();
        let requests = models.values().map(|m| m["requests"].as_f64().unwrap()).sum();
        check("requests", "claude_sessions_api_requests_total", &[], requests, 0.0);
        let cost = models.values().map(|m| m["cost_usd"].as_f64().unwrap()).sum();
        // Each model's cost in scan's JSON is rounded to micro-dollars.
        check("cost", "claude_sessions_cost_usd_total", &[], cost, 1e-5);
        let tools = own["tools"].as_object().unwrap();
        check(
            "tool calls",
            "claude_sessions_tool_calls_total",
            &[],
            tools.values().map(|t| t["calls"].as_f64().unwrap()).sum(),
            0.0,
        );
        check(
            "tool errors",
            "claude_sessions_tool_errors_total",
            &[],
            tools.values().map(|t| t["errors"].as_f64().unwrap()).sum(),
            0.0,
        );
        check("prompts", "claude_sessions_prompts_total", &[], own["prompts"].as_f64().unwrap(), 0.0);
        check("sessions", "claude_sessions_sessions_started_total", &[], own["sessions"].as_f64().unwrap(), 0.0);
        for (result, n) in own["lines"].as_object().unwrap() {
            check(result, "claude_sessions_exporter_lines_total", &[("result", result)], n.as_f64().unwrap(), 0.0);
        }
        check("bytes", "claude_sessions_exporter_bytes_read_total", &[], own["bytes"].as_f64().unwrap(), 0.0);
        out
    };
    if d.wait_for(Duration::from_secs(10), |m| deltas(m).is_empty()).is_none() {
        panic!("the new file did not add its scan totals:\n{}", deltas(&d.metrics()).join("\n"));
    }
    assert_eq!(
        d.metrics().sum("claude_sessions_exporter_files_tracked", &[]),
        (sources.len() - deleted.len() + 1) as f64
    );
    d.stop();
}

/// A checkpoint that cannot be parsed is moved aside with a warning, and the
/// counters are rebuilt from the transcript files.
#[test]
fn corrupt_checkpoint_is_rebuilt_from_files() {
    let root = empty_root();
    let state = tempfile::tempdir().unwrap();
    copy_sources(root.path(), &sources()[..4]);
    let garbage = b"{\"format\":1,\"files\":[{\"path\":\x00\xff garbage".to_vec();
    std::fs::write(state.path().join("checkpoint.json"), &garbage).unwrap();
    let (d, _) = start_ready(root.path(), state.path(), &[]);
    let logs = d.log_text();
    assert!(
        logs.lines().any(|l| l.contains("WARN") && l.to_lowercase().contains("corrupt")),
        "no warning about the corrupt checkpoint:\n{logs}"
    );
    let (m, scan) = (d.metrics(), scan_projects(&root.path().join("projects")));
    let diff = scan_diff(&m, &scan);
    assert!(diff.is_empty(), "rebuilt counters disagree with scan:\n{}", diff.join("\n"));
    assert_eq!(bytes_read(&m), scan["bytes"].as_f64().unwrap(), "bytes read");
    let moved = state.path().join("checkpoint.json.corrupt");
    assert_eq!(std::fs::read(&moved).ok(), Some(garbage), "the corrupt checkpoint was not kept as {}", moved.display());
    d.stop();
    let cp: serde_json::Value = serde_json::from_slice(&std::fs::read(state.path().join("checkpoint.json")).unwrap())
        .expect("a new, valid checkpoint after the stop");
    assert_eq!(cp["format"], 2);
}

/// The checkpoint holds project paths: mode 0600, written through a temporary
/// file that never stays behind.
#[test]
fn checkpoint_file_is_private_and_atomic() {
    use std::os::unix::fs::PermissionsExt;
    let root = empty_root();
    let state = tempfile::tempdir().unwrap();
    let sources = sources();
    copy_sources(root.path(), &sources[..2]);
    let (d, _) = start_ready(root.path(), state.path(), &[]);
    // New lines after start go to the journal (no whole-state rewrite for them).
    let (rel, src) = &sources[2];
    append(&root.path().join("projects").join(rel), &std::fs::read(real(src)).unwrap());
    let journal = state.path().join("journal.jsonl");
    let journaled = || std::fs::metadata(&journal).is_ok_and(|m| m.len() > 0);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !journaled() {
        assert!(std::time::Instant::now() < deadline, "new lines not journaled");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mode = std::fs::metadata(&journal).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "journal mode is {mode:o}");
    let writes = |m: &Metrics| m.sum("claude_sessions_exporter_checkpoint_writes_total", &[("result", "ok")]);
    assert_eq!(writes(&d.metrics()), 1.0, "only the checkpoint after reading history");
    d.stop();

    let path = state.path().join("checkpoint.json");
    let mode = std::fs::metadata(&path).expect("checkpoint written").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "checkpoint mode is {mode:o}");
    // The last checkpoint holds everything: the journal is empty.
    assert_eq!(std::fs::metadata(&journal).unwrap().len(), 0);
    let mut names: Vec<String> = std::fs::read_dir(state.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    // The lock file (the state folder's lock, with the last holder's pid) stays; so does the control token.
    assert_eq!(
        names,
        ["checkpoint.json", "control-token", "journal.jsonl", "lock"],
        "state folder holds more than it should"
    );
    let mode = std::fs::metadata(state.path().join("control-token")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "control token mode is {mode:o}");
    let cp: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).expect("checkpoint is JSON");
    assert_eq!(cp["files"].as_array().map(Vec::len), Some(3));
}
