//! The hooks against a daemon: pause, approvals and notes, with the real binary and a
//! fake daemon that answers the control API of issue 11 (std `TcpListener` on loopback).
//! The fake only records and answers; every check runs on the test's own thread.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::support;

const TOKEN: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const SESSION: &str = "5c0375b4-57a5-4f26-b12d-d022ee4e51b7";

/// One request the fake daemon received.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    auth: Option<String>,
    body: Value,
}

#[derive(Default)]
struct State {
    seen: Vec<Seen>,
    paused: Option<String>,
    /// The approval's decision: `("allowed" | "denied", reason)`.
    decision: Option<(String, String)>,
    expired: bool,
    notes: Vec<String>,
}

/// A fake daemon on 127.0.0.1 serving the control API from `State`.
struct Fake {
    url: String,
    state: Arc<(Mutex<State>, Condvar)>,
}

impl Fake {
    fn start() -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state: Arc<(Mutex<State>, Condvar)> = Arc::default();
        let shared = state.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let state = shared.clone();
                std::thread::spawn(move || serve(conn, &state));
            }
        });
        Fake { url, state }
    }

    fn with(&self, f: impl FnOnce(&mut State)) {
        let (lock, cv) = &*self.state;
        f(&mut lock.lock().unwrap());
        cv.notify_all();
    }

    fn seen(&self) -> Vec<Seen> {
        self.state.0.lock().unwrap().seen.clone()
    }

    /// Wait (up to 10 s) until a request for `path` arrived; it.
    fn wait_for(&self, method: &str, path: &str) -> Seen {
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            if let Some(s) = self.seen().into_iter().find(|s| s.method == method && s.path == path) {
                return s;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("no {method} {path}; seen: {:?}", self.seen());
    }
}

fn approval(id: &str, st: &State) -> Value {
    let (state, reason) = match (&st.decision, st.expired) {
        (Some((d, r)), _) => (d.as_str(), Some(r.clone())),
        (None, true) => ("expired", None),
        (None, false) => ("pending", None),
    };
    json!({"id": id, "session_id": SESSION, "tool_name": "Bash", "summary": "", "rule": "", "reason": "",
           "created_ms": 1, "state": state, "decided_reason": reason, "decided_by": "console"})
}

fn serve(conn: TcpStream, state: &(Mutex<State>, Condvar)) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or("").to_owned(), parts.next().unwrap_or("").to_owned());
    let (mut len, mut auth) = (0usize, None);
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
        let (k, v) = h.split_once(':').unwrap_or((&h, ""));
        match k.to_ascii_lowercase().as_str() {
            "content-length" => len = v.trim().parse().unwrap_or(0),
            "authorization" => auth = Some(v.trim().to_owned()),
            _ => {}
        }
    }
    let mut body = vec![0; len];
    reader.read_exact(&mut body).unwrap();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let (lock, cv) = state;
    let mut st = lock.lock().unwrap();
    st.seen.push(Seen { method: method.clone(), path: path.to_owned(), auth: auth.clone(), body });
    let authorized = auth.as_deref() == Some(&format!("Bearer {TOKEN}"));
    let (status, answer) = match (method.as_str(), path) {
        ("POST", _) if !authorized => (401, json!({"error": "missing or wrong token"})),
        ("GET", p) if p == format!("/api/control/{SESSION}") => {
            (200, json!({"paused": st.paused.is_some(), "message": st.paused, "notes_pending": st.notes.len()}))
        }
        ("POST", "/api/approvals") => (201, json!({"id": "a1"})),
        ("GET", "/api/approvals/a1") => {
            let wait = query.strip_prefix("wait=").and_then(|w| w.parse().ok()).unwrap_or(0);
            let end = Instant::now() + Duration::from_secs(wait);
            while st.decision.is_none() && Instant::now() < end {
                st = cv.wait_timeout(st, end - Instant::now()).unwrap().0;
            }
            (200, approval("a1", &st))
        }
        ("POST", "/api/approvals/a1/expire") => {
            st.expired = true;
            (200, approval("a1", &st))
        }
        ("POST", p) if p == format!("/api/sessions/{SESSION}/notes/take") => {
            let notes: Vec<Value> =
                st.notes.drain(..).enumerate().map(|(i, t)| json!({"id": i.to_string(), "text": t})).collect();
            (200, json!({ "notes": notes }))
        }
        _ => (404, json!({"error": "not found"})),
    };
    drop(st);
    let body = answer.to_string();
    let mut conn = conn;
    let _ = write!(
        conn,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// A token file and a rules file whose `approve` rule matches `cargo build`.
struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("control-token"), format!("{TOKEN}\n")).unwrap();
        std::fs::write(
            dir.path().join("rules.toml"),
            "[[rule]]\nname = \"builds\"\nseverity = \"warning\"\naction = \"approve\"\ntools = [\"Bash\"]\ncommand = '^cargo build'\n",
        )
        .unwrap();
        Setup { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_string_lossy().into_owned()
    }

    /// Start `hook <sub>` against `url` with `input` on stdin.
    fn spawn(&self, sub: &str, url: &str, input: &[u8], extra: &[&str]) -> Child {
        let token = self.path("control-token");
        let mut args = vec!["--daemon", url, "--token-file", token.as_str()];
        args.extend_from_slice(extra);
        super::hook::spawn(sub, &args, input)
    }

    fn pre_tool_use(&self, url: &str, input: &[u8], extra: &[&str]) -> Child {
        let rules = self.path("rules.toml");
        let mut args = vec!["--rules", rules.as_str()];
        args.extend_from_slice(extra);
        self.spawn("pre-tool-use", url, input, &args)
    }
}

/// Exit code and stdout of a finished hook.
pub fn finish(child: Child) -> (i32, String) {
    let out = child.wait_with_output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `(permissionDecision, permissionDecisionReason)` of a PreToolUse answer.
pub fn decision(stdout: &str) -> (String, String) {
    let v: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout:?}"));
    let out = &v["hookSpecificOutput"];
    assert_eq!(out["hookEventName"], "PreToolUse", "{v}");
    (out["permissionDecision"].as_str().unwrap().to_owned(), out["permissionDecisionReason"].as_str().unwrap().into())
}

fn sample(name: &str) -> Vec<u8> {
    std::fs::read(support::fixtures_dir().join("hooks").join(name)).expect("hook sample")
}

/// A URL where nothing listens (a port just bound and released).
fn closed_url() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", l.local_addr().unwrap())
}

#[test]
fn a_paused_session_is_denied_with_the_persons_message() {
    let (fake, setup) = (Fake::start(), Setup::new());
    fake.with(|s| s.paused = Some("hold on, I am reviewing the diff".into()));
    let (code, out) = finish(setup.pre_tool_use(&fake.url, &sample("bash-ls.json"), &[]));
    assert_eq!(code, 0);
    let (d, reason) = decision(&out);
    assert_eq!(d, "deny", "even a call the rules allow");
    assert!(reason.contains("hold on, I am reviewing the diff"), "{reason}");
    assert!(fake.wait_for("GET", &format!("/api/control/{SESSION}")).auth.is_none(), "reads need no token");
    // Resumed: the rules answer again.
    fake.with(|s| s.paused = None);
    let (_, out) = finish(setup.pre_tool_use(&fake.url, &sample("bash-ls.json"), &[]));
    assert_eq!(decision(&out).0, "allow");
}

#[test]
fn an_approval_allowed_answers_allow_within_a_second_of_the_decision() {
    let (fake, setup) = (Fake::start(), Setup::new());
    let child = setup.pre_tool_use(&fake.url, &sample("bash-cargo-build.json"), &[]);
    let created = fake.wait_for("POST", "/api/approvals");
    assert_eq!(created.auth.as_deref(), Some(format!("Bearer {TOKEN}").as_str()));
    assert_eq!(created.body["session_id"], SESSION);
    assert_eq!(created.body["tool_name"], "Bash");
    assert_eq!(created.body["summary"], "cargo build --release");
    assert_eq!(created.body["rule"], "builds");
    assert_eq!(created.body["tool_use_id"], "toolu_01HookBuild");
    fake.wait_for("GET", "/api/approvals/a1");
    std::thread::sleep(Duration::from_millis(300));
    let decided = Instant::now();
    fake.with(|s| s.decision = Some(("allowed".into(), "looks fine".into())));
    let (code, out) = finish(child);
    assert!(decided.elapsed() < Duration::from_secs(1), "answered {:?} after the decision", decided.elapsed());
    assert_eq!(code, 0);
    let (d, reason) = decision(&out);
    assert_eq!(d, "allow");
    assert!(reason.contains("looks fine"), "{reason}");
    assert!(!fake.seen().iter().any(|s| s.path.ends_with("/expire")), "decided: nothing expires");
}

#[test]
fn an_approval_denied_answers_deny_with_the_reason() {
    let (fake, setup) = (Fake::start(), Setup::new());
    let child = setup.pre_tool_use(&fake.url, &sample("bash-cargo-build.json"), &[]);
    fake.wait_for("GET", "/api/approvals/a1");
    fake.with(|s| s.decision = Some(("denied".into(), "not on the release branch".into())));
    let (code, out) = finish(child);
    assert_eq!(code, 0);
    let (d, reason) = decision(&out);
    assert_eq!(d, "deny");
    assert!(reason.contains("not on the release branch"), "{reason}");
}

#[test]
fn no_decision_in_time_expires_the_approval_and_asks() {
    let (fake, setup) = (Fake::start(), Setup::new());
    let started = Instant::now();
    let child = setup.pre_tool_use(&fake.url, &sample("bash-cargo-build.json"), &["--approval-timeout", "1s"]);
    let (code, out) = finish(child);
    let took = started.elapsed();
    assert_eq!(code, 0);
    let (d, reason) = decision(&out);
    assert_eq!(d, "ask", "{reason}");
    assert!(reason.contains("no decision"), "{reason}");
    let expire = fake.wait_for("POST", "/api/approvals/a1/expire");
    assert_eq!(expire.auth.as_deref(), Some(format!("Bearer {TOKEN}").as_str()));
    assert!(took >= Duration::from_secs(1) && took < Duration::from_secs(4), "took {took:?}");
}

#[test]
fn no_daemon_or_no_token_asks_and_never_allows() {
    let setup = Setup::new();
    let down = closed_url();
    let started = Instant::now();
    let (code, out) = finish(setup.pre_tool_use(&down, &sample("bash-cargo-build.json"), &[]));
    assert!(started.elapsed() < Duration::from_secs(3), "a refused connection is immediate");
    assert_eq!(code, 0);
    let (d, reason) = decision(&out);
    assert_eq!(d, "ask");
    assert!(reason.contains("cannot be reached"), "{reason}");
    // Without a daemon the other rules answer as before (no pause is possible).
    let (_, out) = finish(setup.pre_tool_use(&down, &sample("bash-ls.json"), &[]));
    assert_eq!(decision(&out).0, "allow");
    let (_, out) = finish(setup.pre_tool_use(&down, &sample("bash-rm-rf-root.json"), &[]));
    assert_eq!(decision(&out).0, "deny");

    // A running daemon but no token file: the approval cannot be registered.
    let fake = Fake::start();
    std::fs::remove_file(setup.path("control-token")).unwrap();
    let (_, out) = finish(setup.pre_tool_use(&fake.url, &sample("bash-cargo-build.json"), &[]));
    let (d, reason) = decision(&out);
    assert_eq!(d, "ask");
    assert!(reason.contains("no control token"), "{reason}");
    assert!(!fake.seen().iter().any(|s| s.method == "POST"), "nothing registered");
}

#[test]
fn a_note_is_delivered_once_as_additional_context() {
    let (fake, setup) = (Fake::start(), Setup::new());
    let prompt =
        format!(r#"{{"session_id":"{SESSION}","hook_event_name":"UserPromptSubmit","cwd":"/w","prompt":"go on"}}"#);
    let (code, out) = finish(setup.spawn("user-prompt-submit", &fake.url, prompt.as_bytes(), &[]));
    assert_eq!((code, out.as_str()), (0, ""), "no notes: nothing printed");
    fake.with(|s| s.notes.push("use the staging database, not prod".into()));
    let (code, out) = finish(setup.spawn("user-prompt-submit", &fake.url, prompt.as_bytes(), &[]));
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out:?}"));
    assert_eq!(v["hookSpecificOutput"]["hookEventName"], "UserPromptSubmit");
    assert!(
        v["hookSpecificOutput"]["additionalContext"].as_str().unwrap().contains("use the staging database, not prod")
    );
    assert_eq!(v.as_object().unwrap().len(), 1);
    let (_, again) = finish(setup.spawn("user-prompt-submit", &fake.url, prompt.as_bytes(), &[]));
    assert_eq!(again, "", "each note once");

    let post = format!(
        r#"{{"session_id":"{SESSION}","hook_event_name":"PostToolUse","tool_name":"Bash","tool_input":{{}},"tool_response":{{}}}}"#
    );
    fake.with(|s| s.notes.extend(["first".to_owned(), "second".to_owned()]));
    let (_, out) = finish(setup.spawn("post-tool-use", &fake.url, post.as_bytes(), &[]));
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["hookSpecificOutput"]["hookEventName"], "PostToolUse");
    let ctx = v["hookSpecificOutput"]["additionalContext"].as_str().unwrap();
    assert!(ctx.contains("- first\n- second"), "{ctx}");
    let takes: Vec<Seen> = fake.seen().into_iter().filter(|s| s.path.ends_with("/notes/take")).collect();
    assert_eq!(takes.len(), 4);
    assert!(takes.iter().all(|s| s.auth.as_deref() == Some(format!("Bearer {TOKEN}").as_str())));

    // No --token-file: the token is found in CLAUDE_SESSIONS_STATE_DIR, as `serve` puts it there.
    fake.with(|s| s.notes.push("third".to_owned()));
    let mut child = Command::new(support::bin())
        .args(["hook", "post-tool-use", "--daemon", &fake.url])
        .env_remove("CLAUDE_SESSIONS_TOKEN_FILE")
        .env("CLAUDE_SESSIONS_STATE_DIR", setup.dir.path())
        .env("XDG_STATE_HOME", "/nonexistent")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(post.as_bytes()).unwrap();
    let (_, out) = finish(child);
    assert!(out.contains("third"), "the state folder's token was used: {out:?}");

    // The daemon down: nothing printed, exit 0. The wrong event: a non-blocking error.
    let (code, out) = finish(setup.spawn("post-tool-use", &closed_url(), post.as_bytes(), &[]));
    assert_eq!((code, out.as_str()), (0, ""));
    let (code, out) = finish(setup.spawn("user-prompt-submit", &fake.url, post.as_bytes(), &[]));
    assert_eq!((code, out.as_str()), (1, ""));
}

/// Run `claude-sessions hooks <args>` with `env`: (exit code, stdout, stderr).
fn hooks(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(support::bin())
        .arg("hooks")
        .args(args)
        .env_remove("CLAUDE_SESSIONS_APPROVAL_TIMEOUT")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn hooks_install_then_uninstall_leaves_the_settings_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("claude");
    std::fs::create_dir_all(&config).unwrap();
    let settings = config.join("settings.json");
    let original = "{\n  \"model\": \"sonnet\",\n  \"hooks\": {\n    \"PreToolUse\": [\n      {\n        \"matcher\": \"Bash\",\n        \"hooks\": [\n          {\n            \"type\": \"command\",\n            \"command\": \"~/bin/audit.sh\",\n            \"timeout\": 5\n          }\n        ]\n      }\n    ]\n  },\n  \"env\": {\n    \"A\": \"1\"\n  }\n}\n";
    std::fs::write(&settings, original).unwrap();
    let env = [("CLAUDE_CONFIG_DIR", config.to_str().unwrap())];
    let (code, out, err) = hooks(&["status", "--scope", "user"], &env);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("not installed"), "{out}");

    let (code, out, err) = hooks(&["install", "--approval-timeout", "2m"], &env);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("installed claude-sessions hooks") && out.contains("backup"), "{out}");
    let installed = std::fs::read_to_string(&settings).unwrap();
    let v: Value = serde_json::from_str(&installed).unwrap();
    let bin = support::bin().to_string_lossy().into_owned();
    let pre = &v["hooks"]["PreToolUse"][1]["hooks"][0];
    assert_eq!(pre["command"], format!("{bin} hook pre-tool-use --approval-timeout 120s"));
    assert_eq!(pre["timeout"], 150);
    assert_eq!(v["hooks"]["UserPromptSubmit"][0]["hooks"][0]["command"], format!("{bin} hook user-prompt-submit"));
    assert_eq!(v["hooks"]["PostToolUse"][0]["hooks"][0]["command"], format!("{bin} hook post-tool-use"));
    let backups: Vec<_> = std::fs::read_dir(&config)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("settings.json.bak-"))
        .collect();
    assert_eq!(backups.len(), 1);
    assert_eq!(std::fs::read_to_string(&backups[0]).unwrap(), original);

    let (_, out, _) = hooks(&["install", "--approval-timeout", "2m"], &env);
    assert!(out.contains("already installed"), "{out}");
    assert_eq!(std::fs::read_to_string(&settings).unwrap(), installed, "idempotent");
    let (_, out, _) = hooks(&["status"], &env);
    assert!(out.lines().next().unwrap().starts_with("user (") && out.contains("): installed"), "{out}");

    let (code, out, err) = hooks(&["uninstall"], &env);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("removed"), "{out}");
    assert_eq!(std::fs::read_to_string(&settings).unwrap(), original, "byte-identical");

    // A malformed file: a clear error, and the file is left alone.
    std::fs::write(&settings, "{ \"hooks\": ").unwrap();
    let (code, _, err) = hooks(&["install", "--settings", settings.to_str().unwrap()], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("is not valid JSON") && err.contains("settings.json"), "{err}");
    assert_eq!(std::fs::read_to_string(&settings).unwrap(), "{ \"hooks\": ");
}

#[test]
fn a_daemon_that_hangs_costs_the_pause_check_at_most_its_timeouts() {
    // Accepts connections and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let held: Vec<TcpStream> = listener.incoming().flatten().collect();
        drop(held);
    });
    let setup = Setup::new();
    let started = Instant::now();
    let (code, out) = finish(setup.pre_tool_use(&url, &sample("bash-ls.json"), &[]));
    let took = started.elapsed();
    assert_eq!(code, 0);
    assert_eq!(decision(&out).0, "allow", "no answer about a pause is no pause");
    assert!(took < Duration::from_millis(1500), "took {took:?} (300 ms connect + 300 ms read at most)");
}

#[test]
fn hooks_install_in_project_scope_creates_the_settings_file() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(support::bin()).arg("hooks").args(args).current_dir(dir.path()).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    run(&["install", "--scope", "project"]);
    let settings = dir.path().join(".claude/settings.json");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&settings).unwrap()).unwrap();
    assert_eq!(v["hooks"]["PreToolUse"][0]["matcher"], "*");
    assert!(run(&["status", "--scope", "project"]).contains("): installed"));
    run(&["uninstall", "--scope", "project"]);
    assert_eq!(std::fs::read_to_string(&settings).unwrap(), "{}\n", "left as an empty object");
    assert!(run(&["status", "--scope", "project"]).contains("): not installed"));
}
