//! `hook pre-tool-use` and a person: the pause check and the wait for an approval.
//!
//! In: the daemon ([`crate::cli::daemon::Daemon`]), the hook input, the rules' verdict. Out:
//! Claude Code's PreToolUse output. The rule of this module: nothing here ever answers
//! `allow` unless the daemon said a person allowed the call; every failure (no token,
//! no daemon, a malformed answer, no decision in time) is `ask`, Claude Code's own prompt.

use std::time::{Duration, Instant};

use super::{Verdict, output};
use crate::cli::daemon::{Daemon, Error, Timeouts, segment};
use crate::rules::Action;

/// Limits of the pause check, made before every call: small, since a daemon that is
/// not running refuses the connection at once and a running one answers in microseconds.
const PAUSE_CHECK: Timeouts = Timeouts { connect: Duration::from_millis(300), read: Duration::from_millis(300) };

/// Limits of the other control calls (register, expire).
const CONTROL: Timeouts = Timeouts { connect: Duration::from_millis(300), read: Duration::from_secs(5) };

/// The longest single long poll (the daemon may hold a request open only so long).
const MAX_POLL: Duration = Duration::from_secs(30);

/// The summary of a call shown to the person deciding: at most this many bytes.
const SUMMARY_BYTES: usize = 200;

/// The reason to deny with when `session` is paused; `None` when it is not, or when the
/// daemon cannot tell (down, slow, an older daemon without `/api/control`): a pause is
/// a person's request to the daemon, so no daemon means no pause.
pub(super) fn paused(daemon: &Daemon, session: &str) -> Option<String> {
    let state = daemon.get(&format!("/api/control/{}", segment(session)), PAUSE_CHECK).ok()?;
    if state.get("paused").and_then(|p| p.as_bool()) != Some(true) {
        return None;
    }
    Some(match state.get("message").and_then(|m| m.as_str()).map(str::trim).filter(|m| !m.is_empty()) {
        Some(m) => format!("A person paused this session in claude-sessions: {m}"),
        None => "A person paused this session in claude-sessions; wait until it is resumed.".to_owned(),
    })
}

/// What the person deciding sees of a call: its command, path, pattern, URL or query
/// (all lines, joined with ⏎, so a second line cannot hide), else its input as JSON; cut
/// to [`SUMMARY_BYTES`] and marked when cut.
fn summary(tool: &str, input: &serde_json::Value) -> String {
    let field = |k: &str| input.get(k).and_then(|v| v.as_str());
    let s = match tool {
        "Bash" => field("command"),
        "Glob" | "Grep" => field("pattern"),
        "WebFetch" => field("url"),
        "WebSearch" => field("query"),
        "Task" | "Agent" => field("description"),
        _ => None,
    }
    .or_else(|| field("file_path").or(field("notebook_path")).or(field("path")).or(field("command")))
    .map(|s| s.lines().collect::<Vec<_>>().join(" ⏎ "))
    .unwrap_or_else(|| input.to_string());
    crate::transcript::entry::cap_text(&s, SUMMARY_BYTES)
}

/// Register the call as a pending approval and wait for a person's decision, up to
/// `timeout`: allow or deny with the person's reason; `ask` on timeout (after telling the
/// daemon the approval expired) or on any failure, with a reason that says which.
pub(super) fn wait(
    daemon: Result<&Daemon, &Error>,
    input: &serde_json::Value,
    v: &Verdict,
    timeout: Duration,
) -> serde_json::Value {
    let ask = |why: &str| output(Action::Ask, format!("{}; {why}, so Claude Code asks instead", v.reason));
    let daemon = match daemon {
        Ok(d) => d,
        Err(e) => return ask(&e.to_string()),
    };
    if let Some(e) = daemon.token_error() {
        return ask(&e.to_string());
    }
    let s = |k: &str| input.get(k).and_then(|x| x.as_str());
    let tool = s("tool_name").unwrap_or("");
    let body = serde_json::json!({
        "session_id": s("session_id").unwrap_or(""),
        "tool_name": tool,
        "summary": summary(tool, input.get("tool_input").unwrap_or(&serde_json::Value::Null)),
        "rule": v.rule,
        "reason": v.reason,
        "tool_use_id": s("tool_use_id"),
    });
    let id = match daemon.post("/api/approvals", &body, CONTROL) {
        Ok(created) => match created.get("id").and_then(|i| i.as_str()) {
            Some(id) if !id.is_empty() => id.to_owned(),
            _ => return ask("the daemon registered the approval without an id"),
        },
        Err(e) => return ask(&format!("could not register the approval: {e}")),
    };
    let path = format!("/api/approvals/{}", segment(&id));
    let end = Instant::now() + timeout;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let wait = left.min(MAX_POLL).as_secs().max(1);
        // The read ends with our own deadline: a daemon holding the poll past it is a timeout.
        let read = left.min(Duration::from_secs(wait + 5));
        let polled = Instant::now();
        match daemon.get(&format!("{path}?wait={wait}"), Timeouts { connect: CONTROL.connect, read }) {
            Ok(a) => {
                if let Some(out) = decided(&a) {
                    return out;
                }
                if a.get("state").and_then(|x| x.as_str()) == Some("expired") {
                    return ask(&format!("approval {id} expired"));
                }
                // A daemon that answers `pending` at once must not make this a busy loop.
                if polled.elapsed() < Duration::from_millis(200) {
                    std::thread::sleep(Duration::from_millis(200).min(left));
                }
            }
            Err(Error::NoAnswer(..)) if Instant::now() >= end => break,
            Err(e) => return ask(&format!("waiting for approval {id} failed: {e}")),
        }
    }
    // No decision in time. A decision may have come in just now: the expire answers with
    // the approval (or 409 when it was decided), and a decision a person made is kept.
    let late = match daemon.post(&format!("{path}/expire"), &serde_json::json!({}), CONTROL) {
        Ok(a) => decided(&a),
        Err(Error::Status { status: 409, .. }) => daemon.get(&path, CONTROL).ok().and_then(|a| decided(&a)),
        Err(_) => None,
    };
    late.unwrap_or_else(|| ask(&format!("no decision on approval {id} within {timeout:?}")))
}

/// The hook output for an approval a person decided; `None` while it is not decided.
fn decided(a: &serde_json::Value) -> Option<serde_json::Value> {
    let state = a.get("state").and_then(|s| s.as_str())?;
    let by = a.get("decided_by").and_then(|b| b.as_str()).filter(|b| !b.is_empty());
    let by = by.map(|b| format!(" by {b}")).unwrap_or_default();
    let why = a.get("decided_reason").and_then(|r| r.as_str()).map(str::trim).filter(|r| !r.is_empty());
    match state {
        "allowed" => Some(output(
            Action::Allow,
            match why {
                Some(r) => format!("Approved{by} in claude-sessions: {r}"),
                None => format!("Approved{by} in claude-sessions."),
            },
        )),
        "denied" => {
            Some(output(Action::Deny, format!("Denied{by} in claude-sessions: {}", why.unwrap_or("no reason given"))))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn summaries_show_the_whole_command_or_the_path_cut_to_200_bytes() {
        assert_eq!(summary("Bash", &json!({"command": "echo hi\nrm -rf x"})), "echo hi ⏎ rm -rf x");
        assert_eq!(summary("Write", &json!({"file_path": "/w/.env", "content": "X=1"})), "/w/.env");
        assert_eq!(summary("Grep", &json!({"pattern": "TODO", "path": "src"})), "TODO");
        assert_eq!(summary("mcp__db__query", &json!({"sql": "drop"})), r#"{"sql":"drop"}"#);
        let long = summary("Bash", &json!({"command": "x".repeat(500)}));
        assert!(long.starts_with(&"x".repeat(200)) && long.contains("cut"), "{long}");
    }

    #[test]
    fn only_a_decided_approval_is_an_answer() {
        let out = decided(&json!({"state": "allowed", "decided_reason": "ok", "decided_by": "console"})).unwrap();
        assert_eq!(out["hookSpecificOutput"]["permissionDecision"], "allow");
        assert_eq!(out["hookSpecificOutput"]["permissionDecisionReason"], "Approved by console in claude-sessions: ok");
        let out = decided(&json!({"state": "denied", "decided_reason": null})).unwrap();
        assert_eq!(out["hookSpecificOutput"]["permissionDecision"], "deny");
        assert!(decided(&json!({"state": "pending"})).is_none());
        assert!(decided(&json!({"state": "expired"})).is_none());
        assert!(decided(&json!({})).is_none());
    }
}
