//! The control API of `serve` from outside: actions need the token (401 without it or
//! with a wrong one) and the same origin (403 from another), for every action; the
//! console logs in with `/?token=` and acts by cookie; an approval is long-polled and
//! answered within a second of its decision, decided once (409 after), expired; pause and
//! resume show on `/api/control`; a note is taken exactly once; every change is an event
//! on `/api/events`; the CLI's actions do the same; pauses and notes survive a restart.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::api::events;
use super::daemon::{self, Daemon};
use super::support;

/// A one-shot HTTP/1.1 request with `Connection: close`: (status, lower-cased headers, JSON body or null).
pub fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> (u16, Vec<(String, String)>, Value) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let body = body.map(|b| serde_json::to_vec(b).unwrap()).unwrap_or_default();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n\r\n", body.len()));
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(&body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read response");
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("end of headers");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|c| c.parse().ok()).expect("status");
    let hdrs = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, hdrs, serde_json::from_slice(&raw[split + 4..]).unwrap_or(Value::Null))
}

fn header<'a>(hdrs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    hdrs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// A real `serve` with its control token.
pub struct Ctl {
    pub d: Daemon,
    pub token: String,
    _root: tempfile::TempDir,
    pub state: tempfile::TempDir,
}

impl Ctl {
    pub fn start() -> Ctl {
        let root = daemon::empty_root();
        let state = tempfile::tempdir().unwrap();
        let d = Daemon::start(root.path(), state.path(), &[]);
        d.wait_ready(Duration::from_secs(20));
        let token = std::fs::read_to_string(state.path().join("control-token")).expect("token file").trim().to_owned();
        Ctl { d, token, _root: root, state }
    }

    pub fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let auth = format!("Bearer {}", self.token);
        let (status, _, v) = send(self.d.addr, "POST", path, &[("Authorization", &auth)], Some(&body));
        (status, v)
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        let (status, _, v) = send(self.d.addr, "GET", path, &[], None);
        (status, v)
    }

    fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(support::bin())
            .args(args)
            .arg("--daemon")
            .arg(format!("http://{}", self.d.addr))
            .arg("--token-file")
            .arg(self.state.path().join("control-token"))
            .output()
            .expect("run the CLI")
    }
}

fn approval(session: &str) -> Value {
    json!({"session_id": session, "tool_name": "Bash", "summary": "git push --force", "rule": "force-push",
           "reason": "rewrites shared history", "tool_use_id": "toolu_1"})
}

#[test]
fn every_action_needs_the_token_and_the_same_origin() {
    let c = Ctl::start();
    let addr = c.d.addr;
    // The token: 64 hex digits, private, and printed as the console's URL.
    assert!(c.token.len() == 64 && c.token.bytes().all(|b| b.is_ascii_hexdigit()), "{:?}", c.token);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(c.state.path().join("control-token")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let url = format!("console: http://{addr}/?token={}", c.token);
    assert!(c.d.log_text().contains(&url), "no {url:?} in the log:\n{}", c.d.log_text());

    let (_, created) = c.post("/api/approvals", approval("s1"));
    let id = created["id"].as_str().expect("an approval id").to_owned();
    let actions: Vec<(String, Value)> = vec![
        ("/api/approvals".into(), approval("s1")),
        (format!("/api/approvals/{id}"), json!({"decision": "allow", "reason": "x"})),
        (format!("/api/approvals/{id}/expire"), json!({})),
        ("/api/sessions/s1/pause".into(), json!({"message": "stop"})),
        ("/api/sessions/s1/resume".into(), json!({})),
        ("/api/sessions/s1/notes".into(), json!({"text": "hello"})),
        ("/api/sessions/s1/notes/take".into(), json!({})),
    ];
    let wrong = "0".repeat(64);
    let bearer_wrong = format!("Bearer {wrong}");
    let bearer = format!("Bearer {}", c.token);
    let cookie_wrong = format!("cs_token={wrong}");
    let same_origin = format!("http://{addr}");
    for (path, body) in &actions {
        type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, u16);
        let cases: [Case; 6] = [
            ("no token", vec![], 401),
            ("a wrong bearer token", vec![("Authorization", &bearer_wrong)], 401),
            ("a wrong cookie", vec![("Cookie", &cookie_wrong)], 401),
            ("the token, from another site", vec![("Authorization", &bearer), ("Origin", "http://evil.example")], 403),
            ("the token, from another port", vec![("Authorization", &bearer), ("Origin", "http://127.0.0.1:1")], 403),
            ("the token, from an opaque origin", vec![("Authorization", &bearer), ("Origin", "null")], 403),
        ];
        for (what, headers, want) in cases {
            let (status, hdrs, answer) = send(addr, "POST", path, &headers, Some(body));
            assert_eq!(status, want, "POST {path} with {what}: {answer}");
            assert!(answer["error"].is_string(), "POST {path} with {what}: a JSON error, got {answer}");
            assert!(
                !hdrs.iter().any(|(k, _)| k.starts_with("access-control-")),
                "POST {path} with {what}: no CORS headers ever: {hdrs:?}"
            );
        }
        // The same origin with the token passes the checks (whatever the action then says).
        let (status, _, answer) =
            send(addr, "POST", path, &[("Authorization", &bearer), ("Origin", &same_origin)], Some(body));
        assert!(![401, 403].contains(&status), "POST {path} from the same origin with the token: {status} {answer}");
    }
    // Other methods are actions too.
    assert_eq!(send(addr, "DELETE", "/api/approvals", &[], None).0, 401);
    // Reads stay open.
    assert_eq!(c.get("/api/approvals").0, 200);
    assert_eq!(c.get("/api/control/s1").0, 200);
}

#[test]
fn nothing_changes_without_the_token() {
    let c = Ctl::start();
    let addr = c.d.addr;
    let (_, created) = c.post("/api/approvals", approval("s1"));
    let id = created["id"].as_str().unwrap().to_owned();
    let evil = [("Origin", "http://evil.example"), ("Cookie", &*format!("cs_token={}", c.token))];
    for headers in [&[][..], &evil[..]] {
        send(addr, "POST", &format!("/api/approvals/{id}"), headers, Some(&json!({"decision": "allow"})));
        send(addr, "POST", "/api/sessions/s1/pause", headers, Some(&json!({"message": "x"})));
        send(addr, "POST", "/api/sessions/s1/notes", headers, Some(&json!({"text": "x"})));
        send(addr, "POST", "/api/approvals", headers, Some(&approval("s1")));
    }
    let (_, list) = c.get("/api/approvals");
    let list = list["approvals"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["state"], "pending");
    assert_eq!(c.get("/api/control/s1").1, json!({"paused": false, "message": null, "notes_pending": 0}));
}

#[test]
fn the_console_logs_in_with_the_token_url_and_acts_by_cookie() {
    let c = Ctl::start();
    let addr = c.d.addr;
    let (status, hdrs, _) = send(addr, "GET", &format!("/?token={}", "f".repeat(64)), &[], None);
    assert_eq!(status, 401);
    assert!(header(&hdrs, "set-cookie").is_none());

    let (status, hdrs, _) = send(addr, "GET", &format!("/?token={}", c.token), &[], None);
    assert_eq!(status, 303);
    assert_eq!(header(&hdrs, "location"), Some("/"));
    let cookie = header(&hdrs, "set-cookie").expect("a cookie");
    let parts: Vec<&str> = cookie.split(';').map(str::trim).collect();
    assert_eq!(parts[0], format!("cs_token={}", c.token));
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(parts.contains(&attr), "{attr} in {cookie:?}");
    }

    // What a browser then sends: the cookie, and its own origin.
    let origin = format!("http://{addr}");
    let browser = [("Cookie", parts[0]), ("Origin", &*origin)];
    let (_, created) = c.post("/api/approvals", approval("s1"));
    let id = created["id"].as_str().unwrap();
    let (status, _, a) = send(
        addr,
        "POST",
        &format!("/api/approvals/{id}"),
        &browser,
        Some(&json!({"decision": "deny", "reason": "no"})),
    );
    assert_eq!(status, 200, "{a}");
    assert_eq!((a["state"].as_str(), a["decided_by"].as_str()), (Some("denied"), Some("console")));
    let (status, _, _) = send(addr, "POST", "/api/sessions/s1/pause", &browser, Some(&json!({"message": "m"})));
    assert_eq!(status, 200);
    assert_eq!(c.get("/api/control/s1").1["paused"], true);
}

#[test]
fn an_approval_is_answered_within_a_second_decided_once_and_expires() {
    let c = Ctl::start();
    let (sse, _) = events(&c.d, "?type=approval_pending,approval_decided", &[]);
    let (status, created) = c.post("/api/approvals", approval("s1"));
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();

    let (_, listed) = c.get("/api/approvals");
    let a = &listed["approvals"][0];
    assert_eq!((a["id"].as_str(), a["state"].as_str()), (Some(&*id), Some("pending")));
    assert_eq!(
        (a["summary"].as_str(), a["rule"].as_str(), a["tool_name"].as_str()),
        (Some("git push --force"), Some("force-push"), Some("Bash"))
    );

    // Without a decision a long-poll answers `pending` when its wait ends.
    let t = Instant::now();
    let (status, still) = c.get(&format!("/api/approvals/{id}?wait=0.3"));
    assert_eq!((status, still["state"].as_str()), (200, Some("pending")));
    assert!(t.elapsed() >= Duration::from_millis(300), "{:?}", t.elapsed());

    // A waiting hook gets the decision within a second of it.
    let addr = c.d.addr;
    let path = format!("/api/approvals/{id}?wait=20");
    let waiter = std::thread::spawn(move || {
        let (status, _, a) = send(addr, "GET", &path, &[], None);
        (status, a, Instant::now())
    });
    std::thread::sleep(Duration::from_millis(300));
    let decided_at = Instant::now();
    let (status, a) = c.post(&format!("/api/approvals/{id}"), json!({"decision": "allow", "reason": "reviewed"}));
    assert_eq!(status, 200, "{a}");
    let (status, waited, answered_at) = waiter.join().unwrap();
    assert_eq!(status, 200);
    assert_eq!((waited["state"].as_str(), waited["decided_reason"].as_str()), (Some("allowed"), Some("reviewed")));
    let lag = answered_at.duration_since(decided_at);
    assert!(lag < Duration::from_secs(1), "answered {lag:?} after the decision");

    // Once only.
    let (status, again) = c.post(&format!("/api/approvals/{id}"), json!({"decision": "deny", "reason": "late"}));
    assert_eq!(status, 409, "{again}");
    assert_eq!(again["approval"]["state"], "allowed");
    assert_eq!(c.post("/api/approvals/nope", json!({"decision": "allow"})).0, 404);
    assert_eq!(c.get("/api/approvals/nope").0, 404);
    assert_eq!(c.post(&format!("/api/approvals/{id}"), json!({"decision": "maybe"})).0, 400);

    // The hook's timeout: expired, once.
    let (_, second) = c.post("/api/approvals", approval("s2"));
    let id2 = second["id"].as_str().unwrap().to_owned();
    let (status, expired) = c.post(&format!("/api/approvals/{id2}/expire"), json!({}));
    assert_eq!((status, expired["state"].as_str()), (200, Some("expired")));
    assert_eq!(c.post(&format!("/api/approvals/{id2}/expire"), json!({})).0, 409);
    assert_eq!(c.post(&format!("/api/approvals/{id2}"), json!({"decision": "allow"})).0, 409);

    let got = sse.until(Duration::from_secs(5), "4 approval events", |e| e.data.contains("\"expired\""));
    let got: Vec<Value> = got.iter().map(|e| serde_json::from_str(&e.data).unwrap()).collect();
    let seen: Vec<(&str, &str)> =
        got.iter().map(|e| (e["type"].as_str().unwrap(), e["approval_id"].as_str().unwrap())).collect();
    assert_eq!(
        seen,
        [
            ("approval_pending", &*id),
            ("approval_decided", &*id),
            ("approval_pending", &*id2),
            ("approval_decided", &*id2)
        ]
    );
    assert_eq!((got[0]["tool"].as_str(), got[0]["summary"].as_str()), (Some("Bash"), Some("git push --force")));
    assert_eq!((got[1]["state"].as_str(), got[1]["reason"].as_str()), (Some("allowed"), Some("reviewed")));
    assert_eq!(got[3]["state"], "expired");
    assert_eq!(got[0]["session_id"], "s1");
    let m = c.d.metrics();
    for (state, n) in [("allowed", 1.0), ("denied", 0.0), ("expired", 1.0)] {
        assert_eq!(m.sum("claude_sessions_approvals_total", &[("state", state)]), n, "{state}");
    }
    assert_eq!(m.sum("claude_sessions_approvals_pending", &[]), 0.0);
    c.post("/api/approvals", approval("s3"));
    assert_eq!(c.d.metrics().sum("claude_sessions_approvals_pending", &[]), 1.0);
}

#[test]
fn pause_resume_and_notes_taken_exactly_once() {
    let c = Ctl::start();
    let (sse, _) = events(&c.d, "?session=s1", &[]);
    assert_eq!(c.get("/api/control/s1").1, json!({"paused": false, "message": null, "notes_pending": 0}));
    assert_eq!(c.post("/api/sessions/s1/pause", json!({"message": "wait for review"})).0, 200);
    assert_eq!(c.get("/api/control/s1").1, json!({"paused": true, "message": "wait for review", "notes_pending": 0}));
    assert_eq!(c.get("/api/control/s2").1["paused"], false, "only that session");

    let (status, n1) = c.post("/api/sessions/s1/notes", json!({"text": "use the staging db"}));
    assert_eq!(status, 201, "{n1}");
    c.post("/api/sessions/s1/notes", json!({"text": "and run the tests"}));
    assert_eq!(c.post("/api/sessions/s1/notes", json!({"text": " "})).0, 400);
    assert_eq!(c.get("/api/control/s1").1["notes_pending"], 2);

    let (status, taken) = c.post("/api/sessions/s1/notes/take", json!({}));
    assert_eq!(status, 200);
    let texts: Vec<&str> = taken["notes"].as_array().unwrap().iter().map(|n| n["text"].as_str().unwrap()).collect();
    assert_eq!(texts, ["use the staging db", "and run the tests"]);
    assert_eq!(taken["notes"][0]["id"], n1["id"]);
    assert_eq!(c.post("/api/sessions/s1/notes/take", json!({})).1, json!({"notes": []}), "each note once");

    assert_eq!(c.post("/api/sessions/s1/resume", json!({})).0, 200);
    assert_eq!(c.get("/api/control/s1").1, json!({"paused": false, "message": null, "notes_pending": 0}));

    let got = sse.until(Duration::from_secs(5), "session_resumed", |e| e.event == "session_resumed");
    let types: Vec<&str> = got.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(
        types,
        ["session_paused", "note_queued", "note_queued", "note_delivered", "note_delivered", "session_resumed"]
    );
    let paused: Value = serde_json::from_str(&got[0].data).unwrap();
    assert_eq!(paused["message"], "wait for review");
}

#[test]
fn the_cli_approves_denies_pauses_resumes_and_notes() {
    let c = Ctl::start();
    let text = |o: &std::process::Output| {
        format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
    };
    let (_, a) = c.post("/api/approvals", approval("s1"));
    let a = a["id"].as_str().unwrap().to_owned();
    let (_, b) = c.post("/api/approvals", approval("s1"));
    let b = b["id"].as_str().unwrap().to_owned();

    let out = c.cli(&["approve", &a, "--reason", "fine"]);
    assert!(out.status.success(), "{}", text(&out));
    let got = c.get(&format!("/api/approvals/{a}")).1;
    assert_eq!(
        (got["state"].as_str(), got["decided_reason"].as_str(), got["decided_by"].as_str()),
        (Some("allowed"), Some("fine"), Some("cli"))
    );
    let out = c.cli(&["approve", &a]);
    assert!(!out.status.success());
    assert!(text(&out).contains("already allowed"), "{}", text(&out));

    let out = c.cli(&["deny", &b]);
    assert_eq!(out.status.code(), Some(2), "deny needs --reason: {}", text(&out));
    let out = c.cli(&["deny", &b, "--reason", "not on main"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(c.get(&format!("/api/approvals/{b}")).1["decided_reason"], "not on main");

    // The daemon and token found through the environment this time.
    let env_cli = |args: &[&str]| {
        Command::new(support::bin())
            .args(args)
            .env("CLAUDE_SESSIONS_URL", format!("http://{}", c.d.addr))
            .env("CLAUDE_SESSIONS_TOKEN_FILE", c.state.path().join("control-token"))
            .output()
            .unwrap()
    };
    let out = env_cli(&["pause", "s1", "--message", "hold on"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(c.get("/api/control/s1").1["message"], "hold on");
    let out = env_cli(&["note", "s1", "the API key is in the vault"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(c.get("/api/control/s1").1["notes_pending"], 1);
    // The token found in CLAUDE_SESSIONS_STATE_DIR, as `serve` chose its state folder.
    let out = Command::new(support::bin())
        .args(["resume", "s1"])
        .env("CLAUDE_SESSIONS_URL", format!("http://{}", c.d.addr))
        .env_remove("CLAUDE_SESSIONS_TOKEN_FILE")
        .env("CLAUDE_SESSIONS_STATE_DIR", c.state.path())
        .env("XDG_STATE_HOME", "/nonexistent")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(c.get("/api/control/s1").1["paused"], false);

    // A wrong token is refused and said so.
    let other = tempfile::tempdir().unwrap();
    let bad = other.path().join("control-token");
    std::fs::write(&bad, format!("{}\n", "a".repeat(64))).unwrap();
    let out = Command::new(support::bin())
        .args(["pause", "s1", "--daemon", &format!("http://{}", c.d.addr), "--token-file"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(text(&out).contains("refused the control token"), "{}", text(&out));
    assert_eq!(c.get("/api/control/s1").1["paused"], false);
    // No daemon: an error, not a hang.
    let out = Command::new(support::bin())
        .args(["resume", "s1", "--daemon", "http://127.0.0.1:1", "--token-file"])
        .arg(c.state.path().join("control-token"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(text(&out).contains("cannot be reached") && text(&out).contains("serve` running"), "{}", text(&out));
}

#[test]
fn pauses_notes_and_the_token_survive_a_restart() {
    let root = daemon::empty_root();
    let state = tempfile::tempdir().unwrap();
    let token_of = |p: &Path| std::fs::read_to_string(p.join("control-token")).unwrap();
    let d = Daemon::start(root.path(), state.path(), &[]);
    d.wait_ready(Duration::from_secs(20));
    let token = token_of(state.path());
    let auth = format!("Bearer {}", token.trim());
    let h = [("Authorization", &*auth)];
    assert_eq!(send(d.addr, "POST", "/api/sessions/s1/pause", &h, Some(&json!({"message": "m"}))).0, 200);
    assert_eq!(send(d.addr, "POST", "/api/sessions/s1/notes", &h, Some(&json!({"text": "n"}))).0, 201);
    d.stop();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(state.path().join("control.json")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "notes are private");
    }
    let d = Daemon::start(root.path(), state.path(), &[]);
    d.wait_ready(Duration::from_secs(20));
    assert_eq!(token_of(state.path()), token, "the same token");
    let (_, _, status) = send(d.addr, "GET", "/api/control/s1", &[], None);
    assert_eq!(status, json!({"paused": true, "message": "m", "notes_pending": 1}));
}
