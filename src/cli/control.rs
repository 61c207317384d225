//! `approve`, `deny`, `pause`, `resume`, `note`: a person's actions on a running daemon.
//!
//! In: an approval or session id, the daemon's URL and its control token
//! ([`super::daemon::DaemonArgs`]). Out: one POST to the control API and a line on
//! stdout saying what happened; an error (exit 1) when the daemon refuses.

use clap::Args;
use serde_json::{Value, json};

use super::daemon::{Daemon, DaemonArgs, Error, Timeouts, segment};

/// An action is one short POST; the daemon answers at once.
const ACTION: Timeouts =
    Timeouts { connect: std::time::Duration::from_secs(5), read: std::time::Duration::from_secs(30) };

/// The flags of `approve`.
#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// The approval's id (in the console, `GET /api/approvals`, or the `approval_pending` event).
    #[arg(value_name = "ID")]
    pub id: String,
    /// Why (goes back to Claude with the decision).
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    /// Where the daemon and its token are.
    #[command(flatten)]
    pub daemon: DaemonArgs,
}

/// The flags of `deny`.
#[derive(Debug, Args)]
pub struct DenyArgs {
    /// The approval's id.
    #[arg(value_name = "ID")]
    pub id: String,
    /// Why (Claude reads it as the reason the call was denied).
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
    /// Where the daemon and its token are.
    #[command(flatten)]
    pub daemon: DaemonArgs,
}

/// The flags of `pause`.
#[derive(Debug, Args)]
pub struct PauseArgs {
    /// The session's id.
    #[arg(value_name = "SESSION")]
    pub session: String,
    /// What Claude reads as the reason its tool calls are denied.
    #[arg(long, value_name = "TEXT")]
    pub message: Option<String>,
    /// Where the daemon and its token are.
    #[command(flatten)]
    pub daemon: DaemonArgs,
}

/// The flags of `resume`.
#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// The session's id.
    #[arg(value_name = "SESSION")]
    pub session: String,
    /// Where the daemon and its token are.
    #[command(flatten)]
    pub daemon: DaemonArgs,
}

/// The flags of `note`.
#[derive(Debug, Args)]
pub struct NoteArgs {
    /// The session's id.
    #[arg(value_name = "SESSION")]
    pub session: String,
    /// The note, handed to Claude once as additional context at its next prompt or tool result.
    #[arg(value_name = "TEXT")]
    pub text: String,
    /// Where the daemon and its token are.
    #[command(flatten)]
    pub daemon: DaemonArgs,
}

/// POST an action; the answer when it is a success, else an error naming what the daemon said.
fn act(args: &DaemonArgs, path: &str, body: Value) -> anyhow::Result<Value> {
    let daemon = Daemon::new(args)?;
    if let Some(e) = daemon.token_error() {
        anyhow::bail!("{e}; see --token-file");
    }
    match daemon.post(path, &body, ACTION) {
        Ok(answer) => Ok(answer),
        Err(Error::Status { status: 401, message, .. }) => {
            let file = args.token_path().map(|p| p.display().to_string()).unwrap_or_else(|(p, _)| p);
            anyhow::bail!(
                "the daemon at {} refused the control token from {file} ({message}): is it this daemon's state folder?",
                args.url
            )
        }
        Err(Error::Status { status: 409, message, body }) => {
            let a = &body["approval"];
            let by = a["decided_by"].as_str().unwrap_or("?");
            match a["decided_reason"].as_str() {
                Some(r) => anyhow::bail!("{message} (by {by}: {r})"),
                None => anyhow::bail!("{message} (by {by})"),
            }
        }
        Err(Error::Status { status, message, .. }) => anyhow::bail!("{message} (HTTP {status})"),
        Err(e @ Error::Unreachable(..)) => anyhow::bail!("{e}: is `claude-sessions serve` running there?"),
        Err(e) => Err(e.into()),
    }
}

fn decide(daemon: &DaemonArgs, id: &str, decision: &str, reason: &str) -> anyhow::Result<()> {
    let path = format!("/api/approvals/{}", segment(id));
    let body = json!({"decision": decision, "reason": reason, "by": "cli"});
    let a = act(daemon, &path, body)?;
    println!(
        "approval {id} {}: {} {}",
        a["state"].as_str().unwrap_or(decision),
        a["tool_name"].as_str().unwrap_or(""),
        a["summary"].as_str().unwrap_or("")
    );
    Ok(())
}

/// Allow a pending approval. Errors: unknown or already decided, or the daemon refuses.
pub fn approve(args: ApproveArgs) -> anyhow::Result<()> {
    decide(&args.daemon, &args.id, "allow", args.reason.as_deref().unwrap_or(""))
}

/// Deny a pending approval with a reason. Errors: as [`approve`].
pub fn deny(args: DenyArgs) -> anyhow::Result<()> {
    decide(&args.daemon, &args.id, "deny", &args.reason)
}

/// Pause a session. Errors: the daemon refuses.
pub fn pause(args: PauseArgs) -> anyhow::Result<()> {
    let path = format!("/api/sessions/{}/pause", segment(&args.session));
    act(&args.daemon, &path, json!({"message": args.message}))?;
    println!("session {} paused", args.session);
    Ok(())
}

/// Resume a paused session. Errors: the daemon refuses.
pub fn resume(args: ResumeArgs) -> anyhow::Result<()> {
    let path = format!("/api/sessions/{}/resume", segment(&args.session));
    act(&args.daemon, &path, json!({}))?;
    println!("session {} resumed", args.session);
    Ok(())
}

/// Queue a note for a session. Errors: the daemon refuses.
pub fn note(args: NoteArgs) -> anyhow::Result<()> {
    let path = format!("/api/sessions/{}/notes", segment(&args.session));
    let answer = act(&args.daemon, &path, json!({"text": args.text}))?;
    println!("note {} queued for session {}", answer["id"].as_str().unwrap_or("?"), args.session);
    Ok(())
}
