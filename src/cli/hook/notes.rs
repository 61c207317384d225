//! `hook user-prompt-submit` and `hook post-tool-use`: deliver a person's notes to Claude.
//!
//! In: the hook input on stdin (only its `session_id` is read). The hook takes the
//! session's queued notes from the daemon (`POST /api/sessions/{id}/notes/take`, which
//! hands each note out once, ever) and prints them as additional context:
//!
//! ```json
//! {"hookSpecificOutput": {"hookEventName": "UserPromptSubmit", "additionalContext": "…"}}
//! ```
//!
//! (`"PostToolUse"` for the other hook.) That is the shape of Claude Code's hooks
//! reference for both events, "UserPromptSubmit decision control" and "PostToolUse
//! decision control" (<https://code.claude.com/docs/en/hooks#userpromptsubmit-decision-control>,
//! <https://code.claude.com/docs/en/hooks#posttooluse-decision-control>): with exit code 0,
//! `hookSpecificOutput.additionalContext` is added to Claude's context (for
//! UserPromptSubmit with the prompt, for PostToolUse after the tool's result). Neither
//! event needs a `matcher` in settings.json (UserPromptSubmit has none; PostToolUse
//! takes tool names, `*` for all).
//!
//! Out: nothing at all when there are no notes, the daemon is down or slow, or there is
//! no token: these hooks run on every prompt and every tool call, so they must never get
//! in the way. Exit code 1 (a non-blocking error) only for input that is not a JSON
//! object for the right event.

use std::time::Duration;

use clap::Args;

use crate::cli::daemon::{Daemon, DaemonArgs, Timeouts, segment};

/// The flags of `hook user-prompt-submit` and `hook post-tool-use`.
#[derive(Debug, Args)]
pub struct NotesArgs {
    /// How to reach the daemon.
    #[command(flatten)]
    pub daemon: DaemonArgs,
}

/// The hook events that deliver notes.
#[derive(Debug, Clone, Copy)]
pub(super) enum Event {
    UserPromptSubmit,
    PostToolUse,
}

impl Event {
    fn name(self) -> &'static str {
        match self {
            Event::UserPromptSubmit => "UserPromptSubmit",
            Event::PostToolUse => "PostToolUse",
        }
    }
}

/// Limits of the take call: it runs on every prompt and tool call.
const TAKE: Timeouts = Timeouts { connect: Duration::from_millis(300), read: Duration::from_secs(2) };

/// The hook's answer: the notes as additional context, or `None` (print nothing).
pub(super) fn answer(args: &NotesArgs, event: Event) -> anyhow::Result<Option<serde_json::Value>> {
    let input = super::parse_event(&super::read_stdin()?, event.name())?;
    let Some(session) = input.get("session_id").and_then(|s| s.as_str()).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let Ok(daemon) = Daemon::new(&args.daemon) else { return Ok(None) };
    if daemon.token_error().is_some() {
        return Ok(None);
    }
    let path = format!("/api/sessions/{}/notes/take", segment(session));
    let Ok(taken) = daemon.post(&path, &serde_json::json!({}), TAKE) else { return Ok(None) };
    let texts: Vec<&str> = taken
        .get("notes")
        .and_then(|n| n.as_array())
        .into_iter()
        .flatten()
        .filter_map(|n| n.get("text").and_then(|t| t.as_str()))
        .filter(|t| !t.trim().is_empty())
        .collect();
    Ok(context(&texts).map(|c| {
        serde_json::json!({
            "hookSpecificOutput": { "hookEventName": event.name(), "additionalContext": c }
        })
    }))
}

/// The notes as one text for Claude, saying where they come from.
fn context(texts: &[&str]) -> Option<String> {
    match texts {
        [] => None,
        [one] => Some(format!("A note from the person watching this session (sent through claude-sessions):\n{one}")),
        many => Some(format!(
            "Notes from the person watching this session (sent through claude-sessions), oldest first:\n{}",
            many.iter().map(|t| format!("- {}", t.trim_end())).collect::<Vec<_>>().join("\n")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_are_joined_with_where_they_come_from() {
        assert_eq!(context(&[]), None);
        let one = context(&["use the staging db"]).unwrap();
        assert!(one.ends_with("\nuse the staging db") && one.contains("claude-sessions"), "{one}");
        let two = context(&["a", "b"]).unwrap();
        assert!(two.ends_with("\n- a\n- b"), "{two}");
    }
}
