//! `claude-sessions hook pre-tool-use` with PreToolUse inputs in Claude Code's format
//! (tests/fixtures/hooks/): the answer is Claude Code's hook output JSON.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;

use super::support;

/// Start `hook <sub> <args>` with `input` on stdin (no rules file or approval timeout
/// from the environment).
pub fn spawn(sub: &str, args: &[&str], input: &[u8]) -> std::process::Child {
    let mut child = Command::new(support::bin())
        .args(["hook", sub])
        .args(args)
        .env_remove("CLAUDE_SESSIONS_RULES")
        .env_remove("CLAUDE_SESSIONS_APPROVAL_TIMEOUT")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the hook");
    child.stdin.take().unwrap().write_all(input).unwrap();
    child
}

/// Run the hook with `input` on stdin: (exit code, stdout, stderr).
pub fn hook(input: &[u8], args: &[&str]) -> (i32, String, String) {
    let out = spawn("pre-tool-use", args, input).wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn sample(name: &str) -> Vec<u8> {
    std::fs::read(support::fixtures_dir().join("hooks").join(name)).expect("hook sample")
}

/// The decision in Claude Code's hook output, checking its shape.
fn decision(stdout: &str) -> (String, String) {
    let v: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"));
    let out = &v["hookSpecificOutput"];
    assert_eq!(out["hookEventName"], "PreToolUse", "{v}");
    assert_eq!(v.as_object().unwrap().len(), 1, "only hookSpecificOutput: {v}");
    (
        out["permissionDecision"].as_str().unwrap().to_owned(),
        out["permissionDecisionReason"].as_str().unwrap().to_owned(),
    )
}

#[test]
fn rm_rf_root_is_denied_and_ls_is_allowed() {
    let (code, out, _) = hook(&sample("bash-rm-rf-root.json"), &[]);
    assert_eq!(code, 0);
    let (d, reason) = decision(&out);
    assert_eq!(d, "deny");
    assert!(reason.contains("rm-rf-root"), "{reason}");
    let (code, out, _) = hook(&sample("bash-ls.json"), &[]);
    assert_eq!(code, 0);
    assert_eq!(decision(&out).0, "allow", "a simple read-only command");
}

#[test]
fn risky_writes_ask_and_unmatched_calls_defer_to_claude_code() {
    let (_, out, _) = hook(&sample("write-env.json"), &[]);
    assert_eq!(decision(&out).0, "ask");
    let (_, out, _) = hook(&sample("mcp-drop-table.json"), &[]);
    assert_eq!(decision(&out).0, "ask", "DROP TABLE in an MCP tool's input");
    // No rule: no answer, so Claude Code's own permission settings decide.
    let (code, out, _) = hook(&sample("bash-cargo-build.json"), &[]);
    assert_eq!((code, out.as_str()), (0, ""));
    let (_, out, _) = hook(&sample("webfetch.json"), &[]);
    assert_eq!(out, "");
    let (_, out, _) = hook(&sample("bash-cargo-build.json"), &["--allow-unmatched"]);
    assert_eq!(decision(&out).0, "allow");
}

#[test]
fn a_rules_file_adds_rules_and_bad_input_is_a_non_blocking_error() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.toml");
    std::fs::write(
        &rules,
        "[[rule]]\nname = \"no-release-builds\"\nseverity = \"critical\"\ntools = [\"Bash\"]\ncommand = 'cargo build --release'\n",
    )
    .unwrap();
    let r = rules.to_str().unwrap();
    let (_, out, _) = hook(&sample("bash-cargo-build.json"), &["--rules", r]);
    let (d, reason) = decision(&out);
    assert_eq!(d, "deny");
    assert!(reason.contains("no-release-builds"));
    let (_, out, _) = hook(&sample("bash-rm-rf-root.json"), &["--rules", r]);
    assert_eq!(decision(&out).0, "deny", "the built-in rules stay");
    // Malformed input: exit 1 (Claude Code treats it as a non-blocking error), a clear message.
    let (code, out, err) = hook(b"{not json", &[]);
    assert_eq!((code, out.as_str()), (1, ""));
    assert!(err.contains("not JSON"), "{err}");
    std::fs::write(&rules, "[[rule]]\nname = \"broken\"\nseverity = \"warning\"\ncommand = '('\n").unwrap();
    let (code, _, err) = hook(&sample("bash-ls.json"), &["--rules", r]);
    assert_eq!(code, 1);
    assert!(err.contains("rules.toml") && err.contains("broken"), "{err}");
    // The tool input never reaches stderr.
    let (_, _, err) = hook(&sample("bash-rm-rf-root.json"), &[]);
    assert!(!err.contains("Clean everything"));
}

#[test]
fn serve_counts_rule_matches_of_new_tool_calls() {
    let root = super::daemon::empty_root();
    let projects = root.path().join("projects");
    std::fs::create_dir_all(&projects).unwrap();
    let state = tempfile::tempdir().unwrap();
    let d = super::daemon::Daemon::start(root.path(), state.path(), &[]);
    d.wait_ready(std::time::Duration::from_secs(30));
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let call = |n: u32, cmd: &str| {
        format!(
            r#"{{"type":"assistant","sessionId":"r1","cwd":"/w/r","timestamp":"{}","requestId":"req{n}","message":{{"id":"msg{n}","model":"claude-opus-4-6","usage":{{"input_tokens":1,"output_tokens":1}},"content":[{{"type":"tool_use","id":"toolu_r{n}","name":"Bash","input":{{"command":{}}}}}]}}}}"#,
            support::rfc3339(now + i64::from(n)),
            serde_json::to_string(cmd).unwrap()
        )
    };
    let lines =
        [call(1, "rm -rf /"), call(2, "ls"), call(3, "git push --force origin main"), call(4, "sudo make install")];
    super::daemon::append(&projects.join("-w-r/r1.jsonl"), (lines.join("\n") + "\n").as_bytes());
    let critical = |m: &super::daemon::Metrics| {
        m.sum("claude_sessions_rule_matches_total", &[("rule", "rm-rf-root"), ("severity", "critical")]) == 1.0
    };
    assert!(d.wait_for(std::time::Duration::from_secs(10), critical).is_some());
    let metrics = d.metrics();
    assert_eq!(metrics.sum("claude_sessions_rule_matches_total", &[("rule", "git-force-push")]), 1.0);
    assert_eq!(
        metrics.sum("claude_sessions_rule_matches_total", &[("rule", "privilege-escalation"), ("severity", "warning")]),
        1.0
    );
    // `rm -rf /` is also an `rm -rf` (a call counts once per rule it matches); `ls` is not risky.
    assert_eq!(metrics.sum("claude_sessions_rule_matches_total", &[("rule", "rm-recursive-force")]), 1.0);
    assert_eq!(metrics.sum("claude_sessions_rule_matches_total", &[]), 4.0);
    assert!(!d.log_text().contains("rm -rf"), "commands are never logged");
    d.stop();
}

#[test]
fn malformed_inputs_exit_1_with_a_message_or_2_with_fail_closed() {
    let cases: &[(&[u8], &str)] = &[
        (b"{}", "tool_name"),
        (b"[]", "not a JSON object"),
        (b"{\"tool_name\":5}", "tool_name"),
        (b"{\"tool_name\":\"Bash\"}", "tool_input"),
        (b"{\"tool_name\":\"Bash\",\"tool_input\":\"rm -rf /\"}", "tool_input"),
        (b"{\"hook_event_name\":\"PostToolUse\",\"tool_name\":\"Bash\",\"tool_input\":{}}", "PostToolUse"),
        (b"", "not JSON"),
        (b"{not json", "not JSON"),
    ];
    for (input, says) in cases {
        let shown = String::from_utf8_lossy(input);
        let (code, out, err) = hook(input, &[]);
        assert_eq!((code, out.as_str()), (1, ""), "{shown}: {err}");
        assert!(err.contains(says), "{shown}: {err}");
        let (code, out, err) = hook(input, &["--fail-closed"]);
        assert_eq!((code, out.as_str()), (2, ""), "{shown} --fail-closed: {err}");
        assert!(err.contains(says) && err.contains("blocking"), "{shown}: {err}");
    }
    // A broken rules file fails closed too; a well-formed call is unaffected by the flag.
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("r.toml");
    std::fs::write(&rules, "[[rule]]\nname = \"b\"\nseverity = \"warning\"\ncommand = '('\n").unwrap();
    let (code, _, _) = hook(&sample("bash-ls.json"), &["--fail-closed", "--rules", rules.to_str().unwrap()]);
    assert_eq!(code, 2);
    let (code, out, _) = hook(&sample("bash-ls.json"), &["--fail-closed"]);
    assert_eq!(code, 0);
    assert_eq!(decision(&out).0, "allow");
}

#[test]
fn a_call_not_read_by_the_deadline_is_asked_about() {
    let script: String = (0..2000).map(|i| format!("echo step {i} && make t{i} > log{i}.txt\n")).collect();
    let input =
        serde_json::json!({"hook_event_name": "PreToolUse", "tool_name": "Bash", "tool_input": {"command": script}});
    let (code, out, _) = hook(input.to_string().as_bytes(), &["--deadline", "0ms"]);
    assert_eq!(code, 0);
    let (d, reason) = decision(&out);
    assert_eq!(d, "ask");
    assert!(reason.contains("could not read"), "{reason}");
    // With the default deadline the same script is read: no rule matches it.
    let (code, out, _) = hook(input.to_string().as_bytes(), &[]);
    assert_eq!((code, out.as_str()), (0, ""));
}

/// The same call with 100 KiB of content gets the same answer as a small one.
#[test]
fn a_100_kib_write_to_env_is_answered_as_a_small_one() {
    let mut input: serde_json::Value = serde_json::from_slice(&sample("write-env.json")).unwrap();
    let (_, small, _) = hook(&sample("write-env.json"), &[]);
    input["tool_input"]["content"] = "API_KEY=x\n".repeat(100 << 10 >> 3).into();
    let big = input.to_string();
    assert!(big.len() > 100 << 10);
    let (code, out, err) = hook(big.as_bytes(), &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(decision(&out), decision(&small));
    assert_eq!(decision(&out).0, "ask");
}
