//! The hooks against the real daemon: `serve` on loopback and the real `hook` binary, no
//! fake in between. An `approve` rule makes `hook pre-tool-use` register the call and wait;
//! a decision through `POST /api/approvals/{id}` reaches the hook within a second (allow,
//! or deny with the person's reason); no decision in time answers `ask` and leaves the
//! approval `expired`; a daemon that is stopped (before or during the wait) answers `ask`;
//! a pause denies the next call with the person's message and a resume lifts it; a note
//! reaches the next `post-tool-use` or `user-prompt-submit` exactly once. And in a real
//! browser (`tests/browser/approvals.mjs`, headless Chromium): a waiting hook's approval
//! shows in the console, whose Approve makes the hook print allow within a second and
//! whose Deny with a reason makes it print deny with that reason; its Pause makes the next
//! call deny with the message, Resume lifts it, its note reaches the next hook once; and
//! the browser console stays free of errors.

use std::io::Write;
use std::process::Child;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::console::{browser_tools, driver};
use super::control::Ctl;
use super::hook_control::{decision, finish};

const SESSION: &str = "0b9a3c1e-7d4f-4e55-9a61-3f2d8c0e1a77";

/// A rules file whose one rule wants a person's approval for Bash commands naming `deploy`.
const RULES: &str = "[[rule]]\nname = \"deploys\"\nseverity = \"warning\"\naction = \"approve\"\n\
                     tools = [\"Bash\"]\ncommand = 'deploy'\n";

/// The real daemon and a rules file next to it.
struct Setup {
    c: Ctl,
    dir: tempfile::TempDir,
}

impl Setup {
    fn start() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("rules.toml"), RULES).unwrap();
        Setup { c: Ctl::start(), dir }
    }

    fn url(&self) -> String {
        format!("http://{}", self.c.d.addr)
    }

    /// `hook <sub>` against this daemon (or `url`) with its token file.
    fn spawn(&self, sub: &str, url: &str, input: &Value, extra: &[&str]) -> Child {
        let token = self.c.state.path().join("control-token").to_string_lossy().into_owned();
        let rules = self.dir.path().join("rules.toml").to_string_lossy().into_owned();
        let mut args = vec!["--daemon", url, "--token-file", token.as_str()];
        if sub == "pre-tool-use" {
            args.extend(["--rules", rules.as_str()]);
        }
        args.extend_from_slice(extra);
        super::hook::spawn(sub, &args, input.to_string().as_bytes())
    }

    fn bash(&self, command: &str, extra: &[&str]) -> Child {
        self.spawn("pre-tool-use", &self.url(), &bash(command), extra)
    }

    /// The pending approval of [`SESSION`], once it shows in `GET /api/approvals` (10 s at most).
    fn pending(&self) -> Value {
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            let (status, list) = self.c.get("/api/approvals");
            assert_eq!(status, 200, "{list}");
            let found = list["approvals"].as_array().unwrap().iter().find(|a| a["state"] == "pending").cloned();
            if let Some(a) = found {
                return a;
            }
            assert!(Instant::now() < end, "no pending approval; {list}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn bash(command: &str) -> Value {
    json!({"session_id": SESSION, "hook_event_name": "PreToolUse", "cwd": "/w", "tool_name": "Bash",
           "tool_input": {"command": command}, "tool_use_id": "toolu_e2e"})
}

/// Decide the pending approval of a waiting hook; the hook's answer and how long after the decision it came.
fn decide(s: &Setup, body: Value) -> (Value, (String, String), Duration) {
    let child = s.bash("./deploy.sh production", &[]);
    let a = s.pending();
    assert_eq!(a["session_id"], SESSION);
    assert_eq!(a["tool_name"], "Bash");
    assert_eq!(a["summary"], "./deploy.sh production");
    assert_eq!(a["rule"], "deploys");
    // Let the hook settle into its long poll.
    std::thread::sleep(Duration::from_millis(300));
    let id = a["id"].as_str().unwrap();
    let decided = Instant::now();
    let (status, answer) = s.c.post(&format!("/api/approvals/{id}"), body);
    assert_eq!(status, 200, "{answer}");
    let (code, out) = finish(child);
    let took = decided.elapsed();
    assert_eq!(code, 0);
    (answer, decision(&out), took)
}

#[test]
fn an_allow_reaches_the_waiting_hook_within_a_second() {
    let s = Setup::start();
    let (answer, (d, reason), took) = decide(&s, json!({"decision": "allow", "reason": "release window is open"}));
    eprintln!("allow printed {took:?} after the decision");
    assert_eq!(answer["state"], "allowed");
    assert_eq!(answer["decided_by"], "api");
    assert_eq!(d, "allow", "{reason}");
    assert!(reason.contains("release window is open"), "{reason}");
    assert!(took < Duration::from_secs(1), "allow came {took:?} after the decision");
}

#[test]
fn a_deny_reaches_the_waiting_hook_with_the_reason() {
    let s = Setup::start();
    let (answer, (d, reason), took) = decide(&s, json!({"decision": "deny", "reason": "not on a Friday"}));
    eprintln!("deny printed {took:?} after the decision");
    assert_eq!(
        (answer["state"].as_str(), answer["decided_reason"].as_str()),
        (Some("denied"), Some("not on a Friday"))
    );
    assert_eq!(d, "deny");
    assert!(reason.contains("not on a Friday"), "{reason}");
    assert!(took < Duration::from_secs(1), "deny came {took:?} after the decision");
}

#[test]
fn no_decision_in_time_asks_and_the_approval_is_expired() {
    let s = Setup::start();
    let started = Instant::now();
    let child = s.bash("make deploy", &["--approval-timeout", "2s"]);
    let id = s.pending()["id"].as_str().unwrap().to_owned();
    let (code, out) = finish(child);
    let took = started.elapsed();
    eprintln!("ask printed {took:?} after the hook started (timeout 2 s)");
    assert_eq!(code, 0);
    let (d, reason) = decision(&out);
    assert_eq!(d, "ask", "{reason}");
    assert!(took >= Duration::from_secs(2) && took < Duration::from_secs(4), "took {took:?}");
    let (_, a) = s.c.get(&format!("/api/approvals/{id}"));
    assert_eq!(a["state"], "expired", "{a}");
    assert_eq!(a["decided_by"], "hook", "{a}");
    // Too late now: a decision is refused.
    let (status, _) = s.c.post(&format!("/api/approvals/{id}"), json!({"decision": "allow"}));
    assert_eq!(status, 409);
}

#[test]
fn a_stopped_daemon_means_ask_before_and_during_the_wait() {
    let s = Setup::start();
    let url = s.url();
    let child = s.bash("./deploy.sh staging", &[]);
    s.pending();
    let Setup { c, dir } = s;
    let Ctl { d, token, state, .. } = c;
    let stopping = Instant::now();
    d.stop();
    let (code, out) = finish(child);
    eprintln!("ask printed {:?} after stopping the daemon during the wait", stopping.elapsed());
    assert_eq!(code, 0);
    let (d1, reason) = decision(&out);
    assert_eq!(d1, "ask", "daemon gone while waiting: {reason}");
    assert!(stopping.elapsed() < Duration::from_secs(10), "took {:?}", stopping.elapsed());

    // Nothing listens any more: ask at once, never allow.
    let token_file = state.path().join("control-token").to_string_lossy().into_owned();
    let rules = dir.path().join("rules.toml").to_string_lossy().into_owned();
    let started = Instant::now();
    let args = ["--daemon", &url, "--token-file", &token_file, "--rules", &rules];
    let (code, out) = finish(super::hook::spawn("pre-tool-use", &args, bash("./deploy.sh x").to_string().as_bytes()));
    assert_eq!(code, 0);
    let (d2, reason) = decision(&out);
    assert_eq!(d2, "ask", "{reason}");
    assert!(reason.contains("cannot be reached"), "{reason}");
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
    assert_eq!(token.len(), 64);
}

#[test]
fn a_pause_denies_the_next_call_with_the_message_and_resume_lifts_it() {
    let s = Setup::start();
    let message = "hold on, I am reading the migration";
    let (status, body) = s.c.post(&format!("/api/sessions/{SESSION}/pause"), json!({"message": message}));
    assert_eq!(status, 200, "{body}");
    let (code, out) = finish(s.bash("ls -la", &[]));
    assert_eq!(code, 0);
    let (d, reason) = decision(&out);
    assert_eq!(d, "deny", "a call the rules do not flag is denied while paused");
    assert!(reason.contains(message), "{reason}");
    // An approval is not even registered while paused.
    let (_, out) = finish(s.bash("./deploy.sh production", &[]));
    assert_eq!(decision(&out).0, "deny");
    assert_eq!(s.c.get("/api/approvals").1["approvals"], json!([]));

    let (status, body) = s.c.post(&format!("/api/sessions/{SESSION}/resume"), json!({}));
    assert_eq!(status, 200, "{body}");
    let (code, out) = finish(s.bash("ls -la", &[]));
    assert_eq!(code, 0);
    if !out.trim().is_empty() {
        let (d, reason) = decision(&out);
        assert_ne!(d, "deny", "resumed, yet denied: {reason}");
        assert!(!reason.contains(message), "{reason}");
    }
}

#[test]
fn a_note_reaches_the_next_hook_exactly_once() {
    let s = Setup::start();
    let url = s.url();
    let post = json!({"session_id": SESSION, "hook_event_name": "PostToolUse", "tool_name": "Bash",
                      "tool_input": {}, "tool_response": {}});
    let prompt = json!({"session_id": SESSION, "hook_event_name": "UserPromptSubmit", "cwd": "/w", "prompt": "go on"});
    for (sub, input, event, text) in [
        ("post-tool-use", &post, "PostToolUse", "use the staging database, not prod"),
        ("user-prompt-submit", &prompt, "UserPromptSubmit", "the tests in tests/it are slow; run one at a time"),
    ] {
        let (status, body) = s.c.post(&format!("/api/sessions/{SESSION}/notes"), json!({"text": text}));
        assert_eq!(status, 201, "{body}");
        assert_eq!(s.c.get(&format!("/api/control/{SESSION}")).1["notes_pending"], 1);
        let (code, out) = finish(s.spawn(sub, &url, input, &[]));
        assert_eq!(code, 0);
        let v: Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{sub}: {e}: {out:?}"));
        assert_eq!(v["hookSpecificOutput"]["hookEventName"], event);
        let ctx = v["hookSpecificOutput"]["additionalContext"].as_str().unwrap();
        assert_eq!(ctx.matches(text).count(), 1, "{sub}: {ctx}");
        assert_eq!(s.c.get(&format!("/api/control/{SESSION}")).1["notes_pending"], 0);
        let (code, again) = finish(s.spawn(sub, &url, input, &[]));
        assert_eq!((code, again.as_str()), (0, ""), "{sub}: each note once");
    }
}

fn now_ms() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis()
}

#[test]
fn the_console_approves_denies_pauses_resumes_and_notes() {
    let Some((node, script)) = browser_tools("approvals.mjs") else { return };
    let s = Setup::start();
    let login = format!("{}/?token={}", s.url(), s.c.token);
    let (_driver, mut stdin, rx) = driver(&node, &script, &[login.as_str()]);
    let ready = rx.recv_timeout(Duration::from_secs(60)).expect("the driver's page never connected");
    assert_eq!(ready["ready"], true, "{ready}");
    assert_eq!(ready["location"], format!("{}/", s.url()), "the token URL redirects to /");

    for (command, line, want, reason) in [
        ("./deploy.sh production", "approve\n", "allow", None),
        (
            "./deploy.sh staging",
            "deny not before the release notes are out\n",
            "deny",
            Some("not before the release notes are out"),
        ),
    ] {
        let hook = s.bash(command, &["--approval-timeout", "15s"]);
        let pending = s.pending();
        stdin.write_all(line.as_bytes()).unwrap();
        let clicked = rx.recv_timeout(Duration::from_secs(30)).expect("the driver clicked nothing");
        assert!(clicked.get("result").is_none(), "driver: {clicked}");
        assert_eq!(clicked["id"], pending["id"], "{clicked}");
        assert_eq!(clicked["summary"], command, "the console shows the command");
        let (code, out) = finish(hook);
        let took = now_ms().saturating_sub(clicked["at_ms"].as_u64().unwrap() as u128);
        eprintln!("console {}: the hook printed {want} {took} ms after the click", clicked["clicked"]);
        assert_eq!(code, 0);
        let (d, why) = decision(&out);
        assert_eq!(d, want, "{why}");
        if let Some(r) = reason {
            assert!(why.contains(r), "{why}");
        }
        assert!(took < 1000, "the hook answered {took} ms after the click");
        let id = pending["id"].as_str().unwrap();
        assert_eq!(s.c.get(&format!("/api/approvals/{id}")).1["decided_by"], "console", "decided by cookie");
    }

    // The session's view: pause with a message, resume, a note.
    let mut say = |line: &str| {
        stdin.write_all(format!("{line}\n").as_bytes()).unwrap();
        let answer = rx.recv_timeout(Duration::from_secs(30)).expect("the driver did not answer");
        assert!(answer.get("result").is_none(), "driver after {line:?}: {answer}");
        answer
    };
    say(&format!("open {SESSION}"));
    let message = "wait, I am reading the plan";
    let paused = say(&format!("pause {message}"));
    assert!(paused["info"].as_str().unwrap().contains(message), "{paused}");
    let (_, out) = finish(s.bash("ls -la", &[]));
    let (d, why) = decision(&out);
    assert_eq!(d, "deny");
    assert!(why.contains(message), "{why}");
    say("resume");
    let (_, out) = finish(s.bash("ls -la", &[]));
    assert!(out.trim().is_empty() || decision(&out).0 != "deny", "resumed, yet: {out}");
    let note = "the staging database is at db-staging:5432";
    let queued = say(&format!("note {note}"));
    assert!(queued["info"].as_str().unwrap().contains("1 note"), "{queued}");
    let post = json!({"session_id": SESSION, "hook_event_name": "PostToolUse", "tool_name": "Bash",
                      "tool_input": {}, "tool_response": {}});
    let (_, out) = finish(s.spawn("post-tool-use", &s.url(), &post, &[]));
    assert_eq!(out.matches(note).count(), 1, "{out}");
    let (_, again) = finish(s.spawn("post-tool-use", &s.url(), &post, &[]));
    assert_eq!(again, "", "each note once");

    stdin.write_all(b"done\n").unwrap();
    let out = rx.recv_timeout(Duration::from_secs(30)).expect("the driver gave no result");
    let r = &out["result"];
    assert!(r.get("failure").is_none(), "driver failed: {}\nlogs:\n{}", r["failure"], s.c.d.log_text());
    let messages = r["console"].as_array().unwrap();
    assert!(messages.is_empty(), "browser console: {messages:#?}");
}
