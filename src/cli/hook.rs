//! `hook pre-tool-use`: Claude Code's PreToolUse hook, answered from the rules.
//!
//! Claude Code runs the command before each tool call with the hook input as
//! JSON on stdin (`hook_event_name`, `session_id`, `cwd`, `tool_name`,
//! `tool_input`, …) and reads a decision from stdout:
//!
//! ```json
//! {"hookSpecificOutput": {"hookEventName": "PreToolUse",
//!   "permissionDecision": "deny", "permissionDecisionReason": "…"}}
//! ```
//!
//! (Claude Code's hooks reference, <https://code.claude.com/docs/en/hooks#pretooluse>:
//! `allow` skips the permission prompt, `deny` blocks the call and tells Claude why,
//! `ask` prompts the user; exit code 0 with no output lets the normal permission flow
//! decide; any other non-zero code but 2 is a non-blocking error.)
//!
//! A call no rule matches gets no output: Claude Code's own permission settings decide,
//! as without the hook. Only rules whose action is `allow` (simple read-only commands in
//! the built-in set) approve a call; `--allow-unmatched` approves every call no rule
//! stops. Tool input is never logged.

use std::io::Read;
use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::rules::{Action, Rules};

#[derive(Debug, Subcommand)]
pub enum HookCommand {
    /// Read a PreToolUse hook's JSON on stdin; print Claude Code's hook output (allow / ask / deny).
    PreToolUse(PreToolUseArgs),
}

#[derive(Debug, Args)]
pub struct PreToolUseArgs {
    /// Rules file (TOML); the built-in rules otherwise.
    #[arg(long, value_name = "FILE", env = "CLAUDE_SESSIONS_RULES")]
    pub rules: Option<PathBuf>,

    /// Approve calls that no rule matches (default: no answer, Claude Code's own permissions decide).
    #[arg(long)]
    pub allow_unmatched: bool,
}

/// The hook's answer for `input` (the hook JSON), as the JSON to print (`None`: print nothing).
pub fn answer(rules: &Rules, input: &serde_json::Value, allow_unmatched: bool) -> Option<serde_json::Value> {
    let tool = input.get("tool_name").and_then(|t| t.as_str()).unwrap_or("");
    let tool_input = input.get("tool_input").cloned().unwrap_or(serde_json::Value::Null);
    let decision = rules.decide(tool, &tool_input);
    let (action, reason) = match decision.action {
        Some(a) => {
            let strictest: Vec<String> = decision
                .matches
                .iter()
                .filter(|m| m.action == a)
                .map(|m| format!("{} ({}, {})", m.description, m.rule, m.severity.as_str()))
                .collect();
            let reason = match a {
                Action::Deny => format!("Blocked by claude-sessions rules: {}", strictest.join("; ")),
                Action::Ask => format!("claude-sessions rules flag this call: {}", strictest.join("; ")),
                Action::Allow => format!("Allowed by claude-sessions rules: {}", strictest.join("; ")),
            };
            (a, reason)
        }
        None if allow_unmatched => (Action::Allow, "No claude-sessions rule matched.".to_owned()),
        None => return None,
    };
    Some(serde_json::json!({
        "hookSpecificOutput": {
            "hookEventName": "PreToolUse",
            "permissionDecision": action.as_str(),
            "permissionDecisionReason": reason,
        }
    }))
}

pub fn run(cmd: HookCommand) -> anyhow::Result<()> {
    let HookCommand::PreToolUse(args) = cmd;
    let rules = match &args.rules {
        Some(p) => Rules::load(p)?,
        None => Rules::builtin(),
    };
    let mut stdin = String::new();
    std::io::stdin().read_to_string(&mut stdin)?;
    // An unreadable input is an error of the hook, not a reason to block (exit 1: non-blocking).
    let input: serde_json::Value =
        serde_json::from_str(&stdin).map_err(|e| anyhow::anyhow!("the hook input on stdin is not JSON: {e}"))?;
    if let Some(event) = input.get("hook_event_name").and_then(|e| e.as_str())
        && event != "PreToolUse"
    {
        anyhow::bail!("this is the PreToolUse hook; it was called for {event}");
    }
    if let Some(out) = answer(&rules, &input, args.allow_unmatched) {
        println!("{out}");
    }
    Ok(())
}
