//! What a new user trips over in the first hour (issue 14), each checked on the CLI's
//! output: empty answers explained, folders and flags in the forms people give them,
//! sub-agent-only sessions, completions and the man page.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::daemon::{Daemon, real};
use crate::support::{bin, real_config_root, rfc3339};

fn run(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let out = Command::new(bin()).args(args).envs(env.iter().copied()).output().expect("spawn");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_projects_dir_that_does_not_exist_is_an_error() {
    let (ok, out, err) = run(&["scan", "--projects-dir", "/nonexistent/claude"], &[]);
    assert!(!ok, "exit 0 with: {out}");
    assert!(err.contains("/nonexistent/claude does not exist") && err.contains("~/.claude/projects"), "{err}");
}

#[test]
fn a_config_root_given_as_projects_dir_is_read_as_its_projects_folder() {
    let root = real_config_root();
    let root_s = root.path().to_str().unwrap();
    let projects = root.path().join("projects");
    let (ok, by_root, err) = run(&["scan", "--format", "json", "--projects-dir", root_s], &[]);
    assert!(ok, "{err}");
    assert!(
        err.contains("is a Claude config folder") && err.contains(&format!("reading {}", projects.display())),
        "{err}"
    );
    let (ok, by_projects, err2) = run(&["scan", "--format", "json", "--projects-dir", projects.to_str().unwrap()], &[]);
    assert!(ok && !err2.contains("config folder"), "{err2}");
    let (a, b): (serde_json::Value, serde_json::Value) =
        (serde_json::from_str(&by_root).unwrap(), serde_json::from_str(&by_projects).unwrap());
    assert!(a["prompts"].as_u64().unwrap() > 0, "prompts counted: {a}");
    assert_eq!(a["totals"], b["totals"]);
    assert_eq!(a["prompts"], b["prompts"]);
}

#[test]
fn sizes_take_units() {
    let root = real_config_root();
    let projects = root.path().join("projects");
    let p = projects.to_str().unwrap();
    for size in ["64MiB", "64 MiB", "16M", "1048576"] {
        let (ok, _, err) = run(&["scan", "--projects-dir", p, "--max-line-bytes", size], &[]);
        assert!(ok, "--max-line-bytes {size}: {err}");
    }
    // 2 KiB: the fixtures' longer lines are now oversized, which the report counts.
    let (ok, out, err) = run(&["scan", "--format", "json", "--projects-dir", p, "--max-line-bytes", "2KiB"], &[]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v["lines"]["oversized"].as_u64().unwrap() > 0, "{}", v["lines"]);
    let (ok, _, err) = run(&["scan", "--projects-dir", p, "--max-line-bytes", "64 parsecs"], &[]);
    assert!(!ok && err.contains("unknown unit `parsecs`"), "{err}");
}

#[test]
fn listen_addresses_take_the_usual_forms() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("projects")).unwrap();
    let mut forms = vec![":0", "localhost:0", "0"];
    if std::net::TcpListener::bind("[::1]:0").is_ok() {
        forms.push("[::1]:0");
    }
    for form in forms {
        let state = tempfile::tempdir().unwrap();
        let d = Daemon::start_custom(root.path(), state.path(), form, &[], &[]);
        assert!(d.addr.ip().is_loopback(), "{form} listens on {}", d.addr);
        if form.starts_with("[::1]") {
            assert!(d.addr.is_ipv6(), "{form}: {}", d.addr);
        } else {
            assert_eq!(d.addr.ip(), std::net::Ipv4Addr::LOCALHOST, "{form}: port only means loopback");
        }
        let (status, _, _) = d.get("/metrics", &[]);
        assert_eq!(status, 200, "{form}");
        d.stop();
    }
    let (ok, _, err) = run(&["serve", "--web.listen-address", ":99999"], &[]);
    assert!(!ok && err.contains("not a port"), "{err}");
}

/// The fixture with a top-level `agent-*.jsonl` whose session's main file is elsewhere.
#[test]
fn a_session_of_sub_agent_files_only_shows_unknown_not_zero() {
    let root = real_config_root();
    let p = root.path().join("projects");
    let (ok, out, err) = run(&["sessions", "--limit", "0", "--projects-dir", p.to_str().unwrap()], &[]);
    assert!(ok, "{err}");
    // agent-1509e86b.jsonl carries session a6022a13-…, whose main transcript is not in the fixtures.
    let row = out.lines().find(|l| l.starts_with("a6022a13")).unwrap_or_else(|| panic!("{out}"));
    assert!(row.starts_with("a6022a13*"), "{row}");
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells.last(), Some(&"-"), "context unknown: {row}");
    assert!(out.contains("* only its sub-agents' files were read"), "{out}");
    let main_row = out.lines().find(|l| l.starts_with("cb2e607c ")).unwrap();
    assert!(main_row.trim_end().ends_with('%'), "{main_row}");
    let (_, json, _) = run(&["sessions", "--json", "--limit", "0", "--projects-dir", p.to_str().unwrap()], &[]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let s = v.as_array().unwrap().iter().find(|s| s["id"].as_str().unwrap().starts_with("a6022a13")).unwrap();
    assert_eq!(s["main_chain"], false);
}

#[test]
fn sessions_say_how_many_the_retention_forgot() {
    let root = real_config_root();
    let state = tempfile::tempdir().unwrap();
    let d = Daemon::start(root.path(), state.path(), &["--session-retention", "1d"]);
    d.wait_ready(Duration::from_secs(60));
    let mut forgotten = 0;
    for _ in 0..100 {
        let (status, headers, body) = d.get("/api/sessions", &[]);
        assert_eq!(status, 200);
        forgotten = headers.iter().find(|(k, _)| k == "x-sessions-forgotten").map_or(0, |(_, v)| v.parse().unwrap());
        if body.starts_with(b"[]") && forgotten > 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let started = d.metrics().sum("claude_sessions_sessions_started_total", &[]) as u64;
    assert!(started >= 10);
    assert_eq!(forgotten, started, "every fixture session is older than a day");
    let url = format!("http://{}", d.addr);
    let (ok, out, err) = run(&["sessions", "--url", &url], &[]);
    assert!(ok, "{err}");
    assert_eq!(out, "no sessions\n");
    assert!(
        err.contains(&format!("{started} older sessions are not listed")) && err.contains("scan --by session"),
        "{err}"
    );
    d.stop();
}

#[test]
fn completions_complete_and_the_man_page_renders() {
    let (ok, bash, _) = run(&["completions", "bash"], &[]);
    assert!(ok);
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("c.bash");
    std::fs::write(&script, &bash).unwrap();
    // What bash offers after `claude-sessions scan --by `, and after `claude-sessions sc`.
    let probe = format!(
        "source {}; COMP_WORDS=(claude-sessions scan --by ''); COMP_CWORD=3; _claude__sessions claude-sessions '' --by; \
         echo \"${{COMPREPLY[*]}}\"; COMP_WORDS=(claude-sessions sc); COMP_CWORD=1; \
         _claude__sessions claude-sessions sc claude-sessions; echo \"${{COMPREPLY[*]}}\"",
        script.display()
    );
    let out = Command::new("bash").args(["-c", &probe]).output().expect("bash");
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines, ["day week month session project model", "scan"], "{}", String::from_utf8_lossy(&out.stderr));
    for shell in ["zsh", "fish"] {
        let (ok, script, _) = run(&["completions", shell], &[]);
        assert!(ok && ["serve", "scan", "watch", "sessions", "analyze"].iter().all(|c| script.contains(c)), "{shell}");
    }
    let (ok, _, err) = run(&["completions", "tcsh"], &[]);
    assert!(!ok && err.contains("bash"), "{err}");

    let (ok, man, _) = run(&["man"], &[]);
    assert!(ok);
    assert!(man.contains("\n.TH claude-sessions 1 "), "{}", &man[..200.min(man.len())]);
    for section in [
        "CLAUDE-SESSIONS SERVE",
        "CLAUDE-SESSIONS SCAN",
        "CLAUDE-SESSIONS HOOK PRE-TOOL-USE",
        "CLAUDE-SESSIONS COMPLETIONS",
    ] {
        assert!(man.contains(&format!(".SH \"{section}\"")), "no section {section}");
    }
    assert!(man.contains("\\fB--by GROUP\\fR") && man.contains("\\fB--web.listen-address ADDR\\fR"));
    if let Ok(mut groff) =
        Command::new("groff").args(["-man", "-Tutf8", "-ww", "-z"]).stdin(Stdio::piped()).stderr(Stdio::piped()).spawn()
    {
        groff.stdin.take().unwrap().write_all(man.as_bytes()).unwrap();
        let out = groff.wait_with_output().unwrap();
        assert!(out.status.success() && out.stderr.is_empty(), "groff: {}", String::from_utf8_lossy(&out.stderr));
    }
}

/// `watch` on a copied transcript: it says what counts as history, and says again when
/// old lines are appended; a result whose call came before the start is named by it;
/// a replay shows dates, and a session ends when its quiet time ran out, not now.
#[test]
fn watch_explains_history_and_names_old_calls() {
    let src = real("claude-code-viewer/projects/sample-project/5c0375b4-57a5-4f26-b12d-d022ee4e51b7.jsonl");
    let text = std::fs::read_to_string(&src).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    // Up to the first tool call: its result is the next line.
    let call = lines.iter().position(|l| l.contains("\"type\":\"tool_use\"")).unwrap();
    assert!(lines[call + 1].contains("tool_result"), "the fixture's next line is the result");
    let root = tempfile::tempdir().unwrap();
    let file = root.path().join("projects/-x/s.jsonl");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, lines[..=call].join("\n") + "\n").unwrap();

    let spawn = |args: &[&str]| {
        Command::new(bin())
            .args(["watch", "--color", "never", "--projects-dir"])
            .arg(root.path().join("projects"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let finish = |mut child: std::process::Child| {
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        std::thread::sleep(Duration::from_millis(300));
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let append = |s: &str| {
        let mut f = std::fs::OpenOptions::new().append(true).open(&file).unwrap();
        f.write_all(s.as_bytes()).unwrap();
    };

    // Human output: the notes.
    let child = spawn(&[]);
    std::thread::sleep(Duration::from_secs(2));
    append(&(lines[call + 1..call + 4].join("\n") + "\n"));
    std::thread::sleep(Duration::from_secs(8));
    let (out, err) = finish(child);
    assert!(err.contains("older lines (history, or a copied transcript) are not shown: --since"), "{err}");
    assert!(err.contains("3 new lines were read, but stamped before watch started"), "{err}");
    assert!(out.is_empty(), "old lines made events: {out}");

    // JSON: a result stamped now, whose call is from the fixture's day.
    std::fs::write(&file, lines[..=call].join("\n") + "\n").unwrap();
    let child = spawn(&["--json"]);
    std::thread::sleep(Duration::from_secs(2));
    let mut result: serde_json::Value = serde_json::from_str(lines[call + 1]).unwrap();
    result["timestamp"] =
        rfc3339(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64).into();
    append(&(result.to_string() + "\n"));
    std::thread::sleep(Duration::from_secs(3));
    let (out, _) = finish(child);
    let events: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let r = events.iter().find(|e| e["type"] == "tool_result").unwrap_or_else(|| panic!("{out}"));
    let call_line: serde_json::Value = serde_json::from_str(lines[call]).unwrap();
    let name =
        call_line["message"]["content"].as_array().unwrap().iter().find(|b| b["type"] == "tool_use").unwrap()["name"]
            .clone();
    assert_eq!(r["name"], name, "{r}");
    assert!(r.get("duration_ms").is_none(), "no duration across the end of the session: {r}");

    // A replay: dates in the time column, and session_end at the end of the quiet time.
    std::fs::write(&file, text.as_bytes()).unwrap();
    let child = spawn(&["--since", "4000d", "--type", "session_start,session_end"]);
    std::thread::sleep(Duration::from_secs(4));
    let (out, _) = finish(child);
    let start = out.lines().find(|l| l.contains("session_start")).unwrap_or_else(|| panic!("{out}"));
    assert!(start.starts_with("2025-09-07 "), "{start}");
    let end = out.lines().find(|l| l.contains("session_end")).unwrap_or_else(|| panic!("{out}"));
    assert!(
        end.starts_with("2025-09-07 ") || end.starts_with("2025-09-08 "),
        "ended when its quiet time ran out: {end}"
    );
}
