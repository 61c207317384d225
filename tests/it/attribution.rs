//! A fact's project is fixed the first time it is seen and kept.
//!
//! Two projects hold copies of one session: `alpha` has it as written, `beta` has it
//! resumed there (the same lines under a new `sessionId` and working folder) plus one
//! more line of the same response, carrying more output tokens. Whatever order the
//! files are read in, by `scan` or by `serve` (incrementally, across a checkpoint
//! restart, across a `kill -9` and the journal's replay), the whole response counts
//! under the project (and the session) where it was first seen, and the totals per
//! project are the same for every order where that project is the same.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use claude_sessions::engine::checkpoint;
use claude_sessions::engine::{Engine, Settings};
use claude_sessions::source::journal::Journal;
use claude_sessions::state::metrics::Counter;

const MODEL: &str = "claude-opus-4-6";

fn line(session: &str, cwd: &str, body: &str) -> String {
    format!(r#"{{"sessionId":"{session}","cwd":"{cwd}",{body}}}"#) + "\n"
}

fn prompt(session: &str, cwd: &str) -> String {
    let body = r#""type":"user","uuid":"u1","timestamp":"2025-01-01T00:00:00Z","message":{"content":"go"}"#;
    line(session, cwd, body)
}

/// A line of response `m1`/`r1` with `output` tokens so far.
fn response(session: &str, cwd: &str, uuid: &str, output: u64) -> String {
    let body = format!(
        r#""type":"assistant","uuid":"{uuid}","timestamp":"2025-01-01T00:00:01Z","requestId":"r1","message":{{"id":"m1","model":"{MODEL}","usage":{{"input_tokens":10,"output_tokens":{output},"cache_read_input_tokens":100}},"content":[{{"type":"text","text":"x"}}]}}"#
    );
    line(session, cwd, &body)
}

/// The session as written in `alpha`.
fn alpha() -> String {
    prompt("sa", "/w/alpha") + &response("sa", "/w/alpha", "a1", 1)
}

/// The session resumed in `beta`: the same lines, then one more of the same response.
fn beta_copy() -> String {
    prompt("sb", "/w/beta") + &response("sb", "/w/beta", "a1", 1)
}

fn beta_more() -> String {
    response("sb", "/w/beta", "a2", 50)
}

/// A temporary `projects/` folder with both projects; `alpha_first`: whose folder sorts first.
struct Tree {
    _tmp: tempfile::TempDir,
    projects: PathBuf,
    state: PathBuf,
    alpha: PathBuf,
    beta: PathBuf,
}

impl Tree {
    fn new(alpha_first: bool) -> Tree {
        let tmp = tempfile::tempdir().unwrap();
        let projects = tmp.path().join("projects");
        let state = tmp.path().join("state");
        let (a, b) = if alpha_first { ("-w-1-alpha", "-w-2-beta") } else { ("-w-2-alpha", "-w-1-beta") };
        let alpha = projects.join(a).join("sa.jsonl");
        let beta = projects.join(b).join("sb.jsonl");
        for p in [&alpha, &beta] {
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        }
        std::fs::create_dir_all(&state).unwrap();
        Tree { _tmp: tmp, projects, state, alpha, beta }
    }

    /// A tree with both copies written: beta's whole (with its extra line) or without it.
    fn written(alpha_first: bool, beta_whole: bool) -> Tree {
        let t = Tree::new(alpha_first);
        write(&t.alpha, &alpha());
        write(&t.beta, &if beta_whole { beta_copy() + &beta_more() } else { beta_copy() });
        t
    }

    fn settings(&self) -> Settings {
        Settings { projects_dirs: vec![self.projects.clone()], ..Settings::default() }
    }

    /// As `serve` builds its engine: the checkpoint, then the journal's later records.
    fn serve(&self) -> Engine {
        let mut e = Engine::new(self.settings());
        let mut seq = 0;
        let restored = match checkpoint::load(&self.state).unwrap() {
            Some(cp) => {
                seq = cp.journal_seq;
                e.restore(cp);
                true
            }
            None => false,
        };
        let (mut j, records) = Journal::open(&self.state, seq).unwrap();
        if restored {
            e.replay(records);
        } else {
            j.reset().unwrap();
        }
        e.set_journal(j);
        e.reconcile();
        e.set_caught_up();
        e
    }
}

fn write(path: &Path, text: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// Every token, request and cost series, by its labels.
fn counted(e: &Engine) -> BTreeMap<String, f64> {
    let agg = e.aggregator();
    let agg = agg.lock().unwrap();
    let mut out = BTreeMap::new();
    for c in [Counter::Tokens, Counter::ApiRequests, Counter::Cost, Counter::Prompts] {
        for (labels, v) in agg.store.counter_series(c) {
            out.insert(format!("{c:?}{labels:?}"), v);
        }
    }
    out
}

/// (project, output tokens, requests) of every project with usage.
fn by_project(e: &Engine) -> Vec<(String, u64, u64)> {
    let agg = e.aggregator();
    let report = claude_sessions::report::Report::from_aggregator(&agg.lock().unwrap(), 0);
    report
        .projects
        .into_iter()
        .filter(|(_, u)| u.requests + u.output > 0)
        .map(|(p, u)| (p, u.output, u.requests))
        .collect()
}

/// Output tokens each session holds.
fn session_output(e: &Engine, id: &str) -> u64 {
    e.aggregator().lock().unwrap().session(id).map_or(0, |s| s.tokens.output)
}

/// The whole response (output 50) under `first`, nothing under the other project.
fn assert_first_seen(e: &Engine, first: &str, how: &str) {
    let (session, other) = if first == "alpha" { ("sa", "sb") } else { ("sb", "sa") };
    assert_eq!(by_project(e), vec![(first.to_owned(), 50, 1)], "{how}: the response counts under {first} only");
    assert_eq!((session_output(e, session), session_output(e, other)), (50, 0), "{how}: and in session {session}");
    let tokens = |ty| e.aggregator().lock().unwrap().store.counter(Counter::Tokens, &[first, MODEL, "main", ty]);
    assert_eq!((tokens("input"), tokens("output"), tokens("cache_read")), (10.0, 50.0, 100.0), "{how}");
}

fn scan(tree: &Tree) -> Engine {
    let mut e = Engine::new(tree.settings());
    e.scan(1, &|_, _| {});
    e
}

/// What `scan` counts when alpha's folder is read first: every other order where
/// alpha sees the response first must count the same.
fn alpha_first_by_scan() -> BTreeMap<String, f64> {
    counted(&scan(&Tree::written(true, true)))
}

#[test]
fn a_response_counts_under_the_project_it_was_first_seen_in_whatever_the_order() {
    // scan, alpha's folder first.
    let t = Tree::written(true, true);
    let alpha_first = scan(&t);
    assert_first_seen(&alpha_first, "alpha", "scan, alpha first");
    let expected = counted(&alpha_first);

    // scan on two threads: the same order of application.
    let mut e = Engine::new(t.settings());
    e.scan(2, &|_, _| {});
    assert_eq!(counted(&e), expected, "scan on two threads");

    // scan, beta's folder first: beta saw it first.
    let t = Tree::written(false, true);
    assert_first_seen(&scan(&t), "beta", "scan, beta first");

    // serve, beta read first: the same as scan with beta first.
    let e = t.serve();
    assert_first_seen(&e, "beta", "serve, beta first");
    assert_eq!(counted(&e), counted(&scan(&t)), "serve and scan, beta first");
}

#[test]
fn a_later_line_read_by_serve_after_a_restart_keeps_the_first_project() {
    let expected = alpha_first_by_scan();

    // serve reads both projects, the extra line not yet written; stopped gracefully.
    let t = Tree::written(true, false);
    t.serve().save(&t.state).unwrap();
    // The extra line arrives while it is stopped: read after the restart, from the checkpoint.
    write(&t.beta, &beta_more());
    let mut e = t.serve();
    assert_first_seen(&e, "alpha", "after a checkpoint restart");
    assert_eq!(counted(&e), expected, "serve across a restart, and scan");
    e.save(&t.state).unwrap();
    drop(e);
    assert_eq!(counted(&t.serve()), expected, "and after one more");
}

#[test]
fn a_later_line_journaled_before_a_kill_keeps_the_first_project() {
    let expected = alpha_first_by_scan();

    let t = Tree::written(true, false);
    let mut e = t.serve();
    e.save(&t.state).unwrap();
    // Read once caught up: journaled, then counted; killed (-9) before any checkpoint.
    write(&t.beta, &beta_more());
    e.reconcile();
    assert_first_seen(&e, "alpha", "serve, the line journaled");
    drop(e);
    // The checkpoint, then the journal's replay of the extra line.
    let e = t.serve();
    assert_first_seen(&e, "alpha", "after kill -9 and the journal's replay");
    assert_eq!(counted(&e), expected, "after the replay, and scan");
}

#[test]
fn a_later_line_read_incrementally_keeps_the_first_project() {
    let expected = alpha_first_by_scan();

    // serve follows both files as they are written: alpha, then beta's copy, then more.
    let t = Tree::new(true);
    let mut e = t.serve();
    write(&t.alpha, &alpha());
    e.reconcile();
    write(&t.beta, &beta_copy());
    e.reconcile();
    write(&t.beta, &beta_more());
    assert!(e.track(&t.beta));
    e.poll(&t.beta);
    e.commit();
    assert_first_seen(&e, "alpha", "serve, line by line");
    assert_eq!(counted(&e), expected, "serve line by line, and scan");
}
