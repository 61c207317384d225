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
//!
//! Exit codes: 0 with a decision (or none) on stdout; 1 when the hook itself fails
//! (input that is not a PreToolUse call, an unreadable rules file), which Claude Code
//! reports as a non-blocking error and the call goes on to its normal permission flow;
//! with `--fail-closed` such a failure exits 2 instead, which blocks the call and shows
//! the message to Claude.

use std::io::Read;
use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::rules::{Action, Rules};

/// The hooks `hook` answers (one so far).
#[derive(Debug, Subcommand)]
pub enum HookCommand {
    /// Read a PreToolUse hook's JSON on stdin; print Claude Code's hook output (allow / ask / deny).
    PreToolUse(PreToolUseArgs),
}

/// The flags of `hook pre-tool-use`.
#[derive(Debug, Args)]
pub struct PreToolUseArgs {
    /// Rules file (TOML); the built-in rules otherwise.
    #[arg(long, value_name = "FILE", env = "CLAUDE_SESSIONS_RULES")]
    pub rules: Option<PathBuf>,

    /// Approve calls that no rule matches (default: no answer, Claude Code's own permissions decide).
    #[arg(long)]
    pub allow_unmatched: bool,

    /// When the hook cannot decide (malformed input, a bad rules file), block the call
    /// (exit 2) instead of letting Claude Code's permission flow go on (exit 1).
    #[arg(long, env = "CLAUDE_SESSIONS_HOOK_FAIL_CLOSED")]
    pub fail_closed: bool,

    /// Answer `ask` when reading the call takes longer than this (keep it under the
    /// hook's `timeout` in settings.json, or Claude Code lets the call through).
    #[arg(long, value_name = "DURATION", default_value = "3s", value_parser = super::parse_duration)]
    pub deadline: std::time::Duration,
}

/// Exit code of a hook failure that blocks the call (Claude Code's "blocking error").
const EXIT_BLOCK: u8 = 2;
/// Exit code of a hook failure that does not block it (any code but 0 and 2).
const EXIT_FAILED: u8 = 1;

/// What is wrong with a hook input.
#[derive(Debug, thiserror::Error)]
enum InputError {
    #[error("the hook input on stdin is not JSON: {0}")]
    NotJson(String),
    #[error("the hook input is not a JSON object (got {0})")]
    NotObject(&'static str),
    #[error("the hook input has no \"tool_name\" string (got {0})")]
    NoToolName(&'static str),
    #[error("the hook input's \"tool_input\" is not an object (got {0})")]
    BadToolInput(&'static str),
    #[error("this is the PreToolUse hook; it was called for {0}")]
    WrongEvent(String),
}

fn kind(v: Option<&serde_json::Value>) -> &'static str {
    match v {
        None => "nothing",
        Some(serde_json::Value::Null) => "null",
        Some(serde_json::Value::Bool(_)) => "a boolean",
        Some(serde_json::Value::Number(_)) => "a number",
        Some(serde_json::Value::String(_)) => "a string",
        Some(serde_json::Value::Array(_)) => "an array",
        Some(serde_json::Value::Object(_)) => "an object",
    }
}

/// Check that `stdin` is a PreToolUse hook input; the parsed JSON.
fn parse_input(stdin: &str) -> Result<serde_json::Value, InputError> {
    let input: serde_json::Value = serde_json::from_str(stdin).map_err(|e| InputError::NotJson(e.to_string()))?;
    let obj = input.as_object().ok_or(InputError::NotObject(kind(Some(&input))))?;
    if let Some(event) = obj.get("hook_event_name") {
        match event.as_str() {
            Some("PreToolUse") => {}
            Some(other) => return Err(InputError::WrongEvent(other.to_owned())),
            None => return Err(InputError::WrongEvent(kind(Some(event)).to_owned())),
        }
    }
    match obj.get("tool_name") {
        Some(serde_json::Value::String(s)) if !s.is_empty() => {}
        other => return Err(InputError::NoToolName(kind(other))),
    }
    match obj.get("tool_input") {
        Some(serde_json::Value::Object(_)) => {}
        other => return Err(InputError::BadToolInput(kind(other))),
    }
    Ok(input)
}

/// The hook's answer for `input` (the hook JSON), as the JSON to print (`None`: print nothing).
fn answer(rules: &Rules, input: &serde_json::Value, allow_unmatched: bool) -> Option<serde_json::Value> {
    let tool = input.get("tool_name").and_then(|t| t.as_str()).unwrap_or("");
    // The whole input, parsed once, however large (`parse_input` checked it is an object).
    let tool_input = input.get("tool_input").unwrap_or(&serde_json::Value::Null);
    let decision = rules.decide(tool, tool_input);
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
    Some(output(action, reason))
}

/// Answer one hook call: read its JSON on stdin, print the decision (or nothing), and
/// return the exit code Claude Code reads (see the module's doc).
pub fn run(cmd: HookCommand) -> std::process::ExitCode {
    let HookCommand::PreToolUse(args) = cmd;
    match decide(&args) {
        Ok(Some(out)) => {
            println!("{out}");
            std::process::ExitCode::SUCCESS
        }
        Ok(None) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // Never the tool input: only what is wrong with it.
            if args.fail_closed {
                eprintln!("claude-sessions hook: {e:#}; blocking the call (--fail-closed)");
                std::process::ExitCode::from(EXIT_BLOCK)
            } else {
                eprintln!("claude-sessions hook: {e:#}");
                std::process::ExitCode::from(EXIT_FAILED)
            }
        }
    }
}

fn decide(args: &PreToolUseArgs) -> anyhow::Result<Option<serde_json::Value>> {
    let rules = match &args.rules {
        Some(p) => Rules::load(p)?,
        None => Rules::builtin(),
    };
    let mut stdin = String::new();
    std::io::stdin().read_to_string(&mut stdin).map_err(|e| anyhow::anyhow!("cannot read the hook input: {e}"))?;
    let input = parse_input(&stdin)?;
    // A hook that outlives Claude Code's timeout lets the call through: past the
    // deadline the answer is `ask` (the reading is left running; the process exits).
    let allow_unmatched = args.allow_unmatched;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(answer(&rules, &input, allow_unmatched));
    });
    match rx.recv_timeout(args.deadline) {
        Ok(out) => Ok(out),
        Err(_) => Ok(Some(output(
            Action::Ask,
            format!("claude-sessions could not read this call within {:?}; asking", args.deadline),
        ))),
    }
}

/// Claude Code's hook output for a decision.
fn output(action: Action, reason: String) -> serde_json::Value {
    serde_json::json!({
        "hookSpecificOutput": {
            "hookEventName": "PreToolUse",
            "permissionDecision": action.as_str(),
            "permissionDecisionReason": reason,
        }
    })
}
