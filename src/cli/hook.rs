//! `hook`: Claude Code hooks answered from the rules (to be implemented).

use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub enum HookCommand {
    /// Read a PreToolUse hook's JSON on stdin; print Claude Code's hook output (allow / ask / deny).
    PreToolUse(PreToolUseArgs),
}

#[derive(Debug, Args)]
pub struct PreToolUseArgs {}

pub fn run(_cmd: HookCommand) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}
