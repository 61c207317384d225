//! A small fuzzer that runs on the stable toolchain (cargo-fuzz needs nightly).
//!
//! In: a target name, seed inputs and a target function. For `FUZZ_SECONDS`
//! (default 3) it feeds the target inputs made from the seeds by stacked
//! mutations (bit flips, byte inserts and deletes, splices of two inputs,
//! repeated chunks, interesting bytes and tokens: quotes, backslashes, braces,
//! newlines, NUL escapes, huge numbers, deep nesting) and structured inputs
//! built with `arbitrary` from a seeded PRNG (JSON trees when the seeds are
//! JSON, token soups otherwise). There is no coverage feedback: it is a
//! black-box fuzzer, cheap to run everywhere, complementing the property tests.
//!
//! Out: a panic in the target is caught, its input saved to
//! `target/fuzz-crashes/<name>-<hash>` and printed in base64; fuzzing goes on
//! and the test fails at the end. A single input running longer than the
//! timeout (5 s) is a hang: saved and printed the same way, and the test fails
//! at once (the stuck thread is left behind). At the end it prints the target,
//! executions, executions per second, seconds and the number of distinct crashes.
//!
//! Environment: `FUZZ_SECONDS` (run time), `FUZZ_SEED` (the PRNG seed, printed
//! at the start so a run can be repeated), `FUZZ_REPLAY=<file or folder>` (run
//! only those inputs, e.g. a saved crash).
//!
//! Generic on purpose: a target is `Fn(&[u8])`; its own module builds seeds
//! and, if it wants, a dictionary of tokens (see [`Options`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

use arbitrary::{Arbitrary, Unstructured};

/// How inputs are made, beyond the byte mutations every target gets.
#[derive(Clone)]
pub struct Options {
    /// Tokens of the target's language, inserted by mutations and used by
    /// structured inputs (added to [`INTERESTING`]; JSON seeds add their keys).
    pub dictionary: Vec<Vec<u8>>,
    /// Structured inputs: `None` decides from the seeds (JSON or tokens).
    pub structure: Option<Structure>,
    /// Inputs are cut to this length.
    pub max_len: usize,
    /// One input running longer than this is a hang.
    pub timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options { dictionary: Vec::new(), structure: None, max_len: 256 << 10, timeout: Duration::from_secs(5) }
    }
}

/// The kind of structured input made with `arbitrary`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Structure {
    /// JSON: a seed's tree with nodes replaced, removed or repeated, or a new tree of dictionary words.
    Json,
    /// A concatenation of dictionary words, seed pieces and random bytes.
    Tokens,
}

/// Bytes and tokens that break parsers.
pub const INTERESTING: &[&[u8]] = &[
    b"\"",
    b"\\",
    b"{",
    b"}",
    b"[",
    b"]",
    b"\n",
    b"\r\n",
    b"\0",
    b"\\u0000",
    b"\\ud800",
    b"\\udc00x",
    b"\\\"",
    b":",
    b",",
    b"null",
    b"true",
    b"-0",
    b"1e999999",
    b"-1e-999999",
    b"18446744073709551616",
    b"-9223372036854775809",
    b"123456789012345678901234567890.5e30",
    b"NaN",
    b"\xff\xfe",
    b"\xc3",
    b"\xe2\x82",
    b"\xf0\x9f\x98\x80",
    b"'",
    b"`",
    b"$(",
    b";",
    b"|",
    b"&&",
];

/// Run `target` on generated inputs for `FUZZ_SECONDS`; see the module doc.
pub fn run(name: &str, seeds: Vec<Vec<u8>>, target: impl Fn(&[u8]) + Send + Sync + 'static) {
    run_with(name, seeds, Options::default(), target)
}

/// [`run`] with options.
pub fn run_with(name: &str, seeds: Vec<Vec<u8>>, opts: Options, target: impl Fn(&[u8]) + Send + Sync + 'static) {
    install_panic_hook();
    assert!(!seeds.is_empty(), "{name}: no seeds");
    let target = Arc::new(target);
    if let Some(replay) = std::env::var_os("FUZZ_REPLAY") {
        return replay_inputs(name, Path::new(&replay), &*target);
    }
    let seconds: f64 = std::env::var("FUZZ_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(3.0);
    let seed: u64 = std::env::var("FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64)
    });
    eprintln!("fuzz {name}: {} seeds, {seconds} s, FUZZ_SEED={seed}", seeds.len());

    let maker = Maker::new(seeds, &opts, seed);
    let current = Arc::new(Mutex::new(Current::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let execs = Arc::new(AtomicU64::new(0));
    let (crash_tx, crash_rx) = mpsc::channel::<(Vec<u8>, Crash)>();
    let worker = {
        let (current, stop, execs, target) = (Arc::clone(&current), Arc::clone(&stop), Arc::clone(&execs), target);
        let mut maker = maker;
        std::thread::Builder::new()
            .name(format!("fuzz-{name}"))
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let input = maker.next();
                    {
                        let mut c = current.lock().unwrap_or_else(|p| p.into_inner());
                        c.input.clone_from(&input);
                        c.started = Some(Instant::now());
                    }
                    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| target(&input)));
                    current.lock().unwrap_or_else(|p| p.into_inner()).started = None;
                    execs.fetch_add(1, Ordering::Relaxed);
                    if let Err(payload) = result {
                        let _ = crash_tx.send((input, describe(&*payload)));
                    }
                }
            })
            .expect("spawn fuzz worker")
    };

    let start = Instant::now();
    let run_for = Duration::from_secs_f64(seconds);
    // Distinct crashes: by where they panic (the message may hold varying values).
    let mut crashes: BTreeMap<String, (String, PathBuf)> = BTreeMap::new();
    let mut record = |input: Vec<u8>, c: Crash| {
        if let std::collections::btree_map::Entry::Vacant(slot) = crashes.entry(c.at) {
            let file = save(name, &input);
            report(name, "crash", &format!("{} at {}", c.message, slot.key()), &input, &file);
            slot.insert((c.message, file));
        }
    };
    let mut hang = None;
    loop {
        match crash_rx.recv_timeout(Duration::from_millis(50)) {
            Ok((input, crash)) => record(input, crash),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        let stuck = {
            let c = current.lock().unwrap_or_else(|p| p.into_inner());
            c.started.filter(|t| t.elapsed() > opts.timeout).map(|t| (c.input.clone(), t.elapsed()))
        };
        if let Some((input, took)) = stuck {
            let file = save(name, &input);
            report(name, "hang", &format!("one input ran for {took:?}"), &input, &file);
            hang = Some(file);
            break;
        }
        if start.elapsed() >= run_for {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    if hang.is_none() {
        let _ = worker.join();
        while let Ok((input, crash)) = crash_rx.try_recv() {
            record(input, crash);
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let n = execs.load(Ordering::Relaxed);
    eprintln!(
        "fuzz {name}: executions {n}, exec/s {:.0}, seconds {secs:.1}, distinct crashes {}{}",
        n as f64 / secs,
        crashes.len(),
        if hang.is_some() { ", 1 hang" } else { "" }
    );
    let mut failures: Vec<String> =
        crashes.iter().map(|(at, (msg, f))| format!("crash {msg} at {at} ({})", f.display())).collect();
    failures.extend(hang.map(|f| format!("hang ({})", f.display())));
    assert!(failures.is_empty(), "fuzz {name} found:\n{}", failures.join("\n"));
}

#[derive(Default)]
struct Current {
    input: Vec<u8>,
    started: Option<Instant>,
}

fn replay_inputs(name: &str, path: &Path, target: &dyn Fn(&[u8])) {
    let files: Vec<PathBuf> = if path.is_dir() {
        let mut v: Vec<PathBuf> =
            std::fs::read_dir(path).expect("FUZZ_REPLAY folder").map(|e| e.unwrap().path()).collect();
        v.sort();
        v
    } else {
        vec![path.to_owned()]
    };
    for f in &files {
        let input = std::fs::read(f).unwrap_or_else(|e| panic!("FUZZ_REPLAY {}: {e}", f.display()));
        eprintln!("fuzz {name}: replaying {} ({} bytes)", f.display(), input.len());
        target(&input);
    }
}

/// `target/fuzz-crashes/<name>-<hash>`.
fn save(name: &str, input: &[u8]) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().expect("target dir").join("fuzz-crashes");
    let file = dir.join(format!("{name}-{:016x}", fnv1a(input)));
    let written = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&file, input));
    if let Err(e) = written {
        eprintln!("fuzz {name}: cannot save {}: {e}", file.display());
    }
    file
}

fn report(name: &str, what: &str, why: &str, input: &[u8], file: &Path) {
    eprintln!(
        "fuzz {name}: {what}: {why}\n  input ({} bytes) saved to {}\n  replay: FUZZ_REPLAY={} cargo test --test fuzz {name}\n  base64 (complete): {}",
        input.len(),
        file.display(),
        file.display(),
        base64(input)
    );
}

fn fnv1a(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325, |h, x| (h ^ u64::from(*x)).wrapping_mul(0x0100_0000_01b3))
}

pub fn base64(input: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for c in input.chunks(3) {
        let n =
            (u32::from(c[0]) << 16) | (u32::from(*c.get(1).unwrap_or(&0)) << 8) | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(char::from(A[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

thread_local! {
    /// Where the last panic on this thread happened (set by the hook).
    static PANIC_AT: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Panics on fuzz workers are expected: record where, print nothing (the
/// report does). Other threads keep the default behaviour.
fn install_panic_hook() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if std::thread::current().name().is_some_and(|n| n.starts_with("fuzz-")) {
                let at = info.location().map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()));
                PANIC_AT.with(|p| *p.borrow_mut() = at);
            } else {
                default(info);
            }
        }));
    });
}

/// A panic in the target: its message (first line) and where it happened.
struct Crash {
    message: String,
    at: String,
}

fn describe(payload: &(dyn std::any::Any + Send)) -> Crash {
    let msg = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".to_owned());
    let message = msg.lines().next().unwrap_or("").chars().take(300).collect::<String>();
    let at = PANIC_AT.with(|p| p.borrow_mut().take()).unwrap_or_else(|| "an unknown place".to_owned());
    Crash { message, at }
}

/// SplitMix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next() % n as u64) as usize }
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

/// Makes inputs: mutated seeds and recent inputs, and structured ones.
struct Maker {
    rng: Rng,
    seeds: Vec<Vec<u8>>,
    /// Seeds parsed as JSON, for tree mutations.
    trees: Vec<serde_json::Value>,
    recent: Vec<Vec<u8>>,
    words: Vec<Vec<u8>>,
    structure: Structure,
    max_len: usize,
    entropy: Vec<u8>,
}

impl Maker {
    fn new(seeds: Vec<Vec<u8>>, opts: &Options, seed: u64) -> Maker {
        let trees: Vec<serde_json::Value> =
            seeds.iter().filter_map(|s| serde_json::from_slice::<serde_json::Value>(s).ok()).collect();
        let structure =
            opts.structure.unwrap_or(if trees.len() * 2 >= seeds.len() { Structure::Json } else { Structure::Tokens });
        let mut words: Vec<Vec<u8>> = INTERESTING.iter().map(|w| w.to_vec()).collect();
        words.extend(opts.dictionary.iter().cloned());
        let mut keys = std::collections::BTreeSet::new();
        for t in &trees {
            collect_words(t, &mut keys, 0);
        }
        words.extend(keys.into_iter().take(2000));
        Maker {
            rng: Rng(seed),
            seeds,
            trees,
            recent: Vec::new(),
            words,
            structure,
            max_len: opts.max_len,
            entropy: Vec::new(),
        }
    }

    fn next(&mut self) -> Vec<u8> {
        let mut input = if self.rng.chance(25) { self.structured() } else { self.mutated() };
        input.truncate(self.max_len);
        if self.rng.chance(10) {
            if self.recent.len() < 256 {
                self.recent.push(input.clone());
            } else {
                let i = self.rng.below(256);
                self.recent[i].clone_from(&input);
            }
        }
        input
    }

    fn pick_base(&mut self) -> Vec<u8> {
        if !self.recent.is_empty() && self.rng.chance(30) {
            self.recent[self.rng.below(self.recent.len())].clone()
        } else {
            self.seeds[self.rng.below(self.seeds.len())].clone()
        }
    }

    fn mutated(&mut self) -> Vec<u8> {
        let mut v = self.pick_base();
        for _ in 0..1 + self.rng.below(8) {
            self.mutate(&mut v);
        }
        v
    }

    fn mutate(&mut self, v: &mut Vec<u8>) {
        let r = &mut self.rng;
        let at = r.below(v.len() + 1);
        match r.below(12) {
            0 if !v.is_empty() => {
                let i = at.min(v.len() - 1);
                v[i] ^= 1 << r.below(8);
            }
            1 if !v.is_empty() => {
                let i = at.min(v.len() - 1);
                v[i] = [0, 0xff, 0x7f, 0x80, b'"', b'\\', b'\n', b'{', b'}', b'[', b']', b':'][r.below(12)];
            }
            2 => {
                let n = 1 + r.below(8);
                let bytes: Vec<u8> = (0..n).map(|_| r.next() as u8).collect();
                v.splice(at..at, bytes);
            }
            3 if !v.is_empty() => {
                let end = (at + 1 + r.below(64)).min(v.len());
                v.drain(at.min(end)..end);
            }
            4 if !v.is_empty() => {
                // Repeat a chunk.
                let start = at.min(v.len() - 1);
                let end = (start + 1 + r.below(32)).min(v.len());
                let chunk = v[start..end].to_vec();
                let most = if r.chance(10) { 1000 } else { 8 };
                let times = 1 + r.below(most);
                let mut rep = Vec::with_capacity(chunk.len() * times);
                for _ in 0..times {
                    rep.extend_from_slice(&chunk);
                }
                v.splice(end..end, rep);
            }
            5 | 6 => {
                let w = self.words[r.below(self.words.len())].clone();
                v.splice(at..at, w);
            }
            7 => {
                // Splice: this input's head, another's tail.
                let other = if !self.recent.is_empty() && r.chance(30) {
                    &self.recent[r.below(self.recent.len())]
                } else {
                    &self.seeds[r.below(self.seeds.len())]
                };
                let from = r.below(other.len() + 1);
                let tail = other[from..].to_vec();
                v.truncate(at);
                v.extend_from_slice(&tail);
            }
            8 => {
                // Deep nesting.
                let depth = [10, 100, 129, 1000, 20_000][r.below(5)];
                let (open, close): (&[u8], &[u8]) = if r.chance(50) { (b"[", b"]") } else { (b"{\"a\":", b"}") };
                let closed = if r.chance(80) { depth } else { r.below(depth) };
                let mut nest = open.repeat(depth);
                nest.extend_from_slice(b"1");
                nest.extend(close.repeat(closed));
                v.splice(at..at, nest);
            }
            9 => v.truncate(at),
            10 if !v.is_empty() => {
                // Overwrite a run with one byte value (e.g. a number's digits with 9s).
                let end = (at + 1 + r.below(16)).min(v.len());
                let b = [b'9', b'0', b'\\', b'"', b' '][r.below(5)];
                for x in &mut v[at.min(end)..end] {
                    *x = b;
                }
            }
            _ => {
                let w = INTERESTING[r.below(INTERESTING.len())];
                v.splice(at..at, w.iter().copied());
            }
        }
    }

    fn structured(&mut self) -> Vec<u8> {
        self.entropy.clear();
        let n = 64 + self.rng.below(4096);
        self.entropy.extend((0..n).map(|_| self.rng.next() as u8));
        let entropy = std::mem::take(&mut self.entropy);
        let mut u = Unstructured::new(&entropy);
        let out = match self.structure {
            Structure::Json => {
                if !self.trees.is_empty() && self.rng.chance(70) {
                    let mut tree = self.trees[self.rng.below(self.trees.len())].clone();
                    for _ in 0..1 + self.rng.below(4) {
                        let _ = mutate_tree(&mut tree, &mut u, &self.words, 0);
                    }
                    serde_json::to_vec(&tree).unwrap_or_default()
                } else {
                    let mut out = Vec::new();
                    let _ = arbitrary_json(&mut u, &self.words, 0, &mut out);
                    out
                }
            }
            Structure::Tokens => {
                let pieces: Vec<Piece> = Vec::arbitrary(&mut u).unwrap_or_default();
                let mut out = Vec::new();
                for p in pieces {
                    match p {
                        Piece::Word(i) => out.extend_from_slice(&self.words[usize::from(i) % self.words.len()]),
                        Piece::SeedSlice(i, from, len) => {
                            let s = &self.seeds[usize::from(i) % self.seeds.len()];
                            let from = usize::from(from) % (s.len() + 1);
                            out.extend_from_slice(&s[from..(from + usize::from(len)).min(s.len())]);
                        }
                        Piece::Bytes(b) => out.extend(b),
                        Piece::Text(t) => out.extend_from_slice(t.as_bytes()),
                    }
                }
                out
            }
        };
        self.entropy = entropy;
        out
    }
}

#[derive(Arbitrary, Debug)]
enum Piece {
    Word(u16),
    SeedSlice(u16, u16, u8),
    Bytes(Vec<u8>),
    Text(String),
}

/// Object keys and short strings of a JSON tree, as dictionary words.
fn collect_words(v: &serde_json::Value, out: &mut std::collections::BTreeSet<Vec<u8>>, depth: usize) {
    if depth > 64 || out.len() > 4000 {
        return;
    }
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                out.insert(serde_json::to_vec(k).unwrap_or_default());
                collect_words(x, out, depth + 1);
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| collect_words(x, out, depth + 1)),
        serde_json::Value::String(s) if s.len() <= 40 => {
            out.insert(serde_json::to_vec(s).unwrap_or_default());
        }
        _ => {}
    }
}

/// A JSON value from `u`, using dictionary words as keys, strings and raw tokens.
pub fn arbitrary_json(
    u: &mut Unstructured,
    words: &[Vec<u8>],
    depth: usize,
    out: &mut Vec<u8>,
) -> arbitrary::Result<()> {
    let word = |u: &mut Unstructured| -> arbitrary::Result<&[u8]> { Ok(&words[u.choose_index(words.len())?]) };
    match u.int_in_range(0..=if depth > 20 { 5 } else { 8 })? {
        0 => out.extend_from_slice(b"null"),
        1 => out.extend_from_slice(if bool::arbitrary(u)? { b"true" } else { b"false" }),
        2 => match u.int_in_range(0..=3)? {
            0 => out.extend_from_slice(i64::arbitrary(u)?.to_string().as_bytes()),
            1 => out.extend_from_slice(u64::arbitrary(u)?.to_string().as_bytes()),
            2 => {
                let f = f64::arbitrary(u)?;
                out.extend_from_slice(if f.is_finite() { f.to_string() } else { "1e400".into() }.as_bytes())
            }
            _ => out.extend_from_slice(b"123456789012345678901234567890e-400"),
        },
        3 => {
            let s = String::arbitrary(u)?;
            out.extend(serde_json::to_vec(&s).unwrap_or_default());
        }
        4 | 5 => {
            // A dictionary word: a quoted key or string, or a raw token.
            out.extend_from_slice(word(u)?);
        }
        6 => {
            out.push(b'[');
            for i in 0..u.int_in_range(0..=4)? {
                if i > 0 {
                    out.push(b',');
                }
                arbitrary_json(u, words, depth + 1, out)?;
            }
            out.push(b']');
        }
        _ => {
            out.push(b'{');
            for i in 0..u.int_in_range(0..=5)? {
                if i > 0 {
                    out.push(b',');
                }
                let key = word(u)?;
                if key.first() == Some(&b'"') {
                    out.extend_from_slice(key);
                } else {
                    out.extend(serde_json::to_vec(&String::from_utf8_lossy(key)).unwrap_or_default());
                }
                out.push(b':');
                arbitrary_json(u, words, depth + 1, out)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

/// Change one node of `v`: replace it, change its type, drop or repeat a child.
fn mutate_tree(
    v: &mut serde_json::Value,
    u: &mut Unstructured,
    words: &[Vec<u8>],
    depth: usize,
) -> arbitrary::Result<()> {
    use serde_json::Value;
    // Go deeper most of the time, so changes land everywhere in the tree.
    let descend = depth < 64 && u.ratio(4, 5)?;
    match v {
        Value::Object(m) if descend && !m.is_empty() => {
            let i = u.choose_index(m.len())?;
            let key = m.keys().nth(i).cloned().expect("index in range");
            if u.ratio(1, 8)? {
                m.remove(&key);
                return Ok(());
            }
            return mutate_tree(m.get_mut(&key).expect("key"), u, words, depth + 1);
        }
        Value::Array(a) if descend && !a.is_empty() => {
            let i = u.choose_index(a.len())?;
            match u.int_in_range(0..=7)? {
                0 => {
                    a.remove(i);
                }
                1 => {
                    let x = a[i].clone();
                    for _ in 0..u.int_in_range(1..=16)? {
                        a.push(x.clone());
                    }
                }
                _ => return mutate_tree(&mut a[i], u, words, depth + 1),
            }
            return Ok(());
        }
        _ => {}
    }
    *v = match u.int_in_range(0..=6)? {
        0 => Value::from(u64::MAX),
        1 => Value::from(i64::MIN),
        2 => Value::from(-1),
        3 => Value::from(f64::arbitrary(u)?),
        4 => Value::String(String::arbitrary(u)?),
        5 => Value::String(String::from_utf8_lossy(&words[u.choose_index(words.len())?]).trim_matches('"').to_owned()),
        _ => {
            let mut out = Vec::new();
            arbitrary_json(u, words, depth, &mut out)?;
            serde_json::from_slice(&out).unwrap_or(Value::Null)
        }
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_is_standard() {
        assert_eq!(super::base64(b""), "");
        assert_eq!(super::base64(b"f"), "Zg==");
        assert_eq!(super::base64(b"fo"), "Zm8=");
        assert_eq!(super::base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(super::base64(&[0xff, 0xfe, 0x00]), "//4A");
    }
}
