//! `hook pre-tool-use`: Claude Code's PreToolUse hook, answered from the rules, a pause
//! and a person; `hook user-prompt-submit` / `hook post-tool-use` deliver notes
//! (`hook/notes.rs`).
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
//! the built-in set) approve a call, or a person through the daemon for an `approve` rule
//! (`hook/approval.rs`); `--allow-unmatched` approves every call no rule stops. A session a
//! person paused in the daemon gets `deny` with their message, whatever the rules say.
//! Tool input is never logged (an `approve` call's summary goes to the daemon only).
//!
//! Exit codes: 0 with a decision (or none) on stdout; 1 when the hook itself fails
//! (input that is not a PreToolUse call, an unreadable rules file), which Claude Code
//! reports as a non-blocking error and the call goes on to its normal permission flow;
//! with `--fail-closed` such a failure exits 2 instead, which blocks the call and shows
//! the message to Claude.

use std::io::Read;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};

use crate::rules::{Action, Rules};

mod approval;
mod notes;

use super::daemon::{Daemon, DaemonArgs};

/// The hooks `hook` answers.
#[derive(Debug, Subcommand)]
pub enum HookCommand {
    /// Read a PreToolUse hook's JSON on stdin; print Claude Code's hook output (allow / ask / deny).
    PreToolUse(PreToolUseArgs),
    /// Read a UserPromptSubmit hook's JSON on stdin; print the session's queued notes as additional context.
    UserPromptSubmit(notes::NotesArgs),
    /// Read a PostToolUse hook's JSON on stdin; print the session's queued notes as additional context.
    PostToolUse(notes::NotesArgs),
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
    /// hook's `timeout` in settings.json, or Claude Code lets the call through). The wait
    /// for a person's decision (`--approval-timeout`) is not part of it.
    #[arg(long, value_name = "DURATION", default_value = "3s", value_parser = super::parse_duration)]
    pub deadline: Duration,

    /// How long a call an `approve` rule matched waits for a person's decision before the
    /// hook answers `ask` (keep the hook's `timeout` in settings.json above it plus
    /// `--deadline`; `hooks install` does).
    #[arg(long, value_name = "DURATION", default_value = "60s", env = "CLAUDE_SESSIONS_APPROVAL_TIMEOUT",
          value_parser = super::parse_duration)]
    pub approval_timeout: Duration,

    /// How to reach the daemon (pause check and approvals).
    #[command(flatten)]
    pub daemon: DaemonArgs,
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
    #[error("this is the {0} hook; it was called for {1}")]
    WrongEvent(&'static str, String),
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

/// Check that `stdin` is a JSON object for the hook `event` (its `hook_event_name`, when
/// present, must be that); the parsed JSON.
fn parse_event(stdin: &str, event: &'static str) -> Result<serde_json::Value, InputError> {
    let input: serde_json::Value = serde_json::from_str(stdin).map_err(|e| InputError::NotJson(e.to_string()))?;
    let obj = input.as_object().ok_or(InputError::NotObject(kind(Some(&input))))?;
    if let Some(name) = obj.get("hook_event_name") {
        match name.as_str() {
            Some(n) if n == event => {}
            Some(other) => return Err(InputError::WrongEvent(event, other.to_owned())),
            None => return Err(InputError::WrongEvent(event, kind(Some(name)).to_owned())),
        }
    }
    Ok(input)
}

/// Check that `stdin` is a PreToolUse hook input; the parsed JSON.
fn parse_input(stdin: &str) -> Result<serde_json::Value, InputError> {
    let input = parse_event(stdin, "PreToolUse")?;
    match input.get("tool_name") {
        Some(serde_json::Value::String(s)) if !s.is_empty() => {}
        other => return Err(InputError::NoToolName(kind(other))),
    }
    match input.get("tool_input") {
        Some(serde_json::Value::Object(_)) => {}
        other => return Err(InputError::BadToolInput(kind(other))),
    }
    Ok(input)
}

/// What the rules say about a call: the action, the reason for Claude Code, the rules.
#[derive(Debug)]
struct Verdict {
    action: Action,
    reason: String,
    /// The names of the strictest matching rules, comma-separated (an approval's `rule`).
    rule: String,
}

/// The rules' verdict on `input` (the hook JSON); `None`: no rule matched, print nothing.
fn verdict(rules: &Rules, input: &serde_json::Value, allow_unmatched: bool) -> Option<Verdict> {
    let tool = input.get("tool_name").and_then(|t| t.as_str()).unwrap_or("");
    // The whole input, parsed once, however large (`parse_input` checked it is an object).
    let tool_input = input.get("tool_input").unwrap_or(&serde_json::Value::Null);
    let decision = rules.decide(tool, tool_input);
    match decision.action {
        Some(a) => {
            let strictest: Vec<_> = decision.matches.iter().filter(|m| m.action == a).collect();
            let described: Vec<String> =
                strictest.iter().map(|m| format!("{} ({}, {})", m.description, m.rule, m.severity.as_str())).collect();
            let described = described.join("; ");
            let reason = match a {
                Action::Deny => format!("Blocked by claude-sessions rules: {described}"),
                Action::Approve => format!("claude-sessions rules want a person's approval: {described}"),
                Action::Ask => format!("claude-sessions rules flag this call: {described}"),
                Action::Allow => format!("Allowed by claude-sessions rules: {described}"),
            };
            let rule = strictest.iter().map(|m| m.rule.as_str()).collect::<Vec<_>>().join(",");
            Some(Verdict { action: a, reason, rule })
        }
        None if allow_unmatched => Some(Verdict {
            action: Action::Allow,
            reason: "No claude-sessions rule matched.".to_owned(),
            rule: String::new(),
        }),
        None => None,
    }
}

/// Answer one hook call: read its JSON on stdin, print the answer (or nothing), and
/// return the exit code Claude Code reads (see the module's doc).
pub fn run(cmd: HookCommand) -> std::process::ExitCode {
    let (result, fail_closed) = match cmd {
        HookCommand::PreToolUse(args) => (decide(&args), args.fail_closed),
        HookCommand::UserPromptSubmit(args) => (notes::answer(&args, notes::Event::UserPromptSubmit), false),
        HookCommand::PostToolUse(args) => (notes::answer(&args, notes::Event::PostToolUse), false),
    };
    match result {
        Ok(Some(out)) => {
            println!("{out}");
            std::process::ExitCode::SUCCESS
        }
        Ok(None) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // Never the tool input: only what is wrong with it.
            if fail_closed {
                eprintln!("claude-sessions hook: {e:#}; blocking the call (--fail-closed)");
                std::process::ExitCode::from(EXIT_BLOCK)
            } else {
                eprintln!("claude-sessions hook: {e:#}");
                std::process::ExitCode::from(EXIT_FAILED)
            }
        }
    }
}

/// Read the hook's whole stdin.
fn read_stdin() -> anyhow::Result<String> {
    let mut stdin = String::new();
    std::io::stdin().read_to_string(&mut stdin).map_err(|e| anyhow::anyhow!("cannot read the hook input: {e}"))?;
    Ok(stdin)
}

/// The pre-tool-use answer. Three bounded steps, each with its own limit:
///
/// 1. The rules read the call on a thread of their own, within `--deadline` (a pathological
///    command could keep the parser busy; past the deadline the answer is `ask`, and the
///    reading is left running while the process exits).
/// 2. Meanwhile the daemon is asked whether the session is paused, with 300 ms connect and
///    read timeouts (a daemon that is not running refuses at once), so the check costs the
///    common case nothing: it overlaps the rules' work.
/// 3. Only for an `approve` verdict: the wait for a person, bounded by
///    `--approval-timeout`. It is *not* cut by `--deadline`: the deadline guards against a
///    slow reading of the call, which nobody chose; the approval wait is chosen, and
///    bounded separately (long polls of at most 30 s, each read limited to what is left,
///    one expire call at the end). Cutting it by a 3 s deadline would turn every approval
///    into `ask`. What keeps Claude Code from killing the hook (which would let the call
///    through) is the hook's `timeout` in settings.json, which must exceed
///    `--deadline` + `--approval-timeout` + a few seconds: `hooks install` writes
///    `--approval-timeout` + 30 s and passes the timeout on the command line so that the
///    two cannot drift apart.
fn decide(args: &PreToolUseArgs) -> anyhow::Result<Option<serde_json::Value>> {
    let rules = match &args.rules {
        Some(p) => Rules::load(p)?,
        None => Rules::builtin(),
    };
    let input = parse_input(&read_stdin()?)?;
    let started = Instant::now();
    let allow_unmatched = args.allow_unmatched;
    let (tx, rx) = std::sync::mpsc::channel();
    let for_rules = input.clone();
    std::thread::spawn(move || {
        let _ = tx.send(verdict(&rules, &for_rules, allow_unmatched));
    });
    let daemon = Daemon::new(&args.daemon);
    let session = input.get("session_id").and_then(|s| s.as_str()).filter(|s| !s.is_empty());
    if let (Ok(d), Some(session)) = (&daemon, session)
        && let Some(message) = approval::paused(d, session)
    {
        return Ok(Some(output(Action::Deny, message)));
    }
    let verdict = match rx.recv_timeout(args.deadline.saturating_sub(started.elapsed())) {
        Ok(v) => v,
        Err(_) => {
            return Ok(Some(output(
                Action::Ask,
                format!("claude-sessions could not read this call within {:?}; asking", args.deadline),
            )));
        }
    };
    Ok(verdict.map(|v| match v.action {
        Action::Approve => approval::wait(daemon.as_ref(), &input, &v, args.approval_timeout),
        a => output(a, v.reason),
    }))
}

/// Claude Code's PreToolUse hook output for a decision (`approve` is never one: it
/// becomes allow, deny or ask before it gets here).
fn output(action: Action, reason: String) -> serde_json::Value {
    debug_assert!(action != Action::Approve, "approve is resolved before the output");
    serde_json::json!({
        "hookSpecificOutput": {
            "hookEventName": "PreToolUse",
            "permissionDecision": action.as_str(),
            "permissionDecisionReason": reason,
        }
    })
}
